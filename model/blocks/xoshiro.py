"""Bit-exact twin of ``hw/xoshiro.py``: xoshiro128++, vectorised over independent generators.

xoshiro128++ (D. Blackman, S. Vigna, "Scrambled linear pseudorandom number generators", ACM TOMS
47(4), 2021) has a 128-bit state of four 32-bit words ``s0..s3``. One step returns
``rotl(s0 + s3, 7) + s0`` computed from the state *before* the step, then updates the state::

    t = s1 << 9
    s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11)

(all arithmetic mod 2**32). Here ``n`` generators run in lock-step: the state is a ``uint32``
array of shape ``(4, n)``, row ``i`` holding word ``s_i`` of every generator.

The RTL packs a generator's state into one 128-bit integer with word ``s_i`` at bits
``[32*i, 32*i + 32)`` (:func:`state_to_int`, :func:`int_to_state`).

Seeding (the emulator's, see ``docs/mtj-array.md``): generator ``c`` starts at
``s_i = S XOR K[c][i]`` with the constants of :func:`seed_constants`.
"""

from __future__ import annotations

import numpy as np

MASK32 = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF

#: Fixed project constant that seeds the SplitMix64 sequence behind :func:`seed_constants`:
#: ASCII "SPDFMTJ0" read as a big-endian 64-bit integer. Changing it changes every emulator
#: sequence (and the RTL reset state) -- do not.
SEED_CONSTANTS_ORIGIN = 0x5350_4446_4D54_4A30


def _splitmix64(x: int):
    """Yield the SplitMix64 sequence (Steele, Lea, Flood 2014) started from ``x``."""
    while True:
        x = (x + 0x9E37_79B9_7F4A_7C15) & MASK64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB) & MASK64
        yield z ^ (z >> 31)


def seed_constants(cols: int) -> np.ndarray:
    """Per-column seeding constants ``K``: ``uint32`` array of shape ``(cols, 4)``.

    ``K[c][i]`` is the upper 32 bits of the next SplitMix64 output, the sequence being started
    from :data:`SEED_CONSTANTS_ORIGIN` and consumed in the order ``K[0][0], K[0][1], ...,
    K[0][3], K[1][0], ...``; a value equal to one already taken (for any column) is skipped, so
    all ``4*cols`` constants are distinct. Hence, for every seed ``S``, the four words
    ``S ^ K[c][i]`` are distinct (never an all-zero state) and no two columns start alike.
    ``seed_constants(a)`` is a prefix of ``seed_constants(b)`` for ``a <= b``.
    """
    if isinstance(cols, bool) or not isinstance(cols, (int, np.integer)) or not 1 <= cols <= 4096:
        raise ValueError(f"seed_constants: cols = {cols!r}: must be an integer in [1, 4096]")
    taken: set[int] = set()
    out: list[int] = []
    gen = _splitmix64(SEED_CONSTANTS_ORIGIN)
    while len(out) < 4 * int(cols):
        k = next(gen) >> 32
        if k not in taken:
            taken.add(k)
            out.append(k)
    return np.array(out, dtype=np.uint32).reshape(int(cols), 4)


def seeded_state(seed: int, cols: int) -> np.ndarray:
    """State ``(4, cols)`` of the emulator's generators right after seeding with ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MASK32:
        raise ValueError(f"seeded_state: seed = {seed!r}: must be an integer in [0, 2**32 - 1]")
    return (np.uint32(seed) ^ seed_constants(cols)).T.copy()


def state_to_int(words) -> int:
    """Pack four 32-bit words ``s0..s3`` into the RTL's 128-bit state (``s_i`` at bit 32*i)."""
    words = [int(w) for w in words]
    if len(words) != 4 or any(not 0 <= w <= MASK32 for w in words):
        raise ValueError(f"state_to_int: words = {words!r}: need four integers in [0, 2**32 - 1]")
    return sum(w << (32 * i) for i, w in enumerate(words))


def int_to_state(value: int) -> tuple[int, int, int, int]:
    """Inverse of :func:`state_to_int`."""
    if not 0 <= value < 1 << 128:
        raise ValueError(f"int_to_state: value = {value!r}: must be in [0, 2**128 - 1]")
    return tuple((value >> (32 * i)) & MASK32 for i in range(4))


