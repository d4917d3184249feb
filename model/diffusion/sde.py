"""The variance-preserving SDE (VP-SDE) of score-based diffusion (Song et al. 2021, arXiv
2011.13456) in the two configurations the project uses.

Forward process, linear β::

    dx = f(x, t) dt + g(t) dW,    f(x, t) = −½·β(t)·x,    g(t) = √β(t),
    β(t) = β_min + t·(β_max − β_min),   t ∈ [0, 1]

Its marginal given x_0 is Gaussian, ``x_t = m(t)·x_0 + σ(t)·z`` with::

    log m(t) = −¼·t²·(β_max − β_min) − ½·t·β_min,     σ(t) = √(1 − m(t)²)

Score parameterisation (Yang et al.'s reference code, ``unconditional/my_sde.py``, ``loss_fn``):
the network outputs the score s(x, t) ≈ ∇ log p_t(x) directly and is trained by denoising score
matching ``‖s(x_t, t)·σ(t) + z‖²`` (the λ(t) = σ² weighting); ε̂ = −σ(t)·s and s = −ε̂/σ(t)
(:meth:`VPSDE.eps_to_score`, :meth:`VPSDE.score_to_eps`).

Reverse-time samplers use ``dx = [f − g²·s] dt + g dW̄`` (Euler–Maruyama) or the probability-flow
ODE ``dx/dt = f − ½·g²·s``, integrated from t = 1 to t = t_eps, starting from N(0, I).

**β scaled at sampling.** Yang et al.'s notebooks train with one β and sample with β multiplied
by a constant (``unconditional/HDPM copy.ipynb``: ``scale = 2``; ``conditional/HDPM.ipynb``:
``scale = 1.5``). :attr:`VPSDE.sample_beta_scale` holds that factor: :meth:`VPSDE.beta`,
:meth:`VPSDE.f` and :meth:`VPSDE.g` take ``sampling=True`` to apply it (or use
:meth:`VPSDE.for_sampling`); :meth:`VPSDE.marginal` (training) never does.

The two configurations:

* :data:`VPSDE_REFERENCE` — the reference code's: β 0.001 → 0.5 (``HDPM copy.ipynb``:
  ``beta_min = 0.001``, ``beta_max = 0.5``), β doubled at sampling, start N(0, I). At t = 1 this
  forward process has only reached σ(1) ≈ 0.47 (m(1) ≈ 0.88): the start N(0, I) is *not* its
  marginal; the doubled β at sampling partly makes up for it. t_eps = 1e-4, the reference
  sampler's end time (``my_sde.py``, ``sample``: ``eps = 1e-4``; its training draws
  t ∈ [1e-5, 1], a difference of 0.009 % of the t range that is ignored here).
* :data:`VPSDE_DEFAULT` — β 0.1 → 20 (Song et al.'s VP-SDE), m(1) = 0.0066, σ(1) = 1 − 2.2e-5:
  the forward process reaches N(0, I) at t = 1, so the sampler's start is on its marginal; β is
  not scaled at sampling; t_eps = 1e-3 (Song et al.'s choice for the VP-SDE). With this β a
  probability-flow sample moves by about δ / m(1) ≈ 150·δ for a score error δ near t = 1, so the
  14-unit net needs the x0-preconditioned output (``ScoreMLP(precond_beta=...)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def _check_float(owner: str, name: str, v, lo: float, hi: float, *, lo_open=False) -> float:
    ok = (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
          and (lo < v if lo_open else lo <= v) and v <= hi)
    if not ok:
        br = "(" if lo_open else "["
        raise ValueError(f"{owner}.{name} = {v!r}: out of range, allowed {br}{lo}, {hi}]")
    return float(v)


@dataclass(frozen=True)
class VPSDE:
    """Linear-β VP-SDE on t ∈ [0, 1] (module docstring).

    Parameters
    ----------
    beta_min, beta_max:
        β(0) and β(1), ``0 < beta_min <= beta_max <= 100``.
    sample_beta_scale:
        Factor on β used by the samplers (``sampling=True``), in (0, 10]; 1 = none.
    t_eps:
        Smallest time: training draws t ∈ [t_eps, 1], samplers stop at t_eps; in (0, 0.1].
    """

    beta_min: float
    beta_max: float
    sample_beta_scale: float = 1.0
    t_eps: float = 1e-3

    def __post_init__(self):
        o = "VPSDE"
        _check_float(o, "beta_min", self.beta_min, 0.0, 100.0, lo_open=True)
        _check_float(o, "beta_max", self.beta_max, 0.0, 100.0, lo_open=True)
        if self.beta_max < self.beta_min:
            raise ValueError(f"{o}.beta_max = {self.beta_max!r}: must be >= beta_min = "
                             f"{self.beta_min!r}, allowed [{self.beta_min}, 100]")
        _check_float(o, "sample_beta_scale", self.sample_beta_scale, 0.0, 10.0, lo_open=True)
        _check_float(o, "t_eps", self.t_eps, 0.0, 0.1, lo_open=True)

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _t(t, owner: str) -> torch.Tensor:
        """``t`` as a float tensor (a Python number becomes a 0-d float64 tensor), in [0, 1]."""
        if isinstance(t, bool):
            raise ValueError(f"VPSDE.{owner}.t = {t!r}: must be a number or a float tensor")
        if isinstance(t, (int, float)):
            t = torch.tensor(float(t), dtype=torch.float64)
        elif not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point:
            raise ValueError(f"VPSDE.{owner}.t: {type(t).__name__}"
                             f"{'' if not isinstance(t, torch.Tensor) else ' ' + str(t.dtype)}"
                             f", must be a number or a float tensor")
        if t.numel() and not (bool(torch.isfinite(t).all()) and float(t.min()) >= 0.0
                              and float(t.max()) <= 1.0):
            raise ValueError(f"VPSDE.{owner}.t: values in [{float(t.min())}, {float(t.max())}], "
                             f"allowed [0, 1]")
        return t

    @staticmethod
    def _col(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Coefficient ``c`` (0-d or (N,)) shaped to broadcast against ``x`` (N, …)."""
        c = c.to(x.dtype)
        if c.dim() == 0:
            return c
        return c.reshape((-1,) + (1,) * (x.dim() - 1))

    def _scale(self, sampling: bool) -> float:
        if not isinstance(sampling, bool):
            raise ValueError(f"VPSDE.sampling = {sampling!r}: must be True or False")
        return self.sample_beta_scale if sampling else 1.0

    # -- the SDE --------------------------------------------------------------------------------
    def beta(self, t, sampling: bool = False) -> torch.Tensor:
        """β(t) (times :attr:`sample_beta_scale` if ``sampling``), same shape as ``t``."""
        t = self._t(t, "beta")
        return self._scale(sampling) * (self.beta_min + t * (self.beta_max - self.beta_min))

    def f(self, x: torch.Tensor, t, sampling: bool = False) -> torch.Tensor:
        """Drift ``−½·β(t)·x``; ``t`` a number, 0-d or (N,) tensor."""
        return -0.5 * self._col(self.beta(t, sampling), x) * x

    def g(self, t, sampling: bool = False) -> torch.Tensor:
        """Diffusion coefficient ``√β(t)``, same shape as ``t``."""
        return self.beta(t, sampling).sqrt()

    def log_mean_coeff(self, t) -> torch.Tensor:
        """``log m(t) = −¼·t²·(β_max − β_min) − ½·t·β_min`` (training β)."""
        t = self._t(t, "log_mean_coeff")
        return -0.25 * t * t * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def marginal(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """``(m(t), σ(t))`` of the forward process with the training β: x_t = m·x_0 + σ·z."""
        lm = self.log_mean_coeff(t)
        # 1 − exp(2·lm) via expm1: accurate for small t, where σ ≈ √(β_min·t).
        return lm.exp(), (-torch.expm1(2.0 * lm)).sqrt()

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``x_t = m(t)·x0 + σ(t)·z`` for per-sample times ``t`` (N,)."""
        m, s = self.marginal(t)
        return self._col(m, x0) * x0 + self._col(s, x0) * z

    def for_sampling(self) -> "VPSDE":
        """The SDE the samplers integrate: β scaled by :attr:`sample_beta_scale`, scale 1."""
        return VPSDE(self.beta_min * self.sample_beta_scale,
                     self.beta_max * self.sample_beta_scale, 1.0, self.t_eps)

    # -- score <-> noise ------------------------------------------------------------------------
    def score_to_eps(self, score: torch.Tensor, t) -> torch.Tensor:
        """ε̂ = −σ(t)·s (training marginal)."""
        return -self._col(self.marginal(t)[1], score) * score

    def eps_to_score(self, eps: torch.Tensor, t) -> torch.Tensor:
        """s = −ε̂ / σ(t) (training marginal; t > 0)."""
        return -eps / self._col(self.marginal(t)[1], eps)


#: Yang et al.'s reference code (module docstring): β 0.001 → 0.5, doubled at sampling.
VPSDE_REFERENCE = VPSDE(beta_min=0.001, beta_max=0.5, sample_beta_scale=2.0, t_eps=1e-4)
#: Song et al.'s VP-SDE: β 0.1 → 20, the forward process reaches N(0, I) at t = 1.
VPSDE_DEFAULT = VPSDE(beta_min=0.1, beta_max=20.0, sample_beta_scale=1.0, t_eps=1e-3)

#: Names the command line and the checkpoints use.
SDES = {"reference": VPSDE_REFERENCE, "default": VPSDE_DEFAULT}


def get_sde(name: str) -> VPSDE:
    """:data:`SDES` entry by name."""
    if name not in SDES:
        raise ValueError(f"sde = {name!r}: unknown, allowed {tuple(SDES)}")
    return SDES[name]


__all__ = ["SDES", "VPSDE", "VPSDE_DEFAULT", "VPSDE_REFERENCE", "get_sde"]
