"""Full nodal (KCL) solution of a resistive crossbar with wire resistance.

Physics layer of spindiff: numpy/scipy only. Used by ``model.devices.crossbar`` for its exact
IR-drop mode (``ir_model='nodal'``); the tests check it against the independent solver of the
``badcrossbar`` package (Joksas & Mehonic, SoftwareX 12, 100617, 2020) and against closed forms.

Topology (the common one, and badcrossbar's): R word lines (rows) by N bit lines (columns). Row
i is driven by an ideal source V_i at its left end; between the source and the first cell and
between adjacent cells lie word-line segments of resistance ``r_wire``. Column j is held at 0 V
(virtual ground of its sense amplifier / ADC) at its bottom end, below row R-1; between adjacent
cells and between the last cell and the ground lie bit-line segments of ``r_wire``. Cell (i, j)
of conductance G_ij joins word-line node (i, j) to bit-line node (i, j). Unknowns: the 2·R·N node
voltages; one KCL equation per node::

    WL node (i, j):  g_w (u_{i,j-1} - u_ij) + g_w (u_{i,j+1} - u_ij) - G_ij (u_ij - v_ij) = 0
                     (u_{i,-1} = V_i, no right neighbour at j = N-1)
    BL node (i, j):  G_ij (u_ij - v_ij) + g_w (v_{i-1,j} - v_ij) + g_w (v_{i+1,j} - v_ij) = 0
                     (no upper neighbour at i = 0, v_{R,j} = 0)
    output current   I_j = g_w · v_{R-1,j}

The network is linear, so the column currents are linear in the row voltages: ``I = V @ T`` with
an exact R x N *transfer conductance* ``T`` (:func:`transfer`), computed with one sparse LU
factorisation and R right-hand sides. Units: conductances in µS, wire resistance in Ohm, voltages
in any unit U, currents in U·µS (mV·µS = nA).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import splu


def _check(g_uS, r_wire_ohm) -> np.ndarray:
    g = np.asarray(g_uS, dtype=float)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"nodal.g_uS: shape {g.shape}, allowed a non-empty 2-D array (rows, cols)")
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        bad = g[~(np.isfinite(g) & (g > 0))].flat[0]
        raise ValueError(f"nodal.g_uS: value {bad} out of range, allowed (0, inf) µS")
    if isinstance(r_wire_ohm, bool) or not np.isfinite(r_wire_ohm) or r_wire_ohm < 0:
        raise ValueError(f"nodal.r_wire_ohm = {r_wire_ohm!r}: out of range, allowed [0, inf) Ohm")
    return g


def system(g_uS, r_wire_ohm: float):
    """Sparse KCL system ``A z = B V`` and output map ``I = C z`` (see the module docstring).

    Returns ``(A, B, C)``: A (2RN x 2RN, CSC) in µS, B (2RN x R), C (N x 2RN). Node order: word-line
    node (i, j) is ``i*N + j``, bit-line node (i, j) is ``R*N + i*N + j``.
    """
    g = _check(g_uS, r_wire_ohm)
    if r_wire_ohm <= 0:
        raise ValueError(f"nodal.r_wire_ohm = {r_wire_ohm}: the nodal system needs a wire "
                         f"resistance, allowed (0, inf) Ohm (use G itself for r_wire = 0)")
    R, N = g.shape
    gw = 1e6 / float(r_wire_ohm)          # µS
    idx = np.arange(R * N).reshape(R, N)
    wl, bl = idx, idx + R * N
    rows, cols, vals = [], [], []

    def put(r, c, v):
        rows.append(np.ravel(r))
        cols.append(np.ravel(c))
        vals.append(np.broadcast_to(v, np.shape(r)).ravel())

    # cell conductances couple WL node and BL node
    put(wl, wl, g)
    put(bl, bl, g)
    put(wl, bl, -g)
    put(bl, wl, -g)
    # word line: the left segment of every node (to the source for j = 0), right segment if any
    put(wl, wl, gw)
    put(wl[:, 1:], wl[:, :-1], -gw)
    put(wl[:, :-1], wl[:, :-1], gw)
    put(wl[:, :-1], wl[:, 1:], -gw)
    # bit line: the lower segment of every node (to ground for i = R-1), upper segment if any
    put(bl, bl, gw)
    put(bl[1:, :], bl[:-1, :], -gw)
    put(bl[1:, :], bl[1:, :], gw)
    put(bl[:-1, :], bl[1:, :], -gw)
    A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(2 * R * N, 2 * R * N)).tocsc()
    B = coo_matrix((np.full(R, gw), (wl[:, 0], np.arange(R))), shape=(2 * R * N, R)).tocsc()
    C = coo_matrix((np.full(N, gw), (np.arange(N), bl[R - 1, :])), shape=(N, 2 * R * N)).tocsr()
    return A, B, C


def transfer(g_uS, r_wire_ohm: float) -> np.ndarray:
    """Exact transfer conductance T (R x N, µS): column currents ``I = V @ T``.

    ``r_wire_ohm == 0`` gives ``T = G`` (ideal lines).
    """
    g = _check(g_uS, r_wire_ohm)
    if r_wire_ohm == 0:
        return g.copy()
    A, B, C = system(g, r_wire_ohm)
    z = splu(A).solve(B.toarray())            # (2RN, R): node voltages per unit row voltage
    return np.asarray(C @ z).T                # (R, N)


def column_currents(g_uS, r_wire_ohm: float, v) -> np.ndarray:
    """Column currents for row voltages ``v`` of shape (..., R) → (..., N) (units: see module)."""
    t = transfer(g_uS, r_wire_ohm)
    v = np.asarray(v, dtype=float)
    if v.shape[-1:] != (t.shape[0],):
        raise ValueError(f"nodal.v: shape {v.shape} does not fit {t.shape[0]} rows, allowed "
                         f"(..., {t.shape[0]})")
    return v @ t
