"""WinIT: windowed feature importance in time.

For a model that predicts ``p(y_t | X_{1:t})`` at every step, the importance of removing feature ``f`` over
the window ``[t-n, t]`` (replacing it by counterfactual draws ``x~``) for the prediction at ``t`` is

    i(t-n, t) = E_x~[ d( p(y_t | X_{1:t}), p(y_t | X_{1:t} with x_f[t-n..t] := x~) ) ]            (1)

and the importance of the single observation ``x_{f, t-n}`` for ``y_t`` is the difference

    I(t-n, t) = i(t-n, t) - i(t-n+1, t)   (n >= 1),     I(t, t) = i(t, t).                            (2)

The score of ``x_{f, tau}`` aggregates ``I(tau, t)`` over the windows that contain it,
``t in [tau, tau + W - 1]`` (mean, max or absmax)                                                       (3).

References:
    K. K. Leung, C. Rooke, J. Smith, S. Zuberi, M. Volkovs. Temporal Dependencies in Feature Importance for
    Time Series Prediction. ICLR 2023, Sec. 4 (Eqs. 1-3 above are its Eqs. 4, 5 and 7).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

METRICS = ("pd", "kl", "js")
AGGREGATES = ("mean", "max", "absmax")
_EPS = 1e-7


def as_distribution(out: torch.Tensor) -> torch.Tensor:
    """Model output -> class distributions: ``(B, T)`` probabilities of class 1 become ``(B, T, 2)``;
    ``(B, T, C)`` is returned as is."""
    return torch.stack([1 - out, out], -1) if out.dim() == 2 else out


def distance(p: torch.Tensor, q: torch.Tensor, metric: str = "pd") -> torch.Tensor:
    """Distance between distributions along the last axis (broadcasting): ``"pd"`` L1 (the paper's default),
    ``"kl"`` KL(p || q), ``"js"`` Jensen-Shannon."""
    if metric == "pd":
        return (p - q).abs().sum(-1)
    p, q = p.clamp_min(_EPS), q.clamp_min(_EPS)
    if metric == "kl":
        return (p * (p.log() - q.log())).sum(-1)
    if metric == "js":
        m = (p + q) / 2
        return 0.5 * ((p * (p.log() - m.log())).sum(-1) + (q * (q.log() - m.log())).sum(-1))
    raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")


def aggregate_windows(windows: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """Eq. (3): per-observation scores from per-window scores.

    Args:
        windows: ``(B, F, T, W)``, ``[b, f, t, n]`` = importance of ``x[b, f, t-n]`` for the prediction at t.
        how: ``"mean"`` | ``"max"`` | ``"absmax"`` (the value of largest magnitude, sign kept).

    Returns:
        ``(B, F, T)``: score of ``x[b, f, tau]`` over ``t = tau .. min(tau + W, T) - 1``.
    """
    if how not in AGGREGATES:
        raise ValueError(f"unknown aggregate {how!r}; allowed: {', '.join(AGGREGATES)}")
    B, F, T, W = windows.shape
    by_obs = windows.new_full((B, F, T, W), float("nan"))      # [b, f, tau, n] = windows[b, f, tau + n, n]
    for n in range(min(W, T)):
        by_obs[:, :, : T - n, n] = windows[:, :, n:, n]
    if how == "mean":
        return by_obs.nanmean(-1)
    filled_hi = by_obs.nan_to_num(float("-inf")).amax(-1)
    if how == "max":
        return filled_hi
    filled_lo = by_obs.nan_to_num(float("inf")).amin(-1)
    return torch.where(-filled_lo > filled_hi, filled_lo, filled_hi)


class WinIT:
    """Windowed feature importance in time, with a captum-style :meth:`attribute`.

    Args:
        model: callable ``x (B, F, T) -> probabilities (B, T)`` (binary) or ``(B, T, C)``, one prediction per
            step (e.g. :class:`l6kit.timeseries.GRUClassifier`).
        generator: counterfactual generator with ``sample(x, window, n_samples, generator=) -> (S, B, F, T, W)``
            (:mod:`l6kit.attribution.generators`).
        window: W, the look-back window (the paper's 10).
        n_samples: counterfactual draws per window (the paper's 3).
        metric: distance d of Eq. (1): ``"pd"`` | ``"kl"`` | ``"js"``.
        aggregate: Eq. (3): ``"mean"`` | ``"max"`` | ``"absmax"``.
        causal: the model's output at t depends only on ``x[..., :t+1]``; then one forward pass per window
            start gives i(s, t) for all ``t`` in the window (W times fewer passes). ``False`` runs the model
            on every prefix, as the official code does.
        batch_size: series explained per chunk (memory: ``F * n_samples * batch_size`` sequences per pass).
        seed: seed of the counterfactual draws.

    Example:
        >>> scores = WinIT(model, generator, window=10).attribute(x)        # (B, F, T)
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], generator, *, window: int = 10,
                 n_samples: int = 3, metric: str = "pd", aggregate: str = "mean", causal: bool = True,
                 batch_size: int = 128, seed: int = 0):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; allowed: {', '.join(AGGREGATES)}")
        if window < 1 or n_samples < 1:
            raise ValueError(f"window and n_samples must be >= 1, got {window}, {n_samples}")
        self.model, self.generator = model, generator
        self.window, self.n_samples, self.metric, self.aggregate = window, n_samples, metric, aggregate
        self.causal, self.batch_size, self.seed = causal, batch_size, seed

    def attribute(self, inputs: torch.Tensor) -> torch.Tensor:
        """Importance of every observation, shape ``(B, F, T)`` like ``inputs`` (Eq. 3)."""
        return aggregate_windows(self.window_scores(inputs), self.aggregate)

    def window_scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """Eq. (2): ``(B, F, T, W)``, ``[b, f, t, n]`` = I(t-n, t) for feature f (0 where ``n >= t``)."""
        iS = self.removal_scores(inputs)
        T, W = iS.shape[2], iS.shape[3]
        out = iS.clone()
        out[..., 1:] -= iS[..., :-1]
        valid = torch.arange(W, device=iS.device)[None, :] < torch.arange(T, device=iS.device)[:, None]
        return out * valid

    @torch.no_grad()
    def removal_scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """Eq. (1): ``(B, F, T, W)``, ``[b, f, t, n]`` = i(t-n, t) for feature f (0 where ``n >= t``)."""
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()
        gen = torch.Generator(device=inputs.device)
        gen.manual_seed(self.seed)
        chunks = [self._removal_chunk(inputs[i:i + self.batch_size], gen)
                  for i in range(0, len(inputs), self.batch_size)]
        return torch.cat(chunks)

    def _removal_chunk(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        cf = self.generator.sample(x, self.window, self.n_samples, generator=gen)     # (S, B, F, T, W)
        if self.causal:
            return self._removal_causal(x, cf)
        return self._removal_prefix(x, cf)

    def _perturbed(self, x: torch.Tensor, cf: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """``(F * S * B, F, end)``: copy f of ``x[..., :end]`` has feature f on ``[start, end)`` replaced."""
        S, F = cf.shape[0], x.shape[1]
        xh = x[:, :, :end].unsqueeze(0).unsqueeze(0).repeat(F, S, 1, 1, 1)            # (F, S, B, F, end)
        for f in range(F):
            xh[f, :, :, f, start:end] = cf[:, :, f, start, : end - start]
        return xh.reshape(-1, F, end)

    def _removal_causal(self, x: torch.Tensor, cf: torch.Tensor) -> torch.Tensor:
        B, F, T = x.shape
        S, W = cf.shape[0], self.window
        p = as_distribution(self.model(x))                                             # (B, T, C)
        iS = x.new_zeros(B, F, T, W)
        for s in range(1, T):
            L = min(W, T - s)
            q = as_distribution(self.model(self._perturbed(x, cf, s, s + L)))[:, s:s + L]   # (F*S*B, L, C)
            d = distance(p[:, s:s + L], q.reshape(F, S, B, L, -1), self.metric).mean(1)  # (F, B, L)
            lag = torch.arange(L, device=x.device)
            iS[:, :, s + lag, lag] = d.permute(1, 0, 2).clamp(-1e6, 1e6)
        return iS

    def _removal_prefix(self, x: torch.Tensor, cf: torch.Tensor) -> torch.Tensor:
        B, F, T = x.shape
        S, W = cf.shape[0], self.window
        iS = x.new_zeros(B, F, T, W)
        for t in range(1, T):
            p = as_distribution(self.model(x[:, :, : t + 1]))[:, -1]                   # (B, C)
            for n in range(min(t, W)):
                q = as_distribution(self.model(self._perturbed(x, cf, t - n, t + 1)))[:, -1]   # (F*S*B, C)
                d = distance(p, q.reshape(F, S, B, -1), self.metric).mean(1)           # (F, B)
                iS[:, :, t, n] = d.T.clamp(-1e6, 1e6)
        return iS
