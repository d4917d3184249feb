"""NoisePath (model/blocks/fastpath.py), the compiled noise path, against the per-word twins
chained one raw word at a time (emulator.trial -> controller.capture -> health.push ->
conditioner.push -> packer.push -> gauss.push), item for item, for several configurations.

No timing here: speed is measured by ``measure_speed`` (make bench)."""

import math

import numpy as np
import pytest

from model.blocks.conditioner import FOLD, PASS, VON_NEUMANN, BitPacker, Conditioner
from model.blocks.config import (ArrayConfig, ConditionerConfig, EmulatorConfig, GaussConfig,
                                 HealthConfig)
from model.blocks.emulator import MTJArrayEmulator
from model.blocks.fastpath import NoisePath, xoshiro_steps
from model.blocks.gaussian import GaussianGenerator
from model.blocks.health import HealthMonitor
from model.blocks.mtj_array import MTJArrayController
from model.blocks.xoshiro import Xoshiro128pp, seeded_state
from model.devices.mtj import default_emulator_config


def logistic_table(code_width, prob_bits):
    n, top = 1 << code_width, (1 << prob_bits) - 1
    mid, scale = (n - 1) / 2, max(1.0, n / 12)
    return tuple(int(round(top / (1 + math.exp(-(k - mid) / scale)))) for k in range(n))


def chain(emu_cfg, hcfg, ccfg, gcfg, seed, n_sweeps, cond_mode, cond_k, gauss_mode,
          cal_enable=True, offsets=None):
    """The per-word twins chained as sim/cocotb_readout.py chains them."""
    a = emu_cfg.array
    emu = MTJArrayEmulator(emu_cfg)
    emu.reseed(seed)
    if offsets is not None:
        emu.offsets[:] = np.asarray(offsets).reshape(a.rows, a.cols)
    ctrl = MTJArrayController(a)
    ctrl.cal_enable = cal_enable
    health, cond = HealthMonitor(hcfg), Conditioner(ccfg)
    packer, gauss = BitPacker(ccfg), GaussianGenerator(gcfg)
    cond.set_mode(cond_mode, cond_k)
    gauss.mode = gauss_mode
    raw, alarm, cbits, words, samples = [], [], [], [], []
    for _ in range(n_sweeps * a.rows):
        bits = emu.trial(ctrl.next_row, ctrl.amps_for_next_row())
        row, word = ctrl.capture(bits)
        raw.append(bits)
        alarm.append((ctrl.last_alarm >> np.arange(a.cols)) & 1)
        for r, b, v in health.push(row, word, ctrl.last_alarm):
            cb, cv = cond.push(r, b, v)
            cbits.extend((cb >> c) & 1 for c in range(a.cols) if (cv >> c) & 1)
            for w in packer.push(cb, cv):
                words.append(w)
                samples.extend(gauss.push(w))
    shape = (n_sweeps, a.rows, a.cols)
    return dict(raw=np.array(raw).reshape(shape), alarm=np.array(alarm).reshape(shape),
                cbits=np.array(cbits, dtype=np.uint8), words=np.array(words, dtype=np.uint64),
                samples=np.array(samples, dtype=np.int64), emu=emu, ctrl=ctrl, health=health,
                cond=cond)


def device_cfg(seed):
    a = ArrayConfig()
    table, offsets = default_emulator_config(a, seed=seed)
    return EmulatorConfig(array=a, table=tuple(table), offsets=tuple(offsets), seed=seed)


def small_cfg(rows, cols, code_width, prob_bits, offset_width, code_init, window_log2,
              step_shift, deadband, offsets):
    a = ArrayConfig(rows=rows, cols=cols, code_width=code_width, reset_cycles=1, pulse_cycles=1,
                    window_log2=window_log2, step_shift=step_shift, deadband=deadband,
                    code_init=code_init)
    return EmulatorConfig(array=a, table=logistic_table(code_width, prob_bits),
                          offsets=tuple(int(v) for v in offsets), prob_bits=prob_bits,
                          offset_width=offset_width, warmup_steps=5, seed=7)


