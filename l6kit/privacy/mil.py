"""Multiple-instance learning (MIL) for slide-level labels: attention pooling, digit-bag stand-in, hospitals.

A whole-slide image (WSI) is far too large for one network pass, so it is cut into tiles, each tile is embedded
by a fixed pretrained CNN, and the slide becomes a *bag* of tile feature vectors with one label for the whole
bag. A MIL model must be invariant to the order of the tiles; :class:`AttentionMIL` (Ilse et al. 2018) scores
every instance, turns the scores into softmax weights over the bag and classifies the weighted mean.

The ``ci`` stand-in (:func:`make_digit_bags`) replaces tiles by 8x8 digit images (64 pixel "features"): a bag
is positive when it holds at least ``min_key`` images of a target digit (the "tumour" tiles). It is a toy with
the same structure as slide classification — a bag label, unlabelled instances, few key instances — and nothing
histology-specific. :func:`hospital_splits` spreads bags over hospitals (clients) either IID or non-IID (each
hospital with its own label balance and its own "stain": an intensity scale and offset of its images).

The ``paper`` profile reads pre-extracted tile features of TCGA slides from a local folder
(:func:`read_tile_features`, layout in :data:`TCGA_MANUAL`); l6kit does not download or tile the slides.

References:
    M. Ilse, J. M. Tomczak, M. Welling. Attention-based Deep Multiple Instance Learning. ICML 2018 (eq. 8-9).
    M. Adnan, S. Kalra, J. C. Cresswell, G. W. Taylor, H. R. Tizhoosh. Federated learning and differential
    privacy for medical image analysis. Scientific Reports 12, 1953 (2022).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from l6kit.data.registry import DataMissingError, Source, register

SOURCE = "tcga-tile-features"
TCGA_MANUAL = (
    "TCGA whole-slide images are public but large (hundreds of GB): download the diagnostic slides (.svs) of "
    "your projects (e.g. TCGA-LUAD and TCGA-LUSC) from https://portal.gdc.cancer.gov with the GDC Data Transfer "
    "Tool (`gdc-client download -m gdc_manifest.txt`, manifest exported from the portal's cart), tile each "
    "slide at 20x (e.g. openslide-python, 224-px tiles, background removed), embed every tile with an "
    "ImageNet-pretrained DenseNet-121 (1024-d after global pooling) and write, in one folder: "
    "`slides.csv` with columns slide_id,label,site (label: class name or integer; site: the hospital, e.g. the "
    "tissue-source-site code, characters 6-7 of the TCGA barcode) and `features/<slide_id>.npy` holding a "
    "float array of shape (n_tiles, feature_dim) per slide.")


# --- model --------------------------------------------------------------------------------------------------

def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis that gives padded positions (``mask`` False) exactly zero weight.

    Shapes:
        scores: (B, m); mask: (B, m) bool or None. Returns (B, m), rows summing to 1.
    """
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


