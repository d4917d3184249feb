"""MTJ-array controller: the RTL (hw/mtj_array.py) against its twin (model/blocks/mtj_array.py)
and against the contract in docs/mtj-array.md.

``ref_*`` helpers run the twin, ``rtl_*`` helpers run the Amaranth simulator. The RTL bench plays
the array in Python: it records the amplitude codes driven during PULSE, draws the row's bits when
it sees SENSE and drives them on ``port.bits`` in the next cycle only (random garbage otherwise),
so a capture in the wrong cycle shows up as a word mismatch.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Fragment, Module, Shape
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.array_port import ArrayPortSignature
from hw.mtj_array import MTJArrayController as RTL
from model.blocks.config import ArrayConfig
from model.blocks.mtj_array import MTJArrayController as Twin
from tests.simutil import run_sim


def pack(vals, width):
    return sum(int(v) << (i * width) for i, v in enumerate(vals))


def biased_array(cfg, rng, spread=True):
    """array_fn(row, amps) -> bits with P(1) = clip((amp + offset) / CMAX, 0, 1).

    Offsets span +-CMAX so some cells cannot be calibrated and saturate at 0 or CMAX."""
    cmax = cfg.code_max
    off = (rng.integers(-cmax, cmax + 1, size=(cfg.rows, cfg.cols)) if spread
           else np.zeros((cfg.rows, cfg.cols), dtype=np.int64))

    def fn(row, amps):
        p = np.clip((np.asarray(amps) + off[row]) / cmax, 0.0, 1.0)
        return (rng.random(cfg.cols) < p).astype(np.int64)
    return fn


# ------------------------------------------------------------------------------------------------
# RTL bench
class Bench:
    """Per-cycle driver of the RTL with the twin kept in lockstep (see module docstring)."""

    def __init__(self, cfg, dut, array_fn, rng, tag):
        self.cfg, self.dut, self.array_fn, self.rng, self.tag = cfg, dut, array_fn, rng, tag
        self.twin = Twin(cfg)
        self.cycle = 0
        self.pending = None           # bits to drive in the next cycle (capture cycle)
        self.amp_seen = None          # amp of the current row's PULSE
        self.expected = []            # words captured, not yet seen on raw
        self.got = []                 # words accepted from raw, with their cycle
        self.trace = []               # (reset, pulse, sense, row, amp, running) per cycle
        self.pulse_amps = []          # (row, amp) at the first cycle of each PULSE
        self.row_starts = []          # cycles of each row's first RESET cycle
        self.prev = (0, 0, 0, 0)
        self.sel_hist = []            # (cycle, cell_sel, twin's (code, alarm) after that cycle)
        self.sel_checked = 0

    async def step(self, ctx, *, enable=1, ready=1, raw_ready=1, cal_enable=1, clear=0,
                   check_amp=True, sel=None):
        """One clock cycle. ``sel``: drive ``cell_sel`` and check ``cell_code``/``cell_alarm``
        CELL_READ_LATENCY cycles later against the twin's state after this cycle's edge."""
        d, cfg, tw = self.dut, self.cfg, self.twin
        capturing = self.pending is not None
        bits = self.pending if capturing else self.rng.integers(0, 2, cfg.cols)
        self.pending = None
        for sig, v in ((d.enable, enable), (d.port.ready, ready), (d.raw.ready, raw_ready),
                       (d.cal_enable, cal_enable), (d.clear_alarms, clear),
                       (d.port.bits, pack(bits, 1))):
            ctx.set(sig, int(v))
        rst, pul, sen = ctx.get(d.port.reset), ctx.get(d.port.pulse), ctx.get(d.port.sense)
        row, amp = ctx.get(d.port.row), ctx.get(d.port.amp)
        valid = ctx.get(d.raw.valid)
        self.trace.append((rst, pul, sen, row, amp, ctx.get(d.running)))
        msg = f"[{self.tag}] cycle {self.cycle}"
        assert rst + pul + sen <= 1, msg
        # the twin, in the order the RTL applies things in one cycle: clear, then capture
        if clear:
            tw.clear_alarms()
        if capturing:
            tw.cal_enable = bool(cal_enable)
            self.expected.append(tw.capture(bits) + (tw.last_alarm,))
        if rst and not self.prev[0]:
            self.row_starts.append(self.cycle)
        if rst or pul or sen:
            assert row == tw.next_row, f"{msg}: port.row {row}, twin's next row {tw.next_row}"
        if not pul:
            assert amp == 0, f"{msg}: amp {amp:#x} outside PULSE"
        else:
            if not self.prev[1]:
                self.amp_seen = amp
                self.pulse_amps.append((row, amp))
                if check_amp:
                    want = pack(tw.amps_for_next_row(), cfg.code_width)
                    assert amp == want, f"{msg}: amp {amp:#x}, twin codes {want:#x} (row {row})"
            assert amp == self.amp_seen, f"{msg}: amp changed during PULSE"
        if sen:
            codes = [(self.amp_seen >> (c * cfg.code_width)) & cfg.code_max
                     for c in range(cfg.cols)]
            self.pending = np.asarray(self.array_fn(row, np.asarray(codes)), dtype=np.int64)
        if sel is not None:
            ctx.set(d.cell_sel, sel)
            self.sel_hist.append((self.cycle, sel, tw.cell(sel)))
            got = (ctx.get(d.cell_code), bool(ctx.get(d.cell_alarm)))
            lat = RTL.CELL_READ_LATENCY
            if len(self.sel_hist) > lat and self.sel_hist[-1 - lat][0] == self.cycle - lat:
                c0, s0, want = self.sel_hist[-1 - lat]
                assert got == want, f"{msg}: cell {s0} selected in cycle {c0}: {got}, twin {want}"
                self.sel_checked += 1
        if valid and raw_ready:
            w = (ctx.get(d.raw.payload.row), ctx.get(d.raw.payload.bits),
                 ctx.get(d.raw.payload.alarm))
            assert self.expected, f"{msg}: word {w} appeared before any capture"
            want = self.expected.pop(0)
            assert w == want, f"{msg}: raw word {w}, twin {want}"
            self.got.append((self.cycle, w))
        self.prev = (rst, pul, sen, row)
        await ctx.tick()
        self.cycle += 1

    async def drain(self, ctx, limit=200, **kw):
        """enable low, raw.ready high until idle and the buffer is empty."""
        for _ in range(limit):
            if not ctx.get(self.dut.running) and not ctx.get(self.dut.raw.valid) \
                    and self.pending is None:
                break
            await self.step(ctx, enable=0, **kw)
        assert not self.expected, f"[{self.tag}] words lost: {self.expected}"

    async def read_cell(self, ctx, index):
        ctx.set(self.dut.cell_sel, index)
        for _ in range(RTL.CELL_READ_LATENCY):
            await ctx.tick()
        self.cycle += RTL.CELL_READ_LATENCY
        return ctx.get(self.dut.cell_code), ctx.get(self.dut.cell_alarm)

    async def check_cells(self, ctx):
        """Every cell's code and alarm through cell_sel/cell_code/cell_alarm vs the twin."""
        tw, cfg = self.twin, self.cfg
        for i in range(cfg.cells + 2):       # two indices past the end read 0
            code, alarm = await self.read_cell(ctx, i)
            want = tw.cell(i)
            assert (code, bool(alarm)) == want, \
                f"[{self.tag}] cell {i}: rtl (code, alarm) {(code, alarm)}, twin {want}"
        assert ctx.get(self.dut.alarm_any) == tw.alarm_any, f"[{self.tag}] alarm_any"
        assert ctx.get(self.dut.rows_sensed) == tw.rows_sensed, \
            f"[{self.tag}] rows_sensed {ctx.get(self.dut.rows_sensed)}, twin {tw.rows_sensed}"


