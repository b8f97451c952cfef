"""HGCF — Hyperbolic Graph Convolution Networks for Collaborative Filtering (Sun et al., WWW 2021).

The paper's configuration per profile, its reported numbers, and the experiment functions the notebook
``notebooks/hgcf.ipynb`` calls. The model lives in :mod:`l6kit.recsys.hgcf`, the generated tree data in
:mod:`l6kit.recsys.synthetic`, metrics and splits in :mod:`l6kit.recsys`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from l6kit import claims, data, profiles
from l6kit.recsys import amazon, holdout_split, movielens, ndcg_at_k, recall_at_k, to_csr  # noqa: F401
from l6kit.recsys.hgcf import GraphRanker, LightGCN, TripletBatches, logmap0, popularity_scores, recentre
from l6kit.recsys.synthetic import tree_interactions
from l6kit.train import fit

SLUG = "hgcf"
TITLE = "HGCF: Hyperbolic Graph Convolution Networks for Collaborative Filtering"
DATASETS = ("tree", "movielens-100k", "movielens-1m", "amazon-cd", "amazon-book", "yelp2020")
MODELS = ("hyperbolic", "euclidean", "lightgcn")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the HGCF reproduction (defaults are the paper's where known; profiles change some).

    Attributes:
        profile: ci | laptop | paper (set by :func:`config`).
        seed: seed of the generated data, the split, the initialisation and the negatives.
        device: torch device ("auto" picks a GPU when present).
        dataset: "tree" (generated) or a registry source: movielens-100k/1m, amazon-cd, amazon-book, yelp2020.
        n_users, branching, depth, items_per_leaf, per_user, interests, zipf: the generated tree data
            (:func:`l6kit.recsys.synthetic.tree_interactions`; items on the leaves only).
        min_rating, core: implicit feedback from ratings (>= min_rating) and the k-core filter (real data).
        test_frac: per-user holdout fraction.
        dim: embedding dimension of the main comparison (the paper: 50).
        dims: dimensions of the sweep.
        layers: GCN depth L (the paper: 3).
        margin: ranking margin on squared distances (the paper: 0.1).
        epochs, batch_size, lr, weight_decay: training (the paper: 500 epochs, batches of 10,000, RSGD;
            here Adam on the tangent-space coordinates, see the notebook's Limits).
        k: list length of Recall@k / NDCG@k (the paper reports 10 and 20).
        eval_every: epochs between test evaluations on the training curves.
        claim_factor: the required claim is recall_hyp > claim_factor x recall_euc at ``dim``.
        decays: other weight decays for the sensitivity check of the two geometries at ``dim``.
    """

    profile: str = "paper"
    seed: int = 0
    device: str = "auto"
    dataset: str = "amazon-cd"
    n_users: int = 1000
    branching: int = 3
    depth: int = 5
    items_per_leaf: int = 4
    per_user: int = 25
    interests: int = 2
    zipf: float = 1.0
    min_rating: float = 4.0
    core: int = 10
    test_frac: float = 0.2
    dim: int = 50
    dims: tuple[int, ...] = (10, 20, 50)
    layers: int = 3
    margin: float = 0.1
    epochs: int = 500
    batch_size: int = 10_000
    lr: float = 1e-3
    weight_decay: float = 1e-3
    k: int = 20
    eval_every: int = 25
    claim_factor: float = 1.05
    decays: tuple[float, ...] = ()


PROFILES: dict[str, dict[str, Any]] = {
    "ci": dict(dataset="tree", dim=8, dims=(2, 4, 8, 16), margin=2.0, epochs=40, batch_size=2048, lr=0.03,
               weight_decay=3e-4, eval_every=5, decays=(1e-4, 1e-3)),
    "laptop": dict(dataset="tree", n_users=2000, dim=8, dims=(2, 4, 8, 16, 32), margin=2.0, epochs=60,
                   batch_size=2048, lr=0.03, weight_decay=3e-4, eval_every=5, decays=(0.0, 1e-4, 1e-3)),
    "paper": {},
}

# Table 2 of the paper, as summarised in our card; these values are [UNVERIFIED] against the PDF.
PAPER: dict[str, dict[str, float]] = {
    "amazon-cd": {"recall@10": 0.096, "recall@20": 0.15},
    "amazon-book": {"recall@10": 0.087, "recall@20": 0.13},
    "yelp2020": {"recall@10": 0.053, "recall@20": 0.09},
}


def config(profile: str = "ci", **overrides: Any) -> Config:
    """The configuration for ``profile`` with ``overrides``; raises ``ValueError`` on unknown names/values."""
    cfg = profiles.resolve(Config(), PROFILES, profile, **overrides)
    if cfg.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; known: {', '.join(DATASETS)}")
    if cfg.dataset != "tree" and cfg.profile == "ci":
        raise ValueError("profile 'ci' is offline: only dataset='tree' is available there")
    if min(cfg.dims + (cfg.dim,)) < 1 or cfg.layers < 1:
        raise ValueError("dim, dims and layers must be >= 1")
    return cfg


