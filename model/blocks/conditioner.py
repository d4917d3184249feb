"""Bit-exact, transaction-level twins of ``hw.conditioner.Conditioner`` and ``hw.packer.BitPacker``.

The contract is ``docs/trng-readout.md`` sections 2 and 3. The twins know nothing about cycles:
back-pressure only changes *when* the RTL moves a word, never what it computes.

Ordering rule for a caller that drives the RTL and the twin side by side: the RTL compares its
``mode``/``k`` ports with registered copies **every cycle**, and a word accepted in the cycle
where they differ is already processed with the new setting from cleared state. Call
:meth:`Conditioner.set_mode` with the port values of a cycle *before* :meth:`Conditioner.push` of a
word accepted in that cycle (calling it every cycle is the simplest way to get this right).

Both classes also have a vectorised ``run`` (numpy) that continues from, and leaves, the same
state as the per-word ``push``; the tests prove the two equal on random data.
"""

from __future__ import annotations

import numpy as np

from model.blocks.config import ConditionerConfig

#: Run-time modes of the conditioner (CSR ``COND.mode``). Mode 3 behaves like PASS.
PASS, FOLD, VON_NEUMANN = 0, 1, 2


def _check_cfg(owner: str, cfg) -> ConditionerConfig:
    if not isinstance(cfg, ConditionerConfig):
        raise ValueError(f"{owner}.cfg = {cfg!r}: must be a ConditionerConfig "
                         f"(model.blocks.config.ConditionerConfig)")
    return cfg


