"""Constant tables of the energy model (``docs/energy.md`` §2).

Every entry is a :class:`Constant` with its unit in its key and a source (paper, survey,
datasheet) or a status saying it is derived, assumed or fitted. Nothing is computed here beyond
unit-consistent derivations that the ``source`` field spells out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STATUSES = ("sourced", "derived", "assumed", "fitted")


@dataclass(frozen=True)
class Constant:
    """One constant of the energy model.

    Attributes
    ----------
    value:
        The number, in ``unit``.
    unit:
        Unit string (``"pJ"``, ``"um^2"``, ``"F^2"``, ``"mW"``, ...); the table key ends with it.
    source:
        Citation (authors, venue, year, table or figure) or the derivation for a derived value.
    status:
        ``"sourced"``, ``"derived"``, ``"assumed"`` or ``"fitted"`` (chosen to reproduce a paper's
        figure; the note says which).
    note:
        Free text (e.g. "quoted, not measured").
    """

    value: float
    unit: str
    source: str
    status: str
    note: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"Constant.status = {self.status!r}: allowed {STATUSES}")
        if not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise ValueError(f"Constant.value = {self.value!r}: must be a finite number")
        if not self.unit:
            raise ValueError("Constant.unit = '': a unit is required")
        if not self.source:
            raise ValueError("Constant.source = '': a source or derivation is required")


# --- units ----------------------------------------------------------------------------------
#: Key suffix -> unit string. Every table key ends with one of these suffixes and its Constant
#: carries exactly that unit (checked by :func:`validate_table`). ``_dimless`` marks a pure number.
UNIT_SUFFIXES = {
    "_fJ_per_step": "fJ/conv-step",
    "_pJ_per_bit": "pJ/bit",
    "_fF_per_cell": "fF/cell",
    "_bit_per_s": "bit/s",
    "_dimless": "1",
    "_pJ": "pJ",
    "_fJ": "fJ",
    "_fF": "fF",
    "_nJ": "nJ",
    "_um2": "um^2",
    "_mm2": "mm^2",
    "_F2": "F^2",
    "_nm": "nm",
    "_ns": "ns",
    "_mV": "mV",
    "_uS": "uS",
    "_W": "W",
}

#: Multipliers to SI for the units above (J, m^2, m, s, V, S, W, bit/s, ...). F^2 has none: it
#: needs the node's F (:func:`area_um2_from_F2`).
TO_SI = {
    "fJ/conv-step": 1e-15, "pJ/bit": 1e-12, "fF/cell": 1e-15, "bit/s": 1.0, "1": 1.0,
    "pJ": 1e-12, "fJ": 1e-15, "nJ": 1e-9, "um^2": 1e-12, "mm^2": 1e-6, "nm": 1e-9, "ns": 1e-9,
    "mV": 1e-3, "fF": 1e-15, "uS": 1e-6, "W": 1.0,
}

#: Technology nodes with a digital table (Horowitz, ISSCC 2014, gives 45 nm only; no scaling
#: source has been adopted, so no other node is offered).
NODES = (45,)

#: Vacuum permittivity, F/m (CODATA 2018).
EPS0_F_PER_M = 8.8541878128e-12

_HOROWITZ = ("M. Horowitz, \"Computing's energy problem (and what we can do about it)\", "
             "ISSCC 2014 Dig. Tech. Papers, pp. 10-14, Fig. 1.1.9 (45 nm, 0.9 V)")
_HOROWITZ_CHECK = ("cross-checked against the widely copied table, e.g. gist V0XNIHILI/"
                   "2b6fa61edd4c06d9ffce5551065124c1 (int/fp add and mult, cache, DRAM)")


def unit_of_key(key: str) -> str:
    """The unit a table key's suffix names, or ``ValueError`` listing the allowed suffixes."""
    for suf in sorted(UNIT_SUFFIXES, key=len, reverse=True):
        if key.endswith(suf):
            return UNIT_SUFFIXES[suf]
    raise ValueError(f"constant key {key!r}: must end with a unit suffix, allowed "
                     f"{sorted(UNIT_SUFFIXES)}")


