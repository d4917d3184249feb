"""cocotb bench: the diffusion core (``hw.core.DiffusionCore``) on Verilator, image by image.

The clock runs free; Python wakes on transactions only: ``ready`` after the boot, the noise FIFO
filling up before a start, the start, the image's pixel beats (``dim`` cycles) and ``done``.
Every pixel and, at the end, every counter is compared with what the pytest side computed from
the golden hardware-mode sampler (``hw_sample`` on the TRNG twin of the core's emulator seed).

Run-time parameters (``SPINDIFF_BENCH``): ``seed``; ``run_seed`` (optional, for a core built
with ``runtime_seed``: driven on its ``seed`` input from reset on); ``dim``; ``fifo_depth``; ``counter_names``
and ``counter_bits`` (the ``counters`` struct, LSB first); ``tables_addr_bits`` (the ``tables``
payload: target 3 bits, addr, data 16 bits, LSB first); ``phases``: a list of ``{"kind":
"tables", "words": [[target, addr, data], ...]}`` or ``{"kind": "images", "steps": k, "n": n,
"min_cycles": c, "exact": bool}`` (cycles per image == c when ``exact``, else >= c);
``array_device`` (optional, for a core built with ``array_mode="external"``: ``{"array":
ArrayConfig dict, "seed": device seed}``; ``sim.device_array.DeviceArrayPlayer`` then plays the
core's array port, waking on its strobes); ``pixels`` (the expected images, in order);
``counters`` (expected at the end, read before the speed run); ``speed_cycles`` (optional: then
one more image of ``speed_steps`` rows, default the last phase's, is started and the clock runs
that many cycles with Python asleep, for ``sim_cycles_per_s``; the report says whether the core
was still busy at the end); ``clock_impl`` (cocotb's clock: ``"gpi"``, the default, toggles
the clock in the simulator's C++ side, so Python really sleeps between transactions; ``"py"``
is a Python coroutine that wakes on every edge and limits the run to ≈ 5 × 10^4 cycles/s;
ignored, and reported as ``"model"``, when the build makes its own clock,
``sim.runner.build(clock_ns=)``); ``out`` (JSON report path).

Speed figures: ``sim_cycles_per_s`` is wall time; ``sim_cycles_per_cpu_s`` the same run over
the process's CPU time (the simulator and Python are one process), steadier on a shared machine.
"""

from __future__ import annotations

import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer, ValueChange

from model.io import atomic_write_json
from sim.cocotb_util import CLK_NS
from sim.runner import bench_clock_ns, bench_params

PIXEL_BITS = 8
#: Reset value of SEED in the benches' ``runtime_seed`` builds (one build for every run seed;
#: ``sim.core_run`` can build the same core and share the cache).
RUNTIME_RESET_SEED = 0
#: Reset cycles at the start of the bench.
RESET_CYCLES = 2


