"""Sparse x dense products with autograd, and the normalised bipartite adjacency of graph recommenders.

On the CPU build of torch, ``torch.sparse.mm`` is tens of times slower than scipy for the small graphs used
here, so :func:`spmm` runs scipy on CPU tensors (backward ``A^T @ grad``) and torch sparse on CUDA tensors.

References:
    He et al. *LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation.* SIGIR 2020
    (the symmetric-normalised bipartite adjacency).
    Kipf, Welling. *Semi-Supervised Classification with Graph Convolutional Networks.* ICLR 2017.
"""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sp
import torch

_DEVICE_CACHE: dict[tuple[int, str, torch.dtype], tuple[weakref.ref, torch.Tensor]] = {}


class _ScipySpMM(torch.autograd.Function):
    """``A @ X`` for a scipy CSR ``A`` (no gradient) and a CPU tensor ``X``."""

    @staticmethod
    def forward(ctx, X: torch.Tensor, A: sp.csr_matrix) -> torch.Tensor:
        ctx.A = A
        x = X.detach().numpy()
        return torch.from_numpy(np.asarray(A.astype(x.dtype, copy=False) @ x))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        g = grad.detach().contiguous().numpy()
        return torch.from_numpy(np.asarray(ctx.A.T.astype(g.dtype, copy=False) @ g)), None


def torch_sparse(A: sp.spmatrix, device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``A`` as a coalesced torch COO tensor on ``device`` (cached while ``A`` is alive)."""
    key = (id(A), str(device), dtype)
    hit = _DEVICE_CACHE.get(key)
    if hit is not None and hit[0]() is A:
        return hit[1]
    coo = sp.coo_matrix(A)
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    t = torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data), coo.shape).to(device=device, dtype=dtype)
    t = t.coalesce()
    try:
        _DEVICE_CACHE[key] = (weakref.ref(A), t)
    except TypeError:                                   # not weak-referenceable: do not cache
        pass
    return t


def spmm(A: sp.csr_matrix, X: torch.Tensor) -> torch.Tensor:
    """Differentiable ``A @ X`` (gradient flows to ``X`` only).

    Shapes:
        A: ``(n_rows, n_cols)`` scipy sparse; X: ``(n_cols, k)``. Returns ``(n_rows, k)`` with X's dtype/device.
    """
    if A.shape[1] != X.shape[0]:
        raise ValueError(f"shape mismatch: A is {A.shape}, X is {tuple(X.shape)}")
    if X.device.type == "cpu":
        return _ScipySpMM.apply(X, A if isinstance(A, sp.csr_matrix) else sp.csr_matrix(A))
    return torch.sparse.mm(torch_sparse(A, X.device, X.dtype), X)


def bipartite_adjacency(R: sp.csr_matrix) -> sp.csr_matrix:
    """The user-item graph ``[[0, R], [R^T, 0]]`` of size ``n_users + n_items`` (users first)."""
    R = sp.csr_matrix(R, dtype=np.float32)
    return sp.bmat([[None, R], [R.T, None]], format="csr", dtype=np.float32)


def normalized_adjacency(R: sp.csr_matrix, *, self_loops: bool = False, kind: str = "sym") -> sp.csr_matrix:
    """Normalised bipartite adjacency of an interaction matrix.

    ``kind="sym"`` (default, LightGCN): ``D^-1/2 A D^-1/2``; ``kind="row"`` (HGCN/HGCF): ``D^-1 A``.
    With ``self_loops`` the identity is added to ``A`` before normalising. Isolated nodes get zero rows.

    Shapes:
        R: ``(n_users, n_items)``. Returns ``(n_users + n_items,)*2`` csr float32; users first, then items.
    """
    A = bipartite_adjacency(R)
    if self_loops:
        A = (A + sp.identity(A.shape[0], dtype=np.float32, format="csr")).tocsr()
    deg = np.asarray(A.sum(1)).ravel()
    with np.errstate(divide="ignore"):
        if kind == "sym":
            d = np.where(deg > 0, deg ** -0.5, 0.0).astype(np.float32)
            out = sp.diags(d) @ A @ sp.diags(d)
        elif kind == "row":
            out = sp.diags(np.where(deg > 0, 1.0 / deg, 0.0).astype(np.float32)) @ A
        else:
            raise ValueError(f"kind must be 'sym' or 'row', got {kind!r}")
    return sp.csr_matrix(out, dtype=np.float32)
