"""The embeddings dashboard's logic, driven by setting its parameters (no browser)."""

import numpy as np
import pandas as pd
import pytest

from l6kit import embeddings as emb
from l6kit.dashboards import DASHBOARDS
from l6kit.dashboards import embeddings as ed


@pytest.fixture
def saved(tmp_path, monkeypatch):
    """Two saved tables in a temporary results folder: a Poincaré disk and a 5-D Euclidean table."""
    monkeypatch.setenv("L6KIT_RESULTS", str(tmp_path))
    rng = np.random.default_rng(0)
    r = rng.uniform(0, 0.9, 300)
    a = rng.uniform(0, 2 * np.pi, 300)
    disk = np.column_stack([r * np.cos(a), r * np.sin(a)])
    meta = pd.DataFrame({"kind": np.where(np.arange(300) < 100, "user", "item"), "depth": (r * 4).astype(int)})
    emb.save_table(tmp_path / "artifacts" / "a-disk.npz", disk, meta, metric="poincare", name="disk")
    emb.save_table(tmp_path / "artifacts" / "b-flat.npz", rng.normal(size=(50, 5)),
                   pd.DataFrame({"pop": rng.integers(0, 100, 50)}), metric="euclidean", name="flat")
    np.savez(tmp_path / "artifacts" / "other.npz", x=np.zeros(2))          # not a table: skipped
    return tmp_path


def test_entry_point_and_table_discovery(saved):
    assert DASHBOARDS["embeddings"].name == "embeddings.py"
    tables = ed.find_tables()
    assert list(tables) == ["disk (a-disk.npz)", "flat (b-flat.npz)", ed.DEMO]
    assert ed.load(tables[ed.DEMO]).coords.shape == (1797, 64)


def test_poincare_table_is_drawn_natively_with_the_boundary(saved):
    table = ed.load(ed.find_tables()["disk (a-disk.npz)"])
    nb = ed.neighbour_frame(table, 5, 7)
    fig = ed.scatter_figure(table, "kind", 5, nb)
    names = [t.name for t in fig.data]
    assert names[:2] == ["kind = item", "kind = user"] and names[-2:] == ["7 nearest (poincare)", "point 5"]
    np.testing.assert_allclose(fig.data[-1].x, table.coords[5, :1])     # native coordinates, no projection
    assert fig.layout.shapes[0].type == "circle" and "Poincaré disk" in fig.layout.title.text
    # hyperbolic neighbours: the listed distances are the Poincaré ones and increase
    assert np.all(np.diff(nb["distance"]) >= 0)
    assert nb["distance"].iloc[0] == pytest.approx(emb.distances(table.coords, table.coords[5], "poincare")
                                                   [nb["point"].iloc[0]], rel=1e-6)


def test_numeric_colour_uses_a_colour_scale_and_large_tables_are_sampled(saved):
    table = ed.load(ed.find_tables()["flat (b-flat.npz)"])
    fig = ed.scatter_figure(table, "pop", 0, None)
    assert fig.data[0].marker.colorscale is not None and "PCA" in fig.layout.title.text
    big = emb.EmbeddingTable(np.random.default_rng(1).normal(size=(100_000, 8)).astype(np.float32),
                             pd.DataFrame({"g": [f"g{i % 30}" for i in range(100_000)]}), "euclidean", "big")
    fig = ed.scatter_figure(big, "g", 99_999, None, max_points=5_000)
    drawn = sum(len(t.x) for t in fig.data[:-1])
    assert drawn == 5_000 and "5,000 of 100,000 points (random sample)" in fig.layout.title.text
    assert len(fig.data) - 1 == ed.MAX_CATEGORIES and fig.data[-2].name == "g = other"   # 30 groups: 11 + other


def test_dashboard_reacts_and_reports_bad_choices(saved):
    dash = ed.EmbeddingsDashboard()
    assert dash.table == "disk (a-disk.npz)" and "metric **poincare**" in dash.status.object
    dash.point = 42
    assert "Point **42**" in dash.status.object and len(dash.neighbours.object) == 10
    dash.plot.click_data = {"points": [{"customdata": 7}]}                  # a click selects a point
    assert dash.point == 7 and "Point **7**" in dash.status.object
    dash.point = 5000
    assert dash.alert.visible and "outside this table" in dash.alert.object
    dash.point = 3
    assert not dash.alert.visible
    dash.colour = "genre"
    assert dash.alert.visible and "no column 'genre'" in dash.alert.object
    dash.colour, dash.table = ed.NONE, ed.DEMO
    assert not dash.alert.visible and "digits" in dash.status.object
    dash.k = 0
    assert "at least 1" in dash.alert.object
