"""l6kit.timeseries: the simulated tasks' statistics, the GRU black box, the registry entries and the
MIMIC-III reader (a fixture in the official pickle format, and the clear error when the file is missing)."""

import pickle

import numpy as np
import pytest
import torch

from l6kit import data
from l6kit.timeseries import (
    GRUClassifier,
    load_mimic_mortality,
    make,
    model_auroc,
    narma,
    predict,
    spike,
    state,
    switch_feature,
    train_classifier,
)
from l6kit.timeseries.synthetic import SWITCH_MEANS, lowpass


@pytest.mark.parametrize("delay", [0, 3])
def test_spike_label_turns_on_delay_steps_after_the_first_spike(delay):
    d = spike(400, 40, delay=delay, seed=1)
    assert d.x.shape == (400, 3, 40) and d.x.dtype == np.float32
    assert d.y.shape == (400, 40) and d.truth.shape == (400, 3, 40)
    assert not d.truth[:, 1:].any() and d.truth.sum((1, 2)).max() == 1     # one salient cell, feature 0
    for i in range(len(d)):
        hit = np.flatnonzero(d.truth[i, 0])
        expected = np.zeros(40, dtype=np.int64)
        if len(hit):
            expected[hit[0] + delay:] = 1
            assert d.x[i, 0, hit[0]] > 1.2                               # a spike of +1.5 on a [~0, ~1] signal
        np.testing.assert_array_equal(d.y[i], expected)
    share = d.truth.any((1, 2)).mean()
    assert 0.3 < share < 0.5                                             # P(spikes) = 0.4 x P(Poisson(3) > 0)


def test_spike_is_reproducible_and_validates_the_delay():
    np.testing.assert_array_equal(spike(20, 30, seed=4).x, spike(20, 30, seed=4).x)
    with pytest.raises(ValueError, match="delay"):
        spike(10, 5, delay=5)


def test_state_switches_and_truth():
    d = state(300, 120, seed=2)
    assert d.x.shape == (300, 3, 120) and d.states.shape == (300, 120)
    switches = np.diff(d.states, axis=1) != 0
    assert 0.02 < switches.mean() < 0.15                                  # sticky hidden state
    marked = d.truth.any(1)
    np.testing.assert_array_equal(marked[:, 1:], switches)               # truth at every switch...
    assert marked[:, 0].all()                                            # ...and at the first step
    imp = np.where(d.states == 0, 1, 2)
    rows, cols = np.nonzero(marked)
    assert d.truth[rows, imp[rows, cols], cols].all()
    driver = np.take_along_axis(d.x, imp[:, None, :], axis=1)[:, 0]
    assert d.y[driver > 1].mean() > 0.8 and d.y[driver < -1].mean() < 0.2   # y ~ Bernoulli(sigmoid(2 x))


def test_switch_feature_truth_follows_the_state():
    d = switch_feature(200, 80, seed=3)
    np.testing.assert_array_equal(d.truth.argmax(1), d.states)
    assert d.truth.sum(1).max() == 1 and d.truth.any(1).all()
    stay = (d.states[:, 1:] == d.states[:, :-1]).mean()
    assert 0.9 < stay < 0.99
    for s in range(3):                                                  # state-dependent means
        np.testing.assert_allclose(d.x.transpose(0, 2, 1)[d.states == s].mean(0), SWITCH_MEANS[s], atol=0.05)


def test_narma_and_lowpass():
    rng = np.random.default_rng(0)
    x = narma(50, 60, rng)
    assert x.shape == (50, 60) and np.isfinite(x).all() and x.std() > 0
    t = np.arange(200)
    fast, slow = np.sin(2 * np.pi * 12 / 30 * t), np.sin(2 * np.pi * 1 / 30 * t)
    assert lowpass(fast)[100:].std() < 0.1 * lowpass(slow)[100:].std()


def test_make_and_registry():
    assert make("state", 5, 10).name == "state"
    with pytest.raises(ValueError, match="allowed"):
        make("spikes", 5, 10)
    with pytest.raises(ValueError, match="no delay"):
        make("state", 5, 10, delay=1)
    d = data.load("sim-spike", "ci", n=8, length=20, delay=2)
    assert d.name == "spike-delay-2" and d.x.shape == (8, 3, 20)
    assert data.load("sim-switch-feature", "paper", n=4, length=12).x.shape == (4, 3, 12)
    train, test = d.split(0.25)
    assert len(train) == 6 and len(test) == 2


def test_gru_shapes_and_a_training_step_lowers_the_loss():
    d = spike(200, 20, seed=0)
    model = GRUClassifier(3, hidden=16)
    x = torch.as_tensor(d.x[:4])
    assert model(x).shape == (4, 20) and torch.all((model(x) > 0) & (model(x) < 1))
    trained, history = train_classifier(d.x, d.y, hidden=16, epochs=6, lr=1e-2, batch_size=50)
    assert history.losses[-1] < history.losses[0]
    prob = predict(trained, d.x)
    assert prob.shape == (200, 20) and 0.5 < model_auroc(prob, d.y) <= 1.0


def _write_mimic_fixture(path, n=12, features=31, hours=48):
    rng = np.random.default_rng(0)
    records = [(rng.normal(size=(features, hours)), int(i % 3 == 0), {"icustay_id": i}) for i in range(n)]
    with open(path, "wb") as fh:
        pickle.dump(records, fh)
    return records


def test_mimic_reader_on_a_fixture_in_the_official_format(tmp_path):
    records = _write_mimic_fixture(tmp_path / "patient_vital_preprocessed.pkl")
    d = load_mimic_mortality(tmp_path)                                 # a folder or the file itself
    assert d.x.shape == (12, 31, 48) and d.y.shape == (12, 48) and not d.truth.any()
    np.testing.assert_allclose(d.x[3], records[3][0], rtol=1e-6)
    assert (d.y[:, 0] == d.y[:, -1]).all() and d.y[0, 0] == 1 and d.y[1, 0] == 0
    via_registry = data.load("mimic3-mortality", "paper", path=tmp_path / "patient_vital_preprocessed.pkl")
    assert via_registry.x.shape == (12, 31, 48)


def test_mimic_missing_file_names_what_to_get_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("L6KIT_DATA", str(tmp_path / "cache"))
    with pytest.raises(data.DataMissingError) as err:
        load_mimic_mortality()
    message = str(err.value)
    assert "physionet.org/content/mimiciii" in message and "credentialed" in message
    assert str(tmp_path / "cache" / "mimic3-mortality" / "patient_vital_preprocessed.pkl") in message
    assert "never" in message and "downloads" in message
    with pytest.raises(data.DataMissingError, match="elsewhere.pkl"):
        data.load("mimic3-mortality", "paper", path=tmp_path / "elsewhere.pkl")


def test_mimic_reader_rejects_a_wrong_format(tmp_path):
    path = tmp_path / "patient_vital_preprocessed.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="records"):
        load_mimic_mortality(path)
