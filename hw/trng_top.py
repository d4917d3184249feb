"""Top level of the MTJ TRNG path: array controller + calibration + emulator + register bank,
optionally followed by the readout (health tests, conditioning, packing, Gaussian generator).

The register map is ``model.blocks.csr.REGS``; the contracts are ``docs/mtj-array.md`` and
``docs/trng-readout.md``.
"""

from dataclasses import dataclass

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from model.blocks import csr as regs
from model.blocks.config import (ArrayConfig, ConditionerConfig, EmulatorConfig, GaussConfig,
                                 HealthConfig)
from hw.array_port import ArrayPortSignature, raw_word_layout
from hw.csr import CSRBusSignature
from hw.emulator import MTJArrayEmulator
from hw.mtj_array import MTJArrayController


@dataclass(frozen=True)
class ReadoutConfig:
    """The readout chain behind the array: one config per block (docs/trng-readout.md)."""

    health: HealthConfig
    cond: ConditionerConfig
    gauss: GaussConfig

    def __post_init__(self):
        arrays = {self.health.array, self.cond.array}
        if len(arrays) != 1:
            raise ValueError("ReadoutConfig: health.array and cond.array must be the same array")
        if self.gauss.word_bits != self.cond.word_bits:
            raise ValueError(f"ReadoutConfig: gauss.word_bits = {self.gauss.word_bits} must equal "
                             f"cond.word_bits = {self.cond.word_bits}")

    @classmethod
    def default(cls, array: ArrayConfig) -> "ReadoutConfig":
        return cls(HealthConfig(array), ConditionerConfig(array), GaussConfig())


#: Values of ``MTJTRNGTop(array=...)``: the emulator inside, or the array port brought out.
ARRAY_MODES = ("emulator", "external")


