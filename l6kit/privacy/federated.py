"""Federated learning without and with a server: client splits, DP local training, FedAvg and ProxyFL rounds.

The privacy family's one federated module. It holds

* :func:`majority_split` — the "majority class percent" non-IID partition of ProxyFL (Kalra et al. 2023);
* :class:`Client` — one participant: an optional **private** model (never shared, any architecture, trained
  without noise) and an optional **shared** model (the proxy of ProxyFL/FML, or the model of FedAvg/AvgPush,
  trained with DP-SGD so that everything that leaves the client is (eps, delta)-DP by post-processing).
  With both models present the two learn from each other by deep mutual learning (Zhang et al. 2018);
* :func:`exponential_peer` / :func:`mix` — the exchange: a time-varying directed exponential graph (one send,
  one receive per client and round) or a central average;
* :func:`simulate` — all clients in one process (the book's ``ci`` run). :mod:`l6kit.privacy.distributed`
  runs the very same :class:`Client` objects, one ``torch.distributed`` process each;
* :func:`average_models` / :func:`fedavg` — plain FedAvg, generic over models and data loaders (reused by
  other pages of the family).

References:
    Kalra, Wen, Cresswell, Volkovs, Tizhoosh, "Decentralized federated learning through proxy model sharing",
    Nature Communications 14, 2899 (2023) (Sec. "Methods", Alg. 1; eqs. for L_priv and L_proxy).
    McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data", AISTATS 2017.
    Zhang, Xiang, Hospedales, Lu, "Deep Mutual Learning", CVPR 2018.
    Assran et al., "Stochastic Gradient Push for Distributed Deep Learning", ICML 2019 (exponential graph).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from l6kit.privacy.dp import per_sample_grads, privatize

METHODS = ("local", "fedavg", "avgpush", "fml", "proxyfl")
LABELS = {"local": "Local (private only)", "fedavg": "DP FedAvg", "avgpush": "DP AvgPush", "fml": "FML (private)",
          "proxyfl": "ProxyFL (private)"}
HAS_PRIVATE = ("local", "fml", "proxyfl")
HAS_SHARED = ("fedavg", "avgpush", "fml", "proxyfl")
CENTRAL = ("fedavg", "fml")          # a server averages the shared models
PEER = ("avgpush", "proxyfl")        # peers exchange over the exponential graph


# --- data ---------------------------------------------------------------------------------------------------

def majority_split(y_train: np.ndarray, y_test: np.ndarray, n_clients: int, n_train: int, n_test: int,
                   majority_frac: float, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """ProxyFL's non-IID partition: client i draws ``majority_frac`` of its examples from class ``i mod K``
    and the rest uniformly from the other classes; its test set follows the same mixture.

    Args:
        y_train, y_test: labels of the train and test pools. n_clients: clients. n_train, n_test: examples per
            client. majority_frac: share of the majority class (the paper: 0.8). rng: numpy generator.

    Shapes:
        y_train: (N,); y_test: (M,). Returns one dict per client with ``train`` (n_train,), ``test`` (n_test,)
        pool indices (disjoint across clients) and ``majority`` (int).

    Raises:
        ValueError: a pool runs out of examples.
    """
    classes = np.unique(y_train)
    out: list[dict[str, Any]] = [{"majority": int(classes[i % len(classes)])} for i in range(n_clients)]
    for key, y, n in (("train", y_train, n_train), ("test", y_test, n_test)):
        free = np.ones(len(y), bool)
        order = rng.permutation(len(y))
        for c in out:
            n_major = round(majority_frac * n)
            major = [j for j in order if free[j] and y[j] == c["majority"]][:n_major]
            free[major] = False
            minor = [j for j in order if free[j] and y[j] != c["majority"]][:n - n_major]
            free[minor] = False
            if len(major) < n_major or len(minor) < n - n_major:
                raise ValueError(f"the {key} pool is too small for {n_clients} clients x {n} examples")
            c[key] = rng.permutation(np.array(major + minor, dtype=np.int64))
    return out


# --- models -------------------------------------------------------------------------------------------------

def make_model(arch: str, shape: Sequence[int], num_classes: int, hidden: int = 32) -> nn.Module:
    """Small classifiers: ``"mlp"`` (flatten -> hidden -> K, ReLU), ``"mlp2"`` (two hidden layers of
    ``2*hidden`` and ``hidden``) or ``"cnn"`` (two 3x3 conv + pool blocks of 16/32 channels -> K).

    Shapes:
        shape: (C, H, W) of one input. The model maps (B, C, H, W) -> (B, K).
    """
    c, h, w = shape
    if arch == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    if arch == "mlp2":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, hidden),
                             nn.ReLU(), nn.Linear(hidden, num_classes))
    if arch == "cnn":
        side = (h // 2) // 2                                              # two 2x2 max-pools ("same" convs)
        return nn.Sequential(nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(32 * side * side, num_classes))
    raise ValueError(f"unknown architecture {arch!r}; allowed: mlp, mlp2, cnn")


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- accounting ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _rdp_one_step(noise_multiplier: float, sample_rate: float) -> tuple[float, ...]:
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp

    return tuple(compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
                             orders=RDPAccountant.DEFAULT_ALPHAS))


def epsilon_after(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """epsilon of ``steps`` sampled-Gaussian steps, exactly as opacus's ``RDPAccountant`` computes it
    (same orders, same ``get_privacy_spent``), but with the one-step RDP curve cached: RDP adds up over
    steps, so a per-round epsilon costs one conversion instead of a fresh RDP evaluation (which takes ~1 s).
    Equals :func:`l6kit.privacy.dp.epsilon_for`."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import get_privacy_spent

    if steps <= 0:
        return 0.0
    rdp = np.asarray(_rdp_one_step(float(noise_multiplier), float(sample_rate))) * steps
    eps, _ = get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta)
    return float(eps)


