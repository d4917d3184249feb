"""Sequencer: the twin (model/blocks/sequencer.py) against the hardware-mode sampler's literal
reference loop on the committed checkpoint, and the RTL (hw/sequencer.py) in Amaranth's simulator
against the twin, integer for integer.

``SeqBench`` drives the RTL one cycle at a time: a stub ε̂ source (seeded random codes, offered
only after a row's last network-input beat is taken, as the layer engine does) and a noise source
with random gaps, random back-pressure on ``net_in`` and ``pix``; it checks every network-input
code, every pixel, the noise consumed and the counters against the twin, and that nothing offered
on an output changes or vanishes before it is taken.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hw.sequencer import (CFG_C1, CFG_C1_SHIFT, CFG_C2, CFG_SG, CFG_TEMB, CFG_TS,
                          ROW_OVERHEAD_CYCLES, Sequencer as RTL, image_cycles, row_cycles)
from model.blocks.config import GaussConfig
from model.blocks.crossbar_config import signed_range
from model.blocks.sequencer import (COUNTERS, X_MAX, X_MIN, Sequencer as Twin, hw_step,
                                    pixels_from_x, x_init)
from tests.simutil import run_sim


def tables_ns(c1, c2, sg, ts, c1_shift):
    return SimpleNamespace(c1=np.asarray(c1, dtype=np.int64), c2=np.asarray(c2, dtype=np.int64),
                           sg=np.asarray(sg, dtype=np.int64), ts=np.asarray(ts, dtype=np.int64),
                           c1_shift=c1_shift)


def random_tables(rng, steps, temb_rows, c1_shift=None, zero_sg_p=0.3):
    sh = int(rng.integers(0, 16)) if c1_shift is None else c1_shift
    c1 = rng.integers(1 << sh, min(65535, 2 << sh) + 1, steps)      # c1 in [1, 2]
    c2 = rng.integers(0, 65536, steps)
    sg = np.where(rng.random(steps) < zero_sg_p, 0, rng.integers(1, 65536, steps))
    ts = rng.integers(0, temb_rows, steps)
    return tables_ns(c1, c2, sg, ts, sh)


# ------------------------------------------------------------------------------------------------
# RTL bench
class SeqBench:
    """One RTL sequencer, images run back to back, every stream checked against a twin."""

    def __init__(self, seed, *, tables, steps, images=1, temb=None, load_cfg=False,
                 p_net=0.7, p_pix=0.6, p_eps=0.7, p_noise=0.7, eps=None, noise=None,
                 eager_eps=False, **kw):
        self.seed, self.eager_eps = seed, eager_eps
        self.rng = rng = np.random.default_rng(seed)
        self.kw = kw
        self.steps, self.images, self.tables = steps, images, tables
        self.p = (p_net, p_pix, p_eps, p_noise)
        self.twin = Twin(tables=tables, temb=temb, **kw)
        g = self.twin.gauss
        zlo, zhi = signed_range(g.sample_bits)
        elo, ehi = signed_range(self.twin.eps_bits)
        n_noisy = int((np.asarray(tables.sg)[:steps] != 0).sum())
        n_noise = images * self.twin.dim * (1 + n_noisy)
        if noise is None:       # N(0, 1) codes, one in ten anywhere in the format's range
            noise = np.clip(np.floor(rng.normal(0, 1, n_noise) * 2.0 ** g.frac_bits + 0.5),
                            zlo, zhi).astype(np.int64)
            wild = rng.random(n_noise) < 0.1
            noise[wild] = rng.integers(zlo, zhi + 1, int(wild.sum()))
        if eps is None:         # ε̂ ~ N(0, 1) in its scale 2**-fe, one in ten anywhere
            shape = (images, steps, self.twin.dim)
            eps = np.clip(np.floor(rng.normal(0, 1, shape) * 2.0 ** self.twin.fe + 0.5),
                          elo, ehi).astype(np.int64)
            wild = rng.random(shape) < 0.1
            eps[wild] = rng.integers(elo, ehi + 1, int(wild.sum()))
        self.noise, self.eps = np.asarray(noise), np.asarray(eps)
        # The twin's expected streams (images one after another, noise in order).
        self.want = []
        used = 0
        for k in range(images):
            r = self.twin.run(steps, lambda i, c, k=k: self.eps[k, i], self.noise[used:])
            used += r.noise_used
            self.want.append(r)
        assert used == n_noise
        if load_cfg:          # the RTL starts empty and gets its tables through the cfg port
            self.dut = RTL(**kw)
            self.cfg_words = self._cfg_words(tables, temb)
        else:
            self.dut = RTL(tables=tables, temb=temb, **kw)
            self.cfg_words = []
        self.image_spans = []

    def _cfg_words(self, tables, temb):
        w = []
        for tgt, arr in ((CFG_C1, tables.c1), (CFG_C2, tables.c2), (CFG_SG, tables.sg),
                         (CFG_TS, tables.ts)):
            w += [(tgt, a, int(v)) for a, v in enumerate(arr)]
        if temb is not None:
            w += [(CFG_TEMB, a, int(v) & 0xFFFF) for a, v in enumerate(np.ravel(temb))]
        w.append((CFG_C1_SHIFT, 0, tables.c1_shift))
        return w

    def simulate(self):
        run_sim(self.dut, self._tb)
        return self

    async def _tb(self, ctx, d):
        seed, rng = self.seed, self.rng
        p_net, p_pix, p_eps, p_noise = self.p
        tw = self.twin
        dim, per_row = tw.dim, tw.dim + tw.temb_dim
        cyc = 0
        # cfg writes with random gaps
        for tgt, a, v in self.cfg_words:
            while rng.random() < 0.2:
                ctx.set(d.cfg.valid, 0)
                await ctx.tick()
            ctx.set(d.cfg.valid, 1)
            ctx.set(d.cfg.payload, {"target": tgt, "addr": a, "data": v})
            assert ctx.get(d.cfg.ready), f"seed {seed}: cfg not ready while idle"
            await ctx.tick()
        ctx.set(d.cfg.valid, 0)
        nz = 0                                       # noise samples taken
        for k in range(self.images):
            want = self.want[k]
            got_in, got_pix, got_eps = [], [], 0
            ctx.set(d.steps, self.steps)
            ctx.set(d.start, 1)
            assert not ctx.get(d.busy)
            await ctx.tick()
            ctx.set(d.start, 0)
            start = cyc
            cyc += 1
            held_in = held_pix = None
            eps_on = noise_on = False
            limit = cyc + 200 + 40 * image_cycles(dim, tw.temb_dim, self.steps)
            while True:
                assert cyc < limit, (f"seed {seed}: image {k} timeout: {len(got_in)} inputs, "
                                     f"{got_eps} eps, {len(got_pix)} pixels, {nz} noise")
                if ctx.get(d.done):
                    break
                nready = int(rng.random() < p_net)
                pready = int(rng.random() < p_pix)
                row_e = got_eps // dim
                # The engine offers a row's ε̂ only after its last input; an eager source
                # offers it at once (the RTL must not take it before the row's inputs are out).
                if not eps_on and got_eps < self.steps * dim \
                        and (self.eager_eps or len(got_in) >= (row_e + 1) * per_row):
                    eps_on = bool(rng.random() < p_eps)
                if not noise_on and nz < len(self.noise):
                    noise_on = bool(rng.random() < p_noise)
                ctx.set(d.net_in.ready, nready)
                ctx.set(d.pix.ready, pready)
                ctx.set(d.eps.valid, int(eps_on))
                if eps_on:
                    ctx.set(d.eps.payload.code, int(self.eps[k, row_e, got_eps % dim]))
                ctx.set(d.noise.valid, int(noise_on))
                if noise_on:
                    ctx.set(d.noise.payload, int(self.noise[nz]))
                # outputs
                iv = ctx.get(d.net_in.valid)
                ic = ctx.get(d.net_in.payload.code)
                if held_in is not None:
                    assert iv and ic == held_in, f"seed {seed}: cycle {cyc}: net_in changed"
                held_in = ic if iv and not nready else None
                if iv and nready:
                    got_in.append(ic)
                pv = ctx.get(d.pix.valid)
                pp = (ctx.get(d.pix.payload.pixel), ctx.get(d.pix.payload.last))
                if held_pix is not None:
                    assert pv and pp == held_pix, f"seed {seed}: cycle {cyc}: pix changed"
                held_pix = pp if pv and not pready else None
                if pv and pready:
                    got_pix.append(pp)
                if eps_on and ctx.get(d.eps.ready):
                    assert len(got_in) >= (row_e + 1) * per_row, \
                        f"seed {seed}: cycle {cyc}: ε̂ of row {row_e} taken before its inputs"
                    got_eps += 1
                    eps_on = False
                if noise_on and ctx.get(d.noise.ready):
                    nz += 1
                    noise_on = False
                await ctx.tick()
                cyc += 1
            self.image_spans.append(cyc - start)
            ctx.set(d.eps.valid, 0)
            ctx.set(d.noise.valid, 0)
            # compare
            wi = want.net_inputs.reshape(-1)
            assert len(got_in) == wi.size, f"seed {seed}: image {k}: {len(got_in)} inputs"
            bad = np.nonzero(np.asarray(got_in) != wi)[0]
            assert not bad.size, (f"seed {seed}: image {k}: net input {bad[0]} (row "
                                  f"{bad[0] // per_row}): RTL {got_in[bad[0]]}, twin "
                                  f"{wi[bad[0]]}")
            assert [p for p, _ in got_pix] == want.pixels.tolist(), \
                f"seed {seed}: image {k}: pixels {got_pix} vs twin {want.pixels.tolist()}"
            assert [lst for _, lst in got_pix] == [0] * (dim - 1) + [1], f"seed {seed}: last"
            assert got_eps == self.steps * dim, f"seed {seed}: {got_eps} eps taken"
            assert ctx.get(d.busy) == 0
            await ctx.tick()
            cyc += 1
        assert nz == len(self.noise), f"seed {seed}: noise taken {nz}, want {len(self.noise)}"
        assert not ctx.get(d.busy)
        got = {n: ctx.get(getattr(d.counters, n)) for n in COUNTERS}
        assert got == self.twin.counts, f"seed {seed}: counters {got} vs twin {self.twin.counts}"
        self.counters = got


# ------------------------------------------------------------------------------------------------
# RTL against the twin
@pytest.mark.parametrize("seed, load_cfg, eager", [(11, False, False), (12, True, True)])
def test_rtl_random_tables_small(seed, load_cfg, eager):
    """dim 8, 5 time codes, random tables (random c1_shift, a third of the rows noise-free),
    random back-pressure and gaps, two images back to back; once with the tables and the time
    table written through the cfg port and an ε̂ source that offers before the inputs are out."""
    rng = np.random.default_rng(seed)
    tab = random_tables(rng, 5, 7)
    temb = rng.integers(-128, 128, (7, 5))
    SeqBench(seed, tables=tab, temb=temb, steps=5, images=2, load_cfg=load_cfg,
             eager_eps=eager, dim=8, temb_dim=5, temb_rows=7, table_depth=6,
             fx_in=int(rng.integers(0, 13)), fe=int(rng.integers(-4, 9))).simulate()


def test_rtl_formats_and_cfg_loading():
    """Another noise format (Q2.13: x_T rounds), 6-bit ε̂ and DAC codes, no time embedding, tables
    loaded through the cfg port (with gaps), a run shorter than the table, steps = 1 after."""
    seed = 21
    rng = np.random.default_rng(seed)
    g = GaussConfig(int_bits=2, frac_bits=13)
    tab = random_tables(rng, 4, 3, zero_sg_p=0.5)
    kw = dict(dim=6, temb_dim=0, temb_rows=3, table_depth=4, fx_in=9, fe=2, gauss=g, eps_bits=6,
              in_bits=6)
    SeqBench(seed, tables=tab, steps=3, load_cfg=True, **kw).simulate()
    SeqBench(seed + 1, tables=tab, steps=1, load_cfg=True, **kw).simulate()


def test_rtl_saturation_both_rails_and_c1_shift():
    """c1 up to 256 (c1_shift 8), extreme ε̂ and noise: X hits both rails and the D clamp; the
    twin's own check that the rails were reached keeps the test meaningful."""
    seed = 31
    rng = np.random.default_rng(seed)
    steps, dim = 4, 8
    tab = tables_ns([65535, 256, 300, 65535], [65535, 65535, 0, 40000], [0, 65535, 65535, 0],
                    [0, 1, 2, 3], 8)
    zlo, zhi = signed_range(16)
    noise = rng.choice([zlo, zhi, -1, 1], dim * 3)
    eps = rng.choice([-128, 127], (1, steps, dim))
    b = SeqBench(seed, tables=tab, steps=steps, eps=eps, noise=noise, dim=dim, temb_dim=2,
                 temb_rows=4, table_depth=4, fx_in=12, fe=-4,
                 temb=rng.integers(-128, 128, (4, 2)))
    # the trajectory visits both rails (checked on the twin's first two rows)
    x = x_init(noise[:dim], 11)
    x = hw_step(x, eps[0, 0], 0, 65535, 8, 65535, 0, -4, 11)
    assert (x == X_MAX).any() and (x == X_MIN).any()
    b.simulate()


