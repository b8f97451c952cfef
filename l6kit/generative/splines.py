"""Monotone rational-quadratic splines: flexible invertible maps of each coordinate, with exact log-derivatives.

A spline with K bins maps [-B, B] onto itself; outside it is the identity ("linear tails"), so it is invertible
on all of R. Used unconditionally per coordinate (:class:`ElementwiseSpline`, a flow for 1-D data such as the
codes of a 1-D autoencoder) or inside a coupling layer (:class:`SplineCoupling`, a neural spline flow).
Same direction convention as :mod:`l6kit.generative.flows`: ``forward(z) -> (x, log|dx/dz|)``.

References:
    Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", NeurIPS 2019 (the transform and its inverse).
    Gregory & Delbourgo, "Piecewise rational quadratic interpolation to monotonic data", IMA J. Num. Anal. 1982.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from l6kit.generative.flows import ActNorm, Flow, register_mask
from l6kit.generative.layers import mlp

MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3
_IDENTITY_DERIVATIVE = math.log(math.expm1(1 - MIN_DERIVATIVE))   # softplus(.) + MIN_DERIVATIVE = 1


def _knots(unnormalized: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin sizes (``(..., K)``) and knot positions (``(..., K+1)``) on [-bound, bound] from free parameters."""
    K = unnormalized.shape[-1]
    sizes = MIN_BIN + (1 - MIN_BIN * K) * torch.softmax(unnormalized, dim=-1)
    knots = F.pad(torch.cumsum(sizes, dim=-1), (1, 0))             # (..., K+1), 0 .. 1
    knots = 2 * bound * knots - bound
    return knots[..., 1:] - knots[..., :-1], knots