# --- losses -------------------------------------------------------------------------------------------------

def dml_loss(out: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-sample deep-mutual-learning loss ``(1-alpha) CE(out, y) + alpha KL(p_teacher || p_out)``.

    ``target`` packs the label and the (detached) teacher logits so that it can pass through
    :func:`l6kit.privacy.dp.per_sample_grads`: column 0 is the label, columns 1.. the teacher's logits (no
    teacher columns = plain cross-entropy).

    Shapes:
        out: (B, K); target: (B, 1) or (B, 1 + K). Returns (B,).
    """
    ce = F.cross_entropy(out, target[:, 0].long(), reduction="none")
    if target.shape[1] == 1 or alpha == 0:
        return ce
    log_p = F.log_softmax(out, dim=1)
    log_t = F.log_softmax(target[:, 1:], dim=1)
    kl = (log_t.exp() * (log_t - log_p)).sum(1)                           # KL(p_teacher || p_out)
    return (1 - alpha) * ce + alpha * kl


def pack_target(y: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
    """Label (and teacher logits) as one float matrix for :func:`dml_loss`. Shapes: (B,) [, (B, K)] -> (B, 1[+K])."""
    col = y.to(torch.float32).unsqueeze(1)
    return col if teacher is None else torch.cat([col, teacher.detach().to(torch.float32)], dim=1)


# --- one client ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Hyper:
    """Local-training settings shared by all clients.

    Attributes:
        lr: Adam learning rate of both models. batch_size: expected Poisson batch size. local_epochs: passes
            per round. alpha: DML weight. max_norm: DP clipping bound C. noise_multiplier: sigma (0 = no DP).
        delta: delta of (eps, delta).
    """

    lr: float = 1e-3
    batch_size: int = 250
    local_epochs: float = 1.0
    alpha: float = 0.5
    max_norm: float = 1.0
    noise_multiplier: float = 1.0
    delta: float = 1e-3


class Client:
    """One participant with an optional private model and an optional DP-trained shared model (proxy).

    Args:
        rank: client index. x_train, y_train, x_test, y_test: the client's data (on its device).
        private: the private model or None. shared: the shared model or None. hyper: :class:`Hyper`.
        seed: seeds this client's batch sampling and DP noise (independent of every other client).

    Shapes:
        x_*: (n, C, H, W); y_*: (n,).
    """

    def __init__(self, rank: int, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                 y_test: torch.Tensor, private: nn.Module | None, shared: nn.Module | None, hyper: Hyper, seed: int):
        self.rank, self.hyper = rank, hyper
        self.x, self.y, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.private, self.shared = private, shared
        dev = x_train.device
        self.batch_gen = torch.Generator(device="cpu").manual_seed(seed * 7919 + 2 * rank)
        self.noise_gen = torch.Generator(device=dev).manual_seed(seed * 7919 + 2 * rank + 1)
        self.opt_private = torch.optim.Adam(private.parameters(), lr=hyper.lr) if private is not None else None
        self.opt_shared = torch.optim.Adam(shared.parameters(), lr=hyper.lr) if shared is not None else None
        self.q = min(hyper.batch_size / len(self.y), 1.0)
        self.dp_steps = 0

    def local_train(self) -> float:
        """One round of local training (``round(local_epochs / q)`` Poisson batches).

        Each batch: the private model takes an Adam step on its DML loss (teacher: the shared model), and the
        shared model takes a DP-SGD step — per-sample clip, Gaussian noise (:func:`~l6kit.privacy.dp.privatize`)
        — then Adam on the noisy gradient (post-processing) with the private model as teacher.

        Returns:
            Mean private (else shared) batch loss.
        """
        h, losses = self.hyper, []
        steps = max(round(h.local_epochs / self.q), 1)
        for _ in range(steps):
            idx = torch.nonzero(torch.rand(len(self.y), generator=self.batch_gen) < self.q).flatten()
            idx = idx.to(self.x.device)
            xb, yb = self.x[idx], self.y[idx]
            with torch.no_grad():
                t_priv = self.private(xb) if self.private is not None and len(idx) else None
                t_shared = self.shared(xb) if self.shared is not None and len(idx) else None
            if self.private is not None and len(idx):
                alpha = h.alpha if t_shared is not None else 0.0
                loss = dml_loss(self.private(xb), pack_target(yb, t_shared), alpha).mean()
                self.opt_private.zero_grad()
                loss.backward()
                self.opt_private.step()
                losses.append(float(loss.detach()))
            if self.shared is not None:
                loss = self._dp_step(xb, yb, t_priv, t_shared)
                losses += [loss] if self.private is None and len(idx) else []
        return float(np.mean(losses)) if losses else float("nan")

    def _dp_step(self, xb: torch.Tensor, yb: torch.Tensor, teacher: torch.Tensor | None,
                 logits: torch.Tensor | None) -> float:
        """One DP step of the shared model; returns its batch loss before the step (``logits``: its outputs)."""
        h = self.hyper
        target = pack_target(yb, teacher)
        loss_fn = lambda out, t: dml_loss(out, t, h.alpha)  # noqa: E731
        grads = per_sample_grads(self.shared, loss_fn, xb, target)
        noisy, _ = privatize(grads, h.max_norm, h.noise_multiplier, self.noise_gen,
                             expected_batch_size=max(round(self.q * len(self.y)), 1))
        self.opt_shared.zero_grad()
        for name, p in self.shared.named_parameters():
            p.grad = noisy[name].to(p)
        self.opt_shared.step()
        self.dp_steps += 1
        return float(loss_fn(logits, target).mean()) if logits is not None else float("nan")

    def shared_vector(self) -> torch.Tensor:
        """The shared model's parameters as one flat vector (what is sent). Shapes: (P,)."""
        return parameters_to_vector(self.shared.parameters()).detach().clone()

    def load_shared(self, vec: torch.Tensor) -> None:
        """Replace the shared model's parameters by ``vec`` (shape (P,)); the optimiser state is kept."""
        vector_to_parameters(vec.to(self.x.device), self.shared.parameters())

    def evaluate(self) -> float:
        """Accuracy on the client's own test set: the private model if any, else the shared one."""
        model = self.private if self.private is not None else self.shared
        with torch.no_grad():
            return float((model(self.x_test).argmax(1) == self.y_test).float().mean())

    def epsilon(self) -> float:
        """(eps at hyper.delta) spent by the shared model so far (opacus RDP accountant); 0 without DP steps."""
        h = self.hyper
        if self.shared is None or self.dp_steps == 0:
            return 0.0
        if h.noise_multiplier <= 0:
            return float("inf")
        return epsilon_after(h.noise_multiplier, self.q, self.dp_steps, h.delta)


