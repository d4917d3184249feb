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


def test_engine_demo_runs_bit_exact():
    """The README demo (sim/engine_demo.py): the demo MLP on the parallel build, bit-exact, and
    back-to-back inferences no slower than the documented run_cycles()."""
    from sim.engine_demo import run_engine_bench
    r = run_engine_bench("engine_par", runs=6, seed=SEED)
    assert r["bit_exact"], r
    assert r["layer_mvms"] == 6 * 14 and r["dims"] == [24, 16, 16, 10]
    assert 0 < r["cycles_per_inference"] <= r["formula_cycles_per_inference"], r
    with pytest.raises(ValueError, match="cfg_name = 'nope': unknown"):
        run_engine_bench("nope")
    with pytest.raises(ValueError, match=r"runs = 0: out of range"):
        run_engine_bench("engine_par", runs=0)
