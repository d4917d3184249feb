"""The one fixed-point definition of the Gaussian generator's samples (docs/trng-readout.md §4).

Both the RTL (``hw.gaussian.GaussianGenerator``) and its twin (``model.blocks.gaussian``) import
the format and the integer mappings from here, so they cannot drift apart.

Format Q``int_bits``.``frac_bits``: a two's-complement integer ``raw`` of
``sample_bits = 1 + int_bits + frac_bits`` bits whose value is ``raw / 2**frac_bits``; range
``[-2**int_bits, 2**int_bits - 2**-frac_bits]``.

Mappings (integers only; ``>>`` is an arithmetic shift, i.e. floor division by a power of 2):

* CBD (centred binomial, mode 0), ``K = cbd_bits``, ``x`` = the K input bits of a sample::

      M   = 0b1010...10 (K bits: bits 1, 3, 5, ... set) if cbd_balanced else 0
                                                           # cbd_balance_mask()
      pc  = popcount(x ^ M)                                # cbd_popcount()
      S   = round(2**(frac_bits + 16) / sqrt(K))          # cbd_scale(), computed exactly
      raw = sat(((2*pc - K) * S) >> 16)                    # cbd_raw(); cbd_table() per pc

  The balance mask inverts half the bits: a lean common to all bits (P(1) = 1/2 - e for every
  bit) moves the plain popcount's mean by -K*e but cancels exactly in the balanced one, while
  for ideal bits (independent, P(1) = 1/2) inverting a bit does not change its law, so the
  distribution is unchanged (docs/trng-readout.md section 4).

* Sum of 12 uniforms (mode 1), ``U = uniform_bits``, ``total`` = sum of 12 U-bit fields::

      raw = sat((total - 6 * 2**U) << (frac_bits - U))     if frac_bits >= U
      raw = sat((total - 6 * 2**U) >> (U - frac_bits))     otherwise     # sum12_raw()

``sat`` clamps to ``[raw_min, raw_max]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt

import numpy as np

from model.blocks.config import GaussConfig

#: Run-time modes (CSR ``GAUSS.mode``; the RTL's ``mode`` input).
MODE_CBD = 0
MODE_SUM12 = 1
MODES = (MODE_CBD, MODE_SUM12)

#: Extra fraction bits of the CBD scale constant S (the ``16`` of the contract).
CBD_SCALE_SHIFT = 16
#: Uniforms per sample in the sum-of-12 mode.
SUM12_TERMS = 12


def _check_cfg(owner: str, cfg) -> GaussConfig:
    if not isinstance(cfg, GaussConfig):
        raise ValueError(f"{owner}.cfg = {cfg!r}: must be a GaussConfig "
                         f"(model.blocks.config.GaussConfig)")
    return cfg


def check_mode(owner: str, mode) -> int:
    """Return ``mode`` as an int, or raise ``ValueError`` unless it is 0 (CBD) or 1 (sum-of-12)."""
    if isinstance(mode, bool) or not isinstance(mode, (int, np.integer)) or int(mode) not in MODES:
        raise ValueError(f"{owner}.mode = {mode!r}: must be {MODE_CBD} (CBD) or "
                         f"{MODE_SUM12} (sum of 12 uniforms)")
    return int(mode)


@dataclass(frozen=True)
class FixedPoint:
    """Signed fixed point Q``int_bits``.``frac_bits`` in ``sample_bits``-bit two's complement.

    Attributes
    ----------
    int_bits, frac_bits : int
        Integer and fraction bits (the sign bit comes on top).
    """

    int_bits: int
    frac_bits: int

    @classmethod
    def from_config(cls, cfg: GaussConfig) -> "FixedPoint":
        _check_cfg("FixedPoint.from_config", cfg)
        return cls(cfg.int_bits, cfg.frac_bits)

    @property
    def sample_bits(self) -> int:
        return 1 + self.int_bits + self.frac_bits

    @property
    def raw_min(self) -> int:
        return -(1 << (self.sample_bits - 1))

    @property
    def raw_max(self) -> int:
        return (1 << (self.sample_bits - 1)) - 1

    @property
    def lsb(self) -> float:
        """Value of one raw step, ``2**-frac_bits``."""
        return 2.0 ** -self.frac_bits

    @property
    def min_value(self) -> float:
        return self.raw_min * self.lsb

    @property
    def max_value(self) -> float:
        return self.raw_max * self.lsb

    def saturate(self, raw):
        """Clamp raw integers (int or integer array) to ``[raw_min, raw_max]``."""
        if isinstance(raw, np.ndarray):
            return np.clip(raw, self.raw_min, self.raw_max)
        return min(max(int(raw), self.raw_min), self.raw_max)

    def to_float(self, raw):
        """Value of raw sample(s): ``raw / 2**frac_bits`` (float or float64 array)."""
        if isinstance(raw, np.ndarray):
            return raw.astype(np.float64) * self.lsb
        return int(raw) * self.lsb

    def from_float(self, x):
        """Nearest raw integer(s) to ``x`` (ties towards +inf), saturated to the range."""
        r = np.floor(np.asarray(x, dtype=np.float64) * (1 << self.frac_bits) + 0.5)
        r = np.clip(r, self.raw_min, self.raw_max).astype(np.int64)
        return r if r.ndim else int(r)

    def to_unsigned(self, raw: int) -> int:
        """Two's-complement bit pattern of ``raw`` (what the RTL's payload bits carry)."""
        return int(raw) & ((1 << self.sample_bits) - 1)

    def from_unsigned(self, bits: int) -> int:
        """Inverse of :meth:`to_unsigned`: sign-extend a ``sample_bits``-bit pattern."""
        bits = int(bits) & ((1 << self.sample_bits) - 1)
        return bits - (1 << self.sample_bits) if bits >> (self.sample_bits - 1) else bits


def fixed_point(cfg: GaussConfig) -> FixedPoint:
    """The sample format of ``cfg``."""
    return FixedPoint.from_config(cfg)


# ------------------------------------------------------------------------------------------------
# CBD
def cbd_scale(cfg: GaussConfig) -> int:
    """``S = round(2**(frac_bits+16) / sqrt(K))``, computed in integers (no float rounding).

    S is the integer s with ``s - 1/2 <= x < s + 1/2``, ``x = 2**(frac_bits+16)/sqrt(K)``, i.e. the
    largest s with ``K*(2s-1)**2 <= 4*x**2 = 2**(2*frac_bits+34)``. (x is never exactly a
    half-integer for valid parameters, so the tie rule does not matter.)
    """
    _check_cfg("cbd_scale", cfg)
    a = 1 << (2 * cfg.frac_bits + 2 * CBD_SCALE_SHIFT + 2)
    m = isqrt(a // cfg.cbd_bits)          # largest m with K*m^2 <= a
    if m % 2 == 0:
        m -= 1                            # largest odd m = 2s - 1
    return (m + 1) // 2


def cbd_balance_mask(cfg: GaussConfig) -> int:
    """The K-bit mask XORed into a sample's bits before the popcount: ``0b1010…10`` (bits 1, 3,
    5, … set, K/2 of them) if ``cfg.cbd_balanced``, else 0."""
    _check_cfg("cbd_balance_mask", cfg)
    if not cfg.cbd_balanced:
        return 0
    return int("10" * (cfg.cbd_bits // 2), 2)


def cbd_popcount(cfg: GaussConfig, bits):
    """Popcount(s) of K-bit chunk(s) ``bits`` (int, or unsigned integer array of values
    < 2**K) after the balance mask: ``popcount(bits ^ cbd_balance_mask(cfg))``, in [0, K]."""
    mask = cbd_balance_mask(cfg)
    if isinstance(bits, np.ndarray):
        if bits.dtype.kind not in "ui":
            raise ValueError(f"cbd_popcount: bits must be an integer array, got dtype "
                             f"{bits.dtype}")
        b = bits.astype(np.uint64)
        if b.size and int(b.max()) >> cfg.cbd_bits:
            raise ValueError(f"cbd_popcount: bits must lie in [0, 2**{cfg.cbd_bits})")
        return np.bitwise_count(b ^ np.uint64(mask)).astype(np.int64)
    b = int(bits)
    if not 0 <= b < (1 << cfg.cbd_bits):
        raise ValueError(f"cbd_popcount: bits = {bits!r}: must lie in [0, 2**{cfg.cbd_bits})")
    return (b ^ mask).bit_count()


def cbd_raw(cfg: GaussConfig, pc):
    """Raw sample of popcount(s) ``pc`` (int or int array in [0, K]): ``sat(((2pc-K)*S) >> 16)``.

    ``pc`` is the (balanced, if configured) popcount of :func:`cbd_popcount`."""
    fp, S, K = fixed_point(cfg), cbd_scale(cfg), cfg.cbd_bits
    if isinstance(pc, np.ndarray):
        return fp.saturate(((2 * pc.astype(np.int64) - K) * S) >> CBD_SCALE_SHIFT)
    return fp.saturate(((2 * int(pc) - K) * S) >> CBD_SCALE_SHIFT)


def cbd_table(cfg: GaussConfig) -> tuple[int, ...]:
    """The (K+1)-entry lookup table popcount -> raw sample the RTL uses (indexed by the
    popcount of :func:`cbd_popcount`)."""
    return tuple(cbd_raw(cfg, pc) for pc in range(cfg.cbd_bits + 1))


# ------------------------------------------------------------------------------------------------
# Sum of 12 uniforms
def sum12_offset(cfg: GaussConfig) -> int:
    """``6 * 2**U``: subtracted from the sum of the 12 fields."""
    return (SUM12_TERMS // 2) << cfg.uniform_bits


def sum12_shift(cfg: GaussConfig) -> int:
    """``frac_bits - U``: a left shift if >= 0, else an arithmetic right shift (floor) by -value."""
    return cfg.frac_bits - cfg.uniform_bits


def sum12_raw(cfg: GaussConfig, total):
    """Raw sample of the sum(s) ``total`` of 12 U-bit fields (int or int array)."""
    fp, sh = fixed_point(cfg), sum12_shift(cfg)
    t = total.astype(np.int64) if isinstance(total, np.ndarray) else int(total)
    d = t - sum12_offset(cfg)
    d = d << sh if sh >= 0 else d >> -sh
    return fp.saturate(d)


def sum12_total_max(cfg: GaussConfig) -> int:
    """Largest sum of 12 U-bit fields, ``12 * (2**U - 1)``."""
    return SUM12_TERMS * ((1 << cfg.uniform_bits) - 1)


def unsaturated_range(cfg: GaussConfig, mode: int) -> tuple[int, int]:
    """(min, max) raw value the mode's formula gives before saturation, over all inputs."""
    mode = check_mode("unsaturated_range", mode)
    if mode == MODE_CBD:
        S, K = cbd_scale(cfg), cfg.cbd_bits
        return (-K * S) >> CBD_SCALE_SHIFT, (K * S) >> CBD_SCALE_SHIFT
    sh, off = sum12_shift(cfg), sum12_offset(cfg)
    lo, hi = -off, sum12_total_max(cfg) - off
    return (lo << sh, hi << sh) if sh >= 0 else (lo >> -sh, hi >> -sh)


def saturation_possible(cfg: GaussConfig, mode: int) -> bool:
    """Whether some input drives the mode's formula outside the format's range."""
    lo, hi = unsaturated_range(cfg, mode)
    fp = fixed_point(cfg)
    return lo < fp.raw_min or hi > fp.raw_max
