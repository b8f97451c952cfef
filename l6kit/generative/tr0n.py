"""TR0N: a translator network that makes an unconditional generator conditional, plus Langevin refinement.

The pieces, in the order the method uses them:

1. :func:`synthetic_pairs` — draw latents z ~ N(0, I), decode x = G(z), label x with the auxiliary model f:
   pairs (c, z) with c = f(G(z)). No real data are used.
2. :class:`Translator` — a small MLP whose output is a K-component Gaussian mixture over z given c, trained by
   maximum likelihood on those pairs (``loss(batch)`` for :func:`l6kit.train.fit`): an amortised, stochastic
   inverse of f o G.
3. :func:`classifier_energy` and :func:`langevin` — at test time draw z^0 ~ t(z | c) and take T Langevin steps
   on an energy E(z, c) that is low when f(G(z)) agrees with c.

Also here: :class:`Classifier` (the auxiliary model and the independent evaluator at toy scale) and the metrics
:func:`class_accuracy`, :func:`per_class_accuracy`, :func:`within_class_diversity`.

References:
    Liu, Vouitsis, Gorti, Ba, Loaiza-Ganem, "TR0N: Translator Networks for 0-Shot Plug-and-Play Conditional
    Generation", ICML 2023 (section 3: the translator, eq. for the mixture likelihood; section 3.2: Langevin).
    Welling & Teh, "Bayesian Learning via Stochastic Gradient Langevin Dynamics", ICML 2011.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from l6kit.generative.layers import mlp


class Classifier(nn.Module):
    """An MLP classifier ``x -> logits`` with a cross-entropy ``loss((x, y))``.

    With ``hidden=()`` it is multinomial logistic regression.

    Args:
        data_dim: input size D. n_classes: C. hidden: hidden widths. activation: see :func:`mlp`.

    Shapes:
        forward: ``(n, D) -> (n, C)`` logits; predict: ``(n, D) -> (n,)``; loss: ``((b, D), (b,)) -> scalar``.
    """

    def __init__(self, data_dim: int, n_classes: int, hidden: Sequence[int] = (64,), activation: str = "relu"):
        super().__init__()
        self.n_classes = n_classes
        self.net = mlp([data_dim, *hidden, n_classes], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self(x).argmax(-1)


class Translator(nn.Module):
    """t(z | c): a Gaussian mixture over latents whose weights, means and diagonal scales an MLP computes from
    the condition c.

    .. math:: t(z \\mid c) = \\sum_{k=1}^K \\pi_k(c)\\, \\mathcal{N}\\big(z; \\mu_k(c), \\operatorname{diag}
              \\sigma_k(c)^2\\big)

    Args:
        cond_dim: size of c (C for a one-hot or probability vector, or an embedding size).
        latent_dim: d, the generator's latent size.
        n_components: K.
        hidden: MLP widths.
        min_log_scale: lower clamp on log sigma_k (numerical safety).

    Shapes:
        distribution: ``(n, cond_dim)`` -> a distribution with batch shape ``(n,)`` and event shape ``(d,)``;
        log_prob: ``((n, cond_dim), (n, d)) -> (n,)``; sample: ``(n, cond_dim) -> (n, d)``;
        loss: batch ``(c (b, cond_dim), z (b, d))`` -> scalar.

    References:
        TR0N, ICML 2023, section 3 (the translator is trained by maximum likelihood on (c, z) pairs).
    """

    def __init__(self, cond_dim: int, latent_dim: int, n_components: int = 10, hidden: Sequence[int] = (256, 256),
                 activation: str = "relu", min_log_scale: float = -7.0):
        super().__init__()
        self.cond_dim, self.latent_dim, self.n_components = cond_dim, latent_dim, n_components
        self.min_log_scale = min_log_scale
        self.net = mlp([cond_dim, *hidden, n_components * (1 + 2 * latent_dim)], activation)

    def parameters_of(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture logits ``(n, K)``, means ``(n, K, d)`` and log scales ``(n, K, d)`` for conditions ``c``."""
        n, K, d = c.shape[0], self.n_components, self.latent_dim
        out = self.net(c)
        logits = out[:, :K]
        means, log_scales = out[:, K:].reshape(n, K, 2, d).unbind(2)     # (n, K, d) each
        return logits, means, log_scales.clamp_min(self.min_log_scale)

    def distribution(self, c: torch.Tensor) -> D.MixtureSameFamily:
        logits, means, log_scales = self.parameters_of(c)
        components = D.Independent(D.Normal(means, torch.exp(log_scales)), 1)
        return D.MixtureSameFamily(D.Categorical(logits=logits), components)

    def log_prob(self, c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.distribution(c).log_prob(z)

    def loss(self, batch) -> torch.Tensor:
        """Negative mean log-likelihood of the latents given their conditions."""
        c, z = batch
        return -self.log_prob(c, z).mean()

    @torch.no_grad()
    def sample(self, c: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One latent per condition row (with an optional generator for reproducible draws)."""
        logits, means, log_scales = self.parameters_of(c)
        k = torch.multinomial(torch.softmax(logits, -1).cpu(), 1, generator=generator).to(c.device)  # (n, 1)
        idx = k[:, :, None].expand(-1, 1, self.latent_dim)
        mean = means.gather(1, idx)[:, 0]                                  # (n, d)
        scale = torch.exp(log_scales.gather(1, idx)[:, 0])
        eps = torch.randn(mean.shape, generator=generator).to(c.device)
        return mean + scale * eps


@torch.no_grad()
def synthetic_pairs(decode: Callable[[torch.Tensor], torch.Tensor], auxiliary: nn.Module, n: int, latent_dim: int,
                    *, soft: bool = True, batch_size: int = 4096, generator: torch.Generator | None = None,
                    device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The translator's training set: z ~ N(0, I), c = f(G(z)) — samples of the generator labelled by the
    auxiliary classifier. No real data are involved.

    Args:
        decode: the generator G, ``(b, d) -> (b, D)``.
        auxiliary: the classifier f, ``(b, D) -> (b, C)`` logits.
        n: number of pairs. latent_dim: d.
        soft: c is f's softmax probability vector (True) or the one-hot of its argmax (False).

    Returns:
        ``(c (n, C), z (n, d))`` on ``device``.

    References:
        TR0N, ICML 2023, section 3 ("the translator is trained on synthetic pairs (f(G(z)), z)").
    """
    cs, zs = [], []
    for start in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - start), latent_dim, generator=generator).to(device)
        logits = auxiliary(decode(z))
        c = torch.softmax(logits, -1) if soft else F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
        cs.append(c)
        zs.append(z)
    return torch.cat(cs), torch.cat(zs)


