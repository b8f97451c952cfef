"""Autoencoders with MLP encoders and decoders: a deterministic :class:`Autoencoder` and a :class:`VAE` whose
Gaussian decoder learns its own variance.

Both are *generalized autoencoders* in the sense of the two-step paper: they expose ``encode(x) -> z`` (for the
VAE, the posterior mean) and ``decode(z) -> x`` (for the VAE, the decoder mean), so either can be the first step
of :class:`l6kit.generative.TwoStep`. Both expose ``loss(batch)`` for :func:`l6kit.train.fit`.

References:
    Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    Burda, Grosse, Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016 (the likelihood estimate).
    Loaiza-Ganem et al., "Diagnosing and Fixing Manifold Overfitting in Deep Generative Models", TMLR 2022.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from l6kit.generative.layers import batch_tensor, mlp

LOG_2PI = math.log(2 * math.pi)


def _gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag exp(log_scale)^2), summed over the last dimension. Shapes: ``(..., D) -> (...)``."""
    return (-0.5 * ((x - mean) * torch.exp(-log_scale)) ** 2 - log_scale - 0.5 * LOG_2PI).sum(-1)


class Autoencoder(nn.Module):
    """A deterministic autoencoder trained on squared reconstruction error.

    Args:
        data_dim: D. latent_dim: d. hidden: encoder widths (the decoder mirrors them). activation: see
            :func:`l6kit.generative.layers.mlp`.

    Shapes:
        encode: ``(n, D) -> (n, d)``; decode: ``(n, d) -> (n, D)``; loss: batch -> scalar.
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden: Sequence[int] = (20, 20), activation: str = "elu"):
        super().__init__()
        self.data_dim, self.latent_dim = data_dim, latent_dim
        self.encoder = mlp([data_dim, *hidden, latent_dim], activation)
        self.decoder = mlp([latent_dim, *reversed(hidden), data_dim], activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, batch) -> torch.Tensor:
        """Mean over the batch of the squared reconstruction error summed over coordinates."""
        x = batch_tensor(batch)
        return ((x - self.reconstruct(x)) ** 2).sum(-1).mean()


class VAE(nn.Module):
    """A variational autoencoder with a Gaussian decoder whose per-coordinate variance is learned.

    Encoder q(z|x) = N(mu(x), diag sigma(x)^2); prior N(0, I_d); decoder p(x|z) = N(m(z), diag s(z)^2), with
    ``log s(z)`` a second decoder head clamped below at ``min_log_scale``. As a model of x in R^D this is a
    full-dimensional density; on data on a manifold, maximum likelihood drives ``s`` towards 0 — the setting of
    manifold overfitting.

    Args:
        data_dim, latent_dim, hidden, activation: as for :class:`Autoencoder`.
        min_log_scale: lower clamp on the decoder's log standard deviation (numerical safety).

    Shapes:
        encode: ``(n, D) -> (n, d)`` (posterior mean); decode: ``(n, d) -> (n, D)`` (decoder mean);
        elbo / log_likelihood: ``(n, D) -> (n,)``; sample: ``n -> (n, D)``.

    References:
        Kingma & Welling, ICLR 2014 (the reparameterized ELBO); Loaiza-Ganem et al., TMLR 2022 (VAEs with learned
        decoder variance are full-dimensional models).
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden: Sequence[int] = (20, 20), activation: str = "elu",
                 min_log_scale: float = -10.0):
        super().__init__()
        self.data_dim, self.latent_dim, self.min_log_scale = data_dim, latent_dim, min_log_scale
        self.encoder = mlp([data_dim, *hidden, 2 * latent_dim], activation)
        self.decoder = mlp([latent_dim, *reversed(hidden), 2 * data_dim], activation)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log standard deviation of q(z|x), each ``(n, d)``."""
        mu, log_std = self.encoder(x).chunk(2, dim=-1)
        return mu, log_std

    def decoder_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and (clamped) log standard deviation of p(x|z), each ``(n, D)``."""
        mean, log_scale = self.decoder(z).chunk(2, dim=-1)
        return mean, log_scale.clamp_min(self.min_log_scale)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder_params(z)[0]

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """One-sample evidence lower bound E_q[log p(x|z)] - KL(q(z|x) || N(0, I)) per row (reparameterized)."""
        mu, log_std = self.posterior(x)
        z = mu + torch.exp(log_std) * torch.randn_like(mu)
        mean, log_scale = self.decoder_params(z)
        kl = 0.5 * (mu ** 2 + torch.exp(2 * log_std) - 1 - 2 * log_std).sum(-1)
        return _gaussian_log_prob(x, mean, log_scale) - kl

    def loss(self, batch) -> torch.Tensor:
        """Negative mean ELBO of the batch."""
        return -self.elbo(batch_tensor(batch)).mean()

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 64) -> torch.Tensor:
        """Importance-weighted estimate of log p(x) with ``k`` posterior samples (a lower bound that tightens
        as k grows). Shapes: ``(n, D) -> (n,)``."""
        mu, log_std = self.posterior(x)
        z = mu + torch.exp(log_std) * torch.randn(k, *mu.shape, device=mu.device)    # (k, n, d)
        mean, log_scale = self.decoder_params(z)
        log_w = (_gaussian_log_prob(x, mean, log_scale) + _gaussian_log_prob(z, 0 * z, 0 * z)
                 - _gaussian_log_prob(z, mu, log_std))                                 # (k, n)
        return torch.logsumexp(log_w, dim=0) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int, noise: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws x = m(z) + s(z) * eps with z ~ N(0, I); ``noise=False`` returns the decoder means m(z)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        mean, log_scale = self.decoder_params(z)
        if not noise:
            return mean
        eps = torch.randn(mean.shape, generator=generator).to(device)
        return mean + torch.exp(log_scale) * eps
