"""Small building blocks shared by the generative models: MLPs, batch handling, an in-memory batch loader."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from l6kit.train import TensorBatches  # noqa: F401  (re-exported: the one in-memory batcher)

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


