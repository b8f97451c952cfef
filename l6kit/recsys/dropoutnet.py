"""DropoutNet: one model for warm and cold-start recommendation, trained on top of a latent model (WMF).

Three pieces:

* :class:`WMF` — weighted matrix factorisation for implicit feedback (Hu, Koren & Volinsky 2008), fitted by
  closed-form alternating least squares in numpy. Its user/item factors are the *preference* inputs.
* :class:`DropoutNet` — two MLP towers ``f_U([U_u, Φᵁ_u])`` and ``f_V([V_v, Φⱽ_v])`` trained to reproduce
  WMF's scores ``U_u·V_v``, with **input dropout**: in training a fraction ``p`` of the rows get their
  preference part set to zero, so the towers learn to score from content alone. A cold item (no interactions)
  is scored with a zero preference input — the same situation the dropped-out rows simulated.
* :func:`cold_start_data` — generated implicit feedback where item content partly determines preference, with
  a popularity skew and noise, for the ``ci`` profile; plus :func:`read_citeulike` for the paper's data.

References:
    M. Volkovs, G. Yu, T. Poutanen. DropoutNet: Addressing Cold Start in Recommender Systems. NIPS 2017
    (Sec. 3: the objective, eq. 2; Sec. 3.1 input dropout; Sec. 3.2 inference for cold users/items).
    Y. Hu, Y. Koren, C. Volinsky. Collaborative Filtering for Implicit Feedback Datasets. ICDM 2008 (WMF).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from tqdm.auto import tqdm

from l6kit.profiles import progress_disabled


# -- weighted matrix factorisation --------------------------------------------------------------------------
class WMF:
    """Weighted matrix factorisation for implicit feedback, fitted by alternating least squares.

    Minimises ``Σ_{u,i} c_ui (p_ui - x_u·y_i)² + reg (‖X‖² + ‖Y‖²)`` with preference ``p_ui = 1[r_ui > 0]``
    and confidence ``c_ui = 1 + alpha r_ui`` over *all* user-item pairs (missing ones have ``c = 1, p = 0``).
    Each half-step is the exact minimiser ``x_u = (YᵀY + alpha Yᵀ diag(r_u) Y + reg I)⁻¹ Yᵀ c_u`` (Hu et al.,
    eq. 4), computed for a block of users at once.

    Args:
        factors: latent dimension k.
        alpha: confidence scale.
        reg: L2 regularisation.
        iterations: ALS sweeps (users then items).
        seed: seed of the initial item factors.
        progress: show a progress bar (None: l6kit's default).

    Attributes:
        user_factors_: ``(n_users, k)``; item_factors_: ``(n_items, k)``; loss_: objective after each sweep.

    References:
        Hu, Koren & Volinsky, ICDM 2008, Sec. 4, eqs. 3-4.
    """

    def __init__(self, factors: int = 32, alpha: float = 20.0, reg: float = 0.05, iterations: int = 15,
                 seed: int = 0, progress: bool | None = None):
        self.factors, self.alpha, self.reg, self.iterations = factors, alpha, reg, iterations
        self.seed, self.progress = seed, progress

    def fit(self, R: sp.spmatrix) -> WMF:
        """Fit to the interaction matrix ``R`` (``(n_users, n_items)``, non-negative counts). Returns self."""
        R = sp.csr_matrix(R, dtype=np.float64)
        Rt = R.T.tocsr()
        rng = np.random.default_rng(self.seed)
        Y = rng.normal(0.0, 0.01, (R.shape[1], self.factors))
        X = np.zeros((R.shape[0], self.factors))
        self.loss_ = []
        for _ in tqdm(range(self.iterations), desc="WMF", disable=progress_disabled(self.progress)):
            X = als_half_step(R, Y, self.alpha, self.reg)
            Y = als_half_step(Rt, X, self.alpha, self.reg)
            self.loss_.append(wmf_loss(R, X, Y, self.alpha, self.reg))
        self.user_factors_, self.item_factors_ = X, Y
        return self

    def scores(self) -> np.ndarray:
        """Predicted preferences ``X Yᵀ``, shape ``(n_users, n_items)``."""
        return self.user_factors_ @ self.item_factors_.T


def als_half_step(R: sp.csr_matrix, Y: np.ndarray, alpha: float, reg: float, block: int = 2**22) -> np.ndarray:
    """Solve for every row factor of ``R`` with the column factors ``Y`` fixed (closed form).

    Shapes:
        R: ``(n, m)`` CSR with counts; Y: ``(m, k)``; returns ``(n, k)``.
    """
    n, k = R.shape[0], Y.shape[1]
    gram = Y.T @ Y + reg * np.eye(k)
    out = np.zeros((n, k))
    rows_per_block = max(1, int(block // max(k * k * max(R.nnz / max(n, 1), 1.0), 1)))
    for start in range(0, n, rows_per_block):
        sub = R[start:start + rows_per_block]
        Yn = Y[sub.indices]                                           # (nnz_block, k)
        outer = (Yn[:, :, None] * Yn[:, None, :]).reshape(len(Yn), k * k)
        sel = sp.csr_matrix((alpha * sub.data, np.arange(sub.nnz), sub.indptr), shape=(sub.shape[0], sub.nnz))
        A = gram[None] + (sel @ outer).reshape(-1, k, k)              # (rows, k, k)
        b = sp.csr_matrix(((1.0 + alpha * sub.data), sub.indices, sub.indptr), shape=sub.shape) @ Y
        out[start:start + sub.shape[0]] = np.linalg.solve(A, b[:, :, None])[:, :, 0]
    return out


def wmf_loss(R: sp.spmatrix, X: np.ndarray, Y: np.ndarray, alpha: float, reg: float) -> float:
    """The WMF objective over all user-item pairs, without forming the dense score matrix.

    ``Σ_all (x·y)²`` is ``trace(XᵀX YᵀY)``; the observed pairs then swap their ``(x·y)²`` for
    ``c (1 - x·y)²``.

    Shapes:
        R: ``(n_users, n_items)``; X: ``(n_users, k)``; Y: ``(n_items, k)``.
    """
    R = sp.coo_matrix(R)
    s = np.einsum("ij,ij->i", X[R.row], Y[R.col])
    observed = np.sum((1.0 + alpha * R.data) * (1.0 - s) ** 2 - s ** 2)
    return float(np.sum((X.T @ X) * (Y.T @ Y)) + observed + reg * (np.sum(X ** 2) + np.sum(Y ** 2)))


# -- DropoutNet -------------------------------------------------------------------------------------------
def _tower(n_in: int, hidden: tuple[int, ...], rank: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.BatchNorm1d(width), nn.Tanh()]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, rank))


class DropoutNet(nn.Module):
    """Two towers that map ``[preference latent, content]`` to a shared space, trained with input dropout.

    Args:
        pref_dim: dimension of the preference latents (WMF factors).
        user_content_dim, item_content_dim: content feature dimensions (0 = no content on that side).
        hidden: widths of the hidden layers (Linear → BatchNorm → tanh) of each tower.
        rank: output dimension of both towers.
        dropout: probability ``p`` that a row's item preference input is zeroed in training.
        user_dropout: the same for the user preference input, drawn independently (None: same as ``dropout``).

    Shapes:
        batch for :meth:`loss`: dict with ``u_pref (b, pref_dim)``, ``u_content (b, du)``,
        ``v_pref (b, pref_dim)``, ``v_content (b, dv)``, ``target (b,)``.

    References:
        Volkovs et al., NIPS 2017, Sec. 3 (eq. 2, the objective) and Sec. 3.1 (input dropout).
    """

    def __init__(self, pref_dim: int, user_content_dim: int, item_content_dim: int,
                 hidden: tuple[int, ...] = (200,), rank: int = 200, dropout: float = 0.5,
                 user_dropout: float | None = None):
        super().__init__()
        user_dropout = dropout if user_dropout is None else user_dropout
        if not (0.0 <= dropout <= 1.0 and 0.0 <= user_dropout <= 1.0):
            raise ValueError(f"dropout rates must be in [0, 1], got {dropout}, {user_dropout}")
        self.dropout, self.user_dropout = dropout, user_dropout
        self.user_tower = _tower(pref_dim + user_content_dim, hidden, rank)
        self.item_tower = _tower(pref_dim + item_content_dim, hidden, rank)

    def embed_users(self, pref: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """``f_U([U_u, Φᵁ_u])``: ``(b, pref_dim)``, ``(b, du)`` -> ``(b, rank)``."""
        return self.user_tower(torch.cat([pref, content], dim=1))

    def embed_items(self, pref: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """``f_V([V_v, Φⱽ_v])``: ``(b, pref_dim)``, ``(b, dv)`` -> ``(b, rank)``."""
        return self.item_tower(torch.cat([pref, content], dim=1))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores ``f_U · f_V`` of the batch's pairs, shape ``(b,)`` (input dropout applied in training)."""
        u_pref, v_pref = batch["u_pref"], batch["v_pref"]
        if self.training:
            keep_u = (torch.rand(len(u_pref), 1, device=u_pref.device) >= self.user_dropout).to(u_pref.dtype)
            keep_v = (torch.rand(len(v_pref), 1, device=v_pref.device) >= self.dropout).to(v_pref.dtype)
            u_pref, v_pref = u_pref * keep_u, v_pref * keep_v
        u = self.embed_users(u_pref, batch["u_content"])
        v = self.embed_items(v_pref, batch["v_content"])
        return (u * v).sum(dim=1)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared difference between the latent model's score and the towers' (eq. 2)."""
        return torch.mean((self.forward(batch) - batch["target"]) ** 2)


def standardize_preferences(P: np.ndarray, warm: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """Standardise preference latents with the warm rows' mean and std, clip at ``±clip``, and set the
    non-warm rows to 0 (the warm mean) — the input a cold user/item gets (Volkovs et al., Sec. 4).

    Shapes:
        P: ``(n, k)``; warm: ``(n,)`` bool. Returns ``(n, k)`` float32.
    """
    mean, std = P[warm].mean(0), P[warm].std(0) + 1e-8
    out = np.clip((P - mean) / std, -clip, clip)
    out[~warm] = 0.0
    return out.astype(np.float32)


def training_pairs(U: np.ndarray, V: np.ndarray, warm_items: np.ndarray, n_top: int, n_random: int,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs DropoutNet learns to score: for every user its ``n_top`` best warm items under the latent
    model plus ``n_random`` warm items drawn at random, each with the target ``U_u·V_v``.

    Shapes:
        U: ``(n_users, k)``; V: ``(n_items, k)``; warm_items: ``(m,)`` ids. Returns ``users, items, targets``,
        each ``(n_users * (n_top + n_random),)``.
    """
    rng = np.random.default_rng(seed)
    scores = U @ V[warm_items].T                                      # (n_users, m)
    top = np.argpartition(-scores, n_top - 1, axis=1)[:, :n_top]
    rand = rng.integers(0, len(warm_items), size=(len(U), n_random))
    cols = np.concatenate([top, rand], axis=1)                        # (n_users, n_top + n_random)
    users = np.repeat(np.arange(len(U)), cols.shape[1])
    items = warm_items[cols.ravel()]
    return users, items, np.einsum("ij,ij->i", U[users], V[items]).astype(np.float32)


class PairBatches:
    """Mini-batches of (user, item) pairs with their features gathered from the full tables.

    Wraps :class:`l6kit.train.TensorBatches` over the index arrays (so :func:`l6kit.train.fit` seeds the
    order) and yields the dict :meth:`DropoutNet.loss` expects.
    """

    def __init__(self, tables: dict[str, np.ndarray], users: np.ndarray, items: np.ndarray, targets: np.ndarray,
                 batch_size: int = 512):
        from l6kit.train import TensorBatches

        self.t = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in tables.items()}
        self.batches = TensorBatches((torch.as_tensor(users), torch.as_tensor(items), torch.as_tensor(targets)),
                                     batch_size=batch_size)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for u, v, y in self.batches:
            yield {"u_pref": self.t["user_pref"][u], "u_content": self.t["user_content"][u],
                   "v_pref": self.t["item_pref"][v], "v_content": self.t["item_content"][v], "target": y}


