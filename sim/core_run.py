"""``make sim`` (``python -m sim.core_run``): the diffusion core generating images cycle-accurately
on Verilator -- the main job of the kit.

1. builds the core of the data set's checkpoint (digits: the committed ``default_checkpoint()``;
   ``HardwareProgram.from_checkpoint``) with Verilator through ``sim/runner.py`` (cached); a
   checkpoint that does not fit the core (too many crossbar slots, too wide) is refused with one
   error line before anything runs;
2. runs ``--images`` images of ``--sampler``/``--steps`` with the clock free-running: the bench
   of ``sim/cocotb_core.py`` wakes only on transactions (ready, noise FIFO level, start, pixel
   beats, done); this module's cocotb test runs that bench unchanged and beside it a watcher that
   wakes on ``done`` (progress bar) and on the pixel beats (it records the RTL's pixels);
3. checks every image bit-exact against ``hw_sample(program, "trng", N, steps, sampler, seed)``
   (in the bench, and again here on the recorded pixels) and the 16 activity counters against
   ``HardwareProgram.counts × N``;
4. measures cycles per image and simulated cycles per second;
5. samples ``--fid-n`` images on the vectorised golden hardware mode and on the software float
   baseline (the float checkpoint, software noise) and reports the FID of both (in-project
   classifier features, ``model.diffusion.metrics``);
6. reports energy per image (``model.energy.accounting.image_energy`` on the counts the RTL
   matched) and the MTJ source's energy per bit per area (``model.energy.trng`` FoM, docs/energy.md
   §4);
7. converts cycles per image into images per second at the post-route Fmax of
   ``make synth TARGET=ecp5 DESIGN=core`` when its report exists (else ``null`` with the reason);
8. writes ``<out>/report.json``, ``<out>/report.md`` and ``<out>/grid.png`` (RTL, golden,
   software rows) atomically (default ``build/sim/``) and prints the summary table.

One Verilator build serves every sampler and step count: the core is built with the DDIM-1 step
tables at reset (the build of ``tests/test_core_cocotb.py``, so a test run leaves it cached) and
other tables are written through the core's ``tables`` port before the first image. The emulator
seed is run-time stimulus too: the core is built with ``runtime_seed=True`` (reset seed
``sim.cocotb_core.RUNTIME_RESET_SEED``) and the bench puts ``--seed`` on its ``seed`` input,
which the core's register master writes into the TRNG's SEED before enabling it; the TRNG runs
on its own gated clock (``trng_clock="gated"``, skipped by Verilator while the noise FIFO is
full).

``--array device`` (``make sim ARRAY=device``, physics in the loop): the core is built with its
TRNG's array port brought out (``build_core(..., array_mode="external")``, no emulator), the
bench plays that port with the VCMA-MTJ device model (``sim.device_array.DeviceArrayPlayer`` on a
``DevicePort`` seeded with ``--seed``), and the golden run is ``hw_sample(program,
DeviceNoise(seed, array=..., gauss_cfg=program.gauss), ...)``. The device seed is run-time
stimulus (one build for every seed); the per-row Python of the player and of the twin makes the
run slower than the emulator's (see docs/mtj-array.md). The FID batch cannot take the per-row
twin (hours for 2000 images): it uses the ``"mtj"`` source (the same device physics,
vectorised, open-loop calibration), named in the report.

Bad input (steps beyond the schedule table, unknown sampler, counts out of range) prints one
``error:`` line and exits with 2 before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge

import sim.cocotb_core as _bench
from sim.runner import bench_params

SAMPLERS = ("ddim", "ddpm")
#: ``--array`` (Makefile ARRAY): the emulator inside the core, or the device model playing the
#: brought-out array port.
ARRAYS = ("emulator", "device")
#: Data sets with an image checkpoint (``make train DATASET=...``); the core takes image nets only.
DATASETS = ("digits", "fashion-mnist")
#: Defaults of ``make sim`` (Makefile IMAGES/STEPS/SAMPLER): 16 images of ancestral DDPM on 50
#: of the 1000 steps (2.05 M cycles each; full DDPM is 20x that). Measured on 2000 images, seed 1
#: (FID, in-project features): DDPM-50 hardware mode + TRNG 23.6, float + software 26.9;
#: DDIM-50 70.3 vs 29.7 -- the deterministic DDIM carries the 10-bit eps error (README).
DEFAULT_IMAGES, DEFAULT_STEPS, DEFAULT_SAMPLER = 16, 50, "ddpm"
#: The synthesis report whose Fmax converts cycles into images per second.
SYNTH_REPORT = ("ecp5", "report-core.json")
#: The reset tables of the build (the committed-net test's build: one cache for both).
BUILD_SAMPLER, BUILD_STEPS = "ddim", 1
BUILD_NAME = "core_full"
BUILD_NAME_DEVICE = "core_full_device"
RUN_NAME = "core_run"
GRID_MAX = 16


# -- inside the simulator ------------------------------------------------------------------------
async def _watch(dut, p: dict) -> None:
    """Progress bar on ``done``; record each image's pixel beats (sampled like the bench: on the
    falling edge, ``pix.ready`` is held high by the bench)."""
    from tqdm import tqdm
    n, dim = p["n_images"], p["dim"]
    images = []
    bar = tqdm(total=n, desc="RTL images", unit="img", file=sys.stderr, dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        while len(images) < n:
            if not int(dut.pix__valid.value):
                await RisingEdge(dut.pix__valid)
            img = []
            while True:
                await FallingEdge(dut.clk)
                if int(dut.pix__valid.value):
                    img.append(int(dut.pix__payload.value) & ((1 << _bench.PIXEL_BITS) - 1))
                if int(dut.done.value):
                    break
            images.append(img[:dim])
            bar.update(1)
            bar.set_postfix(cycles=int(dut.cycles.value),
                            cps=f"{int(dut.cycles.value) / (time.perf_counter() - t0):.3g}")
            from model.io import atomic_write_json
            atomic_write_json(p["rtl_out"], images)
    finally:
        bar.close()


@cocotb.test()
async def core_run(dut):
    """The bench of sim/cocotb_core.py, unchanged, with the progress/pixel watcher beside it."""
    p = bench_params()
    watcher = cocotb.start_soon(_watch(dut, p))
    await _bench.core_images.func(dut)
    if not watcher.done():
        await watcher


# -- the driver ----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):           # one line, exit 2 (argparse prints usage + line)
        raise _BadInput(f"{self.prog}: {message}")


class _BadInput(ValueError):
    pass


def _int_in(name: str, v: int, lo: int, hi: int) -> int:
    if not lo <= v <= hi:
        raise _BadInput(f"{name} = {v}: out of range, allowed integer [{lo}, {hi}]")
    return v


def _parse(argv) -> argparse.Namespace:
    p = _Parser(prog="python -m sim.core_run", description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                   help=f"images run on the RTL (default {DEFAULT_IMAGES})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"network evaluations (default {DEFAULT_STEPS})")
    p.add_argument("--sampler", default=DEFAULT_SAMPLER,
                   help="ddpm (default; strided when steps < T) or ddim")
    p.add_argument("--dataset", default="digits", help=f"one of {DATASETS} (default digits)")
    p.add_argument("--seed", type=int, default=1, help="TRNG emulator seed (default 1), or "
                   "with --array device the device model's seed; run-time, one build for all")
    p.add_argument("--array", default="emulator", help=f"one of {ARRAYS} (default emulator)")
    p.add_argument("--fid-n", type=int, default=2000,
                   help="images of the golden and software batches for FID (default 2000)")
    p.add_argument("--speed-cycles", type=int, default=0, help="after the images, run one more "
                   "image this many cycles with Python asleep (free-running cycles/s; default 0)")
    p.add_argument("--node-nm", type=int, default=45, help="energy-model node (default 45)")
    p.add_argument("--out", default=None, help="default build/sim")
    p.add_argument("--waves", action="store_true", help="write an FST of the run")
    a = p.parse_args(argv)
    if a.sampler not in SAMPLERS:
        raise _BadInput(f"--sampler = {a.sampler!r}: unknown, allowed {SAMPLERS}")
    if a.array not in ARRAYS:
        raise _BadInput(f"--array = {a.array!r}: unknown, allowed {ARRAYS}")
    if a.dataset not in DATASETS:
        raise _BadInput(f"--dataset = {a.dataset!r}: unknown, allowed {DATASETS}")
    _int_in("--images", a.images, 1, 10_000)
    _int_in("--seed", a.seed, 0, 2**32 - 1)
    _int_in("--fid-n", a.fid_n, 2, 1_000_000)
    _int_in("--speed-cycles", a.speed_cycles, 0, 10**9)
    return a


def core_bench_params(program, core, sampler: str, steps: int, golden) -> dict:
    """``SPINDIFF_BENCH`` of sim/cocotb_core.py for one run of ``golden.pixels`` images of
    ``sampler``/``steps`` on ``core`` (built by :func:`hw.core.build_core`): the step tables are
    written through the ``tables`` port first unless they are the core's reset tables."""
    from hw.core import CORE_COUNTERS, image_cycles, table_words
    img = core.image
    n = len(golden.pixels)
    phases = []
    if (sampler, steps) != (BUILD_SAMPLER, BUILD_STEPS):
        phases.append({"kind": "tables", "words": [list(map(int, w)) for w in
                                                   table_words(program.tables(sampler, steps))]})
    phases.append({"kind": "images", "steps": steps, "n": n,
                   "min_cycles": image_cycles(img, steps), "exact": sampler == "ddim"})
    return {"dim": img.dim, "fifo_depth": core.noise_fifo_depth,
            "counter_names": list(CORE_COUNTERS), "counter_bits": core.counter_bits,
            "tables_addr_bits": len(core.tables.payload.addr), "phases": phases,
            "pixels": [[int(v) for v in row] for row in golden.pixels.reshape(n, -1)],
            "counters": {k: int(golden.counts_total[k]) for k in CORE_COUNTERS}}


