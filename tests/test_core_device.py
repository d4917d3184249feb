"""The diffusion core with its TRNG's array port brought out (``build_core(...,
array_mode="external")``), played by the VCMA-MTJ device model, in the Amaranth simulator:
every pixel equals ``hw_sample(program, DeviceNoise(<device seed>), ...)`` (the golden twin of
``make sim ARRAY=device``), the counters ``HardwareProgram.counts``.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.core import DiffusionCore, build_core, core_image, trng_emulator_config
from model.blocks.config import ArrayConfig
from model.blocks.device_path import DevicePort
from model.diffusion.hardware import hw_sample
from model.diffusion.noise import DeviceNoise
from sim.device_array import pysim_player
from tests.test_core import SEED, CoreBench, _sum_counts, small_program

#: A small array keeps the per-row Python of the player and the twin short.
ARRAY = ArrayConfig(rows=4, cols=4)


@pytest.fixture(scope="module")
def program():
    return small_program()


def test_core_external_array_device_bit_exact(program):
    core = build_core(program, "ddim", 2, array=ARRAY, array_mode="external")
    assert "array" in core.signature.members
    port = DevicePort(ARRAY, SEED)
    b = CoreBench(core, [("images", 2, 1, 1.0), ("tables", program.tables("ddpm", 4)),
                         ("images", 4, 1, 0.5)], seed=SEED)
    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(pysim_player(core.array, port, ready_delay_cycles=20), background=True)

    async def body(ctx):
        await b.body(ctx, core)
    sim.add_testbench(body)
    sim.run()

    src = DeviceNoise(SEED, array=ARRAY, gauss_cfg=program.gauss)
    g1 = hw_sample(program, src, 1, 2, "ddim")
    g2 = hw_sample(program, src, 1, 4, "ddpm")
    want = np.concatenate([g1.pixels.reshape(1, -1), g2.pixels.reshape(1, -1)])
    got = np.asarray(b.pixels)
    bad = np.argwhere(got != want)
    assert got.shape == want.shape and bad.size == 0, (
        f"device seed {SEED}: pixels differ at (image, pixel) {bad[:4].tolist()}")
    other = hw_sample(program, DeviceNoise(SEED + 1, array=ARRAY, gauss_cfg=program.gauss), 1,
                      2, "ddim")
    assert not np.array_equal(other.pixels.reshape(-1), got[0]), f"seed {SEED}"
    c_all = _sum_counts(program, [("ddim", 2, 1), ("ddpm", 4, 1)])
    diff = {k: (b.counters[-1][k], v) for k, v in c_all.items() if b.counters[-1][k] != v}
    assert not diff, f"seed {SEED}: counters (RTL, counts) {diff}"


def test_core_array_mode_rejected(program):
    img = core_image(program, "ddim", 2)
    with pytest.raises(ValueError, match="array_mode = 'device'"):
        DiffusionCore(img, trng_emulator_config(SEED), array_mode="device")


@pytest.mark.cocotb
def test_core_external_array_device_verilator(program):
    """The same on Verilator through sim/cocotb_core.py (its ``array_device`` parameter starts
    the device-model player): DDIM-2 then DDPM-4, bit-exact, counters equal."""
    import json
    from dataclasses import asdict

    from hw.core import CORE_COUNTERS, image_cycles, table_words
    from sim.runner import BUILD, run_cocotb
    core = build_core(program, "ddim", 2, array=ARRAY, array_mode="external")
    img = core.image
    src = DeviceNoise(SEED, array=ARRAY, gauss_cfg=program.gauss)
    g1 = hw_sample(program, src, 1, 2, "ddim")
    g2 = hw_sample(program, src, 2, 4, "ddpm")
    pixels = [[int(v) for v in row] for g, n in ((g1, 1), (g2, 2))
              for row in g.pixels.reshape(n, -1)]
    counts = _sum_counts(program, [("ddim", 2, 1), ("ddpm", 4, 2)])
    out = BUILD / "cocotb" / "core_small_device" / "report.json"
    phases = [{"kind": "images", "steps": 2, "n": 1, "min_cycles": image_cycles(img, 2),
               "exact": False},
              {"kind": "tables", "words": [list(w) for w in
                                           table_words(program.tables("ddpm", 4))]},
              {"kind": "images", "steps": 4, "n": 2, "min_cycles": image_cycles(img, 4),
               "exact": False}]
    params = {"dim": img.dim, "fifo_depth": core.noise_fifo_depth,
              "counter_names": list(CORE_COUNTERS), "counter_bits": core.counter_bits,
              "tables_addr_bits": len(core.tables.payload.addr), "phases": phases,
              "pixels": pixels, "counters": counts, "out": str(out),
              "array_device": {"array": asdict(ARRAY), "seed": SEED}}
    res = run_cocotb(core, "core_small_device", "sim.cocotb_core", params, seed=SEED)
    assert res.tests == 1 and res.failed == 0
    rep = json.loads(out.read_text())
    assert rep["images"] == 3 and rep["bit_exact"]
    print(f"\nVerilator, device array: {rep['total_cycles']} cycles in {rep['wall_s']:.1f} s; "
          f"cycles per image {rep['cycles_per_image']}")
