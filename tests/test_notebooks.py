"""Every notebook of the book: house rules, then a papermill run at profile ci within the time budget,
with every claim required at ci holding."""

import json
import time

import pytest

from l6kit import papers, runner

SLUGS = runner.toc_notebooks()
BUDGET_S = 90


@pytest.mark.parametrize("slug", SLUGS)
def test_house_rules(slug):
    cells = json.loads(papers.notebook_path(slug).read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), "outputs are committed"
    params = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and 'profile: str = "ci"' in "".join(params[0]["source"])
    assert not any("pip install" in "".join(c["source"]) for c in code)
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    for section in ("## Question", "## Idea", "## Method", "## Experiment", "## Result vs paper", "## Limits",
                    "## References"):
        assert section in text, f"missing section {section}"
    assert "claims.save" in "".join(code[-1]["source"]) or "book.save" in "".join(code[-1]["source"])


@pytest.mark.notebook
@pytest.mark.parametrize("slug", SLUGS)
def test_notebook_runs_at_ci_and_its_claims_hold(slug):
    start = time.perf_counter()
    record = runner.run_paper(slug, "ci")
    wall = time.perf_counter() - start
    assert wall <= BUDGET_S, f"{slug} took {wall:.0f} s at ci (budget {BUDGET_S} s)"
    assert record["profile"] == "ci" and record["claims"]
    failing = [c["name"] for c in record["claims"] if "ci" in c["required_at"] and not c["holds"]]
    assert not failing, f"required claims do not hold: {failing}"
