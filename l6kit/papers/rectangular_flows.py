"""Rectangular flows — Rectangular Flows for Manifold Learning (Caterini, Loaiza-Ganem, Pleiss, Cunningham,
NeurIPS 2021).

The paper's configuration per profile and the experiment functions the notebook
``notebooks/rectangular-flows.ipynb`` calls. The injective-flow head and the two log-determinant estimators live in
:mod:`l6kit.generative.injective`; the von Mises circle set-up, its metrics and the image loading are the
two-step page's (:func:`l6kit.papers.two_step.circle_data`, ``evaluate``, ``true_angle_pdf``, ``load_images``,
which read only the config fields both pages share); the figures in :mod:`l6kit.generative.figures` (samples) and
:mod:`l6kit.generative.rnf_figures` (training curves, densities along the circle, estimator agreement).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from l6kit import claims, data, profiles
from l6kit.generative import (
    GaussianMixtureDensity,
    TensorBatches,
    TwoStep,
    frechet_distance,
    realnvp,
)
from l6kit.generative.injective import (
    DiagonalGaussian,
    InjectiveFlow,
    PaddedFlow,
    exact_half_logdet,
    hutchinson_surrogate,
    jacobian_columns,
)
from l6kit.papers.two_step import circle_data, evaluate, load_images, true_angle_pdf  # noqa: F401 (re-used)
from l6kit.train import fit

SLUG = "rectangular-flows"
TITLE = "Rectangular Flows for Manifold Learning"


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the rectangular-flows reproduction.

    The circle follows the official repository's von Mises configuration where it has one (kappa = 1, 10,000
    points, 5 RealNVP layers, beta = 50 and lr 1e-3 for ML, up to 5,000 epochs); the widths, the clip and the
    smaller ci sizes are ours. Both models share the prior (a learnable diagonal Gaussian) and every setting
    except how 1/2 log det(J^T J) enters.

    Attributes:
        profile, seed, device: the run (set by :func:`config`).
        n_train, kappa, loc: the von Mises training set on the unit circle.
        n_samples, n_reference: samples drawn per model; fresh true angles they are compared with.
        flow_layers, flow_hidden: the RealNVP h of the embedding g = h o pad (R^1 -> R^2).
        beta, lr, batch_size, epochs, grad_clip: training (the same for ML and TS).
        gmm_components: the richer latent density fitted to TS's codes afterwards (TS + GMM).
        curve_points: evaluations during training (the training curves).
        est_d, est_D, est_points, est_probes, est_repeats: the estimator check on a random injective
            RealNVP R^est_d -> R^est_D in float64: relative error of the Hutchinson + CG gradient averaged over
            each number of probes in ``est_probes``, repeated ``est_repeats`` times.
        image_datasets, image_latent, image_layers, image_hidden, image_epochs, image_lr, image_batch,
            image_per_class: the image experiment (ML vs TS injective flows, d = image_latent), run at
            ``paper`` only.
    """

    profile: str = "paper"
    seed: int = 0
    device: str = "auto"
    n_train: int = 10_000
    kappa: float = 1.0
    loc: float = math.pi / 2
    n_samples: int = 5000
    n_reference: int = 20_000
    flow_layers: int = 5
    flow_hidden: tuple[int, ...] = (32, 32)
    beta: float = 50.0
    lr: float = 1e-3
    batch_size: int = 100
    epochs: int = 1000
    grad_clip: float = 10.0
    gmm_components: int = 10
    curve_points: int = 10
    est_d: int = 2
    est_D: int = 4
    est_points: int = 4
    est_probes: tuple[int, ...] = (1, 4, 16, 64, 256, 1024)
    est_repeats: int = 5
    image_datasets: tuple[str, ...] = ("mnist", "fashion-mnist")
    image_latent: int = 20
    image_layers: int = 8
    image_hidden: tuple[int, ...] = (512, 512)
    image_epochs: int = 100
    image_lr: float = 1e-4
    image_batch: int = 128
    image_per_class: int = 6000


PROFILES: dict[str, dict[str, Any]] = {
    "ci": dict(n_train=1000, n_samples=2000, epochs=60, curve_points=6, est_points=3,
               est_probes=(1, 4, 16, 64, 256), est_repeats=3, image_datasets=()),
    "laptop": dict(n_train=2000, epochs=300, image_datasets=()),
    "paper": {},
}

