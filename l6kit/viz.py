"""Plotly figures with one look, and a renderer that works in JupyterLab *and* in the static book.

Importing this module registers the ``"l6kit"`` template (made the default) and the ``"l6kit"`` renderer.
The renderer emits two representations of each figure:

* ``application/vnd.plotly.v1+json`` — JupyterLab and VS Code draw it with their own plotly.js;
* ``text/html`` — a ``<div>`` plus a ``Plotly.newPlot`` call *without* plotly.js and without MathJax, for
  the Jupyter Book pages, which load one local ``plotly.min.js`` for the whole site (no CDN, so the book
  works offline and its pages log no network errors).

It becomes the default renderer unless ``PLOTLY_RENDERER`` is set. Functions here return figures; they
never call ``.show()``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer
from plotly.subplots import make_subplots

PALETTE = ["#1f5aa6", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d5a97", "#2e4057", "#f08a4b",
           "#8c8c8c", "#3d9970"]

TEMPLATE = go.layout.Template(pio.templates["plotly_white"])
TEMPLATE.layout.update(
    font=dict(family="Inter, Helvetica, Arial, sans-serif", size=13, color="#222"),
    colorway=PALETTE,
    margin=dict(l=60, r=20, t=60, b=50),
    title=dict(x=0.0, xanchor="left", font=dict(size=16)),
    hoverlabel=dict(font_size=12),
)
pio.templates["l6kit"] = TEMPLATE
pio.templates.default = "l6kit"


class BookRenderer(MimetypeRenderer):
    """Plotly mimetype for live notebooks plus self-contained-but-library-free HTML for the book."""

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False, full_html=False,
                           default_width="100%", default_height=480, validate=False,
                           config={"displaylogo": False, "responsive": True})
        return {"application/vnd.plotly.v1+json": {"data": fig_dict.get("data", []),
                                                   "layout": fig_dict.get("layout", {})},
                "text/html": html}


pio.renderers["l6kit"] = BookRenderer()
if "PLOTLY_RENDERER" not in os.environ:
    pio.renderers.default = "l6kit"


def bar_with_errors(labels: Sequence[str], values: Sequence[float], errors: Sequence[float] | None = None, *,
                    title: str = "", xlabel: str = "", ylabel: str = "", reference: float | None = None,
                    reference_label: str = "", highlight: str | None = None) -> go.Figure:
    """Bars with optional symmetric error bars and a dashed horizontal reference line.

    Args:
        labels: bar labels, shape ``(m,)``.
        values: bar heights, shape ``(m,)``.
        errors: error-bar half-widths (e.g. a bootstrap std), shape ``(m,)``, or None.
        reference: y value of a dashed reference line (e.g. the whole-data-set estimate), or None.
        highlight: a label to draw in the accent colour.
    """
    colors = [PALETTE[1] if str(lab) == str(highlight) else PALETTE[0] for lab in labels]
    fig = go.Figure(go.Bar(x=[str(v) for v in labels], y=list(values), marker_color=colors,
                           error_y=dict(type="data", array=list(errors), visible=True)
                           if errors is not None else None))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", line_color=PALETTE[6],
                      annotation_text=reference_label, annotation_position="top right")
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, showlegend=False)
    return fig


def image_grid(images: np.ndarray, titles: Sequence[str] | None = None, *, cols: int = 8,
               title: str = "") -> go.Figure:
    """A grid of small images.

    Args:
        images: shape ``(m, H, W)`` (grey, shown with a grey colour scale, 0 = white) or ``(m, H, W, 3)``
            uint8 colour.
        titles: one caption per image, or None.
        cols: images per row.
    """
    m = len(images)
    rows = max(1, int(np.ceil(m / cols)))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=0.01, vertical_spacing=0.08 if titles else 0.02)
    for i, img in enumerate(images):
        r, c = i // cols + 1, i % cols + 1
        if img.ndim == 2:
            fig.add_trace(go.Heatmap(z=img[::-1], colorscale="Greys", showscale=False,
                                     hovertemplate="x=%{x} y=%{y} v=%{z}<extra></extra>"), r, c)
        else:
            fig.add_trace(go.Image(z=img), r, c)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, scaleanchor="x", constrain="domain")
    for i in range(2, m + 1):                       # keep every panel square
        fig.update_yaxes(scaleanchor=f"x{i}", row=(i - 1) // cols + 1, col=(i - 1) % cols + 1)
    fig.update_annotations(font_size=11)
    fig.update_layout(title=title, height=140 * rows + 80, margin=dict(l=10, r=10, t=70, b=10))
    return fig


def histogram_by_group(values: Sequence[float], groups: Sequence[str], *, bins: int = 50, title: str = "",
                       xlabel: str = "", reference: float | None = None, reference_label: str = "") -> go.Figure:
    """Overlaid histograms of ``values`` split by ``groups`` (both shape ``(n,)``), with an optional dashed
    vertical reference line."""
    values, groups = np.asarray(values), np.asarray(groups)
    edges = np.histogram_bin_edges(values, bins=bins)
    fig = go.Figure()
    for name in dict.fromkeys(groups.tolist()):
        fig.add_trace(go.Histogram(x=values[groups == name], name=str(name), opacity=0.7,
                                   xbins=dict(start=edges[0], end=edges[-1], size=edges[1] - edges[0])))
    if reference is not None:
        fig.add_vline(x=reference, line_dash="dash", line_color=PALETTE[6],
                      annotation_text=reference_label, annotation_position="top right")
    fig.update_layout(barmode="overlay", title=title, xaxis_title=xlabel, yaxis_title="points")
    return fig


def estimate_vs_truth(truth: Sequence[float], estimate: Sequence[float], labels: Sequence[str], *,
                      tolerance: float | None = None, title: str = "") -> go.Figure:
    """Scatter of estimates against true values (shape ``(m,)`` each) with the identity line and an optional
    relative-tolerance band."""
    truth, estimate = np.asarray(truth, float), np.asarray(estimate, float)
    top = float(max(truth.max(), estimate.max()) * 1.15)
    fig = go.Figure()
    if tolerance is not None:
        fig.add_trace(go.Scatter(x=[0, top, top, 0], y=[0, top * (1 + tolerance), top * (1 - tolerance), 0],
                                 fill="toself", fillcolor="rgba(31,90,166,0.12)", line=dict(width=0),
                                 name=f"±{tolerance:.0%}", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(dash="dash", color=PALETTE[6]),
                             name="estimate = truth", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=truth, y=estimate, mode="markers+text", text=list(labels),
                             textposition=["middle left" if i % 2 == 0 else "middle right"
                                           for i in range(len(truth))], marker=dict(size=10, color=PALETTE[1]),
                             name="estimates"))
    fig.update_layout(title=title, xaxis_title="true dimension", yaxis_title="estimate",
                      xaxis_range=[0, top], yaxis_range=[0, top])
    return fig


def lines(frame, *, x: str, y: str, group: str, title: str = "", xlabel: str = "", ylabel: str = "",
          log_x: bool = False, reference: float | None = None) -> go.Figure:
    """One line per value of ``frame[group]`` through the points ``(frame[x], frame[y])`` (a pandas DataFrame
    in long form), with an optional dashed horizontal reference line."""
    fig = go.Figure()
    for name, part in frame.groupby(group, sort=False):
        part = part.sort_values(x)
        fig.add_trace(go.Scatter(x=part[x], y=part[y], mode="lines+markers", name=str(name)))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", line_color=PALETTE[6])
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, legend_title=group)
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def scatter_labeled(x: Sequence[float], y: Sequence[float], labels: Sequence[str], *, title: str = "",
                    xlabel: str = "", ylabel: str = "") -> go.Figure:
    """Scatter of ``(x, y)`` (shape ``(m,)`` each) with a text label beside every point."""
    fig = go.Figure(go.Scatter(x=list(x), y=list(y), mode="markers+text", text=list(labels),
                               textposition="top center", marker=dict(size=11, color=PALETTE[0])))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, showlegend=False)
    return fig
