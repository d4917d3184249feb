"""The layer engine behind the CSR bus, for the FPGA flow (``make synth DESIGN=crossbar``).

:class:`CrossbarCoreTop` wraps :class:`hw.layer_engine.LayerEngine` so that a host (SPI through
``hw.platforms.BoardTop``) can program weights, biases, the LUT and the layer table, push input
codes and let the output stream run. Its registers (byte addresses of 32-bit registers; the
engine's own encodings are those of ``docs/crossbar.md`` §3–4):

=====  ================  ===  ===============================================================
addr   name              dir  meaning
=====  ================  ===  ===============================================================
0x00   STATUS            r    bit 0 engine busy, 1 prog beat pending, 2 cfg beat pending,
                              3 input beat pending
0x04   PROG_ADDR         w    programming-port address
0x08   PROG_GO           w    offer one ``prog`` beat (PROG_ADDR, PROG_DATA)
0x0C   CFG_SEL           w    bits [1:0] target (0 bias, 1 LUT, 2 layer), bits [31:16] addr
0x10   CFG_GO            w    offer one ``cfg`` beat (CFG_SEL, CFG_DATA)
0x14   N_LAYERS          rw   layers per run
0x18   IN                w    offer one input code (low ``input_bits`` bits)
0x1C   OUT_COUNT         r    output codes accepted so far (wraps at 2**32)
0x40+  PROG_DATA[k]      w    bits [32k, 32k+32) of a programming word, k < ceil(P·wb/32)
0x80+  CFG_DATA[k]       w    bits [32k, 32k+32) of a cfg word
=====  ================  ===  ===============================================================

A write to a ``*_GO`` or ``IN`` register holds that stream's ``valid`` high until the engine
accepts the beat; a host polls STATUS before the next write to the same stream (a write while a
beat is pending replaces it). Reads have the bus latency ``hw.csr.CSR_READ_LATENCY`` (2 cycles).
The output stream ``out`` is a port of this component: on a board ``BoardTop`` counts and folds
it with ``ready`` held high.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.csr import CSRBusSignature
from hw.layer_engine import LayerEngine
from model.blocks.crossbar_config import (EngineConfig, TileConfig, cfg_addr_bits,
                                          cfg_data_bits)

ADDR_STATUS = 0x00
ADDR_PROG_ADDR = 0x04
ADDR_PROG_GO = 0x08
ADDR_CFG_SEL = 0x0C
ADDR_CFG_GO = 0x10
ADDR_N_LAYERS = 0x14
ADDR_IN = 0x18
ADDR_OUT_COUNT = 0x1C
ADDR_PROG_DATA = 0x40
ADDR_CFG_DATA = 0x80


def _words(bits: int) -> int:
    return -(-bits // 32)


class CrossbarCoreTop(wiring.Component):
    #: Extra Yosys options per target for ``sim/synth.py``: map the P multipliers to the
    #: iCE40 UP5K's SB_MAC16 DSP blocks (synth_ice40 leaves them in logic cells without -dsp).
    synth_opts = {"ice40": "-dsp"}

    """Layer engine + CSR register bank; see the module docstring for the registers.

    Parameters
    ----------
    cfg:
        The engine's :class:`EngineConfig`. Its programming word may be at most 256 bits
        (P·wb ≤ 256) and a cfg word at most 128 bits, so the data registers fit below 0xC0.
    """

    def __init__(self, cfg: EngineConfig):
        self._MustUse__silence = True   # a rejected top is not an unused elaboratable
        if not isinstance(cfg, EngineConfig):
            raise ValueError(f"CrossbarCoreTop.cfg = {cfg!r}: must be an EngineConfig")
        t = cfg.tile
        pbits = t.macs_per_cycle * t.weight_bits
        if pbits > 256:
            raise ValueError(f"CrossbarCoreTop.cfg.tile: macs_per_cycle * weight_bits = {pbits}: "
                             f"out of range, allowed [1, 256]")
        if cfg_data_bits(cfg) > 128 or cfg_addr_bits(cfg) > 16:
            raise ValueError(f"CrossbarCoreTop.cfg: cfg word of {cfg_data_bits(cfg)} bits / "
                             f"{cfg_addr_bits(cfg)} address bits: allowed at most 128 / 16")
        self._MustUse__silence = False
        self.cfg = cfg
        self.engine = LayerEngine(cfg)
        super().__init__({
            "csr": In(CSRBusSignature()),
            "out": Out(self.engine.signature.members["out"].signature),
            "running": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        cfg, t = self.cfg, self.cfg.tile
        bus = self.csr

        def wr(addr):
            return bus.w_stb & (bus.addr == addr)

        pbits = t.macs_per_cycle * t.weight_bits
        cbits = cfg_data_bits(cfg)
        prog_data = [Signal(32, name=f"prog_data{k}") for k in range(_words(pbits))]
        cfg_data = [Signal(32, name=f"cfg_data{k}") for k in range(_words(cbits))]
        prog_addr = Signal(32)
        cfg_sel = Signal(32)
        n_layers = Signal(8, init=1)
        out_count = Signal(32)

        for k, reg in enumerate(prog_data):
            with m.If(wr(ADDR_PROG_DATA + 4 * k)):
                m.d.sync += reg.eq(bus.w_data)
        for k, reg in enumerate(cfg_data):
            with m.If(wr(ADDR_CFG_DATA + 4 * k)):
                m.d.sync += reg.eq(bus.w_data)
        with m.If(wr(ADDR_PROG_ADDR)):
            m.d.sync += prog_addr.eq(bus.w_data)
        with m.If(wr(ADDR_CFG_SEL)):
            m.d.sync += cfg_sel.eq(bus.w_data)
        with m.If(wr(ADDR_N_LAYERS)):
            m.d.sync += n_layers.eq(bus.w_data)

        # Each input stream of the engine is a one-beat holding register: a GO write raises
        # valid, the engine's ready drops it. The payload registers stay stable while valid is
        # high because the host writes them only after polling STATUS.
        def offer(st, go_addr):
            with m.If(st.valid & st.ready):
                m.d.sync += st.valid.eq(0)
            with m.If(wr(go_addr)):
                m.d.sync += st.valid.eq(1)

        prog_word = Signal(len(prog_data) * 32)
        cfg_word = Signal(len(cfg_data) * 32)
        m.d.comb += [prog_word.eq(Cat(*prog_data)), cfg_word.eq(Cat(*cfg_data))]
        m.d.comb += [
            eng.prog.payload.addr.eq(prog_addr),
            eng.prog.payload.data.eq(prog_word),
            eng.cfg.payload.target.eq(cfg_sel[:2]),
            eng.cfg.payload.addr.eq(cfg_sel[16:]),
            eng.cfg.payload.data.eq(cfg_word),
            eng.n_layers.eq(n_layers),
        ]
        offer(eng.prog, ADDR_PROG_GO)
        offer(eng.cfg, ADDR_CFG_GO)
        in_code = Signal(t.input_bits)
        with m.If(wr(ADDR_IN)):
            m.d.sync += in_code.eq(bus.w_data)
        m.d.comb += eng.inp.payload.code.eq(in_code)
        offer(eng.inp, ADDR_IN)

        wiring.connect(m, eng.out, wiring.flipped(self.out))
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += out_count.eq(out_count + 1)
        m.d.comb += self.running.eq(eng.busy)

        # Reads, latency 2: register the address, then the selected value.
        addr_q = Signal(8)
        m.d.sync += addr_q.eq(bus.addr)
        status = Signal(32)
        m.d.comb += status.eq(eng.busy | (eng.prog.valid << 1) | (eng.cfg.valid << 2)
                              | (eng.inp.valid << 3))
        read = Signal(32)
        with m.Switch(addr_q):
            with m.Case(ADDR_STATUS):
                m.d.comb += read.eq(status)
            with m.Case(ADDR_N_LAYERS):
                m.d.comb += read.eq(n_layers)
            with m.Case(ADDR_OUT_COUNT):
                m.d.comb += read.eq(out_count)
        m.d.sync += bus.r_data.eq(read)
        return m


#: Default layer engine of the FPGA flow: a 64 x 64 tile, 8 MACs per cycle, 8-bit weights and
#: codes, per target as many slots as the block RAM holds comfortably (64 x 64 x 8 bit = 32 kbit
#: per slot).
TARGET_ENGINES = {
    "ecp5": EngineConfig(tile=TileConfig(rows=64, cols=64, weight_bits=8, input_bits=8,
                                         adc_bits=8, macs_per_cycle=8, slots=8),
                         max_dim=128, max_layers=4, bias_bits=16, bias_entries=256),
    "ice40": EngineConfig(tile=TileConfig(rows=64, cols=64, weight_bits=8, input_bits=8,
                                          adc_bits=8, macs_per_cycle=8, slots=2),
                          max_dim=64, max_layers=2, bias_bits=16, bias_entries=128),
}


def build_crossbar_for_target(target: str) -> CrossbarCoreTop:
    """The design ``make synth DESIGN=crossbar`` builds (``sim/synth.py``)."""
    if target not in TARGET_ENGINES:
        raise ValueError(f"build_crossbar_for_target: target = {target!r}: allowed "
                         f"{sorted(TARGET_ENGINES)}")
    return CrossbarCoreTop(TARGET_ENGINES[target])
