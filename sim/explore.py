"""``python -m sim.explore``: design-space studies on Dask distributed (``make explore``).

    python -m sim.explore --study studies/example.toml [--scheduler tcp://host:8786]
                          [--workers N] [--serial] [--retry-errors] [--out build/explore]

A study file (``docs/explore.md``; validated by :mod:`model.explore.study`) names the evaluator,
the parameters and their ranges or choices, the fixed settings, the objectives, the budget and
the seed. ``mode = "grid"`` evaluates the full grid, ``mode = "search"`` runs NSGA-II (Optuna)
for ``budget`` distinct points (:mod:`model.explore.space`). Points run on Dask: a
``LocalCluster`` with one single-threaded worker process per core by default, or the existing
scheduler at ``--scheduler`` (``SCHEDULER=tcp://host:8786 make explore``; a SLURM cluster through
dask-jobqueue is started the same way, see the doc). ``--serial`` runs in this process instead.

Each finished point is appended at once to ``build/explore/<study>/results.jsonl``
(:mod:`model.explore.store`): an interrupted study resumes where it stopped, never runs a
finished point again and never writes one twice; a point that raises is recorded with its error
and the study goes on. At the end the driver writes, atomically, ``pareto.png`` (the objectives'
first pair, the non-dominated front highlighted, published operating points marked),
``summary.md`` and ``report.json`` (read by ``make report``).

The ``digits`` evaluator — the point function of the accelerator — builds the hardware-mode
program of the committed digits checkpoint for the point's crossbar (``tile``, ``adc_bits``,
``input_bits``, ``weight_bits``; ``HardwareProgram.from_checkpoint``), optionally perturbs its
weight codes (``weight_noise_rel``), samples ``samples`` images with ``hw_sample`` (``sampler``,
``steps``, noise source ``noise``: software / lfsr / trng / mtj, the MTJ device model pulsed
with ``mtj_t_pulse_ns`` and folded ``fold_k`` times), and returns the FID against the digits
training set (in-project classifier features), the energy per image (the program's counts ×
the node's constant table, ``model.energy.accounting.energy`` with the point's ADC bits, fold
and MTJ pulse) and the MTJ source's energy per bit per area (``model.energy.trng`` FoM).

Bad input (unknown parameter, empty range, budget 0, a scheduler that does not answer, …) prints
one ``error:`` line and exits with 2 before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import socket
import sys
import time
import traceback
import uuid
from pathlib import Path

from model.explore import benchmarks, pareto, space
from model.explore.study import Schema, Setting, Study, load_study, point_key
from model.explore.store import ResultStore

OUT = Path(__file__).resolve().parent.parent / "build" / "explore"
CONNECT_TIMEOUT_S = 5

# ------------------------------------------------------------------------------------------------
# The digits point function
# ------------------------------------------------------------------------------------------------
DIGITS_SETTINGS = (
    Setting("sampler", "choice", "ddpm", choices=("ddpm", "ddim"),
            doc="hardware-mode sampler (ddpm: strided ancestral when steps < 1000)"),
    Setting("steps", "int", 100, 1, 1000, doc="network evaluations per image"),
    Setting("samples", "int", 1000, 16, 100_000, doc="images per point for the FID"),
    Setting("tile", "int", 16, 8, 128, doc="crossbar tile rows = columns (array size)"),
    Setting("adc_bits", "int", 10, 4, 16, doc="ADC bits per tile column"),
    Setting("input_bits", "int", 10, 4, 16, doc="DAC (input code) bits"),
    Setting("weight_bits", "int", 8, 4, 12, doc="signed weight code bits"),
    Setting("weight_noise_rel", "float", 0.0, 0.0, 0.5,
            doc="relative weight error w*(1+n), n~N(0,s^2) cut at 2s, drawn once per point "
                "(conductance programming / frozen read noise, Yang et al.'s form)"),
    Setting("noise", "choice", "mtj", choices=("software", "lfsr", "trng", "mtj"),
            doc="Gaussian noise source of the sampler (trng: the TRNG twin, slow)"),
    Setting("fold_k", "int", 2, 1, 8, doc="raw MTJ bits XOR-folded per output bit"),
    Setting("mtj_t_pulse_ns", "float", 1000.0, 10.0, 1e5,
            doc="stochastic MTJ pulse width (thermal regime); the pulse voltage follows as "
                "the nominal device's V50 at that width"),
    Setting("node_nm", "choice", 45, choices=(45,), doc="energy-table node"),
)
DIGITS_METRICS = {
    "fid": "FID (in-project classifier features) of `samples` images vs the digits train split",
    "energy_per_image_uJ": "energy per image, uJ (hardware-mode counts x per-op energies)",
    "fom_fJ_um2": "energy per bit per area of the MTJ noise source: FoM = E_bit x A_source, "
                  "fJ*um^2 per bit (lower is better; docs/energy.md section 4)",
    "e_bit_pJ": "MTJ energy per conditioned bit, pJ",
    "area_mm2": "crossbar + MTJ array area, mm^2",
    "v_pulse_mV": "stochastic pulse voltage (nominal V50 at the width), mV",
    "noise_mean": "mean of the noise values the run consumed (bias of the source)",
}
DIGITS = Schema("digits", DIGITS_SETTINGS, DIGITS_METRICS,
                doc="hardware-mode DDPM/DDIM of the committed digits net; FID and energy")

SCHEMAS = {"digits": DIGITS, **benchmarks.SCHEMAS}

_CACHE: dict = {}


def _fid_reference():
    if "fid" not in _CACHE:
        from model.diffusion.data import load_dataset
        from model.diffusion.metrics import FIDReference, feature_net
        real = load_dataset("digits", "train").x
        _CACHE["fid"] = (FIDReference(real, feature_net("digits", progress=False)), real.shape)
    return _CACHE["fid"]


def _program(tile: int, adc_bits: int, input_bits: int, weight_bits: int):
    """The hardware program of the committed checkpoint on this crossbar (cached per worker)."""
    from model.diffusion.hardware import HW_SPEC, HardwareProgram, default_checkpoint
    key = ("prog", tile, adc_bits, input_bits, weight_bits)
    if key not in _CACHE:
        progs = [k for k in _CACHE if k[0] == "prog"]
        if len(progs) >= 6:
            del _CACHE[progs[0]]
        spec = dataclasses.replace(HW_SPEC, rows=tile, cols=tile, adc_bits=adc_bits,
                                   input_bits=input_bits, weight_bits=weight_bits,
                                   macs_per_cycle=math.gcd(tile, HW_SPEC.macs_per_cycle))
        _CACHE[key] = HardwareProgram.from_checkpoint(default_checkpoint(), spec=spec)
    return _CACHE[key]


def _perturbed(program, rel: float, seed: int):
    """The program with every weight code w -> clip(rint(w*(1+n))), n ~ N(0, rel^2) with draws
    beyond 2*rel redrawn uniformly in [-2*rel, 2*rel] (Yang et al.'s w*(1+n) with their cut)."""
    import numpy as np
    if rel == 0.0:
        return program
    g = np.random.default_rng([seed, 0x77E1])
    wmax = (1 << (program.spec.weight_bits - 1)) - 1
    ws = []
    for w in program.engine.weights:
        n = g.normal(0.0, rel, w.shape)
        bad = np.abs(n) > 2 * rel
        n[bad] = g.uniform(-2 * rel, 2 * rel, int(bad.sum()))
        ws.append(np.clip(np.rint(w * (1.0 + n)), -wmax, wmax).astype(w.dtype))
    eng = dataclasses.replace(program.engine, weights=ws)
    return dataclasses.replace(program, engine=eng, _fast=None)


class _Tap:
    """A noise source wrapper that keeps the running sum of the values it hands out."""

    def __init__(self, src, frac_bits: int):
        self.src, self.scale, self.total, self.n = src, 2.0 ** -frac_bits, 0.0, 0

    def codes(self, n):
        import numpy as np
        c = np.asarray(self.src.codes(n), dtype=np.int64)
        self.total += float(c.sum()) * self.scale
        self.n += c.size
        return c

    def describe(self):
        return self.src.describe() if hasattr(self.src, "describe") else {}


def evaluate_digits(s: dict, seed: int) -> dict:
    """The accelerator's point function (module docstring): FID and energy metrics of ``s``."""
    import numpy as np
    import torch

    from model.devices.crossbar import PRESETS
    from model.devices.mtj import MTJModel, MTJParams
    from model.diffusion.hardware import hw_sample
    from model.diffusion.noise import make_noise
    from model.energy import accounting as A
    from model.energy import constants as K
    from model.energy import trng as T
    torch.set_num_threads(1)
    program = _program(s["tile"], s["adc_bits"], s["input_bits"], s["weight_bits"])
    t_ns = float(s["mtj_t_pulse_ns"])
    params = MTJParams(t_pulse_ns=t_ns)
    if s["noise"] == "mtj":
        src = make_noise("mtj", seed, params=params, fold=s["fold_k"], gauss_cfg=program.gauss)
    elif s["noise"] == "trng":
        src = make_noise("trng", seed, cond_k=s["fold_k"], gauss_cfg=program.gauss)
    elif s["noise"] == "lfsr":
        src = make_noise("lfsr", seed, gauss_cfg=program.gauss)
    else:
        src = s["noise"]
    if not isinstance(src, str):
        src = _Tap(src, program.gauss.frac_bits)
    prog = _perturbed(program, float(s["weight_noise_rel"]), seed)
    n = s["samples"]
    steps = s["steps"]
    r = hw_sample(prog, src, n, steps, s["sampler"], seed)
    fid_ref, shape = _fid_reference()
    fid = fid_ref.score(r.images.reshape(n, *shape[1:]))

    consts = K.table(s["node_nm"])
    v50 = float(np.mean(MTJModel(params).v_at_prob_mV(0.5)))
    cfg = T.MTJTrngConfig(v_pulse_mV=v50, t_pulse_ns=t_ns, fold_k=s["fold_k"])
    sp = program.spec
    levels = PRESETS[sp.tech].levels
    br = A.energy(r.counts, consts, mode="analog", weight_bits=sp.weight_bits,
                  adc_bits=sp.adc_bits, levels=levels, cbd_bits=program.gauss.cbd_bits,
                  fold_k=s["fold_k"], trng_cfg=cfg)
    bit = T.mtj_bit_energy(consts, cfg)
    src_area = T.mtj_source_area_um2(consts, cfg.rows)["total_um2"]
    t = program.engine.cfg.tile
    blocks = sum(math.ceil(d.in_dim / t.rows) * math.ceil(d.out_dim / t.cols)
                 for d in program.engine.layers)
    area = A.crossbar_area_um2(consts, blocks, t.rows, t.cols, sp.weight_bits, levels)
    area_mtj = A.mtj_array_area_um2(consts)
    return {"fid": float(fid),
            "energy_per_image_uJ": br.total_J * 1e6,
            "fom_fJ_um2": T.fom(bit["bit_J"], src_area) * 1e15,
            "e_bit_pJ": bit["bit_J"] * 1e12,
            "area_mm2": (area["total_um2"] + area_mtj["total_um2"]) * 1e-6,
            "v_pulse_mV": v50,
            "noise_mean": (src.total / src.n) if isinstance(src, _Tap) and src.n else None}


EVALUATORS = {"digits": evaluate_digits, **benchmarks.BENCHMARKS}


# ------------------------------------------------------------------------------------------------
# Running points
# ------------------------------------------------------------------------------------------------
def run_point(task: dict) -> dict:
    """Evaluate one point and return its record; never raises for the point's own errors (they
    are recorded with their message and the last traceback line)."""
    t0 = time.perf_counter()
    rec = {"key": task["key"], "params": task["params"], "settings": task["settings"],
           "seed": task["seed"], "status": "ok", "metrics": None, "error": None}
    try:
        m = EVALUATORS[task["evaluator"]](dict(task["settings"]), task["seed"])
        bad = [k for k, v in m.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise ValueError(f"non-finite metrics {bad}")
        rec["metrics"] = m
    except Exception as e:                                      # noqa: BLE001 (recorded)
        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        rec.update(status="error", error=f"{type(e).__name__}: {e}{where}")
    rec["wall_s"] = round(time.perf_counter() - t0, 3)
    rec["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    rec["finished_utc"] = _utc()
    return rec


class SerialExecutor:
    """Runs the points one after another in this process."""

    name = "serial"
    workers = 1
    desc = "serial, 1 process"

    def run(self, tasks):
        for t in tasks:
            yield run_point(t)

    def close(self):
        pass


class DaskExecutor:
    """Runs the points on a Dask ``Client`` and yields each record as its point finishes."""

    name = "dask"

    def __init__(self, client, cluster=None, where: str | None = None):
        self.client, self.cluster = client, cluster
        self.where = where or ("Dask LocalCluster" if cluster is not None else
                               f"Dask scheduler {client.scheduler.address}")

    @property
    def desc(self) -> str:
        return f"{self.where}, {self.workers} worker(s)"

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def run(self, tasks):
        from dask.distributed import as_completed
        from distributed import KilledWorker
        futs = {}
        for t in tasks:
            # a fresh task key per submission: a point cancelled by a stopped run (or run by
            # another study on the same scheduler) never shadows this one
            f = self.client.submit(run_point, t, pure=False,
                                   key=f"explore-{t['key']}-{uuid.uuid4().hex[:8]}")
            futs[f] = t
        try:
            for f in as_completed(list(futs)):
                # run_point records the point's own exceptions; KilledWorker means the point
                # took down every worker it was tried on (segfault, out of memory): recorded as
                # the point's error. Anything else (scheduler lost, cancelled) stops the study
                # with the finished points kept, and the next run resumes.
                try:
                    rec = f.result()
                except KilledWorker as e:
                    t = futs[f]
                    rec = {"key": t["key"], "params": t["params"], "settings": t["settings"],
                           "seed": t["seed"], "status": "error", "metrics": None,
                           "error": f"KilledWorker: {e} (the point killed its workers)",
                           "wall_s": None, "worker": None, "finished_utc": _utc()}
                yield rec
        finally:
            for f in futs:
                if not f.done():
                    f.cancel()

    def close(self):
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


class BadInput(ValueError):
    pass


def connect(scheduler: str | None = None, workers: int | None = None) -> DaskExecutor:
    """A Dask executor: the scheduler at ``scheduler`` (``tcp://host:port`` or ``host:port``), or
    a new ``LocalCluster`` of ``workers`` single-threaded processes (default: every core)."""
    import logging

    from dask.distributed import Client, LocalCluster
    if scheduler:
        addr = scheduler if "://" in scheduler else f"tcp://{scheduler}"
        try:
            client = Client(addr, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as e:
            raise BadInput(f"--scheduler = {scheduler!r}: unreachable within "
                           f"{CONNECT_TIMEOUT_S} s ({type(e).__name__}); allowed the address "
                           f"of a running Dask scheduler, e.g. tcp://host:8786") from None
        return DaskExecutor(client, where=f"Dask scheduler {addr}")
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return DaskExecutor(Client(cluster), cluster)


class Interrupted(RuntimeError):
    """Raised by :func:`run_study` after ``stop_after`` new points (tests: a stopped client)."""


def run_study(study: Study, executor, out: Path, *, retry_errors: bool = False,
              stop_after: int | None = None, log=None) -> dict:
    """Run (or resume) ``study`` on ``executor``, appending to ``out/results.jsonl``.

    Returns ``{"records": main records in grid/ask order, "operating_points": [(op, record)],
    "new": points run now, "reused": points found in the table, "seconds": wall time}``.
    """
    log = log or (lambda m: None)
    store = ResultStore(out / "results.jsonl", retry_errors=retry_errors)
    if store.dropped_torn_line:
        log("dropped a torn last line of results.jsonl (that point runs again)")
    stats = {"new": 0, "reused": 0, "eval_s": 0.0}
    t0 = time.perf_counter()

    def evaluate_batch(points: list) -> list:
        keys, tasks, queued = [], [], set()
        for p in points:
            s = study.settings(p)
            k = point_key(study.evaluator, s, study.seed)
            keys.append(k)
            if store.finished(k):
                stats["reused"] += 1
            elif k not in queued:
                queued.add(k)
                tasks.append({"key": k, "params": p, "settings": s, "seed": study.seed,
                              "evaluator": study.evaluator})
        for rec in executor.run(tasks):
            store.append(rec)
            stats["new"] += 1
            stats["eval_s"] += rec.get("wall_s") or 0.0
            m = rec["metrics"] or {}
            shown = ", ".join(f"{o}={m[o]:.4g}" for o in study.objective_names
                              if isinstance(m.get(o), (int, float)))
            log(f"point {len(store)}: {rec['status']} {shown or rec['error']}")
            if stop_after is not None and stats["new"] >= stop_after:
                raise Interrupted(f"stopped after {stats['new']} new points")
        return [store.get(k) for k in keys]

    started = _utc()
    try:
        if study.mode == "grid":
            records = space.run_grid(study, evaluate_batch)
        else:
            records = space.run_search(study, evaluate_batch, log=log)
        ops = []
        if study.operating_points:
            recs = evaluate_batch([op.settings for op in study.operating_points])
            ops = list(zip(study.operating_points, recs))
    finally:
        # One line per run that evaluated something (also an interrupted one): the speed
        # figures of the summary come from these, so a rerun that finds everything done
        # keeps them.
        if stats["new"]:
            try:
                desc, nw = getattr(executor, "desc", executor.name), executor.workers
            except Exception:                                   # noqa: BLE001 (scheduler gone)
                desc, nw = executor.name, None
            _append_run(out, {"started_utc": started, "seconds": round(
                time.perf_counter() - t0, 3), "new": stats["new"], "reused": stats["reused"],
                "worker_seconds": round(stats["eval_s"], 3), "executor": desc, "workers": nw})
    return {"records": records, "operating_points": ops, "new": stats["new"],
            "reused": stats["reused"], "eval_s": stats["eval_s"],
            "seconds": time.perf_counter() - t0, "store": store}


def _utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _append_run(out: Path, entry: dict) -> None:
    import json
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "runs.jsonl", "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def speed(out: Path) -> dict:
    """Points per minute over every run of the study that evaluated points (``runs.jsonl``)."""
    import json
    p = out / "runs.jsonl"
    runs = []
    if p.is_file():
        for line in p.read_text().splitlines():
            try:
                runs.append(json.loads(line))
            except ValueError:
                continue                        # a torn line of a killed run
    new = sum(r.get("new", 0) for r in runs)
    secs = sum(r.get("seconds", 0.0) for r in runs)
    wsecs = sum(r.get("worker_seconds", 0.0) for r in runs)
    return {"runs": runs, "points_evaluated": new, "seconds": secs,
            "points_per_minute": new / (secs / 60.0) if new and secs > 0 else None,
            "worker_seconds_per_point": wsecs / new if new else None}


# ------------------------------------------------------------------------------------------------
# Outputs: front, plot, summary, report
# ------------------------------------------------------------------------------------------------
def front(study: Study, records: list) -> tuple[list, list, float]:
    """(ok records with finite objectives, indices of the non-dominated ones, hypervolume)."""
    ok = [r for r in records if space.objective_values(study, r) is not None]
    vals = [space.objective_values(study, r) for r in ok]
    if not ok:
        return ok, [], 0.0
    idx = [int(i) for i in pareto.non_dominated(vals, study.senses)]
    hv = pareto.hypervolume(vals, study.senses, study.reference)
    return ok, idx, hv


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _log_axis(ax, which: str, values) -> None:
    """Log scale with plain tick labels when every value is positive and they span a decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    pos = [v for v in values if v > 0]
    if pos and len(pos) == len(values) and max(pos) / min(pos) > 10:
        axis = ax.xaxis if which == "x" else ax.yaxis
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def plot(study: Study, ok: list, idx: list, ops: list, path: Path, compare=None) -> None:
    """Pareto plot of the first two objectives: y the first (quality), x the second (energy);
    each axis logarithmic when its values are positive and span a decade."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from model.io import atomic_savefig
    names = study.objective_names
    if len(names) == 1:
        names = names * 2
    ox, oy = names[1], names[0]
    steps = "steps-post" if study.senses[:2] == ["min", "min"] else "default"
    fig, ax = plt.subplots(figsize=(10.0, 5.0))
    xs = [r["metrics"][ox] for r in ok]
    ys = [r["metrics"][oy] for r in ok]
    allx, ally = list(xs), list(ys)
    ax.scatter(xs, ys, s=14, c="0.6", label=f"{study.name}: points ({len(ok)} ok)", zorder=2)
    for j, c in enumerate(compare or []):
        cx = [r["metrics"][ox] for r in c["ok"]]
        cy = [r["metrics"][oy] for r in c["ok"]]
        allx += cx
        ally += cy
        col = f"C{j}"
        ax.scatter(cx, cy, s=18, marker="x+1"[j % 3], c=col, alpha=0.6,
                   label=f"{c['name']} ({len(cx)} points)", zorder=2)
        cf = sorted((cx[i], cy[i]) for i in c["idx"])
        if cf:
            ax.plot([p[0] for p in cf], [p[1] for p in cf], "--", c=col, lw=1.0, alpha=0.8,
                    drawstyle=steps, label=f"{c['name']} front", zorder=2)
    f = sorted((xs[i], ys[i]) for i in idx)
    if f:
        ax.plot([p[0] for p in f], [p[1] for p in f], "-o", c="tab:red", ms=5, lw=1.4,
                drawstyle=steps, label=f"{study.name}: non-dominated ({len(f)})", zorder=3)
    markers = ["*", "D", "P", "s", "^", "v"]
    for i, (op, rec) in enumerate(ops):
        if rec is None or rec.get("status") != "ok":
            continue
        m = rec["metrics"]
        # open markers of decreasing size: coinciding operating points stay visible
        ax.scatter([m[ox]], [m[oy]], marker=markers[i % len(markers)], s=190 - 45 * (i % 4),
                   zorder=4, facecolors="none", edgecolors=f"C{(i + 3) % 10}", linewidths=1.6,
                   label=op.label)
    _log_axis(ax, "x", allx)
    _log_axis(ax, "y", ally)
    ax.set_xlabel(ox)
    ax.set_ylabel(oy)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(f"study {study.name}: {study.mode}, {len(ok)} points, seed {study.seed}",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def _compare(study: Study, out_root: Path, name: str) -> dict:
    """The front and hypervolume of the study ``name`` (its last run's points, from its
    report.json ``keys``) measured with this study's objectives, reference and seed."""
    import json
    p = out_root / name / "results.jsonl"
    if not p.is_file():
        return {"name": name, "missing": str(p)}
    keys = None
    rep = out_root / name / "report.json"
    if rep.is_file():
        try:
            keys = set(json.loads(rep.read_text()).get("keys") or []) or None
        except ValueError:
            keys = None
    recs = [r for r in ResultStore(p).records() if r.get("seed") == study.seed
            and (keys is None or r["key"] in keys)]
    ok, idx, hv = front(study, recs)
    return {"name": name, "ok": ok, "idx": idx, "hypervolume": hv, "points": len(recs),
            "path": str(p)}


def summarise(study: Study, result: dict, out: Path, out_root: Path, command: str,
              executor_desc: str) -> dict:
    """Write pareto.png, summary.md and report.json (atomically); return the report."""
    from model.io import atomic_write_json, atomic_write_text
    from sim.meta import provenance
    records = result["records"]
    ok, idx, hv = front(study, records)
    errors = [r for r in records if r.get("status") != "ok"]
    cmps = [_compare(study, out_root, n) for n in study.compare_with]
    plot(study, ok, idx, result["operating_points"], out / "pareto.png",
         compare=[c for c in cmps if "ok" in c])
    names = study.objective_names
    pnames = [p.name for p in study.params]
    front_rows = sorted((ok[i] for i in idx), key=lambda r: [r["metrics"][n] for n in names])
    wall = result["seconds"]
    sp = speed(out)
    ppm = sp["points_per_minute"]
    report = {
        "study": study.to_dict(),
        "points": len(records), "points_ok": len(ok), "points_error": len(errors),
        "points_new_this_run": result["new"], "points_reused": result["reused"],
        "seconds_this_run": round(wall, 2),
        "points_per_minute": ppm,
        "points_per_minute_definition": "points evaluated / wall minutes, summed over the "
                                        "runs of this study that evaluated points (runs.jsonl: "
                                        "executor, workers, seconds of each)",
        "worker_seconds_per_point": sp["worker_seconds_per_point"],
        "runs": sp["runs"],
        "hypervolume": hv,
        "hypervolume_reference": dict(zip(names, study.reference)),
        "front": [{"key": r["key"], "params": r["params"],
                   "objectives": {n: r["metrics"][n] for n in names}} for r in front_rows],
        "operating_points": [{"label": op.label, "source": op.source, "settings": op.settings,
                              "status": rec["status"] if rec else None,
                              "metrics": rec.get("metrics") if rec else None,
                              "error": rec.get("error") if rec else None}
                             for op, rec in result["operating_points"]],
        "errors": [{"key": r["key"], "params": r["params"], "error": r["error"]}
                   for r in errors],
        "keys": [r["key"] for r in records],
        "results": "results.jsonl", "plot": "pareto.png", "summary": "summary.md",
        "provenance": provenance(study.seed, command),
    }
    if cmps:
        report["compare_with"] = [
            {k: v for k, v in c.items() if k not in ("ok", "idx")}
            | ({"front_size": len(c["idx"]), "hypervolume_difference": hv - c["hypervolume"]}
               if "hypervolume" in c else {}) for c in cmps]
        report["hypervolume_compared"] = {c["name"]: c["hypervolume"] for c in cmps
                                          if "hypervolume" in c}

    md = [f"# Study `{study.name}` ({study.mode}, evaluator `{study.evaluator}`)", "",
          f"Command: `{command}`; seed {study.seed}; budget {study.budget}; "
          f"{executor_desc}.", "",
          f"Points: {len(records)} ({len(ok)} ok, {len(errors)} failed). This run evaluated "
          f"{result['new']} and answered {result['reused']} asks from `results.jsonl` "
          f"(finished earlier or asked twice) in {wall:.1f} s.", "",
          ("Speed: " + (f"{ppm:.2f} points/min, {sp['worker_seconds_per_point']:.1f} worker-s "
                        f"per point over {len(sp['runs'])} run(s) ("
                        + "; ".join(f"{r['new']} points in {r['seconds']:.0f} s on "
                                    f"{r['executor']}" for r in sp["runs"]) + ")."
                        if ppm else "no points evaluated yet.")), "",
          "Parameters: " + "; ".join(f"`{p.name}` {p.describe()}" for p in study.params) + ".",
          "",
          "Fixed: " + (", ".join(f"`{k}` = {v!r}" for k, v in study.fixed.items()) or "none")
          + ".", "",
          "Objectives: " + ", ".join(f"{o.name} ({o.sense})" for o in study.objectives)
          + f"; hypervolume {hv:.6g} against the reference "
          + ", ".join(f"{n} = {v:g}" for n, v in zip(names, study.reference)) + ".", ""]
    for c in cmps:
        if "hypervolume" in c:
            verdict = ">=" if hv >= c["hypervolume"] else "<"
            md += [f"Against study `{c['name']}` ({c['points']} points, same objectives, "
                   f"reference and seed): hypervolume {hv:.6g} {verdict} {c['hypervolume']:.6g} "
                   f"(its front: {len(c['idx'])} points).", ""]
        else:
            md += [f"Study `{c['name']}` has no table yet ({c['missing']}): run it to compare.",
                   ""]
    md += [f"## Non-dominated points ({len(front_rows)})", "",
           "| " + " | ".join(names + pnames) + " |",
           "|" + "---|" * (len(names) + len(pnames))]
    for r in front_rows:
        md.append("| " + " | ".join([_fmt(r["metrics"][n]) for n in names]
                                    + [_fmt(r["params"].get(p)) for p in pnames]) + " |")
    if result["operating_points"]:
        md += ["", "## Published operating points (evaluated with the study's other settings)",
               "", "| label | settings | " + " | ".join(names) + " | source |",
               "|---|---|" + "---|" * len(names) + "---|"]
        for op, rec in result["operating_points"]:
            vals = [_fmt(rec["metrics"][n]) if rec and rec.get("status") == "ok" else "failed"
                    for n in names]
            sets = ", ".join(f"{k}={v}" for k, v in op.settings.items())
            md.append(f"| {op.label} | {sets} | " + " | ".join(vals) + f" | {op.source} |")
    if errors:
        md += ["", f"## Failed points ({len(errors)})", ""]
        md += [f"- `{r['key']}` {r['params']}: {r['error']}" for r in errors[:50]]
    md += ["", "![Pareto plot](pareto.png)", ""]
    atomic_write_text(out / "summary.md", "\n".join(md))
    atomic_write_json(out / "report.json", report)
    return report


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"{self.prog}: {message}")


def _parse(argv):
    p = _Parser(prog="python -m sim.explore", description=__doc__.split("\n")[0])
    p.add_argument("--study", required=True, help="study TOML file (studies/example.toml)")
    p.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler (tcp://host:8786); default: a "
                        "LocalCluster on this machine's cores")
    p.add_argument("--workers", type=int, default=None,
                   help="LocalCluster worker processes (default: every core)")
    p.add_argument("--serial", action="store_true", help="run the points in this process")
    p.add_argument("--retry-errors", action="store_true",
                   help="run the recorded failed points again")
    p.add_argument("--out", default=None, help="root of the study folders (build/explore)")
    a = p.parse_args(argv)
    if a.workers is not None and not 1 <= a.workers <= 4096:
        raise BadInput(f"--workers = {a.workers}: out of range, allowed integer [1, 4096]")
    if a.serial and a.scheduler:
        raise BadInput("--serial and --scheduler exclude each other")
    return a


def main(argv=None) -> int:
    """Command line; returns the exit status (2: bad input, nothing written)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = "python -m sim.explore " + " ".join(argv)

    def say(m):
        print(f"[explore] {m}", file=sys.stderr, flush=True)

    executor = None
    try:
        a = _parse(argv)
        try:
            study = load_study(a.study, SCHEMAS)
        except ValueError as e:
            raise BadInput(str(e)) from None
        out_root = Path(a.out) if a.out else OUT
        out = out_root / study.name
        if a.serial:
            executor = SerialExecutor()
        else:
            executor = connect(a.scheduler, a.workers)
        desc = executor.desc
        say(f"study {study.name}: {study.mode}, budget {study.budget}, {desc} -> {out}")
        result = run_study(study, executor, out, retry_errors=a.retry_errors, log=say)
        report = summarise(study, result, out, out_root, command, desc)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished points are kept in results.jsonl (run the same "
              "command to resume)", file=sys.stderr)
        return 130
    finally:
        if executor is not None:
            executor.close()
    print(f"{report['points']} points ({report['points_error']} failed), "
          f"front {len(report['front'])}, hypervolume {report['hypervolume']:.6g}")
    for f in ("results.jsonl", "pareto.png", "summary.md", "report.json"):
        print(f"  {out / f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