# --- exchange -----------------------------------------------------------------------------------------------

def exponential_peer(rank: int, n: int, round_: int) -> tuple[int, int]:
    """(send-to, receive-from) of ``rank`` in round ``round_`` of the directed exponential graph:
    ``i -> i + 2^(r mod (floor(log2(n-1)) + 1)) mod n``."""
    if n < 2:
        return rank, rank
    hop = 2 ** (round_ % (int(math.floor(math.log2(n - 1))) + 1))
    return (rank + hop) % n, (rank - hop) % n


def mix(method: str, own: torch.Tensor, received: torch.Tensor | None = None,
        everyone: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """A client's new shared vector: ProxyFL replaces it by the received proxy, AvgPush averages own and
    received, FedAvg/FML take the mean over all clients (in rank order)."""
    if method == "proxyfl":
        return received
    if method == "avgpush":
        return (own + received) / 2
    if method in CENTRAL:
        return torch.stack(list(everyone)).mean(0)
    return own


def round_bytes(method: str, n_clients: int, shared_numel: int, bytes_per_value: int = 4) -> int:
    """Bytes moved in one round by all clients: peer methods send one model each; central methods upload
    and download one model each; local training sends nothing."""
    per_model = shared_numel * bytes_per_value
    return {"proxyfl": 1, "avgpush": 1, "fedavg": 2, "fml": 2}.get(method, 0) * n_clients * per_model


def simulate(clients: Sequence[Client], method: str, rounds: int, progress: bool | None = None) -> pd.DataFrame:
    """Run ``rounds`` rounds of ``method`` with every client in this process.

    Returns:
        Long DataFrame ``round, client, accuracy, epsilon, bytes`` (bytes = all clients' traffic that round).
    """
    from tqdm.auto import tqdm

    from l6kit.profiles import progress_disabled

    n, rows = len(clients), []
    numel = n_params(clients[0].shared) if method in HAS_SHARED else 0
    for r in tqdm(range(rounds), disable=progress_disabled(progress), leave=False, desc=method):
        for c in clients:
            c.local_train()
        if method in HAS_SHARED:
            vecs = [c.shared_vector() for c in clients]
            for i, c in enumerate(clients):
                c.load_shared(mix(method, vecs[i], vecs[exponential_peer(i, n, r)[1]], vecs))
        rows += [{"round": r + 1, "client": c.rank, "accuracy": c.evaluate(), "epsilon": c.epsilon(),
                  "bytes": round_bytes(method, n, numel)} for c in clients]
    return pd.DataFrame(rows)


# --- generic FedAvg -----------------------------------------------------------------------------------------

def average_models(models: Sequence[nn.Module], weights: Sequence[float] | None = None,
                   into: nn.Module | None = None) -> nn.Module:
    """Weighted parameter average of same-architecture ``models`` (floating buffers averaged too), written
    into ``into`` (default: the first model). Weights default to equal and are normalised."""
    w = torch.tensor([1.0] * len(models) if weights is None else list(weights), dtype=torch.float64)
    w = w / w.sum()
    target = models[0] if into is None else into
    states = [m.state_dict() for m in models]
    new = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            new[k] = sum(float(wi) * s[k].to(torch.float64) for wi, s in zip(w, states, strict=True)).to(v.dtype)
        else:
            new[k] = v.clone()
    target.load_state_dict(new)
    return target


def fedavg(model: nn.Module, client_data: Sequence[Any], local_update: Callable[[nn.Module, Any, int], None],
           rounds: int, weights: Sequence[float] | None = None,
           callback: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """FedAvg (McMahan et al. 2017, Alg. 1) over any model and any per-client data (loaders, tensors, ...).

    Each round every client starts from a copy of the global ``model``, ``local_update(local_model, data,
    round)`` trains it in place (plain, DP or anything else), and the global model becomes the weighted
    average (:func:`average_models`; weights e.g. client sizes). ``callback(round, model)`` after each round.

    Returns:
        The global model (trained in place).
    """
    for r in range(rounds):
        locals_ = []
        for data in client_data:
            local = copy.deepcopy(model)
            local_update(local, data, r)
            locals_.append(local)
        average_models(locals_, weights, into=model)
        if callback is not None:
            callback(r, model)
    return model
