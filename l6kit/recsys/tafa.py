"""TAFA: a two-headed, attention-fused autoencoder over implicit feedback and review text, plus its data.

The model (:class:`TAFA`) reads, for one user, the binary row of the items they interacted with and the
bag-of-words vectors of the reviews they wrote:

* feedback encoder: ``x = tanh(W_e dropout(r_u) + b_e)``;
* review encoder: ``e_j = tanh(W_w c_j + b_w)`` for each review's normalised word counts ``c_j``;
* **early fusion**: the attention over a user's reviews is conditioned on the feedback code,
  ``a_j = softmax_j(v^T tanh(W_a e_j + U_a x))``, ``t = sum_j a_j e_j``;
* **late fusion**: each modality is projected, ``p_m = P_m h_m`` for ``h in {x, t}``; a modality attention
  ``beta_m = softmax_m(w^T tanh(p_m))`` weighs the values ``tanh(Q p_m)`` into ``z = sum_m beta_m tanh(Q p_m)``;
* two heads read ``z``: the reconstruction head ``W_r z + b_r`` (mean squared error to ``r_u``) and the
  **NCE head** ``W_n z + b_n`` (mean squared error to the de-popularised target of :func:`nce_targets`).

``text=False`` gives the feedback-only autoencoder, ``nce=False`` the one-headed model. The paper encodes words
with a hierarchical BiLSTM; here a review is a bag of words (see the notebook's Limits).

Data: :func:`synthetic_reviews` draws users, items, popularity-skewed interactions and one review per
interaction whose words mix the user's taste topics with the item's topic; :func:`read_amazon_reviews` reads the
McAuley Amazon 2014 5-core review files (JSON lines) into the same :class:`ReviewData`.

References:
    Zhou, Cheng, Perez, Volkovs. *TAFA: Two-headed Attention Fused Autoencoder for Context-Aware
    Recommendations.* RecSys 2020 (Sec. 3; official code layer6ai-labs/TAFA, ``models/TAFA.py``).
    Wu, Volkovs, Soon, Sanner, Rai. *Noise Contrastive Estimation for One-Class Collaborative Filtering.*
    SIGIR 2019 (the NCE target).
    McAuley, Targett, Shi, van den Hengel. *Image-based Recommendations on Styles and Substitutes.* SIGIR 2015
    (the Amazon review data).
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from l6kit.data.registry import DataMissingError, Source, register
from l6kit.recsys.interactions import to_csr


@dataclasses.dataclass(frozen=True)
class ReviewData:
    """Interactions with one review each.

    Attributes:
        R: ``(n_users, n_items)`` binary csr interaction matrix.
        users, items: ``(m,)`` int64, the interaction of each review (row ``j`` of ``bow``).
        bow: ``(m, vocab)`` csr float32 word counts of each review.
        words: the vocabulary, ``(vocab,)`` strings.
        theta: ``(n_users, n_topics)`` true taste (generated data; ``None`` for real data).
        item_topic: ``(n_items,)`` true item topic (generated data; ``None`` for real data).
        informativeness: ``(m,)`` share of a review's words drawn from the writer's taste (generated; ``None``).
    """

    R: sp.csr_matrix
    users: np.ndarray
    items: np.ndarray
    bow: sp.csr_matrix
    words: tuple[str, ...]
    theta: np.ndarray | None = None
    item_topic: np.ndarray | None = None
    informativeness: np.ndarray | None = None


def synthetic_reviews(n_users: int = 1500, n_items: int = 400, n_topics: int = 8, vocab: int = 200,
                      seed: int = 0, pop_skew: float = 1.0, taste_conc: float = 0.3, mean_activity: float = 8.0,
                      user_words: float = 0.35, item_words: float = 0.35, generic_frac: float = 0.3,
                      review_len: tuple[int, int] = (15, 35)) -> ReviewData:
    """Generated implicit feedback with popularity skew and review-like bag-of-words text.

    Item ``i`` has a topic ``k_i`` and a Zipf popularity ``pop_i ~ rank^-pop_skew``; user ``u`` has a taste
    ``theta_u ~ Dirichlet(taste_conc)`` and ``n_u ~ LogNormal(log mean_activity, 0.8)`` (at least 3)
    interactions, drawn without replacement with ``P(i | u) ~ (theta_u[k_i] + 0.01) pop_i``. The review of
    ``(u, i)`` has ``L ~ U(review_len)`` words from the mixture ``rho_uj theta_u^T phi + item_words phi_{k_i} +
    rest x uniform``, with ``rho_uj ~ U(0, 2 user_words)`` varying per review (some reviews say much about the
    writer's taste, some little) and topic-word distributions ``phi_k`` that each favour their own block of
    words; a share ``generic_frac`` of reviews is generic (uniform words only, "great, fast shipping"). Reviews of a user therefore reveal their whole taste, beyond the few items they interacted with.

    Returns:
        A :class:`ReviewData` with ``theta``, ``item_topic`` and ``informativeness`` filled in.
    """
    rng = np.random.default_rng(seed)
    item_topic = rng.integers(n_topics, size=n_items)
    pop = rng.permutation(1.0 / np.arange(1, n_items + 1) ** pop_skew)
    theta = rng.dirichlet(np.full(n_topics, taste_conc), size=n_users)
    activity = np.clip(np.rint(np.exp(rng.normal(np.log(mean_activity), 0.8, n_users))), 3, n_items // 4)
    users, items = [], []
    for u in range(n_users):
        w = (theta[u][item_topic] + 0.01) * pop
        chosen = np.sort(rng.choice(n_items, size=int(activity[u]), replace=False, p=w / w.sum()))
        users.append(np.full(chosen.size, u)), items.append(chosen)
    users, items = np.concatenate(users), np.concatenate(items)
    block = vocab // (n_topics + 2)
    phi = np.full((n_topics, vocab), 0.02)
    for k in range(n_topics):
        phi[k, k * block:(k + 1) * block] += 1.0
    phi /= phi.sum(1, keepdims=True)
    generic = rng.random(users.size) < generic_frac                      # says nothing about user or item
    rho = np.where(generic, 0.0, rng.uniform(0.0, 2 * user_words, size=users.size))
    iw = np.where(generic, 0.0, item_words)
    rest = np.clip(1.0 - rho - iw, 0.0, None)
    p = rho[:, None] * (theta[users] @ phi) + iw[:, None] * phi[item_topic[items]] + rest[:, None] / vocab
    p /= p.sum(1, keepdims=True)                                          # (m, vocab)
    counts = rng.multinomial(rng.integers(*review_len, size=users.size), p)
    return ReviewData(R=to_csr(users, items, n_users, n_items), users=users, items=items,
                      bow=sp.csr_matrix(counts.astype(np.float32)),
                      words=tuple(f"w{k}" for k in range(vocab)), theta=theta, item_topic=item_topic,
                      informativeness=rho / (rho + iw + rest))


def nce_targets(R: sp.csr_matrix, root: float = 1.1) -> sp.csr_matrix:
    """The de-popularised (NCE / PMI) target of the second head.

    ``N_ui = max(0, log(n_users) - root * log(pop_i))`` on observed entries ``R_ui = 1`` and 0 elsewhere, with
    ``pop_i`` the number of users who interacted with ``i``: an interaction with a rare item is worth more, and
    with ``root > 1`` the most popular items get no NCE target at all (the official code's default root 1.1).

    Shapes:
        R: ``(n_users, n_items)`` binary csr. Returns the same shape, csr float32.
    """
    R = sp.csr_matrix(R, dtype=np.float32)
    pop = np.maximum(np.asarray(R.sum(0)).ravel(), 1.0)
    weight = np.maximum(0.0, np.log(R.shape[0]) - root * np.log(pop)).astype(np.float32)
    out = R.multiply(weight[None, :]).tocsr()
    out.eliminate_zeros()
    return out


def review_index(users: np.ndarray, keep: np.ndarray, n_users: int, max_reviews: int,
                 seed: int = 0) -> np.ndarray:
    """Per user, the ids of (at most ``max_reviews`` randomly chosen) reviews with ``keep`` true; -1 pads.

    Shapes:
        users, keep: ``(m,)``. Returns ``(n_users, max_reviews)`` int64.
    """
    rng = np.random.default_rng(seed)
    ids = np.flatnonzero(keep)
    ids = ids[np.lexsort((rng.random(ids.size), users[ids]))]            # grouped by user, shuffled within
    out = np.full((n_users, max_reviews), -1, dtype=np.int64)
    starts = np.searchsorted(users[ids], np.arange(n_users + 1))
    for u in range(n_users):
        mine = ids[starts[u]:starts[u + 1]][:max_reviews]
        out[u, :mine.size] = mine
    return out


def padded_bow(bow, max_words: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each review's distinct words and their normalised counts, padded (weight 0) to the longest review.

    Args:
        bow: ``(m, vocab)`` word counts (csr or array).
        max_words: keep at most this many distinct words per review (the most frequent); None keeps all.

    Returns:
        ``(tokens, weights)``: ``(m, W)`` int64 word ids and ``(m, W)`` float32 weights summing to 1 per
        non-empty review, so that ``sum_w weights * E[tokens]`` is the bag-of-words mean embedding.
    """
    bow = sp.csr_matrix(bow, dtype=np.float32)
    bow.sort_indices()
    lengths = np.diff(bow.indptr)
    width = max(1, int(lengths.max(initial=1)))
    width = width if max_words is None else min(width, max_words)
    tokens = np.zeros((bow.shape[0], width), dtype=np.int64)
    weights = np.zeros((bow.shape[0], width), dtype=np.float32)
    for j in range(bow.shape[0]):
        lo, hi = bow.indptr[j], bow.indptr[j + 1]
        keep = np.argsort(-bow.data[lo:hi], kind="stable")[:width]
        tokens[j, :keep.size], weights[j, :keep.size] = bow.indices[lo:hi][keep], bow.data[lo:hi][keep]
    weights /= np.maximum(weights.sum(1, keepdims=True), 1e-12)
    return tokens, weights


class TAFA(nn.Module):
    """Two-headed attention-fused autoencoder (see the module docstring for the equations).

    Args:
        n_items: items (width of the input row and of both heads).
        bow: ``(m, vocab)`` review word counts (csr or array); stored as padded word ids and weights (each
            review's weights sum to 1), see :func:`padded_bow`.
        dim: width of the feedback code, review code and fused code.
        text: use the reviews (False: feedback-only autoencoder).
        nce: train the NCE head (False: reconstruction head only).
        dropout: input dropout on the feedback row (denoising).
        nce_weight: weight of the NCE loss.
        max_words: distinct words kept per review (the most frequent), bounding the buffers for long reviews.

    Shapes:
        rows ``(b, n_items)``, review ids ``(b, L)`` (-1 = none) -> scores ``(b, n_items)`` per head.
    """

    def __init__(self, n_items: int, bow, dim: int = 64, text: bool = True, nce: bool = True,
                 dropout: float = 0.5, nce_weight: float = 1.0, max_words: int | None = 256):
        super().__init__()
        tokens, weights = padded_bow(bow, max_words)
        self.register_buffer("tokens", torch.from_numpy(tokens))
        self.register_buffer("weights", torch.from_numpy(weights))
        self.text, self.nce, self.dropout, self.nce_weight = text, nce, dropout, nce_weight
        self.encoder = nn.Linear(n_items, dim)
        self.word = nn.EmbeddingBag(sp.csr_matrix(bow).shape[1], dim, mode="sum")   # = Linear on the bag
        self.word_bias = nn.Parameter(torch.zeros(dim))
        nn.init.uniform_(self.word.weight, -self.word.weight.shape[0] ** -0.5, self.word.weight.shape[0] ** -0.5)
        self.att_review, self.att_query = nn.Linear(dim, dim), nn.Linear(dim, dim, bias=False)
        self.att_v = nn.Linear(dim, 1, bias=False)
        self.proj_x, self.proj_t = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.fuse_k, self.fuse_q = nn.Linear(dim, 1, bias=False), nn.Linear(dim, dim)
        self.rec_head, self.nce_head = nn.Linear(dim, n_items), nn.Linear(dim, n_items)

    def encode_reviews(self, review_ids: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Early fusion: review codes attended with the feedback code ``x`` as the query.

        Returns:
            ``(t, a)``: the review summary ``(b, dim)`` and the attention ``(b, L)`` (rows sum to 1 over real
            reviews; all zero for a user without reviews).
        """
        mask = review_ids >= 0
        flat = review_ids.clamp(min=0).reshape(-1)                                      # (b * L,)
        bag = self.word(self.tokens[flat], per_sample_weights=self.weights[flat])       # (b * L, dim)
        e = torch.tanh(bag + self.word_bias).reshape(*review_ids.shape, -1)             # (b, L, dim)
        s = self.att_v(torch.tanh(self.att_review(e) + self.att_query(x)[:, None])).squeeze(-1)  # (b, L)
        a = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1).nan_to_num(0.0)
        return (a[..., None] * e).sum(1), a

    def represent(self, rows: torch.Tensor, review_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """The fused code ``z`` (b, dim) with the review attention ``(b, L)`` and modality weights ``(b, 2)``
        (feedback, text); the last two are empty for ``text=False``."""
        x = torch.tanh(self.encoder(F.dropout(rows, self.dropout, self.training)))
        if not self.text:
            return {"z": x, "review_attention": x.new_zeros(len(x), 0), "modality": x.new_ones(len(x), 1)}
        t, a = self.encode_reviews(review_ids, x)
        p = torch.stack([self.proj_x(x), self.proj_t(t)], dim=1)                       # (b, 2, dim)
        beta = torch.softmax(self.fuse_k(torch.tanh(p)).squeeze(-1), dim=-1)           # late fusion (b, 2)
        z = (beta[..., None] * torch.tanh(self.fuse_q(p))).sum(1)
        return {"z": z, "review_attention": a, "modality": beta}

    def forward(self, rows: torch.Tensor, review_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both heads' scores ``rec``/``nce`` ``(b, n_items)`` plus the outputs of :meth:`represent`."""
        out = self.represent(rows, review_ids)
        return out | {"rec": self.rec_head(out["z"]), "nce": self.nce_head(out["z"])}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``MSE(rec, r_u) + nce_weight * MSE(nce, N_u)`` on a batch ``{"rows", "reviews", "nce"}``."""
        out = self(batch["rows"], batch["reviews"])
        loss = F.mse_loss(out["rec"], batch["rows"])
        if self.nce:
            loss = loss + self.nce_weight * F.mse_loss(out["nce"], batch["nce"])
        return loss

    @torch.no_grad()
    def predict(self, rows: torch.Tensor, review_ids: torch.Tensor, batch_size: int = 1024
                ) -> dict[str, np.ndarray]:
        """Evaluation-mode outputs for all rows, as numpy: ``rec``, ``nce`` ``(n, n_items)``,
        ``review_attention`` ``(n, L)``, ``modality`` ``(n, 2)``."""
        self.eval()
        dev = next(self.parameters()).device
        parts = [self(rows[i:i + batch_size].to(dev), review_ids[i:i + batch_size].to(dev))
                 for i in range(0, len(rows), batch_size)]
        keys = ("rec", "nce", "review_attention", "modality")
        return {k: torch.cat([p[k] for p in parts]).float().cpu().numpy() for k in keys}


# -- the paper's data: Amazon 2014 5-core reviews -----------------------------------------------------------
AMAZON_HOMEPAGE = "https://jmcauley.ucsd.edu/data/amazon/"
AMAZON_MANUAL = (
    "The Amazon 2014 review data (McAuley lab) are distributed for research from " + AMAZON_HOMEPAGE
    + " (historic copy: http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/) without published "
    "checksums, so l6kit does not download them. Get the 5-core file of a category, e.g. "
    "reviews_Digital_Music_5.json.gz (also Grocery_and_Gourmet_Food, Video_Games, CDs_and_Vinyl), and put it in "
    "$L6KIT_DATA/amazon-reviews-5core/ (or pass root=).")
_TOKEN = re.compile(r"[a-z][a-z']+")
_STOP = frozenset("the and for this that with was are but you have not they its it's all his her she him "
                  "from had one what when there their would been were can will just out about very has "
                  "more also than them our your which who some any".split())


def _json_lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {number}: not a JSON object ({exc.msg})") from None


def read_amazon_reviews(folder: str | Path, category: str = "Digital_Music", vocab: int = 5000) -> ReviewData:
    """Read ``reviews_<category>_5.json.gz`` (one JSON object per line with ``reviewerID``, ``asin``,
    ``reviewText``, ``summary``, ...) into a :class:`ReviewData`; the vocabulary is the ``vocab`` most frequent
    tokens (lower case, stop words removed). Repeated (user, item) pairs keep their first review.

    Raises:
        DataMissingError: the file is not in ``folder``; the message says where to get it.
    """
    path = Path(folder) / f"reviews_{category}_5.json.gz"
    if not path.exists():
        raise DataMissingError(f"{path} is missing. {AMAZON_MANUAL}")
    user_ids, item_ids, seen, users, items, texts = {}, {}, set(), [], [], []
    for rec in _json_lines(path):
        u = user_ids.setdefault(rec["reviewerID"], len(user_ids))
        i = item_ids.setdefault(rec["asin"], len(item_ids))
        if (u, i) not in seen:
            seen.add((u, i))
            users.append(u), items.append(i)
            text = f"{rec.get('summary', '')} {rec.get('reviewText', '')}".lower()
            texts.append([w for w in _TOKEN.findall(text) if w not in _STOP])
    freq = collections.Counter(w for t in texts for w in t)
    words = tuple(w for w, _ in freq.most_common(vocab))
    index = {w: k for k, w in enumerate(words)}
    rows = [j for j, t in enumerate(texts) for w in t if w in index]
    cols = [index[w] for t in texts for w in t if w in index]
    bow = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), len(words)))
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    return ReviewData(R=to_csr(users, items, len(user_ids), len(item_ids)), users=users, items=items,
                      bow=bow, words=words)


SOURCE = register(Source(
    name="amazon-reviews-5core",
    description="Amazon 2014 5-core product reviews (McAuley lab), one category per file; ci: generated reviews",
    reader=read_amazon_reviews,
    offline=synthetic_reviews,
    homepage=AMAZON_HOMEPAGE,
    licence="research use (McAuley lab terms; not redistributable)",
    manual=AMAZON_MANUAL,
))
