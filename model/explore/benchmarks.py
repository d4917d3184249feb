"""Analytic two-objective benchmarks with known Pareto fronts, for testing the explorers.

``zdt1`` (Zitzler, Deb & Thiele, Evol. Comput. 8(2), 2000), here with n = 4 variables in
[0, 1]: f1 = x1, g = 1 + 9·(x2 + … + xn)/(n − 1), f2 = g·(1 − √(f1/g)), both minimised. The
front is x2 = … = xn = 0, f2 = 1 − √f1; its hypervolume against the reference (1, 1) is
∫0^1 √f df = 2/3 (:func:`zdt1_front_hypervolume`).

``convex``: f1 = Σ (xi − a)², f2 = Σ (xi − b)² with a = 0.15, b = 0.85 on every axis (n = 3),
both minimised; the front is the segment xi = t, t in [a, b], where
√f1 + √f2 = √n·(b − a).

Test hooks shared by both: ``delay_s`` (sleep before returning, to let a test stop a study
midway), ``fail_above_x1`` (raise for x1 above it: a point that fails on purpose) and
``crash_above_x1`` (end the process: a point that kills its Dask worker).
"""

from __future__ import annotations

import math
import time

from model.explore.study import Schema, Setting

__all__ = ["BENCHMARKS", "CONVEX_A", "CONVEX_B", "SCHEMAS", "convex", "convex_front",
           "zdt1", "zdt1_front", "zdt1_front_hypervolume"]

ZDT1_N = 4
CONVEX_N = 3
CONVEX_A, CONVEX_B = 0.15, 0.85

_HOOKS = (Setting("delay_s", "float", 0.0, 0.0, 60.0,
                  doc="test hook: seconds to sleep per point"),
          Setting("fail_above_x1", "float", 2.0, 0.0, 2.0,
                  doc="test hook: raise for x1 above this (2 = never)"),
          Setting("crash_above_x1", "float", 2.0, 0.0, 2.0,
                  doc="test hook: end the process (os._exit) for x1 above this (2 = never); "
                      "on Dask a crashed worker, run serially it ends the study"))


def _xs(n: int) -> tuple:
    return tuple(Setting(f"x{i}", "float", 0.5, 0.0, 1.0, doc=f"variable {i}")
                 for i in range(1, n + 1))


SCHEMAS = {
    "zdt1": Schema("zdt1", _xs(ZDT1_N) + _HOOKS,
                   {"f1": "x1", "f2": "g*(1 - sqrt(f1/g))"}, doc="ZDT1, n = 4"),
    "convex": Schema("convex", _xs(CONVEX_N) + _HOOKS,
                     {"f1": "sum (xi - a)^2", "f2": "sum (xi - b)^2"},
                     doc=f"convex pair, n = {CONVEX_N}, a = {CONVEX_A}, b = {CONVEX_B}"),
}


def _hooks(s: dict) -> None:
    if s.get("delay_s", 0.0) > 0:
        time.sleep(s["delay_s"])
    if s["x1"] > s.get("crash_above_x1", 2.0):
        import os
        os._exit(3)
    if s["x1"] > s.get("fail_above_x1", 2.0):
        raise RuntimeError(f"failing on purpose: x1 = {s['x1']} > fail_above_x1 = "
                           f"{s['fail_above_x1']}")


def zdt1(settings: dict, seed: int = 0) -> dict:
    """ZDT1 metrics ``{f1, f2}`` of a settings dict (x1 … x4)."""
    _hooks(settings)
    x = [float(settings[f"x{i}"]) for i in range(1, ZDT1_N + 1)]
    g = 1.0 + 9.0 * sum(x[1:]) / (ZDT1_N - 1)
    f1 = x[0]
    return {"f1": f1, "f2": g * (1.0 - math.sqrt(f1 / g))}


def convex(settings: dict, seed: int = 0) -> dict:
    """Convex-pair metrics ``{f1, f2}`` of a settings dict (x1 … x3)."""
    _hooks(settings)
    x = [float(settings[f"x{i}"]) for i in range(1, CONVEX_N + 1)]
    return {"f1": sum((v - CONVEX_A) ** 2 for v in x), "f2": sum((v - CONVEX_B) ** 2 for v in x)}


def zdt1_front(n: int = 200) -> list:
    """Points of the true ZDT1 front."""
    return [(t, 1.0 - math.sqrt(t)) for t in (i / (n - 1) for i in range(n))]


def convex_front(n: int = 200) -> list:
    """Points of the true convex-pair front."""
    out = []
    for i in range(n):
        t = CONVEX_A + (CONVEX_B - CONVEX_A) * i / (n - 1)
        out.append((CONVEX_N * (t - CONVEX_A) ** 2, CONVEX_N * (t - CONVEX_B) ** 2))
    return out


def zdt1_front_hypervolume(r1: float = 1.0, r2: float = 1.0) -> float:
    """Exact hypervolume of the true ZDT1 front against (r1, r2) with r1 <= 1, r2 >= 1:
    ∫0^r1 (r2 − (1 − √f)) df."""
    return r1 * (r2 - 1.0) + (2.0 / 3.0) * r1 ** 1.5


BENCHMARKS = {"zdt1": zdt1, "convex": convex}
