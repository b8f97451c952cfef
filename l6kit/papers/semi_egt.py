"""semi-egt — Semi-Supervised Exploration in Image Retrieval (Chang, Rai, Gorti, Ma, Liu, Yu, Volkovs; Layer 6,
Google Landmark Retrieval Challenge 2019, 3rd place; arXiv:1906.04944).

The configuration per profile, the leaderboard numbers and the experiment functions of
``notebooks/semi-egt.ipynb``. Label transfer, label edges and the traversal live in
:mod:`l6kit.retrieval.semi`; EGT, kNN and the metrics in :mod:`l6kit.retrieval`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from l6kit import claims, data, profiles, viz
from l6kit.retrieval import (
    adjacency,
    arcs,
    chains,
    digits_descriptors,
    egt_rank,
    knn,
    knn_graph,
    knn_rank,
    mean_average_precision,
)
from l6kit.retrieval.semi import (
    BIG,
    LabelledSet,
    bridge_rank,
    corrupt_labels,
    label_rerank,
    labelled_split,
    semi_egt_rank,
    transfer_labels,
    transfer_quality,
    traverse_rank,
)

SLUG = "semi-egt"
TITLE = "Semi-Supervised Exploration in Image Retrieval"
GENERATED = ("digits", "arcs", "chains")
REAL = ("gldv2",)
SEMI, EGT, LABEL_ONLY = "semi-EGT", "EGT", "label transfer only"
QUALITY = ("index coverage", "index accuracy", "query coverage", "query accuracy")

# Kaggle leaderboard mAP@100 (%) of the team's final entry, as quoted by the 1st/3rd-place solution README
# (lyakaap/Landmark2019-1st-and-3rd-Place-Solution) [3rd-party]; not re-checked against Kaggle.
PAPER = {"private mAP@100": 32.18, "public mAP@100": 29.85, "1st place private mAP@100": 37.23}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the reproduction.

    Attributes:
        profile: ci | laptop | paper (set by :func:`config`).
        seed: seeds the generated sets, the query/train/index split and the label noise.
        device: unused (graph methods run on the CPU); kept for the common notebook interface.
        datasets: generated ``digits``/``arcs``/``chains`` or ``gldv2`` (your precomputed descriptors).
        n_queries: queries held out of each generated set.
        train_fraction: share of the non-query rows that form the labelled training set.
        k: kNN graph degree and edges attaching a query (arcs/digits); ``k_chains`` on chains.
        tau: EGT exploit threshold (cosine); ``tau_arcs`` on arcs, whose edges are all very similar.
        p: vertices retrieved by traversal; the rest follows in kNN order.
        top: length of the returned lists (None = the whole index; needed at GLDv2 scale).
        index_k, index_votes: an index image takes a label when ``index_votes`` of its ``index_k`` nearest
            training images agree (solution: 3 of 5).
        query_k, query_votes: the same for queries (solution: 2 of 3).
        hubs: link same-label index images through label hubs (the symmetrised label graph).
        big: label-edge offset above every similarity.
        sweep_set: the set of the labelled-fraction and label-noise sweeps.
        fractions: labelled fractions of the sweep.
        noise_levels: shares of training labels replaced by a wrong label.
        margin: required mAP gain of semi-EGT over EGT on digits.
    """

    profile: str = "paper"
    seed: int = 0
    device: str = "auto"
    datasets: tuple[str, ...] = REAL
    n_queries: int = 100
    train_fraction: float = 0.12
    k: int = 10
    k_chains: int = 30
    tau: float = 0.7
    tau_arcs: float = 0.9
    p: int = 400
    top: int | None = None
    index_k: int = 5
    index_votes: int = 3
    query_k: int = 3
    query_votes: int = 2
    hubs: bool = True
    big: float = BIG
    sweep_set: str = "digits"
    fractions: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 0.5)
    noise_levels: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8)
    margin: float = 0.05


