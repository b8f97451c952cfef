"""Profiles: one frozen configuration per paper and compute budget.

Every paper module defines a frozen dataclass holding the *paper's* settings and a mapping from profile name
to the fields that profile changes. :func:`resolve` builds the configuration a notebook runs with:

    paper defaults  --replace(profile's fields)-->  --replace(user overrides)-->  frozen config

Because each step is a :func:`dataclasses.replace`, a misspelled key or a wrongly typed value fails at once
with one :class:`ValueError` that lists what is allowed.

Profiles:
    ``ci``      offline data, tiny models, one CPU thread; <= 90 s on 2 cores.
    ``laptop``  <= ~10 min on a CPU; the claim with more margin.
    ``paper``   the paper's data and sizes; uses a GPU when one is present.
"""

from __future__ import annotations

import dataclasses
import os
import random
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

PROFILES: tuple[str, ...] = ("ci", "laptop", "paper")

C = TypeVar("C")


def resolve(defaults: C, profiles: Mapping[str, Mapping[str, Any]], profile: str, **overrides: Any) -> C:
    """Build a frozen configuration for ``profile`` with ``overrides`` applied.

    Args:
        defaults: an instance of the paper's frozen config dataclass (the paper's own settings). It must have
            a ``profile`` field.
        profiles: profile name -> fields that profile changes (``{"ci": {"n": 500}, "laptop": {...}, "paper": {}}``).
        profile: one of :data:`PROFILES`.
        **overrides: field name -> value; values are type-checked against the field's annotation.

    Returns:
        A new frozen config with ``profile`` set.

    Raises:
        ValueError: unknown profile, unknown field name, or a value of the wrong type.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    names = field_names(defaults)
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(names)}")
    hints = typing.get_type_hints(type(defaults))
    checked = {name: check_type(name, value, hints[name]) for name, value in overrides.items()}
    cfg = dataclasses.replace(defaults, profile=profile, **dict(profiles.get(profile, {})))
    return dataclasses.replace(cfg, **checked)


def field_names(cfg: Any) -> list[str]:
    """Names of the settable fields of a config dataclass (instance or class), in declaration order."""
    return [f.name for f in dataclasses.fields(cfg) if f.init and f.name != "profile"]


def check_type(name: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` converted to ``annotation`` when that is lossless, else raise ``ValueError``.

    Accepts ``int`` for ``float`` fields, and lists for ``tuple[...]`` fields (papermill and JSON have no
    tuples). ``bool`` is never accepted as an ``int``.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return check_type(name, value, option)
            except ValueError:
                continue
        raise ValueError(f"{name} expects {_type_name(annotation)}, got {value!r}")
    if annotation is type(None):
        if value is None:
            return None
        raise ValueError(f"{name} expects None, got {value!r}")
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, list | tuple):
            raise ValueError(f"{name} expects {_type_name(annotation)}, got {value!r}")
        item = args[0] if args else Any
        return tuple(check_type(name, v, item) for v in value)
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, bool):
        raise ValueError(f"{name} expects int, got {value!r}")
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise ValueError(f"{name} expects {_type_name(annotation)}, got {value!r}")


def parse_value(name: str, text: str, annotation: Any) -> Any:
    """Parse a command-line string (``-p name=value``) into ``annotation``'s type.

    Examples: ``"10"`` -> 10 for ``int``; ``"true"`` -> True for ``bool``; ``"2,5,10"`` -> (2, 5, 10) for
    ``tuple[int, ...]``; ``"none"`` -> None for optional fields.

    Raises:
        ValueError: the text does not parse as the field's type.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if text.lower() == "none" and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return parse_value(name, text, option)
            except ValueError:
                continue
        raise ValueError(f"{name} expects {_type_name(annotation)}, got {text!r}")
    if origin is tuple:
        item = (typing.get_args(annotation) or (str,))[0]
        return tuple(parse_value(name, part.strip(), item) for part in text.split(",") if part.strip())
    try:
        if annotation is bool:
            lowered = text.lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(text)
        if annotation in (int, float, str):
            return annotation(text)
    except ValueError:
        raise ValueError(f"{name} expects {_type_name(annotation)}, got {text!r}") from None
    raise ValueError(f"{name}: cannot parse {text!r} as {_type_name(annotation)}")


def annotations(cfg: Any) -> dict[str, Any]:
    """Field name -> resolved type annotation of a config dataclass (instance or class)."""
    cls = cfg if isinstance(cfg, type) else type(cfg)
    return typing.get_type_hints(cls)


def setup(cfg: Any) -> str:
    """Seed every RNG from ``cfg.seed``, limit threads under ``ci``, resolve ``cfg.device``, and make the
    book's plotly renderer the default (importing :mod:`l6kit.viz` registers it), so every figure a notebook
    returns carries the HTML the book shows, whichever l6kit modules the notebook imports.

    Under ``ci`` torch uses one thread: tiny models on 2 cores ran up to 10x faster than with two.

    Returns:
        The device string to use: ``"cuda"``, ``"mps"`` or ``"cpu"``.
    """
    import torch

    import l6kit.viz  # noqa: F401  (registers the "l6kit" plotly renderer as the default)

    seed_everything(getattr(cfg, "seed", 0))
    if getattr(cfg, "profile", "ci") == "ci":
        torch.set_num_threads(1)
    return resolve_device(getattr(cfg, "device", "auto"))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> str:
    """Map ``"auto"`` to the best available device (cuda > mps > cpu); check explicit requests.

    Raises:
        ValueError: an unknown device name, or ``"cuda"``/``"mps"`` asked for where it is absent.
    """
    import torch

    allowed = ("auto", "cpu", "cuda", "mps")
    base = device.split(":")[0]
    if base not in allowed:
        raise ValueError(f"unknown device {device!r}; allowed: {', '.join(allowed)}")
    has_mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if base == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    if base == "mps" and not has_mps:
        raise ValueError("device 'mps' was asked for but is not available; use device='auto' or 'cpu'")
    return device


def progress_disabled(progress: bool | None = None) -> bool | None:
    """tqdm's ``disable`` for l6kit's progress bars.

    ``True``/``False`` force them on/off; ``None`` shows them on a terminal and in interactive Jupyter, and
    hides them in batch runs (``l6kit run`` sets ``L6KIT_NO_PROGRESS=1``, so executed notebooks in the book
    carry no frozen progress widgets).
    """
    if progress is not None:
        return not progress
    return True if os.environ.get("L6KIT_NO_PROGRESS") == "1" else None


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
