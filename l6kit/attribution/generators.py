"""Counterfactual generators for WinIT: what a feature might have been over a window, given the past.

Both generators answer one question for every window start ``s`` of a batch ``x (B, F, T)``: draw values for
``x[:, f, s:s+W]`` from ``p(x_f over [s, s+W) | x[:, :, :s])``. They return all starts at once:

    ``sample(x, window, n_samples) -> (S, B, F, T, W)``,  element ``[k, b, f, s, j]`` ~ ``x[b, f, s+j]``.

* :class:`GaussianWindowGenerator` — the paper's choice: a GRU reads the past of all features and outputs an
  independent Gaussian for each feature and each of the next ``horizon`` steps. Trained with
  :func:`l6kit.train.fit` on the training series.
* :class:`DataDistributionGenerator` — the cheap variant of the official code (``--usedatadist``): values
  drawn from each feature's marginal over all training series and times, ignoring the past.

References:
    K. K. Leung et al. Temporal Dependencies in Feature Importance for Time Series Prediction. ICLR 2023,
    Sec. 4.2 (counterfactual generation) and App. (generator architecture).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from l6kit.train import History, TensorBatches, fit


class DataDistributionGenerator:
    """Counterfactuals drawn from each feature's marginal distribution in the training data.

    Args:
        data: training inputs, shape ``(N, F, T)`` (array or tensor).
    """

    def __init__(self, data):
        data = torch.as_tensor(np.asarray(data), dtype=torch.float32)
        self.values = data.transpose(0, 1).reshape(data.shape[1], -1)          # (F, N*T)

    def sample(self, x: torch.Tensor, window: int, n_samples: int, *, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Draws for every window start, shape ``(S, B, F, T, W)`` (the past is ignored)."""
        S, (B, F, T) = n_samples, x.shape
        dev = generator.device if generator is not None else torch.device("cpu")
        idx = torch.randint(self.values.shape[1], (S, B, F, T, window), generator=generator, device=dev)
        feature = torch.arange(F, device=dev).view(1, 1, F, 1, 1)
        return self.values.to(dev)[feature, idx].to(x.device)                  # (S, B, F, T, W)


class GaussianWindowGenerator(nn.Module):
    """GRU over the past of all features -> independent Gaussians for each feature over the next ``horizon`` steps.

    The official code trains one GRU per feature; here one encoder is shared and the heads are per feature,
    which gives the same per-feature (marginal) counterfactual distributions at a fraction of the cost. It is
    fitted by the Gaussian negative log-likelihood (the official code minimises the squared error of a
    reparameterised draw, which shrinks the standard deviation towards zero).

    Args:
        n_features: F.
        horizon: the longest window it can fill (>= the WinIT window).
        hidden: GRU hidden size (the paper's 50).

    Shapes:
        :meth:`params`: ``x (B, F, T)`` -> ``mu, sigma`` each ``(B, F, T, horizon)``, ``[b, f, s, j]`` the
        distribution of ``x[b, f, s+j]`` given ``x[b, :, :s]`` (start 0 sees no past).
    """

    def __init__(self, n_features: int, horizon: int = 10, hidden: int = 50):
        super().__init__()
        self.n_features, self.horizon, self.hidden = n_features, horizon, hidden
        self.rnn = nn.GRU(n_features, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(),
                                  nn.Linear(hidden, n_features * horizon * 2))

    def params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and standard deviations of the future values, each ``(B, F, T, horizon)`` (see the class)."""
        B, F, T = x.shape
        h, _ = self.rnn(x.transpose(1, 2))                                   # (B, T, hidden): saw x[:, :, :t+1]
        past = torch.cat([h.new_zeros(B, 1, self.hidden), h[:, :-1]], 1)     # (B, T, hidden): saw x[:, :, :s]
        out = self.head(past).reshape(B, T, F, self.horizon, 2).permute(0, 2, 1, 3, 4)   # (B, F, T, H, 2)
        return out[..., 0], nn.functional.softplus(out[..., 1]) + 1e-3

    def loss(self, batch) -> torch.Tensor:
        """Gaussian negative log-likelihood of every future value within the horizon, batch ``(x, ...)``."""
        x = batch[0] if isinstance(batch, list | tuple) else batch
        mu, sigma = self.params(x)
        T = x.shape[2]
        target = nn.functional.pad(x, (0, self.horizon - 1)).unfold(2, self.horizon, 1)   # (B, F, T, H)
        valid = (torch.arange(T)[:, None] + torch.arange(self.horizon)[None, :] < T).to(x.device)  # (T, H)
        nll = torch.log(sigma) + 0.5 * ((target - mu) / sigma) ** 2
        return (nll * valid).sum() / (valid.sum() * x.shape[0] * x.shape[1])

    @torch.no_grad()
    def sample(self, x: torch.Tensor, window: int, n_samples: int, *, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Draws for every window start, shape ``(S, B, F, T, window)``.

        Raises:
            ValueError: ``window`` exceeds the horizon the generator was trained for.
        """
        if window > self.horizon:
            raise ValueError(f"window {window} exceeds the generator's horizon {self.horizon}; train one with "
                             f"horizon >= {window}")
        mu, sigma = self.params(x)
        mu, sigma = mu[..., :window], sigma[..., :window]
        eps = torch.randn((n_samples, *mu.shape), generator=generator, device=mu.device)
        return mu.unsqueeze(0) + eps * sigma.unsqueeze(0)


def train_generator(x: np.ndarray, *, horizon: int = 10, hidden: int = 50, epochs: int = 30, lr: float = 1e-3,
                    batch_size: int = 100, device: str = "cpu", seed: int = 0, progress: bool | None = None
                    ) -> tuple[GaussianWindowGenerator, History]:
    """Fit a :class:`GaussianWindowGenerator` on training inputs ``x (N, F, T)`` with :func:`l6kit.train.fit`.

    Args:
        progress: show :func:`~l6kit.train.fit`'s progress bar (None: only in a terminal).

    Returns:
        ``(generator in eval mode, training history)``.
    """
    torch.manual_seed(seed)
    gen = GaussianWindowGenerator(x.shape[1], horizon, hidden)
    data = TensorBatches(torch.as_tensor(x, dtype=torch.float32), batch_size=batch_size)
    history = fit(gen, data, epochs=epochs, lr=lr, device=device, seed=seed, progress=progress,
                  desc="generator")
    return gen.eval(), history
