"""Gaussian generator: the RTL (hw/gaussian.py) against its twin (model/blocks/gaussian.py), the
shared fixed-point definition (model/blocks/fixedpoint.py) against docs/trng-readout.md §4, and
the statistics of both modes against their exact distributions.

``Bench`` drives the RTL in Amaranth's simulator with random input gaps, random output
back-pressure, a mode schedule and optional resets, and checks the output stream sample by sample
against the twin fed with the words the RTL accepted (in the mode it accepted them in).
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from math import ceil, comb, erf, floor, lcm, sqrt

import numpy as np
import pytest
from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.sim import Simulator
from scipy import stats

from hw.gaussian import GaussianGenerator as RTL
from model.blocks.config import ArrayConfig, GaussConfig
from model.blocks.fixedpoint import (MODE_CBD, MODE_SUM12, cbd_balance_mask, cbd_popcount,
                                     cbd_raw, cbd_scale, fixed_point, saturation_possible,
                                     sum12_raw, unsaturated_range)
from model.blocks.gaussian import chi_square, GaussianGenerator as Twin
from model.blocks.gaussian import (cbd_biased_counts, cbd_biased_moments, cycles_per_word,
                                   exact_counts, exact_moments, exact_pmf, samples_per_word)

DEFAULT = GaussConfig()
# Small K and U: several samples per word (CBD) and groups per word (sum-of-12, left shift).
SMALL = GaussConfig(word_bits=32, cbd_bits=8, uniform_bits=4, int_bits=4, frac_bits=11)
# W = 48, G = 6, right shift, int_bits = 2: sum-of-12 saturates.
NARROW = GaussConfig(word_bits=48, cbd_bits=6, uniform_bits=8, int_bits=2, frac_bits=5)
# W = 64, K = 64 (6-level popcount; Q3.11: sqrt(64) = 2**3, saturates at pc = K by one LSB),
# U = 1 (64 fields, G = 4).
WIDE = GaussConfig(word_bits=64, cbd_bits=64, uniform_bits=1, int_bits=3, frac_bits=11)
CONFIGS = [DEFAULT, SMALL, NARROW, WIDE]
IDS = ["default", "small", "narrow", "wide"]
# The same with the plain (unbalanced) CBD popcount: the old behaviour, still buildable.
UNBAL = {name: replace(cfg, cbd_balanced=False) for name, cfg in zip(IDS, CONFIGS)}


def ref_mask(K, balanced=True):
    """The balance mask written out here, independently of fixedpoint.cbd_balance_mask: every
    odd bit position of the K bits (0b...1010) when balanced."""
    return sum(1 << i for i in range(1, K, 2)) if balanced else 0


def random_words(rng, cfg, n):
    return [int(x) for x in rng.integers(0, 1 << cfg.word_bits, n, dtype=np.uint64)]


# ------------------------------------------------------------------------------------------------
# RTL bench
class Bench:
    def __init__(self, cfg, rng, tag):
        self.cfg, self.rng, self.tag = cfg, rng, tag
        self.dut = RTL(cfg)
        self.rst = Signal()
        top = Module()
        top.submodules.dut = ResetInserter(self.rst)(self.dut)
        self.sim = Simulator(top)
        self.sim.add_clock(1e-6)
        self.twin = Twin(cfg)
        self.epochs = [([], [])]              # (expected, got) between resets
        self.accept_cycles = []
        self.out_cycles = []
        self.ready_trace = []
        self.held = None

    def run(self, words, *, p_valid=1.0, p_ready=1.0, mode_fn=lambda k: MODE_CBD,
            reset_after=(), max_cycles=100000, period=None):
        """Offer ``words`` in order (a word once offered stays offered until accepted); the mode
        driven while word k is offered is ``mode_fn(k)``; reset (one cycle, nothing offered or
        taken) once as soon as ``reset_after[j]`` words have been accepted; then drain.
        ``period``: offer a word only every ``period`` cycles (array-rate source), not at random.
        """
        d, rng = self.dut, self.rng

        async def tb(ctx):
            k, cyc, offered, last_out = 0, 0, False, 0
            resets = sorted(reset_after)
            while cyc < max_cycles:
                if resets and k >= resets[0]:
                    resets.pop(0)
                    ctx.set(self.rst, 1)
                    ctx.set(d.i.valid, 0)
                    ctx.set(d.o.ready, 0)
                    await ctx.tick()
                    ctx.set(self.rst, 0)
                    self.twin.reset()
                    self.held = None
                    self.epochs.append(([], []))
                    cyc += 1
                    continue
                if k < len(words) and not offered:
                    offered = (cyc % period == 0) if period else bool(rng.random() < p_valid)
                oready = int(rng.random() < p_ready)
                mode = mode_fn(k)
                ctx.set(d.mode, mode)
                ctx.set(d.i.valid, int(offered))
                if offered:
                    ctx.set(d.i.payload, words[k])
                ctx.set(d.o.ready, oready)
                iready = ctx.get(d.i.ready)
                self.ready_trace.append(iready)
                exp, got = self.epochs[-1]
                if offered and iready:
                    self.twin.mode = mode
                    exp.extend(self.twin.push(words[k]))
                    self.accept_cycles.append(cyc)
                    k, offered = k + 1, False
                ovalid = ctx.get(d.o.valid)
                if self.held is not None:      # a sample offered and not taken stays, unchanged
                    assert ovalid and ctx.get(d.o.payload) == self.held, \
                        f"[{self.tag}] cycle {cyc}: o dropped or changed a held sample"
                self.held = ctx.get(d.o.payload) if ovalid and not oready else None
                if ovalid and oready:
                    got.append(ctx.get(d.o.payload))
                    self.out_cycles.append(cyc)
                    n = len(got) - 1
                    assert n < len(exp), f"[{self.tag}] cycle {cyc}: extra sample {got[-1]}"
                    assert got[n] == exp[n], (f"[{self.tag}] cycle {cyc}: sample {n} = {got[n]}, "
                                              f"twin {exp[n]}")
                    last_out = cyc
                await ctx.tick()
                cyc += 1
                if k == len(words) and len(got) == len(exp) and cyc > last_out + 40:
                    break
            self.cycles = cyc

        self.sim.add_testbench(tb)
        self.sim.run()
        for n, (exp, got) in enumerate(self.epochs):
            if n == len(self.epochs) - 1:
                assert got == exp, f"[{self.tag}] final epoch: {len(got)} samples, twin {len(exp)}"
            else:   # samples in flight at a reset are lost: what came out is a prefix
                assert got == exp[:len(got)], f"[{self.tag}] epoch {n} before reset"
        return self


@pytest.mark.parametrize("cfg,mode", [(c, m) for c in CONFIGS for m in (MODE_CBD, MODE_SUM12)]
                         + [(UNBAL[n], MODE_CBD) for n in IDS],
                         ids=[f"{n}-{m}" for n in IDS for m in (MODE_CBD, MODE_SUM12)]
                         + [f"{n}-unbalanced-{MODE_CBD}" for n in IDS])
def test_rtl_matches_twin_backpressure(cfg, mode):
    seed = 100 + 7 * CONFIGS.index(replace(cfg, cbd_balanced=True)) + mode \
        + 50 * (not cfg.cbd_balanced)
    rng = np.random.default_rng(seed)
    n = 180 if mode == MODE_CBD else 400
    b = Bench(cfg, rng, f"seed {seed} mode {mode}")
    b.run(random_words(rng, cfg, n), p_valid=0.7, p_ready=0.6, mode_fn=lambda k: mode)
    exp, got = b.epochs[-1]
    assert len(got) == len(exp) >= 20, f"seed {seed}: only {len(got)} samples compared"


@pytest.mark.parametrize("cfg", [DEFAULT, SMALL, NARROW, UNBAL["small"]],
                         ids=IDS[:3] + ["small-unbalanced"])
def test_rtl_mode_switch_and_reset(cfg):
    """Mode toggles at random words (partial sums discarded), two resets mid-stream."""
    seed = 300 + CONFIGS.index(replace(cfg, cbd_balanced=True)) + 10 * (not cfg.cbd_balanced)
    rng = np.random.default_rng(seed)
    words = random_words(rng, cfg, 500)
    modes = np.cumsum(rng.random(len(words)) < 0.06) % 2        # runs of ~16 words per mode
    b = Bench(cfg, rng, f"seed {seed}")
    b.run(words, p_valid=0.8, p_ready=0.7, mode_fn=lambda k: int(modes[min(k, len(words) - 1)]),
          reset_after=(170, 340))
    assert len(b.epochs) == 3 and all(len(e[1]) > 10 for e in b.epochs), \
        f"seed {seed}: epochs {[len(e[1]) for e in b.epochs]}"


def test_rtl_mode_change_discards_partial_sum():
    """Sum-of-12 partial (3 of 6 words) then one CBD word then sum-of-12: the first sum-of-12
    sample after the switch is made of the 6 words after it only."""
    cfg, rng = DEFAULT, np.random.default_rng(5)
    words = random_words(rng, cfg, 3 + 1 + 6)
    modes = [1, 1, 1, 0] + [1] * 6
    b = Bench(cfg, rng, "seed 5").run(words, mode_fn=lambda k: modes[min(k, 9)])
    got = b.epochs[-1][1]
    fields = [(w >> s) & 0xFFFF for w in words[4:] for s in (0, 16)]
    cbd = cbd_raw(cfg, bin(words[3] ^ ref_mask(cfg.cbd_bits)).count("1"))
    assert got == [cbd, sum12_raw(cfg, sum(fields))], f"got {got}"


def test_rtl_corner_words():
    """Extreme words through the RTL give the doc's extreme values, computed here from the
    formulas in floating point (independent of the shared integer definition). CBD: the words
    whose K-bit chunks are all mask / all ~mask (popcount 0 / K after the balance mask; all-zero
    and all-one words when unbalanced), then all-zero and all-one words (popcount K/2 when
    balanced); sum-of-12: all-zero and all-one words."""
    for cfg in (DEFAULT, WIDE, NARROW, UNBAL["default"], UNBAL["narrow"]):
        n, K, U = cfg.frac_bits, cfg.cbd_bits, cfg.uniform_bits
        ones = (1 << cfg.word_bits) - 1
        fields = cfg.word_bits // U
        nw12 = lcm(12, fields) // fields         # words per whole number of samples
        mw = sum(ref_mask(K, cfg.cbd_balanced) << (j * K) for j in range(cfg.word_bits // K))
        words = [mw, mw ^ ones, 0, ones] + [0] * nw12 + [ones] * nw12
        mode_fn = lambda k: MODE_CBD if k < 4 else MODE_SUM12    # noqa: E731
        b = Bench(cfg, np.random.default_rng(0), f"corners {cfg}").run(words, mode_fn=mode_fn)
        got = b.epochs[-1][1]
        fp = fixed_point(cfg)
        sat = lambda r: min(max(r, fp.raw_min), fp.raw_max)     # noqa: E731
        zk = sqrt(K) * 2 ** n
        cbd_lo, cbd_hi = sat(floor(-zk + 1e-9)), sat(floor(zk + 1e-9))
        s_lo = sat(floor(-6 * 2 ** n))
        s_hi = sat(floor((6 - 12 / 2 ** U) * 2 ** n + 1e-9))
        spw = cfg.word_bits // K
        want = [cbd_lo] * spw + [cbd_hi] * spw
        want += ([0] * 2 * spw) if cfg.cbd_balanced else ([cbd_lo] * spw + [cbd_hi] * spw)
        n12 = nw12 * fields // 12
        want += [s_lo] * n12 + [s_hi] * n12
        assert got == want, f"{cfg}: {got} vs {want}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_rtl_throughput_and_latency(cfg):
    """Words offered every cycle, o.ready high: i.ready duty = 1 / cycles_per_word exactly, the
    output carries samples_per_word samples per word; a lone word's first sample appears
    ``latency`` cycles after its acceptance."""
    for mode in (MODE_CBD, MODE_SUM12):
        rng = np.random.default_rng(11 + mode)
        cpw = cycles_per_word(cfg, mode)
        nw = 72
        b = Bench(cfg, rng, f"rate {mode}").run(random_words(rng, cfg, nw), mode_fn=lambda k: mode)
        acc = b.accept_cycles
        gaps = np.diff(acc)
        assert np.all(gaps == cpw), f"{cfg} mode {mode}: accept gaps {set(gaps.tolist())}, " \
                                    f"documented {cpw}"
        # ready duty over whole periods, measured on i.ready itself
        tr = np.asarray(b.ready_trace[acc[1]:acc[-1]])
        assert tr.sum() * cpw == tr.size, f"{cfg} mode {mode}: duty {tr.mean()} vs 1/{cpw}"
        spw = samples_per_word(cfg, mode)
        assert len(b.epochs[-1][1]) == int(nw * spw), f"{cfg} mode {mode}"
        if mode == MODE_CBD:
            # back-to-back samples: one per cycle once started
            oc = np.asarray(b.out_cycles)
            assert np.all(np.diff(oc) == 1), f"{cfg}: output gaps {set(np.diff(oc).tolist())}"
    # latency: one lone CBD word, accepted in an idle cycle
    b = Bench(cfg, np.random.default_rng(1), "latency").run([12345], mode_fn=lambda k: 0)
    assert b.out_cycles[0] - b.accept_cycles[0] == b.dut.latency, \
        f"{cfg}: latency {b.out_cycles[0] - b.accept_cycles[0]}, documented {b.dut.latency}"
    # sum-of-12: the first sample completes in group j of word need-1 (groups of G fields, one
    # per cycle from the cycle after acceptance): latency + j cycles after that word's acceptance
    G, F = b.dut.group_fields, cfg.word_bits // cfg.uniform_bits
    need = ceil(12 / F)
    j = 12 // G - 1 - (need - 1) * (F // G)
    b = Bench(cfg, np.random.default_rng(2), "latency12").run([7] * need, mode_fn=lambda k: 1)
    assert b.out_cycles[0] - b.accept_cycles[need - 1] == b.dut.latency + j, \
        f"{cfg}: sum12 latency {b.out_cycles[0] - b.accept_cycles[need - 1]}"


def test_rtl_never_stalls_packer_at_array_rate():
    """The packer fills a W-bit word at most every W * row_period / cols cycles (all cells
    valid, pass-through). Offered at that rate the generator takes every word at once."""
    arr = ArrayConfig()
    for cfg in (DEFAULT, SMALL):
        period = -(-cfg.word_bits * arr.row_period_cycles // arr.cols)
        for mode in (MODE_CBD, MODE_SUM12):
            assert cycles_per_word(cfg, mode) <= period, f"{cfg} mode {mode}"
            rng = np.random.default_rng(21)
            b = Bench(cfg, rng, "array rate").run(random_words(rng, cfg, 60), period=period,
                                                   mode_fn=lambda k: mode)
            acc = np.asarray(b.accept_cycles)
            assert np.all(acc % period == 0), f"{cfg} mode {mode}: a word waited"


# ------------------------------------------------------------------------------------------------
# Fixed-point definition
def test_fixed_point_format():
    for cfg in CONFIGS:
        fp = fixed_point(cfg)
        m, n = cfg.int_bits, cfg.frac_bits
        assert fp.sample_bits == cfg.sample_bits == 1 + m + n
        assert fp.to_float(fp.raw_min) == -(2 ** m)
        assert fp.to_float(fp.raw_max) == 2 ** m - 2 ** -n
        assert fp.from_float(1.0) == 2 ** n and fp.from_float(-0.5) == -(2 ** (n - 1))
        assert fp.from_float(100.0) == fp.raw_max and fp.from_float(-100.0) == fp.raw_min
        for r in (fp.raw_min, -1, 0, 1, fp.raw_max):
            assert fp.from_unsigned(fp.to_unsigned(r)) == r
            assert fp.from_float(fp.to_float(r)) == r


def test_cbd_scale_and_corners():
    for K in (2, 3, 4, 6, 8, 16, 32, 64):
        for n in (1, 5, 11, 24):
            cfg = GaussConfig(word_bits=64 if 64 % K == 0 else 48, cbd_bits=K, frac_bits=n,
                              cbd_balanced=K % 2 == 0)
            S = cbd_scale(cfg)
            x = 2.0 ** (n + 16) / sqrt(K)
            assert S == round(x), f"K={K} n={n}: S {S}, float round {round(x)}"
    cfg = DEFAULT
    K, n, fp = cfg.cbd_bits, cfg.frac_bits, fixed_point(cfg)
    assert cbd_raw(cfg, K // 2) == 0
    for pc in range(K + 1):
        z = (2 * pc - K) / sqrt(K)
        r = cbd_raw(cfg, pc)
        assert z - 2 ** -n < fp.to_float(r) <= z + 1e-12, f"pc {pc}: {r} vs z {z}"
    # floor: the negative extreme is one LSB further out unless K*S/2^16 is an integer
    assert cbd_raw(cfg, 0) == -cbd_raw(cfg, K) - 1
    # range: no saturation with the defaults (|z| <= sqrt(K) < 2**int_bits, and <= 6 < 2**int_bits)
    for mode, zmax in ((MODE_CBD, sqrt(K)), (MODE_SUM12, 6.0)):
        lo, hi = unsaturated_range(cfg, mode)
        assert zmax < 2 ** cfg.int_bits
        assert fp.raw_min <= lo and hi <= fp.raw_max and not saturation_possible(cfg, mode)
    # K = 64, Q3.11: sqrt(64) * 2**11 = 2**14 = raw_max + 1: the top value saturates
    assert saturation_possible(WIDE, MODE_CBD)
    assert cbd_raw(WIDE, 64) == fixed_point(WIDE).raw_max and cbd_raw(WIDE, 0) == -(2 ** 14)


def test_sum12_corners():
    for cfg in (DEFAULT, SMALL, NARROW):
        U, n, fp = cfg.uniform_bits, cfg.frac_bits, fixed_point(cfg)
        tmax = 12 * (2 ** U - 1)
        sat = lambda r: min(max(r, fp.raw_min), fp.raw_max)      # noqa: E731
        assert sum12_raw(cfg, 0) == sat(-6 * 2 ** n)
        assert sum12_raw(cfg, tmax) == sat(floor((6 - 12 / 2 ** U) * 2 ** n))
        assert sum12_raw(cfg, 6 * 2 ** U) == 0
        for t in (1, 6 * 2 ** U - 1, 6 * 2 ** U + 1, tmax - 1):
            assert sum12_raw(cfg, t) == sat(floor((t / 2 ** U - 6) * 2 ** n)), f"{cfg}: t {t}"
    assert saturation_possible(NARROW, MODE_SUM12)


# ------------------------------------------------------------------------------------------------
# Twin
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_twin_run_equals_push(cfg):
    seed = 41
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 1 << cfg.word_bits, 300, dtype=np.uint64)
    a, b = Twin(cfg), Twin(cfg)
    cuts = np.sort(rng.choice(np.arange(1, 300), 12, replace=False))
    out_a, out_b = [], []
    for k, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, 300])):
        a.mode = b.mode = k % 2 if k % 3 else 1
        for w in words[lo:hi]:
            out_a += a.push(int(w))
        out_b += b.run(words[lo:hi]).tolist()
    assert out_a == out_b and len(out_a) > 50, f"seed {seed}"


@pytest.mark.parametrize("balanced", [True, False])
def test_twin_cbd_reference(balanced):
    """CBD sample j of a word comes from bits [jK, (j+1)K), the odd-position bits of the chunk
    inverted when balanced (against a bit-list reference)."""
    cfg, rng = replace(SMALL, cbd_balanced=balanced), np.random.default_rng(8)
    K = cfg.cbd_bits
    for w in random_words(rng, cfg, 50):
        bits = [(w >> i) & 1 for i in range(cfg.word_bits)]
        ref = [cbd_raw(cfg, sum(b ^ (balanced and i % 2) for i, b in
                                enumerate(bits[j * K:(j + 1) * K])))
               for j in range(cfg.word_bits // K)]
        assert Twin(cfg).push(w) == ref, "seed 8"
        assert Twin(cfg).run(np.array([w], dtype=np.uint64)).tolist() == ref, "seed 8"


def test_balance_mask_and_popcount():
    """The mask is 0b1010...10 over K bits (K/2 bits set) when balanced, 0 otherwise;
    cbd_popcount is popcount(chunk ^ mask), scalar and vectorised alike, and rejects chunks
    outside [0, 2**K)."""
    assert cbd_balance_mask(DEFAULT) == 0xAAAA_AAAA and cbd_balance_mask(UNBAL["default"]) == 0
    for cfg in CONFIGS + list(UNBAL.values()):
        K = cfg.cbd_bits
        mask = cbd_balance_mask(cfg)
        assert mask == ref_mask(K, cfg.cbd_balanced) and mask >> K == 0
        assert mask.bit_count() == (K // 2 if cfg.cbd_balanced else 0)
        rng = np.random.default_rng(K)
        x = rng.integers(0, 1 << K, 200, dtype=np.uint64) if K < 64 else \
            rng.integers(0, 1 << 63, 200, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        want = [bin(int(v) ^ mask).count("1") for v in x]
        assert cbd_popcount(cfg, x).tolist() == want
        assert [cbd_popcount(cfg, int(v)) for v in x] == want
        for bad in (-1, 1 << K):
            with pytest.raises(ValueError, match="bits"):
                cbd_popcount(cfg, bad)
    with pytest.raises(ValueError, match="bits"):
        cbd_popcount(SMALL, np.array([256], dtype=np.uint64))


def test_bad_parameters():
    for kw, name in ((dict(cbd_bits=5), "cbd_bits"), (dict(cbd_bits=64), "cbd_bits"),
                     (dict(uniform_bits=3), "uniform_bits"), (dict(uniform_bits=0), "uniform_bits"),
                     (dict(frac_bits=0), "frac_bits"), (dict(frac_bits=25), "frac_bits"),
                     (dict(int_bits=1), "int_bits"), (dict(word_bits=7), "word_bits"),
                     (dict(cbd_bits=2.0), "cbd_bits"), (dict(cbd_balanced=1), "cbd_balanced"),
                     (dict(cbd_balanced=None), "cbd_balanced"),
                     (dict(word_bits=48, cbd_bits=3), "cbd_bits")):
        with pytest.raises(ValueError, match=name):
            GaussConfig(**kw)
    for bad in (None, ArrayConfig()):
        with pytest.raises(ValueError, match="cfg"):
            RTL(bad)
        with pytest.raises(ValueError, match="cfg"):
            Twin(bad)
    t = Twin(DEFAULT)
    for m in (2, -1, True, "1", 0.0):
        with pytest.raises(ValueError, match="mode"):
            t.set_mode(m)
    for w in (-1, 1 << 32, 1.5):
        with pytest.raises(ValueError, match="word"):
            t.push(w)
    with pytest.raises(ValueError, match="words"):
        t.run(np.array([0, 1 << 33], dtype=np.int64))


# ------------------------------------------------------------------------------------------------
# Exact distributions and statistics
def _normal_cdf(x):
    return 0.5 * (1 + erf(x / sqrt(2)))


def test_exact_pmf_sum12_brute_force():
    """Small U: the inclusion-exclusion pmf equals a brute-force 12-fold convolution."""
    for U, n in ((2, 1), (2, 3), (3, 2)):
        cfg = GaussConfig(word_bits=12 * U if 12 * U <= 64 else 8 * U, cbd_bits=2, uniform_bits=U,
                          int_bits=3, frac_bits=n)
        dist = [1]
        for _ in range(12):
            new = [0] * (len(dist) + 2 ** U - 1)
            for a, c in enumerate(dist):
                for u in range(2 ** U):
                    new[a + u] += c
            dist = new
        raw = sum12_raw(cfg, np.arange(len(dist)))
        vals, counts, total = exact_counts(cfg, MODE_SUM12)
        ref = {}
        for r, c in zip(raw.tolist(), dist):
            ref[r] = ref.get(r, 0) + c
        assert dict(zip(vals.tolist(), counts)) == ref and total == 2 ** (12 * U), f"U={U} n={n}"


def ideal_moments(cfg, mode):
    """Mean and variance of the unrounded z of the doc's formulas: CBD 0 and 1; sum-of-12 with
    u uniform on {0 .. 2**U - 1}: E[u/2**U] = 1/2 - 2**-(U+1), Var = (1 - 2**-2U)/12, so
    z = sum/2**U - 6 has mean -6/2**U and variance 1 - 2**-2U."""
    if mode == MODE_CBD:
        return 0.0, 1.0
    return -6 / 2 ** cfg.uniform_bits, 1 - 2.0 ** (-2 * cfg.uniform_bits)


@pytest.mark.parametrize("mode", [MODE_CBD, MODE_SUM12])
def test_exact_moments(mode):
    """Exact mean within one LSB of the unrounded mean, variance within two LSB of the unrounded
    variance (floor rounding moves every sample down by less than one LSB, so the mean moves by
    less than one LSB and the standard deviation by less than one LSB)."""
    for cfg in (DEFAULT, SMALL):
        vals, probs = exact_pmf(cfg, mode)
        assert abs(probs.sum() - 1) < 1e-12
        mean, var = exact_moments(cfg, mode)
        lsb = 2.0 ** -cfg.frac_bits
        m0, v0 = ideal_moments(cfg, mode)
        assert -lsb < float(mean) - m0 <= 0, f"{cfg} mode {mode}: mean {float(mean)} vs {m0}"
        assert abs(float(var) - v0) < 2 * lsb, f"{cfg} mode {mode}: var {float(var)} vs {v0}"
        # the float pmf agrees with the exact moments
        assert abs(float((vals * probs).sum()) * lsb - float(mean)) < 1e-12
        # and with N(0,1): Berry-Esseen, sup|F - Phi| <= 0.4748 rho / (sigma^3 sqrt(n)) for the
        # unrounded sum (rho/sigma^3 = 1 for +-1 bits, n = K; = (1/32)/(1/12)^1.5 for uniforms,
        # n = 12), plus the rounding (< 1 LSB shift, density <= 0.4)
        if mode == MODE_CBD:
            n_terms, ratio = cfg.cbd_bits, 1.0
        else:
            n_terms, ratio = 12, (1 / 32) / (1 / 12) ** 1.5
        bound = 0.4748 * ratio / sqrt(n_terms) + 0.4 * lsb + 0.4 * (1 - sqrt(v0))
        cdf = np.cumsum(probs)
        ks = max(abs(c - _normal_cdf(v * lsb - m0)) for v, c in zip(vals, cdf))
        assert ks < bound, f"{cfg} mode {mode}: sup |F - Phi| = {ks}, Berry-Esseen {bound}"


def biased_words(rng, cfg, n, p_one):
    """Words of independent bits with P(1) = p_one."""
    w = np.zeros(n, dtype=np.uint64)
    for i in range(cfg.word_bits):
        w |= (rng.random(n) < p_one).astype(np.uint64) << np.uint64(i)
    return w


N_STAT = 200_000


@pytest.mark.parametrize("cfg,mode", [(DEFAULT, MODE_CBD), (SMALL, MODE_CBD),
                                      (UNBAL["default"], MODE_CBD), (UNBAL["small"], MODE_CBD),
                                      (DEFAULT, MODE_SUM12), (SMALL, MODE_SUM12)],
                         ids=["default-0", "small-0", "default-unbalanced-0", "small-unbalanced-0",
                              "default-1", "small-1"])
def test_statistics_ideal_bits(cfg, mode):
    seed = 2024 + mode + 10 * (not cfg.cbd_balanced)
    rng = np.random.default_rng(seed)
    nwords = ceil(N_STAT / samples_per_word(cfg, mode))
    words = rng.integers(0, 1 << cfg.word_bits, nwords, dtype=np.uint64)
    t = Twin(cfg)
    t.mode = mode
    s = t.run(words)
    assert s.size >= N_STAT - 1
    vals, probs = exact_pmf(cfg, mode)
    mean, var = exact_moments(cfg, mode)
    x = s * 2.0 ** -cfg.frac_bits
    # mean and variance within 5 standard errors of the exact moments (and so of 0 and 1)
    mu4 = float((probs * ((vals * 2.0 ** -cfg.frac_bits) - float(mean)) ** 4).sum())
    se_mean = sqrt(float(var) / s.size)
    se_var = sqrt((mu4 - float(var) ** 2) / s.size)
    assert abs(x.mean() - float(mean)) < 5 * se_mean, f"seed {seed}: mean {x.mean()}"
    assert abs(x.var() - float(var)) < 5 * se_var, f"seed {seed}: var {x.var()}"
    m0, v0 = ideal_moments(cfg, mode)
    lsb = 2.0 ** -cfg.frac_bits
    assert abs(x.mean() - m0) < 5 * se_mean + lsb and abs(x.var() - v0) < 5 * se_var + 2 * lsb, \
        f"seed {seed}: mean {x.mean()}, var {x.var()} vs unrounded {m0}, {v0}"
    stat, p, nb = chi_square(s, vals, probs)
    assert p > 1e-4, f"seed {seed}: chi2 {stat:.1f} on {nb - 1} dof, p = {p:.3g}"
    # the same test rejects biased bits (fewer samples suffice). The balanced CBD cancels a
    # lean common to all bits in the mean (its variance only shrinks by 4p(1-p)), so there the
    # bits lean *with* the mask (flip: odd-position bits to 0, even ones to 1, i.e. every bit
    # to 1 after the inversion), and a strong common lean is caught by the variance.
    if mode == MODE_CBD and cfg.cbd_balanced:
        cases = ((0.55, True), (0.51, True), (0.65, False))
    else:
        cases = ((0.55, False), (0.51, False))
    mw = np.uint64(sum(ref_mask(cfg.cbd_bits) << (j * cfg.cbd_bits)
                       for j in range(cfg.word_bits // cfg.cbd_bits)))
    for p_one, flip in cases:
        tb = Twin(cfg)
        tb.mode = mode
        wb = biased_words(rng, cfg, nwords // 5, p_one)
        sb = tb.run(wb ^ mw if flip else wb)
        stat_b, p_b, nb_b = chi_square(sb, vals, probs)
        assert p_b < 1e-6, f"seed {seed}: P(1) = {p_one} (flip {flip}) not rejected: chi2 " \
                           f"{stat_b:.1f} on {nb_b - 1} dof, p = {p_b:.3g}"


def test_cbd_biased_counts_brute_force():
    """cbd_biased_counts against a sum over all 2**K patterns of K = 4 and 6 bits, each weighted
    p**ones (1-p)**zeros, popcount taken after the test's own mask; at p = 1/2 the moments are
    exact_moments (the balance mask changes nothing for ideal bits)."""
    for K, W in ((4, 32), (6, 48)):
        for balanced in (True, False):
            cfg = GaussConfig(word_bits=W, cbd_bits=K, frac_bits=5, cbd_balanced=balanced)
            for p in (Fraction(1, 2), Fraction(2, 5), Fraction(9, 10), Fraction(0), Fraction(1)):
                ref = {}
                for x in range(1 << K):
                    ones = bin(x).count("1")
                    r = cbd_raw(cfg, bin(x ^ ref_mask(K, balanced)).count("1"))
                    ref[r] = ref.get(r, 0) + p ** ones * (1 - p) ** (K - ones)
                vals, probs = cbd_biased_counts(cfg, p)
                got = {int(v): q for v, q in zip(vals, probs) if q}
                assert got == {r: q for r, q in ref.items() if q}, f"K={K} {balanced} p={p}"
            assert cbd_biased_moments(cfg, Fraction(1, 2)) == exact_moments(cfg, MODE_CBD)
    for bad in (-0.1, 1.5, float("nan"), True, "0.5", None):
        with pytest.raises(ValueError, match="p_one"):
            cbd_biased_counts(DEFAULT, bad)


@pytest.mark.parametrize("cfg", [DEFAULT, SMALL], ids=IDS[:2])
def test_balanced_cbd_cancels_common_lean(cfg):
    """Independent bits all with P(1) = 1/2 - eps (the lean of an XOR fold, eps = 2*delta^2):

    * exact: the plain popcount's mean moves to (2p - 1)*K*S/2**16 raw (≈ (2p - 1)*sqrt(K)),
      minus the floor's < 1 LSB; the balanced one's stays in (-1 LSB, 0] (the lean cancels: the
      popcount is symmetric about K/2); both variances ≈ 4p(1-p) (the unrounded value's);
    * sampled (twin on such bits): each mode's mean within 5 standard errors of its exact mean,
      and the plain mode's clearly below the balanced one's.
    """
    K, n, S = cfg.cbd_bits, cfg.frac_bits, cbd_scale(cfg)
    bal, unb = cfg, replace(cfg, cbd_balanced=False)
    lsb = Fraction(1, 2 ** n)
    for eps in (Fraction(17, 10000), Fraction(1, 100), Fraction(1, 20)):
        p = Fraction(1, 2) - eps
        mb, vb = cbd_biased_moments(bal, p)
        mu, vu = cbd_biased_moments(unb, p)
        lean = (2 * p - 1) * K * S / 2 ** (16 + n)          # unrounded mean, plain popcount
        assert -lsb < mb <= 0, f"eps {eps}: balanced mean {float(mb)}"
        assert -lsb < mu - lean <= 0, f"eps {eps}: plain mean {float(mu)} vs {float(lean)}"
        assert abs(float(lean) - float(2 * p - 1) * sqrt(K)) < 1e-4
        v0 = 4 * p * (1 - p) * K * S * S / 2 ** (32 + 2 * n)  # unrounded variance, both modes
        assert abs(vb - v0) < 2 * lsb and abs(vu - v0) < 2 * lsb, f"eps {eps}"
    seed, nwords = 31 + K, 60_000 * K // cfg.word_bits
    rng = np.random.default_rng(seed)
    p_one = 0.49
    words = biased_words(rng, cfg, nwords, p_one)
    means = {}
    for c in (bal, unb):
        x = Twin(c).run(words) * 2.0 ** -n
        mean, var = cbd_biased_moments(c, p_one)
        se = sqrt(float(var) / x.size)
        assert abs(x.mean() - float(mean)) < 5 * se, \
            f"seed {seed} balanced={c.cbd_balanced}: mean {x.mean()}, exact {float(mean)}"
        means[c.cbd_balanced] = (x.mean(), se)
    (m_b, se), (m_u, _) = means[True], means[False]
    assert abs(m_b) < 5 * se + float(lsb) and m_u < m_b - 10 * se, f"seed {seed}: {means}"


def test_rtl_samples_chi_square_and_plot(tmp_path):
    """A few thousand RTL samples pass the chi-square test too; the plot helper writes a PNG."""
    from sim.gauss_plots import plot_gauss_histogram
    cfg, seed = SMALL, 77
    rng = np.random.default_rng(seed)
    b = Bench(cfg, rng, f"seed {seed}").run(random_words(rng, cfg, 800), p_ready=0.9,
                                            mode_fn=lambda k: MODE_CBD)
    s = np.asarray(b.epochs[-1][1])
    vals, probs = exact_pmf(cfg, MODE_CBD)
    stat, p, nb = chi_square(s, vals, probs)
    assert s.size == 3200 and p > 1e-4, f"seed {seed}: chi2 {stat:.1f}/{nb - 1}, p {p:.3g}"
    for mode in (MODE_CBD, MODE_SUM12):
        path = tmp_path / f"gauss_{mode}.png"
        t = Twin(DEFAULT)
        t.mode = mode
        out = plot_gauss_histogram(t.run(rng.integers(0, 1 << 32, 3000, dtype=np.uint64)),
                                   DEFAULT, mode, path)
        assert out == path and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
