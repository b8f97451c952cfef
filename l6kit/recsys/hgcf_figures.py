"""Figures of the HGCF page: the Poincaré disk, radius vs depth/popularity, Recall vs dimension, curves.

Every function returns a ``plotly.graph_objects.Figure`` in the l6kit template; none shows or writes it.

References:
    Sun et al. *HGCF: Hyperbolic Graph Convolution Networks for Collaborative Filtering.* WWW 2021 (Fig. 4-5:
    embeddings in the disk, radius vs popularity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from l6kit.viz import PALETTE


def poincare_disk(points: np.ndarray, table: pd.DataFrame, *, color: str = "subtree", title: str = "") -> go.Figure:
    """Users (circles) and items (diamonds) in the Poincaré disk, coloured by ``table[color]`` (categorical).

    Shapes:
        points: ``(n, 2)`` inside the unit disk; table: ``n`` rows with ``kind, id, popularity, depth``.
    """
    fig = go.Figure()
    theta = np.linspace(0, 2 * np.pi, 200)
    fig.add_trace(go.Scatter(x=np.cos(theta), y=np.sin(theta), mode="lines", line=dict(color="#999", width=1),
                             hoverinfo="skip", showlegend=False))
    for (kind, value), part in table.groupby(["kind", color], sort=True):
        idx = part.index.to_numpy()
        fig.add_trace(go.Scatter(
            x=points[idx, 0], y=points[idx, 1], mode="markers", name=f"{kind}s, {color} {value}",
            legendgroup=str(value), marker=dict(symbol="circle" if kind == "user" else "diamond",
                                                size=5 if kind == "user" else 7, opacity=0.6,
                                                color=PALETTE[int(value) % len(PALETTE)] if value >= 0 else "#888"),
            text=[f"{kind} {i}<br>depth {d}<br>popularity {p}" for i, d, p in
                  zip(part["id"], part["depth"], part["popularity"], strict=True)], hoverinfo="text"))
    fig.update_layout(title=title, xaxis=dict(range=[-1.05, 1.05], zeroline=False, showgrid=False),
                      yaxis=dict(range=[-1.05, 1.05], scaleanchor="x", zeroline=False, showgrid=False),
                      height=560)
    return fig


def radius_panels(table: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Left: users' hyperbolic radius by the depth of their interest node (box plots). Right: items' radius
    against their training popularity (log x). ``table`` as from :func:`l6kit.papers.hgcf.node_table`."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("users: radius by interest depth",
                                                        "items: radius vs popularity"))
    users, items = table[table["kind"] == "user"], table[table["kind"] == "item"]
    for depth, part in users.groupby("depth"):
        fig.add_trace(go.Box(y=part["radius"], name=f"depth {depth}", marker_color=PALETTE[0],
                             showlegend=False), row=1, col=1)
    fig.add_trace(go.Scatter(x=items["popularity"] + 1, y=items["radius"], mode="markers",
                             marker=dict(size=5, opacity=0.5, color=PALETTE[1]), showlegend=False,
                             text=[f"item {i}" for i in items["id"]]), row=1, col=2)
    fig.update_xaxes(type="log", title_text="training interactions + 1", row=1, col=2)
    fig.update_yaxes(title_text="distance to the origin d(o, x)", row=1, col=1)
    fig.update_layout(title=title)
    return fig


def training_curves(main: dict, k: int, *, title: str = "") -> go.Figure:
    """Left: mean training loss per epoch; right: test Recall@k every few epochs; one line per model with a
    curve (``main``: kind -> result of :func:`l6kit.papers.hgcf.train`)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("margin ranking loss (train)", f"Recall@{k} (test)"))
    for n, (kind, res) in enumerate(main.items()):
        if res.get("curve") is None:
            continue
        color = PALETTE[n % len(PALETTE)]
        fig.add_trace(go.Scatter(x=np.arange(1, len(res["losses"]) + 1), y=res["losses"], name=kind,
                                 legendgroup=kind, line=dict(color=color)), row=1, col=1)
        fig.add_trace(go.Scatter(x=res["curve"]["epoch"], y=res["curve"][f"recall@{k}"], name=kind,
                                 legendgroup=kind, showlegend=False, mode="lines+markers",
                                 line=dict(color=color)), row=1, col=2)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title)
    return fig


def popularity_curve(items: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Items sorted by training popularity (log-log), coloured by depth-1 subtree: the Zipf skew of the data."""
    order = items.sort_values("popularity", ascending=False).reset_index(drop=True)
    fig = go.Figure()
    for value, part in order.groupby("subtree"):
        fig.add_trace(go.Scatter(x=part.index + 1, y=part["popularity"] + 1, mode="markers",
                                 name=f"subtree {value}", marker=dict(size=5, color=PALETTE[int(value) % 10]
                                                                       if value >= 0 else "#888")))
    fig.update_xaxes(type="log", title_text="item rank by popularity")
    fig.update_yaxes(type="log", title_text="training interactions + 1")
    fig.update_layout(title=title)
    return fig
