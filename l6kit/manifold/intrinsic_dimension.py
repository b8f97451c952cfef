"""Intrinsic dimension by maximum likelihood (Levina & Bickel 2004; MacKay & Ghahramani 2005).

Near a point x on a smooth d-dimensional manifold with a locally uniform density, the number of samples
within radius r grows like r^d, so the distances T_1(x) <= ... <= T_k(x) to its k nearest neighbours carry
the dimension. Levina & Bickel's local maximum-likelihood estimate is

    m_k(x)^{-1} = 1/(k-1) * sum_{j=1}^{k-1} log(T_k(x) / T_j(x))                      (LB eq. 8)

and MacKay & Ghahramani's correction averages the *inverses* over the n points before inverting,

    m_k = [ 1/n * sum_i m_k(x_i)^{-1} ]^{-1}                                            (MG note)

which is the maximum-likelihood combination (averaging the m_k(x_i) themselves is biased upward).
``denominator="k-2"`` gives Levina & Bickel's bias-corrected variant; the UoMH code uses ``k-1``.

References:
    E. Levina, P. Bickel. Maximum Likelihood Estimation of Intrinsic Dimension. NeurIPS 2004.
    D. MacKay, Z. Ghahramani. Comments on 'Maximum Likelihood Estimation of Intrinsic Dimension' (2005).
    B. L. Brown, A. L. Caterini, B. L. Ross, J. C. Cresswell, G. Loaiza-Ganem. Verifying the Union of
    Manifolds Hypothesis for Image Data. ICLR 2023, Sec. 3.
"""

from __future__ import annotations

import numpy as np
import torch


def knn_distances(X: np.ndarray | torch.Tensor, k: int, *, device: str = "cpu",
                  batch_size: int = 2048) -> np.ndarray:
    """Euclidean distances from every row of ``X`` to its ``k`` nearest *other* rows, ascending.

    Computed in row blocks with ``torch.cdist`` so the same code runs on a CPU or a GPU and memory stays
    at ``batch_size x n``.

    Args:
        X: data, shape ``(n, D)``. Rows should be distinct (see :func:`unique_rows`).
        k: number of neighbours, ``1 <= k < n``.
        device: torch device for the distance computation.
        batch_size: rows per block.

    Returns:
        Distances, shape ``(n, k)``, float64, each row ascending.
    """
    data = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X)
    # float64 on every device: torch.cdist's matrix-product formula loses near neighbours to cancellation
    # in float32, and a zero distance would make log(T_k / T_j) infinite
    data = data.to(device=device, dtype=torch.float64)
    n = data.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must satisfy 1 <= k < n = {n}, got k = {k}")
    out = torch.empty(n, k, dtype=torch.float64)
    for start in range(0, n, batch_size):
        block = data[start:start + batch_size]                      # (b, D)
        dist = torch.cdist(block, data)                             # (b, n)
        rows = torch.arange(block.shape[0], device=dist.device)
        dist[rows, rows + start] = float("inf")                     # exclude the point itself
        nearest = torch.topk(dist, k, dim=1, largest=False).values  # (b, k), ascending
        out[start:start + block.shape[0]] = nearest.to("cpu", torch.float64)
    return out.numpy()


