"""Pulse-amplitude DAC: maps the controller's per-column amplitude codes to pulse voltages.

The array port (``docs/mtj-array.md``) carries one ``code_width``-bit amplitude code per column;
this is the ideal, linear converter that turns such a code into the voltage across the junction
during the stochastic pulse. Nonlinearity and DAC noise are not modelled (ASSUMED ideal DAC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Largest DAC output voltage accepted, in mV. ASSUMED: above every voltage the device model
#: accepts (``MTJParams.v_max_valid_mV``); only a sanity bound on the converter itself.
DAC_V_LIMIT_mV = 5000.0


def _as_code_array(name: str, code, code_max: int) -> np.ndarray:
    """Integer array of codes, or ``ValueError`` naming ``name`` with the allowed range."""
    arr = np.asarray(code)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if arr.size and np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) \
                and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} = {code!r}: must be integer codes in [0, {code_max}]")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > code_max:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} = {bad}: out of range, allowed [0, {code_max}]")
    return arr.astype(np.int64)


@dataclass(frozen=True)
class PulseDAC:
    """Ideal linear pulse-amplitude DAC.

    ``code_to_mV(c) = v_min_mV + c * (v_max_mV - v_min_mV) / (2**code_width - 1)``.

    The default range is chosen for the default :class:`model.devices.mtj.MTJParams` and its default
    stochastic pulse (``t_pulse_ns``): the nominal device's 50 % voltage V50 sits near mid-code
    (code 128 of 0..255) and the fitted erf width sigma_V spans about 25 codes, while the top code
    stays below the critical voltage Vc of every cell drawn with the default
    :class:`model.devices.mtj.MTJVariation` (truncated at 3 sigma), so no default code leaves the
    thermal model's validity. ``tests/test_mtj_device.py`` checks all three properties.

    Attributes
    ----------
    code_width:
        Bits of the amplitude code, 1..16 (``ArrayConfig.code_width``).
    v_min_mV, v_max_mV:
        Output voltage for code 0 and for the largest code, mV; 0 <= v_min_mV < v_max_mV <= 5000.
    """

    code_width: int = 8
    v_min_mV: float = 946.0
    v_max_mV: float = 1239.0

    def __post_init__(self):
        cw = self.code_width
        if isinstance(cw, bool) or not isinstance(cw, int):
            raise ValueError(f"PulseDAC.code_width = {cw!r}: must be an integer in [1, 16]")
        if not 1 <= cw <= 16:
            raise ValueError(f"PulseDAC.code_width = {cw}: out of range, allowed [1, 16]")
        for name in ("v_min_mV", "v_max_mV"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ValueError(f"PulseDAC.{name} = {v!r}: must be a finite number in "
                                 f"[0, {DAC_V_LIMIT_mV}] mV")
            if not 0.0 <= v <= DAC_V_LIMIT_mV:
                raise ValueError(f"PulseDAC.{name} = {v}: out of range, allowed "
                                 f"[0, {DAC_V_LIMIT_mV}] mV")
        if not self.v_min_mV < self.v_max_mV:
            raise ValueError(f"PulseDAC.v_max_mV = {self.v_max_mV}: must be above "
                             f"v_min_mV = {self.v_min_mV}")

    @property
    def code_max(self) -> int:
        return (1 << self.code_width) - 1

    @property
    def lsb_mV(self) -> float:
        """Voltage step of one code, mV."""
        return (self.v_max_mV - self.v_min_mV) / self.code_max

    def code_to_mV(self, code):
        """Pulse voltage (mV, float or float array) of integer code(s) in [0, code_max]."""
        arr = _as_code_array("code", code, self.code_max)
        v = self.v_min_mV + arr * self.lsb_mV
        return float(v) if v.ndim == 0 else v

    def mV_to_code(self, v_mV):
        """Nearest code of voltage(s) in [v_min_mV, v_max_mV] (int or int64 array)."""
        v = np.asarray(v_mV, dtype=float)
        if v.size and (not np.all(np.isfinite(v)) or v.min() < self.v_min_mV
                       or v.max() > self.v_max_mV):
            bad = v.flat[np.argmax(~np.isfinite(v) | (v < self.v_min_mV) | (v > self.v_max_mV))]
            raise ValueError(f"v_mV = {bad}: outside the DAC range, allowed "
                             f"[{self.v_min_mV}, {self.v_max_mV}] mV")
        c = np.rint((v - self.v_min_mV) / self.lsb_mV).astype(np.int64)
        return int(c) if c.ndim == 0 else c
