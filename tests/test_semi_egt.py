"""semi-egt: configuration errors, the required claims over seeds 0-2 with the experiment functions, and the
paper path (GLDv2 descriptors read from a local folder) on a tiny fixture."""

import numpy as np
import pytest

from l6kit.papers import semi_egt as se
from l6kit.retrieval.semi import write_gldv2


@pytest.mark.parametrize("bad, match", [({"datasets": ("imagenet",)}, "unknown data set"),
                                        ({"k": 0}, ">= 1"), ({"index_votes": 9}, "votes"),
                                        ({"big": 0.5}, "big"), ({"kk": 3}, "unknown parameter")])
def test_bad_configuration_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        se.config("ci", **bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_required_claims_hold(seed):
    cfg = se.config("ci", seed=seed)
    digits = se.compare_methods(cfg, se.load_set(cfg, "digits"))["table"].set_index("method")["mAP"]
    assert digits[se.SEMI] > digits[se.EGT] + 100 * cfg.margin, digits
    assert digits[se.SEMI] > digits[se.LABEL_ONLY] and digits[se.SEMI] > digits["kNN"], digits
    arcs = se.compare_methods(cfg, se.load_set(cfg, "arcs"))["table"].set_index("method")["mAP"]
    assert arcs[se.SEMI] > arcs["kNN"], arcs
    cfg_noise = se.config("ci", seed=seed, noise_levels=(0.0, max(cfg.noise_levels)))
    noise = se.noise_sweep(cfg_noise)
    semi = noise[noise["method"] == se.SEMI].set_index("noise")["mAP@100"]
    assert semi.iloc[0] > semi.iloc[-1], semi


def test_paper_profile_reads_local_descriptors(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    write_gldv2(tmp_path / "gldv2-descriptors", rng.standard_normal((12, 6)), np.arange(12) % 3,
                rng.standard_normal((8, 6)), rng.standard_normal((4, 6)), [[0, 3], [5], None, [7]])
    monkeypatch.setenv("L6KIT_DATA", str(tmp_path))
    cfg = se.config("paper", k=3, p=6, top=5, index_k=3, index_votes=2, query_k=3, query_votes=2)
    result = se.run_all(cfg)
    table = result["methods"]
    assert set(table["method"]) >= {"kNN", se.EGT, se.SEMI} and table["mAP@100"].between(0, 100).all()
    assert result["quality"]["index accuracy"].isna().all()          # GLDv2 index labels are not used
    assert all(r.shape == (3, 5) for r in result["sets"]["gldv2"]["rankings"].values())
