"""The fixed list of crossbar-tile Verilator builds (``sim/crossbar_harness.py`` around
``hw.crossbar.CrossbarTile``).

Small and varied: both modes, both input kinds, P from 2 to C, one to four slots (3: not a power
of two), R != C. Weights, inputs, slots, ADC shifts, gaps and back-pressure are run-time stimulus,
so these are the only compiled designs (each cached by ``sim/runner.py``).
"""

from __future__ import annotations

from dataclasses import asdict

from model.blocks.crossbar_config import TileConfig

#: name -> TileConfig. (R, C, P, bit_serial, input_signed) in the comment.
CROSSBAR_BUILDS: dict[str, TileConfig] = {
    # (16, 16, 4, parallel, signed): the default tile (8-bit weights, inputs, ADC), 4 slots.
    "xb16x16p4": TileConfig(rows=16, cols=16, macs_per_cycle=4, slots=4),
    # (16, 16, 16, parallel, signed): one group, P = C lanes; 6-bit weights, 10-bit ADC.
    "xb16x16p16": TileConfig(rows=16, cols=16, weight_bits=6, adc_bits=10, macs_per_cycle=16,
                             slots=2),
    # (12, 8, 2, bit-serial, signed): R not a power of two, 3 slots, 5-bit codes, 7-bit ADC.
    "xb12x8p2s": TileConfig(rows=12, cols=8, weight_bits=5, input_bits=5, adc_bits=7,
                            macs_per_cycle=2, bit_serial=True, slots=3),
    # (8, 24, 8, parallel, unsigned): C > R, 4-bit weights, 6-bit unsigned inputs, 9-bit ADC.
    "xb8x24p8u": TileConfig(rows=8, cols=24, weight_bits=4, input_bits=6, input_signed=False,
                            adc_bits=9, macs_per_cycle=8, slots=2),
    # (16, 16, 4, bit-serial, unsigned): one slot (a zero-width slot field), 6-bit inputs.
    "xb16x16p4su": TileConfig(rows=16, cols=16, input_bits=6, input_signed=False,
                              macs_per_cycle=4, bit_serial=True, slots=1),
}

#: Builds used by `make bench` only (sim/bench_crossbar.py), not by the tests.
BENCH_BUILDS: dict[str, TileConfig] = {
    # (64, 64, 8, parallel, signed): 8-bit weights, inputs and ADC, 2 slots.
    "bench_64x64_p8": TileConfig(rows=64, cols=64, macs_per_cycle=8, slots=2),
}

#: MVMs per build in `make test` (tests/test_crossbar_cocotb.py): 11 000 in all.
TEST_MVMS: dict[str, int] = {
    "xb16x16p4": 3000, "xb16x16p16": 3000, "xb12x8p2s": 1500, "xb8x24p8u": 2500,
    "xb16x16p4su": 1000,
}


def tile_config(name: str) -> TileConfig:
    builds = {**CROSSBAR_BUILDS, **BENCH_BUILDS}
    if name not in builds:
        raise ValueError(f"crossbar build = {name!r}: unknown, allowed {sorted(builds)}")
    return builds[name]


def tile_params(cfg: TileConfig) -> dict:
    """TileConfig -> the JSON-able dict the cocotb bench rebuilds it from."""
    return asdict(cfg)
