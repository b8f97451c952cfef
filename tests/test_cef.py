"""The CEF experiment functions: the required claims hold for seeds 0-4, the analytic projected-normal density
is right, and the configuration validates its inputs."""

import numpy as np
import pytest

from l6kit import claims
from l6kit.papers import cef


@pytest.mark.parametrize("seed", range(5))
def test_required_claims_hold_for_five_seeds(seed):
    cfg = cef.config("ci", seed=seed, curve_points=1)
    book = claims.ClaimBook(cef.SLUG, cfg)
    sphere = cef.sphere_data(cfg)
    result, ambient = cef.train_cef(cfg, sphere), cef.train_ambient_flow(cfg, sphere)
    cef.record_logdet_claims(book, cfg, cef.block_checks(cfg, trained=result["model"].embedding))
    cef.record_sphere_claims(book, cfg, sphere, result["metrics"], ambient["metrics"])
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 6
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


def test_projected_normal_density_integrates_to_one_and_matches_samples():
    grid = cef.sphere_grid(90, 180)
    assert grid["area"].sum() == pytest.approx(4 * np.pi, rel=1e-9)
    p = cef.projected_normal_density(grid["points"], (-1.0, -1.0, 0.0))
    assert (grid["area"] * p).sum() == pytest.approx(1.0, abs=1e-3)
    # the mean direction of samples matches the density's
    x = cef.projected_normal(200_000, (-1.0, -1.0, 0.0), seed=0)
    assert np.allclose(x.mean(0), (grid["area"] * p) @ grid["points"], atol=5e-3)
    assert cef.sample_tv(x[:5000], (-1.0, -1.0, 0.0), (8, 16)) < 0.1
    assert cef.sample_tv(cef.projected_normal(5000, (3.0, 0.0, 0.0)), (-1.0, -1.0, 0.0), (8, 16)) > 0.5


def test_grid_divergences_are_zero_for_the_truth():
    grid = cef.sphere_grid(30, 60)
    p = cef.projected_normal_density(grid["points"], (0.0, 0.0, 2.0))
    out = cef.grid_divergences(p, p, grid["area"])
    assert out["kl"] == pytest.approx(0.0, abs=1e-12) and out["tv"] == 0.0
    assert out["mass"] == pytest.approx(1.0, abs=1e-2)


def test_profiles_and_validation():
    assert cef.config("paper").epochs > cef.config("ci").epochs
    with pytest.raises(ValueError, match="allowed"):
        cef.config("ci", no_such_field=1)
    with pytest.raises(ValueError, match="3-D mean"):
        cef.config("ci", mean=(1.0, 0.0))


def test_analytic_and_exact_logdet_agree_and_cost_is_tabulated():
    cfg = cef.config("ci", cost_dims=((2, 3), (8, 64)))
    cost = cef.logdet_cost(cfg, n=20, repeats=1)
    assert list(cost["D"]) == [3, 64] and (cost["exact_ms"] > 0).all()
    book = claims.ClaimBook(cef.SLUG, cfg)
    cef.record_cost_claims(book, cfg, cost)
    assert [c.holds for c in book.claims if "ci" in c.required_at] == [True]
