"""l6kit.recsys.tafa: the generator, the NCE target, the model's shapes/attention/training, the Amazon reader."""

import gzip
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from l6kit import data
from l6kit.recsys import tafa
from l6kit.train import TensorBatches, fit


def small(seed=0):
    return tafa.synthetic_reviews(n_users=60, n_items=40, n_topics=4, vocab=30, seed=seed)


def test_synthetic_reviews_are_aligned_with_the_interactions():
    d = small()
    assert d.R.shape == (60, 40) and d.bow.shape == (d.R.nnz, 30)
    assert np.all(np.asarray(d.R[d.users, d.items]).ravel() == 1)
    assert np.diff(d.R.indptr).min() >= 3
    assert np.all((d.informativeness >= 0) & (d.informativeness <= 1))
    assert np.asarray(d.bow.sum(1)).min() >= 15
    np.testing.assert_allclose(d.theta.sum(1), 1.0)
    assert (d.bow != small().bow).nnz == 0                              # same seed, same data


def test_nce_target_corrects_for_popularity_on_a_toy_case():
    # item 0: all 4 users, item 1: 2 users, item 2: 1 user
    R = sp.csr_matrix(np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=np.float32))
    N = tafa.nce_targets(R, root=1.0).toarray()
    np.testing.assert_allclose(N[0], [0.0, np.log(2), np.log(4)], rtol=1e-6)
    assert np.all(N[R.toarray() == 0] == 0)
    assert N[0, 2] > N[0, 1] > N[0, 0]                                  # rarer item, larger target
    N11 = tafa.nce_targets(R, root=1.1).toarray()
    assert N11[0, 0] == 0 and N11[0, 2] == pytest.approx(np.log(4))    # max(0, .) clips the popular item


def test_review_index_keeps_only_the_users_own_kept_reviews():
    users = np.array([0, 0, 0, 1, 2, 2])
    keep = np.array([True, False, True, True, True, True])
    ids = tafa.review_index(users, keep, n_users=4, max_reviews=2, seed=0)
    assert ids.shape == (4, 2)
    assert sorted(ids[0]) == [0, 2] and list(ids[1]) == [3, -1] and sorted(ids[2]) == [4, 5]
    assert list(ids[3]) == [-1, -1]
    assert tafa.review_index(users, keep, 4, 1, seed=0)[0, 0] in (0, 2)


def test_padded_bow_gives_the_normalised_bag():
    bow = sp.csr_matrix(np.array([[2, 0, 1, 1], [0, 0, 0, 0], [0, 3, 0, 0]], dtype=np.float32))
    tokens, weights = tafa.padded_bow(bow)
    assert tokens.shape == weights.shape == (3, 3)
    dense = np.zeros((3, 4))
    np.add.at(dense, (np.arange(3)[:, None].repeat(3, 1), tokens), weights)
    np.testing.assert_allclose(dense, [[0.5, 0, 0.25, 0.25], [0, 0, 0, 0], [0, 1, 0, 0]])
    tokens, weights = tafa.padded_bow(bow, max_words=1)
    assert tokens[0, 0] == 0 and weights[0, 0] == 1.0


def batch(d, max_reviews=5):
    rows = torch.tensor(d.R.toarray())
    ids = torch.from_numpy(tafa.review_index(d.users, np.ones(len(d.users), bool), d.R.shape[0], max_reviews))
    return {"rows": rows, "reviews": ids, "nce": torch.tensor(tafa.nce_targets(d.R).toarray())}


def test_shapes_and_attention_weights_sum_to_one():
    d = small()
    b = batch(d)
    b["reviews"][0] = -1                                                # a user without reviews
    model = tafa.TAFA(40, d.bow, dim=8).eval()
    out = model(b["rows"], b["reviews"])
    assert out["rec"].shape == out["nce"].shape == (60, 40) and out["z"].shape == (60, 8)
    att = out["review_attention"]
    assert att.shape == (60, 5)
    torch.testing.assert_close(att[1:].sum(1), torch.ones(59))
    assert torch.all(att[0] == 0) and torch.all(att[b["reviews"] < 0] == 0)
    torch.testing.assert_close(out["modality"].sum(1), torch.ones(60))
    ae = tafa.TAFA(40, d.bow, dim=8, text=False, nce=False).eval()
    assert ae(b["rows"], b["reviews"])["rec"].shape == (60, 40)
    pred = model.predict(b["rows"], b["reviews"], batch_size=16)
    assert pred["rec"].shape == (60, 40) and pred["modality"].shape == (60, 2)


def test_a_training_step_lowers_the_loss():
    d = small()
    b = batch(d)
    torch.manual_seed(0)
    model = tafa.TAFA(40, d.bow, dim=8, dropout=0.0)
    before = float(model.loss(b).detach())
    fit(model, TensorBatches(b, 60), epochs=5, lr=1e-2, progress=False)
    assert float(model.loss(b).detach()) < before


def write_amazon(folder, lines):
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "reviews_Digital_Music_5.json.gz", "wt") as fh:
        for line in lines:
            fh.write(line + "\n")


def amazon_record(user, item, text, summary="ok"):
    return json.dumps({"reviewerID": user, "asin": item, "reviewerName": "x", "helpful": [0, 0],
                       "reviewText": text, "overall": 5.0, "summary": summary, "unixReviewTime": 1400000000,
                       "reviewTime": "05 13, 2014"})


def test_amazon_reader_on_a_fixture_in_the_real_format(tmp_path):
    folder = tmp_path / "amazon-reviews-5core"
    write_amazon(folder, [amazon_record("A1", "B1", "Great guitar riffs and great vocals"),
                          amazon_record("A1", "B2", "Smooth jazz piano"),
                          amazon_record("A2", "B1", "Guitar solos!", summary="riffs"),
                          amazon_record("A2", "B1", "a duplicate pair is dropped")])
    d = data.load("amazon-reviews-5core", "paper", root=tmp_path, vocab=50)
    assert d.R.shape == (2, 2) and d.R.nnz == 3 and d.bow.shape == (3, len(d.words))
    assert "guitar" in d.words and "the" not in d.words and "and" not in d.words
    assert d.bow[0, d.words.index("great")] == 2
    assert d.bow[2, d.words.index("riffs")] == 1                        # the summary is read too
    with pytest.raises(data.DataMissingError, match="reviews_Video_Games_5.json.gz"):
        data.load("amazon-reviews-5core", "paper", root=tmp_path, category="Video_Games")
    write_amazon(folder, [amazon_record("A1", "B1", "fine"), "{not json"])
    with pytest.raises(ValueError, match="line 2"):
        tafa.read_amazon_reviews(folder)


def test_ci_loads_generated_reviews_offline():
    d = data.load("amazon-reviews-5core", "ci", n_users=30, n_items=20, vocab=20)
    assert d.R.shape == (30, 20) and d.theta is not None
