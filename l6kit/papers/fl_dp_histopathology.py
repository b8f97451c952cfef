"""FL + DP for histopathology — Federated learning and differential privacy for medical image analysis
(Adnan, Kalra, Cresswell, Taylor, Tizhoosh; Scientific Reports 2022).

The paper's configuration per profile, what the paper reports (qualitatively: no per-setting numbers were
retrieved), and the experiment functions the notebook ``notebooks/fl-dp-histopathology.ipynb`` calls. The
attention-MIL model, the digit-bag stand-in and the TCGA tile-feature reader live in
:mod:`l6kit.privacy.mil`; FedAvg in :mod:`l6kit.privacy.federated`; per-bag clipping, noise and the opacus
accountant in :mod:`l6kit.privacy.dp`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from l6kit import claims, data, profiles, viz
from l6kit.privacy import mil
from l6kit.privacy.dp import DPSGD, epsilon_for, fit_private
from l6kit.privacy.federated import fedavg
from l6kit.train import fit

SLUG = "fl-dp-histopathology"
TITLE = "Federated learning and differential privacy for medical image analysis"
SPLITS = ("iid", "non-iid")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the reproduction. The paper's exact hyper-parameters were not retrieved: defaults are
    sensible values for attention-MIL on tile features; profiles change the data.

    Attributes:
        profile: ci | laptop | paper (set by :func:`config`). seed: seeds data, models and DP noise.
        device: unused by the tiny ``ci`` models (kept for the template; training runs on the CPU).
        features_path: ``paper``: folder of TCGA tile features (layout: :data:`l6kit.privacy.mil.TCGA_MANUAL`).
        max_tiles: ``paper``: tiles sampled per slide. test_frac: ``paper``: held-out share of slides.
        n_sites: hospitals (clients). bags_per_site: ``ci`` bags (slides) per hospital. test_bags: ``ci``
            common test bags. bag_size: ``ci`` instances per bag. target: ``ci`` key digit ("tumour" tile).
        min_key: ``ci`` a bag is positive iff it holds >= min_key key instances.
        hidden, attn_dim: attention-MIL sizes. lr: Adam learning rate. batch_size: bags per batch.
        epochs: centralized / single-site epochs. rounds: FedAvg rounds (rounds x local_epochs = epochs, an equal
            budget). local_epochs: local passes per round.
        dp_rounds, dp_local_epochs, dp_bags_per_site, dp_lr, dp_batch_size: the DP sweep's FedAvg rounds,
            local passes, hospital size (DP needs many bags per hospital), SGD rate and expected Poisson batch.
        max_norm: per-bag clipping bound C. sigmas: noise multipliers of the DP sweep (0 = clipping only,
            epsilon = inf); epsilon is measured for each. delta: delta of (epsilon, delta).
        fed_tolerance: allowed gap federated vs centralized accuracy (claim).
    """

    profile: str = "paper"
    seed: int = 0
    device: str = "auto"
    features_path: str = ""
    max_tiles: int = 256
    test_frac: float = 0.2
    n_sites: int = 5
    bags_per_site: int = 60
    test_bags: int = 400
    bag_size: int = 8
    target: int = 7
    min_key: int = 2
    hidden: int = 128
    attn_dim: int = 64
    lr: float = 1e-2
    batch_size: int = 16
    epochs: int = 40
    rounds: int = 20
    dp_rounds: int = 15
    local_epochs: float = 2.0
    dp_local_epochs: float = 1.0
    dp_bags_per_site: int = 300
    dp_lr: float = 4.0
    dp_batch_size: int = 75
    max_norm: float = 1.0
    sigmas: tuple[float, ...] = (0.0, 0.7, 1.5, 3.0)
    delta: float = 1e-3
    fed_tolerance: float = 0.03


PROFILES: dict[str, dict[str, Any]] = {
    "ci": dict(hidden=32, attn_dim=16),
    "laptop": dict(hidden=32, attn_dim=16, n_sites=8, bags_per_site=100, test_bags=1000, dp_rounds=30,
                   sigmas=(0.0, 0.4, 0.6, 1.0, 1.5, 2.0, 4.0)),
    "paper": {},
}

# No per-setting numbers were retrieved (only the abstract was read): the claims are the abstract's.
PAPER: dict[str, str] = {
    "fed_vs_central": "distributed training achieves similar performance to conventional training (abstract)",
    "fed_vs_single": "studied via number and size of hospitals; per-site numbers not retrieved [UNVERIFIED]",
    "dp": "similar performance with strong privacy guarantees (abstract)",
    "noniid": "IID vs non-IID studied; non-IID harder [UNVERIFIED]",
}


