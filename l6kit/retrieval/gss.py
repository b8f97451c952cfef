"""GSS — Guided Similarity Separation: a residual GCN over the kNN graph trained with an unsupervised loss.

Instead of traversing the neighbour graph at query time (diffusion, EGT), GSS *learns new descriptors*: a
graph convolutional network (GCN) mixes every descriptor with its graph neighbours, and is trained so that
the inner products of its outputs separate — pairs that are already similar are pushed towards 1, all others
towards 0. Retrieval is then plain inner-product search over the new descriptors.

The pieces:

* :func:`gss_adjacency` — the symmetric kNN graph of the index with cosine weights, self-loops and symmetric
  degree normalisation ``Â = D^{-1/2}(A + I)D^{-1/2}``; queries, when given, are attached by their ``kq``
  best index edges as extra rows that the index never sees (index descriptors do not depend on queries).
* :class:`GSS` — the residual GCN: ``P_l = Â H_{l-1} W_l + b_l``, ``H_l = ELU(P_l)``, the last layer's
  output ``P_{L-1} + λ H_L`` (layer decay λ), rows L2-normalised; weights start at identity + N(0, σ²), so
  the untrained network is a fixed graph smoothing of the input.
* :func:`separation_loss` — ``-(α/2) mean_ij (relu(h_i·h_j) - β)^2`` over all index pairs, plus an L2
  penalty on the weights; β is a high percentile of the untrained similarities (:func:`beta_percentile`).
* :func:`train_gss` — full-batch training through :func:`l6kit.train.fit` (the loader yields one batch per
  epoch: the index features and the adjacency), with the per-epoch callbacks the caller passes.

The dense ``N x N`` adjacency and loss are used throughout: they are exact, simple, and cheap up to a few
thousand index images (ROxford5k/RParis6k); a sampled-pair loss would be needed beyond (the paper's INSTRE
run needs ~19 GB of GPU memory for the dense loss).

References:
    Liu, Yu, Chang, Rai, Ma, Gorti, Volkovs. "Guided Similarity Separation for Image Retrieval." NeurIPS
    2019 (the residual GCN and the GSS loss). Official code: github.com/layer6ai-labs/GSS (``model.py``,
    ``train.py``, ``utils/helper.py``: graph, layer decay, β percentile, query rows).
    Kipf, Welling. "Semi-Supervised Classification with Graph Convolutional Networks." ICLR 2017.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from l6kit.retrieval.knn import knn, knn_graph
from l6kit.train import History, fit


def gss_adjacency(X: np.ndarray, k: int, Q: np.ndarray | None = None, kq: int | None = None) -> np.ndarray:
    """The normalised GCN adjacency ``Â = D^{-1/2}(A + I)D^{-1/2}`` over ``[Q; X]`` (queries first).

    ``A`` on the index block: ``A_ij = x_i·x_j`` when j is among i's ``k`` nearest neighbours or i among
    j's (symmetric, zero diagonal). A query row holds its ``kq`` best index similarities; no index row links
    to a query, so the index block equals the index-only graph. ``D`` = row sums of ``A + I``; normalising by
    ``sqrt(d_i d_j)`` uses each row's own degree (for a query row: 1 + its edge weights).

    Args:
        X: ``(n, d)`` L2-normalised index descriptors.
        k: neighbours per index image (paper: 5).
        Q: optional ``(m, d)`` L2-normalised queries.
        kq: neighbours per query (default ``k``; paper: 5 on ROxford, 15 on RParis).

    Shapes:
        returns ``(m + n, m + n)`` float32 (``(n, n)`` without queries).

    References:
        Liu et al. 2019; official ``gen_graph``/``preprocess_graph``; Kipf & Welling 2017 (renormalisation).
    """
    n, m = len(X), 0 if Q is None else len(Q)
    A = np.zeros((m + n, m + n), np.float64)
    sims, ids = knn_graph(X, k)
    rows = m + np.repeat(np.arange(n), k)
    A[rows, m + ids.ravel()] = sims.ravel()
    A[m + ids.ravel(), rows] = sims.ravel()                 # symmetric: i -> j or j -> i
    if m:
        q_sims, q_ids = knn(X, Q, kq or k)
        A[np.repeat(np.arange(m), q_sims.shape[1]), m + q_ids.ravel()] = q_sims.ravel()
    A[np.arange(m + n), np.arange(m + n)] = 1.0             # self-loops
    dinv = 1.0 / np.sqrt(A.sum(axis=1))
    return (dinv[:, None] * A * dinv[None, :]).astype(np.float32)


class GSS(nn.Module):
    """The residual GCN of GSS with its similarity-separation loss.

    Args:
        dim: descriptor dimension (input = hidden = output width, as in the paper).
        layers: GCN layers (paper: 2).
        layer_decay: λ, weight of the deeper layer in the residual sum (official code: 0.3).
        init_std: σ of the off-diagonal initial weights (weights start at identity + N(0, σ²); 1e-5).
        alpha: α, the loss scale (1).
        reg: L2 penalty ``reg/2 * sum W²`` on the weight matrices (official code: 1e-5).
        beta: β, the separation threshold; set it with :func:`beta_percentile` before training.

    Shapes:
        forward: features ``(n, dim)``, adjacency ``(n, n)`` -> ``(n, dim)`` L2-normalised rows.

    References:
        Liu et al. 2019; official ``model.py`` (identity init, ELU, residual with layer decay).
    """

    def __init__(self, dim: int, layers: int = 2, layer_decay: float = 0.3, init_std: float = 1e-5,
                 alpha: float = 1.0, reg: float = 1e-5, beta: float = 0.0, seed: int = 0):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        g = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.eye(dim) + init_std * torch.randn(dim, dim, generator=g)) for _ in range(layers)])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(dim)) for _ in range(layers)])
        self.layer_decay, self.alpha, self.reg, self.beta = layer_decay, alpha, reg, beta

    def forward(self, features: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        h, residual = features, None
        for W, b in zip(self.weights, self.biases, strict=True):
            pre = adjacency @ h @ W + b                     # (n, dim): propagate, then mix channels
            h = torch.nn.functional.elu(pre)
            if residual is not None:
                h = residual + self.layer_decay * h         # residual from the previous pre-activation
            residual = pre
        return torch.nn.functional.normalize(h, dim=1)

    def loss(self, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        """Separation loss of the index embeddings (:func:`separation_loss`) + the weights' L2 penalty.

        Shapes:
            batch: ``(features (n, dim), adjacency (n, n))`` of the index; returns a scalar.
        """
        features, adjacency = batch
        h = self(features, adjacency)
        penalty = sum((W ** 2).sum() for W in self.weights) * (self.reg / 2)
        return separation_loss(h @ h.T, self.beta, self.alpha) + penalty


def separation_loss(S: torch.Tensor, beta: float, alpha: float = 1.0) -> torch.Tensor:
    """The guided similarity-separation loss ``-(α/2) mean_ij (relu(s_ij) - β)^2``.

    Its gradient ``-α (s - β)`` pushes every similarity *away* from β: pairs above β towards 1 (they are
    already more similar than almost all pairs, typically graph neighbours after the GCN), pairs in
    ``[0, β)`` towards 0; negative similarities are cut by the ReLU and left alone.

    Shapes:
        S: ``(n, n)`` similarities in ``[-1, 1]``; returns a scalar.

    References:
        Liu et al. 2019 (the GSS loss); official ``model.py`` (``GSS_loss``, ReLU decoder).
    """
    return -0.5 * alpha * ((torch.relu(S) - beta) ** 2).mean()


@torch.no_grad()
def embed(model: GSS, features: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    """The model's descriptors for ``features`` over ``adjacency`` (evaluation mode), as numpy float32.

    Shapes:
        features ``(n, d)``, adjacency ``(n, n)``; returns ``(n, d)`` L2-normalised.
    """
    model.eval()
    dev = next(model.parameters()).device
    out = model(torch.as_tensor(features, device=dev), torch.as_tensor(adjacency, device=dev))
    return out.float().cpu().numpy()


def beta_percentile(model: GSS, features: np.ndarray, adjacency: np.ndarray, percentile: float) -> float:
    """β as the ``percentile`` (e.g. 98) of all pairwise similarities of the *untrained* model's outputs.

    References:
        Official code, ``train.py`` (``--beta-percentile 98``).
    """
    H = embed(model, features, adjacency)
    return float(np.percentile(H @ H.T, percentile))


def train_gss(model: GSS, X: np.ndarray, adjacency: np.ndarray, *, epochs: int, lr: float = 1e-4,
              device: str = "cpu", seed: int = 0, beta_pct: float | None = 98.0,
              callbacks: Sequence[Callable[[dict[str, Any]], bool | None]] = ()) -> History:
    """Full-batch GSS training over the index with :func:`l6kit.train.fit` (Adam, one step per epoch).

    Sets ``model.beta`` from the untrained similarities first when ``beta_pct`` is given.

    Args:
        model: a fresh :class:`GSS`.
        X: ``(n, d)`` index descriptors; adjacency: ``(n, n)`` from :func:`gss_adjacency` (no queries).
        epochs, lr, device, seed: passed to ``fit`` (paper: 200 epochs, lr 1e-4).
        callbacks: ``fit`` callbacks (e.g. mAP per epoch).

    Returns:
        ``fit``'s :class:`~l6kit.train.History` (loss per epoch).
    """
    if beta_pct is not None:
        model.beta = beta_percentile(model, X, adjacency, beta_pct)
    batch = (torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(adjacency, dtype=torch.float32))
    return fit(model, [batch], epochs=epochs, lr=lr, device=device, seed=seed, amp=False, callbacks=callbacks,
               progress=None, desc="GSS")
