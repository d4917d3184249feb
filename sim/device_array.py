"""Physics in the loop: a cocotb player of the MTJ array port, and its TRNG-top bench.

``hw.trng_top.MTJTRNGTop(..., array="external")`` has no emulator; its controller's array port
(``docs/mtj-array.md``) is brought out, and :class:`DeviceArrayPlayer` plays the array on it with
the VCMA-MTJ device model (:class:`model.blocks.device_path.DevicePort` around
``model.devices.mtj.MTJArrayDevice``: per-cell variation, switching with the device's probability
at the pulse DAC's voltage for the ``amp`` codes, reset, sense with read noise).

The player wakes on the port's strobes only, never on every clock cycle:

* rising ``reset``  -> ``port.reset(row)``;
* rising ``pulse``  -> ``port.pulse(row, amp codes)`` (``amp`` is held through the PULSE; the
  junction sees the analog pulse width ``t_pulse_ns``, not the strobe's cycle count);
* rising ``sense``  -> ``bits = port.sense(row)``, driven on ``bits`` at once and held until
  the next sense (the controller captures them in the cycle after SENSE).

``ready`` is low from reset for ``ready_delay_cycles`` (the array's power-up), then high; with
``gap_prob`` > 0 the player also lowers ``ready`` in a SENSE cycle (the controller's deciding
cycle) for 1 … ``gap_max_cycles`` cycles, seeded, so the controller waits between rows. Neither
changes the bits: the device sees the same calls in the same order, so the golden twin
(:class:`model.blocks.device_path.DevicePath` on a ``DevicePort`` with the same arguments) gives
the same streams whatever the timing.

:class:`DeviceArrayHarness` wraps ``sim.harness.StreamHarness`` (RTL back-pressure, batched
capture) and exposes the top's array port next to the harness's ports. The cocotb test
:func:`trng_device_matches_twin` below is the bench of ``tests/test_trng_device_cocotb.py``.
Run-time stimulus (``SPINDIFF_BENCH``): ``seed``, ``device_seed``, ``array`` (ArrayConfig dict),
``readout`` (three dicts as ``sim.configs.READOUT_SMALL``), ``items``, ``sel`` (0 words, 1
samples), ``cond_mode``, ``cond_k``, ``gauss_mode``, ``bp_thresh``, ``ready_delay_cycles``,
``gap_prob``, ``gap_max_cycles``, ``drift_every_rows``, ``out`` (optional JSON path).
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from cocotb.triggers import ClockCycles, Event, RisingEdge, ValueChange, with_timeout

from hw.array_port import ArrayPortSignature
from model.blocks import csr as regs
from model.blocks.config import ArrayConfig, ConditionerConfig, GaussConfig, HealthConfig
from model.blocks.device_path import DevicePath, DevicePort
from model.io import atomic_write_json
from sim.cocotb_util import CLK_NS, CSR, start
from sim.harness import StreamHarness
from sim.runner import bench_params

__all__ = ["DeviceArrayHarness", "DeviceArrayPlayer", "pysim_player"]


class DeviceArrayPlayer:
    """Plays an array port (signals ``<prefix>row``, ``reset``, ``pulse``, ``amp``, ``sense``,
    ``bits``, ``ready`` of ``dut``) with a :class:`DevicePort`.

    Parameters
    ----------
    dut : cocotb handle
    port : DevicePort
        The device; the player calls its ``reset`` / ``pulse`` / ``sense`` at the strobes.
    prefix : str
        Name prefix of the port's signals (``"array__"`` for a top's ``array`` member).
    ready_delay_cycles : int
        Cycles after :meth:`start` with ``ready`` low (power-up), >= 0.
    gap_prob : float
        Probability, per row, of a ``ready`` gap after its SENSE (0 … 1).
    gap_max_cycles : int
        Longest gap, cycles (>= 1).
    seed : int
        Seed of the gap draws (timing only).

    Attributes
    ----------
    rows : int
        Rows sensed so far. ``gaps``: gaps made; ``gap_cycles``: their total length.
    """

    def __init__(self, dut, port: DevicePort, prefix: str = "array__", *,
                 ready_delay_cycles: int = 16, gap_prob: float = 0.0, gap_max_cycles: int = 8,
                 seed: int = 0):
        if not isinstance(port, DevicePort):
            raise ValueError(f"DeviceArrayPlayer: port = {port!r}: must be a DevicePort")
        for name, v, lo in (("ready_delay_cycles", ready_delay_cycles, 0),
                            ("gap_max_cycles", gap_max_cycles, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= 1 << 20:
                raise ValueError(f"DeviceArrayPlayer: {name} = {v!r}: must be an integer in "
                                 f"[{lo}, {1 << 20}]")
        if isinstance(gap_prob, bool) or not isinstance(gap_prob, (int, float)) \
                or not 0.0 <= gap_prob <= 1.0:
            raise ValueError(f"DeviceArrayPlayer: gap_prob = {gap_prob!r}: must be in [0, 1]")
        self.dut, self.port = dut, port
        self.clk = dut.clk
        self.sig = {n: getattr(dut, prefix + n)
                    for n in ("row", "reset", "pulse", "amp", "sense", "bits", "ready")}
        self.ready_delay_cycles, self.gap_prob = ready_delay_cycles, float(gap_prob)
        self.gap_max_cycles = gap_max_cycles
        self.rng = np.random.default_rng([seed, 0xA77A])
        self.cols, self.cw = port.array.cols, port.array.code_width
        self.rows = self.gaps = self.gap_cycles = 0
        self.sig["ready"].value = 0
        self.sig["bits"].value = 0

    def start(self):
        """Start playing (a background coroutine); returns its task."""
        return cocotb.start_soon(self._run())

    def _codes(self, amp: int) -> np.ndarray:
        mask = (1 << self.cw) - 1
        return np.array([(amp >> (c * self.cw)) & mask for c in range(self.cols)], np.int64)

    async def _run(self):
        s, port = self.sig, self.port
        if self.ready_delay_cycles:
            await ClockCycles(self.clk, self.ready_delay_cycles)
        s["ready"].value = 1
        while True:
            await RisingEdge(s["reset"])
            row = int(s["row"].value)
            port.reset(row)
            await RisingEdge(s["pulse"])
            r = int(s["row"].value)
            assert r == row, f"array port: row {r} in PULSE, {row} in RESET (device seed " \
                             f"{port.seed})"
            port.pulse(row, self._codes(int(s["amp"].value)))
            await RisingEdge(s["sense"])
            r = int(s["row"].value)
            assert r == row, f"array port: row {r} in SENSE, {row} in RESET (device seed " \
                             f"{port.seed})"
            s["bits"].value = DevicePort.pack(port.sense(row))
            self.rows += 1
            if self.gap_prob and self.rng.random() < self.gap_prob:
                # Low in the SENSE cycle, the controller's deciding cycle: no row starts until
                # ready returns. The bits stay driven for the capture cycle.
                n = int(self.rng.integers(1, self.gap_max_cycles + 1))
                s["ready"].value = 0
                await ClockCycles(self.clk, n)
                s["ready"].value = 1
                self.gaps += 1
                self.gap_cycles += n


def pysim_player(array, port: DevicePort, ready_delay_cycles: int = 16):
    """The same player for Amaranth's simulator: an async testbench (add it with
    ``sim.add_testbench(tb, background=True)``) that plays the array-port interface ``array``
    (a component's ``array`` member) with ``port``, waking on the strobes' rising edges and
    making the same device calls as :class:`DeviceArrayPlayer` (no ``ready`` gaps)."""
    if not isinstance(port, DevicePort):
        raise ValueError(f"pysim_player: port = {port!r}: must be a DevicePort")
    cols, cw = port.array.cols, port.array.code_width
    mask = (1 << cw) - 1

    async def tb(ctx):
        ctx.set(array.ready, 0)
        if ready_delay_cycles:
            await ctx.tick().repeat(ready_delay_cycles)
        ctx.set(array.ready, 1)
        while True:
            await ctx.posedge(array.reset)
            row = ctx.get(array.row)
            port.reset(row)
            await ctx.posedge(array.pulse)
            assert ctx.get(array.row) == row, f"row changed before PULSE (seed {port.seed})"
            amp = ctx.get(array.amp)
            port.pulse(row, [(amp >> (c * cw)) & mask for c in range(cols)])
            await ctx.posedge(array.sense)
            assert ctx.get(array.row) == row, f"row changed before SENSE (seed {port.seed})"
            ctx.set(array.bits, DevicePort.pack(port.sense(row)))
    return tb


class DeviceArrayHarness(wiring.Component):
    """``StreamHarness(top, stream_names, batch)`` with ``top``'s array port brought out as
    ``array`` (``top`` is an ``MTJTRNGTop(..., array="external")``)."""

    def __init__(self, top, stream_names=("words", "gauss"), batch: int = 8):
        if "array" not in top.signature.members:
            raise ValueError("DeviceArrayHarness: top has no `array` port: build it with "
                             "MTJTRNGTop(..., array='external')")
        self.top = top
        self.harness = StreamHarness(top, stream_names, batch)
        members = dict(self.harness.signature.members)
        members["array"] = Out(ArrayPortSignature(top.cfg))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.harness = h = self.harness
        for name, member in h.signature.members.items():
            mine, theirs = getattr(self, name), getattr(h, name)
            if member.is_signature:
                wiring.connect(m, wiring.flipped(mine), theirs)
            elif member.flow == In:
                m.d.comb += theirs.eq(mine)
            else:
                m.d.comb += mine.eq(theirs)
        wiring.connect(m, wiring.flipped(self.array), self.top.array)
        return m


# ------------------------------------------------------------------------------------------------
@cocotb.test()
async def trng_device_matches_twin(dut):
    """The TRNG top (external array) played by the device model, against DevicePath."""
    p = bench_params()
    seed, dseed = int(p["seed"]), int(p["device_seed"])
    a = ArrayConfig(**p["array"])
    ro = p["readout"]
    sel = int(p["sel"])
    cond_mode, cond_k, gauss_mode = int(p["cond_mode"]), int(p["cond_k"]), int(p["gauss_mode"])
    port_opts = {"drift_every_rows": int(p.get("drift_every_rows", 0))}
    port = DevicePort(a, dseed, **port_opts)
    twin = DevicePath(a, dseed, health_cfg=HealthConfig(a, **ro["health"]),
                      cond_cfg=ConditionerConfig(a, **ro["cond"]),
                      gauss_cfg=GaussConfig(**ro["gauss"]), cond_mode=cond_mode, cond_k=cond_k,
                      gauss_mode=gauss_mode, **port_opts)
    what = f"seed={seed} device_seed={dseed}"
    item_bits = twin.cond_cfg.word_bits if sel == 0 else twin.gauss_cfg.sample_bits
    width = max(twin.cond_cfg.word_bits, twin.gauss_cfg.sample_bits)
    batch = len(dut.word) // width

    player = DeviceArrayPlayer(dut, port, ready_delay_cycles=int(p["ready_delay_cycles"]),
                               gap_prob=float(p["gap_prob"]),
                               gap_max_cycles=int(p["gap_max_cycles"]), seed=seed)
    dut.sel.value = sel
    dut.bp_thresh.value = int(p["bp_thresh"])
    dut.bp_seed.value = int(np.random.default_rng(seed).integers(1, 2**32))
    dut.bp_load.value = 1
    await start(dut)
    dut.bp_load.value = 0
    player.start()
    received: list[int] = []
    enough = Event()
    items = int(p["items"])

    async def monitor():
        mask = (1 << width) - 1
        while True:
            await ValueChange(dut.word_toggle)
            b = int(dut.word.value)
            received.extend((b >> (i * width)) & mask for i in range(batch))
            if len(received) >= items:
                enough.set()

    cocotb.start_soon(monitor())
    csr = CSR(dut)
    st = regs.unpack("STATUS", await csr.read("STATUS"))
    assert st["array_ready"] == 0, f"STATUS.array_ready before the array is up ({what})"
    await csr.write("COND", regs.pack("COND", mode=cond_mode, k=cond_k))
    await csr.write("GAUSS", regs.pack("GAUSS", mode=gauss_mode, words_out=int(sel == 0)))
    await csr.wait_for("STATUS", "array_ready")
    await csr.write("CTRL", regs.pack("CTRL", enable=1, cal_enable=1))
    t0 = time.perf_counter()
    c0 = await csr.read("CYCLES")
    # Watchdog in simulated time: a generous number of rows per item, so only a stuck design
    # (or a player that never answers) trips it.
    per_item = (item_bits * (12 if gauss_mode == 1 else 1) * 4 // a.cols + 4) \
        * (a.row_period_cycles + p["gap_max_cycles"]) * 4
    await with_timeout(enough.wait(), (items * per_item + 10_000) * CLK_NS, "ns")
    cycles = await csr.read("CYCLES") - c0
    wall = time.perf_counter() - t0

    # Stop the array: the row in flight finishes; then the twin catches up row for row.
    await csr.write("CTRL", regs.pack("CTRL", enable=0, cal_enable=1))
    await ClockCycles(dut.clk, 2 * a.row_period_cycles + p["gap_max_cycles"] + 8)
    rows = await csr.read("ROWS_SENSED")
    assert rows == player.rows, f"ROWS_SENSED {rows}, player sensed {player.rows} ({what})"
    mask = (1 << item_bits) - 1
    tap = twin.packed_words if sel == 0 else twin.gauss_samples
    want = [int(v) & mask for v in tap(items)]
    got = [v & mask for v in received[:items]]
    bad = next((i for i in range(items) if got[i] != want[i]), None)
    assert bad is None, (f"item {bad} ({'word' if sel == 0 else 'sample'}): RTL {got[bad]:#x}, "
                         f"twin {want[bad]:#x} ({what})")
    assert twin.rows_run <= rows, f"twin needed {twin.rows_run} rows, RTL sensed {rows} ({what})"
    while twin.rows_run < rows:
        twin.step()
    # Same device calls in the same order: the same generator state and cell states.
    assert port.device.rng.bit_generator.state == twin.port.device.rng.bit_generator.state, \
        f"device generator states differ after {rows} rows ({what})"
    assert np.array_equal(port.device.state, twin.port.device.state), what
    for index in range(a.cells):
        await csr.write("CELL_SEL", index)
        await ClockCycles(dut.clk, regs.CELL_SEL_SETTLE_CYCLES)
        code = await csr.read("CELL_CODE")
        alarm = bool(await csr.read("CELL_ALARM") & 1)
        assert (code, alarm) == twin.ctrl.cell(index), (
            f"cell {index}: RTL code={code} alarm={alarm}, twin {twin.ctrl.cell(index)} ({what})")
    summary = regs.unpack("HEALTH_SUMMARY", await csr.read("HEALTH_SUMMARY"))
    assert summary["any_failed"] == int(twin.health.any_failed), (summary, what)
    assert summary["masked_count"] == twin.health.masked_count, (summary, what)
    report = {"items": items, "sel": sel, "rows": rows, "cycles": cycles, "wall_s": wall,
              "gaps": player.gaps, "gap_cycles": player.gap_cycles, "health": summary,
              "seed": seed, "device_seed": dseed}
    dut._log.info(f"trng/device: {items} {'words' if sel == 0 else 'samples'} bit-exact over "
                  f"{rows} rows; {report}")
    if p.get("out"):
        atomic_write_json(p["out"], report)
