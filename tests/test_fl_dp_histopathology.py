"""fl-dp-histopathology: config validation, the paper profile's wiring on a tiny TCGA-features fixture, and the
required ci claims over several seeds (the experiment functions, not one lucky seed).

Seeds: the training and attention claims run for seeds 0-2 here (about 10 s each); the DP-sweep claims, which
need eight DP FedAvg runs per seed, run for seeds 0-2 under ``-m slow``. Seeds 0-4 were checked by hand when the
page was written (see the notebook's Limits)."""

import numpy as np
import pandas as pd
import pytest

from l6kit import claims
from l6kit.data.registry import DataMissingError
from l6kit.papers import fl_dp_histopathology as fl
from l6kit.privacy import mil


@pytest.mark.parametrize("seed", range(3))
def test_required_training_and_attention_claims(seed):
    cfg = fl.config("ci", seed=seed)
    d = fl.load_data(cfg)
    comp = fl.compare_training(cfg, d, progress=False)
    book = claims.ClaimBook(fl.SLUG, cfg)
    fl.record_training_claims(book, cfg, comp)
    fl.record_attention_claim(book, mil.key_attention(comp["federated"]["iid"]["model"], d.test))
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 4
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_required_dp_claims(seed):
    cfg = fl.config("ci", seed=seed)
    sweep = fl.epsilon_sweep(cfg, fl.load_data(cfg), progress=False)
    book = claims.ClaimBook(fl.SLUG, cfg)
    fl.record_dp_claims(book, cfg, sweep)
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 2 and all(c.holds for c in required), [(c.name, c.measured) for c in required]


def test_dp_sweep_records_epsilon_per_run():
    cfg = fl.config("ci", sigmas=(0.0, 2.0), dp_rounds=2, dp_bags_per_site=40, bags_per_site=10, test_bags=20)
    sweep = fl.epsilon_sweep(cfg, fl.load_data(cfg), progress=False)
    assert list(sweep.columns) == ["split", "sigma", "epsilon", "accuracy"] and len(sweep) == 4
    assert np.isinf(sweep.loc[0, "epsilon"]) and 0 < sweep.loc[1, "epsilon"] < np.inf
    assert sweep.loc[1, "epsilon"] == pytest.approx(sweep.loc[3, "epsilon"])   # same q and steps per hospital


def test_config_validation():
    assert fl.config("ci").hidden == 32 and fl.config("paper").hidden == 128
    with pytest.raises(ValueError, match="allowed"):
        fl.config("ci", n_hospitals=3)
    with pytest.raises(ValueError, match="n_sites"):
        fl.config("ci", n_sites=1)
    with pytest.raises(ValueError, match="min_key"):
        fl.config("ci", min_key=0)


def _fixture(folder, n=20):
    rng = np.random.default_rng(0)
    (folder / "features").mkdir()
    rows = []
    for i in range(n):
        sid, label, site = f"TCGA-{['05', '44', 'NJ'][i % 3]}-{i:04d}", ["LUAD", "LUSC"][i % 2], ["05", "44", "NJ"][i % 3]
        np.save(folder / "features" / f"{sid}.npy", rng.normal(size=(3 + i % 4, 8)).astype(np.float32))
        rows.append((sid, label, site))
    pd.DataFrame(rows, columns=["slide_id", "label", "site"]).to_csv(folder / "slides.csv", index=False)


def test_paper_profile_reads_tile_features(tmp_path):
    _fixture(tmp_path)
    cfg = fl.config("paper", features_path=str(tmp_path), n_sites=2, max_tiles=4, rounds=1, dp_rounds=1)
    d = fl.load_data(cfg)
    assert d.in_dim == 8 and d.test.x.shape[1:] == (4, 8)
    assert sum(len(b) for b in d.sites["iid"]) + len(d.test) == 20
    assert sum(len(b) for b in d.sites["non-iid"]) == sum(len(b) for b in d.sites["iid"])
    run = fl.run_federated(cfg, d, "non-iid", sigma=1.0, progress=False)
    assert 0.0 <= run["accuracy"] <= 1.0 and np.isfinite(run["epsilon"])


def test_paper_profile_without_data_names_what_to_produce(tmp_path):
    cfg = fl.config("paper", features_path=str(tmp_path / "absent"))
    with pytest.raises(DataMissingError, match="gdc-client"):
        fl.load_data(cfg)
