"""Simulated multivariate time series with known salient observations: Spike (with delay), State, Switch-Feature.

Each generator returns a :class:`TimeSeriesSet`: inputs ``x`` shaped ``(n, features, time)``, a binary label
at every time step ``y`` and the ground-truth mask ``truth`` of the (feature, time) cells that decide the
label. They follow the definitions of the FIT simulations used by WinIT (Tonekaboni et al. 2020; Leung et
al. 2023), re-written in NumPy/SciPy (no TimeSynth):

* **Spike** — three smooth NARMA-like series (low-pass filtered); random spikes (+1.5) on every feature. The
  label switches on ``delay`` steps after the *first* spike of feature 0 and stays on; the ground truth is
  that first spike.
* **State** — a two-state hidden Markov chain whose state-1 dwell shortens with time; Gaussian features with
  state-dependent means; ``y_t ~ Bernoulli(sigmoid(2 x_{imp(s_t), t}))`` with imp = (1, 2). The ground truth
  marks the important feature at the first step and at every state switch.
* **Switch-Feature** — three hidden states (sticky transition matrix); Gaussian-process features with
  state-dependent means, drawn afresh in every state segment; ``y_t ~ Bernoulli(sigmoid(3 x_{s_t, t}))``. The
  ground truth marks the feature of the current state at every step.

Importing the module registers the three generators as offline sources ``sim-spike``, ``sim-state`` and
``sim-switch-feature`` in the data registry.

References:
    S. Tonekaboni, S. Joshi, K. Campbell, D. Duvenaud, A. Goldenberg. What went wrong and when?
    Instance-wise feature importance for time-series black-box models. NeurIPS 2020, Sec. 4.1 (FIT).
    K. K. Leung, C. Rooke, J. Smith, S. Zuberi, M. Volkovs. Temporal Dependencies in Feature Importance for
    Time Series Prediction. ICLR 2023, Sec. 5.1 (the delayed spike).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.signal import butter, lfilter

from l6kit.data.registry import Source, register

SPIKE_KAPPA = 1.5            # height of a spike
SPIKE_P_SERIES = 0.4         # probability that a feature of a series has spikes at all
SPIKE_POISSON = 3.0          # mean number of spikes when it has
STATE_MEANS = np.array([[0.1, 1.6, 0.5], [-0.1, -0.4, -1.5]])
STATE_IMPORTANT = (1, 2)     # feature that drives the label in state 0 / 1
SWITCH_MEANS = np.array([[0.8, -0.5, -0.2], [0.0, -1.0, 0.0], [-0.2, -0.2, 0.8]])
SWITCH_TRANSITIONS = np.array([[0.95, 0.02, 0.03], [0.02, 0.95, 0.03], [0.03, 0.02, 0.95]])


@dataclasses.dataclass(frozen=True)
class TimeSeriesSet:
    """Labelled multivariate time series with ground-truth saliency.

    Attributes:
        name: generator name (``"spike"``, ``"spike-delay-2"``, ``"state"``, ...).
        x: inputs, shape ``(n, F, T)``, float32.
        y: label at every step, shape ``(n, T)``, int64 in {0, 1}.
        truth: salient cells, shape ``(n, F, T)``, bool.
        states: hidden state per step, shape ``(n, T)`` int64, or ``None`` (spike).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    truth: np.ndarray
    states: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    @property
    def length(self) -> int:
        return self.x.shape[2]

    def subset(self, index) -> TimeSeriesSet:
        """The series at ``index`` (a slice, or an integer array)."""
        return dataclasses.replace(self, x=self.x[index], y=self.y[index], truth=self.truth[index],
                                   states=None if self.states is None else self.states[index])

    def split(self, test_fraction: float = 0.2) -> tuple[TimeSeriesSet, TimeSeriesSet]:
        """(train, test): the first ``1 - test_fraction`` of the series and the rest (series are i.i.d.)."""
        cut = len(self) - max(1, int(round(test_fraction * len(self))))
        return self.subset(slice(0, cut)), self.subset(slice(cut, None))


def narma(n: int, length: int, rng: np.random.Generator, *, order: int = 2,
          coefficients: tuple[float, float, float, float] = (0.3, 0.05, 1.5, 0.1), burn_in: int = 20
          ) -> np.ndarray:
    """NARMA(order) series ``x_t = a0 x_{t-1} + a1 x_{t-1} sum_{i=1..order} x_{t-i} + a2 u_{t-order} u_{t-1}
    + a3`` driven by ``u ~ U(0, 0.5)`` (TimeSynth's default coefficients), after ``burn_in`` steps.

    Returns:
        Shape ``(n, length)``.
    """
    a0, a1, a2, a3 = coefficients
    total = length + burn_in + order
    u = rng.uniform(0.0, 0.5, (n, total))
    x = np.zeros((n, total))
    for t in range(order, total):
        x[:, t] = (a0 * x[:, t - 1] + a1 * x[:, t - 1] * x[:, t - order:t].sum(1)
                   + a2 * u[:, t - order] * u[:, t - 1] + a3)
    return x[:, -length:]


