"""Metrics of the diffusion models (model/diffusion/metrics.py) and the `make evaluate` driver
(sim/evaluate.py): on Gaussian stand-ins, and wired to the real checkpoints and samplers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import linalg
from torch import nn

from model.diffusion import metrics as M
from model.diffusion.data import load_dataset


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


@pytest.fixture(scope="module")
def net():
    return M.feature_net("digits")


# -- feature network -----------------------------------------------------------------------------

def test_feature_net_accuracy_on_digits(net, digits):
    _, te = digits
    acc = M.accuracy(net, te.x, te.y)
    assert acc > 0.95, f"feature net test accuracy {acc:.4f}"
    # The flattened form is accepted and gives the same logits.
    with torch.no_grad():
        assert torch.equal(net(te.x[:7]), net(te.x[:7].reshape(7, 64)))
        assert net.features(te.x[:3]).shape == (3, M.FEATURE_DIM)


def test_feature_net_checkpoint_errors(tmp_path, net):
    missing = tmp_path / "featnet-digits.pt"
    with pytest.raises(M.FeatureNetError, match="missing.*python -m model.diffusion.metrics "
                                                "train digits"):
        M.load_feature_net(missing, "digits")
    bad = tmp_path / "featnet-digits.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(M.FeatureNetError, match="corrupt.*train digits"):
        M.load_feature_net(bad, "digits")
    good = tmp_path / "good.pt"
    M.save_feature_net(good, net, {"dataset": "digits", "seed": 0})
    n2, meta = M.load_feature_net(good, "digits")
    for a, b in zip(net.state_dict().values(), n2.state_dict().values()):
        assert torch.equal(a, b)
    ck = torch.load(good, weights_only=True)
    ck["format_version"] = 99
    torch.save(ck, good)
    with pytest.raises(M.FeatureNetError, match="format version 99"):
        M.load_feature_net(good, "digits")
    with pytest.raises(ValueError, match="ring.*kl_2d"):
        M.feature_net("ring")


def test_feature_net_trains_deterministically(monkeypatch, tmp_path):
    """Cached networks are trained on demand with the fixed seed: same bits twice; the cache is
    then reused; a stale one (other data) is retrained."""
    g = torch.Generator().manual_seed(3)

    class DS:
        def __init__(self, n, shift):
            self.y = torch.arange(n) % 3
            self.x = torch.randn(n, 2, generator=g) * 0.3 + self.y[:, None].float() + shift
            self.shape, self.classes = (2,), 3

    sets = {"train": DS(300, 0.0), "test": DS(90, 0.0)}
    monkeypatch.setattr("model.diffusion.data.load_dataset", lambda name, split, seed=0:
                        sets[split])
    monkeypatch.setattr(M, "CACHE_DIR", tmp_path)
    monkeypatch.setitem(M.RECIPES, "latent-digits",
                        dict(epochs=5, batch=64, lr=1e-2, wd=0.0, shift=0))
    a, meta = M.train_feature_net("latent-digits", progress=False, log=lambda *_: None)
    b, _ = M.train_feature_net("latent-digits", progress=False, log=lambda *_: None)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)
    assert meta["test_accuracy"] > 0.9
    n1 = M.feature_net("latent-digits", progress=False)
    path = tmp_path / "featnet-latent-digits.pt"
    assert path.is_file()
    assert M.feature_net("latent-digits", progress=False) is n1
    sets["train"] = DS(300, 0.5)                    # the data changed: retrained
    M._CACHE.clear()
    n3 = M.feature_net("latent-digits", progress=False)
    assert M.load_feature_net(path)[1]["data_sha256"] == M.data_fingerprint(sets["train"].x,
                                                                            sets["train"].y)
    assert n3 is not n1


# -- FID -----------------------------------------------------------------------------------------

def test_fid_self_zero_and_monotone_in_perturbation(net, digits):
    tr, te = digits
    x = tr.x
    assert M.fid(x, x, net) == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(x.shape, generator=g)
    noised = [M.fid(x, (x + s * z).clamp(-1, 1), net) for s in (0.05, 0.1, 0.2, 0.4)]
    assert all(b > a for a, b in zip(noised, noised[1:])), noised
    assert noised[0] > 1e-3
    shifted = [M.fid(x, (x + d).clamp(-1, 1), net) for d in (0.05, 0.15, 0.3)]
    assert all(b > a for a, b in zip(shifted, shifted[1:])), shifted
    # Held-out real digits are close to the floor, far below heavy noise.
    floor = M.fid_floor(x, net, splits=2)
    assert floor["n_half"] == len(x) // 2 and floor["mean"] > 0
    held = M.fid(x, te.x, net)
    assert held < 3 * floor["mean"] < noised[-1]


def _frechet_scipy(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_through_torchmetrics_equals_scipy_formula():
    g = torch.Generator().manual_seed(1)
    d = 12
    mix = torch.randn(d, d, generator=g)
    real = torch.randn(500, d, generator=g) @ mix
    fake = torch.randn(400, d, generator=g) @ (mix * 1.3) + 0.4

    class Identity(nn.Module):                  # features = the vectors themselves
        def forward(self, x):
            return x

    got = M.fid(real, fake, Identity())
    want = _frechet_scipy(real.double().numpy(), fake.double().numpy())
    assert got == pytest.approx(want, rel=1e-6)
    # Many fake sets against one held reference: same numbers.
    ref = M.FIDReference(real, Identity(), batch=64)
    assert ref.score(fake) == pytest.approx(want, rel=1e-6)
    assert ref.score(real) == pytest.approx(0.0, abs=1e-6)


def test_fid_bad_input(net, digits):
    tr, _ = digits
    bad = tr.x[:10].clone()
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="fake: 1 of 10 samples hold NaN"):
        M.fid(tr.x, bad, net)
    with pytest.raises(ValueError, match="N >= 2"):
        M.fid(tr.x, tr.x[:1], net)
    with pytest.raises(ValueError, match="FeatureNet input shape"):
        M.fid(tr.x, torch.zeros(5, 1, 9, 9), net)


def test_interval95_and_ratio():
    iv = M.interval95([1.0, 2.0, 3.0, 4.0])
    # t_{0.975, 3} = 3.182446; std = 1.290994; half = t·s/√4
    assert iv["mean"] == 2.5 and iv["half"] == pytest.approx(3.182446 * 1.290994 / 2, rel=1e-5)
    assert iv["lo"] < 2.5 < iv["hi"]
    assert np.isnan(M.interval95([5.0])["half"])
    r = M.ratio_interval([2.0, 2.2, 1.8, 2.0], [1.0, 1.1, 0.9, 1.0])
    assert r["ratio"] == pytest.approx(2.0) and r["lo"] < 2.0 < r["hi"]
    with pytest.raises(ValueError, match="interval95.values"):
        M.interval95([])


# -- 2-D metrics ---------------------------------------------------------------------------------

def test_kl_and_hist_l2_identities():
    g = np.random.default_rng(0)
    r = 0.7 + 0.04 * g.standard_normal(20000)
    a = g.uniform(0, 2 * np.pi, 20000)
    ring = np.stack([r * np.cos(a), r * np.sin(a)], 1)
    assert M.kl_2d(ring, ring) == (pytest.approx(0.0, abs=1e-12), pytest.approx(0.0, abs=1e-12))
    assert M.hist_l2(ring, ring) == 0.0
    # Permuting the points changes nothing.
    perm = ring[g.permutation(len(ring))]
    assert M.hist_l2(ring, perm) == 0.0 and M.kl_2d(ring, perm)[0] == pytest.approx(0, abs=1e-12)
    # Disjoint supports inside the range: hist_l2 = sqrt(Σh_r² + Σh_f²), known exactly for two
    # single-bin sets: sqrt(1 + 1).
    p1, p2 = np.full((50, 2), 0.105), np.full((80, 2), -0.505)
    assert M.hist_l2(p1, p2) == pytest.approx(np.sqrt(2.0))
    # Points outside [-1, 1]² count in the normaliser: half of them outside → the histogram
    # holds 0.5 per bin; against the in-range copy the distance is 0.5.
    out = np.concatenate([p1, np.full((50, 2), 3.0)])
    assert M.hist_l2(p1, out) == pytest.approx(0.5)
    # KL against a reference of another shape: positive, and grows with the mismatch;
    # it matches the direct formula of the reference code.
    wide = ring * 1.2
    k1, k2 = M.kl_2d(ring, ring * 1.05), M.kl_2d(ring, wide)
    assert 0 < k1[0] < k2[0] and 0 < k1[1] < k2[1]
    from scipy import stats
    hf = np.histogram(wide[:, 0], 50, range=(-4, 4), density=True)[0]
    hr = np.histogram(ring[:, 0], 50, range=(-4, 4), density=True)[0]
    want = stats.entropy(hf / hf.sum() + 1e-10, hr / hr.sum() + 1e-10)
    assert k2[0] == pytest.approx(want, rel=1e-12)
    # Fresh sample of the same ring: small, and hist_l2 shrinks with more points.
    r2 = 0.7 + 0.04 * g.standard_normal(20000)
    a2 = g.uniform(0, 2 * np.pi, 20000)
    ring2 = np.stack([r2 * np.cos(a2), r2 * np.sin(a2)], 1)
    assert max(M.kl_2d(ring, ring2)) < 0.01
    assert M.hist_l2(ring, ring2) < M.hist_l2(ring[:2000], ring2[:2000])
    with pytest.raises(ValueError, match=r"hist_l2.fake shape \(10, 3\)"):
        M.hist_l2(ring, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="kl_2d.bins"):
        M.kl_2d(ring, ring, bins=0)


# -- memorisation and accuracy -------------------------------------------------------------------

def test_memorisation(digits):
    tr, te = digits
    assert M.memorisation(tr.x, tr.x) == 1.0
    assert M.memorisation(tr.x[:100].reshape(100, -1), tr.x) == 1.0       # flattened copies
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(500, 1, 8, 8, generator=g) * 2 - 1
    assert M.memorisation(noise, tr.x) < 0.01
    # Slightly perturbed copies still count; held-out digits sit in between.
    near = tr.x[:300] + 0.01 * torch.randn(300, 1, 8, 8, generator=g)
    assert M.memorisation(near, tr.x) > 0.95
    held = M.memorisation(te.x, tr.x)
    assert 0.05 < held < 0.95
    with pytest.raises(ValueError, match="memorisation.ratio"):
        M.memorisation(te.x, tr.x, ratio=0)
    with pytest.raises(ValueError, match="fake samples have 10 values"):
        M.memorisation(torch.zeros(4, 10), tr.x)


def test_class_accuracy(net, digits):
    _, te = digits
    assert M.class_accuracy(te.x, te.y, net) == pytest.approx(M.accuracy(net, te.x, te.y))
    zeros = te.x[te.y == 0]
    assert M.class_accuracy(zeros, 0, net) > 0.9
    assert M.class_accuracy(zeros, 1, net) < 0.1
    with pytest.raises(ValueError, match="allowed \\[0, 9\\]"):
        M.class_accuracy(zeros, 10, net)
    with pytest.raises(ValueError, match="class_accuracy.y: shape"):
        M.class_accuracy(zeros, te.y, net)


# -- the `make evaluate` driver on stand-ins -----------------------------------------------------

def _evaluate(argv):
    from sim import evaluate as E
    return E.main(argv)


def test_evaluate_quick_standin_writes_wellformed_files(tmp_path, capsys):
    out = tmp_path / "sampler"
    rc = _evaluate(["--standin", "--quick", "--datasets", "digits,ring", "--noise", "trng",
                    "--compute", "digital", "--samples", "300", "--out", str(out),
                    "--no-progress", "--threads", "1", "--jobs", "1"])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["density_ring.png", "grid_digits.png", "results.json", "results.md",
                     "scatter_ring.png"], names                 # no temporary files left
    for n in names:
        if n.endswith(".png"):
            assert (out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rep = json.loads((out / "results.json").read_text())
    assert rep["provenance"]["package"] == "spindiff" and rep["backend"] == "standin"
    assert rep["fid_name"] == M.FID_NAME
    rows = rep["rows"]
    # The reference row (software / float) is added to the asked-for trng / digital.
    assert [(r["dataset"], r["noise"], r["compute"]) for r in rows] == [
        ("digits", "software", "float"), ("digits", "trng", "digital"),
        ("ring", "software", "float"), ("ring", "trng", "digital")]
    for r in rows:
        assert r["samples"] == 300 and r["seeds"] == [1, 2]
        m = r["metrics"]
        assert 0.0 <= m["memorisation"]["mean"] <= 1.0
        if r["dataset"] == "digits":
            assert m["fid"]["n"] == 2 and m["fid"]["lo"] <= m["fid"]["mean"] <= m["fid"]["hi"]
        else:
            assert {"kl_x", "kl_y", "hist_l2"} <= set(m)
    d = rows[1]
    assert d["fid_ratio"]["ratio"] == pytest.approx(
        d["metrics"]["fid"]["mean"] / rows[0]["metrics"]["fid"]["mean"])
    assert rep["datasets"]["digits"]["fid_floor"]["n_half"] == 674
    assert rep["datasets"]["ring"]["floor"]["n_half"] > 0
    goal = rep["goals"][0]
    assert goal["budget_met"] is False and goal["met"] is False     # 2 x 300 < 4 x 2000
    md = (out / "results.md").read_text()
    assert M.FID_NAME in md and "STAND-IN" in md and "| trng | digital | ddpm |" in md
    # Two worker processes: the same numbers (every (row, seed) is seeded).
    out2 = tmp_path / "jobs2"
    assert _evaluate(["--standin", "--quick", "--datasets", "digits", "--noise", "trng",
                      "--compute", "digital", "--samples", "300", "--out", str(out2),
                      "--no-progress", "--jobs", "2"]) == 0
    rep2 = json.loads((out2 / "results.json").read_text())
    # (equal up to float summation order: the processes may split matrix products differently)
    for a, b in zip(rep2["rows"], rows[:2]):
        assert a["metrics"]["fid"]["values"] == pytest.approx(b["metrics"]["fid"]["values"],
                                                              rel=1e-6)


def test_evaluate_bad_argument_one_error_nothing_written(tmp_path, capsys):
    out = tmp_path / "sampler"
    for argv, needle in ((["--noise", "software,foo"], "unknown noise source foo"),
                         (["--samples", "1"], "1 is out of range, allowed [2, 1000000]"),
                         (["--datasets", ""], "empty data set list")):
        with pytest.raises(SystemExit) as e:
            _evaluate(["--standin", "--out", str(out), *argv])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not out.exists()


def test_evaluate_missing_checkpoint_or_failure_writes_nothing(tmp_path, capsys, monkeypatch):
    from sim import evaluate as E
    out = tmp_path / "sampler"
    monkeypatch.setattr(E.RealBackend, "_candidates",
                        staticmethod(lambda d, s, c: [tmp_path / "none" / f"{d}.pt"]))
    assert _evaluate(["--quick", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no trained checkpoint" in err and "make train" in err
    assert not out.exists()
    # A failure half-way (after some rows ran) leaves nothing either.
    calls = []

    def failing(self, row, ref, seed, n, y, cfg):
        calls.append(row)
        if len(calls) == 3:
            raise E.EvaluateError("digits: 5 of 16 generated samples hold NaN or inf")
        return ref.train.x[:n]

    monkeypatch.setattr(E.StandinBackend, "generate", failing)
    assert _evaluate(["--standin", "--samples", "16", "--seeds", "2", "--out", str(out),
                      "--no-progress", "--jobs", "1"]) == 2
    assert "hold NaN" in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_hardware_program_that_does_not_fit_fails_first(tmp_path, capsys, monkeypatch):
    """A checkpoint whose hardware program does not fit the engine (the fashion-mnist MLP needs
    10,624 tile slots > 4,096) stops the run before any sampling, with one error, no output."""
    from sim import evaluate as E

    def too_big(self, row):
        raise ValueError("TileConfig.slots = 10624: out of range, allowed [1, 4096]")

    def never(self, *a, **k):
        raise AssertionError("sampled before the program check")
    monkeypatch.setattr(E.RealBackend, "_program", too_big)
    monkeypatch.setattr(E.RealBackend, "generate", never)
    out = tmp_path / "sampler"
    assert _evaluate(["--datasets", "digits", "--compute", "float,hardware", "--noise", "lfsr",
                      "--samples", "16", "--seeds", "1", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "does not fit the hardware mode" in err and "10624" in err and "--compute" in err
    assert not out.exists()


def test_evaluate_real_backend_small(tmp_path, monkeypatch):
    """The real wiring: the committed digits checkpoint (DDIM, 10 steps) in digital and
    hardware compute, and an untrained ring score net in digital and analog compute; LFSR noise
    (cheap; the TRNG source goes through the same calls)."""
    from model.diffusion.score_net import ScoreMLP
    from model.diffusion.sde import VPSDE_REFERENCE as S
    from model.diffusion.train import DEFAULT_CHECKPOINT, save_checkpoint
    from sim import evaluate as E
    ring_ck = tmp_path / "score-ring-reference.pt"
    save_checkpoint(ring_ck, ScoreMLP(seed=3), {
        "dataset": "ring", "seed": 1, "sde_name": "reference",
        "sde": {"beta_min": S.beta_min, "beta_max": S.beta_max,
                "sample_beta_scale": S.sample_beta_scale, "t_eps": S.t_eps}})
    qat = DEFAULT_CHECKPOINT.with_name("digits-qat.pt")     # what the quantized modes run
    monkeypatch.setattr(E.RealBackend, "_candidates", lambda self, d, sm, c: [
        (DEFAULT_CHECKPOINT if c == "float" else qat) if d == "digits" else ring_ck])
    common = ["--steps", "10", "--noise", "lfsr", "--samples", "64", "--seeds", "2",
              "--jobs", "1", "--no-progress"]
    assert E.main(["--datasets", "digits", "--samplers", "ddim,em", "--compute",
                   "digital,hardware", "--out", str(tmp_path / "d"), *common]) == 0
    assert E.main(["--datasets", "ring", "--samplers", "em", "--compute",
                   "digital,analog,hardware", "--out", str(tmp_path / "r"), *common]) == 0
    rd = json.loads((tmp_path / "d" / "results.json").read_text())
    rr = json.loads((tmp_path / "r" / "results.json").read_text())
    got = [(r["dataset"], r["noise"], r["compute"], r["sampler"])
           for r in rd["rows"] + rr["rows"]]
    assert got == [("digits", "software", "float", "ddim"), ("digits", "lfsr", "digital", "ddim"),
                   ("digits", "lfsr", "hardware", "ddim"), ("ring", "software", "float", "em"),
                   ("ring", "lfsr", "digital", "em"), ("ring", "lfsr", "analog", "em")]
    assert any("digits with sampler em" in n for n in rd["notes"])
    assert any("hardware" in n for n in rr["notes"])          # no hardware mode for 2-D sets
    rows = {(r["dataset"], r["compute"]): r for r in rd["rows"] + rr["rows"]}
    d = rows[("digits", "hardware")]
    assert d["checkpoint"] == "model/diffusion/checkpoints/digits-qat.pt" and d["steps"] == 10
    assert "hardware-mode program" in d["model"]
    for r in rows.values():
        m = r["metrics"]
        assert all(np.isfinite(v) for k in m for v in m[k]["values"])
    # The trained digits model beats pure noise by far; the quantized network is worse than
    # float but better than noise.
    noise_fid = M.fid(load_dataset("digits", "train", 1).x,
                      torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1,
                      M.feature_net("digits"))
    fids = {c: rows[("digits", c)]["metrics"]["fid"]["values"]
            for c in ("float", "digital", "hardware")}
    assert np.mean(fids["float"]) < noise_fid / 3
    assert max(fids["digital"] + fids["hardware"]) < noise_fid
    # Digital compute (float sampler update) and the hardware mode (integer update) run the same
    # network codes on the same LFSR stream: nearly the same FID seed by seed.
    for a, b in zip(fids["digital"], fids["hardware"]):
        assert abs(a - b) < 0.1 * a + 5, (a, b)
    # Analog compute draws read noise: its samples differ from the digital twin's.
    assert rows[("ring", "analog")]["metrics"]["hist_l2"]["values"] != \
        rows[("ring", "digital")]["metrics"]["hist_l2"]["values"]
    assert rows[("ring", "float")]["sde"] == "reference"


def test_evaluate_conditional_standin(tmp_path, monkeypatch):
    """A conditional 2-D set: labels cycle through the classes and the accuracy under the data
    set's classifier (trained on demand, cached) is reported."""
    from sim import evaluate as E
    from model.diffusion.data import Dataset
    g = torch.Generator().manual_seed(5)

    def split(name, part, seed):
        n = 600 if part == "train" else 150
        y = torch.arange(n) % 3
        centres = torch.tensor([[-0.6, 0.0], [0.6, 0.0], [0.0, 0.7]])
        x = centres[y] + 0.12 * torch.randn(n, 2, generator=g)
        return Dataset("latent-digits", "points", x, y, 3, (2,))

    monkeypatch.setattr(E, "_load_split", split)
    monkeypatch.setattr("model.diffusion.data.load_dataset",
                        lambda name, part="train", seed=0: split(name, part, seed))
    monkeypatch.setattr(M, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setitem(M.RECIPES, "latent-digits",
                        dict(epochs=10, batch=64, lr=1e-2, wd=0.0, shift=0))
    M._CACHE.clear()
    out = tmp_path / "cond"
    assert E.main(["--standin", "--datasets", "latent-digits", "--samples", "90", "--seeds", "2",
                   "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    rep = json.loads((out / "results.json").read_text())
    assert rep["datasets"]["latent-digits"]["conditional"] is True
    for r in rep["rows"]:
        assert r["metrics"]["accuracy"]["mean"] > 0.9      # per-class Gaussians: right class
    assert "accuracy" in (out / "results.md").read_text()
    assert (tmp_path / "cache" / "featnet-latent-digits.pt").is_file()
