"""DuETT — Dual Event Time Transformer for Electronic Health Records (Labach et al., MLHC 2023).

The paper's configuration per profile, its reported numbers, and the experiment functions the notebook
``notebooks/duett.ipynb`` calls. The reader, the aggregation, the model and the baseline live in
:mod:`l6kit.ehr`.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import torch

from l6kit import claims, profiles
from l6kit.ehr import physionet, synthetic
from l6kit.ehr.aggregate import BinnedStays, EventBinner
from l6kit.ehr.baselines import GBDTBaseline, LogisticBaseline, binary_metrics
from l6kit.ehr.duett import DuETT, DuETTPretrainer, KeepBest, TensorBatches, predict_proba
from l6kit.ehr.physionet import PhysioNetData
from l6kit.train import History, fit

SLUG = "duett"
TITLE = "DuETT: Dual Event Time Transformer for Electronic Health Records"
SHOWN = ("HR", "MAP", "Lactate", "GCS")               # variables drawn for one stay (present in both data sets)
MODELS = ("GBDT", "logistic regression", "DuETT (no pre-training)", "DuETT (pre-trained)")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the DuETT reproduction (defaults are the paper's PhysioNet-2012 run; profiles change some).

    Attributes:
        profile: ci | laptop | paper (set by :func:`config`).
        seed: seed of the generated stays, the splits, the label subsets and the models.
        device: torch device ("auto" picks a GPU when present).
        data: "physionet2012" (the real download, read from ``root``) or "synthetic" (generated offline).
        root: folder holding the PhysioNet-2012 download ("" = $L6KIT_DATA/physionet2012).
        malformed: "raise" (stop at the first malformed line) or "report" (skip and list it).
        n_stays: number of synthetic stays (ignored for the real data: 12,000).
        variables: time series kept (the real data: the official code's 36).
        n_bins: time bins over the 48 h (paper: 32).
        test_fraction, val_fraction: held-out shares (paper: 70/15/15). Validation picks the fine-tuning epoch.
        label_fraction: share of the training stays whose labels fine-tuning and the GBDT may use (headline).
        label_fractions: label shares of the label-efficiency sweep (must include ``label_fraction``).
        d_embed, d_hidden, n_layers, n_heads, d_ff: DuETT's sizes (paper: 24, 64, 2, 2, 512).
        pretrain_epochs, pretrain_batch, pretrain_lr: self-supervised pre-training (paper: 300, 512, 3e-4).
        finetune_epochs, finetune_batch, finetune_lr: supervised fine-tuning (paper: 50, 512, 1e-4).
        dropout, aug_mask: fine-tuning dropout and bin-masking probability (paper: 0.5, 0.5).
        weight_decay: AdamW weight decay in both stages.
        presence_weight, var_dropout: pre-training loss weight and variable dropout (paper: 0.2, 0.5).
        logistic_c: inverse regularisation of the logistic-regression baseline (chosen on seeds 100-102).
        match_tolerance: "matches" means AUROC(DuETT) >= AUROC(GBDT) - match_tolerance.
    """

    profile: str = "paper"
    seed: int = 0
    device: str = "auto"
    data: str = "physionet2012"
    root: str = ""
    malformed: str = "raise"
    n_stays: int = 12000
    variables: tuple[str, ...] = physionet.VARIABLES
    n_bins: int = 32
    test_fraction: float = 0.15
    val_fraction: float = 0.15
    label_fraction: float = 1.0
    label_fractions: tuple[float, ...] = (0.1, 0.3, 1.0)
    d_embed: int = 24
    d_hidden: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 512
    pretrain_epochs: int = 300
    pretrain_batch: int = 512
    pretrain_lr: float = 3e-4
    finetune_epochs: int = 50
    finetune_batch: int = 512
    finetune_lr: float = 1e-4
    dropout: float = 0.5
    aug_mask: float = 0.5
    weight_decay: float = 0.1
    presence_weight: float = 0.2
    var_dropout: float = 0.5
    logistic_c: float = 0.003
    match_tolerance: float = 0.02


_SMALL = dict(data="synthetic", variables=synthetic.VARIABLES, n_bins=12, val_fraction=0.0, d_embed=8,
              d_hidden=32, d_ff=64, pretrain_batch=128, pretrain_lr=1e-3, finetune_batch=32, finetune_lr=1e-3,
              weight_decay=0.01)
