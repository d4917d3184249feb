"""cocotb bench: the MTJ TRNG top (controller + calibration + emulator) against its twins.

Monitor -> transaction-level model -> in-order checker. The clock runs free; back-pressure on the
raw stream is generated in RTL by ``sim.harness.StreamHarness``; the bench wakes once per accepted
word. Run-time stimulus (``SPINDIFF_BENCH``): ``seed``, ``words``, ``bp_thresh``, ``emu`` (the
EmulatorConfig as a dict), ``random_offsets``.
"""

import time

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, Event, ValueChange, with_timeout

from hw.array_port import raw_word_layout
from model.blocks import csr as regs
from model.blocks.config import ArrayConfig, EmulatorConfig
from model.blocks.emulator import MTJArrayEmulator
from model.blocks.mtj_array import MTJArrayController
from sim.cocotb_util import CLK_NS, CSR, split_word, start
from sim.runner import bench_params


def emu_config_from_params(d: dict) -> EmulatorConfig:
    d = dict(d)
    array = ArrayConfig(**d.pop("array"))
    return EmulatorConfig(array=array, table=tuple(d.pop("table")),
                          offsets=tuple(d.pop("offsets")), **d)


class TRNGChecker:
    """Drives a ``StreamHarness(MTJTRNGTop)`` and checks every raw word against the twins."""

    def __init__(self, dut, ecfg: EmulatorConfig, seed: int):
        self.dut, self.ecfg, self.cfg, self.seed = dut, ecfg, ecfg.array, seed
        self.word_width = raw_word_layout(self.cfg).size
        self.batch = len(dut.word) // self.word_width
        self.rng = np.random.default_rng(seed)
        self.ctrl = MTJArrayController(self.cfg)
        self.emu = MTJArrayEmulator(ecfg)
        self.checked = 0
        self.received: list[int] = []   # raw words in arrival order (the monitor appends)
        self.target = 1 << 62
        self.enough = Event()
        self.csr = None

    async def setup(self, bp_thresh: int, random_offsets: bool, emu_seed: int | None = None,
                    bp_seed: int | None = None):
        dut, cfg, ecfg = self.dut, self.cfg, self.ecfg
        await start(dut)
        cocotb.start_soon(self._monitor())
        self.csr = csr = CSR(dut)
        dut.bp_load.value = 1
        dut.bp_seed.value = int(self.rng.integers(1, 2**32)) if bp_seed is None else bp_seed
        dut.bp_thresh.value = int(bp_thresh)
        await ClockCycles(dut.clk, 1)
        dut.bp_load.value = 0
        assert await csr.read("ID") == regs.ID_VALUE
        geom = regs.unpack("GEOMETRY", await csr.read("GEOMETRY"))
        assert (geom["rows"], geom["cols"]) == (cfg.rows, cfg.cols), geom
        if random_offsets:
            # Run-time randomness: per-cell offsets (device spread) through CELL_OFFSET.
            lim = 1 << (ecfg.offset_width - 1)
            for index in range(cfg.cells):
                v = int(self.rng.integers(-lim // 4, lim // 4))
                await csr.write("CELL_SEL", index)
                await csr.write("CELL_OFFSET", v)
                self.emu.set_offset(index, v)
                await ClockCycles(dut.clk, regs.CELL_SEL_SETTLE_CYCLES)
                got = await csr.read("CELL_OFFSET")
                got = got - (1 << 32) if got >> 31 else got
                assert got == v, f"CELL_OFFSET[{index}] read {got}, wrote {v} (seed={self.seed})"
        if emu_seed is None:
            emu_seed = int(self.rng.integers(0, 2**32))
        for name, value in getattr(self, "pre_enable", ()):
            await csr.write(name, value)
        await csr.write("SEED", emu_seed)
        await csr.write("CTRL", regs.pack("CTRL", cal_enable=1, reseed=1))
        self.emu.reseed(emu_seed)
        await csr.wait_for("STATUS", "array_ready")
        await csr.write("CTRL", regs.pack("CTRL", enable=1, cal_enable=1))

    def watchdog_ns(self, words: int, bp_thresh: int = 255) -> int:
        """A generous sim-time budget for ``words`` words: a stuck design fails, never hangs."""
        per_word = self.cfg.row_period_cycles * 256 // max(1, 256 - bp_thresh)
        return (words + 64) * per_word * 8 * CLK_NS + 100_000 * CLK_NS

    async def _monitor(self):
        """Records every accepted raw word, in order (the harness flips word_toggle per word).

        Cheap on purpose: the simulator runs free between words, and the twins check the words
        afterwards (:meth:`check_received`), so Python's cost does not slow the clock.
        """
        w, n, mask = self.word_width, self.batch, (1 << self.word_width) - 1
        while True:
            await ValueChange(self.dut.word_toggle)
            batch = int(self.dut.word.value)
            self.received.extend((batch >> (i * w)) & mask for i in range(n))
            if len(self.received) >= self.target:
                self.enough.set()

    def take_partial_batch(self) -> None:
        """Once the design is idle: append the words still in the harness's partial batch."""
        fill = int(self.dut.fill.value)
        buf = int(self.dut.buf.value)
        w, n, mask = self.word_width, self.batch, (1 << self.word_width) - 1
        self.received.extend((buf >> (i * w)) & mask for i in range(n - fill, n))

    async def collect(self, words: int, bp_thresh: int = 255):
        """Wait until ``words`` words in all have been received (sim-time watchdog)."""
        if len(self.received) >= words:
            return
        self.target = words
        self.enough.clear()
        await with_timeout(self.enough.wait(),
                           self.watchdog_ns(words - len(self.received), bp_thresh), "ns")

    def check_received(self, on_word=None) -> None:
        """Check every received word not yet checked, in order, against the twins."""
        cfg, ctrl = self.cfg, self.ctrl
        while self.checked < len(self.received):
            row, bits = split_word(self.received[self.checked], cfg.row_width, cfg.cols)
            want_row = ctrl.next_row
            want_bits = self.emu.trial(want_row, ctrl.amps_for_next_row())
            _, want_packed = ctrl.capture(want_bits)
            assert (row, bits) == (want_row, want_packed), (
                f"word {self.checked}: RTL row={row} bits={bits:#x}, twin row={want_row} "
                f"bits={want_packed:#x} (seed={self.seed})")
            self.checked += 1
            if on_word is not None:
                on_word(row, bits)

    async def stop_and_compare_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Disable, drain the words in flight, compare every cell's code and alarm."""
        csr, cfg, dut = self.csr, self.cfg, self.dut
        await csr.write("CTRL", regs.pack("CTRL", enable=0, cal_enable=1))
        await ClockCycles(dut.clk, 4 * cfg.row_period_cycles + 16)
        sensed = await csr.read("ROWS_SENSED")
        await self.collect(sensed - sensed % self.batch)
        self.take_partial_batch()
        self.check_received()
        assert int(dut.words.value) == sensed == self.checked, (
            int(dut.words.value), sensed, self.checked, self.seed)
        codes = np.zeros(cfg.cells, dtype=np.int64)
        alarms = np.zeros(cfg.cells, dtype=bool)
        for index in range(cfg.cells):
            await csr.write("CELL_SEL", index)
            await ClockCycles(dut.clk, regs.CELL_SEL_SETTLE_CYCLES)
            codes[index] = await csr.read("CELL_CODE")
            alarms[index] = bool(await csr.read("CELL_ALARM") & 1)
            want_code, want_alarm = self.ctrl.cell(index)
            assert (codes[index], alarms[index]) == (want_code, want_alarm), (
                f"cell {index}: RTL code={codes[index]} alarm={alarms[index]}, twin "
                f"code={want_code} alarm={want_alarm} (seed={self.seed})")
        return codes.reshape(cfg.rows, cfg.cols), alarms.reshape(cfg.rows, cfg.cols)


@cocotb.test()
async def raw_words_match_twin(dut):
    p = bench_params()
    chk = TRNGChecker(dut, emu_config_from_params(p["emu"]), p["seed"])
    bp = int(p.get("bp_thresh", 96))
    await chk.setup(bp, p.get("random_offsets", True))
    c0 = await chk.csr.read("CYCLES")
    t0 = time.perf_counter()
    await chk.collect(int(p["words"]), bp)
    dt = time.perf_counter() - t0
    cycles = await chk.csr.read("CYCLES") - c0
    chk.check_received()
    await chk.stop_and_compare_cells()
    dut._log.info(f"checked {chk.checked} words ({chk.checked * chk.cfg.cols} raw bits) "
                  f"bit-exact; {cycles} cycles in {dt:.2f} s = {cycles / dt:.0f} cycles/s; "
                  f"seed={p['seed']}")