def validate_table(consts: dict) -> dict:
    """Check a table: every key names its unit, every value finite and > 0, units agree.

    Parameters
    ----------
    consts:
        ``dict[str, Constant]`` (a :func:`table` or an edited copy of one).

    Returns
    -------
    dict
        ``consts`` itself.

    Raises
    ------
    ValueError
        Naming the key, its value and the allowed range (values must be finite and > 0; an
        energy, area, time or power cannot be negative).
    """
    if not isinstance(consts, dict):
        raise ValueError(f"consts = {type(consts).__name__}: must be a dict[str, Constant]")
    for key, c in consts.items():
        if not isinstance(c, Constant):
            raise ValueError(f"consts[{key!r}] = {c!r}: must be a Constant")
        unit = unit_of_key(key)
        if c.unit != unit:
            raise ValueError(f"consts[{key!r}].unit = {c.unit!r}: the key's suffix says "
                             f"{unit!r}")
        if not math.isfinite(c.value) or not c.value > 0:
            raise ValueError(f"consts[{key!r}].value = {c.value!r} {c.unit}: out of range, "
                             f"allowed (0, inf) {c.unit}")
    return consts


def si(consts: dict, key: str) -> float:
    """Value of ``consts[key]`` in SI units (J, m^2, s, V, S, W, F/cell, ...)."""
    if key not in consts:
        raise ValueError(f"constant {key!r}: not in the table; allowed {sorted(consts)}")
    c = consts[key]
    if c.unit not in TO_SI:
        raise ValueError(f"constant {key!r}: unit {c.unit!r} has no SI factor; allowed "
                         f"{sorted(TO_SI)}")
    return c.value * TO_SI[c.unit]


def area_um2_from_F2(consts: dict, key: str) -> float:
    """Area of an F^2 entry in um^2 at the table's node: value x F^2."""
    c = consts[key]
    if c.unit != "F^2":
        raise ValueError(f"constant {key!r}: unit {c.unit!r}, expected 'F^2'")
    f_um = consts["node_F_nm"].value * 1e-3
    return c.value * f_um * f_um


def check_node(node_nm) -> int:
    """``node_nm`` if it is one of :data:`NODES`, else ``ValueError`` naming the allowed nodes."""
    if isinstance(node_nm, bool) or not isinstance(node_nm, (int, float)) \
            or node_nm not in NODES:
        raise ValueError(f"node_nm = {node_nm!r}: no table for this node, allowed {list(NODES)}")
    return int(node_nm)


def _c(value, unit, source, status, note=""):
    return Constant(float(value), unit, source, status, note)


