"""Amazon 2014 "ratings only" files and HGCF's Yelp2020 list: readers and (manual) registry sources.

The HGCF paper evaluates on Amazon-CD, Amazon-Book (McAuley et al.'s 2014 Amazon product data) and Yelp2020.
None of these can be fetched with a published checksum, so the sources are *manual*: a person downloads the
file into ``$L6KIT_DATA/<source>/`` (or passes ``root``) and the reader checks the layout.

* ``ratings_CDs_and_Vinyl.csv`` / ``ratings_Books.csv``: no header, ``user,item,rating,timestamp``.
* ``user_item_list.pkl`` (official HGCF repository, ``data/yelp20/``): a pickled list whose entry ``u`` is the
  list of item ids of user ``u`` (already filtered by the authors). Unpickling runs code: only read a file you
  trust.

References:
    McAuley, Targett, Shi, van den Hengel. *Image-based Recommendations on Styles and Substitutes.* SIGIR 2015.
    He, McAuley. *Ups and Downs.* WWW 2016. https://jmcauley.ucsd.edu/data/amazon/
    Sun et al. *HGCF.* WWW 2021. https://github.com/layer6ai-labs/HGCF
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from l6kit.data.registry import DataMissingError, Source, register

AMAZON_HOME = "https://jmcauley.ucsd.edu/data/amazon/"
AMAZON_FILES = {"amazon-cd": "ratings_CDs_and_Vinyl.csv", "amazon-book": "ratings_Books.csv"}
YELP_FILE = "user_item_list.pkl"


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataMissingError(f"{path} does not exist. {what}")
    return path


def read_amazon_ratings(path: str | os.PathLike) -> pd.DataFrame:
    """Read an Amazon 2014 ratings-only CSV (``user,item,rating,timestamp``, no header); re-index to 0..n-1.

    Returns:
        DataFrame ``user, item, rating, timestamp``; original string ids in ``attrs["user_ids"/"item_ids"]``.
    """
    df = pd.read_csv(path, header=None, names=["user", "item", "rating", "timestamp"],
                     dtype={"user": str, "item": str, "rating": np.float32, "timestamp": np.int64})
    if df.isna().any().any():
        raise ValueError(f"{path}: expected 4 comma-separated fields user,item,rating,timestamp on every line")
    user_ids, users = np.unique(df["user"].to_numpy(), return_inverse=True)
    item_ids, items = np.unique(df["item"].to_numpy(), return_inverse=True)
    out = pd.DataFrame({"user": users.astype(np.int64), "item": items.astype(np.int64),
                        "rating": df["rating"].to_numpy(), "timestamp": df["timestamp"].to_numpy()})
    out.attrs["user_ids"], out.attrs["item_ids"] = user_ids, item_ids
    return out


def k_core(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than ``k`` interactions; re-index to 0..n-1."""
    while True:
        users, items = df["user"].value_counts(), df["item"].value_counts()
        keep = df["user"].map(users).ge(k) & df["item"].map(items).ge(k)
        if keep.all():
            break
        df = df[keep]
    _, u = np.unique(df["user"], return_inverse=True)
    _, i = np.unique(df["item"], return_inverse=True)
    return df.assign(user=u.astype(np.int64), item=i.astype(np.int64)).reset_index(drop=True)


def read_yelp_list(path: str | os.PathLike) -> pd.DataFrame:
    """Read HGCF's ``user_item_list.pkl`` (entry u = item ids of user u) as ``user, item, rating, timestamp``
    with rating 1 and timestamp 0 (the file has neither)."""
    with open(path, "rb") as fh:
        lists = pickle.load(fh)  # noqa: S301  (a user-provided file; see the module docstring)
    users = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
    items = np.concatenate([np.asarray(x, np.int64) for x in lists]) if len(lists) else np.zeros(0, np.int64)
    return pd.DataFrame({"user": users.astype(np.int64), "item": items, "rating": np.ones(users.size, np.float32),
                         "timestamp": np.zeros(users.size, np.int64)})


def _amazon_reader(name: str):
    def reader(folder: Path, **_: object) -> pd.DataFrame:
        return read_amazon_ratings(_need(Path(folder) / AMAZON_FILES[name], _manual_amazon(name)))
    reader.__doc__ = f"Read {AMAZON_FILES[name]} from the source folder (see :func:`read_amazon_ratings`)."
    return reader


def _manual_amazon(name: str) -> str:
    return (f"Download {AMAZON_FILES[name]} (the 2014 'ratings only' file) from {AMAZON_HOME} (McAuley lab; "
            f"research use) and place it in $L6KIT_DATA/{name}/ or pass root=.")


def _yelp_reader(folder: Path, **_: object) -> pd.DataFrame:
    return read_yelp_list(_need(Path(folder) / YELP_FILE, YELP_MANUAL))


YELP_MANUAL = ("Yelp2020 as used by HGCF survives only as data/yelp20/user_item_list.pkl in "
               "https://github.com/layer6ai-labs/HGCF; copy it to $L6KIT_DATA/yelp2020/ (Yelp Dataset Terms apply).")

for _name, _what in (("amazon-cd", "CDs & Vinyl"), ("amazon-book", "Books")):
    register(Source(name=_name, description=f"Amazon 2014 ratings-only file, {_what} (HGCF's Amazon-"
                    f"{'CD' if _name == 'amazon-cd' else 'Book'}); downloaded by hand",
                    reader=_amazon_reader(_name), homepage=AMAZON_HOME,
                    licence="research use (McAuley lab; informal terms)", manual=_manual_amazon(_name)))
register(Source(name="yelp2020", description="HGCF's preprocessed Yelp2020 user-item lists; copied by hand",
                reader=_yelp_reader, homepage="https://www.yelp.com/dataset",
                licence="Yelp Dataset Terms (non-commercial, academic)", manual=YELP_MANUAL))
