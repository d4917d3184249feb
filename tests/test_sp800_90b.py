"""SP 800-90B through NIST's estimators (``model.validate.sp800_90b``): sources of known
min-entropy, the bindings against NIST's own ``ea_non_iid`` driver, the restart test's sanity
check on restarts that repeat, and bad input. The long runs are in ``make validate``.

Skipped, with the reason, only where the pinned package ``sp800-90b`` is not installed (``make
deps`` brings the Debian build dependencies, the Makefile installs the package)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from model.validate import sp800_90b as N
from sim.validate import TOOLS_90B

SEED = 90
N_SAMPLES = N.MIN_SAMPLES

try:
    N.binding()
    _MISSING = None
except N.ToolMissing as e:          # pragma: no cover - depends on the machine
    _MISSING = str(e)

needs_binding = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


@pytest.fixture(scope="module")
def tools():
    if _MISSING is not None:
        pytest.skip(_MISSING)
    try:
        return N.build_tools(TOOLS_90B)
    except N.ToolMissing as e:
        pytest.skip(f"NIST's drivers not built: {e}")


def _iid(p1: float, n: int = N_SAMPLES, seed: int = SEED) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p1).astype(np.uint8)


def _sticky(p_repeat: float, n: int = N_SAMPLES, seed: int = SEED) -> np.ndarray:
    """A binary Markov chain repeating its last bit with probability ``p_repeat``."""
    flips = (np.random.default_rng(seed).random(n) >= p_repeat).astype(np.uint8)
    return (np.cumsum(flips) & 1).astype(np.uint8)


@needs_binding
def test_biased_iid_bits_estimate_below_and_near_the_true_min_entropy():
    p1 = 0.75                                    # true min-entropy -log2(0.75) = 0.415 bit
    h_true = -math.log2(p1)
    r = N.non_iid(_iid(p1))
    assert r["samples"] == N_SAMPLES and r["binary"] and r["bits_per_symbol"] == 1
    # every estimate is conservative (an upper confidence bound on a probability); the
    # compression estimate is far below on biased data (0.25 here), the lag and LRS ones above
    # (they predict a repeat), the others close
    assert 0.5 * h_true <= r["h_initial"] <= h_true + 0.005, (r, f"seed={SEED}")
    for k in ("most_common", "markov", "collision", "multi_mcw", "multi_mmc", "lz78y"):
        assert h_true - 0.02 < r["estimates"][k] < h_true + 0.005, (k, r, f"seed={SEED}")
    assert r["h_initial"] == min(v for v in r["estimates"].values() if v is not None)


@needs_binding
def test_dependent_bits_are_caught_where_the_bit_counts_look_fair():
    # ones and zeros equally frequent (most-common-value estimate ~1), but every bit repeats the
    # last with probability 0.9: min-entropy rate -log2(0.9) = 0.152 bit per sample
    r = N.non_iid(_sticky(0.9))
    assert r["estimates"]["most_common"] > 0.95, f"seed={SEED}"
    h_true = -math.log2(0.9)
    assert abs(r["estimates"]["markov"] - h_true) < 0.01, (r["estimates"], f"seed={SEED}")
    assert 0.3 * h_true < r["h_initial"] <= h_true + 0.005, (r["h_initial"], f"seed={SEED}")


@needs_binding
def test_fair_bits():
    r = N.non_iid(_iid(0.5))
    # NIST's estimators on 10^6 fair bits: the compression estimate limits H_initial (~0.85)
    assert 0.8 < r["h_initial"] <= 1.0, (r["estimates"], f"seed={SEED}")
    assert r["h_bitstring"] is None and r["h_per_bit"] == r["h_initial"]
    # (8-bit symbols work the same way but take minutes: 8 x 10^6 bits for H_bitstring)


@needs_binding
def test_bad_input_names_what_is_wrong():
    with pytest.raises(ValueError, match=r"999,999 samples: SP 800-90B needs at least 1,000,000"):
        N.non_iid(_iid(0.5, N_SAMPLES - 1))
    with pytest.raises(ValueError, match="single symbol"):
        N.non_iid(np.ones(N_SAMPLES, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"integers in \[0, 1\]"):
        N.non_iid(np.full(N_SAMPLES, 2, dtype=np.uint8))
    for bps in (0, 9, True, 1.0):
        with pytest.raises(ValueError, match="bits_per_symbol"):
            N.non_iid(_iid(0.5), bits_per_symbol=bps)
    with pytest.raises(ValueError, match="1000 restarts x 1000 samples"):
        N.restart("ea_restart", np.zeros((999, 1000)), 0.5)
    with pytest.raises(ValueError, match="h_initial"):
        N.restart("ea_restart", _iid(0.5).reshape(1000, 1000), 1.5)


def test_missing_tools_name_what_installs_them(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_binding(name, *a, **k):
        if name == "sp800_90b":
            raise ImportError("No module named 'sp800_90b'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_binding)
    with pytest.raises(N.ToolMissing, match=r"sp800-90b==0\.1\.1.*libbz2-dev, libdivsufsort-dev"):
        N.binding()
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert N.find_tools(tmp_path) is None
    with pytest.raises(N.ToolMissing, match="no C\\+\\+ compiler `no-such-cxx`"):
        N.build_tools(tmp_path, cxx="no-such-cxx")


def test_bindings_agree_with_nists_driver(tools):
    x = _sticky(0.6, seed=SEED + 1)
    cli = N.non_iid_cli(tools["ea_non_iid"], x)
    assert cli["h_initial"] == pytest.approx(N.non_iid(x)["h_initial"], abs=1e-6)
    assert cli["h_bitstring"] is None


@pytest.mark.skipif(not os.environ.get("SPINDIFF_LONG"),
                    reason="about 60 s (NIST's cutoff simulation, 5 x 10^6 rounds); the restart "
                           "tests run in every `make validate`; SPINDIFF_LONG=1 runs this one")
def test_restart_sanity_check_fails_when_restarts_repeat(tools):
    """A source that restarts into the same sequence (a seeded generator, as the emulator after
    reset) fails the sanity check: every column holds one value (X_max = 1000)."""
    row = _iid(0.5, 1000, SEED + 2)
    m = N.restart_matrix(lambda i, k: row[:k])
    r = N.restart(tools["ea_restart"], m, 0.8, threads=2)
    assert r["x_max"] == 1000 and r["x_cutoff"] < 1000, r
    assert not r["sanity_pass"] and not r["validation_pass"] and r["h_min"] is None


@needs_binding
def test_driver_measures_the_declared_health_h(tools):
    """The driver's SP 800-90B part on the calibrated device model: two orders, NIST's
    driver agreeing, and the health tests' declared H (``HealthConfig.min_entropy``) at or
    below the measurement (the default came from ``make validate``)."""
    from sim import validate as V
    e = V.run_sp800_90b(SEED, 0, (), sources=("device_calibrated",))
    rows = e["non_iid"]
    assert [r["order"] for r in rows] == ["raw-word order", "cell-major"]
    assert all(r["samples"] == N.MIN_SAMPLES and r["after_calibration"] for r in rows)
    assert e["cli_check"]["agree"], e["cli_check"]
    assert e["h_measured"] == min(r["h_initial"] for r in rows)
    assert e["h_floor"] <= e["h_measured"]
    assert e["declared_supported"] and e["h_declared"] <= e["h_measured"], e["status"]
    md = "\n".join(V.markdown_90b(e))
    assert "| device_calibrated | raw-word order |" in md and "not run" not in md.split("|")[0]
    figs = V.figures({"sp800_22": {}, "campaign": {"scenarios": [], "false_alarms": {
        "cells_failed": 0, "cell_windows": 1, "rate_per_cell_window": 0.0,
        "upper95_per_cell_window": None}}, "external": {}, "sp800_90b": e})
    assert figs["sp800_90b.h_measured"]["value"] == e["h_measured"]
    with pytest.raises(ValueError, match="source 'nope'"):
        V.run_sp800_90b(SEED, 0, (), sources=("nope",))


@needs_binding
def test_driver_recorded_file(tmp_path):
    """A recorded bitstream of 10^6 bits gets a non-IID row; a shorter one is named with the
    count SP 800-90B needs."""
    from model.validate import sources as S
    from sim import validate as V
    S.write_bits_file(tmp_path / "rec.bin", _iid(0.5, N_SAMPLES, SEED + 3))
    e = V.run_sp800_90b(SEED, 0, (), tmp_path / "rec.bin", sources=())
    (row,) = e["non_iid"]
    assert row["source"] == "file" and row["h_initial"] > 0.8 and "h_measured" not in e
    assert "no calibrated source" in e["status"] and "not run" in "\n".join(V.markdown_90b(e))
    S.write_bits_file(tmp_path / "short.bin", _iid(0.5, 80_000, SEED))
    e = V.run_sp800_90b(SEED, 0, (), tmp_path / "short.bin", sources=())
    assert e["file"] == ("not run: 80,000 bits in --bits-file, the SP 800-90B non-IID estimate "
                         "needs 1,000,000") and not e["non_iid"]
