"""Crossbar MAC tile: ``slots`` blocks of R x C signed weight codes, one MVM per input vector.

Contract: ``docs/crossbar.md`` §1–3. Parameters and integer rules: ``model/blocks/crossbar_config``
(:class:`TileConfig`); bit-exact twin: ``model.blocks.crossbar.CrossbarTile``.

The payload layouts of the three streams are available without building a tile
(:func:`prog_layout`, :func:`inp_layout`, :func:`out_layout`), so a component that drives the tile
(the layer engine) can declare matching signals.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.blocks.crossbar_config import TileConfig, clog2


def _check(cfg) -> TileConfig:
    if not isinstance(cfg, TileConfig):
        raise ValueError(f"CrossbarTile.cfg = {cfg!r}: must be a TileConfig "
                         f"(model.blocks.crossbar_config.TileConfig)")
    return cfg


def input_shape(cfg: TileConfig):
    """Shape of one DAC input code: ``signed(ib)`` or ``unsigned(ib)``."""
    return signed(cfg.input_bits) if cfg.input_signed else unsigned(cfg.input_bits)


def prog_layout(cfg: TileConfig) -> data.StructLayout:
    """Programming word: ``addr`` (range ``weight_words``), ``data`` (P·wb bits, lane p at
    ``[p·wb, (p+1)·wb)``)."""
    _check(cfg)
    return data.StructLayout({"addr": range(cfg.weight_words),
                              "data": unsigned(cfg.macs_per_cycle * cfg.weight_bits)})


def inp_layout(cfg: TileConfig) -> data.StructLayout:
    """Input beat: ``code``, ``slot`` (range ``slots``), ``adc_shift`` (range ``acc_bits + 1``)."""
    _check(cfg)
    return data.StructLayout({"code": input_shape(cfg), "slot": range(cfg.slots),
                              "adc_shift": range(cfg.max_adc_shift + 1)})


def out_layout(cfg: TileConfig) -> data.StructLayout:
    """Output beat: ``code`` (signed adc_bits), ``last`` (1 on column C−1)."""
    _check(cfg)
    return data.StructLayout({"code": signed(cfg.adc_bits), "last": 1})


def plane_sum_bits(cfg: TileConfig) -> int:
    """Signed width of one bit-plane's column sum (lossless): wb + clog2(R) + 1."""
    return cfg.weight_bits + clog2(cfg.rows) + 1


