"""Differentially private SGD: per-sample gradients, three clipping rules, Gaussian noise, RDP accounting.

This module is the privacy family's one DP training step. It is used by the ``fair-dp``, ``proxyfl`` and
``fl-dp-histopathology`` pages.

Why not :func:`l6kit.train.fit`? ``fit`` back-propagates one *batch-mean* loss, but DP-SGD needs each
example's gradient separately: every per-sample gradient is clipped (bounding one person's influence) before
the batch sum receives Gaussian noise. We get the per-sample gradients with ``torch.func`` (``vmap`` of
``grad`` over a ``functional_call`` of the model), so the model needs no hooks and no opacus wrapping; opacus
is used only for privacy *accounting* (its ``RDPAccountant`` and ``get_noise_multiplier``), never re-written
here. :class:`DPSGD` is therefore the family's single DP loop: callers iterate over Poisson-sampled batches
(:func:`poisson_batches`) and call :meth:`DPSGD.step`.

Clipping rules (``rule=``):

* ``"per-sample"`` — DP-SGD (Abadi et al. 2016): ``g_i * min(1, C / ||g_i||)``. An optional per-sample
  ``bounds`` tensor gives DPSGD-F (Xu et al. 2021) its group-dependent bounds ``C_k``.
* ``"global"`` — DPSGD-Global (Esipova et al. 2023): ``g_i * C / Z`` if ``||g_i|| <= Z`` else dropped.
* ``"global-adapt"`` — DPSGD-Global-Adapt (Esipova et al. 2023, Alg. 2): ``g_i * C / Z`` if ``||g_i|| <= Z``
  else clipped to norm ``C``; ``Z`` adapts from a privately released count (see :func:`update_z`).

References:
    Abadi et al., "Deep Learning with Differential Privacy", CCS 2016 (Alg. 1).
    Mironov, "Rényi Differential Privacy", CSF 2017; opacus ``RDPAccountant``.
    Esipova, Ghomi, Luo, Cresswell, "Disparate Impact in Differential Privacy from Gradient Misalignment",
    ICLR 2023 (Sec. 5, Alg. 1-2).
    Xu, Du, Wu, "Removing Disparate Impact on Model Accuracy in Differentially Private SGD", KDD 2021.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from torch import nn
from torch.func import functional_call, grad, vmap

RULES = ("per-sample", "global", "global-adapt", "dpsgd-f")
_EPS = 1e-6


def per_sample_grads(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Gradient of each example's loss with respect to every trainable parameter.

    Args:
        model: any module; only parameters with ``requires_grad`` are differentiated.
        loss_fn: ``loss_fn(out, y)`` returning the per-sample loss (shape (B,)), e.g.
            ``nn.CrossEntropyLoss(reduction="none")``.
        x: inputs. y: targets.

    Shapes:
        x: (B, ...); y: (B, ...). Returns ``{name: (B, *param.shape)}``.

    Returns:
        Dict of per-sample gradients keyed by parameter name.
    """
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    buffers = {k: b.detach() for k, b in model.named_buffers()}
    if len(x) == 0:
        return {k: torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device) for k, p in params.items()}

    def one(p: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))   # (1, ...)
        return loss_fn(out, yi.unsqueeze(0)).sum()

    return vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)


def flat(grads: dict) -> torch.Tensor:
    """Concatenate a per-sample gradient dict into one matrix. Shapes: returns (B, P)."""
    return torch.cat([g.reshape(len(g), -1) for g in grads.values()], dim=1)


def grad_norms(grads: dict) -> torch.Tensor:
    """L2 norm of each example's full gradient (all parameters). Shapes: returns (B,)."""
    if not grads:
        return torch.zeros(0)
    sq = sum(g.reshape(len(g), -1).pow(2).sum(1) for g in grads.values())
    return sq.sqrt()


