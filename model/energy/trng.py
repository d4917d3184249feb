"""Energy per bit, area per bit source and the energy-per-bit-per-area figure of merit of the
VCMA-MTJ TRNG against CMOS TRNGs and CPU/GPU PRNGs (``docs/energy.md`` §4).

Per raw bit (one cell, one trial; ``docs/mtj-array.md``): a reset pulse, a stochastic pulse and
one sense. Each pulse charges the junction (C_j = ε0·εr·A/t_MgO) and the cell's bit line
(C_bl = rows·c_cell + c_fixed) to V, ``E_cap = (C_j + C_bl)·V²``, and drives the tunnel current
for its width, ``E_res = V²/R·t`` with R = R_P (the reset state; the lower resistance, so an
upper bound for the stochastic pulse). The sense costs the sense amplifier's decision, the read
current ``V_read²/R_P·t_sense`` and the bit-line charge ``C_bl·V_read²``. A conditioned output
bit is the XOR of ``fold_k`` raw bits: ``E_bit = fold_k·E_raw``.

Area of one bit source: the 1T-1MTJ cell (F² at the node) plus its share of the column
periphery (sense amplifier and pulse driver, one per column, shared by ``rows`` cells).

Figure of merit: ``FoM = E_bit × A_source`` in J·µm² per bit, lower is better
(``docs/energy.md`` §4 says why the product). Ratios are baseline FoM / MTJ FoM, as they come
out: no constant is tuned to reach the paper's ~10^3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from model.energy import constants as K

#: The seed claim (Cheng et al., arXiv 2407.12261; Nat. Commun. 16:5022, 2025).
PAPER_RATIO = 1e3
PAPER = ("Cheng et al., \"Voltage-controlled magnetoelectric devices for neuromorphic diffusion "
         "process\", arXiv 2407.12261 (2024); Nat. Commun. 16:5022 (2025)")
#: The baseline the headline ratio is quoted against (the widely cited on-die CMOS TRNG).
REFERENCE_BASELINE = "trng_intel45"


def _default_device():
    from model.devices.mtj import MTJParams
    return MTJParams()


def default_pulse_mV() -> float:
    """The array model's stochastic-pulse voltage: ``PulseDAC`` at ``ArrayConfig.code_init``
    (the calibration's start code, near the nominal cell's V50; ``model/devices/dac.py``)."""
    from model.blocks.config import ArrayConfig
    from model.devices.dac import PulseDAC
    return float(PulseDAC().code_to_mV(ArrayConfig().code_init))


def _pos(owner, name, v, hi=math.inf, integer=False):
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v > 0
    if integer:
        ok = ok and float(v) == int(v)
    if not ok or v > hi:
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{owner}.{name} = {v!r}: must be {kind} in (0, {hi}]")


@dataclass(frozen=True)
class MTJTrngConfig:
    """Operating point of the MTJ TRNG for the energy model.

    Attributes
    ----------
    v_pulse_mV:
        Stochastic pulse voltage; None = :func:`default_pulse_mV` (1093 mV).
    t_pulse_ns:
        Stochastic pulse width; None = ``MTJParams.t_pulse_ns`` (1000 ns, thermal regime).
    rows:
        Cells per bit line (``ArrayConfig.rows``, 8): sets C_bl and the periphery share.
    fold_k:
        Raw bits per conditioned output bit (XOR fold, default 2; ``docs/trng-readout.md``).
    """

    v_pulse_mV: float | None = None
    t_pulse_ns: float | None = None
    rows: int = 8
    fold_k: int = 2

    def __post_init__(self):
        o = "MTJTrngConfig"
        if self.v_pulse_mV is not None:
            _pos(o, "v_pulse_mV", self.v_pulse_mV, 5000.0)
        if self.t_pulse_ns is not None:
            _pos(o, "t_pulse_ns", self.t_pulse_ns, 1e9)
        _pos(o, "rows", self.rows, 4096, integer=True)
        _pos(o, "fold_k", self.fold_k, 64, integer=True)


def junction_cap_F(consts: dict, params=None) -> float:
    """C_j = ε0·εr·A/t_MgO of the junction, F (``MTJParams.area_m2``, ``t_mgo_nm``)."""
    p = params or _default_device()
    return K.EPS0_F_PER_M * consts["mgo_eps_r_dimless"].value * p.area_m2 / (p.t_mgo_nm * 1e-9)


def bitline_cap_F(consts: dict, rows: int) -> float:
    """C_bl = rows·c_cell + c_fixed, F."""
    return rows * K.si(consts, "bitline_cap_fF_per_cell") + K.si(consts, "bitline_cap_fixed_fF")


def mtj_bit_energy(consts: dict | None = None, cfg: MTJTrngConfig | None = None,
                   params=None) -> dict:
    """Energy per raw bit and per conditioned output bit of the MTJ TRNG.

    Parameters
    ----------
    consts:
        Constant table (default ``constants.table()``); validated.
    cfg:
        Operating point (default :class:`MTJTrngConfig`).
    params:
        ``model.devices.mtj.MTJParams`` (default the nominal device).

    Returns
    -------
    dict
        ``components_J`` (per raw bit: ``pulse_cap``, ``pulse_res``, ``reset_cap``,
        ``reset_res``, ``sense``), ``raw_J``, ``bit_J`` (= fold_k·raw_J), and the inputs used
        (``v_pulse_V``, ``t_pulse_s``, ``c_junction_F``, ``c_bitline_F``, ``r_p_ohm``).
    """
    consts = K.validate_table(K.table() if consts is None else consts)
    cfg = cfg or MTJTrngConfig()
    p = params or _default_device()
    v = (cfg.v_pulse_mV if cfg.v_pulse_mV is not None else default_pulse_mV()) * 1e-3
    t = (cfg.t_pulse_ns if cfg.t_pulse_ns is not None else p.t_pulse_ns) * 1e-9
    cj, cbl = junction_cap_F(consts, p), bitline_cap_F(consts, cfg.rows)
    r = p.r_p_ohm
    vr = K.si(consts, "mtj_reset_mV")
    vread = p.v_read_mV * 1e-3
    comp = {
        "pulse_cap": (cj + cbl) * v * v,
        "pulse_res": v * v / r * t,
        "reset_cap": (cj + cbl) * vr * vr,
        "reset_res": vr * vr / r * p.t_reset_ns * 1e-9,
        "sense": K.si(consts, "mtj_sense_pJ") + vread * vread / r * p.t_sense_ns * 1e-9
        + cbl * vread * vread,
    }
    raw = sum(comp.values())
    return {"components_J": comp, "raw_J": raw, "bit_J": cfg.fold_k * raw,
            "fold_k": cfg.fold_k, "v_pulse_V": v, "t_pulse_s": t, "c_junction_F": cj,
            "c_bitline_F": cbl, "r_p_ohm": r}


def mtj_source_area_um2(consts: dict | None = None, rows: int = 8) -> dict:
    """Area of one MTJ bit source: cell + (sense amp + pulse driver)/rows, µm²."""
    consts = K.validate_table(K.table() if consts is None else consts)
    _pos("mtj_source_area_um2", "rows", rows, 4096, integer=True)
    cell = K.area_um2_from_F2(consts, "mtj_cell_area_F2")
    peri = (consts["mtj_sense_amp_area_um2"].value
            + consts["mtj_pulse_driver_area_um2"].value) / rows
    return {"cell_um2": cell, "periphery_share_um2": peri, "total_um2": cell + peri}


def baselines(consts: dict | None = None) -> dict:
    """Energy per bit (J) and source area (µm²) of every baseline, with the keys used.

    CMOS TRNGs as published; a CPU PRNG as one core's share of the TDP over one core's
    xoshiro256++ rate, area one core; a GPU PRNG as board TDP over the device's rate, area the
    die. All "quoted, not measured".
    """
    c = K.validate_table(K.table() if consts is None else consts)
    cpu_w = c["cpu_tdp_W"].value / c["cpu_cores_dimless"].value
    return {
        "trng_intel45": {"label": "CMOS TRNG, Intel 45 nm (Mathew JSSC 2012)",
                         "E_bit_J": K.si(c, "trng_intel45_pJ_per_bit"),
                         "A_um2": c["trng_intel45_area_um2"].value,
                         "keys": ["trng_intel45_pJ_per_bit", "trng_intel45_area_um2"]},
        "trng_zhang130": {"label": "CMOS TRNG, latch 130 nm (Zhang JSSC 2022)",
                          "E_bit_J": K.si(c, "trng_zhang130_pJ_per_bit"),
                          "A_um2": c["trng_zhang130_area_um2"].value,
                          "keys": ["trng_zhang130_pJ_per_bit", "trng_zhang130_area_um2"]},
        "prng_cpu": {"label": "PRNG xoshiro256++ on a CPU core (quoted)",
                     "E_bit_J": cpu_w * K.si(c, "cpu_prng_per_64b_ns") / 64.0,
                     "A_um2": c["cpu_core_area_mm2"].value * 1e6,
                     "keys": ["cpu_tdp_W", "cpu_cores_dimless", "cpu_prng_per_64b_ns",
                              "cpu_core_area_mm2"]},
        "prng_gpu": {"label": "PRNG Philox on an H100 GPU (quoted)",
                     "E_bit_J": c["gpu_tdp_W"].value / c["gpu_prng_bit_per_s"].value,
                     "A_um2": c["gpu_die_area_mm2"].value * 1e6,
                     "keys": ["gpu_tdp_W", "gpu_prng_bit_per_s", "gpu_die_area_mm2"]},
    }


def fom(e_bit_J: float, a_um2: float) -> float:
    """FoM = E_bit × A_source, J·µm² per bit (lower is better)."""
    for n, v in (("e_bit_J", e_bit_J), ("a_um2", a_um2)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v < 0:
            raise ValueError(f"fom.{n} = {v!r}: must be a finite number in [0, inf)")
    return e_bit_J * a_um2


def compare(consts: dict | None = None, cfg: MTJTrngConfig | None = None, params=None) -> dict:
    """MTJ figures, every baseline's FoM and the ratio baseline FoM / MTJ FoM."""
    consts = K.validate_table(K.table() if consts is None else consts)
    cfg = cfg or MTJTrngConfig()
    e = mtj_bit_energy(consts, cfg, params)
    a = mtj_source_area_um2(consts, cfg.rows)
    f_mtj = fom(e["bit_J"], a["total_um2"])
    rows = {}
    for name, b in baselines(consts).items():
        fb = fom(b["E_bit_J"], b["A_um2"])
        rows[name] = dict(b, fom_J_um2=fb, ratio=fb / f_mtj,
                          energy_ratio=b["E_bit_J"] / e["bit_J"],
                          area_ratio=b["A_um2"] / a["total_um2"])
    return {"mtj": {"energy": e, "area": a, "fom_J_um2": f_mtj}, "baselines": rows}