def rtl_run(cfg, body, tag, domain=None):
    """Simulate a fresh controller; ``body(ctx, dut)`` is the async test-bench. ``domain``: an
    explicit ``sync`` ClockDomain whose ``rst`` the bench may drive."""
    run_sim(RTL(cfg), body, domain)


def ref_run(cfg, n_rows, array_fn, cal_enable=True):
    tw = Twin(cfg)
    tw.cal_enable = cal_enable
    words = tw.run(n_rows, array_fn)
    return tw, words


# ------------------------------------------------------------------------------------------------
# random stimulus, everything compared with the twin
CONFIGS = {
    "3x4": ArrayConfig(rows=3, cols=4, code_width=3, reset_cycles=2, pulse_cycles=2,
                       window_log2=2, deadband=0, step_shift=0, code_init=3),
    "3x4_db": ArrayConfig(rows=3, cols=4, code_width=4, reset_cycles=1, pulse_cycles=3,
                          window_log2=3, deadband=1, step_shift=1, code_init=9),
    "1x3_fast": ArrayConfig(rows=1, cols=3, code_width=3, reset_cycles=1, pulse_cycles=1,
                            window_log2=2, deadband=0, step_shift=1, code_init=4),
    "4x1": ArrayConfig(rows=4, cols=1, code_width=2, reset_cycles=3, pulse_cycles=1,
                       window_log2=1, deadband=0, step_shift=0, code_init=1),
    "5x2_wide_step": ArrayConfig(rows=5, cols=2, code_width=2, reset_cycles=1, pulse_cycles=2,
                                 window_log2=3, deadband=0, step_shift=0, code_init=2),
    "8x8_cw8": ArrayConfig(rows=8, cols=8, code_width=8, reset_cycles=1, pulse_cycles=1,
                           window_log2=2, deadband=0, step_shift=0, code_init=128),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_random_against_twin(name):
    cfg = CONFIGS[name]
    seed = 1000 + list(CONFIGS).index(name)
    tag = f"{name} seed={seed}"
    rng = np.random.default_rng(seed)
    fn = biased_array(cfg, rng)
    n_cycles = 2500

    async def body(ctx, dut):
        b = Bench(cfg, dut, fn, rng, tag)
        enable = ready = cal = 1
        for _ in range(n_cycles):
            # low spells are short: most of the time the controller may run
            if rng.random() < (0.01 if enable else 0.05):
                enable ^= 1
            if rng.random() < (0.01 if ready else 0.05):
                ready ^= 1
            if rng.random() < 0.005:
                cal ^= 1
            await b.step(ctx, enable=enable or rng.random() < 0.2, ready=ready,
                         raw_ready=rng.random() < 0.6, cal_enable=cal,
                         clear=rng.random() < 0.01, sel=int(rng.integers(0, cfg.cells + 2)))
        await b.drain(ctx)
        await b.check_cells(ctx)
        tw = b.twin
        # the run must have exercised something
        print(f"{tag}: {tw.rows_sensed} rows in {b.cycle} cycles")
        assert tw.rows_sensed > n_cycles // (3 * cfg.row_period_cycles), tag
        assert len(b.got) == tw.rows_sensed, tag
        assert b.sel_checked > n_cycles - 10, tag
        assert np.any(tw.codes != cfg.code_init) or tw.alarms.any(), tag
        # the words' alarm field (checked word by word in Bench.step) was exercised
        if name != "8x8_cw8":
            assert any(w[2] for _, w in b.got), f"{tag}: no word carried an alarm"
    rtl_run(cfg, body, tag)


def test_twin_run_matches_capture_api():
    """Twin: ``run`` is ``amps_for_next_row`` + ``capture`` in a loop; rows cycle in order."""
    cfg = CONFIGS["3x4"]
    seed = 7
    fn_a = biased_array(cfg, np.random.default_rng(seed))
    fn_b = biased_array(cfg, np.random.default_rng(seed))
    tw, words = ref_run(cfg, 60, fn_a)
    tw2 = Twin(cfg)
    words2 = []
    for _ in range(60):
        r = tw2.next_row
        words2.append(tw2.capture(fn_b(r, tw2.amps_for_next_row())))
    assert words == words2, f"seed={seed}"
    assert [w[0] for w in words] == [i % cfg.rows for i in range(60)], f"seed={seed}"
    assert tw.trial == (60 // cfg.rows) % cfg.window, f"seed={seed}"
    assert np.array_equal(tw.codes, tw2.codes), f"seed={seed}"


# ------------------------------------------------------------------------------------------------
# timing
def test_throughput_no_stall():
    """raw.ready and port.ready high: a row starts, and a word leaves, every row_period_cycles."""
    for name in ("3x4", "1x3_fast", "4x1"):
        cfg = CONFIGS[name]
        seed = 11
        tag = f"{name} seed={seed}"
        rng = np.random.default_rng(seed)

        async def body(ctx, dut):
            b = Bench(cfg, dut, biased_array(cfg, rng), rng, tag)
            for _ in range(40 * cfg.row_period_cycles):
                await b.step(ctx)
            starts = np.diff(b.row_starts)
            out = np.diff([c for c, _ in b.got])
            assert len(b.row_starts) >= 39 and np.all(starts == cfg.row_period_cycles), \
                f"[{tag}] row start intervals {starts}"
            assert len(b.got) >= 38 and np.all(out == cfg.row_period_cycles), \
                f"[{tag}] word intervals {out}"
            # a row starts the cycle after enable is seen; its word is valid at SENSE + 2
            assert b.row_starts[0] == 1, f"[{tag}] first RESET at cycle {b.row_starts[0]}"
            assert b.got[0][0] == 1 + cfg.row_period_cycles + 1, f"[{tag}] first word {b.got[0]}"
        rtl_run(cfg, body, tag)


def test_row_waveform_exact():
    """Port signals cycle by cycle for the first two rows, built from the doc's table."""
    cfg = ArrayConfig(rows=2, cols=3, code_width=4, reset_cycles=3, pulse_cycles=2,
                      window_log2=2, code_init=5)
    seed = 12
    tag = f"seed={seed}"
    rng = np.random.default_rng(seed)
    amp5 = pack([5, 5, 5], 4)
    want = [(0, 0, 0, 0, 0, 0)]                               # cycle 0: idle, enable seen
    for r in (0, 1):
        want += [(1, 0, 0, r, 0, 1)] * 3 + [(0, 1, 0, r, amp5, 1)] * 2 \
            + [(0, 0, 0, r, 0, 1), (0, 0, 1, r, 0, 1)]
    marks = []

    async def body(ctx, dut):
        def array_fn(row, amps):
            v = rng.integers(0, 2, cfg.cols)
            marks.append(pack(v, 1))
            return v
        b = Bench(cfg, dut, array_fn, rng, tag)
        for _ in range(len(want)):
            await b.step(ctx)
        assert b.trace == want, f"[{tag}] trace\n{b.trace}\nwant\n{want}"
        for _ in range(4):
            await b.step(ctx, enable=0)
        assert [w[:2] for _, w in b.got] == [(0, marks[0]), (1, marks[1])], f"[{tag}] {b.got}"
    rtl_run(cfg, body, tag)


def test_capture_samples_only_the_cycle_after_sense():
    """Bits differ in SENSE, SENSE+1 and SENSE+2: the word holds the SENSE+1 value."""
    cfg = ArrayConfig(rows=2, cols=4, code_width=2, window_log2=2, code_init=1)
    tag = "fixed pattern"

    async def body(ctx, dut):
        ctx.set(dut.enable, 1)
        ctx.set(dut.port.ready, 1)
        ctx.set(dut.raw.ready, 1)
        words = []
        seen_sense = -1
        for cyc in range(30):
            if seen_sense >= 0 and cyc == seen_sense + 1:
                ctx.set(dut.port.bits, 0b1010)
            elif seen_sense >= 0 and cyc == seen_sense + 2:
                ctx.set(dut.port.bits, 0b0110)
            else:
                ctx.set(dut.port.bits, 0b0101)
            if ctx.get(dut.port.sense):
                seen_sense = cyc
            if ctx.get(dut.raw.valid):
                words.append(ctx.get(dut.raw.payload.bits))
            await ctx.tick()
        assert words and all(w == 0b1010 for w in words), f"[{tag}] {words}"
    rtl_run(cfg, body, tag)


def test_enable_dropped_mid_row_finishes_row():
    cfg = CONFIGS["3x4"]
    seed = 13
    tag = f"seed={seed}"
    rng = np.random.default_rng(seed)

    async def body(ctx, dut):
        b = Bench(cfg, dut, biased_array(cfg, rng), rng, tag)
        p = cfg.row_period_cycles
        for _ in range(1 + p + cfg.reset_cycles + 1):           # row 0, then into row 1's PULSE
            await b.step(ctx)
        assert b.trace[-1][1] == 1 and b.trace[-1][3] == 1, f"[{tag}] not in row 1's pulse"
        for _ in range(4 * p):
            await b.step(ctx, enable=0)
        kinds = [t[:3] for t in b.trace]
        # row 1 ran to SENSE, nothing after
        last_sense = max(i for i, k in enumerate(kinds) if k[2])
        assert b.trace[last_sense][3] == 1, f"[{tag}] last sensed row {b.trace[last_sense]}"
        assert all(k == (0, 0, 0) for k in kinds[last_sense + 1:]), f"[{tag}] {kinds}"
        assert not any(t[5] for t in b.trace[last_sense + 1:]), f"[{tag}] running after SENSE"
        assert [w for _, w in b.got][-1][0] == 1 and len(b.got) == 2, f"[{tag}] {b.got}"
        # enable again: continues with row 2
        for _ in range(p + 3):
            await b.step(ctx)
        assert b.got[-1][1][0] == 2, f"[{tag}] {b.got}"
    rtl_run(cfg, body, tag)


def test_port_ready_low_holds_between_rows():
    cfg = CONFIGS["3x4"]
    seed = 14
    tag = f"seed={seed}"
    rng = np.random.default_rng(seed)

    async def body(ctx, dut):
        b = Bench(cfg, dut, biased_array(cfg, rng), rng, tag)
        p = cfg.row_period_cycles
        for _ in range(5):                                 # ready low from the start: nothing
            await b.step(ctx, ready=0)
        assert not any(t[5] for t in b.trace), f"[{tag}] started while not ready"
        await b.step(ctx)                                  # ready seen at cycle 5
        for _ in range(2):                                 # into row 0's RESET, then ready low
            await b.step(ctx, ready=0)
        for _ in range(20):
            await b.step(ctx, ready=0)
        running = [t[5] for t in b.trace]
        assert b.row_starts == [6], f"[{tag}] row starts {b.row_starts}"
        assert sum(running) == p, f"[{tag}] row 0 must run to its end: {running}"
        ready_at = b.cycle
        await b.step(ctx)
        await b.step(ctx)
        assert b.row_starts == [6, ready_at + 1], f"[{tag}] {b.row_starts} (ready at {ready_at})"
        assert len(b.got) == 1 and b.got[0][1][0] == 0, f"[{tag}] {b.got}"
    rtl_run(cfg, body, tag)


def test_backpressure_buffer_reservation():
    """raw.ready low: exactly the buffer's two rows run, then the controller waits; nothing is
    lost when ready returns, and the order is kept."""
    cfg = CONFIGS["3x4"]
    seed = 15
    tag = f"seed={seed}"
    rng = np.random.default_rng(seed)

    async def body(ctx, dut):
        b = Bench(cfg, dut, biased_array(cfg, rng), rng, tag)
        for _ in range(10 * cfg.row_period_cycles):
            await b.step(ctx, raw_ready=0)
        assert len(b.row_starts) == 2 and not b.got, f"[{tag}] {b.row_starts} {b.got}"
        assert b.trace[-1][5] == 0, f"[{tag}] still running"
        for _ in range(10 * cfg.row_period_cycles):
            await b.step(ctx, raw_ready=rng.random() < 0.3)
        await b.drain(ctx)
        assert [w[0] for _, w in b.got] == [i % cfg.rows for i in range(len(b.got))], tag
        assert len(b.got) == b.twin.rows_sensed, tag
    rtl_run(cfg, body, tag)


# ------------------------------------------------------------------------------------------------
# calibration corner cases: expected codes worked out by hand from the doc's pseudo-code
EDGE_CFG = ArrayConfig(rows=1, cols=5, code_width=3, reset_cycles=1, pulse_cycles=1,
                       window_log2=3, deadband=1, step_shift=1, code_init=4)
# W = 8, W/2 = 4, CMAX = 7. Ones per window and column: e = ones - 4 = [1, 2, -2, -1, 4]
EDGE_ONES = [5, 6, 2, 3, 8]
# |e| <= 1: no change (cols 0, 3: e == deadband). col 1: step max(1, 2>>1) = 1 down;
# col 2: 1 up; col 4: step 4>>1 = 2 down.
EDGE_EXPECT = [  # (codes after the window, alarms after the window)
    ([4, 3, 5, 4, 2], [0, 0, 0, 0, 0]),
    ([4, 2, 6, 4, 0], [0, 0, 0, 0, 0]),    # col 4: 2 - 2 = 0, reached without alarm
    ([4, 1, 7, 4, 0], [0, 0, 0, 0, 1]),    # col 4: at 0 and pushed down: alarm
    ([4, 0, 7, 4, 0], [0, 0, 1, 0, 1]),    # col 2: at 7 and pushed up: alarm
    ([4, 0, 7, 4, 0], [0, 1, 1, 0, 1]),    # col 1: at 0 and pushed down: alarm
]


def edge_bits(trial, ones=EDGE_ONES):
    """Bit of each column in trial t of a window: the first ``ones[c]`` trials are 1."""
    return np.array([1 if trial % 8 < k else 0 for k in ones], dtype=np.int64)


def test_ref_window_edges_and_saturation():
    cfg = EDGE_CFG
    tw = Twin(cfg)
    for w, (codes, alarms) in enumerate(EDGE_EXPECT):
        for t in range(8):
            assert np.array_equal(tw.ones[0], [sum(edge_bits(i)[c] for i in range(t))
                                               for c in range(5)]), f"window {w} trial {t}"
            tw.capture(edge_bits(t))
        assert tw.codes[0].tolist() == codes and tw.alarms[0].astype(int).tolist() == alarms, \
            f"window {w}: {tw.codes[0]} {tw.alarms[0]}"
    # sticky: balanced windows (e = 0) keep the alarms
    for t in range(8):
        tw.capture(edge_bits(t, [4] * 5))
    assert tw.alarms[0].astype(int).tolist() == EDGE_EXPECT[-1][1]
    tw.clear_alarms()
    assert not tw.alarm_any
    # cal_enable low: window closes (ones back to 0), codes stay
    tw.cal_enable = False
    for t in range(8):
        tw.capture(edge_bits(t))
    assert tw.codes[0].tolist() == EDGE_EXPECT[-1][0] and not tw.alarm_any
    assert not tw.ones.any()


def test_rtl_window_edges_and_saturation():
    """Same scenario on the RTL; also checks the first PULSE after every window close drives the
    new codes although, with one row and reset_cycles = 1, it comes 1 cycle after the capture."""
    cfg = EDGE_CFG
    tag = "edge scenario"
    trials = []

    def array_fn(row, amps):
        t = len(trials)
        trials.append(t)
        if t < 8 * len(EDGE_EXPECT):
            return edge_bits(t)
        if t < 8 * (len(EDGE_EXPECT) + 1):
            return edge_bits(t, [4] * 5)
        return edge_bits(t)

    async def body(ctx, dut):
        rng = np.random.default_rng(0)
        b = Bench(cfg, dut, array_fn, rng, tag)
        while len(trials) < 8 * (len(EDGE_EXPECT) + 1):
            await b.step(ctx)
        await b.drain(ctx)
        # amp at the first pulse of each window = codes after the previous window (by hand)
        amps = [a for _, a in b.pulse_amps]
        for w, (codes, _) in enumerate(EDGE_EXPECT):
            assert amps[8 * (w + 1)] == pack(codes, 3), f"[{tag}] window {w}: {amps[8*(w+1)]:#x}"
        for c, (code, alarm) in enumerate(zip(*EDGE_EXPECT[-1])):
            got = await b.read_cell(ctx, c)
            assert got == (code, alarm), f"[{tag}] col {c}: {got}, want {(code, alarm)}"
        assert ctx.get(dut.alarm_any) == 1
        # clear_alarms strobe (one cycle)
        await b.step(ctx, enable=0, clear=1)
        await b.step(ctx, enable=0)
        assert ctx.get(dut.alarm_any) == 0, f"[{tag}] alarms not cleared"
        # a window with cal_enable low: codes stay, no alarm
        n0 = len(trials)
        while len(trials) < n0 + 8:
            await b.step(ctx, cal_enable=0)
        await b.drain(ctx, cal_enable=0)
        await b.check_cells(ctx)
        assert ctx.get(dut.alarm_any) == 0
        for c, code in enumerate(EDGE_EXPECT[-1][0]):
            assert (await b.read_cell(ctx, c))[0] == code, f"[{tag}] col {c}"
        # one more calibrated window re-raises the alarms
        n0 = len(trials)
        while len(trials) < n0 + 8:
            await b.step(ctx)
        await b.drain(ctx)
        await b.check_cells(ctx)
        assert ctx.get(dut.alarm_any) == 1
    rtl_run(cfg, body, tag)


def test_clear_and_alarm_in_same_cycle():
    """An alarm raised by a capture survives a clear_alarms strobe in that very cycle."""
    cfg = ArrayConfig(rows=1, cols=2, code_width=2, reset_cycles=1, pulse_cycles=1,
                      window_log2=1, deadband=0, step_shift=0, code_init=0)
    tag = "clear vs set"
    # W = 2: window closes every second capture; ones = 2 with code 0 -> alarm (both columns).

    async def body(ctx, dut):
        rng = np.random.default_rng(1)
        b = Bench(cfg, dut, lambda row, amps: np.ones(2, dtype=np.int64), rng, tag)
        closes = 0
        while closes < 2:
            closing = b.pending is not None and b.twin.trial == cfg.window - 1
            await b.step(ctx, clear=1)      # clear every cycle, including the closing capture
            closes += closing
        await b.step(ctx, enable=0)
        assert ctx.get(dut.alarm_any) == 1 and b.twin.alarm_any, f"[{tag}]"
        await b.drain(ctx)
        await b.check_cells(ctx)
        # a clear in a capture cycle that does not close the window clears the captured row too
        while True:
            hit = b.pending is not None and b.twin.trial != cfg.window - 1
            await b.step(ctx, clear=hit)
            if hit:
                break
        assert ctx.get(dut.alarm_any) == 0 and not b.twin.alarm_any, f"[{tag}]"
        await b.drain(ctx)
        await b.check_cells(ctx)
    rtl_run(cfg, body, tag)


# ------------------------------------------------------------------------------------------------
# reset in mid-stream
def test_reset_mid_stream_restarts_like_fresh_twin():
    cfg = CONFIGS["3x4"]
    seed = 16
    tag = f"seed={seed}"
    rng = np.random.default_rng(seed)
    fn = biased_array(cfg, rng)
    cd = ClockDomain("sync")

    async def body(ctx, dut):
        b = Bench(cfg, dut, fn, rng, tag)
        for _ in range(400):
            await b.step(ctx, raw_ready=rng.random() < 0.5)
        while not b.trace[-1][1]:                          # stop inside a PULSE
            await b.step(ctx, raw_ready=rng.random() < 0.5)
        assert np.any(b.twin.codes != cfg.code_init), f"[{tag}] nothing calibrated before reset"
        ctx.set(cd.rst, 1)
        ctx.set(dut.raw.ready, 0)
        await ctx.tick()
        ctx.set(cd.rst, 0)
        # fresh twin, nothing pending
        b.twin = Twin(cfg)
        b.expected.clear()
        b.pending = None
        b.prev = (0, 0, 0, 0)
        n_got = len(b.got)
        assert ctx.get(dut.running) == 0 and ctx.get(dut.raw.valid) == 0, tag
        assert ctx.get(dut.rows_sensed) == 0 and ctx.get(dut.alarm_any) == 0, tag
        for _ in range(600):
            await b.step(ctx, raw_ready=rng.random() < 0.7)
        await b.drain(ctx)
        await b.check_cells(ctx)
        assert b.got[n_got][1][0] == 0, f"[{tag}] first word after reset {b.got[n_got]}"
    rtl_run(cfg, body, tag, domain=cd)


# ------------------------------------------------------------------------------------------------
# parameters
def test_bad_parameters_rejected():
    for bad in (None, {"rows": 3}, "3x4", 8):
        with pytest.raises(ValueError, match="cfg"):
            RTL(bad)
        with pytest.raises(ValueError, match="cfg"):
            Twin(bad)
    with pytest.raises(ValueError, match="rows"):
        ArrayConfig(rows=0)
    with pytest.raises(ValueError, match="bits"):
        Twin(CONFIGS["3x4"]).capture([0, 1, 2, 0])
    with pytest.raises(ValueError, match="bits"):
        Twin(CONFIGS["3x4"]).capture([0, 1, 1])


def test_signature():
    cfg = CONFIGS["3x4"]
    dut = RTL(cfg)
    members = dict(dut.signature.members.items())
    assert set(members) == {"port", "raw", "enable", "cal_enable", "clear_alarms", "running",
                            "alarm_any", "rows_sensed", "cell_sel", "cell_code", "cell_alarm"}
    for name, width in (("cell_code", cfg.code_width), ("rows_sensed", 32), ("cell_sel", 16),
                        ("cell_alarm", 1), ("enable", 1), ("cal_enable", 1)):
        assert Shape.cast(members[name].shape).width == width, name
    assert members["port"].signature == ArrayPortSignature(cfg)
    assert members["raw"].flow == Out and members["cell_sel"].flow == In
    Fragment.get(dut, None)                   # elaborates for the smallest configs too
    Fragment.get(RTL(ArrayConfig(rows=1, cols=1, code_width=1, window_log2=1, code_init=0,
                                 step_shift=0)), None)