def unique_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop exact duplicate rows (zero neighbour distances would make log(T_k / T_j) infinite).

    Args:
        X: shape ``(n, D)``.

    Returns:
        ``(X_unique, keep)``: the first occurrence of each row in the original order, shape ``(m, D)``,
        and the kept row indices, shape ``(m,)``.
    """
    X = np.asarray(X)
    _, first = np.unique(X.reshape(len(X), -1), axis=0, return_index=True)
    keep = np.sort(first)
    return X[keep], keep


def local_inverse_dimension(distances: np.ndarray, denominator: str = "k-1") -> np.ndarray:
    """Per-point inverse MLE ``m_k(x)^{-1}`` (LB eq. 8) from sorted neighbour distances.

    Args:
        distances: shape ``(n, k)``, ascending per row, all positive.
        denominator: ``"k-1"`` (UoMH code, scikit-dimension's default) or ``"k-2"`` (LB's bias correction).

    Returns:
        Shape ``(n,)``.
    """
    if denominator not in ("k-1", "k-2"):
        raise ValueError(f"denominator must be 'k-1' or 'k-2', got {denominator!r}")
    k = distances.shape[1]
    if k < 3:
        raise ValueError(f"the MLE needs k >= 3 neighbours, got k = {k}")
    if np.any(distances <= 0):
        raise ValueError("zero neighbour distance: remove duplicate points first (unique_rows)")
    logs = np.log(distances[:, -1:] / distances[:, :-1])           # (n, k-1): log(T_k / T_j)
    return logs.sum(axis=1) / (k - 1 if denominator == "k-1" else k - 2)


class MLEIntrinsicDimension:
    """Levina–Bickel MLE of intrinsic dimension with MacKay–Ghahramani averaging (scikit-learn style).

    Args:
        k: neighbours per point (the paper's headline uses k = 10; k = 5 and 20 are its ablations).
        denominator: ``"k-1"`` or ``"k-2"``; see :func:`local_inverse_dimension`.
        device: torch device for the neighbour search (``"cpu"``, ``"cuda"``).

    Attributes (after :meth:`fit`):
        dimension_: the global estimate m_k (float).
        local_inverse_: per-point inverse estimates, shape ``(n_unique,)``.
        local_dimension_: per-point estimates ``1 / local_inverse_``, shape ``(n_unique,)``.
        index_: row indices of ``X`` that were kept after duplicate removal, shape ``(n_unique,)``.
        n_duplicates_: number of duplicate rows removed.
        n_features_in_: ambient dimension D.

    Example:
        >>> MLEIntrinsicDimension(k=10).fit(X).dimension_
    """

    def __init__(self, k: int = 10, denominator: str = "k-1", device: str = "cpu"):
        self.k = k
        self.denominator = denominator
        self.device = device

    def fit(self, X: np.ndarray, y: None = None) -> MLEIntrinsicDimension:
        """Estimate the dimension of ``X`` (shape ``(n, D)``, or images ``(n, ...)`` flattened). Returns self."""
        X = np.asarray(X, dtype=np.float64)
        X = X.reshape(len(X), -1)
        flat_unique, self.index_ = unique_rows(X)
        self.n_duplicates_ = len(X) - len(self.index_)
        self.n_features_in_ = X.shape[1]
        if len(flat_unique) <= self.k:
            raise ValueError(f"k = {self.k} needs more than k distinct points; got {len(flat_unique)}")
        dist = knn_distances(flat_unique, self.k, device=self.device)
        self.local_inverse_ = local_inverse_dimension(dist, self.denominator)
        self.local_dimension_ = 1.0 / self.local_inverse_
        self.dimension_ = float(1.0 / self.local_inverse_.mean())
        return self

    def fit_transform(self, X: np.ndarray, y: None = None) -> np.ndarray:
        """Fit and return the per-point local dimensions, shape ``(n_unique,)``."""
        return self.fit(X).local_dimension_

    def bootstrap(self, X: np.ndarray, n_boot: int = 100, seed: int = 0) -> np.ndarray:
        """Global estimates on ``n_boot`` bootstrap resamples of the rows of ``X``.

        Each resample draws n rows with replacement and refits from scratch (duplicates drawn by the
        resampling are removed, as in :meth:`fit`), so the spread includes the neighbour search's noise,
        not only the averaging's. Their standard deviation is the "noise" of the estimate.

        Args:
            X: shape ``(n, D)``.
            n_boot: number of resamples.
            seed: seed of the resampling generator.

        Returns:
            Shape ``(n_boot,)``.
        """
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        rng = np.random.default_rng(seed)
        out = np.empty(n_boot)
        for b in range(n_boot):
            sample = X[rng.integers(0, len(X), len(X))]
            out[b] = MLEIntrinsicDimension(self.k, self.denominator, self.device).fit(sample).dimension_
        return out


def per_class_dimension(X: np.ndarray, y: np.ndarray, k: int = 10, *, n_boot: int = 0, seed: int = 0,
                        denominator: str = "k-1", device: str = "cpu") -> dict[int, dict[str, float]]:
    """Estimate the intrinsic dimension of each class separately (the paper's proxy for components).

    Args:
        X: data, shape ``(n, D)`` (or ``(n, ...)``, flattened).
        y: labels, shape ``(n,)``.
        k: neighbours per point.
        n_boot: bootstrap resamples per class for a standard deviation (0: none).
        seed: seed for the bootstrap.
        denominator, device: see :class:`MLEIntrinsicDimension`.

    Returns:
        label -> ``{"dimension", "boot_std", "n"}`` (``boot_std`` is NaN when ``n_boot == 0``).
    """
    X = np.asarray(X).reshape(len(X), -1)
    y = np.asarray(y)
    out: dict[int, dict[str, float]] = {}
    for label in np.unique(y):
        Xc = X[y == label]
        est = MLEIntrinsicDimension(k, denominator, device).fit(Xc)
        boot = est.bootstrap(Xc, n_boot, seed=seed + int(label)) if n_boot else np.array([np.nan])
        out[int(label)] = {"dimension": est.dimension_, "boot_std": float(np.std(boot, ddof=1))
                           if n_boot > 1 else float("nan"), "n": int(len(Xc))}
    return out
