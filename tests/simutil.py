"""Shared helpers of the Amaranth-simulator tests."""

from amaranth.hdl import Module
from amaranth.sim import Simulator


def run_sim(dut, body, domain=None):
    """Simulate ``dut`` with a 1 MHz ``sync`` clock; ``body(ctx, dut)`` is the async test-bench.

    ``domain``: an explicit ``sync`` ClockDomain (whose ``rst`` the bench may drive).
    """
    top = Module()
    top.submodules.dut = dut
    if domain is not None:
        top.domains += domain
    sim = Simulator(top)
    sim.add_clock(1e-6, domain="sync")

    async def tb(ctx):
        await body(ctx, dut)
    sim.add_testbench(tb)
    sim.run()


def pack(vals):
    """Bits (column 0 first) -> int with bit c = vals[c]."""
    return sum(int(v) << i for i, v in enumerate(vals))


def random_valid(rng, cols):
    """A valid mask: all-0, all-1, or random with a random density."""
    u = rng.random()
    if u < 0.15:
        return 0
    if u < 0.4:
        return (1 << cols) - 1
    return pack(rng.random(cols) < rng.random())
