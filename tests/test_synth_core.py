"""``make synth DESIGN=core`` without synthesis: the design is accepted, the board and part are
the ones that fit (ECP5: ULX3S-85F; iCE40: the iCEBreaker's UP5K), bad combinations give one
clear error, the block-RAM estimate and the pre-flight rejection (the committed net on the UP5K
is refused before any tool runs), and the core's CSR bank in the Amaranth simulator. The real
place-and-route of the core belongs to ``make synth`` (an 85F build takes many minutes)."""

import json
import random

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hw.core import CORE_COUNTERS
from hw.platforms import (BOARDS, CORE_ADDR_CNT_HI, CORE_ADDR_CNT_LO, CORE_ADDR_CNT_SEL,
                          CORE_ADDR_CTRL, CORE_ADDR_STATUS, CORE_ADDR_STEPS, DEVICES,
                          CoreBoardDesign, DeviceCapacity, board_for, bram_blocks,
                          memory_fit, memory_inventory)
from sim import synth

QUIET = {"log": lambda *a: None}


@pytest.fixture(scope="module")
def small_ice40():
    return synth.build_core_design("ice40", "small")


def test_core_is_a_design_and_takes_a_program():
    assert synth.resolve_design("core") is synth.build_core_design
    assert "core" in synth.DESIGNS and synth.DEFAULT_PROGRAM == "committed"
    assert synth.report_stem("core") == "report-core"
    assert synth.report_stem("core", "committed") == "report-core"
    assert synth.report_stem("core", "small") == "report-core-small"
    assert synth.report_stem("trng") == "report"
    synth.check_program("core", None)
    for p in synth.PROGRAMS:
        synth.check_program("core", p)


def test_core_board_is_the_85f_on_ecp5_and_the_up5k_on_ice40():
    ecp5 = board_for("ecp5", "core")
    plat = ecp5.platform()
    assert (plat.device, ecp5.target) == ("LFE5U-85F", "ecp5")
    # Only the core moves to the 85F: the other designs keep the 25F board.
    assert board_for("ecp5", "trng") is BOARDS["ecp5"]
    assert BOARDS["ecp5"].platform().device == "LFE5U-25F"
    assert board_for("ice40", "core").platform().device == "iCE40UP5K"
    # Same board otherwise: pins, oscillator, target clock.
    assert (ecp5.spi_conn, ecp5.spi_pins, ecp5.f_target_hz) == \
        (BOARDS["ecp5"].spi_conn, BOARDS["ecp5"].spi_pins, BOARDS["ecp5"].f_target_hz)
    assert plat.default_clk_frequency == BOARDS["ecp5"].platform().default_clk_frequency
    with pytest.raises(ValueError, match="target = 'xc7'"):
        board_for("xc7", "core")


@pytest.mark.parametrize("args, needle", [
    (["--target", "ecp5", "--design", "trng", "--program", "small"],
     "program = 'small': only the design 'core' takes a program"),
    (["--target", "ecp5", "--design", "core", "--program", "huge"],
     "program = 'huge': unknown (choose from: committed, small)"),
    (["--target", "xc7", "--design", "core"], "unknown target 'xc7'"),
])
def test_cli_bad_core_combinations(args, needle, capsys, monkeypatch):
    # Nothing may be generated or built for bad input.
    monkeypatch.setattr(synth, "core_program", lambda *a: pytest.fail("program generated"))
    assert synth.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_bram_blocks_picks_the_cheapest_shape():
    ecp5 = DEVICES["LFE5U-85F"].bram_configs
    ice40 = DEVICES["iCE40UP5K"].bram_configs
    # The committed net's tile weights: 28 672 words of 4 lanes x 8 bit, 512 x 36 blocks.
    assert bram_blocks(28672, 32, ecp5) == 28672 // 512
    assert bram_blocks(1000 * 64, 8, ecp5) == 32           # the time-embedding table, 2048 x 9
    assert bram_blocks(1, 1, ecp5) == 1
    assert bram_blocks(256, 16, ice40) == 1
    assert bram_blocks(257, 16, ice40) == 2                # 512 x 8 twice
    assert bram_blocks(4096, 1, ice40) == 2                # 2048 x 2
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="depth"):
            bram_blocks(bad, 8, ecp5)


