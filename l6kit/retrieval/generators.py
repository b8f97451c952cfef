"""Offline descriptor sets for retrieval: multi-manifold classes on a sphere, and the digits.

Each generator returns ``(X, labels)``: ``X`` float32 ``(n, dim)`` with L2-normalised rows (cosine
similarity = inner product) and integer class labels; an index image is relevant to a query when the labels
agree. The sets are built so that a class is a *manifold* (an arc, a chain of views) whose far end is less
similar to a query than nearby points of other classes: the situation graph traversals are made for.

References:
    Chang, Yu, Volkovs et al. "Explore-Exploit Graph Traversal for Image Retrieval." CVPR 2019.
    Iscen et al. "Efficient Diffusion on Region Manifolds." CVPR 2017 (the manifold picture).
"""

from __future__ import annotations

import numpy as np


def l2_normalise(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` scaled to unit L2 norm (zero rows stay zero), as float32.

    Shapes:
        X: ``(n, d)``; returns ``(n, d)``.
    """
    X = np.asarray(X, dtype=np.float64)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def _orthonormal_pair(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray]:
    q, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    return q[:, 0], q[:, 1]


def arcs(n_classes: int = 20, pts: int = 100, dim: int = 8, length: float = 2.5, noise: float = 0.03,
         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each class a noisy great-circle arc of ``length`` radians on the unit sphere in ``dim`` dimensions.

    Arcs in a low dimension cross each other, so the far end of a class is less similar to a query than
    nearby points of other classes (relevance = same arc).

    Shapes:
        returns ``X (n_classes * pts, dim)`` float32 L2-normalised, ``labels (n_classes * pts,)`` int.
    """
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c in range(n_classes):
        u, v = _orthonormal_pair(rng, dim)
        t = rng.uniform(0.0, length, pts)
        P = np.cos(t)[:, None] * u + np.sin(t)[:, None] * v
        X.append(P + noise * rng.standard_normal((pts, dim)))
        y.append(np.full(pts, c))
    return l2_normalise(np.concatenate(X)), np.concatenate(y).astype(np.int64)


def chains(n_classes: int = 20, modes: int = 4, pts_per_mode: int = 25, dim: int = 32, hop: float = 1.0,
           spread: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each class a chain of Gaussian "views" (modes) placed ``hop`` radians apart along a great circle: a
    discrete multi-view landmark. Points of a view spread by ``spread / sqrt(dim)`` per coordinate.

    Shapes:
        returns ``X (n_classes * modes * pts_per_mode, dim)`` float32 L2-normalised, ``labels`` int.
    """
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c in range(n_classes):
        u, v = _orthonormal_pair(rng, dim)
        start = rng.uniform(0, 2 * np.pi)
        for m in range(modes):
            t = start + m * hop
            centre = np.cos(t) * u + np.sin(t) * v
            X.append(centre + spread / np.sqrt(dim) * rng.standard_normal((pts_per_mode, dim)))
            y.append(np.full(pts_per_mode, c))
    return l2_normalise(np.concatenate(X)), np.concatenate(y).astype(np.int64)


def digits_descriptors() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1,797 images, bundled, offline) as descriptors: pixels centred by the
    mean image, then L2-normalised; relevance = same digit.

    Shapes:
        returns ``X (1797, 64)`` float32, ``labels (1797,)`` int.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    X = d.data - d.data.mean(axis=0, keepdims=True)
    return l2_normalise(X), d.target.astype(np.int64)


def split_queries(X: np.ndarray, labels: np.ndarray, n_queries: int, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``n_queries`` random rows as queries; the rest is the index (queries are never indexed).

    Shapes:
        returns ``Q (n_queries, d)``, ``q_labels (n_queries,)``, ``X_index (n - n_queries, d)``,
        ``index_labels (n - n_queries,)``.
    """
    n = len(X)
    if not 0 < n_queries < n:
        raise ValueError(f"n_queries must be in (0, {n}), got {n_queries}")
    perm = np.random.default_rng(seed).permutation(n)
    q, rest = np.sort(perm[:n_queries]), np.sort(perm[n_queries:])
    return X[q], labels[q], X[rest], labels[rest]