def lowpass(x: np.ndarray, *, cutoff: float = 6.8, fs: float = 30.0, order: int = 6) -> np.ndarray:
    """Butterworth low-pass filter along the last axis (FIT's spike smoothing), shape preserved."""
    b, a = butter(order, cutoff / (0.5 * fs), btype="low")
    return lfilter(b, a, x, axis=-1)


def _spike_times(rng: np.random.Generator, horizon: int) -> np.ndarray:
    """Sorted spike times in ``[0, horizon)``: none with probability 0.6, else Poisson(3) distinct times."""
    if horizon <= 0 or rng.random() >= SPIKE_P_SERIES:
        return np.zeros(0, dtype=np.int64)
    count = min(int(rng.poisson(SPIKE_POISSON)), horizon)
    return np.sort(rng.choice(horizon, size=count, replace=False))


def spike(n: int = 3000, length: int = 80, *, delay: int = 0, seed: int = 0) -> TimeSeriesSet:
    """The (delayed) Spike task.

    Feature 0 gets its spikes in ``[0, length - delay)`` so that the label can always switch on.

    Args:
        n: number of series.
        length: steps per series (the paper's 80).
        delay: steps between the first spike of feature 0 and the label switching on (paper: 0-4).
        seed: seed of the generator.

    Returns:
        A :class:`TimeSeriesSet` named ``"spike"`` or ``"spike-delay-<d>"``; ``truth`` has at most one cell
        per series, at (0, first spike).
    """
    if not 0 <= delay < length:
        raise ValueError(f"delay must be in [0, length), got {delay} for length {length}")
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    base = np.stack([narma(n, length, rng) for _ in range(3)], axis=1)          # (n, 3, T)
    base = base + rng.normal(0.0, 0.001, base.shape) + np.array([0.003, 0.065, 0.0])[:, None] * t
    span = base.max(-1, keepdims=True) - base.min(-1, keepdims=True)
    x = lowpass(base / span - np.array([0.0, 0.0, 0.5])[:, None])
    y = np.zeros((n, length), dtype=np.int64)
    truth = np.zeros((n, 3, length), dtype=bool)
    for i in range(n):
        for f in range(3):
            times = _spike_times(rng, length - delay if f == 0 else length)
            x[i, f, times] += SPIKE_KAPPA
            if f == 0 and len(times):
                truth[i, 0, times[0]] = True
                y[i, times[0] + delay:] = 1
    name = "spike" if delay == 0 else f"spike-delay-{delay}"
    return TimeSeriesSet(name, x.astype(np.float32), y, truth)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def state(n: int = 1000, length: int = 200, *, seed: int = 0) -> TimeSeriesSet:
    """The State task: a non-stationary two-state hidden Markov chain.

    From state 0 the chain moves to state 1 with probability 0.05; in state 1 it stays with probability
    ``0.95 - d/500`` after ``d`` steps there. Features are Gaussian, mean ``STATE_MEANS[s]``, covariance
    0.8 I (+0.01 between the important feature and feature 0). ``y_t ~ Bernoulli(sigmoid(2 x_{imp, t}))``.

    Returns:
        A :class:`TimeSeriesSet` named ``"state"`` with ``states``; ``truth`` marks (imp(s_0), 0) and
        (imp(s_t), t) at every switch.
    """
    rng = np.random.default_rng(seed)
    chol = []
    for imp in STATE_IMPORTANT:
        cov = np.eye(3) * 0.8 + np.eye(3) * 1e-3
        cov[imp, 0] = cov[0, imp] = 0.01
        chol.append(np.linalg.cholesky(cov))
    states = np.zeros((n, length), dtype=np.int64)
    prev = rng.integers(0, 2, n)
    dwell = np.zeros(n)
    for t in range(length):
        p_one = np.where(prev == 1, 0.95 - dwell / 500.0, 0.05)
        cur = (rng.random(n) < p_one).astype(np.int64)
        dwell = np.where(cur == prev, dwell + 1, 0)
        states[:, t], prev = cur, cur
    z = rng.standard_normal((n, length, 3))
    x = np.where(states[..., None] == 0, z @ chol[0].T, z @ chol[1].T) + STATE_MEANS[states]   # (n, T, 3)
    imp = np.asarray(STATE_IMPORTANT)[states]                                                 # (n, T)
    driver = np.take_along_axis(x, imp[..., None], axis=2)[..., 0]
    y = (rng.random((n, length)) < _sigmoid(2.0 * driver)).astype(np.int64)
    switch = np.ones((n, length), dtype=bool)
    switch[:, 1:] = states[:, 1:] != states[:, :-1]
    truth = np.zeros((n, 3, length), dtype=bool)
    rows, cols = np.nonzero(switch)
    truth[rows, imp[rows, cols], cols] = True
    return TimeSeriesSet("state", x.transpose(0, 2, 1).astype(np.float32), y, truth, states)


