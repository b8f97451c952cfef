"""Retrieval baselines: plain kNN ranking, alpha query expansion and graph diffusion.

All take L2-normalised ``Q (m, d)`` and ``X (n, d)`` and return ``rankings (m, n)`` (every index id once,
best first).

References:
    Radenović, Tolias, Chum. "Fine-tuning CNN Image Retrieval with No Human Annotation." TPAMI 2018 (α-QE).
    Iscen, Tolias, Avrithis, Furon, Chum. "Efficient Diffusion on Region Manifolds: Recovering Small Objects
    with Compact CNN Representations." CVPR 2017 (diffusion).
    Zhou et al. "Ranking on Data Manifolds." NIPS 2003.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from l6kit.retrieval.generators import l2_normalise
from l6kit.retrieval.knn import knn, knn_graph

DENSE_MAX = 3000            # dense Cholesky solve up to this many index rows; conjugate gradients beyond


def _rank_by(score: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray:
    """Row-wise ids by decreasing ``score`` (then decreasing ``tie``, then increasing id)."""
    if tie is None:
        return np.argsort(-score, axis=1, kind="stable")
    return np.stack([np.lexsort((-t, -s)) for s, t in zip(score, tie, strict=True)])


def knn_rank(Q: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Rank the whole index by cosine similarity to each query.

    Shapes:
        Q: ``(m, d)``, X: ``(n, d)``; returns ``(m, n)`` int64.
    """
    return _rank_by(np.asarray(Q, np.float32) @ np.asarray(X, np.float32).T).astype(np.int64)


def alpha_qe(Q: np.ndarray, X: np.ndarray, k: int = 10, alpha: float = 3.0) -> np.ndarray:
    """α query expansion: the query is replaced by ``q + sum_{i<=k} max(s_i, 0)^alpha x_i`` over its ``k``
    nearest neighbours (``s_i`` their similarities), re-normalised, and the index is ranked again.

    Shapes:
        Q: ``(m, d)``, X: ``(n, d)``; returns ``(m, n)``.
    """
    sims, ids = knn(X, Q, k)
    w = np.maximum(sims, 0.0) ** alpha
    Qe = l2_normalise(np.asarray(Q, np.float64) + np.einsum("mk,mkd->md", w, X[ids]))
    return knn_rank(Qe, X)


def affinity(X: np.ndarray, k: int, gamma: float) -> sp.csr_matrix:
    """Mutual-kNN affinity ``A_ij = max(s_ij, 0)^gamma`` when i and j are in each other's ``k`` lists.

    Shapes:
        X: ``(n, d)``; returns sparse symmetric ``(n, n)``.
    """
    n = len(X)
    sims, ids = knn_graph(X, k)
    rows = np.repeat(np.arange(n), k)
    A = sp.csr_matrix((np.maximum(sims.ravel(), 0.0) ** gamma, (rows, ids.ravel())), shape=(n, n))
    return A.minimum(A.T).tocsr()                       # mutual: kept only where both directions exist


def diffusion_system(X: np.ndarray, k: int = 30, gamma: float = 3.0, alpha: float = 0.99) -> sp.csr_matrix:
    """The offline part of diffusion: ``I - alpha S`` with ``S = D^{-1/2} A D^{-1/2}`` (:func:`affinity`).

    Shapes:
        X: ``(n, d)``; returns sparse symmetric positive definite ``(n, n)``.
    """
    A = affinity(X, k, gamma)
    d = np.asarray(A.sum(axis=1)).ravel()
    dinv = sp.diags(1.0 / np.sqrt(np.where(d > 0, d, 1.0)))
    return (sp.identity(len(X)) - alpha * (dinv @ A @ dinv)).tocsr()


def diffusion(Q: np.ndarray, X: np.ndarray, k: int = 30, gamma: float = 3.0, alpha: float = 0.99, *,
              solver: str = "auto", system: sp.csr_matrix | None = None) -> np.ndarray:
    """Diffusion ranking: solve ``(I - alpha S) f = y`` per query and rank by ``f``.

    ``S = D^{-1/2} A D^{-1/2}`` with ``A`` the mutual-kNN affinity (:func:`affinity`); ``y`` holds
    ``max(s, 0)^gamma`` on the query's ``k`` nearest index rows. ``solver="auto"``: dense Cholesky for
    ``n <= 3000``, scipy conjugate gradients (per query) above; ``"dense"``/``"cg"`` force one. Index rows
    the diffusion does not reach (``f = 0``) follow in kNN order.

    Args:
        system: a precomputed :func:`diffusion_system` of ``X`` (the offline part), same ``k, gamma, alpha``.

    Shapes:
        Q: ``(m, d)``, X: ``(n, d)``; returns ``(m, n)``.
    """
    n = len(X)
    L = diffusion_system(X, k, gamma, alpha) if system is None else system
    sims, ids = knn(X, Q, k)
    Y = np.zeros((n, len(Q)))
    Y[ids.T, np.arange(len(Q))[None, :]] = np.maximum(sims.T, 0.0) ** gamma
    if solver == "dense" or (solver == "auto" and n <= DENSE_MAX):
        F = scipy.linalg.cho_solve(scipy.linalg.cho_factor(L.toarray()), Y)
    elif solver in ("cg", "auto"):
        F = np.stack([scipy.sparse.linalg.cg(L, Y[:, j], rtol=1e-6, maxiter=50)[0]
                      for j in range(len(Q))], axis=1)
    else:
        raise ValueError(f"solver must be auto, dense or cg, got {solver!r}")
    return _rank_by(F.T, np.asarray(Q, np.float32) @ np.asarray(X, np.float32).T).astype(np.int64)
