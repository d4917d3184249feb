"""cocotb bench: the MTJ-array controller with the test bench playing the array.

The bench watches the controller's array port every cycle and answers each SENSE with bits drawn
from the VCMA-MTJ device model (``model.devices.mtj``) for the amplitude codes that the controller
drove during that row's PULSE. The same sensed bits go to the controller twin; the bench checks,
in order: the row and codes on the port against the twin, every raw word against the twin, and at
the end every cell's code and alarm. Outside the cycle where ``bits`` is defined the bench drives
random garbage on it, so a controller that samples at the wrong cycle fails.

Run-time stimulus (``SPINDIFF_BENCH``): ``seed``, ``rows_to_run``, ``array`` (ArrayConfig dict),
``ready_prob`` (raw.ready probability). The device has the default parameters and spread.
"""

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge

from hw.mtj_array import MTJArrayController as RTLController
from model.blocks.config import ArrayConfig
from model.blocks.mtj_array import MTJArrayController
from model.devices.dac import PulseDAC
from model.devices.mtj import MTJArrayDevice
from sim.cocotb_util import start, split_word
from sim.runner import bench_params


CELL_READ_LATENCY = RTLController.CELL_READ_LATENCY


@cocotb.test()
async def controller_with_device_model(dut):
    p = bench_params()
    seed = p["seed"]
    cfg = ArrayConfig(**p["array"])
    rng = np.random.default_rng(seed)
    device = MTJArrayDevice(rows=cfg.rows, cols=cfg.cols, seed=seed,
                            dac=PulseDAC(code_width=cfg.code_width))
    ctrl = MTJArrayController(cfg)
    ready_prob = float(p.get("ready_prob", 0.7))

    dut.enable.value = 0
    dut.cal_enable.value = 1
    dut.clear_alarms.value = 0
    dut.cell_sel.value = 0
    dut.port__ready.value = 1
    dut.port__bits.value = 0
    dut.raw__ready.value = 0
    await start(dut)
    dut.enable.value = 1

    expected: list[tuple[int, int]] = []
    pending_bits = None          # bits to present in the cycle after SENSE
    pulse_amps = None
    pulse_row = None
    seen = 0
    n_rows = int(p["rows_to_run"])
    cw, mask = cfg.code_width, (1 << cfg.code_width) - 1
    cycles = 0
    while seen < n_rows:
        await FallingEdge(dut.clk)
        cycles += 1
        # Outputs of the controller in this cycle (registered: stable since the rising edge).
        row = int(dut.port__row.value)
        if int(dut.port__pulse.value):
            amp = int(dut.port__amp.value)
            amps = [(amp >> (c * cw)) & mask for c in range(cfg.cols)]
            if pulse_amps is None:
                pulse_amps, pulse_row = amps, row
            assert amps == pulse_amps and row == pulse_row, (
                f"amp/row changed during a pulse (seed={seed})")
        else:
            assert int(dut.port__amp.value) == 0, f"amp not 0 outside PULSE (seed={seed})"
        # Inputs for this cycle.
        if pending_bits is not None:
            dut.port__bits.value = pending_bits
            pending_bits = None
        else:
            dut.port__bits.value = int(rng.integers(0, 1 << cfg.cols))
        if int(dut.port__sense.value):
            assert pulse_amps is not None and row == pulse_row, f"SENSE without PULSE (seed={seed})"
            want_row = ctrl.next_row
            want_amps = [int(a) for a in ctrl.amps_for_next_row()]
            assert (row, pulse_amps) == (want_row, want_amps), (
                f"row {row} codes {pulse_amps}; twin row {want_row} codes {want_amps} "
                f"(seed={seed})")
            bits = device.trial(row, np.asarray(pulse_amps))
            expected.append(ctrl.capture(bits))
            pending_bits = int(sum(int(b) << c for c, b in enumerate(bits)))
            pulse_amps = None
        # valid and payload are registered (stable since the rising edge); the ready set now
        # decides whether the word transfers at the next rising edge.
        ready = int(rng.random() < ready_prob)
        dut.raw__ready.value = ready
        if ready and int(dut.raw__valid.value):
            got = split_word(int(dut.raw__payload.value), cfg.row_width, cfg.cols)
            assert expected, f"raw word {got} with no row sensed (seed={seed})"
            want = expected.pop(0)
            assert got == want, f"raw word {seen}: RTL {got}, twin {want} (seed={seed})"
            seen += 1

    # Stop and compare the calibration state of every cell.
    dut.enable.value = 0
    dut.raw__ready.value = 1
    for _ in range(4 * cfg.row_period_cycles):
        await FallingEdge(dut.clk)
        if int(dut.port__sense.value):
            bits = device.trial(int(dut.port__row.value), np.asarray(ctrl.amps_for_next_row()))
            ctrl.capture(bits)
            await FallingEdge(dut.clk)
            dut.port__bits.value = int(sum(int(b) << c for c, b in enumerate(bits)))
    mismatches = []
    for index in range(cfg.cells):
        dut.cell_sel.value = index
        for _ in range(CELL_READ_LATENCY + 1):
            await FallingEdge(dut.clk)
        got = (int(dut.cell_code.value), bool(int(dut.cell_alarm.value)))
        want = ctrl.cell(index)
        if got != want:
            mismatches.append((index, got, want))
    assert not mismatches, f"cell (index, RTL, twin): {mismatches[:8]} (seed={seed})"
    codes = ctrl.codes.ravel()
    dut._log.info(f"{seen} words checked over {cycles} cycles; codes min/mean/max "
                  f"{codes.min()}/{codes.mean():.1f}/{codes.max()}; seed={seed}")
