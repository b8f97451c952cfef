"""Flow toolkit: every layer is invertible, its log-determinant equals a brute-force autograd Jacobian, and a
composed Flow is a normalized density that training improves."""

import math

import pytest
import torch

from l6kit.generative import (
    ActNorm,
    AffineCoupling,
    ElementwiseSpline,
    Flow,
    Permutation,
    SplineCoupling,
    TensorBatches,
    realnvp,
    spline_flow,
)
from l6kit.train import fit


def _randomize(module, scale=0.5, seed=0):
    """Move parameters away from the identity initialization."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def _layers(dim):
    mask = torch.arange(dim) % 2 == 0
    return {"affine coupling": AffineCoupling(dim, mask, hidden=(8,)),
            "spline coupling": SplineCoupling(dim, mask, bins=5, hidden=(8,), bound=2.0),
            "elementwise spline": ElementwiseSpline(dim, bins=5, bound=2.0),
            "actnorm": ActNorm(dim), "permutation": Permutation([2, 0, 1])}


def _brute_force_logdet(fn, x):
    """log|det J| per row from the full autograd Jacobian of one row at a time."""
    out = []
    for row in x:
        jac = torch.autograd.functional.jacobian(lambda v: fn(v.unsqueeze(0))[0].squeeze(0), row)
        out.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)


@pytest.mark.parametrize("name", list(_layers(3)))
def test_layer_is_invertible_with_exact_logdet(name):
    torch.manual_seed(0)
    layer = _randomize(_layers(3)[name]).double()
    z = 1.5 * torch.randn(6, 3, dtype=torch.float64)
    x, logdet = layer.forward(z)
    z_back, inv_logdet = layer.inverse(x)
    torch.testing.assert_close(z_back, z, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(inv_logdet, -logdet, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(logdet, _brute_force_logdet(layer.forward, z), atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(inv_logdet, _brute_force_logdet(layer.inverse, x), atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("make", [lambda: realnvp(2, n_layers=4, hidden=(8,)),
                                  lambda: spline_flow(2, n_layers=2, bins=6, hidden=(8,))])
def test_composed_flow_logdet_and_normalization(make):
    torch.manual_seed(0)
    flow = _randomize(make(), scale=0.3).double()
    z = torch.randn(5, 2, dtype=torch.float64)
    x, logdet = flow(z)
    torch.testing.assert_close(flow.inverse(x)[0], z, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(logdet, _brute_force_logdet(flow.forward, z), atol=1e-7, rtol=1e-7)
    grid = torch.linspace(-6, 6, 481, dtype=torch.float64)             # the density's mass in a box ...
    step = grid[1] - grid[0]
    mass = torch.exp(flow.log_prob(torch.cartesian_prod(grid, grid))).sum() * step ** 2
    samples = flow.sample(40_000, generator=torch.Generator().manual_seed(1))
    inside = (samples.abs() <= 6 + step / 2).all(-1).double().mean()      # ... is the sampler's share there
    assert mass.item() == pytest.approx(inside.item(), abs=0.02)


def test_one_dimensional_spline_flow_integrates_to_one_and_starts_as_standard_normal():
    flow = spline_flow(1, n_layers=1, bins=8)
    x = torch.linspace(-4, 4, 9).unsqueeze(-1)
    torch.testing.assert_close(flow.log_prob(x), -0.5 * x.squeeze(-1) ** 2 - 0.5 * math.log(2 * math.pi))
    _randomize(flow, scale=0.5)
    grid = torch.linspace(-30, 30, 60001, dtype=torch.float64).unsqueeze(-1)
    mass = torch.trapezoid(torch.exp(flow.double().log_prob(grid)), grid.squeeze(-1))
    assert mass.item() == pytest.approx(1.0, abs=1e-3)


def test_sample_shapes_and_torch_func_compatibility():
    flow = _randomize(realnvp(3, n_layers=2, hidden=(8,)), scale=0.3)
    assert flow.sample(7).shape == (7, 3)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: flow(v.unsqueeze(0))[0].squeeze(0)))(torch.randn(4, 3))
    assert jac.shape == (4, 3, 3)                   # injective-flow heads need vmap/jacrev through the layers


def test_training_lowers_the_negative_log_likelihood():
    torch.manual_seed(0)
    data = torch.randn(512, 2) * torch.tensor([2.0, 0.3]) + torch.tensor([1.0, -1.0])
    flow = realnvp(2, n_layers=4, hidden=(16,))
    history = fit(flow, TensorBatches(data, batch_size=64), epochs=15, lr=1e-2, device="cpu", progress=False)
    assert history.losses[-1] < history.losses[0] - 0.5


def test_validation():
    with pytest.raises(ValueError, match="dim >= 2"):
        realnvp(1)
    with pytest.raises(ValueError, match="mask"):
        AffineCoupling(2, torch.tensor([True, True]))
    with pytest.raises(ValueError, match="activation"):
        Flow([AffineCoupling(2, torch.tensor([True, False]), activation="nope")], 2)
