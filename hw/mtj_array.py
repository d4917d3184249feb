"""MTJ-array controller: row sequencer, raw-bit output stream and per-cell bias calibration.

The cycle/bit contract is ``docs/mtj-array.md``; the bit-exact twin is
``model.blocks.mtj_array.MTJArrayController``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.array_port import ArrayPortSignature, raw_word_layout
from model.blocks.config import ArrayConfig


class _Phase(enum.Enum, shape=3):
    IDLE = 0
    RESET = 1
    PULSE = 2
    SETTLE = 3
    SENSE = 4


class MTJArrayController(wiring.Component):
    """Drives the array port row by row, streams the sensed rows, calibrates every cell's code.

    Parameters
    ----------
    cfg : ArrayConfig
        Array geometry, row timing and calibration parameters.

    Attributes
    ----------
    port : Out(ArrayPortSignature(cfg))
        The array port. ``row``/``reset``/``pulse``/``sense``/``amp`` are decoded from registers
        (no combinational path from any input). ``amp`` carries the row's codes during PULSE only.
        Between rows (idle) ``row`` already shows the next row to run.
    raw : Out(stream.Signature(raw_word_layout(cfg)))
        Raw words ``{row, bits, alarm}`` in the order rows were sensed; ``alarm`` holds the
        row's sticky alarms after that capture's calibration update (and after a
        ``clear_alarms`` of the capture cycle, set winning). ``valid`` and ``payload`` come
        from registers of a 2-entry output buffer and never depend on ``ready``.
    enable, cal_enable : In(1)
        ``CTRL.enable`` / ``CTRL.cal_enable`` levels. ``cal_enable`` is sampled in a row's capture
        cycle.
    clear_alarms : In(1)
        Strobe: clears every alarm at this clock edge. An alarm raised by a capture in the same
        cycle survives (set wins).
    running : Out(1)
        A row operation (RESET..SENSE) is in progress. From a register.
    alarm_any : Out(1)
        OR of all cells' alarms (combinational from the alarm registers).
    rows_sensed : Out(32)
        Words captured since reset; wraps at 2**32. A register.
    cell_sel : In(16)
        Cell to inspect, index = row * cols + col.
    cell_code, cell_alarm : Out(cfg.code_width), Out(1)
        Code and alarm of cell ``cell_sel``. **Registered, latency 3** (``CELL_READ_LATENCY``):
        in cycle k+3 they show the state the selected cell had in cycle k+1 (i.e. right after
        the clock edge ending cycle k), for the ``cell_sel`` of cycle k. An index >= rows*cols
        reads 0. (Pipelined so that the index arithmetic and the rows*cols:1 mux stay off the
        critical path; see elaborate.)

    Timing (``docs/mtj-array.md``): a row is RESET x reset_cycles, PULSE x pulse_cycles, SETTLE x 1,
    SENSE x 1; ``port.bits`` is captured in the following cycle, which is also the next row's first
    RESET cycle when the controller goes on, so a row completes every ``cfg.row_period_cycles``.
    A row starts only if ``enable`` and ``port.ready`` are high in the deciding cycle (the SENSE
    cycle of the previous row, or an idle cycle; the row's RESET begins in the next cycle) and the
    output buffer can take the row's word even if nothing drains. With ``raw.ready`` held high there
    is never a stall. A started row always runs to its end; clearing ``enable`` or ``port.ready``
    only stops the controller between rows.

    Latency: a row's word is written into the output buffer at the end of its capture cycle and is
    ``raw.valid`` in the cycle after (SENSE + 2). Back-pressure: words wait in the buffer; while it
    cannot take another row's word, no row starts. No word is lost or repeated.
    """

    #: Cycles from ``cell_sel`` to ``cell_code``/``cell_alarm`` (see the class docstring).
    CELL_READ_LATENCY = 3

    def __init__(self, cfg: ArrayConfig):
        if not isinstance(cfg, ArrayConfig):
            self._MustUse__silence = True    # no "created but never used" warning for a reject
            raise ValueError(f"MTJArrayController.cfg = {cfg!r}: must be an ArrayConfig "
                             f"(model.blocks.config.ArrayConfig)")
        self.cfg = cfg
        super().__init__({
            "port": Out(ArrayPortSignature(cfg)),
            "raw": Out(stream.Signature(raw_word_layout(cfg))),
            "enable": In(1),
            "cal_enable": In(1),
            "clear_alarms": In(1),
            "running": Out(1),
            "alarm_any": Out(1),
            "rows_sensed": Out(32),
            "cell_sel": In(16),
            "cell_code": Out(cfg.code_width),
            "cell_alarm": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        N, M, cw, wl = cfg.rows, cfg.cols, cfg.code_width, cfg.window_log2
        W, CMAX = cfg.window, cfg.code_max

        # ---------------------------------------------------------------------------------------
        # Cell state storage: a rotating register file of rows.
        #
        # Rows are always visited in the order 0, 1, ..., N-1, 0, ..., so instead of addressing a
        # row file by row index (an N:1 read mux of cols*(code+ones+alarm) bits and a write
        # decoder) the rows live in a circular shift register: slot 0 ("head") always holds the
        # row being operated on, and at its capture the updated head goes to slot N-1 while every
        # other slot moves down by one. The pulse codes and the calibration logic then read
        # fixed registers: no mux at all on the data path. Only the cell-inspection read has to
        # undo the rotation (see the end).
        #
        # ``ones`` is stored in window_log2 bits (the doc says window_log2+1): the stored count is
        # the ones of the trials *before* the current one, at most W-1, because the capture that
        # would count the W-th trial closes the window and stores 0. The count including the
        # current bit (up to W) only exists inside the calibration arithmetic below.
        code = [[Signal(cw, init=cfg.code_init, name=f"code_s{s}_c{c}") for c in range(M)]
                for s in range(N)]
        ones = [[Signal(wl, name=f"ones_s{s}_c{c}") for c in range(M)] for s in range(N)]
        alarm = [[Signal(1, name=f"alarm_s{s}_c{c}") for c in range(M)] for s in range(N)]
        head_row = Signal(cfg.row_width)        # the row held in slot 0
        # For the inspection read: head_row * cols, and the value it takes at the next capture.
        iw = max(1, (cfg.cells - 1).bit_length())     # bits of an in-range cell index
        head_base = Signal(iw)
        head_base_after = Signal(iw, init=M % cfg.cells)
        trial = Signal(wl)

        # ---------------------------------------------------------------------------------------
        # Sequencer. Moore outputs decoded from the phase register.
        phase = Signal(_Phase)
        cnt = Signal(8)
        row = Signal(cfg.row_width)              # port.row: the row running or about to run
        cap = Signal()                           # capture cycle (the cycle after SENSE)
        m.d.sync += cap.eq(phase == _Phase.SENSE)

        m.d.comb += [
            self.port.row.eq(row),
            self.port.reset.eq(phase == _Phase.RESET),
            self.port.pulse.eq(phase == _Phase.PULSE),
            self.port.sense.eq(phase == _Phase.SENSE),
            self.running.eq(phase != _Phase.IDLE),
        ]
        # amp: the head row's codes during PULSE, 0 otherwise (one AND level after registers).
        with m.If(phase == _Phase.PULSE):
            m.d.comb += self.port.amp.eq(Cat(code[0]))

        # Output buffer: 2 entries, registered output. ``level`` counts stored words.
        buf0 = Signal(raw_word_layout(cfg))
        buf1 = Signal(raw_word_layout(cfg))
        level = Signal(range(3))

        # Reservation rule: a row may start if the buffer could take its word even if nothing
        # drained from now on. Words already promised: those stored (``level``) plus the row in
        # flight whose word is not stored yet (we are in its SENSE cycle, or in its capture cycle
        # while idle). The drain of this very cycle is ignored on purpose: it keeps raw.ready off
        # the path to the port controls, and with raw.ready high the buffer is empty again long
        # before the next decision (a word is drained 1 cycle after its capture, the next decision
        # comes >= 3 cycles after the capture), so there is still no stall.
        in_flight = (phase == _Phase.SENSE) | cap
        room = Mux(in_flight, level == 0, level != 2)    # level + in_flight <= 1, no adder
        start = self.enable & self.port.ready & room

        row_next = Mux(row == N - 1, 0, row + 1)
        with m.Switch(phase):
            with m.Case(_Phase.IDLE):
                with m.If(start):
                    m.d.sync += [phase.eq(_Phase.RESET), cnt.eq(cfg.reset_cycles - 1)]
            with m.Case(_Phase.RESET):
                with m.If(cnt == 0):
                    m.d.sync += [phase.eq(_Phase.PULSE), cnt.eq(cfg.pulse_cycles - 1)]
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.Case(_Phase.PULSE):
                with m.If(cnt == 0):
                    m.d.sync += phase.eq(_Phase.SETTLE)
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.Case(_Phase.SETTLE):
                m.d.sync += phase.eq(_Phase.SENSE)
            with m.Case(_Phase.SENSE):
                # The row is done after this cycle; port.row moves on now so that the capture
                # cycle can double as the next row's first RESET cycle.
                m.d.sync += row.eq(row_next)
                with m.If(start):
                    m.d.sync += [phase.eq(_Phase.RESET), cnt.eq(cfg.reset_cycles - 1)]
                with m.Else():
                    m.d.sync += phase.eq(_Phase.IDLE)

        # ---------------------------------------------------------------------------------------
        # Calibration, pipelined ahead of the capture.
        #
        # The head row is stable from the clock edge that ends the previous capture (cycle t)
        # until its own capture, which comes row_period_cycles >= 4 cycles later (reset_cycles
        # and pulse_cycles are >= 1), i.e. in cycle t+4 at the earliest. The only unknown at the
        # capture is the sensed bit, so both outcomes (bit = 0 and bit = 1) are computed in
        # advance by three registered stages that recompute from the head every cycle:
        #   S1 (valid from t+2): |e| and the sign of e = ones + b - W/2, and ones + 1
        #   S2 (valid from t+3): move down / move up (|e| > deadband), step = max(1, |e| >> shift)
        #   S3 (valid from t+4): candidate code and alarm
        # so every stage holds the head's values by the capture cycle; no valid bits needed.
        # The capture cycle itself only selects by the bit: bits -> 2:1 mux -> register.
        # ``close``: the next capture closes every cell's window. trial only changes at a capture,
        # so a register recomputed every cycle is right at every capture (>= 4 cycles apart)
        # and keeps the trial compare out of the capture path.
        close = Signal()
        m.d.sync += close.eq(trial == W - 1)
        upd = close & self.cal_enable            # (the slot registers are written only if cap)
        aw = max(cw, wl) + 2                     # width for signed code +/- step
        half = W // 2
        new_head_code, new_head_ones, new_head_alarm = [], [], []
        for c in range(M):
            h_code, h_ones = code[0][c], ones[0][c]
            # S1. ones < W (window_log2 bits): write ones = hb * W/2 + lo. Then
            #   e0 = ones - W/2     = lo if hb else -(W/2 - lo)
            #   e1 = ones + 1 - W/2 = lo + 1 if hb else -(W/2 - 1 - lo)
            # which needs one short subtract or increment per case instead of add + negate.
            hb, lo = h_ones[wl - 1], h_ones[:wl - 1]
            inc = Signal(wl, name=f"s1_inc_c{c}")
            m.d.sync += inc.eq(h_ones + 1)
            s1 = []
            for b in (0, 1):
                mag = Signal(wl, name=f"s1_mag{b}_c{c}")        # |e|, at most W/2
                pos = Signal(name=f"s1_pos{b}_c{c}")            # e > 0
                neg = Signal(name=f"s1_neg{b}_c{c}")            # e < 0
                if b == 0:
                    m.d.sync += [mag.eq(Mux(hb, lo, half - lo)),
                                 pos.eq(hb & (lo != 0)), neg.eq(~hb)]
                else:
                    m.d.sync += [mag.eq(Mux(hb, lo + 1, half - 1 - lo)),
                                 pos.eq(hb), neg.eq(~hb & (lo != half - 1))]
                s1.append((mag, pos, neg))
            cand_code, cand_alarm = [], []
            for b, (mag, pos, neg) in enumerate(s1):
                # S2: deadband test and proportional step
                dn = Signal(name=f"s2_dn{b}_c{c}")      # move down (switches too often)
                up = Signal(name=f"s2_up{b}_c{c}")      # move up
                step = Signal(wl, name=f"s2_step{b}_c{c}")
                shifted = mag >> cfg.step_shift
                m.d.sync += [
                    dn.eq((mag > cfg.deadband) & pos),
                    up.eq((mag > cfg.deadband) & neg),
                    step.eq(Mux(shifted == 0, 1, shifted)),
                ]
                # S3: candidate code and alarm for this bit value
                lo_c = Signal(signed(aw), name=f"lo{b}_c{c}")
                hi_c = Signal(signed(aw), name=f"hi{b}_c{c}")
                m.d.comb += [lo_c.eq(h_code - step), hi_c.eq(h_code + step)]
                cc = Signal(cw, name=f"s3_code{b}_c{c}")
                ca = Signal(name=f"s3_alarm{b}_c{c}")
                with m.If(dn):
                    m.d.sync += [cc.eq(Mux(lo_c < 0, 0, lo_c)), ca.eq(h_code == 0)]
                with m.Elif(up):
                    m.d.sync += [cc.eq(Mux(hi_c > CMAX, CMAX, hi_c)), ca.eq(h_code == CMAX)]
                with m.Else():
                    m.d.sync += [cc.eq(h_code), ca.eq(0)]
                cand_code.append(cc)
                cand_alarm.append(ca)
            bit = self.port.bits[c]
            nc = Signal(cw, name=f"new_code_c{c}")
            no = Signal(wl, name=f"new_ones_c{c}")
            na = Signal(name=f"new_alarm_c{c}")
            m.d.comb += [
                nc.eq(Mux(upd, Mux(bit, cand_code[1], cand_code[0]), h_code)),
                no.eq(Mux(close, 0, Mux(bit, inc, h_ones))),
                na.eq((alarm[0][c] & ~self.clear_alarms)
                      | (upd & Mux(bit, cand_alarm[1], cand_alarm[0]))),
            ]
            new_head_code.append(nc)
            new_head_ones.append(no)
            new_head_alarm.append(na)

        # Rotation at the capture; alarms of every slot obey clear_alarms in every cycle.
        with m.If(cap):
            for s in range(N - 1):
                for c in range(M):
                    m.d.sync += [code[s][c].eq(code[s + 1][c]), ones[s][c].eq(ones[s + 1][c]),
                                 alarm[s][c].eq(alarm[s + 1][c] & ~self.clear_alarms)]
            for c in range(M):
                m.d.sync += [code[N - 1][c].eq(new_head_code[c]),
                             ones[N - 1][c].eq(new_head_ones[c]),
                             alarm[N - 1][c].eq(new_head_alarm[c])]
            m.d.sync += [
                head_row.eq(Mux(head_row == N - 1, 0, head_row + 1)),
                head_base.eq(head_base_after),
                head_base_after.eq(Mux(head_base_after == cfg.cells - M, 0, head_base_after + M)),
                self.rows_sensed.eq(self.rows_sensed + 1),
            ]
            with m.If(head_row == N - 1):
                m.d.sync += trial.eq(trial + 1)
        with m.Elif(self.clear_alarms):
            for s in range(N):
                for c in range(M):
                    m.d.sync += alarm[s][c].eq(0)

        m.d.comb += self.alarm_any.eq(Cat(a for sl in alarm for a in sl).any())

        # ---------------------------------------------------------------------------------------
        # Output buffer (2 entries; buf0 is the stream output).
        word = Signal(raw_word_layout(cfg))
        # alarm: the head row's alarms as the capture writes them (the same next-state signals
        # that go into slot N-1), so the word carries exactly the stored state.
        m.d.comb += [word.row.eq(head_row), word.bits.eq(self.port.bits),
                     word.alarm.eq(Cat(new_head_alarm))]
        pop = self.raw.valid & self.raw.ready
        m.d.comb += [self.raw.valid.eq(level != 0), self.raw.payload.eq(buf0)]
        with m.Switch(Cat(cap, pop)):
            with m.Case(0b01):                   # push only
                with m.If(level == 0):
                    m.d.sync += buf0.eq(word)
                with m.Else():
                    m.d.sync += buf1.eq(word)
                m.d.sync += level.eq(level + 1)
            with m.Case(0b10):                   # pop only
                m.d.sync += [buf0.eq(buf1), level.eq(level - 1)]
            with m.Case(0b11):                   # push and pop: level unchanged
                with m.If(level == 1):
                    m.d.sync += buf0.eq(word)
                with m.Else():
                    m.d.sync += [buf0.eq(buf1), buf1.eq(word)]
        # The reservation rule means a push never finds the buffer full (level == 2 without pop).

        # ---------------------------------------------------------------------------------------
        # Cell inspection, registered, latency 3 (CELL_READ_LATENCY). The logical cell
        # i = row*cols + col sits in flat slot p = (i - head_row*cols) mod (rows*cols) of the
        # rotating register file.
        #   A: p and the range check, computed for the slot order of the *next* cycle, when B1
        #      reads the slots: a capture in this cycle rotates the slots at this very edge, so
        #      A uses the head base the capture is about to load (``head_base_after``, a
        #      register, so that no adder sits in front of the subtraction).
        #   B1: one G:1 mux per group of G = 2**k consecutive slots, by the low bits of p; all
        #      groups read the same cycle's state.
        #   B2: the groups' results by the high bits of p.
        # One cycle for A + a flat 64:1 mux limited an 8x8 array to 34 MHz on iCE40 UP5K, and
        # the flat 64:1 mux alone (6 LUT levels) to 42 MHz; split like this it is off the
        # critical path.
        flat = [Cat(code[s][c], alarm[s][c]) for s in range(N) for c in range(M)]
        cells = cfg.cells
        base_next = Signal(iw)
        m.d.comb += base_next.eq(Mux(cap, head_base_after, head_base))
        diff = Signal(signed(iw + 2))
        m.d.comb += diff.eq(self.cell_sel[:iw] - base_next)
        p = Signal(iw)
        in_range = Signal()
        m.d.sync += [p.eq(Mux(diff < 0, diff + cells, diff)), in_range.eq(self.cell_sel < cells)]
        k = (iw + 1) // 2
        gsize = 1 << k
        groups = [flat[g:g + gsize] for g in range(0, cells, gsize)]
        grp = [Signal(cw + 1, name=f"insp_g{g}") for g in range(len(groups))]
        for g, members in enumerate(groups):
            m.d.sync += grp[g].eq(Array(members)[p[:k]] if len(members) > 1 else members[0])
        p_hi = Signal(max(1, iw - k))
        in_range_d = Signal()
        m.d.sync += [p_hi.eq(p[k:]), in_range_d.eq(in_range)]
        sel = Signal(cw + 1)
        m.d.comb += sel.eq(Array(grp)[p_hi] if len(grp) > 1 else grp[0])
        m.d.sync += Cat(self.cell_code, self.cell_alarm).eq(Mux(in_range_d, sel, 0))

        return m
