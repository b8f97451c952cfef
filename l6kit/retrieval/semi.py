"""Semi-supervised EGT: labels transferred from a labelled training set become strong "label edges" that the
Explore-Exploit Graph Traversal follows before anything else.

Three steps (Layer 6, Google Landmark Retrieval Challenge 2019):

1. **Label transfer** (:func:`transfer_labels`): an unlabelled image takes the label on which at least
   ``min_votes`` of its ``k`` nearest training images agree; its confidence is the similarity of the closest
   training image carrying that label. Otherwise it stays unlabelled (``-1``). The solution used 3 of the top
   5 for index images and 2 of the top 3 for test images.
2. **Label edges** (:func:`query_label_edges`, :func:`add_label_hubs`): a labelled query is joined to every
   index image with its label by an edge of weight ``big + confidence`` (far above any similarity, so those
   images are taken by exploit steps, most confident first). Symmetrising that label graph links index images
   of one label to each other through the test images that carry it; here one *hub* vertex per label plays
   that role (traversable, never returned).
3. **Traversal** (:func:`semi_egt_rank`): EGT (:func:`l6kit.retrieval.egt_traverse`) over the kNN graph plus
   the label edges; hub vertices are dropped from the output.

:func:`label_rerank` is the ablation without a graph: same-label index images first, then kNN order.

References:
    Chang, Yu, Volkovs et al. "Explore-Exploit Graph Traversal for Image Retrieval." CVPR 2019.
    Layer 6 AI. "Semi-Supervised Exploration in Image Retrieval." Google Landmark Retrieval Challenge 2019
    (3rd place); code ``layer6ai-labs/semi-supervised-egt``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tqdm.auto import tqdm

from l6kit.profiles import progress_disabled
from l6kit.retrieval.egt import Trace, adjacency, egt_traverse
from l6kit.retrieval.knn import knn, knn_graph

UNLABELLED = -1
BIG = 10.0          # label-edge offset: above every cosine similarity (<= 1) and every usual tau


def transfer_labels(train_X: np.ndarray, train_labels: np.ndarray, X: np.ndarray, k: int, min_votes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """kNN label transfer with a vote threshold.

    Each row of ``X`` looks up its ``k`` most similar training rows. The label with the most votes wins (ties:
    the label of the more similar neighbour); it is kept when it has at least ``min_votes`` votes, with
    confidence = similarity of the most similar training row carrying it. Otherwise the row is
    :data:`UNLABELLED` with confidence 0.

    Args:
        train_X: ``(t, d)`` L2-normalised labelled rows.
        train_labels: ``(t,)`` int labels (landmark ids).
        X: ``(n, d)`` L2-normalised rows to label (index or queries).
        k: neighbours that vote (paper: 5 for index images, 3 for test images).
        min_votes: votes needed (paper: 3 and 2).

    Shapes:
        returns ``labels (n,)`` int64 (``-1`` = unlabelled), ``confidence (n,)`` float64.
    """
    if not 1 <= min_votes <= k:
        raise ValueError(f"need 1 <= min_votes <= k, got min_votes={min_votes}, k={k}")
    sims, ids = knn(train_X, X, k)
    votes = np.asarray(train_labels, np.int64)[ids]                     # (n, k), most similar first
    counts = (votes[:, :, None] == votes[:, None, :]).sum(axis=2)       # (n, k): votes for each slot's label
    best = np.argmax(counts, axis=1)                                    # first = most similar among ties
    rows = np.arange(len(X))
    keep = counts[rows, best] >= min_votes
    labels = np.where(keep, votes[rows, best], UNLABELLED)
    confidence = np.where(keep, sims[rows, best], 0.0).astype(np.float64)
    return labels.astype(np.int64), confidence


def transfer_quality(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Coverage (share labelled) and accuracy (share of labelled rows whose label is right).

    Shapes:
        predicted, truth: ``(n,)`` int; returns ``{"coverage", "accuracy"}`` (accuracy NaN if none labelled).
    """
    labelled = predicted != UNLABELLED
    acc = float(np.mean(predicted[labelled] == truth[labelled])) if labelled.any() else float("nan")
    return {"coverage": float(labelled.mean()), "accuracy": acc}