def config(profile: str = "ci", **overrides: Any) -> Config:
    """The configuration for ``profile`` with ``overrides``; raises ``ValueError`` on unknown names/values."""
    cfg = profiles.resolve(Config(), PROFILES, profile, **overrides)
    if cfg.n_sites < 2:
        raise ValueError(f"n_sites must be >= 2, got {cfg.n_sites}")
    if any(s < 0 for s in cfg.sigmas):
        raise ValueError(f"sigmas must be >= 0, got {cfg.sigmas}")
    if not 1 <= cfg.min_key <= cfg.bag_size:
        raise ValueError(f"min_key must be in 1..bag_size, got {cfg.min_key}")
    return cfg


@dataclasses.dataclass
class Data:
    """Hospitals under both splits and one common test set. ``sites[split]`` is a list of :class:`mil.Bags`
    (small hospitals, for the non-private comparison); ``dp_sites[split]`` the larger hospitals of the DP
    sweep (the same as ``sites`` for real data)."""

    sites: dict[str, list[mil.Bags]]
    test: mil.Bags
    in_dim: int
    dp_sites: dict[str, list[mil.Bags]]


def load_data(cfg: Config) -> Data:
    """``ci``/``laptop``: digit bags (:func:`mil.hospital_splits`); ``paper``: TCGA tile features."""
    if cfg.profile == "paper":
        return load_tcga(cfg)
    digits = data.load("digits", "ci")
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(digits))
    cut = int(0.6 * len(perm))                               # disjoint image pools for training and test bags
    X, y = digits.flat(), digits.labels
    kw = dict(bag_size=cfg.bag_size, target=cfg.target, min_key=cfg.min_key)
    pool = X[perm[:cut]], y[perm[:cut]]
    sites = {s: mil.hospital_splits(*pool, cfg.n_sites, cfg.bags_per_site, s, rng=rng, **kw) for s in SPLITS}
    dp_sites = {s: mil.hospital_splits(*pool, cfg.n_sites, cfg.dp_bags_per_site, s, rng=rng, **kw) for s in SPLITS}
    test = mil.make_digit_bags(X[perm[cut:]], y[perm[cut:]], cfg.test_bags, rng=rng, **kw)
    return Data(sites, test, X.shape[1], dp_sites)


def load_tcga(cfg: Config) -> Data:
    """Slides from ``cfg.features_path``: a stratified held-out test set; non-IID hospitals = the real tissue
    source sites (grouped into ``n_sites`` by size, round robin); IID = the same slides shuffled evenly."""
    slides = data.load(mil.SOURCE, "paper", root=None) if not cfg.features_path else \
        mil.read_tile_features(cfg.features_path)
    rng = np.random.default_rng(cfg.seed)
    bags = mil.pad_bags(slides, cfg.max_tiles, rng)
    test_idx = np.concatenate([rng.permutation(np.flatnonzero(slides.labels == c))[
        :int(round(cfg.test_frac * (slides.labels == c).sum()))] for c in np.unique(slides.labels)])
    train_idx = np.setdiff1d(np.arange(len(bags)), test_idx)
    order = np.argsort(-np.bincount(slides.sites[train_idx]))               # site codes, largest first
    hospital = np.empty(len(order), dtype=np.int64)
    hospital[order] = np.arange(len(order)) % cfg.n_sites
    site_of = hospital[slides.sites[train_idx]]
    shuffled = rng.permutation(len(train_idx)) % cfg.n_sites
    sites = {"non-iid": [bags.subset(train_idx[site_of == k]) for k in range(cfg.n_sites)],
             "iid": [bags.subset(train_idx[shuffled == k]) for k in range(cfg.n_sites)]}
    sites = {s: [b for b in hospitals if len(b)] for s, hospitals in sites.items()}     # fewer codes than sites
    return Data(sites, bags.subset(test_idx), bags.x.shape[-1], sites)


def new_model(cfg: Config, d: Data) -> mil.AttentionMIL:
    """A freshly initialised attention-MIL model (same init for every method of one seed)."""
    torch.manual_seed(cfg.seed)
    masked = cfg.profile == "paper"                          # padded TCGA bags carry their mask as a channel
    return mil.AttentionMIL(d.in_dim, cfg.hidden, cfg.attn_dim, mask_channel=masked)