def gp_segment(length: int, rng: np.random.Generator, *, lengthscale: float, variance: float, size: int,
               cache: dict[int, np.ndarray]) -> np.ndarray:
    """``size`` zero-mean Gaussian-process draws on the grid 0..length-1 with a squared-exponential kernel.

    Returns:
        Shape ``(size, length)``.
    """
    if length not in cache:
        d = np.subtract.outer(np.arange(length), np.arange(length))
        kernel = variance * np.exp(-0.5 * (d / lengthscale) ** 2) + 1e-6 * np.eye(length)
        cache[length] = np.linalg.cholesky(kernel)
    return rng.standard_normal((size, length)) @ cache[length].T


def switch_feature(n: int = 1000, length: int = 100, *, lengthscale: float = 0.2, variance: float = 0.1,
                   seed: int = 0) -> TimeSeriesSet:
    """The Switch-Feature task: three hidden states, each making one feature drive the label.

    The state follows ``SWITCH_TRANSITIONS`` from a uniform start; in each state segment the three features are
    fresh Gaussian-process draws (``lengthscale``, ``variance``) around ``SWITCH_MEANS[s]``.
    ``y_t ~ Bernoulli(sigmoid(3 x_{s_t, t}))``.

    Returns:
        A :class:`TimeSeriesSet` named ``"switch-feature"`` with ``states``; ``truth`` marks (s_t, t) at every
        step.
    """
    rng = np.random.default_rng(seed)
    states = np.zeros((n, length), dtype=np.int64)
    states[:, 0] = rng.integers(0, 3, n)
    cum = SWITCH_TRANSITIONS.cumsum(1)
    for t in range(1, length):
        states[:, t] = (rng.random(n)[:, None] > cum[states[:, t - 1]]).sum(1)
    x = np.empty((n, 3, length))
    cache: dict[int, np.ndarray] = {}
    for i in range(n):
        starts = np.flatnonzero(np.r_[True, states[i, 1:] != states[i, :-1]])
        for a, b in zip(starts, np.r_[starts[1:], length], strict=True):
            noise = gp_segment(b - a, rng, lengthscale=lengthscale, variance=variance, size=3, cache=cache)
            x[i, :, a:b] = SWITCH_MEANS[states[i, a]][:, None] + noise
    driver = np.take_along_axis(x, states[:, None, :], axis=1)[:, 0]                       # (n, T)
    y = (rng.random((n, length)) < _sigmoid(3.0 * driver)).astype(np.int64)
    truth = np.zeros((n, 3, length), dtype=bool)
    np.put_along_axis(truth, states[:, None, :], True, axis=1)
    return TimeSeriesSet("switch-feature", x.astype(np.float32), y, truth, states)


TASKS = {"spike": spike, "state": state, "switch-feature": switch_feature}


def make(task: str, n: int, length: int, *, delay: int = 0, seed: int = 0) -> TimeSeriesSet:
    """Generate ``task`` (``"spike"`` | ``"state"`` | ``"switch-feature"``); ``delay`` only for spike.

    Raises:
        ValueError: unknown task, or a delay for a task without one.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
    if task == "spike":
        return spike(n, length, delay=delay, seed=seed)
    if delay:
        raise ValueError(f"task {task!r} has no delay (got {delay})")
    return TASKS[task](n, length, seed=seed)


for _name, _fn, _what in (
        ("sim-spike", spike, "3 features, spikes; the label turns on `delay` steps after feature 0's first spike"),
        ("sim-state", state, "3 features, two-state HMM; the important feature changes with the hidden state"),
        ("sim-switch-feature", switch_feature, "3 GP features, 3 hidden states; each state makes one feature "
                                               "drive the label")):
    register(Source(name=_name, description=f"Simulated time series (FIT/WinIT): {_what}", offline=_fn,
                    homepage="https://github.com/sanatonek/time_series_explainability",
                    licence="generated in code"))
