"""Learned-manifold files and the manifold dashboard's "Learned manifolds" view."""

import numpy as np
import pytest
import torch

from l6kit.dashboards import learned as lv
from l6kit.manifold.learned import find_learned, load_learned, save_learned


def _circle(n):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([np.cos(t), np.sin(t)])


@pytest.fixture
def saved(tmp_path, monkeypatch):
    monkeypatch.setenv("L6KIT_RESULTS", str(tmp_path))
    curve = _circle(50)
    save_learned(tmp_path / "artifacts" / "c-manifold.npz", title="circle", data=_circle(200),
                 models={"two-step": {"samples": torch.tensor(_circle(80)), "manifold": curve,
                                      "density": np.full(50, 1 / (2 * np.pi))},
                         "one-step": {"samples": 1.1 * _circle(80)}}, description="toy")
    sphere = np.random.default_rng(0).normal(size=(100, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    save_learned(tmp_path / "artifacts" / "s-manifold.npz", title="sphere", data=sphere,
                 models={"cef": {"samples": sphere, "manifold": sphere, "density": np.ones(100)}})
    np.savez(tmp_path / "artifacts" / "other.npz", coords=np.zeros((2, 2)))
    return tmp_path


def test_round_trip_and_discovery(saved):
    found = find_learned(saved / "artifacts")
    assert list(found) == ["circle (c-manifold.npz)", "sphere (s-manifold.npz)"]
    tree = load_learned(found["circle (c-manifold.npz)"])
    assert set(tree["models"]) == {"two-step", "one-step"} and tree["description"] == "toy"
    assert tree["models"]["two-step"]["manifold"].shape == (50, 2)
    with pytest.raises(ValueError, match="not a learned-manifold"):
        load_learned(saved / "artifacts" / "other.npz")


@pytest.mark.parametrize("data, models, match", [
    (np.zeros((5, 4)), {"m": {"samples": np.zeros((3, 4))}}, "shape"),
    (np.zeros((5, 2)), {}, "empty"),
    (np.zeros((5, 2)), {"m": {"manifold": np.zeros((3, 2)), "density": np.zeros(3)}}, "no samples"),
    (np.zeros((5, 2)), {"m": {"samples": np.zeros((3, 2)), "manifold": np.zeros((3, 2))}}, "together"),
    (np.zeros((5, 2)), {"m": {"samples": np.zeros((3, 3))}}, "shape"),
    (np.zeros((5, 2)), {"m": {"samples": np.zeros((3, 2)), "manifold": np.zeros((3, 2)), "density": np.zeros(2)}},
     "one value per"),
])
def test_bad_files_are_refused(tmp_path, data, models, match):
    with pytest.raises(ValueError, match=match):
        save_learned(tmp_path / "x.npz", title="x", data=data, models=models)


def test_figures_for_plane_and_sphere(saved):
    files = lv.available()
    circle = lv.load(files["circle (c-manifold.npz)"])
    fig = lv.learned_figure(circle, "two-step")
    assert [t.type for t in fig.data] == ["scattergl"] * 3 and fig.data[2].marker.colorscale is not None
    assert len(lv.learned_figure(circle, "one-step").data) == 2           # no curve saved for it
    dens = lv.density_figure(circle)
    assert len(dens.data) == 1 and dens.data[0].x[-1] == pytest.approx(49 * 2 * np.sin(np.pi / 50))   # 49 chords
    sphere = lv.load(files["sphere (s-manifold.npz)"])
    assert lv.learned_figure(sphere, "cef").data[0].type == "scatter3d" and lv.density_figure(sphere) is None
    with pytest.raises(ValueError, match="no model"):
        lv.learned_figure(sphere, "two-step")


def test_view_switches_files_and_says_when_nothing_is_saved(saved, monkeypatch):
    view = lv.LearnedView()
    assert view.model == "two-step" and "**circle**" in view.status.object and view.density.visible
    view.file = "sphere (s-manifold.npz)"
    assert view.model == "cef" and not view.density.visible and not view.alert.visible
    view.model = "nope"
    assert view.alert.visible and "no model" in view.alert.object
    monkeypatch.setenv("L6KIT_RESULTS", str(saved / "empty"))
    assert lv.LearnedView().status.object == lv.NO_FILES
