"""What a converted layer runs on: :class:`CrossbarSpec` (tile geometry, bit widths, the analog
options) and the per-layer scales that calibration picks (:class:`LayerScales`).

Scales follow ``docs/crossbar.md`` §5: every scale is a power of two. A layer with input scale
``2**-fx`` (x = code * 2**-fx) and weight scale ``2**-fw`` has an ADC LSB of
``2**(adc_shift - fx - fw)`` and an output code scale of ``2**(adc_shift + out_shift - fx - fw)``,
which is ``2**-fx_out``, the next layer's input scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from model.blocks.config import check_int
from model.blocks.crossbar_config import TileConfig, clog2

MODES = ("float", "digital", "analog")

#: AnalogConfig fields that the spec and the calibration set; not allowed among the overrides.
_SPEC_OWNED = ("tech", "weight_bits", "input_bits", "input_signed", "adc_bits", "adc_shift")


def check_mode(owner: str, mode) -> str:
    if mode not in MODES:
        raise ValueError(f"{owner}.mode = {mode!r}: must be one of {MODES}")
    return mode


@dataclass(frozen=True)
class CrossbarSpec:
    """Hardware a converted ``nn.Linear`` maps onto.

    Attributes
    ----------
    rows, cols:
        Tile size R x C (``TileConfig.rows/cols``). A layer is cut into ceil(in/R) x ceil(out/C)
        blocks, one tile (slot) each; each block's column sums pass the ADC before the digital sum
        across row blocks.
    weight_bits:
        Signed weight code width; codes use the symmetric range ``±(2**(wb-1) - 1)``.
    input_bits, input_signed:
        DAC code width and signedness. Unsigned inputs clip every negative activation to 0
        (fine for pixel inputs followed by ReLU layers, wrong for signed outputs such as logits).
    adc_bits:
        Signed ADC code width, or ``None`` for a lossless converter: the digital mode then uses
        ``min(32, acc_bits)`` bits (every column sum fits, ``adc_shift`` = 0) and the analog mode
        has no ADC (its column currents are read as floats).
    macs_per_cycle, bias_bits:
        Only for :func:`model.nn.export.export_program` (``TileConfig.macs_per_cycle``,
        ``EngineConfig.bias_bits``; a bias is clipped to ``bias_bits`` in every mode).
    calib_percentile:
        Percentile of |value| over the calibration batch that sets each range (inputs, column
        sums, pre-activations); 100 = the maximum (no clipping on the calibration data).
    tech:
        Analog cell technology: a name of ``model.devices.crossbar.PRESETS`` (``"rram"``,
        ``"mtj"``; case-insensitive, stored lower-case).
    analog:
        Overrides of ``model.devices.crossbar.AnalogConfig`` fields (e.g. ``{"read_noise":
        ReadNoise("multiplicative", 0.05), "prog_sigma_rel": 0.02}``; the defaults are
        ideal); the fields that the spec and the calibration own (tech, bit widths,
        adc_shift) are not allowed here.
    noise_aware, train_noise_sigma, train_noise_trunc:
        Hardware-aware training in float mode (Yang et al. 2024, arXiv 2404.05648, reference
        code): while the module is in training mode every forward uses weights ``w * (1 + n)``,
        ``n ~ N(0, sigma**2)``, each ``|n| >= trunc`` redrawn uniformly in ``[-trunc, trunc]``
        (paper: sigma 0.1, trunc 0.2).
    seed:
        Seeds the analog devices (programming error), the read-noise stream and the training
        noise: same seed, same bits.
    """

    rows: int = 16
    cols: int = 16
    weight_bits: int = 8
    input_bits: int = 8
    input_signed: bool = True
    adc_bits: int | None = 8
    macs_per_cycle: int = 4
    bias_bits: int = 16
    calib_percentile: float = 100.0
    tech: str = "rram"
    analog: Mapping[str, Any] = field(default_factory=dict)
    noise_aware: bool = False
    train_noise_sigma: float = 0.1
    train_noise_trunc: float = 0.2
    seed: int = 0

    def __post_init__(self):
        o = "CrossbarSpec"
        check_int(o, "rows", self.rows, 1, 1024)
        check_int(o, "cols", self.cols, 1, 1024)
        check_int(o, "weight_bits", self.weight_bits, 2, 16)
        if not isinstance(self.input_signed, bool):
            raise ValueError(f"{o}.input_signed = {self.input_signed!r}: must be True or False")
        check_int(o, "input_bits", self.input_bits, 2 if self.input_signed else 1, 16)
        if self.adc_bits is not None:
            check_int(o, "adc_bits", self.adc_bits, 2, 32)
        check_int(o, "macs_per_cycle", self.macs_per_cycle, 1, self.cols)
        if self.cols % self.macs_per_cycle:
            divs = [d for d in range(1, self.cols + 1) if self.cols % d == 0]
            raise ValueError(f"{o}.macs_per_cycle = {self.macs_per_cycle}: must divide "
                             f"cols = {self.cols}, allowed {divs}")
        check_int(o, "bias_bits", self.bias_bits, 2, 32)
        if not isinstance(self.calib_percentile, (int, float)) or isinstance(
                self.calib_percentile, bool) or not 50.0 <= self.calib_percentile <= 100.0:
            raise ValueError(f"{o}.calib_percentile = {self.calib_percentile!r}: out of range, "
                             f"allowed [50, 100]")
        if not isinstance(self.noise_aware, bool):
            raise ValueError(f"{o}.noise_aware = {self.noise_aware!r}: must be True or False")
        for name, hi in (("train_noise_sigma", 1.0), ("train_noise_trunc", 1.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= hi:
                raise ValueError(f"{o}.{name} = {v!r}: out of range, allowed [0, {hi}]")
        if self.noise_aware and self.train_noise_trunc == 0.0:
            raise ValueError(f"{o}.train_noise_trunc = 0.0: must be > 0 with noise_aware, "
                             f"allowed (0, 1]")
        check_int(o, "seed", self.seed, 0, 2**32 - 1)
        if not isinstance(self.tech, str):
            raise ValueError(f"{o}.tech = {self.tech!r}: must be a preset name (str)")
        object.__setattr__(self, "tech", self.tech.lower())
        if not isinstance(self.analog, Mapping):
            raise ValueError(f"{o}.analog = {self.analog!r}: must be a mapping of "
                             f"AnalogConfig field overrides")
        object.__setattr__(self, "analog", dict(self.analog))
        for k in self.analog:
            if k in _SPEC_OWNED:
                raise ValueError(f"{o}.analog[{k!r}]: set by the spec or the calibration, not "
                                 f"an override; not allowed: {_SPEC_OWNED}")
        self.tile_config(slots=1)       # the shared TileConfig rules, as a last check
        _validate_analog(self)

    # -- derived --------------------------------------------------------------------------------
    @property
    def weight_max(self) -> int:
        """Largest weight code magnitude (symmetric analog range)."""
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def input_range(self) -> tuple[int, int]:
        if self.input_signed:
            return -(1 << (self.input_bits - 1)), (1 << (self.input_bits - 1)) - 1
        return 0, (1 << self.input_bits) - 1

    @property
    def acc_bits(self) -> int:
        return self.weight_bits + self.input_bits + 1 + clog2(self.rows)

    @property
    def digital_adc_bits(self) -> int:
        """ADC width of the digital mode and of the exported tile (lossless when None)."""
        return self.adc_bits if self.adc_bits is not None else min(32, self.acc_bits)

    def tile_config(self, slots: int = 1) -> TileConfig:
        return TileConfig(rows=self.rows, cols=self.cols, weight_bits=self.weight_bits,
                          input_bits=self.input_bits, input_signed=self.input_signed,
                          adc_bits=self.digital_adc_bits, macs_per_cycle=self.macs_per_cycle,
                          bit_serial=False, slots=slots)

    def replace(self, **changes) -> "CrossbarSpec":
        return dataclasses.replace(self, **changes)

    def analog_config(self, adc_shift: int):
        """The ``AnalogConfig`` of one tile of a layer calibrated with ``adc_shift``."""
        dev = _devices()
        if self.tech not in dev.PRESETS:
            raise ValueError(f"CrossbarSpec.tech = {self.tech!r}: unknown, allowed "
                             f"{sorted(dev.PRESETS)}")
        base = dict(tech=dev.PRESETS[self.tech], weight_bits=self.weight_bits,
                    input_bits=self.input_bits, input_signed=self.input_signed,
                    adc_bits=self.adc_bits, adc_shift=adc_shift)
        return dev.AnalogConfig(**{**base, **self.analog})


def _devices():
    import model.devices.crossbar as dev
    return dev


def _validate_analog(spec: CrossbarSpec) -> None:
    """Check the tech name and the overrides against ``AnalogConfig`` (when the analog model is
    importable; the float and digital modes do not need it)."""
    try:
        dev = _devices()
    except ImportError:
        return
    names = {f.name for f in dataclasses.fields(dev.AnalogConfig)}
    for k in spec.analog:
        if k not in names:
            raise ValueError(f"CrossbarSpec.analog[{k!r}]: not an AnalogConfig field, allowed "
                             f"{sorted(names - set(_SPEC_OWNED))}")
    spec.analog_config(adc_shift=0)      # AnalogConfig validates the values


@dataclass(frozen=True)
class LayerScales:
    """Power-of-two scales and shifts of one calibrated layer (``docs/crossbar.md`` §5).

    ``x = x_code * 2**-fx``, ``W = W_code * 2**-fw``, ADC LSB ``2**(adc_shift - fx - fw)``, output
    code scale ``2**-fx_out`` with ``fx_out = fx + fw - adc_shift - out_shift``.
    """

    fx: int
    fw: int
    adc_shift: int
    out_shift: int

    @property
    def fx_out(self) -> int:
        return self.fx + self.fw - self.adc_shift - self.out_shift

    @property
    def bias_shift(self) -> int:
        """A bias in ADC units is ``b * 2**bias_shift`` before rounding."""
        return self.fx + self.fw - self.adc_shift
