"""Calibration converges under the device model's device-to-device spread (twins)."""

import numpy as np
import pytest

from hw.trng_top import default_emulator_config
from model.blocks.config import ArrayConfig
from model.blocks.emulator import MTJArrayEmulator
from model.blocks.mtj_array import (MTJArrayController, calibrate, convergence_windows,
                                    window_tolerance)

MAX_WINDOWS = 40


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_cell_converges_within_window_tolerance(seed):
    cfg = ArrayConfig()
    ecfg = default_emulator_config(cfg, seed=seed)
    emu = MTJArrayEmulator(ecfg)
    emu.reseed(seed)
    ctrl = MTJArrayController(cfg)
    p = calibrate(ctrl, emu, MAX_WINDOWS)
    tol = window_tolerance(cfg.window)
    # Before calibration the spread really is wide, or the test would prove nothing.
    assert np.abs(p[0] - 0.5).max() > 2 * tol, f"seed={seed}"
    k = convergence_windows(p, tol)
    assert k is not None, (f"seed={seed}: worst cell |p-0.5| = {np.abs(p[-1] - 0.5).max():.3f} "
                           f"> {tol:.3f} after {MAX_WINDOWS} windows")
    assert not ctrl.alarm_any, f"seed={seed}: a healthy cell raised a saturation alarm"


def test_convergence_windows_definition():
    tol = 0.1
    h = np.full((5, 1, 2), 0.5)
    h[0] = 0.9
    h[2, 0, 1] = 0.75            # leaves the band once: converged only from window 3
    assert convergence_windows(h, tol) == 3
    h[-1, 0, 0] = 0.0
    assert convergence_windows(h, tol) is None
    assert window_tolerance(64) == pytest.approx(3 * 0.5 / 8)
