"""WinIT attribution dashboard: per-series saliency maps of WinIT and its baselines against the ground truth.

Choose the simulated data set (and the Spike delay), a held-out series, the method, a second method to
compare and WinIT's window ``W``; see each attribution map (features x time) beside the ground-truth salient
cells and the input series, with the series' AUPRC. The attributions come from the notebook's saved run
(``results/artifacts/winit.npz``) when it matches the choice, else they are computed at the ``ci`` profile,
one method at a time, and cached. The logic lives in plain functions; :class:`WinITDashboard` only turns its
parameters into calls and figures.

Serve it with ``panel serve l6kit/dashboards/winit.py --address 127.0.0.1``.

References:
    K. K. Leung, C. Rooke, J. Smith, S. Zuberi, M. Volkovs. Temporal Dependencies in Feature Importance for
    Time Series Prediction. ICLR 2023, Sec. 4 and Fig. 3.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param
import plotly.graph_objects as go

from l6kit import claims, viz
from l6kit.attribution import figures
from l6kit.papers import winit

TEMPLATE = viz.TEMPLATE  # the book's one look
DATASETS = {"Spike": "spike", "State": "state", "Switch-feature": "switch-feature"}
SOURCES = {"saved run if it matches, else ci": "auto", "saved run only": "saved", "compute at ci": "ci"}
CI_OVERRIDES = dict(state_size=(500, 50), switch_size=(500, 50))   # State and Switch-feature in ~15 s
WINDOWED = ("winit", "winit-data")                                  # methods that depend on the window
NONE = "none"
MARGIN = {"t": 110, "b": 50, "l": 60, "r": 20}                     # room for the title and a legend above


@functools.lru_cache(maxsize=1)
def dashboard_config() -> winit.Config:
    """The ``ci`` configuration the dashboard computes with (smaller State and Switch-feature sets)."""
    return winit.config("ci", **CI_OVERRIDES)


def artifact_path() -> Path:
    """Where ``notebooks/winit.ipynb`` saves its attributions: ``<results_dir>/artifacts/winit.npz``."""
    return claims.results_dir() / "artifacts" / "winit.npz"


@dataclasses.dataclass(frozen=True)
class View:
    """The attributions the dashboard shows for one choice of data set, delay, methods and window.

    Attributes:
        source: ``"saved run (<path>)"`` or ``"computed at ci"``.
        task, delay, window: what was explained (delay 0 except for Spike).
        model_auroc: per-step AUROC of the explained GRU on the held-out series.
        x: inputs, shape ``(N, F, T)``; y, prob: labels and ``p(y_t = 1)``, shape ``(N, T)``.
        truth: ground-truth salient cells, shape ``(N, F, T)`` bool.
        attributions: method -> ``(N, F, T)``; windows: WinIT method -> ``(N, F, T, W)``.
        per_sample_auprc: method -> ``(N,)`` (NaN for series without salient cells); scores: method ->
            ``{"auroc", "auprc", "ap"}`` over all series.
    """

    source: str
    task: str
    delay: int
    window: int
    model_auroc: float
    x: np.ndarray
    y: np.ndarray
    prob: np.ndarray
    truth: np.ndarray
    attributions: dict[str, np.ndarray]
    windows: dict[str, np.ndarray]
    per_sample_auprc: dict[str, np.ndarray]
    scores: dict[str, dict[str, float]]


@functools.lru_cache(maxsize=4)
def _read_saved(path: str, _mtime_ns: int) -> dict[str, Any]:
    return winit.load_attributions(path)


def load_saved(path: str | Path | None = None) -> dict[str, Any] | None:
    """The saved result at ``path`` (default :func:`artifact_path`), cached until the file changes; None if absent."""
    path = Path(path or artifact_path())
    return _read_saved(str(path), path.stat().st_mtime_ns) if path.is_file() else None


_READY: set[tuple] = set()         # keys of _explained already computed (so the view knows it will be quick)


@functools.lru_cache(maxsize=64)
def _explained(dataset: str, delay: int, method: str, window: int | None) -> dict[str, Any]:
    out = winit.compute_attributions(dashboard_config(), dataset, delay, (method,), window)
    _READY.add((dataset, delay, method, window))
    return out


def _key(dataset: str, delay: int, method: str, window: int) -> tuple:
    return dataset, delay if dataset == "spike" else 0, method, window if method in WINDOWED else None


def series_length(dataset: str) -> int:
    """Steps per series of ``dataset`` at the dashboard's configuration."""
    cfg = dashboard_config()
    return {"spike": cfg.length, "state": cfg.state_size[1], "switch-feature": cfg.switch_size[1]}[dataset]


