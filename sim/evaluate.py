"""Sample quality of the diffusion models with hardware in the loop (``make evaluate``).

    python -m sim.evaluate [--datasets digits,ring,...] [--noise software,trng,...]
                           [--compute float,digital,analog] [--samplers ddpm,ddim,...]
                           [--samples 2000] [--seeds 4] [--quick] [--out build/sampler]

One row per data set × noise source × score compute × sampler. Each row draws ``--samples``
samples for each of ``--seeds`` seeds (seeds ``--seed``, ``--seed`` + 1, …, the same for every
row) and measures them:

* images — the FID (in-project classifier features) against the model's training set
  (``model.diffusion.metrics``), mean and 95 % interval over the seeds, and its ratio to the
  reference row (software noise, float compute, same data set and sampler: added when not asked
  for); the real-vs-real floor (two random halves of the training set) and the FID of the
  held-out split are given per data set;
* 2-D points — Yang et al.'s per-axis KL and 2-D histogram L2 against the training points;
* conditional runs (latent-digits) — the accuracy of the samples under the data set's
  classifier (the requested classes cycle through 0 … classes − 1);
* all — the memorisation share (``metrics.memorisation``) and, as the level of no memorisation,
  the same share of the held-out split.

Outputs (under ``--out``, each written atomically, all of them only after every row ran):
``results.json`` (provenance from ``sim/meta.py``), ``results.md``, ``grid_<dataset>.png``
(sample grids of every row side by side with the real data) for images,
``scatter_<dataset>.png`` and ``density_<dataset>.png`` for 2-D sets.

Score compute: ``float``; ``digital`` (the network's layers bit-exact on the crossbar digital
twin, ``model.nn``; the sampler's update in float); ``analog`` (the analog crossbar model with
read noise); ``hardware`` (the hardware-mode sampler ``model.diffusion.hardware.hw_sample``:
network *and* sequencer integer for integer what the RTL computes, ``docs/hardware-mode.md``;
image sets, ddpm / ddim).

The default run — digits, DDPM, the goal row (TRNG noise + the bit-exact hardware mode) and its
reference (software noise + float), 4 seeds × 2000 samples — is meant to fit in 30 minutes on 2
cores
(``--jobs 2`` worker processes share the (row, seed) pairs); larger grids go behind the options
(``--noise software,trng,mtj,lfsr --compute float,digital,analog`` …). ``--quick`` takes 256
samples × 2 seeds unless given. ``--standin`` replaces the models and samplers by a Gaussian
fitted to the data (for testing the driver only; its rows say so).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.meta import ROOT, provenance

OUT = ROOT / "build" / "sampler"
DATASETS = ("digits", "fashion-mnist", "ring", "latent-digits")
NOISE_SOURCES = ("software", "trng", "mtj", "lfsr")
#: float: the network in float; digital: its layers bit-exact on the crossbar digital twin
#: (model.nn), the sampler's update in float; analog: the analog crossbar model (read noise);
#: hardware: the hardware-mode sampler (model.diffusion.hardware.hw_sample, contract
#: docs/hardware-mode.md) — network and sequencer integer for integer what the RTL computes,
#: image sets with ddpm / ddim only.
COMPUTE_MODES = ("float", "digital", "analog", "hardware")
SAMPLERS = ("ddpm", "ddim", "em", "ode-euler", "ode-heun", "analog")
IMAGE_DATASETS = ("digits", "fashion-mnist")
REFERENCE = ("software", "float")
GOAL_RATIO = 1.05
#: The default grid: the goal row (TRNG noise + digital twin) and, added to every grid, the
#: reference row (software noise + float).
DEFAULTS = dict(datasets=("digits",), noise=("trng",), compute=("hardware",), samples=2000,
                seeds=4)
#: Sampler of each data set when --samplers is not given (the paper's for the 2-D sets: Euler on
#: the probability-flow ODE).
DEFAULT_SAMPLERS = {"digits": ("ddpm",), "fashion-mnist": ("ddpm",), "ring": ("ode-euler",),
                    "latent-digits": ("ode-euler",)}
QUICK = dict(samples=256, seeds=2)
MAX_SAMPLES = 1_000_000
GRID_N = 64                  # samples per panel of a grid (8 × 8)
FID_NAME = "FID (in-project classifier features)"   # = model.diffusion.metrics.FID_NAME


class EvaluateError(RuntimeError):
    """A run cannot start or continue (missing checkpoint, data set not installed, unsupported
    combination); the message says what and how to fix it."""


# ------------------------------------------------------------------------------------------------
# Arguments
# ------------------------------------------------------------------------------------------------

def _list_of(allowed, what):
    def parse(text: str) -> tuple:
        items = tuple(s.strip() for s in text.split(",") if s.strip())
        if not items:
            raise argparse.ArgumentTypeError(f"empty {what} list; allowed {','.join(allowed)}")
        bad = [s for s in items if s not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {what} {','.join(bad)!s}; allowed "
                                             f"{','.join(allowed)}")
        return tuple(dict.fromkeys(items))          # order kept, duplicates dropped
    return parse


def _int_in(lo, hi, what):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer; allowed "
                                             f"[{lo}, {hi}]") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is out of range, allowed [{lo}, {hi}]")
        return v
    return parse


def _float_in(lo, hi, what):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; allowed "
                                             f"[{lo}, {hi}]") from None
        if not (math.isfinite(v) and lo <= v <= hi):
            raise argparse.ArgumentTypeError(f"{v} is out of range, allowed [{lo}, {hi}]")
        return v
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line, no usage block: ``error: <what>, allowed <range> (see --help)``."""
        self.exit(2, f"error: {message} (see python -m sim.evaluate --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m sim.evaluate",
                                description="Sample quality per data set x noise x compute x "
                                            "sampler -> build/sampler/results.{json,md}, grids")
    p.add_argument("--datasets", type=_list_of(DATASETS, "data set"),
                   default=DEFAULTS["datasets"], help="comma list (default digits)")
    p.add_argument("--noise", type=_list_of(NOISE_SOURCES, "noise source"),
                   default=DEFAULTS["noise"],
                   help="comma list (default trng; software is always run as the reference)")
    p.add_argument("--compute", type=_list_of(COMPUTE_MODES, "compute mode"),
                   default=DEFAULTS["compute"],
                   help="comma list of float, digital, analog, hardware (default hardware: the "
                        "bit-exact hardware-mode sampler; float is always run as the reference)")
    p.add_argument("--samplers", type=_list_of(SAMPLERS, "sampler"), default=None,
                   help="comma list (default: ddpm for images, ode-euler for 2-D sets)")
    p.add_argument("--sde", choices=("reference", "default"), default="reference",
                   help="VP-SDE of the 2-D score checkpoints: Yang et al.'s reference one "
                        "(beta 0.001 -> 0.5, doubled at sampling) or the default one (beta "
                        "0.1 -> 20); default reference")
    p.add_argument("--samples", type=_int_in(2, MAX_SAMPLES, "--samples"), default=None,
                   help="samples per seed (default 2000; --quick 256)")
    p.add_argument("--seeds", type=_int_in(1, 1000, "--seeds"), default=None,
                   help="seeds per row (default 4; --quick 2)")
    p.add_argument("--seed", type=_int_in(0, 2**31 - 1, "--seed"), default=1,
                   help="first seed (default 1)")
    p.add_argument("--steps", type=_int_in(1, 100_000, "--steps"), default=None,
                   help="sampler steps (default: each sampler's own)")
    p.add_argument("--guidance", type=_float_in(0.0, 10.0, "--guidance"), default=1.0,
                   help="classifier-free guidance weight of conditional runs (default 1)")
    p.add_argument("--read-noise", type=_float_in(0.0, 1.0, "--read-noise"), default=0.1,
                   help="analog compute: relative read noise per differential pair, fresh per "
                        "input vector, truncated at 2 sigma (default 0.1: Yang et al. 2024, "
                        "model.devices.crossbar.YANG2024_READ_NOISE); 0 = ideal cells")
    p.add_argument("--quick", action="store_true", help="256 samples x 2 seeds unless given")
    p.add_argument("--out", default=str(OUT), help="output folder (default build/sampler)")
    p.add_argument("--threads", type=_int_in(1, 256, "--threads"), default=2,
                   help="torch threads in all (default 2)")
    p.add_argument("--jobs", type=_int_in(1, 64, "--jobs"), default=2,
                   help="worker processes sampling (row, seed) pairs in parallel (default 2; "
                        "1: in this process, with the samplers' progress bars)")
    p.add_argument("--standin", action="store_true",
                   help="Gaussian stand-in models (tests the driver only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


@dataclass
class Config:
    datasets: tuple
    noise: tuple
    compute: tuple
    samplers: tuple | None
    samples: int
    seeds: int
    seed: int = 1
    steps: int | None = None
    guidance: float = 1.0
    quick: bool = False
    out: Path = OUT
    threads: int = 2
    standin: bool = False
    progress: bool = True
    command: str = ""
    sde: str = "reference"
    jobs: int = 1
    read_noise: float = 0.1

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]


