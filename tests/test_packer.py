# amaranth: UnusedElaboratable=no
"""BitPacker: RTL (hw/packer.py) against its twin (model/blocks/conditioner.py), the twin's
vectorised ``run`` against ``push`` and against the contract (docs/trng-readout.md §3), and the
packer's rate under a ready sink.
"""

from __future__ import annotations


import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module, Shape
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.conditioner import cond_word_layout
from hw.packer import BitPacker as RTL
from model.blocks.conditioner import BitPacker as Twin
from model.blocks.config import ArrayConfig, ConditionerConfig
from tests.simutil import pack, random_valid, run_sim



def cfg_of(cols, word_bits, rows=2):
    return ConditionerConfig(ArrayConfig(rows=rows, cols=cols), word_bits=word_bits)



def rtl_run(cfg, body, domain=None):
    run_sim(RTL(cfg), body, domain)


class Bench:
    """Random input gaps and output back-pressure; every output word is compared with the
    twin's stream, and the stream rules are checked every cycle."""

    def __init__(self, cfg, dut, rng, tag, word_fn=None):
        self.cfg, self.dut, self.rng, self.tag = cfg, dut, rng, tag
        self.twin = Twin(cfg)
        self.word_fn = word_fn or (lambda: (pack(rng.integers(0, 2, cfg.array.cols)),
                                            random_valid(rng, cfg.array.cols)))
        self.word = None
        self.expected = []
        self.got = []
        self.n_in = 0
        self.cycle = 0
        self.held = None
        self.i_ready_low = []          # cycles where a word was offered and refused
        self.out_cycles = []

    async def step(self, ctx, p_in=0.7, p_ready=0.7):
        d = self.dut
        msg = f"[{self.tag}] cycle {self.cycle}"
        if self.word is None and self.rng.random() < p_in:
            self.word = self.word_fn()
        cols = self.cfg.array.cols
        if self.word is not None:
            ctx.set(d.i.valid, 1)
            ctx.set(d.i.payload, {"bits": self.word[0], "valid": self.word[1]})
        else:
            ctx.set(d.i.valid, 0)
            ctx.set(d.i.payload, {"bits": pack(self.rng.integers(0, 2, cols)),
                                  "valid": pack(self.rng.integers(0, 2, cols))})
        o_ready = int(self.rng.random() < p_ready)
        ctx.set(d.o.ready, o_ready)
        o_valid, i_ready, got = ctx.get(d.o.valid), ctx.get(d.i.ready), ctx.get(d.o.payload)
        if self.held is not None:
            assert o_valid and got == self.held, f"{msg}: output changed under back-pressure"
        self.held = got if (o_valid and not o_ready) else None
        if o_valid and o_ready:
            assert self.expected, f"{msg}: word {got:#x} not in the twin's stream (yet)"
            want = self.expected.pop(0)
            assert got == want, f"{msg}: word {len(self.got)}: {got:#x}, twin {want:#x}"
            self.got.append(got)
            self.out_cycles.append(self.cycle)
        if self.word is not None:
            if i_ready:
                self.expected += self.twin.push(*self.word)
                self.word = None
                self.n_in += 1
            else:
                self.i_ready_low.append(self.cycle)
        await ctx.tick()
        self.cycle += 1

    async def drain(self, ctx, limit=40):
        for _ in range(limit):
            if not self.expected and self.word is None:
                break
            await self.step(ctx, p_in=0.0, p_ready=1.0)
        assert not self.expected and self.word is None, f"[{self.tag}] words stuck"


CONFIGS = [(1, 8), (5, 8), (8, 8), (1, 32), (5, 32), (8, 32), (20, 8), (3, 13), (64, 64)]


