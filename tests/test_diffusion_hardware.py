"""The hardware-mode sampler (model/diffusion/hardware.py) against its contract
(docs/hardware-mode.md): integer rules by hand and by exact rationals, tables from the schedule,
the vectorised sampler against the literal one-image-at-a-time loop through the LayerEngine twin,
the noise order, counts against the twin's own counters, regeneration from the checkpoint, bad
input, and closeness in distribution to the float sampler on the committed checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from model.blocks.config import GaussConfig
from model.blocks.crossbar_config import ACT_LUT, ACT_NONE, ACT_RELU
from model.diffusion import hardware as hwm
from model.diffusion.data import load_dataset
from model.diffusion.hardware import (C1_MAX_SHIFT, C2_FRAC, SIGMA_FRAC, X_FRAC, X_MAX, X_MIN,
                                      FastEngine, HardwareProgram, acc_frac, c1_shift_for,
                                      float_coefficients, hw_sample, hw_sample_reference, hw_step,
                                      input_x_codes, pixels_from_x, step_pixel, step_tables,
                                      x_init)
from model.diffusion.nets import EpsMLP
from model.diffusion.noise import make_noise
from model.diffusion.schedules import DDPMSchedule
from model.nn import CrossbarSpec

Z_FRAC = GaussConfig().frac_bits          # 11: the TRNG Gaussian generator's Q4.11


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", 0)


@pytest.fixture(scope="module")
def small(digits):
    """A random EpsMLP with sizes that are not multiples of the 16x16 tile (72 inputs, 48 and
    40 hidden: partial row and column blocks) on a short schedule."""
    torch.manual_seed(3)
    sched = DDPMSchedule.scaled(40)
    net = EpsMLP(64, 40, (48, 40), temb_dim=8)
    # the 8-bit crossbar: the fast engine's int8 path (HW_SPEC's 10-bit codes take the float one)
    return HardwareProgram.from_checkpoint(net, sched, CrossbarSpec(), calib_seed=5, data=digits,
                                           calib_n=256)


@pytest.fixture(scope="module")
def small_lut(digits):
    """The same with SiLU hidden layers: the engine's table activation (ACT_LUT)."""
    torch.manual_seed(4)
    net = EpsMLP(64, 40, (48, 40), temb_dim=8, act="silu")
    return HardwareProgram.from_checkpoint(net, DDPMSchedule.scaled(40), CrossbarSpec(),
                                           calib_seed=5, data=digits, calib_n=256)


@pytest.fixture(scope="module")
def committed_path():
    # SPINDIFF_TEST_CHECKPOINT: run these tests on another checkpoint (e.g. before one is
    # committed)
    p = Path(os.environ.get("SPINDIFF_TEST_CHECKPOINT") or hwm.default_checkpoint())
    if not p.is_file():
        pytest.skip(f"no committed digits checkpoint at {p} (make train)")
    return p


@pytest.fixture(scope="module")
def committed(committed_path):
    return HardwareProgram.from_checkpoint(committed_path)


# ------------------------------------------------------------------------------------------------
# Integer rules
def exact_step(x, e, z, c1, c1_shift, c2, sg, fe, z_frac):
    """The update as exact rationals, independent of the shift formulation: every rounding is
    floor(v + 1/2) of the exact value, every saturation a clamp to the state range."""
    def rnd(v: Fraction) -> int:
        return math.floor(v + Fraction(1, 2))

    q = rnd(Fraction(c2 * e, 2 ** (C2_FRAC + fe - X_FRAC)))        # c2·ε̂ in state LSBs
    d = min(max(x - q, X_MIN), X_MAX)
    v = Fraction(c1 * d, 2 ** c1_shift)                             # c1·d, state LSBs
    if sg:
        v += Fraction(sg * z, 2 ** (SIGMA_FRAC + z_frac - X_FRAC))  # sigma·z, state LSBs
    return min(max(rnd(v), X_MIN), X_MAX)