def what_it_takes(consts: dict | None = None, cfg: MTJTrngConfig | None = None,
                  target: float = PAPER_RATIO, baseline: str = REFERENCE_BASELINE) -> dict:
    """What would bring the ratio against ``baseline`` to ``target``.

    Returns the factor the MTJ FoM must still shrink by (≤ 1: already there), the stochastic
    pulse width that alone would do it (None if the other terms already exceed the budget),
    and the source area that alone would do it at the present energy.
    """
    consts = K.validate_table(K.table() if consts is None else consts)
    cfg = cfg or MTJTrngConfig()
    r = compare(consts, cfg)
    if baseline not in r["baselines"]:
        raise ValueError(f"baseline = {baseline!r}: allowed {sorted(r['baselines'])}")
    b = r["baselines"][baseline]
    need = b["ratio"] and target / b["ratio"]
    fom_target = b["fom_J_um2"] / target
    e = r["mtj"]["energy"]
    area = r["mtj"]["area"]["total_um2"]
    e_budget = fom_target / area / e["fold_k"]
    rest = e["raw_J"] - e["components_J"]["pulse_res"]
    t_needed = None
    if e_budget > rest:
        t_needed = (e_budget - rest) / (e["v_pulse_V"] ** 2 / e["r_p_ohm"]) * 1e9
    return {"target": target, "baseline": baseline, "ratio_now": b["ratio"],
            "fom_shrink_factor": need, "t_pulse_ns_alone": t_needed,
            "area_um2_alone": fom_target / e["bit_J"],
            "non_pulse_raw_J": rest}


