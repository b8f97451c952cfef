"""EGT — Explore-Exploit Graph Traversal for Image Retrieval (Chang, Yu, Volkovs et al., CVPR 2019).

The paper's configuration per profile, its reported numbers, and the experiment functions the notebook
``notebooks/egt.ipynb`` calls. The traversal lives in :mod:`l6kit.retrieval.egt`, the baselines and metrics
in :mod:`l6kit.retrieval`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import pandas as pd

from l6kit import claims, profiles
from l6kit.retrieval import (
    adjacency,
    alpha_qe,
    arcs,
    diffusion,
    diffusion_system,
    egt_rank,
    egt_traverse,
    knn_graph,
    knn_rank,
    mean_average_precision,
    revisited_map,
    sets,
    split_queries,
)
from l6kit.retrieval.sets import GENERATED, REVISITED, Split

SLUG = "egt"
TITLE = "Explore-Exploit Graph Traversal for Image Retrieval"
METHODS = ("kNN", "α-QE", "diffusion", "EGT")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the EGT reproduction (defaults are the paper's ROxford setting; profiles change some).

    Attributes:
        profile: ci | laptop | paper (set by :func:`config`).
        seed: seed of the generated descriptor sets and of the query split.
        device: unused (everything runs on the CPU); kept for the common notebook interface.
        datasets: descriptor sets: generated ``arcs``/``chains``/``digits`` or revisited ``roxford5k``/``rparis6k``.
        n_queries: queries held out of each generated set (the revisited sets have their own 70).
        k: neighbours per vertex of the index graph and edges attaching a query (paper: 250).
        tau: exploit threshold in cosine units (paper: 0.42), used when ``tau_quantile`` is None.
        tau_quantile: if set, tau = this quantile of the index graph's edge weights (comparable across sets).
        p: vertices retrieved by traversal; the rest of the ranking follows in kNN order (paper: 5000).
        qe_k, qe_alpha: α-QE neighbours and exponent.
        diff_k, diff_gamma, diff_alpha: diffusion graph neighbours, weight exponent, restart parameter.
        sweep_sets, sweep_ks, sweep_quantiles, sweep_queries: the k x tau sweep (tau as edge-weight quantiles;
            -inf and inf are added: breadth-first layers and Prim order).
        timing_sizes, timing_queries: index sizes and queries for the online cost vs N (arcs).
        margin: required mAP gain (points) of EGT over kNN and α-QE on the multi-manifold sets.
    """

    profile: str = "paper"
    seed: int = 0
    device: str = "auto"
    datasets: tuple[str, ...] = REVISITED
    n_queries: int = 100
    k: int = 250
    tau: float = 0.42
    tau_quantile: float | None = None
    p: int = 5000
    qe_k: int = 10
    qe_alpha: float = 3.0
    diff_k: int = 50
    diff_gamma: float = 3.0
    diff_alpha: float = 0.99
    sweep_sets: tuple[str, ...] = ("roxford5k",)
    sweep_ks: tuple[int, ...] = (50, 100, 250, 500)
    sweep_quantiles: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    sweep_queries: int = 70
    timing_sizes: tuple[int, ...] = (2000, 5000, 10000, 20000)
    timing_queries: int = 50
    margin: float = 20.0


PROFILES: dict[str, dict[str, Any]] = {
    "ci": dict(datasets=GENERATED, k=30, tau_quantile=0.5, p=400, diff_k=30, sweep_sets=("chains", "digits"),
               sweep_ks=(10, 20, 30), sweep_quantiles=(0.25, 0.5, 0.9), sweep_queries=25,
               timing_sizes=(1000, 2000, 4000, 8000), timing_queries=20),
    "laptop": dict(datasets=GENERATED + REVISITED, k=30, tau_quantile=0.5, p=1000, diff_k=30,
                   sweep_sets=("chains", "digits"), sweep_ks=(10, 20, 30, 50), sweep_queries=100,
                   timing_sizes=(2000, 5000, 10000, 20000, 50000)),
    "paper": {},
}

# ROxford, revisited protocol, mAP %. EGT: the official README ("first half of Table 1"; the authors' own
# descriptors, k=250, tau=0.42, p=5000). Baselines: ResNet-101 GeM rows as quoted in the card [UNVERIFIED].
PAPER: dict[str, dict[str, float]] = {
    "EGT": {"roxford5k medium": 73.63, "roxford5k hard": 56.29},
    "kNN": {"roxford5k medium": 64.7, "roxford5k hard": 38.5, "rparis6k medium": 77.2, "rparis6k hard": 56.3},
    "α-QE": {"roxford5k medium": 67.2, "roxford5k hard": 40.8, "rparis6k medium": 80.7, "rparis6k hard": 61.8},
    "diffusion": {"roxford5k medium": 69.8, "roxford5k hard": 40.5, "rparis6k medium": 88.9,
                  "rparis6k hard": 78.5},
}


