"""Layer engine: one crossbar tile time-multiplexed over its slots runs a small MLP.

Contract: ``docs/crossbar.md`` §4. Parameters, the configuration-port encoding and the integer
helpers: ``model/blocks/crossbar_config`` (:class:`EngineConfig`, :func:`layer_fields`,
:func:`pack_layer`); bit-exact twin: ``model.blocks.layer_engine.LayerEngine``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.crossbar import CrossbarTile, input_shape, prog_layout
from model.blocks.crossbar_config import (ACT_LUT, ACT_RELU, CFG_BIAS, CFG_LAYER, CFG_LUT,
                                          EngineConfig, cfg_addr_bits, cfg_data_bits,
                                          layer_fields)

#: Stages of the output pipeline behind the collector (sum and bias read, bias register, bias
#: add, shift and clip flags, saturate/activate, LUT read, LUT result register).
OUT_PIPE_STAGES = 7

#: Cycles a layer spends outside its MVMs with ``out`` always ready (see ``LayerEngine``):
#: descriptor fetch and latch (2), feeder's first read (1), output pipeline (7), end of layer (1).
LAYER_OVERHEAD_CYCLES = 4 + OUT_PIPE_STAGES


def inp_layout(cfg: EngineConfig) -> data.StructLayout:
    """Input beat of the engine: ``code`` (a DAC code of layer 0's input)."""
    return data.StructLayout({"code": input_shape(cfg.tile)})


def out_layout(cfg: EngineConfig) -> data.StructLayout:
    """Output beat of the engine: ``code`` (a DAC code of the last layer), ``last``."""
    return data.StructLayout({"code": input_shape(cfg.tile), "last": 1})


def cfg_layout(cfg: EngineConfig) -> data.StructLayout:
    """Configuration write: ``target`` (CFG_BIAS / CFG_LUT / CFG_LAYER), ``addr``, ``data``."""
    return data.StructLayout({"target": 2, "addr": cfg_addr_bits(cfg),
                              "data": cfg_data_bits(cfg)})


def desc_layout(cfg: EngineConfig) -> data.StructLayout:
    """A packed layer descriptor: the fields of :func:`layer_fields`, LSB first."""
    return data.StructLayout({name: unsigned(w) for name, w in layer_fields(cfg)})


def layer_cycles(cfg: EngineConfig, desc) -> int:
    """Cycles of one layer with ``out`` always ready: ``CB·RB·mvm_cycles + 11``.

    Counted from the cycle the engine starts fetching the layer's descriptor to the cycle it
    starts fetching the next one (or, for the last layer, goes idle).
    """
    t = cfg.tile
    return desc.blocks(t) * t.mvm_cycles() + LAYER_OVERHEAD_CYCLES


def run_cycles(cfg: EngineConfig, program) -> int:
    """Cycles of one run with ``inp`` offered every cycle and ``out`` always ready, from the
    cycle the first input beat is taken to the cycle ``busy`` is low again (exclusive):
    ``in_dim_0 + sum of layer_cycles``."""
    program = list(program)
    return program[0].in_dim + sum(layer_cycles(cfg, d) for d in program)


class LayerEngine(wiring.Component):
    """One :class:`hw.crossbar.CrossbarTile` time-multiplexed over the layers of a small MLP.

    Parameters
    ----------
    cfg : EngineConfig
        The tile (R x C, P lanes, ``slots``), ``max_dim``, ``max_layers``, ``bias_bits``,
        ``bias_entries``.

    Attributes
    ----------
    prog : In(stream.Signature(hw.crossbar.prog_layout(cfg.tile)))
        Weight words, passed to the tile. Ready only while ``busy`` is low.
    cfg : In(stream.Signature(cfg_layout(cfg)))
        ``target`` 0: bias ``addr`` <- ``data[:bias_bits]`` (signed); 1: LUT entry ``addr`` <-
        ``data[:input_bits]``; 2: descriptor ``addr`` <- ``data`` (:func:`pack_layer`). Ready
        only while ``busy`` is low; an address past a memory's depth (or target 3) is ignored.
        A write offered in an idle cycle wins over the first input beat (``inp.ready`` is low
        in that cycle), so a run always sees every write offered before it starts.
    n_layers : In(range(max_layers + 1))
        Layers of the next run, sampled with its first input beat (0 acts as 1).
    inp : In(stream.Signature(inp_layout(cfg)))
        ``in_dim`` of descriptor 0 beats per run (element 0 first), written into activation
        buffer A. Ready while idle (except as above, and in the first cycle after reset) and
        until the run's inputs are in; never during the computation.
    out : Out(stream.Signature(out_layout(cfg)))
        ``out_dim`` of the last layer beats per run, element 0 first, ``last`` on the final one.
        ``out.valid`` and ``out.payload`` are registers; they never depend on
        ``out.ready``.
    busy : Out(1)
        High from the cycle after the first input beat is taken; low again 2 cycles after the
        last output beat is taken (later if the tile still sends padded columns past
        ``out_dim``: at most one MVM).

    Datapath
    --------
    For each layer, for each column block cb, for each row block rb, a feeder sends R codes
    (elements ``rb·R ...`` of the source activation buffer, zero past ``in_dim``) with slot
    ``slot_base + cb·RB + rb`` and the layer's ``adc_shift``; a collector adds the C returned
    ADC codes into C per-column sums (``sum_bits`` + 1 wide, a small memory read one beat
    ahead; the first row block's sum starts at the layer's rounding offset 2**(out_shift-1)).
    On the last row block each sum for an output j < ``out_dim`` goes through a seven-stage
    pipeline (beat and partial sum, their sum, bias read; bias register; ``z = s + bias``;
    ``z >> out_shift``, which with the offset is ``round_shift``, and the clip flags; saturation
    to the DAC range, relu; LUT read; activation select) into the other ping-pong buffer, or,
    in the last layer, onto ``out``. Columns past ``out_dim`` are discarded. Every block-RAM
    read goes straight into a register, and every memory address and handshake decision comes
    from registers (timing closure on the FPGA targets, see ``make synth DESIGN=crossbar``).

    Latency and throughput (``inp`` offered every cycle, ``out`` always ready)
    -------------------------------------------------------------------------
    One run takes :func:`run_cycles` = ``in_dim_0 + Σ_layers (CB·RB·mvm_cycles + 11)`` cycles,
    ``mvm_cycles`` (``TileConfig.mvm_cycles()``) being the tile's: the feeder keeps the tile's
    input busy back to back, so a layer costs its MVMs plus a fixed 11 cycles (descriptor fetch
    and latch 2, the feeder's first read 1, output pipeline 7, end-of-layer decision 1). In the
    last layer each output beat is offered 7 cycles after the tile's column that completes it
    is taken (the last row block's), so outputs come at the tile's output rate. The next run's
    first input beat can be taken in the cycle ``busy`` falls.

    Back-pressure
    -------------
    ``out.ready`` low with a beat pending stalls the output pipeline, which stalls the tile's
    output (its ``out.ready``) and so the tile and the feeder; nothing is dropped, repeated or
    reordered. Inner layers never wait on ``out``. Gaps on ``inp`` only stretch the load phase.
    """

    def __init__(self, cfg: EngineConfig):
        if not isinstance(cfg, EngineConfig):
            self._MustUse__silence = True
            raise ValueError(f"LayerEngine.cfg = {cfg!r}: must be an EngineConfig "
                             f"(model.blocks.crossbar_config.EngineConfig)")
        self.config = cfg
        t = cfg.tile
        self.desc_layout = desc_layout(cfg)
        if self.desc_layout.size > cfg_data_bits(cfg):      # guaranteed by cfg_data_bits
            self._MustUse__silence = True
            raise ValueError(f"LayerEngine: descriptor of {self.desc_layout.size} bits does not "
                             f"fit cfg data of {cfg_data_bits(cfg)} bits")
        self.sum_bits = cfg.sum_bits
        super().__init__({
            "prog": In(stream.Signature(prog_layout(t))),
            "cfg": In(stream.Signature(cfg_layout(cfg))),
            "n_layers": In(range(cfg.max_layers + 1)),
            "inp": In(stream.Signature(inp_layout(cfg))),
            "out": Out(stream.Signature(out_layout(cfg))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        t = cfg.tile
        R, C = t.rows, t.cols
        ib = t.input_bits
        in_lo, in_hi = t.input_range
        code_shape = input_shape(t)
        W = self.sum_bits

        m.submodules.tile = tile = CrossbarTile(t)

        # ---------------------------------------------------------------------------------------
        # Memories. Bias, LUT and descriptor table are written by the cfg port while idle and
        # read with one cycle of latency (block RAM). The LUT starts as the identity table and
        # the biases at 0, as in the twin. The bias and LUT memories get one address for both
        # ports (the cfg address while idle), so that they can be one read/write port of a
        # block RAM, whose own read-before-write mode gives the read semantics without soft
        # collision logic behind the RAM's output; their read ports have no enable (it would be
        # soft logic too): while the output pipeline stalls, the address of the entry in the
        # stage that holds the RAM's data is presented again.
        m.submodules.bias_mem = bias_mem = Memory(shape=signed(cfg.bias_bits),
                                                  depth=cfg.bias_entries, init=[])
        m.submodules.lut_mem = lut_mem = Memory(
            shape=code_shape, depth=cfg.lut_entries,
            init=[i + in_lo for i in range(cfg.lut_entries)])
        m.submodules.desc_mem = desc_mem = Memory(shape=self.desc_layout,
                                                  depth=cfg.max_layers, init=[])
        bias_wr, lut_wr, desc_wr = (bias_mem.write_port(), lut_mem.write_port(),
                                    desc_mem.write_port())
        bias_rd, lut_rd = bias_mem.read_port(), lut_mem.read_port()
        # Transparent: a descriptor written in cycle t is read back in cycle t+1 (the idle
        # engine reads descriptor 0's in_dim straight from this port when a run starts).
        desc_rd = desc_mem.read_port(transparent_for=[desc_wr])

        # Ping-pong activation buffers, max_dim codes each. A holds the run's input (layer 0
        # reads A, layer 1 reads B, ...). One sync read port each (the feeder), one write port
        # (the input stream or the output pipeline).
        m.submodules.buf_a = buf_a = Memory(shape=code_shape, depth=cfg.max_dim, init=[])
        m.submodules.buf_b = buf_b = Memory(shape=code_shape, depth=cfg.max_dim, init=[])
        a_wr, b_wr = buf_a.write_port(), buf_b.write_port()
        a_rd, b_rd = buf_a.read_port(), buf_b.read_port()

        # Per-column partial sums of the current column block: C entries (sum_bits + 1 wide: a
        # sum carries the layer's rounding offset, see below). Synchronous read (block RAM on
        # the iCE40, which has no LUT RAM) one beat ahead: when a tile beat (column c) is taken,
        # the port reads column c + 1 (mod C) from a registered address, so the next beat finds
        # its partial sum on the port (held there, read enable low, until it comes). The beat
        # and that sum go into stage-1 registers; the sum is added and written back in the next
        # cycle. A column is read again C - 1 beats after it was taken: with C = 2 that can be
        # the cycle of its write (a transparent port); with C = 1 there is no memory, the
        # previous sum is forwarded.
        if C > 1:
            m.submodules.acc_mem = acc_mem = Memory(shape=signed(W + 1), depth=C, init=[])
            acc_wr = acc_mem.write_port()
            acc_rd = acc_mem.read_port(transparent_for=[acc_wr] if C == 2 else [])

        # ---------------------------------------------------------------------------------------
        # Sequencer state, one-hot (idle, load, fetch, latch, run): each state is a register of
        # its own, so that the handshakes that depend on it (prog/cfg/inp ready, the tile's
        # input) see a flip-flop, not a decoder.
        idle = Signal(init=1)
        st_load, st_fetch, st_latch, st_run = Signal(), Signal(), Signal(), Signal()
        busy = Signal()
        m.d.comb += [busy.eq(~idle), self.busy.eq(busy)]

        layer = Signal(range(cfg.max_layers + 1))      # index of the current layer
        n_run = Signal(range(cfg.max_layers + 1))      # layers of this run (>= 1)
        last_layer = Signal()                          # layer == n_run - 1 (a register)
        src = Signal()                                 # 0: layer reads A (writes B); 1: reverse
        desc = Signal(self.desc_layout)                # current layer's descriptor
        load_last = Signal(range(cfg.max_dim + 1))     # in_dim of layer 0, minus 1 (load phase)
        load_i = Signal(range(cfg.max_dim + 1))

        # ---------------------------------------------------------------------------------------
        # Programming and configuration ports: only while idle. The tile is idle whenever the
        # engine is, so its prog.ready is high then.
        m.d.comb += [
            tile.prog.valid.eq(self.prog.valid & ~busy),
            tile.prog.payload.addr.eq(self.prog.payload.addr),
            tile.prog.payload.data.eq(self.prog.payload.data),
            self.prog.ready.eq(tile.prog.ready & ~busy),
        ]
        cfg_take = Signal()
        cp = self.cfg.payload
        m.d.comb += [
            self.cfg.ready.eq(~busy),
            cfg_take.eq(self.cfg.valid & ~busy),
            bias_wr.data.eq(cp.data[:cfg.bias_bits]), lut_wr.data.eq(cp.data[:ib]),
            desc_wr.addr.eq(cp.addr), desc_wr.data.eq(cp.data[:self.desc_layout.size]),
            # Addresses past a memory's depth are ignored (not wrapped onto a valid entry).
            bias_wr.en.eq(cfg_take & (cp.target == CFG_BIAS) & (cp.addr < cfg.bias_entries)),
            lut_wr.en.eq(cfg_take & (cp.target == CFG_LUT) & (cp.addr < cfg.lut_entries)),
            desc_wr.en.eq(cfg_take & (cp.target == CFG_LAYER) & (cp.addr < cfg.max_layers)),
        ]

        # Descriptor read: descriptor 0 while idle or loading (and in the cycle a run ends, so
        # that the first idle cycle already shows it), the current layer otherwise. `rd0_ok`:
        # the data on the port was addressed at descriptor 0 (only then may a run start; after
        # reset that costs one cycle).
        run_end = Signal()
        rd0_ok = Signal()
        m.d.comb += desc_rd.addr.eq(Mux(idle | st_load | run_end, 0, layer))
        m.d.sync += rd0_ok.eq(desc_rd.addr == 0)
        desc0 = data.View(self.desc_layout, desc_rd.data)

        # ---------------------------------------------------------------------------------------
        # Input stream -> buffer A.
        take_in = Signal()
        m.d.comb += [
            # A cfg write offered while idle goes first, so the run sees it.
            self.inp.ready.eq((idle & rd0_ok & ~self.cfg.valid) | st_load),
            take_in.eq(self.inp.valid & self.inp.ready),
        ]

        # ---------------------------------------------------------------------------------------
        # Feeder: reads the source buffer (sync read; the read port's output register is the
        # feeder's output stage) and offers R beats per MVM to the tile, column block outer, row
        # block inner, so the slot simply counts up from slot_base. The feeder advances on a
        # register, `t_ready`, that follows the tile's documented input rule (docs/crossbar.md
        # §3: during a run the tile's prog port is idle, so inp.ready is high from the cycle
        # after a vector's last output beat is taken until its R-th input beat is taken) instead
        # of on the tile's combinational inp.ready, which keeps the tile's handshake logic out
        # of the feeder's counters. The two are equal whenever the feeder offers a beat.
        f_active = Signal()
        f_valid = Signal()
        f_pad = Signal()
        f_r = Signal(range(R))
        f_rlast = Signal()                             # f_r == R - 1
        f_row = Signal(range(cfg.max_dim + R + 1))     # rb·R
        f_col = Signal(range(cfg.max_dim + C + 1))     # cb·C
        # Registered decisions (no adder or comparator in front of the read address and the
        # advance logic): f_addr = f_row + f_r, f_lastrow = (f_row + R >= in_dim),
        # f_lastcol = (f_col + C >= out_dim).
        f_addr = Signal(range(cfg.max_dim + R + 1))
        f_lastrow = Signal()
        f_lastcol = Signal()
        f_slot = Signal(range(t.slots + 1))
        f_slot_o = Signal(range(t.slots + 1))
        f_adv = Signal()
        f_last = Signal()                              # the offered beat is a vector's R-th
        t_ready = Signal(init=1)
        m.d.comb += [
            f_adv.eq(~f_valid | t_ready),
            a_rd.addr.eq(f_addr), b_rd.addr.eq(f_addr),
            a_rd.en.eq(f_adv), b_rd.en.eq(f_adv),
            tile.inp.valid.eq(f_valid),
            tile.inp.payload.code.eq(Mux(f_pad, 0, Mux(src, b_rd.data, a_rd.data))),
            tile.inp.payload.slot.eq(f_slot_o),
            tile.inp.payload.adc_shift.eq(desc.adc_shift),
        ]
        with m.If(f_valid & t_ready & f_last):
            m.d.sync += t_ready.eq(0)
        with m.If(tile.out.valid & tile.out.ready & tile.out.payload.last):
            m.d.sync += t_ready.eq(1)
        with m.If(f_adv):
            m.d.sync += f_valid.eq(f_active)
            with m.If(f_active):
                m.d.sync += [f_pad.eq(f_addr >= desc.in_dim), f_slot_o.eq(f_slot),
                             f_last.eq(f_rlast)]
                with m.If(f_rlast):
                    m.d.sync += [f_r.eq(0), f_rlast.eq(R == 1), f_slot.eq(f_slot + 1)]
                    with m.If(f_lastrow):
                        m.d.sync += [f_row.eq(0), f_addr.eq(0),
                                     f_lastrow.eq(R >= desc.in_dim)]
                        with m.If(f_lastcol):
                            m.d.sync += f_active.eq(0)
                        with m.Else():
                            m.d.sync += [f_col.eq(f_col + C),
                                         f_lastcol.eq(f_col + 2 * C >= desc.out_dim)]
                    with m.Else():
                        m.d.sync += [f_row.eq(f_row + R), f_addr.eq(f_addr + 1),
                                     f_lastrow.eq(f_row + 2 * R >= desc.in_dim)]
                with m.Else():
                    m.d.sync += [f_r.eq(f_r + 1), f_rlast.eq(f_r == R - 2), f_addr.eq(f_addr + 1)]

        # ---------------------------------------------------------------------------------------
        # Output pipeline, one global advance: it moves whenever its last stage is empty or
        # being taken (inner layers always write, so only the last layer's `out` can stall it).
        # Sums carry the rounding offset 2**(out_shift-1) from the first row block on (no adder
        # in the rounding step), so they are one bit wider than sum_bits.
        SW = W + 1
        D = OUT_PIPE_STAGES
        v = [Signal(name=f"v{k}") for k in range(D + 1)]          # v[0] unused
        jj = [Signal(range(cfg.max_dim + C), name=f"j{k}") for k in range(D + 1)]
        s2 = Signal(signed(SW))
        # stage 1: the taken beat, its column, and its partial sum read from acc_mem
        q_code = Signal(tile.out.payload.code.shape())
        q_take, q_first, q_wen = Signal(), Signal(), Signal()
        q_col = Signal(range(C))
        q_acc = Signal(signed(SW))
        b2 = Signal(signed(cfg.bias_bits))
        z3 = Signal(signed(SW))
        r4 = Signal(ib)                                    # (z >> out_shift)[:ib]
        over4, under4, neg4 = Signal(), Signal(), Signal()
        q5 = Signal(code_shape)
        idx5 = Signal(ib)
        q6 = Signal(code_shape)
        y7 = Signal(code_shape)
        adv = Signal()
        m.d.comb += adv.eq(~(v[D] & last_layer) | self.out.ready)
        # 2**(out_shift-1) of the current layer (0 for out_shift 0) and its clipping mask (see
        # stage 4), from the descriptor register one cycle after it is latched (they are first
        # used an MVM later), so the decoders are not behind the descriptor memory's read.
        half_o = Signal(SW)
        clip_o = Signal(SW)
        m.d.sync += [
            half_o.eq((Const(1, SW + 1) << desc.out_shift)[1:]),
            clip_o.eq((Const((1 << SW) - 1, SW)
                       << (desc.out_shift + (ib - 1 if t.input_signed else ib)))[:SW]),
        ]

        # ---------------------------------------------------------------------------------------
        # Collector: C beats per MVM from the tile, summed over the row blocks. Its decisions
        # are registers (first_rb = (c_row == 0), last_rb = (c_row + R >= in_dim), last_cb =
        # (c_col + C >= out_dim), j0 = c_col + c_c, and the bias address b_addr = bias_base +
        # j0 with b_col = bias_base + c_col), updated as the counters move.
        c_active = Signal()
        c_c = Signal(range(C))
        c_nxt = Signal(range(C))                       # (c_c + 1) mod C
        c_row = Signal(range(cfg.max_dim + R + 1))
        c_col = Signal(range(cfg.max_dim + C + 1))
        c_take = Signal()
        first_rb, last_rb, last_cb = Signal(), Signal(), Signal()
        j0 = Signal(range(cfg.max_dim + 2 * C))
        b_addr = Signal(range(cfg.bias_entries + cfg.max_dim + 2 * C))
        b_col = Signal(range(cfg.bias_entries + cfg.max_dim + 2 * C))
        s1 = Signal(signed(SW))
        m.d.comb += [
            tile.out.ready.eq(adv),
            c_take.eq(tile.out.valid & adv & c_active),
        ]
        # Bias of output j0, read while the beat moves into stage 1.
        b_addr1 = Signal.like(b_addr)                  # the address stage 1's data came from
        with m.If(adv):
            m.d.sync += b_addr1.eq(b_addr)
        bias_addr = Mux(idle, self.cfg.payload.addr, Mux(adv, b_addr, b_addr1))
        m.d.comb += [bias_rd.addr.eq(bias_addr), bias_wr.addr.eq(bias_addr)]
        if C > 1:
            prev = q_acc
            m.d.comb += [
                acc_rd.addr.eq(c_nxt), acc_rd.en.eq(c_take),
                acc_wr.addr.eq(q_col), acc_wr.data.eq(s1), acc_wr.en.eq(q_wen),
            ]
        else:
            prev = Signal(signed(SW))           # the previous beat's sum (the only column)
            with m.If(adv & q_take):
                m.d.sync += prev.eq(s1)
        m.d.comb += s1.eq(Mux(q_first, half_o.as_signed(), prev) + q_code)
        with m.If(adv):
            m.d.sync += [q_code.eq(tile.out.payload.code), q_first.eq(first_rb), q_take.eq(c_take),
                         q_wen.eq(c_take & ~last_rb), q_col.eq(c_c)]
            if C > 1:
                m.d.sync += q_acc.eq(acc_rd.data)
        with m.If(c_take):
            m.d.sync += c_nxt.eq(Mux(c_nxt == C - 1, 0, c_nxt + 1))
            with m.If(c_c == C - 1):
                m.d.sync += c_c.eq(0)
                with m.If(last_rb):
                    m.d.sync += [c_row.eq(0), first_rb.eq(1), last_rb.eq(R >= desc.in_dim)]
                    with m.If(last_cb):
                        m.d.sync += c_active.eq(0)
                    with m.Else():
                        m.d.sync += [c_col.eq(c_col + C), j0.eq(j0 + 1),
                                     b_col.eq(b_col + C), b_addr.eq(b_addr + 1),
                                     last_cb.eq(c_col + 2 * C >= desc.out_dim)]
                with m.Else():
                    m.d.sync += [c_row.eq(c_row + R), first_rb.eq(0), j0.eq(c_col),
                                 b_addr.eq(b_col), last_rb.eq(c_row + 2 * R >= desc.in_dim)]
            with m.Else():
                m.d.sync += [c_c.eq(c_c + 1), j0.eq(j0 + 1), b_addr.eq(b_addr + 1)]

        # Stage 1: the beat and its partial sum; s1 = their sum (+ 2**(sh-1) on the first row
        # block), written back; the bias read. Stage 2: the bias from the block RAM into
        # a register (no logic behind a block RAM's output: an ECP5 DP16KD's clock-to-output is
        # ~5.8 ns). Stage 3: z = s + bias. Stage 4: z >> out_shift (arithmetic, so with the
        # offset that is round_shift) and, beside it, whether that clips at either rail. Stage
        # 5: q = sat_in(...), relu, and the LUT index, into registers. Stage 6: the LUT read
        # (from a registered address). Stage 7: y = LUT[q - in_min] or q.
        #
        # Clipping without the shifter's result (as the tile's ADC step): with k = ib-1+sh
        # (signed codes) or ib+sh (unsigned), (z >> sh) > in_max <=> z >= 2**k <=> z >= 0 with
        # a bit at or above k set; (z >> sh) < in_min <=> z < -2**k (signed: z < 0 with a bit
        # at or above k clear) or z < 0 (unsigned). `clip_o` holds those bit positions. relu:
        # (z >> sh) < 0 <=> z < 0.
        sh = desc.out_shift
        neg = z3[SW - 1]
        zu = z3.as_unsigned()
        over = ~neg & (zu & clip_o).any()
        under = (neg & (~zu & clip_o).any()) if t.input_signed else neg
        q_sat = Signal(code_shape)
        m.d.comb += q_sat.eq(Mux(over4, in_hi, Mux(under4, in_lo, r4)))
        q_act = Mux((desc.act == ACT_RELU) & neg4, 0, q_sat) if t.input_signed else q_sat
        # LUT index q - in_min: for signed codes that is q with its sign bit flipped.
        lut_index = (q_sat.as_unsigned() ^ (1 << (ib - 1))) if t.input_signed else q_sat
        idx6 = Signal(ib)                              # the LUT entry stage 6 reads
        lut_addr = Mux(idle, self.cfg.payload.addr, Mux(adv, idx5, idx6))
        m.d.comb += [lut_rd.addr.eq(lut_addr), lut_wr.addr.eq(lut_addr)]
        with m.If(adv):
            m.d.sync += [v[1].eq(c_take & last_rb & (j0 < desc.out_dim)), jj[1].eq(j0)]
            m.d.sync += [v[k].eq(v[k - 1]) for k in range(2, D + 1)]
            m.d.sync += [jj[k].eq(jj[k - 1]) for k in range(2, D + 1)]
            m.d.sync += [
                s2.eq(s1), b2.eq(bias_rd.data),
                z3.eq(s2 + b2),
                r4.eq((z3 >> sh)[:ib]), over4.eq(over), under4.eq(under), neg4.eq(neg),
                q5.eq(q_act), idx5.eq(lut_index),
                q6.eq(q5), idx6.eq(idx5),
                y7.eq(Mux(desc.act == ACT_LUT, lut_rd.data, q6)),
            ]

        # Last stage -> destination buffer (inner layers) or the output stream (last layer).
        wr_dst = v[D] & ~last_layer
        m.d.comb += [
            self.out.valid.eq(v[D] & last_layer),
            self.out.payload.code.eq(y7),
            self.out.payload.last.eq(jj[D] == desc.out_dim - 1),
            b_wr.addr.eq(jj[D]), b_wr.data.eq(y7), b_wr.en.eq(wr_dst & ~src),
        ]
        with m.If(st_run):
            m.d.comb += [a_wr.addr.eq(jj[D]), a_wr.data.eq(y7), a_wr.en.eq(wr_dst & src)]
        with m.Else():
            # The first beat (taken while idle) goes to entry 0, the others to load_i.
            m.d.comb += [a_wr.addr.eq(Mux(idle, 0, load_i)),
                         a_wr.data.eq(self.inp.payload.code),
                         a_wr.en.eq(take_in)]

        # ---------------------------------------------------------------------------------------
        # Sequencing.
        # A layer ends when the collector has taken the tile's last column and the output
        # pipeline has advanced its depth D since (then it is empty): `drain` counts those
        # advances, also when the last columns were padding (never entered the pipeline), so
        # that a layer always takes the same number of cycles (see layer_cycles()). The feeder
        # is done before the collector is. `drain_z` = (drain == 0), as a register.
        drain = Signal(range(D + 1))
        drain_z = Signal(init=1)
        with m.If(c_take & (c_c == C - 1) & last_rb & last_cb):
            m.d.sync += [drain.eq(D), drain_z.eq(0)]
        with m.Elif(adv & ~drain_z):
            m.d.sync += [drain.eq(drain - 1), drain_z.eq(drain == 1)]
        layer_done = ~c_active & drain_z
        m.d.comb += run_end.eq(st_run & layer_done & last_layer)
        with m.If(idle):
            with m.If(take_in):
                m.d.sync += [
                    n_run.eq(Mux(self.n_layers == 0, 1, self.n_layers)),
                    layer.eq(0), src.eq(0), last_layer.eq(self.n_layers <= 1),
                    load_last.eq(desc0.in_dim - 1), load_i.eq(1),
                    idle.eq(0),
                ]
                # in_dim 1 (or an illegal 0): the first beat is also the last.
                with m.If(desc0.in_dim <= 1):
                    m.d.sync += st_fetch.eq(1)
                with m.Else():
                    m.d.sync += st_load.eq(1)
        with m.If(st_load):
            with m.If(take_in):
                m.d.sync += load_i.eq(load_i + 1)
                with m.If(load_i == load_last):
                    m.d.sync += [st_load.eq(0), st_fetch.eq(1)]
        with m.If(st_fetch):
            # desc_rd.addr = layer this cycle; its data is valid in LATCH.
            m.d.sync += [st_fetch.eq(0), st_latch.eq(1)]
        with m.If(st_latch):
            d = data.View(self.desc_layout, desc_rd.data)
            m.d.sync += [
                desc.eq(desc_rd.data),
                f_active.eq(1), f_r.eq(0), f_rlast.eq(R == 1), f_row.eq(0), f_col.eq(0),
                f_slot.eq(d.slot_base),
                f_addr.eq(0), f_lastrow.eq(R >= d.in_dim), f_lastcol.eq(C >= d.out_dim),
                c_active.eq(1), c_c.eq(0), c_nxt.eq(1 % C), c_row.eq(0), c_col.eq(0), j0.eq(0),
                b_addr.eq(d.bias_base), b_col.eq(d.bias_base),
                first_rb.eq(1), last_rb.eq(R >= d.in_dim), last_cb.eq(C >= d.out_dim),
                st_latch.eq(0), st_run.eq(1),
            ]
        with m.If(st_run & layer_done):
            m.d.sync += st_run.eq(0)
            with m.If(last_layer):
                m.d.sync += idle.eq(1)
            with m.Else():
                m.d.sync += [layer.eq(layer + 1), src.eq(~src), st_fetch.eq(1),
                             last_layer.eq(layer + 2 == n_run)]
        return m


__all__ = ["LayerEngine", "LAYER_OVERHEAD_CYCLES", "cfg_layout", "desc_layout", "inp_layout",
           "layer_cycles", "out_layout", "run_cycles"]