def case(name):
    """(emu_cfg, health_cfg, cond_cfg, gauss_cfg, seed, sweeps, settings, offsets)."""
    if name == "default_8x8_fold2_cbd":
        e = device_cfg(3)
        a = e.array
        return (e, HealthConfig(a), ConditionerConfig(a), GaussConfig(), 3, 500,
                dict(cond_mode=FOLD, cond_k=2, gauss_mode=0), None)
    if name == "3x5_calibrating_vn_sum12_holdback":
        # code_init far from the balanced code: calibration moves every code; short health
        # windows (READOUT_SMALL of sim/configs.py) so the APT and lag-1 windows close often.
        rng = np.random.default_rng(11)
        e = small_cfg(3, 5, 8, 16, 8, 90, 3, 1, 0, rng.integers(-20, 20, 15))
        a = e.array
        # H = 0.5 (the declared default before SP 800-90B measured 0.8): looser cutoffs keep
        # this case's cells passing long enough to give the 50 samples its claims need.
        return (e, HealthConfig(a, apt_window=64, corr_window=64, alpha_log2=-20, holdback=2,
                                min_entropy=0.5),
                ConditionerConfig(a, max_fold=8, word_bits=32),
                GaussConfig(word_bits=32, cbd_bits=16, uniform_bits=8), 0xDEADBEEF, 2000,
                dict(cond_mode=VON_NEUMANN, cond_k=0, gauss_mode=1), None)
    if name == "4x4_failing_cells_fold3_cbd":
        # 5-bit codes: cells with an extreme offset drive their code to 0 or CMAX (calibration
        # alarm -> health 'sat'), and stuck cells fail the repetition count test. The plain
        # (unbalanced) CBD popcount here; the default case has the balanced one.
        offs = np.zeros(16, dtype=int)
        offs[[1, 6]] = 15
        offs[[9, 14]] = -16
        e = small_cfg(4, 4, 5, 9, 5, 16, 3, 0, 0, offs)
        a = e.array
        return (e, HealthConfig(a, apt_window=32, corr_window=32, alpha_log2=-20,
                                min_entropy=0.8, holdback=1),
                ConditionerConfig(a, max_fold=4, word_bits=16),
                GaussConfig(word_bits=16, cbd_bits=8, uniform_bits=4, int_bits=3, frac_bits=6,
                            cbd_balanced=False),
                12345, 800, dict(cond_mode=FOLD, cond_k=3, gauss_mode=0), None)
    if name == "2x7_pass_nocal_sum12_offsets":
        rng = np.random.default_rng(5)
        e = small_cfg(2, 7, 6, 12, 6, 32, 4, 1, 1, rng.integers(-32, 32, 14))
        a = e.array
        offsets = rng.integers(-8, 8, 14)           # written "through CELL_OFFSET" instead
        return (e, HealthConfig(a, apt_window=128, corr_window=16, alpha_log2=-25,
                                min_entropy=0.3),
                ConditionerConfig(a, max_fold=8, word_bits=24),
                GaussConfig(word_bits=24, cbd_bits=12, uniform_bits=3, frac_bits=4), 99, 1500,
                dict(cond_mode=PASS, cond_k=1, gauss_mode=1, cal_enable=False), offsets)
    raise KeyError(name)


CASES = ["default_8x8_fold2_cbd", "3x5_calibrating_vn_sum12_holdback",
         "4x4_failing_cells_fold3_cbd", "2x7_pass_nocal_sum12_offsets"]
_REF = {}


def reference(name):
    if name not in _REF:
        e, h, c, g, seed, sweeps, st, offs = case(name)
        _REF[name] = chain(e, h, c, g, seed, sweeps, st["cond_mode"], st["cond_k"],
                           st["gauss_mode"], st.get("cal_enable", True), offs)
    return _REF[name]


def make_path(name):
    e, h, c, g, seed, _, st, offs = case(name)
    return NoisePath(e, h, c, g, seed, offsets=offs, **st)


def chunks(total, rng):
    """Random split of ``total`` into call sizes (zero included)."""
    out = []
    while total > 0:
        n = int(min(total, rng.choice([0, 1, 7, 64, 333, 4096])))
        out.append(n)
        total -= n
    return out


