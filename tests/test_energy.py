"""Energy model: constant tables, activity-based accounting, area, and the MTJ TRNG figure of
merit (``docs/energy.md`` §2-§4). Expected values are computed by hand here, from constants
the tests set themselves where possible, not read back from the code under test."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from model.energy import accounting as A
from model.energy import constants as K
from model.energy import trng as T
from model.energy.constants import Constant


def _with(consts, **vals):
    """Copy of ``consts`` with some values replaced (unit from the key, status assumed)."""
    out = dict(consts)
    for k, v in vals.items():
        out[k] = Constant(v, K.unit_of_key(k), "test value", "assumed")
    return out


@pytest.fixture(scope="module")
def consts():
    return K.table(45)


@pytest.fixture(scope="module")
def program():
    p = A.load_program()
    A._PROGRAM_CACHE["p"] = p          # figures()/plots() reuse it
    return p


# -- constants -------------------------------------------------------------------------------
def test_every_entry_has_source_unit_and_unit_suffix(consts):
    assert K.NODES == (45,)
    assert len(consts) > 30
    for key, c in consts.items():
        assert c.source.strip(), key
        assert c.unit.strip(), key
        assert c.status in K.STATUSES, key
        assert any(key.endswith(s) for s in K.UNIT_SUFFIXES), key
        assert K.unit_of_key(key) == c.unit, key
        assert math.isfinite(c.value) and c.value > 0, key
        if c.status == "assumed":
            assert "ASSUMED" in c.source or "range" in c.note or "test" in c.source, key
    # no constant is fitted to a paper (docs/energy.md §2: would have to be flagged)
    assert not [k for k, c in consts.items() if c.status == "fitted"]
    # the baselines that cannot be measured here say so
    for k in ("trng_intel45_pJ_per_bit", "cpu_tdp_W", "gpu_tdp_W"):
        assert "quoted, not measured" in consts[k].note


def test_unknown_node_names_parameter_and_allowed():
    with pytest.raises(ValueError, match=r"node_nm = 22.*\[45\]"):
        K.table(22)
    with pytest.raises(ValueError, match="node_nm"):
        K.table("45")


def test_negative_or_misnamed_constant_rejected(consts):
    bad = dict(consts, mac_int8_pJ=Constant(-0.3, "pJ", "x", "assumed"))
    with pytest.raises(ValueError, match=r"mac_int8_pJ.*-0\.3.*allowed"):
        K.validate_table(bad)
    with pytest.raises(ValueError, match="mac_int8_pJ"):
        A.energy({"macs": 1}, bad, mode="digital")
    with pytest.raises(ValueError, match="unit suffix"):
        K.validate_table(dict(consts, foo=Constant(1.0, "pJ", "x", "assumed")))
    with pytest.raises(ValueError, match="suffix says 'pJ'"):
        K.validate_table(dict(consts, foo_pJ=Constant(1.0, "fJ", "x", "assumed")))
    with pytest.raises(ValueError, match="status"):
        Constant(1.0, "pJ", "x", "guessed")


# -- accounting ------------------------------------------------------------------------------
def test_known_count_gives_hand_product(consts):
    c = _with(consts, mult_int16_pJ=2.0, dac_conv_pJ=0.05, adc_fom_fJ_per_step=1.0,
              adc_enob_loss_dimless=1.0, sram_read_64b_8kB_pJ=8.0, mac_int8_pJ=0.3)
    br = A.energy({"seq_multiplies": 1000, "dac_conversions": 7, "adc_conversions": 3,
                   "state_reads": 5, "pixels_out": 64}, c, adc_bits=8)
    assert br.lines["seq_multiplies"].energy_J == pytest.approx(1000 * 2.0e-12)
    assert br.lines["dac_conversions"].energy_J == pytest.approx(7 * 0.05e-12)
    assert br.lines["adc_conversions"].energy_J == pytest.approx(3 * 1e-15 * 2 ** 7)
    assert br.lines["state_reads"].energy_J == pytest.approx(5 * 8.0e-12 * 16 / 64)
    assert "pixels_out" not in br.lines                   # a unit, not an operation
    assert br.total_J == pytest.approx(2e-9 + 0.35e-12 + 384e-15 + 10e-12)
    assert br.lines["seq_multiplies"].keys == ("mult_int16_pJ",)
    # digital mode: a MAC at mac_int8_pJ, an 8-bit weight read = 8/64 of a 64-bit read
    d = A.energy({"macs": 10, "weight_reads": 10, "dac_conversions": 4}, c, mode="digital")
    assert d.total_J == pytest.approx(10 * 0.3e-12 + 10 * 8.0e-12 / 8)


def test_crossbar_mac_energy_by_hand(consts):
    c = _with(consts, rram_g_min_uS=10.0, rram_g_max_uS=30.0, rram_v_read_mV=100.0,
              rram_read_ns=5.0, rram_input_v2_fraction_dimless=0.5)
    # 8-bit weights in base 16 need 2 slices (15 < 127 <= 255), 2 cells each
    assert A.slices(8, 16) == 2 and A.slices(8, 2) == 7
    per_cell = 20e-6 * 0.5 * 0.1 ** 2 * 5e-9
    br = A.energy({"macs": 100}, c, weight_bits=8, levels=16)
    assert br.total_J == pytest.approx(100 * 4 * per_cell)


def test_zero_counts_zero_energy(consts):
    br = A.energy({k: 0 for k in ("macs", "dac_conversions", "adc_conversions",
                                  "gaussian_samples", "state_reads", "seq_multiplies")}, consts)
    assert br.total_J == 0.0 and all(ln.energy_J == 0.0 for ln in br.lines.values())
    assert A.energy({}, consts).total_J == 0.0


def test_bad_counts_and_modes(consts):
    with pytest.raises(ValueError, match=r"counts\['macs'\] = -1"):
        A.energy({"macs": -1}, consts)
    with pytest.raises(ValueError, match=r"mode = 'quantum'.*analog.*digital"):
        A.energy({"macs": 1}, consts, mode="quantum")
    with pytest.raises(ValueError, match="fold_k"):
        A.energy({"gaussian_samples": 1}, consts, fold_k=0)
    with pytest.raises(ValueError, match=r"spec.tech = 'pcm'.*mtj.*rram"):
        A._levels(SimpleNamespace(tech="pcm"))


def test_doubling_the_array_doubles_the_area(consts):
    a1 = A.crossbar_area_um2(consts, blocks=10)
    a2 = A.crossbar_area_um2(consts, blocks=20)
    assert a2["total_um2"] == pytest.approx(2 * a1["total_um2"])
    f_um = consts["node_F_nm"].value * 1e-3
    assert a1["cells_um2"] == pytest.approx(10 * 16 * 16 * 4 * consts["rram_cell_area_F2"].value
                                            * f_um ** 2)
    m1 = A.mtj_array_area_um2(consts, rows=8, cols=8)
    m2 = A.mtj_array_area_um2(consts, rows=8, cols=16)
    assert m2["total_um2"] == pytest.approx(2 * m1["total_um2"])
    assert A.crossbar_area_um2(consts, blocks=0)["total_um2"] == 0.0
    with pytest.raises(ValueError, match="blocks"):
        A.crossbar_area_um2(consts, blocks=-1)


def test_image_energy_consistent_with_counts(program, consts):
    r = A.image_energy(program=program)
    c, br = r["counts"], r["breakdown"]
    assert r["raw_bits_per_sample"] == program.gauss.cbd_bits * 2
    assert br.total_J == pytest.approx(sum(ln.energy_J for ln in br.lines.values()))
    assert r["per_step_J"] * c["network_evals"] == pytest.approx(r["per_image_J"])
    assert r["per_gaussian_J"] * c["gaussian_samples"] == \
        pytest.approx(br.lines["gaussian_samples"].energy_J)
    # one Gaussian sample = cbd_bits x fold_k raw bits + the popcount
    raw = T.mtj_bit_energy(consts)["raw_J"]
    k = program.gauss.cbd_bits
    assert r["per_gaussian_J"] == pytest.approx(2 * k * raw + k / 8 * 0.03e-12)
    assert r["per_random_bit_J"] == pytest.approx(2 * raw)
    for op in ("macs", "dac_conversions", "adc_conversions"):
        assert br.lines[op].count == c[op]
    assert "weight_reads" not in br.lines                 # resident in the cells
    # the fold factor raises only the noise line
    r4 = A.image_energy(program=program, fold_k=4)
    assert r4["breakdown"].lines["macs"].energy_J == br.lines["macs"].energy_J
    assert r4["per_gaussian_J"] > r["per_gaussian_J"]
    dig = A.image_energy(program=program, mode="digital")
    assert "adc_conversions" not in dig["breakdown"].lines
    with pytest.raises(ValueError, match="node_nm"):
        A.image_energy(program=program, node_nm=7)


# -- MTJ TRNG and the figure of merit --------------------------------------------------------
def test_mtj_bit_energy_by_hand(consts):
    from model.devices.mtj import MTJParams
    p = MTJParams()                                       # 80 nm, RA 1000, t_MgO 1.4 nm
    c = _with(consts, mgo_eps_r_dimless=10.0, bitline_cap_fF_per_cell=0.5,
              bitline_cap_fixed_fF=1.0, mtj_sense_pJ=0.1, mtj_reset_mV=1000.0)
    cfg = T.MTJTrngConfig(v_pulse_mV=1000.0, t_pulse_ns=100.0, rows=4, fold_k=3)
    e = T.mtj_bit_energy(c, cfg, p)
    area = math.pi * 0.04 ** 2                            # um^2
    r_p = 1000.0 / area                                   # Ohm
    c_j = 8.8541878128e-12 * 10.0 * area * 1e-12 / 1.4e-9
    c_bl = (4 * 0.5 + 1.0) * 1e-15
    assert e["components_J"]["pulse_cap"] == pytest.approx((c_j + c_bl) * 1.0)
    assert e["components_J"]["pulse_res"] == pytest.approx(1.0 / r_p * 100e-9)
    assert e["components_J"]["reset_res"] == pytest.approx(1.0 / r_p * p.t_reset_ns * 1e-9)
    assert e["components_J"]["sense"] == pytest.approx(
        0.1e-12 + 0.01 / r_p * p.t_sense_ns * 1e-9 + c_bl * 0.01)
    assert e["bit_J"] == pytest.approx(3 * e["raw_J"])
    # the junction alone: ~0.3 fF for the 80 nm pillar (shared/PAPERS.md A, eps_r 9.8)
    assert T.junction_cap_F(consts, p) == pytest.approx(0.31e-15, rel=0.05)


def test_fom_by_hand_for_a_baseline(consts):
    r = T.compare(consts)
    b = r["baselines"]["trng_intel45"]
    assert b["fom_J_um2"] == pytest.approx(2.9e-12 * 4004)
    assert b["ratio"] == pytest.approx(2.9e-12 * 4004 / r["mtj"]["fom_J_um2"])
    assert r["mtj"]["fom_J_um2"] == pytest.approx(
        r["mtj"]["energy"]["bit_J"] * r["mtj"]["area"]["total_um2"])
    cpu = r["baselines"]["prng_cpu"]                      # 270 W / 40 cores x 1 ns / 64 bit
    assert cpu["E_bit_J"] == pytest.approx(270 / 40 * 1e-9 / 64)
    with pytest.raises(ValueError, match="e_bit_J"):
        T.fom(-1.0, 1.0)


def test_what_it_takes_reaches_the_target(consts):
    w = T.what_it_takes(consts)
    if w["t_pulse_ns_alone"] is not None:
        r = T.compare(consts, T.MTJTrngConfig(t_pulse_ns=w["t_pulse_ns_alone"]))
        assert r["baselines"][T.REFERENCE_BASELINE]["ratio"] == pytest.approx(1e3, rel=1e-9)
    with pytest.raises(ValueError, match="baseline = 'x'"):
        T.what_it_takes(consts, baseline="x")


def test_bad_trng_config():
    with pytest.raises(ValueError, match=r"MTJTrngConfig.v_pulse_mV = -1"):
        T.MTJTrngConfig(v_pulse_mV=-1)
    with pytest.raises(ValueError, match="MTJTrngConfig.fold_k"):
        T.MTJTrngConfig(fold_k=0)


# -- report API ------------------------------------------------------------------------------
def _check_figures(f):
    json.dumps(f)
    for k, v in f.items():
        assert {"value", "unit"} <= set(v), k
        assert ("source" in v) != ("definition" in v), k
        assert math.isfinite(v["value"]), k


def test_report_api(program, tmp_path):
    _check_figures(T.figures())
    _check_figures(A.figures())
    rows = T.fidelity_rows()
    assert len(rows) == 1
    assert set(rows[0]) == {"claim", "paper", "spindiff", "method", "sources"}
    assert all(isinstance(v, str) and v for v in rows[0].values())
    assert A.fidelity_rows() == []
    paths = T.plots(tmp_path) + A.plots(tmp_path)
    assert len(paths) == 4
    for p in paths:
        assert p.suffix == ".png" and p.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="node_nm"):
        T.figures(node_nm=3)
