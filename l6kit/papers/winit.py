"""WinIT — Temporal Dependencies in Feature Importance for Time Series Prediction (Leung et al., ICLR 2023).

The paper's configuration per profile, its reported numbers, and the experiment functions the notebook
``notebooks/winit.ipynb`` and the WinIT dashboard call. The method lives in :mod:`l6kit.attribution`, the
simulated tasks and the GRU in :mod:`l6kit.timeseries`.

Dashboard entry points: :func:`compute_attributions` (inputs, ground truth, per-method attributions, WinIT's
per-window scores, per-sample AUPRC) and :func:`save_attributions` / :func:`load_attributions` (``.npz``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from l6kit import claims, data, profiles
from l6kit.attribution import (
    AugmentedFeatureOcclusion,
    CaptumAttribution,
    DataDistributionGenerator,
    FeatureOcclusion,
    WinIT,
    aggregate_windows,
    drop_curve,
    load_nested,
    per_sample_auprc,
    saliency_scores,
    save_nested,
    train_generator,
)
from l6kit.timeseries import TimeSeriesSet, make, model_auroc, predict, train_classifier

SLUG = "winit"
TITLE = "Temporal Dependencies in Feature Importance for Time Series Prediction"
METHODS = ("winit", "winit-data", "fo", "afo", "ig", "deeplift", "gradientshap")
LABELS = {"winit": "WinIT", "winit-data": "WinIT (data-sampled)", "fo": "FO", "afo": "AFO", "ig": "IG",
          "deeplift": "DeepLIFT", "gradientshap": "GradientSHAP", "fit": "FIT", "dynamask": "Dynamask"}
BASELINES = ("fo", "afo", "ig", "deeplift", "gradientshap")
TASKS = ("spike", "state", "switch-feature", "mimic")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the WinIT reproduction (defaults are the paper's; profiles change some).

    Attributes:
        profile: ci | laptop | paper (set by :func:`config`).
        seed: seed of the generated data, the training runs and the counterfactual draws.
        device: torch device ("auto" picks a GPU when present).
        n_series, length: Spike series and steps per series (the paper's 3,000 x 80).
        delays: Spike delays run (the paper's 0-4); ``claim_delay`` is the one of the headline table.
        hidden, dropout, epochs, lr, weight_decay, batch_size: the GRU black box and its training.
        test_fraction: share of the series held out and explained.
        n_explain: at most this many test series are explained.
        window, n_samples, metric, aggregate: WinIT's W, counterfactual draws, distance and aggregation.
        generator_hidden, generator_horizon, generator_epochs: the trained counterfactual generator.
        occlusion_samples: draws per observation of FO and AFO; ig_steps, shap_samples: captum settings.
        methods: explainers run (see ``METHODS``).
        other_tasks: further simulated tasks run once (``"state"``, ``"switch-feature"``).
        state_size, switch_size: (series, steps) of those tasks.
        mask_fraction: share of cells END-masked in the performance-drop experiment.
        mimic: run the MIMIC-III experiment (needs the credentialed file; see ``mimic_path``).
        mimic_path: the local ``patient_vital_preprocessed.pkl`` (or its folder); empty = the cache folder.
        mimic_epochs, mimic_lr: the GRU's training on MIMIC-III (the official 100 epochs at 1e-4).
        min_model_auroc: the black box must reach this AUROC before its explanations are judged.
    """

    profile: str = "paper"
    seed: int = 0
    device: str = "auto"
    n_series: int = 3000
    length: int = 80
    delays: tuple[int, ...] = (0, 1, 2, 3, 4)
    claim_delay: int = 2
    hidden: int = 200
    dropout: float = 0.5
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-3
    batch_size: int = 100
    test_fraction: float = 0.2
    n_explain: int = 600
    window: int = 10
    n_samples: int = 3
    metric: str = "pd"
    aggregate: str = "mean"
    generator_hidden: int = 50
    generator_horizon: int = 10
    generator_epochs: int = 100
    occlusion_samples: int = 10
    ig_steps: int = 50
    shap_samples: int = 50
    methods: tuple[str, ...] = METHODS
    other_tasks: tuple[str, ...] = ("state", "switch-feature")
    state_size: tuple[int, ...] = (1000, 200)
    switch_size: tuple[int, ...] = (1000, 100)
    mask_fraction: float = 0.05
    mimic: bool = True
    mimic_path: str = ""
    mimic_epochs: int = 100
    mimic_lr: float = 1e-4
    min_model_auroc: float = 0.95