def parse_args(argv=None) -> Config:
    """Parse and validate; a bad argument exits with one ``error:`` line (status 2)."""
    p = build_parser()
    a = p.parse_args(argv)
    samples = a.samples if a.samples is not None else (QUICK if a.quick else DEFAULTS)["samples"]
    seeds = a.seeds if a.seeds is not None else (QUICK if a.quick else DEFAULTS)["seeds"]
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out {out}: exists and is not a folder")
    args = list(sys.argv[1:] if argv is None else argv)
    return Config(a.datasets, a.noise, a.compute, a.samplers, samples, seeds, a.seed, a.steps,
                  a.guidance, a.quick, out, a.threads, a.standin, not a.no_progress,
                  "python -m sim.evaluate " + " ".join(args), a.sde, a.jobs, a.read_noise)


# ------------------------------------------------------------------------------------------------
# Rows
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    dataset: str
    noise: str
    compute: str
    sampler: str

    @property
    def reference(self) -> bool:
        return (self.noise, self.compute) == REFERENCE

    @property
    def label(self) -> str:
        return f"{self.noise} / {self.compute} / {self.sampler}"

    def ref_row(self) -> "Row":
        return Row(self.dataset, *REFERENCE, self.sampler)


def plan_rows(cfg: Config, supports=None) -> tuple[list[Row], list[str]]:
    """Every asked-for combination, with its reference row (software / float) first, and notes
    on the (data set, sampler) pairs left out because the back end has no such model
    (``supports(dataset, sampler)``). No sampler given: each data set's default
    (:data:`DEFAULT_SAMPLERS`)."""
    rows: list[Row] = []
    notes: list[str] = []
    for ds in cfg.datasets:
        samplers = cfg.samplers or DEFAULT_SAMPLERS[ds]
        ok = [sm for sm in samplers if supports is None or supports(ds, sm, "float")]
        for sm in samplers:
            if sm not in ok:
                notes.append(f"{ds} with sampler {sm}: left out (no such model: image sets "
                             f"take ddpm, ddim; 2-D sets em, ode-euler, ode-heun, analog)")
        if not ok:
            allowed = "ddpm,ddim" if ds in IMAGE_DATASETS else "em,ode-euler,ode-heun,analog"
            raise EvaluateError(f"{ds}: none of the samplers {','.join(samplers)} applies; "
                                f"allowed {allowed}")
        for sm in ok:
            combos = [REFERENCE] + [(n, c) for n in cfg.noise for c in cfg.compute
                                    if (n, c) != REFERENCE]
            for n, c in combos:
                if supports is None or supports(ds, sm, c):
                    rows.append(Row(ds, n, c, sm))
                elif n == cfg.noise[0]:
                    notes.append(f"{ds} with sampler {sm} and compute {c}: left out (the "
                                 f"hardware mode runs ddpm / ddim on image sets only)")
    return rows, notes


