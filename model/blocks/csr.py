"""Control/status registers of the MTJ TRNG, defined once.

The RTL register bank (``hw/csr.py``), the tests and the generated documentation (``make regs``:
``build/regs/regs.md``, ``regs.json``, ``regs.h``) all read this table. Addresses are byte
addresses of 32-bit registers.

Bus (``hw/csr.py``, ``CSRBusSignature``): ``addr`` (8 bits), ``w_stb``, ``w_data`` (32), ``r_data``
(32). A write takes effect at the clock edge where ``w_stb`` is high. ``r_data`` shows the
register addressed two cycles earlier (read latency 2, ``hw.csr.CSR_READ_LATENCY``).

``CELL_SEL_SETTLE_CYCLES``: cycles after a CELL_SEL or CELL_OFFSET write before CELL_CODE,
CELL_ALARM and CELL_OFFSET read back the new cell (the per-cell reads are pipelined).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

ID_VALUE = 0x53504446  # ASCII "SPDF"
CELL_SEL_SETTLE_CYCLES = 4


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    doc: str


@dataclass(frozen=True)
class Reg:
    name: str
    addr: int
    access: str  # "ro", "rw"
    doc: str
    fields: tuple[Field, ...] = ()
    reset: int | None = None  # None: depends on parameters (documented in doc)


REGS: tuple[Reg, ...] = (
    Reg("ID", 0x00, "ro", "Identification, ASCII 'SPDF'.", reset=ID_VALUE),
    Reg("GEOMETRY", 0x04, "ro", "Array size.",
        (Field("rows", 0, 16, "rows N"), Field("cols", 16, 16, "columns M"))),
    Reg("CTRL", 0x08, "rw", "Control. Strobe bits act on write and read back as 0.",
        (Field("enable", 0, 1, "run the array (rows are sensed continuously)"),
         Field("cal_enable", 1, 1, "per-cell bias calibration updates codes"),
         Field("reseed", 2, 1, "strobe: reload the emulator generators from SEED, then warm up"),
         Field("clear_alarms", 3, 1, "strobe: clear every cell's sticky alarm")),
        reset=0b0010),
    Reg("STATUS", 0x0C, "ro", "Status.",
        (Field("running", 0, 1, "a row operation is in progress"),
         Field("array_ready", 1, 1, "the array (emulator: generators warmed up) is ready"),
         Field("alarm_any", 2, 1, "some cell's code saturated (sticky, see CELL_ALARM)"))),
    Reg("SEED", 0x10, "rw", "Emulator seed, used at the next CTRL.reseed (reset value: "
        "EmulatorConfig.seed)."),
    Reg("CELL_SEL", 0x14, "rw", "Selects the cell seen through CELL_*: index = row * cols + col.",
        (Field("index", 0, 16, "cell index"),), reset=0),
    Reg("CELL_CODE", 0x18, "ro", "Calibrated amplitude code of the selected cell (valid from "
        "the 4th cycle after the CELL_SEL write: the controller's cell read is pipelined).",),
    Reg("CELL_ALARM", 0x1C, "ro", "Sticky code-saturation alarm of the selected cell (same "
        "latency as CELL_CODE).",
        (Field("alarm", 0, 1, "code hit 0 or max while calibration still pushed it"),)),
    Reg("CELL_OFFSET", 0x20, "rw", "Emulator only: signed code offset of the selected cell "
        "(device-to-device V50 spread); sign-extended on read."),
    Reg("ROWS_SENSED", 0x24, "ro", "Row words captured since reset (wraps at 2**32).", reset=0),
    Reg("CYCLES", 0x28, "ro", "Clock cycles since reset (wraps at 2**32).", reset=0),
    # Readout path (designs built with a readout; 0 elsewhere). docs/trng-readout.md.
    Reg("CELL_HEALTH", 0x2C, "rw", "Health status of the selected cell (read), commands (write: "
        "`clear` restarts the cell's tests; `mask_we` writes `force_mask`). Same latency as "
        "CELL_CODE.",
        (Field("rct", 0, 1, "repetition count test failed (sticky)"),
         Field("apt", 1, 1, "adaptive proportion test failed (sticky)"),
         Field("corr", 2, 1, "lag-1 transition test failed (sticky)"),
         Field("sat", 3, 1, "calibration code saturated (sticky)"),
         Field("force_mask", 4, 1, "software mask"),
         Field("masked", 5, 1, "the cell's bits are withheld"),
         Field("clear", 8, 1, "write 1: clear the cell's sticky failures and restart its tests"),
         Field("mask_we", 9, 1, "write 1: set force_mask to the written force_mask bit"))),
    Reg("COND", 0x30, "rw", "Conditioning (a write resets every cell's conditioner state).",
        (Field("mode", 0, 2, "0 pass-through, 1 XOR fold, 2 von Neumann"),
         Field("k", 8, 8, "XOR-fold factor")), reset=0x0201),
    Reg("GAUSS", 0x34, "rw", "Gaussian generator and output selection.",
        (Field("mode", 0, 1, "0 centred binomial, 1 sum of 12 uniforms"),
         Field("words_out", 1, 1, "1: packed words go to the `words` output instead of the "
               "generator")), reset=0),
    Reg("HEALTH_SUMMARY", 0x38, "ro", "Health summary.",
        (Field("any_failed", 0, 1, "some cell failed a test"),
         Field("masked_count", 16, 16, "cells whose bits are withheld"))),
)

BY_NAME = {r.name: r for r in REGS}


def addr(name: str) -> int:
    """Byte address of register ``name``."""
    try:
        return BY_NAME[name].addr
    except KeyError:
        raise ValueError(f"register {name!r} does not exist; known: {', '.join(BY_NAME)}") from None


def field(reg: str, name: str) -> Field:
    for f in BY_NAME[reg].fields:
        if f.name == name:
            return f
    raise ValueError(f"register {reg} has no field {name!r}")


def pack(reg: str, **values: int) -> int:
    """Word with the named fields of ``reg`` set, e.g. ``pack("CTRL", enable=1)``."""
    word = 0
    for k, v in values.items():
        f = field(reg, k)
        if not 0 <= v < (1 << f.width):
            raise ValueError(f"{reg}.{k} = {v}: out of range, allowed [0, {(1 << f.width) - 1}]")
        word |= v << f.lsb
    return word


def unpack(reg: str, word: int) -> dict[str, int]:
    return {f.name: (word >> f.lsb) & ((1 << f.width) - 1) for f in BY_NAME[reg].fields}


def to_markdown() -> str:
    out = ["# spindiff register map", "",
           "Generated from `model/blocks/csr.py` by `make regs`; do not edit.", "",
           "| addr | name | access | reset | description |", "|---|---|---|---|---|"]
    for r in REGS:
        reset = "param" if r.reset is None else f"0x{r.reset:08x}"
        out.append(f"| 0x{r.addr:02x} | {r.name} | {r.access} | {reset} | {r.doc} |")
    for r in REGS:
        if r.fields:
            out += ["", f"## {r.name}", "", "| bits | field | description |", "|---|---|---|"]
            for f in r.fields:
                bits = f"{f.lsb}" if f.width == 1 else f"{f.lsb + f.width - 1}:{f.lsb}"
                out.append(f"| {bits} | {f.name} | {f.doc} |")
    return "\n".join(out) + "\n"


def to_json() -> str:
    return json.dumps({"schema": 1, "word_bits": 32,
                       "registers": [asdict(r) for r in REGS]}, indent=2) + "\n"


def to_c_header() -> str:
    out = ["/* spindiff register map: generated from model/blocks/csr.py by `make regs`. */",
           "#ifndef SPINDIFF_REGS_H", "#define SPINDIFF_REGS_H", ""]
    for r in REGS:
        out.append(f"#define SPINDIFF_{r.name}_ADDR 0x{r.addr:02x}u")
        for f in r.fields:
            out.append(f"#define SPINDIFF_{r.name}_{f.name.upper()}_LSB {f.lsb}u")
            out.append(f"#define SPINDIFF_{r.name}_{f.name.upper()}_MASK "
                       f"0x{((1 << f.width) - 1) << f.lsb:08x}u")
    out += ["", f"#define SPINDIFF_ID_VALUE 0x{ID_VALUE:08x}u", "", "#endif", ""]
    return "\n".join(out)
