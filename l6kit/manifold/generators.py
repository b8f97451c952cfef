"""Generated manifolds of known intrinsic dimension, isometrically embedded in a larger ambient space.

Each generator samples the intrinsic object (a sphere, a flat torus) in its natural coordinates, then maps it
into ``ambient`` dimensions with a random matrix with orthonormal columns, so distances, and therefore the
intrinsic dimension, are unchanged while every ambient coordinate is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def random_isometry(n_in: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``(n_in, n_out)`` matrix with orthonormal rows (x -> x @ Q preserves distances)."""
    if n_out < n_in:
        raise ValueError(f"ambient dimension {n_out} is smaller than the embedding's {n_in}")
    q, _ = np.linalg.qr(rng.standard_normal((n_out, n_in)))       # (n_out, n_in), orthonormal columns
    return q.T


def sphere(n: int, d: int, ambient: int, *, radius: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` points uniform on the d-sphere S^d (a d-dimensional manifold in R^{d+1}), embedded in R^ambient.

    Returns:
        Shape ``(n, ambient)``.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d + 1))
    z *= radius / np.linalg.norm(z, axis=1, keepdims=True)        # (n, d+1) on the sphere
    return z @ random_isometry(d + 1, ambient, rng)


def flat_torus(n: int, d: int, ambient: int, *, radius: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` points uniform on the flat d-torus (S^1)^d ⊂ R^{2d}, embedded in R^ambient.

    Returns:
        Shape ``(n, ambient)``.
    """
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * np.pi, (n, d))                    # (n, d)
    z = radius * np.concatenate([np.cos(angles), np.sin(angles)], axis=1)   # (n, 2d)
    return z @ random_isometry(2 * d, ambient, rng)


def union(parts: Sequence[np.ndarray], *, spacing: float = 10.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint union of point clouds of equal ambient dimension, each moved to its own random centre.

    Args:
        parts: point clouds, each shape ``(n_i, D)``.
        spacing: distance of each part's centre from the origin (large => well-separated components).
        seed: seed for the centres.

    Returns:
        ``(X, labels)``: shape ``(sum n_i, D)`` and ``(sum n_i,)`` with the part index of every point.
    """
    rng = np.random.default_rng(seed)
    dims = {p.shape[1] for p in parts}
    if len(dims) != 1:
        raise ValueError(f"parts must share one ambient dimension, got {sorted(dims)}")
    D = dims.pop()
    centres = rng.standard_normal((len(parts), D))
    centres *= spacing / np.linalg.norm(centres, axis=1, keepdims=True)
    X = np.concatenate([p + c for p, c in zip(parts, centres, strict=True)])
    labels = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    return X, labels


def von_mises_circle(n: int, *, kappa: float = 1.0, loc: float = 0.0, radius: float = 1.0,
                     seed: int = 0) -> np.ndarray:
    """``n`` points on the circle of ``radius`` in R^2 whose angles follow a von Mises distribution.

    The angle density is p(theta) = exp(kappa cos(theta - loc)) / (2 pi I_0(kappa)): a 1-dimensional manifold
    in R^2 carrying a known, non-uniform density (``kappa = 0`` is uniform). It is the toy data set of the
    two-step paper and of rectangular flows. Recover the angles with ``np.arctan2(X[:, 1], X[:, 0])``.

    Returns:
        Shape ``(n, 2)``: ``radius * (cos theta, sin theta)``.

    References:
        Loaiza-Ganem et al., "Diagnosing and Fixing Manifold Overfitting in Deep Generative Models", TMLR 2022,
        von Mises example.
    """
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    theta = np.random.default_rng(seed).vonmises(loc, kappa, n)             # (n,) in [-pi, pi]
    return radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
