"""Ranking metrics: average precision, mAP (full and at k, Kaggle style), and the revisited
Oxford/Paris protocol (Easy / Medium / Hard with "junk" images removed).

All values are fractions in ``[0, 1]`` (papers print them x 100).

References:
    Radenović, Iscen, Tolias, Avrithis, Chum. "Revisiting Oxford and Paris: Large-Scale Image Retrieval
    Benchmarking." CVPR 2018.
    Philbin et al. "Object retrieval with large vocabularies and fast spatial matching." CVPR 2007 (the
    trapezoidal AP of the Oxford evaluation code).
    Google Landmark Retrieval Challenge (Kaggle 2019): mAP@100.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _hit_ranks(ranking: np.ndarray, positives: np.ndarray, junk: np.ndarray | None) -> np.ndarray:
    """0-based ranks of the positives in ``ranking`` after the junk ids are removed."""
    ranking = np.asarray(ranking)
    if junk is not None and len(junk):
        ranking = ranking[~np.isin(ranking, np.asarray(junk))]
    return np.flatnonzero(np.isin(ranking, np.asarray(positives)))


def average_precision(ranking: np.ndarray, positives: np.ndarray, junk: np.ndarray | None = None, *,
                      k: int | None = None, trapezoid: bool = False) -> float:
    """Average precision of one ranked list.

    ``AP = (1 / R) sum_{hits at rank r} precision@r`` with ``R = len(positives)`` (positives missing from
    the list count as precision 0). ``junk`` ids are deleted from the list first (they neither help nor
    hurt: revisited protocol). With ``k``: only the first ``k`` positions count and ``R = min(R, k)``
    (Kaggle mAP@k). With ``trapezoid``: the Oxford code's trapezoidal rule, averaging precision just before
    and at each hit, ``(j / r + (j + 1) / (r + 1)) / 2`` for the j-th hit (0-based) at 0-based rank ``r``.

    Shapes:
        ranking: ``(n,)`` ids, best first; positives, junk: ``(p,)`` ids.

    Returns:
        AP in ``[0, 1]``; NaN when there are no positives.
    """
    positives = np.unique(np.asarray(positives))
    if len(positives) == 0:
        return float("nan")
    ranks = _hit_ranks(ranking, positives, junk)
    n_pos = len(positives)
    if k is not None:
        ranks, n_pos = ranks[ranks < k], min(n_pos, k)
    j = np.arange(len(ranks), dtype=np.float64)
    if trapezoid:
        before = np.where(ranks == 0, 1.0, j / np.maximum(ranks, 1))
        prec = (before + (j + 1) / (ranks + 1)) / 2
    else:
        prec = (j + 1) / (ranks + 1)
    return float(prec.sum() / n_pos)


def mean_average_precision(rankings: np.ndarray, positives: Sequence[np.ndarray],
                           junk: Sequence[np.ndarray] | None = None, k: int | None = None) -> float:
    """Mean of :func:`average_precision` over queries (queries without positives are skipped).

    With ``k`` this is the Kaggle Google-Landmarks mAP@k: ``1/Q sum_q 1/min(m_q, k) sum_{i<=k} P_q(i)
    rel_q(i)``, ``m_q`` = number of relevant index images of query q.

    Shapes:
        rankings: ``(m, n)`` (or a list of m 1-D rankings); positives, junk: m id arrays.

    Returns:
        mAP in ``[0, 1]``.
    """
    aps = [average_precision(r, p, None if junk is None else junk[i], k=k)
           for i, (r, p) in enumerate(zip(rankings, positives, strict=True))]
    aps = [a for a in aps if not np.isnan(a)]
    return float(np.mean(aps)) if aps else float("nan")


def revisited_map(rankings: np.ndarray, gnd: Sequence[dict]) -> dict[str, float]:
    """Revisited Oxford/Paris mAP for the Easy, Medium and Hard setups (Radenović et al. 2018).

    Per query ``gnd[i]`` has id arrays ``'easy'``, ``'hard'``, ``'junk'``. Easy: positives = easy, ignored =
    junk + hard. Medium: positives = easy + hard, ignored = junk. Hard: positives = hard, ignored = junk +
    easy. AP uses the Oxford trapezoidal rule as in the official ``compute_map``; queries with no positive
    in a setup are left out of that setup's mean.

    Shapes:
        rankings: ``(m, n)`` index ids, best first; ``len(gnd) == m``.

    Returns:
        ``{"easy", "medium", "hard"}`` mAP values in ``[0, 1]``.
    """
    cat = lambda *a: np.concatenate([np.asarray(x, dtype=np.int64).ravel() for x in a])  # noqa: E731
    setups = {"easy": lambda g: (cat(g["easy"]), cat(g["junk"], g["hard"])),
              "medium": lambda g: (cat(g["easy"], g["hard"]), cat(g["junk"])),
              "hard": lambda g: (cat(g["hard"]), cat(g["junk"], g["easy"]))}
    out = {}
    for name, split in setups.items():
        aps = []
        for r, g in zip(rankings, gnd, strict=True):
            pos, junk = split(g)
            if len(pos):
                aps.append(average_precision(r, pos, junk, trapezoid=True))
        out[name] = float(np.mean(aps)) if aps else float("nan")
    return out
