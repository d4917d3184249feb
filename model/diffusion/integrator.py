"""Emulation of the time-continuous analog solver of Yang et al. (arXiv 2404.05648): an RC
integrator whose input is the reverse-SDE (or probability-flow ODE) drift computed through the
crossbar, closing the loop.

The circuit, as emulated
------------------------
The integrator holds the state x on a capacitor (volts ``v_per_unit_x_V`` per unit of x). With
time constant τ = RC and input F (the drift, in units of x per unit of diffusion time), it obeys
``dx/dt_phys = F/τ``: diffusion time runs backwards with physical time, ``s = 1 − t_phys/τ``, so
the solve from s = 1 to s = t_end takes ``τ·(1 − t_end)``. F is formed from::

    F(x, s) = −[a_k·x − c·g²_k·score(x, s_k)] + n_k          c = 1 (SDE), ½ (PF-ODE, n_k = 0)

* ``score(x, s_k)``: the network in its compute mode (:func:`model.diffusion.samplers.with_compute`;
  in the "analog" mode the crossbar model draws read noise on every evaluation, i.e. on every
  fine step here), read by an op-amp whose output saturates at ±``v_sat_V`` (``v_per_unit_score_V``
  volts per unit of score);
* time-dependent inputs, **held by DACs** of ``dac_bits`` bits and refreshed at ``refresh_mhz``
  (zero-order hold between refreshes; the refresh grid is aligned to the solve, its period
  adjusted so that a whole number of refreshes fits): the drift coefficient ``a_k = a(s_k)``
  with f(x, s) = a(s)·x (the SDE's drift must be linear in x, as for the VP-SDE: a = −½β),
  ``g²_k = g(s_k)²``, the network's time (and class) features — for a net with a
  ``conditioning(t, y, n)`` method (ScoreMLP: φ(t) + e(y)) those feature values are quantized
  and held; otherwise the time t itself is quantized (unsigned, over [0, 1]) and held — and the
  noise;
* **noise held over a refresh interval**: at each refresh the noise DAC takes ``g_k·z/√Δ``
  (z from the noise source, Δ the interval in diffusion time, clipped at ``noise_clip_sigma``
  standard deviations of the largest g), so that integrated over the interval it contributes
  ``g_k·z·√Δ``: **variance g²Δ per interval**, the Euler–Maruyama increment (Yang et al.'s
  firmware does the same with a sum of 12 uniforms scaled by β(t) every 5 ms);
* the integrator output x saturates at ±``v_sat_V``;
* optional first-order loop bandwidth ``loop_bw_mhz`` (crossbar + TIA settling): the drift the
  integrator sees follows the computed one with time constant 1/(2π·bw);
* integrated with explicit Euler at a fine step ``dt_ns`` (a numerical step, not a circuit one;
  rounded so that a whole number fits a refresh interval).

DAC full scales are set once per solve from the largest magnitude over the refresh grid (a
designer sizing the DAC reference for the schedule); signed DACs are mid-tread, ``2**(bits−1)``
levels each side (top code one LSB below full scale), unsigned ones ``2**bits − 1`` steps over
[0, FS].

:func:`sweep` runs the quality-vs-τ and quality-vs-refresh-rate curves for ``make evaluate``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["IntegratorParams", "integrate", "sweep", "dac_quantize", "PROCESSES"]

PROCESSES = ("sde", "ode")


def _num(owner, name, v, lo, hi, lo_open=True, unit=""):
    ok = not isinstance(v, bool) and isinstance(v, (int, float, np.floating)) and math.isfinite(v) \
        and (lo < v if lo_open else lo <= v) and v <= hi
    if not ok:
        u = f" {unit}" if unit else ""
        raise ValueError(f"{owner}.{name} = {v!r}: out of range, allowed "
                         f"{'(' if lo_open else '['}{lo}, {hi}]{u}")
    return float(v)


@dataclass(frozen=True)
class IntegratorParams:
    """Parameters of the emulated analog integrator loop (module docstring). Validated.

    Attributes
    ----------
    tau_us : float
        Integrator time constant RC, µs; the solve takes ``tau_us·(1 − t_end)``. ASSUMED 10 µs
        (no figure in the paper's public text).
    refresh_mhz : float
        Refresh rate of the time-dependent DAC inputs, MHz. ASSUMED 20 MHz: with τ = 10 µs that
        is 200 refreshes per solve, the count of Yang et al.'s firmware (t advanced by 0.005 per
        5 ms timer tick; shared/PAPERS.md B).
    dac_bits : int
        Resolution of those DACs. 12: Yang et al.'s firmware (12-bit DACs, PAPERS.md B).
    v_sat_V : float
        Op-amp output swing ±V_sat (integrator and score read-out), V. ASSUMED 1.0 V.
    v_per_unit_x_V : float
        Integrator output volts per unit of x. ASSUMED 0.2 V (x saturates at ±5).
    v_per_unit_score_V : float
        Score read-out volts per unit of score. ASSUMED 0.01 V (score saturates at ±100).
    dt_ns : float
        Fine integration step, ns (numerical). Default 10 ns: 5 evaluations per 50 ns refresh.
    noise_clip_sigma : float
        Noise DAC full scale in standard deviations (of the largest g), default 4.
    loop_bw_mhz : float or None
        First-order bandwidth of the crossbar→integrator path, MHz; None = ideal (default).
    max_evaluations : int
        Refuse a configuration with more network evaluations than this (cost guard).
    """

    tau_us: float = 10.0
    refresh_mhz: float = 20.0
    dac_bits: int = 12
    v_sat_V: float = 1.0
    v_per_unit_x_V: float = 0.2
    v_per_unit_score_V: float = 0.01
    dt_ns: float = 10.0
    noise_clip_sigma: float = 4.0
    loop_bw_mhz: float | None = None
    max_evaluations: int = 200_000

    def __post_init__(self):
        o = "IntegratorParams"
        _num(o, "tau_us", self.tau_us, 0.0, 1e6, unit="us")
        _num(o, "refresh_mhz", self.refresh_mhz, 0.0, 1e5, unit="MHz")
        if isinstance(self.dac_bits, bool) or not isinstance(self.dac_bits, int) \
                or not 1 <= self.dac_bits <= 24:
            raise ValueError(f"{o}.dac_bits = {self.dac_bits!r}: out of range, allowed integer "
                             f"[1, 24]")
        _num(o, "v_sat_V", self.v_sat_V, 0.0, 100.0, unit="V")
        _num(o, "v_per_unit_x_V", self.v_per_unit_x_V, 0.0, 100.0, unit="V")
        _num(o, "v_per_unit_score_V", self.v_per_unit_score_V, 0.0, 100.0, unit="V")
        _num(o, "dt_ns", self.dt_ns, 0.0, 1e9, unit="ns")
        _num(o, "noise_clip_sigma", self.noise_clip_sigma, 0.5, 50.0, lo_open=False)
        if self.loop_bw_mhz is not None:
            _num(o, "loop_bw_mhz", self.loop_bw_mhz, 0.0, 1e6, unit="MHz")
        if isinstance(self.max_evaluations, bool) or not isinstance(self.max_evaluations, int) \
                or not 1 <= self.max_evaluations <= 10**8:
            raise ValueError(f"{o}.max_evaluations = {self.max_evaluations!r}: out of range, "
                             f"allowed integer [1, 100000000]")

    @property
    def x_limit(self) -> float:
        """Saturation of x, in units of x."""
        return self.v_sat_V / self.v_per_unit_x_V

    @property
    def score_limit(self) -> float:
        return self.v_sat_V / self.v_per_unit_score_V

    def grid(self, t_end: float) -> dict:
        """The solve's time grid: refreshes, fine steps per refresh, Δ (diffusion time per
        refresh), the actual refresh period and the physical solve time."""
        solve_us = self.tau_us * (1.0 - t_end)
        refreshes = max(1, int(round(solve_us * self.refresh_mhz)))
        period_ns = solve_us * 1e3 / refreshes
        fine = max(1, int(round(period_ns / self.dt_ns)))
        evals = refreshes * fine
        if evals > self.max_evaluations:
            raise ValueError(f"IntegratorParams: {refreshes} refreshes x {fine} fine steps = "
                             f"{evals} network evaluations (tau_us={self.tau_us}, refresh_mhz="
                             f"{self.refresh_mhz}, dt_ns={self.dt_ns}): above max_evaluations = "
                             f"{self.max_evaluations}; raise dt_ns or max_evaluations")
        return {"refreshes": refreshes, "fine_steps": fine, "evaluations": evals,
                "delta": (1.0 - t_end) / refreshes, "refresh_period_ns": period_ns,
                "dt_ns": period_ns / fine, "solve_us": solve_us}


def dac_quantize(v: torch.Tensor, full_scale: float, bits: int, signed: bool = True):
    """A DAC's output for the wanted value ``v``: nearest level (ties up), clipped to the range.

    Signed: levels ``k·FS/2**(bits−1)``, k in [−2**(bits−1), 2**(bits−1) − 1]; unsigned:
    ``k·FS/(2**bits − 1)``, k in [0, 2**bits − 1]. ``full_scale`` 0 gives 0.
    """
    v = torch.as_tensor(v)
    if not full_scale > 0.0:
        return torch.zeros_like(v)
    if signed:
        half = 1 << (bits - 1)
        lsb = full_scale / half
        q = torch.clamp(torch.floor(v / lsb + 0.5), -half, half - 1)
    else:
        top = (1 << bits) - 1
        lsb = full_scale / top
        q = torch.clamp(torch.floor(v / lsb + 0.5), 0, top)
    return (q * lsb).to(v.dtype)


def _linear_coeff(sde, t: float) -> float:
    one = torch.ones(1, 1, dtype=torch.float64)
    a = float(sde.f(one, t).reshape(-1)[0])
    a2 = float(sde.f(2.0 * one, t).reshape(-1)[0])
    if not math.isclose(a2, 2.0 * a, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError("integrate: the SDE's drift f(x, t) is not linear in x; the analog "
                         "integrator holds f as a coefficient a(t)·x (as for the VP-SDE)")
    return a


def integrate(model, sde, noise, n: int, *, shape=None, params: IntegratorParams | None = None,
              process: str = "sde", parameterization: str = "score", t_end=None, y=None,
              guidance: float = 0.0, progress: bool = True, return_stats: bool = False,
              **fields):
    """Run the emulated analog solver (module docstring) for ``n`` samples.

    Parameters
    ----------
    model :
        The network, or a :class:`model.diffusion.samplers.Evaluator` (what ``sample`` passes).
    sde :
        A VP-SDE (``f``, ``g``, ``t_eps``; ``for_sampling()`` used when present; ``marginal``
        for ``parameterization="eps"``).
    noise : NoiseSource
    n : int
    shape : tuple, optional
        Per-sample shape (default ``(model.dim,)``).
    params : IntegratorParams, optional
        Default ``IntegratorParams()``; ``fields`` (its field names) override single values.
    process : str
        "sde" (reverse SDE with held noise) or "ode" (probability flow, no noise).
    parameterization : str
        "score" or "eps" (network output).
    t_end : float, optional
        End of the solve (default ``sde.t_eps``).
    y, guidance :
        Labels and guidance weight (when ``model`` is a bare network).
    return_stats : bool
        Also return a dict: the grid, saturation fractions, evaluations.

    Returns
    -------
    torch.Tensor (n, *shape) float32, or ``(x, stats)``.
    """
    from model.diffusion.samplers import Evaluator, _is_sde
    o = "integrate"
    if process not in PROCESSES:
        raise ValueError(f"{o}: process = {process!r}: must be one of {PROCESSES}")
    if parameterization not in ("score", "eps"):
        raise ValueError(f"{o}: parameterization = {parameterization!r}: must be 'score' or "
                         f"'eps'")
    if not _is_sde(sde):
        raise ValueError(f"{o}: sde = {type(sde).__name__}: needs f(x, t), g(t) and t_eps "
                         f"(a VPSDE)")
    params = IntegratorParams() if params is None else params
    if not isinstance(params, IntegratorParams):
        raise ValueError(f"{o}: params = {params!r}: must be an IntegratorParams")
    if fields:
        names = {f.name for f in dataclasses.fields(IntegratorParams)}
        bad = sorted(set(fields) - names)
        if bad:
            raise ValueError(f"{o}: unknown options {bad}: allowed IntegratorParams fields "
                             f"{sorted(names)}, and process, parameterization, t_end")
        params = dataclasses.replace(params, **fields)
    ev = model if isinstance(model, Evaluator) else Evaluator(model, n, y, guidance, owner=o)
    net = ev.model
    if shape is None:
        if getattr(net, "dim", None) is None:
            raise ValueError(f"{o}: the sample shape is unknown (model has no .dim); pass "
                             f"shape=(d,)")
        shape = (int(net.dim),)
    shape = tuple(shape)
    t_end = float(sde.t_eps) if t_end is None else _num(o, "t_end", t_end, 0.0, 0.5)
    samp = sde.for_sampling() if hasattr(sde, "for_sampling") else sde
    grid = params.grid(t_end)
    K, m, delta = grid["refreshes"], grid["fine_steps"], grid["delta"]
    bits = params.dac_bits
    ts = [1.0 - k * delta for k in range(K)]            # held time of each refresh interval

    # DAC full scales from the schedule over the grid.
    a_vals = [_linear_coeff(samp, t) for t in ts]
    g2_vals = [float(samp.g(t)) ** 2 for t in ts]
    fs_a = max(abs(a) for a in a_vals)
    fs_g2 = max(g2_vals)
    c = 1.0 if process == "sde" else 0.5
    fs_noise = params.noise_clip_sigma * math.sqrt(fs_g2 / delta)

    rows = 2 * n if (ev.y is not None and ev.guidance != 0.0) else n
    y_rows = None if ev.y is None else (ev._y2 if rows == 2 * n else ev.y)
    held_features = callable(getattr(net, "conditioning", None))
    if held_features:
        ulab = None if y_rows is None else torch.unique(y_rows)
        tg = torch.tensor(ts, dtype=torch.float32)
        if ulab is None:
            feats = net.conditioning(tg, None, len(ts))
        else:
            feats = net.conditioning(tg.repeat_interleave(len(ulab)), ulab.repeat(len(ts)),
                                     len(ts) * len(ulab))
        fs_c = float(feats.detach().abs().max())

    if parameterization == "eps":
        def score_of(x, t):
            eps = ev(x, t)
            return -eps / float(sde.marginal(float(t))[1])
    else:
        score_of = ev

    x_lim, s_lim = params.x_limit, params.score_limit
    alpha = None
    if params.loop_bw_mhz is not None:
        alpha = 1.0 - math.exp(-2.0 * math.pi * params.loop_bw_mhz * grid["dt_ns"] * 1e-3)
    stats = {**grid, "process": process, "x_saturated": 0, "score_saturated": 0,
             "noise_clipped": 0, "values": 0, "noise_values": 0}
    from tqdm.auto import tqdm

    x = noise.normal((n,) + shape)
    stats["x_saturated"] += int((x.abs() > x_lim).sum())
    x = x.clamp(-x_lim, x_lim)
    f_app = None
    step = delta / m
    with torch.no_grad(), tqdm(total=K, desc="analog", disable=not progress, leave=False,
                               unit="refresh") as bar:
        for k, t in enumerate(ts):
            a_k = float(dac_quantize(torch.tensor(a_vals[k], dtype=torch.float64), fs_a, bits))
            g2_k = float(dac_quantize(torch.tensor(g2_vals[k], dtype=torch.float64), fs_g2, bits,
                                      signed=False))
            if held_features:
                hv = net.conditioning(torch.full((rows,), t, dtype=torch.float32), y_rows, rows)
                held = dac_quantize(hv.detach(), fs_c, bits)
                net.conditioning = (lambda _t, _y=None, _n=None, _h=held: _h)
                t_in = t
            else:
                t_in = float(dac_quantize(torch.tensor(t, dtype=torch.float64), 1.0, bits,
                                          signed=False))
            if process == "sde":
                want = math.sqrt(g2_k / delta) * noise.normal((n,) + shape)
                stats["noise_clipped"] += int((want.abs() >= fs_noise).sum())
                n_k = dac_quantize(want, fs_noise, bits)
                stats["noise_values"] += want.numel()
            try:
                for _ in range(m):
                    s = score_of(x, t_in)
                    stats["score_saturated"] += int((s.abs() > s_lim).sum())
                    s = s.clamp(-s_lim, s_lim)
                    drift = a_k * x - (c * g2_k) * s
                    if alpha is not None:
                        f_app = drift if f_app is None else f_app + alpha * (drift - f_app)
                        drift = f_app
                    x = x - drift * step
                    if process == "sde":
                        x = x + n_k * step
                    stats["x_saturated"] += int((x.abs() > x_lim).sum())
                    x = x.clamp(-x_lim, x_lim)
                    stats["values"] += x.numel()
            finally:
                if held_features:
                    del net.conditioning
            bar.update()
    v = max(1, stats["values"])
    stats["x_saturated_frac"] = stats.pop("x_saturated") / v
    stats["score_saturated_frac"] = stats.pop("score_saturated") / v
    stats["noise_clipped_frac"] = stats.pop("noise_clipped") / max(1, stats.pop("noise_values"))
    stats.pop("values")
    stats["network_calls"] = ev.calls
    x = x.to(torch.float32)
    return (x, stats) if return_stats else x


def sweep(model, sde, noise_factory, n: int, metric, *, base: IntegratorParams | None = None,
          tau_us=(1.0, 2.0, 5.0, 10.0, 20.0), refresh_mhz=(2.0, 5.0, 10.0, 20.0, 50.0),
          y=None, guidance: float = 0.0, process: str = "sde",
          parameterization: str = "score", progress: bool = True) -> list[dict]:
    """Quality of the analog solver vs the integrator time constant and vs the DAC refresh rate.

    Two one-dimensional sweeps around ``base``: every ``tau_us`` at ``base.refresh_mhz``, then
    every ``refresh_mhz`` at ``base.tau_us``. Each point draws ``n`` samples with a fresh noise
    source from ``noise_factory()`` (call it with a fixed seed, so all points share the noise
    stream) and scores them with ``metric(samples)`` (a float or a dict of floats).

    Returns one dict per point: ``axis`` ("tau_us" or "refresh_mhz"), ``tau_us``,
    ``refresh_mhz``, the grid (refreshes, fine steps, evaluations, Δ), saturation fractions and
    the metric (under ``metric`` for a float, else its keys).
    """
    base = IntegratorParams() if base is None else base
    if not isinstance(base, IntegratorParams):
        raise ValueError(f"sweep: base = {base!r}: must be an IntegratorParams")
    if not callable(noise_factory) or not callable(metric):
        raise ValueError("sweep: noise_factory and metric must be callables")
    points = [("tau_us", dataclasses.replace(base, tau_us=float(v))) for v in tau_us] + \
             [("refresh_mhz", dataclasses.replace(base, refresh_mhz=float(v)))
              for v in refresh_mhz]
    from tqdm.auto import tqdm
    rows = []
    for axis, p in tqdm(points, desc="integrator sweep", disable=not progress):
        x, st = integrate(model, sde, noise_factory(), n, params=p, process=process,
                          parameterization=parameterization, y=y, guidance=guidance,
                          progress=False, return_stats=True)
        m = metric(x)
        row = {"axis": axis, "tau_us": p.tau_us, "refresh_mhz": p.refresh_mhz,
               "dac_bits": p.dac_bits, **{k: st[k] for k in (
                   "refreshes", "fine_steps", "evaluations", "delta", "x_saturated_frac",
                   "score_saturated_frac", "noise_clipped_frac")}}
        row.update(m if isinstance(m, dict) else {"metric": float(m)})
        rows.append(row)
    return rows
