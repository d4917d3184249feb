"""Design-space exploration (``make explore``, docs/explore.md): study validation, the
non-dominated sort and hypervolume against brute force, serial = Dask, a study killed midway
and resumed equals an uninterrupted one, the NSGA-II front against the grid's on an analytic
benchmark with a known front, the digits point function's energy against the energy model.

About 40-60 s on 2 cores (a 2-worker LocalCluster, a few tiny digits points, one killed
subprocess, one unreachable scheduler)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from model.explore import benchmarks, pareto, space
from model.explore.store import ResultStore
from model.explore.study import load_study, parse_study
from sim.meta import ROOT

import sim.explore as X

SEED = int(os.environ.get("SPINDIFF_SEED", "1"))


def _study(mode="grid", ev="convex", levels=3, budget=None, seed=1, pop=8, extra_fixed=None,
           ref=1.5, name=None, params=None):
    n = len([s for s in X.SCHEMAS[ev].settings if s.name.startswith("x")])
    if params is None:
        params = {f"x{i}": ({"low": 0.0, "high": 1.0, "levels": levels} if mode == "grid"
                            else {"low": 0.0, "high": 1.0}) for i in range(1, n + 1)}
    d = {"study": {"name": name or f"{ev}-{mode}", "mode": mode, "evaluator": ev,
                   "budget": budget or levels ** n, "seed": seed, "population": pop},
         "parameters": params, "fixed": dict(extra_fixed or {}),
         "objectives": {"f1": "min", "f2": "min"}, "reference": {"f1": ref, "f2": ref}}
    return d


def _toml(d: dict) -> str:
    def val(v):
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)
    out = []
    for table, body in d.items():
        out.append(f"[{table}]")
        out += [f"{k} = {val(v)}" for k, v in body.items()]
    return "\n".join(out) + "\n"


# -- bad input ---------------------------------------------------------------------------------
def _bad(mutate):
    d = _study()
    mutate(d)
    return d


BAD = [
    (lambda d: d["parameters"].update(x9={"low": 0.0, "high": 1.0}), "unknown parameter 'x9'"),
    (lambda d: d["parameters"].update(x1={"low": 0.8, "high": 0.2, "levels": 3}),
     "empty range"),
    (lambda d: d["parameters"].update(x1={"values": []}), "empty range"),
    (lambda d: d["study"].update(budget=0), "budget = 0"),
    (lambda d: d["study"].update(budget=5), "the grid has 27 points"),
    (lambda d: d["study"].update(evaluator="zdt9"), "evaluator = 'zdt9'"),
    (lambda d: d["study"].update(mode="random"), "mode = 'random'"),
    (lambda d: d["parameters"].update(x1={"low": 0.0, "high": 1.0}), "levels"),
    (lambda d: d["parameters"].update(x1={"low": 0.0, "high": 3.0, "levels": 2}),
     "x1 = 3.0: out of range"),
    (lambda d: d["objectives"].update(f3="min"), "unknown objective 'f3'"),
    (lambda d: d["fixed"].update(x1=0.5), "also a parameter"),
    (lambda d: d["fixed"].update(bogus=1), "unknown setting 'bogus'"),
    (lambda d: d["reference"].pop("f2"), "[reference]"),
]


@pytest.mark.parametrize("mutate,needle", BAD)
def test_bad_study_raises(mutate, needle):
    with pytest.raises(ValueError) as e:
        parse_study(_bad(mutate), X.SCHEMAS)
    assert needle in str(e.value), str(e.value)


def test_bad_digits_settings():
    d = {"study": {"mode": "grid", "evaluator": "digits", "budget": 4, "seed": 1, "name": "b"},
         "parameters": {"adc_bits": {"low": 6, "high": 40}},
         "objectives": {"fid": "min"}, "reference": {"fid": 100.0}}
    with pytest.raises(ValueError, match=r"adc_bits = 40: out of range, allowed integer"):
        parse_study(d, X.SCHEMAS)
    d["parameters"] = {"noise": {"values": ["software", "quantum"]}}
    with pytest.raises(ValueError, match="noise = 'quantum'"):
        parse_study(d, X.SCHEMAS)


def _cli(args, timeout=120):
    return subprocess.run([sys.executable, "-m", "sim.explore", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("case", ["unknown", "empty", "budget0", "scheduler"])
def test_cli_bad_input_one_error_nothing_written(case, tmp_path):
    d = _study()
    extra = []
    if case == "unknown":
        d["parameters"]["volts"] = {"low": 0.0, "high": 1.0, "levels": 2}
        needle = "unknown parameter 'volts'"
    elif case == "empty":
        d["parameters"]["x2"] = {"values": []}
        needle = "empty range"
    elif case == "budget0":
        d["study"]["budget"] = 0
        needle = "budget = 0"
    else:
        extra = ["--scheduler", f"tcp://127.0.0.1:{_free_port()}"]
        needle = "unreachable"
    f = tmp_path / "s.toml"
    f.write_text(_toml(d))
    out = tmp_path / "out"
    r = _cli(["--study", str(f), "--out", str(out), *extra])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
    assert not out.exists()


def test_example_studies_load():
    e = load_study(ROOT / "studies/example.toml", X.SCHEMAS)
    assert e.evaluator == "digits" and e.mode == "search"
    assert set(e.compare_with) == {"example-grid", "example-grid-informed"}
    for name in e.compare_with:
        g = load_study(ROOT / f"studies/{name}.toml", X.SCHEMAS)
        assert g.name == name and g.grid_size() == g.budget == e.budget
        assert (g.objective_names, g.reference, g.seed, g.fixed) == \
            (e.objective_names, e.reference, e.seed, e.fixed)
        for p in g.params:          # the grids stay inside the search's space
            q = next(x for x in e.params if x.name == p.name)
            assert set(p.grid_values()) <= set(q.grid_values()), p.name


# -- pareto --------------------------------------------------------------------------------------
def test_non_dominated_against_brute_force():
    g = np.random.default_rng(SEED)
    for trial in range(20):
        y = g.integers(0, 6, size=(25, 3)).astype(float)
        senses = ["min", "max", "min"]
        got = set(pareto.non_dominated(y, senses).tolist())
        m = y * np.array([1, -1, 1])
        want = {i for i in range(len(y))
                if not any((m[j] <= m[i]).all() and (m[j] < m[i]).any() for j in range(len(y)))}
        assert got == want, f"seed {SEED} trial {trial}"


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_against_cell_count(m):
    """Integer points: the hypervolume equals the number of unit cells of [0, R)^m that some
    point dominates (counted by brute force)."""
    g = np.random.default_rng(SEED + m)
    R = 8
    for trial in range(10):
        y = g.integers(0, R, size=(12, m)).astype(float)
        grids = np.stack(np.meshgrid(*[np.arange(R)] * m, indexing="ij"), -1).reshape(-1, m)
        covered = ((y[None, :, :] <= grids[:, None, :]).all(-1)).any(1).sum()
        hv = pareto.hypervolume(y, ["min"] * m, [R] * m)
        assert hv == pytest.approx(float(covered)), f"seed {SEED + m} trial {trial}"
    # a "max" objective is the mirror image
    y = g.integers(0, R, size=(12, 2)).astype(float)
    assert pareto.hypervolume(y * [1, -1], ["min", "max"], [R, -R]) == \
        pytest.approx(pareto.hypervolume(y, ["min", "min"], [R, R]))


def test_hypervolume_of_true_front():
    f = np.array(benchmarks.zdt1_front(4001))
    assert pareto.hypervolume(f, ["min", "min"], [1.0, 1.0]) == \
        pytest.approx(benchmarks.zdt1_front_hypervolume(), abs=1e-3)


# -- store ---------------------------------------------------------------------------------------
def test_store_torn_last_line_and_no_duplicates(tmp_path):
    p = tmp_path / "r.jsonl"
    st = ResultStore(p)
    st.append({"key": "a", "status": "ok", "metrics": {"f": 1.0}})
    st.append({"key": "b", "status": "error", "error": "boom"})
    with pytest.raises(ValueError, match="already finished"):
        st.append({"key": "a", "status": "ok"})
    with open(p, "ab") as f:
        f.write(b'{"key": "c", "sta')             # killed mid-write
    st2 = ResultStore(p)
    assert st2.dropped_torn_line and len(st2) == 2 and "c" not in st2
    st2.append({"key": "c", "status": "ok"})
    assert [json.loads(x)["key"] for x in p.read_text().splitlines()] == ["a", "b", "c"]
    assert "b" in ResultStore(p) and "b" not in ResultStore(p, retry_errors=True)
    p.write_text('{"key": "a", "status": "ok"}\nnot json\n{"key": "b", "status": "ok"}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        ResultStore(p)


# -- serial = Dask; kill and resume --------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_exec():
    ex = X.connect(None, workers=2)
    yield ex
    ex.close()


def _digits_grid():
    return {"study": {"name": "dg", "mode": "grid", "evaluator": "digits", "budget": 2,
                      "seed": 3},
            "parameters": {"steps": {"values": [2, 3]}},
            "fixed": {"samples": 64, "noise": "lfsr"},
            "objectives": {"fid": "min", "energy_per_image_uJ": "min"},
            "reference": {"fid": 1000.0, "energy_per_image_uJ": 10.0}}


def test_serial_equals_dask(dask_exec, tmp_path):
    # the analytic grid with one point failing on purpose, and a tiny grid of the real
    # point function (FID + energy of 64 hardware-mode images, one program per worker)
    for d in (_study(extra_fixed={"fail_above_x1": 0.9}), _digits_grid()):
        s = parse_study(d, X.SCHEMAS)
        rs = X.run_study(s, X.SerialExecutor(), tmp_path / "serial" / s.name)
        rd = X.run_study(s, dask_exec, tmp_path / "dask" / s.name)
        ts = ResultStore(tmp_path / "serial" / s.name / "results.jsonl").table()
        td = ResultStore(tmp_path / "dask" / s.name / "results.jsonl").table()
        assert len(ts) == s.grid_size() and ts == td
        assert rs["new"] == rd["new"] == s.grid_size()
        workers = {r["worker"] for r in ResultStore(tmp_path / "dask" / s.name /
                                                    "results.jsonl").records()}
        assert all(w.rsplit(":", 1)[1] != str(os.getpid()) for w in workers), \
            "ran in the client process"
        if s.evaluator == "convex":
            err = [r for r in ts if r["status"] == "error"]
            assert len(err) == 9 and all("failing on purpose" in r["error"] for r in err)
        else:
            assert all(r["status"] == "ok" and r["metrics"]["fid"] > 0 for r in ts)


def test_dask_client_stopped_then_resumed(dask_exec, tmp_path):
    s = parse_study(_study(extra_fixed={"fail_above_x1": 0.9}), X.SCHEMAS)
    with pytest.raises(X.Interrupted):
        X.run_study(s, dask_exec, tmp_path / "a", stop_after=7)
    assert ResultStore(tmp_path / "a" / "results.jsonl").lines == 7
    r = X.run_study(s, dask_exec, tmp_path / "a")
    assert r["new"] == s.grid_size() - 7 and r["reused"] == 7
    X.run_study(s, X.SerialExecutor(), tmp_path / "b")
    a, b = (ResultStore(tmp_path / x / "results.jsonl") for x in "ab")
    assert a.lines == len(a) == s.grid_size()            # no duplicate line
    assert a.table() == b.table()


def test_dask_point_that_kills_its_worker_is_recorded(dask_exec, tmp_path):
    """A point ending its worker process (os._exit) is recorded as KilledWorker once Dask gives
    it up (it retries a task 3 times: the default allowed-failures, which also lets a healthy
    point caught on a dying worker finish elsewhere); the others finish, a rerun runs
    nothing."""
    d = _study(params={"x1": {"values": [0.1, 0.5, 0.95]}, "x2": {"values": [0.2]}},
               extra_fixed={"crash_above_x1": 0.9}, budget=3)
    s = parse_study(d, X.SCHEMAS)
    r = X.run_study(s, dask_exec, tmp_path / "k")
    st = ResultStore(tmp_path / "k" / "results.jsonl")
    assert r["new"] == 3 and st.lines == len(st) == 3
    bad = [x for x in st.records() if x["status"] == "error"]
    assert len(bad) == 1 and bad[0]["params"]["x1"] == 0.95 and "KilledWorker" in bad[0]["error"]
    assert X.run_study(s, dask_exec, tmp_path / "k")["new"] == 0


def test_search_stopped_then_resumed_equals_uninterrupted(tmp_path):
    d = _study(mode="search", budget=30, pop=6, seed=SEED)
    s = parse_study(d, X.SCHEMAS)
    full = X.run_study(s, X.SerialExecutor(), tmp_path / "full")
    for stop in (4, 13):
        out = tmp_path / f"stop{stop}"
        with pytest.raises(X.Interrupted):
            X.run_study(s, X.SerialExecutor(), out, stop_after=stop)
        res = X.run_study(s, X.SerialExecutor(), out)
        assert res["reused"] >= stop and res["new"] == s.budget - stop, f"seed {SEED}"
        assert [r["key"] for r in res["records"]] == [r["key"] for r in full["records"]]
        st = ResultStore(out / "results.jsonl")
        assert st.lines == len(st) == s.budget
        assert st.table() == ResultStore(tmp_path / "full" / "results.jsonl").table()


def test_killed_process_resumes(tmp_path):
    """SIGKILL a running study (serial, 0.15 s per point) midway; the same command finishes it;
    the table equals an uninterrupted run's, without duplicates; the outputs are written."""
    d = _study(extra_fixed={"delay_s": 0.15, "fail_above_x1": 0.9}, name="killme")
    f = tmp_path / "s.toml"
    f.write_text(_toml(d))
    out = tmp_path / "build" / "explore"
    res = out / "killme" / "results.jsonl"
    cmd = [sys.executable, "-m", "sim.explore", "--study", str(f), "--out", str(out), "--serial"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 60:
        if res.is_file() and len(res.read_bytes().splitlines()) >= 6:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    n_killed = len(res.read_bytes().splitlines())
    assert 6 <= n_killed < 27, n_killed
    r = _cli(["--study", str(f), "--out", str(out), "--serial"])
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "killme" / "report.json").read_text())
    assert rep["points_reused"] >= n_killed - 1 and rep["points"] == 27
    assert (out / "killme" / "pareto.png").stat().st_size > 1000
    assert "Non-dominated points" in (out / "killme" / "summary.md").read_text()
    s = parse_study(d, X.SCHEMAS)
    X.run_study(s, X.SerialExecutor(), tmp_path / "ref")
    got = ResultStore(res)
    assert got.lines == len(got) == 27
    assert got.table() == ResultStore(tmp_path / "ref" / "results.jsonl").table()
    # make report picks the study up: its figures, summary and plot
    from sim.report import Collected, collect_inputs
    col = Collected()
    collect_inputs(col, tmp_path / "build")
    e = col.inputs["explore"]
    assert e["study"] == "killme" and col.sections["inputs.explore"]["found"]
    assert e["figures"]["points"] == 27 and e["figures"]["points_error"] == 9
    assert e["figures"]["hypervolume"] == pytest.approx(rep["hypervolume"])
    assert "Non-dominated points" in e["summary_md"] and "explore_pareto.png" in col.images


