"""Tests for l6kit.retrieval.semi: label transfer, label edges, the traversal over them, the data helpers and
the Google Landmarks v2 descriptor reader (on a tiny fixture in the documented layout)."""

import numpy as np
import pytest

from l6kit import data
from l6kit.data import DataMissingError
from l6kit.retrieval import adjacency, egt_traverse, l2_normalise
from l6kit.retrieval.semi import (
    BIG,
    GLDV2_FILES,
    UNLABELLED,
    LabelledSet,
    add_label_hubs,
    corrupt_labels,
    label_rerank,
    labelled_split,
    query_label_edges,
    read_gldv2,
    semi_egt_rank,
    transfer_labels,
    transfer_quality,
    write_gldv2,
)


def _circle(angles_deg):
    a = np.deg2rad(np.asarray(angles_deg, float))
    return np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32)


def test_label_transfer_needs_enough_votes_and_keeps_the_best_similarity():
    # training images at 0, 5, 10 degrees (label 7) and 40, 45 degrees (label 3)
    T, y = _circle([0, 5, 10, 40, 45]), np.array([7, 7, 7, 3, 3])
    X = _circle([2, 30, 44])
    labels, conf = transfer_labels(T, y, X, k=3, min_votes=2)
    # 2 deg: neighbours 0, 5, 10 -> 3 votes for 7; confidence = similarity to the 0-degree image, cos(2 deg)
    assert labels[0] == 7 and conf[0] == pytest.approx(np.cos(np.deg2rad(2)), abs=1e-6)
    # 30 deg: neighbours 40, 45 (label 3) and 10 (label 7): 2 votes for 3, best similarity cos(10 deg)
    assert labels[1] == 3 and conf[1] == pytest.approx(np.cos(np.deg2rad(10)), abs=1e-6)
    assert labels[2] == 3
    labels, conf = transfer_labels(T, y, X, k=3, min_votes=3)
    assert labels.tolist() == [7, UNLABELLED, UNLABELLED] and conf[1] == 0.0
    q = transfer_quality(labels, np.array([7, 3, 7]))
    assert q == {"coverage": pytest.approx(1 / 3), "accuracy": 1.0}
    with pytest.raises(ValueError, match="min_votes"):
        transfer_labels(T, y, X, k=2, min_votes=3)


def test_label_edges_go_exactly_to_same_label_images():
    adj = [[(0.9, 1)], [(0.9, 0), (0.5, 2)], [(0.5, 1), (0.4, 3)], [(0.4, 2)]]
    labels, conf = np.array([0, UNLABELLED, 0, 1]), np.array([0.8, 0.0, 0.6, 0.7])
    w, ids = query_label_edges(0, labels, conf)
    assert ids.tolist() == [0, 2] and np.allclose(w, [BIG + 0.8, BIG + 0.6])
    assert len(query_label_edges(UNLABELLED, labels, conf)[1]) == 0
    out, hub_labels = add_label_hubs(adj, labels, conf)
    assert hub_labels.tolist() == [0, 1] and len(out) == 6
    assert out[4] == [(BIG + 0.8, 0), (BIG + 0.6, 2)] and out[5] == [(BIG + 0.7, 3)]
    assert out[0][0] == (BIG + 0.8, 4) and out[2][0] == (BIG + 0.6, 4) and out[3][0] == (BIG + 0.7, 5)
    assert out[1] == adj[1] and adj[0] == [(0.9, 1)]          # unlabelled vertex and the input unchanged


def test_traversal_reaches_the_label_linked_vertex_earlier():
    # a path 0 - 1 - 2 - 3 - 4 with weakening edges; vertices 0 and 4 share a transferred label
    sims = np.array([[0.9], [0.8], [0.7], [0.6], [0.6]])
    ids = np.array([[1], [2], [3], [4], [3]])
    adj = adjacency(sims, ids)
    plain = egt_traverse(np.array([0.95]), np.array([0]), adj, tau=0.85)
    labels, conf = np.array([5, -1, -1, -1, 5]), np.array([0.9, 0, 0, 0, 0.5])
    aug, _ = add_label_hubs(adj, labels, conf)
    semi = egt_traverse(np.array([0.95]), np.array([0]), aug, tau=0.85)
    pos = lambda tr: int(np.flatnonzero(tr.order == 4)[0])  # noqa: E731
    assert pos(plain) == 4 and pos(semi) < pos(plain)
    assert 5 in semi.order.tolist()                            # the hub is traversed ...


