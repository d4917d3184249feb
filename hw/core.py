"""The diffusion core: TRNG noise path, layer engine and sequencer in one design.

Contract: ``docs/core.md`` (ports, loading, latency, counters); the integer rules are
``docs/hardware-mode.md``, the blocks' own contracts ``docs/sequencer.md``, ``docs/crossbar.md``
and ``docs/trng-readout.md``. The golden twin is the hardware-mode sampler
(``model.diffusion.hardware.hw_sample`` with the ``"trng"`` noise source of the same emulator
seed): the core's pixel stream equals its ``pixels`` image by image, bit for bit, and the
counters equal ``HardwareProgram.counts(sampler, steps)`` times the images run.

Data flow::

    MTJTRNGTop (emulator, calibration, health, conditioner, packer, Gaussian generator)
        gauss ─► SyncFIFO ─► Sequencer.noise
    Sequencer.net_in ─► LayerEngine.inp        LayerEngine.out ─► Sequencer.eps
    Sequencer.pix ─► pix (the core's output stream)

Nothing in the core is typed by hand: :func:`build_core` takes a
``model.diffusion.hardware.HardwareProgram`` and puts its engine program (weight words, biases,
LUT, layer descriptors) into boot ROMs that stream into the engine after reset, and its step
tables and time-embedding table into the sequencer's memories as initial contents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import (ClockDomain, ClockSignal, DomainRenamer, EnableInserter, Module, Mux,
                          ResetSignal, Signal, unsigned)
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.array_port import ArrayPortSignature
from hw.layer_engine import LayerEngine, run_cycles
from hw.sequencer import Sequencer
from hw.sequencer import cfg_layout as seq_cfg_layout
from hw.trng_top import ARRAY_MODES, MTJTRNGTop, ReadoutConfig
from model.blocks import csr as regs
from model.blocks.config import EmulatorConfig, GaussConfig
from model.blocks.crossbar_config import ACT_LUT, EngineConfig
from model.blocks.sequencer import COUNTERS as SEQ_COUNTERS

#: Counters of the engine side, in the order of ``HardwareProgram.counts`` (docs/hardware-mode.md
#: §6). Each advances by a per-evaluation constant of the loaded program when an evaluation's
#: last ε̂ beat leaves the engine (``ENGINE_INCREMENTS``).
ENGINE_COUNTERS = ("network_evals", "tile_mvms", "macs", "macs_logical", "dac_conversions",
                   "adc_conversions", "weight_reads", "bias_reads", "lut_reads")

#: Every counter of the core: the engine's, then the sequencer's seven.
CORE_COUNTERS = ENGINE_COUNTERS + tuple(SEQ_COUNTERS)

#: Depth of the noise FIFO between the Gaussian generator and the sequencer (samples).
DEFAULT_NOISE_FIFO_DEPTH = 64

#: Width of every counter of the core and of the cycle counters (2^48 MACs: ~2.4 million
#: DDPM images of the committed net before a wrap).
DEFAULT_COUNTER_BITS = 48

#: Cycles each polled TRNG status register stays addressed (> the CSR read latency of 2).
TRNG_POLL_CYCLES = 4

#: How the TRNG top is held while the noise FIFO is full (``DiffusionCore.trng_clock``):
#: ``"enable"``, a clock enable on every TRNG register (for FPGAs and Amaranth's simulator), or
#: ``"gated"``, the same condition as a gated clock of its own domain (for Verilator, which then
#: skips the TRNG's logic while it is held). Both give the same cycles and the same stream.
TRNG_CLOCKS = ("enable", "gated")


def engine_increments(engine_program) -> dict:
    """Per network evaluation, the increment of each engine counter (``ENGINE_COUNTERS``):
    the same sums as ``HardwareProgram.counts`` with n = 1."""
    t = engine_program.cfg.tile
    layers = list(engine_program.layers)
    blocks = sum(d.blocks(t) for d in layers)
    return {
        "network_evals": 1,
        "tile_mvms": blocks,
        "macs": blocks * t.rows * t.cols,
        "macs_logical": sum(d.in_dim * d.out_dim for d in layers),
        "dac_conversions": blocks * t.rows,
        "adc_conversions": blocks * t.cols,
        "weight_reads": blocks * t.rows * t.cols,
        "bias_reads": sum(d.out_dim for d in layers),
        "lut_reads": sum(d.out_dim for d in layers if d.act == ACT_LUT),
    }


@dataclass(frozen=True)
class CoreImage:
    """The generated contents of one core (:func:`core_image`): what goes into its memories.

    Attributes
    ----------
    engine_cfg:
        The engine's ``EngineConfig``.
    n_layers:
        Layers of the program (the engine's ``n_layers``, a constant of the core).
    prog_data:
        Weight words, word ``i`` at tile address ``i`` (``EngineProgram.prog_words`` order).
    cfg_words:
        ``(target, addr, data)`` engine configuration writes (biases, LUT, descriptors).
    increments:
        :func:`engine_increments`.
    dim, temb_dim, temb_rows, table_depth, fx_in, fe, gauss:
        The sequencer's build parameters.
    tables:
        The step tables loaded at reset (``StepTables``).
    temb:
        int64 (temb_rows, temb_dim) time-embedding codes.
    run_cycles:
        Cycles of one engine run (``hw.layer_engine.run_cycles``).
    """

    engine_cfg: EngineConfig
    n_layers: int
    prog_data: tuple
    cfg_words: tuple
    increments: dict
    dim: int
    temb_dim: int
    temb_rows: int
    table_depth: int
    fx_in: int
    fe: int
    gauss: GaussConfig
    tables: object
    temb: np.ndarray
    run_cycles: int


def core_image(program, sampler: str = "ddpm", steps: int | None = None,
               table_depth: int | None = None) -> CoreImage:
    """The memory contents of a core for ``program`` (a ``HardwareProgram``) with the step
    tables of ``sampler``/``steps`` loaded at reset.

    ``table_depth`` (default T, ``program.steps_max``) sizes the step-table memories; a table
    of more rows raises ``ValueError``.
    """
    o = "core_image"
    for a in ("engine", "tables", "temb_codes", "dim", "temb_dim", "steps_max", "gauss"):
        if not hasattr(program, a):
            raise ValueError(f"{o}.program = {type(program).__name__}: must be a "
                             f"HardwareProgram (model.diffusion.hardware)")
    tab = program.tables(sampler, steps)
    T = int(program.steps_max)
    depth = T if table_depth is None else table_depth
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 65536:
        raise ValueError(f"{o}.table_depth = {table_depth!r}: allowed integer [1, 65536]")
    if tab.steps > depth:
        raise ValueError(f"{o}.steps = {tab.steps}: more rows than table_depth = {depth}; "
                         f"allowed [1, {depth}]")
    e = program.engine
    words = e.prog_words()
    addrs = [a for a, _ in words]
    if addrs != list(range(e.cfg.tile.weight_words)):
        raise ValueError(f"{o}: the engine's programming words do not cover addresses "
                         f"0 … {e.cfg.tile.weight_words - 1} in order")
    return CoreImage(
        engine_cfg=e.cfg, n_layers=len(e.layers), prog_data=tuple(int(d) for _, d in words),
        cfg_words=tuple((int(t), int(a), int(d)) for t, a, d in e.cfg_words()),
        increments=engine_increments(e), dim=int(program.dim),
        temb_dim=int(program.temb_dim), temb_rows=T, table_depth=depth,
        fx_in=int(program.fx_in), fe=int(program.fe), gauss=program.gauss, tables=tab,
        temb=np.asarray(program.temb_codes, dtype=np.int64),
        run_cycles=run_cycles(e.cfg, e.layers))


#: Cycles a row of the core takes beyond the engine's run (``hw.layer_engine.run_cycles``,
#: which counts from the first network-input beat), with every stream ready and noise waiting:
#: the sequencer's table read and latch before the first input beat, and the update pipeline's
#: drain and the hand-over to the next row after the last ε̂ beat (measured by
#: tests/test_core.py; docs/core.md "Latency").
ROW_EXTRA_CYCLES = 7


def row_cycles(image: "CoreImage") -> int:
    """Cycles of one row (one network evaluation and the update) with the noise FIFO never
    empty: ``run_cycles + ROW_EXTRA_CYCLES``."""
    return image.run_cycles + ROW_EXTRA_CYCLES


def image_cycles(image: "CoreImage", steps: int) -> int:
    """Cycles of one image, ``cycles`` in the cycle ``done`` pulses minus ``cycles`` in the
    cycle ``start`` is taken, with ``pix`` ready and the noise FIFO never empty:
    ``1 + dim + steps·row_cycles + dim + 1`` (x_T, the rows, the pixels: the sequencer's
    ``image_cycles`` with the network's time in each row). ``pix.ready`` low when the first
    pixel is offered costs a cycle more (the sequencer's read enable follows ready)."""
    return 2 * image.dim + 2 + steps * row_cycles(image)


def table_words(tables) -> list[tuple[int, int, int]]:
    """The ``tables`` port writes ``(target, addr, data)`` that load a ``StepTables`` (rows
    C1, C2, SG, TS, then the ``c1_shift`` register) into a core while it is idle: another
    sampler or step count without a new build (``HardwareProgram.tables``)."""
    from hw.sequencer import CFG_C1, CFG_C1_SHIFT, CFG_C2, CFG_SG, CFG_TS
    out = []
    for target, arr in ((CFG_C1, tables.c1), (CFG_C2, tables.c2), (CFG_SG, tables.sg),
                        (CFG_TS, tables.ts)):
        out += [(target, i, int(v)) for i, v in enumerate(arr)]
    out.append((CFG_C1_SHIFT, 0, int(tables.c1_shift)))
    return out


def counters_layout(bits: int) -> data.StructLayout:
    """The core's counters port: one unsigned ``bits``-wide field per ``CORE_COUNTERS``."""
    return data.StructLayout({n: unsigned(bits) for n in CORE_COUNTERS})


def _rom_stream(m: Module, name: str, values, width: int):
    """A boot ROM of ``values`` read out once after reset as a stream: returns ``(valid,
    index, data, ready, done)``; ``ready`` is to be driven by the consumer. ``valid`` and the
    payload are registers.

    A word passes two registers: the read port's, then a register after the ROM's read data
    (after Yosys's mux across the ROM's block RAMs), so that mux does not run into the
    consumer's logic (the core's ``ready`` rises ``max(weight words, cfg words) + 4`` cycles
    after reset, docs/core.md "Loading"). Both stages advance together whenever the output is
    empty or taken, so a stall holds both (the read port by its enable) and the stream is
    ``values`` in order."""
    n = len(values)
    valid = Signal(name=f"{name}_valid")
    index = Signal(range(max(2, n)), name=f"{name}_index")
    ready = Signal(name=f"{name}_ready")
    done = Signal(name=f"{name}_done")
    if n == 0:
        m.d.comb += done.eq(1)
        return valid, index, Signal(max(1, width)), ready, done
    rom = Memory(shape=unsigned(width), depth=n, init=[int(v) for v in values])
    m.submodules[f"{name}_rom"] = rom
    rd = rom.read_port()
    nxt = Signal(range(n + 1), name=f"{name}_next")
    adv = Signal(name=f"{name}_adv")
    v1 = Signal(name=f"{name}_v1")
    i1 = Signal.like(index, name=f"{name}_i1")
    data = Signal(width, name=f"{name}_data")
    m.d.comb += [adv.eq(~valid | ready), rd.addr.eq(nxt), rd.en.eq(adv)]
    with m.If(adv):
        m.d.sync += [v1.eq(nxt < n), i1.eq(nxt), valid.eq(v1), index.eq(i1),
                     data.eq(rd.data)]
        with m.If(nxt < n):
            m.d.sync += nxt.eq(nxt + 1)
    m.d.comb += done.eq((nxt == n) & ~v1 & ~valid)
    return valid, index, data, ready, done


class DiffusionCore(wiring.Component):
    """The full diffusion core for one program (``docs/core.md``).

    Parameters
    ----------
    image : CoreImage
        Generated memory contents and sizes (:func:`core_image`; :func:`build_core` does both).
    emu_cfg : EmulatorConfig
        The TRNG's emulator (its ``seed`` is the reset value of the ``SEED`` register: the noise
        stream is ``model.diffusion.noise.TRNGNoise`` with that seed and these tables/offsets).
    readout : ReadoutConfig, optional
        Default ``ReadoutConfig(health, cond of emu_cfg.array, image.gauss)``.
    noise_fifo_depth : int
        Samples buffered between the Gaussian generator and the sequencer (>= 2, default 64).
    counter_bits : int
        Width of every counter and of ``cycles``/``busy_cycles`` (16 … 64, default 48).
    trng_clock : str
        ``"enable"`` (default) or ``"gated"`` (``TRNG_CLOCKS``): how the TRNG top and its
        register master are held while the noise FIFO is full (docs/core.md "Noise");
        not used with ``array_mode="external"`` (that TRNG is never held).
    array_mode : str
        ``"emulator"`` (default) or ``"external"``: ``MTJTRNGTop(..., array=array_mode)``; with
        ``"external"`` the TRNG's array port is the core's member ``array`` (docs/mtj-array.md,
        "External array") and the noise stream is ``model.diffusion.noise.DeviceNoise`` of the
        device that plays it.
    runtime_seed : bool
        Adds the input ``seed``: the register master writes it into the TRNG's ``SEED`` and
        reseeds the emulator before enabling it, so the noise stream is ``TRNGNoise(seed)``
        (``emu_cfg.seed`` only sets the unused reset value); another seed needs no rebuild.
        Emulator only (default False).

    Attributes
    ----------
    start : In(1)
        Starts one image (rows 0 … steps−1 of the loaded tables) in a cycle where ``ready`` is
        high and ``busy`` low; ignored otherwise.
    steps : In(range(table_depth + 1))
        Rows of the run, sampled with ``start`` (1 … table_depth, else the start is ignored).
    ready : Out(1)
        The engine program is loaded (boot ROMs done; ``len(prog_data) + …`` cycles after reset).
    busy, done : Out(1)
        The sequencer's: busy from the cycle after ``start`` until the last pixel is taken;
        ``done`` pulses as ``busy`` falls.
    pix : Out(stream.Signature({pixel: 8, last: 1}))
        The image's ``dim`` pixels (docs/hardware-mode.md §5), ``last`` on the final one.
    tables : In(stream.Signature(hw.sequencer.cfg_layout(...)))
        The sequencer's table port (reload step tables for another sampler/steps while idle).
    alarm : Out(1)
        Sticky OR of the TRNG's alarms (``STATUS.alarm_any``: a calibration code saturated;
        ``HEALTH_SUMMARY.any_failed``: a cell failed a health test), polled over the TRNG's
        register bus every ``TRNG_POLL_CYCLES`` cycles; cleared by ``clear``.
    counters : Out(counters_layout(counter_bits))
        ``CORE_COUNTERS``, from reset or ``clear``.
    cycles, busy_cycles : Out(counter_bits)
        Cycles since reset; cycles with ``busy`` high (from reset or ``clear``).
    clear : In(1)
        Zeroes the counters, ``busy_cycles`` and ``alarm``.
    noise_level : Out(range(noise_fifo_depth + 1))
        Samples waiting in the noise FIFO.
    array : Out(ArrayPortSignature(emu_cfg.array)) (``array_mode="external"`` only)
        The TRNG's array port (controller side).
    seed : In(32) (``runtime_seed`` only)
        The emulator seed of the run, taken in the first TRNG cycles after reset: hold it
        steady from reset until ``ready``.
    """

    #: Its cocotb benches touch only the ports and count cycles on ``cycles``: ``sim.runner``
    #: builds it with only the ports visible over VPI, ``rst`` through a register and the
    #: clock (10 ns) made by the model (together ≈ 20 times faster on Verilator;
    #: ``sim.runner.build``, docs/core.md "Simulation speed").
    SIM_PORTS_ONLY = True
    SIM_RESET_REG = True
    SIM_CLOCK_NS = 10

    def __init__(self, image: CoreImage, emu_cfg: EmulatorConfig,
                 readout: ReadoutConfig | None = None,
                 noise_fifo_depth: int = DEFAULT_NOISE_FIFO_DEPTH,
                 counter_bits: int = DEFAULT_COUNTER_BITS, trng_clock: str = "enable",
                 array_mode: str = "emulator", runtime_seed: bool = False):
        o = "DiffusionCore"
        try:
            if not isinstance(runtime_seed, bool):
                raise ValueError(f"{o}.runtime_seed = {runtime_seed!r}: must be a bool")
            if runtime_seed and array_mode != "emulator":
                raise ValueError(f"{o}.runtime_seed = True: only with array_mode = "
                                 f"'emulator', not {array_mode!r}")
            if trng_clock not in TRNG_CLOCKS:
                raise ValueError(f"{o}.trng_clock = {trng_clock!r}: allowed {TRNG_CLOCKS}")
            if not isinstance(image, CoreImage):
                raise ValueError(f"{o}.image = {type(image).__name__}: must be a CoreImage "
                                 f"(hw.core.core_image)")
            if not isinstance(emu_cfg, EmulatorConfig):
                raise ValueError(f"{o}.emu_cfg = {emu_cfg!r}: must be an EmulatorConfig")
            if readout is None:
                a = emu_cfg.array
                base = ReadoutConfig.default(a)
                readout = ReadoutConfig(base.health, base.cond, image.gauss)
            if not isinstance(readout, ReadoutConfig):
                raise ValueError(f"{o}.readout = {readout!r}: must be a ReadoutConfig")
            g = readout.gauss
            if (g.int_bits, g.frac_bits) != (image.gauss.int_bits, image.gauss.frac_bits):
                raise ValueError(f"{o}.readout.gauss: Q{g.int_bits}.{g.frac_bits} samples, the "
                                 f"program expects Q{image.gauss.int_bits}."
                                 f"{image.gauss.frac_bits}")
            for name, v, lo, hi in (("noise_fifo_depth", noise_fifo_depth, 2, 1 << 16),
                                    ("counter_bits", counter_bits, 16, 64)):
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                    raise ValueError(f"{o}.{name} = {v!r}: allowed integer [{lo}, {hi}]")
            if not isinstance(array_mode, str) or array_mode not in ARRAY_MODES:
                raise ValueError(f"{o}.array_mode = {array_mode!r}: allowed "
                                 f"{', '.join(map(repr, ARRAY_MODES))}")
            self.trng = MTJTRNGTop(emu_cfg, readout, array=array_mode)
            self.engine = LayerEngine(image.engine_cfg)
            self.seq = Sequencer(image.dim, image.temb_dim, image.temb_rows, image.table_depth,
                                 image.fx_in, image.fe, readout.gauss,
                                 eps_bits=image.engine_cfg.tile.input_bits,
                                 in_bits=image.engine_cfg.tile.input_bits,
                                 tables=image.tables, temb=image.temb,
                                 counter_bits=counter_bits)
        except ValueError:
            self._MustUse__silence = True
            raise
        self.image, self.emu_cfg, self.readout = image, emu_cfg, readout
        self.noise_fifo_depth, self.counter_bits = noise_fifo_depth, counter_bits
        self.trng_clock = trng_clock
        self.array_mode = array_mode
        self.runtime_seed = runtime_seed
        sig = self.seq.signature.members
        members = {
            "start": In(1),
            "steps": In(range(image.table_depth + 1)),
            "ready": Out(1),
            "busy": Out(1),
            "done": Out(1),
            "pix": Out(sig["pix"].signature),
            "tables": In(stream.Signature(seq_cfg_layout(image.temb_rows, image.temb_dim,
                                                         image.table_depth))),
            "alarm": Out(1),
            "counters": Out(counters_layout(counter_bits)),
            "cycles": Out(counter_bits),
            "busy_cycles": Out(counter_bits),
            "clear": In(1),
            "noise_level": Out(range(noise_fifo_depth + 1)),
        }
        if array_mode == "external":
            members["array"] = Out(ArrayPortSignature(emu_cfg.array))
        if runtime_seed:
            members["seed"] = In(32)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        img = self.image
        trng = self.trng
        m.submodules.engine = eng = self.engine
        m.submodules.seq = seq = self.seq
        sb = self.readout.gauss.sample_bits
        m.submodules.noise_fifo = nf = fifo.SyncFIFO(width=sb, depth=self.noise_fifo_depth)
        if self.array_mode == "external":
            wiring.connect(m, wiring.flipped(self.array), trng.array)

        # Noise: Gaussian samples -> FIFO -> sequencer. The TRNG top (and its register master
        # below) advances only in cycles where the FIFO can take a sample: it never sees its
        # output back-pressured, it just stops in time, so its stream is the free-running one.
        # "gated" builds the same condition as a clock of its own: in the low phase a
        # negative-edge register takes the enable, and the TRNG's clock is clk AND that
        # register, so the TRNG's rising edges are exactly the clk edges with the FIFO not
        # full, and a simulator that evaluates by clock (Verilator) skips the held TRNG.
        # An external array (array_mode="external") is not held: a real array needs the
        # controller's own row timing (a pulse never stretched, bits sensed in the cycle after
        # SENSE; docs/mtj-array.md), so that TRNG runs every cycle and the FIFO's back-pressure
        # on `gauss` holds its controller between rows. Only the timing differs; the stream
        # does not depend on it.
        run = Signal()
        m.d.comb += run.eq(nf.w_rdy if self.array_mode == "emulator" else 1)
        if self.array_mode == "external":
            m.submodules.trng = trng
        elif self.trng_clock == "enable":
            m.submodules.trng = EnableInserter(run)(trng)
        else:
            m.domains.trng_neg = ClockDomain("trng_neg", clk_edge="neg", reset_less=True,
                                             local=True)
            m.domains.trng = ClockDomain("trng", local=True)
            run_low = Signal(init=1)
            m.d.trng_neg += run_low.eq(run)
            m.d.comb += [ClockSignal("trng_neg").eq(ClockSignal("sync")),
                         ClockSignal("trng").eq(ClockSignal("sync") & run_low),
                         ResetSignal("trng").eq(ResetSignal("sync"))]
            m.submodules.trng = DomainRenamer("trng")(trng)
        m.d.comb += [
            nf.w_data.eq(trng.gauss.payload), nf.w_en.eq(trng.gauss.valid),
            trng.gauss.ready.eq(nf.w_rdy),
            seq.noise.payload.eq(nf.r_data), seq.noise.valid.eq(nf.r_rdy),
            nf.r_en.eq(seq.noise.ready),
            self.noise_level.eq(nf.level),
        ]

        # Network: sequencer <-> engine; the program's layer count is a constant.
        wiring.connect(m, seq.net_in, eng.inp)
        wiring.connect(m, eng.out, seq.eps)
        m.d.comb += eng.n_layers.eq(img.n_layers)

        # Boot: the engine program streams from generated ROMs into the engine after reset
        # (weights on prog, biases/LUT/descriptors on cfg, both at once).
        tcfg = img.engine_cfg.tile
        pw = tcfg.macs_per_cycle * tcfg.weight_bits
        p_valid, p_index, p_data, p_ready, p_done = _rom_stream(m, "boot_prog", img.prog_data,
                                                                pw)
        cw = eng.cfg.payload
        a_bits, d_bits = len(cw.addr), len(cw.data)
        packed = [t | (a << 2) | (d << (2 + a_bits)) for t, a, d in img.cfg_words]
        c_valid, _, c_data, c_ready, c_done = _rom_stream(m, "boot_cfg", packed,
                                                          2 + a_bits + d_bits)
        m.d.comb += [
            eng.prog.valid.eq(p_valid), eng.prog.payload.addr.eq(p_index),
            eng.prog.payload.data.eq(p_data), p_ready.eq(eng.prog.ready),
            eng.cfg.valid.eq(c_valid), cw.target.eq(c_data[:2]),
            cw.addr.eq(c_data[2:2 + a_bits]), cw.data.eq(c_data[2 + a_bits:]),
            c_ready.eq(eng.cfg.ready),
        ]
        loaded = Signal()
        with m.If(p_done & c_done):
            m.d.sync += loaded.eq(1)

        # Control and output.
        wiring.connect(m, wiring.flipped(self.tables), seq.cfg)
        wiring.connect(m, seq.pix, wiring.flipped(self.pix))
        m.d.comb += [
            self.ready.eq(loaded),
            seq.start.eq(self.start & loaded),
            seq.steps.eq(self.steps),
            self.busy.eq(seq.busy), self.done.eq(seq.done),
            seq.clear.eq(self.clear),
        ]

        # TRNG register bus, owned by the core: one write of CTRL (enable, calibration on) in
        # the first cycle after reset — the condition under which the stream equals
        # NoisePath/TRNGNoise with the same seed — then STATUS and HEALTH_SUMMARY read in turn.
        # Its registers advance with the TRNG (``run``), so a read always sees the TRNG's
        # read latency in TRNG cycles.
        bus = trng.csr
        booted = Signal()
        poll = Signal(range(TRNG_POLL_CYCLES))
        which = Signal()                         # 0: STATUS, 1: HEALTH_SUMMARY
        alarm = Signal()
        ctrl_word = regs.pack("CTRL", enable=1, cal_enable=1)
        st_bit = regs.field("STATUS", "alarm_any").lsb
        hs_bit = regs.field("HEALTH_SUMMARY", "any_failed").lsb
        if not self.runtime_seed:
            with m.If(~booted):
                m.d.comb += [bus.addr.eq(regs.addr("CTRL")), bus.w_stb.eq(1),
                             bus.w_data.eq(ctrl_word)]
                with m.If(run):
                    m.d.sync += booted.eq(1)
        else:
            # Run-time seed: SEED <- seed, CTRL <- reseed (enable clear), then CTRL <- enable |
            # cal_enable, one write per TRNG cycle. The reseed reloads every generator from
            # SEED and restarts the warm-up, so the emulator is where a reset with that SEED
            # reset value would have put it; the controller, calibration and health tests have
            # not moved (enable was clear), so the stream is TRNGNoise(seed)
            # (tests/test_core.py, tests/test_core_cocotb.py).
            step = Signal(2)
            with m.If(~booted):
                m.d.comb += bus.w_stb.eq(1)
                with m.Switch(step):
                    with m.Case(0):
                        m.d.comb += [bus.addr.eq(regs.addr("SEED")), bus.w_data.eq(self.seed)]
                    with m.Case(1):
                        m.d.comb += [bus.addr.eq(regs.addr("CTRL")),
                                     bus.w_data.eq(regs.pack("CTRL", reseed=1))]
                    with m.Default():
                        m.d.comb += [bus.addr.eq(regs.addr("CTRL")), bus.w_data.eq(ctrl_word)]
                with m.If(run):
                    m.d.sync += step.eq(step + 1)
                    with m.If(step == 2):
                        m.d.sync += booted.eq(1)
        with m.Else():
            m.d.comb += bus.addr.eq(Mux(which, regs.addr("HEALTH_SUMMARY"),
                                                 regs.addr("STATUS")))
            with m.If(run):
                m.d.sync += poll.eq(poll + 1)
                with m.If(poll == TRNG_POLL_CYCLES - 1):
                    # The address has been steady for TRNG_POLL_CYCLES >= read latency + 1
                    # TRNG cycles.
                    m.d.sync += which.eq(~which)
                    with m.If(which):
                        with m.If(bus.r_data[hs_bit]):
                            m.d.sync += alarm.eq(1)
                    with m.Else():
                        with m.If(bus.r_data[st_bit]):
                            m.d.sync += alarm.eq(1)
        m.d.comb += self.alarm.eq(alarm)

        # Counters: the sequencer's seven, and the engine's by per-evaluation increments when an
        # evaluation's last ε̂ beat is taken.
        cb = self.counter_bits
        cycles, busy_cycles = Signal(cb), Signal(cb)
        m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += [self.cycles.eq(cycles), self.busy_cycles.eq(busy_cycles)]
        eval_end = Signal()
        m.d.comb += eval_end.eq(eng.out.valid & eng.out.ready & eng.out.payload.last)
        ecount = {n: Signal(cb, name=f"cnt_{n}") for n in ENGINE_COUNTERS}
        for n in SEQ_COUNTERS:
            m.d.comb += self.counters[n].eq(getattr(seq.counters, n))
        for n, s in ecount.items():
            m.d.comb += self.counters[n].eq(s)
        with m.If(self.clear):
            m.d.sync += [s.eq(0) for s in ecount.values()]
            m.d.sync += [busy_cycles.eq(0), alarm.eq(0)]
        with m.Else():
            with m.If(eval_end):
                m.d.sync += [s.eq(s + img.increments[n]) for n, s in ecount.items()]
            with m.If(seq.busy):
                m.d.sync += busy_cycles.eq(busy_cycles + 1)
        return m


def trng_emulator_config(seed: int, device_seed: int = 1, array=None) -> EmulatorConfig:
    """The emulator configuration of ``model.diffusion.noise.TRNGNoise(seed,
    device_seed=device_seed, array=array)`` — the ``"trng"`` source of ``hw_sample`` — so that
    the core's noise stream is that source's."""
    from model.blocks.config import ArrayConfig
    from model.devices.mtj import default_emulator_config
    array = ArrayConfig() if array is None else array
    table, offsets = default_emulator_config(array, seed=device_seed)
    return EmulatorConfig(array=array, table=tuple(table), offsets=tuple(offsets), seed=seed)


def build_core(program, sampler: str = "ddpm", steps: int | None = None, *, seed: int = 0,
               device_seed: int = 1, array=None, table_depth: int | None = None,
               noise_fifo_depth: int = DEFAULT_NOISE_FIFO_DEPTH,
               counter_bits: int = DEFAULT_COUNTER_BITS,
               trng_clock: str = "enable",
               array_mode: str = "emulator", runtime_seed: bool = False) -> DiffusionCore:
    """A :class:`DiffusionCore` generated from ``program`` (``HardwareProgram``): its engine
    program in the boot ROMs, the step tables of ``sampler``/``steps`` and the time-embedding
    table in the sequencer's memories, and the TRNG of ``hw_sample(program, "trng", ...,
    seed=seed)`` (emulator seed ``seed``, chip ``device_seed``, array ``array``, default 8 × 8).
    ``trng_clock="gated"`` for Verilator runs (``DiffusionCore``).

    ``array_mode="external"`` (``make sim ARRAY=device``): no emulator; the TRNG's array port is
    the core's ``array`` member, played in simulation by ``sim.device_array.DeviceArrayPlayer``;
    the golden noise is then ``model.diffusion.noise.DeviceNoise(<device seed>, array=array,
    gauss_cfg=program.gauss)`` (``seed``/``device_seed`` only set the unused ``SEED`` reset value).

    ``runtime_seed=True``: the emulator seed is the core's input ``seed`` (``DiffusionCore``);
    ``seed`` here only sets the unused ``SEED`` reset value.
    """
    image = core_image(program, sampler, steps, table_depth)
    return DiffusionCore(image, trng_emulator_config(seed, device_seed, array),
                         noise_fifo_depth=noise_fifo_depth, counter_bits=counter_bits,
                         trng_clock=trng_clock, array_mode=array_mode,
                         runtime_seed=runtime_seed)


__all__ = ["CORE_COUNTERS", "ENGINE_COUNTERS", "ROW_EXTRA_CYCLES", "TRNG_CLOCKS", "CoreImage",
           "DiffusionCore", "build_core", "core_image", "counters_layout", "engine_increments",
           "image_cycles", "row_cycles", "table_words", "trng_emulator_config"]