PROFILES: dict[str, dict[str, Any]] = {
    "ci": dict(_SMALL, n_stays=2000, test_fraction=0.25, label_fraction=0.1, label_fractions=(0.05, 0.1, 0.3),
               pretrain_epochs=10, finetune_epochs=20),
    "laptop": dict(_SMALL, n_stays=5000, n_bins=24, d_embed=16, test_fraction=0.2, label_fraction=0.1,
                   label_fractions=(0.05, 0.1, 0.2, 1.0), pretrain_epochs=30, finetune_epochs=20),
    "paper": {},
}

# PhysioNet-2012 in-hospital mortality, Table 1 of the paper, as quoted by a third-party reproduction
# (justinqquall/CS_598_FINAL_PROJECT); its own rerun of the official code gave 0.871 / 0.563.
PAPER: dict[str, dict[str, float]] = {
    "DuETT (pre-trained)": {"auroc": 0.872, "auprc": 0.564},
    "GBDT": {"auroc": 0.865, "auprc": 0.531},              # the paper's XGBoost
}
PAPER_SOURCE = "Table 1 (PhysioNet-2012, all labels), quoted by a third-party reproduction"


def config(profile: str = "ci", **overrides: Any) -> Config:
    """The configuration for ``profile`` with ``overrides``; raises ``ValueError`` on unknown names/values."""
    cfg = profiles.resolve(Config(), PROFILES, profile, **overrides)
    if cfg.data not in ("physionet2012", "synthetic"):
        raise ValueError(f"data must be 'physionet2012' or 'synthetic', got {cfg.data!r}")
    if cfg.malformed not in ("raise", "report"):
        raise ValueError(f"malformed must be 'raise' or 'report', got {cfg.malformed!r}")
    fractions = (cfg.label_fraction, *cfg.label_fractions)
    if not all(0 < f <= 1 for f in fractions) or cfg.label_fraction not in cfg.label_fractions:
        raise ValueError(f"label fractions must lie in (0, 1] and label_fractions {cfg.label_fractions} must "
                         f"include label_fraction {cfg.label_fraction}")
    if not 0 < cfg.test_fraction + cfg.val_fraction < 1:
        raise ValueError("test_fraction + val_fraction must lie in (0, 1)")
    return cfg


def load_stays(cfg: Config) -> tuple[PhysioNetData, pd.DataFrame | None]:
    """The stays and, for synthetic data, the hidden quantities that generated them (None for real data).

    Synthetic stays are generated as PhysioNet-2012 text and parsed by the same reader as the real download.
    """
    if cfg.data == "synthetic":
        sim = synthetic.simulate_icu_stays(cfg.n_stays, seed=cfg.seed)
        data = physionet.read_texts(sim.records, {"Outcomes-synthetic.txt": sim.outcomes}, errors=cfg.malformed)
        return data, sim.latent
    return physionet.load_physionet2012(cfg.root or None, errors=cfg.malformed), None


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Binned splits: ``train`` (all training stays, for pre-training), ``test``, ``val`` (may be empty) and
    ``order``: training-set positions in a stratified random order, so ``order[:k]`` is a label subset and the
    subsets of growing fractions are nested."""

    binner: EventBinner
    train: BinnedStays
    test: BinnedStays
    val: BinnedStays
    rows: dict[str, np.ndarray]
    order: np.ndarray

    def labelled(self, fraction: float) -> BinnedStays:
        """The training stays whose labels may be used at ``fraction``."""
        return self.train.subset(np.sort(self.order[:max(2, round(fraction * len(self.train)))]))


def prepare(cfg: Config, data: PhysioNetData) -> Prepared:
    """Split (stratified by outcome), fit the z-scores on the training stays and bin every stay."""
    from sklearn.model_selection import train_test_split

    idx, y = np.arange(len(data)), data.labels
    held = cfg.test_fraction + cfg.val_fraction
    train, rest = train_test_split(idx, test_size=held, stratify=y, random_state=cfg.seed)
    if cfg.val_fraction > 0:
        val, test = train_test_split(rest, test_size=cfg.test_fraction / held, stratify=y[rest],
                                     random_state=cfg.seed)
    else:
        val, test = rest[:0], rest
    binner = EventBinner(cfg.variables, n_bins=cfg.n_bins).fit(data, train)
    binned = binner.transform(data)
    rng = np.random.default_rng(cfg.seed)
    pos, neg = (rng.permutation(np.flatnonzero(y[train] == c)) for c in (1, 0))
    share = len(pos) / len(train)                     # interleave so every prefix keeps the death rate
    keys = np.concatenate([np.arange(len(pos)) / max(share, 1e-9), np.arange(len(neg)) / max(1 - share, 1e-9)])
    order = np.concatenate([pos, neg])[np.argsort(keys, kind="stable")]
    return Prepared(binner, binned.subset(train), binned.subset(test), binned.subset(val),
                    {"train": train, "val": val, "test": test}, order)


def new_model(cfg: Config, stays: BinnedStays) -> DuETT:
    """A freshly initialised DuETT for ``stays``' shapes (seeded from ``cfg.seed``)."""
    torch.manual_seed(cfg.seed)
    return DuETT(len(stays.variables), stays.values.shape[1], stays.static.shape[1], d_embed=cfg.d_embed,
                 d_hidden=cfg.d_hidden, n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_ff=cfg.d_ff,
                 dropout=cfg.dropout, aug_mask=cfg.aug_mask)


