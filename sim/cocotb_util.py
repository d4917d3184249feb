"""Shared pieces of the cocotb benches: clock and reset, CSR access, payload decoding."""

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from hw.csr import CSR_READ_LATENCY
from model.blocks import csr as regs

CLK_NS = 10


async def start(dut, reset_cycles: int = 2):
    """Start a free-running clock and hold reset for ``reset_cycles``."""
    Clock(dut.clk, CLK_NS, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, reset_cycles)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


class CSR:
    """Drives a ``csr__*`` bus (see hw/csr.py): writes on the edge, reads with latency 1."""

    def __init__(self, dut, prefix: str = "csr__"):
        self.clk = dut.clk
        self.addr = getattr(dut, prefix + "addr")
        self.w_stb = getattr(dut, prefix + "w_stb")
        self.w_data = getattr(dut, prefix + "w_data")
        self.r_data = getattr(dut, prefix + "r_data")
        self.w_stb.value = 0
        self.addr.value = 0
        self.w_data.value = 0

    async def write(self, name: str, value: int):
        await FallingEdge(self.clk)
        self.addr.value = regs.addr(name)
        self.w_data.value = value & 0xFFFFFFFF
        self.w_stb.value = 1
        await RisingEdge(self.clk)
        await FallingEdge(self.clk)
        self.w_stb.value = 0

    async def read(self, name: str) -> int:
        await FallingEdge(self.clk)
        self.addr.value = regs.addr(name)
        self.w_stb.value = 0
        for _ in range(CSR_READ_LATENCY):
            await RisingEdge(self.clk)
        await FallingEdge(self.clk)
        return int(self.r_data.value)

    async def wait_for(self, name: str, field: str, value: int = 1, timeout_cycles: int = 10000):
        for _ in range(timeout_cycles):
            if regs.unpack(name, await self.read(name))[field] == value:
                return
        raise AssertionError(f"{name}.{field} did not become {value} in {timeout_cycles} reads")


def split_word(word: int, row_width: int, cols: int) -> tuple[int, int]:
    """Raw-word payload -> (row, bits); Amaranth packs struct fields LSB first."""
    return word & ((1 << row_width) - 1), (word >> row_width) & ((1 << cols) - 1)
