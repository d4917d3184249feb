"""Layer engine: the twin (model/blocks/layer_engine.py) on its own (bad programs, a float
reference), and the RTL (hw/layer_engine.py) in Amaranth's simulator against the twin.

``EngineBench`` drives the RTL: programming words and configuration writes (with random gaps),
then runs back to back with random input gaps and random back-pressure on ``out``; every output
code and ``last`` flag is compared with the twin, and nothing offered on ``out`` may change or
vanish before it is taken.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.layer_engine import LayerEngine as RTL
from hw.layer_engine import desc_layout, layer_cycles, run_cycles
from model.blocks.crossbar_config import (ACT_LUT, ACT_NONE, ACT_RELU, CFG_BIAS, EngineConfig,
                                          LayerDesc, TileConfig, layer_desc_bits, pack_layer,
                                          signed_range, unpack_layer)
from model.blocks.layer_engine import LayerEngine as Twin
from sim.engine_configs import EngineProgram, random_program
from tests.simutil import run_sim

# Amaranth-simulator configs: R = 3 and C = 4 (dims 10, 7, 9, 5 are multiples of neither),
# a 5-bit ADC that clips often; and a bit-serial tile with unsigned 3-bit codes.
PAR = EngineConfig(tile=TileConfig(rows=3, cols=4, weight_bits=4, input_bits=4, adc_bits=5,
                                   macs_per_cycle=2, slots=24),
                   max_dim=10, max_layers=3, bias_bits=8, bias_entries=30)
SER = EngineConfig(tile=TileConfig(rows=4, cols=2, weight_bits=3, input_bits=3,
                                   input_signed=False, adc_bits=6, macs_per_cycle=1,
                                   bit_serial=True, slots=10),
                   max_dim=7, max_layers=2, bias_bits=6, bias_entries=12)


# ------------------------------------------------------------------------------------------------
# RTL bench
class EngineBench:
    """Drives one RTL engine through a list of actions; checks every output against a twin."""

    def __init__(self, cfg: EngineConfig, seed: int):
        self.cfg, self.seed = cfg, seed
        self.rng = np.random.default_rng(seed)
        self.dut = RTL(cfg)
        self.actions = []
        self.runs_checked = 0
        self.outputs_checked = 0
        self.run_spans = []          # (first input cycle, busy-low cycle) per run
        self.cyc = 0

    # -- actions --------------------------------------------------------------------------------
    def load(self, prog: EngineProgram, p_gap: float = 0.3):
        self.actions.append(("load", prog, p_gap))
        return self

    def runs(self, prog: EngineProgram, xs, n_layers=None, p_valid=0.7, p_ready=0.6):
        """Runs of ``prog`` on input rows ``xs``, back to back; the expected outputs come from
        the twin of ``prog`` (with ``n_layers`` layers, default all)."""
        self.actions.append(("runs", prog, np.asarray(xs), n_layers, p_valid, p_ready))
        return self

    # -- simulation -----------------------------------------------------------------------------
    def simulate(self, max_cycles: int = 200_000):
        run_sim(self.dut, self._tb)
        return self

    async def _tb(self, ctx, d):
        self.cyc = 0
        for act in self.actions:
            if act[0] == "load":
                await self._load(ctx, d, act[1], act[2])
            else:
                await self._runs(ctx, d, *act[1:])

    async def _tick(self, ctx):
        await ctx.tick()
        self.cyc += 1

    async def _write(self, ctx, stream, words, p_gap):
        for w in words:
            while self.rng.random() < p_gap:
                ctx.set(stream.valid, 0)
                await self._tick(ctx)
            ctx.set(stream.valid, 1)
            ctx.set(stream.payload, w)
            for _ in range(1000):
                if ctx.get(stream.ready):
                    break
                await self._tick(ctx)
            else:
                raise AssertionError(f"seed {self.seed}: {stream} never ready")
            await self._tick(ctx)
        ctx.set(stream.valid, 0)

    async def _load(self, ctx, d, prog, p_gap):
        assert not ctx.get(d.busy)
        prog_words = [{"addr": a, "data": v} for a, v in prog.prog_words()]
        cfg_words = [{"target": t, "addr": a, "data": v} for t, a, v in prog.cfg_words()]
        await self._write(ctx, d.prog, prog_words, p_gap)
        await self._write(ctx, d.cfg, cfg_words, p_gap)

    async def _runs(self, ctx, d, prog, xs, n_layers, p_valid, p_ready):
        cfg, rng, seed = self.cfg, self.rng, self.seed
        tw = prog.twin()
        layers = prog.layers if n_layers in (None, 0) else prog.layers[:n_layers]
        if n_layers == 0:
            layers = prog.layers[:1]
        tw.set_program(layers)
        want = tw.run(xs)
        ctx.set(d.n_layers, len(prog.layers) if n_layers is None else n_layers)
        in_dim = xs.shape[1]
        k = i = 0                  # run and element being offered
        got_run, got = 0, []
        held = None
        offered = False
        start = busy_prev = None
        limit = self.cyc + 2000 + len(xs) * 40 * run_cycles(cfg, layers)
        while got_run < len(xs):
            assert self.cyc < limit, (f"seed {seed}: timeout, run {got_run}, "
                                      f"{len(got)} outputs of it")
            if k < len(xs) and not offered:
                offered = bool(rng.random() < p_valid)
            oready = int(rng.random() < p_ready)
            ctx.set(d.inp.valid, int(offered))
            if offered:
                ctx.set(d.inp.payload.code, int(xs[k, i]))
            ctx.set(d.out.ready, oready)
            busy = ctx.get(d.busy)
            if busy_prev and not busy and start is not None:
                self.run_spans.append((start, self.cyc))
                start = None
            busy_prev = busy
            if offered and ctx.get(d.inp.ready):
                if i == 0:
                    start = self.cyc
                i += 1
                offered = False
                if i == in_dim:
                    k, i = k + 1, 0
            ovalid = ctx.get(d.out.valid)
            payload = (ctx.get(d.out.payload.code), ctx.get(d.out.payload.last))
            if held is not None:
                assert ovalid and payload == held, \
                    f"seed {seed}: cycle {self.cyc}: a held output changed or vanished"
            held = payload if ovalid and not oready else None
            if ovalid and oready:
                code, last = payload
                j = len(got)
                assert j < want.shape[1], f"seed {seed}: run {got_run}: extra output {code}"
                assert code == want[got_run, j], (
                    f"seed {seed}: run {got_run} output {j}: RTL {code}, twin "
                    f"{want[got_run, j]} (x = {xs[got_run].tolist()})")
                assert last == (j == want.shape[1] - 1), \
                    f"seed {seed}: run {got_run} output {j}: last = {last}"
                got.append(code)
                self.outputs_checked += 1
                if last:
                    got_run, got = got_run + 1, []
                    self.runs_checked += 1
            await self._tick(ctx)
        ctx.set(d.inp.valid, 0)
        ctx.set(d.out.ready, 0)
        # Let busy fall: two cycles after the last output is taken, or after the tile has sent
        # the padded columns past out_dim (at most one MVM later).
        for _ in range(cfg.tile.mvm_cycles() + 8):
            if not ctx.get(d.busy):
                break
            await self._tick(ctx)
        assert not ctx.get(d.busy), f"seed {seed}: busy still high after the last output"
        if start is not None:
            self.run_spans.append((start, self.cyc))


def mlp(cfg, rng, dims, acts, lut="silu", **kw):
    return random_program(cfg, rng, dims=dims, acts=acts, lut=lut, **kw)


# ------------------------------------------------------------------------------------------------
# Twin on its own
def test_twin_rejects_bad_programs():
    cfg = PAR
    tw = Twin(cfg)
    a = LayerDesc(5, 7, slot_base=0, bias_base=0)
    b = LayerDesc(6, 4, slot_base=6, bias_base=7)
    with pytest.raises(ValueError, match=r"program\[1\]\.in_dim = 6: must equal .* out_dim = 7"):
        tw.set_program([a, b])
    with pytest.raises(ValueError, match=r"4 layers, allowed \[1, 3\]"):
        tw.set_program([LayerDesc(4, 4)] * 4)
    with pytest.raises(ValueError, match=r"0 layers, allowed \[1, 3\]"):
        tw.set_program([])
    # 10 x 10 needs 4 x 3 = 12 slots: base 13 leaves 11.
    with pytest.raises(ValueError, match=r"slot_base = 13: out of range, allowed \[0, 12\]"):
        tw.set_program([LayerDesc(10, 10, slot_base=13)])
    with pytest.raises(ValueError, match=r"act = 3: must be one of"):
        tw.set_program([LayerDesc(4, 4, act=3)])
    with pytest.raises(ValueError, match=r"in_dim = 11: out of range, allowed \[1, 10\]"):
        tw.set_program([LayerDesc(11, 4)])
    with pytest.raises(ValueError, match=r"bias_base = 27: out of range, allowed \[0, 26\]"):
        tw.set_program([LayerDesc(4, 4, bias_base=27)])
    with pytest.raises(ValueError, match=r"out_shift = 99: out of range"):
        tw.set_program([LayerDesc(4, 4, out_shift=99)])
    with pytest.raises(ValueError, match=r"program is empty"):
        tw.run(np.zeros((1, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"w: value 8 out of range, allowed \[-8, 7\]"):
        tw.load_layer(LayerDesc(2, 2), np.full((2, 2), 8))
    with pytest.raises(ValueError, match=r"bias: value 128 out of range"):
        tw.load_layer(LayerDesc(2, 2), np.zeros((2, 2), dtype=int), [128, 0])
    with pytest.raises(ValueError, match=r"lut: shape"):
        tw.load_lut(np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match=r"pack_layer|act"):
        pack_layer(cfg, LayerDesc(4, 4, act=7))


def test_rtl_rejects_bad_config():
    with pytest.raises(ValueError, match=r"LayerEngine\.cfg = .*must be an EngineConfig"):
        RTL(PAR.tile)
    with pytest.raises(ValueError, match=r"EngineConfig\.max_dim = 0: out of range"):
        RTL(EngineConfig(tile=PAR.tile, max_dim=0))


def test_descriptor_layout_matches_pack_layer():
    """The RTL's descriptor struct is layer_fields() LSB first: pack/unpack round trip and the
    struct offsets read back each field of a packed word."""
    rng = np.random.default_rng(3)
    lay = desc_layout(PAR)
    assert lay.size == layer_desc_bits(PAR)
    for _ in range(50):
        prog = random_program(PAR, rng, n_layers=1)
        d = prog.layers[0]
        word = pack_layer(PAR, d)
        assert unpack_layer(PAR, word) == d
        for name, fld in lay:
            assert (word >> fld.offset) & ((1 << fld.width) - 1) == getattr(d, name)


def test_twin_approximates_float_mlp():
    """Wide codes and a lossless ADC: the integer engine computes a float relu MLP (scales
    2**-f, docs/crossbar.md §5) to within a few output LSBs."""
    fx, fw = 8, 9                       # input and weight scales 2**-8, 2**-9
    t = TileConfig(rows=8, cols=8, weight_bits=12, input_bits=12, adc_bits=32,
                   macs_per_cycle=1, slots=16)
    cfg = EngineConfig(tile=t, max_dim=20, max_layers=2, bias_bits=24, bias_entries=64)
    rng = np.random.default_rng(11)
    dims = [17, 20, 6]
    wf = [rng.normal(0, 1 / np.sqrt(dims[i]), size=(dims[i], dims[i + 1])) for i in range(2)]
    bf = [rng.normal(0, 0.3, size=dims[i + 1]) for i in range(2)]
    tw = Twin(cfg)
    layers = []
    for i in range(2):
        w = np.round(wf[i] * 2 ** fw).astype(np.int64)
        b = np.round(bf[i] * 2 ** (fx + fw)).astype(np.int64)      # ADC LSB = 2**-(fx+fw)
        d = LayerDesc(dims[i], dims[i + 1], slot_base=9 * i, bias_base=20 * i, adc_shift=0,
                      out_shift=fw, act=ACT_RELU if i == 0 else ACT_NONE)
        tw.load_layer(d, w, b)
        layers.append(d)
    tw.set_program(layers)
    xf = rng.uniform(-2, 2, size=(500, dims[0]))
    x = np.round(xf * 2 ** fx).astype(np.int64)
    y = tw.run(x) / 2 ** fx
    h = np.maximum(xf @ wf[0] + bf[0], 0)
    yf = h @ wf[1] + bf[1]
    err = np.abs(y - yf)
    # Quantisation: inputs 2**-9, weights 2**-10 per term, two roundings of 2**-9 per layer.
    assert err.max() < 0.05, f"max error {err.max():.4f}"
    assert err.mean() < 0.01, f"mean error {err.mean():.4f}"
    assert np.abs(yf).mean() > 0.3          # the comparison is not trivially of zeros


# ------------------------------------------------------------------------------------------------
# RTL against the twin
def test_rtl_mlp_three_layers_all_activations():
    """10 -> 7 -> 9 -> 5 (none of them multiples of R = 3 or C = 4): relu, SiLU LUT, none;
    random input gaps and output back-pressure; 8 runs back to back."""
    seed = 21
    b = EngineBench(PAR, seed)
    prog = mlp(PAR, b.rng, [10, 7, 9, 5], [ACT_RELU, ACT_LUT, ACT_NONE])
    xs = prog.random_inputs(b.rng, 8)
    b.load(prog).runs(prog, xs).simulate()
    assert b.runs_checked == 8 and b.outputs_checked == 40


def test_rtl_random_programs_parallel():
    """Random programs (dims, slots and bias placement, shifts, activations, random LUT), each
    loaded and run several times; reconfiguration between programs."""
    seed = 33
    b = EngineBench(PAR, seed)
    n_runs = 0
    for _ in range(5):
        prog = random_program(PAR, b.rng)
        xs = prog.random_inputs(b.rng, 4)
        b.load(prog, p_gap=0.2).runs(prog, xs, p_valid=0.8, p_ready=0.5)
        n_runs += 4
    b.simulate()
    assert b.runs_checked == n_runs


def test_rtl_heavy_back_pressure_single_row_block():
    """One row block per layer (every tile beat completes an output), so the output pipeline is
    full while it stalls on ``out``: the bias and LUT reads of the stalled stages must hold."""
    for seed in (0, 1):
        b = EngineBench(PAR, seed)
        p1 = mlp(PAR, b.rng, [3, 10], [ACT_NONE], lut=None)
        p2 = mlp(PAR, b.rng, [3, 9], [ACT_LUT])
        b.load(p1).runs(p1, p1.random_inputs(b.rng, 6), p_valid=1.0, p_ready=0.3)
        b.load(p2).runs(p2, p2.random_inputs(b.rng, 6), p_valid=1.0, p_ready=0.3)
        b.simulate()
        assert b.runs_checked == 12


# C = 1 (no partial-sum memory: the previous sum is forwarded), and C = P = 2 with R = 1 (a
# column's partial sum is read in the cycle it is written; R*steps < P: the tile stalls its
# pipeline every group).
ONE_COL = EngineConfig(tile=TileConfig(rows=2, cols=1, weight_bits=3, input_bits=3, adc_bits=4,
                                       macs_per_cycle=1, slots=16),
                       max_dim=4, max_layers=2, bias_bits=5, bias_entries=8)
Q_LT_P = EngineConfig(tile=TileConfig(rows=1, cols=2, weight_bits=3, input_bits=3, adc_bits=4,
                                      macs_per_cycle=2, slots=12),
                      max_dim=3, max_layers=2, bias_bits=5, bias_entries=8)


@pytest.mark.parametrize("cfg", [ONE_COL, Q_LT_P], ids=["one_column", "q_lt_p"])
def test_rtl_random_programs_small_tiles(cfg):
    """Random programs on a one-column tile and on a tile whose groups outpace its rows, with
    gaps and back-pressure, then the exact cycle count without them."""
    seed = 55
    b = EngineBench(cfg, seed)
    t = cfg.tile
    n_runs = 0

    def dims():     # every layer has at least two row blocks
        return [int(d) for d in b.rng.integers(t.rows + 1, cfg.max_dim + 1, cfg.max_layers + 1)]
    for _ in range(3):
        prog = random_program(cfg, b.rng, dims=dims())
        b.load(prog, p_gap=0.2).runs(prog, prog.random_inputs(b.rng, 3), p_valid=0.7,
                                     p_ready=0.5)
        n_runs += 3
    prog = random_program(cfg, b.rng, dims=dims())
    b.load(prog).runs(prog, prog.random_inputs(b.rng, 2), p_valid=1.0, p_ready=1.0)
    b.simulate()
    assert b.runs_checked == n_runs + 2
    spans = [e - s for s, e in b.run_spans[-2:]]
    assert spans == [run_cycles(cfg, prog.layers)] * 2, f"seed {seed}: run spans {spans}"


def test_rtl_random_programs_bit_serial():
    seed = 44
    b = EngineBench(SER, seed)
    n_runs = 0
    for _ in range(4):
        prog = random_program(SER, b.rng)
        xs = prog.random_inputs(b.rng, 3)
        b.load(prog, p_gap=0.2).runs(prog, xs, p_valid=0.9, p_ready=0.7)
        n_runs += 3
    b.simulate()
    assert b.runs_checked == n_runs


def test_rtl_saturation_and_bias_extremes():
    """out_shift 0 and rail biases: q clips at both ends of the DAC range (checked to occur);
    adc_shift 0 with full-range weights: the tile's ADC clips too."""
    seed = 55
    b = EngineBench(PAR, seed)
    rng = b.rng
    t = PAR.tile
    blo, bhi = signed_range(PAR.bias_bits)
    lo, hi = t.input_range
    dims = [9, 8, 6]
    w0 = rng.integers(*t.weight_range, endpoint=True, size=(9, 8))
    w1 = rng.integers(*t.weight_range, endpoint=True, size=(8, 6))
    b0 = np.array([blo, bhi, blo, bhi, 0, 1, -1, 3])
    b1 = np.array([bhi, blo, 0, -5, 5, 0])
    layers = [LayerDesc(9, 8, slot_base=0, bias_base=0, adc_shift=0, out_shift=0, act=ACT_NONE),
              LayerDesc(8, 6, slot_base=6, bias_base=8, adc_shift=1, out_shift=1,
                        act=ACT_RELU)]
    prog = EngineProgram(PAR, layers, [w0, w1], [b0, b1], None)
    xs = prog.random_inputs(rng, 6)
    xs[0] = hi
    xs[1] = lo
    b.load(prog).runs(prog, xs).simulate()
    tw = prog.twin()
    q0 = tw.layer(layers[0], xs)
    assert (q0 == lo).any() and (q0 == hi).any()
    # The tile's ADC clips too (layer 0, adc_shift 0): some exact column sum of some block
    # lies past each rail.
    alo, ahi = t.adc_range
    xp = np.zeros((len(xs), 9), dtype=np.int64)
    xp[:, :9] = xs
    acc = np.concatenate([tw.tile.acc(xp[:, 3 * rb:3 * rb + 3], layers[0].slot(t, cb, rb))
                          for cb in range(2) for rb in range(3)], axis=1)
    assert (acc > ahi).any() and (acc < alo).any()
    assert b.runs_checked == 6


