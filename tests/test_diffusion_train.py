"""Diffusion data, DDPM schedule, ε-network, training and checkpoints (``docs/diffusion.md``)."""

from __future__ import annotations

import copy
import gzip
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from model.diffusion import data as D
from model.diffusion.data import DatasetUnavailable, load_dataset, read_idx
from model.diffusion.nets import EpsMLP, sinusoidal_table
from model.diffusion.schedules import DDPMSchedule
from model.diffusion.train import (DEFAULT_CHECKPOINT, FORMAT_NAME, FORMAT_VERSION,
                                   CheckpointError, CheckpointMissing, eval_loss, load_checkpoint,
                                   mlp_inputs, quantized_copy, save_checkpoint, train_ddpm)

pytest.importorskip("sklearn.datasets")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------------------------
# data
def test_digits_shapes_ranges_split():
    tr, te, al = (load_dataset("digits", s, seed=3) for s in ("train", "test", "all"))
    for d in (tr, te, al):
        assert d.kind == "image" and d.shape == (1, 8, 8) and d.classes == 10
        assert d.x.dtype == torch.float32 and d.x.shape[1:] == (1, 8, 8)
        assert d.y.dtype == torch.int64 and d.y.shape == (len(d),)
        assert float(d.x.min()) == -1.0 and float(d.x.max()) == 1.0
        # v/8 - 1 for v in 0..16, exactly
        v = (d.x + 1.0) * 8.0
        assert torch.equal(v, v.round()) and int(v.min()) == 0 and int(v.max()) == 16
    assert len(al) == 1797 and len(tr) + len(te) == 1797 and len(te) == 449
    # train and test are disjoint and together are the whole set (as multisets of rows)
    rows = lambda d: sorted(map(bytes, d.x.reshape(len(d), -1).numpy()))     # noqa: E731
    assert rows(tr) + rows(te) != [] and sorted(rows(tr) + rows(te)) == rows(al)
    # sklearn's own values
    from sklearn.datasets import load_digits
    ref = np.asarray(load_digits().data, dtype=np.float64) / 8.0 - 1.0
    assert np.array_equal(al.flat().numpy().astype(np.float64), ref)


def test_digits_split_deterministic_by_seed():
    a, b = load_dataset("digits", "train", 5), load_dataset("digits", "train", 5)
    c = load_dataset("digits", "train", 6)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    # the crossbar classifier's split of the same seed
    from model.nn.digits import load_digits
    assert torch.equal(load_digits(5).y_test, load_dataset("digits", "test", 5).y)


