"""The EGT experiment functions: the required claims hold for seeds 0-4 (not one lucky seed), the sweep /
timing / projection helpers have the documented shapes, and the paper profile is wired to the revisited sets."""

import math

import numpy as np
import pandas as pd
import pytest

from l6kit import claims
from l6kit.papers import egt


@pytest.mark.parametrize("seed", range(5))
def test_required_claims_hold_for_five_seeds(seed):
    cfg = egt.config("ci", seed=seed)
    table = pd.concat([egt.compare_methods(cfg, egt.load_split(cfg, n))["table"] for n in cfg.datasets])
    book = claims.ClaimBook("egt", cfg)
    egt.record_gain_claims(book, cfg, table)
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 6
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


def test_profiles_and_validation():
    assert egt.config("paper").datasets == ("roxford5k", "rparis6k")
    assert (egt.config("paper").k, egt.config("paper").tau, egt.config("paper").p) == (250, 0.42, 5000)
    assert egt.config("ci").datasets == ("arcs", "chains", "digits")
    with pytest.raises(ValueError, match="known: "):
        egt.config("ci", datasets=("imagenet",))
    with pytest.raises(ValueError, match="tau_quantile"):
        egt.config("ci", tau_quantile=1.5)


def test_helpers_shapes_on_a_small_run():
    cfg = egt.config("ci", n_queries=20, sweep_ks=(10,), sweep_quantiles=(0.5,), sweep_queries=5,
                     timing_sizes=(200, 400), timing_queries=5, p=100)
    split = egt.load_split(cfg, "chains")
    res = egt.compare_methods(cfg, split)
    assert list(res["table"]["method"]) == list(egt.METHODS) and len(res["traces"]) == 20
    assert all(R.shape == (20, len(split.X)) for R in res["rankings"].values())
    sw = egt.sweep(cfg, split)
    assert len(sw) == 3 and math.isinf(sw["tau"].iloc[0]) and sw["explore_share"].iloc[-1] == 1.0
    tm = egt.timing_vs_n(cfg)
    assert set(tm["method"]) == {"kNN", "diffusion (CG)", "EGT"} and len(tm) == 6
    view = egt.projection(split, res, egt.showcase_query(split, res["rankings"]))
    assert view["xy"].shape == (len(split.X), 2) and view["n_show"] == len(view["relevant"])
    coords, meta = egt.descriptor_table(split, res)
    assert coords.shape == split.X.shape and len(meta) == len(split.X)
    assert (np.sort(meta["egt_rank_q0"]) == np.arange(len(split.X))).all()
    book = claims.ClaimBook("egt", cfg)
    egt.record_time_claims(book, cfg, tm)
    assert len(book.claims) == 2 and all(c.required_at == () for c in book.claims)


def test_revisited_stand_in_and_paper_table():
    cfg = egt.config("ci")
    split = egt.load_split(cfg, "roxford5k")
    assert split.gnd is not None and len(split.positives) == len(split.Q)
    res = egt.compare_methods(cfg, split)
    tab = egt.revisited_table(cfg, split, res["rankings"])
    assert list(tab.columns[2:5]) == ["easy", "medium", "hard"]
    assert tab.set_index("method").loc["EGT", "paper medium"] == 73.63


def test_toy_traversals_follow_the_hand_checked_orders():
    table = egt.toy_traversals()
    assert table["visiting order"].tolist() == [[0, 3, 4, 1, 2], [0, 3, 4, 1, 2], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert table["steps"].iloc[2] == "exploit exploit explore explore exploit"
