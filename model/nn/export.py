"""A calibrated chain of ``CrossbarLinear`` layers as a layer-engine program
(``docs/crossbar.md`` §4): engine configuration, layer descriptors, weight codes, bias codes and
the activation table — what the twin (``model.blocks.layer_engine.LayerEngine``) and the RTL run.

Only chains export: a ``CrossbarLinear`` or an ``nn.Sequential`` (nested ones allowed) of
``CrossbarLinear`` layers with only ``nn.Identity`` / ``nn.Dropout`` between them, each layer fed
the previous one's output codes (``fx`` equal to the previous ``fx_out``). The engine has one LUT:
every table-activation layer must carry the same table (same function, same ``fx_out``, which
:func:`model.nn.layers.calibrate` arranges).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from model.blocks.crossbar import CrossbarTile
from model.blocks.crossbar_config import (ACT_LUT, CFG_BIAS, CFG_LAYER, CFG_LUT, EngineConfig,
                                          LayerDesc, pack_layer)
from model.blocks.layer_engine import LayerEngine
from model.nn.layers import CrossbarLinear


@dataclass
class EngineProgram:
    """Everything the layer engine needs to run a converted network.

    Attributes
    ----------
    cfg:
        Engine configuration (tile slots = all layers' blocks, max_dim, max_layers, bias memory).
    layers:
        One descriptor per layer (slot and bias bases laid out one after another).
    weights, biases:
        Per layer: weight codes (in_dim x out_dim) and bias codes (out_dim, ADC units), int64.
    lut:
        The activation table (``cfg.lut_entries`` DAC codes; identity if no layer uses it).
    fx_in, fx_out:
        Input scale of layer 0 and output scale of the last layer: ``x = code * 2**-fx``.
    """

    cfg: EngineConfig
    layers: list[LayerDesc]
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    lut: np.ndarray
    fx_in: int
    fx_out: int

    def as_tuple(self):
        """``(cfg, layers, weights, biases, lut)``."""
        return self.cfg, self.layers, self.weights, self.biases, self.lut

    def engine(self) -> LayerEngine:
        """A twin loaded with this program."""
        e = LayerEngine(self.cfg)
        for d, w, b in zip(self.layers, self.weights, self.biases):
            e.load_layer(d, w, b)
        e.load_lut(self.lut)
        e.set_program(self.layers)
        return e

    def quantize_input(self, x) -> np.ndarray:
        """Float inputs → layer-0 DAC codes (round half up, saturate), as the digital mode does."""
        lo, hi = self.cfg.tile.input_range
        x = np.asarray(x, dtype=np.float64)
        return np.clip(np.floor(x * 2.0 ** self.fx_in + 0.5), lo, hi).astype(np.int64)

    def dequantize_output(self, codes) -> np.ndarray:
        return np.asarray(codes, dtype=np.float64) * 2.0 ** -self.fx_out

    def run(self, x) -> np.ndarray:
        """Float inputs through the twin; float outputs."""
        return self.dequantize_output(self.engine().run(self.quantize_input(x)))

    def prog_words(self) -> list[tuple[int, int]]:
        """Programming-port words ``(addr, data)`` of every slot (``docs/crossbar.md`` §1)."""
        e = self.engine()
        t = CrossbarTile(self.cfg.tile)
        words = []
        for slot in range(self.cfg.tile.slots):
            words += t.pack_slot(slot, e.tile.weights[slot])
        return words

    def cfg_words(self) -> list[tuple[int, int, int]]:
        """Configuration-port writes ``(target, addr, data)``: biases (two's complement in
        ``bias_bits``), LUT entries (two's complement in ``input_bits`` when signed), layers
        (``pack_layer``)."""
        c = self.cfg
        bmask = (1 << c.bias_bits) - 1
        lmask = (1 << c.tile.input_bits) - 1
        out = []
        for d, b in zip(self.layers, self.biases):
            out += [(CFG_BIAS, d.bias_base + j, int(v) & bmask) for j, v in enumerate(b)]
        out += [(CFG_LUT, i, int(v) & lmask) for i, v in enumerate(self.lut)]
        out += [(CFG_LAYER, i, pack_layer(c, d)) for i, d in enumerate(self.layers)]
        return out


def _chain(model: nn.Module) -> list[CrossbarLinear]:
    if isinstance(model, CrossbarLinear):
        return [model]
    if isinstance(model, nn.Sequential):
        out = []
        for name, m in model.named_children():
            if isinstance(m, (nn.Identity, nn.Dropout)):
                continue
            if not isinstance(m, (CrossbarLinear, nn.Sequential)):
                raise ValueError(f"export_program: module {name!r} ({type(m).__name__}) is not "
                                 f"a CrossbarLinear; only chains of CrossbarLinear export")
            out += _chain(m)
        return out
    raise ValueError(f"export_program.model = {type(model).__name__}: must be a CrossbarLinear "
                     f"or an nn.Sequential of them")


def _check_target(cfg: EngineConfig, spec, need: dict) -> None:
    """A given engine build must compute what the spec computes and hold the program."""
    if not isinstance(cfg, EngineConfig):
        raise ValueError(f"export_program.cfg = {cfg!r}: must be an EngineConfig or None")
    t = cfg.tile
    for f, want in (("rows", spec.rows), ("cols", spec.cols), ("weight_bits", spec.weight_bits),
                    ("input_bits", spec.input_bits), ("input_signed", spec.input_signed),
                    ("adc_bits", spec.digital_adc_bits)):
        if getattr(t, f) != want:
            raise ValueError(f"export_program.cfg.tile.{f} = {getattr(t, f)!r}: the model was "
                             f"converted for {want!r}; allowed {want!r}")
    if cfg.bias_bits != spec.bias_bits:
        raise ValueError(f"export_program.cfg.bias_bits = {cfg.bias_bits}: the model clips biases "
                         f"to {spec.bias_bits} bits; allowed {spec.bias_bits}")
    for f, v in need.items():
        have = t.slots if f == "slots" else getattr(cfg, f)
        if have < v:
            raise ValueError(f"export_program.cfg.{f} = {have}: too small for this model, "
                             f"allowed >= {v}")


def export_program(model: nn.Module, cfg: EngineConfig | None = None) -> EngineProgram:
    """The engine program of a calibrated chain (module docstring); raises ``ValueError`` naming
    the layer that breaks a rule.

    ``cfg``: an existing engine build to fit the program into (its tile must have the spec's
    rows, cols and bit widths, ``macs_per_cycle`` and ``bit_serial`` are free; enough slots,
    ``max_dim``, ``max_layers`` and bias entries); ``None`` sizes the engine to the model.
    """
    layers = _chain(model)
    if not layers:
        raise ValueError("export_program.model: no CrossbarLinear layer")
    spec = layers[0].spec
    for i, m in enumerate(layers):
        if m.scales is None:
            raise ValueError(f"export_program: layer {i} is not calibrated; call calibrate()")
        for f in ("rows", "cols", "weight_bits", "input_bits", "input_signed", "adc_bits",
                  "macs_per_cycle", "bias_bits"):
            if getattr(m.spec, f) != getattr(spec, f):
                raise ValueError(f"export_program: layer {i} spec.{f} = {getattr(m.spec, f)!r} "
                                 f"differs from layer 0's {getattr(spec, f)!r}; one engine has "
                                 f"one tile")
        if i and m.scales.fx != layers[i - 1].scales.fx_out:
            raise ValueError(f"export_program: layer {i} input scale fx = {m.scales.fx} != layer "
                             f"{i - 1} fx_out = {layers[i - 1].scales.fx_out}: not a chain of "
                             f"codes (calibrate the model as a whole)")
    luts = [(i, m.lut_codes()) for i, m in enumerate(layers) if m.act_kind == ACT_LUT]
    lo, hi = spec.input_range
    lut = np.arange(lo, hi + 1, dtype=np.int64)
    if luts:
        lut = luts[0][1].numpy().astype(np.int64)
        for i, t in luts[1:]:
            if not np.array_equal(t.numpy(), lut):
                raise ValueError(f"export_program: layer {i}'s activation table differs from "
                                 f"layer {luts[0][0]}'s; the engine has one LUT (use one "
                                 f"activation function and calibrate the model as a whole)")
    need = {"slots": sum(m.row_blocks() * m.col_blocks() for m in layers),
            "max_dim": max(max(m.in_features, m.out_features) for m in layers),
            "max_layers": len(layers), "bias_entries": sum(m.out_features for m in layers)}
    if cfg is None:
        cfg = EngineConfig(tile=spec.tile_config(slots=need["slots"]), max_dim=need["max_dim"],
                           max_layers=need["max_layers"], bias_bits=spec.bias_bits,
                           bias_entries=need["bias_entries"])
    else:
        _check_target(cfg, spec, need)
    tile = cfg.tile
    descs, weights, biases = [], [], []
    slot, bias = 0, 0
    for i, m in enumerate(layers):
        s = m.scales
        if s.out_shift > cfg.max_out_shift:
            raise ValueError(f"export_program: layer {i} out_shift = {s.out_shift}: out of "
                             f"range, allowed [0, {cfg.max_out_shift}]")
        d = LayerDesc(in_dim=m.in_features, out_dim=m.out_features, slot_base=slot,
                      bias_base=bias, adc_shift=s.adc_shift, out_shift=s.out_shift,
                      act=m.act_kind).check(cfg, f"export_program.layer[{i}]")
        descs.append(d)
        weights.append(m.weight_codes().numpy().astype(np.int64))
        biases.append(m.bias_codes().numpy().astype(np.int64))
        slot += d.blocks(tile)
        bias += d.out_dim
    return EngineProgram(cfg=cfg, layers=descs, weights=weights, biases=biases, lut=lut,
                         fx_in=layers[0].scales.fx, fx_out=layers[-1].scales.fx_out)


__all__ = ["EngineProgram", "export_program"]
