"""CrossbarCoreTop (the layer engine behind the CSR bus, ``make synth DESIGN=crossbar``):
everything written through registers, outputs compared with the twin (Amaranth simulator)."""

import numpy as np
import pytest

from hw.crossbar_top import (ADDR_CFG_DATA, ADDR_CFG_GO, ADDR_CFG_SEL, ADDR_IN, ADDR_N_LAYERS,
                             ADDR_OUT_COUNT, ADDR_PROG_ADDR, ADDR_PROG_DATA, ADDR_PROG_GO,
                             ADDR_STATUS, TARGET_ENGINES, CrossbarCoreTop,
                             build_crossbar_for_target)
from model.blocks.crossbar_config import ACT_LUT, ACT_NONE, ACT_RELU, EngineConfig, TileConfig
from sim.engine_configs import random_program
from amaranth.sim import Simulator

SMALL = EngineConfig(tile=TileConfig(rows=4, cols=4, weight_bits=6, input_bits=5, adc_bits=6,
                                     macs_per_cycle=2, slots=8),
                     max_dim=10, max_layers=2, bias_bits=10, bias_entries=24)


async def _write(ctx, bus, addr, value):
    ctx.set(bus.addr, addr)
    ctx.set(bus.w_data, value & 0xFFFF_FFFF)
    ctx.set(bus.w_stb, 1)
    await ctx.tick()
    ctx.set(bus.w_stb, 0)


async def _read(ctx, bus, addr):
    ctx.set(bus.addr, addr)
    await ctx.tick()
    await ctx.tick()
    return ctx.get(bus.r_data)


async def _wait_not_pending(ctx, bus, bit):
    for _ in range(10_000):
        if not (await _read(ctx, bus, ADDR_STATUS)) >> bit & 1:
            return
    raise AssertionError(f"STATUS bit {bit} stuck")


async def _write_wide(ctx, bus, base, value, bits):
    for k in range(-(-bits // 32)):
        await _write(ctx, bus, base + 4 * k, value >> (32 * k))


@pytest.mark.parametrize("seed,act", [(3, ACT_RELU), (11, ACT_LUT)])
def test_registers_drive_the_engine_bit_exact(seed, act):
    rng = np.random.default_rng(seed)
    prog = random_program(SMALL, rng, dims=[8, 8, 7], lut="silu", acts=[act, ACT_NONE],
                          extremes=0.0)
    twin = prog.twin()
    x = prog.random_inputs(rng, 6)
    want = twin.run(x)
    # A test that cannot fail is no test: the expected outputs must not be (nearly) constant.
    assert np.count_nonzero(want) >= want.size // 3 and len(np.unique(want)) >= 4, want
    dut = CrossbarCoreTop(SMALL)
    t = SMALL.tile
    got = []
    done = []

    async def driver(ctx):
        bus = dut.csr
        for addr, data in prog.prog_words():
            await _write(ctx, bus, ADDR_PROG_ADDR, addr)
            await _write_wide(ctx, bus, ADDR_PROG_DATA, data, t.macs_per_cycle * t.weight_bits)
            await _write(ctx, bus, ADDR_PROG_GO, 1)
            await _wait_not_pending(ctx, bus, 1)
        for target, addr, data in prog.cfg_words():
            await _write(ctx, bus, ADDR_CFG_SEL, target | (addr << 16))
            await _write_wide(ctx, bus, ADDR_CFG_DATA, data, 128)
            await _write(ctx, bus, ADDR_CFG_GO, 1)
            await _wait_not_pending(ctx, bus, 2)
        await _write(ctx, bus, ADDR_N_LAYERS, len(prog.layers))
        assert await _read(ctx, bus, ADDR_N_LAYERS) == len(prog.layers)
        for vec in x:
            for code in vec:
                await _write(ctx, bus, ADDR_IN, int(code) & ((1 << t.input_bits) - 1))
                await _wait_not_pending(ctx, bus, 3)
        for _ in range(20_000):
            if len(got) == want.size:
                break
            await ctx.tick()
        await ctx.tick()
        done.append(await _read(ctx, bus, ADDR_OUT_COUNT))

    async def monitor(ctx):
        # `out` always ready: a beat is taken at every clock edge where valid is high.
        ctx.set(dut.out.ready, 1)
        async for clk_edge, rst, valid, code in ctx.tick().sample(dut.out.valid,
                                                                   dut.out.payload.code):
            if valid:
                got.append(code)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert done == [want.size], done
    assert np.array_equal(np.array(got).reshape(want.shape), want), (seed, got, want)


def test_targets_and_bad_input():
    for target in TARGET_ENGINES:
        top = build_crossbar_for_target(target)
        top._MustUse__silence = top.engine._MustUse__silence = True
        assert top.cfg is TARGET_ENGINES[target]
    with pytest.raises(ValueError, match="target = 'nope'"):
        build_crossbar_for_target("nope")
    with pytest.raises(ValueError, match="CrossbarCoreTop.cfg"):
        CrossbarCoreTop(SMALL.tile)
    wide = EngineConfig(tile=TileConfig(rows=4, cols=32, weight_bits=16, macs_per_cycle=32))
    with pytest.raises(ValueError, match="macs_per_cycle \\* weight_bits = 512"):
        CrossbarCoreTop(wide)
