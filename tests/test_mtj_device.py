"""Tests of the VCMA-MTJ device model (model/devices/mtj.py, dac.py, plots.py).

Expected values are derived here from the physics (Boltzmann occupancy, Ohm's law, the
precession frequency from CODATA's gyromagnetic ratio, binomial statistics), not copied from the
implementation's output.
"""

from dataclasses import replace
import re
from math import erfc, exp, log, sqrt

import numpy as np
import pytest

from model.devices.dac import PulseDAC
from model.devices.mtj import (MTJArrayDevice, MTJModel, MTJParams, MTJVariation,
                               default_emulator_config, device_row_period_ns, emulator_offsets,
                               emulator_table, fit_erf)

P0 = MTJParams()
K_B = 1.380649e-23


def phi(x):
    return 0.5 * erfc(-x / sqrt(2.0))


# --- (a) thermal regime ---------------------------------------------------------------------
@pytest.mark.parametrize("h", [0.0, 0.005, 0.01, 0.03])
def test_long_pulse_reaches_boltzmann_equilibrium_not_one(h):
    p = replace(P0, h_bias_over_hk=h)
    m = MTJModel(p)
    # Boltzmann: the AP/P energy difference is the Zeeman energy 2*mu0*Ms*H*Vol = 4*h*E_b.
    e_b = p.delta0_kT * K_B * p.temperature_ref_K
    expect = 1.0 / (1.0 + exp(-4.0 * h * e_b / (K_B * p.temperature_K)))
    v = np.array([0.9, 0.97, 0.999]) * m.vc_mV
    for p_start in (0.0, 1.0):
        got = m.switch_prob(v, p.t_thermal_max_ns, p0=p_start)
        assert np.allclose(got, expect, atol=1e-9), (h, p_start, got, expect)
    if h == 0.0:
        assert expect == 0.5
    if 0 < h <= 0.01:
        assert expect < 0.95   # a long pulse does NOT drive the cell to AP with certainty


@pytest.mark.parametrize("t_ns", [10.0, 100.0, 1000.0, 1e5])
def test_thermal_prob_monotonic_in_voltage(t_ns):
    m = MTJModel()
    v = np.linspace(0.0, m.vc_mV * (1 - 1e-9), 4001)
    p = m.switch_prob(v, t_ns)
    assert np.all(np.diff(p) >= -1e-15), t_ns
    mid = (p > 1e-6) & (p < p[-1] - 1e-9)   # above: the P state is unstable (u <= h), flat
    assert mid.sum() > 10 and np.all(np.diff(p[mid]) > 0), t_ns
    assert p[0] < 1e-6 and p[-1] > 0.999, (p[0], p[-1])


def test_longer_pulse_lowers_v50():
    m = MTJModel()
    v50 = [m.v50_mV(t) for t in (10.0, 100.0, 1e3, 1e4)]
    assert all(a > b for a, b in zip(v50, v50[1:])), v50


def test_temperature_trend_and_barrier_scaling():
    # At fixed V below Vc the P->AP barrier is Δ1 = E_b(u-h)^2/(u k_B T): higher T -> lower
    # barrier -> higher rate -> higher P.  With p_eq ~ 1 and r_AP->P << r_P->AP,
    # -ln(1 - P/p_eq) = r1 t = (t/τ0) exp(-Δ1), so (ln(t/τ0) - ln(-ln(1-P/p_eq)))·T is
    # T-independent.
    m0 = MTJModel()
    t = P0.t_pulse_ns
    v = m0.v_at_prob_mV(0.05)
    probs, scaled = [], []
    for T in (250.0, 300.0, 350.0, 400.0):
        m = m0.with_temperature(T)
        pr = float(m.switch_prob(v))
        probs.append(pr)
        scaled.append((log(t / P0.tau0_ns) - log(-log(1 - pr / float(m.p_eq())))) * T)
    assert all(a < b for a, b in zip(probs, probs[1:])), probs
    assert np.allclose(scaled, scaled[1], rtol=1e-4), scaled
    assert m0.with_temperature(350.0).v50_mV() < m0.v50_mV()


