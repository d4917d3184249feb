"""The fixed list of Verilator build configurations.

Verilator builds are the slow part of the suite, so the set of compiled designs is fixed here and
cached by ``sim/runner.py``; every test randomises run-time stimulus (seeds, offsets, back-pressure)
instead of compile-time parameters.
"""

from __future__ import annotations

from dataclasses import asdict

from model.blocks.config import ArrayConfig, EmulatorConfig

# The default design: make sim, make synth, make bench.
TRNG_DEFAULT = ArrayConfig()
# Odd sizes, short windows (calibration acts often), 1-cycle reset and pulse.
TRNG_SMALL = ArrayConfig(rows=3, cols=5, code_width=8, reset_cycles=1, pulse_cycles=1,
                         window_log2=3, step_shift=1, deadband=0, code_init=128)
# Controller alone, the test bench playing the array with the device model.
CTRL_4X6 = ArrayConfig(rows=4, cols=6, code_width=8, reset_cycles=2, pulse_cycles=3,
                       window_log2=4, step_shift=1, deadband=1, code_init=128)
CTRL_1X3 = ArrayConfig(rows=1, cols=3, code_width=8, reset_cycles=1, pulse_cycles=1,
                       window_log2=3, step_shift=0, deadband=0, code_init=128)

TRNG_BUILDS = {"trng_8x8": TRNG_DEFAULT, "trng_3x5": TRNG_SMALL}
# The readout chain behind the default array, as `make sim` and `make synth` build it.
READOUT_DEFAULT = {"health": {}, "cond": {}, "gauss": {}}
# The readout chain behind the small array: short health windows so tests fail and mask cells.
READOUT_SMALL = {"health": {"apt_window": 64, "corr_window": 64, "alpha_log2": -20,
                            "min_entropy": 0.5},
                 "cond": {"max_fold": 8, "word_bits": 32},
                 "gauss": {"word_bits": 32, "cbd_bits": 16, "uniform_bits": 8}}
CTRL_BUILDS = {"ctrl_4x6": CTRL_4X6, "ctrl_1x3": CTRL_1X3}


def emulator_config(cfg: ArrayConfig, seed: int = 1) -> EmulatorConfig:
    from hw.trng_top import default_emulator_config
    return default_emulator_config(cfg, seed=seed)


def emu_params(ecfg: EmulatorConfig) -> dict:
    """EmulatorConfig -> the JSON-able dict the cocotb benches rebuild it from."""
    d = asdict(ecfg)
    d["table"] = list(ecfg.table)
    d["offsets"] = list(ecfg.offsets)
    return d


def readout_config(cfg: ArrayConfig, params: dict):
    from hw.trng_top import ReadoutConfig
    from model.blocks.config import ConditionerConfig, GaussConfig, HealthConfig
    return ReadoutConfig(HealthConfig(cfg, **params["health"]),
                         ConditionerConfig(cfg, **params["cond"]), GaussConfig(**params["gauss"]))
