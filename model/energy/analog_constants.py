"""Constants of the analog time-continuous ODE solver (``docs/energy.md`` §5).

Analog-circuit figures (integrator, op-amps, DAC refresh and settling), the set-up of Yang et al.'s
demonstrator as its reference code shows it, and their published claims. Digital figures (MAC,
SRAM, ADC/DAC per conversion, RRAM cell, CPU/GPU boards) come from :func:`model.energy.constants.
table`; :data:`DRAFT_DIGITAL` holds stand-ins that :mod:`model.energy.solver` uses only for keys
that table does not (yet) provide, each marked as such.

Sources
-------
YANG-ARXIV
    J. Yang et al., "Resistive memory-based neural differential equation solver for score-based
    diffusion model", arXiv 2404.05648 v1 (2024), abstract.
YANG-CODE
    github.com/yangjc97/memristor-sde-diffusion: ``README.md`` (journal abstract),
    ``MCU_Project/HDPM/HARDWARE/TIMER/timer.c`` (TIM3 interrupt: t += 0.005 every 5 ms up to 1.2,
    18 DAC words per tick), ``MCU_Project/HDPM/Main/main.c`` (``TIM3_Int_Init(50-1, 8400-1)`` on
    the 84 MHz APB1 timer clock = 5 ms; ``v_bias`` = 0.1 V), ``MCU_Project/HDPM/HARDWARE/max5742/
    max5742.{c,h}`` (bit-banged 16-bit SPI words, ``DELAY_dac`` = 2 us per clock half-period),
    ``unconditional/HDPM copy.ipynb`` (``num_steps = 10000``, ``n_samples = 50000``).
HOROWITZ
    M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, p. 10-14,
    45 nm table.

Every key carries its unit; ``status`` is "sourced", "derived", "assumed" or "fitted".
"""

from __future__ import annotations

from model.energy.constants import Constant

_YC = "Yang et al. reference code (YANG-CODE)"

#: Yang et al.'s demonstrator and set-up, as the reference code runs it.
YANG = {
    "yang_refresh_period_ms": Constant(
        5.0, "ms", f"{_YC}: main.c TIM3_Int_Init(49, 8399) at 84 MHz -> 10 kHz / 50; timer.c "
        "comment '5ms'", "sourced"),
    "yang_ode_dt_per_refresh_1": Constant(
        0.005, "1", f"{_YC}: timer.c 't += 0.005f' per timer tick (ODE time units)", "sourced"),
    "yang_ode_span_1": Constant(
        1.2, "1", f"{_YC}: timer.c runs t from 0 until t > 1.2 (the reverse SDE time 1 - t "
        "reaches 0 at t = 1; the last 0.2 holds beta at its end value)", "sourced"),
    "yang_tau_demo_s": Constant(
        1.0, "s", "derived: 5 ms of wall time per 0.005 of ODE time (yang_refresh_period_ms / "
        "yang_ode_dt_per_refresh_1)", "derived"),
    "yang_dac_bits": Constant(12.0, "bit", f"{_YC}: MAX5742 12-bit DACs, codes 2048*(1 + v)",
                              "sourced"),
    "yang_dac_words_per_refresh_1": Constant(
        18.0, "1", f"{_YC}: timer.c writes g^2, f, 14 time-embedding and 2 noise channels per tick",
        "sourced"),
    "yang_dac_word_write_us": Constant(
        64.0, "us", f"derived from {_YC}: max5742.c clocks 16 bits, each high and low for "
        "DELAY_dac = 2 us (max5742.h): 16 x 2 x 2 us", "derived"),
    "yang_v_read_V": Constant(
        0.1, "V", f"{_YC}: main.c v_bias = 0.1 V default ('V_bias and DAC coef')", "sourced",
        "used as the crossbar input amplitude"),
    "yang_node_nm": Constant(180.0, "nm", "YANG-ARXIV abstract: 180 nm resistive memory macros",
                             "sourced"),
    "yang_ring_steps_1": Constant(
        10000.0, "1", f"{_YC}: unconditional notebook num_steps = 10000 (probability-flow Euler)",
        "sourced"),
    "yang_cond_steps_1": Constant(
        5000.0, "1", "PAPERS.md section B from the conditional notebook: 500 samples, 5k steps",
        "sourced"),
}

#: Analog circuit figures for an integrated version of the solver.
ANALOG = {
    "ode_span_1": Constant(
        1.0, "1", "VP-SDE reverse time runs 1 -> 0 (Song et al., ICLR 2021); the demo's extra 0.2 "
        "(yang_ode_span_1) is a hold, left out of the integrated design", "derived"),
    "integrator_cap_pF": Constant(
        10.0, "pF", "ASSUMED: on-chip MIM integrating capacitor (~10 pF is a few 1000 um^2 at "
        "1-2 fF/um^2)", "assumed"),
    "opamp_power_uW": Constant(
        100.0, "uW", "ASSUMED: low-power CMOS op-amp (integrator, TIA, summing amp) at 1.8 V, "
        "~50 uA", "assumed"),
    "opamp_gbw_MHz": Constant(
        10.0, "MHz", "ASSUMED: op-amp gain-bandwidth at opamp_power_uW", "assumed"),
    "integrator_bw_margin_1": Constant(
        10.0, "1", "ASSUMED: integrator unity-gain frequency 1/(2 pi tau) kept 10x below the "
        "op-amp GBW", "assumed"),
    "dac_settle_us": Constant(
        1.0, "us", "ASSUMED: 12-bit on-chip DAC settling to 1/2 LSB", "assumed"),
    "dac_update_us": Constant(
        0.1, "us", "ASSUMED: parallel digital load of an on-chip DAC register", "assumed"),
    "adc_conv_time_us": Constant(
        1.0, "us", "ASSUMED: SAR ADC conversion of the final state (one per output)", "assumed"),
    "cells_per_weight_1": Constant(
        2.0, "1", "ASSUMED: differential pair (G+ - G-) per signed weight", "assumed"),
    "crossbar_rows_1": Constant(
        32.0, "1", "ASSUMED: crossbar tile rows (the net needs at most 15 input rows)", "assumed"),
    "crossbar_cols_1": Constant(
        32.0, "1", "ASSUMED: crossbar tile columns (the net needs at most 28 differential "
        "columns)", "assumed"),
    "input_activity_1": Constant(
        0.5, "1", "ASSUMED: mean |V_in| / V_read over rows during integration", "assumed"),
}

