"""cocotb on Verilator: the diffusion core bit-exact with the golden hardware-mode sampler on the
TRNG twin of the same emulator seed (sim/cocotb_core.py). Pixels, counters and the cycles of
noise-free images (the formula) are checked in the bench.

* the small program of tests/test_core.py: DDIM images from the reset tables, then DDPM tables
  loaded through the ``tables`` port and DDPM images (≈ 100 s with the Verilator build);
* the committed checkpoint's program (448 slots, 1000 × 64 time table): two DDIM-1 images, the
  short version of ``make sim`` (≈ 2.5 min with the build, ≈ 15 s cached), then a speed run.

Both build the core with ``trng_clock="gated"`` (docs/core.md "Simulation speed"); the Amaranth
test (tests/test_core.py) checks the default ``"enable"``.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.core import image_cycles
from model.diffusion.hardware import HardwareProgram, default_checkpoint
from sim.cocotb_core import run_core_bench
from tests.test_core import SEED, small_program

pytestmark = pytest.mark.cocotb


def test_core_verilator_bit_exact():
    """The small core built with ``runtime_seed`` (reset seed 0) and SEED on its ``seed``
    input: two DDIM-3 and two DDPM-8 images bit-exact with ``TRNGNoise(SEED)``."""
    program = small_program()
    rep = run_core_bench(program, "core_small", SEED, [("ddim", 3, 2), ("ddpm", 8, 2)],
                         speed_cycles=100_000, runtime_seed=True)
    assert rep["images"] == 4 and rep["bit_exact"]
    assert rep["cycles_per_image"][:2] == [image_cycles(rep["image"], 3)] * 2
    assert len(np.unique(np.asarray(rep["expected_pixels"][2:]))) > 8
    assert rep["sim_cycles_per_s"] > 0
    print(f"\nVerilator: bench {rep['total_cycles']} cycles in {rep['wall_s']:.1f} s, free "
          f"run {rep['sim_cycles_per_s']:.0f} cycles/s ({rep['sim_cycles_per_cpu_s']:.0f} per "
          f"CPU s); cycles per image "
          f"{rep['cycles_per_image']}, boot {rep['boot_cycles']}")


def test_core_verilator_committed_net():
    """The committed checkpoint's core (``runtime_seed``: reset seed 0, seed input 1): boot
    from its ROMs (28 672 weight words), two DDIM-1 images bit-exact with ``TRNGNoise(1)``,
    counters, 2·64 + 2 + run_cycles + 7 cycles per image; then DDIM-50
    tables through the ``tables`` port and 300 000 cycles of a DDIM-50 image with Python asleep
    (the speed figure of a busy core)."""
    program = HardwareProgram.from_checkpoint(default_checkpoint())
    rep = run_core_bench(program, "core_full", 1, [("ddim", 1, 2), ("ddim", 50, 0)],
                         speed_cycles=300_000, speed_steps=50, runtime_seed=True)
    assert rep["images"] == 2 and rep["bit_exact"]
    want = image_cycles(rep["image"], 1)
    assert rep["cycles_per_image"] == [want, want], (rep["cycles_per_image"], want)
    assert rep["busy_at_end_of_speed_run"] is True
    print(f"\ncommitted net on Verilator: boot {rep['boot_cycles']} cycles, "
          f"{rep['cycles_per_image']} cycles per DDIM-1 image, bench "
          f"{rep['bench_cycles_per_s']:.0f} cycles/s; DDIM-50 free run "
          f"{rep['sim_cycles_per_s']:.0f} cycles/s ({rep['sim_cycles_per_cpu_s']:.0f} per CPU s)")
