"""HealthMonitor: cutoffs against SP 800-90B and exact arithmetic, the twin
(model/blocks/health.py) against hand-built sequences from docs/trng-readout.md, and the RTL
(hw/health.py) against the twin in Amaranth's simulator.

The small configuration SMALL makes every cutoff reachable in a short run (printed by
test_small_cutoffs): W_APT = n_corr = 32, alpha = 2**-20, H = 1 -> C_RCT = 21, C_APT = 30,
L = 3, U = 29 (derived by hand below).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Fragment, Module
from amaranth.sim import Simulator

from hw.health import HealthMonitor as RTL
from model.blocks.config import ArrayConfig, HealthConfig
from model.blocks.health import HealthMonitor as Twin
from model.blocks.health import (apt_cutoff, corr_bounds, critbinom, detection_delay_bound,
                                 escaped_bits, false_alarm_rates, rct_cutoff)
from tests.simutil import run_sim


def small(rows=3, cols=4, holdback=0, **kw):
    return HealthConfig(array=ArrayConfig(rows=rows, cols=cols), min_entropy=1.0,
                        alpha_log2=-20, apt_window=32, corr_window=32, holdback=holdback, **kw)


SMALL = small()


# ------------------------------------------------------------------------------------------------
# cutoffs
def exact_critbinom_half(n, alpha_log2):
    """Smallest k with P(Bin(n, 1/2) > k) <= 2**alpha_log2, in integers."""
    e = n + alpha_log2                         # tail / 2**n <= 2**alpha_log2  <=>
    ok = (lambda t: t <= 1 << e) if e >= 0 else (lambda t: t << -e <= 1)   # noqa: E731
    tail, k, term = 0, n, 1                    # tail = sum_{j > k} C(n, j); term = C(n, k)
    while k > 0 and ok(tail + term):
        tail += term
        term = term * k // (n - k + 1)         # C(n, k - 1)
        k -= 1
    return k


def exact_critbinom(n, p, alpha):
    """Same for any p, in rational arithmetic on the float p (small n only)."""
    p, q, alpha = Fraction(p), 1 - Fraction(p), Fraction(alpha)
    tail, k = Fraction(0), n
    while k > 0 and tail + math.comb(n, k) * p ** k * q ** (n - k) <= alpha:
        tail += math.comb(n, k) * p ** k * q ** (n - k)
        k -= 1
    return k


def test_published_cutoffs():
    """SP 800-90B §4.4: C_RCT = 41 at alpha = 2**-40, H = 1; C_APT (W = 1024, H = 1) = 589 at
    2**-20 and 625 at 2**-40 (the standard's published figures)."""
    a = ArrayConfig()
    assert rct_cutoff(HealthConfig(array=a, min_entropy=1.0, alpha_log2=-40)) == 41
    assert apt_cutoff(HealthConfig(array=a, min_entropy=1.0, alpha_log2=-20)) == 589
    assert apt_cutoff(HealthConfig(array=a, min_entropy=1.0, alpha_log2=-40)) == 625


def test_cutoffs_exact_arithmetic():
    a = ArrayConfig()
    # RCT from the formula in rational arithmetic: 30 / 0.3 is exactly 100
    assert rct_cutoff(HealthConfig(array=a, min_entropy=0.3, alpha_log2=-30)) == 101
    assert rct_cutoff(HealthConfig(array=a, min_entropy=0.7, alpha_log2=-21)) == 1 + 30
    assert rct_cutoff(HealthConfig(array=a, min_entropy=0.5, alpha_log2=-30)) == 61
    # CRITBINOM at p = 1/2 against integer arithmetic, the lag-1 bounds with it
    for n in (16, 32, 100, 1024, 4096):
        for al in (-20, -27, -40, -41):
            assert critbinom(n, 0.5, 2.0 ** al) == exact_critbinom_half(n, al), (n, al)
    for n, w in ((32, 32), (1024, 1000)):
        for al in (-20, -30, -40):
            cfg = HealthConfig(array=a, alpha_log2=al, corr_window=n, apt_window=w,
                               min_entropy=1.0)
            u = exact_critbinom_half(n, al - 1)
            assert corr_bounds(cfg) == (n - u, u), (n, al)
            assert apt_cutoff(cfg) == 1 + exact_critbinom_half(w, al), (w, al)
    # p = 2**-H != 1/2, small n, exact rational tail
    for h in (0.5, 0.8, 0.25):
        for n in (16, 40, 64):
            for al in (-20, -33):
                p = 2.0 ** -h
                assert critbinom(n, p, 2.0 ** al) == exact_critbinom(n, p, 2.0 ** al), (h, n, al)


def test_small_cutoffs():
    """The SMALL configuration's cutoffs, derived by hand: C_RCT = 1 + 20/1; P(Bin(32,1/2) >= 30)
    = 529/2**32 <= 2**-20 < P(>= 29) = 5489/2**32 so CRITBINOM = 29 and C_APT = 30; at
    alpha/2 = 2**-21 (4.8e-7): 5489/2**32 = 1.28e-6 > alpha/2 >= 529/2**32 -> U = 29, L = 3."""
    tw = Twin(SMALL)
    print(f"SMALL: C_RCT={tw.c_rct} C_APT={tw.c_apt} L={tw.corr_lo} U={tw.corr_hi}")
    assert (tw.c_rct, tw.c_apt, tw.corr_lo, tw.corr_hi) == (21, 30, 3, 29)
    d = HealthConfig(array=ArrayConfig())
    print(f"defaults: C_RCT={rct_cutoff(d)} C_APT={apt_cutoff(d)} (L, U)={corr_bounds(d)}")


def test_bad_parameters():
    a = ArrayConfig()
    for kw, name in (({"min_entropy": 0.0}, "min_entropy"), ({"min_entropy": 1.01}, "min_entropy"),
                     ({"min_entropy": -0.5}, "min_entropy"), ({"min_entropy": True}, "min_entropy"),
                     ({"alpha_log2": -19}, "alpha_log2"), ({"alpha_log2": -41}, "alpha_log2"),
                     ({"alpha_log2": -30.0}, "alpha_log2"), ({"apt_window": 15}, "apt_window"),
                     ({"corr_window": 8}, "corr_window"), ({"holdback": -1}, "holdback")):
        with pytest.raises(ValueError, match=name):
            HealthConfig(array=a, **kw)
    HealthConfig(array=a, min_entropy=1.0, alpha_log2=-20)      # the edges are allowed
    HealthConfig(array=a, min_entropy=1e-3, alpha_log2=-40)
    for bad in (None, a, "cfg"):
        with pytest.raises(ValueError, match="cfg"):
            RTL(bad)
        with pytest.raises(ValueError, match="cfg"):
            Twin(bad)
    tw = Twin(SMALL)
    with pytest.raises(ValueError, match="row"):
        tw.push(1, 0, 0)                                         # rows are round-robin from 0
    with pytest.raises(ValueError, match="bits"):
        tw.push(0, 16, 0)
    with pytest.raises(ValueError, match="fault"):
        detection_delay_bound(SMALL, "bias")


# ------------------------------------------------------------------------------------------------
# twin, hand-built sequences (rows = 1: sample t of a cell is word t)
def filler(t, phase=0):
    """Healthy pattern 0,0,1,1,...: runs of 2, T = n/2, B = W/2 per window."""
    return ((t + phase) // 2) % 2


def run_twin(cfg, seqs, alarms=None):
    """seqs: list (per column) of equal-length 0/1 sequences, rows = 1. Returns the twin and the
    valid bits (T, cols) of the words that left."""
    tw = Twin(cfg)
    out = []
    for t in range(len(seqs[0])):
        bits = sum(int(s[t]) << c for c, s in enumerate(seqs))
        al = 0 if alarms is None else alarms[t]
        out += tw.push(0, bits, al)
    valid = np.array([[(v >> c) & 1 for c in range(len(seqs))] for _, _, v in out])
    return tw, valid


def first_invalid(valid, c):
    k = np.flatnonzero(valid[:, c] == 0)
    return int(k[0]) if k.size else None


def test_rct_exact_cutoff():
    cfg = small(rows=1, cols=2)
    c = rct_cutoff(cfg)
    seqs = []
    for length in (c - 1, c):
        s = [filler(t) for t in range(40)] + [0] + [1] * length + [0] + \
            [filler(t) for t in range(40)]
        seqs.append(s)
    n = min(map(len, seqs))
    tw, valid = run_twin(cfg, [s[:n] for s in seqs])
    assert first_invalid(valid, 0) is None and not tw.rct[0, 0], "run of C-1 must pass"
    assert first_invalid(valid, 1) == 41 + c - 1, "run of C fails at its C-th sample"
    assert valid[41 + c:, 1].sum() == 0, "sticky"
    st = tw.status(1)
    assert (st["rct"], st["apt"], st["corr"], st["masked"]) == (1, 0, 0, 1), st


def apt_window(ones_at_zero):
    """A 32-sample window, ref 1, zeros at the given positions."""
    return [0 if i in ones_at_zero else 1 for i in range(32)]


def test_apt_exact_cutoff_and_window_edges():
    cfg = small(rows=1, cols=3)
    assert apt_cutoff(cfg) == 30
    pre = [filler(t) for t in range(32)]          # window 0
    # window 1: col 0 B = 29 (zeros at 10, 20, 30), col 1 B = 30 reached at position 30
    # (zeros at 15, 31), col 2 B = 29 in window 1 and 29 in window 2 with the ones adjacent
    # across the boundary (the count restarts with the new window's reference)
    w_pass = apt_window({10, 20, 30})
    w_fail = apt_window({15, 31})
    w_a = apt_window({0, 1, 12})                   # ref 0! B counts zeros: 3 -> pass
    w_b = apt_window({11, 22, 31})                 # B = 29
    w_c = apt_window({10, 20, 31})                 # B = 29 again (58 if the count carried on)
    post = [filler(t) for t in range(32)]
    seqs = [pre + w_pass + post + post, pre + w_fail + post + post, pre + w_b + w_c + post]
    tw, valid = run_twin(cfg, seqs)
    assert first_invalid(valid, 0) is None and not tw.apt[0, 0]
    assert first_invalid(valid, 1) == 32 + 30, first_invalid(valid, 1)
    assert tw.status(1)["apt"] == 1 and tw.status(1)["rct"] == 0 and tw.status(1)["corr"] == 0
    assert first_invalid(valid, 2) is None, "the APT count must restart at the window boundary"
    _, valid = run_twin(cfg, [pre + w_a + post])
    assert first_invalid(valid, 0) is None


def lag1_window(transitions, start=0):
    """32 samples with transitions (vs the previous sample) exactly at the given positions."""
    out, v = [], start
    for i in range(32):
        if i in transitions:
            v ^= 1
        out.append(v)
    return out


def test_lag1_exact_bounds():
    cfg = small(rows=1, cols=4)
    lo, hi = corr_bounds(cfg)
    assert (lo, hi) == (3, 29)
    pre = [filler(t) for t in range(32)]           # ends ...1,1 (t = 30, 31 -> 1, 1); T = 16
    assert pre[-1] == 1
    # transitions at positions >= 1 so the window's first sample repeats pre's last
    many = lambda k: set(range(1, 32)) - set(range(2, 2 + 3 * (31 - k), 3))   # noqa: E731
    seq_u = lag1_window(many(hi), start=1)        # T = U: passes
    seq_u1 = lag1_window(many(hi + 1), start=1)   # T = U + 1: fails where T reaches U + 1
    seq_l = lag1_window({10, 20, 30}, start=1)    # T = L = 3: passes
    seq_l1 = lag1_window({10, 20}, start=1)       # T = 2 < L: fails at the window's end
    assert [sum(a != b for a, b in zip([1] + s[:-1], s)) for s in (seq_u, seq_u1, seq_l, seq_l1)] \
        == [hi, hi + 1, lo, lo - 1]
    post = [filler(t, 1) for t in range(64)]
    seqs = [pre + s + post for s in (seq_u, seq_u1, seq_l, seq_l1)]
    tw, valid = run_twin(cfg, seqs)
    t_fail = max(i for i in range(32) if seq_u1[i] != ([1] + seq_u1[:-1])[i])
    assert first_invalid(valid, 0) is None
    assert first_invalid(valid, 1) == 32 + t_fail, first_invalid(valid, 1)
    assert first_invalid(valid, 2) is None
    assert first_invalid(valid, 3) == 32 + 31, "T < L fails at the window's last sample"
    for c in (1, 3):
        st = tw.status(c)
        assert (st["corr"], st["rct"], st["apt"]) == (1, 0, 0), (c, st)


def test_first_sample_of_life_counts_no_transition():
    """A window of all-alternating samples at the start of life has T = n - 1 = 31 > U (fails),
    and T reaches U + 1 = 30 at sample 30, not 29."""
    cfg = small(rows=1, cols=1)
    _, valid = run_twin(cfg, [[t % 2 for t in range(40)]])
    assert first_invalid(valid, 0) == 30


def test_sat_mask_unmask_and_clear():
    cfg = small(rows=2, cols=2)
    tw = Twin(cfg)
    f = lambda t: filler(t) | (filler(t, 1) << 1)   # noqa: E731
    for t in range(10):
        for r in (0, 1):
            assert tw.push(r, f(t), 0) == [(r, f(t), 3)]
    # saturation alarm on cell (1, 0): that very word is invalid, sticky afterwards
    assert tw.push(0, f(10), 0) == [(0, f(10), 3)]
    assert tw.push(1, f(10), 0b01) == [(1, f(10), 0b10)]
    assert tw.status(2) == dict(rct=0, apt=0, corr=0, sat=1, force_mask=0, masked=1)
    assert tw.any_failed and tw.masked_count == 1
    # force mask cell 1 (row 0, col 1)
    tw.force_mask(1, 1)
    assert tw.push(0, f(11), 0) == [(0, f(11), 0b01)]
    assert tw.push(1, f(11), 0) == [(1, f(11), 0b10)]
    assert tw.masked_count == 2
    # clear does not touch force_mask; it clears sat
    tw.clear(1)
    tw.clear(2)
    assert tw.status(1)["force_mask"] == 1 and tw.status(2)["masked"] == 0
    assert tw.push(0, f(12), 0) == [(0, f(12), 0b01)]
    assert tw.push(1, f(12), 0) == [(1, f(12), 0b11)]
    tw.force_mask(1, 0)
    assert tw.push(0, f(13), 0) == [(0, f(13), 0b11)]
    assert not tw.any_failed and tw.masked_count == 0
    # out-of-range indices: read 0, write nothing
    tw.clear(99)
    tw.force_mask(4, 1)
    assert tw.status(4)["masked"] == 0 and tw.masked_count == 0


def test_clear_restarts_at_next_window():
    """After a clear in mid-window the cell's APT/lag-1 tests wait for the next window of the
    global grid; its run starts anew at once (first sample after the clear: new life)."""
    cfg = small(rows=1, cols=1)
    tw = Twin(cfg)
    seq = [t % 2 for t in range(40)]               # alternating: lag-1 fails at sample 30
    out = []
    for t, b in enumerate(seq):
        out += tw.push(0, b, 0)
    assert tw.status(0)["corr"] == 1
    tw.clear(0)                                     # 40 = window 1, position 8
    # 24 more alternating samples finish window 1 (positions 8..31) without a lag-1 failure
    for t in range(40, 64):
        out += tw.push(0, t % 2, 0)
    assert tw.status(0)["masked"] == 0, tw.status(0)
    # window 2 (from sample 64): tests active again; first sample 64 is a transition
    # (prev = sample 63), so T reaches U + 1 = 30 at position 29 -> sample 93
    for t in range(64, 100):
        out += tw.push(0, t % 2, 0)
    valid = [v for _, _, v in out]
    assert valid[40:93] == [1] * 53 and valid[93] == 0, valid[40:100]
    # RCT restarts at once after a clear: a run straddling the clear counts from the clear
    tw = Twin(cfg)
    for t in range(32):
        tw.push(0, filler(t), 0)                    # ends with 1, 1
    for _ in range(10):
        tw.push(0, 1, 0)                            # run of 12
    tw.clear(0)
    for k in range(rct_cutoff(cfg) - 1):
        assert tw.push(0, 1, 0)[0][2] == 1, k       # new run: 1 .. C-1
    assert tw.push(0, 1, 0)[0][2] == 0


def test_holdback_stuck_cell_never_released():
    """D = C_RCT - 1 (the stuck-at detection bound): a cell stuck from any sample on releases no
    stuck bit; with smaller D exactly max(0, j - D) of them escape (j: detection index)."""
    seed = 31
    rng = np.random.default_rng(seed)
    base = small(rows=2, cols=3)
    j_max = detection_delay_bound(base, "stuck")
    assert j_max == rct_cutoff(base) - 1
    for d in (0, 3, j_max):
        cfg = small(rows=2, cols=3, holdback=d)
        for trial in range(6):
            s = 200
            t0 = int(rng.integers(40, 120))
            v = int(rng.integers(0, 2))
            bits = np.array([[[filler(t, r + 2 * c) for c in range(3)] for r in range(2)]
                             for t in range(s)])
            bits[t0:, 1, 2] = v
            tw = Twin(cfg)
            valid = []
            for t in range(s):
                for r in range(2):
                    for _, _, val in tw.push(r, int(sum(bits[t, r, c] << c for c in range(3))), 0):
                        valid.append([(val >> c) & 1 for c in range(3)])
            valid = np.array(valid, dtype=bool).reshape(-1, 2, 3)   # (sweeps released, r, c)
            assert valid.shape[0] == s - d
            cell = valid[:, 1, 2]
            # detection index: the run starts at t0 unless the previous samples equal v
            run0 = t0
            while run0 > 0 and bits[run0 - 1, 1, 2] == v:
                run0 -= 1
            j = run0 + rct_cutoff(cfg) - 1 - t0
            assert 0 <= j <= j_max
            escaped = int(cell[t0:].sum())
            assert escaped == escaped_bits(j, d), f"seed={seed} D={d} t0={t0} j={j}: {escaped}"
            # the cell's word of sweep t leaves valid iff its exit (after sweep t + D) precedes
            # the detection at sweep t0 + j; every other cell is healthy throughout
            want = np.ones_like(valid)
            want[:, 1, 2] = np.arange(s - d) < t0 + j - d
            assert np.array_equal(valid, want), f"seed={seed} D={d} t0={t0}"
            assert np.array_equal(tw.run_sweeps(bits), valid), f"seed={seed} D={d}"
            if d == j_max:
                assert escaped == 0


def test_alternating_detection_bound():
    """The worst case of the alternating fault reaches detection_delay_bound exactly; random
    onsets never exceed it."""
    cfg = small(rows=1, cols=1)
    n = cfg.corr_window
    lo, hi = corr_bounds(cfg)
    bound = detection_delay_bound(cfg, "alternating")

    def detect_index(healthy, start):
        seq = healthy + [(start + i) % 2 for i in range(6 * n)]
        ff, test = Twin(cfg).first_fail(np.array(seq).reshape(-1, 1, 1))
        return int(ff[0, 0]) - len(healthy)
    # worst case: onset at position L - 1 of a window with no transition before it (the
    # healthy filler ends with 1, 1; the first faulty sample repeats it)
    worst = [filler(t) for t in range(2 * n)] + [1] * (lo - 1)
    assert worst[2 * n - 1] == 1
    assert detect_index(worst, 1) == bound == 2 * hi + 1
    seed = 32
    rng = np.random.default_rng(seed)
    for _ in range(40):
        k = int(rng.integers(2 * n, 4 * n))
        healthy = [filler(t) for t in range(k)]
        assert detect_index(healthy, int(rng.integers(0, 2))) <= bound, f"seed={seed} k={k}"


# ------------------------------------------------------------------------------------------------
# twin fast path
def faulty_bits(cfg, sweeps, rng):
    """Random bits: per cell one of healthy / biased / stuck from t0 / alternating from t0 /
    sticky Markov, plus rare alarms."""
    a = cfg.array
    bits = (rng.random((sweeps, a.rows, a.cols)) < 0.5).astype(np.int8)
    for r in range(a.rows):
        for c in range(a.cols):
            kind = rng.integers(0, 6)
            t0 = int(rng.integers(0, sweeps))
            if kind == 1:
                bits[:, r, c] = rng.random(sweeps) < 0.9
            elif kind == 2:
                bits[t0:, r, c] = rng.integers(0, 2)
            elif kind == 3:
                bits[t0:, r, c] = (np.arange(sweeps - t0) + rng.integers(0, 2)) % 2
            elif kind == 4:
                flips = rng.random(sweeps) < 0.05
                bits[:, r, c] = np.cumsum(flips) % 2
    alarms = rng.random((sweeps, a.rows, a.cols)) < 0.0005
    return bits, alarms


@pytest.mark.parametrize("holdback", [0, 2])
def test_fast_path_matches_push(holdback):
    seed = 40 + holdback
    rng = np.random.default_rng(seed)
    cfg = small(holdback=holdback)
    for trial in range(5):
        bits, alarms = faulty_bits(cfg, 300, rng)
        tw = Twin(cfg)
        valid = []
        for t in range(300):
            for r in range(3):
                w = int(sum(int(bits[t, r, c]) << c for c in range(4)))
                al = int(sum(int(alarms[t, r, c]) << c for c in range(4)))
                for _, _, v in tw.push(r, w, al):
                    valid.append([(v >> c) & 1 for c in range(4)])
        valid = np.array(valid, dtype=bool).reshape(-1, 3, 4)
        fast = tw.run_sweeps(bits, alarms)
        assert fast.shape == valid.shape == (300 - holdback, 3, 4)
        assert np.array_equal(fast, valid), f"seed={seed} trial={trial}"
        ff, test = tw.first_fail(bits, alarms)
        assert np.array_equal(ff < 300, tw.failed), f"seed={seed} trial={trial}"
        for name in ("rct", "apt", "corr", "sat"):
            assert np.all(getattr(tw, name)[test == name]), f"seed={seed} {name}"


def test_no_false_alarm_1e7_healthy_bits_defaults():
    """Default HealthConfig, 8x8 array, cells at p spread over [0.42, 0.58] (the calibrated
    spread): 1e7 bits, no cell fails. The expected number of false alarms from the exact
    per-test rates is checked to be small first, so a failure here means a wrong test, not bad
    luck. Positive control: the same run with one cell stuck from some sweep on fails that cell
    within C_RCT - 1 samples, and only that cell."""
    seed = 50
    cfg = HealthConfig(array=ArrayConfig())
    a = cfg.array
    sweeps = 10_000_000 // a.cells + 1
    rng = np.random.default_rng(seed)
    p = rng.permutation(np.linspace(0.42, 0.58, a.cells)).reshape(a.rows, a.cols)
    expect = 0.0
    for pc in p.reshape(-1):
        r = false_alarm_rates(cfg, float(pc))
        expect += sweeps * r["rct"] + sweeps / cfg.apt_window * r["apt"] \
            + sweeps / cfg.corr_window * r["corr"]
    assert expect < 1e-2, f"expected false alarms {expect}: defaults too tight for the spread"
    bits = np.empty((sweeps, a.rows, a.cols), dtype=np.int8)
    for k in range(0, sweeps, 20_000):
        m = min(20_000, sweeps - k)
        bits[k:k + m] = rng.random((m, a.rows, a.cols)) < p
    tw = Twin(cfg)
    valid = tw.run_sweeps(bits)
    ff, test = tw.first_fail(bits)
    assert valid.all(), f"seed={seed}: false alarms {[(i, ff.flat[i], test.flat[i]) for i in np.flatnonzero(ff < sweeps)]}"
    t0 = sweeps // 2
    bits[t0:, 5, 6] = 1
    ff, test = tw.first_fail(bits)
    assert ff[5, 6] - t0 <= rct_cutoff(cfg) - 1 and test[5, 6] == "rct", f"seed={seed}"
    ff[5, 6] = sweeps
    assert np.all(ff == sweeps), f"seed={seed}"


# ------------------------------------------------------------------------------------------------
# RTL against the twin
def pack(vals):
    return int(sum(int(v) << i for i, v in enumerate(vals)))


STATUS_FIELDS = ("rct", "apt", "corr", "sat", "force_mask", "masked")


class Bench:
    """Cycle-by-cycle driver of the RTL with the twin in lockstep.

    In each cycle k, before the twin applies that cycle's strobe and word, it records a snapshot
    (the RTL state of cycle k+1): cell_status(k+3) must equal the snapshot of cycle k for the
    cell_sel of cycle k; any_failed(k) the snapshot of k-2; masked_count(k) that of k-1-lat."""

    def __init__(self, cfg, dut, word_fn, rng, tag):
        self.cfg, self.dut, self.word_fn, self.rng, self.tag = cfg, dut, word_fn, rng, tag
        self.twin = Twin(cfg)
        self.cycle = 0
        self.pending_in = None        # (row, bits, alarm) offered, not yet accepted
        self.next_row = 0
        self.sent = 0
        self.expected = []
        self.got = []
        self.snaps = []               # (cell_sel, status dict, any_failed, masked_count)
        self.checked_status = 0
        self.acc_cycles = []          # cycles a word was accepted on i
        self.out_cycles = []          # cycles a word left on o

    async def step(self, ctx, *, in_prob=1.0, out_prob=1.0, sel=None, clear=0, fm_we=0,
                   fm_wd=0):
        d, tw, cfg = self.dut, self.twin, self.cfg
        a = cfg.array
        if self.pending_in is None and self.rng.random() < in_prob:
            bits, al = self.word_fn(self.next_row, self.sent)
            self.pending_in = (self.next_row, bits, al)
        if sel is None:
            sel = int(self.rng.integers(0, a.cells + 2))
        o_ready = int(self.rng.random() < out_prob)
        ctx.set(d.i.valid, int(self.pending_in is not None))
        if self.pending_in is not None:
            r, b, al = self.pending_in
            ctx.set(d.i.payload.row, r)
            ctx.set(d.i.payload.bits, b)
            ctx.set(d.i.payload.alarm, al)
        for sig, v in ((d.o.ready, o_ready), (d.cell_sel, sel), (d.clear, clear),
                       (d.force_mask_we, fm_we), (d.force_mask_wdata, fm_wd)):
            ctx.set(sig, v)
        msg = f"[{self.tag}] cycle {self.cycle}"
        # snapshot of the twin before this cycle's strobe and word
        self.snaps.append((sel, tw.status(sel) if 0 <= sel < a.cells else
                           dict.fromkeys(STATUS_FIELDS, 0), tw.any_failed, tw.masked_count))
        k = self.cycle
        if k >= RTL.CELL_READ_LATENCY:
            s0, want, _, _ = self.snaps[k - RTL.CELL_READ_LATENCY]
            got = {f: ctx.get(getattr(d.cell_status, f)) for f in STATUS_FIELDS}
            assert got == want, f"{msg}: cell_status of {s0}: {got}, twin {want}"
            self.checked_status += 1
        if k >= 2:
            assert ctx.get(d.any_failed) == self.snaps[k - 2][2], f"{msg}: any_failed"
        lat = d.masked_count_latency
        if k >= lat + 1:
            assert ctx.get(d.masked_count) == self.snaps[k - lat - 1][3], \
                f"{msg}: masked_count {ctx.get(d.masked_count)}, twin {self.snaps[k - lat - 1][3]}"
        # the twin: strobes first, then the word accepted in this cycle
        if clear:
            tw.clear(sel)
        if fm_we:
            tw.force_mask(sel, fm_wd)
        if self.pending_in is not None and ctx.get(d.i.ready):
            self.expected += tw.push(*self.pending_in)
            self.acc_cycles.append(self.cycle)
            self.pending_in = None
            self.next_row = (self.next_row + 1) % a.rows
            self.sent += 1
        if ctx.get(d.o.valid) and o_ready:
            w = (ctx.get(d.o.payload.row), ctx.get(d.o.payload.bits), ctx.get(d.o.payload.valid))
            assert self.expected, f"{msg}: word {w} before any was due"
            want = self.expected.pop(0)
            assert w == want, f"{msg}: output {w}, twin {want}"
            self.got.append(w)
            self.out_cycles.append(self.cycle)
        await ctx.tick()
        self.cycle += 1

    async def drain(self, ctx, limit=100):
        for _ in range(limit):
            if not self.expected and self.pending_in is None and not ctx.get(self.dut.o.valid):
                break
            await self.step(ctx, in_prob=0.0)
        assert not self.expected, f"[{self.tag}] words not delivered: {self.expected}"


def rtl_run(cfg, body, domain=None):
    run_sim(RTL(cfg), body, domain)


def cell_sources(cfg, rng):
    """word_fn(row, k) -> (bits, alarm) with per-cell behaviours that trip every test."""
    a = cfg.array
    kinds = rng.integers(0, 6, size=(a.rows, a.cols))
    state = np.zeros((a.rows, a.cols), dtype=np.int64)

    def fn(row, k):
        bits = []
        for c in range(a.cols):
            kind, s = kinds[row, c], state[row, c]
            if kind == 0:
                b = int(rng.random() < 0.5)
            elif kind == 1:
                b = int(rng.random() < 0.93)
            elif kind == 2:                     # stuck spells
                b = s if rng.random() < 0.97 else 1 - s
            elif kind == 3:                     # alternating with rare slips
                b = 1 - s if rng.random() < 0.97 else s
            elif kind == 4:
                b = int(rng.random() < 0.5)
            else:                               # sticky Markov
                b = s if rng.random() < 0.85 else 1 - s
            state[row, c] = b
            bits.append(b)
        al = pack(rng.random(a.cols) < 0.002)
        return pack(bits), al
    return fn


RTL_CASES = {
    "3x4_d0": small(),
    "3x4_d2": small(holdback=2),
    "1x3_d0": small(rows=1, cols=3),
    "1x2_d1": small(rows=1, cols=2, holdback=1),
}


@pytest.mark.parametrize("name", list(RTL_CASES))
def test_rtl_random_against_twin(name):
    cfg = RTL_CASES[name]
    seed = 100 + list(RTL_CASES).index(name)
    tag = f"{name} seed={seed}"
    rng = np.random.default_rng(seed)
    n_cycles = 3500

    async def body(ctx, dut):
        b = Bench(cfg, dut, cell_sources(cfg, rng), rng, tag)
        in_p, out_p = 0.8, 0.8
        for _ in range(n_cycles):
            if rng.random() < 0.01:
                in_p = float(rng.choice([0.3, 0.8, 1.0]))
                out_p = float(rng.choice([0.1, 0.6, 1.0]))
            r = rng.random()
            await b.step(ctx, in_prob=in_p, out_prob=out_p,
                         clear=int(r < 0.02), fm_we=int(0.02 <= r < 0.03),
                         fm_wd=int(rng.random() < 0.5))
        await b.drain(ctx)
        tw = b.twin
        print(f"{tag}: {b.sent} words in, {len(b.got)} out, masked {tw.masked_count}")
        assert b.sent > n_cycles // 6, tag
        assert len(b.got) == b.sent - cfg.holdback * cfg.array.rows, tag
        assert b.checked_status > n_cycles - 10, tag
        # every test and the mask fired at some point
        seen = {f: False for f in STATUS_FIELDS}
        for _, st, _, _ in b.snaps:
            for f in STATUS_FIELDS:
                seen[f] |= bool(st[f])
        assert all(seen.values()), f"{tag}: not exercised: {seen}"
        assert any(v != (1 << cfg.array.cols) - 1 for _, _, v in b.got), tag
    rtl_run(cfg, body)


def test_rtl_throughput_and_latency():
    """i.valid and o.ready high: at least one word every 2 cycles (in fact 2 per 3), each word
    o.valid 2 cycles after it was accepted; o.ready low: i.ready falls once the output buffer's 2
    entries are promised, and nothing is lost."""
    for cfg in (small(), small(rows=1, cols=2)):
        tag = f"throughput rows={cfg.array.rows}"
        rng = np.random.default_rng(60)

        async def body(ctx, dut):
            b = Bench(cfg, dut, cell_sources(cfg, rng), rng, tag)
            for _ in range(60):
                await b.step(ctx)
            acc, outs = b.acc_cycles, b.out_cycles
            assert acc[0] == 0 and len(acc) >= 60 // 2, f"[{tag}] accepts {acc}"
            assert np.all(np.diff(acc) <= 2), f"[{tag}] accepts {acc}"
            assert outs == [a + 2 for a in acc[:len(outs)]] and len(outs) >= len(acc) - 2, \
                f"[{tag}] accepts {acc}, outputs {outs}"
            for _ in range(10):
                await b.step(ctx, out_prob=0.0)
            assert ctx.get(dut.i.ready) == 0 and ctx.get(dut.o.valid) == 1, f"[{tag}]"
            assert len(b.expected) == 2, f"[{tag}] {len(b.expected)} words inside"
            await b.drain(ctx)
        rtl_run(cfg, body)


def test_rtl_directed_cutoffs_and_csr():
    """Hand-built streams (exact RCT/APT/lag-1 edges, sat) through the RTL, compared with the
    twin word by word, plus force_mask / clear via the CSR strobes at fixed cycles."""
    cfg = small(rows=1, cols=4)
    c = rct_cutoff(cfg)
    pre = [filler(t) for t in range(32)]
    lag = lag1_window({10, 20}, start=1)              # T = 2 < L
    seqs = [pre + [0] + [1] * c + [0] + [filler(t) for t in range(40)],
            pre + apt_window({15, 31}) + [filler(t) for t in range(42)],
            pre + lag + [filler(t, 1) for t in range(42)],
            pre + [filler(t) for t in range(74)]]
    n = min(map(len, seqs))
    alarm_at = 50
    tag = "directed"

    def fn(row, k):
        bits = pack([s[k % n] for s in seqs])
        return bits, (0b1000 if k == alarm_at else 0)

    async def body(ctx, dut):
        rng = np.random.default_rng(61)
        b = Bench(cfg, dut, fn, rng, tag)
        while b.sent < n:
            await b.step(ctx, in_prob=0.5, out_prob=0.7, sel=3)
        await b.drain(ctx)
        tw = b.twin
        assert [tw.status(i)["masked"] for i in range(4)] == [1, 1, 1, 1], tag
        assert (tw.rct[0, 0], tw.apt[0, 1], tw.corr[0, 2], tw.sat[0, 3]) == (1, 1, 1, 1), tag
        # the RTL's cell_status for each cell, held selection
        for i in range(4):
            for _ in range(4):
                await b.step(ctx, in_prob=0.0, sel=i)
        # force mask cell 2, clear everything, cell 2 stays masked
        await b.step(ctx, in_prob=0.0, sel=2, fm_we=1, fm_wd=1)
        for i in range(4):
            await b.step(ctx, in_prob=0.0, sel=i, clear=1)
        for _ in range(4):
            await b.step(ctx, in_prob=0.0, sel=2)
        assert tw.masked_count == 1 and ctx.get(dut.masked_count) == 1, tag
        assert ctx.get(dut.any_failed) == 0, tag
        await b.step(ctx, in_prob=0.0, sel=2, fm_we=1, fm_wd=0)
        for _ in range(6):
            await b.step(ctx, in_prob=0.0, sel=2)
        assert ctx.get(dut.masked_count) == 0, tag
        # strobe in the cycle a word is accepted: applies before that word
        for k in range(30):
            await b.step(ctx, in_prob=1.0, sel=int(k % 4), clear=int(k % 3 == 0),
                         fm_we=int(k % 5 == 0), fm_wd=int(k % 2))
        await b.drain(ctx)
    rtl_run(cfg, body)


def test_rtl_reset_mid_stream():
    cfg = small(holdback=1)
    seed = 62
    tag = f"reset seed={seed}"
    rng = np.random.default_rng(seed)
    cd = ClockDomain("sync")

    async def body(ctx, dut):
        src = cell_sources(cfg, rng)
        b = Bench(cfg, dut, src, rng, tag)
        for _ in range(700):
            await b.step(ctx, in_prob=0.7, out_prob=0.7, clear=int(rng.random() < 0.01))
        assert b.twin.any_failed, tag
        ctx.set(cd.rst, 1)
        await ctx.tick()
        ctx.set(cd.rst, 0)
        assert ctx.get(dut.o.valid) == 0 and ctx.get(dut.any_failed) == 0, tag
        b2 = Bench(cfg, dut, src, rng, tag + " after reset")
        for _ in range(700):
            await b2.step(ctx, in_prob=0.7, out_prob=0.7)
        await b2.drain(ctx)
        assert len(b2.got) > 100, tag
    rtl_run(cfg, body, domain=cd)


def test_signature_and_small_configs():
    cfg = small()
    dut = RTL(cfg)
    Fragment.get(dut, None)
    members = dict(dut.signature.members.items())
    assert set(members) == {"i", "o", "cell_sel", "clear", "force_mask_we", "force_mask_wdata",
                            "cell_status", "any_failed", "masked_count"}
    for d in (0, 1, 3):
        for a in (ArrayConfig(rows=1, cols=1), ArrayConfig(), ArrayConfig(rows=5, cols=3)):
            Fragment.get(RTL(HealthConfig(array=a, holdback=d)), None)
