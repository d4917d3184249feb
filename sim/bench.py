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

Under ``system`` (issue 7): the diffusion core (``hw/core.py``, docs/core.md). ``small_core``:
the test program's core (tests/test_core.py) from reset through one DDIM-3 image, the same run
and stimulus on Verilator (``sim/cocotb_core.py``, TRNG on its gated clock) and in Amaranth's
simulator (TRNG clock enable; same pixels and cycles checked), cycles/s of each and their ratio
(goal >= 10), and Verilator's free-run rate with Python asleep. ``committed_net``: the committed
checkpoint's core on Verilator (the build of tests/test_core_cocotb.py): a DDIM-1 image
bit-exact, then ``--system-speed-cycles`` cycles of a DDIM-50 image with Python asleep (goal
>= 1e6 cycles/s), cycles per DDPM and DDIM-50 image (``hw.core.image_cycles``, the formula the
tests check), seconds per image on Verilator, images/s at the Fmax of ``make synth
DESIGN=core`` (``build/synth/<target>/report-core.json``; null with the reason when absent).
``golden_hw_mode``: images/s of the vectorised hardware-mode sampler with the TRNG twin's noise
(``hw_sample(program, "trng", ...)``).

``--only trng|crossbar|sampler|system`` measures one entry.
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
    ap.add_argument("--system-speed-cycles", type=int, default=1_000_000,
                    help="cycles of each Verilator free run of the core (default 1000000)")
    ap.add_argument("--system-golden-images", type=int, default=200,
                    help="DDIM-50 images of the golden hardware-mode timing; DDPM a tenth "
                         "(default 200)")
    ap.add_argument("--only", choices=("all", "trng", "crossbar", "sampler", "system"),
                    default="all",
                    help="which entries to measure (default all)")
    args = ap.parse_args(argv)
    for name, v, lo, hi in (("--words", args.words, 1000, 10_000_000),
                            ("--pysim-words", args.pysim_words, 16, 100_000),
                            ("--xbar-mvms", args.xbar_mvms, 100, 10_000_000),
                            ("--xbar-pysim-mvms", args.xbar_pysim_mvms, 4, 100_000),
                            ("--sampler-images", args.sampler_images, 1, 100_000),
                            ("--sampler-ddim-steps", args.sampler_ddim_steps, 1, 1000),
                            ("--system-speed-cycles", args.system_speed_cycles, 1000,
                             100_000_000),
                            ("--system-golden-images", args.system_golden_images, 1, 100_000),
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
    if args.only in ("all", "system"):
        report["system"] = system_bench(args)
    atomic_write_json(OUT / "bench.json", report)
    lines = ["# make bench", "", f"Command: `make bench SEED={args.seed}` (git {report['git']}).",
             "", "| figure | value |", "|---|---|"]
    for section in ("trng", "crossbar", "sampler", "system"):
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


def _amaranth_core_run(core, steps: int) -> dict:
    """The Amaranth simulator on ``core`` with the stimulus of the Verilator bench's first
    phase (sim/cocotb_core.py): from reset, wait for ``ready`` and a full noise FIFO, one image
    of ``steps`` rows with ``pix`` always ready. Returns its pixels, cycles and cycles/s."""
    import time

    from amaranth.sim import Simulator
    out = {}

    async def bench(ctx):
        d = core
        ctx.set(d.pix.ready, 1)
        await ctx.tick().until(d.ready)
        await ctx.tick().until(d.noise_level == core.noise_fifo_depth)
        ctx.set(d.steps, steps)
        ctx.set(d.start, 1)
        c0 = ctx.get(d.cycles)
        await ctx.tick()
        ctx.set(d.start, 0)
        pix = []
        while not ctx.get(d.done):
            if ctx.get(d.pix.valid):
                pix.append(ctx.get(d.pix.payload.pixel))
            await ctx.tick()
        out.update(pixels=pix, image_cycles=ctx.get(d.cycles) - c0,
                   total_cycles=ctx.get(d.cycles))

    sim = Simulator(core)
    sim.add_clock(1e-6, domain="sync")
    sim.add_testbench(bench)
    t0 = time.perf_counter()
    sim.run()
    out["wall_s"] = time.perf_counter() - t0
    out["cycles_per_s"] = out["total_cycles"] / out["wall_s"]
    return out


def _core_fmax(cycles_ddpm: int, cycles_ddim: int) -> dict:
    """Images per second at the post-route Fmax of ``make synth DESIGN=core`` per target
    (``build/synth/<target>/report-core.json``), or null with the reason."""
    out = {}
    for target in ("ecp5", "ice40"):
        rep = ROOT / "build" / "synth" / target / "report-core.json"
        if not rep.exists():
            out[target] = {"images_per_s": None,
                           "reason": f"no {rep.relative_to(ROOT)}: run `make synth "
                                     f"TARGET={target} DESIGN=core` first"}
            continue
        r = json.loads(rep.read_text())
        f = r.get("fmax_mhz")
        if not f:
            out[target] = {"images_per_s": None, "design": r.get("design"),
                           "reason": "the report has no fmax_mhz (did not place and route: "
                                     f"{r.get('error') or r.get('status') or 'see report'})"}
            continue
        design = str(r.get("design"))
        if "committed program" not in design:
            out[target] = {"images_per_s": None, "fmax_mhz": f, "design": design,
                           "reason": "the synthesised core is not the committed program's"}
            continue
        out[target] = {"fmax_mhz": f, "design": design,
                       "ddpm_images_per_s": f * 1e6 / cycles_ddpm,
                       "ddim50_images_per_s": f * 1e6 / cycles_ddim}
    return out


def system_bench(args) -> dict:
    """The diffusion core (module docstring, ``system``)."""
    import time

    from hw.core import build_core, image_cycles
    from model.diffusion.hardware import HardwareProgram, default_checkpoint, hw_sample
    from sim.cocotb_core import run_core_bench
    from tests.test_core import SEED, small_program

    out = {}
    print("[bench] system: the small test program's core, Verilator and Amaranth, same run")
    prog_s = small_program()
    steps_s = 3
    v = run_core_bench(prog_s, "core_small", SEED, [("ddim", steps_s, 1)],
                       speed_cycles=args.system_speed_cycles, runtime_seed=True)
    a = _amaranth_core_run(build_core(prog_s, "ddim", steps_s, seed=SEED), steps_s)
    same = a["pixels"] == v["expected_pixels"][0] and a["image_cycles"] == \
        v["cycles_per_image"][0]
    if not same:
        raise SystemExit("error: the Amaranth simulator and Verilator ran the small core "
                         "differently (pixels or cycles)")
    out["small_core"] = {
        "design": "test program core (16 + 8 -> 32 SiLU -> 16, 6 slots), 8x8 TRNG",
        "run": f"reset, boot, full noise FIFO, one DDIM-{steps_s} image",
        "run_cycles": v["total_cycles"], "image_cycles": v["cycles_per_image"][0],
        "verilator_cycles_per_s": v["bench_cycles_per_s"],
        "amaranth_cycles_per_s": a["cycles_per_s"],
        "verilator_over_amaranth": v["bench_cycles_per_s"] / a["cycles_per_s"],
        "same_pixels_and_cycles_in_both": same,
        "verilator_free_run_cycles_per_s": v["sim_cycles_per_s"],
        "verilator_free_run_cycles_per_cpu_s": v["sim_cycles_per_cpu_s"],
        "free_run_note": f"{args.system_speed_cycles} cycles with Python asleep after the "
                         f"run (one more image, then idle)",
    }

    print("[bench] system: the committed net's core on Verilator (DDIM-1 images, then "
          "a DDIM-50 free run)")
    prog = HardwareProgram.from_checkpoint(default_checkpoint())
    vf = run_core_bench(prog, "core_full", 1, [("ddim", 1, 1), ("ddim", 50, 0)],
                        speed_cycles=args.system_speed_cycles, speed_steps=50,
                        runtime_seed=True)
    img = vf["image"]
    c_ddpm, c_ddim = image_cycles(img, prog.steps_max), image_cycles(img, 50)
    rate = vf["sim_cycles_per_s"]
    out["committed_net"] = {
        "checkpoint": default_checkpoint().name,
        "boot_cycles": vf["boot_cycles"],
        "ddim1_image_cycles_measured": vf["cycles_per_image"][0],
        "ddim1_image_cycles_formula": image_cycles(img, 1),
        "verilator_cycles_per_s": rate,
        "verilator_cycles_per_cpu_s": vf["sim_cycles_per_cpu_s"],
        "verilator_busy_through_run": vf["busy_at_end_of_speed_run"],
        "speed_run": f"{args.system_speed_cycles} cycles of a DDIM-50 image, Python asleep",
        "cycles_per_image": {"ddpm": c_ddpm, "ddim50": c_ddim},
        "verilator_s_per_image": {"ddpm": c_ddpm / rate, "ddim50": c_ddim / rate},
        "at_fmax": _core_fmax(c_ddpm, c_ddim),
    }
    out["goal_verilator_cycles_per_s_min"] = 1e6
    out["goal_verilator_over_amaranth_min"] = 10.0
    out["goal_met"] = {"cycles_per_s_wall": rate >= 1e6,
                       "cycles_per_cpu_s": vf["sim_cycles_per_cpu_s"] >= 1e6,
                       "over_amaranth": out["small_core"]["verilator_over_amaranth"] >= 10}

    print("[bench] system: golden hardware mode (vectorised hw_sample, TRNG twin noise)")
    gold = {}
    for name, steps, n in (("ddim50", 50, args.system_golden_images),
                           ("ddpm", None, max(1, args.system_golden_images // 10))):
        t0 = time.perf_counter()
        hw_sample(prog, "trng", n, steps, "ddim" if name == "ddim50" else "ddpm", seed=1)
        dt = time.perf_counter() - t0
        gold[name] = {"images": n, "s": dt, "images_per_s": n / dt}
    out["golden_hw_mode"] = gold
    return out


if __name__ == "__main__":
    raise SystemExit(main())
