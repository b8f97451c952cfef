"""Learned manifolds on disk: what a trained generative model put where, for the manifold dashboard.

A notebook that trains models on data on a known manifold (``two-step``'s circle, ``rectangular-flows``'
circle, ``cef``'s sphere) saves one file with :func:`save_learned`; the dashboard's "Learned manifolds" view
lists every such file in ``results/artifacts/`` and draws the data, each model's samples and, where the
model has one, its learned manifold (a curve or a point cloud on it) coloured by the model's density there.

File layout (:func:`l6kit.store.save_nested`): ``kind = "learned-manifold"``, ``title``, ``description``,
``data`` ``(n, D)``, and per model ``models/<name>/samples`` ``(m, D)``, optionally
``models/<name>/manifold`` ``(g, D)`` with ``models/<name>/density`` ``(g,)`` (density with respect to the
manifold's own d-dimensional volume).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from l6kit.store import load_nested, save_nested

KIND = "learned-manifold"


def _check(data: np.ndarray, models: dict[str, dict[str, Any]]) -> None:
    if data.ndim != 2 or data.shape[1] not in (2, 3):
        raise ValueError(f"data must have shape (n, 2) or (n, 3), got {data.shape}")
    if not models:
        raise ValueError("models is empty")
    for name, parts in models.items():
        if "samples" not in parts:
            raise ValueError(f"model {name!r} has no samples")
        for key in ("samples", "manifold"):
            if key in parts and (parts[key].ndim != 2 or parts[key].shape[1] != data.shape[1]):
                raise ValueError(f"{name}/{key} must have shape (m, {data.shape[1]}), got {parts[key].shape}")
        if ("manifold" in parts) != ("density" in parts):
            raise ValueError(f"model {name!r}: give 'manifold' and 'density' together")
        if "density" in parts and parts["density"].shape != (len(parts["manifold"]),):
            raise ValueError(f"{name}/density must have one value per manifold point")


def save_learned(path: str | os.PathLike, *, title: str, data, models: dict[str, dict[str, Any]],
                 description: str = "") -> Path:
    """Write the data and each model's samples (and learned manifold with its density) to ``path``.

    Args:
        path: target ``.npz``, conventionally ``results/artifacts/<slug>-manifold.npz``.
        title: shown in the dashboard's selector.
        data: training points, shape ``(n, D)`` with ``D`` in {2, 3}.
        models: name -> ``{"samples": (m, D), "manifold": (g, D), "density": (g,)}`` (the last two optional,
            together); arrays or tensors.
        description: one or two sentences shown under the figure.

    Returns:
        The path written.

    Raises:
        ValueError: wrong shapes, no models, or a model without samples.
    """
    def arr(x) -> np.ndarray:
        return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)

    data = arr(data)
    models = {name: {k: arr(v) for k, v in parts.items()} for name, parts in models.items()}
    _check(data, models)
    return save_nested(path, {"kind": KIND, "title": title, "description": description, "data": data,
                              "models": models})


def load_learned(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by :func:`save_learned`.

    Raises:
        ValueError: the file is not a learned-manifold file.
    """
    tree = load_nested(path)
    if tree.get("kind") != KIND:
        raise ValueError(f"{path} is not a learned-manifold file")
    return tree


def find_learned(folder: str | os.PathLike) -> dict[str, Path]:
    """Title -> path of every learned-manifold file in ``folder`` (other ``.npz`` files are skipped)."""
    found: dict[str, Path] = {}
    for path in sorted(Path(folder).glob("*.npz")) if Path(folder).is_dir() else []:
        try:
            with np.load(path, allow_pickle=False) as npz:
                if "kind" in npz.files and str(npz["kind"]) == KIND:
                    found[f"{npz['title']} ({path.name})"] = path
        except (OSError, ValueError):
            continue
    return found
