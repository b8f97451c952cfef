"""Results on disk: nested dictionaries of arrays and scalars as one ``.npz`` file (WinIT attributions,
learned manifolds, ...).

Keys are joined with ``/`` (``attributions/winit``, ``scores/winit/auprc``), so any depth of nesting survives
the round trip; no pickles are written or read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        if "/" in str(key):
            raise ValueError(f"key {key!r} contains '/', which separates nesting levels")
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flatten(value, name + "/")
        else:
            flat[name] = np.asarray(value)
    return flat


def save_nested(path: str | os.PathLike, tree: dict[str, Any]) -> Path:
    """Write ``tree`` (nested dicts of arrays, numbers and strings) to ``path`` as a compressed ``.npz``.

    Returns:
        The path written (its folder is created).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **_flatten(tree))
    return path


def load_nested(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by :func:`save_nested`; 0-d arrays come back as Python scalars."""
    out: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            value = npz[key]
            node = out
            *parents, leaf = key.split("/")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value.item() if value.ndim == 0 else value
    return out
