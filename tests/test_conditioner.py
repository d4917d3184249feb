# amaranth: UnusedElaboratable=no
"""Conditioner: RTL (hw/conditioner.py) against its twin (model/blocks/conditioner.py), the twin's
vectorised ``run`` against its per-word ``push``, and the twin against the contract
(docs/trng-readout.md §2) and against the statistics it promises.
"""

from __future__ import annotations


import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module, Shape
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.conditioner import Conditioner as RTL
from hw.conditioner import cond_word_layout
from hw.health import health_word_layout
from model.blocks.config import ArrayConfig, ConditionerConfig
from model.blocks.conditioner import FOLD, PASS, VON_NEUMANN
from model.blocks.conditioner import Conditioner as Twin
from tests.simutil import pack, random_valid, run_sim



def cfg_of(rows, cols, max_fold=8):
    return ConditionerConfig(ArrayConfig(rows=rows, cols=cols), max_fold=max_fold)



# ------------------------------------------------------------------------------------------------
# RTL bench
def rtl_run(cfg, body, domain=None):
    run_sim(RTL(cfg), body, domain)


class Bench:
    """Per-cycle driver: random input gaps and output back-pressure, twin in lockstep.

    Every cycle: drive mode/k and tell the twin (set_mode before push of a word accepted in the
    same cycle, see the twin's module docstring), drive the input, check the stream rules and
    compare every output word with the twin's."""

    def __init__(self, cfg, dut, rng, tag, row0=0):
        self.cfg, self.dut, self.rng, self.tag = cfg, dut, rng, tag
        self.twin = Twin(cfg)
        self.row = row0                # next row to send (round-robin)
        self.word = None               # (row, bits, valid) offered, not yet accepted
        self.expected = []
        self.n_in = self.n_out = 0
        self.cycle = 0
        self.held = None               # output word held under back-pressure last cycle
        self.emitted = 0

    async def step(self, ctx, mode, k, p_in=0.7, p_ready=0.7):
        d, cfg, a = self.dut, self.cfg, self.cfg.array
        msg = f"[{self.tag}] cycle {self.cycle}"
        ctx.set(d.mode, mode)
        ctx.set(d.k, k)
        self.twin.set_mode(mode, k)
        if self.word is None and self.rng.random() < p_in:
            self.word = (self.row, pack(self.rng.integers(0, 2, a.cols)),
                         random_valid(self.rng, a.cols))
            self.row = (self.row + 1) % a.rows
        if self.word is not None:
            ctx.set(d.i.valid, 1)
            ctx.set(d.i.payload, {"row": self.word[0], "bits": self.word[1],
                                  "valid": self.word[2]})
        else:
            ctx.set(d.i.valid, 0)
            ctx.set(d.i.payload, {"row": 0, "bits": pack(self.rng.integers(0, 2, a.cols)),
                                  "valid": pack(self.rng.integers(0, 2, a.cols))})
        o_ready = int(self.rng.random() < p_ready)
        ctx.set(d.o.ready, o_ready)
        o_valid, i_ready = ctx.get(d.o.valid), ctx.get(d.i.ready)
        pay = ctx.get(d.o.payload)
        got = (pay.bits, pay.valid)
        assert i_ready == int((not o_valid) or o_ready), f"{msg}: i.ready {i_ready}"
        if self.held is not None:
            assert o_valid and got == self.held, f"{msg}: output changed under back-pressure"
        self.held = got if (o_valid and not o_ready) else None
        if o_valid and o_ready:
            assert self.expected, f"{msg}: output {got} without input"
            want = self.expected.pop(0)
            assert got == want, f"{msg}: output (bits, valid) {got}, twin {want}"
            self.n_out += 1
            self.emitted += bin(got[1]).count("1")
        if self.word is not None and i_ready:
            self.expected.append(self.twin.push(*self.word))
            self.word = None
            self.n_in += 1
        await ctx.tick()
        self.cycle += 1

    async def drain(self, ctx, mode, k, limit=20):
        for _ in range(limit):
            if not self.expected and self.word is None:
                break
            await self.step(ctx, mode, k, p_in=0.0, p_ready=1.0)
        assert not self.expected and self.word is None, f"[{self.tag}] words stuck"