def _validate(dataset: str, delay: int, window: int, length: int) -> None:
    horizon = dashboard_config().generator_horizon
    if dataset == "spike" and not 0 <= delay < length:
        raise ValueError(f"delay = {delay}: the label must follow the spike within the series, so 0 <= delay "
                         f"<= {length - 1}.")
    if window < 1:
        raise ValueError(f"window = {window}: WinIT needs a window of at least 1 step.")
    if window > length:
        raise ValueError(f"window = {window} is larger than the series ({length} steps).")
    if window > horizon:
        raise ValueError(f"window = {window}: the counterfactual generator forecasts at most {horizon} steps, "
                         f"so W <= {horizon}.")


def choose_source(dataset: str, delay: int, methods: tuple[str, ...], window: int, source: str = "auto",
                  artifact: str | Path | None = None) -> dict[str, Any] | None:
    """Check a choice and pick where its attributions come from.

    Args:
        dataset: one of ``DATASETS``' values; delay: the Spike delay (ignored elsewhere).
        methods: method names (see ``winit.METHODS``); window: WinIT's window ``W``.
        source: ``"auto"`` (the saved run when it matches, else ci), ``"saved"`` or ``"ci"``.
        artifact: the saved ``.npz`` (default :func:`artifact_path`).

    Returns:
        The saved result to show, or None to compute at ci.

    Raises:
        ValueError: unknown data set, method or source; a delay or window that does not fit the series;
        ``source="saved"`` with no saved run that matches.
    """
    if dataset not in DATASETS.values():
        raise ValueError(f"Unknown data set {dataset!r}; choose one of {', '.join(DATASETS.values())}.")
    if source not in SOURCES.values():
        raise ValueError(f"Unknown source {source!r}; choose one of {', '.join(SOURCES.values())}.")
    for m in methods:
        if m not in winit.METHODS:
            raise ValueError(f"Unknown method {m!r}; choose one of {', '.join(winit.METHODS)}.")
    saved = load_saved(artifact) if source != "ci" else None
    if saved is not None:
        wanted = {"task": dataset, "delay": delay if dataset == "spike" else 0}
        if any(m in WINDOWED for m in methods):
            wanted["window"] = window
        got = {k: saved[k] for k in wanted}
        missing = [m for m in methods if m not in saved["attributions"]]
        if got == wanted and not missing:
            _validate(dataset, delay, window, saved["x"].shape[-1])
            return saved
        if source == "saved":
            why = f"it lacks {', '.join(missing)}" if got == wanted else f"it holds {got}, not {wanted}"
            raise ValueError(f"The saved run does not fit this choice: {why}. Choose source 'compute at ci'.")
    elif source == "saved":
        raise ValueError(f"No saved attributions at {artifact or artifact_path()}: run notebooks/winit.ipynb "
                         f"or choose source 'compute at ci'.")
    _validate(dataset, delay, window, series_length(dataset))
    return None


def pending(dataset: str, delay: int, methods: tuple[str, ...], window: int, source: str = "auto",
            artifact: str | Path | None = None) -> bool:
    """Whether :func:`view` must still train or explain (seconds) rather than read a cache or the saved run."""
    return (choose_source(dataset, delay, methods, window, source, artifact) is None
            and any(_key(dataset, delay, m, window) not in _READY for m in methods))


def view(dataset: str, delay: int, methods: tuple[str, ...], window: int, source: str = "auto",
         artifact: str | Path | None = None) -> View:
    """The attributions of ``methods`` for one choice (arguments and errors as in :func:`choose_source`).

    Computing at ci trains the GRU and the generator once per (data set, delay) and explains only the
    chosen methods; everything is cached.
    """
    saved = choose_source(dataset, delay, methods, window, source, artifact)
    if saved is not None:
        parts = {m: saved for m in methods}
        origin = f"saved run ({Path(artifact or artifact_path()).name})"
    else:
        parts = {m: _explained(*_key(dataset, delay, m, window)) for m in methods}
        origin = "computed at ci"
    first = next(iter(parts.values()))

    def pick(key: str) -> dict:
        return {m: r[key][m] for m, r in parts.items() if m in r[key]}

    return View(origin, str(first["task"]), int(first["delay"]), int(window), float(first["model_auroc"]),
                first["x"], first["y"], first["prob"], np.asarray(first["truth"], dtype=bool),
                pick("attributions"), pick("windows"), pick("per_sample_auprc"), pick("scores"))


