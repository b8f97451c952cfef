"""The data registry end to end: a local HTTP server stands in for the publisher of MNIST.

A copy of the real ``mnist`` source is registered with its RemoteFiles pointing at ``http://127.0.0.1:PORT/``
and carrying the fixtures' real checksums; the registry is restored after every test.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from l6kit import data
from l6kit.data import registry
from l6kit.data.images import ImageSet

MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):                     # keep the test output clean
        pass


class Server:
    """A static file server on 127.0.0.1 (random free port) in a daemon thread."""

    def __init__(self, directory: Path):
        handler = functools.partial(QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.running = False


@pytest.fixture(autouse=True)
def saved_registry(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")       # never send the local requests to a proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


@pytest.fixture
def served(tmp_path):
    """MNIST-format fixtures (3 train, 2 test images) behind a local server; yields (server, dir, truth)."""
    directory = tmp_path / "served"
    directory.mkdir()
    rng = np.random.default_rng(0)
    truth = {"train": (rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), np.array([5, 0, 4], np.uint8)),
             "test": (rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), np.array([7, 2], np.uint8))}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx_gz(directory / f"{prefix}-images-idx3-ubyte.gz", truth[split][0])
        write_idx_gz(directory / f"{prefix}-labels-idx1-ubyte.gz", truth[split][1])
    server = Server(directory)
    yield server, directory, truth
    server.stop()


def local_mnist(base: str, directory: Path, **md5_overrides: str) -> data.Source:
    """Register a copy of the real mnist source whose files come from ``base`` with the fixtures' MD5s."""
    real = data.get("mnist")
    files = tuple(dataclasses.replace(f, url=base + f.filename,
                                      md5=md5_overrides.get(f.filename, md5(directory / f.filename)))
                  for f in real.files)
    assert [f.filename for f in files] == list(MNIST_NAMES)
    return data.register(dataclasses.replace(real, files=files))


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refuse_connect(*args, **kwargs):
    raise OSError("network disabled in this test")


def cache_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_first_load_downloads_and_caches_then_works_offline(tmp_path, served, monkeypatch):
    server, directory, truth = served
    local_mnist(server.base, directory)
    root = tmp_path / "cache"
    ds = data.load("mnist", "paper", root=root)
    assert isinstance(ds, ImageSet) and ds.name == "mnist"
    assert ds.images.shape == (3, 28, 28) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images, truth["train"][0])
    assert ds.labels.tolist() == [5, 0, 4]
    folder = root / "mnist"
    assert cache_listing(folder) == sorted([*MNIST_NAMES, *(n + ".ok" for n in MNIST_NAMES)])
    for name in MNIST_NAMES:
        assert (folder / name).read_bytes() == (directory / name).read_bytes()

    server.stop()                                        # the publisher is gone, and so is the network
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    again = data.load("mnist", "laptop", root=root, split="test")
    assert again.images.shape == (2, 28, 28) and again.labels.tolist() == [7, 2]
    np.testing.assert_array_equal(again.images, truth["test"][0])


def test_l6kit_data_environment_variable_sets_the_cache(tmp_path, served, monkeypatch):
    server, directory, _ = served
    local_mnist(server.base, directory)
    monkeypatch.setenv("L6KIT_DATA", str(tmp_path / "env-cache"))
    assert data.data_home() == tmp_path / "env-cache"
    assert len(data.load("mnist", "paper")) == 3
    assert (tmp_path / "env-cache" / "mnist" / MNIST_NAMES[0]).exists()


def test_checksum_mismatch_leaves_nothing_in_the_cache(tmp_path, served):
    server, directory, _ = served
    local_mnist(server.base, directory, **{MNIST_NAMES[0]: "0" * 32})
    root = tmp_path / "cache"
    with pytest.raises(data.ChecksumError, match=MNIST_NAMES[0]) as err:
        data.load("mnist", "paper", root=root)
    assert "0" * 32 in str(err.value) and md5(directory / MNIST_NAMES[0]) in str(err.value)
    assert cache_listing(root / "mnist") == []                   # no file, no .ok marker, no .part temp


def test_sha256_is_checked_too(tmp_path, served):
    server, directory, _ = served
    real = local_mnist(server.base, directory)
    bad = dataclasses.replace(real.files[0], sha256="f" * 64)
    data.register(dataclasses.replace(real, files=(bad, *real.files[1:])))
    with pytest.raises(data.ChecksumError, match="sha256"):
        data.load("mnist", "paper", root=tmp_path)
    assert cache_listing(tmp_path / "mnist") == []


