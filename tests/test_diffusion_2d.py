"""2-D set-ups of the RRAM paper: ring and latent-digits data, the VP-SDE, the score MLP, score
training and its command line (model/diffusion/{data2d,sde,score_net,train_score}.py,
sim/train_score.py)."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from model.diffusion import data2d
from model.diffusion.data import load_dataset
from model.diffusion.data2d import (LATENT_DIGITS, LATENT_STD, RING_POINTS, decode_latent_digits,
                                    load_2d, load_vae, ring_points, train_vae, vae_cache_path)
from model.diffusion.score_net import MAX_GUIDANCE, ScoreMLP, check_guidance
from model.diffusion.sde import VPSDE, VPSDE_DEFAULT, VPSDE_REFERENCE, get_sde
from model.diffusion.train_score import (PAPER_WEIGHT_NOISE, eval_score_loss,
                                         parse_weight_noise, train_score)
from sim.meta import ROOT


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -- helpers: a minimal probability-flow ODE sampler and histogram distances -------------------
@torch.no_grad()
def pf_ode_euler(net, sde, n, steps, seed, y=None, guidance=0.0):
    """Euler on dx/dt = f − ½·g²·s from t = 1 (x ~ N(0, I)) to t_eps, with the SDE's sampling β
    (the reference sampler's time grid)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    dt = (1.0 - sde.t_eps) / steps
    for t in torch.linspace(1.0, sde.t_eps, steps):
        tt = t.expand(n)
        s = net(x, tt, y) if (y is None or guidance == 0.0) else net.guided(x, tt, y, guidance)
        drift = sde.f(x, tt, sampling=True) - 0.5 * sde.g(tt, sampling=True)[:, None] ** 2 * s
        x = x - drift * dt
    return x


def kl_axes(gen, ref, bins=50, lim=4.0):
    """KL(gen ‖ ref) of the per-axis histograms on [−lim, lim] (the reference code's binning)."""
    out = []
    for a in range(2):
        p = np.histogram(gen[:, a].numpy(), bins, (-lim, lim))[0] / len(gen) + 1e-6
        q = np.histogram(ref[:, a].numpy(), bins, (-lim, lim))[0] / len(ref) + 1e-6
        out.append(float(np.sum(p * np.log(p / q))))
    return out


def hist_l2(a, b, bins=24, lim=1.2):
    h = [np.histogram2d(p[:, 0].numpy(), p[:, 1].numpy(), bins, [[-lim, lim]] * 2)[0] / len(p)
         for p in (a, b)]
    return float(np.sqrt(((h[0] - h[1]) ** 2).sum()))


# -- ring ---------------------------------------------------------------------------------------
def test_ring_data():
    tr = load_dataset("ring", "train", 3)
    assert (tr.name, tr.kind, tr.y, tr.classes, tr.shape) == ("ring", "points", None, None, (2,))
    assert tr.x.shape == (RING_POINTS, 2) and tr.x.dtype == torch.float32
    again = load_2d("ring", "train", 3)
    assert torch.equal(tr.x, again.x)                       # same seed, same bits
    te = load_2d("ring", "test", 3)
    other = load_2d("ring", "train", 4)
    assert not torch.equal(tr.x, te.x) and not torch.equal(tr.x, other.x)
    for d in (tr, te, other):
        r = d.x.to(torch.float64).norm(dim=1)
        # N(0.7, 0.04²) radius: standard errors 4e-4 (mean) and 3e-4 (std) at 10k points.
        assert abs(float(r.mean()) - 0.7) < 0.002 and abs(float(r.std()) - 0.04) < 0.0015
        ang = torch.atan2(d.x[:, 1], d.x[:, 0])
        counts = torch.histc(ang, 8, -math.pi, math.pi)
        assert float((counts - RING_POINTS / 8).abs().max()) < 5 * math.sqrt(RING_POINTS / 8)
    assert torch.equal(ring_points(5, 0), ring_points(5, 0))


def test_load_2d_bad_input():
    with pytest.raises(ValueError, match="name = 'circle'"):
        load_2d("circle")
    with pytest.raises(ValueError, match="split = 'val'"):
        load_2d("ring", "val")
    with pytest.raises(ValueError, match="seed = -1"):
        load_2d("ring", "train", -1)
    with pytest.raises(ValueError, match="n = 0"):
        ring_points(0, 1)


# -- latent digits --------------------------------------------------------------------------------
def test_latent_digits_data():
    tr = load_dataset("latent-digits", "train", 0)
    te = load_2d("latent-digits", "test", 5)                # seed does not change this set
    assert (tr.kind, tr.classes, tr.shape) == ("points", 3, (2,))
    assert tr.x.dtype == torch.float32 and tr.y.dtype == torch.int64
    assert tr.x.shape == (len(tr.y), 2) and te.x.shape == (len(te.y), 2)
    n_all = len(tr) + len(te)
    assert 500 < n_all < 560 and abs(len(te) - n_all / 5) <= 1   # 3 classes of ~180, 1/5 test
    assert set(tr.y.tolist()) == {0, 1, 2} and set(te.y.tolist()) == {0, 1, 2}
    assert abs(float(tr.x.to(torch.float64).std()) - LATENT_STD) < 1e-4
    assert abs(tr.x.to(torch.float64).mean(0)).max() < 1e-4
    # The classes separate in the 2-D latent: nearest class mean (from train) on the test split.
    means = torch.stack([tr.x[tr.y == c].mean(0) for c in range(3)])
    acc = float((torch.cdist(te.x, means).argmin(1) == te.y).float().mean())
    assert acc > 0.9, acc
    # Decoding a class's mean latent gives an image most like that digit's mean image.
    from sklearn.datasets import load_digits
    d = load_digits()
    refs = torch.tensor(np.stack([d.images[d.target == v].mean(0) / 8.0 - 1.0
                                  for v in LATENT_DIGITS]), dtype=torch.float32)
    img = decode_latent_digits(means)
    assert img.shape == (3, 1, 8, 8) and float(img.min()) >= -1.0 and float(img.max()) <= 1.0
    dist = torch.cdist(img.reshape(3, -1), refs.reshape(3, -1))
    assert torch.equal(dist.argmin(1), torch.arange(3)), dist
    with pytest.raises(ValueError, match="must be \\(N, 2\\)"):
        decode_latent_digits(torch.zeros(4, 3))


def test_vae_deterministic_and_cache(tmp_path):
    a = train_vae(seed=7, epochs=2)
    b = train_vae(seed=7, epochs=2)
    c = train_vae(seed=8, epochs=2)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert torch.equal(a["train"][0], b["train"][0]) and not torch.equal(a["train"][0],
                                                                         c["train"][0])
    # Missing → trained and written; corrupt → retrained, bit-identical.
    rec = load_vae(seed=7, epochs=2, cache_dir=tmp_path)
    path = vae_cache_path(7, 2, tmp_path)
    assert path.is_file() and torch.equal(rec["train"][0], a["train"][0])
    path.write_bytes(b"not a torch file")
    rec2 = load_vae(seed=7, epochs=2, cache_dir=tmp_path)
    assert torch.equal(rec2["test"][0], a["test"][0])
    assert torch.load(path, weights_only=True)["format"] == data2d.VAE_FORMAT
    with pytest.raises(ValueError, match="epochs = 0"):
        train_vae(epochs=0)


# -- VP-SDE ---------------------------------------------------------------------------------------
def test_sde_configurations():
    m, s = VPSDE_REFERENCE.marginal(1.0)
    # log m(1) = −¼·0.499 − ½·0.001 = −0.12525 → σ(1) = √(1 − e^−0.2505) = 0.4707.
    assert abs(float(s) - math.sqrt(1.0 - math.exp(-0.2505))) < 1e-12
    assert abs(float(s) - 0.47) < 0.005 and abs(float(m) - 0.882) < 0.001
    m, s = VPSDE_DEFAULT.marginal(1.0)
    # log m(1) = −¼·19.9 − ½·0.1 = −5.025: m(1) = 0.0066, σ(1) = √(1 − e^−10.05) = 0.99998.
    assert abs(float(m) - math.exp(-5.025)) < 1e-12 and float(s) > 0.9999
    assert VPSDE_REFERENCE.sample_beta_scale == 2.0 and VPSDE_DEFAULT.sample_beta_scale == 1.0
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    assert torch.allclose(VPSDE_REFERENCE.beta(t, sampling=True), 2.0 * VPSDE_REFERENCE.beta(t))
    samp = VPSDE_REFERENCE.for_sampling()
    assert torch.allclose(samp.beta(t), VPSDE_REFERENCE.beta(t, sampling=True))
    assert torch.allclose(VPSDE_REFERENCE.beta(t), torch.tensor([0.001, 0.1507, 0.5],
                                                                dtype=torch.float64))
    x = torch.randn(3, 2, dtype=torch.float64)
    assert torch.allclose(VPSDE_DEFAULT.f(x, t), -0.5 * VPSDE_DEFAULT.beta(t)[:, None] * x)
    assert torch.allclose(VPSDE_DEFAULT.g(t) ** 2, VPSDE_DEFAULT.beta(t))
    sc = torch.randn(3, 2, dtype=torch.float64)
    t2 = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    assert torch.allclose(VPSDE_DEFAULT.eps_to_score(VPSDE_DEFAULT.score_to_eps(sc, t2), t2), sc)
    assert get_sde("reference") is VPSDE_REFERENCE and get_sde("default") is VPSDE_DEFAULT


@pytest.mark.parametrize("sde", [VPSDE_REFERENCE, VPSDE_DEFAULT], ids=["reference", "default"])
def test_sde_marginal_matches_simulation(sde):
    """Euler–Maruyama paths of the forward SDE from a fixed x_0 against the closed-form
    N(m(t)·x_0, σ(t)²) at t = 0.25, 0.5, 1."""
    g = torch.Generator().manual_seed(11)
    n, steps = 10_000, 1000
    x0 = torch.tensor([1.5, -0.5], dtype=torch.float64)
    x = x0.expand(n, 2).clone()
    dt = 1.0 / steps
    checks = {steps // 4: 0.25, steps // 2: 0.5, steps: 1.0}
    for k in range(1, steps + 1):
        t = (k - 0.5) * dt                                  # midpoint β: O(dt²) drift error
        x = x + sde.f(x, t) * dt + sde.g(t) * math.sqrt(dt) * torch.randn(n, 2, generator=g,
                                                                          dtype=torch.float64)
        if k in checks:
            m, s = sde.marginal(checks[k])
            mean_se = float(s) / math.sqrt(n)
            assert torch.allclose(x.mean(0), float(m) * x0, atol=5 * mean_se + 2e-3), (k, x.mean(0))
            sd = x.std(0)
            assert torch.allclose(sd, torch.full_like(sd, float(s)),
                                  rtol=5 / math.sqrt(2 * n) + 2e-3), (k, sd, float(s))


def test_sde_bad_input():
    with pytest.raises(ValueError, match="beta_max = 0.05"):
        VPSDE(0.1, 0.05)
    with pytest.raises(ValueError, match="beta_min = 0"):
        VPSDE(0.0, 1.0)
    with pytest.raises(ValueError, match="sample_beta_scale = 0"):
        VPSDE(0.1, 1.0, sample_beta_scale=0)
    with pytest.raises(ValueError, match="t_eps = 0"):
        VPSDE(0.1, 1.0, t_eps=0.0)
    with pytest.raises(ValueError, match="allowed \\[0, 1\\]"):
        VPSDE_DEFAULT.marginal(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="float tensor"):
        VPSDE_DEFAULT.beta(torch.tensor([1]))
    with pytest.raises(ValueError, match="sampling = 1"):
        VPSDE_DEFAULT.beta(0.5, sampling=1)
    with pytest.raises(ValueError, match="sde = 'vesde'"):
        get_sde("vesde")


# -- score net -------------------------------------------------------------------------------------
def test_score_net_shapes_and_determinism():
    net = ScoreMLP(seed=3)
    x, t = torch.randn(5, 2), torch.rand(5)
    out = net(x, t)
    assert out.shape == (5, 2) and out.dtype == torch.float32
    assert torch.equal(out, ScoreMLP(seed=3)(x, t))
    assert not torch.equal(out, ScoreMLP(seed=4)(x, t))
    assert torch.equal(net(x, 0.3), net(x, torch.full((5,), 0.3)))
    phi = net.time_features(t)
    assert phi.shape == (5, 14) and float(phi.abs().max()) <= 1.0
    assert torch.allclose(phi[:, :7] ** 2 + phi[:, 7:] ** 2, torch.ones(5, 7))
    assert not net.freqs.requires_grad and net.freqs.shape == (7,)
    # Forward = the documented formula.
    h = torch.relu(net.lin1(x) + phi)
    h = torch.relu(net.lin2(h) + phi)
    assert torch.allclose(out, 5.0 * net.lin3(h))
    # The three layers are plain nn.Linear, so model.nn puts them on crossbar tiles.
    from model.nn import convert, crossbar_layers
    conv = convert(net, "float")
    assert len(crossbar_layers(conv)) == 3
    assert torch.allclose(conv(x, t), out)


def test_score_net_x0_preconditioning():
    net = ScoreMLP(seed=3, amp=1.0, precond_beta=(0.1, 20.0))
    plain = ScoreMLP(seed=3, amp=1.0)
    x, t = torch.randn(5, 2), torch.rand(5) * 0.9 + 0.05
    m, s = VPSDE_DEFAULT.marginal(t)
    d = plain(x, t)                                         # same weights: the x0 estimate
    assert torch.allclose(net(x, t), (m[:, None] * d - x) / s[:, None] ** 2, rtol=1e-5)
    assert torch.allclose(net(x, 0.5), net(x, torch.full((5,), 0.5)))
    with pytest.raises(ValueError, match="precond_beta"):
        ScoreMLP(precond_beta=0.1)
    with pytest.raises(ValueError, match="beta_max"):
        ScoreMLP(precond_beta=(0.5, 0.1))


def test_score_net_conditioning_and_cfg():
    net = ScoreMLP(classes=3, seed=1)
    with torch.no_grad():
        net.class_emb.weight[:3].normal_()      # make the classes differ
    x, t = torch.randn(6, 2), torch.rand(6)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    s_c = net(x, t, y)
    s_null = net(x, t, net.null_labels(6))
    assert torch.equal(net(x, t), s_null)                   # y = None: no class
    assert not torch.allclose(s_c, s_null)
    assert not torch.allclose(s_c[:3], net(x[:3], t[:3], torch.tensor([1, 2, 0])))
    assert torch.count_nonzero(net.class_emb.weight[3]) == 0    # the "no class" row is zero
    assert torch.allclose(net.guided(x, t, y, 0.0), s_c)
    w = 2.5
    assert torch.allclose(net.guided(x, t, y, w), (1 + w) * s_c - w * s_null, atol=1e-5)
    assert torch.allclose(net.guided(x, t, 1, w)[:1],
                          (1 + w) * net(x[:1], t[:1], torch.tensor([1]))
                          - w * net(x[:1], t[:1], torch.tensor([3])), atol=1e-5)


def test_score_net_bad_input():
    net, cnet = ScoreMLP(), ScoreMLP(classes=3)
    x, t = torch.randn(4, 2), torch.rand(4)
    for w in (-0.1, MAX_GUIDANCE + 0.1, float("nan"), True):
        with pytest.raises(ValueError, match="guidance"):
            cnet.guided(x, t, torch.zeros(4, dtype=torch.int64), w)
    with pytest.raises(ValueError, match="guidance weight out of range"):
        check_guidance(11)
    with pytest.raises(ValueError, match="unconditional"):
        net.guided(x, t, torch.zeros(4, dtype=torch.int64), 1.0)
    with pytest.raises(ValueError, match="unconditional"):
        net(x, t, torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="allowed \\[0, 3\\]"):
        cnet(x, t, torch.tensor([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="integer tensor"):
        cnet(x, t, torch.zeros(4))
    with pytest.raises(ValueError, match="must be \\(N, 2\\)"):
        net(torch.randn(4, 3), t)
    with pytest.raises(ValueError, match="must match"):
        net(x, torch.rand(3))
    with pytest.raises(ValueError, match="hidden = 13"):
        ScoreMLP(hidden=13)
    with pytest.raises(ValueError, match="classes = 0"):
        ScoreMLP(classes=0)


# -- training ---------------------------------------------------------------------------------
def _ring_run(epochs, **kw):
    data = load_2d("ring", "train", 1)
    net = ScoreMLP(seed=1)
    hist = train_score(net, data, VPSDE_REFERENCE, epochs=epochs, seed=1, lr=1e-2,
                       progress=False, **kw)
    return data, net, hist


def test_train_ring_beats_untrained():
    """A ~2 s training run (reference SDE, lr 1e-2, 60 epochs, no weight noise) puts the PF-ODE
    samples on the ring; the same sampler on the untrained net does not come close."""
    data, net, hist = _ring_run(60)
    assert len(hist["loss"]) == 60 and hist["steps"] == 60 * 20
    assert hist["loss"][-1] < 0.8 * hist["loss"][0]
    ref = load_2d("ring", "test", 1).x[:4000]
    gen = pf_ode_euler(net, VPSDE_REFERENCE, 4000, 200, seed=5)
    raw = pf_ode_euler(ScoreMLP(seed=1), VPSDE_REFERENCE, 4000, 200, seed=5)
    r_data = float(data.x.norm(dim=1).mean())
    r_gen, r_raw = float(gen.norm(dim=1).mean()), float(raw.norm(dim=1).mean())
    assert abs(r_gen - r_data) < 0.1, (r_gen, r_data)
    assert abs(r_raw - r_data) > 0.3, r_raw
    kl_gen, kl_raw = kl_axes(gen, ref), kl_axes(raw, ref)
    assert max(kl_gen) < 0.3 and min(kl_raw) > 10 * max(kl_gen), (kl_gen, kl_raw)
    l2_gen, l2_raw, l2_floor = hist_l2(gen, ref), hist_l2(raw, ref), hist_l2(data.x[:4000], ref)
    assert l2_gen < 0.7 * l2_raw and l2_gen < 4 * l2_floor, (l2_gen, l2_raw, l2_floor)
    # The held-out score-matching loss agrees.
    assert eval_score_loss(net, load_2d("ring", "test", 1), VPSDE_REFERENCE) < \
        0.8 * eval_score_loss(ScoreMLP(seed=1), load_2d("ring", "test", 1), VPSDE_REFERENCE)


def test_committed_checkpoints():
    """The committed checkpoints (``make train``: the reference set-up, 10 000 / 100 000 epochs)
    load into the current ScoreMLP and still sample their data sets."""
    from model.diffusion.train import CHECKPOINT_DIR, load_checkpoint
    net, meta = load_checkpoint(CHECKPOINT_DIR / "score-ring-reference.pt")
    assert isinstance(net, ScoreMLP) and meta["sde_name"] == "reference"
    assert meta["train"]["epochs"] == 10_000 and meta["train"]["weight_noise"] == [0.1, 0.2]
    ref = load_2d("ring", "test", 1).x
    gen = pf_ode_euler(net, VPSDE_REFERENCE, 4000, 500, seed=3)
    r = gen.norm(dim=1)
    assert abs(float(r.mean()) - 0.7) < 0.02 and float(r.std()) < 0.07, (r.mean(), r.std())
    assert max(kl_axes(gen, ref)) < 0.03
    # The default SDE (β 0.1 → 20) with the x0-preconditioned output.
    net, meta = load_checkpoint(CHECKPOINT_DIR / "score-ring-default.pt")
    assert meta["sde_name"] == "default" and net.precond is not None
    gen = pf_ode_euler(net, VPSDE_DEFAULT, 4000, 500, seed=3)
    r = gen.norm(dim=1)
    assert abs(float(r.mean()) - 0.7) < 0.02 and float(r.std()) < 0.07, (r.mean(), r.std())
    assert max(kl_axes(gen, ref)) < 0.03
    net, meta = load_checkpoint(CHECKPOINT_DIR / "score-latent-digits-reference.pt")
    assert net.classes == 3 and meta["dataset"] == "latent-digits"
    tr = load_2d("latent-digits")
    means = torch.stack([tr.x[tr.y == c].mean(0) for c in range(3)])
    for c in range(3):
        gen = pf_ode_euler(net, VPSDE_REFERENCE, 300, 500, seed=c, y=torch.full((300,), c))
        hit = float((torch.cdist(gen, means).argmin(1) == c).float().mean())
        assert hit > 0.75, (c, hit)


def test_train_deterministic_and_options():
    _, a, ha = _ring_run(2, weight_noise=PAPER_WEIGHT_NOISE, act_penalty=1e-3)
    _, b, hb = _ring_run(2, weight_noise=PAPER_WEIGHT_NOISE, act_penalty=1e-3)
    _, c, _ = _ring_run(2)
    for (k, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(),
                               c.state_dict().values()):
        assert torch.equal(pa, pb), k
    assert ha["loss"] == hb["loss"]
    assert not torch.equal(a.lin1.weight, c.lin1.weight)     # the noise changed the run
    assert ha["weight_noise"] == [0.1, 0.2] and ha["act_penalty"] == 1e-3


def test_train_activation_penalty_limits_range():
    """A strong penalty keeps the hidden activations below the threshold."""
    data = load_2d("ring", "train", 1)
    x = data.x[:2000]
    t = torch.rand(2000, generator=torch.Generator().manual_seed(2))
    share = []
    for pen in (0.0, 10.0):
        net = ScoreMLP(seed=1)
        train_score(net, data, VPSDE_REFERENCE, epochs=10, seed=1, lr=1e-2, act_penalty=pen,
                    act_threshold=0.5, progress=False)
        c = net.time_features(t)
        h1 = torch.relu(net.lin1(x) + c)
        h2 = torch.relu(net.lin2(h1) + c)
        share.append(float((torch.cat([h1, h2]) > 0.5).float().mean()))
    assert share[1] < 0.5 * share[0], share


def test_train_conditional_latent_digits():
    """Class-conditional training with label dropout: conditional samples land on their class,
    unconditional samples (the "no class" label) cover all three."""
    tr = load_2d("latent-digits", "train")
    net = ScoreMLP(classes=3, seed=1)
    train_score(net, tr, VPSDE_REFERENCE, epochs=300, seed=1, lr=1e-2, batch=128, cfg_drop=0.3,
                progress=False)
    assert torch.count_nonzero(net.class_emb.weight[3]) == 0
    means = torch.stack([tr.x[tr.y == c].mean(0) for c in range(3)])
    for c in range(3):
        gen = pf_ode_euler(net, VPSDE_REFERENCE, 500, 100, seed=c, y=torch.full((500,), c),
                           guidance=1.0)
        hit = float((torch.cdist(gen, means).argmin(1) == c).float().mean())
        assert hit > 0.8, (c, hit)
    gen = pf_ode_euler(net, VPSDE_REFERENCE, 1500, 100, seed=9)
    share = torch.bincount(torch.cdist(gen, means).argmin(1), minlength=3) / 1500.0
    assert float(share.min()) > 0.15, share


def test_train_qat():
    from model.nn import CrossbarSpec, convert
    data = load_2d("ring", "train", 1)
    net = ScoreMLP(seed=1)
    spec = CrossbarSpec()
    h = train_score(net, data, VPSDE_REFERENCE, epochs=3, seed=1, lr=1e-2, qat_spec=spec,
                    qat_epochs=2, progress=False)
    assert len(h["qat_loss"]) == 2 and all(math.isfinite(v) for v in h["qat_loss"])
    assert type(net.lin1) is torch.nn.Linear                # still a float ScoreMLP
    x, t = data.x[:256], torch.rand(256, generator=torch.Generator().manual_seed(1))
    from model.diffusion.train_score import _Bound
    from model.nn import calibrate
    q = convert(net, "digital", spec)
    calibrate(_Bound(q, t, None), x)
    ref = net(x, t)
    with torch.no_grad():
        err = float((q(x, t) - ref).abs().max()) / float(ref.abs().max())
    assert err < 0.1, err


def test_train_bad_input():
    data = load_2d("ring", "train", 1)
    net = ScoreMLP()
    cases = [(dict(epochs=0), "epochs = 0"), (dict(batch=0), "batch = 0"), (dict(lr=0.0), "lr = 0"),
             (dict(cfg_drop=1.0), "cfg_drop = 1.0"), (dict(weight_noise=0.9), "weight_noise"),
             (dict(weight_noise=(0.1, 0.0)), "trunc"), (dict(ema=1.0), "ema = 1.0"),
             (dict(seed=-1), "seed = -1"), (dict(qat_spec="yes"), "qat_spec")]
    for kw, needle in cases:
        args = dict(epochs=1, seed=0, progress=False)
        args.update(kw)
        with pytest.raises(ValueError, match=needle):
            train_score(net, data, VPSDE_REFERENCE, **args)
    with pytest.raises(ValueError, match="needs labels"):
        train_score(ScoreMLP(classes=3), data, VPSDE_REFERENCE, epochs=1, seed=0, progress=False)
    with pytest.raises(ValueError, match="must be a non-empty"):
        train_score(net, load_2d("ring").x, VPSDE_REFERENCE, epochs=1, seed=0, progress=False)
    with pytest.raises(ValueError, match="must be a VPSDE"):
        train_score(net, data, "reference", epochs=1, seed=0, progress=False)
    assert parse_weight_noise(0.05) == (0.05, 0.1) and parse_weight_noise(None) is None


# -- command line ---------------------------------------------------------------------------------
def test_thin_history():
    from sim.train_score import thin
    assert thin([1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]
    h = thin(list(range(10_000)), 200)
    assert h[0] == 0 and h[-1] == 9999 and len(h) <= 201 and h == sorted(h)


def test_cli(tmp_path, capsys):
    from sim.train_score import main
    out = tmp_path / "ring.pt"
    assert main(["--dataset", "ring", "--sde", "default", "--seed", "2", "--epochs", "2",
                 "--out", str(out), "--no-progress"]) == 0
    assert str(out) in capsys.readouterr().out
    from model.diffusion.train import load_checkpoint
    net, meta = load_checkpoint(out)
    assert isinstance(net, ScoreMLP) and meta["sde_name"] == "default"
    assert meta["sde"]["beta_max"] == 20.0 and meta["train"]["steps"] == 40
    assert meta["train"]["weight_noise"] == [0.1, 0.2]
    x, t = torch.randn(3, 2), torch.rand(3)
    assert net.init_kwargs["precond_beta"] == [0.1, 20.0] and net.amp == 1.0
    again = ScoreMLP(seed=2, amp=1.0, precond_beta=(0.1, 20.0))
    train_score(again, load_2d("ring", "train", 2), VPSDE_DEFAULT, epochs=2, seed=2,
                weight_noise=PAPER_WEIGHT_NOISE, act_penalty=512e-7, ema=0.999, progress=False)
    assert torch.equal(net(x, t), again(x, t))              # the CLI's run, reproduced
    assert len(meta["train"]["loss"]) == 2 and meta["train"]["ema"] == 0.999
    bad = tmp_path / "bad"
    bad.mkdir()
    for argv, needle in ((["--dataset", "digits"], "invalid choice"),
                         (["--sde", "vesde"], "invalid choice"),
                         (["--epochs", "0"], "--epochs = 0")):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--out", str(bad / "x.pt"), "--no-progress"])
        assert e.value.code == 2
        assert needle in capsys.readouterr().err
    # In a fresh process: one clear line, exit status 2, no traceback, nothing written.
    r = subprocess.run([sys.executable, "-m", "sim.train_score", "--weight-noise", "0.9",
                        "--epochs", "1", "--out", str(bad / "x.pt"), "--no-progress"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "weight_noise = 0.9" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not list(bad.iterdir()), "a failed run left files behind"
