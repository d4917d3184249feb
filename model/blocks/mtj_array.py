"""Bit-exact, transaction-level twin of ``hw.mtj_array.MTJArrayController``.

One call per row operation. The twin knows nothing about cycles: back-pressure, ``port.ready`` and
``enable`` only change *when* the RTL runs a row, never what it computes, so the twin sees the
sequence of row operations only. What it does reproduce exactly is the order of rows, the raw
words, and the calibration state (code, ones, sticky alarm per cell, the global trial counter) as
written in ``docs/mtj-array.md``.

Ordering rules the RTL follows and the caller must follow too when it drives both side by side:

* ``cal_enable`` is sampled at the capture of a row (the cycle after SENSE): set the attribute
  before calling :meth:`MTJArrayController.capture` for that row.
* ``clear_alarms`` clears every alarm at its clock edge; an alarm raised by a capture in that same
  cycle survives (set wins). Call :meth:`MTJArrayController.clear_alarms` *before* the capture of
  the same cycle.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from model.blocks.config import ArrayConfig


class MTJArrayController:
    """Row sequencer and per-cell bias calibration of the MTJ array, integer-exact.

    Parameters
    ----------
    cfg : ArrayConfig
        Geometry, timing and calibration parameters (timing fields are not used by the twin).

    Attributes
    ----------
    codes : numpy.ndarray, shape (rows, cols), int64
        Amplitude (DAC) code of every cell; reset value ``cfg.code_init``.
    ones : numpy.ndarray, shape (rows, cols), int64
        Ones counted in the current calibration window (before the next capture of the cell).
    alarms : numpy.ndarray, shape (rows, cols), bool
        Sticky saturation alarms.
    trial : int
        Global trial counter, ``0 .. W-1``; increments after the capture of row ``rows - 1``.
    next_row : int
        The row the next row operation runs.
    rows_sensed : int
        Words captured since reset, modulo 2**32.
    cal_enable : bool
        Control input (``CTRL.cal_enable``), sampled at each capture. Default ``True`` (the CSR
        reset value). :meth:`reset` leaves it as it is: it belongs to the register bank.
    last_alarm : int
        The ``alarm`` field of the last raw word: the captured row's alarms right after its
        capture, packed with bit c = column c (0 after reset).
    """

    def __init__(self, cfg: ArrayConfig):
        if not isinstance(cfg, ArrayConfig):
            raise ValueError(f"MTJArrayController.cfg = {cfg!r}: must be an ArrayConfig "
                             f"(model.blocks.config.ArrayConfig)")
        self.cfg = cfg
        self.cal_enable = True
        self.reset()

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Return to the reset state: row 0, trial 0, every code ``code_init``, no alarm."""
        c = self.cfg
        self.codes = np.full((c.rows, c.cols), c.code_init, dtype=np.int64)
        self.ones = np.zeros((c.rows, c.cols), dtype=np.int64)
        self.alarms = np.zeros((c.rows, c.cols), dtype=bool)
        self.trial = 0
        self.next_row = 0
        self.rows_sensed = 0
        self.last_alarm = 0

    def clear_alarms(self) -> None:
        """``CTRL.clear_alarms`` strobe: clear every cell's sticky alarm."""
        self.alarms[:] = False

    @property
    def alarm_any(self) -> bool:
        return bool(self.alarms.any())

    def cell(self, index: int) -> tuple[int, bool]:
        """``(code, alarm)`` of cell ``index = row * cols + col``, as ``cell_code``/``cell_alarm``
        show it; an index outside the array reads ``(0, False)``."""
        if not 0 <= index < self.cfg.cells:
            return 0, False
        r, col = divmod(index, self.cfg.cols)
        return int(self.codes[r, col]), bool(self.alarms[r, col])

    # -- one row operation -----------------------------------------------------------------------
    def amps_for_next_row(self) -> np.ndarray:
        """The ``cols`` codes driven on ``amp`` during the next row's PULSE."""
        return self.codes[self.next_row].copy()

    def capture(self, bits) -> tuple[int, int]:
        """Capture the sensed bits of row ``next_row``; calibrate it; advance to the next row.

        Parameters
        ----------
        bits : array_like of int, length ``cols``
            Sensed state (0/1) of every cell of the row, column 0 first.

        Returns
        -------
        (row, bits_int) : tuple of int
            The raw word's row and bits (bits packed with bit c = column c). Its ``alarm`` field
            is :attr:`last_alarm` after the call.
        """
        c = self.cfg
        b = np.asarray(bits, dtype=np.int64).reshape(-1)
        if b.shape != (c.cols,) or np.any((b != 0) & (b != 1)):
            raise ValueError(f"MTJArrayController.capture: bits = {bits!r}: must be {c.cols} "
                             f"values in {{0, 1}}")
        r = self.next_row
        ones = self.ones[r] + b
        if self.trial == c.window - 1:            # this capture closes every cell's window
            if self.cal_enable:
                e = ones - c.window // 2
                mag = np.abs(e)
                move = mag > c.deadband
                step = np.maximum(1, mag >> c.step_shift)
                code = self.codes[r]
                down = move & (e > 0)             # switches too often: lower the amplitude
                up = move & (e < 0)
                self.alarms[r] |= (down & (code == 0)) | (up & (code == c.code_max))
                code = np.where(down, np.maximum(0, code - step), code)
                code = np.where(up, np.minimum(c.code_max, code + step), code)
                self.codes[r] = code
            self.ones[r] = 0
        else:
            self.ones[r] = ones
        if r == c.rows - 1:
            self.trial = (self.trial + 1) % c.window
        self.next_row = (r + 1) % c.rows
        self.rows_sensed = (self.rows_sensed + 1) & 0xFFFF_FFFF
        word = int(sum(int(v) << i for i, v in enumerate(b)))
        self.last_alarm = int(sum(int(v) << i for i, v in enumerate(self.alarms[r])))
        return r, word

    def run(self, n_rows: int, array_fn: Callable[[int, np.ndarray], object]) -> list[tuple[int, int]]:
        """Run ``n_rows`` row operations against ``array_fn(row, amps) -> bits``.

        Returns the raw words ``(row, bits_int)`` in order.
        """
        words = []
        for _ in range(n_rows):
            r = self.next_row
            words.append(self.capture(array_fn(r, self.amps_for_next_row())))
        return words