def test_step_known_answers():
    one = 1 << X_FRAC                                       # 1.0 in Q3.12
    # c1 = 1, c2·ε̂ = 0, no noise: x unchanged
    assert step_pixel(one, 0, 0, 1 << 15, 15, 1000, 0, 4, Z_FRAC) == one
    # c1 = 1.5 on 1 LSB: 1.5 rounds half up to 2; on -1 LSB, -1.5 rounds up to -1
    assert step_pixel(1, 0, 0, 3 << 14, 15, 0, 0, 4, Z_FRAC) == 2
    assert step_pixel(-1, 0, 0, 3 << 14, 15, 0, 0, 4, Z_FRAC) == -1
    # sigma = 0.5, z = 1.0 (2048 in Q4.11), x = 0: x' = 0.5 = 2048 in Q3.12
    assert step_pixel(0, 0, 1 << Z_FRAC, 1 << 15, 15, 0, 1 << 15, 4, Z_FRAC) == one // 2
    # c2 = 0.5 (32768), ε̂ = 1.0 (16 at fe = 4): x = 1.0 → 1.0 − 0.5 = 0.5
    assert step_pixel(one, 16, 0, 1 << 15, 15, 1 << 15, 0, 4, Z_FRAC) == one // 2
    # Q = round_shift(c2·E, 16 + 4 − 12 = 8): c2·E = 384 → 1.5 LSB → 2; −384 → −1.5 → −1
    assert step_pixel(0, 3, 0, 1 << 15, 15, 128, 0, 4, Z_FRAC) == -2
    assert step_pixel(0, -3, 0, 1 << 15, 15, 128, 0, 4, Z_FRAC) == 1
    # both rails of the state: c1 ≈ 2 on the largest magnitudes
    assert step_pixel(X_MAX, 0, 0, 65535, 15, 0, 0, 4, Z_FRAC) == X_MAX
    assert step_pixel(X_MIN, 0, 0, 65535, 15, 0, 0, 4, Z_FRAC) == X_MIN
    # D saturates before the multiply: x = −8, −c2·ε̂ = −127.99 → D = −8 (not −136), then ×1
    assert step_pixel(X_MIN, 127, 0, 1 << 15, 15, 65535, 0, 0, Z_FRAC) == X_MIN
    # ... and the noise brings it back inside: −8 + 0.5·4 = −6
    assert step_pixel(X_MIN, 127, 4 << Z_FRAC, 1 << 15, 15, 65535, 1 << 15, 0, Z_FRAC) \
        == -6 * one
    # sg = 0 ignores z entirely
    assert step_pixel(100, 0, 32767, 1 << 15, 15, 0, 0, 4, Z_FRAC) == 100


def test_step_equals_exact_rationals():
    rng = np.random.default_rng(11)
    n = 4000
    x = rng.integers(X_MIN, X_MAX + 1, n)
    x[:8] = [X_MIN, X_MAX, 0, -1, 1, X_MIN, X_MAX, 4096]
    e = rng.integers(-128, 128, n)
    z = rng.integers(-(1 << 15), 1 << 15, n)
    for c1_shift, fe in ((15, 4), (8, 7), (0, -4), (12, 0)):
        c1 = int(rng.integers(1 << c1_shift, 65536)) if c1_shift < 16 else 65535
        c2 = int(rng.integers(0, 65536))
        sg = int(rng.integers(0, 65536))
        for sgv in (0, sg):
            vec = hw_step(x, e, z, c1, c1_shift, c2, sgv, fe, Z_FRAC)
            ref = [exact_step(int(a), int(b), int(c), c1, c1_shift, c2, sgv, fe, Z_FRAC)
                   for a, b, c in zip(x[:300], e[:300], z[:300])]
            assert vec[:300].tolist() == ref, (c1_shift, fe, sgv)
            assert [step_pixel(int(a), int(b), int(c), c1, c1_shift, c2, sgv, fe, Z_FRAC)
                    for a, b, c in zip(x[:50], e[:50], z[:50])] == ref[:50]
            assert vec.min() >= X_MIN and vec.max() <= X_MAX


def test_accumulator_alignment_and_widths():
    af = acc_frac(Z_FRAC)
    assert af == X_FRAC + C1_MAX_SHIFT == SIGMA_FRAC + Z_FRAC == 27
    # worst-case |A| (c1 = 65535 at shift 0 on |D| = 2**15, plus sigma·z): fits 48 bits signed
    worst = ((65535 << 15) << (af - X_FRAC)) + ((65535 << 15) << (af - SIGMA_FRAC - Z_FRAC))
    assert worst < (1 << 47)
    rng = np.random.default_rng(1)
    assert hw_step(np.array([X_MIN, X_MAX]), np.array([127, -128]), np.array([-32768, 32767]),
                   65535, 0, 65535, 65535, 0, Z_FRAC).tolist() == [X_MIN, X_MAX]
    del rng