def clip_factors(norms: torch.Tensor, max_norm: float, rule: str = "per-sample", *, Z: float | None = None,
                 bounds: torch.Tensor | None = None, bound_max: float | None = None) -> tuple[torch.Tensor, float]:
    """Scale factor ``s_i`` with clipped ``g_i' = s_i g_i`` and the rule's sensitivity (max ``||g_i'||``).

    Args:
        norms: per-sample gradient norms, shape (B,).
        max_norm: C. rule: one of :data:`RULES`. Z: the global rules' scale threshold.
        bounds: per-sample bounds (B,) for ``"per-sample"``/``"dpsgd-f"`` (DPSGD-F's ``C_k``).
        bound_max: the largest bound *any* example could get (the sensitivity with ``bounds``). Pass it: the
            maximum over the batch under-states the sensitivity when the group with the largest bound is absent.

    Returns:
        (factors (B,), sensitivity) — the noise must be calibrated to ``sensitivity``.
    """
    if rule not in RULES:
        raise ValueError(f"unknown clipping rule {rule!r}; choose one of {RULES}")
    if rule in ("per-sample", "dpsgd-f"):
        c = torch.full_like(norms, float(max_norm)) if bounds is None else bounds.to(norms)
        if bounds is None:
            sens = float(max_norm)
        else:
            sens = float(bound_max) if bound_max is not None else float(c.max()) if len(c) else float(max_norm)
        return (c / (norms + _EPS)).clamp(max=1.0), sens
    if Z is None or Z <= 0:
        raise ValueError(f"rule {rule!r} needs a positive Z, got {Z}")
    scale = torch.full_like(norms, max_norm / Z)
    above = norms > Z
    if rule == "global":
        return torch.where(above, torch.zeros_like(norms), scale), float(max_norm)
    clipped = (max_norm / (norms + _EPS)).clamp(max=1.0)
    return torch.where(above, clipped, scale), float(max_norm)


def clip(grads: dict, max_norm: float, rule: str = "per-sample", **kw: Any) -> tuple[dict, dict]:
    """Clip per-sample gradients with ``rule`` (see :func:`clip_factors` for ``Z`` / ``bounds``).

    Shapes:
        grads: ``{name: (B, *shape)}``; returns the same shapes.

    Returns:
        (clipped dict, info) with info ``norms`` (B,), ``factors`` (B,), ``clipped`` (B,) bool — the
        sample was clipped (per-sample rules: factor < 1; global rules: ``||g_i|| > Z``) —, ``clipped_frac``
        and ``sensitivity`` (float).
    """
    info = _clip_info(grads, max_norm, rule, **kw)
    f = info["factors"]
    return {k: g * f.view(-1, *([1] * (g.dim() - 1))).to(g) for k, g in grads.items()}, info


def _clip_info(grads: dict, max_norm: float, rule: str, **kw: Any) -> dict:
    norms = grad_norms(grads)
    factors, sens = clip_factors(norms, max_norm, rule, **kw)
    clipped = norms > kw["Z"] if rule in ("global", "global-adapt") else factors < 1.0 - 1e-4
    frac = float(clipped.float().mean()) if len(norms) else 0.0
    return {"norms": norms, "factors": factors, "clipped": clipped, "sensitivity": sens, "clipped_frac": frac}