def pretrain(cfg: Config, stays: BinnedStays) -> tuple[DuETT, History]:
    """Self-supervised pre-training on ``stays`` (labels unused), without dropout or bin masking as in the paper.

    Returns:
        The pre-trained DuETT (its regularisation reset to the fine-tuning values) and the loss history.
    """
    model = new_model(cfg, stays).set_regularization(0.0, 0.0)
    task = DuETTPretrainer(model, presence_weight=cfg.presence_weight, var_dropout=cfg.var_dropout)
    history = fit(task, TensorBatches(stays.tensors(), cfg.pretrain_batch), epochs=cfg.pretrain_epochs,
                  lr=cfg.pretrain_lr, device=cfg.device, seed=cfg.seed, optimizer="adamw",
                  weight_decay=cfg.weight_decay, grad_clip=1.0, desc="pre-train")
    return model.set_regularization(cfg.dropout, cfg.aug_mask), history


def finetune(cfg: Config, model: DuETT, labelled: BinnedStays, val: BinnedStays | None = None) -> History:
    """Supervised fine-tuning on ``labelled``; with validation stays, the epoch with the best AUPRC is kept."""
    keep = [KeepBest(model, val.tensors())] if val is not None and 0 < val.labels.mean() < 1 else []
    history = fit(model, TensorBatches(labelled.tensors(), cfg.finetune_batch), epochs=cfg.finetune_epochs,
                  lr=cfg.finetune_lr, device=cfg.device, seed=cfg.seed, optimizer="adamw",
                  weight_decay=cfg.weight_decay, grad_clip=1.0, callbacks=keep, desc="fine-tune")
    if keep:
        keep[0].restore()
    return history