# -- search against grid -------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [SEED, SEED + 1, SEED + 2])
def test_search_front_at_least_grid_front_convex(seed, tmp_path):
    """Same budget (64 points): NSGA-II's front against a 4-level grid's on the convex pair,
    hypervolume against (1.5, 1.5); both below the true front's."""
    g = parse_study(_study("grid", levels=4, seed=seed), X.SCHEMAS)
    s = parse_study(_study("search", budget=64, pop=8, seed=seed), X.SCHEMAS)
    hv = {}
    for st in (g, s):
        r = X.run_study(st, X.SerialExecutor(), tmp_path / st.mode)
        hv[st.mode] = X.front(st, r["records"])[2]
        assert len(r["records"]) == 64
    true = pareto.hypervolume(benchmarks.convex_front(4001), ["min", "min"], [1.5, 1.5])
    assert hv["grid"] <= hv["search"] <= true + 1e-9, f"seed {seed}: {hv}, true {true}"


def test_search_respects_budget_on_a_small_space(tmp_path):
    """A space of 4 points with a budget of 10: every point once, then the asks stop."""
    d = _study("search", budget=10, pop=4,
               params={"x1": {"values": [0.0, 1.0]}, "x2": {"values": [0.2, 0.4]}})
    s = parse_study(d, X.SCHEMAS)
    r = X.run_study(s, X.SerialExecutor(), tmp_path / "s")
    assert len(r["records"]) == 4 and r["new"] == 4
    assert len({json.dumps(x["params"], sort_keys=True) for x in r["records"]}) == 4
    assert space.MAX_ASK_FACTOR * s.budget >= 10


