"""cocotb bench: fault injection through the array port, health monitor alarms and masking.

The DUT is ``sim.fault_top.FaultTop`` (array controller -> health monitor). Every cycle the bench
watches the array port and answers each SENSE, in the next cycle, with bits from the VCMA-MTJ
device model (``model.devices.mtj``: each cell's probability of sensing 1 at the codes the
controller drove, drawn per row operation), except for the faulty cells from the fault's onset
sweep on, whose bits come from the fault model (``model.blocks.faults.CellFault``). The same bits
go to the controller and health-monitor twins. Checked:

* the codes on the port against the controller twin (every row), and every monitor output word
  ``{row, bits, valid}`` against the health twin, item by item;
* ``cell_status`` every cycle against the twin's status after exactly the words the RTL had tested
  by then (``mon_words`` history, ``CELL_READ_LATENCY``), cycling ``cell_sel`` over the faulty
  cells and one healthy cell; ``masked_count`` likewise;
* per faulty cell: the test that fires first is one of those that may fire first
  (``model.blocks.faults.predict``: computed from the cutoffs for the fault and the cell's test
  state at onset), the detection index j lies in the computed ``[lo, hi]`` (``P(j outside) <=
  2 eps``; exactly equal for deterministic faults);
* masking: from the failing sample on, the cell's output ``valid`` bits are 0; the faulty bits the
  RTL released are exactly ``max(0, j - D)`` (hold-back D);
* no healthy cell fails (its computed false-alarm probability over the run is printed and must
  be small).

Run-time stimulus (``SPINDIFF_BENCH``): ``seed``, ``array`` (ArrayConfig dict), ``health``
(HealthConfig fields without ``array``), ``scenario`` {``name``, ``kind``, ``p``, ``cells``:
list of cell indices or ``"column"`` with ``col``, or ``"central"``}, ``warmup_sweeps``
(calibration before the monitor starts), ``onset_min`` (monitor sweeps before the onset window),
``eps``, ``ready_prob`` (``o.ready`` probability).
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, Timer

from hw.health import HealthMonitor as RTLHealth
from model.blocks.config import ArrayConfig, HealthConfig
from model.blocks.faults import CellFault, CellTestState, predict, sat_earliest
from model.blocks.health import HealthMonitor, false_alarm_rates
from model.blocks.mtj_array import MTJArrayController
from model.devices.dac import PulseDAC
from model.devices.mtj import MTJArrayDevice
from sim.cocotb_util import CLK_NS, start
from sim.runner import bench_params

STATUS_READ_LATENCY = RTLHealth.CELL_READ_LATENCY
TESTS = ("rct", "apt", "corr", "sat")


def _status_vector(hm: HealthMonitor) -> np.ndarray:
    """Every cell's status packed as ``cell_status`` shows it (CellStatusLayout, LSB first)."""
    v = (hm.rct.astype(np.int64) | hm.apt << 1 | hm.corr << 2 | hm.sat << 3 | hm.fmask << 4
         | hm.masked << 5)
    return v.ravel()


def _prob_table(device: MTJArrayDevice, dac: PulseDAC) -> np.ndarray:
    """tab[code, row, col]: probability that reset + pulse at ``code`` + sense reads 1."""
    codes = np.arange(dac.code_max + 1)
    return np.stack([device.sensed_prob(dac.code_to_mV(c)) for c in codes])


