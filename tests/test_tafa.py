"""The TAFA experiment functions: the required claims hold for seeds 0-4, and the profiles are wired."""

import numpy as np
import pytest

from l6kit import claims
from l6kit.papers import tafa


@pytest.mark.parametrize("seed", range(5))
def test_required_claims_hold_for_five_seeds(seed):
    cfg = tafa.config("ci", seed=seed)
    split = tafa.prepare(cfg, tafa.load_reviews(cfg))
    models = tafa.train_models(cfg, split, names=(tafa.AE, tafa.TAFA))    # the ablation is informative only
    per_user, _ = tafa.evaluate(cfg, split, models)
    book = claims.ClaimBook("tafa", cfg)
    tafa.record_claims(book, cfg, per_user)
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 2
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


def test_profiles_and_validation():
    assert tafa.config("paper").category == "Digital_Music"
    assert tafa.config("ci").category == "synthetic"
    with pytest.raises(ValueError, match="allowed: synthetic"):
        tafa.config("ci", category="Books")
    with pytest.raises(ValueError, match="bucket_edges"):
        tafa.config("ci", bucket_edges=(4, 2))


def test_buckets_and_head_items():
    labels = tafa.bucket_labels(np.array([1, 2, 3, 4, 6, 7, 12, 13, 40]), (2, 4, 7, 13))
    assert list(labels) == ["<2", "2-3", "2-3", "4-6", "4-6", "7-12", "7-12", "13+", "13+"]
    import scipy.sparse as sp
    train = sp.csr_matrix(np.array([[1, 1, 0, 0, 1], [1, 0, 0, 0, 1], [1, 0, 1, 0, 0]], dtype=np.float32))
    assert list(tafa.head_items(train, 0.4)) == [0, 4]


def test_paper_profile_reads_the_amazon_file_and_prepares_it(tmp_path, monkeypatch):
    import gzip
    import json

    folder = tmp_path / "amazon-reviews-5core"
    folder.mkdir()
    rng = np.random.default_rng(0)
    words = ["guitar", "piano", "vocals", "drums", "jazz", "rock"]
    with gzip.open(folder / "reviews_Digital_Music_5.json.gz", "wt") as fh:
        for u in range(8):
            for i in rng.choice(6, size=5, replace=False):
                fh.write(json.dumps({"reviewerID": f"U{u}", "asin": f"I{i}", "summary": "fine",
                                     "reviewText": " ".join(rng.choice(words, size=6)), "overall": 4.0}) + "\n")
    monkeypatch.setenv("L6KIT_DATA", str(tmp_path))
    cfg = tafa.config("paper", epochs=1, dim=8, device="cpu")
    split = tafa.prepare(cfg, tafa.load_reviews(cfg))
    assert split["train"].shape == (8, 6) and split["train"].nnz + split["test"].nnz == 40
    assert split["tensors"]["reviews"].shape == (8, cfg.max_reviews)
    per_user, _ = tafa.evaluate(cfg, split, tafa.train_models(cfg, split, names=(tafa.TAFA,)))
    assert set(per_user["head"]) == {"rec", "nce"}
