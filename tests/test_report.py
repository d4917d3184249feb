"""`make report` (sim/report.py): schema of report.json, self-contained HTML, the fidelity table
in both renderings, the other targets' tables from fabricated inputs, and bad input (a malformed
figure, an unknown node) -> a clear error and no file written."""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
import sys
import types
import zlib

import pytest

from sim import report as R
from sim.meta import ROOT


def _png(w=4, h=3, rgb=(200, 30, 30)) -> bytes:
    """A valid w x h RGB PNG (no plotting library needed)."""
    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))
    return (R.PNG_MAGIC + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def fake_module(name, figures=None, rows=None, plot_names=("breakdown.png",)):
    """An energy module with the contract's three functions, returning what it is given."""
    m = types.ModuleType(f"fake_{name}")
    m.figures = lambda node_nm=45: dict(figures or {})
    m.fidelity_rows = lambda: list(rows or [])

    def plots(outdir):
        out = []
        for i, n in enumerate(plot_names):
            p = outdir / n
            p.write_bytes(_png(3 + i))
            out.append(p)
        return out
    m.plots = plots
    return m


ROWS = [{"claim": "energy per bit per area vs CMOS TRNG", "paper": "~10^3 better",
         "spindiff": "412x (FoM ratio)", "method": "E_bit x A_source, Cheng et al. §4",
         "sources": ["mtj_pulse_fJ", "cmos_trng_pJ_per_bit"]},
        {"claim": "analog solver speed-up <ring>", "paper": "64.8x | 156.5x",
         "spindiff": "71x", "method": "integration time vs N Euler steps (tau not fitted)",
         "sources": "opamp_gbw_MHz"}]
FIGS = {"fom_J_um2": {"value": 1.5e-20, "unit": "J*um^2", "definition": "E_bit x A_source"},
        "e_bit_fJ": {"value": 3.25, "unit": "fJ", "source": "Cheng et al. 2025, Fig. 2"}}


def fake_modules(figures=FIGS, trng=None):
    """Energy modules for the report: accounting and trng fabricated, solver not importable."""
    acc = fake_module("accounting", {"per_image_nJ": {
        "value": 812.0, "unit": "nJ", "definition": "sum of the breakdown"}}, [],
        ("breakdown.png", "sensitivity_adc_bits.png"))
    return {"accounting": (acc, "Energy breakdown"),
            "trng": (trng or fake_module("trng", figures, ROWS, ("fom.png",)), "FoM"),
            "solver": ("model.energy.no_such_module_xyz", "Solver")}


@pytest.fixture
def inputs(tmp_path):
    """A build folder with fabricated bench, synth and sampler outputs."""
    root = tmp_path / "build"
    prov = {"package": "spindiff", "git": "abc123", "created_utc": "2026-01-01T00:00:00+00:00",
            "command": "make bench SEED=1", "seed": 1}
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "bench.json").write_text(json.dumps({
        **prov, "trng": {"verilator_cycles_per_s": 123456.0, "raw_bits_per_cycle": 1.6,
                         "mbit_per_s_per_column_at_fmax": {"ice40": 4.321},
                         "fmax_source": "a string, left out"},
        "crossbar": {"cycles_per_mvm": 591.0, "verilator_bit_exact": True}}))
    for target, stem, fmax, luts in (("ice40", "report", 49.46, 2665),
                                     ("ecp5", "report-crossbar", 122.58, 2579)):
        (root / "synth" / target).mkdir(parents=True)
        (root / "synth" / target / f"{stem}.json").write_text(json.dumps({
            "schema": 1, "status": "ok", "target": target, "device": f"dev-{target}",
            "design": "top", "design_name": stem.split("-")[-1], "luts": luts,
            "luts_available": 5280, "ffs": 1744, "ffs_available": 5280, "brams": 23,
            "brams_available": 30, "dsps": 8, "dsps_available": 8, "fmax_mhz": fmax,
            "constraint_mhz": 48.0, "timing_met": True, "fits": True, **prov}))
    (root / "sampler").mkdir()
    iv = {"mean": 17.25, "std": 0.5, "n": 4, "half": 0.8, "lo": 16.45, "hi": 18.05,
          "values": [17.0, 17.5, 17.0, 17.5]}
    (root / "sampler" / "results.json").write_text(json.dumps({
        "provenance": prov, "backend": "real",
        "rows": [{"dataset": "digits", "noise": "trng", "compute": "hardware",
                  "sampler": "ddpm", "steps": 1000, "reference": False, "samples": 2000,
                  "seeds": [0, 1, 2, 3], "metrics": {"fid": iv, "memorisation": iv},
                  "fid_ratio": {"ratio": 1.37, "lo": 1.2, "hi": 1.5},
                  "sample_seconds": {"mean": 3.0, "total": 12.0}}],
        "goals": [{"goal": "FID ratio <= 3", "ratio": 1.37, "ci95": [1.2, 1.5],
                   "budget_met": True, "met": True}]}))
    (root / "sampler" / "integrator_sweep.json").write_text(json.dumps({
        **prov, "dataset": "ring", "compute": "analog", "sde": "reference", "samples": 500,
        "base": {"tau_us": 10.0, "refresh_mhz": 20.0, "dac_bits": 12},
        "held_out_floor": {"hist_l2": 0.01, "kl_x": 0.02, "kl_y": 0.03},
        "rows": [{"axis": "tau_us", "tau_us": 3.5, "refresh_mhz": 20.0, "dac_bits": 12,
                  "refreshes": 70, "evaluations": 70, "hist_l2": 0.0456, "kl_x": 0.05,
                  "kl_y": 0.06, "radius_mean": 0.7, "radius_std": 0.04}]}))
    (root / "sampler" / "integrator_sweep.png").write_bytes(_png(5, 5, (1, 2, 3)))
    return root


