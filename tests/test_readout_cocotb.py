"""cocotb on Verilator: the TRNG top with the readout chain against the chained twins.

Emulator inside; seeded RTL-side back-pressure; packed words and Gaussian samples compared item by
item, for each conditioning mode and both Gaussian modes (run-time settings of one build), with
the balanced CBD popcount (the default); one more build has the plain popcount
(``GaussConfig.cbd_balanced = False``, a build-time choice).
"""

import os

import pytest

from hw.trng_top import MTJTRNGTop
from sim.configs import READOUT_SMALL, TRNG_SMALL, emu_params, emulator_config, readout_config
from sim.harness import StreamHarness
from sim.runner import run_cocotb

SEED = int(os.environ.get("SPINDIFF_SEED", "20261124"))
pytestmark = pytest.mark.cocotb


@pytest.mark.parametrize("sel,items,cond_mode,cond_k,gauss_mode,balanced", [
    (0, 20_000, 1, 2, 0, True),       # packed words, XOR fold of 2
    (0, 10_000, 2, 1, 0, True),       # packed words, von Neumann
    (1, 20_000, 1, 3, 0, True),       # centred-binomial samples, XOR fold of 3
    (1, 8_000, 0, 1, 1, True),        # sum-of-12 samples, pass-through
    (1, 6_000, 1, 2, 0, False),       # plain-popcount CBD samples, XOR fold of 2 (own build)
])
def test_readout_bit_exact(sel, items, cond_mode, cond_k, gauss_mode, balanced):
    readout = READOUT_SMALL if balanced else \
        {**READOUT_SMALL, "gauss": {**READOUT_SMALL["gauss"], "cbd_balanced": False}}
    ecfg = emulator_config(TRNG_SMALL)
    top = MTJTRNGTop(ecfg, readout_config(TRNG_SMALL, readout))
    name = "readout_3x5" if balanced else "readout_3x5_unbal"
    run_cocotb(StreamHarness(top, ("words", "gauss")), name, "sim.cocotb_readout",
               {"emu": emu_params(ecfg), "readout": readout, "sel": sel, "items": items,
                "cond_mode": cond_mode, "cond_k": cond_k, "gauss_mode": gauss_mode,
                "bp_thresh": 64},
               seed=SEED + cond_mode + 10 * gauss_mode + 100 * (not balanced),
               run_name=f"readout_{sel}_{cond_mode}_{cond_k}_{gauss_mode}"
                        + ("" if balanced else "_unbal"))