def privatize(grads: dict, max_norm: float, noise_multiplier: float, generator: torch.Generator | None = None,
              rule: str = "per-sample", expected_batch_size: int | None = None, **kw: Any) -> tuple[dict, dict]:
    """Clip, sum, add ``N(0, sigma^2 S^2)`` and divide by the batch size (Abadi et al. 2016, Alg. 1).

    ``S`` is the rule's sensitivity (``C``, or ``max_k C_k`` over all groups for DPSGD-F). The divisor is
    ``expected_batch_size`` when given (Poisson sampling, as opacus does), else the actual B.

    Shapes:
        grads: ``{name: (B, *shape)}``; returns ``{name: shape}``.

    Returns:
        (noisy mean gradient dict, info) — info is :func:`clip`'s plus ``clipped_mean`` (noise-free dict),
        ``raw_mean`` (unclipped mean dict), ``std`` (noise std on the sum) and ``divisor``.
    """
    info = _clip_info(grads, max_norm, rule, **kw)
    f = info["factors"]
    n = max(expected_batch_size or 0, 0) or max(len(f), 1)
    std = noise_multiplier * info["sensitivity"] if noise_multiplier > 0 else 0.0    # sigma = 0: non-private
    noisy, cmean, rmean = {}, {}, {}
    for k, g in grads.items():
        s = torch.tensordot(f.to(g), g, dims=1)                   # sum_i f_i g_i, shape of the parameter
        noise = _normal(s.shape, generator, s.device, s.dtype) * std
        noisy[k] = (s + noise) / n
        cmean[k] = s / n
        rmean[k] = g.sum(0) / n
    info.update(clipped_mean=cmean, raw_mean=rmean, std=std, divisor=n)
    return noisy, info


