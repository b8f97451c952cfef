import json
import math

import numpy as np
import pytest

from l6kit import claims
from l6kit.papers import uomh


@pytest.fixture
def book():
    return claims.ClaimBook("demo", uomh.config("ci"))


def test_comparators_record_truth_without_raising(book):
    assert book.greater("a>b", 2.0, 1.0, metric="m").holds
    assert not book.greater("a>2b", 3.0, 2.0, metric="m", factor=2).holds
    assert book.within("close", np.float64(9.5), 10, metric="m", rel=0.1).holds
    assert not book.within("far", 8.9, 10, metric="m", abs_tol=1.0).holds
    assert book.ordered("desc", [3, 2, 1], ["a", "b", "c"], metric="m").holds
    assert not book.ordered("not desc", [3, 3, 1], ["a", "b", "c"], metric="m").holds
    with pytest.raises(ValueError):
        book.within("both", 1, 1, metric="m", rel=0.1, abs_tol=0.1)


def test_recording_a_name_twice_keeps_the_last(book):
    book.greater("x", 1, 2, metric="m")
    book.greater("x", 3, 2, metric="m")
    assert [c.holds for c in book.claims] == [True]


def test_save_writes_the_contract_atomically(book, tmp_path):
    book.greater("a>b", np.float32(2.0), 1.0, metric="m", paper=(0.9, 0.4), required_at=())
    book.within("nan", float("nan"), 1.0, metric="m", abs_tol=1)
    path = book.save(tmp_path / "r" / "demo.json")
    record = json.loads(path.read_text())
    assert set(record) >= {"slug", "profile", "seed", "runtime_s", "versions", "claims", "config"}
    assert record["profile"] == "ci" and record["versions"]["torch"]
    first = record["claims"][0]
    assert first["paper"] == [0.9, 0.4] and first["measured"] == [2.0, 1.0] and first["required_at"] == []
    assert record["claims"][1]["holds"] is False and math.isnan(float(record["claims"][1]["measured"]))
    assert not list(path.parent.glob(".*tmp"))


def test_table_has_the_template_columns(book):
    book.greater("a>b", 2, 1, metric="m", paper=1.5)
    table = book.table()
    assert list(table.columns[:5]) == ["metric", "paper", "this run", "comparator", "profile"]
    assert table.loc["a>b", "holds"] == "yes"
