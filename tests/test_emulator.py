# amaranth: UnusedElaboratable=no
"""MTJ-array emulator: RTL (hw/emulator.py) driven like the controller does, against its twin
(model/blocks/emulator.py); plus contract checks that do not rely on the twin."""

import math

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.emulator import MTJArrayEmulator as RTLEmulator
from model.blocks.config import ArrayConfig, EmulatorConfig
from model.blocks.emulator import MTJArrayEmulator as TwinEmulator
from model.blocks.emulator import seed_constants
from model.blocks.xoshiro import Xoshiro128pp


def logistic_table(code_width, prob_bits):
    """Synthetic thresholds: a logistic ramp over the codes, 0 .. 2**prob_bits - 1."""
    n, top = 1 << code_width, (1 << prob_bits) - 1
    mid, scale = (n - 1) / 2, max(1.0, n / 12)
    return tuple(int(round(top / (1 + math.exp(-(k - mid) / scale)))) for k in range(n))


def make_cfg(rows=4, cols=3, code_width=5, prob_bits=9, offset_width=5, warmup_steps=6,
             reset_cycles=1, pulse_cycles=2, seed=12345, offsets=None, table=None, rng_seed=0):
    a = ArrayConfig(rows=rows, cols=cols, code_width=code_width, reset_cycles=reset_cycles,
                    pulse_cycles=pulse_cycles, code_init=0)
    if offsets is None:
        lim = 1 << (offset_width - 1)
        offsets = tuple(int(v) for v in
                        np.random.default_rng(rng_seed).integers(-lim, lim, size=rows * cols))
    return EmulatorConfig(array=a, table=table or logistic_table(code_width, prob_bits),
                          offsets=offsets, prob_bits=prob_bits, offset_width=offset_width,
                          warmup_steps=warmup_steps, seed=seed)


def pack(amps, cw):
    return sum(int(v) << (c * cw) for c, v in enumerate(amps))


def unpack_bits(word, cols):
    return np.array([(word >> c) & 1 for c in range(cols)], dtype=np.uint8)


async def row_op(ctx, dut, row, amps):
    """One row exactly as the controller drives it: RESET, PULSE, SETTLE, SENSE; returns the
    bits seen in the capture cycle (which is also the next row's first RESET cycle)."""
    a, p = dut.cfg.array, dut.port
    ctx.set(p.row, row)
    ctx.set(p.reset, 1)
    for _ in range(a.reset_cycles):
        await ctx.tick()
    ctx.set(p.reset, 0)
    ctx.set(p.pulse, 1)
    ctx.set(p.amp, pack(amps, a.code_width))
    for _ in range(a.pulse_cycles):
        await ctx.tick()
    ctx.set(p.pulse, 0)
    ctx.set(p.amp, 0)
    await ctx.tick()                    # SETTLE
    ctx.set(p.sense, 1)
    await ctx.tick()                    # SENSE
    ctx.set(p.sense, 0)
    return unpack_bits(ctx.get(p.bits), a.cols)


async def wait_ready(ctx, dut, limit=2000):
    n = 0
    while not ctx.get(dut.port.ready):
        await ctx.tick()
        n += 1
        assert n < limit, "ready never rose"
    return n


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def random_ops(rng, cfg, count):
    a = cfg.array
    rows = rng.integers(0, a.rows, size=count)
    # Mostly uniform codes, some at the extremes to exercise clamping through the offsets.
    amps = rng.integers(0, a.code_max + 1, size=(count, a.cols))
    ext = rng.random((count, a.cols)) < 0.2
    amps[ext] = rng.choice([0, a.code_max], size=int(ext.sum()))
    return rows, amps


