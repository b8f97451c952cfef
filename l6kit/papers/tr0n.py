"""TR0N — Translator Networks for 0-Shot Plug-and-Play Conditional Generation (Liu, Vouitsis, Gorti, Ba,
Loaiza-Ganem, ICML 2023).

The paper's configuration per profile and the experiment functions the notebook ``notebooks/tr0n.ipynb`` calls.
The method lives in :mod:`l6kit.generative.tr0n` (translator, synthetic pairs, energy, Langevin, metrics); the
generator is :class:`l6kit.generative.VAE`; every network is trained with :func:`l6kit.train.fit`.

At toy scale the roles of the paper are played by: G = the decoder of a VAE trained on digit images (the
"pretrained unconditional generator"), f = an MLP classifier (the "auxiliary model"), and an *independent*
evaluator (logistic regression, another seed) that judges the generated images.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from l6kit import claims, data, profiles, viz
from l6kit.generative import VAE, TensorBatches
from l6kit.generative.tr0n import (
    Classifier,
    Translator,
    class_accuracy,
    classifier_energy,
    langevin,
    per_class_accuracy,
    synthetic_pairs,
    within_class_diversity,
)
from l6kit.train import fit

SLUG = "tr0n"
TITLE = "TR0N: Translator Networks for 0-Shot Plug-and-Play Conditional Generation"


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the TR0N reproduction (class-conditional MNIST-style digits).

    The translator settings follow the official repository's recipe where it has one (10 mixture components,
    Adam, ~1e-4 on BigGAN; we use larger rates for the small MLPs); the generator, classifiers and Langevin
    settings for digits are ours (the paper's class-conditional experiments use pretrained GANs/NVAE).

    Attributes:
        profile, seed, device: as everywhere (seed drives data order, initializations and sampling).
        dataset: registry name of the images (``digits`` at ci, ``mnist`` otherwise).
        per_class: at most this many training images per class.
        latent_dim, vae_hidden, vae_epochs, vae_lr: the unconditional generator G (a VAE; G = decoder mean).
        aux_hidden, eval_hidden: the auxiliary classifier f and the independent evaluator (``()`` = linear).
        clf_epochs, clf_lr: training of both classifiers. eval_seed_offset: the evaluator's seed is
            ``seed + eval_seed_offset``.
        batch_size, grad_clip: mini-batch size and gradient-norm clip (None: off) for G and the classifiers.
        n_pairs: synthetic (c, z) pairs for the translator. soft_conditions: c = f's probabilities (True) or
            the one-hot of its argmax.
        n_components, translator_hidden, translator_epochs, translator_lr, translator_batch: the translator.
        n_per_class: generated samples per class in the evaluation.
        langevin_steps: T, the longest Langevin run. step_size, noise_std: beta*lambda/2 and sqrt(lambda).
        prior_weight: weight of ||z||^2/2 in the energy.
        compare_steps: the step budget at which the two initializations are compared.
        target_accuracy: the evaluator accuracy whose first-reaching step is compared.
    """

    profile: str = "paper"
    seed: int = 0
    device: str = "auto"
    dataset: str = "mnist"
    per_class: int = 6000
    latent_dim: int = 16
    vae_hidden: tuple[int, ...] = (512, 256)
    vae_epochs: int = 50
    vae_lr: float = 1e-3
    aux_hidden: tuple[int, ...] = (512, 256)
    eval_hidden: tuple[int, ...] = ()
    clf_epochs: int = 20
    clf_lr: float = 1e-3
    eval_seed_offset: int = 1000
    batch_size: int = 128
    grad_clip: float | None = None
    n_pairs: int = 500_000
    soft_conditions: bool = True
    n_components: int = 10
    translator_hidden: tuple[int, ...] = (256, 256)
    translator_epochs: int = 20
    translator_lr: float = 1e-3
    translator_batch: int = 512
    n_per_class: int = 200
    langevin_steps: int = 50
    step_size: float = 0.05
    noise_std: float = 0.1
    prior_weight: float = 1.0
    compare_steps: int = 10
    target_accuracy: float = 0.9