# --- reset / pulse / sense ------------------------------------------------------------------
def test_reset_writes_parallel_state():
    dev = MTJArrayDevice(rows=2, cols=8, seed=11)
    dev.pulse(1, np.full(8, 0.999 * dev.model.vc_mV.min()), 1e6)    # drive to ~AP
    assert dev.state[1].sum() > 0, "seed 11"
    assert np.all(dev.reset(1) == 0) and np.all(dev.state[1] == 0)
    # after a reset a weak pulse switches only with the model's (small) probability
    zeros = np.zeros(8, dtype=int)
    p = dev.sensed_prob(dev.dac.code_to_mV(zeros))[1]
    assert p.max() < 0.1, p
    freq = dev.trials(1, zeros, 4000).mean(axis=0)
    assert np.all(freq < p + 5 * np.sqrt(p * (1 - p) / 4000) + 1e-3), ("seed 11", freq, p)


def test_reset_error_rate():
    seed, n, e = 5, 20000, 0.2
    dev = MTJArrayDevice(replace(P0, reset_error_prob=e), rows=1, cols=8, seed=seed,
                         variation=None)
    zeros = np.zeros(8, dtype=int)   # code 0: no switching; sensed 1s are failed resets
    frac = dev.trials(0, zeros, n).mean()
    assert abs(frac - e) < 5 * sqrt(e * (1 - e) / (8 * n)), (seed, frac)


def test_pulse_from_ap_uses_master_equation():
    # From AP (p0=1) a thermal pulse with tiny voltage keeps AP; long strong pulse -> p_eq.
    m = MTJModel(replace(P0, h_bias_over_hk=0.0))
    assert m.switch_prob(900.0, 1000.0, p0=1.0) > 0.999
    # precessional reversal is symmetric: from AP at T/2 it returns to P
    t_half = 0.5 * P0.precession_period_ns
    p_from_p = m.switch_prob(1.1 * m.vc_mV, t_half, p0=0.0)
    p_from_ap = m.switch_prob(1.1 * m.vc_mV, t_half, p0=1.0)
    assert abs(p_from_ap - (1 - p_from_p)) < 1e-12


# --- (b) precessional -----------------------------------------------------------------------
def test_precessional_oscillation():
    p = P0
    m = MTJModel(p)
    # γ/2π = 28.025 GHz/T (CODATA 2018) = 2.8025 MHz/Oe  ->  period of precession about H_x
    period_ns = 1.0 / (2.8025e-3 * p.h_inplane_Oe)
    assert abs(p.precession_period_ns - period_ns) < 1e-3 * period_ns
    v = 1.1 * m.vc_mV
    half, full = m.switch_prob(v, period_ns / 2), m.switch_prob(v, period_ns)
    assert half > 0.9 and full < 0.1 and half > full, (half, full)
    # damping and dephasing shrink the swing over later periods, towards 1/2
    later_half, later_full = m.switch_prob(v, 4.5 * period_ns), m.switch_prob(v, 5 * period_ns)
    assert later_half - later_full < half - full, (later_half, later_full)
    assert abs(m.switch_prob(v, p.t_prec_max_ns) - 0.5) < abs(half - 0.5), "no dephasing"


# --- (c) erf fit ----------------------------------------------------------------------------
def test_erf_fit_small_residual_and_consistent_v50():
    m = MTJModel()
    f = fit_erf(m, P0.t_pulse_ns)
    assert f.rms_residual < 0.03 and f.max_residual < 0.06, f
    assert abs(f.v50_mV - m.v50_mV()) < 0.5 * f.sigma_mV, f
    assert abs(float(f.prob(f.v50_mV)) - 0.5) < 1e-12


def test_default_dac_puts_v50_mid_code_with_useful_width():
    dac = PulseDAC()
    f = fit_erf(MTJModel(), P0.t_pulse_ns)
    code50 = (f.v50_mV - dac.v_min_mV) / dac.lsb_mV
    assert abs(code50 - 128) <= 16, code50
    assert 10 <= f.sigma_mV / dac.lsb_mV <= 30, f.sigma_mV / dac.lsb_mV


def test_default_dac_inside_validity_for_every_truncated_cell():
    # Worst truncated cell: Δ0 (1 - 3σ) and ξ (1 + 3σ) give the lowest Vc = E_b t/(ξ A).
    var, dac = MTJVariation(), PulseDAC()
    vc_low = P0.vc_mV * (1 - var.clip_sigma * var.delta0_rel_sigma) / (
        1 + var.clip_sigma * var.xi_rel_sigma)
    assert dac.v_max_mV < vc_low, (dac.v_max_mV, vc_low)
    for seed in range(5):
        dev = MTJArrayDevice(rows=16, cols=16, seed=seed)
        p = dev.switch_prob(dac.code_to_mV(np.arange(256))[:, None, None])
        assert p.shape == (256, 16, 16) and np.all(np.isfinite(p)), seed


