"""Sample-based metrics for generative models of data on known manifolds (and a Fréchet distance for features).

* "Is the manifold learned?" — :func:`distance_from_circle`: how far samples lie from the true circle.
* "Is the distribution on it learned?" — :func:`circular_wasserstein1`: the Wasserstein-1 distance between the
  angles of samples and of true data, with arc length as the ground distance.
* :func:`polar_decomposition`: a 2-D density's log-likelihood on circle data split into the part that scores
  the angle (on the manifold) and the part that scores the concentration around the circle (off it).
* :func:`frechet_distance`: the distance between Gaussians fitted to two feature sets (FID when the features are
  Inception-v3 activations).

References:
    Rabin, Delon, Gousseau, "Transportation Distances on the Circle", J. Math. Imaging Vis. 2011 (circular W1).
    Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
    NeurIPS 2017 (FID).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def angles(x) -> np.ndarray:
    """Polar angle of 2-D points in (-pi, pi]. Shapes: ``(n, 2) -> (n,)``."""
    x = as_numpy(x)
    return np.arctan2(x[:, 1], x[:, 0])


def distance_from_circle(x, radius: float = 1.0) -> np.ndarray:
    """Euclidean distance of points from the circle (or, in 3-D and above, the sphere) of ``radius`` about the
    origin, | ||x|| - r |.

    Shapes:
        ``(n, D) -> (n,)``.
    """
    return np.abs(np.linalg.norm(as_numpy(x), axis=1) - radius)


def circular_wasserstein1(a, b) -> float:
    """Exact Wasserstein-1 distance between two empirical distributions of angles on the unit circle.

    With D(t) = F_a(t) - F_b(t) the difference of the CDFs started at any point of the circle,
    W1 = min_alpha integral |D(t) - alpha| dt, attained at a weighted median of D (weights: arc lengths).
    Unlike W1 on the real line, mass that crosses the angle -pi = pi costs its arc length, not 2 pi minus it.

    Args:
        a, b: angles in radians (any real values; they are wrapped), shapes ``(n,)`` and ``(m,)``.

    Returns:
        The distance, in radians of arc (at most pi: two point masses at opposite ends of a diameter).

    References:
        Rabin, Delon, Gousseau, J. Math. Imaging Vis. 2011, Theorem 3.
    """
    a, b = np.mod(as_numpy(a), 2 * np.pi), np.mod(as_numpy(b), 2 * np.pi)
    points = np.concatenate([a, b])
    weights = np.concatenate([np.full(len(a), 1 / len(a)), np.full(len(b), -1 / len(b))])
    order = np.argsort(points, kind="stable")
    points, cdf_diff = points[order], np.cumsum(weights[order])           # D on [t_i, t_{i+1})
    lengths = np.diff(np.append(points, points[0] + 2 * np.pi))           # the last interval wraps around
    keep = lengths > 0
    cdf_diff, lengths = cdf_diff[keep], lengths[keep]
    idx = np.argsort(cdf_diff)
    cum = np.cumsum(lengths[idx])
    median = cdf_diff[idx][np.searchsorted(cum, cum[-1] / 2)]
    return float(np.sum(lengths * np.abs(cdf_diff - median)))


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets:
    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2}).

    Shapes:
        ``(n, k)`` and ``(m, k)`` -> float. With Inception-v3 pool features this is FID; on other features it
        is only comparable within one feature space.

    References:
        Heusel et al., NeurIPS 2017 (FID); Dowson & Landau 1982 (the formula for Gaussians).
    """
    a, b = as_numpy(a), as_numpy(b)
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _sqrtm_psd(sa)
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ sb @ root_a), 0, None)))
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * cross)


def polar_decomposition(log_prob: Callable, X, *, n_angles: int = 96, r_max: float = 3.0) -> dict[str, float]:
    """Split a 2-D density's mean log-likelihood on unit-circle data into an on-manifold and a normal part.

    In polar coordinates, for x on the unit circle, log p(x) = log p_Θ(θ) + log p_{R|Θ}(1 | θ), where
    p_Θ(θ) = ∫ p(r cos θ, r sin θ) r dr is the density the model gives the angle. The first term is what a
    density on the manifold would score; the second grows without bound as the model concentrates on the
    circle. p_Θ is integrated with the trapezoid rule on a grid of ``n_angles`` angles and radii in
    [0, r_max], finest near r = 1.

    Args:
        log_prob: a torch callable ``(m, 2) -> (m,)`` (e.g. ``flow.log_prob``); called without gradients on
            the device of ``X``.
        X: points on the unit circle, a tensor of shape ``(n, 2)``.

    Returns:
        ``{"loglik", "on_manifold", "normal", "mass"}``: means over ``X``, and the probability mass the model
        puts inside radius ``r_max`` (should be close to 1).

    References:
        Loaiza-Ganem et al., TMLR 2022 (manifold overfitting: the likelihood diverges through the normal
        direction).
    """
    import torch

    theta = np.linspace(-np.pi, np.pi, n_angles, endpoint=False)
    radii = np.unique(np.concatenate([np.linspace(0, 0.8, 60), np.linspace(0.8, 1.2, 500),
                                      np.linspace(1.2, r_max, 90)]))
    t, r = (g.reshape(-1) for g in np.meshgrid(theta, radii, indexing="ij"))          # (A*R,) each
    xy = torch.tensor(np.stack([r * np.cos(t), r * np.sin(t)], 1), dtype=X.dtype, device=X.device)
    with torch.no_grad():
        dens = torch.exp(log_prob(xy)).cpu().numpy().reshape(n_angles, len(radii))     # (A, R)
        loglik = log_prob(X).cpu().numpy()                                              # (n,)
    marginal = np.trapezoid(dens * radii, radii, axis=1)                                 # (A,) p_Θ on the grid
    on = np.log(np.interp(angles(X), np.append(theta, np.pi), np.append(marginal, marginal[0])))
    return {"loglik": float(loglik.mean()), "on_manifold": float(on.mean()),
            "normal": float((loglik - on).mean()), "mass": float(marginal.sum() * 2 * np.pi / n_angles)}
