"""The ``crossbar`` entry of ``make bench``: tile throughput in RTL simulation, twin and analog model.

For one stated shape (``BENCH_SHAPE``: a 64 x 64 tile, 8-bit weights and DAC codes, 8-bit ADC):

- ``verilator_cycles_per_s`` / ``pysim_cycles_per_s``: the RTL tile in its cocotb harness on
  Verilator (free-running clock) and in Amaranth's simulator, MVMs bit-exact against the twin;
- ``twin_mvm_per_s``: the bit-exact integer twin (``model.blocks.crossbar``), batched;
- ``analog_mvm_per_s``: the analog model (``model.devices.crossbar``, RRAM preset) with read noise
  drawn per evaluation and the ADC on, batched;
- ``aihwkit``: IBM's aihwkit analog linear layer on the same shape when it imports beside the
  pinned torch; otherwise the reason it is not compared.
"""

from __future__ import annotations

import time

import numpy as np

#: The bench shape: (rows, cols, macs_per_cycle) of the RTL tile; twin/analog use rows x cols.
BENCH_SHAPE = {"rows": 64, "cols": 64, "macs_per_cycle": 8, "weight_bits": 8, "input_bits": 8,
               "adc_bits": 8}
BATCH = 1000

# Why aihwkit is not compared here (checked 2026-12-02 with `pip install --dry-run aihwkit==1.2.0`
# in the project venv): 1.2.0 is published as a source distribution only, and resolving it
# replaces the pinned CPU torch 2.13.0 with torch 2.14.1 + the CUDA 13 runtime wheels and
# torchvision 0.29.1 (several GB), which the project's pins forbid.
AIHWKIT_NOTE = ("aihwkit not installed: aihwkit 1.2.0 is source-only on PyPI and pip resolves it to "
                "torch 2.14.1 with CUDA 13 wheels and torchvision 0.29.1, replacing the pinned CPU "
                "torch 2.13.0; no comparison in this run")


def _best_rate(fn, n_items: int, min_s: float = 1.0) -> float:
    """Items per second of ``fn()`` (which processes ``n_items``), best of repeated calls."""
    fn()    # warm-up
    best, spent = 0.0, 0.0
    while spent < min_s:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        spent += dt
        best = max(best, n_items / dt)
    return best


def twin_rate(seed: int) -> float:
    from model.blocks.crossbar import CrossbarTile
    from model.blocks.crossbar_config import TileConfig
    s = BENCH_SHAPE
    cfg = TileConfig(rows=s["rows"], cols=s["cols"], weight_bits=s["weight_bits"],
                     input_bits=s["input_bits"], adc_bits=s["adc_bits"],
                     macs_per_cycle=s["macs_per_cycle"])
    rng = np.random.default_rng(seed)
    tile = CrossbarTile(cfg)
    tile.program(0, rng.integers(-127, 128, (cfg.rows, cfg.cols)))
    x = rng.integers(-128, 128, (BATCH, cfg.rows))
    return _best_rate(lambda: tile.mvm(x, 0, 10), BATCH)


def analog_rate(seed: int) -> tuple[float, dict]:
    from model.devices.crossbar import RRAM, AnalogConfig, AnalogCrossbar, ReadNoise
    s = BENCH_SHAPE
    acfg = AnalogConfig(tech=RRAM, weight_bits=s["weight_bits"], input_bits=s["input_bits"],
                        adc_bits=s["adc_bits"], adc_shift=10, prog_sigma_rel=0.02,
                        read_noise=ReadNoise(kind="multiplicative", sigma=0.1, trunc=0.2))
    rng = np.random.default_rng(seed)
    xb = AnalogCrossbar(acfg, s["rows"], s["cols"], seed)
    xb.program(rng.integers(-127, 128, (s["rows"], s["cols"])))
    x = rng.integers(-128, 128, (BATCH, s["rows"]))
    setting = {"tech": "rram", "read_noise": "multiplicative sigma 0.1 truncated abs(n) < 0.2, per "
               "evaluation", "prog_sigma_rel": 0.02, "adc_bits": s["adc_bits"], "adc_shift": 10,
               "slices": acfg.slices, "slice_combine": acfg.slice_combine}
    return _best_rate(lambda: xb.mvm(x), BATCH), setting


def aihwkit_rate(seed: int) -> dict:
    try:
        import aihwkit  # noqa: F401
        from aihwkit.nn import AnalogLinear
        from aihwkit.simulator.configs import InferenceRPUConfig
    except Exception as e:   # noqa: BLE001 -- any import failure means "not comparable here"
        return {"available": False, "note": AIHWKIT_NOTE, "import_error": repr(e)[:200]}
    import torch
    s = BENCH_SHAPE
    torch.manual_seed(seed)
    layer = AnalogLinear(s["rows"], s["cols"], bias=False, rpu_config=InferenceRPUConfig())
    layer.eval()
    x = torch.randn(BATCH, s["rows"])
    with torch.no_grad():
        rate = _best_rate(lambda: layer(x), BATCH)
    return {"available": True, "mvm_per_s": rate, "version": aihwkit.__version__,
            "rpu_config": "InferenceRPUConfig() defaults"}


def crossbar_bench(seed: int, mvms: int, pysim_mvms: int, log=print) -> dict:
    """The ``crossbar`` entry of bench.json."""
    from sim.crossbar_bench import run_crossbar_bench, run_crossbar_pysim
    s = BENCH_SHAPE
    log(f"[bench] crossbar: Verilator, {mvms} MVMs on the {s['rows']}x{s['cols']} P="
        f"{s['macs_per_cycle']} tile")
    # Without stalls: the pipeline's own rate (cycles per MVM = mvm_cycles(), plus programming);
    # with stalls: random input gaps and output back-pressure, as in the tests.
    v = run_crossbar_bench("bench_64x64_p8", mvms, seed, stalls=False)
    vs = run_crossbar_bench("bench_64x64_p8", max(mvms // 4, 100), seed, stalls=True)
    log(f"[bench] crossbar: Amaranth simulator, {pysim_mvms} MVMs")
    p = run_crossbar_pysim("bench_64x64_p8", pysim_mvms, seed)
    log(f"[bench] crossbar: twin and analog model, batch {BATCH}")
    twin = twin_rate(seed)
    analog, analog_setting = analog_rate(seed)
    aihw = aihwkit_rate(seed)
    return {
        "shape": {**s, "batch": BATCH},
        "macs_per_cycle": s["macs_per_cycle"],
        "cycles_per_mvm": v["cycles"] / v["mvms"],
        "verilator_mvms": v["mvms"],
        "verilator_bit_exact": v["bit_exact"],
        "verilator_cycles_per_s": v["cycles"] / v["wall_s"],
        "verilator_cycles_per_s_with_stalls": vs["cycles"] / vs["wall_s"],
        "verilator_bit_exact_with_stalls": vs["bit_exact"],
        "mvm_cycles_formula": v["mvm_cycles"],
        "pysim_mvms": p["mvms"],
        "pysim_bit_exact": p["bit_exact"],
        "pysim_cycles_per_s": p["cycles"] / p["wall_s"],
        "twin_mvm_per_s": twin,
        "analog_mvm_per_s": analog,
        "analog_setting": analog_setting,
        "aihwkit": aihw,
    }