@pytest.mark.parametrize("cols,w", CONFIGS)
def test_rtl_random_against_twin(cols, w):
    cfg = cfg_of(cols, w)
    seed = 1000 + 100 * cols + w
    tag = f"cols={cols} W={w} seed={seed}"
    rng = np.random.default_rng(seed)
    n_cycles = 400 if cols >= 32 else max(1500, 120 * w // cols)   # wide ones simulate slowly

    async def body(ctx, dut):
        b = Bench(cfg, dut, rng, tag)
        for i in range(n_cycles):
            phase = (i // 150) % 3           # stretches of heavy, light and no back-pressure
            await b.step(ctx, p_in=rng.choice([0.5, 1.0]), p_ready=(0.2, 0.7, 1.0)[phase])
        await b.drain(ctx)
        assert len(b.got) >= 20, f"[{tag}] only {len(b.got)} words"
        assert b.twin.n < w
    rtl_run(cfg, body)


@pytest.mark.parametrize("cols,w", [(8, 8), (5, 8), (1, 8), (8, 32), (5, 32), (32, 32),
                                    (20, 32)])
def test_rtl_full_rate_never_refuses(cols, w):
    """o.ready high, a word every cycle with at most W valid bits: i.ready never low, and with
    exactly W valid bits per cycle, one output word per cycle."""
    cfg = cfg_of(cols, w)
    seed = 2000 + 100 * cols + w
    tag = f"cols={cols} W={w} seed={seed}"
    rng = np.random.default_rng(seed)
    full = (1 << cols) - 1

    async def body(ctx, dut):
        b = Bench(cfg, dut, rng, tag)
        for _ in range(300):
            await b.step(ctx, p_in=1.0, p_ready=1.0)
        if cols <= w:
            # all-ones masks: cols bits per cycle <= W
            b.word_fn = lambda: (pack(rng.integers(0, 2, cols)), full)
            for _ in range(300):
                await b.step(ctx, p_in=1.0, p_ready=1.0)
        assert not b.i_ready_low, f"[{tag}] input refused in cycles {b.i_ready_low[:5]}"
        assert b.n_in == b.cycle, tag
        if cols == w:
            # W bits per cycle: after the 2-cycle latency, a word leaves every cycle
            c0 = b.cycle - 300
            cyc = [c for c in b.out_cycles if c >= c0 + 2]
            assert cyc == list(range(c0 + 2, b.cycle)), f"[{tag}] output gaps"
        await b.drain(ctx)
    rtl_run(cfg, body)


def test_rtl_more_bits_than_w_stalls_without_loss():
    """cols > W with all cells valid is more than W bits a cycle: the packer must stall the
    input (exact words still checked against the twin), and output a word every cycle."""
    cfg = cfg_of(20, 8)
    seed = 3000
    tag = f"seed={seed}"
    rng = np.random.default_rng(seed)

    async def body(ctx, dut):
        b = Bench(cfg, dut, rng, tag,
                  word_fn=lambda: (pack(rng.integers(0, 2, 20)), (1 << 20) - 1))
        for _ in range(300):
            await b.step(ctx, p_in=1.0, p_ready=1.0)
        assert b.i_ready_low, f"[{tag}] never stalled at 20 bits/cycle into W=8"
        # 20 bits per accepted word, 8 out per cycle: 2 or 3 cycles per word
        assert abs(b.n_in * 20 - len(b.got) * 8) <= 8 + 20 + 8 * 2, tag
        assert len(b.got) >= 290, f"[{tag}] output not saturated: {len(b.got)} words"
        await b.drain(ctx)
    rtl_run(cfg, body)


def test_rtl_reset_mid_stream():
    cfg = cfg_of(5, 8)
    seed = 3100
    tag = f"seed={seed}"
    rng = np.random.default_rng(seed)
    cd = ClockDomain("sync")

    async def body(ctx, dut):
        b = Bench(cfg, dut, rng, tag)
        for i in range(800):
            if i in (201, 500):
                ctx.set(cd.rst, 1)
                ctx.set(dut.i.valid, 0)
                ctx.set(dut.o.ready, 0)
                await ctx.tick()
                ctx.set(cd.rst, 0)
                assert ctx.get(dut.o.valid) == 0, tag
                b.twin.reset()
                b.expected.clear()
                b.held = None
                n_before = len(b.got)
                continue
            await b.step(ctx, p_in=0.8, p_ready=0.6)
        await b.drain(ctx)
        assert len(b.got) - n_before > 50, tag
    rtl_run(cfg, body, domain=cd)


# ------------------------------------------------------------------------------------------------
# twin
def test_twin_contract_example():
    tw = Twin(cfg_of(4, 8))
    assert tw.push(0b1011, 0b1101) == []            # cols 0, 2, 3 valid: bits 1, 0, 1
    assert tw.n == 3 and tw.acc == 0b101
    assert tw.push(0b0110, 0b1111) == []            # 0, 1, 1, 0 -> stream 1,0,1,0,1,1,0
    assert tw.push(0b0001, 0b0011) == [0b10110101]  # 1, 0: eight bits, earliest in the LSB
    assert tw.n == 1 and tw.acc == 0


@pytest.mark.parametrize("seed", range(10))
def test_run_matches_push(seed):
    rng = np.random.default_rng(4000 + seed)
    tag = f"seed={4000 + seed}"
    cols, w = int(rng.integers(1, 65)), int(rng.integers(8, 65))
    cfg = cfg_of(cols, w)
    a, b = Twin(cfg), Twin(cfg)
    for chunk in range(4):
        T = int(rng.integers(0, 120))
        bits = rng.integers(0, 2, (T, cols), dtype=np.uint8)
        valid = (rng.random((T, cols)) < rng.random()).astype(np.uint8)
        valid[rng.random(T) < 0.2] = 1
        want = []
        for t in range(T):
            want += a.push(pack(bits[t]), pack(valid[t]))
        got = b.run(bits, valid)
        assert got.dtype == np.uint64, tag
        assert [int(x) for x in got] == want, f"[{tag}] cols={cols} W={w} chunk {chunk}"
        assert (a.n, a.acc) == (b.n, b.acc), f"[{tag}] leftover after chunk {chunk}"
    # the bit stream is exactly the valid bits in order: unpack and compare
    bits = rng.integers(0, 2, (500, cols), dtype=np.uint8)
    valid = (rng.random((500, cols)) < 0.6).astype(np.uint8)
    c = Twin(cfg)
    words = c.run(bits, valid)
    stream = np.array([(int(x) >> i) & 1 for x in words for i in range(w)], dtype=np.uint8)
    ref = bits[valid.astype(bool)]
    assert np.array_equal(stream, ref[:stream.size]) and ref.size - stream.size == c.n, tag


# ------------------------------------------------------------------------------------------------
# parameters and signature
def test_bad_parameters_rejected():
    for bad in (None, ArrayConfig(), "cfg", 32):
        with pytest.raises(ValueError, match="cfg"):
            RTL(bad)
        with pytest.raises(ValueError, match="cfg"):
            Twin(bad)
    with pytest.raises(ValueError, match="word_bits"):
        ConditionerConfig(ArrayConfig(), word_bits=7)
    with pytest.raises(ValueError, match="word_bits"):
        ConditionerConfig(ArrayConfig(), word_bits=65)
    tw = Twin(cfg_of(4, 8))
    with pytest.raises(ValueError, match="bits"):
        tw.push(16, 0)
    with pytest.raises(ValueError, match="valid"):
        tw.push(0, -1)
    with pytest.raises(ValueError, match="bits"):
        tw.run(np.zeros((2, 3), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="valid"):
        tw.run(np.zeros((2, 4), int), np.full((2, 4), 3))


def test_signature():
    cfg = cfg_of(5, 32)
    dut = RTL(cfg)
    mem = dict(dut.signature.members.items())
    assert set(mem) == {"i", "o"}
    assert mem["i"].flow == In and mem["o"].flow == Out
    assert mem["i"].signature.members["payload"].shape == cond_word_layout(cfg.array)
    assert Shape.cast(mem["o"].signature.members["payload"].shape).width == 32
