"""MovieLens readers on tiny fixtures written here in the real formats (no MovieLens data in the repo)."""

from __future__ import annotations

import hashlib
import socket
import zipfile

import numpy as np
import pandas as pd
import pytest

from l6kit.data import registry
from l6kit.recsys import movielens
from l6kit.recsys.movielens import (
    parse_ratings_dat,
    read_movielens_1m,
    read_movielens_100k,
    synthetic_ratings,
    to_implicit,
)

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t302\t5\t881251000\n"
RATINGS_DAT = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n6040::3::1::956703977\n"


def write_zip(path, member, text):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, text)
    return path


def test_read_100k_from_zip(tmp_path):
    write_zip(tmp_path / "ml-100k.zip", "ml-100k/u.data", U_DATA)
    df = read_movielens_100k(tmp_path)
    assert list(df.columns) == ["user", "item", "rating", "timestamp"] and len(df) == 4
    assert df.attrs["user_ids"].tolist() == [22, 186, 196] and df.attrs["item_ids"].tolist() == [242, 302, 377]
    assert df["user"].tolist() == [2, 1, 0, 2] and df["item"].tolist() == [0, 1, 2, 1]
    assert df["rating"].tolist() == [3, 3, 1, 5] and df["timestamp"].iloc[0] == 881250949


def test_read_1m_extracted_folder(tmp_path):
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "ratings.dat").write_text(RATINGS_DAT)
    df = read_movielens_1m(tmp_path)
    assert df["user"].tolist() == [0, 0, 1, 2] and df["item"].tolist() == [2, 1, 2, 0]
    assert df.attrs["item_ids"].tolist() == [3, 661, 1193] and df["rating"].tolist() == [5, 3, 4, 1]
    with pytest.raises(ValueError):
        parse_ratings_dat("1,2,3,4\n")


def test_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="ml-100k.zip"):
        read_movielens_100k(tmp_path)


def test_registry_end_to_end_offline(tmp_path, monkeypatch):
    """A hand-placed zip with the registered checksum swapped for the fixture's is verified and read, offline."""
    def no_network(*a, **k):
        raise OSError("network disabled in tests")
    monkeypatch.setattr(socket, "socket", no_network)
    folder = tmp_path / "movielens-100k"
    folder.mkdir()
    path = write_zip(folder / "ml-100k.zip", "ml-100k/u.data", U_DATA)
    src = registry.get("movielens-100k")
    assert src.files[0].md5 == "0e33842e24a9c977be4e0107933c0723"
    fixture = registry.RemoteFile(src.files[0].url, "ml-100k.zip", md5=hashlib.md5(path.read_bytes()).hexdigest())
    monkeypatch.setitem(registry._REGISTRY, "movielens-100k", registry.Source(
        **{**src.__dict__, "files": (fixture,)}))
    df = registry.load("movielens-100k", "paper", root=tmp_path)
    assert len(df) == 4
    assert len(registry.load("movielens-1m", "ci")) > 0     # ci: the generated stand-in, no network


def test_synthetic_and_implicit():
    df = synthetic_ratings(seed=1)
    assert set(df["rating"].unique()) <= {1, 2, 3, 4, 5} and not df.duplicated(["user", "item"]).any()
    imp = to_implicit(df, min_rating=4, min_user=5)
    assert (imp["rating"] >= 4).all() and imp.groupby("user").size().min() >= 5
    assert np.array_equal(np.unique(imp["user"]), np.arange(imp["user"].max() + 1))
    assert movielens.ML100K.name == "movielens-100k"


def test_amazon_and_yelp_readers(tmp_path):
    import pickle

    from l6kit.recsys import amazon

    (tmp_path / "amazon-cd").mkdir()
    rows = ["A1,B01,5.0,1000", "A2,B01,4.0,1001", "A1,B02,3.0,1002", "A3,B03,5.0,1003"]
    (tmp_path / "amazon-cd" / "ratings_CDs_and_Vinyl.csv").write_text("\n".join(rows) + "\n")
    df = registry.load("amazon-cd", "paper", root=tmp_path)
    assert df["user"].tolist() == [0, 1, 0, 2] and df["item"].tolist() == [0, 0, 1, 2]
    assert df.attrs["item_ids"].tolist() == ["B01", "B02", "B03"] and df["rating"].tolist() == [5, 4, 3, 5]
    assert len(amazon.k_core(df, 2)) == 0          # A2, A3, B02, B03 fall out, then A1 and B01 do
    with pytest.raises(registry.DataMissingError, match="ratings_Books.csv"):
        registry.load("amazon-book", "paper", root=tmp_path)
    (tmp_path / "yelp2020").mkdir()
    with open(tmp_path / "yelp2020" / "user_item_list.pkl", "wb") as fh:
        pickle.dump([[0, 2], [1], [2, 0, 1]], fh)
    yelp = registry.load("yelp2020", "paper", root=tmp_path)
    assert yelp["user"].tolist() == [0, 0, 1, 2, 2, 2] and yelp["item"].tolist() == [0, 2, 1, 2, 0, 1]
    with pytest.raises(registry.OfflineError):
        registry.load("yelp2020", "ci")


def test_k_core_known_case():
    from l6kit.recsys.amazon import k_core

    df = pd.DataFrame({"user": [0, 0, 1, 1, 2], "item": [0, 1, 0, 1, 2], "rating": 5.0, "timestamp": 0})
    core = k_core(df, 2)                           # user 2 / item 2 have one interaction each: dropped
    assert len(core) == 4 and set(core["user"]) == {0, 1} and set(core["item"]) == {0, 1}