# --- vectorisation and variation ------------------------------------------------------------
def test_vectorised_shapes_and_per_cell_agreement():
    dev = MTJArrayDevice(rows=3, cols=5, seed=2)
    v = np.linspace(1050, 1150, 5)
    p = dev.switch_prob(v)
    assert p.shape == (3, 5)
    assert dev.switch_prob(v[:, None, None]).shape == (5, 3, 5)
    for r in range(3):
        for c in range(5):
            cell = MTJModel(P0, delta0_kT=dev._cells["delta0_kT"][r, c],
                            xi_vcma_fJ_per_Vm=dev._cells["xi_vcma_fJ_per_Vm"][r, c],
                            h_bias_over_hk=dev._cells["h_bias_over_hk"][r, c])
            assert abs(cell.switch_prob(v[c]) - p[r, c]) < 1e-12
    codes = np.full(5, 128)
    b = dev.trials(1, codes, 7)
    assert b.shape == (7, 5) and b.dtype == np.uint8
    b1 = dev.trial(1, codes)
    assert b1.shape == (5,) and b1.dtype == np.uint8
    assert dev.cell_v50_mV().shape == (3, 5)


def test_variation_statistics():
    seed = 7
    var = MTJVariation()
    dev = MTJArrayDevice(rows=64, cols=64, seed=seed, variation=var)
    n = 64 * 64
    for key, nominal, rel in (("delta0_kT", P0.delta0_kT, var.delta0_rel_sigma),
                              ("xi_vcma_fJ_per_Vm", P0.xi_vcma_fJ_per_Vm, var.xi_rel_sigma),
                              ("r_p_ohm", P0.r_p_ohm, var.r_p_rel_sigma)):
        x = dev._cells[key] / nominal - 1.0
        assert abs(x.mean()) < 5 * rel / sqrt(n), (seed, key, x.mean())
        # truncation at 3σ lowers the std by ~1.3 %; allow 10 %
        assert 0.9 * rel < x.std() < 1.05 * rel, (seed, key, x.std())
        assert np.abs(x).max() <= var.clip_sigma * rel + 1e-12, (seed, key)
    h = dev._cells["h_bias_over_hk"] - P0.h_bias_over_hk
    assert 0.9 * var.h_bias_sigma < h.std() < 1.05 * var.h_bias_sigma, (seed, h.std())
    v50 = dev.cell_v50_mV()
    assert v50.std() > 0 and abs(np.median(v50) - dev.nominal.v50_mV()) < 0.2 * v50.std(), seed
    flat = MTJArrayDevice(rows=4, cols=4, seed=seed, variation=None)
    assert np.ptp(flat.cell_v50_mV()) == 0.0


def test_drift_random_walk_and_linear():
    seed, dt = 3, 100.0
    var = MTJVariation(drift_rw_mV_per_sqrt_s=0.5, drift_linear_mV_per_s=0.01)
    dev = MTJArrayDevice(rows=64, cols=64, seed=seed, variation=var)
    v50_before = dev.cell_v50_mV()
    dev.drift(dt)
    off = dev.v_offset_mV
    n = off.size
    sd = var.drift_rw_mV_per_sqrt_s * sqrt(dt)
    assert abs(off.mean() - var.drift_linear_mV_per_s * dt) < 5 * sd / sqrt(n), (seed, off.mean())
    assert 0.9 * sd < off.std() < 1.1 * sd, (seed, off.std())
    # the offset adds to the applied voltage: V50 moves down by exactly the offset
    assert np.allclose(dev.cell_v50_mV(), v50_before - off, atol=1e-6), seed
    assert dev.time_s == dt


# --- sensing --------------------------------------------------------------------------------
def test_read_error_vs_tmr():
    errs = []
    for tmr in (5.0, 20.0, 50.0, 100.0, 160.0, 300.0):
        m = MTJModel(replace(P0, tmr_pct=tmr))
        e01, e10 = m.read_error_prob()
        errs.append(float(e01) + float(e10))
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[4] < 1e-9, errs[4]
    # Ohm's law: margin to the midpoint reference is (I_P - I_AP)/2; pick the noise for 2σ.
    r_p = P0.r_p_ohm
    i_p = P0.v_read_mV * 1e-3 / r_p * 1e9
    i_ap = i_p / (1 + P0.tmr_pct / 100)
    m = MTJModel(replace(P0, read_noise_nA=(i_p - i_ap) / 4))
    e01, e10 = m.read_error_prob()
    assert abs(e01 - phi(-2.0)) < 1e-9 and abs(e10 - phi(-2.0)) < 1e-9