class _TwoMemories(Elaboratable):
    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = Memory(shape=20, depth=100, init=[0, 5])
        m.submodules.ram = ram = Memory(shape=4, depth=3000, init=[])
        a, d = Signal(7), Signal(20)
        rp = rom.read_port()
        m.d.comb += [rp.addr.eq(a), d.eq(rp.data), ram.read_port().addr.eq(a)]
        return m


def test_memory_inventory_and_fit_on_a_toy_device():
    dev = DeviceCapacity("toy", 100, 2, 4096, ((256, 16), (1024, 4)), 0, 8192, "test")
    mems = {m.path: m for m in memory_inventory(_TwoMemories(), dev)}
    assert set(mems) == {"rom", "ram"}
    assert (mems["rom"].depth, mems["rom"].width, mems["rom"].initialised) == (100, 20, True)
    assert (mems["ram"].depth, mems["ram"].width, mems["ram"].initialised) == (3000, 4, False)
    assert mems["rom"].brams == 2 and mems["ram"].brams == 3
    fit = memory_fit(_TwoMemories(), dev)
    assert fit["memory_bits"] == 2000 + 12000 and fit["initialised_bits"] == 2000
    assert fit["brams_estimate"] == 5 and fit["fits"]       # 14 000 <= 8 192 + 8 192
    small = DeviceCapacity("tiny", 100, 1, 1024, ((256, 4),), 0, 0, "test")
    fit = memory_fit(_TwoMemories(), small)
    assert not fit["fits"] and "2,000 bit" in fit["reason"] and "tiny" in fit["reason"]


def test_committed_net_is_refused_on_the_up5k_before_any_tool(tmp_path, monkeypatch):
    def no_tools(*a, **k):
        pytest.fail("a tool was started for a design that cannot fit")
    monkeypatch.setattr(synth, "tool_environment", no_tools)
    with pytest.raises(synth.ToolFailed) as e:
        synth.run_synth("ice40", "core", tmp_path, **QUIET)
    msg = str(e.value)
    assert "does not fit iCE40UP5K, not built" in msg and "\n" not in msg
    rep = json.loads((tmp_path / "ice40" / "report-core.json").read_text())
    assert (rep["status"], rep["stage"], rep["fits"], rep["program"]) == \
        ("failed", "preflight", False, "committed")
    mem = rep["memory"]
    up5k = DEVICES["iCE40UP5K"]
    assert mem["bram_bits_available"] == up5k.brams * up5k.bram_bits_each
    # The boot ROM of the tile weights alone (28 672 x 32 bit) is over the UP5K's block RAM.
    assert mem["initialised_bits"] > 28672 * 32 > mem["bram_bits_available"]
    assert rep["luts"] is None and rep["fmax_mhz"] is None
    assert (tmp_path / "ice40" / "report-core.md").read_text().count("Does not fit") == 1


def test_small_core_passes_the_preflight_on_the_up5k(small_ice40):
    fit = memory_fit(small_ice40, DEVICES["iCE40UP5K"])
    assert fit["fits"], fit["reason"]
    assert "small program" in small_ice40.description and "trng 4x2" in small_ice40.description
    text, array = synth.describe_design("core", small_ice40)
    assert text == small_ice40.description and (array["rows"], array["cols"]) == (4, 2)


def test_parse_tool_times_from_log_snippets():
    rpt = ("3. Executing JSON backend.\n\nEnd of script. Logfile hash: 7b4bfa6673, time: 54.59s, "
           "user: 54.59s, system: 0.00s\nYosys 0.70 (git sha1 28ba3cb92, Release)\n")
    tim = ("Info: HeAP Placer Time: 170.46s\nInfo:   of which solving equations: 88.24s\n"
           "Info: SA placement time 337.27s\n\nInfo: Routing complete.\n"
           "Info: Router1 time 73.69s\n")
    t = synth.parse_tool_times(rpt, tim)
    assert t["yosys_s"] == 54.59
    assert t["nextpnr_phases_s"] == {"HeAP Placer Time": 170.46, "SA placement time": 337.27,
                                     "Router1 time": 73.69}
    assert synth.parse_tool_times("", "") == {"yosys_s": None, "nextpnr_phases_s": {}}


def test_core_board_design_rejects_a_non_core():
    with pytest.raises(ValueError, match="CoreBoardDesign.core = int: must be a DiffusionCore"):
        CoreBoardDesign(3)


