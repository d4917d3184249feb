"""Quality of the time-continuous analog solver vs its integrator time constant and DAC refresh
rate (``make integrator-sweep``).

    python -m sim.integrator_sweep [--dataset ring] [--sde reference] [--compute analog]
                                   [--samples 5000] [--seed 1] [--read-noise 0.1]
                                   [--process sde] [--out build/sampler]

The committed score checkpoint of the 2-D data set (``score-<dataset>-<sde>.pt``) drives
:func:`model.diffusion.integrator.sweep`: every integrator time constant τ at the default refresh
rate, then every refresh rate at the default τ (``IntegratorParams`` defaults: τ = 10 µs,
20 MHz, 12-bit DACs, all ASSUMED except the DAC bits, see its docstring). Every point draws
``--samples`` samples from the same software noise stream (seed ``--seed``) with the network in
``--compute`` mode (analog: the crossbar model with Yang et al.'s multiplicative read noise on
every evaluation, device seed ``--seed``) and is scored with Yang et al.'s metrics against the
training points: per-axis histogram KL and the 2-D histogram L2 (``model.diffusion.metrics``),
and the mean and spread of the sample radius (the ring's is 0.7 ± 0.04).

Writes ``integrator_sweep.json`` (provenance + one row per point), ``integrator_sweep.md`` and
``integrator_sweep.png`` (metrics against τ and against the refresh rate, the refreshes per solve
on a second axis) under ``--out``, each atomically, only after every point ran.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sim.meta import ROOT, provenance

OUT = ROOT / "build" / "sampler"
TAU_US = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
REFRESH_MHZ = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)


def _floats(name):
    def parse(text):
        try:
            vals = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} = {text!r}: a comma-separated list of "
                                             f"numbers") from None
        if not vals or any(not v > 0 for v in vals):
            raise argparse.ArgumentTypeError(f"{name} = {text!r}: every value must be > 0")
        return vals
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim.integrator_sweep",
                                description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=("ring", "latent-digits"), default="ring")
    p.add_argument("--sde", choices=("reference", "default"), default="reference")
    p.add_argument("--compute", choices=("float", "analog"), default="analog")
    p.add_argument("--process", choices=("sde", "ode"), default="sde")
    p.add_argument("--samples", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--read-noise", type=float, default=0.1,
                   help="sigma of the multiplicative read noise (analog compute), default 0.1")
    p.add_argument("--tau-us", type=_floats("--tau-us"), default=TAU_US)
    p.add_argument("--refresh-mhz", type=_floats("--refresh-mhz"), default=REFRESH_MHZ)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--no-progress", action="store_true")
    return p


def run(a) -> dict:
    import torch

    from model.diffusion import metrics as M
    from model.diffusion.data import load_dataset
    from model.diffusion.integrator import IntegratorParams, sweep
    from model.diffusion.noise import make_noise
    from model.diffusion.samplers import calibration_batch, with_compute
    from model.diffusion.sde import VPSDE, get_sde
    from model.diffusion.train import CHECKPOINT_DIR, load_checkpoint

    path = CHECKPOINT_DIR / f"score-{a.dataset}-{a.sde}.pt"
    net, meta = load_checkpoint(path)
    s = meta.get("sde", a.sde)
    sde = get_sde(s) if isinstance(s, str) else VPSDE(**s)
    train = load_dataset(a.dataset, "train", int(meta.get("seed", 0)))
    x0 = train.x.reshape(len(train.x), -1)
    cond = getattr(net, "classes", None) is not None
    model = net
    if a.compute == "analog":
        from model.devices.crossbar import ReadNoise
        from model.nn import CrossbarSpec
        rn = ReadNoise("multiplicative", a.read_noise, trunc=2 * a.read_noise, per="eval") \
            if a.read_noise > 0 else ReadNoise()
        spec = CrossbarSpec().replace(seed=a.seed % 2**32, analog={"read_noise": rn})
        calib = calibration_batch(sde, x0, seed=0, y=train.y if cond else None,
                                  classes=train.classes if cond else None)
        model = with_compute(net, "analog", spec, calib)
    y = None
    if cond:
        y = torch.arange(a.samples, dtype=torch.int64) % train.classes

    def metric(x):
        kx, ky = M.kl_2d(train.x, x)
        r = x.reshape(len(x), -1).double().norm(dim=1)
        return {"kl_x": kx, "kl_y": ky, "hist_l2": M.hist_l2(train.x, x),
                "radius_mean": float(r.mean()), "radius_std": float(r.std())}

    base = IntegratorParams()
    t0 = time.perf_counter()
    with torch.no_grad():
        rows = sweep(model, sde, lambda: make_noise("software", a.seed), a.samples, metric,
                     base=base, tau_us=a.tau_us, refresh_mhz=a.refresh_mhz, y=y,
                     guidance=1.0 if cond else 0.0, process=a.process,
                     progress=not a.no_progress)
    floor = metric(load_dataset(a.dataset, "test", int(meta.get("seed", 0))).x)
    return {"dataset": a.dataset, "sde": a.sde, "checkpoint": path.name, "compute": a.compute,
            "process": a.process, "read_noise": a.read_noise if a.compute == "analog" else None,
            "samples": a.samples, "base": {"tau_us": base.tau_us,
                                           "refresh_mhz": base.refresh_mhz,
                                           "dac_bits": base.dac_bits, "dt_ns": base.dt_ns},
            "held_out_floor": floor, "rows": rows, "wall_s": time.perf_counter() - t0}


def plot(res: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from model.io import atomic_savefig
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for ax, axis, label in ((axes[0], "tau_us", "integrator time constant τ (µs)"),
                            (axes[1], "refresh_mhz", "DAC refresh rate (MHz)")):
        pts = [r for r in res["rows"] if r["axis"] == axis]
        xs = [r[axis] for r in pts]
        for key, style in (("hist_l2", "o-"), ("kl_x", "s--"), ("kl_y", "^--")):
            ax.plot(xs, [r[key] for r in pts], style, label=key)
        for key, c in (("hist_l2", "C0"), ("kl_x", "C1")):
            ax.axhline(res["held_out_floor"][key], color=c, lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("metric vs training points (lower is better)")
        ax.axvline(res["base"][axis], color="grey", lw=0.8)
        other = "refresh_mhz" if axis == "tau_us" else "tau_us"
        ax.set_title(f"{res['dataset']}, {res['compute']} compute, {other} = "
                     f"{res['base'][other]:g}")
        tw = ax.twinx()
        tw.plot(xs, [r["refreshes"] for r in pts], "k:", lw=0.8)
        tw.set_yscale("log")
        tw.set_ylabel("refreshes per solve (dotted)")
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle("Analog integrator: quality vs τ and DAC refresh (held-out floor dotted, "
                 "default grey)", fontsize=10)
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def markdown(res: dict, command: str) -> str:
    lines = [f"# Analog integrator sweep — {res['dataset']}", "",
             f"Command: `{command}`. Checkpoint `{res['checkpoint']}` ({res['sde']} SDE), "
             f"{res['compute']} compute"
             + (f" (read noise σ = {res['read_noise']})" if res["read_noise"] else "")
             + f", process {res['process']}, {res['samples']} samples per point, software "
             f"noise. Defaults (grey line): τ = {res['base']['tau_us']:g} µs, refresh "
             f"{res['base']['refresh_mhz']:g} MHz, {res['base']['dac_bits']}-bit DACs. "
             f"Held-out split against the training points: hist-L2 "
             f"{res['held_out_floor']['hist_l2']:.4f}, KL {res['held_out_floor']['kl_x']:.3f} / "
             f"{res['held_out_floor']['kl_y']:.3f}.", "",
             "| τ (µs) | refresh (MHz) | refreshes | evaluations | x sat. | score sat. | "
             "hist-L2 | KL x | KL y | radius |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['tau_us']:g} | {r['refresh_mhz']:g} | {r['refreshes']} | "
                     f"{r['evaluations']} | {r['x_saturated_frac']:.3g} | "
                     f"{r['score_saturated_frac']:.3g} | {r['hist_l2']:.4f} | {r['kl_x']:.3f} | "
                     f"{r['kl_y']:.3f} | {r['radius_mean']:.3f} ± {r['radius_std']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    for name, v, lo, hi in (("--samples", a.samples, 100, 1_000_000),
                            ("--seed", a.seed, 0, 2**31 - 1)):
        if not lo <= v <= hi:
            p.error(f"{name} = {v}: out of range, allowed [{lo}, {hi}]")
    if not 0.0 <= a.read_noise <= 1.0:
        p.error(f"--read-noise = {a.read_noise}: out of range, allowed [0, 1]")
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out {out}: exists and is not a folder")
    import torch
    torch.set_num_threads(1)
    from model.diffusion.train import CheckpointError
    try:
        res = run(a)
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from model.io import atomic_write_json, atomic_write_text
    command = "python -m sim.integrator_sweep " + " ".join(sys.argv[1:] if argv is None else argv)
    out.mkdir(parents=True, exist_ok=True)
    plot(res, out / "integrator_sweep.png")
    md = markdown(res, command)
    atomic_write_text(out / "integrator_sweep.md", md)
    atomic_write_json(out / "integrator_sweep.json", {**provenance(a.seed, command), **res})
    print(md)
    print(f"[integrator-sweep] wrote {out}/integrator_sweep.{{json,md,png}} "
          f"({res['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
