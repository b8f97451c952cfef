"""Small building blocks shared by the generative models: MLPs, batch handling, an in-memory batch loader."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": nn.ELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh,
                                           "leaky_relu": nn.LeakyReLU}


def mlp(sizes: Sequence[int], activation: str = "elu") -> nn.Sequential:
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between layers (none after
    the last).

    Shapes:
        ``(..., sizes[0]) -> (..., sizes[-1])``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def batch_tensor(batch) -> torch.Tensor:
    """The data tensor of a batch: the batch itself, or its first element for ``(x, y, ...)`` tuples/lists."""
    return batch[0] if isinstance(batch, list | tuple) else batch


class TensorBatches:
    """Mini-batches of in-memory tensors, reshuffled on every pass — a fast stand-in for a ``DataLoader`` over
    a ``TensorDataset`` (no per-item indexing or collation).

    The order comes from ``torch.randperm`` with the global generator, which :func:`l6kit.train.fit` seeds
    per epoch, so training stays reproducible and resumable.

    Args:
        *tensors: tensors with the same first dimension ``n``.
        batch_size: rows per batch (the last batch may be smaller).
        shuffle: reshuffle at each pass.

    Yields:
        The batch of the single tensor, or a tuple of batches when several tensors were given.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int = 100, shuffle: bool = True):
        if not tensors or len({len(t) for t in tensors}) != 1:
            raise ValueError("give one or more tensors with the same number of rows")
        self.tensors, self.batch_size, self.shuffle = tensors, batch_size, shuffle

    def __len__(self) -> int:
        return -(-len(self.tensors[0]) // self.batch_size)

    def __iter__(self) -> Iterator:
        n = len(self.tensors[0])
        order = torch.randperm(n) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            parts = tuple(t[idx] for t in self.tensors)
            yield parts[0] if len(parts) == 1 else parts
