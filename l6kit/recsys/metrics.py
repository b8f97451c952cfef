"""Top-k ranking metrics for implicit-feedback recommendation.

All functions take a dense score matrix ``scores`` of shape ``(n_users, n_items)`` (higher = better), an
optional sparse ``exclude`` matrix (typically the training interactions, never recommended) and return one
value per user, so that averages, confidence intervals and per-segment breakdowns are the caller's choice.
Users without any relevant item get ``NaN``; average with ``np.nanmean``.

References:
    Järvelin, Kekäläinen. *Cumulated gain-based evaluation of IR techniques.* TOIS 2002 (NDCG).
    Wang et al. *Neural Graph Collaborative Filtering.* SIGIR 2019 (the Recall@k / NDCG@k protocol).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

_CHUNK = 2048  # users scored at once (bounds the memory of the copy with excluded items masked)


def _masked(scores: np.ndarray, exclude: sp.csr_matrix | None, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of ``scores`` as float64 with excluded entries set to ``-inf``."""
    block = np.array(scores[lo:hi], dtype=np.float64, copy=True)
    if exclude is not None:
        sub = sp.csr_matrix(exclude[lo:hi])
        rows = np.repeat(np.arange(hi - lo), np.diff(sub.indptr))
        block[rows, sub.indices] = -np.inf
    return block


def _check(scores: np.ndarray, *mats: sp.spmatrix | None) -> None:
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {scores.shape}")
    for m in mats:
        if m is not None and m.shape != scores.shape:
            raise ValueError(f"sparse matrix shape {m.shape} does not match scores {scores.shape}")


def topk(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """The ``k`` best items per user, best first; excluded items are never returned.

    Ties are broken arbitrarily (``np.argpartition``). If a user has fewer than ``k`` non-excluded items the
    remaining slots hold ``-1``.

    Args:
        scores: ``(n_users, n_items)`` scores, higher is better.
        k: list length (``1 <= k``; clipped to ``n_items``).
        exclude: ``(n_users, n_items)`` sparse matrix; its non-zero entries are never recommended.

    Returns:
        Item ids, shape ``(n_users, k)`` int64.
    """
    _check(scores, exclude)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_users, n_items = scores.shape
    kk = min(k, n_items)
    out = np.full((n_users, k), -1, dtype=np.int64)
    for lo in range(0, n_users, _CHUNK):
        hi = min(lo + _CHUNK, n_users)
        block = _masked(scores, exclude, lo, hi)
        part = np.argpartition(-block, kk - 1, axis=1)[:, :kk] if kk < n_items else np.tile(
            np.arange(n_items), (hi - lo, 1))
        vals = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        best = np.take_along_axis(part, order, axis=1)
        best[np.isneginf(np.take_along_axis(vals, order, axis=1))] = -1
        out[lo:hi, :kk] = best
    return out


def _hits(scores, truth, k, exclude) -> tuple[np.ndarray, np.ndarray]:
    """Hit matrix ``(n_users, k)`` bool of the top-k lists, and the truth counts per user."""
    _check(scores, truth, exclude)
    truth = sp.csr_matrix(truth)
    lists = topk(scores, k, exclude)
    rows = np.arange(lists.shape[0])[:, None]
    safe = np.where(lists < 0, 0, lists)
    hit = np.asarray(truth[np.broadcast_to(rows, lists.shape).ravel(), safe.ravel()]).reshape(lists.shape) > 0
    hit &= lists >= 0
    return hit, np.diff(truth.indptr)


def recall_at_k(scores: np.ndarray, truth: sp.csr_matrix, k: int,
                exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Recall@k with the capped denominator: ``hits / min(k, |truth_u|)``.

    This is the definition that reaches 1 for a perfect ranking even when a user has more than ``k`` relevant
    items (the "truncated" recall of e.g. Liang et al. 2018); HGCF/LightGCN code divides by ``|truth_u|``
    instead, which differs only for users with more than ``k`` held-out items.

    Args:
        scores: ``(n_users, n_items)``.
        truth: ``(n_users, n_items)`` binary sparse matrix of relevant (held-out) items; should be disjoint
            from ``exclude``.
        k: list length.
        exclude: items never recommended (training interactions).

    Returns:
        Shape ``(n_users,)`` float64; ``NaN`` for users with no relevant item.
    """
    hit, n_true = _hits(scores, truth, k, exclude)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_true > 0, hit.sum(1) / np.minimum(k, n_true), np.nan)


def ndcg_at_k(scores: np.ndarray, truth: sp.csr_matrix, k: int,
              exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """NDCG@k with binary relevance and the ``1 / log2(rank + 1)`` discount (rank 1 = best).

    ``DCG = sum_{r<=k} rel_r / log2(r + 1)``, normalised by the ideal DCG of ``min(k, |truth_u|)`` hits.

    Returns:
        Shape ``(n_users,)`` float64 in [0, 1]; ``NaN`` for users with no relevant item.
    """
    hit, n_true = _hits(scores, truth, k, exclude)
    disc = 1.0 / np.log2(np.arange(2, hit.shape[1] + 2))
    dcg = hit @ disc
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_true, hit.shape[1])]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_true > 0, dcg / np.where(ideal > 0, ideal, 1.0), np.nan)


def mrr(scores: np.ndarray, truth: sp.csr_matrix, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Reciprocal rank of the best-ranked relevant item over the full (non-excluded) ranking.

    ``rank = 1 + #{non-excluded items scoring strictly higher than the best relevant item}`` (ties resolved in
    favour of the relevant item). Relevant items that are also excluded are ignored.

    Returns:
        Shape ``(n_users,)`` float64 in (0, 1]; ``NaN`` for users with no (non-excluded) relevant item.
    """
    _check(scores, truth, exclude)
    truth = sp.csr_matrix(truth)
    out = np.full(scores.shape[0], np.nan)
    for lo in range(0, scores.shape[0], _CHUNK):
        hi = min(lo + _CHUNK, scores.shape[0])
        block = _masked(scores, exclude, lo, hi)
        rel = truth[lo:hi].toarray() > 0
        best = np.where(rel, block, -np.inf).max(1)
        ok = np.isfinite(best)
        rank = 1 + (block > best[:, None]).sum(1)
        out[lo:hi] = np.where(ok, 1.0 / rank, np.nan)
    return out
