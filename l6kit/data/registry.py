"""The data registry: one name per data source, one way to get it.

``load(name, profile)``:

* under ``ci`` it returns data generated in code or shipped inside an installed package, and has **no
  network code path at all**: a source without offline data raises :class:`OfflineError`;
* under ``laptop``/``paper`` it makes sure every file of the source is in the cache
  (``$L6KIT_DATA``, default ``~/.cache/l6kit``), downloading it if allowed, verifying its checksum, then
  parses it with the source's reader.

Downloads go to a temporary file beside the target and are renamed only once the checksum matches, so the
cache never holds a partial or corrupt file. A file placed in the cache by hand is verified once, on first
use, and a ``<file>.ok`` marker records that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from l6kit.profiles import PROFILES, progress_disabled


class DataError(RuntimeError):
    """Base class of the data registry's errors."""


class OfflineError(DataError):
    """The source has no offline data and the profile may not touch the network."""


class DataMissingError(DataError):
    """A file is not in the cache and cannot be downloaded (offline, refused, or download disabled)."""


class ChecksumError(DataError):
    """A downloaded or hand-placed file does not match its published checksum."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of a source: where it comes from and what it must hash to.

    Attributes:
        url: the official download address.
        filename: the name in the cache folder.
        md5: published MD5 hex digest (the form most dataset pages publish), or ``None``.
        sha256: SHA-256 hex digest, or ``None``.
        sha256_list: URL of a checksum list the publisher maintains beside the files (``SHA256SUMS.txt``,
            lines ``<hex>  <name>``), used when no digest is recorded here. The list is downloaded once into
            the same cache folder and the file must match its entry. At least one of the three must be given.
    """

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    sha256_list: str | None = None

    def __post_init__(self):
        if not (self.md5 or self.sha256 or self.sha256_list):
            raise ValueError(f"{self.filename}: a RemoteFile needs an md5, a sha256 or a sha256_list")


@dataclasses.dataclass(frozen=True)
class Source:
    """A registered data source.

    Attributes:
        name: registry key (``"mnist"``).
        description: one line for ``l6kit list`` and error messages.
        files: the files to fetch for ``laptop``/``paper``; empty for offline sources, and for sources a person
            downloads by hand (``manual``), whose reader then gets ``root/name`` and does its own checks.
        reader: ``reader(folder, **kwargs)`` parses the cached files in ``folder``.
        offline: ``offline(**kwargs)`` returns data without network (generated or package-bundled); used
            under ``ci``, and under every profile when ``files`` is empty.
        homepage: where a person reads about the data and its terms.
        licence: the licence or terms, in a few words.
        manual: steps for data that cannot be downloaded automatically (credentials, registration).
    """

    name: str
    description: str
    files: tuple[RemoteFile, ...] = ()
    reader: Callable[..., Any] | None = None
    offline: Callable[..., Any] | None = None
    homepage: str = ""
    licence: str = ""
    manual: str = ""


_REGISTRY: dict[str, Source] = {}


def register(source: Source) -> Source:
    """Add ``source`` to the registry (replacing one of the same name) and return it."""
    if not source.files and source.offline is None and not source.manual:
        raise ValueError(f"source {source.name!r} has neither files, offline data nor manual steps")
    _REGISTRY[source.name] = source
    return source


def sources() -> dict[str, Source]:
    """All registered sources by name."""
    return dict(_REGISTRY)