def config(profile: str = "ci", **overrides: Any) -> Config:
    """The configuration for ``profile`` with ``overrides``; raises ``ValueError`` on unknown names/values."""
    cfg = profiles.resolve(Config(), PROFILES, profile, **overrides)
    for name in (*cfg.datasets, *cfg.sweep_sets):
        if name not in GENERATED + REVISITED:
            raise ValueError(f"unknown descriptor set {name!r}; known: {', '.join(GENERATED + REVISITED)}")
    if min(cfg.k, cfg.qe_k, cfg.diff_k, *cfg.sweep_ks) < 1 or cfg.p < 1:
        raise ValueError("k, qe_k, diff_k, sweep_ks and p must be >= 1")
    if cfg.tau_quantile is not None and not 0 <= cfg.tau_quantile <= 1:
        raise ValueError(f"tau_quantile must be in [0, 1], got {cfg.tau_quantile}")
    return cfg


def load_split(cfg: Config, name: str, n_queries: int | None = None) -> Split:
    """Descriptor set ``name`` at this profile and seed (:func:`l6kit.retrieval.sets.load_split`)."""
    return sets.load_split(name, profile=cfg.profile, seed=cfg.seed, n_queries=n_queries or cfg.n_queries)


def toy_traversals(taus: tuple[float, ...] = (-math.inf, 0.55, 0.85, math.inf)) -> pd.DataFrame:
    """EGT on a five-vertex toy graph (edges 0-1: 0.9, 1-2: 0.8, 0-3: 0.5, 3-4: 0.95, 2-4: 0.3; the query attaches
    to 0 with 0.95 and to 3 with 0.6) for each threshold in ``taus``: τ = -inf gives breadth-first layers, τ = inf
    Prim order. The same graph is checked by hand in ``tests/test_retrieval.py``.

    Returns:
        One row per τ: ``τ, visiting order, steps, round``.
    """
    sims = np.array([[0.9, 0.5], [0.9, 0.8], [0.8, 0.3], [0.95, 0.5], [0.95, 0.3]])
    ids = np.array([[1, 3], [0, 2], [1, 4], [4, 0], [3, 2]])
    toy = adjacency(sims, ids)
    rows = []
    for tau in taus:
        tr = egt_traverse(np.array([0.95, 0.6]), np.array([0, 3]), toy, tau)
        rows.append({"τ": tau, "visiting order": tr.order.tolist(), "steps": " ".join(tr.step),
                     "round": tr.round.tolist()})
    return pd.DataFrame(rows)


def tau_for(cfg: Config, graph_sims: np.ndarray) -> float:
    """The exploit threshold: ``cfg.tau``, or the ``cfg.tau_quantile`` quantile of the graph's edge weights."""
    if cfg.tau_quantile is None:
        return float(cfg.tau)
    return float(np.quantile(graph_sims, cfg.tau_quantile))


def egt_index(cfg: Config, X: np.ndarray) -> tuple[list, float]:
    """The offline part of EGT: the max-symmetrised kNN graph of the index as adjacency lists, and tau."""
    sims, ids = knn_graph(X, cfg.k)
    return adjacency(sims, ids), tau_for(cfg, sims)


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def compare_methods(cfg: Config, split: Split) -> dict[str, Any]:
    """kNN, α-QE, diffusion and EGT on one split: mAP (full ranking, %) and wall time, split into the
    offline part (index graph / diffusion system) and the online part (all queries).

    Returns:
        ``{"table": rows dataset, method, mAP, offline_s, online_s, ms_per_query, "rankings": {method:
        (m, n)}, "traces": EGT traces, "tau": float}``.
    """
    m, ranks, rows = len(split.Q), {}, []
    ranks["kNN"], t_knn = _timed(knn_rank, split.Q, split.X)
    ranks["α-QE"], t_qe = _timed(alpha_qe, split.Q, split.X, cfg.qe_k, cfg.qe_alpha)
    system, off_diff = _timed(diffusion_system, split.X, cfg.diff_k, cfg.diff_gamma, cfg.diff_alpha)
    ranks["diffusion"], t_diff = _timed(diffusion, split.Q, split.X, cfg.diff_k, cfg.diff_gamma,
                                        cfg.diff_alpha, system=system)
    (graph, tau), off_egt = _timed(egt_index, cfg, split.X)
    (ranks["EGT"], traces), t_egt = _timed(egt_rank, split.Q, split.X, cfg.k, tau, graph=graph, p=cfg.p)
    for method, off, on in (("kNN", 0.0, t_knn), ("α-QE", 0.0, t_qe), ("diffusion", off_diff, t_diff),
                            ("EGT", off_egt, t_egt)):
        rows.append({"dataset": split.name, "method": method, "offline_s": off, "online_s": on,
                     "ms_per_query": 1000 * on / m,
                     "mAP": 100 * mean_average_precision(ranks[method], split.positives)})
    return {"table": pd.DataFrame(rows), "rankings": ranks, "traces": traces, "tau": tau}