@pytest.mark.parametrize("name", CASES)
def test_raw_words_and_final_state(name):
    ref = reference(name)
    sweeps = case(name)[5]
    p = make_path(name)
    rng = np.random.default_rng(1)
    got_b, got_a = [], []
    for n in chunks(sweeps, rng):
        b, al = p.run_raw(n)
        got_b.append(b)
        got_a.append(al)
    b, al = np.concatenate(got_b), np.concatenate(got_a)
    first = np.argwhere(b != ref["raw"])
    assert first.size == 0, f"{name}: raw bit differs first at (sweep,row,col) {first[0]}"
    assert np.array_equal(al, ref["alarm"]), f"{name}: raw-word alarm fields differ"
    ctrl, health, cond, emu = ref["ctrl"], ref["health"], ref["cond"], ref["emu"]
    assert np.array_equal(p.codes, ctrl.codes) and np.array_equal(p.ones, ctrl.ones), name
    assert np.array_equal(p.alarms, ctrl.alarms) and p.trial == ctrl.trial, name
    assert np.array_equal(p.gen_state, emu.gen.state), f"{name}: generator state"
    hs = p.health_status
    for k in ("rct", "apt", "corr", "sat"):
        assert np.array_equal(hs[k], getattr(health, k)), f"{name}: health status {k}"
    acc, cnt = p.cond_state
    if cond.mode in (FOLD, VON_NEUMANN):
        assert np.array_equal(acc, cond.acc) and np.array_equal(cnt, cond.cnt), name


@pytest.mark.parametrize("name", CASES)
def test_taps_match_chained_twins(name):
    ref = reference(name)
    rng = np.random.default_rng(2)
    # conditioned bits, in irregular calls
    p = make_path(name)
    n = ref["cbits"].size
    got = np.concatenate([p.conditioned_bits(k) for k in chunks(n, rng)] + [np.zeros(0, np.uint8)])
    bad = np.flatnonzero(got != ref["cbits"])
    assert bad.size == 0, f"{name}: conditioned bit {bad[:1]} of {n} differs"
    # packed words
    p = make_path(name)
    n = ref["words"].size
    got = np.concatenate([p.packed_words(k) for k in chunks(n, rng)] + [np.zeros(0, np.uint64)])
    bad = np.flatnonzero(got != ref["words"])
    assert bad.size == 0, f"{name}: packed word {bad[:1]} of {n} differs"
    # Gaussian samples
    p = make_path(name)
    n = ref["samples"].size
    got = np.concatenate([p.gauss_samples(k) for k in chunks(n, rng)] + [np.zeros(0, np.int64)])
    bad = np.flatnonzero(got != ref["samples"])
    assert bad.size == 0, f"{name}: sample {bad[:1]} of {n} differs"
    assert np.array_equal(p.fp.to_float(ref["samples"][:10]),
                          make_path(name).gauss_values(10)), name


def test_cases_exercise_what_they_claim():
    """The configurations really move codes, raise alarms and fail cells (else the bit-exact
    tests above would not cover calibration and masking)."""
    e, *_ = case("3x5_calibrating_vn_sum12_holdback")
    r = reference("3x5_calibrating_vn_sum12_holdback")
    assert np.all(r["ctrl"].codes != e.array.code_init), r["ctrl"].codes
    h = r["health"]
    assert h.rct.any() and h.apt.any() and h.corr.any() and not h.masked.all(), h.masked
    r = reference("4x4_failing_cells_fold3_cbd")
    h = r["health"]
    assert h.sat.any() and h.rct.any() and r["ctrl"].alarms.any(), (h.sat, h.rct)
    assert not h.masked.all(), "some cells must stay alive"
    r = reference("2x7_pass_nocal_sum12_offsets")
    assert np.all(r["ctrl"].codes == 32)
    # both CBD popcounts are covered (balanced by default, plain in the 4x4 case)
    assert case("default_8x8_fold2_cbd")[3].cbd_balanced
    assert not case("4x4_failing_cells_fold3_cbd")[3].cbd_balanced
    for name in CASES:
        r = reference(name)
        assert r["samples"].size >= 50, f"{name}: too few samples to compare"


