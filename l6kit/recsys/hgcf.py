"""HGCF: a weight-free, skip-connected GCN on the hyperboloid, trained with a margin ranking loss.

Hyperboloid (Lorentz) model with curvature ``-1/K`` (here ``K = 1``)::

    H^d = {x in R^{d+1} : <x, x>_L = -K, x_0 > 0},   <x, y>_L = -x_0 y_0 + sum_i x_i y_i

The origin is ``o = (sqrt(K), 0, ..., 0)``; its tangent space holds vectors ``(0, v)`` with ``v in R^d``, so
embeddings can be parametrised by Euclidean ``v`` (the model's parameters live in the tangent space at ``o``,
which is also where HGCF's first operation, ``log_o``, sends them). :class:`GraphRanker` runs

    z^(0) = v,   z^(k) = A z^(k-1),   h = sum_{k=1..L} z^(k),   x = exp_o(h)

and scores a user-item pair by the squared geodesic distance ``d^2(x_u, x_i)``, trained with
``max(0, d^2(u, i) - d^2(u, j) + margin)`` over sampled negatives ``j``. ``geometry="euclidean"`` is the exact
twin (``x = h``, ``d^2 = ||x_u - x_i||^2``); :class:`LightGCN` is the dot-product/BPR baseline.

References:
    Sun, Cheng, Wu, Zuberi, Volkovs et al. *HGCF: Hyperbolic Graph Convolution Networks for Collaborative
    Filtering.* WWW 2021.
    Chami, Ying, Ré, Leskovec. *Hyperbolic Graph Convolutional Neural Networks.* NeurIPS 2019.
    He et al. *LightGCN.* SIGIR 2020.
"""

from __future__ import annotations

import geoopt
import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from l6kit.recsys.interactions import sample_negatives
from l6kit.recsys.sparse import normalized_adjacency, spmm

MAX_SQDIST = 50.0     # the official code clamps d^2 here, so a far negative stops pulling