def test_rtl_ddim1_table_and_zero_noise_rows():
    """The committed schedule's DDIM:1 table (c1_shift 8) and DDIM:3 (no noise consumed at all)
    on dim 16 with full-size C1/C2 from the real schedule."""
    from model.diffusion.hardware import step_tables
    from model.diffusion.schedules import DDPMSchedule
    sched = DDPMSchedule.scaled(1000)
    for seed, steps in ((41, 1), (42, 3)):
        tab = step_tables(sched, "ddim", steps)
        assert tab.noisy_steps == 0
        if steps == 1:
            assert tab.c1_shift == 8
        rng = np.random.default_rng(seed)
        ts = np.arange(steps)                         # a compact time table: row i -> row i
        t2 = tables_ns(tab.c1, tab.c2, tab.sg, ts, tab.c1_shift)
        b = SeqBench(seed, tables=t2, steps=steps, dim=16, temb_dim=4, temb_rows=steps,
                     table_depth=steps, temb=rng.integers(-128, 128, (steps, 4)))
        assert len(b.noise) == 16
        b.simulate()


@pytest.fixture(scope="module")
def committed():
    from model.diffusion.hardware import HardwareProgram, default_checkpoint
    p = default_checkpoint()
    if not p.is_file():
        pytest.skip(f"no committed checkpoint at {p}")
    torch.set_num_threads(1)
    return HardwareProgram.from_checkpoint(p)


