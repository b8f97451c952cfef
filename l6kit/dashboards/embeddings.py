"""Embeddings dashboard: any saved embedding table, coloured by its metadata, with nearest neighbours.

Tables come from the notebooks (:func:`l6kit.embeddings.save_table` into ``results/artifacts/``): HGCF's users
and items in the Poincaré disk (drawn natively, no projection), DropoutNet's warm and cold items, EGT's
descriptors, ... A built-in table (the offline digits as cosine descriptors) is always there, so the dashboard
works before any notebook has run. Tables of more than 2-D are drawn with PCA (:func:`l6kit.embeddings.project_2d`).

Large tables: at most :data:`MAX_POINTS` points are drawn (a uniform random sample, always including the
selected point and its neighbours) with WebGL markers; neighbours are computed over *all* points.

Serve it with ``panel serve l6kit/dashboards/embeddings.py --address 127.0.0.1`` (or ``l6kit dashboard
embeddings``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go

from l6kit import claims, viz
from l6kit import embeddings as emb

TEMPLATE = viz.TEMPLATE
MAX_POINTS = 20_000          # drawn points; larger tables are sampled (neighbours still use every point)
MAX_CATEGORIES = 12          # a categorical colour with more values keeps the most frequent, the rest "other"
DEMO = "digits (built-in)"
NONE = "(none)"


def artifacts_dir() -> Path:
    """Where notebooks save tables: ``<results_dir>/artifacts``."""
    return claims.results_dir() / "artifacts"


@functools.lru_cache(maxsize=1)
def demo_table() -> emb.EmbeddingTable:
    """The offline digits (1,797 8×8 images) as centred, L2-normalised 64-D descriptors; metric cosine."""
    from l6kit.data.images import load_digits_offline

    digits = load_digits_offline()
    X = digits.images.reshape(len(digits.labels), -1).astype(np.float64)
    X = X - X.mean(0)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    meta = pd.DataFrame({"label": digits.labels.astype(int), "ink": digits.images.reshape(len(X), -1).mean(1)})
    return emb.EmbeddingTable(X.astype(np.float32), meta, "cosine", DEMO,
                              "scikit-learn's 8×8 digits as pixel descriptors (centred, unit length).")


def find_tables(folder: Path | None = None) -> dict[str, Path | None]:
    """Display name -> file of every embedding table in ``folder`` (default :func:`artifacts_dir`), plus the
    built-in demo (value ``None``). Files that are not embedding tables are skipped."""
    folder = Path(folder or artifacts_dir())
    found: dict[str, Path | None] = {}
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        try:
            with np.load(path, allow_pickle=False) as npz:
                if {"coords", "metric", "name"} <= set(npz.files):
                    found[f"{npz['name']} ({path.name})"] = path
        except (OSError, ValueError):
            continue
    return found | {DEMO: None}


@functools.lru_cache(maxsize=8)
def _read(path: str, _mtime_ns: int) -> emb.EmbeddingTable:
    return emb.load_table(path)


def load(path: Path | None) -> emb.EmbeddingTable:
    """The table at ``path`` (cached until the file changes), or the demo table for ``None``."""
    if path is None:
        return demo_table()
    path = Path(path)
    return _read(str(path), path.stat().st_mtime_ns)


_PROJECTED: dict[int, tuple[emb.EmbeddingTable, np.ndarray, str]] = {}


def projection(table: emb.EmbeddingTable) -> tuple[np.ndarray, str]:
    """:func:`l6kit.embeddings.project_2d` of ``table``, cached while the table object lives in the cache."""
    hit = _PROJECTED.get(id(table))
    if hit is None or hit[0] is not table:
        if len(_PROJECTED) >= 16:
            _PROJECTED.clear()
        hit = _PROJECTED[id(table)] = (table, *emb.project_2d(table))
    return hit[1], hit[2]


def colour_columns(table: emb.EmbeddingTable) -> list[str]:
    """Metadata columns usable as a colour (every column), plus :data:`NONE`."""
    return [NONE, *map(str, table.meta.columns)]


def check_choice(table: emb.EmbeddingTable, colour: str, point: int, k: int) -> None:
    """Raise ``ValueError`` with a reader-facing message for a colour column the table lacks, a point outside
    the table or a neighbour count below 1."""
    if colour != NONE and colour not in table.meta.columns:
        raise ValueError(f"the table has no column {colour!r}; its columns: {', '.join(table.meta.columns)}")
    if not 0 <= point < len(table):
        raise ValueError(f"point {point} is outside this table (0 … {len(table) - 1})")
    if k < 1:
        raise ValueError("the number of neighbours must be at least 1")


def _hover(meta: pd.DataFrame, rows: np.ndarray) -> list[str]:
    cols = list(meta.columns)[:6]
    sub = meta.iloc[rows]
    return [f"point {r}<br>" + "<br>".join(f"{c}: {v}" for c, v in zip(cols, vals, strict=True))
            for r, vals in zip(rows, sub[cols].itertuples(index=False), strict=True)]


def _categorical(values: pd.Series) -> pd.Series:
    values = values.astype(str)
    top = values.value_counts().index[: MAX_CATEGORIES - 1]
    return values.where(values.isin(top), "other") if values.nunique() > MAX_CATEGORIES else values


def scatter_figure(table: emb.EmbeddingTable, colour: str = NONE, point: int | None = None,
                   neighbours: pd.DataFrame | None = None, *, max_points: int = MAX_POINTS) -> go.Figure:
    """The table in 2-D coloured by ``colour``, the selected ``point`` as a star and its neighbours circled.

    Every marker carries its row index as ``customdata`` (a click selects it). At most ``max_points`` are drawn.
    """
    xy, how = projection(table)
    rows = emb.subsample(len(table), max_points, keep=point)
    fig = go.Figure()
    kw = dict(mode="markers", hoverinfo="text")
    if colour == NONE:
        fig.add_trace(go.Scattergl(x=xy[rows, 0], y=xy[rows, 1], customdata=rows, text=_hover(table.meta, rows),
                                   marker=dict(size=5, opacity=0.7), name="points", **kw))
    elif table.meta[colour].dtype.kind in "iuf" and table.meta[colour].nunique() > MAX_CATEGORIES:
        values = table.meta[colour].to_numpy()[rows]
        fig.add_trace(go.Scattergl(x=xy[rows, 0], y=xy[rows, 1], customdata=rows, text=_hover(table.meta, rows),
                                   marker=dict(size=5, opacity=0.8, color=values, colorscale="Viridis",
                                               colorbar=dict(title=colour, thickness=12)), name=colour, **kw))
    else:
        groups = _categorical(table.meta[colour]).to_numpy()[rows]
        for value in sorted(set(groups), key=lambda v: (v == "other", v)):
            sel = rows[groups == value]
            fig.add_trace(go.Scattergl(x=xy[sel, 0], y=xy[sel, 1], customdata=sel, text=_hover(table.meta, sel),
                                       marker=dict(size=5, opacity=0.75), name=f"{colour} = {value}", **kw))
    if neighbours is not None and len(neighbours):
        nb = neighbours["point"].to_numpy()
        fig.add_trace(go.Scattergl(x=xy[nb, 0], y=xy[nb, 1], customdata=nb, text=_hover(table.meta, nb),
                                   marker=dict(size=13, color="rgba(0,0,0,0)", line=dict(width=2, color="black")),
                                   name=f"{len(nb)} nearest ({table.metric})", **kw))
    if point is not None:
        fig.add_trace(go.Scattergl(x=[xy[point, 0]], y=[xy[point, 1]], customdata=[point],
                                   text=_hover(table.meta, np.array([point])), name=f"point {point}",
                                   marker=dict(size=18, symbol="star", color="crimson",
                                               line=dict(width=1, color="black")), **kw))
    if table.metric == "poincare" and table.coords.shape[1] == 2:
        fig.add_shape(type="circle", x0=-1, y0=-1, x1=1, y1=1, line=dict(color="grey", dash="dot"))
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    shown = f"{len(rows):,} of {len(table):,} points" + (" (random sample)" if len(rows) < len(table) else "")
    fig.update_layout(template=TEMPLATE, title=f"{table.name}: {how}; {shown}", height=620,
                      xaxis_title=f"{how} 1", yaxis_title=f"{how} 2", legend=dict(itemsizing="constant"),
                      clickmode="event")
    return fig


def neighbour_frame(table: emb.EmbeddingTable, point: int, k: int) -> pd.DataFrame:
    """The ``k`` nearest neighbours of ``point`` under the table's metric (see :func:`l6kit.embeddings.nearest`)."""
    return emb.nearest(table, point, k)


