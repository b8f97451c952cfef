"""The manifold-dimension dashboard's logic, driven by setting its parameters (no browser)."""

import numpy as np
import panel as pn
import pytest

import l6kit.data
from l6kit.dashboards import DASHBOARDS
from l6kit.dashboards.manifold import (
    PAPER_SETS,
    UNION,
    ManifoldDashboard,
    app,
    available_datasets,
    extremes,
    extremes_figure,
    load_dataset,
    local_dimensions,
)
from l6kit.manifold import MLEIntrinsicDimension, per_class_dimension


@pytest.fixture(scope="module")
def dash():
    return ManifoldDashboard()


def test_datasets_and_entry_points():
    names = available_datasets()
    assert names[:2] == ("digits", UNION)
    assert set(names[2:]) <= set(PAPER_SETS)
    assert DASHBOARDS["manifold"].name == "manifold.py" and DASHBOARDS["manifold"].exists()
    tabs = app()
    assert isinstance(tabs, pn.Tabs) and tabs._names == ["Intrinsic dimension", "Learned manifolds"]
    assert isinstance(ManifoldDashboard().__panel__(), pn.layout.Panel)


def test_per_class_values_match_the_estimator(dash):
    dash.param.update(dataset="digits", klass="all", k=15, n_boot=5)
    digits = l6kit.data.load("digits", "ci")
    expected = per_class_dimension(digits.flat(), digits.labels, 15, n_boot=5)
    bars = dash.bars.object.data[0]
    assert list(bars.x) == list(digits.classes)
    np.testing.assert_allclose(bars.y, [expected[c]["dimension"] for c in range(10)], rtol=1e-12)
    np.testing.assert_allclose(bars.error_y.array, [expected[c]["boot_std"] for c in range(10)], rtol=1e-12)
    whole = MLEIntrinsicDimension(15).fit(digits.flat()).dimension_
    assert f"{whole:.2f} ±" in dash.status.object and "k = 15" in dash.status.object
    assert not dash.alert.visible


def test_union_of_spheres_recovers_each_dimension(dash):
    dash.param.update(dataset=UNION, k=10, n_boot=5)
    bars = dash.bars.object.data[0]
    for name, estimate in zip(bars.x, bars.y, strict=True):
        true = int(name.split("-")[0])            # classes are named "<d>-sphere"
        assert abs(estimate - true) <= 0.2 * true, (name, estimate)
    assert dash.extremes.object.data[0].type == "scatter"     # non-image data: a PCA scatter


def test_invalid_k_shows_an_alert_and_keeps_the_views(dash):
    dash.dataset = "digits"                  # first: the class options follow the data set
    dash.param.update(klass="3", k=10, n_boot=5)
    before = (dash.bars.object, dash.histogram.object, dash.status.object)
    dash.k = 10_000                                            # beyond the widget's bounds, set in code
    assert dash.alert.visible and "too large" in dash.alert.object and "class '3'" in dash.alert.object
    assert (dash.bars.object, dash.histogram.object, dash.status.object) == before
    dash.k = 2
    assert dash.alert.visible and "k >= 3" in dash.alert.object
    dash.k = 10
    assert not dash.alert.visible


def test_unknown_class_is_a_clear_value_error(dash):
    with pytest.raises(ValueError, match="Unknown class 'cat'"):
        local_dimensions("digits", 10, "cat", 0)
    with pytest.raises(ValueError, match="does not accept 'cat'"):   # the selector refuses it outright
        dash.klass = "cat"


def test_switching_dataset_resets_the_class(dash):
    dash.dataset = "digits"
    dash.param.update(klass="7", k=10, n_boot=5)
    assert "class **7**" in dash.status.object
    dash.dataset = UNION
    assert dash.klass == "all"
    assert dash.param.klass.objects == ["all", "2-sphere", "5-sphere", "9-sphere"]
    assert dash.status.object.startswith(f"**{UNION}**")
    dash.dataset = "digits"
    assert dash.param.klass.objects == ["all", *[str(i) for i in range(10)]]


def test_lowest_and_highest_local_dimension_images():
    ds = load_dataset("digits")
    local = local_dimensions("digits", 10, "3", 0)
    low, high = extremes(local)
    order = np.argsort(local.local, kind="stable")
    np.testing.assert_array_equal(low, local.index[order[:8]])
    np.testing.assert_array_equal(high, local.index[order[::-1][:8]])
    # independently: refit class 3 and compare the local dimensions of the chosen rows
    rows = np.flatnonzero(ds.labels == 3)
    ref = MLEIntrinsicDimension(10).fit(ds.X[rows])
    dims = dict(zip(rows[ref.index_].tolist(), ref.local_dimension_, strict=True))
    assert max(dims[i] for i in low) <= np.sort(ref.local_dimension_)[7] + 1e-12
    assert min(dims[i] for i in high) >= np.sort(ref.local_dimension_)[-8] - 1e-12
    fig = extremes_figure(ds, local, "3")
    assert len(fig.data) == 16
    np.testing.assert_array_equal(fig.data[0].z, ds.images[low[0]][::-1])     # heatmap rows run upward
    np.testing.assert_array_equal(fig.data[8].z, ds.images[high[0]][::-1])
