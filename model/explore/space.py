"""The two ways to explore a study's space: the full grid and an NSGA-II search (Optuna).

Both are written against one callback, ``evaluate_batch(points) -> records``: it receives a list
of parameter dicts and returns one record per point, in order (``docs/explore.md`` §2 gives the
record format). The caller decides how a batch runs (serially, on Dask) and where the records
are kept; a point already in the results table is not run again, so both drivers resume for
free:

* the grid is one batch of every point;
* the search asks Optuna's :class:`optuna.samplers.NSGAIISampler` (seeded with the study's
  seed) for one generation (``population`` points) at a time, evaluates the generation as one
  batch and tells the values back *in ask order*. The sampler's choices depend only on its seed
  and on what it was told, so a resumed search asks exactly the points the interrupted one
  asked; those found in the table are told from it. A point the sampler proposes twice costs one
  evaluation. The budget counts distinct points (the asks stop after ``MAX_ASK_FACTOR`` x budget
  in a space too small to hold that many).

No Dask and no diffusion import here.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

from model.explore.study import Param, Study

__all__ = ["MAX_ASK_FACTOR", "grid_points", "run_grid", "run_search"]

MAX_ASK_FACTOR = 20


def grid_points(study: Study) -> list:
    """Every grid point (dicts of the parameters), in the order of the file's parameters (the
    last one varies fastest)."""
    names = [p.name for p in study.params]
    return [dict(zip(names, combo)) for combo in
            itertools.product(*(p.grid_values() for p in study.params))]


def run_grid(study: Study, evaluate_batch: Callable) -> list:
    """Evaluate the full grid; returns its records in grid order."""
    return list(evaluate_batch(grid_points(study)))


def _distribution(p: Param):
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)
    if p.kind == "choice":
        return CategoricalDistribution(list(p.values))
    if p.kind == "int":
        return IntDistribution(int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    if p.levels is not None:     # a float range with levels: the search takes the same lattice
        return CategoricalDistribution(p.grid_values())
    return FloatDistribution(float(p.low), float(p.high), step=p.step, log=p.log)


def objective_values(study: Study, record: dict):
    """The record's objective values (list), or None for a failed or non-finite point."""
    if record.get("status") != "ok":
        return None
    m = record.get("metrics") or {}
    vals = []
    for o in study.objectives:
        v = m.get(o.name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        vals.append(float(v))
    return vals


def run_search(study: Study, evaluate_batch: Callable, log: Callable | None = None) -> list:
    """NSGA-II over the study's parameters until ``budget`` distinct points are evaluated.

    Returns the distinct records in the order they were first asked.
    """
    import optuna
    from optuna.trial import TrialState
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {p.name: _distribution(p) for p in study.params}
    sampler = optuna.samplers.NSGAIISampler(population_size=study.population, seed=study.seed)
    ost = optuna.create_study(directions=["minimize" if s == "min" else "maximize"
                                          for s in study.senses], sampler=sampler)
    seen: dict = {}
    order: list = []
    asks, gen = 0, 0
    while len(seen) < study.budget and asks < MAX_ASK_FACTOR * study.budget:
        k = min(study.population, study.budget - len(seen))
        trials = [ost.ask(dists) for _ in range(k)]
        asks += k
        records = list(evaluate_batch([dict(t.params) for t in trials]))
        if len(records) != len(trials):
            raise RuntimeError(f"evaluate_batch returned {len(records)} records for "
                               f"{len(trials)} points")
        for t, rec in zip(trials, records):
            vals = objective_values(study, rec)
            if vals is None:
                ost.tell(t, state=TrialState.FAIL)
            else:
                ost.tell(t, vals)
            if rec["key"] not in seen:
                seen[rec["key"]] = rec
                order.append(rec["key"])
        gen += 1
        if log:
            log(f"generation {gen}: {len(seen)}/{study.budget} distinct points")
    return [seen[k] for k in order]
