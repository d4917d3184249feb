"""Vectorised (compiled) twin of the whole noise path, bit-exact with the per-word twins chained.

The noise path (``docs/mtj-array.md``, ``docs/trng-readout.md``)::

    MTJArrayEmulator ─► MTJArrayController (calibration) ─► HealthMonitor ─► Conditioner
                        ─► BitPacker ─► GaussianGenerator

The transaction twins (:mod:`model.blocks.emulator`, :mod:`model.blocks.mtj_array`,
:mod:`model.blocks.health`, :mod:`model.blocks.conditioner`, :mod:`model.blocks.gaussian`) are
the definition; :class:`NoisePath` computes the same streams, one compiled loop over row
operations (numba, ``cache=True``) for emulator + controller + health + conditioner, and numpy for
the packer and the Gaussian generator. ``tests/test_fastpath.py`` proves it equal, item for item,
to the per-word twins chained exactly as ``sim/cocotb_readout.py`` chains them::

    bits = emu.trial(ctrl.next_row, ctrl.amps_for_next_row())
    row, word = ctrl.capture(bits)
    for r, b, v in health.push(row, word, ctrl.last_alarm):
        cb, cv = cond.push(r, b, v)
        for w in packer.push(cb, cv):
            samples += gauss.push(w)

**Equality with the RTL.** The streams of a :class:`NoisePath` are those of the RTL TRNG top
(``hw.trng_top.MTJTRNGTop`` with its readout) run from reset with: the emulator seeded with
``seed`` (the reset value ``emu_cfg.seed``, or ``SEED`` written and ``CTRL.reseed`` strobed before
the first enable), the per-cell offsets ``offsets`` (``CELL_OFFSET`` writes before enable),
``COND`` = (``cond_mode``, ``cond_k``), ``GAUSS.mode`` = ``gauss_mode``, ``CTRL.cal_enable`` =
``cal_enable``, then ``CTRL.enable`` set, and no other CSR activity (no clear, no force-mask, no
reseed, no mode change) while it runs. Back-pressure and enable gaps change only the timing, never
the streams. The packed words are the ``words`` output (``GAUSS.words_out`` = 1), the samples the
``gauss`` output (``GAUSS.words_out`` = 0).

**One stream, several taps.** A :class:`NoisePath` is one run of the array. Each method draws from
its own level of that one run and consumes what it takes: :meth:`NoisePath.run_raw` runs ``n``
*new* sweeps and returns their raw words (their conditioned bits go to the conditioned-bit
buffer); :meth:`NoisePath.conditioned_bits` takes the next conditioned bits (they never reach the
packer); :meth:`NoisePath.packed_words` packs the next conditioned bits into words (those never
reach the Gaussian generator); :meth:`NoisePath.gauss_samples` takes the next samples. Using one
tap only gives exactly the RTL's stream at that tap; the split into calls never matters.

The array always runs whole sweeps (rows 0..N-1); surplus output waits in the tap's buffer.

Speed: :func:`measure_speed` (called by ``make bench``).

Numba's compile cache goes to ``build/numba`` in the repository (``NUMBA_CACHE_DIR`` unless the
environment already sets it); the first call in a fresh checkout compiles for a few seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[2]
if (_ROOT / "pyproject.toml").is_file():
    # Must be set before numba is imported: numba reads its configuration once, at import.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(_ROOT / "build" / "numba"))

import numba  # noqa: E402

from model.blocks.conditioner import FOLD, VON_NEUMANN, effective_k  # noqa: E402
from model.blocks.config import (ConditionerConfig, EmulatorConfig, GaussConfig,  # noqa: E402
                                 HealthConfig)
from model.blocks.fixedpoint import MODE_CBD, SUM12_TERMS, check_mode, fixed_point  # noqa: E402
from model.blocks.gaussian import GaussianGenerator  # noqa: E402
from model.blocks.health import apt_cutoff, corr_bounds, rct_cutoff  # noqa: E402
from model.blocks.xoshiro import seeded_state  # noqa: E402

__all__ = ["NoisePath", "measure_speed", "xoshiro_steps"]

# ------------------------------------------------------------------------------------------------
# xoshiro128++ on uint64 lanes (values kept < 2**32). Every constant is a uint64 so that numba
# never mixes signed and unsigned 64-bit integers (which it would promote to float64).
_M32 = np.uint64(0xFFFF_FFFF)
_U7, _U25, _U9, _U11, _U21 = (np.uint64(k) for k in (7, 25, 9, 11, 21))


@numba.njit(cache=True, nogil=True)
def _xoshiro_steps_kernel(state, out):
    """Step the generators ``state`` (uint64, (4, n)) ``out.shape[0]`` times; outputs to ``out``
    (uint32, (count, n)). Same recurrence as ``model.blocks.xoshiro.Xoshiro128pp.step``."""
    n = state.shape[1]
    for c in range(n):
        s0, s1, s2, s3 = state[0, c], state[1, c], state[2, c], state[3, c]
        for j in range(out.shape[0]):
            t = (s0 + s3) & _M32
            out[j, c] = (((t << _U7) | (t >> _U25)) + s0) & _M32
            t = (s1 << _U9) & _M32
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = ((s3 << _U11) | (s3 >> _U21)) & _M32
        state[0, c], state[1, c], state[2, c], state[3, c] = s0, s1, s2, s3


def xoshiro_steps(state, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` steps of the xoshiro128++ generators ``state`` (``(4, n)`` words < 2**32).

    Returns ``(outputs uint32 (count, n), new state uint32 (4, n))``; bit-exact with ``count``
    calls of :meth:`model.blocks.xoshiro.Xoshiro128pp.step` (compiled; used by
    ``Xoshiro128pp.steps`` for long runs)."""
    st = np.array(state, dtype=np.uint64)
    out = np.empty((int(count), st.shape[1]), dtype=np.uint32)
    _xoshiro_steps_kernel(st, out)
    return out, st.astype(np.uint32)


