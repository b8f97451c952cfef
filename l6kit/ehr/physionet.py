"""PhysioNet/CinC Challenge 2012: the record format, one reader for real and synthetic stays, and the source.

A *record* is one ICU stay, one text file per stay::

    Time,Parameter,Value
    00:00,RecordID,132539
    00:00,Age,54
    00:00,Gender,0
    00:00,Height,-1
    00:00,ICUType,4
    00:00,Weight,-1
    00:07,GCS,15
    00:07,HR,73
    ...

``Time`` is hours:minutes since ICU admission (hours may exceed 24; stays cover 48 h). The six *descriptors*
(RecordID, Age, Gender, Height, ICUType, Weight) come first at 00:00; -1 marks a missing descriptor. A later
``Weight`` line is a measurement. Outcomes live in ``Outcomes-{a,b,c}.txt`` with the header
``RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death``.

:func:`read_texts` parses records given as text; :func:`read_physionet2012` reads a folder holding the real
download (tarballs or extracted folders) and hands the texts to the same function, and so does the synthetic
generator in :mod:`l6kit.ehr.synthetic`. Malformed lines are never dropped silently: with ``errors="raise"`` the
first one raises :class:`PhysioNetFormatError` naming file and line; with ``errors="report"`` each is skipped and
listed in :attr:`PhysioNetData.problems`.

References:
    Silva, Moody, Scott, Celi, Mark. *Predicting In-Hospital Mortality of ICU Patients: The PhysioNet/Computing
    in Cardiology Challenge 2012.* CinC 2012. https://physionet.org/content/challenge-2012/1.0.0/
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from l6kit.data.registry import (
    ChecksumError,
    DataMissingError,
    RemoteFile,
    Source,
    file_digest,
    load,
    read_checksum_list,
    register,
)

URL = "https://physionet.org/files/challenge-2012/1.0.0/"
HOMEPAGE = "https://physionet.org/content/challenge-2012/1.0.0/"
SETS: tuple[str, ...] = ("a", "b", "c")

# The 36 time series of the official DuETT code (torchtime's order, Weight excluded: it is a descriptor there).
VARIABLES: tuple[str, ...] = (
    "Albumin", "ALP", "ALT", "AST", "Bilirubin", "BUN", "Cholesterol", "Creatinine", "DiasABP", "FiO2", "GCS",
    "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "Mg", "MAP", "MechVent", "Na", "NIDiasABP", "NIMAP",
    "NISysABP", "PaCO2", "PaO2", "pH", "Platelets", "RespRate", "SaO2", "SysABP", "Temp", "TroponinI",
    "TroponinT", "Urine", "WBC")
DESCRIPTORS: tuple[str, ...] = ("RecordID", "Age", "Gender", "Height", "ICUType", "Weight")
OUTCOME_COLUMNS: tuple[str, ...] = ("RecordID", "SAPS-I", "SOFA", "Length_of_stay", "Survival",
                                    "In-hospital_death")
HEADER = "Time,Parameter,Value"
_TIME = re.compile(r"^(\d{1,3}):([0-5]\d)$")

MANUAL = (
    "PhysioNet-2012 is open access. l6kit downloads set-a/b/c.tar.gz and Outcomes-a/b/c.txt from " + URL
    + " and checks each against PhysioNet's own SHA256SUMS.txt (fetched once beside them). To fetch by hand: "
    "`for f in SHA256SUMS.txt set-{a,b,c}.tar.gz Outcomes-{a,b,c}.txt; do wget -N " + URL + "$f; done`, "
    "then `sha256sum -c --ignore-missing SHA256SUMS.txt`, into $L6KIT_DATA/physionet2012 (or pass `root`).")
FILES: tuple[str, ...] = tuple(f"set-{s}.tar.gz" for s in SETS) + tuple(f"Outcomes-{s}.txt" for s in SETS)


class PhysioNetFormatError(ValueError):
    """A malformed line in a record or outcomes file; ``file`` and ``line`` (1-based) say where."""

    def __init__(self, file: str, line: int, reason: str, text: str = ""):
        self.file, self.line, self.reason, self.text = file, line, reason, text
        super().__init__(f"{file}, line {line}: {reason}" + (f": {text!r}" if text else ""))


@dataclasses.dataclass(frozen=True)
class ParseProblem:
    """One malformed line skipped under ``errors="report"`` (``line`` 0: the file as a whole)."""

    file: str
    line: int
    reason: str
    text: str = ""


@dataclasses.dataclass(frozen=True)
class PhysioNetData:
    """Parsed stays in long (event) form.

    Attributes:
        record_ids: shape ``(n,)`` int64, in the order the records were read.
        descriptors: shape ``(n, 5)`` float64: Age, Gender, Height, ICUType, Weight (missing -1 -> NaN).
        stay: shape ``(m,)`` int64, the row of ``record_ids`` each event belongs to.
        time_h: shape ``(m,)`` float64, hours since admission.
        param: shape ``(m,)`` int64, index into ``parameters``.
        value: shape ``(m,)`` float64.
        parameters: names of the measured parameters, in order of first appearance.
        outcomes: one row per record (aligned with ``record_ids``), columns :data:`OUTCOME_COLUMNS`.
        problems: malformed lines skipped under ``errors="report"`` (empty under ``"raise"``).
    """

    record_ids: np.ndarray
    descriptors: np.ndarray
    stay: np.ndarray
    time_h: np.ndarray
    param: np.ndarray
    value: np.ndarray
    parameters: tuple[str, ...]
    outcomes: pd.DataFrame
    problems: tuple[ParseProblem, ...] = ()

    def __len__(self) -> int:
        return len(self.record_ids)

    @property
    def labels(self) -> np.ndarray:
        """In-hospital death, shape ``(n,)`` int64."""
        return self.outcomes["In-hospital_death"].to_numpy(dtype=np.int64)

    def events(self, i: int) -> pd.DataFrame:
        """The measurements of stay ``i`` as rows ``time_h, parameter, value``."""
        rows = self.stay == i
        return pd.DataFrame({"time_h": self.time_h[rows], "parameter": np.asarray(self.parameters)[
            self.param[rows]], "value": self.value[rows]})


class _Collector:
    """Raise or collect problems, depending on ``errors``."""

    def __init__(self, errors: str):
        if errors not in ("raise", "report"):
            raise ValueError(f"errors must be 'raise' or 'report', got {errors!r}")
        self.errors, self.problems = errors, []

    def __call__(self, file: str, line: int, reason: str, text: str = "") -> None:
        if self.errors == "raise":
            raise PhysioNetFormatError(file, line, reason, text)
        self.problems.append(ParseProblem(file, line, reason, text))


def parse_time(text: str) -> float:
    """``"HH:MM"`` (hours may exceed 24) -> hours as a float. Raises ``ValueError`` otherwise."""
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"time {text!r} is not HH:MM")
    return int(match.group(1)) + int(match.group(2)) / 60.0


def parse_record(text: str, name: str, report: _Collector
                 ) -> tuple[dict[str, float], list[float], list[str], list[float]] | None:
    """Parse one record file's text.

    Returns:
        ``(descriptors, times_h, parameters, values)``: descriptors by name and one list entry per
        measurement; None when the record is unusable (no header or no RecordID; reported).
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        report(name, 1, f"expected the header {HEADER!r}", lines[0] if lines else "")
        return None
    desc: dict[str, float] = {}
    times, params, values = [], [], []
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != 3:
            report(name, number, f"expected 3 comma-separated fields, got {len(fields)}", line)
            continue
        try:
            hours = parse_time(fields[0].strip())
            value = float(fields[2])
        except ValueError as exc:
            reason = str(exc) if "HH:MM" in str(exc) else f"value {fields[2]!r} is not a number"
            report(name, number, reason, line)
            continue
        param = fields[1].strip()
        if not param or not math.isfinite(value):
            report(name, number, "empty parameter name" if not param else "value is not finite", line)
            continue
        if hours == 0.0 and param in DESCRIPTORS and param not in desc:
            desc[param] = value
        else:
            times.append(hours)
            params.append(param)
            values.append(value)
    if "RecordID" not in desc:
        report(name, 0, "no RecordID descriptor at 00:00")
        return None
    return desc, times, params, values