PROFILES: dict[str, dict[str, Any]] = {
    "ci": dict(datasets=("digits", "arcs")),
    "laptop": dict(datasets=GENERATED, fractions=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5),
                   noise_levels=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)),
    # GLDv2: k, tau and p are our choices for GeM-like descriptors (the solution's values were not retrieved).
    "paper": dict(k=100, tau=0.6, p=200, top=100, sweep_set="", fractions=(), noise_levels=()),
}


def config(profile: str = "ci", **overrides: Any) -> Config:
    """The configuration for ``profile`` with ``overrides``; raises ``ValueError`` on unknown names/values."""
    cfg = profiles.resolve(Config(), PROFILES, profile, **overrides)
    for name in (*cfg.datasets, *([cfg.sweep_set] if cfg.sweep_set else [])):
        if name not in GENERATED + REAL:
            raise ValueError(f"unknown data set {name!r}; known: {', '.join(GENERATED + REAL)}")
    if min(cfg.k, cfg.k_chains, cfg.p, cfg.n_queries) < 1 or not 0 < cfg.train_fraction < 1:
        raise ValueError("k, k_chains, p, n_queries must be >= 1 and train_fraction in (0, 1)")
    if not (1 <= cfg.index_votes <= cfg.index_k and 1 <= cfg.query_votes <= cfg.query_k):
        raise ValueError("need 1 <= votes <= k for index and queries")
    if cfg.big <= max(1.0, cfg.tau, cfg.tau_arcs):
        raise ValueError("big must exceed 1 and both thresholds")
    return cfg


def graph_params(cfg: Config, name: str) -> tuple[int, float]:
    """(k, tau) used on data set ``name``."""
    return (cfg.k_chains if name == "chains" else cfg.k), (cfg.tau_arcs if name == "arcs" else cfg.tau)


def load_set(cfg: Config, name: str, train_fraction: float | None = None, noise: float = 0.0) -> LabelledSet:
    """Queries, unlabelled index and labelled training set of ``name``; ``noise`` replaces that share of the
    training labels by wrong ones. ``gldv2`` goes through the data registry (offline stand-in under ci)."""
    if name == "gldv2":
        s = data.load("gldv2-descriptors", cfg.profile, **({"seed": cfg.seed} if cfg.profile == "ci" else {}))
    else:
        X, y = {"digits": digits_descriptors, "arcs": lambda: arcs(seed=cfg.seed),
                "chains": lambda: chains(seed=cfg.seed)}[name]()
        s = labelled_split(X, y, cfg.n_queries, train_fraction or cfg.train_fraction, seed=cfg.seed, name=name)
    if noise > 0:
        s = dataclasses.replace(s, t_labels=corrupt_labels(s.t_labels, noise, seed=cfg.seed))
    return s


def transfer(cfg: Config, s: LabelledSet) -> dict[str, np.ndarray]:
    """Label transfer to the index and the queries with the vote thresholds of ``cfg`` (Eq. 1)."""
    il, ic = transfer_labels(s.T, s.t_labels, s.X, cfg.index_k, cfg.index_votes)
    ql, qc = transfer_labels(s.T, s.t_labels, s.Q, cfg.query_k, cfg.query_votes)
    return {"index_labels": il, "index_conf": ic, "q_labels": ql, "q_conf": qc}


def quality(s: LabelledSet, tr: dict[str, np.ndarray]) -> dict[str, float]:
    """Coverage and accuracy of the transfer on index and queries (accuracy NaN without true labels)."""
    out = {}
    for part, pred, truth in (("index", tr["index_labels"], s.labels), ("query", tr["q_labels"], s.q_labels)):
        q = transfer_quality(pred, truth) if truth is not None else {
            "coverage": float(np.mean(pred >= 0)), "accuracy": float("nan")}
        out |= {f"{part} {key}": v for key, v in q.items()}
    return out


def _scores(s: LabelledSet, R: np.ndarray) -> dict[str, float]:
    return {"mAP": 100 * mean_average_precision(R, s.positives),
            "mAP@100": 100 * mean_average_precision(R, s.positives, k=100)}


