"""Validation of the crossbar layers on a real task: an MLP classifier of the 8x8 digits.

1. Trains the MLP in float (and a second copy with hardware-aware weight noise, Yang et al.
   2024), both with the same seed.
2. Converts it (``model.nn.convert``), calibrates on the training set and measures the test accuracy
   in float mode, in digital mode (bit-exact with the layer-engine twin; the exported program is
   run through the twin and checked equal), and in analog mode (``model/devices/crossbar.py``,
   RRAM preset, ideal cells except the swept non-ideality):
   * vs read-noise sigma, multiplicative (per differential pair, relative) and additive (per cell,
     in units of the conductance window), plain Gaussian, fresh per input vector;
   * vs ADC bits (digital, and analog with read noise), recalibrated for each width.
   Each analog point is repeated over ``--repeats`` device seeds (programming instance and noise
   stream); mean ± std over them. The trained network is the same for all points.
3. Writes ``accuracy_vs_noise.png``, ``accuracy_vs_adc_bits.png``, ``validation.json`` and
   ``validation.md`` under ``--out`` (default ``build/crossbar``).

Usage: ``python -m sim.crossbar_validation --seed 1 --out build/crossbar``
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sim.meta import ROOT, provenance

OUT = ROOT / "build" / "crossbar"
SIGMAS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
ADC_BITS = (2, 3, 4, 5, 6, 7, 8, 9, 10)
#: Read noise (kind, sigma) of the analog curves of the ADC sweep.
ADC_NOISE = (("multiplicative", 0.1), ("additive", 0.02))


def _stats(vals) -> dict:
    a = np.asarray(vals, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "values": [float(v) for v in a]}


def run_validation(seed: int = 1, repeats: int = 5, sigmas=SIGMAS, adc_bits=ADC_BITS,
                   adc_noise=ADC_NOISE, hidden=(32, 32), epochs: int = 150,
                   noise_aware: bool = True, tech: str = "rram", log=print) -> dict:
    """The whole study; returns the report body (no provenance, nothing written)."""
    import torch

    from model.devices.crossbar import ReadNoise
    from model.nn import (CrossbarSpec, calibrate, convert, crossbar_layers, export_program,
                          set_mode, set_spec)
    from model.nn.digits import evaluate, load_digits, make_mlp, train

    torch.set_num_threads(1)
    t0 = time.time()
    data = load_digits(seed=seed)
    base = CrossbarSpec(tech=tech)                 # 16x16 tiles, 8-bit weights/inputs/ADC

    def trained(aware: bool):
        m = make_mlp(hidden, seed=seed)
        if aware:   # float-mode training with w·(1+n), n ~ N(0, 0.1²) truncated at 0.2
            m = convert(m, "float", base.replace(noise_aware=True, seed=seed))
        losses = train(m, data.x_train, data.y_train, epochs=epochs, seed=seed)
        return m, losses[-1]

    model, loss_std = trained(False)
    log(f"[crossbar] trained float MLP 64-{'-'.join(map(str, hidden))}-10 "
        f"({time.time() - t0:.1f} s)")
    nets = {"standard": model}
    if noise_aware:
        nets["noise_aware"], _ = trained(True)
        log(f"[crossbar] trained the noise-aware copy ({time.time() - t0:.1f} s)")

    xte, yte = data.x_test, data.y_test
    conv = {}
    float_acc = {}
    for name, net in nets.items():
        c = convert(net, "digital", base, calib=data.x_train)
        conv[name] = c
        set_mode(c, "float")
        float_acc[name] = evaluate(c, xte, yte)[0]
    report = {"task": {"data": "8x8 digits (scikit-learn bundled copy), pixels / 16",
                       "train": int(len(data.y_train)), "test": int(len(data.y_test)),
                       "split_seed": seed, "mlp": [64, *hidden, 10], "activation": "ReLU",
                       "epochs": epochs, "optimizer": "Adam lr 1e-2, batch 256, wd 1e-4",
                       "final_train_loss": loss_std},
              "spec": {k: v for k, v in asdict(base).items() if k != "analog"},
              "repeats": repeats,
              "float_accuracy": float_acc}

    # -- digital: bit-exact with the twin --------------------------------------------------------
    c = conv["standard"]
    set_mode(c, "digital")
    with torch.no_grad():
        y_dig = c(xte)
    prog = export_program(c)
    twin_codes = prog.engine().run(prog.quantize_input(xte.numpy()))
    exact = bool(np.array_equal((y_dig.double() * 2.0 ** prog.fx_out).numpy().astype(np.int64),
                                twin_codes))
    if not exact:
        raise AssertionError("digital mode differs from the layer-engine twin")
    report["digital"] = {
        "accuracy": float((y_dig.argmax(-1) == yte).float().mean()),
        "twin_accuracy": float((np.argmax(twin_codes, -1) == yte.numpy()).mean()),
        "bit_exact_with_twin": exact,
        "scales": [dict(fx=m.scales.fx, fw=m.scales.fw, adc_shift=m.scales.adc_shift,
                        out_shift=m.scales.out_shift) for m in crossbar_layers(c)],
        "engine": {"slots": prog.cfg.tile.slots, "layers": len(prog.layers),
                   "max_dim": prog.cfg.max_dim}}
    log(f"[crossbar] float {float_acc['standard']:.4f}, digital "
        f"{report['digital']['accuracy']:.4f} (bit-exact with the twin)")

    def analog_acc(c, spec) -> float:
        set_spec(c, spec)
        set_mode(c, "analog")
        return evaluate(c, xte, yte)[0]

    def rep_spec(spec, r):
        return spec.replace(seed=(seed * 1000 + r) % 2**32)

    # -- analog vs read noise -------------------------------------------------------------------
    curves = [("multiplicative", "standard"), ("additive", "standard")]
    if noise_aware:
        curves.insert(1, ("multiplicative", "noise_aware"))
    noise = []
    counts = None
    for kind, net in curves:
        c = conv[net]
        pts = []
        for s in sigmas:
            spec = base.replace(analog={"read_noise": ReadNoise(kind, float(s))})
            accs = [analog_acc(c, rep_spec(spec, r)) for r in range(repeats)]
            pts.append({"sigma": float(s), **_stats(accs)})
            if counts is None:      # one evaluation of the test set on one device instance
                tot = _sum_counts(c)
                counts = {"per_image": {k: tot[k] / len(yte) for k in
                                        ("mvm", "mac", "adc", "dac", "cell_read")},
                          "programming": {k: tot[k] for k in ("weight_write", "cell_write")}}
        noise.append({"kind": kind, "net": net, "points": pts})
        log(f"[crossbar] analog, {kind} read noise, {net} net: "
            + ", ".join(f"{p['sigma']:g}: {p['mean']:.3f}" for p in pts)
            + f" ({time.time() - t0:.1f} s)")
    report["analog_vs_noise"] = noise
    report["analog_counts"] = counts

    # -- ADC bits ---------------------------------------------------------------------------------
    c = conv["standard"]
    adc = {"bits": [int(b) for b in adc_bits], "digital": [], "analog": []}
    for b in adc_bits:
        spec = base.replace(adc_bits=int(b))
        set_spec(c, spec)
        calibrate(c, data.x_train)
        set_mode(c, "digital")
        adc["digital"].append(evaluate(c, xte, yte)[0])
    set_spec(c, base.replace(adc_bits=None))
    calibrate(c, data.x_train)
    set_mode(c, "digital")
    adc["digital_lossless"] = evaluate(c, xte, yte)[0]
    for kind, s in adc_noise:
        pts = []
        for b in adc_bits:
            spec = base.replace(adc_bits=int(b),
                                analog={"read_noise": ReadNoise(kind, float(s))})
            set_spec(c, spec)
            calibrate(c, data.x_train)
            pts.append({"adc_bits": int(b),
                        **_stats([analog_acc(c, rep_spec(spec, r)) for r in range(repeats)])})
        adc["analog"].append({"kind": kind, "sigma": float(s), "points": pts})
    report["accuracy_vs_adc_bits"] = adc
    log("[crossbar] digital vs ADC bits: "
        + ", ".join(f"{b}: {a:.3f}" for b, a in zip(adc_bits, adc["digital"]))
        + f" ({time.time() - t0:.1f} s)")
    report["seconds"] = time.time() - t0
    return report


def _sum_counts(model) -> dict:
    from model.nn import crossbar_layers
    tot: dict = {}
    for m in crossbar_layers(model):
        for k, v in m.analog_counts().items():
            tot[k] = tot.get(k, 0) + v
    return tot


def plots(out: Path, rep: dict) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from model.io import atomic_savefig

    written = []
    fa, da = rep["float_accuracy"]["standard"], rep["digital"]["accuracy"]
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for cur in rep["analog_vs_noise"]:
        s = [p["sigma"] for p in cur["points"]]
        m = np.array([p["mean"] for p in cur["points"]])
        e = np.array([p["std"] for p in cur["points"]])
        lab = f"analog, {cur['kind']}" + (", noise-aware training" if
                                          cur["net"] == "noise_aware" else "")
        ax.errorbar(s, m, yerr=e, marker="o", ms=3, capsize=3, label=lab)
    ax.axhline(fa, color="k", ls="--", lw=0.8, label=f"float ({fa:.3f})")
    ax.axhline(da, color="gray", ls=":", lw=1.0, label=f"digital 8/8/8-bit ({da:.3f})")
    ax.axhline(0.1, color="r", ls=":", lw=0.6, label="chance")
    ax.set_xlabel("read-noise σ (multiplicative: relative per pair; additive: × cell window)")
    ax.set_xscale("symlog", linthresh=0.01, linscale=0.5)
    ax.set_xlim(left=-0.002)   # sigma >= 0: no negative ticks
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Digits MLP on RRAM crossbar tiles (mean ± std, {rep['repeats']} device seeds)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    written.append(atomic_savefig(fig, out / "accuracy_vs_noise.png", dpi=120))
    plt.close(fig)

    adc = rep["accuracy_vs_adc_bits"]
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    ax.plot(adc["bits"], adc["digital"], marker="s", ms=3, label="digital (twin)")
    for cur in adc["analog"]:
        m = [p["mean"] for p in cur["points"]]
        e = [p["std"] for p in cur["points"]]
        ax.errorbar(adc["bits"], m, yerr=e, marker="o", ms=3, capsize=3,
                    label=f"analog, {cur['kind']} σ = {cur['sigma']:g}")
    ax.axhline(fa, color="k", ls="--", lw=0.8, label=f"float ({fa:.3f})")
    ax.axhline(adc["digital_lossless"], color="gray", ls=":", lw=1.0,
               label=f"digital, lossless ADC ({adc['digital_lossless']:.3f})")
    ax.set_xlabel("ADC bits (per tile, signed; calibrated adc_shift)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("Digits MLP: accuracy vs tile ADC resolution", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    written.append(atomic_savefig(fig, out / "accuracy_vs_adc_bits.png", dpi=120))
    plt.close(fig)
    return written


def markdown(rep: dict) -> str:
    p = rep["provenance"]
    md = ["# Crossbar validation: digits MLP", "",
          f"Command: `{p['command']}` (seed {p['seed']}, git {p['git']}); "
          f"{rep['seconds']:.0f} s.", "",
          f"MLP {'-'.join(map(str, rep['task']['mlp']))}, ReLU, trained in float "
          f"({rep['task']['epochs']} epochs); {rep['task']['test']} test images. Tiles "
          f"{rep['spec']['rows']}x{rep['spec']['cols']}, {rep['spec']['weight_bits']}-bit "
          f"weights, {rep['spec']['input_bits']}-bit inputs, {rep['spec']['adc_bits']}-bit ADC, "
          f"{rep['spec']['tech']} cells (ideal except the swept read noise). Analog points: mean "
          f"± std over {rep['repeats']} device seeds.", "",
          "| mode | accuracy |", "|---|---|",
          f"| float | {rep['float_accuracy']['standard']:.4f} |",
          f"| digital (bit-exact with the layer-engine twin: "
          f"{rep['digital']['bit_exact_with_twin']}) | {rep['digital']['accuracy']:.4f} |"]
    if "noise_aware" in rep["float_accuracy"]:
        md.append(f"| float, noise-aware training | {rep['float_accuracy']['noise_aware']:.4f} |")
    md += ["", "## Analog accuracy vs read-noise σ", "",
           "| σ | " + " | ".join(
               c["kind"] + (" (noise-aware net)" if c["net"] == "noise_aware" else "")
               for c in rep["analog_vs_noise"]) + " |",
           "|---|" + "---|" * len(rep["analog_vs_noise"])]
    for i, pt in enumerate(rep["analog_vs_noise"][0]["points"]):
        md.append(f"| {pt['sigma']:g} | " + " | ".join(
            f"{c['points'][i]['mean']:.4f} ± {c['points'][i]['std']:.4f}"
            for c in rep["analog_vs_noise"]) + " |")
    adc = rep["accuracy_vs_adc_bits"]
    md += ["", "## Accuracy vs ADC bits", "",
           "| ADC bits | digital | " + " | ".join(f"analog {c['kind']} σ={c['sigma']:g}"
                                                  for c in adc["analog"]) + " |",
           "|---|---|" + "---|" * len(adc["analog"])]
    for i, b in enumerate(adc["bits"]):
        md.append(f"| {b} | {adc['digital'][i]:.4f} | " + " | ".join(
            f"{c['points'][i]['mean']:.4f} ± {c['points'][i]['std']:.4f}"
            for c in adc["analog"]) + " |")
    md.append(f"| lossless | {adc['digital_lossless']:.4f} | |")
    cnt = rep.get("analog_counts") or {}
    if cnt:
        md += ["", "Analog operations per image: " + ", ".join(
            f"{k} {v:g}" for k, v in cnt["per_image"].items()) + "; programming the network: "
            + ", ".join(f"{k} {v}" for k, v in cnt["programming"].items()) + "."]
    md += ["", "Read noise as defined by `model/devices/crossbar.py`: multiplicative = "
           "(G+ − G−)·(1 + n) per differential pair (slice), n ~ N(0, σ²), so a weight's error is "
           "relative to the weight; additive = G + σ·(G_max − G_min)·n on every cell, independent "
           "of the weight. With the RRAM preset (16 levels per cell, two 4-bit slices for a "
           "symmetric 8-bit weight, slice 1 weighing 16) an additive σ is about "
           "√2·15·16·σ ≈ 340σ weight-code units of error on every weight (max |code| 127), which "
           "is why the additive curve falls at σ ≈ 0.02–0.05."]
    md += ["", "![accuracy vs noise](accuracy_vs_noise.png)",
           "![accuracy vs ADC bits](accuracy_vs_adc_bits.png)", ""]
    return "\n".join(md)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.crossbar_validation",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5, help="device seeds per analog point")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    for name, v, lo, hi in (("--seed", args.seed, 0, 2**32 - 1),
                            ("--repeats", args.repeats, 1, 100),
                            ("--epochs", args.epochs, 1, 10_000)):
        if not lo <= v <= hi:
            print(f"error: {name} = {v}: out of range, allowed [{lo}, {hi}]", file=sys.stderr)
            return 2
    from model.io import atomic_write_json, atomic_write_text
    from model.nn.digits import DigitsUnavailable

    try:
        rep = run_validation(seed=args.seed, repeats=args.repeats, epochs=args.epochs)
    except DigitsUnavailable as e:
        print(f"[crossbar] skipped: {e}", file=sys.stderr)
        return 0
    cmd = f"python -m sim.crossbar_validation --seed {args.seed}"
    if args.repeats != 5:
        cmd += f" --repeats {args.repeats}"
    if args.epochs != 150:
        cmd += f" --epochs {args.epochs}"
    rep = {"provenance": provenance(args.seed, cmd), **rep}
    out = args.out
    pngs = plots(out, rep)
    atomic_write_json(out / "validation.json", rep)
    atomic_write_text(out / "validation.md", markdown(rep))
    print(f"[crossbar] wrote {out}/validation.json, validation.md and {len(pngs)} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
