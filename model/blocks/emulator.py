"""Bit-exact twin of ``hw/emulator.py``: the pseudo-random MTJ-array emulator.

Transaction level: one :meth:`MTJArrayEmulator.trial` is one row operation of the controller
(RESET, PULSE, SETTLE, SENSE, see ``docs/mtj-array.md``) and returns the bits the RTL shows on
``port.bits`` in the capture cycle. Semantics (per column ``c`` of the pulsed row ``r``)::

    idx   = clamp(amp[c] + offset[r][c], 0, CMAX)
    thr   = table[idx]
    u     = out_c >> (32 - prob_bits)       # out_c: output of column c's next xoshiro128++ step
    bit_c = u < thr                          # P(bit_c = 1) = thr / 2**prob_bits

and every column's generator steps exactly once per trial, whatever the pulse length.

Seeding (:meth:`MTJArrayEmulator.reseed`, also done by the constructor with ``cfg.seed``):
``s_i = S XOR K[c][i]`` with ``K = seed_constants(cols)``, then ``warmup_steps`` steps. The RTL
does the warm-up at one step per cycle with ``ready`` low: after reset ``ready`` is low for
exactly :attr:`MTJArrayEmulator.ready_after_reset_cycles` (= ``warmup_steps``) cycles; after a
``reseed`` strobe sampled at the edge ending cycle ``t`` it is low in cycles ``t+1 ..
t+warmup_steps``.
"""

from __future__ import annotations

import numpy as np

from model.blocks.config import EmulatorConfig
from model.blocks.xoshiro import Xoshiro128pp, seed_constants, seeded_state

__all__ = ["MTJArrayEmulator", "seed_constants"]