def test_tap_sharing_one_stream():
    """Taps draw from one run: bits taken by conditioned_bits are not packed again, whatever
    the split, and run_raw runs new sweeps whose conditioned bits join the buffer."""
    name = "3x5_calibrating_vn_sum12_holdback"
    ref = reference(name)
    p = make_path(name)
    a = p.conditioned_bits(37)
    w = p.packed_words(5)
    exp = np.packbits(ref["cbits"][37:37 + 160].reshape(5, 32), axis=1, bitorder="little")
    assert np.array_equal(a, ref["cbits"][:37])
    assert np.array_equal(w, exp.view("<u4").ravel().astype(np.uint64))
    q = make_path(name)
    q.run_raw(10)
    q.conditioned_bits(3)
    s0 = q.sweeps_run
    b, _ = q.run_raw(4)
    assert np.array_equal(b, ref["raw"][s0:s0 + 4])


def test_all_masked_raises_instead_of_hanging():
    a = ArrayConfig(rows=1, cols=2, code_width=3, code_init=0)
    e = EmulatorConfig(array=a, table=(0,) * 8, prob_bits=8)     # every cell stuck at 0
    p = NoisePath(e, HealthConfig(a, alpha_log2=-20), ConditionerConfig(a),
                  GaussConfig(), cond_mode=PASS, cond_k=1)
    with pytest.raises(RuntimeError, match="masked"):
        p.conditioned_bits(10**6)


@pytest.mark.parametrize("kw, msg", [
    (dict(cond_mode=4), "cond_mode"), (dict(cond_k=9), "cond_k"), (dict(gauss_mode=2), "mode"),
    (dict(seed=-1), "seed"), (dict(offsets=np.zeros(3, int)), "offsets"),
    (dict(cal_enable=1), "cal_enable"), (dict(gauss_cfg=GaussConfig(word_bits=16, cbd_bits=16)), "word_bits"),
    (dict(health_cfg=HealthConfig(ArrayConfig(rows=2))), "health_cfg"),
])
def test_bad_parameters(kw, msg):
    e = device_cfg(1)
    with pytest.raises(ValueError, match=msg):
        NoisePath(e, **kw)


@pytest.mark.parametrize("seed", [0, 1, 0xFFFF_FFFF])
def test_xoshiro_steps_matches_step(seed):
    st = seeded_state(seed, 5)
    g = Xoshiro128pp(st)
    ref = np.array([g.step() for _ in range(300)])
    out, new = xoshiro_steps(st, 300)
    assert np.array_equal(out, ref) and np.array_equal(new, g.state), f"seed={seed}"


def test_xoshiro_steps_long_run_compiled_equals_numpy_loop():
    """Xoshiro128pp.steps hands long runs to the compiled loop; same outputs and state."""
    st = seeded_state(0x1234_5678, 8)
    fast, slow = Xoshiro128pp(st), Xoshiro128pp(st)
    slow.compiled_min_steps = 1 << 62                    # force the numpy loop
    n = Xoshiro128pp.compiled_min_steps + 3
    a, b = fast.steps(n), slow.steps(n)
    assert np.array_equal(a, b) and np.array_equal(fast.state, slow.state)
    assert a.dtype == np.uint32 and fast.state.dtype == np.uint32


def test_emulator_sweeps_long_run_matches_trials():
    """MTJArrayEmulator.sweeps (compiled generator steps for long runs) equals trial() calls."""
    e = device_cfg(2)
    a = e.array
    amps = np.random.default_rng(4).integers(100, 160, (a.rows, a.cols))
    fast, slow = MTJArrayEmulator(e), MTJArrayEmulator(e)
    sweeps = Xoshiro128pp.compiled_min_steps // a.rows + 2
    got = fast.sweeps(amps, sweeps)
    want = np.array([[slow.trial(r, amps[r]) for r in range(a.rows)] for _ in range(sweeps)])
    assert np.array_equal(got, want) and np.array_equal(fast.gen.state, slow.gen.state)
