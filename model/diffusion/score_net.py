"""The score network of Yang et al. (arXiv 2404.05648; reference code
``unconditional/my_sde.py`` ``MLP``/``MLP_noise`` and ``conditional/models.py`` ``MLP_c``):
a 2 → 14 → 14 → 2 ReLU MLP whose time enters as fixed Gaussian-Fourier features *added to the
hidden pre-activations*::

    h1 = relu(lin1(x) + φ(t) + e(y))
    h2 = relu(lin2(h1) + φ(t) + e(y))
    s  = amp · lin3(h2)

    φ(t) = [sin(2π·t·w_1) … sin(2π·t·w_7), cos(2π·t·w_1) … cos(2π·t·w_7)],  w_k ~ N(0, scale²)

φ has the hidden width (7 frequencies, sin and cos, for 14 units), drawn once from the net's seed
and never trained (reference ``TimeEncoding``: ``requires_grad=False``, scale 1). The same φ(t)
goes to both hidden layers. ``amp`` = 5 (reference ``NN_amp = 5``) lets small weights reach the
large scores near t = 0.

Class conditioning (for classifier-free guidance, Ho & Salimans 2022): e(y) is a learned table of
one hidden-width vector per class, added like φ. The reference computes it with a small MLP on the
one-hot label (``EmbedFC``), which on one-hot inputs is exactly such a table; the "no class" label
is ``y = classes`` and its row is fixed at zero — the reference drops a label by multiplying its
embedding by 0 (``MLP_c.forward``, ``masked=True``). (The reference's sampler then uses class 0 as
"unconditional"; here the zero row is used at sampling too, as trained.)

For the hardware, φ(t) + e(y) is a per-step bias: ``lin(x) + φ + e = W·x + (b + φ + e)``, fed to
the crossbar by DACs (the paper's 14 time-embedding inputs). ``lin1``, ``lin2`` and ``lin3`` are
plain ``nn.Linear`` so ``model.nn.convert(net, mode, spec)`` puts the three of them on crossbar
tiles (they are not in an ``nn.Sequential``, so the ReLUs stay separate and float).

Optional x0 preconditioning (``precond_beta = (β_min, β_max)``, off by default; not in the
paper): the last layer predicts the clean point, ``D = amp · lin3(h2)``, and the output is the
score of the VP-SDE with those β, ``s = (m(t)·D − x) / σ(t)²``. With the paper's direct score
output, an error δ in s at t ≈ 1 moves a probability-flow sample by about δ / m(1) at t = 0 —
×150 for β 0.1 → 20 (m(1) = 0.0066), ×1.1 for the reference's β 0.001 → 0.5 — which a 14-unit
net cannot afford; with D the error enters multiplied by m/σ², which cancels that growth. In
hardware, m/σ² and 1/σ² are two more time-dependent gains (DAC-held, like f and g²).

Guided score (:meth:`ScoreMLP.guided`): ``(1 + w)·s(x, t, y) − w·s(x, t, ∅)``, w ∈
[0, :data:`MAX_GUIDANCE`] (reference ``conditional/my_sde.py``, ``r_sde``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Largest classifier-free guidance weight accepted (ASSUMED: beyond ~10 the guided score of a
#: 14-unit net only overshoots; the reference runs w = 0).
MAX_GUIDANCE = 10.0


def _check_int(owner, name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{owner}.{name} = {v!r}: out of range, allowed integer [{lo}, {hi}]")
    return v


def _check_float(owner, name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
            math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{owner}.{name} = {v!r}: out of range, allowed [{lo}, {hi}]")
    return float(v)


def check_guidance(w, owner: str = "guidance") -> float:
    """``w`` as a float in [0, :data:`MAX_GUIDANCE`], else a ``ValueError``."""
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not (
            math.isfinite(w) and 0.0 <= w <= MAX_GUIDANCE):
        raise ValueError(f"{owner} = {w!r}: guidance weight out of range, allowed "
                         f"[0, {MAX_GUIDANCE}]")
    return float(w)


class ScoreMLP(nn.Module):
    """s(x, t[, y]) ≈ ∇ log p_t(x) (module docstring).

    Parameters
    ----------
    classes:
        ``None`` for an unconditional net, else the number of classes (1 … 1000); labels are
        0 … classes − 1, and ``classes`` itself means "no class".
    dim:
        Data dimension (2 for the 2-D sets).
    hidden:
        Hidden width, even (14 in the paper: 7 Fourier frequencies).
    amp:
        Output scale (reference 5).
    fourier_scale:
        Standard deviation of the Fourier frequencies w_k (reference 1).
    seed:
        Seeds the weight initialisation and the frequencies: same seed, same net, bit for bit.
    precond_beta:
        ``None`` (the paper's direct score output) or ``(β_min, β_max)`` of the VP-SDE whose score
        the x0-preconditioned output gives (module docstring).

    Attributes
    ----------
    lin1, lin2, lin3:
        The three ``nn.Linear`` layers (crossbar layers after ``model.nn.convert``).
    act1, act2:
        The hidden ReLUs (separate modules: forward hooks can read the activations).
    freqs:
        Buffer (hidden / 2,): the Fourier frequencies.
    class_emb:
        ``nn.Embedding(classes + 1, hidden)`` with row ``classes`` fixed at zero, or ``None``.
    init_kwargs:
        The constructor arguments (checkpoints rebuild the net from them).
    """

    def __init__(self, classes: int | None = None, dim: int = 2, hidden: int = 14,
                 amp: float = 5.0, fourier_scale: float = 1.0, seed: int = 0,
                 precond_beta=None):
        super().__init__()
        o = "ScoreMLP"
        if classes is not None:
            _check_int(o, "classes", classes, 1, 1000)
        _check_int(o, "dim", dim, 1, 1 << 16)
        _check_int(o, "hidden", hidden, 2, 4096)
        if hidden % 2:
            raise ValueError(f"{o}.hidden = {hidden}: must be even (sin and cos features), "
                             f"allowed 2, 4, ... 4096")
        _check_float(o, "amp", amp, 1e-6, 1e6)
        _check_float(o, "fourier_scale", fourier_scale, 0.0, 1e4)
        _check_int(o, "seed", seed, 0, 2**63 - 1)
        self.classes, self.dim, self.hidden = classes, dim, hidden
        self.amp = float(amp)
        self.precond = None
        if precond_beta is not None:
            from model.diffusion.sde import VPSDE
            if not isinstance(precond_beta, (tuple, list)) or len(precond_beta) != 2:
                raise ValueError(f"{o}.precond_beta = {precond_beta!r}: must be None or a "
                                 f"(beta_min, beta_max) pair")
            self.precond = VPSDE(float(precond_beta[0]), float(precond_beta[1]))
            precond_beta = [self.precond.beta_min, self.precond.beta_max]
        self.init_kwargs = dict(classes=classes, dim=dim, hidden=hidden, amp=float(amp),
                                fourier_scale=float(fourier_scale), seed=seed,
                                precond_beta=precond_beta)
        # Initialise from the seed without touching (or depending on) the global RNG state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.lin1 = nn.Linear(dim, hidden)
            self.lin2 = nn.Linear(hidden, hidden)
            self.lin3 = nn.Linear(hidden, dim)
            self.class_emb = (nn.Embedding(classes + 1, hidden, padding_idx=classes)
                              if classes is not None else None)
        self.act1, self.act2 = nn.ReLU(), nn.ReLU()
        g = torch.Generator().manual_seed(seed ^ 0x5EED_F0F1)
        self.register_buffer("freqs", torch.randn(hidden // 2, generator=g) * fourier_scale)

    # -- pieces ---------------------------------------------------------------------------------
    def time_features(self, t) -> torch.Tensor:
        """φ(t): (N, hidden) for ``t`` (N,) (or a number / 0-d tensor: (1, hidden))."""
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        arg = (2.0 * math.pi) * t[:, None] * self.freqs[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=1)

    def null_labels(self, n: int) -> torch.Tensor:
        """``n`` "no class" labels (conditional nets only)."""
        if self.classes is None:
            raise ValueError("ScoreMLP.null_labels: the net is unconditional (classes = None)")
        return torch.full((n,), self.classes, dtype=torch.int64)

    def _labels(self, y, n: int) -> torch.Tensor | None:
        if self.classes is None:
            if y is not None:
                raise ValueError("ScoreMLP.y: given to an unconditional net (classes = None); "
                                 "pass y = None")
            return None
        if y is None:
            return self.null_labels(n)
        y = torch.as_tensor(y)
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"ScoreMLP.y: dtype {y.dtype}, must be an integer tensor")
        y = y.to(torch.int64).reshape(-1)
        if y.numel() == 1 and n != 1:
            y = y.expand(n)
        if y.numel() != n:
            raise ValueError(f"ScoreMLP.y: {y.numel()} labels for {n} samples, must match")
        if n and (int(y.min()) < 0 or int(y.max()) > self.classes):
            raise ValueError(f"ScoreMLP.y: values in [{int(y.min())}, {int(y.max())}], allowed "
                             f"[0, {self.classes}] ({self.classes} = no class)")
        return y

    def conditioning(self, t, y=None, n: int | None = None) -> torch.Tensor:
        """φ(t) + e(y): the per-sample term added to both hidden pre-activations, (N, hidden)."""
        c = self.time_features(t)
        if n is not None and c.shape[0] == 1 and n != 1:
            c = c.expand(n, -1)
        y = self._labels(y, c.shape[0])
        if y is not None:
            c = c + self.class_emb(y)
        return c

    # -- forward --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        """Score s(x, t, y): ``x`` (N, dim), ``t`` (N,) float in [0, 1] or a number, ``y`` (N,)
        int64 labels (``classes`` = no class; ``None`` = no class for a conditional net)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"ScoreMLP.x: shape {tuple(getattr(x, 'shape', ()))}, must be "
                             f"(N, {self.dim})")
        n = x.shape[0]
        c = self.conditioning(t, y, n)
        if c.shape[0] != n:
            raise ValueError(f"ScoreMLP.t: {c.shape[0]} times for {n} samples, must match (or "
                             f"be one number)")
        h = self.act1(self.lin1(x) + c)
        h = self.act2(self.lin2(h) + c)
        out = self.amp * self.lin3(h)
        if self.precond is None:
            return out
        tt = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        m, sd = self.precond.marginal(tt.expand(n) if tt.numel() == 1 else tt)
        return (m[:, None] * out - x) / sd[:, None].square()

    def guided(self, x: torch.Tensor, t, y, guidance: float) -> torch.Tensor:
        """Classifier-free guided score ``(1 + w)·s(x, t, y) − w·s(x, t, ∅)`` (one batched pass
        of 2N rows); w = 0 is the plain conditional score. Conditional nets only."""
        w = check_guidance(guidance, "ScoreMLP.guided.guidance")
        if self.classes is None:
            raise ValueError("ScoreMLP.guided: the net is unconditional (classes = None); "
                             "guidance needs a class-conditional net")
        n = x.shape[0]
        y = self._labels(y, n)
        if w == 0.0:
            return self(x, t, y)
        tt = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        tt = tt.expand(n) if tt.numel() == 1 else tt
        s = self(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, self.null_labels(n)]))
        return (1.0 + w) * s[:n] - w * s[n:]


__all__ = ["MAX_GUIDANCE", "ScoreMLP", "check_guidance"]