def test_load_dataset_bad_args():
    with pytest.raises(ValueError, match="name = 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="split = 'val'"):
        load_dataset("digits", "val")
    with pytest.raises(ValueError, match="seed = -1"):
        load_dataset("digits", "train", -1)


def _write_idx(path: Path, arr: np.ndarray, gz: bool):
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    raw = head + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def test_fashion_mnist_unavailable_message(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINDIFF_FASHION_MNIST_DIR", str(tmp_path / "nothing-here"))
    with pytest.raises(DatasetUnavailable) as e:
        load_dataset("fashion-mnist")
    msg = str(e.value)
    assert "make fashion-mnist" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert str(tmp_path / "nothing-here") in msg
    assert not D.fashion_mnist_available()


def test_fashion_mnist_idx_files(tmp_path, monkeypatch):
    """The loader on small idx files laid out as Debian's package lays them out (gzip for the
    training set, plain for the test set: both are read)."""
    rng = np.random.default_rng(0)
    files = D.FASHION_MNIST_FILES
    tr_x, te_x = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 256, (3, 28, 28))
    tr_x[0, 0, 0], tr_x[0, 0, 1] = 0, 255
    _write_idx(tmp_path / files["train"][0], tr_x, gz=True)
    _write_idx(tmp_path / files["train"][1], np.arange(5) % 10, gz=True)
    _write_idx(tmp_path / files["test"][0], te_x, gz=False)
    _write_idx(tmp_path / files["test"][1], np.array([9, 8, 7]), gz=False)
    monkeypatch.setenv("SPINDIFF_FASHION_MNIST_DIR", str(tmp_path))
    assert D.fashion_mnist_available()
    tr, te, al = (load_dataset("fashion-mnist", s) for s in ("train", "test", "all"))
    assert tr.x.shape == (5, 1, 28, 28) and te.x.shape == (3, 1, 28, 28) and len(al) == 8
    assert tr.shape == (1, 28, 28) and tr.classes == 10 and te.y.tolist() == [9, 8, 7]
    assert float(tr.x[0, 0, 0, 0]) == -1.0 and float(tr.x[0, 0, 0, 1]) == 1.0
    assert float(al.x.min()) >= -1.0 and float(al.x.max()) <= 1.0
    np.testing.assert_allclose(te.x[:, 0].numpy(), te_x / 127.5 - 1.0, atol=1e-6)
    # a truncated file is reported with the way to reinstall
    raw = (tmp_path / files["test"][0]).read_bytes()
    (tmp_path / files["test"][0]).write_bytes(raw[:-10])
    with pytest.raises(DatasetUnavailable, match="truncated or corrupt.*--reinstall"):
        load_dataset("fashion-mnist", "test")
    (tmp_path / files["test"][0]).write_bytes(b"\x01\x02\x03\x04" + raw[4:])
    with pytest.raises(DatasetUnavailable, match="bad magic"):
        read_idx(tmp_path / files["test"][0])


@pytest.mark.skipif(not D.fashion_mnist_available(), reason="dataset-fashion-mnist not installed "
                    "(make fashion-mnist)")
def test_fashion_mnist_installed():
    te = load_dataset("fashion-mnist", "test")
    assert te.x.shape == (10000, 1, 28, 28) and te.y.shape == (10000,)
    assert float(te.x.min()) == -1.0 and float(te.x.max()) == 1.0
    assert sorted(te.y.unique().tolist()) == list(range(10))


# ------------------------------------------------------------------------------------------------
# schedule
@pytest.mark.parametrize("steps", [1000, 100])
def test_schedule_identities(steps):
    s = DDPMSchedule.scaled(steps)
    b = np.linspace(1e-4 * 1000 / steps, 0.02 * 1000 / steps, steps)
    ab = np.cumprod(1.0 - b)
    for name in ("betas", "alphas", "alpha_bar", "c1", "c2", "sigma"):
        v = getattr(s, name)
        assert v.dtype == torch.float64 and v.shape == (steps,)
    np.testing.assert_allclose(s.betas.numpy(), b, rtol=1e-12)
    np.testing.assert_allclose(s.alpha_bar.numpy(), ab, rtol=1e-12)
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all()) and 0 < float(s.alpha_bar[0]) < 1
    assert float(s.alpha_bar[-1]) < 1e-4          # the forward process reaches N(0, I)
    np.testing.assert_allclose(s.c1.numpy(), 1.0 / np.sqrt(1.0 - b), rtol=1e-12)
    np.testing.assert_allclose(s.c2.numpy(), b / np.sqrt(1.0 - ab), rtol=1e-12)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    np.testing.assert_allclose(s.sigma.numpy()[1:],
                               np.sqrt(b * (1 - ab_prev) / (1 - ab))[1:], rtol=1e-12)
    assert float(s.sigma[0]) == 0.0
    assert bool((s.sigma[1:] ** 2 <= s.betas[1:] + 1e-15).all())      # β̃ ≤ β