# ------------------------------------------------------------------------------------------------
# Back ends: the real models and samplers, or a Gaussian stand-in
# ------------------------------------------------------------------------------------------------

@dataclass
class DataRef:
    """What a data set's rows are measured against."""
    name: str
    kind: str                       # "image" | "points"
    shape: tuple
    train: object                   # model.diffusion.data.Dataset (the model's training split)
    test: object
    classes: int | None
    conditional: bool
    split_seed: int
    feature_net: object = None      # metrics.FeatureNet or None (ring)
    fid_ref: object = None          # metrics.FIDReference of the training split
    extra: dict = field(default_factory=dict)


def _rel(path: Path) -> str:
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _load_split(name, split, seed):
    from model.diffusion.data import DatasetUnavailable, load_dataset
    try:
        return load_dataset(name, split, seed)
    except DatasetUnavailable as e:
        raise EvaluateError(str(e)) from e


class StandinBackend:
    """Gaussian fitted to the training split (per class for conditional sets): x = μ + L·z.
    z comes from a seeded torch generator per (noise, compute, sampler, seed); "digital" rounds
    to 8-bit steps of [−1, 1] (images) and "analog" adds N(0, 0.02²). Not a diffusion model:
    it exists to test this driver, and its rows are labelled "standin"."""

    name = "standin"

    def __init__(self):
        self._fit: dict = {}

    def dataset(self, name: str) -> DataRef:
        tr, te = _load_split(name, "train", 0), _load_split(name, "test", 0)
        cond = name == "latent-digits"
        return DataRef(name, tr.kind, tuple(tr.shape), tr, te, tr.classes, cond, 0)

    def describe(self, row: Row, cfg: Config) -> dict:
        return {"model": "standin-gaussian", "checkpoint": None, "steps": None}

    def check(self, row: Row, ref: DataRef) -> None:
        return None

    def _gauss(self, ref: DataRef, cls):
        import torch
        key = (ref.name, cls)
        if key not in self._fit:
            x = ref.train.x.reshape(len(ref.train.x), -1).double()
            if cls is not None:
                x = x[ref.train.y == cls]
            mu = x.mean(0)
            cov = torch.cov(x.T).reshape(x.shape[1], x.shape[1])
            cov = cov + 1e-4 * torch.eye(x.shape[1], dtype=torch.float64)
            self._fit[key] = (mu, torch.linalg.cholesky(cov))
        return self._fit[key]

    def generate(self, row: Row, ref: DataRef, seed: int, n: int, y, cfg: Config):
        import torch
        tag = zlib.crc32(f"{row.noise}/{row.compute}/{row.sampler}".encode())
        g = torch.Generator().manual_seed((seed * 1_000_003 + tag) % 2**63)
        dim = int(np.prod(ref.shape))
        out = torch.empty(n, dim, dtype=torch.float64)
        groups = [(None, torch.arange(n))] if y is None else \
            [(int(c), (y == c).nonzero().flatten()) for c in torch.unique(y)]
        for cls, idx in groups:
            mu, chol = self._gauss(ref, cls)
            z = torch.randn(len(idx), dim, generator=g, dtype=torch.float64)
            out[idx] = mu + z @ chol.T
        if row.compute in ("digital", "hardware"):
            out = torch.round(out.clamp(-1, 1) * 127) / 127 if ref.kind == "image" else \
                torch.round(out * 64) / 64
        elif row.compute == "analog":
            out = out + 0.02 * torch.randn(out.shape, generator=g, dtype=torch.float64)
        return out.float().reshape(n, *ref.shape)


