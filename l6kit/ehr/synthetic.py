"""Synthetic ICU stays written in the PhysioNet-2012 text format, so the real reader parses them.

Each stay is 48 h long. A hidden *severity* path drives every measurement::

    s(t) = s0 + r * t / 48 + e(t),    e = Ornstein-Uhlenbeck noise (sd 0.35, time constant 6 h)

``s0`` (admission severity) rises with age and in the medical ICU; ``r`` is the change over the stay
(deterioration > 0, recovery < 0). Some patients, more often the sicker ones, have one transient hypotensive
*episode* h(t) of depth ``A``: a half-sine bump of 3-10 h that lowers MAP and raises HR, respiratory rate and
lactate. Afterwards lactate clears or not: a fraction ``1 - c`` of the rise (``c`` uniform in [0, 1], the
patient's *clearance*) stays, and lactate keeps being re-checked while it does.

Measurements are irregular and their timing is informative, as in a real ICU:

* vitals (HR, MAP, RespRate, SaO2) are charted together at random times, about hourly, each one sometimes
  skipped; Temp and GCS about every 4 h;
* labs (a Creatinine/WBC/Platelets panel, and Lactate) are drawn at a rate that grows with s(t) - sicker
  patients are tested more - and lactate is checked more often during and after an episode;
* each patient has their own baseline for every vital and lab, so a level means little without its trend.

In-hospital death is drawn from ``logit p = b0 + 0.8 s0 + 1.5 r + 2 A (1 - c)`` with ``b0`` set so the death
rate is near 15 % (PhysioNet-2012: 13.9 %). Mortality therefore depends on the level at admission, on the trend
across the stay, and on an interaction across time and variables - a drop in MAP followed by lactate that does
not come back down - all seen only through noisy, irregular, patient-specific measurements.

References:
    Silva et al., CinC 2012 (the format). The generator is l6kit's own; it imitates no real patient.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from l6kit.data.registry import Source, register
from l6kit.ehr.physionet import HEADER, OUTCOME_COLUMNS, PhysioNetData, read_texts

VARIABLES: tuple[str, ...] = ("HR", "MAP", "RespRate", "SaO2", "Temp", "GCS", "Lactate", "Creatinine", "WBC",
                              "Platelets")
HORIZON_H = 48.0
STEP_H = 0.25                                    # the latent paths live on a 15-minute grid
_GRID = np.arange(0.0, HORIZON_H, STEP_H)        # (192,)
_DECIMALS = {"HR": 0, "MAP": 0, "RespRate": 0, "SaO2": 0, "Temp": 1, "GCS": 0, "Lactate": 1, "Creatinine": 1,
             "WBC": 1, "Platelets": 0}
FIRST_ID = 300001                                # real RecordIDs are 132539-163037; these never collide


@dataclasses.dataclass(frozen=True)
class ICUSimulation:
    """Generated stays as PhysioNet-2012 text, plus the hidden quantities that produced them.

    Attributes:
        records: file name (``"300001.txt"``) -> record text.
        outcomes: the text of an ``Outcomes-*.txt`` file.
        latent: one row per stay: ``RecordID, s0, slope, episode_depth, lactate_clearance, episode_onset_h,
            logit, death``.
    """

    records: dict[str, str]
    outcomes: str
    latent: pd.DataFrame


def _severity_paths(rng: np.random.Generator, s0: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """s(t) on the grid, shape ``(n, G)``: linear trend plus Ornstein-Uhlenbeck noise."""
    n, g = len(s0), len(_GRID)
    rho, sd = np.exp(-STEP_H / 6.0), 0.35
    noise = np.empty((n, g))
    noise[:, 0] = rng.normal(0, sd, n)
    shocks = rng.normal(0, sd * np.sqrt(1 - rho**2), (n, g))
    for k in range(1, g):
        noise[:, k] = rho * noise[:, k - 1] + shocks[:, k]
    return s0[:, None] + slope[:, None] * _GRID[None, :] / HORIZON_H + noise


def _episodes(rng: np.random.Generator, s0: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hypotensive episodes: depth A (0 = none), onset (h), the bump h(t) and the indicator of the time after
    the episode, both on the grid, shape ``(n, G)``."""
    n = len(s0)
    has = rng.random(n) < 1 / (1 + np.exp(1.4 - 0.7 * s0))
    depth = np.where(has, rng.uniform(0.7, 1.3, n), 0.0)
    onset, length = rng.uniform(6, 40, n), rng.uniform(3, 10, n)
    phase = (_GRID[None, :] - onset[:, None]) / length[:, None]
    bump = np.where((phase >= 0) & (phase <= 1), np.sin(np.pi * np.clip(phase, 0, 1)), 0.0)
    after = has[:, None] & (phase > 1)
    return depth, np.where(has, onset, np.nan), depth[:, None] * bump, after


