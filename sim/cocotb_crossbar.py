"""cocotb bench: the crossbar tile (in ``sim.crossbar_harness.CrossbarHarness``) against its twin.

The run is cut into ``segments``. Before each, Python reprograms some slots through ``prog``
(random weights: uniform, rails only, sparse, or zero; every slot in the first segment) and then
starts the harness on a run of vectors from a fresh seed; the clock runs free while the harness
offers the vectors with random gaps and takes the outputs with random back-pressure, and Python
wakes once per batch of outputs to compare them with the twin (code and ``last``). The first
segment runs without gaps and back-pressure and must take exactly ``mvms · mvm_cycles()`` cycles.

Run-time parameters (``SPINDIFF_BENCH``): ``tile`` (TileConfig as a dict), ``seed``, ``mvms``,
``segments`` (default 4), ``stalls`` (default true: gaps and back-pressure after the first
segment), ``out`` (optional JSON path for the figures).
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge, ValueChange, with_timeout

from model.blocks.crossbar import CrossbarTile as Twin
from model.blocks.crossbar_config import TileConfig
from model.io import atomic_write_json
from sim.cocotb_util import CLK_NS, start
from sim.crossbar_harness import decode_batch, stimulus
from sim.runner import bench_params

#: (gap_thresh, bp_thresh) of the segments after the first, cycled: moderate to heavy.
GAPS_BP = [(64, 128), (160, 32), (32, 200), (128, 128)]


def random_weights(rng, cfg: TileConfig) -> np.ndarray:
    lo, hi = cfg.weight_range
    shape = (cfg.rows, cfg.cols)
    kind = rng.choice(["uniform", "uniform", "rails", "sparse", "zero"], p=[.4, .2, .2, .15, .05])
    if kind == "uniform":
        return rng.integers(lo, hi + 1, shape)
    if kind == "rails":
        return np.where(rng.random(shape) < 0.5, lo, hi)
    if kind == "sparse":
        return np.where(rng.random(shape) < 0.2, rng.integers(lo, hi + 1, shape), 0)
    return np.zeros(shape, dtype=np.int64)


def shift_window(rng, cfg: TileConfig, seg: int) -> tuple[int, int]:
    """(shift_base, shift_mask) of segment ``seg``: 1 the whole range (0 … 2**k - 1 >= acc_bits;
    values above act as acc_bits), 2 shifts 0 and 1 (mostly clipped at the rails), the others
    (and one in four after segment 3) a window of 8 around the shift where a typical column sum
    fills the ADC."""
    full = (0, min(63, (1 << cfg.max_adc_shift.bit_length()) - 1))
    if seg == 1 or (seg > 3 and rng.random() < 0.25):
        return full
    if seg == 2:
        return 0, 1
    typical = (cfg.weight_bits - 1) + (cfg.input_bits - 1) + (cfg.rows - 1).bit_length() // 2
    centre = max(0, typical - (cfg.adc_bits - 1))
    return max(0, centre - 3), 7


class Checker:
    def __init__(self, dut, cfg: TileConfig, seed: int):
        self.dut, self.cfg, self.seed = dut, cfg, seed
        self.twin = Twin(cfg)
        self.width = cfg.adc_bits + 1
        self.batch = len(dut.word) // self.width
        self.checked = 0
        self.mvms = 0
        #: Output beats (checked equal to the twin's) at each ADC rail, zero, strictly inside;
        #: vectors with adc_shift 0 and acc_bits.
        self.coverage: dict[str, int] = {}

    async def program(self, words) -> None:
        """One word per cycle through ``prog`` (the tile is idle: ``prog.ready`` must be high)."""
        d = self.dut
        for addr, data in words:
            await FallingEdge(d.clk)
            assert int(d.prog__ready.value) == 1, f"prog not ready while idle (seed={self.seed})"
            d.prog__valid.value = 1
            d.prog__payload.value = addr | (data << self.addr_bits)
            self.twin.write_word(addr, data)
        await FallingEdge(d.clk)
        d.prog__valid.value = 0

    @property
    def addr_bits(self) -> int:
        return max(0, (self.cfg.weight_words - 1).bit_length())

    def expected(self, x, slots, shifts) -> np.ndarray:
        """(code, last) of every output beat, shape (n * C, 2)."""
        cfg = self.cfg
        codes = np.empty((len(x), cfg.cols), dtype=np.int64)
        for s in np.unique(slots):
            for sh in np.unique(shifts[slots == s]):
                sel = (slots == s) & (shifts == sh)
                codes[sel] = self.twin.mvm(x[sel], int(s), int(sh))
        last = np.zeros_like(codes)
        last[:, -1] = 1
        return np.stack([codes.ravel(), last.ravel()], axis=1)

    def compare(self, got, want, x, slots, shifts, seg) -> None:
        got = np.asarray(got, dtype=np.int64).reshape(-1, 2)
        n0 = self.checked
        bad = np.nonzero(np.any(got != want[n0:n0 + len(got)], axis=1))[0]
        if len(bad):
            i = n0 + int(bad[0])
            k, c = divmod(i, self.cfg.cols)
            raise AssertionError(
                f"segment {seg}, vector {k} (slot {slots[k]}, adc_shift {shifts[k]}), column {c}: "
                f"RTL (code, last) = {tuple(map(int, got[bad[0]]))}, twin "
                f"{tuple(map(int, want[i]))}; x = {x[k].tolist()} (seed={self.seed})")
        self.checked += len(got)

    async def segment(self, seg: int, n: int, sseed: int, gap: int, bp: int, base: int,
                      mask: int) -> int:
        """Run ``n`` vectors; returns the harness's run_cycles."""
        d, cfg = self.dut, self.cfg
        x, slots, shifts = stimulus(cfg, sseed, n, base, mask)
        want = self.expected(x, slots, shifts)
        lo, hi = cfg.adc_range
        codes = want[:, 0]
        for key, k in (("adc_low_rail", np.sum(codes == lo)),
                       ("adc_high_rail", np.sum(codes == hi)),
                       ("zero", np.sum(codes == 0)),
                       ("inside", np.sum((codes != 0) & (codes > lo) & (codes < hi))),
                       ("shift_0", np.sum(shifts == 0)),
                       ("shift_max", np.sum(shifts == cfg.max_adc_shift))):
            self.coverage[key] = self.coverage.get(key, 0) + int(k)
        await FallingEdge(d.clk)
        d.seed.value = sseed
        d.count.value = n
        d.gap_thresh.value = gap
        d.bp_thresh.value = bp
        d.bp_seed.value = (sseed * 0x9E3779B9) & 0xFFFF_FFFF
        d.shift_base.value = base
        d.shift_mask.value = mask
        d.start.value = 1
        await RisingEdge(d.clk)
        await FallingEdge(d.clk)
        d.start.value = 0
        self.checked = 0
        total = n * cfg.cols
        w, b = self.width, self.batch

        async def collect():
            while self.checked + b <= total:
                await ValueChange(d.word_toggle)
                self.compare(decode_batch(int(d.word.value), w, b, cfg.adc_bits), want,
                             x, slots, shifts, seg)
            while not int(d.done.value):
                await RisingEdge(d.done)
            await FallingEdge(d.clk)

        slow = 256 / max(1, 256 - max(gap, bp))
        budget = int(n * (cfg.mvm_cycles() + cfg.rows) * slow * 4 + 10_000) * CLK_NS
        await with_timeout(collect(), budget, "ns")
        fill = int(d.fill.value)
        rest = decode_batch(int(d.buf.value) >> ((b - fill) * w), w, fill, cfg.adc_bits)
        self.compare(rest, want, x, slots, shifts, seg)
        assert self.checked == total, (f"segment {seg}: {self.checked} output beats, expected "
                                       f"{total} (seed={self.seed})")
        self.mvms += n
        return int(d.run_cycles.value)


