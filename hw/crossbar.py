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
        beat. ``inp.ready`` is high while no vector is being computed or sent (between vectors
        and after the first beat, until R beats are in), except in an idle cycle where
        ``prog.valid`` is high. A ``slot`` >= ``slots`` is the caller's error (undefined
        weights); an ``adc_shift`` above ``acc_bits`` acts as ``acc_bits`` (every code rounds to
        0, as ``round_shift`` gives).
    out : Out(stream.Signature(out_layout(cfg)))
        C beats per vector, column 0 first, ``last`` on column C−1. ``out.valid`` and
        ``out.payload`` are registers: they never depend on ``out.ready``; a beat stays offered,
        unchanged, until taken.
    busy : Out(1)
        A vector is being received (first beat taken), computed, or sent.

    Timing
    ------
    The tile takes one vector at a time: it receives R beats (1 cycle each), then issues the
    G·R·steps items (one row of one column group, of one bit-plane in the bit-serial mode;
    steps = ib bit-serial, 1 parallel) back to back into a 4-stage pipeline (issue the memory
    address; memory data register; P products; accumulate). The last item of a group moves the
    group's P sums into an output buffer, which sends them one column per cycle (ADC step into
    the output register) while the next group is computed. With ``inp`` offered every cycle and
    ``out`` always ready:

    * a vector whose first beat is taken in cycle t has its last output beat taken in cycle
      ``t + mvm_cycles - 1`` and the next vector's first beat can be taken in cycle
      ``t + mvm_cycles``, with ``mvm_cycles = TileConfig.mvm_cycles()
      = R + Q + (G−1)·max(Q, P) + P + 4``, Q = R·steps (``R + G·Q + P + 4`` when Q >= P):
      R load cycles, the items, then the fill (issue, memory, product, accumulate: the first
      group's sums are in the output buffer 3 cycles after its last item is issued) and the
      last group's P columns behind the output register;
    * when Q < P a group's sums wait in the accumulate stage (the whole pipeline stalls) until
      the output buffer has sent the previous group: a group every max(Q, P) cycles.

    Back-pressure: ``out.ready`` low stalls the output register, then the output buffer, then
    (when a group's sums are ready and the buffer is still full) the compute pipeline. Gaps on
    ``inp`` stall the receive phase. Nothing is dropped or reordered.
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
        ib = cfg.input_bits
        acc_bits = cfg.acc_bits
        serial = cfg.bit_serial
        # Lanes and the output buffer hold the column sum plus the ADC's rounding offset
        # 2**(shift-1) (added by the first row's accumulation instead of by a separate adder in
        # the ADC step): one bit wider than the exact sum.
        aw = acc_bits + 1

        # Weights: one word = P lanes of one row of one column group, addressed
        # (slot*G + g)*R + r, so a group's R rows are consecutive words and a whole slot is one
        # run of G*R words. Synchronous read port (block RAM, no output logic: its data goes
        # straight into a register, since an ECP5 DP16KD's clock-to-output alone is ~5.8 ns);
        # the write port is the programming stream.
        m.submodules.mem = mem = Memory(shape=unsigned(P * cfg.weight_bits),
                                        depth=cfg.weight_words, init=[])
        wr = mem.write_port()
        rd = mem.read_port()

        # ---------------------------------------------------------------------------------------
        # Control. `mvm`: a vector is being computed or sent (from its last input beat to its
        # last output beat); the tile takes one vector at a time.
        r_in = Signal(range(R))              # beats of the current vector received so far
        mvm = Signal()
        busy = Signal()
        m.d.comb += [busy.eq((r_in != 0) | mvm), self.busy.eq(busy)]

        # -- programming port: only while idle; it wins over a vector's first beat so that
        # acceptance order is always well defined (a vector never overlaps a write).
        m.d.comb += [
            self.prog.ready.eq(~busy),
            wr.addr.eq(self.prog.payload.addr),
            wr.data.eq(self.prog.payload.data),
            wr.en.eq(self.prog.valid & ~busy),
        ]

        # -- input buffer: a shift register of R codes. Receiving shifts codes in at the tail, so
        # after R beats x[0] is at the head; every issue cycle rotates it by one, so the head is
        # always the issued row's code and after R cycles (one pass over the rows) the buffer is
        # back in place for the next plane or group. No R:1 multiplexer.
        xbuf = [Signal(input_shape(cfg), name=f"x{r}") for r in range(R)]
        head = xbuf[0]
        take_in = Signal()
        m.d.comb += [
            self.inp.ready.eq(~mvm & (busy | ~self.prog.valid)),
            take_in.eq(self.inp.valid & self.inp.ready),
        ]

        # Per-vector settings, from the first beat: ADC shift (clamped to acc_bits), its
        # rounding offset 2**(shift-1) (0 for shift 0), and the clipping mask: the bits at and
        # above position adc_bits-1+shift (see the ADC step).
        shift = Signal(range(acc_bits + 1))
        half = Signal(aw)
        clip_mask = Signal(aw)
        sh_in = self.inp.payload.adc_shift
        sh_c = Mux(sh_in > acc_bits, acc_bits, sh_in)

        # ---------------------------------------------------------------------------------------
        # Compute pipeline (docs/crossbar.md §3), one item = one row of one column group (of one
        # bit-plane), G*R*steps items per vector, issued back to back:
        #   issue  address `ia` to the memory; head code (or its bit) -> x1; flags -> stage 1
        #   S1     memory data (the block RAM's own register)        -> w2, x2
        #   S2     P products w*x (DSP blocks) / gated weights        -> prod3
        #   S3     accumulate into the P lanes; a group's last item also writes the sums into
        #          the output buffer `obuf`
        # All stages move together on `run`; the only stall is S3 holding a group's last item
        # while `obuf` still holds columns of the previous group (P > R*steps, or back-pressure).
        run = Signal()
        issuing = Signal()
        ia = Signal(range(cfg.weight_words + 1))     # address of the item being issued
        gbase = Signal(range(cfg.weight_words + 1))  # row 0 of the issuing group (bit-serial)
        cr = Signal(range(R))                        # row of the issued item
        cg = Signal(range(G))                        # its column group
        ck = Signal(range(ib), init=ib - 1)          # its bit-plane (bit-serial), MSB first
        m.d.comb += [rd.addr.eq(ia), rd.en.eq(run)]

        # Stage flags: valid, first row, last row, last row of the group's last plane (the
        # group's sums are complete), last group of the vector, top / last bit-plane.
        def flags(k):
            return {n: Signal(name=f"{n}{k}") for n in
                    ("v", "first", "lastrow", "fin", "lastg", "top", "lp")}
        f1, f2, f3 = flags(1), flags(2), flags(3)
        xs = unsigned(1) if serial else input_shape(cfg)
        x1, x2 = Signal(xs, name="xq1"), Signal(xs, name="xq2")
        w2 = Signal(rd.data.shape(), name="w2")

        with m.If(run):
            m.d.sync += [f2[n].eq(f1[n]) for n in f1] + [f3[n].eq(f2[n]) for n in f2]
            m.d.sync += [w2.eq(rd.data), x2.eq(x1), f1["v"].eq(issuing)]
            with m.If(issuing):
                m.d.sync += [
                    f1["first"].eq(cr == 0), f1["lastrow"].eq(cr == R - 1),
                    f1["fin"].eq((cr == R - 1) & (ck == 0) if serial else cr == R - 1),
                    f1["lastg"].eq(cg == G - 1),
                    f1["top"].eq(ck == ib - 1), f1["lp"].eq(ck == 0),
                    x1.eq(head.as_unsigned().bit_select(ck, 1) if serial else head),
                ]
                # rotate the input buffer
                m.d.sync += xbuf[R - 1].eq(xbuf[0])
                for r in range(R - 1):
                    m.d.sync += xbuf[r].eq(xbuf[r + 1])
                # next item: rows, then planes (bit-serial: the same R words again), then groups
                # (the next word: groups are consecutive).
                next_group = Signal()
                with m.If(cr == R - 1):
                    m.d.sync += cr.eq(0)
                    if serial:
                        with m.If(ck != 0):
                            m.d.sync += [ck.eq(ck - 1), ia.eq(gbase)]
                        with m.Else():
                            m.d.sync += ck.eq(ib - 1)
                            m.d.comb += next_group.eq(1)
                    else:
                        m.d.comb += next_group.eq(1)
                with m.Else():
                    m.d.sync += [cr.eq(cr + 1), ia.eq(ia + 1)]
                with m.If(next_group):
                    m.d.sync += [ia.eq(ia + 1), gbase.eq(ia + 1)]
                    with m.If(cg == G - 1):
                        m.d.sync += [cg.eq(0), issuing.eq(0)]
                    with m.Else():
                        m.d.sync += cg.eq(cg + 1)

        # S2 -> S3: products (parallel) or weights gated by the plane bit (bit-serial).
        weights = [w2[p * cfg.weight_bits:(p + 1) * cfg.weight_bits].as_signed()
                   for p in range(P)]
        terms = [Mux(x2, weights[p], 0) if serial else weights[p] * x2 for p in range(P)]
        prod3 = [Signal(terms[p].shape(), name=f"prod{p}") for p in range(P)]
        with m.If(run):
            m.d.sync += [prod3[p].eq(terms[p]) for p in range(P)]

        # S3: accumulate. `sums[p]` is the value a group's last item leaves in lane p.
        lanes = [Signal(signed(aw), name=f"acc{p}") for p in range(P)]
        sums = []
        if not serial:
            # lane = half + sum of the products of the group's rows
            for p in range(P):
                nxt = Signal(signed(aw), name=f"nxt{p}")
                m.d.comb += nxt.eq(Mux(f3["first"], half.as_signed(), lanes[p]) + prod3[p])
                with m.If(run & f3["v"]):
                    m.d.sync += lanes[p].eq(nxt)
                sums.append(nxt)
        else:
            # Bit-serial: a plane's column sum is built exactly over R items in `psum`, then
            # shift-added into the lane MSB plane first (Horner: total = 2*total + S_k, the same
            # sum as adding S_k shifted by k). The top plane of a signed code weighs -2**(ib-1):
            # the total starts at -S_top. The rounding offset enters with the last plane's first
            # row (it must not be doubled). No multipliers, and no variable shifter.
            for p in range(P):
                psum = Signal(signed(aw), name=f"psum{p}")
                plane = Signal(signed(aw), name=f"plane{p}")
                tot = Signal(signed(aw), name=f"tot{p}")
                base = Mux(f3["first"], Mux(f3["lp"], half.as_signed(), 0), psum)
                m.d.comb += plane.eq(base + prod3[p])
                top_val = -plane if cfg.input_signed else plane
                m.d.comb += tot.eq(Mux(f3["top"], top_val, (lanes[p] << 1) + plane))
                with m.If(run & f3["v"]):
                    m.d.sync += psum.eq(plane)
                    with m.If(f3["lastrow"]):
                        m.d.sync += lanes[p].eq(tot)
                sums.append(tot)

        # ---------------------------------------------------------------------------------------
        # Output buffer: P sums of one group, sent column by column (obuf[0] first; a send
        # rotates obuf[p+1] into obuf[p], so the ADC step reads a fixed register: no P:1
        # multiplexer on aw-bit values), through the ADC step into the output register.
        obuf = [Signal(signed(aw), name=f"obuf{p}") for p in range(P)]
        o_n = Signal(range(P + 1))          # columns left in obuf
        o_lastg = Signal()                  # obuf holds the vector's last group
        o_code = Signal(signed(cfg.adc_bits))
        o_valid = Signal()
        o_last = Signal()
        o_adv = ~o_valid | self.out.ready
        o_load = Signal()
        m.d.comb += o_load.eq((o_n != 0) & o_adv)

        # ADC step (docs §1) on a = obuf[0], which already holds acc + 2**(shift-1): the code is
        # a >> shift (arithmetic), clipped at both rails. The clip decision does not wait for
        # the shifter: with k = adc_bits-1+shift, (a >> shift) > hi  <=>  a >= 2**k  <=>  a >= 0
        # with a bit at or above k set, and (a >> shift) < lo  <=>  a < -2**k  <=>  a < 0 with a
        # bit at or above k clear; `clip_mask` holds those bit positions (none when k >= aw).
        lo, hi = cfg.adc_range
        a0 = obuf[0]
        neg = a0[aw - 1]
        over = ~neg & (a0.as_unsigned() & clip_mask).any()
        under = neg & (~a0.as_unsigned() & clip_mask).any()
        code = Mux(over, hi, Mux(under, lo, (a0 >> shift)[:cfg.adc_bits]))
        with m.If(o_adv):
            m.d.sync += o_valid.eq(o_n != 0)
        with m.If(o_load):
            m.d.sync += [o_code.eq(code), o_last.eq(o_lastg & (o_n == 1)), o_n.eq(o_n - 1)]
            for p in range(P - 1):
                m.d.sync += obuf[p].eq(obuf[p + 1])
        m.d.comb += [
            self.out.valid.eq(o_valid),
            self.out.payload.code.eq(o_code),
            self.out.payload.last.eq(o_last),
        ]

        # S3 -> obuf: allowed when obuf is empty or sends its last column now.
        fin3 = f3["v"] & f3["fin"]
        o_free = (o_n == 0) | ((o_n == 1) & o_load)
        m.d.comb += run.eq(~fin3 | o_free)
        with m.If(run & fin3):
            m.d.sync += [obuf[p].eq(sums[p]) for p in range(P)]
            m.d.sync += [o_n.eq(P), o_lastg.eq(f3["lastg"])]

        # ---------------------------------------------------------------------------------------
        # Receive phase and the end of a vector.
        first_base = self.inp.payload.slot * (G * R)
        with m.If(take_in):
            m.d.sync += xbuf[R - 1].eq(self.inp.payload.code)
            for r in range(R - 1):
                m.d.sync += xbuf[r].eq(xbuf[r + 1])
            with m.If(r_in == 0):
                ones = Const((1 << aw) - 1, aw)
                m.d.sync += [shift.eq(sh_c), half.eq((Const(1, aw + 1) << sh_c)[1:]),
                             clip_mask.eq((ones << (sh_c + (cfg.adc_bits - 1)))[:aw]),
                             ia.eq(first_base), gbase.eq(first_base)]
            with m.If(r_in == R - 1):
                m.d.sync += [r_in.eq(0), mvm.eq(1), issuing.eq(1), cr.eq(0), cg.eq(0),
                             ck.eq(ib - 1)]
            with m.Else():
                m.d.sync += r_in.eq(r_in + 1)
        with m.If(o_valid & self.out.ready & o_last):
            m.d.sync += mvm.eq(0)
        return m
