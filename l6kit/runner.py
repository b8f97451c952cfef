"""Run paper notebooks with papermill and build the book with Jupyter Book 1.

* :func:`run_paper` validates a run's parameters *before* executing anything (unknown profile, parameter
  name or wrongly typed value -> ``ValueError``), executes ``notebooks/<slug>.ipynb`` into
  ``_build/executed/<slug>.ipynb``, and moves the notebook's results file (and its ``artifacts/``) into
  ``results/`` only when the whole notebook succeeded — a failed run never overwrites a good result.
* :func:`build_book` stages the book (config, pages, *executed* notebooks, the generated scoreboard, one local
  ``plotly.min.js``) in ``_build/stage`` and runs ``jupyter-book build -W -n --keep-going`` there, failing if
  a notebook in the table of contents has no outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from l6kit import papers, profiles, scoreboard


def repo_root() -> Path:
    """The checkout l6kit runs from (the folder holding ``_toc.yml``).

    Raises:
        RuntimeError: l6kit is installed outside a checkout, so there are no notebooks to run.
    """
    root = Path(__file__).resolve().parents[1]
    if not (root / "_toc.yml").exists():
        raise RuntimeError(f"no _toc.yml in {root}: running notebooks needs a checkout of the l6kit repository")
    return root


def build_dir() -> Path:
    """Where executed notebooks, the staged book and the HTML go: ``$L6KIT_BUILD`` or ``<checkout>/_build``."""
    env = os.environ.get("L6KIT_BUILD")
    return Path(env) if env else repo_root() / "_build"


def parse_params(slug: str, pairs: Sequence[str]) -> dict[str, Any]:
    """Turn ``["k=20", "ks=5,10"]`` into typed overrides for ``slug``'s config.

    Raises:
        ValueError: malformed pair, unknown name (the message lists the allowed names) or unparsable value.
    """
    module = papers.module(slug)
    types = profiles.annotations(module.Config)
    allowed = profiles.field_names(module.Config)
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"parameter {pair!r} is not name=value")
        if name not in allowed:
            raise ValueError(f"unknown parameter {name!r} for {slug}; allowed: {', '.join(allowed)}")
        out[name] = profiles.parse_value(name, text, types[name])
    return out


def check_run(slug: str, profile: str, overrides: Mapping[str, Any]) -> Any:
    """Validate a run without executing it; returns the resolved config (raises ``ValueError``)."""
    return papers.module(slug).config(profile, **overrides)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_paper(slug: str, profile: str = "ci", overrides: Mapping[str, Any] | None = None, *,
              progress: bool = False) -> dict[str, Any]:
    """Execute ``notebooks/<slug>.ipynb`` at ``profile`` and return its results record.

    Args:
        slug: a written paper (``l6kit list``).
        profile: ci | laptop | paper.
        overrides: config field -> typed value (``seed`` and ``device`` included).
        progress: show papermill's cell progress bar.

    Returns:
        The results record, also written to ``results/<slug>.json``.

    Raises:
        ValueError: invalid slug, profile or parameter (nothing is executed).
        papermill.PapermillExecutionError: a cell failed; ``results/`` is untouched and the partial
            executed notebook is in ``_build/executed/<slug>.ipynb``.
    """
    import papermill

    overrides = dict(overrides or {})
    check_run(slug, profile, overrides)
    root = repo_root()
    executed = build_dir() / "executed" / f"{slug}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, "seed": overrides.pop("seed", 0), "device": overrides.pop("device", "auto"),
              # papermill writes tuples as strings; lists round-trip and the config turns them back into tuples
              "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}}
    with tempfile.TemporaryDirectory(prefix=f"l6kit-{slug}-") as tmp:
        with _environ(L6KIT_RESULTS=tmp, PANEL_INLINE="1", L6KIT_NO_PROGRESS="1",
                      OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")):
            papermill.execute_notebook(str(papers.notebook_path(slug)), str(executed), parameters=params,
                                       cwd=str(root / "notebooks"), kernel_name="python3", progress_bar=progress)
        produced = Path(tmp) / f"{slug}.json"
        if not produced.exists():
            raise RuntimeError(f"{slug}: the notebook finished without writing its results (claims.save())")
        _tag_injected_cell(executed)
        target = scoreboard.results_dir() / f"{slug}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        for artifact in sorted((Path(tmp) / "artifacts").glob("*")):   # saved arrays (e.g. for dashboards)
            (target.parent / "artifacts").mkdir(exist_ok=True)
            os.replace(artifact, target.parent / "artifacts" / artifact.name)
        shutil.move(str(produced), target)
    return json.loads(target.read_text())


def _tag_injected_cell(path: Path) -> None:
    """Hide papermill's injected-parameters cell in the book (tag it ``remove-cell``)."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]
    path.write_text(json.dumps(nb, indent=1))


