"""cocotb module behind `make bench`: simulator speed on the TRNG top, then a full twin check.

Same stimulus as ``sim/pysim_trng.py`` (default emulator offsets, ``emu_seed``, ``bp_seed``,
``bp_thresh``): the timed part only collects words (the clock runs free, the bench wakes once per
batch of words); every word is checked against the twins afterwards, outside the timing.
"""

import json
import time

import cocotb

from model.io import atomic_write_json
from sim.cocotb_trng import TRNGChecker, emu_config_from_params
from sim.runner import bench_params


@cocotb.test()
async def speed(dut):
    p = bench_params()
    chk = TRNGChecker(dut, emu_config_from_params(p["emu"]), p["seed"])
    await chk.setup(int(p["bp_thresh"]), random_offsets=False, emu_seed=int(p["emu_seed"]),
                    bp_seed=int(p["bp_seed"]))
    c0 = await chk.csr.read("CYCLES")
    t0 = time.perf_counter()
    await chk.collect(int(p["words"]), int(p["bp_thresh"]))
    seconds = time.perf_counter() - t0
    cycles = await chk.csr.read("CYCLES") - c0
    words = len(chk.received)
    chk.check_received()
    atomic_write_json(p["out"], {"cycles": cycles, "seconds": seconds, "words": words,
                                 "first_words": chk.received[:int(p["compare_words"])]})
    dut._log.info(f"{words} words, {cycles} cycles, {cycles / seconds:.0f} cycles/s "
                  f"({json.dumps(p['bp_thresh'])} back-pressure threshold); twin check passed")