# ------------------------------------------------------------------------------------------------
# The row-operation kernel: emulator + controller/calibration + health + conditioner.
# Scalar state (int64 array ``sc``) and parameters (int64 array ``pr``), by index:
_S_TRIAL, _S_APT_POS, _S_CORR_POS, _S_HOLD_COUNT, _S_HOLD_HEAD = range(5)
_N_S = 5
(_P_ROWS, _P_COLS, _P_WINDOW, _P_DEADBAND, _P_STEP_SHIFT, _P_CMAX, _P_SHIFT, _P_CAL_EN,
 _P_C_RCT, _P_C_APT, _P_CORR_LO, _P_CORR_HI, _P_APT_W, _P_CORR_W, _P_HOLD_LEN, _P_MODE,
 _P_K) = range(17)
_N_P = 17
#: Health status bits per cell (``NoisePath.health_status``).
ST_RCT, ST_APT, ST_CORR, ST_SAT = 1, 2, 4, 8


@numba.njit(cache=True, nogil=True)
def _rows_kernel(n_sweeps, pr, sc, gen, table, offsets, codes, ones, alarms,
                 h_run, h_last, h_ref, h_b, h_t1, h_st, hold_bits, hold_ok,
                 c_acc, c_cnt, want_raw, out_raw, out_alarm, out_cond):
    """Run ``n_sweeps`` whole sweeps (rows 0..N-1 each); return the number of conditioned bits
    written to ``out_cond``. Every state array is updated in place. See the per-word twins for
    the meaning of each step; the comments name the twin method each block mirrors."""
    rows, cols = pr[_P_ROWS], pr[_P_COLS]
    window, deadband, step_shift, cmax = pr[_P_WINDOW], pr[_P_DEADBAND], pr[_P_STEP_SHIFT], pr[_P_CMAX]
    shift = np.uint64(pr[_P_SHIFT])
    cal_en = pr[_P_CAL_EN] != 0
    c_rct, c_apt, corr_lo, corr_hi = pr[_P_C_RCT], pr[_P_C_APT], pr[_P_CORR_LO], pr[_P_CORR_HI]
    apt_w, corr_w, hold_len = pr[_P_APT_W], pr[_P_CORR_W], pr[_P_HOLD_LEN]
    mode, k = pr[_P_MODE], pr[_P_K]
    trial, apt_pos, corr_pos = sc[_S_TRIAL], sc[_S_APT_POS], sc[_S_CORR_POS]
    hold_count, hold_head = sc[_S_HOLD_COUNT], sc[_S_HOLD_HEAD]
    half = window // 2
    bits = np.empty(cols, dtype=np.int64)
    ok = np.empty(cols, dtype=np.int64)
    n_out = 0
    i = 0
    for _ in range(n_sweeps):
        for r in range(rows):
            # MTJArrayEmulator.trial: idx = clamp(code + offset), u = out >> (32 - U), u < thr
            for c in range(cols):
                idx = codes[r, c] + offsets[r, c]
                if idx < 0:
                    idx = 0
                elif idx > cmax:
                    idx = cmax
                s0, s1, s2, s3 = gen[0, c], gen[1, c], gen[2, c], gen[3, c]
                t = (s0 + s3) & _M32
                u = ((((t << _U7) | (t >> _U25)) + s0) & _M32) >> shift
                t = (s1 << _U9) & _M32
                s2 ^= s0
                s3 ^= s1
                s1 ^= s2
                s0 ^= s3
                s2 ^= t
                s3 = ((s3 << _U11) | (s3 >> _U21)) & _M32
                gen[0, c], gen[1, c], gen[2, c], gen[3, c] = s0, s1, s2, s3
                bits[c] = 1 if np.int64(u) < table[idx] else 0
            # MTJArrayController.capture: calibration of row r
            closing = trial == window - 1
            for c in range(cols):
                o = ones[r, c] + bits[c]
                if closing:
                    if cal_en:
                        e = o - half
                        mag = e if e >= 0 else -e
                        if mag > deadband:
                            step = mag >> step_shift
                            if step < 1:
                                step = 1
                            code = codes[r, c]
                            if e > 0:
                                if code == 0:
                                    alarms[r, c] = 1
                                else:
                                    codes[r, c] = code - step if code > step else 0
                            else:
                                if code == cmax:
                                    alarms[r, c] = 1
                                else:
                                    codes[r, c] = code + step if code + step < cmax else cmax
                    ones[r, c] = 0
                else:
                    ones[r, c] = o
            if r == rows - 1:
                trial = (trial + 1) % window
            if want_raw:
                for c in range(cols):
                    out_raw[i, c] = bits[c]
                    out_alarm[i, c] = alarms[r, c]
            i += 1
            # HealthMonitor.push (no CSR activity: no clear, no force_mask)
            for c in range(cols):
                b = bits[c]
                run = h_run[r, c]
                st = h_st[r, c]
                new_life = run == 0
                same = b == h_last[r, c]
                trans = (not new_life) and (not same)
                if (not new_life) and same and run == c_rct - 1:
                    st |= ST_RCT
                if new_life or not same:
                    h_run[r, c] = 1
                else:
                    h_run[r, c] = run + 1 if run + 1 < c_rct else c_rct
                h_last[r, c] = b
                if apt_pos == 0:
                    h_ref[r, c] = b
                    h_b[r, c] = 1
                else:
                    bb = h_b[r, c]
                    if bb != 0 and b == h_ref[r, c]:
                        if bb == c_apt - 1:
                            st |= ST_APT
                        h_b[r, c] = bb + 1
                t1 = h_t1[r, c]
                if corr_pos == 0:
                    h_t1[r, c] = 2 if trans else 1
                else:
                    if t1 != 0 and trans:
                        if t1 == corr_hi + 1:
                            st |= ST_CORR
                        t1 += 1
                        h_t1[r, c] = t1
                    if corr_pos == corr_w - 1 and t1 != 0 and t1 < corr_lo + 1:
                        st |= ST_CORR
                if alarms[r, c]:
                    st |= ST_SAT
                h_st[r, c] = st
                ok[c] = 1 if st == 0 else 0
            if r == rows - 1:
                apt_pos = (apt_pos + 1) % apt_w
                corr_pos = (corr_pos + 1) % corr_w
            # hold-back: the word D*rows words back has the same row (round-robin order)
            if hold_len > 0:
                if hold_count < hold_len:
                    slot = (hold_head + hold_count) % hold_len
                    for c in range(cols):
                        hold_bits[slot, c] = bits[c]
                        hold_ok[slot, c] = ok[c]
                    hold_count += 1
                    continue
                for c in range(cols):
                    b0, ok0 = hold_bits[hold_head, c], hold_ok[hold_head, c]
                    hold_bits[hold_head, c] = bits[c]
                    hold_ok[hold_head, c] = ok[c]
                    bits[c] = b0
                    ok[c] = ok0 & ok[c]
                hold_head = (hold_head + 1) % hold_len
            # Conditioner.push, then the emitted bits in ascending column (BitPacker order)
            for c in range(cols):
                if ok[c] == 0:
                    continue
                b = bits[c]
                if mode == 1:                         # XOR fold
                    x = c_acc[r, c] ^ b
                    if c_cnt[r, c] + 1 == k:
                        out_cond[n_out] = x
                        n_out += 1
                        c_acc[r, c] = 0
                        c_cnt[r, c] = 0
                    else:
                        c_acc[r, c] = x
                        c_cnt[r, c] += 1
                elif mode == 2:                       # von Neumann
                    if c_cnt[r, c] == 0:
                        c_acc[r, c] = b
                        c_cnt[r, c] = 1
                    else:
                        if c_acc[r, c] != b:
                            out_cond[n_out] = c_acc[r, c]
                            n_out += 1
                        c_acc[r, c] = 0
                        c_cnt[r, c] = 0
                else:                                 # pass-through (modes 0 and 3)
                    out_cond[n_out] = b
                    n_out += 1
    sc[_S_TRIAL], sc[_S_APT_POS], sc[_S_CORR_POS] = trial, apt_pos, corr_pos
    sc[_S_HOLD_COUNT], sc[_S_HOLD_HEAD] = hold_count, hold_head
    return n_out