def test_rtl_reconfigure_between_runs_and_n_layers():
    """Same weights, descriptors rewritten between runs (shifts and activations), a LUT
    rewritten, n_layers 1, 2, 3 and 0 (acts as 1) on one loaded program."""
    seed = 66
    b = EngineBench(PAR, seed)
    rng = b.rng
    prog = mlp(PAR, rng, [7, 10, 4, 6], [ACT_LUT, ACT_RELU, ACT_LUT], lut="random")
    xs = prog.random_inputs(rng, 3)
    b.load(prog)
    for n in (1, 2, 3, 0):
        b.runs(prog, xs, n_layers=n)
    # New shifts, activations and LUT, same weights and slots: cfg words only.
    layers = [LayerDesc(d.in_dim, d.out_dim, d.slot_base, d.bias_base,
                        int(rng.integers(0, 4)), int(rng.integers(0, 5)), int(a))
              for d, a in zip(prog.layers, [ACT_NONE, ACT_LUT, ACT_RELU])]
    prog2 = EngineProgram(PAR, layers, prog.weights, prog.biases,
                          rng.integers(-8, 8, size=16))
    b.load(prog2).runs(prog2, xs)
    b.simulate()
    assert b.runs_checked == 15


def test_rtl_one_wide_layer_and_unit_dims():
    """in_dim 1 (the first input beat is the last), out_dim 1, and a max_dim x max_dim layer."""
    seed = 77
    b = EngineBench(PAR, seed)
    rng = b.rng
    p1 = mlp(PAR, rng, [1, 10, 1], [ACT_RELU, ACT_NONE], lut=None)
    p2 = mlp(PAR, rng, [10, 10], [ACT_LUT])
    b.load(p1).runs(p1, p1.random_inputs(rng, 4), p_valid=1.0, p_ready=1.0)
    b.load(p2).runs(p2, p2.random_inputs(rng, 4), p_valid=0.5, p_ready=0.3)
    b.simulate()
    assert b.runs_checked == 8