def parse_outcomes(text: str, name: str, report: _Collector) -> dict[int, tuple[float, ...]]:
    """Parse an ``Outcomes-*.txt`` text: RecordID -> the six outcome columns (as floats)."""
    lines = text.splitlines()
    if not lines or tuple(f.strip() for f in lines[0].split(",")) != OUTCOME_COLUMNS:
        report(name, 1, f"expected the header {','.join(OUTCOME_COLUMNS)!r}", lines[0] if lines else "")
        return {}
    out = {}
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != len(OUTCOME_COLUMNS):
            report(name, number, f"expected {len(OUTCOME_COLUMNS)} fields, got {len(fields)}", line)
            continue
        try:
            row = tuple(float(f) for f in fields)
        except ValueError:
            report(name, number, "a field is not a number", line)
            continue
        if row[-1] not in (0.0, 1.0):
            report(name, number, "In-hospital_death is not 0 or 1", line)
            continue
        out[int(row[0])] = row
    return out


def read_texts(records: Mapping[str, str], outcomes: Mapping[str, str], *, errors: str = "raise"
               ) -> PhysioNetData:
    """Parse records and outcome files given as text (the one parser for real and synthetic data).

    Args:
        records: file name -> text of one record file.
        outcomes: file name -> text of one ``Outcomes-*.txt``.
        errors: ``"raise"`` (first malformed line -> :class:`PhysioNetFormatError`) or ``"report"`` (skip
            it and list it in ``problems``). A record without an outcome row counts as a problem.

    Returns:
        :class:`PhysioNetData` with the records in the order given.
    """
    report = _Collector(errors)
    table: dict[int, tuple[float, ...]] = {}
    for name, text in outcomes.items():
        table.update(parse_outcomes(text, name, report))
    ids, desc, rows, times, params, values = [], [], [], [], [], []
    codes: dict[str, int] = {}
    for name, text in records.items():
        parsed = parse_record(text, name, report)
        if parsed is None:
            continue
        d, t, p, v = parsed
        rid = int(d["RecordID"])
        if rid not in table:
            report(name, 0, f"RecordID {rid} has no row in the outcomes file(s)")
            continue
        ids.append(rid)
        desc.append([d.get(k, -1.0) for k in DESCRIPTORS[1:]])
        rows.append(table[rid])
        times.append(np.asarray(t, dtype=np.float64))
        params.append(np.asarray([codes.setdefault(x, len(codes)) for x in p], dtype=np.int64))
        values.append(np.asarray(v, dtype=np.float64))
    descriptors = np.asarray(desc, dtype=np.float64).reshape(-1, 5)
    descriptors[descriptors == -1] = np.nan
    cat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype)  # noqa: E731
    return PhysioNetData(
        record_ids=np.asarray(ids, dtype=np.int64), descriptors=descriptors,
        stay=np.repeat(np.arange(len(ids)), [len(x) for x in times]).astype(np.int64),
        time_h=cat(times, np.float64), param=cat(params, np.int64), value=cat(values, np.float64),
        parameters=tuple(codes), outcomes=pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS)).astype(
            {"RecordID": np.int64, "In-hospital_death": np.int64}),
        problems=tuple(report.problems))