def rank_all(cfg: Config, s: LabelledSet, tr: dict[str, np.ndarray], methods: tuple[str, ...] | None = None
             ) -> dict[str, tuple[np.ndarray, list | None, float]]:
    """Rankings of every method: kNN, EGT, EGT with training images as unlabelled bridges, label transfer
    only, semi-EGT with query label edges only, and semi-EGT (query edges + label hubs).

    Returns:
        ``{method: (rankings (m, n or top), traces or None, seconds)}``.
    """
    k, tau = graph_params(cfg, s.name)
    graph = adjacency(*knn_graph(s.X, k))
    lab = dict(q_labels=tr["q_labels"], index_labels=tr["index_labels"], index_conf=tr["index_conf"],
               graph=graph, big=cfg.big, p=cfg.p, top=cfg.top, progress=False)
    runs = {
        "kNN": lambda: (knn_rank(s.Q, s.X) if cfg.top is None else knn(s.X, s.Q, cfg.top)[1], None),
        EGT: lambda: (egt_rank(s.Q, s.X, k, tau, graph=graph, p=cfg.p, progress=False) if cfg.top is None
                      else traverse_rank(s.Q, s.X, graph, k, tau, p=cfg.p, top=cfg.top, progress=False)),
        "EGT + train bridges": lambda: bridge_rank(s.Q, s.X, s.T, k, tau, p=cfg.p, top=cfg.top, progress=False),
        LABEL_ONLY: lambda: (label_rerank(s.Q, s.X, tr["q_labels"], tr["index_labels"], tr["index_conf"],
                                          top=cfg.top), None),
        "semi-EGT (query edges only)": lambda: semi_egt_rank(s.Q, s.X, k, tau, hubs=False, **lab),
        SEMI: lambda: semi_egt_rank(s.Q, s.X, k, tau, hubs=cfg.hubs, **lab),
    }
    out = {}
    for method in methods or tuple(runs):
        t0 = time.perf_counter()
        R, traces = runs[method]()
        out[method] = (R, traces, time.perf_counter() - t0)
    return out


def compare_methods(cfg: Config, s: LabelledSet) -> dict[str, Any]:
    """All methods on one set: the set, a table (dataset, method, mAP, mAP@100 in %, seconds), the transfer
    quality, the transferred labels, the rankings and the semi-EGT traces."""
    tr = transfer(cfg, s)
    runs = rank_all(cfg, s, tr)
    table = pd.DataFrame([{"dataset": s.name, "method": m, **_scores(s, R), "seconds": sec}
                          for m, (R, _, sec) in runs.items()])
    return {"set": s, "table": table, "quality": {"dataset": s.name, **quality(s, tr)}, "transfer": tr,
            "rankings": {m: R for m, (R, _, _) in runs.items()}, "traces": runs[SEMI][1]}


def _sweep(cfg: Config, column: str, setting: str, values) -> pd.DataFrame:
    """EGT, label transfer alone and semi-EGT on ``cfg.sweep_set`` for each value of the :func:`load_set`
    argument ``setting``. Rows ``<column>, method, mAP, mAP@100`` and the :data:`QUALITY` columns."""
    rows = []
    for v in values:
        s = load_set(cfg, cfg.sweep_set, **{setting: v})
        tr = transfer(cfg, s)
        q = quality(s, tr)
        for m, (R, _, _) in rank_all(cfg, s, tr, (EGT, LABEL_ONLY, SEMI)).items():
            rows.append({column: v, "method": m, **_scores(s, R), **{c: q[c] for c in QUALITY}})
    return pd.DataFrame(rows)


def fraction_sweep(cfg: Config) -> pd.DataFrame:
    """Label edges as the labelled share of the data grows (``cfg.fractions``): rows ``fraction, method, mAP,
    mAP@100`` and the :data:`QUALITY` columns."""
    return _sweep(cfg, "fraction", "train_fraction", cfg.fractions)


