"""The GSS experiment functions: the required claims hold for seeds 0-4 on the small-mode chains and the digits
(seeds 3-4 marked slow, to keep the default run near a minute), the helpers
have the documented shapes, and the paper profile reads the revisited sets through the registry (tiny
fixture in the revisitop file format, offline)."""

import numpy as np
import pandas as pd
import pytest

from l6kit import claims
from l6kit.papers import gss
from l6kit.retrieval.revisitop import synthetic_revisited, write_revisited


def _check_required(seed):
    cfg = gss.config("ci", seed=seed, eval_every=50)
    split = gss.load_split(cfg, "chains-small")
    run = gss.run_gss(cfg, split)
    table = gss.compare_methods(cfg, split, run)["table"]
    d = [gss.separation(gss.pair_similarities(split, run[k], cfg.n_pairs, seed)) for k in ("before", "after")]
    readme = gss.run_gss(cfg, split, k=5, kq=5, beta_pct=98.0, lr=1e-4)
    digits = gss.load_split(cfg, "digits")
    table = pd.concat([table, gss.compare_methods(cfg, digits, gss.run_gss(cfg, digits))["table"]])
    book = claims.ClaimBook("gss", cfg)
    gss.record_claims(book, cfg, table, *d, readme["curve"])
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 9
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


@pytest.mark.parametrize("seed", range(3))
def test_required_claims_hold_for_seeds_0_to_2(seed):
    _check_required(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 4])
def test_required_claims_hold_for_seeds_3_and_4(seed):
    _check_required(seed)


def test_profiles_and_validation():
    paper = gss.config("paper")
    assert paper.datasets == ("roxford5k", "rparis6k")
    assert (paper.k, paper.kq, paper.beta_pct, paper.lr, paper.epochs, paper.layers) == (5, 5, 98.0, 1e-4, 200, 2)
    assert gss.config("ci").datasets[0] == "chains-small"
    with pytest.raises(ValueError, match="known: "):
        gss.config("ci", datasets=("imagenet",))
    with pytest.raises(ValueError, match="beta_pct"):
        gss.config("ci", beta_pct=100.0)


def test_helpers_shapes_on_a_small_run():
    cfg = gss.config("ci", n_queries=20, epochs=4, eval_every=2, n_pairs=200, view_classes=3)
    split = gss.load_split(cfg, "chains-small")
    run = gss.run_gss(cfg, split)
    assert list(run["curve"]["epoch"]) == [0, 2, 4] and run["after"].shape == (20 + len(split.X), cfg.dim)
    res = gss.compare_methods(cfg, split, run)
    assert list(res["table"]["method"]) == list(gss.METHODS)
    assert all(R.shape == (20, len(split.X)) for R in res["rankings"].values())
    pairs = gss.pair_similarities(split, run["after"], cfg.n_pairs)
    assert set(pairs["pair"]) == {"same class", "different class"} and pairs["similarity"].abs().max() <= 1 + 1e-5
    view = gss.view_2d(split, run["before"], cfg.view_classes)
    assert view["label"].nunique() == 3 and set(view["view"]) <= set(range(5))
    curves = run["curve"].assign(setting="x")
    for fig in (gss.curves_figure(curves), gss.histogram_figure(pairs, pairs, run["beta"]),
                gss.view_figure(view, view), gss.loss_shape_figure()):
        assert len(fig.data) >= 2


def test_paper_profile_reads_the_revisited_files(tmp_path, monkeypatch):
    ds = synthetic_revisited("roxford5k", n_classes=4, modes=3, pts_per_mode=6, dim=16, seed=0)
    gnd = [{key: np.asarray(v).tolist() for key, v in g.items()} for g in ds.gnd]   # lists, as published
    write_revisited(tmp_path / "roxford5k", "roxford5k", ds.Q, ds.X, gnd)
    monkeypatch.setenv("L6KIT_DATA", str(tmp_path))
    cfg = gss.config("paper", datasets=("roxford5k",), epochs=3, eval_every=1, device="cpu", egt_k=5,
                     egt_p=20, diff_k=5)
    split = gss.load_split(cfg, "roxford5k")
    assert split.name == "roxford5k" and split.X.shape == ds.X.shape
    run = gss.run_gss(cfg, split)
    assert run["settings"]["kq"] == gss.README_KQ["roxford5k"]
    table = gss.compare_methods(cfg, split, run)["table"]
    assert {"easy", "medium", "hard"} <= set(table.columns)
    book = claims.ClaimBook("gss", cfg)
    gss.record_claims(book, cfg, table, 0.0, 0.0)
    within = [c for c in book.claims if "Medium mAP" in c.name]
    assert len(within) == 1 and within[0].paper == 77.8 and within[0].required_at == ()
    assert isinstance(table, pd.DataFrame) and np.isfinite(table["medium"]).all()
    pt = gss.paper_table(table)
    assert pt["paper GSS"].tolist() == [77.8, 57.5] and pt["setup"].tolist() == ["medium", "hard"]