PROFILES: dict[str, dict[str, Any]] = {
    "ci": dict(dataset="digits", per_class=200, latent_dim=8, vae_hidden=(128,), vae_epochs=60, aux_hidden=(64,),
               clf_epochs=30, batch_size=100, n_pairs=40_000, translator_hidden=(128, 128), translator_epochs=15,
               translator_batch=500, translator_lr=3e-3, n_per_class=50),
    "laptop": dict(per_class=500, vae_hidden=(256, 128), vae_epochs=40, aux_hidden=(256,), n_pairs=100_000,
                   translator_epochs=15, n_per_class=100),
    "paper": {},
}

# The paper's own results are on pretrained GANs with CLIP / classifiers; none is a digit-scale number.
PAPER: dict[str, str] = {
    "translator": "the translator alone already yields conditional samples; Langevin refines them (Table 1 "
                  "ablation, 'no SGLD' row; values not retrieved)",
    "speed": "TR0N reaches better FID / CLIP scores in less sampling time than optimisation from random "
             "latents (FuseDream); zero-shot FID 10.9 on MS-COCO",
    "diversity": "translator samples stay diverse: the mixture is stochastic, unlike a deterministic inverse",
}


def config(profile: str = "ci", **overrides: Any) -> Config:
    """The configuration for ``profile`` with ``overrides``; raises ``ValueError`` on unknown names/values."""
    cfg = profiles.resolve(Config(), PROFILES, profile, **overrides)
    data.get(cfg.dataset)                               # unknown data set -> ValueError listing the known ones
    if not 0 <= cfg.compare_steps <= cfg.langevin_steps or cfg.step_size < 0 or cfg.noise_std < 0:
        raise ValueError("need 0 <= compare_steps <= langevin_steps and step_size, noise_std >= 0; got "
                         f"{cfg.compare_steps}, {cfg.langevin_steps}, {cfg.step_size}, {cfg.noise_std}")
    return cfg


def _progress(cfg: Config) -> bool | None:
    return False if cfg.profile == "ci" else None


def load_images(cfg: Config) -> data.images.ImageSet:
    """Training images for this profile: ``digits`` offline at ci, MNIST's training split otherwise."""
    digits = cfg.dataset == "digits"
    images = data.load("digits", "ci") if digits else data.load(cfg.dataset, cfg.profile, split="train")
    return images.subsample(cfg.per_class, seed=cfg.seed)


# -- the pretrained models (trained here, standing in for the paper's downloads) ----------------------------
def _train(cfg: Config, model: torch.nn.Module, batches: Any, epochs: int, lr: float, seed: int, desc: str):
    return fit(model, TensorBatches(batches, batch_size=cfg.batch_size), epochs=epochs, lr=lr, seed=seed,
               device=profiles.resolve_device(cfg.device), grad_clip=cfg.grad_clip, amp=False,
               progress=_progress(cfg), desc=desc)


def train_models(cfg: Config, images: data.images.ImageSet) -> dict[str, Any]:
    """Train the unconditional generator G (VAE), the auxiliary classifier f and the independent evaluator.

    The evaluator has another architecture (``eval_hidden``) and seed than f, so that accuracy on generated
    images is not inflated by latents that fool f in particular.

    Returns:
        ``{"vae", "aux", "evaluator"}`` (eval mode, on the config's device) and ``"histories"``.
    """
    device = profiles.resolve_device(cfg.device)
    X = torch.tensor(images.flat(), device=device)
    y = torch.tensor(images.labels, device=device)
    C = len(images.classes)
    torch.manual_seed(cfg.seed)
    vae = VAE(X.shape[1], cfg.latent_dim, cfg.vae_hidden, "relu")
    h_vae = _train(cfg, vae, X, cfg.vae_epochs, cfg.vae_lr, cfg.seed, "VAE (G)")
    torch.manual_seed(cfg.seed + 1)
    aux = Classifier(X.shape[1], C, cfg.aux_hidden)
    h_aux = _train(cfg, aux, (X, y), cfg.clf_epochs, cfg.clf_lr, cfg.seed + 1, "auxiliary f")
    eval_seed = cfg.seed + cfg.eval_seed_offset
    torch.manual_seed(eval_seed)
    evaluator = Classifier(X.shape[1], C, cfg.eval_hidden)
    h_eval = _train(cfg, evaluator, (X, y), cfg.clf_epochs, cfg.clf_lr, eval_seed, "evaluator")
    return {"vae": vae.eval(), "aux": aux.eval(), "evaluator": evaluator.eval(),
            "histories": {"VAE": h_vae, "auxiliary": h_aux, "evaluator": h_eval}}