def _rotl(x: np.ndarray, k: int) -> np.ndarray:
    return (x << np.uint32(k)) | (x >> np.uint32(32 - k))


class Xoshiro128pp:
    """``n`` xoshiro128++ generators stepping in lock-step (twin of ``hw.xoshiro.Xoshiro128pp``).

    Parameters
    ----------
    state:
        Initial state, shape ``(4, n)`` (or ``(4,)`` for one generator), values in
        ``[0, 2**32)``; no generator's state may be all zero (xoshiro's fixed point).

    Attributes
    ----------
    state:
        The current state, ``uint32`` array of shape ``(4, n)``; a copy of the argument.
    """

    #: :meth:`steps` with at least this many steps runs compiled (speed only, same results).
    compiled_min_steps = 2048

    def __init__(self, state):
        st = np.asarray(state)
        if st.ndim == 1:
            st = st.reshape(4, 1) if st.shape == (4,) else st
        if st.ndim != 2 or st.shape[0] != 4 or st.shape[1] < 1:
            raise ValueError(f"Xoshiro128pp: state has shape {np.shape(state)}, must be (4, n), n >= 1")
        if st.dtype.kind not in "iu" or np.any(st < 0) or np.any(st > MASK32):
            raise ValueError("Xoshiro128pp: state words must be integers in [0, 2**32 - 1]")
        st = st.astype(np.uint32)
        if np.any(np.all(st == 0, axis=0)):
            raise ValueError("Xoshiro128pp: a generator's state is all zero (allowed: any other)")
        self.state = st.copy()

    @property
    def n(self) -> int:
        """Number of generators."""
        return self.state.shape[1]

    def peek(self) -> np.ndarray:
        """Output of the next step, shape ``(n,)``, without stepping (the RTL's ``out``)."""
        s0, s3 = self.state[0], self.state[3]
        return _rotl(s0 + s3, 7) + s0

    def step(self) -> np.ndarray:
        """Advance every generator once; return the step's outputs (from the old state), ``(n,)``."""
        s = self.state
        s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
        result = _rotl(s0 + s3, 7) + s0
        t = s1 << np.uint32(9)
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s[3] = _rotl(s3, 11)
        return result

    def steps(self, count: int) -> np.ndarray:
        """Advance ``count`` times; return the outputs, ``uint32`` array ``(count, n)``."""
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"Xoshiro128pp.steps: count = {count!r}: must be an integer >= 0")
        if count >= self.compiled_min_steps:
            # Long runs: the compiled loop of model.blocks.fastpath (same recurrence, tested
            # equal in tests/test_fastpath.py); imported here, not at the top, so that short
            # runs never load numba.
            from model.blocks.fastpath import xoshiro_steps
            out, self.state = xoshiro_steps(self.state, int(count))
            return out
        out = np.empty((int(count), self.n), dtype=np.uint32)
        s0, s1, s2, s3 = (self.state[i].copy() for i in range(4))
        tmp = np.empty(self.n, dtype=np.uint32)
        t = np.empty(self.n, dtype=np.uint32)
        k7, k25, k9, k11, k21 = (np.uint32(k) for k in (7, 25, 9, 11, 21))
        for j in range(int(count)):
            # result = rotl(s0 + s3, 7) + s0, computed in preallocated buffers (the hot loop).
            np.add(s0, s3, out=tmp)
            row = out[j]
            np.left_shift(tmp, k7, out=row)
            np.right_shift(tmp, k25, out=tmp)
            np.bitwise_or(row, tmp, out=row)
            np.add(row, s0, out=row)
            np.left_shift(s1, k9, out=t)
            np.bitwise_xor(s2, s0, out=s2)
            np.bitwise_xor(s3, s1, out=s3)
            np.bitwise_xor(s1, s2, out=s1)
            np.bitwise_xor(s0, s3, out=s0)
            np.bitwise_xor(s2, t, out=s2)
            np.left_shift(s3, k11, out=tmp)
            np.right_shift(s3, k21, out=s3)
            np.bitwise_or(s3, tmp, out=s3)
        self.state = np.stack([s0, s1, s2, s3])
        return out
