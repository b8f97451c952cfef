"""Embedding tables: points with metadata and the distance their model uses, saved as one ``.npz`` file.

A paper notebook saves its learned embeddings with :func:`save_table` (HGCF's users and items in the Poincaré
ball, DropoutNet's warm and cold items, EGT's descriptors, ...); the embeddings dashboard
(:mod:`l6kit.dashboards.embeddings`) reads every table it finds with :func:`load_table`. The file holds
``coords`` (float32), one array per metadata column under ``meta/<column>`` (numbers, booleans or unicode
strings — never pickles) and a few scalar attributes.

Distances (:func:`distances`) follow the table's ``metric``:

* ``euclidean``: ``||x - y||``;
* ``cosine``: ``1 - <x, y> / (||x|| ||y||)``;
* ``poincare``: the geodesic distance of the Poincaré ball,
  ``arcosh(1 + 2 ||x - y||² / ((1 - ||x||²)(1 - ||y||²)))`` (points must lie inside the unit ball).

References:
    M. Nickel, D. Kiela. Poincaré Embeddings for Learning Hierarchical Representations. NeurIPS 2017
    (the Poincaré distance).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

METRICS = ("euclidean", "cosine", "poincare")


@dataclasses.dataclass(frozen=True)
class EmbeddingTable:
    """Embeddings with per-point metadata.

    Attributes:
        coords: the embedding, shape ``(n, d)``, float32.
        meta: one row per point (``n`` rows).
        metric: one of :data:`METRICS`; the distance the model itself uses.
        name: a short name shown in selectors (e.g. ``"hgcf users+items"``).
        description: one sentence on what the points are and how they were made.
    """

    coords: np.ndarray
    meta: pd.DataFrame
    metric: str
    name: str
    description: str = ""

    def __post_init__(self):
        check_table(self.coords, self.meta, self.metric)

    def __len__(self) -> int:
        return len(self.coords)


def check_table(coords: np.ndarray, meta: pd.DataFrame, metric: str) -> None:
    """Raise ``ValueError`` with a readable message unless ``coords``/``meta``/``metric`` form a valid table.

    Shapes:
        coords: ``(n, d)`` with ``n >= 1``, ``d >= 1``, finite; meta: ``n`` rows.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if coords.ndim != 2 or coords.shape[0] == 0 or coords.shape[1] == 0:
        raise ValueError(f"coords must have shape (n, d) with n, d >= 1, got {coords.shape}")
    if not np.isfinite(coords).all():
        raise ValueError("coords contain NaN or infinite values")
    if len(meta) != len(coords):
        raise ValueError(f"meta has {len(meta)} rows but coords has {len(coords)} points")
    if metric == "poincare" and (np.linalg.norm(coords, axis=1) >= 1).any():
        raise ValueError("poincare coordinates must lie strictly inside the unit ball")


def _column_array(column: pd.Series) -> np.ndarray:
    values = column.to_numpy()
    if values.dtype.kind in "biuf":
        return values
    return values.astype(str)   # objects, categories, strings -> unicode, never pickled


def save_table(path: str | os.PathLike, coords, meta: pd.DataFrame, *, metric: str, name: str,
               description: str = "") -> Path:
    """Write an embedding table to ``path`` (a compressed ``.npz``; the folder is created).

    Args:
        path: target file, conventionally ``results/artifacts/<slug>-<what>.npz``.
        coords: array-like, shape ``(n, d)`` (a torch tensor is detached and moved to the CPU).
        meta: metadata, ``n`` rows; columns of numbers, booleans or strings; names must not contain ``/``.
        metric: ``"euclidean"``, ``"cosine"`` or ``"poincare"``.
        name: short display name.
        description: one sentence shown under the plot.

    Returns:
        The path written.

    Raises:
        ValueError: shapes disagree, coordinates are not finite, an unknown metric, Poincaré points outside
            the ball, or a bad column name.
    """
    if hasattr(coords, "detach"):
        coords = coords.detach().cpu().numpy()
    coords = np.asarray(coords, dtype=np.float32)
    meta = meta.reset_index(drop=True)
    check_table(coords, meta, metric)
    arrays = {"coords": coords, "metric": np.asarray(metric), "name": np.asarray(name),
              "description": np.asarray(description)}
    for column in meta.columns:
        if "/" in str(column) or not str(column):
            raise ValueError(f"bad metadata column name {column!r}")
        arrays[f"meta/{column}"] = _column_array(meta[column])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_table(path: str | os.PathLike) -> EmbeddingTable:
    """Read a table written by :func:`save_table`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an embedding table.
    """
    with np.load(path, allow_pickle=False) as npz:
        missing = {"coords", "metric", "name"} - set(npz.files)
        if missing:
            raise ValueError(f"{path} is not an embedding table (missing {sorted(missing)})")
        meta = pd.DataFrame({key[5:]: npz[key] for key in npz.files if key.startswith("meta/")})
        return EmbeddingTable(coords=npz["coords"], meta=meta, metric=str(npz["metric"]),
                              name=str(npz["name"]),
                              description=str(npz["description"]) if "description" in npz.files else "")