@torch.no_grad()
def embed(model: DropoutNet, tables: dict[str, np.ndarray], side: str, cold: np.ndarray | None = None,
          device: str = "cpu") -> np.ndarray:
    """Tower outputs for every user (``side="user"``) or item (``"item"``), in eval mode; the rows in ``cold``
    get a zero preference input whatever the table holds, so they are scored from content only.

    Shapes:
        tables: ``user_pref (n_users, k)``, ``user_content (n_users, du)``, ``item_pref``, ``item_content``.
        Returns ``(n, rank)`` float32.
    """
    pref = np.array(tables[f"{side}_pref"], dtype=np.float32, copy=True)
    if cold is not None:
        pref[np.asarray(cold, dtype=np.int64)] = 0.0
    content = np.asarray(tables[f"{side}_content"], dtype=np.float32)
    fn = model.embed_users if side == "user" else model.embed_items
    model.eval()
    out = fn(torch.as_tensor(pref, device=device), torch.as_tensor(content, device=device))
    return out.float().cpu().numpy()


def dropoutnet_scores(model: DropoutNet, tables: dict[str, np.ndarray], cold_items: np.ndarray | None = None,
                      cold_users: np.ndarray | None = None, device: str = "cpu") -> np.ndarray:
    """Scores ``f_U · f_Vᵀ`` for all users and items, cold rows from content only (Sec. 3.2).

    Returns:
        ``(n_users, n_items)`` float32.
    """
    return embed(model, tables, "user", cold_users, device) @ embed(model, tables, "item", cold_items, device).T


