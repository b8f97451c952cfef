"""Two-step generative models: a generalized autoencoder learns the manifold, a density model fits its codes.

Step 1 trains any module with ``encode``/``decode`` (an :class:`~l6kit.generative.Autoencoder`, a
:class:`~l6kit.generative.VAE`, ...) with :func:`l6kit.train.fit`. Step 2 (:meth:`TwoStep.fit`) encodes the
training data, standardizes the codes and fits a *latent density* to them: a Gaussian mixture
(:class:`GaussianMixtureDensity`, scikit-learn) or a normalizing flow (:class:`FlowDensity`). A latent density is
any object with ``fit(z) -> self``, ``log_prob(z) -> (n,)`` and ``sample(n) -> (n, d)``.

References:
    Loaiza-Ganem, Ross, Cresswell, Caterini, "Diagnosing and Fixing Manifold Overfitting in Deep Generative
    Models", TMLR 2022 (two-step procedures; the density on the learned manifold).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from l6kit.generative.layers import TensorBatches


def _as_tensor(z) -> torch.Tensor:
    if isinstance(z, torch.Tensor):
        return z.detach().cpu().float()
    return torch.as_tensor(np.asarray(z), dtype=torch.float32)


class GaussianMixtureDensity:
    """A Gaussian mixture on the codes, fitted by EM (``sklearn.mixture.GaussianMixture``).

    Args:
        n_components: mixture components. covariance_type: ``"full"`` | ``"diag"`` | ``"tied"`` |
            ``"spherical"``. seed: EM initialization seed. **kwargs: passed to ``GaussianMixture``.

    Shapes:
        fit: ``(n, d)``; log_prob: ``(n, d) -> (n,)``; sample: ``n -> (n, d)`` (CPU tensors).
    """

    def __init__(self, n_components: int = 10, covariance_type: str = "full", seed: int = 0, **kwargs):
        from sklearn.mixture import GaussianMixture

        self.gmm = GaussianMixture(n_components, covariance_type=covariance_type, random_state=seed, **kwargs)

    def fit(self, z) -> GaussianMixtureDensity:
        self.gmm.fit(_as_tensor(z).double().numpy())
        return self

    def log_prob(self, z) -> torch.Tensor:
        return torch.as_tensor(self.gmm.score_samples(_as_tensor(z).double().numpy()), dtype=torch.float32)

    def full_covariances(self) -> np.ndarray:
        """Component covariances as full matrices, shape ``(k, d, d)``, whatever the covariance type."""
        g, cov = self.gmm, self.gmm.covariances_
        k, d = g.means_.shape
        if g.covariance_type == "full":
            return cov
        if g.covariance_type == "tied":
            return np.broadcast_to(cov, (k, d, d)).copy()
        if g.covariance_type == "diag":
            return np.stack([np.diag(c) for c in cov])
        return cov[:, None, None] * np.eye(d)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws using torch's (seedable) generator, unlike ``GaussianMixture.sample`` whose fixed
        ``random_state`` repeats the same draws on every call."""
        weights = torch.as_tensor(self.gmm.weights_, dtype=torch.float64)
        comp = torch.multinomial(weights, n, replacement=True, generator=generator)          # (n,)
        chol = torch.linalg.cholesky(torch.as_tensor(self.full_covariances()))              # (k, d, d)
        eps = torch.randn(n, chol.shape[-1], 1, generator=generator, dtype=torch.float64)
        z = torch.as_tensor(self.gmm.means_)[comp] + (chol[comp] @ eps).squeeze(-1)
        return z.float()


class FlowDensity:
    """A normalizing flow on the codes, trained by maximum likelihood with :func:`l6kit.train.fit`.

    Args:
        flow: a :class:`~l6kit.generative.Flow` (e.g. ``spline_flow(d)`` or ``realnvp(d)``).
        epochs, lr, batch_size, seed, device, grad_clip, progress: training settings (mixed precision is off:
            log-densities need float32).

    Attributes:
        history_: the :class:`l6kit.train.History` of the fit.
    """

    def __init__(self, flow: nn.Module, *, epochs: int = 100, lr: float = 1e-3, batch_size: int = 100,
                 seed: int = 0, device: str = "cpu", grad_clip: float | None = 10.0, progress: bool | None = None):
        self.flow, self.epochs, self.lr, self.batch_size = flow, epochs, lr, batch_size
        self.seed, self.device, self.grad_clip, self.progress = seed, device, grad_clip, progress

    def fit(self, z) -> FlowDensity:
        from l6kit.train import fit

        loader = TensorBatches(_as_tensor(z).to(self.device), batch_size=self.batch_size)
        self.history_ = fit(self.flow, loader, epochs=self.epochs, lr=self.lr, device=self.device,
                            seed=self.seed, grad_clip=self.grad_clip, amp=False, progress=self.progress,
                            desc="latent flow")
        self.flow.eval()
        return self

    @torch.no_grad()
    def log_prob(self, z) -> torch.Tensor:
        return self.flow.log_prob(_as_tensor(z).to(self.device)).cpu()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.flow.sample(n, generator=generator).cpu()


