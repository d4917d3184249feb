"""Train a DDPM ε-network on an image data set and save its checkpoint (``make train``).

    python -m sim.train --dataset digits --seed 1 [--epochs N] [--qat] [--out PATH]

The defaults per data set (:data:`CONFIGS`) are the ones the committed checkpoints were made with;
``--qat`` adds quantization-aware fine-tuning for the default crossbar (``model.nn.CrossbarSpec()``:
16×16 tiles, 8-bit weights, inputs and ADC) after the float epochs. Default outputs:
``model/diffusion/checkpoints/<dataset>[-qat].pt`` for digits (committed, kept small),
``build/checkpoints/<dataset>[-qat].pt`` otherwise. Training runs on one thread by default
(``--threads``), so the same seed gives the same weights bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import torch

from model.diffusion.data import DatasetUnavailable, load_dataset
from model.diffusion.nets import EpsMLP
from model.diffusion.schedules import DDPMSchedule
from model.diffusion.train import (CHECKPOINT_DIR, CheckpointError, eval_loss, load_checkpoint,
                                   save_checkpoint, train_ddpm)
from sim.meta import ROOT, provenance
from sim.train_score import thin

#: Net, schedule and training defaults per image data set.
#:
#: digits (measured on this machine, seed 1, FID (in-project classifier features) of 2000 DDPM
#: samples against the training set, two sampling seeds): plain MLPs with the time table
#: concatenated to the input are slow learners, and steps and capacity decide. ReLU 128-128
#: (11k steps) 190; ReLU 256-256 (11k) 147; SiLU 256-256 (33k) 80; + 66k steps 39; batch 256 +
#: min-SNR-5 weighting (48k) 30, (96k) 19, (192k) 15 — the default (about 10 min on one idle
#: core). T = 250 instead of 1000 (same net and steps, β rescaled) was worse (214 vs 190), so T
#: stays 1000. Memorisation share (metrics.memorisation, 1000 samples) 0.57 against 0.47 for the
#: held-out real digits: close to the real level, not a copy of the training set.
#: Quantization (hardware mode, software noise, 2000 images, sampling seeds 1 / 2; float 15.3 for
#: seed 1): post-training quantization of the float checkpoint 280 (percentile 99.9); QAT 60
#: epochs at calibration percentile 100: 23 / 28 (x and ε̂ on a 2^-4 grid); the same net with
#: percentile-99.9 scales (2^-5 grid) 17 / 21; QAT 60 epochs at 99.9 (the default) 20 / 22; 300
#: epochs 22 / 27 and 1000 epochs (percentile 100) 39 / 42 — longer QAT does not help; a
#: percentile of 99.5 clips the hidden activations (FID 135). The hardware runs the 8-bit-QAT net
#: with 10-bit DACs and ADCs (model.diffusion.hardware.HW_SPEC): 12.0 / 13.9, at the float level;
#: QAT at 10/10 bits gave 17.9 / 22.3 and 10-bit post-training quantization 259.
CONFIGS = {
    "digits": {"hidden": (256, 256), "temb_dim": 64, "act": "silu", "steps": 1000,
               "epochs": 32000, "batch": 256, "lr": 2e-3, "ema": 0.999, "min_snr": 5.0,
               "act_bound": 4.0, "qat_epochs": 60, "qat_lr": 2e-4, "qat_percentile": 99.9},
    "fashion-mnist": {"hidden": (1024, 1024), "temb_dim": 64, "act": "silu", "steps": 1000,
                      "epochs": 40, "batch": 256, "lr": 1e-3, "ema": 0.9995, "min_snr": None,
                      "act_bound": 4.0, "qat_epochs": 4, "qat_lr": 1e-4, "qat_percentile": 100.0},
}
IMAGE_DATASETS = tuple(CONFIGS)


def default_out(dataset: str, qat: bool) -> Path:
    name = f"{dataset}{'-qat' if qat else ''}.pt"
    return (CHECKPOINT_DIR if dataset == "digits" else ROOT / "build" / "checkpoints") / name


def train(dataset: str = "digits", seed: int = 1, epochs: int | None = None, qat: bool = False,
          out=None, progress: bool = True, weight_noise=None, act_penalty: float = 0.0,
          qat_epochs: int | None = None, init=None, command: str = "",
          qat_percentile: float | None = None) -> dict:
    """Train with :data:`CONFIGS` ``[dataset]`` and write the checkpoint; returns its meta.

    ``init``: a checkpoint to start from (its net and schedule); with ``qat`` and no
    ``epochs``, only the quantization-aware fine-tuning runs (``qat_epochs``, default the
    config's).
    """
    if dataset not in CONFIGS:
        raise ValueError(f"train.dataset = {dataset!r}: not an image data set, allowed "
                         f"{IMAGE_DATASETS} (the 2-D sets train with the score trainer)")
    cfg = dict(CONFIGS[dataset])
    if epochs is not None:
        cfg["epochs"] = epochs
    elif init is not None and qat:
        cfg["epochs"] = 0
    if qat_epochs is not None:
        cfg["qat_epochs"] = qat_epochs
    if qat_percentile is not None:
        if not 50.0 <= qat_percentile <= 100.0:
            raise ValueError(f"train.qat_percentile = {qat_percentile}: out of range, allowed "
                             f"[50, 100]")
        cfg["qat_percentile"] = float(qat_percentile)
    tr = load_dataset(dataset, "train", seed)
    te = load_dataset(dataset, "test", seed)
    init_info = None
    if init is not None:
        net, imeta = load_checkpoint(init)
        if imeta.get("dataset") != dataset:
            raise ValueError(f"train.init = {init}: trained on {imeta.get('dataset')!r}, not "
                             f"{dataset!r}")
        sched = DDPMSchedule(**imeta["schedule"])
        init_info = {"path": str(init), "test_loss": imeta.get("test_loss"),
                     "sha256": hashlib.sha256(Path(init).read_bytes()).hexdigest()}
        for k in ("hidden", "temb_dim", "act", "steps"):
            cfg[k] = net.init_kwargs[k]
    else:
        sched = DDPMSchedule.scaled(cfg["steps"])
        torch.manual_seed(seed)
        net = EpsMLP(tr.dim, sched.steps, cfg["hidden"], cfg["temb_dim"], cfg["act"])
    spec = None
    if qat:
        from model.nn import CrossbarSpec
        spec = CrossbarSpec(calib_percentile=cfg["qat_percentile"])
    hist = train_ddpm(net, tr, sched, epochs=cfg["epochs"], batch=cfg["batch"], lr=cfg["lr"],
                      seed=seed, ema=cfg["ema"], weight_noise=weight_noise,
                      act_penalty=act_penalty, act_bound=cfg["act_bound"], qat_spec=spec,
                      qat_epochs=cfg["qat_epochs"] if qat else None,
                      qat_lr=cfg["qat_lr"] if qat else None, min_snr=cfg["min_snr"],
                      progress=progress)
    test_loss = eval_loss(net, te, sched, seed=seed)
    prov = provenance(seed, command or f"python -m sim.train --dataset {dataset} --seed {seed}")
    prov.pop("created_utc", None)       # keep a regenerated checkpoint's bytes stable
    meta = {
        "dataset": dataset, "split": "train", "seed": seed, "n_train": len(tr),
        "schedule": sched.to_dict(), "net_class": "EpsMLP", "net_kwargs": net.init_kwargs,
        # per-epoch histories thinned to ~200 points: keeps the committed checkpoint small
        "train": {k: (thin(v) if isinstance(v, list) and len(v) > 1
                      and all(isinstance(e, (int, float)) for e in v) else v)
                  for k, v in hist.items()},
        "qat_spec": None if spec is None else {
            f: getattr(spec, f) for f in ("rows", "cols", "weight_bits", "input_bits",
                                          "input_signed", "adc_bits", "bias_bits",
                                          "calib_percentile")},
        "test_loss": test_loss, "init": init_info, "provenance": prov,
    }
    path = Path(out) if out is not None else default_out(dataset, qat)
    save_checkpoint(path, net, meta)
    meta["path"] = str(path)
    return meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.train", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="digits", choices=IMAGE_DATASETS)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None, help="default: the data set's CONFIGS")
    p.add_argument("--qat", action="store_true",
                   help="quantization-aware fine-tuning for CrossbarSpec() after float training")
    p.add_argument("--qat-epochs", type=int, default=None)
    p.add_argument("--qat-percentile", type=float, default=None,
                   help="calibration percentile of the QAT crossbar spec (default: CONFIGS)")
    p.add_argument("--weight-noise", type=float, default=None,
                   help="sigma of the per-forward weight noise (truncated at 2 sigma)")
    p.add_argument("--act-penalty", type=float, default=0.0)
    p.add_argument("--init", default=None,
                   help="start from this checkpoint (with --qat: QAT fine-tuning only)")
    p.add_argument("--out", default=None, help="checkpoint path (default: see module doc)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error(f"--threads = {a.threads}: must be >= 1")
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    try:
        meta = train(a.dataset, a.seed, a.epochs, a.qat, a.out, not a.no_progress,
                     a.weight_noise, a.act_penalty, a.qat_epochs, a.init,
                     command="python -m sim.train " + " ".join(argv or sys.argv[1:]),
                     qat_percentile=a.qat_percentile)
    except (DatasetUnavailable, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tr = meta["train"]
    last = tr["qat_loss"][-1] if tr["qat_loss"] else tr["loss"][-1]
    print(f"{meta['path']}: {a.dataset}, {tr['steps']} steps in {time.perf_counter() - t0:.0f} s, "
          f"final train loss {last:.4f}, held-out loss {meta['test_loss']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
