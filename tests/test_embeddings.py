"""Embedding tables: round trip, validation, distances with known values, neighbours, projection, sampling."""

import numpy as np
import pandas as pd
import pytest

from l6kit import embeddings as emb


def _table(tmp_path, metric="euclidean", n=5, d=3):
    coords = np.random.default_rng(0).normal(size=(n, d)) * (0.2 if metric == "poincare" else 1.0)
    meta = pd.DataFrame({"kind": ["user", "item"] * (n // 2) + ["user"] * (n % 2), "pop": np.arange(n),
                         "cold": np.arange(n) % 2 == 0})
    return emb.load_table(emb.save_table(tmp_path / "t.npz", coords, meta, metric=metric, name="t",
                                         description="test table")), coords


def test_round_trip_keeps_coords_meta_and_attributes(tmp_path):
    table, coords = _table(tmp_path)
    np.testing.assert_allclose(table.coords, coords.astype(np.float32))
    assert list(table.meta.columns) == ["kind", "pop", "cold"]
    assert table.meta["kind"].tolist()[:2] == ["user", "item"] and table.meta["cold"].dtype == bool
    assert (table.metric, table.name, table.description) == ("euclidean", "t", "test table")
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize("coords, meta, metric, match", [
    (np.zeros((3, 2)), pd.DataFrame({"a": [1, 2]}), "euclidean", "rows"),
    (np.zeros((3, 2)), pd.DataFrame({"a": [1, 2, 3]}), "manhattan", "metric"),
    (np.full((3, 2), np.nan), pd.DataFrame({"a": [1, 2, 3]}), "euclidean", "NaN"),
    (np.ones((3, 2)), pd.DataFrame({"a": [1, 2, 3]}), "poincare", "unit ball"),
    (np.zeros((0, 2)), pd.DataFrame({"a": []}), "euclidean", "shape"),
    (np.zeros((3, 2)), pd.DataFrame({"a/b": [1, 2, 3]}), "euclidean", "column"),
])
def test_bad_tables_are_refused_with_a_message(tmp_path, coords, meta, metric, match):
    with pytest.raises(ValueError, match=match):
        emb.save_table(tmp_path / "bad.npz", coords, meta, metric=metric, name="bad")


def test_loading_a_foreign_npz_says_what_is_missing(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not an embedding table"):
        emb.load_table(tmp_path / "x.npz")


def test_distances_match_hand_computed_values():
    X = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(emb.distances(X, X[0], "euclidean"), [0, 0.5, 2])
    np.testing.assert_allclose(emb.distances(X[1:], np.array([1.0, 0.0]), "cosine"), [0, 1])
    # from the origin the Poincaré distance is 2 artanh(r)
    np.testing.assert_allclose(emb.distances(X[:2], X[0], "poincare"), [0, 2 * np.arctanh(0.5)])


def test_nearest_uses_the_tables_metric_and_excludes_the_point(tmp_path):
    coords = np.array([[0.0, 0.0], [0.6, 0.0], [0.0, 0.3], [0.97, 0.0]])
    meta = pd.DataFrame({"id": list("abcd")})
    table = emb.EmbeddingTable(coords, meta, "poincare", "p")
    out = emb.nearest(table, 1, k=2)
    assert out["point"].tolist() == [0, 2] and out["id"].tolist() == ["a", "c"]
    # Euclidean: the point at 0.97 is the nearest to 0.6; hyperbolically it is far (near the boundary)
    assert emb.nearest(emb.EmbeddingTable(coords, meta, "euclidean", "e"), 1, k=1)["id"].tolist() == ["d"]
    with pytest.raises(IndexError):
        emb.nearest(table, 4)


def test_projection_is_native_in_2d_and_pca_otherwise():
    meta = pd.DataFrame({"i": range(50)})
    disk = emb.EmbeddingTable(np.random.default_rng(1).uniform(-0.5, 0.5, (50, 2)), meta, "poincare", "d")
    xy, how = emb.project_2d(disk)
    np.testing.assert_allclose(xy, disk.coords)
    assert "Poincaré" in how
    X = np.random.default_rng(2).normal(size=(50, 6)) * np.array([5, 3, 0.1, 0.1, 0.1, 0.1])
    xy, how = emb.project_2d(emb.EmbeddingTable(X, meta, "euclidean", "e"))
    assert how == "PCA" and xy.shape == (50, 2)
    assert xy[:, 0].var() > 0.9 * X[:, 0].var()   # the leading component is the widest axis


def test_subsample_caps_the_points_and_keeps_the_selected_one():
    assert len(emb.subsample(10, 100)) == 10
    rows = emb.subsample(100_000, 5_000, keep=123, seed=3)
    assert len(rows) == 5_000 and 123 in rows and np.all(np.diff(rows) > 0)
