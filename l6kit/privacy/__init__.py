"""Privacy family: DP-SGD with per-sample clipping rules and opacus accounting (see :mod:`l6kit.privacy.dp`)."""

from l6kit.privacy.dp import (
    DPSGD,
    RULES,
    clip,
    clip_factors,
    dpsgdf_bounds,
    epsilon_for,
    fit_private,
    flat,
    grad_norms,
    noise_for_epsilon,
    noise_for_epsilon_with_counts,
    per_sample_grads,
    poisson_batches,
    privatize,
    update_z,
)

__all__ = [
    "DPSGD", "RULES", "clip", "clip_factors", "dpsgdf_bounds", "epsilon_for", "fit_private", "flat", "grad_norms",
    "noise_for_epsilon", "noise_for_epsilon_with_counts", "per_sample_grads", "poisson_batches", "privatize", "update_z",
]
