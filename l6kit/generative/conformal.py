"""Conformal building blocks and conformal embeddings: injective maps whose Jacobian satisfies JᵀJ = λ(z)² I.

A map g: R^d -> R^D is *conformal* when it preserves angles, i.e. its Jacobian is a scaled isometry,
``J_g(z)ᵀ J_g(z) = λ(z)² I_d``. Then ``½ log det(JᵀJ) = d log λ(z)`` — the term an injective flow needs for its
density on the learned manifold — is exact and costs nothing beyond the forward pass. Conformal factors
multiply under composition, so a chain of conformal layers has ``log λ = Σ_k log λ_k`` evaluated along the
chain.

Every layer here maps R^n -> R^n (except :class:`ZeroPad`, R^d -> R^D) with

* ``forward(x) -> (y, log_lambda)``: the layer's output and its log conformal factor per sample, shape ``(n,)``
  (the *sampling* direction, latent -> data, as in :mod:`l6kit.generative.flows`);
* ``inverse(y) -> x``: the inverse map (for :class:`ZeroPad` the left inverse, "keep the first d coordinates",
  which projects points off the padded plane onto it).

Layers: :class:`ConformalScaleShift` (x ↦ a x + b, λ = a), :class:`OrthogonalLinear` (x ↦ Q x, λ = 1),
:class:`ZeroPad` (x ↦ (x, 0), λ = 1), :class:`SpecialConformal` (x ↦ (x − b‖x‖²)/(1 − 2 b·x + ‖b‖²‖x‖²),
λ = 1/(1 − 2 b·x + ‖b‖²‖x‖²)), composed by :class:`ConformalEmbedding`. By Liouville's theorem these (with
inversions) are all the conformal maps of R^n for n ≥ 3, so the expressiveness of a conformal embedding flow
comes from the low-dimensional flow on its latent space and from the change of dimension.

References:
    Ross, Cresswell, "Tractable Density Estimation on Learned Manifolds with Conformal Embedding Flows",
    NeurIPS 2021 (Section 3: conformal embeddings; Section 4: the building blocks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrizations


class ConformalScaleShift(nn.Module):
    """``y = exp(log_scale) · x + shift`` with one scalar scale: conformal with ``λ = exp(log_scale)``.

    Shapes:
        forward: ``(n, dim) -> ((n, dim), (n,))``; inverse: ``(n, dim) -> (n, dim)``.

    References:
        Ross & Cresswell, NeurIPS 2021, Section 4 (conformal scale and shift).
    """

    def __init__(self, dim: int, log_scale: float = 0.0):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(log_scale)))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * torch.exp(self.log_scale) + self.shift, self.log_scale.expand(x.shape[:-1])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.shift) * torch.exp(-self.log_scale)


class OrthogonalLinear(nn.Module):
    """``y = Q x`` with Q orthogonal (``torch.nn.utils.parametrizations.orthogonal``): an isometry, ``λ = 1``.

    Shapes:
        forward: ``(n, dim) -> ((n, dim), (n,))``; inverse: ``(n, dim) -> (n, dim)``.

    References:
        Ross & Cresswell, NeurIPS 2021, Section 4 (orthogonal transformations).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.linear = parametrizations.orthogonal(nn.Linear(dim, dim, bias=False), use_trivialization=False)

    @property
    def matrix(self) -> torch.Tensor:
        """The current orthogonal matrix Q, shape ``(dim, dim)``."""
        return self.linear.weight

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x @ self.matrix.T, x.new_zeros(x.shape[:-1])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.matrix                                   # Q⁻¹ = Qᵀ, so x = Qᵀ y, row-wise y Q


class ZeroPad(nn.Module):
    """``R^d -> R^D``: ``x ↦ (x, 0)``; an isometric embedding (``JᵀJ = I_d``, ``λ = 1``).

    The inverse keeps the first d coordinates: exact on the padded plane, an orthogonal projection off it.

    Shapes:
        forward: ``(n, d) -> ((n, D), (n,))``; inverse: ``(n, D) -> (n, d)``.

    References:
        Ross & Cresswell, NeurIPS 2021, Section 4 (zero padding).
    """

    def __init__(self, d: int, D: int):
        super().__init__()
        if not 0 < d <= D:
            raise ValueError(f"need 0 < d <= D, got d={d}, D={D}")
        self.d, self.D = d, D

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = x.new_zeros(*x.shape[:-1], self.D - self.d)
        return torch.cat([x, pad], dim=-1), x.new_zeros(x.shape[:-1])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y[..., :self.d]


