"""Image classification data sets: the offline ``digits`` and the real MNIST-family, CIFAR and SVHN sources.

Every source returns an :class:`ImageSet`. ``digits`` (scikit-learn's bundled 8x8 UCI digits) works under
every profile without network; the others are downloaded, verified and parsed by l6kit's own readers
(IDX, CIFAR pickle batches, SVHN ``.mat``) under ``laptop``/``paper``.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np

from l6kit.data.registry import RemoteFile, Source, register


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Labelled images.

    Attributes:
        name: source name (``"mnist"``).
        images: shape ``(n, H, W)`` (grey) or ``(n, H, W, 3)`` (colour), uint8 in 0..255.
        labels: shape ``(n,)``, int64 class indices.
        classes: class names, indexed by label.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def flat(self) -> np.ndarray:
        """Images as vectors in [0, 1], shape ``(n, H*W*C)``, float32."""
        return self.images.reshape(len(self.images), -1).astype(np.float32) / 255.0

    def subsample(self, per_class: int, seed: int = 0) -> ImageSet:
        """At most ``per_class`` images of each class, drawn without replacement, in a shuffled order."""
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.permutation(np.flatnonzero(self.labels == c))[:per_class]
                               for c in np.unique(self.labels)])
        keep = rng.permutation(keep)
        return dataclasses.replace(self, images=self.images[keep], labels=self.labels[keep])


def load_digits_offline(split: str = "all") -> ImageSet:
    """scikit-learn's bundled UCI optical digits (1,797 8x8 images, ~180 per class), no network.

    Pixel values 0..16 are rescaled to 0..255 (x 255/16, rounded), which keeps all 17 levels distinct.

    Args:
        split: only ``"all"`` exists (the bundled file is one set); accepted for a uniform signature.
    """
    from sklearn.datasets import load_digits

    if split not in ("all", "train"):
        raise ValueError(f"digits has one split, 'all'; got {split!r}")
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)    # (1797, 8, 8)
    return ImageSet("digits", images, bunch.target.astype(np.int64), tuple(str(i) for i in range(10)))


register(Source(
    name="digits",
    description="UCI optical digits bundled with scikit-learn: 1,797 8x8 grey images, 10 classes",
    offline=load_digits_offline,
    homepage="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
    licence="CC BY 4.0",
))


# --- readers for the real sources --------------------------------------------------------------------------

SPLITS: tuple[str, ...] = ("train", "test")
DIGIT_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10))
FASHION_CLASSES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                    "Sneaker", "Bag", "Ankle boot")

# IDX type code -> big-endian numpy dtype (the format stores every multi-byte value big-endian).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzipped or not (detected from the content).

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions ``d``, then ``d`` big-endian uint32 sizes; the payload follows.

    Args:
        path: the file.

    Returns:
        The array, shape given by the header (MNIST images ``(n, 28, 28)``, labels ``(n,)``), in native
        byte order.

    Raises:
        ValueError: malformed header, unreadable gzip stream, or a payload shorter or longer than the header
            says; the message names the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: not a readable gzip stream ({exc})") from exc
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (header {raw[:4].hex() or 'empty'}, "
                         f"expected 0000 + type + ndim)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}; known: "
                         f"{', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ValueError(f"{path}: IDX header truncated ({len(raw)} bytes, {ndim} dimensions need {start})")
    shape = struct.unpack(f">{ndim}I", raw[4:start])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    got = len(raw) - start
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise ValueError(f"{path}: IDX payload {what}: shape {shape} of {dtype.name} needs {expected} bytes, "
                         f"found {got}")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def _read_idx_pair(folder: Path, split: str, name: str, classes: tuple[str, ...]) -> ImageSet:
    _check_split(split)
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(Path(folder) / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(Path(folder) / f"{prefix}-labels-idx1-ubyte.gz")
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or images.dtype != np.uint8:
        raise ValueError(f"{name} {split}: images {images.shape} {images.dtype} and labels {labels.shape} "
                         f"do not form an (n, H, W) uint8 / (n,) pair")
    return ImageSet(name, images, labels.astype(np.int64), classes)


def read_mnist(folder: Path, split: str = "train") -> ImageSet:
    """Read MNIST from its four IDX ``.gz`` files in ``folder``.

    Args:
        folder: holds ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).

    Returns:
        ImageSet: images ``(n, 28, 28)`` uint8, labels ``(n,)`` int64, classes ``"0".."9"``.
    """
    return _read_idx_pair(folder, split, "mnist", DIGIT_CLASSES)


def read_fashion_mnist(folder: Path, split: str = "train") -> ImageSet:
    """Read Fashion-MNIST from its four IDX ``.gz`` files in ``folder`` (same layout as MNIST).

    Args:
        folder: holds ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).

    Returns:
        ImageSet: images ``(n, 28, 28)`` uint8, labels ``(n,)`` int64, classes :data:`FASHION_CLASSES`.
    """
    return _read_idx_pair(folder, split, "fashion-mnist", FASHION_CLASSES)


def read_cifar10(folder: Path, split: str = "train") -> ImageSet:
    """Read CIFAR-10 straight from ``cifar-10-python.tar.gz`` (pickled batches, no extraction).

    Args:
        folder: holds ``cifar-10-python.tar.gz``.
        split: ``"train"`` (``data_batch_1..5``, 50,000 images, in batch order) or ``"test"``
            (``test_batch``, 10,000).

    Returns:
        ImageSet: images ``(n, 32, 32, 3)`` uint8 (HWC, RGB), labels ``(n,)`` int64, classes from
        ``batches.meta``.

    Raises:
        ValueError: a batch or the meta file is missing from the archive, or a batch is malformed.
    """
    _check_split(split)
    path = Path(folder) / "cifar-10-python.tar.gz"
    base = "cifar-10-batches-py/"
    batches = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    wanted = {base + b for b in [*batches, "batches.meta"]}
    found: dict[str, dict] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:                           # one pass over the stream, in archive order
            if member.name in wanted and member.isfile():
                with tar.extractfile(member) as fh:
                    found[member.name] = pickle.load(fh, encoding="bytes")  # noqa: S301 (checksummed file)
    missing = sorted(wanted - found.keys())
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    images, labels = [], []
    for b in batches:
        batch = found[base + b]
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch[b"labels"]) != len(data):
            raise ValueError(f"{path}: {b} has data {data.shape} and {len(batch[b'labels'])} labels; "
                             f"expected (n, 3072) and n")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))   # rows are R, G, B planes
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    classes = tuple(n.decode() for n in found[base + "batches.meta"][b"label_names"])
    return ImageSet("cifar10", np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), classes)


def read_svhn(folder: Path, split: str = "train") -> ImageSet:
    """Read SVHN (cropped digits) from ``{split}_32x32.mat``; label 10 (digit 0) becomes 0.

    Args:
        folder: holds ``train_32x32.mat`` and ``test_32x32.mat``.
        split: ``"train"`` (73,257 images) or ``"test"`` (26,032).

    Returns:
        ImageSet: images ``(n, 32, 32, 3)`` uint8 (the file stores ``(32, 32, 3, n)``), labels ``(n,)`` int64
        in 0..9, classes ``"0".."9"``.

    Raises:
        ValueError: ``X``/``y`` missing or of the wrong shape.
    """
    from scipy.io import loadmat

    _check_split(split)
    path = Path(folder) / f"{split}_32x32.mat"
    mat = loadmat(path)
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: expected variables X and y, found {sorted(k for k in mat if k[0] != '_')}")
    x, y = mat["X"], mat["y"].reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise ValueError(f"{path}: X {x.shape} and y ({len(y)},) are not (32, 32, 3, n) and (n,)")
    y[y == 10] = 0
    return ImageSet("svhn", np.ascontiguousarray(x.transpose(3, 0, 1, 2), dtype=np.uint8), y, DIGIT_CLASSES)


def _idx_files(base_url: str, md5s: tuple[str, str, str, str]) -> tuple[RemoteFile, ...]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
    return tuple(RemoteFile(base_url + n, n, md5=m) for n, m in zip(names, md5s, strict=True))


register(Source(
    name="mnist",
    description="MNIST handwritten digits: 60,000 + 10,000 28x28 grey images, 10 classes",
    files=_idx_files("https://ossci-datasets.s3.amazonaws.com/mnist/",
                     ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                      "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")),
    reader=read_mnist,
    homepage="http://yann.lecun.com/exdb/mnist/",
    licence="CC BY-SA 3.0",
))

register(Source(
    name="fashion-mnist",
    description="Fashion-MNIST (Zalando): 60,000 + 10,000 28x28 grey clothing images, 10 classes",
    files=_idx_files("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                     ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                      "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
    reader=read_fashion_mnist,
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    licence="MIT",
))

register(Source(
    name="cifar10",
    description="CIFAR-10: 50,000 + 10,000 32x32 colour images, 10 classes",
    files=(RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                      md5="c58f30108f718f92721af3b95e74349a"),),
    reader=read_cifar10,
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    licence="no licence stated; cite Krizhevsky (2009)",
))

register(Source(
    name="svhn",
    description="SVHN cropped digits: 73,257 + 26,032 32x32 colour images, 10 classes (extra set not used)",
    files=(RemoteFile("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "train_32x32.mat",
                      md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
           RemoteFile("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "test_32x32.mat",
                      md5="eb5a983be6a315427106f1b164d9cef3")),
    reader=read_svhn,
    homepage="http://ufldl.stanford.edu/housenumbers/",
    licence="non-commercial use only; never redistributed",
))