# What the paper and its repository say that this page can check.
PAPER: dict[str, str] = {
    "circle": "ML runs 'consistently perform better than the baseline [TS], capturing the density more often than "
              "not' (von Mises circle, official README)",
    "estimator": "the Hutchinson + CG gradient is an unbiased estimate of the exact gradient (Section 4.2)",
    "images": "ML beats TS in FID on MNIST and FMNIST (Table 2; numbers not retrieved)",
}


def config(profile: str = "ci", **overrides: Any) -> Config:
    """The configuration for ``profile`` with ``overrides``; raises ``ValueError`` on unknown names/values."""
    cfg = profiles.resolve(Config(), PROFILES, profile, **overrides)
    for name in cfg.image_datasets:
        data.get(name)                                  # unknown data set -> ValueError listing the known
    if cfg.kappa < 0 or cfg.beta < 0 or not 0 < cfg.est_d < cfg.est_D:
        raise ValueError(f"need kappa >= 0, beta >= 0, 0 < est_d < est_D; got {cfg.kappa}, {cfg.beta}, "
                         f"{cfg.est_d}, {cfg.est_D}")
    return cfg


def _progress(cfg: Config) -> bool | None:
    return False if cfg.profile == "ci" else None


# -- the estimators -------------------------------------------------------------------------------------------
def random_embedding(d: int, D: int, seed: int, dtype=torch.float64) -> PaddedFlow:
    """A random injective map R^d -> R^D: a 3-layer RealNVP (moved off its identity initialization) after pad."""
    torch.manual_seed(seed)
    flow = realnvp(D, n_layers=3, hidden=(16,)).to(dtype)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return PaddedFlow(flow, d, D)


def _flat_grad(value: torch.Tensor, params) -> torch.Tensor:
    return torch.cat([g.flatten() for g in torch.autograd.grad(value.sum(), params)])


def estimator_agreement(cfg: Config) -> pd.DataFrame:
    """Relative error ||g_hat - g|| / ||g|| of the Hutchinson + CG gradient of 1/2 log det(J^T J) (summed over
    ``est_points`` latent points) against the exact gradient, for each number of probes K in ``est_probes``.

    Returns:
        Rows ``K, repeat, rel_error``.
    """
    emb = random_embedding(cfg.est_d, cfg.est_D, cfg.seed)
    params = list(emb.parameters())
    z = torch.randn(cfg.est_points, cfg.est_d, dtype=torch.float64, generator=torch.Generator().manual_seed(cfg.seed))
    exact = _flat_grad(exact_half_logdet(emb, z), params)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    rows = []
    for k in cfg.est_probes:
        for r in range(cfg.est_repeats):
            est = _flat_grad(hutchinson_surrogate(emb, z, n_probes=k, generator=gen), params)
            rows.append({"K": k, "repeat": r, "rel_error": float((est - exact).norm() / exact.norm())})
    return pd.DataFrame(rows)


def probe_slope(table: pd.DataFrame) -> float:
    """Slope of log(mean relative error) against log K (Monte Carlo averaging predicts -1/2)."""
    mean = table.groupby("K")["rel_error"].mean()
    return float(np.polyfit(np.log(mean.index.to_numpy(float)), np.log(mean.to_numpy()), 1)[0])


def gram_condition(cfg: Config) -> float:
    """Largest condition number of J^T J over the estimator check's latent points (Hutchinson's variance grows
    with it)."""
    emb = random_embedding(cfg.est_d, cfg.est_D, cfg.seed)
    z = torch.randn(cfg.est_points, cfg.est_d, dtype=torch.float64, generator=torch.Generator().manual_seed(cfg.seed))
    with torch.no_grad():
        jac = jacobian_columns(emb, z)
    return float(torch.linalg.cond(jac.transpose(-1, -2) @ jac).max())