def real_accuracies(models: dict[str, Any], images: data.images.ImageSet) -> dict[str, float]:
    """Accuracy of the auxiliary classifier and of the evaluator on the real training images."""
    X = torch.tensor(images.flat(), device=next(models["aux"].parameters()).device)
    return {name: class_accuracy(models[name].predict(X).cpu().numpy(), images.labels)
            for name in ("aux", "evaluator")}


def decoder(vae: VAE):
    """G(z): the VAE's decoder mean (unclamped, so gradients flow everywhere)."""
    return vae.decode


def train_translator(cfg: Config, models: dict[str, Any]) -> dict[str, Any]:
    """Build the synthetic pairs (c, z) = (f(G(z)), z) and fit the translator t(z | c) to them.

    Returns:
        ``{"translator", "history", "c" (n_pairs, C), "z" (n_pairs, d)}``.
    """
    device = profiles.resolve_device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    c, z = synthetic_pairs(decoder(models["vae"]), models["aux"], cfg.n_pairs, cfg.latent_dim,
                           soft=cfg.soft_conditions, generator=gen, device=device)
    torch.manual_seed(cfg.seed + 3)
    translator = Translator(c.shape[1], cfg.latent_dim, cfg.n_components, cfg.translator_hidden)
    history = fit(translator, TensorBatches((c, z), batch_size=cfg.translator_batch), epochs=cfg.translator_epochs,
                  lr=cfg.translator_lr, device=device, seed=cfg.seed + 3, amp=False, progress=_progress(cfg),
                  desc="translator")
    return {"translator": translator.eval(), "history": history, "c": c, "z": z}


# -- sampling: translator vs random latents, then Langevin --------------------------------------------------
def sample_and_refine(cfg: Config, models: dict[str, Any], translator: Translator) -> dict[str, Any]:
    """Request ``n_per_class`` samples of every class, start from random latents and from the translator, and
    run ``langevin_steps`` Langevin steps on the energy of f; log the evaluator's accuracy at every step.

    Returns:
        ``{"curve": DataFrame (init, step, accuracy, aux_accuracy, energy, diversity), "requested" (n,),
        "snapshots": {init: {step: {"z" (n, d), "x" (n, D), "pred" (n,)}}} at steps 0, compare_steps and T}``.
    """
    device = profiles.resolve_device(cfg.device)
    C = models["aux"].n_classes
    requested = torch.arange(C, device=device).repeat_interleave(cfg.n_per_class)
    c = F.one_hot(requested, C).float()
    G, energy = decoder(models["vae"]), classifier_energy(decoder(models["vae"]), models["aux"], cfg.prior_weight)
    gen = torch.Generator().manual_seed(cfg.seed + 4)
    starts = {"random": torch.randn(len(c), cfg.latent_dim, generator=gen).to(device),
              "translator": translator.sample(c, generator=gen)}
    keep, rows, snaps = {0, cfg.compare_steps, cfg.langevin_steps}, [], {}
    req = requested.cpu().numpy()

    for init, z0 in starts.items():
        snaps[init] = {}

        def record(t: int, z: torch.Tensor, init: str = init) -> None:
            with torch.no_grad():
                x = G(z).clamp(0, 1)
                pred = models["evaluator"].predict(x).cpu().numpy()
                rows.append({"init": init, "step": t, "accuracy": class_accuracy(pred, req),
                             "aux_accuracy": class_accuracy(models["aux"].predict(x).cpu().numpy(), req),
                             "energy": float(energy(z, c).mean()),
                             "diversity": float(np.nanmean(within_class_diversity(x.cpu(), req, C)))})
            if t in keep:
                snaps[init][t] = {"z": z.cpu().numpy(), "x": x.cpu().numpy(), "pred": pred}

        langevin(energy, z0, c, steps=cfg.langevin_steps, step_size=cfg.step_size, noise_std=cfg.noise_std,
                 generator=gen, record=record)
    return {"curve": pd.DataFrame(rows), "requested": req, "snapshots": snaps}


