"""Baselines on the same aggregated features as DuETT, and the metrics of the comparison.

References:
    Labach et al., MLHC 2023, Table 1 (XGBoost on the binned features as the strongest classical baseline);
    Ke et al. *LightGBM*, NeurIPS 2017 (the histogram GBDT scikit-learn's ``HistGradientBoostingClassifier``
    implements).
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from l6kit.ehr.aggregate import BinnedStays


class GBDTBaseline:
    """Gradient-boosted trees on :meth:`BinnedStays.flat` (last values with NaN where unobserved, counts,
    static): the tabular view of exactly the grid DuETT sees.

    Args:
        max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization: passed to scikit-learn's
            ``HistGradientBoostingClassifier`` (its defaults otherwise; no early stopping, no tuning).
        seed: its ``random_state``.

    Attributes:
        model_: the fitted classifier.
    """

    def __init__(self, max_iter: int = 100, learning_rate: float = 0.1, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 20, l2_regularization: float = 0.0, seed: int = 0):
        self.params = dict(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                           min_samples_leaf=min_samples_leaf, l2_regularization=l2_regularization)
        self.seed = seed

    def fit(self, stays: BinnedStays) -> GBDTBaseline:
        """Fit on ``stays`` and their labels; returns self."""
        self.model_ = HistGradientBoostingClassifier(**self.params, early_stopping=False,
                                                     random_state=self.seed)
        self.model_.fit(stays.flat(), stays.labels)
        return self

    def predict_proba(self, stays: BinnedStays) -> np.ndarray:
        """Predicted death probability per stay, shape ``(n,)``."""
        return self.model_.predict_proba(stays.flat())[:, 1]


class LogisticBaseline:
    """L2-regularised logistic regression on standardised :meth:`BinnedStays.flat` features (unobserved values
    as 0, i.e. the training mean): a linear read-out of the same grid.

    Args:
        C: inverse regularisation strength (small = strong; scikit-learn's default is 1).

    Attributes:
        model_: the fitted scikit-learn pipeline.
    """

    def __init__(self, C: float = 0.003):
        self.C = C

    def fit(self, stays: BinnedStays) -> LogisticBaseline:
        """Fit on ``stays`` and their labels; returns self."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=5000))
        self.model_.fit(stays.flat(missing=0.0), stays.labels)
        return self

    def predict_proba(self, stays: BinnedStays) -> np.ndarray:
        """Predicted death probability per stay, shape ``(n,)``."""
        return self.model_.predict_proba(stays.flat(missing=0.0))[:, 1]


def binary_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC and AUPRC (average precision, as the paper's torchmetrics ``AveragePrecision``).

    Shapes:
        labels, scores: ``(n,)``.
    """
    return {"auroc": float(roc_auc_score(labels, scores)), "auprc": float(average_precision_score(labels, scores))}