def schedule(rng, n_cycles, max_fold, modes):
    """List of (mode, k) per cycle, changing at random points, each setting held a while."""
    out = []
    while len(out) < n_cycles:
        mode = int(rng.choice(modes))
        k = int(rng.choice([0, 1, 2, 3, max_fold]))
        out += [(mode, k)] * int(rng.integers(20, 120))
    return out[:n_cycles]


RTL_CONFIGS = {
    "3x4_f5": (3, 4, 5),
    "1x1_f3": (1, 1, 3),
    "1x5_f8": (1, 5, 8),
    "4x1_f2": (4, 1, 2),
    "8x8_f8": (8, 8, 8),
    "2x3_f1": (2, 3, 1),
}


@pytest.mark.parametrize("name", list(RTL_CONFIGS))
def test_rtl_random_against_twin(name):
    rows, cols, max_fold = RTL_CONFIGS[name]
    cfg = cfg_of(rows, cols, max_fold)
    seed = 100 + list(RTL_CONFIGS).index(name)
    tag = f"{name} seed={seed}"
    rng = np.random.default_rng(seed)
    sched = schedule(rng, 1200, max_fold, [PASS, FOLD, VON_NEUMANN, 3])

    async def body(ctx, dut):
        b = Bench(cfg, dut, rng, tag, row0=int(rng.integers(0, rows)))
        for mode, k in sched:
            await b.step(ctx, mode, min(k, max_fold), p_in=rng.choice([0.3, 0.9]),
                         p_ready=rng.choice([0.3, 0.9]))
        await b.drain(ctx, *sched[-1])
        assert b.n_in > 300 and b.n_out == b.n_in, f"[{tag}] in {b.n_in} out {b.n_out}"
        assert b.emitted > 50, f"[{tag}] only {b.emitted} bits emitted"
    rtl_run(cfg, body)


@pytest.mark.parametrize("mode,k", [(FOLD, 1), (FOLD, 2), (FOLD, 3), (FOLD, 6), (FOLD, 0),
                                    (VON_NEUMANN, 1), (PASS, 2)])
def test_rtl_each_mode_full_rate(mode, k):
    """Fixed setting, input every cycle, output always ready: one word per cycle, latency 1."""
    cfg = cfg_of(3, 5, max_fold=6)
    seed = 200 + 10 * mode + k
    tag = f"mode={mode} k={k} seed={seed}"
    rng = np.random.default_rng(seed)

    async def body(ctx, dut):
        b = Bench(cfg, dut, rng, tag)
        for _ in range(200):
            n_in = b.n_in
            await b.step(ctx, mode, k, p_in=1.0, p_ready=1.0)
            assert b.n_in == n_in + 1, f"[{tag}] cycle {b.cycle}: input stalled"
            assert len(b.expected) <= 1, f"[{tag}] latency above 1"
        await b.drain(ctx, mode, k)
        assert b.n_out == 200, tag
    rtl_run(cfg, body)


