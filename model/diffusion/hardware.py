"""The hardware-mode DDPM/DDIM sampler: integer for integer what the full-system RTL computes
(contract: ``docs/hardware-mode.md``; read it first, the names below are its names).

Everything the RTL needs comes out of :meth:`HardwareProgram.from_checkpoint` — the layer-engine
program of the ε-network (``model.nn.export_program`` after a calibration on a batch drawn from
the forward process), the time-embedding DAC-code table, the formats — and
:meth:`HardwareProgram.tables` (the integer step tables ``C1``, ``C2``, ``SG`` of a sampler and a
step count). Nothing is typed by hand; ``python -m model.diffusion.hardware`` writes it all as
one JSON file.

:func:`hw_sample` runs the contract vectorised over images: the ε-network through
:class:`FastEngine` (a compiled evaluator of the engine program, equal to the layer-engine twin
``model.blocks.layer_engine.LayerEngine`` code for code — ``tests/test_diffusion_hardware.py``
checks it on real trajectories), the sequencer update in numpy int64. :func:`hw_sample_reference`
is the slow, literal version (one image at a time, the LayerEngine twin, Python integers per
pixel) the fast one is tested against.

The noise ``z`` is the Gaussian generator's raw integers (``model.blocks.fixedpoint``, default
Q4.11), taken from a source with ``codes(n)`` (``model.diffusion.noise.make_noise("trng", seed)``
is the TRNG twin's exact stream) in the contract's order: image by image, ``x_T`` first, then one
``dim``-vector per step whose ``SG`` entry is non-zero.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

_ROOT = Path(__file__).resolve().parents[2]
if (_ROOT / "pyproject.toml").is_file():
    # As model/blocks/fastpath.py: numba's compile cache under build/, set before numba loads.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(_ROOT / "build" / "numba"))

import numba  # noqa: E402

from model.blocks.config import GaussConfig  # noqa: E402
from model.blocks.crossbar_config import ACT_LUT, ACT_NONE, ACT_RELU  # noqa: E402
from model.blocks.fixedpoint import fixed_point  # noqa: E402
# The integer rules (docs/hardware-mode.md §2, §4, §5) live with the sequencer twin:
from model.blocks.sequencer import (C1_MAX_SHIFT, C2_FRAC, COEF_BITS, COEF_MAX,  # noqa: E402
                                    PIXEL_BITS, PIXEL_MAX, SIGMA_FRAC, X_BITS, X_FRAC, X_MAX,
                                    X_MIN, acc_frac, hw_step, input_x_codes, pixels_from_x,
                                    step_pixel, x_init)
from model.diffusion.schedules import DDPMSchedule  # noqa: E402
from model.nn import (CrossbarSpec, EngineProgram, convert, crossbar_layers,  # noqa: E402
                      export_program)

__all__ = ["C1_MAX_SHIFT", "C2_FRAC", "COEF_BITS", "DEFAULT_CALIB_N", "FastEngine", "HWSamples",
           "HW_SPEC", "HardwareProgram", "PIXEL_BITS", "SAMPLERS", "SIGMA_FRAC", "StepTables",
           "X_BITS", "X_FRAC", "acc_frac", "c1_shift_for", "default_checkpoint",
           "float_coefficients", "hw_sample", "hw_sample_reference", "hw_step", "input_x_codes",
           "measure_speed", "noise_codes_source", "pixels_from_x", "quantize_coef", "step_pixel",
           "step_tables", "x_init"]

# ------------------------------------------------------------------------------------------------
# The contract's fixed formats (docs/hardware-mode.md §2): model/blocks/sequencer.py
#: Samplers of the sequencer.
SAMPLERS = ("ddpm", "ddim")
#: The crossbar the contract is written for: 16 x 16 tiles, 8-bit weights, 10-bit DACs and ADCs,
#: scales from the 99.9th percentile of the calibration batch. ``python -m sim.train --qat`` trains
#: for the stricter 8-bit DAC/ADC crossbar; run with 10 bits the committed QAT net's FID is at the
#: float net's level, with 8 bits about 1.4x it (``sim/train.py`` CONFIGS notes; make evaluate).
HW_SPEC = CrossbarSpec(input_bits=10, adc_bits=10, calib_percentile=99.9)
#: Calibration batch size (the QAT trainer's default ``qat_calib``).
DEFAULT_CALIB_N = 4096


def _check_int(owner, name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise ValueError(f"{owner}.{name} = {v!r}: out of range, allowed integer [{lo}, {hi}]")
    return int(v)


# ------------------------------------------------------------------------------------------------
# Schedule tables (docs/hardware-mode.md §3)
def _timesteps(sched: DDPMSchedule, steps: int) -> list[int]:
    return list(range(sched.steps - 1, -1, -1)) if steps == sched.steps \
        else sched.ddim_timesteps(steps)


def _check_sampler_steps(owner: str, sched: DDPMSchedule, sampler, steps) -> int:
    if sampler not in SAMPLERS:
        raise ValueError(f"{owner}.sampler = {sampler!r}: unknown, allowed {SAMPLERS}")
    if steps is None:
        return sched.steps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) \
            or not 1 <= int(steps) <= sched.steps:
        raise ValueError(f"{owner}.steps = {steps!r}: out of range, allowed integer "
                         f"[1, {sched.steps}] (the schedule's T; steps <= 0 is meaningless, "
                         f"more than T steps are not in the table)")
    return int(steps)


def float_coefficients(sched: DDPMSchedule, sampler: str = "ddpm", steps: int | None = None):
    """``(ts, c1, c2, sigma)`` in float64 for the reverse steps of ``sampler`` with ``steps``
    network evaluations (module docstring of ``docs/hardware-mode.md`` §3).

    ``ts`` (descending) are the network's time indices: all of 0 … T−1 when ``steps`` = T,
    else ``sched.ddim_timesteps(steps)``. Step i goes from t = ts[i] to s = ts[i+1] (s = −1,
    ᾱ_{−1} = 1, after the last) and computes ``x_s = c1·(x_t − c2·ε̂) + sigma·z``:

    * ddpm (ancestral; with steps = T exactly the schedule's c1, c2, sigma):
      ``a = ᾱ_t/ᾱ_s, c1 = 1/√a, c2 = (1 − a)/√(1 − ᾱ_t), sigma² = (1 − a)(1 − ᾱ_s)/(1 − ᾱ_t)``
    * ddim (η = 0): ``c1 = √(ᾱ_s/ᾱ_t), c2 = √(1 − ᾱ_t) − √(1 − ᾱ_s)·√(ᾱ_t/ᾱ_s), sigma = 0``
    """
    if not isinstance(sched, DDPMSchedule):
        raise ValueError(f"float_coefficients.sched = {sched!r}: must be a DDPMSchedule")
    steps = _check_sampler_steps("float_coefficients", sched, sampler, steps)
    ts = np.asarray(_timesteps(sched, steps), dtype=np.int64)
    ab = sched.alpha_bar.numpy().astype(np.float64)
    at = ab[ts]
    as_ = np.concatenate([ab[ts[1:]], [1.0]])
    if sampler == "ddpm" and steps == sched.steps:
        c1 = sched.c1.numpy()[ts].astype(np.float64)
        c2 = sched.c2.numpy()[ts].astype(np.float64)
        sigma = sched.sigma.numpy()[ts].astype(np.float64)
    elif sampler == "ddpm":
        a = at / as_
        c1 = 1.0 / np.sqrt(a)
        c2 = (1.0 - a) / np.sqrt(1.0 - at)
        sigma = np.sqrt((1.0 - a) * (1.0 - as_) / (1.0 - at))
    else:
        c1 = np.sqrt(as_ / at)
        c2 = np.sqrt(1.0 - at) - np.sqrt(1.0 - as_) * np.sqrt(at / as_)
        sigma = np.zeros_like(c1)
    return ts, c1, c2, sigma


def quantize_coef(c, frac: int) -> np.ndarray:
    """Unsigned COEF_BITS-bit codes of non-negative coefficients: ``sat(floor(c·2**frac + ½))``."""
    c = np.asarray(c, dtype=np.float64)
    if c.size and (not np.all(np.isfinite(c)) or c.min() < 0):
        raise ValueError(f"quantize_coef.c: coefficients must be finite and >= 0, got "
                         f"min {c.min()!r}")
    return np.clip(np.floor(c * float(2 ** frac) + 0.5), 0, COEF_MAX).astype(np.int64)


def c1_shift_for(c1_max: float) -> int:
    """Largest shift s <= C1_MAX_SHIFT with ``floor(c1_max·2**s + ½) <= 2**COEF_BITS − 1``."""
    if not (math.isfinite(c1_max) and c1_max > 0):
        raise ValueError(f"c1_shift_for.c1_max = {c1_max!r}: must be finite and > 0")
    for s in range(C1_MAX_SHIFT, -1, -1):
        if math.floor(c1_max * 2.0 ** s + 0.5) <= COEF_MAX:
            return s
    raise ValueError(f"c1_shift_for.c1_max = {c1_max!r}: too large for an unsigned "
                     f"{COEF_BITS}-bit coefficient, allowed < {COEF_MAX + 0.5}")


@dataclass(frozen=True)
class StepTables:
    """The integer step tables of one sampler and step count (``docs/hardware-mode.md`` §3).

    Attributes
    ----------
    sampler, steps:
        ``"ddpm"`` or ``"ddim"``; network evaluations (= table rows).
    ts:
        int64 (steps,): row i's time index, the row of the time-embedding table fed to the net.
    c1, c2, sg:
        int64 (steps,): unsigned 16-bit codes, ``c1 = C1 / 2**c1_shift``, ``c2 = C2 / 2**16``,
        ``sigma = SG / 2**16``.
    c1_shift:
        The table's c1 shift (a program register of the sequencer).
    noisy:
        bool (steps,): ``SG != 0`` — row i consumes one noise vector.
    """

    sampler: str
    steps: int
    ts: np.ndarray
    c1: np.ndarray
    c1_shift: int
    c2: np.ndarray
    sg: np.ndarray
    noisy: np.ndarray = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "noisy", self.sg != 0)

    @property
    def noisy_steps(self) -> int:
        return int(self.noisy.sum())

    def as_dict(self) -> dict:
        return {"sampler": self.sampler, "steps": self.steps, "c1_shift": self.c1_shift,
                "ts": self.ts.tolist(), "C1": self.c1.tolist(), "C2": self.c2.tolist(),
                "SG": self.sg.tolist()}


def step_tables(sched: DDPMSchedule, sampler: str = "ddpm",
                steps: int | None = None) -> StepTables:
    """Integer tables from :func:`float_coefficients` (``docs/hardware-mode.md`` §3)."""
    ts, c1, c2, sigma = float_coefficients(sched, sampler, steps)
    if c2.size and c2.max() >= 1.0:
        raise ValueError(f"step_tables: c2 max {c2.max()!r} >= 1 does not fit UQ0.{C2_FRAC}")
    if sigma.size and sigma.max() >= 1.0:
        raise ValueError(f"step_tables: sigma max {sigma.max()!r} >= 1 does not fit "
                         f"UQ0.{SIGMA_FRAC}")
    sh = c1_shift_for(float(c1.max()))
    return StepTables(sampler, len(ts), ts, quantize_coef(c1, sh), sh, quantize_coef(c2, C2_FRAC),
                      quantize_coef(sigma, SIGMA_FRAC))


# ------------------------------------------------------------------------------------------------
# The vectorised evaluator of an engine program
@numba.njit(cache=True, nogil=True)
def _adc_add_int(acc, sh, lo, hi, s):
    """``s += sat(round_shift(acc, sh), lo, hi)``: the tile ADC (``docs/crossbar.md`` §1) on one
    row block's exact int32 column sums, accumulated over row blocks (int64)."""
    n, m = acc.shape
    h = (1 << sh) >> 1
    for i in range(n):
        for j in range(m):
            v = (np.int64(acc[i, j]) + h) >> sh
            s[i, j] += min(max(v, lo), hi)


@numba.njit(cache=True, nogil=True)
def _back_end_int(s, bias, sh, lo, hi, act, lut, rows, out):
    """``q = act(sat_in(round_shift(s + bias, sh)))`` (``docs/crossbar.md`` §4; act 0 none, 1
    ReLU, 2 ``lut[q − lo]``), written in the next layer's row-block layout
    ``out[j // rows, i, j % rows]``."""
    n, m = s.shape
    h = (1 << sh) >> 1
    for b in range(out.shape[0]):
        j0 = b * rows
        j1 = min(m, j0 + rows)
        for i in range(n):
            for j in range(j0, j1):
                v = min(max((s[i, j] + bias[j] + h) >> sh, lo), hi)
                if act == 1:
                    v = max(v, 0)
                elif act == 2:
                    v = lut[v - lo]
                out[b, i, j - j0] = v


@numba.njit(cache=True, nogil=True)
def _adc_sum_float(acc, h, inv, lo, hi, s):
    """Float path: ``s[i, j] = Σ_rb sat(floor((acc[rb, i, j] + h)·inv), lo, hi)``."""
    nb, n, m = acc.shape
    for i in range(n):
        for j in range(m):
            s[i, j] = 0.0
    for b in range(nb):
        for i in range(n):
            for j in range(m):
                v = np.floor((acc[b, i, j] + h) * inv)
                s[i, j] += min(max(v, lo), hi)


@numba.njit(cache=True, nogil=True)
def _back_end_float(s, bias, h, inv, lo, hi, act, lut, out):
    """Float path: ``out = act(sat_in(floor((s + bias + h)·inv)))``."""
    n, m = s.shape
    for i in range(n):
        for j in range(m):
            v = min(max(np.floor((s[i, j] + bias[j] + h) * inv), lo), hi)
            if act == 1:
                v = max(v, 0.0)
            elif act == 2:
                v = lut[int(v - lo)]
            out[i, j] = v


def _int8_matmul_ok() -> bool:
    """Whether ``torch._int_mm`` (int8 × int8 → exact int32 products) works on this build."""
    try:
        a = torch.full((3, 16), -128, dtype=torch.int8)
        b = torch.full((16, 8), 127, dtype=torch.int8)
        return bool((torch._int_mm(a, b) == -128 * 127 * 16).all())
    except (AttributeError, RuntimeError, TypeError):
        return False


class FastEngine:
    """Vectorised evaluator of an :class:`~model.nn.EngineProgram`, equal to
    ``program.engine().run(codes)`` (the LayerEngine twin) code for code.

    Per layer and row block of R inputs the exact column sums are one matrix product; the tile
    ADC (round_shift, saturate), the sum over row blocks, bias, requantisation and activation are
    compiled loops (numba). Two exact ways to get the column sums:

    ``int8``
        ``torch._int_mm`` (int8 codes × int8 weights → int32, exact) when weights and inputs fit
        int8 and ``acc_bits`` <= 31 — the default spec; all later arithmetic in integers.
    ``float``
        Otherwise, integer-valued floats: float32 when every column sum, ADC sum and rounding
        offset of the program stays below 2**24 and ``torch.get_float32_matmul_precision()`` is
        ``"highest"``, else float64 (exact below 2**53, ``acc_bits`` <= 43).

    Images go through in chunks of ``chunk``; the products run on ``threads`` torch threads
    (the caller's setting is restored; small products on a busy 2-core machine run best on one).
    """

    def __init__(self, program: EngineProgram, chunk: int = 512, threads: int = 1,
                 path: str | None = None):
        if not isinstance(program, EngineProgram):
            raise ValueError(f"FastEngine.program = {program!r}: must be a model.nn.EngineProgram")
        self.chunk = _check_int("FastEngine", "chunk", chunk, 1, 1 << 20)
        self.threads = _check_int("FastEngine", "threads", threads, 1, 1024)
        cfg = program.cfg
        t = cfg.tile
        ilo, ihi = t.input_range
        alo, ahi = t.adc_range
        self.program = program
        self.in_range = (ilo, ihi)
        bound = 0
        for d, w, b in zip(program.layers, program.weights, program.biases):
            wmax = int(np.abs(w).max()) if w.size else 0
            bmax = int(np.abs(b).max()) if b.size else 0
            acc = wmax * max(abs(ilo), abs(ihi)) * t.rows
            z = d.row_blocks(t) * max(abs(alo), abs(ahi)) + bmax
            bound = max(bound, acc + (1 << max(0, d.adc_shift - 1)),
                        z + (1 << max(0, d.out_shift - 1)))
        self.f32_exact = bound < (1 << 24)
        int8_fits = (ilo >= -128 and ihi <= 127 and t.weight_bits <= 8 and t.acc_bits <= 31
                     and all(int(np.abs(w).max(initial=0)) <= 127 for w in program.weights))
        if path is None:
            path = "int8" if int8_fits and _int8_matmul_ok() else "float"
        if path not in ("int8", "float"):
            raise ValueError(f"FastEngine.path = {path!r}: unknown, allowed ('int8', 'float', "
                             f"None)")
        if path == "int8" and not (int8_fits and _int8_matmul_ok()):
            raise ValueError("FastEngine.path = 'int8': this program's codes do not fit int8 "
                             "(or torch._int_mm is unavailable); allowed 'float'")
        self.path = path
        self._cache = {}

    @property
    def in_dim(self) -> int:
        return self.program.layers[0].in_dim

    def _layers(self, kind):
        """Per layer: weights zero-padded to whole row blocks as (RB, R, out) torch tensors of
        ``kind`` (torch.int8, float32, float64) and the layer's constants."""
        if kind not in self._cache:
            p, t = self.program, self.program.cfg.tile
            R = t.rows
            out = []
            for d, w, b in zip(p.layers, p.weights, p.biases):
                rb = d.row_blocks(t)
                wp = np.zeros((rb * R, d.out_dim), dtype=np.int64)
                wp[:d.in_dim] = w
                wt = torch.from_numpy(wp.reshape(rb, R, d.out_dim).copy()).to(kind).contiguous()
                out.append((wt, [wt[i] for i in range(rb)], d))
            self._cache[kind] = out
        return self._cache[kind]

    def run(self, codes) -> np.ndarray:
        """Output codes (N, out_dim of the last layer) for input DAC codes (N, in_dim), int64."""
        x = np.asarray(codes)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"FastEngine.run.codes: shape {x.shape}, must be (N, {self.in_dim})")
        if x.dtype.kind not in "iu":
            raise ValueError(f"FastEngine.run.codes: dtype {x.dtype}, must be integer")
        lo, hi = self.in_range
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"FastEngine.run.codes: values in [{x.min()}, {x.max()}], allowed "
                             f"[{lo}, {hi}]")
        out = np.empty((x.shape[0], self.program.layers[-1].out_dim), dtype=np.int64)
        prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for k0 in range(0, x.shape[0], self.chunk):
                xs = x[k0:k0 + self.chunk]
                out[k0:k0 + xs.shape[0]] = (self._run_int8(xs) if self.path == "int8"
                                            else self._run_float(xs))
        finally:
            torch.set_num_threads(prev)
        return out

    def _blocks(self, x, rb, R, dtype):
        """(N, in) codes → (RB, N, R) contiguous, zero-padded."""
        m, n_in = x.shape
        xb = np.zeros((rb, m, R), dtype=dtype)
        xp = np.zeros((m, rb * R), dtype=dtype)
        xp[:, :n_in] = x
        xb[:] = xp.reshape(m, rb, R).transpose(1, 0, 2)
        return xb

    def _run_int8(self, x):
        t = self.program.cfg.tile
        R = t.rows
        alo, ahi = t.adc_range
        ilo, ihi = t.input_range
        lut = np.asarray(self.program.lut, dtype=np.int64)
        layers = self._layers(torch.int8)
        m = x.shape[0]
        h = self._blocks(x, layers[0][2].row_blocks(t), R, np.int8)
        for li, (_, ws, d) in enumerate(layers):
            s = np.zeros((m, d.out_dim), dtype=np.int64)
            for hb, wb in zip(torch.from_numpy(h).unbind(0), ws):
                _adc_add_int(torch._int_mm(hb, wb).numpy(), d.adc_shift, alo, ahi, s)
            nb = -(-d.out_dim // R)
            last = li == len(layers) - 1
            h = np.zeros((nb, m, R), dtype=np.int64 if last else np.int8)
            bias = np.asarray(self.program.biases[li], dtype=np.int64)
            _back_end_int(s, bias, d.out_shift, ilo, ihi, int(d.act), lut, R, h)
        return h.transpose(1, 0, 2).reshape(m, -1)[:, :self.program.layers[-1].out_dim]

    def _run_float(self, x):
        t = self.program.cfg.tile
        f32 = self.f32_exact and torch.get_float32_matmul_precision() == "highest"
        dtype = np.float32 if f32 else np.float64
        R = t.rows
        alo, ahi = (float(v) for v in t.adc_range)
        ilo, ihi = (float(v) for v in t.input_range)
        lut = np.asarray(self.program.lut, dtype=dtype)
        layers = self._layers(torch.float32 if f32 else torch.float64)
        m = x.shape[0]
        h = np.ascontiguousarray(x, dtype=dtype)
        for li, (w, _, d) in enumerate(layers):
            hb = torch.from_numpy(self._blocks(h, w.shape[0], R, dtype))
            acc = torch.bmm(hb, w).numpy()                  # (RB, m, out), exact
            s = np.empty((m, d.out_dim), dtype=dtype)
            _adc_sum_float(acc, *_rs_float(d.adc_shift), alo, ahi, s)
            h = np.empty((m, d.out_dim), dtype=dtype)
            bias = np.asarray(self.program.biases[li], dtype=dtype)
            _back_end_float(s, bias, *_rs_float(d.out_shift), ilo, ihi, int(d.act), lut, h)
        return h.astype(np.int64)


def _rs_float(s: int) -> tuple[float, float]:
    """(h, inv) of round_shift by s written as ``floor((v + h)·inv)``."""
    return (float(1 << (s - 1)) if s > 0 else 0.0), float(2.0 ** -s)


# ------------------------------------------------------------------------------------------------
@dataclass
class HardwareProgram:
    """Everything the RTL needs to run the default ε-network and sequencer
    (``docs/hardware-mode.md``), generated from a checkpoint.

    Attributes
    ----------
    engine:
        The layer-engine program (``model.nn.export_program``): engine configuration, layer
        descriptors, weight / bias codes, LUT, ``fx_in`` (input scale) and ``fx_out`` (= ``fe``).
    spec:
        The crossbar it was calibrated for.
    sched:
        The DDPM schedule (T = ``sched.steps``).
    dim, temb_dim, image_shape:
        Pixels per image (x part of the engine input), time-embedding width, one image's shape.
    fx_in, fe:
        Network input scale (``code = x·2**fx_in``) and ε̂ output scale (``ε̂ = E·2**-fe``).
    temb_codes:
        int64 (T, temb_dim): the time-embedding DAC codes, row t fed after the dim x codes.
    gauss:
        The Gaussian generator's configuration (noise format Q``int_bits``.``frac_bits``).
    calib_seed, calib_n:
        The calibration batch (``model.diffusion.train.mlp_inputs``).
    source:
        Where the weights came from (checkpoint path and sha256, or "net").
    layer_scales:
        Per layer ``(fx, fw, adc_shift, out_shift)`` (``model.nn.LayerScales``): input, weight
        scales and the two shifts; ``fx`` of layer l+1 is ``fx_out`` of layer l.
    """

    engine: EngineProgram
    spec: CrossbarSpec
    sched: DDPMSchedule
    dim: int
    temb_dim: int
    image_shape: tuple
    fx_in: int
    fe: int
    temb_codes: np.ndarray
    gauss: GaussConfig
    calib_seed: int
    calib_n: int
    source: dict
    layer_scales: list
    _fast: FastEngine | None = field(default=None, repr=False, compare=False)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path_or_net, sched: DDPMSchedule | None = None,
                        spec: CrossbarSpec | None = None, calib_seed: int = 0, *,
                        data=None, calib_n: int = DEFAULT_CALIB_N,
                        gauss: GaussConfig | None = None) -> "HardwareProgram":
        """Generate the program from a checkpoint file (``model.diffusion.train``) or an
        ``EpsMLP``.

        Parameters
        ----------
        path_or_net:
            Checkpoint path, or an EpsMLP-like net (``dim``, ``steps``, ``temb``, ``mlp``).
        sched:
            Default: the checkpoint's ``meta["schedule"]`` (required for a bare net).
        spec:
            Default :data:`HW_SPEC` (a QAT checkpoint's ``meta["qat_spec"]`` is what it was
            trained for, not necessarily what the hardware runs).
        calib_seed, calib_n:
            Seed and size of the calibration batch: ``mlp_inputs(net, data, sched, calib_n,
            calib_seed)`` (data images, t uniform, ε Gaussian — the forward process).
        data:
            Images for the calibration batch; default the checkpoint's data set and split
            (``digits`` for a bare net with dim 64).
        gauss:
            Gaussian generator configuration (noise format); default ``GaussConfig()`` (Q4.11).
        """
        from model.diffusion.data import load_dataset
        from model.diffusion.train import load_checkpoint, mlp_inputs
        o = "HardwareProgram.from_checkpoint"
        meta: dict = {}
        if isinstance(path_or_net, (str, os.PathLike)):
            p = Path(path_or_net)
            net, meta = load_checkpoint(p)
            source = {"checkpoint": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        elif isinstance(path_or_net, torch.nn.Module):
            net = path_or_net
            source = {"checkpoint": None, "net": type(net).__name__}
        else:
            raise ValueError(f"{o}.path_or_net = {type(path_or_net).__name__}: must be a "
                             f"checkpoint path or an EpsMLP")
        for a in ("dim", "steps", "temb", "mlp"):
            if not hasattr(net, a):
                raise ValueError(f"{o}: the net ({type(net).__name__}) has no {a!r}; must be an "
                                 f"EpsMLP (model.diffusion.nets)")
        if sched is None:
            if "schedule" not in meta:
                raise ValueError(f"{o}.sched = None: needed for a bare net (a checkpoint carries "
                                 f"its own)")
            sched = DDPMSchedule(**meta["schedule"])
        if not isinstance(sched, DDPMSchedule) or sched.steps != net.steps:
            raise ValueError(f"{o}.sched = {sched!r}: must be a DDPMSchedule with steps = "
                             f"{net.steps} (the net's time table)")
        if spec is None:
            spec = HW_SPEC
        if not isinstance(spec, CrossbarSpec):
            raise ValueError(f"{o}.spec = {spec!r}: must be a model.nn.CrossbarSpec or None")
        if not spec.input_signed:
            raise ValueError(f"{o}.spec.input_signed = False: x_t and ε̂ are signed; allowed True")
        _check_int(o, "calib_seed", calib_seed, 0, 2**63 - 1)
        _check_int(o, "calib_n", calib_n, 1, 1 << 22)
        gauss = GaussConfig() if gauss is None else gauss
        if not isinstance(gauss, GaussConfig):
            raise ValueError(f"{o}.gauss = {gauss!r}: must be a model.blocks.config.GaussConfig")
        # The net must fit the tile's slots before anything is calibrated or exported (a net
        # far too large would otherwise fill the memory with calibration products first).
        from model.blocks.crossbar_config import MAX_SLOTS
        layers = [m for m in net.mlp.modules() if isinstance(m, torch.nn.Linear)]
        slots = sum(-(-m.in_features // spec.rows) * -(-m.out_features // spec.cols)
                    for m in layers)
        if slots > MAX_SLOTS:
            sizes = " -> ".join([str(layers[0].in_features)] + [str(m.out_features)
                                                               for m in layers]) if layers else "?"
            raise ValueError(f"{o}: the net ({sizes}) needs {slots} tile slots of "
                             f"{spec.rows} x {spec.cols}; the engine holds at most {MAX_SLOTS}")
        if data is None:
            name = meta.get("dataset", "digits" if net.dim == 64 else None)
            if name is None:
                raise ValueError(f"{o}.data = None: give the calibration images for a "
                                 f"{net.dim}-pixel net")
            data = load_dataset(name, meta.get("split", "train"), int(meta.get("seed", 0)))
        shape = tuple(getattr(data, "shape", (net.dim,)))
        if int(np.prod(shape)) != net.dim:
            shape = (net.dim,)
        calib = mlp_inputs(net, data, sched, calib_n, calib_seed)
        mlp = convert(copy.deepcopy(net.mlp), "digital", spec, calib=calib)
        prog = export_program(mlp)
        scales = [(m.scales.fx, m.scales.fw, m.scales.adc_shift, m.scales.out_shift)
                  for m in crossbar_layers(mlp)]
        fx_in, fe = prog.fx_in, prog.fx_out
        if fx_in > X_FRAC:
            raise ValueError(f"{o}: the network input scale fx_in = {fx_in} is finer than the "
                             f"state's 2**-{X_FRAC}; allowed fx_in <= {X_FRAC}")
        if C2_FRAC + fe - X_FRAC < 0:
            raise ValueError(f"{o}: the ε̂ scale fe = {fe} is too coarse; allowed fe >= "
                             f"{X_FRAC - C2_FRAC}")
        lo, hi = spec.input_range
        temb = net.temb.detach().to(torch.float64).numpy()
        temb_codes = np.clip(np.floor(temb * 2.0 ** fx_in + 0.5), lo, hi).astype(np.int64)
        return cls(engine=prog, spec=spec, sched=sched, dim=int(net.dim),
                   temb_dim=int(temb.shape[1]), image_shape=shape, fx_in=int(fx_in), fe=int(fe),
                   temb_codes=temb_codes, gauss=gauss, calib_seed=int(calib_seed),
                   calib_n=int(calib_n), source=source, layer_scales=scales)

    # -- derived --------------------------------------------------------------------------------
    @property
    def steps_max(self) -> int:
        return self.sched.steps

    @property
    def z_frac(self) -> int:
        return self.gauss.frac_bits

    @property
    def fast(self) -> FastEngine:
        if self._fast is None:
            self._fast = FastEngine(self.engine)
        return self._fast

    def tables(self, sampler: str = "ddpm", steps: int | None = None) -> StepTables:
        """The integer step tables of ``sampler`` with ``steps`` evaluations (default T)."""
        return step_tables(self.sched, sampler, steps)

    def net_input(self, X: np.ndarray, t: int) -> np.ndarray:
        """Engine input codes (N, dim + temb_dim): the state's codes, then row t of the table."""
        lo, hi = self.spec.input_range
        xc = input_x_codes(np.asarray(X, dtype=np.int64), self.fx_in, lo, hi)
        return np.concatenate([xc, np.broadcast_to(self.temb_codes[t], (xc.shape[0],
                                                                        self.temb_dim))], axis=1)

    def noise_per_image(self, tab: StepTables) -> int:
        """Gaussian samples one image consumes: dim · (1 + noisy rows)."""
        return self.dim * (1 + tab.noisy_steps)

    def counts(self, sampler: str = "ddpm", steps: int | None = None) -> dict:
        """Costed operations per image (``docs/hardware-mode.md`` §6)."""
        tab = self.tables(sampler, steps)
        t = self.engine.cfg.tile
        n = tab.steps
        blocks = sum(d.blocks(t) for d in self.engine.layers)
        outs = sum(d.out_dim for d in self.engine.layers)
        luts = sum(d.out_dim for d in self.engine.layers if d.act == ACT_LUT)
        logical = sum(d.in_dim * d.out_dim for d in self.engine.layers)
        return {
            "network_evals": n,
            "tile_mvms": n * blocks,
            "macs": n * blocks * t.rows * t.cols,
            "macs_logical": n * logical,
            "dac_conversions": n * blocks * t.rows,
            "adc_conversions": n * blocks * t.cols,
            "weight_reads": n * blocks * t.rows * t.cols,
            "bias_reads": n * outs,
            "lut_reads": n * luts,
            "gaussian_samples": self.noise_per_image(tab),
            "schedule_table_reads": 3 * n,
            "temb_table_reads": n * self.temb_dim,
            "state_reads": 2 * n * self.dim + self.dim,
            "state_writes": n * self.dim + self.dim,
            "seq_multiplies": 2 * n * self.dim + tab.noisy_steps * self.dim,
            "pixels_out": self.dim,
        }

    # -- export ---------------------------------------------------------------------------------
    def formats(self) -> dict:
        """The formats of ``docs/hardware-mode.md`` §2 as numbers (for reports and the RTL)."""
        sp, fp = self.spec, fixed_point(self.gauss)
        return {
            "x_state": {"bits": X_BITS, "signed": True, "frac": X_FRAC,
                        "q": f"Q{X_BITS - 1 - X_FRAC}.{X_FRAC}"},
            "dac_input": {"bits": sp.input_bits, "signed": sp.input_signed, "frac": self.fx_in},
            "temb_codes": {"bits": sp.input_bits, "signed": True, "frac": self.fx_in,
                           "rows": self.steps_max, "cols": self.temb_dim},
            "weights": {"bits": sp.weight_bits, "signed": True,
                        "frac_per_layer": [ls[1] for ls in self.layer_scales]},
            "adc": {"bits": sp.digital_adc_bits, "signed": True},
            "bias": {"bits": sp.bias_bits, "signed": True, "unit": "ADC code of its layer"},
            "eps": {"bits": sp.input_bits, "signed": True, "frac": self.fe},
            "c1": {"bits": COEF_BITS, "signed": False, "frac": "c1_shift (per table)"},
            "c2": {"bits": COEF_BITS, "signed": False, "frac": C2_FRAC},
            "sigma": {"bits": COEF_BITS, "signed": False, "frac": SIGMA_FRAC},
            "noise_z": {"bits": fp.sample_bits, "signed": True, "frac": fp.frac_bits,
                        "q": f"Q{fp.int_bits}.{fp.frac_bits}"},
            "accumulator_frac": acc_frac(self.z_frac),
            "pixel": {"bits": PIXEL_BITS, "signed": False},
        }

    def to_dict(self, tables=(("ddpm", None),)) -> dict:
        """The whole program as JSON-able data: formats, engine (config, descriptors, weight,
        bias and LUT codes, programming and configuration words), the time-embedding table and
        the step tables of each ``(sampler, steps)`` in ``tables``."""
        e = self.engine
        c = e.cfg
        return {
            "contract": "docs/hardware-mode.md", "version": 1,
            "source": self.source, "calib_seed": self.calib_seed, "calib_n": self.calib_n,
            "spec": {f: getattr(self.spec, f) for f in (
                "rows", "cols", "weight_bits", "input_bits", "input_signed", "adc_bits",
                "macs_per_cycle", "bias_bits", "calib_percentile")},
            "schedule": self.sched.to_dict(), "dim": self.dim, "temb_dim": self.temb_dim,
            "image_shape": list(self.image_shape), "fx_in": self.fx_in, "fe": self.fe,
            "layer_scales": [list(x) for x in self.layer_scales], "formats": self.formats(),
            "gauss": {"int_bits": self.gauss.int_bits, "frac_bits": self.gauss.frac_bits,
                      "cbd_bits": self.gauss.cbd_bits},
            "engine": {
                "cfg": {"rows": c.tile.rows, "cols": c.tile.cols, "slots": c.tile.slots,
                        "weight_bits": c.tile.weight_bits, "input_bits": c.tile.input_bits,
                        "adc_bits": c.tile.adc_bits, "macs_per_cycle": c.tile.macs_per_cycle,
                        "max_dim": c.max_dim, "max_layers": c.max_layers,
                        "bias_bits": c.bias_bits, "bias_entries": c.bias_entries},
                "layers": [{"in_dim": d.in_dim, "out_dim": d.out_dim, "slot_base": d.slot_base,
                            "bias_base": d.bias_base, "adc_shift": d.adc_shift,
                            "out_shift": d.out_shift, "act": d.act} for d in e.layers],
                "weights": [w.tolist() for w in e.weights],
                "biases": [b.tolist() for b in e.biases],
                "lut": np.asarray(e.lut).tolist(),
            },
            "temb_codes": self.temb_codes.tolist(),
            "tables": [self.tables(s, n).as_dict() for s, n in tables],
        }

    def markdown(self, tables=None) -> str:
        """The program's numbers as the Markdown block of ``docs/hardware-mode.md`` §7
        (``tables``: ``(sampler, steps)`` pairs, default ddpm with T and ddim with 50)."""
        if tables is None:
            tables = (("ddpm", None), ("ddim", min(50, self.steps_max)))
        src = self.source.get("checkpoint") or "(a net, not a file)"
        sha = self.source.get("sha256", "")
        out = [f"Checkpoint `{Path(src).name if self.source.get('checkpoint') else src}`"
               + (f" (sha256 `{sha[:16]}…`)" if sha else "")
               + f", calibration seed {self.calib_seed}, {self.calib_n} inputs; "
               f"fx_in = {self.fx_in} (pixel codes: 2^−{self.fx_in}, shift "
               f"{X_FRAC - self.fx_in} from Q3.12), fe = {self.fe} (c2·ε̂ shift "
               f"{C2_FRAC + self.fe - X_FRAC}).", "",
               "| layer | in → out | act | fx | fw | adc_shift | out_shift | fx_out | "
               "weight codes | bias codes |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        acts = {ACT_NONE: "none", ACT_RELU: "ReLU", ACT_LUT: "LUT"}
        for i, (d, w, b, sc) in enumerate(zip(self.engine.layers, self.engine.weights,
                                              self.engine.biases, self.layer_scales)):
            fx, fw, a, o = sc
            out.append(f"| {i} | {d.in_dim} → {d.out_dim} | {acts[d.act]} | {fx} | {fw} | {a} | "
                       f"{o} | {fx + fw - a - o} | [{int(w.min())}, {int(w.max())}] | "
                       f"[{int(b.min())}, {int(b.max())}] |")
        out += ["", f"Time-embedding codes: {self.steps_max} × {self.temb_dim}, values "
                f"[{int(self.temb_codes.min())}, {int(self.temb_codes.max())}].", ""]
        out += ["| table | rows | c1_shift | C1 range | C2 range | SG range | noisy rows |",
                "|---|---|---|---|---|---|---|"]
        for smp, k in tables:
            t = self.tables(smp, k)
            out.append(f"| {smp} | {t.steps} | {t.c1_shift} | [{int(t.c1.min())}, "
                       f"{int(t.c1.max())}] | [{int(t.c2.min())}, {int(t.c2.max())}] | "
                       f"[{int(t.sg.min())}, {int(t.sg.max())}] | {t.noisy_steps} |")
        return "\n".join(out)

    def digest(self) -> str:
        """sha256 of :meth:`to_dict` (default tables) as canonical JSON."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()



# ------------------------------------------------------------------------------------------------
# Noise codes
class _QuantizedNoise:
    """A float noise source (``software``) rounded to the noise format: ``sat(floor(v·2**f + ½))``.
    The RTL has no such source; it exists so that hardware-mode arithmetic can be compared with
    the float sampler on the *same* random numbers (up to the rounding)."""

    def __init__(self, source, gauss: GaussConfig):
        self.source, self.fp = source, fixed_point(gauss)
        self.name = f"{getattr(source, 'name', type(source).__name__)}-quantized"

    def codes(self, n: int) -> np.ndarray:
        v = self.source.normal((int(n),)).to(torch.float64)
        f = self.fp
        return torch.floor(v * float(1 << f.frac_bits) + 0.5).clamp_(f.raw_min, f.raw_max) \
            .to(torch.int64).numpy()

    def describe(self) -> dict:
        d = self.source.describe() if hasattr(self.source, "describe") else {}
        return {**d, "name": self.name, "format": f"Q{self.fp.int_bits}.{self.fp.frac_bits}"}


def noise_codes_source(noise, seed, gauss: GaussConfig):
    """A source with ``codes(n)`` in the program's noise format, from a name of
    ``model.diffusion.noise.NOISE_SOURCES`` (made with ``seed``) or a source object; a float-only
    source (``software``) is rounded to the format (:class:`_QuantizedNoise`)."""
    o = "hw_sample.noise"
    if isinstance(noise, str):
        from model.diffusion.noise import NOISE_SOURCES, make_noise
        if noise not in NOISE_SOURCES:
            raise ValueError(f"{o} = {noise!r}: unknown, allowed {NOISE_SOURCES} or a source "
                             f"object with codes(n)")
        seed = 0 if seed is None else _check_int("hw_sample", "seed", seed, 0, 2**32 - 1)
        kw = {} if noise == "software" else {"gauss_cfg": gauss}
        noise = make_noise(noise, seed, **kw)
    if hasattr(noise, "codes"):
        g = getattr(noise, "gauss_cfg", None)
        if g is not None and (g.int_bits, g.frac_bits) != (gauss.int_bits, gauss.frac_bits):
            raise ValueError(f"{o}: the source's samples are Q{g.int_bits}.{g.frac_bits}, the "
                             f"program expects Q{gauss.int_bits}.{gauss.frac_bits}")
        return noise
    if hasattr(noise, "normal"):
        return _QuantizedNoise(noise, gauss)
    raise ValueError(f"{o} = {noise!r}: must be a noise-source name or an object with "
                     f"codes(n) (or normal(shape))")


# ------------------------------------------------------------------------------------------------
@dataclass
class HWSamples:
    """Result of :func:`hw_sample`.

    Attributes
    ----------
    x0:
        int64 (n, dim): the final state X_0 (Q3.12), what the RTL holds before the pixel step.
    pixels:
        uint8 (n, *image_shape): the RTL's output stream (:func:`pixels_from_x`).
    images:
        float32 tensor (n, *image_shape): ``X_0 / 2**12`` clipped to [−1, 1] (the float
        samplers' range), for metrics.
    counts, counts_total:
        Costed operations per image (:meth:`HardwareProgram.counts`) and for all n images.
    """

    x0: np.ndarray
    pixels: np.ndarray
    images: torch.Tensor
    sampler: str
    steps: int
    ts: np.ndarray
    counts: dict
    counts_total: dict
    noise: dict
    wall_s: float


def _check_program(owner, program):
    if not isinstance(program, HardwareProgram):
        raise ValueError(f"{owner}.program = {type(program).__name__}: must be a "
                         f"HardwareProgram (HardwareProgram.from_checkpoint)")


def _finish(program, X, tab, src, n, t0, sampler) -> HWSamples:
    shape = tuple(program.image_shape)
    pix = pixels_from_x(X).astype(np.uint8).reshape((n,) + shape)
    img = torch.from_numpy(np.clip(X.astype(np.float64) * 2.0 ** -X_FRAC, -1.0, 1.0)
                           .astype(np.float32).reshape((n,) + shape))
    c = program.counts(sampler, tab.steps)
    desc = src.describe() if hasattr(src, "describe") else {"name": type(src).__name__}
    return HWSamples(x0=X, pixels=pix, images=img, sampler=sampler, steps=tab.steps, ts=tab.ts,
                     counts=c, counts_total={k: v * n for k, v in c.items()}, noise=desc,
                     wall_s=time.perf_counter() - t0)


def hw_sample(program: HardwareProgram, noise, n: int, steps: int | None = None,
              sampler: str = "ddpm", seed: int | None = None, *, engine: str = "fast",
              chunk: int | None = None, progress: bool = False) -> HWSamples:
    """Generate ``n`` images in hardware mode, vectorised over images (``docs/hardware-mode.md``).

    Parameters
    ----------
    program:
        :class:`HardwareProgram`.
    noise:
        A noise-source name (``"trng"`` — the TRNG twin's exact integers —, ``"lfsr"``, ``"mtj"``,
        ``"software"``), made with ``seed``; or a source object with ``codes(n)``. Consumed in
        the contract's order (image by image: x_T, then one vector per noisy step).
    n:
        Number of images (>= 1).
    steps:
        Network evaluations, 1 … T (default T). ``ddpm`` with fewer than T steps is the strided
        ancestral sampler on ``sched.ddim_timesteps(steps)``.
    sampler:
        ``"ddpm"`` or ``"ddim"`` (η = 0).
    seed:
        Seed of a named noise source (default 0); ignored for a source object.
    engine:
        ``"fast"`` (:class:`FastEngine`, compiled) or ``"twin"`` (the LayerEngine twin, int64
        numpy) for the ε-network; the results are identical.
    chunk:
        Images per vectorised batch (default: as many as keep ~8 M noise integers in memory).
    progress:
        tqdm bar over the steps of each batch.
    """
    o = "hw_sample"
    t0 = time.perf_counter()
    _check_program(o, program)
    n = _check_int(o, "n", n, 1, 1 << 30)
    tab = program.tables(sampler, steps)
    if engine not in ("fast", "twin"):
        raise ValueError(f"{o}.engine = {engine!r}: unknown, allowed ('fast', 'twin')")
    src = noise_codes_source(noise, seed, program.gauss)
    per = program.noise_per_image(tab)
    if chunk is None:
        # ~8 M noise integers per batch (64 MB as int64), but at least 256 images (a full
        # DDPM run of T = 1000 then holds 16 M, 131 MB) so the engine sees large batches.
        chunk = max(1, min(n, max(256, (1 << 23) // per)))
    chunk = _check_int(o, "chunk", chunk, 1, 1 << 30)
    run = program.fast.run if engine == "fast" else program.engine.engine().run
    dim, fe, zf = program.dim, program.fe, program.z_frac
    out = np.empty((n, dim), dtype=np.int64)
    from tqdm.auto import tqdm
    for k0 in range(0, n, chunk):
        m = min(chunk, n - k0)
        Z = np.asarray(src.codes(m * per), dtype=np.int64).reshape(m, per)
        X = x_init(Z[:, :dim], zf)
        off = dim
        for i in tqdm(range(tab.steps), disable=not progress, leave=False,
                      desc=f"hw {sampler} {k0}/{n}"):
            E = run(program.net_input(X, int(tab.ts[i])))
            if tab.noisy[i]:
                z = Z[:, off:off + dim]
                off += dim
            else:
                z = 0
            X = hw_step(X, E, z, int(tab.c1[i]), tab.c1_shift, int(tab.c2[i]), int(tab.sg[i]),
                        fe, zf)
        out[k0:k0 + m] = X
    return _finish(program, out, tab, src, n, t0, sampler)


def hw_sample_reference(program: HardwareProgram, noise, n: int, steps: int | None = None,
                        sampler: str = "ddpm", seed: int | None = None) -> HWSamples:
    """The contract, literally and slowly: one image after another, the LayerEngine twin
    (``program.engine.engine()``) one vector at a time, Python integers per pixel
    (:func:`step_pixel`). For tests (few images, few steps); ``counts`` of the result come from
    the twin's own tile counters where it has them."""
    o = "hw_sample_reference"
    t0 = time.perf_counter()
    _check_program(o, program)
    n = _check_int(o, "n", n, 1, 1 << 20)
    tab = program.tables(sampler, steps)
    src = noise_codes_source(noise, seed, program.gauss)
    twin = program.engine.engine()
    lo, hi = program.spec.input_range
    dim, fe, zf = program.dim, program.fe, program.z_frac
    out = np.empty((n, dim), dtype=np.int64)
    for k in range(n):
        zs = [int(v) for v in src.codes(program.noise_per_image(tab))]
        x = [int(x_init(v, zf)) for v in zs[:dim]]
        pos = dim
        for i in range(tab.steps):
            codes = [int(input_x_codes(v, program.fx_in, lo, hi)) for v in x]
            codes += [int(v) for v in program.temb_codes[int(tab.ts[i])]]
            e = [int(v) for v in twin.run(np.asarray([codes], dtype=np.int64))[0]]
            if tab.noisy[i]:
                z, pos = zs[pos:pos + dim], pos + dim
            else:
                z = [0] * dim
            x = [step_pixel(x[j], e[j], z[j], int(tab.c1[i]), tab.c1_shift, int(tab.c2[i]),
                            int(tab.sg[i]), fe, zf) for j in range(dim)]
        assert pos == len(zs)
        out[k] = x
    res = _finish(program, out, tab, src, n, t0, sampler)
    res.counts_total.update({"tile_mvms_twin": twin.tile.counts["mvm"],
                             "macs_twin": twin.tile.counts["mac"],
                             "adc_conversions_twin": twin.tile.counts["adc"],
                             "dac_conversions_twin": twin.tile.counts["dac"]})
    return res


# ------------------------------------------------------------------------------------------------
def measure_speed(program: HardwareProgram, net, n: int = 1000, steps: int | None = None,
                  sampler: str = "ddpm", seed: int = 0, threads: int = 1) -> dict:
    """Wall time of :func:`hw_sample` against the float sampler (``samplers.sample``) on the
    same net, ``n``, ``steps`` and sampler, both with software noise (the hardware run rounds it
    to the noise format) so that the figure is the compute, not the noise source; both on
    ``threads`` torch threads. The issue's goal: ``ratio`` <= 3 (``make bench`` reports it)."""
    from model.diffusion.noise import make_noise
    from model.diffusion.samplers import sample
    n = _check_int("measure_speed", "n", n, 1, 1 << 24)
    prev = torch.get_num_threads()
    torch.set_num_threads(_check_int("measure_speed", "threads", threads, 1, 1024))
    try:
        hw_sample(program, "software", 2, 2, "ddim", seed=seed)       # compile / warm up
        t0 = time.perf_counter()
        sample(sampler, net, program.sched, make_noise("software", seed), n,
               steps=None if sampler == "ddpm" and steps in (None, program.steps_max) else steps,
               progress=False)
        t_float = time.perf_counter() - t0
        t0 = time.perf_counter()
        hw_sample(program, "software", n, steps, sampler, seed=seed)
        t_hw = time.perf_counter() - t0
    finally:
        torch.set_num_threads(prev)
    return {"sampler": sampler, "steps": steps or program.steps_max, "n": n, "threads": threads,
            "float_s": t_float, "hw_s": t_hw, "ratio": t_hw / t_float,
            "hw_images_per_s": n / t_hw, "engine_path": program.fast.path}


# ------------------------------------------------------------------------------------------------
def default_checkpoint() -> Path:
    """The default digits checkpoint of the hardware: the QAT one when committed, else the
    float one (``model.diffusion.train.DEFAULT_CHECKPOINT``)."""
    from model.diffusion.train import CHECKPOINT_DIR, DEFAULT_CHECKPOINT
    q = CHECKPOINT_DIR / "digits-qat.pt"
    return q if q.is_file() else DEFAULT_CHECKPOINT


def main(argv=None) -> int:
    """``python -m model.diffusion.hardware``: write the hardware program of a checkpoint
    (formats, engine program, time-embedding table, step tables) as JSON."""
    import argparse
    import sys

    from model.io import atomic_write_json
    p = argparse.ArgumentParser(prog="python -m model.diffusion.hardware",
                                description=main.__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="default: %s" % default_checkpoint())
    p.add_argument("--calib-seed", type=int, default=0)
    p.add_argument("--tables", default="ddpm", help="comma list of sampler[:steps], e.g. "
                   "ddpm,ddim:50 (default ddpm with T steps)")
    p.add_argument("--out", default=str(_ROOT / "build" / "hardware" / "program.json"))
    p.add_argument("--markdown", action="store_true",
                   help="also print the numbers as the Markdown block of docs/hardware-mode.md §7")
    a = p.parse_args(argv)
    try:
        tabs = []
        for item in a.tables.split(","):
            s, _, k = item.strip().partition(":")
            tabs.append((s, int(k) if k else None))
        prog = HardwareProgram.from_checkpoint(a.checkpoint or default_checkpoint(),
                                               calib_seed=a.calib_seed)
        d = prog.to_dict(tuple(tabs))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    atomic_write_json(a.out, d)
    layers = ", ".join(f"{x['in_dim']}->{x['out_dim']} (adc_shift {x['adc_shift']}, out_shift "
                       f"{x['out_shift']})" for x in d["engine"]["layers"])
    print(f"{a.out}: {layers}; fx_in {prog.fx_in}, fe {prog.fe}; tables "
          + ", ".join(f"{t['sampler']}:{t['steps']} (c1_shift {t['c1_shift']})"
                      for t in d["tables"]))
    if a.markdown:
        print(prog.markdown(tuple(tabs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
