"""cocotb on Verilator: the TRNG top with an external array, played by the VCMA-MTJ device model
(``sim/device_array.py``), against its golden twin (``model.blocks.device_path.DevicePath``):
Gaussian samples bit for bit, then the calibration state of every cell, the health summary, and
the device generator's state after the same rows.

Seeds come from SPINDIFF_SEED (default fixed) and are printed on failure by the bench.
"""

import os
from dataclasses import asdict

import pytest

from hw.trng_top import MTJTRNGTop
from sim.configs import READOUT_SMALL, TRNG_SMALL, emulator_config, readout_config
from sim.device_array import DeviceArrayHarness
from sim.runner import run_cocotb

SEED = int(os.environ.get("SPINDIFF_SEED", "20261202"))
pytestmark = pytest.mark.cocotb


def test_trng_device_samples_bit_exact():
    """3 x 5 array, the small readout (CBD samples), RTL back-pressure, seeded ready gaps, and
    the device's drift stepped every sweep: timing varies, the samples may not."""
    top = MTJTRNGTop(emulator_config(TRNG_SMALL), readout_config(TRNG_SMALL, READOUT_SMALL),
                     array="external")
    run_cocotb(DeviceArrayHarness(top), "trng_device_3x5", "sim.device_array",
               {"array": asdict(TRNG_SMALL), "readout": READOUT_SMALL, "device_seed": SEED % 1000,
                "items": 3000, "sel": 1, "cond_mode": 1, "cond_k": 2, "gauss_mode": 0,
                "bp_thresh": 96, "ready_delay_cycles": 40, "gap_prob": 0.05,
                "gap_max_cycles": 6, "drift_every_rows": TRNG_SMALL.rows},
               seed=SEED)