def inputs(bags: mil.Bags, model: mil.AttentionMIL) -> torch.Tensor:
    """The model's input tensor for ``bags`` (mask packed as a channel when the model expects it)."""
    return mil.pack_mask(bags.x, bags.mask) if model.mask_channel else bags.x


def train_plain(cfg: Config, model: mil.AttentionMIL, bags: mil.Bags, epochs: float, seed: int,
                test: mil.Bags | None = None) -> list[float]:
    """Non-private training with :func:`l6kit.train.fit` (Adam, mini-batches of bags).

    Returns:
        Test accuracy after every epoch (empty when ``test`` is None).
    """
    loader = DataLoader(TensorDataset(inputs(bags, model), bags.y), batch_size=cfg.batch_size, shuffle=True)
    curve: list[float] = []
    cb = [lambda s: curve.append(mil.accuracy(s["model"], test))] if test is not None else []
    fit(model, loader, epochs=max(int(round(epochs)), 1), lr=cfg.lr, device="cpu", seed=seed, callbacks=cb,
        progress=False)
    return curve


def dp_local_update(cfg: Config, model: mil.AttentionMIL, bags: mil.Bags, sigma: float,
                    generator: torch.Generator) -> int:
    """One hospital's local DP training (Abadi et al. 2016): Poisson batches of bags, per-*bag* gradients
    clipped to ``cfg.max_norm``, Gaussian noise ``sigma * max_norm`` on the sum (:func:`privatize`), then
    Adam on the noisy mean gradient (post-processing, no extra privacy cost).

    Returns:
        The number of DP steps taken (for the accountant).
    """
    q = min(cfg.dp_batch_size / len(bags), 1.0)
    opt = DPSGD(model, cfg.dp_lr, cfg.max_norm, sigma, q, delta=cfg.delta, generator=generator, n_data=len(bags))
    x = inputs(bags, model)
    fit_private(opt, x, bags.y, mil.per_bag_loss, epochs=cfg.dp_local_epochs, generator=generator, progress=False)
    steps = opt.steps
    return steps


def run_federated(cfg: Config, d: Data, split: str, sigma: float | None = None,
                  progress: bool | None = None) -> dict[str, Any]:
    """FedAvg over the hospitals of ``split`` (:func:`l6kit.privacy.federated.fedavg`, weights = site sizes).

    ``sigma=None``: non-private local training (:func:`train_plain`); else DP local training with noise
    multiplier ``sigma`` (0 = clipping only).

    Returns:
        ``{"model", "accuracy", "curve" (test accuracy per round), "epsilon" (max over hospitals; inf
        without noise; NaN without DP)}``.
    """
    model, curve = new_model(cfg, d), []
    sites = d.sites[split] if sigma is None else d.dp_sites[split]
    gens = [torch.Generator().manual_seed(cfg.seed * 1009 + k) for k in range(len(sites))]
    steps = [0] * len(sites)

    def local(m: mil.AttentionMIL, k: int, r: int) -> None:
        if sigma is None:
            train_plain(cfg, m, sites[k], cfg.local_epochs, seed=cfg.seed * 1000 + r * 50 + k)
        else:
            steps[k] += dp_local_update(cfg, m, sites[k], sigma, gens[k])

    rounds = cfg.rounds if sigma is None else cfg.dp_rounds
    bar = tqdm(total=rounds, disable=profiles.progress_disabled(progress), leave=False, desc=split)
    fedavg(model, list(range(len(sites))), local, rounds, weights=[len(s) for s in sites],
           callback=lambda r, m: (curve.append(mil.accuracy(m, d.test)), bar.update()))
    bar.close()
    eps = float("nan") if sigma is None else max(site_epsilon(cfg, s, sigma, n) for s, n in zip(sites, steps, strict=True))
    return {"model": model, "accuracy": curve[-1], "curve": curve, "epsilon": eps}


def site_epsilon(cfg: Config, bags: mil.Bags, sigma: float, steps: int) -> float:
    """epsilon (at ``cfg.delta``) one hospital spent: opacus RDP accountant via :func:`epsilon_for`."""
    if sigma <= 0:
        return float("inf")
    return epsilon_for(sigma, min(cfg.dp_batch_size / len(bags), 1.0), steps, cfg.delta)