def test_core_board_design_csr_runs_an_image(small_ice40):
    """Through the CSR bus only: wait for ready, start one single-step image, read the
    counters back; then clear. Pixels are counted on the ``pix`` port."""
    d = small_ice40
    dim = d.core.image.dim
    seed = 11
    p_ready = random.Random(seed).choice([0.5, 1.0])
    out = {"pixels": 0, "last": 0}

    async def read(ctx, addr):
        ctx.set(d.csr.addr, addr)
        await ctx.tick().repeat(3)
        return ctx.get(d.csr.r_data)

    async def write(ctx, addr, value):
        ctx.set(d.csr.addr, addr)
        ctx.set(d.csr.w_data, value)
        ctx.set(d.csr.w_stb, 1)
        await ctx.tick()
        ctx.set(d.csr.w_stb, 0)

    async def counter(ctx, name):
        await write(ctx, CORE_ADDR_CNT_SEL, (CORE_COUNTERS + ("cycles", "busy_cycles")).index(name))
        return await read(ctx, CORE_ADDR_CNT_LO) | (await read(ctx, CORE_ADDR_CNT_HI) << 32)

    async def tb(ctx):
        for _ in range(3000):
            if await read(ctx, CORE_ADDR_STATUS) & 1:
                break
        else:
            raise AssertionError("ready never rose")
        await write(ctx, CORE_ADDR_STEPS, 1)
        out["steps"] = await read(ctx, CORE_ADDR_STEPS)
        await write(ctx, CORE_ADDR_CTRL, 1)
        await ctx.tick().repeat(3)
        out["busy"] = (await read(ctx, CORE_ADDR_STATUS) >> 1) & 1
        for _ in range(5000):
            if out["pixels"] == dim and not (await read(ctx, CORE_ADDR_STATUS) >> 1) & 1:
                break
            await ctx.tick().repeat(10)
        out["counts"] = {n: await counter(ctx, n) for n in ("pixels_out", "network_evals")}
        out["cycles"] = await counter(ctx, "cycles")
        await write(ctx, CORE_ADDR_CTRL, 2)
        await ctx.tick().repeat(2)
        out["cleared"] = await counter(ctx, "pixels_out")

    async def sink(ctx):
        rng = random.Random(seed)
        ready = 0
        async for _, _, valid, last in ctx.tick().sample(d.pix.valid, d.pix.payload.last):
            if valid and ready:
                out["pixels"] += 1
                out["last"] += last
            ready = int(rng.random() < p_ready)
            ctx.set(d.pix.ready, ready)

    sim = Simulator(d)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.add_process(sink)
    sim.run()
    ctx = f"seed {seed}, p_ready {p_ready}"
    assert out["steps"] == 1 and out["busy"] == 1, ctx
    assert out["pixels"] == dim and out["last"] == 1, ctx
    assert out["counts"] == {"pixels_out": dim, "network_evals": 1}, (out, ctx)
    assert out["cycles"] > d.core.image.run_cycles, ctx
    assert out["cleared"] == 0, ctx


def test_cells_by_block_groups_by_instance_path():
    def cell(t):
        return {"type": t, "attributes": {}}
    netlist = {"modules": {
        "core": {"attributes": {"top": "1"}, "cells": {
            "design.core.trng.emu.x_SB_LUT4_O": cell("SB_LUT4"),
            "design.core.trng.health.y_SB_DFF_Q": cell("SB_DFF"),
            "design.core.trng.$abc$12.z": cell("SB_LUT4"),
            "design.core.seq.c_SB_CARRY_CO": cell("SB_CARRY"),
            "design.core.cnt_macs_SB_DFFESR_Q": cell("SB_DFFESR"),
            "addr_q_SB_DFFSR_Q": cell("SB_DFFSR"),
            "design.core.boot_prog_rom.0.5": cell("SB_RAM40_4K"),      # not logic: skipped
        }},
        "helper": {"attributes": {}, "cells": {"a.b.c": cell("SB_LUT4")}},  # not the top
    }}
    got = synth.cells_by_block(netlist)
    assert got == {
        "design.core.trng": {"lut4": 2, "ff": 1, "carry": 0},
        "design.core": {"lut4": 0, "ff": 1, "carry": 0},
        "(top)": {"lut4": 0, "ff": 1, "carry": 0},
        "design.core.seq": {"lut4": 0, "ff": 0, "carry": 1},
    }
    assert list(got)[0] == "design.core.trng"
    assert synth.cells_by_block({}) == {}
