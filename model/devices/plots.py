"""Figures of the VCMA-MTJ device model (``model/devices/mtj.py``).

``write_device_plots(out_dir)`` writes five PNGs atomically (``model.io.atomic_savefig``) and
returns their paths. Uses matplotlib's object API with the Agg canvas: no display, no pyplot state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.devices.dac import PulseDAC
from model.devices.mtj import MTJArrayDevice, MTJModel, MTJParams, MTJVariation, fit_erf
from model.io import atomic_savefig

_FOOTER = "made by model.devices.plots.write_device_plots(out_dir); {what}"


def _figure(ncols: int = 1, nrows: int = 1, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5.6 * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _footer(fig, what: str) -> None:
    fig.supxlabel(_FOOTER.format(what=what), fontsize=6, color="0.4", x=0.01, ha="left")


def plot_thermal_pulse_widths(params: MTJParams, widths_ns=(10.0, 100.0, 1000.0, 10000.0)):
    m = MTJModel(params)
    v = np.linspace(0.65 * m.vc_mV, 0.995 * m.vc_mV, 400)
    fig, ax = _figure()
    ax = ax[0, 0]
    for t in widths_ns:
        ax.plot(v, m.switch_prob(v, t), label=f"t = {t:g} ns")
    ax.axhline(float(m.p_eq()), color="0.5", lw=0.8, ls=":", label="p_eq")
    ax.set_xlabel("pulse voltage V (mV)")
    ax.set_ylabel("P(switch) from reset")
    ax.set_title(f"Thermal regime, T = {params.temperature_K:g} K, Vc = {m.vc_mV:.0f} mV")
    ax.legend(fontsize=8)
    _footer(fig, "nominal device, deterministic")
    return fig


def plot_thermal_temperatures(params: MTJParams, temps_K=(250.0, 300.0, 350.0, 400.0)):
    m0 = MTJModel(params)
    v = np.linspace(0.6 * m0.vc_mV, 0.95 * m0.vc_mV, 400)
    fig, ax = _figure()
    ax = ax[0, 0]
    for T in temps_K:
        ax.plot(v, m0.with_temperature(T).switch_prob(v), label=f"T = {T:g} K")
    ax.set_xlabel("pulse voltage V (mV)")
    ax.set_ylabel("P(switch) from reset")
    ax.set_title(f"Temperature (Δ = E_b/k_BT), t_pulse = {params.t_pulse_ns:g} ns")
    ax.legend(fontsize=8)
    _footer(fig, "nominal device, deterministic")
    return fig


def plot_precessional(params: MTJParams, v_over_vc: float = 1.1):
    m = MTJModel(params)
    t = np.linspace(params.t_prec_min_ns, params.t_prec_max_ns, 600)
    v = v_over_vc * m.vc_mV
    p = np.array([m.switch_prob(v, float(x)) for x in t])
    T = params.precession_period_ns
    fig, ax = _figure()
    ax = ax[0, 0]
    ax.plot(t, p, label=f"V = {v:.0f} mV")
    for k in range(1, int(t[-1] / T) + 1):
        ax.axvline(k * T, color="0.7", lw=0.6, ls=":")
    ax.set_xlabel("pulse width t (ns)")
    ax.set_ylabel("P(switch) from reset")
    ax.set_title(f"Precessional regime: T_prec = {T:.3f} ns, τ_d = {params.damping_time_ns:.2f} ns")
    ax.legend(fontsize=8)
    _footer(fig, "nominal device, deterministic; dotted lines: multiples of T_prec")
    return fig


def plot_erf_fit(params: MTJParams, dac: PulseDAC):
    m = MTJModel(params)
    f = fit_erf(m, params.t_pulse_ns)
    codes = np.arange(dac.code_max + 1)
    v = dac.code_to_mV(codes)
    p = m.switch_prob(v)
    fig, ax = _figure(nrows=2, height=2.6)
    a0, a1 = ax[0, 0], ax[1, 0]
    a0.plot(codes, p, label="thermal model (a)")
    a0.plot(codes, f.prob(v), "--", label=f"erf: V50 = {f.v50_mV:.1f} mV, σ_V = {f.sigma_mV:.1f} mV")
    a0.set_ylabel("P(switch)")
    a0.set_title(f"erf fit at t_pulse = {params.t_pulse_ns:g} ns, DAC {dac.v_min_mV:g}–"
                 f"{dac.v_max_mV:g} mV ({dac.code_width} bit)")
    a0.legend(fontsize=8)
    a1.plot(codes, f.prob(v) - p)
    a1.set_xlabel("DAC code")
    a1.set_ylabel("erf − model")
    _footer(fig, f"nominal device; rms residual {f.rms_residual:.3f} (fit range P 1e-3..0.999)")
    return fig


def plot_cell_variation(params: MTJParams, dac: PulseDAC, seed: int = 1, rows: int = 8,
                        cols: int = 8):
    dev = MTJArrayDevice(params, rows, cols, seed=seed, variation=MTJVariation(), dac=dac)
    codes = np.arange(dac.code_max + 1)
    v = dac.code_to_mV(codes)
    p = dev.switch_prob(v[:, None, None])          # (codes, rows, cols)
    fig, ax = _figure()
    ax = ax[0, 0]
    for r in range(rows):
        for c in range(cols):
            ax.plot(codes, p[:, r, c], lw=0.6, color="C0", alpha=0.5)
    ax.plot(codes, dev.nominal.switch_prob(v), color="k", lw=1.5, label="nominal")
    ax.set_xlabel("DAC code")
    ax.set_ylabel("P(switch)")
    ax.set_title(f"Device-to-device variation, {rows}x{cols} cells")
    ax.legend(fontsize=8)
    _footer(fig, f"MTJArrayDevice(seed={seed}, variation=MTJVariation())")
    return fig


def write_device_plots(out_dir, params: MTJParams | None = None,
                       dac: PulseDAC | None = None) -> list[Path]:
    """Write the device-model figures under ``out_dir``; returns the paths written."""
    params = MTJParams() if params is None else params
    dac = PulseDAC() if dac is None else dac
    out = Path(out_dir)
    figs = {
        "mtj_thermal_pulse_widths.png": plot_thermal_pulse_widths(params),
        "mtj_thermal_temperatures.png": plot_thermal_temperatures(params),
        "mtj_precessional.png": plot_precessional(params),
        "mtj_erf_fit.png": plot_erf_fit(params, dac),
        "mtj_cell_variation.png": plot_cell_variation(params, dac),
    }
    return [atomic_savefig(fig, out / name, dpi=120) for name, fig in figs.items()]


if __name__ == "__main__":  # pragma: no cover
    import sys
    for path in write_device_plots(sys.argv[1] if len(sys.argv) > 1 else "build/device"):
        print(path)
