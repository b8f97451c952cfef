"""l6kit.attribution: WinIT, occlusion and captum baselines on models with a known answer; shapes; the
counterfactual generators; ground-truth metrics and masking against hand-computed cases."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from l6kit.attribution import (
    AugmentedFeatureOcclusion,
    CaptumAttribution,
    DataDistributionGenerator,
    FeatureOcclusion,
    GaussianWindowGenerator,
    WinIT,
    aggregate_windows,
    distance,
    mask_top,
    per_sample_auprc,
    saliency_scores,
    train_generator,
)
from l6kit.timeseries import GRUClassifier


class ReadsFeatureWithDelay(nn.Module):
    """p(y_t) = sigmoid(3 x[2, t - delay]) (0.5 before any input reaches it): only feature 2 at t - delay."""

    def __init__(self, delay: int):
        super().__init__()
        self.delay = delay
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        shifted = nn.functional.pad(x[:, 2], (self.delay, 0))[:, : x.shape[2]]      # (B, T)
        return self.sigmoid(3 * shifted)


def _data(n=6, T=12, seed=0):
    return torch.randn(n, 3, T, generator=torch.Generator().manual_seed(seed))


class ConstantGenerator:
    """Counterfactual = 0 everywhere (deterministic, so the differences (2) are exact)."""

    def sample(self, x, window, n_samples, *, generator=None):
        return torch.zeros(n_samples, *x.shape, window)


@pytest.mark.parametrize("delay", [0, 2])
def test_winit_puts_all_mass_on_feature_2_at_t_minus_delay(delay):
    x = _data()
    model = ReadsFeatureWithDelay(delay)
    winit = WinIT(model, ConstantGenerator(), window=4, n_samples=1)
    windows = winit.window_scores(x)
    assert windows.shape == (6, 3, 12, 4)
    assert windows[:, :2].abs().max() < 1e-6                       # features 0 and 1 are never read
    lag = torch.arange(4)
    assert windows[:, 2][..., lag != delay].abs().max() < 1e-6     # I(t - n, t) = 0 unless n = delay
    expected = (model(x) - 0.5).abs() * 2                          # pd distance of replacing x[2, t-d] by 0
    torch.testing.assert_close(windows[:, 2, delay + 1:, delay], expected[:, delay + 1:])
    scores = winit.attribute(x)
    assert scores.shape == x.shape
    assert scores[:, :2].abs().max() < 1e-6
    assert (scores[:, 2, 1:12 - delay] > 0).all()                  # every observation the model reads scores


def test_winit_with_random_counterfactuals_concentrates_on_the_read_lag():
    x = _data()
    gen = DataDistributionGenerator(_data(50, 12, seed=1))
    windows = WinIT(ReadsFeatureWithDelay(2), gen, window=4, n_samples=16).window_scores(x)
    by_lag = windows[:, 2, 4:].abs().mean(dim=(0, 1))              # mean |I| per look-back n
    assert by_lag[2] > 5 * by_lag[[0, 1, 3]].max()


def test_occlusion_sees_the_same_step_only():
    x = _data()
    data = _data(50, 12, seed=1)
    for delay, expect_mass in ((0, True), (2, False)):
        model = ReadsFeatureWithDelay(delay)
        for ex in (FeatureOcclusion(model, n_samples=4), AugmentedFeatureOcclusion(model, data, n_samples=4)):
            scores = ex.attribute(x)
            assert scores.shape == x.shape and scores[:, :, 0].abs().max() == 0
            assert scores[:, :2].abs().max() < 1e-6
            # delayed effects are invisible to a same-step explainer: no mass anywhere
            assert (scores[:, 2, 1:].min() > 0) if expect_mass else (scores.abs().max() < 1e-7)


def test_afo_draws_come_from_the_data():
    data = torch.full((5, 3, 4), 7.0)
    afo = AugmentedFeatureOcclusion(ReadsFeatureWithDelay(0), data, n_samples=2)
    draws = afo._draw((10,), 1, torch.Generator().manual_seed(0))
    assert torch.all(draws == 7.0)


@pytest.mark.parametrize("method", ["ig", "deeplift", "gradientshap"])
def test_captum_baselines_explain_the_last_step(method):
    x = _data().abs() + 0.1
    scores = CaptumAttribution(ReadsFeatureWithDelay(2), method, n_steps=16, n_samples=8).attribute(x)
    assert scores.shape == x.shape and torch.all(scores >= 0)
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 2, -3] = True                                          # p(y_T) reads x[2, T - 1 - delay]
    assert scores[mask].min() > 0 and scores[~mask].abs().max() < 1e-6


def test_causal_fast_path_equals_running_every_prefix():
    torch.manual_seed(0)
    model = GRUClassifier(3, hidden=8).eval()
    x = _data(4, 9)
    gen = DataDistributionGenerator(_data(20, 9, seed=3))
    fast = WinIT(model, gen, window=3, n_samples=2, seed=5).removal_scores(x)
    slow = WinIT(model, gen, window=3, n_samples=2, seed=5, causal=False).removal_scores(x)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)
    T, W = 9, 3
    invalid = torch.arange(W)[None, :] >= torch.arange(T)[:, None]           # n >= t: never scored
    assert fast[:, :, invalid].abs().max() == 0


def test_winit_batches_and_generators_on_a_gru():
    torch.manual_seed(0)
    model = GRUClassifier(3, hidden=8).eval()
    x = _data(5, 8)
    gen = GaussianWindowGenerator(3, horizon=4, hidden=6).eval()
    one = WinIT(model, gen, window=4, batch_size=5).attribute(x)
    assert one.shape == x.shape and torch.isfinite(one).all()
    for metric in ("kl", "js"):
        assert torch.isfinite(WinIT(model, gen, window=2, metric=metric).attribute(x)).all()
    with pytest.raises(ValueError, match="horizon"):
        WinIT(model, gen, window=5).attribute(x)
    with pytest.raises(ValueError, match="allowed"):
        WinIT(model, gen, metric="l2")


def test_aggregate_windows_by_hand():
    # one series, one feature, T = 3, W = 2; windows[t, n] = I(t - n, t)
    w = torch.tensor([[0.0, 0.0], [1.0, 4.0], [2.0, -6.0]]).reshape(1, 1, 3, 2)
    # observation tau gets windows[tau + n, n]: tau=0 -> (0, 4); tau=1 -> (1, -6); tau=2 -> (2,)
    torch.testing.assert_close(aggregate_windows(w, "mean")[0, 0], torch.tensor([2.0, -2.5, 2.0]))
    torch.testing.assert_close(aggregate_windows(w, "max")[0, 0], torch.tensor([4.0, 1.0, 2.0]))
    torch.testing.assert_close(aggregate_windows(w, "absmax")[0, 0], torch.tensor([4.0, -6.0, 2.0]))
    with pytest.raises(ValueError):
        aggregate_windows(w, "median")


def test_distances_by_hand():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    assert math.isclose(distance(p, q, "pd").item(), 0.8, rel_tol=1e-6)
    kl = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert math.isclose(distance(p, q, "kl").item(), kl, rel_tol=1e-5)
    m = torch.tensor([0.7, 0.3])
    js = 0.5 * (float((p * (p / m).log()).sum()) + float((q * (q / m).log()).sum()))
    assert math.isclose(distance(p, q, "js").item(), js, rel_tol=1e-5)
    assert distance(p, p, "js").item() == pytest.approx(0.0, abs=1e-7)


def test_gaussian_generator_shapes_and_training_lowers_its_loss():
    x = np.cumsum(np.random.default_rng(0).normal(size=(64, 2, 16)), axis=2).astype(np.float32) / 4
    gen = GaussianWindowGenerator(2, horizon=3, hidden=8)
    mu, sigma = gen.params(torch.as_tensor(x[:4]))
    assert mu.shape == sigma.shape == (4, 2, 16, 3) and torch.all(sigma > 0)
    draws = gen.sample(torch.as_tensor(x[:4]), 2, 5)
    assert draws.shape == (5, 4, 2, 16, 2)
    trained, history = train_generator(x, horizon=3, hidden=8, epochs=8, batch_size=16, lr=1e-2)
    assert history.losses[-1] < history.losses[0]
    assert not trained.training


def test_data_distribution_generator_draws_each_features_own_values():
    data = torch.stack([torch.zeros(10, 6), torch.ones(10, 6)], 1)          # feature 0 = 0, feature 1 = 1
    draws = DataDistributionGenerator(data).sample(torch.zeros(3, 2, 6), 4, 2)
    assert draws.shape == (2, 3, 2, 6, 4)
    assert torch.all(draws[:, :, 0] == 0) and torch.all(draws[:, :, 1] == 1)


def test_saliency_scores_by_hand():
    # cells (t >= 1): scores 0.9, 0.8, 0.2, 0.1 with truth 1, 0, 1, 0
    scores = np.array([[[5.0, 0.9, 0.8, 0.2, 0.1]]])
    truth = np.array([[[True, True, False, True, False]]])
    out = saliency_scores(scores, truth)                       # step 0 is dropped
    assert out["auroc"] == pytest.approx(0.75)                 # 3 of 4 (pos, neg) pairs ordered
    assert out["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # PR points (recall, precision): (0, 1) (.5, 1) (.5, .5) (1, 2/3) (1, .5): trapezoids .5 + (.5)(.5+2/3)/2
    assert out["auprc"] == pytest.approx(0.5 + 0.5 * (0.5 + 2 / 3) / 2)
    assert out["positives"] == 2 and out["cells"] == 4
    assert math.isnan(saliency_scores(scores, np.zeros_like(truth))["auroc"])
    with pytest.raises(ValueError, match="shape"):
        saliency_scores(scores[..., :3], truth)


def test_per_sample_auprc():
    scores = np.array([[[0, 0.9, 0.1]], [[0, 0.1, 0.9]], [[0, 0.5, 0.5]]])
    truth = np.array([[[0, 1, 0]], [[0, 1, 0]], [[0, 0, 0]]], dtype=bool)
    out = per_sample_auprc(scores, truth)
    assert out[0] == pytest.approx(1.0) and out[1] < 1.0 and math.isnan(out[2])


def test_mask_top_carries_forward_to_the_end():
    x = np.arange(12, dtype=np.float32).reshape(1, 2, 6)       # feature 0: 0..5, feature 1: 6..11
    scores = np.zeros((1, 2, 6))
    scores[0, 0, 3] = 5.0                                      # the top cell
    scores[0, 0, 5] = 4.0                                      # later in the same row: already masked
    masked, where = mask_top(x, scores, fraction=0.2)          # 20 % of 10 cells = 2 cells
    np.testing.assert_array_equal(masked[0, 0], [0, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(masked[0, 1], x[0, 1])
    assert where.sum() == 3 and where[0, 0, 3:].all()


def test_nested_npz_round_trip(tmp_path):
    from l6kit.attribution import load_nested, save_nested

    tree = {"task": "spike", "delay": 2, "scores": {"winit": {"auprc": 0.5}}, "x": np.ones((2, 3))}
    back = load_nested(save_nested(tmp_path / "a" / "r.npz", tree))
    assert back["task"] == "spike" and back["delay"] == 2 and back["scores"]["winit"]["auprc"] == 0.5
    np.testing.assert_array_equal(back["x"], tree["x"])
    with pytest.raises(ValueError, match="separates"):
        save_nested(tmp_path / "b.npz", {"a/b": 1})
