"""The TRNG top in Amaranth's own simulator, with the stimulus of ``sim/cocotb_trng.py``.

Used by ``make bench`` to compare simulator speed on the same design, the same stimulus and the
same run: the same register writes, the same back-pressure seed and threshold, the same number of
words. Returns the words so the caller can check that both simulators produced the same stream.
"""

from __future__ import annotations

import time

from amaranth.sim import Simulator

from model.blocks import csr as regs
from model.blocks.config import EmulatorConfig
from hw.trng_top import MTJTRNGTop
from sim.harness import StreamHarness


def run_pysim(ecfg: EmulatorConfig, emu_seed: int, bp_seed: int, bp_thresh: int,
              n_words: int) -> dict:
    """Enable the array with ``emu_seed`` and collect ``n_words`` raw words (offsets: ecfg's)."""
    dut = StreamHarness(MTJTRNGTop(ecfg))
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    words: list[int] = []
    result: dict = {}

    async def write(ctx, name, value):
        ctx.set(dut.csr.addr, regs.addr(name))
        ctx.set(dut.csr.w_data, value)
        ctx.set(dut.csr.w_stb, 1)
        await ctx.tick()
        ctx.set(dut.csr.w_stb, 0)

    async def testbench(ctx):
        ctx.set(dut.bp_seed, bp_seed)
        ctx.set(dut.bp_thresh, bp_thresh)
        ctx.set(dut.bp_load, 1)
        await ctx.tick()
        ctx.set(dut.bp_load, 0)
        await write(ctx, "SEED", emu_seed)
        await write(ctx, "CTRL", regs.pack("CTRL", cal_enable=1, reseed=1))
        await ctx.tick().repeat(ecfg.warmup_steps + 4)
        await write(ctx, "CTRL", regs.pack("CTRL", enable=1, cal_enable=1))
        t0 = time.perf_counter()
        cycles = 0
        toggle = ctx.get(dut.word_toggle)
        w, mask = dut.width, (1 << dut.width) - 1
        while len(words) < n_words:
            await ctx.tick()
            cycles += 1
            t = ctx.get(dut.word_toggle)
            if t != toggle:
                toggle = t
                batch = ctx.get(dut.word)
                words.extend((batch >> (i * w)) & mask for i in range(dut.batch))
        result["cycles"] = cycles
        result["seconds"] = time.perf_counter() - t0

    sim.add_testbench(testbench)
    sim.run()
    result["words"] = words
    result["cycles_per_s"] = result["cycles"] / result["seconds"]
    return result
