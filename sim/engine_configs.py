"""Fixed build configurations of the layer engine and a seeded random-program generator.

Verilator builds are slow, so the compiled engines are a fixed list (``ENGINE_BUILDS``); the
tests randomise run-time stimulus only: weights, biases, LUT, layer descriptors (dims within
``max_dim``, shifts, activations), input codes and back-pressure.

:class:`EngineProgram` is one complete program: descriptors, weight blocks, biases and an
activation table, with the port words that load it into the RTL (``prog_words``, ``cfg_words``)
and the twin that it loads into (``twin``). :func:`random_program` draws one whose shifts are
fitted to the data (measured on the twin with random inputs) and then jittered, so that the ADC
and the output saturate now and then but not always.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.blocks.crossbar_config import (CFG_BIAS, CFG_LAYER, CFG_LUT, EngineConfig,
                                          LayerDesc, TileConfig, pack_layer, signed_range)
from model.blocks.layer_engine import LayerEngine as Twin

# Parallel tile, 8 x 8, 4 MACs per cycle, 16 slots; layers up to 24 wide, 3 deep.
ENGINE_PAR = EngineConfig(
    tile=TileConfig(rows=8, cols=8, weight_bits=6, input_bits=6, input_signed=True, adc_bits=8,
                    macs_per_cycle=4, bit_serial=False, slots=16),
    max_dim=24, max_layers=3, bias_bits=12, bias_entries=64)
# Bit-serial tile with unsigned inputs, odd sizes (6 x 4, P = 2), 12 slots.
ENGINE_SER = EngineConfig(
    tile=TileConfig(rows=6, cols=4, weight_bits=5, input_bits=5, input_signed=False,
                    adc_bits=7, macs_per_cycle=2, bit_serial=True, slots=12),
    max_dim=14, max_layers=3, bias_bits=10, bias_entries=40)

ENGINE_BUILDS = {"engine_par": ENGINE_PAR, "engine_ser": ENGINE_SER}


def engine_params(cfg: EngineConfig) -> dict:
    """EngineConfig -> a JSON-able dict (the cocotb bench rebuilds it with
    :func:`engine_from_params`)."""
    from dataclasses import asdict
    return asdict(cfg)


def engine_from_params(d: dict) -> EngineConfig:
    d = dict(d)
    return EngineConfig(tile=TileConfig(**d.pop("tile")), **d)


def to_unsigned(v: int, bits: int) -> int:
    return int(v) & ((1 << bits) - 1)


def silu_lut(cfg: EngineConfig, frac_bits: int) -> np.ndarray:
    """SiLU as a LUT: entry i is the code of silu(x) for q = i + in_min, with both the layer's
    output code and the table's output in the scale 2**-frac_bits, rounded, saturated."""
    lo, hi = cfg.tile.input_range
    q = np.arange(lo, hi + 1, dtype=np.float64)
    x = q / (1 << frac_bits)
    y = x / (1.0 + np.exp(-x))
    return np.clip(np.floor(y * (1 << frac_bits) + 0.5), lo, hi).astype(np.int64)


