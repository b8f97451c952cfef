"""The one training loop: ``fit(model, loader, ...)``.

Every model in l6kit exposes ``loss(batch) -> scalar tensor``; ``fit`` does the rest:

* device ``"auto"`` (cuda > mps > cpu) and bf16 autocast on CUDA (no gradient scaler needed);
* seeding per epoch from ``(seed, epoch)``, so the batch order and dropout masks of epoch e are the same
  whether the run went straight through or was resumed;
* a tqdm progress bar (silent when stderr is not a terminal, e.g. CI logs);
* callbacks ``cb(state) -> bool | None`` after each epoch; returning True stops training (early stopping);
* a checkpoint after every epoch, written atomically (temporary file, then rename), and resumption from it:
  a run killed at any moment restarts from its last completed epoch and ends with the same parameters as an
  uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from l6kit.profiles import progress_disabled, resolve_device


@dataclasses.dataclass
class History:
    """What :func:`fit` returns.

    Attributes:
        losses: mean training loss per completed epoch, shape ``(epochs_run,)``.
        epochs_run: epochs completed in total (including those before a resume).
        resumed_from: the epoch the run resumed after (0 when it started fresh).
        stopped_early: a callback asked to stop.
        device: the device used.
    """

    losses: list[float]
    epochs_run: int
    resumed_from: int = 0
    stopped_early: bool = False
    device: str = "cpu"


def fit(model: torch.nn.Module, loader: Iterable, *, epochs: int, lr: float = 1e-3, device: str = "auto",
        seed: int = 0, optimizer: str = "adam", weight_decay: float = 0.0, grad_clip: float | None = None,
        amp: bool = True, callbacks: Sequence[Callable[[dict[str, Any]], bool | None]] = (),
        ckpt: str | os.PathLike | None = None, progress: bool | None = None, desc: str = "train") -> History:
    """Train ``model`` by minimising ``model.loss(batch)`` over ``loader`` for ``epochs`` epochs.

    Args:
        model: a module with ``loss(batch) -> scalar tensor``; batches are moved to the device (tensors,
            or tuples/lists/dicts of tensors).
        loader: an iterable of batches, re-iterated every epoch (e.g. a ``DataLoader`` with ``shuffle=True``;
            its order is reproducible because the global torch RNG is re-seeded at every epoch).
        epochs: total number of epochs (a resumed run continues up to this number).
        lr, weight_decay: optimiser settings.
        device: ``"auto"`` | ``"cpu"`` | ``"cuda"`` | ``"mps"``.
        seed: base seed; epoch e runs with seed ``seed * 100_003 + e``.
        optimizer: ``"adam"`` | ``"adamw"`` | ``"sgd"``.
        grad_clip: max gradient norm, or None.
        amp: bf16 autocast when the device is CUDA.
        callbacks: called after each epoch with ``{"epoch", "loss", "model", "history"}``; True stops.
        ckpt: checkpoint path; if it exists the run resumes from it, and it is rewritten after each epoch.
        progress: show a progress bar (None: see :func:`l6kit.profiles.progress_disabled`).
        desc: the progress bar's label.

    Returns:
        The :class:`History`.
    """
    dev = resolve_device(device)
    model.to(dev)
    opt = _make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    history = History(losses=[], epochs_run=0, device=dev)
    if ckpt is not None and Path(ckpt).exists():
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history.losses = [float(v) for v in state["losses"]]
        history.epochs_run = history.resumed_from = int(state["epoch"])
    use_amp = amp and dev.startswith("cuda")
    bar = tqdm(range(history.epochs_run, epochs), desc=desc, unit="epoch", disable=progress_disabled(progress),
               initial=history.epochs_run, total=epochs)
    for epoch in bar:
        _seed_epoch(seed, epoch)
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            batch = _to_device(batch, dev)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                loss = model.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            total, count = total + float(loss.detach()), count + 1
        history.losses.append(total / max(count, 1))
        history.epochs_run = epoch + 1
        bar.set_postfix(loss=f"{history.losses[-1]:.4g}")
        if ckpt is not None:
            save_checkpoint(ckpt, model, opt, history)
        state = {"epoch": epoch + 1, "loss": history.losses[-1], "model": model, "history": history}
        if any(bool(cb(state)) for cb in callbacks):
            history.stopped_early = True
            break
    bar.close()
    return history


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    history: History) -> None:
    """Write model, optimiser and history to ``path`` atomically (temporary file in the same folder, then
    ``os.replace``), so a crash never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "losses": torch.tensor(history.losses, dtype=torch.float64),
                    "epoch": history.epochs_run}, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


class TensorBatches:
    """Mini-batches of in-memory tensors, reshuffled on every pass: a fast stand-in for a ``DataLoader`` over a
    ``TensorDataset`` (no per-item indexing or collation, which dominates for tiny models).

    The order comes from ``torch.randperm`` on the global generator, which :func:`fit` seeds per epoch, so
    training stays reproducible and resumable.

    Args:
        data: a tensor ``(n, ...)``, a tuple/list of tensors, or a dict ``name -> (n, ...)``; all with ``n`` rows.
        batch_size: rows per batch (the last batch may be smaller).
        shuffle: reshuffle at each pass.

    Yields:
        Batches with the structure of ``data``: a tensor ``(b, ...)``, a tuple of them, or a dict of them.
    """

    def __init__(self, data: Any, batch_size: int = 100, shuffle: bool = True):
        parts = list(data.values()) if isinstance(data, dict) else list(data) \
            if isinstance(data, list | tuple) else [data]
        if not parts or len({len(t) for t in parts}) != 1:
            raise ValueError("give one or more tensors with the same number of rows")
        self.data, self.n, self.batch_size, self.shuffle = data, len(parts[0]), batch_size, shuffle

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.n) if self.shuffle else torch.arange(self.n)
        for start in range(0, self.n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if isinstance(self.data, dict):
                yield {k: v[idx] for k, v in self.data.items()}
            elif isinstance(self.data, list | tuple):
                yield type(self.data)(t[idx] for t in self.data)
            else:
                yield self.data[idx]


class EarlyStopping:
    """Callback: stop when the loss has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, patience: int = 5, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.bad = float("inf"), 0

    def __call__(self, state: dict[str, Any]) -> bool:
        if state["loss"] < self.best - self.min_delta:
            self.best, self.bad = state["loss"], 0
        else:
            self.bad += 1
        return self.bad >= self.patience


def _make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    makers = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    if name not in makers:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(makers)}")
    return makers[name](params, lr=lr, weight_decay=weight_decay)


def _seed_epoch(seed: int, epoch: int) -> None:
    s = seed * 100_003 + epoch
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def _to_device(batch: Any, device: str) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch
