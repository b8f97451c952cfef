from l6kit import scoreboard


def record(slug, profile, holds):
    return {"slug": slug, "profile": profile, "seed": 0, "runtime_s": 3.0, "claims": [
        {"name": "a | b", "metric": "m", "paper": 1.0, "measured": [2.0, 1.0], "comparator": "a > b",
         "holds": holds, "required_at": ["ci"], "note": ""},
        {"name": "info", "metric": "m", "paper": None, "measured": 0.5, "comparator": "a > b",
         "holds": False, "required_at": [], "note": ""}]}


def test_render_counts_and_escapes():
    page = scoreboard.render([record("uomh", "ci", True), record("x", "paper", True)])
    assert "**2 of 4 claims hold** (1 of 1 required ones)" in page
    assert "a \\| b" in page and "[uomh](../notebooks/uomh.ipynb)" in page
    assert page.count("\n| ") == 1 + 4           # header row + one row per claim
    assert scoreboard.summary([record("uomh", "ci", False)]) == (0, 2)


def test_collect_reads_paper_runs(tmp_path):
    import json
    (tmp_path / "paper").mkdir()
    (tmp_path / "uomh.json").write_text(json.dumps(record("uomh", "ci", True)))
    (tmp_path / "paper" / "uomh.json").write_text(json.dumps(record("uomh", "paper", True)))
    assert [r["profile"] for r in scoreboard.collect(tmp_path)] == ["ci", "paper"]


def test_empty_scoreboard_says_so():
    assert "no results yet" in scoreboard.render([])
