"""Bit sources for the validation suites (``docs/validation.md``, "Sources").

Every source is an object with ``name``, ``bits(n) -> uint8 array of 0/1`` (the next ``n`` bits
of one continuous stream; successive calls continue it) and ``describe() -> dict``.

* :class:`TwinRawSource` -- the raw bits of the emulator-driven readout twin
  (:class:`model.blocks.fastpath.NoisePath`, bit-exact with the RTL TRNG top), in raw-word order.
* :class:`TwinConditionedSource` -- the conditioned output of the same twin (after the health
  monitor and the conditioner) for one conditioning mode: pass-through, XOR fold k, von Neumann.
* :class:`DeviceSource` -- the VCMA-MTJ device model (:class:`model.devices.mtj.MTJArrayDevice`,
  per-cell variation and drift) sampled at the codes of the calibration loop
  (:class:`model.blocks.mtj_array.MTJArrayController`, the bit-exact twin, driven one window at a
  time by :class:`DeviceArray`), or at fixed nominal codes ("before calibration").
* :class:`FileSource` -- a recorded bitstream (:data:`FILE_FORMATS`), so that a lab with a real
  array can run the same suites; :func:`write_bits_file` writes the same formats.

Raw-word order (twin raw bits and device bits): sweep after sweep, within a sweep row 0 first,
within a row column 0 first; bit index ``(s * rows + r) * cols + c``.

These are models driven by pseudo-random generators (xoshiro128++ in the emulator, numpy's
PCG64 in the device model): a pass says that the generator, calibration and conditioning of the
*model* are sound, not that a physical junction is random.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from model.blocks.conditioner import FOLD, VON_NEUMANN
from model.blocks.config import ArrayConfig, EmulatorConfig, HealthConfig
from model.blocks.fastpath import NoisePath
from model.blocks.mtj_array import MTJArrayController
from model.devices.dac import PulseDAC
from model.devices.mtj import (MTJArrayDevice, MTJParams, MTJVariation, default_emulator_config,
                               device_row_period_ns)
from model.io import atomic_write_bytes

__all__ = ["COND_MODES", "FILE_FORMATS", "DeviceArray", "DeviceSource", "FileSource",
           "TwinConditionedSource", "TwinRawSource", "default_emulator", "read_bits_file",
           "write_bits_file"]

#: Conditioning modes of :class:`TwinConditionedSource`: name -> (COND mode, k).
COND_MODES = {"passthrough": (0, 1), "xor2": (FOLD, 2), "von_neumann": (VON_NEUMANN, 2)}

#: Recorded-bitstream formats: ``"bin"``: raw bytes, 8 bits per byte, most significant bit
#: first (the first bit of the stream is bit 7 of byte 0); ``"ascii"``: characters '0' and '1',
#: whitespace (spaces, newlines) ignored, any other character an error.
FILE_FORMATS = ("bin", "ascii")

_MAX_SEED = 2**32 - 1


def _check_int(owner: str, name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not lo <= int(value) <= hi:
        raise ValueError(f"{owner}: {name} = {value!r}: must be an integer in [{lo}, {hi}]")
    return int(value)


def _check_n(owner: str, n) -> int:
    return _check_int(owner, "n", n, 0, 2**40)


def default_emulator(seed: int = 1, array: ArrayConfig | None = None) -> EmulatorConfig:
    """The default emulator configuration (what ``make sim`` uses): the device model's threshold
    table and per-cell offsets drawn with ``seed``, emulator seeded with ``seed``."""
    seed = _check_int("default_emulator", "seed", seed, 0, _MAX_SEED)
    a = ArrayConfig() if array is None else array
    table, offsets = default_emulator_config(a, seed=seed)
    return EmulatorConfig(array=a, table=tuple(table), offsets=tuple(offsets), seed=seed)


# ------------------------------------------------------------------------------------------------
class TwinRawSource:
    """Raw bits of the readout twin (:class:`~model.blocks.fastpath.NoisePath`), calibration on.

    Parameters
    ----------
    seed : int
        Device-variation seed of the emulator table/offsets and the emulator seed.
    skip_sweeps : int
        Sweeps run and dropped first (the calibration's start-up transient; default 30 windows of
        the default array, 1920 sweeps). 0: the stream from reset.
    emu_cfg : EmulatorConfig, optional
        Default :func:`default_emulator` (seed).

    Notes
    -----
    ``bits(n)`` equals ``NoisePath(emu_cfg, seed=seed).run_raw(S)[0].ravel()`` after the first
    ``skip_sweeps`` sweeps (tested).
    """

    def __init__(self, seed: int = 1, skip_sweeps: int = 1920,
                 emu_cfg: EmulatorConfig | None = None):
        self.seed = _check_int("TwinRawSource", "seed", seed, 0, _MAX_SEED)
        self.skip_sweeps = _check_int("TwinRawSource", "skip_sweeps", skip_sweeps, 0, 2**30)
        self.emu_cfg = default_emulator(self.seed) if emu_cfg is None else emu_cfg
        self.name = "twin_raw"
        self.path = NoisePath(self.emu_cfg, seed=self.seed)
        if self.skip_sweeps:
            self.path.run_raw(self.skip_sweeps)
        self._buf = np.zeros(0, dtype=np.uint8)

    def bits(self, n: int) -> np.ndarray:
        n = _check_n("TwinRawSource.bits", n)
        cells = self.emu_cfg.array.cells
        if self._buf.size < n:
            b, _ = self.path.run_raw(-(-(n - self._buf.size) // cells))
            self._buf = np.concatenate((self._buf, b.ravel()))
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def describe(self) -> dict:
        a = self.emu_cfg.array
        return {"name": self.name, "kind": "readout twin (emulator), raw bits",
                "array": f"{a.rows}x{a.cols}", "seed": self.seed,
                "skip_sweeps": self.skip_sweeps, "calibration": True,
                "order": "raw-word order: sweep, row, column"}


class TwinConditionedSource:
    """Conditioned output of the readout twin: health monitor (default settings) + conditioner.

    Parameters
    ----------
    mode : str
        A key of :data:`COND_MODES` (``"passthrough"``, ``"xor2"``, ``"von_neumann"``).
    seed : int
        As :class:`TwinRawSource`.
    skip_sweeps : int
        Sweeps run first whose conditioned bits are dropped (the calibration's start-up, default
        1920 = 30 windows); 0: the stream from reset.
    emu_cfg : EmulatorConfig, optional
    health_cfg : HealthConfig, optional

    Notes
    -----
    The stream is :meth:`NoisePath.conditioned_bits` after the first ``skip_sweeps`` sweeps,
    exactly what the RTL's packer receives then (cells masked during the start-up transient
    stay masked and contribute no bits).
    """

    def __init__(self, mode: str = "xor2", seed: int = 1, skip_sweeps: int = 1920,
                 emu_cfg: EmulatorConfig | None = None, health_cfg: HealthConfig | None = None):
        if mode not in COND_MODES:
            raise ValueError(f"TwinConditionedSource: mode = {mode!r}: allowed "
                             f"{sorted(COND_MODES)}")
        self.mode = mode
        self.seed = _check_int("TwinConditionedSource", "seed", seed, 0, _MAX_SEED)
        self.emu_cfg = default_emulator(self.seed) if emu_cfg is None else emu_cfg
        self.name = f"twin_{mode}"
        cm, k = COND_MODES[mode]
        self.path = NoisePath(self.emu_cfg, health_cfg, seed=self.seed, cond_mode=cm, cond_k=k)
        self.skip_sweeps = _check_int("TwinConditionedSource", "skip_sweeps", skip_sweeps, 0,
                                      2**30)
        if self.skip_sweeps:
            self.path.run_raw(self.skip_sweeps)
            # drop the conditioned bits of those sweeps: everything waiting in the tap's buffer
            # (NoisePath has no public count of it; _cbuf is that buffer)
            self.path.conditioned_bits(self.path._cbuf.size)

    def bits(self, n: int) -> np.ndarray:
        return self.path.conditioned_bits(_check_n("TwinConditionedSource.bits", n))

    def describe(self) -> dict:
        a = self.emu_cfg.array
        cm, k = COND_MODES[self.mode]
        return {"name": self.name, "kind": "readout twin (emulator), conditioned output",
                "array": f"{a.rows}x{a.cols}", "seed": self.seed, "cond_mode": cm, "cond_k": k,
                "skip_sweeps": self.skip_sweeps,
                "masked_cells": int(self.path.masked.sum()),
                "order": "packer order (NoisePath.conditioned_bits)"}


# ------------------------------------------------------------------------------------------------
class DeviceArray:
    """The device model played window by window against the calibration twin.

    Within one calibration window (W sweeps) every cell keeps its code, so the W sweeps' bits are
    drawn at once: ``bit = u < P_sensed(code_to_mV(code) + extra_offset_mV)`` per cell and sweep
    (``MTJArrayDevice.sensed_prob``: reset + pulse + sense, read errors included). The controller
    twin then sees the window exactly as if each row had been captured one by one: its ``ones``
    are set to the first W - 1 sweeps' sums and the last sweep's rows are captured through
    :meth:`MTJArrayController.capture` (which closes the window, moves the codes and raises the
    sticky saturation alarms). Equality with capturing every row is tested.

    Parameters
    ----------
    array : ArrayConfig, optional
        Default ``ArrayConfig()`` (8 x 8, W = 64).
    seed : int
        Seeds the device draw (variation, drift walk) and, with a second stream, the trials.
    calibrate : bool
        ``cal_enable`` of the controller. False: every cell stays at ``code_init``, which is then
        the nominal device's code nearest P = 1/2 ("before calibration").
    variation : MTJVariation or None
        Default ``MTJVariation()``.
    drift : bool
        Advance the device drift by the array time of each window.
    drift_speedup : float
        Array seconds of drift per second of sampled array time (1 = real time; > 1 compresses
        hours of drift into a short test, ASSUMED for stress runs).
    params : MTJParams, optional
    restart : int
        Power-up index of the same device (SP 800-90B restart data): 0 is the default stream;
        i > 0 draws the sampling noise from another stream, while the device (variation, drift
        walk, both from ``seed``) and the calibration's start (``code_init``) stay the same.

    Attributes
    ----------
    extra_offset_mV : ndarray (rows, cols)
        Fault-injection hook: a voltage added to each cell's pulse (like the device's drift
        offset). Set it between windows.
    sweep_time_s : float
        Array time of one sweep (rows row operations, ``device_row_period_ns``).
    """

    def __init__(self, array: ArrayConfig | None = None, seed: int = 1, *, calibrate: bool = True,
                 variation: MTJVariation | None | str = "default", drift: bool = True,
                 drift_speedup: float = 1.0, params: MTJParams | None = None,
                 restart: int = 0):
        a = ArrayConfig() if array is None else array
        if not isinstance(a, ArrayConfig):
            raise ValueError(f"DeviceArray: array = {array!r}: must be an ArrayConfig")
        self.seed = _check_int("DeviceArray", "seed", seed, 0, _MAX_SEED)
        for name, v in (("calibrate", calibrate), ("drift", drift)):
            if not isinstance(v, bool):
                raise ValueError(f"DeviceArray: {name} = {v!r}: must be True or False")
        if isinstance(drift_speedup, bool) or not isinstance(drift_speedup, (int, float)) \
                or not 0 < drift_speedup <= 1e9:
            raise ValueError(f"DeviceArray: drift_speedup = {drift_speedup!r}: must be a number "
                             f"in (0, 1e9]")
        params = MTJParams() if params is None else params
        variation = MTJVariation() if isinstance(variation, str) and variation == "default" \
            else variation
        self.dac = PulseDAC(code_width=a.code_width)
        self.device = MTJArrayDevice(params, a.rows, a.cols, seed=self.seed, variation=variation,
                                     dac=self.dac)
        if not calibrate:
            p = self.device.nominal.sensed_prob(self.dac.code_to_mV(np.arange(a.code_max + 1)))
            a = dataclasses.replace(a, code_init=int(np.abs(p - 0.5).argmin()))
        self.array = a
        self.calibrate, self.drift, self.drift_speedup = calibrate, drift, float(drift_speedup)
        self.ctrl = MTJArrayController(a)
        self.ctrl.cal_enable = calibrate
        self.restart = _check_int("DeviceArray", "restart", restart, 0, _MAX_SEED)
        self.rng = np.random.default_rng([self.seed, 0x5EED] if not self.restart else
                                         [self.seed, 0x5EED, self.restart])
        self.extra_offset_mV = np.zeros((a.rows, a.cols))
        self.sweep_time_s = a.rows * device_row_period_ns(params) * 1e-9
        self.windows_run = 0

    def probabilities(self) -> np.ndarray:
        """P(sensed 1) of every cell (rows, cols) at its current code and device state."""
        v = self.dac.code_to_mV(self.ctrl.codes) + self.extra_offset_mV
        return np.clip(self.device.sensed_prob(v), 0.0, 1.0)

    def window(self, override=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run one calibration window.

        Parameters
        ----------
        override : callable, optional
            ``override(bits)`` may change the window's bits (W, rows, cols) in place before the
            controller sees them (fault injection).

        Returns
        -------
        bits : ndarray uint8 (W, rows, cols)
        alarm : ndarray bool (W, rows, cols)
            The raw word's alarm field of each sample (the cell's sticky saturation alarm right
            after its capture).
        p : ndarray (rows, cols)
            The cells' P(1) during the window.
        """
        a, ctrl = self.array, self.ctrl
        w = a.window
        if ctrl.trial != 0 or ctrl.next_row != 0:
            raise RuntimeError("DeviceArray.window: controller not at a window boundary")
        p = self.probabilities()
        bits = (self.rng.random((w, a.rows, a.cols)) < p).astype(np.uint8)
        if override is not None:
            override(bits)
        alarm = np.broadcast_to(ctrl.alarms, bits.shape).copy()
        ctrl.ones[:] = bits[:w - 1].sum(axis=0)
        ctrl.trial = w - 1
        ctrl.rows_sensed = (ctrl.rows_sensed + (w - 1) * a.rows) & 0xFFFF_FFFF
        for r in range(a.rows):
            ctrl.capture(bits[w - 1, r])
            alarm[w - 1, r] = ctrl.alarms[r]
        if self.drift:
            self.device.drift(w * self.sweep_time_s * self.drift_speedup)
        self.windows_run += 1
        return bits, alarm, p


