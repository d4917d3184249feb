"""Fault campaign on the device model: which alarm fires, how late, how many bad bits get out.

The array is the VCMA-MTJ device model played against the calibration twin window by window
(:class:`model.validate.sources.DeviceArray`); its raw words go through the health monitor twin
(:class:`model.blocks.health.HealthMonitor`, vectorised ``first_fail`` / ``run_sweeps``, bit-exact
with the RTL's). As in the RTL fault bench (``sim/fault_top.py``), the monitor starts after a
calibration warm-up (``warmup_windows``), like a start-up gate.

Faults (:data:`SCENARIOS`), injected at ``onset`` (a monitored sweep):

* per-sample faults of :class:`model.blocks.faults.CellFault` (stuck-at, correlated = sticky,
  alternating) on chosen cells, and a dead column (every cell of one column stuck at 0);
* device-level faults through the pulse voltage (``DeviceArray.extra_offset_mV``, like the
  model's drift offset): a slow linear bias drift of one cell, a sudden bias jump of one cell;
* a temperature excursion of the whole array (``MTJArrayDevice.set_temperature``).

**Bad bit.** A sample is bad when the cell's min-entropy falls below the health tests' declared
H: ``max(P(1 | previous), P(0 | previous)) > 2^-H`` for its law at that sample (the fault's
transition law for CellFault samples, the device's P(1) at the cell's code for the others). A
fault the calibration absorbs (a small jump, a drift within the DAC range) may give no bad bit.

Per faulty cell the campaign reports the first test that fails (``rct``, ``apt``, ``corr``,
``sat``), the detection index counted from the onset and from the first bad sample (j, in the
cell's samples: 0 = the first bad sample itself fails), and per hold-back D the bad samples whose
``valid`` bit left the monitor (``escaped``). Healthy cells that fail count as false alarms.
:func:`false_alarms` measures the false-alarm rate on healthy sources alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from model.blocks.config import ArrayConfig, HealthConfig
from model.blocks.faults import CellFault
from model.blocks.health import HealthMonitor, escaped_bits
from model.validate.sources import DeviceArray

__all__ = ["SCENARIOS", "Scenario", "aggregate", "false_alarms", "run_campaign",
           "run_scenario"]


@dataclass(frozen=True)
class Scenario:
    """One fault of the campaign.

    Attributes
    ----------
    name : str
    kind : str
        ``"cell"`` (a :class:`CellFault` ``fault``/``p`` on ``cells``), ``"column"`` (``fault`` on
        every cell of column ``col``), ``"drift"`` (``rate_mV_per_window`` added to the pulse
        voltage of ``cells`` every window), ``"jump"`` (``jump_mV`` added once),
        ``"temperature"`` (the array at ``temperature_K`` from the onset, reached linearly over
        ``ramp_windows``). A drift stops at ``max_offset_mV`` (default 300 mV: beyond it the
        thermal model's validity range is left at the lowest code).
    cells : tuple of int
        Cell indices (row * cols + col) for cell, drift and jump faults.
    """

    name: str
    kind: str
    what: str
    fault: str = ""
    p: float = 0.5
    cells: tuple = (9,)
    col: int = 3
    rate_mV_per_window: float = 0.0
    max_offset_mV: float = 300.0
    jump_mV: float = 0.0
    temperature_K: float = 300.0
    ramp_windows: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("cell", "column", "drift", "jump", "temperature"):
            raise ValueError(f"Scenario {self.name}: kind = {self.kind!r}: allowed cell, column, "
                             f"drift, jump, temperature")


#: The default campaign. Magnitudes are ASSUMED stress cases (no published failure statistics of
#: VCMA-MTJ TRNG arrays were found); each is stated in ``what``.
SCENARIOS = (
    Scenario("stuck1", "cell", "cell 9 reads 1 forever (shorted barrier)", fault="stuck1"),
    Scenario("stuck0", "cell", "cell 9 reads 0 forever (open free layer)", fault="stuck0"),
    Scenario("dead_column", "column", "column 3 reads 0 (dead sense amplifier)", fault="stuck0"),
    Scenario("correlated", "cell", "cell 9 repeats its last bit with probability 0.9",
             fault="sticky", p=0.9),
    Scenario("alternating", "cell", "cell 9 alternates 0101...", fault="alternating"),
    Scenario("slow_drift", "drift", "cell 9 pulse voltage +2 mV per window (64 sweeps) until the "
             "code saturates (up to +300 mV)", rate_mV_per_window=2.0),
    Scenario("jump_in_range", "jump", "cell 9 pulse voltage +40 mV at once (within the DAC "
             "range: calibration pulls it back)", jump_mV=40.0),
    Scenario("jump_out_of_range", "jump", "cell 9 pulse voltage -250 mV at once (beyond the DAC "
             "range: P(1) -> 0)", jump_mV=-250.0),
    Scenario("temperature_step", "temperature", "whole array 300 K -> 350 K at once",
             temperature_K=350.0, ramp_windows=0),
    Scenario("temperature_ramp", "temperature", "whole array 300 K -> 350 K over 50 windows",
             temperature_K=350.0, ramp_windows=50),
)


def _bad_cellfault(fault: CellFault, h: float) -> bool:
    a0, a1 = fault.p1_after
    return max(a0, 1 - a0, a1, 1 - a1) > 2.0 ** -h


def run_scenario(sc: Scenario, hcfg: HealthConfig | None = None, seed: int = 1, *,
                 warmup_windows: int = 30, onset_windows: int = 16, monitor_windows: int = 400,
                 holdbacks=(0, 64, 1024), drift_speedup: float = 1.0) -> dict:
    """Run one scenario; return the per-cell figures (module docstring) and the false alarms.

    Parameters
    ----------
    sc : Scenario
    hcfg : HealthConfig, optional
        Default ``HealthConfig(ArrayConfig())`` (H = 0.8, alpha = 2^-30, W = 1024); its
        ``holdback`` is ignored (``holdbacks`` are evaluated on the same bits).
    seed : int
        Device and trial seed; the per-sample faults draw from ``seed + 1`` and the onset phase
        (a random sweep inside the window grid of the lag-1 test) from ``seed + 2``.
    warmup_windows : int
        Calibration windows before the monitor starts.
    onset_windows : int
        Monitored windows before the onset window; the onset sweep is that window's start plus
        a random phase (per-sample faults) or the window start (device-level faults).
    monitor_windows : int
        Monitored windows in all.
    holdbacks : sequence of int
        Hold-back depths D for the escaped-bit counts.
    drift_speedup : float
        Of the array's natural drift (default 1: real time).
    """
    hcfg = HealthConfig(ArrayConfig()) if hcfg is None else hcfg
    a = hcfg.array
    w = a.window
    for name, v, lo in (("warmup_windows", warmup_windows, 0), ("onset_windows", onset_windows, 0),
                        ("monitor_windows", monitor_windows, onset_windows + 2)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= 10**6:
            raise ValueError(f"run_scenario: {name} = {v!r}: must be an integer in [{lo}, 10**6]")
    arr = DeviceArray(a, seed, calibrate=True, drift_speedup=drift_speedup)
    frng = np.random.default_rng(seed + 1)
    orng = np.random.default_rng(seed + 2)
    for _ in range(warmup_windows):
        arr.window()
    onset = onset_windows * w
    cells = list(sc.cells)
    if sc.kind in ("cell", "column"):
        onset += int(orng.integers(0, w))
        if sc.kind == "column":
            cells = [r * a.cols + sc.col for r in range(a.rows)]
        fault = CellFault(sc.fault, sc.p)
    h = hcfg.min_entropy
    lim = 2.0 ** -h
    s_total = monitor_windows * w
    bits = np.empty((s_total, a.rows, a.cols), dtype=np.uint8)
    alarm = np.empty_like(bits, dtype=bool)
    bad = np.zeros(bits.shape, dtype=bool)
    p_hist = np.empty((monitor_windows, a.rows, a.cols))
    t0 = arr.device.params.temperature_K
    for k in range(monitor_windows):
        s0 = k * w
        if sc.kind in ("drift", "jump", "temperature") and s0 >= onset:
            i = (s0 - onset) // w            # windows since onset
            if sc.kind == "drift":
                for c in cells:     # stops at max_offset_mV (the model's validity range)
                    v = arr.extra_offset_mV.flat[c] + sc.rate_mV_per_window
                    arr.extra_offset_mV.flat[c] = float(np.clip(v, -sc.max_offset_mV,
                                                                sc.max_offset_mV))
            elif sc.kind == "jump" and i == 0:
                for c in cells:
                    arr.extra_offset_mV.flat[c] += sc.jump_mV
            elif sc.kind == "temperature":
                frac = 1.0 if sc.ramp_windows == 0 else min(1.0, (i + 1) / sc.ramp_windows)
                arr.device.set_temperature(t0 + frac * (sc.temperature_K - t0))

        def override(b, s0=s0):
            if sc.kind not in ("cell", "column"):
                return
            first = max(onset - s0, 0)
            if first >= w:
                return
            for c in cells:
                r, col = divmod(c, a.cols)
                # the chain starts from the cell's previous (healthy or faulty) sample
                prev = int(b[first - 1, r, col]) if first > 0 \
                    else int(bits[s0 - 1, r, col]) if s0 > 0 else 0
                for t in range(first, w):
                    prev = fault.next_bit(prev, frng)
                    b[t, r, col] = prev

        b, al, p = arr.window(override)
        bits[s0:s0 + w], alarm[s0:s0 + w], p_hist[k] = b, al, p
        bad[s0:s0 + w] = (np.maximum(p, 1 - p) > lim)[None]
        if sc.kind in ("cell", "column"):
            first = max(onset - s0, 0)
            if first < w:
                for c in cells:
                    r, col = divmod(c, a.cols)
                    bad[s0 + first:s0 + w, r, col] = _bad_cellfault(fault, h)
                    bad[s0:s0 + first, r, col] = False
    hm = HealthMonitor(dataclasses.replace(hcfg, holdback=0))
    ff, test = hm.first_fail(bits, alarm)
    valid = {d: HealthMonitor(dataclasses.replace(hcfg, holdback=d)).run_sweeps(bits, alarm)
             for d in holdbacks}
    faulty = set(cells) if sc.kind != "temperature" else set(range(a.cells))
    per_cell = []
    for c in sorted(faulty):
        r, col = divmod(c, a.cols)
        badc = bad[:, r, col]
        first_bad = int(np.flatnonzero(badc)[0]) if badc.any() else None
        det = int(ff[r, col]) if ff[r, col] < s_total else None
        esc = {}
        for d, v in valid.items():
            n_out = v.shape[0]
            esc[d] = int(np.count_nonzero(v[:, r, col] & badc[:n_out]))
        per_cell.append({
            "cell": c, "test": str(test[r, col]) or None, "detect_sweep": det,
            "latency_from_onset": None if det is None else det - onset,
            "first_bad_sweep": first_bad,
            "latency_from_first_bad": (None if det is None or first_bad is None
                                       or first_bad > det else det - first_bad),
            "bad_samples": int(badc.sum()),
            "bad_before_detection": int(badc[:det if det is not None else s_total].sum()),
            "escaped": esc,
            # the monitor's rule max(0, j - D) for faults bad from their first sample on
            "escaped_rule": ({d: escaped_bits(det - first_bad, d) for d in holdbacks}
                             if det is not None and first_bad is not None
                             and badc[first_bad:det].all() else None),
            "p_range": [float(p_hist[:, r, col].min()), float(p_hist[:, r, col].max())],
        })
    false = [int(i) for i in np.flatnonzero((ff < s_total).ravel()) if int(i) not in faulty]
    detected = [c for c in per_cell if c["detect_sweep"] is not None]
    with_bad = [c for c in per_cell if c["bad_samples"]]
    tests = sorted({c["test"] for c in detected})
    lat_bad = [c["latency_from_first_bad"] for c in with_bad
               if c["latency_from_first_bad"] is not None]
    return {
        "name": sc.name, "what": sc.what, "kind": sc.kind, "seed": seed, "onset_sweep": onset,
        "monitored_sweeps": s_total, "cells": per_cell, "tests": tests,
        "cells_faulty": len(per_cell), "cells_detected": len(detected),
        "cells_with_bad_bits": len(with_bad),
        "cells_bad_undetected": sum(1 for c in with_bad if c["detect_sweep"] is None),
        "max_latency_from_first_bad": max(lat_bad) if lat_bad else None,
        "max_latency_from_onset": max((c["latency_from_onset"] for c in detected), default=None),
        "escaped": {d: sum(c["escaped"][d] for c in per_cell) for d in holdbacks},
        "bad_samples": sum(c["bad_samples"] for c in per_cell),
        "false_alarm_cells": false,
    }


def aggregate(runs: list[dict]) -> dict:
    """One scenario's figures over several :func:`run_scenario` results (seeds): sums of cells
    and escaped bits, worst latencies, the union of the tests that fired; ``runs`` kept."""
    first = runs[0]
    lat = [r["max_latency_from_first_bad"] for r in runs
           if r["max_latency_from_first_bad"] is not None]
    lat_on = [r["max_latency_from_onset"] for r in runs if r["max_latency_from_onset"] is not None]
    out = {k: first[k] for k in ("name", "what", "kind")}
    out.update({
        "seeds": [r["seed"] for r in runs],
        "monitored_sweeps": first["monitored_sweeps"],
        "tests": sorted({t for r in runs for t in r["tests"]}),
        **{k: sum(r[k] for r in runs) for k in ("cells_faulty", "cells_detected",
                                                 "cells_with_bad_bits", "cells_bad_undetected",
                                                 "bad_samples")},
        "max_latency_from_first_bad": max(lat) if lat else None,
        "max_latency_from_onset": max(lat_on) if lat_on else None,
        "escaped": {d: sum(r["escaped"][d] for r in runs) for d in first["escaped"]},
        "escaped_max_per_run": {d: max(r["escaped"][d] for r in runs) for d in first["escaped"]},
        "false_alarm_cells": sum(len(r["false_alarm_cells"]) for r in runs),
        "runs": runs,
    })
    return out


def run_campaign(scenarios=SCENARIOS, hcfg: HealthConfig | None = None, seeds=(1,),
                 progress=None, **kw) -> list[dict]:
    """:func:`run_scenario` for each scenario and seed, aggregated per scenario
    (:func:`aggregate`); ``progress(name, seed)`` is called before each run."""
    out = []
    for sc in scenarios:
        runs = []
        for seed in seeds:
            if progress is not None:
                progress(sc.name, seed)
            runs.append(run_scenario(sc, hcfg, seed, **kw))
        out.append(aggregate(runs))
    return out


def false_alarms(hcfg: HealthConfig | None = None, seeds=(1,), *, warmup_windows: int = 30,
                 monitor_windows: int = 1000, drift_speedup: float = 1.0,
                 progress=None) -> dict:
    """False alarms of the health tests on healthy calibrated device arrays (no fault).

    Returns the cells that failed, the cell-samples and cell-windows (lag-1 windows) tested,
    and the rate per cell-window with its one-sided 95 % upper bound (``3.0 / windows`` when
    none failed, the rule of three).
    """
    hcfg = HealthConfig(ArrayConfig()) if hcfg is None else hcfg
    a = hcfg.array
    failed, tests = 0, {}
    samples = 0
    for seed in seeds:
        if progress is not None:
            progress(seed)
        arr = DeviceArray(a, seed, calibrate=True, drift_speedup=drift_speedup)
        for _ in range(warmup_windows):
            arr.window()
        parts = [arr.window() for _ in range(monitor_windows)]
        bits = np.concatenate([p[0] for p in parts])
        alarm = np.concatenate([p[1] for p in parts])
        ff, test = HealthMonitor(dataclasses.replace(hcfg, holdback=0)).first_fail(bits, alarm)
        hit = ff < bits.shape[0]
        failed += int(hit.sum())
        for t in test[hit]:
            tests[str(t)] = tests.get(str(t), 0) + 1
        samples += bits.size
    cell_windows = samples // hcfg.corr_window
    rate = failed / cell_windows if cell_windows else float("nan")
    upper = 3.0 / cell_windows if failed == 0 else None
    return {"seeds": list(seeds), "cells_failed": failed, "tests": tests,
            "cell_samples": int(samples), "cell_windows": int(cell_windows),
            "rate_per_cell_window": rate, "upper95_per_cell_window": upper,
            "monitor_windows": monitor_windows, "warmup_windows": warmup_windows}
