"""Parameters shared by the MTJ-array RTL (``hw/``) and its bit-exact twins (``model/blocks/``).

One definition, imported by both sides, so the RTL and the twin cannot drift apart. Every
dataclass validates itself once in ``__post_init__`` and raises :class:`ValueError` naming the
field, its value and the allowed range. The cycle-level protocol these numbers drive is written
down in ``docs/mtj-array.md``.
"""

from __future__ import annotations

from dataclasses import dataclass


def check_int(owner: str, name: str, value, lo: int, hi: int) -> None:
    """Raise ``ValueError`` unless ``lo <= value <= hi`` and ``value`` is an ``int``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{owner}.{name} = {value!r}: must be an integer in [{lo}, {hi}]")
    if not lo <= value <= hi:
        raise ValueError(f"{owner}.{name} = {value}: out of range, allowed [{lo}, {hi}]")


@dataclass(frozen=True)
class ArrayConfig:
    """Geometry and timing of the MTJ array and its controller (calibration included).

    Attributes
    ----------
    rows, cols:
        Array size N x M. One row is pulsed and sensed at a time; its ``cols`` cells in parallel.
    code_width:
        Bits of the per-cell pulse-amplitude (DAC) code. Codes run 0 .. 2**code_width - 1.
    reset_cycles, pulse_cycles:
        Length of the reset pulse and of the stochastic pulse, in clock cycles.
    window_log2:
        Calibration window: each cell's ones are counted over W = 2**window_log2 trials.
    deadband:
        No code change while |ones - W/2| <= deadband.
    step_shift:
        Proportional step: a cell outside the deadband moves by max(1, |ones - W/2| >> step_shift).
    code_init:
        Every cell's code after reset.
    """

    rows: int = 8
    cols: int = 8
    code_width: int = 8
    reset_cycles: int = 2
    pulse_cycles: int = 2
    window_log2: int = 6
    deadband: int = 0
    step_shift: int = 2
    code_init: int = 128

    def __post_init__(self):
        o = "ArrayConfig"
        check_int(o, "rows", self.rows, 1, 256)
        check_int(o, "cols", self.cols, 1, 64)
        check_int(o, "code_width", self.code_width, 1, 12)
        check_int(o, "reset_cycles", self.reset_cycles, 1, 255)
        check_int(o, "pulse_cycles", self.pulse_cycles, 1, 255)
        check_int(o, "window_log2", self.window_log2, 1, 16)
        check_int(o, "deadband", self.deadband, 0, self.window // 2)
        check_int(o, "step_shift", self.step_shift, 0, self.window_log2)
        check_int(o, "code_init", self.code_init, 0, self.code_max)

    @property
    def window(self) -> int:
        """Calibration window W in trials per cell."""
        return 1 << self.window_log2

    @property
    def code_max(self) -> int:
        return (1 << self.code_width) - 1

    @property
    def row_width(self) -> int:
        """Bits of a row index (at least 1, so a one-row array still has a field)."""
        return max(1, (self.rows - 1).bit_length())

    @property
    def cells(self) -> int:
        return self.rows * self.cols

    @property
    def row_period_cycles(self) -> int:
        """Cycles from one row's first reset cycle to the next row's: RESET + PULSE + SETTLE + SENSE."""
        return self.reset_cycles + self.pulse_cycles + 2


@dataclass(frozen=True)
class EmulatorConfig:
    """The synthesizable MTJ-array emulator: a pseudo-random stand-in for the analog array.

    Attributes
    ----------
    prob_bits:
        U: switching thresholds are U-bit integers; a cell switches when the top U bits of its
        column's xoshiro128++ output are below the threshold, so P = thr / 2**U.
    offset_width:
        Bits of the signed per-cell code offset that models device-to-device V50 spread.
    warmup_steps:
        Generator steps taken after reset or reseed before the emulator reports ready.
    table:
        2**code_width thresholds, one per (offset-shifted) amplitude code, from the device model.
    offsets:
        rows*cols signed initial offsets, row-major (cell index = row * cols + col).
    seed:
        32-bit seed loaded at reset (the SEED register's reset value).
    """

    array: ArrayConfig
    table: tuple[int, ...]
    offsets: tuple[int, ...] = ()
    prob_bits: int = 16
    offset_width: int = 8
    warmup_steps: int = 16
    seed: int = 1

    def __post_init__(self):
        o = "EmulatorConfig"
        check_int(o, "prob_bits", self.prob_bits, 1, 32)
        check_int(o, "offset_width", self.offset_width, 2, 16)
        check_int(o, "warmup_steps", self.warmup_steps, 0, 1024)
        check_int(o, "seed", self.seed, 0, 2**32 - 1)
        n = 1 << self.array.code_width
        if len(self.table) != n:
            raise ValueError(f"EmulatorConfig.table: has {len(self.table)} entries, must have "
                             f"2**code_width = {n}")
        for i, t in enumerate(self.table):
            check_int(o, f"table[{i}]", t, 0, (1 << self.prob_bits) - 1)
        if not self.offsets:
            object.__setattr__(self, "offsets", (0,) * self.array.cells)
        if len(self.offsets) != self.array.cells:
            raise ValueError(f"EmulatorConfig.offsets: has {len(self.offsets)} entries, must have "
                             f"rows*cols = {self.array.cells}")
        lim = 1 << (self.offset_width - 1)
        for i, v in enumerate(self.offsets):
            check_int(o, f"offsets[{i}]", v, -lim, lim - 1)


def _check_float(owner: str, name: str, value, lo: float, hi: float, lo_open: bool = False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        (lo < value if lo_open else lo <= value) and value <= hi)
    if not ok:
        left = "(" if lo_open else "["
        raise ValueError(f"{owner}.{name} = {value!r}: out of range, allowed {left}{lo}, {hi}]")


@dataclass(frozen=True)
class HealthConfig:
    """Per-cell health tests on the raw bits (NIST SP 800-90B §4.4 plus a lag-1 test).

    Attributes
    ----------
    min_entropy:
        H, the declared min-entropy per raw bit, in (0, 1]. Default 0.8, measured: the
        smallest NIST SP 800-90B estimate (NIST's non-IID estimators, pinned package
        sp800-90b==0.1.1) over 10^6 raw bits of the calibrated device model and of the twin,
        in raw-word order, cell-major order and single cells' own streams, and over the restart
        rows and columns, was 0.828 (``python -m sim.validate``, seed 1, part "SP 800-90B";
        docs/validation.md), floored to 0.1.
    alpha_log2:
        False-alarm probability per test decision α = 2**alpha_log2; SP 800-90B allows
        2**-20 ... 2**-40, so alpha_log2 in [-40, -20].
    apt_window:
        W of the adaptive proportion test, samples per cell (1024 for binary sources).
    corr_window:
        Samples per cell in one window of the lag-1 (transition count) test.
    holdback:
        Samples per cell held back before release (0 = off); see docs/trng-readout.md.
    """

    array: ArrayConfig
    min_entropy: float = 0.8        # measured, see min_entropy above (was 0.5, declared)
    alpha_log2: int = -30
    apt_window: int = 1024
    corr_window: int = 1024
    holdback: int = 0

    def __post_init__(self):
        o = "HealthConfig"
        _check_float(o, "min_entropy", self.min_entropy, 0.0, 1.0, lo_open=True)
        check_int(o, "alpha_log2", self.alpha_log2, -40, -20)
        check_int(o, "apt_window", self.apt_window, 16, 65536)
        check_int(o, "corr_window", self.corr_window, 16, 65536)
        check_int(o, "holdback", self.holdback, 0, 65536)


@dataclass(frozen=True)
class ConditionerConfig:
    """Conditioning and packing. Mode and k are run-time (CSR); these are the build limits.

    Attributes
    ----------
    max_fold:
        Largest XOR-fold factor k accepted at run time (k in [1, max_fold]).
    word_bits:
        W, bits per packed output word.
    """

    array: ArrayConfig
    max_fold: int = 8
    word_bits: int = 32

    def __post_init__(self):
        o = "ConditionerConfig"
        check_int(o, "max_fold", self.max_fold, 1, 64)
        check_int(o, "word_bits", self.word_bits, 8, 64)


@dataclass(frozen=True)
class GaussConfig:
    """Gaussian generator on packed words, output in signed fixed point Q(int_bits).(frac_bits).

    Attributes
    ----------
    word_bits:
        W of the input words (the packer's).
    cbd_bits:
        K: bits per centred-binomial sample; must divide W.
    uniform_bits:
        U: bits per uniform in the sum-of-12 mode; must divide W.
    int_bits, frac_bits:
        Output format Qm.n: a signed (1 + int_bits + frac_bits)-bit two's-complement number with
        value ``raw / 2**frac_bits``.
    cbd_balanced:
        Balanced CBD popcount (default True): the popcount is taken of the K bits XOR
        ``0b1010…10`` (bits 1, 3, 5, … inverted), so a lean common to all bits cancels in the
        mean; identical distribution for ideal bits. Needs an even K. False: the plain popcount.
        A build-time constant of the RTL (``model.blocks.fixedpoint.cbd_balance_mask``).
    """

    word_bits: int = 32
    cbd_bits: int = 32
    uniform_bits: int = 16
    int_bits: int = 4
    frac_bits: int = 11
    cbd_balanced: bool = True

    def __post_init__(self):
        o = "GaussConfig"
        check_int(o, "word_bits", self.word_bits, 8, 64)
        check_int(o, "cbd_bits", self.cbd_bits, 2, self.word_bits)
        if self.word_bits % self.cbd_bits:
            raise ValueError(f"GaussConfig.cbd_bits = {self.cbd_bits}: must divide "
                             f"word_bits = {self.word_bits}")
        check_int(o, "uniform_bits", self.uniform_bits, 1, self.word_bits)
        if self.word_bits % self.uniform_bits:
            raise ValueError(f"GaussConfig.uniform_bits = {self.uniform_bits}: must divide "
                             f"word_bits = {self.word_bits}")
        check_int(o, "int_bits", self.int_bits, 2, 8)
        check_int(o, "frac_bits", self.frac_bits, 1, 24)
        if not isinstance(self.cbd_balanced, bool):
            raise ValueError(f"GaussConfig.cbd_balanced = {self.cbd_balanced!r}: must be True or "
                             f"False")
        if self.cbd_balanced and self.cbd_bits % 2:
            raise ValueError(f"GaussConfig.cbd_bits = {self.cbd_bits}: must be even when "
                             f"cbd_balanced = True (half the bits inverted); set "
                             f"cbd_balanced=False for an odd K")

    @property
    def sample_bits(self) -> int:
        """Width of one output sample (sign + integer + fraction)."""
        return 1 + self.int_bits + self.frac_bits