def _build(tmp_path, inputs, mods=None, **kw):
    out = tmp_path / "report"
    body = R.build_report(out, 45, inputs, command="test",
                          energy_modules=mods or fake_modules(), **kw)
    return out, body


def test_report_from_fabricated_inputs(tmp_path, inputs):
    out, body = _build(tmp_path, inputs)
    js = json.loads((out / "report.json").read_text())
    assert js["provenance"]["git"] and js["provenance"]["command"] == "test"
    # Schema: every figure an object with value, unit and source or definition.
    assert set(js["figures"]) == {"accounting.per_image_nJ", "trng.fom_J_um2", "trng.e_bit_fJ",
                                  "fpga.ecp5.crossbar.mvm_per_s",
                                  "fpga.ice40.report.raw_bits_per_s"}
    for k, f in js["figures"].items():
        assert isinstance(f["value"], (int, float)) and f["unit"], k
        assert f.get("source") or f.get("definition"), k
    assert [r["claim"] for r in js["fidelity"]] == [r["claim"] for r in ROWS]
    assert all(set(R.FIDELITY_KEYS) <= set(r) for r in js["fidelity"])
    # Sections: which inputs were found, which module is missing and why.
    s = js["sections"]
    assert s["energy.solver"]["available"] is False and "no_such_module_xyz" in \
        s["energy.solver"]["reason"]
    assert s["energy.trng"]["available"] and s["inputs.bench"]["found"]
    assert s["inputs.synth"]["found"] and len(s["inputs.synth"]["files"]) == 2
    assert not s["inputs.sim"]["found"] and not s["inputs.explore"]["found"]
    # Key numbers of the inputs, read from the fabricated files.
    bench = js["inputs"]["bench"]["figures"]
    assert bench["trng.mbit_per_s_per_column_at_fmax.ice40"] == 4.321
    assert bench["crossbar.verilator_bit_exact"] is True
    assert not any("fmax_source" in k for k in bench)
    synth = {r["target"]: r for r in js["inputs"]["synth"]["rows"]}
    assert synth["ecp5"]["fmax_mhz"] == 122.58 and synth["ecp5"]["design"] == "crossbar"
    # FPGA-derived throughput: bench rates x post-route Fmax.
    fig = js["figures"]
    assert fig["fpga.ecp5.crossbar.mvm_per_s"]["value"] == pytest.approx(122.58e6 / 591.0)
    assert fig["fpga.ice40.report.raw_bits_per_s"]["value"] == pytest.approx(1.6 * 49.46e6)
    assert fig["fpga.ice40.report.raw_bits_per_s"]["unit"] == "bit/s"
    srow = js["inputs"]["sampler"]["rows"][0]
    assert srow["metrics"]["fid"]["mean"] == 17.25 and srow["fid_ratio"]["ratio"] == 1.37
    # Plots copied beside the Markdown, named per module, the sweep in the sensitivity section.
    assert sorted(js["images"]) == ["accounting_breakdown.png",
                                    "accounting_sensitivity_adc_bits.png",
                                    "integrator_sweep.png", "trng_fom.png"]
    assert (out / "integrator_sweep.png").read_bytes() == (
        inputs / "sampler" / "integrator_sweep.png").read_bytes()
    assert js["inputs"]["integrator_sweep"]["rows"][0]["hist_l2"] == 0.0456
    for n in js["images"]:
        assert (out / n).read_bytes()[:8] == R.PNG_MAGIC
    md = (out / "report.md").read_text()
    for n in js["images"]:
        assert f"]({n})" in md
    sens = md.index("## Sensitivity")
    assert md.index("accounting_sensitivity_adc_bits.png") > sens > md.index(
        "accounting_breakdown.png")
    # Fidelity table first, then the energy sections, inputs, constants.
    order = [md.index(h) for h in ("## Fidelity", "## Energy breakdown", "## FoM",
                                   "## Sensitivity", "## Solver", "### make bench",
                                   "### make synth", "### Sampler", "## Constants")]
    assert order == sorted(order), order
    assert "| tau_us | 3.5 | 20 | 12 | 70 | 70 | 0.0456 |" in md
    assert "| 2579 / 5280 |" in md and "122.6" in md and "17.25 ± 0.8" in md
    assert "Not available: model.energy.no_such_module_xyz not importable" in md


