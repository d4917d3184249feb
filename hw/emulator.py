"""Synthesizable MTJ-array emulator: a seeded pseudo-random stand-in for the analog array.

Contract: ``docs/mtj-array.md``, section "Emulator". Twin:
:class:`model.blocks.emulator.MTJArrayEmulator`.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.array_port import ArrayPortSignature
from hw.xoshiro import Xoshiro128pp
from model.blocks.config import EmulatorConfig
from model.blocks.xoshiro import seed_constants


class MTJArrayEmulator(wiring.Component):
    """Pseudo-random MTJ array on the array port: one xoshiro128++ per column.

    Parameters
    ----------
    cfg:
        Emulator parameters (array geometry and timing in ``cfg.array``, threshold table,
        initial offsets, ``prob_bits``, ``offset_width``, ``warmup_steps``, reset seed).

    Members
    -------
    port: In(ArrayPortSignature(cfg.array))
        The array port, flipped: ``row``, ``reset``, ``pulse``, ``amp``, ``sense`` come from the
        controller; ``bits`` and ``ready`` are driven here.

        * ``reset`` high at an edge clears every cell state (whatever ``row``: the emulator
          keeps one state per column, for the selected row).
        * The cycle after ``pulse`` falls (SETTLE) every column decides
          ``state_c = (out_c >> (32 - prob_bits)) < table[clamp(amp_c + offset[row][c], 0,
          CMAX)]`` and every generator steps once, whatever the number of pulse cycles.
          ``amp`` and ``row`` are sampled in the *last* PULSE cycle (``row`` also in the cycle
          before, which is the last RESET cycle when ``pulse_cycles = 1``), as the controller
          holds them. Internally the generator output is pipelined and the comparison finishes
          in the cycle after SETTLE; this relies on the protocol: no step or load in the last
          PULSE cycle nor in SETTLE (>= 1 RESET cycle, and a row starts no earlier than the
          cycle ``ready`` rises).
        * ``sense`` high at an edge: ``bits`` shows the states from the next cycle (latency 1)
          and holds them until the next sense.
        * ``ready`` is low while the generators warm up: the first ``warmup_steps`` cycles after
          reset, and from the cycle where ``reseed`` is high through the ``warmup_steps``
          cycles after it. The controller must not start a row while ``ready`` is low. A
          reseed while a row is in progress is outside the contract: that row's bits are
          unspecified, and its SETTLE adds a step only if it falls after the warm-up (a SETTLE
          during the warm-up shares that cycle's single step).
    seed: In(32)
        Seed loaded at a ``reseed`` strobe.
    reseed: In(1)
        Strobe: at the edge where it is high every generator loads ``s_i = seed ^ K[c][i]``
        (``K = model.blocks.emulator.seed_constants(cols)``); then ``warmup_steps`` steps, one per
        cycle. At reset the generators hold the state for ``cfg.seed`` and warm up the same way.
    offset_sel: In(16)
        Cell index ``row * cols + col`` for the offset access (indices >= rows*cols: writes are
        ignored, reads return 0).
    offset_wdata: In(signed(cfg.offset_width)), offset_we: In(1)
        Write strobe: ``offset_we`` high in cycle ``t`` sets the selected cell's offset to
        ``offset_wdata`` at the end of cycle ``t + 1`` (the request is registered once). It
        applies to every pulse whose last PULSE cycle is ``t + 3`` or later, in particular to
        every row whose RESET starts at ``t + 2`` or later, and to no pulse ending earlier.
    offset_rdata: Out(signed(cfg.offset_width))
        Registered read-back, latency 2 (:attr:`offset_read_latency`): in cycle ``t`` it shows
        the offset of the cell ``offset_sel`` selected in cycle ``t - 2``, as it was in that
        cycle (a write in cycle ``t`` shows from cycle ``t + 4`` on).

    No back-pressure anywhere: the controller's timing is the only flow control.

    Resources: ``cols`` generators (128 flip-flops each), ``rows*cols*offset_width`` offset
    flip-flops, ``cols`` copies of the ``2**code_width x prob_bits`` threshold ROM with one
    synchronous read port each (one iCE40 4-kbit block RAM each for 256 x 16).
    """

    def __init__(self, cfg: EmulatorConfig):
        if not isinstance(cfg, EmulatorConfig):
            raise ValueError(f"MTJArrayEmulator: cfg = {cfg!r}: must be an EmulatorConfig")
        if cfg.array.cells > 1 << 16:
            raise ValueError(f"MTJArrayEmulator: cfg.array.cells = {cfg.array.cells}: the 16-bit "
                             f"offset_sel addresses at most 65536 cells")
        self.cfg = cfg
        #: Cycles from ``offset_sel`` to ``offset_rdata``.
        self.offset_read_latency = 2
        super().__init__({
            "port": In(ArrayPortSignature(cfg.array)),
            "seed": In(32),
            "reseed": In(1),
            "offset_sel": In(16),
            "offset_wdata": In(signed(cfg.offset_width)),
            "offset_we": In(1),
            "offset_rdata": Out(signed(cfg.offset_width)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        a = cfg.array
        cols, rows, cw, U = a.cols, a.rows, a.code_width, cfg.prob_bits
        cmax = a.code_max
        K = seed_constants(cols)
        port = self.port

        # ---- Warm-up sequencer -------------------------------------------------------------
        # A down-counter loaded with warmup_steps at reset and on reseed; every generator
        # steps while it is non-zero. `ready` is combinational from it (a 0..11-bit compare)
        # and is also forced low during the reseed strobe itself so that the controller cannot
        # start a row in the cycle the generators are reloaded.
        W = cfg.warmup_steps
        count = Signal(range(W + 1), init=W)
        # `warming` == (count != 0), kept as a register of its own (its next value is computed
        # from the count's next value) so the compare is not on the path from `ready` into the
        # controller's start decision (the iCE40 critical path of the array design).
        warming = Signal(init=W != 0)
        with m.If(self.reseed):
            m.d.sync += [count.eq(W), warming.eq(W != 0)]
        with m.Elif(warming):
            m.d.sync += [count.eq(count - 1), warming.eq(count != 1)]
        m.d.comb += port.ready.eq(~warming & ~self.reseed)

        # ---- SETTLE detection --------------------------------------------------------------
        # The decision is taken the cycle after `pulse` falls, so the outcome does not depend
        # on pulse_cycles and the generators step exactly once per pulse.
        pulse_q = Signal()
        settle = Signal()
        m.d.sync += pulse_q.eq(port.pulse)
        m.d.comb += settle.eq(pulse_q & ~port.pulse)

        # ---- Offsets: rows*cols signed registers --------------------------------------------
        # Flip-flops rather than a memory: the data is tiny (512 bits for 8x8), it needs one
        # read per column per cycle plus a read-back port, and iCE40 block RAMs have a single
        # read port each (a memory would cost 2*cols of them).
        offs = [Signal(signed(cfg.offset_width), init=v, name=f"offset_{i}")
                for i, v in enumerate(cfg.offsets)]
        # Writes are registered once before they are decoded: a 16-bit compare per cell plus
        # the fan-out to rows*cols enables is ~4 LUT levels, too slow for 48 MHz on a UP5K.
        sel_w = max(1, (a.cells - 1).bit_length())
        wr_en_q = Signal()
        wr_sel_q = Signal(sel_w)
        wr_data_q = Signal(signed(cfg.offset_width))
        m.d.sync += [
            wr_en_q.eq(self.offset_we & (self.offset_sel < a.cells)),
            wr_sel_q.eq(self.offset_sel[:sel_w]),
            wr_data_q.eq(self.offset_wdata),
        ]
        for i, o in enumerate(offs):
            with m.If(wr_en_q & (wr_sel_q == i)):
                m.d.sync += o.eq(wr_data_q)
        # Read-back: a rows*cols-to-1 mux, split into two registered stages (8:1 within a
        # group of 8 cells, then across groups) so that it is not the critical path on an
        # iCE40 (one 64:1 stage is ~6 LUT levels, ~27 ns on a UP5K).
        zero = Const(0, signed(cfg.offset_width))
        n_groups = (a.cells + 7) // 8
        grp_w = max(1, (n_groups - 1).bit_length())
        grp_q = [Signal(signed(cfg.offset_width), name=f"offset_grp{g}") for g in range(n_groups)]
        for g in range(n_groups):
            members = offs[8 * g:8 * g + 8]
            members += [zero] * (8 - len(members))
            m.d.sync += grp_q[g].eq(Array(members)[self.offset_sel[:3]])
        sel_hi_q = Signal(grp_w)
        sel_ok_q = Signal()
        m.d.sync += [
            sel_hi_q.eq(self.offset_sel[3:3 + grp_w]),
            sel_ok_q.eq(self.offset_sel < a.cells),
        ]
        grp_pad = grp_q + [zero] * ((1 << grp_w) - n_groups)
        with m.If(sel_ok_q):
            m.d.sync += self.offset_rdata.eq(Array(grp_pad)[sel_hi_q])
        with m.Else():
            m.d.sync += self.offset_rdata.eq(0)

        # ---- Threshold ROMs -----------------------------------------------------------------
        # One ROM copy per column with one synchronous read port each (yosys maps a single
        # ROM with `cols` read ports to flip-flops/LUTs, but one-port copies to block RAMs).
        # The address is formed every cycle from the current amp and the registered offset of
        # the current row; the controller holds both through PULSE, so the data read in the
        # last PULSE cycle is valid in SETTLE, when it is needed (pulse_cycles >= 1).
        # Registering the row's offsets (off_q) costs nothing: `row` is already stable during
        # RESET, which precedes PULSE by >= 1 cycle.

        # ---- Per column: generator, index, decision -----------------------------------------
        state = Signal(cols)                # cell states of the selected row
        decision = Signal(cols)             # outcome of the pulse, valid in the cycle after SETTLE
        row_pad = 1 << a.row_width
        for c in range(cols):
            gen = Xoshiro128pp(init=tuple(int(cfg.seed ^ int(K[c][i])) for i in range(4)))
            m.submodules[f"gen{c}"] = gen
            m.d.comb += [
                gen.load.eq(self.reseed),
                gen.load_state.eq(Cat(*(self.seed ^ Const(int(K[c][i]), 32) for i in range(4)))),
                gen.step.eq(warming | settle),
            ]

            col_offs = [offs[r * cols + c] for r in range(rows)]
            col_offs += [col_offs[-1]] * (row_pad - rows)
            off_q = Signal(signed(cfg.offset_width), name=f"off_q{c}")
            m.d.sync += off_q.eq(Array(col_offs)[port.row])

            amp = port.amp[c * cw:(c + 1) * cw]
            s = Signal(signed(max(cw + 1, cfg.offset_width) + 1), name=f"sum{c}")
            idx = Signal(cw, name=f"idx{c}")
            m.d.comb += s.eq(amp + off_q)
            with m.If(s < 0):
                m.d.comb += idx.eq(0)
            with m.Elif(s > cmax):
                m.d.comb += idx.eq(cmax)
            with m.Else():
                m.d.comb += idx.eq(s[:cw])

            m.submodules[f"table{c}"] = table = Memory(shape=unsigned(U), depth=1 << cw,
                                                       init=cfg.table)
            rp = table.read_port(domain="sync")
            if a.pulse_cycles >= 2:
                # amp is constant for the whole pulse, so with two or more pulse cycles the
                # index can be registered once before the block-RAM address: the add and clamp
                # then have a cycle of their own (the ECP5/iCE40 critical path otherwise).
                idx_q = Signal(cw, name=f"idx_q{c}")
                m.d.sync += idx_q.eq(idx)
                m.d.comb += rp.addr.eq(idx_q)
            else:
                m.d.comb += rp.addr.eq(idx)

            # The scrambler output rotl(s0 + s3, 7) + s0 is recomputed here as a two-stage
            # pipeline (one 32-bit add per stage) instead of using gen.out combinationally:
            # two chained 32-bit carry chains limit an iCE40 UP5K to ~30 MHz. This is exact
            # because the generator state is constant in the last PULSE cycle and in SETTLE:
            # its last change is a step (a SETTLE or the last warm-up cycle) or a load, and the
            # controller then needs >= 1 RESET cycle (after warm-up, a row starts no earlier
            # than the cycle in which `ready` rises). So at the end of SETTLE, u_q gets the top
            # U bits of the output of the step taken at that same edge.
            s0 = gen.state[0:32]
            s3 = gen.state[96:128]
            sum_q = Signal(32, name=f"sum_q{c}")
            u_q = Signal(U, name=f"u_q{c}")
            m.d.sync += [
                sum_q.eq(s0 + s3),
                u_q.eq((sum_q.rotate_left(7) + s0)[32 - U:32]),
            ]

            # Decision: the threshold is latched at SETTLE (thr_q) and compared in the next
            # cycle, whose result goes straight to `bits` if that cycle senses (the controller's
            # SENSE) and into `state` for later senses. Observably the same as deciding in
            # SETTLE, but it keeps the block-RAM clock-to-output (5.6 ns on an ECP5 DP16KD
            # without its output register) off the compare path. u_q still holds the
            # pre-step output in that cycle: it was computed at the end of SETTLE from sum_q
            # and s0, both taken from the state before the step.
            thr_q = Signal(U, name=f"thr_q{c}")
            with m.If(settle):
                m.d.sync += thr_q.eq(rp.data)
            m.d.comb += decision[c].eq(u_q < thr_q)

        decide_q = Signal()                 # high in the cycle after SETTLE
        m.d.sync += decide_q.eq(settle)
        with m.If(decide_q):
            m.d.sync += state.eq(decision)
        # `reset` wins over a simultaneous decision (which the controller never produces).
        with m.If(port.reset):
            m.d.sync += state.eq(0)
        with m.If(port.sense):
            m.d.sync += port.bits.eq(Mux(decide_q, decision, state))
        return m
