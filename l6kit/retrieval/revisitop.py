"""Revisited Oxford / Paris (ROxford5k, RParis6k): ground truth and precomputed GeM descriptors.

The revisitop project publishes, per data set, a pickle ``gnd_<name>.pkl`` (``{"imlist", "qimlist",
"gnd": [{"easy", "hard", "junk", "bbx"}, ...]}``, 70 queries) and a MATLAB file
``<name>_resnet_rsfm120k_gem.mat`` with ``Q`` (D x queries) and ``X`` (D x index) ResNet-101 GeM
descriptors. No checksums are published, so the sources are registered as *manual*: the reader names the
URLs and the folder, and checks shapes and ids itself. The pickle is read with a restricted unpickler that
only builds dicts, lists, strings, numbers and numpy arrays (plus ``_codecs.encode``, which
protocol-2 pickles use for array bytes) (no arbitrary code runs on load).

References:
    Radenović, Iscen, Tolias, Avrithis, Chum. "Revisiting Oxford and Paris: Large-Scale Image Retrieval
    Benchmarking." CVPR 2018. http://cmp.felk.cvut.cz/revisitop/
    Radenović, Tolias, Chum. "Fine-tuning CNN Image Retrieval with No Human Annotation." TPAMI 2018 (GeM).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np

from l6kit.data.registry import DataMissingError, Source, register
from l6kit.retrieval.generators import chains, l2_normalise

BASE = "http://cmp.felk.cvut.cz/revisitop/data"
HOMEPAGE = "http://cmp.felk.cvut.cz/revisitop/"
NAMES = ("roxford5k", "rparis6k")
_ALLOWED = {("builtins", n) for n in ("dict", "list", "tuple", "set", "str", "int", "float", "bytes")} | {
    (m, n) for m in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                     "numpy._core.numeric")
    for n in ("ndarray", "dtype", "_reconstruct", "scalar", "_frombuffer")} | {
    ("_codecs", "encode")}                      # protocol-2 pickles store array bytes through it (harmless)


def urls(name: str) -> tuple[str, str]:
    """(ground-truth pickle URL, GeM features URL) of ``name`` (roxford5k | rparis6k)."""
    return (f"{BASE}/datasets/{name}/gnd_{name}.pkl", f"{BASE}/features/{name}_resnet_rsfm120k_gem.mat")


@dataclasses.dataclass
class RevisitedSet:
    """A revisited retrieval benchmark in memory.

    Attributes:
        name: data set name.
        Q: ``(n_queries, d)`` float32 L2-normalised query descriptors.
        X: ``(n, d)`` float32 L2-normalised index descriptors.
        gnd: per query ``{"easy", "hard", "junk"}`` int64 index-id arrays (for :func:`revisited_map`).
        imlist, qimlist: image names of the index and the queries.
    """

    name: str
    Q: np.ndarray
    X: np.ndarray
    gnd: list[dict]
    imlist: list[str]
    qimlist: list[str]


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a ground-truth pickle")
        return super().find_class(module, name)


def read_gnd(path: str | os.PathLike) -> dict:
    """Read a revisitop ground-truth pickle safely (only builtins and numpy arrays are allowed)."""
    with open(path, "rb") as fh:
        return _SafeUnpickler(fh, encoding="latin1").load()


def read_revisited(folder: str | os.PathLike, *, name: str | None = None) -> RevisitedSet:
    """Parse ``gnd_<name>.pkl`` and ``<name>_resnet_rsfm120k_gem.mat`` from ``folder``.

    Raises:
        DataMissingError: a file is missing (the message names the URLs and the folder).
        ValueError: shapes or ids do not agree with the ground truth.
    """
    from scipy.io import loadmat

    folder = Path(folder)
    name = name or folder.name
    gnd_url, feat_url = urls(name)
    gnd_path, feat_path = folder / Path(gnd_url).name, folder / Path(feat_url).name
    missing = [(u, p) for u, p in ((gnd_url, gnd_path), (feat_url, feat_path)) if not p.exists()]
    if missing:
        raise DataMissingError("\n".join(f"Download {u}\n  and put it at {p}" for u, p in missing)
                               + f"\n  (no checksums are published; about the data: {HOMEPAGE})")
    cfg = read_gnd(gnd_path)
    mat = loadmat(feat_path)
    Q, X = l2_normalise(np.asarray(mat["Q"]).T), l2_normalise(np.asarray(mat["X"]).T)
    imlist, qimlist = [str(s) for s in cfg["imlist"]], [str(s) for s in cfg["qimlist"]]
    if len(X) != len(imlist) or len(Q) != len(qimlist) or len(cfg["gnd"]) != len(Q):
        raise ValueError(f"{name}: features Q {Q.shape}, X {X.shape} do not match {len(qimlist)} queries, "
                         f"{len(imlist)} images, {len(cfg['gnd'])} ground-truth entries")
    gnd = [{k: np.asarray(g.get(k, []), dtype=np.int64).ravel() for k in ("easy", "hard", "junk")}
           for g in cfg["gnd"]]
    for g in gnd:
        if any(((v < 0) | (v >= len(X))).any() for v in g.values()):
            raise ValueError(f"{name}: ground-truth ids out of range 0..{len(X) - 1}")
    return RevisitedSet(name, Q, X, gnd, imlist, qimlist)


def write_revisited(folder: str | os.PathLike, name: str, Q: np.ndarray, X: np.ndarray, gnd: list[dict],
                    imlist: list[str] | None = None, qimlist: list[str] | None = None) -> Path:
    """Write a data set in the revisitop file format (for fixtures and exports): the pickle and a ``.mat``
    with ``Q`` (d x queries) and ``X`` (d x index). Returns ``folder``."""
    from scipy.io import savemat

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    imlist = imlist or [f"img_{i:05d}" for i in range(len(X))]
    qimlist = qimlist or [f"query_{i:03d}" for i in range(len(Q))]
    with open(folder / f"gnd_{name}.pkl", "wb") as fh:
        gnd = [{k: np.asarray(v).tolist() for k, v in g.items()} for g in gnd]    # lists, as published
        pickle.dump({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, fh, protocol=2)
    savemat(folder / f"{name}_resnet_rsfm120k_gem.mat", {"Q": np.asarray(Q).T, "X": np.asarray(X).T})
    return folder


def synthetic_revisited(name: str = "synthetic", n_classes: int = 10, modes: int = 4, pts_per_mode: int = 20,
                        dim: int = 32, queries_per_class: int = 2, seed: int = 0) -> RevisitedSet:
    """An offline stand-in in the same layout: :func:`chains` landmarks; for a query drawn from view ``m``,
    the index images of the same landmark in views ``m +- 1`` are *easy*, farther views *hard*, and a
    few random images of the same landmark *junk*.

    Shapes:
        ``Q (n_classes * queries_per_class, dim)``, ``X`` the rest of the ``n_classes * modes * pts_per_mode``.
    """
    Xall, y = chains(n_classes, modes, pts_per_mode, dim, seed=seed)
    view = np.tile(np.repeat(np.arange(modes), pts_per_mode), n_classes)
    rng = np.random.default_rng(seed)
    q = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), queries_per_class, replace=False)
                                for c in range(n_classes)]))
    rest = np.setdiff1d(np.arange(len(y)), q)
    gnd = []
    for i in q:
        same = np.flatnonzero(y[rest] == y[i])
        near = np.abs(view[rest][same] - view[i]) <= 1
        junk = rng.choice(same, max(1, len(same) // 20), replace=False)
        gnd.append({"easy": np.setdiff1d(same[near], junk), "hard": np.setdiff1d(same[~near], junk),
                    "junk": junk})
    return RevisitedSet(name, Xall[q], Xall[rest], gnd, [f"img_{i:05d}" for i in rest],
                        [f"query_{i:05d}" for i in q])


MANUAL = ("Download gnd_{0}.pkl and {0}_resnet_rsfm120k_gem.mat from " + BASE
          + "/datasets/{0}/ and " + BASE + "/features/ into <cache>/{0}/ (no checksums are published).")

for _name in NAMES:
    register(Source(
        name=_name,
        description=f"revisited {'Oxford 5k' if 'ox' in _name else 'Paris 6k'}: 70 queries, revisited "
                    "Easy/Medium/Hard ground truth, ResNet-101 GeM descriptors (revisitop)",
        reader=lambda folder, _n=_name, **kw: read_revisited(folder, name=_n, **kw),
        offline=lambda _n=_name, **kw: synthetic_revisited(f"synthetic-{_n}", **kw),
        homepage=HOMEPAGE,
        licence="research use; images Flickr (see the revisitop page)",
        manual=MANUAL.format(_name),
    ))
