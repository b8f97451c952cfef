"""HGCF: hyperboloid maps against geoopt, the models train, the tree generator, and the required claims over
seeds 0-4 (the experiment functions of l6kit.papers.hgcf at profile ci)."""

from __future__ import annotations

import geoopt
import numpy as np
import pytest
import torch
from geoopt.manifolds.lorentz import math as lmath

from l6kit import claims
from l6kit.papers import hgcf
from l6kit.recsys import holdout_split
from l6kit.recsys.hgcf import (
    GraphRanker,
    LightGCN,
    TripletBatches,
    expmap0,
    logmap0,
    lorentz_inner,
    sqdist,
    to_poincare,
)
from l6kit.recsys.synthetic import complete_tree, tree_interactions
from l6kit.train import fit


def test_maps_on_hyperboloid_and_match_geoopt():
    v = torch.randn(50, 3, dtype=torch.float64)
    x = expmap0(v)
    assert torch.allclose(lorentz_inner(x, x), -torch.ones(50, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(logmap0(x), v, atol=1e-8)
    man = geoopt.Lorentz()
    assert torch.allclose(x, man.expmap0(torch.cat([torch.zeros(50, 1, dtype=torch.float64), v], 1)), atol=1e-9)
    y = expmap0(torch.randn(50, 3, dtype=torch.float64))
    assert torch.allclose(sqdist(x, y), man.dist(x, y) ** 2, atol=1e-7)
    origin = expmap0(torch.zeros(1, 3, dtype=torch.float64))
    assert torch.allclose(sqdist(origin, x), (v.norm(dim=1) ** 2).clamp_max(50), atol=1e-6)   # d(o, exp v) = |v|
    assert torch.allclose(to_poincare(x), lmath.lorentz_to_poincare(x, k=torch.tensor(1.0)), atol=1e-9)


def small_split(seed=0):
    t = tree_interactions(n_users=120, branching=2, depth=3, items_per_node=3, internal_items=0, per_user=8,
                          seed=seed)
    return t, *holdout_split(t.R, 0.2, seed=seed)


@pytest.mark.parametrize("model_fn", [lambda R: GraphRanker(R, dim=4, margin=1.0),
                                      lambda R: GraphRanker(R, dim=4, margin=1.0, geometry="euclidean"),
                                      lambda R: LightGCN(R, dim=4)])
def test_training_lowers_the_loss_and_scores_shape(model_fn):
    _, train, _ = small_split()
    model = model_fn(train)
    hist = fit(model, TripletBatches(train, 256), epochs=8, lr=0.05, device="cpu", seed=0, progress=False)
    assert hist.losses[-1] < hist.losses[0]
    assert model.scores().shape == train.shape


def test_hyperbolic_scores_rank_by_distance():
    _, train, _ = small_split()
    model = GraphRanker(train, dim=3, init_scale=1.0)
    with torch.no_grad():
        x = model.embed().double()
        d = torch.acosh((-lorentz_inner(x[:1], x[model.n_users:])).clamp_min(1.0)).numpy()
    s = model.scores()[0]
    assert np.all(np.diff(s[np.argsort(d)]) <= 1e-9)       # closer item -> higher score


def test_tree_generator_structure():
    parent, depth = complete_tree(3, 2)
    assert parent.tolist() == [-1, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3] and depth.max() == 2
    t, _, _ = small_split()
    assert t.R.shape == (120, 2 ** 3 * 3) and (t.items["depth"] == 3).all()
    assert set(t.items["subtree"]) == {0, 1} and t.users["depth"].between(1, 2).all()
    assert np.diff(t.R.indptr).min() >= 3


def test_config_validation_and_profiles():
    assert hgcf.config("paper").dataset == "amazon-cd" and hgcf.config("paper").dim == 50
    with pytest.raises(ValueError, match="known: "):
        hgcf.config("ci", dataset="netflix")
    with pytest.raises(ValueError, match="offline"):
        hgcf.config("ci", dataset="movielens-100k")


def test_poincare_points_and_embedding_meta():
    cfg = hgcf.config("ci", n_users=80, depth=3, dims=(2,), dim=3, epochs=2)
    split = hgcf.load_split(cfg)
    model = hgcf.make_model(cfg, split, "hyperbolic", 3)
    p = hgcf.poincare_points(model, centre=False)
    with torch.no_grad():
        x = model.embed().double()
        assert np.allclose(p, to_poincare(x).numpy(), atol=1e-4)
        y = expmap0(torch.from_numpy(hgcf.tangent_coords(model)))           # recentring is an isometry
        assert torch.allclose(sqdist(y[:5, None], y[None, 5:40]), sqdist(x[:5, None], x[None, 5:40]), atol=1e-6)
    assert (np.linalg.norm(hgcf.poincare_points(model, dims=2), axis=1) < 1).all()
    meta = hgcf.embedding_meta(split, model)
    assert len(meta) == sum(split.train.shape) and list(meta.columns) == ["kind", "id", "popularity", "depth",
                                                                          "subtree"]


@pytest.mark.parametrize("seed", range(5))
def test_required_claims_hold_for_five_seeds(seed):
    cfg = hgcf.config("ci", seed=seed)
    split = hgcf.load_split(cfg)
    main = {kind: hgcf.train(cfg, split, kind, cfg.dim) for kind in ("hyperbolic", "euclidean")}
    main["lightgcn"] = {f"recall@{cfg.k}": float("nan")}
    table = hgcf.dimension_sweep(hgcf.config("ci", seed=seed, dims=(2,)), split, ("hyperbolic", "euclidean"))
    book = claims.ClaimBook("hgcf", cfg)
    hgcf.record_claims(book, cfg, main, table)
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 2
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]
