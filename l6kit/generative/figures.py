"""Plotly figures for generative models of 2-D data on curves (the circle examples of the manifold papers).

Every function returns a ``go.Figure`` in the book's template (:mod:`l6kit.viz`); none shows or saves it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from l6kit import viz
from l6kit.generative.metrics import angles, as_numpy

PALETTE = viz.PALETTE


def likelihood_vs_sigma(table: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Mean log-likelihood against the off-manifold scale sigma (log axis, sigma shrinking to the right), one
    line per on-manifold density ``q``.

    Args:
        table: long form with columns ``q, sigma, loglik, w1`` (as from the two-step paper's analytic cell).
    """
    fig = go.Figure()
    for i, (name, part) in enumerate(table.groupby("q", sort=False)):
        fig.add_trace(go.Scatter(x=part["sigma"], y=part["loglik"], mode="lines+markers",
                                 name=f"{name} (W1 to truth {part['w1'].iloc[0]:.2f})",
                                 line=dict(color=PALETTE[i % len(PALETTE)])))
    fig.update_xaxes(type="log", autorange="reversed")
    fig.update_layout(title=title, xaxis_title="σ, the model's spread off the manifold (shrinking →)",
                      yaxis_title="mean log-likelihood of the data", legend=dict(x=0.01, y=0.99))
    return fig


def samples_in_plane(samples: Mapping[str, np.ndarray], data=None, *, max_points: int = 1500, cols: int = 2,
                     radius: float | None = 1.0, title: str = "") -> go.Figure:
    """One panel per model with its 2-D samples (shapes ``(n, 2)``), the training data in grey behind them and
    the true circle of ``radius`` as a dashed line (``None``: no circle)."""
    names = list(samples)
    rows = -(-len(names) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.06,
                        vertical_spacing=0.1)
    t = np.linspace(0, 2 * np.pi, 200)
    for i, name in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
        if data is not None:
            d = as_numpy(data)[:max_points]
            fig.add_trace(go.Scatter(x=d[:, 0], y=d[:, 1], mode="markers", marker=dict(size=3, color="#bbbbbb"),
                                     name="training data", showlegend=i == 0, legendgroup="data"), r, c)
        s = as_numpy(samples[name])[:max_points]
        fig.add_trace(go.Scatter(x=s[:, 0], y=s[:, 1], mode="markers", name="samples", showlegend=i == 0,
                                 legendgroup="samples", marker=dict(size=3, color=PALETTE[0], opacity=0.6)), r, c)
        if radius is not None:
            fig.add_trace(go.Scatter(x=radius * np.cos(t), y=radius * np.sin(t), mode="lines", name="true circle",
                                     line=dict(dash="dash", color=PALETTE[1], width=1), showlegend=i == 0,
                                     legendgroup="circle"), r, c)
        fig.update_xaxes(range=[-2, 2], row=r, col=c)
        fig.update_yaxes(range=[-2, 2], row=r, col=c, scaleanchor=f"x{i + 1 if i else ''}")
    fig.update_layout(title=title, height=380 * rows + 60)
    return fig


def angle_densities(samples: Mapping[str, np.ndarray], true_pdf: Callable[[np.ndarray], np.ndarray], *,
                    bins: int = 48, title: str = "") -> go.Figure:
    """Histogram densities (as step lines) of the sample angles of each model (shapes ``(n, 2)``) against the
    true angle density ``true_pdf(theta)``."""
    edges = np.linspace(-np.pi, np.pi, bins + 1)
    theta = np.linspace(-np.pi, np.pi, 400)
    fig = go.Figure(go.Scatter(x=theta, y=true_pdf(theta), mode="lines", name="true density",
                               line=dict(color="#222", width=3, dash="dash")))
    for i, (name, s) in enumerate(samples.items()):
        hist, _ = np.histogram(angles(s), bins=edges, density=True)
        fig.add_trace(go.Scatter(x=edges, y=np.append(hist, hist[-1]), mode="lines", line_shape="hv", name=name,
                                 line=dict(color=PALETTE[i % len(PALETTE)], width=2)))
    fig.update_layout(title=title, xaxis_title="angle θ (radians)", yaxis_title="density of θ")
    return fig


def likelihood_decomposition(curve: pd.DataFrame, *, true_on_manifold: float | None = None,
                             reference_w1: float | None = None, title: str = "") -> go.Figure:
    """Training curve of a one-step model on circle data: left, the mean log-likelihood and its on-manifold and
    normal parts; right, the W1 of sample angles and the off-manifold distance.

    Args:
        curve: columns ``epoch, loglik, on_manifold, normal, w1, off_manifold``.
        true_on_manifold: the on-manifold term of the true density (dashed line), or None.
        reference_w1: a W1 to draw as a dashed line (e.g. the two-step model's), or None.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("log-likelihood and its two parts (nats)",
                                                        "sample quality"), horizontal_spacing=0.1)
    for i, (col, name) in enumerate((("loglik", "log-likelihood"), ("normal", "normal part log p(r=1 | θ)"),
                                     ("on_manifold", "on-manifold part log p(θ)"))):
        fig.add_trace(go.Scatter(x=curve["epoch"], y=curve[col], mode="lines+markers", name=name,
                                 line=dict(color=PALETTE[i])), 1, 1)
    if true_on_manifold is not None:
        fig.add_hline(y=true_on_manifold, line_dash="dash", line_color=PALETTE[2], row=1, col=1,
                      annotation_text="true density's log p(θ)", annotation_position="bottom right")
    fig.add_trace(go.Scatter(x=curve["epoch"], y=curve["w1"], mode="lines+markers", name="W1 of angles",
                             line=dict(color=PALETTE[3])), 1, 2)
    fig.add_trace(go.Scatter(x=curve["epoch"], y=curve["off_manifold"], mode="lines+markers",
                             name="mean distance from circle", line=dict(color=PALETTE[4])), 1, 2)
    if reference_w1 is not None:
        fig.add_hline(y=reference_w1, line_dash="dash", line_color=PALETTE[6], row=1, col=2,
                      annotation_text="two-step W1", annotation_position="top right")
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title, height=440)
    return fig


def code_density(codes: np.ndarray, densities: Mapping[str, Callable[[np.ndarray], np.ndarray]], *,
                 bins: int = 60, title: str = "") -> go.Figure:
    """Histogram of 1-D codes (shape ``(n,)`` or ``(n, 1)``) with fitted latent densities drawn over it."""
    codes = as_numpy(codes).reshape(-1)
    grid = np.linspace(codes.min() - 0.5, codes.max() + 0.5, 400)
    fig = go.Figure(go.Histogram(x=codes, nbinsx=bins, histnorm="probability density", name="codes g(x)",
                                 marker_color="#bbbbbb"))
    for i, (name, fn) in enumerate(densities.items()):
        fig.add_trace(go.Scatter(x=grid, y=fn(grid), mode="lines", name=name,
                                 line=dict(color=PALETTE[i % len(PALETTE)], width=2)))
    fig.update_layout(title=title, xaxis_title="code (standardized)", yaxis_title="density", bargap=0.02)
    return fig
