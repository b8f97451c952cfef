"""DuETT: a Transformer that attends alternately over event types and over time bins, and its
self-supervised pre-training.

The input is a grid of ``T`` bins x ``D`` variables (:class:`l6kit.ehr.aggregate.BinnedStays`). Each cell's
(value, count) pair is embedded by a per-variable MLP into ``d`` numbers; the static descriptors form one more
column and a learned [REP] row is appended along time, so the grid is ``psi`` of shape ``(B, T+1, D+1, d)``.
Each DuETT layer then applies

* an **event** Transformer layer whose tokens are the ``D+1`` columns, each a whole row-vector over time
  (width ``(T+1) d``), and
* a **time** Transformer layer whose tokens are the ``T+1`` rows, each a whole column-vector over variables
  (width ``(D+1) d``).

Attention costs ``O(D^2 T d + T^2 D d)`` per layer instead of ``O((T D)^2 d)`` for one token per cell.

References:
    Labach, Pokhrel, Huang, Zuberi, Yi, Volkovs, Poutanen, Krishnan. *DuETT: Dual Event Time Transformer for
    Electronic Health Records.* MLHC 2023, Sec. 3 (architecture, Fig. 1; pre-training, Sec. 3.3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from l6kit.train import TensorBatches  # noqa: F401  (re-exported: the one in-memory batcher)

MASK, REP = 0, 1                                   # rows of DuETT.special


class Dropout(nn.Module):
    """Inverted dropout drawn with ``torch.rand_like``: the same function as ``nn.Dropout`` but about 4x faster on
    CPU, where ``bernoulli_`` dominated the step time of these small models."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0:
            return x
        return x * (torch.rand_like(x) >= self.p) / (1 - self.p)


class AxisAttentionLayer(nn.Module):
    """A pre-norm Transformer encoder layer over tokens of width ``width`` whose attention works in a narrower
    space of ``n_heads * d_head`` (the official code uses ``d_head = d / n_heads`` whatever the token width).

    Shapes:
        x: ``(B, N, width)`` -> ``(B, N, width)``; attention weights ``(B, n_heads, N, N)``.
    """

    def __init__(self, width: int, n_heads: int, d_head: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * n_heads * d_head)
        self.out = nn.Linear(n_heads * d_head, width)
        self.ff = nn.Sequential(nn.Linear(width, d_ff), nn.GELU(), Dropout(dropout), nn.Linear(d_ff, width))
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, weights: list | None = None) -> torch.Tensor:
        B, N, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d_head), dim=-1)   # (B, H, N, N)
        if weights is not None:
            weights.append(attn.detach())
        mixed = (attn @ v).transpose(1, 2).reshape(B, N, -1)              # (B, N, H*d_head)
        x = x + self.drop(self.out(mixed))
        return x + self.drop(self.ff(self.norm2(x)))