class DeviceSource:
    """Raw bits of the device model (variation and drift), before or after calibration.

    Parameters
    ----------
    calibrate : bool
        True: the calibration loop runs (and ``skip_windows`` windows are dropped first, its
        start-up). False: fixed nominal codes, nothing dropped.
    seed : int
    skip_windows : int
        Windows dropped first when calibrating (default 30).
    drift_speedup : float
        See :class:`DeviceArray` (default 1000, ASSUMED stress: 10^6 bits then span about 2 min
        of drift instead of 0.13 s).
    restart : int
        Power-up index (:class:`DeviceArray`): the same device restarted, fresh sampling noise,
        the start-up dropped again.
    """

    def __init__(self, calibrate: bool = True, seed: int = 1, skip_windows: int = 30,
                 drift_speedup: float = 1000.0, array: ArrayConfig | None = None,
                 restart: int = 0):
        self.arr = DeviceArray(array, seed, calibrate=calibrate, drift_speedup=drift_speedup,
                               restart=restart)
        self.skip_windows = _check_int("DeviceSource", "skip_windows", skip_windows, 0, 2**20) \
            if calibrate else 0
        self.name = "device_calibrated" if calibrate else "device_uncalibrated"
        for _ in range(self.skip_windows):
            self.arr.window()
        self._buf = np.zeros(0, dtype=np.uint8)
        self.p_min, self.p_max = 1.0, 0.0

    def bits(self, n: int) -> np.ndarray:
        n = _check_n("DeviceSource.bits", n)
        parts = [self._buf]
        have = self._buf.size
        while have < n:
            b, _, p = self.arr.window()
            self.p_min, self.p_max = min(self.p_min, float(p.min())), max(self.p_max,
                                                                          float(p.max()))
            parts.append(b.ravel())
            have += b.size
        buf = np.concatenate(parts)
        out, self._buf = buf[:n], buf[n:]
        return out

    def describe(self) -> dict:
        a, dev = self.arr.array, self.arr.device
        return {"name": self.name, "kind": "VCMA-MTJ device model, raw bits",
                "array": f"{a.rows}x{a.cols}", "seed": self.arr.seed,
                "calibration": self.arr.calibrate, "skip_windows": self.skip_windows,
                "restart": self.arr.restart,
                "variation": repr(dev.variation), "drift_speedup": self.arr.drift_speedup,
                "array_time_s": self.arr.windows_run * a.window * self.arr.sweep_time_s,
                "drift_time_s": dev.time_s,
                "cell_p_range": [self.p_min, self.p_max] if self.p_max >= self.p_min else None,
                "order": "raw-word order: sweep, row, column"}