class RealBackend:
    """The trained checkpoints (``make train``: ``sim.train`` for the DDPM ε-networks of the
    image sets, ``sim.train_score`` for the VP-SDE score networks of the 2-D sets),
    ``model.diffusion.noise.make_noise`` and ``model.diffusion.samplers`` (``with_compute``,
    ``calibration_batch``, ``sample``).

    Image sets take the DDPM samplers (``ddpm``, ``ddim``: an ε-network on integer steps), 2-D
    sets the SDE ones (``em``, ``ode-euler``, ``ode-heun``, ``analog``). Digital and analog
    compute use the quantization-aware checkpoint (``<name>-qat.pt``) when there is one, else
    the float one; the calibration batch that sets the fixed-point scales is drawn with seed 0
    (the same scales for every seed); analog compute draws one device instance per seed
    (``CrossbarSpec.seed``).
    """

    name = "real"
    IMAGE_SAMPLERS = ("ddpm", "ddim")
    POINT_SAMPLERS = ("em", "ode-euler", "ode-heun", "analog")

    def __init__(self, sde: str = "reference"):
        self.sde = sde
        self._nets: dict = {}
        self._computed: dict = {}
        self._programs: dict = {}

    def supports(self, dataset: str, sampler: str, compute: str = "float") -> bool:
        if compute == "hardware" and dataset not in IMAGE_DATASETS:
            return False
        return sampler in (self.IMAGE_SAMPLERS if dataset in IMAGE_DATASETS
                           else self.POINT_SAMPLERS)

    # -- checkpoints ------------------------------------------------------------------------
    def _candidates(self, dataset: str, sampler: str, compute: str) -> list[Path]:
        from model.diffusion.train import CHECKPOINT_DIR
        dirs = [CHECKPOINT_DIR, ROOT / "build" / "checkpoints"]
        base = dataset if dataset in IMAGE_DATASETS else f"score-{dataset}-{self.sde}"
        stems = [f"{base}-qat", base] if compute != "float" else [base]
        return [d / f"{s}.pt" for s in stems for d in dirs]

    def _checkpoint(self, dataset, sampler, compute):
        from model.diffusion.train import CheckpointError, load_checkpoint
        cands = self._candidates(dataset, sampler, compute)
        path = next((p for p in cands if p.is_file()), None)
        if path is None:
            how = "make train" if dataset in IMAGE_DATASETS else \
                f"make train (or python -m sim.train_score --dataset {dataset} --sde {self.sde})"
            raise EvaluateError(f"{dataset}: no trained checkpoint (looked for "
                                f"{', '.join(_rel(p) for p in cands[-2:])}); run `{how}` first")
        if path not in self._nets:
            try:
                self._nets[path] = load_checkpoint(path)
            except CheckpointError as e:
                raise EvaluateError(f"{e} (then rerun `make evaluate`)") from e
        return path, *self._nets[path]

    def dataset(self, name: str) -> DataRef:
        path, net, meta = self._checkpoint(name, None, "float")
        if meta.get("dataset") not in (None, name):
            raise EvaluateError(f"checkpoint {_rel(path)}: trained on {meta.get('dataset')!r}, "
                                f"not {name!r}; run `make train`")
        seed = int(meta.get("seed", 0))
        tr, te = _load_split(name, "train", seed), _load_split(name, "test", seed)
        cond = getattr(net, "classes", None) is not None
        return DataRef(name, tr.kind, tuple(tr.shape), tr, te, tr.classes, cond, seed)

    def describe(self, row: Row, cfg: Config) -> dict:
        from model.diffusion.samplers import DEFAULT_STEPS
        path, net, meta = self._checkpoint(row.dataset, row.sampler, row.compute)
        d = {"model": type(net).__name__, "checkpoint": _rel(path)}
        if row.compute == "hardware":
            d["model"] += " (hardware-mode program)"
        if row.sampler == "ddpm":
            d["steps"] = (meta.get("schedule") or {}).get("steps")
        elif row.sampler == "analog":
            d["steps"] = None               # the integrator's own time grid
        else:
            d["steps"] = cfg.steps or DEFAULT_STEPS.get(row.sampler)
        if row.dataset in IMAGE_DATASETS:
            d["schedule"] = meta.get("schedule")
        else:
            d["sde"] = meta.get("sde_name", self.sde)
            d["sde_params"] = meta.get("sde")
        return d

    def check(self, row: Row, ref: DataRef) -> None:
        try:
            from model.diffusion import samplers  # noqa: F401
            from model.diffusion.noise import make_noise  # noqa: F401
        except ImportError as e:
            raise EvaluateError(f"the sampler modules are not available ({e}); use --standin "
                                f"to test this driver") from e
        path, _, _ = self._checkpoint(row.dataset, row.sampler, row.compute)
        if row.compute == "hardware":
            # The hardware program (engine sizes, formats) is built before any sampling, so a
            # net that does not fit the engine fails here, not after the other rows' runs.
            try:
                self._program(row)
            except ValueError as e:
                raise EvaluateError(f"{row.dataset}: checkpoint {_rel(path)} does not fit the "
                                    f"hardware mode ({e}); use --compute float,digital for "
                                    f"this data set") from e

    @staticmethod
    def _process(meta):
        """The DDPM schedule or the VP-SDE the checkpoint was trained with."""
        if meta.get("schedule") is not None:
            from model.diffusion.schedules import DDPMSchedule
            return DDPMSchedule(**meta["schedule"])
        from model.diffusion.sde import VPSDE, get_sde
        s = meta.get("sde", "default")
        return get_sde(s) if isinstance(s, str) else VPSDE(**s)

    def _program(self, row: Row):
        """The hardware-mode program of the row's checkpoint (cached)."""
        from model.diffusion.hardware import HardwareProgram
        path, _, _ = self._checkpoint(row.dataset, row.sampler, row.compute)
        if path not in self._programs:
            self._programs[path] = HardwareProgram.from_checkpoint(path)
        return self._programs[path]

    def _model(self, row: Row, ref: DataRef, seed: int, cfg: Config):
        from model.diffusion.samplers import calibration_batch, with_compute
        path, net, meta = self._checkpoint(row.dataset, row.sampler, row.compute)
        if row.compute == "float":
            return net, meta
        key = (path, row.compute, seed if row.compute == "analog" else None)
        if key not in self._computed:
            from model.nn import CrossbarSpec
            if len(self._computed) > 8:         # analog: one device instance per seed
                self._computed.clear()
            x0 = ref.train.x.reshape(len(ref.train.x), -1)
            y = ref.train.y if ref.conditional else None
            calib = calibration_batch(self._process(meta), x0, seed=0, y=y,
                                      classes=ref.classes if ref.conditional else None)
            # Image sets: the hardware's crossbar (hardware.HW_SPEC: 10-bit DACs and ADCs), so
            # that digital compute runs the hardware mode's network codes; 2-D sets: the
            # default 8-bit one.
            base = CrossbarSpec()
            if row.dataset in IMAGE_DATASETS:
                from model.diffusion.hardware import HW_SPEC as base
            spec = base
            if row.compute == "analog":
                from model.devices.crossbar import ReadNoise
                rn = ReadNoise("multiplicative", cfg.read_noise, trunc=2 * cfg.read_noise,
                               per="eval") if cfg.read_noise > 0 else ReadNoise()
                spec = base.replace(seed=seed % 2**32, analog={"read_noise": rn})
            self._computed[key] = with_compute(net, row.compute, spec, calib)
        return self._computed[key], meta

    def generate(self, row: Row, ref: DataRef, seed: int, n: int, y, cfg: Config):
        from model.diffusion.noise import make_noise
        from model.diffusion.samplers import DEFAULT_STEPS, sample
        if row.compute == "hardware":
            from model.diffusion.hardware import hw_sample
            steps = None if row.sampler == "ddpm" else (cfg.steps or DEFAULT_STEPS["ddim"])
            try:
                r = hw_sample(self._program(row), row.noise, n, steps, row.sampler, seed,
                              progress=cfg.progress)
            except ValueError as e:
                raise EvaluateError(f"{row.dataset}: {row.label}: {e}") from e
            return r.images.reshape(n, *ref.shape)
        model, meta = self._model(row, ref, seed, cfg)
        noise = make_noise(row.noise, seed)
        kw = {"progress": cfg.progress}
        if cfg.steps is not None and row.sampler not in ("ddpm", "analog"):
            kw["steps"] = cfg.steps
        if y is not None:
            kw.update(y=y, guidance=cfg.guidance)
        try:
            x = sample(row.sampler, model, self._process(meta), noise, n, **kw)
        except ValueError as e:
            raise EvaluateError(f"{row.dataset}: {row.label}: {e}") from e
        return x.detach().float().reshape(n, *ref.shape)


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------

