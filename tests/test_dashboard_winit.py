"""The WinIT dashboard's logic, driven by setting its parameters (no browser).

The dashboard computes at the ``ci`` profile; the GRU and the generator of each (data set, delay) are trained
once per process (``winit.prepare`` is cached), so the first test pays for Spike at delay 2.
"""

import numpy as np
import panel as pn
import pytest

from l6kit.dashboards import DASHBOARDS
from l6kit.dashboards import winit as wd
from l6kit.papers import winit


@pytest.fixture(scope="module")
def nothing_saved(tmp_path_factory):
    return str(tmp_path_factory.mktemp("results") / "artifacts" / "winit.npz")        # never written


@pytest.fixture(scope="module")
def dash(nothing_saved):
    return wd.WinITDashboard(artifact=nothing_saved)


@pytest.fixture(scope="module")
def reference():
    """What the dashboard shows by default, computed directly by the paper module."""
    return winit.compute_attributions(wd.dashboard_config(), "spike", 2, ("winit", "afo"), 5)


def _titles(fig):
    return [a.text for a in fig.layout.annotations]


def test_entry_points(isolated):
    assert DASHBOARDS["winit"].name == "winit.py" and DASHBOARDS["winit"].exists()
    board = wd.app()
    assert isinstance(board, wd.WinITDashboard) and isinstance(board.__panel__(), pn.layout.Panel)
    assert wd.artifact_path() == isolated / "results" / "artifacts" / "winit.npz"
    assert wd.load_saved() is None and "computed at ci" in board.status.object


def test_default_view_shows_the_results_auprc(dash, reference):
    dash.param.update(dataset="spike", delay=2, method="winit", compare="afo", window=5, source="auto")
    i = dash.sample
    assert i == winit.example_index(reference)                     # an illustrative series
    assert not dash.alert.visible
    for m, label in (("winit", "WinIT"), ("afo", "AFO")):
        value = reference["per_sample_auprc"][m][i]
        assert np.isfinite(value)
        assert f"{label} **{value:.3f}**" in dash.status.object
        assert f"{label}: AUPRC {value:.3f}" in _titles(dash.heatmaps.object)
        assert f"{label} {reference['scores'][m]['auprc']:.3f}" in dash.status.object
    heat = dash.heatmaps.object.data                               # ground truth, WinIT, AFO: (F, T) each
    np.testing.assert_array_equal(heat[0].z, reference["truth"][i].astype(float))
    attr = np.abs(reference["attributions"]["winit"][i])
    np.testing.assert_allclose(heat[1].z, attr / attr.max())
    np.testing.assert_array_equal(dash.series.object.data[0].y, reference["x"][i, 0])
    f = int(np.argmax(reference["truth"][i].sum(-1)))
    np.testing.assert_array_equal(dash.windows.object.data[0].z, reference["windows"]["winit"][i, f].T)


def test_setting_parameters_updates_the_views(dash, reference):
    dash.param.update(dataset="spike", delay=2, method="winit", compare="afo", window=5, source="auto")
    dash.sample = 7
    assert "series 7 of 100" in dash.status.object
    np.testing.assert_array_equal(dash.series.object.data[0].y, reference["x"][7, 0])
    dash.param.update(sample=0, window=3)
    assert "W = 3" in dash.status.object and dash.windows.object.data[0].z.shape == (3, 30)
    dash.param.update(method="deeplift", compare="none")
    assert _titles(dash.heatmaps.object)[1].startswith("DeepLIFT") and len(dash.heatmaps.object.data) == 2
    assert not dash.windows.visible                                 # per-window scores are WinIT's only
    dash.param.update(method="winit", compare="afo", window=5)
    dash.delay = 0                                                  # a new black box, trained once
    assert dash.status.object.startswith("**Spike, delay 0**") and not dash.alert.visible
    dash.delay = 2