def test_pixels_and_init():
    one = 1 << X_FRAC
    x = np.array([X_MIN, -one - 1, -one, 0, one, one + 1, X_MAX])
    assert pixels_from_x(x).tolist() == [0, 0, 0, 128, 255, 255, 255]
    # every value of [-1, 1] maps to round_half_up((v + 1)/2·255)
    xs = np.arange(-one, one + 1)
    want = np.floor((xs / one + 1) / 2 * 255 + 0.5)
    assert np.array_equal(pixels_from_x(xs), want)
    # x_T from Q4.11 noise: ×2, saturating; from finer noise: rounded
    assert x_init(np.array([-(1 << 15), -3, 0, 5, (1 << 15) - 1]), 11).tolist() == \
        [X_MIN, -6, 0, 10, X_MAX]
    assert x_init(np.array([-3, 3, 5]), 13).tolist() == [-1, 2, 3]
    # network input codes: round_shift by 12 − fx, saturated to the DAC range
    assert input_x_codes(np.array([-129, -128, 127, 128, 4096]), 4, -128, 127).tolist() == \
        [-1, 0, 0, 1, 16]
    assert input_x_codes(np.array([X_MIN, X_MAX]), 5, -128, 127).tolist() == [-128, 127]


# ------------------------------------------------------------------------------------------------
# Tables
def test_tables_follow_the_schedule():
    s = DDPMSchedule.scaled(1000)
    ts, c1, c2, sg = float_coefficients(s, "ddpm")
    assert ts.tolist() == list(range(999, -1, -1))
    assert np.array_equal(c1, s.c1.numpy()[ts]) and np.array_equal(sg, s.sigma.numpy()[ts])
    # the generalised (strided) formulas give the schedule's own values on the full grid
    at = s.alpha_bar.numpy()[ts]
    as_ = np.concatenate([at[1:], [1.0]])
    a = at / as_
    assert np.allclose(1 / np.sqrt(a), c1, rtol=1e-12)
    assert np.allclose((1 - a) / np.sqrt(1 - at), c2, rtol=1e-9)
    assert np.allclose(np.sqrt((1 - a) * (1 - as_) / (1 - at)), sg, rtol=1e-9, atol=1e-12)
    for sampler, steps in (("ddpm", None), ("ddpm", 10), ("ddim", 50), ("ddim", 1)):
        tab = step_tables(s, sampler, steps)
        ts, c1, c2, sg = float_coefficients(s, sampler, steps)
        for codes, val, frac in ((tab.c1, c1, tab.c1_shift), (tab.c2, c2, C2_FRAC),
                                 (tab.sg, sg, SIGMA_FRAC)):
            err = np.abs(codes - val * 2.0 ** frac)
            assert np.all((err <= 0.5) | (codes == 65535)), sampler
            assert codes.min() >= 0 and codes.max() <= 65535
        assert tab.c1_shift == c1_shift_for(float(c1.max()))
        assert tab.sg[-1] == 0 and tab.noisy.sum() == (tab.sg != 0).sum()
        assert tab.ts.tolist() == ts.tolist() and len(ts) == tab.steps
    assert step_tables(s, "ddpm").c1_shift == 15
    assert step_tables(s, "ddim", 1).c1_shift == 8          # c1 = 1/sqrt(ᾱ_999) ≈ 157.4
    assert step_tables(s, "ddpm").noisy_steps == 999
    assert step_tables(s, "ddim", 50).noisy_steps == 0


