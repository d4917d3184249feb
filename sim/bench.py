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

Under ``crossbar`` (``sim/bench_crossbar.py``): the 64x64 tile with 8 MACs per cycle on Verilator
(with and without random stalls) and in Amaranth's simulator, bit-exact against the twin; the
twin's and the analog model's batched MVM rates; aihwkit's analog linear layer when it installs
beside the pinned torch, or why not.

Under ``sampler``: the bit-exact hardware-mode sampler (``model.diffusion.hardware.hw_sample``,
vectorised twins) against the float sampler on the same net, image count, sampler and steps, both
on one torch thread with software noise (``hardware.measure_speed``): ``float_s``, ``hw_s``,
``ratio`` (issue 5's goal: <= 3) and ``hw_images_per_s``, for DDPM (all T steps) and DDIM
(``--sampler-ddim-steps``), on the default digits checkpoint (``hardware.default_checkpoint``).

``--only trng|crossbar|sampler`` measures one entry.
"""

from __future__ import annotations

import argparse
import json
import sys


from sim.meta import ROOT, provenance

OUT = ROOT / "build" / "bench"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--words", type=int, default=50_000)
    ap.add_argument("--pysim-words", type=int, default=400)
    ap.add_argument("--xbar-mvms", type=int, default=20_000,
                    help="crossbar tile MVMs on Verilator (default 20000)")
    ap.add_argument("--xbar-pysim-mvms", type=int, default=60,
                    help="crossbar tile MVMs in Amaranth's simulator (default 60)")
    ap.add_argument("--sampler-images", type=int, default=500,
                    help="images per sampler timing (default 500)")
    ap.add_argument("--sampler-ddim-steps", type=int, default=50,
                    help="DDIM steps of the second sampler timing (default 50)")
    ap.add_argument("--only", choices=("all", "trng", "crossbar", "sampler"), default="all",
                    help="which entries to measure (default all)")
    args = ap.parse_args(argv)
    for name, v, lo, hi in (("--words", args.words, 1000, 10_000_000),
                            ("--pysim-words", args.pysim_words, 16, 100_000),
                            ("--xbar-mvms", args.xbar_mvms, 100, 10_000_000),
                            ("--xbar-pysim-mvms", args.xbar_pysim_mvms, 4, 100_000),
                            ("--sampler-images", args.sampler_images, 1, 100_000),
                            ("--sampler-ddim-steps", args.sampler_ddim_steps, 1, 1000),
                            ("--seed", args.seed, 0, 2**32 - 1)):
        if not lo <= v <= hi:
            print(f"error: {name} = {v}: out of range, allowed [{lo}, {hi}]", file=sys.stderr)
            return 2
    from model.io import atomic_write_json, atomic_write_text
    OUT.mkdir(parents=True, exist_ok=True)
    report = provenance(args.seed, f"make bench SEED={args.seed}")
    if args.only in ("all", "trng"):
        report["trng"] = trng_bench(args)
    if args.only in ("all", "crossbar"):
        from sim.bench_crossbar import crossbar_bench
        report["crossbar"] = crossbar_bench(args.seed, args.xbar_mvms, args.xbar_pysim_mvms)
    if args.only in ("all", "sampler"):
        report["sampler"] = sampler_bench(args)
    atomic_write_json(OUT / "bench.json", report)
    lines = ["# make bench", "", f"Command: `make bench SEED={args.seed}` (git {report['git']}).",
             "", "| figure | value |", "|---|---|"]
    for section in ("trng", "crossbar", "sampler"):
        for k, val in _flat(report.get(section, {}), section):
            if isinstance(val, float):
                val = f"{val:,.4g}"
            lines.append(f"| {k} | {val} |")
    atomic_write_text(OUT / "bench.md", "\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    print(f"[bench] wrote {OUT.relative_to(ROOT)}/bench.json and bench.md")
    return 0


def _flat(d: dict, prefix: str):
    """(dotted key, value) of a nested dict, lists kept whole."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}.{k}")
        else:
            yield f"{prefix}.{k}", v


