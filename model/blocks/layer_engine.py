"""Bit-exact twin of ``hw.layer_engine.LayerEngine`` (``docs/crossbar.md`` §4).

A layer ``W`` (in_dim x out_dim) is cut into R x C blocks, each held in its own tile slot; every
block's column sums pass the tile's ADC *before* the digital accumulation across row blocks, as
in analog tiles. Then bias, requantisation to DAC codes and the activation::

    s_j = sum_rb adc(acc_{cb, rb}[j mod C])
    z_j = s_j + bias[bias_base + j]
    q_j = sat_in(round_shift(z_j, out_shift))
    y_j = q_j | max(q_j, 0) | LUT[q_j - in_min]

A program is a list of :class:`LayerDesc`; the output codes of layer l are the input codes of
layer l + 1. Vectorised over a batch of input vectors.
"""

from __future__ import annotations

import numpy as np

from model.blocks.crossbar import CrossbarTile, _as_int_array, adc
from model.blocks.crossbar_config import (ACT_LUT, ACT_RELU, EngineConfig, LayerDesc,
                                          round_shift, sat, signed_range)


class LayerEngine:
    """Twin of the layer engine: a tile with slots, a bias memory, a LUT and a program."""

    def __init__(self, cfg: EngineConfig):
        if not isinstance(cfg, EngineConfig):
            raise ValueError(f"LayerEngine.cfg = {cfg!r}: must be an EngineConfig")
        self.cfg = cfg
        self.tile = CrossbarTile(cfg.tile)
        self.bias = np.zeros(cfg.bias_entries, dtype=np.int64)
        lo, _ = cfg.tile.input_range
        # Identity table by default: LUT[i] = i + in_min.
        self.lut = np.arange(cfg.lut_entries, dtype=np.int64) + lo
        self.program: list[LayerDesc] = []

    # -- loading --------------------------------------------------------------------------------
    def load_layer(self, desc: LayerDesc, w, bias=None) -> None:
        """Write layer weights ``w`` (in_dim x out_dim codes) into its slots, zero-padded, and
        its biases (out_dim codes, ADC units) into the bias memory."""
        cfg, t = self.cfg, self.cfg.tile
        desc.check(cfg)
        lo, hi = t.weight_range
        w = _as_int_array("LayerEngine", "w", w, lo, hi, (desc.in_dim, desc.out_dim))
        rb_n, cb_n = desc.row_blocks(t), desc.col_blocks(t)
        padded = np.zeros((rb_n * t.rows, cb_n * t.cols), dtype=np.int64)
        padded[:desc.in_dim, :desc.out_dim] = w
        for cb in range(cb_n):
            for rb in range(rb_n):
                blk = padded[rb * t.rows:(rb + 1) * t.rows, cb * t.cols:(cb + 1) * t.cols]
                self.tile.program(desc.slot(t, cb, rb), blk)
        if bias is not None:
            blo, bhi = signed_range(cfg.bias_bits)
            b = _as_int_array("LayerEngine", "bias", bias, blo, bhi, (desc.out_dim,))
            self.bias[desc.bias_base:desc.bias_base + desc.out_dim] = b

    def load_lut(self, table) -> None:
        """The activation table: ``lut_entries`` output codes, entry i for q = i + in_min."""
        lo, hi = self.cfg.tile.input_range
        self.lut = _as_int_array("LayerEngine", "lut", table, lo, hi, (self.cfg.lut_entries,))

    def set_program(self, layers) -> None:
        layers = list(layers)
        if not 1 <= len(layers) <= self.cfg.max_layers:
            raise ValueError(f"LayerEngine.program: {len(layers)} layers, allowed "
                             f"[1, {self.cfg.max_layers}]")
        for i, d in enumerate(layers):
            d.check(self.cfg, f"LayerEngine.program[{i}]")
            if i and d.in_dim != layers[i - 1].out_dim:
                raise ValueError(f"LayerEngine.program[{i}].in_dim = {d.in_dim}: must equal "
                                 f"the previous layer's out_dim = {layers[i - 1].out_dim}")
        # Two layers sharing slots or biases would overwrite each other's weights when loaded:
        # refuse it here rather than let load_layer() silently clobber one of them.
        t = self.cfg.tile
        for i, a in enumerate(layers):
            for j in range(i):
                b = layers[j]
                if (a.slot_base < b.slot_base + b.blocks(t)
                        and b.slot_base < a.slot_base + a.blocks(t)):
                    raise ValueError(
                        f"LayerEngine.program[{i}].slot_base = {a.slot_base}: slots "
                        f"[{a.slot_base}, {a.slot_base + a.blocks(t)}) overlap layer {j}'s "
                        f"[{b.slot_base}, {b.slot_base + b.blocks(t)})")
                if (a.bias_base < b.bias_base + b.out_dim
                        and b.bias_base < a.bias_base + a.out_dim):
                    raise ValueError(
                        f"LayerEngine.program[{i}].bias_base = {a.bias_base}: biases "
                        f"[{a.bias_base}, {a.bias_base + a.out_dim}) overlap layer {j}'s "
                        f"[{b.bias_base}, {b.bias_base + b.out_dim})")
        self.program = layers

    # -- compute --------------------------------------------------------------------------------
    def sums(self, desc: LayerDesc, x) -> np.ndarray:
        """s_j: ADC codes summed over row blocks, for input codes ``x`` (..., in_dim)."""
        t = self.cfg.tile
        lo, hi = t.input_range
        x = _as_int_array("LayerEngine", "x", x, lo, hi, (desc.in_dim,))
        rb_n, cb_n = desc.row_blocks(t), desc.col_blocks(t)
        xp = np.zeros(x.shape[:-1] + (rb_n * t.rows,), dtype=np.int64)
        xp[..., :desc.in_dim] = x
        out = np.zeros(x.shape[:-1] + (cb_n * t.cols,), dtype=np.int64)
        for cb in range(cb_n):
            for rb in range(rb_n):
                codes = self.tile.mvm(xp[..., rb * t.rows:(rb + 1) * t.rows],
                                      desc.slot(t, cb, rb), desc.adc_shift)
                out[..., cb * t.cols:(cb + 1) * t.cols] += codes
        return out[..., :desc.out_dim]

    def layer(self, desc: LayerDesc, x) -> np.ndarray:
        """One layer: output codes (..., out_dim)."""
        t = self.cfg.tile
        z = self.sums(desc, x) + self.bias[desc.bias_base:desc.bias_base + desc.out_dim]
        lo, hi = t.input_range
        q = sat(round_shift(z, desc.out_shift), lo, hi)
        if desc.act == ACT_RELU:
            q = np.maximum(q, 0)
        elif desc.act == ACT_LUT:
            q = self.lut[q - lo]
        return q

    def run(self, x) -> np.ndarray:
        """The whole program on input codes ``x`` (..., in_dim of layer 0)."""
        if not self.program:
            raise ValueError("LayerEngine.program is empty: call set_program() first")
        for d in self.program:
            x = self.layer(d, x)
        return x


__all__ = ["LayerEngine", "adc"]
