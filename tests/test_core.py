"""The diffusion core (hw/core.py, docs/core.md) in the Amaranth simulator, against the golden
hardware-mode sampler.

A small program (EpsMLP on 4 × 4 images: 16 pixels + 8 time codes -> 32 SiLU (the engine's LUT)
-> 16, T = 24) runs DDIM and DDPM images through the whole core — TRNG with the emulator from
reset, noise FIFO, layer engine loaded from its boot ROMs, sequencer — and every pixel must equal
``hw_sample(program, <TRNG source of the same emulator seed>, ...)``; the counters must equal
``HardwareProgram.counts`` times the images; the cycles of a noise-free image the formula of
``hw.core.image_cycles``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amaranth.hdl import Elaboratable, Module, Signal

from hw.core import (CORE_COUNTERS, DiffusionCore, _rom_stream, build_core,
                     core_image, image_cycles, table_words, trng_emulator_config)
from model.diffusion.data import load_dataset
from model.diffusion.hardware import HardwareProgram, hw_sample
from model.diffusion.nets import EpsMLP
from model.diffusion.noise import TRNGNoise
from model.diffusion.schedules import DDPMSchedule
from model.diffusion.train import train_ddpm
from tests.simutil import run_sim

SEED = 7          # emulator seed of the core's TRNG and of the golden model's "trng" source
T = 24


def small_program() -> HardwareProgram:
    """A tiny EpsMLP briefly trained (250 epochs, ~2 s, deterministic) on the digits pooled to
    4 × 4, so that DDPM images end inside [−1, 1] and their pixels take many values (an
    untrained net drives the state to the rails and every pixel to 0 or 255, which would hide
    state errors)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                 # a shared 2-core machine
    try:
        pooled = torch.nn.functional.avg_pool2d(load_dataset("digits", "train", 0).x, 2)
        torch.manual_seed(1)
        net = EpsMLP(16, T, (32,), temb_dim=8, act="silu")
        sched = DDPMSchedule.scaled(T)
        train_ddpm(net, pooled, sched, epochs=250, progress=False, seed=0, warmup_steps=20)
        return HardwareProgram.from_checkpoint(net, sched, calib_seed=0, data=pooled,
                                               calib_n=256)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def program():
    return small_program()


