"""Image readers (IDX, CIFAR-10 tarball, SVHN .mat) on tiny fixtures written here in the real formats.

Everything runs offline: the end-to-end tests place the fixtures in the cache by hand, with sockets disabled.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import socket
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from l6kit import data
from l6kit.data import images, registry
from l6kit.data.images import (
    DIGIT_CLASSES,
    FASHION_CLASSES,
    read_cifar10,
    read_fashion_mnist,
    read_idx,
    read_mnist,
    read_svhn,
)

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# --- fixture writers (real file formats) --------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of ``array``: 00 00 type ndim, big-endian uint32 sizes, big-endian payload."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    code = codes[array.dtype.kind + str(array.dtype.itemsize)]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def make_digit_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write_mnist_folder(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Four MNIST-named IDX .gz files: 3 training images, 2 test images."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {"train": make_digit_images(3, 0), "test": make_digit_images(2, 1)}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", out[split][0])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", out[split][1])
    return out


def write_cifar_tar(path: Path, per_batch: int = 2, omit: str | None = None) -> dict[str, np.ndarray]:
    """A CIFAR-10-python style tar.gz: 5 training batches + test batch of ``per_batch`` HWC images each."""
    rng = np.random.default_rng(2)
    hwc = rng.integers(0, 256, (6 * per_batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 6 * per_batch)
    members = {"batches.meta": {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072}}
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        sl = slice(i * per_batch, (i + 1) * per_batch)
        rows = hwc[sl].transpose(0, 3, 1, 2).reshape(per_batch, 3072)      # R plane, G plane, B plane
        members[name] = {b"batch_label": name.encode(), b"data": rows, b"labels": labels[sl].tolist(),
                         b"filenames": [b"x.png"] * per_batch}
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in members.items():
            if name == omit:
                continue
            payload = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    n_train = 5 * per_batch
    return {"train_x": hwc[:n_train], "train_y": labels[:n_train], "test_x": hwc[n_train:],
            "test_y": labels[n_train:]}


def write_svhn_mat(path: Path, labels: list[int], seed: int = 3) -> np.ndarray:
    """An SVHN-style .mat: X (32, 32, 3, n) uint8, y (n, 1) uint8 (10 = digit 0); returns (n, 32, 32, 3)."""
    rng = np.random.default_rng(seed)
    nhwc = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    scipy.io.savemat(path, {"X": nhwc.transpose(1, 2, 3, 0), "y": np.array(labels, np.uint8)[:, None]})
    return nhwc


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture
def saved_registry():
    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


# --- IDX ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_read_idx_round_trips_every_type(tmp_path, dtype, gz):
    array = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype)
    if dtype == "u1":
        array = array + 7
    out = read_idx(write_idx(tmp_path / "a.idx", array, gz=gz))
    assert out.shape == (2, 3, 4) and out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 1                                        # writable, native order


def test_read_idx_parses_mnist_style_images_and_labels(tmp_path):
    imgs, labels = make_digit_images(3, 0)
    x = read_idx(write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs))
    y = read_idx(write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels))
    assert x.shape == (3, 28, 28) and x.dtype == np.uint8
    assert y.shape == (3,) and y.dtype == np.uint8
    np.testing.assert_array_equal(x, imgs)
    np.testing.assert_array_equal(y, labels)
    header = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())[:16]
    assert header == bytes.fromhex("00000803") + struct.pack(">3I", 3, 28, 28)


@pytest.mark.parametrize("raw, match", [
    (b"", "not an IDX file"),
    (b"\x00\x00", "not an IDX file"),
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "not an IDX file"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03" + struct.pack(">2I", 3, 28), "header truncated"),
    (b"\x00\x00\x08\x03" + struct.pack(">3I", 3, 28, 28) + bytes(28 * 28 * 2), "payload truncated"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes(3), "trailing bytes"),
    (b"\x00\x00\x0c\x01" + struct.pack(">I", 2) + bytes(7), "payload truncated"),
])
def test_read_idx_rejects_malformed_files_naming_them(tmp_path, raw, match):
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=match) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_rejects_a_truncated_gzip_stream(tmp_path):
    imgs, _ = make_digit_images(3, 0)
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="gzip") as err:
        read_idx(path)
    assert str(path) in str(err.value)


# --- MNIST family -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reader, name, classes", [(read_mnist, "mnist", DIGIT_CLASSES),
                                                   (read_fashion_mnist, "fashion-mnist", FASHION_CLASSES)])
def test_mnist_family_readers(tmp_path, reader, name, classes):
    truth = write_mnist_folder(tmp_path)
    for split, n in (("train", 3), ("test", 2)):
        ds = reader(tmp_path, split=split)
        assert ds.name == name and len(ds) == n
        assert ds.images.shape == (n, 28, 28) and ds.images.dtype == np.uint8
        assert ds.labels.shape == (n,) and ds.labels.dtype == np.int64
        np.testing.assert_array_equal(ds.images, truth[split][0])
        np.testing.assert_array_equal(ds.labels, truth[split][1])
        assert ds.classes == classes and len(ds.classes) == 10
    assert read_mnist(tmp_path).labels.tolist() == truth["train"][1].tolist()     # default split is train


def test_fashion_class_names():
    assert FASHION_CLASSES == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                               "Sneaker", "Bag", "Ankle boot")
    assert DIGIT_CLASSES == tuple("0123456789")


def test_mnist_reader_rejects_mismatched_images_and_labels(tmp_path):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="mnist train"):
        read_mnist(tmp_path)


@pytest.mark.parametrize("reader", [read_mnist, read_fashion_mnist, read_cifar10, read_svhn])
@pytest.mark.parametrize("split", ["extra", "valid", "all", "Train"])
def test_unknown_split_lists_allowed_values(tmp_path, reader, split):
    with pytest.raises(ValueError, match=r"unknown split .*allowed: train, test"):
        reader(tmp_path, split=split)


# --- CIFAR-10 -----------------------------------------------------------------------------------------------

def test_cifar10_reader(tmp_path):
    truth = write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", per_batch=2)
    train = read_cifar10(tmp_path, split="train")
    assert train.name == "cifar10"
    assert train.images.shape == (10, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.images.flags.c_contiguous
    assert train.labels.shape == (10,) and train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.images, truth["train_x"])       # batch order 1..5, HWC, RGB
    np.testing.assert_array_equal(train.labels, truth["train_y"])
    assert train.classes == tuple(CIFAR_NAMES)
    test = read_cifar10(tmp_path, split="test")
    assert test.images.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(test.images, truth["test_x"])
    np.testing.assert_array_equal(test.labels, truth["test_y"])


def test_cifar10_channel_layout(tmp_path):
    """A row of ``data`` is 1024 red, 1024 green, 1024 blue values, each plane row-major."""
    write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", per_batch=1)
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz") as tar:
        row = pickle.load(tar.extractfile("cifar-10-batches-py/test_batch"), encoding="bytes")[b"data"][0]
    img = read_cifar10(tmp_path, split="test").images[0]
    assert img[0, 1, 0] == row[1] and img[1, 0, 0] == row[32]
    assert img[0, 0, 1] == row[1024] and img[0, 0, 2] == row[2048] and img[31, 31, 2] == row[3071]


def test_cifar10_reader_names_a_missing_member(tmp_path):
    write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", omit="data_batch_3")
    with pytest.raises(ValueError, match="cifar-10-batches-py/data_batch_3"):
        read_cifar10(tmp_path, split="train")
    assert len(read_cifar10(tmp_path, split="test")) == 2                 # the test split does not need it


# --- SVHN ---------------------------------------------------------------------------------------------------

def test_svhn_reader_maps_label_10_to_0(tmp_path):
    nhwc = write_svhn_mat(tmp_path / "train_32x32.mat", [10, 1, 9, 10, 5])
    write_svhn_mat(tmp_path / "test_32x32.mat", [3, 10], seed=4)
    ds = read_svhn(tmp_path)
    assert ds.name == "svhn" and ds.classes == DIGIT_CLASSES
    assert ds.images.shape == (5, 32, 32, 3) and ds.images.dtype == np.uint8 and ds.images.flags.c_contiguous
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [0, 1, 9, 0, 5]
    np.testing.assert_array_equal(ds.images, nhwc)
    assert read_svhn(tmp_path, split="test").labels.tolist() == [3, 0]


def test_svhn_reader_rejects_wrong_variables(tmp_path):
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"images": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="expected variables X and y"):
        read_svhn(tmp_path)
    scipy.io.savemat(tmp_path / "train_32x32.mat",
                     {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(ValueError, match=r"\(32, 32, 3, n\)"):
        read_svhn(tmp_path)


# --- the registered sources ---------------------------------------------------------------------------------

def test_sources_are_registered_with_official_urls_checksums_and_terms():
    expected_hosts = {"mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
                      "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "cifar10": "https://www.cs.toronto.edu/~kriz/",
                      "svhn": "http://ufldl.stanford.edu/housenumbers/"}
    all_sources = data.sources()
    for name, host in expected_hosts.items():
        src = all_sources[name]
        assert src.files and src.reader is not None and src.offline is None
        assert src.homepage.startswith("http") and src.licence and src.description
        for f in src.files:
            assert f.url.startswith(host) and f.url.endswith(f.filename)
            assert len(f.md5) == 32 and int(f.md5, 16) >= 0
    assert [f.filename for f in all_sources["svhn"].files] == ["train_32x32.mat", "test_32x32.mat"]
    assert "non-commercial" in all_sources["svhn"].licence
    assert all_sources["mnist"].files[0].md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert all_sources["cifar10"].files[0].md5 == "c58f30108f718f92721af3b95e74349a"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "svhn"])
def test_real_sources_are_refused_under_ci(name):
    with pytest.raises(data.OfflineError, match="laptop"):
        data.load(name, "ci")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "svhn"])
def test_load_end_to_end_from_a_hand_filled_cache(tmp_path, name, no_network, saved_registry):
    """Fixtures placed in the cache by hand are verified once (``.ok``) and parsed, with sockets disabled."""
    folder = tmp_path / name
    folder.mkdir()
    if name in ("mnist", "fashion-mnist"):
        truth = write_mnist_folder(folder)
        expected = {"train": truth["train"][0].shape, "test": truth["test"][0].shape}
    elif name == "cifar10":
        write_cifar_tar(folder / "cifar-10-python.tar.gz")
        expected = {"train": (10, 32, 32, 3), "test": (2, 32, 32, 3)}
    else:
        write_svhn_mat(folder / "train_32x32.mat", [10, 2, 3])
        write_svhn_mat(folder / "test_32x32.mat", [10], seed=5)
        expected = {"train": (3, 32, 32, 3), "test": (1, 32, 32, 3)}
    real = data.get(name)
    files = tuple(dataclasses.replace(f, md5=md5(folder / f.filename)) for f in real.files)
    data.register(dataclasses.replace(real, files=files))
    for split, shape in expected.items():
        ds = data.load(name, "paper", root=tmp_path, split=split)
        assert isinstance(ds, images.ImageSet) and ds.images.shape == shape and len(ds.classes) == 10
    assert all((folder / (f.filename + ".ok")).exists() for f in files)


# --- the offline guard --------------------------------------------------------------------------------------

def test_digits_under_ci_needs_no_network(no_network):
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    ds = data.load("digits", "ci")
    assert ds.images.shape == (1797, 8, 8) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (1797,) and sorted(np.unique(ds.labels)) == list(range(10))
    assert len(ds.classes) == 10 and ds.images.max() == 255
