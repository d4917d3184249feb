"""cocotb on Verilator: the diffusion core of tests/test_core.py's small program, bit-exact with
the golden hardware-mode sampler on the TRNG twin of the same emulator seed (sim/cocotb_core.py):
DDIM images from the reset tables, then DDPM tables loaded through the ``tables`` port and DDPM
images; pixels, counters and the cycles of noise-free images (formula) checked in the bench."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.core import CORE_COUNTERS, build_core, image_cycles, table_words
from model.diffusion.hardware import hw_sample
from model.diffusion.noise import TRNGNoise
from sim.runner import BUILD, run_cocotb
from tests.test_core import SEED, small_program

pytestmark = pytest.mark.cocotb


def test_core_verilator_bit_exact():
    program = small_program()
    n_ddim, n_ddpm, images = 3, 8, 2
    core = build_core(program, "ddim", n_ddim, seed=SEED)
    img = core.image
    src = TRNGNoise(SEED, gauss_cfg=program.gauss, prefetch=False, chunk_samples=4096)
    g1 = hw_sample(program, src, images, n_ddim, "ddim")
    g2 = hw_sample(program, src, images, n_ddpm, "ddpm")
    pixels = [[int(v) for v in row] for g in (g1, g2) for row in g.pixels.reshape(images, -1)]
    counts = dict.fromkeys(CORE_COUNTERS, 0)
    for smp, k in (("ddim", n_ddim), ("ddpm", n_ddpm)):
        for name, v in program.counts(smp, k).items():
            counts[name] += v * images
    out = BUILD / "cocotb" / "core_small" / "report.json"
    params = {
        "dim": img.dim, "fifo_depth": core.noise_fifo_depth,
        "counter_names": list(CORE_COUNTERS), "counter_bits": core.counter_bits,
        "tables_addr_bits": len(core.tables.payload.addr),
        "phases": [
            {"kind": "images", "steps": n_ddim, "n": images,
             "min_cycles": image_cycles(img, n_ddim), "exact": True},
            {"kind": "tables", "words": [list(w) for w in
                                         table_words(program.tables("ddpm", n_ddpm))]},
            {"kind": "images", "steps": n_ddpm, "n": images,
             "min_cycles": image_cycles(img, n_ddpm), "exact": False},
        ],
        "pixels": pixels, "counters": counts, "out": str(out), "speed_cycles": 100_000,
    }
    res = run_cocotb(core, "core_small", "sim.cocotb_core", params, seed=SEED,
                     run_name="core_small")
    assert res.tests == 1 and res.failed == 0
    rep = json.loads(out.read_text())
    assert rep["images"] == 2 * images and rep["bit_exact"]
    assert rep["cycles_per_image"][:images] == [image_cycles(img, n_ddim)] * images
    assert len(np.unique(np.asarray(pixels[images:]))) > 8
    assert rep["sim_cycles_per_s"] > 0
    print(f"\nVerilator: bench {rep['total_cycles']} cycles in {rep['wall_s']:.1f} s, free "
          f"run {rep['sim_cycles_per_s']:.0f} cycles/s; cycles per image "
          f"{rep['cycles_per_image']}, boot {rep['boot_cycles']}")
