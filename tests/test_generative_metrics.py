"""Metrics with known answers: circular W1, distance from the circle, Fréchet distance, polar decomposition."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from l6kit.generative import (
    angles,
    circular_wasserstein1,
    distance_from_circle,
    frechet_distance,
    polar_decomposition,
)


def test_circular_w1_known_values():
    assert circular_wasserstein1([0.3, 1.0], [1.0, 0.3]) == pytest.approx(0.0)
    assert circular_wasserstein1([0.0], [0.5]) == pytest.approx(0.5)
    # across the cut at -pi = pi the distance is the short arc, not 2 pi minus it
    assert circular_wasserstein1([np.pi - 0.1], [-np.pi + 0.1]) == pytest.approx(0.2)
    assert circular_wasserstein1([0.0], [np.pi]) == pytest.approx(np.pi)
    # four equally spaced points rotated by a quarter turn are the same set
    grid = np.arange(4) * np.pi / 2
    assert circular_wasserstein1(grid, grid + np.pi / 2) == pytest.approx(0.0, abs=1e-12)


def test_circular_w1_matches_the_line_for_concentrated_samples_and_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 0.3, 300), rng.normal(0.4, 0.5, 500)       # far from the cut at +-pi
    assert circular_wasserstein1(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)
    a, b = rng.uniform(-np.pi, np.pi, 40), rng.vonmises(2.0, 1.0, 60)
    t = np.linspace(0, 2 * np.pi, 200_001)[:-1]
    diff = (np.searchsorted(np.sort(np.mod(a, 2 * np.pi)), t, "right") / 40
            - np.searchsorted(np.sort(np.mod(b, 2 * np.pi)), t, "right") / 60)
    brute = min(np.abs(diff - alpha).mean() * 2 * np.pi for alpha in np.linspace(-1, 1, 2001))
    assert circular_wasserstein1(a, b) == pytest.approx(brute, abs=2e-3)
    assert circular_wasserstein1(a, b) == pytest.approx(circular_wasserstein1(b, a))


def test_angles_and_distance_from_circle():
    x = torch.tensor([[2.0, 0.0], [0.0, 0.5], [-1.0, 0.0]])
    np.testing.assert_allclose(angles(x), [0.0, np.pi / 2, np.pi])
    np.testing.assert_allclose(distance_from_circle(x), [1.0, 0.5, 0.0])


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 2))
    b = rng.normal(0, 1, (20000, 2)) * np.array([2.0, 1.0]) + np.array([1.0, 0.0])
    # ||mu||^2 + sum (sigma_a - sigma_b)^2 for diagonal covariances: 1 + (1 - 2)^2 + 0 = 2
    assert frechet_distance(a, b) == pytest.approx(2.0, abs=0.1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_polar_decomposition_of_a_standard_normal():
    def log_prob(x):
        return -0.5 * (x ** 2).sum(-1) - math.log(2 * math.pi)

    theta = torch.linspace(-3, 3, 50)
    X = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    parts = polar_decomposition(log_prob, X, r_max=6.0)
    # isotropic: the angle is uniform, and the radius has density r exp(-r^2/2), i.e. exp(-1/2) at r = 1
    assert parts["on_manifold"] == pytest.approx(-math.log(2 * math.pi), abs=1e-3)
    assert parts["normal"] == pytest.approx(-0.5, abs=1e-3)
    assert parts["mass"] == pytest.approx(1.0, abs=1e-3)
    assert parts["loglik"] == pytest.approx(parts["on_manifold"] + parts["normal"])