# ------------------------------------------------------------------------------------------------
def _check_format(owner: str, fmt: str) -> str:
    if fmt not in FILE_FORMATS:
        raise ValueError(f"{owner}: fmt = {fmt!r}: allowed {list(FILE_FORMATS)}")
    return fmt


def read_bits_file(path, fmt: str = "bin") -> np.ndarray:
    """Read a recorded bitstream (:data:`FILE_FORMATS`) -> uint8 array of 0/1."""
    fmt = _check_format("read_bits_file", fmt)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"read_bits_file: path = {str(path)!r}: no such file")
    data = path.read_bytes()
    if fmt == "bin":
        return np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    a = np.frombuffer(data, dtype=np.uint8)
    a = a[~np.isin(a, np.frombuffer(b" \t\r\n", dtype=np.uint8))]
    bad = np.flatnonzero((a != ord("0")) & (a != ord("1")))
    if bad.size:
        raise ValueError(f"read_bits_file: {str(path)!r}: character {chr(a[bad[0]])!r} at "
                         f"bit {int(bad[0])}: the ascii format allows only '0', '1' and "
                         f"whitespace")
    return (a - ord("0")).astype(np.uint8)


def write_bits_file(path, bits, fmt: str = "bin") -> Path:
    """Write bits (0/1) atomically in one of :data:`FILE_FORMATS`. The ``bin`` format needs a
    multiple of 8 bits (the format has no length field); ``ascii`` writes 64 bits per line."""
    fmt = _check_format("write_bits_file", fmt)
    b = np.asarray(bits)
    if b.ndim != 1 or (b.size and (b.min() < 0 or b.max() > 1)):
        raise ValueError("write_bits_file: bits must be a 1-D array of 0/1")
    b = b.astype(np.uint8)
    if fmt == "bin":
        if b.size % 8:
            raise ValueError(f"write_bits_file: {b.size} bits: the bin format needs a multiple "
                             f"of 8")
        return atomic_write_bytes(path, np.packbits(b).tobytes())
    chars = (b + ord("0")).astype(np.uint8)
    lines = [chars[i:i + 64].tobytes() for i in range(0, b.size, 64)]
    return atomic_write_bytes(path, b"\n".join(lines) + (b"\n" if lines else b""))


class FileSource:
    """A recorded bitstream as a source (whole file read at construction).

    Raises ValueError from :meth:`bits` when the file holds fewer bits than asked, naming both
    counts (the driver names the test that needs them).
    """

    def __init__(self, path, fmt: str = "bin"):
        self.path, self.fmt = Path(path), _check_format("FileSource", fmt)
        self._bits = read_bits_file(self.path, fmt)
        self._pos = 0
        self.name = "file"

    @property
    def total_bits(self) -> int:
        return int(self._bits.size)

    @property
    def remaining(self) -> int:
        return self.total_bits - self._pos

    def bits(self, n: int) -> np.ndarray:
        n = _check_n("FileSource.bits", n)
        if n > self.remaining:
            raise ValueError(f"FileSource: {str(self.path)!r} has {self.remaining} bits left "
                             f"({self.total_bits} in all), {n} needed")
        out = self._bits[self._pos:self._pos + n]
        self._pos += n
        return out

    def describe(self) -> dict:
        return {"name": self.name, "kind": "recorded bitstream", "path": str(self.path),
                "format": self.fmt, "bits": self.total_bits}