PROFILES: dict[str, dict[str, Any]] = {
    "ci": dict(n_series=1000, length=30, delays=(0, 2), hidden=64, dropout=0.0, epochs=40, lr=3e-3,
               weight_decay=0.0, n_explain=100, window=5, generator_epochs=30, ig_steps=32, other_tasks=(),
               mimic=False),
    "laptop": dict(n_series=2000, length=50, hidden=100, dropout=0.0, epochs=30, lr=3e-3, weight_decay=0.0,
                   n_explain=200, generator_epochs=40, other_tasks=("state",), state_size=(1000, 100),
                   mimic=False),
    "paper": {},
}

# AUPRC, one-layer GRU, mean over 5 CV folds: the official repository's committed notebooks/Reproduce.ipynb
# (its outputs; the paper's Table 1 reports the same runs).
PAPER: dict[str, dict[str, float]] = {
    "spike": {"winit": 1.000, "fo": 0.187, "afo": 0.944, "ig": 0.378, "deeplift": 0.887, "gradientshap": 0.426,
              "fit": 0.803, "dynamask": 0.503},
    "spike-delay-2": {"winit": 0.996, "fo": 0.005, "afo": 0.005, "ig": 0.421, "deeplift": 0.883,
                      "gradientshap": 0.465, "fit": 0.002, "dynamask": 0.502},
    "state": {"winit": 0.260, "fo": 0.027, "afo": 0.027, "ig": 0.022, "deeplift": 0.022, "gradientshap": 0.021,
              "fit": 0.230, "dynamask": 0.278},
}
# MIMIC-III mortality, END masking of the top 5 %: AUC drop (same notebook).
PAPER_MIMIC: dict[str, float] = {"winit": 0.098, "dynamask": 0.068, "fit": 0.066}


