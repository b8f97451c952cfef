"""l6kit.recsys: metrics on hand-computed cases, interaction splits, negatives, spmm autograd, adjacency."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from l6kit.recsys import (
    cold_item_split,
    holdout_split,
    mrr,
    ndcg_at_k,
    normalized_adjacency,
    recall_at_k,
    sample_negatives,
    spmm,
    to_csr,
    topk,
)

# 3 users x 5 items. User 0 ranks items 4,3,2,1,0; user 1 ranks 0..4; user 2 has no truth.
SCORES = np.array([[0.0, 1.0, 2.0, 3.0, 4.0],
                   [5.0, 4.0, 3.0, 2.0, 1.0],
                   [1.0, 1.0, 1.0, 1.0, 1.0]])
TRUTH = to_csr([0, 0, 1], [2, 0, 4], 3, 5)       # u0: {0, 2}; u1: {4}; u2: {}
EXCLUDE = to_csr([0, 1], [4, 0], 3, 5)            # u0 never sees item 4; u1 never sees item 0


def test_topk_orders_and_excludes():
    assert topk(SCORES, 2).tolist()[:2] == [[4, 3], [0, 1]]
    assert topk(SCORES, 2, EXCLUDE).tolist()[:2] == [[3, 2], [1, 2]]
    ex_all = to_csr(np.zeros(4, int), [0, 1, 2, 3], 3, 5)
    assert topk(SCORES, 3, ex_all)[0].tolist() == [4, -1, -1]   # fewer than k allowed items: padded with -1


def test_recall_hand_computed():
    # k=2, no exclusion: u0 list {4,3} -> 0 hits / min(2,2); u1 list {0,1} -> 0 / 1; u2 NaN
    r = recall_at_k(SCORES, TRUTH, 2)
    assert r[:2].tolist() == [0.0, 0.0] and np.isnan(r[2])
    # with exclusion: u0 list {3,2} -> 1 hit / 2 = 0.5; u1 list {1,2} -> 0
    assert recall_at_k(SCORES, TRUTH, 2, EXCLUDE)[:2].tolist() == [0.5, 0.0]
    # k=5: u0 hits 2 / min(5, 2) = 1; u1 1 / 1
    assert recall_at_k(SCORES, TRUTH, 5)[:2].tolist() == [1.0, 1.0]
    # capped denominator: 3 relevant items, k=1, best item relevant -> 1/min(1,3) = 1
    assert recall_at_k(SCORES[:1], to_csr([0, 0, 0], [4, 3, 2], 1, 5), 1)[0] == 1.0


def test_ndcg_hand_computed():
    # u0, k=3, exclusion: list 3,2,1 -> hit at rank 2: DCG = 1/log2(3); ideal (2 relevant) = 1 + 1/log2(3)
    got = ndcg_at_k(SCORES, TRUTH, 3, EXCLUDE)
    assert got[0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    # u1, k=3, exclusion: list 1,2,3 -> item 4 missing -> 0
    assert got[1] == 0.0 and np.isnan(got[2])
    # perfect ranking -> 1
    assert ndcg_at_k(SCORES, TRUTH, 5)[1] == pytest.approx(1 / np.log2(6))   # u1: item 4 at rank 5
    assert ndcg_at_k(-SCORES, TRUTH, 1)[1] == 1.0


def test_mrr_hand_computed():
    got = mrr(SCORES, TRUTH)
    assert got[0] == pytest.approx(1 / 3)   # u0: best relevant item 2 is third (after 4, 3)
    assert got[1] == pytest.approx(1 / 5)   # u1: item 4 last
    assert np.isnan(got[2])
    assert mrr(SCORES, TRUTH, EXCLUDE)[:2] == pytest.approx([1 / 2, 1 / 4])


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError):
        recall_at_k(SCORES, to_csr([0], [0], 2, 5), 2)


def test_to_csr_merges_duplicates():
    R = to_csr([0, 0, 1, 1], [1, 1, 2, 0], 2, 3)
    assert R.toarray().tolist() == [[0, 1, 0], [1, 0, 1]] and R.nnz == 3


def random_R(n_users=50, n_items=40, density=0.2, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.random((n_users, n_items)) < density
    return sp.csr_matrix(M.astype(np.float32))


def test_holdout_split_partitions_per_user():
    R = random_R()
    train, test = holdout_split(R, test_frac=0.2, seed=3, min_train=2)
    assert (train + test - R).nnz == 0 and train.multiply(test).nnz == 0
    n_u, n_test = np.diff(R.indptr), np.diff(test.indptr)
    assert np.array_equal(n_test, np.clip(np.rint(0.2 * n_u), 0, np.maximum(n_u - 2, 0)))
    again, _ = holdout_split(R, test_frac=0.2, seed=3, min_train=2)
    assert (again != train).nnz == 0


def test_cold_item_split_holds_out_whole_items():
    R = random_R()
    warm, cold, items = cold_item_split(R, 0.25, seed=1)
    assert len(items) == round(0.25 * 40) and (warm + cold - R).nnz == 0
    assert warm[:, items].nnz == 0 and cold[:, np.setdiff1d(np.arange(40), items)].nnz == 0


def test_sample_negatives_avoid_positives():
    R = random_R(density=0.8)
    users = np.repeat(np.arange(50), 3)
    neg = sample_negatives(R, users, 7, np.random.default_rng(0))
    assert neg.shape == (150, 7)
    assert not np.asarray(R[np.repeat(users, 7), neg.ravel()]).any()
    with pytest.raises(ValueError):
        sample_negatives(sp.csr_matrix(np.ones((2, 3))), np.array([0]), 1, np.random.default_rng(0))


def test_spmm_forward_backward_match_dense():
    A = sp.random(30, 20, density=0.2, format="csr", random_state=0, dtype=np.float32)
    X = torch.randn(20, 4, requires_grad=True)
    Y = spmm(A, X)
    dense = torch.from_numpy(A.toarray())
    assert torch.allclose(Y, dense @ X, atol=1e-5)
    W = torch.randn(30, 4)
    (Y * W).sum().backward()
    assert torch.allclose(X.grad, dense.T @ W, atol=1e-5)
    X64 = torch.randn(20, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: spmm(A.astype(np.float64), x), (X64,))


def test_normalized_adjacency_symmetric_and_known():
    R = to_csr([0, 0, 1], [0, 1, 1], 2, 2)    # degrees: u0 2, u1 1, i0 1, i1 2
    A = normalized_adjacency(R).toarray()
    assert A.shape == (4, 4) and np.allclose(A, A.T)
    assert A[0, 2] == pytest.approx(1 / np.sqrt(2)) and A[0, 3] == pytest.approx(0.5)
    assert A[1, 3] == pytest.approx(1 / np.sqrt(2)) and A[0, 1] == 0
    row = normalized_adjacency(R, self_loops=True, kind="row").toarray()
    assert np.allclose(row.sum(1), 1) and row[0, 0] == pytest.approx(1 / 3)
