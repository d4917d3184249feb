"""Crossbar-tile simulation runs for tests and for `make bench`.

- :func:`run_crossbar_bench`: the cocotb bench (``sim/cocotb_crossbar.py``) on Verilator for one
  build of ``sim/crossbar_configs.py``, every MVM checked against the twin; returns the figures.
- :func:`run_crossbar_pysim`: the same harness in Amaranth's simulator, one run of vectors with
  gaps and back-pressure (the first-segment stimulus of the Verilator bench does not apply: this
  is its own seeded run), checked against the twin; returns the same kind of figures.

Both return ``dict(config, mvms, cycles, wall_s, cycles_per_s, cycles_per_mvm, mvm_cycles, seed,
bit_exact, ...)``; ``bit_exact`` is always True (a mismatch raises instead of returning). Speed
figures are measurements of this machine, for `make bench`; tests only check
correctness.
"""

from __future__ import annotations

import json
import time

import numpy as np

from sim.crossbar_configs import tile_config, tile_params
from sim.meta import ROOT


def run_crossbar_bench(cfg_name: str, mvms: int, seed: int, segments: int = 4,
                       run_name: str | None = None, stalls: bool = True) -> dict:
    """Verilator run of ``mvms`` random MVMs on build ``cfg_name`` (bit-exact against the twin,
    raises ``sim.runner.SimulationFailed`` otherwise).

    ``cycles`` counts every simulated cycle of the run (programming included); with ``stalls``
    the segments after the first have random input gaps and output back-pressure, without it
    none has, and ``cycles_per_mvm_no_stall`` (first segment) equals ``mvm_cycles``."""
    from sim.crossbar_harness import CrossbarHarness
    from sim.runner import run_cocotb
    cfg = tile_config(cfg_name)
    if not isinstance(mvms, int) or not 1 <= mvms <= 100_000_000:
        raise ValueError(f"mvms = {mvms!r}: out of range, allowed [1, 100000000]")
    run_name = run_name or f"xbar_{cfg_name}"
    out = ROOT / "build" / "cocotb" / run_name / "crossbar.json"
    if out.exists():
        out.unlink()
    t0 = time.perf_counter()
    run_cocotb(CrossbarHarness(cfg), f"xbar_{cfg_name}", "sim.cocotb_crossbar",
               {"tile": tile_params(cfg), "mvms": mvms, "segments": segments, "out": str(out),
                "stalls": bool(stalls)},
               seed=seed, run_name=run_name)
    res = json.loads(out.read_text())
    res.update({"config": cfg_name, "mvm_cycles": cfg.mvm_cycles(),
                "cycles_per_mvm": res["cycles"] / res["mvms"],
                "total_s_with_build": time.perf_counter() - t0, "simulator": "verilator",
                "bit_exact": True})
    return res


def run_crossbar_pysim(cfg_name: str, mvms: int, seed: int, gap_thresh: int = 64,
                       bp_thresh: int = 64) -> dict:
    """Amaranth-simulator run of ``mvms`` MVMs through :class:`CrossbarHarness`; every output
    beat compared with the twin (``AssertionError`` naming the seed otherwise)."""
    from amaranth.sim import Simulator

    from model.blocks.crossbar import CrossbarTile as Twin
    from sim.crossbar_harness import CrossbarHarness, decode_batch, stimulus

    cfg = tile_config(cfg_name)
    rng = np.random.default_rng(seed)
    twin = Twin(cfg)
    lo, hi = cfg.weight_range
    words = []
    for s in range(cfg.slots):
        w = rng.integers(lo, hi + 1, (cfg.rows, cfg.cols))
        twin.program(s, w)
        words += twin.pack_slot(s, w)
    sseed = int(rng.integers(1, 1 << 32))
    x, slots, shifts = stimulus(cfg, sseed, mvms, 0, 63)
    want = []
    for k in range(mvms):
        want += [(int(c), int(j == cfg.cols - 1))
                 for j, c in enumerate(twin.mvm(x[k], int(slots[k]), int(shifts[k])))]
    h = CrossbarHarness(cfg)
    got, info = [], {}

    async def tb(ctx):
        for addr, data in words:
            ctx.set(h.prog.valid, 1)
            ctx.set(h.prog.payload.addr, addr)
            ctx.set(h.prog.payload.data, data)
            await ctx.tick()
        ctx.set(h.prog.valid, 0)
        for sig, v in ((h.seed, sseed), (h.count, mvms), (h.gap_thresh, gap_thresh),
                       (h.bp_thresh, bp_thresh), (h.bp_seed, sseed ^ 0x5A5A5A5A),
                       (h.shift_base, 0), (h.shift_mask, 63), (h.start, 1)):
            ctx.set(sig, v)
        await ctx.tick()
        ctx.set(h.start, 0)
        c0 = ctx.get(h.cycles)
        t0 = time.perf_counter()
        b, w = h.batch, h.width
        while len(got) + b <= len(want):
            await ctx.changed(h.word_toggle)
            got.extend(decode_batch(ctx.get(h.word), w, b, cfg.adc_bits))
        while not ctx.get(h.done):
            await ctx.tick()
        info["wall_s"] = time.perf_counter() - t0
        info["cycles"] = ctx.get(h.cycles) - c0
        fill = ctx.get(h.fill)
        got.extend(decode_batch(ctx.get(h.buf) >> ((b - fill) * w), w, fill, cfg.adc_bits))

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    for i, (g, e) in enumerate(zip(got, want)):
        assert g == e, (f"pysim {cfg_name}: beat {i} (vector {i // cfg.cols}, column "
                        f"{i % cfg.cols}) = {g}, twin {e} (seed={seed})")
    assert len(got) == len(want), f"pysim {cfg_name}: {len(got)} beats, twin {len(want)}"
    return {"config": cfg_name, "mvms": mvms, "cycles": info["cycles"], "wall_s": info["wall_s"],
            "cycles_per_s": info["cycles"] / info["wall_s"],
            "cycles_per_mvm": info["cycles"] / mvms, "mvm_cycles": cfg.mvm_cycles(),
            "gap_thresh": gap_thresh, "bp_thresh": bp_thresh, "seed": seed,
            "simulator": "amaranth", "bit_exact": True}
