"""Sequencer: the DDPM/DDIM reverse-step datapath of the diffusion core, in integers.

Contract: ``docs/hardware-mode.md`` §2-§6 (formats, step tables, the update, output pixels, noise
order, counters) and ``docs/sequencer.md`` (this block: ports, latency, back-pressure). The
integer rules and the build-parameter checks are defined once in ``model/blocks/sequencer.py``;
the bit-exact twin is ``model.blocks.sequencer.Sequencer``.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.blocks.config import GaussConfig
from model.blocks.crossbar_config import signed_range
from model.blocks.sequencer import (C1_MAX_SHIFT, C2_FRAC, COEF_BITS, COUNTERS, PIXEL_BITS,
                                    PIXEL_MAX, SIGMA_FRAC, X_BITS, X_FRAC, X_MAX, X_MIN,
                                    acc_frac, check_sequencer_params, check_tables)

#: cfg-port targets: step-table rows C1, C2, SG, TS; a time-embedding code (address
#: t·temb_dim + k); the c1_shift register (data[:4]).
CFG_C1, CFG_C2, CFG_SG, CFG_TS, CFG_TEMB, CFG_C1_SHIFT = range(6)

#: Register stages of the update from the cycle an ε̂ beat is taken to the cycle its state word
#: is written (state read, C2·E, D, C1·D, A and saturation, write).
UPDATE_PIPE_STAGES = 5

#: Cycles of one row outside its pixel and time-code beats with every stream ready/valid:
#: table read 1, latch 1, the last net-input beat's hand-over 1, the update pipeline drain 4
#: (stages 1-4 empty) and the hand-over to the next row 1.
ROW_OVERHEAD_CYCLES = 3 + UPDATE_PIPE_STAGES


def row_cycles(dim: int, temb_dim: int) -> int:
    """Cycles of one row (one network evaluation excluded) with ``net_in`` always ready and ε̂
    (and noise) offered every cycle from the cycle after the last net-input beat:
    ``dim + temb_dim + dim + ROW_OVERHEAD_CYCLES``."""
    return 2 * dim + temb_dim + ROW_OVERHEAD_CYCLES


def image_cycles(dim: int, temb_dim: int, steps: int) -> int:
    """Cycles of one image from the cycle ``start`` is taken to the cycle ``done`` pulses, every
    stream ready/valid, the network taking no time: ``1 + dim`` (x_T) ``+ steps·row_cycles +
    dim + 1`` (pixels)."""
    return 1 + dim + steps * row_cycles(dim, temb_dim) + dim + 1


def counters_layout(bits: int) -> data.StructLayout:
    """The counters port: one unsigned ``bits``-wide field per name of
    ``model.blocks.sequencer.COUNTERS``."""
    return data.StructLayout({n: unsigned(bits) for n in COUNTERS})


def cfg_layout(temb_rows: int, temb_dim: int, table_depth: int) -> data.StructLayout:
    """cfg write: ``target`` (CFG_*), ``addr``, ``data`` (16 bits)."""
    depth = max(table_depth, temb_rows * max(temb_dim, 1))
    return data.StructLayout({"target": 3, "addr": range(depth), "data": COEF_BITS})


class Sequencer(wiring.Component):
    """The reverse-step sequencer: state memory, step tables, time-embedding table, the update
    ``X ← sat(c1·(X − c2·ε̂) + σ·z)`` and the pixel output.

    Parameters
    ----------
    dim : int
        Pixels per image (default 64).
    temb_dim, temb_rows : int
        Time-embedding codes per row and rows (T) of the time-embedding table.
    table_depth : int
        Rows of the step tables (the most steps of a run).
    fx_in, fe : int
        Network input scale (pixel code = round_shift(X, 12 − fx_in)) and ε̂ scale.
    gauss : GaussConfig
        The noise format Q(int_bits).(frac_bits) (at most 16 bits).
    eps_bits, in_bits : int
        Widths of the signed ε̂ codes and of the network input (DAC) codes.
    tables : object with c1, c2, sg, ts, c1_shift, optional
        Initial contents of the step tables and the c1_shift register
        (``model.diffusion.hardware.StepTables``); otherwise zeros, loaded through ``cfg``.
    temb : array (temb_rows, temb_dim), optional
        Initial time-embedding codes; otherwise zeros.
    counter_bits : int
        Width of each counter (default 32).

    Attributes
    ----------
    cfg : In(stream.Signature(cfg_layout(...)))
        Table writes (``target`` CFG_C1 / CFG_C2 / CFG_SG / CFG_TS ``addr`` = row; CFG_TEMB
        ``addr`` = t·temb_dim + k; CFG_C1_SHIFT the register). Ready only while idle; an address
        past a memory's depth is ignored.
    start : In(1)
        Starts one image in an idle cycle with ``steps`` in 1 … table_depth (otherwise
        ignored). ``steps`` is sampled then; rows 0 … steps−1 of the tables run.
    steps : In(range(table_depth + 1))
    busy : Out(1)
        High from the cycle after ``start`` is taken to the cycle after the last pixel is taken.
    done : Out(1)
        One-cycle pulse in the cycle ``busy`` falls.
    noise : In(stream.Signature(signed(gauss.sample_bits)))
        Gaussian samples (the generator's ``o``): ``dim`` for x_T, then ``dim`` per row with
        SG ≠ 0, taken together with that row's ε̂ beats; none in a row with SG = 0.
    net_in : Out(stream.Signature({"code": signed(in_bits)}))
        Per row ``dim + temb_dim`` beats: the pixel codes of X, then row TS[i] of the
        time-embedding table (``HardwareProgram.net_input`` order; the layer engine's ``inp``).
    eps : In(stream.Signature({"code": signed(eps_bits), "last": 1}))
        Per row ``dim`` ε̂ codes, pixel 0 first (the layer engine's ``out``; ``last`` unused).
        Taken only after the row's last ``net_in`` beat.
    pix : Out(stream.Signature({"pixel": unsigned(8), "last": 1}))
        After the last row, ``dim`` pixels (docs/hardware-mode.md §5), ``last`` on pixel dim−1.
    counters : Out(counters_layout(counter_bits))
        state_reads, state_writes, seq_multiplies, schedule_table_reads, temb_table_reads,
        gaussian_samples, pixels_out (docs/hardware-mode.md §6), from reset or ``clear``.
    clear : In(1)
        Zeroes the counters (wins over a count in the same cycle).
    row : Out(range(table_depth))
        The current row.

    Datapath and timing
    -------------------
    One synchronous-read state memory (``dim`` × 16 bit, one read and one write port), four
    table memories (C1, C2, SG: 16 bit; TS) read together once per row, one time-embedding
    memory. Per image: x_T (``dim`` noise beats, one per cycle, written as ``sat(z << (12 −
    z_frac))``); per row: table read and latch (2 cycles), ``dim + temb_dim`` net-input beats
    (one per cycle when ``net_in.ready``: the read port's output register is the output stage,
    its read enable follows the back-pressure), then ``dim`` ε̂ beats through a 5-stage update
    pipeline with one multiplier per product (C2·E 16u×8s, C1·D 16u×16s, SG·Z 16u×16s: one DSP
    each, registered inputs and outputs) and a final drain; after the last row ``dim`` pixel
    beats. Without stalls a row takes :func:`row_cycles` = 2·dim + temb_dim + 8 (200 cycles for
    dim = temb_dim = 64), an image :func:`image_cycles`, the network's time excluded.

    Back-pressure
    -------------
    ``net_in.valid``/``pix.valid`` are registers and their payloads come from memory output
    registers; neither depends on ``ready``. ``net_in.ready`` or ``pix.ready`` low holds the
    beat and the read port. Gaps on ``eps`` or ``noise`` only stall the update's input; the
    pipeline behind it never stalls. ``eps.ready`` depends on ``noise.valid`` in a noisy row
    (and ``noise.ready`` on ``eps.valid``): both beats are taken in the same cycle.
    """

    def __init__(self, dim: int = 64, temb_dim: int = 64, temb_rows: int = 1000,
                 table_depth: int = 1000, fx_in: int = 5, fe: int = 5,
                 gauss: GaussConfig | None = None, eps_bits: int = 8, in_bits: int = 8,
                 tables=None, temb=None, counter_bits: int = 32):
        gauss = GaussConfig() if gauss is None else gauss
        try:
            check_sequencer_params("Sequencer", dim, temb_dim, temb_rows, table_depth, fx_in,
                                   fe, gauss, eps_bits, in_bits)
            if isinstance(counter_bits, bool) or not isinstance(counter_bits, int) \
                    or not 8 <= counter_bits <= 64:
                raise ValueError(f"Sequencer.counter_bits = {counter_bits!r}: out of range, "
                                 f"allowed integer [8, 64]")
            self.tables_init = None
            if tables is not None:
                self.tables_init = check_tables("Sequencer", tables.c1, tables.c2, tables.sg,
                                                tables.ts, tables.c1_shift, table_depth,
                                                temb_rows)
            self.temb_init = None
            if temb is not None:
                a = np.asarray(temb)
                lo, hi = signed_range(in_bits)
                if a.shape != (temb_rows, temb_dim) or a.dtype.kind not in "iu" \
                        or (a.size and (a.min() < lo or a.max() > hi)):
                    raise ValueError(f"Sequencer.temb: shape {a.shape} dtype {a.dtype}; must be "
                                     f"({temb_rows}, {temb_dim}) integers in [{lo}, {hi}]")
                self.temb_init = a.astype(np.int64).reshape(-1)
        except ValueError:
            self._MustUse__silence = True
            raise
        self.dim, self.temb_dim, self.temb_rows = dim, temb_dim, temb_rows
        self.table_depth, self.fx_in, self.fe = table_depth, fx_in, fe
        self.gauss, self.eps_bits, self.in_bits = gauss, eps_bits, in_bits
        self.counter_bits = counter_bits
        super().__init__({
            "cfg": In(stream.Signature(cfg_layout(temb_rows, temb_dim, table_depth))),
            "start": In(1),
            "steps": In(range(table_depth + 1)),
            "busy": Out(1),
            "done": Out(1),
            "noise": In(stream.Signature(signed(gauss.sample_bits))),
            "net_in": Out(stream.Signature(data.StructLayout({"code": signed(in_bits)}))),
            "eps": In(stream.Signature(data.StructLayout({"code": signed(eps_bits),
                                                          "last": 1}))),
            "pix": Out(stream.Signature(data.StructLayout({"pixel": unsigned(PIXEL_BITS),
                                                           "last": 1}))),
            "counters": Out(counters_layout(counter_bits)),
            "clear": In(1),
            "row": Out(range(max(2, table_depth))),
        })

    def elaborate(self, platform):
        m = Module()
        dim, tdim, depth = self.dim, self.temb_dim, self.table_depth
        zf = self.gauss.frac_bits
        af = acc_frac(zf)
        in_lo, in_hi = signed_range(self.in_bits)

        # ---------------------------------------------------------------------------------------
        # Memories
        ti = self.tables_init
        init = (lambda k: [] if ti is None else [int(v) for v in ti[k]])
        m.submodules.x_mem = x_mem = Memory(shape=signed(X_BITS), depth=dim, init=[])
        x_wr, x_rd = x_mem.write_port(), x_mem.read_port()
        tabs = {}
        for k, (name, shape) in enumerate((("c1", unsigned(COEF_BITS)),
                                           ("c2", unsigned(COEF_BITS)),
                                           ("sg", unsigned(COEF_BITS)),
                                           ("ts", range(max(2, self.temb_rows))))):
            mem = Memory(shape=shape, depth=depth, init=init(k))
            m.submodules[f"{name}_mem"] = mem
            tabs[name] = (mem.write_port(), mem.read_port())
        has_temb = tdim > 0
        if has_temb:
            tinit = [] if self.temb_init is None else [int(v) for v in self.temb_init]
            m.submodules.temb_mem = temb_mem = Memory(shape=signed(self.in_bits),
                                                      depth=self.temb_rows * tdim, init=tinit)
            temb_wr, temb_rd = temb_mem.write_port(), temb_mem.read_port()
        c1_shift = Signal(range(C1_MAX_SHIFT + 1), init=0 if ti is None else ti[4])

        # ---------------------------------------------------------------------------------------
        # Control state (one register per state)
        idle = Signal(init=1)
        st_init, st_row, st_latch, st_emit, st_upd, st_out = (Signal(name=n) for n in (
            "st_init", "st_row", "st_latch", "st_emit", "st_upd", "st_out"))
        done = Signal()
        m.d.comb += [self.busy.eq(~idle), self.done.eq(done)]
        m.d.sync += done.eq(0)

        n_steps = Signal(range(depth + 1))
        row = Signal(range(max(2, depth)))
        last_row = Signal()
        m.d.comb += self.row.eq(row)

        # Latched row coefficients
        c1, c2, sg = (Signal(unsigned(COEF_BITS), name=n) for n in ("c1", "c2", "sg"))
        noisy = Signal()
        temb_base = Signal(range(max(2, self.temb_rows * max(tdim, 1))))

        # Counters
        cnt = {n: Signal(self.counter_bits, name=f"cnt_{n}") for n in COUNTERS}
        inc = {n: Signal(3, name=f"inc_{n}") for n in COUNTERS}
        for n in COUNTERS:
            m.d.comb += getattr(self.counters, n).eq(cnt[n])
            with m.If(self.clear):
                m.d.sync += cnt[n].eq(0)
            with m.Else():
                m.d.sync += cnt[n].eq(cnt[n] + inc[n])

        # ---------------------------------------------------------------------------------------
        # cfg writes (idle only)
        cp = self.cfg.payload
        take_cfg = Signal()
        m.d.comb += [self.cfg.ready.eq(idle), take_cfg.eq(self.cfg.valid & idle)]
        for k, name in enumerate(("c1", "c2", "sg", "ts")):
            wr = tabs[name][0]
            m.d.comb += [wr.addr.eq(cp.addr), wr.data.eq(cp.data),
                         wr.en.eq(take_cfg & (cp.target == k) & (cp.addr < depth))]
        if has_temb:
            m.d.comb += [temb_wr.addr.eq(cp.addr), temb_wr.data.eq(cp.data[:self.in_bits]),
                         temb_wr.en.eq(take_cfg & (cp.target == CFG_TEMB)
                                       & (cp.addr < self.temb_rows * tdim))]
        with m.If(take_cfg & (cp.target == CFG_C1_SHIFT)):
            m.d.sync += c1_shift.eq(cp.data[:4])

        # ---------------------------------------------------------------------------------------
        # Start
        with m.If(idle & self.start & (self.steps >= 1) & (self.steps <= depth)):
            m.d.sync += [idle.eq(0), st_init.eq(1), n_steps.eq(self.steps), row.eq(0),
                         last_row.eq(self.steps == 1)]

        # ---------------------------------------------------------------------------------------
        # x_T: dim noise beats -> X
        j_init = Signal(range(dim + 1))
        z = self.noise.payload
        if zf <= X_FRAC:
            xt = z << (X_FRAC - zf)
        else:
            xt = (z + (1 << (zf - X_FRAC - 1))) >> (zf - X_FRAC)
        xt_sat = Mux(xt > X_MAX, X_MAX, Mux(xt < X_MIN, X_MIN, xt))

        # The update pipeline's write (declared here: the write port is shared with x_T)
        v = [Signal(name=f"u_v{k}") for k in range(UPDATE_PIPE_STAGES + 1)]
        jp = [Signal(range(max(2, dim)), name=f"u_j{k}") for k in range(UPDATE_PIPE_STAGES + 1)]
        xn = Signal(signed(X_BITS))

        take_init = Signal()
        m.d.comb += take_init.eq(st_init & self.noise.valid)
        with m.If(take_init):
            m.d.comb += [x_wr.addr.eq(j_init), x_wr.data.eq(xt_sat), x_wr.en.eq(1),
                         inc["gaussian_samples"].eq(1), inc["state_writes"].eq(1)]
            m.d.sync += j_init.eq(j_init + 1)
            with m.If(j_init == dim - 1):
                m.d.sync += [j_init.eq(0), st_init.eq(0), st_row.eq(1)]
        with m.Else():
            m.d.comb += [x_wr.addr.eq(jp[5]), x_wr.data.eq(xn), x_wr.en.eq(v[5])]
            m.d.comb += inc["state_writes"].eq(v[5])

        # ---------------------------------------------------------------------------------------
        # Row: read and latch the table row
        for name in ("c1", "c2", "sg", "ts"):
            m.d.comb += tabs[name][1].addr.eq(row)
        with m.If(st_row):
            m.d.sync += [st_row.eq(0), st_latch.eq(1)]
        with m.If(st_latch):
            ts_rd = tabs["ts"][1].data
            m.d.sync += [st_latch.eq(0), st_emit.eq(1),
                         c1.eq(tabs["c1"][1].data), c2.eq(tabs["c2"][1].data),
                         sg.eq(tabs["sg"][1].data), noisy.eq(tabs["sg"][1].data != 0),
                         temb_base.eq(ts_rd * tdim)]
            m.d.comb += inc["schedule_table_reads"].eq(3)

        # ---------------------------------------------------------------------------------------
        # Output stage shared by net_in (EMIT) and pix (OUT): the read ports' output registers
        # hold the beat; `o_valid` / `p_valid` are registers.
        o_valid, o_src, p_valid, p_last = Signal(), Signal(), Signal(), Signal()
        e_x = Signal(range(dim + 1))          # pixel codes issued
        e_k = Signal(range(tdim + 1))         # time codes issued
        e_taddr = Signal.like(temb_base)
        adv_e = Signal()
        adv_p = Signal()
        p_i = Signal(range(dim + 1))

        xv = x_rd.data
        sh_in = X_FRAC - self.fx_in
        xr = (xv + (1 << (sh_in - 1))) >> sh_in if sh_in > 0 else xv
        xcode = Mux(xr > in_hi, in_hi, Mux(xr < in_lo, in_lo, xr))
        m.d.comb += [self.net_in.valid.eq(o_valid),
                     adv_e.eq(~o_valid | self.net_in.ready)]
        if has_temb:
            m.d.comb += self.net_in.payload.code.eq(Mux(o_src, temb_rd.data, xcode))
        else:
            m.d.comb += self.net_in.payload.code.eq(xcode)
        y = xv + (1 << X_FRAC)
        pv = ((y << 8) - y + (1 << X_FRAC)) >> (X_FRAC + 1)
        m.d.comb += [self.pix.valid.eq(p_valid), self.pix.payload.last.eq(p_last),
                     self.pix.payload.pixel.eq(Mux(pv > PIXEL_MAX, PIXEL_MAX,
                                                   Mux(pv < 0, 0, pv))),
                     adv_p.eq(~p_valid | self.pix.ready)]

        # Read-port control: x_rd is used by EMIT, UPDATE and OUT.
        u_take = Signal()
        u_cnt = Signal(range(dim + 1))
        with m.If(st_emit):
            m.d.comb += [x_rd.addr.eq(e_x), x_rd.en.eq(adv_e)]
        with m.Elif(st_out):
            m.d.comb += [x_rd.addr.eq(p_i), x_rd.en.eq(adv_p)]
        with m.Else():
            m.d.comb += [x_rd.addr.eq(u_cnt), x_rd.en.eq(1)]
        if has_temb:
            m.d.comb += [temb_rd.addr.eq(e_taddr), temb_rd.en.eq(~st_emit | adv_e)]

        # EMIT: dim pixel codes, then temb_dim time codes; leaves when the last beat is taken.
        with m.If(st_emit & adv_e):
            with m.If(e_x < dim):
                m.d.sync += [o_valid.eq(1), o_src.eq(0), e_x.eq(e_x + 1)]
                m.d.comb += inc["state_reads"].eq(1)
                if has_temb:
                    m.d.sync += e_taddr.eq(temb_base)
            with m.Elif(e_k < tdim):
                m.d.sync += [o_valid.eq(1), o_src.eq(1), e_k.eq(e_k + 1),
                             e_taddr.eq(e_taddr + 1)]
                m.d.comb += inc["temb_table_reads"].eq(1)
            with m.Else():
                m.d.sync += [o_valid.eq(0), e_x.eq(0), e_k.eq(0), st_emit.eq(0), st_upd.eq(1)]

        # OUT: dim pixels; back to idle when the last one is taken.
        with m.If(self.pix.valid & self.pix.ready):
            m.d.comb += inc["pixels_out"].eq(1)
        with m.If(st_out & adv_p):
            with m.If(p_i < dim):
                m.d.sync += [p_valid.eq(1), p_last.eq(p_i == dim - 1), p_i.eq(p_i + 1)]
                m.d.comb += inc["state_reads"].eq(1)
            with m.Else():
                m.d.sync += [p_valid.eq(0), p_i.eq(0), st_out.eq(0), idle.eq(1), done.eq(1)]

        # ---------------------------------------------------------------------------------------
        # UPDATE: dim ε̂ beats (with noise iff SG != 0) through the pipeline
        want = st_upd & (u_cnt < dim)
        m.d.comb += [
            self.eps.ready.eq(want & (~noisy | self.noise.valid)),
            self.noise.ready.eq(st_init | (want & noisy & self.eps.valid)),
            u_take.eq(want & self.eps.valid & (~noisy | self.noise.valid)),
        ]
        with m.If(u_take & noisy):
            m.d.comb += inc["gaussian_samples"].eq(1)
        e0 = Signal(signed(self.eps_bits))
        z0 = Signal(signed(self.gauss.sample_bits))
        m.d.sync += [v[1].eq(u_take), jp[1].eq(u_cnt)]
        with m.If(u_take):
            m.d.sync += [e0.eq(self.eps.payload.code), z0.eq(self.noise.payload),
                         u_cnt.eq(u_cnt + 1)]
            m.d.comb += [inc["state_reads"].eq(1),
                         inc["seq_multiplies"].eq(Mux(noisy, 3, 2))]
        # stage 1 -> 2: the state word arrives; C2·E and SG·Z
        p1 = Signal(signed(COEF_BITS + self.eps_bits + 1))
        p3 = Signal(signed(COEF_BITS + self.gauss.sample_bits + 1))
        x2 = Signal(signed(X_BITS))
        m.d.sync += [v[2].eq(v[1]), jp[2].eq(jp[1]), x2.eq(x_rd.data),
                     p1.eq(c2 * e0), p3.eq(sg * z0)]
        # stage 2 -> 3: Q = round_shift(p1, 16 + fe - 12); D = sat(X - Q)
        sq = C2_FRAC + self.fe - X_FRAC
        q = (p1 + (1 << (sq - 1))) >> sq if sq > 0 else p1
        dd = x2 - q
        d3 = Signal(signed(X_BITS))
        p3_3 = Signal.like(p3)
        m.d.sync += [v[3].eq(v[2]), jp[3].eq(jp[2]), p3_3.eq(p3),
                     d3.eq(Mux(dd > X_MAX, X_MAX, Mux(dd < X_MIN, X_MIN, dd)))]
        # stage 3 -> 4: C1·D
        p2 = Signal(signed(COEF_BITS + X_BITS + 1))
        p3_4 = Signal.like(p3)
        m.d.sync += [v[4].eq(v[3]), jp[4].eq(jp[3]), p3_4.eq(p3_3), p2.eq(c1 * d3)]
        # stage 4 -> 5: A = (p2 << (af - 12 - c1_shift)) + (p3 << (af - 16 - zf)) (the noise
        # term is 0 when SG = 0), X' = sat(round_shift(A, af - 12))
        k1 = Signal(range(af - X_FRAC + 1))
        m.d.comb += k1.eq(af - X_FRAC - c1_shift)
        acc = (p2 << k1) + (p3_4 << (af - SIGMA_FRAC - zf))
        sa = af - X_FRAC
        xa = (acc + (1 << (sa - 1))) >> sa
        m.d.sync += [v[5].eq(v[4]), jp[5].eq(jp[4]),
                     xn.eq(Mux(xa > X_MAX, X_MAX, Mux(xa < X_MIN, X_MIN, xa)))]
        # Leave when every beat is in and the last word is in stage 5 (written in this cycle;
        # the next read of X comes at least one cycle later).
        busy_pipe = v[1] | v[2] | v[3] | v[4]
        with m.If(st_upd & (u_cnt == dim) & ~busy_pipe):
            m.d.sync += [st_upd.eq(0), u_cnt.eq(0)]
            with m.If(last_row):
                m.d.sync += st_out.eq(1)
            with m.Else():
                m.d.sync += [st_row.eq(1), row.eq(row + 1),
                             last_row.eq(row + 2 == n_steps)]
        return m
