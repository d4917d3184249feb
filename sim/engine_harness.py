"""Simulation-only RTL around the layer engine, so the clock can run free (DESIGN.md).

``EngineHarness`` passes the engine's ``prog``, ``cfg`` and ``n_layers`` ports through (the bench
writes the program at transaction level), and adds:

* an input generator: ``gen_beats`` input codes, each the low ``input_bits`` of an xorshift32
  state that advances once per *accepted* beat (so the code sequence is independent of timing;
  :func:`gen_codes` reproduces it), offered with seeded random valid gaps
  (``rnd[0:8] >= gen_thresh``, a second xorshift that advances every cycle); ``gen_load`` loads
  both seeds and the beat count;
* an output sink with seeded random back-pressure (``rnd[0:8] >= bp_thresh``; 0: always ready)
  that gathers accepted output beats (``code`` and ``last``, ``input_bits + 1`` bits, code at
  the LSBs) into batches of ``batch``: a full batch appears on ``word`` (entry i at bits
  ``[i*w, (i+1)*w)``, oldest first) and ``word_toggle`` flips; ``fill`` entries of a partial
  batch sit in the top slots of ``buf``;
* counters: ``cycles`` (free running), ``busy_cycles`` (cycles with the engine busy),
  ``outs`` (beats taken), ``runs_done`` (beats with ``last``); time stamps (``cycles`` values):
  ``first_in`` of the first input beat taken after ``gen_load``, ``last_out`` of the latest
  output beat taken.

A zero seed is replaced by 1 (xorshift has no zero state).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.layer_engine import LayerEngine, cfg_layout
from hw.crossbar import prog_layout
from model.blocks.crossbar_config import EngineConfig

XORSHIFT_INIT = 0x2545F491


def xorshift32(x: int) -> int:
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


def gen_codes(cfg: EngineConfig, seed: int, n: int) -> list[int]:
    """The first ``n`` input codes of the harness's generator loaded with ``seed``."""
    t = cfg.tile
    ib = t.input_bits
    x = seed or 1
    out = []
    for _ in range(n):
        v = x & ((1 << ib) - 1)
        if t.input_signed and v >> (ib - 1):
            v -= 1 << ib
        out.append(v)
        x = xorshift32(x)
    return out


def _xorshift(v):
    x1 = v ^ (v << 13)[:32]
    x2 = x1 ^ (x1 >> 17)
    return x2 ^ (x2 << 5)[:32]


class EngineHarness(wiring.Component):
    """Wraps a :class:`hw.layer_engine.LayerEngine` built from ``cfg``."""

    def __init__(self, cfg: EngineConfig, batch: int = 8):
        if not isinstance(cfg, EngineConfig):
            self._MustUse__silence = True
            raise ValueError(f"EngineHarness.cfg = {cfg!r}: must be an EngineConfig")
        if not 1 <= batch <= 64:
            self._MustUse__silence = True
            raise ValueError(f"EngineHarness.batch = {batch}: out of range, allowed [1, 64]")
        self.config = cfg
        self.batch = batch
        self.dut = LayerEngine(cfg)
        self.width = w = cfg.tile.input_bits + 1
        pl, cl = prog_layout(cfg.tile), cfg_layout(cfg)
        super().__init__({
            "prog_valid": In(1), "prog_payload": In(pl.size), "prog_ready": Out(1),
            "cfg_valid": In(1), "cfg_payload": In(cl.size), "cfg_ready": Out(1),
            "n_layers": In(range(cfg.max_layers + 1)),
            "busy": Out(1),
            "gen_seed": In(32), "gen_thresh": In(8), "gen_beats": In(32), "gen_load": In(1),
            "gen_left": Out(32),
            "bp_seed": In(32), "bp_thresh": In(8),
            "word": Out(w * batch), "word_toggle": Out(1),
            "buf": Out(w * batch), "fill": Out(range(batch + 1)),
            "cycles": Out(32), "busy_cycles": Out(32), "outs": Out(32), "runs_done": Out(32),
            "first_in": Out(32), "last_out": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += [
            dut.prog.valid.eq(self.prog_valid), dut.prog.payload.eq(self.prog_payload),
            self.prog_ready.eq(dut.prog.ready),
            dut.cfg.valid.eq(self.cfg_valid), dut.cfg.payload.eq(self.cfg_payload),
            self.cfg_ready.eq(dut.cfg.ready),
            dut.n_layers.eq(self.n_layers),
            self.busy.eq(dut.busy),
        ]
        m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(dut.busy):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)

        # -- input generator
        code_r = Signal(32, init=XORSHIFT_INIT)
        gap_r = Signal(32, init=XORSHIFT_INIT)
        ib = self.config.tile.input_bits
        valid = (self.gen_left != 0) & (gap_r[:8] >= self.gen_thresh)
        m.d.comb += [dut.inp.valid.eq(valid), dut.inp.payload.code.eq(code_r[:ib])]
        armed = Signal()
        with m.If(self.gen_load):
            m.d.sync += armed.eq(1)
        with m.Elif(armed & dut.inp.valid & dut.inp.ready):
            m.d.sync += [armed.eq(0), self.first_in.eq(self.cycles)]
        with m.If(self.gen_load):
            m.d.sync += [code_r.eq(Mux(self.gen_seed == 0, 1, self.gen_seed)),
                         gap_r.eq(Mux(self.gen_seed == 0, 1, self.gen_seed) ^ 0x9E3779B9),
                         self.gen_left.eq(self.gen_beats)]
        with m.Else():
            m.d.sync += gap_r.eq(_xorshift(gap_r))
            with m.If(valid & dut.inp.ready):
                m.d.sync += [code_r.eq(_xorshift(code_r)), self.gen_left.eq(self.gen_left - 1)]

        # -- output sink
        bp_r = Signal(32, init=XORSHIFT_INIT)
        with m.If(self.gen_load):
            m.d.sync += bp_r.eq(Mux(self.bp_seed == 0, 1, self.bp_seed))
        with m.Else():
            m.d.sync += bp_r.eq(_xorshift(bp_r))
        ready = Signal()
        m.d.comb += [ready.eq(bp_r[:8] >= self.bp_thresh), dut.out.ready.eq(ready)]
        w, n = self.width, self.batch
        beat = Signal(w)
        m.d.comb += beat.eq(dut.out.payload.code.as_unsigned()
                            | (dut.out.payload.last << ib))
        shifted = (beat << ((n - 1) * w)) | (self.buf >> w)
        with m.If(dut.out.valid & ready):
            m.d.sync += [self.outs.eq(self.outs + 1), self.last_out.eq(self.cycles)]
            with m.If(dut.out.payload.last):
                m.d.sync += self.runs_done.eq(self.runs_done + 1)
            with m.If(self.fill == n - 1):
                m.d.sync += [self.word.eq(shifted), self.word_toggle.eq(~self.word_toggle),
                             self.fill.eq(0), self.buf.eq(0)]
            with m.Else():
                m.d.sync += [self.buf.eq(shifted), self.fill.eq(self.fill + 1)]
        return m


__all__ = ["EngineHarness", "gen_codes", "xorshift32"]