class AttentionMIL(nn.Module):
    """Gated attention-pooling MIL classifier over bags of instance feature vectors (Ilse et al. 2018).

    ``h_i = ReLU(W x_i)``; ``a_i = softmax_i(w^T (tanh(V h_i) * sigmoid(U h_i)))``; ``z = sum_i a_i h_i``;
    logits ``= C z``. Permutation invariant in the instances. Stands in for the paper's memory-based
    exchangeable model (MEM), which is not reproduced.

    Args:
        in_dim: instance feature size d. hidden: instance embedding size. attn_dim: attention hidden size.
        n_classes: number of bag classes. mask_channel: the last input channel is a 0/1 padding mask (see
            :func:`pack_mask`), so a padded batch is one tensor (needed by ``vmap`` per-sample gradients).

    Shapes:
        x: (B, m, d) [or (B, m, d + 1) with ``mask_channel``]; mask: (B, m) bool or None. Returns (B, K).

    References:
        Ilse, Tomczak, Welling, ICML 2018, Sec. 2.4 (eq. 9, gated attention).
    """

    def __init__(self, in_dim: int, hidden: int = 32, attn_dim: int = 16, n_classes: int = 2,
                 mask_channel: bool = False):
        super().__init__()
        self.mask_channel = mask_channel
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.V, self.U = nn.Linear(hidden, attn_dim), nn.Linear(hidden, attn_dim)
        self.w = nn.Linear(attn_dim, 1)
        self.head = nn.Linear(hidden, n_classes)

    def _split(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.mask_channel:
            x, mask = x[..., :-1], x[..., -1] > 0.5                        # (B, m, d), (B, m)
        return x, mask

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(attention weights (B, m), instance embeddings (B, m, hidden))."""
        x, mask = self._split(x, mask)
        h = self.embed(x)                                                  # (B, m, hidden)
        gate = torch.tanh(self.V(h)) * torch.sigmoid(self.U(h))            # (B, m, attn_dim)
        return masked_softmax(self.w(gate).squeeze(-1), mask), h

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        a, h = self.attention(x, mask)
        z = torch.einsum("bm,bmh->bh", a, h)                               # (B, hidden)
        return self.head(z)

    def loss(self, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy of a batch ``(x, y)`` or ``(x, mask, y)`` (for :func:`l6kit.train.fit`)."""
        x, *mask, y = batch
        return F.cross_entropy(self(x, mask[0] if mask else None), y)


def pack_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Append the padding mask as a last channel. Shapes: x (B, m, d), mask (B, m) -> (B, m, d + 1)."""
    return torch.cat([x, mask.to(x.dtype).unsqueeze(-1)], dim=-1)


def per_bag_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-bag cross-entropy (the DP unit is the bag). Shapes: out (B, K), y (B,) -> (B,)."""
    return F.cross_entropy(out, y, reduction="none")


# --- bags ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Bags:
    """A set of equally sized (padded) bags.

    Attributes:
        x: instance features, (B, m, d) float32. y: bag labels, (B,) int64. mask: real (True) vs padded
        instances, (B, m) bool. key: instances that make a bag positive (known only for generated bags;
        all False otherwise), (B, m) bool. site: hospital of each bag, (B,) int64.
    """

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    key: torch.Tensor
    site: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: torch.Tensor | np.ndarray) -> Bags:
        """The bags at ``idx``."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Bags(self.x[idx], self.y[idx], self.mask[idx], self.key[idx], self.site[idx])

    @staticmethod
    def concat(parts: Sequence[Bags]) -> Bags:
        """All bags of ``parts`` in one set (same m and d)."""
        return Bags(*(torch.cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Bags)))


def bag_label(key: torch.Tensor, min_key: int) -> torch.Tensor:
    """The stand-in's labelling rule: a bag is positive iff it holds >= ``min_key`` key instances.

    Shapes:
        key: (B, m) bool. Returns (B,) int64.
    """
    return (key.sum(-1) >= min_key).long()


def make_digit_bags(pixels: np.ndarray, digits: np.ndarray, n_bags: int, *, bag_size: int = 12, target: int = 7,
                    min_key: int = 2, pos_frac: float = 0.5, stain: tuple[float, float] = (1.0, 0.0),
                    site: int = 0, rng: np.random.Generator | None = None) -> Bags:
    """Bags of digit images labelled by :func:`bag_label` (the ``ci`` stand-in for slides of tiles).

    A positive bag gets ``min_key .. min_key + 2`` images of ``target``, a negative one ``0 .. min_key - 1``;
    the rest are other digits; the order is shuffled. ``stain = (a, b)`` maps pixels to ``clip(a x + b, 0, 1)``
    (a hospital's scanner/staining shift).

    Args:
        pixels: instance pool in [0, 1], (n, 64). digits: their classes, (n,). n_bags: bags to draw.
        pos_frac: probability that a bag is positive. site: hospital id stored in the bags.

    Shapes:
        Returns :class:`Bags` with x (n_bags, bag_size, 64).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    tgt, other = np.flatnonzero(digits == target), np.flatnonzero(digits != target)
    positive = rng.random(n_bags) < pos_frac
    counts = np.where(positive, rng.integers(min_key, min_key + 3, n_bags), rng.integers(0, min_key, n_bags))
    counts = np.minimum(counts, bag_size)
    idx = np.empty((n_bags, bag_size), dtype=np.int64)
    key = np.zeros((n_bags, bag_size), dtype=bool)
    for b, c in enumerate(counts):
        chosen = np.concatenate([rng.choice(tgt, c), rng.choice(other, bag_size - c)])
        order = rng.permutation(bag_size)
        idx[b], key[b] = chosen[order], (np.arange(bag_size) < c)[order]
    x = np.clip(stain[0] * pixels[idx] + stain[1], 0.0, 1.0).astype(np.float32)      # (n_bags, bag_size, 64)
    keyt = torch.from_numpy(key)
    return Bags(torch.from_numpy(x), bag_label(keyt, min_key), torch.ones_like(keyt), keyt,
                torch.full((n_bags,), site, dtype=torch.long))


def site_settings(n_sites: int, split: str, skew: float = 0.35, stain: float = 0.35) -> list[dict]:
    """Per-hospital ``pos_frac`` and ``stain`` for :func:`make_digit_bags`.

    ``"iid"``: every site 0.5 positive, no stain. ``"non-iid"``: positive fractions spread evenly over
    ``0.5 +- skew`` and stains from contrast ``1 - stain`` with a brightening offset to ``1 + stain`` with a
    darkening one, so sites differ in label balance *and* in appearance.
    """
    if split not in ("iid", "non-iid"):
        raise ValueError(f"unknown split {split!r}; allowed: iid, non-iid")
    t = np.linspace(-1.0, 1.0, n_sites) if n_sites > 1 else np.zeros(1)
    if split == "iid":
        return [{"pos_frac": 0.5, "stain": (1.0, 0.0)} for _ in range(n_sites)]
    return [{"pos_frac": float(0.5 + skew * ti), "stain": (float(1 + stain * ti), float(-0.5 * stain * ti))}
            for ti in t]


def hospital_splits(pixels: np.ndarray, digits: np.ndarray, n_sites: int, bags_per_site: int, split: str, *,
                    rng: np.random.Generator, **bag_kw) -> list[Bags]:
    """One :class:`Bags` per hospital, IID or non-IID (:func:`site_settings`); ``bag_kw`` go to
    :func:`make_digit_bags` (``bag_size``, ``target``, ``min_key``)."""
    return [make_digit_bags(pixels, digits, bags_per_site, site=k, rng=rng, **s, **bag_kw)
            for k, s in enumerate(site_settings(n_sites, split))]


# --- evaluation ---------------------------------------------------------------------------------------------

@torch.no_grad()
def accuracy(model: nn.Module, bags: Bags) -> float:
    """Bag-level accuracy of ``model`` on ``bags``."""
    model.eval()
    x = pack_mask(bags.x, bags.mask) if getattr(model, "mask_channel", False) else bags.x
    kw = {} if getattr(model, "mask_channel", False) else {"mask": bags.mask}
    return float((model(x, **kw).argmax(1) == bags.y).float().mean())


@torch.no_grad()
def key_attention(model: AttentionMIL, bags: Bags) -> dict[str, float]:
    """Does attention find the key instances? On the positive bags: ``top_is_key`` (share of bags whose most
    attended instance is a key one), ``mass_on_key`` (mean attention on key instances) and ``chance`` (the
    mean share of key instances, what uniform attention would give)."""
    pos = bags.y == 1
    x, key, mask = bags.x[pos], bags.key[pos], bags.mask[pos]
    if getattr(model, "mask_channel", False):
        x, mask = pack_mask(x, mask), None
    a, _ = model.attention(x, mask)
    top = a.argmax(1)
    return {"top_is_key": float(key[torch.arange(len(top)), top].float().mean()),
            "mass_on_key": float((a * key).sum(1).mean()),
            "chance": float((key.sum(1) / bags.mask[pos].sum(1)).mean())}


# --- TCGA tile features (paper profile) ---------------------------------------------------------------------

@dataclasses.dataclass
class SlideFeatures:
    """Pre-extracted tile features of whole slides.

    Attributes:
        features: one (n_tiles_i, d) float32 array per slide. labels: (n,) int64. sites: (n,) int64 hospital
        index. slide_ids: (n,) str. classes: label names by index. site_names: hospital names by index.
    """

    features: list[np.ndarray]
    labels: np.ndarray
    sites: np.ndarray
    slide_ids: np.ndarray
    classes: tuple[str, ...]
    site_names: tuple[str, ...]


def read_tile_features(folder: str | os.PathLike) -> SlideFeatures:
    """Read ``folder/slides.csv`` (slide_id, label, site) and ``folder/features/<slide_id>.npy`` (n_tiles, d).

    Raises:
        DataMissingError: the CSV or a slide's features are absent (the message says what to produce).
        ValueError: missing CSV columns, or feature arrays that are not 2-D with one common width.
    """
    import pandas as pd

    folder = Path(folder).expanduser()
    csv = folder / "slides.csv"
    if not csv.is_file():
        raise DataMissingError(f"No tile-feature table at {csv}.\n  {TCGA_MANUAL}\n  Then pass the folder, e.g. "
                               "overrides={'features_path': '/path/to/folder'}. l6kit never downloads TCGA slides.")
    table = pd.read_csv(csv, dtype={"slide_id": str, "label": str, "site": str})
    missing_cols = {"slide_id", "label", "site"} - set(table.columns)
    if missing_cols:
        raise ValueError(f"{csv}: missing column(s) {sorted(missing_cols)}; need slide_id,label,site")
    files = [folder / "features" / f"{s}.npy" for s in table["slide_id"]]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise DataMissingError(f"{len(absent)} slide feature file(s) missing, e.g. {absent[0]}.\n  {TCGA_MANUAL}")
    feats = [np.load(f).astype(np.float32) for f in files]
    if any(f.ndim != 2 for f in feats) or len({f.shape[1] for f in feats}) != 1:
        raise ValueError(f"{folder}/features: every file must be (n_tiles, d) with one common d")
    classes, labels = np.unique(table["label"].to_numpy(), return_inverse=True)
    site_names, sites = np.unique(table["site"].to_numpy(), return_inverse=True)
    return SlideFeatures(feats, labels.astype(np.int64), sites.astype(np.int64), table["slide_id"].to_numpy(),
                         tuple(map(str, classes)), tuple(map(str, site_names)))


def pad_bags(slides: SlideFeatures, max_tiles: int, rng: np.random.Generator | None = None) -> Bags:
    """Equal-size bags: at most ``max_tiles`` tiles per slide (a random subset), zero-padded with a mask.

    Shapes:
        Returns :class:`Bags` with x (n_slides, max_tiles, d).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    d = slides.features[0].shape[1]
    x = np.zeros((len(slides.features), max_tiles, d), dtype=np.float32)
    mask = np.zeros((len(slides.features), max_tiles), dtype=bool)
    for i, f in enumerate(slides.features):
        keep = f[rng.permutation(len(f))[:max_tiles]]
        x[i, :len(keep)], mask[i, :len(keep)] = keep, True
    m = torch.from_numpy(mask)
    return Bags(torch.from_numpy(x), torch.from_numpy(slides.labels), m, torch.zeros_like(m),
                torch.from_numpy(slides.sites))


register(Source(
    name=SOURCE,
    description="TCGA whole-slide tile features (one .npy per slide + slides.csv), produced by the user",
    reader=read_tile_features,
    homepage="https://portal.gdc.cancer.gov",
    licence="TCGA open-access data (NIH GDC data use terms)",
    manual=TCGA_MANUAL,
))