def get(name: str) -> Source:
    """The source called ``name``. Raises ``ValueError`` listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown data source {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def data_home() -> Path:
    """The cache root: ``$L6KIT_DATA`` if set, else ``~/.cache/l6kit``."""
    return Path(os.environ.get("L6KIT_DATA", Path.home() / ".cache" / "l6kit")).expanduser()


def load(name: str, profile: str = "ci", *, root: str | os.PathLike | None = None, download: bool = True,
         **kwargs: Any) -> Any:
    """Load the data source ``name`` for ``profile``.

    Args:
        name: a registered source.
        profile: ``"ci"`` (offline only) | ``"laptop"`` | ``"paper"``.
        root: cache root (default :func:`data_home`); files live in ``root/name/``.
        download: allow downloading missing files (``laptop``/``paper`` only).
        **kwargs: passed to the source's reader or offline generator (e.g. ``split="train"``).

    Returns:
        Whatever the source's reader returns (documented per source).

    Raises:
        ValueError: unknown source or profile.
        OfflineError: ``ci`` asked for a source that only exists online.
        DataMissingError: a file is missing and cannot be downloaded; the message names the URL and the path
            where a manually downloaded file should go.
        ChecksumError: a file does not match its published checksum (it is removed).
    """
    source = get(name)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    folder = (Path(root) if root is not None else data_home()) / name
    if profile == "ci" or (not source.files and source.reader is None):
        if source.offline is None:
            raise OfflineError(f"data source {name!r} ({source.description}) needs a download, and profile "
                               f"'ci' never touches the network; use profile 'laptop' or 'paper'")
        return source.offline(**kwargs)
    if not source.files:                    # files fetched by hand (credentials, no published checksums)
        return source.reader(folder, **kwargs)
    for remote in source.files:
        ensure(remote, folder, download=download, source=source)
    if source.reader is None:
        raise DataError(f"data source {name!r} has no reader")
    return source.reader(folder, **kwargs)


def ensure(remote: RemoteFile, folder: Path, *, download: bool = True, source: Source | None = None) -> Path:
    """Make sure ``folder/remote.filename`` exists and matches its checksum; return its path.

    A file already verified (``.ok`` marker) is returned at once; a hand-placed file is verified once.

    Raises:
        DataMissingError, ChecksumError: see :func:`load`.
    """
    path = folder / remote.filename
    marker = path.with_name(path.name + ".ok")
    if path.exists() and marker.exists():
        return path
    if not (remote.md5 or remote.sha256):
        remote = dataclasses.replace(remote, sha256=_listed_sha256(remote, folder, download, source))
    if path.exists():
        if not marker.exists():
            _verify(path, remote)
            marker.touch()
        return path
    if not download:
        raise DataMissingError(_missing_message(remote, path, source, "downloading is disabled"))
    fetch(remote, path, source=source)
    marker.touch()
    return path


def read_checksum_list(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``SHA256SUMS.txt``-style list (lines ``<hex digest>  <name>``): name -> digest (lower case)."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2:
            sums[parts[1].lstrip("*").strip()] = parts[0].lower()
    return sums


def _listed_sha256(remote: RemoteFile, folder: Path, download: bool, source: Source | None) -> str:
    """The SHA-256 that ``remote.sha256_list`` gives for ``remote.filename`` (the list is cached in ``folder``)."""
    list_path = folder / Path(urllib.parse.urlparse(remote.sha256_list).path).name
    if not list_path.exists():
        listing = RemoteFile(remote.sha256_list, list_path.name, sha256="-")   # the list is the reference
        if not download:
            raise DataMissingError(_missing_message(listing, list_path, source, "downloading is disabled"))
        fetch(listing, list_path, source=source, verify=False)
    sums = read_checksum_list(list_path)
    if remote.filename not in sums:
        raise ChecksumError(f"{remote.filename} is not listed in {list_path} (from {remote.sha256_list}); "
                            f"delete the list to download it again")
    return sums[remote.filename]


def fetch(remote: RemoteFile, path: Path, *, source: Source | None = None, timeout: float = 60.0,
          verify: bool = True) -> Path:
    """Download ``remote.url`` to ``path`` with a progress bar, verifying the checksum before the rename.

    Raises:
        DataMissingError: the download failed (offline, HTTP error); nothing is left behind.
        ChecksumError: the payload does not match; nothing is left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(remote.url, timeout=timeout) as response:  # noqa: S310
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=remote.filename,
                              disable=progress_disabled()) as bar:
                        while chunk := response.read(1 << 20):
                            out.write(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                why = f"download failed: {reason}"
                raise DataMissingError(_missing_message(remote, path, source, why)) from exc
        if verify:
            _verify(tmp, remote, shown=path)
        os.replace(tmp, path)
        return path
    finally:
        tmp.unlink(missing_ok=True)


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file (streamed, 1 MiB at a time)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, remote: RemoteFile, shown: Path | None = None) -> None:
    """Raise :class:`ChecksumError` (and delete ``path``) if ``path`` does not match ``remote``."""
    for algorithm, expected in (("sha256", remote.sha256), ("md5", remote.md5)):
        if expected:
            got = file_digest(path, algorithm)
            if got != expected.lower():
                path.unlink(missing_ok=True)
                raise ChecksumError(f"{shown or path}: {algorithm} {got} does not match the published "
                                    f"{expected} (from {remote.url}); the file was removed, download it again")


def _missing_message(remote: RemoteFile, path: Path, source: Source | None, why: str) -> str:
    lines = [f"{remote.filename} is not in the cache and {why}.",
             f"  Download {remote.url}",
             f"  and put it at {path}",
             "  (set $L6KIT_DATA to use another cache folder)."]
    if source is not None and source.manual:
        lines.append(f"  {source.manual}")
    if source is not None and source.homepage:
        lines.append(f"  About the data and its terms: {source.homepage}")
    return "\n".join(lines)
