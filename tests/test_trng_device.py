"""The TRNG top with an external array (``MTJTRNGTop(..., array="external")``) in Amaranth's
simulator, played by the device model, against the controller twin on the same device calls; and
the golden twin of that mode (``model.blocks.device_path``, ``model.diffusion.noise.DeviceNoise``).
The Verilator bench with the readout is ``tests/test_trng_device_cocotb.py``.
"""

import os

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hw.array_port import ArrayPortSignature
from hw.csr import CSR_READ_LATENCY
from hw.trng_top import MTJTRNGTop, default_emulator_config
from model.blocks import csr as regs
from model.blocks.config import ArrayConfig, GaussConfig
from model.blocks.device_path import DevicePath, DevicePort
from model.blocks.fixedpoint import MODE_CBD
from model.blocks.gaussian import exact_moments
from model.blocks.mtj_array import MTJArrayController
from model.devices.dac import PulseDAC
from sim.device_array import pysim_player

SEED = int(os.environ.get("SPINDIFF_SEED", "20261202"))
CFG = ArrayConfig(rows=2, cols=3, window_log2=2, reset_cycles=1, pulse_cycles=2, step_shift=1,
                  deadband=0)


def test_array_mode_rejects_bad_value():
    ecfg = default_emulator_config(CFG)
    for bad in ("emu", "", None, 1):
        with pytest.raises(ValueError, match=r"array = .*allowed 'emulator', 'external'"):
            MTJTRNGTop(ecfg, array=bad)


def test_external_mode_brings_the_port_out_and_drops_the_emulator():
    ecfg = default_emulator_config(CFG)
    ext = MTJTRNGTop(ecfg, array="external")
    assert ext.signature.members["array"].signature == ArrayPortSignature(CFG)
    emu = MTJTRNGTop(ecfg)
    assert "array" not in emu.signature.members
    emu._MustUse__silence = True
    text = verilog.convert(ext, name="top")
    for name, width, direction in (("row", CFG.row_width, "output"), ("bits", CFG.cols, "input"),
                                   ("ready", 1, "input"), ("pulse", 1, "output"),
                                   ("amp", CFG.cols * CFG.code_width, "output")):
        decl = f"{direction} [{width - 1}:0] array__{name};" if width > 1 else \
            f"{direction} array__{name};"
        assert decl in text, decl
    assert "xoshiro" not in text.lower() and "module top_emu" not in text


async def _csr(ctx, bus, name, value=None):
    """Write ``value`` to register ``name``; or, with no value, read it (read latency 2)."""
    ctx.set(bus.addr, regs.addr(name))
    if value is None:
        await ctx.tick().repeat(CSR_READ_LATENCY)
        return ctx.get(bus.r_data)
    ctx.set(bus.w_data, value)
    ctx.set(bus.w_stb, 1)
    await ctx.tick()
    ctx.set(bus.w_stb, 0)


def _run_external(seed: int, rows_to_run: int, ready_delay: int):
    """Amaranth sim of the external-array top (raw words); ``sim.device_array.pysim_player``
    plays the port with a DevicePort. Returns ({words, status before/after ready, CELL_OFFSET
    read}, the player's port)."""
    dut = MTJTRNGTop(default_emulator_config(CFG), array="external")
    port = DevicePort(CFG, seed)
    out = {"words": [], "status": []}

    async def tb(ctx):
        ctx.set(dut.raw.ready, 1)
        out["status"].append(regs.unpack("STATUS", await _csr(ctx, dut.csr, "STATUS")))
        await _csr(ctx, dut.csr, "CELL_OFFSET", 5)
        out["offset"] = await _csr(ctx, dut.csr, "CELL_OFFSET")
        await ctx.tick().repeat(ready_delay)
        out["status"].append(regs.unpack("STATUS", await _csr(ctx, dut.csr, "STATUS")))
        await _csr(ctx, dut.csr, "CTRL", regs.pack("CTRL", enable=1, cal_enable=1))
        pl = dut.raw.payload
        while len(out["words"]) < rows_to_run:
            *_, valid, row, bits, alarm = await ctx.tick().sample(dut.raw.valid, pl.row, pl.bits,
                                                                  pl.alarm)
            if valid:
                out["words"].append((row, bits, alarm))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(pysim_player(dut.array, port, ready_delay_cycles=ready_delay),
                      background=True)
    sim.add_testbench(tb)
    sim.run()
    return out, port


