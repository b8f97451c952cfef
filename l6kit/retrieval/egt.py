"""Explore-Exploit Graph Traversal (EGT) over a kNN graph of the index.

Online, a query is attached to the graph by its own top-``k`` edges. A max-heap holds the frontier keyed,
as in Prim's algorithm, by the best edge from anything already retrieved. Each round either *exploits*
(every frontier vertex whose key exceeds ``tau`` is retrieved at once, best first: the confident immediate
neighbourhood) or, when no key exceeds ``tau``, *explores* (only the single best-weighted frontier vertex
is retrieved, so the traversal always moves on, possibly far from the query). The neighbours of everything
retrieved join the frontier. The retrieval order is the ranking; vertices never reached follow in kNN
order. ``tau = +inf`` makes every round an explore step: Prim's maximum-spanning-tree order from the
query. ``tau = -inf`` retrieves the whole frontier each round: breadth-first layers.

Cost per query: ``O(p k log(p k))`` heap operations for ``p`` retrieved vertices, independent of the
index size (plus the query's own kNN search).

References:
    Chang, Yu, Volkovs et al. "Explore-Exploit Graph Traversal for Image Retrieval." CVPR 2019.
"""

from __future__ import annotations

import dataclasses
import heapq
import math

import numpy as np
from tqdm.auto import tqdm

from l6kit.profiles import progress_disabled
from l6kit.retrieval.knn import knn, knn_graph

EXPLOIT, EXPLORE = "exploit", "explore"


@dataclasses.dataclass
class Trace:
    """What one EGT traversal did, for plots and the dashboard.

    Attributes:
        order: ``(p,)`` index ids in retrieval order (the head of the ranking).
        step: ``(p,)`` ``"exploit"`` or ``"explore"``: the kind of round that retrieved each vertex.
        weight: ``(p,)`` weight of the edge it was reached by (its heap key when popped).
        parent: ``(p,)`` the retrieved vertex that edge comes from (``-1`` = the query).
        round: ``(p,)`` 0-based round number (vertices of one exploit round share it).
    """

    order: np.ndarray
    step: np.ndarray
    weight: np.ndarray
    parent: np.ndarray
    round: np.ndarray


def adjacency(sims: np.ndarray, ids: np.ndarray, symmetric: bool = True) -> list[list[tuple[float, int]]]:
    """Adjacency lists ``[(weight, neighbour), ...]`` per vertex from kNN lists; with ``symmetric`` an edge
    found in either direction is kept with the larger weight (the paper's max-symmetrisation).

    Shapes:
        sims, ids: ``(n, k)`` (e.g. from :func:`l6kit.retrieval.knn.knn_graph`); returns n lists.
    """
    n = len(ids)
    best: list[dict[int, float]] = [{} for _ in range(n)]
    for i, (srow, irow) in enumerate(zip(sims.tolist(), ids.tolist(), strict=True)):
        for s, j in zip(srow, irow, strict=True):
            if j == i or j < 0:
                continue
            if s > best[i].get(j, -math.inf):
                best[i][j] = s
            if symmetric and s > best[j].get(i, -math.inf):
                best[j][i] = s
    return [sorted(((w, j) for j, w in b.items()), reverse=True) for b in best]


def egt_traverse(q_sims, q_ids, adj: list[list[tuple[float, int]]], tau: float, p: int | None = None
                 ) -> Trace:
    """Traverse from one query attached by edges ``q_ids`` with weights ``q_sims``; stop after ``p``
    vertices (default: everything reachable). See the module docstring for the rounds.

    Shapes:
        q_sims, q_ids: ``(k,)``; adj: n adjacency lists; returns a :class:`Trace` of length ``<= p``.
    """
    n = len(adj)
    p = n if p is None else min(p, n)
    key = [-math.inf] * n
    done = bytearray(n)
    heap = []
    for w, v in zip(np.asarray(q_sims).tolist(), np.asarray(q_ids).tolist(), strict=True):
        if w > key[v]:
            key[v] = w
            heap.append((-w, v, -1))
    heapq.heapify(heap)
    order, step, weight, parent, rnd = [], [], [], [], []
    r = 0
    while heap and len(order) < p:
        while heap and done[heap[0][1]]:                    # drop stale entries
            heapq.heappop(heap)
        if not heap:
            break
        batch = []
        if -heap[0][0] > tau:                               # exploit: all confident frontier vertices
            while heap and -heap[0][0] > tau and len(order) + len(batch) < p:
                nw, v, u = heapq.heappop(heap)
                if not done[v]:
                    done[v] = 1
                    batch.append((v, -nw, u))
            kind = EXPLOIT
        else:                                               # explore: the single best edge
            nw, v, u = heapq.heappop(heap)
            done[v] = 1
            batch.append((v, -nw, u))
            kind = EXPLORE
        for v, w, u in batch:
            order.append(v), step.append(kind), weight.append(w), parent.append(u), rnd.append(r)
            for wn, nb in adj[v]:
                if not done[nb] and wn > key[nb]:
                    key[nb] = wn
                    heapq.heappush(heap, (-wn, nb, v))
        r += 1
    return Trace(np.asarray(order, np.int64), np.asarray(step, dtype=object),
                 np.asarray(weight, np.float64), np.asarray(parent, np.int64), np.asarray(rnd, np.int64))


def egt_rank(Q: np.ndarray, X: np.ndarray, k: int, tau: float, *, graph=None, p: int | None = None,
             symmetric: bool = True, progress: bool | None = None) -> tuple[np.ndarray, list[Trace]]:
    """EGT rankings of the index for every query.

    Args:
        Q: ``(m, d)`` L2-normalised queries (not in the index).
        X: ``(n, d)`` L2-normalised index.
        k: neighbours per vertex in the index graph and edges attaching each query.
        tau: exploit threshold in edge-weight (cosine) units; ``math.inf`` gives Prim order.
        graph: precomputed ``(sims, ids)`` kNN lists of the index (:func:`knn_graph`, any k), or the
            adjacency lists of :func:`adjacency`; default ``knn_graph(X, k)``.
        p: retrieve at most this many vertices by traversal (default all reachable); the rest of the
            ranking follows in kNN order.
        symmetric: max-symmetrise the kNN graph (ignored when ``graph`` is adjacency lists).
        progress: tqdm bar over queries (``None``: only on a terminal).

    Shapes:
        returns ``rankings (m, n)`` int64 and ``m`` :class:`Trace` objects.
    """
    X = np.asarray(X, np.float32)
    if graph is None:
        graph = knn_graph(X, k)
    adj = graph if isinstance(graph, list) else adjacency(*graph, symmetric=symmetric)
    q_sims, q_ids = knn(X, Q, k)
    S = np.asarray(Q, np.float32) @ X.T
    rankings = np.empty((len(Q), len(X)), np.int64)
    traces = []
    for i in tqdm(range(len(Q)), disable=progress_disabled(progress), desc="EGT", leave=False):
        tr = egt_traverse(q_sims[i], q_ids[i], adj, tau, p)
        seen = np.zeros(len(X), bool)
        seen[tr.order] = True
        rest = np.flatnonzero(~seen)
        rest = rest[np.argsort(-S[i, rest], kind="stable")]
        rankings[i] = np.concatenate([tr.order, rest])
        traces.append(tr)
    return rankings, traces
