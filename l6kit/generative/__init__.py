"""Generative models for data on manifolds: autoencoders, normalizing flows, two-step models and their metrics.

Shared by the manifold papers of the book (two-step, rectangular flows, conformal embedding flows, TR0N):

* :mod:`~l6kit.generative.autoencoders` — :class:`Autoencoder`, :class:`VAE` (learned decoder variance);
* :mod:`~l6kit.generative.flows` — :class:`Flow`, :class:`AffineCoupling`, :class:`ActNorm`, :class:`Permutation`,
  :func:`realnvp`; :mod:`~l6kit.generative.splines` — rational-quadratic splines, :func:`spline_flow`;
* :mod:`~l6kit.generative.two_step` — :class:`TwoStep` with :class:`GaussianMixtureDensity` or
  :class:`FlowDensity` on the codes, :func:`decoder_log_volume`;
* :mod:`~l6kit.generative.metrics` — :func:`circular_wasserstein1`, :func:`distance_from_circle`,
  :func:`frechet_distance`, :func:`polar_decomposition`;
* :mod:`~l6kit.generative.layers` — :func:`mlp`, :class:`TensorBatches` (a fast in-memory loader for
  :func:`l6kit.train.fit`);
* :mod:`~l6kit.generative.injective` — the injective-flow head :class:`InjectiveFlow` (rectangular flows and
  conformal embedding flows) with exact and Hutchinson + CG estimators of 1/2 log det(J^T J);
  :mod:`~l6kit.generative.conformal` — conformal layers with analytic log-determinants;
* :mod:`~l6kit.generative.tr0n` — TR0N's translator, classifier energy and Langevin sampler.

Every trainable model exposes ``loss(batch)`` for :func:`l6kit.train.fit`.
"""

from l6kit.generative.autoencoders import VAE, Autoencoder
from l6kit.generative.conformal import ConformalEmbedding, conformal_embedding, special_conformal
from l6kit.generative.flows import ActNorm, AffineCoupling, Flow, Permutation, StandardNormal, realnvp
from l6kit.generative.injective import (
    DiagonalGaussian,
    InjectiveFlow,
    PaddedFlow,
    exact_half_logdet,
    hutchinson_half_logdet,
    hutchinson_surrogate,
)
from l6kit.generative.layers import TensorBatches, batch_tensor, mlp
from l6kit.generative.metrics import (
    angles,
    as_numpy,
    circular_wasserstein1,
    distance_from_circle,
    frechet_distance,
    polar_decomposition,
)
from l6kit.generative.splines import ElementwiseSpline, SplineCoupling, rational_quadratic_spline, spline_flow
from l6kit.generative.two_step import FlowDensity, GaussianMixtureDensity, TwoStep, decoder_log_volume

__all__ = ["ConformalEmbedding", "DiagonalGaussian", "InjectiveFlow", "PaddedFlow", "conformal_embedding",
           "exact_half_logdet", "hutchinson_half_logdet", "hutchinson_surrogate", "special_conformal",
           "VAE", "ActNorm", "AffineCoupling", "Autoencoder", "ElementwiseSpline", "Flow", "FlowDensity",
           "GaussianMixtureDensity", "Permutation", "SplineCoupling", "StandardNormal", "TensorBatches",
           "TwoStep", "angles", "batch_tensor", "circular_wasserstein1", "decoder_log_volume",
           "distance_from_circle", "frechet_distance", "mlp", "polar_decomposition", "as_numpy", "rational_quadratic_spline", "realnvp",
           "spline_flow"]