# -- report API (used by sim/report.py) ------------------------------------------------------
def _src(consts, keys):
    return "; ".join(f"{k}: {consts[k].source} [{consts[k].status}]" for k in keys)


def figures(node_nm=45) -> dict:
    """Every figure of this module as ``{value, unit, source}`` or ``{value, unit, definition}``
    (JSON-serialisable)."""
    consts = K.table(node_nm)
    cfg = MTJTrngConfig()
    r = compare(consts, cfg)
    m = r["mtj"]
    e = m["energy"]
    mtj_keys = ["mgo_eps_r_dimless", "bitline_cap_fF_per_cell", "bitline_cap_fixed_fF",
                "mtj_reset_mV", "mtj_sense_pJ"]
    out = {
        "mtj_v_pulse": {"value": e["v_pulse_V"] * 1e3, "unit": "mV", "definition":
                        "PulseDAC().code_to_mV(ArrayConfig().code_init) (model/devices/dac.py)"},
        "mtj_t_pulse": {"value": e["t_pulse_s"] * 1e9, "unit": "ns",
                        "source": "MTJParams.t_pulse_ns (ASSUMED there)"},
        "mtj_c_junction": {"value": e["c_junction_F"] * 1e15, "unit": "fF", "definition":
                           "eps0*eps_r*A/t_MgO; " + _src(consts, ["mgo_eps_r_dimless"])},
        "mtj_c_bitline": {"value": e["c_bitline_F"] * 1e15, "unit": "fF", "definition":
                          "rows*c_cell + c_fixed; " + _src(consts, mtj_keys[1:3])},
        "mtj_raw_bit_energy": {"value": e["raw_J"], "unit": "J", "definition":
                               "(C_j+C_bl)V^2 + V^2/R_P*t_pulse + reset (cap+res) + sense; "
                               + _src(consts, mtj_keys)},
        "mtj_bit_energy": {"value": e["bit_J"], "unit": "J/bit",
                           "definition": f"fold_k={e['fold_k']} x raw bit energy"},
        "mtj_source_area": {"value": m["area"]["total_um2"], "unit": "um^2", "definition":
                            "cell (F^2 x F^2) + (sense amp + pulse driver)/rows; "
                            + _src(consts, ["mtj_cell_area_F2", "mtj_sense_amp_area_um2",
                                            "mtj_pulse_driver_area_um2"])},
        "mtj_fom": {"value": m["fom_J_um2"], "unit": "J*um^2/bit",
                    "definition": "FoM = E_bit x A_source (docs/energy.md §4)"},
    }
    for k, v in e["components_J"].items():
        out[f"mtj_raw_bit_energy_{k}"] = {"value": v, "unit": "J",
                                          "definition": f"{k} part of the raw-bit energy"}
    for name, b in r["baselines"].items():
        src = _src(consts, b["keys"])
        out[f"{name}_bit_energy"] = {"value": b["E_bit_J"], "unit": "J/bit", "source": src}
        out[f"{name}_area"] = {"value": b["A_um2"], "unit": "um^2", "source": src}
        out[f"{name}_fom"] = {"value": b["fom_J_um2"], "unit": "J*um^2/bit",
                              "definition": "E_bit x A_source"}
        out[f"fom_ratio_{name}"] = {"value": b["ratio"], "unit": "1",
                                    "definition": f"FoM({name}) / FoM(MTJ)"}
    w = what_it_takes(consts, cfg)
    out["fom_ratio_shrink_needed"] = {
        "value": w["fom_shrink_factor"], "unit": "1",
        "definition": f"factor the MTJ FoM must shrink by to reach {PAPER_RATIO:g}x against "
                      f"{REFERENCE_BASELINE} (<= 1: reached)"}
    if w["t_pulse_ns_alone"] is not None:
        out["t_pulse_for_paper_ratio"] = {
            "value": w["t_pulse_ns_alone"], "unit": "ns",
            "definition": "stochastic pulse width that alone would give the paper's ratio"}
    return out


