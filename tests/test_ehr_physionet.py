"""The PhysioNet-2012 reader on fixtures written here in the real format: records, outcomes, tarball and folder
layouts, SHA256SUMS verification, and malformed lines (raised with file and line, or reported)."""

import hashlib
import tarfile

import numpy as np
import pytest

from l6kit import data
from l6kit.data.registry import ChecksumError, DataMissingError, OfflineError
from l6kit.ehr import physionet
from l6kit.ehr.physionet import PhysioNetFormatError, read_physionet2012, read_texts, write_physionet

RECORD_A = """Time,Parameter,Value
00:00,RecordID,132539
00:00,Age,54
00:00,Gender,0
00:00,Height,-1
00:00,ICUType,4
00:00,Weight,-1
00:00,GCS,15
00:07,HR,73
00:37,HR,77
26:05,Weight,80.5
47:59,Lactate,2.1
"""
RECORD_B = """Time,Parameter,Value
00:00,RecordID,132540
00:00,Age,76
00:00,Gender,1
00:00,Height,175.3
00:00,ICUType,2
00:00,Weight,76
01:10,MAP,80
01:10,HR,88
"""
OUTCOMES = """RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death
132539,6,1,5,-1,0
132540,16,8,8,-1,1
"""


def records(**extra):
    return {"132539.txt": RECORD_A, "132540.txt": RECORD_B, **extra}


def test_parses_records_descriptors_events_and_outcomes():
    d = read_texts(records(), {"Outcomes-a.txt": OUTCOMES})
    assert d.record_ids.tolist() == [132539, 132540]
    assert d.labels.tolist() == [0, 1]
    np.testing.assert_array_equal(d.descriptors[0, [0, 1, 3]], [54, 0, 4])       # Age, Gender, ICUType
    assert np.isnan(d.descriptors[0, 2]) and np.isnan(d.descriptors[0, 4])     # -1 -> missing
    a = d.events(0)
    assert a["parameter"].tolist() == ["GCS", "HR", "HR", "Weight", "Lactate"]  # later Weight is a measurement
    np.testing.assert_allclose(a["time_h"], [0, 7 / 60, 37 / 60, 26 + 5 / 60, 47 + 59 / 60])
    assert d.outcomes.loc[1, "SAPS-I"] == 16 and len(d.problems) == 0


@pytest.mark.parametrize("bad, line, reason", [
    ("00:07,HR", 9, "expected 3 comma-separated fields"),
    ("7h,HR,73", 9, "is not HH:MM"),
    ("00:75,HR,73", 9, "is not HH:MM"),
    ("00:07,HR,abc", 9, "is not a number"),
    ("00:07,,73", 9, "empty parameter name"),
    ("00:07,HR,nan", 9, "not finite"),
])
def test_malformed_line_raises_with_file_and_line(bad, line, reason):
    text = RECORD_A.replace("00:07,HR,73", bad)
    with pytest.raises(PhysioNetFormatError, match=reason) as info:
        read_texts({"132539.txt": text}, {"Outcomes-a.txt": OUTCOMES})
    assert info.value.file == "132539.txt" and info.value.line == line
    assert f"132539.txt, line {line}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_malformed_lines_reported_not_dropped_silently():
    text = RECORD_A.replace("00:07,HR,73", "00:07,HR,x").replace("00:37,HR,77", "00:37;HR;77")
    d = read_texts(records(**{"132539.txt": text}), {"Outcomes-a.txt": OUTCOMES + "132541,1,2\n"},
                   errors="report")
    where = [(p.file, p.line) for p in d.problems]
    assert where == [("Outcomes-a.txt", 4), ("132539.txt", 9), ("132539.txt", 10)]
    assert d.events(0)["parameter"].tolist() == ["GCS", "Weight", "Lactate"]    # the good lines stay
    assert len(d) == 2


def test_unusable_records_and_missing_outcomes():
    no_header = RECORD_B.replace("Time,Parameter,Value\n", "")
    no_id = RECORD_B.replace("00:00,RecordID,132540\n", "")
    with pytest.raises(PhysioNetFormatError, match="header"):
        read_texts({"x.txt": no_header}, {"o": OUTCOMES})
    d = read_texts({"x.txt": no_header, "y.txt": no_id, "132539.txt": RECORD_A}, {"o": OUTCOMES},
                   errors="report")
    assert d.record_ids.tolist() == [132539]
    assert [p.reason[:10] for p in d.problems] == ["expected t", "no RecordI"]
    with pytest.raises(PhysioNetFormatError, match="no row in the outcomes"):
        read_texts({"a.txt": RECORD_A.replace("132539", "999")}, {"o": OUTCOMES})
    with pytest.raises(ValueError, match="errors must be"):
        read_texts({}, {}, errors="ignore")