def _labels(n: int, classes: int):
    import torch
    return torch.arange(n, dtype=torch.int64) % classes


def prepare_reference(ref: DataRef, cfg: Config, log) -> dict:
    """Per data set: the real-vs-real floor, the held-out values, memorisation of held-out."""
    from model.diffusion import metrics as M
    out: dict = {"dataset": ref.name, "kind": ref.kind, "train_split_seed": ref.split_seed,
                 "n_train": len(ref.train.x), "n_test": len(ref.test.x),
                 "conditional": ref.conditional}
    t0 = time.time()
    if ref.kind == "image" or ref.conditional:
        try:
            ref.feature_net = M.feature_net(ref.name, progress=cfg.progress)
        except M.FeatureNetError as e:
            raise EvaluateError(str(e)) from e
        meta = getattr(ref.feature_net, "meta", {})
        # Its own held-out split (split seed FEATURE_SEED): the model's test split may overlap
        # the feature net's training split when the split seeds differ.
        out["feature_net"] = {"path": _rel(M.checkpoint_path(ref.name)),
                              "test_accuracy": meta.get("test_accuracy"),
                              "split_seed": meta.get("seed")}
    if ref.kind == "image":
        ref.fid_ref = M.FIDReference(ref.train.x, ref.feature_net)
        out["fid_floor"] = _jsonable(M.fid_floor(ref.train.x, ref.feature_net,
                                                 splits=max(2, min(cfg.seeds, 8)),
                                                 seed=cfg.seed))
        out["fid_test_vs_train"] = ref.fid_ref.score(ref.test.x)
    else:
        half = len(ref.train.x) // 2
        g = np.random.default_rng(cfg.seed)
        perm = g.permutation(len(ref.train.x))
        a, b = ref.train.x[perm[:half]], ref.train.x[perm[half:2 * half]]
        kx, ky = M.kl_2d(a, b)
        out["floor"] = {"kl_x": kx, "kl_y": ky, "hist_l2": M.hist_l2(a, b), "n_half": half}
        kx, ky = M.kl_2d(ref.train.x, ref.test.x)
        out["test_vs_train"] = {"kl_x": kx, "kl_y": ky,
                                "hist_l2": M.hist_l2(ref.train.x, ref.test.x)}
    out["memorisation_heldout"] = M.memorisation(ref.test.x, ref.train.x)
    out["seconds"] = round(time.time() - t0, 2)
    log(f"[evaluate] {ref.name}: reference measured ({out['seconds']} s)")
    return out


def measure(ref: DataRef, x, y) -> dict:
    """One seed's metrics of the generated set ``x`` (labels ``y`` for conditional runs).

    Images are measured in the data range: clipped to [−1, 1] first, as the hardware mode's
    output (8-bit pixels) and any saved image are, so float and hardware rows compare alike."""
    from model.diffusion import metrics as M
    m: dict = {}
    bad = int((~np.isfinite(x.reshape(len(x), -1).numpy())).any(1).sum())
    m["nonfinite"] = bad
    if bad:
        raise EvaluateError(f"{ref.name}: {bad} of {len(x)} generated samples hold NaN or inf "
                            f"(the sampler diverged)")
    if ref.kind == "image":
        x = x.clamp(-1.0, 1.0)
        m["fid"] = ref.fid_ref.score(x)
    else:
        m["kl_x"], m["kl_y"] = M.kl_2d(ref.train.x, x)
        m["hist_l2"] = M.hist_l2(ref.train.x, x)
    if y is not None and ref.feature_net is not None:
        m["accuracy"] = M.class_accuracy(x, y, ref.feature_net)
    m["memorisation"] = M.memorisation(x, ref.train.x)
    return m


def _jsonable(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in d.items()}


def summarise(per_seed: list[dict]) -> dict:
    from model.diffusion import metrics as M
    out = {}
    for k in per_seed[0]:
        if k == "nonfinite":
            continue
        vals = [s[k] for s in per_seed]
        out[k] = _jsonable(M.interval95(vals))
    return out


_WORKER: dict = {}