class CoreBench:
    """Drives a core through a list of phases: ``("tables", StepTables)`` loads step tables
    through the ``tables`` port; ``("images", steps, n, p_ready)`` runs n images, ``pix.ready``
    high with probability p_ready per cycle (random back-pressure from ``rng``). Records the
    pixels, the cycles from start to done of each image and the counters after each phase."""

    def __init__(self, core: DiffusionCore, phases, seed: int):
        self.core, self.phases, self.seed = core, phases, seed
        self.rng = np.random.default_rng(seed)
        self.pixels, self.cycles, self.counters, self.wait_full = [], [], [], []
        self.alarm = None
        self.ready_cycle = None

    async def _tick(self, ctx, n=1):
        for _ in range(n):
            await ctx.tick()

    async def body(self, ctx, d):
        ctx.set(d.pix.ready, 1)
        # A start during the boot is ignored (the engine is not loaded yet).
        ctx.set(d.steps, 1)
        ctx.set(d.start, 1)
        await ctx.tick()
        ctx.set(d.start, 0)
        await ctx.tick()
        assert not ctx.get(d.ready) and not ctx.get(d.busy), \
            f"seed {self.seed}: start taken during the boot"
        await ctx.tick().until(d.ready)
        self.ready_cycle = ctx.get(d.cycles)
        for ph in self.phases:
            if ph[0] == "tables":
                for tgt, a, v in table_words(ph[1]):
                    ctx.set(d.tables.valid, 1)
                    ctx.set(d.tables.payload, {"target": tgt, "addr": a, "data": v})
                    assert ctx.get(d.tables.ready), f"seed {self.seed}: tables port not ready"
                    await ctx.tick()
                ctx.set(d.tables.valid, 0)
                continue
            _, steps, n, p_ready = ph
            for _ in range(n):
                # A full noise FIFO before the start: x_T never waits (the cycle formula).
                await ctx.tick().until(d.noise_level == self.core.noise_fifo_depth)
                ctx.set(d.steps, steps)
                ctx.set(d.start, 1)
                c0 = ctx.get(d.cycles)
                await ctx.tick()
                ctx.set(d.start, 0)
                assert ctx.get(d.busy), f"seed {self.seed}: start not taken"
                # Nothing to do until the first pixel: skip ahead with ready high; `until`
                # returns after the edge that took it, with its payload sampled at that edge.
                # Then decide ready cycle by cycle.
                ctx.set(d.pix.ready, 1)
                *_, p0, last0 = await ctx.tick().sample(
                    d.pix.payload.pixel, d.pix.payload.last).until(d.pix.valid)
                assert last0 == (self.core.image.dim == 1), f"seed {self.seed}: last flag"
                pix = [p0]
                while not ctx.get(d.done):
                    r = bool(self.rng.random() < p_ready)
                    ctx.set(d.pix.ready, r)
                    if ctx.get(d.pix.valid) and r:
                        pix.append(ctx.get(d.pix.payload.pixel))
                        last = ctx.get(d.pix.payload.last)
                        assert last == (len(pix) == self.core.image.dim), \
                            f"seed {self.seed}: last flag at pixel {len(pix)}"
                    await ctx.tick()
                self.cycles.append(ctx.get(d.cycles) - c0)
                ctx.set(d.pix.ready, 1)
                self.pixels.append(pix)
            self.counters.append({k: ctx.get(getattr(d.counters, k)) for k in CORE_COUNTERS})
        self.alarm = ctx.get(d.alarm)
        ctx.set(d.clear, 1)
        await ctx.tick()
        ctx.set(d.clear, 0)
        self.cleared = {k: ctx.get(getattr(d.counters, k)) for k in CORE_COUNTERS}

    def simulate(self):
        async def body(ctx, d):
            await self.body(ctx, d)
        run_sim(self.core, body)
        return self


class _RomStreamDut(Elaboratable):
    """``hw.core._rom_stream`` of ``values`` with its stream on ports."""

    def __init__(self, values, width: int):
        self.values, self.width = values, width
        self.valid, self.ready, self.done = Signal(), Signal(), Signal()
        self.index, self.data = Signal(16), Signal(width)

    def elaborate(self, platform):
        m = Module()
        v, i, d, r, done = _rom_stream(m, "t", self.values, self.width)
        m.d.comb += [self.valid.eq(v), self.index.eq(i), self.data.eq(d), r.eq(self.ready),
                     self.done.eq(done)]
        return m


@pytest.mark.parametrize("n", [1, 2, 600])
def test_rom_stream_order_under_backpressure(n):
    """A boot ROM stream (pipelined) delivers word i with index i, in order, each
    exactly once, under random ``ready``; ``done`` only after the last word was taken."""
    seed = 1000 + n
    rng = np.random.default_rng(seed)
    values = [int(v) for v in rng.integers(0, 1 << 12, n)]
    dut = _RomStreamDut(values, 12)
    got = []

    async def body(ctx, d):
        for _ in range(3 * n + 20):
            r = bool(rng.random() < 0.6)
            ctx.set(d.ready, r)
            await ctx.delay(1e-8)
            if ctx.get(d.valid) and r:
                got.append((ctx.get(d.index), ctx.get(d.data)))
            assert not ctx.get(d.done) or len(got) == n, f"seed {seed}: done after {len(got)}"
            await ctx.tick()
        assert ctx.get(d.done), f"seed {seed}: not done"
    run_sim(dut, body)
    assert got == list(enumerate(values)), f"seed {seed}: stream differs"


def _sum_counts(program, runs):
    tot = dict.fromkeys(CORE_COUNTERS, 0)
    for sampler, steps, n in runs:
        for k, v in program.counts(sampler, steps).items():
            tot[k] += v * n
    return tot


