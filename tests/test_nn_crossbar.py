"""PyTorch-facing crossbar layers (model/nn/): the digital mode against the layer-engine twin
(bit-exact, integers), the float mode against the original model, the analog mode against the
digital one at zero non-idealities, mode switching, spec validation, quantization-aware training,
program export, and a small digits validation run with loose sanity bounds."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.blocks.crossbar import CrossbarTile
from model.blocks.crossbar_config import CFG_BIAS, CFG_LAYER, CFG_LUT, unpack_layer
from model.nn import (CrossbarLinear, CrossbarSpec, calibrate, convert, crossbar_layers,
                      export_program, set_mode, set_spec)
from model.nn.quant import frac_bits_for, truncated_weight_noise

torch.set_num_threads(1)

HAVE_ANALOG = importlib.util.find_spec("model.devices.crossbar") is not None
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None


def random_mlp(rng, n_layers=None, act=None):
    """Random widths (1..40), activations (one table function per model, as the engine has one
    LUT), biases on or off."""
    n_layers = n_layers or int(rng.integers(1, 4))
    lut_act = [nn.SiLU, nn.GELU, nn.Tanh][int(rng.integers(3))]
    dims = [int(d) for d in rng.integers(1, 41, n_layers + 1)]
    mods = []
    for i in range(n_layers):
        mods.append(nn.Linear(dims[i], dims[i + 1], bias=bool(rng.random() < 0.8)))
        if i < n_layers - 1:
            a = act or [nn.ReLU, lut_act, None][int(rng.integers(3))]
            if a is not None:
                mods.append(a())
    return nn.Sequential(*mods), dims


def random_spec(rng, **kw):
    signed = bool(rng.random() < 0.8)
    cols = int(rng.choice([4, 8, 16]))
    d = dict(rows=int(rng.choice([4, 8, 16, 32])), cols=cols,
             weight_bits=int(rng.integers(2, 9)), input_bits=int(rng.integers(3, 9)),
             input_signed=signed,
             adc_bits=[None, int(rng.integers(2, 13))][int(rng.random() < 0.8)],
             macs_per_cycle=int(rng.choice([d for d in (1, 2, 4) if cols % d == 0])),
             calib_percentile=float(rng.choice([100.0, 99.0])), seed=int(rng.integers(1000)))
    d.update(kw)
    return CrossbarSpec(**d)


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_digital_equals_engine_twin(seed):
    """A converted random MLP in digital mode gives exactly the twin's integer codes."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model, dims = random_mlp(rng)
    spec = random_spec(rng)
    scale = float(rng.choice([0.1, 1.0, 30.0]))
    x_cal = torch.randn(64, dims[0]) * scale
    conv = convert(model, "digital", spec, calib=x_cal)
    prog = export_program(conv)
    x = torch.randn(97, dims[0]) * scale * 1.3       # beyond the calibration range: saturation
    y = conv(x)                                       # gradient path (parameters require grad)
    with torch.no_grad():
        y_ng = conv(x)
    got = (y.detach().to(torch.float64) * 2.0 ** prog.fx_out).numpy()
    assert np.array_equal(got, np.round(got)), f"seed {seed}: non-integer codes"
    want = prog.engine().run(prog.quantize_input(x.numpy()))
    assert np.array_equal(got.astype(np.int64), want), \
        f"seed {seed}: digital mode != LayerEngine twin ({spec}, dims {dims})"
    assert torch.equal(y.detach(), y_ng), f"seed {seed}: grad and no-grad forward differ"
    np.testing.assert_allclose(prog.run(x.numpy()), y_ng.numpy().astype(np.float64),
                               err_msg=f"seed {seed}")


def test_digital_per_layer_codes_match_twin():
    """Layer by layer: the twin's sums (per-tile ADC, digital sum) equal digital_sums."""
    rng = np.random.default_rng(7)
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(37, 21), nn.ReLU(), nn.Linear(21, 9))
    spec = CrossbarSpec(rows=8, cols=8, adc_bits=5, weight_bits=6, input_bits=6)
    conv = convert(model, "digital", spec, calib=torch.randn(50, 37))
    prog = export_program(conv)
    eng = prog.engine()
    xc = prog.quantize_input(rng.normal(size=(31, 37)))
    for m, d in zip(crossbar_layers(conv), prog.layers):
        got = m.digital_sums(torch.from_numpy(xc).to(torch.float64)).numpy().astype(np.int64)
        assert np.array_equal(got, eng.sums(d, xc))
        xc = eng.layer(d, xc)