def test_rtl_dim64_real_ddpm_table(committed):
    """dim 64, the committed program's strided DDPM-4 table, its full 1000 x 64 time-embedding
    table, c1_shift, fx_in and fe; random ε̂ stub; back-pressure; counters equal the program's
    per-image counts."""
    prog = committed
    tab = prog.tables("ddpm", 4)
    assert 0 < tab.noisy_steps < 4
    b = SeqBench(51, tables=tab, steps=4, temb=prog.temb_codes, dim=prog.dim,
                 temb_dim=prog.temb_dim, temb_rows=prog.steps_max, table_depth=prog.steps_max,
                 fx_in=prog.fx_in, fe=prog.fe, gauss=prog.gauss, in_bits=prog.spec.input_bits,
                 eps_bits=prog.spec.input_bits, p_net=0.8, p_pix=0.5, p_eps=0.8,
                 p_noise=0.8).simulate()
    want = prog.counts("ddpm", 4)
    assert b.counters == {n: want[n] for n in COUNTERS}


def test_rtl_cycles_without_stalls():
    """Every stream ready/valid: start to done takes image_cycles (= 1 + dim + steps·(2·dim +
    temb_dim + 8) + dim + 1), counted by the bench."""
    rng = np.random.default_rng(61)
    dim, td, steps = 8, 3, 3
    tab = random_tables(rng, steps, 2)
    b = SeqBench(61, tables=tab, steps=steps, images=2, dim=dim, temb_dim=td, temb_rows=2,
                 table_depth=steps, temb=rng.integers(-128, 128, (2, td)), p_net=1, p_pix=1,
                 p_eps=1, p_noise=1).simulate()
    assert ROW_OVERHEAD_CYCLES == 8 and row_cycles(dim, td) == 2 * dim + td + 8
    assert b.image_spans == [image_cycles(dim, td, steps)] * 2
    assert image_cycles(64, 64, 1) - image_cycles(64, 64, 0) == 200


