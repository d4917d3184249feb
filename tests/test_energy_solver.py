"""Analog ODE solver vs digital solver model (model/energy/solver.py, docs/energy.md §5)."""

import json
import math

import pytest

from model.energy import analog_constants as ac
from model.energy import solver as S


def test_macs_counted_from_scoremlp_layers():
    import torch
    from model.diffusion.score_net import ScoreMLP
    net = ScoreMLP(hidden=14)
    by_hand = sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Linear))
    assert S.net_shape("ring").macs == by_hand == 2 * 14 + 14 * 14 + 14 * 2


def test_asic_energy_is_steps_times_per_eval_by_hand():
    c = S.constants()
    shape = S.net_shape("ring")
    steps = 7
    d = S.digital_cost("ring", "asic45", steps=steps)
    e_mac, e_sram = c["mac_fp32_pJ"].value * 1e-12, c["sram_read_32b_pJ"].value * 1e-12
    assert d["breakdown_J"]["mac"] == pytest.approx(steps * shape.macs * e_mac)
    assert d["breakdown_J"]["weights"] == pytest.approx(steps * shape.macs * e_sram)
    assert d["macs"] == steps * shape.macs
    # linear in steps
    d2 = S.digital_cost("ring", "asic45", steps=2 * steps)
    assert d2["energy_J"] == pytest.approx(2 * d["energy_J"])
    assert d2["latency_s"] == pytest.approx(2 * d["latency_s"])


def test_gpu_energy_is_power_times_time_over_batch():
    c = S.constants()
    d = S.digital_cost("ring", "gpu", steps=100, batch=4)
    t = 100 * c["gpu_step_latency_us"].value * 1e-6 / 4
    assert d["latency_s"] == pytest.approx(t)
    assert d["energy_J"] == pytest.approx(t * c["gpu_board_power_W"].value)


def test_doubling_tau_doubles_integration_time():
    a0 = S.analog_cost("ring", S.AnalogConfig(tau_s=0.01))
    a1 = S.analog_cost("ring", S.AnalogConfig(tau_s=0.02))
    assert a0["limit"] == a1["limit"] == "tau"
    t_adc = S.constants()["adc_conv_time_us"].value * 1e-6
    assert a1["latency_s"] - t_adc == pytest.approx(2 * (a0["latency_s"] - t_adc))
    # tau x span when tau-limited: 0.01 s x 1.0
    assert a0["latency_s"] - t_adc == pytest.approx(0.01 * 1.0)


def test_dac_limit_below_tau_min():
    a = S.analog_cost("ring", S.AnalogConfig(tau_s=1e-9))
    assert a["limit"] == "dac"
    c = S.constants()
    t_dac = (c["dac_update_us"].value + c["dac_settle_us"].value) * 1e-6
    assert a["interval_s"] == pytest.approx(t_dac)
    hold = S.analog_cost("ring", S.AnalogConfig(tau_s=1e-9, refresh="hold"))
    assert hold["interval_s"] == pytest.approx(t_dac + 1e-9 * 0.005)


def test_zero_duration_integration_costs_only_conversions():
    a = S.analog_cost("ring", S.AnalogConfig(span=0.0))
    c = S.constants()
    shape = S.net_shape("ring")
    assert a["n_refresh"] == 0
    e_adc = shape.dim * c["adc_fom_fJ_per_step"].value * 1e-15 * 2 ** 12
    # only the ADC readout time remains: static power over it plus the ADC conversions
    t_adc = c["adc_conv_time_us"].value * 1e-6
    assert a["latency_s"] == pytest.approx(t_adc)
    assert a["breakdown_J"]["dac"] == 0.0
    assert a["breakdown_J"]["adc"] == pytest.approx(e_adc)
    assert a["energy_J"] == pytest.approx(e_adc + t_adc * a["power_W"])


