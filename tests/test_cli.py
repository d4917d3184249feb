"""Command-line entry points: bad input gives one clear line, a non-zero exit, no traceback."""

import subprocess
import sys

import pytest

from sim.meta import ROOT


@pytest.mark.parametrize("argv,needle", [
    (["-m", "sim.system", "--windows", "0"], "--windows = 0"),
    (["-m", "sim.system", "--seed", "-1"], "--seed = -1"),
    (["-m", "sim.bench", "--words", "5"], "--words = 5"),
    (["-m", "sim.bench", "--sampler-images", "0"], "--sampler-images = 0"),
    (["-m", "sim.synth", "--target", "xc7"], "xc7"),
])
def test_bad_arguments(argv, needle, tmp_path):
    r = subprocess.run([sys.executable, *argv, "--out", str(tmp_path)] if "sim.system" in argv
                       else [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert not list(tmp_path.iterdir()), "a failed run left files behind"