def query_label_edges(q_label: int, index_labels: np.ndarray, index_conf: np.ndarray, big: float = BIG
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The label edges of one query: to every index image with the query's label, weight ``big + conf``.

    Shapes:
        index_labels, index_conf: ``(n,)``; returns ``weights (e,)``, ``ids (e,)`` (empty if unlabelled).
    """
    if q_label == UNLABELLED:
        return np.empty(0), np.empty(0, np.int64)
    ids = np.flatnonzero(np.asarray(index_labels) == q_label)
    return big + np.asarray(index_conf, np.float64)[ids], ids


def add_label_hubs(adj: list[list[tuple[float, int]]], index_labels: np.ndarray, index_conf: np.ndarray,
                   big: float = BIG) -> tuple[list[list[tuple[float, int]]], np.ndarray]:
    """The index graph plus one hub vertex per transferred label, joined both ways to every index image with
    that label by weight ``big + conf`` (the symmetrised label graph, with the hub standing for the test
    images that carry the label). The input lists are not changed.

    Shapes:
        adj: n adjacency lists (:func:`l6kit.retrieval.adjacency`); index_labels, index_conf: ``(n,)``.

    Returns:
        ``(adj_plus, hub_labels)``: ``n + h`` adjacency lists sorted by weight (hub ``j`` is vertex ``n + j``)
        and ``hub_labels (h,)``, the label of each hub.
    """
    n = len(adj)
    index_labels = np.asarray(index_labels)
    hub_labels = np.unique(index_labels[index_labels != UNLABELLED])
    out = [list(a) for a in adj] + [[] for _ in hub_labels]
    hub_of = {int(c): n + j for j, c in enumerate(hub_labels)}
    for v in np.flatnonzero(index_labels != UNLABELLED).tolist():
        h, w = hub_of[int(index_labels[v])], big + float(index_conf[v])
        out[v].append((w, h))
        out[h].append((w, v))
    return [sorted(a, reverse=True) for a in out], hub_labels


def _index_only(tr: Trace, n: int) -> Trace:
    keep = tr.order < n
    return Trace(*(getattr(tr, f.name)[keep] for f in dataclasses.fields(Trace)))


def _fill(head: np.ndarray, order: np.ndarray, length: int) -> np.ndarray:
    """``head`` then the ids of ``order`` not in it, cut to ``length``."""
    return np.concatenate([head, order[~np.isin(order, head)]])[:length]


def traverse_rank(Q: np.ndarray, X: np.ndarray, adj: list, k: int, tau: float, *, extra=None,
                  p: int | None = None, top: int | None = None, progress: bool | None = None
                  ) -> tuple[np.ndarray, list[Trace]]:
    """EGT over adjacency lists whose first ``n = len(X)`` vertices are the index and whose other vertices
    (hubs, training images used as bridges) are traversed but never returned.

    Args:
        Q: ``(m, d)`` queries; X: ``(n, d)`` index; adj: ``N >= n`` adjacency lists.
        k: edges attaching a query (its top-``k`` index neighbours).
        tau: exploit threshold.
        extra: optional ``extra(i) -> (weights, ids)``: more edges attaching query ``i`` (label edges).
        p: traversal budget (vertices popped, hubs included; default ``top`` or all); the rest follows in kNN
            order.
        top: return only the first ``top`` ids per query (needed at paper scale; default all ``n``).

    Shapes:
        returns ``rankings (m, top or n)`` int64 and m :class:`~l6kit.retrieval.Trace` (index vertices only).
    """
    n = len(X)
    length = n if top is None else min(top, n)
    p = length if p is None and top is not None else p
    q_sims, q_ids = knn(X, Q, k)
    fill = knn(X, Q, length)[1] if top is not None else None
    rankings, traces = np.empty((len(Q), length), np.int64), []
    for i in tqdm(range(len(Q)), disable=progress_disabled(progress), desc="semi-EGT", leave=False):
        w, ids = q_sims[i].astype(np.float64), q_ids[i]
        if extra is not None:
            ew, eids = extra(i)
            w, ids = np.concatenate([w, ew]), np.concatenate([ids, eids])
        tr = _index_only(egt_traverse(w, ids, adj, tau, p), n)
        order = fill[i] if fill is not None else np.argsort(-(np.asarray(X, np.float32) @ Q[i]), kind="stable")
        rankings[i] = _fill(tr.order, order, length)
        traces.append(tr)
    return rankings, traces


def semi_egt_rank(Q: np.ndarray, X: np.ndarray, k: int, tau: float, *, q_labels: np.ndarray,
                  index_labels: np.ndarray, index_conf: np.ndarray, graph=None, hubs: bool = True,
                  big: float = BIG, p: int | None = None, top: int | None = None,
                  progress: bool | None = None) -> tuple[np.ndarray, list[Trace]]:
    """Semi-supervised EGT: EGT over the kNN graph of the index plus label edges.

    Args:
        Q, X: ``(m, d)`` queries and ``(n, d)`` index, L2-normalised.
        k, tau, p: as in :func:`l6kit.retrieval.egt_rank`; top: as in :func:`traverse_rank`.
        q_labels: ``(m,)`` transferred query labels (``-1`` = none): each labelled query gets
            :func:`query_label_edges`.
        index_labels, index_conf: ``(n,)`` transferred index labels and confidences.
        graph: ``(sims, ids)`` kNN lists or adjacency lists of the index (default ``knn_graph(X, k)``).
        hubs: also link same-label index images through hub vertices (:func:`add_label_hubs`).
        big: label-edge offset (must exceed ``tau`` and every similarity).

    Shapes:
        returns ``rankings (m, top or n)`` int64 and m traces (index vertices only; label-edge entries have
        ``weight >= big``).
    """
    if big <= max(tau, 1.0):
        raise ValueError(f"big={big} must exceed tau={tau} and every similarity (1)")
    if graph is None:
        graph = knn_graph(np.asarray(X, np.float32), k)
    adj = graph if isinstance(graph, list) else adjacency(*graph)
    if hubs:
        adj, _ = add_label_hubs(adj, index_labels, index_conf, big)
    q_labels = np.asarray(q_labels)
    return traverse_rank(Q, X, adj, k, tau, p=p, top=top, progress=progress,
                         extra=lambda i: query_label_edges(int(q_labels[i]), index_labels, index_conf, big))


def bridge_rank(Q: np.ndarray, X: np.ndarray, train_X: np.ndarray, k: int, tau: float, *, p: int | None = None,
                top: int | None = None, progress: bool | None = None) -> tuple[np.ndarray, list[Trace]]:
    """EGT over the kNN graph of index + training images, training images used as unlabelled bridges
    (traversed, never returned): what the training set gives without its labels.

    Shapes:
        Q ``(m, d)``, X ``(n, d)``, train_X ``(t, d)``; returns ``rankings (m, top or n)`` and m traces.
    """
    allX = np.vstack([np.asarray(X, np.float32), np.asarray(train_X, np.float32)])
    return traverse_rank(Q, X, adjacency(*knn_graph(allX, k)), k, tau, p=p, top=top, progress=progress)


def label_rerank(Q: np.ndarray, X: np.ndarray, q_labels: np.ndarray, index_labels: np.ndarray,
                 index_conf: np.ndarray, *, top: int | None = None) -> np.ndarray:
    """Label transfer alone (no graph): index images sharing the query's transferred label first, by
    confidence, then the others by similarity; unlabelled queries keep the kNN order.

    Shapes:
        Q ``(m, d)``, X ``(n, d)``, q_labels ``(m,)``, index_labels/conf ``(n,)``; returns
        ``(m, top or n)`` int64.
    """
    length = len(X) if top is None else min(top, len(X))
    order = knn(X, Q, length)[1]
    out = np.empty((len(Q), length), np.int64)
    for i, c in enumerate(np.asarray(q_labels).tolist()):
        _, same = query_label_edges(c, index_labels, index_conf)
        same = same[np.argsort(-np.asarray(index_conf)[same], kind="stable")]
        out[i] = _fill(same[:length], order[i], length)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Data: a labelled training set beside the unlabelled index and queries (generated, or Google Landmarks v2).

@dataclasses.dataclass
class LabelledSet:
    """Queries, an unlabelled index and a labelled training set.

    Attributes:
        name: data set name.
        Q: ``(m, d)`` float32 L2-normalised queries (test images).
        X: ``(n, d)`` float32 L2-normalised index.
        T: ``(t, d)`` float32 L2-normalised training images; ``t_labels (t,)`` int64 their labels.
        positives: m arrays of relevant index ids.
        q_labels, labels: true labels of queries ``(m,)`` and index ``(n,)`` (to score the transfer), or None.
    """

    name: str
    Q: np.ndarray
    X: np.ndarray
    T: np.ndarray
    t_labels: np.ndarray
    positives: list[np.ndarray]
    q_labels: np.ndarray | None = None
    labels: np.ndarray | None = None


def labelled_split(X: np.ndarray, labels: np.ndarray, n_queries: int, train_fraction: float, *, seed: int = 0,
                   name: str = "generated") -> LabelledSet:
    """Split a labelled descriptor set into ``n_queries`` queries, a labelled training set (``train_fraction``
    of the remaining rows) and the unlabelled index (the rest). Relevance = same label.

    Shapes:
        X ``(N, d)``, labels ``(N,)``; the index keeps ``N - n_queries - round(train_fraction * (N - n_queries))``.
    """
    n_train = int(round(train_fraction * (len(X) - n_queries)))
    if not (0 < n_queries and 0 < n_train and n_queries + n_train < len(X)):
        raise ValueError(f"cannot split {len(X)} rows into {n_queries} queries and {n_train} training rows")
    perm = np.random.default_rng(seed).permutation(len(X))
    q, t, r = (np.sort(a) for a in (perm[:n_queries], perm[n_queries:n_queries + n_train],
                                    perm[n_queries + n_train:]))
    y = np.asarray(labels, np.int64)
    return LabelledSet(name, X[q], X[r], X[t], y[t], [np.flatnonzero(y[r] == c) for c in y[q]], y[q], y[r])


def corrupt_labels(labels: np.ndarray, rate: float, seed: int = 0) -> np.ndarray:
    """A copy of ``labels`` in which a ``rate`` share of rows (chosen at random) take a different random label
    from the same label set: wrong training labels, to measure how transfer errors hurt.

    Shapes:
        labels ``(t,)`` int; returns ``(t,)`` int64.
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(labels, np.int64).copy()
    classes = np.unique(y)
    flip = rng.random(len(y)) < rate
    shift = rng.integers(1, len(classes), flip.sum())              # never the same class
    pos = np.searchsorted(classes, y[flip])
    y[flip] = classes[(pos + shift) % len(classes)]
    return y


GLDV2_FILES = ("train_descriptors.npy", "train_labels.npy", "index_descriptors.npy", "index_ids.npy",
               "test_descriptors.npy", "test_ids.npy", "retrieval_solution_v2.1.csv")
GLDV2_HOMEPAGE = "https://github.com/cvdfoundation/google-landmark"
GLDV2_SOLUTION = "https://s3.amazonaws.com/google-landmark/ground_truth/retrieval_solution_v2.1.csv"
GLDV2_MANUAL = (
    "Google Landmarks v2 descriptors are not published: compute them yourself. Download the images and CSVs "
    f"with the scripts of {GLDV2_HOMEPAGE} (train 4.1M images of 203k landmarks, index 762k, test 118k; "
    "hundreds of GB of TAR shards), extract one global descriptor per image (e.g. GeM), and write into "
    "<cache>/gldv2-descriptors/: train_descriptors.npy float32 (t, d) and train_labels.npy int64 (t,) "
    "(landmark_id from train.csv or train_clean.csv); index_descriptors.npy float32 (n, d) and "
    "index_ids.npy str (n,) (ids of index.csv); test_descriptors.npy float32 (m, d) and test_ids.npy str (m,); "
    f"and {GLDV2_SOLUTION} as is.")


def read_gldv2(folder, *, usage: tuple[str, ...] = ("Public", "Private")) -> LabelledSet:
    """Read precomputed Google Landmarks v2 descriptors and training labels (layout in :data:`GLDV2_MANUAL`).

    Queries are the test images whose ``Usage`` in ``retrieval_solution_v2.1.csv`` is in ``usage`` (the
    "Ignored" ones have no landmark); their positives are the listed index ids.

    Raises:
        DataMissingError: a file is missing (the message says what to produce and where).
        ValueError: shapes or ids disagree.
    """
    from pathlib import Path

    import pandas as pd

    from l6kit.data.registry import DataMissingError

    folder = Path(folder)
    missing = [f for f in GLDV2_FILES if not (folder / f).exists()]
    if missing:
        raise DataMissingError(f"missing in {folder}: {', '.join(missing)}.\n  {GLDV2_MANUAL}")
    arr = {f: np.load(folder / f, allow_pickle=False) for f in GLDV2_FILES[:-1]}
    T, X, Qall = (_unit(arr[f"{s}_descriptors.npy"]) for s in ("train", "index", "test"))
    if len(T) != len(arr["train_labels.npy"]) or len(X) != len(arr["index_ids.npy"]) or len(Qall) != len(
            arr["test_ids.npy"]) or not T.shape[1] == X.shape[1] == Qall.shape[1]:
        raise ValueError(f"{folder}: descriptor rows or widths do not match the label/id files")
    sol = pd.read_csv(folder / GLDV2_FILES[-1], dtype=str, keep_default_na=False)
    sol = sol[sol["Usage"].isin(usage)]
    test_row = {s: i for i, s in enumerate(arr["test_ids.npy"].astype(str))}
    index_row = {s: i for i, s in enumerate(arr["index_ids.npy"].astype(str))}
    try:
        q = np.array([test_row[s] for s in sol["id"]], np.int64)
        positives = [np.array([index_row[s] for s in imgs.split()], np.int64) for imgs in sol["images"]]
    except KeyError as exc:
        raise ValueError(f"{folder}: id {exc} of the solution file is not in test_ids/index_ids") from None
    return LabelledSet("gldv2", Qall[q], X, T, arr["train_labels.npy"].astype(np.int64), positives)


def write_gldv2(folder, T: np.ndarray, t_labels: np.ndarray, X: np.ndarray, Q: np.ndarray,
                positives: list[np.ndarray | None]):
    """Write descriptors in the :func:`read_gldv2` layout (fixtures, exports), with 16-hex image ids; a
    ``None`` in ``positives`` writes that test image as "Ignored". Returns ``folder``.

    Shapes:
        T ``(t, d)``, t_labels ``(t,)``, X ``(n, d)``, Q ``(m, d)``, ``len(positives) == m``.
    """
    from pathlib import Path

    import pandas as pd

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index_ids = np.array([f"{i:016x}" for i in range(len(X))])
    test_ids = np.array([f"{i + len(X):016x}" for i in range(len(Q))])
    for name, a in (("train_descriptors", T), ("train_labels", np.asarray(t_labels, np.int64)),
                    ("index_descriptors", X), ("index_ids", index_ids), ("test_descriptors", Q),
                    ("test_ids", test_ids)):
        np.save(folder / f"{name}.npy", np.asarray(a, np.float32) if "descr" in name else a)
    pd.DataFrame({"id": test_ids, "images": ["None" if p is None else " ".join(index_ids[p]) for p in positives],
                  "Usage": ["Ignored" if p is None else "Private" for p in positives]}).to_csv(
        folder / GLDV2_FILES[-1], index=False)
    return folder


def _unit(A: np.ndarray, block: int = 65536) -> np.ndarray:
    """Row-normalised float32 copy, in blocks (the paper-scale matrices are GBs)."""
    out = np.empty(A.shape, np.float32)
    for s in range(0, len(A), block):
        a = np.asarray(A[s:s + block], np.float32)
        out[s:s + block] = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    return out


def _register() -> None:
    from l6kit.data.registry import Source, register
    from l6kit.retrieval.generators import chains

    register(Source(
        name="gldv2-descriptors",
        description="Google Landmarks v2: your global descriptors of train (labelled), index and test images, "
                    "with the retrieval ground truth",
        reader=read_gldv2,
        offline=lambda seed=0, **kw: labelled_split(*chains(seed=seed), 100, 0.12, seed=seed,
                                                    name="gldv2 stand-in (chains)"),
        homepage=GLDV2_HOMEPAGE,
        licence="annotations CC BY 4.0 (Google); images under their own CC-BY / public-domain licences",
        manual=GLDV2_MANUAL))


_register()
