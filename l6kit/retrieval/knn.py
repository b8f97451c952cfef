"""Exact cosine k-nearest neighbours: numpy for small indexes, faiss ``IndexFlatIP`` beyond.

References:
    Johnson, Douze, Jégou. "Billion-scale similarity search with GPUs." IEEE TBD 2019 (faiss).
"""

from __future__ import annotations

import numpy as np

NUMPY_MAX = 20_000          # exact numpy search up to this many index rows; faiss beyond
_BLOCK = 1024               # query rows per numpy block (bounds memory at BLOCK x n floats)


def _topk_numpy(index: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims_out = np.empty((len(queries), k), np.float32)
    ids_out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), _BLOCK):
        S = queries[s:s + _BLOCK] @ index.T
        part = np.argpartition(-S, k - 1, axis=1)[:, :k] if k < S.shape[1] else np.tile(
            np.arange(S.shape[1]), (len(S), 1))
        ps = np.take_along_axis(S, part, axis=1)
        order = np.lexsort((part, -ps), axis=1)                 # by similarity, ties by id
        ids_out[s:s + _BLOCK] = np.take_along_axis(part, order, axis=1)
        sims_out[s:s + _BLOCK] = np.take_along_axis(ps, order, axis=1)
    return sims_out, ids_out


def _topk_faiss(index: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    flat = faiss.IndexFlatIP(index.shape[1])
    flat.add(np.ascontiguousarray(index, dtype=np.float32))
    sims, ids = flat.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return sims.astype(np.float32), ids.astype(np.int64)


def knn(index: np.ndarray, queries: np.ndarray, k: int, *, exclude_self: bool = False
        ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar index rows of every query by inner product (= cosine on unit rows).

    Exact: numpy blocks for ``n <= 20,000`` index rows, faiss ``IndexFlatIP`` beyond. Ties are broken by
    the smaller id under numpy.

    Args:
        index: ``(n, d)`` L2-normalised rows.
        queries: ``(m, d)`` L2-normalised rows.
        k: neighbours per query (``k <= n``, or ``k <= n - 1`` with ``exclude_self``).
        exclude_self: the queries ARE the index (``m == n``, row i = query i): drop id i from row i.

    Shapes:
        returns ``sims (m, k)`` float32 decreasing along a row, ``ids (m, k)`` int64.
    """
    index = np.asarray(index, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    n = len(index)
    if exclude_self and len(queries) != n:
        raise ValueError("exclude_self needs queries == index (same number of rows)")
    kk = k + 1 if exclude_self else k
    if not 0 < kk <= n:
        raise ValueError(f"k={k} impossible with {n} index rows (exclude_self={exclude_self})")
    sims, ids = (_topk_numpy if n <= NUMPY_MAX else _topk_faiss)(index, queries, kk)
    if not exclude_self:
        return sims, ids
    keep = ids != np.arange(len(queries))[:, None]
    keep[keep.sum(axis=1) > k, -1] = False          # self not found (duplicates): drop the last instead
    return sims[keep].reshape(-1, k), ids[keep].reshape(-1, k)


def knn_graph(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The directed kNN graph of an index: every row's ``k`` nearest other rows (self excluded).

    Shapes:
        X: ``(n, d)`` L2-normalised; returns ``sims (n, k)``, ``ids (n, k)``.
    """
    return knn(X, X, k, exclude_self=True)
