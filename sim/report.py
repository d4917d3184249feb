"""`make report`: the energy model's figures beside the papers' -> build/report/.

``python -m sim.report [--out build/report] [--node 45] [--inputs build]`` writes
``report.json``, ``report.md`` and a self-contained ``report.html`` (``docs/energy.md`` §7):

- the fidelity table: each seed paper's headline number, spindiff's figure, the method and the
  constants' sources (rows from ``fidelity_rows()`` of ``model.energy.accounting``, ``trng`` and
  ``solver``), rows that use a ``fitted`` constant flagged;
- the energy breakdown, the figure of merit against the baselines, the sensitivity sweeps and
  the analog-vs-digital solver comparison: the modules' ``figures()`` (every one an object
  ``{value, unit, source}`` or ``{value, unit, definition}``, namespaced ``<module>.<key>``; a
  key that already starts with ``<module>.`` is kept as it is) and their ``plots(outdir)`` PNGs,
  copied beside the Markdown and inlined (base64) in the HTML (a plot whose name holds
  "sensitivity" or "sweep" goes to the sensitivity section);
- the key numbers of the latest ``make bench``, ``make synth``, sampler (``make evaluate``),
  ``make integrator-sweep``, ``make sim``, ``make validate`` and ``make explore`` outputs found
  under ``--inputs``;
- every constant of ``model.energy.constants.table(node_nm)`` and ``model.energy.analog_constants``
  with value, unit, source and status (assumed and fitted flagged).

An energy module that cannot be imported yet leaves its section marked "not available" (and
``sections`` in the JSON says why). Bad input — an unknown ``--node``, a constant or
configuration the model rejects (``ValueError``), a malformed figure, fidelity row or plot — is
one error line on stderr, exit code 2, and nothing is written: every figure, table and plot is
produced (plots into a temporary folder) before the first file is written, and each file is
written atomically (``model.io``), ``report.json`` last.
"""

from __future__ import annotations

import argparse
import base64
import html
import importlib
import inspect
import json
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sim.meta import ROOT, provenance

OUT = ROOT / "build" / "report"
INPUTS = ROOT / "build"
DEFAULT_NODE_NM = 45

#: The energy modules that report figures, fidelity rows and plots, in report order, with the
#: heading of the section their figures and plots go to.
ENERGY_MODULES = {
    "accounting": ("model.energy.accounting", "Energy breakdown"),
    "trng": ("model.energy.trng", "Energy per bit per area against the baselines"),
    "solver": ("model.energy.solver", "Analog ODE solver against a digital solver"),
}
#: Modules of constants: the node table and the analog (crossbar, ADC/DAC, integrator) table.
CONSTANT_MODULES = {
    "constants": "model.energy.constants",
    "analog_constants": "model.energy.analog_constants",
}
#: A plot whose file name holds one of these goes to the sensitivity section.
SENSITIVITY_WORDS = ("sensitivity", "sweep")
FIDELITY_KEYS = ("claim", "paper", "spindiff", "method", "sources")
#: A figure or fidelity row that names a ``fitted`` constant, or says FITTED (in capitals) in
#: its text, is flagged as resting on a value chosen to reproduce a paper's figure.
FITTED_MARK = "FITTED"
STATUSES_FLAGGED = ("assumed", "fitted")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ReportError(ValueError):
    """Malformed output of an energy module (a figure, a fidelity row, a plot)."""


# ------------------------------------------------------------------------------------------------
# Collecting: energy modules, constants, input files
# ------------------------------------------------------------------------------------------------