def test_fidelity_rows_in_md_and_html_escaped(tmp_path, inputs):
    out, _ = _build(tmp_path, inputs)
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for r in ROWS:
        assert f"| {r['claim']} |" in md
    # Markdown: the pipe inside a cell is escaped; list-valued sources joined.
    assert "| 64.8x \\| 156.5x |" in md
    assert "mtj_pulse_fJ; cmos_trng_pJ_per_bit" in md
    # HTML: text escaped, so the row's "<ring>" is text, not a tag.
    assert "analog solver speed-up &lt;ring&gt;" in page and "<ring>" not in page
    assert "<td>64.8x | 156.5x</td>" in page
    assert "<td>energy per bit per area vs CMOS TRNG</td>" in page


def test_html_self_contained(tmp_path, inputs):
    out, body = _build(tmp_path, inputs)
    page = (out / "report.html").read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, re.I)
    assert refs, "no images in the page"
    assert all(r.startswith("data:image/png;base64,") for r in refs), refs
    assert not re.search(r"<(link|script|iframe|object|embed)\b", page, re.I)
    assert "url(" not in page and "@import" not in page
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == len(body["images"])
    decoded = {base64.b64decode(d) for d in imgs}
    assert decoded == {(out / n).read_bytes() for n in body["images"]}


