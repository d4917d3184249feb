"""A design-space study: load a TOML description and validate it (``docs/explore.md`` §1).

A study names an *evaluator* (the point function: ``digits`` for the diffusion accelerator, or
an analytic benchmark) whose :class:`Schema` lists every setting it understands with its kind,
range and default. The study file picks some settings as *parameters* (ranges or choices to
explore), pins others as *fixed* settings, and names the *objectives* (metrics of the
evaluator, each minimised or maximised), the *budget* (points evaluated), the *seed*, the
hypervolume *reference* point and optional published *operating points* to evaluate and mark.

Everything is validated on load; the first problem raises one ``ValueError`` naming the file,
the table, the name, the value and what is allowed. Nothing here imports Dask or the diffusion
model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MODES", "Objective", "OperatingPoint", "Param", "Schema", "Setting", "Study",
           "load_study", "parse_study", "point_key"]

MODES = ("grid", "search")
KINDS = ("int", "float", "choice")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
#: Upper limits that keep a study a study (not a typo that asks for 10^9 points).
MAX_BUDGET = 100_000
MAX_LEVELS = 1000

_STUDY_KEYS = ("name", "mode", "evaluator", "budget", "seed", "population", "compare_with")
_TOP_KEYS = ("study", "parameters", "fixed", "objectives", "reference", "operating_points")
_PARAM_KEYS = ("values", "low", "high", "step", "levels", "log")


# -- the evaluator's side ------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One setting an evaluator understands.

    Attributes
    ----------
    name:
        Its name (units in the name where it has one, e.g. ``mtj_t_pulse_ns``).
    kind:
        ``"int"``, ``"float"`` or ``"choice"``.
    default:
        Value used when the study neither fixes nor explores it.
    low, high:
        Allowed closed range (int and float).
    choices:
        Allowed values (choice).
    doc:
        One line: what it sets.
    """

    name: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    doc: str = ""

    def allowed(self) -> str:
        if self.kind == "choice":
            return f"one of {list(self.choices)!r}"
        return f"{'integer' if self.kind == 'int' else 'number'} in [{self.low:g}, {self.high:g}]"

    def check(self, value, where: str):
        """``value`` normalised (int / float / choice) or ``ValueError`` naming ``where``."""
        bad = ValueError(f"{where}: {self.name} = {value!r}: out of range, allowed "
                         f"{self.allowed()}")
        if self.kind == "choice":
            if isinstance(value, bool) or value not in self.choices:
                raise bad
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise bad
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise bad
        if not self.low <= value <= self.high:
            raise bad
        return value


@dataclass(frozen=True)
class Schema:
    """What an evaluator takes (``settings``) and returns (``metrics``: name → description)."""

    evaluator: str
    settings: tuple
    metrics: dict
    doc: str = ""

    def __post_init__(self):
        names = [s.name for s in self.settings]
        if len(set(names)) != len(names):
            raise ValueError(f"Schema {self.evaluator!r}: duplicate setting names {names}")

    @property
    def by_name(self) -> dict:
        return {s.name: s for s in self.settings}

    def defaults(self) -> dict:
        return {s.name: s.default for s in self.settings}


# -- the study's side ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """An explored setting: either ``values`` (choices) or a range ``low`` … ``high``.

    Int ranges step by ``step`` (default 1). Float ranges are continuous in a search (or on a
    ``step`` lattice) and need ``levels`` (evenly spaced, ends included; geometric with
    ``log``) or ``step`` for a grid.
    """

    name: str
    kind: str                   # "int" | "float" | "choice"
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    levels: int | None = None
    log: bool = False

    def grid_values(self) -> list:
        """The values a grid takes, in order."""
        if self.kind == "choice":
            return list(self.values)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.levels is not None:
            n = self.levels
            if n == 1:
                return [float(self.low)]
            if self.log:
                a, b = math.log(self.low), math.log(self.high)
                return [float(math.exp(a + (b - a) * i / (n - 1))) for i in range(n)]
            return [float(self.low + (self.high - self.low) * i / (n - 1)) for i in range(n)]
        k = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [float(self.low + i * self.step) for i in range(k + 1)]

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{list(self.values)}"
        s = f"[{self.low:g}, {self.high:g}]"
        if self.step is not None:
            s += f" step {self.step:g}"
        if self.levels is not None:
            s += f" {self.levels} levels"
        return s + (" log" if self.log else "")


@dataclass(frozen=True)
class Objective:
    name: str
    sense: str                  # "min" | "max"


@dataclass(frozen=True)
class OperatingPoint:
    """A published design point mapped onto the evaluator's settings (plotted, not searched)."""

    label: str
    source: str
    settings: dict


