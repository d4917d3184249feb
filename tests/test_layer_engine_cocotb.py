"""cocotb on Verilator: the layer engine against its twin, random programs (dims within
max_dim, slot and bias placement, shifts, activations, random LUTs, random weights in the
padding of partial blocks), many runs per program with RTL-generated input codes, random input
gaps and output back-pressure; a parallel and a bit-serial build (sim/engine_configs.py)."""

import os

import pytest

from sim.engine_configs import ENGINE_BUILDS, engine_params
from sim.engine_harness import EngineHarness
from sim.runner import run_cocotb

SEED = int(os.environ.get("SPINDIFF_SEED", "20261205"))
pytestmark = pytest.mark.cocotb


@pytest.mark.parametrize("name,n_programs,runs", [
    ("engine_par", 30, 60),
    ("engine_ser", 20, 40),
])
def test_engine_bit_exact(name, n_programs, runs):
    cfg = ENGINE_BUILDS[name]
    res = run_cocotb(EngineHarness(cfg), name, "sim.cocotb_layer_engine",
                     {"engine": engine_params(cfg), "n_programs": n_programs, "runs": runs,
                      "gen_thresh": 160, "bp_thresh": 160, "partial_layers": 0.25},
                     seed=SEED + len(name), run_name=f"{name}_random")
    assert res.tests == 1 and res.failed == 0