class DuETT(nn.Module):
    """The DuETT encoder with a mortality head on the [REP] row.

    Args:
        n_vars, n_bins, n_static: ``D``, ``T`` and ``S`` of the input.
        d_embed: ``d``, embedding size per cell (paper: 24).
        d_hidden: hidden size of the per-variable embedding MLPs, the static encoder and the head (paper: 64).
        n_layers: DuETT layers, each one event + one time layer (paper: 2).
        n_heads: attention heads (paper: 2); each head has ``d_embed // n_heads`` dimensions.
        d_ff: feed-forward size of every layer (paper: 512).
        dropout: dropout in the Transformer layers and the head.
        max_count: counts are clipped here and embedded by a learned scalar per count (paper: 15).
        aug_mask: in training, each bin is replaced by [MASK] with this probability (paper fine-tuning: 0.5).
        pos_weight: weight of the positive class in the loss (None: 1).

    Shapes:
        batch: dict with ``values, counts (B, T, D)``, ``static (B, S)``, ``times (B, T)`` (bin ends, hours)
        and ``label (B,)``. ``forward`` returns logits ``(B,)``; ``encode`` returns ``psi (B, T+1, D+1, d)``.
    """

    def __init__(self, n_vars: int, n_bins: int, n_static: int, *, d_embed: int = 24, d_hidden: int = 64,
                 n_layers: int = 2, n_heads: int = 2, d_ff: int = 512, dropout: float = 0.0, max_count: int = 15,
                 aug_mask: float = 0.0, pos_weight: float | None = None, horizon_h: float = 48.0):
        super().__init__()
        D, T, d = n_vars, n_bins, d_embed
        self.n_vars, self.n_bins, self.d_embed, self.max_count = D, T, d, max_count
        self.aug_mask, self.pos_weight, self.horizon_h = aug_mask, pos_weight, horizon_h
        self.count_embed = nn.Embedding(max_count + 1, 1)
        self.w1 = nn.Parameter(torch.randn(D, 2, d_hidden) / math.sqrt(2))       # per-variable MLP 2 -> h -> d
        self.b1 = nn.Parameter(torch.zeros(D, d_hidden))
        self.w2 = nn.Parameter(torch.randn(D, d_hidden, d) / math.sqrt(d_hidden))
        self.b2 = nn.Parameter(torch.zeros(D, d))
        self.static_encoder = nn.Sequential(nn.Linear(n_static, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d))
        self.special = nn.Embedding(2, d)                                         # [MASK], [REP]
        event_width, time_width = (T + 1) * d, (D + 1) * d
        self.event_pos = nn.Parameter(0.02 * torch.randn(D + 1, event_width))
        hidden_t = max(2, int(math.sqrt(time_width)))
        self.time_embed = nn.Sequential(nn.Linear(1, hidden_t), nn.Tanh(), nn.Linear(hidden_t, time_width))
        self.rep_pos = nn.Parameter(0.02 * torch.randn(time_width))
        head = max(1, d // n_heads)
        self.event_layers = nn.ModuleList(AxisAttentionLayer(event_width, n_heads, head, d_ff, dropout)
                                          for _ in range(n_layers))
        self.time_layers = nn.ModuleList(AxisAttentionLayer(time_width, n_heads, head, d_ff, dropout)
                                         for _ in range(n_layers))
        self.head = nn.Sequential(nn.Linear(time_width, d_hidden), nn.ReLU(), Dropout(dropout),
                                  nn.Linear(d_hidden, 1))

    def set_regularization(self, dropout: float, aug_mask: float) -> DuETT:
        """Change the dropout of every layer and the bin-masking probability (the paper pre-trains without
        either and fine-tunes with 0.5 and 0.5); returns self."""
        for module in self.modules():
            if isinstance(module, Dropout):
                module.p = dropout
        self.aug_mask = aug_mask
        return self

    def embed(self, batch: Mapping[str, torch.Tensor], bin_mask: torch.Tensor | None = None,
              var_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The input grid ``psi`` (B, T+1, D+1, d); ``bin_mask (B, T)`` / ``var_mask (B, D)`` bool replace whole
        bins / variables (all rows, [REP] included) by the [MASK] embedding."""
        values, counts = batch["values"], batch["counts"]
        B, T, D = values.shape
        c = self.count_embed(counts.clamp(0, self.max_count).long()).squeeze(-1)      # (B, T, D)
        pair = torch.stack([values, c], dim=-1)                                       # (B, T, D, 2)
        hidden = torch.relu(torch.einsum("btvi,vih->btvh", pair, self.w1) + self.b1)   # (B, T, D, h)
        cells = torch.einsum("btvh,vhe->btve", hidden, self.w2) + self.b2             # (B, T, D, d)
        static = self.static_encoder(batch["static"])[:, None, None, :].expand(B, T, 1, -1)
        rows = torch.cat([cells, static], dim=2)                                      # (B, T, D+1, d)
        rep = self.special.weight[REP].expand(B, 1, D + 1, -1)
        psi = torch.cat([rows, rep], dim=1)                                           # (B, T+1, D+1, d)
        masked = self.special.weight[MASK]
        if bin_mask is not None:
            full = torch.cat([bin_mask, bin_mask.new_zeros(B, 1)], dim=1)            # (B, T+1)
            psi = torch.where(full[:, :, None, None], masked, psi)
        if var_mask is not None:
            full = torch.cat([var_mask, var_mask.new_zeros(B, 1)], dim=1)            # (B, D+1)
            psi = torch.where(full[:, None, :, None], masked, psi)
        return psi

    def encode(self, batch: Mapping[str, torch.Tensor], bin_mask: torch.Tensor | None = None,
               var_mask: torch.Tensor | None = None, weights: dict | None = None) -> torch.Tensor:
        """Run the alternating event/time layers; returns ``psi`` (B, T+1, D+1, d). ``weights``, if given, is
        filled with lists ``"event"`` (B, H, D+1, D+1) and ``"time"`` (B, H, T+1, T+1) per layer."""
        psi = self.embed(batch, bin_mask, var_mask)
        B, T1, D1, d = psi.shape
        times = batch["times"][..., None] / self.horizon_h                           # (B, T, 1)
        time_pos = torch.cat([self.time_embed(times), self.rep_pos.expand(B, 1, -1)], dim=1)   # (B, T+1, W_t)
        for event_layer, time_layer in zip(self.event_layers, self.time_layers, strict=True):
            tokens = psi.transpose(1, 2).reshape(B, D1, T1 * d) + self.event_pos       # (B, D+1, (T+1) d)
            tokens = event_layer(tokens, None if weights is None else weights.setdefault("event", []))
            psi = tokens.view(B, D1, T1, d).transpose(1, 2)                            # (B, T+1, D+1, d)
            tokens = psi.reshape(B, T1, D1 * d) + time_pos                             # (B, T+1, (D+1) d)
            tokens = time_layer(tokens, None if weights is None else weights.setdefault("time", []))
            psi = tokens.view(B, T1, D1, d)
        return psi

    def forward(self, batch: Mapping[str, torch.Tensor], bin_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mortality logits, shape ``(B,)``, read from the [REP] row."""
        psi = self.encode(batch, bin_mask)
        return self.head(psi[:, -1].flatten(1)).squeeze(-1)

    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Binary cross-entropy of the mortality logit; in training, bins are masked with prob. ``aug_mask``."""
        bin_mask = None
        if self.training and self.aug_mask > 0:
            bin_mask = torch.rand(batch["values"].shape[:2], device=batch["values"].device) < self.aug_mask
        logits = self(batch, bin_mask)
        weight = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, batch["label"], pos_weight=weight)


class DuETTPretrainer(nn.Module):
    """Self-supervised pre-training of a :class:`DuETT`: mask one whole bin and one whole variable per stay and
    predict their values (MSE on observed cells) and presence (BCE):

        L = MSE_bin + w * BCE_bin + MSE_var + w * BCE_var,

    where the bin targets are read from the masked bin's row (width ``(D+1) d``) and the variable targets from the
    masked variable's column (width ``(T+1) d``). Variables observed in the masked bin are also dropped
    everywhere else with probability ``var_dropout``, so the bin cannot be filled in from the same variable.

    Args:
        model: the DuETT to pre-train (its weights are updated in place; fine-tune it afterwards).
        presence_weight: ``w`` (paper: 0.2).
        var_dropout: probability of dropping each variable observed in the masked bin (paper: 0.5).

    Shapes:
        batch: as for :class:`DuETT` (``label`` is not used).
    """

    def __init__(self, model: DuETT, presence_weight: float = 0.2, var_dropout: float = 0.5):
        super().__init__()
        self.model, self.presence_weight, self.var_dropout = model, presence_weight, var_dropout
        D, T, d = model.n_vars, model.n_bins, model.d_embed
        self.bin_head = nn.Linear((D + 1) * d, 2 * D)            # values and presence logits of the bin
        self.var_head = nn.Linear((T + 1) * d, 2 * T)            # values and presence logits of the variable

    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        values, counts = batch["values"], batch["counts"]
        B, T, D = values.shape
        rows = torch.arange(B, device=values.device)
        t, v = torch.randint(0, T, (B,), device=values.device), torch.randint(0, D, (B,), device=values.device)
        y_bin, m_bin = values[rows, t], (counts[rows, t] > 0).float()                  # (B, D)
        y_var, m_var = values[rows, :, v], (counts[rows, :, v] > 0).float()            # (B, T)
        drop = (torch.rand(B, D, device=values.device) < self.var_dropout) & (m_bin > 0)
        keep = (~drop).float()[:, None, :]                                             # (B, 1, D)
        inputs = dict(batch, values=values * keep, counts=counts * keep)
        psi = self.model.encode(inputs, F.one_hot(t, T).bool(), F.one_hot(v, D).bool())   # (B, T+1, D+1, d)
        bin_out = self.bin_head(psi[rows, t].flatten(1))                               # (B, 2D)
        var_out = self.var_head(psi[rows, :, v].flatten(1))                            # (B, 2T)
        w = self.presence_weight
        loss = F.mse_loss(bin_out[:, :D] * m_bin, y_bin * m_bin)
        loss = loss + w * F.binary_cross_entropy_with_logits(bin_out[:, D:], m_bin)
        loss = loss + F.mse_loss(var_out[:, :T] * m_var, y_var * m_var)
        return loss + w * F.binary_cross_entropy_with_logits(var_out[:, T:], m_var)


@torch.no_grad()
def predict_proba(model: DuETT, tensors: Mapping[str, torch.Tensor], batch_size: int = 512) -> np.ndarray:
    """Predicted death probabilities, shape ``(n,)``, in evaluation mode (no masking, no dropout)."""
    model.eval()
    device = next(model.parameters()).device
    out = [torch.sigmoid(model({k: v.to(device) for k, v in batch.items()})).float().cpu()
           for batch in TensorBatches(tensors, batch_size, shuffle=False)]
    return torch.cat(out).numpy()


@torch.no_grad()
def attention_maps(model: DuETT, tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Attention weights averaged over stays and heads, per layer.

    Returns:
        ``{"event": (L, D+1, D+1), "time": (L, T+1, T+1)}``.
    """
    model.eval()
    device = next(model.parameters()).device
    weights: dict = {}
    model.encode({k: v.to(device) for k, v in tensors.items()}, weights=weights)
    return {k: torch.stack([w.mean(dim=(0, 1)) for w in ws]).cpu().numpy() for k, ws in weights.items()}


class KeepBest:
    """A :func:`l6kit.train.fit` callback that scores the model on validation stays after every epoch and keeps a
    copy of the best weights (the official code keeps the top checkpoints by validation AUPRC).

    Args:
        model: the DuETT being trained.
        tensors: validation stays (:meth:`BinnedStays.tensors`).
        metric: ``"auprc"`` (average precision) or ``"auroc"``.

    Attributes:
        best: the best score so far; ``scores``: one per epoch.
    """

    def __init__(self, model: DuETT, tensors: Mapping[str, torch.Tensor], metric: str = "auprc"):
        from sklearn.metrics import average_precision_score, roc_auc_score

        self.model, self.tensors = model, tensors
        self.score_fn = {"auprc": average_precision_score, "auroc": roc_auc_score}[metric]
        self.best, self.scores, self.state = -np.inf, [], None

    def __call__(self, state: dict) -> bool:
        score = float(self.score_fn(self.tensors["label"].numpy(), predict_proba(self.model, self.tensors)))
        self.scores.append(score)
        if score > self.best:
            self.best = score
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return False

    def restore(self) -> DuETT:
        """Load the best weights into the model (if any epoch was scored) and return it."""
        if self.state is not None:
            self.model.load_state_dict(self.state)
        return self.model
