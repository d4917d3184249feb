"""A small MLP through the layer-engine RTL on Verilator: cycles per inference, bit-exactness.

``run_engine_bench(cfg_name, runs, seed)`` builds the engine of ``ENGINE_BUILDS[cfg_name]`` in
its free-running harness, loads one program (by default the demo MLP below, weights drawn from
``seed``; or a given :class:`sim.engine_configs.EngineProgram`), runs ``runs`` inferences back to
back with the input offered every cycle and the output always ready, compares every output code
with the twin and returns the figures::

    python -m sim.engine_demo [--cfg engine_par] [--runs 200] [--seed 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from model.blocks.crossbar_config import ACT_LUT, ACT_NONE, ACT_RELU, LayerDesc

#: The demo MLP per build: widths and activations (relu, SiLU LUT, none on the parallel build).
DEMO_MLPS = {
    "engine_par": ([24, 16, 16, 10], [ACT_RELU, ACT_LUT, ACT_NONE]),
    "engine_ser": ([12, 12, 8], [ACT_RELU, ACT_NONE]),
}


def demo_program(cfg_name: str, seed: int):
    """The demo MLP of ``cfg_name`` with random integer weights (seeded), shifts fitted to
    them, a SiLU table for its LUT layer and zero padding."""
    from sim.engine_configs import ENGINE_BUILDS, random_program
    if cfg_name not in ENGINE_BUILDS:
        raise ValueError(f"cfg_name = {cfg_name!r}: unknown, allowed {sorted(ENGINE_BUILDS)}")
    dims, acts = DEMO_MLPS[cfg_name]
    return random_program(ENGINE_BUILDS[cfg_name], np.random.default_rng(seed), dims=dims,
                          acts=acts, lut="silu", extremes=0.0, jitter=0, pad_random=False)


def run_engine_bench(cfg_name: str = "engine_par", runs: int = 200, seed: int = 1,
                     program=None) -> dict:
    """Run ``runs`` inferences of ``program`` (default :func:`demo_program`) on the RTL.

    Returns ``cycles`` (first input beat to last output beat of all runs, both included),
    ``cycles_per_inference``, ``formula_cycles_per_inference`` (``hw.layer_engine.run_cycles``,
    which also counts the 2 cycles after the last output beat before the engine is idle),
    ``layer_mvms`` (R x C tile MVMs), ``mvm_cycles`` (of the tile), ``wall_s`` (simulation of
    the runs only), ``sim_wall_s`` (the whole call, build included), ``runs``, ``dims``,
    ``bit_exact`` (every output code equal to the twin's) and, when not, ``error``.
    """
    from hw.layer_engine import run_cycles
    from sim.engine_configs import ENGINE_BUILDS, engine_params
    from sim.engine_harness import EngineHarness
    from sim.runner import SimulationFailed, run_cocotb

    if cfg_name not in ENGINE_BUILDS:
        raise ValueError(f"cfg_name = {cfg_name!r}: unknown, allowed {sorted(ENGINE_BUILDS)}")
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= 1_000_000:
        raise ValueError(f"runs = {runs!r}: out of range, allowed [1, 1000000]")
    cfg = ENGINE_BUILDS[cfg_name]
    if program is None:
        program = demo_program(cfg_name, seed)
    if program.cfg != cfg:
        raise ValueError(f"program.cfg does not match the build {cfg_name!r}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "engine_demo.json"
        result = {"cfg": cfg_name, "runs": runs, "seed": seed,
                  "dims": [program.layers[0].in_dim] + [d.out_dim for d in program.layers],
                  "acts": [d.act for d in program.layers],
                  "mvm_cycles": cfg.tile.mvm_cycles(),
                  "layer_mvms": runs * program.mvms(),
                  "formula_cycles_per_inference": run_cycles(cfg, program.layers)}
        try:
            run_cocotb(EngineHarness(cfg), cfg_name, "sim.cocotb_layer_engine",
                       {"engine": engine_params(cfg), "programs": [program.to_dict()],
                        "runs": runs, "gen_thresh": 0, "bp_thresh": 0, "fixed_timing": True,
                        "out": str(out)},
                       seed=seed, run_name=f"{cfg_name}_demo")
        except SimulationFailed as e:
            result.update(bit_exact=False, error=str(e).splitlines()[0], cycles=None,
                          cycles_per_inference=None, wall_s=None,
                          sim_wall_s=time.perf_counter() - t0)
            return result
        rep = json.loads(out.read_text())
    prog_rep = rep["per_program"][0]
    result.update(bit_exact=bool(rep["bit_exact"]), cycles=prog_rep["cycles"],
                  cycles_per_inference=prog_rep["cycles"] / runs, wall_s=prog_rep["wall_s"],
                  sim_wall_s=time.perf_counter() - t0)
    return result


def main(argv=None) -> int:
    from sim.engine_configs import ENGINE_BUILDS
    ap = argparse.ArgumentParser(prog="python -m sim.engine_demo",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--cfg", default="engine_par", choices=sorted(ENGINE_BUILDS))
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    args = ap.parse_args(argv)
    if not 1 <= args.runs <= 1_000_000:
        print(f"error: --runs = {args.runs}: out of range, allowed [1, 1000000]",
              file=sys.stderr)
        return 2
    r = run_engine_bench(args.cfg, args.runs, args.seed)
    if args.json:
        from model.io import atomic_write_json
        from sim.meta import provenance
        atomic_write_json(args.json, {**r, "provenance": provenance(
            args.seed, f"python -m sim.engine_demo --cfg {args.cfg} --runs {args.runs} "
                       f"--seed {args.seed}")})
    print(f"{r['cfg']}: MLP {r['dims']}, {r['runs']} inferences, {r['layer_mvms']} layer-MVMs "
          f"(tile MVM {r['mvm_cycles']} cycles): {r['cycles_per_inference']} cycles per "
          f"inference (formula {r['formula_cycles_per_inference']}), bit-exact "
          f"{r['bit_exact']}, {r['wall_s']} s simulated")
    return 0 if r["bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["DEMO_MLPS", "demo_program", "run_engine_bench"]
