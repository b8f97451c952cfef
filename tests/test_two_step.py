"""The two-step experiment functions: the required claims hold for seeds 0-4 (not one lucky seed), the analytic
cell has its closed-form values, and the paper profile is wired to the real image data sets."""

import math

import numpy as np
import pytest

from l6kit import claims, data
from l6kit.papers import two_step


def _required(book):
    return [c for c in book.claims if "ci" in c.required_at]


@pytest.mark.parametrize("seed", range(5))
def test_required_claims_without_flows_hold_for_five_seeds(seed):
    cfg = two_step.config("ci", seed=seed)
    book = claims.ClaimBook(two_step.SLUG, cfg)
    two_step.record_analytic_claims(book, cfg, two_step.analytic_overfitting(cfg))
    circle = two_step.circle_data(cfg)
    models = two_step.circle_models(cfg, circle, flows=False)
    two_step.record_circle_claims(book, cfg, circle, two_step.circle_table(circle, models))
    required = _required(book)
    assert len(required) == 3
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_all_required_circle_claims_hold_for_five_seeds(seed):
    """The full circle experiment, flows included (about 30 s per seed on one CPU thread)."""
    cfg = two_step.config("ci", seed=seed)
    book = claims.ClaimBook(two_step.SLUG, cfg)
    circle = two_step.circle_data(cfg)
    models = two_step.circle_models(cfg, circle)
    table = two_step.circle_table(circle, models)
    two_step.record_circle_claims(book, cfg, circle, table, models["flow"]["curve"])
    required = _required(book)
    assert len(required) == 5
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


def test_analytic_cell_closed_form():
    cfg = two_step.config("ci", sigmas=(0.1, 1e-6))
    table = two_step.analytic_overfitting(cfg, n=200_000).set_index(["q", "sigma"])["loglik"]
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    # E log N(u; 0, 1) = -1/2 log 2 pi - 1/2; E log N(u; 2, 0.5^2) = log 2 - 1/2 log 2 pi - (1 + 4) / 0.5
    right = -half_log_2pi - 0.5 - math.log(0.1) - half_log_2pi
    wrong = math.log(2) - half_log_2pi - 10.0 - math.log(1e-6) - half_log_2pi
    assert table[("right q = N(0, 1)", 0.1)] == pytest.approx(right, abs=0.02)
    assert table[("wrong q = N(2, 0.5²)", 1e-6)] == pytest.approx(wrong, abs=0.05)
    assert wrong > right


def test_profiles_and_validation():
    assert two_step.config("paper").image_datasets == ("mnist", "fashion-mnist", "svhn", "cifar10")
    assert two_step.config("ci").image_datasets == ("digits",)
    for name in two_step.config("paper").image_datasets:
        assert data.get(name).files, f"{name} has no download in the registry"
    with pytest.raises(ValueError, match="known: "):
        two_step.config("ci", image_datasets=("imagenet",))
    with pytest.raises(ValueError, match="kappa"):
        two_step.config("ci", kappa=-1.0)
    with pytest.raises(ValueError, match="unknown parameter"):
        two_step.config("ci", epoch=3)


def test_image_experiment_runs_on_a_small_digits_subset():
    cfg = two_step.config("ci", image_epochs=2, image_per_class=30, gmm_components=2)
    result = two_step.image_experiment(cfg, two_step.load_images(cfg, "digits"), n_samples=40)
    assert set(result["table"]["model"]) == set(result["samples"])
    assert all(v.shape == (40, 8, 8) and v.dtype == np.uint8 for v in result["samples"].values())
    assert two_step.image_samples_figure(result, "digits", per_model=4).data
