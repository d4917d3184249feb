"""cocotb bench: the layer engine (inside ``sim.engine_harness.EngineHarness``) against its
twin, program after program, output code by output code.

Python writes each program through ``prog`` and ``cfg`` (transaction level), then lets the clock
run free: the harness generates the input codes (seeded xorshift, random valid gaps) and the
output back-pressure in RTL and hands outputs over in batches, so Python wakes once per batch.
Every output (code and ``last``) is compared with the twin run on the same codes.

Run-time parameters (``SPINDIFF_BENCH``): ``seed``, ``engine`` (EngineConfig dict), and either
``programs`` (a list of :meth:`EngineProgram.to_dict`) or ``n_programs`` (random programs drawn
here from the seed); ``runs`` per program; ``gen_thresh`` / ``bp_thresh`` (0-255: random input
gaps / output back-pressure; each program draws its own up to these unless ``fixed_timing``);
``partial_layers`` (probability that a program is run with a random ``n_layers`` below its
length, 0 included); ``out`` (JSON report path).
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, Event, FallingEdge, RisingEdge, ValueChange, with_timeout

from hw.crossbar import prog_layout
from hw.layer_engine import cfg_layout, run_cycles
from model.io import atomic_write_json
from sim.cocotb_util import CLK_NS, start
from sim.engine_configs import EngineProgram, engine_from_params, random_program
from sim.engine_harness import gen_codes
from sim.runner import bench_params


class EngineBench:
    def __init__(self, dut, cfg, seed: int):
        self.dut, self.cfg, self.seed = dut, cfg, seed
        self.batch = len(dut.word) // (cfg.tile.input_bits + 1)
        self.w = cfg.tile.input_bits + 1
        self.received: list[int] = []
        self.taken = 0               # entries of the harness's current batch already received
        self.target = 0
        self.enough = Event()
        pl, cl = prog_layout(cfg.tile), cfg_layout(cfg)
        self.prog_data_off = pl["data"].offset
        self.cfg_addr_off, self.cfg_data_off = cl["addr"].offset, cl["data"].offset
        for name in ("prog_valid", "cfg_valid", "gen_load", "gen_beats", "gen_seed", "bp_seed",
                     "n_layers"):
            getattr(dut, name).value = 0
        dut.gen_thresh.value = 0
        dut.bp_thresh.value = 0

    async def start(self):
        await start(self.dut)
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        """Records every batch; skips the entries already taken from a partial batch."""
        w, n, mask = self.w, self.batch, (1 << self.w) - 1
        while True:
            await ValueChange(self.dut.word_toggle)
            word = int(self.dut.word.value)
            self.received.extend((word >> (i * w)) & mask for i in range(self.taken, n))
            self.taken = 0
            if len(self.received) >= self.target:
                self.enough.set()

    def take_partial_batch(self):
        """Once the engine is idle: the entries of the harness's partial batch not yet taken
        (newest in the top slots of ``buf``)."""
        fill = int(self.dut.fill.value)
        buf = int(self.dut.buf.value)
        w, n, mask = self.w, self.batch, (1 << self.w) - 1
        self.received.extend((buf >> (i * w)) & mask for i in range(n - fill + self.taken, n))
        self.taken = fill

    async def _write(self, valid, payload, ready, words):
        """One word per cycle (the engine is idle, so its ports are ready)."""
        dut = self.dut
        for v in words:
            await FallingEdge(dut.clk)
            assert int(ready.value) == 1, f"port not ready while idle (seed={self.seed})"
            payload.value = v
            valid.value = 1
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        valid.value = 0

    async def load(self, prog: EngineProgram):
        dut = self.dut
        assert int(dut.busy.value) == 0
        await self._write(dut.prog_valid, dut.prog_payload, dut.prog_ready,
                          [a | (v << self.prog_data_off) for a, v in prog.prog_words()])
        await self._write(dut.cfg_valid, dut.cfg_payload, dut.cfg_ready,
                          [t | (a << self.cfg_addr_off) | (v << self.cfg_data_off)
                           for t, a, v in prog.cfg_words()])

    async def run(self, prog: EngineProgram, runs: int, n_layers: int, gen_thresh: int,
                  bp_thresh: int, gen_seed: int, bp_seed: int) -> dict:
        """``runs`` runs of ``prog`` with ``n_layers``; every output checked against the twin."""
        dut, cfg = self.dut, self.cfg
        layers = prog.layers[:max(1, n_layers)]
        tw = prog.twin()
        tw.set_program(layers)
        in_dim, out_dim = layers[0].in_dim, layers[-1].out_dim
        x = np.array(gen_codes(cfg, gen_seed, runs * in_dim), dtype=np.int64)
        want = tw.run(x.reshape(runs, in_dim))
        ib = cfg.tile.input_bits

        await FallingEdge(dut.clk)
        base = len(self.received)
        runs0 = int(dut.runs_done.value)
        busy0 = int(dut.busy_cycles.value)
        dut.n_layers.value = n_layers
        dut.gen_seed.value = gen_seed
        dut.bp_seed.value = bp_seed
        dut.gen_thresh.value = gen_thresh
        dut.bp_thresh.value = bp_thresh
        dut.gen_beats.value = runs * in_dim
        dut.gen_load.value = 1
        await FallingEdge(dut.clk)
        dut.gen_load.value = 0
        t0 = time.perf_counter()
        total = runs * out_dim
        n = self.batch
        self.target = base + max(0, (self.taken + total) // n * n - self.taken)
        # Whole batches arrive through the monitor; sim-time watchdog so a stuck design fails.
        slow = 256 / max(1, 256 - max(gen_thresh, bp_thresh))
        budget = int((runs * run_cycles(cfg, layers) * slow * 4 + 5000) * CLK_NS)
        if len(self.received) < self.target:
            self.enough.clear()
            await with_timeout(self.enough.wait(), budget, "ns")
        # The rest: wait for the last run to end, then read the partial batch.
        for _ in range(int(budget // CLK_NS // 64) + 1):
            if int(dut.runs_done.value) - runs0 >= runs and int(dut.busy.value) == 0:
                break
            await ClockCycles(dut.clk, 64)
        else:
            raise AssertionError(f"runs did not finish: {int(dut.runs_done.value) - runs0} of "
                                 f"{runs} (seed={self.seed})")
        await FallingEdge(dut.clk)
        # From the first input beat taken to the last output beat taken, both included.
        cycles = int(dut.last_out.value) - int(dut.first_in.value) + 1
        busy = int(dut.busy_cycles.value) - busy0
        self.take_partial_batch()
        got = self.received[base:]
        assert len(got) == total, (f"{len(got)} outputs, want {total} ({runs} runs x "
                                   f"{out_dim}) (seed={self.seed})")
        mask = (1 << ib) - 1
        for k, word in enumerate(got):
            r, j = divmod(k, out_dim)
            code = word & mask
            if cfg.tile.input_signed and code >> (ib - 1):
                code -= 1 << ib
            last = word >> ib
            assert code == want[r, j] and last == (j == out_dim - 1), (
                f"run {r} output {j}: RTL code {code} last {last}, twin {want[r, j]} "
                f"(program {prog.info}, layers {layers}, x {x[r * in_dim:(r + 1) * in_dim]}, "
                f"seed={self.seed})")
        return {"runs": runs, "outputs": total, "cycles": cycles, "busy_cycles": busy,
                "cycles_per_run": cycles / runs,
                "layer_mvms": runs * sum(d.blocks(cfg.tile) for d in layers),
                "run_cycles_formula": run_cycles(cfg, layers), "n_layers": len(layers),
                "dims": [layers[0].in_dim] + [d.out_dim for d in layers],
                "gen_thresh": gen_thresh, "bp_thresh": bp_thresh,
                "wall_s": time.perf_counter() - t0}


@cocotb.test()
async def engine_matches_twin(dut):
    p = bench_params()
    seed = int(p["seed"])
    cfg = engine_from_params(p["engine"])
    rng = np.random.default_rng(seed)
    bench = EngineBench(dut, cfg, seed)
    await bench.start()
    runs = int(p.get("runs", 20))
    gen_max, bp_max = int(p.get("gen_thresh", 128)), int(p.get("bp_thresh", 128))
    fixed = bool(p.get("fixed_timing", False))
    partial = float(p.get("partial_layers", 0.0))
    if "programs" in p:
        programs = [EngineProgram.from_dict(d) for d in p["programs"]]
    else:
        programs = [None] * int(p["n_programs"])
    reports = []
    t0 = time.perf_counter()
    for i, prog in enumerate(programs):
        if prog is None:
            prog = random_program(cfg, rng)
        n_layers = len(prog.layers)
        if rng.random() < partial:
            n_layers = int(rng.integers(0, len(prog.layers)))
        gen = gen_max if fixed else int(rng.integers(0, gen_max + 1))
        bp = bp_max if fixed else int(rng.integers(0, bp_max + 1))
        await bench.load(prog)
        r = await bench.run(prog, runs, n_layers, gen, bp, int(rng.integers(1, 1 << 32)),
                            int(rng.integers(1, 1 << 32)))
        reports.append(r)
    wall = time.perf_counter() - t0
    summary = {
        "seed": seed, "programs": len(reports), "runs": sum(r["runs"] for r in reports),
        "outputs": sum(r["outputs"] for r in reports),
        "layer_mvms": sum(r["layer_mvms"] for r in reports),
        "cycles": sum(r["cycles"] for r in reports), "wall_s": wall, "bit_exact": True,
        "per_program": reports,
    }
    if p.get("out"):
        atomic_write_json(p["out"], summary)
    dut._log.info(f"{summary['outputs']} outputs of {summary['runs']} runs "
                  f"({summary['layer_mvms']} layer-MVMs, {len(reports)} programs) bit-exact in "
                  f"{summary['cycles']} cycles, {wall:.1f} s; seed={seed}")
