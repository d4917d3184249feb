"""Samplers: DDPM ancestral, DDIM, Euler–Maruyama on the reverse SDE, Euler / Heun on the
probability-flow ODE, and the time-continuous analog integrator (:mod:`model.diffusion.integrator`).

One entry point, :func:`sample`; the noise source (:mod:`model.diffusion.noise`), the compute mode
of the network (:func:`with_compute`) and the sampler are independent arguments.

Conventions
-----------
* ``model`` is called ``model(x, t)`` (``model(x, t, y)`` when ``y`` is given): for ``ddpm`` /
  ``ddim`` an ε-network on integer steps ``t`` (N,) int64 (:class:`~model.diffusion.nets.EpsMLP`);
  for the SDE samplers a network on float times ``t`` (N,) in [t_eps, 1] that outputs the score
  (``parameterization="score"``, :class:`~model.diffusion.score_net.ScoreMLP`, Yang et al.'s
  convention) or ε (``"eps"``: s = −ε/σ(t) with the training marginal's σ).
* Classifier-free guidance (Ho & Salimans 2022; Yang et al.'s ``r_sde``):
  ``out = (1 + w)·model(x, t, y) − w·model(x, t, ∅)`` with ∅ the label ``model.classes`` ("no
  class"), one batched pass of 2N rows; w in [0, :data:`MAX_GUIDANCE`]; w > 0 needs ``y`` and a
  class-conditional model (``model.classes`` not None).
* Noise is drawn in this order, always as ``noise.normal((n, *shape))``: the start x_T, then one
  draw per step that adds noise (DDPM: steps T−1 … 1; DDIM with eta > 0: every step but the last;
  Euler–Maruyama: every step but the last, whose noise-free mean is returned as in the reference
  code; the ODE samplers: none; analog: one per DAC refresh interval with process "sde"). So a
  source with the same seed gives the same run.
* The SDE samplers integrate the *sampling* SDE (``sde.for_sampling()``: β times
  ``sample_beta_scale``) from t = 1 to t_eps on an even grid of ``steps`` intervals, starting from
  N(0, I); the network is queried at the same t.

Update rules (``h`` = t_i − t_{i+1} > 0, ``z`` ~ noise)::

    ddpm       x_{t−1} = c1[t]·(x_t − c2[t]·ε̂) + sigma[t]·z            (z = 0 at t = 0)
    ddim       x̂0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t
               x_prev = √ᾱ_prev·x̂0 + √(1−ᾱ_prev−σ²)·ε̂ + σ·z,
               σ = eta·√((1−ᾱ_prev)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_prev)            (ᾱ_prev = 1 after step 0)
    em         x ← x − (f − g²·s)·h + g·√h·z
    ode-euler  x ← x − (f − ½g²·s)·h
    ode-heun   d1 = F(x, t_i); x' = x − d1·h; d2 = F(x', t_{i+1}); x ← x − ½(d1 + d2)·h
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from model.diffusion.noise import NoiseSource
from model.diffusion.score_net import MAX_GUIDANCE
from model.diffusion.score_net import check_guidance as _check_guidance

__all__ = ["SAMPLERS", "MAX_GUIDANCE", "DEFAULT_STEPS", "sample", "with_compute",
           "calibration_batch", "check_guidance", "Evaluator"]

SAMPLERS = ("ddpm", "ddim", "em", "ode-euler", "ode-heun", "analog")

#: Steps when ``steps`` is None (ddpm: the schedule's T; analog: set by its IntegratorParams).
DEFAULT_STEPS = {"ddim": 50, "em": 1000, "ode-euler": 1000, "ode-heun": 500}

_MAX_STEPS = 1_000_000
_PARAMETERIZATIONS = ("score", "eps")


def _check_int(owner, name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise ValueError(f"{owner}: {name} = {v!r}: must be an integer in [{lo}, {hi}]")
    return int(v)


def _check_float(owner, name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not (
            math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{owner}: {name} = {v!r}: must be a number in [{lo}, {hi}]")
    return float(v)


def check_guidance(w, owner: str = "sample") -> float:
    """``w`` as a float in [0, :data:`MAX_GUIDANCE`] (``score_net.MAX_GUIDANCE``, the one
    bound), else ``ValueError``."""
    if isinstance(w, np.floating):
        w = float(w)
    return _check_guidance(w, f"{owner}: guidance")


def _is_schedule(obj) -> bool:
    return all(hasattr(obj, a) for a in ("c1", "c2", "sigma", "alpha_bar", "steps"))


def _is_sde(obj) -> bool:
    return all(callable(getattr(obj, a, None)) for a in ("f", "g")) and hasattr(obj, "t_eps")


# ------------------------------------------------------------------------------------------------
class Evaluator:
    """The network call of every sampler: labels, guidance, parameterisation.

    ``Evaluator(model, n, y, guidance)(x, t)`` returns the (guided) network output for ``x``
    (n, *shape) at ``t`` (a number: broadcast, or an (n,) tensor). ``calls`` counts model calls
    (one per evaluation, guided or not). For the SDE samplers :meth:`score` converts an ε output.
    """

    def __init__(self, model: nn.Module, n: int, y=None, guidance: float = 0.0,
                 integer_time: bool = False, owner: str = "sample"):
        if not callable(model):
            raise ValueError(f"{owner}: model = {type(model).__name__}: must be a callable "
                             f"network (nn.Module)")
        self.model, self.n, self.integer_time = model, n, integer_time
        self.guidance = check_guidance(guidance, owner)
        classes = getattr(model, "classes", None)
        self.classes = classes
        self.calls = 0
        if y is None:
            if self.guidance != 0.0:
                raise ValueError(f"{owner}: guidance = {self.guidance} needs class labels y "
                                 f"(classifier-free guidance pushes towards a class)")
            self.y = None
            return
        if classes is None:
            raise ValueError(f"{owner}: y given but the model is unconditional "
                             f"(model.classes is None); pass y = None")
        y = torch.as_tensor(y)
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"{owner}: y: dtype {y.dtype}, must be integer labels")
        y = y.to(torch.int64).reshape(-1)
        if y.numel() == 1:
            y = y.expand(n).clone()
        if y.numel() != n:
            raise ValueError(f"{owner}: y has {y.numel()} labels for n = {n} samples; give one "
                             f"label or n labels")
        if n and (int(y.min()) < 0 or int(y.max()) > classes):
            raise ValueError(f"{owner}: y: labels in [{int(y.min())}, {int(y.max())}], allowed "
                             f"[0, {classes}] ({classes} = no class)")
        self.y = y
        self._y2 = torch.cat([y, torch.full((n,), classes, dtype=torch.int64)])

    def times(self, t, rows: int) -> torch.Tensor:
        if isinstance(t, torch.Tensor) and t.dim() == 1:
            return t
        if self.integer_time:
            return torch.full((rows,), int(t), dtype=torch.int64)
        return torch.full((rows,), float(t), dtype=torch.float32)

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        n = x.shape[0]
        self.calls += 1
        tt = self.times(t, n)
        if self.y is None:
            return self.model(x, tt)
        if self.guidance == 0.0:
            return self.model(x, tt, self.y)
        w = self.guidance
        out = self.model(torch.cat([x, x]), torch.cat([tt, tt]), self._y2)
        return (1.0 + w) * out[:n] - w * out[n:]


def _score_fn(ev: Evaluator, train_sde, parameterization: str):
    if parameterization == "score":
        return ev

    def score(x, t):
        eps = ev(x, t)
        _, std = train_sde.marginal(float(t) if not isinstance(t, torch.Tensor) else t)
        return -eps / torch.as_tensor(std, dtype=eps.dtype)
    return score


# ------------------------------------------------------------------------------------------------
def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, unit="step")


def _sample_shape(model, options, owner) -> tuple[int, ...]:
    shape = options.pop("shape", None)
    if shape is None:
        dim = getattr(model, "dim", None)
        if dim is None:
            raise ValueError(f"{owner}: the sample shape is unknown (model has no .dim); pass "
                             f"shape=(d,)")
        shape = (int(dim),)
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1
                        for s in shape):
        raise ValueError(f"{owner}: shape = {shape!r}: must be a tuple of positive integers")
    return tuple(int(s) for s in shape)


def _ddpm(ev, sched, noise, n, shape, steps, progress, options):
    """Ancestral DDPM: all T steps of the schedule, or ``steps`` < T on the respaced grid of
    :meth:`DDPMSchedule.ddim_timesteps` (the ancestral step from t to the next grid point s:
    ``a = ᾱ_t/ᾱ_s``, ``c1 = 1/√a``, ``c2 = (1 − a)/√(1 − ᾱ_t)``,
    ``σ² = (1 − a)(1 − ᾱ_s)/(1 − ᾱ_t)``; the hardware mode's strided DDPM tables,
    ``model.diffusion.hardware.float_coefficients``, use the same formulas)."""
    if options:
        raise ValueError(f"sample('ddpm'): unknown options {sorted(options)}: ddpm takes none")
    T = int(sched.steps)
    if steps is None or steps == T:
        ts = list(range(T - 1, -1, -1))
        c1, c2, sg = (torch.as_tensor(v, dtype=torch.float64)[ts].tolist()
                      for v in (sched.c1, sched.c2, sched.sigma))
    elif 1 <= steps < T:
        ts = [int(t) for t in sched.ddim_timesteps(steps)]
        ab = torch.as_tensor(sched.alpha_bar, dtype=torch.float64).tolist()
        c1, c2, sg = [], [], []
        for i, t in enumerate(ts):
            a_s = ab[ts[i + 1]] if i + 1 < len(ts) else 1.0
            a = ab[t] / a_s
            c1.append(1.0 / math.sqrt(a))
            c2.append((1.0 - a) / math.sqrt(1.0 - ab[t]))
            sg.append(math.sqrt(max(0.0, (1.0 - a) * (1.0 - a_s) / (1.0 - ab[t]))))
    else:
        raise ValueError(f"sample('ddpm'): steps = {steps}: out of range, allowed [1, {T}] "
                         f"(the schedule's T)")
    x = noise.normal((n,) + shape)
    with _progress(len(ts), "ddpm", progress) as bar:
        for i, t in enumerate(ts):
            eps = ev(x, t)
            x = c1[i] * (x - c2[i] * eps)
            if i + 1 < len(ts):             # no noise after the last step (t = 0 on the grid)
                x = x + sg[i] * noise.normal((n,) + shape)
            bar.update()
    return x


def _ddim(ev, sched, noise, n, shape, steps, progress, options):
    eta = _check_float("sample('ddim')", "eta", options.pop("eta", 0.0), 0.0, 1.0)
    clip = options.pop("clip_x0", None)
    if clip is not None:
        clip = _check_float("sample('ddim')", "clip_x0", clip, 1e-6, 1e6)
    if options:
        raise ValueError(f"sample('ddim'): unknown options {sorted(options)}: allowed "
                         f"['eta', 'clip_x0', 'shape']")
    T = int(sched.steps)
    if steps > T:
        raise ValueError(f"sample('ddim'): steps = {steps}: out of range, allowed [1, {T}] "
                         f"(the schedule's T)")
    ts = sorted((int(t) for t in sched.ddim_timesteps(steps)), reverse=True)
    ab = torch.as_tensor(sched.alpha_bar, dtype=torch.float64)
    x = noise.normal((n,) + shape)
    with _progress(len(ts), "ddim", progress) as bar:
        for i, t in enumerate(ts):
            a_t = float(ab[t])
            a_p = float(ab[ts[i + 1]]) if i + 1 < len(ts) else 1.0
            eps = ev(x, t)
            x0 = (x - math.sqrt(1.0 - a_t) * eps) / math.sqrt(a_t)
            if clip is not None:
                x0 = x0.clamp(-clip, clip)
            sig = 0.0
            if eta > 0.0 and i + 1 < len(ts):
                sig = eta * math.sqrt((1.0 - a_p) / (1.0 - a_t)) * math.sqrt(1.0 - a_t / a_p)
            x = math.sqrt(a_p) * x0 + math.sqrt(max(0.0, 1.0 - a_p - sig * sig)) * eps
            if sig > 0.0:
                x = x + sig * noise.normal((n,) + shape)
            bar.update()
    return x


def _sde_setup(kind, sde, options):
    owner = f"sample({kind!r})"
    par = options.pop("parameterization", "score")
    if par not in _PARAMETERIZATIONS:
        raise ValueError(f"{owner}: parameterization = {par!r}: must be one of "
                         f"{_PARAMETERIZATIONS}")
    t_end = options.pop("t_end", None)
    t_end = float(sde.t_eps) if t_end is None else _check_float(owner, "t_end", t_end,
                                                                1e-8, 0.5)
    samp = sde.for_sampling() if hasattr(sde, "for_sampling") else sde
    return par, t_end, samp


def _sde_solve(kind, ev, sde, noise, n, shape, steps, progress, options):
    owner = f"sample({kind!r})"
    par, t_end, samp = _sde_setup(kind, sde, options)
    if options:
        raise ValueError(f"{owner}: unknown options {sorted(options)}: allowed "
                         f"['parameterization', 't_end', 'shape']")
    score = _score_fn(ev, sde, par)
    ts = np.linspace(1.0, t_end, steps + 1)
    half = 0.5 if kind != "em" else 1.0

    def drift(x, t):
        g2 = float(samp.g(float(t))) ** 2
        return samp.f(x, float(t)) - (half * g2) * score(x, float(t))

    x = noise.normal((n,) + shape)
    with _progress(steps, kind, progress) as bar:
        for i in range(steps):
            t, h = ts[i], ts[i] - ts[i + 1]
            d1 = drift(x, t)
            if kind == "ode-heun":
                xp = x - d1 * h
                x = x - 0.5 * (d1 + drift(xp, ts[i + 1])) * h
            else:
                x = x - d1 * h
            if kind == "em" and i + 1 < steps:
                x = x + float(samp.g(float(t))) * math.sqrt(h) * noise.normal((n,) + shape)
            bar.update()
    return x


def sample(kind: str, model, schedule_or_sde, noise: NoiseSource, n: int, *, steps=None,
           y=None, guidance: float = 0.0, progress: bool = True, **options) -> torch.Tensor:
    """Draw ``n`` samples (tensor ``(n, *shape)``, float32) with sampler ``kind``.

    Parameters
    ----------
    kind : str
        One of :data:`SAMPLERS`.
    model : nn.Module
        The network (module docstring); put it in a compute mode with :func:`with_compute`.
    schedule_or_sde :
        A ``DDPMSchedule`` for ``ddpm`` / ``ddim``; a ``VPSDE`` for the others.
    noise : NoiseSource
        From :func:`model.diffusion.noise.make_noise`.
    n : int
        Number of samples, [1, 10**7].
    steps : int, optional
        Sampler steps (default :data:`DEFAULT_STEPS`; ddpm: the schedule's T, nothing else
        allowed; analog: not allowed — its grid comes from the integrator parameters).
    y : int or tensor, optional
        Class labels (one for all, or n) for a class-conditional model.
    guidance : float
        Classifier-free guidance weight, [0, :data:`MAX_GUIDANCE`].
    progress : bool
        tqdm progress bar.
    **options
        ``shape`` (per-sample shape, default ``(model.dim,)``); ddim: ``eta`` (0), ``clip_x0``;
        em / ode-*: ``parameterization`` ("score" | "eps"), ``t_end`` (default ``sde.t_eps``);
        analog: ``params`` (:class:`~model.diffusion.integrator.IntegratorParams`) or its fields,
        ``process`` ("sde" | "ode"), ``parameterization``, ``t_end``.
    """
    if kind not in SAMPLERS:
        raise ValueError(f"sample: kind = {kind!r}: must be one of {SAMPLERS}")
    owner = f"sample({kind!r})"
    if not isinstance(noise, NoiseSource):
        raise ValueError(f"{owner}: noise = {noise!r}: must be a NoiseSource "
                         f"(model.diffusion.noise.make_noise)")
    n = _check_int(owner, "n", n, 1, 10**7)
    if not isinstance(progress, bool):
        raise ValueError(f"{owner}: progress = {progress!r}: must be True or False")
    if kind in ("ddpm", "ddim"):
        if not _is_schedule(schedule_or_sde):
            raise ValueError(f"{owner}: schedule_or_sde = {type(schedule_or_sde).__name__}: "
                             f"{kind} needs a DDPMSchedule (c1, c2, sigma, alpha_bar)")
    elif not _is_sde(schedule_or_sde):
        raise ValueError(f"{owner}: schedule_or_sde = {type(schedule_or_sde).__name__}: "
                         f"{kind} needs a VPSDE (f, g, t_eps); DDPM schedules go with "
                         f"'ddpm' / 'ddim'")
    if steps is not None:
        if kind == "analog":
            raise ValueError(f"{owner}: steps = {steps!r}: the analog integrator's time grid "
                             f"comes from its parameters (tau_us, refresh_mhz, dt_ns); pass "
                             f"steps=None")
        steps = _check_int(owner, "steps", steps, 1, _MAX_STEPS)
    elif kind in DEFAULT_STEPS:
        steps = DEFAULT_STEPS[kind]
    shape = _sample_shape(model, options, owner)
    ev = Evaluator(model, n, y, guidance, integer_time=kind in ("ddpm", "ddim"), owner=owner)
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            if kind == "ddpm":
                x = _ddpm(ev, schedule_or_sde, noise, n, shape, steps, progress, options)
            elif kind == "ddim":
                x = _ddim(ev, schedule_or_sde, noise, n, shape, steps, progress, options)
            elif kind == "analog":
                from model.diffusion.integrator import integrate
                x = integrate(ev, schedule_or_sde, noise, n, shape=shape, progress=progress,
                              **options)
            else:
                x = _sde_solve(kind, ev, schedule_or_sde, noise, n, shape, steps, progress,
                               options)
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    return x.to(torch.float32)


# ------------------------------------------------------------------------------------------------
class _Packed(nn.Module):
    """``net`` called on one packed tensor ``[x | t | y]`` (what ``model.nn.calibrate`` feeds)."""

    def __init__(self, net: nn.Module, dim: int, integer_time: bool, labels: bool):
        super().__init__()
        self.net, self.dim, self.integer_time, self.labels = net, dim, integer_time, labels

    def forward(self, z):
        x = z[:, :self.dim]
        t = z[:, self.dim]
        t = t.round().to(torch.int64) if self.integer_time else t
        if self.labels:
            return self.net(x, t, z[:, self.dim + 1].round().to(torch.int64))
        return self.net(x, t)


def with_compute(net: nn.Module, mode: str, spec=None, calib=None) -> nn.Module:
    """A copy of ``net`` whose Linear chain runs in ``mode`` (``model.nn.MODES``: "float",
    "digital" — bit-exact with the layer-engine twin — or "analog" — the analog crossbar model,
    read noise drawn on every call).

    The layers converted are ``net.mlp`` when the net has one (EpsMLP), else every ``nn.Linear``
    of the net (ScoreMLP's lin1..lin3; its ReLUs and the added time/class features stay float).

    Parameters
    ----------
    net : nn.Module
        Called ``net(x, t)`` or ``net(x, t, y)``; left unchanged.
    mode : str
    spec : model.nn.CrossbarSpec, optional
        Default ``CrossbarSpec()``; its ``analog`` overrides carry the read noise.
    calib : tuple, optional
        ``(x, t)`` or ``(x, t, y)``, a batch of network inputs that sets the scales
        (:func:`calibration_batch` makes one); required for "digital" and "analog".
    """
    from model.nn import MODES, calibrate, convert
    if mode not in MODES:
        raise ValueError(f"with_compute: mode = {mode!r}: must be one of {MODES}")
    if not isinstance(net, nn.Module):
        raise ValueError(f"with_compute: net = {type(net).__name__}: must be an nn.Module")
    if mode != "float" and calib is None:
        raise ValueError(f"with_compute: mode = {mode!r} needs calib = (x, t[, y]), a batch of "
                         f"network inputs that sets the fixed-point scales "
                         f"(samplers.calibration_batch makes one)")
    out = copy.deepcopy(net)
    target = out.mlp if isinstance(getattr(out, "mlp", None), nn.Module) else out
    convert(target, mode, spec, inplace=True)
    if calib is not None:
        if not isinstance(calib, (tuple, list)) or len(calib) not in (2, 3):
            raise ValueError(f"with_compute: calib = {type(calib).__name__}: must be a tuple "
                             f"(x, t) or (x, t, y)")
        x, t = torch.as_tensor(calib[0]), torch.as_tensor(calib[1])
        if x.dim() != 2 or x.shape[0] == 0 or t.shape != (x.shape[0],):
            raise ValueError(f"with_compute: calib: x must be (N, d) with N >= 1 and t (N,), "
                             f"got {tuple(x.shape)} and {tuple(t.shape)}")
        cols = [x.to(torch.float64), t.to(torch.float64)[:, None]]
        if len(calib) == 3:
            cols.append(torch.as_tensor(calib[2]).to(torch.float64).reshape(-1, 1))
        packed = torch.cat(cols, dim=1).to(x.dtype if x.dtype.is_floating_point
                                           else torch.float32)
        wrap = _Packed(out, x.shape[1], not t.dtype.is_floating_point, len(calib) == 3)
        calibrate(wrap, packed)
    return out.eval()


def calibration_batch(schedule_or_sde, x0: torch.Tensor, n: int = 1024, *, seed: int = 0,
                      y=None, classes: int | None = None, prior_fraction: float = 0.1):
    """Network inputs for :func:`with_compute`: ``n`` rows of data ``x0`` (N, d) noised by the
    forward process at random times.

    DDPM schedule: ``(x_t, t)`` with t uniform over the steps. VP-SDE: ``(x_t, t)`` with t uniform
    in [t_eps, 1] from the training marginal, and a ``prior_fraction`` of the rows replaced by
    N(0, I) at t in [0.9, 1] (the samplers start from N(0, I), wider than the reference SDE's
    marginal at t = 1). With labels ``y`` (N,): ``(x_t, t, y_rows)``, each label replaced by the
    "no class" label ``classes`` (default ``max(y) + 1``) with probability 0.1 (both kinds of
    call occur under guidance).
    """
    n = _check_int("calibration_batch", "n", n, 1, 10**7)
    prior_fraction = _check_float("calibration_batch", "prior_fraction", prior_fraction, 0.0, 1.0)
    x0 = torch.as_tensor(x0)
    if x0.dim() != 2 or x0.shape[0] == 0:
        raise ValueError(f"calibration_batch: x0: shape {tuple(x0.shape)}, must be (N, d), N >= 1")
    g = torch.Generator().manual_seed(_check_int("calibration_batch", "seed", seed, 0, 2**63 - 1))
    idx = torch.randint(0, x0.shape[0], (n,), generator=g)
    x = x0[idx].to(torch.float32)
    z = torch.randn(x.shape, generator=g)
    if _is_schedule(schedule_or_sde):
        t = torch.randint(0, int(schedule_or_sde.steps), (n,), generator=g)
        ab = torch.as_tensor(schedule_or_sde.alpha_bar, dtype=torch.float64)[t]
        xt = (ab.sqrt()[:, None] * x + (1 - ab).sqrt()[:, None] * z).to(torch.float32)
    elif _is_sde(schedule_or_sde):
        te = float(schedule_or_sde.t_eps)
        t = te + (1.0 - te) * torch.rand(n, generator=g, dtype=torch.float64)
        m, s = schedule_or_sde.marginal(t)
        xt = (m[:, None] * x + s[:, None] * z).to(torch.float32)
        k = int(round(prior_fraction * n))
        if k:
            xt[:k] = torch.randn((k, x.shape[1]), generator=g)
            t[:k] = 0.9 + 0.1 * torch.rand(k, generator=g, dtype=torch.float64)
        t = t.to(torch.float32)
    else:
        raise ValueError(f"calibration_batch: schedule_or_sde = "
                         f"{type(schedule_or_sde).__name__}: must be a DDPMSchedule or a VPSDE")
    if y is None:
        return xt, t
    y = torch.as_tensor(y).to(torch.int64)
    if y.shape != (x0.shape[0],):
        raise ValueError(f"calibration_batch: y: shape {tuple(y.shape)}, must be "
                         f"({x0.shape[0]},) like x0")
    yr = y[idx].clone()
    drop = torch.rand(n, generator=g) < 0.1
    classes = int(y.max()) + 1 if classes is None else _check_int(
        "calibration_batch", "classes", classes, int(y.max()) + 1, 10**6)
    yr[drop] = classes
    return xt, t, yr
