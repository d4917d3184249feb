"""Parameters and integer rules shared by the crossbar RTL (``hw/crossbar.py``,
``hw/layer_engine.py``) and their bit-exact twins (``model/blocks/crossbar.py``,
``model/blocks/layer_engine.py``).

One definition, imported by both sides. The rules are written out in ``docs/crossbar.md``; in
short (``>>`` is an arithmetic shift, i.e. floor division by a power of two)::

    acc_c   = sum_r W[r, c] * x[r]                                  exact, acc_bits wide
    adc_c   = sat_adc(round_shift(acc_c, adc_shift))                per tile, per column
    s_j     = sum over the row blocks of adc_j                      digital, exact
    z_j     = s_j + bias_j
    q_j     = sat_in(round_shift(z_j, out_shift))                   back to DAC codes
    y_j     = q_j | max(q_j, 0) | LUT[q_j - in_min]                 activation (none, relu, lut)

    round_shift(v, s) = v                          if s == 0
                      = (v + 2**(s-1)) >> s        otherwise         (round half up)

Every dataclass validates itself in ``__post_init__`` and raises ``ValueError`` naming the field,
its value and the allowed range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.blocks.config import check_int

#: Activation selector of a layer descriptor.
ACT_NONE = 0
ACT_RELU = 1
ACT_LUT = 2
ACTS = (ACT_NONE, ACT_RELU, ACT_LUT)
ACT_NAMES = {ACT_NONE: "none", ACT_RELU: "relu", ACT_LUT: "lut"}


def clog2(n: int) -> int:
    """Bits needed to count ``n`` distinct values (ceil(log2(n)); 0 for n <= 1)."""
    return max(0, (int(n) - 1).bit_length())


def round_shift(v, s: int):
    """``v / 2**s`` rounded half up, in integers (works on ints and int64 arrays)."""
    if s < 0:
        raise ValueError(f"round_shift.s = {s}: out of range, allowed [0, 63]")
    if s == 0:
        return v
    return (v + (1 << (s - 1))) >> s


def sat(v, lo: int, hi: int):
    """Clamp ``v`` (int or array) to ``[lo, hi]``."""
    if isinstance(v, np.ndarray):
        return np.clip(v, lo, hi)
    return lo if v < lo else hi if v > hi else v


def signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1



#: Most weight slots (rows × cols blocks) one tile holds: the engine's slot address is 12 bits.
MAX_SLOTS = 4096

@dataclass(frozen=True)
class TileConfig:
    """Compile-time parameters of one crossbar MAC tile (``hw.crossbar.CrossbarTile``).

    Attributes
    ----------
    rows, cols:
        R inputs (crossbar rows, word lines) by C outputs (columns, bit lines).
    weight_bits:
        Bits of a signed (two's complement) weight code. The analog mapping uses the symmetric
        range ``[-(2**(wb-1) - 1), 2**(wb-1) - 1]``; the digital tile computes any code exactly.
    input_bits:
        Bits of a DAC input code.
    input_signed:
        Input codes are two's complement (``True``) or unsigned (``False``). In the bit-serial
        mode the top bit-plane of a signed code carries weight ``-2**(input_bits-1)``.
    adc_bits:
        Bits of a signed ADC output code; the ADC clips at both rails.
    macs_per_cycle:
        P multiply-accumulates per clock (P lanes over adjacent columns); must divide ``cols``.
    bit_serial:
        One input bit-plane per step, shift-add (as a bit-serial DAC does); results are equal to
        the parallel mode's by construction (``docs/crossbar.md`` §2).
    slots:
        Weight blocks held (each one R x C tile's conductances). The layer engine maps every
        block of a large matrix to its own slot: one time-multiplexed datapath standing for
        ``slots`` physical tiles whose weights stay resident.
    """

    rows: int = 16
    cols: int = 16
    weight_bits: int = 8
    input_bits: int = 8
    input_signed: bool = True
    adc_bits: int = 8
    macs_per_cycle: int = 4
    bit_serial: bool = False
    slots: int = 1

    def __post_init__(self):
        o = "TileConfig"
        check_int(o, "rows", self.rows, 1, 1024)
        check_int(o, "cols", self.cols, 1, 1024)
        check_int(o, "weight_bits", self.weight_bits, 2, 16)
        check_int(o, "input_bits", self.input_bits, 1, 16)
        if not isinstance(self.input_signed, bool):
            raise ValueError(f"{o}.input_signed = {self.input_signed!r}: must be True or False")
        if self.input_signed and self.input_bits < 2:
            raise ValueError(f"{o}.input_bits = {self.input_bits}: a signed input needs at "
                             f"least 2 bits, allowed [2, 16]")
        check_int(o, "adc_bits", self.adc_bits, 2, 32)
        check_int(o, "macs_per_cycle", self.macs_per_cycle, 1, self.cols)
        if self.cols % self.macs_per_cycle:
            divs = [d for d in range(1, self.cols + 1) if self.cols % d == 0]
            raise ValueError(f"{o}.macs_per_cycle = {self.macs_per_cycle}: must divide "
                             f"cols = {self.cols}, allowed {divs}")
        if not isinstance(self.bit_serial, bool):
            raise ValueError(f"{o}.bit_serial = {self.bit_serial!r}: must be True or False")
        check_int(o, "slots", self.slots, 1, MAX_SLOTS)

    # -- derived --------------------------------------------------------------------------------
    @property
    def groups(self) -> int:
        """G = C / P column groups, computed one after another."""
        return self.cols // self.macs_per_cycle

    @property
    def weight_range(self) -> tuple[int, int]:
        return signed_range(self.weight_bits)

    @property
    def input_range(self) -> tuple[int, int]:
        if self.input_signed:
            return signed_range(self.input_bits)
        return 0, (1 << self.input_bits) - 1

    @property
    def adc_range(self) -> tuple[int, int]:
        return signed_range(self.adc_bits)

    @property
    def acc_bits(self) -> int:
        """Signed width that holds any column sum exactly: wb + ib + 1 + clog2(R)."""
        return self.weight_bits + self.input_bits + 1 + clog2(self.rows)

    @property
    def max_adc_shift(self) -> int:
        """Largest useful ``adc_shift`` (all codes shifted out)."""
        return self.acc_bits

    @property
    def words_per_slot(self) -> int:
        """Programming-port words per slot: R x G, each word P weights."""
        return self.rows * self.groups

    @property
    def weight_words(self) -> int:
        return self.words_per_slot * self.slots

    def weight_addr(self, slot: int, row: int, group: int) -> int:
        """Programming-port address of (slot, row, group): ``(slot*G + group)*R + row``."""
        return (slot * self.groups + group) * self.rows + row

    def mvm_cycles(self) -> int:
        """Nominal cycles of one MVM with the output never blocked (docs/crossbar.md §3):
        ``R + Q + (G-1)*max(Q, P+4) + P + 7`` with ``Q = R*steps`` (R load cycles, G groups of
        Q items each, a group's P columns sent while the next one is computed, at most one group
        every P + 4 cycles, 7 pipeline cycles)."""
        q = self.rows * (self.input_bits if self.bit_serial else 1)
        p = self.macs_per_cycle
        return self.rows + q + (self.groups - 1) * max(q, p + 4) + p + 7


@dataclass(frozen=True)
class EngineConfig:
    """Compile-time parameters of the layer engine (``hw.layer_engine.LayerEngine``).

    Attributes
    ----------
    tile:
        The crossbar tile the engine time-multiplexes; its ``slots`` bound the total number of
        R x C weight blocks of all layers.
    max_dim:
        Entries of each activation buffer: the largest layer input or output width.
    max_layers:
        Entries of the layer-descriptor table.
    bias_bits:
        Bits of a signed bias, in ADC-code units of its layer.
    bias_entries:
        Entries of the bias memory (all layers' outputs together).
    """

    tile: TileConfig = TileConfig()
    max_dim: int = 64
    max_layers: int = 4
    bias_bits: int = 16
    bias_entries: int = 256

    def __post_init__(self):
        o = "EngineConfig"
        if not isinstance(self.tile, TileConfig):
            raise ValueError(f"{o}.tile = {self.tile!r}: must be a TileConfig")
        check_int(o, "max_dim", self.max_dim, 1, 65536)
        check_int(o, "max_layers", self.max_layers, 1, 256)
        check_int(o, "bias_bits", self.bias_bits, 2, 32)
        check_int(o, "bias_entries", self.bias_entries, 1, 1 << 20)

    @property
    def sum_bits(self) -> int:
        """Signed width of s_j + bias_j: enough for every row block of a max_dim input."""
        t = self.tile
        blocks = -(-self.max_dim // t.rows)
        return max(t.adc_bits + clog2(blocks), self.bias_bits) + 2

    @property
    def max_out_shift(self) -> int:
        return self.sum_bits

    @property
    def lut_entries(self) -> int:
        return 1 << self.tile.input_bits


@dataclass(frozen=True)
class LayerDesc:
    """One entry of the layer-descriptor table (run time).

    Row blocks ``RB = ceil(in_dim / R)``, column blocks ``CB = ceil(out_dim / C)``; block
    (cb, rb) uses slot ``slot_base + cb*RB + rb`` and output j uses bias ``bias_base + j``.
    """

    in_dim: int
    out_dim: int
    slot_base: int = 0
    bias_base: int = 0
    adc_shift: int = 0
    out_shift: int = 0
    act: int = ACT_NONE

    def check(self, cfg: EngineConfig, owner: str = "LayerDesc") -> "LayerDesc":
        t = cfg.tile
        check_int(owner, "in_dim", self.in_dim, 1, cfg.max_dim)
        check_int(owner, "out_dim", self.out_dim, 1, cfg.max_dim)
        check_int(owner, "adc_shift", self.adc_shift, 0, t.max_adc_shift)
        check_int(owner, "out_shift", self.out_shift, 0, cfg.max_out_shift)
        if self.act not in ACTS:
            raise ValueError(f"{owner}.act = {self.act!r}: must be one of {ACTS} "
                             f"(none, relu, lut)")
        check_int(owner, "slot_base", self.slot_base, 0, t.slots - self.blocks(t))
        check_int(owner, "bias_base", self.bias_base, 0, cfg.bias_entries - self.out_dim)
        return self

    def row_blocks(self, t: TileConfig) -> int:
        return -(-self.in_dim // t.rows)

    def col_blocks(self, t: TileConfig) -> int:
        return -(-self.out_dim // t.cols)

    def blocks(self, t: TileConfig) -> int:
        return self.row_blocks(t) * self.col_blocks(t)

    def slot(self, t: TileConfig, cb: int, rb: int) -> int:
        return self.slot_base + cb * self.row_blocks(t) + rb


# ------------------------------------------------------------------------------------------------
# Configuration-port encoding of the layer engine (docs/crossbar.md §4), shared by RTL and twin.
#: ``target`` field of a configuration-port write.
CFG_BIAS = 0
CFG_LUT = 1
CFG_LAYER = 2


def layer_fields(cfg: EngineConfig) -> list[tuple[str, int]]:
    """Fields of a packed layer descriptor, least significant first, with their widths."""
    t = cfg.tile
    return [
        ("in_dim", (cfg.max_dim).bit_length()),
        ("out_dim", (cfg.max_dim).bit_length()),
        ("slot_base", max(1, clog2(t.slots))),
        ("bias_base", max(1, clog2(cfg.bias_entries))),
        ("adc_shift", (t.max_adc_shift).bit_length()),
        ("out_shift", (cfg.max_out_shift).bit_length()),
        ("act", 2),
    ]


def layer_desc_bits(cfg: EngineConfig) -> int:
    return sum(w for _, w in layer_fields(cfg))


def cfg_data_bits(cfg: EngineConfig) -> int:
    """Width of the configuration port's ``data``: a descriptor, a bias or a LUT entry."""
    return max(layer_desc_bits(cfg), cfg.bias_bits, cfg.tile.input_bits)


def cfg_addr_bits(cfg: EngineConfig) -> int:
    return max(1, clog2(max(cfg.bias_entries, cfg.lut_entries, cfg.max_layers)))


def pack_layer(cfg: EngineConfig, desc: LayerDesc) -> int:
    """The ``data`` word that writes ``desc`` (fields of :func:`layer_fields`, LSB first)."""
    desc.check(cfg)
    word, pos = 0, 0
    for name, width in layer_fields(cfg):
        word |= int(getattr(desc, name)) << pos
        pos += width
    return word


def unpack_layer(cfg: EngineConfig, word: int) -> LayerDesc:
    vals, pos = {}, 0
    for name, width in layer_fields(cfg):
        vals[name] = (word >> pos) & ((1 << width) - 1)
        pos += width
    return LayerDesc(**vals)