# ---- RTL against twin -----------------------------------------------------------------------
@pytest.mark.parametrize("kw,seed", [
    (dict(rows=8, cols=8, code_width=8, prob_bits=16, offset_width=8, warmup_steps=16,
          reset_cycles=2, pulse_cycles=2), 11),
    (dict(rows=3, cols=5, code_width=4, prob_bits=7, offset_width=4, warmup_steps=5,
          reset_cycles=1, pulse_cycles=1), 12),
    (dict(rows=1, cols=1, code_width=3, prob_bits=32, offset_width=3, warmup_steps=0,
          reset_cycles=3, pulse_cycles=2), 13),
])
def test_rtl_matches_twin(kw, seed):
    rng = np.random.default_rng(seed)
    cfg = make_cfg(**kw, seed=int(rng.integers(0, 2**32)), rng_seed=seed)
    dut, twin = RTLEmulator(cfg), TwinEmulator(cfg)
    rows, amps = random_ops(rng, cfg, 300 if cfg.array.cols > 1 else 150)
    gaps = rng.integers(0, 3, size=len(rows)) * (rng.random(len(rows)) < 0.3)
    ones = 0

    async def bench(ctx):
        nonlocal ones
        # Reset warm-up: ready low for exactly warmup_steps cycles.
        assert await wait_ready(ctx, dut) == twin.ready_after_reset_cycles, f"seed={seed}"
        for k, (r, am) in enumerate(zip(rows, amps)):
            got = await row_op(ctx, dut, int(r), am)
            exp = twin.trial(int(r), am)
            assert np.array_equal(got, exp), f"seed={seed} op={k} row={r} amps={am}"
            ones += int(got.sum())
            for _ in range(int(gaps[k])):          # controller idling between rows
                await ctx.tick()

    simulate(dut, bench)
    total = len(rows) * cfg.array.cols
    assert 0.1 * total < ones < 0.9 * total, f"seed={seed}: degenerate bits ({ones}/{total})"


def test_reseed_restarts_sequence():
    seed = 21
    rng = np.random.default_rng(seed)
    cfg = make_cfg(rows=3, cols=4, warmup_steps=7, rng_seed=seed)
    dut = RTLEmulator(cfg)
    rows, amps = random_ops(rng, cfg, 120)
    new_seed = int(rng.integers(0, 2**32))

    async def bench(ctx):
        await wait_ready(ctx, dut)
        for r, am in zip(rows[:40], amps[:40]):
            await row_op(ctx, dut, int(r), am)
        # Reseed with a strobe, restarted once in the middle of the warm-up.
        for restart in (True, False):
            ctx.set(dut.seed, new_seed)
            ctx.set(dut.reseed, 1)
            assert not ctx.get(dut.port.ready), f"seed={seed}: ready high during reseed strobe"
            await ctx.tick()
            ctx.set(dut.reseed, 0)
            ctx.set(dut.seed, 0xFFFFFFFF)       # the seed is sampled at the strobe only
            lows = 3 if restart else cfg.warmup_steps
            for i in range(lows):
                assert not ctx.get(dut.port.ready), f"seed={seed} warm-up cycle {i}"
                await ctx.tick()
        assert ctx.get(dut.port.ready), f"seed={seed}: ready not back after warm-up"
        fresh = TwinEmulator(cfg)
        fresh.reseed(new_seed)
        for k, (r, am) in enumerate(zip(rows[40:], amps[40:])):
            got = await row_op(ctx, dut, int(r), am)
            assert np.array_equal(got, fresh.trial(int(r), am)), f"seed={seed} op={k}"

    simulate(dut, bench)


@pytest.mark.parametrize("seed", [31, 32])
def test_pulse_length_does_not_matter(seed):
    rng = np.random.default_rng(seed)
    results = []
    base = make_cfg(rows=4, cols=3, rng_seed=seed)
    rows, amps = random_ops(rng, base, 80)
    for pc in (1, 3):
        cfg = make_cfg(rows=4, cols=3, pulse_cycles=pc, rng_seed=seed)
        dut = RTLEmulator(cfg)
        got = []

        async def bench(ctx):
            await wait_ready(ctx, dut)
            for r, am in zip(rows, amps):
                got.append(await row_op(ctx, dut, int(r), am))

        simulate(dut, bench)
        results.append(np.array(got))
    assert np.array_equal(results[0], results[1]), f"seed={seed}"
    twin = TwinEmulator(base)
    assert np.array_equal(results[0], twin.trials(rows, amps)), f"seed={seed}"