def test_sense_empirical_error_rate():
    seed, n = 9, 20000
    p = replace(P0, tmr_pct=20.0)
    dev = MTJArrayDevice(p, rows=1, cols=4, seed=seed, variation=None)
    e01, e10 = dev.read_error_prob()
    for state, e in ((0, e01[0, 0]), (1, e10[0, 0])):
        bits = dev.sense(np.full((n, 4), state, dtype=np.uint8), 0)
        wrong = (bits != state).mean()
        assert abs(wrong - e) < 5 * sqrt(e * (1 - e) / (4 * n)), (seed, state, wrong, e)


# --- randomness ---------------------------------------------------------------------------
def test_same_seed_same_bits_and_trial_matches_trials():
    codes = np.array([100, 110, 120, 128, 136, 140, 150, 160])
    a = MTJArrayDevice(seed=42).trials(3, codes, 500)
    b = MTJArrayDevice(seed=42).trials(3, codes, 500)
    c = MTJArrayDevice(seed=43).trials(3, codes, 500)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    d1, d2 = MTJArrayDevice(seed=42), MTJArrayDevice(seed=42)
    assert np.array_equal(d1.trial(3, codes), d2.trials(3, codes, 1)[0])


def test_trials_frequency_matches_probability():
    seed, n = 123, 20000
    dev = MTJArrayDevice(rows=4, cols=8, seed=seed)
    v50 = dev.cell_v50_mV()
    for row in range(4):
        # codes around each cell's own V50 (and some in the tails)
        codes = np.clip(dev.dac.mV_to_code(np.clip(v50[row], dev.dac.v_min_mV, dev.dac.v_max_mV))
                        + np.array([-40, -20, -5, 0, 0, 5, 20, 40]), 0, 255)
        p = dev.sensed_prob(dev.dac.code_to_mV(codes))[row]
        freq = dev.trials(row, codes, n).mean(axis=0)
        bound = 5 * np.sqrt(p * (1 - p) / n) + 1e-4
        assert np.all(np.abs(freq - p) < bound), (seed, row, freq, p)


# --- emulator ROM and offsets -----------------------------------------------------------------
def test_emulator_table_properties():
    dac = PulseDAC()
    tab = emulator_table(dac, MTJModel(), P0.t_pulse_ns, prob_bits=16)
    assert len(tab) == 256 and all(isinstance(x, int) for x in tab)
    assert all(0 <= x <= 65535 for x in tab)
    assert all(a <= b for a, b in zip(tab, tab[1:]))
    assert tab[0] < 0.01 * 65536 and tab[-1] == 65535
    mid = next(i for i, x in enumerate(tab) if x >= 32768)
    assert abs(mid - 128) <= 16, mid
    small = emulator_table(PulseDAC(code_width=4), MTJModel(), prob_bits=8)
    assert len(small) == 16 and max(small) <= 255


def test_emulator_offsets_track_cell_v50():
    seed = 4
    dev = MTJArrayDevice(rows=8, cols=8, seed=seed)
    dac = dev.dac
    tab = np.array(emulator_table(dac, dev.nominal))
    off = np.array(emulator_offsets(dev, dac)).reshape(8, 8)
    v50 = dev.cell_v50_mV()
    # sign: the cell with the lowest V50 gets the largest offset
    assert off.flat[np.argmin(v50)] == off.max() and off.flat[np.argmax(v50)] == off.min(), seed
    # the emulator's P at (cell's V50 code + offset) is ~1/2: within ~3 codes of the slope
    code50 = dac.mV_to_code(v50)
    thr = tab[np.clip(code50 + off, 0, 255)] / 65536
    assert np.all(np.abs(thr - 0.5) < 0.1), (seed, thr)