def special_conformal(x: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The special conformal transform (SCT) with parameter ``b`` and its log conformal factor.

    ``y = (x − b‖x‖²) / σ(x)``, ``σ(x) = 1 − 2 b·x + ‖b‖²‖x‖²``, ``λ(x) = 1/σ(x)``. The SCT is an inversion,
    a translation by −b and another inversion, so its inverse is the SCT with −b; it is undefined at the pole
    ``x = b/‖b‖²`` (where σ = 0) and maps planes and spheres to planes and spheres.

    Shapes:
        ``x (n, dim), b (dim,) -> ((n, dim), (n,))``.

    References:
        Ross & Cresswell, NeurIPS 2021, Section 4 (special conformal transformations).
    """
    sq = (x ** 2).sum(-1)                                        # (n,)
    sigma = 1 - 2 * (x @ b) + (b ** 2).sum() * sq                # (n,)
    return (x - b * sq.unsqueeze(-1)) / sigma.unsqueeze(-1), -torch.log(sigma)


class SpecialConformal(nn.Module):
    """A trainable special conformal transform (see :func:`special_conformal`); starts at the identity (b = 0).

    Shapes:
        forward: ``(n, dim) -> ((n, dim), (n,))``; inverse: ``(n, dim) -> (n, dim)``.

    References:
        Ross & Cresswell, NeurIPS 2021, Section 4.
    """

    def __init__(self, dim: int, init_scale: float = 0.0):
        super().__init__()
        self.b = nn.Parameter(init_scale * torch.randn(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return special_conformal(x, self.b)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return special_conformal(y, -self.b)[0]


class ConformalEmbedding(nn.Module):
    """A composition of conformal layers ``g = g_K ∘ ... ∘ g_1 : R^d -> R^D`` with exact ``½ log det JᵀJ``.

    Implements the embedding contract of :class:`l6kit.generative.injective.InjectiveFlow` with
    ``logdet="analytic"``: ``forward(z)``, ``inverse(x)``, ``half_logdet_jtj(z)``.

    Args:
        layers: conformal layers in the sampling order (latent -> data); one of them changes the dimension
            (:class:`ZeroPad`).
        d, D: latent and ambient dimensions.

    Shapes:
        forward: ``(n, d) -> (n, D)``; inverse: ``(n, D) -> (n, d)``; log_conformal_factor,
        half_logdet_jtj: ``(n, d) -> (n,)``.

    References:
        Ross & Cresswell, NeurIPS 2021, Section 3: ``log p(x) = log p_Z(z) − d log λ(z)``, ``z = g†(x)``.
    """

    def __init__(self, layers: Sequence[nn.Module], d: int, D: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.d, self.D = d, D

    def forward_with_factor(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(g(z), log λ(z))``: the embedding and its log conformal factor (the sum over the layers)."""
        log_lambda = z.new_zeros(z.shape[:-1])
        for layer in self.layers:
            z, ll = layer(z)
            log_lambda = log_lambda + ll
        return z, log_lambda

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.forward_with_factor(z)[0]

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """The left inverse g†: exact on the learned manifold, a projection (through the unpadding) off it."""
        for layer in reversed(self.layers):
            x = layer.inverse(x)
        return x

    def log_conformal_factor(self, z: torch.Tensor) -> torch.Tensor:
        """``log λ(z)``, where ``J_g(z)ᵀ J_g(z) = λ(z)² I_d``."""
        return self.forward_with_factor(z)[1]

    def half_logdet_jtj(self, z: torch.Tensor) -> torch.Tensor:
        """``½ log det(J_gᵀ J_g) = d log λ(z)``, exact."""
        return self.d * self.log_conformal_factor(z)

    @torch.no_grad()
    def point_at_infinity(self) -> torch.Tensor | None:
        """Where the latent space's point at infinity lands: the one point of a learned sphere that the
        embedding never reaches (``None`` if it stays at infinity, e.g. when every SCT has ``b = 0``).

        Shapes:
            ``-> (D,)`` or None.
        """
        p = None                                                  # None stands for the point at infinity
        for layer in self.layers:
            if isinstance(layer, SpecialConformal) and p is None:
                sq = (layer.b ** 2).sum()
                p = -layer.b / sq if sq > 0 else None             # SCT_b(∞) = −b/‖b‖²
            elif p is not None:
                p = layer(p[None])[0][0]
        return p


def conformal_embedding(d: int, D: int, n_blocks: int = 1, sct_init: float = 0.0) -> ConformalEmbedding:
    """A dense conformal embedding R^d -> R^D: zero-pad, then ``n_blocks`` blocks of (scale+shift, orthogonal,
    special conformal transform), then a final scale+shift.

    With one block, d = 2 and D = 3 it can represent any sphere or plane in R^3 (an SCT maps planes to
    spheres); the latent plane's point at infinity lands on one point of the sphere.

    Args:
        sct_init: standard deviation of the SCTs' initial ``b`` (0: every SCT starts as the identity, so the
            initial embedding is a plane).

    Returns:
        A :class:`ConformalEmbedding`.

    References:
        Ross & Cresswell, NeurIPS 2021, Section 4; the official repository's sphere example.
    """
    layers: list[nn.Module] = [ZeroPad(d, D)]
    for _ in range(n_blocks):
        layers += [ConformalScaleShift(D), OrthogonalLinear(D), SpecialConformal(D, sct_init)]
    layers.append(ConformalScaleShift(D))
    return ConformalEmbedding(layers, d, D)
