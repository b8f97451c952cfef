"""Maximum-spanning-tree retrieval: Prim order against a brute-force Prim, the forest against Kruskal, clusters."""

import numpy as np
import pytest

from l6kit.retrieval import adjacency, arcs, knn_graph, l2_normalise
from l6kit.retrieval.mst import cluster_rank, prim_rank, spanning_forest, spanning_forest_clusters


def _small(n=40, d=5, seed=0):
    return l2_normalise(np.random.default_rng(seed).normal(size=(n, d))).astype(np.float32)


def _graph_weights(X, k):
    """Dense similarity matrix restricted to the max-symmetrised kNN graph (-inf where no edge)."""
    W = np.full((len(X), len(X)), -np.inf)
    for u, nbrs in enumerate(adjacency(*knn_graph(X, k))):
        for w, v in nbrs:
            W[u, v] = w
    return W


def test_prim_order_matches_a_brute_force_prim():
    X, q = _small(), _small(1, seed=9)
    k = 4
    W = _graph_weights(X, k)
    s = (q @ X.T)[0]
    attach = np.full(len(X), -np.inf)
    attach[np.argsort(-s)[:k]] = np.sort(-s)[:k] * -1          # the query's k edges
    order, key = [], attach.copy()
    done = np.zeros(len(X), bool)
    while np.isfinite(np.where(done, -np.inf, key)).any():
        v = int(np.argmax(np.where(done, -np.inf, key)))
        order.append(v)
        done[v] = True
        key = np.maximum(key, W[v])
    ranking, traces = prim_rank(q, X, k, progress=False)
    assert list(traces[0].order) == order and list(ranking[0][: len(order)]) == order
    assert set(traces[0].step) == {"explore"}


def _kruskal_max_weight(W):
    n = len(W)
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    edges = sorted(((W[u, v], u, v) for u in range(n) for v in range(u + 1, n) if np.isfinite(W[u, v])),
                   reverse=True)
    total, count = 0.0, 0
    for w, u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[ru] = rv
            total, count = total + w, count + 1
    return total, count


def test_spanning_forest_is_a_maximum_spanning_forest():
    X = _small(60, 6, seed=2)
    T = spanning_forest(X, 3)
    total, count = _kruskal_max_weight(_graph_weights(X, 3))
    assert T.nnz == count and T.data.sum() == pytest.approx(total, rel=1e-5)


def test_cluster_cut_extremes_and_cluster_first_ranking():
    X, y = arcs(n_classes=4, pts=30, seed=1)
    k = 5
    assert spanning_forest_clusters(X, k, 1.01).max() + 1 == len(X)          # every edge cut: singletons
    loose = spanning_forest_clusters(X, k, -1.0)                              # no edge cut: graph components
    assert loose.max() + 1 <= 4
    labels = spanning_forest_clusters(X, k, 0.9)
    ranking = cluster_rank(X[:3], X, labels)
    for i in range(3):
        members = np.flatnonzero(labels == labels[i])
        assert set(ranking[i][: len(members)]) == set(members)
        assert sorted(ranking[i]) == list(range(len(X)))
