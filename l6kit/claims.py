"""Claims: what a notebook measured, beside what the paper reported, and whether the claim held.

A claim *records*; it never raises. The results file ``results/<slug>.json`` is the one contract between
notebooks, the scoreboard page, the tests and anyone checking a run::

    {"slug", "profile", "seed", "runtime_s", "versions": {...}, "config": {...},
     "claims": [{"name", "metric", "paper", "measured", "comparator", "holds", "required_at", "note"}]}

``required_at`` lists the profiles at which the claim must hold; ``tests/test_notebooks.py`` asserts it for
``ci``. A claim that is only informative at ``ci`` (e.g. the paper's effect needs more data) has
``required_at=()`` and still shows on the scoreboard, holding or not.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

VERSIONED = ("l6kit", "torch", "numpy", "scipy", "scikit-learn", "pandas", "plotly")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One recorded comparison.

    Attributes:
        name: what is claimed, in words ("WinIT AUPRC > IG AUPRC").
        metric: the quantity compared ("AUPRC", "ID estimate").
        paper: the paper's value(s) or a short text ("13.8 (MNIST)"); ``None`` when the paper gives none.
        measured: this run's value(s): a float, or a list of floats for multi-value comparators.
        comparator: how ``measured`` is judged ("a > b", "|x - 5| <= 0.5", ...), for the reader.
        holds: whether the comparison held in this run.
        required_at: profiles at which the claim must hold.
        note: optional context (seeds, caveats).
    """

    name: str
    metric: str
    paper: Any
    measured: Any
    comparator: str
    holds: bool
    required_at: tuple[str, ...] = ("ci",)
    note: str = ""


def _num(x: Any) -> Any:
    """Convert numpy/torch scalars and arrays to plain Python numbers/lists for JSON."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return [_num(v) for v in x.tolist()]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, list | tuple):
        return [_num(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


class ClaimBook:
    """Collects a notebook's claims and writes ``results/<slug>.json``.

    Args:
        slug: the paper's slug (``"uomh"``).
        cfg: the run's frozen config (its ``profile`` and ``seed`` are recorded; all fields go to ``config``).

    Example:
        >>> book = ClaimBook("uomh", cfg)
        >>> book.greater("spread > 4 x noise", spread, 4 * noise, metric="ID", paper="yes")
        >>> book.save()
    """

    def __init__(self, slug: str, cfg: Any):
        self.slug = slug
        self.cfg = cfg
        self.claims: list[Claim] = []
        self._t0 = time.perf_counter()

    # -- comparators -------------------------------------------------------------------------------------
    def record(self, name: str, *, metric: str, measured: Any, comparator: str, holds: bool,
               paper: Any = None, required_at: Sequence[str] = ("ci",), note: str = "") -> Claim:
        """Record a claim whose truth the caller computed. Returns the :class:`Claim`."""
        claim = Claim(name, metric, _num(paper), _num(measured), comparator, bool(holds),
                      tuple(required_at), note)
        self.claims = [c for c in self.claims if c.name != name] + [claim]
        return claim

    def greater(self, name: str, a: float, b: float, *, metric: str, factor: float = 1.0,
                paper: Any = None, required_at: Sequence[str] = ("ci",), note: str = "") -> Claim:
        """Claim ``a > factor * b`` (e.g. ``factor=2`` for "more than twice")."""
        a, b = float(a), float(b)
        comparator = "a > b" if factor == 1.0 else f"a > {factor:g} x b"
        return self.record(name, metric=metric, measured=[a, b], comparator=comparator,
                           holds=a > factor * b, paper=paper, required_at=required_at, note=note)

    def within(self, name: str, measured: float, target: float, *, metric: str, rel: float | None = None,
               abs_tol: float | None = None, paper: Any = None, required_at: Sequence[str] = ("ci",),
               note: str = "") -> Claim:
        """Claim ``|measured - target| <= tol`` with ``tol = rel * |target|`` or ``abs_tol``."""
        if (rel is None) == (abs_tol is None):
            raise ValueError("give exactly one of rel= or abs_tol=")
        tol = rel * abs(target) if rel is not None else abs_tol
        comparator = f"|x - {target:g}| <= {tol:g}" + (f" ({rel:.0%})" if rel is not None else "")
        return self.record(name, metric=metric, measured=float(measured), comparator=comparator,
                           holds=abs(float(measured) - target) <= tol, paper=paper,
                           required_at=required_at, note=note)

    def ordered(self, name: str, values: Sequence[float], labels: Sequence[str], *, metric: str,
                paper: Any = None, required_at: Sequence[str] = ("ci",), note: str = "") -> Claim:
        """Claim ``values[0] > values[1] > ...`` (strictly decreasing, in the order of ``labels``)."""
        vals = [float(v) for v in values]
        holds = all(x > y for x, y in zip(vals, vals[1:], strict=False))
        return self.record(name, metric=metric, measured=vals, comparator=" > ".join(labels),
                           holds=holds, paper=paper, required_at=required_at, note=note)

    # -- output ------------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The results record (what :meth:`save` writes)."""
        cfg = dataclasses.asdict(self.cfg) if dataclasses.is_dataclass(self.cfg) else dict(self.cfg)
        return {
            "slug": self.slug,
            "profile": cfg.get("profile"),
            "seed": cfg.get("seed"),
            "runtime_s": round(time.perf_counter() - self._t0, 2),
            "versions": versions(),
            "config": _num({k: v for k, v in cfg.items()}),
            "claims": [dataclasses.asdict(c) | {"required_at": list(c.required_at)} for c in self.claims],
        }

    def table(self):
        """The claims as a pandas DataFrame indexed by claim (metric, paper, this run, comparator, profile, holds,
        required at) for the "Result vs paper" section."""
        import pandas as pd

        rows = [{"claim": c.name, "metric": c.metric, "paper": _fmt(c.paper), "this run": _fmt(c.measured),
                 "comparator": c.comparator, "profile": getattr(self.cfg, "profile", ""),
                 "holds": "yes" if c.holds else "NO",
                 "required at": ", ".join(c.required_at) or "(informative)"} for c in self.claims]
        return pd.DataFrame(rows).set_index("claim")

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the results record atomically to ``path`` (default ``results_dir() / f"{slug}.json"``)."""
        target = Path(path) if path is not None else results_dir() / f"{self.slug}.json"
        write_json_atomic(target, self.summary())
        return target


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, list):
        return ", ".join(_fmt(v) for v in x)
    return str(x)


def results_dir() -> Path:
    """Where results files go: ``$L6KIT_RESULTS``, else ``<checkout>/results`` when l6kit runs from a
    checkout (a ``_toc.yml`` beside the package), else ``./results``."""
    env = os.environ.get("L6KIT_RESULTS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "_toc.yml").exists():
        return checkout / "results"
    return Path("results")


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` via a temporary file in the same folder and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_results(folder: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Read every ``*.json`` results record in ``folder`` (default :func:`results_dir`), sorted by slug."""
    folder = Path(folder) if folder is not None else results_dir()
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def versions() -> dict[str, str]:
    """Versions of Python and the main libraries, for the results record."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
