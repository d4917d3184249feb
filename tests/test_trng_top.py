"""The TRNG top's register bank in Amaranth's simulator (addresses from model/blocks/csr.py)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.csr import CSR_READ_LATENCY
from hw.trng_top import MTJTRNGTop
from model.blocks import csr as regs
from model.blocks.config import ArrayConfig, EmulatorConfig

CFG = ArrayConfig(rows=2, cols=3, code_width=4, code_init=7, window_log2=2)
TABLE = tuple(int(x) for x in np.linspace(0, 65535, 16))


def run(body, seed=5):
    dut = MTJTRNGTop(EmulatorConfig(array=CFG, table=TABLE, seed=seed, warmup_steps=4))
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def write(ctx, name, value):
        ctx.set(dut.csr.addr, regs.addr(name))
        ctx.set(dut.csr.w_data, value)
        ctx.set(dut.csr.w_stb, 1)
        await ctx.tick()
        ctx.set(dut.csr.w_stb, 0)

    async def read(ctx, name):
        ctx.set(dut.csr.addr, regs.addr(name))
        await ctx.tick().repeat(CSR_READ_LATENCY)
        return ctx.get(dut.csr.r_data)

    async def tb(ctx):
        await body(ctx, dut, write, read)

    sim.add_testbench(tb)
    sim.run()


def test_identity_geometry_and_reset_values():
    async def body(ctx, dut, write, read):
        assert await read(ctx, "ID") == regs.ID_VALUE
        assert regs.unpack("GEOMETRY", await read(ctx, "GEOMETRY")) == {"rows": 2, "cols": 3}
        assert await read(ctx, "CTRL") == regs.BY_NAME["CTRL"].reset
        assert await read(ctx, "SEED") == 5
        assert await read(ctx, "ROWS_SENSED") == 0
        c1 = await read(ctx, "CYCLES")
        c2 = await read(ctx, "CYCLES")
        assert c2 == c1 + CSR_READ_LATENCY
        ctx.set(dut.csr.addr, 0xF0)          # no register there
        await ctx.tick().repeat(CSR_READ_LATENCY)
        assert ctx.get(dut.csr.r_data) == 0
    run(body)


def test_strobes_read_back_zero_and_enable_runs_rows():
    async def body(ctx, dut, write, read):
        await write(ctx, "SEED", 0xDEADBEEF)
        assert await read(ctx, "SEED") == 0xDEADBEEF
        await write(ctx, "CTRL", regs.pack("CTRL", cal_enable=1, reseed=1, clear_alarms=1))
        assert await read(ctx, "CTRL") == regs.pack("CTRL", cal_enable=1)
        for _ in range(20):
            if regs.unpack("STATUS", await read(ctx, "STATUS"))["array_ready"]:
                break
        else:
            pytest.fail("array_ready never rose after reseed")
        ctx.set(dut.raw.ready, 1)
        await write(ctx, "CTRL", regs.pack("CTRL", enable=1, cal_enable=1))
        await ctx.tick().repeat(10 * CFG.row_period_cycles)
        n = await read(ctx, "ROWS_SENSED")
        assert 8 <= n <= 11, n
        await write(ctx, "CELL_SEL", 4)
        await ctx.tick().repeat(regs.CELL_SEL_SETTLE_CYCLES)
        assert await read(ctx, "CELL_SEL") == 4
        assert 0 <= await read(ctx, "CELL_CODE") <= CFG.code_max
    run(body)


def test_cell_offset_write_read_sign_extended():
    async def body(ctx, dut, write, read):
        await write(ctx, "CELL_SEL", 5)
        await write(ctx, "CELL_OFFSET", (-3) & 0xFFFFFFFF)
        await ctx.tick().repeat(regs.CELL_SEL_SETTLE_CYCLES)
        assert await read(ctx, "CELL_OFFSET") == (-3) & 0xFFFFFFFF
        await write(ctx, "CELL_SEL", 0)
        await ctx.tick().repeat(regs.CELL_SEL_SETTLE_CYCLES)
        assert await read(ctx, "CELL_OFFSET") == 0
    run(body)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_top_rejects_bad_config():
    with pytest.raises(ValueError, match="emu_cfg"):
        MTJTRNGTop(CFG)
