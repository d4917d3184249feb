"""Noise sources (model/diffusion/noise.py), samplers (model/diffusion/samplers.py) and the analog
integrator emulation (model/diffusion/integrator.py).

The samplers are driven by the *exact* ε / score of Gaussian data N(MU, S²) (closed form under
both the DDPM schedule and the VP-SDE, ``model/diffusion/schedules.py`` and ``sde.py``), so a
correct sampler must return N(MU, S²) samples (loose bounds), and must match the exact affine
recursion of its own update rule (tight bounds). Noise sources are checked against their exact
pmfs; the TRNG source against the compiled TRNG twin's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from model.blocks.config import GaussConfig
from model.blocks.fastpath import NoisePath
from model.blocks.gaussian import exact_pmf
from model.diffusion.integrator import IntegratorParams, dac_quantize, integrate, sweep
from model.diffusion.nets import EpsMLP
from model.diffusion.noise import (LFSR_TAPS, NOISE_SOURCES, SoftwareNoise, lane_seed, lfsr_bits,
                                  make_noise)
from model.diffusion.samplers import (MAX_GUIDANCE, SAMPLERS, calibration_batch, sample,
                                      with_compute)
from model.diffusion.schedules import DDPMSchedule
from model.diffusion.score_net import ScoreMLP
from model.diffusion.sde import VPSDE, VPSDE_DEFAULT

MU, S, D = 0.5, 0.3, 2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Small tensors: torch's thread pool only costs time on the shared 2-core machine.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------------------------
# Stand-ins with closed forms
class Brownian:
    """dx = g dW (f = 0, constant g): the held-noise test's SDE."""

    t_eps = 1e-3

    def __init__(self, g):
        self._g = g

    def f(self, x, t):
        return 0.0 * x

    def g(self, t):
        return torch.tensor(self._g, dtype=torch.float64)


class GaussEps(nn.Module):
    """Exact ε̂(x_t, t) = E[ε | x_t] for data N(MU, S²) under a DDPM schedule."""

    def __init__(self, sched):
        super().__init__()
        self.ab, self.dim = sched.alpha_bar, D

    def forward(self, x, t):
        ab = self.ab[t].to(x.dtype)[:, None]
        return (1 - ab).sqrt() * (x - ab.sqrt() * MU) / (ab * S * S + 1 - ab)


class GaussScore(nn.Module):
    """Exact score of the VP marginal of N(mu_c, S²) data; with ``means`` a class-conditional
    version (label = index into ``means``, label ``classes`` = the "no class" mean)."""

    def __init__(self, sde, means=None, eps=False):
        super().__init__()
        self.sde, self.dim, self.eps = sde, D, eps
        self.means = means
        self.classes = None if means is None else len(means) - 1

    def forward(self, x, t, y=None):
        m, sd = self.sde.marginal(t.to(torch.float64))
        m, sd = m.to(x.dtype)[:, None], sd.to(x.dtype)[:, None]
        mu = MU if y is None else torch.tensor(self.means, dtype=x.dtype)[y][:, None]
        s = -(x - m * mu) / (m * m * S * S + sd * sd)
        return -sd * s if self.eps else s


class Zero(nn.Module):
    dim = 1

    def forward(self, x, t, y=None):
        return torch.zeros_like(x)


def moments(x):
    return float(x.mean()), float(x.std())


def predict(kind, ss, steps=None, eta=0.0):
    """Mean and std of a sampler's output for the exact (linear) ε / score of N(MU, S²) data,
    from x_T ~ N(0, 1), through the affine recursion of each update rule (float64, written
    independently of samplers.py): the sampler must match it up to sampling error."""
    m, v = 0.0, 1.0
    if kind in ("ddpm", "ddim"):
        ab = ss.alpha_bar.double()
        ts = list(range(ss.steps - 1, -1, -1)) if kind == "ddpm" else \
            sorted(ss.ddim_timesteps(steps), reverse=True)
        for i, t in enumerate(ts):
            a = float(ab[t])
            k = math.sqrt(1 - a) / (a * S * S + 1 - a)         # ε̂ = k·x + e0
            e0 = -k * math.sqrt(a) * MU
            if kind == "ddpm":
                c1, c2, sg = float(ss.c1[t]), float(ss.c2[t]), float(ss.sigma[t])
                A, B, q = c1 * (1 - c2 * k), -c1 * c2 * e0, (sg * sg if t > 0 else 0.0)
            else:
                ap = float(ab[ts[i + 1]]) if i + 1 < len(ts) else 1.0
                x1, x0 = (1 - math.sqrt(1 - a) * k) / math.sqrt(a), \
                    -math.sqrt(1 - a) * e0 / math.sqrt(a)
                A = math.sqrt(ap) * x1 + math.sqrt(1 - ap) * k
                B = math.sqrt(ap) * x0 + math.sqrt(1 - ap) * e0
                q = 0.0
            m, v = A * m + B, A * A * v + q
        return m, math.sqrt(v)
    samp = ss.for_sampling()
    ts = np.linspace(1.0, ss.t_eps, steps + 1)
    c = 1.0 if kind == "em" else 0.5

    def lin(t):                                               # drift = D1·x + D0
        mt, st = (float(u) for u in ss.marginal(float(t)))
        vt = mt * mt * S * S + st * st
        beta = float(samp.beta(float(t)))
        return -0.5 * beta + c * beta / vt, -c * beta * mt * MU / vt
    for i in range(steps):
        h = ts[i] - ts[i + 1]
        d1, d0 = lin(ts[i])
        if kind == "ode-heun":
            e1, e0 = lin(ts[i + 1])
            A = 1 - 0.5 * h * (d1 + e1 * (1 - d1 * h))
            B = -0.5 * h * (d0 - e1 * d0 * h + e0)
        else:
            A, B = 1 - d1 * h, -d0 * h
        q = float(samp.beta(float(ts[i]))) * h if kind == "em" and i + 1 < steps else 0.0
        m, v = A * m + B, A * A * v + q
    return m, math.sqrt(v)