@dataclass
class EngineProgram:
    """A complete engine program: ``layers`` (LayerDesc), ``weights[l]`` (in_dim x out_dim
    codes), ``biases[l]`` (out_dim codes), ``lut`` (lut_entries codes, or None: identity)."""

    cfg: EngineConfig
    layers: list
    weights: list
    biases: list
    lut: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    #: Seed of random weights in the padding of partial blocks (rows past in_dim, columns
    #: past out_dim); None: zeros. The twin ignores padding rows (zero inputs) and columns
    #: (discarded outputs), so the RTL must as well.
    pad_seed: int | None = None

    @property
    def in_dim(self) -> int:
        return self.layers[0].in_dim

    @property
    def out_dim(self) -> int:
        return self.layers[-1].out_dim

    def twin(self) -> Twin:
        tw = Twin(self.cfg)
        for d, w, b in zip(self.layers, self.weights, self.biases):
            tw.load_layer(d, w, b)
        if self.pad_seed is not None:
            # The same words as the RTL gets: padding rows and columns hold random weights.
            for a, v in self.prog_words():
                tw.tile.write_word(a, v)
        if self.lut is not None:
            tw.load_lut(self.lut)
        tw.set_program(self.layers)
        return tw

    def mvms(self) -> int:
        """Tile MVMs (layer-MVMs: one R x C block each) per run."""
        return sum(d.blocks(self.cfg.tile) for d in self.layers)

    def prog_words(self) -> list[tuple[int, int]]:
        """(addr, data) programming words of every block of every layer."""
        tw = Twin(self.cfg)
        t = self.cfg.tile
        words = []
        for d, w in zip(self.layers, self.weights):
            rb_n, cb_n = d.row_blocks(t), d.col_blocks(t)
            if self.pad_seed is None:
                padded = np.zeros((rb_n * t.rows, cb_n * t.cols), dtype=np.int64)
            else:
                prng = np.random.default_rng([self.pad_seed, d.slot_base])
                padded = prng.integers(*t.weight_range, endpoint=True,
                                       size=(rb_n * t.rows, cb_n * t.cols))
            padded[:d.in_dim, :d.out_dim] = w
            for cb in range(cb_n):
                for rb in range(rb_n):
                    blk = padded[rb * t.rows:(rb + 1) * t.rows, cb * t.cols:(cb + 1) * t.cols]
                    words += tw.tile.pack_slot(d.slot(t, cb, rb), blk)
        return words

    def cfg_words(self) -> list[tuple[int, int, int]]:
        """(target, addr, data) configuration writes: biases, LUT (if any), descriptors."""
        cfg = self.cfg
        out = []
        for d, b in zip(self.layers, self.biases):
            out += [(CFG_BIAS, d.bias_base + j, to_unsigned(v, cfg.bias_bits))
                    for j, v in enumerate(b)]
        if self.lut is not None:
            out += [(CFG_LUT, i, to_unsigned(v, cfg.tile.input_bits))
                    for i, v in enumerate(self.lut)]
        out += [(CFG_LAYER, i, pack_layer(cfg, d)) for i, d in enumerate(self.layers)]
        return out

    def to_dict(self) -> dict:
        """JSON-able form (the cocotb bench rebuilds it with :meth:`from_dict`)."""
        from dataclasses import asdict
        return {"cfg": engine_params(self.cfg), "layers": [asdict(d) for d in self.layers],
                "weights": [np.asarray(w).tolist() for w in self.weights],
                "biases": [np.asarray(b).tolist() for b in self.biases],
                "lut": None if self.lut is None else np.asarray(self.lut).tolist(),
                "info": self.info, "pad_seed": self.pad_seed}

    @classmethod
    def from_dict(cls, d: dict) -> "EngineProgram":
        return cls(engine_from_params(d["cfg"]), [LayerDesc(**x) for x in d["layers"]],
                   [np.asarray(w, dtype=np.int64) for w in d["weights"]],
                   [np.asarray(b, dtype=np.int64) for b in d["biases"]],
                   None if d["lut"] is None else np.asarray(d["lut"], dtype=np.int64),
                   dict(d.get("info", {})), d.get("pad_seed"))

    def random_inputs(self, rng, n: int) -> np.ndarray:
        lo, hi = self.cfg.tile.input_range
        return rng.integers(lo, hi + 1, size=(n, self.in_dim), dtype=np.int64)


def _log2_ceil_ratio(spread: float, full_scale: float) -> int:
    """Smallest s >= 0 with spread / 2**s <= full_scale."""
    if spread <= full_scale:
        return 0
    return int(np.ceil(np.log2(spread / full_scale)))


