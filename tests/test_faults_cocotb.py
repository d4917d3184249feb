"""Fault-injection campaign through the array port (cocotb on Verilator), and the statistics
behind it (``model.blocks.faults``).

The bench (``sim/cocotb_faults.py``) plays the array with the VCMA-MTJ device model and injects
one fault per test into ``sim.fault_top.FaultTop`` (controller -> health monitor); it checks the
alarm that fires, the detection delay against the delay computed from the cutoffs, masking and
the escaped bits, with and without hold-back. Two builds; every scenario of a build reuses it.

The model-level tests below check the computed laws of the detection index against the health
twin itself (Monte Carlo) and the closed forms of ``model.blocks.health.detection_delay_bound``.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict

import numpy as np
import pytest

from model.blocks.config import ArrayConfig, HealthConfig
from model.blocks.faults import (CellFault, CellTestState, detection_pmfs, predict, sat_earliest,
                                 window_detection_probability)
from model.blocks.health import HealthMonitor, corr_bounds, detection_delay_bound, rct_cutoff
from model.devices.dac import PulseDAC
from model.devices.mtj import MTJModel

SEED = int(os.environ.get("SPINDIFF_SEED", "20261124"))


def _code50(code_width: int) -> int:
    """The nominal device's code closest to P(sense 1) = 1/2 (every cell starts there)."""
    dac = PulseDAC(code_width=code_width)
    p = MTJModel().sensed_prob(dac.code_to_mV(np.arange(dac.code_max + 1)))
    return int(np.argmin(np.abs(np.asarray(p) - 0.5)))


# 4x4 array, 4-cycle rows (16 cycles a sweep); calibration window 32 with steps of up to 4 codes,
# so the cells' device-to-device spread is calibrated out in the warm-up.
FAULT_ARRAY = ArrayConfig(rows=4, cols=4, code_width=8, reset_cycles=1, pulse_cycles=1,
                          window_log2=5, step_shift=2, deadband=0, code_init=_code50(8))
# The default H = 1/2 and alpha = 2**-30, shorter windows: the lag-1 window of 256 catches a bias
# p >= ~0.85 within a window or two, the APT window 128 keeps its false alarms negligible.
FAULT_HEALTH = dict(min_entropy=0.5, alpha_log2=-30, apt_window=128, corr_window=256)
HOLDBACK = 64      # > C_RCT - 1 = 60: a stuck cell never releases a faulty bit
WARMUP_SWEEPS = 1024
ONSET_MIN = 128

SCENARIOS = {
    "stuck0": dict(kind="stuck0", cells="random", expect="rct"),
    "stuck1": dict(kind="stuck1", cells="random", min_run=3, expect="rct"),
    "dead_column": dict(kind="stuck0", cells="column", col=2, expect="rct"),
    "alternating": dict(kind="alternating", cells="random", expect="corr"),
    "biased_0.9": dict(kind="biased", p=0.9, cells="central", expect="corr"),
    "sticky_0.8": dict(kind="sticky", p=0.8, cells="central", expect="corr"),
}
HOLDBACK_SCENARIOS = ["stuck1", "dead_column", "alternating"]   # j < D, j < D, j > D


def _run(name: str, holdback: int, index: int):
    from sim.fault_top import FaultTop
    from sim.runner import run_cocotb
    hcfg = HealthConfig(FAULT_ARRAY, holdback=holdback, **FAULT_HEALTH)
    build = f"faults_4x4_d{holdback}"
    sc = dict(SCENARIOS[name], name=name)
    health = dict(FAULT_HEALTH, holdback=holdback)
    run_cocotb(FaultTop(hcfg), build, "sim.cocotb_faults",
               {"array": asdict(FAULT_ARRAY), "health": health, "scenario": sc,
                "warmup_sweeps": WARMUP_SWEEPS, "onset_min": ONSET_MIN, "eps": 1e-6,
                "ready_prob": 0.9},
               seed=SEED + index, run_name=f"{build}_{name}")


@pytest.mark.cocotb
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_detected_no_holdback(name):
    _run(name, 0, list(SCENARIOS).index(name))


@pytest.mark.cocotb
@pytest.mark.parametrize("name", HOLDBACK_SCENARIOS)
def test_fault_detected_with_holdback(name):
    _run(name, HOLDBACK, 100 + list(SCENARIOS).index(name))


# ------------------------------------------------------------------------------------------------
# The computed laws against the health twin (no simulator).
def _twin_marginals(cfg, fault, prefix, n_samples, batches, rng):
    """Monte Carlo of each test's own first failure (index j after the prefix) with the twin:
    ``cfg.array`` is one row of independent cells, all with the same healthy prefix."""
    cols = cfg.array.cols
    counts = {t: np.zeros(n_samples) for t in ("rct", "apt", "corr")}
    a = np.array(fault.p1_after)
    pack = 1 << np.arange(cols)
    for _ in range(batches):
        hm = HealthMonitor(cfg)
        for b in prefix:
            hm.push(0, int(b) * ((1 << cols) - 1))
        base = copy.deepcopy(hm)
        prev = np.full(cols, int(prefix[-1]))
        first = {t: np.full(cols, -1) for t in counts}
        for j in range(n_samples):
            prev = (rng.random(cols) < a[prev]).astype(np.int64)
            hm.push(0, int((prev * pack).sum()))
            for t in counts:
                f = getattr(hm, t)[0] & (first[t] < 0)
                first[t][f] = j
        for t in counts:
            np.add.at(counts[t], first[t][first[t] >= 0], 1)
    runs = batches * cols
    return base, {t: c / runs for t, c in counts.items()}, runs