def sampler_bench(args) -> dict:
    """Hardware-mode vs float sampler wall time (module docstring, ``sampler``)."""
    import torch

    from model.diffusion import hardware as hwm
    from model.diffusion.train import load_checkpoint
    ck = hwm.default_checkpoint()
    net, _ = load_checkpoint(ck)
    prog = hwm.HardwareProgram.from_checkpoint(ck)
    out = {"checkpoint": ck.name, "images": args.sampler_images}
    with torch.no_grad():
        for name, steps in (("ddpm", None), ("ddim", args.sampler_ddim_steps)):
            print(f"[bench] sampler {name}: {args.sampler_images} images, float vs hardware mode")
            r = hwm.measure_speed(prog, net, n=args.sampler_images, steps=steps, sampler=name,
                                  seed=args.seed, threads=1)
            out[f"{name}{'' if steps is None else steps}"] = {
                k: r[k] for k in ("steps", "float_s", "hw_s", "ratio", "hw_images_per_s",
                                  "engine_path")}
    out["goal_ratio_max"] = 3.0
    out["goal_met"] = all(v["ratio"] <= 3.0 for v in out.values() if isinstance(v, dict))
    return out


def trng_bench(args) -> dict:

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
        raise SystemExit("error: the Amaranth simulator and Verilator produced different words")

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

    print("[bench] readout rates (Verilator, 8x8 with the default readout, stream always ready)")
    from sim.configs import READOUT_DEFAULT, readout_config
    rates_cond, rates_gauss = {}, {}
    runs = [("words", 0, 0, 1, 0, 1500), ("words", 0, 1, 2, 0, 800), ("words", 0, 2, 1, 0, 400),
            ("gauss", 1, 1, 2, 0, 1500), ("gauss", 1, 1, 2, 1, 300)]
    for kind, sel, cmode, k, gmode, items in runs:
        rj = OUT / f"readout_{sel}_{cmode}_{k}_{gmode}.json"
        top = MTJTRNGTop(ecfg, readout_config(cfg, READOUT_DEFAULT))
        run_cocotb(StreamHarness(top, ("words", "gauss")), "readout_8x8", "sim.cocotb_readout",
                   {"emu": emu_params(ecfg), "readout": READOUT_DEFAULT, "sel": sel,
                    "items": items, "cond_mode": cmode, "cond_k": k, "gauss_mode": gmode,
                    "bp_thresh": 0, "random_offsets": False, "out": str(rj)},
                   seed=args.seed, run_name=f"bench_readout_{sel}_{cmode}_{k}_{gmode}")
        r = json.loads(rj.read_text())
        per_cycle = r["items_in_cycles"] / r["cycles"]
        if kind == "words":
            name = {0: "pass_through", 1: f"xor_fold_k{k}", 2: "von_neumann"}[cmode]
            rates_cond[name] = per_cycle * 32
        else:
            rates_gauss[{0: "cbd_k32", 1: "sum12_u16"}[gmode] + f"_after_xor_fold_k{k}"] = per_cycle

    print("[bench] calibration convergence (twins, 5 device seeds)")
    tol = window_tolerance(cfg.window)
    ks = []
    for s in range(1, 6):
        e = MTJArrayEmulator(emulator_config(cfg, seed=s))
        e.reseed(s)
        ks.append(convergence_windows(calibrate(MTJArrayController(cfg), e, 60), tol))

    print("[bench] twin fast path (model/blocks/fastpath.py, numba)")
    from model.blocks.fastpath import measure_speed
    fast = measure_speed(ecfg, seed=args.seed)

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
        "conditioned_bits_per_cycle": rates_cond,
        "gauss_samples_per_cycle": rates_gauss,
        "readout_rate_note": "measured over a run that starts at enable (calibration warm-up "
                             "included), 8x8 array, 6-cycle rows, output always ready",
        "calibration_windows_to_converge": ks,
        "calibration_tolerance_p": tol,
        "twin_fast_bits_per_s": fast["cond_bits_per_s"],
        "twin_fast_conditioned_bits_per_min": fast["cond_bits_per_min"],
        "twin_fast_raw_bits_per_s": fast["raw_bits_per_s"],
        "twin_fast_gauss_samples_per_s": fast["gauss_samples_per_s"],
        "twin_fast_masked_cells": fast["masked_cells"],
    }
    return trng


if __name__ == "__main__":
    raise SystemExit(main())
