"""Tests for l6kit.retrieval: generators, exact kNN, metrics with hand-computed values, baselines, EGT."""

import importlib
import math

import numpy as np
import pytest

from l6kit.retrieval import (
    adjacency,
    alpha_qe,
    arcs,
    average_precision,
    chains,
    diffusion,
    digits_descriptors,
    egt_rank,
    egt_traverse,
    knn,
    knn_graph,
    knn_rank,
    mean_average_precision,
    revisited_map,
    split_queries,
)

baselines_mod = importlib.import_module("l6kit.retrieval.baselines")
knn_mod = importlib.import_module("l6kit.retrieval.knn")     # the package attribute `knn` is the function
importlib.import_module("l6kit.retrieval.revisitop")          # registers roxford5k / rparis6k


# ---- generators ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, n, d", [(arcs, 2000, 8), (chains, 2000, 32), (digits_descriptors, 1797, 64)])
def test_generators_shapes_and_unit_rows(make, n, d):
    X, y = make()
    assert X.shape == (n, d) and X.dtype == np.float32 and y.shape == (n,)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert len(np.unique(y)) in (10, 20)


def test_generators_are_seeded():
    np.testing.assert_array_equal(arcs(seed=3)[0], arcs(seed=3)[0])
    assert not np.allclose(chains(seed=1)[0], chains(seed=2)[0])


def test_split_queries_disjoint():
    X, y = arcs(n_classes=3, pts=10)
    Q, qy, Xi, yi = split_queries(X, y, 5, seed=1)
    assert Q.shape == (5, 8) and Xi.shape == (25, 8) and len(qy) == 5 and len(yi) == 25
    rows = {tuple(r) for r in X.tolist()}
    assert {tuple(r) for r in Q.tolist()} | {tuple(r) for r in Xi.tolist()} == rows
    with pytest.raises(ValueError):
        split_queries(X, y, 30)


# ---- kNN -------------------------------------------------------------------------------------------------
def test_knn_matches_brute_force_and_faiss(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 16)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = X[:20] + 0.01
    sims, ids = knn(X, Q, 7)
    S = Q @ X.T
    np.testing.assert_array_equal(ids, np.argsort(-S, axis=1)[:, :7])
    np.testing.assert_allclose(sims, np.take_along_axis(S, ids, 1), rtol=1e-5)
    monkeypatch.setattr(knn_mod, "NUMPY_MAX", 0)            # force the faiss path
    fs, fi = knn(X, Q, 7)
    np.testing.assert_array_equal(fi, ids)
    np.testing.assert_allclose(fs, sims, rtol=1e-4, atol=1e-5)


def test_knn_graph_excludes_self():
    X, _ = arcs(n_classes=2, pts=30)
    sims, ids = knn_graph(X, 5)
    assert ids.shape == (60, 5) and not (ids == np.arange(60)[:, None]).any()
    np.testing.assert_array_equal(ids, knn(X, X, 6)[1][:, 1:])
    assert np.all(np.diff(sims, axis=1) <= 1e-6)


# ---- metrics (hand-computed) -----------------------------------------------------------------------------
def test_average_precision_by_hand():
    r = np.array([3, 1, 4, 0, 2])
    assert average_precision(r, np.array([1, 0])) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert average_precision(r, np.array([1, 0]), np.array([3])) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(r, np.array([1, 0]), np.array([3]), trapezoid=True) == pytest.approx(19 / 24)
    assert average_precision(r, np.array([1, 0]), k=2) == pytest.approx(0.5 / 2)
    assert average_precision(r, np.array([9])) == 0.0
    assert math.isnan(average_precision(r, np.array([], int)))
    assert average_precision(np.arange(5), np.arange(5)) == 1.0


def test_mean_average_precision_at_k():
    R = np.array([[3, 1, 4, 0, 2], [0, 1, 2, 3, 4]])
    pos = [np.array([1, 0]), np.array([0])]
    assert mean_average_precision(R, pos) == pytest.approx((0.5 + 1.0) / 2)
    assert mean_average_precision(R, pos, k=2) == pytest.approx((0.25 + 1.0) / 2)
    junk = [np.array([3]), np.array([], int)]
    assert mean_average_precision(R, pos, junk) == pytest.approx((5 / 6 + 1) / 2)