def test_crossbar_power_by_hand_and_tiling():
    c = S.constants()
    shape = S.net_shape("ring")
    m = S.crossbar_mapping(shape, 64, 64)
    cpw = int(c["cells_per_weight_1"].value)
    assert m["cells_used"] == sum((i + 1) * o * cpw for i, o in shape.layers)
    small = S.crossbar_mapping(shape, 4, 4)
    assert small["tiles"] > m["tiles"] and small["opamps"] > m["opamps"]
    a = S.analog_cost("ring", S.AnalogConfig(rows=64, cols=64, tau_s=0.01))
    v = c["yang_v_read_V"].value
    p = v * v * c["input_activity_1"].value * 1e-6 * (
        c["rram_g_mean_uS"].value * m["cells_used"]
        + c["rram_g_off_uS"].value * m["cells_idle_driven"])
    assert a["breakdown_J"]["crossbar"] == pytest.approx(p * a["latency_s"])


def test_adc_bits_double_adc_energy_per_bit():
    e8 = S.analog_cost("ring", S.AnalogConfig(adc_bits=8))["breakdown_J"]["adc"]
    e9 = S.analog_cost("ring", S.AnalogConfig(adc_bits=9))["breakdown_J"]["adc"]
    assert e9 == pytest.approx(2 * e8)


def test_fit_reproduces_target_and_is_flagged():
    tau = S.fit_tau(64.8, "ring", "gpu")
    r = S.compare("ring", "gpu", S.AnalogConfig(tau_s=tau))
    assert r["speedup"] == pytest.approx(64.8, rel=1e-9)
    rep = S.reproduce("arxiv")
    assert rep["ring_speedup"] == pytest.approx(64.8, rel=1e-9)
    assert rep["ring_energy_ratio"] == pytest.approx(5.2, rel=1e-9)
    # the implied analog/digital power ratio needs no model: speed-up / energy ratio
    assert rep["implied_power_ratio_ring"] == pytest.approx(64.8 / 5.2)
    figs = S.figures()
    assert "FITTED" in figs["solver.fit.arxiv.tau"]["definition"]
    # an unreachable speed-up (faster than the DAC floor allows) gives None, not a number
    assert S.fit_tau(1e12, "ring", "gpu") is None


def test_constants_have_unit_source_status():
    for key, c in {**ac.all_constants(), **S.constants()}.items():
        assert c.unit and c.source and c.status in ("sourced", "derived", "assumed", "fitted"), key
        assert math.isfinite(c.value), key


def test_figures_rows_json_and_plots(tmp_path):
    figs = S.figures()
    json.dumps(figs)
    for k, v in figs.items():
        assert set(v) >= {"value", "unit"} and ("source" in v or "definition" in v), k
    rows = S.fidelity_rows()
    assert len(rows) == len(ac.CLAIMS) == 8
    for row in rows:
        assert set(row) == {"claim", "paper", "spindiff", "method", "sources"}
    paths = S.plots(tmp_path)
    assert len(paths) == 2 and all(p.exists() and p.stat().st_size > 1000 for p in paths)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("call, word", [
    (lambda: S.AnalogConfig(tau_s=-1.0), "tau_s"),
    (lambda: S.AnalogConfig(tau_s=0.0), "tau_s"),
    (lambda: S.AnalogConfig(adc_bits=0), "adc_bits"),
    (lambda: S.AnalogConfig(rows=0), "rows"),
    (lambda: S.AnalogConfig(refresh="sometimes"), "refresh"),
    (lambda: S.digital_cost("ring", "gpu", steps=0), "steps"),
    (lambda: S.digital_cost("moons", "gpu"), "preset"),
    (lambda: S.digital_cost("ring", "tpu"), "baseline"),
    (lambda: S.analog_cost("moons"), "preset"),
    (lambda: S.reproduce("preprint"), "version"),
])
def test_bad_input_names_parameter_and_range(call, word):
    with pytest.raises(ValueError, match=word) as e:
        call()
    assert "allowed" in str(e.value)