def test_float_mode_is_the_original():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.SiLU(), nn.Linear(20, 20), nn.ReLU(),
                          nn.Linear(20, 3))
    ref = copy.deepcopy(model)
    x = torch.randn(16, 10)
    conv = convert(model, "float")
    assert torch.equal(conv(x), ref(x))
    assert torch.equal(model(x), ref(x)), "convert(inplace=False) changed the original"
    calibrate(conv, x)
    set_mode(conv, "digital")
    assert not torch.equal(conv(x), ref(x))
    set_mode(conv, "float")
    assert torch.equal(conv(x), ref(x))
    # In place: the same object, Linear+act fused, the act slot an Identity.
    same = convert(model, "float", inplace=True)
    assert same is model and isinstance(model[0], CrossbarLinear)
    assert isinstance(model[1], nn.Identity) and isinstance(model[0].act, nn.SiLU)
    assert torch.equal(model(x), ref(x))
    # A bare Linear becomes a CrossbarLinear.
    lin = nn.Linear(4, 3)
    cl = convert(lin, "float")
    assert isinstance(cl, CrossbarLinear) and torch.equal(cl(x[:, :4]), lin(x[:, :4]))


def test_mode_switch_one_argument():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(20, 8)
    conv = convert(model, "digital", calib=x)
    outs = {}
    for mode in ("float", "digital", "float", "digital"):
        set_mode(conv, mode)
        assert all(m.mode == mode for m in crossbar_layers(conv))
        outs.setdefault(mode, conv(x))
        assert torch.equal(conv(x), outs[mode])
    conv[0].mode = "float"
    assert conv[0].mode == "float" and conv[2].mode == "digital"
    with pytest.raises(ValueError, match="mode = 'fp16'"):
        set_mode(conv, "fp16")
    with pytest.raises(ValueError, match="mode = 'x'"):
        conv[0].mode = "x"


def test_uncalibrated_and_recalibration():
    model = convert(nn.Sequential(nn.Linear(4, 4)), "digital")
    with pytest.raises(ValueError, match="not calibrated"):
        model(torch.zeros(2, 4))
    calibrate(model, torch.randn(8, 4))
    model(torch.zeros(2, 4))
    set_spec(model, CrossbarSpec(seed=5))                 # a seed change keeps the scales
    model(torch.zeros(2, 4))
    set_spec(model, CrossbarSpec(weight_bits=4))          # a bit width change drops them
    with pytest.raises(ValueError, match="not calibrated"):
        model(torch.zeros(2, 4))


@pytest.mark.parametrize("kw,needle", [
    (dict(rows=0), "CrossbarSpec.rows = 0"),
    (dict(cols=2000), "CrossbarSpec.cols = 2000"),
    (dict(weight_bits=1), "CrossbarSpec.weight_bits = 1"),
    (dict(input_bits=1), "CrossbarSpec.input_bits = 1"),
    (dict(input_bits=17, input_signed=False), "CrossbarSpec.input_bits = 17"),
    (dict(adc_bits=1), "CrossbarSpec.adc_bits = 1"),
    (dict(adc_bits=8.0), "CrossbarSpec.adc_bits = 8.0"),
    (dict(cols=12, macs_per_cycle=5), "CrossbarSpec.macs_per_cycle = 5"),
    (dict(bias_bits=40), "CrossbarSpec.bias_bits = 40"),
    (dict(calib_percentile=10), "CrossbarSpec.calib_percentile = 10"),
    (dict(input_signed=1), "CrossbarSpec.input_signed = 1"),
    (dict(train_noise_sigma=-0.1), "CrossbarSpec.train_noise_sigma = -0.1"),
    (dict(noise_aware=True, train_noise_trunc=0.0), "CrossbarSpec.train_noise_trunc = 0.0"),
    (dict(seed=-1), "CrossbarSpec.seed = -1"),
    (dict(analog={"adc_shift": 3}), "analog\\['adc_shift'\\]"),
    (dict(analog=[1]), "CrossbarSpec.analog"),
])
def test_bad_spec(kw, needle):
    with pytest.raises(ValueError, match=needle):
        CrossbarSpec(**kw)