def random_dims(cfg: EngineConfig, rng, n_layers: int, max_dim: int | None = None) -> list[int]:
    """n_layers + 1 widths within max_dim whose blocks fit the tile's slots."""
    t = cfg.tile
    hi = min(cfg.max_dim, max_dim or cfg.max_dim)
    for _ in range(1000):
        dims = [int(v) for v in rng.integers(1, hi + 1, size=n_layers + 1)]
        blocks = sum(-(-dims[i] // t.rows) * -(-dims[i + 1] // t.cols) for i in range(n_layers))
        if blocks <= t.slots:
            return dims
        hi = max(1, hi - 1)
    raise ValueError(f"random_dims: no dims fit {t.slots} slots")


def random_program(cfg: EngineConfig, rng, *, n_layers: int | None = None, dims=None,
                   acts=None, lut: str | None = "random", extremes: float = 0.15,
                   jitter: int = 1, fit_samples: int = 256,
                   pad_random: bool = True) -> EngineProgram:
    """A random legal program for ``cfg``.

    ``dims``: the widths (n_layers + 1); random within ``max_dim`` and the slots otherwise.
    ``acts``: activations per layer; random otherwise. ``lut``: "random", "silu", or None.
    Shifts are fitted on the twin (the ADC's full scale ~ 3 standard deviations of a column
    sum, the output code's range ~ 3 standard deviations of z) and then moved by up to
    ``jitter`` either way; with probability ``extremes`` a shift is drawn anywhere in its range
    and a bias is a rail value instead. ``pad_random``: the padding of partial blocks holds
    random weights (which must not matter) instead of zeros.
    """
    t = cfg.tile
    if dims is None:
        if n_layers is None:
            n_layers = int(rng.integers(1, cfg.max_layers + 1))
        dims = random_dims(cfg, rng, n_layers)
    dims = [int(d) for d in dims]
    n_layers = len(dims) - 1
    if acts is None:
        acts = [int(a) for a in rng.integers(0, 3, size=n_layers)]
    wlo, whi = t.weight_range
    blo, bhi = signed_range(cfg.bias_bits)
    lo, hi = t.input_range

    # Slot and bias allocation: in order, with random spare room between layers.
    blocks = [-(-dims[i] // t.rows) * -(-dims[i + 1] // t.cols) for i in range(n_layers)]
    spare_slots = t.slots - sum(blocks)
    spare_bias = cfg.bias_entries - sum(dims[1:])
    if spare_bias < 0:
        raise ValueError(f"random_program: dims {dims} need {sum(dims[1:])} biases, "
                         f"bias_entries = {cfg.bias_entries}")
    slot_gaps = _split(rng, spare_slots, n_layers + 1)
    bias_gaps = _split(rng, spare_bias, n_layers + 1)
    order = list(rng.permutation(n_layers))           # layers placed in random order
    slot_base, bias_base = [0] * n_layers, [0] * n_layers
    s = b = 0
    for k, li in enumerate(order):
        s += slot_gaps[k]
        b += bias_gaps[k]
        slot_base[li], bias_base[li] = s, b
        s += blocks[li]
        b += dims[li + 1]

    table = None
    if lut == "random":
        table = rng.integers(lo, hi + 1, size=cfg.lut_entries, dtype=np.int64)
    elif lut == "silu":
        table = silu_lut(cfg, max(1, t.input_bits - 3))

    # Weights: dense uniform, or sparse, or small: different ranges per layer.
    weights, biases, layers = [], [], []
    tw = Twin(cfg)
    if table is not None:
        tw.load_lut(table)
    x = rng.integers(lo, hi + 1, size=(fit_samples, dims[0]), dtype=np.int64)
    for i in range(n_layers):
        shape = (dims[i], dims[i + 1])
        kind = rng.integers(0, 3)
        if kind == 0:
            w = rng.integers(wlo, whi + 1, size=shape)
        elif kind == 1:
            w = rng.integers(wlo, whi + 1, size=shape) * (rng.random(shape) < 0.3)
        else:
            span = max(1, whi // 4)
            w = rng.integers(-span, span + 1, size=shape)
        w = w.astype(np.int64)
        # Fit adc_shift on the exact column sums of this layer's row blocks.
        rb_n = -(-dims[i] // t.rows)
        xp = np.zeros((fit_samples, rb_n * t.rows), dtype=np.int64)
        xp[:, :dims[i]] = x
        wp = np.zeros((rb_n * t.rows, dims[i + 1]), dtype=np.int64)
        wp[:dims[i]] = w
        acc = np.concatenate([xp[:, r * t.rows:(r + 1) * t.rows] @ wp[r * t.rows:(r + 1) * t.rows]
                              for r in range(rb_n)], axis=1)
        adc_fs = float(1 << (t.adc_bits - 1))
        adc_shift = _jitter(rng, _log2_ceil_ratio(3 * acc.std() + 1e-9, adc_fs), jitter,
                            t.max_adc_shift, extremes)
        desc = LayerDesc(dims[i], dims[i + 1], slot_base[i], bias_base[i], adc_shift, 0,
                         acts[i])
        s_sum = _sums(tw, desc, w, x)
        bias = rng.integers(-max(1, int(s_sum.std())), max(1, int(s_sum.std())) + 1,
                            size=dims[i + 1]).astype(np.int64)
        bias = np.clip(bias, blo, bhi)
        z = s_sum + bias                     # fitted before any bias goes to a rail
        out_fs = float(max(1, hi - lo) / 2)
        out_shift = _jitter(rng, _log2_ceil_ratio(3 * z.std() + 1e-9, out_fs), jitter,
                            cfg.max_out_shift, extremes)
        if not t.input_signed and rng.random() < 0.7:
            # Unsigned codes: centre most outputs in [0, hi] instead of half of them at 0.
            bias = np.clip(bias + (((hi + 1) // 2) << out_shift), blo, bhi)
        rail = rng.random(dims[i + 1]) < extremes
        bias[rail] = rng.choice([blo, bhi], size=int(rail.sum()))
        desc = LayerDesc(dims[i], dims[i + 1], slot_base[i], bias_base[i], adc_shift, out_shift,
                         acts[i])
        tw.load_layer(desc, w, bias)
        x = tw.layer(desc, x)
        weights.append(w)
        biases.append(bias)
        layers.append(desc)
    prog = EngineProgram(cfg, layers, weights, biases, table,
                         info={"dims": dims, "acts": acts, "lut": lut},
                         pad_seed=int(rng.integers(1 << 31)) if pad_random else None)
    prog.twin()                                       # validates (raises on an illegal program)
    return prog


def _sums(tw: Twin, desc: LayerDesc, w, x) -> np.ndarray:
    tw.load_layer(desc, w)
    return tw.sums(desc, x)


def _split(rng, total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` non-negative integers at random (half the time all 0)."""
    if total <= 0 or rng.random() < 0.5:
        return [0] * parts
    cuts = np.sort(rng.integers(0, total + 1, size=parts - 1))
    edges = np.concatenate([[0], cuts, [total]])
    return [int(v) for v in np.diff(edges)]


def _jitter(rng, s: int, jitter: int, hi: int, extremes: float) -> int:
    if rng.random() < extremes:
        return int(rng.integers(0, hi + 1))
    return int(np.clip(s + rng.integers(-jitter, jitter + 1), 0, hi))


__all__ = ["ENGINE_BUILDS", "ENGINE_PAR", "ENGINE_SER", "EngineProgram", "engine_from_params",
           "engine_params", "random_dims", "random_program", "silu_lut", "to_unsigned"]
