"""Manifold-dimension dashboard: the MLE intrinsic dimension of each class, its noise and its extremes.

The logic (load a data set, per-class estimates with bootstrap standard deviations, per-point local
dimensions, the points with the lowest and highest local dimension) lives in plain, cached functions; the
:class:`ManifoldDashboard` Viewer only turns its parameters into calls and figures.

Serve it with ``panel serve l6kit/dashboards/manifold.py --address 127.0.0.1``.

References:
    B. L. Brown, A. L. Caterini, B. L. Ross, J. C. Cresswell, G. Loaiza-Ganem. Verifying the Union of
    Manifolds Hypothesis for Image Data. ICLR 2023, Sec. 3 and Fig. 2.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import panel as pn
import param
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from l6kit import data, viz
from l6kit.manifold import MLEIntrinsicDimension, per_class_dimension, sphere, union

TEMPLATE = viz.TEMPLATE  # the book's one look
UNION_DIMS = (2, 5, 9)            # intrinsic dimensions of the generated union of spheres
UNION_POINTS, UNION_AMBIENT = 600, 64
PAPER_SETS = ("mnist", "fashion-mnist", "cifar10", "svhn")
PER_CLASS = 1000                  # subsample of the real data sets, per class
N_EXTREMES = 8
UNION = "union of spheres"


@dataclasses.dataclass(frozen=True)
class DataSet:
    """A data set as the dashboard sees it.

    Attributes:
        name: its name in the dataset selector.
        X: points, shape ``(n, D)``, float64.
        labels: class index of each point, shape ``(n,)``.
        classes: class names, indexed by label.
        distinct: number of distinct points of each class, shape ``(n_classes,)``.
        images: the images, shape ``(n, H, W)`` or ``(n, H, W, 3)`` uint8, or ``None`` for non-image data.
    """

    name: str
    X: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    distinct: tuple[int, ...]
    images: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class LocalDimensions:
    """Local estimates of one class (or of the whole data set, fitted as one).

    Attributes:
        index: row of ``DataSet.X`` of each distinct point, shape ``(m,)``.
        local: local dimension ``m_k(x)`` of each, shape ``(m,)``.
        dimension: the (MacKay–Ghahramani) estimate of the class.
        boot_std: its bootstrap standard deviation (NaN when ``n_boot < 2``).
    """

    index: np.ndarray
    local: np.ndarray
    dimension: float
    boot_std: float


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)           # cached results are shared: make them read-only
    return a


def _make(name: str, X: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], images=None) -> DataSet:
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    distinct = tuple(len(np.unique(X[labels == c], axis=0)) for c in range(len(classes)))
    return DataSet(name, _frozen(X), _frozen(np.asarray(labels)), classes, distinct,
                   None if images is None else _frozen(images))


@functools.lru_cache(maxsize=8)
def load_dataset(name: str) -> DataSet:
    """Load one of the dashboard's data sets (cached).

    ``digits`` and the union of spheres are always there; the paper's image sets are read from the local
    cache only (never downloaded) and subsampled to ``PER_CLASS`` images per class.

    Args:
        name: ``"digits"``, ``UNION`` or one of ``PAPER_SETS``.

    Returns:
        The :class:`DataSet`; its arrays are read-only (the result is shared through the cache).

    Raises:
        ValueError: unknown name. ``l6kit.data.DataError``: a paper set is not in the cache.
    """
    if name == UNION:
        parts = [sphere(UNION_POINTS, d, UNION_AMBIENT, seed=i + 1) for i, d in enumerate(UNION_DIMS)]
        X, labels = union(parts, spacing=3.0, seed=0)                        # (3 * 600, 64), (3 * 600,)
        return _make(name, X, labels, tuple(f"{d}-sphere" for d in UNION_DIMS))
    if name == "digits":
        images = data.load("digits", "ci")
    elif name in PAPER_SETS:
        images = data.load(name, "paper", download=False).subsample(PER_CLASS, seed=0)
    else:
        raise ValueError(f"unknown data set {name!r}; known: digits, {UNION}, {', '.join(PAPER_SETS)}")
    return _make(name, images.flat(), images.labels, tuple(images.classes), images.images)


@functools.lru_cache(maxsize=1)
def available_datasets() -> tuple[str, ...]:
    """``digits``, the union of spheres, and each paper image set already in the local cache."""
    found = []
    for name in PAPER_SETS:
        try:
            load_dataset(name)
        except (data.DataError, ValueError):    # not in the cache, or not registered in this version
            continue
        found.append(name)
    return ("digits", UNION, *found)


def validate(ds: DataSet, k: int, klass: str = "all") -> None:
    """Raise ``ValueError`` with a readable message unless ``k`` and ``klass`` can be estimated on ``ds``.

    Args:
        ds: the data set.
        k: neighbours per point; needs ``3 <= k < distinct points`` of the class (of every class for "all").
        klass: a class name or ``"all"``.
    """
    if klass != "all" and klass not in ds.classes:
        raise ValueError(f"Unknown class {klass!r} in {ds.name}; choose 'all' or one of {', '.join(ds.classes)}.")
    if int(k) != k or k < 3:
        raise ValueError(f"k = {k}: the MLE needs a whole number of neighbours k >= 3.")
    checked = ([ds.classes.index(klass)] if klass != "all" else []) + [int(np.argmin(ds.distinct))]
    for c in checked:       # the selected class first, then the smallest (every class needs a bar)
        if k >= ds.distinct[c]:
            raise ValueError(f"k = {k} is too large: class '{ds.classes[c]}' of {ds.name} has only "
                             f"{ds.distinct[c]} distinct points, so k must be at most {ds.distinct[c] - 1}.")


def class_dimensions(name: str, k: int, n_boot: int = 20) -> dict[str, dict[str, float]]:
    """Per-class estimates with bootstrap std (:func:`per_class_dimension`), keyed by class name (cached).

    Args:
        name: a data set name (see :func:`load_dataset`).
        k: neighbours per point.
        n_boot: bootstrap resamples per class (0 or 1: ``boot_std`` is NaN).

    Returns:
        class name -> ``{"dimension", "boot_std", "n"}``, in class order.

    Raises:
        ValueError: ``k`` too small or too large for a class or for its bootstrap resamples.
    """
    return {c: dict(v) for c, v in _class_dimensions(name, k, n_boot).items()}     # copies of the cached


@functools.lru_cache(maxsize=64)
def _class_dimensions(name: str, k: int, n_boot: int) -> dict[str, dict[str, float]]:
    ds = load_dataset(name)
    validate(ds, k)
    try:
        est = per_class_dimension(ds.X, ds.labels, k, n_boot=n_boot)
    except ValueError as exc:    # a bootstrap resample keeps only ~63 % of the distinct points
        raise ValueError(f"k = {k} is too large for the bootstrap resamples of {name}: {exc}. "
                         f"Lower k or set n_boot = 0.") from exc
    return {ds.classes[label]: values for label, values in est.items()}


@functools.lru_cache(maxsize=64)
def local_dimensions(name: str, k: int, klass: str = "all", n_boot: int = 20) -> LocalDimensions:
    """Fit the MLE on one class (``"all"``: the whole data set as one) and keep the per-point estimates (cached).

    Args:
        name: a data set name (see :func:`load_dataset`).
        k: neighbours per point.
        klass: a class name, or ``"all"``.
        n_boot: bootstrap resamples for ``boot_std``.

    Returns:
        The :class:`LocalDimensions` (read-only arrays of shape ``(m,)``, m distinct points).

    Raises:
        ValueError: unknown class, or ``k`` too small or too large.
    """
    ds = load_dataset(name)
    validate(ds, k, klass)
    rows = np.arange(len(ds.X)) if klass == "all" else np.flatnonzero(ds.labels == ds.classes.index(klass))
    est = MLEIntrinsicDimension(k).fit(ds.X[rows])
    if klass == "all":
        boot = est.bootstrap(ds.X, n_boot, seed=0) if n_boot > 1 else np.array([np.nan, np.nan])
        std = float(np.std(boot, ddof=1))
    else:
        std = class_dimensions(name, k, n_boot)[klass]["boot_std"]
    return LocalDimensions(_frozen(rows[est.index_]), _frozen(est.local_dimension_), est.dimension_, std)


def extremes(local: LocalDimensions, n: int = N_EXTREMES) -> tuple[np.ndarray, np.ndarray]:
    """The points with the most extreme local dimensions.

    Args:
        local: local estimates (see :func:`local_dimensions`).
        n: how many of each.

    Returns:
        ``(lowest, highest)``: rows of ``DataSet.X``, each shape ``(n,)``; lowest ascending, highest descending.
    """
    order = np.argsort(local.local, kind="stable")                  # (m,)
    return local.index[order[:n]], local.index[order[::-1][:n]]


def _styled(fig: go.Figure, title: str, height: int, **layout) -> go.Figure:
    """The one look of the dashboard's figures: template, title, legend above the plot, margins."""
    fig.update_layout({"template": TEMPLATE, "title": title, "height": height,
                       "margin": {"t": 80, "b": 50, "l": 60, "r": 20},
                       "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"}} | layout)
    return fig


