"""Non-dominated sorting and the hypervolume indicator (pure numpy, no Dask, no diffusion).

Conventions: every function takes objective values as an (n, m) array and a per-objective sense
(``"min"`` or ``"max"``). Internally everything is turned into minimisation by negating the
``"max"`` columns; a reference point is given in the objectives' own units and senses.

The hypervolume of a set S against a reference point r (minimisation) is the Lebesgue measure of
the region dominated by S and bounded by r: ``vol{ y : exists s in S, s <= y <= r }``. Points
that do not dominate r strictly in every objective contribute nothing. Larger is better; the
hypervolume of a front is at most that of the true Pareto front of the problem.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SENSES", "dominates", "hypervolume", "non_dominated", "to_min"]

SENSES = ("min", "max")


def _check(values, senses, owner: str) -> np.ndarray:
    y = np.asarray(values, dtype=np.float64)
    if y.ndim == 1 and y.size == 0:
        y = y.reshape(0, len(senses))
    if y.ndim != 2:
        raise ValueError(f"{owner}.values: shape {y.shape}, allowed (n, m)")
    if y.shape[1] != len(senses):
        raise ValueError(f"{owner}.senses = {list(senses)!r}: {len(senses)} senses for "
                         f"{y.shape[1]} objectives")
    for s in senses:
        if s not in SENSES:
            raise ValueError(f"{owner}.senses: {s!r} unknown, allowed {SENSES}")
    if not np.isfinite(y).all():
        raise ValueError(f"{owner}.values: NaN or inf present (drop failed points first)")
    return y


def to_min(values, senses) -> np.ndarray:
    """The values with every ``"max"`` column negated (all objectives minimised)."""
    y = _check(values, senses, "to_min").copy()
    for j, s in enumerate(senses):
        if s == "max":
            y[:, j] = -y[:, j]
    return y


def dominates(a, b) -> bool:
    """True when a (minimised) is no worse than b in every objective and better in one."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool((a <= b).all() and (a < b).any())


def non_dominated(values, senses) -> np.ndarray:
    """Indices (ascending) of the points no other point dominates. Duplicated points are all
    kept (neither dominates the other)."""
    y = to_min(values, senses)
    n = len(y)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        le = (y <= y[i]).all(axis=1)
        lt = (y < y[i]).any(axis=1)
        if (le & lt).any():
            keep[i] = False
    return np.flatnonzero(keep)


def _hv2(y: np.ndarray, r: np.ndarray) -> float:
    """2-D hypervolume (minimisation, all points strictly inside r): a sweep over x."""
    order = np.lexsort((y[:, 1], y[:, 0]))
    hv, best = 0.0, r[1]
    for x0, y0 in y[order]:
        if y0 < best:
            hv += (r[0] - x0) * (best - y0)
            best = y0
    return hv


def _hv(y: np.ndarray, r: np.ndarray) -> float:
    """Hypervolume by slicing along the last objective (exact; fine for a few hundred points)."""
    m = y.shape[1]
    if len(y) == 0:
        return 0.0
    if m == 1:
        return float(r[0] - y[:, 0].min())
    if m == 2:
        return _hv2(y, r)
    order = np.argsort(y[:, -1], kind="stable")
    y = y[order]
    hv = 0.0
    for k in range(len(y)):
        z_lo = y[k, -1]
        z_hi = y[k + 1, -1] if k + 1 < len(y) else r[-1]
        if z_hi > z_lo:
            sub = y[:k + 1, :-1]
            sub = sub[non_dominated(sub, ["min"] * (m - 1))]
            hv += _hv(sub, r[:-1]) * (z_hi - z_lo)
    return hv


def hypervolume(values, senses, reference) -> float:
    """Hypervolume of ``values`` against ``reference`` (both in the objectives' own senses).

    Parameters
    ----------
    values:
        (n, m) objective values; n may be 0 (hypervolume 0).
    senses:
        ``"min"`` / ``"max"`` per objective.
    reference:
        The reference point (m values): for a ``"min"`` objective the worst value counted, for a
        ``"max"`` one the lowest.

    Returns
    -------
    float
        The dominated volume (product of the objectives' units).
    """
    y = to_min(values, senses)
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    if r.size != len(senses) or not np.isfinite(r).all():
        raise ValueError(f"hypervolume.reference = {list(np.atleast_1d(reference))!r}: must be "
                         f"{len(senses)} finite numbers")
    r = r.copy()
    for j, s in enumerate(senses):
        if s == "max":
            r[j] = -r[j]
    inside = (y < r).all(axis=1)
    y = y[inside]
    if len(y) == 0:
        return 0.0
    y = y[non_dominated(y, ["min"] * y.shape[1])]
    y = np.unique(y, axis=0)
    v = _hv(y, r)
    return float(v) if math.isfinite(v) else math.nan
