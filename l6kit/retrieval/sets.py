"""Descriptor sets split into queries and index, with their relevance: the one loader of the retrieval pages.

Generated sets (``arcs``, ``chains``, ``chains-small``, ``digits``; :mod:`l6kit.retrieval.generators`) hold out
random queries;
the revisited benchmarks (``roxford5k``, ``rparis6k``; :mod:`l6kit.retrieval.revisitop`, registered in the data
registry) come with their own queries and Easy/Hard/Junk ground truth — under profile ``ci`` the registry's
offline stand-in.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from l6kit import data
from l6kit.retrieval.generators import arcs, chains, digits_descriptors, split_queries

GENERATED = ("arcs", "chains", "digits")          # the pages' standard generated sets
SMALL_MODES = "chains-small"                       # GSS's regime: many landmarks with few images per view
REVISITED = ("roxford5k", "rparis6k")


@dataclasses.dataclass
class Split:
    """Queries and index of one descriptor set.

    Attributes:
        name: the set's name (``"<name> (stand-in)"`` for a revisited set's offline stand-in).
        Q: ``(m, d)`` L2-normalised queries; X: ``(n, d)`` L2-normalised index.
        q_labels: ``(m,)`` class of each query (revisited sets: the query number).
        labels: ``(n,)`` class of each index image (revisited sets: -1, no classes).
        positives: per query, the relevant index ids (revisited sets: Easy + Hard, the Medium setup).
        gnd: revisited ground truth (per query ``easy``/``hard``/``junk`` id arrays) or ``None``.
    """

    name: str
    Q: np.ndarray
    X: np.ndarray
    q_labels: np.ndarray
    labels: np.ndarray
    positives: list[np.ndarray]
    gnd: list[dict] | None = None


def load_split(name: str, *, profile: str = "ci", seed: int = 0, n_queries: int = 100, dim: int = 64) -> Split:
    """Descriptor set ``name`` split into queries and index (generated sets) or as published (revisited).

    ``chains-small`` is the card's "small-mode chains": 50 landmarks x 5 views x 4 images in ``dim``
    dimensions, hop 0.8 rad, spread 0.5 (``dim`` is used by no other set).

    Raises:
        ValueError: an unknown set name.
    """
    if name in REVISITED:
        ds = data.load(name, profile, seed=seed) if profile == "ci" else data.load(name, profile)
        pos = [np.concatenate([g["easy"], g["hard"]]) for g in ds.gnd]
        shown = f"{name} (stand-in)" if profile == "ci" else name
        return Split(shown, ds.Q, ds.X, np.arange(len(ds.Q)), np.full(len(ds.X), -1), pos, ds.gnd)
    makers = {"arcs": lambda: arcs(seed=seed), "chains": lambda: chains(seed=seed),
              "chains-small": lambda: chains(50, 5, 4, dim, 0.8, 0.5, seed=seed), "digits": digits_descriptors}
    if name not in makers:
        raise ValueError(f"unknown descriptor set {name!r}; known: "
                         f"{', '.join((*GENERATED, SMALL_MODES, *REVISITED))}")
    X, y = makers[name]()
    Q, qy, Xi, yi = split_queries(X, y, n_queries, seed=seed)
    return Split(name, Q, Xi, qy, yi, [np.flatnonzero(yi == c) for c in qy])
