"""Bit-exact, transaction-level twin of ``hw.gaussian.GaussianGenerator``, and the exact output
distributions of both modes (``docs/trng-readout.md`` §4).

The twin knows nothing about cycles: back-pressure and input gaps only change *when* the RTL
emits a sample, never which. It reproduces the sample stream word by word:

* **Mode rule.** The RTL samples its ``mode`` input in the cycle it accepts a word; the whole
  word is processed in that mode. When a word is accepted in a mode different from the previous
  accepted word's, any partial sum-of-12 accumulation is discarded (the next sum-of-12 sample
  starts with the first field of the next sum-of-12 word). Set :attr:`GaussianGenerator.mode`
  (or call :meth:`set_mode`) before :meth:`push`-ing the word the RTL accepted in that mode;
  toggling the mode between two words and back is not a change.
* **Reset** discards everything: the word being split, samples in flight, the partial sum.

Timing, for the documentation and the tests (the RTL's structure fixes it):
:func:`cycles_per_word` is the sustained input rate with the output never blocked.
"""

from __future__ import annotations

from fractions import Fraction
from math import comb, gcd

import numpy as np

from model.blocks.config import GaussConfig
from model.blocks.fixedpoint import (MODE_CBD, SUM12_TERMS, cbd_balance_mask, cbd_popcount,
                                     cbd_raw, cbd_table, check_mode, fixed_point, sum12_offset,
                                     sum12_raw, sum12_total_max)


def _check_cfg(owner: str, cfg) -> GaussConfig:
    if not isinstance(cfg, GaussConfig):
        raise ValueError(f"{owner}.cfg = {cfg!r}: must be a GaussConfig "
                         f"(model.blocks.config.GaussConfig)")
    return cfg


