"""Binned aggregation on cases with a known answer: last value per bin, counts, z-scores, static features,
the window edge, relative bins; and the GBDT's flat view."""

import numpy as np
import pytest

from l6kit.ehr import EventBinner, GBDTBaseline, binary_metrics, read_texts, synthetic_physionet2012

HEAD = "Time,Parameter,Value\n00:00,RecordID,{rid}\n00:00,Age,{age}\n00:00,Gender,1\n00:00,Height,-1\n" \
       "00:00,ICUType,{icu}\n00:00,Weight,70\n"
OUT = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n1,0,0,3,-1,0\n2,0,0,3,-1,1\n"


def two_stays():
    a = HEAD.format(rid=1, age=40, icu=1) + "00:10,HR,80\n00:50,HR,100\n01:30,HR,90\n05:00,Lactate,2\n" \
        "48:00,HR,60\n49:00,HR,999\n"
    b = HEAD.format(rid=2, age=60, icu=3) + "00:20,HR,110\n03:59,Lactate,4\n10:00,Urine,50\n"
    return read_texts({"1.txt": a, "2.txt": b}, {"Outcomes.txt": OUT})


def test_last_value_counts_and_zscores():
    data = two_stays()
    binner = EventBinner(("HR", "Lactate"), n_bins=12).fit(data)           # 4-hour bins over 48 h
    hr = np.array([80, 100, 90, 60, 110.0])                                  # 49:00 is outside the window
    np.testing.assert_allclose(binner.mean_, [hr.mean(), 3.0])
    np.testing.assert_allclose(binner.std_, [hr.std(), 1.0], rtol=1e-6)
    s = binner.transform(data)
    assert s.values.shape == s.counts.shape == (2, 12, 2) and s.static.shape == (2, 8)
    assert s.counts[0, 0, 0] == 3 and s.counts[0, 11, 0] == 1 and s.counts[0].sum() == 5
    z = lambda v, j: (v - binner.mean_[j]) / binner.std_[j]                   # noqa: E731
    np.testing.assert_allclose(s.values[0, 0, 0], z(90, 0), rtol=1e-5)       # last of 80, 100, 90
    np.testing.assert_allclose(s.values[0, 1, 1], z(2, 1), rtol=1e-5)        # 05:00 -> bin 1
    np.testing.assert_allclose(s.values[1, 0, 1], z(4, 1), rtol=1e-5)        # 03:59 -> bin 0
    assert s.values[0, 5, 0] == 0 and s.counts[0, 5, 0] == 0                 # unobserved cell
    np.testing.assert_allclose(s.bin_end_h[0], np.arange(4, 49, 4))
    assert s.labels.tolist() == [0, 1]


def test_static_features_and_missing_values():
    s = EventBinner(("HR",), n_bins=4).fit(two_stays()).transform(two_stays())
    np.testing.assert_allclose(s.static[:, 0], [-1, 1], atol=1e-5)           # Age z-scored
    assert (s.static[:, 2] == 0).all()                                       # Height missing -> 0
    assert s.static[0, 4] > 0 > s.static[1, 4] and s.static[1, 6] > 0        # ICUType one-hot 1 vs 3


def test_relative_bins_follow_the_last_observation():
    data = two_stays()
    b, ends = EventBinner(("HR", "Lactate"), n_bins=4, relative=True).bin_index(data)
    np.testing.assert_allclose(ends[1], np.array([1, 2, 3, 4]) * 10 / 4)     # stay 2 ends at 10:00
    assert b[data.stay == 1].tolist() == [0, 1, 3]
    assert b[data.stay == 0][-1] == 3


def test_fit_on_rows_only_uses_those_stays():
    data = two_stays()
    binner = EventBinner(("HR",), n_bins=4).fit(data, np.array([1]))
    assert binner.mean_[0] == 110.0
    with pytest.raises(ValueError, match="n_bins"):
        EventBinner(("HR",), n_bins=0)


def test_flat_features_and_gbdt_learn_a_signal():
    data = synthetic_physionet2012(400, seed=3)
    stays = EventBinner(("HR", "MAP", "Lactate", "GCS"), n_bins=6).fit(data).transform(data)
    X = stays.flat()
    assert X.shape == (400, 2 * 6 * 4 + 8)
    assert np.isnan(X[:, :24]).any() and not np.isnan(X[:, 24:]).any()       # NaN only for unobserved values
    train, test = stays.subset(np.arange(300)), stays.subset(np.arange(300, 400))
    scores = GBDTBaseline(seed=0).fit(train).predict_proba(test)
    assert scores.shape == (100,) and binary_metrics(test.labels, scores)["auroc"] > 0.6


def test_binary_metrics_known_answer():
    m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert m["auroc"] == pytest.approx(0.75) and m["auprc"] == pytest.approx((1 + 2 / 3) / 2)