@pytest.mark.parametrize("bad,needle", [
    ({"value": 1.0, "source": "x"}, "'unit'"),
    ({"value": 1.0, "unit": "fJ"}, "'source' or 'definition'"),
    ({"value": 1.0, "unit": "fJ", "source": "  "}, "'source' or 'definition'"),
    ({"value": float("nan"), "unit": "fJ", "source": "x"}, "finite number"),
    ({"value": "3 fJ", "unit": "fJ", "source": "x"}, "finite number"),
    ({"unit": "fJ", "source": "x"}, "finite number"),
    (3.0, "expected a dict"),
])
def test_malformed_figure_is_an_error_and_writes_nothing(tmp_path, inputs, bad, needle):
    figs = {**FIGS, "broken_fJ": bad}
    with pytest.raises(R.ReportError) as e:
        _build(tmp_path, inputs, fake_modules(figs))
    assert "trng.broken_fJ" in str(e.value) and needle in str(e.value), str(e.value)
    assert not (tmp_path / "report").exists()


def test_failed_run_keeps_the_previous_report(tmp_path, inputs):
    out, _ = _build(tmp_path, inputs)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError):
        _build(tmp_path, inputs, fake_modules({"x": {"value": 1, "unit": "1"}}))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_malformed_fidelity_row_and_plot(tmp_path, inputs):
    mods = fake_modules(trng=fake_module("trng", FIGS, [{"claim": "c", "paper": "p"}]))
    with pytest.raises(R.ReportError, match=r"trng.fidelity_rows\(\)\[0\].*missing"):
        _build(tmp_path, inputs, mods)
    m = fake_module("trng", FIGS, ROWS)
    m.plots = lambda outdir: [(outdir / "x.png").write_text("not a png") and outdir / "x.png"]
    with pytest.raises(R.ReportError, match="not a PNG"):
        R.build_report(tmp_path / "report", 45, inputs, energy_modules={"trng": (m, "FoM")})
    assert not (tmp_path / "report").exists()


def test_stale_plots_of_an_earlier_run_removed(tmp_path, inputs):
    out, _ = _build(tmp_path, inputs)
    assert (out / "accounting_breakdown.png").exists()
    mods = fake_modules()
    mods["accounting"] = (fake_module("accounting", {}, [], ("other.png",)), "Energy breakdown")
    _build(tmp_path, inputs, mods)
    assert not (out / "accounting_breakdown.png").exists()
    assert (out / "accounting_other.png").exists()


