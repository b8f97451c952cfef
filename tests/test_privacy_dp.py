"""Tests for l6kit.privacy.dp: per-sample gradients, clipping rules, noise scale, accounting."""

import math

import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from torch import nn

from l6kit.privacy import (
    DPSGD,
    clip,
    dpsgdf_bounds,
    epsilon_for,
    fit_private,
    flat,
    grad_norms,
    noise_for_epsilon,
    noise_for_epsilon_with_counts,
    per_sample_grads,
    poisson_batches,
    privatize,
    update_z,
)

LOSS = nn.CrossEntropyLoss(reduction="none")


def _model_and_batch(B=7, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    return model, torch.randn(B, 5), torch.randint(0, 3, (B,))


def test_per_sample_grads_match_loop():
    model, x, y = _model_and_batch()
    grads = per_sample_grads(model, LOSS, x, y)
    assert set(grads) == {n for n, _ in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        LOSS(model(x[i:i + 1]), y[i:i + 1]).sum().backward()
        for n, p in model.named_parameters():
            assert grads[n].shape == (len(x), *p.shape)
            torch.testing.assert_close(grads[n][i], p.grad, atol=1e-6, rtol=1e-5)


def test_empty_batch_gives_empty_grads():
    model, x, y = _model_and_batch()
    grads = per_sample_grads(model, LOSS, x[:0], y[:0])
    assert all(g.shape[0] == 0 for g in grads.values())


def _fake_grads(norms):
    g = torch.randn(len(norms), 4, 3)
    g = g / g.reshape(len(norms), -1).norm(dim=1).view(-1, 1, 1) * torch.tensor(norms).view(-1, 1, 1)
    return {"w": g}


def test_per_sample_clipping_norms():
    grads = _fake_grads([0.5, 1.0, 3.0, 10.0])
    out, info = clip(grads, 1.0)
    torch.testing.assert_close(grad_norms(out), torch.tensor([0.5, 1.0, 1.0, 1.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(info["norms"], torch.tensor([0.5, 1.0, 3.0, 10.0]), atol=1e-5, rtol=0)
    assert info["sensitivity"] == 1.0 and info["clipped_frac"] == 0.5


def test_global_rules_scale_and_direction():
    grads = _fake_grads([0.5, 2.0, 8.0])
    g, info = clip(grads, 1.0, "global", Z=4.0)
    torch.testing.assert_close(grad_norms(g), torch.tensor([0.125, 0.5, 0.0]), atol=1e-5, rtol=0)
    ga, _ = clip(grads, 1.0, "global-adapt", Z=4.0)
    torch.testing.assert_close(grad_norms(ga), torch.tensor([0.125, 0.5, 1.0]), atol=1e-5, rtol=0)
    # below Z every sample gets the same factor: the sum keeps the unclipped direction
    small = _fake_grads([0.5, 2.0, 3.0])
    s, _ = clip(small, 1.0, "global-adapt", Z=4.0)
    cos = torch.cosine_similarity(s["w"].sum(0).flatten(), small["w"].sum(0).flatten(), dim=0)
    assert cos > 1 - 1e-6
    with pytest.raises(ValueError):
        clip(grads, 1.0, "global")
    with pytest.raises(ValueError):
        clip(grads, 1.0, "nope")


def test_dpsgdf_bounds_favour_groups_that_clip_more():
    norms = torch.tensor([0.1, 0.2, 0.3, 5.0, 6.0, 7.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    b, bmax = dpsgdf_bounds(norms, groups, 2, 1.0, count_noise=0.0)
    assert torch.allclose(b, torch.tensor([1.0, 1.0, 1.0, 3.0, 3.0, 3.0])) and bmax == pytest.approx(3.0)
    _, info = clip(_fake_grads(norms.tolist()), 1.0, "dpsgd-f", bounds=b)
    assert info["sensitivity"] == 3.0
    # the noise must cover the largest bound of any group, also when that group is absent from the batch
    _, info = clip(_fake_grads([0.1, 0.2, 0.3]), 1.0, "dpsgd-f", bounds=b[:3], bound_max=bmax)
    assert info["sensitivity"] == pytest.approx(3.0)


def test_noise_scale():
    B, C, sigma = 10, 2.0, 1.5
    grads = {"w": torch.zeros(B, 20000)}
    noisy, info = privatize(grads, C, sigma, generator=torch.Generator().manual_seed(0))
    assert abs(noisy["w"].std().item() - sigma * C / B) < 0.02 * sigma * C / B
    assert info["std"] == sigma * C
    grads = _fake_grads([3.0] * B)
    noisy, info = privatize(grads, C, 0.0)
    torch.testing.assert_close(noisy["w"], clip(grads, C)[0]["w"].sum(0) / B)
    noisy, info = privatize(grads, C, 0.0, expected_batch_size=20)
    assert info["divisor"] == 20


def test_update_z_moves_towards_quantile():
    norms = torch.full((100,), 10.0)
    assert update_z(norms, 1.0, lr_z=0.1, tau=0.7, count_noise=0.0) == pytest.approx(math.exp(0.9))
    assert update_z(norms, 100.0, lr_z=0.1, tau=0.7, count_noise=0.0) == pytest.approx(100 * math.exp(-0.1))


def test_epsilon_matches_opacus():
    acc = RDPAccountant()
    for _ in range(300):
        acc.step(noise_multiplier=1.1, sample_rate=0.01)
    assert epsilon_for(1.1, 0.01, 300, 1e-5) == pytest.approx(acc.get_epsilon(1e-5))
    s = noise_for_epsilon(3.0, 0.01, 300, 1e-5)
    assert s == pytest.approx(get_noise_multiplier(target_epsilon=3.0, target_delta=1e-5, sample_rate=0.01,
                                                   steps=300, accountant="rdp"))
    assert epsilon_for(s, 0.01, 300, 1e-5) <= 3.0 + 0.05


@pytest.mark.parametrize("rule,kw", [("per-sample", {}), ("global", {"Z": 50.0}),
                                     ("global-adapt", {"Z": 5.0}), ("dpsgd-f", {"num_groups": 3})])
def test_dpsgd_step_lowers_loss_and_accounts(rule, kw):
    model, x, y = _model_and_batch(B=64)
    opt = DPSGD(model, lr=0.5, max_norm=1.0, noise_multiplier=0.3, sample_rate=0.5, rule=rule,
                generator=torch.Generator().manual_seed(0), **kw)
    lr_ = 5.0 if rule == "global" else 0.5    # global scales by C/Z = 1/50
    opt.lr = lr_
    before = LOSS(model(x), y).mean().item()
    g = torch.Generator().manual_seed(1)
    for idx in poisson_batches(64, 0.5, 30, g):
        info = opt.step(x[idx], y[idx], LOSS)
    assert info["grad_norms"].shape == (len(idx),)
    assert LOSS(model(x), y).mean().item() < before
    eps = opt.epsilon()
    acc = RDPAccountant()
    acc.history = [(0.3, 0.5, 30)]
    if rule in ("global-adapt", "dpsgd-f"):
        acc.history.append((10.0, 0.5, 30))
        assert eps > epsilon_for(0.3, 0.5, 30, 1e-5)
    assert eps == pytest.approx(acc.get_epsilon(1e-5))


def test_flat_and_options():
    model, x, y = _model_and_batch()
    grads = per_sample_grads(model, LOSS, x, y)
    assert flat(grads).shape == (len(x), sum(p.numel() for p in model.parameters()))
    with pytest.raises(ValueError):
        DPSGD(model, 0.1, 1.0, 1.0, 0.1, rule="global")
    with pytest.raises(ValueError):
        DPSGD(model, 0.1, 1.0, 1.0, 0.1, bogus=1)


def test_noise_for_epsilon_with_counts_matches_composed_epsilon():
    sigma = noise_for_epsilon_with_counts(4.0, 0.05, 500, 1e-5, count_noise=10.0)
    acc = RDPAccountant()
    acc.history = [(sigma, 0.05, 500), (10.0, 0.05, 500)]
    assert acc.get_epsilon(1e-5) == pytest.approx(4.0, abs=0.02)
    assert sigma > noise_for_epsilon(4.0, 0.05, 500, 1e-5)


def test_fit_private_non_private_and_private():
    model, x, y = _model_and_batch(B=128)
    free = DPSGD(model, lr=0.5, max_norm=float("inf"), noise_multiplier=0.0, sample_rate=0.25)
    losses = fit_private(free, x, y, LOSS, epochs=5, generator=torch.Generator().manual_seed(0))
    assert len(losses) == 20 and losses[-1] < losses[0] and free.epsilon() == float("inf")
    seen = []
    opt = DPSGD(model, lr=0.5, max_norm=1.0, noise_multiplier=1.0, sample_rate=0.25)
    fit_private(opt, x, y, LOSS, epochs=1, callback=lambda t, idx, info: seen.append(t))
    assert seen == [0, 1, 2, 3] and opt.epsilon() == pytest.approx(epsilon_for(1.0, 0.25, 4, 1e-5))
