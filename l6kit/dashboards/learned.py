"""The "Learned manifolds" view of the manifold dashboard: what trained generative models learned.

Reads the files notebooks save with :func:`l6kit.manifold.learned.save_learned` (``results/artifacts/``) and
draws the training data, each model's samples and its learned manifold coloured by the model's density on it
(2-D data as a plane, 3-D data — the ``cef`` sphere — as a rotatable scene), plus the density along the
learned manifold. Logic in plain functions; :class:`LearnedView` is a thin Viewer.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param
import plotly.graph_objects as go

from l6kit import claims, viz
from l6kit.manifold.learned import find_learned, load_learned

NO_FILES = ("No learned manifolds saved yet: run a notebook that saves one, e.g. `l6kit run two-step`, "
            "`l6kit run rectangular-flows` or `l6kit run cef` (files go to `results/artifacts/`).")


def available() -> dict[str, Path]:
    """Title -> file of every learned-manifold file in ``<results_dir>/artifacts``."""
    return find_learned(claims.results_dir() / "artifacts")


@functools.lru_cache(maxsize=8)
def _read(path: str, _mtime_ns: int) -> dict[str, Any]:
    return load_learned(path)


def load(path: Path) -> dict[str, Any]:
    """The file at ``path``, cached until it changes."""
    return _read(str(path), Path(path).stat().st_mtime_ns)


def _trace(points: np.ndarray, *, name: str, marker: dict, mode: str = "markers") -> go.BaseTraceType:
    if points.shape[1] == 3:
        return go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], mode=mode, name=name, marker=marker)
    return go.Scattergl(x=points[:, 0], y=points[:, 1], mode=mode, name=name, marker=marker)


def learned_figure(tree: dict[str, Any], model: str, *, max_points: int = 3000) -> go.Figure:
    """Data (grey), the model's samples, and its learned manifold coloured by density (if saved).

    Raises:
        ValueError: ``model`` is not in the file.
    """
    if model not in tree["models"]:
        raise ValueError(f"no model {model!r} in this file; it has: {', '.join(tree['models'])}")
    parts = tree["models"][model]
    fig = go.Figure()
    fig.add_trace(_trace(tree["data"][:max_points], name="training data",
                         marker=dict(size=3, color="lightgrey")))
    fig.add_trace(_trace(parts["samples"][:max_points], name=f"samples of {model}",
                         marker=dict(size=3, color="#1f77b4", opacity=0.6)))
    flat = tree["data"].shape[1] == 2
    if "manifold" in parts:
        fig.add_trace(_trace(parts["manifold"], name="learned manifold (colour: density)",
                             marker=dict(size=5 if flat else 3, color=parts["density"], colorscale="Viridis",
                                         colorbar=dict(title="density", thickness=12))))
    fig.update_layout(template=viz.TEMPLATE, title=f"{tree['title']}: {model}", height=560,
                      legend=dict(orientation="h", y=-0.12))
    if flat:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    else:       # look at the densest part of the learned manifold (or at the data's centre)
        focus = (parts["manifold"][np.argmax(parts["density"])] if "manifold" in parts
                 else tree["data"].mean(0))
        eye = 2.0 * focus / max(float(np.linalg.norm(focus)), 1e-9)
        fig.update_layout(scene=dict(aspectmode="data", camera=dict(eye=dict(x=eye[0], y=eye[1], z=eye[2]))))
    return fig


def density_figure(tree: dict[str, Any]) -> go.Figure | None:
    """Each model's density along its learned manifold against arc length (1-D manifolds in 2-D only);
    ``None`` when no model saved a manifold curve."""
    fig = go.Figure()
    for name, parts in tree["models"].items():
        if "manifold" in parts and parts["manifold"].shape[1] == 2:
            steps = np.linalg.norm(np.diff(parts["manifold"], axis=0), axis=1)
            fig.add_trace(go.Scatter(x=np.concatenate([[0], np.cumsum(steps)]), y=parts["density"],
                                     mode="lines", name=name))
    if not fig.data:
        return None
    fig.update_layout(template=viz.TEMPLATE, title="Density along each learned curve", height=360,
                      xaxis_title="arc length along the learned curve", yaxis_title="density")
    return fig


class LearnedView(pn.viewable.Viewer):
    """Pick a saved file and a model; see its samples and learned manifold."""

    file = param.String(default="", label="Saved run")
    model = param.String(default="", label="Model")

    def __init__(self, **params):
        super().__init__(**params)
        self.files = available()
        self.status = pn.pane.Markdown(NO_FILES if not self.files else "", sizing_mode="stretch_width")
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.scene = pn.pane.Plotly(None, sizing_mode="stretch_width", min_height=580)
        self.density = pn.pane.Plotly(None, sizing_mode="stretch_width", min_height=380, visible=False)
        if self.files:
            with param.discard_events(self):
                self.file = self.file or next(iter(self.files))
                self.model = self.model or next(iter(load(self.files[self.file])["models"]))
            self._refresh()
        self.param.watch(self._on_file, "file")
        self.param.watch(self._refresh, "model")

    def _on_file(self, *_events) -> None:
        if self.file in self.files:
            first = next(iter(load(self.files[self.file])["models"]))
            if self.model != first:
                self.model = first              # triggers _refresh
                return
        self._refresh()

    def _refresh(self, *_events) -> None:
        try:
            if self.file not in self.files:
                raise ValueError(f"no saved run {self.file!r}")
            tree = load(self.files[self.file])
            scene = learned_figure(tree, self.model)
        except ValueError as exc:
            self.alert.object, self.alert.visible = f"**Cannot show this choice:** {exc}", True
            return
        self.alert.visible = False
        self.scene.object = scene
        self.density.object = density_figure(tree)
        self.density.visible = self.density.object is not None
        self.status.object = f"**{tree['title']}** · model **{self.model}**  \n{tree['description']}"

    def __panel__(self) -> pn.viewable.Viewable:
        if not self.files:
            return pn.Column(self.status, sizing_mode="stretch_width")
        file_w = pn.widgets.Select.from_param(self.param.file, options=list(self.files), width=260)
        model_w = pn.widgets.Select.from_param(self.param.model, width=260)

        def _models(*_):
            model_w.options = list(load(self.files[self.file])["models"]) if self.file in self.files else []

        _models()
        self.param.watch(_models, "file")
        intro = pn.pane.Markdown("### Learned manifolds\nWhat generative models trained in the book's notebooks "
                                 "learned: samples, and the learned manifold coloured by the model's density.",
                                 width=270)
        return pn.Row(pn.Column(intro, file_w, model_w, width=280),
                      pn.Column(self.status, self.alert, self.scene, self.density, sizing_mode="stretch_width"),
                      sizing_mode="stretch_width")