def test_reset_sense_and_hold():
    # All thresholds at the maximum: a pulsed cell switches unless u == 2**U - 1.
    cfg = make_cfg(rows=2, cols=4, code_width=3, prob_bits=12,
                   table=(4095,) * 8, offsets=(0,) * 8)
    dut = RTLEmulator(cfg)
    p = dut.port

    async def bench(ctx):
        await wait_ready(ctx, dut)
        got = await row_op(ctx, dut, 1, [5] * 4)
        assert got.tolist() == [1, 1, 1, 1]
        # Bits hold without sense, whatever happens on the port.
        ctx.set(p.reset, 1)
        await ctx.tick()
        ctx.set(p.reset, 0)
        for _ in range(3):
            assert ctx.get(p.bits) == 0b1111
            await ctx.tick()
        # RESET then SENSE without a pulse: the cleared states, one cycle after sense.
        ctx.set(p.sense, 1)
        assert ctx.get(p.bits) == 0b1111, "bits changed in the sense cycle (latency must be 1)"
        await ctx.tick()
        ctx.set(p.sense, 0)
        assert ctx.get(p.bits) == 0
        # A pulse with no SETTLE yet does not change the state.
        ctx.set(p.pulse, 1)
        ctx.set(p.amp, pack([5] * 4, 3))
        await ctx.tick()
        ctx.set(p.sense, 1)                 # (sense during pulse: not a controller pattern)
        await ctx.tick()
        assert ctx.get(p.bits) == 0, "state decided before SETTLE"
        ctx.set(p.sense, 0)
        ctx.set(p.pulse, 0)
        await ctx.tick()                    # SETTLE
        ctx.set(p.sense, 1)
        await ctx.tick()
        assert ctx.get(p.bits) == 0b1111

    simulate(dut, bench)


# ---- offsets --------------------------------------------------------------------------------
def test_offset_write_readback():
    seed = 41
    rng = np.random.default_rng(seed)
    cfg = make_cfg(rows=5, cols=5, offset_width=6, rng_seed=seed)   # 25 cells: 4 groups
    dut = RTLEmulator(cfg)
    shadow = list(cfg.offsets)

    async def bench(ctx):
        # Reset values read back, pipelined at the documented latency, sign-extended.
        lat = dut.offset_read_latency
        order = list(rng.permutation(cfg.array.cells)) + [0] * lat
        for k, i in enumerate(order):
            ctx.set(dut.offset_sel, int(i))
            await ctx.tick()
            if k >= lat - 1 and k + 1 - lat < cfg.array.cells:
                j = int(order[k + 1 - lat])
                assert ctx.get(dut.offset_rdata) == shadow[j], f"seed={seed} cell={j}"
        for k in range(60):
            i = int(rng.integers(0, cfg.array.cells))
            v = int(rng.choice([-32, 31, -1, 0])) if k % 3 == 0 else int(rng.integers(-32, 32))
            ctx.set(dut.offset_sel, i)
            ctx.set(dut.offset_wdata, v)
            ctx.set(dut.offset_we, 1)
            await ctx.tick()
            ctx.set(dut.offset_we, 0)
            shadow[i] = v
            for _ in range(3):
                await ctx.tick()
            assert ctx.get(dut.offset_rdata) == v, f"seed={seed} write {k}: cell={i} value={v}"
        # Out-of-range cells (32 aliases cell 0 in its low bits): writes are ignored, reads 0.
        ctx.set(dut.offset_sel, 0)
        ctx.set(dut.offset_wdata, 9)
        ctx.set(dut.offset_we, 1)
        await ctx.tick()
        ctx.set(dut.offset_we, 0)
        await ctx.tick()
        shadow[0] = 9
        for sel in (cfg.array.cells, 32, 0xFFFF):
            ctx.set(dut.offset_sel, sel)
            ctx.set(dut.offset_wdata, -5)
            ctx.set(dut.offset_we, 1)
            await ctx.tick()
            ctx.set(dut.offset_we, 0)
            for _ in range(lat + 1):
                await ctx.tick()
            assert ctx.get(dut.offset_rdata) == 0, f"sel={sel}"
        for i in range(cfg.array.cells):
            ctx.set(dut.offset_sel, i)
            for _ in range(lat):
                await ctx.tick()
            assert ctx.get(dut.offset_rdata) == shadow[i], f"seed={seed} cell={i} after all"

    simulate(dut, bench)


