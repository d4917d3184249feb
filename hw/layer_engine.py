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

#: Stages of the output pipeline behind the collector (sum, bias register, bias add, shift,
#: saturate/activate and LUT read, LUT result register).
OUT_PIPE_STAGES = 6

#: Cycles a layer spends outside its MVMs with ``out`` always ready (see ``LayerEngine``):
#: descriptor fetch and latch (2), feeder's first read (1), output pipeline (6), end of layer (1).
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
    """Cycles of one layer with ``out`` always ready: ``CB·RB·mvm_cycles + 10``.

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
        ``out.valid`` and ``out.payload`` are registers and a LUT read port; they never depend on
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
    ADC codes into C per-column sums (``sum_bits`` wide, a small LUT-RAM with a combinational
    read; the first row block's sum starts at the layer's rounding offset 2**(out_shift-1)).
    On the last row block each sum for an output j < ``out_dim`` goes through a six-stage
    pipeline (sum and bias read; bias register; ``z = s + bias``; ``z >> out_shift``, which with
    the offset is ``round_shift``; saturation to the DAC range, relu and LUT read; activation
    select) into the other ping-pong buffer, or, in the last layer, onto ``out``. Columns past
    ``out_dim`` are discarded. Every block-RAM read goes straight into a register.

    Latency and throughput (``inp`` offered every cycle, ``out`` always ready)
    -------------------------------------------------------------------------
    One run takes :func:`run_cycles` = ``in_dim_0 + Σ_layers (CB·RB·mvm_cycles + 10)`` cycles,
    ``mvm_cycles`` (``TileConfig.mvm_cycles()``) being the tile's: the feeder keeps the tile's
    input busy back to back, so a layer costs its MVMs plus a fixed 10 cycles (descriptor fetch
    and latch 2, the feeder's first read 1, output pipeline 6, end-of-layer decision 1). In the
    last layer each output beat is offered 6 cycles after the tile's column that completes it
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
        # the biases at 0, as in the twin.
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

        # Per-column partial sums of the current column block: C entries, combinational read
        # so that a tile output beat is read, added and written back in its own cycle.
        # (sum_bits + 1 wide: a sum carries the layer's rounding offset, see below.)
        m.submodules.acc_mem = acc_mem = Memory(shape=signed(W + 1), depth=C, init=[])
        acc_wr = acc_mem.write_port()
        acc_rd = acc_mem.read_port(domain="comb")

        # ---------------------------------------------------------------------------------------
        # Sequencer state.
        IDLE, LOAD, FETCH, LATCH, RUN = range(5)
        state = Signal(range(5), init=IDLE)
        busy = Signal()
        m.d.comb += [busy.eq(state != IDLE), self.busy.eq(busy)]

        layer = Signal(range(cfg.max_layers + 1))      # index of the current layer
        n_run = Signal(range(cfg.max_layers + 1))      # layers of this run (>= 1)
        last_layer = Signal()
        m.d.comb += last_layer.eq(layer == n_run - 1)
        src = Signal()                                 # 0: layer reads A (writes B); 1: reverse
        desc = Signal(self.desc_layout)                # current layer's descriptor
        load_n = Signal(range(cfg.max_dim + 1))        # in_dim of layer 0 (load phase)
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
            bias_wr.addr.eq(cp.addr), bias_wr.data.eq(cp.data[:cfg.bias_bits]),
            lut_wr.addr.eq(cp.addr), lut_wr.data.eq(cp.data[:ib]),
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
        m.d.comb += desc_rd.addr.eq(Mux((state == IDLE) | (state == LOAD) | run_end, 0, layer))
        m.d.sync += rd0_ok.eq(desc_rd.addr == 0)
        desc0 = data.View(self.desc_layout, desc_rd.data)

        # ---------------------------------------------------------------------------------------
        # Input stream -> buffer A.
        take_in = Signal()
        m.d.comb += [
            # A cfg write offered while idle goes first, so the run sees it.
            self.inp.ready.eq(((state == IDLE) & rd0_ok & ~self.cfg.valid) | (state == LOAD)),
            take_in.eq(self.inp.valid & self.inp.ready),
        ]

        # ---------------------------------------------------------------------------------------
        # Feeder: reads the source buffer (sync read; the read port's output register is the
        # feeder's output stage) and offers R beats per MVM to the tile, column block outer, row
        # block inner, so the slot simply counts up from slot_base.
        f_active = Signal()
        f_valid = Signal()
        f_pad = Signal()
        f_r = Signal(range(R))
        f_row = Signal(range(cfg.max_dim + R + 1))     # rb·R
        f_col = Signal(range(cfg.max_dim + C + 1))     # cb·C
        f_slot = Signal(range(t.slots + 1))
        f_slot_o = Signal(range(t.slots + 1))
        f_adv = Signal()
        f_addr = Signal(range(cfg.max_dim + R + 1))
        m.d.comb += [
            f_adv.eq(~f_valid | tile.inp.ready),
            f_addr.eq(f_row + f_r),
            a_rd.addr.eq(f_addr), b_rd.addr.eq(f_addr),
            a_rd.en.eq(f_adv), b_rd.en.eq(f_adv),
            tile.inp.valid.eq(f_valid),
            tile.inp.payload.code.eq(Mux(f_pad, 0, Mux(src, b_rd.data, a_rd.data))),
            tile.inp.payload.slot.eq(f_slot_o),
            tile.inp.payload.adc_shift.eq(desc.adc_shift),
        ]
        with m.If(f_adv):
            m.d.sync += f_valid.eq(f_active)
            with m.If(f_active):
                m.d.sync += [f_pad.eq(f_addr >= desc.in_dim), f_slot_o.eq(f_slot)]
                with m.If(f_r == R - 1):
                    m.d.sync += [f_r.eq(0), f_slot.eq(f_slot + 1)]
                    with m.If(f_row + R >= desc.in_dim):
                        m.d.sync += f_row.eq(0)
                        with m.If(f_col + C >= desc.out_dim):
                            m.d.sync += f_active.eq(0)
                        with m.Else():
                            m.d.sync += f_col.eq(f_col + C)
                    with m.Else():
                        m.d.sync += f_row.eq(f_row + R)
                with m.Else():
                    m.d.sync += f_r.eq(f_r + 1)

        # ---------------------------------------------------------------------------------------
        # Output pipeline, one global advance: it moves whenever its last stage is empty or
        # being taken (inner layers always write, so only the last layer's `out` can stall it).
        # Sums carry the rounding offset 2**(out_shift-1) from the first row block on (no adder
        # in the rounding step), so they are one bit wider than sum_bits.
        SW = W + 1
        D = OUT_PIPE_STAGES
        v = [Signal(name=f"v{k}") for k in range(D + 1)]          # v[0] unused
        jj = [Signal(range(cfg.max_dim + C), name=f"j{k}") for k in range(D + 1)]
        s1, s2 = Signal(signed(SW)), Signal(signed(SW))
        b2 = Signal(signed(cfg.bias_bits))
        z3 = Signal(signed(SW))
        r4 = Signal(signed(SW))
        q5 = Signal(code_shape)
        y6 = Signal(code_shape)
        adv = Signal()
        m.d.comb += adv.eq(~(v[D] & last_layer) | self.out.ready)
        # 2**(out_shift-1) of the current layer (0 for out_shift 0), set with the descriptor.
        half_o = Signal(SW)

        # ---------------------------------------------------------------------------------------
        # Collector: C beats per MVM from the tile, summed over the row blocks.
        c_active = Signal()
        c_c = Signal(range(C))
        c_row = Signal(range(cfg.max_dim + R + 1))
        c_col = Signal(range(cfg.max_dim + C + 1))
        c_take = Signal()
        first_rb, last_rb, last_cb = Signal(), Signal(), Signal()
        j0 = Signal(range(cfg.max_dim + 2 * C))
        s0 = Signal(signed(SW))
        m.d.comb += [
            tile.out.ready.eq(adv),
            c_take.eq(tile.out.valid & adv & c_active),
            first_rb.eq(c_row == 0),
            last_rb.eq(c_row + R >= desc.in_dim),
            last_cb.eq(c_col + C >= desc.out_dim),
            j0.eq(c_col + c_c),
            acc_rd.addr.eq(c_c),
            s0.eq(Mux(first_rb, half_o.as_signed(), acc_rd.data) + tile.out.payload.code),
            acc_wr.addr.eq(c_c),
            acc_wr.data.eq(s0),
            acc_wr.en.eq(c_take & ~last_rb),
            # Bias of output j0, read while the sum moves into stage 1.
            bias_rd.addr.eq(desc.bias_base + j0),
            bias_rd.en.eq(adv),
        ]
        with m.If(c_take):
            with m.If(c_c == C - 1):
                m.d.sync += c_c.eq(0)
                with m.If(last_rb):
                    m.d.sync += c_row.eq(0)
                    with m.If(last_cb):
                        m.d.sync += c_active.eq(0)
                    with m.Else():
                        m.d.sync += c_col.eq(c_col + C)
                with m.Else():
                    m.d.sync += c_row.eq(c_row + R)
            with m.Else():
                m.d.sync += c_c.eq(c_c + 1)

        # Stage 1: s1 = s + 2**(sh-1); the bias read. Stage 2: the bias from the block RAM into
        # a register (no logic behind a block RAM's output: an ECP5 DP16KD's clock-to-output is
        # ~5.8 ns). Stage 3: z = s + bias. Stage 4: z >> out_shift (arithmetic, so with the
        # offset that is round_shift). Stage 5: saturation to the DAC range, relu, and the LUT
        # read. Stage 6: y = LUT[q - in_min] or q.
        sh = desc.out_shift
        q_sat = Signal(code_shape)
        m.d.comb += q_sat.eq(Mux(r4 > in_hi, in_hi, Mux(r4 < in_lo, in_lo, r4)))
        q_act = Mux((desc.act == ACT_RELU) & (q_sat < 0), 0, q_sat) if t.input_signed else q_sat
        # LUT index q - in_min: for signed codes that is q with its sign bit flipped.
        lut_index = (q_sat.as_unsigned() ^ (1 << (ib - 1))) if t.input_signed else q_sat
        m.d.comb += [lut_rd.addr.eq(lut_index), lut_rd.en.eq(adv)]
        with m.If(adv):
            m.d.sync += [v[1].eq(c_take & last_rb & (j0 < desc.out_dim)), jj[1].eq(j0)]
            m.d.sync += [v[k].eq(v[k - 1]) for k in range(2, D + 1)]
            m.d.sync += [jj[k].eq(jj[k - 1]) for k in range(2, D + 1)]
            m.d.sync += [
                s1.eq(s0),
                s2.eq(s1), b2.eq(bias_rd.data),
                z3.eq(s2 + b2),
                r4.eq(z3 >> sh),
                q5.eq(q_act),
                y6.eq(Mux(desc.act == ACT_LUT, lut_rd.data, q5)),
            ]

        # Last stage -> destination buffer (inner layers) or the output stream (last layer).
        wr_dst = v[D] & ~last_layer
        m.d.comb += [
            self.out.valid.eq(v[D] & last_layer),
            self.out.payload.code.eq(y6),
            self.out.payload.last.eq(jj[D] == desc.out_dim - 1),
            b_wr.addr.eq(jj[D]), b_wr.data.eq(y6), b_wr.en.eq(wr_dst & ~src),
        ]
        with m.If(state == RUN):
            m.d.comb += [a_wr.addr.eq(jj[D]), a_wr.data.eq(y6), a_wr.en.eq(wr_dst & src)]
        with m.Else():
            # The first beat (taken while idle) goes to entry 0, the others to load_i.
            m.d.comb += [a_wr.addr.eq(Mux(state == IDLE, 0, load_i)),
                         a_wr.data.eq(self.inp.payload.code),
                         a_wr.en.eq(take_in)]

        # ---------------------------------------------------------------------------------------
        # Sequencing.
        # A layer ends when the collector has taken the tile's last column and the pipeline is
        # empty. `drain` holds it for the pipeline's depth after that last column even when
        # the last columns were padding (never entered the pipeline), so that a layer always
        # takes the same number of cycles (see layer_cycles()).
        drain = Signal(range(D + 1))
        with m.If(c_take & (c_c == C - 1) & last_rb & last_cb):
            m.d.sync += drain.eq(D)
        with m.Elif(drain != 0):
            m.d.sync += drain.eq(drain - 1)
        layer_done = (~f_active & ~f_valid & ~c_active & (drain == 0)
                      & ~Cat(*v[1:]).any())
        m.d.comb += run_end.eq((state == RUN) & layer_done & last_layer)
        with m.Switch(state):
            with m.Case(IDLE):
                with m.If(take_in):
                    m.d.sync += [
                        n_run.eq(Mux(self.n_layers == 0, 1, self.n_layers)),
                        layer.eq(0), src.eq(0),
                        load_n.eq(desc0.in_dim), load_i.eq(1),
                    ]
                    # in_dim 1 (or an illegal 0): the first beat is also the last.
                    with m.If(desc0.in_dim <= 1):
                        m.d.sync += state.eq(FETCH)
                    with m.Else():
                        m.d.sync += state.eq(LOAD)
            with m.Case(LOAD):
                with m.If(take_in):
                    m.d.sync += load_i.eq(load_i + 1)
                    with m.If(load_i == load_n - 1):
                        m.d.sync += state.eq(FETCH)
            with m.Case(FETCH):
                # desc_rd.addr = layer this cycle; its data is valid in LATCH.
                m.d.sync += state.eq(LATCH)
            with m.Case(LATCH):
                d = data.View(self.desc_layout, desc_rd.data)
                m.d.sync += [
                    desc.eq(desc_rd.data),
                    half_o.eq((Const(1, SW + 1) << d.out_shift)[1:]),
                    f_active.eq(1), f_r.eq(0), f_row.eq(0), f_col.eq(0), f_slot.eq(d.slot_base),
                    c_active.eq(1), c_c.eq(0), c_row.eq(0), c_col.eq(0),
                    state.eq(RUN),
                ]
            with m.Case(RUN):
                with m.If(layer_done):
                    with m.If(last_layer):
                        m.d.sync += state.eq(IDLE)
                    with m.Else():
                        m.d.sync += [layer.eq(layer + 1), src.eq(~src), state.eq(FETCH)]
        return m


__all__ = ["LayerEngine", "LAYER_OVERHEAD_CYCLES", "cfg_layout", "desc_layout", "inp_layout",
           "layer_cycles", "out_layout", "run_cycles"]