@pytest.mark.parametrize("tarball", [False, True])
def test_reads_download_layout_and_verifies_sha256sums(tmp_path, tarball):
    write_physionet(tmp_path, records(), OUTCOMES, set_name="a", tarball=tarball)
    if tarball:
        (tmp_path / "set-a" / "132539.txt").unlink()           # the tarball must be what is read
    d = read_physionet2012(tmp_path, sets=("a",))
    assert sorted(d.record_ids.tolist()) == [132539, 132540]
    target = tmp_path / ("set-a.tar.gz" if tarball else "set-a/132540.txt")
    target.write_bytes(target.read_bytes() + b"\n")           # corrupt one file
    with pytest.raises(ChecksumError, match="does not match"):
        read_physionet2012(tmp_path, sets=("a",))
    assert len(read_physionet2012(tmp_path, sets=("a",), verify=False)) == 2


def test_tarball_members_are_parsed_and_sums_follow_physionet_layout(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "132539.txt").write_text(RECORD_A)
    with tarfile.open(tmp_path / "set-b.tar.gz", "w:gz") as tar:
        tar.add(src / "132539.txt", arcname="set-b/132539.txt")
    (tmp_path / "Outcomes-b.txt").write_text(OUTCOMES)
    sums = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("set-b.tar.gz", "Outcomes-b.txt")}
    (tmp_path / "SHA256SUMS.txt").write_text("".join(f"{h} {n}\n" for n, h in sums.items()))
    d = read_physionet2012(tmp_path, sets=("b",), max_records=5)
    assert d.record_ids.tolist() == [132539]


def test_missing_files_name_what_to_download(tmp_path):
    with pytest.raises(DataMissingError, match="set-a.tar.gz"):
        read_physionet2012(tmp_path, sets=("a",))
    write_physionet(tmp_path, records(), OUTCOMES, sha256sums=False)
    with pytest.raises(DataMissingError, match="SHA256SUMS.txt"):
        read_physionet2012(tmp_path, sets=("a",))
    with pytest.raises(DataMissingError, match="physionet.org/files/challenge-2012"):
        physionet.load_physionet2012(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown PhysioNet-2012 set"):
        read_physionet2012(tmp_path, sets=("d",))


def test_registry_sources():
    real = data.get("physionet2012")
    assert [f.filename for f in real.files] == list(physionet.FILES) and real.reader is read_physionet2012
    assert all(f.sha256_list == physionet.URL + "SHA256SUMS.txt" for f in real.files)
    with pytest.raises(OfflineError):
        data.load("physionet2012", "ci")
    synthetic = data.load("physionet2012-synthetic", "ci", n=20, seed=1)
    assert len(synthetic) == 20 and set(synthetic.labels) <= {0, 1}


@pytest.fixture
def served(tmp_path):
    """The fixture download (sets a and b, tarballs, SHA256SUMS.txt) served on 127.0.0.1."""
    import functools
    import http.server
    import threading

    site = tmp_path / "site"
    write_physionet(site, records(), OUTCOMES, set_name="a", tarball=True)
    sums_a = (site / "SHA256SUMS.txt").read_text()
    write_physionet(site, {"132541.txt": RECORD_A.replace("132539", "132541")},
                    OUTCOMES.splitlines()[0] + "\n132541,6,1,5,-1,0\n", set_name="b", tarball=True)
    (site / "SHA256SUMS.txt").write_text(sums_a + (site / "SHA256SUMS.txt").read_text())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield site, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_verifies_against_the_published_checksum_list(served, tmp_path, monkeypatch):
    import dataclasses

    from l6kit.data import registry

    site, url = served
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    names = ("set-a.tar.gz", "Outcomes-a.txt", "set-b.tar.gz", "Outcomes-b.txt")
    local = dataclasses.replace(physionet.SOURCE, files=tuple(
        registry.RemoteFile(url + n, n, sha256_list=url + "SHA256SUMS.txt") for n in names))
    monkeypatch.setitem(registry._REGISTRY, "physionet2012", local)
    cache = tmp_path / "cache"
    stays = data.load("physionet2012", "paper", root=cache, sets=("a", "b"))
    assert sorted(stays.record_ids.tolist()) == [132539, 132540, 132541]
    assert (cache / "physionet2012" / "SHA256SUMS.txt").exists()
    # a tampered file on the server is refused and not kept
    shutil_copy = (site / "Outcomes-b.txt").read_text()
    (site / "Outcomes-b.txt").write_text(shutil_copy + "999999,1,1,1,1,1\n")
    for leftover in (cache / "physionet2012").glob("Outcomes-b.txt*"):
        leftover.unlink()
    with pytest.raises(ChecksumError, match="Outcomes-b.txt"):
        data.load("physionet2012", "paper", root=cache, sets=("a", "b"))
    assert not (cache / "physionet2012" / "Outcomes-b.txt").exists()
