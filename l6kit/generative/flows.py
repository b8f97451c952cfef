"""Normalizing flows: invertible layers with exact log-determinants, and a composable :class:`Flow`.

Direction convention (the same for every layer and for :class:`Flow`):

* ``forward(z) -> (x, logdet)`` maps the base (latent) side to the data side and returns
  ``log |det dx/dz|`` per sample — the *sampling* direction;
* ``inverse(x) -> (z, logdet)`` maps data to the base side and returns ``log |det dz/dx|`` — the *density*
  direction, so ``log p(x) = log p_base(z) + logdet``.

Layers hold no data-dependent state and use no in-place operations, so ``torch.func`` transforms
(``jacrev``, ``jvp``, ``vmap``) work through them — the injective flows of later papers need that.
Splines (:mod:`l6kit.generative.splines`) follow the same convention.

References:
    Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017 (affine coupling).
    Kingma, Dhariwal, "Glow", NeurIPS 2018 (actnorm).
    Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference", JMLR 2021 (review).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from l6kit.generative.layers import batch_tensor, mlp


class StandardNormal(nn.Module):
    """The standard normal base density N(0, I_dim); a buffer keeps it on the flow's device.

    Shapes:
        log_prob: ``(n, dim) -> (n,)``; sample: ``n -> (n, dim)``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("_anchor", torch.zeros(()))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z ** 2).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(n, self.dim, generator=generator)
        return noise.to(self._anchor.device)


def register_mask(layer: nn.Module, dim: int, mask) -> None:
    """Store a coupling mask on ``layer`` as buffers: ``keep`` (indices passed through, which condition the
    transform), ``move`` (indices transformed) and ``order`` (``[kept, moved]`` -> original positions).

    Raises:
        ValueError: ``mask`` is not shape ``(dim,)`` with at least one True and one False.
    """
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if mask.shape != (dim,) or mask.all() or not mask.any():
        raise ValueError("mask must have shape (dim,) with at least one True and one False")
    keep, move = torch.nonzero(mask).squeeze(-1), torch.nonzero(~mask).squeeze(-1)
    layer.register_buffer("keep", keep)
    layer.register_buffer("move", move)
    layer.register_buffer("order", torch.argsort(torch.cat([keep, move])))


class AffineCoupling(nn.Module):
    """RealNVP affine coupling: the unmasked coordinates are scaled and shifted by functions of the masked ones.

    ``x_m = z_m``, ``x_u = z_u * exp(s(z_m)) + t(z_m)``, ``log|det dx/dz| = sum_u s(z_m)``. The log-scale is
    soft-clamped, ``s = c * tanh(raw / c)``, which keeps early training stable.

    Args:
        dim: data dimension (>= 2).
        mask: boolean, shape ``(dim,)``; True marks the coordinates that condition (pass through unchanged).
        hidden: widths of the MLP computing ``(s, t)``.
        scale_clamp: the bound ``c`` on ``|s|``.

    Shapes:
        forward/inverse: ``(n, dim) -> ((n, dim), (n,))``.

    References:
        Dinh et al., ICLR 2017 (affine coupling layers, masking).
    """

    def __init__(self, dim: int, mask: torch.Tensor, hidden: Sequence[int] = (64, 64),
                 activation: str = "elu", scale_clamp: float = 3.0):
        super().__init__()
        register_mask(self, dim, mask)
        self.scale_clamp = scale_clamp
        n_in, n_out = len(self.keep), len(self.move)
        self.net = mlp([n_in, *hidden, 2 * n_out], activation)
        last = self.net[-1]
        nn.init.zeros_(last.weight)                   # start at the identity map
        nn.init.zeros_(last.bias)

    def _scale_shift(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(cond).chunk(2, dim=-1)
        return self.scale_clamp * torch.tanh(raw_s / self.scale_clamp), t

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = z[..., self.keep]
        s, t = self._scale_shift(kept)
        moved = z[..., self.move] * torch.exp(s) + t
        return torch.cat([kept, moved], dim=-1)[..., self.order], s.sum(-1)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = x[..., self.keep]
        s, t = self._scale_shift(kept)
        moved = (x[..., self.move] - t) * torch.exp(-s)
        return torch.cat([kept, moved], dim=-1)[..., self.order], -s.sum(-1)


class Permutation(nn.Module):
    """A fixed permutation of the coordinates (volume-preserving: logdet 0).

    Shapes:
        forward/inverse: ``(n, dim) -> ((n, dim), (n,))``.
    """

    def __init__(self, perm: Sequence[int]):
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        self.register_buffer("perm", perm)
        self.register_buffer("inv", torch.argsort(perm))

    @classmethod
    def reverse(cls, dim: int) -> Permutation:
        """The permutation that reverses the coordinate order."""
        return cls(list(range(dim - 1, -1, -1)))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z[..., self.perm], z.new_zeros(z.shape[:-1])

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., self.inv], x.new_zeros(x.shape[:-1])


