"""Per-cell health tests on the raw bits: bit-exact twin of ``hw.health.HealthMonitor``.

The contract is ``docs/trng-readout.md`` section 1. Each cell of the array is one noise source
seen once per sweep (its bit in every word of its row). Per cell:

* repetition count test (NIST SP 800-90B §4.4.1), cutoff :func:`rct_cutoff`;
* adaptive proportion test (§4.4.2), window ``apt_window``, cutoff :func:`apt_cutoff`;
* lag-1 transition-count test, window ``corr_window``, bounds :func:`corr_bounds`;
* saturation: the calibration's sticky alarm bit of the cell, carried in the raw word;
* a software ``force_mask``.

Status bits are sticky; a cell with any of them set is masked (its ``valid`` bit is 0).

Exact rules the RTL and this twin share (beyond the doc):

* **Window grid.** The APT and lag-1 windows of every cell lie on one global grid counted in
  sweeps from reset (sweep s is in APT window s // apt_window, lag-1 window s // corr_window);
  the RTL keeps one position counter per test, not one per cell.
* **Clear** of a cell resets its sticky ``rct, apt, corr, sat`` bits (not ``force_mask``, which
  software owns) and starts a new life for the cell: its next sample has no predecessor (it
  starts a new run and counts as no transition). Its APT and lag-1 tests resume with the first
  window of the grid that starts at or after that sample; samples before it are covered by the
  repetition count and saturation tests only. A clear is therefore exactly "as if new" when it
  falls just before a window boundary, and after reset every cell is new at sweep 0.
* **When a test fails** (the status is set by the update of the sample that): RCT at the sample
  that makes the run ``C_RCT`` long; APT at the sample that makes ``B = C_APT``; lag-1 at the
  sample that makes ``T = U + 1``, or at the window's last sample when ``T < L`` there;
  saturation at a word whose alarm bit is set.
* **Release.** Without hold-back (D = 0) a word's ``valid`` bits are the cells' status after the
  word's own update (so the sample that makes a cell fail is not released). With hold-back D > 0 a
  word leaves when the word D sweeps later (D * rows words later) has been processed; its valid
  bit is 1 only if the cell was unmasked both after the word's own update and after the update of
  that later word (so a clear never releases bits that were tested while the cell was failing).
  The words of the last D sweeps stay inside until more words come.
* The detection index j of a fault is the number of the cell's faulty samples before the one whose
  update sets the failure; the bits that escape are ``max(0, j - D)`` (:func:`escaped_bits`).

CSR ordering (what the RTL does in cycles, the twin does in call order): a ``clear`` or
``force_mask`` strobe acts after the update of every word accepted before it and before the update
of every word accepted in its cycle or later; call :meth:`HealthMonitor.clear` /
:meth:`HealthMonitor.force_mask` before :meth:`HealthMonitor.push` for a word of the same cycle.
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction

import numpy as np
from scipy.stats import binom

from model.blocks.config import HealthConfig


# ------------------------------------------------------------------------------------------------
# cutoffs
def critbinom(n: int, p: float, alpha: float) -> int:
    """CRITBINOM(n, p, 1 - alpha): the smallest k with binomial CDF(k; n, p) >= 1 - alpha.

    Evaluated as the smallest k with the upper tail P(X > k) = ``binom.sf(k, n, p)`` <= alpha,
    the same condition without the cancellation of 1 - alpha in floating point (alpha is as small
    as 2**-41 here).
    """
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"critbinom: n = {n!r}: must be an integer >= 1")
    if not 0.0 < p < 1.0:
        raise ValueError(f"critbinom: p = {p!r}: must be in (0, 1)")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"critbinom: alpha = {alpha!r}: must be in (0, 1)")
    k = int(min(max(binom.isf(alpha, n, p), 0), n))
    while k > 0 and binom.sf(k - 1, n, p) <= alpha:
        k -= 1
    while k < n and binom.sf(k, n, p) > alpha:
        k += 1
    return k


def _entropy(cfg: HealthConfig) -> Fraction:
    # H as the decimal the user wrote (0.3 -> 3/10), so that -log2(alpha)/H = 30/0.3 is exactly
    # 100 and not 100.00000000000001 from the binary float.
    return Fraction(repr(float(cfg.min_entropy)))


def _check_cfg(cfg, who):
    if not isinstance(cfg, HealthConfig):
        raise ValueError(f"{who}: cfg = {cfg!r}: must be a HealthConfig "
                         f"(model.blocks.config.HealthConfig)")


def rct_cutoff(cfg: HealthConfig) -> int:
    """C_RCT = 1 + ceil(-log2(alpha) / H) (SP 800-90B §4.4.1), exact in rational arithmetic."""
    _check_cfg(cfg, "rct_cutoff")
    return 1 + math.ceil(Fraction(-cfg.alpha_log2) / _entropy(cfg))


def apt_cutoff(cfg: HealthConfig) -> int:
    """C_APT = 1 + CRITBINOM(W, 2**-H, 1 - alpha) (SP 800-90B §4.4.2). May be W + 1 (the test
    can then never fail: the window is too short for that alpha and H)."""
    _check_cfg(cfg, "apt_cutoff")
    return 1 + critbinom(cfg.apt_window, 2.0 ** (-float(cfg.min_entropy)),
                         2.0 ** cfg.alpha_log2)


def corr_bounds(cfg: HealthConfig) -> tuple[int, int]:
    """(L, U) of the lag-1 test: U = CRITBINOM(n, 1/2, 1 - alpha/2), L = n - U, n = corr_window.
    A window fails when T > U or T < L."""
    _check_cfg(cfg, "corr_bounds")
    n = cfg.corr_window
    u = critbinom(n, 0.5, 2.0 ** (cfg.alpha_log2 - 1))
    return n - u, u


# ------------------------------------------------------------------------------------------------
# detection delay, escaped bits, false-alarm rates (reporting helpers)
def escaped_bits(detect_index: int, holdback: int) -> int:
    """Faulty bits of a cell that leave the monitor: ``max(0, j - D)`` for detection index j."""
    return max(0, int(detect_index) - int(holdback))


def detection_delay_bound(cfg: HealthConfig, fault: str) -> int:
    """Worst-case detection index j (see the module docstring) of a fault in a cell whose tests
    are running (not waiting for a window after a clear).

    ``"stuck"``: the cell repeats one value. The run that fails contains every faulty sample and
    starts at the first of them at the latest, so j <= C_RCT - 1.

    ``"alternating"``: every faulty sample differs from the previous one. If the first faulty
    sample sits at position q of a lag-1 window with no earlier transition in that window, the
    window holds n - 1 - q transitions and does not fail for q >= n - 1 - U = L - 1; the next
    window is all transitions and fails at its position U. So j <= (n - q) + U with q = L - 1,
    i.e. j <= 2U + 1 (n = corr_window). (Also caught by the APT when that fails sooner.)
    """
    _check_cfg(cfg, "detection_delay_bound")
    if fault == "stuck":
        return rct_cutoff(cfg) - 1
    if fault == "alternating":
        _, u = corr_bounds(cfg)
        return 2 * u + 1
    raise ValueError(f"detection_delay_bound: fault = {fault!r}: must be 'stuck' or 'alternating'")


def false_alarm_rates(cfg: HealthConfig, p: float) -> dict:
    """Exact false-alarm probabilities of the three tests for an i.i.d. cell with P(1) = p.

    Returns ``rct`` (per sample: the probability that a sample completes a run of exactly C_RCT),
    ``apt`` (per window) and ``corr`` (per window, the previous sample drawn from the same
    source; computed by dynamic programming over (last bit, T), so the dependence between
    successive transitions is included).
    """
    _check_cfg(cfg, "false_alarm_rates")
    q = 1.0 - p
    c = rct_cutoff(cfg)
    rct = q * p ** c + p * q ** c
    w, ca = cfg.apt_window, apt_cutoff(cfg)
    # B = 1 + Bin(W - 1, P(ref)); fails when B >= C_APT
    apt = p * binom.sf(ca - 2, w - 1, p) + q * binom.sf(ca - 2, w - 1, q)
    n = cfg.corr_window
    lo, hi = corr_bounds(cfg)
    d0 = np.zeros(n + 1)       # P(last = 0, T = t)
    d1 = np.zeros(n + 1)
    d0[0], d1[0] = q, p
    for _ in range(n):
        n0 = q * d0 + np.concatenate(([0.0], q * d1[:-1]))
        n1 = p * d1 + np.concatenate(([0.0], p * d0[:-1]))
        d0, d1 = n0, n1
    t = d0 + d1
    corr = float(t[:lo].sum() + t[hi + 1:].sum())
    return {"rct": float(rct), "apt": float(apt), "corr": corr}


# ------------------------------------------------------------------------------------------------
class HealthMonitor:
    """Per-cell repetition-count, adaptive-proportion, lag-1 and saturation tests; sticky status,
    masking, optional hold-back. Integer-exact twin of ``hw.health.HealthMonitor``.

    Parameters
    ----------
    cfg : HealthConfig

    Attributes
    ----------
    c_rct, c_apt, corr_lo, corr_hi : int
        The cutoffs (:func:`rct_cutoff`, :func:`apt_cutoff`, :func:`corr_bounds`).
    run : ndarray (rows, cols)
        Current run length of each cell, 0 = new life (no previous sample); saturates at C_RCT.
    apt_b : ndarray
        APT count B of the current window, 0 = waiting for the next window (after a clear).
    corr_t1 : ndarray
        Lag-1 count T + 1 of the current window, 0 = waiting for the next window.
    last, ref : ndarray
        Previous sample, APT reference sample.
    rct, apt, corr, sat, fmask : ndarray of bool
        Sticky status and software mask.
    apt_pos, corr_pos : int
        Position of the next sweep in the global APT / lag-1 window grid.
    next_row : int
        The row the next word must carry (round-robin).
    """

    def __init__(self, cfg: HealthConfig):
        _check_cfg(cfg, "HealthMonitor")
        self.cfg = cfg
        self.c_rct = rct_cutoff(cfg)
        self.c_apt = apt_cutoff(cfg)
        self.corr_lo, self.corr_hi = corr_bounds(cfg)
        self.reset()

    # -- state -----------------------------------------------------------------------------------
    def reset(self) -> None:
        a = self.cfg.array
        z = lambda dt: np.zeros((a.rows, a.cols), dtype=dt)   # noqa: E731
        self.run, self.apt_b, self.corr_t1 = z(np.int64), z(np.int64), z(np.int64)
        self.last, self.ref = z(np.int64), z(np.int64)
        self.rct, self.apt, self.corr, self.sat, self.fmask = (z(bool) for _ in range(5))
        self.apt_pos = 0
        self.corr_pos = 0
        self.next_row = 0
        self._delay = deque()

    @property
    def masked(self) -> np.ndarray:
        return self.rct | self.apt | self.corr | self.sat | self.fmask

    @property
    def failed(self) -> np.ndarray:
        return self.rct | self.apt | self.corr | self.sat

    @property
    def any_failed(self) -> bool:
        return bool(self.failed.any())

    @property
    def masked_count(self) -> int:
        return int(self.masked.sum())

    def _cell(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"HealthMonitor: cell index = {index!r}: must be an integer")
        if not 0 <= index < self.cfg.array.cells:
            return None
        return divmod(int(index), self.cfg.array.cols)

    def status(self, index: int) -> dict:
        """Status of cell ``index = row * cols + col`` as ``cell_status`` shows it (an index
        outside the array reads all 0)."""
        rc = self._cell(index)
        if rc is None:
            return dict(rct=0, apt=0, corr=0, sat=0, force_mask=0, masked=0)
        return dict(rct=int(self.rct[rc]), apt=int(self.apt[rc]), corr=int(self.corr[rc]),
                    sat=int(self.sat[rc]), force_mask=int(self.fmask[rc]),
                    masked=int(self.masked[rc]))

    # -- CSR actions -----------------------------------------------------------------------------
    def clear(self, index: int) -> None:
        """Clear the cell's sticky test bits and restart its tests (module docstring). Ignored
        for an index outside the array."""
        rc = self._cell(index)
        if rc is None:
            return
        for a in (self.run, self.apt_b, self.corr_t1):
            a[rc] = 0
        for a in (self.rct, self.apt, self.corr, self.sat):
            a[rc] = False

    def force_mask(self, index: int, value) -> None:
        """Set (value true) or clear the cell's software mask. Ignored outside the array."""
        rc = self._cell(index)
        if rc is not None:
            self.fmask[rc] = bool(value)

    # -- one word ----------------------------------------------------------------------------------
    def push(self, row: int, bits: int, alarm: int = 0) -> list[tuple[int, int, int]]:
        """Process one raw word; return the words that leave: ``[(row, bits, valid)]`` or ``[]``
        (hold-back still filling)."""
        a = self.cfg.array
        if row != self.next_row:
            raise ValueError(f"HealthMonitor.push: row = {row!r}: rows must arrive round-robin, "
                             f"expected {self.next_row}")
        for name, v in (("bits", bits), ("alarm", alarm)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < (1 << a.cols):
                raise ValueError(f"HealthMonitor.push: {name} = {v!r}: must be an integer in "
                                 f"[0, {(1 << a.cols) - 1}]")
        r = row
        b = (int(bits) >> np.arange(a.cols)) & 1
        al = ((int(alarm) >> np.arange(a.cols)) & 1).astype(bool)
        run, last = self.run[r], self.last[r]
        new_life = run == 0
        same = b == last
        trans = ~new_life & ~same
        # repetition count
        self.rct[r] |= ~new_life & same & (run == self.c_rct - 1)
        run[:] = np.where(new_life | ~same, 1, np.minimum(run + 1, self.c_rct))
        last[:] = b
        # adaptive proportion
        bb, ref = self.apt_b[r], self.ref[r]
        if self.apt_pos == 0:
            ref[:] = b
            bb[:] = 1
        else:
            match = (bb != 0) & (b == ref)
            self.apt[r] |= match & (bb == self.c_apt - 1)
            bb += match
        # lag-1
        t1 = self.corr_t1[r]
        if self.corr_pos == 0:
            t1[:] = 1 + trans
        else:
            act = t1 != 0
            self.corr[r] |= act & trans & (t1 == self.corr_hi + 1)
            t1 += act & trans
            if self.corr_pos == self.cfg.corr_window - 1:
                self.corr[r] |= act & (t1 < self.corr_lo + 1)
        # saturation
        self.sat[r] |= al
        # release
        ok = ~self.masked[r]
        if r == a.rows - 1:
            self.apt_pos = (self.apt_pos + 1) % self.cfg.apt_window
            self.corr_pos = (self.corr_pos + 1) % self.cfg.corr_window
        self.next_row = (r + 1) % a.rows
        pack = lambda v: int(sum(int(x) << i for i, x in enumerate(v)))  # noqa: E731
        if self.cfg.holdback == 0:
            return [(r, int(bits), pack(ok))]
        self._delay.append((r, int(bits), ok))
        if len(self._delay) <= self.cfg.holdback * a.rows:
            return []
        r0, bits0, ok0 = self._delay.popleft()
        return [(r0, bits0, pack(ok0 & ok))]

    # -- fast path -----------------------------------------------------------------------------------
    def first_fail(self, bits, alarms=None) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised: for a freshly reset monitor fed whole sweeps, the sweep at which each cell
        first fails, and which test fails it.

        Does not use or change this instance's state (beyond its cfg); no CSR activity.

        Parameters
        ----------
        bits : array (S, rows, cols) of 0/1
        alarms : array (S, rows, cols) of bool, optional (default all 0)

        Returns
        -------
        sweep : ndarray (rows, cols) of int64
            First failing sweep, S if the cell never fails.
        test : ndarray (rows, cols) of str
            ``"rct"``, ``"apt"``, ``"corr"``, ``"sat"`` or ``""``.
        """
        x = np.asarray(bits)
        a = self.cfg.array
        if x.ndim != 3 or x.shape[1:] != (a.rows, a.cols):
            raise ValueError(f"HealthMonitor.first_fail: bits shape {x.shape}: must be "
                             f"(S, {a.rows}, {a.cols})")
        s_n = x.shape[0]
        x = x.reshape(s_n, -1).astype(np.int8)
        al = (np.zeros(x.shape, dtype=bool) if alarms is None
              else np.asarray(alarms, dtype=bool).reshape(s_n, -1))
        w, n = self.cfg.apt_window, self.cfg.corr_window
        idx = np.arange(s_n)
        sweep = np.full(a.cells, s_n, dtype=np.int64)
        test = np.full(a.cells, "", dtype=object)

        def first(mask):
            k = np.flatnonzero(mask)
            return int(k[0]) if k.size else s_n

        for c in range(a.cells):
            v = x[:, c]
            cand = {}
            # RCT: run length at each sample
            start = np.zeros(s_n, dtype=bool)
            start[0] = True
            start[1:] = v[1:] != v[:-1]
            run_start = np.maximum.accumulate(np.where(start, idx, 0))
            cand["rct"] = first(idx - run_start + 1 == self.c_rct)
            # APT: the grid starts at sweep 0; pad the last window with non-matching values
            nw = -(-s_n // w)
            vp = np.full(nw * w, 2, dtype=np.int8)
            vp[:s_n] = v
            win = vp.reshape(nw, w)
            cnt = np.cumsum(win == win[:, :1], axis=1)
            cand["apt"] = first((cnt == self.c_apt).reshape(-1)[:s_n])
            # lag-1
            tr = np.zeros(s_n, dtype=np.int8)
            tr[1:] = v[1:] != v[:-1]
            nw = -(-s_n // n)
            tp = np.zeros(nw * n, dtype=np.int16)
            tp[:s_n] = tr
            tc = np.cumsum(tp.reshape(nw, n), axis=1)
            hi = (tc == self.corr_hi + 1) & (tp.reshape(nw, n) == 1)
            lo = np.zeros_like(hi)
            lo[:, -1] = tc[:, -1] < self.corr_lo
            cand["corr"] = first((hi | lo).reshape(-1)[:s_n])
            cand["sat"] = first(al[:, c])
            name = min(cand, key=lambda k: (cand[k], list(cand).index(k)))
            if cand[name] < s_n:
                sweep[c], test[c] = cand[name], name
        return sweep.reshape(a.rows, a.cols), test.reshape(a.rows, a.cols)

    def run_sweeps(self, bits, alarms=None) -> np.ndarray:
        """Vectorised: the ``valid`` bits a freshly reset monitor gives whole sweeps of words.

        Returns an array (S - D, rows, cols) of bool (D = holdback): the valid bits of the words
        that have left after the S sweeps (the last D sweeps are still held back). Bit-exact with
        :meth:`push` on a fresh monitor with no CSR activity (tested). Does not change this
        instance's state.
        """
        s_n = np.asarray(bits).shape[0]
        ff, _ = self.first_fail(bits, alarms)
        d = self.cfg.holdback
        s_out = max(0, s_n - d)
        # sticky status, no clear: a word of sweep s is valid iff the cell is still unmasked
        # after the update of sweep s + D (which implies it was at sweep s too)
        return (np.arange(s_out)[:, None, None] + d) < ff[None]