def steps_to_target(curve: pd.DataFrame, target: float, steps: int) -> dict[str, float]:
    """First Langevin step at which each initialization's evaluator accuracy reaches ``target``
    (``steps + 1`` when it never does within the run)."""
    out = {}
    for init, part in curve.groupby("init", sort=False):
        hit = part.loc[part["accuracy"] >= target, "step"]
        out[init] = float(hit.min()) if len(hit) else float(steps + 1)
    return out


def sampler_table(cfg: Config, run: dict[str, Any], images: data.images.ImageSet) -> pd.DataFrame:
    """One row per sampler (init x steps): evaluator accuracy, worst per-class accuracy, within-class diversity;
    plus the diversity of ``n_per_class`` real images per class as the reference."""
    C, req, rows = len(images.classes), run["requested"], []
    names = {"random": "random z", "translator": "translator"}
    for init, snaps in run["snapshots"].items():
        for t, s in sorted(snaps.items()):
            rows.append({"sampler": f"{names[init]} + {t} Langevin steps" if t else f"{names[init]} only",
                         "init": init, "steps": t, "accuracy": class_accuracy(s["pred"], req),
                         "worst class accuracy": float(np.nanmin(per_class_accuracy(s["pred"], req, C))),
                         "diversity": float(np.nanmean(within_class_diversity(s["x"], req, C)))})
    ref = images.subsample(cfg.n_per_class, seed=cfg.seed)           # as many real images per class as samples
    real = float(np.nanmean(within_class_diversity(ref.flat(), ref.labels, C)))
    rows.append({"sampler": "real images (reference)", "init": "real", "steps": 0, "accuracy": np.nan,
                 "worst class accuracy": np.nan, "diversity": real})
    return pd.DataFrame(rows).set_index("sampler")


def per_class_table(run: dict[str, Any], n_classes: int, step: int) -> pd.DataFrame:
    """Evaluator accuracy per requested class for each initialization at step 0 and at ``step``."""
    req, cols = run["requested"], {}
    for init, snaps in run["snapshots"].items():
        for t in sorted({0, step}):
            cols[f"{init}, T={t}"] = per_class_accuracy(snaps[t]["pred"], req, n_classes)
    return pd.DataFrame(cols, index=pd.Index(range(n_classes), name="class"))


def record_claims(book: claims.ClaimBook, cfg: Config, run: dict[str, Any], table: pd.DataFrame) -> None:
    """The page's claims: the translator alone is class-conditional (far above chance), Langevin from the
    translator reaches the target accuracy in fewer steps and is better at equal steps, and it does not
    collapse diversity (informative)."""
    T, k = cfg.langevin_steps, cfg.compare_steps
    row = lambda init, t: table[(table["init"] == init) & (table["steps"] == t)].iloc[0]  # noqa: E731
    tr0, rnd0 = row("translator", 0), row("random", 0)
    book.greater("translator alone (T=0): evaluator accuracy > 0.8", tr0["accuracy"], 0.8,
                 metric="accuracy of the independent evaluator [translator, threshold]", paper=PAPER["translator"],
                 required_at=("ci",), note=f"random latents: {rnd0['accuracy']:.3f} (chance 0.1)")
    book.greater("translator alone: accuracy > 5 × that of random latents", tr0["accuracy"], rnd0["accuracy"],
                 factor=5.0, metric="evaluator accuracy [translator, random z]", paper=PAPER["translator"],
                 required_at=("ci",))
    reach = steps_to_target(run["curve"], cfg.target_accuracy, T)
    book.greater(f"steps to reach accuracy {cfg.target_accuracy:g}: random z > translator", reach["random"],
                 reach["translator"], metric=f"Langevin steps (T+1={T + 1} = not reached) [random, translator]",
                 paper=PAPER["speed"], required_at=("ci",))
    book.greater(f"accuracy after {k} Langevin steps: TR0N > random z", row("translator", k)["accuracy"],
                 row("random", k)["accuracy"], metric="evaluator accuracy [TR0N, random z]", paper=PAPER["speed"],
                 required_at=("ci",))
    book.greater("translator alone: worst class accuracy > 0.5", tr0["worst class accuracy"], 0.5,
                 metric="lowest per-class evaluator accuracy [translator, threshold]", paper=PAPER["diversity"],
                 required_at=())
    real = table.loc["real images (reference)", "diversity"]
    book.greater("translator alone: diversity > 0.5 × real images'", tr0["diversity"], real, factor=0.5,
                 metric="mean within-class pairwise distance [translator, real]", paper=PAPER["diversity"],
                 required_at=())
    book.greater(f"long Langevin collapses diversity: T=0 > T={T} (translator init)", tr0["diversity"],
                 row("translator", T)["diversity"], metric="within-class diversity [T=0, T=T]",
                 paper="not a paper claim (a property of these step/noise settings)", required_at=())