@dataclass(frozen=True)
class Study:
    """A validated study (:func:`load_study`)."""

    name: str
    mode: str
    evaluator: str
    budget: int
    seed: int
    population: int
    params: tuple
    fixed: dict
    objectives: tuple
    reference: tuple
    operating_points: tuple = ()
    compare_with: tuple = ()
    path: str | None = None
    defaults: dict = field(default_factory=dict, repr=False)

    @property
    def senses(self) -> list:
        return [o.sense for o in self.objectives]

    @property
    def objective_names(self) -> list:
        return [o.name for o in self.objectives]

    def grid_size(self) -> int:
        return math.prod(len(p.grid_values()) for p in self.params)

    def settings(self, point: dict) -> dict:
        """Every setting of a point: the evaluator's defaults, the fixed ones, the point's."""
        return {**self.defaults, **self.fixed, **point}

    def to_dict(self) -> dict:
        return {"name": self.name, "mode": self.mode, "evaluator": self.evaluator,
                "budget": self.budget, "seed": self.seed, "population": self.population,
                "parameters": {p.name: {"kind": p.kind, "range": p.describe()}
                               for p in self.params},
                "fixed": dict(self.fixed),
                "objectives": {o.name: o.sense for o in self.objectives},
                "reference": dict(zip(self.objective_names, self.reference)),
                "operating_points": [{"label": o.label, "source": o.source,
                                      "settings": o.settings} for o in self.operating_points],
                "compare_with": list(self.compare_with), "path": self.path}


