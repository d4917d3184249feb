"""Activity-based energy accounting and the area of the design (``docs/energy.md`` §3).

The hardware-mode twin counts what it does per image (``HardwareProgram.counts``,
``docs/hardware-mode.md`` §6); :func:`energy` multiplies each count by one per-operation energy
from the constant table (:func:`op_energies`) and returns a :class:`Breakdown`. Per-operation
mapping (mode ``"analog"``, the crossbar design):

==========================  ==================================================================
counter                     energy per operation
==========================  ==================================================================
``macs``                    2·S cells read: 2·S·G_mean·(f·V_read²)·t_read (S slices)
``dac_conversions``         ``dac_conv_pJ``
``adc_conversions``         Walden: ``adc_fom_fJ_per_step``·2^(adc_bits − ENOB loss)
``gaussian_samples``        raw MTJ bits (cbd_bits × fold_k) × raw-bit energy (trng.py)
                            + a cbd_bits popcount (cbd_bits/8 int8 adds)
``bias_reads`` ...          16-bit words from an 8 kB SRAM: ``sram_read_64b_8kB_pJ``·16/64
``seq_multiplies``          ``mult_int16_pJ``
==========================  ==================================================================

``weight_reads`` cost nothing in the analog design (weights stay in the cells); mode
``"digital"`` instead prices a digital accelerator at the same node: ``macs`` at ``mac_int8_pJ``,
``weight_reads`` as 8-bit words from an 8 kB SRAM, no DAC/ADC. Counters with no energy
(``network_evals``, ``tile_mvms``, ``macs_logical``, ``pixels_out``) are units, not operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from model.energy import constants as K
from model.energy import trng as T

MODES = ("analog", "digital")
#: Counters that are units (per-unit divisors), never priced.
UNIT_COUNTERS = ("network_evals", "tile_mvms", "macs_logical", "pixels_out")
#: Word width of the sequencer/table memories, bits (X state, C1/C2/SG, biases: 16-bit).
WORD16_BITS = 16


@dataclass(frozen=True)
class Line:
    """One operation of a breakdown."""

    count: int
    energy_per_op_J: float
    energy_J: float
    keys: tuple


@dataclass(frozen=True)
class Breakdown:
    """Energy per operation: ``lines[op] = Line(count, energy_per_op_J, energy_J, keys)``."""

    lines: dict = field(default_factory=dict)

    @property
    def total_J(self) -> float:
        return float(sum(ln.energy_J for ln in self.lines.values()))

    def energy_of(self, *ops) -> float:
        """Sum of the energies of ``ops`` (absent ones count 0)."""
        return float(sum(self.lines[o].energy_J for o in ops if o in self.lines))

    def to_dict(self) -> dict:
        return {op: {"count": ln.count, "energy_per_op_J": ln.energy_per_op_J,
                     "energy_J": ln.energy_J, "keys": list(ln.keys)}
                for op, ln in self.lines.items()} | {"total_J": self.total_J}


def _int(owner, name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{owner}.{name} = {v!r}: must be an integer in [{lo}, {hi}]")
    return v


def slices(weight_bits: int, levels: int) -> int:
    """S: base-``levels`` digits of a ``weight_bits`` weight (docs/crossbar-device.md §1)."""
    m = (1 << (weight_bits - 1)) - 1
    s = 1
    while levels ** s - 1 < m:
        s += 1
    return s


def op_energies(consts: dict, *, mode: str = "analog", weight_bits: int = 8, adc_bits: int = 8,
                levels: int = 16, cbd_bits: int = 32, fold_k: int = 2,
                trng_cfg=None) -> dict:
    """Energy per operation, J, and the constant keys behind it: ``{counter: (J, keys)}``.

    Raises
    ------
    ValueError
        Unknown ``mode`` (naming the allowed ones), bad bit widths, or a bad table.
    """
    o = "op_energies"
    K.validate_table(consts)
    if mode not in MODES:
        raise ValueError(f"{o}.mode = {mode!r}: allowed {list(MODES)}")
    _int(o, "weight_bits", weight_bits, 2, 16)
    _int(o, "adc_bits", adc_bits, 2, 32)
    _int(o, "levels", levels, 2, 1 << 16)
    _int(o, "cbd_bits", cbd_bits, 2, 64)
    _int(o, "fold_k", fold_k, 1, 64)
    sram16 = K.si(consts, "sram_read_64b_8kB_pJ") * WORD16_BITS / 64
    sram_key = ("sram_read_64b_8kB_pJ",)
    raw = T.mtj_bit_energy(consts, trng_cfg or T.MTJTrngConfig(fold_k=fold_k))["raw_J"]
    trng_keys = ("mgo_eps_r_dimless", "bitline_cap_fF_per_cell", "bitline_cap_fixed_fF",
                 "mtj_reset_mV", "mtj_sense_pJ", "add_int8_pJ")
    e = {
        "gaussian_samples": (cbd_bits * fold_k * raw + cbd_bits / 8 * K.si(consts, "add_int8_pJ"),
                             trng_keys),
        "bias_reads": (sram16, sram_key),
        "lut_reads": (sram16, sram_key),
        "schedule_table_reads": (sram16, sram_key),
        "temb_table_reads": (sram16, sram_key),
        "state_reads": (sram16, sram_key),
        "state_writes": (sram16, sram_key),
        "seq_multiplies": (K.si(consts, "mult_int16_pJ"), ("mult_int16_pJ",)),
    }
    if mode == "analog":
        g_mean = 0.5 * (K.si(consts, "rram_g_min_uS") + K.si(consts, "rram_g_max_uS"))
        v = K.si(consts, "rram_v_read_mV")
        cell = g_mean * consts["rram_input_v2_fraction_dimless"].value * v * v \
            * K.si(consts, "rram_read_ns")
        enob = adc_bits - consts["adc_enob_loss_dimless"].value
        e["macs"] = (2 * slices(weight_bits, levels) * cell,
                     ("rram_g_min_uS", "rram_g_max_uS", "rram_v_read_mV", "rram_read_ns",
                      "rram_input_v2_fraction_dimless"))
        e["dac_conversions"] = (K.si(consts, "dac_conv_pJ"), ("dac_conv_pJ",))
        e["adc_conversions"] = (K.si(consts, "adc_fom_fJ_per_step") * 2.0 ** enob,
                                ("adc_fom_fJ_per_step", "adc_enob_loss_dimless"))
    else:
        e["macs"] = (K.si(consts, "mac_int8_pJ"), ("mac_int8_pJ",))
        e["weight_reads"] = (K.si(consts, "sram_read_64b_8kB_pJ") * weight_bits / 64, sram_key)
    return e


def energy(counts: dict, consts: dict, **kw) -> Breakdown:
    """Multiply counts by per-operation energies.

    Parameters
    ----------
    counts:
        ``{counter: count}`` (``HardwareProgram.counts`` or any subset); counts must be integers
        >= 0. Counters with no energy in this mode are skipped (see the module docstring).
    consts:
        Constant table (``constants.table(node_nm)``); validated (a negative energy raises).
    **kw:
        Passed to :func:`op_energies` (``mode``, ``weight_bits``, ``adc_bits``, ``levels``,
        ``cbd_bits``, ``fold_k``, ``trng_cfg``).

    Returns
    -------
    Breakdown
    """
    if not isinstance(counts, dict):
        raise ValueError(f"energy.counts = {type(counts).__name__}: must be a dict")
    per = op_energies(consts, **kw)
    lines = {}
    for op, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, (int,)) and not (
                isinstance(n, float) and n.is_integer()) or n < 0:
            raise ValueError(f"energy.counts[{op!r}] = {n!r}: must be an integer >= 0")
        if op in per:
            j, keys = per[op]
            lines[op] = Line(int(n), j, int(n) * j, tuple(keys))
    return Breakdown(lines)


# -- area -------------------------------------------------------------------------------------
def crossbar_area_um2(consts: dict, blocks: int, rows: int = 16, cols: int = 16,
                      weight_bits: int = 8, levels: int = 16) -> dict:
    """Area of the crossbar: ``blocks`` resident R×C tiles of 2·S 1T1R cells per weight, plus
    one ADC per tile."""
    o = "crossbar_area_um2"
    K.validate_table(consts)
    _int(o, "blocks", blocks, 0, 1 << 30)
    _int(o, "rows", rows, 1, 4096)
    _int(o, "cols", cols, 1, 4096)
    cells = blocks * rows * cols * 2 * slices(weight_bits, levels)
    cell_a = cells * K.area_um2_from_F2(consts, "rram_cell_area_F2")
    adc_a = blocks * consts["adc_area_um2"].value
    return {"cells": cells, "cells_um2": cell_a, "adc_um2": adc_a, "total_um2": cell_a + adc_a}


def mtj_array_area_um2(consts: dict, rows: int = 8, cols: int = 8) -> dict:
    """Area of the MTJ array: rows×cols 1T-1MTJ cells, a sense amp and a driver per column."""
    o = "mtj_array_area_um2"
    K.validate_table(consts)
    _int(o, "rows", rows, 1, 4096)
    _int(o, "cols", cols, 1, 4096)
    cell_a = rows * cols * K.area_um2_from_F2(consts, "mtj_cell_area_F2")
    peri = cols * (consts["mtj_sense_amp_area_um2"].value
                   + consts["mtj_pulse_driver_area_um2"].value)
    return {"cells": rows * cols, "cells_um2": cell_a, "periphery_um2": peri,
            "total_um2": cell_a + peri}


# -- per image --------------------------------------------------------------------------------
def load_program(checkpoint=None):
    """``HardwareProgram.from_checkpoint`` of ``checkpoint`` (default ``default_checkpoint()``)."""
    import torch
    from model.diffusion.hardware import HardwareProgram, default_checkpoint
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return HardwareProgram.from_checkpoint(checkpoint or default_checkpoint())
    finally:
        torch.set_num_threads(prev)


def _program_blocks(program, rows=None, cols=None) -> int:
    t = program.engine.cfg.tile
    r, c = rows or t.rows, cols or t.cols
    return sum(math.ceil(d.in_dim / r) * math.ceil(d.out_dim / c) for d in program.engine.layers)


def image_energy(checkpoint=None, sampler: str = "ddpm", steps=None, node_nm=45, *,
                 program=None, fold_k: int = 2, mode: str = "analog", consts=None) -> dict:
    """Energy per image of the hardware-mode design and its per-unit figures.

    Parameters
    ----------
    checkpoint:
        Checkpoint path (default ``default_checkpoint()``); ignored when ``program`` is given.
    sampler, steps:
        Passed to ``HardwareProgram.counts``.
    node_nm:
        Technology node of the constant table (:data:`constants.NODES`).
    program:
        A ready ``HardwareProgram`` (saves the few seconds of ``from_checkpoint``).
    fold_k:
        XOR-fold factor of the TRNG (raw bits per output bit).
    mode:
        ``"analog"`` (crossbar) or ``"digital"`` (digital MACs, weights from SRAM).
    consts:
        Constant table overriding ``node_nm``'s.

    Returns
    -------
    dict
        ``breakdown`` (:class:`Breakdown`), ``counts``, ``per_image_J``, ``per_step_J``,
        ``per_mvm_J`` (MACs + DAC + ADC + weight reads per tile MVM), ``per_gaussian_J``,
        ``per_random_bit_J`` (conditioned bit), ``raw_bits_per_sample``, ``area`` (crossbar,
        MTJ array, total µm²).
    """
    consts = K.validate_table(consts if consts is not None else K.table(node_nm))
    program = program or load_program(checkpoint)
    counts = program.counts(sampler, steps)
    sp, g = program.spec, program.gauss
    kw = dict(mode=mode, weight_bits=sp.weight_bits, adc_bits=sp.adc_bits or 8,
              levels=_levels(sp), cbd_bits=g.cbd_bits, fold_k=fold_k)
    br = energy(counts, consts, **kw)
    mvm_ops = ("macs", "dac_conversions", "adc_conversions", "weight_reads")
    t = program.engine.cfg.tile
    xb = crossbar_area_um2(consts, _program_blocks(program), t.rows, t.cols, sp.weight_bits,
                           _levels(sp))
    mtj = mtj_array_area_um2(consts)
    bit = T.mtj_bit_energy(consts, T.MTJTrngConfig(fold_k=fold_k))
    return {
        "breakdown": br, "counts": counts, "sampler": sampler, "steps": counts["network_evals"],
        "mode": mode, "node_nm": consts["node_F_nm"].value, "fold_k": fold_k,
        "per_image_J": br.total_J,
        "per_step_J": br.total_J / max(1, counts["network_evals"]),
        "per_mvm_J": br.energy_of(*mvm_ops) / max(1, counts["tile_mvms"]),
        "per_gaussian_J": br.energy_of("gaussian_samples") / max(1, counts["gaussian_samples"]),
        "per_random_bit_J": bit["bit_J"],
        "raw_bits_per_sample": g.cbd_bits * fold_k,
        "area": {"crossbar": xb, "mtj_array": mtj,
                 "total_um2": xb["total_um2"] + mtj["total_um2"]},
    }


def _levels(spec) -> int:
    from model.devices.crossbar import PRESETS
    tech = getattr(spec, "tech", "rram")
    if tech not in PRESETS:
        raise ValueError(f"spec.tech = {tech!r}: allowed {sorted(PRESETS)}")
    return PRESETS[tech].levels


# -- report API (used by sim/report.py) ------------------------------------------------------
_PROGRAM_CACHE: dict = {}


def _cached_program():
    if "p" not in _PROGRAM_CACHE:
        _PROGRAM_CACHE["p"] = load_program()
    return _PROGRAM_CACHE["p"]


def figures(node_nm=45) -> dict:
    """Energy per image, its breakdown and per-unit figures, and the design's area, each as
    ``{value, unit, definition}`` (JSON-serialisable)."""
    consts = K.table(node_nm)
    r = image_energy(node_nm=node_nm, program=_cached_program())
    d = f"hardware-mode counts ({r['sampler']}, {r['steps']} steps) x per-op energies, " \
        f"model/energy/accounting.py; node {node_nm} nm"
    out = {
        "energy_per_image": {"value": r["per_image_J"], "unit": "J", "definition": d},
        "energy_per_step": {"value": r["per_step_J"], "unit": "J",
                            "definition": "energy per image / network evaluations"},
        "energy_per_mvm": {"value": r["per_mvm_J"], "unit": "J", "definition":
                           "(MACs + DAC + ADC) energy / tile MVMs (16x16)"},
        "energy_per_gaussian_sample": {"value": r["per_gaussian_J"], "unit": "J", "definition":
                                       f"{r['raw_bits_per_sample']} raw MTJ bits (cbd_bits x "
                                       f"fold_k) + popcount"},
        "energy_per_random_bit": {"value": r["per_random_bit_J"], "unit": "J/bit",
                                  "definition": "conditioned MTJ bit (model/energy/trng.py)"},
        "area_crossbar": {"value": r["area"]["crossbar"]["total_um2"], "unit": "um^2",
                          "definition": "blocks x R x C x 2S 1T1R cells + one ADC per tile; "
                          + consts["rram_cell_area_F2"].source},
        "area_mtj_array": {"value": r["area"]["mtj_array"]["total_um2"], "unit": "um^2",
                           "definition": "8x8 1T-1MTJ cells + per-column sense amp and driver"},
        "area_total": {"value": r["area"]["total_um2"], "unit": "um^2",
                       "definition": "crossbar + MTJ array (digital control not included)"},
    }
    for op, ln in r["breakdown"].lines.items():
        out[f"energy_per_image_{op}"] = {
            "value": ln.energy_J, "unit": "J",
            "definition": f"{ln.count} x {ln.energy_per_op_J:.4g} J; constants "
                          + ", ".join(f"{k} [{consts[k].status}]" for k in ln.keys)}
    dig = image_energy(node_nm=node_nm, program=_cached_program(), mode="digital")
    out["energy_per_image_digital"] = {
        "value": dig["per_image_J"], "unit": "J",
        "definition": "same counts, digital int8 MACs with weights from 8 kB SRAM (Horowitz 45 nm)"}
    return out


def fidelity_rows() -> list:
    """No seed claim is about energy per image; the rows live in ``model/energy/trng.py``."""
    return []


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


#: F of the node sweep, nm. Only 45 nm has a sourced table; the sweep scales it (ASSUMED).
SWEEP_NODES_NM = (22, 28, 45, 65, 90, 130, 180)


def scaled_table(f_nm: float) -> dict:
    """The 45 nm table with ASSUMED scaling to F = ``f_nm`` for the node sweep only: digital and
    SRAM energies and the bit-line capacitance ∝ F (C·V² at fixed V), F² areas ∝ F² through
    ``node_F_nm``, µm² periphery areas ∝ F²; device (MTJ, RRAM, ADC FoM) figures unchanged."""
    if isinstance(f_nm, bool) or not isinstance(f_nm, (int, float)) or not 1 <= f_nm <= 1000:
        raise ValueError(f"scaled_table.f_nm = {f_nm!r}: must be a number in [1, 1000] nm")
    base = K.table(45)
    s = f_nm / 45.0
    out = {}
    for k, c in base.items():
        v = c.value
        if k == "node_F_nm":
            v = float(f_nm)
        elif k.endswith("_pJ") and not k.startswith(("mtj_", "dac_", "dram_")) \
                or k.startswith("bitline_cap"):
            v *= s
        elif k.endswith("_um2") and not k.startswith(("trng_",)):
            v *= s * s
        out[k] = K.Constant(v, c.unit, c.source, "derived" if v != c.value else c.status,
                            (c.note + "; " if c.note else "") + "ASSUMED node scaling"
                            if v != c.value else c.note)
    return K.validate_table(out)


def plots(outdir) -> list:
    """Energy breakdown per image, and sensitivity to node and tile (array) size."""
    from model.io import atomic_savefig
    plt = _plt()
    outdir = Path(outdir)
    prog = _cached_program()
    r = image_energy(program=prog)
    paths = []

    lines = sorted(r["breakdown"].lines.items(), key=lambda kv: -kv[1].energy_J)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.barh([op for op, _ in lines], [ln.energy_J * 1e6 for _, ln in lines], color="tab:blue")
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(f"energy per image [µJ]  (total {r['per_image_J'] * 1e6:.3g} µJ, "
                  f"{r['sampler']} {r['steps']} steps, 45 nm)")
    fig.tight_layout()
    paths.append(atomic_savefig(fig, outdir / "energy_breakdown.png", dpi=110))
    plt.close(fig)

    fig, axs = plt.subplots(1, 2, figsize=(9, 3.4))
    e_n, a_n = [], []
    for f in SWEEP_NODES_NM:
        rr = image_energy(program=prog, consts=scaled_table(f))
        e_n.append(rr["per_image_J"] * 1e6)
        a_n.append(rr["area"]["total_um2"] * 1e-6)
    axs[0].plot(SWEEP_NODES_NM, e_n, "o-", label="energy / image [µJ]")
    axs[0].plot(SWEEP_NODES_NM, a_n, "s-", label="area [mm²]")
    axs[0].set_xscale("log")
    axs[0].set_yscale("log")
    axs[0].set_xlabel("node F [nm] (ASSUMED scaling from the 45 nm table)")
    axs[0].legend(fontsize=7)
    sizes = (8, 16, 32, 64)
    e_s, a_s = [], []
    consts = K.table()
    for n in sizes:
        b = _program_blocks(prog, n, n)
        steps = r["steps"]
        c = dict(r["counts"], tile_mvms=steps * b, macs=steps * b * n * n,
                 dac_conversions=steps * b * n, adc_conversions=steps * b * n)
        br = energy(c, consts, weight_bits=prog.spec.weight_bits,
                    adc_bits=prog.spec.adc_bits or 8, levels=_levels(prog.spec),
                    cbd_bits=prog.gauss.cbd_bits)
        e_s.append(br.total_J * 1e6)
        a_s.append((crossbar_area_um2(consts, b, n, n)["total_um2"]
                    + mtj_array_area_um2(consts)["total_um2"]) * 1e-6)
    axs[1].plot(sizes, e_s, "o-", label="energy / image [µJ]")
    axs[1].plot(sizes, a_s, "s-", label="area [mm²]")
    axs[1].set_xscale("log", base=2)
    axs[1].set_yscale("log")
    axs[1].set_xlabel("crossbar tile size R = C")
    axs[1].legend(fontsize=7)
    fig.tight_layout()
    paths.append(atomic_savefig(fig, outdir / "energy_sensitivity.png", dpi=110))
    plt.close(fig)
    return paths