def checkpoints(dataset: str) -> tuple[Path, Path]:
    """(hardware checkpoint, float checkpoint) of ``dataset``: the committed ones for digits
    (``default_checkpoint()``: the QAT net), else ``<dataset>-qat.pt`` (or ``<dataset>.pt``) and
    ``<dataset>.pt`` from the committed directory or ``build/checkpoints`` (``make train``)."""
    from model.diffusion.hardware import default_checkpoint
    from model.diffusion.train import CHECKPOINT_DIR, DEFAULT_CHECKPOINT
    from sim.meta import ROOT
    if dataset == "digits":
        return default_checkpoint(), DEFAULT_CHECKPOINT
    dirs = (CHECKPOINT_DIR, ROOT / "build" / "checkpoints")

    def find(stems):
        return next((d / f"{s}.pt" for s in stems for d in dirs if (d / f"{s}.pt").is_file()),
                    None)
    hw, fl = find((f"{dataset}-qat", dataset)), find((dataset,))
    if hw is None or fl is None:
        raise _BadInput(f"--dataset = {dataset!r}: no trained checkpoint (looked for "
                        f"{dataset}-qat.pt and {dataset}.pt in {', '.join(map(str, dirs))}); "
                        f"run `make train DATASET={dataset}` first")
    return hw, fl