def test_schedule_forward_and_reverse_consistency():
    s = DDPMSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(64, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.randint(1, s.steps, (64,), generator=g)
    xt = s.q_sample(x0, t, eps)
    assert float((s.predict_x0(xt, t, eps) - x0).abs().max()) < 1e-9
    # with the true ε, the reverse step's mean c1·(x_t − c2·ε) is the posterior mean μ̃(x_t, x0)
    ab, b, a = s.alpha_bar[t], s.betas[t], s.alphas[t]
    abp = s.alpha_bar[t - 1]
    sh = (-1, 1, 1, 1)
    mu = ((abp.sqrt() * b / (1 - ab)).reshape(sh) * x0
          + (a.sqrt() * (1 - abp) / (1 - ab)).reshape(sh) * xt)
    step = s.c1[t].reshape(sh) * (xt - s.c2[t].reshape(sh) * eps)
    assert float((step - mu).abs().max()) < 1e-9
    # statistics of the forward process at one step
    x1 = torch.full((20000, 1), 0.5, dtype=torch.float64)
    tt = torch.full((20000,), 300)
    e = torch.randn(x1.shape, generator=g, dtype=torch.float64)
    xs = s.q_sample(x1, tt, e)
    assert abs(float(xs.mean()) - 0.5 * float(s.sqrt_alpha_bar[300])) < 0.02
    assert abs(float(xs.var()) - float(1 - s.alpha_bar[300])) < 0.03


def test_schedule_ddim_and_bad_args():
    s = DDPMSchedule()
    ts = s.ddim_timesteps(50)
    assert len(ts) == 50 and ts[0] == 999 and ts[-1] == 0 and len(set(ts)) == 50
    assert all(a > b for a, b in zip(ts, ts[1:]))
    assert s.ddim_timesteps(1) == [999] and s.ddim_timesteps(1000) == list(range(999, -1, -1))
    for n in (0, 1001, 2.0):
        with pytest.raises(ValueError, match="ddim_timesteps.n"):
            s.ddim_timesteps(n)
    with pytest.raises(ValueError, match="steps = 0"):
        DDPMSchedule(0)
    with pytest.raises(ValueError, match="beta_end"):
        DDPMSchedule(10, 0.1, 0.01)
    with pytest.raises(ValueError, match="beta_start = 0"):
        DDPMSchedule(10, 0.0, 0.01)
    with pytest.raises(ValueError, match=r"q_sample.t: values in \[0, 1000\]"):
        s.q_sample(torch.zeros(2, 4), torch.tensor([0, 1000]), torch.zeros(2, 4))
    assert DDPMSchedule() == DDPMSchedule(**DDPMSchedule().to_dict())


# ------------------------------------------------------------------------------------------------
# net
def test_epsmlp_structure_and_conversion():
    net = EpsMLP(64, 100, hidden=(32, 24), temb_dim=8)
    assert net.temb.shape == (100, 8) and float(net.temb.abs().max()) <= 1.0
    assert torch.equal(net.temb, sinusoidal_table(100, 8))
    assert torch.equal(net.temb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    kinds = [type(m) for m in net.mlp]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert net.mlp[0].in_features == 72 and net.mlp[-1].out_features == 64
    x, t = torch.randn(5, 64), torch.tensor([0, 1, 50, 98, 99])
    out = net(x, t)
    assert out.shape == (5, 64)
    assert torch.equal(out, net.mlp(torch.cat([x, net.temb[t]], 1)))
    assert "temb" not in net.state_dict()           # rebuilt, not stored
    # model.nn converts and exports the chain
    from model.nn import CrossbarSpec, convert, export_program
    calib = net.mlp_input(torch.randn(64, 64), torch.randint(0, 100, (64,)))
    q = convert(net.mlp, "digital", CrossbarSpec(), calib=calib)
    prog = export_program(q)
    assert len(prog.layers) == 3
    xin = calib[:7].numpy()
    with torch.no_grad():
        np.testing.assert_array_equal(prog.run(xin), q(calib[:7]).double().numpy())


def test_epsmlp_bad_args():
    with pytest.raises(ValueError, match="EpsMLP.act = 'swish'"):
        EpsMLP(64, 10, act="swish")
    with pytest.raises(ValueError, match="EpsMLP.temb_dim = 7"):
        EpsMLP(64, 10, temb_dim=7)
    with pytest.raises(ValueError, match="EpsMLP.hidden"):
        EpsMLP(64, 10, hidden=())
    net = EpsMLP(4, 10, hidden=(8,), temb_dim=2)
    with pytest.raises(ValueError, match=r"EpsMLP.t: values in \[0, 10\]"):
        net(torch.zeros(2, 4), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="EpsMLP.t: dtype"):
        net(torch.zeros(2, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"EpsMLP.x: shape \(2, 5\)"):
        net(torch.zeros(2, 5), torch.tensor([0, 1]))


# ------------------------------------------------------------------------------------------------
# checkpoints
def _small_net(seed=0, steps=50, hidden=(16,), act="silu"):
    torch.manual_seed(seed)
    return EpsMLP(64, steps, hidden=hidden, temb_dim=4 if hidden == (16,) else 8, act=act)


def _train_net(seed):
    """The net of the training tests: one hidden layer of 64."""
    return _small_net(seed, hidden=(64,), act="relu")


def test_checkpoint_round_trip(tmp_path):
    net = _small_net()
    meta = {"dataset": "digits", "schedule": DDPMSchedule(50).to_dict(), "seed": 7,
            "losses": [1.0, 0.5]}
    p = save_checkpoint(tmp_path / "sub" / "a.pt", net, meta)
    assert p.is_file() and [f.name for f in p.parent.iterdir()] == ["a.pt"]   # no temp left
    net2, meta2 = load_checkpoint(p)
    assert type(net2) is EpsMLP and not net2.training
    assert meta2["format_version"] == FORMAT_VERSION and meta2["seed"] == 7
    assert meta2["losses"] == [1.0, 0.5] and meta2["net_kwargs"] == net.init_kwargs
    x, t = torch.randn(3, 64), torch.tensor([0, 10, 49])
    assert torch.equal(net2(x, t), net(x, t))
    for k, v in net.state_dict().items():
        assert torch.equal(v, net2.state_dict()[k])
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "b.pt", net, {"bad": object()})
    assert not (tmp_path / "b.pt").exists()


def test_checkpoint_errors(tmp_path):
    missing = tmp_path / "none.pt"
    with pytest.raises(CheckpointMissing) as e:
        load_checkpoint(missing)
    assert str(missing) in str(e.value) and "make train" in str(e.value)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, CheckpointError)

    good = save_checkpoint(tmp_path / "good.pt", _small_net(), {})
    raw = good.read_bytes()
    for name, data in (("garbage.pt", os.urandom(3000)), ("truncated.pt", raw[:len(raw) // 2]),
                       ("empty.pt", b"")):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(p)
        assert str(p) in str(e.value) and "make train" in str(e.value)

    obj = torch.load(good, weights_only=True)
    for name, change, pat in (
            ("v2.pt", {"format_version": FORMAT_VERSION + 1},
             f"format version {FORMAT_VERSION + 1}, this code reads version {FORMAT_VERSION}"),
            ("other.pt", {"format": "something-else"}, "not a spindiff diffusion checkpoint"),
            ("cls.pt", {"class": "os:system"}, "is not in"),
            ("shape.pt", {"kwargs_json": '{"dim": 64, "steps": 50, "hidden": [17], '
                                         '"temb_dim": 4, "act": "silu"}'}, "does not fit")):
        bad = dict(obj, **change)
        torch.save(bad, tmp_path / name)
        with pytest.raises(CheckpointError, match=pat) as e:
            load_checkpoint(tmp_path / name)
        assert str(tmp_path / name) in str(e.value)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a spindiff"):
        load_checkpoint(tmp_path / "plain.pt")


# ------------------------------------------------------------------------------------------------
# training
@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", 1), load_dataset("digits", "test", 1)


def test_training_beats_untrained(digits):
    tr, te = digits
    s = DDPMSchedule.scaled(50)
    net = _train_net(seed=3)
    untrained = eval_loss(net, te, s)
    h = train_ddpm(net, tr, s, epochs=40, batch=128, lr=1e-2, seed=2, progress=False)
    trained = eval_loss(net, te, s)
    assert untrained > 0.9 and trained < 0.3 * untrained, (untrained, trained)
    assert h["loss"][-1] < 0.6 * h["loss"][0] and len(h["loss"]) == 40
    assert h["steps"] == 40 * math.ceil(len(tr) / 128) and not net.training
    # same seed, same bits
    net2 = _small_net(seed=3)
    train_ddpm(net2, tr, s, epochs=3, batch=128, lr=1e-2, seed=2, progress=False)
    net3 = _small_net(seed=3)
    train_ddpm(net3, tr, s, epochs=3, batch=128, lr=1e-2, seed=2, progress=False)
    for a, b in zip(net2.parameters(), net3.parameters()):
        assert torch.equal(a, b)


def test_training_options(digits):
    tr, te = digits
    s = DDPMSchedule.scaled(50)
    calib = mlp_inputs(_train_net(0), tr, s, n=512, seed=0)

    def max_pre(net):
        with torch.no_grad():
            return float(net.mlp[0](calib).abs().max())

    plain, pen = _train_net(seed=4), _train_net(seed=4)
    kw = dict(epochs=15, batch=128, lr=1e-2, seed=1, progress=False)
    train_ddpm(plain, tr, s, **kw)
    h = train_ddpm(pen, tr, s, act_penalty=10.0, act_bound=0.5, **kw)
    assert max_pre(pen) < 0.8 * max_pre(plain), (max_pre(pen), max_pre(plain))
    assert h["act_penalty"] == 10.0
    noisy = _train_net(seed=4)
    h = train_ddpm(noisy, tr, s, weight_noise=True, **kw)
    assert h["weight_noise"] == [0.1, 0.2]
    assert eval_loss(noisy, te, s) < 0.6                    # still learns
    assert not any(torch.equal(a, b) for a, b in zip(noisy.parameters(), plain.parameters()))
    for bad, pat in ((dict(epochs=0), "epochs = 0"), (dict(lr=-1.0), "lr = -1.0"),
                     (dict(weight_noise=2.0), "weight_noise = 2.0"),
                     (dict(act_penalty=-1.0), "act_penalty = -1.0"),
                     (dict(qat_spec="int8"), "qat_spec")):
        with pytest.raises(ValueError, match=pat):
            train_ddpm(_small_net(), tr, s, **{**kw, **bad})
    with pytest.raises(ValueError, match="sched.steps = 100"):
        train_ddpm(_small_net(), tr, DDPMSchedule(100), **kw)


def test_qat_beats_post_training_quantization(digits):
    """Quantization-aware fine-tuning lowers the digital-mode loss below plain post-training
    quantization of the same float net trained for as many steps (a coarse crossbar, where the
    quantization error is large)."""
    from model.nn import CrossbarSpec
    tr, te = digits
    s = DDPMSchedule.scaled(50)
    spec = CrossbarSpec(weight_bits=4, input_bits=5, adc_bits=6)
    torch.manual_seed(5)
    base = EpsMLP(64, 50, hidden=(48,), temb_dim=8)
    train_ddpm(base, tr, s, epochs=30, batch=128, lr=1e-2, seed=1, progress=False)
    ptq = copy.deepcopy(base)
    train_ddpm(ptq, tr, s, epochs=9, batch=128, lr=3e-3, seed=2, progress=False)
    qat = copy.deepcopy(base)
    h = train_ddpm(qat, tr, s, epochs=1, batch=128, lr=3e-3, seed=2, qat_spec=spec,
                   qat_epochs=8, qat_lr=3e-3, progress=False)
    assert len(h["qat_loss"]) == 8 and type(qat.mlp[0]) is nn.Linear
    calib = mlp_inputs(base, tr, s, n=2048, seed=9)
    float_loss = eval_loss(ptq, te, s, seed=4)
    ptq_loss = eval_loss(quantized_copy(ptq, spec, calib), te, s, seed=4)
    qat_loss = eval_loss(quantized_copy(qat, spec, calib), te, s, seed=4)
    assert ptq_loss > float_loss * 1.05, (float_loss, ptq_loss)      # quantization hurts here
    assert qat_loss < ptq_loss - 0.3 * (ptq_loss - float_loss), (float_loss, ptq_loss, qat_loss)


# ------------------------------------------------------------------------------------------------
# the committed checkpoint
def test_committed_checkpoint(digits):
    _, te = digits
    assert DEFAULT_CHECKPOINT.is_file(), "run `make train`"
    assert DEFAULT_CHECKPOINT.stat().st_size < 1_000_000
    net, meta = load_checkpoint(DEFAULT_CHECKPOINT)
    assert meta["dataset"] == "digits" and meta["format_version"] == FORMAT_VERSION
    s = DDPMSchedule(**meta["schedule"])
    assert net.steps == s.steps and net.dim == 64
    # held out with the checkpoint's own split seed
    te = load_dataset("digits", "test", meta["seed"])
    torch.manual_seed(0)
    untrained = EpsMLP(**meta["net_kwargs"])
    lu, lt = eval_loss(untrained, te, s), eval_loss(net, te, s)
    assert lt < 0.2 * lu and lt < 0.15, (lu, lt)
    # the loss the training run recorded (its own evaluation seed): the weights load exactly
    assert abs(eval_loss(net, te, s, seed=meta["seed"]) - meta["test_loss"]) < 1e-6


# ------------------------------------------------------------------------------------------------
# command line
def test_cli_train_and_qat(tmp_path, monkeypatch, capsys):
    from sim import train as cli
    out = tmp_path / "d.pt"
    assert cli.main(["--dataset", "digits", "--seed", "2", "--epochs", "1", "--out", str(out),
                     "--no-progress"]) == 0
    net, meta = load_checkpoint(out)
    cfg = cli.CONFIGS["digits"]
    assert meta["dataset"] == "digits" and meta["seed"] == 2 and meta["qat_spec"] is None
    assert net.init_kwargs["hidden"] == list(cfg["hidden"]) and meta["train"]["epochs"] == 1
    assert "held-out loss" in capsys.readouterr().out
    q = tmp_path / "q.pt"
    assert cli.main(["--dataset", "digits", "--seed", "2", "--init", str(out), "--qat",
                     "--qat-epochs", "1", "--out", str(q), "--no-progress"]) == 0
    qnet, qmeta = load_checkpoint(q)
    assert qmeta["train"]["epochs"] == 0 and len(qmeta["train"]["qat_loss"]) == 1
    assert qmeta["qat_spec"]["weight_bits"] == 8 and qmeta["init"]["path"] == str(out)
    from model.nn import CrossbarSpec
    assert CrossbarSpec(**qmeta["qat_spec"]) == \
        CrossbarSpec(calib_percentile=cfg["qat_percentile"])
    # errors: one line naming the fix, nothing written
    monkeypatch.setenv("SPINDIFF_FASHION_MNIST_DIR", str(tmp_path / "none"))
    assert cli.main(["--dataset", "fashion-mnist", "--out", str(tmp_path / "f.pt")]) == 2
    assert "make fashion-mnist" in capsys.readouterr().err
    assert cli.main(["--init", str(tmp_path / "missing.pt"), "--qat"]) == 2
    assert "make train" in capsys.readouterr().err
    assert not (tmp_path / "f.pt").exists()
    with pytest.raises(SystemExit):
        cli.main(["--dataset", "ring"])


def test_train_options_min_snr_and_qat_only(digits):
    tr, te = digits
    s = DDPMSchedule.scaled(50)
    net = _train_net(seed=6)
    h = train_ddpm(net, tr, s, epochs=20, batch=128, lr=1e-2, seed=1, min_snr=5.0,
                   progress=False)
    assert h["min_snr"] == 5.0 and eval_loss(net, te, s) < 0.8
    with pytest.raises(ValueError, match="qat_epochs = None"):
        train_ddpm(net, tr, s, epochs=0, qat_spec=__import__("model.nn").nn.CrossbarSpec(),
                   progress=False)
    with pytest.raises(ValueError, match="epochs = 0"):
        train_ddpm(net, tr, s, epochs=0, progress=False)
    with pytest.raises(ValueError, match="min_snr = 0"):
        train_ddpm(net, tr, s, epochs=1, min_snr=0, progress=False)


def test_committed_qat_checkpoint(digits):
    """The QAT checkpoint (``sim.train --qat --init digits.pt``) runs the default crossbar's
    digital mode with a lower loss than post-training quantization of the float checkpoint."""
    from model.diffusion.train import CHECKPOINT_DIR
    from model.nn import CrossbarSpec
    path = CHECKPOINT_DIR / "digits-qat.pt"
    assert path.is_file() and path.stat().st_size < 1_000_000, "run `make train`"
    qnet, qmeta = load_checkpoint(path)
    fnet, fmeta = load_checkpoint(DEFAULT_CHECKPOINT)
    spec = CrossbarSpec(**qmeta["qat_spec"])
    assert qmeta["dataset"] == "digits" and qmeta["schedule"] == fmeta["schedule"]
    assert qnet.init_kwargs == fnet.init_kwargs
    s = DDPMSchedule(**qmeta["schedule"])
    tr = load_dataset("digits", "train", qmeta["seed"])
    te = load_dataset("digits", "test", qmeta["seed"])
    calib = mlp_inputs(fnet, tr, s, n=2048, seed=3)
    ptq = eval_loss(quantized_copy(fnet, spec, calib), te, s, seed=5, reps=2)
    qat = eval_loss(quantized_copy(qnet, spec, calib), te, s, seed=5, reps=2)
    flt = eval_loss(fnet, te, s, seed=5, reps=2)
    assert qat < ptq - 0.3 * (ptq - flt), (flt, ptq, qat)