def test_offsets_shift_and_clamp_index():
    # Thresholds at the maximum only at codes 0 and CMAX, zero elsewhere: a cell reads 1 iff
    # clamp(amp + offset, 0, CMAX) is 0 or CMAX. Expectations are worked out here by hand.
    cw, U, ow = 4, 16, 4
    table = [0] * 16
    table[0] = table[15] = (1 << U) - 1
    cases = [  # (amp, offset, expected bit)
        (3, -8, 1),    # -5 -> 0 (a 4-bit wrap would give 11)
        (0, -1, 1),    # -1 -> 0
        (1, -1, 1),    # 0
        (2, -1, 0),    # 1
        (14, 7, 1),    # 21 -> 15 (a wrap would give 5)
        (15, 0, 1),    # 15
        (8, 7, 1),     # 15
        (7, 7, 0),     # 14
        (15, -1, 0),   # 14
        (0, 0, 1),     # 0
    ]
    cols = len(cases)
    cfg = make_cfg(rows=2, cols=cols, code_width=cw, prob_bits=U, offset_width=ow,
                   table=tuple(table), offsets=(0,) * (2 * cols), warmup_steps=2)
    dut, twin = RTLEmulator(cfg), TwinEmulator(cfg)
    amps = [c[0] for c in cases]
    expected = [c[2] for c in cases]

    async def bench(ctx):
        await wait_ready(ctx, dut)
        # Program row 1's offsets through the write port (row 0 stays 0).
        for c, (_, off, _) in enumerate(cases):
            ctx.set(dut.offset_sel, cols + c)
            ctx.set(dut.offset_wdata, off)
            ctx.set(dut.offset_we, 1)
            await ctx.tick()
            twin.set_offset(cols + c, off)
        ctx.set(dut.offset_we, 0)
        for _ in range(4):
            got = await row_op(ctx, dut, 1, amps)
            assert got.tolist() == expected
            assert np.array_equal(got, twin.trial(1, np.array(amps)))
            # Row 0 (offsets 0): only codes 0 and 15 read 1.
            got0 = await row_op(ctx, dut, 0, amps)
            assert got0.tolist() == [int(v in (0, 15)) for v in amps]
            assert np.array_equal(got0, twin.trial(0, np.array(amps)))

    simulate(dut, bench)


# ---- twin only ------------------------------------------------------------------------------
def test_seeding_follows_contract():
    cfg = make_cfg(cols=3, warmup_steps=4, seed=0xA5A5A5A5)
    twin = TwinEmulator(cfg)
    k = seed_constants(3)
    g = Xoshiro128pp((np.uint32(0xA5A5A5A5) ^ k).T)
    g.steps(4)
    assert np.array_equal(twin.gen.state, g.state)
    twin.reseed(7)
    g = Xoshiro128pp((np.uint32(7) ^ k).T)
    g.steps(4)
    assert np.array_equal(twin.gen.state, g.state)