def point_key(evaluator: str, settings: dict, seed: int) -> str:
    """The identity of a point: a hash of the evaluator, every setting and the seed (16 hex)."""
    blob = json.dumps({"evaluator": evaluator, "settings": settings, "seed": seed},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- parsing -------------------------------------------------------------------------------------
def _unknown_keys(where: str, table: dict, allowed) -> None:
    for k in table:
        if k not in allowed:
            raise ValueError(f"{where}: unknown key {k!r}, allowed {list(allowed)}")


def _int(where: str, name: str, v, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{where}: {name} = {v!r}: out of range, allowed integer [{lo}, {hi}]")
    return v


def _param(where: str, name: str, spec, setting: Setting) -> Param:
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: must be a table with 'values' or 'low'/'high', got {spec!r}")
    _unknown_keys(where, spec, _PARAM_KEYS)
    if "values" in spec:
        extra = [k for k in spec if k != "values"]
        if extra:
            raise ValueError(f"{where}: 'values' excludes {extra} (give choices or a range)")
        vals = spec["values"]
        if not isinstance(vals, list) or not vals:
            raise ValueError(f"{where}: values = {vals!r}: empty range, allowed a non-empty list "
                             f"of {setting.allowed()}")
        norm = tuple(setting.check(v, where) for v in vals)
        if len(set(norm)) != len(norm):
            raise ValueError(f"{where}: values = {vals!r}: duplicates, allowed distinct values")
        return Param(name, "choice", values=norm)
    if setting.kind == "choice":
        raise ValueError(f"{where}: {name} is a choice setting: give values = [...] from "
                         f"{list(setting.choices)!r}")
    if "low" not in spec or "high" not in spec:
        raise ValueError(f"{where}: give both low and high (or values = [...])")
    low, high = setting.check(spec["low"], where), setting.check(spec["high"], where)
    if low > high:
        raise ValueError(f"{where}: low = {low!r} > high = {high!r}: empty range, allowed "
                         f"low <= high")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"{where}: log = {log!r}: allowed true or false")
    if log and low <= 0:
        raise ValueError(f"{where}: log = true needs low > 0, got low = {low!r}")
    step = spec.get("step")
    if step is not None:
        ok = not isinstance(step, bool) and isinstance(step, (int, float)) and step > 0 and \
            math.isfinite(step)
        if setting.kind == "int":
            ok = ok and float(step).is_integer()
        if not ok:
            raise ValueError(f"{where}: step = {step!r}: allowed a positive "
                             f"{'integer' if setting.kind == 'int' else 'number'}")
        if log:
            raise ValueError(f"{where}: step and log = true exclude each other")
        step = int(step) if setting.kind == "int" else float(step)
    levels = spec.get("levels")
    if levels is not None:
        if setting.kind == "int":
            raise ValueError(f"{where}: levels is for float ranges; an int range steps by 'step'")
        if step is not None:
            raise ValueError(f"{where}: give step or levels, not both")
        _int(where, "levels", levels, 1 if low == high else 2, MAX_LEVELS)
    return Param(name, setting.kind, low=low, high=high, step=step, levels=levels, log=log)


def parse_study(data: dict, schemas: dict, *, where: str = "study",
                default_name: str | None = None) -> Study:
    """Validate a parsed TOML document against the evaluators' ``schemas`` (name → Schema)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: not a TOML table")
    _unknown_keys(where, data, _TOP_KEYS)
    st = data.get("study")
    if not isinstance(st, dict):
        raise ValueError(f"{where}: missing [study] table (name, mode, evaluator, budget, seed)")
    w = f"{where}: [study]"
    _unknown_keys(w, st, _STUDY_KEYS)
    name = st.get("name", default_name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"{w}: name = {name!r}: allowed 1-80 characters of A-Z a-z 0-9 _ . -")
    mode = st.get("mode")
    if mode not in MODES:
        raise ValueError(f"{w}: mode = {mode!r}: unknown, allowed {list(MODES)}")
    ev = st.get("evaluator")
    if ev not in schemas:
        raise ValueError(f"{w}: evaluator = {ev!r}: unknown, allowed {sorted(schemas)}")
    schema: Schema = schemas[ev]
    if "budget" not in st:
        raise ValueError(f"{w}: budget missing: allowed integer [1, {MAX_BUDGET}]")
    budget = _int(w, "budget", st["budget"], 1, MAX_BUDGET)
    seed = _int(w, "seed", st.get("seed", 1), 0, 2**32 - 1)
    population = _int(w, "population", st.get("population", min(8, max(2, budget))), 2, 10_000)
    compare = st.get("compare_with", [])
    compare = [compare] if isinstance(compare, str) else compare
    if not isinstance(compare, list) or not all(
            isinstance(c, str) and NAME_RE.match(c) and c != name for c in compare):
        raise ValueError(f"{w}: compare_with = {st.get('compare_with')!r}: allowed another "
                         f"study's name or a list of names")

    known = schema.by_name
    raw_params = data.get("parameters", {})
    if not isinstance(raw_params, dict) or not raw_params:
        raise ValueError(f"{where}: [parameters]: none given; allowed names {sorted(known)}")
    params = []
    for pname, spec in raw_params.items():
        wp = f"{where}: [parameters.{pname}]"
        if pname not in known:
            raise ValueError(f"{wp}: unknown parameter {pname!r} for evaluator {ev!r}, allowed "
                             f"{sorted(known)}")
        params.append(_param(wp, pname, spec, known[pname]))
    fixed_raw = data.get("fixed", {})
    if not isinstance(fixed_raw, dict):
        raise ValueError(f"{where}: [fixed] must be a table of name = value")
    fixed = {}
    for fname, v in fixed_raw.items():
        wf = f"{where}: [fixed]"
        if fname not in known:
            raise ValueError(f"{wf}: unknown setting {fname!r} for evaluator {ev!r}, allowed "
                             f"{sorted(known)}")
        if fname in raw_params:
            raise ValueError(f"{wf}: {fname!r} is also a parameter; allowed in one place only")
        fixed[fname] = known[fname].check(v, wf)

    objs_raw = data.get("objectives")
    if not isinstance(objs_raw, dict) or not objs_raw:
        raise ValueError(f"{where}: [objectives]: none given; allowed metrics "
                         f"{sorted(schema.metrics)} = \"min\" or \"max\"")
    objectives = []
    for oname, sense in objs_raw.items():
        if oname not in schema.metrics:
            raise ValueError(f"{where}: [objectives]: unknown objective {oname!r} for evaluator "
                             f"{ev!r}, allowed {sorted(schema.metrics)}")
        if sense not in ("min", "max"):
            raise ValueError(f"{where}: [objectives]: {oname} = {sense!r}: allowed \"min\" or "
                             f"\"max\"")
        objectives.append(Objective(oname, sense))
    ref_raw = data.get("reference")
    if not isinstance(ref_raw, dict) or set(ref_raw) != set(objs_raw):
        raise ValueError(f"{where}: [reference]: {ref_raw!r}: allowed one number per objective "
                         f"{list(objs_raw)} (the hypervolume reference point)")
    reference = []
    for o in objectives:
        v = ref_raw[o.name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where}: [reference]: {o.name} = {v!r}: allowed a finite number")
        reference.append(float(v))

    ops = []
    raw_ops = data.get("operating_points", [])
    if not isinstance(raw_ops, list):
        raise ValueError(f"{where}: operating_points must be an array of tables [[...]]")
    for i, op in enumerate(raw_ops):
        wo = f"{where}: [[operating_points]] #{i + 1}"
        if not isinstance(op, dict):
            raise ValueError(f"{wo}: must be a table with label, source, settings")
        _unknown_keys(wo, op, ("label", "source", "settings"))
        label, source, sets = op.get("label"), op.get("source", ""), op.get("settings", {})
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"{wo}: label = {label!r}: allowed a non-empty string")
        if not isinstance(source, str) or not isinstance(sets, dict):
            raise ValueError(f"{wo}: source must be a string and settings a table")
        norm = {}
        for sname, v in sets.items():
            if sname not in known:
                raise ValueError(f"{wo}: unknown setting {sname!r} for evaluator {ev!r}, "
                                 f"allowed {sorted(known)}")
            norm[sname] = known[sname].check(v, wo)
        ops.append(OperatingPoint(label, source, norm))

    study = Study(name=name, mode=mode, evaluator=ev, budget=budget, seed=seed,
                  population=population, params=tuple(params), fixed=fixed,
                  objectives=tuple(objectives), reference=tuple(reference),
                  operating_points=tuple(ops), compare_with=tuple(compare),
                  defaults=schema.defaults())
    if mode == "grid":
        for p in params:
            if p.kind == "float" and p.levels is None and p.step is None:
                raise ValueError(f"{where}: [parameters.{p.name}]: a grid needs levels = n or "
                                 f"step for a float range")
        n = study.grid_size()
        if n > budget:
            raise ValueError(f"{w}: budget = {budget}: the grid has {n} points, allowed "
                             f"budget >= {n} (or fewer levels)")
    return study


def load_study(path, schemas: dict) -> Study:
    """Read and validate the TOML study at ``path`` (``ValueError`` naming the problem)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"study = {str(path)!r}: no such file")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p}: not valid TOML ({e})") from e
    s = parse_study(data, schemas, where=str(p), default_name=p.stem)
    return dataclasses.replace(s, path=str(p))