@dataclasses.dataclass(frozen=True)
class Split:
    """Train/test interactions and per-node metadata (``users``/``items``: depth, subtree, popularity)."""

    train: sp.csr_matrix
    test: sp.csr_matrix
    users: pd.DataFrame
    items: pd.DataFrame
    name: str


def load_split(cfg: Config) -> Split:
    """The interactions of ``cfg.dataset`` split per user (``cfg.test_frac`` held out).

    Tree data carries each node's depth and depth-1 subtree; real data gets -1 there.
    """
    if cfg.dataset == "tree":
        t = tree_interactions(cfg.n_users, cfg.branching, cfg.depth, cfg.items_per_leaf, internal_items=0,
                              interests=cfg.interests, per_user=cfg.per_user, zipf=cfg.zipf, seed=cfg.seed)
        R, users, items = t.R, t.users[["depth", "subtree"]], t.items[["depth", "subtree"]]
    else:
        df = data.load(cfg.dataset, cfg.profile)
        df = amazon.k_core(df[df["rating"] >= cfg.min_rating], cfg.core)
        R = to_csr(df["user"], df["item"], int(df["user"].max()) + 1, int(df["item"].max()) + 1)
        users = pd.DataFrame({"depth": -1, "subtree": -1}, index=range(R.shape[0]))
        items = pd.DataFrame({"depth": -1, "subtree": -1}, index=range(R.shape[1]))
    train, test = holdout_split(R, cfg.test_frac, seed=cfg.seed)
    users = users.reset_index(drop=True).assign(popularity=np.diff(train.indptr))
    items = items.reset_index(drop=True).assign(popularity=np.asarray(train.sum(0)).ravel().astype(int))
    return Split(train, test, users, items, cfg.dataset)


def evaluate(scores: np.ndarray, split: Split, k: int) -> dict[str, float]:
    """Mean Recall@k and NDCG@k over users with held-out items (training items excluded)."""
    return {f"recall@{k}": float(np.nanmean(recall_at_k(scores, split.test, k, split.train))),
            f"ndcg@{k}": float(np.nanmean(ndcg_at_k(scores, split.test, k, split.train)))}


def make_model(cfg: Config, split: Split, kind: str, dim: int) -> torch.nn.Module:
    """``kind`` in :data:`MODELS`: HGCF, its Euclidean twin, or LightGCN, initialised from ``cfg.seed``."""
    if kind == "lightgcn":
        return LightGCN(split.train, dim=dim, layers=cfg.layers, seed=cfg.seed)
    return GraphRanker(split.train, dim=dim, layers=cfg.layers, margin=cfg.margin, geometry=kind, seed=cfg.seed)


def train(cfg: Config, split: Split, kind: str, dim: int, curve: bool = False) -> dict[str, Any]:
    """Train one model with :func:`l6kit.train.fit` and evaluate it.

    Returns:
        ``{"model", "losses", "seconds", "recall@k", "ndcg@k", "curve"}``; ``curve`` is a DataFrame
        ``epoch, recall@k`` (every ``cfg.eval_every`` epochs) when ``curve`` is set, else None.
    """
    model = make_model(cfg, split, kind, dim)
    rows: list[dict[str, float]] = []

    def track(state):
        if curve and (state["epoch"] % cfg.eval_every == 0 or state["epoch"] == cfg.epochs):
            rows.append({"epoch": state["epoch"], **evaluate(state["model"].scores(), split, cfg.k)})

    t0 = time.perf_counter()
    hist = fit(model, TripletBatches(split.train, cfg.batch_size), epochs=cfg.epochs, lr=cfg.lr,
               weight_decay=cfg.weight_decay if kind != "lightgcn" else 0.0, device=cfg.device, seed=cfg.seed,
               amp=False, callbacks=[track], desc=f"{kind} d={dim}")
    seconds = time.perf_counter() - t0
    return {"model": model, "losses": hist.losses, "seconds": seconds, **evaluate(model.scores(), split, cfg.k),
            "curve": pd.DataFrame(rows) if curve else None}


def dimension_sweep(cfg: Config, split: Split, models: tuple[str, ...] = MODELS) -> pd.DataFrame:
    """Recall@k / NDCG@k of every model at every ``cfg.dims``, plus the popularity baseline (dim 0).

    Returns:
        Rows ``model, dim, recall@k, ndcg@k, seconds``.
    """
    rows = [{"model": "popularity", "dim": 0, **evaluate(popularity_scores(split.train), split, cfg.k),
             "seconds": 0.0}]
    for dim in cfg.dims:
        for kind in models:
            out = train(cfg, split, kind, dim)
            rows.append({"model": kind, "dim": dim, f"recall@{cfg.k}": out[f"recall@{cfg.k}"],
                         f"ndcg@{cfg.k}": out[f"ndcg@{cfg.k}"], "seconds": out["seconds"]})
    return pd.DataFrame(rows)