def compare_training(cfg: Config, d: Data, progress: bool | None = None) -> dict[str, Any]:
    """Non-private centralized (all hospitals pooled), single-site (each hospital alone) and federated
    (IID and non-IID) training, all evaluated on the common test set.

    Returns:
        ``{"central": acc, "central_curve", "central_model", "single": [acc per site] (IID sites),
        "federated": {split: run_federated(...)}}``.
    """
    pooled = mil.Bags.concat(d.sites["iid"])
    central = new_model(cfg, d)
    central_curve = train_plain(cfg, central, pooled, cfg.epochs, cfg.seed, d.test)
    single = []
    for k, bags in enumerate(d.sites["iid"]):
        m = new_model(cfg, d)
        train_plain(cfg, m, bags, cfg.epochs, cfg.seed * 1000 + 900 + k)
        single.append(mil.accuracy(m, d.test))
    fed = {s: run_federated(cfg, d, s, None, progress) for s in SPLITS}
    return {"central": central_curve[-1], "central_curve": central_curve, "central_model": central,
            "single": single, "federated": fed}


def epsilon_sweep(cfg: Config, d: Data, progress: bool | None = None) -> pd.DataFrame:
    """DP FedAvg for every noise multiplier in ``cfg.sigmas`` under both splits.

    Returns:
        Rows ``split, sigma, epsilon, accuracy`` (epsilon measured by the accountant; inf for sigma = 0).
    """
    rows = []
    for split in SPLITS:
        for sigma in cfg.sigmas:
            run = run_federated(cfg, d, split, sigma, progress)
            rows.append({"split": split, "sigma": sigma, "epsilon": run["epsilon"], "accuracy": run["accuracy"]})
    return pd.DataFrame(rows)


# --- claims -------------------------------------------------------------------------------------------------

def record_training_claims(book: claims.ClaimBook, cfg: Config, comp: dict[str, Any]) -> None:
    """Federated vs centralized (required: within ``cfg.fed_tolerance``), federated vs single-site (required,
    both splits) and IID vs non-IID federated (informative)."""
    fed = {s: comp["federated"][s]["accuracy"] for s in SPLITS}
    single = float(np.mean(comp["single"]))
    book.within("FedAvg (IID) accuracy close to centralized", fed["iid"], comp["central"], abs_tol=cfg.fed_tolerance,
                metric="bag accuracy, common test set", paper=PAPER["fed_vs_central"], required_at=("ci",))
    for s in SPLITS:
        book.greater(f"FedAvg ({s}) beats single-site training (mean over sites)", fed[s], single,
                     metric="bag accuracy, common test set", paper=PAPER["fed_vs_single"], required_at=("ci",))
    book.greater("FedAvg IID > FedAvg non-IID", fed["iid"], fed["non-iid"], metric="bag accuracy",
                 paper=PAPER["noniid"], required_at=(),
                 note="the stand-in's non-IID shift (label mix + stain) is mild; see Limits")


def record_dp_claims(book: claims.ClaimBook, cfg: Config, sweep: pd.DataFrame) -> None:
    """Per split: clipping-only (epsilon = inf) beats the strongest privacy tested (required), and the
    strongest privacy keeps at least 80 % of the clipping-only accuracy (informative "graceful")."""
    for split in SPLITS:
        part = sweep[sweep["split"] == split].sort_values("sigma")
        top, low = part.iloc[0], part.iloc[-1]
        book.greater(f"DP FedAvg ({split}): eps=inf more accurate than eps={low['epsilon']:.1f}", top["accuracy"],
                     low["accuracy"], metric="bag accuracy", paper=PAPER["dp"], required_at=("ci",))
        book.greater(f"DP FedAvg ({split}) at eps={low['epsilon']:.1f} keeps > 80% of eps=inf accuracy",
                     low["accuracy"], top["accuracy"], factor=0.8, metric="bag accuracy", paper=PAPER["dp"],
                     required_at=())


def record_attention_claim(book: claims.ClaimBook, att: dict[str, float]) -> None:
    """Attention finds the key instances: the most attended instance of a positive bag is a key one more than
    twice as often as uniform attention would put weight on key instances (required)."""
    book.greater("attention's top instance is a key instance (vs chance)", att["top_is_key"], att["chance"],
                 factor=2.0, metric="share of positive test bags", paper="attention localises key tiles "
                 "(Ilse et al. 2018)", required_at=("ci",))