def test_connection_refused_names_the_url_and_the_target_path(tmp_path):
    base = f"http://127.0.0.1:{closed_port()}/"
    real = data.get("mnist")
    data.register(dataclasses.replace(real, files=tuple(dataclasses.replace(f, url=base + f.filename)
                                                          for f in real.files)))
    with pytest.raises(data.DataMissingError) as err:
        data.load("mnist", "paper", root=tmp_path)
    message = str(err.value)
    assert base + MNIST_NAMES[0] in message
    assert str(tmp_path / "mnist" / MNIST_NAMES[0]) in message
    assert "download failed" in message and "L6KIT_DATA" in message and real.homepage in message
    assert cache_listing(tmp_path / "mnist") == []


def test_http_404_is_a_missing_file(tmp_path, served):
    server, directory, _ = served
    local_mnist(server.base, directory)
    (directory / MNIST_NAMES[2]).unlink()
    with pytest.raises(data.DataMissingError, match="404") as err:
        data.load("mnist", "paper", root=tmp_path)
    assert server.base + MNIST_NAMES[2] in str(err.value)
    kept = [n for n in cache_listing(tmp_path / "mnist") if not n.endswith(".ok")]
    assert kept == sorted(MNIST_NAMES[:2])                # the files before the failure stay; no .part


def test_download_disabled_with_an_empty_cache(tmp_path, served):
    server, directory, _ = served
    local_mnist(server.base, directory)
    with pytest.raises(data.DataMissingError, match="downloading is disabled") as err:
        data.load("mnist", "paper", root=tmp_path, download=False)
    assert server.base + MNIST_NAMES[0] in str(err.value)
    assert str(tmp_path / "mnist" / MNIST_NAMES[0]) in str(err.value)
    assert not (tmp_path / "mnist").exists()


def test_download_disabled_with_a_hand_filled_cache(tmp_path, served):
    server, directory, _ = served
    local_mnist(server.base, directory)
    server.stop()
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in MNIST_NAMES:
        (folder / name).write_bytes((directory / name).read_bytes())
    assert len(data.load("mnist", "paper", root=tmp_path, download=False)) == 3
    assert all((folder / (n + ".ok")).exists() for n in MNIST_NAMES)


def test_a_hand_placed_wrong_file_is_rejected_and_removed(tmp_path, served):
    server, directory, _ = served
    local_mnist(server.base, directory)
    folder = tmp_path / "mnist"
    folder.mkdir()
    wrong = folder / MNIST_NAMES[0]
    wrong.write_bytes(b"not the MNIST you are looking for")
    with pytest.raises(data.ChecksumError, match="removed"):
        data.load("mnist", "paper", root=tmp_path)
    assert not wrong.exists() and not (folder / (MNIST_NAMES[0] + ".ok")).exists()
    assert len(data.load("mnist", "paper", root=tmp_path)) == 3       # the next load downloads the right one
    assert md5(wrong) == md5(directory / MNIST_NAMES[0])


def test_mnist_under_ci_is_offline_error():
    with pytest.raises(data.OfflineError, match="'ci' never touches the network"):
        data.load("mnist", "ci")


def test_unknown_source_and_profile_list_the_allowed_names():
    with pytest.raises(ValueError, match=r"unknown data source 'mnsit'; known: .*digits.*mnist"):
        data.load("mnsit", "paper")
    with pytest.raises(ValueError, match=r"unknown profile 'gpu'; allowed: ci, laptop, paper"):
        data.load("mnist", "gpu")
    with pytest.raises(ValueError, match="unknown profile"):
        data.load("digits", "CI")


def test_register_and_remote_file_validate_their_input():
    with pytest.raises(ValueError, match="needs an md5, a sha256 or a sha256_list"):
        data.RemoteFile("http://127.0.0.1/x", "x")
    with pytest.raises(ValueError, match="neither files, offline data nor manual"):
        data.register(data.Source("empty", "nothing at all"))
    assert "empty" not in data.sources()


def test_digits_under_ci_with_sockets_disabled(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    ds = data.load("digits", "ci")
    assert len(ds) == 1797 and ds.images.shape == (1797, 8, 8) and len(ds.classes) == 10
    assert set(ds.labels.tolist()) == set(range(10))


def test_manual_source_reads_the_users_folder_outside_ci(tmp_path):
    """A source fetched by hand (no files, a reader, manual steps) reads root/name; ci never reads it."""
    from l6kit.data import registry

    seen = []
    source = registry.Source(name="manual-demo", description="demo", reader=lambda folder, **kw: seen.append(folder)
                             or "read", manual="Download it yourself.")
    registry.register(source)
    try:
        assert registry.load("manual-demo", "paper", root=tmp_path) == "read"
        assert seen == [tmp_path / "manual-demo"]
        with pytest.raises(registry.OfflineError):
            registry.load("manual-demo", "ci", root=tmp_path)
    finally:
        registry._REGISTRY.pop("manual-demo", None)
