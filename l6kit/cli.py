"""Command line: ``l6kit list | run | book | dashboard | scoreboard``.

Bad input (unknown slug, profile, parameter name, wrongly typed value, unknown dashboard) exits with code 2
and one line naming the allowed values; nothing is executed and no result is overwritten.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence

from l6kit import papers, profiles, scoreboard


def _fail(message: str) -> int:
    print(f"l6kit: error: {message}", file=sys.stderr)
    return 2


def cmd_list(args: argparse.Namespace) -> int:
    """Print the catalogue with each paper's status from ``results/``."""
    records = {r["slug"]: r for r in scoreboard.collect() if r.get("profile") != "paper"}
    written = set(papers.written())
    for paper in papers.CATALOGUE.values():
        if paper.slug not in written:
            status = "not written yet"
        elif paper.slug not in records:
            status = "written, not run"
        else:
            r = records[paper.slug]
            held = sum(c["holds"] for c in r["claims"])
            status = f"{held}/{len(r['claims'])} claims hold ({r['profile']}, {r['runtime_s']:.0f} s)"
        print(f"{paper.slug:22s} {paper.venue:34s} {status}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Validate, then execute one paper's notebook."""
    from l6kit import runner

    try:
        overrides = runner.parse_params(args.slug, args.param)
        runner.check_run(args.slug, args.profile, overrides)
    except ValueError as exc:
        return _fail(str(exc))
    record = runner.run_paper(args.slug, args.profile, overrides, progress=sys.stderr.isatty())
    held = sum(c["holds"] for c in record["claims"])
    print(f"{args.slug} ({args.profile}): {held}/{len(record['claims'])} claims hold, "
          f"{record['runtime_s']:.1f} s -> results/{args.slug}.json, _build/executed/{args.slug}.ipynb")
    return 0


def cmd_book(args: argparse.Namespace) -> int:
    """Execute every notebook of the table of contents at ``ci`` (unless skipped), then build the HTML."""
    from l6kit import runner

    if not args.no_execute:
        codes = runner.execute_all(runner.toc_notebooks(), "ci", workers=args.workers)
        failed = [slug for slug, code in codes.items() if code != 0]
        if failed:
            print(f"l6kit: notebooks failed: {', '.join(failed)}", file=sys.stderr)
            return 1
    index = runner.build_book()
    holding, total = scoreboard.summary(scoreboard.collect())
    print(f"Book: {index}")
    print(f"Scoreboard: {holding}/{total} claims hold")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve one dashboard (or all) with ``panel serve`` on 127.0.0.1."""
    from l6kit.dashboards import DASHBOARDS

    names = list(DASHBOARDS) if args.name == "all" else [args.name]
    if any(n not in DASHBOARDS for n in names):
        return _fail(f"unknown dashboard {args.name!r}; allowed: {', '.join([*DASHBOARDS, 'all'])}")
    cmd = [sys.executable, "-m", "panel", "serve", *[str(DASHBOARDS[n]) for n in names],
           "--address", args.address, "--port", str(args.port),
           "--allow-websocket-origin", f"{args.address}:{args.port}",
           "--allow-websocket-origin", f"localhost:{args.port}"]
    print(f"Serving {', '.join(names)} at http://{args.address}:{args.port}/ (Ctrl-C stops)")
    return subprocess.call(cmd)


def cmd_scoreboard(args: argparse.Namespace) -> int:
    """Print the scoreboard (Markdown) or its summary as JSON."""
    records = scoreboard.collect()
    if args.json:
        holding, total = scoreboard.summary(records)
        print(json.dumps({"holding": holding, "total": total}))
    else:
        print(scoreboard.render(records))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``l6kit`` command."""
    parser = argparse.ArgumentParser(prog="l6kit", description="The l6kit book of Layer 6 AI's papers.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="papers and their status").set_defaults(func=cmd_list)
    run = sub.add_parser("run", help="execute one paper's notebook")
    run.add_argument("slug")
    run.add_argument("--profile", default="ci", help=f"one of: {', '.join(profiles.PROFILES)}")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a config field (repeatable), e.g. -p k=20 -p seed=1")
    run.set_defaults(func=cmd_run)
    book = sub.add_parser("book", help="execute the notebooks at ci and build the HTML book")
    book.add_argument("--workers", type=int, default=2)
    book.add_argument("--no-execute", action="store_true", help="build from the existing executed copies")
    book.set_defaults(func=cmd_book)
    dash = sub.add_parser("dashboard", help="serve a dashboard with panel serve")
    dash.add_argument("name", help="manifold | ... | all")
    dash.add_argument("--port", type=int, default=5006)
    dash.add_argument("--address", default="127.0.0.1")
    dash.set_defaults(func=cmd_dashboard)
    board = sub.add_parser("scoreboard", help="print the reproduction scoreboard")
    board.add_argument("--json", action="store_true", help="only the summary, as JSON")
    board.set_defaults(func=cmd_scoreboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``l6kit`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