def noise_sweep(cfg: Config) -> pd.DataFrame:
    """The same split with a growing share of wrong training labels (``cfg.noise_levels``): transfer accuracy
    falls, and so does what label edges add. Rows ``noise, method, mAP, mAP@100`` and the :data:`QUALITY` columns."""
    return _sweep(cfg, "noise", "noise", cfg.noise_levels)


def run_all(cfg: Config) -> dict[str, Any]:
    """Every set of ``cfg.datasets`` (methods and transfer quality) and the two sweeps (if configured)."""
    results = {name: compare_methods(cfg, load_set(cfg, name)) for name in cfg.datasets}
    sweep = bool(cfg.sweep_set)
    return {"sets": results,
            "methods": pd.concat([r["table"] for r in results.values()], ignore_index=True),
            "quality": pd.DataFrame([r["quality"] for r in results.values()]),
            "fractions": fraction_sweep(cfg) if sweep and cfg.fractions else pd.DataFrame(),
            "noise": noise_sweep(cfg) if sweep and cfg.noise_levels else pd.DataFrame()}


def _val(table: pd.DataFrame, method: str, metric: str = "mAP", **where: Any) -> float:
    sel = table["method"] == method
    for col, v in where.items():
        sel &= table[col] == v
    return float(table.loc[sel, metric].iloc[0])


def record_claims(book: claims.ClaimBook, cfg: Config, result: dict[str, Any]) -> None:
    """Claims: semi-EGT beats EGT by ``cfg.margin`` on digits and beats label transfer alone there
    (required); semi-EGT beats kNN on every set (required); semi-EGT vs EGT elsewhere (informative);
    wrong labels hurt (required) and can make semi-EGT worse than EGT (informative); the gain grows with the
    labelled fraction (informative)."""
    m = result["methods"]
    lb = PAPER["private mAP@100"]
    for name in result["sets"]:
        semi, egt, knn, lab = (_val(m, x, dataset=name) for x in (SEMI, EGT, "kNN", LABEL_ONLY))
        book.greater(f"{name}: semi-EGT mAP > kNN mAP", semi, knn, metric="mAP % (semi-EGT, kNN)",
                     required_at=("ci",) if name in GENERATED else ())
        if name == "digits":
            book.greater(f"digits: semi-EGT mAP > EGT mAP + {100 * cfg.margin:g}", semi, egt + 100 * cfg.margin,
                         metric="mAP % (semi-EGT, EGT + margin)", paper=f"3rd place, private mAP@100 {lb}",
                         required_at=("ci", "laptop"), note="label edges over the unsupervised traversal")
            book.greater("digits: semi-EGT mAP > label transfer alone", semi, lab,
                         metric="mAP % (semi-EGT, label only)", required_at=("ci", "laptop"),
                         note="the graph adds to the labels: unlabelled and mislabelled images")
        else:
            book.greater(f"{name}: semi-EGT mAP > EGT mAP", semi, egt, metric="mAP % (semi-EGT, EGT)",
                         required_at=(), note="informative: where EGT is already near perfect, transfer "
                                              "errors pull in whole wrong classes")
    noise = result["noise"]
    if len(noise):
        lo, hi = noise["noise"].min(), noise["noise"].max()
        s_lo, s_hi = (_val(noise, SEMI, "mAP@100", noise=x) for x in (lo, hi))
        book.greater(f"{cfg.sweep_set}: wrong labels hurt (semi-EGT mAP@100, noise {lo:g} > noise {hi:g})",
                     s_lo, s_hi, metric="mAP@100 %", required_at=("ci", "laptop"))
        book.greater(f"{cfg.sweep_set}: at noise {hi:g} semi-EGT falls below EGT", _val(noise, EGT, "mAP@100",
                     noise=hi), s_hi, metric="mAP@100 % (EGT, semi-EGT)", required_at=(),
                     note="informative: label edges are only as good as the transferred labels")
    frac = result["fractions"]
    if len(frac):
        gain = {f: _val(frac, SEMI, "mAP@100", fraction=f) - _val(frac, EGT, "mAP@100", fraction=f)
                for f in frac["fraction"].unique()}
        lo, hi = min(gain), max(gain)
        book.greater(f"{cfg.sweep_set}: gain over EGT larger with {hi:g} than with {lo:g} labelled",
                     gain[hi], gain[lo], metric="mAP@100 gain % (largest, smallest fraction)", required_at=())


