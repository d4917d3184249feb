"""`make bench`: speed and rate figures -> build/bench/bench.json and bench.md.

Under ``trng``:

- ``verilator_cycles_per_s`` and ``pysim_cycles_per_s``: the same design (the default 8x8 TRNG top
  in the back-pressure harness), the same stimulus (seeds, back-pressure threshold); Verilator
  collects ``--words`` words, Amaranth's simulator a prefix of the same run, and their first words
  are compared to show it is the same run.
- ``raw_bits_per_cycle``: measured raw bits per clock with the stream always ready.
- ``mbit_per_s_per_column_at_fmax``: one bit per column per row period at the post-route Fmax
  of each FPGA target found under build/synth (run `make synth` first; null otherwise).
- ``device_limited_mbit_per_s_per_column``: from the device model's reset, pulse, settle and sense
  times.
- ``calibration_windows_to_converge``: windows until every cell holds 0.5 within the
  window-derived tolerance, for several device-variation seeds (twins).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from sim.meta import ROOT, provenance

OUT = ROOT / "build" / "bench"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--words", type=int, default=50_000)
    ap.add_argument("--pysim-words", type=int, default=400)
    args = ap.parse_args(argv)
    for name, v, lo, hi in (("--words", args.words, 1000, 10_000_000),
                            ("--pysim-words", args.pysim_words, 16, 100_000),
                            ("--seed", args.seed, 0, 2**32 - 1)):
        if not lo <= v <= hi:
            print(f"error: {name} = {v}: out of range, allowed [{lo}, {hi}]", file=sys.stderr)
            return 2

    from hw.trng_top import MTJTRNGTop
    from model.blocks.emulator import MTJArrayEmulator
    from model.blocks.mtj_array import (MTJArrayController, calibrate, convergence_windows,
                                        window_tolerance)
    from model.devices.mtj import MTJParams, device_row_period_ns
    from model.io import atomic_write_json, atomic_write_text
    from sim.configs import TRNG_DEFAULT, emu_params, emulator_config
    from sim.harness import StreamHarness
    from sim.pysim_trng import run_pysim
    from sim.runner import run_cocotb

    cfg = TRNG_DEFAULT
    ecfg = emulator_config(cfg, seed=args.seed)
    emu_seed, bp_seed, bp_thresh = args.seed, 0x1234567 + args.seed, 0
    OUT.mkdir(parents=True, exist_ok=True)

    print(f"[bench] Verilator: {args.words} words on trng_8x8")
    vjson = OUT / "verilator_run.json"
    run_cocotb(StreamHarness(MTJTRNGTop(ecfg)), "trng_8x8", "sim.cocotb_bench",
               {"emu": emu_params(ecfg), "words": args.words, "emu_seed": emu_seed,
                "bp_seed": bp_seed, "bp_thresh": bp_thresh, "out": str(vjson),
                "compare_words": args.pysim_words}, seed=args.seed, run_name="bench")
    v = json.loads(vjson.read_text())

    print(f"[bench] Amaranth simulator: {args.pysim_words} words, same design and stimulus")
    ps = run_pysim(ecfg, emu_seed, bp_seed, bp_thresh, args.pysim_words)
    same = ps["words"][:args.pysim_words] == v["first_words"][:args.pysim_words]
    if not same:
        print("error: the Amaranth simulator and Verilator produced different words",
              file=sys.stderr)
        return 1

    v_cps = v["cycles"] / v["seconds"]
    raw_bits_per_cycle = v["words"] * cfg.cols / v["cycles"]
    fmax = {}
    for target in ("ice40", "ecp5"):
        rep = ROOT / "build" / "synth" / target / "report.json"
        if rep.exists():
            r = json.loads(rep.read_text())
            if r.get("fmax_mhz"):
                fmax[target] = {"fmax_mhz": r["fmax_mhz"], "design": r.get("design"),
                                "row_period_cycles": cfg.row_period_cycles}
    per_col_at_fmax = {t: f["fmax_mhz"] * raw_bits_per_cycle / cfg.cols for t, f in fmax.items()}
    params = MTJParams()
    row_ns = device_row_period_ns(params)

    print("[bench] calibration convergence (twins, 5 device seeds)")
    tol = window_tolerance(cfg.window)
    ks = []
    for s in range(1, 6):
        e = MTJArrayEmulator(emulator_config(cfg, seed=s))
        e.reseed(s)
        ks.append(convergence_windows(calibrate(MTJArrayController(cfg), e, 60), tol))

    print("[bench] twin fast path")
    e = MTJArrayEmulator(ecfg)
    amps = np.full((cfg.rows, cfg.cols), cfg.code_init)
    t0 = time.perf_counter()
    n_sweeps = 20_000
    e.sweeps(amps, n_sweeps)
    twin_bits_per_s = n_sweeps * cfg.cells / (time.perf_counter() - t0)

    trng = {
        "design": f"trng {cfg.rows}x{cfg.cols}, {cfg.code_width}-bit codes, row period "
                  f"{cfg.row_period_cycles} cycles",
        "verilator_cycles_per_s": v_cps,
        "verilator_words": v["words"],
        "pysim_cycles_per_s": ps["cycles_per_s"],
        "pysim_words": args.pysim_words,
        "verilator_over_pysim": v_cps / ps["cycles_per_s"],
        "same_words_in_both_simulators": same,
        "raw_bits_per_cycle": raw_bits_per_cycle,
        "mbit_per_s_per_column_at_fmax": per_col_at_fmax or None,
        "fmax_source": fmax or "no build/synth/*/report.json: run `make synth` first",
        "device_limited_mbit_per_s_per_column": 1e3 / row_ns,
        "device_row_period_ns": row_ns,
        "device_row_period_note": "reset + stochastic pulse + settle + sense of the device model's "
                                  "defaults (model/devices/mtj.py, several constants ASSUMED)",
        "calibration_windows_to_converge": ks,
        "calibration_tolerance_p": tol,
        "twin_emulator_bits_per_s": twin_bits_per_s,
    }
    report = {**provenance(args.seed, f"make bench SEED={args.seed}"), "trng": trng}
    atomic_write_json(OUT / "bench.json", report)
    lines = ["# make bench", "", f"Command: `make bench SEED={args.seed}` (git {report['git']}).",
             "", "| figure | value |", "|---|---|"]
    for k, val in trng.items():
        if isinstance(val, float):
            val = f"{val:,.4g}"
        lines.append(f"| trng.{k} | {val} |")
    atomic_write_text(OUT / "bench.md", "\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    print(f"[bench] wrote {OUT.relative_to(ROOT)}/bench.json and bench.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