def test_bad_arguments():
    with pytest.raises(ValueError, match="must be an nn.Linear"):
        CrossbarLinear(nn.Conv1d(1, 1, 1))
    with pytest.raises(ValueError, match="act = Softmax"):
        CrossbarLinear(nn.Linear(2, 2), act=nn.Softmax(dim=-1))
    with pytest.raises(ValueError, match="no nn.Linear"):
        convert(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="convert.spec"):
        convert(nn.Linear(2, 2), spec={"rows": 4})
    with pytest.raises(ValueError, match="calibrate.x"):
        calibrate(convert(nn.Linear(2, 2)), torch.zeros(0, 2))


def test_export_rules():
    torch.manual_seed(2)
    x = torch.randn(32, 6)
    # Two different table functions: one engine has one LUT.
    m = convert(nn.Sequential(nn.Linear(6, 6), nn.SiLU(), nn.Linear(6, 6), nn.Tanh(),
                              nn.Linear(6, 2)), calib=x)
    with pytest.raises(ValueError, match="one LUT"):
        export_program(m)
    # Same function twice: one shared output scale, one table, exports.
    m = convert(nn.Sequential(nn.Linear(6, 6), nn.GELU(), nn.Linear(6, 6), nn.GELU(),
                              nn.Linear(6, 2)), calib=x)
    lay = crossbar_layers(m)
    assert lay[0].scales.fx_out == lay[1].scales.fx_out
    export_program(m)
    # A float module in the chain does not export.
    m = convert(nn.Sequential(nn.Linear(6, 6), nn.LayerNorm(6), nn.Linear(6, 2)), calib=x)
    with pytest.raises(ValueError, match="LayerNorm"):
        export_program(m)
    with pytest.raises(ValueError, match="not calibrated"):
        export_program(convert(nn.Linear(3, 3)))


def test_export_port_words_reload_the_program():
    """prog_words / cfg_words, decoded as the ports decode them, give back the program."""
    torch.manual_seed(3)
    spec = CrossbarSpec(rows=8, cols=8, macs_per_cycle=4, weight_bits=5, input_bits=6)
    m = convert(nn.Sequential(nn.Linear(19, 12), nn.SiLU(), nn.Linear(12, 5)), spec=spec,
                calib=torch.randn(40, 19))
    prog = export_program(m)
    eng = prog.engine()
    tile = CrossbarTile(prog.cfg.tile)
    for addr, data in prog.prog_words():
        tile.write_word(addr, data)
    assert np.array_equal(tile.weights, eng.tile.weights)
    c = prog.cfg
    bias = np.zeros(c.bias_entries, dtype=np.int64)
    lut = np.zeros(c.lut_entries, dtype=np.int64)
    layers = {}
    for target, addr, data in prog.cfg_words():
        if target == CFG_BIAS:
            bias[addr] = data - (1 << c.bias_bits) * (data >> (c.bias_bits - 1))
        elif target == CFG_LUT:
            ib = c.tile.input_bits
            lut[addr] = data - (1 << ib) * (data >> (ib - 1))
        else:
            assert target == CFG_LAYER
            layers[addr] = unpack_layer(c, data)
    assert np.array_equal(bias, eng.bias) and np.array_equal(lut, eng.lut)
    assert [layers[i] for i in range(len(layers))] == prog.layers


def test_export_into_a_given_engine_build():
    """A model fits a fixed engine build (bit-serial, other P, larger memories) and runs there
    exactly as in digital mode; a build that cannot hold it is refused with the field named."""
    from model.blocks.crossbar_config import EngineConfig, TileConfig
    torch.manual_seed(4)
    spec = CrossbarSpec(rows=8, cols=8, weight_bits=6, input_bits=6, adc_bits=8, bias_bits=12)
    m = convert(nn.Sequential(nn.Linear(20, 24), nn.ReLU(), nn.Linear(24, 7)), spec=spec,
                calib=torch.randn(64, 20))
    build = EngineConfig(tile=TileConfig(rows=8, cols=8, weight_bits=6, input_bits=6,
                                         input_signed=True, adc_bits=8, macs_per_cycle=2,
                                         bit_serial=True, slots=16),
                         max_dim=24, max_layers=3, bias_bits=12, bias_entries=64)
    prog = export_program(m, build)
    assert prog.cfg is build
    x = torch.randn(33, 20)
    with torch.no_grad():
        want = (m(x).double() * 2.0 ** prog.fx_out).numpy().astype(np.int64)
    assert np.array_equal(prog.engine().run(prog.quantize_input(x.numpy())), want)
    from dataclasses import replace
    with pytest.raises(ValueError, match="cfg.max_dim = 16"):
        export_program(m, replace(build, max_dim=16))
    with pytest.raises(ValueError, match="cfg.slots = 8"):
        export_program(m, replace(build, tile=replace(build.tile, slots=8)))
    with pytest.raises(ValueError, match="cfg.tile.weight_bits = 5"):
        export_program(m, replace(build, tile=replace(build.tile, weight_bits=5)))
    with pytest.raises(ValueError, match="cfg.bias_bits = 16"):
        export_program(m, replace(build, bias_bits=16))


