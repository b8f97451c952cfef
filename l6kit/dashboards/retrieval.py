"""The retrieval view of the embeddings dashboard: one query's EGT traversal, step by step, against kNN.

The reader picks a descriptor table (cosine tables: EGT's saved descriptors, the built-in digits), a query
point (it is taken out of the index), the graph's ``k`` and EGT's threshold ``τ``, and a number of steps
``s``. Two panels share the table's 2-D projection: the first ``s`` images EGT retrieves (numbered, coloured
by exploit/explore, with the edge each was reached by) and kNN's first ``s``. The status line gives each
list's precision at ``s`` and the average precision of the full rankings; relevance = same value of a chosen
metadata column (e.g. the class label).

Logic in plain functions (tested without a browser); :class:`RetrievalView` is a thin Viewer.

References:
    C. Chang, G. Yu, C. Liu, M. Volkovs. Explore-Exploit Graph Traversal for Image Retrieval. CVPR 2019.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import panel as pn
import param
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from l6kit import embeddings as emb
from l6kit import viz
from l6kit.retrieval import average_precision, egt_rank, knn_graph, knn_rank, l2_normalise

COLOURS = {"exploit": "#2ca02c", "explore": "#d62728", "knn": "#1f77b4"}


@dataclasses.dataclass(frozen=True)
class Run:
    """One query against the rest of a table.

    Attributes:
        query: the query's row in the table.
        index: table rows of the index (every row but the query), shape ``(n - 1,)``.
        egt, knn: full rankings as table rows, shape ``(n - 1,)``.
        step: ``"exploit"``/``"explore"`` for the head of the EGT ranking that the traversal retrieved.
        parent: table row each traversed vertex was reached from (the query for its first edges).
        relevant: bool per table row (same relevance value as the query; the query itself False).
        ap_egt, ap_knn: average precision of the two rankings.
    """

    query: int
    index: np.ndarray
    egt: np.ndarray
    knn: np.ndarray
    step: np.ndarray
    parent: np.ndarray
    relevant: np.ndarray
    ap_egt: float
    ap_knn: float


def relevance_columns(table: emb.EmbeddingTable) -> list[str]:
    """Metadata columns usable as relevance (few distinct values: at most a tenth of the rows, and >= 2)."""
    meta = table.meta
    return [str(c) for c in meta.columns if 2 <= meta[c].nunique() <= max(2, len(meta) // 10)]


def check(table: emb.EmbeddingTable, column: str, query: int, k: int) -> None:
    """Raise ``ValueError`` with a reader-facing message for an unusable table or choice."""
    if table.metric == "poincare":
        raise ValueError("EGT ranks by cosine similarity; choose a descriptor table (cosine or Euclidean)")
    if column not in relevance_columns(table):
        raise ValueError(f"{column!r} cannot define relevance here; usable columns: "
                         f"{', '.join(relevance_columns(table)) or 'none'}")
    if not 0 <= query < len(table):
        raise ValueError(f"query {query} is outside this table (0 … {len(table) - 1})")
    if not 1 <= k < len(table) - 1:
        raise ValueError(f"k must be between 1 and {len(table) - 2}")


_GRAPHS: dict[tuple, tuple[emb.EmbeddingTable, np.ndarray, np.ndarray]] = {}


def _graph(table: emb.EmbeddingTable, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """kNN lists of all rows, cached while the table object lives."""
    hit = _GRAPHS.get((id(table), k))
    if hit is None or hit[0] is not table:
        if len(_GRAPHS) >= 8:
            _GRAPHS.clear()
        hit = _GRAPHS[(id(table), k)] = (table, *knn_graph(X, k))
    return hit[1], hit[2]


def run_query(table: emb.EmbeddingTable, column: str, query: int, k: int = 10, tau: float = 0.8) -> Run:
    """EGT and kNN rankings of the table's other rows for row ``query`` (see :class:`Run`).

    The index graph is built once per table and ``k`` over all rows; the query's own edges are removed from
    it (the query acts as an unseen image).
    """
    check(table, column, query, k)
    X = l2_normalise(np.asarray(table.coords, np.float32))
    sims, ids = _graph(table, X, k + 1)                       # one spare edge for the removed query
    keep = np.flatnonzero(np.arange(len(X)) != query)      # index rows
    pos = np.full(len(X), -1)
    pos[keep] = np.arange(len(keep))
    g_ids, g_sims = pos[ids[keep]], sims[keep]             # the graph re-numbered, query edges marked -1
    g_sims = np.where(g_ids < 0, -np.inf, g_sims)
    order = np.argsort(-g_sims, axis=1, kind="stable")[:, :k]
    g_ids, g_sims = np.take_along_axis(g_ids, order, 1), np.take_along_axis(g_sims, order, 1)
    Q = X[query:query + 1]
    egt, traces = egt_rank(Q, X[keep], k, tau, graph=(g_sims, g_ids), progress=False)
    values = table.meta[column].to_numpy()
    relevant = values == values[query]
    relevant[query] = False
    positives = np.flatnonzero(relevant[keep])
    trace = traces[0]
    parent = np.where(trace.parent < 0, query, keep[np.maximum(trace.parent, 0)])
    knn_order = knn_rank(Q, X[keep])[0]
    return Run(query, keep, keep[egt[0]], keep[knn_order], trace.step.astype(str), parent, relevant,
               average_precision(egt[0], positives), average_precision(knn_order, positives))


def precision(run: Run, steps: int) -> tuple[float, float]:
    """Precision of the first ``steps`` EGT and kNN results."""
    return float(run.relevant[run.egt[:steps]].mean()), float(run.relevant[run.knn[:steps]].mean())


def traversal_figure(table: emb.EmbeddingTable, run: Run, steps: int) -> go.Figure:
    """Two panels over the table's projection: EGT's first ``steps`` results with their edges, and kNN's."""
    xy, how = emb.project_2d(table)
    fig = make_subplots(1, 2, shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=(f"EGT: first {steps} results", f"kNN: first {steps} results"))
    rel = run.relevant
    for col in (1, 2):
        for mask, name, colour in ((rel, "relevant", "#9ecae1"), (~rel, "other", "#dddddd")):
            fig.add_trace(go.Scattergl(x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=name,
                                       marker=dict(size=4, color=colour), showlegend=col == 1,
                                       legendgroup=name, hoverinfo="skip"), 1, col)
    head = run.egt[:steps]
    ex, ey = [], []
    for v, u in zip(head[: len(run.parent)], run.parent[:steps], strict=False):
        ex += [xy[u, 0], xy[v, 0], None]
        ey += [xy[u, 1], xy[v, 1], None]
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(width=1, color="grey"), name="traversal edge",
                             hoverinfo="skip"), 1, 1)
    kinds = np.concatenate([run.step, np.full(max(0, steps - len(run.step)), "kNN tail")])[:steps]
    for kind in ("exploit", "explore", "kNN tail"):
        sel = np.flatnonzero(kinds == kind)
        if len(sel):
            fig.add_trace(go.Scatter(
                x=xy[head[sel], 0], y=xy[head[sel], 1], mode="markers+text", text=[str(i + 1) for i in sel],
                textposition="top center", name=f"EGT {kind}",
                marker=dict(size=9, color=COLOURS.get(kind, "black"),
                            symbol=np.where(rel[head[sel]], "circle", "x")),
                hovertext=[f"#{i + 1}: row {r} ({'relevant' if rel[r] else 'not relevant'})"
                           for i, r in zip(sel, head[sel], strict=True)], hoverinfo="text"), 1, 1)
    kn = run.knn[:steps]
    fig.add_trace(go.Scatter(x=xy[kn, 0], y=xy[kn, 1], mode="markers+text", name="kNN",
                             text=[str(i + 1) for i in range(len(kn))], textposition="top center",
                             marker=dict(size=9, color=COLOURS["knn"], symbol=np.where(rel[kn], "circle", "x")),
                             hoverinfo="skip"), 1, 2)
    for col in (1, 2):
        fig.add_trace(go.Scatter(x=[xy[run.query, 0]], y=[xy[run.query, 1]], mode="markers", name="query",
                                 marker=dict(size=18, symbol="star", color="gold", line=dict(width=1)),
                                 showlegend=col == 1, legendgroup="query"), 1, col)
    fig.update_layout(template=viz.TEMPLATE, height=560, legend=dict(orientation="h", y=-0.1),
                      title=f"{table.name} ({how}): circles relevant, crosses not; numbers give the rank")
    return fig