#: Stand-ins for digital figures until ``constants.table()`` provides them (solver prefers it).
DRAFT_DIGITAL = {
    "mac_fp32_pJ": Constant(4.6, "pJ", "HOROWITZ 45 nm: fp32 mult 3.7 pJ + add 0.9 pJ",
                            "derived", "draft until constants.table provides it"),
    "add_fp32_pJ": Constant(0.9, "pJ", "HOROWITZ 45 nm: fp32 add", "sourced",
                            "draft until constants.table provides it"),
    "sram_read_32b_pJ": Constant(5.0, "pJ", "HOROWITZ 45 nm: 8 kB SRAM 64-bit read 10 pJ, "
                                 "halved for 32 bits", "derived",
                                 "draft until constants.table provides it"),
    "dac_conv_pJ": Constant(10.0, "pJ", "ASSUMED: 12-bit on-chip DAC per conversion", "assumed",
                            "draft until constants.table provides it"),
    "adc_fom_fJ_per_step": Constant(
        10.0, "fJ/conv-step", "ASSUMED: Walden FoM of a low-speed SAR ADC (order of the "
        "Murmann ADC survey's best designs)", "assumed", "draft until constants.table provides it"),
    "rram_g_unit_uS": Constant(10.0, "uS", "ASSUMED: RRAM conductance coding weight 1", "assumed",
                               "draft until constants.table provides it"),
    "rram_g_mean_uS": Constant(10.0, "uS", "ASSUMED: mean programmed RRAM conductance", "assumed",
                               "draft until constants.table provides it"),
    "rram_g_off_uS": Constant(0.1, "uS", "ASSUMED: unprogrammed (HRS) cell conductance",
                              "assumed", "draft until constants.table provides it"),
    "digital_clock_GHz": Constant(1.0, "GHz", "ASSUMED: 45 nm digital accelerator clock",
                                  "assumed"),
    "digital_mac_lanes_1": Constant(16.0, "1", "ASSUMED: MAC lanes of the digital accelerator",
                                    "assumed"),
    "digital_layer_overhead_cycles_1": Constant(
        10.0, "1", "ASSUMED: pipeline fill/drain per layer of the digital accelerator", "assumed"),
    "gpu_step_latency_us": Constant(
        50.0, "us", "ASSUMED: one Euler step of a tiny MLP in eager PyTorch on a GPU is "
        "launch-bound, ~10 kernels x ~5 us", "assumed", "quoted order, not measured"),
    "gpu_board_power_W": Constant(75.0, "W", "ASSUMED: GPU board power while launch-bound "
                                  "(well under TDP)", "assumed", "quoted order, not measured"),
    "cpu_step_latency_us": Constant(
        20.0, "us", "ASSUMED: one Euler step of a tiny MLP in eager PyTorch on a CPU core "
        "(~10 ops x ~2 us dispatch)", "assumed", "quoted order, not measured"),
    "cpu_power_W": Constant(65.0, "W", "ASSUMED: desktop CPU package power (65 W TDP class)",
                            "assumed", "quoted order, not measured"),
}

#: The papers' claims (speed-up = digital time / analog time; energy = digital / analog).
CLAIMS = {
    ("arxiv", "ring", "speedup"): (64.8, "x", "YANG-ARXIV abstract"),
    ("arxiv", "conditional", "speedup"): (156.5, "x", "YANG-ARXIV abstract"),
    ("arxiv", "ring", "energy_ratio"): (5.2, "x", "YANG-ARXIV abstract ('reductions in energy "
                                        "consumption by factors of 5.2 and 4.1')"),
    ("arxiv", "conditional", "energy_ratio"): (4.1, "x", "YANG-ARXIV abstract"),
    ("journal", "ring", "speedup"): (69.0, "x", "YANG-CODE README.md (journal abstract)"),
    ("journal", "conditional", "speedup"): (116.5, "x", "YANG-CODE README.md"),
    ("journal", "ring", "energy_ratio"): (1.0 / (1.0 - 0.315), "x",
                                          "YANG-CODE README.md: 31.5% less energy"),
    ("journal", "conditional", "energy_ratio"): (1.0 / (1.0 - 0.520), "x",
                                                 "YANG-CODE README.md: 52.0% less energy"),
}


def all_constants() -> dict[str, Constant]:
    """Every constant of this module in one dict (keys are unique across the groups)."""
    out: dict[str, Constant] = {}
    for group in (YANG, ANALOG, DRAFT_DIGITAL):
        out.update(group)
    return out