def _worker_init(cfg: Config):
    import torch
    torch.set_num_threads(max(1, cfg.threads // cfg.jobs))
    _WORKER["cfg"] = cfg
    _WORKER["backend"] = StandinBackend() if cfg.standin else RealBackend(cfg.sde)
    _WORKER["refs"] = {}


def _worker_task(task):
    """One (row, seed) in a worker process: the samples as a numpy array, and the seconds."""
    r, s = task
    cfg, backend, refs = _WORKER["cfg"], _WORKER["backend"], _WORKER["refs"]
    if r.dataset not in refs:
        refs[r.dataset] = backend.dataset(r.dataset)
    ref = refs[r.dataset]
    y = _labels(cfg.samples, ref.classes) if ref.conditional else None
    ts = time.time()
    x = backend.generate(r, ref, s, cfg.samples, y, cfg)
    return r, s, x.numpy(), time.time() - ts


def _run_pool(cfg: Config, tasks, done) -> None:
    """(row, seed) tasks on ``cfg.jobs`` spawned worker processes (each with its own back end,
    ``threads // jobs`` torch threads, no inner progress bars); ``done`` measures each result
    in this process as it arrives. Every task is seeded, so the results do not depend on the
    scheduling. A task's error is raised here; a worker that dies gives an EvaluateError."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    from dataclasses import replace
    import multiprocessing as mp

    import torch
    wcfg = replace(cfg, progress=False)
    with ProcessPoolExecutor(cfg.jobs, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init, initargs=(wcfg,)) as ex:
        pending = {ex.submit(_worker_task, t) for t in tasks}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    r, s, x, secs = f.result()
                    done(r, s, torch.from_numpy(x), secs)
        except BrokenProcessPool as e:
            raise EvaluateError(f"a sampling worker process died ({e}); rerun with --jobs 1 "
                                f"to see its error") from e
        finally:
            for f in pending:
                f.cancel()


def run(cfg: Config, backend=None, log=print) -> dict:
    """Every row; returns the report (no provenance) and the samples kept for the figures."""
    import torch
    torch.set_num_threads(cfg.threads)
    backend = backend or (StandinBackend() if cfg.standin else RealBackend(cfg.sde))
    rows, notes = plan_rows(cfg, getattr(backend, "supports", None))
    for note in notes:
        log(f"[evaluate] {note}")
    t0 = time.time()
    # Everything that can fail for lack of a file or a module fails here, before any sampling.
    refs: dict[str, DataRef] = {}
    for ds in cfg.datasets:
        refs[ds] = backend.dataset(ds)
    for r in rows:
        backend.check(r, refs[r.dataset])
    datasets = {ds: prepare_reference(ref, cfg, log) for ds, ref in refs.items()}

    bar = None
    if cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=len(rows) * cfg.seeds, desc="evaluate", unit="seed", file=sys.stderr)
    tasks = [(r, s) for r in rows for s in cfg.seed_list]
    got: dict = {}                                  # (row, seed) -> (metrics, seconds)
    keep: dict = {}

    def done(r: Row, s: int, x, secs: float):
        ref = refs[r.dataset]
        y = _labels(cfg.samples, ref.classes) if ref.conditional else None
        got[(r, s)] = (measure(ref, x, y), secs)
        if s == cfg.seed:
            keep[r] = (x[:4000 if ref.kind == "points" else GRID_N],
                       None if y is None else y[:4000])
        if bar is not None:
            bar.set_postfix_str(f"{r.dataset}: {r.label}, seed {s}")
            bar.update()

    if cfg.jobs == 1:
        for r, s in tasks:
            ref = refs[r.dataset]
            y = _labels(cfg.samples, ref.classes) if ref.conditional else None
            ts = time.time()
            x = backend.generate(r, ref, s, cfg.samples, y, cfg)
            done(r, s, x, time.time() - ts)
    else:
        _run_pool(cfg, tasks, done)
    results = []
    for r in rows:
        ref = refs[r.dataset]
        per_seed = [got[(r, s)][0] for s in cfg.seed_list]
        walls = [got[(r, s)][1] for s in cfg.seed_list]
        row = {"dataset": r.dataset, "noise": r.noise, "compute": r.compute,
               "sampler": r.sampler, "reference": r.reference, **backend.describe(r, cfg),
               "samples": cfg.samples, "seeds": cfg.seed_list,
               "guidance": cfg.guidance if ref.conditional else None,
               "metrics": summarise(per_seed),
               "sample_seconds": {"mean": float(np.mean(walls)), "total": float(np.sum(walls))}}
        results.append(row)
        m = row["metrics"]
        main = (f"FID {m['fid']['mean']:.3f} ± {m['fid']['half'] or 0:.3f}" if "fid" in m else
                f"KL {m['kl_x']['mean']:.4f}/{m['kl_y']['mean']:.4f}, hist-L2 "
                f"{m['hist_l2']['mean']:.4f}")
        log(f"[evaluate] {r.dataset}: {r.label}: {main} ({np.sum(walls):.1f} s sampling)")
    if bar is not None:
        bar.close()
    _ratios(results)
    report = {"fid_name": FID_NAME, "backend": backend.name,
              "config": {"datasets": list(cfg.datasets), "noise": list(cfg.noise),
                         "compute": list(cfg.compute),
                         "samplers": sorted({r.sampler for r in rows}), "sde": cfg.sde,
                         "samples": cfg.samples, "seeds": cfg.seed_list, "steps": cfg.steps,
                         "guidance": cfg.guidance, "quick": cfg.quick, "threads": cfg.threads,
                         "jobs": cfg.jobs, "analog_read_noise": {
                             "kind": "multiplicative", "sigma": cfg.read_noise,
                             "trunc": 2 * cfg.read_noise, "per": "eval",
                             "source": "Yang et al. 2024 (arXiv 2404.05648) n_std 0.1, "
                                       "n_lim 0.2" if cfg.read_noise == 0.1 else "--read-noise"}},
              "images_clipped_to": [-1.0, 1.0],
              "notes": notes, "datasets": datasets, "rows": results, "goals": _goals(results),
              "seconds": round(time.time() - t0, 1)}
    return report, keep, refs


def _ratios(results: list[dict]) -> None:
    """Ratio of each image row's FID to its reference row's (ratio of means, delta-method 95 %
    interval; see metrics.ratio_interval)."""
    from model.diffusion import metrics as M
    by = {(r["dataset"], r["noise"], r["compute"], r["sampler"]): r for r in results}
    for r in results:
        ref = by.get((r["dataset"], *REFERENCE, r["sampler"]))
        if ref is None or "fid" not in r["metrics"]:
            continue
        a, b = r["metrics"]["fid"]["values"], ref["metrics"]["fid"]["values"]
        r["fid_ratio"] = _jsonable(M.ratio_interval(a, b)) if np.mean(b) > 0 else None


def _goals(results: list[dict]) -> list[dict]:
    out = []
    for r in results:
        if (r["dataset"], r["noise"]) == ("digits", "trng") and \
                r["compute"] in ("hardware", "digital") and \
                r.get("fid_ratio"):
            ratio = r["fid_ratio"]
            n_ok = len(r["seeds"]) >= 4 and r["samples"] >= 2000
            out.append({"goal": f"FID(trng + {r['compute']}) / FID(software + float) <= "
                                f"{GOAL_RATIO} on digits ({r['sampler']}), >= 4 seeds x >= 2000 "
                                f"samples",
                        "ratio": ratio["ratio"], "ci95": [ratio["lo"], ratio["hi"]],
                        "budget_met": n_ok, "met": bool(n_ok and ratio["ratio"] <= GOAL_RATIO)})
    return out


# ------------------------------------------------------------------------------------------------
# Figures and tables
# ------------------------------------------------------------------------------------------------

def _grid(x, n_side: int) -> np.ndarray:
    a = x[:n_side * n_side].reshape(-1, *x.shape[-2:]).numpy()
    h, w = a.shape[1:]
    canvas = np.full((n_side * (h + 1) + 1, n_side * (w + 1) + 1), np.nan)
    for i, img in enumerate(a):
        r, c = divmod(i, n_side)
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = img
    return canvas


def figures(out: Path, report: dict, keep: dict, refs: dict) -> dict[str, bytes]:
    """PNG bytes per file name (written by :func:`write_outputs`)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, bytes] = {}

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()

    rows_by_ds: dict[str, list] = {}
    for row in report["rows"]:
        rows_by_ds.setdefault(row["dataset"], []).append(row)
    for ds, rows in rows_by_ds.items():
        ref = refs[ds]
        n_real = GRID_N if ref.kind == "image" else 4000
        panels = [("real (training set)", ref.train.x[:n_real],
                   None if ref.train.y is None else ref.train.y[:n_real], None)]
        for row in rows:
            r = Row(ds, row["noise"], row["compute"], row["sampler"])
            x, y = keep[r]
            m = row["metrics"]
            if "fid" in m:
                sub = f"FID {m['fid']['mean']:.2f}" + (
                    f" ± {m['fid']['half']:.2f}" if m["fid"]["half"] is not None else "")
            else:
                sub = f"KL {m['kl_x']['mean']:.3f}/{m['kl_y']['mean']:.3f}  " \
                      f"L2 {m['hist_l2']['mean']:.3f}"
            if "accuracy" in m:
                sub += f"  acc {m['accuracy']['mean']:.2f}"
            panels.append((f"{r.label}\n{sub}", x, y, row))
        k = len(panels)
        if ref.kind == "image":
            side = int(math.isqrt(GRID_N))
            fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 3.0), squeeze=False)
            for ax, (title, x, _, _) in zip(axes[0], panels):
                ax.imshow(_grid(x, side), cmap="gray_r", vmin=-1, vmax=1,
                          interpolation="nearest")
                ax.set_title(title, fontsize=7)
                ax.axis("off")
            fig.suptitle(f"{ds}: first {GRID_N} samples of seed {report['config']['seeds'][0]} "
                         f"({FID_NAME}, mean ± 95 % half width over seeds)", fontsize=8)
            files[f"grid_{ds}.png"] = png(fig)
        else:
            lim = 1.5
            fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 2.8), squeeze=False)
            for ax, (title, x, y, _) in zip(axes[0], panels):
                pts = x[:4000].numpy()
                c = None if (y is None or not ref.conditional) else y[:len(pts)].numpy()
                ax.scatter(pts[:, 0], pts[:, 1], s=1, c=c, cmap="viridis" if c is not None
                           else None, alpha=0.5)
                ax.set_xlim(-lim, lim)
                ax.set_ylim(-lim, lim)
                ax.set_aspect("equal")
                ax.set_title(title, fontsize=7)
                ax.tick_params(labelsize=6)
            fig.suptitle(f"{ds}: samples of seed {report['config']['seeds'][0]} (up to 4000)",
                         fontsize=8)
            files[f"scatter_{ds}.png"] = png(fig)
            fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 2.8), squeeze=False)
            for ax, (title, x, _, _) in zip(axes[0], panels):
                pts = x.numpy() if title.startswith("real") else x[:4000].numpy()
                h = np.histogram2d(pts[:, 0], pts[:, 1], bins=100,
                                   range=[[-1, 1], [-1, 1]])[0] / len(pts)
                ax.imshow(h.T, origin="lower", extent=(-1, 1, -1, 1), cmap="magma")
                ax.set_title(title, fontsize=7)
                ax.tick_params(labelsize=6)
            fig.suptitle(f"{ds}: normalised 2-D histograms (100 x 100 bins over [-1, 1]², the "
                         f"hist-L2 grid)", fontsize=8)
            files[f"density_{ds}.png"] = png(fig)
    return files


