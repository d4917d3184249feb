"""`make validate`: the random bits through NIST SP 800-22, ent, dieharder and a fault campaign.

Writes ``build/validate/report.json`` and ``report.md`` (``docs/validation.md``): every figure
with value, unit and definition, provenance (``sim.meta.provenance``), each file atomically and
only after every part has run (a failure leaves the previous report or none).

Parts:

1. NIST SP 800-22 (``model.validate.sp800_22``) on each source of ``model.validate.sources``:
   ``--sequences`` sequences of ``--bits`` bits each (default 100 x 10^6), the proportion of
   passing sequences and the uniformity of the P-values per test (section 4.2).
2. ``ent`` on a file of conditioned twin bits, and ``dieharder -g 200`` reading the conditioned
   twin stream (XOR fold 2) on standard input, streamed, never rewound -- when the Debian tools
   are installed; otherwise the report names the packages (``dieharder``, ``ent``).
3. The fault campaign (``model.validate.campaign``) and the false-alarm rate on healthy arrays.
4. NIST SP 800-90B entropy estimation (``model.validate.sp800_90b``: NIST's C++ estimators from
   the pinned ``sp800-90b`` package): the non-IID track on 10^6 raw bits of the device model
   before and after calibration and of the twin (raw-word order, cell-major order, and single
   cells' own streams), the restart tests (1000 restarts x 1000 bits) of the device model, and
   the measured H against the health tests' declared ``HealthConfig.min_entropy``.
5. RTL dump: a Verilator run of the TRNG top with its readout (8 x 8, default readout, emulator
   inside) per conditioning mode, its packed words written to ``build/validate/rtl_*.bin`` in
   the recorded-bitstream format and compared bit for bit with the twin's first bits; SP 800-22
   on each file as one sequence (the tests its length allows; the others named with the bits
   they need). ``--rtl-words`` sets the length, ``--no-rtl`` skips it.

What a pass means: the sources are models driven by pseudo-random generators, so the suites
test the emulator's generator and whether calibration, health tests and conditioning turn the
*modelled* source into a good stream -- not a physical junction. A recorded device bitstream
(``--bits-file``) is tested the same way.

``--quick``: 20 sequences of 10^5 bits per source (the tests that need 10^6 bits are reported
as not applicable; 20 sequences make the proportion check coarse), a short false-alarm run,
one short dieharder test, and SP 800-90B without the single-cell streams and with the restart
test of the calibrated device only; 4,000 words per mode in the RTL dump (32,000 by default). Bad arguments: one error
line, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from sim.meta import ROOT, provenance

OUT = ROOT / "build" / "validate"

#: Debian package that installs each external tool.
PACKAGES = {"dieharder": "dieharder", "ent": "ent"}

SCOPE = ("The sources are models driven by pseudo-random generators (xoshiro128++ in the "
         "emulator, numpy PCG64 in the device model). The suites therefore test (1) the "
         "emulator's generator, (2) whether calibration, health tests and conditioning turn a "
         "biased, drifting or faulty modelled source into a good stream, and (3) the model, not "
         "a physical junction. Recorded device bitstreams (--bits-file) are tested the same way.")

PROFILES = {
    "default": dict(sequences=100, bits=1_000_000, campaign_windows=400, campaign_seeds=5,
                    fa_seeds=10,
                    fa_windows=4000, ent_bytes=10_000_000,
                    dieharder=((0, 30), (2, 20), (100, 30), (101, 30), (15, 30)),
                    sp800_90b_cells=3,
                    sp800_90b_restart=("device_uncalibrated", "device_calibrated"),
                    rtl_build="readout_8x8", rtl_words=32_000),
    "quick": dict(sequences=20, bits=100_000, campaign_windows=400, campaign_seeds=1,
                  fa_seeds=1,
                  fa_windows=500, ent_bytes=1_000_000, dieharder=((100, 10),),
                  sp800_90b_cells=0, sp800_90b_restart=("device_calibrated",),
                  rtl_build="readout_8x8", rtl_words=4_000),
}
#: Where NIST's SP 800-90B drivers are built (``python -m model.validate.sp800_90b build``).
TOOLS_90B = ROOT / "build" / "sp800_90b"
#: Raw sources of the SP 800-90B run: name -> after calibration (counts for the measured H).
SOURCES_90B = {"device_uncalibrated": False, "device_calibrated": True, "twin_raw": True}


class ArgError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):          # one line, exit 2, nothing written
        raise ArgError(message)


# ------------------------------------------------------------------------------------------------
def _progress(total, desc, unit, enabled):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                leave=False)


def make_sources(seed: int, bits_file=None, bits_format="bin") -> list:
    """The sources the driver tests, in report order."""
    from model.validate import sources as S
    out = [S.TwinRawSource(seed), *(S.TwinConditionedSource(m, seed) for m in S.COND_MODES),
           S.DeviceSource(calibrate=False, seed=seed), S.DeviceSource(calibrate=True, seed=seed)]
    if bits_file is not None:
        out.append(S.FileSource(bits_file, bits_format))
    return out


def sp800_22_source(source, sequences: int, n_bits: int, alpha: float = 0.01,
                    progress: bool = False) -> dict:
    """SP 800-22 on ``sequences`` successive sequences of ``n_bits`` from ``source``; per test:
    the worst label's proportion of passing sequences and its interval (4.2.1), the labels that
    fail it, the smallest uniformity P-value (4.2.2, with >= 55 sequences) and the verdict."""
    from model.validate import sp800_22 as nist
    bar = _progress(sequences, f"SP 800-22 {source.name}", "seq", progress)
    notes: dict = {}
    ones = [0]

    def seqs():
        for _ in range(sequences):
            b = source.bits(n_bits)
            ones[0] += int(np.count_nonzero(b))
            yield b
            bar.update(1)

    def suite(seq, alpha):
        res = nist.run_suite(seq, alpha=alpha, skip_short=True)
        for name, r in res.items():
            if not r.applicable:
                notes.setdefault(name, r.note)
        return res

    try:
        many = nist.evaluate_many(seqs(), alpha=alpha, suite=suite)
    finally:
        bar.close()
    tests: dict = {}
    for (name, label), (prop, uni) in many.items():
        t = tests.setdefault(name, {"labels": 0, "proportion_min": 1.0, "proportion_low": prop.low,
                                    "labels_failing_proportion": 0, "uniformity_p_min": None,
                                    "labels_failing_uniformity": 0, "sequences_min": prop.total})
        t["labels"] += 1
        t["proportion_min"] = min(t["proportion_min"], prop.fraction)
        t["proportion_low"] = max(t["proportion_low"], prop.low)
        t["sequences_min"] = min(t["sequences_min"], prop.total)
        t["labels_failing_proportion"] += int(not prop.ok)
        if uni is not None:
            u = t["uniformity_p_min"]
            t["uniformity_p_min"] = uni.p_value if u is None else min(u, uni.p_value)
            t["labels_failing_uniformity"] += int(not uni.ok)
    from scipy.stats import binom, poisson
    for t in tests.values():
        t["ok"] = t["labels_failing_proportion"] == 0 and t["labels_failing_uniformity"] == 0
        # labels expected to fail the proportion check by chance for an ideal source
        # (passes ~ Bin(m, 1 - alpha)): many-label tests (148 templates) fail some by chance
        m = t["sequences_min"]
        lo_k = math.ceil(t["proportion_low"] * m - 1e-9)
        t["expected_failing_labels"] = t["labels"] * float(binom.cdf(lo_k - 1, m, 1 - alpha))
        # verdict allowing chance failures of many-label tests: failing labels within the
        # 0.999 quantile of Poisson(expected); single-label tests and uniformity stay strict
        allowed = int(poisson.ppf(0.999, t["expected_failing_labels"])) if t["labels"] > 1 else 0
        t["ok_chance"] = (t["labels_failing_proportion"] <= allowed
                          and t["labels_failing_uniformity"] == 0)
    not_applicable = {k: v for k, v in notes.items() if k not in tests}
    total = sequences * n_bits
    frac = ones[0] / total
    return {"source": source.describe(), "sequences": sequences, "bits_per_sequence": n_bits,
            "ones_fraction": frac, "ones_z": (frac - 0.5) * 2 * math.sqrt(total),
            "alpha": alpha, "tests": tests, "not_applicable": not_applicable,
            "tests_run": len(tests), "tests_ok": sum(t["ok"] for t in tests.values()),
            "tests_ok_chance": sum(t["ok_chance"] for t in tests.values()),
            "pass": bool(tests) and all(t["ok_chance"] for t in tests.values())}


# ------------------------------------------------------------------------------------------------
def missing_tools() -> dict:
    """Tool -> Debian package, for each external tool not on PATH."""
    return {t: p for t, p in PACKAGES.items() if shutil.which(t) is None}


def run_ent(source, n_bytes: int, workdir: Path) -> dict:
    """``ent -t`` (byte mode) and ``ent -b -t`` (bit mode) on ``n_bytes`` bytes of the source,
    packed MSB first, written to a file in ``workdir``."""
    path = workdir / "ent_input.bin"
    path.write_bytes(np.packbits(source.bits(8 * n_bytes)).tobytes())
    out = {"bytes": n_bytes, "source": source.name}
    for mode, flags in (("byte", ["-t"]), ("bit", ["-b", "-t"])):
        r = subprocess.run(["ent", *flags, str(path)], capture_output=True, text=True, check=True)
        lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
        head = lines[0].split(",")
        vals = lines[1].split(",")
        row = dict(zip(head, vals))
        out[mode] = {"entropy_bits_per_symbol": float(row["Entropy"]),
                     "chi_square": float(row["Chi-square"]), "mean": float(row["Mean"]),
                     "monte_carlo_pi": float(row["Monte-Carlo-Pi"]),
                     "serial_correlation": float(row["Serial-Correlation"])}
        # ent's chi-square P-value (its plain report): degrees of freedom 255 (byte) / 1 (bit)
        from scipy.stats import chi2
        dof = 255 if mode == "byte" else 1
        out[mode]["chi_square_p"] = float(chi2.sf(out[mode]["chi_square"], dof))
    path.unlink()
    return out


def run_dieharder(make_source, tests, timeout_s: float = 1800.0, progress: bool = False) -> dict:
    """Each dieharder test (``(number, psamples or None)``) reading a fresh conditioned twin
    stream on stdin (``-g 200``): the stream is generated while dieharder reads it, so no test
    ever rewinds a short file. Returns per test the assessment lines parsed."""
    results = []
    bar = _progress(len(tests), "dieharder", "test", progress)
    for num, psamples in tests:
        src = make_source()
        cmd = ["dieharder", "-g", "200", "-d", str(num)]
        if psamples:
            cmd += ["-p", str(psamples)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        fed = [0]
        err: list = []

        def feed():
            try:
                while proc.poll() is None:
                    proc.stdin.write(np.packbits(src.bits(1 << 22)).tobytes())
                    fed[0] += 1 << 19
            except (BrokenPipeError, OSError, ValueError):
                pass            # dieharder has read what it needed and closed its input
            except Exception as e:      # noqa: BLE001 - reported, and dieharder is stopped
                err.append(repr(e))
                proc.kill()

        th = threading.Thread(target=feed, daemon=True)
        th.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            timed_out = True
        th.join(timeout=60)
        out = proc.stdout.read()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            try:
                f.close()
            except OSError:
                pass
        if err:
            raise RuntimeError(f"dieharder -d {num}: the stream generator failed: {err[0]}")
        rows = []
        for ln in out.decode(errors="replace").splitlines():
            parts = [p.strip() for p in ln.split("|")]
            if len(parts) == 6 and parts[5] in ("PASSED", "WEAK", "FAILED"):
                rows.append({"test": parts[0], "ntup": int(parts[1]), "tsamples": int(parts[2]),
                             "psamples": int(parts[3]), "p_value": float(parts[4]),
                             "assessment": parts[5]})
        results.append({"number": num, "command": " ".join(cmd), "rows": rows,
                        "timed_out": timed_out, "bytes_read_max": fed[0],
                        "seconds": round(time.perf_counter() - t0, 1)})
        bar.update(1)
    bar.close()
    flat = [r for t in results for r in t["rows"]]
    return {"tests": results, "passed": sum(r["assessment"] == "PASSED" for r in flat),
            "weak": sum(r["assessment"] == "WEAK" for r in flat),
            "failed": sum(r["assessment"] == "FAILED" for r in flat), "rows": len(flat)}


# ------------------------------------------------------------------------------------------------
def _raw_source_90b(name: str, seed: int, restart: int = 0):
    from model.validate import sources as S
    if name == "twin_raw":
        return S.TwinRawSource(seed)
    return S.DeviceSource(calibrate=name == "device_calibrated", seed=seed, restart=restart)


def cell_stream(source, cell: int, n: int, cells: int, chunk_sweeps: int = 15_625) -> np.ndarray:
    """The next ``n`` samples of one cell from a raw-word-order source of ``cells`` cells."""
    parts, have = [], 0
    while have < n:
        k = min(chunk_sweeps, n - have)
        parts.append(source.bits(k * cells).reshape(k, cells)[:, cell])
        have += k
    return np.concatenate(parts)


def run_sp800_90b(seed: int, cells_per_source: int, restarts: tuple, bits_file=None,
                  bits_format: str = "bin", log=lambda msg: None,
                  sources: tuple = tuple(SOURCES_90B)) -> dict:
    """SP 800-90B with NIST's estimators (``model.validate.sp800_90b``): non-IID on 10^6 raw bits
    per source in raw-word order and in cell-major order (each cell's samples together), on
    ``cells_per_source`` single cells' own 10^6-sample streams of the calibrated device, the
    restart tests of the device sources named in ``restarts``, and the measured H: the smallest
    estimate over the sources after calibration, floored to 0.1, against the health tests'
    declared ``HealthConfig.min_entropy``."""
    from model.blocks.config import ArrayConfig, HealthConfig
    from model.validate import sources as S
    from model.validate import sp800_90b as N
    n = N.MIN_SAMPLES
    out: dict = {"tool": f"{N.PACKAGE}=={N.VERSION}", "samples": n, "bits_per_symbol": 1}
    try:
        N.binding()
    except N.ToolMissing as e:
        out["status"] = f"not run: {e}"
        return out
    tools, tools_note = N.find_tools(TOOLS_90B), None
    if tools is None:
        try:
            tools = N.build_tools(TOOLS_90B)
        except N.ToolMissing as e:
            tools_note = str(e)
    cells = ArrayConfig().cells
    rows: list = []
    for name in sources:
        if name not in SOURCES_90B:
            raise ValueError(f"run_sp800_90b: source {name!r}: allowed {list(SOURCES_90B)}")
        after_cal = SOURCES_90B[name]
        b = _raw_source_90b(name, seed + 3).bits(n)
        for order, x in (("raw-word order", b), ("cell-major", b.reshape(-1, cells).T.ravel())):
            r = N.non_iid(x)
            rows.append({"source": name, "order": order, "after_calibration": after_cal, **r})
            log(f"SP 800-90B {name} ({order}): H = {r['h_initial']:.4f}")
    if cells_per_source:
        src = _raw_source_90b("device_calibrated", seed + 4)
        picks = np.unique(np.linspace(0, cells - 1, cells_per_source).round().astype(int))
        streams = {int(c): [] for c in picks}
        for _ in range(n // 15_625):           # all picked cells from the same sweeps
            blk = src.bits(15_625 * cells).reshape(15_625, cells)
            for c in streams:
                streams[c].append(blk[:, c])
        for c, parts in streams.items():
            r = N.non_iid(np.concatenate(parts))
            rows.append({"source": "device_calibrated", "order": f"cell {c} alone",
                         "after_calibration": True, **r})
            log(f"SP 800-90B device_calibrated cell {c}: H = {r['h_initial']:.4f}")
    if bits_file is not None:
        f = S.FileSource(bits_file, bits_format)
        if f.total_bits >= n:
            rows.append({"source": "file", "order": "file order", "after_calibration": None,
                         **N.non_iid(f.bits(n))})
        else:
            out["file"] = (f"not run: {f.total_bits:,} bits in --bits-file, the SP 800-90B "
                           f"non-IID estimate needs {n:,}")
    out["non_iid"] = rows
    first = next((r for r in rows if r["source"] == "device_calibrated"), None)
    if tools is not None and first is not None:   # NIST's own driver, same figure as the bindings
        cli = N.non_iid_cli(tools["ea_non_iid"],
                            _raw_source_90b("device_calibrated", seed + 3).bits(n))
        out["cli_check"] = {"source": "device_calibrated (raw-word order)", "ea_non_iid": cli,
                            "bindings_h_initial": first["h_initial"],
                            "agree": abs(cli["h_initial"] - first["h_initial"]) < 1e-6}
    out["restart"] = {}
    if tools is None:
        out["restart_status"] = f"not run: {tools_note}"
    else:
        for name in restarts:
            h_i = next(r["h_initial"] for r in rows
                       if r["source"] == name and r["order"] == "raw-word order")
            m = N.restart_matrix(lambda i, k: _raw_source_90b(name, seed + 3, i + 1).bits(k))
            r = N.restart(tools["ea_restart"], m, h_i)
            out["restart"][name] = r
            log(f"SP 800-90B restart {name}: sanity {'pass' if r['sanity_pass'] else 'FAIL'}, "
                f"validation {'pass' if r['validation_pass'] else 'FAIL'}")
    cand = [r["h_initial"] for r in rows if r["after_calibration"]]
    for name, r in out["restart"].items():
        if SOURCES_90B[name]:
            cand += [v for v in (r["h_r"], r["h_c"]) if v is not None] if r["validation_pass"] \
                else [0.0]
    declared = HealthConfig(ArrayConfig()).min_entropy
    if not cand:
        out["status"] = (f"no calibrated source tested: no measured H (the health tests "
                         f"declare H = {declared})")
        return out
    h = min(cand)
    out["h_measured"] = h
    out["h_floor"] = math.floor(h * 10 + 1e-9) / 10
    out["h_declared"] = declared
    out["declared_supported"] = declared <= h
    out["status"] = (f"measured min-entropy {h:.4f} bit per raw bit after calibration (smallest "
                     f"estimate of NIST's non-IID estimators over the calibrated sources"
                     + (" and the restart tests" if out["restart"] else "") +
                     f"); the health tests declare H = {declared}: "
                     + ("supported." if declared <= h else "NOT supported by the measurement."))
    return out


# ------------------------------------------------------------------------------------------------
#: RTL builds the dump can use: name -> (array config name in sim.configs, readout settings).
RTL_BUILDS = {"readout_8x8": ("TRNG_DEFAULT", "READOUT_DEFAULT"),
              "readout_3x5": ("TRNG_SMALL", "READOUT_SMALL")}


def bench_emu_seed(bench_seed: int) -> int:
    """The emulator seed ``sim.cocotb_readout`` writes to the SEED register for bench seed
    ``bench_seed`` with ``random_offsets`` off (``TRNGChecker.setup``: its generator draws the
    back-pressure seed, then the emulator seed). A change there shows as a mismatch below."""
    rng = np.random.default_rng(bench_seed)
    rng.integers(1, 2**32)
    return int(rng.integers(0, 2**32))


def words_to_bits(words, word_bits: int) -> np.ndarray:
    """Packed output words (earliest bit in the LSB, ``NoisePath.packed_words``) -> the bit
    stream in packer order."""
    w = np.asarray(words, dtype=np.uint64)
    shifts = np.arange(word_bits, dtype=np.uint64)
    return ((w[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8).ravel()


def rtl_dump(build: str, modes, words: int, bench_seed: int, out_dir: Path,
             progress: bool = False, startup_windows: int = 30) -> dict:
    """Verilator run of the TRNG top with its readout (emulator inside, no back-pressure), one
    per conditioning mode: the packed output words from reset dumped to
    ``out_dir/rtl_<build>_<mode>.bin`` (recorded-bitstream ``bin`` format) and compared with the
    first bits of the vectorised twin (``NoisePath.conditioned_bits`` from reset, same emulator
    seed). The run lasts the calibration's start-up (``startup_windows`` windows, whose bits
    the twin sources drop too; ``startup_bits`` of the file) plus ``words`` words."""
    from model.blocks.config import ConditionerConfig, HealthConfig
    from model.blocks.fastpath import NoisePath
    from model.validate import sources as S
    from hw.trng_top import MTJTRNGTop
    from sim import configs
    from sim.harness import StreamHarness
    from sim.runner import run_cocotb
    if build not in RTL_BUILDS:
        raise ValueError(f"rtl_dump: build = {build!r}: allowed {sorted(RTL_BUILDS)}")
    cfg_name, ro_name = RTL_BUILDS[build]
    cfg, readout = getattr(configs, cfg_name), getattr(configs, ro_name)
    ecfg = configs.emulator_config(cfg)
    hcfg = HealthConfig(cfg, **readout["health"])
    wbits = ConditionerConfig(cfg, **readout["cond"]).word_bits
    emu_seed = bench_emu_seed(bench_seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = {}
    for mode in modes:
        cm, k = S.COND_MODES[mode]
        js = out_dir / f"rtl_{build}_{mode}.json"
        t0 = time.perf_counter()
        start = NoisePath(ecfg, hcfg, seed=emu_seed, cond_mode=cm, cond_k=k)
        start.run_raw(startup_windows * cfg.window)
        startup_bits = int(start._cbuf.size)      # conditioned bits of the start-up sweeps
        items = -(-startup_bits // wbits) + words
        top = MTJTRNGTop(ecfg, configs.readout_config(cfg, readout))
        run_cocotb(StreamHarness(top, ("words", "gauss")), build, "sim.cocotb_readout",
                   {"emu": configs.emu_params(ecfg), "readout": readout, "sel": 0,
                    "items": items, "cond_mode": cm, "cond_k": k, "gauss_mode": 0,
                    "bp_thresh": 0, "random_offsets": False, "out": str(js)},
                   seed=bench_seed, run_name=f"validate_dump_{build}_{mode}")
        r = json.loads(js.read_text())
        js.unlink()
        rtl = words_to_bits(r["items"], wbits)
        path = S.write_bits_file(out_dir / f"rtl_{build}_{mode}.bin", rtl)
        twin = NoisePath(ecfg, hcfg, seed=emu_seed, cond_mode=cm,
                         cond_k=k).conditioned_bits(rtl.size)
        diff = np.flatnonzero(rtl != twin)
        res[mode] = {"file": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
                     "format": "bin", "bits": int(rtl.size), "words": len(r["items"]),
                     "startup_bits": startup_bits,
                     "raw_words": r["raw_words"], "identical": not diff.size,
                     "first_difference": int(diff[0]) if diff.size else None,
                     "cond_mode": cm, "cond_k": k, "seconds": time.perf_counter() - t0}
    return {"build": build, "array": f"{cfg.rows}x{cfg.cols}", "emulator_seed": emu_seed,
            "bench_seed": bench_seed, "words_per_mode": words,
            "startup_windows": startup_windows, "modes": res}


def sp800_22_dump(dump: dict, alpha: float = 0.01) -> dict:
    """SP 800-22 on each dumped file after its start-up bits, as one sequence: the tests its
    length allows (the others listed with the bits they need). Per test: the smallest P-value
    and the labels below ``alpha``; a single-label test fails at P < alpha, a many-label test
    (templates, excursion states) when more labels fail than an ideal source's 0.999 quantile
    (Poisson of labels x alpha)."""
    from scipy.stats import poisson
    from model.validate import sources as S
    from model.validate import sp800_22 as nist
    out = {}
    for mode, d in dump["modes"].items():
        f = S.FileSource(ROOT / d["file"] if not Path(d["file"]).is_absolute() else d["file"])
        f.bits(d["startup_bits"])
        bits = f.bits(f.remaining)
        tests, na = {}, {}
        for name, r in nist.run_suite(bits, alpha=alpha, skip_short=True).items():
            if not r.applicable:
                na[name] = r.note
                continue
            low = sum(p < alpha for p in r.p_values)
            allowed = int(poisson.ppf(0.999, len(r.p_values) * alpha)) if len(r.p_values) > 1 \
                else 0
            tests[name] = {"p_min": float(min(r.p_values)), "labels": len(r.p_values),
                           "labels_below_alpha": int(low), "ok": low <= allowed}
        out[mode] = {"bits": int(bits.size), "tests_run": len(tests),
                     "tests_ok": sum(t["ok"] for t in tests.values()),
                     "failing": sorted(t for t, v in tests.items() if not v["ok"]),
                     "tests": tests, "not_applicable": na,
                     "ones_fraction": float(bits.mean()) if bits.size else None}
    return out


# ------------------------------------------------------------------------------------------------
def _fig(value, unit, definition):
    return {"value": float(value) if isinstance(value, float) else value, "unit": unit,
            "definition": definition}


def figures(rep: dict) -> dict:
    """Flat figure table: key -> {value, unit, definition}."""
    f = {}
    for name, r in rep["sp800_22"].items():
        f[f"sp800_22.{name}.tests_ok"] = _fig(
            r["tests_ok"], "tests", f"SP 800-22 tests (of {r['tests_run']} run) whose every "
            f"label passes the proportion (4.2.1) and uniformity (4.2.2) checks, {r['sequences']} "
            f"sequences of {r['bits_per_sequence']} bits")
        f[f"sp800_22.{name}.tests_ok_chance"] = _fig(
            r["tests_ok_chance"], "tests", "same, allowing a many-label test (templates, "
            "excursion states) the label failures an ideal source shows by chance (within the "
            "0.999 quantile of their Poisson count)")
        props = [t["proportion_min"] for t in r["tests"].values()]
        if props:
            f[f"sp800_22.{name}.proportion_min"] = _fig(
                min(props), "fraction of sequences", "smallest proportion of sequences passing "
                "(P >= 0.01) over every test and label")
        f[f"sp800_22.{name}.ones_fraction"] = _fig(
            r["ones_fraction"], "1", f"fraction of ones over all {r['sequences']} sequences "
            f"(z = {r['ones_z']:.1f} standard deviations from 1/2)")
        masked = r["source"].get("masked_cells")
        if masked is not None:
            f[f"sources.{name}.masked_cells"] = _fig(
                masked, "cells", "cells masked by the health tests (from the start-up "
                "calibration transient on) when the run ended")
        fr = r["tests"].get("frequency")
        if fr:
            f[f"sp800_22.{name}.frequency_proportion"] = _fig(
                fr["proportion_min"], "fraction of sequences", "proportion of sequences passing "
                "the frequency (monobit) test")
    for sc in rep["campaign"]["scenarios"]:
        k = f"campaign.{sc['name']}"
        for d, v in sc["escaped"].items():
            f[f"{k}.escaped_D{d}"] = _fig(v, "bits", f"bad raw bits (cell min-entropy below H) "
                                          f"released by the health monitor with hold-back "
                                          f"D = {d}, summed over {len(sc['seeds'])} seeded "
                                          f"runs: {sc['what']}")
        if sc["max_latency_from_first_bad"] is not None:
            f[f"{k}.latency"] = _fig(sc["max_latency_from_first_bad"], "samples per cell",
                                     "largest detection index j (cell samples from the first "
                                     "bad sample to the failing one) over the faulty cells "
                                     "and seeds")
        f[f"{k}.cells_bad_undetected"] = _fig(sc["cells_bad_undetected"], "cells",
                                              "faulty cells with bad bits never detected in "
                                              "the runs (all seeds)")
    fa = rep["campaign"]["false_alarms"]
    f["campaign.false_alarm.cells_failed"] = _fig(
        fa["cells_failed"], "cells", f"healthy calibrated cells failing a health test over "
        f"{fa['cell_windows']} cell-windows of 1024 samples")
    f["campaign.false_alarm.rate_per_cell_window"] = _fig(
        fa["rate_per_cell_window"], "1/cell-window", "observed health-test failures per cell "
        "and 1024-sample window on healthy calibrated arrays")
    if fa["upper95_per_cell_window"] is not None:
        f["campaign.false_alarm.upper95"] = _fig(fa["upper95_per_cell_window"], "1/cell-window",
                                                 "one-sided 95 % upper bound (rule of three)")
    ent = rep["external"].get("ent")
    if isinstance(ent, dict) and "byte" in ent:
        f["ent.entropy_bits_per_byte"] = _fig(ent["byte"]["entropy_bits_per_symbol"],
                                              "bit/byte", "ent: entropy of the conditioned "
                                              "twin stream (XOR fold 2), byte mode")
        f["ent.serial_correlation"] = _fig(ent["byte"]["serial_correlation"], "1",
                                           "ent: serial correlation coefficient, byte mode")
        f["ent.chi_square_p"] = _fig(ent["byte"]["chi_square_p"], "1",
                                     "chi-square P-value of the byte counts (255 dof)")
    dh = rep["external"].get("dieharder")
    if isinstance(dh, dict) and "rows" in dh:
        for k in ("passed", "weak", "failed"):
            f[f"dieharder.{k}"] = _fig(dh[k], "test results", f"dieharder results assessed "
                                       f"{k.upper()} (of {dh['rows']})")
    e = rep.get("sp800_90b", {})
    for r in e.get("non_iid", []):
        key = r["order"].replace(" ", "_").replace("-", "_")
        f[f"sp800_90b.{r['source']}.{key}.h_initial"] = _fig(
            r["h_initial"], "bit/sample", f"SP 800-90B initial min-entropy estimate (3.1.3, "
            f"NIST's non-IID estimators, {e['tool']}) of {r['samples']:,} raw bits of "
            f"{r['source']}, {r['order']}")
    for name, r in e.get("restart", {}).items():
        f[f"sp800_90b.restart.{name}.sanity_pass"] = _fig(
            r["sanity_pass"], "bool", f"restart sanity check (3.1.4.3): X_max = {r['x_max']} "
            f"<= X_cutoff = {r['x_cutoff']} over 1000 restarts x 1000 bits, H_I = {r['h_i']}")
        if r["h_r"] is not None:
            f[f"sp800_90b.restart.{name}.h_rc"] = _fig(
                min(r["h_r"], r["h_c"]), "bit/sample", "min(H_r, H_c) of the restart rows and "
                "columns (3.1.4.2; validation needs >= H_I / 2)")
    for mode, m in rep.get("rtl_dump", {}).get("modes", {}).items():
        f[f"rtl_dump.{mode}.identical"] = _fig(
            m["identical"], "bool", f"the RTL's first {m['bits']:,} conditioned bits ({mode}, "
            f"Verilator) equal the vectorised twin's")
    if "h_measured" in e:
        f["sp800_90b.h_measured"] = _fig(
            e["h_measured"], "bit/sample", "smallest SP 800-90B min-entropy estimate of the raw "
            "bits after calibration (all orders, single cells, restart rows/columns)")
        f["sp800_90b.h_declared"] = _fig(
            e["h_declared"], "bit/sample", "the health tests' declared H "
            "(HealthConfig.min_entropy default)")
    return f


def markdown(rep: dict) -> str:
    p = rep["provenance"]
    md = ["# TRNG validation (`make validate`)", "",
          f"`{p['command']}` — git {p['git']}, {p['created_utc']}, {rep['runtime_s']:.0f} s.", "",
          "**Scope.** " + SCOPE, "", "## NIST SP 800-22", "",
          "| source | sequences x bits | tests ok (strict / chance-allowed) | worst proportion | "
          "frequency proportion | ones fraction (z) | verdict |", "|---|---|---|---|---|---|---|"]
    for name, r in rep["sp800_22"].items():
        props = [t["proportion_min"] for t in r["tests"].values()]
        fr = r["tests"].get("frequency", {}).get("proportion_min")
        md.append(f"| {name} | {r['sequences']} x {r['bits_per_sequence']:,} | "
                  f"{r['tests_ok']} / {r['tests_ok_chance']} of {r['tests_run']} | "
                  f"{min(props) if props else float('nan'):.3f} | "
                  f"{'' if fr is None else f'{fr:.3f}'} | {r['ones_fraction']:.5f} "
                  f"({r['ones_z']:+.1f}) | {'pass' if r['pass'] else 'FAIL'} |")
    md += ["", "Failing tests (worst label's proportion passing, labels failing proportion / "
           "uniformity of all labels, labels an ideal source fails the proportion check by "
           "chance):", ""]
    for name, r in rep["sp800_22"].items():
        bad = [f"{t} ({v['proportion_min']:.2f}, {v['labels_failing_proportion']}/"
               f"{v['labels_failing_uniformity']} of {v['labels']}, chance "
               f"{v['expected_failing_labels']:.2g})"
               + ("" if v["ok_chance"] else " beyond chance")
               for t, v in r["tests"].items() if not v["ok"]]
        na = ", ".join(r["not_applicable"]) or "none"
        md.append(f"- **{name}**: failing: {', '.join(bad) or 'none'}; not applicable at this "
                  f"length: {na}.")
    md += ["", "## ent and dieharder", ""]
    ext = rep["external"]
    if ext.get("missing"):
        md.append("Not run: install the Debian packages " + ", ".join(
            f"`{p}` (for `{t}`)" for t, p in ext["missing"].items()) + " (`make deps`).")
    ent = ext.get("ent")
    if isinstance(ent, dict) and "byte" in ent:
        b, bb = ent["byte"], ent["bit"]
        md.append(f"- ent on {ent['bytes']:,} bytes of {ent['source']}: entropy "
                  f"{b['entropy_bits_per_symbol']:.6f} bit/byte, chi-square {b['chi_square']:.1f} "
                  f"(P {b['chi_square_p']:.3f}), mean {b['mean']:.4f}, pi "
                  f"{b['monte_carlo_pi']:.5f}, serial correlation {b['serial_correlation']:.6f}; "
                  f"bit mode entropy {bb['entropy_bits_per_symbol']:.6f}.")
    dh = ext.get("dieharder")
    if isinstance(dh, dict) and "rows" in dh:
        md += [f"- dieharder (`-g 200`, conditioned twin XOR fold 2 streamed on stdin): "
               f"{dh['passed']} PASSED, {dh['weak']} WEAK, {dh['failed']} FAILED of {dh['rows']}.",
               "", "| test | ntup | psamples | P | assessment |", "|---|---|---|---|---|"]
        for t in dh["tests"]:
            for r in t["rows"]:
                md.append(f"| {r['test']} | {r['ntup']} | {r['psamples']} | {r['p_value']:.4f} | "
                          f"{r['assessment']} |")
            if t["timed_out"]:
                md.append(f"| -d {t['number']} | | | | timed out |")
    c = rep["campaign"]
    md += ["", "## Fault campaign (device model, health monitor twin)", "",
           f"Health settings: {c['health']}; device seeds {c['seeds']}, one run per seed. "
           "Latency: the largest detection index j in a faulty cell's samples, from its first "
           "bad sample (min-entropy below H); escaped: bad samples released, summed over the "
           "runs, per hold-back D.", "",
           "| fault | what | alarm | cells detected / faulty | latency j (max) | escaped D=" +
           " / ".join(str(d) for d in c["holdbacks"]) + " | bad cells undetected | "
           "healthy cells failing |", "|---|---|---|---|---|---|---|---|"]
    for sc in c["scenarios"]:
        lat = sc["max_latency_from_first_bad"]
        lat_s = "-" if lat is None else str(lat)
        if lat is None and sc["max_latency_from_onset"] is not None and \
                sc["cells_with_bad_bits"] and not sc["cells_bad_undetected"]:
            lat_s = f"before the first bad bit ({sc['max_latency_from_onset']} after onset)"
        md.append(f"| {sc['name']} | {sc['what']} | {'+'.join(sc['tests']) or 'none'} | "
                  f"{sc['cells_detected']}/{sc['cells_faulty']} | {lat_s} | "
                  f"{' / '.join(str(v) for v in sc['escaped'].values())} | "
                  f"{sc['cells_bad_undetected']} | {sc['false_alarm_cells']} |")
    fa = c["false_alarms"]
    up = fa["upper95_per_cell_window"]
    md += ["", f"False alarms on healthy calibrated arrays (seeds {fa['seeds'][0]}.."
           f"{fa['seeds'][-1]}, {fa['cell_samples']:,} cell samples, {fa['cell_windows']:,} "
           f"cell-windows): {fa['cells_failed']} cells failed"
           + (f" (rate < {up:.1e} per cell-window, 95 %)." if up is not None else
              f" ({fa['tests']})."), "",
           "## NIST SP 800-90B", ""]
    md += markdown_90b(rep["sp800_90b"])
    md += ["## RTL dump against the twin", ""] + markdown_dump(rep.get("rtl_dump", {}))
    return "\n".join(md)


def markdown_dump(d: dict) -> list[str]:
    md = [d.get("status", "not run"), ""]
    if "modes" not in d:
        return md
    md += [f"Verilator run of the TRNG top with its readout ({d['build']}, {d['array']} array, "
           f"emulator seed {d['emulator_seed']}, no back-pressure), packed words from reset, "
           f"written in the recorded-bitstream `bin` format and compared bit for bit with the "
           f"vectorised twin (`NoisePath.conditioned_bits`, same seed); SP 800-22 on each file "
           f"after the bits of the calibration's start-up ({d['startup_windows']} windows, "
           f"dropped from the twin sources too) as one sequence (a many-label test fails when "
           f"more labels have P < 0.01 than an ideal source's 0.999 quantile; smallest P over "
           f"the single-P tests).", "",
           "| mode | file | bits (start-up) | raw words | identical to the twin | "
           "SP 800-22 ok / run | smallest P (test) | failing | too short for |",
           "|---|---|---|---|---|---|---|---|---|"]
    for mode, m in d["modes"].items():
        t = d.get("sp800_22", {}).get(mode, {})
        diff = "yes" if m["identical"] else f"NO (first difference at bit {m['first_difference']})"
        single = {k: v for k, v in t.get("tests", {}).items() if v["labels"] == 1}
        worst = min(single, key=lambda k: single[k]["p_min"]) if single else None
        md.append(f"| {mode} | `{m['file']}` | {m['bits']:,} ({m['startup_bits']:,}) | "
                  f"{m['raw_words']:,} | {diff} | "
                  f"{t.get('tests_ok', '-')} / {t.get('tests_run', '-')} | "
                  + (f"{single[worst]['p_min']:.4f} ({worst})" if worst else "-") + " | "
                  f"{', '.join(t.get('failing', [])) or 'none'} | "
                  f"{', '.join(t.get('not_applicable', {})) or 'none'} |")
    notes = {v for t in d.get("sp800_22", {}).values() for v in t["not_applicable"].values()}
    if notes:
        md += ["", "Not applicable at this length: " + "; ".join(sorted(notes)) + "."]
    return md + [""]


def markdown_90b(e: dict) -> list[str]:
    md = [e["status"], ""]
    if "non_iid" not in e:
        return md
    names = ("most_common", "collision", "markov", "compression", "t_tuple", "lrs", "multi_mcw",
             "lag", "multi_mmc", "lz78y")
    md += [f"Non-IID track (section 6.3), {e['samples']:,} samples of 1 bit, NIST's estimators "
           f"({e['tool']}); H_initial = the smallest estimate.", "",
           "| source | order | H_initial | " + " | ".join(names) + " |",
           "|---|---|---|" + "---|" * len(names)]
    for r in e["non_iid"]:
        vals = ["-" if r["estimates"][k] is None else f"{r['estimates'][k]:.4f}" for k in names]
        md.append(f"| {r['source']} | {r['order']} | **{r['h_initial']:.4f}** | "
                  + " | ".join(vals) + " |")
    if e.get("file"):
        md.append(f"\n--bits-file: {e['file']}")
    c = e.get("cli_check")
    if c:
        md += ["", f"NIST's own driver `ea_non_iid` on {c['source']}: H_original "
               f"{c['ea_non_iid']['h_original']:.6f} (bindings {c['bindings_h_initial']:.6f}, "
               f"{'agree' if c['agree'] else 'DISAGREE'})."]
    md += ["", "Restart tests (section 3.1.4, NIST's `ea_restart`, 1000 restarts x 1000 bits of "
           "the same device, fresh sampling noise per power-up):", ""]
    if not e["restart"]:
        md.append(e.get("restart_status", "not run"))
    else:
        md += ["| source | H_I | X_max / X_cutoff | sanity check | H_r | H_c | validation |",
               "|---|---|---|---|---|---|---|"]
        for name, r in e["restart"].items():
            hr = "-" if r["h_r"] is None else f"{r['h_r']:.4f}"
            hc = "-" if r["h_c"] is None else f"{r['h_c']:.4f}"
            md.append(f"| {name} | {r['h_i']:.4f} | {r['x_max']} / {r['x_cutoff']} | "
                      f"{'pass' if r['sanity_pass'] else 'FAIL'} | {hr} | {hc} | "
                      f"{'pass' if r['validation_pass'] else 'FAIL'} |")
    if "h_floor" in e:
        md += ["", f"Measured H (after calibration, floored to 0.1): {e['h_floor']}; declared by "
               f"the health tests: {e['h_declared']}.", ""]
    return md


# ------------------------------------------------------------------------------------------------
def run(args, progress: bool = True) -> dict:
    t0 = time.perf_counter()
    prof = dict(PROFILES["quick" if args.quick else "default"])
    for k in ("sequences", "bits", "campaign_windows"):
        if getattr(args, k) is not None:
            prof[k] = getattr(args, k)
    from model.blocks.config import ArrayConfig, HealthConfig
    from model.validate import campaign as C
    from model.validate import sources as S

    def log(msg):
        if progress:
            print(f"[validate] {msg}", file=sys.stderr)

    rep: dict = {"scope": SCOPE, "profile": "quick" if args.quick else "default",
                 "settings": {k: v for k, v in prof.items() if k != "dieharder"}}
    # 1. SP 800-22
    srcs = make_sources(args.seed, args.bits_file, args.bits_format)
    for src in srcs:                   # a short recorded file is refused before any work
        if isinstance(src, S.FileSource):
            need = prof["sequences"] * prof["bits"]
            if src.total_bits < need:
                raise ValueError(
                    f"--bits-file {src.path}: {src.total_bits} bits, SP 800-22 needs "
                    f"{prof['sequences']} sequences x {prof['bits']} bits = {need} "
                    f"(fewer with --sequences/--bits; overlapping template, linear complexity "
                    f"and random excursions need 10^6 bits per sequence, universal 387,840)")
    rep["sp800_22"] = {}
    for src in srcs:
        rep["sp800_22"][src.name] = sp800_22_source(src, prof["sequences"], prof["bits"],
                                                    progress=progress)
        log(f"SP 800-22 {src.name}: {rep['sp800_22'][src.name]['tests_ok']}/"
            f"{rep['sp800_22'][src.name]['tests_run']} tests ok")
    # 2. ent, dieharder
    ext: dict = {"missing": missing_tools() if not args.no_external else {}}
    if args.no_external:
        ext["ent"] = ext["dieharder"] = "not run (--no-external)"
    else:
        for tool in ("ent", "dieharder"):
            if tool in ext["missing"]:
                ext[tool] = f"not run: `{tool}` not installed (Debian package " \
                            f"{PACKAGES[tool]}; `make deps` installs it)"
        if "ent" not in ext["missing"]:
            with tempfile.TemporaryDirectory() as td:
                ext["ent"] = run_ent(S.TwinConditionedSource("xor2", args.seed + 1),
                                     prof["ent_bytes"], Path(td))
            log("ent done")
        if "dieharder" not in ext["missing"]:
            ext["dieharder"] = run_dieharder(
                lambda: S.TwinConditionedSource("xor2", args.seed + 2), prof["dieharder"],
                progress=progress)
            log(f"dieharder: {ext['dieharder']['passed']} passed, {ext['dieharder']['weak']} "
                f"weak, {ext['dieharder']['failed']} failed")
    rep["external"] = ext
    # 3. campaign
    hcfg = HealthConfig(ArrayConfig())
    holdbacks = (0, 64, 1024)
    cseeds = tuple(range(args.seed, args.seed + prof["campaign_seeds"]))
    bar = _progress(len(C.SCENARIOS) * len(cseeds) + prof["fa_seeds"], "fault campaign", "run",
                    progress)
    scen = C.run_campaign(C.SCENARIOS, hcfg, cseeds, progress=lambda *_: bar.update(1),
                          monitor_windows=prof["campaign_windows"], holdbacks=holdbacks)
    fa = C.false_alarms(hcfg, tuple(range(args.seed, args.seed + prof["fa_seeds"])),
                        monitor_windows=prof["fa_windows"], progress=lambda _: bar.update(1))
    bar.close()
    def str_keys(d):
        return {str(k): v for k, v in d.items()}

    for sc in scen:                    # JSON object keys are strings
        sc["escaped"] = str_keys(sc["escaped"])
        sc["escaped_max_per_run"] = str_keys(sc["escaped_max_per_run"])
        for run_ in sc["runs"]:
            run_["escaped"] = str_keys(run_["escaped"])
            for c in run_["cells"]:
                c["escaped"] = str_keys(c["escaped"])
                if c["escaped_rule"] is not None:
                    c["escaped_rule"] = str_keys(c["escaped_rule"])
    rep["campaign"] = {"health": {"min_entropy": hcfg.min_entropy,
                                  "alpha_log2": hcfg.alpha_log2,
                                  "apt_window": hcfg.apt_window,
                                  "corr_window": hcfg.corr_window},
                       "holdbacks": list(holdbacks), "seeds": list(cseeds),
                       "scenarios": scen, "false_alarms": fa}
    log("fault campaign done")
    # 4. SP 800-90B
    if args.no_90b:
        rep["sp800_90b"] = {"status": "not run (--no-90b)"}
    else:
        rep["sp800_90b"] = run_sp800_90b(args.seed, prof["sp800_90b_cells"],
                                         prof["sp800_90b_restart"], args.bits_file,
                                         args.bits_format, log)
    log(f"SP 800-90B: {rep['sp800_90b']['status']}")
    # 5. RTL dump against the twin, and SP 800-22 on the dumped files
    if args.no_rtl:
        rep["rtl_dump"] = {"status": "not run (--no-rtl)"}
    else:
        words = prof["rtl_words"] if args.rtl_words is None else args.rtl_words
        try:
            dump = rtl_dump(prof["rtl_build"], tuple(S.COND_MODES), words, args.seed,
                            args.out, progress)
        except Exception as e:          # noqa: BLE001 - the report says what failed
            dump = {"status": f"FAILED: {type(e).__name__}: {str(e).splitlines()[0]}"}
        else:
            same = all(m["identical"] for m in dump["modes"].values())
            dump["status"] = (f"the RTL's first {words:,} words per mode are "
                              + ("identical to the twin's" if same else
                                 "NOT identical to the twin's"))
            dump["sp800_22"] = sp800_22_dump(dump)
        rep["rtl_dump"] = dump
        log(f"RTL dump: {dump['status']}")
    rep["runtime_s"] = time.perf_counter() - t0
    return rep


def main(argv=None) -> int:
    ap = _Parser(prog="python -m sim.validate", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (see module docstring)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sequences", type=int, default=None, help="SP 800-22 sequences per source")
    ap.add_argument("--bits", type=int, default=None, help="bits per SP 800-22 sequence")
    ap.add_argument("--campaign-windows", type=int, default=None,
                    help="monitored calibration windows per fault scenario")
    ap.add_argument("--bits-file", type=Path, default=None,
                    help="recorded bitstream to test as one more source")
    ap.add_argument("--bits-format", default="bin", help="bin (bytes, MSB first) or ascii")
    ap.add_argument("--no-external", action="store_true", help="skip ent and dieharder")
    ap.add_argument("--no-90b", action="store_true", help="skip SP 800-90B")
    ap.add_argument("--no-rtl", action="store_true", help="skip the Verilator dump")
    ap.add_argument("--rtl-words", type=int, default=None,
                    help="packed words dumped per conditioning mode")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    try:
        args = ap.parse_args(argv)
        for name, v, lo, hi in (("--seed", args.seed, 0, 2**31),
                                ("--sequences", args.sequences, 1, 10_000),
                                ("--bits", args.bits, 100, 10**9),
                                ("--campaign-windows", args.campaign_windows, 20, 10**6),
                                ("--rtl-words", args.rtl_words, 1, 10**7)):
            if v is not None and not lo <= v <= hi:
                raise ArgError(f"{name} = {v}: out of range, allowed [{lo}, {hi}]")
        if args.bits_format not in ("bin", "ascii"):
            raise ArgError(f"--bits-format = {args.bits_format!r}: allowed bin, ascii")
        if args.bits_file is not None and not args.bits_file.is_file():
            raise ArgError(f"--bits-file = {str(args.bits_file)!r}: no such file")
        if args.out.exists() and not args.out.is_dir():
            raise ArgError(f"--out = {str(args.out)!r}: exists and is not a folder")
    except ArgError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from model.io import atomic_write_json, atomic_write_text
    try:
        rep = run(args, progress=not args.no_progress)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    words = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    cmd = " ".join(["python -m sim.validate", *words])
    rep = {"provenance": provenance(args.seed, cmd), "figures": None, **rep}
    rep["figures"] = figures(rep)
    md = markdown(rep)
    # both rendered before anything is written; the json (the one make report reads) last
    atomic_write_text(args.out / "report.md", md)
    atomic_write_json(args.out / "report.json", rep)
    print(f"[validate] wrote {args.out}/report.json and report.md "
          f"({rep['runtime_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
