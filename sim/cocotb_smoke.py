"""cocotb bench for the runner's own test: a registered accumulator, checked against Python."""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from sim.runner import bench_params


@cocotb.test()
async def accumulate(dut):
    p = bench_params()
    rng = random.Random(p["seed"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.inc.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    acc = 0
    for _ in range(p["n"]):
        v = rng.randrange(256)
        dut.inc.value = v
        await RisingEdge(dut.clk)
        acc = (acc + v) & 0xFFFF
        await FallingEdge(dut.clk)
        got = int(dut.acc.value)
        want = acc ^ p.get("corrupt", 0)
        assert got == want, f"acc={got:#x} expected {want:#x} (seed={p['seed']})"