def _fmt(iv: dict | None, digits: int = 3) -> str:
    if not iv:
        return "–"
    s = f"{iv['mean']:.{digits}f}"
    if iv.get("half") is not None:
        s += f" ± {iv['half']:.{digits}f}"
    return s


def markdown(report: dict, prov: dict) -> str:
    c = report["config"]
    standin = "STAND-IN models: driver test only, " if report["backend"] == "standin" else ""
    lines = [f"# Sample quality ({standin}`make evaluate`)", "",
             f"{c['samples']} samples per seed, seeds {c['seeds']}; values are the mean ± the "
             f"95 % half width over the seeds (Student t). git {prov['git']}, "
             f"{prov['created_utc']}, {report['seconds']} s.", "",
             f"**{FID_NAME}**: the Fréchet distance of the penultimate-layer features of a small "
             "CNN classifier trained in-project on the same data set (fixed seed, saved), "
             "through torchmetrics; comparable only with numbers from the same feature network, "
             "not with Inception-v3 FIDs. Reference set: the model's training split; generated "
             "images clipped to [-1, 1] (the data range) before measuring. "
             "KL (per axis) and hist-L2 follow Yang et al.'s code. Memorisation: share of "
             "samples closer to their nearest training sample than that one is to its own "
             "nearest neighbour; the held-out split's share is the level of no memorisation.", ""]
    for ds, d in report["datasets"].items():
        rows = [r for r in report["rows"] if r["dataset"] == ds]
        lines += [f"## {ds}", ""]
        if d["kind"] == "image":
            fl = d["fid_floor"]
            lines.append(f"Real-vs-real floor (two halves of the training split, "
                         f"{fl['n_half']} each, {fl['n']} random halvings): FID "
                         f"{_fmt(fl)}; held-out split vs training split: "
                         f"{d['fid_test_vs_train']:.3f}. Feature net test accuracy "
                         f"{d['feature_net']['test_accuracy'] or float('nan'):.4f} (its own "
                         f"held-out split). Memorisation of the "
                         f"held-out split: {d['memorisation_heldout']:.3f}.")
            lines += ["", "| noise | compute | sampler | steps | FID | ratio to software/float "
                      "[95 % CI] | memorisation | samples × seeds | s per seed | model |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                m = r["metrics"]
                ra = r.get("fid_ratio")
                rat = "reference" if r["reference"] else (
                    f"{ra['ratio']:.3f} [{ra['lo']:.3f}, {ra['hi']:.3f}]"
                    if ra and ra.get("lo") is not None else
                    (f"{ra['ratio']:.3f}" if ra else "–"))
                lines.append(f"| {r['noise']} | {r['compute']} | {r['sampler']} | "
                             f"{r.get('steps') or '–'} | {_fmt(m['fid'])} | {rat} | "
                             f"{_fmt(m['memorisation'])} | "
                             f"{r['samples']} × {len(r['seeds'])} | "
                             f"{r['sample_seconds']['mean']:.1f} | {r['model']} |")
            lines += ["", f"![{ds} samples](grid_{ds}.png)", ""]
        else:
            fl = d["floor"]
            lines.append(f"Real-vs-real floor (two halves of the training split, "
                         f"{fl['n_half']} each): KL {fl['kl_x']:.4f} / {fl['kl_y']:.4f}, "
                         f"hist-L2 {fl['hist_l2']:.4f}. Memorisation of the held-out split: "
                         f"{d['memorisation_heldout']:.3f}.")
            sdes = sorted({str(r.get("sde")) for r in rows if r.get("sde")})
            if sdes:
                lines.append(f"Score model VP-SDE: {', '.join(sdes)} (reference: Yang et al.'s, "
                             f"β 0.001 → 0.5 doubled at sampling, start N(0, I) off the t = 1 "
                             f"marginal; default: β 0.1 → 20).")
            acc = any("accuracy" in r["metrics"] for r in rows)
            lines += ["", "| noise | compute | sampler | steps | KL x | KL y | hist-L2 |"
                      + (" accuracy |" if acc else "") + " memorisation | samples × seeds | "
                      "s per seed | model |",
                      "|---|---|---|---|---|---|---|" + ("---|" if acc else "")
                      + "---|---|---|---|"]
            for r in rows:
                m = r["metrics"]
                lines.append(f"| {r['noise']} | {r['compute']} | {r['sampler']} | "
                             f"{r.get('steps') or '–'} | {_fmt(m['kl_x'], 4)} | "
                             f"{_fmt(m['kl_y'], 4)} | "
                             f"{_fmt(m['hist_l2'], 4)} |"
                             + (f" {_fmt(m.get('accuracy'))} |" if acc else "")
                             + f" {_fmt(m['memorisation'])} | {r['samples']} × "
                             f"{len(r['seeds'])} | {r['sample_seconds']['mean']:.1f} | "
                             f"{r['model']} |")
            lines += ["", f"![{ds} samples](scatter_{ds}.png) ![{ds} density](density_{ds}.png)",
                      ""]
    if report["goals"]:
        lines += ["## Goals", ""]
        for g in report["goals"]:
            lines.append(f"- {g['goal']}: ratio {g['ratio']:.3f} "
                         f"[{g['ci95'][0] if g['ci95'][0] is None else round(g['ci95'][0], 3)}, "
                         f"{g['ci95'][1] if g['ci95'][1] is None else round(g['ci95'][1], 3)}] "
                         f"→ {'met' if g['met'] else 'NOT met'}"
                         + ("" if g["budget_met"] else " (sample budget below the goal's)"))
        lines.append("")
    return "\n".join(lines)


def write_outputs(out: Path, report: dict, prov: dict, files: dict[str, bytes]) -> list[Path]:
    """Every file atomically; results.json last (its presence means a complete run)."""
    import json

    from model.io import atomic_write_bytes, atomic_write_text
    written = [atomic_write_bytes(out / name, data) for name, data in files.items()]
    written.append(atomic_write_text(out / "results.md", markdown(report, prov)))
    body = {"provenance": prov, **report}
    written.append(atomic_write_text(out / "results.json",
                                     json.dumps(body, indent=2, allow_nan=False) + "\n"))
    return written


def main(argv=None) -> int:
    cfg = parse_args(argv)
    t0 = time.time()
    try:
        report, keep, refs = run(cfg, log=lambda s: print(s, file=sys.stderr))
        files = figures(cfg.out, report, keep, refs)
    except EvaluateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    prov = provenance(cfg.seed, cfg.command)
    written = write_outputs(cfg.out, report, prov, files)
    for g in report["goals"]:
        print(f"[evaluate] goal: {g['goal']}: ratio {g['ratio']:.3f} -> "
              f"{'met' if g['met'] else 'NOT met'}", file=sys.stderr)
    print(f"[evaluate] wrote {len(written)} files under {cfg.out} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