def _times(rng: np.random.Generator, rate: np.ndarray) -> list[np.ndarray]:
    """Event times per stay from a per-cell rate (events/hour, shape ``(n, G)``): at most one event per
    15-minute cell, placed uniformly inside it. Returns n sorted arrays of hours."""
    hit = rng.random(rate.shape) < np.clip(rate * STEP_H, 0, 1)
    jitter = rng.uniform(0, STEP_H, rate.shape)
    return [_GRID[row] + jitter[i, row] for i, row in enumerate(hit)]


def _values(name: str, rng: np.random.Generator, s: np.ndarray, h: np.ndarray, x: np.ndarray,
            base: np.ndarray) -> np.ndarray:
    """Measured values of ``name`` given severity ``s``, episode ``h``, uncleared lactate ``x`` and the patient's
    baseline, shape ``(k,)`` each."""
    e = rng.normal(0, 1, s.shape)
    if name == "HR":
        return base + 7 * s + 20 * h + 4 * e
    if name == "MAP":
        return base - 5 * s - 22 * h + 5 * e
    if name == "RespRate":
        return np.maximum(base + 2 * s + 3 * h + 2 * e, 4)
    if name == "SaO2":
        return np.minimum(base - 1.0 * s - 2 * h + 0.8 * e, 100)
    if name == "Temp":
        return base + 0.25 * s + 0.25 * e
    if name == "GCS":
        return np.clip(np.round(15 - 2.2 * np.logaddexp(0, s - 0.3) + 0.8 * e), 3, 15)
    if name == "Lactate":
        return np.exp(base + 0.25 * s + 0.7 * h + 0.6 * x + 0.12 * e)
    return np.exp(base + {"Creatinine": 0.18, "WBC": 0.12, "Platelets": -0.12}[name] * s + 0.1 * e)


def _baselines(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Each patient's own baseline per variable (log scale for labs)."""
    return {"HR": rng.normal(85, 11, n), "MAP": rng.normal(80, 9, n), "RespRate": rng.normal(18, 3, n),
            "SaO2": rng.normal(97, 1.2, n), "Temp": rng.normal(37.0, 0.35, n), "GCS": np.zeros(n),
            "Lactate": np.log(1.2) + rng.normal(0, 0.2, n), "Creatinine": rng.normal(0, 0.35, n),
            "WBC": np.log(10) + rng.normal(0, 0.3, n), "Platelets": np.log(210) + rng.normal(0, 0.35, n)}


def _rates(s: np.ndarray, h: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """Rates (events/hour) on the grid, shape ``(n, G)`` each, of the measurement processes: ``chart`` (the
    hourly vitals round), ``Temp``, ``GCS``, ``panel`` (a blood draw for Creatinine, WBC, Platelets) and
    ``Lactate``."""
    labs = 0.1 * np.exp(0.5 * np.clip(s, -3, 3))
    labs[:, :8] += 0.125                          # admission labs in the first 2 h
    slow = np.full_like(s, 0.25)
    return {"chart": np.full_like(s, 1.0), "Temp": slow, "GCS": slow, "panel": labs,
            "Lactate": labs / (1 + np.exp(-s)) + 0.5 * (h > 0.2) + 0.3 * x}


# measurement process -> (variable, probability the variable is recorded at an event of that process)
_PROCESSES = {"chart": (("HR", 0.95), ("MAP", 0.85), ("RespRate", 0.8), ("SaO2", 0.75)),
              "Temp": (("Temp", 1.0),), "GCS": (("GCS", 1.0),),
              "panel": (("Creatinine", 0.95), ("WBC", 0.9), ("Platelets", 0.9)), "Lactate": (("Lactate", 1.0),)}


def _record_text(rid: int, static: tuple, events: list[tuple[float, str, str]]) -> str:
    """One record file: header, the six descriptors at 00:00, then the measurements in time order."""
    lines = [HEADER, f"00:00,RecordID,{rid}"]
    lines += [f"00:00,{k},{v}" for k, v in zip(("Age", "Gender", "Height", "ICUType", "Weight"), static,
                                                 strict=True)]
    for t, name, value in sorted(events, key=lambda e: e[0]):
        minutes = int(t * 60)
        lines.append(f"{minutes // 60:02d}:{minutes % 60:02d},{name},{value}")
    return "\n".join(lines) + "\n"


def simulate_icu_stays(n: int, seed: int = 0, death_rate: float = 0.15) -> ICUSimulation:
    """Generate ``n`` synthetic 48-hour ICU stays in the PhysioNet-2012 format (see the module docstring).

    Args:
        n: number of stays.
        seed: seed of the generator (everything is reproducible from it).
        death_rate: the intercept b0 is set so the expected death rate is about this.

    Returns:
        :class:`ICUSimulation` (record texts, outcomes text, hidden quantities).
    """
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(64, 16, n), 18, 90).round()
    icu = rng.choice([1, 2, 3, 4], n, p=[0.15, 0.21, 0.36, 0.28])
    s0 = 0.5 * (age - 64) / 16 + 0.4 * (icu == 3) - 0.3 * (icu == 2) + rng.normal(0, 0.8, n)
    slope = rng.normal(0, 0.9, n)
    s = _severity_paths(rng, s0, slope)
    depth, onset, h, after = _episodes(rng, s0)
    clearance = rng.uniform(0, 1, n)
    x = (depth * (1 - clearance))[:, None] * after            # lactate that has not cleared after the episode
    raw = 0.8 * s0 + 1.5 * slope + 2.0 * depth * (1 - clearance)
    logit = _intercept(raw, death_rate) + raw
    death = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    base, rates = _baselines(rng, n), _rates(s, h, x)
    events: list[list] = [[] for _ in range(n)]
    for process, members in _PROCESSES.items():
        for i, times in enumerate(_times(rng, rates[process])):
            for name, keep in members:
                t = times[rng.random(len(times)) < keep]
                cell = (t / STEP_H).astype(int)
                vals = _values(name, rng, s[i, cell], h[i, cell], x[i, cell], base[name][i])
                events[i].extend((ti, name, f"{v:.{_DECIMALS[name]}f}") for ti, v in zip(t, vals, strict=True))
    static = _static_descriptors(rng, age, icu)
    ids = FIRST_ID + np.arange(n)
    records = {f"{rid}.txt": _record_text(int(rid), static[i], events[i]) for i, rid in enumerate(ids)}
    outcomes = _outcomes_text(rng, ids, s0, death)
    latent = pd.DataFrame({"RecordID": ids, "s0": s0, "slope": slope, "episode_depth": depth,
                           "lactate_clearance": np.where(depth > 0, clearance, np.nan),
                           "episode_onset_h": onset, "logit": logit, "death": death})
    return ICUSimulation(records, outcomes, latent)


def _intercept(raw: np.ndarray, rate: float) -> float:
    """b0 such that the mean of sigmoid(b0 + raw) is ``rate`` (bisection)."""
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(mid + raw)))) < rate else (lo, mid)
    return (lo + hi) / 2