def _pick(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(values, -1, idx.unsqueeze(-1)).squeeze(-1)


def rational_quadratic_spline(inputs: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor,
                              derivatives: torch.Tensor, *, inverse: bool = False, bound: float = 3.0
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a monotone rational-quadratic spline (or its inverse) elementwise.

    Args:
        inputs: shape ``(...)``.
        widths, heights: unnormalized bin widths/heights, shape ``(..., K)`` (softmax-normalized here).
        derivatives: unnormalized derivatives at the K-1 interior knots, shape ``(..., K-1)``; the boundary
            derivatives are 1 so the spline joins the identity tails smoothly.
        inverse: apply the inverse map.
        bound: the spline acts on [-bound, bound]; identity outside.

    Returns:
        ``(outputs, logabsdet)``, both shaped like ``inputs``; ``logabsdet`` is ``log|d out / d in|``.

    References:
        Durkan et al., NeurIPS 2019 (forward map, derivative, and the inverse via the quadratic formula).
    """
    inside = (inputs > -bound) & (inputs < bound)
    x = inputs.clamp(-bound, bound)
    w, xk = _knots(widths, bound)                                       # (..., K), (..., K+1)
    h, yk = _knots(heights, bound)
    d = F.pad(MIN_DERIVATIVE + F.softplus(derivatives), (1, 1), value=1.0)   # (..., K+1)
    knots = yk if inverse else xk
    idx = ((x.unsqueeze(-1) >= knots[..., 1:-1]).sum(-1)).clamp(0, w.shape[-1] - 1)   # bin of each input
    x0, y0, wk, hk = _pick(xk, idx), _pick(yk, idx), _pick(w, idx), _pick(h, idx)
    d0, d1 = _pick(d, idx), _pick(d[..., 1:], idx)
    s = hk / wk                                                         # bin slope
    if inverse:
        dy = x - y0
        a = hk * (s - d0) + dy * (d0 + d1 - 2 * s)
        b = hk * d0 - dy * (d0 + d1 - 2 * s)
        c = -s * dy
        theta = (2 * c) / (-b - torch.sqrt((b ** 2 - 4 * a * c).clamp_min(0)))
        out = theta * wk + x0
    else:
        theta = (x - x0) / wk
        tt = theta * (1 - theta)
        out = y0 + hk * (s * theta ** 2 + d0 * tt) / (s + (d0 + d1 - 2 * s) * tt)
    tt = theta * (1 - theta)
    denom = s + (d0 + d1 - 2 * s) * tt
    logdet = 2 * torch.log(s) + torch.log(d1 * theta ** 2 + 2 * s * tt + d0 * (1 - theta) ** 2) \
        - 2 * torch.log(denom)
    if inverse:
        logdet = -logdet
    return torch.where(inside, out, inputs), torch.where(inside, logdet, torch.zeros_like(logdet))


class ElementwiseSpline(nn.Module):
    """An unconditional rational-quadratic spline on every coordinate (its own free parameters per coordinate).

    Starts as the identity. For 1-D data it is a complete flexible flow; for more dimensions it only reshapes
    the marginals (combine with couplings).

    Shapes:
        forward/inverse: ``(n, dim) -> ((n, dim), (n,))``.

    References:
        Durkan et al., NeurIPS 2019.
    """

    def __init__(self, dim: int, bins: int = 16, bound: float = 3.0):
        super().__init__()
        self.bound = bound
        self.widths = nn.Parameter(torch.zeros(dim, bins))
        self.heights = nn.Parameter(torch.zeros(dim, bins))
        self.derivatives = nn.Parameter(torch.full((dim, bins - 1), _IDENTITY_DERIVATIVE))

    def _transform(self, v: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (*v.shape, self.widths.shape[-1])
        out, ld = rational_quadratic_spline(v, self.widths.expand(shape), self.heights.expand(shape),
                                            self.derivatives.expand(*v.shape, -1), inverse=inverse,
                                            bound=self.bound)
        return out, ld.sum(-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._transform(z, inverse=False)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._transform(x, inverse=True)


class SplineCoupling(nn.Module):
    """A coupling layer whose transform is a rational-quadratic spline conditioned on the masked coordinates.

    Args:
        dim: data dimension (>= 2).
        mask: boolean, shape ``(dim,)``; True marks the conditioning coordinates.
        bins: spline bins K; hidden: conditioner MLP widths; bound: spline interval [-bound, bound].

    Shapes:
        forward/inverse: ``(n, dim) -> ((n, dim), (n,))``.

    References:
        Durkan et al., NeurIPS 2019 (coupling neural spline flows).
    """

    def __init__(self, dim: int, mask: torch.Tensor, bins: int = 8, hidden: Sequence[int] = (64, 64),
                 activation: str = "elu", bound: float = 3.0):
        super().__init__()
        register_mask(self, dim, mask)
        self.bins, self.bound = bins, bound
        self.net = mlp([len(self.keep), *hidden, len(self.move) * (3 * bins - 1)], activation)
        nn.init.zeros_(self.net[-1].weight)
        with torch.no_grad():
            bias = torch.zeros(len(self.move), 3 * bins - 1)
            bias[:, 2 * bins:] = _IDENTITY_DERIVATIVE                 # start at the identity map
            self.net[-1].bias.copy_(bias.flatten())

    def _transform(self, v: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        kept = v[..., self.keep]
        params = self.net(kept).unflatten(-1, (len(self.move), 3 * self.bins - 1))
        w, h, d = params[..., :self.bins], params[..., self.bins:2 * self.bins], params[..., 2 * self.bins:]
        moved, ld = rational_quadratic_spline(v[..., self.move], w, h, d, inverse=inverse, bound=self.bound)
        return torch.cat([kept, moved], dim=-1)[..., self.order], ld.sum(-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._transform(z, inverse=False)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._transform(x, inverse=True)


def spline_flow(dim: int, n_layers: int = 2, bins: int = 16, hidden: Sequence[int] = (64, 64),
                bound: float = 3.0, activation: str = "elu") -> Flow:
    """A neural spline flow on R^dim: per layer an :class:`ActNorm`, then an :class:`ElementwiseSpline`
    (``dim == 1``) or a :class:`SplineCoupling` with alternating masks (``dim >= 2``).

    Returns:
        A :class:`~l6kit.generative.flows.Flow` with a standard normal base; expects roughly standardized data
        (the splines act on [-bound, bound]).

    References:
        Durkan et al., NeurIPS 2019.
    """
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers.append(ActNorm(dim))
        if dim == 1:
            layers.append(ElementwiseSpline(1, bins, bound))
        else:
            layers.append(SplineCoupling(dim, (torch.arange(dim) % 2) == (i % 2), bins, hidden, activation,
                                         bound))
    return Flow(layers, dim)
