"""Performance drop without ground truth: mask the top-scored observations and watch the model's AUC fall.

END masking (the WinIT paper's MIMIC-III protocol): take the top ``fraction`` of all (sample, feature, time)
cells by attribution, pooled over samples and with time 0 excluded; for each selected cell, the feature is
carried forward from the step before it until the end of the series. A better explainer selects cells whose
removal hurts the last-step prediction more.

References:
    K. K. Leung et al. Temporal Dependencies in Feature Importance for Time Series Prediction. ICLR 2023,
    Sec. 5.2 (END masking, top 5 %).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def mask_top(x: np.ndarray, scores: np.ndarray, fraction: float = 0.05, *, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """END-mask the top ``fraction`` of cells by ``scores`` (ties broken at random).

    Args:
        x: inputs, shape ``(N, F, T)``.
        scores: attributions, shape ``(N, F, T)``; time 0 is never selected.
        fraction: share of the cells with ``t >= 1`` to select.
        seed: seed of the tie-breaking.

    Returns:
        ``(masked x (N, F, T), masked cells (N, F, T) bool)``.
    """
    x = np.array(x, dtype=np.float32, copy=True)
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64))[:, :, 1:]
    N, F, T1 = scores.shape
    k = int(fraction * scores.size)
    perm = np.random.default_rng(seed).permutation(scores.size)
    top = perm[np.argsort(-scores.ravel()[perm], kind="stable")[:k]]
    first = np.full((N, F), T1 + 1)                                  # earliest selected step per (n, f)
    n_idx, f_idx, t_idx = np.unravel_index(top, scores.shape)
    np.minimum.at(first, (n_idx, f_idx), t_idx + 1)
    steps = np.arange(T1 + 1)
    masked = steps[None, None, :] >= first[..., None]               # (N, F, T)
    held = np.take_along_axis(x, np.clip(first - 1, 0, T1)[..., None], axis=2)
    x = np.where(masked, held, x)
    return x, masked


@torch.no_grad()
def auc_drop(model, x: np.ndarray, masked_x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """AUROC of the last-step prediction before and after masking.

    Args:
        model: per-step model ``(B, F, T) -> (B, T)`` probabilities.
        x, masked_x: original and masked inputs ``(N, F, T)``.
        y: labels ``(N, T)`` (the last step is used) or ``(N,)``.

    Returns:
        ``{"auc", "auc_masked", "drop", "mean_change"}`` (mean |change| of the last-step probability).
    """
    from sklearn.metrics import roc_auc_score

    from l6kit.timeseries.models import predict

    y = np.asarray(y)
    y_last = y[:, -1] if y.ndim == 2 else y
    before, after = predict(model, x)[:, -1], predict(model, masked_x)[:, -1]
    auc, auc_masked = roc_auc_score(y_last, before), roc_auc_score(y_last, after)
    return {"auc": float(auc), "auc_masked": float(auc_masked), "drop": float(auc - auc_masked),
            "mean_change": float(np.abs(before - after).mean())}


def drop_curve(model, x: np.ndarray, y: np.ndarray, attributions: dict[str, np.ndarray],
               fractions: tuple[float, ...] = (0.05,), *, seed: int = 0) -> pd.DataFrame:
    """:func:`mask_top` then :func:`auc_drop` for every method and masked fraction.

    Args:
        model: per-step model; x: ``(N, F, T)``; y: ``(N, T)``; attributions: method -> ``(N, F, T)``.

    Returns:
        Rows ``method, fraction, auc, auc_masked, drop, mean_change``.
    """
    rows = []
    for method, attr in attributions.items():
        for frac in fractions:
            masked, _ = mask_top(x, attr, frac, seed=seed)
            rows.append({"method": method, "fraction": frac} | auc_drop(model, x, masked, y))
    return pd.DataFrame(rows)