class RetrievalView(pn.viewable.Viewer):
    """Choose a descriptor table, a query, k, τ and a number of steps; compare EGT's traversal with kNN."""

    table = param.String(default="", label="Descriptor table")
    column = param.String(default="label", label="Relevance = same")
    query = param.Integer(default=0, label="Query (row)")
    k = param.Integer(default=10, label="Graph k")
    tau = param.Number(default=0.8, label="Threshold τ (cosine)")
    steps = param.Integer(default=20, bounds=(1, 200), label="Steps shown")

    def __init__(self, tables: dict, load, **params):
        super().__init__(**params)
        self.tables, self._load = tables, load
        usable = [name for name, path in tables.items() if relevance_columns(load(path))
                  and load(path).metric != "poincare"]
        self.usable = usable
        with param.discard_events(self):
            if self.table not in usable and usable:
                self.table = usable[0]
        self.status = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"font-size": "15px"})
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.plot = pn.pane.Plotly(None, sizing_mode="stretch_width", min_height=580)
        self.param.watch(self._refresh, ["table", "column", "query", "k", "tau", "steps"])
        self._refresh()

    def _refresh(self, *_events) -> None:
        try:
            if self.table not in self.tables:
                raise ValueError("no descriptor table to show")
            table = self._load(self.tables[self.table])
            run = run_query(table, self.column, self.query, self.k, self.tau)
        except ValueError as exc:
            self.alert.object, self.alert.visible = f"**Cannot show this choice:** {exc}", True
            return
        self.alert.visible = False
        p_egt, p_knn = precision(run, self.steps)
        self.plot.object = traversal_figure(table, run, self.steps)
        explored = int((run.step[: self.steps] == "explore").sum())
        self.status.object = (
            f"**{table.name}**, query **{self.query}** ({self.column} = {table.meta[self.column].iloc[self.query]}"
            f", {int(run.relevant.sum())} relevant) · k = {self.k}, τ = {self.tau:g}  \n"
            f"Precision of the first {self.steps}: EGT **{p_egt:.2f}** ({explored} explore steps) · "
            f"kNN **{p_knn:.2f}**  \nAverage precision of the full ranking: EGT **{run.ap_egt:.3f}** · "
            f"kNN **{run.ap_knn:.3f}**")

    def __panel__(self) -> pn.viewable.Viewable:
        intro = pn.pane.Markdown(
            "### Retrieval\nEGT (Chang et al., CVPR 2019) walks the kNN graph: it *exploits* every neighbour "
            "whose edge beats τ and otherwise *explores* the single best edge. The query leaves the index.",
            width=270)
        columns = relevance_columns(self._load(self.tables[self.table])) if self.table in self.tables else []
        controls = [pn.widgets.Select.from_param(self.param.table, options=self.usable, width=260),
                    pn.widgets.Select.from_param(self.param.column, options=columns or [self.column], width=260),
                    pn.widgets.IntInput.from_param(self.param.query, start=0, width=260),
                    pn.widgets.IntInput.from_param(self.param.k, start=1, end=100, width=260),
                    pn.widgets.FloatInput.from_param(self.param.tau, step=0.05, width=260),
                    pn.widgets.IntSlider.from_param(self.param.steps, width=250)]
        return pn.Row(pn.Column(intro, *controls, width=280),
                      pn.Column(self.status, self.alert, self.plot, sizing_mode="stretch_width"),
                      sizing_mode="stretch_width")
