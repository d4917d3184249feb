"""`make sim-array`: the MTJ array path alone (before issue 7 this was `make sim`).

1. Writes the device model's P(V) plots.
2. Builds the TRNG top (controller + calibration + emulator whose cells carry the device model's
   device-to-device spread) with Verilator and runs it cycle-accurately for ``--windows``
   calibration windows, every raw word and the final per-cell state checked against the twins.
3. Writes the calibrated code map, the per-cell bias histogram before and after calibration, the
   convergence curve, and ``report.json`` / ``report.md`` under ``build/sim-array/`` (``make sim-array``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sim.meta import ROOT, provenance

OUT = ROOT / "build" / "sim-array"


def gaussian_run(out: Path, seed: int, cbd_samples: int, sum12_samples: int,
                 warmup_windows: int = 30) -> dict:
    """Hardware Gaussian samples from the cycle-accurate readout path, both modes.

    Every sample is checked against the twins; the statistics and plots use the samples made
    after ``warmup_windows`` calibration windows (before that the cells are still being pulled
    to p = 0.5, as after any power-up).
    """
    from hw.trng_top import MTJTRNGTop
    from model.blocks.config import GaussConfig
    from model.blocks.gaussian import chi_square, exact_moments, exact_pmf
    from model.io import atomic_write_json  # noqa: F401  (the bench writes the run files)
    from sim.configs import READOUT_DEFAULT, TRNG_DEFAULT, emu_params, emulator_config, \
        readout_config
    from sim.gauss_plots import plot_gauss_histogram
    from sim.harness import StreamHarness
    from sim.runner import run_cocotb

    cfg = TRNG_DEFAULT
    ecfg = emulator_config(cfg, seed=seed)
    gcfg = GaussConfig(**READOUT_DEFAULT["gauss"])
    result = {}
    warm_raw = warmup_windows * cfg.window * cfg.rows
    cbd_warm = warm_raw * cfg.cols // 2 // gcfg.word_bits * (gcfg.word_bits // gcfg.cbd_bits)
    sum12_warm = warm_raw * cfg.cols // 2 // (12 * gcfg.uniform_bits)
    for mode, name, n in ((0, "cbd", cbd_samples + cbd_warm),
                          (1, "sum12", sum12_samples + sum12_warm)):
        run_json = out / f"gauss_{name}.json"
        top = MTJTRNGTop(ecfg, readout_config(cfg, READOUT_DEFAULT))
        run_cocotb(StreamHarness(top, ("words", "gauss")), "readout_8x8", "sim.cocotb_readout",
                   {"emu": emu_params(ecfg), "readout": READOUT_DEFAULT, "sel": 1, "items": n,
                    "cond_mode": 1, "cond_k": 2, "gauss_mode": mode, "bp_thresh": 0,
                    "random_offsets": False, "out": str(run_json)},
                   seed=seed, run_name=f"system_gauss_{name}")
        run = __import__("json").loads(run_json.read_text())
        keep = np.array(run["item_raw_words"][:n]) > warm_raw
        raw = np.array(run["items"][:n])[keep]
        png = plot_gauss_histogram(raw, gcfg, mode, out / f"gauss_{name}.png",
                                   title=f"hardware {name} samples (Verilator, XOR fold k=2)")
        values, probs = exact_pmf(gcfg, mode)
        z = raw / float(1 << gcfg.frac_bits)
        mean, var = exact_moments(gcfg, mode)
        result[name] = {
            "samples_bit_exact": int(len(run["items"])), "samples_after_warmup": int(len(raw)),
            "warmup_windows": warmup_windows, "raw_words": run["raw_words"],
            "mean": float(z.mean()), "variance": float(z.var()),
            "exact_mean": float(mean), "exact_variance": float(var),
            "chi_square_vs_exact_pmf": dict(zip(("statistic", "p_value", "bins"),
                                                chi_square(raw, values, probs))),
            "plot": str(png.relative_to(ROOT)),
        }
    return result


def plots(out: Path, cfg, data, p_history, tol) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from model.io import atomic_savefig

    written = []
    codes = data["codes"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(codes, cmap="viridis")
    for r in range(cfg.rows):
        for c in range(cfg.cols):
            ax.text(c, r, str(codes[r, c]), ha="center", va="center", color="w", fontsize=7)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title("Calibrated amplitude codes (RTL, read through CELL_CODE)")
    fig.colorbar(im, ax=ax, label="code")
    written.append(atomic_savefig(fig, out / "code_map.png", dpi=120))
    plt.close(fig)

    rows, bits = data["rows"], data["bits"].astype(float)
    per_sweep = cfg.rows
    first = slice(0, cfg.window * per_sweep)
    last = slice(len(rows) - 10 * cfg.window * per_sweep, len(rows))
    emp_first = np.zeros((cfg.rows, cfg.cols))
    emp_last = np.zeros((cfg.rows, cfg.cols))
    for r in range(cfg.rows):
        emp_first[r] = bits[first][rows[first] == r].mean(axis=0)
        emp_last[r] = bits[last][rows[last] == r].mean(axis=0)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    bins = np.linspace(0, 1, 41)
    ax.hist(emp_first.ravel(), bins=bins, alpha=0.6, label="before calibration (first window)")
    ax.hist(emp_last.ravel(), bins=bins, alpha=0.6, label="after (last 10 windows)")
    ax.axvspan(0.5 - tol, 0.5 + tol, color="k", alpha=0.08, label=f"0.5 ± {tol:.3f}")
    ax.set_xlabel("per-cell fraction of ones (measured on the RTL's raw words)")
    ax.set_ylabel("cells")
    ax.legend(fontsize=8)
    ax.set_title("Per-cell bias")
    written.append(atomic_savefig(fig, out / "bias_histogram.png", dpi=120))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4))
    dev = np.abs(p_history - 0.5).reshape(len(p_history), -1)
    ax.plot(dev.max(axis=1), label="max over cells")
    ax.plot(np.median(dev, axis=1), label="median")
    ax.axhline(tol, color="k", ls="--", lw=0.8, label="tolerance")
    ax.set_xlabel("calibration window")
    ax.set_ylabel("|p − 0.5| (exact, from the emulator table)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("Calibration convergence")
    written.append(atomic_savefig(fig, out / "convergence.png", dpi=120))
    plt.close(fig)
    return written, emp_first, emp_last


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="make sim", description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--cbd-samples", type=int, default=20_000)
    ap.add_argument("--sum12-samples", type=int, default=4_000)
    args = ap.parse_args(argv)
    if not 1 <= args.windows <= 10_000:
        print(f"error: --windows = {args.windows}: out of range, allowed [1, 10000]",
              file=sys.stderr)
        return 2
    for name, v in (("--cbd-samples", args.cbd_samples), ("--sum12-samples", args.sum12_samples)):
        if not 100 <= v <= 10_000_000:
            print(f"error: {name} = {v}: out of range, allowed [100, 10000000]", file=sys.stderr)
            return 2
    if not 0 <= args.seed < 2**32:
        print(f"error: --seed = {args.seed}: out of range, allowed [0, 2**32 - 1]",
              file=sys.stderr)
        return 2

    from model.blocks.emulator import MTJArrayEmulator
    from model.blocks.mtj_array import convergence_windows, window_tolerance
    from model.devices.plots import write_device_plots
    from model.io import atomic_write_json, atomic_write_text
    from hw.trng_top import MTJTRNGTop
    from sim.configs import TRNG_DEFAULT, emu_params, emulator_config
    from sim.harness import StreamHarness
    from sim.runner import run_cocotb

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    print("[sim] 1/4 device model plots")
    device_pngs = write_device_plots(out)

    print("[sim] 2/4 cycle-accurate run of the array path (Verilator, cached build)")
    cfg = TRNG_DEFAULT
    ecfg = emulator_config(cfg, seed=args.seed)
    npz = out / "array_run.npz"
    run_cocotb(StreamHarness(MTJTRNGTop(ecfg)), "trng_8x8", "sim.cocotb_system",
               {"emu": emu_params(ecfg), "windows": args.windows, "emu_seed": args.seed,
                "out": str(npz)}, seed=args.seed, run_name="system", stream=True)
    data = dict(np.load(npz))

    print("[sim] 3/4 hardware Gaussian noise: the readout path, both generator modes (Verilator)")
    gauss = gaussian_run(out, args.seed, args.cbd_samples, args.sum12_samples)

    print("[sim] 4/4 maps, histograms, report")
    emu = MTJArrayEmulator(ecfg)
    p_history = np.array([emu.probability(np.arange(cfg.rows), codes)
                          for codes in data["code_history"]])
    tol = window_tolerance(cfg.window)
    k = convergence_windows(p_history, tol)
    pngs, emp_first, emp_last = plots(out, cfg, data, p_history, tol)
    cycles, seconds = int(data["cycles"]), float(data["seconds"])
    report = {
        **provenance(args.seed, f"make sim SEED={args.seed}"),
        "design": "trng_8x8 (controller + calibration + emulator)",
        "array": {"rows": cfg.rows, "cols": cfg.cols, "code_width": cfg.code_width,
                  "window": cfg.window, "step_shift": cfg.step_shift,
                  "deadband": cfg.deadband, "row_period_cycles": cfg.row_period_cycles},
        "windows": args.windows,
        "words_checked_bit_exact": int(data["words_checked"]),
        "raw_bits": int(data["words_checked"]) * cfg.cols,
        "cycles": cycles,
        "verilator_seconds": seconds,
        "verilator_cycles_per_s": cycles / seconds,
        "calibration": {
            "tolerance_p": tol,
            "tolerance_rule": "3 standard deviations of one window's estimate of p = 0.5",
            "converged_after_windows": k,
            "final_max_abs_p_minus_half": float(np.abs(p_history[-1] - 0.5).max()),
            "initial_max_abs_p_minus_half": float(np.abs(p_history[0] - 0.5).max()),
            "measured_p_first_window": {"min": float(emp_first.min()),
                                        "max": float(emp_first.max())},
            "measured_p_last_10_windows": {"min": float(emp_last.min()),
                                           "max": float(emp_last.max())},
            "alarms": int(data["alarms"].sum()),
        },
        "gaussian": gauss,
        "files": [str(p.relative_to(ROOT)) for p in [*device_pngs, *pngs, npz]]
        + [g["plot"] for g in gauss.values()],
    }
    atomic_write_json(out / "report.json", report)
    c = report["calibration"]
    md = [
        "# make sim — MTJ array path and hardware Gaussian noise", "",
        f"Command: `make sim SEED={args.seed}` (git {report['git']}).", "",
        f"- {report['words_checked_bit_exact']} raw words ({report['raw_bits']} bits) from the "
        f"Verilator run equal the twins' bit for bit; {cycles} cycles in {seconds:.1f} s "
        f"({cycles / seconds:,.0f} cycles/s).",
        f"- Calibration: every cell within 0.5 ± {tol:.3f} after {k} windows of {cfg.window} "
        f"trials; worst cell |p − 0.5| {c['initial_max_abs_p_minus_half']:.3f} before, "
        f"{c['final_max_abs_p_minus_half']:.4f} after; alarms: {c['alarms']}.",
        *(f"- Gaussian {k}: {g['samples_bit_exact']} hardware samples bit-exact against the twins; "
          f"after {g['warmup_windows']} calibration windows ({g['samples_after_warmup']} samples): mean {g['mean']:+.4f}, variance {g['variance']:.4f} (exact pmf: "
          f"{g['exact_mean']:+.5f}, {g['exact_variance']:.5f}); chi-square vs the exact pmf "
          f"p = {g['chi_square_vs_exact_pmf']['p_value']:.3g}" for k, g in gauss.items()),
        "", "Plots: " + ", ".join(f"`{Path(f).name}`" for f in report["files"] if f.endswith("png")),
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(md))
    print("\n".join(md[2:8]))
    print(f"[sim] wrote {out.relative_to(ROOT)}/report.json, report.md and {len(pngs) + len(device_pngs)} plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