def test_rtl_start_ignored_outside_range_and_cfg_blocked_while_busy():
    tab = tables_ns([32768], [0], [0], [0], 15)
    dut = RTL(dim=2, temb_dim=1, temb_rows=1, table_depth=1, tables=tab)

    async def body(ctx, d):
        ctx.set(d.steps, 0)
        ctx.set(d.start, 1)
        await ctx.tick()
        assert not ctx.get(d.busy)
        ctx.set(d.steps, 1)
        await ctx.tick()
        ctx.set(d.start, 0)
        assert ctx.get(d.busy) and not ctx.get(d.cfg.ready)
        ctx.set(d.clear, 1)
        await ctx.tick()
        assert ctx.get(d.counters.state_writes) == 0
    run_sim(dut, body)


def test_rtl_rejects_bad_parameters():
    for kw, name in ((dict(dim=0), "dim"), (dict(dim=5000), "dim"), (dict(fx_in=13), "fx_in"),
                     (dict(fe=-5), "fe"), (dict(eps_bits=17), "eps_bits"),
                     (dict(table_depth=0), "table_depth"), (dict(temb_rows=0), "temb_rows"),
                     (dict(gauss=GaussConfig(int_bits=5, frac_bits=11)), "gauss"),
                     (dict(gauss="q4.11"), "gauss"), (dict(counter_bits=4), "counter_bits"),
                     (dict(temb=np.zeros((3, 3), dtype=int)), "temb")):
        with pytest.raises(ValueError, match=name):
            RTL(**kw)
    with pytest.raises(ValueError, match="c1_shift"):
        RTL(table_depth=2, tables=tables_ns([1, 1], [0, 0], [0, 0], [0, 0], 16))
    with pytest.raises(ValueError, match="ts"):
        RTL(temb_rows=4, tables=tables_ns([1], [0], [0], [4], 15))
    with pytest.raises(ValueError, match="c2"):
        RTL(tables=tables_ns([1], [65536], [0], [0], 15))
    with pytest.raises(ValueError, match="table_depth"):
        RTL(table_depth=1, tables=tables_ns([1, 1], [0, 0], [0, 0], [0, 0], 15))
    with pytest.raises(ValueError, match="dim"):
        Twin(dim=0)