def tangent_coords(model: GraphRanker, centre: bool = True) -> np.ndarray:
    """``(n_users + n_items, d)`` tangent vectors at the origin of the final embeddings: ``log_o x``, or with
    ``centre`` after the isometry that moves their midpoint to the origin (:func:`l6kit.recsys.hgcf.recentre`;
    the Euclidean twin: minus the mean)."""
    with torch.no_grad():
        x = model.embed().double().cpu()
        if model.geometry == "hyperbolic":
            return (recentre(x) if centre else logmap0(x)).numpy()
        return (x - x.mean(0) if centre else x).numpy()


def poincare_points(model: GraphRanker, dims: int | None = None, centre: bool = True) -> np.ndarray:
    """The final HGCF embeddings in the Poincaré ball, ``(n, d)`` (see :func:`tangent_coords` for ``centre``).

    With ``dims=2``, a 2-D view: the tangent vectors are projected on their top principal axes, rescaled to
    keep each vector's length (the hyperbolic distance to the centre), and mapped with ``exp_o`` to the disk.
    """
    v = tangent_coords(model, centre)
    if dims is not None and dims < v.shape[1]:
        _, _, vt = np.linalg.svd(v, full_matrices=False)
        w = v @ vt[:dims].T
        w *= np.linalg.norm(v, axis=1, keepdims=True) / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        v = w
    r = np.linalg.norm(v, axis=1, keepdims=True)
    p = np.tanh(r / 2) * v / np.maximum(r, 1e-12)              # exp_o, then x_s / (1 + x_0), K = 1
    norm = np.linalg.norm(p, axis=1, keepdims=True)
    return p * np.minimum(1.0, (1 - 1e-5) / np.maximum(norm, 1e-12))   # stay strictly inside in float32


def node_table(split: Split, model: GraphRanker) -> pd.DataFrame:
    """One row per user then item: ``kind, id, popularity, depth, subtree, radius`` (hyperbolic distance to
    the midpoint of all embeddings)."""
    r = np.linalg.norm(tangent_coords(model), axis=1)
    users = split.users.assign(kind="user", id=np.arange(len(split.users)))
    items = split.items.assign(kind="item", id=np.arange(len(split.items)))
    table = pd.concat([users, items], ignore_index=True)[["kind", "id", "popularity", "depth", "subtree"]]
    return table.assign(radius=r)


def main_comparison(cfg: Config, split: Split) -> dict[str, dict[str, Any]]:
    """HGCF, its Euclidean twin (both with test curves) and LightGCN at ``cfg.dim``: kind -> :func:`train`."""
    return {kind: train(cfg, split, kind, cfg.dim, curve=kind != "lightgcn") for kind in MODELS}


