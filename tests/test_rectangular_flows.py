"""Tests of the rectangular-flows page: config, estimator check and the required circle claim over seeds."""

import pytest
import torch

from l6kit import claims
from l6kit.generative import rnf_figures
from l6kit.manifold.learned import load_learned, save_learned
from l6kit.papers import rectangular_flows as rf


def test_config_profiles_and_validation():
    cfg = rf.config("ci", seed=3)
    assert cfg.profile == "ci" and cfg.seed == 3 and cfg.image_datasets == ()
    assert rf.config("paper").n_train == 10_000
    with pytest.raises(ValueError):
        rf.config("ci", est_d=4, est_D=4)
    with pytest.raises(ValueError):
        rf.config("ci", not_a_field=1)


def _required(book: claims.ClaimBook) -> list:
    return [c for c in book.claims if "ci" in c.required_at]


@pytest.mark.parametrize("seed", range(5))
def test_estimator_claims_hold(seed):
    cfg = rf.config("ci", seed=seed, device="cpu")
    table = rf.estimator_agreement(cfg)
    assert set(table["K"]) == set(cfg.est_probes)
    book = claims.ClaimBook(rf.SLUG, cfg)
    rf.record_estimator_claims(book, cfg, table)
    assert all(c.holds for c in _required(book)), [c for c in book.claims if not c.holds]


def test_density_along_circle_is_a_density_for_ml():
    cfg = rf.config("ci", seed=0, device="cpu", epochs=2, n_train=200, n_samples=200, n_reference=500)
    circle = rf.circle_data(cfg)
    models = rf.circle_models(cfg, circle)
    dens = rf.density_along_circle(cfg, models, n_grid=91)
    assert dens.shape == (91, 5) and (dens.drop(columns="theta") >= 0).all().all()
    assert rf.circle_table(circle, models).shape == (4, 2)
    l1 = rf.density_l1(dens)
    assert len(l1) == 3 and (l1 >= 0).all()
    for fig in (rnf_figures.training_curves_figure(models, circle), rnf_figures.density_figure(dens)):
        assert len(fig.data) >= 3


def test_learned_manifolds_round_trip(tmp_path):
    cfg = rf.config("ci", seed=0, device="cpu", epochs=1, n_train=200, n_samples=100, n_reference=500)
    circle = rf.circle_data(cfg)
    learned = rf.learned_manifolds(rf.circle_models(cfg, circle), circle["X"], n_grid=50)
    assert learned["ML (Gaussian prior)"]["manifold"].shape == (50, 2)
    path = save_learned(tmp_path / "m.npz", title="t", data=circle["X"], models=learned)
    assert set(load_learned(path)["models"]) == set(learned)


def test_estimator_figure_has_the_rate_line():
    cfg = rf.config("ci", seed=1, est_probes=(1, 4), est_repeats=2)
    fig = rnf_figures.estimator_figure(rf.estimator_agreement(cfg))
    assert [t.name for t in fig.data] == ["one repeat", "mean", "∝ K^(-1/2)"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_required_circle_claims_hold_over_seeds(seed):
    torch.set_num_threads(1)
    cfg = rf.config("ci", seed=seed, device="cpu")
    circle = rf.circle_data(cfg)
    table = rf.circle_table(circle, rf.circle_models(cfg, circle))
    book = claims.ClaimBook(rf.SLUG, cfg)
    rf.record_circle_claims(book, cfg, circle, table)
    assert all(c.holds for c in _required(book)), table


def test_image_experiment_runs_offline_on_digits():
    cfg = rf.config("ci", device="cpu", image_latent=2, image_layers=2, image_hidden=(16,), image_epochs=1,
                    image_per_class=5, image_batch=25)
    table = rf.image_experiment(cfg, rf.load_images(cfg, "digits"), n_samples=20)
    assert list(table["model"]) == ["ML", "TS"] and table["pixel_fd"].notna().all()
    book = claims.ClaimBook(rf.SLUG, cfg)
    rf.record_image_claims(book, cfg, table)
    assert len(book.claims) == 1 and book.claims[0].required_at == ()
