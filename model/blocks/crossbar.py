"""Bit-exact twin of ``hw.crossbar.CrossbarTile`` (``docs/crossbar.md`` §1–2).

The twin knows nothing about cycles or lanes: P, the bit-serial mode and back-pressure change
*when* the RTL emits a column, never its value. One MVM of slot ``k``::

    acc[c] = sum_r W_k[r, c] * x[r]                      (exact integers)
    out[c] = sat_adc(round_shift(acc[c], adc_shift))

Everything is vectorised over a batch of input vectors (int64 matrix products), so the sampler can
push thousands of vectors through at once. Column sums are exact in int64 whenever
``acc_bits <= 62``, which every legal :class:`TileConfig` with R <= 1024 satisfies.
"""

from __future__ import annotations

import numpy as np

from model.blocks.crossbar_config import TileConfig, round_shift, sat


def _as_int_array(owner: str, name: str, a, lo: int, hi: int, shape=None) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{owner}.{name}: dtype {arr.dtype} must be an integer type")
    arr = arr.astype(np.int64)
    if shape is not None and arr.shape[-len(shape):] != tuple(shape):
        raise ValueError(f"{owner}.{name}: shape {arr.shape} does not fit the tile, "
                         f"allowed (..., {', '.join(map(str, shape))})")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr.min() if arr.min() < lo else arr.max()
        raise ValueError(f"{owner}.{name}: value {int(bad)} out of range, allowed [{lo}, {hi}]")
    return arr


def adc(cfg: TileConfig, acc, adc_shift: int):
    """The tile's ADC step on exact column sums (int or int64 array)."""
    if not 0 <= adc_shift <= cfg.max_adc_shift:
        raise ValueError(f"adc_shift = {adc_shift}: out of range, allowed "
                         f"[0, {cfg.max_adc_shift}]")
    lo, hi = cfg.adc_range
    return sat(round_shift(acc, adc_shift), lo, hi)


def bit_planes(cfg: TileConfig, x) -> tuple[np.ndarray, np.ndarray]:
    """Split input codes into bit-planes: ``(planes[k, ...] in {0, 1}, weight[k])`` with
    ``x == sum_k weight[k] * planes[k]`` (the top plane weighs ``-2**(ib-1)`` when signed)."""
    x = np.asarray(x, dtype=np.int64)
    ib = cfg.input_bits
    u = x & ((1 << ib) - 1)
    planes = np.stack([(u >> k) & 1 for k in range(ib)])
    weight = np.array([1 << k for k in range(ib)], dtype=np.int64)
    if cfg.input_signed:
        weight[-1] = -weight[-1]
    return planes, weight


class CrossbarTile:
    """Transaction-level twin: weights per slot, batched MVMs.

    Parameters
    ----------
    cfg:
        The tile's :class:`TileConfig`.
    """

    def __init__(self, cfg: TileConfig):
        if not isinstance(cfg, TileConfig):
            raise ValueError(f"CrossbarTile.cfg = {cfg!r}: must be a TileConfig")
        self.cfg = cfg
        self.weights = np.zeros((cfg.slots, cfg.rows, cfg.cols), dtype=np.int64)
        #: Costed-operation counts (energy model): MVMs, MACs, ADC conversions, DAC codes.
        self.counts = {"mvm": 0, "mac": 0, "adc": 0, "dac": 0, "weight_write": 0}

    # -- programming ----------------------------------------------------------------------------
    def program(self, slot: int, w) -> None:
        """Write slot ``slot`` with the R x C weight codes ``w``."""
        c = self.cfg
        if not 0 <= slot < c.slots:
            raise ValueError(f"CrossbarTile.slot = {slot}: out of range, allowed [0, {c.slots - 1}]")
        lo, hi = c.weight_range
        self.weights[slot] = _as_int_array("CrossbarTile", "w", w, lo, hi, (c.rows, c.cols))
        self.counts["weight_write"] += c.words_per_slot

    def write_word(self, addr: int, data: int) -> None:
        """One programming-port word, exactly as the RTL decodes it (docs/crossbar.md §1)."""
        c = self.cfg
        if not 0 <= addr < c.weight_words:
            raise ValueError(f"CrossbarTile.addr = {addr}: out of range, allowed "
                             f"[0, {c.weight_words - 1}]")
        if isinstance(data, bool) or not 0 <= int(data) < 1 << (c.macs_per_cycle * c.weight_bits):
            raise ValueError(f"CrossbarTile.data = {data!r}: out of range, allowed "
                             f"[0, 2**{c.macs_per_cycle * c.weight_bits} - 1]")
        row = addr % c.rows
        group = (addr // c.rows) % c.groups
        slot = addr // (c.rows * c.groups)
        wb = c.weight_bits
        for p in range(c.macs_per_cycle):
            v = (data >> (p * wb)) & ((1 << wb) - 1)
            if v >= 1 << (wb - 1):
                v -= 1 << wb
            self.weights[slot, row, group * c.macs_per_cycle + p] = v
        self.counts["weight_write"] += 1

    def pack_slot(self, slot: int, w) -> list[tuple[int, int]]:
        """Programming-port words ``(addr, data)`` that load ``w`` into ``slot`` (lane p of a
        word is column ``group*P + p``, bits ``[p*wb, (p+1)*wb)``)."""
        c = self.cfg
        lo, hi = c.weight_range
        w = _as_int_array("CrossbarTile", "w", w, lo, hi, (c.rows, c.cols))
        mask = (1 << c.weight_bits) - 1
        words = []
        for g in range(c.groups):
            for r in range(c.rows):
                data = 0
                for p in range(c.macs_per_cycle):
                    data |= (int(w[r, g * c.macs_per_cycle + p]) & mask) << (p * c.weight_bits)
                words.append((c.weight_addr(slot, r, g), data))
        return words

    # -- compute --------------------------------------------------------------------------------
    def acc(self, x, slot: int = 0) -> np.ndarray:
        """Exact column sums for input codes ``x`` of shape (..., R) → (..., C), int64."""
        c = self.cfg
        lo, hi = c.input_range
        x = _as_int_array("CrossbarTile", "x", x, lo, hi, (c.rows,))
        if not 0 <= slot < c.slots:
            raise ValueError(f"CrossbarTile.slot = {slot}: out of range, allowed [0, {c.slots - 1}]")
        return x @ self.weights[slot]

    def mvm(self, x, slot: int = 0, adc_shift: int = 0) -> np.ndarray:
        """ADC codes for input codes ``x`` of shape (..., R) → (..., C), int64."""
        a = self.acc(x, slot)
        n = int(np.prod(a.shape[:-1], dtype=np.int64))
        c = self.cfg
        self.counts["mvm"] += n
        self.counts["mac"] += n * c.rows * c.cols
        self.counts["adc"] += n * c.cols
        self.counts["dac"] += n * c.rows
        return adc(c, a, adc_shift)

    def acc_bit_serial(self, x, slot: int = 0) -> np.ndarray:
        """Column sums computed plane by plane with shift-add, as the bit-serial RTL does; equal
        to :meth:`acc` for every input (a test checks it)."""
        c = self.cfg
        lo, hi = c.input_range
        x = _as_int_array("CrossbarTile", "x", x, lo, hi, (c.rows,))
        if not 0 <= slot < c.slots:
            raise ValueError(f"CrossbarTile.slot = {slot}: out of range, allowed [0, {c.slots - 1}]")
        planes, weight = bit_planes(c, x)
        total = np.zeros(x.shape[:-1] + (c.cols,), dtype=np.int64)
        for k in range(c.input_bits):
            total += weight[k] * (planes[k] @ self.weights[slot])
        return total
