"""``python -m sim.core_run`` (the image run of the diffusion core on Verilator): bad input gives
one error line, exit 2 and no output; a one-image DDIM-1 run with a small FID batch writes a
complete report, bit-exact (with the Verilator build of tests/test_core_cocotb.py cached:
≈ 20 s; cold, the build adds ≈ 2–3 min)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sim.meta import ROOT

REPORT_KEYS = ("images", "bit_exact", "cycles_per_image", "sim_cycles_per_s", "fid_hw", "fid_sw",
               "energy_per_image_j", "energy_per_bit_per_area", "meta")


def _run(args, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "sim.core_run", *args, "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True)
    return r, out


@pytest.mark.parametrize("args,needle", [
    (["--sampler", "ddpx"], "--sampler = 'ddpx'"),
    (["--steps", "1001"], "--steps = 1001"),
    (["--steps", "0"], "--steps = 0"),
    (["--images", "0"], "--images = 0"),
    (["--fid-n", "1"], "--fid-n = 1"),
    (["--seed", "-3"], "--seed = -3"),
    (["--images", "two"], "--images"),
])
def test_bad_arguments(args, needle, tmp_path):
    r, out = _run(args, tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
    assert not out.exists(), "a rejected run wrote output"


@pytest.mark.cocotb
def test_one_image_ddim1(tmp_path):
    r, out = _run(["--images", "1", "--steps", "1", "--sampler", "ddim", "--seed", "1",
                   "--fid-n", "64"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    for k in REPORT_KEYS:
        assert k in rep, k
    assert rep["images"] == 1 and rep["bit_exact"] is True and rep["counters_match"] is True
    assert set(rep["energy_per_bit_per_area"]) == {"value", "unit", "definition"}
    assert rep["energy_per_bit_per_area"]["value"] > 0 and rep["energy_per_image_j"] > 0
    assert rep["fid_hw"] >= 0 and rep["fid_sw"] >= 0 and rep["fid"]["n"] == 64
    assert rep["cycles_per_image"] > 0 and rep["sim_cycles_per_s"] > 0
    assert rep["meta"]["provenance"]["seed"] == 1
    assert (out / "grid.png").stat().st_size > 0
    assert "bit-exact with hw_sample  True" in r.stdout
