"""WMF (ALS), the DropoutNet towers and the cold-start data: known answers, shapes, a training step, and the
CiteULike reader on a fixture written in the real file format."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from l6kit import data
from l6kit.recsys import dropoutnet as dn


def _block_matrix(n_groups=3, users=12, items=15):
    ug, ig = np.arange(users) % n_groups, np.arange(items) % n_groups
    return (ug[:, None] == ig[None, :]).astype(float)


def test_wmf_recovers_a_planted_low_rank_matrix():
    P = _block_matrix()                                      # exact rank 3
    wmf = dn.WMF(factors=3, alpha=0.0, reg=1e-6, iterations=30, progress=False).fit(sp.csr_matrix(P))
    assert np.abs(wmf.scores() - P).max() < 1e-3


def test_wmf_lowers_the_weighted_loss_and_ranks_positives_first():
    rng = np.random.default_rng(0)
    R = sp.csr_matrix((rng.random((60, 80)) < 0.1).astype(float))
    wmf = dn.WMF(factors=8, alpha=10.0, reg=0.1, iterations=6, progress=False).fit(R)
    start = dn.wmf_loss(R, np.zeros((60, 8)), rng.normal(0, 0.01, (80, 8)), 10.0, 0.1)
    assert wmf.loss_[-1] < wmf.loss_[0] < start
    assert all(b <= a + 1e-6 for a, b in zip(wmf.loss_, wmf.loss_[1:], strict=False))  # ALS never rises
    S = wmf.scores()
    assert S[R.toarray() > 0].mean() > S[R.toarray() == 0].mean() + 0.3


def test_als_half_step_and_loss_match_dense_formulas():
    rng = np.random.default_rng(1)
    R = sp.csr_matrix(rng.poisson(0.3, (7, 9)).astype(float))
    Y, alpha, reg = rng.normal(size=(9, 4)), 5.0, 0.2
    X = dn.als_half_step(R, Y, alpha, reg, block=50)         # tiny block: several chunks
    D = R.toarray()
    for u in range(7):
        C = np.diag(1 + alpha * D[u])
        expect = np.linalg.solve(Y.T @ C @ Y + reg * np.eye(4), Y.T @ C @ (D[u] > 0))
        np.testing.assert_allclose(X[u], expect, rtol=1e-8, atol=1e-10)
    dense = np.sum((1 + alpha * D) * ((D > 0) - X @ Y.T) ** 2) + reg * (np.sum(X ** 2) + np.sum(Y ** 2))
    assert dn.wmf_loss(R, X, Y, alpha, reg) == pytest.approx(dense, rel=1e-10)


def _tables(n_users=30, n_items=40, k=6, du=3, dv=5, seed=0):
    rng = np.random.default_rng(seed)
    return {"user_pref": rng.normal(size=(n_users, k)).astype(np.float32),
            "user_content": rng.normal(size=(n_users, du)).astype(np.float32),
            "item_pref": rng.normal(size=(n_items, k)).astype(np.float32),
            "item_content": rng.normal(size=(n_items, dv)).astype(np.float32)}


def test_dropoutnet_shapes():
    t = _tables()
    model = dn.DropoutNet(6, 3, 5, hidden=(16, 8), rank=4).eval()
    assert dn.embed(model, t, "user").shape == (30, 4)
    assert dn.embed(model, t, "item").shape == (40, 4)
    assert dn.dropoutnet_scores(model, t).shape == (30, 40)
    batch = next(iter(dn.PairBatches(t, np.arange(10), np.arange(10), np.ones(10, np.float32), batch_size=10)))
    assert model(batch).shape == (10,)
    with pytest.raises(ValueError, match="dropout"):
        dn.DropoutNet(6, 3, 5, dropout=1.5)


def test_training_lowers_the_loss():
    t = _tables()
    U, V = t["user_pref"], t["item_pref"]
    pairs = dn.training_pairs(U, V, np.arange(40), n_top=5, n_random=5)
    assert pairs[0].shape == pairs[1].shape == pairs[2].shape == (300,)
    np.testing.assert_allclose(pairs[2], np.einsum("ij,ij->i", U[pairs[0]], V[pairs[1]]), rtol=1e-5)
    _, losses = dn.fit_dropoutnet(t, pairs, dropout=0.0, hidden=(32,), rank=8, epochs=10, batch_size=64, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    _, dropped = dn.fit_dropoutnet(t, pairs, dropout=0.5, hidden=(32,), rank=8, epochs=10, batch_size=64, lr=1e-2)
    assert dropped[-1] < dropped[0]                          # half the targets are unpredictable: a smaller gain


def test_cold_items_are_scored_from_content_only():
    t = _tables()
    model = dn.DropoutNet(6, 3, 5, hidden=(16,), rank=4, dropout=0.5).eval()
    cold = np.array([3, 7])
    before = dn.dropoutnet_scores(model, t, cold_items=cold)
    t2 = dict(t, item_pref=t["item_pref"].copy())
    t2["item_pref"][cold] += 10.0                            # change the cold items' preference input
    t2["item_pref"][0] += 10.0                               # ... and one warm item's
    after = dn.dropoutnet_scores(model, t2, cold_items=cold)
    np.testing.assert_array_equal(before[:, cold], after[:, cold])
    assert not np.allclose(before[:, 0], after[:, 0])


def test_standardize_preferences_zeroes_cold_rows():
    P = np.random.default_rng(0).normal(3, 2, (20, 4))
    warm = np.arange(20) < 15
    out = dn.standardize_preferences(P, warm)
    assert np.all(out[~warm] == 0)
    np.testing.assert_allclose(out[warm].mean(0), 0, atol=1e-5)
    assert np.abs(out).max() <= 5


def test_cold_start_data_is_reproducible_and_content_predicts_taste():
    a = dn.cold_start_data(200, 300, per_user=15, seed=3)
    b = dn.cold_start_data(200, 300, per_user=15, seed=3)
    assert a.R.shape == (200, 300) and (a.R != b.R).nnz == 0
    assert a.item_content.shape == (300, 24) and a.user_content.shape == (200, 8)
    assert set(np.unique(a.R.data)) == {1.0} and a.R.nnz >= 200 * 3
    # items of the same content cluster are co-consumed more than items of different clusters
    co = (a.R.T @ a.R).toarray()
    np.fill_diagonal(co, 0)
    same = a.item_cluster[:, None] == a.item_cluster[None, :]
    assert co[same].mean() > 1.2 * co[~same].mean()   # partly: popularity and private taste dilute it


def _write_citeulike(folder):
    (folder / "users.dat").write_text("2 0 2\n3 1 2 3\n1 3\n")
    (folder / "mult.dat").write_text("2 0:1 5:2\n3 1:1 2:1 5:1\n1 3:4\n2 4:1 0:2\n")


def test_read_citeulike_fixture(tmp_path):
    _write_citeulike(tmp_path)
    d = dn.read_citeulike(tmp_path, n_components=2)
    assert d.R.shape == (3, 4) and d.R.nnz == 6
    assert d.R[1, 3] == 1 and d.R[0, 1] == 0
    assert d.item_content.shape == (4, 2) and d.user_content.shape == (3, 0)
    assert d.item_cluster.shape == (4,)


def test_citeulike_registry_entry(tmp_path):
    with pytest.raises(data.OfflineError):
        data.load("citeulike", "ci")
    with pytest.raises(FileNotFoundError, match="users.dat"):
        data.load("citeulike", "paper", root=tmp_path)
    (tmp_path / "citeulike").mkdir()
    _write_citeulike(tmp_path / "citeulike")
    assert data.load("citeulike", "paper", root=tmp_path, n_components=2).R.shape == (3, 4)


def test_pair_batches_cover_every_pair_once():
    t = _tables()
    torch.manual_seed(0)
    seen = torch.cat([b["target"] for b in dn.PairBatches(t, np.arange(25) % 30, np.arange(25) % 40,
                                                             np.arange(25, dtype=np.float32), batch_size=8)])
    assert sorted(seen.tolist()) == list(range(25))
