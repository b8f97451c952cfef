"""Maximum-spanning-tree retrieval: Prim order from a query, and single-linkage clusters of the index.

Two readings of Layer 6's 2018 Google Landmark Retrieval solution (a reconstruction: the write-up was not
available to us):

* **Prim order** (:func:`prim_rank`): grow a maximum spanning tree of the kNN graph from the query with
  Prim's algorithm and return the vertices in the order they join. It is EGT with the exploit threshold
  ``tau = +inf`` (every round explores the single best edge), so it is computed by
  :func:`l6kit.retrieval.egt.egt_rank`.
* **Spanning-forest clusters** (:func:`spanning_forest_clusters`, :func:`cluster_rank`): build the maximum
  spanning forest of the (max-symmetrised) kNN graph once, cut every edge weaker than ``cut``; the
  connected components are single-linkage clusters. A query's cluster (that of its nearest index image)
  comes first, by similarity, then everything else by similarity.

``scipy.sparse.csgraph`` has only a *minimum* spanning tree, so weights are mapped to ``2 - sim`` (in
``[1, 3]`` for cosine similarities, positive so no edge is mistaken for a missing one).

References:
    R. C. Prim. "Shortest connection networks and some generalizations." Bell System Technical Journal, 1957.
    J. C. Gower, G. J. S. Ross. "Minimum spanning trees and single linkage cluster analysis." JRSS C, 1969.
    Chang, Yu, Volkovs et al. "Explore-Exploit Graph Traversal for Image Retrieval." CVPR 2019 (EGT, whose
    tau = inf limit is the Prim order).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from l6kit.retrieval.egt import Trace, egt_rank
from l6kit.retrieval.knn import knn_graph


def prim_rank(Q: np.ndarray, X: np.ndarray, k: int, *, graph=None, p: int | None = None,
              progress: bool | None = None) -> tuple[np.ndarray, list[Trace]]:
    """Rank the index by the order Prim's algorithm adds vertices to a maximum spanning tree grown from each
    query over the kNN graph (the query attached by its ``k`` best edges): EGT with ``tau = inf``.

    Shapes:
        Q: ``(m, d)``, X: ``(n, d)`` L2-normalised; returns ``rankings (m, n)`` and ``m`` traces.
    """
    return egt_rank(Q, X, k, math.inf, graph=graph, p=p, progress=progress)


def spanning_forest(X: np.ndarray, k: int, *, graph=None) -> sp.coo_matrix:
    """Maximum spanning forest of the max-symmetrised kNN graph of ``X``; ``data`` holds the similarities.

    Shapes:
        X: ``(n, d)`` L2-normalised; returns an ``(n, n)`` sparse matrix with at most ``n - 1`` edges.
    """
    sims, ids = graph if graph is not None else knn_graph(X, k)
    n = len(X)
    ok = ids >= 0
    rows = np.broadcast_to(np.arange(n)[:, None], ids.shape)[ok]
    A = sp.coo_matrix((sims[ok] + 2.0, (rows, ids[ok])), shape=(n, n)).tocsr()   # + 2: keep weights > 0
    A = A.maximum(A.T)                                                               # max-symmetrise
    A.data = 4.0 - A.data                                                            # 2 - sim, in [1, 3]
    T = minimum_spanning_tree(A).tocoo()
    return sp.coo_matrix((2.0 - T.data, (T.row, T.col)), shape=(n, n))


def spanning_forest_clusters(X: np.ndarray, k: int, cut: float, *, forest: sp.coo_matrix | None = None
                             ) -> np.ndarray:
    """Single-linkage clusters: connected components of the maximum spanning forest after removing every
    edge with similarity below ``cut``.

    Args:
        forest: a precomputed :func:`spanning_forest` (then ``X`` only gives ``n`` and ``k`` is unused).

    Shapes:
        returns cluster ids ``(n,)`` int64, numbered from 0.
    """
    T = forest if forest is not None else spanning_forest(X, k)
    keep = T.data >= cut
    n = T.shape[0]
    C = sp.coo_matrix((np.ones(int(keep.sum())), (T.row[keep], T.col[keep])), shape=(n, n))
    return connected_components(C, directed=False)[1].astype(np.int64)


def cluster_rank(Q: np.ndarray, X: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Rank the index for each query: the members of the cluster of the query's nearest index image first
    (by similarity), then all other images (by similarity).

    Shapes:
        Q: ``(m, d)``, X: ``(n, d)``, clusters: ``(n,)``; returns ``(m, n)`` int64.
    """
    S = np.asarray(Q, np.float32) @ np.asarray(X, np.float32).T
    own = clusters[np.argmax(S, axis=1)]                                   # (m,)
    key = S + 4.0 * (clusters[None, :] == own[:, None])                    # similarities lie in [-1, 1]
    return np.argsort(-key, axis=1, kind="stable").astype(np.int64)