def fidelity_rows() -> list:
    """The fidelity-table row of the ~10^3 energy-per-bit-per-area claim."""
    consts = K.table()
    r = compare(consts)
    ref = r["baselines"][REFERENCE_BASELINE]
    others = ", ".join(f"{n}: {b['ratio']:.3g}x" for n, b in r["baselines"].items())
    w = what_it_takes(consts)
    take = (f"; to reach 1e3 vs {REFERENCE_BASELINE} the FoM must shrink "
            f"{w['fom_shrink_factor']:.3g}x"
            + (f" (e.g. a {w['t_pulse_ns_alone']:.3g} ns stochastic pulse)"
               if w["t_pulse_ns_alone"] is not None else "")
            if w["fom_shrink_factor"] > 1 else "")
    keys = ["mgo_eps_r_dimless", "bitline_cap_fF_per_cell", "mtj_sense_pJ", "mtj_reset_mV",
            "mtj_cell_area_F2", "mtj_sense_amp_area_um2", "mtj_pulse_driver_area_um2"]
    keys += [k for b in r["baselines"].values() for k in b["keys"]]
    assumed = sorted({k for k in keys if consts[k].status in ("assumed", "fitted")})
    return [{
        "claim": "~10^3 better energy-per-bit-per-area than traditional hardware (VCMA-MTJ TRNG)",
        "paper": f"~{PAPER_RATIO:g}x (no formula or baseline in the public text)",
        "spindiff": (f"{ref['ratio']:.3g}x vs {REFERENCE_BASELINE} "
                     f"(MTJ {r['mtj']['energy']['bit_J'] * 1e12:.3g} pJ/bit x "
                     f"{r['mtj']['area']['total_um2']:.3g} um^2); {others}{take}"),
        "method": ("FoM = E_bit x A_source (J*um^2/bit), E_bit = fold_k x (pulse C*V^2 + "
                   "V^2/R_P*t + reset + sense), A_source = 1T-1MTJ cell + periphery/rows; "
                   "ratio = FoM(baseline)/FoM(MTJ); no constant fitted"),
        "sources": (f"{PAPER}; baselines: " + "; ".join(
            f"{k}: {consts[k].source}" for k in ("trng_intel45_pJ_per_bit",
                                                 "trng_zhang130_pJ_per_bit"))
            + f"; assumed: {', '.join(assumed)}"),
    }]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plots(outdir) -> list:
    """FoM against the baselines (log scale) and its sensitivity to pulse voltage and width.

    Returns the written PNG paths (atomic writes)."""
    from model.io import atomic_savefig
    plt = _plt()
    outdir = Path(outdir)
    consts = K.table()
    r = compare(consts)
    paths = []

    names = ["mtj"] + list(r["baselines"])
    vals = [r["mtj"]["fom_J_um2"]] + [b["fom_J_um2"] for b in r["baselines"].values()]
    labels = ["VCMA-MTJ (this model)"] + [b["label"] for b in r["baselines"].values()]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.barh(range(len(names)), vals, color=["tab:red"] + ["tab:gray"] * (len(names) - 1))
    ax.set_xscale("log")
    ax.set_yticks(range(len(names)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(r["mtj"]["fom_J_um2"] * PAPER_RATIO, ls="--", color="k", lw=0.8,
               label="10^3 x MTJ")
    ax.set_xlabel("FoM = E_bit x A_source  [J·µm² per bit]  (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(atomic_savefig(fig, outdir / "trng_fom.png", dpi=110))
    plt.close(fig)

    import numpy as np
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.4))
    vs = np.linspace(500, 2000, 31)
    ts = np.logspace(0, 4, 41)
    for name, b in r["baselines"].items():
        rv = [b["fom_J_um2"] / compare(consts, MTJTrngConfig(v_pulse_mV=float(v)))["mtj"]
              ["fom_J_um2"] for v in vs]
        rt = [b["fom_J_um2"] / compare(consts, MTJTrngConfig(t_pulse_ns=float(t)))["mtj"]
              ["fom_J_um2"] for t in ts]
        axs[0].plot(vs, rv, label=name)
        axs[1].plot(ts, rt, label=name)
    for ax, xl in ((axs[0], "stochastic pulse voltage [mV]"),
                   (axs[1], "stochastic pulse width [ns]")):
        ax.set_yscale("log")
        ax.axhline(PAPER_RATIO, ls="--", color="k", lw=0.8)
        ax.set_xlabel(xl)
        ax.set_ylabel("FoM(baseline) / FoM(MTJ)")
    axs[1].set_xscale("log")
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(atomic_savefig(fig, outdir / "trng_sensitivity.png", dpi=110))
    plt.close(fig)
    return paths