class ActNorm(nn.Module):
    """Per-coordinate affine map ``x = z * exp(log_scale) + shift`` (actnorm without data-dependent init).

    Shapes:
        forward/inverse: ``(n, dim) -> ((n, dim), (n,))``.

    References:
        Kingma & Dhariwal, NeurIPS 2018 (actnorm).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z * torch.exp(self.log_scale) + self.shift, self.log_scale.sum().expand(z.shape[:-1])

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x - self.shift) * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(x.shape[:-1])


class Flow(nn.Module):
    """A normalizing flow: ``x = f_K o ... o f_1 (z)`` with ``z`` from a base density.

    Args:
        layers: invertible layers in the sampling order (base -> data), each with ``forward``/``inverse``
            returning ``(output, logdet)``.
        dim: data dimension.
        base: a module with ``log_prob(z) -> (n,)`` and ``sample(n) -> (n, dim)``; default N(0, I).

    Shapes:
        forward: ``(n, dim) -> ((n, dim), (n,))``; inverse: same; log_prob: ``(n, dim) -> (n,)``;
        sample: ``n -> (n, dim)``; loss: batch of ``(n, dim)`` -> scalar (mean negative log-likelihood).

    References:
        Papamakarios et al., JMLR 2021 (the change-of-variables formula).
    """

    def __init__(self, layers: Sequence[nn.Module], dim: int, base: nn.Module | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dim = dim
        self.base = base if base is not None else StandardNormal(dim)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = z.new_zeros(z.shape[:-1])
        for layer in self.layers:
            z, ld = layer.forward(z)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(x.shape[:-1])
        for layer in reversed(self.layers):
            x, ld = layer.inverse(x)
            logdet = logdet + ld
        return x, logdet

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density of ``x`` (change of variables)."""
        z, logdet = self.inverse(x)
        return self.base.log_prob(z) + logdet

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples from the flow."""
        return self.forward(self.base.sample(n, generator=generator))[0]

    def loss(self, batch) -> torch.Tensor:
        """Mean negative log-likelihood of a batch (a tensor or a ``(x, ...)`` tuple), for ``l6kit.train.fit``."""
        return -self.log_prob(batch_tensor(batch)).mean()


def realnvp(dim: int, n_layers: int = 6, hidden: Sequence[int] = (64, 64), activation: str = "elu",
            actnorm: bool = True, scale_clamp: float = 3.0) -> Flow:
    """A RealNVP flow on R^dim: ``n_layers`` affine couplings with alternating checkerboard masks, each
    preceded by an :class:`ActNorm` (optional).

    Args:
        dim: data dimension (>= 2; for 1-D data use :func:`l6kit.generative.splines.spline_flow`).

    Returns:
        A :class:`Flow` with a standard normal base.

    References:
        Dinh et al., ICLR 2017.
    """
    if dim < 2:
        raise ValueError("coupling layers need dim >= 2; use splines.spline_flow for 1-D data")
    layers: list[nn.Module] = []
    for i in range(n_layers):
        mask = (torch.arange(dim) % 2) == (i % 2)
        if actnorm:
            layers.append(ActNorm(dim))
        layers.append(AffineCoupling(dim, mask, hidden, activation, scale_clamp))
    return Flow(layers, dim)