def compare(cfg: Config, prep: Prepared, pretrained: DuETT | None = None,
            fractions: tuple[float, ...] | None = None, scratch: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """GBDT vs DuETT without and with pre-training at each label fraction, scored on the test stays.

    Args:
        pretrained: a pre-trained DuETT (copied before each fine-tuning); None skips that model.
        fractions: label fractions (default ``cfg.label_fractions``).
        scratch: also fine-tune a DuETT without pre-training.

    Returns:
        ``(table, extras)``: rows ``fraction, n_labelled, model, auroc, auprc``; extras hold the test scores
        (``scores[(model, fraction)]``, shape ``(n_test,)``), the fine-tuning histories and the fine-tuned
        DuETT models, keyed the same way.
    """
    rows, scores, histories, models = [], {}, {}, {}
    val = prep.val if len(prep.val) else None
    for fraction in fractions or cfg.label_fractions:
        labelled = prep.labelled(fraction)
        scores[("GBDT", fraction)] = GBDTBaseline(seed=cfg.seed).fit(labelled).predict_proba(prep.test)
        scores[(MODELS[1], fraction)] = LogisticBaseline(cfg.logistic_c).fit(labelled).predict_proba(prep.test)
        starts = {MODELS[2]: new_model(cfg, prep.train)} if scratch else {}
        if pretrained is not None:
            starts[MODELS[3]] = copy.deepcopy(pretrained)
        for name, model in starts.items():
            histories[(name, fraction)] = finetune(cfg, model, labelled, val)
            models[(name, fraction)] = model
            scores[(name, fraction)] = predict_proba(model, prep.test.tensors())
        for name in [m for m in MODELS if (m, fraction) in scores]:
            rows.append({"fraction": fraction, "n_labelled": len(labelled), "model": name,
                         **binary_metrics(prep.test.labels, scores[(name, fraction)])})
    return pd.DataFrame(rows), {"scores": scores, "histories": histories, "models": models}


def oracle_metrics(prep: Prepared, latent: pd.DataFrame | None) -> dict[str, float] | None:
    """AUROC/AUPRC of the generator's own death logit on the test stays: the ceiling for any model (synthetic
    data only; None otherwise)."""
    if latent is None:
        return None
    return binary_metrics(prep.test.labels, latent["logit"].to_numpy()[prep.rows["test"]])


def example_stay(data: PhysioNetData, latent: pd.DataFrame | None) -> int:
    """A stay worth drawing: for synthetic data a death after an episode whose lactate did not clear; for real
    data the first death."""
    died = np.flatnonzero(data.labels == 1)
    if latent is not None:
        row = latent.set_index("RecordID").loc[data.record_ids[died]]
        hit = np.flatnonzero((row["episode_depth"] > 0).to_numpy() & (row["lactate_clearance"] < 0.3).to_numpy())
        if len(hit):
            return int(died[hit[0]])
    return int(died[0]) if len(died) else 0


def _at(table: pd.DataFrame, model: str, fraction: float, metric: str = "auroc") -> float:
    row = table[(table["model"] == model) & np.isclose(table["fraction"], fraction)]
    return float(row[metric].iloc[0])


def record_claims(book: claims.ClaimBook, cfg: Config, table: pd.DataFrame) -> None:
    """The page's claims at the headline label fraction (and the largest one).

    * required: pre-trained DuETT matches or beats the GBDT (AUROC >= GBDT - ``match_tolerance``) at
      ``label_fraction`` (scarce at ``ci``: 10 %);
    * informative: DuETT strictly beats GBDT (AUROC, AUPRC); pre-training beats training from scratch; the
      match at the largest label fraction.
    """
    f, tol = cfg.label_fraction, cfg.match_tolerance
    gbdt, logistic, scratch, duett = (_at(table, m, f) for m in MODELS)
    n = int(table.loc[np.isclose(table["fraction"], f), "n_labelled"].iloc[0])
    where = f"{f:.0%} of training labels ({n} stays), seed {cfg.seed}"
    book.record(f"DuETT matches or beats GBDT ({f:.0%} labels)", metric="test AUROC",
                measured=[duett, gbdt], comparator=f"a >= b - {tol:g}", holds=duett >= gbdt - tol,
                paper=[PAPER[MODELS[3]]["auroc"], PAPER["GBDT"]["auroc"]], note=where)
    book.greater(f"DuETT beats GBDT, AUROC ({f:.0%} labels)", duett, gbdt, metric="test AUROC", required_at=(),
                 paper=[PAPER[MODELS[3]]["auroc"], PAPER["GBDT"]["auroc"]], note=where)
    book.greater(f"DuETT beats GBDT, AUPRC ({f:.0%} labels)", _at(table, MODELS[3], f, "auprc"),
                 _at(table, "GBDT", f, "auprc"), metric="test AUPRC", required_at=(),
                 paper=[PAPER[MODELS[3]]["auprc"], PAPER["GBDT"]["auprc"]], note=where)
    book.greater(f"DuETT beats logistic regression, AUROC ({f:.0%} labels)", duett, logistic,
                 metric="test AUROC", required_at=(), paper="not reported", note=where)
    book.greater(f"pre-training beats no pre-training ({f:.0%} labels)", duett, scratch, metric="test AUROC",
                 required_at=(), paper="pre-training helps (ablation)", note=where + "; small effect at ci")
    top = max(cfg.label_fractions)
    if top != f:
        a, b = _at(table, MODELS[3], top), _at(table, "GBDT", top)
        book.record(f"DuETT matches or beats GBDT ({top:.0%} labels)", metric="test AUROC",
                    measured=[a, b], comparator=f"a >= b - {tol:g}", holds=a >= b - tol, required_at=(),
                    paper=[PAPER[MODELS[3]]["auroc"], PAPER["GBDT"]["auroc"]], note=f"seed {cfg.seed}")


def paper_table(cfg: Config, table: pd.DataFrame, oracle: dict[str, float] | None = None) -> pd.DataFrame:
    """The paper's PhysioNet-2012 AUROC/AUPRC beside this run's, one row per model (and the oracle)."""
    f = cfg.label_fraction
    what = "PhysioNet-2012" if cfg.data == "physionet2012" else "synthetic stays"
    rows = []
    for name in MODELS:
        paper = PAPER.get(name, {})
        rows.append({"model": name + (" (paper: XGBoost)" if name == "GBDT" else ""),
                     "paper AUROC": paper.get("auroc", np.nan), "paper AUPRC": paper.get("auprc", np.nan),
                     "this run AUROC": _at(table, name, f), "this run AUPRC": _at(table, name, f, "auprc"),
                     "this run data": f"{what}, {f:.0%} labels"})
    if oracle is not None:
        rows.append({"model": "generator's own risk (ceiling)", "paper AUROC": np.nan, "paper AUPRC": np.nan,
                     "this run AUROC": oracle["auroc"], "this run AUPRC": oracle["auprc"],
                     "this run data": what})
    return pd.DataFrame(rows).set_index("model").round(3)
