"""Rational-quadratic splines: monotone, identity outside the interval, exact inverse and derivative."""

import pytest
import torch

from l6kit.generative import rational_quadratic_spline


def _params(shape, bins, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, k, generator=g, dtype=torch.float64) for k in (bins, bins, bins - 1)]


def test_forward_inverse_and_derivative():
    x = torch.linspace(-3.5, 3.5, 201, dtype=torch.float64)            # includes both tails
    w, h, d = _params(x.shape, bins=7)
    y, logdet = rational_quadratic_spline(x, w, h, d, bound=3.0)
    x_back, inv_logdet = rational_quadratic_spline(y, w, h, d, inverse=True, bound=3.0)
    torch.testing.assert_close(x_back, x, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(inv_logdet, -logdet, atol=1e-9, rtol=1e-9)
    xr = x.clone().requires_grad_(True)
    yr, _ = rational_quadratic_spline(xr, w, h, d, bound=3.0)
    (grad,) = torch.autograd.grad(yr.sum(), xr)                      # elementwise map: the diagonal Jacobian
    torch.testing.assert_close(logdet, torch.log(grad), atol=1e-9, rtol=1e-9)


def test_monotone_maps_interval_onto_itself_and_identity_tails():
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    w, h, d = (p.expand(len(x), -1) for p in _params((1,), bins=5, seed=1))   # one spline for every x
    y, logdet = rational_quadratic_spline(x, w, h, d, bound=2.0)
    assert torch.all(torch.diff(y) > 0)
    outside = x.abs() >= 2.0
    torch.testing.assert_close(y[outside], x[outside])
    assert torch.all(logdet[outside] == 0)
    ends = rational_quadratic_spline(torch.tensor([-2.0, 2.0], dtype=torch.float64), *[p[:2] for p in (w, h, d)],
                                     bound=2.0)[0]
    torch.testing.assert_close(ends, torch.tensor([-2.0, 2.0], dtype=torch.float64))


def test_uniform_bins_with_unit_derivatives_are_the_identity():
    x = torch.linspace(-2.9, 2.9, 50)
    zeros = torch.zeros(50, 6)
    d = torch.full((50, 5), torch.log(torch.expm1(torch.tensor(1 - 1e-3))).item())
    y, logdet = rational_quadratic_spline(x, zeros, zeros, d, bound=3.0)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-5)
    assert logdet.abs().max() < 1e-5


@pytest.mark.parametrize("inverse", [False, True])
def test_batched_parameter_shapes(inverse):
    x = torch.randn(4, 3)
    w, h, d = (p.float() for p in _params((4, 3), bins=4))
    y, logdet = rational_quadratic_spline(x, w, h, d, inverse=inverse)
    assert y.shape == logdet.shape == (4, 3)