@pytest.mark.parametrize("cfg", [PAR, SER], ids=["par", "ser"])
def test_rtl_run_cycles_formula(cfg):
    """Input offered every cycle and out always ready: each run, from its first input beat to
    busy low, takes run_cycles() = in_dim + sum(CB*RB*mvm_cycles + 11) exactly (the figure the
    docstring states), and the next run starts in the cycle busy falls."""
    seed = 88
    b = EngineBench(cfg, seed)
    prog = random_program(cfg, b.rng, n_layers=cfg.max_layers)
    b.load(prog).runs(prog, prog.random_inputs(b.rng, 3), p_valid=1.0, p_ready=1.0).simulate()
    want = run_cycles(cfg, prog.layers)
    assert want == prog.in_dim + sum(layer_cycles(cfg, d) for d in prog.layers)
    spans = [e - s for s, e in b.run_spans]
    assert spans == [want] * 3, f"seed {seed}: run spans {spans}, formula {want}"
    starts = [s for s, _ in b.run_spans]
    ends = [e for _, e in b.run_spans]
    assert starts[1:] == ends[:-1], f"seed {seed}: starts {starts}, ends {ends}"


def test_rtl_cfg_out_of_range_ignored_and_busy_blocks_ports():
    """cfg writes past a memory's depth (bias 30, 31 of 30; LUT 16..31 of 16; descriptor 3 of
    3; target 3) change nothing (no wrap onto entry 0); prog/cfg are not ready while busy."""
    seed = 99
    b = EngineBench(PAR, seed)
    rng = b.rng
    w = rng.integers(-8, 8, size=(6, 5))
    bias = rng.integers(-20, 20, size=5)
    layers = [LayerDesc(6, 5, slot_base=0, bias_base=0, adc_shift=2, out_shift=1, act=ACT_LUT)]
    prog = EngineProgram(PAR, layers, [w], [bias], rng.integers(-8, 8, size=16))
    x = prog.random_inputs(rng, 1)
    seen = {}
    junk = ([(CFG_BIAS, a) for a in (30, 31)] + [(1, a) for a in range(16, 32)]
            + [(2, 3), (3, 0), (3, 5)])

    async def tb(ctx, d):
        await b._load(ctx, d, prog, 0.0)
        await b._write(ctx, d.cfg, [{"target": tg, "addr": a, "data": 0x55} for tg, a in junk],
                       0.0)
        ctx.set(d.n_layers, 1)
        ctx.set(d.out.ready, 1)
        ctx.set(d.inp.valid, 1)
        for i in range(prog.in_dim):
            ctx.set(d.inp.payload.code, int(x[0, i]))
            await ctx.tick()
        ctx.set(d.inp.valid, 0)
        seen["busy"] = ctx.get(d.busy)
        seen["prog_ready"] = ctx.get(d.prog.ready)
        seen["cfg_ready"] = ctx.get(d.cfg.ready)
        outs = []
        for _ in range(500):
            if ctx.get(d.out.valid):
                outs.append(ctx.get(d.out.payload.code))
                if ctx.get(d.out.payload.last):
                    break
            await ctx.tick()
        seen["outs"] = outs

    run_sim(b.dut, tb)
    assert seen["busy"] and not seen["prog_ready"] and not seen["cfg_ready"]
    want = prog.twin().run(x)[0].tolist()
    assert seen["outs"] == want, f"seed {seed}: {seen['outs']} vs {want}"