def _dashed(fig: go.Figure, name: str, colour: str, **where) -> None:
    """A dashed reference line (``x=`` vertical, ``y=`` horizontal) with a legend entry."""
    (fig.add_vline if "x" in where else fig.add_hline)(**where, line_dash="dash", line_color=colour)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name,
                             line={"dash": "dash", "color": colour}))


def bars_figure(per_class: dict[str, dict[str, float]], overall: float, klass: str) -> go.Figure:
    """Per-class estimates with bootstrap error bars, the whole-data-set estimate as a dashed line.

    Args:
        per_class: output of :func:`class_dimensions`.
        overall: the whole-data-set estimate.
        klass: the class to highlight (``"all"``: none).
    """
    names, values = list(per_class), list(per_class.values())
    fig = go.Figure(go.Bar(x=names, y=[v["dimension"] for v in values], name="class estimate ± std",
                           marker_color=["#d62728" if c == klass else "#1f77b4" for c in names],
                           error_y={"type": "data", "array": [v["boot_std"] for v in values]},
                           hovertemplate="class %{x}<br>ID %{y:.2f}<extra></extra>"))
    _dashed(fig, f"whole data set: {overall:.2f}", "#444", y=overall)
    return _styled(fig, "Intrinsic dimension per class", 360, xaxis_title="class",
                   yaxis_title="estimated dimension", xaxis_type="category")