class CrossbarTile(wiring.Component):
    """One crossbar MAC tile (docs/crossbar.md §1–3), parallel or bit-serial (compile time).

    Parameters
    ----------
    cfg : TileConfig
        R = ``rows``, C = ``cols``, P = ``macs_per_cycle``, G = C/P, wb, ib, ``slots``, ...

    Attributes
    ----------
    prog : In(stream.Signature(prog_layout(cfg)))
        Weight words, written into a ``weight_words`` x (P·wb) memory. ``prog.ready`` is high
        exactly while ``busy`` is low. When a programming word and the first beat of a vector are
        offered in the same idle cycle, the programming word is taken first (``inp.ready`` is low
        in that cycle), so the vector sees it.
    inp : In(stream.Signature(inp_layout(cfg)))
        R beats per vector, row 0 first; ``slot`` and ``adc_shift`` are sampled from the first
        beat. ``inp.ready`` is high while the tile receives a vector (between vectors and after the
        first beat, until R beats are in), except in an idle cycle where ``prog.valid`` is high.
        A ``slot`` >= ``slots`` is the caller's error (undefined weights); an ``adc_shift`` above
        ``acc_bits`` acts as ``acc_bits`` (every code rounds to 0, as ``round_shift`` gives).
    out : Out(stream.Signature(out_layout(cfg)))
        C beats per vector, column 0 first, ``last`` on column C−1. ``out.valid`` and
        ``out.payload`` are registered state and the ADC step (combinational from registers):
        they never depend on ``out.ready``; a beat stays offered, unchanged, until taken.
    busy : Out(1)
        A vector is being received (first beat taken), computed, or sent.

    Timing
    ------
    The tile does one thing at a time: receive R beats (1 cycle each), then for each of the G
    column groups: R·steps compute cycles (steps = ib bit-serial, 1 parallel) followed by P
    output cycles (one column per cycle, one shared ADC step). With ``inp`` offered every cycle
    and ``out`` always ready:

    * a vector whose first beat is taken in cycle t has its last output beat taken in cycle
      ``t + mvm_cycles - 1`` and the next vector's first beat can be taken in cycle
      ``t + mvm_cycles``, where ``mvm_cycles = TileConfig.mvm_cycles() = R + G·(R·steps + P)``;
    * the memory's one-cycle read latency is hidden: the row a compute cycle needs is addressed
      in the cycle before (the last receive cycle, the previous compute cycle, or an output
      cycle of the previous group).

    Back-pressure: a cycle with ``out.valid`` high and ``out.ready`` low stalls the tile (nothing
    advances); gaps on ``inp`` stall the receive phase. Nothing is dropped or reordered.
    """

    def __init__(self, cfg: TileConfig):
        if not isinstance(cfg, TileConfig):
            self._MustUse__silence = True
            _check(cfg)
        self.cfg = cfg
        #: Cycles of one MVM with ``inp`` always valid and ``out`` always ready (see Timing).
        self.mvm_cycles = cfg.mvm_cycles()
        super().__init__({
            "prog": In(stream.Signature(prog_layout(cfg))),
            "inp": In(stream.Signature(inp_layout(cfg))),
            "out": Out(stream.Signature(out_layout(cfg))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, P, G = cfg.rows, cfg.macs_per_cycle, cfg.groups
        wb, ib = cfg.weight_bits, cfg.input_bits
        acc_bits = cfg.acc_bits

        # Weights: one word = P lanes of one row of one column group, addressed
        # (slot*G + g)*R + r, so a group's R rows are consecutive words. Synchronous read port
        # (block RAM); the write port is the programming stream.
        m.submodules.mem = mem = Memory(shape=unsigned(P * wb), depth=cfg.weight_words, init=[])
        wr = mem.write_port()
        rd = mem.read_port()

        LOAD, COMPUTE, OUT = 0, 1, 2
        phase = Signal(range(3), init=LOAD)
        r_in = Signal(range(R))              # beats of the current vector received so far
        cr = Signal(range(R))                # row of the current compute cycle
        cg = Signal(range(G))                # column group being computed / sent
        ck = Signal(range(ib), init=ib - 1)  # bit-plane (bit-serial), most significant first
        po = Signal(range(P))                # output column within the group
        # Memory address of row 0 of the current group: (slot*G + g)*R. One spare row of range:
        # the prefetch of "the next group" after the last one is never used.
        gbase = Signal(range(cfg.weight_words + R))
        shift = Signal(range(acc_bits + 1))

        busy = Signal()
        m.d.comb += [busy.eq((phase != LOAD) | (r_in != 0)), self.busy.eq(busy)]

        # -- programming port: only while idle; it wins over a vector's first beat so that
        # acceptance order is always well defined (a vector never overlaps a write).
        m.d.comb += [
            self.prog.ready.eq(~busy),
            wr.addr.eq(self.prog.payload.addr),
            wr.data.eq(self.prog.payload.data),
            wr.en.eq(self.prog.valid & ~busy),
        ]

        # -- input buffer: a shift register of R codes. Receiving shifts codes in at the tail, so
        # after R beats x[0] is at the head; every compute cycle rotates it by one, so the head is
        # always the current row's code and after R cycles (one pass over the rows) the buffer is
        # back in place for the next plane or group. No R:1 multiplexer.
        xbuf = [Signal(input_shape(cfg), name=f"x{r}") for r in range(R)]
        head = xbuf[0]

        take_in = Signal()
        m.d.comb += [
            self.inp.ready.eq((phase == LOAD) & (busy | ~self.prog.valid)),
            take_in.eq(self.inp.valid & self.inp.ready),
        ]

        # -- read address: the row the *next* cycle computes on (read latency 1).
        first_base = self.inp.payload.slot * (G * R)
        with m.Switch(phase):
            with m.Case(LOAD):
                # gbase was set by the first beat. R == 1: the first beat is also the last one, so
                # the slot comes straight from it (a path from inp.payload to the memory address
                # that only this case has).
                m.d.comb += rd.addr.eq(first_base if R == 1 else gbase)
            with m.Case(COMPUTE):
                m.d.comb += rd.addr.eq(Mux(cr == R - 1, gbase, gbase + cr + 1))
            with m.Default():
                m.d.comb += rd.addr.eq(gbase + R)       # row 0 of the next group

        # -- lanes. The output phase rotates lane p+1 into lane p, so the (single, shared) ADC
        # step always reads lane 0: no P:1 multiplexer on acc_bits-wide values.
        weights = [rd.data[p * wb:(p + 1) * wb].as_signed() for p in range(P)]
        lanes = [Signal(signed(acc_bits), name=f"acc{p}") for p in range(P)]
        computing = phase == COMPUTE
        take_out = self.out.valid & self.out.ready
        first_row = cr == 0
        last_row = cr == R - 1

        if not cfg.bit_serial:
            # Parallel mode: P multipliers (DSP blocks), one row per cycle.
            for p in range(P):
                prod = weights[p] * head
                with m.If(computing):
                    m.d.sync += lanes[p].eq(Mux(first_row, prod, lanes[p] + prod))
        else:
            # Bit-serial mode: plane ck of every code gates the weights (AND), the plane's column
            # sum is built exactly over R cycles (plane_sum_bits wide), then shift-added into the
            # total MSB plane first (Horner: total = 2*total + S_k), which is the same sum as
            # adding S_k shifted by k. The top plane of a signed code weighs -2**(ib-1): the
            # total starts at -S_top. No multipliers, and no variable shifter.
            bit = head.as_unsigned().bit_select(ck, 1)
            top = ck == ib - 1
            for p in range(P):
                psum = Signal(signed(plane_sum_bits(cfg)), name=f"psum{p}")
                term = Mux(bit, weights[p], 0)
                plane = Mux(first_row, term, psum + term)
                with m.If(computing):
                    m.d.sync += psum.eq(plane)
                    with m.If(last_row):
                        with m.If(top):
                            m.d.sync += lanes[p].eq(-plane if cfg.input_signed else plane)
                        with m.Else():
                            m.d.sync += lanes[p].eq((lanes[p] << 1) + plane)

        with m.If(take_out):
            for p in range(P - 1):
                m.d.sync += lanes[p].eq(lanes[p + 1])

        # -- ADC step (docs §1) on lane 0: round half up by 2**shift, then clip at both rails.
        lo, hi = cfg.adc_range
        half = (Const(1, acc_bits + 1) << shift)[1:acc_bits + 1]     # 2**(shift-1), 0 if shift=0
        rounded = (lanes[0] + half) >> shift                          # arithmetic shift
        code = Mux(rounded > hi, hi, Mux(rounded < lo, lo, rounded))
        m.d.comb += [
            self.out.valid.eq(phase == OUT),
            self.out.payload.code.eq(code),
            self.out.payload.last.eq((cg == G - 1) & (po == P - 1)),
        ]

        # -- sequencing
        with m.Switch(phase):
            with m.Case(LOAD):
                with m.If(take_in):
                    m.d.sync += xbuf[R - 1].eq(self.inp.payload.code)
                    for r in range(R - 1):
                        m.d.sync += xbuf[r].eq(xbuf[r + 1])
                    with m.If(r_in == 0):
                        sh = self.inp.payload.adc_shift
                        m.d.sync += [shift.eq(Mux(sh > acc_bits, acc_bits, sh)),
                                     gbase.eq(first_base)]
                    with m.If(r_in == R - 1):
                        m.d.sync += [r_in.eq(0), phase.eq(COMPUTE), cr.eq(0), cg.eq(0),
                                     ck.eq(ib - 1)]
                    with m.Else():
                        m.d.sync += r_in.eq(r_in + 1)
            with m.Case(COMPUTE):
                m.d.sync += xbuf[R - 1].eq(xbuf[0])
                for r in range(R - 1):
                    m.d.sync += xbuf[r].eq(xbuf[r + 1])
                with m.If(last_row):
                    m.d.sync += cr.eq(0)
                    if cfg.bit_serial:
                        with m.If(ck != 0):
                            m.d.sync += ck.eq(ck - 1)
                        with m.Else():
                            m.d.sync += [ck.eq(ib - 1), phase.eq(OUT), po.eq(0)]
                    else:
                        m.d.sync += [phase.eq(OUT), po.eq(0)]
                with m.Else():
                    m.d.sync += cr.eq(cr + 1)
            with m.Case(OUT):
                with m.If(take_out):
                    with m.If(po == P - 1):
                        m.d.sync += po.eq(0)
                        with m.If(cg == G - 1):
                            m.d.sync += [phase.eq(LOAD), cg.eq(0)]
                        with m.Else():
                            m.d.sync += [phase.eq(COMPUTE), cg.eq(cg + 1), gbase.eq(gbase + R)]
                    with m.Else():
                        m.d.sync += po.eq(po + 1)
        return m
