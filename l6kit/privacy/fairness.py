"""Group fairness diagnostics for DP training: per-group accuracy, clipping statistics and gradient misalignment.

Esipova et al. (2023) split the disparate impact of DP-SGD into a *clipping* part and a *noise* part, and the
clipping part further into a change of the update's *magnitude* and of its *direction*. The direction part
("gradient misalignment") is what hurts a minority most: when its examples have larger gradients, per-sample
clipping shrinks them more than the majority's, so the clipped batch mean turns away from the minority's own
gradient. :class:`AlignmentProbe` measures that turn during training as

    delta_cos_k = cos(g_k, mean_i s_i g_i) - cos(g_k, mean_i g_i),

where ``g_k`` is group k's mean gradient over its whole training data and ``s_i`` the clipping factors of the
batch (Esipova et al. 2023, Sec. 4, the cosine of the "direction error"). Global scaling (one ``s`` for every
sample below Z) gives ``delta_cos_k = 0`` exactly.

References:
    Esipova, Ghomi, Luo, Cresswell, "Disparate Impact in Differential Privacy from Gradient Misalignment",
    ICLR 2023 (Sec. 4, Eq. 6-8; Sec. 5).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn


def per_group_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor,
                       num_groups: int, chunk: int = 4096) -> np.ndarray:
    """Accuracy of ``model`` within each group (NaN for a group with no example).

    Shapes:
        x: (n, ...); y, groups: (n,). Returns (num_groups,).
    """
    correct = predict(model, x, chunk).to(y.device).eq(y).float().cpu()
    g = groups.cpu()
    return np.array([float(correct[g == k].mean()) if (g == k).any() else float("nan")
                     for k in range(num_groups)])


def predict(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Arg-max class of ``model`` for every row of ``x``, in chunks. Shapes: x (n, ...); returns (n,)."""
    with torch.no_grad():
        return torch.cat([model(x[i:i + chunk]).argmax(1) for i in range(0, len(x), chunk)])


def accuracy_gap(acc: np.ndarray, minority: int) -> float:
    """Mean accuracy of the other groups minus the minority's (positive = the minority is worse off)."""
    return float(np.nanmean(np.delete(acc, minority)) - acc[minority])


def mean_gradient(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor,
                  chunk: int = 4096) -> torch.Tensor:
    """Flattened gradient of the mean loss over ``(x, y)`` (all trainable parameters, in named order),
    accumulated over chunks of ``chunk`` examples to bound memory.

    Shapes:
        x: (n, ...); y: (n,). Returns (P,).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    for start in range(0, len(x), chunk):
        part = loss_fn(model(x[start:start + chunk]), y[start:start + chunk]).sum() / len(x)
        for acc, g in zip(total, torch.autograd.grad(part, params), strict=True):
            acc += g
    return torch.cat([g.reshape(-1) for g in total]).detach()


def flat_dict(d: dict) -> torch.Tensor:
    """Concatenate a ``{name: tensor}`` dict (one gradient) into a vector. Shapes: returns (P,)."""
    return torch.cat([v.reshape(-1) for v in d.values()])


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two vectors (0 when either is zero)."""
    na, nb = a.norm(), b.norm()
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


class AlignmentProbe:
    """A :func:`l6kit.privacy.dp.fit_private` callback: clipping statistics per group at every step and the
    direction diagnostics against the true gradients every ``every`` steps.

    The true group gradients are computed at the parameters the step used (after the previous update), so
    the cosines compare gradients at the same point.

    Args:
        model, loss_fn: the trained model and its per-sample loss.
        x, y, groups: the training set and each example's group. Shapes: x (n, ...); y, groups (n,).
        num_groups: number of groups. minority: the group whose direction error is tracked.
        every: probe period in steps.

    Attributes:
        history: list of per-probe dicts (``step, loss, Z, clipped_frac, cos_{raw,clipped,noisy}_minority,
            delta_cos_minority, cos_raw_all, delta_cos_all, dir_err``); :meth:`frame` turns it into a
            DataFrame. ``norm_sum``, ``count``, ``clip_count``, ``factor_sum``: per-group running sums.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor,
                 groups: torch.Tensor, num_groups: int, minority: int, every: int = 10):
        self.model, self.loss_fn, self.x, self.y, self.groups = model, loss_fn, x, y, groups
        self.num_groups, self.minority, self.every = num_groups, minority, every
        self.mask = groups == minority
        self.history: list[dict] = []
        self.norm_sum = np.zeros(num_groups)
        self.count = np.zeros(num_groups)
        self.clip_count = np.zeros(num_groups)
        self.factor_sum = np.zeros(num_groups)
        self._true = self._true_gradients()

    def _true_gradients(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (mean_gradient(self.model, self.loss_fn, self.x[self.mask], self.y[self.mask]),
                mean_gradient(self.model, self.loss_fn, self.x, self.y))

    def __call__(self, step: int, idx: torch.Tensor, info: dict) -> None:
        g = self.groups[idx].cpu().numpy()
        norms, factors = info["grad_norms"].cpu().numpy(), info["factors"].cpu().numpy()
        clipped = info["clipped"].cpu().numpy()
        np.add.at(self.norm_sum, g, norms)
        np.add.at(self.count, g, 1)
        np.add.at(self.clip_count, g, clipped)
        np.add.at(self.factor_sum, g, factors)
        if step % self.every == 0 and len(idx):
            self.history.append(self._direction(step, info))
        if (step + 1) % self.every == 0:
            self._true = self._true_gradients()       # at the parameters the next probed step will use

    def _direction(self, step: int, info: dict) -> dict:
        g_min, g_all = self._true
        raw, clipped, noisy = flat_dict(info["raw_mean"]), flat_dict(info["clipped_mean"]), flat_dict(info["update"])
        c_raw, c_clip = cosine(g_min, raw), cosine(g_min, clipped)
        return {"step": step, "loss": info["loss"], "Z": info.get("Z"), "clipped_frac": info["clipped_frac"],
                "cos_raw_minority": c_raw, "cos_clipped_minority": c_clip,
                "cos_noisy_minority": cosine(g_min, noisy), "delta_cos_minority": c_clip - c_raw,
                "cos_raw_all": cosine(g_all, raw),
                "delta_cos_all": cosine(g_all, clipped) - cosine(g_all, raw), "dir_err": 1 - cosine(raw, clipped)}

    def frame(self) -> pd.DataFrame:
        """The probe history as a DataFrame (one row per probed step)."""
        return pd.DataFrame(self.history)

    def clip_stats(self) -> pd.DataFrame:
        """Per-group clipping statistics over all steps: ``group, mean_norm, clipped_frac, mean_factor``."""
        n = np.maximum(self.count, 1)
        return pd.DataFrame({"group": np.arange(self.num_groups), "mean_norm": self.norm_sum / n,
                             "clipped_frac": self.clip_count / n, "mean_factor": self.factor_sum / n})