# ------------------------------------------------------------------------------------------------
# The twin against the hardware-mode sampler
def test_twin_equals_hw_sample_reference(committed):
    """The committed program, the real LayerEngine twin as the network, two images back to back
    from one noise stream: the twin's x0, pixels and counters equal hw_sample_reference's, and its
    network inputs are HardwareProgram.net_input of its states."""
    from model.diffusion.hardware import hw_sample_reference, noise_codes_source
    prog = committed
    for sampler, steps in (("ddpm", 2), ("ddim", 2)):
        ref = hw_sample_reference(prog, "lfsr", 2, steps, sampler, seed=3)
        tab = prog.tables(sampler, steps)
        tw = Twin(dim=prog.dim, temb_dim=prog.temb_dim, temb_rows=prog.steps_max,
                  table_depth=prog.steps_max, fx_in=prog.fx_in, fe=prog.fe, gauss=prog.gauss,
                  tables=tab, temb=prog.temb_codes, in_bits=prog.spec.input_bits,
                  eps_bits=prog.spec.input_bits)
        eng = prog.engine.engine()
        src = noise_codes_source("lfsr", 3, prog.gauss)
        xs = []
        for k in range(2):
            r = tw.run(steps, lambda i, codes: eng.run(codes[None])[0], src)
            xs.append(r)
            assert np.array_equal(r.pixels, pixels_from_x(r.x0))
            assert np.array_equal(r.pixels.reshape(prog.image_shape), ref.pixels[k])
            assert np.array_equal(r.x0, ref.x0[k])
        want = prog.counts(sampler, steps)
        assert tw.counts == {n: 2 * want[n] for n in COUNTERS}
        # the first row's network input is net_input of x_T
        z = np.asarray(noise_codes_source("lfsr", 3, prog.gauss).codes(prog.dim))
        x_t = x_init(z, prog.z_frac)
        assert np.array_equal(xs[0].net_inputs[0], prog.net_input(x_t[None], int(tab.ts[0]))[0])


def test_twin_rejects_bad_input():
    tw = Twin(dim=4, temb_dim=2, temb_rows=3, table_depth=2)
    with pytest.raises(ValueError, match="steps"):
        tw.run(3, lambda i, c: np.zeros(4, dtype=int), np.zeros(100, dtype=int))
    with pytest.raises(ValueError, match="temb"):
        tw.load_temb(np.zeros((3, 2), dtype=int) + 200)
    with pytest.raises(ValueError, match="eps"):
        tw.run(1, lambda i, c: np.full(4, 300), np.zeros(100, dtype=int))
    with pytest.raises(ValueError, match="noise"):
        tw.load_tables([1], [1], [1], [0], 15)
        tw.run(1, lambda i, c: np.zeros(4, dtype=int), np.zeros(5, dtype=int))