def _call(fn, **available):
    """Call ``fn`` with those of ``available`` that its signature names (all when it takes
    ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(**available)
    return fn(**{k: v for k, v in available.items() if k in params})


def _import(name: str):
    """The module, or ``(None, reason)`` when it cannot be imported (not written yet, or a
    dependency it needs is missing)."""
    try:
        return importlib.import_module(name), None
    except ImportError as e:
        return None, f"{name} not importable ({e})"


def validate_figure(key: str, fig) -> dict:
    """Check one figure: a dict with a finite number ``value``, a non-empty ``unit`` and a
    non-empty ``source`` or ``definition``. Returns it as a plain dict; raises
    :class:`ReportError` naming the figure otherwise."""
    if not isinstance(fig, dict):
        raise ReportError(f"figure {key!r}: expected a dict with value, unit and source or "
                          f"definition, got {type(fig).__name__}")
    v = fig.get("value")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ReportError(f"figure {key!r}: 'value' = {v!r} must be a finite number")
    if not isinstance(fig.get("unit"), str) or not fig["unit"].strip():
        raise ReportError(f"figure {key!r}: 'unit' = {fig.get('unit')!r} must be a non-empty "
                          f"string (use '1' for a pure number)")
    if not any(isinstance(fig.get(k), str) and fig[k].strip() for k in ("source", "definition")):
        raise ReportError(f"figure {key!r}: needs a non-empty 'source' or 'definition' "
                          f"(keys: {sorted(fig)})")
    return {k: (float(v) if k == "value" and isinstance(v, float) else fig[k]) for k in fig}


def validate_fidelity_row(module: str, i: int, row) -> dict:
    """Check one fidelity row (keys ``FIDELITY_KEYS``); raises :class:`ReportError`."""
    if not isinstance(row, dict):
        raise ReportError(f"{module}.fidelity_rows()[{i}]: expected a dict, got "
                          f"{type(row).__name__}")
    missing = [k for k in FIDELITY_KEYS if k not in row]
    if missing:
        raise ReportError(f"{module}.fidelity_rows()[{i}] ({row.get('claim', '?')!r}): missing "
                          f"{missing}; required {list(FIDELITY_KEYS)}")
    return dict(row)


def _plot_name(module: str, path: Path) -> str:
    name = path.name
    return name if name.startswith((f"{module}_", f"{module}-")) else f"{module}_{name}"


@dataclass
class Collected:
    """Everything the report shows, produced before anything is written."""

    sections: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    figure_module: dict = field(default_factory=dict)
    fidelity: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)      # file name -> (module, section, bytes)
    inputs: dict = field(default_factory=dict)


def _constant_record(key: str, c, table: str) -> dict:
    rec = {}
    for a in ("value", "unit", "source", "status"):
        if not hasattr(c, a):
            raise ReportError(f"constant {key!r} ({table}): no {a!r} attribute")
        rec[a] = getattr(c, a)
    rec["note"] = getattr(c, "note", "") or ""
    rec["table"] = table
    return rec


def _constants_of(mod, node_nm: int) -> dict:
    """Constants of a module: ``table(node_nm)`` or ``all_constants()`` when it has one, else
    its module-level ``Constant``-like objects and dicts of them."""
    for fname in ("table", "all_constants"):
        fn = getattr(mod, fname, None)
        if callable(fn):
            return dict(_call(fn, node_nm=node_nm))
    like = lambda o: all(hasattr(o, a) for a in ("value", "unit", "source", "status"))  # noqa: E731
    out = {}
    for name, obj in vars(mod).items():
        if name.startswith("_") or isinstance(obj, type):
            continue
        if like(obj):
            out[name] = obj
        elif isinstance(obj, dict) and obj and all(like(v) for v in obj.values()):
            out.update(obj)
    return out


def collect_constants(col: Collected, node_nm: int, modules=None) -> None:
    mods = CONSTANT_MODULES if modules is None else modules
    for table, spec in mods.items():
        mod, why = _import(spec) if isinstance(spec, str) else (spec, None)
        if mod is None:
            col.sections[f"constants.{table}"] = {"available": False, "reason": why}
            continue
        consts = _constants_of(mod, node_nm)
        if not consts:
            col.sections[f"constants.{table}"] = {
                "available": False, "reason": f"{table} has no table() and no constants yet"}
            continue
        for key, c in consts.items():
            name = key if key not in col.constants else f"{table}.{key}"
            col.constants[name] = _constant_record(name, c, table)
        col.sections[f"constants.{table}"] = {"available": True, "count": len(consts)}


def _fitted_keys_in(text, fitted: set[str]) -> list[str]:
    """The fitted constants named in a source text (or a list of them)."""
    items = text if isinstance(text, (list, tuple)) else [text]
    words = {w for item in items for w in re.findall(r"[A-Za-z0-9_.]+", str(item))}
    return sorted(fitted & words)


def collect_energy(col: Collected, node_nm: int, plot_dir: Path, modules=None) -> None:
    """Figures, fidelity rows and plots of each energy module that imports."""
    mods = ENERGY_MODULES if modules is None else modules
    fitted = {k for k, c in col.constants.items() if c["status"] == "fitted"}
    for name, (spec, heading) in mods.items():
        mod, why = _import(spec) if isinstance(spec, str) else (spec, None)
        sec = {"available": mod is not None, "heading": heading}
        if mod is None:
            sec["reason"] = why
            col.sections[f"energy.{name}"] = sec
            continue
        parts = []
        if hasattr(mod, "figures"):
            figs = _call(mod.figures, node_nm=node_nm)
            if not isinstance(figs, dict):
                raise ReportError(f"{name}.figures(): expected a dict, got {type(figs).__name__}")
            for k, f in figs.items():
                key = k if str(k).startswith(f"{name}.") else f"{name}.{k}"
                f = validate_figure(key, f)
                text = " ".join(str(f.get(k, "")) for k in ("source", "definition"))
                used = _fitted_keys_in(text, fitted)
                if used:
                    f["fitted_constants"] = used
                if used or FITTED_MARK in text:
                    f["fitted"] = True
                col.figures[key] = f
                col.figure_module[key] = name
            parts.append("figures")
        if hasattr(mod, "fidelity_rows"):
            rows = _call(mod.fidelity_rows, node_nm=node_nm)
            for i, r in enumerate(rows):
                r = validate_fidelity_row(name, i, r)
                r["module"] = name
                used = _fitted_keys_in(r["sources"], fitted) + _fitted_keys_in(r["method"],
                                                                                fitted)
                r["fitted_constants"] = sorted(set(used))
                r["fitted"] = bool(used) or any(FITTED_MARK in fmt(r[k]) for k in FIDELITY_KEYS)
                col.fidelity.append(r)
            parts.append("fidelity_rows")
        if hasattr(mod, "plots"):
            d = plot_dir / name
            d.mkdir(parents=True, exist_ok=True)
            paths = _call(mod.plots, outdir=d, node_nm=node_nm)
            for p in paths:
                p = Path(p)
                if not p.is_file() or p.read_bytes()[:8] != PNG_MAGIC:
                    raise ReportError(f"{name}.plots(): {p} is not a PNG file")
                fname = _plot_name(name, p)
                if fname in col.images:
                    raise ReportError(f"{name}.plots(): two plots named {fname!r}")
                where = ("sensitivity" if any(w in p.name.lower() for w in SENSITIVITY_WORDS)
                         else name)
                col.images[fname] = (name, where, p.read_bytes())
            parts.append("plots")
        sec["provides"] = parts
        col.sections[f"energy.{name}"] = sec


def _read_json(path: Path):
    try:
        return json.loads(path.read_text()), None
    except (OSError, ValueError) as e:
        return None, f"unreadable ({type(e).__name__}: {str(e)[:120]})"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def flatten_numbers(d, prefix: str = "", depth: int = 3, limit: int = 200) -> dict:
    """Dotted keys -> numbers / booleans of a nested dict (lists and strings left out), to
    ``depth`` levels, at most ``limit`` entries."""
    out: dict = {}

    def walk(x, pre, lvl):
        for k, v in x.items():
            if len(out) >= limit:
                return
            key = f"{pre}.{k}" if pre else str(k)
            if isinstance(v, dict):
                if lvl < depth:
                    walk(v, key, lvl + 1)
            elif isinstance(v, bool) or (isinstance(v, (int, float)) and
                                         (not isinstance(v, float) or math.isfinite(v))):
                out[key] = v
    walk(d, prefix, 1)
    return out


PROVENANCE_KEYS = ("package", "version", "schema", "git", "tools", "seed", "command",
                   "created_utc")


def _origin(path: Path, root: Path, data: dict) -> dict:
    prov = {}
    if isinstance(data, dict):       # top level, "provenance", or "meta": {"provenance"} (make sim)
        prov = data.get("provenance") or (data.get("meta") or {}).get("provenance") or data
        prov = prov if isinstance(prov, dict) else {}
    return {"path": _rel(path, root), "git": prov.get("git"), "command": prov.get("command"),
            "created_utc": prov.get("created_utc")}


def _bench(root: Path, data: dict) -> dict:
    body = {k: v for k, v in data.items() if k not in PROVENANCE_KEYS}
    return {"figures": flatten_numbers(body)}


def _synth(root: Path, files: list[Path]) -> dict:
    rows, origins = [], []
    for p in files:
        r, err = _read_json(p)
        if r is None or not isinstance(r, dict):
            origins.append({"path": _rel(p, root), "error": err or "not a JSON object"})
            continue
        origins.append(_origin(p, root, r))
        row = {"file": _rel(p, root), "target": r.get("target"),
               "design": r.get("design_name") or r.get("design"), "device": r.get("device"),
               "status": r.get("status")}
        for k in ("luts", "ffs", "brams", "dsps"):
            row[k] = r.get(k)
            row[f"{k}_available"] = r.get(f"{k}_available")
        for k in ("fmax_mhz", "constraint_mhz", "timing_met", "fits"):
            row[k] = r.get(k)
        rows.append(row)
    return {"rows": rows, "files": origins}


def _metric_summary(m: dict) -> dict:
    out = {}
    for k, v in m.items():
        if isinstance(v, dict) and "mean" in v:
            out[k] = {"mean": v["mean"], "half95": v.get("half"), "n": v.get("n")}
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = {"mean": v}
    return out


def _sampler(root: Path, data: dict) -> dict:
    rows = []
    for r in data.get("rows", []):
        ratio = r.get("fid_ratio") or None
        rows.append({
            "dataset": r.get("dataset"), "noise": r.get("noise"), "compute": r.get("compute"),
            "sampler": r.get("sampler"), "steps": r.get("steps"),
            "reference": bool(r.get("reference")),
            "samples": r.get("samples"), "seeds": len(r.get("seeds") or []),
            "metrics": _metric_summary(r.get("metrics", {})),
            "fid_ratio": None if not ratio else {k: ratio.get(k) for k in ("ratio", "lo", "hi")},
            "seconds_per_seed": (r.get("sample_seconds") or {}).get("mean"),
        })
    return {"backend": data.get("backend"), "rows": rows, "goals": data.get("goals", [])}


#: Figures kept from ``make sim``'s report (sim/core_run.py: the diffusion core's image run).
SIM_KEYS = ("dataset", "sampler", "steps", "images", "bit_exact", "counters_match",
            "cycles_per_image", "sim_cycles_per_s", "fid_hw", "fid_sw", "energy_per_image_j")


def _sim(root: Path, data: dict) -> dict:
    keep = {k: data[k] for k in SIM_KEYS if k in data}
    for k in ("energy_per_bit_per_area", "images_per_s_at_fmax"):
        v = data.get(k)
        if isinstance(v, dict) and v.get("value") is not None:
            keep[k] = v["value"]
    if isinstance(data.get("fid"), dict):
        keep["fid_n"] = data["fid"].get("n")
    return {"figures": flatten_numbers(keep), "dataset": data.get("dataset")}


def _generic(root: Path, data: dict) -> dict:
    body = {k: v for k, v in data.items() if k not in PROVENANCE_KEYS and k != "provenance"}
    return {"figures": flatten_numbers(body, limit=80)}


#: Figures of make explore's report.json shown in the report (sim/explore.py, docs/explore.md §4).
EXPLORE_KEYS = ("points", "points_ok", "points_error", "points_new_this_run", "points_reused",
                "seconds_this_run", "points_per_minute", "worker_seconds_per_point",
                "hypervolume", "hypervolume_reference", "hypervolume_compared")

SWEEP_KEYS = ("axis", "tau_us", "refresh_mhz", "dac_bits", "refreshes", "evaluations",
              "hist_l2", "kl_x", "kl_y", "radius_mean", "radius_std")


def _integrator_sweep(col: Collected, root: Path) -> None:
    """``make integrator-sweep`` (``build/sampler/integrator_sweep.json`` and its plot)."""
    path = root / "sampler" / "integrator_sweep.json"
    sec = {"found": path.is_file(), "path": _rel(path, root)}
    col.sections["inputs.integrator_sweep"] = sec
    if not path.is_file():
        return
    data, err = _read_json(path)
    if not isinstance(data, dict):
        sec["error"] = err or "not a JSON object"
        return
    col.inputs["integrator_sweep"] = {
        "origin": _origin(path, root, data),
        **{k: data.get(k) for k in ("dataset", "compute", "sde", "samples", "base",
                                    "held_out_floor")},
        "rows": [{k: r.get(k) for k in SWEEP_KEYS if k in r} for r in data.get("rows", [])
                 if isinstance(r, dict)]}
    png = path.with_suffix(".png")
    if png.is_file() and png.read_bytes()[:8] == PNG_MAGIC:
        col.images["integrator_sweep.png"] = ("inputs", "integrator_sweep", png.read_bytes())


def fpga_throughput(col: Collected) -> None:
    """Throughput at the post-route Fmax of each ``make synth`` build: the bench's per-cycle
    rates (TRNG path: raw / conditioned bits and Gaussian samples per cycle; crossbar: cycles
    per MVM) times Fmax, as figures ``fpga.<target>.<design>.*`` with their definitions."""
    bench = (col.inputs.get("bench") or {}).get("figures") or {}
    synth = (col.inputs.get("synth") or {}).get("rows") or []
    for r in synth:
        f_mhz, target, design = r.get("fmax_mhz"), r.get("target"), r.get("design")
        if not isinstance(f_mhz, (int, float)) or not f_mhz > 0 or not target or not design:
            continue
        pre = f"fpga.{target}.{design}"
        if str(design).startswith("core"):
            # The core's TRNG runs only while the noise FIFO has room, so the TRNG bench's
            # per-cycle rates do not apply; its images/s at Fmax come from make bench `system`.
            continue
        if "crossbar" in str(design):
            cpm = bench.get("crossbar.cycles_per_mvm")
            if isinstance(cpm, (int, float)) and cpm > 0:
                key = f"{pre}.mvm_per_s"
                col.figures[key] = {"value": f_mhz * 1e6 / cpm, "unit": "MVM/s", "definition":
                                    f"Fmax {f_mhz:.4g} MHz / crossbar.cycles_per_mvm {cpm:.4g} "
                                    f"(make bench tile, 64x64, 8 MACs per cycle)"}
                col.figure_module[key] = "fpga"
            continue
        for k, v in bench.items():
            if k.startswith("trng.") and "per_cycle" in k and isinstance(v, (int, float)):
                name = k[len("trng."):].replace("per_cycle", "per_s")
                unit = "samples/s" if "gauss" in k else "bit/s"
                key = f"{pre}.{name}"
                col.figures[key] = {"value": v * f_mhz * 1e6, "unit": unit, "definition":
                                    f"make bench {k} = {v:.4g} x Fmax {f_mhz:.4g} MHz "
                                    f"(make synth {target}, design {design})"}
                col.figure_module[key] = "fpga"


def collect_inputs(col: Collected, root: Path) -> None:
    """Key numbers of the other targets' outputs under ``root`` (usually ``build/``)."""
    root = Path(root)
    single = {"bench": (root / "bench" / "bench.json", _bench),
              "sampler": (root / "sampler" / "results.json", _sampler),
              "sim": (root / "sim" / "report.json", _sim),
              "validate": (root / "validate" / "report.json", _generic)}
    _integrator_sweep(col, root)
    for name in ("bench", "synth", "sampler", "sim", "validate", "explore"):
        if name == "synth":
            files = sorted((root / "synth").glob("*/report*.json"))
            if not files:
                col.sections["inputs.synth"] = {"found": False,
                                                "path": _rel(root / "synth", root)}
                continue
            col.inputs["synth"] = _synth(root, files)
            col.sections["inputs.synth"] = {"found": True,
                                            "files": [o["path"] for o in
                                                      col.inputs["synth"]["files"]]}
            continue
        if name == "explore":
            studies = [d for d in (root / "explore").glob("*") if d.is_dir()]
            if not studies:
                col.sections["inputs.explore"] = {"found": False,
                                                  "path": _rel(root / "explore", root)}
                continue
            latest = max(studies, key=lambda d: d.stat().st_mtime)
            entry: dict = {"study": latest.name}
            js = [latest / n for n in ("summary.json", "report.json", "results.json")
                  if (latest / n).is_file()]
            if js:
                data, err = _read_json(js[0])
                if isinstance(data, dict) and "front" in data:      # sim/explore.py's report
                    data = {k: data[k] for k in EXPLORE_KEYS if k in data} | \
                        {"provenance": data.get("provenance", {})}
                entry.update(_generic(root, data) if isinstance(data, dict) else
                             {"error": err or "not a JSON object"})
                entry["origin"] = _origin(js[0], root, data if isinstance(data, dict) else {})
            md = latest / "summary.md"
            if md.is_file():
                entry["summary_md"] = md.read_text()[:20_000]
            png = latest / "pareto.png"
            if png.is_file() and png.read_bytes()[:8] == PNG_MAGIC:
                col.images["explore_pareto.png"] = ("inputs", "explore", png.read_bytes())
            col.inputs["explore"] = entry
            col.sections["inputs.explore"] = {"found": True, "path": _rel(latest, root)}
            continue
        path, fn = single[name]
        if not path.is_file():
            col.sections[f"inputs.{name}"] = {"found": False, "path": _rel(path, root)}
            continue
        data, err = _read_json(path)
        if not isinstance(data, dict):
            col.sections[f"inputs.{name}"] = {"found": True, "path": _rel(path, root),
                                              "error": err or "not a JSON object"}
            continue
        col.inputs[name] = {"origin": _origin(path, root, data), **fn(root, data)}
        col.sections[f"inputs.{name}"] = {"found": True, "path": _rel(path, root)}


