"""MovieLens 100K and 1M: readers for the GroupLens zips and the registry sources.

``u.data`` (100K) is tab-separated ``user item rating timestamp``; ``ratings.dat`` (1M) is
``UserID::MovieID::Rating::Timestamp``. Both readers return a DataFrame with columns ``user, item, rating,
timestamp`` where users and items are re-indexed to ``0..n-1`` in order of their original ids; the original ids
are kept in ``df.attrs["user_ids"]`` / ``df.attrs["item_ids"]`` (``user_ids[u]`` is the GroupLens id of ``u``).

MovieLens may not be redistributed: l6kit downloads it from GroupLens into the cache and never ships it. Under
``ci`` the registry returns :func:`synthetic_ratings`, a generated stand-in with the same layout.

References:
    Harper, Konstan. *The MovieLens Datasets: History and Context.* ACM TiiS 2015.
    https://grouplens.org/datasets/movielens/
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from l6kit.data.registry import RemoteFile, Source, register

URL = "https://files.grouplens.org/datasets/movielens/"
HOMEPAGE = "https://grouplens.org/datasets/movielens/"
LICENCE = "GroupLens terms: research use with citation; no redistribution; no commercial use without permission"
COLUMNS = ("user", "item", "rating", "timestamp")


def _reindex(df: pd.DataFrame) -> pd.DataFrame:
    """Map ``user``/``item`` to ``0..n-1`` (sorted original ids) and keep the originals in ``attrs``."""
    user_ids, users = np.unique(df["user"].to_numpy(), return_inverse=True)
    item_ids, items = np.unique(df["item"].to_numpy(), return_inverse=True)
    out = pd.DataFrame({"user": users.astype(np.int64), "item": items.astype(np.int64),
                        "rating": df["rating"].to_numpy(np.float32), "timestamp": df["timestamp"].to_numpy(np.int64)})
    out.attrs["user_ids"], out.attrs["item_ids"] = user_ids, item_ids
    return out


def _open(folder: Path, zip_name: str, member: str) -> bytes:
    """Bytes of ``member`` from ``folder/zip_name``, or from an extracted ``folder/<member>``."""
    folder = Path(folder)
    extracted = folder / member
    if extracted.exists():
        return extracted.read_bytes()
    path = folder / zip_name
    if not path.exists():
        raise FileNotFoundError(f"neither {path} nor {extracted} exists; download {URL}{zip_name}")
    with zipfile.ZipFile(path) as zf:
        return zf.read(member)


def parse_u_data(raw: bytes | str) -> pd.DataFrame:
    """Parse ML-100K ``u.data`` text (tab-separated, no header) and re-index."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    df = pd.read_csv(io.StringIO(text), sep="\t", header=None, names=list(COLUMNS))
    if df.shape[1] != 4 or df.isna().any().any():
        raise ValueError("u.data: expected 4 tab-separated integer fields per line")
    return _reindex(df)


def parse_ratings_dat(raw: bytes | str) -> pd.DataFrame:
    """Parse ML-1M ``ratings.dat`` text (``::``-separated, no header) and re-index."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    df = pd.read_csv(io.StringIO(text), sep=":", header=None)      # '::' -> empty columns 1, 3, 5
    if df.shape[1] != 7:
        raise ValueError(f"ratings.dat: expected UserID::MovieID::Rating::Timestamp, got {df.shape[1]} fields")
    df = df[[0, 2, 4, 6]].set_axis(list(COLUMNS), axis=1)
    return _reindex(df)


def read_movielens_100k(folder: str | os.PathLike) -> pd.DataFrame:
    """Ratings of ML-100K from ``folder/ml-100k.zip`` (or an extracted ``folder/ml-100k/u.data``).

    Returns:
        100,000 rows for the real file: ``user`` (0..942), ``item`` (0..1681), ``rating`` (1..5), ``timestamp``.
    """
    return parse_u_data(_open(Path(folder), "ml-100k.zip", "ml-100k/u.data"))


def read_movielens_1m(folder: str | os.PathLike) -> pd.DataFrame:
    """Ratings of ML-1M from ``folder/ml-1m.zip`` (or an extracted ``folder/ml-1m/ratings.dat``).

    Returns:
        1,000,209 rows for the real file: 6,040 users, 3,706 rated movies.
    """
    return parse_ratings_dat(_open(Path(folder), "ml-1m.zip", "ml-1m/ratings.dat"))


def synthetic_ratings(n_users: int = 300, n_items: int = 400, n_ratings: int = 10_000, seed: int = 0,
                      **_: object) -> pd.DataFrame:
    """A MovieLens-shaped stand-in (NOT MovieLens): low-rank preferences, Zipf item popularity, 1-5 stars.

    Returns:
        DataFrame ``user, item, rating, timestamp`` (unique user-item pairs), re-indexed like the readers.
    """
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    users = rng.integers(0, n_users, n_ratings)
    items = rng.choice(n_items, n_ratings, p=pop / pop.sum())
    U, V = rng.normal(size=(n_users, 4)), rng.normal(size=(n_items, 4))
    affinity = (U[users] * V[items]).sum(1) + rng.normal(0, 1.0, n_ratings)
    rating = np.clip(np.rint(3.5 + 0.6 * affinity), 1, 5)
    df = pd.DataFrame({"user": users + 1, "item": items + 1, "rating": rating,
                       "timestamp": 874_724_710 + rng.integers(0, 10**7, n_ratings)})
    return _reindex(df.drop_duplicates(["user", "item"]).reset_index(drop=True))


def to_implicit(df: pd.DataFrame, min_rating: float = 4.0, min_user: int = 5) -> pd.DataFrame:
    """Keep ratings ``>= min_rating`` of users with ``>= min_user`` such ratings; re-index to ``0..n-1``.

    The usual implicit-feedback preprocessing (e.g. HGCF/LightGCN-style ML-100K: ratings >= 4, users >= 5).
    """
    kept = df[df["rating"] >= min_rating]
    counts = kept.groupby("user")["user"].transform("size")
    return _reindex(kept[counts >= min_user].reset_index(drop=True))


ML100K = register(Source(
    name="movielens-100k",
    description="MovieLens 100K: 100,000 ratings (1-5) of 1,682 movies by 943 users (GroupLens, 1998)",
    files=(RemoteFile(URL + "ml-100k.zip", "ml-100k.zip", md5="0e33842e24a9c977be4e0107933c0723"),),
    reader=read_movielens_100k, offline=synthetic_ratings, homepage=HOMEPAGE, licence=LICENCE))

ML1M = register(Source(
    name="movielens-1m",
    description="MovieLens 1M: 1,000,209 ratings (1-5) of 3,706 movies by 6,040 users (GroupLens, 2003)",
    files=(RemoteFile(URL + "ml-1m.zip", "ml-1m.zip", md5="c4d9eecfca2ab87c1945afe126590906"),),
    reader=read_movielens_1m, offline=synthetic_ratings, homepage=HOMEPAGE, licence=LICENCE))