def _check_word(owner: str, name: str, value, width: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not 0 <= int(value) < (1 << width):
        raise ValueError(f"{owner}.{name} = {value!r}: must be an integer in "
                         f"[0, {(1 << width) - 1}]")
    return int(value)


def _as_bit_matrix(owner: str, name: str, a, cols: int) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[1] != cols:
        raise ValueError(f"{owner}.{name}: shape {a.shape}, must be (T, cols = {cols})")
    if a.dtype != np.bool_:
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{owner}.{name}: dtype {a.dtype}, must be bool or integer 0/1")
        if a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(f"{owner}.{name}: values must be 0 or 1")
    return a.astype(np.uint8, copy=False)


def effective_k(k: int, max_fold: int) -> int:
    """The fold factor the RTL uses for a ``k`` port value: 0 acts as 1, above max_fold as
    max_fold (only reachable when the port is wider than needed)."""
    return min(max(int(k), 1), max_fold)


class Conditioner:
    """Per-cell XOR fold / von Neumann / pass-through on the valid bits, integer-exact.

    Parameters
    ----------
    cfg : ConditionerConfig
        Geometry (``cfg.array``) and the build limit ``max_fold``.

    Attributes
    ----------
    mode, k : int
        Last values given to :meth:`set_mode` (raw port values; initially 0 and 0, the RTL's
        reset values of its registered copies).
    acc : numpy.ndarray, shape (rows, cols), uint8
        Per cell: XOR accumulator (fold) or pending first bit (von Neumann).
    cnt : numpy.ndarray, shape (rows, cols), int64
        Per cell: valid bits taken since the last emission (fold, ``0 .. k-1``) or pairing phase
        (von Neumann, 0 or 1). Always 0 in pass-through.

    Notes
    -----
    Semantics (``docs/trng-readout.md`` §2), per cell and on its valid bits only:

    * ``mode`` 1, XOR fold: XOR successive valid bits; on every k-th the cell emits the XOR of
      those k bits and restarts. ``k`` = 0 acts as k = 1 (documented safe choice; the contract
      range is [1, max_fold]).
    * ``mode`` 2, von Neumann: pairs (b1, b2) of successive valid bits; 01 -> 0, 10 -> 1 (the
      emitted bit is b1), 00 and 11 nothing.
    * ``mode`` 0 (and 3): every valid bit is emitted.

    The output of a word is ``(bits, valid)``; the ``bits`` of a cell that emits nothing are 0.
    Any change of the (mode, k) port values clears every cell's state.
    """

    #: :meth:`run` works in chunks of about this many input bits (speed only, not results).
    chunk_bits = 1 << 18

    def __init__(self, cfg: ConditionerConfig):
        self.cfg = _check_cfg("Conditioner", cfg)
        self.reset()

    # ---------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """State after the RTL's reset: every cell cleared, registered mode/k = 0."""
        a = self.cfg.array
        self.acc = np.zeros((a.rows, a.cols), dtype=np.uint8)
        self.cnt = np.zeros((a.rows, a.cols), dtype=np.int64)
        self.mode = 0
        self.k = 0

    def clear_state(self) -> None:
        self.acc[:] = 0
        self.cnt[:] = 0

    def set_mode(self, mode: int, k: int) -> None:
        """Apply the ``mode``/``k`` port values; a change of either clears every cell's state.

        ``mode`` in [0, 3] (3 acts as pass-through), ``k`` in [0, max_fold] (0 acts as 1)."""
        _check_word("Conditioner", "mode", mode, 2)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) \
                or not 0 <= int(k) <= self.cfg.max_fold:
            raise ValueError(f"Conditioner.k = {k!r}: must be an integer in "
                             f"[0, max_fold = {self.cfg.max_fold}]")
        mode, k = int(mode), int(k)
        if (mode, k) != (self.mode, self.k):
            self.clear_state()
        self.mode, self.k = mode, k

    @property
    def k_eff(self) -> int:
        return effective_k(self.k, self.cfg.max_fold)

    # ---------------------------------------------------------------------------------------------
    def push(self, row: int, bits: int, valid: int) -> tuple[int, int]:
        """Condition one word of row ``row``; return ``(bits, valid)`` as cols-bit integers."""
        a = self.cfg.array
        row = _check_word("Conditioner", "row", row, a.row_width)
        if row >= a.rows:
            raise ValueError(f"Conditioner.row = {row}: must be in [0, rows - 1 = {a.rows - 1}]")
        bits = _check_word("Conditioner", "bits", bits, a.cols)
        valid = _check_word("Conditioner", "valid", valid, a.cols)
        if self.mode not in (FOLD, VON_NEUMANN):
            return bits & valid, valid
        k = self.k_eff
        ob = ov = 0
        acc, cnt = self.acc[row], self.cnt[row]
        for c in range(a.cols):
            if not (valid >> c) & 1:
                continue
            b = (bits >> c) & 1
            if self.mode == FOLD:
                x = int(acc[c]) ^ b
                if cnt[c] + 1 == k:
                    ob |= x << c
                    ov |= 1 << c
                    acc[c], cnt[c] = 0, 0
                else:
                    acc[c], cnt[c] = x, cnt[c] + 1
            else:
                if cnt[c] == 0:
                    acc[c], cnt[c] = b, 1
                else:
                    if acc[c] != b:
                        ob |= int(acc[c]) << c
                        ov |= 1 << c
                    acc[c], cnt[c] = 0, 0
        return ob, ov

    # ---------------------------------------------------------------------------------------------
    def run(self, rows, bits, valid) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`push` over T words; same result and final state.

        Parameters
        ----------
        rows : array_like, shape (T,)
            Row of each word (any order; state is kept per row).
        bits, valid : array_like, shape (T, cols), bool or 0/1 integers
            Bit ``[t, c]`` is column c of word t.

        Returns
        -------
        (bits, valid) : numpy.ndarray, shape (T, cols), uint8
        """
        a = self.cfg.array
        cols, nrows = a.cols, a.rows
        bits = _as_bit_matrix("Conditioner", "bits", bits, cols)
        valid = _as_bit_matrix("Conditioner", "valid", valid, cols)
        rows = np.asarray(rows)
        T = bits.shape[0]
        if valid.shape[0] != T or rows.shape != (T,):
            raise ValueError(f"Conditioner.rows/bits/valid: shapes {rows.shape}, {bits.shape}, "
                             f"{valid.shape} do not agree on T")
        if T and (not np.issubdtype(rows.dtype, np.integer) or rows.min() < 0
                  or rows.max() >= nrows):
            raise ValueError(f"Conditioner.rows: must be integers in [0, {nrows - 1}]")
        if self.mode not in (FOLD, VON_NEUMANN) or T == 0:
            return bits & valid, valid.copy()
        # chunks of about chunk_bits bits keep the temporaries in cache; state carries over
        step = max(1, self.chunk_bits // cols)
        if T > step:
            ob = np.empty((T, cols), dtype=np.uint8)
            ov = np.empty((T, cols), dtype=np.uint8)
            for s in range(0, T, step):
                ob[s:s + step], ov[s:s + step] = self._run_chunk(
                    rows[s:s + step], bits[s:s + step], valid[s:s + step])
            return ob, ov
        return self._run_chunk(rows, bits, valid)

    def _run_chunk(self, rows, bits, valid):
        a = self.cfg.array
        cols, nrows = a.cols, a.rows
        T = bits.shape[0]

        # --- cell-major order: all words of row 0 col 0 in time order, then row 0 col 1, ...
        rows = rows.astype(np.int64)
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=nrows)
        row_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
        vs, bs = valid[order], bits[order]
        if np.all(counts == counts[0]):
            tr = int(counts[0])
            vf = vs.reshape(nrows, tr, cols).transpose(0, 2, 1).ravel()
            bf = bs.reshape(nrows, tr, cols).transpose(0, 2, 1).ravel()
        else:
            vf = np.concatenate([vs[s:s + n].T.ravel() for s, n in zip(row_start, counts)])
            bf = np.concatenate([bs[s:s + n].T.ravel() for s, n in zip(row_start, counts)])
        seg_len = np.repeat(counts, cols)                        # per cell (row-major cells)
        seg_start = np.concatenate(([0], np.cumsum(seg_len)[:-1]))

        pos = np.flatnonzero(vf)                                 # valid bits, cell-major
        n = pos.size
        out_b = np.zeros((T, cols), dtype=np.uint8)
        out_v = np.zeros((T, cols), dtype=np.uint8)
        if n == 0:
            return out_b, out_v
        b_seq = bf[pos]
        ctype = np.int16 if nrows * cols <= 32767 else np.int32
        cell = np.repeat(np.arange(nrows * cols, dtype=ctype), seg_len)[pos].astype(np.int64)
        first = np.empty(n, dtype=bool)
        first[0] = True
        np.not_equal(cell[1:], cell[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        lens = np.diff(np.append(starts, n))
        idx = np.arange(n) - np.repeat(starts, lens)            # index within the cell, from 0
        last = np.append(starts[1:] - 1, n - 1)                  # last seq index of each cell
        ucell = cell[starts]

        acc0 = self.acc.ravel()
        cnt0 = self.cnt.ravel()
        if self.mode == FOLD:
            k = self.k_eff
            # valid bits taken since the last emission, through a periodic table (no modulo)
            taken = cnt0[cell] + idx
            table = (np.arange(1, int(taken.max()) + 2) % k == 0)
            emit = table[taken]
            g = np.bitwise_xor.accumulate(b_seq)                 # global running parity
            g_before = np.zeros(len(starts), dtype=np.uint8)
            g_before[1:] = g[starts[1:] - 1]
            p = g ^ np.repeat(g_before ^ acc0[ucell], lens)      # per-cell parity incl. acc
            e = np.flatnonzero(emit)
            pe = p[e]
            ce = cell[e]
            prev = np.empty_like(pe)
            if e.size:
                prev[0] = 0
                prev[1:] = pe[:-1]
                prev[1:][ce[1:] != ce[:-1]] = 0
            out = pe ^ prev
            # final state of the cells that saw bits
            tot = cnt0[ucell] + lens
            new_cnt = tot - (tot // k) * k
            last_emit_p = np.zeros(len(starts), dtype=np.uint8)
            if e.size:
                lastf = np.append(ce[1:] != ce[:-1], True)
                # map each cell's last emission onto its position among ucell
                where = np.searchsorted(ucell, ce[lastf])
                last_emit_p[where] = pe[lastf]
            new_acc = p[last] ^ last_emit_p
        else:
            ph = cnt0[cell] + idx + 1                            # 1-based position in pairing
            second = (ph & 1) == 0
            prevb = np.empty_like(b_seq)
            prevb[1:] = b_seq[:-1]
            prevb[starts] = acc0[ucell]
            emit = second & (prevb != b_seq)
            e = np.flatnonzero(emit)
            out = prevb[e]
            new_cnt = (cnt0[ucell] + lens) & 1
            new_acc = np.where(new_cnt == 1, b_seq[last], 0).astype(np.uint8)
        self.cnt.ravel()[ucell] = new_cnt
        self.acc.ravel()[ucell] = new_acc

        # back to (word, column)
        pe_pos = pos[e]
        ce = cell[e]
        r, c = np.divmod(ce, cols)
        j = pe_pos - seg_start[ce]
        t = order[row_start[r] + j]
        out_b[t, c] = out
        out_v[t, c] = 1
        return out_b, out_v


class BitPacker:
    """Packs the emitted bits into W-bit words, integer-exact.

    Parameters
    ----------
    cfg : ConditionerConfig
        ``cfg.array.cols`` input bits per word, ``cfg.word_bits`` = W output bits per word.

    Attributes
    ----------
    acc, n : int
        The ``n`` (< W) bits received but not yet output, earliest in bit 0.

    Notes
    -----
    Valid bits are appended word after word, within a word by ascending column; each output word
    holds the next W bits of that stream, the earliest in its LSB.
    """

    def __init__(self, cfg: ConditionerConfig):
        self.cfg = _check_cfg("BitPacker", cfg)
        self.reset()

    def reset(self) -> None:
        self.acc = 0
        self.n = 0

    def push(self, bits: int, valid: int) -> list[int]:
        """Append one input word's valid bits; return the W-bit words completed by it."""
        cols, w = self.cfg.array.cols, self.cfg.word_bits
        bits = _check_word("BitPacker", "bits", bits, cols)
        valid = _check_word("BitPacker", "valid", valid, cols)
        for c in range(cols):
            if (valid >> c) & 1:
                self.acc |= ((bits >> c) & 1) << self.n
                self.n += 1
        out = []
        while self.n >= w:
            out.append(self.acc & ((1 << w) - 1))
            self.acc >>= w
            self.n -= w
        return out

    def run(self, bits, valid) -> np.ndarray:
        """Vectorised :meth:`push` over T input words; returns the completed words (uint64)."""
        cols, w = self.cfg.array.cols, self.cfg.word_bits
        bits = _as_bit_matrix("BitPacker", "bits", bits, cols)
        valid = _as_bit_matrix("BitPacker", "valid", valid, cols)
        if valid.shape != bits.shape:
            raise ValueError(f"BitPacker.bits/valid: shapes {bits.shape} and {valid.shape} differ")
        stream = bits[valid.view(np.bool_)]                      # row-major: word, then column
        if self.n:
            old = ((self.acc >> np.arange(self.n)) & 1).astype(np.uint8)
            stream = np.concatenate((old, stream))
        nw = stream.size // w
        used = nw * w
        rest = stream[used:]
        self.n = int(rest.size)
        self.acc = int(np.dot(rest.astype(np.int64), 1 << np.arange(self.n, dtype=np.int64))) \
            if self.n else 0
        if nw == 0:
            return np.zeros(0, dtype=np.uint64)
        m = stream[:used].reshape(nw, w)
        wp = -(-w // 8) * 8
        if wp != w:
            m = np.concatenate((m, np.zeros((nw, wp - w), dtype=np.uint8)), axis=1)
        by = np.packbits(m, axis=1, bitorder="little")           # (nw, wp/8) bytes, LSB first
        if by.shape[1] != 8:
            by = np.concatenate((by, np.zeros((nw, 8 - by.shape[1]), dtype=np.uint8)), axis=1)
        return np.ascontiguousarray(by).view("<u8").ravel().astype(np.uint64)