def fit_dropoutnet(tables: dict[str, np.ndarray], pairs: tuple[np.ndarray, np.ndarray, np.ndarray], *,
                   dropout: float, hidden: tuple[int, ...], rank: int, epochs: int, batch_size: int = 512,
                   user_dropout: float | None = None,
                   lr: float = 1e-3, seed: int = 0, device: str = "cpu") -> tuple[DropoutNet, list[float]]:
    """Build a :class:`DropoutNet` for ``tables`` and train it with :func:`l6kit.train.fit` on ``pairs``
    (from :func:`training_pairs`). Returns the model (eval mode) and the loss per epoch."""
    from l6kit.train import fit

    torch.manual_seed(seed)
    model = DropoutNet(tables["user_pref"].shape[1], tables["user_content"].shape[1],
                       tables["item_content"].shape[1], hidden=hidden, rank=rank, dropout=dropout,
                       user_dropout=user_dropout)
    history = fit(model, PairBatches(tables, *pairs, batch_size=batch_size), epochs=epochs, lr=lr,
                  device=device, seed=seed, desc=f"DropoutNet p={dropout:g}")
    return model.eval(), history.losses


# -- data ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ColdStartData:
    """Implicit feedback with content on both sides.

    Attributes:
        R: ``(n_users, n_items)`` binary csr interactions.
        user_content: ``(n_users, du)`` float32 (``du`` may be 0).
        item_content: ``(n_items, dv)`` float32.
        item_cluster: ``(n_items,)`` int, a content group (generated cluster, or dominant content component).
        name: a short description of the source.
    """

    R: sp.csr_matrix
    user_content: np.ndarray
    item_content: np.ndarray
    item_cluster: np.ndarray
    name: str = ""