def sweep(cfg: Config, split: Split) -> pd.DataFrame:
    """EGT mAP over ``cfg.sweep_ks`` x thresholds (edge-weight quantiles, plus -inf = breadth-first layers
    and +inf = Prim order) on the first ``cfg.sweep_queries`` queries.

    Returns:
        Rows ``dataset, k, quantile, tau, mAP, explore_share`` (share of retrieved vertices taken by explore
        steps).
    """
    Q, pos = split.Q[:cfg.sweep_queries], split.positives[:cfg.sweep_queries]
    rows = []
    for k in cfg.sweep_ks:
        graph = knn_graph(split.X, k)
        for q in (-math.inf, *cfg.sweep_quantiles, math.inf):
            tau = q if math.isinf(q) else float(np.quantile(graph[0], q))
            R, traces = egt_rank(Q, split.X, k, tau, graph=graph, p=cfg.p)
            rows.append({"dataset": split.name, "k": k, "quantile": q, "tau": tau,
                         "mAP": 100 * mean_average_precision(R, pos),
                         "explore_share": float(np.mean([np.mean(t.step == "explore") for t in traces]))})
    return pd.DataFrame(rows)


def timing_vs_n(cfg: Config) -> pd.DataFrame:
    """Online cost per query vs index size on ``arcs`` (20 classes, ``N / 20`` points each): EGT (graph
    precomputed, ``cfg.k``, ``cfg.p``) against diffusion (system precomputed, one conjugate-gradient solve
    per query, as for an unseen query) and plain kNN.

    Returns:
        Rows ``N, method, ms_per_query, offline_s``.
    """
    rows = []
    for N in cfg.timing_sizes:
        X, y = arcs(pts=(N + cfg.timing_queries) // 20 + 1, seed=cfg.seed)
        Q, _, Xi, _ = split_queries(X, y, cfg.timing_queries, seed=cfg.seed)
        (graph, tau), off_egt = _timed(egt_index, cfg, Xi)
        system, off_diff = _timed(diffusion_system, Xi, cfg.diff_k, cfg.diff_gamma, cfg.diff_alpha)
        _, t_knn = _timed(knn_rank, Q, Xi)
        _, t_diff = _timed(diffusion, Q, Xi, cfg.diff_k, cfg.diff_gamma, cfg.diff_alpha, solver="cg",
                           system=system)
        _, t_egt = _timed(egt_rank, Q, Xi, cfg.k, tau, graph=graph, p=cfg.p)
        for method, t, off in (("kNN", t_knn, 0.0), ("diffusion (CG)", t_diff, off_diff), ("EGT", t_egt, off_egt)):
            rows.append({"N": len(Xi), "method": method, "ms_per_query": 1000 * t / len(Q), "offline_s": off})
    return pd.DataFrame(rows)


def revisited_table(cfg: Config, split: Split, rankings: dict[str, np.ndarray]) -> pd.DataFrame:
    """Revisited-protocol mAP (%) per method for a split with ``gnd``, beside the paper's numbers.

    Returns:
        Rows ``dataset, method, easy, medium, hard, paper medium, paper hard``.
    """
    rows = []
    for method, R in rankings.items():
        out = revisited_map(R, split.gnd)
        paper, key = PAPER.get(method, {}), split.name.split(" ")[0]
        rows.append({"dataset": split.name, "method": method, **{k: 100 * v for k, v in out.items()},
                     "paper medium": paper.get(f"{key} medium", float("nan")),
                     "paper hard": paper.get(f"{key} hard", float("nan"))})
    return pd.DataFrame(rows).round(2)


def showcase_query(split: Split, rankings: dict[str, np.ndarray]) -> int:
    """The query where EGT's AP gain over kNN is largest (for the traversal picture)."""
    from l6kit.retrieval import average_precision

    gain = [average_precision(rankings["EGT"][i], p) - average_precision(rankings["kNN"][i], p)
            for i, p in enumerate(split.positives)]
    return int(np.argmax(gain))


def record_gain_claims(book: claims.ClaimBook, cfg: Config, table: pd.DataFrame) -> None:
    """Claims per data set: EGT beats kNN and α-QE by ``cfg.margin`` mAP points (0 on the revisited sets;
    required on the multi-manifold ``arcs``/``chains`` sets, informative elsewhere), EGT beats α-QE on
    digits (required), and EGT vs diffusion (informative everywhere)."""
    for name, part in table.groupby("dataset", sort=False):
        mp = dict(zip(part["method"], part["mAP"], strict=True))
        required = ("ci", "laptop") if name in ("arcs", "chains") else ()
        margin = 0.0 if name in REVISITED else cfg.margin
        for base in ("kNN", "α-QE") if name != "digits" else ():
            book.greater(f"{name}: EGT mAP > {base} mAP + {margin:g}", mp["EGT"], mp[base] + margin,
                         metric="mAP % (EGT, baseline + margin)", paper=_paper_pair(name, base),
                         required_at=required)
        book.greater(f"{name}: EGT mAP > diffusion mAP", mp["EGT"], mp["diffusion"], metric="mAP %",
                     paper=_paper_pair(name, "diffusion"), required_at=(),
                     note="the paper reports EGT ahead of diffusion on ROxford/RParis")
    if "digits" in set(table["dataset"]):
        d = table[table["dataset"] == "digits"].set_index("method")["mAP"]
        for base in ("kNN", "α-QE"):
            book.greater(f"digits: EGT mAP > {base} mAP", d["EGT"], d[base], metric="mAP %", paper=None,
                         required_at=("ci", "laptop"), note="a small real image set, 64-pixel descriptors")


def _paper_pair(name: str, base: str) -> Any:
    key = f"{name} medium"
    if key in PAPER["EGT"] and key in PAPER[base]:
        return [PAPER["EGT"][key], PAPER[base][key]]
    return None


def record_time_claims(book: claims.ClaimBook, cfg: Config, timing: pd.DataFrame) -> None:
    """Informative claims on the online cost: EGT's time per query grows less than diffusion's from the
    smallest to the largest index, and EGT is faster per query at the largest index."""
    t = timing.pivot(index="N", columns="method", values="ms_per_query")
    lo, hi = t.index.min(), t.index.max()
    growth = t.loc[hi] / t.loc[lo]
    book.greater(f"EGT time per query grows less than diffusion's from N={lo} to N={hi}",
                 growth["diffusion (CG)"], growth["EGT"], metric="time ratio N_max / N_min (diffusion, EGT)",
                 paper="EGT cost independent of index size", required_at=(), note="wall time, machine-dependent")
    book.greater(f"EGT faster per query than diffusion at N={hi}", t.loc[hi, "diffusion (CG)"],
                 t.loc[hi, "EGT"], metric="ms per query (diffusion, EGT)", paper="real-time inference",
                 required_at=(), note="wall time, machine-dependent")


def projection(split: Split, result: dict[str, Any], query: int, n_show: int | None = None) -> dict[str, Any]:
    """A 2-D PCA view for one query, fitted on the query, its relevant index points and both result lists.

    Returns:
        ``{"xy": (n, 2) all index rows projected, "relevant", "q_xy": (2,), "trace", "knn_ids", "n_show"}``
        (the keyword arguments of :func:`l6kit.retrieval.plots.traversal_figure`)
        (``n_show`` defaults to the number of relevant points).
    """
    from sklearn.decomposition import PCA

    n_show = n_show or len(split.positives[query])
    trace = result["traces"][query]
    knn_ids = result["rankings"]["kNN"][query][:n_show]
    used = np.union1d(np.union1d(split.positives[query], knn_ids), trace.order[:n_show])
    pca = PCA(2, random_state=0).fit(np.vstack([split.X[used], split.Q[query][None]]))
    return {"xy": pca.transform(split.X), "q_xy": pca.transform(split.Q[query][None])[0],
            "relevant": split.positives[query], "trace": trace, "knn_ids": knn_ids, "n_show": n_show}


def descriptor_table(split: Split, result: dict[str, Any]) -> tuple[np.ndarray, pd.DataFrame]:
    """The index descriptors with metadata for the embeddings dashboard's retrieval view: class label and,
    for query 0, each method's rank of every index point and the EGT step that retrieved it.

    Returns:
        ``(coords (n, d), meta)`` with columns ``label, knn_rank_q0, egt_rank_q0, egt_step_q0``.
    """
    n = len(split.X)
    meta = pd.DataFrame({"label": split.labels.astype(int)})
    for method, col in (("kNN", "knn_rank_q0"), ("EGT", "egt_rank_q0")):
        rank = np.empty(n, int)
        rank[result["rankings"][method][0]] = np.arange(n)
        meta[col] = rank
    step = np.full(n, "not visited", dtype=object)
    tr = result["traces"][0]
    step[tr.order] = tr.step
    meta["egt_step_q0"] = step.astype(str)
    return split.X, meta
