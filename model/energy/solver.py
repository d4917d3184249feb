"""Analog time-continuous ODE solver against a digital N-step solver (``docs/energy.md`` §5).

Yang et al. (arXiv 2404.05648; reference code github.com/yangjc97/memristor-sde-diffusion) solve
the probability-flow ODE of a VP-SDE with the score net on RRAM crossbars in a closed loop with
analog integrators; DACs feed the time-dependent inputs (time embedding, drift f(t) and g²(t)),
refreshed on a timer. A digital solver takes N Euler steps, one score-net evaluation each.

Analog, per sample::

    n_refresh  = ceil(span / dt_refresh)                   (ODE time per DAC refresh)
    interval   = max(tau·dt_refresh, t_update + t_settle)  refresh="overlap" (integrator runs on)
               = tau·dt_refresh + t_update + t_settle      refresh="hold" (held while DACs settle)
    latency    = n_refresh·interval + t_adc                (final state read by ADCs in parallel)
    energy     = latency·(P_crossbar + n_opamps·P_opamp)
                 + n_refresh·n_dac·E_dac + dim·FoM·2^adc_bits
    P_crossbar = V_read²·activity·(G_mean·cells_used + G_off·cells_idle_on_driven_rows)
    tau        = C_int / G_unit by default (the integrator gain is G/C)

Digital, per sample: ``steps × evals_per_step`` score-net evaluations plus the Euler update, on a
45 nm accelerator (MACs × (E_mac + weight SRAM read) + activations + embedding reads; cycles from
MAC lanes and clock), or on a CPU/GPU at a quoted per-step latency and board power (energy =
power × time ÷ batch).

Speed-up = digital latency / analog latency; energy ratio = digital energy / analog energy (the
arXiv paper's "5.2×"; the journal's "31.5 % less" is a ratio of 1/(1 − 0.315)).

The MAC counts come from :class:`model.diffusion.score_net.ScoreMLP`'s ``nn.Linear`` layers, not
from hard-coded sizes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

from model.energy import analog_constants as ac
from model.energy.constants import Constant

PRESETS = {
    # name: classes, steps key, evals per step, samples drawn in the reference notebook
    "ring": dict(classes=None, steps_key="yang_ring_steps_1", evals_per_step=1, samples=50000),
    "conditional": dict(classes=3, steps_key="yang_cond_steps_1", evals_per_step=1, samples=500),
}
BASELINES = ("asic45", "cpu", "gpu")
REFRESH_MODES = ("overlap", "hold")
VERSIONS = ("arxiv", "journal")
#: Baseline the reproduction (fit) uses: the paper compares with "digital hardware" without a
#: name in the text available here; a GPU running the reference PyTorch code is ASSUMED.
FIT_BASELINE = "gpu"


# ----------------------------------------------------------------------------------------------
# checks

def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} = {value!r}: unknown, allowed {tuple(allowed)}")
    return value


def _check_pos(name, value, hi=math.inf, lo=0.0, lo_open=True):
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi)
    if not ok:
        br = "(" if lo_open else "["
        raise ValueError(f"{name} = {value!r}: out of range, allowed {br}{lo}, {hi}]")
    return float(value)


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} = {value!r}: out of range, allowed integer [{lo}, {hi}]")
    return value


# ----------------------------------------------------------------------------------------------
# constants

@functools.lru_cache(maxsize=1)
def constants() -> dict[str, Constant]:
    """Every constant the solver model uses: from ``constants.table(45)`` where it has the figure
    (directly or by a derivation spelled out in the source), else this module's analog constants
    and drafts (:mod:`model.energy.analog_constants`)."""
    out = dict(ac.all_constants())
    from model.energy.constants import table
    shared = table(45)
    for key, alias in _TABLE_ALIASES.items():
        if alias in shared:
            out[key] = shared[alias]
    for key, (fn, keys, how) in _TABLE_DERIVED.items():
        if all(k in shared for k in keys):
            value = fn(*(float(shared[k].value) for k in keys))
            out[key] = Constant(value, out[key].unit, f"derived from constants.table(45): {how} ("
                                + "; ".join(f"{k}: {shared[k].source}" for k in keys) + ")",
                                "derived")
    return out


#: solver key -> constants.table() key of the same figure.
_TABLE_ALIASES: dict[str, str] = {
    "add_fp32_pJ": "add_fp32_pJ",
    "dac_conv_pJ": "dac_conv_pJ",
    "adc_fom_fJ_per_step": "adc_fom_fJ_per_step",
    "input_activity_1": "rram_input_v2_fraction_dimless",
    "rram_g_off_uS": "rram_g_min_uS",
    # CPU/GPU: the table's TDP (quoted, not measured) is an upper bound on the board power of a
    # launch-bound tiny-MLP step
    "gpu_board_power_W": "gpu_tdp_W",
    "cpu_power_W": "cpu_tdp_W",
}
#: solver key -> (function, table keys, how) for figures derived from several table entries.
_TABLE_DERIVED = {
    "mac_fp32_pJ": (lambda m, a: m + a, ("mult_fp32_pJ", "add_fp32_pJ"), "fp32 mult + add"),
    "sram_read_32b_pJ": (lambda r: r / 2, ("sram_read_64b_8kB_pJ",), "8 kB 64-bit read / 2"),
    "rram_g_unit_uS": (lambda lo, hi: hi - lo, ("rram_g_min_uS", "rram_g_max_uS"),
                       "differential full scale g_max - g_min codes weight 1"),
    "rram_g_mean_uS": (lambda lo, hi: (lo + hi) / 2, ("rram_g_min_uS", "rram_g_max_uS"),
                       "mean of g_min and g_max (weights spread over the range)"),
}


def _v(key: str) -> float:
    return float(constants()[key].value)


# ----------------------------------------------------------------------------------------------
# the score net

@dataclass(frozen=True)
class NetShape:
    """Layer sizes of a score net: ``layers`` = ((in, out), ...), the hidden width, data dim."""
    layers: tuple
    hidden: int
    dim: int
    classes: int | None

    @property
    def macs(self) -> int:
        """Multiply-accumulates per evaluation (sum of in × out over the linear layers)."""
        return sum(i * o for i, o in self.layers)

    @property
    def adds(self) -> int:
        """Additions per evaluation beyond the MACs: biases, the time embedding on both hidden
        layers and the class embedding when conditional."""
        hidden_layers = len(self.layers) - 1
        per_hidden = 2 if self.classes is not None else 1
        return sum(o for _, o in self.layers) + hidden_layers * self.hidden * per_hidden

    @property
    def outputs(self) -> int:
        """Activations written per evaluation (every layer's outputs)."""
        return sum(o for _, o in self.layers)


@functools.lru_cache(maxsize=8)
def net_shape(preset: str) -> NetShape:
    """The :class:`NetShape` of the preset's :class:`~model.diffusion.score_net.ScoreMLP`."""
    _check_choice("preset", preset, PRESETS)
    import torch
    from model.diffusion.score_net import ScoreMLP
    net = ScoreMLP(classes=PRESETS[preset]["classes"])
    layers = tuple((m.in_features, m.out_features) for m in net.modules()
                   if isinstance(m, torch.nn.Linear))
    first_in = layers[0][0]
    return NetShape(layers=layers, hidden=layers[0][1], dim=first_in,
                    classes=PRESETS[preset]["classes"])


def preset_steps(preset: str) -> int:
    """The paper's Euler step count for the preset (10 000 ring, 5 000 conditional)."""
    _check_choice("preset", preset, PRESETS)
    return int(_v(PRESETS[preset]["steps_key"]))


# ----------------------------------------------------------------------------------------------
# analog

@dataclass(frozen=True)
class AnalogConfig:
    """Analog solver parameters; ``None`` takes the constant named in brackets.

    tau_s: integrator time constant, wall seconds per unit of ODE time
        [integrator_cap_pF / rram_g_unit_uS]; span: ODE time integrated [ode_span_1];
    dt_refresh: ODE time between DAC refreshes [yang_ode_dt_per_refresh_1]; dac_channels: DAC
        words per refresh [hidden + 2: time embedding, f, g²]; refresh: "overlap" or "hold";
    adc_bits: readout ADC resolution [yang_dac_bits]; rows, cols: crossbar tile size
        [crossbar_rows_1, crossbar_cols_1]; opamp_power_uW [opamp_power_uW].
    """
    tau_s: float | None = None
    span: float | None = None
    dt_refresh: float | None = None
    dac_channels: int | None = None
    refresh: str = "overlap"
    adc_bits: int | None = None
    rows: int | None = None
    cols: int | None = None
    opamp_power_uW: float | None = None

    def __post_init__(self):
        o = "AnalogConfig"
        if self.tau_s is not None:
            _check_pos(f"{o}.tau_s", self.tau_s, 1e3)
        if self.span is not None:
            _check_pos(f"{o}.span", self.span, 1e3, lo_open=False)
        if self.dt_refresh is not None:
            _check_pos(f"{o}.dt_refresh", self.dt_refresh, 1e3)
        if self.dac_channels is not None:
            _check_int(f"{o}.dac_channels", self.dac_channels, 0, 1 << 16)
        _check_choice(f"{o}.refresh", self.refresh, REFRESH_MODES)
        if self.adc_bits is not None:
            _check_int(f"{o}.adc_bits", self.adc_bits, 1, 24)
        if self.rows is not None:
            _check_int(f"{o}.rows", self.rows, 1, 1 << 16)
        if self.cols is not None:
            _check_int(f"{o}.cols", self.cols, 1, 1 << 16)
        if self.opamp_power_uW is not None:
            _check_pos(f"{o}.opamp_power_uW", self.opamp_power_uW, 1e9, lo_open=False)

    def resolved(self, shape: NetShape) -> dict:
        """Every parameter as a number in SI units (defaults filled in)."""
        g_unit = _v("rram_g_unit_uS") * 1e-6
        return dict(
            tau_s=self.tau_s if self.tau_s is not None
            else _v("integrator_cap_pF") * 1e-12 / g_unit,
            span=self.span if self.span is not None else _v("ode_span_1"),
            dt_refresh=self.dt_refresh if self.dt_refresh is not None
            else _v("yang_ode_dt_per_refresh_1"),
            dac_channels=self.dac_channels if self.dac_channels is not None
            else shape.hidden + 2,
            refresh=self.refresh,
            adc_bits=self.adc_bits if self.adc_bits is not None else int(_v("yang_dac_bits")),
            rows=self.rows if self.rows is not None else int(_v("crossbar_rows_1")),
            cols=self.cols if self.cols is not None else int(_v("crossbar_cols_1")),
            opamp_W=(self.opamp_power_uW if self.opamp_power_uW is not None
                     else _v("opamp_power_uW")) * 1e-6,
        )


def crossbar_mapping(shape: NetShape, rows: int, cols: int) -> dict:
    """Tiles, cells and op-amps of the net on ``rows × cols`` tiles.

    Each layer takes ``in + 1`` rows (bias row) and ``out × cells_per_weight`` columns, split into
    row and column tiles. Op-amps: one TIA per logical output column per row tile, one summing amp
    per column when a layer spans several row tiles, ``dim`` integrators and ``2·dim`` gain stages
    (f(t)·x and ½g²(t)·s). Idle cells are those on driven rows in allocated but unused columns.
    """
    _check_int("rows", rows, 1, 1 << 16)
    _check_int("cols", cols, 1, 1 << 16)
    cpw = int(_v("cells_per_weight_1"))
    tiles = used = idle = opamps = 0
    for i, o in shape.layers:
        r_need, c_need = i + 1, o * cpw
        rt, ct = math.ceil(r_need / rows), math.ceil(c_need / cols)
        tiles += rt * ct
        used += r_need * c_need
        idle += r_need * (ct * cols - c_need)
        opamps += o * rt + (o if rt > 1 else 0)
    opamps += 3 * shape.dim
    return dict(tiles=tiles, cells_used=used, cells_idle_driven=idle, opamps=opamps)


def analog_cost(preset: str = "ring", cfg: AnalogConfig | None = None) -> dict:
    """Latency (s) and energy (J) of one sample on the analog solver, with a breakdown.

    Returns
    -------
    dict
        ``latency_s``, ``energy_J``, ``breakdown_J`` (crossbar, opamps, dac, adc),
        ``n_refresh``, ``interval_s``, ``limit`` ("tau" or "dac" — which sets the interval),
        ``tau_min_dac_s`` (tau below which the DAC settling sets the pace), ``tau_min_opamp_s``
        (the op-amp bandwidth floor), the mapping and the resolved parameters.
    """
    cfg = cfg if cfg is not None else AnalogConfig()
    shape = net_shape(preset)
    p = cfg.resolved(shape)
    n_refresh = math.ceil(p["span"] / p["dt_refresh"] - 1e-9) if p["span"] > 0 else 0
    t_dac = (_v("dac_update_us") + _v("dac_settle_us")) * 1e-6
    t_int = p["tau_s"] * p["dt_refresh"]
    if p["refresh"] == "overlap":
        interval = max(t_int, t_dac)
    else:
        interval = t_int + t_dac
    t_adc = _v("adc_conv_time_us") * 1e-6
    latency = n_refresh * interval + t_adc
    m = crossbar_mapping(shape, p["rows"], p["cols"])
    v = _v("yang_v_read_V")
    p_xbar = v * v * _v("input_activity_1") * (
        _v("rram_g_mean_uS") * 1e-6 * m["cells_used"]
        + _v("rram_g_off_uS") * 1e-6 * m["cells_idle_driven"])
    p_op = m["opamps"] * p["opamp_W"]
    e_dac = n_refresh * p["dac_channels"] * _v("dac_conv_pJ") * 1e-12
    e_adc = shape.dim * _v("adc_fom_fJ_per_step") * 1e-15 * 2.0 ** p["adc_bits"]
    br = dict(crossbar=latency * p_xbar, opamps=latency * p_op, dac=e_dac, adc=e_adc)
    gbw = _v("opamp_gbw_MHz") * 1e6
    return dict(latency_s=latency, energy_J=sum(br.values()), breakdown_J=br,
                n_refresh=n_refresh, interval_s=interval,
                limit="tau" if t_int >= t_dac else "dac",
                tau_min_dac_s=t_dac / p["dt_refresh"],
                tau_min_opamp_s=_v("integrator_bw_margin_1") / (2 * math.pi * gbw),
                power_W=p_xbar + p_op, mapping=m, params=p)


# ----------------------------------------------------------------------------------------------
# digital

def digital_cost(preset: str = "ring", baseline: str = "gpu", steps: int | None = None,
                 batch: int = 1, evals_per_step: int | None = None) -> dict:
    """Latency (s) and energy (J) per sample of an N-step Euler solver on a digital baseline.

    Parameters
    ----------
    preset:
        "ring" or "conditional" (net and default step count).
    baseline:
        "asic45" (45 nm accelerator from per-operation energies), "cpu" or "gpu" (quoted per-step
        latency and board power).
    steps:
        Euler steps (default: the paper's for the preset), integer ≥ 1.
    batch:
        Samples solved together (CPU/GPU only; a launch-bound step costs the same for the batch):
        latency and energy are divided by it. 1 = one sample at a time, as the analog solver.
    evals_per_step:
        Score-net evaluations per step (2 for classifier-free guidance with w > 0; default 1, as
        the reference runs w = 0).
    """
    _check_choice("preset", preset, PRESETS)
    _check_choice("baseline", baseline, BASELINES)
    steps = preset_steps(preset) if steps is None else _check_int("steps", steps, 1, 10**9)
    _check_int("batch", batch, 1, 10**9)
    evals = (PRESETS[preset]["evals_per_step"] if evals_per_step is None
             else _check_int("evals_per_step", evals_per_step, 1, 16))
    shape = net_shape(preset)
    n_eval = steps * evals
    if baseline == "asic45":
        if batch != 1:
            raise ValueError(f"batch = {batch!r}: the asic45 baseline counts one sample, "
                             "allowed 1")
        e_mac, e_sram = _v("mac_fp32_pJ") * 1e-12, _v("sram_read_32b_pJ") * 1e-12
        e_add = _v("add_fp32_pJ") * 1e-12 if "add_fp32_pJ" in constants() else 0.0
        per_eval = dict(
            mac=shape.macs * e_mac, weights=shape.macs * e_sram, adds=shape.adds * e_add,
            activations=2 * shape.outputs * e_sram,
            embedding=shape.hidden * e_sram * (2 if shape.classes is not None else 1))
        per_step = dict(update=3 * shape.dim * e_mac + 2 * e_sram)
        br = {k: n_eval * v for k, v in per_eval.items()}
        br["update"] = steps * per_step["update"]
        lanes = int(_v("digital_mac_lanes_1"))
        cycles = sum(i * math.ceil(o / lanes) + _v("digital_layer_overhead_cycles_1")
                     for i, o in shape.layers)
        latency = (n_eval * cycles + steps * 3) / (_v("digital_clock_GHz") * 1e9)
        return dict(latency_s=latency, energy_J=sum(br.values()), breakdown_J=br,
                    steps=steps, evals=n_eval, macs=n_eval * shape.macs)
    t_step = _v(f"{baseline}_step_latency_us") * 1e-6 * evals
    power = _v("gpu_board_power_W" if baseline == "gpu" else "cpu_power_W")
    latency = steps * t_step / batch
    return dict(latency_s=latency, energy_J=power * latency,
                breakdown_J=dict(board=power * latency), steps=steps, evals=n_eval,
                macs=n_eval * shape.macs, power_W=power)


def compare(preset: str = "ring", baseline: str = "gpu", cfg: AnalogConfig | None = None,
            **digital_kw) -> dict:
    """``speedup`` (digital / analog latency) and ``energy_ratio`` (digital / analog energy)."""
    a = analog_cost(preset, cfg)
    d = digital_cost(preset, baseline, **digital_kw)
    return dict(speedup=d["latency_s"] / a["latency_s"],
                energy_ratio=d["energy_J"] / a["energy_J"], analog=a, digital=d)


# ----------------------------------------------------------------------------------------------
# reproduction of the papers' figures (fitted constants)

def fit_tau(target_speedup: float, preset: str = "ring", baseline: str = FIT_BASELINE,
            cfg: AnalogConfig | None = None) -> float | None:
    """Integrator tau (s) giving ``target_speedup`` against ``baseline``; ``None`` when even the
    DAC-limited fastest analog run is too slow (refresh="overlap" model)."""
    _check_pos("target_speedup", target_speedup, 1e12)
    cfg = cfg if cfg is not None else AnalogConfig()
    base = analog_cost(preset, dataclasses.replace(cfg, tau_s=1.0))
    t_target = digital_cost(preset, baseline)["latency_s"] / target_speedup
    t_adc = _v("adc_conv_time_us") * 1e-6
    interval = (t_target - t_adc) / base["n_refresh"]
    dt = base["params"]["dt_refresh"]
    t_dac = (_v("dac_update_us") + _v("dac_settle_us")) * 1e-6
    if cfg.refresh == "hold":
        interval -= t_dac
        return interval / dt if interval > 0 else None
    return interval / dt if interval >= t_dac else None


def fit_opamp_power(target_ratio: float, preset: str = "ring", baseline: str = FIT_BASELINE,
                    cfg: AnalogConfig | None = None) -> float | None:
    """Op-amp power (uW each) giving the energy ratio ``target_ratio``; ``None`` if the other
    analog terms alone already exceed the digital energy / target."""
    _check_pos("target_ratio", target_ratio, 1e12)
    cfg = cfg if cfg is not None else AnalogConfig()
    a = analog_cost(preset, dataclasses.replace(cfg, opamp_power_uW=0.0))
    e_target = digital_cost(preset, baseline)["energy_J"] / target_ratio
    rest = e_target - a["energy_J"]
    if rest <= 0:
        return None
    return rest / (a["latency_s"] * a["mapping"]["opamps"]) * 1e6


@functools.lru_cache(maxsize=4)
def reproduce(version: str, baseline: str = FIT_BASELINE) -> dict:
    """Fit tau on the unconditional speed-up and the op-amp power on the unconditional energy
    ratio of ``version`` ("arxiv" or "journal"), then predict the conditional figures.

    Both fitted constants are ``status="fitted"``; the conditional predictions are the test of
    the model. ``cond_gap_speedup`` / ``cond_gap_energy`` = paper ÷ prediction.
    """
    _check_choice("version", version, VERSIONS)
    _check_choice("baseline", baseline, BASELINES)
    claim = {(k[1], k[2]): v[0] for k, v in ac.CLAIMS.items() if k[0] == version}
    tau = fit_tau(claim[("ring", "speedup")], "ring", baseline)
    out = dict(version=version, baseline=baseline, tau_fit_s=tau, opamp_fit_uW=None)
    if tau is None:
        return out
    cfg = AnalogConfig(tau_s=tau)
    p_op = fit_opamp_power(claim[("ring", "energy_ratio")], "ring", baseline, cfg)
    out["opamp_fit_uW"] = p_op
    if p_op is not None:
        cfg = dataclasses.replace(cfg, opamp_power_uW=p_op)
    ring = compare("ring", baseline, cfg)
    cond = compare("conditional", baseline, cfg)
    # the other reading: keep the default analog power, fit the digital baseline's power
    a0 = analog_cost("ring", AnalogConfig(tau_s=tau))
    out["digital_power_fit_W"] = (a0["energy_J"] * claim[("ring", "energy_ratio")]
                                  / digital_cost("ring", baseline)["latency_s"])
    out.update(
        ring_speedup=ring["speedup"], ring_energy_ratio=ring["energy_ratio"],
        cond_speedup=cond["speedup"], cond_energy_ratio=cond["energy_ratio"],
        cond_gap_speedup=claim[("conditional", "speedup")] / cond["speedup"],
        cond_gap_energy=claim[("conditional", "energy_ratio")] / cond["energy_ratio"],
        analog_power_W=ring["analog"]["power_W"],
        implied_power_ratio_ring=claim[("ring", "speedup")] / claim[("ring", "energy_ratio")],
        implied_power_ratio_cond=(claim[("conditional", "speedup")]
                                  / claim[("conditional", "energy_ratio")]))
    return out


# ----------------------------------------------------------------------------------------------
# sensitivity

#: Assumptions ranked by how far they move the figures over a plausible range:
#: label -> (low, high, why that range).
ASSUMPTION_RANGES = {
    "integrator tau (s)": (1e-6, 1.0, "C/G of 10 pF/10 uS up to the demo's 1 s per ODE unit"),
    "DAC refresh step (ODE time)": (0.001, 0.02, "the demo's 0.005, /5 to x4"),
    "op-amp power (uW)": (10.0, 1000.0, "ASSUMED 100 uW, /10 to x10"),
    "GPU step latency (us)": (10.0, 200.0, "launch-bound eager step, ASSUMED 50 us"),
    "digital batch (samples)": (1, 50000, "one sample at a time up to the notebook's 50 000"),
}


def _default_tau() -> float:
    return _v("integrator_cap_pF") * 1e-12 / (_v("rram_g_unit_uS") * 1e-6)


def _at(label: str, x, preset: str, baseline: str) -> dict:
    """compare() with one assumption set to ``x``."""
    if label.startswith("integrator tau"):
        return compare(preset, baseline, AnalogConfig(tau_s=x))
    if label.startswith("DAC refresh"):
        return compare(preset, baseline, AnalogConfig(dt_refresh=x))
    if label.startswith("op-amp"):
        return compare(preset, baseline, AnalogConfig(opamp_power_uW=x))
    if label.startswith("GPU step"):
        r = compare(preset, baseline)
        if baseline != "gpu":
            return r
        scale = x / _v("gpu_step_latency_us")
        return dict(speedup=r["speedup"] * scale, energy_ratio=r["energy_ratio"] * scale)
    if label.startswith("digital batch"):
        if baseline == "asic45":
            return compare(preset, baseline)
        return compare(preset, baseline, batch=int(x))
    raise ValueError(f"label = {label!r}: unknown, allowed {tuple(ASSUMPTION_RANGES)}")


def swings(preset: str = "ring", baseline: str = "gpu") -> dict:
    """For each assumption in :data:`ASSUMPTION_RANGES`: speed-up and energy ratio at the low and
    high end, and the swing (max / min) of each figure."""
    _check_choice("preset", preset, PRESETS)
    _check_choice("baseline", baseline, BASELINES)
    out = {}
    for label, (lo, hi, _) in ASSUMPTION_RANGES.items():
        r_lo, r_hi = _at(label, lo, preset, baseline), _at(label, hi, preset, baseline)
        out[label] = dict(
            low=lo, high=hi,
            speedup=(r_lo["speedup"], r_hi["speedup"]),
            energy_ratio=(r_lo["energy_ratio"], r_hi["energy_ratio"]),
            speedup_swing=max(r_lo["speedup"], r_hi["speedup"])
            / min(r_lo["speedup"], r_hi["speedup"]),
            energy_swing=max(r_lo["energy_ratio"], r_hi["energy_ratio"])
            / min(r_lo["energy_ratio"], r_hi["energy_ratio"]))
    return out


def most_sensitive(preset: str = "ring", baseline: str = "gpu") -> tuple[str, str]:
    """(assumption that moves the speed-up most, the one that moves the energy ratio most) over
    :data:`ASSUMPTION_RANGES`."""
    s = swings(preset, baseline)
    return (max(s, key=lambda k: s[k]["speedup_swing"]),
            max(s, key=lambda k: s[k]["energy_swing"]))


# ----------------------------------------------------------------------------------------------
# report API

def _keys(*keys) -> str:
    """The constants' keys with their status, for tables that list the sources elsewhere."""
    c = constants()
    return ", ".join(f"{k} [{c[k].status}]" for k in keys)


def _src(*keys) -> str:
    c = constants()
    return "; ".join(f"{k}: {c[k].source} [{c[k].status}]" for k in keys)


_ANALOG_KEYS = ("integrator_cap_pF", "rram_g_unit_uS", "rram_g_mean_uS", "opamp_power_uW",
                "dac_conv_pJ", "dac_settle_us", "adc_fom_fJ_per_step", "yang_v_read_V",
                "yang_ode_dt_per_refresh_1")


def figures() -> dict[str, dict]:
    """Every figure of the solver model as ``{"value", "unit", "source" | "definition"}``.

    Keys start with ``solver.``; values are plain floats/ints/strings (JSON-serialisable).
    """
    f: dict[str, dict] = {}
    for preset in PRESETS:
        shape = net_shape(preset)
        f[f"solver.{preset}.macs_per_eval"] = dict(
            value=shape.macs, unit="MAC", definition="sum of in x out over ScoreMLP's nn.Linear "
            f"layers {list(shape.layers)}")
        f[f"solver.{preset}.steps"] = dict(value=preset_steps(preset), unit="1",
                                           source=_src(PRESETS[preset]["steps_key"]))
        a = analog_cost(preset)
        f[f"solver.{preset}.analog.latency"] = dict(
            value=a["latency_s"], unit="s", definition="n_refresh x max(tau dt, t_dac) + t_adc; "
            f"tau = C_int/G_unit = {a['params']['tau_s']:.3g} s, limit: {a['limit']}; "
            + _src(*_ANALOG_KEYS))
        f[f"solver.{preset}.analog.energy"] = dict(
            value=a["energy_J"], unit="J", definition="latency x (crossbar + op-amp power) + DAC "
            "and ADC conversions; " + _src(*_ANALOG_KEYS))
        f[f"solver.{preset}.analog.power"] = dict(
            value=a["power_W"], unit="W", definition="crossbar V^2 G + op-amps")
        for b in BASELINES:
            r = compare(preset, b)
            f[f"solver.{preset}.{b}.latency"] = dict(
                value=r["digital"]["latency_s"], unit="s",
                definition=f"{r['digital']['steps']} Euler steps on {b}")
            f[f"solver.{preset}.{b}.energy"] = dict(
                value=r["digital"]["energy_J"], unit="J",
                definition=f"{r['digital']['steps']} Euler steps on {b}")
            f[f"solver.{preset}.{b}.speedup"] = dict(
                value=r["speedup"], unit="x", definition="digital latency / analog latency, "
                "default (unfitted) constants")
            f[f"solver.{preset}.{b}.energy_ratio"] = dict(
                value=r["energy_ratio"], unit="x", definition="digital energy / analog energy, "
                "default (unfitted) constants")
        sp, en = most_sensitive(preset, FIT_BASELINE)
        sw = swings(preset, FIT_BASELINE)
        f[f"solver.{preset}.most_sensitive.speedup"] = dict(
            value=sw[sp]["speedup_swing"], unit="x", definition=f"largest max/min of the "
            f"speed-up over the assumption ranges of solver.ASSUMPTION_RANGES (vs "
            f"{FIT_BASELINE}): {sp}")
        f[f"solver.{preset}.most_sensitive.energy_ratio"] = dict(
            value=sw[en]["energy_swing"], unit="x", definition=f"largest max/min of the energy "
            f"ratio over the assumption ranges (vs {FIT_BASELINE}): {en}")
        sw = swings(preset, FIT_BASELINE)
        for label, v in sw.items():
            f[f"solver.{preset}.swing.{label.split(' (')[0].replace(' ', '_')}"] = dict(
                value=v["speedup_swing"], unit="x", definition=f"speed-up max/min for {label} "
                f"in [{v['low']}, {v['high']}] ({ASSUMPTION_RANGES[label][2]}); energy ratio "
                f"swing {v['energy_swing']:.3g}x")
    a = analog_cost("ring")
    f["solver.tau_min_dac"] = dict(value=a["tau_min_dac_s"], unit="s", definition="(t_update + "
                                   "t_settle) / dt_refresh: below it the DACs set the pace")
    f["solver.tau_min_opamp"] = dict(value=a["tau_min_opamp_s"], unit="s",
                                     definition="margin / (2 pi GBW)")
    f["solver.yang_demo.latency"] = dict(
        value=_v("yang_tau_demo_s") * _v("yang_ode_span_1"), unit="s",
        source=_src("yang_tau_demo_s", "yang_ode_span_1"))
    for version in VERSIONS:
        r = reproduce(version)
        fl = "FITTED to the paper's unconditional figure"
        f[f"solver.fit.{version}.tau"] = dict(value=r["tau_fit_s"], unit="s",
                                              definition=f"{fl} speed-up vs {FIT_BASELINE}")
        f[f"solver.fit.{version}.opamp_power"] = dict(
            value=r["opamp_fit_uW"], unit="uW", definition=f"{fl} energy ratio")
        f[f"solver.fit.{version}.digital_power"] = dict(
            value=r.get("digital_power_fit_W"), unit="W",
            definition=f"{fl} energy ratio, keeping the default analog power: the digital "
            "baseline power the claim implies")
        for k in ("cond_speedup", "cond_energy_ratio", "cond_gap_speedup", "cond_gap_energy",
                  "implied_power_ratio_ring", "implied_power_ratio_cond"):
            if k in r:
                f[f"solver.fit.{version}.{k}"] = dict(
                    value=r[k], unit="x", definition=f"{fl}s (tau, op-amp power); {k}")
    return f


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def fidelity_rows() -> list[dict]:
    """One row per paper claim (speed and energy, unconditional and conditional, arXiv and
    journal): ``claim``, ``paper``, ``spindiff``, ``method``, ``sources``."""
    rows = []
    for (version, preset, kind), (value, unit, src) in ac.CLAIMS.items():
        r = reproduce(version)
        default = compare(preset, FIT_BASELINE)
        key = "speedup" if kind == "speedup" else "energy_ratio"
        if version == "journal" and kind == "energy_ratio":
            paper = f"{(1 - 1 / value) * 100:.1f}% less energy"
        else:
            paper = f"{value:.3g}x"
        fitted_val = r.get(f"{'ring' if preset == 'ring' else 'cond'}_{key}")
        spind = (f"{default[key]:.3g}x (default constants, vs {FIT_BASELINE}); "
                 f"{_fmt(fitted_val)}x with tau/op-amp power FITTED on the unconditional "
                 f"{version} figures")
        name = "speed-up" if kind == "speedup" else "energy ratio"
        method = ("analog: n_refresh x max(tau dt, DAC settle) + ADC; digital: N Euler steps x "
                  "quoted GPU step latency (ASSUMED baseline)" if kind == "speedup" else
                  "analog: latency x (crossbar V^2 G + op-amps) + DAC/ADC conversions; "
                  "digital: GPU board power x time (quoted, not measured)")
        if preset == "ring":
            method += "; FITTED row (fit target)"
        else:
            method += "; prediction from the ring fit"
        rows.append(dict(
            claim=f"Analog ODE solver {name}, "
                  f"{'unconditional' if preset == 'ring' else 'conditional'} ({version})",
            paper=paper, spindiff=spind, method=method,
            sources=f"{src}; constants (sources in the constants table): "
            + _keys("gpu_step_latency_us", "gpu_board_power_W", *_ANALOG_KEYS)))
    return rows


def plots(outdir) -> list[Path]:
    """Write ``solver_cost.png`` (latency and energy, analog vs digital) and
    ``solver_sensitivity.png`` (speed-up and energy ratio vs tau, ADC bits, tile size) under
    ``outdir`` atomically; returns the paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from model.io import atomic_savefig

    outdir = Path(outdir)
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels = ["analog"] + list(BASELINES)
    for ax, qty, unit in ((axes[0], "latency_s", "s"), (axes[1], "energy_J", "J")):
        width = 0.38
        for k, preset in enumerate(PRESETS):
            vals = [analog_cost(preset)[qty]] + [digital_cost(preset, b)[qty] for b in BASELINES]
            xs = [i + (k - 0.5) * width for i in range(len(labels))]
            ax.bar(xs, vals, width, label=preset)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yscale("log")
        ax.set_ylabel(f"{qty.split('_')[0]} per sample ({unit})")
        ax.legend()
    fig.suptitle("Analog ODE solver vs digital N-step solver (default constants)")
    fig.tight_layout()
    paths.append(atomic_savefig(fig, outdir / "solver_cost.png", dpi=110))
    plt.close(fig)

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharey="row")
    t0 = _default_tau()
    sweeps = (
        ("integrator tau (s)", [t0 * 10 ** (k / 4) for k in range(-4, 21)],
         lambda v: AnalogConfig(tau_s=v), True),
        ("ADC bits", list(range(4, 17)), lambda v: AnalogConfig(adc_bits=v), False),
        ("tile rows = cols", [2, 4, 8, 16, 32, 64, 128, 256, 512],
         lambda v: AnalogConfig(rows=v, cols=v), True),
    )
    for j, (label, xs, make, logx) in enumerate(sweeps):
        for preset in PRESETS:
            for b in BASELINES:
                rs = [compare(preset, b, make(x)) for x in xs]
                ls = "-" if preset == "ring" else "--"
                axes[0, j].plot(xs, [r["speedup"] for r in rs], ls, label=f"{preset}/{b}")
                axes[1, j].plot(xs, [r["energy_ratio"] for r in rs], ls, label=f"{preset}/{b}")
        for i in (0, 1):
            axes[i, j].set_yscale("log")
            if logx:
                axes[i, j].set_xscale("log")
            axes[i, j].axhline(1.0, color="k", lw=0.5)
        axes[1, j].set_xlabel(label)
    axes[0, 0].set_ylabel("speed-up (digital/analog latency)")
    axes[1, 0].set_ylabel("energy ratio (digital/analog)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Sensitivity of the analog solver's speed-up and energy ratio")
    fig.tight_layout()
    paths.append(atomic_savefig(fig, outdir / "solver_sensitivity.png", dpi=110))
    plt.close(fig)
    return paths


if __name__ == "__main__":  # pragma: no cover
    import json
    print(json.dumps(figures(), indent=1))
    for row in fidelity_rows():
        print(row["claim"], "|", row["paper"], "|", row["spindiff"])