class EmbeddingsDashboard(pn.viewable.Viewer):
    """Explore a saved embedding table: colour by metadata, hover for details, click for nearest neighbours."""

    table = param.String(default=DEMO, label="Embedding table", doc="A saved table, or the built-in digits")
    colour = param.String(default=NONE, label="Colour by", doc="A metadata column")
    point = param.Integer(default=0, label="Selected point", doc="Row index (or click a point)")
    k = param.Integer(default=10, label="Neighbours (k)", doc="Nearest neighbours listed")

    def __init__(self, **params):
        super().__init__(**params)
        self.tables = find_tables()
        if "table" not in params and len(self.tables) > 1:
            self.table = next(iter(self.tables))          # a saved table first, the demo last
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.status = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"font-size": "15px"})
        self.plot = pn.pane.Plotly(None, sizing_mode="stretch_width", min_height=640)
        self.neighbours = pn.pane.DataFrame(None, index=False, sizing_mode="stretch_width", max_rows=50)
        self.plot.param.watch(self._clicked, "click_data")
        self.param.watch(self._refresh, ["table", "colour", "point", "k"])
        self._refresh()

    def _clicked(self, event) -> None:
        points = (event.new or {}).get("points") or []
        if points and points[0].get("customdata") is not None:
            self.point = int(points[0]["customdata"])

    def _fail(self, message: str) -> None:
        self.alert.object = f"**Cannot show this choice:** {message}"
        self.alert.visible = True

    def _refresh(self, *_events) -> None:
        if self.table not in self.tables:
            return self._fail(f"no table named {self.table!r}; choose one of: {', '.join(self.tables)}")
        table = load(self.tables[self.table])
        try:
            check_choice(table, self.colour, self.point, self.k)
        except ValueError as exc:
            return self._fail(str(exc))
        self.alert.visible = False
        nb = neighbour_frame(table, self.point, self.k)
        self.plot.object = scatter_figure(table, self.colour, self.point, nb)
        self.neighbours.object = nb
        row = ", ".join(f"{c} = {v}" for c, v in table.meta.iloc[[self.point]].to_dict("records")[0].items())
        self.status.object = (f"**{table.name}** · {len(table):,} points × {table.coords.shape[1]} dimensions · "
                              f"metric **{table.metric}**  \n{table.description}  \n"
                              f"Point **{self.point}**: {row}")

    def __panel__(self) -> pn.viewable.Viewable:
        table_w = pn.widgets.Select.from_param(self.param.table, options=list(self.tables), width=260)
        colour_w = pn.widgets.Select.from_param(self.param.colour, width=260)

        def _columns(*_):
            colour_w.options = colour_columns(load(self.tables[self.table])) if self.table in self.tables \
                else [NONE]
            if self.colour not in colour_w.options:
                self.colour = NONE

        _columns()
        self.param.watch(_columns, "table")
        intro = pn.pane.Markdown(
            "### Embeddings\nSaved embedding tables from the book's notebooks. Hover for metadata; click a point "
            "(or type its index) to list its nearest neighbours under the model's own distance.", width=270)
        controls = pn.Column(intro, table_w, colour_w,
                             pn.widgets.IntInput.from_param(self.param.point, start=0, width=260),
                             pn.widgets.IntInput.from_param(self.param.k, start=1, end=200, width=260), width=280)
        return pn.Row(controls, pn.Column(self.status, self.alert, self.plot, "#### Nearest neighbours",
                                          self.neighbours, sizing_mode="stretch_width"),
                      sizing_mode="stretch_width")


def app() -> pn.viewable.Viewable:
    """What ``l6kit dashboard embeddings`` serves: an :class:`EmbeddingsDashboard` tab and the retrieval view
    (:class:`l6kit.dashboards.retrieval.RetrievalView`: EGT's traversal of a descriptor table against kNN)."""
    from l6kit.dashboards.retrieval import RetrievalView

    return pn.Tabs(("Explore", EmbeddingsDashboard()), ("Retrieval (EGT vs kNN)", RetrievalView(find_tables(), load)),
                   dynamic=True, sizing_mode="stretch_width")


if pn.state.served and __name__ != "l6kit.dashboards.embeddings":
    # `panel serve <this file>` re-executes the file per session; use the installed module so the caches persist.
    from l6kit.dashboards import embeddings as _module

    _module.app().servable(title="l6kit embeddings")