def read_sha256sums(path: str | os.PathLike) -> dict[str, str]:
    """Parse PhysioNet's ``SHA256SUMS.txt`` (lines ``<hex digest>  <path>``): path -> digest (lower case)."""
    return read_checksum_list(path)


def verify_files(folder: Path, names: Iterable[str]) -> None:
    """Check each ``folder/name`` against ``folder/SHA256SUMS.txt`` (as published by PhysioNet).

    Raises:
        DataMissingError: ``SHA256SUMS.txt`` is absent or does not list a file.
        ChecksumError: a file's SHA-256 differs from the listed one.
    """
    sums_path = folder / "SHA256SUMS.txt"
    if not sums_path.exists():
        raise DataMissingError(f"{sums_path} is missing, so the files cannot be verified.\n  {MANUAL}")
    sums = read_sha256sums(sums_path)
    for name in names:
        if name not in sums:
            raise DataMissingError(f"{name} is not listed in {sums_path}; read the tarballs, or pass "
                                   f"verify=False to read unverified files")
        got = file_digest(folder / name, "sha256")
        if got != sums[name]:
            raise ChecksumError(f"{folder / name}: sha256 {got} does not match {sums[name]} in SHA256SUMS.txt; "
                                f"download it again from {URL}")


def _set_texts(folder: Path, s: str, max_records: int | None) -> tuple[dict[str, str], list[str]]:
    """Record texts of set ``s`` from ``set-s.tar.gz`` or an extracted ``set-s/`` folder, and the paths read."""
    tarball, directory = folder / f"set-{s}.tar.gz", folder / f"set-{s}"
    texts: dict[str, str] = {}
    if tarball.exists():
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".txt"):
                    if max_records is not None and len(texts) >= max_records:
                        break
                    texts[f"{tarball.name}:{member.name}"] = tar.extractfile(member).read().decode("utf-8")
        return texts, [tarball.name]
    if directory.is_dir():
        files = sorted(directory.glob("*.txt"))[:max_records]
        return {f"{directory.name}/{p.name}": p.read_text() for p in files}, [
            f"{directory.name}/{p.name}" for p in files]
    raise DataMissingError(f"neither {tarball} nor {directory}/ exists.\n  {MANUAL}")


