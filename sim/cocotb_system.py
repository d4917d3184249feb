"""cocotb module behind `make sim`: the array path, cycle-accurate, checked word for word.

Runs the TRNG top (emulator cells with the device model's spread) for ``windows`` calibration
windows with the clock free-running, checks every raw word and the final per-cell state against the
twins, and saves the words and the twin's code trajectory (one snapshot per window) to ``out``.
"""

import io
import sys
import time

import cocotb
import numpy as np
from tqdm import tqdm

from model.io import atomic_write_bytes
from sim.cocotb_trng import TRNGChecker, emu_config_from_params
from sim.runner import bench_params


@cocotb.test()
async def array_run(dut):
    p = bench_params()
    ecfg = emu_config_from_params(p["emu"])
    cfg = ecfg.array
    chk = TRNGChecker(dut, ecfg, p["seed"])
    n_words = int(p["windows"]) * cfg.window * cfg.rows
    rows = np.zeros(n_words, dtype=np.int32)
    bits = np.zeros((n_words, cfg.cols), dtype=np.uint8)
    history = [chk.ctrl.codes.copy()]
    await chk.setup(bp_thresh=int(p.get("bp_thresh", 0)), random_offsets=False,
                    emu_seed=int(p["emu_seed"]))
    c0 = await chk.csr.read("CYCLES")
    t0 = time.perf_counter()
    step = max(1, n_words // 50)
    with tqdm(total=n_words, unit="word", desc="array run (Verilator)", file=sys.stderr,
              mininterval=0.5) as bar:
        for target in range(step, n_words + step, step):
            await chk.collect(min(target, n_words))
            bar.update(min(target, n_words) - bar.n)
    seconds = time.perf_counter() - t0
    cycles = await chk.csr.read("CYCLES") - c0

    def record(row, word):
        i = chk.checked - 1
        if i >= n_words:      # words in flight when the run stopped: checked, not recorded
            return
        rows[i] = row
        bits[i] = [(word >> c) & 1 for c in range(cfg.cols)]
        if chk.ctrl.trial == 0 and chk.ctrl.next_row == 0:
            history.append(chk.ctrl.codes.copy())

    print("checking every word against the twins ...", file=sys.stderr)
    chk.check_received(record)
    codes, alarms = await chk.stop_and_compare_cells()
    buf = io.BytesIO()
    np.savez_compressed(buf, rows=rows, bits=bits, code_history=np.array(history),
                        codes=codes, alarms=alarms, offsets=np.array(ecfg.offsets),
                        table=np.array(ecfg.table), cycles=cycles, seconds=seconds,
                        words_checked=chk.checked)
    atomic_write_bytes(p["out"], buf.getvalue())
    dut._log.info(f"{chk.checked} words bit-exact against the twins; {cycles} cycles in "
                  f"{seconds:.1f} s; seed={p['seed']}")