def test_semi_egt_never_returns_hubs_and_puts_labelled_images_first():
    rng = np.random.default_rng(0)
    X = l2_normalise(rng.standard_normal((40, 8)))
    Q = l2_normalise(rng.standard_normal((3, 8)))
    labels = np.where(np.arange(40) % 4 == 0, 1, UNLABELLED)
    conf = np.linspace(0.5, 0.9, 40)
    R, traces = semi_egt_rank(Q, X, 5, 0.7, q_labels=np.array([1, UNLABELLED, 1]), index_labels=labels,
                              index_conf=conf, progress=False)
    assert R.shape == (3, 40) and all(sorted(r) == list(range(40)) for r in R)   # ... but never returned
    labelled = np.flatnonzero(labels == 1)
    assert set(R[0, :len(labelled)]) == set(labelled)
    assert R[0, 0] == labelled[np.argmax(conf[labelled])]                     # most confident first
    assert all(t.order.max() < 40 for t in traces)
    top, _ = semi_egt_rank(Q, X, 5, 0.7, q_labels=np.array([1, -1, 1]), index_labels=labels, index_conf=conf,
                           top=7, progress=False)
    assert top.shape == (3, 7) and (top[:, :5] == R[:, :5]).all()
    with pytest.raises(ValueError, match="big"):
        semi_egt_rank(Q, X, 5, 0.7, q_labels=np.zeros(3), index_labels=labels, index_conf=conf, big=1.0)


def test_label_rerank_puts_same_label_first_by_confidence():
    X, Q = _circle([0, 10, 20, 90]), _circle([1, 1])
    R = label_rerank(Q, X, np.array([2, UNLABELLED]), np.array([-1, 2, -1, 2]), np.array([0, 0.3, 0, 0.9]))
    assert R[0].tolist() == [3, 1, 0, 2] and R[1].tolist() == [0, 1, 2, 3]


def test_split_and_corrupted_labels():
    X, y = l2_normalise(np.random.default_rng(1).standard_normal((200, 4))), np.arange(200) % 5
    s = labelled_split(X, y, 20, 0.25, seed=3)
    assert (len(s.Q), len(s.T), len(s.X)) == (20, 45, 135)
    assert all(np.all(s.labels[p] == c) for p, c in zip(s.positives, s.q_labels, strict=True))
    noisy = corrupt_labels(y, 0.3, seed=0)
    changed = noisy != y
    assert 0.2 < changed.mean() < 0.4 and set(noisy) <= set(y)
    assert (corrupt_labels(y, 0.0) == y).all()


def write_gldv2_fixture(folder, seed=0):
    """A tiny data set in the documented layout: 12 train, 8 index, 4 test images (the third ignored)."""
    rng = np.random.default_rng(seed)
    return write_gldv2(folder, rng.standard_normal((12, 6)), np.arange(12) % 3, rng.standard_normal((8, 6)),
                       rng.standard_normal((4, 6)), [np.array([0, 3]), np.array([5]), None, np.array([7])])


def test_read_gldv2_fixture(tmp_path):
    folder = write_gldv2_fixture(tmp_path / "gldv2-descriptors")
    s = read_gldv2(folder)
    assert isinstance(s, LabelledSet) and s.Q.shape == (3, 6) and s.X.shape == (8, 6) and s.T.shape == (12, 6)
    assert [p.tolist() for p in s.positives] == [[0, 3], [5], [7]]
    assert np.allclose(np.linalg.norm(s.X, axis=1), 1, atol=1e-5) and s.labels is None
    loaded = data.load("gldv2-descriptors", "paper", root=tmp_path)
    assert len(loaded.positives) == 3
    (folder / "train_labels.npy").unlink()
    with pytest.raises(DataMissingError, match="train_labels.npy"):
        read_gldv2(folder)
    assert "retrieval_solution_v2.1.csv" in GLDV2_FILES
    text = (folder / "retrieval_solution_v2.1.csv").read_text().splitlines()
    assert text[0] == "id,images,Usage" and text[3].endswith(",None,Ignored")


def test_gldv2_offline_stand_in_under_ci():
    s = data.load("gldv2-descriptors", "ci")
    assert isinstance(s, LabelledSet) and len(s.Q) == 100 and s.labels is not None