class MTJArrayEmulator:
    """Seeded pseudo-random stand-in for the MTJ array (twin of ``hw.emulator.MTJArrayEmulator``).

    Parameters
    ----------
    cfg:
        The emulator parameters; the generators are seeded from ``cfg.seed`` and warmed up.

    Attributes
    ----------
    cfg:
        The configuration.
    table:
        ``int64`` array of the ``2**code_width`` thresholds (read-only view).
    offsets:
        ``int64`` array ``(rows, cols)`` of the signed per-cell offsets, initialised from
        ``cfg.offsets``. Write it through :meth:`set_offset` (range-checked) or directly.
    gen:
        The column generators (:class:`~model.blocks.xoshiro.Xoshiro128pp`, ``n = cols``).
    """

    def __init__(self, cfg: EmulatorConfig):
        if not isinstance(cfg, EmulatorConfig):
            raise ValueError(f"MTJArrayEmulator: cfg = {cfg!r}: must be an EmulatorConfig")
        self.cfg = cfg
        a = cfg.array
        self.table = np.array(cfg.table, dtype=np.int64)
        self.table.flags.writeable = False
        self.offsets = np.array(cfg.offsets, dtype=np.int64).reshape(a.rows, a.cols)
        self._shift = np.uint32(32 - cfg.prob_bits)
        self.reseed(cfg.seed)

    # -- generators -------------------------------------------------------------------------
    @property
    def ready_after_reset_cycles(self) -> int:
        """Cycles ``ready`` stays low after reset (and after a reseed strobe): ``warmup_steps``."""
        return self.cfg.warmup_steps

    def reseed(self, seed: int) -> None:
        """Load every column's generator from ``seed`` (``s_i = seed ^ K[c][i]``) and warm up."""
        self.gen = Xoshiro128pp(seeded_state(seed, self.cfg.array.cols))
        if self.cfg.warmup_steps:
            self.gen.steps(self.cfg.warmup_steps)

    # -- offsets ----------------------------------------------------------------------------
    def _check_index(self, index: int) -> tuple[int, int]:
        n = self.cfg.array.cells
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
            raise ValueError(f"MTJArrayEmulator: cell index = {index!r}: allowed [0, {n - 1}]")
        return divmod(int(index), self.cfg.array.cols)

    def set_offset(self, index: int, value: int) -> None:
        """Set the offset of cell ``index = row * cols + col`` (signed, ``offset_width`` bits)."""
        r, c = self._check_index(index)
        lim = 1 << (self.cfg.offset_width - 1)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not -lim <= value < lim:
            raise ValueError(f"MTJArrayEmulator.set_offset: value = {value!r}: allowed "
                             f"[{-lim}, {lim - 1}]")
        self.offsets[r, c] = int(value)

    def get_offset(self, index: int) -> int:
        """Offset of cell ``index = row * cols + col``."""
        r, c = self._check_index(index)
        return int(self.offsets[r, c])

    # -- trials -----------------------------------------------------------------------------
    def _check_rows_amps(self, rows, amps) -> tuple[np.ndarray, np.ndarray]:
        a = self.cfg.array
        rows = np.asarray(rows)
        amps = np.asarray(amps)
        if rows.dtype.kind not in "iu" or np.any(rows < 0) or np.any(rows >= a.rows):
            raise ValueError(f"MTJArrayEmulator: row out of range, allowed [0, {a.rows - 1}]")
        if amps.shape != rows.shape + (a.cols,):
            raise ValueError(f"MTJArrayEmulator: amps has shape {amps.shape}, must be "
                             f"{rows.shape + (a.cols,)}")
        if amps.dtype.kind not in "iu" or np.any(amps < 0) or np.any(amps > a.code_max):
            raise ValueError(f"MTJArrayEmulator: amp code out of range, allowed "
                             f"[0, {a.code_max}]")
        return rows.astype(np.int64), amps.astype(np.int64)

    def index(self, rows, amps) -> np.ndarray:
        """Table index ``clamp(amp + offset[row], 0, CMAX)``; ``rows`` scalar or ``(T,)``,
        ``amps`` ``(cols,)`` or ``(T, cols)``. Does not step the generators."""
        rows, amps = self._check_rows_amps(rows, amps)
        return np.clip(amps + self.offsets[rows], 0, self.cfg.array.code_max)

    def probability(self, rows, amps) -> np.ndarray:
        """Exact switching probability ``table[idx] / 2**prob_bits`` of each addressed cell."""
        return self.table[self.index(rows, amps)] / float(1 << self.cfg.prob_bits)

    def trial(self, row: int, amps) -> np.ndarray:
        """One row operation: returns the ``cols`` sensed bits (``uint8`` 0/1) of ``row``.

        Steps every generator once. ``amps``: the ``cols`` amplitude codes driven on the pulse.
        """
        thr = self.table[self.index(row, amps)]
        u = self.gen.step() >> self._shift
        return (u < thr).astype(np.uint8)

    def trials(self, rows, amps) -> np.ndarray:
        """``T`` row operations in order (vectorised): ``rows (T,)``, ``amps (T, cols)`` →
        bits ``uint8 (T, cols)``. Same result and final state as ``T`` calls of :meth:`trial`."""
        rows = np.asarray(rows)
        if rows.ndim != 1:
            raise ValueError(f"MTJArrayEmulator.trials: rows has shape {rows.shape}, must be (T,)")
        thr = self.table[self.index(rows, amps)]
        u = self.gen.steps(rows.shape[0]) >> self._shift
        return (u < thr).astype(np.uint8)

    def sweeps(self, amps, count: int) -> np.ndarray:
        """``count`` full sweeps over rows 0..N-1 with fixed codes ``amps (rows, cols)``
        (the controller with calibration off) → bits ``uint8 (count, rows, cols)``."""
        a = self.cfg.array
        amps = np.asarray(amps)
        if amps.shape != (a.rows, a.cols):
            raise ValueError(f"MTJArrayEmulator.sweeps: amps has shape {amps.shape}, must be "
                             f"{(a.rows, a.cols)}")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"MTJArrayEmulator.sweeps: count = {count!r}: must be an integer >= 0")
        # codes are fixed: one threshold per cell, broadcast over the sweeps (same steps, in the
        # same order, as count * rows calls of trial)
        thr = self.table[self.index(np.arange(a.rows), amps)]
        u = self.gen.steps(int(count) * a.rows).reshape(int(count), a.rows, a.cols) >> self._shift
        return (u < thr[None]).astype(np.uint8)

    @staticmethod
    def pack_bits(bits) -> int:
        """Bits ``(cols,)`` as the integer on ``port.bits`` (bit ``c`` = column ``c``)."""
        return sum(int(b) << c for c, b in enumerate(np.asarray(bits).ravel()))