class MTJTRNGTop(wiring.Component):
    """Controller, per-cell calibration and the synthesizable array emulator behind one CSR bus.

    Parameters
    ----------
    emu_cfg : EmulatorConfig
        Emulator parameters; ``emu_cfg.array`` sizes the array and the controller. With
        ``array="external"`` only ``emu_cfg.array`` and ``emu_cfg.seed`` (the ``SEED``
        register's reset value) are used.
    readout : ReadoutConfig or None
        With a readout, the raw words go through HealthMonitor -> Conditioner -> BitPacker and the
        packed words either feed the GaussianGenerator (``gauss``) or leave on ``words``
        (GAUSS.words_out). Without, the raw words leave on ``raw``.
    array : str
        ``"emulator"`` (default): the emulator plays the array inside the design.
        ``"external"``: no emulator; the controller's array port is the member ``array`` and a
        test bench (``sim/device_array.py``) or a real array drives ``bits`` and ``ready``
        (docs/mtj-array.md, "External array"). ``CTRL.reseed`` then does nothing,
        ``CELL_OFFSET`` reads 0 and ignores writes, ``STATUS.array_ready`` is ``array.ready``.

    Members
    -------
    csr : ``In(CSRBusSignature())``
        Register bus (read latency 2 cycles).
    array : ``Out(ArrayPortSignature(cfg))`` (``array="external"`` only)
        The array port, from the controller's side: ``row``, ``reset``, ``pulse``, ``amp``,
        ``sense`` out; ``bits``, ``ready`` in.
    raw : ``Out(stream.Signature(raw_word_layout(cfg)))`` (no readout)
        Raw sensed row words, in sensing order.
    words : ``Out(stream.Signature(word_bits))`` (readout)
        Conditioned, packed words (when GAUSS.words_out = 1).
    gauss : ``Out(stream.Signature(signed(sample_bits)))`` (readout)
        Gaussian samples in the fixed-point format of model/blocks/fixedpoint.py.

    Back-pressure on any output holds the controller between rows; no word is lost or repeated.
    """

    def __init__(self, emu_cfg: EmulatorConfig, readout: ReadoutConfig | None = None,
                 array: str = "emulator"):
        if not isinstance(array, str) or array not in ARRAY_MODES:
            raise ValueError(f"array = {array!r}: allowed {', '.join(map(repr, ARRAY_MODES))}")
        if not isinstance(emu_cfg, EmulatorConfig):
            raise ValueError(f"emu_cfg = {emu_cfg!r}: must be an EmulatorConfig")
        if readout is not None:
            if not isinstance(readout, ReadoutConfig):
                raise ValueError(f"readout = {readout!r}: must be a ReadoutConfig or None")
            if readout.health.array != emu_cfg.array:
                raise ValueError("readout: its array must be emu_cfg.array")
        self.emu_cfg = emu_cfg
        self.cfg = emu_cfg.array
        self.readout = readout
        self.array_mode = array
        members = {"csr": In(CSRBusSignature())}
        if array == "external":
            members["array"] = Out(ArrayPortSignature(self.cfg))
        if readout is None:
            members["raw"] = Out(stream.Signature(raw_word_layout(self.cfg)))
        else:
            members["words"] = Out(stream.Signature(readout.cond.word_bits))
            members["gauss"] = Out(stream.Signature(signed(readout.gauss.sample_bits)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, ecfg = self.cfg, self.emu_cfg
        m.submodules.ctrl = ctrl = MTJArrayController(cfg)
        if self.array_mode == "emulator":
            m.submodules.emu = emu = MTJArrayEmulator(ecfg)
            wiring.connect(m, ctrl.port, emu.port)
            array_ready = emu.port.ready
        else:
            emu = None
            wiring.connect(m, ctrl.port, wiring.flipped(self.array))
            array_ready = self.array.ready
        if self.readout is None:
            wiring.connect(m, ctrl.raw, wiring.flipped(self.raw))
        else:
            from hw.conditioner import Conditioner
            from hw.gaussian import GaussianGenerator
            from hw.health import HealthMonitor
            from hw.packer import BitPacker
            ro = self.readout
            m.submodules.health = health = HealthMonitor(ro.health)
            m.submodules.cond = cond = Conditioner(ro.cond)
            m.submodules.packer = packer = BitPacker(ro.cond)
            m.submodules.gen = gen = GaussianGenerator(ro.gauss)
            wiring.connect(m, ctrl.raw, health.i)
            wiring.connect(m, health.o, cond.i)
            wiring.connect(m, cond.o, packer.i)
            wiring.connect(m, gen.o, wiring.flipped(self.gauss))

        bus = self.csr
        ctrl_f = {f.name: f for f in regs.BY_NAME["CTRL"].fields}
        enable = Signal(init=(regs.BY_NAME["CTRL"].reset >> ctrl_f["enable"].lsb) & 1)
        cal_enable = Signal(init=(regs.BY_NAME["CTRL"].reset >> ctrl_f["cal_enable"].lsb) & 1)
        seed = Signal(32, init=ecfg.seed)
        cell_sel = Signal(16)
        cycles = Signal(32)
        cond_f = {f.name: f for f in regs.BY_NAME["COND"].fields}
        gauss_f = {f.name: f for f in regs.BY_NAME["GAUSS"].fields}
        hl_f = {f.name: f for f in regs.BY_NAME["CELL_HEALTH"].fields}
        cond_reset = regs.BY_NAME["COND"].reset
        cond_mode = Signal(2, init=(cond_reset >> cond_f["mode"].lsb) & 3)
        cond_k = Signal(8, init=(cond_reset >> cond_f["k"].lsb) & 0xFF)
        gauss_mode = Signal()
        words_out = Signal()
        m.d.sync += cycles.eq(cycles + 1)

        def hit(name):
            return bus.w_stb & (bus.addr == regs.addr(name))

        # Writes. Strobe fields are single-cycle pulses derived from the write itself.
        with m.If(hit("CTRL")):
            m.d.sync += [
                enable.eq(bus.w_data[ctrl_f["enable"].lsb]),
                cal_enable.eq(bus.w_data[ctrl_f["cal_enable"].lsb]),
            ]
        with m.If(hit("SEED")):
            m.d.sync += seed.eq(bus.w_data)
        with m.If(hit("CELL_SEL")):
            m.d.sync += cell_sel.eq(bus.w_data[:16])
        with m.If(hit("COND")):
            m.d.sync += [
                cond_mode.eq(bus.w_data[cond_f["mode"].lsb:][:2]),
                cond_k.eq(bus.w_data[cond_f["k"].lsb:][:8]),
            ]
        with m.If(hit("GAUSS")):
            m.d.sync += [
                gauss_mode.eq(bus.w_data[gauss_f["mode"].lsb]),
                words_out.eq(bus.w_data[gauss_f["words_out"].lsb]),
            ]
        health_status = C(0, 32)
        health_summary = C(0, 32)
        if self.readout is not None:
            # Packed words go to the generator or out on `words` (GAUSS.words_out).
            m.d.comb += [
                cond.mode.eq(cond_mode),
                cond.k.eq(cond_k),
                gen.mode.eq(gauss_mode),
                gen.i.payload.eq(packer.o.payload),
                self.words.payload.eq(packer.o.payload),
                gen.i.valid.eq(packer.o.valid & ~words_out),
                self.words.valid.eq(packer.o.valid & words_out),
                packer.o.ready.eq(Mux(words_out, self.words.ready, gen.i.ready)),
            ]
            h_clear = Signal()
            h_mask_we = Signal()
            h_mask = Signal()
            m.d.sync += [
                h_clear.eq(hit("CELL_HEALTH") & bus.w_data[hl_f["clear"].lsb]),
                h_mask_we.eq(hit("CELL_HEALTH") & bus.w_data[hl_f["mask_we"].lsb]),
                h_mask.eq(bus.w_data[hl_f["force_mask"].lsb]),
            ]
            m.d.comb += [
                health.cell_sel.eq(cell_sel),
                health.clear.eq(h_clear),
                health.force_mask_we.eq(h_mask_we),
                health.force_mask_wdata.eq(h_mask),
            ]
            st = health.cell_status
            health_status = Cat(st.rct, st.apt, st.corr, st.sat, st.force_mask, st.masked)
            health_summary = health.any_failed | (health.masked_count << 16)
        # Strobes are registered: the bus address decode then drives no logic deep inside the
        # blocks in the same cycle (it was the iCE40 critical path into the controller's state
        # enable). Software reseeds with CTRL.enable clear, so one cycle of delay is harmless.
        clear_alarms = Signal()
        reseed = Signal()
        m.d.sync += [
            clear_alarms.eq(hit("CTRL") & bus.w_data[ctrl_f["clear_alarms"].lsb]),
            reseed.eq(hit("CTRL") & bus.w_data[ctrl_f["reseed"].lsb]),
        ]
        m.d.comb += [
            ctrl.enable.eq(enable),
            ctrl.cal_enable.eq(cal_enable),
            ctrl.clear_alarms.eq(clear_alarms),
            ctrl.cell_sel.eq(cell_sel),
        ]
        if emu is not None:
            m.d.comb += [
                emu.seed.eq(seed),
                emu.reseed.eq(reseed),
                emu.offset_sel.eq(cell_sel),
                emu.offset_wdata.eq(bus.w_data[:ecfg.offset_width]),
                emu.offset_we.eq(hit("CELL_OFFSET")),
            ]

        # Reads: latency 2 (hw.csr.CSR_READ_LATENCY). The first cycle registers a one-hot
        # decode of the address; the second ORs the selected values into r_data. A case
        # statement on a registered address mapped to six LUT levels on the iCE40 (the decode
        # of "no register here" drove the r_data flip-flops' reset); the one-hot AND-OR is
        # three.
        values = {
            "ID": C(regs.ID_VALUE, 32),
            "GEOMETRY": C(cfg.rows | (cfg.cols << 16), 32),
            "CTRL": (enable << ctrl_f["enable"].lsb) | (cal_enable << ctrl_f["cal_enable"].lsb),
            "STATUS": Cat(ctrl.running, array_ready, ctrl.alarm_any),
            "SEED": seed,
            "CELL_SEL": cell_sel,
            "CELL_CODE": ctrl.cell_code,
            "CELL_ALARM": ctrl.cell_alarm,
            "CELL_OFFSET": C(0, 32) if emu is None else emu.offset_rdata.as_signed(),
            "ROWS_SENSED": ctrl.rows_sensed,
            "CYCLES": cycles,
            "CELL_HEALTH": health_status,
            "COND": cond_mode | (cond_k << cond_f["k"].lsb),
            "GAUSS": gauss_mode | (words_out << gauss_f["words_out"].lsb),
            "HEALTH_SUMMARY": health_summary,
        }
        assert set(values) == set(regs.BY_NAME), "every register of the map is readable"
        read = 0
        for name, value in values.items():
            sel = Signal(name=f"rsel_{name}")
            m.d.sync += sel.eq(bus.addr == regs.addr(name))
            wide = Signal(32, name=f"rval_{name}")
            m.d.comb += wide.eq(value)          # sign-extends signed values
            read = read | (wide & sel.replicate(32))
        m.d.sync += bus.r_data.eq(read)
        return m


def default_emulator_config(cfg: ArrayConfig | None = None, seed: int = 1,
                            variation: bool = True) -> EmulatorConfig:
    """The emulator configuration used by make sim, make synth and the benches.

    Thresholds come from the VCMA-MTJ device model at its default pulse; with ``variation`` the
    per-cell offsets come from the model's device-to-device spread drawn with ``seed``.
    """
    from model.devices.mtj import default_emulator_config as device_tables
    cfg = cfg or ArrayConfig()
    table, offsets = device_tables(cfg, seed=seed, variation=variation)
    return EmulatorConfig(array=cfg, table=tuple(table), offsets=tuple(offsets), seed=seed)


def build_default_top(readout: bool = True) -> MTJTRNGTop:
    """The full-size TRNG top: an 8 x 8 array with 8-bit codes (all ``ArrayConfig`` defaults),
    with the whole readout chain (``ReadoutConfig.default``) unless ``readout`` is False.

    ``make synth`` goes through :func:`build_top_for_target`, which picks the array per FPGA
    (this one, with the readout, for the ECP5).
    """
    cfg = ArrayConfig()
    return MTJTRNGTop(default_emulator_config(cfg),
                      ReadoutConfig.default(cfg) if readout else None)


# Array per FPGA target for ``make synth`` (see build_top_for_target). Only the fields that differ
# from the ArrayConfig defaults are listed.
TARGET_ARRAYS = {
    "ice40": {"rows": 4, "cols": 2},
    "ecp5": {},
}


def target_array_config(target: str) -> ArrayConfig:
    """The :class:`ArrayConfig` that :func:`build_top_for_target` uses for ``target``."""
    if target not in TARGET_ARRAYS:
        raise ValueError(f"target = {target!r}: no TRNG array defined, allowed "
                         f"{sorted(TARGET_ARRAYS)}")
    return ArrayConfig(**TARGET_ARRAYS[target])


def build_top_for_target(target: str) -> MTJTRNGTop:
    """The design that ``make synth`` builds for ``target`` (``sim/synth.py``'s ``trng``): the
    whole TRNG path -- controller, calibration, emulator, health monitor, conditioner, bit packer
    and Gaussian generator (``ReadoutConfig.default`` of the array), outputs ``words`` and
    ``gauss``.

    The array size is a per-FPGA choice, made explicit here (``TARGET_ARRAYS``):

    * ``"ecp5"`` (ULX3S, LFE5U-25F, 100 MHz): the default 8 x 8 array, 8-bit codes -- the same
      design as :func:`build_default_top`.
    * ``"ice40"`` (iCEBreaker, iCE40UP5K, 48 MHz): 4 x 2 cells, 8-bit codes, all other
      ``ArrayConfig`` fields at their defaults. Measured with the whole path (yowasp-nextpnr,
      UP5K = 5280 logic cells): 8 x 4 does not fit (the health monitor alone is ~2770 cells
      there), 4 x 4 needs ~5990 (113 %), 2 x 4 ~5050 (96 %), 4 x 3 ~4920 (93 %), 4 x 2 ~3780
      (72 %), 2 x 2 ~3290 (62 %). Each column costs ~640 cells (its xoshiro128++ generator and
      the per-column pipelines), each cell ~120 (health counters in flip-flops, calibration
      and conditioner state), so 4 x 2 is the largest array that fits with room for routing.
      48 MHz is *not* met at any of these sizes (37.9-41.5 MHz): the critical path is the
      combinational ready chain GaussianGenerator.i.ready -> BitPacker (pop, i.ready) ->
      Conditioner (i.ready, state enables), and behind it the Conditioner's settings-change /
      fold-count logic, independent of the array size (see ``build/synth/ice40/report.json``).

    Raises ``ValueError`` for an unknown target.
    """
    cfg = target_array_config(target)
    return MTJTRNGTop(default_emulator_config(cfg), ReadoutConfig.default(cfg))


# The array path alone (controller, calibration, emulator; no readout) as issue 2 sized it.
ARRAY_ONLY_TARGET_ARRAYS = {"ice40": {"rows": 8, "cols": 4}, "ecp5": {}}


def build_array_top_for_target(target: str) -> MTJTRNGTop:
    """``make synth DESIGN=array``: the array path only (controller, calibration, emulator; output
    ``raw``). iCE40: 8 x 4 cells (8 x 8 needs ~139 % of a UP5K: each column costs ~520 logic
    cells); ECP5: the default 8 x 8."""
    if target not in ARRAY_ONLY_TARGET_ARRAYS:
        raise ValueError(f"target = {target!r}: allowed {sorted(ARRAY_ONLY_TARGET_ARRAYS)}")
    cfg = ArrayConfig(**ARRAY_ONLY_TARGET_ARRAYS[target])
    return MTJTRNGTop(default_emulator_config(cfg))
