"""``python -m sim.core_run`` (the image run of the diffusion core on Verilator): bad input gives
one error line, exit 2 and no output; a two-image DDPM-2 run with a small FID batch writes a
complete report, bit-exact (with the Verilator build of tests/test_core_cocotb.py cached: ≈ 20 s;
cold, the build adds ≈ 2–3 min)."""

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
    (["--dataset", "ring"], "--dataset = 'ring'"),
    (["--array", "silicon"], "--array = 'silicon'"),
])
def test_bad_arguments(args, needle, tmp_path):
    r, out = _run(args, tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
    assert not out.exists(), "a rejected run wrote output"


def test_missing_checkpoint_is_one_error(tmp_path, monkeypatch):
    """A data set without a trained checkpoint: one error naming it and the make target."""
    import sim.core_run as cr
    monkeypatch.setattr("model.diffusion.train.CHECKPOINT_DIR", tmp_path / "none")
    monkeypatch.setattr("sim.meta.ROOT", tmp_path)
    with pytest.raises(cr._BadInput, match=r"--dataset = 'fashion-mnist'.*make train "
                                            r"DATASET=fashion-mnist"):
        cr.checkpoints("fashion-mnist")
    hw, fl = cr.checkpoints("digits")
    assert hw.is_file() and fl.is_file()


def test_checkpoint_that_does_not_fit_is_one_error(tmp_path, monkeypatch, capsys):
    """A net too large for the engine (17,920 slots > 4,096): one error naming --dataset and the
    slot count, exit 2, nothing written, before any calibration or Verilator build."""
    import sim.core_run as cr
    from model.diffusion.nets import EpsMLP
    from model.diffusion.train import DEFAULT_CHECKPOINT, save_checkpoint
    big = tmp_path / "big.pt"
    save_checkpoint(big, EpsMLP(64, 1000, hidden=(2048, 2048), temb_dim=64, act="silu"), {
        "dataset": "digits", "seed": 1,
        "schedule": {"beta_start": 0.0001, "beta_end": 0.02, "steps": 1000}})
    monkeypatch.setattr(cr, "checkpoints", lambda dataset: (big, DEFAULT_CHECKPOINT))
    out = tmp_path / "out"
    assert cr.main(["--images", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --dataset = 'digits'"), err
    assert "does not fit" in err[0] and "17920 tile slots" in err[0] and "4096" in err[0]
    assert not out.exists()


def test_fmax_images_per_s(tmp_path):
    """Images per second at Fmax: the report's Fmax over the cycles; no report -> None + reason."""
    import sim.core_run as cr
    d = cr.fmax_images_per_s(2_000_000, tmp_path)
    assert d["value"] is None and "make synth TARGET=ecp5 DESIGN=core" in d["reason"]
    p = tmp_path / "build" / "synth" / "ecp5" / "report-core.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"fmax_mhz": 50.0, "device": "LFE5U-85F", "status": "ok"}))
    d = cr.fmax_images_per_s(2_000_000, tmp_path)
    assert d["value"] == pytest.approx(25.0) and d["fmax_mhz"] == 50.0
    p.write_text(json.dumps({"fmax_mhz": None, "status": "failed"}))
    assert cr.fmax_images_per_s(2_000_000, tmp_path)["value"] is None


@pytest.mark.cocotb
def test_two_images_ddpm2(tmp_path):
    """The short make sim: two strided DDPM-2 images (noise from the TRNG path on every row but
    the last; the DDPM-2 tables written through the core's tables port, the build holding
    DDIM-1), bit-exact, with every report field."""
    r, out = _run(["--images", "2", "--steps", "2", "--sampler", "ddpm", "--seed", "1",
                   "--fid-n", "64"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    for k in REPORT_KEYS:
        assert k in rep, k
    assert rep["images"] == 2 and rep["bit_exact"] is True and rep["counters_match"] is True
    assert set(rep["energy_per_bit_per_area"]) == {"value", "unit", "definition"}
    assert rep["energy_per_bit_per_area"]["value"] > 0 and rep["energy_per_image_j"] > 0
    assert rep["fid_hw"] >= 0 and rep["fid_sw"] >= 0 and rep["fid"]["n"] == 64
    assert rep["sim_cycles_per_s"] > 0
    # docs/core.md "Latency": 2·dim + 2 + steps·row_cycles once the noise FIFO keeps up (the
    # first DDPM row may wait for noise after the boot, so only a lower bound per image).
    from hw.core import core_image, image_cycles
    from model.diffusion.hardware import HardwareProgram, default_checkpoint
    img = core_image(HardwareProgram.from_checkpoint(default_checkpoint()), "ddpm", 2)
    assert all(c >= image_cycles(img, 2) for c in rep["cycles_per_image_each"])
    assert rep["meta"]["provenance"]["seed"] == 1
    assert (out / "grid.png").stat().st_size > 0 and (out / "report.md").stat().st_size > 0
    assert rep["dataset"] == "digits" and set(rep["images_per_s_at_fmax"]) >= {"value", "unit"}
    assert "bit-exact with hw_sample  True" in r.stdout