def test_qat_reduces_digital_loss():
    """Quantization-aware fine-tuning through the straight-through estimator lowers the loss
    measured in digital mode (coarse 4-bit weights, 4-bit inputs, 6-bit ADC; the scales stay
    those of the calibration)."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = torch.randn(512, 12, generator=g)
    w_true = torch.randn(12, 4, generator=g)
    y = (x @ w_true + 0.3 * torch.randn(512, 4, generator=g)).argmax(-1)
    model = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    spec = CrossbarSpec(weight_bits=4, input_bits=4, adc_bits=6, rows=8, cols=8)
    q = convert(model, "digital", spec, calib=x)
    with torch.no_grad():
        before = float(F.cross_entropy(q(x), y))
    opt = torch.optim.Adam(q.parameters(), lr=3e-3)
    for _ in range(100):
        opt.zero_grad()
        loss = F.cross_entropy(q(x), y)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in q.parameters())
        opt.step()
    with torch.no_grad():
        after = float(F.cross_entropy(q(x), y))
    assert after < 0.8 * before, (before, after)          # measured 0.98 -> 0.59


def test_training_noise():
    g = torch.Generator().manual_seed(0)
    n = truncated_weight_noise((200_000,), 0.1, 0.2, g)
    assert float(n.abs().max()) <= 0.2
    # Exact std: Gaussian inside ±2σ, uniform on ±0.2 for the 4.55 % outside.
    from scipy.stats import norm
    p_in = norm.cdf(2) - norm.cdf(-2)
    var = 0.01 * (p_in - 4 * norm.pdf(2)) + (1 - p_in) * 0.2 ** 2 / 3
    assert abs(float(n.std()) - var ** 0.5) < 0.002
    lin = nn.Linear(16, 8)
    x = torch.randn(4, 16)
    spec = CrossbarSpec(noise_aware=True, seed=3)
    a, b = convert(lin, "float", spec), convert(lin, "float", spec)
    a.train(), b.train()
    ya, yb = a(x), b(x)
    assert torch.equal(ya, yb), "same seed, same training noise"
    assert not torch.equal(ya, a(x)), "fresh noise on every forward"
    a.eval()
    assert torch.equal(a(x), lin(x)), "no noise in eval mode"


def test_frac_bits_for():
    assert frac_bits_for(1.0, 127) == 6 and frac_bits_for(127.0, 127) == 0
    assert frac_bits_for(128.0, 127) == -1 and frac_bits_for(0.0, 127) == 0
    for v in np.random.default_rng(0).uniform(1e-4, 1e4, 200):
        f = frac_bits_for(float(v), 127)
        assert v * 2.0 ** f <= 127 < v * 2.0 ** (f + 1)


# ------------------------------------------------------------------------------------------------
# Analog mode (model/devices/crossbar.py)
needs_analog = pytest.mark.skipif(not HAVE_ANALOG, reason="model/devices/crossbar.py not present")


def _analog_pair(tech, adc_bits, seed=0):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(37, 29), nn.ReLU(), nn.Linear(29, 18), nn.SiLU(),
                          nn.Linear(18, 5))
    spec = CrossbarSpec(rows=16, cols=8, adc_bits=adc_bits, tech=tech, seed=seed)
    x = torch.from_numpy(rng.normal(size=(150, 37)).astype(np.float32))
    conv = convert(model, "digital", spec, calib=x)
    return conv, x


@needs_analog
@pytest.mark.parametrize("tech", ["rram", "mtj"])
def test_analog_ideal_equals_digital_with_adc(tech):
    """Ideal cells, no noise, the tile ADC ideal-combined: analog codes equal the digital ones."""
    conv, x = _analog_pair(tech, adc_bits=6, seed=1)
    with torch.no_grad():
        yd = conv(x)
        set_mode(conv, "analog")
        ya = conv(x)
    assert torch.equal(yd, ya)


@needs_analog
@pytest.mark.parametrize("tech", ["rram", "mtj"])
def test_analog_ideal_no_adc_matches_lossless_digital(tech):
    """No ADC, ideal cells: block sums equal the exact integer sums to float tolerance; outputs
    differ only where a sum sits on a rounding tie of the requantization (<= 1 code)."""
    conv, x = _analog_pair(tech, adc_bits=None, seed=2)
    for m in crossbar_layers(conv):
        xc = m.input_codes(torch.randn(50, m.in_features) * 2.0 ** -m.scales.fx * 40)
        sd, sa = m.digital_sums(xc), m.analog_sums(xc)
        assert float((sd - sa).abs().max()) <= 1e-9 * max(1.0, float(sd.abs().max()))
    with torch.no_grad():
        yd = conv(x)
        set_mode(conv, "analog")
        ya = conv(x)
    lsb = 2.0 ** -crossbar_layers(conv)[-1].scales.fx_out
    assert float((yd - ya).abs().max()) <= lsb * 1.0001
    assert float((yd != ya).float().mean()) < 0.05


@needs_analog
def test_analog_read_noise_per_pass_and_seeded():
    from model.devices.crossbar import ReadNoise
    conv, x = _analog_pair("rram", adc_bits=8, seed=3)
    spec = conv[0].spec.replace(analog={"read_noise": ReadNoise("multiplicative", 0.2)},
                                seed=11)
    set_spec(conv, spec)
    set_mode(conv, "analog")
    with torch.no_grad():
        a1, a2 = conv(x), conv(x)
    assert not torch.equal(a1, a2), "read noise is drawn afresh on every pass"
    again = copy.deepcopy(conv)
    for m in crossbar_layers(again):
        m._analog = None
        m.reset_noise()
    with torch.no_grad():
        assert torch.equal(again(x), a1), "same seed, same bits"
    set_spec(conv, spec.replace(seed=12))
    with torch.no_grad():
        assert not torch.equal(conv(x), a1)
    # Gradients flow in analog mode (float surrogate, straight-through).
    conv.zero_grad()
    F.mse_loss(conv(x), torch.zeros(len(x), 5)).backward()
    assert all(p.grad is not None for p in conv.parameters())


@needs_analog
def test_bad_analog_spec():
    with pytest.raises(ValueError, match="CrossbarSpec.tech = 'pcm'"):
        CrossbarSpec(tech="PCM")
    with pytest.raises(ValueError, match="analog\\['sigma'\\]: not an AnalogConfig field"):
        CrossbarSpec(analog={"sigma": 0.1})
    with pytest.raises(ValueError, match="prog_sigma_rel"):
        CrossbarSpec(analog={"prog_sigma_rel": 2.0})


# ------------------------------------------------------------------------------------------------
# Digits validation (tiny run of sim/crossbar_validation.py)
@pytest.mark.skipif(not (HAVE_SKLEARN and HAVE_ANALOG),
                    reason="needs scikit-learn (bundled digits) and model/devices/crossbar.py")
def test_digits_validation_sanity():
    from sim.crossbar_validation import run_validation
    rep = run_validation(seed=1, repeats=2, sigmas=(0.0, 0.05, 0.3, 1.0), adc_bits=(2, 4, 8),
                         adc_noise=(("multiplicative", 0.1),), hidden=(32,), epochs=60,
                         noise_aware=False, log=lambda *a: None)
    assert rep["float_accuracy"]["standard"] > 0.9
    assert rep["digital"]["bit_exact_with_twin"]
    assert rep["digital"]["accuracy"] > 0.9
    for cur in rep["analog_vs_noise"]:
        m = [p["mean"] for p in cur["points"]]
        assert m[0] > 0.9, cur
        assert m[-1] < m[0] - 0.2, cur                      # large noise hurts
        assert all(b <= a + 0.03 for a, b in zip(m, m[1:])), cur   # monotone-ish
    adc = rep["accuracy_vs_adc_bits"]
    assert adc["digital"][0] < 0.5 < 0.9 < adc["digital"][-1]
    assert adc["digital"][-1] >= adc["digital"][1] - 0.01
    ana = [p["mean"] for p in adc["analog"][0]["points"]]
    assert ana[-1] >= ana[1] - 0.02 and ana[-1] > ana[0] + 0.3


def test_validation_cli_bad_arguments(tmp_path):
    import subprocess
    import sys

    from sim.meta import ROOT
    for argv, needle in ((["--seed", "-1"], "--seed = -1"), (["--repeats", "0"], "--repeats = 0")):
        r = subprocess.run([sys.executable, "-m", "sim.crossbar_validation", *argv,
                            "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())