def check_prediction(x, pred, what):
    """Sample mean/std vs the predicted ones: 5 standard errors (i.i.d. values)."""
    (m, s), (pm, ps) = moments(x), pred
    k = x.numel()
    assert abs(m - pm) < 5 * ps / math.sqrt(k) + 1e-3, (what, m, pm)
    assert abs(s - ps) < 5 * ps / math.sqrt(2 * k) + 1e-3, (what, s, ps)


# ------------------------------------------------------------------------------------------------
# Noise sources
def test_make_noise_bad_inputs():
    with pytest.raises(ValueError, match="name = 'uniform'"):
        make_noise("uniform", 1)
    for seed in (-1, 2**32, 1.5, True, None):
        with pytest.raises(ValueError, match="seed"):
            make_noise("software", seed)
    with pytest.raises(ValueError, match="bad options"):
        make_noise("lfsr", 1, colour="red")
    with pytest.raises(ValueError, match="fold"):
        make_noise("mtj", 1, fold=0)
    with pytest.raises(ValueError, match="taps"):
        make_noise("lfsr", 1, taps=3)
    with pytest.raises(ValueError, match="shape"):
        make_noise("software", 1).normal((2, -1))
    with pytest.raises(ValueError, match="n = -1"):
        make_noise("lfsr", 1).codes(-1)


@pytest.fixture(scope="module")
def sources():
    """name -> factory(seed); the TRNG with small chunks so a test does not wait for 2**20."""
    return {"software": lambda s: make_noise("software", s),
            "trng": lambda s: make_noise("trng", s, chunk_samples=1 << 14),
            "mtj": lambda s: make_noise("mtj", s, chunk_sweeps=1 << 11),
            "lfsr": lambda s: make_noise("lfsr", s)}


@pytest.mark.parametrize("name", NOISE_SOURCES)
def test_noise_determinism_and_split(sources, name):
    a, b, c = sources[name](7), sources[name](7), sources[name](8)
    x = a.normal((3, 1000))
    assert x.dtype == torch.float32 and x.shape == (3, 1000)
    y = torch.cat([b.normal((1,)), b.normal((999,)), b.normal((2, 1000)).reshape(-1)])
    assert torch.equal(x.reshape(-1), y)                     # the split never matters
    assert not torch.equal(x, c.normal((3, 1000)))            # another seed, another stream
    assert a.drawn == 3000 and b.drawn == 3000
    assert a.describe()["name"] == name and a.describe()["seed"] == 7


@pytest.mark.parametrize("name", ["trng", "mtj", "lfsr"])
def test_cbd_sources_against_exact_pmf(sources, name):
    """Values on the CBD lattice; histogram close to the ideal-bit pmf (loose: the TRNG's
    conditioned bits and the MTJ cells are close to, not exactly, unbiased)."""
    src = sources[name](3)
    n = 1 << 17
    codes = src.codes(n)
    vals, probs = exact_pmf(src.gauss_cfg, 0)
    assert np.isin(codes, vals).all()
    hist = np.bincount(np.searchsorted(vals, codes), minlength=vals.size) / n
    tv = 0.5 * np.abs(hist - probs).sum()
    assert tv < 0.02, (name, tv)
    mean_i, var_i = src.exact_moments()
    assert abs(var_i - 1.0) < 1e-3 and abs(mean_i) < 1e-3    # the ideal CBD is ≈N(0, 1)
    v = codes * src.fp.lsb
    assert abs(v.mean() - mean_i) < 0.06 and abs(v.var() - var_i) < 0.04, (v.mean(), v.var())
    x = src.normal((4096,)).numpy()                          # normal() = codes * 2**-frac_bits
    assert np.isin(np.round(x / src.fp.lsb).astype(np.int64), vals).all()


def test_software_moments():
    x = make_noise("software", 5).normal((1 << 17,))
    assert abs(float(x.mean())) < 0.02 and abs(float(x.var()) - 1) < 0.02


def test_lfsr_exact_pmf_chi_square():
    from model.blocks.gaussian import chi_square
    src = make_noise("lfsr", 11)
    codes = src.codes(1 << 17)
    vals, probs = exact_pmf(src.gauss_cfg, 0)
    _, p, _ = chi_square(codes, vals, probs)
    assert p > 1e-4, p
    x = codes * src.fp.lsb
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 0.02       # no gross lag-1 correlation


