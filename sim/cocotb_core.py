"""cocotb bench: the diffusion core (``hw.core.DiffusionCore``) on Verilator, image by image.

The clock runs free; Python wakes on transactions only: ``ready`` after the boot, the noise FIFO
filling up before a start, the start, the image's pixel beats (``dim`` cycles) and ``done``.
Every pixel and, at the end, every counter is compared with what the pytest side computed from
the golden hardware-mode sampler (``hw_sample`` on the TRNG twin of the core's emulator seed).

Run-time parameters (``SPINDIFF_BENCH``): ``seed``; ``dim``; ``fifo_depth``; ``counter_names``
and ``counter_bits`` (the ``counters`` struct, LSB first); ``tables_addr_bits`` (the ``tables``
payload: target 3 bits, addr, data 16 bits, LSB first); ``phases``: a list of ``{"kind":
"tables", "words": [[target, addr, data], ...]}`` or ``{"kind": "images", "steps": k, "n": n,
"min_cycles": c, "exact": bool}`` (cycles per image == c when ``exact``, else >= c);
``pixels`` (the expected images, in order); ``counters`` (expected at the end, read before the
speed run); ``speed_cycles`` (optional: then one more image is started and the clock runs that
many cycles with Python asleep, for ``sim_cycles_per_s``); ``out`` (JSON report path).
"""

from __future__ import annotations

import time

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge, Timer, ValueChange

from model.io import atomic_write_json
from sim.cocotb_util import CLK_NS, start
from sim.runner import bench_params

PIXEL_BITS = 8


@cocotb.test()
async def core_images(dut):
    p = bench_params()
    seed, dim = p["seed"], p["dim"]
    a_bits = p["tables_addr_bits"]
    for name in ("start", "steps", "clear", "tables__valid"):
        getattr(dut, name).value = 0
    dut.pix__ready.value = 1
    t0 = time.perf_counter()
    await start(dut)
    if not int(dut.ready.value):
        await RisingEdge(dut.ready)
    boot = int(dut.cycles.value)
    pixels, cycles = [], []
    for ph in p["phases"]:
        if ph["kind"] == "tables":
            for tgt, a, d in ph["words"]:
                await FallingEdge(dut.clk)
                dut.tables__valid.value = 1
                dut.tables__payload.value = tgt | (a << 3) | (d << (3 + a_bits))
            await FallingEdge(dut.clk)
            dut.tables__valid.value = 0
            continue
        for _ in range(ph["n"]):
            # A full noise FIFO before the start (the cycle formula's condition).
            while int(dut.noise_level.value) != p["fifo_depth"]:
                await ValueChange(dut.noise_level)
            await FallingEdge(dut.clk)
            dut.steps.value = ph["steps"]
            dut.start.value = 1
            c0 = int(dut.cycles.value)
            await FallingEdge(dut.clk)
            dut.start.value = 0
            assert int(dut.busy.value), f"seed {seed}: start not taken"
            if not int(dut.pix__valid.value):
                await RisingEdge(dut.pix__valid)
            img = []
            while True:
                await FallingEdge(dut.clk)
                if int(dut.pix__valid.value):          # ready is high: taken at the next edge
                    word = int(dut.pix__payload.value)
                    img.append(word & ((1 << PIXEL_BITS) - 1))
                    last = (word >> PIXEL_BITS) & 1
                    assert last == (len(img) == dim), f"seed {seed}: last at pixel {len(img)}"
                if int(dut.done.value):
                    break
            c = int(dut.cycles.value) - c0
            if ph["exact"]:
                assert c == ph["min_cycles"], f"seed {seed}: image took {c} cycles, " \
                                              f"formula {ph['min_cycles']}"
            else:
                assert c >= ph["min_cycles"], f"seed {seed}: image took {c} cycles, " \
                                              f"below the formula {ph['min_cycles']}"
            cycles.append(c)
            k = len(pixels)
            want = p["pixels"][k]
            bad = [j for j in range(dim) if img[j] != want[j]] if len(img) == dim else None
            assert bad == [], (f"seed {seed}: image {k}: {len(img)} pixels, differing at "
                               f"{bad}: RTL {img}, golden {want}")
            pixels.append(img)
    wall = time.perf_counter() - t0
    total = int(dut.cycles.value)
    word = int(dut.counters.value)
    w = p["counter_bits"]
    got = {n: (word >> (i * w)) & ((1 << w) - 1) for i, n in enumerate(p["counter_names"])}
    diff = {n: (got[n], v) for n, v in p["counters"].items() if got[n] != v}
    assert not diff, f"seed {seed}: counters (RTL, golden) {diff}"
    # Simulation speed of the model alone: one more image started, the clock free-running for
    # `speed_cycles` cycles with Python asleep.
    speed = None
    if p.get("speed_cycles"):
        await FallingEdge(dut.clk)
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        s0 = time.perf_counter()
        await Timer(p["speed_cycles"] * CLK_NS, "ns")
        speed = p["speed_cycles"] / (time.perf_counter() - s0)
    report = {"seed": seed, "images": len(pixels), "bit_exact": True, "boot_cycles": boot,
              "cycles_per_image": cycles, "total_cycles": total, "wall_s": wall,
              "bench_cycles_per_s": total / wall, "sim_cycles_per_s": speed, "counters": got}
    dut._log.info(f"core: {report}")
    if p.get("out"):
        atomic_write_json(p["out"], report)