def sweep_table(cfg: Config, split: Split, main: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """:func:`dimension_sweep` of the two geometries over ``cfg.dims`` (reusing ``main`` at ``cfg.dim``; LightGCN
    only there under ``ci``, at every dimension otherwise), in long form ``model, dim, recall@k, ndcg@k``."""
    others = dataclasses.replace(cfg, dims=tuple(d for d in cfg.dims if d != cfg.dim))
    models = ("hyperbolic", "euclidean") if cfg.profile == "ci" else MODELS
    table = dimension_sweep(others, split, models)
    k = cfg.k
    at_dim = [{"model": kind, "dim": cfg.dim, f"recall@{k}": r[f"recall@{k}"], f"ndcg@{k}": r[f"ndcg@{k}"],
               "seconds": r["seconds"]} for kind, r in main.items()]
    return pd.concat([table, pd.DataFrame(at_dim)], ignore_index=True).sort_values(["model", "dim"],
                                                                                   ignore_index=True)


def decay_sweep(cfg: Config, split: Split, main: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Both geometries at ``cfg.dim`` for every weight decay in ``cfg.decays`` (plus ``cfg.weight_decay`` from
    ``main``): rows ``weight_decay, hyperbolic, euclidean, ratio`` (Recall@k)."""
    key = f"recall@{cfg.k}"
    rows = [{"weight_decay": cfg.weight_decay, **{g: main[g][key] for g in ("hyperbolic", "euclidean")}}]
    for wd in cfg.decays:
        other = dataclasses.replace(cfg, weight_decay=wd)
        rows.append({"weight_decay": wd, **{g: train(other, split, g, cfg.dim)[key]
                                            for g in ("hyperbolic", "euclidean")}})
    out = pd.DataFrame(rows).sort_values("weight_decay", ignore_index=True)
    return out.assign(ratio=out["hyperbolic"] / out["euclidean"])


def ratio_by_dim(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """Recall@k of HGCF / its Euclidean twin per dimension: rows ``dim, hyperbolic, euclidean, ratio``."""
    wide = table.pivot_table(index="dim", columns="model", values=f"recall@{k}")
    wide = wide[[c for c in ("hyperbolic", "euclidean", "lightgcn") if c in wide]].dropna(subset=["hyperbolic"])
    return wide.assign(ratio=wide["hyperbolic"] / wide["euclidean"]).reset_index()


def record_claims(book: claims.ClaimBook, cfg: Config, main: dict[str, dict[str, Any]], table: pd.DataFrame,
                  decays: pd.DataFrame | None = None) -> None:
    """The page's claims.

    Required (at ``ci`` and ``laptop``, tree data): HGCF beats its Euclidean twin by ``cfg.claim_factor`` in
    Recall@k at ``cfg.dim``; HGCF beats the popularity baseline. Informative: the ratio at the smallest and
    the largest swept dimension, at every other weight decay in ``decays``, and HGCF vs LightGCN.
    """
    k, key = cfg.k, f"recall@{cfg.k}"
    on_tree = ("ci", "laptop") if cfg.dataset == "tree" else ()
    hyp, euc, light = (main[m][key] for m in MODELS)
    pop = float(table.loc[table["model"] == "popularity", key].iloc[0])
    book.greater(f"HGCF beats its Euclidean twin at d={cfg.dim}", hyp, euc, factor=cfg.claim_factor,
                 metric=f"Recall@{k} (hyperbolic vs Euclidean)", paper="HGCF > Euclidean GCN counterpart",
                 required_at=on_tree)
    book.greater(f"HGCF beats item popularity at d={cfg.dim}", hyp, pop, metric=f"Recall@{k}",
                 paper="HGCF >> popularity", required_at=on_tree)
    ratios = ratio_by_dim(table, k)
    for label, row in (("smallest", ratios.iloc[0]), ("largest", ratios.iloc[-1])):
        book.greater(f"HGCF vs twin at the {label} dimension (d={int(row['dim'])})", row["hyperbolic"],
                     row["euclidean"], factor=cfg.claim_factor, metric=f"Recall@{k}", required_at=(),
                     note="where the gap closes (the paper: hyperbolic gains most at low dimension)")
    book.greater(f"HGCF beats LightGCN at d={cfg.dim}", hyp, light, metric=f"Recall@{k}",
                 paper="HGCF > LightGCN (Table 2)", required_at=(),
                 note="LightGCN uses BPR and dot products; no weight decay")
    for row in ([] if decays is None else decays.itertuples()):
        if row.weight_decay != cfg.weight_decay:
            book.greater(f"HGCF vs twin with weight decay {row.weight_decay:g} (d={cfg.dim})", row.hyperbolic,
                         row.euclidean, factor=cfg.claim_factor, metric=f"Recall@{k}", required_at=(),
                         note="sensitivity: both geometries share every setting")


def embedding_meta(split: Split, model: GraphRanker) -> pd.DataFrame:
    """Metadata for :func:`l6kit.embeddings.save_table`: ``kind, id, popularity, depth, subtree``."""
    return node_table(split, model)[["kind", "id", "popularity", "depth", "subtree"]]


def paper_table(cfg: Config, main: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The paper's Recall@20 per data set beside this run's (on ``cfg.dataset``) for each model.

    Returns:
        Rows ``source, dataset, model, recall@k``.
    """
    rows = [{"source": "paper (Table 2, unverified)", "dataset": name, "model": "HGCF",
             "recall@20": vals["recall@20"]} for name, vals in PAPER.items()]
    names = {"hyperbolic": "HGCF", "euclidean": "Euclidean twin", "lightgcn": "LightGCN"}
    rows += [{"source": f"this run ({cfg.profile}, d={cfg.dim})", "dataset": cfg.dataset, "model": names[kind],
              "recall@20": res[f"recall@{cfg.k}"] if cfg.k == 20 else float("nan")} for kind, res in main.items()]
    return pd.DataFrame(rows).round(4)


def radius_summary(nodes: pd.DataFrame) -> dict[str, Any]:
    """Spearman correlation of item radius with training popularity, and users' median radius per interest
    depth (``nodes`` from :func:`node_table`)."""
    from scipy.stats import spearmanr

    items, users = nodes[nodes["kind"] == "item"], nodes[nodes["kind"] == "user"]
    return {"items: Spearman(radius, popularity)": round(float(spearmanr(items["radius"],
                                                                          items["popularity"]).statistic), 3),
            "users: median radius by depth": users.groupby("depth")["radius"].median().round(3).to_dict()}