# ------------------------------------------------------------------------------------------------
# Rates (shared by the RTL docstring and the tests)
def sum12_group_fields(cfg: GaussConfig) -> int:
    """G = gcd(12, W/U): U-bit fields the RTL adds per cycle in the sum-of-12 mode.

    G divides both 12 and the fields per word, so a group never straddles a word or a sample."""
    return gcd(SUM12_TERMS, cfg.word_bits // cfg.uniform_bits)


def cycles_per_word(cfg: GaussConfig, mode: int) -> int:
    """Cycles per input word at the sustained rate (output never blocked, input always offered).

    CBD: one sample per cycle, so ``W/K``. Sum-of-12: one group of G fields per cycle, so
    ``(W/U)/G``."""
    mode = check_mode("cycles_per_word", mode)
    if mode == MODE_CBD:
        return cfg.word_bits // cfg.cbd_bits
    return cfg.word_bits // cfg.uniform_bits // sum12_group_fields(cfg)


def samples_per_word(cfg: GaussConfig, mode: int) -> Fraction:
    """Samples per input word on average: ``W/K`` (CBD) or ``W/(12U)`` (sum-of-12)."""
    mode = check_mode("samples_per_word", mode)
    if mode == MODE_CBD:
        return Fraction(cfg.word_bits // cfg.cbd_bits)
    return Fraction(cfg.word_bits // cfg.uniform_bits, SUM12_TERMS)


# ------------------------------------------------------------------------------------------------
# Twin
class GaussianGenerator:
    """Packed W-bit random words -> signed fixed-point ≈N(0,1) samples, integer-exact.

    Parameters
    ----------
    cfg : GaussConfig

    Attributes
    ----------
    mode : int
        Control input: 0 CBD, 1 sum of 12 uniforms (see the module docstring for when it acts).
        :meth:`reset` leaves it as it is (it belongs to the register bank).
    """

    def __init__(self, cfg: GaussConfig):
        self.cfg = _check_cfg("GaussianGenerator", cfg)
        self.fp = fixed_point(cfg)
        self._table = np.asarray(cbd_table(cfg), dtype=np.int64)
        self._balance = np.uint64(cbd_balance_mask(cfg))
        self._fields = cfg.word_bits // cfg.uniform_bits
        self._mode = MODE_CBD
        self.reset()

    @property
    def mode(self) -> int:
        return self._mode

    @mode.setter
    def mode(self, mode):
        self._mode = check_mode("GaussianGenerator", mode)

    def set_mode(self, mode) -> None:
        self.mode = mode

    def reset(self) -> None:
        self._word_mode = MODE_CBD      # mode of the last word pushed (the RTL's reset value)
        self._acc = 0                   # partial sum of the current sum-of-12 sample
        self._nf = 0                    # fields in it

    @property
    def partial_fields(self) -> int:
        """Uniforms already accumulated towards the next sum-of-12 sample (0..11)."""
        return self._nf

    def _begin_word(self) -> None:
        if self._mode != self._word_mode:
            self._acc = 0
            self._nf = 0
        self._word_mode = self._mode

    def push(self, word: int) -> list[int]:
        """Feed one input word; return the raw samples it completes, in output order."""
        W = self.cfg.word_bits
        if isinstance(word, bool) or not isinstance(word, (int, np.integer)) \
                or not 0 <= int(word) < (1 << W):
            raise ValueError(f"GaussianGenerator.push: word = {word!r}: must be an integer in "
                             f"[0, 2**{W})")
        word = int(word)
        self._begin_word()
        out = []
        if self._mode == MODE_CBD:
            K = self.cfg.cbd_bits
            for j in range(W // K):
                pc = cbd_popcount(self.cfg, (word >> (j * K)) & ((1 << K) - 1))
                out.append(cbd_raw(self.cfg, pc))
            return out
        U = self.cfg.uniform_bits
        for j in range(self._fields):
            self._acc += (word >> (j * U)) & ((1 << U) - 1)
            self._nf += 1
            if self._nf == SUM12_TERMS:
                out.append(sum12_raw(self.cfg, self._acc))
                self._acc = 0
                self._nf = 0
        return out

    def run(self, words) -> np.ndarray:
        """Vectorised :meth:`push` over a 1-D array of words (all in the current mode).

        Returns the int64 raw samples; leaves the state as the same pushes would."""
        W = self.cfg.word_bits
        w = np.asarray(words)
        if w.ndim != 1 or not (w.dtype.kind in "ui" or (w.size == 0 and w.dtype.kind == "f")):
            raise ValueError(f"GaussianGenerator.run: words must be a 1-D integer array, got "
                             f"shape {w.shape}, dtype {w.dtype}")
        if w.size and (w.min() < 0 or (W < 64 and int(w.max()) >> W)):
            raise ValueError(f"GaussianGenerator.run: words must lie in [0, 2**{W})")
        w = w.astype(np.uint64)
        if w.size == 0:
            return np.zeros(0, dtype=np.int64)
        self._begin_word()
        if self._mode == MODE_CBD:
            K = self.cfg.cbd_bits
            mask = np.uint64((1 << K) - 1)
            sh = (np.arange(W // K, dtype=np.uint64) * np.uint64(K))
            # (w >> sh) & mask, then the balance mask: cbd_popcount without its range check
            chunks = ((w[:, None] >> sh[None, :]) & mask) ^ self._balance
            pc = np.bitwise_count(chunks).astype(np.int64).ravel()
            return self._table[pc]
        U = self.cfg.uniform_bits
        mask = np.uint64((1 << U) - 1)
        sh = np.arange(self._fields, dtype=np.uint64) * np.uint64(U)
        fields = ((w[:, None] >> sh[None, :]) & mask).astype(np.int64).ravel()
        out = []
        need = SUM12_TERMS - self._nf
        if self._nf:
            if fields.size < need:
                self._acc += int(fields.sum())
                self._nf += fields.size
                return np.zeros(0, dtype=np.int64)
            out.append(np.asarray([self._acc + int(fields[:need].sum())], dtype=np.int64))
            fields = fields[need:]
        n = fields.size // SUM12_TERMS
        out.append(fields[:n * SUM12_TERMS].reshape(n, SUM12_TERMS).sum(axis=1))
        rest = fields[n * SUM12_TERMS:]
        self._acc, self._nf = int(rest.sum()), rest.size
        return sum12_raw(self.cfg, np.concatenate(out))


# ------------------------------------------------------------------------------------------------
# Exact distributions from ideal (independent, unbiased) bits
def _sum12_cdf_counts(U: int, s_values) -> list[int]:
    """#{(u_1..u_12) in [0, 2**U)^12 : sum <= s} for each s (exact integers).

    Inclusion-exclusion over the fields that exceed 2**U - 1:
    ``F(s) = sum_j (-1)^j C(12, j) C(s - j*2**U + 12, 12)`` (terms with s - j*2**U < 0 vanish)."""
    m, n = 1 << U, SUM12_TERMS
    coef = [(-1) ** j * comb(n, j) for j in range(n + 1)]
    out = []
    for s in s_values:
        s = int(s)
        if s < 0:
            out.append(0)
            continue
        acc = 0
        for j in range(n + 1):
            t = s - j * m
            if t < 0:
                break
            acc += coef[j] * comb(t + n, n)
        out.append(acc)
    return out


def exact_counts(cfg: GaussConfig, mode: int) -> tuple[np.ndarray, list[int], int]:
    """Exact integer distribution of the raw samples of ``mode`` from ideal uniform bits.

    Returns ``(values_raw, counts, total)``: sorted distinct raw values (int64), the number of
    input bit patterns giving each (Python ints), and the number of patterns (2**K or 2**(12U));
    P(raw = values_raw[i]) = counts[i] / total exactly. Saturation included. The CBD balance
    mask (``cfg.cbd_balanced``) is a bijection on the K-bit patterns, so it changes nothing
    here: the popcount is Binomial(K, 1/2) either way."""
    _check_cfg("exact_counts", cfg)
    mode = check_mode("exact_counts", mode)
    fp = fixed_point(cfg)
    if mode == MODE_CBD:
        K = cfg.cbd_bits
        pcs = np.arange(K + 1)
        vals = cbd_raw(cfg, pcs)
        counts = [comb(K, int(pc)) for pc in pcs]
        total = 1 << K
    else:
        U = cfg.uniform_bits
        tmax, off, sh = sum12_total_max(cfg), sum12_offset(cfg), cfg.frac_bits - U
        if sh >= 0:
            ts = np.arange(tmax + 1)                      # each total is its own raw value
            hi = ts
        else:
            d = -sh                                       # raw r <- totals off + r*2^d .. +2^d-1
            r = np.arange((-off) >> d, ((tmax - off) >> d) + 1)
            hi = np.minimum(off + ((r + 1) << d) - 1, tmax)
            ts = hi
        cdf = _sum12_cdf_counts(U, hi)
        counts = [cdf[0]] + [b - a for a, b in zip(cdf[:-1], cdf[1:])]
        vals = sum12_raw(cfg, ts)
        total = 1 << (SUM12_TERMS * U)
    vals = fp.saturate(np.asarray(vals, dtype=np.int64))
    uniq, inv = np.unique(vals, return_inverse=True)
    agg = [0] * uniq.size
    for i, c in zip(inv, counts):
        agg[int(i)] += c
    return uniq, agg, total


def _binomial_pmf(n: int, p: Fraction) -> list[Fraction]:
    return [comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(n + 1)]


def cbd_biased_counts(cfg: GaussConfig, p_one) -> tuple[np.ndarray, list[Fraction]]:
    """Exact distribution of the CBD raw samples from independent bits that are all 1 with
    probability ``p_one`` (a common lean), for ``cfg``'s popcount (balanced or not).

    The balanced popcount is ``X + Y`` with X ~ Binomial(K − h, p) (plain bits) and
    Y ~ Binomial(h, 1 − p) (the h = K/2 inverted bits): symmetric about K/2, so its mean is K/2
    whatever p; the plain popcount is Binomial(K, p), mean K·p.

    Parameters
    ----------
    p_one : Fraction, int or float in [0, 1]
        Converted exactly (a float's binary value).

    Returns
    -------
    (values_raw, probs) : int64 array of sorted distinct raw values, exact Fractions.
    """
    _check_cfg("cbd_biased_counts", cfg)
    if isinstance(p_one, bool) or not isinstance(p_one, (Fraction, int, float)) \
            or not 0 <= p_one <= 1:
        raise ValueError(f"cbd_biased_counts: p_one = {p_one!r}: must be a number in [0, 1]")
    p = Fraction(p_one)
    K = cfg.cbd_bits
    h = cbd_balance_mask(cfg).bit_count()
    px, py = _binomial_pmf(K - h, p), _binomial_pmf(h, 1 - p)
    pc_pmf = [Fraction(0)] * (K + 1)
    for a, pa in enumerate(px):
        for b, pb in enumerate(py):
            pc_pmf[a + b] += pa * pb
    vals = cbd_raw(cfg, np.arange(K + 1))
    agg: dict[int, Fraction] = {}
    for v, q in zip(vals.tolist(), pc_pmf):
        agg[v] = agg.get(v, Fraction(0)) + q
    keys = sorted(agg)
    return np.asarray(keys, dtype=np.int64), [agg[k] for k in keys]


def cbd_biased_moments(cfg: GaussConfig, p_one) -> tuple[Fraction, Fraction]:
    """Exact mean and variance of the CBD sample *value* from independent bits with
    P(1) = ``p_one`` (:func:`cbd_biased_counts`). At p_one = 1/2 equal to
    ``exact_moments(cfg, MODE_CBD)``."""
    vals, probs = cbd_biased_counts(cfg, p_one)
    scale = 1 << cfg.frac_bits
    m1 = sum(int(v) * q for v, q in zip(vals, probs))
    m2 = sum(int(v) * int(v) * q for v, q in zip(vals, probs))
    return m1 / scale, (m2 - m1 * m1) / (scale * scale)


def exact_pmf(cfg: GaussConfig, mode: int) -> tuple[np.ndarray, np.ndarray]:
    """``(values_raw, probs)``: the exact pmf of the raw samples of ``mode`` from ideal bits.

    CBD: the Binomial(K, 1/2) pmf of the popcount mapped through the CBD formula. Sum-of-12: the
    12-fold convolution of the uniform distribution on [0, 2**U), in exact integers by
    inclusion-exclusion, aggregated over each raw value's range of totals. ``probs`` are the
    exact rationals rounded once to float64."""
    vals, counts, total = exact_counts(cfg, mode)
    return vals, np.asarray([c / total for c in counts], dtype=np.float64)


def exact_moments(cfg: GaussConfig, mode: int) -> tuple[Fraction, Fraction]:
    """Exact mean and variance of the sample *value* (raw / 2**frac_bits) as Fractions."""
    vals, counts, total = exact_counts(cfg, mode)
    s1 = sum(int(v) * c for v, c in zip(vals, counts))
    s2 = sum(int(v) * int(v) * c for v, c in zip(vals, counts))
    scale = 1 << cfg.frac_bits
    mean = Fraction(s1, total * scale)
    var = Fraction(s2 * total - s1 * s1, total * total * scale * scale)
    return mean, var


def chi_square(samples, vals, probs, min_expected=5.0):
    """Chi-square statistic and p-value of ``samples`` against the pmf (vals, probs), adjacent
    support values merged left to right until each bin expects >= min_expected (a short last
    bin is merged into its neighbour). Returns ``(statistic, p_value, bins)``."""
    from scipy.stats import chi2
    _chi2_sf = chi2.sf
    samples = np.asarray(samples)
    n = samples.size
    exp = probs * n
    idx = np.searchsorted(vals, samples)
    idx = np.clip(idx, 0, vals.size - 1)
    if not np.all(vals[idx] == samples):
        raise ValueError("chi_square: a sample lies outside the pmf's support")
    obs = np.bincount(idx, minlength=vals.size).astype(np.float64)
    bins_e, bins_o, acc_e, acc_o = [], [], 0.0, 0.0
    for e, o in zip(exp, obs):
        acc_e += e
        acc_o += o
        if acc_e >= min_expected:
            bins_e.append(acc_e)
            bins_o.append(acc_o)
            acc_e = acc_o = 0.0
    if acc_e or acc_o:
        bins_e[-1] += acc_e
        bins_o[-1] += acc_o
    bins_e, bins_o = np.asarray(bins_e), np.asarray(bins_o)
    stat = float(((bins_o - bins_e) ** 2 / bins_e).sum())
    return stat, float(_chi2_sf(stat, bins_e.size - 1)), bins_e.size