def test_rtl_reset_keeps_program_and_restarts():
    """A reset mid-run abandons the run; the memories keep the program, and a run whose first
    beat is offered in the first cycle after reset is computed with the right descriptor."""
    from amaranth.hdl import ClockDomain
    seed = 111
    b = EngineBench(PAR, seed)
    rng = b.rng
    prog = mlp(PAR, rng, [7, 9, 4], [ACT_RELU, ACT_LUT], lut="random")
    xs = prog.random_inputs(rng, 2)
    want = prog.twin().run(xs)
    dom = ClockDomain("sync")
    outs = []

    async def tb(ctx, d):
        await b._load(ctx, d, prog, 0.1)
        ctx.set(d.n_layers, 2)
        ctx.set(d.out.ready, 1)
        for k in range(2):
            await b._write(ctx, d.inp, [{"code": int(v)} for v in xs[k]], 0.0)
            if k == 0:       # abandon run 0 in its second layer, offer run 1 right after reset
                for _ in range(layer_cycles(PAR, prog.layers[0]) + 15):
                    await ctx.tick()
                assert ctx.get(d.busy)
                ctx.set(dom.rst, 1)
                await ctx.tick()
                ctx.set(dom.rst, 0)
                assert not ctx.get(d.busy)
        run = []
        for _ in range(2000):
            if ctx.get(d.out.valid):
                run.append(ctx.get(d.out.payload.code))
                if ctx.get(d.out.payload.last):
                    break
            await ctx.tick()
        outs.append(run)

    run_sim(b.dut, tb, domain=dom)
    assert outs == [want[1].tolist()], f"seed {seed}: {outs} vs {want[1].tolist()}"
