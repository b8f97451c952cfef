"""Injective flows: a d-dimensional density pushed onto a learned d-dimensional manifold in R^D (d < D).

The model is ``x = g(z) = h(pad(z))`` with ``z ~ p_Z`` on R^d and ``h`` a bijection of R^D (or any
``embedding`` module mapping ``(n, d) -> (n, D)``). Its density on the manifold, with respect to the manifold's
d-dimensional volume, is

    log p(x) = log p_Z(z) - 1/2 log det(J^T J),   z = g^dagger(x),   J = dg/dz (shape D x d),

and training maximises it minus ``beta * ||x - g(g^dagger(x))||^2`` (the reconstruction pulls the data onto the
manifold, where the density formula applies).

Contract shared by the rectangular-flows and conformal-embedding-flows pages:

* an ``embedding`` is an ``nn.Module`` with ``forward(z) -> x`` (``(n, d) -> (n, D)``) and ``inverse(x) -> z``
  (a left inverse, ``(n, D) -> (n, d)``); a module returning ``(output, logdet)`` tuples (like
  :class:`~l6kit.generative.flows.Flow`) is accepted, its first element is used. :class:`PaddedFlow` wraps a
  square flow ``h`` into ``h o pad``. For ``logdet="analytic"`` the embedding also has
  ``half_logdet_jtj(z) -> (n,)`` (e.g. conformal embeddings, where it is ``d log lambda(z)``);
* a ``prior`` is any module/object with ``log_prob(z) -> (n,)`` and ``sample(n, generator=None) -> (n, d)``
  (:class:`~l6kit.generative.flows.StandardNormal`, :class:`DiagonalGaussian`, a low-dimensional ``Flow``,
  a fitted :class:`~l6kit.generative.two_step.GaussianMixtureDensity`);
* 1/2 log det(J^T J) is computed by :func:`exact_half_logdet` (d forward-mode Jacobian-vector products build
  J^T J, then a Cholesky factorization), by :func:`hutchinson_half_logdet` (its *gradient* is an unbiased
  stochastic estimate: Hutchinson's trace estimator with conjugate gradients; its value is exact only when
  ``d`` is small enough to afford it), by the embedding (``"analytic"``) or not at all (``"none"``: the
  two-step baseline that ignores the volume change).

All functions assume the embedding acts row by row (no interaction between the rows of a batch).

References:
    Caterini, Loaiza-Ganem, Pleiss, Cunningham, "Rectangular Flows for Manifold Learning", NeurIPS 2021.
    Brehmer, Cranmer, "Flows for simultaneous manifold learning and density estimation", NeurIPS 2020 (M-flows,
    the two-step baseline).
    Hutchinson, "A stochastic estimator of the trace of the influence matrix", 1989.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from l6kit.generative.layers import batch_tensor

LOGDET_METHODS = ("exact", "hutchinson", "none", "analytic")


def _first(out):
    return out[0] if isinstance(out, tuple) else out


class PaddedFlow(nn.Module):
    """The embedding ``h o pad``: zero-pad z from R^d to R^D, then apply a square flow h; its left inverse keeps
    the first d coordinates of ``h^{-1}(x)``.

    Args:
        flow: a bijection of R^D with ``forward``/``inverse`` returning ``(output, logdet)`` (a
            :class:`~l6kit.generative.flows.Flow`, e.g. ``realnvp(D)``).
        d, D: latent and ambient dimensions.

    Shapes:
        forward: ``(n, d) -> (n, D)``; inverse: ``(n, D) -> (n, d)``.
    """

    def __init__(self, flow: nn.Module, d: int, D: int):
        super().__init__()
        if not 0 < d < D:
            raise ValueError(f"need 0 < d < D, got d={d}, D={D}")
        self.flow, self.d, self.D = flow, d, D

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        pad = z.new_zeros(*z.shape[:-1], self.D - self.d)
        return _first(self.flow.forward(torch.cat([z, pad], dim=-1)))

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return _first(self.flow.inverse(x))[..., :self.d]


class DiagonalGaussian(nn.Module):
    """A Gaussian on R^d with learnable mean and per-coordinate log standard deviation (starts at N(0, I)).

    Shapes:
        log_prob: ``(n, d) -> (n,)``; sample: ``n -> (n, d)``.
    """

    def __init__(self, d: int):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(d))
        self.log_std = nn.Parameter(torch.zeros(d))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        u = (z - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * u ** 2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(n, self.mean.shape[0], generator=generator).to(self.mean.device)
        return self.mean + eps * torch.exp(self.log_std)


def _leaf(z: torch.Tensor) -> torch.Tensor:
    return z if z.requires_grad else z.detach().requires_grad_()


def jvps(decode, z: torch.Tensor, tangents, create_graph: bool = True, return_output: bool = False):
    """Jacobian-vector products J v of ``decode`` at each row of z, for each tangent v, by the double-backward
    trick: with g(w) = J^T w (a vector-Jacobian product, linear in w), J v is the gradient of g(w) . v in w.

    One forward pass serves every tangent. With ``create_graph`` (and gradients enabled) the products are
    differentiable with respect to z (when it requires grad) and the parameters of ``decode``; under
    ``torch.no_grad`` they still work and come back detached.
    (``torch.func.jvp`` gives the same numbers but was ~10x slower through coupling flows on CPU.)

    Shapes:
        z: ``(n, d)``; each tangent ``(n, d)``; returns a list of ``(n, D)`` (with ``return_output``, the pair
        ``(decode(z), list)``).
    """
    keep = create_graph and torch.is_grad_enabled()                    # under no_grad: plain tensors out
    with torch.enable_grad():
        zz = _leaf(z)
        out = decode(zz)
        w = torch.zeros_like(out, requires_grad=True)
        g = torch.autograd.grad(out, zz, w, create_graph=True)[0]
        cols = [torch.autograd.grad(g, w, v, create_graph=keep, retain_graph=True)[0] for v in tangents]
    if not keep:
        out, cols = out.detach(), [c.detach() for c in cols]
    return (out, cols) if return_output else cols


def jacobian_columns(decode, z: torch.Tensor, return_output: bool = False):
    """The Jacobian J = dg/dz at each row of z, one Jacobian-vector product per latent direction (differentiable
    with respect to z and to the parameters of ``decode``).

    Shapes:
        ``(n, d) -> (n, D, d)``; with ``return_output``, ``((n, D), (n, D, d))`` where the first is ``decode(z)``.
    """
    eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
    out, cols = jvps(decode, z, [eye[i].expand_as(z) for i in range(z.shape[-1])], return_output=True)
    jac = torch.stack(cols, dim=-1)
    return (out, jac) if return_output else jac


def cholesky_half_logdet(gram: torch.Tensor, jitter: float = 1e-6, retries: int = 6) -> torch.Tensor:
    """1/2 log det of symmetric positive-definite matrices, by Cholesky: sum(log diag L). If a factorization
    fails, ``jitter * 10^k * mean(diag)`` is added to the diagonal (k = 0, 1, ...) and it is retried.

    Shapes:
        ``(n, d, d) -> (n,)``.

    Raises:
        torch.linalg.LinAlgError: still not positive-definite after ``retries`` jittered attempts.
    """
    chol, info = torch.linalg.cholesky_ex(gram)
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).abs().clamp_min(1e-12)[..., None, None].detach()
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    for k in range(retries):
        if not bool((info > 0).any()):
            break
        chol, info = torch.linalg.cholesky_ex(gram + jitter * 10 ** k * scale * eye)
    if bool((info > 0).any()):
        raise torch.linalg.LinAlgError("J^T J is not positive-definite even with jitter")
    return torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum(-1)


def exact_half_logdet(decode, z: torch.Tensor, return_output: bool = False):
    """1/2 log det(J^T J) of ``decode`` at z, exactly: d JVPs give J, then Cholesky of J^T J (with jitter retries).

    Args:
        return_output: also return ``decode(z)`` from the same forward pass (saves one pass in training).

    Shapes:
        ``(n, d) -> (n,)``; with ``return_output``, ``((n,), (n, D))``.

    References:
        Caterini et al., NeurIPS 2021, Section 4.1 (exact method).
    """
    out, jac = jacobian_columns(decode, z, return_output=True)            # (n, D), (n, D, d)
    half = cholesky_half_logdet(jac.transpose(-1, -2) @ jac)
    return (half, out) if return_output else half


def batched_cg(matvec, b: torch.Tensor, tol: float = 1e-8, max_iter: int | None = None) -> torch.Tensor:
    """Solve A u = b for each row by conjugate gradients (A symmetric positive-definite, given by ``matvec``).

    Args:
        matvec: ``(n, d) -> (n, d)``, the product of each row's A with a vector.
        b: right-hand sides, ``(n, d)``.
        tol: stop when every residual norm is below ``tol * ||b||``.
        max_iter: at most this many iterations (default ``2 d``; exact arithmetic needs at most d).

    Shapes:
        ``(n, d) -> (n, d)``.
    """
    u = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rs = (r * r).sum(-1, keepdim=True)
    stop = (tol * b.norm(dim=-1, keepdim=True)) ** 2
    for _ in range(max_iter or 2 * b.shape[-1]):
        if bool((rs <= stop).all()):
            break
        ap = matvec(p)
        alpha = rs / (p * ap).sum(-1, keepdim=True).clamp_min(1e-30)
        u, r = u + alpha * p, r - alpha * ap
        rs_new = (r * r).sum(-1, keepdim=True)
        p = r + rs_new / rs.clamp_min(1e-30) * p
        rs = rs_new
    return u


def hutchinson_surrogate(decode, z: torch.Tensor, n_probes: int = 1, generator: torch.Generator | None = None,
                         cg_tol: float = 1e-8, probe: str = "rademacher") -> torch.Tensor:
    """A surrogate whose gradient is an unbiased estimate of the gradient of 1/2 log det(J^T J) (value meaningless).

    With A = J^T J, grad log det A = tr(A^{-1} grad A) = E[eps^T A^{-1} (grad A) eps] for probes with
    E[eps eps^T] = I (``probe``: ``"rademacher"`` signs, or ``"gaussian"``; with d = 1 Rademacher probes make the
    estimate exact). u = A^{-1} eps is found by conjugate gradients using only the products J v and J^T w
    (:func:`jvps`, reverse mode) without keeping a graph; then the surrogate
    1/2 mean_k (J u_k) . (J eps_k), with u_k held constant, has exactly that gradient (through z and the
    parameters).

    Shapes:
        ``(n, d) -> (n,)``.

    References:
        Caterini et al., NeurIPS 2021, Section 4.2 (stochastic gradients with Hutchinson and CG);
        Hutchinson 1989.
    """
    n = z.shape[0]
    zk = z.repeat(n_probes, 1)                                             # (K n, d): all probes at once
    with torch.enable_grad():
        z0 = zk.detach().requires_grad_()
        out = decode(z0)
        w = torch.zeros_like(out, requires_grad=True)
        g = torch.autograd.grad(out, z0, w, create_graph=True)[0]

        def matvec(v: torch.Tensor) -> torch.Tensor:                      # J^T J v, no graph kept
            jv = torch.autograd.grad(g, w, v, retain_graph=True)[0]
            return torch.autograd.grad(out, z0, jv, retain_graph=True)[0]

        if probe == "gaussian":
            eps = torch.randn(zk.shape, generator=generator).to(zk)
        else:
            eps = torch.randint(0, 2, zk.shape, generator=generator).to(zk) * 2 - 1
        u = batched_cg(matvec, eps, tol=cg_tol).detach()
    ju, je = jvps(decode, zk, [u, eps])                                   # J u, J eps: with a graph
    return 0.5 * (ju * je).sum(-1).reshape(n_probes, n).mean(0)


def hutchinson_half_logdet(decode, z: torch.Tensor, n_probes: int = 1, generator: torch.Generator | None = None,
                           exact_value_max_d: int = 64) -> torch.Tensor:
    """1/2 log det(J^T J) whose gradient is the stochastic estimate of :func:`hutchinson_surrogate`; its value
    is exact (computed without a graph) when ``d <= exact_value_max_d``, and 0 otherwise.

    Shapes:
        ``(n, d) -> (n,)``.
    """
    surrogate = hutchinson_surrogate(decode, z, n_probes, generator)
    if z.shape[-1] <= exact_value_max_d:
        with torch.no_grad():
            value = exact_half_logdet(decode, z.detach())
    else:
        value = torch.zeros_like(surrogate)
    return value + surrogate - surrogate.detach()


class InjectiveFlow(nn.Module):
    """x = g(z) = h(pad(z)) with z in R^d, x in R^D; a low-dimensional density ``prior`` on z.

    Args:
        embedding: ``forward(z) -> x`` ``(n, d) -> (n, D)`` and left inverse ``inverse(x) -> z`` (e.g.
            :class:`PaddedFlow`); for ``logdet="analytic"`` also ``half_logdet_jtj(z) -> (n,)``.
        prior: ``log_prob(z) -> (n,)``, ``sample(n, generator=None) -> (n, d)``; trained jointly if it has
            parameters.
        d, D: latent and ambient dimensions.
        logdet: how 1/2 log det(J^T J) enters: ``"exact"`` (:func:`exact_half_logdet`), ``"hutchinson"``
            (:func:`hutchinson_half_logdet`, ``n_probes`` probes per point), ``"analytic"``
            (``embedding.half_logdet_jtj``) or ``"none"`` (dropped: the two-step "TS" baseline).
        beta: weight of the reconstruction term ``||x - g(g^dagger(x))||^2``.
        alpha: weight of the negative log-likelihood term.
        detach_codes: compute the likelihood term on ``g^dagger(x)`` detached, so the embedding learns from the
            reconstruction only and the prior from the codes (M-flow style two-step gradients). Default: True
            exactly when ``logdet == "none"`` (otherwise the prior term alone would shrink the codes without
            limit).

    Shapes:
        encode: ``(n, D) -> (n, d)``; decode: ``(n, d) -> (n, D)``; half_logdet_jtj: ``(n, d) -> (n,)``;
        log_prob: ``(n, D) -> (n,)``; loss: batch ``(n, D)`` (or ``(x, ...)``) -> scalar; sample: ``n -> (n, D)``.

    References:
        Caterini et al., NeurIPS 2021 (rectangular flows, eq. for the objective);
        Brehmer & Cranmer, NeurIPS 2020 (M-flows).
    """

    def __init__(self, embedding: nn.Module, prior, d: int, D: int, logdet: str = "exact", beta: float = 50.0,
                 alpha: float = 1.0, n_probes: int = 1, detach_codes: bool | None = None):
        super().__init__()
        if logdet not in LOGDET_METHODS:
            raise ValueError(f"logdet must be one of {LOGDET_METHODS}, got {logdet!r}")
        self.embedding, self.prior = embedding, prior
        self.d, self.D, self.latent_dim = d, D, d
        self.logdet, self.beta, self.alpha, self.n_probes = logdet, beta, alpha, n_probes
        self.detach_codes = (logdet == "none") if detach_codes is None else detach_codes

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The left inverse g^dagger(x)."""
        return _first(self.embedding.inverse(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The embedding g(z)."""
        return _first(self.embedding(z))

    def half_logdet_jtj(self, z: torch.Tensor) -> torch.Tensor:
        """1/2 log det(J^T J) at z by the chosen method (zeros for ``"none"``)."""
        if self.logdet == "exact":
            return exact_half_logdet(self.decode, z)
        if self.logdet == "hutchinson":
            return hutchinson_half_logdet(self.decode, z, self.n_probes)
        if self.logdet == "analytic":
            return self.embedding.half_logdet_jtj(z)
        return z.new_zeros(z.shape[:-1])

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_Z(z) - 1/2 log det(J^T J) at z = g^dagger(x): the density on the manifold at the projection of x."""
        z = self.encode(x)
        if self.detach_codes:
            z = z.detach()
        return self.prior.log_prob(z) - self.half_logdet_jtj(z)

    def loss(self, batch) -> torch.Tensor:
        """Mean of ``-alpha log p(x) + beta ||x - g(g^dagger(x))||^2`` over the batch, for ``l6kit.train.fit``."""
        x = batch_tensor(batch)
        z = self.encode(x)
        if self.logdet == "exact" and not self.detach_codes:       # one forward pass for both terms
            half, x_rec = exact_half_logdet(self.decode, z, return_output=True)
            nll = -(self.prior.log_prob(z) - half)
        else:
            x_rec = self.decode(z)
            zl = z.detach() if self.detach_codes else z
            nll = -(self.prior.log_prob(zl) - self.half_logdet_jtj(zl))
        rec = ((x - x_rec) ** 2).sum(-1)
        return (self.alpha * nll + self.beta * rec).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples g(z), z from the prior."""
        return self.decode(self.prior.sample(n, generator=generator))