def test_core_ddim_then_ddpm_bit_exact(program):
    """One DDIM-3 image, then DDPM-8 tables loaded through the ``tables`` port and two DDPM-8
    images (the second under random back-pressure on ``pix``): every pixel equal to the golden
    hardware-mode sampler fed by the TRNG twin of the same emulator seed, from reset; counters
    equal to ``counts``; the noise-free image's cycles equal to ``image_cycles``."""
    n_ddim, n_ddpm = 3, 8
    ddpm = program.tables("ddpm", n_ddpm)
    core = build_core(program, "ddim", n_ddim, seed=SEED)
    assert core.image.tables.steps == n_ddim
    b = CoreBench(core, [("images", n_ddim, 1, 1.0), ("tables", ddpm),
                         ("images", n_ddpm, 1, 1.0), ("images", n_ddpm, 1, 0.4)],
                  seed=SEED).simulate()

    # Golden: one TRNG stream, image after image, as the core consumes it (the "trng" source
    # of hw_sample with this seed; small chunks only to generate less).
    src = TRNGNoise(SEED, gauss_cfg=program.gauss, prefetch=False, chunk_samples=4096)
    g1 = hw_sample(program, src, 1, n_ddim, "ddim")
    g2 = hw_sample(program, src, 2, n_ddpm, "ddpm")
    want = np.concatenate([g1.pixels.reshape(1, -1), g2.pixels.reshape(2, -1)])
    got = np.asarray(b.pixels)
    assert got.shape == want.shape, f"seed {SEED}: {got.shape} pixels, want {want.shape}"
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"emulator seed {SEED}: {len(bad)} pixels differ, first at "
                           f"(image, pixel) {tuple(bad[0])}: RTL {got[tuple(bad[0])]}, "
                           f"golden {want[tuple(bad[0])]}")
    # The comparison discriminates: another emulator seed gives other pixels.
    other = hw_sample(program, TRNGNoise(SEED + 1, gauss_cfg=program.gauss, prefetch=False,
                                         chunk_samples=4096), 1, n_ddim, "ddim")
    assert not np.array_equal(other.pixels.reshape(-1), got[0]), f"seed {SEED}"
    # The DDPM pictures are not saturated to two levels (the comparison sees the state).
    assert len(np.unique(want[1:])) > 8, f"seed {SEED}: golden pixels {want}"

    # Counters: after the DDIM image and at the end.
    c_ddim = _sum_counts(program, [("ddim", n_ddim, 1)])
    c_all = _sum_counts(program, [("ddim", n_ddim, 1), ("ddpm", n_ddpm, 2)])
    for got_c, want_c, what in ((b.counters[0], c_ddim, "after DDIM"),
                                (b.counters[-1], c_all, "at the end")):
        diff = {k: (got_c[k], want_c[k]) for k in CORE_COUNTERS if got_c[k] != want_c[k]}
        assert not diff, f"seed {SEED}: counters {what} (RTL, counts): {diff}"
    assert all(v == 0 for v in b.cleared.values()), f"seed {SEED}: clear left {b.cleared}"

    # Boot: docs/core.md "Loading": ready rises max(weight words, cfg words) + 4 cycles after
    # reset (one word per cycle on each boot stream, two pipeline registers, `loaded`).
    img = core.image
    want_boot = max(len(img.prog_data), len(img.cfg_words)) + 4
    assert b.ready_cycle == want_boot, f"seed {SEED}: boot {b.ready_cycle}, formula {want_boot}"

    # Cycles: the noise-free image with a full FIFO takes exactly the formula; DDPM rows may
    # wait for noise (the TRNG's rate), never less than the formula.
    want_cyc = image_cycles(core.image, n_ddim)
    assert b.cycles[0] == want_cyc, f"seed {SEED}: DDIM cycles {b.cycles[0]}, formula {want_cyc}"
    assert all(c >= image_cycles(core.image, n_ddpm) for c in b.cycles[1:]), b.cycles
    print(f"\nboot {b.ready_cycle} cycles; cycles per image DDIM-{n_ddim} {b.cycles[0]} "
          f"(formula {want_cyc}), DDPM-{n_ddpm} {b.cycles[1:]} (formula "
          f"{image_cycles(core.image, n_ddpm)}); alarm {b.alarm}")


