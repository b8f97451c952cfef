"""Unit tests of the TR0N pieces: shapes, training lowers the loss, Langevin on a known quadratic energy, and a
translator that recovers known class-conditional means."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from l6kit.generative import TensorBatches
from l6kit.generative.tr0n import (
    Classifier,
    Translator,
    class_accuracy,
    classifier_energy,
    langevin,
    per_class_accuracy,
    synthetic_pairs,
    within_class_diversity,
)
from l6kit.train import fit


def _toy_latents(n_per_class=300, C=3, d=2, std=0.1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    means = torch.tensor([[2.0, 0.0], [-1.0, 1.5], [0.0, -2.0]])[:C, :d]
    y = torch.arange(C).repeat_interleave(n_per_class)
    z = means[y] + std * torch.randn(len(y), d, generator=gen)
    return F.one_hot(y, C).float(), z, means


def test_translator_shapes():
    t = Translator(cond_dim=4, latent_dim=3, n_components=5, hidden=(16,))
    c = torch.softmax(torch.randn(7, 4), -1)
    logits, means, log_scales = t.parameters_of(c)
    assert logits.shape == (7, 5) and means.shape == (7, 5, 3) and log_scales.shape == (7, 5, 3)
    assert t.log_prob(c, torch.randn(7, 3)).shape == (7,)
    assert t.sample(c, generator=torch.Generator().manual_seed(0)).shape == (7, 3)
    assert t.loss((c, torch.randn(7, 3))).shape == ()


def test_translator_training_lowers_the_loss():
    c, z, _ = _toy_latents()
    torch.manual_seed(0)
    t = Translator(3, 2, n_components=3, hidden=(32,))
    with torch.no_grad():
        before = float(t.loss((c, z)))
    history = fit(t, TensorBatches((c, z), batch_size=100), epochs=5, lr=1e-2, device="cpu", progress=False)
    assert history.losses[-1] < history.losses[0]
    with torch.no_grad():
        assert float(t.loss((c, z))) < before - 1.0


def test_translator_recovers_class_conditional_means():
    c, z, means = _toy_latents()
    torch.manual_seed(0)
    t = Translator(3, 2, n_components=2, hidden=(32, 32))
    fit(t, TensorBatches((c, z), batch_size=100), epochs=60, lr=5e-3, device="cpu", progress=False)
    with torch.no_grad():
        samples = t.sample(torch.eye(3).repeat_interleave(2000, 0), generator=torch.Generator().manual_seed(1))
        mixture_mean = t.distribution(torch.eye(3)).mean
    for k in range(3):
        assert torch.allclose(mixture_mean[k], means[k], atol=0.1)
        assert torch.allclose(samples[2000 * k:2000 * (k + 1)].mean(0), means[k], atol=0.1)
        assert samples[2000 * k:2000 * (k + 1)].std(0).max() < 0.3


def test_langevin_without_noise_descends_a_quadratic_to_its_minimum():
    m = torch.tensor([1.0, -2.0, 0.5])

    def energy(z, c):
        return 0.5 * ((z - m) ** 2).sum(-1)

    z0 = torch.randn(50, 3) * 5
    steps = []
    z = langevin(energy, z0, torch.zeros(50, 1), steps=100, step_size=0.1, noise_std=0.0,
                 record=lambda t, z: steps.append(t))
    assert torch.allclose(z, m.expand(50, 3), atol=1e-3)
    assert steps == list(range(101))


def test_langevin_with_matched_noise_samples_the_gaussian():
    """With noise_std = sqrt(2 step) Langevin samples exp(-E): here N(m, s^2 I) with s = 0.5."""
    m, s = torch.tensor([1.0, -2.0]), 0.5

    def energy(z, c):
        return 0.5 * (((z - m) / s) ** 2).sum(-1)

    step = 0.005
    z = langevin(energy, torch.zeros(4000, 2), torch.zeros(4000, 1), steps=600, step_size=step,
                 noise_std=(2 * step) ** 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(0), m, atol=0.05)
    assert torch.allclose(z.std(0), torch.full((2,), s), atol=0.05)


def test_classifier_energy_and_synthetic_pairs():
    torch.manual_seed(0)
    G = torch.nn.Linear(2, 5)
    f = Classifier(5, 3, hidden=(8,))
    c, z = synthetic_pairs(G, f, 25, 2, soft=True, batch_size=10, generator=torch.Generator().manual_seed(0))
    assert c.shape == (25, 3) and z.shape == (25, 2)
    assert torch.allclose(c.sum(-1), torch.ones(25), atol=1e-5)
    hard, _ = synthetic_pairs(G, f, 25, 2, soft=False)
    assert set(hard.sum(-1).tolist()) == {1.0} and set(hard.flatten().tolist()) <= {0.0, 1.0}
    target = F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    zz = torch.randn(4, 2)
    e0 = classifier_energy(G, f, prior_weight=0.0)(zz, target)
    assert torch.allclose(e0, F.cross_entropy(f(G(zz)), target.argmax(-1), reduction="none"), atol=1e-5)
    e1 = classifier_energy(G, f, prior_weight=2.0)(zz, target)
    assert torch.allclose(e1 - e0, (zz ** 2).sum(-1), atol=1e-5)


def test_classifier_training_lowers_the_loss():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (300,), generator=gen)
    x = F.one_hot(y, 3).float() * 3 + torch.randn(300, 3, generator=gen)
    torch.manual_seed(0)
    clf = Classifier(3, 3, hidden=())
    history = fit(clf, TensorBatches((x, y), batch_size=50), epochs=10, lr=1e-2, device="cpu", progress=False)
    assert history.losses[-1] < history.losses[0]
    assert class_accuracy(clf.predict(x), y) > 0.9


def test_metrics_known_values():
    assert class_accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
    acc = per_class_accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]), 4)
    assert acc[:3].tolist() == [1.0, 0.5, 1.0] and np.isnan(acc[3])
    x = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0], [7.0, 7.0]])
    div = within_class_diversity(x, np.array([0, 0, 1, 1, 2]), 3)
    assert div[0] == pytest.approx(5.0) and div[1] == pytest.approx(0.0) and np.isnan(div[2])
