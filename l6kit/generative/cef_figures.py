"""Figures of the conformal-embedding-flow page (``notebooks/cef.ipynb``): densities drawn on the unit sphere,
samples in 3-D coloured by their distance from it, training curves. Each function returns a ``go.Figure``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from l6kit.generative.metrics import distance_from_circle


def _surface(grid: dict[str, np.ndarray], values: np.ndarray, **kw):
    import plotly.graph_objects as go

    shape = (len(grid["theta"]), len(grid["phi"]))
    close = lambda a: np.concatenate([a, a[:, :1]], axis=1)                    # noqa: E731 (close the φ seam)
    xyz = [close(grid["points"][:, i].reshape(shape)) for i in range(3)]
    return go.Surface(x=xyz[0], y=xyz[1], z=xyz[2], surfacecolor=close(values.reshape(shape)), **kw)


def sphere_figure(grid: dict[str, np.ndarray], fields: dict[str, np.ndarray], *, title: str = "",
                  colorbar: str = "", points: dict[str, np.ndarray] | None = None, eyes=None):
    """One 3-D panel per field (a function on the grid, shape ``(n_grid,)``) drawn on the unit sphere, with a
    shared colour scale; ``points`` adds marked 3-D points (name -> ``(k, 3)``) to every panel; ``eyes`` gives
    each panel's viewing direction (3-vectors; default: from (−1, −1, 0.5))."""
    from plotly.subplots import make_subplots

    names = list(fields)
    lo, hi = min(np.min(v) for v in fields.values()), max(np.max(v) for v in fields.values())
    fig = make_subplots(rows=1, cols=len(names), specs=[[{"type": "scene"}] * len(names)], subplot_titles=names)
    for i, name in enumerate(names):
        fig.add_trace(_surface(grid, fields[name], cmin=lo, cmax=hi, colorscale="Viridis", showscale=i == 0,
                               colorbar=dict(title=colorbar)), 1, i + 1)
        for label, p in (points or {}).items():
            fig.add_scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=label, showlegend=i == 0,
                              marker=dict(size=6, color="#d1495b", symbol="diamond"), row=1, col=i + 1)
    _cameras(fig, len(names), eyes)
    fig.update_layout(title=title, height=460, legend=dict(orientation="h", y=-0.05))
    return fig


def _cameras(fig, n: int, eyes=None, span: float = 1.6) -> None:
    """Equal cube axes on every scene and a camera looking from ``eyes[i]`` (scaled to distance 1.9)."""
    for i in range(n):
        eye = np.asarray(eyes[i] if eyes is not None else (-1.0, -1.0, 0.5), dtype=float)
        eye = 1.9 * eye / np.linalg.norm(eye)
        axis = dict(range=[-span, span], title="")
        fig.layout[f"scene{i + 1 if i else ''}"].update(
            aspectmode="cube", xaxis=axis, yaxis=axis, zaxis=axis,
            camera=dict(eye=dict(x=eye[0], y=eye[1], z=eye[2])))


def samples_figure(samples: dict[str, Any], *, max_points: int = 2000, title: str = ""):
    """One 3-D scatter per model, points coloured by their distance from the unit sphere (shared scale; axes
    cut at ±1.6, so far outliers are not drawn)."""
    from plotly.subplots import make_subplots

    names = list(samples)
    pts = {k: np.asarray(v, dtype=float)[:max_points] for k, v in samples.items()}
    hi = max(float(np.quantile(distance_from_circle(p), 0.99)) for p in pts.values())
    fig = make_subplots(rows=1, cols=len(names), specs=[[{"type": "scene"}] * len(names)], subplot_titles=names)
    for i, name in enumerate(names):
        p = pts[name]
        fig.add_scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=name, showlegend=False,
                          marker=dict(size=2, color=distance_from_circle(p), cmin=0, cmax=hi, colorscale="Plasma",
                                      showscale=i == 0, colorbar=dict(title="| ‖x‖ − 1 |")), row=1, col=i + 1)
    _cameras(fig, len(names))
    fig.update_layout(title=title, height=460)
    return fig


def curves_figure(curve: pd.DataFrame, losses, *, title: str = ""):
    """Training curves: the loss per epoch; distance of samples/reconstructions from the sphere (log axis);
    grid TV and sample TV of the density."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=["loss per epoch", "distance from the sphere",
                                                        "distance from the true density"])
    fig.add_scatter(x=np.arange(1, len(losses) + 1), y=losses, name="loss (−α log p + β recon)", row=1, col=1)
    for col, names in ((2, ("off_samples", "off_recon")), (3, ("tv", "sample_tv"))):
        for name in names:
            fig.add_scatter(x=curve["epoch"], y=curve[name], mode="lines+markers", name=name, row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title="epoch")
    fig.update_layout(title=title, height=400)
    return fig
