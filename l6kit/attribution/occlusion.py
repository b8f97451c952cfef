"""Occlusion baselines for time series: feature occlusion (FO) and augmented feature occlusion (AFO).

Both replace one observation ``x_{f,t}`` by random draws and score it by the expected change of the prediction
*at the same step* t, ``E[d(p(y_t | X_{1:t}), p(y_t | X_{1:t} with x_{f,t} := x~))]``  (4). FO draws from
``Uniform(-3, 3)``; AFO from the feature's marginal in the training data (so the replacement is in
distribution). Neither looks at later predictions, which is why both miss delayed effects.

References:
    H. Suresh et al. Clinical intervention prediction and understanding with deep neural networks. MLHC 2017
    (FO). S. Tonekaboni et al. What went wrong and when? NeurIPS 2020, Sec. 4 (AFO, as a FIT baseline).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from l6kit.attribution.winit import METRICS, as_distribution, distance


class FeatureOcclusion:
    """FO: replace ``x_{f,t}`` by ``Uniform(low, high)`` draws and measure the change of ``p(y_t)``.

    Args:
        model: callable ``x (B, F, T) -> probabilities (B, T)`` or ``(B, T, C)`` (one prediction per step).
        n_samples: draws per observation (the official code's 10).
        low, high: the uniform range.
        metric: distance between predictive distributions (``"pd"`` = L1).
        seed: seed of the draws.

    Shapes:
        :meth:`attribute`: ``(B, F, T)`` -> ``(B, F, T)``; step 0 scores 0 (as in FIT/WinIT).
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], *, n_samples: int = 10,
                 low: float = -3.0, high: float = 3.0, metric: str = "pd", seed: int = 0):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
        self.model, self.n_samples, self.low, self.high = model, n_samples, low, high
        self.metric, self.seed = metric, seed

    def _draw(self, shape: tuple[int, ...], feature: int, gen: torch.Generator) -> torch.Tensor:
        """Replacement values for ``feature``, shape ``shape``."""
        return torch.rand(shape, generator=gen, device=gen.device) * (self.high - self.low) + self.low

    @torch.no_grad()
    def attribute(self, inputs: torch.Tensor) -> torch.Tensor:
        """Eq. (4) for every observation: ``(B, F, T)`` -> ``(B, F, T)``; step 0 scores 0."""
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()
        gen = torch.Generator(device=inputs.device)
        gen.manual_seed(self.seed)
        B, F, T = inputs.shape
        S = self.n_samples
        scores = inputs.new_zeros(B, F, T)
        for t in range(1, T):
            p = as_distribution(self.model(inputs[:, :, : t + 1]))[:, -1]                # (B, C)
            xh = inputs[:, :, : t + 1].unsqueeze(0).unsqueeze(0).repeat(F, S, 1, 1, 1)  # (F, S, B, F, t+1)
            for f in range(F):
                xh[f, :, :, f, t] = self._draw((S, B), f, gen).to(inputs.dtype)
            q = as_distribution(self.model(xh.reshape(-1, F, t + 1)))[:, -1]           # (F*S*B, C)
            scores[:, :, t] = distance(p, q.reshape(F, S, B, -1), self.metric).mean(1).T
        return scores


class AugmentedFeatureOcclusion(FeatureOcclusion):
    """AFO: like :class:`FeatureOcclusion` but draws ``x~_f`` from feature f's values in the training data.

    Args:
        model: see :class:`FeatureOcclusion`.
        data: training inputs, shape ``(N, F, T)``; every value of feature f (all series, all steps) is a
            candidate draw.
        n_samples, metric, seed: see :class:`FeatureOcclusion`.
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], data, *, n_samples: int = 10,
                 metric: str = "pd", seed: int = 0):
        super().__init__(model, n_samples=n_samples, metric=metric, seed=seed)
        data = torch.as_tensor(np.asarray(data), dtype=torch.float32)
        self.values = data.transpose(0, 1).reshape(data.shape[1], -1)          # (F, N*T)

    def _draw(self, shape: tuple[int, ...], feature: int, gen: torch.Generator) -> torch.Tensor:
        """Values of ``feature`` drawn from the training data, shape ``shape``."""
        idx = torch.randint(self.values.shape[1], shape, generator=gen, device=gen.device)
        return self.values[feature].to(gen.device)[idx]