def test_switching_the_data_set(dash):
    dash.dataset = "state"
    assert dash.status.object.startswith("**State**") and not dash.alert.visible
    assert dash.series.object.data[0].x.shape == (wd.series_length("state"),)
    dash.dataset = "spike"
    assert dash.status.object.startswith("**Spike, delay 2**")


def test_two_methods_side_by_side(dash):
    dash.param.update(dataset="spike", delay=2, sample=0, window=5, method="winit", compare="ig")
    titles = _titles(dash.heatmaps.object)
    assert titles[0].startswith("ground truth") and titles[1].startswith("WinIT") and titles[2].startswith("IG")
    assert len(dash.heatmaps.object.data) == 3
    status = dash.status.object
    assert "WinIT **" in status and "IG **" in status
    dash.compare = "winit"                                          # the same method twice: shown once
    assert len(dash.heatmaps.object.data) == 2
    dash.compare = "afo"


@pytest.mark.parametrize("name, value, message", [
    ("sample", 100, "there are 100 held-out series"),
    ("sample", -1, "numbered 0 to 99"),
    ("window", 40, "larger than the series (30 steps)"),
    ("window", 11, "at most 10 steps"),
    ("window", 0, "at least 1 step"),
    ("method", "lime", "Unknown method 'lime'"),
    ("compare", "shap", "Unknown method 'shap'"),
    ("delay", 30, "0 <= delay <= 29"),
    ("source", "saved", "No saved attributions"),
])
def test_bad_values_show_an_alert_and_keep_the_views(dash, name, value, message):
    dash.param.update(dataset="spike", delay=2, sample=0, window=5, method="winit", compare="afo", source="auto")
    before = (dash.series.object, dash.heatmaps.object, dash.status.object)
    good = getattr(dash, name)
    setattr(dash, name, value)                                      # no exception
    assert dash.alert.visible and message in dash.alert.object
    assert (dash.series.object, dash.heatmaps.object, dash.status.object) == before
    setattr(dash, name, good)
    assert not dash.alert.visible


def test_saved_attributions_match_computing(tmp_path, reference):
    path = tmp_path / "artifacts" / "winit.npz"
    winit.save_attributions(path, reference)
    saved = wd.WinITDashboard(artifact=str(path), source="saved")
    computed = wd.WinITDashboard(artifact=str(path), source="ci")
    assert "saved run (winit.npz)" in saved.status.object and "computed at ci" in computed.status.object
    assert saved.status.object.replace("saved run (winit.npz)", "") == \
        computed.status.object.replace("computed at ci", "")
    for a, b in zip(saved.heatmaps.object.data, computed.heatmaps.object.data, strict=True):
        np.testing.assert_array_equal(a.z, b.z)
    v_saved = wd.view("spike", 2, ("winit", "afo"), 5, "saved", path)
    v_ci = wd.view("spike", 2, ("winit", "afo"), 5, "ci", path)
    for key in ("x", "y", "truth", "prob"):
        np.testing.assert_array_equal(getattr(v_saved, key), getattr(v_ci, key))
    for m in ("winit", "afo"):
        np.testing.assert_array_equal(v_saved.attributions[m], v_ci.attributions[m])
        np.testing.assert_array_equal(v_saved.per_sample_auprc[m], v_ci.per_sample_auprc[m])
    np.testing.assert_array_equal(v_saved.windows["winit"], v_ci.windows["winit"])
    # a choice the saved run does not hold: "auto" computes it, "saved" says why it cannot
    assert wd.view("spike", 2, ("winit",), 3, "auto", path).source == "computed at ci"
    saved.window = 3
    assert saved.alert.visible and "does not fit" in saved.alert.object


def test_pending_until_computed():
    args = ("spike", 2, ("gradientshap",), 5, "ci")
    assert wd.pending(*args)
    wd.view(*args)
    assert not wd.pending(*args)
    with pytest.raises(ValueError, match="Unknown data set"):
        wd.pending("mimic", 0, ("winit",), 5)