def test_external_array_raw_words_match_controller_twin_on_the_device():
    rows = 240
    out, port = _run_external(SEED % 1000, rows, ready_delay=7)
    assert [s["array_ready"] for s in out["status"]] == [0, 1], f"seed={SEED}"
    assert out["offset"] == 0, f"CELL_OFFSET reads {out['offset']} without an emulator"
    assert len(out["words"]) == rows, f"seed={SEED}: {len(out['words'])} words"
    ctrl = MTJArrayController(CFG)
    twin_port = DevicePort(CFG, SEED % 1000)
    for i, got in enumerate(out["words"]):
        r = ctrl.next_row
        row, bits = ctrl.capture(twin_port.row(r, ctrl.amps_for_next_row()))
        assert got == (row, bits, ctrl.last_alarm), f"word {i}: RTL {got}, twin " \
            f"{(row, bits, ctrl.last_alarm)} (seed={SEED})"
    # The device sees the same calls: the same generator state afterwards (the bench stopped
    # with the next rows possibly begun: replay the calls the player made beyond the words).
    while twin_port.rows_sensed < port.rows_sensed:
        ctrl.capture(twin_port.row(ctrl.next_row, ctrl.amps_for_next_row()))
    if port.resets > twin_port.resets:
        twin_port.reset(ctrl.next_row)
    if port.pulses > twin_port.pulses:
        twin_port.pulse(ctrl.next_row, ctrl.amps_for_next_row())
    assert (port.resets, port.pulses) == (twin_port.resets, twin_port.pulses)
    assert port.device.rng.bit_generator.state == twin_port.device.rng.bit_generator.state
    # The calibration moved codes (windows of 4 sweeps, 120 sweeps): the loop is exercised.
    assert (ctrl.codes != CFG.code_init).any(), f"seed={SEED}"


def test_device_port_row_is_reset_pulse_sense():
    a = ArrayConfig(rows=3, cols=4)
    p1, p2, p3 = DevicePort(a, 11), DevicePort(a, 11), DevicePort(a, 12)
    rng = np.random.default_rng(SEED)
    same = diff = 0
    for k in range(300):
        r = k % a.rows
        codes = rng.integers(100, 160, a.cols)
        b1 = p1.row(r, codes)
        p2.reset(r)
        p2.pulse(r, codes)
        b2 = p2.sense(r)
        b3 = p3.row(r, codes)
        assert np.array_equal(b1, b2), f"row op {k} (seed={SEED})"
        same += int(np.array_equal(b1, b3))
        diff += int(not np.array_equal(b1, b3))
    assert diff > 100, f"another device seed gave the same bits {same} times of 300"


def test_device_port_validates():
    a = ArrayConfig(rows=2, cols=2)
    with pytest.raises(ValueError, match="seed = -1"):
        DevicePort(a, -1)
    with pytest.raises(ValueError, match="code_width"):
        DevicePort(a, 1, dac=PulseDAC(code_width=6))
    with pytest.raises(ValueError, match="t_pulse_ns = 7"):
        DevicePort(a, 1, t_pulse_ns=7.0)
    with pytest.raises(ValueError, match="variation = 'big'"):
        DevicePort(a, 1, variation="big")
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        DevicePort(a, 1).pulse(0, [1, 2, 3])
    with pytest.raises(ValueError, match="drift_every_rows"):
        DevicePort(a, 1, drift_every_rows=-2)


def test_device_path_streams_and_calibration():
    a = ArrayConfig(rows=3, cols=5, window_log2=3)
    whole = DevicePath(a, 3).gauss_samples(200)
    split = DevicePath(a, 3)
    parts = np.concatenate([split.gauss_samples(n) for n in (1, 90, 0, 109)])
    assert np.array_equal(whole, parts)
    assert not np.array_equal(whole, DevicePath(a, 4).gauss_samples(200))
    with pytest.raises(ValueError, match="other tap"):
        split.packed_words(1)
    # The calibration loop pulls the cells towards P(1) = 1/2: after the start-up the mean over
    # cells of |P(1) - 1/2| in the late raw bits is 0.011-0.035 for seeds 1-8 (8-sweep windows
    # make single cells wander, up to 0.25), and 0.25-0.40 with the calibration off.
    path = DevicePath(a, SEED % 1000)
    for _ in range(40 * 8 * a.rows):           # 40 windows of 8 sweeps: past the start-up
        path.step()
    ones = np.zeros((a.rows, a.cols))
    trials = np.zeros((a.rows, 1))
    for _ in range(2000):
        r, bits, _ = path.step()
        ones[r] += [(bits >> c) & 1 for c in range(a.cols)]
        trials[r] += 1
    off = float(np.abs(ones / trials - 0.5).mean())
    assert off < 0.08, f"cells' P(1) off 1/2 by {off} on average (seed={SEED})"
    v = path.gauss_samples(1500) * 2.0**-GaussConfig().frac_bits
    mean, var = exact_moments(GaussConfig(), MODE_CBD)
    assert abs(v.mean() - float(mean)) < 0.12 and abs(v.var() - float(var)) < 0.2, \
        f"mean {v.mean()}, var {v.var()} (seed={SEED})"


def test_device_noise_is_the_path_and_feeds_hw_sample():
    from model.diffusion.hardware import noise_codes_source
    from model.diffusion.noise import DeviceNoise
    a = ArrayConfig(rows=2, cols=4)
    src = DeviceNoise(9, array=a)
    got = np.concatenate([src.codes(70), src.codes(30)])
    assert np.array_equal(got, DevicePath(a, 9).gauss_samples(100))
    assert src.drawn == 100 and src.describe()["device_seed"] == 9
    assert noise_codes_source(src, None, GaussConfig()) is src
    with pytest.raises(ValueError, match="Q4.11"):
        noise_codes_source(src, None, GaussConfig(frac_bits=10))
    with pytest.raises(ValueError, match="seed"):
        DeviceNoise(-3)