def test_ddim_form_equals_the_float_sampler_update():
    """c1·(x − c2·ε̂) is the DDIM (η = 0) update √ᾱ_s·x̂0 + √(1−ᾱ_s)·ε̂ (samplers.py)."""
    s = DDPMSchedule.scaled(200)
    ts, c1, c2, _ = float_coefficients(s, "ddim", 7)
    ab = s.alpha_bar.numpy()
    rng = np.random.default_rng(0)
    x, e = rng.normal(size=50), rng.normal(size=50)
    for i, t in enumerate(ts):
        a_t, a_p = ab[t], (ab[ts[i + 1]] if i + 1 < len(ts) else 1.0)
        x0 = (x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
        want = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * e
        assert np.allclose(c1[i] * (x - c2[i] * e), want, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------------------------
# Engine and sampler: bit-exact
def test_program_layout(small):
    p = small
    assert [(d.in_dim, d.out_dim) for d in p.engine.layers] == [(72, 48), (48, 40), (40, 64)]
    assert p.temb_codes.shape == (40, 8) and p.fx_in == p.layer_scales[0][0]
    assert p.fe == p.engine.fx_out
    lo, hi = p.spec.input_range
    want = np.clip(np.floor(p_temb(p) * 2.0 ** p.fx_in + 0.5), lo, hi)
    assert np.array_equal(p.temb_codes, want)


def p_temb(p):
    from model.diffusion.nets import sinusoidal_table
    return sinusoidal_table(p.steps_max, p.temb_dim).to(torch.float64).numpy()


@pytest.mark.parametrize("path", ["int8", "float"])
@pytest.mark.parametrize("which", ["small", "small_lut"])
def test_fast_engine_equals_layer_engine_twin(request, which, path):
    prog = request.getfixturevalue(which)
    eng = FastEngine(prog.engine, chunk=7, path=path)
    twin = prog.engine.engine()
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (40, 72))
    x[0], x[1], x[2] = -128, 127, 0                      # rails and zeros
    assert np.array_equal(eng.run(x), twin.run(x))
    if which == "small_lut":
        assert [d.act for d in prog.engine.layers] == [ACT_LUT, ACT_LUT, ACT_NONE]
        assert not np.array_equal(prog.engine.lut, np.arange(-128, 128))


def test_fast_engine_equals_twin_on_a_trajectory(small):
    """The network inputs of a real run through the fast engine and the LayerEngine twin, step
    by step."""
    tab = small.tables("ddpm", 5)
    z = make_noise("lfsr", 9).codes(4 * small.dim)
    X = x_init(z.reshape(4, small.dim), Z_FRAC)
    twin = small.engine.engine()
    for i in range(tab.steps):
        codes = small.net_input(X, int(tab.ts[i]))
        E = small.fast.run(codes)
        assert np.array_equal(E, twin.run(codes))
        X = hw_step(X, E, 0, int(tab.c1[i]), tab.c1_shift, int(tab.c2[i]), 0, small.fe, Z_FRAC)


def test_lut_net_sampler_equals_reference_loop(small_lut):
    ref = hw_sample_reference(small_lut, "lfsr", 2, 4, "ddpm", seed=8)
    assert np.array_equal(ref.x0, hw_sample(small_lut, "lfsr", 2, 4, "ddpm", seed=8).x0)
    assert ref.counts["lut_reads"] == 4 * (48 + 40)


def test_batch_sampler_equals_reference_loop(small):
    for sampler, steps in (("ddpm", 6), ("ddim", 4), ("ddpm", None)):
        n = 3 if steps else 1
        ref = hw_sample_reference(small, "lfsr", n, steps, sampler, seed=7)
        fast = hw_sample(small, "lfsr", n, steps, sampler, seed=7)
        assert np.array_equal(ref.x0, fast.x0), (sampler, steps)
        assert np.array_equal(ref.pixels, fast.pixels)
        # the counts the energy model gets equal the twin's own tile counters
        for k in ("tile_mvms", "macs", "adc_conversions", "dac_conversions"):
            assert fast.counts_total[k] == ref.counts_total[k + "_twin"], k
        assert fast.counts["gaussian_samples"] == small.noise_per_image(
            small.tables(sampler, steps))
    twin = hw_sample(small, "lfsr", 5, 6, "ddpm", seed=7, engine="twin")
    chunked = hw_sample(small, "lfsr", 5, 6, "ddpm", seed=7, chunk=2)
    assert np.array_equal(twin.x0, chunked.x0)
    # the images are the state scaled and clipped, the pixels the contract's mapping
    assert torch.equal(chunked.images.reshape(5, -1),
                       torch.from_numpy(np.clip(chunked.x0 / 4096.0, -1, 1)).float())


def test_noise_order_is_image_major(small):
    """Image k consumes noise [k·P, (k+1)·P): x_T first, then one vector per noisy step."""
    tab = small.tables("ddpm", 5)
    per = small.noise_per_image(tab)
    assert per == small.dim * (1 + tab.noisy_steps) == small.dim * 5
    two = hw_sample(small, "lfsr", 2, 5, "ddpm", seed=3)
    src = make_noise("lfsr", 3)
    src.codes(per)
    second = hw_sample(small, src, 1, 5, "ddpm")
    assert np.array_equal(two.x0[1], second.x0[0])
    assert not np.array_equal(two.x0[0], two.x0[1])


def trng(seed):
    # small chunks, no background thread: the stream is the same, the test is quicker
    return make_noise("trng", seed, chunk_samples=1 << 10, prefetch=False)


def test_trng_noise_is_the_twins_stream(small):
    src = trng(21)
    a = hw_sample(small, src, 2, 3, "ddpm")
    assert a.noise["name"] == "trng" and src.drawn == 2 * small.dim * 3
    b = hw_sample_reference(small, trng(21), 2, 3, "ddpm")
    assert np.array_equal(a.x0, b.x0)
    # x_T is the first dim integers of the TRNG twin's stream, doubled (Q4.11 -> Q3.12)
    z = trng(21).codes(small.dim)
    one = hw_sample(small, trng(21), 1, 1, "ddim")
    tab = small.tables("ddim", 1)
    E = small.fast.run(small.net_input(x_init(z[None], Z_FRAC), int(tab.ts[0])))
    want = hw_step(x_init(z[None], Z_FRAC), E, 0, int(tab.c1[0]), tab.c1_shift, int(tab.c2[0]),
                   0, small.fe, Z_FRAC)
    assert np.array_equal(one.x0, want)
    c = hw_sample(small, trng(22), 2, 3, "ddpm")
    assert not np.array_equal(a.x0, c.x0)


def test_counts_formulas(small):
    c = small.counts("ddpm", 6)
    t = small.engine.cfg.tile
    blocks = sum(d.blocks(t) for d in small.engine.layers)
    assert blocks == 5 * 3 + 3 * 3 + 3 * 4
    assert c["tile_mvms"] == 6 * blocks and c["macs"] == 6 * blocks * 256
    assert c["macs_logical"] == 6 * (72 * 48 + 48 * 40 + 40 * 64)
    assert c["gaussian_samples"] == 64 * 6 and c["temb_table_reads"] == 6 * 8
    assert c["lut_reads"] == 6 * sum(d.out_dim for d in small.engine.layers if d.act == ACT_LUT)


# ------------------------------------------------------------------------------------------------
# Generation from the checkpoint
def test_regenerates_identically(small, digits, tmp_path):
    torch.manual_seed(3)
    net = EpsMLP(64, 40, (48, 40), temb_dim=8)
    again = HardwareProgram.from_checkpoint(net, DDPMSchedule.scaled(40), CrossbarSpec(),
                                            calib_seed=5, data=digits, calib_n=256)
    assert again.digest() == small.digest()
    assert again.to_dict((("ddim", 7),)) == small.to_dict((("ddim", 7),))
    with torch.no_grad():
        net.mlp[0].weight[0, 0] += 0.25          # one weight moves: the program changes
    other = HardwareProgram.from_checkpoint(net, DDPMSchedule.scaled(40), CrossbarSpec(),
                                            calib_seed=5, data=digits, calib_n=256)
    assert other.digest() != small.digest()


def test_committed_checkpoint_program(committed, committed_path, tmp_path):
    from model.diffusion.train import load_checkpoint
    p = committed
    # the program is the checkpoint's net, layer for layer (docs/hardware-mode.md §1)
    _, meta = load_checkpoint(committed_path)
    kw = meta["net_kwargs"]
    dims = [kw["dim"] + kw["temb_dim"], *kw["hidden"], kw["dim"]]
    assert [(d.in_dim, d.out_dim) for d in p.engine.layers] == list(zip(dims[:-1], dims[1:]))
    hidden_act = ACT_RELU if kw["act"] == "relu" else ACT_LUT
    assert [d.act for d in p.engine.layers] == [hidden_act] * len(kw["hidden"]) + [ACT_NONE]
    t = p.engine.cfg.tile
    assert t.slots == sum(-(-a // 16) * -(-b // 16) for a, b in zip(dims[:-1], dims[1:]))
    assert p.dim == 64 and p.image_shape == (1, 8, 8) and p.steps_max == 1000
    assert p.spec == hwm.HW_SPEC
    assert p.fast.path == ("int8" if p.spec.input_bits <= 8 else "float")
    again = HardwareProgram.from_checkpoint(committed_path)
    assert again.digest() == p.digest()
    out = tmp_path / "program.json"
    assert hwm.main(["--checkpoint", str(committed_path), "--out", str(out),
                     "--tables", "ddpm,ddim:50"]) == 0
    d = json.loads(out.read_text())
    assert d == json.loads(json.dumps(p.to_dict((("ddpm", None), ("ddim", 50)))))
    assert d["formats"]["x_state"]["q"] == "Q3.12" and d["formats"]["noise_z"]["q"] == "Q4.11"


def test_committed_checkpoint_bit_exact_short_run(committed):
    for sampler, steps in (("ddpm", 3), ("ddim", 2)):
        ref = hw_sample_reference(committed, "lfsr", 2, steps, sampler, seed=1)
        fast = hw_sample(committed, "lfsr", 2, steps, sampler, seed=1)
        assert np.array_equal(ref.x0, fast.x0)


def _rms(a, b):
    return ((a - b) ** 2).mean(1).sqrt()


def test_sequencer_matches_float_sampler_on_the_digital_net(committed, committed_path, digits):
    """The same network codes (model.nn's digital mode, bit-exact with the engine, calibrated on
    the program's batch) through the float DDIM-50 sampler and through the integer sequencer,
    from the same N(0, I) draws (DDIM consumes noise only for x_T, in the same order; the
    hardware rounds it to Q4.11): the images pair up, so only the sequencer's arithmetic (Q3.12
    state, 16-bit tables, DAC rounding of x) differs. Paired images must be far closer than
    unpaired ones, and the pixel statistics equal."""
    from model.diffusion.samplers import sample
    from model.diffusion.train import load_checkpoint, mlp_inputs, quantized_copy
    net, meta = load_checkpoint(committed_path)
    data = load_dataset(meta["dataset"], meta.get("split", "train"), int(meta.get("seed", 0)))
    qnet = quantized_copy(net, committed.spec, mlp_inputs(net, data, committed.sched,
                                                          committed.calib_n,
                                                          committed.calib_seed))
    n = 256
    xq = sample("ddim", qnet, committed.sched, make_noise("software", 4), n, steps=50,
                progress=False).clamp(-1, 1).reshape(n, -1).double()
    xh = hw_sample(committed, "software", n, 50, "ddim", seed=4).images.reshape(n, -1).double()
    paired = _rms(xq, xh).median()
    unpaired = _rms(xq, xh.roll(1, 0)).median()
    assert paired < 0.3 * unpaired, (float(paired), float(unpaired))
    assert abs(float(xq.mean() - xh.mean())) < 0.02
    assert abs(float(xq.std() - xh.std())) < 0.02


def test_close_to_float_sampler(committed, committed_path, digits):
    """Loose distribution check against the float net: DDPM in hardware mode vs float, 256
    images each: pixel mean and std, and the mean distance to the nearest training image. Only
    meaningful for a checkpoint trained for the crossbar (QAT): a float-trained net's 8-bit
    post-training quantization is the training's matter, not the sequencer's (the previous test
    checks the sequencer on that net's own quantized codes). The float side is the float
    checkpoint the QAT run started from (``meta["init"]``, the software baseline of the
    evaluation): a QAT net's own float forward is not what it was tuned for. DDPM, the goal's
    sampler: deterministic DDIM amplifies the 8-bit net's errors (README, known limits)."""
    from model.diffusion.samplers import sample
    from model.diffusion.train import DEFAULT_CHECKPOINT, load_checkpoint
    _, meta = load_checkpoint(committed_path)
    if not meta.get("qat_spec"):
        pytest.skip(f"{committed_path.name} is float-trained (no qat_spec): post-training "
                    f"8-bit quantization, not what the hardware runs by contract")
    init = Path((meta.get("init") or {}).get("path") or DEFAULT_CHECKPOINT)
    net, _ = load_checkpoint(init if init.is_file() else DEFAULT_CHECKPOINT)
    n = 256
    xf = sample("ddpm", net, committed.sched, make_noise("software", 4), n,
                progress=False).clamp(-1, 1).reshape(n, -1).double()
    xh = hw_sample(committed, "software", n, None, "ddpm", seed=5).images.reshape(n, -1).double()
    train = digits.x.reshape(len(digits.x), -1).double()
    assert abs(float(xf.mean() - xh.mean())) < 0.05
    assert abs(float(xf.std() - xh.std())) < 0.05
    nn_f = torch.cdist(xf, train).min(1).values.mean()
    nn_h = torch.cdist(xh, train).min(1).values.mean()
    noise = torch.cdist(torch.rand(n, 64).double() * 2 - 1, train).min(1).values.mean()
    assert abs(float(nn_h / nn_f) - 1) < 0.2, (float(nn_f), float(nn_h))
    assert nn_h < 0.6 * noise


# ------------------------------------------------------------------------------------------------
# Bad input
def test_bad_input(small, digits):
    for steps in (0, -1, 41, 1.5, True, "3"):
        with pytest.raises(ValueError, match="steps"):
            hw_sample(small, "lfsr", 1, steps)
        with pytest.raises(ValueError, match="steps"):
            small.tables("ddim", steps)
    with pytest.raises(ValueError, match="sampler"):
        hw_sample(small, "lfsr", 1, 3, sampler="euler")
    with pytest.raises(ValueError, match="n = 0"):
        hw_sample(small, "lfsr", 0, 3)
    with pytest.raises(ValueError, match="noise"):
        hw_sample(small, "quantum", 1, 3)
    with pytest.raises(ValueError, match="noise"):
        hw_sample(small, object(), 1, 3)
    with pytest.raises(ValueError, match="engine"):
        hw_sample(small, "lfsr", 1, 3, engine="gpu")
    with pytest.raises(ValueError, match="program"):
        hw_sample("program", "lfsr", 1, 3)
    with pytest.raises(ValueError, match="Q4.11"):
        hw_sample(small, make_noise("lfsr", 1, gauss_cfg=GaussConfig(int_bits=3, frac_bits=12)),
                  1, 3)
    with pytest.raises(ValueError, match="not found"):
        HardwareProgram.from_checkpoint("/nonexistent/ck.pt")
    net = EpsMLP(64, 40, (16,), temb_dim=8)
    with pytest.raises(ValueError, match="sched"):
        HardwareProgram.from_checkpoint(net, DDPMSchedule.scaled(50), data=digits)
    with pytest.raises(ValueError, match="sched"):
        HardwareProgram.from_checkpoint(net, None, data=digits)
    with pytest.raises(ValueError, match="input_signed"):
        HardwareProgram.from_checkpoint(net, DDPMSchedule.scaled(40), data=digits,
                                        spec=CrossbarSpec(input_signed=False))
    with pytest.raises(ValueError, match="path_or_net"):
        HardwareProgram.from_checkpoint(42)
    with pytest.raises(ValueError, match="c1_max"):
        c1_shift_for(70000.0)
    with pytest.raises(ValueError, match="codes"):
        small.fast.run(np.full((2, 72), 128))


def test_speed_probe_and_markdown_run(digits):
    """measure_speed (the make-bench figure) and the §7 Markdown block run and report what they
    say; no timing bound here (speed figures belong to make bench)."""
    torch.manual_seed(1)
    sched = DDPMSchedule.scaled(30)
    net = EpsMLP(64, 30, (32,), temb_dim=8)
    p = HardwareProgram.from_checkpoint(net, sched, data=digits, calib_n=128)
    r = hwm.measure_speed(p, net, n=3, steps=2, sampler="ddim")
    assert r["n"] == 3 and r["steps"] == 2 and r["float_s"] > 0 and r["hw_s"] > 0
    assert r["ratio"] == pytest.approx(r["hw_s"] / r["float_s"])
    md = p.markdown()
    assert md.count("\n| 0 | 72 → 32 | ReLU |") == 1 and "| ddim | 30 | " in md