def test_rtl_mode_change_takes_effect_on_word_of_same_cycle():
    """A word accepted in the cycle of the change is processed with the new setting from
    cleared state; the word accepted just before keeps the old one."""
    cfg = cfg_of(1, 2, max_fold=4)
    full = 0b11

    async def body(ctx, dut):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)

        async def word(mode, k, bits):
            ctx.set(dut.mode, mode)
            ctx.set(dut.k, k)
            ctx.set(dut.i.payload, {"row": 0, "bits": bits, "valid": full})
            assert ctx.get(dut.i.ready)
            await ctx.tick()
            p = ctx.get(dut.o.payload)
            assert ctx.get(dut.o.valid)
            return p.bits, p.valid

        # fold k=3: two words of ones leave both cells at acc=0 (1^1), cnt=2
        assert await word(FOLD, 3, 0b11) == (0, 0)
        assert await word(FOLD, 3, 0b11) == (0, 0)
        # k changes to 2 in the cycle of the third word: state cleared, this is bit 1 of 2
        assert await word(FOLD, 2, 0b01) == (0, 0)
        # 2nd bit: cell0 1^1 = 0, cell1 0^1 = 1; both emit
        assert await word(FOLD, 2, 0b11) == (0b10, 0b11)
        # VN: first bits 1,0 pending; then the mode goes PASS for one word and back to VN:
        assert await word(VON_NEUMANN, 2, 0b01) == (0, 0)
        assert await word(PASS, 2, 0b10) == (0b10, 0b11)
        # back in VN the pending bits are gone: this word is a first bit again, emits nothing
        assert await word(VON_NEUMANN, 2, 0b10) == (0, 0)
        assert await word(VON_NEUMANN, 2, 0b01) == (0b10, 0b11)   # cell0 01 -> 0, cell1 10 -> 1
        # a change with no word in flight (i.valid low) also clears
        assert await word(FOLD, 2, 0b11) == (0, 0)
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.k, 3)
        await ctx.tick()
        ctx.set(dut.k, 2)          # back to 2: changed again, clears again
        await ctx.tick()
        ctx.set(dut.i.valid, 1)
        assert await word(FOLD, 2, 0b11) == (0, 0)                # first bit, not the second
        assert await word(FOLD, 2, 0b00) == (0b11, 0b11)
    rtl_run(cfg, body)


def test_rtl_reset_mid_stream():
    cfg = cfg_of(3, 4, max_fold=4)
    seed = 300
    tag = f"seed={seed}"
    rng = np.random.default_rng(seed)
    cd = ClockDomain("sync")

    async def body(ctx, dut):
        b = Bench(cfg, dut, rng, tag, row0=1)
        for i in range(900):
            if i in (250, 601):
                # reset in the middle of a fold group / VN pair; the output register's word is
                # dropped, so do it while the output is not ready and forget what was expected
                mode = FOLD if i < 600 else VON_NEUMANN
                ctx.set(cd.rst, 1)
                ctx.set(dut.i.valid, 0)
                ctx.set(dut.o.ready, 0)
                await ctx.tick()
                ctx.set(cd.rst, 0)
                assert ctx.get(dut.o.valid) == 0, tag
                b.twin.reset()
                b.expected.clear()
                b.held = None
                b.n_out = b.n_in = 0
                continue
            mode, k = (FOLD, 3) if i < 600 else (VON_NEUMANN, 1)
            await b.step(ctx, mode, k, p_in=0.8, p_ready=0.6)
        await b.drain(ctx, VON_NEUMANN, 1)
        assert b.n_out == b.n_in > 100, tag
    rtl_run(cfg, body, domain=cd)