def test_revisited_map_by_hand():
    R = np.array([[3, 1, 4, 0, 2], [2, 4, 1, 0, 3]])
    gnd = [{"easy": [1], "hard": [0], "junk": [3]},
           {"easy": [4], "hard": [], "junk": [2]}]
    out = revisited_map(R, gnd)
    # q0: easy -> [1,4,2] AP 1; medium -> [1,4,0,2] AP 19/24; hard -> [4,0,2] AP (0 + 1/2)/2
    # q1: easy/medium -> [4,1,0,3] AP 1; no hard positive -> left out of Hard
    assert out["easy"] == pytest.approx(1.0)
    assert out["medium"] == pytest.approx((19 / 24 + 1) / 2)
    assert out["hard"] == pytest.approx(0.25)


# ---- baselines -------------------------------------------------------------------------------------------
def _is_perm(R, n):
    return R.shape[1] == n and all((np.sort(r) == np.arange(n)).all() for r in R)


def test_baselines_return_permutations_and_beat_knn_on_arcs():
    X, y = arcs(n_classes=8, pts=60, seed=1)
    Q, qy, Xi, yi = split_queries(X, y, 30, seed=0)
    pos = [np.flatnonzero(yi == c) for c in qy]
    out = {"knn": knn_rank(Q, Xi), "aqe": alpha_qe(Q, Xi), "diff": diffusion(Q, Xi, k=10)}
    for R in out.values():
        assert _is_perm(R, len(Xi))
    np.testing.assert_array_equal(out["knn"][:, 0], knn(Xi, Q, 1)[1][:, 0])
    assert mean_average_precision(out["diff"], pos) > mean_average_precision(out["knn"], pos) + 0.1


def test_diffusion_dense_and_cg_agree(monkeypatch):
    X, y = chains(n_classes=4, modes=3, pts_per_mode=10, dim=16, seed=2)
    Q, qy, Xi, yi = split_queries(X, y, 6, seed=0)
    dense = diffusion(Q, Xi, k=8)
    monkeypatch.setattr(baselines_mod, "DENSE_MAX", 0)
    cg = diffusion(Q, Xi, k=8)
    np.testing.assert_array_equal(cg, diffusion(Q, Xi, k=8, solver="cg", system=baselines_mod.diffusion_system(Xi, 8)))
    pos = [np.flatnonzero(yi == c) for c in qy]
    assert mean_average_precision(dense, pos) == pytest.approx(mean_average_precision(cg, pos), abs=1e-3)


# ---- EGT on a tiny graph with a known order ---------------------------------------------------------------
# edges 0-1 .9, 1-2 .8, 0-3 .5, 3-4 .95, 2-4 .3 ; the query attaches to 0 (.95) and 3 (.6)
SIMS = np.array([[0.9, 0.5], [0.9, 0.8], [0.8, 0.3], [0.95, 0.5], [0.95, 0.3]])
IDS = np.array([[1, 3], [0, 2], [1, 4], [4, 0], [3, 2]])
QS, QI = np.array([0.95, 0.6]), np.array([0, 3])


@pytest.mark.parametrize("tau, order, steps", [
    (math.inf, [0, 1, 2, 3, 4], "XXXXX"),           # Prim order: always the single best edge
    (0.85, [0, 1, 2, 3, 4], "EEXXE"),               # exploit .95, .9; explore .8, .6; exploit .95
    (0.55, [0, 3, 4, 1, 2], "EEEEE"),               # query's two edges at once, then 3-4 and 0-1, then 1-2
    (-math.inf, [0, 3, 4, 1, 2], "EEEEE"),          # breadth-first layers
])
def test_egt_known_visiting_order(tau, order, steps):
    tr = egt_traverse(QS, QI, adjacency(SIMS, IDS), tau)
    assert tr.order.tolist() == order
    assert "".join("E" if s == "exploit" else "X" for s in tr.step) == steps
    if tau == 0.55:
        assert tr.round.tolist() == [0, 0, 1, 1, 2]
        assert tr.parent.tolist() == [-1, -1, 3, 0, 1]
        np.testing.assert_allclose(tr.weight, [0.95, 0.6, 0.95, 0.9, 0.8])


