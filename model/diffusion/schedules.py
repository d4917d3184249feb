"""The DDPM noise schedule (Ho et al. 2020, arXiv 2006.11239): linear β, ε-prediction.

Forward process ``q(x_t | x_0) = N(sqrt(ᾱ_t)·x_0, (1 − ᾱ_t)·I)`` with ``ᾱ_t = Π_{s≤t} (1 − β_s)``
(steps indexed 0 … T−1 here; step 0 is the first noising step). Reverse (ancestral) step, the form
the hardware sequencer runs (``docs/diffusion.md``)::

    x_{t-1} = c1[t]·(x_t − c2[t]·ε̂(x_t, t)) + sigma[t]·z,   z ~ N(0, I), z = 0 at t = 0

    c1[t]    = 1 / sqrt(α_t)
    c2[t]    = β_t / sqrt(1 − ᾱ_t)
    sigma[t] = sqrt(β̃_t),  β̃_t = β_t·(1 − ᾱ_{t−1}) / (1 − ᾱ_t)   (posterior variance; β̃_0 = 0)

The posterior variance β̃ (Ho et al.'s "σ² = β̃" choice, the lower bound) is used rather than
σ² = β: the two give similar quality at T = 1000 (Ho et al. §4), and β̃ is exact for the last steps,
where σ² = β adds noise the ε-network cannot remove on a data set as small as the 8×8 digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

#: Largest supported step count (the hardware tables hold one entry per step).
MAX_STEPS = 100_000


def _check_steps(owner: str, name: str, v, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{owner}.{name} = {v!r}: out of range, allowed integer [{lo}, {hi}]")
    return v


@dataclass(frozen=True)
class DDPMSchedule:
    """Linear-β DDPM schedule; the tables are float64 tensors of length ``steps``.

    Parameters
    ----------
    steps:
        Number of diffusion steps T (1 … 100000).
    beta_start, beta_end:
        β at the first and the last step, ``0 < beta_start <= beta_end < 1``; the defaults are
        Ho et al.'s (1e-4 → 0.02 at T = 1000). For another T, :meth:`scaled` multiplies both by
        1000 / T (the usual rescaling, Nichol & Dhariwal 2021), so ᾱ at the last step stays near
        0 (4e-5 at T = 1000); a small T with the T = 1000 end points would not reach N(0, I).

    Attributes
    ----------
    betas, alphas, alpha_bar, c1, c2, sigma:
        See the module docstring. ``sqrt_alpha_bar`` and ``sqrt_one_minus_alpha_bar`` are the
        forward-process coefficients.
    """

    steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    betas: torch.Tensor = field(init=False, repr=False, compare=False)
    alphas: torch.Tensor = field(init=False, repr=False, compare=False)
    alpha_bar: torch.Tensor = field(init=False, repr=False, compare=False)
    sqrt_alpha_bar: torch.Tensor = field(init=False, repr=False, compare=False)
    sqrt_one_minus_alpha_bar: torch.Tensor = field(init=False, repr=False, compare=False)
    c1: torch.Tensor = field(init=False, repr=False, compare=False)
    c2: torch.Tensor = field(init=False, repr=False, compare=False)
    sigma: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        o = "DDPMSchedule"
        _check_steps(o, "steps", self.steps, 1, MAX_STEPS)
        for name in ("beta_start", "beta_end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                    math.isfinite(v) and 0.0 < v < 1.0):
                raise ValueError(f"{o}.{name} = {v!r}: out of range, allowed (0, 1)")
        if self.beta_end < self.beta_start:
            raise ValueError(f"{o}.beta_end = {self.beta_end!r}: must be >= beta_start = "
                             f"{self.beta_start!r}, allowed [{self.beta_start}, 1)")
        betas = torch.linspace(float(self.beta_start), float(self.beta_end), self.steps,
                               dtype=torch.float64)
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, 0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        beta_tilde = betas * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        beta_tilde[0] = 0.0
        s = object.__setattr__
        s(self, "betas", betas)
        s(self, "alphas", alphas)
        s(self, "alpha_bar", alpha_bar)
        s(self, "sqrt_alpha_bar", alpha_bar.sqrt())
        s(self, "sqrt_one_minus_alpha_bar", (1.0 - alpha_bar).sqrt())
        s(self, "c1", 1.0 / alphas.sqrt())
        s(self, "c2", betas / (1.0 - alpha_bar).sqrt())
        s(self, "sigma", beta_tilde.sqrt())

    # -- helpers --------------------------------------------------------------------------------
    def check_t(self, t: torch.Tensor, owner: str = "DDPMSchedule") -> torch.Tensor:
        """``t`` as an int64 tensor, every entry in [0, steps − 1]."""
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"{owner}.t: dtype {t.dtype}, must be an integer tensor")
        t = t.to(torch.int64)
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.steps):
            raise ValueError(f"{owner}.t: values in [{int(t.min())}, {int(t.max())}], allowed "
                             f"[0, {self.steps - 1}]")
        return t

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Forward noising ``x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·eps`` (``t`` (N,) int64), in
        ``x0``'s dtype."""
        t = self.check_t(t, "DDPMSchedule.q_sample")
        shape = (-1,) + (1,) * (x0.dim() - 1)
        a = self.sqrt_alpha_bar[t].to(x0.dtype).reshape(shape)
        b = self.sqrt_one_minus_alpha_bar[t].to(x0.dtype).reshape(shape)
        return a * x0 + b * eps

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`q_sample` for a given ``eps``."""
        t = self.check_t(t, "DDPMSchedule.predict_x0")
        shape = (-1,) + (1,) * (xt.dim() - 1)
        a = self.sqrt_alpha_bar[t].to(xt.dtype).reshape(shape)
        b = self.sqrt_one_minus_alpha_bar[t].to(xt.dtype).reshape(shape)
        return (xt - b * eps) / a

    def ddim_timesteps(self, n: int) -> list[int]:
        """``n`` distinct steps for DDIM in sampling order (descending): evenly spaced over
        [0, steps − 1], the first ``steps − 1`` and the last 0 (n = 1 gives ``[steps − 1]``)."""
        _check_steps("DDPMSchedule.ddim_timesteps", "n", n, 1, self.steps)
        if n == 1:
            return [self.steps - 1]
        ts = [int(math.floor(i * (self.steps - 1) / (n - 1) + 0.5)) for i in range(n)]
        return ts[::-1]

    @classmethod
    def scaled(cls, steps: int) -> "DDPMSchedule":
        """Ho et al.'s β range rescaled to ``steps``: β from 1e-4·1000/T to 0.02·1000/T
        (T ≥ 21, so that β < 1)."""
        _check_steps("DDPMSchedule.scaled", "steps", steps, 21, MAX_STEPS)
        k = 1000.0 / steps
        return cls(steps, 1e-4 * k, 0.02 * k)

    def to_dict(self) -> dict:
        """The constructor arguments (for checkpoints)."""
        return {"steps": self.steps, "beta_start": float(self.beta_start),
                "beta_end": float(self.beta_end)}


__all__ = ["DDPMSchedule", "MAX_STEPS"]
