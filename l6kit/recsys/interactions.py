"""Implicit-feedback interaction matrices: building, splitting, negative sampling.

An interaction matrix ``R`` is a binary ``scipy.sparse.csr_matrix`` of shape ``(n_users, n_items)``.

References:
    Rendle et al. *BPR: Bayesian Personalized Ranking from Implicit Feedback.* UAI 2009 (uniform negatives).
    Volkovs, Yu, Poutanen. *DropoutNet: Addressing Cold Start in Recommender Systems.* NeurIPS 2017
    (cold-item splits).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def to_csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary CSR matrix from parallel id arrays; duplicate pairs are merged into one 1.

    Shapes:
        users, items: ``(m,)`` integer ids in ``[0, n_users)`` / ``[0, n_items)``.

    Returns:
        ``(n_users, n_items)`` csr float32 with sorted indices and all stored values 1.
    """
    users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
    if users.shape != items.shape:
        raise ValueError(f"users and items differ in shape: {users.shape} vs {items.shape}")
    if users.size and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items):
        raise ValueError("user or item id out of range")
    R = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=(n_users, n_items))
    R.sum_duplicates()
    R.data[:] = 1.0
    R.sort_indices()
    return R


def _rows(R: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))


def _select(R: sp.csr_matrix, mask: np.ndarray) -> sp.csr_matrix:
    out = sp.csr_matrix((R.data[mask], (_rows(R)[mask], R.indices[mask])), shape=R.shape, dtype=np.float32)
    out.sort_indices()
    return out


def holdout_split(R: sp.csr_matrix, test_frac: float = 0.2, seed: int = 0,
                  min_train: int = 1) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per-user random holdout: each user's interactions are shuffled and ``round(test_frac * n_u)`` go to
    test, but never so many that fewer than ``min_train`` remain in train (users with ``n_u <= min_train``
    keep everything in train).

    Returns:
        ``(train, test)``: disjoint binary csr matrices with the shape of ``R`` whose sum is ``R``.
    """
    if not 0.0 <= test_frac < 1.0:
        raise ValueError(f"test_frac must be in [0, 1), got {test_frac}")
    R = sp.csr_matrix(R)
    R.sort_indices()
    n_u = np.diff(R.indptr)
    n_test = np.clip(np.rint(test_frac * n_u).astype(np.int64), 0, np.maximum(n_u - min_train, 0))
    rng = np.random.default_rng(seed)
    rows = _rows(R)
    order = np.lexsort((rng.random(R.nnz), rows))            # shuffled within each row
    pos = np.empty(R.nnz, np.int64)
    pos[order] = np.arange(R.nnz) - R.indptr[rows[order]]
    test = pos < n_test[rows]
    return _select(R, ~test), _select(R, test)


def cold_item_split(R: sp.csr_matrix, cold_frac: float, seed: int = 0
                    ) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Hold out whole items: ``round(cold_frac * #items with interactions)`` items become cold.

    Returns:
        ``(warm, cold, cold_items)``: warm has every column of a cold item emptied, cold holds exactly those
        columns (both keep the full ``(n_users, n_items)`` shape); ``cold_items`` sorted int64 ids.
    """
    if not 0.0 <= cold_frac <= 1.0:
        raise ValueError(f"cold_frac must be in [0, 1], got {cold_frac}")
    R = sp.csr_matrix(R)
    seen = np.flatnonzero(np.diff(sp.csc_matrix(R).indptr) > 0)
    rng = np.random.default_rng(seed)
    cold_items = np.sort(rng.choice(seen, size=int(round(cold_frac * seen.size)), replace=False)).astype(np.int64)
    is_cold = np.zeros(R.shape[1], bool)
    is_cold[cold_items] = True
    mask = is_cold[R.indices]
    return _select(R, ~mask), _select(R, mask), cold_items


def sample_negatives(R: sp.csr_matrix, users: np.ndarray, n_neg: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform negatives: for each user, ``n_neg`` items (with replacement) not in ``R[u]``.

    Rejection sampling, vectorised; raises ``ValueError`` for a user who interacted with every item.

    Shapes:
        users: ``(b,)``. Returns ``(b, n_neg)`` int64.
    """
    R = sp.csr_matrix(R)
    R.sort_indices()
    users = np.asarray(users, dtype=np.int64)
    n_items = R.shape[1]
    if users.size and np.any(np.diff(R.indptr)[users] >= n_items):
        raise ValueError("a user has interacted with every item; no negative exists")
    keys = _rows(R) * n_items + R.indices                     # sorted, since rows and indices are
    out = rng.integers(0, n_items, size=(users.size, n_neg))
    bad = np.ones(out.shape, bool)
    while True:
        q = (users[:, None] * n_items + out)[bad]
        pos = np.searchsorted(keys, q)
        hit = (pos < keys.size) & (keys[np.minimum(pos, keys.size - 1)] == q)
        idx = np.flatnonzero(bad.ravel())[hit]
        if idx.size == 0:
            return out
        bad = np.zeros(out.shape, bool)
        bad.ravel()[idx] = True
        out[bad] = rng.integers(0, n_items, size=idx.size)