def test_default_emulator_config_fits_emulator_contract():
    from model.blocks.config import ArrayConfig, EmulatorConfig
    cfg = ArrayConfig()
    table, offsets = default_emulator_config(cfg, seed=1)
    emu = EmulatorConfig(array=cfg, table=table, offsets=offsets)   # validates ranges
    assert len(emu.offsets) == cfg.cells and any(o != 0 for o in offsets)
    t0, o0 = default_emulator_config(cfg, seed=1, variation=False)
    assert t0 == table and set(o0) == {0}
    assert default_emulator_config(cfg, seed=1) == (table, offsets)


def test_row_period():
    assert device_row_period_ns(P0) == P0.t_reset_ns + P0.t_pulse_ns + P0.t_settle_ns \
        + P0.t_sense_ns
    assert device_row_period_ns(P0, 2.0) < device_row_period_ns(P0)


# --- validity errors ----------------------------------------------------------------------------
def test_validity_errors_name_parameter():
    m = MTJModel()
    dev = MTJArrayDevice(rows=2, cols=4, seed=0)
    cases = [
        (lambda: m.switch_prob(m.vc_mV + 1.0, 1000.0), r"v_mV .*thermal.*allowed"),
        (lambda: m.switch_prob(-1.0, 1000.0), r"v_mV = -1.0.*allowed \[0"),
        (lambda: m.switch_prob(2500.0, 1.0), r"v_mV = 2500.0.*allowed"),
        (lambda: m.switch_prob(m.vc_mV - 10.0, 0.4), r"v_mV .*precessional.*allowed"),
        (lambda: m.switch_prob(1000.0, 7.0), r"t_pulse_ns = 7.0.*allowed"),
        (lambda: m.switch_prob(1500.0, 0.01), r"t_pulse_ns = 0.01.*allowed"),
        (lambda: m.switch_prob(1000.0, 2e9), r"t_pulse_ns = 2000000000.0.*allowed"),
        (lambda: m.switch_prob(1000.0, 1000.0, p0=1.5), r"p0 = 1.5.*allowed"),
        (lambda: MTJParams(temperature_K=500.0), r"temperature_K = 500.0.*allowed"),
        (lambda: m.with_temperature(100.0), r"temperature_K = 100.0.*allowed"),
        (lambda: MTJParams(diameter_nm=-5.0), r"diameter_nm = -5.0.*allowed"),
        (lambda: MTJParams(t_pulse_ns=7.0), r"t_pulse_ns"),
        (lambda: MTJParams(xi_vcma_fJ_per_Vm=float("nan")), r"xi_vcma_fJ_per_Vm"),
        (lambda: MTJVariation(delta0_rel_sigma=0.5), r"delta0_rel_sigma = 0.5.*allowed"),
        (lambda: PulseDAC(code_width=0), r"code_width = 0.*allowed"),
        (lambda: PulseDAC(v_min_mV=1200.0, v_max_mV=1100.0), r"v_max_mV"),
        (lambda: PulseDAC().code_to_mV(256), r"code = 256.*allowed \[0, 255\]"),
        (lambda: PulseDAC().code_to_mV(-1), r"code = -1.*allowed"),
        (lambda: PulseDAC().mV_to_code(5.0), r"v_mV = 5.0.*allowed"),
        (lambda: dev.trial(2, np.full(4, 128)), r"row = 2.*allowed \[0, 1\]"),
        (lambda: dev.trials(0, np.full(3, 128), 5), r"codes"),
        (lambda: dev.trials(0, np.full(4, 128), 0), r"n = 0"),
        (lambda: dev.drift(-1.0), r"dt_s = -1.0.*allowed"),
        (lambda: MTJArrayDevice(rows=0), r"rows = 0"),
        (lambda: MTJModel(replace(P0, h_bias_over_hk=0.0)).v50_mV(), r"target.*h_bias_over_hk"),
        (lambda: fit_erf(dev.model), r"model"),
    ]
    for i, (fn, pattern) in enumerate(cases):
        try:
            fn()
        except ValueError as e:
            assert re.search(pattern, str(e)), (i, pattern, str(e))
        else:
            pytest.fail(f"case {i} ({pattern}) did not raise ValueError")
    # the precessional branch of the device rejects cells whose Vc is above the pulse voltage
    with pytest.raises(ValueError, match="v_mV"):
        dev.switch_prob(np.full(4, dev.model.vc_mV.min() + 1.0), 0.5)


# --- plots --------------------------------------------------------------------------------
def test_write_device_plots(tmp_path):
    from model.devices.plots import write_device_plots
    paths = write_device_plots(tmp_path)
    assert len(paths) == 5
    for p in paths:
        assert p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