def test_egt_stops_at_p_and_prim_is_max_spanning_order():
    tr = egt_traverse(QS, QI, adjacency(SIMS, IDS), 0.55, p=3)
    assert tr.order.tolist() == [0, 3, 4]
    # Prim on a random complete graph: each next vertex has the best edge to the visited set
    rng = np.random.default_rng(0)
    W = rng.uniform(size=(12, 12))
    W = (W + W.T) / 2
    ids = np.array([[j for j in range(12) if j != i] for i in range(12)])
    adj = adjacency(np.take_along_axis(W, ids, 1), ids)
    q = rng.uniform(size=12)
    tr = egt_traverse(q, np.arange(12), adj, math.inf)
    visited = []
    for v, w in zip(tr.order, tr.weight, strict=True):
        cand = {u: max([q[u]] + [W[u, s] for s in visited]) for u in range(12) if u not in visited}
        assert v == max(cand, key=cand.get) and w == pytest.approx(cand[v])
        visited.append(v)


def test_egt_rank_permutation_and_beats_knn_on_arcs():
    X, y = arcs(n_classes=8, pts=60, seed=1)
    Q, qy, Xi, yi = split_queries(X, y, 30, seed=0)
    R, traces = egt_rank(Q, Xi, 10, 0.9, p=200)
    assert _is_perm(R, len(Xi)) and len(traces) == 30 and len(traces[0].order) <= 200
    np.testing.assert_array_equal(R[:, 0], knn(Xi, Q, 1)[1][:, 0])     # first step: the best query edge
    pos = [np.flatnonzero(yi == c) for c in qy]
    assert mean_average_precision(R, pos) > mean_average_precision(knn_rank(Q, Xi), pos) + 0.1
    R2, _ = egt_rank(Q, Xi, 10, 0.9, graph=knn_graph(Xi, 10), p=200)
    np.testing.assert_array_equal(R, R2)


# ---- revisitop reader (offline fixture in the real file format) --------------------------------------------
def test_revisited_reader_on_fixture(tmp_path):
    from l6kit import data
    from l6kit.retrieval import revisitop

    rng = np.random.default_rng(0)
    Q, X = rng.standard_normal((3, 8)), rng.standard_normal((20, 8))
    gnd = [{"easy": [1, 2], "hard": np.array([5]), "junk": [7], "bbx": [0.0, 1.0, 2.0, 3.0]},
           {"easy": np.array([3]), "hard": [], "junk": []},
           {"easy": [], "hard": [4, 6], "junk": [0]}]
    revisitop.write_revisited(tmp_path / "roxford5k", "roxford5k", Q, X, gnd)
    ds = data.load("roxford5k", "paper", root=tmp_path)
    assert ds.Q.shape == (3, 8) and ds.X.shape == (20, 8) and len(ds.imlist) == 20
    np.testing.assert_allclose(ds.X, X / np.linalg.norm(X, axis=1, keepdims=True), rtol=1e-5)
    assert ds.gnd[0]["easy"].tolist() == [1, 2] and ds.gnd[1]["hard"].dtype == np.int64
    out = revisited_map(knn_rank(ds.Q, ds.X), ds.gnd)
    assert set(out) == {"easy", "medium", "hard"} and all(0 <= v <= 1 for v in out.values())
    with pytest.raises(data.DataMissingError, match="gnd_rparis6k.pkl"):
        data.load("rparis6k", "paper", root=tmp_path)


def test_revisited_pickle_is_read_safely(tmp_path):
    import pickle

    from l6kit.retrieval import revisitop

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "gnd_x.pkl"
    path.write_bytes(pickle.dumps({"gnd": [Evil()]}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        revisitop.read_gnd(path)


def test_revisited_offline_stand_in():
    from l6kit import data

    ds = data.load("roxford5k", "ci")
    assert ds.Q.shape[0] == len(ds.gnd) == 20 and ds.X.shape[1] == 32
    out = revisited_map(knn_rank(ds.Q, ds.X), ds.gnd)
    assert out["easy"] > out["hard"]