class SeedBench(CoreBench):
    """:class:`CoreBench` with ``run_seed`` on the core's ``seed`` input from the start."""

    def __init__(self, core, phases, seed: int, run_seed: int):
        super().__init__(core, phases, seed)
        self.run_seed = run_seed

    async def body(self, ctx, d):
        ctx.set(d.seed, self.run_seed)
        await super().body(ctx, d)


def test_core_runtime_seed_bit_exact(program):
    """``runtime_seed``: a core whose reset seed is 0 runs with seed SEED + 4 on its ``seed``
    input; a DDIM-3 and a DDPM-8 image equal the golden on ``TRNGNoise(SEED + 4)``, and differ
    from the reset seed's."""
    run_seed = SEED + 4
    core = build_core(program, "ddim", 3, seed=0, runtime_seed=True)
    b = SeedBench(core, [("images", 3, 1, 1.0), ("tables", program.tables("ddpm", 8)),
                         ("images", 8, 1, 1.0)], seed=SEED, run_seed=run_seed).simulate()
    got = np.asarray(b.pixels)
    src = TRNGNoise(run_seed, gauss_cfg=program.gauss, prefetch=False, chunk_samples=4096)
    want = np.concatenate([hw_sample(program, src, 1, 3, "ddim").pixels.reshape(1, -1),
                           hw_sample(program, src, 1, 8, "ddpm").pixels.reshape(1, -1)])
    bad = np.argwhere(got != want)
    assert got.shape == want.shape and bad.size == 0, \
        f"run seed {run_seed}: RTL {got.tolist()}, golden {want.tolist()}"
    other = hw_sample(program, TRNGNoise(0, gauss_cfg=program.gauss, prefetch=False,
                                         chunk_samples=4096), 1, 3, "ddim")
    assert not np.array_equal(other.pixels.reshape(-1), got[0]), f"run seed {run_seed}"
    assert b.cycles[0] == image_cycles(core.image, 3), b.cycles


def test_build_core_bad_input(program):
    with pytest.raises(ValueError, match="steps"):
        core_image(program, "ddpm", T + 1)
    with pytest.raises(ValueError, match="table_depth"):
        core_image(program, "ddim", 5, table_depth=4)
    with pytest.raises(ValueError, match="sampler"):
        core_image(program, "euler", 5)
    with pytest.raises(ValueError, match="HardwareProgram"):
        core_image(object())
    img = core_image(program, "ddim", 3)
    with pytest.raises(ValueError, match="noise_fifo_depth"):
        DiffusionCore(img, trng_emulator_config(SEED), noise_fifo_depth=1)
    with pytest.raises(ValueError, match="counter_bits"):
        DiffusionCore(img, trng_emulator_config(SEED), counter_bits=8)
    with pytest.raises(ValueError, match="EmulatorConfig"):
        DiffusionCore(img, None)
    with pytest.raises(ValueError, match="trng_clock"):
        DiffusionCore(img, trng_emulator_config(SEED), trng_clock="free")
    with pytest.raises(ValueError, match="runtime_seed"):
        DiffusionCore(img, trng_emulator_config(SEED), runtime_seed=1)


def test_core_image_is_generated(program):
    """The boot ROMs hold the program's own words (nothing typed by hand): weight words in
    address order, biases/LUT/descriptors as ``cfg_words``; the sequencer's initial tables are
    the sampler's."""
    img = core_image(program, "ddpm", 5)
    e = program.engine
    assert list(img.prog_data) == [d for _, d in e.prog_words()]
    assert list(img.cfg_words) == [tuple(w) for w in e.cfg_words()]
    assert np.array_equal(img.tables.c1, program.tables("ddpm", 5).c1)
    assert np.array_equal(img.temb, program.temb_codes)
    assert img.n_layers == len(e.layers) == 2
    # engine increments = counts of one step minus nothing (n = 1)
    c1 = program.counts("ddim", 1)
    for k, v in img.increments.items():
        assert v == c1[k], (k, v, c1[k])