def _software(sampler, steps, n, seed, shape, ckpt):
    """The software float baseline: the float checkpoint, software noise, the same sampler and
    step count (strided DDPM on the same respaced grid as the hardware tables)."""
    import torch

    from model.diffusion.noise import make_noise
    from model.diffusion.samplers import sample
    from model.diffusion.schedules import DDPMSchedule
    from model.diffusion.train import load_checkpoint
    net, meta = load_checkpoint(ckpt)
    sched = DDPMSchedule(**meta["schedule"])
    with torch.no_grad():
        x = sample(sampler, net, sched, make_noise("software", seed), n, steps=steps,
                   progress=False)
    # Clipped to [-1, 1] as the hardware mode's images are (HWSamples.images), so that both FIDs
    # see one range (a DDIM-1 float sample leaves it far).
    return x.detach().float().clamp(-1.0, 1.0).reshape(n, *shape), ckpt


def fmax_images_per_s(cycles_per_image: float, root: Path) -> dict:
    """Images per second at the post-route Fmax of ``make synth TARGET=ecp5 DESIGN=core``
    (``build/synth/ecp5/report-core.json``), or ``value: None`` with the reason."""
    path = root / "build" / "synth" / SYNTH_REPORT[0] / SYNTH_REPORT[1]
    d = {"value": None, "unit": "images/s", "source": str(path.relative_to(root))}
    try:
        rep = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        d["reason"] = (f"no synthesis report ({type(e).__name__}); run `make synth TARGET=ecp5 "
                       f"DESIGN=core` first")
        return d
    f = rep.get("fmax_mhz")
    if not isinstance(f, (int, float)) or f <= 0:
        d["reason"] = f"the synthesis report has no post-route Fmax (status {rep.get('status')!r})"
        return d
    d.update(value=f * 1e6 / cycles_per_image, fmax_mhz=f, device=rep.get("device"),
             definition=f"Fmax {f:.4g} MHz / {cycles_per_image:.6g} cycles per image")
    return d


