"""fair-dp: the diagnostics on cases with a known answer, the paper profile's wiring, and the required ci claims
over seeds 0-4 (the experiment functions, not one lucky seed)."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from l6kit import claims, data
from l6kit.data.images import ImageSet
from l6kit.papers import fair_dp
from l6kit.privacy import DPSGD
from l6kit.privacy.fairness import (
    AlignmentProbe,
    accuracy_gap,
    cosine,
    mean_gradient,
    per_group_accuracy,
    predict,
)

LOSS = nn.CrossEntropyLoss(reduction="none")


def test_group_metrics_known_answers():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    acc = per_group_accuracy(model, x, y, y, 3)
    assert acc[0] == 1.0 and acc[1] == 0.5 and np.isnan(acc[2])
    assert accuracy_gap(np.array([1.0, 0.9, 0.5]), minority=2) == pytest.approx(0.45)
    assert cosine(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])) == 0.0
    assert cosine(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0])) == pytest.approx(1.0)


def _probe_run(rule, **kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(60, 4), torch.randint(0, 3, (60,))
    x[y == 2] *= 6.0                                                   # group 2 has larger gradients
    opt = DPSGD(model, 0.1, 1.0, 0.0, sample_rate=0.5, rule=rule, **kw)
    probe = AlignmentProbe(model, LOSS, x, y, y, 3, minority=2, every=1)
    for t in range(5):
        probe(t, torch.arange(60), opt.step(x, y, LOSS))
    return probe


def test_probe_global_scaling_keeps_direction_per_sample_does_not():
    glob = _probe_run("global-adapt", Z=1e6).frame()
    assert glob["delta_cos_minority"].abs().max() < 1e-5 and glob["dir_err"].abs().max() < 1e-5
    per = _probe_run("per-sample")
    assert per.frame()["dir_err"].min() > 1e-3
    stats = per.clip_stats()
    assert stats.loc[2, "mean_norm"] > stats.loc[0, "mean_norm"] and stats["clipped_frac"].between(0, 1).all()


def test_probe_true_gradient_is_taken_at_the_parameters_the_step_used():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    probe = AlignmentProbe(model, LOSS, x, y, y, 2, minority=1, every=2)
    opt = DPSGD(model, 0.5, float("inf"), 0.0, sample_rate=1.0)       # full batch, no clipping, no noise
    for t in range(5):
        probe(t, torch.arange(20), opt.step(x, y, LOSS))
    frame = probe.frame()
    assert list(frame["step"]) == [0, 2, 4]
    assert np.allclose(frame["cos_raw_all"], 1.0, atol=1e-5)         # batch mean = true gradient, same point
    assert np.allclose(frame["delta_cos_all"], 0.0, atol=1e-5)


def test_config_validation_and_profiles():
    assert fair_dp.config("paper").dataset == "mnist" and fair_dp.config("paper").minority_ratio == 0.09
    assert fair_dp.config("ci").dataset == "digits"
    with pytest.raises(ValueError, match="unknown methods"):
        fair_dp.config("ci", methods=("dpsgd", "magic"))
    with pytest.raises(ValueError, match="minority_ratio"):
        fair_dp.config("ci", minority_ratio=0.0)


def test_paper_profile_wiring(monkeypatch):
    rng = np.random.default_rng(0)

    def fake_load(name, profile, split="train", **kw):
        assert (name, profile) == ("mnist", "paper")
        n = 200 if split == "train" else 50
        return ImageSet("mnist", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                        np.arange(n) % 10, tuple(map(str, range(10))))

    monkeypatch.setattr(data, "load", fake_load)
    cfg = fair_dp.config("paper")
    split = fair_dp.load_split(cfg)
    assert split.x_train.shape[1:] == (1, 28, 28) and int((split.y_train == 8).sum()) == 2   # ceil(0.09 x 20)
    assert len(split.y_test) == 50
    model = fair_dp.make_model(cfg, split)
    assert model(split.x_train[:3]).shape == (3, 10)


def test_split_downsamples_only_training_minority():
    cfg = fair_dp.config("ci")
    split = fair_dp.load_split(cfg)
    counts = torch.bincount(split.y_train, minlength=10)
    assert counts[8] < 0.35 * counts[[0, 1, 2]].float().mean()
    assert int((split.y_test == 8).sum()) > 40


@pytest.mark.parametrize("seed", range(5))
def test_required_claims_hold_for_five_seeds(seed):
    cfg = dataclasses.replace(fair_dp.config("ci", seed=seed), methods=("non-private", "dpsgd", "global-adapt"))
    split = fair_dp.load_split(cfg)
    results = {m: fair_dp.run_method(cfg, split, m, probe=m != "non-private") for m in cfg.methods}
    results["non-private"]["history"] = results["dpsgd"]["history"].iloc[:0]
    results["non-private"]["clip_stats"] = results["dpsgd"]["clip_stats"]
    book = claims.ClaimBook("fair-dp", cfg)
    fair_dp.record_claims(book, cfg, results)
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 5
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


def test_mean_gradient_chunks_and_predict():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.randn(50, 3), torch.randint(0, 2, (50,))
    torch.testing.assert_close(mean_gradient(model, LOSS, x, y, chunk=7), mean_gradient(model, LOSS, x, y))
    assert torch.equal(predict(model, x, chunk=8), model(x).argmax(1))