def summary_table(cfg: Config, result: dict[str, Any]) -> pd.DataFrame:
    """Result vs paper: the leaderboard mAP@100 beside this run's EGT and semi-EGT mAP@100 per set."""
    m = result["methods"]
    rows = []
    for name in result["sets"]:
        for method in (EGT, SEMI):
            rows.append({"metric": f"mAP@100 %, {method}, {name}",
                         "paper": f"{PAPER['private mAP@100']} (semi-EGT, GLDv2 private LB)" if method == SEMI
                         else "not reported", "this run": round(_val(m, method, "mAP@100", dataset=name), 2),
                         "profile": cfg.profile})
    return pd.DataFrame(rows)


def list_figure(s: LabelledSet, result: dict[str, Any], query: int, length: int = 100) -> go.Figure:
    """The first ``length`` results of one query for kNN, EGT and semi-EGT as rows of squares: relevant or
    not, and (semi-EGT) whether the image entered through a label edge."""
    rel = np.zeros(len(s.X), bool)
    rel[s.positives[query]] = True
    tr = result["traces"][query]
    via_label = set(tr.order[tr.weight >= BIG - 1].tolist())
    fig = go.Figure()
    for method in ("kNN", EGT, SEMI):
        ids = result["rankings"][method][query][:length]
        sym = ["diamond" if (method == SEMI and v in via_label) else "square" for v in ids.tolist()]
        fig.add_trace(go.Scatter(x=np.arange(1, len(ids) + 1), y=[method] * len(ids), mode="markers",
                                 showlegend=False, marker=dict(symbol=sym, size=9,
                                                               color=np.where(rel[ids], viz.PALETTE[2],
                                                                              viz.PALETTE[3]))))
    fig.update_layout(template=viz.TEMPLATE, height=300, xaxis_title="rank", yaxis=dict(autorange="reversed"),
                      title=f"{s.name}, query {query}: green = relevant, red = not; "
                            "◆ = entered semi-EGT through a label edge")
    return fig


def sweep_figure(table: pd.DataFrame, x: str, xlabel: str, title: str) -> go.Figure:
    """mAP@100 of each method against ``x`` (lines) with the index transfer accuracy and coverage (dashed,
    right axis); an empty figure saying so when the sweep was not run (``table`` empty)."""
    if table.empty:
        return go.Figure().update_layout(template=viz.TEMPLATE, title=f"{title}: not run at this profile")
    fig = viz.lines(table, x=x, y="mAP@100", group="method", xlabel=xlabel, ylabel="mAP@100 (%)", title=title)
    acc = table.drop_duplicates(x).sort_values(x)
    for col, dash in (("index accuracy", "dash"), ("index coverage", "dot")):
        fig.add_trace(go.Scatter(x=acc[x], y=100 * acc[col], name=f"{col} (%)", yaxis="y2", mode="lines+markers",
                                 line=dict(dash=dash, color="grey")))
    fig.update_layout(yaxis2=dict(overlaying="y", side="right", title="label transfer (%)", range=[0, 105]),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def showcase_query(s: LabelledSet, result: dict[str, Any]) -> int:
    """The query whose AP gains most from semi-EGT over EGT (for :func:`list_figure`)."""
    from l6kit.retrieval import average_precision

    R = result["rankings"]
    gain = [average_precision(R[SEMI][i], p) - average_precision(R[EGT][i], p) for i, p in enumerate(s.positives)]
    return int(np.argmax(gain))