async def start_clock(dut, impl: str = "gpi", reset_cycles: int = RESET_CYCLES):
    """A free-running clock of ``CLK_NS`` (cocotb ``impl``: ``"gpi"`` or ``"py"``; none when
    the model makes its own, ``sim.runner.bench_clock_ns``) and reset held for
    ``reset_cycles``, released at a falling edge."""
    own = bench_clock_ns()
    if own is None:
        Clock(dut.clk, CLK_NS, unit="ns", impl=impl).start()
    elif own != CLK_NS:
        raise AssertionError(f"the model's clock is {own} ns, the bench's CLK_NS {CLK_NS} ns")
    dut.rst.value = 1
    await ClockCycles(dut.clk, reset_cycles)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def core_images(dut):
    p = bench_params()
    seed, dim = p["seed"], p["dim"]
    a_bits = p["tables_addr_bits"]
    for name in ("start", "steps", "clear", "tables__valid"):
        getattr(dut, name).value = 0
    if p.get("run_seed") is not None:            # a core built with runtime_seed
        dut.seed.value = p["run_seed"]
    dut.pix__ready.value = 1
    if p.get("array_device"):
        from model.blocks.config import ArrayConfig
        from model.blocks.device_path import DevicePort
        from sim.device_array import DeviceArrayPlayer
        dev = p["array_device"]
        DeviceArrayPlayer(dut, DevicePort(ArrayConfig(**dev["array"]), int(dev["seed"])),
                          seed=seed).start()
    t0 = time.perf_counter()
    await start_clock(dut, p.get("clock_impl", "gpi"))
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
    speed = cpu_speed = busy_at_end = None
    if p.get("speed_cycles"):
        images = [ph for ph in p["phases"] if ph["kind"] == "images"]
        await FallingEdge(dut.clk)
        dut.steps.value = p.get("speed_steps") or images[-1]["steps"]
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        k0 = int(dut.cycles.value)
        s0, c0 = time.perf_counter(), time.process_time()
        await Timer(p["speed_cycles"] * CLK_NS, "ns")
        ran = int(dut.cycles.value) - k0            # counted by the design, not assumed
        speed = ran / (time.perf_counter() - s0)
        cpu_speed = ran / max(time.process_time() - c0, 1e-9)
        busy_at_end = bool(int(dut.busy.value))
        assert abs(ran - p["speed_cycles"]) <= 1, f"seed {seed}: {ran} cycles in the speed run"
    report = {"seed": seed, "images": len(pixels), "bit_exact": True, "boot_cycles": boot,
              "cycles_per_image": cycles, "total_cycles": total, "wall_s": wall,
              "bench_cycles_per_s": total / wall, "sim_cycles_per_s": speed,
              "sim_cycles_per_cpu_s": cpu_speed, "speed_cycles": p.get("speed_cycles"),
              "busy_at_end_of_speed_run": busy_at_end,
              "clock_impl": "model" if bench_clock_ns() else p.get("clock_impl", "gpi"),
              "counters": got}
    dut._log.info(f"core: {report}")
    if p.get("out"):
        atomic_write_json(p["out"], report)


# -- the pytest / script side ---------------------------------------------------------------------
def run_core_bench(program, name: str, seed: int, phases, speed_cycles: int = 0,
                   speed_steps: int | None = None, trng_clock: str = "gated",
                   clock_impl: str = "gpi", runtime_seed: bool = False) -> dict:
    """Build the core of ``program`` (``hw.core.build_core`` with ``trng_clock``) with the
    tables of its first phase (``(sampler, steps, images)`` each; phases after the first load
    their tables through the ``tables`` port; a phase of 0 images only loads its tables),
    compute the golden pixels and counts on one ``TRNGNoise(seed)`` stream, run this bench on
    Verilator and return its report (plus ``expected_pixels`` and the core's ``image``).
    With ``runtime_seed`` the core is built with the reset seed ``RUNTIME_RESET_SEED`` and gets
    ``seed`` on its ``seed`` input: the golden stream is still ``TRNGNoise(seed)`` (a check that
    discriminates when ``seed`` differs from ``RUNTIME_RESET_SEED``).
    Raises ``sim.runner.SimulationFailed`` on any mismatch."""
    import json

    from hw.core import CORE_COUNTERS, build_core, image_cycles, table_words
    from model.diffusion.hardware import hw_sample
    from model.diffusion.noise import TRNGNoise
    from sim.runner import BUILD, run_cocotb

    core = build_core(program, phases[0][0], phases[0][1],
                      seed=RUNTIME_RESET_SEED if runtime_seed else seed, trng_clock=trng_clock,
                      runtime_seed=runtime_seed)
    img = core.image
    src = TRNGNoise(seed, gauss_cfg=program.gauss, prefetch=False, chunk_samples=4096)
    pixels, steps_list = [], []
    counts = dict.fromkeys(CORE_COUNTERS, 0)
    for i, (smp, k, n) in enumerate(phases):
        if n:
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
              "speed_cycles": speed_cycles, "speed_steps": speed_steps,
              "clock_impl": clock_impl, "run_seed": seed if runtime_seed else None}
    res = run_cocotb(core, name, "sim.cocotb_core", params, seed=seed, run_name=name)
    if not (res.tests == 1 and res.failed == 0):
        raise AssertionError(f"seed {seed}: {res.tests} tests, {res.failed} failed")
    rep = json.loads(out.read_text())
    rep["expected_pixels"] = pixels
    rep["image"] = img
    return rep