def check_sample(v: View, sample: int) -> None:
    """Raise ``ValueError`` unless ``sample`` indexes one of the ``N`` explained series of ``v``."""
    if not 0 <= sample < len(v.x):
        raise ValueError(f"sample = {sample}: there are {len(v.x)} held-out series, numbered 0 to {len(v.x) - 1}.")


def sample_auprc(v: View, method: str, sample: int) -> float:
    """AUPRC of ``method``'s map of series ``sample`` against its salient cells (NaN if it has none)."""
    return float(v.per_sample_auprc[method][sample]) if method in v.per_sample_auprc else float("nan")


def _fmt(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "n/a"


def heatmaps_figure(v: View, sample: int, methods: tuple[str, ...]) -> go.Figure:
    """Ground truth and each method's |attribution| of series ``sample``, features x time, one panel each."""
    maps = {"ground truth (salient cells)": v.truth[sample]}
    maps |= {f"{winit.LABELS[m]}: AUPRC {_fmt(sample_auprc(v, m, sample))}": v.attributions[m][sample]
             for m in methods}
    fig = figures.saliency_heatmaps(maps, cols=1, title="|attribution|, scaled to each map's maximum")
    fig.update_xaxes(title_text=None).update_xaxes(title_text="time step", row=len(maps), col=1)
    return fig.update_layout(template=TEMPLATE, height=560, margin=MARGIN, title={"y": 0.98, "yanchor": "top"})


def series_figure(v: View, sample: int) -> go.Figure:
    """The input series ``sample`` (features, salient cells, label and the GRU's probability)."""
    fig = figures.series_panel(v.x[sample], v.y[sample], v.prob[sample], v.truth[sample],
                               title=f"Input series {sample}")
    fig.update_xaxes(range=[-0.5, v.x.shape[-1] - 0.5])               # aligned with the heat maps' cells
    return fig.update_layout(template=TEMPLATE, height=560, margin=MARGIN, title={"y": 0.98, "yanchor": "top"},
                             legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"})


def window_figure(v: View, sample: int, method: str) -> go.Figure | None:
    """WinIT's per-window scores ``I(t - n, t)`` of the most salient feature of series ``sample`` (else None)."""
    if method not in v.windows:
        return None
    truth, attr = v.truth[sample], np.abs(v.attributions[method][sample])       # (F, T) each
    f = int(np.argmax(truth.sum(-1) if truth.any() else attr.sum(-1)))
    fig = figures.window_matrix(v.windows[method][sample, f],
                                title=f"{winit.LABELS[method]}: importance of x(t - n) for the prediction at t, "
                                      f"feature {f}")
    return fig.update_layout(template=TEMPLATE, height=300, margin={"t": 60, "b": 50, "l": 60, "r": 20})


class WinITDashboard(pn.viewable.Viewer):
    """WinIT and baseline attributions of single series (Leung et al. 2023), explored with a few controls."""

    dataset = param.Selector(default="spike", objects=DATASETS, label="Data set", doc="Simulated task")
    delay = param.Integer(default=2, label="Delay (Spike)", doc="Steps from the spike to the label switch")
    sample = param.Integer(default=0, label="Sample (held-out series)", doc="Index of the series shown")
    method = param.String(default="winit", label="Method", doc="Attribution method (see winit.METHODS)")
    compare = param.String(default="afo", label="Compare with", doc="A second method, or 'none'")
    window = param.Integer(default=5, label="Window W (WinIT)", doc="WinIT's look-back window")
    source = param.Selector(default="auto", objects=SOURCES, label="Attributions", doc="Saved run or ci")
    artifact = param.String(default="", precedence=-1, doc="Saved .npz (empty: results/artifacts/winit.npz)")

    def __init__(self, **params):
        super().__init__(**params)
        self._pick_sample = "sample" not in params      # pick an illustrative series once the data are there
        self._shown = "Loading…"                         # the status of the figures on show
        saved = load_saved(self.artifact or None) if self.source != "ci" else None
        with param.discard_events(self):
            if saved is not None and saved["task"] in DATASETS.values():     # start on what the notebook saved
                self.dataset, self.delay, self.window = saved["task"], int(saved["delay"]), int(saved["window"])
                self.param.update({k: v for k, v in params.items() if k in ("dataset", "delay", "window")})
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.status = pn.pane.Markdown(self._shown, sizing_mode="stretch_width", styles={"font-size": "15px"})
        self.series = pn.pane.Plotly(None, sizing_mode="stretch_width", min_height=560)
        self.heatmaps = pn.pane.Plotly(None, sizing_mode="stretch_width", min_height=560)
        self.windows = pn.pane.Plotly(None, sizing_mode="stretch_width", min_height=300, visible=False)
        self.param.watch(self._refresh, ["dataset", "delay", "sample", "method", "compare", "window", "source",
                                         "artifact"])
        pn.state.onload(self._refresh)       # served: the page shows at once, then "computing…"

    def _methods(self) -> tuple[str, ...]:
        return (self.method,) if self.compare in (NONE, self.method) else (self.method, self.compare)

    def _refresh(self, *_events) -> None:
        args = (self.dataset, self.delay, self._methods(), self.window, self.source, self.artifact or None)
        try:
            slow = pending(*args)
        except ValueError as exc:
            return self._fail(exc)
        doc = pn.state.curdoc
        if not (slow and doc and doc.session_context):
            return self._show(args)
        self.status.object = (f"**Computing…** training the GRU and the counterfactual generator on "
                              f"{self.dataset} and explaining with {', '.join(args[2])} at ci (seconds).")
        for pane in (self.series, self.heatmaps, self.windows):
            pane.loading = True
        pn.state.execute(functools.partial(self._show, args), schedule=True)   # after the status is sent

    def _fail(self, exc: ValueError) -> None:
        self.alert.object = f"**Cannot show this choice:** {exc}"
        self.alert.visible = True
        self.status.object = self._shown          # the figures still show the last valid choice

    def _show(self, args: tuple) -> None:
        try:
            v = view(*args)
            if self._pick_sample:
                self._pick_sample = False
                with param.discard_events(self):
                    self.sample = winit.example_index({"truth": v.truth})
            check_sample(v, self.sample)
        except ValueError as exc:
            return self._fail(exc)
        finally:
            for pane in (self.series, self.heatmaps, self.windows):
                pane.loading = False
        self.alert.visible = False
        i, methods = self.sample, args[2]
        self.series.object = series_figure(v, i)
        self.heatmaps.object = heatmaps_figure(v, i, methods)
        self.windows.object = window_figure(v, i, self.method)
        self.windows.visible = self.windows.object is not None
        name = {v_: k for k, v_ in DATASETS.items()}[v.task] + (f", delay {v.delay}" if v.task == "spike" else "")
        mine = " · ".join(f"{winit.LABELS[m]} **{_fmt(sample_auprc(v, m, i))}**" for m in methods)
        if not v.truth[i].any():
            mine += " (n/a: this series has no salient cell)"
        pooled = " · ".join(f"{winit.LABELS[m]} {_fmt(v.scores.get(m, {}).get('auprc', np.nan))}" for m in methods)
        self.status.object = self._shown = (
            f"**{name}**, series {i} of {len(v.x)}, W = {v.window}; GRU AUROC {v.model_auroc:.3f}; {v.source}  \n"
            f"AUPRC of this series: {mine}  \nAUPRC over all {len(v.x)} series: {pooled}")

    def __panel__(self) -> pn.viewable.Viewable:
        labels = {winit.LABELS[m]: m for m in winit.METHODS}
        delay = pn.widgets.IntInput.from_param(self.param.delay, start=0, width=240,
                                               disabled=self.param.dataset.rx() != "spike")
        controls = [pn.widgets.Select.from_param(self.param.dataset, width=240), delay,
                    pn.widgets.IntInput.from_param(self.param.sample, start=0, width=240),
                    pn.widgets.Select.from_param(self.param.method, options=labels, width=240),
                    pn.widgets.Select.from_param(self.param.compare, options={NONE: NONE} | labels, width=240),
                    pn.widgets.IntInput.from_param(self.param.window, start=1, width=240),
                    pn.widgets.Select.from_param(self.param.source, width=240)]
        intro = pn.pane.Markdown(
            "### WinIT attributions\nFeature importance over time (Leung et al., ICLR 2023): each map beside "
            "the ground-truth salient cells; AUPRC of the series' map against them (first step dropped).",
            width=260)
        return pn.Row(pn.Column(intro, *controls, width=270),
                      pn.Column(self.status, self.alert, pn.Row(self.series, self.heatmaps), self.windows,
                                sizing_mode="stretch_width"), sizing_mode="stretch_width")


def app() -> pn.viewable.Viewable:
    """A new :class:`WinITDashboard` (what ``l6kit dashboard winit`` serves)."""
    return WinITDashboard()


if pn.state.served and __name__ != "l6kit.dashboards.winit":
    # `panel serve <this file>` re-executes the file per session; use the installed module so the caches persist.
    from l6kit.dashboards import winit as _module

    _module.app().servable(title="WinIT attributions")
