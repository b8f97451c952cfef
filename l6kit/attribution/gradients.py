"""Gradient baselines through captum: integrated gradients, DeepLIFT and gradient-SHAP.

As in the WinIT code, these explain the prediction at the *last* step, ``p(y_T | X_{1:T})``, with an all-zero
baseline (gradient-SHAP: a baseline distribution of zeros and the input itself, tiny noise), and the absolute
value of the attribution is the score.

References:
    M. Sundararajan, A. Taly, Q. Yan. Axiomatic attribution for deep networks. ICML 2017 (IG).
    A. Shrikumar, P. Greenside, A. Kundaje. Learning important features through propagating activation
    differences. ICML 2017 (DeepLIFT). S. Lundberg, S.-I. Lee. A unified approach to interpreting model
    predictions. NeurIPS 2017 (gradient-SHAP). N. Kokhlikyan et al. Captum. arXiv:2009.07896.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

METHODS = ("ig", "deeplift", "gradientshap")


class LastStep(nn.Module):
    """Wraps a per-step model: ``x (B, F, T) -> model(x)[:, -1]``, shape ``(B,)`` or ``(B, C)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, -1]


class CaptumAttribution:
    """A captum gradient method on the last-step prediction of a per-step model.

    Args:
        model: ``nn.Module`` mapping ``x (B, F, T)`` to probabilities ``(B, T)`` or ``(B, T, C)``.
        method: ``"ig"`` | ``"deeplift"`` | ``"gradientshap"``.
        n_steps: integration steps of IG.
        n_samples, stdevs: draws and input noise of gradient-SHAP (the official 50 and 1e-4).
        batch_size: series per captum call.
        seed: seed of gradient-SHAP's draws.

    Shapes:
        :meth:`attribute`: ``(B, F, T)`` -> ``|attribution|`` ``(B, F, T)``.
    """

    def __init__(self, model: nn.Module, method: str = "ig", *, n_steps: int = 50, n_samples: int = 50,
                 stdevs: float = 1e-4, batch_size: int = 100, seed: int = 0):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
        self.model, self.method = model, method
        self.n_steps, self.n_samples, self.stdevs = n_steps, n_samples, stdevs
        self.batch_size, self.seed = batch_size, seed

    def _explainer(self, wrapped: nn.Module):
        """The captum object for ``self.method`` around ``wrapped``."""
        from captum.attr import DeepLift, GradientShap, IntegratedGradients

        return {"ig": IntegratedGradients, "deeplift": DeepLift, "gradientshap": GradientShap}[self.method](wrapped)

    def attribute(self, inputs: torch.Tensor) -> torch.Tensor:
        """``|attribution|`` of the last-step prediction, ``(B, F, T)`` -> ``(B, F, T)``."""
        self.model.eval()
        wrapped = LastStep(self.model)
        explainer = self._explainer(wrapped)
        torch.manual_seed(self.seed)
        numpy_state = np.random.get_state()         # captum's GradientShap picks baselines with NumPy's global RNG
        np.random.seed(self.seed)
        try:
            return self._attribute(wrapped, explainer, inputs)
        finally:
            np.random.set_state(numpy_state)

    def _attribute(self, wrapped: nn.Module, explainer, inputs: torch.Tensor) -> torch.Tensor:
        """Run ``explainer`` on batches of ``inputs``; returns ``|attribution|`` shaped like ``inputs``."""
        out = []
        with torch.backends.cudnn.flags(enabled=False), warnings.catch_warnings():   # cuDNN: RNN backward in eval
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks")  # DeepLift's notice
            for i in range(0, len(inputs), self.batch_size):
                x = inputs[i:i + self.batch_size].detach().clone().requires_grad_(True)
                with torch.no_grad():
                    pred = wrapped(x)
                target = None if pred.dim() == 1 else pred.argmax(-1)
                if self.method == "ig":
                    attr = explainer.attribute(x, baselines=x * 0, target=target, n_steps=self.n_steps)
                elif self.method == "deeplift":
                    attr = explainer.attribute(x, baselines=x * 0, target=target)
                else:
                    attr = explainer.attribute(x, baselines=torch.cat([x * 0, x]).detach(), target=target,
                                               n_samples=self.n_samples, stdevs=self.stdevs)
                out.append(attr.detach().abs())
        return torch.cat(out)
