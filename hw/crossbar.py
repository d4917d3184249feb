"""Crossbar MAC tile: ``slots`` blocks of R x C signed weight codes, one MVM per input vector.

Contract: ``docs/crossbar.md`` §1–3. Parameters and integer rules: ``model/blocks/crossbar_config``
(:class:`TileConfig`); bit-exact twin: ``model.blocks.crossbar.CrossbarTile``.

The payload layouts of the three streams are available without building a tile
(:func:`prog_layout`, :func:`inp_layout`, :func:`out_layout`), so a component that drives the tile
(the layer engine) can declare matching signals.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
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
    The tile takes one vector at a time: it receives R beats (1 cycle each, into a small input
    memory), then issues the G·Q items, Q = R·steps (one row of one column group, of one
    bit-plane in the bit-serial mode; steps = ib bit-serial, 1 parallel), into a 4-stage
    pipeline: issue (memory addresses), memory data registers, P products, accumulate. A
    group's last item moves its P sums into an output buffer, which sends them one column per
    cycle through a 4-stage ADC step (column select, + 2**(shift-1), shift and clip decision,
    output register) while the next groups are computed. With ``inp`` offered every cycle and
    ``out`` always ready:

    * a vector whose first beat is taken in cycle t has its last output beat taken in cycle
      ``t + mvm_cycles - 1`` and the next vector's first beat can be taken in cycle
      ``t + mvm_cycles``, with ``mvm_cycles = TileConfig.mvm_cycles()
      = R + Q + (G−1)·max(Q, P + 4) + P + 7`` (``R + G·Q + P + 7`` when Q >= P + 4): R load
      cycles, the items, the first group's sums 3 cycles after its last item is issued, then
      the last group's P columns behind the 4-stage ADC step;
    * the issue stage issues a group's last item only while the output buffer is empty and no
      other group's last item is in flight (so the stages behind it never stall): at most one
      group every P + 4 cycles.

    Back-pressure: ``out.ready`` low stalls the ADC stages, then the output buffer, then (when a
    group's last item is due and the buffer is not empty) the issue stage. Gaps on ``inp``
    stall the receive phase. Nothing is dropped or reordered.
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
        loading = Signal()                   # r_in != 0, as a register (short ready logic)
        mvm = Signal()
        busy = Signal()
        m.d.comb += [busy.eq(loading | mvm), self.busy.eq(busy)]

        # -- programming port: only while idle; it wins over a vector's first beat so that
        # acceptance order is always well defined (a vector never overlaps a write).
        # One address for both ports (the programming address while idle, the issue address
        # while busy), so that the synthesis tool can make them one read/write port of the block
        # RAM, whose own read-before-write mode then gives the read port's semantics (separate
        # ports would get soft logic behind the RAM's output for same-address collisions, which
        # never happen here). The read port has no enable (an enable that is not the write
        # port's would also become soft logic behind the output): the stages behind the issue
        # stage never stall.
        mem_addr = Signal(range(cfg.weight_words + 1))
        m.d.comb += [
            self.prog.ready.eq(~busy),
            wr.addr.eq(mem_addr),
            wr.data.eq(self.prog.payload.data),
            wr.en.eq(self.prog.valid & ~busy),
        ]

        # -- input buffer: R codes in a small memory (block RAM on the iCE40, LUT RAM on the
        # ECP5), written by the receive phase at row r_in and read, like the weights, by the
        # issue stage at the issued row (synchronous read: the code arrives with its weights).
        m.submodules.xmem = xmem = Memory(shape=input_shape(cfg), depth=R, init=[])
        xw = xmem.write_port()
        xr = xmem.read_port()
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
        # Derived from the `shift` register one cycle after the first beat (they are first used
        # R + 3 cycles after it), so the decoders are not behind the input port's logic.
        ones = Const((1 << aw) - 1, aw)
        m.d.sync += [half.eq((Const(1, aw + 1) << shift)[1:]),
                     clip_mask.eq((ones << (shift + (cfg.adc_bits - 1)))[:aw])]

        # ---------------------------------------------------------------------------------------
        # Compute pipeline (docs/crossbar.md §3), one item = one row of one column group (of one
        # bit-plane), G*R*steps items per vector, issued back to back:
        #   issue  address `ia` to the weight memory and row `cr` to the input buffer; flags ->
        #          stage 1
        #   S1     memory data (the RAMs' own output registers)      -> w2, x2
        #   S2     P products w*x (DSP blocks) / gated weights        -> prod3
        #   S3     accumulate into the P lanes; a group's last item ("final") also writes the
        #          sums into the output buffer `obuf`
        # Only the issue stage ever waits: it issues a group's final item only while `obuf` is
        # empty and no other final item is in flight, so the final finds `obuf` free three
        # cycles later (nothing else fills it) and S1..S3 simply move every cycle. Cost: a group
        # takes max(Q, P + 4) cycles (Q = R*steps) instead of max(Q, P).
        issuing = Signal()
        ia = Signal(range(cfg.weight_words + 1))     # address of the item being issued
        gbase = Signal(range(cfg.weight_words + 1))  # row 0 of the issuing group (bit-serial)
        cr = Signal(range(R))                        # row of the issued item
        cg = Signal(range(G))                        # its column group
        ck = Signal(range(ib), init=ib - 1)          # its bit-plane (bit-serial), MSB first
        # cr == R-1, and that on the last plane: the item is a group's final (registers)
        cr_last = Signal(init=R == 1)
        at_final = Signal(init=R == 1 and (not serial or ib == 1))
        m.d.comb += [mem_addr.eq(Mux(busy, ia, self.prog.payload.addr)),
                     rd.addr.eq(mem_addr), xr.addr.eq(cr)]

        # Stage flags: valid, first row, last row, last row of the group's last plane (the
        # group's sums are complete; only on a valid item), last group of the vector, top /
        # last bit-plane.
        def flags(k):
            return {n: Signal(name=f"{n}{k}") for n in
                    ("v", "first", "lastrow", "fin", "lastg", "top", "lp")}
        f1, f2, f3 = flags(1), flags(2), flags(3)
        ck1, ck2 = Signal(range(ib), name="ck1"), Signal(range(ib), name="ck2")
        # Data registers need no reset (the flags say what they hold); reset-less and without
        # an enable, they can also move into the DSP blocks' own registers where the synthesis
        # tool can.
        x2 = Signal(input_shape(cfg), name="xq2", reset_less=True)
        w2 = Signal(rd.data.shape(), name="w2", reset_less=True)

        o_empty = Signal(init=1)            # obuf holds no column (see the output side)
        final_ok = o_empty & ~f1["fin"] & ~f2["fin"] & ~f3["fin"]
        issue = Signal()
        m.d.comb += issue.eq(issuing & (~at_final | final_ok))

        m.d.sync += [f2[n].eq(f1[n]) for n in f1] + [f3[n].eq(f2[n]) for n in f2]
        m.d.sync += [w2.eq(rd.data), x2.eq(xr.data), ck2.eq(ck1),
                     f1["v"].eq(issue), f1["fin"].eq(issue & at_final)]
        with m.If(issue):
            m.d.sync += [
                f1["first"].eq(cr == 0), f1["lastrow"].eq(cr_last),
                f1["lastg"].eq(cg == G - 1),
                f1["top"].eq(ck == ib - 1), f1["lp"].eq(ck == 0),
                ck1.eq(ck),
            ]
            # next item: rows, then planes (bit-serial: the same R words again), then groups
            # (the next word: groups are consecutive).
            next_group = Signal()
            with m.If(cr_last):
                m.d.sync += [cr.eq(0), cr_last.eq(R == 1)]
                if serial:
                    with m.If(ck != 0):
                        m.d.sync += [ck.eq(ck - 1), ia.eq(gbase),
                                     at_final.eq((R == 1) & (ck == 1))]
                    with m.Else():
                        m.d.sync += [ck.eq(ib - 1), at_final.eq((R == 1) & (ib == 1))]
                        m.d.comb += next_group.eq(1)
                else:
                    m.d.sync += at_final.eq(R == 1)
                    m.d.comb += next_group.eq(1)
            with m.Else():
                m.d.sync += [cr.eq(cr + 1), ia.eq(ia + 1), cr_last.eq(cr == R - 2),
                             at_final.eq((cr == R - 2) & ((ck == 0) if serial else 1))]
            with m.If(next_group):
                m.d.sync += [ia.eq(ia + 1), gbase.eq(ia + 1)]
                with m.If(cg == G - 1):
                    m.d.sync += [cg.eq(0), issuing.eq(0)]
                with m.Else():
                    m.d.sync += cg.eq(cg + 1)

        # S2 -> S3: products (parallel) or weights gated by the plane bit (bit-serial).
        weights = [w2[p * cfg.weight_bits:(p + 1) * cfg.weight_bits].as_signed()
                   for p in range(P)]
        bit2 = x2.as_unsigned().bit_select(ck2, 1)
        terms = [Mux(bit2, weights[p], 0) if serial else weights[p] * x2 for p in range(P)]
        prod3 = [Signal(terms[p].shape(), name=f"prod{p}", reset_less=True) for p in range(P)]
        m.d.sync += [prod3[p].eq(terms[p]) for p in range(P)]

        # S3: accumulate. `sums[p]` is the value a group's last item leaves in lane p; it goes
        # straight into the output buffer (no multiplexer behind the adder), and the lane
        # restarts from 0 for the next group (a synchronous reset of its flip-flops, not a
        # multiplexer in front of the adder). Lanes are reset with the domain too, so a vector
        # always starts from 0.
        lanes = [Signal(signed(aw), name=f"acc{p}") for p in range(P)]
        sums = []
        if not serial:
            # lane = sum of the products of the group's rows
            for p in range(P):
                nxt = Signal(signed(aw), name=f"nxt{p}")
                m.d.comb += nxt.eq(lanes[p] + prod3[p])
                with m.If(f3["v"]):
                    m.d.sync += lanes[p].eq(Mux(f3["fin"], 0, nxt))
                sums.append(nxt)
        else:
            # Bit-serial: a plane's column sum is built exactly over R items in `psum` (which
            # restarts from 0 after a plane's last row), then shift-added into the lane MSB
            # plane first (Horner: total = 2*total + S_k, the same sum as adding S_k shifted by
            # k). The top plane of a signed code weighs -2**(ib-1): the total starts at -S_top.
            # No multipliers, and no variable shifter.
            for p in range(P):
                psum = Signal(signed(plane_sum_bits(cfg)), name=f"psum{p}")
                plane = Signal(signed(plane_sum_bits(cfg)), name=f"plane{p}")
                tot = Signal(signed(aw), name=f"tot{p}")
                m.d.comb += plane.eq(psum + prod3[p])
                top_val = -plane if cfg.input_signed else plane
                m.d.comb += tot.eq(Mux(f3["top"], top_val, (lanes[p] << 1) + plane))
                with m.If(f3["v"]):
                    m.d.sync += psum.eq(Mux(f3["lastrow"], 0, plane))
                    with m.If(f3["lastrow"]):
                        m.d.sync += lanes[p].eq(tot)
                sums.append(tot)

        # ---------------------------------------------------------------------------------------
        # Output buffer: the P sums of one group, sent column by column through a four-stage
        # ADC step: stage M reads obuf[o_idx] (a P:1 multiplexer), stage A adds the rounding
        # offset 2**(shift-1), stage B shifts and decides the clipping, stage O (the output
        # register) clips.
        obuf = [Signal(signed(aw), name=f"obuf{p}", reset_less=True) for p in range(P)]
        o_n = Signal(range(P + 1))          # columns left in obuf
        o_one = Signal()                    # o_n == 1 (and o_empty: o_n == 0), as registers
        o_idx = Signal(range(P))            # next column of obuf to send
        o_lastg = Signal()                  # obuf holds the vector's last group
        m_val = Signal(signed(aw), reset_less=True)
        m_valid = Signal()
        m_last = Signal()
        a_val = Signal(signed(aw), reset_less=True)
        a_valid = Signal()
        a_last = Signal()
        b_val = Signal(cfg.adc_bits, reset_less=True)
        b_over, b_under, b_valid, b_last = Signal(), Signal(), Signal(), Signal()
        o_code = Signal(signed(cfg.adc_bits), reset_less=True)
        o_valid = Signal()
        o_last = Signal()
        o_adv = Signal()
        o_load = Signal()
        m.d.comb += [o_adv.eq(~o_valid | self.out.ready), o_load.eq(~o_empty & o_adv)]

        # ADC step (docs §1) on a = acc + 2**(shift-1) (stage A): the code is a >> shift
        # (arithmetic), clipped at both rails. The clip decision does not wait for the shifter:
        # with k = adc_bits-1+shift, (a >> shift) > hi  <=>  a >= 2**k  <=>  a >= 0 with a bit
        # at or above k set, and (a >> shift) < lo  <=>  a < -2**k  <=>  a < 0 with a bit at or
        # above k clear; `clip_mask` holds those bit positions (none when k >= aw).
        lo, hi = cfg.adc_range
        neg = a_val[aw - 1]
        over = ~neg & (a_val.as_unsigned() & clip_mask).any()
        under = neg & (~a_val.as_unsigned() & clip_mask).any()
        code = Mux(b_over, hi, Mux(b_under, lo, b_val.as_signed()))
        sel = Array(obuf)[o_idx] if P > 1 else obuf[0]
        with m.If(o_adv):
            m.d.sync += [o_valid.eq(b_valid), o_code.eq(code), o_last.eq(b_last),
                         b_valid.eq(a_valid), b_val.eq((a_val >> shift)[:cfg.adc_bits]),
                         b_over.eq(over), b_under.eq(under), b_last.eq(a_last),
                         a_valid.eq(m_valid), a_val.eq(m_val + half.as_signed()),
                         a_last.eq(m_last), m_valid.eq(~o_empty)]
        with m.If(o_load):
            m.d.sync += [m_val.eq(sel), m_last.eq(o_lastg & o_one),
                         o_n.eq(o_n - 1), o_idx.eq(o_idx + 1), o_empty.eq(o_one),
                         o_one.eq(o_n == 2)]
        m.d.comb += [
            self.out.valid.eq(o_valid),
            self.out.payload.code.eq(o_code),
            self.out.payload.last.eq(o_last),
        ]

        # S3 -> obuf: a final item finds obuf empty (see the issue stage).
        with m.If(f3["fin"]):
            m.d.sync += [obuf[p].eq(sums[p]) for p in range(P)]
            m.d.sync += [o_n.eq(P), o_idx.eq(0), o_lastg.eq(f3["lastg"]), o_empty.eq(0),
                         o_one.eq(P == 1)]

        # ---------------------------------------------------------------------------------------
        # Receive phase and the end of a vector.
        first_base = self.inp.payload.slot * (G * R)
        m.d.comb += [xw.addr.eq(r_in), xw.data.eq(self.inp.payload.code), xw.en.eq(take_in)]
        with m.If(take_in):
            with m.If(r_in == 0):
                m.d.sync += [shift.eq(sh_c), ia.eq(first_base), gbase.eq(first_base)]
            with m.If(r_in == R - 1):
                m.d.sync += [r_in.eq(0), loading.eq(0), mvm.eq(1), issuing.eq(1), cr.eq(0),
                             cg.eq(0), ck.eq(ib - 1), cr_last.eq(R == 1),
                             at_final.eq(R == 1 and (not serial or ib == 1))]
            with m.Else():
                m.d.sync += [r_in.eq(r_in + 1), loading.eq(1)]
        with m.If(o_valid & self.out.ready & o_last):
            m.d.sync += mvm.eq(0)
        return m
