"""The DropoutNet experiment functions: the required claims hold for seeds 0-4 (not one lucky seed), and the
configuration and helpers behave. The seeds run the sweep's two arms the required claims need (p = 0 and the
main rate); every arm is trained from its own seed, so the values equal those of the notebook's full sweep."""

import numpy as np
import pytest

from l6kit import claims
from l6kit.papers import dropoutnet as P


@pytest.mark.parametrize("seed", range(5))
def test_required_claims_hold_for_five_seeds(seed):
    cfg = P.config("ci", seed=seed, dropout_rates=(0.0, 0.5))
    r = P.experiment(cfg)
    table = P.summary(cfg, r["wmf_warm"], r["sweep"], r["random_cold"])
    book = claims.ClaimBook(P.SLUG, cfg)
    P.record_claims(book, cfg, table, r["sweep"])
    model = r["models"][cfg.dropout][0]
    coords, meta = P.item_embedding_table(model, P.tables(r["data"], r["wmf"], r["split"]), r["data"], r["split"])
    P.record_neighbour_claim(book, *P.same_cluster_rate(coords, meta))
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 3
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


def test_profiles_and_validation():
    assert P.config("paper").dataset == "citeulike" and P.config("paper").k == 100
    assert P.config("ci").dataset == "synthetic"
    with pytest.raises(ValueError, match="allowed: synthetic, citeulike"):
        P.config("ci", dataset="netflix")
    with pytest.raises(ValueError, match="contain 0 and dropout"):
        P.config("ci", dropout_rates=(0.25, 0.5))
    with pytest.raises(ValueError, match="unknown parameter"):
        P.config("ci", dropuot=0.5)


def test_random_recall_matches_a_simulation():
    cfg = P.config("ci")
    s = P.split(cfg, P.load_data(cfg))
    rng = np.random.default_rng(0)
    sims = [P.warm_cold_recall(rng.random(s.cold.shape), s, cfg.k)[1] for _ in range(20)]
    assert np.mean(sims) == pytest.approx(P.random_cold_recall(s, cfg.k), rel=0.05)


def test_split_is_disjoint_and_complete():
    cfg = P.config("ci")
    d = P.load_data(cfg)
    s = P.split(cfg, d)
    assert (s.train + s.test + s.cold != d.R).nnz == 0
    assert s.train[:, s.is_cold].nnz == 0 and s.cold[:, ~s.is_cold].nnz == 0
    assert s.train.multiply(s.test).nnz == 0


def test_figures_and_projection():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(50, 6))
    xy = P.pca_2d(coords)
    assert xy.shape == (50, 2) and xy[:, 0].var() >= xy[:, 1].var()
    import pandas as pd
    meta = pd.DataFrame({"status": np.where(np.arange(50) < 10, "cold", "warm"), "cluster": (np.arange(50) % 3)
                         .astype(str)})
    assert len(P.projection_figure(xy, meta).data) == 6
    rate, chance = P.same_cluster_rate(coords, meta, n=5)
    assert 0 <= rate <= 1 and chance == pytest.approx(1 / 3, abs=0.05)
    table = pd.DataFrame({"warm": [0.3, np.nan], "cold": [np.nan, 0.1]}, index=["WMF", "random"])
    assert len(P.recall_bars(table, 20).data) == 2
