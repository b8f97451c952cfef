"""DuETT: shapes, masking (a masked bin or variable cannot influence the output), token-permutation
equivariance of one axis layer, pre-training and fine-tuning steps that lower the loss, and a trend task with a
known answer."""

import numpy as np
import torch

from l6kit.ehr import DuETT, DuETTPretrainer, TensorBatches, attention_maps, predict_proba
from l6kit.ehr.duett import AxisAttentionLayer, Dropout, KeepBest
from l6kit.train import fit

B, T, D, S = 8, 5, 3, 4


def batch(n=B, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"values": torch.randn(n, T, D, generator=g), "counts": torch.randint(0, 3, (n, T, D), generator=g).float(),
            "static": torch.randn(n, S, generator=g), "times": torch.arange(1, T + 1).float().expand(n, T) * 8,
            "label": (torch.rand(n, generator=g) < 0.5).float()}


def model(**kw):
    torch.manual_seed(0)
    return DuETT(D, T, S, d_embed=4, d_hidden=8, d_ff=16, **kw).eval()


def test_shapes():
    m, x = model(), batch()
    assert m.embed(x).shape == (B, T + 1, D + 1, 4)
    assert m.encode(x).shape == (B, T + 1, D + 1, 4)
    assert m(x).shape == (B,)
    maps = attention_maps(m, x)
    assert maps["event"].shape == (2, D + 1, D + 1) and maps["time"].shape == (2, T + 1, T + 1)
    np.testing.assert_allclose(maps["event"].sum(-1), 1, rtol=1e-5)
    assert predict_proba(m, x).shape == (B,)


def test_masked_bin_and_variable_cannot_leak():
    m, x = model(), batch()
    bins = torch.zeros(B, T, dtype=torch.bool)
    bins[:, 2] = True
    vars_ = torch.zeros(B, D, dtype=torch.bool)
    vars_[:, 1] = True
    y = dict(x, values=x["values"].clone(), counts=x["counts"].clone())
    y["values"][:, 2] += 5.0                   # change the masked bin
    y["values"][:, :, 1] -= 3.0                # and the masked variable
    y["counts"][:, :, 1] = 7.0
    torch.testing.assert_close(m.encode(x, bins, vars_), m.encode(y, bins, vars_))
    assert not torch.allclose(m.encode(x), m.encode(y))
    every_bin = model(aug_mask=1.0).train()                 # fine-tuning augmentation masks whole bins
    torch.testing.assert_close(every_bin.loss(x), every_bin.loss(dict(x, values=x["values"] + 1)))


def test_axis_layer_is_permutation_equivariant():
    torch.manual_seed(0)
    layer = AxisAttentionLayer(width=12, n_heads=2, d_head=3, d_ff=16).eval()
    x, perm = torch.randn(2, 5, 12), torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(layer(x)[:, perm], layer(x[:, perm]))


def test_dropout_and_regularization_switch():
    drop = Dropout(0.5).train()
    x = torch.ones(10000)
    assert abs(drop(x).mean().item() - 1) < 0.05 and (drop(x) == 0).float().mean() > 0.4
    assert torch.equal(drop.eval()(x), x)
    m = model(dropout=0.3).set_regularization(0.0, 0.25)
    assert m.aug_mask == 0.25 and all(d.p == 0 for d in m.modules() if isinstance(d, Dropout))


def test_training_steps_lower_both_losses():
    x = batch(64, seed=1)
    x["label"] = (x["values"][:, :, 0].sum(1) > 0).float()      # a learnable target
    for task in (model(), DuETTPretrainer(model())):
        history = fit(task, TensorBatches(x, 16), epochs=15, lr=3e-3, seed=0, progress=False)
        assert history.losses[-1] < 0.8 * history.losses[0]


def test_learns_a_trend_that_levels_do_not_reveal():
    """Label = whether variable 0 rises or falls over the stay; each stay has a random offset, so no single bin
    tells the answer, only the trend does."""
    g = torch.Generator().manual_seed(0)
    n = 600
    y = (torch.rand(n, generator=g) < 0.5).float()
    slope = (2 * y - 1)[:, None] * torch.linspace(-1, 1, T)[None, :]
    values = torch.randn(n, T, D, generator=g) * 0.3 + 2 * torch.randn(n, 1, 1, generator=g)
    values[:, :, 0] += slope
    data = {"values": values, "counts": torch.ones(n, T, D), "static": torch.zeros(n, S),
            "times": torch.arange(1, T + 1).float().expand(n, T) * 8, "label": y}
    train = {k: v[:400] for k, v in data.items()}
    test = {k: v[400:] for k, v in data.items()}
    m = model()
    fit(m, TensorBatches(train, 32), epochs=25, lr=3e-3, seed=0, progress=False)
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(test["label"].numpy(), predict_proba(m, test)) > 0.9


def test_keep_best_restores_the_best_epoch():
    m, x = model(), batch(32, seed=2)
    keep = KeepBest(m, x, metric="auroc")
    fit(m, TensorBatches(x, 8), epochs=4, lr=1e-2, seed=0, callbacks=[keep], progress=False)
    assert len(keep.scores) == 4
    keep.restore()
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(x["label"].numpy(), predict_proba(m, x)) == max(keep.scores)


def test_tensor_batches_cover_every_row_once():
    x = {"a": torch.arange(10)}
    torch.manual_seed(0)
    seen = torch.cat([b["a"] for b in TensorBatches(x, 3)])
    assert len(TensorBatches(x, 3)) == 4 and sorted(seen.tolist()) == list(range(10))
