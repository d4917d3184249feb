"""cocotb on Verilator: the crossbar tile against its twin, every build of sim/crossbar_configs.py.

Per build a few thousand random MVMs (11 000 in all): weights reprogrammed through ``prog`` before
each of 4 segments, vectors, slots and ADC shifts generated in RTL from a seeded xorshift that the
Python side reproduces, random valid gaps and output back-pressure, every output beat compared
with the twin; the first segment (no gaps, no back-pressure) must take exactly
``mvms * TileConfig.mvm_cycles()`` cycles. Seeds come from SPINDIFF_SEED (default fixed); a
failure prints the seed and the runner re-runs it with waves.
"""

import os

import pytest

from sim.crossbar_bench import run_crossbar_bench, run_crossbar_pysim
from sim.crossbar_configs import CROSSBAR_BUILDS, TEST_MVMS

SEED = int(os.environ.get("SPINDIFF_SEED", "20261124"))
pytestmark = pytest.mark.cocotb


@pytest.mark.parametrize("name", list(CROSSBAR_BUILDS))
def test_crossbar_bit_exact(name):
    res = run_crossbar_bench(name, TEST_MVMS[name], SEED + sum(map(ord, name)))
    assert res["mvms"] == TEST_MVMS[name]
    assert res["cycles_per_mvm_no_stall"] == res["mvm_cycles"]
    # Gaps and back-pressure only ever add cycles.
    assert res["cycles_per_mvm"] >= res["mvm_cycles"]
    # The stimulus reaches both ADC rails, zero and codes in between, and both shift extremes.
    cov = res["coverage"]
    assert min(cov.values()) > 0, cov


def test_crossbar_harness_in_amaranth_sim():
    """The same harness in Amaranth's simulator (the generator, batching and the twin's copy of
    the stimulus agree there too)."""
    res = run_crossbar_pysim("xb12x8p2s", 12, SEED)
    assert res["mvms"] == 12 and res["cycles_per_mvm"] >= res["mvm_cycles"]


def test_crossbar_harness_rejects_bad_parameters():
    from model.blocks.crossbar_config import TileConfig
    from sim.crossbar_configs import tile_config
    from sim.crossbar_harness import CrossbarHarness
    for args, msg in [((TileConfig(slots=33),), "slots = 33"), (("xb",), "must be a TileConfig"),
                      ((TileConfig(), 0), "batch = 0"), ((TileConfig(), 65), "batch = 65")]:
        with pytest.raises(ValueError, match=msg):
            CrossbarHarness(*args)
    with pytest.raises(ValueError, match="unknown"):
        tile_config("nope")
    with pytest.raises(ValueError, match="mvms"):
        run_crossbar_bench("xb16x16p4", 0, 1)
