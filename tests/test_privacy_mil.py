"""Attention-MIL model, digit-bag stand-in, hospital splits and the TCGA tile-feature reader."""

import numpy as np
import pandas as pd
import pytest
import torch

from l6kit.data.registry import DataMissingError
from l6kit.privacy import mil
from l6kit.privacy.dp import per_sample_grads


def _pool(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 64)).astype(np.float32), rng.integers(0, 10, n)


def test_model_shapes_and_permutation_invariance():
    model = mil.AttentionMIL(64, hidden=8, attn_dim=4, n_classes=3)
    x = torch.randn(5, 7, 64)
    assert model(x).shape == (5, 3)
    a, h = model.attention(x)
    assert a.shape == (5, 7) and h.shape == (5, 7, 8)
    perm = torch.randperm(7)
    assert torch.allclose(model(x[:, perm]), model(x), atol=1e-5)


def test_attention_sums_to_one_and_honours_the_mask():
    model = mil.AttentionMIL(64, hidden=8, attn_dim=4)
    x = torch.randn(4, 6, 64)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[0, 3:] = False
    mask[2, 1:] = False
    with torch.no_grad():
        a, _ = model.attention(x, mask)
    assert torch.allclose(a.sum(1), torch.ones(4), atol=1e-6)
    assert (a[~mask] == 0).all() and float(a[2, 0]) == pytest.approx(1.0)
    # padded instances cannot change the output, whatever they hold
    x2 = x.clone()
    x2[~mask] = 100.0
    assert torch.allclose(model(x, mask), model(x2, mask), atol=1e-5)
    # the same through the packed mask channel (what vmap per-sample gradients see)
    packed = mil.AttentionMIL(64, hidden=8, attn_dim=4, mask_channel=True)
    packed.load_state_dict(model.state_dict())
    assert torch.allclose(packed(mil.pack_mask(x, mask)), model(x, mask), atol=1e-6)


def test_per_bag_gradients_with_vmap():
    model = mil.AttentionMIL(64, hidden=8, attn_dim=4, mask_channel=True)
    x, y = mil.pack_mask(torch.randn(6, 5, 64), torch.ones(6, 5, dtype=torch.bool)), torch.randint(0, 2, (6,))
    grads = per_sample_grads(model, mil.per_bag_loss, x, y)
    assert grads["head.weight"].shape == (6, *model.head.weight.shape)


def test_a_training_step_lowers_the_loss():
    torch.manual_seed(0)
    bags = mil.make_digit_bags(*_pool(), 64, bag_size=6, target=3, min_key=1, rng=np.random.default_rng(1))
    model = mil.AttentionMIL(64, hidden=16, attn_dim=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = float(model.loss((bags.x, bags.y)).detach())
    for _ in range(5):
        opt.zero_grad()
        model.loss((bags.x, bags.mask, bags.y)).backward()
        opt.step()
    assert float(model.loss((bags.x, bags.y)).detach()) < before


def test_bag_labels_follow_the_rule():
    X, digits = _pool(300)
    bags = mil.make_digit_bags(X, digits, 200, bag_size=10, target=7, min_key=3, pos_frac=0.5,
                               rng=np.random.default_rng(2))
    assert bags.x.shape == (200, 10, 64)
    counts = bags.key.sum(1)
    assert torch.equal(bags.y, (counts >= 3).long())
    assert 0.3 < float(bags.y.float().mean()) < 0.7
    # key instances are exactly the target digits: rebuild each instance's class from the pool
    lookup = {tuple(np.round(v, 6)): c for v, c in zip(X, digits, strict=True)}
    cls = np.array([[lookup[tuple(np.round(v, 6))] for v in bag] for bag in bags.x.numpy()])
    assert np.array_equal(cls == 7, bags.key.numpy())


def test_hospital_splits_iid_vs_non_iid():
    X, digits = _pool(300)
    iid = mil.hospital_splits(X, digits, 4, 300, "iid", rng=np.random.default_rng(0))
    non = mil.hospital_splits(X, digits, 4, 300, "non-iid", rng=np.random.default_rng(0))
    assert [int(b.site[0]) for b in non] == [0, 1, 2, 3]
    pos_iid = [float(b.y.float().mean()) for b in iid]
    pos_non = [float(b.y.float().mean()) for b in non]
    assert max(pos_iid) - min(pos_iid) < 0.2 and pos_non[-1] - pos_non[0] > 0.4
    assert float(non[-1].x.std()) > float(non[0].x.std()) + 0.05       # site "stains" (contrast) differ
    with pytest.raises(ValueError, match="allowed: iid, non-iid"):
        mil.site_settings(3, "dirichlet")


def test_key_attention_on_an_oracle_model():
    bags = mil.make_digit_bags(*_pool(), 30, bag_size=5, min_key=1, pos_frac=1.0, rng=np.random.default_rng(3))

    class Oracle(mil.AttentionMIL):
        def attention(self, x, mask=None):
            return torch.softmax(10.0 * self.keys.float(), dim=1), x

    oracle = Oracle(64)
    oracle.keys = bags.key
    out = mil.key_attention(oracle, bags)
    assert out["top_is_key"] == 1.0 and out["mass_on_key"] > out["chance"]


def _write_fixture(folder, dims=(3, 5, 4, 2)):
    rng = np.random.default_rng(0)
    (folder / "features").mkdir()
    ids = [f"TCGA-{site}-{i:04d}-01Z" for i, site in enumerate(["05", "05", "44", "NJ"])]
    for sid, n in zip(ids, dims, strict=True):
        np.save(folder / "features" / f"{sid}.npy", rng.random((n, 16)).astype(np.float32))
    pd.DataFrame({"slide_id": ids, "label": ["LUAD", "LUSC", "LUAD", "LUSC"],
                  "site": ["05", "05", "44", "NJ"]}).to_csv(folder / "slides.csv", index=False)
    return ids


def test_tile_feature_reader_on_a_fixture(tmp_path):
    ids = _write_fixture(tmp_path)
    slides = mil.read_tile_features(tmp_path)
    assert list(slides.slide_ids) == ids
    assert slides.classes == ("LUAD", "LUSC") and list(slides.labels) == [0, 1, 0, 1]
    assert slides.site_names == ("05", "44", "NJ") and list(slides.sites) == [0, 0, 1, 2]
    assert [f.shape for f in slides.features] == [(3, 16), (5, 16), (4, 16), (2, 16)]
    bags = mil.pad_bags(slides, max_tiles=4)
    assert bags.x.shape == (4, 4, 16)
    assert bags.mask.sum(1).tolist() == [3, 4, 4, 2]
    assert (bags.x[~bags.mask] == 0).all()
    model = mil.AttentionMIL(16, hidden=8, attn_dim=4, mask_channel=True)
    assert mil.accuracy(model, bags) in (0.0, 0.25, 0.5, 0.75, 1.0)


def test_tile_feature_reader_errors(tmp_path):
    with pytest.raises(DataMissingError, match="slides.csv"):
        mil.read_tile_features(tmp_path)
    ids = _write_fixture(tmp_path)
    (tmp_path / "features" / f"{ids[1]}.npy").unlink()
    with pytest.raises(DataMissingError, match="1 slide feature file"):
        mil.read_tile_features(tmp_path)