def table(node_nm=45) -> dict:
    """The constant table of one technology node.

    Parameters
    ----------
    node_nm:
        Technology node in nm; one of :data:`NODES`.

    Returns
    -------
    dict[str, Constant]
        Keys end with their unit (``add_int8_pJ``, ``mtj_cell_area_F2``); see
        ``docs/energy.md`` §2. Statuses: ``sourced`` (a citation; "not verified here" in the
        note where the figure could not be re-read in this project), ``derived`` (the source
        spells out the arithmetic), ``assumed`` (with a range in the note). None is ``fitted``.

    Raises
    ------
    ValueError
        For a node with no table, naming ``node_nm`` and the allowed values.
    """
    check_node(node_nm)
    H, HC = _HOROWITZ, _HOROWITZ_CHECK
    t = {
        # --- node -------------------------------------------------------------------------
        "node_F_nm": _c(45, "nm", "the node of Horowitz's table (ISSCC 2014); F of every F^2 "
                        "area below", "sourced"),
        # --- digital, 45 nm (Horowitz, ISSCC 2014) -----------------------------------------
        "add_int8_pJ": _c(0.03, "pJ", H, "sourced", HC),
        "add_int16_pJ": _c(0.05, "pJ", H, "sourced", HC),
        "add_int32_pJ": _c(0.1, "pJ", H, "sourced", HC),
        "add_fp16_pJ": _c(0.4, "pJ", H, "sourced", HC),
        "add_fp32_pJ": _c(0.9, "pJ", H, "sourced", HC),
        "mult_int8_pJ": _c(0.2, "pJ", H, "sourced", HC),
        "mult_int32_pJ": _c(3.1, "pJ", H, "sourced", HC),
        "mult_fp16_pJ": _c(1.1, "pJ", H, "sourced", HC),
        "mult_fp32_pJ": _c(3.7, "pJ", H, "sourced", HC),
        "mac_int8_pJ": _c(0.2 + 0.1, "pJ", "mult_int8_pJ + add_int32_pJ (8x8 product into a "
                          "32-bit accumulator), Horowitz ISSCC 2014", "derived"),
        "mult_int16_pJ": _c(3.1 * (16 / 32) ** 2, "pJ", "mult_int32_pJ x (16/32)^2: array "
                            "multiplier energy ~ bits^2 (Horowitz ISSCC 2014 gives 8 and 32 bit "
                            "only; 0.2 x (16/8)^2 = 0.8 pJ from the 8-bit end)", "derived",
                            "between 0.8 and 0.78 pJ whichever end it is scaled from"),
        "sram_read_64b_8kB_pJ": _c(10, "pJ", H, "sourced", "64-bit read, 8 kB array. " + HC),
        "sram_read_64b_32kB_pJ": _c(20, "pJ", H, "sourced", "64-bit read, 32 kB array. " + HC),
        "sram_read_64b_1MB_pJ": _c(100, "pJ", H, "sourced", "64-bit read, 1 MB array. " + HC),
        "dram_read_64b_pJ": _c(1300, "pJ", H, "sourced", "64-bit DRAM access 1.3-2.6 nJ; the "
                               "low end is taken. " + HC),
        "dram_read_64b_max_pJ": _c(2600, "pJ", H, "sourced", "upper end of 1.3-2.6 nJ. " + HC),
        "add_int8_area_um2": _c(36, "um^2", H + ", area column", "sourced",
                                "not verified here (area column of the same figure)"),
        "mult_int8_area_um2": _c(282, "um^2", H + ", area column", "sourced",
                                 "not verified here (area column of the same figure)"),
        "reg_bit_pJ": _c(0.03 / 8 * 2, "pJ", "ASSUMED: one flip-flop write ~ 2x the per-bit "
                         "energy of an 8-bit add (0.03 pJ / 8), Horowitz ISSCC 2014 scale",
                         "assumed", "range 0.002-0.02 pJ"),
        # --- VCMA-MTJ cell and its periphery -----------------------------------------------
        "mgo_eps_r_dimless": _c(9.8, "1", "static relative permittivity of bulk MgO, ~9.8 "
                                "(CRC Handbook of Chemistry and Physics, permittivity table)",
                                "sourced", "not verified here; ultrathin (1-2 nm) barriers are "
                                "often quoted lower (~7-10); C ~ eps_r"),
        "bitline_cap_fF_per_cell": _c(0.2, "fF/cell", "ASSUMED: drain junction of "
                                               "the access transistor + one cell pitch of "
                                               "minimum-width bit line (~0.2 fF/um) at 45 nm",
                                               "assumed", "range 0.1-0.5 fF per cell"),
        "bitline_cap_fixed_fF": _c(5.0, "fF", "ASSUMED: column driver/DAC output, sense-amp "
                                   "input and the line to the periphery", "assumed",
                                   "range 2-20 fF"),
        "mtj_sense_pJ": _c(0.05, "pJ", "ASSUMED: latch/current-mode MRAM sense amplifier, one "
                           "decision; MRAM sense amps (e.g. Lee et al., IEEE Trans. Magn. 51(5), "
                           "2015, 65 nm PWSA) resolve in ns at tens of uW", "assumed",
                           "range 0.01-0.5 pJ per bit"),
        "mtj_reset_mV": _c(1500.0, "mV", "ASSUMED: reset pulse magnitude, opposite polarity, "
                           "within the 1.5-2 V VCMA write range (Amiri et al., IEEE Trans. "
                           "Magn. 2015, shared/PAPERS.md A)", "assumed", "range 1.0-2.0 V"),
        "mtj_cell_area_F2": _c(40.0, "F^2", "ASSUMED: 1T-1MTJ cell at 45 nm; a VCMA cell needs "
                               "a near-minimum access transistor (no STT write current); 9 F^2 "
                               "STT-MRAM cells were shown at IEDM 2016 (press material), "
                               "embedded STT-MRAM cells are ~50-100 F^2", "assumed",
                               "range 9-100 F^2"),
        "mtj_sense_amp_area_um2": _c(4.0, "um^2", "ASSUMED: latch sense amplifier (~12 "
                                     "transistors) at 45 nm, one per column", "assumed",
                                     "range 2-20 um^2"),
        "mtj_pulse_driver_area_um2": _c(20.0, "um^2", "ASSUMED: per-column pulse driver with an "
                                        "8-bit amplitude DAC (model.devices.dac.PulseDAC), "
                                        "one per column", "assumed", "range 5-100 um^2"),
        # --- crossbar (RRAM 1T1R) ----------------------------------------------------------
        "rram_g_min_uS": _c(1.0, "uS", "model.devices.crossbar.RRAM preset (ASSUMED there: HRS, "
                            "on/off 40)", "assumed", "as used by the crossbar model"),
        "rram_g_max_uS": _c(40.0, "uS", "Wan et al., Nature 608, 504 (2022) (NeuRRAM) via IBM "
                            "aihwkit ReRamWan2022NoiseModel g_max; model.devices.crossbar.RRAM",
                            "sourced"),
        "rram_v_read_mV": _c(200.0, "mV", "model.devices.crossbar.RRAM v_read_max_mV (ASSUMED "
                             "there: read-disturb-free range of 1T1R RRAM)", "assumed",
                             "range 100-300 mV"),
        "rram_read_ns": _c(10.0, "ns", "ASSUMED: row read pulse / column integration window of "
                           "one tile MVM", "assumed", "range 2-100 ns"),
        "rram_input_v2_fraction_dimless": _c(0.25, "1", "ASSUMED: mean (V/V_read)^2 over the "
                                             "input codes (signed 8-bit inputs, |x| ~ half scale "
                                             "on average)", "assumed", "range 0.05-1"),
        "rram_cell_area_F2": _c(30.0, "F^2", "ASSUMED: 1T1R RRAM cell (the access transistor "
                                "sets it); compute-in-memory 1T1R macros report ~20-60 F^2",
                                "assumed", "range 12-60 F^2"),
        "dac_conv_pJ": _c(0.05, "pJ", "ASSUMED: one 8-bit row-input conversion (capacitive or "
                          "pulse-width DAC driving one word line of a 16-row tile)", "assumed",
                          "range 0.01-0.5 pJ"),
        "adc_fom_fJ_per_step": _c(4.4, "fJ/conv-step", "Walden FoM P/(2^ENOB f_s) = 4.4 fJ, "
                                  "van Elzakker et al. (10-bit SAR, ISSCC 2008), the record as "
                                  "stated by B. E. Jonsson's ADC survey posts (converterpassion."
                                  "wordpress.com, 2011-2012); the Murmann ADC survey "
                                  "(web.stanford.edu/~murmann/adcsurvey.html) shows the same "
                                  "frontier", "sourced",
                                  "optimistic: a state-of-the-art SAR; column ADCs in CIM "
                                  "macros are often 10-100x worse. E_conv = FoM x 2^ENOB"),
        "adc_enob_loss_dimless": _c(0.5, "1", "ASSUMED: ENOB = adc_bits - 0.5", "assumed",
                                    "range 0.3-1.5 bit"),
        "adc_area_um2": _c(500.0, "um^2", "ASSUMED: one 8-bit SAR ADC at 45 nm, shared by the "
                           "columns of a tile", "assumed", "range 200-3000 um^2"),
        # --- baselines: CMOS TRNGs (quoted, not measured) ----------------------------------
        "trng_intel45_pJ_per_bit": _c(2.9, "pJ/bit", "S. K. Mathew et al., \"2.4 Gbps, 7 mW "
                                      "all-digital PVT-variation tolerant true random number "
                                      "generator for 45 nm CMOS high-performance "
                                      "microprocessors\", IEEE JSSC 47(11), 2012, abstract "
                                      "(2.4 Gbps, 7 mW at 1.1 V)", "sourced",
                                      "quoted, not measured"),
        "trng_intel45_area_um2": _c(4004, "um^2", "Mathew et al., IEEE JSSC 47(11), 2012, "
                                    "abstract (dense layout 4004 um^2)", "sourced",
                                    "quoted, not measured; includes its calibration loops"),
        "trng_intel45_bit_per_s": _c(2.4e9, "bit/s", "Mathew et al., IEEE JSSC 2012", "sourced",
                                     "quoted, not measured"),
        "trng_zhang130_pJ_per_bit": _c(0.186, "pJ/bit", "R. Zhang, X. Wang, K. Liu, "
                                       "H. Shinohara, \"A 0.186-pJ per bit latch-based true "
                                       "random number generator featuring mismatch compensation "
                                       "and random noise enhancement\", IEEE JSSC 57(8), 2022, "
                                       "abstract (130 nm, 0.3 V)", "sourced",
                                       "quoted, not measured"),
        "trng_zhang130_area_um2": _c(661, "um^2", "Zhang et al., IEEE JSSC 57(8), 2022: core "
                                     "(4 entropy sources + XOR) 661 um^2; total with the VN8W "
                                     "post-processor 5561 um^2", "sourced", "quoted, not "
                                     "measured; the core area is used, as for the MTJ cell"),
        "trng_zhang130_total_area_um2": _c(5561, "um^2", "Zhang et al., IEEE JSSC 57(8), 2022",
                                           "sourced", "quoted, not measured"),
        # --- baselines: PRNG on a CPU and a GPU (quoted, not measured) ---------------------
        "cpu_tdp_W": _c(270.0, "W", "Intel Xeon Platinum 8380 (Ice Lake-SP, 40 cores), TDP "
                        "270 W, Intel ARK datasheet", "sourced",
                        "quoted, not measured; not verified here"),
        "cpu_cores_dimless": _c(40, "1", "Intel Xeon Platinum 8380, 40 cores, Intel ARK",
                                "sourced", "quoted, not measured; not verified here"),
        "cpu_prng_per_64b_ns": _c(1.0, "ns", "xoshiro256++: \"sub-ns\" per 64-bit output on "
                                     "one core (Blackman & Vigna, prng.di.unimi.it; Boost.Random "
                                     "xoshiro256pp documentation); 1 ns taken as the bound",
                                     "sourced", "quoted, not measured; upper bound of sub-ns"),
        "cpu_core_area_mm2": _c(10.0, "mm^2", "ASSUMED: one server core with its share of "
                                "cache/uncore", "assumed", "range 3-20 mm^2"),
        "gpu_tdp_W": _c(700.0, "W", "NVIDIA H100 SXM5 datasheet, max thermal design power "
                        "700 W", "sourced", "quoted, not measured"),
        "gpu_die_area_mm2": _c(814.0, "mm^2", "NVIDIA H100 (GH100) die 814 mm^2, NVIDIA H100 "
                               "Tensor Core GPU Architecture whitepaper (2022)", "sourced",
                               "quoted, not measured"),
        "gpu_prng_bit_per_s": _c(8.6e13, "bit/s", "derived: H100 SXM ~33.5 TOPS INT32 "
                                 "(datasheet) / ~50 integer ops per Philox4x32-10 output of "
                                 "128 bits (10 rounds x (2 mul + 3 xor/add)); ASSUMED op count, "
                                 "no published H100 cuRAND throughput found", "assumed",
                                 "quoted peak, not measured; memory-bound cuRAND host API "
                                 "runs are slower (<= 3.35 TB/s HBM3 = 2.7e13 bit/s)"),
    }
    return validate_table(t)
