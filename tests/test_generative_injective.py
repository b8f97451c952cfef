"""Tests of the injective-flow head (l6kit.generative.injective)."""

import pytest
import torch

from l6kit.generative import TensorBatches, realnvp
from l6kit.generative.injective import (
    DiagonalGaussian,
    InjectiveFlow,
    PaddedFlow,
    batched_cg,
    cholesky_half_logdet,
    exact_half_logdet,
    hutchinson_surrogate,
)
from l6kit.train import fit


def _embedding(d=2, D=4, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    flow = realnvp(D, n_layers=3, hidden=(16,)).to(dtype)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))           # move away from the identity initialization
    return PaddedFlow(flow, d, D)


def test_exact_half_logdet_matches_brute_force_jacobian():
    emb = _embedding()
    z = torch.randn(6, 2, dtype=torch.float64)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: emb(v[None])[0], zi) for zi in z])
    brute = 0.5 * torch.linalg.slogdet(jac.transpose(-1, -2) @ jac).logabsdet
    assert torch.allclose(exact_half_logdet(emb, z), brute, atol=1e-10)


def test_cholesky_jitter_rescues_singular_gram():
    gram = torch.zeros(1, 2, 2, dtype=torch.float64)
    gram[0, 0, 0] = 1.0
    assert torch.isfinite(cholesky_half_logdet(gram)).all()


def test_batched_cg_solves_spd_systems():
    a = torch.randn(3, 4, 4, dtype=torch.float64)
    A = a @ a.transpose(-1, -2) + 0.5 * torch.eye(4, dtype=torch.float64)
    b = torch.randn(3, 4, dtype=torch.float64)
    u = batched_cg(lambda v: (A @ v[..., None])[..., 0], b, max_iter=50)
    assert torch.allclose(u, torch.linalg.solve(A, b), atol=1e-8)


def test_hutchinson_gradient_agrees_with_exact_on_average():
    emb = _embedding(seed=1)
    z = torch.randn(3, 2, dtype=torch.float64)
    params = list(emb.parameters())
    exact = torch.cat([g.flatten() for g in torch.autograd.grad(exact_half_logdet(emb, z).sum(), params)])
    gen = torch.Generator().manual_seed(0)
    est = torch.cat([g.flatten() for g in torch.autograd.grad(
        hutchinson_surrogate(emb, z, n_probes=800, generator=gen).sum(), params)])
    rel = float((est - exact).norm() / exact.norm())
    assert rel < 0.1
    single = torch.cat([g.flatten() for g in torch.autograd.grad(
        hutchinson_surrogate(emb, z, n_probes=1, generator=gen).sum(), params)])
    assert float((single - exact).norm() / exact.norm()) > rel          # averaging is what makes it close


@pytest.mark.parametrize("logdet", ["exact", "hutchinson", "none"])
def test_shapes_and_log_prob(logdet):
    model = InjectiveFlow(_embedding(dtype=torch.float32), DiagonalGaussian(2), d=2, D=4, logdet=logdet)
    x = torch.randn(5, 4)
    assert model.encode(x).shape == (5, 2)
    assert model.decode(model.encode(x)).shape == (5, 4)
    assert model.log_prob(x).shape == (5,)
    assert model.half_logdet_jtj(torch.randn(5, 2)).shape == (5,)
    assert model.sample(7, generator=torch.Generator().manual_seed(0)).shape == (7, 4)
    assert model.loss(x).ndim == 0


def test_hutchinson_value_equals_exact_value():
    emb = _embedding(dtype=torch.float32)
    z = torch.randn(4, 2)
    a = InjectiveFlow(emb, DiagonalGaussian(2), 2, 4, logdet="exact").half_logdet_jtj(z)
    b = InjectiveFlow(emb, DiagonalGaussian(2), 2, 4, logdet="hutchinson").half_logdet_jtj(z)
    assert torch.allclose(a, b, atol=1e-5)


def test_analytic_logdet_uses_embedding():
    class Scaled(torch.nn.Module):          # x = (2 z, 0): J^T J = 4 I, 1/2 log det = d log 2
        def forward(self, z):
            return torch.cat([2 * z, torch.zeros_like(z)], -1)

        def inverse(self, x):
            return x[..., :2] / 2

        def half_logdet_jtj(self, z):
            return torch.full(z.shape[:-1], 2 * torch.log(torch.tensor(2.0)).item())

    model = InjectiveFlow(Scaled(), DiagonalGaussian(2), 2, 4, logdet="analytic")
    z = torch.randn(3, 2)
    assert torch.allclose(model.half_logdet_jtj(z), exact_half_logdet(model.decode, z), atol=1e-6)


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    theta = torch.rand(200) * 3
    x = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    model = InjectiveFlow(PaddedFlow(realnvp(2, n_layers=2, hidden=(16,)), 1, 2), DiagonalGaussian(1), 1, 2,
                          logdet="exact", beta=10.0)
    before = model.loss(x).item()
    fit(model, TensorBatches(x, batch_size=50), epochs=5, lr=3e-3, device="cpu", progress=False)
    assert model.loss(x).item() < before


def test_rejects_unknown_method():
    with pytest.raises(ValueError):
        InjectiveFlow(_embedding(), DiagonalGaussian(2), 2, 4, logdet="magic")


def test_exact_loss_shortcut_matches_the_definition():
    model = InjectiveFlow(_embedding(dtype=torch.float32), DiagonalGaussian(2), 2, 4, logdet="exact", beta=3.0)
    x = torch.randn(6, 4)
    z = model.encode(x)
    manual = (-(model.prior.log_prob(z) - exact_half_logdet(model.decode, z))
              + 3.0 * ((x - model.decode(z)) ** 2).sum(-1)).mean()
    assert torch.allclose(model.loss(x), manual, atol=1e-5)
    assert torch.allclose(model.log_prob(x), model.prior.log_prob(z) - model.half_logdet_jtj(z), atol=1e-6)


def test_exact_half_logdet_under_no_grad_is_detached_and_equal():
    emb = _embedding(dtype=torch.float32)
    z = torch.randn(4, 2)
    with torch.no_grad():
        value = exact_half_logdet(emb, z)
    assert not value.requires_grad
    assert torch.allclose(value, exact_half_logdet(emb, z), atol=1e-6)