def config(profile: str = "ci", **overrides: Any) -> Config:
    """The configuration for ``profile`` with ``overrides``; raises ``ValueError`` on unknown names/values."""
    cfg = profiles.resolve(Config(), PROFILES, profile, **overrides)
    unknown = sorted(set(cfg.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; allowed: {', '.join(METHODS)}")
    bad_tasks = sorted(set(cfg.other_tasks) - {"state", "switch-feature"})
    if bad_tasks:
        raise ValueError(f"unknown task(s) {', '.join(bad_tasks)}; allowed: state, switch-feature")
    if any(not 0 <= d < cfg.length for d in cfg.delays) or cfg.claim_delay not in cfg.delays:
        raise ValueError(f"delays {cfg.delays} must lie in [0, length) and include claim_delay={cfg.claim_delay}")
    if not 1 <= cfg.window <= cfg.generator_horizon:
        raise ValueError(f"window must be in [1, generator_horizon={cfg.generator_horizon}], got {cfg.window}")
    if cfg.metric not in ("pd", "kl", "js") or cfg.aggregate not in ("mean", "max", "absmax"):
        raise ValueError("metric must be pd | kl | js and aggregate mean | max | absmax")
    return cfg


@dataclasses.dataclass
class Prepared:
    """A task ready to explain: its split, the trained black box and the trained counterfactual generator.

    Attributes:
        task: ``"spike"``, ``"state"``, ``"switch-feature"`` or ``"mimic"``; ``delay`` for spike.
        train, test: the split (all held-out series; :func:`explain` uses the first ``cfg.n_explain``).
        model: the trained :class:`~l6kit.timeseries.GRUClassifier` (on ``device``).
        generator: the trained :class:`~l6kit.attribution.GaussianWindowGenerator`.
        model_auroc: the model's per-step AUROC on the held-out series.
        losses: training losses per epoch, ``{"model": [...], "generator": [...]}``.
    """

    task: str
    delay: int
    train: TimeSeriesSet
    test: TimeSeriesSet
    model: torch.nn.Module
    generator: torch.nn.Module
    model_auroc: float
    losses: dict[str, list[float]]
    device: str = "cpu"


def load_task(cfg: Config, task: str, delay: int = 0) -> TimeSeriesSet:
    """The data of ``task`` at this profile's size (MIMIC-III: from ``cfg.mimic_path``, normalised per
    feature with the training part's mean and std)."""
    if task == "spike":
        return make("spike", cfg.n_series, cfg.length, delay=delay, seed=cfg.seed)
    if task in ("state", "switch-feature"):
        n, length = cfg.state_size if task == "state" else cfg.switch_size
        return make(task, n, length, seed=cfg.seed)
    if task == "mimic":
        raw = load_mimic(cfg)
        cut = len(raw) - int(round(cfg.test_fraction * len(raw)))
        mean = raw.x[:cut].mean(axis=(0, 2), keepdims=True)
        std = raw.x[:cut].std(axis=(0, 2), keepdims=True)
        return dataclasses.replace(raw, x=((raw.x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32))
    raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")


def load_mimic(cfg: Config) -> TimeSeriesSet:
    """The MIMIC-III cohort from ``cfg.mimic_path`` via the data registry.

    Raises:
        l6kit.data.DataMissingError: the file is absent (the message names what to obtain and where to put it).
    """
    import l6kit.timeseries  # noqa: F401  (registers the source)

    return data.load("mimic3-mortality", cfg.profile, path=cfg.mimic_path or None)


# Fields that only change how a trained model is explained: they do not enter the training cache key.
EXPLAIN_FIELDS = ("delays", "claim_delay", "n_explain", "window", "n_samples", "metric", "aggregate",
                  "occlusion_samples", "ig_steps", "shap_samples", "methods", "other_tasks", "mask_fraction")


def prepare(cfg: Config, task: str = "spike", delay: int = 0) -> Prepared:
    """Generate (or read) ``task``, train the GRU and the counterfactual generator on its training part.

    Cached per training setting, task and delay: configs that differ only in ``EXPLAIN_FIELDS`` (window,
    samples, metric, ...) share the trained models, so the notebook and the dashboard train each model once.
    """
    defaults = Config()
    return _prepare(dataclasses.replace(cfg, **{f: getattr(defaults, f) for f in EXPLAIN_FIELDS}), task, delay)


@functools.lru_cache(maxsize=8)
def _prepare(cfg: Config, task: str, delay: int) -> Prepared:
    device = profiles.resolve_device(cfg.device)
    progress = False if cfg.profile == "ci" else None        # no bars in the ci book pages
    train, test = load_task(cfg, task, delay).split(cfg.test_fraction)
    mimic = task == "mimic"
    model, hist = train_classifier(train.x, train.y, hidden=cfg.hidden, dropout=cfg.dropout,
                                   epochs=cfg.mimic_epochs if mimic else cfg.epochs,
                                   lr=cfg.mimic_lr if mimic else cfg.lr, weight_decay=cfg.weight_decay,
                                   batch_size=cfg.batch_size, device=device, seed=cfg.seed, progress=progress)
    auroc = model_auroc(predict(model, test.x), test.y)
    gen, gen_hist = train_generator(train.x, horizon=cfg.generator_horizon, hidden=cfg.generator_hidden,
                                    epochs=cfg.generator_epochs, batch_size=cfg.batch_size, device=device,
                                    seed=cfg.seed, progress=progress)
    return Prepared(task, delay, train, test, model, gen, auroc,
                    {"model": hist.losses, "generator": gen_hist.losses}, device)


def explainer(cfg: Config, prep: Prepared, method: str, window: int | None = None):
    """The explainer ``method`` (one of ``METHODS``) for ``prep``'s model, with this config's settings."""
    w = window or cfg.window
    winit_kw = dict(window=w, n_samples=cfg.n_samples, metric=cfg.metric, aggregate=cfg.aggregate, seed=cfg.seed)
    makers = {
        "winit": lambda: WinIT(prep.model, prep.generator, **winit_kw),
        "winit-data": lambda: WinIT(prep.model, DataDistributionGenerator(prep.train.x), **winit_kw),
        "fo": lambda: FeatureOcclusion(prep.model, n_samples=cfg.occlusion_samples, seed=cfg.seed),
        "afo": lambda: AugmentedFeatureOcclusion(prep.model, prep.train.x, n_samples=cfg.occlusion_samples,
                                                 seed=cfg.seed),
        "ig": lambda: CaptumAttribution(prep.model, "ig", n_steps=cfg.ig_steps),
        "deeplift": lambda: CaptumAttribution(prep.model, "deeplift"),
        "gradientshap": lambda: CaptumAttribution(prep.model, "gradientshap", n_samples=cfg.shap_samples,
                                                  seed=cfg.seed),
    }
    if method not in makers:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    return makers[method]()


def explain(cfg: Config, prep: Prepared, methods: tuple[str, ...] | None = None, window: int | None = None
            ) -> dict[str, Any]:
    """Attributions of every method on ``prep.test`` and their ground-truth scores.

    Returns:
        ``{"task", "delay", "window", "model_auroc", "x" (N, F, T), "y" (N, T), "truth" (N, F, T),
        "prob" (N, T), "attributions": {method: (N, F, T)}, "windows": {method: (N, F, T, W)} (WinIT
        variants: I(t-n, t) per window), "scores": {method: {"auroc", "auprc", "ap"}},
        "per_sample_auprc": {method: (N,)}, "seconds": {method: float}}`` (arrays are NumPy).
    """
    test = prep.test.subset(slice(0, cfg.n_explain))
    x = torch.as_tensor(test.x, device=prep.device)
    out: dict[str, Any] = {"task": prep.task, "delay": prep.delay, "window": window or cfg.window,
                           "model_auroc": prep.model_auroc, "x": test.x, "y": test.y,
                           "truth": test.truth, "prob": predict(prep.model, test.x),
                           "attributions": {}, "windows": {}, "scores": {}, "per_sample_auprc": {},
                           "seconds": {}}
    for method in methods or cfg.methods:
        ex, start = explainer(cfg, prep, method, window), time.perf_counter()
        if isinstance(ex, WinIT):
            win = ex.window_scores(x)
            out["windows"][method] = win.cpu().numpy()
            attr = aggregate_windows(win, ex.aggregate).cpu().numpy()
        else:
            attr = ex.attribute(x).cpu().numpy()
        out["seconds"][method] = time.perf_counter() - start
        out["attributions"][method] = attr
        if test.truth.any():
            out["scores"][method] = saliency_scores(attr, test.truth)
            out["per_sample_auprc"][method] = per_sample_auprc(attr, test.truth)
    return out


def compute_attributions(cfg: Config, dataset: str = "spike", delay: int = 0,
                         methods: tuple[str, ...] | None = None, window: int | None = None) -> dict[str, Any]:
    """The dashboard's entry point: prepare ``dataset`` (cached) and explain it; see :func:`explain`."""
    return explain(cfg, prepare(cfg, dataset, delay), methods, window)


def save_attributions(path, result: dict[str, Any]) -> None:
    """Write a :func:`explain` result to ``path`` (``.npz``; the folder is created)."""
    save_nested(path, result)


def load_attributions(path) -> dict[str, Any]:
    """Read a result written by :func:`save_attributions` (same keys and nesting; scalars as Python types)."""
    out = load_nested(path)
    for key in ("attributions", "windows", "scores", "per_sample_auprc", "seconds"):
        out.setdefault(key, {})
    return out


def score_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Long table of ground-truth scores: one row per (task, delay, method) with ``auroc, auprc, ap``,
    the black box's AUROC, seconds, and the paper's AUPRC where it reports one."""
    rows = []
    for res in results:
        key = res["task"] if res["delay"] == 0 else f"{res['task']}-delay-{res['delay']}"
        for method, sc in res["scores"].items():
            rows.append({"task": res["task"], "delay": int(res["delay"]), "method": method,
                         "explainer": LABELS[method], "auroc": sc["auroc"], "auprc": sc["auprc"], "ap": sc["ap"],
                         "paper auprc": PAPER.get(key, {}).get(method, float("nan")),
                         "model auroc": res["model_auroc"], "seconds": res["seconds"][method]})
    return pd.DataFrame(rows)


def delay_sweep(cfg: Config) -> list[dict[str, Any]]:
    """Explain the Spike task at every delay in ``cfg.delays`` (one trained GRU and generator per delay)."""
    return [compute_attributions(cfg, "spike", d) for d in cfg.delays]


def paper_table(table: pd.DataFrame, task: str = "spike") -> pd.DataFrame:
    """AUPRC per explainer (rows) at delay 0 and at the other delays run, this run beside the paper."""
    part = table[table["task"] == task]
    wide = part.pivot_table(index="explainer", columns="delay", values="auprc")
    wide.columns = [f"delay {d} (this run)" for d in wide.columns]
    for key, col in ((task, "delay 0 (paper)"), (f"{task}-delay-2", "delay 2 (paper)")):
        if key in PAPER:
            wide[col] = [PAPER[key].get(_method(name), float("nan")) for name in wide.index]
    order = [LABELS[m] for m in METHODS if LABELS[m] in wide.index]
    return wide.loc[order].round(3)


def _method(label: str) -> str:
    return {v: k for k, v in LABELS.items()}[label]


def record_model_claims(book: claims.ClaimBook, cfg: Config, table: pd.DataFrame) -> None:
    """Claim: the black box is accurate before it is explained (AUROC >= ``cfg.min_model_auroc``), per delay."""
    for delay, auroc in table[table["task"] == "spike"].groupby("delay")["model auroc"].first().items():
        book.greater(f"GRU is accurate on Spike, delay {delay} (AUROC >= {cfg.min_model_auroc:g})",
                     auroc, cfg.min_model_auroc, metric="per-step AUROC of the GRU (held out)",
                     paper="accurate black box (prerequisite)", required_at=("ci", "laptop", "paper"))


def record_spike_claims(book: claims.ClaimBook, cfg: Config, table: pd.DataFrame) -> None:
    """Claims on Spike: WinIT's AUPRC beats every baseline at ``claim_delay`` (required), AFO loses more
    AUPRC than WinIT from delay 0 to the largest delay (required), and WinIT beats every baseline at delay 0
    (informative: AFO is near-perfect there when the GRU is well trained)."""
    spike = table[table["task"] == "spike"].set_index(["delay", "method"])["auprc"]
    d, last = cfg.claim_delay, max(cfg.delays)
    present = set(spike.index.get_level_values("method"))
    baselines = [m for m in BASELINES if m in present]
    paper2 = PAPER["spike-delay-2"] if d == 2 else {}
    for base in baselines:
        book.greater(f"WinIT AUPRC > {LABELS[base]} AUPRC on Spike, delay {d}", spike[(d, "winit")],
                     spike[(d, base)], metric="AUPRC (ground truth)",
                     paper=[paper2.get("winit"), paper2.get(base)] if paper2 else None,
                     required_at=("ci", "laptop", "paper"))
    if 0 in cfg.delays and last > 0 and "afo" in present:
        drop = {m: spike[(0, m)] - spike[(last, m)] for m in ("winit", "afo")}
        paper = [PAPER["spike"]["afo"] - PAPER["spike-delay-2"]["afo"],
                 PAPER["spike"]["winit"] - PAPER["spike-delay-2"]["winit"]] if last == 2 else None
        book.greater(f"AFO loses more AUPRC than WinIT from delay 0 to {last}", drop["afo"], drop["winit"],
                     metric=f"AUPRC(delay 0) - AUPRC(delay {last}): AFO vs WinIT", paper=paper,
                     required_at=("ci", "laptop", "paper"))
    if 0 in cfg.delays and baselines:
        best = max(spike[(0, m)] for m in baselines)
        book.greater("WinIT AUPRC > best baseline on Spike, delay 0", spike[(0, "winit")], best,
                     metric="AUPRC: WinIT vs best baseline", paper=[1.000, 0.944], required_at=(),
                     note="AFO is near-perfect at delay 0 with a well-trained GRU")
    if "winit-data" in present:
        book.greater(f"trained generator > data-sampled counterfactuals, delay {d}", spike[(d, "winit")],
                     spike[(d, "winit-data")], metric="WinIT AUPRC: trained generator vs marginal draws",
                     paper="generator used (Sec. 4.2)", required_at=())


def record_task_claims(book: claims.ClaimBook, cfg: Config, table: pd.DataFrame, task: str) -> None:
    """Informative claims on another simulated task: WinIT's AUPRC beats each baseline (paper: State)."""
    part = table[table["task"] == task].set_index("method")["auprc"]
    for base in (m for m in BASELINES if m in part.index):
        paper = PAPER.get(task, {})
        book.greater(f"WinIT AUPRC > {LABELS[base]} AUPRC on {task}", part["winit"], part[base],
                     metric="AUPRC (ground truth)", paper=[paper["winit"], paper[base]] if paper else None,
                     required_at=(), note="run at laptop/paper only")


def performance_drop(cfg: Config, result: dict[str, Any], model: torch.nn.Module,
                     fractions: tuple[float, ...] | None = None) -> pd.DataFrame:
    """END-mask the top cells of each method's attributions (``fractions``, default ``cfg.mask_fraction``)
    and measure the last-step AUROC drop; rows of :func:`l6kit.attribution.drop_curve` plus ``explainer``."""
    drops = drop_curve(model, result["x"], result["y"], result["attributions"],
                       fractions or (cfg.mask_fraction,), seed=cfg.seed)
    return drops.assign(explainer=drops["method"].map(LABELS))


def example_index(result: dict[str, Any], margin: int = 3) -> int:
    """A held-out series whose salient cell lies at least ``margin`` steps from both ends (else series 0)."""
    truth, T = result["truth"], result["truth"].shape[-1]
    for i in range(len(truth)):
        steps = np.flatnonzero(truth[i].any(0))
        if len(steps) and steps.min() >= margin and steps.max() < T - margin:
            return i
    return 0


def record_mimic_claims(book: claims.ClaimBook, drops: pd.DataFrame) -> None:
    """Informative claims on MIMIC-III: masking WinIT's top cells lowers the AUC more than each baseline's."""
    drop = drops.set_index("method")["drop"]
    for base in (m for m in BASELINES if m in drop.index):
        book.greater(f"MIMIC-III: WinIT AUC drop > {LABELS[base]} AUC drop", drop["winit"], drop[base],
                     metric="AUROC drop, END masking of the top cells", paper=PAPER_MIMIC["winit"],
                     required_at=())


def mimic_experiment(cfg: Config) -> tuple[pd.DataFrame | None, str]:
    """The paper's MIMIC-III experiment: explain the mortality GRU, END-mask the top ``cfg.mask_fraction``.

    Returns:
        ``(AUC-drop rows per method, or None; a message)``: None with the reason when ``cfg.mimic`` is off or
        the credentialed file is missing (the message then says what to obtain and where to put it).
    """
    if not cfg.mimic:
        return None, (f"MIMIC-III is not used at profile {cfg.profile!r}; the paper profile reads it from "
                      f"mimic_path (credentialed data, never downloaded).")
    try:
        prep = prepare(cfg, "mimic")
    except data.DataMissingError as err:
        return None, str(err)
    drops = performance_drop(cfg, explain(cfg, prep), prep.model)
    return drops, (f"MIMIC-III: {min(len(prep.test), cfg.n_explain)} held-out stays explained; "
                   f"GRU AUROC {prep.model_auroc:.3f}")
