"""Plotly figures of the rectangular-flows page: training curves of ML vs TS on the circle, learned densities
along the circle, and the agreement of the stochastic log-determinant gradient with the exact one.

Every function returns a ``go.Figure`` in the book's template (:mod:`l6kit.viz`); none shows or saves it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from l6kit import viz


# -- figures --------------------------------------------------------------------------------------------------
def training_curves_figure(models: dict[str, Any], circle: dict[str, Any]) -> go.Figure:
    """W1 of sample angles and mean distance from the circle during training, ML vs TS."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("W1 of sample angles (radians)",
                                                        "mean distance of samples from the circle"))
    for i, (name, run) in enumerate(models["runs"].items()):
        c = run["curve"]
        for col, key in ((1, "w1"), (2, "off_manifold")):
            fig.add_trace(go.Scatter(x=c["epoch"], y=c[key], mode="lines+markers", name=name, legendgroup=name,
                                     showlegend=col == 1, line=dict(color=viz.PALETTE[i])), 1, col)
    fig.add_hline(y=circle["train_w1"], line_dash="dash", line_color="#888", row=1, col=1,
                  annotation_text="training points' own W1", annotation_position="top right")
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=420)
    return fig


def density_figure(table: pd.DataFrame) -> go.Figure:
    """Learned densities along the circle (one line per model) against the true von Mises density."""
    fig = go.Figure(go.Scatter(x=table["theta"], y=table["true"], mode="lines", name="true density",
                               line=dict(color="#222", width=3, dash="dash")))
    for i, name in enumerate(c for c in table.columns if c not in ("theta", "true")):
        fig.add_trace(go.Scatter(x=table["theta"], y=table[name], mode="lines", name=name,
                                 line=dict(color=viz.PALETTE[i], width=2)))
    fig.update_layout(xaxis_title="angle θ (radians)", yaxis_title="density per unit arc length")
    return fig


def estimator_figure(table: pd.DataFrame) -> go.Figure:
    """Relative gradient error of Hutchinson + CG against the number of probes (log-log), with the K^(-1/2) rate."""
    mean = table.groupby("K")["rel_error"].mean()
    fig = go.Figure(go.Scatter(x=table["K"], y=table["rel_error"], mode="markers", name="one repeat",
                               marker=dict(color=viz.PALETTE[0], opacity=0.5)))
    fig.add_trace(go.Scatter(x=mean.index, y=mean.values, mode="lines+markers", name="mean",
                             line=dict(color=viz.PALETTE[1], width=3)))
    ref = mean.iloc[0] * (mean.index.to_numpy(float) / mean.index[0]) ** -0.5
    fig.add_trace(go.Scatter(x=mean.index, y=ref, mode="lines", name="∝ K^(-1/2)",
                             line=dict(color="#888", dash="dash")))
    fig.update_xaxes(type="log", title_text="probes K averaged")
    fig.update_yaxes(type="log", title_text="‖ĝ − g‖ / ‖g‖")
    return fig