def _say(msg: str) -> None:
    print(f"[core_run] {msg}", file=sys.stderr, flush=True)


def _grid(path, rows, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from model.io import atomic_savefig
    cols = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.0 * cols + 1.6, 1.1 * len(rows) + 0.5),
                             squeeze=False)
    for i, (label, imgs) in enumerate(rows):
        for j in range(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(imgs):
                ax.imshow(imgs[j], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes[i][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def _to_u8(x):
    """[−1, 1] float images to 0 … 255 for the grid (display only)."""
    import numpy as np
    return np.clip(np.rint((np.asarray(x, dtype=np.float64) + 1.0) * 127.5), 0, 255)


def run(a: argparse.Namespace, command: str) -> dict:
    """Everything after the argument check; returns the report (also written)."""
    import numpy as np
    import torch

    from hw.core import CORE_COUNTERS, build_core
    from sim.cocotb_core import RUNTIME_RESET_SEED
    from model.diffusion.data import load_dataset
    from model.diffusion.hardware import HardwareProgram, hw_sample
    from model.diffusion.metrics import FIDReference, feature_net
    from model.energy import accounting, trng
    from model.io import atomic_write_json
    from sim.meta import ROOT, provenance
    from sim.runner import BUILD, run_cocotb

    device = a.array == "device"
    torch.set_num_threads(1)
    out = Path(a.out) if a.out else ROOT / "build" / "sim"
    ckpt, float_ckpt = checkpoints(a.dataset)
    try:
        program = HardwareProgram.from_checkpoint(ckpt)
    except ValueError as e:
        raise _BadInput(f"--dataset = {a.dataset!r}: checkpoint {ckpt.name} does not fit the "
                        f"hardware program: {e}") from e
    try:
        program.tables(a.sampler, a.steps)
    except ValueError as e:
        raise _BadInput(f"--steps = {a.steps}: {e}") from e
    n, shape = a.images, tuple(program.image_shape)

    t = time.perf_counter()
    _say(f"core generation ({a.dataset}, {ckpt.name})")
    try:
        if device:
            core = build_core(program, BUILD_SAMPLER, BUILD_STEPS, seed=1,
                              array_mode="external")
        else:
            core = build_core(program, BUILD_SAMPLER, BUILD_STEPS, seed=RUNTIME_RESET_SEED,
                              trng_clock="gated", runtime_seed=True)
    except ValueError as e:
        raise _BadInput(f"--dataset = {a.dataset!r}: checkpoint {ckpt.name} does not fit the "
                        f"core: {e}") from e
    _say(f"golden hw_sample of {n} images")
    if device:
        from model.diffusion.noise import DeviceNoise
        noise = DeviceNoise(a.seed, array=core.emu_cfg.array, gauss_cfg=program.gauss)
    else:
        noise = "trng"
    golden = hw_sample(program, noise, n, a.steps, a.sampler, a.seed)
    params = core_bench_params(program, core, a.sampler, a.steps, golden)
    if device:
        from dataclasses import asdict
        params["array_device"] = {"array": asdict(core.emu_cfg.array), "seed": a.seed}
    else:
        params["run_seed"] = a.seed
    run_dir = BUILD / "cocotb" / RUN_NAME
    bench_out, rtl_out = run_dir / "bench.json", run_dir / "rtl_pixels.json"
    for f in (bench_out, rtl_out):
        f.unlink(missing_ok=True)
    params.update(out=str(bench_out), rtl_out=str(rtl_out), n_images=n,
                  speed_cycles=a.speed_cycles)
    if a.waves:
        os.environ["WAVES"] = "1"
    os.environ.setdefault("COCOTB_LOG_LEVEL", "WARNING")
    os.environ.setdefault("GPI_LOG_LEVEL", "WARNING")
    _say(f"Verilator run of {n} {a.sampler}-{a.steps} images (build cached in build/verilator)")
    t_sim = time.perf_counter()
    res = run_cocotb(core, BUILD_NAME_DEVICE if device else BUILD_NAME, "sim.core_run", params,
                     seed=a.seed, run_name=RUN_NAME, stream=True)
    wall_sim = time.perf_counter() - t_sim
    bench = json.loads(bench_out.read_text())
    rtl = np.asarray(json.loads(rtl_out.read_text()), dtype=np.int64)
    want = golden.pixels.reshape(n, -1).astype(np.int64)
    bit_exact = bool(rtl.shape == want.shape and (rtl == want).all() and bench["bit_exact"])
    counters_ok = all(int(bench["counters"][k]) == int(golden.counts_total[k])
                      for k in CORE_COUNTERS)

    # FID of the golden hardware mode and of the software baseline, on one real reference.
    _say(f"FID batches of {a.fid_n} images: golden hardware mode and software float")
    real = load_dataset(a.dataset, "train").x
    fid_ref = FIDReference(real, feature_net(a.dataset, progress=False))
    fid_noise = "mtj" if device else "trng"
    hw_big = hw_sample(program, fid_noise, a.fid_n, a.steps, a.sampler, a.seed)
    fid_hw = fid_ref.score(hw_big.images.reshape(a.fid_n, *real.shape[1:]))
    sw, sw_ckpt = _software(a.sampler, a.steps, a.fid_n, a.seed, real.shape[1:], float_ckpt)
    fid_sw = fid_ref.score(sw)

    e = accounting.image_energy(program=program, sampler=a.sampler, steps=a.steps,
                                node_nm=a.node_nm)
    fom = trng.figures(a.node_nm)["mtj_fom"]
    cpi = [int(c) for c in bench["cycles_per_image"]]
    report = {
        "images": n,
        "bit_exact": bit_exact,
        "counters_match": counters_ok,
        "cycles_per_image": float(np.mean(cpi)),
        "cycles_per_image_each": cpi,
        "sim_cycles_per_s": bench["bench_cycles_per_s"],
        "sim_cycles_per_s_definition": "all cycles of the run (boot, table load, images) / wall "
                                       "time of the cocotb test (Python waking on transactions)",
        "sim_cycles_per_s_free_run": bench["sim_cycles_per_s"],
        "boot_cycles": bench["boot_cycles"],
        "total_cycles": bench["total_cycles"],
        "fid_hw": fid_hw,
        "fid_sw": fid_sw,
        "fid": {"n": a.fid_n, "real": f"{a.dataset} train split ({len(real)} images)",
                "features": f"model.diffusion.metrics.feature_net({a.dataset!r})",
                "hw": f"hw_sample(program, {fid_noise!r}, {a.fid_n}, {a.steps}, {a.sampler!r}, "
                      f"seed={a.seed})",
                "sw": f"samplers.sample({a.sampler!r}, steps={a.steps}) on "
                      f"{Path(sw_ckpt).name} (float), software noise seed {a.seed}, clipped "
                      f"to [-1, 1]"},
        "energy_per_image_j": e["per_image_J"],
        "energy_per_image_definition": f"HardwareProgram.counts({a.sampler!r}, {a.steps}) (= the "
                                       f"RTL's counters / images) x per-op energies, "
                                       f"model/energy/accounting.py image_energy, node "
                                       f"{a.node_nm} nm",
        "energy_per_bit_per_area": {"value": fom["value"], "unit": fom["unit"],
                                    "definition": "MTJ TRNG source: energy per conditioned bit x "
                                    "source area, FoM = E_bit x A_source (docs/energy.md §4, "
                                    "model/energy/trng.py); " + fom["definition"]},
        "images_per_s_at_fmax": fmax_images_per_s(float(np.mean(cpi)), ROOT),
        "counters_per_image": {k: int(v) for k, v in golden.counts.items()},
        "dataset": a.dataset, "sampler": a.sampler, "steps": a.steps, "seed": a.seed,
        "array": a.array,
        "noise": (noise.describe() if device else
                  f"hw_sample(program, 'trng', seed={a.seed}): the emulator's twin"),
        "checkpoint": str(Path(ckpt).relative_to(ROOT)) if Path(ckpt).is_relative_to(ROOT)
        else str(ckpt),
        "wall_s": {"simulation": wall_sim, "total": time.perf_counter() - t},
        "waves": str(res.wave) if res.wave else None,
        "grid": "grid.png",
        "meta": {"provenance": provenance(a.seed, command)},
    }
    k = min(n, GRID_MAX)
    rows = [("RTL", rtl[:k].reshape(k, *shape[-2:])),
            ("golden", want[:k].reshape(k, *shape[-2:]))]
    rows.append(("software", _to_u8(sw[:k]).reshape(k, *shape[-2:])))
    _grid(out / "grid.png", rows, f"{a.dataset}, {a.sampler}-{a.steps}, seed {a.seed}\nRTL "
          f"(Verilator), golden hw_sample, software float")
    from model.io import atomic_write_text
    atomic_write_text(out / "report.md", f"# make sim\n\n`{command}`\n\n```\n"
                      f"{_summary(report, out)}\n```\n\n![grid](grid.png)\n")
    atomic_write_json(out / "report.json", report)
    return report


def _summary(r: dict, out: Path) -> str:
    def f(v, fmt):
        return "–" if v is None else format(v, fmt)
    ips = r.get("images_per_s_at_fmax") or {}
    rows = [("run", f"{r.get('dataset', 'digits')}, {r['sampler']}-{r['steps']}, seed {r['seed']}"),
            ("images (RTL)", str(r["images"])),
            ("bit-exact with hw_sample", str(r["bit_exact"])),
            ("counters = counts x N", str(r["counters_match"])),
            ("cycles per image", f(r["cycles_per_image"], ".0f")),
            ("simulated cycles/s", f(r["sim_cycles_per_s"], ".3g")),
            ("images/s at Fmax", f(ips.get("value"), ".4g") + (
                f" (ECP5 {ips['fmax_mhz']:.4g} MHz)" if ips.get("value") is not None
                else " (no make synth TARGET=ecp5 DESIGN=core report)")),
            (f"FID hw (n={r['fid']['n']})", f(r["fid_hw"], ".3f")),
            (f"FID sw (n={r['fid']['n']})", f(r["fid_sw"], ".3f")),
            ("energy per image", f(r["energy_per_image_j"], ".4g") + " J"),
            ("energy per bit per area", f(r["energy_per_bit_per_area"]["value"], ".4g") + " "
             + r["energy_per_bit_per_area"]["unit"])]
    w = max(len(a) for a, _ in rows)
    return "\n".join([f"{a:<{w}}  {b}" for a, b in rows]
                     + [f"report: {out / 'report.json'}", f"grid:   {out / 'grid.png'}"])


def main(argv=None) -> int:
    """Command line; returns the exit status (2: bad input, nothing written)."""
    from sim.meta import ROOT
    from sim.runner import SimulationFailed
    argv = sys.argv[1:] if argv is None else list(argv)
    command = "python -m sim.core_run " + " ".join(argv)
    try:
        a = _parse(argv)
        r = run(a, command)
    except _BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SimulationFailed as e:
        print(f"error: the RTL run failed (no report written): {e}", file=sys.stderr)
        return 1
    print(_summary(r, Path(a.out) if a.out else ROOT / "build" / "sim"))
    return 0 if r["bit_exact"] and r["counters_match"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