def test_lfsr_kernel_equals_bit_loop_and_taps_are_primitive():
    src = make_noise("lfsr", 9)
    st = src.state
    pc = src._popcounts(300)
    bits, st2 = lfsr_bits(st, 300 * 32)
    assert np.array_equal(bits.reshape(300, 32).sum(axis=1), pc) and st2 == src.state
    # Galois right-shift mask 0x80200003 <-> x^32 + x^22 + x^2 + x + 1: x has order 2^32 - 1
    # modulo the polynomial (primitive), so the LFSR has period 2^32 - 1.
    poly = (1 << 32) | (1 << 22) | (1 << 2) | (1 << 1) | 1
    assert LFSR_TAPS == (poly >> 1) | (1 << 31)

    def mulmod(a, b):
        r = 0
        while b:
            if b & 1:
                r ^= a
            b >>= 1
            a <<= 1
            if a >> 32:
                a ^= poly
        return r

    def powmod(e):
        r, a = 1, 2
        while e:
            if e & 1:
                r = mulmod(r, a)
            a = mulmod(a, a)
            e >>= 1
        return r

    order = 2**32 - 1
    assert powmod(order) == 1
    for q in (3, 5, 17, 257, 65537):                         # the primes of 2^32 - 1
        assert powmod(order // q) != 1


@pytest.mark.parametrize("prefetch", [False, True])
def test_trng_codes_equal_noise_path(prefetch):
    """The trng source's integers are NoisePath's Gaussian output for the same seed/config,
    across chunk boundaries, whatever the split of the calls."""
    src = make_noise("trng", 12345, chunk_samples=3000, prefetch=prefetch)
    got = np.concatenate([src.codes(1), src.codes(4500), src.codes(7000)])
    ref = NoisePath(**src._path_args).gauss_samples(got.size)
    assert np.array_equal(got, ref)
    # the default configuration is the chip make sim uses: emulator seed = seed, device seed 1
    from model.devices.mtj import default_emulator_config
    table, offsets = default_emulator_config(src.path.emu_cfg.array, seed=1)
    assert src.path.emu_cfg.table == tuple(table) and src.path.seed == 12345
    assert src.path.emu_cfg.offsets == tuple(offsets)


def test_trng_lanes(tmp_path):
    """lanes = L: chunk g comes from the TRNG instance g mod L (lane 0 has the seed itself, the
    others lane_seed(seed, i)); every number is an exact NoisePath output; with a disk cache a
    second source reads the same stream."""
    chunk, L = 1500, 3
    src = make_noise("trng", 77, chunk_samples=chunk, lanes=L)
    got = src.codes(7 * chunk + 11)
    refs = [NoisePath(**{**src._path_args, "seed": lane_seed(77, i)}).gauss_samples(3 * chunk)
            for i in range(L)]
    want = np.concatenate([refs[g % L][(g // L) * chunk:(g // L + 1) * chunk]
                           for g in range(8)])[:got.size]
    assert np.array_equal(got, want) and lane_seed(77, 0) == 77
    assert len(set(src.describe()["lane_seeds"])) == L
    a = make_noise("trng", 77, chunk_samples=chunk, lanes=L, cache_dir=tmp_path)
    assert np.array_equal(a.codes(got.size), got)
    assert len(list(tmp_path.glob("trng-*"))) == L
    b = make_noise("trng", 77, chunk_samples=chunk, lanes=L, cache_dir=tmp_path,
                   prefetch=False)
    assert np.array_equal(b.codes(got.size), got)
    with pytest.raises(ValueError, match="lanes"):
        make_noise("trng", 1, lanes=0)


def test_trng_disk_cache(tmp_path):
    chunk = 2000
    fresh = NoisePath(**make_noise("trng", 4, chunk_samples=chunk)._path_args).gauss_samples(
        5 * chunk + 10)
    a = make_noise("trng", 4, chunk_samples=chunk, cache_dir=tmp_path, prefetch=False)
    assert np.array_equal(a.codes(3 * chunk + 5), fresh[:3 * chunk + 5])
    d = a.cache_path
    assert sorted(p.name for p in d.glob("chunk-*.npy")) == [f"chunk-00000{i}.npy"
                                                              for i in range(4)]
    assert [p.name for p in d.glob("state-*.pkl")] == ["state-000004.pkl"]
    (d / "chunk-000001.npy").write_bytes(b"damaged")          # a damaged chunk is regenerated
    b = make_noise("trng", 4, chunk_samples=chunk, cache_dir=tmp_path, prefetch=False)
    assert np.array_equal(b.codes(5 * chunk + 10), fresh)     # chunks 0-3 read, 4-5 resumed
    assert (d / "chunk-000005.npy").is_file()
    c = make_noise("trng", 5, chunk_samples=chunk, cache_dir=tmp_path)
    assert c.cache_path != d                                  # another seed, another folder


def test_mtj_bias_follows_device_model():
    """Mean of the MTJ source's values equals the Poisson-binomial prediction from the cells'
    modelled probabilities (balanced popcount: bits 1, 3, 5, … of a group inverted); the
    open-loop calibration removes most of the bias."""
    def run(calibrate):
        src = make_noise("mtj", 21, calibrate=calibrate, drift=False)
        p = src.bit_probs().ravel()
        K = src.gauss_cfg.cbd_bits
        groups = p.reshape(-1, K)                 # 64 cells per sweep -> 2 samples per sweep
        odd = np.arange(K) % 2 == 1
        pred = float(np.mean([(2 * np.where(odd, 1 - g, g).sum() - K) / math.sqrt(K)
                              for g in groups]))
        plain = float(np.mean([(2 * g.sum() - K) / math.sqrt(K) for g in groups]))
        x = src.codes(1 << 16) * src.fp.lsb
        return pred, plain, float(x.mean()), float(np.abs(p - 0.5).max())
    pred_u, plain_u, mean_u, dev_u = run(False)
    pred_c, _, mean_c, dev_c = run(True)
    assert abs(mean_u - pred_u) < 0.03 and abs(mean_c - pred_c) < 0.03
    assert abs(plain_u - pred_u) > 0.1, (plain_u, pred_u)    # the test tells the two apart
    assert dev_c < 0.02 < dev_u                                # variation shows without calib
    # drift moves the cells' probabilities as the array runs
    src = make_noise("mtj", 21, drift=True, chunk_sweeps=1 << 14)
    p0 = src.bit_probs()
    src.codes(1 << 16)
    assert src.device.time_s > 0 and not np.allclose(src.bit_probs(), p0)
    with pytest.raises(ValueError, match="variation"):
        make_noise("mtj", 1, variation="none")
    with pytest.raises(ValueError, match="recal_interval_s = 0"):
        make_noise("mtj", 1, recal_interval_s=0)


def test_mtj_recalibration_holds_the_mean_under_drift():
    """With drift, one calibration at time 0 lets the mean walk off (0.06 after ~100 s of array
    time for seed 1); recalibrating every 0.05 s of array time keeps it near 0. A short horizon
    with a strong drift (5 mV/√s, ten times the default) keeps the test fast."""
    from model.devices.mtj import MTJVariation
    var = MTJVariation(drift_rw_mV_per_sqrt_s=5.0)
    means = {}
    for recal in (None, 0.05):
        src = make_noise("mtj", 3, variation=var, recal_interval_s=recal, chunk_sweeps=1 << 12)
        src.codes(1 << 21)                                       # ~2.3 s of array time
        x = src.codes(1 << 20) * src.fp.lsb
        means[recal] = (abs(float(x.mean())), src.recalibrations)
    assert means[0.05][1] > 10 and means[None][1] == 0, means
    assert means[0.05][0] < 0.01 < means[None][0], means


# ------------------------------------------------------------------------------------------------
# Samplers on the analytic Gaussian target
@pytest.fixture(scope="module")
def sched():
    return DDPMSchedule()


@pytest.fixture(scope="module")
def ddpm_result(sched):
    return sample("ddpm", GaussEps(sched), sched, make_noise("software", 1), 3000,
                  progress=False)


def test_ddpm_reaches_target(sched, ddpm_result):
    m, s = moments(ddpm_result)
    assert ddpm_result.shape == (3000, D) and ddpm_result.dtype == torch.float32
    check_prediction(ddpm_result, predict("ddpm", sched), "ddpm")
    assert abs(m - MU) < 0.02 and abs(s - S) < 0.03, (m, s)


def test_ddim_few_steps_close_to_ddpm(sched, ddpm_result):
    x = sample("ddim", GaussEps(sched), sched, make_noise("software", 1), 3000, steps=50,
               progress=False)
    (m, s), (m0, s0) = moments(x), moments(ddpm_result)
    check_prediction(x, predict("ddim", sched, 50), "ddim")
    assert abs(m - m0) < 0.02 and abs(s - s0) < 0.1 * s0, (m, s, m0, s0)
    # deterministic (eta = 0): the same start, the same result; eta > 0 draws noise
    x2 = sample("ddim", GaussEps(sched), sched, make_noise("software", 1), 3000, steps=50,
                progress=False)
    assert torch.equal(x, x2)
    src = make_noise("software", 1)
    x3 = sample("ddim", GaussEps(sched), sched, src, 3000, steps=20, eta=1.0, progress=False)
    assert src.drawn == 3000 * D * 20 and abs(moments(x3)[0] - MU) < 0.03


def test_strided_ddpm_follows_the_hardware_coefficients(sched, ddpm_result):
    """Ancestral DDPM on 50 of the 1000 steps: the affine recursion of the hardware mode's own
    strided tables (``hardware.float_coefficients``) predicts its mean and std; it reaches the
    target's mean like full DDPM, draws noise on every step but the last, and steps = T is full DDPM."""
    from model.diffusion.hardware import float_coefficients
    ts, c1, c2, sg = float_coefficients(sched, "ddpm", 50)
    ab = sched.alpha_bar.double()
    m, v = 0.0, 1.0
    for t, a1, a2, s_ in zip(ts, c1, c2, sg):
        a = float(ab[t])
        k = math.sqrt(1 - a) / (a * S * S + 1 - a)
        e0 = -k * math.sqrt(a) * MU
        m, v = a1 * (1 - a2 * k) * m - a1 * a2 * e0, (a1 * (1 - a2 * k)) ** 2 * v + s_ * s_
    src = make_noise("software", 1)
    x = sample("ddpm", GaussEps(sched), sched, src, 3000, steps=50, progress=False)
    assert src.drawn == 3000 * D * 50
    (mx, sx), (m0, s0) = moments(x), moments(ddpm_result)
    assert abs(mx - m) < 0.03 and abs(sx - math.sqrt(v)) < 0.05 * math.sqrt(v), (mx, sx, m, v)
    # 50 coarse ancestral steps shrink the spread (0.26 vs 0.30 for this target; the recursion
    # above predicts it), so the comparison with full DDPM is loose.
    assert abs(mx - m0) < 0.03 and abs(sx - s0) < 0.2 * s0
    full = sample("ddpm", GaussEps(sched), sched, make_noise("software", 1), 3000,
                  steps=sched.steps, progress=False)
    assert torch.equal(full, ddpm_result)
    with pytest.raises(ValueError, match="steps = 1001"):
        sample("ddpm", GaussEps(sched), sched, make_noise("software", 1), 3, steps=1001,
               progress=False)


@pytest.mark.parametrize("kind,steps,eps", [("em", 400, False), ("ode-euler", 400, False),
                                            ("ode-heun", 100, False), ("em", 400, True)])
def test_sde_samplers_reach_target(kind, steps, eps):
    sde = VPSDE_DEFAULT
    net = GaussScore(sde, eps=eps)
    x = sample(kind, net, sde, make_noise("software", 2), 3000, steps=steps, progress=False,
               parameterization="eps" if eps else "score")
    m, s = moments(x)
    check_prediction(x, predict(kind, sde, steps), kind)
    assert abs(m - MU) < 0.02 and abs(s - S) < 0.03, (kind, m, s)


def test_sampling_scale_changes_the_sde():
    """sample_beta_scale: the samplers integrate sde.for_sampling() (β scaled); with the exact
    training score a scale of 2 must not reproduce the target, a scale of 1 must."""
    res = {}
    for k in (1.0, 2.0):
        sde = VPSDE(0.1, 20.0, sample_beta_scale=k)
        x = sample("ode-heun", GaussScore(sde), sde, make_noise("software", 3), 2000, steps=60,
                   progress=False)
        check_prediction(x, predict("ode-heun", sde, 60), k)
        res[k] = moments(x)
    assert abs(res[1.0][1] - S) < 0.03 and abs(res[2.0][1] - S) > 0.05, res


class OffsetNoise(SoftwareNoise):
    """Software noise plus a constant offset (a biased source with a known bias)."""

    def __init__(self, seed, offset):
        super().__init__(seed)
        self.offset = offset

    def _normal(self, n):
        return super()._normal(n) + self.offset


def test_noise_sources_in_samplers():
    """Every noise source drives a sampler to the target's spread. A source whose numbers have
    a small mean b (the MTJ cells' residual bias; for the TRNG only what the balanced CBD
    popcount leaves, see below) shifts the result, as the reverse process accumulates b over
    its steps: the shift must equal that of software noise with the constant offset b. The
    LFSR's is none.

    The TRNG's conditioned bits lean to 0 (an XOR fold of two bits gives P(1) = ½ − 2δ² ≤ ½
    whatever the sign of the raw bias δ). With the plain popcount (cbd_balanced=False) that
    lean is the samples' mean, (2·P(1) − 1)·√K; the balanced popcount (the default) inverts the
    odd-position bits, so the common lean cancels and only the even/odd difference remains,
    (P_even − P_odd)·√K."""
    sde = VPSDE_DEFAULT
    n, steps = 2000, 200
    used = n * D * steps                          # numbers a run draws (x_T + steps − 1 draws)
    # (the MTJ without drift here: a bias that wanders during the run is not a constant offset)
    options = {"trng": {"chunk_samples": 1 << 15}, "mtj": {"drift": False}}
    for name in NOISE_SOURCES:
        opts = options.get(name, {})
        x = sample("em", GaussScore(sde), sde, make_noise(name, 4, **opts), n, steps=steps,
                   progress=False)
        m, s = moments(x)
        assert abs(s - S) < 0.03, (name, m, s)
        bias = float(make_noise(name, 4, **opts).normal((used,)).mean())
        xo = sample("em", GaussScore(sde), sde, OffsetNoise(4, bias), n, steps=steps,
                    progress=False)
        assert abs(m - moments(xo)[0]) < 0.015, (name, m, moments(xo), bias)
        if name in ("software", "lfsr"):
            assert abs(m - MU) < 0.03, (name, m)
    src = make_noise("trng", 4, chunk_samples=1 << 15)
    plain = make_noise("trng", 4, chunk_samples=1 << 15,
                       gauss_cfg=GaussConfig(cbd_balanced=False))
    K, m = src.gauss_cfg.cbd_bits, 1 << 18
    assert src.gauss_cfg.cbd_balanced and K == src.gauss_cfg.word_bits
    bits = NoisePath(**src._path_args).conditioned_bits(m * K)          # the same bits
    p1, p_even, p_odd = (float(b.mean()) for b in (bits, bits[0::2], bits[1::2]))
    bias_plain = float(plain.normal((m,)).mean())
    bias = float(src.normal((m,)).mean())
    assert bias_plain < -0.005 and p1 < 0.5
    assert abs(bias_plain - (2 * p1 - 1) * math.sqrt(K)) < 0.001    # the bias is the bits' lean
    assert abs(bias - (p_even - p_odd) * math.sqrt(K)) < 0.001      # balanced: what is left
    assert abs(bias) < 0.008 < abs(bias_plain), (bias, bias_plain)


def test_guidance():
    """Exact class scores of N(mu_y, S²) and of an unconditional N(mu_null, S²): the guided score
    (1+w)s_c − w·s_u is the score of N((1+w)mu_c − w·mu_null, S²) at every t."""
    sde = VPSDE_DEFAULT
    means = [0.8, -0.4, 0.1]                 # classes 0, 1; label 2 = no class
    net = GaussScore(sde, means=means)
    for w, y in ((0.0, 0), (0.0, 1), (1.0, 0), (2.5, 1)):
        x = sample("ode-heun", net, sde, make_noise("software", 5), 2000, steps=60, y=y,
                   guidance=w, progress=False)
        want = (1 + w) * means[y] - w * means[2]
        m, s = moments(x)
        assert abs(m - want) < 0.03 and abs(s - S) < 0.03, (w, y, m, want)
    ys = torch.tensor([0, 1] * 500)
    x = sample("em", net, sde, make_noise("software", 5), 1000, steps=200, y=ys, guidance=1.0,
               progress=False)
    for c in (0, 1):
        assert abs(float(x[ys == c].mean()) - (2 * means[c] - means[2])) < 0.05


def test_sampler_bad_inputs(sched):
    sde, eps_net, score_net = VPSDE_DEFAULT, GaussEps(sched), GaussScore(VPSDE_DEFAULT)
    src = make_noise("software", 1)
    cond = GaussScore(sde, means=[0.1, 0.2])
    cases = [
        (("heun", eps_net, sched, src, 4), {}, "kind"),
        (("ddpm", eps_net, sched, src, 4), {"steps": 0}, "steps = 0"),
        (("ddim", eps_net, sched, src, 4), {"steps": -3}, "steps = -3"),
        (("ddim", eps_net, sched, src, 4), {"steps": 1001}, "steps = 1001"),
        (("ddpm", eps_net, sched, src, 4), {"steps": 1001}, "steps = 1001"),
        (("em", score_net, sde, src, 4), {"steps": 2.5}, "steps"),
        (("analog", score_net, sde, src, 4), {"steps": 10}, "analog"),
        (("em", score_net, sde, src, 0), {}, "n = 0"),
        (("em", score_net, sde, "software", 4), {}, "NoiseSource"),
        (("em", score_net, sched, src, 4), {}, "VPSDE"),
        (("ddpm", eps_net, sde, src, 4), {}, "DDPMSchedule"),
        (("em", cond, sde, src, 4), {"y": 0, "guidance": -1.0}, "guidance"),
        (("em", cond, sde, src, 4), {"y": 0, "guidance": MAX_GUIDANCE + 1}, "guidance"),
        (("em", cond, sde, src, 4), {"y": 0, "guidance": float("nan")}, "guidance"),
        (("em", cond, sde, src, 4), {"guidance": 1.0}, "needs class labels"),
        (("em", score_net, sde, src, 4), {"y": 0}, "unconditional"),
        (("em", cond, sde, src, 4), {"y": 3}, "labels in"),
        (("em", cond, sde, src, 4), {"y": [0, 1, 0]}, "3 labels"),
        (("em", score_net, sde, src, 4), {"parameterization": "v"}, "parameterization"),
        (("em", score_net, sde, src, 4), {"colour": 1}, "unknown options"),
        (("ddim", eps_net, sched, src, 4), {"eta": 2.0}, "eta"),
        (("analog", score_net, sde, src, 4), {"tau_us": -1.0}, "tau_us"),
        (("analog", score_net, sde, src, 4), {"process": "jump"}, "process"),
        (("em", nn.Linear(2, 2), sde, src, 4), {}, "shape"),
    ]
    for args, kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            sample(*args, progress=False, **kw)


# ------------------------------------------------------------------------------------------------
# Compute modes
def test_with_compute_modes(sched):
    torch.manual_seed(0)
    net = EpsMLP(dim=8, steps=sched.steps, hidden=(16,), temb_dim=4)
    x0 = torch.rand(64, 8) * 2 - 1
    calib = calibration_batch(sched, x0, n=256, seed=1)
    x, t = calib[0][:32], calib[1][:32]
    fl = with_compute(net, "float")
    assert torch.equal(fl(x, t), net(x, t))                    # float mode: the same numbers
    with pytest.raises(ValueError, match="needs calib"):
        with_compute(net, "digital")
    with pytest.raises(ValueError, match="mode"):
        with_compute(net, "quantum", calib=calib)
    dg = with_compute(net, "digital", calib=calib)
    from model.nn import CrossbarSpec, crossbar_layers
    assert len(crossbar_layers(dg)) == 2 and not crossbar_layers(net)   # original untouched
    yd = dg(x, t)
    assert torch.equal(yd, dg(x, t))                           # bit-exact, no noise
    with torch.no_grad():
        err = float((yd - net(x, t)).abs().max()) / float(net(x, t).abs().max())
    assert 0 < err < 0.2, err
    from model.devices.crossbar import ReadNoise
    spec = CrossbarSpec(analog={"read_noise": ReadNoise("multiplicative", 0.05)})
    an = with_compute(net, "analog", spec, calib=calib)
    assert not torch.equal(an(x, t), an(x, t))                 # read noise on every call
    out = sample("ddim", dg, sched, make_noise("lfsr", 1), 16, steps=5, progress=False)
    assert out.shape == (16, 8) and torch.isfinite(out).all()


# ------------------------------------------------------------------------------------------------
# Analog integrator
def test_held_noise_carries_g2_delta():
    """Noise held constant over one refresh interval Δ contributes variance g²Δ over that
    interval, whatever the number of fine steps inside it."""
    g, n = 1.7, 40000
    sde = Brownian(g)
    one = IntegratorParams(tau_us=1.0, refresh_mhz=1.0, dt_ns=1000.0, noise_clip_sigma=6.0,
                           v_per_unit_x_V=0.01, dac_bits=16)         # 1 refresh, 1 fine step
    x1, st = integrate(Zero(), sde, make_noise("software", 3), n, params=one, progress=False,
                       return_stats=True)
    # the start x_T is noise too: subtract it (same stream, first draw)
    x_t = make_noise("software", 3).normal((n, 1))
    inc = x1 - x_t
    delta = st["delta"]
    assert st["refreshes"] == 1 and math.isclose(delta, 1 - sde.t_eps)
    assert abs(float(inc.var()) / (g * g * delta) - 1) < 0.03
    fine = IntegratorParams(**{**one.__dict__, "dt_ns": 1000.0 / 7})  # 7 fine steps
    x7, st7 = integrate(Zero(), sde, make_noise("software", 3), n, params=fine, progress=False,
                        return_stats=True)
    assert st7["fine_steps"] == 7 and torch.allclose(x7, x1, atol=1e-5)
    # 50 intervals: variance adds up to g² (1 - t_end)
    many = IntegratorParams(**{**one.__dict__, "refresh_mhz": 50.0, "dt_ns": 10.0})
    x50, st50 = integrate(Zero(), sde, make_noise("software", 4), n, params=many,
                          progress=False, return_stats=True)
    assert st50["refreshes"] == 50 and st50["fine_steps"] == 2
    inc = x50 - make_noise("software", 4).normal((n, 1))
    assert abs(float(inc.var()) / (g * g * (1 - sde.t_eps)) - 1) < 0.03


def test_analog_sampler_reaches_target_and_refresh_matters():
    sde = VPSDE_DEFAULT
    net = GaussScore(sde)
    x, st = integrate(net, sde, make_noise("software", 6), 3000, progress=False,
                      return_stats=True)
    m, s = moments(x)
    assert abs(m - MU) < 0.02 and abs(s - S) < 0.03, (m, s)
    assert st["network_calls"] == st["evaluations"] == st["refreshes"] * st["fine_steps"]
    assert st["refreshes"] == 200 and st["x_saturated_frac"] == 0.0
    ode = sample("analog", net, sde, make_noise("software", 6), 3000, progress=False,
                 process="ode")
    assert abs(moments(ode)[0] - MU) < 0.02 and abs(moments(ode)[1] - S) < 0.03
    # 4 refreshes over the solve: the held β, time and noise are far too coarse
    coarse = sample("analog", net, sde, make_noise("software", 6), 3000, progress=False,
                    refresh_mhz=0.4, dt_ns=250.0)
    assert abs(moments(coarse)[1] - S) > 2 * abs(s - S) + 0.02


def test_analog_saturation_and_dac():
    sde = VPSDE_DEFAULT
    x, st = integrate(GaussScore(sde), sde, make_noise("software", 7), 500, progress=False,
                      return_stats=True, v_sat_V=0.05, refresh_mhz=2.0, dt_ns=100.0)
    lim = 0.05 / 0.2
    assert float(x.abs().max()) <= lim + 1e-6 and st["x_saturated_frac"] > 0
    v = torch.linspace(-3, 3, 1001, dtype=torch.float64)
    q = dac_quantize(v, 2.0, 3)
    assert sorted(set(q.tolist())) == [k * 0.5 for k in range(-4, 4)]     # 8 levels, clipped
    qu = dac_quantize(v.abs(), 2.0, 2, signed=False)
    assert sorted(set(qu.tolist())) == pytest.approx([0, 2 / 3, 4 / 3, 2])
    assert torch.equal(dac_quantize(v, 0.0, 8), torch.zeros_like(v))


class HeldFeatureNet(nn.Module):
    """ScoreMLP-like: forward adds conditioning(t, y, n); records what it saw."""

    dim, classes = 1, 2

    def __init__(self):
        super().__init__()
        self.seen = []

    def conditioning(self, t, y=None, n=None):
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        yy = torch.zeros_like(t) if y is None else y.to(torch.float32)
        return torch.stack([torch.sin(3 * t) + 0.1 * yy, torch.cos(3 * t)], dim=1)

    def forward(self, x, t, y=None):
        c = self.conditioning(t, y, x.shape[0])
        self.seen.append(c.clone())
        return -x + 0.0 * c[:, :1]


def test_analog_holds_features_through_dacs():
    net = HeldFeatureNet()
    sde = VPSDE_DEFAULT
    p = IntegratorParams(refresh_mhz=1.0, dt_ns=250.0, dac_bits=4)   # 10 refreshes x 4 steps
    integrate(net, sde, make_noise("software", 8), 5, params=p, y=1, guidance=1.0,
              progress=False)
    assert "conditioning" not in net.__dict__                        # the override is gone
    assert len(net.seen) == 40 and all(c.shape == (10, 2) for c in net.seen)  # 2n rows (CFG)
    for k in range(10):                                               # held over a refresh
        block = net.seen[4 * k:4 * k + 4]
        assert all(torch.equal(block[0], c) for c in block)
    # DAC full scale: the largest |feature| over the refresh grid and the labels in use
    ts = torch.tensor([1 - k * (1 - sde.t_eps) / 10 for k in range(10)])
    fs = max(float(net.conditioning(ts, torch.full((10,), lab)).abs().max()) for lab in (1, 2))
    lsb = fs / 8
    levels = torch.unique(torch.cat(net.seen)) / lsb
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert levels.min() >= -8 and levels.max() <= 7


def test_integrator_params_and_sweep():
    with pytest.raises(ValueError, match="dac_bits"):
        IntegratorParams(dac_bits=0)
    with pytest.raises(ValueError, match="v_sat_V"):
        IntegratorParams(v_sat_V=0.0)
    with pytest.raises(ValueError, match="loop_bw_mhz"):
        IntegratorParams(loop_bw_mhz=-1.0)
    with pytest.raises(ValueError, match="max_evaluations"):
        IntegratorParams(tau_us=1000.0, dt_ns=1.0).grid(1e-3)
    with pytest.raises(ValueError, match="shape"):
        integrate(nn.Identity(), VPSDE_DEFAULT, make_noise("software", 1), 4, progress=False)
    with pytest.raises(ValueError, match="unknown options"):
        integrate(Zero(), VPSDE_DEFAULT, make_noise("software", 1), 4, tau=3, progress=False)
    sde = VPSDE_DEFAULT
    rows = sweep(GaussScore(sde), sde, lambda: make_noise("software", 9), 400,
                 lambda x: {"std_err": abs(float(x.std()) - S)}, tau_us=(0.2, 10.0),
                 refresh_mhz=(0.5, 20.0), progress=False)
    assert [(r["axis"], r["tau_us"], r["refresh_mhz"]) for r in rows] == [
        ("tau_us", 0.2, 20.0), ("tau_us", 10.0, 20.0), ("refresh_mhz", 10.0, 0.5),
        ("refresh_mhz", 10.0, 20.0)]
    assert rows[0]["refreshes"] == 4 and rows[1]["refreshes"] == 200
    assert rows[0]["std_err"] > rows[1]["std_err"] and rows[2]["std_err"] > rows[3]["std_err"]
    # a finite loop bandwidth lags the drift: far too slow a loop spoils the result
    slow = integrate(GaussScore(sde), sde, make_noise("software", 9), 400, loop_bw_mhz=0.01,
                     progress=False)
    assert abs(float(slow.std()) - S) > rows[1]["std_err"] + 0.02


def test_score_mlp_compute_modes_and_analog_guidance():
    """ScoreMLP: with_compute puts lin1..lin3 on crossbar tiles (its class table and ReLUs stay
    float); the digital net samples; the analog net runs in the integrator under guidance with
    its time/class features held by the DACs."""
    from model.devices.crossbar import ReadNoise
    from model.nn import CrossbarSpec, crossbar_layers
    sde = VPSDE_DEFAULT
    net = ScoreMLP(classes=3, seed=0)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(300, 2, generator=g) * 0.5
    y0 = torch.randint(0, 3, (300,), generator=g)
    calib = calibration_batch(sde, x0, n=512, seed=2, y=y0, classes=3)
    assert calib[2].max() == 3 and calib[0].shape == (512, 2)
    dg = with_compute(net, "digital", calib=calib)
    assert [type(m).__name__ for m in crossbar_layers(dg)] == ["CrossbarLinear"] * 3
    x, t, y = calib
    with torch.no_grad():
        ref = net(x, t, y)
        err = float((dg(x, t, y) - ref).abs().max()) / float(ref.abs().max())
    assert 0 < err < 0.2, err
    out = sample("em", dg, sde, make_noise("lfsr", 3), 64, steps=20, y=1, guidance=1.0,
                 progress=False)
    assert out.shape == (64, 2) and torch.isfinite(out).all()
    spec = CrossbarSpec(analog={"read_noise": ReadNoise("multiplicative", 0.05)})
    an = with_compute(net, "analog", spec, calib=calib)
    seen = []
    an.lin1.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[0]))
    x, st = integrate(an, sde, make_noise("software", 3), 32, y=2, guidance=0.5,
                      refresh_mhz=2.0, dt_ns=250.0, dac_bits=6, progress=False,
                      return_stats=True)
    assert torch.isfinite(x).all() and "conditioning" not in an.__dict__
    assert st["network_calls"] == st["refreshes"] * st["fine_steps"] == len(seen) == 40
    assert set(seen) == {64}                                   # 2n rows per guided evaluation