def test_rtl_backpressure_holds_input():
    """o.ready low for long stretches: i.ready low, nothing accepted, nothing lost."""
    cfg = cfg_of(2, 3, max_fold=2)
    seed = 400
    tag = f"seed={seed}"
    rng = np.random.default_rng(seed)

    async def body(ctx, dut):
        b = Bench(cfg, dut, rng, tag)
        for i in range(400):
            ready = 0.0 if (i // 40) % 2 else 1.0
            await b.step(ctx, FOLD, 2, p_in=1.0, p_ready=ready)
            if ready == 0.0 and i % 40 > 1:
                assert not ctx.get(dut.i.ready), f"[{tag}] cycle {i}: i.ready under stall"
        await b.drain(ctx, FOLD, 2)
    rtl_run(cfg, body)


# ------------------------------------------------------------------------------------------------
# twin: contract examples, vectorised run == push
def test_twin_contract_examples():
    cfg = cfg_of(2, 3, max_fold=4)
    tw = Twin(cfg)
    tw.set_mode(FOLD, 3)
    seq = [(1, 0, 1), (1, 1, 1), (0, 1, 1)]      # word t, column c: bit seq[t][c]; all valid
    outs = [tw.push(0, pack(w), 0b111) for w in seq]
    assert outs[0] == (0, 0) and outs[1] == (0, 0)
    want = [seq[0][c] ^ seq[1][c] ^ seq[2][c] for c in range(3)]
    assert outs[2] == (pack(want), 0b111)
    # invalid bits do not count: a masked cell never emits, a word of row 1 does not touch row 0
    tw.set_mode(FOLD, 2)
    assert tw.push(0, 0b111, 0b000) == (0, 0)
    assert tw.push(1, 0b111, 0b111) == (0, 0)
    assert tw.push(0, 0b101, 0b011) == (0, 0)
    assert tw.push(0, 0b011, 0b011) == (0b10, 0b011)   # cell0 1^1 = 0, cell1 0^1 = 1
    tw2 = Twin(cfg)
    tw2.set_mode(VON_NEUMANN, 1)
    for pair, want in (((0, 1), (0, 1)), ((1, 0), (1, 1)), ((0, 0), (0, 0)), ((1, 1), (0, 0))):
        assert tw2.push(0, pair[0], 1) == (0, 0)
        assert tw2.push(0, pair[1], 1) == want, pair
    tw2.set_mode(PASS, 1)
    assert tw2.push(1, 0b110, 0b011) == (0b010, 0b011)


def _rand_stream(rng, cfg, T, round_robin=True):
    a = cfg.array
    row0 = int(rng.integers(0, a.rows))
    rows = (row0 + np.arange(T)) % a.rows if round_robin else rng.integers(0, a.rows, T)
    bits = rng.integers(0, 2, (T, a.cols), dtype=np.uint8)
    dens = rng.random((T, 1))
    valid = (rng.random((T, a.cols)) < dens).astype(np.uint8)
    valid[rng.random(T) < 0.1] = 1
    masked = rng.random(a.cols) < 0.2                       # some cells masked all the time
    valid[:, masked] = 0
    return rows, bits, valid


@pytest.mark.parametrize("seed", range(12))
def test_run_matches_push(seed):
    rng = np.random.default_rng(500 + seed)
    tag = f"seed={500 + seed}"
    rows, cols = int(rng.integers(1, 6)), int(rng.integers(1, 10))
    max_fold = int(rng.integers(1, 9))
    cfg = cfg_of(rows, cols, max_fold)
    a, b = Twin(cfg), Twin(cfg)
    b.chunk_bits = int(rng.integers(1, 60))                 # exercise chunk boundaries
    for chunk in range(5):
        mode, k = int(rng.integers(0, 4)), int(rng.integers(0, max_fold + 1))
        a.set_mode(mode, k)
        b.set_mode(mode, k)
        T = int(rng.integers(0, 150))
        r, bits, valid = _rand_stream(rng, cfg, T, round_robin=rng.random() < 0.7)
        ob, ov = b.run(r, bits, valid)
        for t in range(T):
            want = a.push(int(r[t]), pack(bits[t]), pack(valid[t]))
            got = (pack(ob[t]), pack(ov[t]))
            assert got == want, f"[{tag}] chunk {chunk} word {t} mode {mode} k {k}"
        assert np.array_equal(a.acc, b.acc) and np.array_equal(a.cnt, b.cnt), \
            f"[{tag}] state after chunk {chunk}"


# ------------------------------------------------------------------------------------------------
# statistics (twin, vectorised)
def _biased(rng, cfg, T, p):
    a = cfg.array
    rows = np.arange(T) % a.rows
    bits = (rng.random((T, a.cols)) < p).astype(np.uint8)
    valid = np.ones((T, a.cols), dtype=np.uint8)
    valid[:, 0] = 0                                          # a masked cell
    valid[rng.random((T, a.cols)) < 0.1] = 0                 # and random gaps
    return rows, bits, valid


def _within(ones, n, p, z=5.0):
    return abs(ones - n * p) <= z * np.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_xor_fold_bias(k):
    seed = 600 + k
    rng = np.random.default_rng(seed)
    cfg = cfg_of(4, 8, max_fold=8)
    p = 0.7
    rows, bits, valid = _biased(rng, cfg, 60_000, p)
    tw = Twin(cfg)
    tw.set_mode(FOLD, k)
    ob, ov = tw.run(rows, bits, valid)
    assert not ov[:, 0].any(), f"seed={seed}: masked cell emitted"
    n = int(ov.sum())
    n_valid = int(valid.sum())
    assert n_valid // k - cfg.array.cells <= n <= n_valid // k, f"seed={seed}: {n} outputs"
    ones = int(ob[ov.astype(bool)].sum())
    p_out = 0.5 - 0.5 * (1 - 2 * p) ** k      # P(1) of the XOR of k bits; bias |2p-1|^k / 2
    assert _within(ones, n, p_out), f"seed={seed} k={k}: {ones}/{n}, expected P(1) {p_out:.4f}"
    if k > 1:                                                # and clearly not the input bias
        assert not _within(ones, n, p), f"seed={seed} k={k}: bias not reduced"


def test_von_neumann_unbiased():
    seed = 700
    rng = np.random.default_rng(seed)
    cfg = cfg_of(3, 8)
    p = 0.8
    rows, bits, valid = _biased(rng, cfg, 60_000, p)
    tw = Twin(cfg)
    tw.set_mode(VON_NEUMANN, 1)
    ob, ov = tw.run(rows, bits, valid)
    n = int(ov.sum())
    pairs = int(valid.sum()) // 2
    assert _within(n, pairs, 2 * p * (1 - p)), f"seed={seed}: {n} outputs from {pairs} pairs"
    ones = int(ob[ov.astype(bool)].sum())
    assert _within(ones, n, 0.5), f"seed={seed}: {ones} ones of {n}"
    assert not ov[:, 0].any(), f"seed={seed}: masked cell emitted"


# ------------------------------------------------------------------------------------------------
# parameters and signature
def test_bad_parameters_rejected():
    for bad in (None, ArrayConfig(), "cfg", 8):
        with pytest.raises(ValueError, match="cfg"):
            RTL(bad)
        with pytest.raises(ValueError, match="cfg"):
            Twin(bad)
    with pytest.raises(ValueError, match="max_fold"):
        ConditionerConfig(ArrayConfig(), max_fold=0)
    with pytest.raises(ValueError, match="max_fold"):
        ConditionerConfig(ArrayConfig(), max_fold=65)
    tw = Twin(cfg_of(3, 4, max_fold=5))
    with pytest.raises(ValueError, match="mode"):
        tw.set_mode(4, 1)
    with pytest.raises(ValueError, match="k"):
        tw.set_mode(FOLD, 6)
    with pytest.raises(ValueError, match="k"):
        tw.set_mode(FOLD, -1)
    with pytest.raises(ValueError, match="row"):
        tw.push(3, 0, 0)
    with pytest.raises(ValueError, match="bits"):
        tw.push(0, 16, 0)
    with pytest.raises(ValueError, match="valid"):
        tw.push(0, 0, -1)
    with pytest.raises(ValueError, match="bits"):
        tw.run([0], np.zeros((1, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="bits"):
        tw.run([0], np.full((1, 4), 2), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="rows"):
        tw.run([5], np.zeros((1, 4), int), np.zeros((1, 4), int))


def test_signature():
    cfg = cfg_of(5, 6, max_fold=8)
    dut = RTL(cfg)
    mem = dict(dut.signature.members.items())
    assert set(mem) == {"i", "o", "mode", "k"}
    assert mem["i"].flow == In and mem["o"].flow == Out
    assert mem["i"].signature.members["payload"].shape == health_word_layout(cfg.array)
    assert mem["o"].signature.members["payload"].shape == cond_word_layout(cfg.array)
    assert Shape.cast(mem["mode"].shape).width == 2
    assert Shape.cast(mem["k"].shape).width == 4                 # range(9)
    lay = health_word_layout(cfg.array)
    assert {n: f.width for n, f in lay} == {"row": 3, "bits": 6, "valid": 6}
