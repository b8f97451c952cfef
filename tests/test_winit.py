"""The WinIT paper module: the required claims hold for several seeds (seeds 0-2 here; 0-4 were checked when the
page was written), the profiles validate, the dashboard API returns what it promises and round-trips through
``.npz``, and the MIMIC-III part says clearly what is missing."""

import pickle

import numpy as np
import pytest

from l6kit import claims
from l6kit.papers import winit

TINY = dict(n_series=120, length=16, delays=(0, 2), hidden=16, epochs=3, n_explain=12, window=3,
            generator_epochs=2, occlusion_samples=2, ig_steps=4, shap_samples=4)


@pytest.mark.parametrize("seed", range(3))
def test_required_claims_hold_at_ci(seed):
    cfg = winit.config("ci", seed=seed)
    table = winit.score_table(winit.delay_sweep(cfg))
    book = claims.ClaimBook("winit", cfg)
    winit.record_model_claims(book, cfg, table)
    winit.record_spike_claims(book, cfg, table)
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 8                  # 2 accuracy + 5 baselines at delay 2 + the degradation claim
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


def test_profiles_and_validation():
    assert winit.config("paper").n_series == 3000 and winit.config("paper").delays == (0, 1, 2, 3, 4)
    assert winit.config("ci").length == 30 and not winit.config("ci").mimic
    with pytest.raises(ValueError, match="allowed"):
        winit.config("ci", methods=("winit", "lime"))
    with pytest.raises(ValueError, match="claim_delay"):
        winit.config("ci", delays=(0, 1))
    with pytest.raises(ValueError, match="generator_horizon"):
        winit.config("ci", window=11)
    with pytest.raises(ValueError, match="unknown parameter"):
        winit.config("ci", windw=3)


def test_compute_attributions_for_the_dashboard_and_npz_round_trip(tmp_path):
    cfg = winit.config("ci", **TINY)
    result = winit.compute_attributions(cfg, "spike", delay=2, methods=("winit", "afo", "ig"), window=2)
    n, F, T = result["x"].shape
    assert (n, F, T) == (12, 3, 16) and result["truth"].shape == result["x"].shape
    assert result["prob"].shape == result["y"].shape == (12, 16)
    assert set(result["attributions"]) == {"winit", "afo", "ig"}
    assert all(a.shape == (12, 3, 16) for a in result["attributions"].values())
    assert result["windows"]["winit"].shape == (12, 3, 16, 2) and result["window"] == 2
    assert result["per_sample_auprc"]["afo"].shape == (12,)
    assert {"auroc", "auprc", "ap"} <= set(result["scores"]["winit"])
    same = winit.config("ci", **TINY | {"window": 2, "metric": "js", "n_explain": 5})
    assert winit.prepare(same, "spike", 2) is winit.prepare(cfg, "spike", 2)    # explaining never retrains
    winit.save_attributions(tmp_path / "artifacts" / "winit.npz", result)
    back = winit.load_attributions(tmp_path / "artifacts" / "winit.npz")
    assert back["task"] == "spike" and back["delay"] == 2 and back["window"] == 2
    np.testing.assert_array_equal(back["attributions"]["ig"], result["attributions"]["ig"])
    np.testing.assert_array_equal(back["windows"]["winit"], result["windows"]["winit"])
    assert back["scores"]["winit"]["auprc"] == pytest.approx(result["scores"]["winit"]["auprc"])


def test_tables_put_the_paper_beside_this_run():
    cfg = winit.config("ci", **TINY)
    results = [winit.compute_attributions(cfg, "spike", d, methods=("winit", "afo")) for d in (0, 2)]
    table = winit.score_table(results)
    assert table.loc[(table["delay"] == 2) & (table["method"] == "afo"), "paper auprc"].item() == 0.005
    wide = winit.paper_table(table)
    assert wide.loc["WinIT", "delay 0 (paper)"] == 1.0 and "delay 2 (this run)" in wide.columns
    book = claims.ClaimBook("winit", cfg)
    winit.record_spike_claims(book, cfg, table)
    assert any(c.name.startswith("AFO loses more AUPRC") for c in book.claims)
    drops = winit.performance_drop(cfg, results[1], winit.prepare(cfg, "spike", 2).model, (0.01, 0.05))
    assert len(drops) == 4 and set(drops["explainer"]) == {"WinIT", "AFO"}


def test_other_tasks_run_and_record_informative_claims():
    cfg = winit.config("ci", **TINY, state_size=(80, 20))
    result = winit.compute_attributions(cfg, "state", methods=("winit", "fo"))
    assert result["x"].shape == (12, 3, 20) and result["truth"].any()
    book = claims.ClaimBook("winit", cfg)
    winit.record_task_claims(book, cfg, winit.score_table([result]), "state")
    assert [c.required_at for c in book.claims] == [()]
    assert book.claims[0].paper == [0.26, 0.027]


def test_mimic_part_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("L6KIT_DATA", str(tmp_path))
    drops, message = winit.mimic_experiment(winit.config("ci"))
    assert drops is None and "not used" in message
    drops, message = winit.mimic_experiment(winit.config("paper", mimic_path=str(tmp_path / "none.pkl")))
    assert drops is None and "credentialed" in message and "none.pkl" in message


def test_mimic_part_runs_on_a_fixture(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i in range(40):
        x = rng.normal(size=(31, 48))
        y = int(i % 2)
        x[5, 30:] += 3 * y                                        # a readable signal
        records.append((x, y, None))
    path = tmp_path / "patient_vital_preprocessed.pkl"
    path.write_bytes(pickle.dumps(records))
    cfg = winit.config("paper", **TINY, mimic_path=str(path), mimic_epochs=3, mimic_lr=1e-2,
                       methods=("winit", "afo", "deeplift"))
    drops, message = winit.mimic_experiment(cfg)
    assert "MIMIC-III" in message and set(drops["method"]) == {"winit", "afo", "deeplift"}
    book = claims.ClaimBook("winit", cfg)
    winit.record_mimic_claims(book, drops)
    assert len(book.claims) == 2 and all(c.required_at == () for c in book.claims)
