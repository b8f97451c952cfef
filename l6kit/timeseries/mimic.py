"""MIMIC-III in-hospital mortality cohort of FIT/WinIT, read only from a path the user provides.

MIMIC-III needs credentialed PhysioNet access and may not be redistributed, so l6kit never downloads it. The
user builds the cohort once with the FIT/WinIT scripts, which write ``patient_vital_preprocessed.pkl``: a
pickled list of ``(x, y, z)`` per ICU stay with ``x`` shaped ``(31 features, 48 hours)`` (vitals and labs),
``y`` the mortality label (a scalar, or one per hour) and ``z`` unused metadata.

References:
    A. E. W. Johnson et al. MIMIC-III, a freely accessible critical care database. Scientific Data 2016.
    K. K. Leung et al. Temporal Dependencies in Feature Importance for Time Series Prediction. ICLR 2023,
    Sec. 5.2.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from l6kit.data.registry import DataMissingError, Source, data_home, register
from l6kit.timeseries.synthetic import TimeSeriesSet

MIMIC_FILE = "patient_vital_preprocessed.pkl"
SOURCE = "mimic3-mortality"
MANUAL = (
    "MIMIC-III needs credentialed access: create a PhysioNet account, complete the CITI 'Data or Specimens "
    "Only Research' training and sign the data use agreement at https://physionet.org/content/mimiciii/1.4/ ; "
    "load MIMIC-III into PostgreSQL (https://mimic.mit.edu/docs/gettingstarted/), then build the cohort with "
    "the WinIT scripts (github.com/layer6ai-labs/WinIT: `python -m winit.datagen.icu_mortality --sqluser U "
    "--sqlpass P`, then `python -m fit.data_generator.data_preprocess`), which write " + MIMIC_FILE + ".")


def mimic_path(path: str | os.PathLike | None = None) -> Path:
    """Where the cohort file is looked for: ``path`` (a file, or a folder holding ``MIMIC_FILE``), else
    ``$L6KIT_DATA/mimic3-mortality/patient_vital_preprocessed.pkl``."""
    if path:
        path = Path(path).expanduser()
        return path / MIMIC_FILE if path.is_dir() else path
    return data_home() / SOURCE / MIMIC_FILE


def load_mimic_mortality(path: str | os.PathLike | None = None) -> TimeSeriesSet:
    """Read the FIT/WinIT MIMIC-III mortality cohort from a local path.

    Args:
        path: the ``.pkl`` file or its folder; default :func:`mimic_path`.

    Returns:
        A :class:`TimeSeriesSet` named ``"mimic3-mortality"``: ``x`` shaped ``(n, 31, 48)`` (not normalised),
        ``y`` the label repeated at every hour ``(n, 48)``, ``truth`` all False (no ground truth on real data).

    Raises:
        DataMissingError: the file is absent; the message says what to obtain and where to put it.
        ValueError: the file does not hold ``(x, y, z)`` records of equally shaped ``x``.
    """
    file = mimic_path(path)
    if not file.is_file():
        raise DataMissingError(
            f"The MIMIC-III mortality cohort is not at {file}.\n  {MANUAL}\n  Put the file at {file} "
            f"(or pass its path, e.g. overrides={{'mimic_path': '/path/to/{MIMIC_FILE}'}}). l6kit never "
            "downloads MIMIC-III.")
    with open(file, "rb") as fh:
        records = pickle.load(fh)   # noqa: S301 - the user's own file, written by the WinIT scripts
    try:
        x = np.stack([np.asarray(r[0], dtype=np.float32) for r in records])           # (n, F, T)
        labels = [np.asarray(r[1]) for r in records]
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{file}: expected a list of (x (features, hours), y, z) records") from exc
    if x.ndim != 3:
        raise ValueError(f"{file}: x has shape {x.shape[1:]} per stay, expected (features, hours)")
    length = x.shape[2]
    y = np.stack([np.broadcast_to(lab.reshape(-1)[-length:] if lab.size > 1 else lab.reshape(1), (length,))
                  for lab in labels]).astype(np.int64)
    return TimeSeriesSet(SOURCE, np.nan_to_num(x), y, np.zeros(x.shape, dtype=bool))


register(Source(
    name=SOURCE,
    description="MIMIC-III ICU mortality (31 vitals/labs x 48 h), credentialed: read from a local path only",
    offline=load_mimic_mortality,
    homepage="https://physionet.org/content/mimiciii/1.4/",
    licence="PhysioNet Credentialed Health Data License 1.5.0 (no redistribution)",
    manual=MANUAL,
))
