"""cocotb bench: the TRNG top with its readout (health, conditioning, packing, Gaussian
generator), emulator inside, against the chained twins, item by item.

Run-time stimulus (``SPINDIFF_BENCH``): ``seed``, ``items``, ``sel`` (0: packed words on
``words``, 1: samples on ``gauss``), ``cond_mode``, ``cond_k``, ``gauss_mode``, ``bp_thresh``,
``emu`` (EmulatorConfig dict), ``readout`` (the three readout configs as dicts).
"""

import time

import cocotb
from cocotb.triggers import ClockCycles

from model.blocks import csr as regs
from model.io import atomic_write_json
from model.blocks.conditioner import BitPacker, Conditioner
from model.blocks.config import ConditionerConfig, GaussConfig, HealthConfig
from model.blocks.gaussian import GaussianGenerator
from model.blocks.health import HealthMonitor
from sim.cocotb_trng import TRNGChecker, emu_config_from_params
from sim.runner import bench_params


class ReadoutChecker(TRNGChecker):
    """Raw words from the controller and emulator twins, pushed through the readout twins."""

    def __init__(self, dut, ecfg, rcfg: dict, seed: int, sel: int):
        super().__init__(dut, ecfg, seed)
        a = ecfg.array
        self.health = HealthMonitor(HealthConfig(array=a, **rcfg["health"]))
        self.cond = Conditioner(ConditionerConfig(array=a, **rcfg["cond"]))
        self.packer = BitPacker(ConditionerConfig(array=a, **rcfg["cond"]))
        self.gauss = GaussianGenerator(GaussConfig(**rcfg["gauss"]))
        self.sel = sel
        # The harness slot is as wide as the widest captured stream.
        self.word_width = max(self.cond.cfg.word_bits, self.gauss.cfg.sample_bits)
        self.batch = len(dut.word) // self.word_width
        self.item_bits = (self.cond.cfg.word_bits if sel == 0 else self.gauss.cfg.sample_bits)
        self.expected: list[int] = []
        self.expected_raw: list[int] = []   # raw words consumed when each item was complete
        self.raw_words = 0

    def watchdog_ns(self, items: int, bp_thresh: int = 255) -> int:
        # An item needs item_bits conditioned bits (12 uniforms for sum-of-12); allow for one
        # conditioned bit per 8 rows: generous, so only a stuck design trips it.
        bits = self.item_bits * (12 if self.sel == 1 else 1)
        return super().watchdog_ns(items * bits * 8, bp_thresh)

    def _next_raw(self):
        row = self.ctrl.next_row
        bits = self.emu.trial(row, self.ctrl.amps_for_next_row())
        _, packed = self.ctrl.capture(bits)
        self.raw_words += 1
        for r, b, v in self.health.push(row, packed, self.ctrl.last_alarm):
            cb, cv = self.cond.push(r, b, v)
            for word in self.packer.push(cb, cv):
                new = [word] if self.sel == 0 else self.gauss.push(word)
                self.expected.extend(new)
                self.expected_raw.extend([self.raw_words] * len(new))

    def check_items(self):
        mask = (1 << self.item_bits) - 1
        while self.checked < len(self.received):
            while len(self.expected) <= self.checked:
                self._next_raw()
            got = self.received[self.checked] & mask
            want = self.expected[self.checked] & mask
            assert got == want, (f"item {self.checked} ({'word' if self.sel == 0 else 'sample'}): "
                                 f"RTL {got:#x}, twin {want:#x} after {self.raw_words} raw words "
                                 f"(seed={self.seed})")
            self.checked += 1


@cocotb.test()
async def readout_matches_twins(dut):
    p = bench_params()
    ecfg = emu_config_from_params(p["emu"])
    sel = int(p["sel"])
    chk = ReadoutChecker(dut, ecfg, p["readout"], p["seed"], sel)
    dut.sel.value = sel
    chk.cond.set_mode(int(p["cond_mode"]), int(p["cond_k"]))
    chk.gauss.set_mode(int(p["gauss_mode"]))
    # Readout settings before the array runs (setup() enables it at its end).
    orig_setup = chk.setup

    async def setup_with_readout():
        await orig_setup(int(p.get("bp_thresh", 64)), p.get("random_offsets", True))

    # The readout registers are written while the controller is still disabled: setup() leaves
    # CTRL.enable for last, so write them first through a pre-enable hook.
    chk.pre_enable = [("COND", regs.pack("COND", mode=int(p["cond_mode"]), k=int(p["cond_k"]))),
                      ("GAUSS", regs.pack("GAUSS", mode=int(p["gauss_mode"]),
                                          words_out=int(sel == 0)))]
    await setup_with_readout()
    c0 = await chk.csr.read("CYCLES")
    t0 = time.perf_counter()
    await chk.collect(int(p["items"]), int(p.get("bp_thresh", 64)))
    dt = time.perf_counter() - t0
    cycles = await chk.csr.read("CYCLES") - c0
    items_in_window = len(chk.received)
    chk.check_items()
    summary = regs.unpack("HEALTH_SUMMARY", await chk.csr.read("HEALTH_SUMMARY"))
    assert summary["any_failed"] == int(chk.health.any_failed), (summary, p["seed"])
    if p.get("out"):
        bits = chk.item_bits
        items = [(v & ((1 << bits) - 1)) for v in chk.received[:chk.checked]]
        if sel == 1:   # samples are signed
            items = [v - (1 << bits) if v >> (bits - 1) else v for v in items]
        atomic_write_json(p["out"], {"items": items, "raw_words": chk.raw_words,
                                     "item_raw_words": chk.expected_raw[:chk.checked],
                                     "seconds": dt, "health": summary, "cycles": cycles,
                                     "items_in_cycles": items_in_window})
    dut._log.info(f"{chk.checked} {'words' if sel == 0 else 'samples'} bit-exact from "
                  f"{chk.raw_words} raw words in {dt:.1f} s; health {summary}; seed={p['seed']}")
    await ClockCycles(dut.clk, 2)
