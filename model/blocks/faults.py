"""Per-cell fault models and the detection delays the health tests must show for them.

Pure functions over the cutoffs of ``model.blocks.health`` (no simulation). Used by the
fault-injection campaign (``sim/cocotb_faults.py``), which injects these faults through the array
port and checks the RTL's alarms and delays against the numbers computed here.

Fault model
-----------
A faulty cell's samples form a binary Markov chain: ``P(x_t = 1 | x_{t-1} = b) = a_b``
(:attr:`CellFault.p1_after`), started from the cell's last healthy sample. That covers

============== ================ ===============================================================
kind           (a_0, a_1)       meaning
============== ================ ===============================================================
``stuck0``     (0, 0)           the cell always reads 0 (P state; e.g. an open free layer)
``stuck1``     (1, 1)           the cell always reads 1 (AP; e.g. a shorted barrier)
``alternating`` (1, 0)          0101... (a sense amplifier latching its own complement)
``biased``     (p, p)           i.i.d. with P(1) = p whatever the pulse amplitude (the cell no
                                longer responds to the calibration: its p has drifted away)
``sticky``     (1 - rho, rho)   repeats the previous sample with probability rho (P(1) = 1/2
                                on average, but correlated: e.g. incomplete reset)
============== ================ ===============================================================

Detection index
---------------
As in ``model.blocks.health``: j = the number of the cell's faulty samples before the one whose
update sets a failure (j = 0: the first faulty sample fails). Each test's j is computed
*marginally* (that test alone) by dynamic programming over the test's exact state (run length,
APT reference and count, lag-1 count, the chain's last sample, the position in the global window
grid) from the cell's state at fault onset (:class:`CellTestState`), so partial windows and a run
already in progress are accounted for exactly. The observed j is the minimum over the tests;
:func:`delay_interval` bounds it from both sides without the joint law:

* upper: ``P(j > x) <= min_t P(j_t > x)`` (j is at most every j_t);
* lower: ``P(j < x) <= sum_t P(j_t < x)`` (union bound).

With deterministic faults (stuck, alternating) every j_t is a point mass and the interval is the
single exact value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.blocks.config import ArrayConfig, HealthConfig
from model.blocks.health import apt_cutoff, corr_bounds, rct_cutoff

FAULT_KINDS = ("stuck0", "stuck1", "alternating", "biased", "sticky")
TESTS = ("rct", "apt", "corr")


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellFault:
    """A fault of one cell's raw bits (module docstring).

    Parameters
    ----------
    kind : str
        One of ``FAULT_KINDS``.
    p : float
        ``biased``: P(1), in [0, 1]. ``sticky``: probability of repeating the previous sample, in
        [0, 1]. Ignored by the other kinds.
    """

    kind: str
    p: float = 0.5

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"CellFault.kind = {self.kind!r}: must be one of {FAULT_KINDS}")
        if isinstance(self.p, bool) or not isinstance(self.p, (int, float)) \
                or not 0.0 <= self.p <= 1.0:
            raise ValueError(f"CellFault.p = {self.p!r}: out of range, allowed [0, 1]")

    @property
    def p1_after(self) -> tuple[float, float]:
        """(a_0, a_1): probability of a 1 after a 0 and after a 1."""
        k, p = self.kind, float(self.p)
        return {"stuck0": (0.0, 0.0), "stuck1": (1.0, 1.0), "alternating": (1.0, 0.0),
                "biased": (p, p), "sticky": (1.0 - p, p)}[k]

    @property
    def deterministic(self) -> bool:
        return all(a in (0.0, 1.0) for a in self.p1_after)

    def next_bit(self, prev: int, rng: np.random.Generator) -> int:
        """The next faulty sample after ``prev`` (draws from ``rng`` only if not deterministic)."""
        a = self.p1_after[int(prev)]
        if a in (0.0, 1.0):
            return int(a)
        return int(rng.random() < a)

    def __str__(self):
        return self.kind if self.kind in ("stuck0", "stuck1", "alternating") \
            else f"{self.kind}({self.p:g})"


@dataclass(frozen=True)
class CellTestState:
    """The state of one cell's health tests just before its first faulty sample.

    Attributes follow ``model.blocks.health.HealthMonitor``: ``last`` (previous sample), ``run``
    (0 = new life), ``apt_pos``/``corr_pos`` (grid position of the next sample), ``apt_ref``,
    ``apt_b`` (0 = waiting for a window), ``corr_t1`` (T + 1, 0 = waiting).
    """

    last: int = 0
    run: int = 0
    apt_pos: int = 0
    apt_ref: int = 0
    apt_b: int = 0
    corr_pos: int = 0
    corr_t1: int = 0

    @classmethod
    def of(cls, hm, row: int, col: int) -> "CellTestState":
        """From a ``model.blocks.health.HealthMonitor`` whose next word is of ``row``."""
        if hm.next_row != row:
            raise ValueError(f"CellTestState.of: row = {row}: the monitor's next word is of row "
                             f"{hm.next_row}; the grid positions would be off")
        rc = (row, col)
        return cls(last=int(hm.last[rc]), run=int(hm.run[rc]), apt_pos=int(hm.apt_pos),
                   apt_ref=int(hm.ref[rc]), apt_b=int(hm.apt_b[rc]), corr_pos=int(hm.corr_pos),
                   corr_t1=int(hm.corr_t1[rc]))


def _px(fault: CellFault) -> np.ndarray:
    """px[last, x] = P(next = x | previous = last)."""
    a0, a1 = fault.p1_after
    return np.array([[1.0 - a0, a0], [1.0 - a1, a1]])


# ------------------------------------------------------------------------------------------------
# Marginal laws of each test's detection index, by dynamic programming over its exact state.
def rct_pmf(cfg: HealthConfig, fault: CellFault, st: CellTestState, horizon: int) -> np.ndarray:
    """P(the repetition count test alone first fails at faulty sample j), j < ``horizon``.

    State: (last sample, run length 1 .. C_RCT - 1). A sample equal to the last extends the run
    (a new life starts a run of 1); the run reaching C_RCT fails.
    """
    c = rct_cutoff(cfg)
    px = _px(fault)
    f = np.zeros(horizon)
    # first sample: from the onset state
    d = np.zeros((2, c + 1))
    for x in (0, 1):
        pr = px[st.last, x]
        if st.run == 0 or x != st.last:
            d[x, 1] += pr
        else:
            d[x, min(st.run + 1, c)] += pr
    f[0] = d[:, c].sum()
    d[:, c] = 0.0
    for t in range(1, horizon):
        n = np.zeros_like(d)
        for b in (0, 1):
            n[b, 2:] += d[b, 1:-1] * px[b, b]          # same: run + 1
            n[1 - b, 1] += d[b].sum() * px[b, 1 - b]    # different: new run
        f[t] = n[:, c].sum()
        n[:, c] = 0.0
        d = n
        if d.sum() < 1e-300:
            break
    return f


def apt_pmf(cfg: HealthConfig, fault: CellFault, st: CellTestState, horizon: int) -> np.ndarray:
    """P(the adaptive proportion test alone first fails at faulty sample j), j < ``horizon``.

    State: (last sample, reference, B), B = 0 when waiting for a window; the grid position is
    deterministic. At a window's first sample ref = x, B = 1; later, B counts matches and fails
    on reaching C_APT.
    """
    w, ca = cfg.apt_window, apt_cutoff(cfg)
    px = _px(fault)
    f = np.zeros(horizon)
    d = np.zeros((2, 2, ca + 1))       # [last, ref, B]
    d[st.last, st.apt_ref, st.apt_b] = 1.0
    pos = st.apt_pos
    for t in range(horizon):
        n = np.zeros_like(d)
        for x in (0, 1):
            pr = px[:, x][:, None, None] * d          # weight of x, per state
            if pos == 0:
                n[x, x, 1] += pr.sum()
            else:
                # no match (or waiting): B unchanged; match: B + 1 (active only)
                n[x, 1 - x, :] += pr[:, 1 - x, :].sum(axis=0)
                m = pr[:, x, :].sum(axis=0)
                n[x, x, 0] += m[0]
                n[x, x, 2:] += m[1:-1]
        f[t] = n[:, :, ca].sum()
        n[:, :, ca] = 0.0
        d = n
        pos = (pos + 1) % w
        if d.sum() < 1e-300:
            break
    return f


def corr_pmf(cfg: HealthConfig, fault: CellFault, st: CellTestState, horizon: int) -> np.ndarray:
    """P(the lag-1 test alone first fails at faulty sample j), j < ``horizon``.

    State: (last sample, T + 1), 0 = waiting. A window's first sample sets T = (it is a
    transition); later transitions add 1 and T reaching U + 1 fails; at the window's last sample
    T < L fails. A new life's first sample is no transition.
    """
    n_w = cfg.corr_window
    lo, hi = corr_bounds(cfg)
    px = _px(fault)
    f = np.zeros(horizon)
    size = hi + 3                       # T + 1 in 0 .. U + 2 (U + 2 = failed)
    d = np.zeros((2, size))
    d[st.last, st.corr_t1] = 1.0
    pos = st.corr_pos
    new_life = st.run == 0
    for t in range(horizon):
        n = np.zeros_like(d)
        for x in (0, 1):
            for b in (0, 1):
                pr = d[b] * px[b, x]
                trans = int(x != b and not new_life)
                if pos == 0:
                    n[x, 1 + trans] += pr.sum()
                elif trans:
                    n[x, 0] += pr[0]
                    n[x, 2:] += pr[1:-1]
                else:
                    n[x] += pr
        new_life = False
        fail = n[:, hi + 2].sum()
        n[:, hi + 2] = 0.0
        if pos == n_w - 1:
            fail += n[:, 1:lo + 1].sum()            # active, T < L
            n[:, 1:lo + 1] = 0.0
        f[t] = fail
        d = n
        pos = (pos + 1) % n_w
        if d.sum() < 1e-300:
            break
    return f


def detection_pmfs(cfg: HealthConfig, fault: CellFault, st: CellTestState,
                   horizon: int) -> dict[str, np.ndarray]:
    """The three marginal laws (:func:`rct_pmf`, :func:`apt_pmf`, :func:`corr_pmf`)."""
    if not isinstance(fault, CellFault):
        raise ValueError(f"detection_pmfs: fault = {fault!r}: must be a CellFault")
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= 10**6:
        raise ValueError(f"detection_pmfs: horizon = {horizon!r}: must be an integer in "
                         f"[1, 1000000]")
    return {"rct": rct_pmf(cfg, fault, st, horizon), "apt": apt_pmf(cfg, fault, st, horizon),
            "corr": corr_pmf(cfg, fault, st, horizon)}


def sat_earliest(arr: ArrayConfig, code: int, trial: int, alarm: bool = False) -> int:
    """Earliest detection index at which the calibration's saturation alarm can reach the monitor.

    ``code``, ``trial``, ``alarm``: the cell's calibration code, the global trial counter and the
    cell's alarm at the onset sample (before its capture). A window closes at the capture with
    trial = W - 1, so the k-th close after onset is sample ``(W - 1 - trial) + (k - 1) W``. Each
    close moves the code by at most ``max(1, (W/2) >> step_shift)`` (|e| <= W/2), and the alarm
    needs a close that finds the code already at a rail; so it needs at least
    ``ceil(d / maxstep) + 1`` closes, d = distance of the code to the nearer rail. Whatever the
    fault does, the alarm cannot come sooner.
    """
    if alarm:
        return 0
    w = arr.window
    maxstep = max(1, (w // 2) >> arr.step_shift)
    dist = min(int(code), arr.code_max - int(code))
    return (w - 1 - int(trial)) + math.ceil(dist / maxstep) * w


# ------------------------------------------------------------------------------------------------
def _survival(pmf: np.ndarray) -> np.ndarray:
    """S[x] = P(j > x) for x < len(pmf) (mass beyond the horizon counts as > x)."""
    return np.clip(1.0 - np.cumsum(pmf), 0.0, 1.0)


@dataclass(frozen=True)
class DelayPrediction:
    """What the tests must do for one faulty cell (see :func:`predict`).

    Attributes
    ----------
    lo, hi : int
        ``P(j < lo) <= eps`` and ``P(j > hi) <= eps``.
    primary : str
        The test whose own law gives ``hi`` (the one that catches the fault).
    plausible : tuple of str
        Tests that may be the first to fail: those with ``p_first_bound > eps``. Any other
        test failing first is an error.
    p_first_bound : dict
        Upper bound on the probability that each test fails first (or together with the
        primary): for a test t, ``min_x [P(j_t <= x) + P(j_primary > x)]`` (t first implies
        j_t <= j_primary); for ``"sat"``, ``P(j_primary >= sat_min)``; 1 for the primary.
    mean_primary : float
        E[j_primary] (exact for deterministic faults; an upper bound on E[j] otherwise).
    exact : bool
        lo == hi: the delay is deterministic.
    """

    lo: int
    hi: int
    primary: str
    plausible: tuple
    p_first_bound: dict
    mean_primary: float

    @property
    def exact(self) -> bool:
        return self.lo == self.hi


def delay_interval(pmfs: dict[str, np.ndarray], eps: float) -> tuple[int, int, str]:
    """(lo, hi, primary) from the marginal laws (module docstring); raises ValueError if no test
    reaches ``P(j_t > x) <= eps`` within the horizon."""
    his = {}
    for name, pmf in pmfs.items():
        s = _survival(pmf)
        ok = np.flatnonzero(s <= eps)
        if ok.size:
            his[name] = int(ok[0])
    if not his:
        raise ValueError(f"delay_interval: no test detects the fault with probability "
                         f"1 - {eps:g} within {len(next(iter(pmfs.values())))} samples")
    primary = min(his, key=lambda k: (his[k], TESTS.index(k) if k in TESTS else 9))
    hi = his[primary]
    below = np.zeros(hi + 1)            # below[x] = sum_t P(j_t < x)
    for pmf in pmfs.values():
        below[1:] += np.cumsum(pmf[:hi])
    lo = int(np.flatnonzero(below <= eps)[-1])
    return lo, hi, primary


def predict(cfg: HealthConfig, fault: CellFault, st: CellTestState, *, sat_min: int | None = None,
            eps: float = 1e-6, horizon: int | None = None) -> DelayPrediction:
    """Expected detection of ``fault`` in a cell with test state ``st`` at onset.

    ``sat_min``: :func:`sat_earliest` for the cell (None: calibration alarm not considered).
    ``horizon``: samples to compute; by default grown from 4 windows of the longer test window
    until some test detects with probability 1 - eps (ValueError if none does in 256 windows).
    """
    if horizon is None:
        # grow until some test detects with probability 1 - eps (at most 256 windows)
        longest = max(cfg.apt_window, cfg.corr_window)
        horizon = 4 * longest
        while True:
            pmfs = detection_pmfs(cfg, fault, st, horizon)
            try:
                lo, hi, primary = delay_interval(pmfs, eps)
                break
            except ValueError:
                if horizon >= 256 * longest:
                    raise
                horizon *= 4
    else:
        pmfs = detection_pmfs(cfg, fault, st, horizon)
        lo, hi, primary = delay_interval(pmfs, eps)
    if sat_min is not None:
        lo = min(lo, sat_min)
    s_p = _survival(pmfs[primary])          # P(j_primary > x)
    p_first = {}
    for k, v in pmfs.items():
        p_first[k] = 1.0 if k == primary else float(np.min(np.cumsum(v) + s_p))
    if sat_min is not None:
        p_first["sat"] = 1.0 if sat_min <= 0 else float(s_p[min(sat_min, len(s_p)) - 1])
    plausible = tuple(k for k, v in p_first.items() if v > eps)
    pmf = pmfs[primary]
    mean = float((np.arange(len(pmf)) * pmf).sum() / pmf.sum())
    return DelayPrediction(lo, hi, primary, plausible, p_first, mean)


def window_detection_probability(cfg: HealthConfig, fault: CellFault, test: str) -> float:
    """Probability that one whole window of ``test`` ("apt" or "corr") of faulty samples fails,
    the previous sample drawn from the fault's stationary law (for reporting: the expected number
    of windows to detection is about 1 / this)."""
    a0, a1 = fault.p1_after
    pi1 = a0 / (1.0 - a1 + a0) if (1.0 - a1 + a0) > 0 else 0.5
    w = cfg.apt_window if test == "apt" else cfg.corr_window
    total = 0.0
    for last, pl in ((0, 1.0 - pi1), (1, pi1)):
        if pl == 0.0:
            continue
        st = CellTestState(last=last, run=1)
        fn = {"apt": apt_pmf, "corr": corr_pmf}[test]
        total += pl * float(fn(cfg, fault, st, w).sum())
    return total


def escape_table(cfg: HealthConfig, faults, holdbacks, eps: float = 1e-6) -> list[dict]:
    """Detection delay and escaped-bit bound per fault, for the README.

    Stuck and alternating faults: the worst case over the onset phase,
    ``model.blocks.health.detection_delay_bound``. Random faults (biased, sticky): onset at a
    window boundary, the mean of the catching test's delay and its ``1 - eps`` quantile ``hi``
    (an onset inside a window adds at most one window). ``escaped[D] = max(0, hi - D)``
    (``model.blocks.health.escaped_bits``), with probability >= 1 - eps for random faults.
    """
    from model.blocks.health import detection_delay_bound, escaped_bits
    rows = []
    for f in faults:
        if f.kind in ("stuck0", "stuck1", "alternating"):
            kind = "stuck" if f.kind.startswith("stuck") else "alternating"
            hi = detection_delay_bound(cfg, kind)
            test, mean = ("rct" if kind == "stuck" else "corr"), float("nan")
        else:
            last = 1 if f.p1_after[1] >= 0.5 else 0
            p = predict(cfg, f, CellTestState(last=last, run=1), eps=eps)
            hi, test, mean = p.hi, p.primary, p.mean_primary
        rows.append({"fault": str(f), "test": test, "mean": mean, "hi": hi,
                     "escaped": {d: escaped_bits(hi, d) for d in holdbacks}})
    return rows