@cocotb.test()
async def fault_injection(dut):
    t_start = time.time()
    p = bench_params()
    seed = int(p["seed"])
    acfg = ArrayConfig(**p["array"])
    hcfg = HealthConfig(acfg, **p["health"])
    sc = p["scenario"]
    fault = CellFault(sc["kind"], float(sc.get("p", 0.5)))
    min_run = int(sc.get("min_run", 0))
    eps = float(p.get("eps", 1e-6))
    rows, cols = acfg.rows, acfg.cols
    D = hcfg.holdback
    tag = f"scenario {sc['name']} fault {fault} seed={seed}"
    rng = np.random.default_rng(seed)              # healthy draws, onset, cells, ready, garbage
    frng = np.random.default_rng(seed + 1)         # fault draws
    dac = PulseDAC(code_width=acfg.code_width)
    device = MTJArrayDevice(rows=rows, cols=cols, seed=seed, dac=dac)
    tab = _prob_table(device, dac)
    ctrl = MTJArrayController(acfg)
    hm = HealthMonitor(hcfg)
    warm = int(p["warmup_sweeps"])
    skip = warm * rows
    # Onset at a random phase of the lag-1 window grid (partial windows exercised).
    onset = int(p["onset_min"]) + int(rng.integers(0, hcfg.corr_window))
    ready_prob = float(p.get("ready_prob", 1.0))
    col_idx = np.arange(cols)
    pack = 1 << col_idx

    dut.enable.value = 0
    dut.cal_enable.value = 1
    dut.clear_alarms.value = 0
    dut.skip_words.value = skip
    dut.cell_sel.value = 0
    dut.clear.value = 0
    dut.force_mask_we.value = 0
    dut.force_mask_wdata.value = 0
    dut.port__ready.value = 1
    dut.port__bits.value = 0
    dut.o__ready.value = 0
    await start(dut)
    dut.enable.value = 1
    prev = np.zeros((rows, cols), dtype=np.int64)    # last sensed bit of each cell

    # -- warm-up: the calibration runs, the gate drops the words before the monitor ------------
    # Nothing drains slower than the controller here, so rows follow each other every
    # row_period_cycles: the bench wakes once a row, at SENSE (checked to be where expected),
    # and drives that row's bits at once, held through the capture cycle. The codes are the
    # twin's; the port's codes are compared with the twin's every row from the last warm-up
    # sweep on, and the garbage on `bits` outside the capture cycle starts there too.
    period = acfg.row_period_cycles
    pending = None
    while not int(dut.port__sense.value):
        await FallingEdge(dut.clk)
    while True:
        assert int(dut.port__sense.value) and int(dut.port__row.value) == ctrl.next_row, (
            f"warm-up: no SENSE of row {ctrl.next_row} where expected ({tag})")
        row = ctrl.next_row
        bits = (rng.random(cols) < tab[ctrl.amps_for_next_row(), row, col_idx]).astype(np.int64)
        ctrl.capture(bits)
        prev[row] = bits
        dut.port__bits.value = int((bits * pack).sum())
        if ctrl.rows_sensed >= skip - rows:
            pending = int((bits * pack).sum())      # driven again in the capture cycle below
            break
        # to just after the rising edge that starts the next SENSE, then to its falling edge
        await Timer(period * CLK_NS - 2, unit="ns")
        await FallingEdge(dut.clk)

    # -- monitored run: every cycle ---------------------------------------------------------------
    faulty: list[int] = []           # faulty cells, chosen at the onset sweep
    onset_of: dict[int, int] = {}    # cell -> monitor sweep of its first faulty sample
    pred: dict[int, object] = {}     # cell -> DelayPrediction
    fail_j: dict[int, int] = {}      # cell -> detection index (twin)
    fail_tests: dict[int, tuple] = {}
    p_hist: list[np.ndarray] = []    # P(1) of every cell at each monitored sweep
    expected: list[tuple[int, int, int]] = []       # monitor output words to come
    out_seen = 0                     # monitor output words checked
    escaped: dict[int, int] = {}
    late_valid: list = []
    watched = list(range(acfg.cells))      # cells cycled on cell_sel (all until the onset)
    snaps = [_status_vector(hm)]           # snaps[n]: every cell's status after n words
    mcount = [0]                           # masked_count after n words
    mon_hist: list[int] = []               # mon_words per cycle
    sel_hist: list[int] = []               # cell_sel per cycle
    rtl_seen: dict[int, list] = {}         # faulty cell -> [last n_words seen ok, first failed]
    lat_mc = RTLHealth(hcfg).masked_count_latency
    pulse_amps = None
    done_after = None                # stop once the monitor has tested this many words
    cycles = 0
    status_checks = 0
    rw = acfg.row_width
    cw, cmask = acfg.code_width, (1 << acfg.code_width) - 1
    colmask = (1 << cols) - 1

    while True:
        await FallingEdge(dut.clk)
        cycles += 1
        # -- status outputs against the twin after the words the RTL had tested -------------
        mon_now = int(dut.mon_words.value)
        mon_hist.append(mon_now)
        k = len(mon_hist) - 1
        if k >= STATUS_READ_LATENCY:
            n_words = mon_hist[k - STATUS_READ_LATENCY]
            cell = sel_hist[k - STATUS_READ_LATENCY]
            got = int(dut.cell_status.value)
            want = int(snaps[n_words][cell])
            assert got == want, (
                f"cycle {cycles}: cell_status of cell {cell} = {got:06b}, twin after "
                f"{n_words} words {want:06b} ({tag})")
            status_checks += 1
            if cell in rtl_seen:
                seen = rtl_seen[cell]
                if got & 0b1111:
                    if seen[1] is None:
                        seen[1] = n_words
                else:
                    seen[0] = n_words
        if k >= lat_mc + 1:
            n_words = mon_hist[k - lat_mc - 1]
            got = int(dut.masked_count.value)
            assert got == mcount[n_words], (
                f"cycle {cycles}: masked_count {got}, twin after {n_words} words "
                f"{mcount[n_words]} ({tag})")
        sel = watched[cycles % len(watched)]
        sel_hist.append(sel)
        dut.cell_sel.value = sel

        # -- the array port ------------------------------------------------------------------
        row = int(dut.port__row.value)
        if int(dut.port__pulse.value):
            amp = int(dut.port__amp.value)
            amps = [(amp >> (c * cw)) & cmask for c in range(cols)]
            if pulse_amps is None:
                pulse_amps = amps
            assert amps == pulse_amps, f"amp changed during a pulse ({tag})"
        if pending is not None:
            dut.port__bits.value = pending
            pending = None
        else:
            dut.port__bits.value = int(rng.integers(0, 1 << cols))   # garbage: not sampled
        if int(dut.port__sense.value):
            want_amps = [int(a) for a in ctrl.amps_for_next_row()]
            assert pulse_amps is not None and (row, pulse_amps) == (ctrl.next_row, want_amps), (
                f"row {row} codes {pulse_amps}; twin row {ctrl.next_row} codes {want_amps} "
                f"({tag})")
            word_i = ctrl.rows_sensed
            msweep = word_i // rows - warm          # monitor sweep of this word (< 0: warm-up)
            pr = tab[np.asarray(pulse_amps), row, col_idx]
            bits = (rng.random(cols) < pr).astype(np.int64)
            if msweep == onset and row == 0:
                faulty = _choose_cells(sc, acfg, ctrl, rng)
                watched = faulty + [next(i for i in range(acfg.cells) if i not in faulty)]
                rtl_seen = {cell: [None, None] for cell in faulty}
            if msweep >= 0:
                if row == 0:
                    p_hist.append(np.full((rows, cols), 0.5))
                p_hist[-1][row] = pr
            for cell in faulty:
                r, c = divmod(cell, cols)
                if r != row:
                    continue
                if cell not in onset_of:
                    # With min_run (stuck faults), the fault starts once the cell is in a run of
                    # at least min_run of the stuck value: a run in progress shortens the delay.
                    if min_run and not (hm.run[r, c] >= min_run
                                        and hm.last[r, c] == fault.p1_after[0]):
                        continue
                    onset_of[cell] = msweep
                    st = CellTestState.of(hm, r, c)
                    smin = sat_earliest(acfg, int(ctrl.codes[r, c]), ctrl.trial,
                                        bool(ctrl.alarms[r, c]))
                    pred[cell] = predict(hcfg, fault, st, sat_min=smin, eps=eps)
                    dut._log.info(f"cell {cell}: onset at monitor sweep {msweep}, {st}, "
                                  f"calibration alarm not before j = {smin}; {pred[cell]}")
                bits[c] = fault.next_bit(int(prev[r, c]), frng)
                if cell not in fail_j:
                    assert msweep - onset_of[cell] <= pred[cell].hi, (
                        f"cell {cell} not detected within the computed hi = {pred[cell].hi} "
                        f"samples ({tag})")
            prev[row] = bits
            r_out, word = ctrl.capture(bits)
            if word_i >= skip:
                before = hm.failed.copy()
                expected.extend(hm.push(r_out, word, ctrl.last_alarm))
                snaps.append(_status_vector(hm))
                mcount.append(hm.masked_count)
                for cell in np.flatnonzero((hm.failed & ~before).ravel()):
                    cell = int(cell)
                    assert cell in onset_of, (
                        f"healthy cell {cell} failed at monitor sweep {msweep}: "
                        f"{hm.status(cell)} ({tag})")
                    fail_j[cell] = msweep - onset_of[cell]
                    fail_tests[cell] = tuple(t for t in TESTS if hm.status(cell)[t])
                if faulty and len(fail_j) == len(faulty) and done_after is None:
                    # drain: the failing words and D sweeps after them, plus a little
                    done_after = (word_i - skip + 1) + (D + 2) * rows
            pending = int((bits * pack).sum())
            pulse_amps = None

        # -- the monitor's output --------------------------------------------------------------
        ready = int(rng.random() < ready_prob)
        dut.o__ready.value = ready
        if ready and int(dut.o__valid.value):
            v = int(dut.o__payload.value)
            got = (v & ((1 << rw) - 1), (v >> rw) & colmask, (v >> (rw + cols)) & colmask)
            assert expected, f"output word {got} with none expected ({tag})"
            want = expected.pop(0)
            assert got == want, f"output word {out_seen}: RTL {got}, twin {want} ({tag})"
            osweep = out_seen // rows
            for cell, s0 in onset_of.items():
                r, c = divmod(cell, cols)
                if r != got[0] or osweep < s0:
                    continue
                if (got[2] >> c) & 1:
                    escaped[cell] = escaped.get(cell, 0) + 1
                    if cell in fail_j and osweep >= s0 + fail_j[cell]:
                        late_valid.append((cell, osweep))
            out_seen += 1
        if done_after is not None and mon_now >= done_after \
                and out_seen >= done_after - D * rows:
            break

    # -- verdict --------------------------------------------------------------------------------
    assert not late_valid, (f"bits released at or after the failing sample: {late_valid[:5]} "
                            f"({tag})")
    lines = []
    for cell in faulty:
        pdx, j, fired = pred[cell], fail_j[cell], fail_tests[cell]
        esc = escaped.get(cell, 0)
        ok_n, fail_n = rtl_seen[cell]
        lines.append(f"cell {cell}: fired {'+'.join(fired)} at j={j}; expected "
                     f"{'exactly ' + str(pdx.lo) if pdx.exact else f'[{pdx.lo}, {pdx.hi}]'}"
                     f" (mean {pdx.mean_primary:.1f}), primary {pdx.primary}, may fire first "
                     f"{pdx.plausible}; RTL status failed within words ({ok_n}, {fail_n}]; "
                     f"escaped {esc} (max(0, j-D) = {max(0, j - D)})")
        # The RTL's cell_status showed the cell healthy after ok_n tested words and failed after
        # fail_n: its failing word lies in between (the status equals the twin's every cycle).
        assert fail_n is not None, f"cell {cell}: RTL cell_status never showed the failure ({tag})"
        fail_word = (onset_of[cell] + j) * rows + cell // cols
        assert (ok_n is None or ok_n <= fail_word) and fail_word < fail_n, (
            f"cell {cell}: RTL status ok after {ok_n} words, failed after {fail_n}; twin failing "
            f"word {fail_word} ({tag})")
        assert set(fired) <= set(pdx.plausible), (
            f"cell {cell}: {fired} fired first; only {pdx.plausible} may ({tag})")
        assert pdx.lo <= j <= pdx.hi, (f"cell {cell}: detection index {j} outside the computed "
                                       f"[{pdx.lo}, {pdx.hi}] ({tag})")
        assert esc == max(0, j - D), (f"cell {cell}: {esc} faulty bits released, expected "
                                      f"max(0, {j} - {D}) ({tag})")
        if sc.get("expect"):
            assert pdx.primary == sc["expect"], (
                f"cell {cell}: the computed primary test is {pdx.primary}, the scenario expects "
                f"{sc['expect']} ({tag})")
    # False alarms of the healthy cells over the monitored run: per window, the exact i.i.d.
    # rates at the window's worst p (model.blocks.health.false_alarm_rates), summed.
    healthy = [i for i in range(acfg.cells) if i not in faulty]
    p_fa, worst_dev = _false_alarm_bound(hcfg,
                                         np.array(p_hist).reshape(len(p_hist), -1)[:, healthy])
    assert p_fa <= 1e-3, (f"healthy cells reached p = 1/2 +- {worst_dev:.3f}: false-alarm "
                          f"probability over the run {p_fa:.2e} (warm-up too short?) ({tag})")
    dut._log.info("\n".join(lines))
    dut._log.info(f"{tag}: onset sweep {onset}, {len(p_hist)} monitor sweeps, {cycles} cycles "
                  f"checked after the warm-up, {out_seen} words and {status_checks} status reads "
                  f"checked; healthy cells within p = 1/2 +- {worst_dev:.3f}, false-alarm "
                  f"probability over the run <= {p_fa:.2e}; {time.time() - t_start:.1f} s")


