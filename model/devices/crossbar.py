"""Analog crossbar MAC tile: weights as conductance pairs, DAC rows, ADC columns.

Physics layer of spindiff: imports numpy/scipy and ``model.devices`` only (never
``model.blocks``; its agreement with the bit-exact twin ``model.blocks.crossbar.CrossbarTile`` is
checked by ``tests/test_crossbar_device.py``). The model, every constant with its unit and source,
and what is assumed are written down in ``docs/crossbar-device.md``; this is the short version.

Weights. A signed weight code w, |w| <= M = 2**(weight_bits-1) - 1 (the symmetric range of
``docs/crossbar.md`` §1), is split into S base-L digits of |w| (L = the technology's ``levels``
per cell, S the smallest count with L**S - 1 >= M; slice k weighs L**k). Slice k of a weight is a
differential pair on two bit lines: the digit d_k on the side of w's sign,
``G = G_min + d_k·ΔG_LSB`` with ``ΔG_LSB = (G_max - G_min)/(L - 1)``, the other side at G_min; so
``G+ - G- = sign(w)·d_k·ΔG_LSB``. Programming error (per cell, at :meth:`AnalogCrossbar.program`):
``G + N(0, (σ_rel·G)² + σ_abs²)``, clipped to [G_min, G_max]. Optional power-law drift
``G(t) = G·(t/t0)**(-ν)`` for t > t0 (PCM-style, ASSUMED applicable; RRAM and MTJ presets carry
ν = 0).

Inputs. A DAC code x drives its row with ``V = x·V_LSB``, ``V_LSB = v_read_mV / 2**(ib-1)``
(signed) or ``v_read_mV / 2**ib`` (unsigned): full scale is ``v_read_mV``. ``dac_bits=None`` is an
ideal DAC (real-valued x allowed); ``dac_bits < input_bits`` rounds codes to the DAC's step
``2**(ib - dac_bits)`` (half up, clipped to the DAC's codes); ``dac_bits >= input_bits`` is exact.

Read. Per evaluation (one input vector) the column currents are ``I = Σ_r V_r·G_eff[r, ·]`` with
read noise drawn per cell: ``'additive'``: ``G + σ·(G_max - G_min)·n`` on every cell;
``'multiplicative'``: ``(G+ - G-)·(1 + n)`` per differential pair (per slice), the form of Yang et
al., arXiv 2404.05648 — with ``trunc`` set, n ~ N(0, σ²) and every |n| >= trunc is *replaced by a
uniform draw in [-trunc, trunc)*, exactly as their ``add_noise`` does
(github.com/yangjc97/memristor-sde-diffusion, ``unconditional/my_sde.py`` and
``conditional/my_utils.py``: ``mask = noise.abs() < n_lim``, ``noise_mask = (rand*2-1)*n_lim``,
``noise_mask[mask] = noise[mask]``, ``data*(1+noise_mask)``). Their code draws one n per weight per
*forward call* (shared by the batch): ``per='call'`` reproduces that; ``per='eval'`` (default)
draws per input vector. Without ``trunc`` the per-cell Gaussian terms are summed in closed form
(one Gaussian per column with the exact variance), which is exact in distribution.

IR drop (``r_wire_ohm > 0``, the resistance of one word-line or bit-line segment between adjacent
cells). Rows are driven at the left end, columns read at the bottom into a virtual ground (the
topology of :mod:`model.devices.nodal`). ``ir_model='first_order'``: the first-order drops give
each cell a coefficient ``ε_ij = r·(Σ_j' G_ij'·(min(j, j')+1) + Σ_i' G_i'j·(R - max(i, i')))``
(word-line segments carrying row i's current up to cell j, bit-line segments carrying column j's
current below row i), applied as ``G_eff = G / (1 + ε)`` (for the same cost 6-20x more accurate
than ``G·(1 - ε)``; exact for a single cell). Against the full nodal solution its error in any
column current is at most ``0.242·ε_max²`` times the largest full-scale column current
``max_j Σ_r |V_r|·G_rj`` (measured, ε_max <= 1; :data:`IR_FIRST_ORDER_ERR_COEFF` = 0.3 with
margin), where ``ε_max <= ρ·(N(N+1) + R(R+1))/2``, ``ρ = r_wire·G_max = r_wire/R_on``, N physical
columns. Beyond ε_max ≈ 0.2 (error > 1 %) use ``ir_model='nodal'``: the exact transfer
conductance from one sparse LU solve per programming. Read noise acts on the cells before
the line attenuation (``α = G_eff/G``, taken from the programmed state: noise×IR cross terms are
second order).

ADC. ``mvm`` divides currents by ``V_LSB·ΔG_LSB`` (weight·input code units). ``adc_bits=None``
returns that float. Otherwise, as the twin (``docs/crossbar.md`` §1), ``code = sat(⌊y/2**s + ½⌋)``
with s = ``adc_shift``: ``slice_combine='ideal'`` converts ``y = Σ_k L**k·y_k`` once (slices
weighted in the analog domain); ``'digital'`` gives each slice its own ADC with the same LSB
referred to the slice (``2**s/L**k`` slice units), adds the slice codes and saturates the sum to
``adc_bits`` (quantisation error up to S/2 LSB instead of 1/2; each slice clips on its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.devices import nodal
from model.devices.mtj import MTJParams

#: The ADC's decision thresholds sit this far (in LSB) below the exact half-code points, so that
#: float rounding of an ideal (noise-free) current that is exactly a half code still rounds up like
#: the twin's integer round-half-up. Physically immaterial (a 1e-9 LSB comparator offset).
ADC_TIE_GUARD_LSB = 1e-9

#: Error bound coefficient of the first-order IR-drop model, valid for ε_max <= 1:
#: max_j |I_first,j - I_nodal,j| <= coeff·ε_max²·max_j Σ_r |V_r|·G_rj (the largest full-scale
#: column current of that input). Measured worst case 0.242 over arrays of 1..128 rows by 1..256
#: columns with uniform-random, binary, all-G_max, all-G_min, one-row-at-G_max and
#: one-column-at-G_max conductances (G in [1, 40] µS, ρ = r·G_max = 1e-5 .. 1e-3) and one-hot,
#: all-ones and random signed inputs, against model.devices.nodal (itself equal to badcrossbar
#: to 1e-14). 0.3 leaves margin. Per column, relative to that column's own full scale, the error
#: can be larger (up to ~5·ε_max² measured) where a low-conductance column shares its lines with
#: high-conductance ones.
IR_FIRST_ORDER_ERR_COEFF = 0.3

#: Largest batch chunk (elements of one per-cell noise draw) held in memory at once.
_CHUNK_ELEMS = 1 << 21

READ_NOISE_KINDS = ("none", "additive", "multiplicative")
READ_NOISE_PER = ("eval", "call")
SLICE_COMBINE = ("ideal", "digital")
IR_MODELS = ("first_order", "nodal")


# --- validation helpers ---------------------------------------------------------------------
def _num(owner: str, name: str, value, lo: float, hi: float, unit: str = "",
         lo_open: bool = False) -> None:
    u = f" {unit}" if unit else ""
    lb = "(" if lo_open else "["
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"{owner}.{name} = {value!r}: must be a finite number in "
                         f"{lb}{lo}, {hi}]{u}")
    if (value <= lo if lo_open else value < lo) or value > hi:
        raise ValueError(f"{owner}.{name} = {value}: out of range, allowed {lb}{lo}, {hi}]{u}")


def _int(owner: str, name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{owner}.{name} = {value!r}: must be an integer in [{lo}, {hi}]")
    if not lo <= value <= hi:
        raise ValueError(f"{owner}.{name} = {value}: out of range, allowed [{lo}, {hi}]")


def _choice(owner: str, name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name} = {value!r}: must be one of {allowed}")


def _clog2(n: int) -> int:
    return max(0, (int(n) - 1).bit_length())


# --- cell technologies ----------------------------------------------------------------------
@dataclass(frozen=True)
class CellTech:
    """One memory-cell technology as a crossbar sees it (sources in ``docs/crossbar-device.md``).

    Attributes
    ----------
    name:
        Preset name.
    g_min_uS, g_max_uS:
        Programmable conductance window, µS (G_min > 0: the lowest state still conducts).
    levels:
        Distinct, equally spaced conductance levels one cell is programmed to (2 = binary).
    v_read_max_mV:
        Largest read (DAC full-scale) voltage that does not disturb the cell, mV.
    drift_nu_typ:
        Typical power-law drift exponent ν of the technology (reference only; the model uses
        ``AnalogConfig.drift_nu``).
    """

    name: str
    g_min_uS: float
    g_max_uS: float
    levels: int
    v_read_max_mV: float
    drift_nu_typ: float = 0.0

    def __post_init__(self):
        o = "CellTech"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"{o}.name = {self.name!r}: must be a non-empty string")
        _num(o, "g_min_uS", self.g_min_uS, 0.0, 1e6, "µS", lo_open=True)
        _num(o, "g_max_uS", self.g_max_uS, 0.0, 1e6, "µS", lo_open=True)
        if not self.g_max_uS > self.g_min_uS:
            raise ValueError(f"{o}.g_max_uS = {self.g_max_uS}: must exceed g_min_uS = "
                             f"{self.g_min_uS}, allowed ({self.g_min_uS}, 1e6] µS")
        _int(o, "levels", self.levels, 2, 1 << 16)
        _num(o, "v_read_max_mV", self.v_read_max_mV, 0.0, 5000.0, "mV", lo_open=True)
        _num(o, "drift_nu_typ", self.drift_nu_typ, 0.0, 1.0)

    @property
    def dg_lsb_uS(self) -> float:
        """Conductance step between adjacent levels, µS."""
        return (self.g_max_uS - self.g_min_uS) / (self.levels - 1)

    @property
    def on_off_ratio(self) -> float:
        return self.g_max_uS / self.g_min_uS


#: Filamentary HfOx/TaOx RRAM, 1T1R. G_max 40 µS: Wan et al., Nature 608, 504 (2022) (NeuRRAM),
#: the reference g_max of IBM aihwkit's ReRamWan2022NoiseModel fitted to that data. G_min 1 µS:
#: ASSUMED (HRS, on/off 40). 16 levels: ASSUMED (4 bits per cell; CMO/HfOx cells show > 32 stable
#: states, Falcone et al., arXiv 2502.04524, 2025). Read at <= 200 mV: ASSUMED (read-disturb-free
#: range typical of 1T1R RRAM). No power-law drift: aihwkit models ReRAM conductance relaxation as
#: broadening, "ReRAM does not show drift in the usual sense" (ReRamWan2022NoiseModel).
RRAM = CellTech(name="rram", g_min_uS=1.0, g_max_uS=40.0, levels=16, v_read_max_mV=200.0,
                drift_nu_typ=0.0)

_MTJ_P = MTJParams()
#: The project's VCMA-MTJ (model/devices/mtj.py defaults) used as a binary cell: R_P = RA/A with
#: RA 1000 Ohm·µm² (ASSUMED there) and the 80 nm pillar of Yang et al., ESSDERC 2021; R_AP =
#: R_P·(1 + TMR), TMR 160 % (same source). G_max = 1/R_P ≈ 5.03 µS, G_min = 1/R_AP ≈ 1.93 µS.
#: Read at <= 100 mV (MTJParams.v_read_mV, ASSUMED: little VCMA/STT disturb). Binary: 2 levels,
#: so weights are bit-sliced. No drift (the two magnetic states do not drift in conductance).
MTJ = CellTech(name="mtj", g_min_uS=1e6 / _MTJ_P.r_ap_ohm, g_max_uS=1e6 / _MTJ_P.r_p_ohm,
               levels=2, v_read_max_mV=_MTJ_P.v_read_mV, drift_nu_typ=0.0)

#: Presets by name.
PRESETS = {"rram": RRAM, "mtj": MTJ}


# --- read noise -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadNoise:
    """Read noise drawn per evaluation.

    Attributes
    ----------
    kind:
        ``'none'``; ``'additive'``: every cell reads ``G + sigma·(G_max - G_min)·n`` (sigma in
        units of the cell's conductance window); ``'multiplicative'``: every differential pair
        (one slice of one weight) reads ``(G+ - G-)·(1 + n)`` (sigma relative), Yang et al.'s form.
    sigma:
        Standard deviation of n (before truncation).
    trunc:
        ``None`` (plain Gaussian) or the bound b: draws with |n| >= b are replaced by a uniform
        draw in [-b, b) (Yang et al.'s ``add_noise``, see the module docstring).
    per:
        ``'eval'``: a fresh draw for every input vector; ``'call'``: one draw per
        ``currents``/``mvm`` call shared by the whole batch (what Yang et al.'s training code does
        per forward pass).
    """

    kind: str = "none"
    sigma: float = 0.0
    trunc: float | None = None
    per: str = "eval"

    def __post_init__(self):
        o = "ReadNoise"
        _choice(o, "kind", self.kind, READ_NOISE_KINDS)
        _num(o, "sigma", self.sigma, 0.0, 1.0)
        if self.trunc is not None:
            _num(o, "trunc", self.trunc, 0.0, 10.0, lo_open=True)
        _choice(o, "per", self.per, READ_NOISE_PER)

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.sigma > 0


#: Yang et al., arXiv 2404.05648 (code: n_std = 0.1, n_lim = 0.2), per input vector.
YANG2024_READ_NOISE = ReadNoise(kind="multiplicative", sigma=0.1, trunc=0.2, per="eval")


def sample_truncated(rng: np.random.Generator, shape, sigma: float, trunc: float | None):
    """n ~ N(0, sigma²) with every |n| >= trunc replaced by U[-trunc, trunc) (Yang et al.)."""
    n = rng.standard_normal(shape) * sigma
    if trunc is not None:
        bad = np.abs(n) >= trunc
        k = int(np.count_nonzero(bad))
        if k:
            n[bad] = rng.uniform(-trunc, trunc, k)
    return n


# --- configuration --------------------------------------------------------------------------
@dataclass(frozen=True)
class AnalogConfig:
    """Everything an analog tile needs besides its size and seed (all validated).

    Attributes
    ----------
    tech:
        The cell technology (:data:`RRAM`, :data:`MTJ` or your own :class:`CellTech`).
    weight_bits:
        Bits of a signed weight code; the mapped range is symmetric, ``|w| <= 2**(wb-1) - 1``.
    input_bits, input_signed:
        DAC input codes, as ``TileConfig``'s.
    v_read_mV:
        DAC full-scale row voltage, mV (<= ``tech.v_read_max_mV``).
    dac_bits:
        ``None``: ideal DAC, real-valued inputs; else the DAC's resolution (see module docstring).
    adc_bits:
        ``None``: no ADC (float results); else signed ADC code bits, clipped at both rails.
    adc_shift:
        ADC LSB = ``2**adc_shift`` weight·input code units (as the twin).
    slice_combine:
        ``'ideal'`` (slices weighted before one ADC) or ``'digital'`` (per-slice ADCs, codes added).
    prog_sigma_rel, prog_sigma_abs_uS:
        Programming error per cell: relative to the target G, and absolute (µS); Gaussian, added in
        quadrature, the result clipped to [G_min, G_max].
    read_noise:
        :class:`ReadNoise`.
    drift_nu, drift_t_s, drift_t0_s:
        Power-law drift ``G·(t/t0)**(-ν)`` at read time ``drift_t_s`` after programming, applied
        when ``drift_t_s > drift_t0_s`` (t0: the reference read time the programmed G refers to).
    r_wire_ohm:
        Resistance of one word- or bit-line segment between adjacent cells, Ohm (0 = no IR drop).
    ir_model:
        ``'first_order'`` (closed form, see module docstring) or ``'nodal'`` (exact).
    """

    tech: CellTech = RRAM
    weight_bits: int = 8
    input_bits: int = 8
    input_signed: bool = True
    v_read_mV: float = 100.0
    dac_bits: int | None = None
    adc_bits: int | None = None
    adc_shift: int = 0
    slice_combine: str = "ideal"
    prog_sigma_rel: float = 0.0
    prog_sigma_abs_uS: float = 0.0
    read_noise: ReadNoise = field(default_factory=ReadNoise)
    drift_nu: float = 0.0
    drift_t_s: float = 0.0
    drift_t0_s: float = 1.0
    r_wire_ohm: float = 0.0
    ir_model: str = "first_order"

    def __post_init__(self):
        o = "AnalogConfig"
        if not isinstance(self.tech, CellTech):
            raise ValueError(f"{o}.tech = {self.tech!r}: must be a CellTech (e.g. one of "
                             f"{sorted(PRESETS)})")
        _int(o, "weight_bits", self.weight_bits, 2, 16)
        _int(o, "input_bits", self.input_bits, 1, 16)
        if not isinstance(self.input_signed, bool):
            raise ValueError(f"{o}.input_signed = {self.input_signed!r}: must be True or False")
        if self.input_signed and self.input_bits < 2:
            raise ValueError(f"{o}.input_bits = {self.input_bits}: a signed input needs at least "
                             f"2 bits, allowed [2, 16]")
        _num(o, "v_read_mV", self.v_read_mV, 0.0, self.tech.v_read_max_mV, "mV", lo_open=True)
        if self.dac_bits is not None:
            _int(o, "dac_bits", self.dac_bits, 2 if self.input_signed else 1, 16)
        if self.adc_bits is not None:
            _int(o, "adc_bits", self.adc_bits, 2, 32)
        _int(o, "adc_shift", self.adc_shift, 0, 63)
        _choice(o, "slice_combine", self.slice_combine, SLICE_COMBINE)
        _num(o, "prog_sigma_rel", self.prog_sigma_rel, 0.0, 1.0)
        _num(o, "prog_sigma_abs_uS", self.prog_sigma_abs_uS, 0.0, self.tech.g_max_uS, "µS")
        if not isinstance(self.read_noise, ReadNoise):
            raise ValueError(f"{o}.read_noise = {self.read_noise!r}: must be a ReadNoise")
        _num(o, "drift_nu", self.drift_nu, 0.0, 1.0)
        _num(o, "drift_t_s", self.drift_t_s, 0.0, 1e10, "s")
        _num(o, "drift_t0_s", self.drift_t0_s, 0.0, 1e10, "s", lo_open=True)
        _num(o, "r_wire_ohm", self.r_wire_ohm, 0.0, 1e4, "Ohm")
        _choice(o, "ir_model", self.ir_model, IR_MODELS)

    # -- derived --------------------------------------------------------------------------------
    @property
    def levels(self) -> int:
        return self.tech.levels

    @property
    def weight_max(self) -> int:
        """M: weights are mapped in [-M, M]."""
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def slices(self) -> int:
        """S: cells (differential pairs) per weight, the least with levels**S - 1 >= M."""
        s, cap = 1, self.levels
        while cap - 1 < self.weight_max:
            s, cap = s + 1, cap * self.levels
        return s

    @property
    def slice_weights(self) -> np.ndarray:
        """levels**k for k = 0 .. S-1 (float)."""
        return float(self.levels) ** np.arange(self.slices)

    @property
    def input_range(self) -> tuple[int, int]:
        ib = self.input_bits
        if self.input_signed:
            return -(1 << (ib - 1)), (1 << (ib - 1)) - 1
        return 0, (1 << ib) - 1

    @property
    def v_lsb_mV(self) -> float:
        """Row voltage of one input code unit, mV."""
        return self.v_read_mV / (1 << (self.input_bits - (1 if self.input_signed else 0)))

    @property
    def dg_lsb_uS(self) -> float:
        return self.tech.dg_lsb_uS

    @property
    def unit_uA(self) -> float:
        """Differential current of one weight·input code unit (slice 0), µA: V_LSB·ΔG_LSB."""
        return self.v_lsb_mV * self.dg_lsb_uS * 1e-3

    @property
    def adc_range(self) -> tuple[int, int]:
        if self.adc_bits is None:
            raise ValueError("AnalogConfig.adc_bits = None: no ADC configured")
        return -(1 << (self.adc_bits - 1)), (1 << (self.adc_bits - 1)) - 1

    @property
    def adc_full_scale_uA(self) -> float:
        """ADC full scale (positive rail) as a slice-weighted column current, µA."""
        return (1 << (self.adc_bits - 1 + self.adc_shift)) * self.unit_uA if self.adc_bits \
            else float("inf")

    def acc_bits(self, rows: int) -> int:
        """Width of an exact column sum (as ``TileConfig.acc_bits``)."""
        return self.weight_bits + self.input_bits + 1 + _clog2(rows)


# --- the tile -------------------------------------------------------------------------------
class AnalogCrossbar:
    """An analog crossbar tile of ``rows`` x ``cols`` weights (``2·S·cols`` physical bit lines).

    Parameters
    ----------
    cfg:
        :class:`AnalogConfig`.
    rows, cols:
        Weights per column (word lines) and weight columns (outputs).
    seed:
        Seeds the programming-error draws and the default read-noise stream (independent
        streams); same seed, same calls → same results.

    Before :meth:`program` the tile holds weight 0 everywhere at nominal conductance.
    Physical bit line of (column c, slice k, side p∈{0:+, 1:-}) is ``(c·S + k)·2 + p`` along the
    word line (counted from the row driver).
    """

    def __init__(self, cfg: AnalogConfig, rows: int, cols: int, seed: int):
        o = "AnalogCrossbar"
        if not isinstance(cfg, AnalogConfig):
            raise ValueError(f"{o}.cfg = {cfg!r}: must be an AnalogConfig")
        _int(o, "rows", rows, 1, 1024)
        _int(o, "cols", cols, 1, 1024)
        _int(o, "seed", seed, 0, (1 << 63) - 1)
        if cfg.adc_bits is not None and cfg.adc_shift > cfg.acc_bits(rows):
            raise ValueError(f"{o}.cfg.adc_shift = {cfg.adc_shift}: out of range for {rows} rows, "
                             f"allowed [0, {cfg.acc_bits(rows)}]")
        self.cfg = cfg
        self.rows, self.cols = int(rows), int(cols)
        self.slices = cfg.slices
        self.seed = int(seed)
        self._prog_rng = np.random.default_rng([self.seed, 0])
        self._read_rng = np.random.default_rng([self.seed, 1])
        #: Costed-operation counts (keys of the twin's ``counts`` plus ``cell_write``,
        #: ``cell_read``); :meth:`mvm` counts, :meth:`currents` does not.
        self.counts = {"mvm": 0, "mac": 0, "adc": 0, "dac": 0, "weight_write": 0,
                       "cell_write": 0, "cell_read": 0}
        self.weights = np.zeros((self.rows, self.cols), dtype=np.int64)
        #: Target conductances (R, C, S, 2) of the last programmed weights, µS.
        self.g_target_uS = self._targets(self.weights)
        self._set_conductances(self.g_target_uS.copy())

    # -- geometry -------------------------------------------------------------------------------
    @property
    def physical_cols(self) -> int:
        return 2 * self.slices * self.cols

    # -- programming ----------------------------------------------------------------------------
    def _targets(self, w: np.ndarray) -> np.ndarray:
        """Target conductances (R, C, S, 2) µS of weight codes w."""
        c, t = self.cfg, self.cfg.tech
        mag = np.abs(w)
        L = c.levels
        digits = np.stack([(mag // (L ** k)) % L for k in range(self.slices)], axis=-1)
        g_on = t.g_min_uS + digits * t.dg_lsb_uS                    # (R, C, S)
        pos = (w > 0)[..., None]
        gp = np.where(pos, g_on, t.g_min_uS)
        gn = np.where(pos, t.g_min_uS, g_on)
        return np.stack([gp, gn], axis=-1).astype(float)

    def program(self, w_codes) -> None:
        """Program the R x C signed weight codes (|w| <= 2**(wb-1) - 1); draws programming error.

        Accepts integer arrays, or float arrays holding integers.
        """
        c = self.cfg
        w = np.asarray(w_codes)
        if w.shape != (self.rows, self.cols):
            raise ValueError(f"AnalogCrossbar.w_codes: shape {w.shape}, allowed "
                             f"({self.rows}, {self.cols})")
        if w.dtype.kind not in "iub":
            if w.dtype.kind != "f" or not np.all(np.isfinite(w)) or np.any(w != np.round(w)):
                raise ValueError(f"AnalogCrossbar.w_codes: dtype {w.dtype} with non-integer "
                                 f"values, allowed integer codes in [{-c.weight_max}, "
                                 f"{c.weight_max}]")
        w = w.astype(np.int64)
        if w.size and (w.min() < -c.weight_max or w.max() > c.weight_max):
            bad = w.min() if w.min() < -c.weight_max else w.max()
            raise ValueError(f"AnalogCrossbar.w_codes: value {int(bad)} out of range, allowed "
                             f"[{-c.weight_max}, {c.weight_max}] (symmetric {c.weight_bits}-bit)")
        g = self._targets(w)
        self.g_target_uS = g.copy()
        t = c.tech
        sig = np.sqrt((c.prog_sigma_rel * g) ** 2 + c.prog_sigma_abs_uS ** 2)
        if np.any(sig > 0):
            g = np.clip(g + sig * self._prog_rng.standard_normal(g.shape), t.g_min_uS, t.g_max_uS)
        if c.drift_nu > 0 and c.drift_t_s > c.drift_t0_s:
            g = g * (c.drift_t_s / c.drift_t0_s) ** (-c.drift_nu)
        self.weights = w
        self._set_conductances(g)
        self.counts["weight_write"] += self.rows * self.cols
        self.counts["cell_write"] += self.rows * self.physical_cols

    def _set_conductances(self, g: np.ndarray) -> None:
        """Store programmed conductances (R, C, S, 2) and derive the line-attenuated ones."""
        c = self.cfg
        #: Programmed conductances (R, C, S, 2) after programming error and drift, µS.
        self.g_uS = g
        flat = g.reshape(self.rows, self.physical_cols)
        if c.r_wire_ohm > 0:
            if c.ir_model == "nodal":
                eff = nodal.transfer(flat, c.r_wire_ohm)
            else:
                eff = flat / (1.0 + ir_epsilon(flat, c.r_wire_ohm))
        else:
            eff = flat
        self.g_eff_uS = eff.reshape(g.shape)                     # (R, C, S, 2)
        self._alpha = self.g_eff_uS / g                          # line attenuation per cell
        self._d_eff = (self.g_eff_uS[..., 0] - self.g_eff_uS[..., 1]).reshape(self.rows, -1)

    @property
    def ir_epsilon_max(self) -> float:
        """ε_max of the programmed array (0 without wire resistance)."""
        if self.cfg.r_wire_ohm == 0:
            return 0.0
        flat = self.g_uS.reshape(self.rows, self.physical_cols)
        return float(ir_epsilon(flat, self.cfg.r_wire_ohm).max())

    @property
    def ir_error_bound(self) -> float:
        """Bound on the first-order IR model's error relative to full-scale column current
        (0 for ``ir_model='nodal'`` or no wire resistance; valid for ε_max <= 1)."""
        if self.cfg.ir_model == "nodal":
            return 0.0
        return IR_FIRST_ORDER_ERR_COEFF * self.ir_epsilon_max ** 2

    # -- inputs ---------------------------------------------------------------------------------
    def _row_voltages(self, x) -> tuple[np.ndarray, tuple]:
        c = self.cfg
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.rows:
            raise ValueError(f"AnalogCrossbar.x: shape {x.shape} does not fit the tile, allowed "
                             f"(..., {self.rows})")
        if x.dtype.kind not in "iubf":
            raise ValueError(f"AnalogCrossbar.x: dtype {x.dtype}, allowed integer or float codes")
        lead = x.shape[:-1]
        xf = x.reshape(-1, self.rows).astype(float)
        lo, hi = c.input_range
        if xf.size:
            if not np.all(np.isfinite(xf)):
                raise ValueError("AnalogCrossbar.x: non-finite value, allowed finite codes in "
                                 f"[{lo}, {hi}]")
            if xf.min() < lo or xf.max() > hi:
                bad = xf.min() if xf.min() < lo else xf.max()
                raise ValueError(f"AnalogCrossbar.x: value {bad} out of range, allowed "
                                 f"[{lo}, {hi}]")
        if c.dac_bits is not None:
            if np.any(xf != np.round(xf)):
                bad = xf[xf != np.round(xf)].flat[0]
                raise ValueError(f"AnalogCrossbar.x: value {bad} is not an integer code, allowed "
                                 f"integers in [{lo}, {hi}] with dac_bits = {c.dac_bits} "
                                 f"(dac_bits=None takes real values)")
            drop = c.input_bits - c.dac_bits
            if drop > 0:
                step = float(1 << drop)
                q = np.floor(xf / step + 0.5)
                qlo = -(1 << (c.dac_bits - 1)) if c.input_signed else 0
                qhi = (1 << (c.dac_bits - (1 if c.input_signed else 0))) - 1
                xf = np.clip(q, qlo, qhi) * step
        return xf * c.v_lsb_mV, lead

    # -- evaluation -----------------------------------------------------------------------------
    def _rng(self, rng) -> np.random.Generator:
        if rng is None:
            return self._read_rng
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"AnalogCrossbar.rng = {rng!r}: must be a numpy Generator or None")
        return rng

    def _slice_currents_nA(self, v: np.ndarray, rng) -> np.ndarray:
        """Differential currents (B, C·S) in nA (mV·µS) for row voltages v (B, R) in mV."""
        c = self.cfg
        rn = c.read_noise
        g = self._rng(rng)
        i = v @ self._d_eff
        if not rn.active or v.shape[0] == 0:
            return i
        R, J = self.rows, self._d_eff.shape[1]
        add = rn.kind == "additive"
        win = c.tech.g_max_uS - c.tech.g_min_uS
        ap = self._alpha[..., 0].reshape(R, J)
        an = self._alpha[..., 1].reshape(R, J)

        def weights_of(n):
            # n: (..., R, J, 2) for additive (per cell), (..., R, J) for multiplicative (per pair);
            # the multiplicative product is formed in place (n is a fresh draw)
            if add:
                return win * (ap * n[..., 0] - an * n[..., 1])
            return np.multiply(n, self._d_eff, out=n)

        shape = (R, J, 2) if add else (R, J)
        if rn.per == "call":
            return i + v @ weights_of(sample_truncated(g, shape, rn.sigma, rn.trunc))
        if rn.trunc is None:
            # Sum of independent Gaussians: one Gaussian per output with the exact variance.
            w2 = (win * rn.sigma) ** 2 * (ap ** 2 + an ** 2) if add \
                else (rn.sigma * self._d_eff) ** 2
            std = np.sqrt((v * v) @ w2)
            return i + std * g.standard_normal(i.shape)
        per_vec = int(np.prod(shape))
        chunk = max(1, _CHUNK_ELEMS // per_vec)
        out = i.copy()
        for s in range(0, v.shape[0], chunk):
            vb = v[s:s + chunk]
            n = sample_truncated(g, (vb.shape[0],) + shape, rn.sigma, rn.trunc)
            out[s:s + chunk] += np.matmul(vb[:, None, :], weights_of(n))[:, 0, :]
        return out

    def slice_currents(self, x, rng=None) -> np.ndarray:
        """Differential column currents per slice, µA, shape (..., S, C) (not counted)."""
        v, lead = self._row_voltages(x)
        i = self._slice_currents_nA(v, rng) * 1e-3
        return np.swapaxes(i.reshape(-1, self.cols, self.slices), -1, -2).reshape(
            lead + (self.slices, self.cols))

    def currents(self, x, rng=None) -> np.ndarray:
        """Slice-weighted differential column currents ``Σ_k L**k·I_k``, µA, shape (..., C):
        the current an ideal analog slice combiner presents to the ADC (not counted)."""
        v, lead = self._row_voltages(x)
        i = self._slice_currents_nA(v, rng).reshape(-1, self.cols, self.slices) * 1e-3
        return (i @ self.cfg.slice_weights).reshape(lead + (self.cols,))

    def _adc(self, y: np.ndarray) -> np.ndarray:
        c = self.cfg
        lo, hi = c.adc_range
        q = np.floor(y / float(1 << c.adc_shift) + 0.5 + ADC_TIE_GUARD_LSB)
        return np.clip(q, lo, hi)

    def mvm(self, x, rng=None) -> np.ndarray:
        """Results in weight·input code units (currents / (V_LSB·ΔG_LSB)), shape (..., C); with
        ``adc_bits`` set, the ADC codes (integers as float) as the twin's ``mvm``."""
        c = self.cfg
        v, lead = self._row_voltages(x)
        n = v.shape[0]
        y = (self._slice_currents_nA(v, rng) * 1e-3 / c.unit_uA).reshape(n, self.cols,
                                                                           self.slices)
        sw = c.slice_weights
        self.counts["mvm"] += n
        self.counts["mac"] += n * self.rows * self.cols
        self.counts["dac"] += n * self.rows
        self.counts["cell_read"] += n * self.rows * self.physical_cols
        self.counts["adc"] += n * self.cols * (self.slices if c.slice_combine == "digital" else 1)
        if c.adc_bits is None:
            out = y @ sw
        elif c.slice_combine == "ideal":
            out = self._adc(y @ sw)
        else:
            lo, hi = c.adc_range
            out = np.clip(self._adc(y * sw).sum(axis=-1), lo, hi)
        return out.reshape(lead + (self.cols,))


def ir_epsilon(g_uS: np.ndarray, r_wire_ohm: float) -> np.ndarray:
    """First-order IR-drop coefficients ε (R x N) of conductances ``g_uS`` (R x N, µS).

    ``ε_ij = r·(Σ_j' G_ij'·(min(j, j') + 1) + Σ_i' G_i'j·(R - max(i, i')))`` (r in MOhm·µS = 1):
    the word-line segments 0..j carry row i's cell currents from j' >= segment, the bit-line
    segments from row i down to the ground carry column j's cell currents from rows above them.
    """
    g = np.asarray(g_uS, dtype=float)
    # word line: segment m carries the cells j' >= m; node j sits behind segments 0..j
    wl = np.cumsum(np.cumsum(g[:, ::-1], axis=1)[:, ::-1], axis=1)
    # bit line: segment m (below row m) carries the cells i' <= m; node i sits above m = i..R-1
    bl = np.cumsum(np.cumsum(g, axis=0)[::-1, :], axis=0)[::-1, :]
    return (r_wire_ohm * 1e-6) * (wl + bl)
