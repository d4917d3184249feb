"""Simulation-only RTL around ``hw.crossbar.CrossbarTile`` so that the clock can run free.

``CrossbarHarness`` generates the input vectors itself, from a seeded xorshift32 that advances
once per *accepted* input beat (so the vectors do not depend on timing), with random valid gaps
and random output back-pressure from a second, free-running xorshift32, and gathers output beats
into batches (``word``/``word_toggle``, as ``sim.harness.StreamHarness``). Python touches the
simulation only to program weights (through ``prog``, passed straight to the tile), to start a
run of ``count`` vectors, and once per batch of outputs. :func:`stimulus` reproduces the vectors
exactly.

Stimulus of one input beat, from the stimulus state ``s`` (32 bits) before its step::

    u     = s[0:ib]                          raw code bits (two's complement when signed)
    mode  = s[16:18] on the first beat of a vector, held for its other beats
            0, 1: code = u;  2: code = (s[18] ? in_max : in_min);  3: code = (s[19:21] == 0) ? u : 0
    slot  = v - slots if v >= slots else v,  v = s[21:21+sb], sb = clog2(slots)   (first beat)
    shift = min(shift_base + (s[26:32] & shift_mask), acc_bits)                    (first beat)

then ``s`` steps (``x ^= x << 13; x ^= x >> 17; x ^= x << 5``, 32 bits). ``slot`` and ``shift`` are
driven on every beat (the tile samples them on the first one only).

Gaps and back-pressure: each cycle ``r`` (the free-running xorshift32) gives
``gate = r[0:8] >= gap_thresh`` and ``out.ready = r[8:16] >= bp_thresh``; ``inp.valid`` is
``active & (gate | pending)``, ``pending`` holding an offered beat until it is taken (a stream
source never withdraws). 0 means no gaps / always ready.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.crossbar import CrossbarTile, prog_layout
from model.blocks.crossbar_config import TileConfig, clog2

MASK32 = 0xFFFF_FFFF


class CrossbarHarness(wiring.Component):
    """Stimulus generator, gap and back-pressure generator and output batcher around a tile.

    Parameters
    ----------
    cfg : TileConfig
        The tile (``slots`` <= 32).
    batch : int
        Output beats per batch, 1 … 64.

    Ports: ``prog`` (to the tile), ``start`` (strobe, only while ``done``: load ``seed``,
    ``count``, ``bp_seed``, empty the partial batch and begin), ``active`` (vectors still to be
    offered), ``done`` (not active and the tile idle: every output beat has been taken), ``cycles`` (free-running), ``run_cycles`` (cycles since ``start``
    while active or busy), ``words`` (beats taken since reset), ``word``/``word_toggle``/``buf``/
    ``fill`` (batches, entry i at bits ``[i*w, (i+1)*w)``, ``w = adc_bits + 1``: code, then last).
    """

    def __init__(self, cfg: TileConfig, batch: int = 32):
        if not isinstance(cfg, TileConfig):
            self._MustUse__silence = True
            raise ValueError(f"CrossbarHarness.cfg = {cfg!r}: must be a TileConfig")
        if cfg.slots > 32:
            self._MustUse__silence = True
            raise ValueError(f"CrossbarHarness.cfg.slots = {cfg.slots}: out of range, "
                             f"allowed [1, 32]")
        if not isinstance(batch, int) or not 1 <= batch <= 64:
            self._MustUse__silence = True
            raise ValueError(f"CrossbarHarness.batch = {batch!r}: out of range, allowed [1, 64]")
        self.cfg = cfg
        self.batch = batch
        self.tile = CrossbarTile(cfg)
        self.width = width = len(Value.cast(self.tile.out.payload))
        super().__init__({
            "prog": In(stream.Signature(prog_layout(cfg))),
            "start": In(1),
            "seed": In(32),
            "count": In(32),
            "gap_thresh": In(8),
            "bp_thresh": In(8),
            "bp_seed": In(32),
            "shift_base": In(range(cfg.max_adc_shift + 1)),
            "shift_mask": In(6),
            "active": Out(1),
            "done": Out(1),
            "busy": Out(1),
            "cycles": Out(32),
            "run_cycles": Out(32),
            "words": Out(32),
            "word": Out(width * batch),
            "word_toggle": Out(1),
            "buf": Out(width * batch),
            "fill": Out(range(batch + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.tile = tile = self.tile
        wiring.connect(m, wiring.flipped(self.prog), tile.prog)
        m.d.comb += [self.busy.eq(tile.busy), self.done.eq(~self.active & ~tile.busy)]
        m.d.sync += self.cycles.eq(self.cycles + 1)

        # Free-running generator of gaps and back-pressure.
        rnd = Signal(32, init=0x2545F491)
        r1 = rnd ^ (rnd << 13)[:32]
        r2 = r1 ^ (r1 >> 17)
        r3 = r2 ^ (r2 << 5)[:32]
        m.d.sync += rnd.eq(r3)
        gate = rnd[0:8] >= self.gap_thresh
        m.d.comb += tile.out.ready.eq(rnd[8:16] >= self.bp_thresh)

        # Stimulus generator: steps once per accepted beat.
        st = Signal(32, init=1)
        s1 = st ^ (st << 13)[:32]
        s2 = s1 ^ (s1 >> 17)
        s3 = s2 ^ (s2 << 5)[:32]
        beat = Signal(range(cfg.rows))
        left = Signal(32)
        mode_reg = Signal(2)
        pending = Signal()
        mode = Mux(beat == 0, st[16:18], mode_reg)
        lo, hi = cfg.input_range
        ib = cfg.input_bits
        u = st[0:ib]
        code = Signal(ib)
        with m.Switch(mode):
            with m.Case(2):
                m.d.comb += code.eq(Mux(st[18], hi, lo))
            with m.Case(3):
                m.d.comb += code.eq(Mux(st[19:21] == 0, u, 0))
            with m.Default():
                m.d.comb += code.eq(u)
        sb = clog2(cfg.slots)
        v = st[21:21 + sb]
        slot = Mux(v >= cfg.slots, v - cfg.slots, v)
        sh = self.shift_base + (st[26:32] & self.shift_mask)
        inp = tile.inp
        m.d.comb += [
            inp.valid.eq(self.active & (gate | pending)),
            inp.payload.code.eq(code),
            inp.payload.slot.eq(slot),
            inp.payload.adc_shift.eq(Mux(sh > cfg.max_adc_shift, cfg.max_adc_shift, sh)),
        ]
        take = inp.valid & inp.ready
        m.d.sync += pending.eq(inp.valid & ~inp.ready)
        with m.If(self.active | tile.busy):
            m.d.sync += self.run_cycles.eq(self.run_cycles + 1)
        with m.If(take):
            m.d.sync += st.eq(s3)
            with m.If(beat == 0):
                m.d.sync += mode_reg.eq(st[16:18])
            with m.If(beat == cfg.rows - 1):
                m.d.sync += [beat.eq(0), left.eq(left - 1)]
                with m.If(left == 1):
                    m.d.sync += self.active.eq(0)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
        with m.If(self.start):
            m.d.sync += [
                st.eq(Mux(self.seed == 0, 1, self.seed)),
                rnd.eq(Mux(self.bp_seed == 0, 1, self.bp_seed)),
                left.eq(self.count),
                self.active.eq(self.count != 0),
                beat.eq(0),
                pending.eq(0),
                self.run_cycles.eq(0),
            ]

        # Output batches (as sim.harness.StreamHarness).
        out = tile.out
        w, n = self.width, self.batch
        payload = Value.cast(out.payload)
        shifted = (payload << ((n - 1) * w)) | (self.buf >> w)
        with m.If(out.valid & out.ready):
            m.d.sync += self.words.eq(self.words + 1)
            with m.If(self.fill == n - 1):
                m.d.sync += [self.word.eq(shifted), self.word_toggle.eq(~self.word_toggle),
                             self.fill.eq(0), self.buf.eq(0)]
            with m.Else():
                m.d.sync += [self.buf.eq(shifted), self.fill.eq(self.fill + 1)]
        with m.If(self.start):     # a run starts with an empty batch (the tile is idle then)
            m.d.sync += [self.buf.eq(0), self.fill.eq(0)]
        return m


# ------------------------------------------------------------------------------------------------
# Python side: the same vectors, and the decoding of output batches.
def stimulus(cfg: TileConfig, seed: int, count: int, shift_base: int = 0,
             shift_mask: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``count`` vectors a run started with ``seed`` offers: ``(x (count, R), slot (count,),
    adc_shift (count,))``, int64, exactly as :class:`CrossbarHarness` generates them."""
    ib, R = cfg.input_bits, cfg.rows
    lo, hi = cfg.input_range
    sb = clog2(cfg.slots)
    umask = (1 << ib) - 1
    s = (seed & MASK32) or 1
    x = np.empty((count, R), dtype=np.int64)
    slots = np.empty(count, dtype=np.int64)
    shifts = np.empty(count, dtype=np.int64)
    signed = cfg.input_signed
    top = 1 << (ib - 1)
    for k in range(count):
        mode = (s >> 16) & 3
        v = (s >> 21) & ((1 << sb) - 1)
        slots[k] = v - cfg.slots if v >= cfg.slots else v
        shifts[k] = min(shift_base + ((s >> 26) & shift_mask), cfg.max_adc_shift)
        row = x[k]
        for r in range(R):
            if mode == 2:
                c = hi if (s >> 18) & 1 else lo
            else:
                c = s & umask
                if mode == 3 and (s >> 19) & 3:
                    c = 0
                if signed and c & top:
                    c -= 1 << ib
            row[r] = c
            s ^= (s << 13) & MASK32
            s ^= s >> 17
            s ^= (s << 5) & MASK32
    return x, slots, shifts


def decode_batch(word: int, width: int, n: int, adc_bits: int) -> list[tuple[int, int]]:
    """A batch word -> ``n`` (code, last) pairs, oldest first."""
    mask = (1 << width) - 1
    top = 1 << (adc_bits - 1)
    out = []
    for i in range(n):
        e = (word >> (i * width)) & mask
        c = e & ((1 << adc_bits) - 1)
        out.append((c - (1 << adc_bits) if c & top else c, e >> adc_bits))
    return out
