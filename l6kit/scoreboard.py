"""The reproduction scoreboard: every recorded claim of every paper, as a Markdown page for the book.

Reads ``results/*.json`` (runs made on this machine, usually at ``ci``) and ``results/paper/*.json``
(reviewed runs of the ``paper`` profile on a GPU box, committed to the repository).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l6kit import papers
from l6kit.claims import _fmt, load_results, results_dir

__all__ = ["collect", "render", "results_dir", "summary"]


def collect(folder: Path | None = None) -> list[dict[str, Any]]:
    """All results records: ``folder`` (default ``results/``) and its ``paper/`` subfolder."""
    folder = folder or results_dir()
    records = load_results(folder) if folder.exists() else []
    if (folder / "paper").exists():
        records += load_results(folder / "paper")
    return records


def summary(records: list[dict[str, Any]]) -> tuple[int, int]:
    """``(claims holding, claims in total)`` over all records."""
    claims = [c for r in records for c in r["claims"]]
    return sum(bool(c["holds"]) for c in claims), len(claims)


def render(records: list[dict[str, Any]]) -> str:
    """The scoreboard page (MyST Markdown): a summary line, then one table row per claim."""
    holding, total = summary(records)
    required = [c for r in records for c in r["claims"] if r["profile"] in c.get("required_at", [])]
    lines = [
        "---",
        "html_theme.sidebar_secondary.remove: true",
        "---",
        "",
        "# Reproduction scoreboard",
        "",
        "Every claim the notebooks recorded, beside the paper's value. *Required* claims must hold at the "
        "profile they were run with (the test suite checks those of profile `ci`); *informative* ones are "
        "shown whether they hold or not — the paper's effect may need the `paper` profile's data and compute.",
        "",
        f"**{holding} of {total} claims hold** ({sum(c['holds'] for c in required)} of {len(required)} "
        f"required ones) across {len(records)} run(s) of {len({r['slug'] for r in records})} paper(s); "
        f"{len(papers.CATALOGUE)} papers are in the catalogue.",
        "",
        "| paper | claim | metric | paper value | this run | profile | required | holds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for record in sorted(records, key=lambda r: (r["slug"], r["profile"])):
        slug = record["slug"]
        link = f"[{slug}](../notebooks/{slug}.ipynb)" if slug in papers.written() else slug
        for c in record["claims"]:
            req = "yes" if record["profile"] in c.get("required_at", []) else "informative"
            lines.append("| " + " | ".join(_cell(v) for v in (
                link, c["name"], c["metric"], _fmt(c["paper"]), _fmt(c["measured"]), record["profile"], req,
                "yes" if c["holds"] else "**no**")) + " |")
    if not records:
        lines.append("| — | no results yet: run `make book` or `l6kit run SLUG` | | | | | | |")
    runtime = ", ".join(f"{r['slug']} ({r['profile']}) {r['runtime_s']:.0f} s" for r in records)
    lines += ["", f"Runtimes: {runtime or '—'}.", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