# -- the digits point function -------------------------------------------------------------------
def test_digits_energy_matches_energy_model():
    """The point function's energy at the committed design equals model.energy's own figure
    (up to the pulse voltage: V50 at 1 us here, the DAC start code there); FoM as trng.py's;
    fewer steps and fewer ADC bits cost less."""
    from model.energy import accounting, trng
    base = {**X.DIGITS.defaults(), "samples": 16, "steps": 10, "noise": "lfsr"}
    m = X.evaluate_digits(base, SEED)
    prog = X._program(16, 10, 10, 8)
    want = accounting.image_energy(program=prog, sampler="ddpm", steps=10)["per_image_J"]
    assert m["energy_per_image_uJ"] * 1e-6 == pytest.approx(want, rel=5e-3)
    fom = trng.figures(45)["mtj_fom"]["value"]
    assert m["fom_fJ_um2"] * 1e-15 == pytest.approx(fom, rel=1e-2)
    m5 = X.evaluate_digits({**base, "steps": 5}, SEED)
    m8 = X.evaluate_digits({**base, "adc_bits": 8}, SEED)
    assert m5["energy_per_image_uJ"] < m["energy_per_image_uJ"]
    assert m8["energy_per_image_uJ"] < m["energy_per_image_uJ"]
    short = X.evaluate_digits({**base, "mtj_t_pulse_ns": 100.0}, SEED)
    assert short["fom_fJ_um2"] < m["fom_fJ_um2"] and short["v_pulse_mV"] > m["v_pulse_mV"]