def distances(coords: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """Distances from one point to every point under ``metric``.

    Shapes:
        coords: ``(n, d)``; query: ``(d,)``; returns ``(n,)`` float64.
    """
    X = np.asarray(coords, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    if metric == "euclidean":
        return np.linalg.norm(X - q, axis=1)
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1) * np.linalg.norm(q)
        return 1.0 - (X @ q) / np.maximum(norms, 1e-12)
    if metric == "poincare":
        sq = ((X - q) ** 2).sum(1)
        denom = (1 - (X ** 2).sum(1)) * (1 - (q ** 2).sum())
        return np.arccosh(1 + 2 * sq / np.maximum(denom, 1e-15))
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def nearest(table: EmbeddingTable, index: int, k: int = 10) -> pd.DataFrame:
    """The ``k`` nearest neighbours of point ``index`` under the table's own metric (the point excluded).

    Returns:
        ``k`` rows of the table's metadata, nearest first, with a ``distance`` and a ``point`` (row index)
        column.

    Raises:
        IndexError: ``index`` outside ``[0, n)``.
        ValueError: ``k < 1``.
    """
    if not 0 <= index < len(table):
        raise IndexError(f"point {index} is outside 0..{len(table) - 1}")
    if k < 1:
        raise ValueError("k must be at least 1")
    d = distances(table.coords, table.coords[index], table.metric)
    d[index] = np.inf
    k = min(k, len(table) - 1)
    order = np.argsort(d, kind="stable")[:k]
    out = table.meta.iloc[order].copy()
    out.insert(0, "distance", d[order])
    out.insert(0, "point", order)
    return out.reset_index(drop=True)


def project_2d(table: EmbeddingTable) -> tuple[np.ndarray, str]:
    """Two coordinates to draw: native for 2-D tables (the Poincaré disk stays a disk), PCA otherwise.

    Cosine tables are L2-normalised before PCA. Hyperbolic tables of dimension > 2 are projected with PCA of
    their ball coordinates, which keeps the origin (the hierarchy's root) at the centre but is not an isometry.

    Returns:
        ``(xy, how)``: shape ``(n, 2)`` float64, and a short label for the axis titles.
    """
    X = np.asarray(table.coords, dtype=np.float64)
    if X.shape[1] == 1:
        return np.column_stack([X[:, 0], np.zeros(len(X))]), "native (1-D)"
    if X.shape[1] == 2:
        return X, "native 2-D" + (" (Poincaré disk)" if table.metric == "poincare" else "")
    if table.metric == "cosine":
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    if table.metric != "poincare":
        X = X - X.mean(0)
    _, _, vt = np.linalg.svd(X[: min(len(X), 20_000)], full_matrices=False)
    return X @ vt[:2].T, "PCA"


def subsample(n: int, max_points: int, *, keep: int | None = None, seed: int = 0) -> np.ndarray:
    """Row indices to draw when a table is too large for the browser: all rows if ``n <= max_points``,
    otherwise a uniform random sample of ``max_points`` rows (sorted), always including ``keep``.

    Shapes:
        returns ``(min(n, max_points),)`` int64.
    """
    if n <= max_points:
        return np.arange(n)
    rows = np.random.default_rng(seed).choice(n, size=max_points, replace=False)
    if keep is not None and keep not in rows:
        rows[0] = keep
    return np.sort(rows)