@pytest.mark.parametrize("fault", [CellFault("biased", 0.85), CellFault("sticky", 0.85),
                                   CellFault("stuck1"), CellFault("alternating")],
                         ids=str)
def test_detection_laws_match_twin(fault):
    """The dynamic-programming laws of each test's detection index against Monte Carlo runs of
    the health twin, from a random healthy prefix (partial windows, a run in progress)."""
    # short windows and H = 1 so that every test fires within the 200 samples for these faults
    cfg = HealthConfig(ArrayConfig(rows=1, cols=48), min_entropy=1.0, alpha_log2=-20,
                       apt_window=64, corr_window=48)
    seed = SEED + 7
    rng = np.random.default_rng(seed)
    prefix = rng.integers(0, 2, int(rng.integers(40, 100)))
    n = 200
    base, mc, runs = _twin_marginals(cfg, fault, prefix, n, 1 if fault.deterministic else 40, rng)
    pm = detection_pmfs(cfg, fault, CellTestState.of(base, 0, 0), n)
    assert any(pm[t].sum() > 0.1 for t in pm)
    for t in mc:
        # compare the CDFs at every point: Kolmogorov-type bound, 5 sigma of a binomial at 1/2
        gap = np.max(np.abs(np.cumsum(mc[t]) - np.cumsum(pm[t])))
        tol = 0 if fault.deterministic else 5 * 0.5 / np.sqrt(runs)
        assert gap <= tol + 1e-12, (f"{fault} {t}: CDF gap {gap:.4f} > {tol:.4f} "
                                    f"(seed={seed}, prefix {len(prefix)})")


def test_deterministic_delays_match_closed_forms():
    """Stuck and alternating cells: the computed delay against C_RCT and the lag-1 window bound."""
    cfg = HealthConfig(FAULT_ARRAY, **FAULT_HEALTH)
    c = rct_cutoff(cfg)
    lo, u = corr_bounds(cfg)
    for run in range(0, c - 1):
        st = CellTestState(last=1, run=run, apt_pos=5, apt_ref=0, apt_b=3, corr_pos=9,
                           corr_t1=6)
        p = predict(cfg, CellFault("stuck1"), st)
        want = c - 1 - run if run else c - 1
        assert p.exact and p.lo == want and p.plausible == ("rct",), (run, p)
        assert p.lo <= detection_delay_bound(cfg, "stuck")
    worst = 0
    n = cfg.corr_window
    for pos in list(range(0, n, 29)) + [n - 1]:
        for t in sorted({0, min(pos, u) // 2, min(pos, u)}):   # transitions so far in the window
            st = CellTestState(last=0, run=1, corr_pos=pos, corr_t1=t + 1 if pos else 0)
            p = predict(cfg, CellFault("alternating"), st)
            assert p.exact and p.primary == "corr", (pos, t, p)
            # T < L at the window's end: low failure there; T > U within the window if the
            # remaining samples suffice; else at position U of the next window
            left = n - pos
            want = (left - 1) if t + left < lo else (u - t) if t + left > u else left + u
            assert p.lo == want, (pos, t, p.lo, want)
            worst = max(worst, p.lo)
    assert worst <= detection_delay_bound(cfg, "alternating")


def test_sat_earliest_is_a_lower_bound():
    """No calibration alarm before sat_earliest, for a cell driven to the rail as fast as the
    controller allows (every sample 1 -> e = W/2 every window)."""
    from model.blocks.mtj_array import MTJArrayController
    a = FAULT_ARRAY
    for code0, trial0 in ((a.code_init, 0), (40, 7), (250, 31)):
        ctrl = MTJArrayController(a)
        ctrl.codes[:] = code0
        ctrl.trial = trial0
        bound = sat_earliest(a, code0, trial0)
        # towards the nearer rail: all 1 lowers the code (switches too often), all 0 raises it
        bits = 1 if code0 <= a.code_max - code0 else 0
        j = 0
        while not ctrl.alarms[0, 0]:
            for _ in range(a.rows):
                ctrl.capture([bits] * a.cols)
            j += 1
        assert j - 1 >= bound, (code0, trial0, j - 1, bound)


def test_bias_detection_table_monotone():
    """More bias, more detection per window; p = 0.6 (min-entropy 0.74 > H = 0.5) is a healthy
    source at the declared H and must be (almost) never flagged."""
    cfg = HealthConfig(FAULT_ARRAY, **FAULT_HEALTH)
    probs = [window_detection_probability(cfg, CellFault("biased", p), "corr")
             for p in (0.6, 0.7, 0.8, 0.85, 0.9, 0.95)]
    assert all(b >= a for a, b in zip(probs, probs[1:])), probs
    assert probs[0] < 1e-6 and probs[-1] > 0.99, probs