def test_cli_bad_node_one_line_exit_2(tmp_path):
    out = tmp_path / "r"
    for node in ("7", "x"):
        r = subprocess.run([sys.executable, "-m", "sim.report", "--out", str(out), "--node",
                            node, "--inputs", str(tmp_path)], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "--node" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists()


def test_fitted_and_assumed_constants_flagged(tmp_path, inputs):
    from model.energy.constants import Constant
    consts = types.ModuleType("fake_constants")
    consts.NODES = (45, 22)
    consts.table = lambda node_nm=45: {
        "mtj_pulse_fJ": Constant(0.7 * node_nm / 45, "fJ", "chosen to give Cheng et al.'s 10^3",
                                 "fitted", "fits the FoM ratio"),
        "cmos_trng_pJ_per_bit": Constant(2.9, "pJ", "Mathew et al., JSSC 2012", "sourced"),
        "opamp_gbw_MHz": Constant(10.0, "MHz", "ASSUMED: op-amp GBW", "assumed")}
    figs = {**FIGS, "e_pulse_fJ": {"value": 0.7, "unit": "fJ",
                                   "definition": "mtj_pulse_fJ x 1 pulse"}}
    out = tmp_path / "report"
    js = R.build_report(out, 22, inputs, energy_modules=fake_modules(figs),
                        constant_modules={"constants": consts})
    assert js["node_nm"] == 22
    assert js["constants"]["mtj_pulse_fJ"]["value"] == pytest.approx(0.7 * 22 / 45)
    assert js["constants"]["mtj_pulse_fJ"]["status"] == "fitted"
    rows = {r["claim"]: r for r in js["fidelity"]}
    assert rows[ROWS[0]["claim"]]["fitted_constants"] == ["mtj_pulse_fJ"]
    assert rows[ROWS[1]["claim"]]["fitted_constants"] == []
    assert js["figures"]["trng.e_pulse_fJ"]["fitted_constants"] == ["mtj_pulse_fJ"]
    assert "fitted_constants" not in js["figures"]["trng.e_bit_fJ"]
    md = (out / "report.md").read_text()
    assert "| FITTED: mtj_pulse_fJ |" in md
    assert rows[ROWS[0]["claim"]]["fitted"] and not rows[ROWS[1]["claim"]]["fitted"]
    assert js["figures"]["trng.e_pulse_fJ"]["fitted"] and "fitted" not in js["figures"][
        "trng.fom_J_um2"]
    assert "| mtj_pulse_fJ | 0.3422 | fJ | FITTED |" in md
    assert "| opamp_gbw_MHz | 10 | MHz | ASSUMED |" in md
    assert "| cmos_trng_pJ_per_bit | 2.9 | pJ | sourced |" in md
    with pytest.raises(ValueError, match=r"--node = 7.*\[22, 45\]"):
        R.build_report(tmp_path / "r2", 7, inputs, energy_modules=fake_modules(),
                       constant_modules={"constants": consts})
    assert not (tmp_path / "r2").exists()


def test_module_prefix_not_doubled(tmp_path, inputs):
    figs = {"trng.fom_J_um2": FIGS["fom_J_um2"], "e_bit_fJ": FIGS["e_bit_fJ"]}
    _, js = _build(tmp_path, inputs, fake_modules(figs))
    assert {"trng.fom_J_um2", "trng.e_bit_fJ"} <= set(js["figures"])
    assert not any(k.startswith("trng.trng.") for k in js["figures"])


def test_real_energy_model(tmp_path):
    """The report on the real model/energy modules (no inputs present): every module's
    section present, its figures copied unchanged and valid, rows in both renderings, every
    constant of the node table listed, the plots inline (its wall time is make report's
    business, not a test's: it depends on the machine's load)."""
    import importlib
    from model.energy import constants as K
    out = tmp_path / "report"
    js = R.build_report(out, 45, tmp_path / "no-build", command="test")
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for name, (spec, heading) in R.ENERGY_MODULES.items():
        sec = js["sections"][f"energy.{name}"]
        assert sec["available"], sec
        assert set(sec["provides"]) == {"figures", "fidelity_rows", "plots"}, sec
        assert f"## {heading}" in md
        mod = importlib.import_module(spec)
        figs = mod.figures()
        assert figs, f"{name}.figures() is empty"
        for k, f in figs.items():
            key = k if k.startswith(f"{name}.") else f"{name}.{k}"
            assert js["figures"][key]["value"] == pytest.approx(f["value"], rel=1e-12), key
        assert any(n.startswith(f"{name}_") for n in js["images"]), (name, js["images"])
    for k, f in js["figures"].items():
        R.validate_figure(k, f)
        assert f.get("source") or f.get("definition"), k
    # Two modules agree on the cost of one conditioned random bit.
    assert js["figures"]["accounting.energy_per_random_bit"]["value"] == pytest.approx(
        js["figures"]["trng.mtj_bit_energy"]["value"], rel=1e-9)
    claims = [r["claim"] for r in js["fidelity"]]
    assert {r["module"] for r in js["fidelity"]} >= {"trng", "solver"}, claims
    import html
    for r in js["fidelity"]:
        assert f"| {R._md_cell(R.fmt(r['claim']))} |" in md, r["claim"]
        assert f"<td>{html.escape(R.fmt(r['claim']))}</td>" in page, r["claim"]
        assert md.index(f"| {R._md_cell(R.fmt(r['claim']))} |") < md.index("## Energy breakdown")
    table = K.table(45)
    for k, c in table.items():
        assert js["constants"][k]["value"] == c.value and js["constants"][k]["status"] == \
            c.status, k
    assert all(c["status"] in K.STATUSES and c["source"] and c["unit"]
               for c in js["constants"].values())
    assert js["sections"]["constants.analog_constants"]["available"]
    assert page.count('src="data:image/png;base64,') == len(js["images"])
    assert not any(js["sections"][f"inputs.{n}"]["found"]
                   for n in ("bench", "synth", "sampler", "sim", "validate", "explore"))


def test_model_value_error_one_line_exit_2(tmp_path, inputs, monkeypatch, capsys):
    """A configuration the model rejects (ValueError) -> main() prints one line, returns 2,
    writes nothing."""
    def bad_figures(node_nm=45):
        raise ValueError("mtj_sense_pJ = -1.0: must be > 0")
    m = fake_module("trng", FIGS, ROWS)
    m.figures = bad_figures
    monkeypatch.setattr(R, "ENERGY_MODULES", {"trng": (m, "FoM")})
    out = tmp_path / "r"
    rc = R.main(["--out", str(out), "--inputs", str(inputs)])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip() == "error: mtj_sense_pJ = -1.0: must be > 0", err
    assert not out.exists()


def test_fitted_word_flags_row_and_figure(tmp_path, inputs):
    """A row or figure saying FITTED (capitals) is flagged even without a fitted constant."""
    rows = [*ROWS, {"claim": "speed-up (journal)", "paper": "69x", "spindiff": "69x",
                    "method": "tau FITTED to the unconditional figure", "sources": "Yang"}]
    figs = {**FIGS, "tau_s": {"value": 7e-3, "unit": "s", "definition": "FITTED to 64.8x"}}
    out, js = _build(tmp_path, inputs,
                     fake_modules(trng=fake_module("trng", figs, rows, ("fom.png",))))
    assert [r["fitted"] for r in js["fidelity"]] == [False, False, True]
    assert js["figures"]["trng.tau_s"]["fitted"]
    md = (out / "report.md").read_text()
    assert "| tau FITTED to the unconditional figure | Yang | FITTED |" in md
    assert "| trng.tau_s | 0.007 | s | = FITTED to 64.8x | FITTED |" in md


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("keep")
    assert R.main(["--out", str(f), "--inputs", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err and f.read_text() == "keep"


def test_sim_input_figures(tmp_path, inputs):
    """make sim's report (the diffusion core's image run): its key figures reach report.json."""
    (inputs / "sim").mkdir()
    (inputs / "sim" / "report.json").write_text(json.dumps({
        "images": 16, "bit_exact": True, "counters_match": True, "cycles_per_image": 2.05e6,
        "sim_cycles_per_s": 7.5e5, "fid_hw": 23.6, "fid_sw": 26.9, "fid": {"n": 2000},
        "energy_per_image_j": 2.7e-6, "dataset": "digits", "sampler": "ddpm", "steps": 50,
        "energy_per_bit_per_area": {"value": 3.8e-11, "unit": "J·µm²/bit", "definition": "d"},
        "images_per_s_at_fmax": {"value": None, "unit": "images/s", "reason": "no synth"},
        "meta": {"provenance": {"git": "abc1234", "command": "make sim"}}}))
    out, _ = _build(tmp_path, inputs)
    js = json.loads((out / "report.json").read_text())
    assert js["sections"]["inputs.sim"]["found"]
    f = js["inputs"]["sim"]["figures"]
    assert f["fid_hw"] == 23.6 and f["bit_exact"] is True and f["steps"] == 50
    assert f["energy_per_bit_per_area"] == 3.8e-11 and f["fid_n"] == 2000
    assert "images_per_s_at_fmax" not in f
    assert js["inputs"]["sim"]["origin"]["git"] == "abc1234"