def _false_alarm_bound(hcfg: HealthConfig, p: np.ndarray) -> tuple[float, float]:
    """Probability that some healthy cell fails over the run (union bound), from each cell's
    P(1) per sweep ``p`` (sweeps x cells): per APT / lag-1 window, the exact i.i.d. window rate
    at the window's worst p; per sample, the repetition-count rate at that same p."""
    dev = np.abs(p - 0.5)
    cache: dict[int, dict] = {}

    def rates(d):
        key = int(np.ceil(d * 200))               # |p - 1/2| rounded up to 0.005
        if key not in cache:
            cache[key] = false_alarm_rates(hcfg, min(0.5 + key / 200, 0.999))
        return cache[key]

    total = 0.0
    for w, test in ((hcfg.apt_window, "apt"), (hcfg.corr_window, "corr")):
        for s0 in range(0, len(p), w):
            for d in dev[s0:s0 + w].max(axis=0):
                r = rates(d)
                total += r[test] + (r["rct"] * w if test == "corr" else 0.0)
    return total, float(dev.max(initial=0.0))


def _choose_cells(sc: dict, acfg: ArrayConfig, ctrl: MTJArrayController, rng) -> list[int]:
    """The faulty cells of a scenario, chosen at onset."""
    what = sc.get("cells", "random")
    if what == "column":
        return [r * acfg.cols + int(sc["col"]) for r in range(acfg.rows)]
    if what == "central":
        # The cell whose code is farthest from both rails: the calibration alarm (which a fault
        # that defeats calibration raises eventually) then cannot compete with the statistical
        # tests (model.blocks.faults.sat_earliest).
        d = np.minimum(ctrl.codes, acfg.code_max - ctrl.codes).ravel()
        return [int(np.argmax(d))]
    if what == "random":
        return [int(rng.integers(0, acfg.cells))]
    return [int(x) for x in what]