def _static_descriptors(rng: np.random.Generator, age: np.ndarray, icu: np.ndarray) -> list[tuple]:
    """(Age, Gender, Height, ICUType, Weight) per stay as printed; -1 marks a missing value, as in the real files."""
    n = len(age)
    gender = (rng.random(n) < 0.56).astype(int)
    height = np.where(rng.random(n) < 0.45, -1, rng.normal(170, 10, n).round(1))
    weight = np.where(rng.random(n) < 0.08, -1, rng.normal(82, 18, n).clip(35, 200).round(1))
    return [(f"{a:g}", str(g), f"{ht:g}", str(u), f"{w:g}") for a, g, ht, u, w in
            zip(age, gender, height, icu, weight, strict=True)]


def _outcomes_text(rng: np.random.Generator, ids: np.ndarray, s0: np.ndarray, death: np.ndarray) -> str:
    """The Outcomes file: SAPS-I and SOFA loosely follow admission severity; never used as features."""
    n = len(ids)
    saps = np.clip(np.round(14 + 3 * s0 + rng.normal(0, 3, n)), 0, 40).astype(int)
    sofa = np.clip(np.round(5 + 2 * s0 + rng.normal(0, 2, n)), 0, 20).astype(int)
    los = np.maximum(2, np.round(np.exp(2.0 + 0.3 * s0 + rng.normal(0, 0.5, n)))).astype(int)
    survival = np.where(death == 1, np.maximum(2, los - rng.integers(0, 3, n)), -1)
    rows = [",".join(map(str, r)) for r in zip(ids, saps, sofa, los, survival, death, strict=True)]
    return ",".join(OUTCOME_COLUMNS) + "\n" + "\n".join(rows) + "\n"


def synthetic_physionet2012(n: int = 2000, seed: int = 0, errors: str = "raise") -> PhysioNetData:
    """Generate ``n`` stays with :func:`simulate_icu_stays` and parse their text with the real reader."""
    sim = simulate_icu_stays(n, seed)
    return read_texts(sim.records, {"Outcomes-synthetic.txt": sim.outcomes}, errors=errors)


SOURCE = register(Source(
    name="physionet2012-synthetic",
    description="synthetic 48-h ICU stays in the PhysioNet-2012 text format (l6kit's generator), offline",
    offline=synthetic_physionet2012,
    homepage="https://physionet.org/content/challenge-2012/1.0.0/",
    licence="generated by l6kit (MIT)",
))