@pytest.mark.parametrize("seed", [51, 52])
def test_trials_equals_repeated_trial(seed):
    rng = np.random.default_rng(seed)
    cfg = make_cfg(rows=5, cols=6, rng_seed=seed, seed=seed)
    t1, t2 = TwinEmulator(cfg), TwinEmulator(cfg)
    rows, amps = random_ops(rng, cfg, 500)
    seq = np.array([t1.trial(int(r), a) for r, a in zip(rows, amps)])
    assert np.array_equal(seq, t2.trials(rows, amps)), f"seed={seed}"
    assert np.array_equal(t1.gen.state, t2.gen.state), f"seed={seed}"
    sw1, sw2 = TwinEmulator(cfg), TwinEmulator(cfg)
    fixed = rng.integers(0, cfg.array.code_max + 1, size=(5, 6))
    exp = sw1.trials(np.tile(np.arange(5), 7), np.tile(fixed, (7, 1)))
    assert np.array_equal(sw2.sweeps(fixed, 7).reshape(35, 6), exp), f"seed={seed}"


@pytest.mark.parametrize("seed", [61, 62])
def test_switching_frequency_matches_table(seed):
    # Empirical P(1) at a fixed code equals table[code] / 2**U within a 5-sigma binomial bound.
    cfg = make_cfg(rows=4, cols=8, code_width=6, prob_bits=16, offsets=(0,) * 32, seed=seed)
    twin = TwinEmulator(cfg)
    sweeps = 1500
    for code in (4, 20, 31, 45, 60):
        p = cfg.table[code] / 2**16
        bits = twin.sweeps(np.full((4, 8), code), sweeps)
        n = bits.size
        k = int(bits.sum())
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(k - n * p) <= 5 * sigma + 1, f"seed={seed} code={code}: {k}/{n} vs p={p:.4f}"
        assert math.isclose(twin.probability(0, np.full(8, code))[0], p)


def test_bad_parameters():
    cfg = make_cfg()
    for cls in (RTLEmulator, TwinEmulator):
        with pytest.raises(ValueError, match="EmulatorConfig"):
            cls(cfg.array)
    twin = TwinEmulator(cfg)
    with pytest.raises(ValueError, match="value"):
        twin.set_offset(0, 16)                 # offset_width 5: [-16, 15]
    with pytest.raises(ValueError, match="cell index"):
        twin.set_offset(cfg.array.cells, 0)
    with pytest.raises(ValueError, match="amp"):
        twin.trial(0, np.array([0, 0, 32]))
    with pytest.raises(ValueError, match="row"):
        twin.trial(4, np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="shape"):
        twin.trial(0, np.array([0, 0]))
    twin.set_offset(5, -16)
    assert twin.get_offset(5) == -16 and twin.offsets[1, 2] == -16


def test_offset_write_timing():
    # Documented: a write in cycle t applies to every row whose RESET starts at t + 2 or later
    # and to no pulse whose last cycle is t + 2 or earlier. Thresholds are at the maximum only
    # at code 0, so a cell reads 1 iff amp + offset <= 0.
    table = [0] * 16
    table[0] = (1 << 16) - 1
    cfg = make_cfg(rows=2, cols=2, code_width=4, prob_bits=16, offset_width=4, reset_cycles=1,
                   pulse_cycles=1, table=tuple(table), offsets=(0,) * 4, warmup_steps=1)
    dut = RTLEmulator(cfg)

    async def write(ctx, index, value):
        ctx.set(dut.offset_sel, index)
        ctx.set(dut.offset_wdata, value)
        ctx.set(dut.offset_we, 1)
        await ctx.tick()
        ctx.set(dut.offset_we, 0)

    async def bench(ctx):
        await wait_ready(ctx, dut)
        amps = [5, 5]
        # Row starting at t + 1 (pulse ends at t + 2): still the old offset 0.
        await write(ctx, 0, -8)
        assert (await row_op(ctx, dut, 0, amps)).tolist() == [0, 0]
        assert (await row_op(ctx, dut, 0, amps)).tolist() == [1, 0]
        # Row starting at t + 2: the new offset.
        await write(ctx, 3, -8)
        await ctx.tick()
        assert (await row_op(ctx, dut, 1, amps)).tolist() == [0, 1]

    simulate(dut, bench)