def record_estimator_claims(book: claims.ClaimBook, cfg: Config, table: pd.DataFrame) -> None:
    """Required: the error of the averaged estimate falls at the Monte Carlo rate K^(-1/2) (slope within 0.2 of
    -1/2: no bias floor). Informative: at K_max probes it is within 15 % of the exact gradient."""
    slope = probe_slope(table)
    book.within("Hutchinson + CG is unbiased: its error falls like K^(-1/2)", slope, -0.5, abs_tol=0.2,
                metric="slope of log relative error vs log K", paper=PAPER["estimator"],
                required_at=("ci", "laptop", "paper"))
    k = max(cfg.est_probes)
    err = float(table[table["K"] == k]["rel_error"].mean())
    book.record(f"Hutchinson + CG gradient ≈ exact gradient (K = {k} probes, d={cfg.est_d}, D={cfg.est_D})",
                metric="relative gradient error", measured=err, comparator="x < 0.15", holds=err < 0.15,
                paper=PAPER["estimator"], required_at=(),
                note="the variance grows with the condition number of J^T J; see gram_condition")


# -- the circle -----------------------------------------------------------------------------------------------
def make_model(cfg: Config, logdet: str) -> InjectiveFlow:
    """The circle model g = h o pad (R^1 -> R^2) with a learnable Gaussian prior; ``logdet`` "exact" is ML,
    "none" is TS (reconstruction trains the manifold, the prior fits the codes)."""
    torch.manual_seed(cfg.seed)
    emb = PaddedFlow(realnvp(2, cfg.flow_layers, cfg.flow_hidden), 1, 2)
    return InjectiveFlow(emb, DiagonalGaussian(1), d=1, D=2, logdet=logdet, beta=cfg.beta)


def manifold_log_density(model: InjectiveFlow, x: torch.Tensor) -> torch.Tensor:
    """log p_Z(z) - 1/2 log det(J^T J) at z = g^dagger(x), always with the exact volume term (also for TS)."""
    z = model.encode(x)
    return (model.prior.log_prob(z) - exact_half_logdet(model.decode, z)).detach()