def window_tolerance(window: int, z: float = 3.0) -> float:
    """Tolerance on a calibrated cell's p, from the window length alone.

    One window estimates p from W trials; at p = 1/2 its standard deviation is
    sqrt(p(1-p)/W) = 1/(2 sqrt(W)). The loop cannot hold a cell closer than its own measurement
    noise, so the tolerance is ``z`` of those standard deviations.
    """
    if window < 1:
        raise ValueError(f"window = {window}: must be >= 1")
    return z * 0.5 / float(np.sqrt(window))


def convergence_windows(p_history, tol: float) -> int | None:
    """First window index k such that every cell stays within 0.5 +- tol from k on.

    ``p_history``: shape (windows + 1, rows, cols), each cell's exact p after each window (index
    0 is before calibration). Returns None when the last snapshot is still outside.
    """
    ok = np.all(np.abs(np.asarray(p_history) - 0.5) <= tol, axis=tuple(range(1, np.ndim(p_history))))
    if not ok[-1]:
        return None
    bad = np.flatnonzero(~ok)
    return int(bad[-1] + 1) if bad.size else 0


def calibrate(ctrl: MTJArrayController, array, windows: int) -> np.ndarray:
    """Run ``windows`` calibration windows of ``ctrl`` against ``array`` (an object with
    ``trial(row, amps)`` and ``probability(rows, amps)``, e.g. the emulator twin).

    Returns each cell's exact p after every window, shape (windows + 1, rows, cols).
    """
    cfg = ctrl.cfg
    rows = np.arange(cfg.rows)
    history = [array.probability(rows, ctrl.codes)]
    for _ in range(windows):
        ctrl.run(cfg.window * cfg.rows, array.trial)
        history.append(array.probability(rows, ctrl.codes))
    return np.array(history)