def histogram_figure(local: LocalDimensions, klass: str) -> go.Figure:
    """Histogram of the per-point local dimensions, with the class estimate as a dashed line.

    Args:
        local: local estimates of the class (see :func:`local_dimensions`).
        klass: the class name, for the title.
    """
    fig = go.Figure(go.Histogram(x=local.local, nbinsx=40, marker_color="#1f77b4", name="points"))
    _dashed(fig, f"estimate: {local.dimension:.2f}", "#d62728", x=local.dimension)
    return _styled(fig, f"Local dimension of each point (class: {klass})", 360,
                   xaxis_title="local dimension m_k(x)", yaxis_title="points", bargap=0.05)


def extremes_figure(ds: DataSet, local: LocalDimensions, klass: str) -> go.Figure:
    """Images with the lowest (top row) and highest (bottom row) local dimension; a PCA scatter otherwise.

    Args:
        ds: the data set (``ds.images is None``: non-image data, drawn as a 2-D PCA scatter coloured by
            local dimension with the extremes marked).
        local: local estimates of the class (see :func:`local_dimensions`).
        klass: the class name, for the title.
    """
    low, high = extremes(local)
    if ds.images is None:
        return _pca_figure(ds, local, low, high, klass)
    value = dict(zip(local.index.tolist(), local.local.tolist(), strict=True))
    fig = make_subplots(rows=2, cols=N_EXTREMES, subplot_titles=[f"{value[int(i)]:.1f}" for r in (low, high)
                                                                 for i in r],
                        vertical_spacing=0.12, horizontal_spacing=0.01)
    for r, idx in enumerate((low, high), start=1):
        for c, i in enumerate(idx, start=1):
            img = ds.images[i]                                        # (H, W) grey or (H, W, 3) colour
            fig.add_trace(go.Image(z=img) if img.ndim == 3 else go.Heatmap(
                z=img[::-1], colorscale="gray_r", showscale=False, hoverinfo="skip"), row=r, col=c)
            n = (r - 1) * N_EXTREMES + c
            fig.update_yaxes(scaleanchor="x" if n == 1 else f"x{n}", row=r, col=c)   # square pixels
    fig.update_xaxes(visible=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(title_text="lowest", row=1, col=1)
    fig.update_yaxes(title_text="highest", row=2, col=1)
    fig.update_annotations(font_size=11)
    title = f"{N_EXTREMES} lowest (top) and highest (bottom) local dimensions, class: {klass}"
    return _styled(fig, title, 330, margin={"t": 70, "b": 10, "l": 60, "r": 10})


def _pca_figure(ds: DataSet, local: LocalDimensions, low, high, klass: str) -> go.Figure:
    X = ds.X[local.index] - ds.X[local.index].mean(axis=0)           # (m, D), centred
    Z = X @ np.linalg.svd(X, full_matrices=False)[2][:2].T            # (m, 2): the first two components
    fig = go.Figure(go.Scatter(x=Z[:, 0], y=Z[:, 1], mode="markers", name="points", marker={
        "color": local.local, "colorscale": "Viridis", "size": 5, "colorbar": {"title": {"text": "local dim."}},
        "cmin": np.percentile(local.local, 2), "cmax": np.percentile(local.local, 98)}))
    where = {int(i): j for j, i in enumerate(local.index)}
    for idx, label, symbol in ((low, "lowest", "circle-open"), (high, "highest", "x-thin-open")):
        j = [where[int(i)] for i in idx]
        fig.add_trace(go.Scatter(x=Z[j, 0], y=Z[j, 1], mode="markers", name=f"{N_EXTREMES} {label}", marker={
            "symbol": symbol, "size": 12, "color": "#d62728", "line": {"width": 2, "color": "#d62728"}}))
    return _styled(fig, f"2-D PCA coloured by local dimension (class: {klass})", 420,
                   xaxis_title="PC 1", yaxis_title="PC 2")


class ManifoldDashboard(pn.viewable.Viewer):
    """Per-class intrinsic dimension (Brown et al. 2023) of a data set, explored with a few controls."""

    dataset = param.Selector(default="digits", objects=["digits", UNION], doc="Data set")
    klass = param.Selector(default="all", objects=["all"], label="Class", doc="Class to inspect")
    k = param.Integer(default=10, bounds=(1, None), softbounds=(3, 50), label="k (neighbours)",
                      doc="Neighbours per point in the MLE")
    n_boot = param.Integer(default=20, bounds=(0, 1000), softbounds=(0, 100), label="Bootstrap resamples",
                           doc="Bootstrap resamples for the error bars")

    def __init__(self, **params):
        super().__init__(**params)
        self.param.dataset.objects = list(available_datasets())
        self._set_classes()
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.status = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"font-size": "15px"})
        self.bars = pn.pane.Plotly(None, sizing_mode="stretch_width", min_height=360)
        self.histogram = pn.pane.Plotly(None, sizing_mode="stretch_width", min_height=360)
        self.extremes = pn.pane.Plotly(None, sizing_mode="stretch_width", min_height=330)
        self.param.watch(self._on_dataset, "dataset")
        self.param.watch(self._refresh, ["k", "klass", "n_boot"])
        self._refresh()

    def _set_classes(self) -> None:
        self.param.klass.objects = ["all", *load_dataset(self.dataset).classes]

    def _on_dataset(self, *_events) -> None:
        self._set_classes()
        if self.klass == "all":
            self._refresh()
        else:
            self.klass = "all"                     # triggers _refresh

    def _refresh(self, *_events) -> None:
        try:
            ds = load_dataset(self.dataset)
            validate(ds, self.k, self.klass)
            per_class = class_dimensions(self.dataset, self.k, self.n_boot)
            whole = local_dimensions(self.dataset, self.k, "all", self.n_boot)
            local = whole if self.klass == "all" else local_dimensions(self.dataset, self.k, self.klass,
                                                                       self.n_boot)
        except ValueError as exc:
            self.alert.object = f"**Cannot estimate:** {exc}"
            self.alert.visible = True
            return
        self.alert.visible = False
        self.bars.object = bars_figure(per_class, whole.dimension, self.klass)
        self.histogram.object = histogram_figure(local, self.klass)
        self.extremes.object = extremes_figure(ds, local, self.klass)
        spread = (f" ± {local.boot_std:.2f} (bootstrap std, {self.n_boot} resamples)"
                  if np.isfinite(local.boot_std) else " (no bootstrap: n_boot < 2)")
        self.status.object = (f"**{ds.name}**, class **{self.klass}**: n = {len(local.index)} distinct "
                              f"points, k = {self.k}, intrinsic dimension = {local.dimension:.2f}{spread}")

    def __panel__(self) -> pn.viewable.Viewable:
        controls = [pn.widgets.Select.from_param(self.param.dataset, width=240),
                    pn.widgets.Select.from_param(self.param.klass, width=240),
                    pn.widgets.IntInput.from_param(self.param.k, start=3, end=50, width=240),
                    pn.widgets.IntInput.from_param(self.param.n_boot, start=0, end=100, width=240)]
        intro = pn.pane.Markdown(
            "### Intrinsic dimension\nLevina–Bickel MLE with MacKay–Ghahramani averaging, per class "
            "(Brown et al., ICLR 2023). Error bars: bootstrap std.", width=260)
        return pn.Row(pn.Column(intro, *controls, width=270),
                      pn.Column(self.status, self.alert, pn.Row(self.bars, self.histogram), self.extremes,
                                sizing_mode="stretch_width"), sizing_mode="stretch_width")


def app() -> pn.viewable.Viewable:
    """What ``l6kit dashboard manifold`` serves: a :class:`ManifoldDashboard` tab and a tab of the learned
    manifolds saved by the notebooks (:class:`l6kit.dashboards.learned.LearnedView`)."""
    from l6kit.dashboards.learned import LearnedView

    return pn.Tabs(("Intrinsic dimension", ManifoldDashboard()), ("Learned manifolds", LearnedView()),
                   dynamic=True, sizing_mode="stretch_width")


if pn.state.served and __name__ != "l6kit.dashboards.manifold":
    # `panel serve <this file>` re-executes the file per session; use the installed module so the caches persist.
    from l6kit.dashboards import manifold as _module

    _module.app().servable(title="Intrinsic dimension")