# -- figures ------------------------------------------------------------------------------------------------
def samples_figure(run: dict[str, Any], cfg: Config, image_shape: tuple[int, ...], per_class: int = 3) -> go.Figure:
    """One row per requested class: ``per_class`` translator-only samples, then ``per_class`` after
    ``compare_steps`` Langevin steps (TR0N), then ``per_class`` from random latents after the same steps."""
    req, k, snaps = run["requested"], cfg.compare_steps, run["snapshots"]
    groups = [("translator only", snaps["translator"][0]), (f"TR0N (T={k})", snaps["translator"][k]),
              (f"random z, T={k}", snaps["random"][k])]
    imgs, titles = [], []
    for cls in np.unique(req):
        idx = np.flatnonzero(req == cls)[:per_class]
        for name, snap in groups:
            imgs.extend(snap["x"][idx])
            titles.extend([name if (cls == 0 and j == 0) else "" for j in range(len(idx))])
    imgs = (np.clip(np.stack(imgs), 0, 1) * 255).round().astype(np.uint8).reshape(-1, *image_shape)
    return viz.image_grid(imgs, titles, cols=per_class * len(groups),
                          title="Row k requests class k (0 at the top): translator only | TR0N | random z + Langevin")


def langevin_curves_figure(curve: pd.DataFrame, target: float, real_diversity: float) -> go.Figure:
    """Evaluator accuracy, mean energy and within-class diversity against the Langevin step, one line per
    initialization (dashed: the target accuracy and the real images' diversity)."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("evaluator accuracy", "energy E(z, c)",
                                                        "within-class diversity"))
    for i, (init, part) in enumerate(curve.groupby("init", sort=False)):
        for col, y in enumerate(("accuracy", "energy", "diversity"), start=1):
            fig.add_trace(go.Scatter(x=part["step"], y=part[y], mode="lines", name=init, legendgroup=init,
                                     showlegend=col == 1, line=dict(color=viz.PALETTE[i])), 1, col)
    fig.add_hline(y=target, line_dash="dash", line_color=viz.PALETTE[6], row=1, col=1)
    fig.add_hline(y=real_diversity, line_dash="dash", line_color=viz.PALETTE[6], row=1, col=3)
    fig.update_xaxes(title_text="Langevin step")
    fig.update_layout(title="Langevin from the translator vs from random latents", legend_title="start")
    return fig


def per_class_figure(table: pd.DataFrame) -> go.Figure:
    """Grouped bars: evaluator accuracy per requested class for each sampler column of ``table``."""
    fig = go.Figure([go.Bar(x=[str(i) for i in table.index], y=table[col], name=col) for col in table.columns])
    fig.add_hline(y=0.1, line_dash="dot", line_color=viz.PALETTE[6], annotation_text="chance")
    fig.update_layout(barmode="group", title="Accuracy per requested class", xaxis_title="requested class",
                      yaxis_title="evaluator accuracy", yaxis_range=[0, 1.05])
    return fig


def latent_figure(pairs: dict[str, Any], translator: Translator, n_points: int = 3000, seed: int = 0) -> go.Figure:
    """The generator's latent space in its first two principal components: synthetic latents coloured by the
    auxiliary classifier's label, and the translator's mixture means for each one-hot condition (size ~ weight)."""
    z, labels = pairs["z"].cpu().numpy(), pairs["c"].argmax(-1).cpu().numpy()
    idx = np.random.default_rng(seed).permutation(len(z))[:n_points]
    mean = z.mean(0)
    basis = np.linalg.svd(z - mean, full_matrices=False)[2][:2].T                  # (d, 2)
    C = pairs["c"].shape[1]
    with torch.no_grad():
        logits, means, _ = translator.parameters_of(torch.eye(C, device=pairs["c"].device))
    weights, means = torch.softmax(logits, -1).cpu().numpy(), means.cpu().numpy()  # (C, K), (C, K, d)
    fig = go.Figure()
    for k in range(C):
        p = (z[idx][labels[idx] == k] - mean) @ basis
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=f"z labelled {k}", legendgroup=str(k),
                                 marker=dict(size=4, opacity=0.35, color=viz.PALETTE[k % 10])))
        m = (means[k] - mean) @ basis
        fig.add_trace(go.Scatter(x=m[:, 0], y=m[:, 1], mode="markers+text", text=[str(k)] * len(m),
                                 legendgroup=str(k), showlegend=False, textposition="top center",
                                 marker=dict(symbol="x", size=6 + 30 * weights[k], color=viz.PALETTE[k % 10],
                                             line=dict(width=1, color="#222"))))
    fig.update_layout(title="Latent space (PCA): synthetic z by f's label; crosses = translator means",
                      xaxis_title="PC 1", yaxis_title="PC 2")
    return fig


def save_latents(path, pairs: dict[str, Any], run: dict[str, Any], n_points: int = 2000, seed: int = 0):
    """Save synthetic latents (labelled by f) and the translator's proposals (by requested class) as an
    embedding table for the book's embeddings dashboard. Returns the path written."""
    from l6kit.embeddings import save_table

    idx = np.random.default_rng(seed).permutation(len(pairs["z"]))[:n_points]
    z_syn, lab = pairs["z"][idx].cpu().numpy(), pairs["c"][idx].argmax(-1).cpu().numpy()
    z_tr = run["snapshots"]["translator"][0]["z"]
    meta = pd.DataFrame({"source": ["synthetic z ~ N(0, I)"] * len(z_syn) + ["translator proposal"] * len(z_tr),
                         "class": np.concatenate([lab, run["requested"]]).astype(str)})
    return save_table(path, np.concatenate([z_syn, z_tr]), meta, metric="euclidean", name="TR0N latents",
                      description="VAE latents: synthetic draws coloured by the auxiliary classifier's label, "
                                  "and translator proposals coloured by the requested class.")


def paper_vs_run(cfg: Config, table: pd.DataFrame, reach: dict[str, float]) -> pd.DataFrame:
    """The paper's qualitative findings beside this run's numbers."""
    row = lambda init, t: table[(table["init"] == init) & (table["steps"] == t)].iloc[0]  # noqa: E731
    k = cfg.compare_steps
    return pd.DataFrame([
        {"finding": "the translator alone gives conditional samples", "paper": PAPER["translator"],
         "this run": f"accuracy {row('translator', 0)['accuracy']:.3f} vs {row('random', 0)['accuracy']:.3f} "
                     "from random latents"},
        {"finding": "translator initialisation makes Langevin faster", "paper": PAPER["speed"],
         "this run": f"steps to {cfg.target_accuracy:g}: {reach['translator']:g} vs {reach['random']:g}; "
                     f"accuracy at T={k}: {row('translator', k)['accuracy']:.3f} vs {row('random', k)['accuracy']:.3f}"},
        {"finding": "samples stay diverse", "paper": PAPER["diversity"],
         "this run": f"diversity {row('translator', 0)['diversity']:.2f} vs real "
                     f"{table.loc['real images (reference)', 'diversity']:.2f}"},
    ]).set_index("finding")