def _normal(shape: tuple, generator: torch.Generator | None, device: torch.device | str | None = None,
            dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal draws from ``generator`` (on the generator's own device), moved to ``device``."""
    src = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=src, dtype=dtype).to(device or src or "cpu")


def update_z(norms: torch.Tensor, Z: float, *, lr_z: float, tau: float, count_noise: float,
             generator: torch.Generator | None = None) -> float:
    """DPSGD-Global-Adapt's private update of the scale threshold Z (Esipova et al. 2023, Alg. 2).

    ``b = #{||g_i|| > tau Z} / B``, ``b~ = b + N(0, count_noise^2) / B``, ``Z <- Z exp(-lr_z + b~)``.
    The count has sensitivity 1, so it costs one Gaussian-mechanism step with multiplier ``count_noise``.

    Shapes:
        norms: (B,).
    """
    B = max(len(norms), 1)
    b = float((norms > tau * Z).sum()) / B
    b_noisy = b + float(_normal((), generator)) * count_noise / B
    return Z * math.exp(-lr_z + b_noisy)


def dpsgdf_bounds(norms: torch.Tensor, groups: torch.Tensor, num_groups: int, base_norm: float,
                  count_noise: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, float]:
    """DPSGD-F's per-group clipping bounds (Xu et al. 2021): ``C_k = C0 (1 + r_k / mean_k r_k)``.

    ``r_k`` = noisy fraction of group k's batch samples with ``||g_i|| > C0`` (counts get
    ``N(0, count_noise^2)``; sensitivity 1). Groups that clip more get a larger bound.

    Shapes:
        norms, groups: (B,).

    Returns:
        (per-sample bounds (B,), max over all groups' ``C_k`` — the sensitivity the noise must cover).
    """
    r = torch.ones(num_groups)
    for k in range(num_groups):
        in_k = groups == k
        m = float((norms[in_k] > base_norm).sum()) + float(_normal((), generator)) * count_noise
        o = float((norms[in_k] <= base_norm).sum()) + float(_normal((), generator)) * count_noise
        m, o = max(int(m), 0), max(int(o), 0)
        r[k] = m / (m + o) if m + o > 0 else 1.0
    ck = base_norm * (1 + r / (r.mean() + 1e-8))
    return ck[groups.long().cpu()].to(norms), float(ck.max())


def poisson_batches(n: int, sample_rate: float, steps: int, generator: torch.Generator | None = None
                    ) -> Iterator[torch.Tensor]:
    """Index tensors of Poisson-sampled batches (each example in with prob. ``sample_rate``), as RDP assumes."""
    for _ in range(steps):
        dev = generator.device if generator is not None else None
        yield torch.nonzero(torch.rand(n, generator=generator, device=dev) < sample_rate).flatten()


class DPSGD:
    """One DP-SGD optimiser step per call, with a chosen clipping rule and an opacus ``RDPAccountant``.

    Args:
        model: the module to train in place (plain SGD update ``p <- p - lr * g~``).
        lr: learning rate. max_norm: clipping bound C (DPSGD-F's C0). noise_multiplier: sigma.
        sample_rate: Poisson sampling rate q (used for accounting and as ``expected_batch_size = q n``
            when ``n_data`` is given in ``rule_kw``).
        rule: one of :data:`RULES`. delta: default delta for :meth:`epsilon`.
        rule_kw: ``Z`` (``"global"``, and the initial Z for ``"global-adapt"``); ``lr_z`` (0.1), ``tau``
            (0.7), ``count_noise`` (10) for the Z update and DPSGD-F's counts; ``num_groups`` for
            ``"dpsgd-f"``; ``n_data`` (dataset size, optional); ``generator`` (torch.Generator) for noise.

    References:
        Esipova et al. 2023 (Alg. 1-2); Abadi et al. 2016 (Alg. 1); Xu et al. 2021 (DPSGD-F).
    """

    def __init__(self, model: nn.Module, lr: float, max_norm: float, noise_multiplier: float,
                 sample_rate: float, rule: str = "per-sample", delta: float = 1e-5, **rule_kw: Any):
        if rule not in RULES:
            raise ValueError(f"unknown clipping rule {rule!r}; choose one of {RULES}")
        self.model, self.lr, self.max_norm = model, lr, max_norm
        self.noise_multiplier, self.sample_rate, self.rule, self.delta = noise_multiplier, sample_rate, rule, delta
        self.generator = rule_kw.pop("generator", None)
        n_data = rule_kw.pop("n_data", None)
        self.expected_batch_size = round(sample_rate * n_data) if n_data else None
        self.Z = rule_kw.pop("Z", None)
        self.lr_z = rule_kw.pop("lr_z", 0.1)
        self.tau = rule_kw.pop("tau", 0.7)
        self.count_noise = rule_kw.pop("count_noise", 10.0)
        self.num_groups = rule_kw.pop("num_groups", None)
        if rule_kw:
            raise ValueError(f"unknown DPSGD options {sorted(rule_kw)}")
        if rule in ("global", "global-adapt") and self.Z is None:
            raise ValueError(f"rule {rule!r} needs Z=")
        if rule == "dpsgd-f" and not self.num_groups:
            raise ValueError("rule 'dpsgd-f' needs num_groups=")
        self.accountant = RDPAccountant()
        self.steps = 0

    def step(self, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable, groups: torch.Tensor | None = None
             ) -> dict[str, Any]:
        """Per-sample grads -> clip -> noise -> SGD update; accounts the step (and any private count).

        Args:
            x, y: the (Poisson-sampled) batch. loss_fn: per-sample loss ``loss_fn(out, y) -> (B,)``.
            groups: group id per example for ``"dpsgd-f"`` (defaults to ``y``).

        Returns:
            dict with ``loss`` (mean batch loss), ``grad_norms`` (B,), ``factors`` (B,), ``clipped_frac``,
            ``Z`` (threshold used, or None), ``update`` / ``clipped_mean`` / ``raw_mean`` (dicts by name).
        """
        grads = per_sample_grads(self.model, loss_fn, x, y)
        norms = grad_norms(grads)
        kw: dict[str, Any] = {}
        if self.rule in ("global", "global-adapt"):
            kw["Z"] = self.Z
        if self.rule == "dpsgd-f":
            g = y if groups is None else groups
            kw["bounds"], kw["bound_max"] = dpsgdf_bounds(norms, g, self.num_groups, self.max_norm, self.count_noise,
                                                          self.generator)
        with torch.no_grad():
            loss = float(loss_fn(self.model(x), y).mean()) if len(x) else float("nan")
        update, info = privatize(grads, self.max_norm, self.noise_multiplier, self.generator, self.rule,
                                 self.expected_batch_size, **kw)
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in update:
                    p -= self.lr * update[name]
        z_used = self.Z
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        if self.rule == "global-adapt":
            self.Z = update_z(norms, self.Z, lr_z=self.lr_z, tau=self.tau, count_noise=self.count_noise,
                              generator=self.generator)
        self.steps += 1
        info.update(loss=loss, grad_norms=norms, Z=z_used, update=update)
        return info

    def epsilon(self, delta: float | None = None) -> float:
        """epsilon spent so far at ``delta`` (default the constructor's), including the private counts.

        ``inf`` when ``noise_multiplier == 0`` (non-private training through the same loop).
        """
        if self.noise_multiplier <= 0:
            return float("inf")
        acc = RDPAccountant()
        acc.history = list(self.accountant.history)
        if self.rule in ("global-adapt", "dpsgd-f") and self.steps:
            acc.history.append((self.count_noise, self.sample_rate, self.steps))
        return acc.get_epsilon(delta=self.delta if delta is None else delta) if acc.history else 0.0


def epsilon_for(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """epsilon of ``steps`` sampled-Gaussian steps (opacus ``RDPAccountant``)."""
    acc = RDPAccountant()
    acc.history = [(noise_multiplier, sample_rate, int(steps))]
    return float(acc.get_epsilon(delta=delta))


def noise_for_epsilon(target_eps: float, sample_rate: float, steps: int, delta: float) -> float:
    """Noise multiplier reaching ``target_eps`` after ``steps`` (opacus ``get_noise_multiplier``)."""
    return float(get_noise_multiplier(target_epsilon=target_eps, target_delta=delta, sample_rate=sample_rate,
                                      steps=int(steps), accountant="rdp"))


def noise_for_epsilon_with_counts(target_eps: float, sample_rate: float, steps: int, delta: float,
                                  count_noise: float, tol: float = 1e-3) -> float:
    """Gradient noise multiplier reaching ``target_eps`` when every step also releases a count with
    multiplier ``count_noise`` (Global-Adapt, DPSGD-F): bisection on sigma, epsilon from opacus's accountant.

    Raises:
        ValueError: if the counts alone already spend more than ``target_eps``.
    """
    def eps(sigma: float) -> float:
        acc = RDPAccountant()
        acc.history = [(sigma, sample_rate, int(steps)), (count_noise, sample_rate, int(steps))]
        return float(acc.get_epsilon(delta=delta))

    lo, hi = noise_for_epsilon(target_eps, sample_rate, steps, delta), 1.0
    hi = max(hi, lo)
    while eps(hi) > target_eps:
        hi *= 2
        if hi > 1e4:
            raise ValueError(f"the counts alone (count_noise={count_noise}) exceed epsilon={target_eps}")
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if eps(mid) > target_eps else (lo, mid)
    return hi


def fit_private(opt: DPSGD, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable, *, epochs: float,
                generator: torch.Generator | None = None, groups: torch.Tensor | None = None,
                callback: Callable[[int, torch.Tensor, dict], None] | None = None,
                progress: bool | None = None) -> list[float]:
    """Train with ``opt`` for ``epochs`` passes of Poisson-sampled batches (``round(epochs / q)`` steps).

    Args:
        opt: a :class:`DPSGD`. x, y: the whole training set (on the model's device).
        loss_fn: per-sample loss. generator: batch-sampling RNG. groups: per-example group ids (DPSGD-F).
        callback: ``callback(step, batch_indices, info)`` after every step (diagnostics).
        progress: tqdm switch (see :func:`l6kit.profiles.progress_disabled`).

    Shapes:
        x: (n, ...); y: (n,). Returns the per-step batch losses (length = steps).
    """
    from tqdm.auto import tqdm

    from l6kit.profiles import progress_disabled

    steps = max(round(epochs / opt.sample_rate), 1)
    losses = []
    batches = poisson_batches(len(x), opt.sample_rate, steps, generator)
    for t, idx in enumerate(tqdm(batches, total=steps, disable=progress_disabled(progress), leave=False)):
        idx = idx.to(x.device)
        info = opt.step(x[idx], y[idx], loss_fn, None if groups is None else groups[idx])
        if callback is not None:
            callback(t, idx, info)
        losses.append(info["loss"])
    return losses
