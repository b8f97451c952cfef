"""Conformal layers and embeddings: JᵀJ = λ²I checked against autograd in float64, inverses, the point at
infinity, and a conformal embedding flow that trains through the shared injective-flow head."""

import pytest
import torch
from torch.autograd.functional import jacobian

from l6kit.generative import TensorBatches, spline_flow
from l6kit.generative.conformal import (
    ConformalEmbedding,
    ConformalScaleShift,
    OrthogonalLinear,
    SpecialConformal,
    ZeroPad,
    conformal_embedding,
    special_conformal,
)
from l6kit.generative.injective import InjectiveFlow
from l6kit.train import fit

F64 = torch.float64


def _layers():
    torch.manual_seed(0)
    shift = ConformalScaleShift(3, log_scale=-0.4)
    torch.nn.init.normal_(shift.shift)
    return {"pad": (ZeroPad(2, 3), 2), "scale-shift": (shift, 3), "orthogonal": (OrthogonalLinear(3), 3),
            "sct": (SpecialConformal(3, init_scale=0.5), 3)}


def _random_embedding(n_blocks=2):
    torch.manual_seed(1)
    emb = conformal_embedding(2, 3, n_blocks=n_blocks, sct_init=0.4)
    for layer in emb.layers:
        if isinstance(layer, ConformalScaleShift):
            torch.nn.init.normal_(layer.shift)
            layer.log_scale.data.fill_(0.3)
    return emb.double()


def _assert_conformal(f, log_lambda, z, d):
    """JᵀJ = λ² I_d at every row of z (float64, autograd Jacobian), to 1e-10 relative."""
    for zi, ll in zip(z, log_lambda, strict=True):
        J = jacobian(f, zi)                                     # (D, d)
        lam2 = torch.exp(2 * ll)
        assert torch.allclose(J.T @ J / lam2, torch.eye(d, dtype=F64), atol=1e-10)


@pytest.mark.parametrize("name", ["pad", "scale-shift", "orthogonal", "sct"])
def test_each_layer_is_conformal_with_the_stated_factor(name):
    layer, n_in = _layers()[name]
    layer = layer.double()
    z = torch.randn(20, n_in, dtype=F64, generator=torch.Generator().manual_seed(2))
    y, log_lambda = layer(z)
    assert y.shape == (20, 3) and log_lambda.shape == (20,)
    _assert_conformal(lambda v: layer(v[None])[0][0], log_lambda.detach(), z, n_in)


@pytest.mark.parametrize("name", ["pad", "scale-shift", "orthogonal", "sct"])
def test_each_layer_inverts(name):
    layer, n_in = _layers()[name]
    layer = layer.double()
    z = torch.randn(50, n_in, dtype=F64, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(layer.inverse(layer(z)[0]), z, atol=1e-12)


def test_composition_half_logdet_matches_autograd_in_float64():
    emb = _random_embedding()
    z = torch.randn(30, 2, dtype=F64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        half = emb.half_logdet_jtj(z)
        x = emb(z)
    assert x.shape == (30, 3) and half.shape == (30,)
    _assert_conformal(lambda v: emb(v[None])[0], (half / 2).detach(), z, 2)
    for zi, h in zip(z, half, strict=True):
        J = jacobian(lambda v: emb(v[None])[0], zi)
        assert abs(0.5 * torch.logdet(J.T @ J) - h) < 1e-10
    assert torch.allclose(emb.inverse(x), z, atol=1e-10)       # left inverse on the manifold


def test_inverse_projects_points_off_a_plane_embedding():
    emb = ConformalEmbedding([ZeroPad(2, 3), ConformalScaleShift(3, log_scale=0.5)], 2, 3)
    x = torch.tensor([[1.0, 2.0, 5.0]])
    assert torch.allclose(emb.inverse(x), torch.tensor([[1.0, 2.0]]) * torch.exp(torch.tensor(-0.5)))


def test_sct_inverse_is_sct_with_minus_b_and_maps_a_plane_to_a_sphere():
    b = torch.tensor([0.3, -0.2, 0.5], dtype=F64)
    x = torch.randn(100, 3, dtype=F64)
    y, _ = special_conformal(x, b)
    assert torch.allclose(special_conformal(y, -b)[0], x, atol=1e-10)
    plane = torch.cat([torch.randn(200, 2, dtype=F64) * 3, torch.full((200, 1), 1.0, dtype=F64)], 1)
    s = special_conformal(plane, b)[0]
    # the image lies on one sphere: fit centre and radius by least squares, residuals ~ 0
    A = torch.cat([2 * s, torch.ones(200, 1, dtype=F64)], 1)
    sol = torch.linalg.lstsq(A, (s ** 2).sum(1, keepdim=True)).solution
    centre, c = sol[:3, 0], sol[3, 0]
    assert torch.allclose(((s - centre) ** 2).sum(1), c + (centre ** 2).sum(), atol=1e-9)


def test_point_at_infinity_is_the_limit_of_large_latents():
    emb = _random_embedding(n_blocks=1)
    p = emb.point_at_infinity()
    far = emb(torch.tensor([[1e7, -3e7]], dtype=F64))[0]
    assert p.shape == (3,) and torch.allclose(far, p, atol=1e-5)
    assert conformal_embedding(2, 3).point_at_infinity() is None     # b = 0: a plane, nothing is missed


def test_zero_pad_validates_dimensions():
    with pytest.raises(ValueError, match="0 < d <= D"):
        ZeroPad(4, 3)


def test_a_conformal_embedding_flow_trains_through_the_injective_head():
    torch.manual_seed(0)
    y = torch.randn(400, 3) + torch.tensor([-1.0, -1.0, 0.0])
    X = y / y.norm(dim=1, keepdim=True)
    model = InjectiveFlow(conformal_embedding(2, 3), spline_flow(2, n_layers=1, bins=4, hidden=(8,)), d=2, D=3,
                          logdet="analytic", alpha=10.0, beta=1e4)
    with torch.no_grad():
        before = float(model.loss(X))
    history = fit(model, TensorBatches(X, batch_size=100), epochs=3, lr=5e-3, device="cpu", seed=0,
                  grad_clip=10.0, amp=False, progress=False)
    assert history.losses[-1] < before
    assert model.log_prob(X).shape == (400,) and model.sample(7).shape == (7, 3)


def test_analytic_half_logdet_agrees_with_the_heads_exact_method():
    emb = _random_embedding()
    prior = spline_flow(2, n_layers=1, bins=4, hidden=(8,)).double()
    z = torch.randn(16, 2, dtype=F64)
    analytic = InjectiveFlow(emb, prior, 2, 3, logdet="analytic").half_logdet_jtj(z)
    exact = InjectiveFlow(emb, prior, 2, 3, logdet="exact").half_logdet_jtj(z)
    assert torch.allclose(analytic, exact, atol=1e-9)