@cocotb.test()
async def crossbar_matches_twin(dut):
    p = bench_params()
    cfg = TileConfig(**p["tile"])
    seed, mvms = int(p["seed"]), int(p["mvms"])
    segments = max(1, min(int(p.get("segments", 4)), mvms))
    stalls = bool(p.get("stalls", True))
    rng = np.random.default_rng(seed)
    chk = Checker(dut, cfg, seed)
    for name in ("start", "count", "seed", "gap_thresh", "bp_thresh", "bp_seed", "shift_base",
                 "shift_mask", "prog__valid", "prog__payload"):
        getattr(dut, name).value = 0
    await start(dut)
    t0 = time.perf_counter()
    c0 = int(dut.cycles.value)
    sim_s = 0.0
    run_cycles = []
    sizes = [mvms // segments + (k < mvms % segments) for k in range(segments)]
    for seg, n in enumerate(sizes):
        slots = range(cfg.slots) if seg == 0 else \
            sorted(rng.choice(cfg.slots, int(rng.integers(1, cfg.slots + 1)), replace=False))
        words = []
        for s in slots:
            words += chk.twin.pack_slot(int(s), random_weights(rng, cfg))
        order = rng.permutation(len(words)) if seg else np.arange(len(words))
        await chk.program([words[i] for i in order])
        gap, bp = (0, 0) if seg == 0 or not stalls else GAPS_BP[(seg - 1) % len(GAPS_BP)]
        base, mask = shift_window(rng, cfg, seg)
        sseed = int(rng.integers(1, 1 << 32))
        ts = time.perf_counter()
        cyc = await chk.segment(seg, n, sseed, gap, bp, base, mask)
        sim_s += time.perf_counter() - ts
        run_cycles.append(cyc)
        if seg == 0:
            assert cyc == n * cfg.mvm_cycles(), (
                f"{n} MVMs without gaps or back-pressure took {cyc} cycles, expected "
                f"n * mvm_cycles() = {n * cfg.mvm_cycles()} (seed={seed})")
    wall = time.perf_counter() - t0
    cycles = int(dut.cycles.value) - c0
    res = {"mvms": chk.mvms, "cycles": cycles, "wall_s": wall, "sim_s": sim_s,
           "cycles_per_s": cycles / wall, "run_cycles": run_cycles, "segment_mvms": sizes,
           "cycles_per_mvm_no_stall": run_cycles[0] / sizes[0],
           "mvm_cycles_formula": cfg.mvm_cycles(), "seed": seed, "coverage": chk.coverage}
    if p.get("out"):
        atomic_write_json(p["out"], res)
    dut._log.info(f"{chk.mvms} MVMs bit-exact in {segments} segments; {cycles} cycles in "
                  f"{wall:.2f} s ({cycles / wall:.0f} cycles/s); {run_cycles[0] / sizes[0]:.1f} "
                  f"cycles/MVM without stalls (mvm_cycles() = {cfg.mvm_cycles()}); coverage "
                  f"{chk.coverage}; seed={seed}")