def collect(node_nm: int, inputs: Path, plot_dir: Path, energy_modules=None,
            constant_modules=None) -> Collected:
    """Everything the report shows; raises ``ValueError`` (bad node, bad constant or
    configuration, malformed module output) before anything is written."""
    col = Collected()
    check_node(node_nm, constant_modules)
    collect_constants(col, node_nm, constant_modules)
    collect_energy(col, node_nm, plot_dir, energy_modules)
    collect_inputs(col, inputs)
    fpga_throughput(col)
    return col


def check_node(node_nm, constant_modules=None) -> None:
    """``node_nm`` must be one of ``constants.NODES`` when that table exists."""
    spec = (CONSTANT_MODULES if constant_modules is None else constant_modules).get("constants")
    mod = (_import(spec)[0] if isinstance(spec, str) else spec) if spec is not None else None
    nodes = getattr(mod, "NODES", None)
    if nodes is not None and node_nm not in tuple(nodes):
        raise ValueError(f"--node = {node_nm}: no technology table for this node; allowed "
                         f"{sorted(nodes)}")


# ------------------------------------------------------------------------------------------------
# The document: one list of blocks rendered to Markdown and to HTML
# ------------------------------------------------------------------------------------------------

def fmt(v) -> str:
    """A value as table text."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == 0:
            return "0"
        a = abs(v)
        return f"{v:.4g}" if 1e-3 <= a < 1e6 else f"{v:.3e}"
    if isinstance(v, (list, tuple)):
        return "; ".join(fmt(x) for x in v)
    if isinstance(v, dict):
        if "value" in v:
            return f"{fmt(v['value'])} {v.get('unit', '')}".strip()
        return ", ".join(f"{k} {fmt(x)}" for k, x in v.items())
    return str(v)


def _fidelity_table(col: Collected) -> list:
    head = ["claim", "paper", "spindiff", "method", "constants' sources", "flags"]
    rows = []
    for r in col.fidelity:
        flag = ("FITTED" + (": " + ", ".join(r["fitted_constants"])
                            if r["fitted_constants"] else "")) if r["fitted"] else ""
        rows.append([fmt(r["claim"]), fmt(r["paper"]), fmt(r["spindiff"]), fmt(r["method"]),
                     fmt(r["sources"]), flag])
    return [("table", head, rows)]


def _figure_table(col: Collected, module: str) -> list:
    rows = []
    for key, f in col.figures.items():
        if col.figure_module[key] != module:
            continue
        basis = f.get("source") or ("= " + f["definition"])
        flag = ("FITTED" + (": " + ", ".join(f["fitted_constants"])
                            if f.get("fitted_constants") else "")) if f.get("fitted") else ""
        rows.append([key, fmt(f["value"]), f["unit"], basis, flag])
    return [("table", ["figure", "value", "unit", "source / definition", "flags"], rows)
            ] if rows else []


def _images(col: Collected, where: str) -> list:
    return [("img", name, name.rsplit(".", 1)[0])
            for name, (_, w, _) in col.images.items() if w == where]


def _na(col: Collected, key: str) -> list:
    sec = col.sections.get(key, {})
    return [("p", f"Not available: {sec.get('reason', 'not found')}.")]


def _module_blocks(col: Collected, name: str) -> list:
    sec = col.sections[f"energy.{name}"]
    b: list = [("h", 2, sec["heading"])]
    if not sec["available"]:
        return b + _na(col, f"energy.{name}")
    return b + (_figure_table(col, name) + _images(col, name)
                or [("p", f"{name}: no figures or plots.")])


def _sensitivity(col: Collected) -> list:
    return [("h", 2, "Sensitivity")] + (
        _images(col, "sensitivity")
        or [("p", "Not available: no sensitivity plots from the modules present.")])


def _input_blocks(col: Collected) -> list:
    b: list = [("h", 2, "Measured and simulated inputs")]
    sec = col.sections
    b.append(("h", 3, "make bench"))
    if "bench" in col.inputs:
        i = col.inputs["bench"]
        b.append(("p", _from(i["origin"]) + "."))
        b.append(("table", ["figure", "value"], [[k, fmt(v)] for k, v in
                                                 i["figures"].items()]))
    else:
        b.append(("p", _absent(sec["inputs.bench"], "make bench")))
    b.append(("h", 3, "make synth"))
    if "synth" in col.inputs:
        rows = []
        for r in col.inputs["synth"]["rows"]:
            def used(k):
                return (f"{fmt(r[k])} / {fmt(r[k + '_available'])}"
                        if r.get(k + "_available") else fmt(r[k]))
            rows.append([r["target"] or "?", r["design"] or "?", r["device"] or "?",
                         r["status"] or "?", used("luts"), used("ffs"), used("brams"),
                         used("dsps"), fmt(r["fmax_mhz"]), fmt(r["constraint_mhz"]),
                         fmt(r["timing_met"])])
        b.append(("table", ["target", "design", "device", "status", "LUTs", "FFs", "BRAMs",
                            "DSPs", "Fmax MHz", "constraint MHz", "met"], rows))
        thr = _figure_table(col, "fpga")
        if thr:
            b.append(("p", "Throughput at the post-route Fmax (make bench rates x Fmax; a "
                           "design's rates come from its make bench entry):"))
            b += thr
    else:
        b.append(("p", _absent(sec["inputs.synth"], "make synth")))
    b.append(("h", 3, "Sampler (make evaluate)"))
    if "sampler" in col.inputs:
        s = col.inputs["sampler"]
        b.append(("p", _from(s["origin"]) + f", back end {s['backend']}."))
        rows = []
        for r in s["rows"]:
            m = r["metrics"]
            quality = "; ".join(
                f"{k} {fmt(v['mean'])}" + (f" ± {fmt(v['half95'])}"
                                           if isinstance(v.get("half95"), float) and
                                           math.isfinite(v["half95"]) else "")
                for k, v in m.items() if k in ("fid", "kl_x", "kl_y", "accuracy"))
            ra = r["fid_ratio"]
            rows.append([r["dataset"], r["noise"], r["compute"], r["sampler"], fmt(r["steps"]),
                         quality, "reference" if r["reference"] else
                         (f"{fmt(ra['ratio'])} [{fmt(ra['lo'])}, {fmt(ra['hi'])}]" if ra
                          else "–"),
                         f"{fmt(r['samples'])} × {r['seeds']}"])
        b.append(("table", ["data set", "noise", "compute", "sampler", "steps",
                            "quality (mean ± 95 %)", "FID ratio [95 % CI]", "samples × seeds"],
                  rows))
        for g in s["goals"]:
            b.append(("p", f"Goal: {g.get('goal')}: ratio {fmt(g.get('ratio'))} → "
                           f"{'met' if g.get('met') else 'NOT met'}."))
    else:
        b.append(("p", _absent(sec["inputs.sampler"], "make evaluate")))
    b.append(("h", 3, "Analog integrator sweep (make integrator-sweep)"))
    if "integrator_sweep" in col.inputs:
        i = col.inputs["integrator_sweep"]
        b.append(("p", _from(i["origin"]) + f": {i['dataset']}, {i['compute']} "
                       f"compute, {i['samples']} samples per point; defaults {fmt(i['base'])}; "
                       f"held-out floor {fmt(i['held_out_floor'])}."))
        cols = [k for k in SWEEP_KEYS if any(k in r for r in i["rows"])]
        b.append(("table", cols, [[fmt(r.get(k)) for k in cols] for r in i["rows"]]))
        b += _images(col, "integrator_sweep")
    else:
        b.append(("p", _absent(sec["inputs.integrator_sweep"], "make integrator-sweep")))
    for name, title in (("sim", "make sim"), ("validate", "make validate")):
        b.append(("h", 3, title))
        if name in col.inputs:
            i = col.inputs[name]
            b.append(("p", _from(i["origin"]) + "."))
            b.append(("table", ["figure", "value"],
                      [[k, fmt(v)] for k, v in i["figures"].items()]))
        else:
            b.append(("p", _absent(sec[f"inputs.{name}"], title)))
    b.append(("h", 3, "make explore"))
    if "explore" in col.inputs:
        e = col.inputs["explore"]
        b.append(("p", f"Latest study: {e['study']}."))
        if e.get("figures"):
            b.append(("table", ["figure", "value"],
                      [[k, fmt(v)] for k, v in e["figures"].items()]))
        if e.get("summary_md"):
            b.append(("pre", e["summary_md"]))
        b += _images(col, "explore")
    else:
        b.append(("p", _absent(sec["inputs.explore"], "make explore")))
    return b


def _from(origin: dict) -> str:
    return f"From {origin['path']} (git {origin['git']}, {origin['created_utc']})"


def _absent(sec: dict, target: str) -> str:
    if sec.get("error"):
        return f"{sec['path']}: {sec['error']}."
    return f"Not present ({sec.get('path')}): run `{target}` first."


def document(col: Collected, prov: dict, node_nm: int) -> list:
    """The report as blocks: ("h", level, text), ("p", text), ("table", head, rows),
    ("img", file, alt), ("pre", text)."""
    b: list = [("h", 1, "spindiff report: energy, area and latency beside the papers"),
               ("p", f"Command: {prov['command']} (git {prov['git']}, {prov['created_utc']}); "
                     f"technology node {node_nm} nm. Figures carry a source or, for derived "
                     f"ones, a definition; constants marked assumed or fitted are flagged.")]
    b.append(("h", 2, "Fidelity: the papers' headline numbers and spindiff's"))
    if col.fidelity:
        b += _fidelity_table(col)
    else:
        b.append(("p", "Not available: no energy module with fidelity rows is importable yet."))
    missing = [k.split(".", 1)[1] for k, s in col.sections.items()
               if k.startswith("energy.") and not s["available"]]
    if missing:
        b.append(("p", "Modules not available: " + ", ".join(missing) + "."))
    names = [k.split(".", 1)[1] for k in col.sections if k.startswith("energy.")]
    for name in names:
        if name == "solver":        # the sweeps come between the FoM and the solver
            b += _sensitivity(col)
        b += _module_blocks(col, name)
    if "solver" not in names:
        b += _sensitivity(col)
    b += _input_blocks(col)
    b.append(("h", 2, "Constants"))
    if col.constants:
        rows = []
        for k, c in col.constants.items():
            st = c["status"].upper() if c["status"] in STATUSES_FLAGGED else c["status"]
            rows.append([k, fmt(c["value"]), c["unit"], st, c["source"], c["note"]])
        b.append(("p", "Status ASSUMED or FITTED (in capitals) marks a constant that no source "
                       "fixes; a fitted one was chosen to reproduce a paper's figure (its note "
                       "says which)."))
        b.append(("table", ["constant", "value", "unit", "status", "source", "note"], rows))
    else:
        reasons = [s.get("reason", "") for k, s in col.sections.items()
                   if k.startswith("constants.")]
        b.append(("p", "Not available: " + "; ".join(r for r in reasons if r) + "."))
    return b


def _md_cell(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list) -> str:
    out = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            out += ["#" * blk[1] + " " + blk[2], ""]
        elif kind == "p":
            out += [blk[1], ""]
        elif kind == "table":
            _, head, rows = blk
            out.append("| " + " | ".join(_md_cell(h) for h in head) + " |")
            out.append("|" + "---|" * len(head))
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("")
        elif kind == "img":
            out += [f"![{blk[2]}]({blk[1]})", ""]
        elif kind == "pre":
            out += ["```", blk[1].rstrip("\n").replace("```", "'''"), "```", ""]
    return "\n".join(out)


CSS = ("body{font-family:sans-serif;max-width:75em;margin:1em auto;padding:0 1em;"
       "line-height:1.4}table{border-collapse:collapse;margin:0.5em 0 1em}"
       "th,td{border:1px solid #bbb;padding:0.2em 0.5em;vertical-align:top;text-align:left}"
       "th{background:#eee}img{max-width:100%;display:block;margin:0.5em 0}"
       "pre{background:#f6f6f6;padding:0.5em;overflow-x:auto}")


def render_html(blocks: list, images: dict) -> str:
    """Self-contained HTML: every image a base64 data URI, no external resource."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(blocks[0][2]) if blocks and blocks[0][0] == 'h' else 'report'}</title>",
           f"<style>{CSS}</style></head><body>"]
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            out.append(f"<h{blk[1]}>{e(blk[2])}</h{blk[1]}>")
        elif kind == "p":
            out.append(f"<p>{e(blk[1])}</p>")
        elif kind == "table":
            _, head, rows = blk
            out.append("<table><thead><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in head)
                       + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(images[blk[1]][2]).decode("ascii")
            out.append(f'<figure><img alt="{e(blk[2])}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{e(blk[1])}</figcaption></figure>")
        elif kind == "pre":
            out.append(f"<pre>{e(blk[1])}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------
# Building and writing
# ------------------------------------------------------------------------------------------------

def build_report(out: Path = OUT, node_nm: int = DEFAULT_NODE_NM, inputs: Path = INPUTS,
                 command: str | None = None, energy_modules=None,
                 constant_modules=None) -> dict:
    """Collect everything, then write ``report.md``, ``report.html``, the PNGs and
    ``report.json`` (last) under ``out``, each atomically. Returns the JSON body.

    Parameters
    ----------
    out:
        Output folder.
    node_nm:
        Technology node of the digital constants (one of ``constants.NODES``).
    inputs:
        Folder holding ``bench/``, ``synth/``, ``sampler/``, ``sim/``, ``validate/`` and
        ``explore/`` (``build/`` by default).
    command:
        Command line recorded in the provenance.
    energy_modules, constant_modules:
        Override :data:`ENERGY_MODULES` (name -> (module or import path, heading)) and
        :data:`CONSTANT_MODULES` (name -> module or import path); for tests.

    Raises
    ------
    ValueError
        Unknown node, a constant or configuration the model rejects, or a malformed figure,
        fidelity row or plot (:class:`ReportError`); nothing is written then.
    """
    from model.io import atomic_write_bytes, atomic_write_json, atomic_write_text
    out, inputs = Path(out), Path(inputs)
    t0 = time.time()
    import matplotlib
    matplotlib.use("Agg")
    with tempfile.TemporaryDirectory(prefix="spindiff-report-") as tmp:
        col = collect(node_nm, inputs, Path(tmp), energy_modules, constant_modules)
    prov = provenance(None, command or f"make report NODE={node_nm}")
    blocks = document(col, prov, node_nm)
    md = render_markdown(blocks)
    page = render_html(blocks, col.images)
    body = {
        "provenance": prov,
        "node_nm": node_nm,
        "sections": col.sections,
        "figures": col.figures,
        "fidelity": col.fidelity,
        "constants": col.constants,
        "inputs": col.inputs,
        "images": sorted(col.images),
        "seconds": round(time.time() - t0, 2),
    }
    text = json.dumps(body, indent=2, allow_nan=False) + "\n"     # fails before any write
    old = _previous_images(out)
    for name, (_, _, data) in col.images.items():
        atomic_write_bytes(out / name, data)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", page)
    atomic_write_text(out / "report.json", text)
    for name in old - set(col.images):                           # plots of an earlier run
        (out / name).unlink(missing_ok=True)
    return body


def _previous_images(out: Path) -> set[str]:
    data, _ = _read_json(out / "report.json") if (out / "report.json").is_file() else (None, 0)
    names = data.get("images", []) if isinstance(data, dict) else []
    return {n for n in names if isinstance(n, str) and "/" not in n and n.endswith(".png")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="make report", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT), help="output folder (default build/report)")
    ap.add_argument("--node", default=str(DEFAULT_NODE_NM),
                    help=f"technology node in nm of the digital constants (default "
                         f"{DEFAULT_NODE_NM})")
    ap.add_argument("--inputs", default=str(INPUTS),
                    help="folder with the bench/synth/sampler/sim/validate/explore outputs "
                         "(default build)")
    args = ap.parse_args(argv)
    try:
        node = int(args.node)
    except ValueError:
        print(f"error: --node = {args.node!r}: must be an integer node in nm", file=sys.stderr)
        return 2
    if Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"error: --out {args.out}: exists and is not a folder", file=sys.stderr)
        return 2
    command = "python -m sim.report " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        body = build_report(Path(args.out), node, Path(args.inputs), command.strip())
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print(f"[report] {len(body['figures'])} figures, {len(body['fidelity'])} fidelity rows, "
          f"{len(body['constants'])} constants, {len(body['images'])} plots, inputs: "
          f"{', '.join(sorted(body['inputs'])) or 'none'}")
    print(f"[report] wrote {_rel(out / 'report.json', ROOT / 'build')}, report.md, report.html "
          f"({body['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
