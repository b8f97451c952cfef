"""The synthetic ICU generator writes the real PhysioNet-2012 format, is reproducible, and has the properties the
notebook describes (death rate, informative missingness, deaths tied to trend and uncleared lactate)."""

import numpy as np

from l6kit.ehr import read_physionet2012, read_texts, simulate_icu_stays, write_physionet
from l6kit.ehr.physionet import DESCRIPTORS, HEADER, parse_time


def test_records_follow_the_physionet_layout():
    sim = simulate_icu_stays(30, seed=0)
    name, text = next(iter(sim.records.items()))
    lines = text.splitlines()
    assert lines[0] == HEADER and name == "300001.txt"
    assert [line.split(",")[1] for line in lines[1:7]] == list(DESCRIPTORS)
    assert all(line.startswith("00:00,") for line in lines[1:7])
    times = [parse_time(line.split(",")[0]) for line in lines[1:]]
    assert times == sorted(times) and max(times) < 48
    assert sim.outcomes.splitlines()[0] == "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"


def test_reproducible_and_round_trips_through_the_folder_reader(tmp_path):
    a, b = simulate_icu_stays(20, seed=4), simulate_icu_stays(20, seed=4)
    assert a.records == b.records and a.outcomes == b.outcomes
    assert simulate_icu_stays(20, seed=5).records != a.records
    write_physionet(tmp_path, a.records, a.outcomes, tarball=True)
    from_folder = read_physionet2012(tmp_path, sets=("a",))
    from_text = read_texts(a.records, {"o": a.outcomes})
    np.testing.assert_array_equal(from_folder.record_ids, from_text.record_ids)
    np.testing.assert_array_equal(from_folder.value, from_text.value)


def test_death_rate_missingness_and_risk_factors():
    sim = simulate_icu_stays(1500, seed=1)
    data = read_texts(sim.records, {"o": sim.outcomes})
    lat = sim.latent
    assert 0.11 < data.labels.mean() < 0.19
    np.testing.assert_array_equal(lat["death"], data.labels)
    labs = np.bincount(data.stay[data.param == data.parameters.index("Creatinine")], minlength=len(data))
    sick = lat["s0"].to_numpy() > np.median(lat["s0"])
    assert labs[sick].mean() > 1.3 * labs[~sick].mean()                   # sicker patients are tested more
    died = lat["death"].to_numpy() == 1
    assert lat["slope"][died].mean() > lat["slope"][~died].mean() + 0.5     # deterioration kills
    uncleared = (lat["episode_depth"] * (1 - lat["lactate_clearance"].fillna(1))).to_numpy()
    assert uncleared[died].mean() > 2 * uncleared[~died].mean()