def results_table(comp: dict[str, Any], sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per training setting: method, split, epsilon, accuracy on the common test set."""
    rows = [{"method": "centralized", "split": "pooled", "epsilon": float("nan"), "accuracy": comp["central"]},
            {"method": "single-site (mean)", "split": "iid", "epsilon": float("nan"),
             "accuracy": float(np.mean(comp["single"]))}]
    rows += [{"method": "FedAvg", "split": s, "epsilon": float("nan"), "accuracy": comp["federated"][s]["accuracy"]}
             for s in SPLITS]
    rows += [{"method": f"DP FedAvg (sigma={r.sigma:g})", "split": r.split, "epsilon": r.epsilon,
              "accuracy": r.accuracy} for r in sweep.itertuples()]
    return pd.DataFrame(rows).round(3)


# --- figures ------------------------------------------------------------------------------------------------

def site_table(d: Data) -> pd.DataFrame:
    """Per hospital and split: bags, share of positive bags, mean and std of pixel intensity (the "stain")."""
    return pd.DataFrame([{"split": s, "site": k, "bags": len(b), "positive share": float(b.y.float().mean()),
                          "mean intensity": float(b.x[b.mask].mean()), "intensity std": float(b.x[b.mask].std())}
                         for s in SPLITS for k, b in enumerate(d.sites[s])]).round(3)


def accuracy_figure(comp: dict[str, Any]) -> go.Figure:
    """Bars: centralized, each single site, their mean, and FedAvg IID / non-IID on the common test set."""
    labels = ["centralized"] + [f"site {k}" for k in range(len(comp["single"]))] + ["single-site mean"] + \
        [f"FedAvg {s}" for s in SPLITS]
    values = [comp["central"], *comp["single"], float(np.mean(comp["single"]))] + \
        [comp["federated"][s]["accuracy"] for s in SPLITS]
    fig = viz.bar_with_errors(labels, values, title="Test accuracy: centralized vs single-site vs federated",
                              ylabel="bag accuracy (common test set)", reference=comp["central"],
                              reference_label="centralized")
    fig.update_yaxes(range=[0.4, 1.0])
    return fig


def epsilon_figure(sweep: pd.DataFrame) -> go.Figure:
    """Accuracy vs measured epsilon per split (log x); eps = inf (clipping only) as a dashed line per split."""
    fig = go.Figure()
    for i, (split, part) in enumerate(sweep.groupby("split", sort=False)):
        finite = part[np.isfinite(part["epsilon"])].sort_values("epsilon")
        color = viz.PALETTE[i]
        fig.add_trace(go.Scatter(x=finite["epsilon"], y=finite["accuracy"], mode="lines+markers", name=split,
                                 line_color=color))
        for acc in part[~np.isfinite(part["epsilon"])]["accuracy"]:
            fig.add_hline(y=acc, line_dash="dash", line_color=color, annotation_text=f"{split}: eps = inf")
    fig.update_xaxes(type="log")
    fig.update_layout(title="DP FedAvg: accuracy vs privacy budget", xaxis_title="epsilon (delta fixed)",
                      yaxis_title="bag accuracy", legend_title="split")
    return fig


def curves_frame(cfg: Config, comp: dict[str, Any]) -> pd.DataFrame:
    """Long frame ``setting, epochs, accuracy``: centralized per epoch, FedAvg per round (x local epochs)."""
    rows = [{"setting": "centralized", "epochs": e + 1, "accuracy": a} for e, a in enumerate(comp["central_curve"])]
    rows += [{"setting": f"FedAvg {s}", "epochs": (r + 1) * cfg.local_epochs, "accuracy": a}
             for s in SPLITS for r, a in enumerate(comp["federated"][s]["curve"])]
    return pd.DataFrame(rows)


def attention_figure(model: mil.AttentionMIL, bags: mil.Bags, n_bags: int = 4) -> go.Figure:
    """The instances of the first ``n_bags`` positive bags (one row each) captioned with their attention
    weight; key instances are marked with a star. Instances must be 8x8 images (the ``ci`` stand-in)."""
    pos = torch.nonzero(bags.y == 1).flatten()[:n_bags]
    sub = bags.subset(pos)
    with torch.no_grad():
        a, _ = model.attention(inputs(sub, model), None if model.mask_channel else sub.mask)
    m = sub.x.shape[1]
    images = (sub.x.reshape(-1, 8, 8).numpy() * 255).astype(np.uint8)
    titles = [f"{'★ ' if k else ''}{w:.2f}" for k, w in zip(sub.key.flatten().tolist(), a.flatten().tolist(),
                                                                     strict=True)]
    return viz.image_grid(images, titles, cols=m, title="Attention over the instances of positive test bags "
                          "(one bag per row; ★ = key instance)")
