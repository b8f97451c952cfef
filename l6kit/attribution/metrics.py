"""Ground-truth evaluation of saliency maps: AUROC, AUPRC (trapezoid) and average precision.

Every (sample, feature, time) cell is one instance: its score is the attribution, its label whether the cell
is truly salient. As in FIT and WinIT, the first time step is dropped (no method can score it: there is no
past to condition on) and the cells of all samples are pooled.

References:
    K. K. Leung et al. Temporal Dependencies in Feature Importance for Time Series Prediction. ICLR 2023,
    Sec. 5.1 and App. (AUPRC by the trapezoid rule; the card recommends reporting AP beside it).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn import metrics


def _flat(scores, truth, drop_first: bool) -> tuple[np.ndarray, np.ndarray]:
    scores = scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    truth = np.asarray(truth, dtype=bool)
    if scores.shape != truth.shape:
        raise ValueError(f"scores {scores.shape} and truth {truth.shape} differ in shape")
    if drop_first:
        scores, truth = scores[..., 1:], truth[..., 1:]
    return np.nan_to_num(scores.astype(np.float64)).ravel(), truth.ravel()


def auprc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve by the trapezoid rule (sklearn's curve), shape ``(m,)`` each."""
    precision, recall, _ = metrics.precision_recall_curve(labels, scores)
    return float(metrics.auc(recall, precision))


def saliency_scores(scores, truth, *, drop_first: bool = True) -> dict[str, float]:
    """AUROC, AUPRC and AP of ``scores`` against the ground-truth mask ``truth``.

    Args:
        scores: attributions, shape ``(N, F, T)`` (array or tensor); NaN counts as 0.
        truth: salient cells, shape ``(N, F, T)``, bool.
        drop_first: ignore time step 0.

    Returns:
        ``{"auroc", "auprc", "ap", "positives", "cells"}``; the three metrics are NaN without positives.
    """
    s, t = _flat(scores, truth, drop_first)
    out = {"positives": float(t.sum()), "cells": float(t.size)}
    if t.all() or not t.any():
        return out | {"auroc": float("nan"), "auprc": float("nan"), "ap": float("nan")}
    return out | {"auroc": float(metrics.roc_auc_score(t, s)), "auprc": auprc(t, s),
                  "ap": float(metrics.average_precision_score(t, s))}


def per_sample_auprc(scores, truth, *, drop_first: bool = True) -> np.ndarray:
    """AUPRC of each sample's own saliency map, shape ``(N,)``; NaN for samples without salient cells."""
    scores = scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    out = np.full(len(scores), np.nan)
    for i in range(len(scores)):
        s, t = _flat(scores[i], truth[i], drop_first)
        if t.any() and not t.all():
            out[i] = auprc(t, s)
    return out