def train_circle_model(cfg: Config, circle: dict[str, Any], logdet: str) -> dict[str, Any]:
    """Train one circle model with :func:`l6kit.train.fit`, evaluating it ``cfg.curve_points`` times.

    Returns:
        ``{"model", "history", "curve"}``; ``curve`` rows: ``epoch, off_manifold, w1, loglik`` (``loglik``: mean
        exact log-density on the training points, nats per unit length).
    """
    model = make_model(cfg, logdet)
    device = profiles.resolve_device(cfg.device)
    X = circle["X"].to(device)
    every, rows = max(1, cfg.epochs // cfg.curve_points), []

    def log(state: dict[str, Any]) -> None:
        if state["epoch"] % every == 0 or state["epoch"] == cfg.epochs:
            model.eval()
            s = model.sample(cfg.n_samples, generator=torch.Generator().manual_seed(cfg.seed))
            rows.append({"epoch": state["epoch"], **evaluate(s.cpu(), circle["reference"]),
                         "loglik": float(manifold_log_density(model, X).mean())})

    log({"epoch": 0})
    history = fit(model, TensorBatches(X, batch_size=cfg.batch_size), epochs=cfg.epochs, lr=cfg.lr, device=device,
                  seed=cfg.seed, grad_clip=cfg.grad_clip, amp=False, callbacks=[log], progress=_progress(cfg),
                  desc=f"circle {logdet}")
    return {"model": model.eval(), "history": history, "curve": pd.DataFrame(rows)}


def circle_models(cfg: Config, circle: dict[str, Any]) -> dict[str, Any]:
    """ML (exact volume term), TS (same prior, term ignored) and TS + GMM (a 10-component mixture refitted to
    TS's codes), with their samples.

    Returns:
        ``{"runs": {"ML", "TS"}: train_circle_model(...), "ts_gmm": TwoStep, "samples": {name: (n, 2)}}``.
    """
    runs = {"ML": train_circle_model(cfg, circle, "exact"), "TS": train_circle_model(cfg, circle, "none")}
    ts_gmm = TwoStep(runs["TS"]["model"], GaussianMixtureDensity(cfg.gmm_components, seed=cfg.seed)).fit(circle["X"])
    gen = torch.Generator().manual_seed(cfg.seed)
    samples = {"ML (Gaussian prior)": runs["ML"]["model"].sample(cfg.n_samples, generator=gen).cpu(),
               "TS (same Gaussian prior)": runs["TS"]["model"].sample(cfg.n_samples, generator=gen).cpu(),
               f"TS + {cfg.gmm_components}-component GMM": ts_gmm.sample(cfg.n_samples, generator=gen).cpu()}
    return {"runs": runs, "ts_gmm": ts_gmm, "samples": samples}


def circle_table(circle: dict[str, Any], models: dict[str, Any]) -> pd.DataFrame:
    """One row per model plus the training-points reference: ``off_manifold`` and ``w1``."""
    rows = [{"model": name, **evaluate(s, circle["reference"])} for name, s in models["samples"].items()]
    rows.append({"model": "reference: the training points themselves", "off_manifold": 0.0,
                 "w1": circle["train_w1"]})
    return pd.DataFrame(rows).set_index("model")


def density_along_circle(cfg: Config, models: dict[str, Any], n_grid: int = 361) -> pd.DataFrame:
    """Each model's density on its learned manifold at the projections of points on the true circle, beside the
    true von Mises density (per unit arc length; comparable where the learned curve lies on the circle).

    Returns:
        Columns ``theta, true`` and one per model.
    """
    theta = np.linspace(-np.pi, np.pi, n_grid)
    x = torch.tensor(np.stack([np.cos(theta), np.sin(theta)], 1), dtype=torch.float32)
    out = {"theta": theta, "true": true_angle_pdf(cfg)(theta)}
    for name, key in (("ML (Gaussian prior)", "ML"), ("TS (same Gaussian prior)", "TS")):
        model = models["runs"][key]["model"]
        out[name] = torch.exp(manifold_log_density(model, x.to(next(model.parameters()).device))).cpu().numpy()
    ts_gmm = models["ts_gmm"]
    out[f"TS + {cfg.gmm_components}-component GMM"] = torch.exp(ts_gmm.log_prob(
        x.to(ts_gmm._device())).detach()).cpu().numpy()
    return pd.DataFrame(out)


def record_circle_claims(book: claims.ClaimBook, cfg: Config, circle: dict[str, Any], table: pd.DataFrame) -> None:
    """Required: W1(ML) < W1(TS) with the same prior. Informative: ML's samples closer to the circle than TS's;
    TS + GMM within 1.5x of ML's W1 (the baseline catches up with a richer latent density)."""
    w1, off = table["w1"], table["off_manifold"]
    gmm = f"TS + {cfg.gmm_components}-component GMM"
    book.greater("ML beats TS with the same Gaussian prior (W1 of angles)", w1["TS (same Gaussian prior)"],
                 w1["ML (Gaussian prior)"], metric="circular W1 of angles [TS, ML]", paper=PAPER["circle"],
                 required_at=("ci", "laptop", "paper"))
    book.greater("ML samples lie closer to the circle than TS samples", off["TS (same Gaussian prior)"],
                 off["ML (Gaussian prior)"], metric="mean distance from the circle [TS, ML]", paper=None,
                 required_at=(), note="TS learns the manifold from reconstruction alone, which can suffice")
    book.greater("TS catches up with a richer latent density: W1(TS + GMM) < 1.5 × W1(ML)",
                 1.5 * w1["ML (Gaussian prior)"], w1[gmm], metric="circular W1 [1.5 × ML, TS + GMM]",
                 paper=None, required_at=(), note="the volume term matters when the prior is too simple")


def density_l1(table: pd.DataFrame) -> pd.Series:
    """L1 distance, integral of |p_model(theta) - p_true(theta)| d theta, of each model's density along the circle
    (from :func:`density_along_circle`) to the truth: 0 is perfect, 2 is disjoint."""
    theta = table["theta"].to_numpy()
    return pd.Series({c: float(np.trapezoid(np.abs(table[c] - table["true"]), theta))
                      for c in table.columns if c not in ("theta", "true")}, name="L1 to the true density")


def record_density_claims(book: claims.ClaimBook, l1: pd.Series) -> None:
    """Informative: ML's density along the circle is closer (L1) to the truth than TS's with the same prior."""
    book.greater("ML's density along the circle is closer to the truth than TS's", l1["TS (same Gaussian prior)"],
                 l1["ML (Gaussian prior)"], metric="L1 to the true density [TS, ML]", paper=PAPER["circle"],
                 required_at=())


def learned_manifolds(models: dict[str, Any], X: torch.Tensor, n_grid: int = 400) -> dict[str, dict[str, Any]]:
    """Each model's samples, learned curve g(z) over the training codes' range (plus 5 % each side) and its
    density per unit arc length there, for :func:`l6kit.manifold.learned.save_learned` (the manifold dashboard).

    Returns:
        model name -> ``{"samples": (m, 2), "manifold": (n_grid, 2), "density": (n_grid,)}``.
    """
    out: dict[str, dict[str, Any]] = {name: {"samples": s} for name, s in models["samples"].items()}
    names = dict(zip(("ML", "TS"), list(models["samples"])[:2], strict=True))
    for key, name in names.items():
        model = models["runs"][key]["model"]
        with torch.no_grad():
            codes = model.encode(X.to(next(model.parameters()).device))
        lo, hi = codes.min(0).values, codes.max(0).values
        z = torch.linspace(-0.05, 1.05, n_grid, device=codes.device)[:, None] * (hi - lo) + lo
        with torch.no_grad():
            curve = model.decode(z)
        out[name] |= {"manifold": curve.cpu(), "density": torch.exp(manifold_log_density(model, curve)).cpu()}
    return out


# -- images (paper profile) -----------------------------------------------------------------------------------
def image_experiment(cfg: Config, images: data.images.ImageSet, n_samples: int = 1000) -> pd.DataFrame:
    """ML vs TS injective flows R^image_latent -> R^pixels on flattened images in [0, 1] (no dequantization:
    only samples are compared, not likelihoods).

    Without Inception-v3 weights FID is not available offline; the stand-in is the Fréchet distance between
    Gaussians fitted to pixels of samples and of training images.

    Returns:
        Rows ``dataset, model, pixel_fd``.
    """
    X = torch.tensor(images.flat(), dtype=torch.float32)
    D, d, device = X.shape[1], cfg.image_latent, profiles.resolve_device(cfg.device)
    rows = []
    for name, logdet in (("ML", "exact"), ("TS", "none")):
        torch.manual_seed(cfg.seed)
        emb = PaddedFlow(realnvp(D, cfg.image_layers, cfg.image_hidden), d, D)
        model = InjectiveFlow(emb, DiagonalGaussian(d), d=d, D=D, logdet=logdet, beta=cfg.beta)
        fit(model, TensorBatches(X.to(device), batch_size=cfg.image_batch), epochs=cfg.image_epochs, lr=cfg.image_lr,
            device=device, seed=cfg.seed, grad_clip=cfg.grad_clip, amp=False, progress=_progress(cfg),
            desc=f"{images.name} {name}")
        s = model.eval().sample(n_samples, generator=torch.Generator().manual_seed(cfg.seed)).cpu()
        rows.append({"dataset": images.name, "model": name, "pixel_fd": frechet_distance(s, X[:n_samples])})
    return pd.DataFrame(rows)


def record_image_claims(book: claims.ClaimBook, cfg: Config, table: pd.DataFrame) -> None:
    """Informative: ML's pixel Fréchet distance below TS's, per data set."""
    for name, part in table.groupby("dataset", sort=False):
        fd = part.set_index("model")["pixel_fd"]
        book.greater(f"{name}: pixel FD of ML < TS", fd["TS"], fd["ML"], metric="pixel Fréchet distance [TS, ML]",
                     paper=PAPER["images"], required_at=(), note="pixel FD is not FID (no Inception offline)")


def summary_table(cfg: Config, circle: dict[str, Any], table: pd.DataFrame, est: pd.DataFrame) -> pd.DataFrame:
    """The paper's qualitative findings beside this run's numbers."""
    w1 = table["w1"]
    k = max(cfg.est_probes)
    err = est[est["K"] == k]["rel_error"].mean()
    return pd.DataFrame([
        {"finding": "ML captures the circle density better than TS", "paper": PAPER["circle"],
         "this run": f"W1: ML {w1['ML (Gaussian prior)']:.3f}, TS {w1['TS (same Gaussian prior)']:.3f} "
                     f"(training points {circle['train_w1']:.3f})"},
        {"finding": "TS with a richer latent density", "paper": "not reported",
         "this run": f"W1: TS + GMM {w1[f'TS + {cfg.gmm_components}-component GMM']:.3f}"},
        {"finding": "stochastic gradient is unbiased", "paper": PAPER["estimator"],
         "this run": f"relative error {err:.3f} at K = {k}; slope {probe_slope(est):.2f} (−0.5 expected)"},
    ]).set_index("finding")
