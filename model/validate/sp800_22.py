"""NIST SP 800-22 Rev. 1a: the 15 statistical tests for random bit sequences.

Reference: A. Rukhin et al., "A Statistical Test Suite for Random and Pseudorandom Number
Generators for Cryptographic Applications", NIST SP 800-22 Rev. 1a, April 2010 (below "the
standard"; section numbers are its). Section 2.x describes test x and ends with a worked example
(2.x.8); section 4.2 gives the two checks over many sequences (proportion of passing sequences,
uniformity of P-values); Appendix B lists P-values of the NIST reference implementation (STS) on
the binary expansions of e, pi, sqrt 2 and sqrt 3. ``tests/test_sp800_22.py`` reproduces them.

Written in the project (the PyPI package ``nistrng`` computes several tests wrongly). Where the
standard's prose and its reference code differ, the code path that reproduces Appendix B is used
and the difference is stated at the test (``docs/validation.md`` lists every deviation).

Every test takes a bit sequence (a ``str`` of ``'0'``/``'1'``, or an array of 0/1 values), returns
a :class:`Result` and raises ``ValueError`` (naming the test, ``n`` and the minimum) when the input
is shorter than the length the standard recommends for the test. ``check_length=False`` turns that
check off; it exists only so that the standard's own worked examples, most of which use 10 to 100
bits for illustration, can be reproduced. A sequence passes a test when every P-value is
``>= alpha`` (the standard's decision rule, alpha = 0.01).

Special functions: ``igamc(a, x)`` of the standard is the regularised upper incomplete gamma
function, ``scipy.special.gammaincc``; ``erfc`` is ``scipy.special.erfc``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.special import erfc, gammaincc
from scipy.stats import norm

#: Decision level of the standard (section 1.1.5 and every 2.x.5).
ALPHA_DEFAULT = 0.01


# ---------------------------------------------------------------------------------------------
# Result objects and input handling
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """Outcome of one SP 800-22 test on one sequence.

    Attributes
    ----------
    name : str
        Test name (``"frequency"``, ``"runs"``, ...).
    p_values : tuple of float
        The test's P-values (one for most tests; one per template, state or direction otherwise).
    statistics : tuple of float
        The test statistic behind each P-value (chi-square, normalised sum, ...), same order.
    labels : tuple of str
        What each P-value refers to (``""`` for single-valued tests, a template, a state ...).
    alpha : float
        Decision level.
    applicable : bool
        False when the standard says the test does not apply to this sequence (random
        excursions with too few cycles); such a result neither passes nor fails.
    details : dict
        Intermediate quantities of the standard's computation (counts, block sizes).
    note : str
        Why a test was not applicable, or other remarks.
    """

    name: str
    p_values: tuple
    statistics: tuple
    labels: tuple
    alpha: float = ALPHA_DEFAULT
    applicable: bool = True
    details: dict = field(default_factory=dict)
    note: str = ""

    @property
    def p_value(self) -> float:
        """The single P-value, or the smallest one of a multi-valued test."""
        return float(min(self.p_values))

    @property
    def statistic(self) -> float:
        """The statistic of the first P-value."""
        return float(self.statistics[0])

    @property
    def passed(self):
        """True when every P-value is ``>= alpha``; None when the test is not applicable."""
        if not self.applicable:
            return None
        return bool(all(p >= self.alpha for p in self.p_values))


def as_bits(bits) -> np.ndarray:
    """Return ``bits`` as a 1-D ``uint8`` array of 0/1.

    Parameters
    ----------
    bits : str or array_like
        A string of ``'0'``/``'1'`` (whitespace ignored) or an array of 0/1 (bool or integer).

    Raises
    ------
    ValueError
        If the input holds anything but 0 and 1, or is not one-dimensional.
    """
    if isinstance(bits, str):
        s = "".join(bits.split())
        if set(s) - {"0", "1"}:
            raise ValueError(f"bits: a string of '0'/'1' expected, got characters "
                             f"{sorted(set(s) - {'0', '1'})}")
        return (np.frombuffer(s.encode(), dtype=np.uint8) - ord("0")).astype(np.uint8)
    a = np.asarray(bits)
    if a.ndim != 1:
        raise ValueError(f"bits: a 1-D sequence expected, got shape {a.shape}")
    if a.dtype == bool:
        return a.astype(np.uint8)
    if a.size and not np.isin(a, (0, 1)).all():
        raise ValueError("bits: values must be 0 or 1")
    return a.astype(np.uint8)


def _require(test: str, n: int, minimum: int, check: bool, why: str = "") -> None:
    if check and n < minimum:
        extra = f" ({why})" if why else ""
        raise ValueError(f"{test}: sequence too short, n = {n} bits, minimum {minimum}{extra}")


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha = {alpha} out of range (0, 1)")
    return float(alpha)


def _param(test: str, name: str, value, low, high=None) -> None:
    if value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{test}: {name} = {value} out of range {rng}")


def _windows(bits: np.ndarray, m: int, wrap: bool) -> np.ndarray:
    """Integer value of every overlapping m-bit window (first bit most significant).

    With ``wrap`` the first ``m - 1`` bits are appended (n windows, as in the serial and
    approximate entropy tests), otherwise there are ``n - m + 1`` windows.
    """
    x = np.concatenate([bits, bits[:m - 1]]) if wrap and m > 1 else bits
    count = len(x) - m + 1
    v = np.zeros(count, dtype=np.int64)
    for i in range(m):
        v = (v << 1) | x[i:i + count]
    return v


def _chi2(observed, expected) -> float:
    observed = np.asarray(observed, dtype=float)
    expected = np.asarray(expected, dtype=float)
    return float(np.sum((observed - expected) ** 2 / expected))


def _single(name, p, stat, alpha, **details) -> Result:
    return Result(name, (float(p),), (float(stat),), ("",), alpha, details=details)


# ---------------------------------------------------------------------------------------------
# 2.1 Frequency (monobit)
# ---------------------------------------------------------------------------------------------

def frequency(bits, alpha: float = ALPHA_DEFAULT, check_length: bool = True) -> Result:
    """Frequency (monobit) test, section 2.1. Minimum n = 100 (2.1.7).

    ``S_n = sum(2 e_i - 1)``, ``s_obs = |S_n| / sqrt(n)``, ``P = erfc(s_obs / sqrt 2)``.
    """
    e = as_bits(bits)
    n = len(e)
    _require("frequency", n, 100, check_length)
    _require("frequency", n, 1, True)
    s_n = 2 * int(e.sum()) - n
    s_obs = abs(s_n) / math.sqrt(n)
    return _single("frequency", erfc(s_obs / math.sqrt(2)), s_obs, _check_alpha(alpha), s_n=s_n)


# ---------------------------------------------------------------------------------------------
# 2.2 Frequency within a block
# ---------------------------------------------------------------------------------------------

def block_frequency(bits, block_size: int = 128, alpha: float = ALPHA_DEFAULT,
                    check_length: bool = True) -> Result:
    """Frequency test within a block, section 2.2. Minimum n = 100, M >= 20 (2.2.7).

    ``chi2 = 4 M sum_i (pi_i - 1/2)^2`` over ``N = n // M`` blocks, ``P = igamc(N/2, chi2/2)``.
    """
    e = as_bits(bits)
    n = len(e)
    _require("block_frequency", n, 100, check_length)
    if check_length:
        _param("block_frequency", "block_size", block_size, 20)
    _param("block_frequency", "block_size", block_size, 1, max(n, 1))
    nb = n // block_size
    pi = e[:nb * block_size].reshape(nb, block_size).sum(axis=1) / block_size
    chi2 = 4.0 * block_size * float(np.sum((pi - 0.5) ** 2))
    return _single("block_frequency", gammaincc(nb / 2, chi2 / 2), chi2, _check_alpha(alpha),
                   blocks=nb, block_size=block_size)


# ---------------------------------------------------------------------------------------------
# 2.3 Runs
# ---------------------------------------------------------------------------------------------

def runs(bits, alpha: float = ALPHA_DEFAULT, check_length: bool = True) -> Result:
    """Runs test, section 2.3. Minimum n = 100 (2.3.7).

    Prerequisite: if ``|pi - 1/2| >= 2 / sqrt(n)`` the frequency test already fails and the
    standard sets P = 0 without running the test (2.3.4 step 2).
    """
    e = as_bits(bits)
    n = len(e)
    _require("runs", n, 100, check_length)
    _require("runs", n, 2, True)
    alpha = _check_alpha(alpha)
    pi = float(e.mean())
    tau = 2.0 / math.sqrt(n)
    if abs(pi - 0.5) >= tau:
        return _single("runs", 0.0, float("nan"), alpha, pi=pi, prerequisite_failed=True)
    v_obs = 1 + int(np.count_nonzero(e[1:] != e[:-1]))
    num = abs(v_obs - 2 * n * pi * (1 - pi))
    den = 2 * math.sqrt(2 * n) * pi * (1 - pi)
    return _single("runs", erfc(num / den), v_obs, alpha, pi=pi, prerequisite_failed=False)


# ---------------------------------------------------------------------------------------------
# 2.4 Longest run of ones in a block
# ---------------------------------------------------------------------------------------------

# (M, class lower edge v_min, class upper edge v_max, class probabilities pi_0..pi_K).
# Probabilities as in the reference code (sts-2.1.2 assess/longestRunOfOnes.c); the standard's
# table in 2.4.4 prints the same values rounded to 4 digits (0.2148, 0.3672, 0.2305, 0.1875 for
# M = 8), which is why its worked example shows chi2 = 4.882605 where these give 4.882457.
_LONGEST_RUN_TABLES = {
    8: (1, 4, (0.21484375, 0.3671875, 0.23046875, 0.1875)),
    128: (4, 9, (0.1174035788, 0.242955959, 0.249363483, 0.17517706, 0.102701071,
                 0.112398847)),
    10000: (10, 16, (0.0882, 0.2092, 0.2483, 0.1933, 0.1208, 0.0675, 0.0727)),
}


def longest_run(bits, alpha: float = ALPHA_DEFAULT, check_length: bool = True) -> Result:
    """Longest run of ones in a block, section 2.4. Minimum n = 128 (2.4.2).

    Block length by n: M = 8 for n < 6272, 128 for n < 750000, 10^4 otherwise (2.4.2);
    ``N = n // M`` blocks (as the reference code; the standard's table shows N = 16, 49, 75 at
    the minimum lengths). ``P = igamc(K/2, chi2/2)``.
    """
    e = as_bits(bits)
    n = len(e)
    _require("longest_run", n, 128, True)
    m = 8 if n < 6272 else (128 if n < 750000 else 10000)
    v_min, v_max, pi = _LONGEST_RUN_TABLES[m]
    k = len(pi) - 1
    nb = n // m
    longest = _longest_runs_rows(e[:nb * m].reshape(nb, m))
    cls = np.clip(longest, v_min, v_max) - v_min
    nu = np.bincount(cls, minlength=k + 1)
    chi2 = _chi2(nu, nb * np.asarray(pi))
    return _single("longest_run", gammaincc(k / 2, chi2 / 2), chi2, _check_alpha(alpha),
                   block_size=m, blocks=nb, nu=nu.tolist())


def _longest_runs_rows(blk: np.ndarray) -> np.ndarray:
    """Longest run of ones in each row of a 0/1 matrix (vectorised over the whole array)."""
    rows, m = blk.shape
    padded = np.zeros((rows, m + 2), dtype=np.int8)
    padded[:, 1:-1] = blk
    d = np.diff(padded, axis=1)
    r_s, c_s = np.nonzero(d == 1)
    _, c_e = np.nonzero(d == -1)
    out = np.zeros(rows, dtype=np.int64)
    if len(r_s):
        np.maximum.at(out, r_s, c_e - c_s)
    return out


# ---------------------------------------------------------------------------------------------
# 2.5 Binary matrix rank
# ---------------------------------------------------------------------------------------------

def _gf2_ranks(mats: np.ndarray) -> np.ndarray:
    """GF(2) rank of each of a stack of 0/1 matrices (shape (N, M, Q)), vectorised over N."""
    a = mats.astype(np.uint8).copy()
    nmat, rows, cols = a.shape
    rank = np.zeros(nmat, dtype=np.int64)
    idx = np.arange(nmat)
    for c in range(cols):
        # pivot: the first row at or below the current rank with a 1 in column c
        cand = a[:, :, c].astype(bool) & (np.arange(rows)[None, :] >= rank[:, None])
        has = cand.any(axis=1)
        piv = np.argmax(cand, axis=1)
        sel = idx[has]
        if len(sel) == 0:
            continue
        r = rank[sel]
        p = piv[sel]
        prow = a[sel, p, :].copy()
        a[sel, p, :] = a[sel, r, :]
        a[sel, r, :] = prow
        # eliminate column c from every other row
        colv = a[sel, :, c].copy()
        colv[np.arange(len(sel)), r] = 0
        a[sel] ^= colv[:, :, None] * prow[:, None, :]
        rank[sel] += 1
    return rank


def _rank_probability(r: int, m: int, q: int) -> float:
    """Probability that a random binary m x q matrix has rank r (standard 3.5)."""
    if r == 0:
        return 2.0 ** (-m * q)
    log_p = (r * (q + m - r) - m * q) * math.log(2)
    for i in range(r):
        log_p += math.log((1 - 2.0 ** (i - q)) * (1 - 2.0 ** (i - m)) / (1 - 2.0 ** (i - r)))
    return math.exp(log_p)


def matrix_rank(bits, rows: int = 32, cols: int = 32, alpha: float = ALPHA_DEFAULT,
                check_length: bool = True) -> Result:
    """Binary matrix rank test, section 2.5. Minimum n = 38 M Q (2.5.7).

    Disjoint M x Q matrices filled row by row; counts of full rank, rank - 1 and the rest
    against the probabilities of a random matrix, ``P = exp(-chi2/2)``. The probabilities are
    the exact ones for 32 x 32 (0.2888, 0.5776, 0.1336 rounded, as the reference code), also
    for other M, Q: the standard's 3 x 3 example uses the 32 x 32 values too.
    """
    e = as_bits(bits)
    n = len(e)
    _param("matrix_rank", "rows", rows, 2)
    _param("matrix_rank", "cols", cols, 2)
    _require("matrix_rank", n, 38 * rows * cols, check_length)
    nm = n // (rows * cols)
    _require("matrix_rank", n, rows * cols, True)
    ranks = _gf2_ranks(e[:nm * rows * cols].reshape(nm, rows, cols))
    full = min(rows, cols)
    f_m = int(np.count_nonzero(ranks == full))
    f_m1 = int(np.count_nonzero(ranks == full - 1))
    p_full = _rank_probability(32, 32, 32)
    p_m1 = _rank_probability(31, 32, 32)
    p_rest = 1.0 - p_full - p_m1
    chi2 = _chi2([f_m, f_m1, nm - f_m - f_m1], [nm * p_full, nm * p_m1, nm * p_rest])
    return _single("matrix_rank", math.exp(-chi2 / 2), chi2, _check_alpha(alpha),
                   matrices=nm, f_m=f_m, f_m1=f_m1, ranks=ranks.tolist() if nm <= 16 else None)


# ---------------------------------------------------------------------------------------------
# 2.6 Discrete Fourier transform (spectral)
# ---------------------------------------------------------------------------------------------

def dft(bits, alpha: float = ALPHA_DEFAULT, check_length: bool = True) -> Result:
    """Discrete Fourier transform (spectral) test, section 2.6. Minimum n = 1000 (2.6.7).

    ``T = sqrt(ln(1/0.05) n)``, ``N0 = 0.95 n / 2``, ``N1`` = number of the first n/2 moduli
    below T, ``d = (N1 - N0) / sqrt(n 0.95 0.05 / 4)``, ``P = erfc(|d| / sqrt 2)``.
    """
    e = as_bits(bits)
    n = len(e)
    _require("dft", n, 1000, check_length)
    _require("dft", n, 2, True)
    x = 2.0 * e - 1.0
    mod = np.abs(np.fft.rfft(x))[: n // 2]
    t = math.sqrt(math.log(1 / 0.05) * n)
    n0 = 0.95 * n / 2
    n1 = int(np.count_nonzero(mod < t))
    d = (n1 - n0) / math.sqrt(n * 0.95 * 0.05 / 4)
    return _single("dft", erfc(abs(d) / math.sqrt(2)), d, _check_alpha(alpha),
                   n0=n0, n1=n1, threshold=t)


# ---------------------------------------------------------------------------------------------
# 2.7 Non-overlapping template matching
# ---------------------------------------------------------------------------------------------

def _as_template(template) -> tuple:
    t = as_bits(template) if not isinstance(template, tuple) else np.asarray(template, np.uint8)
    if len(t) < 1:
        raise ValueError("template: at least one bit expected")
    return tuple(int(b) for b in t)


def _is_aperiodic(t: tuple) -> bool:
    m = len(t)
    return all(t[:m - k] != t[k:] for k in range(1, m))


def aperiodic_templates(m: int) -> list:
    """All aperiodic templates of length m in ascending order (the order of the NIST template
    files; 148 for m = 9, 284 for m = 10). A template is aperiodic when no proper prefix equals
    the suffix of the same length, so two occurrences can never overlap."""
    _param("aperiodic_templates", "m", m, 2, 21)
    out = []
    for v in range(2 ** m):
        t = tuple((v >> (m - 1 - i)) & 1 for i in range(m))
        if _is_aperiodic(t):
            out.append(t)
    return out


def non_overlapping_template(bits, templates=None, m: int = 9, blocks: int = 8,
                             alpha: float = ALPHA_DEFAULT, check_length: bool = True) -> Result:
    """Non-overlapping template matching test, section 2.7.

    ``N = blocks`` blocks of ``M = n // N`` bits; ``W_j`` = non-overlapping occurrences of the
    template in block j (the window slides one bit after a miss, m bits after a hit);
    ``mu = (M - m + 1) / 2^m``, ``sigma^2 = M (1/2^m - (2m - 1)/2^(2m))``,
    ``chi2 = sum (W_j - mu)^2 / sigma^2``, ``P = igamc(N/2, chi2/2)``. One P-value per template;
    by default all aperiodic templates of length ``m`` (148 for m = 9).

    Minimum length: the standard gives none beyond N <= 100 and M > 0.01 n (2.7.7); this project
    requires ``mu >= 5`` (the usual chi-square rule; ASSUMED project choice), i.e.
    ``n >= N (5 * 2^m + m - 1)`` (20,544 bits for m = 9, N = 8).
    """
    e = as_bits(bits)
    n = len(e)
    if templates is None:
        templates = aperiodic_templates(m)
    elif isinstance(templates, (str, tuple)) or (hasattr(templates, "ndim")
                                                 and np.ndim(templates) == 1):
        templates = [templates]
    templates = [_as_template(t) for t in templates]
    lengths = {len(t) for t in templates}
    if len(lengths) != 1:
        raise ValueError(f"non_overlapping_template: templates of one length expected, got "
                         f"lengths {sorted(lengths)}")
    m = lengths.pop()
    _param("non_overlapping_template", "blocks", blocks, 1, 100)
    _require("non_overlapping_template", n, blocks * (5 * 2 ** m + m - 1), check_length,
             "mean count per block >= 5")
    mm = n // blocks
    _require("non_overlapping_template", n, blocks * m, True)
    blk = e[:blocks * mm].reshape(blocks, mm)
    win = np.zeros((blocks, mm - m + 1), dtype=np.int64)
    for i in range(m):
        win = (win << 1) | blk[:, i:mm - m + 1 + i]
    # occurrence counts of every m-bit value per block (exact for aperiodic templates, whose
    # occurrences cannot overlap); periodic templates are counted greedily below
    counts = None
    if m <= 20:
        off = (np.arange(blocks, dtype=np.int64) * 2 ** m)[:, None]
        counts = np.bincount((win + off).ravel(), minlength=blocks * 2 ** m).reshape(blocks, -1)
    mu = (mm - m + 1) / 2 ** m
    var = mm * (1 / 2 ** m - (2 * m - 1) / 2 ** (2 * m))
    pvals, stats, labels, all_w = [], [], [], []
    for t in templates:
        tv = int("".join(map(str, t)), 2)
        if _is_aperiodic(t) and counts is not None:
            w = counts[:, tv]
        else:
            w = np.array([_greedy_count(np.flatnonzero(row == tv), m) for row in win])
        chi2 = float(np.sum((w - mu) ** 2) / var)
        pvals.append(float(gammaincc(blocks / 2, chi2 / 2)))
        stats.append(chi2)
        labels.append("".join(map(str, t)))
        all_w.append(w.tolist())
    return Result("non_overlapping_template", tuple(pvals), tuple(stats), tuple(labels),
                  _check_alpha(alpha), details=dict(mu=mu, var=var, block_size=mm,
                                                    w=all_w if len(all_w) <= 4 else None))


def _greedy_count(pos: np.ndarray, m: int) -> int:
    count, nxt = 0, -1
    for p in pos.tolist():
        if p >= nxt:
            count += 1
            nxt = p + m
    return count


# ---------------------------------------------------------------------------------------------
# 2.8 Overlapping template matching
# ---------------------------------------------------------------------------------------------

def overlapping_pi_sp800_22(template_length: int, block_size: int) -> np.ndarray:
    """Class probabilities of the standard's 2.8 text as the reference code computes them.

    ``eta = (M - m + 1) / 2^(m+1)``; ``pi_0 = exp(-eta)``,
    ``pi_u = exp(-eta) 2^(-u) sum_{l=1}^{u} C(u-1, l-1) eta^l / l!`` for u = 1..4 and
    ``pi_5 = 1 - sum``. For m = 9, M = 1032 (eta = 1): 0.367879, 0.183940, 0.137955, 0.099634,
    0.069935, 0.140657. The worked example 2.8.8 and Appendix B were computed with these; they
    are an approximation (compare :func:`overlapping_class_probabilities`).
    """
    eta = (block_size - template_length + 1) / 2 ** template_length / 2
    pi = [math.exp(-eta)]
    for u in range(1, 5):
        pi.append(sum(math.exp(-eta - u * math.log(2) + l * math.log(eta) - math.lgamma(l + 1))
                      * math.comb(u - 1, l - 1) for l in range(1, u + 1)))
    pi.append(1.0 - sum(pi))
    return np.asarray(pi)


def overlapping_class_probabilities(template, block_size: int, classes: int = 5) -> np.ndarray:
    """Exact probabilities that a random block of ``block_size`` bits holds 0, 1, ...,
    ``classes - 1`` and ``>= classes`` overlapping occurrences of ``template``.

    Computed by dynamic programming over the string-matching automaton of the template (exact
    for any template), not by the compound-Poisson approximation of the standard's 2.8 text.
    For 1^9 and M = 1032 this gives the corrected values of Rev. 1a (0.364091, 0.185659,
    0.139381, 0.100571, 0.070432, 0.139865; Hamano and Kaneko, IEICE Trans. Fundamentals
    E90-A(1), 2007).
    """
    t = _as_template(template)
    m = len(t)
    # automaton: state = length of the longest template prefix that is a suffix of the input
    delta = np.zeros((m + 1, 2), dtype=np.int64)
    for s in range(m + 1):
        for b in (0, 1):
            seq = t[:s] + (b,) if s < m else t[1:] + (b,)
            k = min(len(seq), m)
            while k > 0 and seq[len(seq) - k:] != t[:k]:
                k -= 1
            delta[s, b] = k
    prob = np.zeros((m + 1, classes + 1))
    prob[0, 0] = 1.0
    for _ in range(block_size):
        new = np.zeros_like(prob)
        for s in range(m + 1):
            for b in (0, 1):
                s2 = delta[s, b]
                if s2 == m:
                    new[s2, 1:] += 0.5 * prob[s, :-1]
                    new[s2, classes] += 0.5 * prob[s, classes]
                else:
                    new[s2] += 0.5 * prob[s]
        prob = new
    return prob.sum(axis=0)


def overlapping_template(bits, template="111111111", block_size: int = 1032,
                         pi="sp800_22", alpha: float = ALPHA_DEFAULT,
                         check_length: bool = True) -> Result:
    """Overlapping template matching test, section 2.8. Minimum n = 10^6 (2.8.7).

    ``N = n // M`` blocks; ``nu_k`` = blocks with k = 0..4 and >= 5 overlapping occurrences of
    the template (default 1^9, M = 1032); ``P = igamc(5/2, chi2/2)``.

    Parameters
    ----------
    pi : {"sp800_22", "exact"} or sequence of 6 floats
        ``"sp800_22"`` (default): :func:`overlapping_pi_sp800_22`, the approximation with which
        the standard's example 2.8.8 and Appendix B were computed (needed to reproduce them).
        ``"exact"``: :func:`overlapping_class_probabilities` (exact for the template; for 1^9
        and M = 1032 the corrected values quoted in Rev. 1a).
    """
    e = as_bits(bits)
    n = len(e)
    t = _as_template(template)
    m = len(t)
    _require("overlapping_template", n, 10 ** 6, check_length)
    _param("overlapping_template", "block_size", block_size, m, max(n, m))
    if isinstance(pi, str):
        if pi == "sp800_22":
            pi = overlapping_pi_sp800_22(m, block_size)
        elif pi == "exact":
            pi = overlapping_class_probabilities(t, block_size)
        else:
            raise ValueError(f"overlapping_template: pi = {pi!r}, allowed 'sp800_22', 'exact' "
                             "or 6 probabilities")
    pi = np.asarray(pi, dtype=float)
    if pi.shape != (6,):
        raise ValueError(f"overlapping_template: 6 class probabilities expected, got {pi.shape}")
    nb = n // block_size
    blk = e[:nb * block_size].reshape(nb, block_size)
    tv = int("".join(map(str, t)), 2)
    win = np.zeros((nb, block_size - m + 1), dtype=np.int64)
    for i in range(m):
        win = (win << 1) | blk[:, i:block_size - m + 1 + i]
    occ = np.count_nonzero(win == tv, axis=1)
    nu = np.bincount(np.minimum(occ, 5), minlength=6)
    chi2 = _chi2(nu, nb * pi)
    return _single("overlapping_template", gammaincc(5 / 2, chi2 / 2), chi2, _check_alpha(alpha),
                   blocks=nb, nu=nu.tolist(), pi=pi.tolist())


# ---------------------------------------------------------------------------------------------
# 2.9 Maurer's universal statistical test
# ---------------------------------------------------------------------------------------------

#: Expected value and variance of f_n for L = 1..16 (standard 2.9.4 step 5 table).
UNIVERSAL_TABLE = {
    1: (0.7326495, 0.690), 2: (1.5374383, 1.338), 3: (2.4016068, 1.901),
    4: (3.3112247, 2.358), 5: (4.2534266, 2.705), 6: (5.2177052, 2.954),
    7: (6.1962507, 3.125), 8: (7.1836656, 3.238), 9: (8.1764248, 3.311),
    10: (9.1723243, 3.356), 11: (10.170032, 3.384), 12: (11.168765, 3.401),
    13: (12.168070, 3.410), 14: (13.167693, 3.416), 15: (14.167488, 3.419),
    16: (15.167379, 3.421),
}

#: Smallest n for each L (standard 2.9.7 table, n >= 1010 * 2^L * L).
_UNIVERSAL_L_BY_N = ((387840, 6), (904960, 7), (2068480, 8), (4654080, 9), (10342400, 10),
                     (22753280, 11), (49643520, 12), (107560960, 13), (231669760, 14),
                     (496435200, 15), (1059061760, 16))


def universal(bits, block_length: int = None, init_blocks: int = None,
              alpha: float = ALPHA_DEFAULT, check_length: bool = True) -> Result:
    """Maurer's universal statistical test, section 2.9. Minimum n = 387,840 (2.9.7).

    L from the standard's table by n (unless given), ``Q = 10 * 2^L`` initialisation blocks,
    ``K = n // L - Q`` test blocks; ``f_n = mean log2(i - T[block_i])``,
    ``c = 0.7 - 0.8/L + (4 + 32/L) K^(-3/L) / 15``, ``sigma = c sqrt(variance / K)``,
    ``P = erfc(|f_n - expectedValue| / (sqrt 2 sigma))``.
    """
    e = as_bits(bits)
    n = len(e)
    _require("universal", n, 387840, check_length)
    if block_length is None:
        block_length = 6
        for n_min, ell in _UNIVERSAL_L_BY_N:
            if n >= n_min:
                block_length = ell
    _param("universal", "block_length", block_length, 1, 16)
    q = 10 * 2 ** block_length if init_blocks is None else init_blocks
    _param("universal", "init_blocks", q, 1)
    nblocks = n // block_length
    k = nblocks - q
    if k < 1:
        raise ValueError(f"universal: sequence too short, n = {n} bits, minimum "
                         f"{(q + 1) * block_length} for L = {block_length}, Q = {q}")
    vals = np.zeros(nblocks, dtype=np.int64)
    blk = e[:nblocks * block_length].reshape(nblocks, block_length)
    for i in range(block_length):
        vals = (vals << 1) | blk[:, i]
    idx = np.arange(1, nblocks + 1)
    order = np.argsort(vals, kind="stable")
    sv = vals[order]
    prev = np.zeros(nblocks, dtype=np.int64)
    same = np.concatenate([[False], sv[1:] == sv[:-1]])
    prev_sorted = np.where(same, np.concatenate([[0], idx[order][:-1]]), 0)
    prev[order] = prev_sorted
    test = slice(q, nblocks)
    f_n = float(np.sum(np.log2(idx[test] - prev[test]))) / k
    expected, variance = UNIVERSAL_TABLE[block_length]
    c = 0.7 - 0.8 / block_length + (4 + 32 / block_length) * k ** (-3 / block_length) / 15
    sigma = c * math.sqrt(variance / k)
    p = erfc(abs(f_n - expected) / (math.sqrt(2) * sigma))
    return _single("universal", p, f_n, _check_alpha(alpha), L=block_length, Q=q, K=k,
                   expected=expected, variance=variance, sigma=sigma)


# ---------------------------------------------------------------------------------------------
# 2.10 Linear complexity
# ---------------------------------------------------------------------------------------------

def berlekamp_massey(blocks: np.ndarray) -> np.ndarray:
    """Linear complexity of each row of a 0/1 matrix (Berlekamp-Massey over GF(2)).

    Vectorised over rows: every step of the algorithm runs on all blocks at once (J. L. Massey,
    "Shift-register synthesis and BCH decoding", IEEE Trans. Inf. Theory 15(1), 1969; the form of
    the standard's 2.10 / reference code).
    """
    s = np.asarray(blocks, dtype=np.uint8)
    if s.ndim == 1:
        s = s[None, :]
    nb, m = s.shape
    c = np.zeros((nb, m + 1), dtype=np.uint8)
    b = np.zeros((nb, m + 1), dtype=np.uint8)
    c[:, 0] = 1
    b[:, 0] = 1
    ell = np.zeros(nb, dtype=np.int64)
    mpos = np.full(nb, -1, dtype=np.int64)
    cols = np.arange(m + 1)
    for t in range(m):
        if t:
            d = (s[:, t] + np.einsum("ij,ij->i", c[:, 1:t + 1], s[:, t - 1::-1],
                                     dtype=np.int64)) & 1
        else:
            d = s[:, 0].astype(np.int64)
        hit = np.flatnonzero(d)
        if len(hit) == 0:
            continue
        told = c[hit].copy()
        shift = t - mpos[hit]
        src = cols[None, :] - shift[:, None]           # c[j] ^= b[j - shift]
        ok = src >= 0
        add = np.where(ok, b[hit][np.arange(len(hit))[:, None], np.where(ok, src, 0)], 0)
        c[hit] ^= add.astype(np.uint8)
        grow = ell[hit] <= t // 2
        g = hit[grow]
        ell[g] = t + 1 - ell[g]
        mpos[g] = t
        b[g] = told[grow]
    return ell


#: Class probabilities of 2.10.4 step 6 as the reference code holds them (pi_0 = 0.01047; the
#: exact value is 1/96 = 0.0104167). The standard's worked example 2.10.8 and Appendix B were
#: computed with these.
LINEAR_COMPLEXITY_PI_SP800_22 = (0.01047, 0.03125, 0.125, 0.5, 0.25, 0.0625, 0.020833)
LINEAR_COMPLEXITY_PI_EXACT = (1 / 96, 1 / 32, 1 / 8, 1 / 2, 1 / 4, 1 / 16, 1 / 48)


def linear_complexity(bits, block_size: int = 500, pi="sp800_22",
                      alpha: float = ALPHA_DEFAULT, check_length: bool = True) -> Result:
    """Linear complexity test, section 2.10. Minimum n = 10^6, 500 <= M <= 5000, N >= 200
    (2.10.7).

    ``mu = M/2 + (9 + (-1)^(M+1))/36 - (M/3 + 2/9)/2^M``, ``T_i = (-1)^M (L_i - mu) + 2/9``,
    seven classes, ``P = igamc(3, chi2/2)``.

    Parameters
    ----------
    pi : {"sp800_22", "exact"}
        Class probabilities: :data:`LINEAR_COMPLEXITY_PI_SP800_22` (default, reproduces the
        standard) or :data:`LINEAR_COMPLEXITY_PI_EXACT`.
    """
    e = as_bits(bits)
    n = len(e)
    _require("linear_complexity", n, 10 ** 6, check_length)
    if check_length:
        _param("linear_complexity", "block_size", block_size, 500, 5000)
    _param("linear_complexity", "block_size", block_size, 2, max(n, 2))
    pis = {"sp800_22": LINEAR_COMPLEXITY_PI_SP800_22, "exact": LINEAR_COMPLEXITY_PI_EXACT}
    if pi not in pis:
        raise ValueError(f"linear_complexity: pi = {pi!r}, allowed {sorted(pis)}")
    nb = n // block_size
    ell = berlekamp_massey(e[:nb * block_size].reshape(nb, block_size))
    mm = block_size
    mu = mm / 2 + (9 + (-1) ** (mm + 1)) / 36 - (mm / 3 + 2 / 9) / 2 ** mm
    t = (-1) ** mm * (ell - mu) + 2 / 9
    edges = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    cls = np.searchsorted(edges, t, side="left")   # T <= -2.5 -> 0, ..., T > 2.5 -> 6
    nu = np.bincount(cls, minlength=7)
    chi2 = _chi2(nu, nb * np.asarray(pis[pi]))
    return _single("linear_complexity", gammaincc(3, chi2 / 2), chi2, _check_alpha(alpha),
                   blocks=nb, block_size=mm, mu=mu, nu=nu.tolist(),
                   complexities=ell.tolist() if nb <= 16 else None)


# ---------------------------------------------------------------------------------------------
# 2.11 Serial and 2.12 approximate entropy
# ---------------------------------------------------------------------------------------------

def _psi2(e: np.ndarray, m: int) -> float:
    n = len(e)
    if m <= 0:
        return 0.0
    nu = np.bincount(_windows(e, m, wrap=True), minlength=2 ** m).astype(float)
    return float(2 ** m / n * np.sum(nu ** 2) - n)


def serial(bits, m: int = 16, alpha: float = ALPHA_DEFAULT, check_length: bool = True) -> Result:
    """Serial test, section 2.11. Requires m < floor(log2 n) - 2 (2.11.7).

    ``del1 = psi2_m - psi2_(m-1)``, ``del2 = psi2_m - 2 psi2_(m-1) + psi2_(m-2)``,
    ``P1 = igamc(2^(m-2), del1/2)``, ``P2 = igamc(2^(m-3), del2/2)``.
    """
    e = as_bits(bits)
    n = len(e)
    _param("serial", "m", m, 2, 25)
    _require("serial", n, 2 ** (m + 3), check_length, f"m < floor(log2 n) - 2 for m = {m}")
    _require("serial", n, m, True)
    p0, p1, p2 = _psi2(e, m), _psi2(e, m - 1), _psi2(e, m - 2)
    d1 = p0 - p1
    d2 = p0 - 2 * p1 + p2
    pv1 = float(gammaincc(2 ** (m - 2), d1 / 2))
    pv2 = float(gammaincc(2 ** (m - 3), d2 / 2))
    return Result("serial", (pv1, pv2), (d1, d2), ("del1", "del2"), _check_alpha(alpha),
                  details=dict(m=m, psi2=(p0, p1, p2)))


def _phi(e: np.ndarray, m: int) -> float:
    n = len(e)
    nu = np.bincount(_windows(e, m, wrap=True), minlength=2 ** m)
    c = nu[nu > 0] / n
    return float(np.sum(c * np.log(c)))


def approximate_entropy(bits, m: int = 10, alpha: float = ALPHA_DEFAULT,
                        check_length: bool = True) -> Result:
    """Approximate entropy test, section 2.12. Requires m < floor(log2 n) - 5 (2.12.7).

    ``ApEn = phi_m - phi_(m+1)``, ``chi2 = 2 n (ln 2 - ApEn)``, ``P = igamc(2^(m-1), chi2/2)``.
    """
    e = as_bits(bits)
    n = len(e)
    _param("approximate_entropy", "m", m, 1, 24)
    _require("approximate_entropy", n, 2 ** (m + 6), check_length,
             f"m < floor(log2 n) - 5 for m = {m}")
    _require("approximate_entropy", n, m + 1, True)
    apen = _phi(e, m) - _phi(e, m + 1)
    chi2 = 2 * n * (math.log(2) - apen)
    return _single("approximate_entropy", gammaincc(2 ** (m - 1), chi2 / 2), chi2,
                   _check_alpha(alpha), apen=apen, m=m)


# ---------------------------------------------------------------------------------------------
# 2.13 Cumulative sums
# ---------------------------------------------------------------------------------------------

def _cusum_p(n: int, z: int) -> float:
    if z == 0:
        return 1.0
    sq = math.sqrt(n)
    # summation limits truncated toward zero as the reference code does (C int conversion);
    # the text writes floor. Only short sequences see the difference: the worked example 2.13.8
    # (n = 10) gives 0.4116588 with truncation and 0.4115847 with floor.
    k1 = np.arange(int((-n / z + 1) / 4), int((n / z - 1) / 4) + 1)
    k2 = np.arange(int((-n / z - 3) / 4), int((n / z - 1) / 4) + 1)
    s1 = np.sum(norm.cdf((4 * k1 + 1) * z / sq) - norm.cdf((4 * k1 - 1) * z / sq))
    s2 = np.sum(norm.cdf((4 * k2 + 3) * z / sq) - norm.cdf((4 * k2 + 1) * z / sq))
    return float(1.0 - s1 + s2)


def cumulative_sums(bits, alpha: float = ALPHA_DEFAULT, check_length: bool = True) -> Result:
    """Cumulative sums test, forward and backward, section 2.13. Minimum n = 100 (2.13.7).

    ``z`` = largest ``|S_k|`` of the +-1 random walk; P from the series of 2.13.4 step 4.
    """
    e = as_bits(bits)
    n = len(e)
    _require("cumulative_sums", n, 100, check_length)
    _require("cumulative_sums", n, 1, True)
    x = 2 * e.astype(np.int64) - 1
    z_f = int(np.max(np.abs(np.cumsum(x))))
    z_b = int(np.max(np.abs(np.cumsum(x[::-1]))))
    return Result("cumulative_sums", (_cusum_p(n, z_f), _cusum_p(n, z_b)),
                  (float(z_f), float(z_b)), ("forward", "backward"), _check_alpha(alpha))


# ---------------------------------------------------------------------------------------------
# 2.14 Random excursions and 2.15 random excursions variant
# ---------------------------------------------------------------------------------------------

def _excursion_walk(e: np.ndarray):
    s = np.concatenate([[0], np.cumsum(2 * e.astype(np.int64) - 1), [0]])
    zero = s == 0
    cycle = np.cumsum(zero) - 1          # cycle index of every position (a zero starts a cycle)
    j = int(np.count_nonzero(zero)) - 1
    return s, cycle, j


def _excursion_applicability(n: int, j: int):
    need = max(0.005 * math.sqrt(n), 500)
    return j >= need, need


def random_excursions(bits, alpha: float = ALPHA_DEFAULT, check_length: bool = True) -> Result:
    """Random excursions test, section 2.14. Minimum n = 10^6 (2.14.7).

    For x in -4..-1, 1..4: ``nu_k(x)`` = cycles visiting x exactly k = 0..4 and >= 5 times;
    ``P = igamc(5/2, chi2/2)``. Not applicable (``applicable = False``) when the number of cycles
    J < max(0.005 sqrt(n), 500) (2.14.7; the reference code reports such sequences apart).
    """
    e = as_bits(bits)
    n = len(e)
    _require("random_excursions", n, 10 ** 6, check_length)
    _require("random_excursions", n, 1, True)
    s, cycle, j = _excursion_walk(e)
    if j == 0:
        return Result("random_excursions", (float("nan"),) * 8, (float("nan"),) * 8,
                      tuple(f"{x:+d}" for x in (-4, -3, -2, -1, 1, 2, 3, 4)),
                      _check_alpha(alpha), applicable=False, details=dict(J=0),
                      note="no cycle: the random walk never returns to zero")
    pvals, stats, labels, nus = [], [], [], []
    for x in (-4, -3, -2, -1, 1, 2, 3, 4):
        visits = np.bincount(cycle[s == x], minlength=j)[:j]
        nu = np.bincount(np.minimum(visits, 5), minlength=6)
        ax = abs(x)
        pi = [1 - 1 / (2 * ax)] + [1 / (4 * x * x) * (1 - 1 / (2 * ax)) ** (k - 1)
                                    for k in range(1, 5)] + [1 / (2 * ax) * (1 - 1 / (2 * ax)) ** 4]
        chi2 = _chi2(nu, j * np.asarray(pi))
        pvals.append(float(gammaincc(5 / 2, chi2 / 2)))
        stats.append(chi2)
        labels.append(f"{x:+d}")
        nus.append(nu.tolist())
    ok, need = _excursion_applicability(n, j)
    note = "" if ok else f"J = {j} cycles < {need:g}: test not applicable (2.14.7)"
    return Result("random_excursions", tuple(pvals), tuple(stats), tuple(labels),
                  _check_alpha(alpha), applicable=ok, details=dict(J=j, nu=nus), note=note)


def random_excursions_variant(bits, alpha: float = ALPHA_DEFAULT,
                              check_length: bool = True) -> Result:
    """Random excursions variant test, section 2.15. Minimum n = 10^6 (2.15.7).

    For x in -9..-1, 1..9: ``xi(x)`` = total visits to x;
    ``P = erfc(|xi(x) - J| / sqrt(2 J (4|x| - 2)))``. Same applicability rule as 2.14.
    """
    e = as_bits(bits)
    n = len(e)
    _require("random_excursions_variant", n, 10 ** 6, check_length)
    _require("random_excursions_variant", n, 1, True)
    s, _, j = _excursion_walk(e)
    states = [x for x in range(-9, 10) if x]
    counts = np.bincount(np.clip(s, -10, 10) + 10, minlength=21)
    labels = tuple(f"{x:+d}" for x in states)
    if j == 0:
        return Result("random_excursions_variant", (float("nan"),) * 18, (float("nan"),) * 18,
                      labels, _check_alpha(alpha), applicable=False, details=dict(J=0),
                      note="no cycle: the random walk never returns to zero")
    xi = np.array([counts[x + 10] for x in states], dtype=float)
    ax = np.abs(np.array(states))
    stat = np.abs(xi - j) / np.sqrt(2 * j * (4 * ax - 2))
    pvals = erfc(stat)
    ok, need = _excursion_applicability(n, j)
    note = "" if ok else f"J = {j} cycles < {need:g}: test not applicable (2.15.7)"
    return Result("random_excursions_variant", tuple(float(p) for p in pvals),
                  tuple(float(v) for v in xi), labels, _check_alpha(alpha), applicable=ok,
                  details=dict(J=j), note=note)


# ---------------------------------------------------------------------------------------------
# The suite and the checks over many sequences (section 4.2)
# ---------------------------------------------------------------------------------------------

#: The 15 tests in the order of the standard, with their default parameters.
TESTS: dict = {
    "frequency": frequency,
    "block_frequency": block_frequency,
    "runs": runs,
    "longest_run": longest_run,
    "matrix_rank": matrix_rank,
    "dft": dft,
    "non_overlapping_template": non_overlapping_template,
    "overlapping_template": overlapping_template,
    "universal": universal,
    "linear_complexity": linear_complexity,
    "serial": serial,
    "approximate_entropy": approximate_entropy,
    "cumulative_sums": cumulative_sums,
    "random_excursions": random_excursions,
    "random_excursions_variant": random_excursions_variant,
}


def run_suite(bits, alpha: float = ALPHA_DEFAULT, tests: Sequence[str] = None,
              skip_short: bool = False) -> dict:
    """Run the SP 800-22 tests with their default parameters on one sequence.

    Parameters
    ----------
    bits : str or array_like
        The sequence (10^6 bits or more for all 15 tests).
    alpha : float
        Decision level.
    tests : sequence of str, optional
        Subset of :data:`TESTS` (default: all 15).
    skip_short : bool
        If True, a test whose minimum length is not met gives a non-applicable :class:`Result`
        (its note says why) instead of raising ``ValueError``.

    Returns
    -------
    dict
        Test name -> :class:`Result`.
    """
    alpha = _check_alpha(alpha)
    e = as_bits(bits)
    names = list(TESTS) if tests is None else list(tests)
    unknown = [t for t in names if t not in TESTS]
    if unknown:
        raise ValueError(f"tests: unknown {unknown}, allowed {list(TESTS)}")
    out = {}
    for name in names:
        try:
            out[name] = TESTS[name](e, alpha=alpha)
        except ValueError as exc:
            if not skip_short or "too short" not in str(exc):
                raise
            out[name] = Result(name, (float("nan"),), (float("nan"),), ("",), alpha,
                               applicable=False, note=str(exc))
    return out


@dataclass(frozen=True)
class Proportion:
    """Proportion of sequences passing one test (section 4.2.1)."""

    passed: int
    total: int
    low: float
    high: float

    @property
    def fraction(self) -> float:
        return self.passed / self.total

    @property
    def ok(self) -> bool:
        """True when the proportion lies in ``p_hat +- 3 sqrt(p_hat (1 - p_hat) / m)``."""
        return self.low <= self.fraction <= self.high


def proportion_pass(p_values, alpha: float = ALPHA_DEFAULT) -> Proportion:
    """Proportion of P-values ``>= alpha`` and its acceptance interval (section 4.2.1).

    ``p_hat = 1 - alpha``; the proportion of passing sequences should fall in
    ``p_hat +- 3 sqrt(p_hat (1 - p_hat) / m)`` for m sequences (NaN entries are left out).
    """
    alpha = _check_alpha(alpha)
    p = np.asarray(p_values, dtype=float)
    p = p[~np.isnan(p)]
    m = len(p)
    if m < 1:
        raise ValueError("p_values: at least one P-value expected, got 0")
    p_hat = 1 - alpha
    half = 3 * math.sqrt(p_hat * (1 - p_hat) / m)
    return Proportion(int(np.count_nonzero(p >= alpha)), m, p_hat - half, min(1.0, p_hat + half))


@dataclass(frozen=True)
class Uniformity:
    """Uniformity of P-values over many sequences (section 4.2.2)."""

    counts: tuple
    chi2: float
    p_value: float

    @property
    def ok(self) -> bool:
        """True when the P-value of the P-values is ``>= 0.0001`` (the standard's rule)."""
        return self.p_value >= 0.0001


#: Fewest sequences for the uniformity check (standard 4.2.2: "at least 55 sequences").
UNIFORMITY_MIN_SEQUENCES = 55


def uniformity(p_values, check_length: bool = True) -> Uniformity:
    """Chi-square of the P-values over 10 equal bins of [0, 1] (section 4.2.2).

    ``chi2 = sum_i (F_i - s/10)^2 / (s/10)``, ``P_T = igamc(9/2, chi2/2)``.
    """
    p = np.asarray(p_values, dtype=float)
    p = p[~np.isnan(p)]
    s = len(p)
    _require("uniformity", s, UNIFORMITY_MIN_SEQUENCES, check_length)
    _require("uniformity", s, 1, True)
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("p_values: values must lie in [0, 1]")
    f = np.bincount(np.minimum((p * 10).astype(int), 9), minlength=10)
    chi2 = _chi2(f, np.full(10, s / 10))
    return Uniformity(tuple(int(v) for v in f), chi2, float(gammaincc(9 / 2, chi2 / 2)))


def evaluate_many(sequences, alpha: float = ALPHA_DEFAULT,
                  suite: Callable = run_suite, **kwargs) -> dict:
    """Run the suite on many sequences; per test and label the proportion and uniformity.

    Returns a dict ``(test, label) -> (Proportion, Uniformity or None)``; uniformity is None for
    fewer than :data:`UNIFORMITY_MIN_SEQUENCES` applicable sequences.
    """
    pv: dict = {}
    for seq in sequences:
        for name, res in suite(seq, alpha=alpha, **kwargs).items():
            if not res.applicable:
                continue
            for label, p in zip(res.labels, res.p_values):
                pv.setdefault((name, label), []).append(p)
    out = {}
    for key, ps in pv.items():
        uni = uniformity(ps) if len(ps) >= UNIFORMITY_MIN_SEQUENCES else None
        out[key] = (proportion_pass(ps, alpha), uni)
    return out


# ---------------------------------------------------------------------------------------------
# Reference sequence: the binary expansion of e (the standard's data/data.e)
# ---------------------------------------------------------------------------------------------

def e_expansion_bits(n_bits: int) -> np.ndarray:
    """First ``n_bits`` bits of the binary expansion of e, integer part first ("10.1011...").

    Computed exactly with integers: ``e - 1 = sum_{k>=1} 1/k!`` by binary splitting, then
    ``floor(e * 2^K)``; no data is downloaded. About 2 s for 10^6 bits.
    """
    _param("e_expansion_bits", "n_bits", n_bits, 1)
    frac_bits = n_bits + 32  # guard bits; only the first n_bits are returned

    def split(a: int, b: int):
        if b - a == 1:
            return 1, b
        mid = (a + b) // 2
        p1, q1 = split(a, mid)
        p2, q2 = split(mid, b)
        return p1 * q2 + p2, q1 * q2

    lo, hi = 1, 2
    while math.lgamma(hi + 1) / math.log(2) < frac_bits + 64:   # log2(hi!) must exceed K
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if math.lgamma(mid + 1) / math.log(2) < frac_bits + 64 else (lo, mid)
    terms = hi
    p, q = split(0, terms)
    value = ((p + q) << frac_bits) // q        # floor(e * 2^frac_bits)
    s = bin(value)[2:]
    return as_bits(s[:n_bits])


def sqrt_expansion_bits(value: int, n_bits: int) -> np.ndarray:
    """First ``n_bits`` bits of the binary expansion of ``sqrt(value)``, integer part first
    (the standard's data/data.sqrt2 and data.sqrt3), exactly by ``math.isqrt``."""
    _param("sqrt_expansion_bits", "value", value, 2)
    _param("sqrt_expansion_bits", "n_bits", n_bits, 1)
    root = math.isqrt(value << (2 * n_bits))
    return as_bits(bin(root)[2:][:n_bits])
