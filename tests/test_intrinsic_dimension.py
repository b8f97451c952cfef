import numpy as np
import pytest
import skdim

from l6kit.data import load
from l6kit.manifold import (
    MLEIntrinsicDimension,
    flat_torus,
    knn_distances,
    local_inverse_dimension,
    per_class_dimension,
    sphere,
    union,
    unique_rows,
)


@pytest.mark.parametrize("k", [5, 10, 20])
def test_matches_scikit_dimension_mle(k):
    X = load("digits", "ci").flat()[:600].astype(np.float64)
    ours = MLEIntrinsicDimension(k=k).fit(X).dimension_
    ref = skdim.id.MLE().fit(X, n_neighbors=k, comb="mle").dimension_
    assert ours == pytest.approx(ref, rel=1e-10)


def test_local_inverse_by_hand():
    d = np.array([[1.0, 2.0, 4.0]])                      # k = 3: log(4/1) + log(4/2) over k-1 = 2
    assert local_inverse_dimension(d)[0] == pytest.approx((np.log(4) + np.log(2)) / 2)
    assert local_inverse_dimension(d, "k-2")[0] == pytest.approx(np.log(4) + np.log(2))
    with pytest.raises(ValueError, match="duplicate"):
        local_inverse_dimension(np.array([[0.0, 1.0, 2.0]]))


def test_knn_distances_match_brute_force():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    brute = np.sort(np.linalg.norm(X[:, None] - X[None], axis=-1), axis=1)[:, 1:6]
    np.testing.assert_allclose(knn_distances(X, 5, batch_size=7), brute, rtol=1e-10)
    with pytest.raises(ValueError, match="k must satisfy"):
        knn_distances(X, 50)


def test_duplicates_are_removed_first():
    X = sphere(200, 2, 5, seed=1)
    Xd = np.concatenate([X, X[:20]])
    est = MLEIntrinsicDimension(k=10).fit(Xd)
    assert est.n_duplicates_ == 20 and est.local_dimension_.shape == (200,)
    assert est.dimension_ == pytest.approx(MLEIntrinsicDimension(k=10).fit(X).dimension_)
    Xu, keep = unique_rows(Xd)
    assert len(Xu) == 200 and keep.tolist() == list(range(200))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("make, d", [(sphere, 2), (sphere, 5), (flat_torus, 2), (flat_torus, 5)])
def test_recovers_low_dimensions_within_ten_percent(make, d, seed):
    X = make(4000, d, 100, seed=seed)
    assert MLEIntrinsicDimension(k=10).fit(X).dimension_ == pytest.approx(d, rel=0.10)


def test_generated_manifolds_are_isometric_embeddings():
    X = sphere(100, 3, 40, radius=2.0)
    assert X.shape == (100, 40) and np.allclose(np.linalg.norm(X, axis=1), 2.0)
    T = flat_torus(100, 2, 10)
    assert np.allclose(np.linalg.norm(T, axis=1), np.sqrt(2))
    U, labels = union([X, X], spacing=50.0)
    assert U.shape == (200, 40) and np.bincount(labels).tolist() == [100, 100]


def test_bootstrap_is_seeded_and_per_class_has_all_classes():
    X = sphere(300, 3, 10)
    est = MLEIntrinsicDimension(k=10)
    a, b = est.bootstrap(X, 5, seed=3), est.bootstrap(X, 5, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5,) and np.std(a) > 0
    y = np.repeat([0, 1, 2], 100)
    per = per_class_dimension(X, y, k=10, n_boot=3)
    assert sorted(per) == [0, 1, 2] and all(v["n"] == 100 and v["boot_std"] > 0 for v in per.values())


def test_too_few_points_is_a_clear_error():
    with pytest.raises(ValueError, match="needs more than k distinct points"):
        MLEIntrinsicDimension(k=10).fit(np.eye(5))