def cold_start_data(n_users: int = 1000, n_items: int = 1500, *, n_content: int = 24, n_user_content: int = 8,
                    n_clusters: int = 8, rank: int = 16, content_weight: float = 0.7, popularity: float = 1.0,
                    per_user: int = 20, temperature: float = 0.5, seed: int = 0) -> ColdStartData:
    """Generated implicit feedback where item content *partly* determines preference.

    Items fall into ``n_clusters`` content clusters; content ``x_v`` is the cluster centre plus noise. The true
    item taste vector is ``v_v = w A x_v + sqrt(1 - w²) ε_v`` (``w = content_weight``; ``ε`` is taste no content
    reveals), users have taste ``u_u ~ N(0, I)`` and a noisy linear view of it as content. User u picks
    ``~Poisson(per_user)`` items without replacement with probabilities ∝ ``exp((u·v/√rank + popularity b_v)
    / temperature)`` (Gumbel top-k), where ``b_v ~ N(0, 1)`` is a content-independent popularity.

    Returns:
        A :class:`ColdStartData` (``name="synthetic"``).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_clusters, n_content))
    cluster = rng.integers(0, n_clusters, n_items)
    x = centres[cluster] + 0.7 * rng.normal(0, 1, (n_items, n_content))
    proj = x @ rng.normal(0, 1, (n_content, rank))
    proj /= proj.std(0)
    v = content_weight * proj + np.sqrt(1 - content_weight ** 2) * rng.normal(0, 1, (n_items, rank))
    u = rng.normal(0, 1, (n_users, rank))
    user_content = u @ rng.normal(0, 1, (rank, n_user_content)) / np.sqrt(rank) \
        + rng.normal(0, 1, (n_users, n_user_content))
    logits = (u @ v.T / np.sqrt(rank) + popularity * rng.normal(0, 1, n_items)) / temperature
    logits += rng.gumbel(size=logits.shape)                           # (n_users, n_items)
    n_u = np.clip(rng.poisson(per_user, n_users), 3, n_items)
    ranks = np.argsort(-logits, axis=1)
    users = np.repeat(np.arange(n_users), n_u)
    items = np.concatenate([ranks[i, :n] for i, n in enumerate(n_u)])
    R = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    return ColdStartData(R, user_content.astype(np.float32), x.astype(np.float32), cluster, "synthetic")


CITEULIKE_MANUAL = (
    "CiteULike-a (Wang & Blei 2011; the data DropoutNet uses) is no longer served by its original host. Get "
    "`users.dat` (one line per user: count, then 0-based item ids) and `mult.dat` (one line per article: "
    "count, then word_id:count pairs over an 8,000-word vocabulary) from a copy of the citeulike-a release "
    "(e.g. the GitHub mirror js05212/citeulike-a, or the CiteULike folder of layer6ai-labs/DropoutNet-Data) "
    "and put both files in {folder}.")


def read_citeulike(folder: str | os.PathLike, n_components: int = 300, n_groups: int = 8,
                   seed: int = 0) -> ColdStartData:
    """Read CiteULike-a from ``folder`` (``users.dat``, ``mult.dat``): interactions, and item content as
    tf-idf of the abstracts reduced by truncated SVD to ``n_components`` dimensions (the paper's Sec. 4.1
    pre-processing). Users have no content. ``item_cluster`` is the item's dominant component among the
    first ``n_groups``.

    Raises:
        FileNotFoundError: a file is missing; the message says what to get and where to put it.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    folder = Path(folder)
    for name in ("users.dat", "mult.dat"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} is missing. " + CITEULIKE_MANUAL.format(folder=folder))
    users, items = [], []
    for u, line in enumerate((folder / "users.dat").read_text().split("\n")):
        ids = [int(t) for t in line.split()[1:]]
        users += [u] * len(ids)
        items += ids
    rows, cols, vals = [], [], []
    lines = [line for line in (folder / "mult.dat").read_text().split("\n") if line.strip()]
    for i, line in enumerate(lines):
        for tok in line.split()[1:]:
            w, c = tok.split(":")
            rows.append(i)
            cols.append(int(w))
            vals.append(float(c))
    words = sp.csr_matrix((vals, (rows, cols)), shape=(len(lines), max(cols) + 1))
    tfidf = TfidfTransformer().fit_transform(words)
    k = min(n_components, min(tfidf.shape) - 1)
    content = TruncatedSVD(k, random_state=seed).fit_transform(tfidf)
    R = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(max(users) + 1, len(lines)))
    R.sum_duplicates()
    R.data[:] = 1.0
    cluster = np.abs(content[:, :min(n_groups, k)]).argmax(1)
    return ColdStartData(R, np.zeros((R.shape[0], 0), np.float32), content.astype(np.float32), cluster,
                         "citeulike-a")


def _register() -> None:
    from l6kit.data.registry import Source, register

    register(Source(
        "citeulike", "CiteULike-a: 5,551 users x 16,980 articles, abstracts as bag of words (manual download)",
        reader=read_citeulike, homepage="https://github.com/js05212/citeulike-a",
        licence="research use (CiteULike terms)", manual=CITEULIKE_MANUAL.format(folder="$L6KIT_DATA/citeulike")))


_register()
