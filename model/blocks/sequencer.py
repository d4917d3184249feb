"""Bit-exact twin of the sequencer ``hw.sequencer.Sequencer`` and the integer rules of the
DDPM/DDIM reverse step (contract: ``docs/hardware-mode.md`` §2-§6, block contract:
``docs/sequencer.md``).

The integer helpers (formats, :func:`x_init`, :func:`input_x_codes`, :func:`hw_step`,
:func:`step_pixel`, :func:`pixels_from_x`, :func:`acc_frac`) are defined here, once, and used by
the RTL (``hw/sequencer.py`` takes its constants from here), by this twin and by the system-level
hardware-mode sampler ``model.diffusion.hardware`` (which imports them from this module).

The twin :class:`Sequencer` works one image and one step at a time and produces the same
streams as the RTL — the network input codes of every row (``HardwareProgram.net_input``
order: the ``dim`` pixel codes, then the ``temb_dim`` time-embedding codes of row ``TS[i]``) and
the ``dim`` output pixels — and the same costed-operation counters (``docs/hardware-mode.md``
§6 names).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.blocks.config import GaussConfig
from model.blocks.crossbar_config import round_shift, sat, signed_range

__all__ = ["C1_MAX_SHIFT", "C2_FRAC", "COEF_BITS", "COEF_MAX", "COUNTERS", "PIXEL_BITS",
           "PIXEL_MAX", "SIGMA_FRAC", "Sequencer", "SequencerRun", "X_BITS", "X_FRAC", "X_MAX",
           "X_MIN", "acc_frac", "check_sequencer_params", "hw_step", "input_x_codes",
           "pixels_from_x", "step_pixel", "x_init"]

# ------------------------------------------------------------------------------------------------
# The contract's fixed formats (docs/hardware-mode.md §2)
#: Image state x_t: signed X_BITS-bit two's complement, Q3.12 (value X / 2**12, range [-8, 8)).
X_BITS = 16
X_FRAC = 12
#: Schedule coefficients: unsigned COEF_BITS-bit mantissas.
COEF_BITS = 16
#: c2[t] in UQ0.16 (c2 < 1 for every schedule and sampler here).
C2_FRAC = 16
#: sigma[t] in UQ0.16 (sigma < 1).
SIGMA_FRAC = 16
#: c1[t] = C1 / 2**c1_shift, one shift per table (the largest <= C1_MAX_SHIFT that fits max c1).
C1_MAX_SHIFT = 15
#: Output pixels: unsigned 8-bit.
PIXEL_BITS = 8

X_MIN, X_MAX = signed_range(X_BITS)
COEF_MAX = (1 << COEF_BITS) - 1
PIXEL_MAX = (1 << PIXEL_BITS) - 1

#: The sequencer's costed-operation counters (docs/hardware-mode.md §6 names), in port order.
COUNTERS = ("state_reads", "state_writes", "seq_multiplies", "schedule_table_reads",
            "temb_table_reads", "gaussian_samples", "pixels_out")


def acc_frac(z_frac: int) -> int:
    """Fraction bits of the update's accumulator ``A``: ``max(X_FRAC + C1_MAX_SHIFT,
    SIGMA_FRAC + z_frac)`` (27 for the default Q4.11 noise), so both products align with
    left shifts only."""
    return max(X_FRAC + C1_MAX_SHIFT, SIGMA_FRAC + z_frac)


# ------------------------------------------------------------------------------------------------
# The integer rules (docs/hardware-mode.md §4), vectorised (numpy int64) and per pixel (int)
def x_init(z, z_frac: int):
    """``X_T`` from the first noise vector: ``sat_x(z << (X_FRAC - z_frac))`` (round_shift when
    the noise has more fraction bits than the state)."""
    if z_frac <= X_FRAC:
        v = (np.asarray(z, dtype=np.int64) if isinstance(z, np.ndarray) else int(z)) \
            << (X_FRAC - z_frac)
    else:
        v = round_shift(np.asarray(z, dtype=np.int64) if isinstance(z, np.ndarray) else int(z),
                        z_frac - X_FRAC)
    return sat(v, X_MIN, X_MAX)


def input_x_codes(X, fx_in: int, in_lo: int, in_hi: int):
    """DAC codes of the state for the network: ``sat_in(round_shift(X, X_FRAC - fx_in))``."""
    return sat(round_shift(X, X_FRAC - fx_in), in_lo, in_hi)


def hw_step(X, E, Z, c1: int, c1_shift: int, c2: int, sg: int, fe: int, z_frac: int):
    """One sequencer update on int64 arrays (or ints): state ``X`` (Q3.12), ε̂ codes ``E``
    (scale 2**-fe), noise ``Z`` (raw, 2**-z_frac; ignored when ``sg`` = 0)::

        Q  = round_shift(c2 * E, C2_FRAC + fe - X_FRAC)          c2·ε̂ in state units
        D  = sat_x(X - Q)
        A  = (c1 * D) << (AF - X_FRAC - c1_shift)  +  (sg * Z) << (AF - SIGMA_FRAC - z_frac)
        X' = sat_x(round_shift(A, AF - X_FRAC))                  AF = acc_frac(z_frac)
    """
    af = acc_frac(z_frac)
    q = round_shift(c2 * E, C2_FRAC + fe - X_FRAC)
    d = sat(X - q, X_MIN, X_MAX)
    a = (c1 * d) << (af - X_FRAC - c1_shift)
    if sg:
        a = a + ((sg * Z) << (af - SIGMA_FRAC - z_frac))
    return sat(round_shift(a, af - X_FRAC), X_MIN, X_MAX)


def step_pixel(x: int, e: int, z: int, c1: int, c1_shift: int, c2: int, sg: int, fe: int,
               z_frac: int) -> int:
    """:func:`hw_step` for one pixel in Python integers (the reference loop uses it)."""
    return int(hw_step(int(x), int(e), int(z), int(c1), int(c1_shift), int(c2), int(sg),
                       int(fe), int(z_frac)))


def pixels_from_x(X):
    """8-bit pixels of the final state: ``sat_[0,255](round_shift(255 * (X + 2**X_FRAC),
    X_FRAC + 1))`` — the value ``(x + 1) / 2 * 255`` rounded half up, x in [-1, 1] ↦ 0 … 255."""
    if isinstance(X, np.ndarray):
        X = X.astype(np.int64)
    return sat(round_shift(PIXEL_MAX * (X + (1 << X_FRAC)), X_FRAC + 1), 0, PIXEL_MAX)


# ------------------------------------------------------------------------------------------------
# Parameters shared by the RTL and the twin
def _chk(owner, name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise ValueError(f"{owner}.{name} = {v!r}: out of range, allowed integer [{lo}, {hi}]")
    return int(v)


def check_sequencer_params(owner: str, dim, temb_dim, temb_rows, table_depth, fx_in, fe, gauss,
                           eps_bits, in_bits) -> None:
    """Validate the sequencer's build parameters (one ``ValueError`` naming the parameter, its
    value and the allowed range). Shared by ``hw.sequencer.Sequencer`` and :class:`Sequencer`.

    Limits: ``dim`` 1…4096 pixels, ``temb_dim`` 0…4096, ``temb_rows`` (T) 1…65536,
    ``table_depth`` (most rows of a run) 1…65536, ``fx_in`` −16…X_FRAC (the network input is
    never finer than the state), ``fe`` ≥ X_FRAC − C2_FRAC (the c2·ε̂ shift is ≥ 0) and ≤ 24,
    ``eps_bits`` and ``in_bits`` 2…16 (signed codes), ``gauss`` a GaussConfig whose samples are
    at most 16 bits (one 16 × 16 product)."""
    _chk(owner, "dim", dim, 1, 4096)
    _chk(owner, "temb_dim", temb_dim, 0, 4096)
    _chk(owner, "temb_rows", temb_rows, 1, 65536)
    _chk(owner, "table_depth", table_depth, 1, 65536)
    _chk(owner, "fx_in", fx_in, -16, X_FRAC)
    _chk(owner, "fe", fe, X_FRAC - C2_FRAC, 24)
    _chk(owner, "eps_bits", eps_bits, 2, 16)
    _chk(owner, "in_bits", in_bits, 2, 16)
    if not isinstance(gauss, GaussConfig):
        raise ValueError(f"{owner}.gauss = {gauss!r}: must be a model.blocks.config.GaussConfig")
    if gauss.sample_bits > 16:
        raise ValueError(f"{owner}.gauss: samples of {gauss.sample_bits} bits "
                         f"(Q{gauss.int_bits}.{gauss.frac_bits}); allowed at most 16 bits")


def check_tables(owner: str, c1, c2, sg, ts, c1_shift, table_depth: int, temb_rows: int):
    """The step tables as int64 arrays after range checks: ``C1``, ``C2``, ``SG`` unsigned
    COEF_BITS-bit, ``TS`` in 0…temb_rows−1, equal lengths 1…table_depth, ``c1_shift``
    0…C1_MAX_SHIFT."""
    arrs = []
    n = None
    for name, v, hi in (("c1", c1, COEF_MAX), ("c2", c2, COEF_MAX), ("sg", sg, COEF_MAX),
                        ("ts", ts, temb_rows - 1)):
        a = np.asarray(v)
        if a.ndim != 1 or a.dtype.kind not in "iu" or not 1 <= a.size <= table_depth:
            raise ValueError(f"{owner}.{name}: shape {a.shape} dtype {a.dtype}; must be 1-D "
                             f"integers of 1 … {table_depth} (table_depth) rows")
        if n is not None and a.size != n:
            raise ValueError(f"{owner}.{name}: {a.size} rows, the other tables have {n}")
        n = a.size
        if a.min() < 0 or a.max() > hi:
            raise ValueError(f"{owner}.{name}: values in [{a.min()}, {a.max()}], allowed "
                             f"[0, {hi}]")
        arrs.append(a.astype(np.int64))
    _chk(owner, "c1_shift", c1_shift, 0, C1_MAX_SHIFT)
    return (*arrs, int(c1_shift))


# ------------------------------------------------------------------------------------------------
@dataclass
class SequencerRun:
    """One image through the twin.

    Attributes
    ----------
    net_inputs:
        int64 (steps, dim + temb_dim): the network input stream, row by row.
    eps:
        int64 (steps, dim): the ε̂ codes consumed.
    x0:
        int64 (dim,): the final state (Q3.12).
    pixels:
        int64 (dim,): the output stream.
    noise_used:
        Gaussian samples consumed.
    """

    net_inputs: np.ndarray
    eps: np.ndarray
    x0: np.ndarray
    pixels: np.ndarray
    noise_used: int


class Sequencer:
    """Twin of ``hw.sequencer.Sequencer``: state memory, step tables, time-embedding table,
    counters, one image at a time.

    Parameters
    ----------
    dim, temb_dim, temb_rows, table_depth, fx_in, fe, gauss, eps_bits, in_bits:
        As the RTL (:func:`check_sequencer_params`).
    tables:
        Optional initial step tables: an object with ``c1``, ``c2``, ``sg``, ``ts``,
        ``c1_shift`` (``model.diffusion.hardware.StepTables``).
    temb:
        Optional initial time-embedding codes, (temb_rows, temb_dim).

    Attributes
    ----------
    counts:
        The costed-operation counters (:data:`COUNTERS`), accumulated since construction.
    """

    def __init__(self, dim: int = 64, temb_dim: int = 64, temb_rows: int = 1000,
                 table_depth: int = 1000, fx_in: int = 5, fe: int = 5,
                 gauss: GaussConfig | None = None, eps_bits: int = 8, in_bits: int = 8,
                 tables=None, temb=None):
        gauss = GaussConfig() if gauss is None else gauss
        check_sequencer_params("Sequencer", dim, temb_dim, temb_rows, table_depth, fx_in, fe,
                               gauss, eps_bits, in_bits)
        self.dim, self.temb_dim, self.temb_rows = int(dim), int(temb_dim), int(temb_rows)
        self.table_depth, self.fx_in, self.fe = int(table_depth), int(fx_in), int(fe)
        self.gauss, self.eps_bits, self.in_bits = gauss, int(eps_bits), int(in_bits)
        self.z_frac = gauss.frac_bits
        self.in_range = signed_range(self.in_bits)
        self.eps_range = signed_range(self.eps_bits)
        self.z_range = signed_range(gauss.sample_bits)
        z = np.zeros(self.table_depth, dtype=np.int64)
        self.c1, self.c2, self.sg, self.ts, self.c1_shift = z.copy(), z.copy(), z.copy(), \
            z.copy(), 0
        self.temb = np.zeros((self.temb_rows, self.temb_dim), dtype=np.int64)
        self.X = np.zeros(self.dim, dtype=np.int64)
        self.counts = dict.fromkeys(COUNTERS, 0)
        if tables is not None:
            self.load_tables(tables.c1, tables.c2, tables.sg, tables.ts, tables.c1_shift)
        if temb is not None:
            self.load_temb(temb)

    # -- loading --------------------------------------------------------------------------------
    def load_tables(self, c1, c2, sg, ts, c1_shift: int) -> None:
        """Rows 0 … len−1 of the step tables and the c1 shift register."""
        c1, c2, sg, ts, sh = check_tables("Sequencer", c1, c2, sg, ts, c1_shift,
                                          self.table_depth, self.temb_rows)
        n = c1.size
        self.c1[:n], self.c2[:n], self.sg[:n], self.ts[:n] = c1, c2, sg, ts
        self.c1_shift = sh

    def load_temb(self, codes) -> None:
        """The time-embedding table, (temb_rows, temb_dim) codes in the DAC range."""
        a = np.asarray(codes)
        lo, hi = self.in_range
        if a.shape != (self.temb_rows, self.temb_dim) or a.dtype.kind not in "iu" \
                or (a.size and (a.min() < lo or a.max() > hi)):
            raise ValueError(f"Sequencer.temb: shape {a.shape} dtype {a.dtype}; must be "
                             f"({self.temb_rows}, {self.temb_dim}) integers in [{lo}, {hi}]")
        self.temb = a.astype(np.int64).copy()

    def _codes(self, name, v, lo, hi):
        a = np.asarray(v)
        if a.shape != (self.dim,) or a.dtype.kind not in "iu" or a.min() < lo or a.max() > hi:
            raise ValueError(f"Sequencer.{name}: shape {a.shape}, dtype {a.dtype}; must be "
                             f"({self.dim},) integers in [{lo}, {hi}]")
        return a.astype(np.int64)

    # -- the phases (each as the RTL does it, with its counters) --------------------------------
    def init(self, z) -> None:
        """x_T from ``dim`` noise samples: ``X = x_init(z)``."""
        z = self._codes("z", z, *self.z_range)
        self.X = np.asarray(x_init(z, self.z_frac), dtype=np.int64)
        self.counts["gaussian_samples"] += self.dim
        self.counts["state_writes"] += self.dim

    def row(self, i: int) -> tuple[int, int, int, int]:
        """Read table row ``i``: ``(C1, C2, SG, TS)`` (three schedule-table reads)."""
        i = _chk("Sequencer", "row", i, 0, self.table_depth - 1)
        self.counts["schedule_table_reads"] += 3
        return int(self.c1[i]), int(self.c2[i]), int(self.sg[i]), int(self.ts[i])

    def net_input(self, t: int) -> np.ndarray:
        """The network input of the current state: ``dim`` pixel codes, then row ``t`` of the
        time-embedding table."""
        lo, hi = self.in_range
        self.counts["state_reads"] += self.dim
        self.counts["temb_table_reads"] += self.temb_dim
        return np.concatenate([input_x_codes(self.X, self.fx_in, lo, hi), self.temb[t]])

    def update(self, c1: int, c2: int, sg: int, eps, z=None) -> None:
        """The update of every pixel with ε̂ codes ``eps`` and, iff ``sg`` ≠ 0, noise ``z``."""
        eps = self._codes("eps", eps, *self.eps_range)
        if sg:
            if z is None:
                raise ValueError("Sequencer.update.z = None: a row with SG != 0 needs noise")
            z = self._codes("z", z, *self.z_range)
            self.counts["gaussian_samples"] += self.dim
        else:
            z = 0
        self.X = np.asarray(hw_step(self.X, eps, z, c1, self.c1_shift, c2, sg, self.fe,
                                    self.z_frac), dtype=np.int64)
        self.counts["state_reads"] += self.dim
        self.counts["state_writes"] += self.dim
        self.counts["seq_multiplies"] += self.dim * (3 if sg else 2)

    def output(self) -> np.ndarray:
        """The ``dim`` output pixels of the current state."""
        self.counts["state_reads"] += self.dim
        self.counts["pixels_out"] += self.dim
        return np.asarray(pixels_from_x(self.X), dtype=np.int64)

    # -- one image ------------------------------------------------------------------------------
    def run(self, steps: int, eps_fn, noise) -> SequencerRun:
        """One image of ``steps`` rows (rows 0 … steps−1 of the loaded tables).

        Parameters
        ----------
        steps:
            1 … table_depth.
        eps_fn:
            ``eps_fn(i, codes)`` → ``dim`` ε̂ codes for row ``i`` and its network input
            ``codes`` (e.g. ``lambda i, c: engine.run(c[None])[0]``).
        noise:
            An object with ``codes(n)`` (consumed in order: x_T, then one vector per noisy row)
            or a 1-D integer array that holds at least the samples the image takes.
        """
        steps = _chk("Sequencer", "steps", steps, 1, self.table_depth)
        used = 0

        def take():
            nonlocal used
            if hasattr(noise, "codes"):
                v = np.asarray(noise.codes(self.dim), dtype=np.int64)
            else:
                v = np.asarray(noise)[used:used + self.dim]
                if v.size != self.dim:
                    raise ValueError(f"Sequencer.run.noise: {len(noise)} samples, too few "
                                     f"for this image")
            used += self.dim
            return v

        self.init(take())
        ins = np.zeros((steps, self.dim + self.temb_dim), dtype=np.int64)
        es = np.zeros((steps, self.dim), dtype=np.int64)
        for i in range(steps):
            c1, c2, sg, t = self.row(i)
            ins[i] = self.net_input(t)
            es[i] = self._codes("eps", eps_fn(i, ins[i].copy()), *self.eps_range)
            self.update(c1, c2, sg, es[i], take() if sg else None)
        x0 = self.X.copy()
        return SequencerRun(net_inputs=ins, eps=es, x0=x0, pixels=self.output(),
                            noise_used=used)
