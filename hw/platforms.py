"""FPGA boards for spindiff designs: PLLs, pins, and the board wrapper :class:`BoardTop`.

A *design* is a component with the member ``csr: In(CSRBusSignature())`` and one or more output
streams (``Out(stream.Signature(...))`` members): ``raw`` for ``hw.trng_top.MTJTRNGTop`` without a
readout and for :class:`SmokeDesign` (a small stand-in), ``words`` and ``gauss`` for the TRNG top
with its readout chain. :class:`BoardTop` puts it on a board:

- an SPI slave (:class:`hw.spi_csr.SPICSRBridge`) on a PMOD-style header drives the CSR bus, so
  every register input is live in synthesis and a host can run the design;
- every output stream is always ready; stream k (in the design's signature order, see
  :func:`output_streams`) has its words counted and folded into two 32-bit registers, readable at
  :func:`stream_register_addrs` ``(k)`` (stream 0: :data:`RAW_COUNT_ADDR`, :data:`RAW_FOLD_ADDR`),
  so no output logic is optimised away and a host can check that words flow;
- LEDs: heartbeat, output-word activity (any stream), and the design's ``running`` / ``alarm``
  outputs when its signature has them;
- a PLL takes the board oscillator to the target frequency (iCE40: SB_PLL40_PAD, ECP5: EHXPLLL).

Boards (``BOARDS``): ``ice40`` = iCEBreaker (iCE40UP5K-SG48, 12 MHz -> 48 MHz), ``ecp5`` = ULX3S
(LFE5U-25F, 25 MHz -> 100 MHz). SPI pins: iCEBreaker PMOD1A pins 1-4, ULX3S GPIO header 0+ 0- 1+ 1-
(cs_n, sclk, mosi, miso in that order). A design may need another part of the same board
(``DESIGN_BOARDS``, :func:`board_for`): the diffusion core is built on the ULX3S's LFE5U-85F.

The diffusion core (``hw.core.DiffusionCore``) goes on a board behind :class:`CoreBoardDesign`'s
CSR bank. Before a build, :func:`memory_fit` checks its memories against the device's block RAM
(``DEVICES``: data-sheet capacities), so a core that cannot fit is refused before any tool runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.build import Attrs
from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, \
    ResetSignal, Signal, Value
from amaranth.build import ResourceError
from amaranth.lib import io, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.array_port import raw_word_layout
from hw.csr import CSRBusSignature
from hw.spi_csr import SPICSRBridge
from model.blocks import csr as regmap
from model.blocks.config import ArrayConfig

# Board-level registers, answered by BoardTop itself (not forwarded to the design). Chosen at the
# top of the 8-bit map, far from the design's registers (model/blocks/csr.py): a (count, fold) pair
# per output stream, stream 0 at the top, each further stream 8 bytes below.
RAW_COUNT_ADDR = 0xF8   # ro: words accepted on output stream 0 since reset (wraps at 2**32)
RAW_FOLD_ADDR = 0xFC    # ro: XOR/rotate fold of every word of output stream 0, see fold_step()
MAX_STREAMS = 4         # output streams BoardTop can fold (addresses 0xE0..0xFF)


def stream_register_addrs(index: int) -> tuple[int, int]:
    """``(count_addr, fold_addr)`` of output stream ``index`` (0 .. MAX_STREAMS - 1)."""
    if not (isinstance(index, int) and 0 <= index < MAX_STREAMS):
        raise ValueError(f"stream_register_addrs: index = {index!r}: out of range, allowed "
                         f"0 .. {MAX_STREAMS - 1}")
    return RAW_COUNT_ADDR - 8 * index, RAW_FOLD_ADDR - 8 * index


BOARD_ADDRS = tuple(a for k in range(MAX_STREAMS) for a in stream_register_addrs(k))


def output_streams(design) -> list[str]:
    """Names of the design's output streams (``Out`` members with a ``stream.Signature``), in
    signature order; stream k of this list is folded at :func:`stream_register_addrs` ``(k)``."""
    members = getattr(getattr(design, "signature", None), "members", None)
    if members is None:
        return []
    return [name for name, member in members.items()
            if member.flow == Out and member.is_signature
            and isinstance(member.signature, stream.Signature)]


# ------------------------------------------------------------------------------------------------
# Python models

def fold_step(fold: int, payload: int, payload_bits: int) -> int:
    """One update of a stream's fold register (RAW_FOLD for stream 0; the model of
    :class:`BoardTop`'s fold logic), for one word accepted on that stream.

    The payload (``payload_bits`` wide, the word's ``as_value()`` as an unsigned integer) is cut into 32-bit chunks
    from bit 0 up, the chunks are XORed together, and the result is XORed into the register
    rotated left by one (so the fold depends on word order, not only on the multiset of words).
    """
    x = 0
    for lsb in range(0, payload_bits, 32):
        x ^= (payload >> lsb) & 0xFFFF_FFFF
    rot = ((fold << 1) | (fold >> 31)) & 0xFFFF_FFFF
    return rot ^ x


def ice40_pll_params(f_in_hz: float, f_out_hz: float) -> dict:
    """SB_PLL40 parameters (SIMPLE feedback) for the output closest to ``f_out_hz``.

    Search of the iCE40 PLL's legal space (iCE40 sysCLOCK PLL design guide, TN1251): PFD
    f_in/(DIVR+1) in [10, 133] MHz, VCO f_pfd*(DIVF+1) in [533, 1066] MHz, output f_vco/2**DIVQ,
    DIVQ in 1..6. FILTER_RANGE from the PFD frequency as icepll chooses it. The first minimum of
    |error| in (DIVR, DIVF, DIVQ) order wins, like icepll.
    """
    if not 10e6 <= f_in_hz <= 133e6:
        raise ValueError(f"ice40_pll_params: f_in_hz = {f_in_hz}: out of range, allowed "
                         f"[10e6, 133e6]")
    if not 16e6 <= f_out_hz <= 275e6:
        raise ValueError(f"ice40_pll_params: f_out_hz = {f_out_hz}: out of range, allowed "
                         f"[16e6, 275e6]")
    best = None
    for divr in range(16):
        f_pfd = f_in_hz / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f_out = f_vco / (1 << divq)
                err = abs(f_out - f_out_hz)
                if best is None or err < best[0]:
                    best = (err, divr, divf, divq, f_pfd, f_vco, f_out)
    _, divr, divf, divq, f_pfd, f_vco, f_out = best
    mhz = f_pfd / 1e6
    filter_range = (1 if mhz < 17 else 2 if mhz < 26 else 3 if mhz < 44 else
                    4 if mhz < 66 else 5 if mhz < 101 else 6)
    return dict(divr=divr, divf=divf, divq=divq, filter_range=filter_range,
                f_pfd_hz=f_pfd, f_vco_hz=f_vco, f_out_hz=f_out)


def ecp5_pll_params(f_in_hz: float, f_out_hz: float) -> dict:
    """EHXPLLL parameters (feedback from CLKOP) for the output closest to ``f_out_hz``.

    ECP5 sysCLOCK limits (Lattice TN1263): PFD f_in/CLKI_DIV in [3.125, 400] MHz, VCO in
    [400, 800] MHz. With CLKOP as feedback, f_out = f_pfd*CLKFB_DIV and f_vco = f_out*CLKOP_DIV.
    Among equal errors the VCO closest to 600 MHz wins (as ecppll chooses).
    """
    if not 8e6 <= f_in_hz <= 400e6:
        raise ValueError(f"ecp5_pll_params: f_in_hz = {f_in_hz}: out of range, allowed "
                         f"[8e6, 400e6]")
    if not 10e6 <= f_out_hz <= 400e6:
        raise ValueError(f"ecp5_pll_params: f_out_hz = {f_out_hz}: out of range, allowed "
                         f"[10e6, 400e6]")
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in_hz / clki_div
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            for clkop_div in range(1, 129):
                f_vco = f_out * clkop_div
                if not 400e6 <= f_vco <= 800e6:
                    continue
                key = (abs(f_out - f_out_hz), abs(f_vco - 600e6))
                if best is None or key < best[0]:
                    best = (key, clki_div, clkfb_div, clkop_div, f_vco, f_out)
    _, clki_div, clkfb_div, clkop_div, f_vco, f_out = best
    return dict(clki_div=clki_div, clkfb_div=clkfb_div, clkop_div=clkop_div,
                f_vco_hz=f_vco, f_out_hz=f_out)


# ------------------------------------------------------------------------------------------------
# Boards

@dataclass(frozen=True)
class Board:
    """One supported board: its amaranth-boards platform, target clock and SPI header pins."""

    target: str
    name: str
    platform_path: str          # "module:Class" of the amaranth-boards platform
    f_target_hz: float          # sync-domain frequency the PLL is asked for
    spi_conn: tuple             # connector of the SPI pins
    spi_pins: tuple             # (cs_n, sclk, mosi, miso) pin names on that connector
    io_attrs: dict
    extra_leds: str = ""        # name of a platform attribute holding extra LED resources

    def platform(self):
        import importlib
        mod, cls = self.platform_path.split(":")
        return getattr(importlib.import_module(mod), cls)()


BOARDS = {
    "ice40": Board("ice40", "iCEBreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", 48e6,
                   ("pmod", 0), ("1", "4", "2", "3"), {"IO_STANDARD": "SB_LVCMOS"},
                   extra_leds="break_off_pmod"),
    "ecp5": Board("ecp5", "ULX3S", "amaranth_boards.ulx3s:ULX3S_25F_Platform", 100e6,
                  ("gpio", 0), ("0+", "0-", "1+", "1-"), {"IO_TYPE": "LVCMOS33"}),
}

#: Boards that differ from ``BOARDS[target]`` for one design, keyed ``(target, design)``: the
#: diffusion core of the committed net needs ~155 block RAMs (docs/core.md "What fits which
#: FPGA"), more than the LFE5U-25F's 56, so it is built for the ULX3S's LFE5U-85F variant (same
#: board, pins and oscillator).
DESIGN_BOARDS = {
    ("ecp5", "core"): Board("ecp5", "ULX3S-85F", "amaranth_boards.ulx3s:ULX3S_85F_Platform",
                            100e6, ("gpio", 0), ("0+", "0-", "1+", "1-"),
                            {"IO_TYPE": "LVCMOS33"}),
}


def board_for(target: str, design: str) -> Board:
    """The board ``design`` is built on for ``target``: ``DESIGN_BOARDS[(target, design)]``
    when there is one, else ``BOARDS[target]``. Raises ``ValueError`` for an unknown target."""
    if target not in BOARDS:
        raise ValueError(f"board_for: target = {target!r}: allowed {sorted(BOARDS)}")
    return DESIGN_BOARDS.get((target, design), BOARDS[target])


# ------------------------------------------------------------------------------------------------
# Device capacities and a block-RAM estimate (checked before a build is started)

@dataclass(frozen=True)
class DeviceCapacity:
    """What one FPGA device offers, as the vendor's data sheet states it.

    ``bram_configs``: the (depth, width) shapes one block RAM can take; ``spram_bits``: single-
    port RAM that cannot be initialised from the bitstream (iCE40 UltraPlus SPRAM) and that
    Yosys does not infer from an Amaranth ``Memory``; ``source``: the data-sheet table.
    """

    device: str
    luts: int
    brams: int
    bram_bits_each: int
    bram_configs: tuple
    dsps: int
    spram_bits: int
    source: str


_ECP5_DP16KD = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
_ECP5_SOURCE = "Lattice ECP5/ECP5-5G family data sheet FPGA-DS-02012, table 1.1"

#: Per device (the ``platform.device`` string): LUT4s, block RAMs (ECP5 DP16KD 18 kbit, iCE40
#: SB_RAM40_4K 4 kbit), 18 x 18 multipliers (ECP5) or SB_MAC16 (iCE40), SPRAM bits.
DEVICES = {
    "iCE40UP5K": DeviceCapacity(
        "iCE40UP5K", 5280, 30, 4096, ((256, 16), (512, 8), (1024, 4), (2048, 2)), 8,
        4 * 256 * 1024,
        "Lattice iCE40 UltraPlus family data sheet FPGA-DS-02008, table 1.1"),
    "LFE5U-25F": DeviceCapacity("LFE5U-25F", 24_000, 56, 18_432, _ECP5_DP16KD, 28, 0,
                                _ECP5_SOURCE),
    "LFE5U-45F": DeviceCapacity("LFE5U-45F", 44_000, 108, 18_432, _ECP5_DP16KD, 72, 0,
                                _ECP5_SOURCE),
    "LFE5U-85F": DeviceCapacity("LFE5U-85F", 84_000, 208, 18_432, _ECP5_DP16KD, 156, 0,
                                _ECP5_SOURCE),
}


@dataclass(frozen=True)
class MemoryUse:
    """One memory of an elaborated design: hierarchy path, words, bits per word, whether it has
    non-zero initial contents (a ROM or a preloaded table), and the block RAMs it needs."""

    path: str
    depth: int
    width: int
    initialised: bool
    brams: int

    @property
    def bits(self) -> int:
        return self.depth * self.width


def bram_blocks(depth: int, width: int, configs) -> int:
    """Block RAMs for a ``depth`` x ``width`` memory built from one block shape of ``configs``
    (the cheapest shape, ``ceil(depth / d) * ceil(width / w)``)."""
    for name, v in (("depth", depth), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"bram_blocks: {name} = {v!r}: allowed integer >= 1")
    return min(-(-depth // d) * -(-width // w) for d, w in configs)


def memory_inventory(design, device: DeviceCapacity) -> list[MemoryUse]:
    """Every memory of ``design`` (elaborated here without a platform), with its block RAMs on
    ``device``. Yosys may map small memories to LUT RAM or flip-flops instead, so the block RAM
    sum is an upper estimate of what the memories take."""
    from amaranth.hdl import Fragment, MemoryInstance, Shape
    out = []

    def walk(frag, path):
        if isinstance(frag, MemoryInstance):
            d = frag._data           # MemoryData (amaranth 0.5 keeps it here)
            width = Shape.cast(d.shape).width
            init = any(int(v) != 0 for v in d.init._raw)   # the words as integers
            out.append(MemoryUse(path, d.depth, width, init,
                                 bram_blocks(d.depth, width, device.bram_configs)))
        for sub, name, _ in getattr(frag, "subfragments", ()):
            walk(sub, f"{path}.{name}" if path else str(name))

    walk(Fragment.get(design, None), "")
    return out


def memory_fit(design, device: DeviceCapacity) -> dict:
    """Block-RAM fit of ``design`` on ``device`` before any tool runs.

    Returns ``{"memories": [...], "memory_bits", "initialised_bits", "brams_estimate",
    "brams_available", "bram_bits_available", "spram_bits_available", "fits": bool,
    "reason": str}``. ``fits`` is False when the initialised memories alone (they need block
    RAM: SPRAM has no initial contents) exceed the block RAM bits, or every memory together
    exceeds block RAM plus SPRAM bits; otherwise True (the place-and-route decides).
    """
    mems = memory_inventory(design, device)
    bits = sum(m.bits for m in mems)
    init_bits = sum(m.bits for m in mems if m.initialised)
    bram_bits = device.brams * device.bram_bits_each
    est = sum(m.brams for m in mems)
    reason = ""
    if init_bits > bram_bits:
        reason = (f"initialised memories (ROMs, preloaded tables) need {init_bits:,} bit, "
                  f"{device.device} has {device.brams} block RAMs = {bram_bits:,} bit")
    elif bits > bram_bits + device.spram_bits:
        reason = (f"memories need {bits:,} bit, {device.device} has {bram_bits:,} bit of "
                  f"block RAM + {device.spram_bits:,} bit of SPRAM")
    return {"memories": [m.__dict__ | {"bits": m.bits} for m in mems], "memory_bits": bits,
            "initialised_bits": init_bits, "brams_estimate": est,
            "brams_available": device.brams, "bram_bits_available": bram_bits,
            "spram_bits_available": device.spram_bits, "fits": not reason, "reason": reason,
            "source": device.source}


def add_spi_resource(platform, board: Board) -> None:
    """Add the SPI-slave pins (resource ``spi_csr`` 0) to ``platform``."""
    from amaranth_boards.resources import SPIResource
    cs_n, sclk, mosi, miso = board.spi_pins
    platform.add_resources([
        SPIResource("spi_csr", 0, cs_n=cs_n, clk=sclk, copi=mosi, cipo=miso, conn=board.spi_conn,
                    attrs=Attrs(**board.io_attrs), role="peripheral"),
    ])


# ------------------------------------------------------------------------------------------------
# Stand-in design

class SmokeDesign(wiring.Component):
    """Counter-based stand-in with the member shape of the TRNG top (for flow tests and bring-up).

    Registers (addresses from ``model/blocks/csr.py``, subset): ID (ro, ``ID_VALUE``), GEOMETRY
    (ro), CTRL (rw; only ``enable`` is kept, other bits read 0), ROWS_SENSED (ro: words delivered),
    CYCLES (ro). Other addresses read 0, writes to them are ignored. ``r_data`` has the CSR
    bus's read latency (2).

    Stream: while CTRL.enable is set, ``raw.valid`` is high; word k (k = words delivered so far)
    has ``row = k mod rows`` and ``bits = k mod 2**cols``. Back-pressure holds the word (valid
    stays high, payload unchanged) until ``ready``.
    """

    def __init__(self, array_cfg: ArrayConfig | None = None):
        if array_cfg is None:
            array_cfg = ArrayConfig()
        if not isinstance(array_cfg, ArrayConfig):
            raise ValueError(f"SmokeDesign: array_cfg = {array_cfg!r}: must be an ArrayConfig")
        self.array_cfg = array_cfg
        super().__init__({
            "csr": In(CSRBusSignature()),
            "raw": Out(stream.Signature(raw_word_layout(array_cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.array_cfg

        enable = Signal()
        words = Signal(32)
        cycles = Signal(32)
        row = Signal(cfg.row_width)

        m.d.sync += cycles.eq(cycles + 1)
        with m.If(self.csr.w_stb & (self.csr.addr == regmap.addr("CTRL"))):
            m.d.sync += enable.eq(self.csr.w_data[regmap.field("CTRL", "enable").lsb])

        # Read mux with the bus's latency 2: registered address, registered data.
        addr_q = Signal(8)
        m.d.sync += addr_q.eq(self.csr.addr)
        with m.Switch(addr_q):
            with m.Case(regmap.addr("ID")):
                m.d.sync += self.csr.r_data.eq(regmap.ID_VALUE)
            with m.Case(regmap.addr("GEOMETRY")):
                m.d.sync += self.csr.r_data.eq(regmap.pack("GEOMETRY", rows=cfg.rows,
                                                           cols=cfg.cols))
            with m.Case(regmap.addr("CTRL")):
                m.d.sync += self.csr.r_data.eq(enable)
            with m.Case(regmap.addr("ROWS_SENSED")):
                m.d.sync += self.csr.r_data.eq(words)
            with m.Case(regmap.addr("CYCLES")):
                m.d.sync += self.csr.r_data.eq(cycles)
            with m.Default():
                m.d.sync += self.csr.r_data.eq(0)

        m.d.comb += [
            self.raw.valid.eq(enable),
            self.raw.payload.row.eq(row),
            self.raw.payload.bits.eq(words),
        ]
        with m.If(self.raw.valid & self.raw.ready):
            m.d.sync += words.eq(words + 1)
            # The row counter wraps at `rows`, not necessarily a power of two.
            with m.If(row == cfg.rows - 1):
                m.d.sync += row.eq(0)
            with m.Else():
                m.d.sync += row.eq(row + 1)
        return m


def build_smoke_design(target: str | None = None) -> SmokeDesign:
    """Factory used by ``sim/synth.py`` for ``--design smoke``: the same 8 x 8 stand-in for every
    target (``target`` is accepted for the factory interface and not used)."""
    return SmokeDesign(ArrayConfig())


# ------------------------------------------------------------------------------------------------
# The diffusion core behind the CSR bus

#: Registers of :class:`CoreBoardDesign` (byte addresses of 32-bit registers).
CORE_ADDR_STATUS = 0x00     # r:  bit 0 ready, 1 busy, 2 alarm; bits [31:16] noise FIFO level
CORE_ADDR_CTRL = 0x04       # w:  bit 0 start one image, bit 1 clear (each a one-cycle pulse)
CORE_ADDR_STEPS = 0x08      # rw: rows of the next image (sampled with start)
CORE_ADDR_TAB_SEL = 0x0C    # w:  bits [2:0] table target, bits [31:8] table address
CORE_ADDR_TAB_GO = 0x10     # w:  bits [15:0] data; offers one beat on the core's tables port
CORE_ADDR_CNT_SEL = 0x14    # rw: counter index: CORE_COUNTERS order, then cycles, busy_cycles
CORE_ADDR_CNT_LO = 0x18     # r:  bits [31:0] of the selected counter
CORE_ADDR_CNT_HI = 0x1C     # r:  bits [63:32] of the selected counter


class CoreBoardDesign(wiring.Component):
    """A ``hw.core.DiffusionCore`` with a CSR bank, for :class:`BoardTop` (``make synth
    DESIGN=core``): every port of the core is reachable from the SPI host, so synthesis keeps
    all of it.

    Registers: ``CORE_ADDR_*`` above. A write to TAB_GO holds the tables port's ``valid`` high
    until the core takes the beat (a host polls nothing: the port is ready whenever the core is
    idle). Reads have the bus latency ``hw.csr.CSR_READ_LATENCY`` (2 cycles). The pixel stream
    ``pix`` is a port of this component (BoardTop counts and folds it); ``running`` is the
    core's ``busy`` and ``alarm`` its alarm (LEDs).

    Parameters
    ----------
    core : hw.core.DiffusionCore
        The core as :func:`hw.core.build_core` generated it.
    """

    #: Extra Yosys options per target (``sim/synth.py``): the multipliers into SB_MAC16 on iCE40.
    synth_opts = {"ice40": "-dsp"}

    def __init__(self, core, description: str = "core"):
        from hw.core import CORE_COUNTERS, DiffusionCore
        self._MustUse__silence = True   # a rejected wrapper is not an unused elaboratable
        if not isinstance(core, DiffusionCore):
            raise ValueError(f"CoreBoardDesign.core = {type(core).__name__}: must be a "
                             f"DiffusionCore (hw.core.build_core)")
        addr_bits = len(core.tables.payload.addr)
        if addr_bits > 24:
            raise ValueError(f"CoreBoardDesign.core: table address of {addr_bits} bits: "
                             f"allowed at most 24")
        self._MustUse__silence = False
        self.core = core
        self.description = description
        self.counter_names = tuple(CORE_COUNTERS) + ("cycles", "busy_cycles")
        super().__init__({
            "csr": In(CSRBusSignature()),
            "pix": Out(core.signature.members["pix"].signature),
            "running": Out(1),
            "alarm": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        bus = self.csr

        def wr(addr):
            return bus.w_stb & (bus.addr == addr)

        start, clear = Signal(), Signal()
        steps = Signal(len(core.steps))
        tab_sel = Signal(32)
        tab_valid = Signal()
        tab_data = Signal(32)
        cnt_sel = Signal(range(len(self.counter_names)))
        m.d.sync += [start.eq(wr(CORE_ADDR_CTRL) & bus.w_data[0]),
                     clear.eq(wr(CORE_ADDR_CTRL) & bus.w_data[1])]
        for addr, reg in ((CORE_ADDR_STEPS, steps), (CORE_ADDR_TAB_SEL, tab_sel),
                          (CORE_ADDR_CNT_SEL, cnt_sel)):
            with m.If(wr(addr)):
                m.d.sync += reg.eq(bus.w_data)
        with m.If(wr(CORE_ADDR_TAB_GO)):
            m.d.sync += [tab_valid.eq(1), tab_data.eq(bus.w_data)]
        with m.Elif(core.tables.ready):
            m.d.sync += tab_valid.eq(0)
        tp = core.tables.payload
        m.d.comb += [
            core.start.eq(start), core.clear.eq(clear), core.steps.eq(steps),
            core.tables.valid.eq(tab_valid), tp.target.eq(tab_sel[:3]),
            tp.addr.eq(tab_sel[8:]), tp.data.eq(tab_data),
            self.running.eq(core.busy), self.alarm.eq(core.alarm),
        ]
        wiring.connect(m, core.pix, wiring.flipped(self.pix))

        # The selected counter (zero-extended to 64 bits).
        values = [getattr(core.counters, n) for n in self.counter_names[:-2]] + \
                 [core.cycles, core.busy_cycles]
        selected = Signal(64)
        with m.Switch(cnt_sel):
            for i, v in enumerate(values):
                with m.Case(i):
                    m.d.comb += selected.eq(v)

        # Read mux with the bus's latency 2: registered address, registered data.
        addr_q = Signal(8)
        m.d.sync += addr_q.eq(bus.addr)
        with m.Switch(addr_q):
            with m.Case(CORE_ADDR_STATUS):
                m.d.sync += bus.r_data.eq(Cat(core.ready, core.busy, core.alarm,
                                              Const(0, 13), core.noise_level))
            with m.Case(CORE_ADDR_STEPS):
                m.d.sync += bus.r_data.eq(steps)
            with m.Case(CORE_ADDR_CNT_SEL):
                m.d.sync += bus.r_data.eq(cnt_sel)
            with m.Case(CORE_ADDR_CNT_LO):
                m.d.sync += bus.r_data.eq(selected[:32])
            with m.Case(CORE_ADDR_CNT_HI):
                m.d.sync += bus.r_data.eq(selected[32:])
            with m.Default():
                m.d.sync += bus.r_data.eq(0)
        return m


# ------------------------------------------------------------------------------------------------
# Board wrapper

class BoardTop(Elaboratable):
    """Puts a design (``csr`` member + output streams) on a board, or into simulation.

    Parameters
    ----------
    design:
        The component to wrap. Its ``csr`` must be ``In(CSRBusSignature())``, and it must have 1 to
        ``MAX_STREAMS`` ``Out`` stream members (:func:`output_streams`: e.g. ``raw``, or ``words``
        and ``gauss``); optional 1-bit ``Out`` members ``running`` and ``alarm`` go to LEDs.
    board:
        A :class:`Board` (from ``BOARDS``) for synthesis; ``None`` for simulation, where the SPI
        pins are the attributes ``sclk``, ``cs_n``, ``mosi``, ``miso`` and the LEDs ``leds``, and
        the ``sync`` domain comes from the simulator.
    f_heartbeat_hz:
        Approximate heartbeat LED blink rate (the divider is a power of two).

    Latency: register reads through the board's own mux keep the bus's 2-cycle ``r_data``
    latency. No output stream is ever back-pressured (every ``ready`` is held high); a word is
    counted and folded at the clock edge that accepts it (``valid`` high).
    """

    N_LEDS = 4

    def __init__(self, design, board: Board | None = None, *, f_heartbeat_hz: float = 1.0):
        members = getattr(getattr(design, "signature", None), "members", None)
        streams = output_streams(design)
        if members is None or "csr" not in members or not streams:
            self._reject(f"BoardTop: design = {design!r}: must be a component with a member "
                         f"'csr' and at least one Out stream member")
        if len(streams) > MAX_STREAMS:
            self._reject(f"BoardTop: design = {design!r}: {len(streams)} output streams "
                         f"{streams}, allowed 1 .. {MAX_STREAMS}")
        if board is not None and not isinstance(board, Board):
            self._reject(f"BoardTop: board = {board!r}: must be a Board or None")
        used = {r.addr for r in regmap.REGS if r.addr >= min(BOARD_ADDRS)}
        if used:
            self._reject(f"BoardTop: register map uses the board addresses "
                         f"{sorted(hex(a) for a in used)}; move the board's stream registers")
        if not f_heartbeat_hz > 0:
            self._reject(f"BoardTop: f_heartbeat_hz = {f_heartbeat_hz}: must be > 0")
        self.design = design
        self.streams = streams
        self.board = board
        self.f_heartbeat_hz = f_heartbeat_hz
        # Simulation-mode pins.
        self.sclk = Signal()
        self.cs_n = Signal(init=1)
        self.mosi = Signal()
        self.miso = Signal()
        self.leds = Signal(self.N_LEDS)
        self.pll = None             # PLL parameters once elaborated for a board
        self.f_sync_hz = None       # sync frequency once elaborated for a board

    def _reject(self, msg):
        self._MustUse__silence = True   # a rejected wrapper is not an unused elaboratable
        raise ValueError(msg)

    # -- clocking --------------------------------------------------------------------------------

    def _clocking(self, m, platform):
        """Create ``sync`` from the board oscillator through the PLL; hold reset until lock."""
        board = self.board
        clk = Signal()
        lock = Signal()
        f_in = platform.default_clk_frequency
        if board.target == "ice40":
            p = ice40_pll_params(f_in, board.f_target_hz)
            # SB_PLL40_PAD: the oscillator pin (35 on the iCEBreaker) is the PLL's dedicated
            # input pad, so the raw port (no SB_IO buffer) goes straight to PACKAGEPIN.
            clk_io = platform.request(platform.default_clk, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=p["divr"], p_DIVF=p["divf"], p_DIVQ=p["divq"],
                p_FILTER_RANGE=p["filter_range"],
                i_PACKAGEPIN=clk_io.io,
                i_RESETB=Const(1), i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=clk, o_LOCK=lock)
        elif board.target == "ecp5":
            p = ecp5_pll_params(f_in, board.f_target_hz)
            m.submodules.clk_buf = clk_buf = io.Buffer(
                "i", platform.request(platform.default_clk, dir="-"))
            clk_in = clk_buf.i
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=str(round(f_in / 1e6)),
                a_FREQUENCY_PIN_CLKOP=str(round(p["f_out_hz"] / 1e6)),
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_CLKI_DIV=p["clki_div"], p_CLKFB_DIV=p["clkfb_div"],
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["clkop_div"],
                p_CLKOP_CPHASE=max(0, p["clkop_div"] // 2 - 1), p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP",
                i_CLKI=clk_in, i_CLKFB=clk, i_RST=Const(0), i_STDBY=Const(0),
                i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1),
                i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0),
                i_ENCLKOP=Const(0),
                o_CLKOP=clk, o_LOCK=lock)
        else:  # pragma: no cover - BOARDS only holds the two above
            raise ValueError(f"BoardTop: no clocking for target {board.target!r}")
        self.pll = p
        self.f_sync_hz = p["f_out_hz"]
        # No explicit constraint on `clk`: nextpnr derives the PLL output's constraint from the
        # board oscillator's (ice40 and ecp5 both log "Derived frequency constraint"), whereas a
        # constraint on the Amaranth name is lost when Yosys renames the flattened net.

        # Reset: held until the PLL has locked and then for a further ~20 us. On iCE40 the BRAMs
        # read as zero for ~3 us after configuration (see amaranth's iCE40 platform), so a plain
        # "lock" reset is not enough. The counter lives in a reset-less domain on the PLL clock.
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.domains.sync = ClockDomain("sync")
        delay = int(20e-6 * p["f_out_hz"])
        timer = Signal(range(delay + 1))
        ready = Signal()
        m.d.comb += [ClockSignal("por").eq(clk), ClockSignal("sync").eq(clk),
                     ResetSignal("sync").eq(~ready)]
        with m.If(~lock):
            m.d.por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)

    # -- elaborate -------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        design = self.design
        m.submodules.design = design
        m.submodules.bridge = bridge = SPICSRBridge()

        if self.board is not None:
            self._clocking(m, platform)
            f_sync = self.f_sync_hz
            add_spi_resource(platform, self.board)
            spi = platform.request("spi_csr", 0, dir="-")
            m.submodules.cs_buf = cs_buf = io.Buffer("i", spi.cs)
            m.submodules.sclk_buf = sclk_buf = io.Buffer("i", spi.clk)
            m.submodules.mosi_buf = mosi_buf = io.Buffer("i", spi.copi)
            m.submodules.miso_buf = miso_buf = io.Buffer("o", spi.cipo)   # tristate: has oe
            # PinsN on cs: the port is inverted, so cs_buf.i is 1 while the master selects us.
            m.d.comb += [
                bridge.cs_n.eq(~cs_buf.i),
                bridge.sclk.eq(sclk_buf.i),
                bridge.mosi.eq(mosi_buf.i),
                miso_buf.o.eq(bridge.miso),
                miso_buf.oe.eq(bridge.miso_oe),
            ]
            if self.board.extra_leds:
                platform.add_resources(getattr(platform, self.board.extra_leds))
            for i in range(self.N_LEDS):
                try:
                    port = platform.request("led", i, dir="-")
                except ResourceError:  # the board has fewer LEDs: those functions stay internal
                    break
                m.submodules[f"led_buf_{i}"] = led_buf = io.Buffer("o", port)
                m.d.comb += led_buf.o.eq(self.leds[i])
        else:
            f_sync = 1e6  # only sets the heartbeat divider in simulation
            m.d.comb += [
                bridge.cs_n.eq(self.cs_n),
                bridge.sclk.eq(self.sclk),
                bridge.mosi.eq(self.mosi),
                self.miso.eq(bridge.miso),
            ]

        # -- CSR interconnect: the board answers BOARD_ADDRS, everything else goes to the design.
        # r_data keeps the bus latency (2): the board's own read data is registered twice here, and
        # the selector alongside, so the mux picks the source addressed two cycles ago.
        bus = bridge.bus
        local = Signal()
        local_q = Signal()
        local_r = Signal(32)
        # The board's registers occupy 0xE0..0xFF (all MAX_STREAMS pairs, used or not), so one
        # compare of the top three address bits decodes them.
        assert min(BOARD_ADDRS) == 0x100 - 8 * MAX_STREAMS and MAX_STREAMS * 8 == 32
        m.d.comb += [
            local.eq(bus.addr[5:8] == 0b111),
            design.csr.addr.eq(bus.addr),
            design.csr.w_data.eq(bus.w_data),
            # Writes to board registers are ignored. Gated with the *registered* selector: the
            # bridge holds `addr` from a frame's 16th bit and strobes w_stb only after its 48th, so
            # local_q == local whenever w_stb is high, and the board's address compare stays off
            # the design's write-decode path (on the iCE40 that path ends in the clock enable of
            # every emulator generator, through a global buffer, and limits Fmax).
            design.csr.w_stb.eq(bus.w_stb & ~local_q),
            bus.r_data.eq(local_q.as_unsigned().replicate(32) & local_r |
                          ~local_q.as_unsigned().replicate(32) & design.csr.r_data),
        ]
        local_q1 = Signal()
        m.d.sync += [local_q1.eq(local), local_q.eq(local_q1)]

        # -- output streams: always ready, each counted and folded into its own registers.
        # Every payload bit reaches a fold register, so synthesis keeps all of the design's
        # output logic; separate registers per stream keep each fold a plain function of that
        # stream's word sequence (fold_step), whatever the interleaving of the streams.
        # Latency 2 like the design's bank: registered address, then registered data.
        addr_q = Signal(8)
        m.d.sync += addr_q.eq(bus.addr)
        m.d.sync += local_r.eq(0)
        any_valid = Const(0, 1)
        for k, name in enumerate(self.streams):
            port = getattr(design, name)
            payload = Value.cast(port.payload).as_unsigned()
            chunk_xor = Const(0, 32)
            for lsb in range(0, len(payload), 32):
                chunk_xor = chunk_xor ^ payload[lsb:lsb + 32]
            fold = Signal(32, name=f"{name}_fold")
            count = Signal(32, name=f"{name}_count")
            m.d.comb += port.ready.eq(1)
            with m.If(port.valid):
                m.d.sync += [
                    fold.eq(Cat(fold[31], fold[:31]) ^ chunk_xor),
                    count.eq(count + 1),
                ]
            count_addr, fold_addr = stream_register_addrs(k)
            with m.If(addr_q == fold_addr):
                m.d.sync += local_r.eq(fold)
            with m.If(addr_q == count_addr):
                m.d.sync += local_r.eq(count)
            any_valid = any_valid | port.valid

        # -- LEDs: 0 heartbeat, 1 output activity, any stream (stretched), 2 running, 3 alarm (when
        # present).
        hb_bits = max(1, int(f_sync / self.f_heartbeat_hz / 2).bit_length())
        heartbeat = Signal(hb_bits)
        m.d.sync += heartbeat.eq(heartbeat + 1)
        stretch_bits = max(1, int(f_sync * 0.05).bit_length())  # ~50 ms per output-word burst
        stretch = Signal(stretch_bits)
        with m.If(any_valid):
            m.d.sync += stretch.eq(-1)
        with m.Elif(stretch != 0):
            m.d.sync += stretch.eq(stretch - 1)
        led_fn = [heartbeat[-1], stretch != 0]
        members = design.signature.members
        for name in ("running", "alarm"):
            if name in members and members[name].flow == Out and members[name].is_port:
                led_fn.append(Value.cast(getattr(design, name)).any())
        # Registered, so LED decode logic never sits on a path to an output pin.
        m.d.sync += [self.leds[i].eq(v) for i, v in enumerate(led_fn[:self.N_LEDS])]
        return m
