"""cocotb on Verilator: the diffusion core bit-exact with the golden hardware-mode sampler on the
TRNG twin of the same emulator seed (sim/cocotb_core.py). Pixels, counters and the cycles of
noise-free images (the formula) are checked in the bench.

* the small program of tests/test_core.py: DDIM images from the reset tables, then DDPM tables
  loaded through the ``tables`` port and DDPM images (≈ 100 s with the Verilator build);
* the committed checkpoint's program (448 slots, 1000 × 64 time table): two DDIM-1 images, the
  short version of ``make sim`` (≈ 2.5 min with the build, ≈ 15 s cached).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.core import CORE_COUNTERS, build_core, image_cycles, table_words
from model.diffusion.hardware import HardwareProgram, default_checkpoint, hw_sample
from model.diffusion.noise import TRNGNoise
from sim.runner import BUILD, run_cocotb
from tests.test_core import SEED, small_program

pytestmark = pytest.mark.cocotb


def run_core_bench(program, name: str, seed: int, phases, speed_cycles: int = 0) -> dict:
    """Build the core of ``program`` with the tables of its first phase (``(sampler, steps,
    images)`` each; phases after the first load their tables through the ``tables`` port),
    compute the golden pixels and counts on one ``TRNGNoise(seed)`` stream, run the bench and
    return its report."""
    core = build_core(program, phases[0][0], phases[0][1], seed=seed)
    img = core.image
    src = TRNGNoise(seed, gauss_cfg=program.gauss, prefetch=False, chunk_samples=4096)
    pixels, steps_list = [], []
    counts = dict.fromkeys(CORE_COUNTERS, 0)
    for i, (smp, k, n) in enumerate(phases):
        g = hw_sample(program, src, n, k, smp)
        pixels += [[int(v) for v in row] for row in g.pixels.reshape(n, -1)]
        for key, v in program.counts(smp, k).items():
            counts[key] += v * n
        if i:
            steps_list.append({"kind": "tables", "words": [list(w) for w in
                                                           table_words(program.tables(smp, k))]})
        steps_list.append({"kind": "images", "steps": k, "n": n,
                           "min_cycles": image_cycles(img, k), "exact": smp == "ddim"})
    out = BUILD / "cocotb" / name / "report.json"
    params = {"dim": img.dim, "fifo_depth": core.noise_fifo_depth,
              "counter_names": list(CORE_COUNTERS), "counter_bits": core.counter_bits,
              "tables_addr_bits": len(core.tables.payload.addr), "phases": steps_list,
              "pixels": pixels, "counters": counts, "out": str(out),
              "speed_cycles": speed_cycles}
    res = run_cocotb(core, name, "sim.cocotb_core", params, seed=seed, run_name=name)
    assert res.tests == 1 and res.failed == 0
    rep = json.loads(out.read_text())
    rep["expected_pixels"] = pixels
    rep["image"] = img
    return rep


def test_core_verilator_bit_exact():
    program = small_program()
    rep = run_core_bench(program, "core_small", SEED, [("ddim", 3, 2), ("ddpm", 8, 2)],
                         speed_cycles=100_000)
    assert rep["images"] == 4 and rep["bit_exact"]
    assert rep["cycles_per_image"][:2] == [image_cycles(rep["image"], 3)] * 2
    assert len(np.unique(np.asarray(rep["expected_pixels"][2:]))) > 8
    assert rep["sim_cycles_per_s"] > 0
    print(f"\nVerilator: bench {rep['total_cycles']} cycles in {rep['wall_s']:.1f} s, free "
          f"run {rep['sim_cycles_per_s']:.0f} cycles/s; cycles per image "
          f"{rep['cycles_per_image']}, boot {rep['boot_cycles']}")


def test_core_verilator_committed_net():
    """The committed checkpoint's core: boot from its ROMs (28 672 weight words), two DDIM-1
    images bit-exact, counters, 2·64 + 2 + run_cycles + 7 cycles per image."""
    program = HardwareProgram.from_checkpoint(default_checkpoint())
    rep = run_core_bench(program, "core_full", 1, [("ddim", 1, 2)])
    assert rep["images"] == 2 and rep["bit_exact"]
    want = image_cycles(rep["image"], 1)
    assert rep["cycles_per_image"] == [want, want], (rep["cycles_per_image"], want)
    print(f"\ncommitted net on Verilator: boot {rep['boot_cycles']} cycles, "
          f"{rep['cycles_per_image']} cycles per DDIM-1 image, "
          f"{rep['bench_cycles_per_s']:.0f} cycles/s")