def lorentz_inner(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Minkowski product ``-x_0 y_0 + <x_s, y_s>`` over the last axis. Shapes: ``(..., d+1)`` -> ``(...)``."""
    return -x[..., 0] * y[..., 0] + (x[..., 1:] * y[..., 1:]).sum(-1)


def expmap0(v: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """Exponential map at the origin of ``H^d_K`` of the tangent vector ``(0, v)``.

    ``exp_o(v) = (sqrt(K) cosh(|v|/sqrt(K)), sqrt(K) sinh(|v|/sqrt(K)) v/|v|)``.

    Shapes:
        v: ``(..., d)``. Returns ``(..., d+1)``, on the hyperboloid.
    """
    sk = k ** 0.5
    norm = v.norm(dim=-1, keepdim=True).clamp_min(1e-7)
    theta = (norm / sk).clamp_max(15.0)          # cosh(15) ~ 1.6e6: beyond this float32 loses the manifold
    return torch.cat([sk * torch.cosh(theta), sk * torch.sinh(theta) * v / norm], dim=-1)


def logmap0(x: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """Logarithmic map at the origin (inverse of :func:`expmap0`). Shapes: ``(..., d+1)`` -> ``(..., d)``."""
    sk = k ** 0.5
    xs = x[..., 1:]
    norm = xs.norm(dim=-1, keepdim=True).clamp_min(1e-7)
    theta = torch.acosh((x[..., :1] / sk).clamp_min(1.0 + 1e-7))
    return sk * theta * xs / norm


def sqdist(x: torch.Tensor, y: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """Squared geodesic distance ``K arcosh^2(-<x, y>_L / K)`` (argument clamped at 1, result at 50).

    Shapes: ``(..., d+1)`` twice -> ``(...)``.
    """
    arg = (-lorentz_inner(x, y) / k).clamp_min(1.0 + 1e-7)
    return (k * torch.acosh(arg) ** 2).clamp_max(MAX_SQDIST)


def to_poincare(x: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """Hyperboloid -> Poincaré ball of radius ``sqrt(K)``: ``sqrt(K) x_s / (sqrt(K) + x_0)``.

    Shapes: ``(..., d+1)`` -> ``(..., d)``.
    """
    sk = k ** 0.5
    return sk * x[..., 1:] / (sk + x[..., :1])


def recentre(x: torch.Tensor) -> torch.Tensor:
    """Move the Lorentzian midpoint of ``x`` to the origin by an isometry; return tangent vectors at ``o``.

    ``mu = sum(x) / sqrt(-<sum x, sum x>_L)`` (K = 1); each point is sent to ``log_mu(x)`` and parallel-
    transported from ``mu`` to ``o`` (geoopt's ``Lorentz.logmap`` / ``transp``), so ``|v_a|`` is the distance
    from ``x_a`` to ``mu`` and ``exp_o`` of the result reproduces every pairwise distance.

    Shapes: ``(n, d+1)`` -> ``(n, d)``.
    """
    s = x.sum(0)
    mu = (s / torch.sqrt(-lorentz_inner(s, s))).expand_as(x)
    origin = torch.zeros_like(x)
    origin[:, 0] = 1.0
    man = geoopt.Lorentz()
    return man.transp(mu, origin, man.logmap(mu, x))[:, 1:]


class TripletBatches:
    """Mini-batches ``(user, positive, negative)`` over the training interactions, fresh negatives each pass.

    The order and negatives come from the global torch RNG, which :func:`l6kit.train.fit` seeds per epoch.

    Yields:
        ``torch.LongTensor (b, 3)``.
    """

    def __init__(self, R: sp.csr_matrix, batch_size: int = 2048):
        self.R = sp.csr_matrix(R)
        self.users = np.repeat(np.arange(R.shape[0]), np.diff(self.R.indptr))
        self.items = self.R.indices.copy()
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-self.users.size // self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.users.size).numpy()
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
        neg = sample_negatives(self.R, self.users[order], 1, rng)[:, 0]
        trip = torch.from_numpy(np.stack([self.users[order], self.items[order], neg], 1))
        yield from trip.split(self.batch_size)


class GraphRanker(nn.Module):
    """HGCF (``geometry="hyperbolic"``) or its Euclidean twin: same GCN, same margin loss.

    Args:
        R: training interactions ``(n_users, n_items)``.
        dim: embedding dimension ``d`` (the hyperboloid lives in ``R^{d+1}``).
        layers: GCN depth ``L``.
        margin: ranking margin ``m`` on squared distances.
        geometry: ``"hyperbolic"`` | ``"euclidean"``.
        init_scale: embeddings start uniform in ``[-s, s]^d`` (tangent space at the origin).
        seed: initialisation seed.

    Shapes:
        ``embed()`` returns ``(n_users + n_items, d+1)`` points on H^d (or ``(.., d)`` in the Euclidean twin).
    """

    def __init__(self, R: sp.csr_matrix, dim: int = 8, layers: int = 3, margin: float = 0.1,
                 geometry: str = "hyperbolic", init_scale: float = 0.1, seed: int = 0):
        super().__init__()
        if geometry not in ("hyperbolic", "euclidean"):
            raise ValueError(f"geometry must be 'hyperbolic' or 'euclidean', got {geometry!r}")
        self.n_users, self.n_items = R.shape
        self.A = normalized_adjacency(R, self_loops=True, kind="row")
        self.layers, self.margin, self.geometry = layers, margin, geometry
        g = torch.Generator().manual_seed(seed)
        n = self.n_users + self.n_items
        self.weight = nn.Parameter((torch.rand(n, dim, generator=g) * 2 - 1) * init_scale)

    def embed(self) -> torch.Tensor:
        """Propagate and map to the manifold: ``exp_o(sum_{k=1..L} A^k v)`` (hyperbolic) or the sum itself."""
        z, total = self.weight, 0.0
        for _ in range(self.layers):
            z = spmm(self.A, z)
            total = total + z
        return expmap0(total) if self.geometry == "hyperbolic" else total

    def sqdist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Squared distance in this model's geometry (rows of :meth:`embed`)."""
        return sqdist(a, b) if self.geometry == "hyperbolic" else ((a - b) ** 2).sum(-1)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """Mean margin ranking loss over triples ``(u, i, j)``, shape ``(b, 3)``."""
        x = self.embed()
        u, i, j = x[batch[:, 0]], x[self.n_users + batch[:, 1]], x[self.n_users + batch[:, 2]]
        return torch.relu(self.sqdist(u, i) - self.sqdist(u, j) + self.margin).mean()

    @torch.no_grad()
    def scores(self) -> np.ndarray:
        """``(n_users, n_items)`` scores, higher = closer: ``<x_u, x_i>_L`` (monotone in ``-d``) or ``-|x_u-x_i|^2``."""
        x = self.embed().double().cpu()
        u, it = x[:self.n_users], x[self.n_users:]
        if self.geometry == "hyperbolic":
            return (-u[:, :1] @ it[:, :1].T + u[:, 1:] @ it[:, 1:].T).numpy()
        return (2 * u @ it.T - (it ** 2).sum(1)[None, :]).numpy()


class LightGCN(nn.Module):
    """LightGCN: mean of layer-0..L embeddings under ``D^-1/2 A D^-1/2``, dot-product scores, BPR loss.

    Args:
        R, dim, layers, seed: as in :class:`GraphRanker`; ``init_std`` is the normal initialisation scale.
        reg: L2 penalty on the layer-0 embeddings of the batch.
    """

    def __init__(self, R: sp.csr_matrix, dim: int = 8, layers: int = 3, init_std: float = 0.1,
                 reg: float = 1e-4, seed: int = 0):
        super().__init__()
        self.n_users, self.n_items = R.shape
        self.A = normalized_adjacency(R)
        self.layers, self.reg = layers, reg
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(self.n_users + self.n_items, dim, generator=g) * init_std)

    def embed(self) -> torch.Tensor:
        """``(n_users + n_items, d)``: the mean of ``A^k E`` for ``k = 0..L``."""
        z, total = self.weight, self.weight
        for _ in range(self.layers):
            z = spmm(self.A, z)
            total = total + z
        return total / (self.layers + 1)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """BPR ``-log sigmoid(s_ui - s_uj)`` plus the L2 term, averaged over the batch."""
        x, e = self.embed(), self.weight
        u, i, j = batch[:, 0], self.n_users + batch[:, 1], self.n_users + batch[:, 2]
        diff = (x[u] * (x[i] - x[j])).sum(-1)
        l2 = (e[u] ** 2 + e[i] ** 2 + e[j] ** 2).sum(-1).mean()
        return nn.functional.softplus(-diff).mean() + self.reg * l2

    @torch.no_grad()
    def scores(self) -> np.ndarray:
        """``(n_users, n_items)`` dot products."""
        x = self.embed().double().cpu()
        return (x[:self.n_users] @ x[self.n_users:].T).numpy()


def popularity_scores(R: sp.csr_matrix) -> np.ndarray:
    """``(n_users, n_items)``: every user gets the training popularity of each item (the trivial baseline)."""
    pop = np.asarray(R.sum(0), dtype=np.float64).ravel()
    return np.broadcast_to(pop, R.shape).copy()
