"""Twin of the TRNG top with an *external* array played by the VCMA-MTJ device model.

``hw.trng_top.MTJTRNGTop(..., array="external")`` brings the controller's array port out
(``docs/mtj-array.md``, "External array"); in simulation ``sim/device_array.py`` plays that port
with the device model (:class:`model.devices.mtj.MTJArrayDevice`). This module is the golden twin
of that run:

* :class:`DevicePort` -- the device model as the array port sees it: what a RESET, a PULSE with
  amplitude codes, and a SENSE of one row do to the cells, through the pulse DAC
  (:class:`model.devices.dac.PulseDAC`). The cocotb player and the twin call the *same* object
  methods in the same order (reset, pulse, sense per row, rows one after the other), so they
  draw the same numbers from the device's one generator and sense the same bits.
* :class:`DevicePath` -- controller twin (calibration) driving a :class:`DevicePort`, then the
  readout twins chained exactly as the RTL chains the blocks (health monitor -> conditioner ->
  bit packer -> Gaussian generator). Its packed words and samples are the RTL top's ``words`` /
  ``gauss`` streams for the conditions stated in :class:`DevicePath`.

It is the per-row, transaction-level chain (no compiled fast path): a few thousand rows per
second, so meant for the physics-in-the-loop run (``make sim ARRAY=device``), not for long
sampling (the ``"trng"`` source and :class:`model.blocks.fastpath.NoisePath` are the fast path of
the emulator build).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from model.blocks.conditioner import FOLD, BitPacker, Conditioner
from model.blocks.config import (ArrayConfig, ConditionerConfig, GaussConfig, HealthConfig,
                                 check_int)
from model.blocks.fastpath import readout_configs
from model.blocks.fixedpoint import MODE_CBD, check_mode, fixed_point
from model.blocks.gaussian import GaussianGenerator
from model.blocks.health import HealthMonitor
from model.blocks.mtj_array import MTJArrayController
from model.devices.dac import PulseDAC
from model.devices.mtj import MTJArrayDevice, MTJParams, MTJVariation, device_row_period_ns

__all__ = ["DevicePath", "DevicePort"]

_MAX_SEED = 2**32 - 1


def _int(owner: str, name: str, value, lo: int, hi: int) -> int:
    """``value`` as an int after :func:`model.blocks.config.check_int` (numpy ints accepted)."""
    if isinstance(value, np.integer):
        value = int(value)
    check_int(owner, name, value, lo, hi)
    return value


class DevicePort:
    """The VCMA-MTJ device model behind the array port: reset, pulse and sense of one row.

    Parameters
    ----------
    array : ArrayConfig
        Geometry (rows, cols) and ``code_width`` of the port's amplitude codes.
    seed : int
        Seed of the :class:`MTJArrayDevice` (per-cell variation draw, then every stochastic
        event: reset errors, switching, sense noise, drift), [0, 2**32 - 1].
    params : MTJParams, optional
        Default ``MTJParams()``.
    variation : MTJVariation or None or "default"
        Per-cell spread and drift (default ``MTJVariation()``; ``None``: identical cells).
    dac : PulseDAC, optional
        Amplitude code -> pulse voltage; default ``PulseDAC(code_width=array.code_width)`` (the
        mapping every device-model user of the project takes).
    t_pulse_ns : float, optional
        Width of the analog stochastic pulse that the port's ``pulse`` strobe fires (default
        ``params.t_pulse_ns``). The strobe's length in clock cycles (``pulse_cycles``) is the
        digital command only; the junction sees this width.
    drift_every_rows : int
        0 (default): no drift. n > 0: after every n-th sense, advance the device's drift by
        the array time of n row operations (``n * device_row_period_ns(params)``).

    Notes
    -----
    The row operation is ``reset(row)``, ``pulse(row, codes)``, ``sense(row)``: the device's
    ``reset``, ``pulse`` (voltage ``dac.code_to_mV(codes)``, from the state the reset left) and
    ``sense`` of the row's stored states, each drawing from the device's one generator. Calls in
    the same order give the same bits (the device's own guarantee).
    """

    def __init__(self, array: ArrayConfig, seed: int, *, params: MTJParams | None = None,
                 variation: MTJVariation | None | str = "default", dac: PulseDAC | None = None,
                 t_pulse_ns: float | None = None, drift_every_rows: int = 0):
        o = "DevicePort"
        if not isinstance(array, ArrayConfig):
            raise ValueError(f"{o}: array = {array!r}: must be an ArrayConfig")
        self.array = array
        self.seed = _int(o, "seed", seed, 0, _MAX_SEED)
        params = MTJParams() if params is None else params
        if not isinstance(params, MTJParams):
            raise ValueError(f"{o}: params = {params!r}: must be an MTJParams")
        if isinstance(variation, str):
            if variation != "default":
                raise ValueError(f"{o}: variation = {variation!r}: allowed 'default', None or an "
                                 f"MTJVariation")
            variation = MTJVariation()
        self.dac = PulseDAC(code_width=array.code_width) if dac is None else dac
        if not isinstance(self.dac, PulseDAC) or self.dac.code_width != array.code_width:
            raise ValueError(f"{o}: dac = {dac!r}: must be a PulseDAC with code_width = "
                             f"{array.code_width} (array.code_width)")
        if t_pulse_ns is not None:
            params = replace(params, t_pulse_ns=t_pulse_ns)       # MTJParams validates it
        self.t_pulse_ns = params.t_pulse_ns
        self.drift_every_rows = _int(o, "drift_every_rows", drift_every_rows, 0, 1 << 30)
        self.device = MTJArrayDevice(params, array.rows, array.cols, seed=self.seed,
                                     variation=variation, dac=self.dac)
        self.params = params
        self.rows_sensed = 0
        self.pulses = 0
        self.resets = 0

    def reset(self, row: int) -> None:
        """RESET strobe on ``row``: the cells are written to P (bit 0), up to reset errors."""
        self.device.reset(row)
        self.resets += 1

    def pulse(self, row: int, codes) -> None:
        """PULSE strobe on ``row`` with the per-column amplitude ``codes`` (ints, length cols):
        every cell switches with the device's probability at ``dac.code_to_mV(code)``."""
        c = np.asarray(codes, dtype=np.int64)
        if c.shape != (self.array.cols,):
            raise ValueError(f"DevicePort.pulse: codes: shape {c.shape}, must be "
                             f"({self.array.cols},)")
        self.device.pulse(row, self.dac.code_to_mV(c), self.t_pulse_ns)
        self.pulses += 1

    def sense(self, row: int) -> np.ndarray:
        """SENSE strobe on ``row``: the sensed bits (uint8, shape (cols,), column 0 first),
        read errors included; the drift step follows every ``drift_every_rows``-th sense."""
        bits = self.device.sense(self.device.state[row], row)
        self.rows_sensed += 1
        n = self.drift_every_rows
        if n and self.rows_sensed % n == 0:
            self.device.drift(n * device_row_period_ns(self.params, self.t_pulse_ns) * 1e-9)
        return bits

    def row(self, row: int, codes) -> np.ndarray:
        """One whole row operation (reset, pulse, sense): the twin's call."""
        self.reset(row)
        self.pulse(row, codes)
        return self.sense(row)

    @staticmethod
    def pack(bits) -> int:
        """Bits (column 0 first) as the integer driven on the port's ``bits``."""
        return int(sum(int(b) << c for c, b in enumerate(bits)))

    def describe(self) -> dict:
        v = self.device.variation
        return {"array": f"{self.array.rows}x{self.array.cols}", "device_seed": self.seed,
                "variation": None if v is None else repr(v), "t_pulse_ns": self.t_pulse_ns,
                "dac_mV": [self.dac.v_min_mV, self.dac.v_max_mV],
                "drift_every_rows": self.drift_every_rows}


class DevicePath:
    """Controller + calibration + readout twins on the device model, row by row.

    Parameters
    ----------
    array : ArrayConfig
    device_seed : int
        Seed of the :class:`DevicePort` (which chip, and its stochastic events).
    health_cfg, cond_cfg, gauss_cfg : optional
        As ``hw.trng_top.ReadoutConfig`` (defaults ``HealthConfig(array)``,
        ``ConditionerConfig(array)``, ``GaussConfig()``).
    cond_mode, cond_k, gauss_mode, cal_enable :
        The ``COND``, ``GAUSS.mode`` and ``CTRL.cal_enable`` settings (default XOR fold k = 2,
        CBD, calibration on, as :class:`model.blocks.fastpath.NoisePath`).
    port : DevicePort, optional
        The device to drive (default ``DevicePort(array, device_seed, **port_options)``).
    **port_options :
        Passed to :class:`DevicePort` (``params``, ``variation``, ``dac``, ``t_pulse_ns``,
        ``drift_every_rows``).

    Notes
    -----
    **Equality with the RTL.** The streams are those of ``MTJTRNGTop(emu_cfg, readout,
    array="external")`` whose array port is played by ``sim.device_array.DeviceArrayPlayer``
    on a :class:`DevicePort` made with the same arguments, run from reset with ``COND`` /
    ``GAUSS.mode`` / ``CTRL.cal_enable`` set as here before ``CTRL.enable``, and no other CSR
    activity. Back-pressure, ``ready`` gaps and enable gaps change only the timing.
    Each row: ``bits = port.row(ctrl.next_row, ctrl.amps_for_next_row())``, then
    ``ctrl.capture(bits)`` and the readout twins, chained as ``sim/cocotb_readout.py`` chains
    them.
    """

    def __init__(self, array: ArrayConfig, device_seed: int = 1, *,
                 health_cfg: HealthConfig | None = None, cond_cfg: ConditionerConfig | None = None,
                 gauss_cfg: GaussConfig | None = None, cond_mode: int = FOLD, cond_k: int = 2,
                 gauss_mode: int = MODE_CBD, cal_enable: bool = True,
                 port: DevicePort | None = None, **port_options):
        o = "DevicePath"
        if not isinstance(array, ArrayConfig):
            raise ValueError(f"{o}: array = {array!r}: must be an ArrayConfig")
        health_cfg, cond_cfg, gauss_cfg = readout_configs(o, array, health_cfg, cond_cfg,
                                                          gauss_cfg)
        if not isinstance(cal_enable, (bool, np.bool_)):
            raise ValueError(f"{o}: cal_enable = {cal_enable!r}: must be a bool")
        if port is None:
            port = DevicePort(array, device_seed, **port_options)
        elif port_options:
            raise ValueError(f"{o}: port options {sorted(port_options)} given with port")
        if not isinstance(port, DevicePort) or port.array != array:
            raise ValueError(f"{o}: port = {port!r}: must be a DevicePort of array = {array!r}")
        self.array, self.port = array, port
        self.health_cfg, self.cond_cfg, self.gauss_cfg = health_cfg, cond_cfg, gauss_cfg
        self.ctrl = MTJArrayController(array)
        self.ctrl.cal_enable = bool(cal_enable)
        self.health = HealthMonitor(health_cfg)
        self.cond = Conditioner(cond_cfg)
        self.cond.set_mode(cond_mode, cond_k)          # validates both
        self.packer = BitPacker(cond_cfg)
        self.gauss = GaussianGenerator(gauss_cfg)
        self.gauss.set_mode(check_mode(o, gauss_mode))
        self.cond_mode, self.cond_k, self.gauss_mode = int(cond_mode), int(cond_k), int(gauss_mode)
        self.cal_enable = bool(cal_enable)
        self.fp = fixed_point(gauss_cfg)
        self.rows_run = 0
        self._words: list[int] = []        # packed words not yet taken
        self._samples: list[int] = []      # samples not yet taken
        self._to_gauss = True               # packed words go to the generator (words_out = 0)

    # -- the array ---------------------------------------------------------------------------
    def step(self) -> tuple[int, int, int]:
        """One row operation: returns the raw word ``(row, bits, alarm)``; its conditioned bits
        go on through the packer (and, for :meth:`gauss_samples`, the generator)."""
        ctrl = self.ctrl
        row = ctrl.next_row
        bits = self.port.row(row, ctrl.amps_for_next_row())
        _, packed = ctrl.capture(bits)
        self.rows_run += 1
        for r, b, v in self.health.push(row, packed, ctrl.last_alarm):
            cb, cv = self.cond.push(r, b, v)
            for w in self.packer.push(cb, cv):
                if self._to_gauss:
                    self._samples.extend(self.gauss.push(w))
                else:
                    self._words.append(w)
        return row, packed, ctrl.last_alarm

    def _guard(self) -> None:
        if self.health.masked.all():
            raise RuntimeError(f"DevicePath: every cell is masked by the health tests after "
                               f"{self.rows_run} rows: no conditioned bit can come "
                               f"(device_seed={self.port.seed})")

    # -- taps (use one per object: the RTL's GAUSS.words_out picks one) ------------------------
    def _take(self, n: int, words: bool) -> np.ndarray:
        tap = "packed_words" if words else "gauss_samples"
        n = _int(f"DevicePath.{tap}", "n", n, 0, 2**40)
        if self.rows_run == 0 and not self._words and not self._samples:
            self._to_gauss = not words
        if self._to_gauss == words:
            raise ValueError(f"DevicePath.{tap}: this path's packed words go "
                             f"{'to the Gaussian generator' if words else 'out on `words`'} "
                             f"(the other tap was used first); make another DevicePath")
        buf = self._words if words else self._samples
        while len(buf) < n:
            self._guard()
            self.step()
        out = buf[:n]
        del buf[:n]
        return np.asarray(out, dtype=np.uint64 if words else np.int64)

    def packed_words(self, n: int) -> np.ndarray:
        """The next ``n`` packed words (uint64; the ``words`` output with GAUSS.words_out = 1).
        The first tap used fixes the object to it (the RTL's GAUSS.words_out picks one)."""
        return self._take(n, True)

    def gauss_samples(self, n: int) -> np.ndarray:
        """The next ``n`` Gaussian samples, raw int64 (the ``gauss`` output, words_out = 0)."""
        return self._take(n, False)

    def describe(self) -> dict:
        return {**self.port.describe(), "cond_mode": self.cond_mode, "cond_k": self.cond_k,
                "gauss_mode": self.gauss_mode, "cal_enable": self.cal_enable,
                "rows_run": self.rows_run, "twin": "model.blocks.device_path.DevicePath"}
