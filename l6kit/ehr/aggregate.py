"""Aggregation of sparse, irregular events into fixed time bins: DuETT's input and the GBDT's features.

Each stay's 48 hours are cut into ``T`` bins. For every (bin, variable) cell DuETT keeps two numbers:

* the **last value** observed in the bin, z-scored with the training stays' mean and standard deviation
  (0 when nothing was observed), and
* the **count** of observations in the bin - whether a test was ordered, and how often, is information.

The static descriptors (Age, Gender, Height, Weight, ICUType one-hot) are z-scored the same way (missing -> 0).

References:
    Labach et al. *DuETT: Dual Event Time Transformer for Electronic Health Records.* MLHC 2023, Sec. 3.1
    (input aggregation). The official code bins relative to each stay's last observation (``relative=True``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from l6kit.ehr.physionet import PhysioNetData

STATIC_NAMES: tuple[str, ...] = ("Age", "Gender", "Height", "Weight", "ICUType1", "ICUType2", "ICUType3",
                                 "ICUType4")


@dataclasses.dataclass(frozen=True)
class BinnedStays:
    """Stays aggregated into bins.

    Attributes:
        values: shape ``(n, T, D)`` float32, z-scored last value per cell, 0 where unobserved.
        counts: shape ``(n, T, D)`` float32, observations per cell.
        static: shape ``(n, S)`` float32, z-scored descriptors, 0 where missing.
        bin_end_h: shape ``(n, T)`` float32, the end of each bin in hours.
        labels: shape ``(n,)`` int64, in-hospital death.
        variables: the ``D`` variable names; ``static_names`` the ``S`` static names.
    """

    values: np.ndarray
    counts: np.ndarray
    static: np.ndarray
    bin_end_h: np.ndarray
    labels: np.ndarray
    variables: tuple[str, ...]
    static_names: tuple[str, ...] = STATIC_NAMES

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> BinnedStays:
        """The stays at ``rows`` (indices or a boolean mask)."""
        return dataclasses.replace(self, values=self.values[rows], counts=self.counts[rows],
                                   static=self.static[rows], bin_end_h=self.bin_end_h[rows],
                                   labels=self.labels[rows])

    def flat(self, missing: float = np.nan) -> np.ndarray:
        """Tabular features for a GBDT: values (``missing`` where unobserved), counts, static.

        Returns:
            shape ``(n, 2*T*D + S)`` float32.
        """
        values = np.where(self.counts > 0, self.values, missing)
        n = len(self)
        return np.concatenate([values.reshape(n, -1), self.counts.reshape(n, -1), self.static], axis=1)

    def tensors(self) -> dict:
        """The stays as a dict of torch tensors (``values, counts, static, times, label``) for DuETT."""
        import torch

        return {"values": torch.as_tensor(self.values), "counts": torch.as_tensor(self.counts),
                "static": torch.as_tensor(self.static), "times": torch.as_tensor(self.bin_end_h),
                "label": torch.as_tensor(self.labels, dtype=torch.float32)}


class EventBinner:
    """Fit z-score statistics on training stays, then aggregate any stays into ``n_bins`` bins.

    Args:
        variables: the time series to keep, in this order (others are ignored).
        n_bins: ``T``, the number of bins (the paper: 32 for PhysioNet-2012).
        horizon_h: the window covered by the bins; later events are dropped (PhysioNet stays: 48 h).
        relative: bin each stay relative to its own last observation (the official code) instead of the fixed
            window.
        clip: clip z-scores to ``[-clip, clip]`` (None: no clipping; the official code does not clip).

    Attributes:
        mean_, std_: per-variable statistics of the raw training values, shape ``(D,)``.
        static_mean_, static_std_: of the static features, shape ``(S,)``.
    """

    def __init__(self, variables: tuple[str, ...], n_bins: int = 32, horizon_h: float = 48.0,
                 relative: bool = False, clip: float | None = None):
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.variables, self.n_bins, self.horizon_h = tuple(variables), n_bins, horizon_h
        self.relative, self.clip = relative, clip

    def _codes(self, data: PhysioNetData) -> np.ndarray:
        """Map ``data.param`` to column indices in ``variables`` (-1 for parameters not kept)."""
        lookup = np.array([self.variables.index(p) if p in self.variables else -1 for p in data.parameters],
                          dtype=np.int64)
        return lookup[data.param] if len(lookup) else np.zeros(0, dtype=np.int64)

    def fit(self, data: PhysioNetData, rows: np.ndarray | None = None) -> EventBinner:
        """Learn the z-score statistics from the stays at ``rows`` (default: all), events inside the window."""
        col = self._codes(data)
        keep = (col >= 0) & (self.bin_index(data)[0] >= 0)
        if rows is not None:
            keep &= np.isin(data.stay, np.arange(len(data))[rows])
        d = len(self.variables)
        n = np.bincount(col[keep], minlength=d).astype(float)
        total = np.bincount(col[keep], weights=data.value[keep], minlength=d)
        sq = np.bincount(col[keep], weights=data.value[keep] ** 2, minlength=d)
        self.mean_ = np.divide(total, n, out=np.zeros(d), where=n > 0)
        var = np.divide(sq, n, out=np.ones(d), where=n > 0) - self.mean_**2
        self.std_ = np.sqrt(np.maximum(var, 0)) + 1e-7
        static = static_features(data)[rows if rows is not None else slice(None)]
        seen = ~np.isnan(static)
        count = np.maximum(seen.sum(axis=0), 1)
        filled = np.where(seen, static, 0.0)
        self.static_mean_ = filled.sum(axis=0) / count
        spread = np.where(seen, static - self.static_mean_, 0.0)
        self.static_std_ = np.sqrt((spread**2).sum(axis=0) / count) + 1e-7
        return self

    def bin_index(self, data: PhysioNetData) -> tuple[np.ndarray, np.ndarray]:
        """Bin of every event, shape ``(m,)`` (-1 outside the window), and bin ends, shape ``(n, T)`` hours."""
        t, T = data.time_h, self.n_bins
        if self.relative:
            last = np.zeros(len(data))
            np.maximum.at(last, data.stay, t)
            span = np.maximum(last, 1e-6)
            b = np.where(t >= span[data.stay], T - 1, np.floor(t / span[data.stay] * T)).astype(np.int64)
        else:
            span = np.full(len(data), self.horizon_h)
            b = np.where(t <= self.horizon_h, np.minimum(np.floor(t / self.horizon_h * T), T - 1), -1)
        ends = span[:, None] * np.arange(1, T + 1)[None, :] / T
        return b.astype(np.int64), ends.astype(np.float32)

    def transform(self, data: PhysioNetData) -> BinnedStays:
        """Aggregate ``data`` (see the module docstring).

        Returns:
            :class:`BinnedStays` with ``values``/``counts`` of shape ``(n, T, D)``.
        """
        n, T, D = len(data), self.n_bins, len(self.variables)
        col = self._codes(data)
        b, ends = self.bin_index(data)
        keep = (col >= 0) & (b >= 0)
        cell = (data.stay[keep] * T + b[keep]) * D + col[keep]             # flat (stay, bin, variable) index
        counts = np.bincount(cell, minlength=n * T * D).astype(np.float32)
        order = np.lexsort((data.time_h[keep], cell))                       # by cell, then time (stable)
        last = order[np.r_[cell[order][1:] != cell[order][:-1], True]] if len(order) else order
        z = (data.value[keep][last] - self.mean_[col[keep][last]]) / self.std_[col[keep][last]]
        if self.clip is not None:
            z = np.clip(z, -self.clip, self.clip)
        values = np.zeros(n * T * D, dtype=np.float32)
        values[cell[last]] = z
        static = (static_features(data) - self.static_mean_) / self.static_std_
        return BinnedStays(values.reshape(n, T, D), counts.reshape(n, T, D),
                           np.nan_to_num(static).astype(np.float32), ends, data.labels, self.variables)


def static_features(data: PhysioNetData) -> np.ndarray:
    """Age, Gender, Height, Weight and ICUType one-hot (as in the official code), shape ``(n, 8)``, NaN missing."""
    age, gender, height, icu, weight = data.descriptors.T
    onehot = np.stack([(icu == k).astype(float) for k in (1, 2, 3, 4)], axis=1)
    onehot[np.isnan(icu)] = np.nan
    return np.column_stack([age, gender, height, weight, onehot])