def read_physionet2012(folder: str | os.PathLike, *, sets: tuple[str, ...] = SETS, errors: str = "raise",
                       verify: bool = True, max_records: int | None = None) -> PhysioNetData:
    """Read the PhysioNet-2012 download in ``folder``.

    Args:
        folder: holds ``set-{s}.tar.gz`` (or the extracted ``set-{s}/``), ``Outcomes-{s}.txt`` for each set,
            and ``SHA256SUMS.txt`` from PhysioNet.
        sets: which of ``"a"``, ``"b"``, ``"c"`` to read (4,000 stays each).
        errors: ``"raise"`` or ``"report"`` (see :func:`read_texts`).
        verify: check every file read against ``SHA256SUMS.txt`` before parsing.
        max_records: read at most this many records per set (for quick looks).

    Returns:
        :class:`PhysioNetData` over the requested sets, records in archive order.

    Raises:
        DataMissingError, ChecksumError: files missing or not matching; the message says what to download.
        PhysioNetFormatError: a malformed line under ``errors="raise"``.
    """
    folder = Path(folder)
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        raise ValueError(f"unknown PhysioNet-2012 set(s) {unknown}; allowed: {', '.join(SETS)}")
    records: dict[str, str] = {}
    outcomes: dict[str, str] = {}
    for s in sets:
        texts, read = _set_texts(folder, s, max_records)
        path = folder / f"Outcomes-{s}.txt"
        if not path.exists():
            raise DataMissingError(f"{path} is missing.\n  {MANUAL}")
        if verify:
            verify_files(folder, [*read, path.name])
        records.update(texts)
        outcomes[path.name] = path.read_text()
    return read_texts(records, outcomes, errors=errors)


def write_physionet(folder: str | os.PathLike, records: Mapping[str, str], outcomes: str, *, set_name: str = "a",
                    tarball: bool = False, sha256sums: bool = True) -> Path:
    """Write records in the download's layout: ``set-{set_name}/`` (or ``set-{set_name}.tar.gz``),
    ``Outcomes-{set_name}.txt`` and, optionally, a ``SHA256SUMS.txt`` over the written files.

    Args:
        folder: destination (created).
        records: file name (``"132539.txt"``) -> text.
        outcomes: text of the outcomes file.

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    directory = folder / f"set-{set_name}"
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in records.items():
        (directory / name).write_text(text)
    (folder / f"Outcomes-{set_name}.txt").write_text(outcomes)
    written = [f"Outcomes-{set_name}.txt"]
    if tarball:
        with tarfile.open(folder / f"set-{set_name}.tar.gz", "w:gz") as tar:
            for name in records:
                tar.add(directory / name, arcname=f"set-{set_name}/{name}")
        written.append(f"set-{set_name}.tar.gz")
    else:
        written += [f"set-{set_name}/{name}" for name in records]
    if sha256sums:
        lines = [f"{file_digest(folder / n, 'sha256')}  {n}" for n in written]
        with open(folder / "SHA256SUMS.txt", "a") as fh:
            fh.write("\n".join(lines) + "\n")
    return folder


def load_physionet2012(root: str | os.PathLike | None = None, *, download: bool = True,
                       **kwargs) -> PhysioNetData:
    """The real PhysioNet-2012 data, downloaded into the cache on first use and verified against
    PhysioNet's ``SHA256SUMS.txt``; or read from ``root``, a folder the user filled by hand.

    Raises:
        DataMissingError: a file is missing and cannot be downloaded; the message gives the manual steps.
        ChecksumError: a file does not match its entry in ``SHA256SUMS.txt``.
    """
    if root is not None:
        folder = Path(root)
        if not folder.is_dir():
            raise DataMissingError(f"{folder} does not exist.\n  {MANUAL}")
        return read_physionet2012(folder, **kwargs)
    return load("physionet2012", "paper", download=download, **kwargs)


SOURCE = register(Source(
    name="physionet2012",
    description="PhysioNet/CinC Challenge 2012: 12,000 ICU stays (sets a, b, c), 48 h, in-hospital mortality",
    files=tuple(RemoteFile(URL + name, name, sha256_list=URL + "SHA256SUMS.txt") for name in FILES),
    reader=read_physionet2012,
    homepage=HOMEPAGE,
    licence="open access (ODC-By 1.0 believed; check the project page)",
    manual=MANUAL,
))