def _check_int(owner, name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not lo <= int(value) <= hi:
        raise ValueError(f"{owner}: {name} = {value!r}: must be an integer in [{lo}, {hi}]")
    return int(value)


# ------------------------------------------------------------------------------------------------
def readout_configs(owner: str, array, health_cfg=None, cond_cfg=None, gauss_cfg=None,
                    array_name: str = "array"):
    """The readout chain's configurations for ``array`` (defaults where None), checked: the
    right types, the health monitor and conditioner on ``array``, the Gaussian generator's word
    width equal to the conditioner's. Returns ``(health_cfg, cond_cfg, gauss_cfg)``."""
    health_cfg = HealthConfig(array) if health_cfg is None else health_cfg
    cond_cfg = ConditionerConfig(array) if cond_cfg is None else cond_cfg
    gauss_cfg = GaussConfig() if gauss_cfg is None else gauss_cfg
    for name, cfg, typ in (("health_cfg", health_cfg, HealthConfig),
                           ("cond_cfg", cond_cfg, ConditionerConfig),
                           ("gauss_cfg", gauss_cfg, GaussConfig)):
        if not isinstance(cfg, typ):
            raise ValueError(f"{owner}: {name} = {cfg!r}: must be a {typ.__name__}")
    for name, cfg in (("health_cfg", health_cfg), ("cond_cfg", cond_cfg)):
        if cfg.array != array:
            raise ValueError(f"{owner}: {name}.array = {cfg.array!r}: must be "
                             f"{array_name} = {array!r}")
    if gauss_cfg.word_bits != cond_cfg.word_bits:
        raise ValueError(f"{owner}: gauss_cfg.word_bits = {gauss_cfg.word_bits}: must equal "
                         f"cond_cfg.word_bits = {cond_cfg.word_bits}")
    return health_cfg, cond_cfg, gauss_cfg


class NoisePath:
    """The whole noise path, compiled: emulator → controller with calibration → health monitor →
    conditioner → bit packer → Gaussian generator. Bit-exact with the per-word twins chained
    (module docstring), and so with the RTL under the conditions stated there.

    Parameters
    ----------
    emu_cfg : EmulatorConfig
        Emulator (and, through ``emu_cfg.array``, controller and calibration) parameters.
    health_cfg : HealthConfig, optional
        Default ``HealthConfig(emu_cfg.array)``. Its array must be ``emu_cfg.array``.
    cond_cfg : ConditionerConfig, optional
        Default ``ConditionerConfig(emu_cfg.array)``. Its array must be ``emu_cfg.array``.
    gauss_cfg : GaussConfig, optional
        Default ``GaussConfig()``; its ``word_bits`` must equal ``cond_cfg.word_bits`` (as in
        ``hw.trng_top.ReadoutConfig``).
    seed : int, optional
        Emulator seed, [0, 2**32 - 1]; default ``emu_cfg.seed``.
    cond_mode, cond_k : int
        ``COND`` register: mode 0 pass-through, 1 XOR fold, 2 von Neumann (3 acts as 0); k in
        [0, max_fold] (0 acts as 1). Default XOR fold with k = 2.
    gauss_mode : int
        ``GAUSS.mode``: 0 CBD, 1 sum of 12 uniforms. Default 0.
    cal_enable : bool
        ``CTRL.cal_enable`` (default True, the register's reset value).
    offsets : array_like (rows, cols) or (rows*cols,), optional
        Per-cell emulator offsets; default ``emu_cfg.offsets``. Range as ``CELL_OFFSET``.

    Attributes
    ----------
    sweeps_run : int
        Sweeps the array has run so far.
    fp : model.blocks.fixedpoint.FixedPoint
        The sample format (``fp.to_float(raw)``).

    Notes
    -----
    Settings are fixed for the object's life (a run with no CSR activity). Every method draws
    from one run of the array (module docstring, "One stream, several taps").
    """

    #: One compiled call runs at most this many raw bits (whole sweeps, at least one): bounds
    #: the temporary buffers. Speed only, never results.
    max_chunk_bits = 1 << 20

    def __init__(self, emu_cfg: EmulatorConfig, health_cfg: HealthConfig | None = None,
                 cond_cfg: ConditionerConfig | None = None, gauss_cfg: GaussConfig | None = None,
                 seed: int | None = None, *, cond_mode: int = FOLD, cond_k: int = 2,
                 gauss_mode: int = MODE_CBD, cal_enable: bool = True, offsets=None):
        if not isinstance(emu_cfg, EmulatorConfig):
            raise ValueError(f"NoisePath: emu_cfg = {emu_cfg!r}: must be an EmulatorConfig")
        a = emu_cfg.array
        health_cfg, cond_cfg, gauss_cfg = readout_configs("NoisePath", a, health_cfg, cond_cfg,
                                                          gauss_cfg, "emu_cfg.array")
        seed = emu_cfg.seed if seed is None else _check_int("NoisePath", "seed", seed, 0,
                                                            2**32 - 1)
        self.cond_mode = _check_int("NoisePath", "cond_mode", cond_mode, 0, 3)
        self.cond_k = _check_int("NoisePath", "cond_k", cond_k, 0, cond_cfg.max_fold)
        self.gauss_mode = check_mode("NoisePath", gauss_mode)
        if not isinstance(cal_enable, (bool, np.bool_)):
            raise ValueError(f"NoisePath: cal_enable = {cal_enable!r}: must be a bool")
        self.emu_cfg, self.health_cfg, self.cond_cfg, self.gauss_cfg = (
            emu_cfg, health_cfg, cond_cfg, gauss_cfg)
        self.seed = seed
        self.cal_enable = bool(cal_enable)
        rows, cols = a.rows, a.cols

        # emulator
        if offsets is None:
            offsets = emu_cfg.offsets
        off = np.asarray(offsets)
        lim = 1 << (emu_cfg.offset_width - 1)
        if off.size != a.cells or off.dtype.kind not in "iu" or np.any(off < -lim) \
                or np.any(off >= lim):
            raise ValueError(f"NoisePath: offsets: need {a.cells} integers in [{-lim}, {lim - 1}] "
                             f"(rows*cols, row-major)")
        self._offsets = off.astype(np.int64).reshape(rows, cols).copy()
        self._table = np.array(emu_cfg.table, dtype=np.int64)
        st = seeded_state(seed, cols)
        if emu_cfg.warmup_steps:
            _, st = xoshiro_steps(st, emu_cfg.warmup_steps)
        self._gen = st.astype(np.uint64)
        # controller
        z = lambda dt: np.zeros((rows, cols), dtype=dt)   # noqa: E731
        self._codes = np.full((rows, cols), a.code_init, dtype=np.int64)
        self._ones = z(np.int64)
        self._alarms = z(np.uint8)
        # health
        self._h_run, self._h_last, self._h_ref = z(np.int64), z(np.int64), z(np.int64)
        self._h_b, self._h_t1, self._h_st = z(np.int64), z(np.int64), z(np.uint8)
        hold_len = health_cfg.holdback * rows
        self._hold_bits = np.zeros((max(hold_len, 1), cols), dtype=np.int64)
        self._hold_ok = np.zeros((max(hold_len, 1), cols), dtype=np.int64)
        # conditioner
        self._c_acc, self._c_cnt = z(np.int64), z(np.int64)
        mode = self.cond_mode if self.cond_mode in (FOLD, VON_NEUMANN) else 0
        lo, hi = corr_bounds(health_cfg)
        self._pr = np.zeros(_N_P, dtype=np.int64)
        for i, v in ((_P_ROWS, rows), (_P_COLS, cols), (_P_WINDOW, a.window),
                     (_P_DEADBAND, a.deadband), (_P_STEP_SHIFT, a.step_shift),
                     (_P_CMAX, a.code_max), (_P_SHIFT, 32 - emu_cfg.prob_bits),
                     (_P_CAL_EN, int(self.cal_enable)), (_P_C_RCT, rct_cutoff(health_cfg)),
                     (_P_C_APT, apt_cutoff(health_cfg)), (_P_CORR_LO, lo), (_P_CORR_HI, hi),
                     (_P_APT_W, health_cfg.apt_window), (_P_CORR_W, health_cfg.corr_window),
                     (_P_HOLD_LEN, hold_len), (_P_MODE, mode),
                     (_P_K, effective_k(self.cond_k, cond_cfg.max_fold))):
            self._pr[i] = v
        self._sc = np.zeros(_N_S, dtype=np.int64)
        self.sweeps_run = 0
        # taps
        self._cbuf = np.zeros(0, dtype=np.uint8)      # conditioned bits not yet taken
        self._gauss = GaussianGenerator(gauss_cfg)
        self._gauss.mode = self.gauss_mode
        self._sbuf = np.zeros(0, dtype=np.int64)       # samples not yet taken
        self.fp = fixed_point(gauss_cfg)
        self._rate = None                               # conditioned bits per sweep, observed

    # -- state, as the twins show it ------------------------------------------------------------
    @property
    def codes(self) -> np.ndarray:
        """Calibration codes (rows, cols), as ``MTJArrayController.codes``."""
        return self._codes.copy()

    @property
    def ones(self) -> np.ndarray:
        return self._ones.copy()

    @property
    def alarms(self) -> np.ndarray:
        """Sticky calibration alarms (rows, cols) bool."""
        return self._alarms.astype(bool)

    @property
    def trial(self) -> int:
        return int(self._sc[_S_TRIAL])

    @property
    def offsets(self) -> np.ndarray:
        return self._offsets.copy()

    @property
    def gen_state(self) -> np.ndarray:
        """Generator state, uint32 (4, cols), as ``MTJArrayEmulator.gen.state``."""
        return self._gen.astype(np.uint32)

    @property
    def health_status(self) -> dict:
        """Sticky health status per cell: ``{"rct", "apt", "corr", "sat"}`` -> bool (rows, cols)."""
        s = self._h_st
        return {name: (s & bit) != 0 for name, bit in
                (("rct", ST_RCT), ("apt", ST_APT), ("corr", ST_CORR), ("sat", ST_SAT))}

    @property
    def masked(self) -> np.ndarray:
        """Masked cells (rows, cols) bool (any health status set)."""
        return self._h_st != 0

    @property
    def cond_state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(acc, cnt)`` per cell, as ``Conditioner.acc`` / ``Conditioner.cnt``."""
        return self._c_acc.astype(np.uint8), self._c_cnt.copy()

    @property
    def max_chunk_sweeps(self) -> int:
        return max(1, self.max_chunk_bits // self.emu_cfg.array.cells)

    # -- the array -------------------------------------------------------------------------------
    def _run(self, n_sweeps: int, want_raw: bool):
        a = self.emu_cfg.array
        n_rows = n_sweeps * a.rows
        out_raw = np.empty((n_rows if want_raw else 0, a.cols), dtype=np.uint8)
        out_alarm = np.empty_like(out_raw)
        out_cond = np.empty(n_rows * a.cols, dtype=np.uint8)
        n = _rows_kernel(n_sweeps, self._pr, self._sc, self._gen, self._table, self._offsets,
                         self._codes, self._ones, self._alarms, self._h_run, self._h_last,
                         self._h_ref, self._h_b, self._h_t1, self._h_st, self._hold_bits,
                         self._hold_ok, self._c_acc, self._c_cnt, want_raw, out_raw, out_alarm,
                         out_cond)
        self.sweeps_run += n_sweeps
        self._cbuf = np.concatenate((self._cbuf, out_cond[:n])) if self._cbuf.size \
            else out_cond[:n].copy()
        return out_raw, out_alarm

    def run_raw(self, n_sweeps: int) -> tuple[np.ndarray, np.ndarray]:
        """Run ``n_sweeps`` new sweeps; return their raw words.

        Returns
        -------
        (bits, alarm) : numpy.ndarray, uint8 (n_sweeps, rows, cols)
            ``bits[s, r, c]``: cell (r, c) in sweep s; ``alarm``: the raw word's ``alarm`` field
            (the controller's sticky alarm of the cell right after that capture). Their
            conditioned bits go to the conditioned-bit buffer.
        """
        a = self.emu_cfg.array
        n_sweeps = _check_int("NoisePath.run_raw", "n_sweeps", n_sweeps, 0, 2**40)
        bits = np.empty((n_sweeps, a.rows, a.cols), dtype=np.uint8)
        alarm = np.empty_like(bits)
        s = 0
        while s < n_sweeps:
            m = min(self.max_chunk_sweeps, n_sweeps - s)
            b, al = self._run(m, True)
            bits[s:s + m] = b.reshape(m, a.rows, a.cols)
            alarm[s:s + m] = al.reshape(m, a.rows, a.cols)
            s += m
        return bits, alarm

    def _fill_bits(self, n: int) -> None:
        """Run sweeps until at least ``n`` conditioned bits wait in the buffer."""
        while self._cbuf.size < n:
            if self.masked.all():
                raise RuntimeError(f"NoisePath: every cell is masked by the health tests after "
                                   f"{self.sweeps_run} sweeps: no conditioned bit can come "
                                   f"(seed={self.seed})")
            rate = self._rate if self._rate else 1.0
            need = n - self._cbuf.size
            m = int(min(self.max_chunk_sweeps, max(16, np.ceil(1.05 * need / rate) + 1)))
            before = self._cbuf.size
            self._run(m, False)
            got = self._cbuf.size - before
            if got:
                self._rate = got / m

    # -- taps ------------------------------------------------------------------------------------
    def conditioned_bits(self, n: int) -> np.ndarray:
        """The next ``n`` conditioned bits (uint8 0/1), in the packer's order (word after word,
        within a word by ascending column). Raises RuntimeError when every cell is masked."""
        n = _check_int("NoisePath.conditioned_bits", "n", n, 0, 2**40)
        self._fill_bits(n)
        out, self._cbuf = self._cbuf[:n].copy(), self._cbuf[n:]
        return out

    def packed_words(self, n: int) -> np.ndarray:
        """The next ``n`` packed words (uint64, ``word_bits`` wide, earliest bit in the LSB)."""
        n = _check_int("NoisePath.packed_words", "n", n, 0, 2**40)
        w = self.cond_cfg.word_bits
        bits = self.conditioned_bits(n * w).reshape(n, w)
        wp = -(-w // 8) * 8
        if wp != w:
            bits = np.concatenate((bits, np.zeros((n, wp - w), dtype=np.uint8)), axis=1)
        by = np.packbits(bits, axis=1, bitorder="little")
        if by.shape[1] != 8:
            by = np.concatenate((by, np.zeros((n, 8 - by.shape[1]), dtype=np.uint8)), axis=1)
        return np.ascontiguousarray(by).view("<u8").ravel().astype(np.uint64)

    def gauss_samples(self, n: int) -> np.ndarray:
        """The next ``n`` Gaussian samples, raw int64 in the ``fp`` format (Q int.frac)."""
        n = _check_int("NoisePath.gauss_samples", "n", n, 0, 2**40)
        g = self.gauss_cfg
        while self._sbuf.size < n:
            need = n - self._sbuf.size
            if self.gauss_mode == MODE_CBD:
                words = -(-need // (g.word_bits // g.cbd_bits))
            else:
                fields = need * SUM12_TERMS - self._gauss.partial_fields
                words = -(-fields // (g.word_bits // g.uniform_bits))
            s = self._gauss.run(self.packed_words(max(1, words)))
            self._sbuf = np.concatenate((self._sbuf, s)) if self._sbuf.size else s
        out, self._sbuf = self._sbuf[:n].copy(), self._sbuf[n:]
        return out

    def gauss_values(self, n: int) -> np.ndarray:
        """:meth:`gauss_samples` as float64 values (``raw / 2**frac_bits``, exact)."""
        return self.fp.to_float(self.gauss_samples(n))


# ------------------------------------------------------------------------------------------------
def _default_emu_cfg(seed: int) -> EmulatorConfig:
    from model.blocks.config import ArrayConfig
    from model.devices.mtj import default_emulator_config
    a = ArrayConfig()
    table, offsets = default_emulator_config(a, seed=seed)
    return EmulatorConfig(array=a, table=tuple(table), offsets=tuple(offsets), seed=seed)


def measure_speed(emu_cfg: EmulatorConfig | None = None, seed: int = 1,
                  min_time_s: float = 1.0) -> dict:
    """Throughput of :class:`NoisePath` on this machine (one thread).

    Parameters
    ----------
    emu_cfg : EmulatorConfig, optional
        Default: the default 8x8 array with the device model's table and offsets drawn with
        ``seed`` (what ``make sim`` uses); readout configs are the defaults.
    seed : int
        Device-variation seed of the default config and the emulator seed.
    min_time_s : float
        Each figure is timed over at least this long (after compilation and a warm-up call).

    Returns
    -------
    dict
        ``raw_bits_per_s`` (raw bits through emulator, calibration, health and conditioner),
        ``cond_bits_per_s`` and ``cond_bits_per_min`` per conditioner setting (``fold_k2``,
        ``von_neumann``), ``gauss_samples_per_s`` per mode (``cbd``, ``sum12``, with fold k = 2),
        ``masked_cells`` per run, ``compile_or_cache_load_s`` and the array size.
    """
    if not (isinstance(min_time_s, (int, float)) and 0 < min_time_s <= 600):
        raise ValueError(f"measure_speed: min_time_s = {min_time_s!r}: must be in (0, 600]")
    cfg = _default_emu_cfg(seed) if emu_cfg is None else emu_cfg
    a = cfg.array

    def timed(fn, unit):
        fn(unit)                                    # warm-up (buffers, calibration settling)
        n, t0 = 0, time.perf_counter()
        while True:
            fn(unit)
            n += unit
            dt = time.perf_counter() - t0
            if dt >= min_time_s:
                return n / dt

    t0 = time.perf_counter()
    NoisePath(cfg, seed=seed).run_raw(1)
    compile_s = time.perf_counter() - t0
    res = {"array": f"{a.rows}x{a.cols}", "threads": 1, "min_time_s": float(min_time_s),
           "compile_or_cache_load_s": round(compile_s, 3), "cond_bits_per_s": {},
           "cond_bits_per_min": {}, "gauss_samples_per_s": {}, "masked_cells": {}}
    p = NoisePath(cfg, seed=seed)
    res["raw_bits_per_s"] = timed(lambda s: p.run_raw(s), 4096) * a.cells
    res["masked_cells"]["raw"] = int(p.masked.sum())
    for name, mode, k in (("fold_k2", FOLD, 2), ("von_neumann", VON_NEUMANN, 2)):
        p = NoisePath(cfg, seed=seed, cond_mode=mode, cond_k=k)
        rate = timed(p.conditioned_bits, 1 << 20)
        res["cond_bits_per_s"][name] = rate
        res["cond_bits_per_min"][name] = rate * 60
        res["masked_cells"][name] = int(p.masked.sum())
    for name, gmode, unit in (("cbd", 0, 1 << 15), ("sum12", 1, 1 << 12)):
        p = NoisePath(cfg, seed=seed, cond_mode=FOLD, cond_k=2, gauss_mode=gmode)
        res["gauss_samples_per_s"][name] = timed(p.gauss_samples, unit)
    return res
