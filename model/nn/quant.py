"""Integer helpers of the PyTorch side, equal to the integer rules of
``model/blocks/crossbar_config.py`` on integer-valued float64 tensors, plus the straight-through
estimators (STE) used for quantization-aware training.

Every rounding here is *round half up* (``floor(v + 0.5)``), the rule of ``round_shift``;
``torch.round`` (half to even) is never used. float64 holds every integer the tiles produce exactly
(``acc_bits <= 43 < 53``), and a matrix product of integer-valued float64 tensors whose partial
sums stay below 2**53 is exact in any summation order, so the digital mode is bit-exact with the
int64 twin.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Bound on a fractional-bit count chosen from data (keeps 2**f finite and sane).
FRAC_LIMIT = 60


def round_half_up(t: torch.Tensor) -> torch.Tensor:
    return torch.floor(t + 0.5)


def round_shift_t(v: torch.Tensor, s: int) -> torch.Tensor:
    """``round_shift`` on an integer-valued float64 tensor: ``floor(v / 2**s + 1/2)`` for s > 0."""
    if s < 0:
        raise ValueError(f"round_shift.s = {s}: out of range, allowed [0, 63]")
    if s == 0:
        return v
    return torch.floor((v + float(1 << (s - 1))) / float(1 << s))


def requant_t(z: torch.Tensor, s: int) -> torch.Tensor:
    """``floor(z / 2**s + 1/2)``: equals :func:`round_shift_t` on integers (also for s = 0) and
    rounds a float (analog) sum to the nearest code."""
    return torch.floor(z / float(2.0 ** s) + 0.5)


def frac_bits_for(max_abs: float, code_max: int) -> int:
    """Largest f with ``max_abs * 2**f <= code_max`` (finest power-of-two scale without clipping);
    0 when ``max_abs`` is 0 or not finite."""
    if not (max_abs > 0.0 and math.isfinite(max_abs)):
        return 0
    f = math.floor(math.log2(code_max / max_abs))
    # log2 rounding can be off by one at exact powers of two: fix it up.
    while max_abs * 2.0 ** f > code_max:
        f -= 1
    while max_abs * 2.0 ** (f + 1) <= code_max:
        f += 1
    return max(-FRAC_LIMIT, min(FRAC_LIMIT, f))


def percentile_abs(t: torch.Tensor, pct: float, positive_only: bool = False) -> float:
    """``pct`` percentile of |t| (or of max(t, 0)); the maximum for pct = 100."""
    a = t.detach().to(torch.float64).reshape(-1)
    a = a.clamp_min(0.0) if positive_only else a.abs()
    if a.numel() == 0:
        return 0.0
    if pct >= 100.0:
        return float(a.max())
    return float(np.percentile(a.cpu().numpy(), pct))


class _RoundSTE(torch.autograd.Function):
    """Forward ``floor(v + 0.5)``, backward identity (straight-through)."""

    @staticmethod
    def forward(ctx, v):
        return torch.floor(v + 0.5)

    @staticmethod
    def backward(ctx, g):
        return g


class _ValueSTE(torch.autograd.Function):
    """Forward the exact value computed elsewhere, backward the surrogate's gradient."""

    @staticmethod
    def forward(ctx, surrogate, value):
        return value.clone()

    @staticmethod
    def backward(ctx, g):
        return g, None


def fake_quant(v: torch.Tensor, frac: int, lo: int, hi: int) -> torch.Tensor:
    """``clamp(round(v * 2**frac), lo, hi) * 2**-frac`` with a clipped straight-through gradient
    (1 inside the range, 0 where the code saturates)."""
    code = torch.clamp(_RoundSTE.apply(v * float(2.0 ** frac)), float(lo), float(hi))
    return code * float(2.0 ** -frac)


def with_value(surrogate: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` exactly in the forward pass, ``surrogate``'s gradient in the backward pass."""
    if torch.is_grad_enabled() and surrogate.requires_grad:
        return _ValueSTE.apply(surrogate, value.to(surrogate.dtype))
    return value.to(surrogate.dtype)


def truncated_weight_noise(shape, sigma: float, trunc: float, generator: torch.Generator,
                           dtype=torch.float32) -> torch.Tensor:
    """n ~ N(0, sigma**2) with every |n| >= trunc replaced by a uniform draw in [-trunc, trunc]
    (the hardware-aware training noise of Yang et al. 2024, arXiv 2404.05648, reference code)."""
    n = torch.randn(shape, generator=generator, dtype=dtype) * sigma
    u = (torch.rand(shape, generator=generator, dtype=dtype) * 2.0 - 1.0) * trunc
    return torch.where(n.abs() >= trunc, u, n)
