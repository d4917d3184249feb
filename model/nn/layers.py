"""``CrossbarLinear``: an ``nn.Linear`` (plus its activation) that runs in one of three modes,
switched by one attribute (``layer.mode = "digital"``) or one call (:func:`set_mode`):

``float``
    The original layer: ``act(linear(x))``, unchanged (with optional hardware-aware weight noise
    while training, ``CrossbarSpec.noise_aware``).
``digital``
    Bit-exact with the layer-engine twin (``model/blocks/layer_engine.py``, ``docs/crossbar.md``
    §4): inputs to DAC codes, weights to codes, per-tile column sums through the tile ADC, digital
    sum over row blocks, bias in ADC units, ``round_shift`` by ``out_shift``, saturation to the DAC
    range, activation (ReLU, or a table for any other elementwise function). The output is the code
    times its power-of-two scale. Gradients flow through a float surrogate with straight-through
    rounding, so quantization-aware training works.
``analog``
    The same DAC codes drive the analog crossbar model (``model/devices/crossbar.py``), one
    ``AnalogCrossbar`` per R x C block, with its conductance mapping, programming error, read
    noise drawn afresh on every forward pass, drift, IR drop and (if ``adc_bits`` is set) the tile
    ADC. The block results are summed digitally and go through the same digital back end as the
    digital mode (bias, requantization to DAC codes, activation).

Scales (``docs/crossbar.md`` §5) come from :func:`calibrate` on a batch of inputs:

* ``fw``: the finest power-of-two weight scale at which max|W| fits ``±(2**(wb-1) - 1)``.
* ``fx`` of the first layer (and of any layer not fed directly by another ``CrossbarLinear``): the
  finest scale at which the ``calib_percentile`` of |x| fits the DAC range; a layer fed by another
  takes that layer's ``fx_out`` (the engine chains codes, not floats).
* ``adc_shift``: the smallest shift at which the ``calib_percentile`` of |column sum| over all the
  layer's tiles fits the ADC (no clipping on calibration data at 100).
* ``fx_out``: the finest scale at which the pre-activation (its positive part before a ReLU) fits
  the DAC range, but no finer than one ADC LSB (``out_shift >= 0``); ``out_shift = fx + fw -
  adc_shift - fx_out``. All layers with a table activation share one ``fx_out`` (the smallest of
  their float-mode estimates), because the engine has one LUT (``export_program`` also requires the
  same function), and no finer than one ADC LSB of any of them (the pass repeats with a coarser
  shared scale if one layer needs it). If ``out_shift`` would exceed the engine's
  ``max_out_shift``, ``adc_shift`` grows instead.
* bias: ``round(b * 2**(fx + fw - adc_shift))``, clipped to ``bias_bits``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.blocks.crossbar_config import ACT_LUT, ACT_NONE, ACT_RELU, clog2, signed_range
from model.nn.quant import (fake_quant, frac_bits_for, percentile_abs, requant_t,
                            round_half_up, round_shift_t, truncated_weight_noise, with_value)
from model.nn.spec import CrossbarSpec, LayerScales, check_mode

#: Elementwise activations that become the engine's table (ACT_LUT). ReLU becomes ACT_RELU.
LUT_ACTIVATIONS = (nn.SiLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.CELU,
                   nn.SELU, nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
                   nn.ReLU6)

#: Spec fields that change the scales: a new value needs a new calibration.
_CALIB_FIELDS = ("rows", "cols", "weight_bits", "input_bits", "input_signed", "adc_bits",
                 "bias_bits", "calib_percentile")


def act_code(act: nn.Module | None) -> int:
    if act is None or isinstance(act, nn.Identity):
        return ACT_NONE
    if type(act) is nn.ReLU:
        return ACT_RELU
    if isinstance(act, LUT_ACTIVATIONS):
        return ACT_LUT
    raise ValueError(f"CrossbarLinear.act = {type(act).__name__}: not supported, allowed None, "
                     f"ReLU or one of {[a.__name__ for a in LUT_ACTIVATIONS]}")


def _seed_seq(*words) -> int:
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])


class CrossbarLinear(nn.Module):
    """An ``nn.Linear`` and its activation on crossbar tiles (see the module docstring).

    Parameters
    ----------
    linear:
        The wrapped layer; its parameters are trained in every mode.
    spec:
        The hardware (:class:`model.nn.spec.CrossbarSpec`).
    mode:
        ``"float"``, ``"digital"`` or ``"analog"``; settable later (``layer.mode = ...``).
    act:
        Activation fused behind the layer: ``None``, ``nn.ReLU`` or an elementwise module of
        :data:`LUT_ACTIVATIONS` (a table in the hardware modes).
    index:
        Position of the layer in its model; seeds its analog devices and noise streams.
    """

    def __init__(self, linear: nn.Linear, spec: CrossbarSpec | None = None,
                 mode: str = "float", act: nn.Module | None = None, index: int = 0):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"CrossbarLinear.linear = {type(linear).__name__}: must be an "
                             f"nn.Linear")
        spec = CrossbarSpec() if spec is None else spec
        if not isinstance(spec, CrossbarSpec):
            raise ValueError(f"CrossbarLinear.spec = {spec!r}: must be a CrossbarSpec")
        self.act_kind = act_code(act)
        self.linear = linear
        self.act = act if self.act_kind != ACT_NONE else None
        self._spec = spec
        self._mode = check_mode("CrossbarLinear", mode)
        self.index = int(index)
        self.scales: LayerScales | None = None
        self.register_buffer("lut", None)
        self._analog = None              # (key, [[AnalogCrossbar per rb] per cb])
        self._read_rng = None
        self._train_gen = None
        self._calib_ctx = None
        self._coarsest_fx_out = None

    # -- configuration --------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self._mode = check_mode("CrossbarLinear", mode)

    @property
    def spec(self) -> CrossbarSpec:
        return self._spec

    @spec.setter
    def spec(self, spec: CrossbarSpec) -> None:
        if not isinstance(spec, CrossbarSpec):
            raise ValueError(f"CrossbarLinear.spec = {spec!r}: must be a CrossbarSpec")
        if any(getattr(spec, f) != getattr(self._spec, f) for f in _CALIB_FIELDS):
            self.scales = None
            self.lut = None
        if spec != self._spec:
            self._analog = None
            self._read_rng = None
            self._train_gen = None
        self._spec = spec

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def extra_repr(self) -> str:
        s = self.scales
        cal = (f"fx={s.fx}, fw={s.fw}, adc_shift={s.adc_shift}, out_shift={s.out_shift}"
               if s else "uncalibrated")
        return f"mode={self._mode!r}, {cal}"

    def get_extra_state(self):
        s = self.scales
        return {"mode": self._mode,
                "scales": None if s is None else (s.fx, s.fw, s.adc_shift, s.out_shift)}

    def set_extra_state(self, state):
        self._mode = check_mode("CrossbarLinear", state["mode"])
        self.scales = None if state["scales"] is None else LayerScales(*state["scales"])

    def row_blocks(self) -> int:
        return -(-self.in_features // self._spec.rows)

    def col_blocks(self) -> int:
        return -(-self.out_features // self._spec.cols)

    def max_out_shift(self) -> int:
        """``EngineConfig.max_out_shift`` for a max_dim covering this layer (a lower bound of the
        exported engine's, whose max_dim may be larger)."""
        sp = self._spec
        return max(sp.digital_adc_bits + clog2(self.row_blocks()), sp.bias_bits) + 2

    # -- codes ----------------------------------------------------------------------------------
    def _need_scales(self) -> LayerScales:
        if self.scales is None:
            raise ValueError(f"CrossbarLinear[{self.index}] mode {self._mode!r}: not calibrated; "
                             f"call model.nn.calibrate(model, x) first")
        return self.scales

    def input_codes(self, x: torch.Tensor) -> torch.Tensor:
        """DAC codes (float64, integer-valued) of inputs ``x``."""
        s = self._need_scales()
        lo, hi = self._spec.input_range
        return torch.clamp(round_half_up(x.detach().to(torch.float64) * 2.0 ** s.fx), lo, hi)

    def weight_codes(self) -> torch.Tensor:
        """Weight codes, shape (in_features, out_features) as the engine stores them, int64."""
        s = self._need_scales()
        m = self._spec.weight_max
        w = self.linear.weight.detach().to(torch.float64).t()
        return torch.clamp(round_half_up(w * 2.0 ** s.fw), -m, m).to(torch.int64)

    def bias_codes(self) -> torch.Tensor:
        """Bias codes in ADC units of this layer, int64 (zeros without a bias)."""
        s = self._need_scales()
        if self.linear.bias is None:
            return torch.zeros(self.out_features, dtype=torch.int64)
        lo, hi = signed_range(self._spec.bias_bits)
        b = self.linear.bias.detach().to(torch.float64)
        return torch.clamp(round_half_up(b * 2.0 ** s.bias_shift), lo, hi).to(torch.int64)

    def lut_codes(self) -> torch.Tensor | None:
        """The activation table (ACT_LUT only): entry i is the output code for q = i + in_min."""
        return self.lut

    def _make_lut(self, fx_out: int) -> torch.Tensor:
        lo, hi = self._spec.input_range
        q = torch.arange(lo, hi + 1, dtype=torch.float64)
        with torch.no_grad():
            v = self.act(q * 2.0 ** -fx_out)
        return torch.clamp(round_half_up(v * 2.0 ** fx_out), lo, hi).to(torch.int64)

    # -- the digital back end (shared by the digital and analog modes) --------------------------
    def _back_end(self, sums_adc: torch.Tensor) -> torch.Tensor:
        """ADC-unit sums (..., out) → output codes after bias, requantization and activation."""
        s = self.scales
        lo, hi = self._spec.input_range
        z = sums_adc + self.bias_codes().to(torch.float64)
        q = torch.clamp(requant_t(z, s.out_shift), lo, hi)
        if self.act_kind == ACT_RELU:
            q = q.clamp_min(0.0)
        elif self.act_kind == ACT_LUT:
            q = self.lut[(q - lo).to(torch.int64)].to(torch.float64)
        return q

    def digital_sums(self, xc: torch.Tensor) -> torch.Tensor:
        """s_j: tile ADC codes summed over row blocks, for DAC codes ``xc`` (N, in), float64."""
        s, sp = self.scales, self._spec
        wc = self.weight_codes().to(torch.float64)
        alo, ahi = signed_range(sp.digital_adc_bits)
        R = sp.rows
        out = torch.zeros(xc.shape[0], self.out_features, dtype=torch.float64)
        for rb in range(self.row_blocks()):
            acc = xc[:, rb * R:(rb + 1) * R] @ wc[rb * R:(rb + 1) * R]
            out += torch.clamp(round_shift_t(acc, s.adc_shift), alo, ahi)
        return out

    def output_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Output codes of the digital mode (float64, integer-valued), for float inputs ``x``."""
        xc = self.input_codes(x).reshape(-1, self.in_features)
        return self._back_end(self.digital_sums(xc)).reshape(*x.shape[:-1], self.out_features)

    # -- analog ---------------------------------------------------------------------------------
    def _analog_tiles(self):
        s, sp = self.scales, self._spec
        w = self.linear.weight
        key = (w._version, w.data_ptr(), s, sp)
        if self._analog is not None and self._analog[0] == key:
            return self._analog[1]
        from model.devices.crossbar import AnalogCrossbar
        cfg = sp.analog_config(adc_shift=s.adc_shift)
        R, C = sp.rows, sp.cols
        rb_n, cb_n = self.row_blocks(), self.col_blocks()
        wc = np.zeros((rb_n * R, cb_n * C), dtype=np.int64)
        wc[:self.in_features, :self.out_features] = self.weight_codes().numpy()
        tiles = []
        for cb in range(cb_n):
            row = []
            for rb in range(rb_n):
                t = AnalogCrossbar(cfg, R, C, seed=_seed_seq(sp.seed, self.index, cb, rb))
                t.program(wc[rb * R:(rb + 1) * R, cb * C:(cb + 1) * C])
                row.append(t)
            tiles.append(row)
        self._analog = (key, tiles)
        if self._read_rng is None:
            self._read_rng = np.random.default_rng([sp.seed, self.index, 0x5EAD])
        return tiles

    def reset_noise(self) -> None:
        """Restart the read-noise and training-noise streams from the spec's seed."""
        self._read_rng = None
        self._train_gen = None

    def analog_sums(self, xc: torch.Tensor) -> torch.Tensor:
        """Analog block results summed over row blocks, in ADC units (float64), for DAC codes
        ``xc`` (N, in); read noise is drawn from the layer's stream on every call."""
        s, sp = self.scales, self._spec
        tiles = self._analog_tiles()
        R, C = sp.rows, sp.cols
        rb_n, cb_n = self.row_blocks(), self.col_blocks()
        xp = np.zeros((xc.shape[0], rb_n * R), dtype=np.int64)
        xp[:, :self.in_features] = xc.numpy().astype(np.int64)
        out = np.zeros((xc.shape[0], cb_n * C), dtype=np.float64)
        # With an ADC, mvm returns ADC codes; without, column sums in weight·input code units.
        unit = 1.0 if sp.adc_bits is not None else 2.0 ** s.adc_shift
        for cb in range(cb_n):
            for rb in range(rb_n):
                out[:, cb * C:(cb + 1) * C] += np.asarray(
                    tiles[cb][rb].mvm(xp[:, rb * R:(rb + 1) * R], rng=self._read_rng),
                    dtype=np.float64)
        return torch.from_numpy(out[:, :self.out_features] / unit)

    def analog_counts(self) -> dict:
        """Costed-operation counts of this layer's analog tiles, summed."""
        tot: dict = {}
        if self._analog is not None:
            for row in self._analog[1]:
                for t in row:
                    for k, v in t.counts.items():
                        tot[k] = tot.get(k, 0) + v
        return tot

    # -- forward --------------------------------------------------------------------------------
    def _float(self, x: torch.Tensor) -> torch.Tensor:
        w = self.linear.weight
        sp = self._spec
        if self.training and sp.noise_aware:
            if self._train_gen is None:
                self._train_gen = torch.Generator().manual_seed(
                    _seed_seq(sp.seed, self.index, 0x7A1))
            n = truncated_weight_noise(w.shape, sp.train_noise_sigma, sp.train_noise_trunc,
                                       self._train_gen, dtype=w.dtype)
            w = w * (1.0 + n)
        y = F.linear(x, w, self.linear.bias)
        return self.act(y) if self.act is not None else y

    def _surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """Float model of the quantized layer whose gradient the hardware modes use (STE)."""
        s, sp = self.scales, self._spec
        lo, hi = sp.input_range
        xq = fake_quant(x, s.fx, lo, hi)
        wq = fake_quant(self.linear.weight, s.fw, -sp.weight_max, sp.weight_max)
        y = F.linear(xq, wq, self.linear.bias)
        return self.act(y) if self.act is not None else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._calib_ctx is not None:
            return self._calibration_forward(x)
        if self._mode == "float":
            return self._float(x)
        s = self._need_scales()
        xc = self.input_codes(x).reshape(-1, self.in_features)
        with torch.no_grad():
            sums = self.digital_sums(xc) if self._mode == "digital" else self.analog_sums(xc)
            q = self._back_end(sums)
        value = (q * 2.0 ** -s.fx_out).reshape(*x.shape[:-1], self.out_features)
        if torch.is_grad_enabled() and (x.requires_grad or self.linear.weight.requires_grad):
            return with_value(self._surrogate(x), value)
        return value.to(x.dtype)

    # -- calibration ----------------------------------------------------------------------------
    def _calibration_forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self._calib_ctx
        if ctx["phase"] == "float":
            z = F.linear(x, self.linear.weight, self.linear.bias)
            ctx["pre"][self] = percentile_abs(z, self._spec.calib_percentile)
            return self.act(z) if self.act is not None else z
        fx_in = ctx["prev_fx_out"] if (ctx["prev_out"] is not None and x is ctx["prev_out"]) \
            else None
        forced = ctx["lut_fx_out"] if self.act_kind == ACT_LUT else None
        self.calibrate_layer(x, fx_in=fx_in, fx_out=forced)
        if forced is not None and self._coarsest_fx_out < forced:
            # The shared table scale is finer than one ADC LSB of this layer: coarsen it for
            # every table layer (calibrate() repeats the pass).
            ctx["lut_retry"] = min(ctx.get("lut_retry", forced), self._coarsest_fx_out)
        with torch.no_grad():
            q = self.output_codes(x)
        y = (q * 2.0 ** -self.scales.fx_out).to(x.dtype)
        ctx["prev_out"], ctx["prev_fx_out"] = y, self.scales.fx_out
        return y

    def calibrate_layer(self, x: torch.Tensor, fx_in: int | None = None,
                        fx_out: int | None = None) -> LayerScales:
        """Pick this layer's scales from its calibration inputs ``x`` (module docstring); ``fx_in``
        / ``fx_out`` force the input / output scale (chained layers, the shared LUT scale)."""
        sp = self._spec
        pct = sp.calib_percentile
        lo, hi = sp.input_range
        x = x.detach().reshape(-1, self.in_features).to(torch.float64)
        w = self.linear.weight.detach().to(torch.float64)
        fw = frac_bits_for(float(w.abs().max()) if w.numel() else 0.0, sp.weight_max)
        if fx_in is None:
            fx_in = frac_bits_for(percentile_abs(x, pct, positive_only=not sp.input_signed), hi)
        self.scales = LayerScales(fx_in, fw, 0, 0)        # provisional, for the codes below
        xc = self.input_codes(x)
        wc = self.weight_codes().to(torch.float64)
        R = sp.rows
        accs = [xc[:, rb * R:(rb + 1) * R] @ wc[rb * R:(rb + 1) * R]
                for rb in range(self.row_blocks())]
        a_max = int(np.ceil(percentile_abs(torch.cat(accs, dim=1), pct)))
        _, ahi = signed_range(sp.digital_adc_bits)
        acc_bits = sp.acc_bits
        adc_shift = 0
        while adc_shift < acc_bits and (a_max + ((1 << adc_shift) >> 1)) >> adc_shift > ahi:
            adc_shift += 1
        # Pre-activation in float (lossless ADC): its range sets the output scale.
        #: Coarsest output scale with out_shift >= 0 at the ADC shift that avoids clipping.
        self._coarsest_fx_out = fx_in + fw - adc_shift
        z = sum(accs) * 2.0 ** -(fx_in + fw)
        if self.linear.bias is not None:
            z = z + self.linear.bias.detach().to(torch.float64)
        if fx_out is None:
            z_max = percentile_abs(z, pct, positive_only=self.act_kind == ACT_RELU)
            fx_out = frac_bits_for(z_max, hi) if z_max > 0 else fx_in + fw - adc_shift
            fx_out = min(fx_out, fx_in + fw - adc_shift)       # out_shift >= 0
        total = fx_in + fw - fx_out                             # adc_shift + out_shift
        adc_shift = max(0, min(adc_shift, total))       # a forced fx_out (see calibrate())
        out_shift = total - adc_shift
        cap = self.max_out_shift()
        if out_shift > cap:                      # ADC LSB far finer than needed: coarsen it
            adc_shift, out_shift = total - cap, cap
        self.scales = LayerScales(fx_in, fw, adc_shift, max(0, out_shift))
        self.lut = self._make_lut(self.scales.fx_out) if self.act_kind == ACT_LUT else None
        return self.scales


# ------------------------------------------------------------------------------------------------
def crossbar_layers(model: nn.Module) -> list[CrossbarLinear]:
    """The model's ``CrossbarLinear`` layers in registration order."""
    return [m for m in model.modules() if isinstance(m, CrossbarLinear)]


def set_mode(model: nn.Module, mode: str) -> nn.Module:
    """Switch every ``CrossbarLinear`` of ``model`` to ``mode``; returns ``model``."""
    check_mode("set_mode", mode)
    for m in crossbar_layers(model):
        m.mode = mode
    return model


def set_spec(model: nn.Module, spec: CrossbarSpec) -> nn.Module:
    """Give every layer ``spec``. A change of a field that sets the scales (bit widths, tile size,
    percentile) drops the calibration; a new seed or analog option only re-programs the devices."""
    for m in crossbar_layers(model):
        m.spec = spec
    return model


def _fuse_sequential(seq: nn.Sequential, spec, mode, counter) -> None:
    names = list(seq._modules)
    i = 0
    while i < len(names):
        child = seq._modules[names[i]]
        if isinstance(child, nn.Linear):
            nxt = seq._modules[names[i + 1]] if i + 1 < len(names) else None
            fuse = nxt is not None and (type(nxt) is nn.ReLU or isinstance(nxt, LUT_ACTIVATIONS))
            seq._modules[names[i]] = CrossbarLinear(child, spec, mode, nxt if fuse else None,
                                                    next(counter))
            if fuse:
                seq._modules[names[i + 1]] = nn.Identity()
                i += 1
        else:
            _convert_children(child, spec, mode, counter)
        i += 1


def _convert_children(module: nn.Module, spec, mode, counter) -> None:
    if isinstance(module, CrossbarLinear):
        module.spec, module.mode, module.index = spec, mode, next(counter)
        return
    if isinstance(module, nn.Sequential):
        _fuse_sequential(module, spec, mode, counter)
        return
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            module._modules[name] = CrossbarLinear(child, spec, mode, None, next(counter))
        else:
            _convert_children(child, spec, mode, counter)


def convert(model: nn.Module, mode: str = "digital", spec: CrossbarSpec | None = None, *,
            inplace: bool = False, calib: torch.Tensor | None = None) -> nn.Module:
    """Put every ``nn.Linear`` of ``model`` on crossbar tiles.

    Inside an ``nn.Sequential`` a Linear followed by ``nn.ReLU`` or an elementwise activation of
    :data:`LUT_ACTIVATIONS` is fused with it (the activation's slot becomes ``nn.Identity``), as
    the layer engine applies the activation itself; elsewhere a Linear is wrapped alone and other
    modules stay float. A bare ``nn.Linear`` returns a new ``CrossbarLinear``.

    Parameters
    ----------
    mode:
        Mode of every converted layer (``set_mode`` switches later).
    spec:
        The hardware; default :class:`CrossbarSpec()`.
    inplace:
        Modify ``model`` (``True``) or convert a deep copy (``False``, the default).
    calib:
        A batch of inputs: if given, :func:`calibrate` runs on it.
    """
    check_mode("convert", mode)
    spec = CrossbarSpec() if spec is None else spec
    if not isinstance(spec, CrossbarSpec):
        raise ValueError(f"convert.spec = {spec!r}: must be a CrossbarSpec")
    if not isinstance(model, nn.Module):
        raise ValueError(f"convert.model = {type(model).__name__}: must be an nn.Module")
    if not inplace:
        model = copy.deepcopy(model)
    counter = iter(range(1 << 30))
    if isinstance(model, nn.Linear):
        model = CrossbarLinear(model, spec, mode, None, next(counter))
    else:
        _convert_children(model, spec, mode, counter)
    if not crossbar_layers(model):
        raise ValueError(f"convert.model = {type(model).__name__}: has no nn.Linear to convert")
    if calib is not None:
        calibrate(model, calib)
    return model


def calibrate(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Choose every layer's scales (module docstring) from the input batch ``x``.

    Two passes: a float pass estimates the shared output scale of the table-activation layers;
    then the layers are calibrated one after another in execution order on the *digital* outputs
    of the layers before them. Modes and train/eval flags are restored afterwards.
    """
    layers = crossbar_layers(model)
    if not layers:
        raise ValueError("calibrate.model: has no CrossbarLinear (use convert() first)")
    if not isinstance(x, torch.Tensor) or x.numel() == 0:
        raise ValueError(f"calibrate.x = {type(x).__name__}: must be a non-empty tensor batch")
    was_training = model.training
    model.eval()
    ctx = {"phase": "float", "pre": {}, "prev_out": None, "prev_fx_out": None,
           "lut_fx_out": None}
    try:
        for m in layers:
            m.scales, m._calib_ctx, m._analog = None, ctx, None
        with torch.no_grad():
            model(x)
            luts = [m for m in layers if m.act_kind == ACT_LUT and m in ctx["pre"]]
            if luts:
                hi = layers[0].spec.input_range[1]
                ctx["lut_fx_out"] = min(frac_bits_for(ctx["pre"][m], hi) for m in luts)
            ctx["phase"] = "digital"
            for _ in range(2 * 64):
                ctx.update(prev_out=None, prev_fx_out=None)
                model(x)
                if "lut_retry" not in ctx:
                    break
                ctx["lut_fx_out"] = ctx.pop("lut_retry")
    finally:
        for m in layers:
            m._calib_ctx = None
        model.train(was_training)
    missing = [m.index for m in layers if m.scales is None]
    if missing:
        raise ValueError(f"calibrate: layers {missing} were not reached by model(x)")
    return model


__all__ = ["CrossbarLinear", "LUT_ACTIVATIONS", "calibrate", "convert", "crossbar_layers",
           "set_mode", "set_spec", "act_code"]
