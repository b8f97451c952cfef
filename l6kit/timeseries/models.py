"""The black-box model of the time-series attribution papers: a GRU that predicts the label at every step.

References:
    K. K. Leung, C. Rooke, J. Smith, S. Zuberi, M. Volkovs. Temporal Dependencies in Feature Importance for
    Time Series Prediction. ICLR 2023, Sec. 5 (a one-layer GRU, hidden size 200, trained on every step).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from l6kit.train import History, TensorBatches, fit


class GRUClassifier(nn.Module):
    """Many-to-many GRU: ``p(y_t = 1 | x_{1:t})`` at every step ``t`` (causal by construction).

    Args:
        n_features: input features F.
        hidden: GRU hidden size.
        layers: stacked GRU layers.
        dropout: dropout before the output layer.

    Shapes:
        forward: ``(B, F, T)`` -> probabilities ``(B, T)``; :meth:`logits` the same before the sigmoid.
    """

    def __init__(self, n_features: int, hidden: int = 200, layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.rnn = nn.GRU(n_features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.sigmoid = nn.Sigmoid()       # a module, so captum's DeepLift applies its rescale rule

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores, shape ``(B, T)``."""
        h, _ = self.rnn(x.transpose(1, 2))                 # (B, T, hidden)
        return self.head(h)[..., 0]                        # (B, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities ``p(y_t = 1 | x_{1:t})``, ``(B, F, T)`` -> ``(B, T)``."""
        return self.sigmoid(self.logits(x))

    def loss(self, batch) -> torch.Tensor:
        """Binary cross-entropy over every step of a batch ``(x (B, F, T), y (B, T))``."""
        x, y = batch
        return nn.functional.binary_cross_entropy_with_logits(self.logits(x), y.float())


def loader(x: np.ndarray, y: np.ndarray, *, batch_size: int = 100, shuffle: bool = True) -> TensorBatches:
    """Batches of ``(x (b, F, T), y (b, T))`` float32 tensors (the shared :class:`l6kit.train.TensorBatches`)."""
    return TensorBatches((torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)),
                         batch_size=batch_size, shuffle=shuffle)


def train_classifier(x: np.ndarray, y: np.ndarray, *, hidden: int = 200, layers: int = 1, dropout: float = 0.0,
                     epochs: int = 30, lr: float = 1e-3, weight_decay: float = 0.0, batch_size: int = 100,
                     device: str = "cpu", seed: int = 0, progress: bool | None = None
                     ) -> tuple[GRUClassifier, History]:
    """Train a :class:`GRUClassifier` on ``x (n, F, T)``, ``y (n, T)`` with :func:`l6kit.train.fit`.

    Args:
        progress: show :func:`~l6kit.train.fit`'s progress bar (None: only in a terminal).

    Returns:
        ``(model in eval mode, training history)``.
    """
    torch.manual_seed(seed)
    model = GRUClassifier(x.shape[1], hidden, layers, dropout)
    history = fit(model, loader(x, y, batch_size=batch_size), epochs=epochs, lr=lr, weight_decay=weight_decay,
                  device=device, seed=seed, progress=progress, desc="GRU")
    return model.eval(), history


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 1000) -> np.ndarray:
    """``model``'s probabilities for ``x (n, F, T)``, shape ``(n, T)`` (evaluated in batches, no gradients)."""
    model.eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(x, dtype=torch.float32)
    return np.concatenate([model(x[i:i + batch_size].to(device)).cpu().numpy()
                           for i in range(0, len(x), batch_size)])


def model_auroc(prob: np.ndarray, y: np.ndarray) -> float:
    """AUROC of per-step probabilities ``(n, T)`` against labels ``(n, T)``, all steps pooled."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(y).ravel(), np.asarray(prob).ravel()))