class TwoStep:
    """A two-step model: x = G(z) with z drawn from a density fitted to the codes g(x) of the training data.

    Args:
        autoencoder: a *trained* module with ``encode(x) -> (n, d)``, ``decode(z) -> (n, D)``, ``latent_dim``.
        density: a latent density (``fit``, ``log_prob``, ``sample``).
        standardize: fit the density to codes shifted and scaled to zero mean and unit variance per coordinate
            (flows with bounded splines need it; mixtures do not mind).

    Attributes:
        shift_, scale_: the code standardization, shape ``(d,)``.

    Shapes:
        fit: ``(n, D)``; sample: ``n -> (n, D)``; log_prob: ``(n, D) -> (n,)``.

    References:
        Loaiza-Ganem et al., TMLR 2022 (two-step procedures).
    """

    def __init__(self, autoencoder: nn.Module, density, standardize: bool = True):
        self.autoencoder, self.density, self.standardize = autoencoder, density, standardize

    def _device(self) -> torch.device:
        return next(self.autoencoder.parameters()).device

    @torch.no_grad()
    def raw_codes(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Encoder outputs g(x) on the autoencoder's device, computed in batches. Shapes: ``(n, D) -> (n, d)``."""
        self.autoencoder.eval()
        dev = self._device()
        return torch.cat([self.autoencoder.encode(x[i:i + batch_size].to(dev))
                          for i in range(0, len(x), batch_size)])

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Standardized codes (what the latent density sees), on the CPU. Shapes: ``(n, D) -> (n, d)``."""
        return ((self.raw_codes(x) - self.shift_) / self.scale_).cpu()

    def fit(self, x: torch.Tensor) -> TwoStep:
        """Step 2: encode ``x`` with the (already trained) autoencoder and fit the latent density."""
        raw = self.raw_codes(x)
        if self.standardize:
            self.shift_, self.scale_ = raw.mean(0), raw.std(0).clamp_min(1e-8)
        else:
            self.shift_, self.scale_ = torch.zeros_like(raw[0]), torch.ones_like(raw[0])
        self.density.fit(self.codes(x))
        return self

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples G(z), z from the latent density (un-standardized)."""
        self.autoencoder.eval()
        u = self.density.sample(n, generator=generator).to(self._device())
        return self.autoencoder.decode(u * self.scale_ + self.shift_)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density on the learned manifold at the projection of ``x``, with respect to its d-dimensional
        volume: log p_Z(g(x)) - 1/2 log det(J_G^T J_G)(g(x)). Exact for points on the learned manifold
        (x = G(g(x))); elsewhere it is the density at G(g(x)).

        References:
            Loaiza-Ganem et al., TMLR 2022 (density of a two-step model on its manifold).
        """
        z = self.raw_codes(x)
        log_pz = self.density.log_prob(((z - self.shift_) / self.scale_).cpu()) - torch.log(self.scale_).sum().cpu()
        return log_pz - decoder_log_volume(self.autoencoder.decode, z).cpu()


def decoder_log_volume(decode, z: torch.Tensor) -> torch.Tensor:
    """Half the log-determinant of the decoder's metric, 1/2 log det(J^T J), J = dG/dz of shape ``(D, d)``.

    Uses ``torch.func.vmap(jacrev(decode))``: d backward passes per point, fine for small latent sizes.

    Shapes:
        ``(n, d) -> (n,)``.

    References:
        Loaiza-Ganem et al., TMLR 2022 (two-step density); the same term is the volume change of injective flows.
    """
    from torch.func import jacrev, vmap

    def single(v: torch.Tensor) -> torch.Tensor:
        return decode(v.unsqueeze(0)).squeeze(0)

    jac = vmap(jacrev(single))(z.detach())                                    # (n, D, d)
    gram = jac.transpose(-1, -2) @ jac                                         # (n, d, d)
    return 0.5 * torch.linalg.slogdet(gram).logabsdet

