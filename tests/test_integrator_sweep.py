"""sim.integrator_sweep: the quality-vs-τ / refresh-rate driver on the committed ring checkpoint."""

import json
import subprocess
import sys

import torch

from model.diffusion.data import load_dataset
from sim import integrator_sweep
from sim.meta import ROOT


def test_sweep_writes_rows_and_beats_plain_noise(tmp_path):
    rc = integrator_sweep.main(["--samples", "400", "--tau-us", "2", "--refresh-mhz", "5",
                                "--compute", "float", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    res = json.loads((tmp_path / "integrator_sweep.json").read_text())
    assert [r["axis"] for r in res["rows"]] == ["tau_us", "refresh_mhz"]
    assert (tmp_path / "integrator_sweep.png").stat().st_size > 1000
    assert "| 2 | 20 |" in (tmp_path / "integrator_sweep.md").read_text()
    # A solve through the trained score lands on the ring (radius 0.7 ± 0.04); the N(0, I)
    # start points it began from have radius 1.25 ± 0.65.
    train = load_dataset("ring", "train", 0)
    r_train = train.x.double().norm(dim=1)
    start = torch.randn(400, 2, generator=torch.Generator().manual_seed(0)).double().norm(dim=1)
    assert abs(float(start.mean()) - float(r_train.mean())) > 0.4
    for r in res["rows"]:
        assert abs(r["radius_mean"] - float(r_train.mean())) < 0.06, r
        assert r["radius_std"] < 0.2, r
        assert r["refreshes"] >= 1 and r["evaluations"] >= r["refreshes"], r


def test_bad_arguments_write_nothing(tmp_path):
    for argv, needle in ((["--samples", "5"], "--samples = 5"),
                         (["--tau-us", "0,1"], "--tau-us"),
                         (["--read-noise", "2"], "--read-noise = 2.0")):
        r = subprocess.run([sys.executable, "-m", "sim.integrator_sweep", *argv, "--out",
                            str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 2 and needle in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())
