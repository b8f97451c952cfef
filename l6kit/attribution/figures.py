"""Plotly figures for time-series attributions (return figures; never show them).

All take plain arrays in the layout of :func:`l6kit.papers.winit.explain`: inputs ``(N, F, T)``, labels and
probabilities ``(N, T)``, attributions ``(N, F, T)``, per-window scores ``(N, F, T, W)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from l6kit.viz import PALETTE


def series_panel(x: np.ndarray, y: np.ndarray, prob: np.ndarray, truth: np.ndarray, *, title: str = ""
                 ) -> go.Figure:
    """One series: its features, its label and the model's ``p(y_t = 1)``, salient cells marked.

    Args:
        x: ``(F, T)``; y, prob: ``(T,)``; truth: ``(F, T)`` bool.
    """
    F, T = x.shape
    t = np.arange(T)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06)
    for f in range(F):
        fig.add_trace(go.Scatter(x=t, y=x[f], mode="lines", name=f"feature {f}", line_color=PALETTE[f]), 1, 1)
        hits = np.flatnonzero(truth[f])
        if len(hits):
            fig.add_trace(go.Scatter(x=hits, y=x[f, hits], mode="markers", name=f"salient (feature {f})",
                                     marker=dict(size=13, symbol="circle-open", line_width=3,
                                                 color=PALETTE[1])), 1, 1)
    fig.add_trace(go.Scatter(x=t, y=y, mode="lines", line_shape="hv", name="label y_t",
                             line=dict(color=PALETTE[6], dash="dash")), 2, 1)
    fig.add_trace(go.Scatter(x=t, y=prob, mode="lines+markers", name="p(y_t = 1 | x_1:t)",
                             line_color=PALETTE[3]), 2, 1)
    fig.update_yaxes(title_text="value", row=1, col=1)
    fig.update_yaxes(title_text="label / p", range=[-0.05, 1.05], row=2, col=1)
    fig.update_xaxes(title_text="time step", row=2, col=1)
    fig.update_layout(title=title, height=520)
    return fig


def saliency_heatmaps(maps: Mapping[str, np.ndarray], *, cols: int = 2, title: str = "") -> go.Figure:
    """Features x time heat maps, one panel per named map (``(F, T)`` each), each scaled to its own maximum."""
    names = list(maps)
    rows = int(np.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.06,
                        vertical_spacing=0.12 if rows > 1 else 0.2)
    for i, name in enumerate(names):
        m = np.abs(np.nan_to_num(np.asarray(maps[name], dtype=float)))
        m = m / m.max() if m.max() > 0 else m
        fig.add_trace(go.Heatmap(z=m, colorscale="Blues", zmin=0, zmax=1, showscale=i == 0,
                                 colorbar=dict(title="scaled", len=0.5),
                                 hovertemplate="t=%{x} feature=%{y} score=%{z:.3f}<extra></extra>"),
                      i // cols + 1, i % cols + 1)
    fig.update_yaxes(dtick=1, title_text="feature")
    fig.update_xaxes(title_text="time step")
    fig.update_layout(title=title, height=170 * rows + 120)
    return fig


def window_matrix(windows: np.ndarray, *, title: str = "") -> go.Figure:
    """WinIT's per-window scores of one feature of one series, ``(T, W)``: row t = prediction time, column
    n = look-back, cell = I(t - n, t), the importance of x at t - n for the prediction at t."""
    T, W = windows.shape
    limit = float(np.abs(windows).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=windows.T, x=np.arange(T), y=np.arange(W), colorscale="RdBu_r", zmid=0,
                               zmin=-limit, zmax=limit, colorbar=dict(title="I(t-n, t)"),
                               hovertemplate="t=%{x} n=%{y} I=%{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="prediction time t", yaxis_title="look-back n (observation at t - n)",
                      height=360)
    return fig


def auprc_by_delay(table: pd.DataFrame, *, methods: Sequence[str] | None = None, title: str = "") -> go.Figure:
    """AUPRC against the spike delay, one line per explainer, the paper's values as open diamonds.

    Args:
        table: rows with ``delay, explainer, auprc, paper auprc`` (:func:`l6kit.papers.winit.score_table`).
        methods: explainer labels to show (default all).
    """
    fig = go.Figure()
    for i, (name, part) in enumerate(table.groupby("explainer", sort=False)):
        if methods is not None and name not in methods:
            continue
        part = part.sort_values("delay")
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=part["delay"], y=part["auprc"], mode="lines+markers", name=name,
                                 line_color=color, legendgroup=name))
        paper = part.dropna(subset=["paper auprc"])
        if len(paper):
            fig.add_trace(go.Scatter(x=paper["delay"], y=paper["paper auprc"], mode="markers",
                                     name=f"{name} (paper)", legendgroup=name, showlegend=False,
                                     marker=dict(symbol="diamond-open", size=12, color=color, line_width=2)))
    fig.update_layout(title=title, xaxis_title="delay between the spike and the label (steps)",
                      yaxis_title="AUPRC against the ground truth", yaxis_range=[-0.02, 1.05],
                      xaxis_dtick=1, height=440)
    return fig


def drop_by_fraction(drops: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Last-step AUROC drop against the share of END-masked cells, one line per explainer."""
    fig = go.Figure()
    for name, part in drops.groupby("explainer", sort=False):
        part = part.sort_values("fraction")
        fig.add_trace(go.Scatter(x=100 * part["fraction"], y=part["drop"], mode="lines+markers", name=name))
    fig.update_layout(title=title, xaxis_title="masked cells (% of all, top-scored first)",
                      yaxis_title="AUROC drop of the last-step prediction", height=420)
    return fig