def toc_notebooks(root: Path | None = None) -> list[str]:
    """Slugs of the notebooks listed in ``_toc.yml`` (entries ``notebooks/<slug>``), in order."""
    import yaml

    root = root or repo_root()
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            file = node.get("file")
            if isinstance(file, str) and file.startswith("notebooks/"):
                found.append(Path(file).stem)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((root / "_toc.yml").read_text()))
    return found


def execute_all(slugs: Sequence[str], profile: str = "ci", workers: int = 2) -> dict[str, int]:
    """Run ``l6kit run SLUG --profile P`` for every slug, ``workers`` at a time, each in its own process.

    Returns:
        slug -> exit code (0 = success).
    """
    def one(slug: str) -> int:
        cmd = [sys.executable, "-m", "l6kit.cli", "run", slug, "--profile", profile]
        return subprocess.run(cmd, cwd=repo_root()).returncode

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(zip(slugs, pool.map(one, slugs), strict=True))


def _vendor_mathjax(dest: Path) -> None:
    """Copy MathJax 3's combined TeX/MathML + CHTML component and the files it loads on demand (fonts, TeX
    extensions, menu) from the ``django-static-mathjax`` wheel, which ships MathJax 3.2 as plain files."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MathJax files not found: install the [book] extra (django-static-mathjax)")
    es5 = Path(spec.submodule_search_locations[0]) / "static" / "mathjax" / "es5"
    dest.mkdir(parents=True)
    shutil.copy(es5 / "tex-mml-chtml.js", dest / "tex-mml-chtml.js")
    for part in ("input", "output", "ui", "a11y", "adaptors"):
        shutil.copytree(es5 / part, dest / part)


def build_book(root: Path | None = None, *, strict: bool = True) -> Path:
    """Stage and build the HTML book from the executed notebooks; returns the path of ``index.html``.

    Raises:
        RuntimeError: a notebook in ``_toc.yml`` has no executed copy, or one without outputs, or the
            Jupyter Book build failed (warnings are errors when ``strict``).
    """
    import plotly

    root = root or repo_root()
    build = build_dir()
    stage = build / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(root / name, stage / name)
    shutil.copytree(root / "book", stage / "book")
    (stage / "notebooks").mkdir()
    for slug in toc_notebooks(root):
        executed = build / "executed" / f"{slug}.ipynb"
        if not executed.exists():
            raise RuntimeError(f"{slug}: no executed notebook at {executed}; run `l6kit run {slug}` first")
        nb = json.loads(executed.read_text())
        if not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"):
            raise RuntimeError(f"{slug}: the executed notebook has no outputs; refusing to render it")
        shutil.copy(executed, stage / "notebooks" / f"{slug}.ipynb")
    records = scoreboard.collect()
    (stage / "book" / "scoreboard.md").write_text(scoreboard.render(records))
    (root / "book" / "scoreboard.md").write_text(scoreboard.render(records))
    vendor = stage / "_vendor"
    vendor.mkdir()
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", vendor / "plotly.min.js")
    _vendor_mathjax(vendor / "mathjax")
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(stage), "--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    done = subprocess.run(cmd, cwd=stage)
    if done.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {done.returncode}); see the log above")
    html = build / "html"
    shutil.rmtree(html, ignore_errors=True)
    shutil.copytree(stage / "_build" / "html", html)
    return html / "index.html"
