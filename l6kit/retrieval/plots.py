"""Plotly figures for the retrieval pages: mAP bars, parameter sweeps, a traversal picture, query times.

Functions return ``go.Figure`` objects in the l6kit template; they never show or save.

References:
    Chang, Yu, Volkovs et al. "Explore-Exploit Graph Traversal for Image Retrieval." CVPR 2019.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from l6kit.viz import PALETTE

STEP_COLOURS = {"exploit": PALETTE[0], "explore": PALETTE[1]}


def map_bars(table: pd.DataFrame, *, value: str = "mAP", title: str = "mAP per method and data set"
             ) -> go.Figure:
    """Grouped bars: one group per ``dataset``, one bar per ``method``.

    Shapes:
        table: rows with columns ``dataset, method, <value>``.
    """
    fig = go.Figure()
    for i, (method, part) in enumerate(table.groupby("method", sort=False)):
        fig.add_bar(x=part["dataset"], y=part[value], name=method, marker_color=PALETTE[i % len(PALETTE)],
                    text=[f"{v:.1f}" for v in part[value]], textposition="outside")
    fig.update_layout(barmode="group", title=title, yaxis_title=f"{value} (%)", xaxis_title="descriptor set")
    return fig


def _tau_label(q: float) -> str:
    if math.isinf(q):
        return "−∞ (BFS)" if q < 0 else "+∞ (Prim)"
    return f"q{100 * q:g}"


def sweep_figure(sweep: pd.DataFrame, *, title: str = "EGT mAP vs threshold τ and graph degree k"
                 ) -> go.Figure:
    """One panel per data set: mAP against τ (as a quantile of the graph's edge weights, with the two
    limits), one line per k; hover shows τ and the share of explore steps.

    Shapes:
        sweep: rows ``dataset, k, quantile, tau, mAP, explore_share``.
    """
    names = list(dict.fromkeys(sweep["dataset"]))
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True)
    for c, name in enumerate(names, start=1):
        part = sweep[sweep["dataset"] == name]
        for i, (k, rows) in enumerate(part.groupby("k")):
            fig.add_scatter(x=[_tau_label(q) for q in rows["quantile"]], y=rows["mAP"], mode="lines+markers",
                            name=f"k = {k}", legendgroup=str(k), showlegend=c == 1,
                            line_color=PALETTE[i % len(PALETTE)], row=1, col=c,
                            customdata=np.c_[rows["tau"], rows["explore_share"]],
                            hovertemplate="τ = %{customdata[0]:.3f}<br>mAP %{y:.1f}<br>explore share "
                                          "%{customdata[1]:.2f}<extra></extra>")
        fig.update_xaxes(title_text="τ (edge-weight quantile)", row=1, col=c)
    fig.update_yaxes(title_text="mAP (%)", row=1, col=1)
    fig.update_layout(title=title)
    return fig


def traversal_figure(xy: np.ndarray, relevant: np.ndarray, q_xy: np.ndarray, trace, knn_ids, n_show: int, *,
                     title: str = "") -> go.Figure:
    """Two panels over a 2-D projection: kNN's first ``n_show`` results, and EGT's first ``n_show`` with
    the edge each was reached by (colour = exploit or explore step; hover = visiting order and weight).
    All relevant points are drawn; of the others only those one of the two lists retrieves.

    Shapes:
        xy: ``(n, 2)`` projected index; relevant: ``(r,)`` ids; q_xy: ``(2,)``; knn_ids: ``(>= n_show,)``;
        trace: a :class:`l6kit.retrieval.egt.Trace`.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"kNN: first {n_show}", f"EGT: first {n_show}"),
                        shared_xaxes=True, shared_yaxes=True)
    rel = np.zeros(len(xy), bool)
    rel[np.asarray(relevant, dtype=np.int64)] = True
    shown = np.union1d(np.asarray(knn_ids[:n_show]), trace.order[:n_show])
    other = shown[~rel[shown]]                              # non-relevant points that either list retrieves
    for c in (1, 2):
        fig.add_scatter(x=xy[other, 0], y=xy[other, 1], mode="markers", marker=dict(color="#bdbdbd", size=4),
                        name="other classes (retrieved)", showlegend=c == 1, row=1, col=c, hoverinfo="skip")
        fig.add_scatter(x=xy[rel, 0], y=xy[rel, 1], mode="markers", name="relevant",
                        marker=dict(color=PALETTE[4], size=5, opacity=0.5), showlegend=c == 1, row=1, col=c,
                        hoverinfo="skip")
        fig.add_scatter(x=[q_xy[0]], y=[q_xy[1]], mode="markers", name="query", showlegend=c == 1,
                        marker=dict(symbol="star", size=16, color="black"), row=1, col=c)
    ids = np.asarray(knn_ids[:n_show])
    fig.add_scatter(x=xy[ids, 0], y=xy[ids, 1], mode="markers", name="kNN result", row=1, col=1,
                    marker=dict(color=PALETTE[2], size=8, line=dict(width=1, color="black")),
                    text=[f"#{i + 1}" for i in range(len(ids))], hovertemplate="%{text}<extra></extra>")
    order, steps, parents = trace.order[:n_show], trace.step[:n_show], trace.parent[:n_show]
    for kind, colour in STEP_COLOURS.items():
        ex, ey = [], []
        for v, s, u in zip(order, steps, parents, strict=True):
            if s == kind:
                src = q_xy if u < 0 else xy[u]
                ex += [src[0], xy[v, 0], None]
                ey += [src[1], xy[v, 1], None]
        fig.add_scatter(x=ex, y=ey, mode="lines", line=dict(color=colour, width=1.5), name=f"{kind} edge",
                        row=1, col=2, hoverinfo="skip")
    fig.add_scatter(x=xy[order, 0], y=xy[order, 1], mode="markers", name="EGT result", row=1, col=2,
                    marker=dict(color=[STEP_COLOURS[s] for s in steps], size=8, line=dict(width=1, color="black")),
                    text=[f"#{i + 1} {s}, w={w:.3f}" for i, (s, w) in enumerate(zip(steps, trace.weight, strict=False))],
                    hovertemplate="%{text}<extra></extra>")
    fig.update_layout(title=title, height=460)
    return fig


def timing_figure(table: pd.DataFrame, timing: pd.DataFrame, *, title: str = "Query time") -> go.Figure:
    """Left: online milliseconds per query per method and data set. Right: online milliseconds per query
    against the index size N (log-log).

    Shapes:
        table: rows ``dataset, method, ms_per_query``; timing: rows ``N, method, ms_per_query``.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("per method (online, all queries)",
                                                        "per query vs index size N"))
    for i, (method, part) in enumerate(table.groupby("method", sort=False)):
        fig.add_bar(x=part["dataset"], y=part["ms_per_query"], name=method, legendgroup=method,
                    marker_color=PALETTE[i % len(PALETTE)], row=1, col=1)
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(table["method"].unique())}
    for method, part in timing.groupby("method", sort=False):
        colour = colours.get(method.split(" ")[0], PALETTE[6])
        fig.add_scatter(x=part["N"], y=part["ms_per_query"], mode="lines+markers", name=f"{method} vs N",
                        line_color=colour, line_dash="dot", row=1, col=2)
    fig.update_yaxes(title_text="ms per query", type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title_text="index size N", type="log", row=1, col=2)
    fig.update_layout(barmode="group", title=title)
    return fig