def classifier_energy(decode: Callable[[torch.Tensor], torch.Tensor], classifier: nn.Module,
                      prior_weight: float = 1.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """E(z, c) = CE(f(G(z)), c) + prior_weight * ||z||^2 / 2: low when the auxiliary classifier puts the
    requested class (or distribution) c on G(z), with a Gaussian prior term that keeps z in the region the
    generator was trained on.

    Returns:
        A function ``(z (n, d), c (n, C)) -> (n,)`` energies (differentiable in z).

    References:
        TR0N, ICML 2023, section 3.2 (the energy for classifier conditioning; cosine for CLIP).
    """
    def energy(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(classifier(decode(z)), -1)
        return -(c * log_p).sum(-1) + prior_weight * 0.5 * (z ** 2).sum(-1)
    return energy


def langevin(energy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z0: torch.Tensor, c: torch.Tensor, *,
             steps: int, step_size: float, noise_std: float, generator: torch.Generator | None = None,
             record: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Langevin dynamics z <- z - step_size * grad_z E(z, c) + noise_std * eps, started at ``z0``.

    With step_size = beta * lambda / 2 and noise_std = sqrt(lambda) this is the paper's update; with
    noise_std = sqrt(2 * step_size) it samples exp(-E) as step_size -> 0; with noise_std = 0 it is gradient
    descent on E.

    Args:
        energy: ``(z (n, d), c (n, C)) -> (n,)``.
        z0: start ``(n, d)``. c: conditions ``(n, C)``.
        steps: T. step_size, noise_std: see above.
        record: called as ``record(t, z)`` at t = 0 .. T (z detached), e.g. to log accuracy per step.

    Returns:
        z^T, shape ``(n, d)``, detached.

    References:
        TR0N, ICML 2023, section 3.2; Welling & Teh, ICML 2011.
    """
    z = z0.detach().clone()
    if record is not None:
        record(0, z)
    for t in range(1, steps + 1):
        z.requires_grad_(True)
        with torch.enable_grad():
            grad, = torch.autograd.grad(energy(z, c).sum(), z)
        noise = torch.randn(z.shape, generator=generator).to(z.device)
        z = (z - step_size * grad + noise_std * noise).detach()
        if record is not None:
            record(t, z)
    return z


def class_accuracy(predicted: np.ndarray | torch.Tensor, requested: np.ndarray | torch.Tensor) -> float:
    """Fraction of samples whose predicted class equals the requested one. Shapes: ``(n,), (n,) -> float``."""
    return float((np.asarray(predicted) == np.asarray(requested)).mean())


def per_class_accuracy(predicted, requested, n_classes: int) -> np.ndarray:
    """Accuracy within each requested class, shape ``(n_classes,)`` (NaN for a class never requested)."""
    predicted, requested = np.asarray(predicted), np.asarray(requested)
    return np.array([(predicted[requested == k] == k).mean() if (requested == k).any() else np.nan
                     for k in range(n_classes)])


def within_class_diversity(x: np.ndarray | torch.Tensor, labels, n_classes: int) -> np.ndarray:
    """Mean pairwise Euclidean distance between samples of the same class: how varied the samples for one
    condition are (a collapsed sampler scores near 0). Shapes: ``(n, D), (n,) -> (n_classes,)``."""
    x, labels = np.asarray(x, dtype=np.float64), np.asarray(labels)
    out = np.full(n_classes, np.nan)
    for k in range(n_classes):
        xs = x[labels == k]
        if len(xs) > 1:
            sq = (xs ** 2).sum(1)
            d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * xs @ xs.T, 0.0)
            out[k] = np.sqrt(d2)[np.triu_indices(len(xs), 1)].mean()
    return out
