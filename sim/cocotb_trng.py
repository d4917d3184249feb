"""cocotb bench: the MTJ TRNG top (controller + calibration + emulator) against its twins.

Monitor -> transaction-level model -> in-order checker. The clock runs free; back-pressure on the
raw stream is generated in RTL by ``sim.harness.StreamHarness``; the bench wakes once per accepted
word. Run-time stimulus (``SPINDIFF_BENCH``): ``seed``, ``words``, ``bp_thresh``, ``emu`` (the
EmulatorConfig as a dict), ``random_offsets``.
"""

import time

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ValueChange

from model.blocks import csr as regs
from model.blocks.config import ArrayConfig, EmulatorConfig
from model.blocks.emulator import MTJArrayEmulator
from model.blocks.mtj_array import MTJArrayController
from sim.cocotb_util import CSR, split_word, start
from sim.runner import bench_params


def emu_config_from_params(d: dict) -> EmulatorConfig:
    d = dict(d)
    array = ArrayConfig(**d.pop("array"))
    return EmulatorConfig(array=array, table=tuple(d.pop("table")),
                          offsets=tuple(d.pop("offsets")), **d)


@cocotb.test()
async def raw_words_match_twin(dut):
    p = bench_params()
    seed = p["seed"]
    ecfg = emu_config_from_params(p["emu"])
    cfg = ecfg.array
    rng = np.random.default_rng(seed)
    await start(dut)
    csr = CSR(dut)
    dut.bp_load.value = 1
    dut.bp_seed.value = int(rng.integers(1, 2**32))
    dut.bp_thresh.value = int(p.get("bp_thresh", 96))
    await ClockCycles(dut.clk, 1)
    dut.bp_load.value = 0

    assert await csr.read("ID") == regs.ID_VALUE
    geom = regs.unpack("GEOMETRY", await csr.read("GEOMETRY"))
    assert (geom["rows"], geom["cols"]) == (cfg.rows, cfg.cols), geom

    ctrl = MTJArrayController(cfg)
    emu = MTJArrayEmulator(ecfg)
    # Run-time randomness: per-cell offsets (device spread) and the generator seed.
    if p.get("random_offsets", True):
        lim = 1 << (ecfg.offset_width - 1)
        for index in range(cfg.cells):
            v = int(rng.integers(-lim // 4, lim // 4))
            await csr.write("CELL_SEL", index)
            await csr.write("CELL_OFFSET", v)
            emu.set_offset(index, v)
            got = await csr.read("CELL_OFFSET")
            assert (got - (1 << 32) if got >> 31 else got) == v, (index, got, v, seed)
    emu_seed = int(rng.integers(0, 2**32))
    await csr.write("SEED", emu_seed)
    await csr.write("CTRL", regs.pack("CTRL", cal_enable=1, reseed=1))
    emu.reseed(emu_seed)
    await csr.wait_for("STATUS", "array_ready")
    await csr.write("CTRL", regs.pack("CTRL", enable=1, cal_enable=1))

    n_words = int(p["words"])
    t0 = time.perf_counter()
    checked = 0

    async def check_next():
        nonlocal checked
        await ValueChange(dut.word_toggle)
        row, bits = split_word(int(dut.word.value), cfg.row_width, cfg.cols)
        want_row = ctrl.next_row
        want_bits = emu.trial(want_row, ctrl.amps_for_next_row())
        _, want_packed = ctrl.capture(want_bits)
        assert (row, bits) == (want_row, want_packed), (
            f"word {checked}: RTL row={row} bits={bits:#x}, twin row={want_row} "
            f"bits={want_packed:#x} (seed={seed})")
        checked += 1

    while checked < n_words:
        await check_next()

    # Stop, drain what was in flight, then compare every cell's code and alarm.
    await csr.write("CTRL", regs.pack("CTRL", enable=0, cal_enable=1))
    for _ in range(4 * cfg.row_period_cycles + 16):
        await ClockCycles(dut.clk, 1)
    sensed = await csr.read("ROWS_SENSED")
    while checked < sensed:
        await check_next()
    assert int(dut.words.value) == sensed == checked, (int(dut.words.value), sensed, checked, seed)
    for index in range(cfg.cells):
        await csr.write("CELL_SEL", index)
        code = await csr.read("CELL_CODE")
        alarm = await csr.read("CELL_ALARM")
        want_code, want_alarm = ctrl.cell(index)
        assert (code, bool(alarm & 1)) == (int(want_code), bool(want_alarm)), (
            f"cell {index}: RTL code={code} alarm={alarm}, twin code={want_code} "
            f"alarm={want_alarm} (seed={seed})")
    dt = time.perf_counter() - t0
    cycles = await csr.read("CYCLES")
    dut._log.info(f"checked {checked} words ({checked * cfg.cols} raw bits) bit-exact, "
                  f"{cycles} cycles, {cycles / dt:.0f} cycles/s, seed={seed}")
