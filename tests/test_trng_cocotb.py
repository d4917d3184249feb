"""cocotb on Verilator: the MTJ array path against its twins.

(a) the controller alone, the bench playing the array with the VCMA-MTJ device model;
(b) the TRNG top with the emulator inside: raw words bit for bit, with RTL-side back-pressure.
Seeds come from SPINDIFF_SEED (default fixed) and are printed on failure by the benches.
"""

import os

import pytest

from hw.mtj_array import MTJArrayController
from hw.trng_top import MTJTRNGTop
from sim.configs import CTRL_BUILDS, TRNG_BUILDS, emu_params, emulator_config
from sim.harness import StreamHarness
from sim.runner import run_cocotb

SEED = int(os.environ.get("SPINDIFF_SEED", "20261124"))
pytestmark = pytest.mark.cocotb


@pytest.mark.parametrize("name,rows_to_run", [("ctrl_4x6", 3000), ("ctrl_1x3", 1500)])
def test_controller_with_device_model(name, rows_to_run):
    cfg = CTRL_BUILDS[name]
    from dataclasses import asdict
    run_cocotb(MTJArrayController(cfg), name, "sim.cocotb_array_device",
               {"array": asdict(cfg), "rows_to_run": rows_to_run, "ready_prob": 0.6},
               seed=SEED)


@pytest.mark.parametrize("name,words,bp", [("trng_8x8", 100_000, 96), ("trng_3x5", 20_000, 160)])
def test_trng_raw_words_bit_exact(name, words, bp):
    ecfg = emulator_config(TRNG_BUILDS[name])
    run_cocotb(StreamHarness(MTJTRNGTop(ecfg)), name, "sim.cocotb_trng",
               {"emu": emu_params(ecfg), "words": words, "bp_thresh": bp}, seed=SEED)
