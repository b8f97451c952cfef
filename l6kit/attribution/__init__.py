"""Feature attribution for time-series models: WinIT, occlusion and captum gradient baselines, the
counterfactual generators WinIT needs, ground-truth metrics and masking (performance-drop) evaluation.

Every method follows captum: ``Method(model, ...).attribute(inputs)`` returns a tensor shaped like
``inputs (B, F, T)``. Models map ``(B, F, T)`` to per-step probabilities ``(B, T)`` (or ``(B, T, C)``).
"""

from l6kit.attribution.generators import DataDistributionGenerator, GaussianWindowGenerator, train_generator
from l6kit.attribution.gradients import CaptumAttribution, LastStep
from l6kit.attribution.masking import auc_drop, drop_curve, mask_top
from l6kit.attribution.metrics import auprc, per_sample_auprc, saliency_scores
from l6kit.attribution.occlusion import AugmentedFeatureOcclusion, FeatureOcclusion
from l6kit.attribution.winit import WinIT, aggregate_windows, as_distribution, distance
from l6kit.store import load_nested, save_nested

__all__ = ["AugmentedFeatureOcclusion", "CaptumAttribution", "DataDistributionGenerator", "FeatureOcclusion",
           "GaussianWindowGenerator", "LastStep", "WinIT", "aggregate_windows", "as_distribution", "auc_drop",
           "auprc", "distance", "drop_curve", "load_nested", "mask_top", "per_sample_auprc", "saliency_scores",
           "save_nested", "train_generator"]
