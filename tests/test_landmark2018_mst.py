"""landmark2018-mst: configuration errors, the required claims over seeds 0-2, and the revisited data path."""

import numpy as np
import pytest

from l6kit.papers import landmark2018_mst as mst


@pytest.mark.parametrize("bad, match", [({"datasets": ("imagenet",)}, "unknown data set"),
                                        ({"k": 0}, ">= 1"), ({"kk": 3}, "unknown parameter")])
def test_bad_configuration_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        mst.config("ci", **bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prim_order_beats_knn_on_every_generated_set(seed):
    cfg = mst.config("ci", seed=seed)
    for name in cfg.datasets:
        table = mst.compare_methods(cfg, mst.load_set(cfg, name)).set_index("method")["mAP"]
        prim, knn = table.filter(like="Prim").iloc[0], table["kNN"]
        assert prim - knn >= (cfg.margin if name == "arcs" else 0.0) and prim > knn, (name, prim, knn)


def test_revisited_sets_use_the_offline_stand_in_and_the_revisited_protocol():
    cfg = mst.config("ci", datasets=("roxford5k",))
    s = mst.load_set(cfg, "roxford5k")
    assert s.gnd is not None and s.Q.shape[1] == s.X.shape[1]
    table = mst.compare_methods(cfg, s)
    assert {"easy mAP", "medium mAP", "hard mAP"} <= set(table.columns)
    assert np.isfinite(table["hard mAP"]).all()
