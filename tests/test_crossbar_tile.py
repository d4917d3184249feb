"""Crossbar MAC tile: the twin (model/blocks/crossbar.py) against docs/crossbar.md §1–2, and the
RTL (hw/crossbar.py) against the twin in Amaranth's simulator.

``Bench`` drives the RTL cycle by cycle from a list of operations (programming words and input
vectors, in order), with seeded random gaps on ``prog``/``inp`` and random back-pressure on
``out``. The twin takes the same words and vectors in the order the RTL accepted them; every
output beat is compared (code and ``last``), a stalled beat must stay unchanged, ``prog.ready``
must equal ``~busy``, and without gaps or back-pressure the measured cycles per MVM must equal
``TileConfig.mvm_cycles()``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from hw.crossbar import CrossbarTile as RTL
from model.blocks.crossbar import CrossbarTile as Twin
from model.blocks.crossbar import adc, bit_planes
from model.blocks.crossbar_config import TileConfig, round_shift
from tests.simutil import run_sim

SEED = int(os.environ.get("SPINDIFF_SEED", "20261124"))

# Small configurations (the simulator is Python): odd sizes, every P from 1 to C, both input
# kinds, several slots, R = 1.
PAR = TileConfig(rows=5, cols=6, weight_bits=5, input_bits=4, adc_bits=6, macs_per_cycle=2,
                 slots=3)
SER = TileConfig(rows=5, cols=6, weight_bits=5, input_bits=4, adc_bits=6, macs_per_cycle=2,
                 slots=3, bit_serial=True)
UNS = TileConfig(rows=4, cols=4, weight_bits=4, input_bits=3, input_signed=False, adc_bits=5,
                 macs_per_cycle=4, slots=2)
UNS_SER = TileConfig(rows=4, cols=4, weight_bits=4, input_bits=3, input_signed=False,
                     adc_bits=5, macs_per_cycle=4, slots=2, bit_serial=True)
P1 = TileConfig(rows=3, cols=3, weight_bits=3, input_bits=2, adc_bits=4, macs_per_cycle=1,
                slots=2)
ONE = TileConfig(rows=1, cols=2, weight_bits=2, input_bits=1, input_signed=False, adc_bits=2,
                 macs_per_cycle=1, slots=1, bit_serial=True)
# R*steps < P: a group's sums wait for the output buffer, the pipeline stalls with items of the
# next groups in flight (G = 3), parallel and bit-serial.
QP = TileConfig(rows=2, cols=12, weight_bits=4, input_bits=3, adc_bits=5, macs_per_cycle=4,
                slots=2)
QP_SER = TileConfig(rows=1, cols=12, weight_bits=4, input_bits=2, adc_bits=5, macs_per_cycle=4,
                    slots=2, bit_serial=True)
CONFIGS = [PAR, SER, UNS, UNS_SER, P1, ONE, QP, QP_SER]
IDS = ["par", "ser", "uns", "uns_ser", "p1", "r1_ib1", "q_lt_p", "q_lt_p_ser"]


def random_weights(rng, cfg, kind="uniform"):
    lo, hi = cfg.weight_range
    shape = (cfg.rows, cfg.cols)
    if kind == "uniform":
        return rng.integers(lo, hi + 1, shape)
    if kind == "extreme":
        return np.where(rng.random(shape) < 0.5, lo, hi)
    if kind == "zero":
        return np.zeros(shape, dtype=np.int64)
    raise ValueError(kind)


def random_inputs(rng, cfg, n):
    lo, hi = cfg.input_range
    x = rng.integers(lo, hi + 1, (n, cfg.rows))
    ext = rng.random((n, 1)) < 0.2                   # some vectors at the rails only
    return np.where(ext, np.where(rng.random(x.shape) < 0.5, lo, hi), x)


# ------------------------------------------------------------------------------------------------
# RTL bench
class Bench:
    """Runs ``ops`` through the RTL; ``ops`` are ``("prog", addr, data)`` or
    ``("vec", x, slot, adc_shift)``, offered in order (an offered item stays offered until
    taken, as a stream source must)."""

    def __init__(self, cfg, seed, tag=""):
        self.cfg, self.seed, self.tag = cfg, seed, tag
        self.rng = np.random.default_rng(seed)
        self.twin = Twin(cfg)
        self.expected: list[tuple[int, int]] = []
        self.got: list[tuple[int, int]] = []
        self.first_beat_cycles: list[int] = []
        self.last_out_cycles: list[int] = []
        self.prog_cycles: list[int] = []
        self.cycles = 0

    def fail(self, msg):
        return f"[{self.tag} seed={self.seed}] {msg}"

    def run(self, ops, *, p_valid=1.0, p_ready=1.0, raw_shift=None, max_cycles=None):
        """``raw_shift``: drive this ``adc_shift`` field value on every vector instead of the
        op's (to test values above ``acc_bits``); the twin then uses ``min(raw, acc_bits)``."""
        cfg, rng = self.cfg, self.rng
        dut = RTL(cfg)
        if max_cycles is None:      # generous: a stuck design fails instead of hanging
            n_vec = sum(op[0] == "vec" for op in ops)
            max_cycles = int(4 * (len(ops) + n_vec * (cfg.rows + cfg.mvm_cycles()))
                             / (p_valid * p_ready)) + 1000

        async def body(ctx, dut):
            i, beat, offered, held, cyc = 0, 0, False, None, 0
            n_vec = sum(op[0] == "vec" for op in ops)
            while cyc < max_cycles:
                op = ops[i] if i < len(ops) else None
                if op is not None and not offered:
                    offered = bool(rng.random() < p_valid)
                is_prog = op is not None and op[0] == "prog"
                ctx.set(dut.prog.valid, int(offered and is_prog))
                ctx.set(dut.inp.valid, int(offered and not is_prog))
                if offered and is_prog:
                    ctx.set(dut.prog.payload.addr, op[1])
                    ctx.set(dut.prog.payload.data, op[2])
                elif offered:
                    _, x, slot, sh = op
                    ctx.set(dut.inp.payload.code, int(x[beat]))
                    # slot/adc_shift matter on the first beat only: drive junk on the others.
                    first = beat == 0
                    ctx.set(dut.inp.payload.slot, slot if first else int(rng.integers(cfg.slots)))
                    drive = sh if raw_shift is None else raw_shift
                    ctx.set(dut.inp.payload.adc_shift,
                            drive if first else int(rng.integers(cfg.max_adc_shift + 1)))
                oready = int(rng.random() < p_ready)
                ctx.set(dut.out.ready, oready)

                busy = ctx.get(dut.busy)
                assert ctx.get(dut.prog.ready) == (not busy), self.fail(f"cycle {cyc}: "
                                                                        "prog.ready != ~busy")
                if offered and is_prog and ctx.get(dut.prog.ready):
                    self.twin.write_word(op[1], op[2])
                    self.prog_cycles.append(cyc)
                    i, offered = i + 1, False
                elif offered and not is_prog and ctx.get(dut.inp.ready):
                    if beat == 0:
                        self.first_beat_cycles.append(cyc)
                        # No programming word can be taken until this vector is out, so the
                        # twin's weights now are the ones the RTL uses.
                        sh_twin = min(drive, cfg.max_adc_shift)
                        codes = self.twin.mvm(np.asarray(x), slot, sh_twin)
                        self.expected += [(int(c), int(k == cfg.cols - 1))
                                          for k, c in enumerate(codes)]
                    beat += 1
                    if beat == cfg.rows:
                        i, beat, offered = i + 1, 0, False
                    else:           # the vector's next beat: offered now or after a gap
                        offered = bool(rng.random() < p_valid)
                ovalid = ctx.get(dut.out.valid)
                pay = (ctx.get(dut.out.payload.code), ctx.get(dut.out.payload.last))
                if held is not None:
                    assert ovalid and pay == held, self.fail(f"cycle {cyc}: a stalled output "
                                                             f"beat changed {held} -> {pay}")
                held = pay if ovalid and not oready else None
                if ovalid and oready:
                    n = len(self.got)
                    assert n < len(self.expected), self.fail(f"cycle {cyc}: extra beat {pay}")
                    assert pay == self.expected[n], self.fail(
                        f"cycle {cyc}: beat {n} (vector {n // cfg.cols}, column "
                        f"{n % cfg.cols}) = {pay}, twin {self.expected[n]}")
                    self.got.append(pay)
                    if pay[1]:
                        self.last_out_cycles.append(cyc)
                await ctx.tick()
                cyc += 1
                if i == len(ops) and len(self.last_out_cycles) == n_vec and not busy:
                    break
            self.cycles = cyc
            assert i == len(ops) and len(self.got) == len(self.expected), self.fail(
                f"stuck after {cyc} cycles: {i} of {len(ops)} ops, {len(self.got)} of "
                f"{len(self.expected)} beats")

        run_sim(dut, body)
        return self

    def check_timing(self):
        """Without gaps or back-pressure: last beat ``mvm_cycles - 1`` after the first beat, and
        back-to-back vectors every ``mvm_cycles``."""
        n = self.cfg.mvm_cycles()
        for f, l in zip(self.first_beat_cycles, self.last_out_cycles):
            assert l - f == n - 1, self.fail(f"MVM took {l - f + 1} cycles, mvm_cycles() = {n}")
        for a, b in zip(self.first_beat_cycles, self.first_beat_cycles[1:]):
            assert b - a == n, self.fail(f"vectors {b - a} cycles apart, mvm_cycles() = {n}")


def prog_ops(twin_cfg, slot, w):
    return [("prog", a, d) for a, d in Twin(twin_cfg).pack_slot(slot, w)]


def vec_ops(cfg, x, slots, shifts):
    return [("vec", [int(v) for v in xi], int(s), int(sh)) for xi, s, sh in zip(x, slots, shifts)]


def mixed_ops(cfg, rng, n_vec, shifts=None):
    """Program every slot, then vectors on random slots and shifts."""
    ops = []
    for s in range(cfg.slots):
        ops += prog_ops(cfg, s, random_weights(rng, cfg, ["uniform", "extreme"][s % 2]))
    x = random_inputs(rng, cfg, n_vec)
    if shifts is None:
        shifts = rng.integers(0, cfg.max_adc_shift + 1, n_vec)
    return ops + vec_ops(cfg, x, rng.integers(0, cfg.slots, n_vec), shifts)


# ------------------------------------------------------------------------------------------------
# Twin against the contract
@pytest.mark.parametrize("cfg", CONFIGS + [TileConfig(), TileConfig(input_signed=False)],
                         ids=IDS + ["default", "default_unsigned"])
def test_twin_bit_serial_equals_acc(cfg):
    rng = np.random.default_rng(SEED)
    t = Twin(cfg)
    for s in range(cfg.slots):
        t.program(s, random_weights(rng, cfg, ["uniform", "extreme", "zero"][s % 3]))
    x = random_inputs(rng, cfg, 300)
    for s in range(cfg.slots):
        a = t.acc(x, s)
        np.testing.assert_array_equal(t.acc_bit_serial(x, s), a)
        # acc is the exact integer sum, independent of numpy's matmul
        i = int(rng.integers(len(x)))
        exact = [sum(int(t.weights[s, r, c]) * int(x[i, r]) for r in range(cfg.rows))
                 for c in range(cfg.cols)]
        assert a[i].tolist() == exact
    planes, weight = bit_planes(cfg, x)
    np.testing.assert_array_equal(np.tensordot(weight, planes, axes=1), x)
    if cfg.input_signed:
        assert weight[-1] == -(1 << (cfg.input_bits - 1))


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_twin_pack_write_round_trip(cfg):
    rng = np.random.default_rng(SEED + 1)
    a, b = Twin(cfg), Twin(cfg)
    seen = set()
    for s in range(cfg.slots):
        w = random_weights(rng, cfg)
        a.program(s, w)
        words = b.pack_slot(s, w)
        assert len(words) == cfg.words_per_slot
        for addr, data in words:
            assert 0 <= data < 1 << (cfg.macs_per_cycle * cfg.weight_bits)
            b.write_word(addr, data)
            seen.add(addr)
        # lane p of the word at weight_addr(s, r, g) is column g*P + p
        for g in range(cfg.groups):
            for r in range(cfg.rows):
                addr = cfg.weight_addr(s, r, g)
                data = dict(words)[addr]
                for p in range(cfg.macs_per_cycle):
                    v = (data >> (p * cfg.weight_bits)) & ((1 << cfg.weight_bits) - 1)
                    v -= (v >> (cfg.weight_bits - 1)) << cfg.weight_bits
                    assert v == w[r, g * cfg.macs_per_cycle + p]
    np.testing.assert_array_equal(a.weights, b.weights)
    assert seen == set(range(cfg.weight_words))     # every address used exactly once per slot


def test_twin_adc_rounding_and_rails():
    cfg = TileConfig(rows=4, cols=4, weight_bits=4, input_bits=4, adc_bits=4, macs_per_cycle=1)
    lo, hi = cfg.adc_range
    v = np.arange(-300, 301)
    for s in range(cfg.max_adc_shift + 1):
        out = adc(cfg, v, s)
        # round half up: floor(v / 2**s + 1/2), clipped
        ref = np.clip(np.floor(v / 2.0 ** s + 0.5).astype(np.int64), lo, hi)
        np.testing.assert_array_equal(out, ref)
    assert round_shift(-3, 1) == -1 and round_shift(-5, 1) == -2 and round_shift(5, 1) == 3
    assert adc(cfg, 1000, 0) == hi and adc(cfg, -1000, 0) == lo


@pytest.mark.parametrize("kwargs,field", [
    ({"rows": 0}, "rows"), ({"cols": 0}, "cols"), ({"rows": 2000}, "rows"),
    ({"weight_bits": 1}, "weight_bits"), ({"weight_bits": 0}, "weight_bits"),
    ({"input_bits": 0}, "input_bits"), ({"input_bits": -1}, "input_bits"),
    ({"input_bits": 1, "input_signed": True}, "input_bits"),
    ({"adc_bits": 1}, "adc_bits"), ({"adc_bits": -3}, "adc_bits"),
    ({"macs_per_cycle": 0}, "macs_per_cycle"), ({"cols": 6, "macs_per_cycle": 4}, "macs_per_cycle"),
    ({"cols": 4, "macs_per_cycle": 8}, "macs_per_cycle"), ({"slots": 0}, "slots"),
    ({"bit_serial": 1}, "bit_serial"), ({"input_signed": "yes"}, "input_signed"),
    ({"rows": 4.0}, "rows"),
])
def test_tile_config_rejects(kwargs, field):
    with pytest.raises(ValueError, match=f"TileConfig.{field}"):
        TileConfig(**kwargs)


def test_twin_rejects_bad_input():
    cfg = PAR
    t = Twin(cfg)
    lo, hi = cfg.weight_range
    ilo, ihi = cfg.input_range
    w = np.zeros((cfg.rows, cfg.cols), dtype=np.int64)
    x = np.zeros(cfg.rows, dtype=np.int64)
    cases = [
        (lambda: t.program(0, np.zeros((cfg.rows + 1, cfg.cols), dtype=int)), r"w: shape"),
        (lambda: t.program(0, np.zeros((cfg.rows, cfg.cols - 1), dtype=int)), r"w: shape"),
        (lambda: t.program(0, w + hi + 1), rf"value {hi + 1} out of range"),
        (lambda: t.program(0, w + lo - 1), rf"value {lo - 1} out of range"),
        (lambda: t.program(0, w.astype(float)), r"dtype"),
        (lambda: t.program(cfg.slots, w), r"slot = 3"),
        (lambda: t.program(-1, w), r"slot = -1"),
        (lambda: t.pack_slot(0, w + hi + 1), r"out of range"),
        (lambda: t.mvm(np.zeros(cfg.rows + 1, dtype=int)), r"x: shape"),
        (lambda: t.mvm(np.zeros((2, cfg.rows - 1), dtype=int)), r"x: shape"),
        (lambda: t.mvm(x + ihi + 1), rf"value {ihi + 1} out of range"),
        (lambda: t.mvm(x + ilo - 1), rf"value {ilo - 1} out of range"),
        (lambda: t.mvm(x, slot=cfg.slots), r"slot"),
        (lambda: t.mvm(x, adc_shift=cfg.max_adc_shift + 1), r"adc_shift"),
        (lambda: t.mvm(x, adc_shift=-1), r"adc_shift"),
        (lambda: t.acc_bit_serial(x + ihi + 1), r"out of range"),
        (lambda: t.write_word(cfg.weight_words, 0), r"addr"),
        (lambda: t.write_word(-1, 0), r"addr"),
        (lambda: Twin(cfg.__dict__), r"must be a TileConfig"),
        (lambda: round_shift(4, -1), r"round_shift.s"),
    ]
    for fn, msg in cases:
        with pytest.raises(ValueError, match=msg):
            fn()
    # unsigned inputs: negative codes are out of range
    with pytest.raises(ValueError, match="value -1 out of range, allowed \\[0, 7\\]"):
        Twin(UNS).mvm(-np.ones(UNS.rows, dtype=int))


def test_rtl_rejects_non_config():
    for bad in (None, 16, {"rows": 4}, PAR.__dict__):
        with pytest.raises(ValueError, match="CrossbarTile.cfg"):
            RTL(bad)


def test_rtl_ports_follow_contract():
    for cfg in CONFIGS:
        t = RTL(cfg)
        t._MustUse__silence = True          # only the ports are inspected here
        assert len(t.prog.payload.data) == cfg.macs_per_cycle * cfg.weight_bits
        assert t.out.payload.code.shape().signed and len(t.out.payload.code) == cfg.adc_bits
        assert len(t.out.payload.last) == 1
        assert t.inp.payload.code.shape().signed == cfg.input_signed
        assert len(t.inp.payload.code) == cfg.input_bits
        assert t.mvm_cycles == cfg.mvm_cycles()


# ------------------------------------------------------------------------------------------------
# RTL against the twin (Amaranth simulator)
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_rtl_back_to_back_timing(cfg):
    """Out always ready, inputs every cycle: bit-exact, and exactly mvm_cycles() per MVM."""
    rng = np.random.default_rng(SEED + 2)
    b = Bench(cfg, SEED + 2, "timing").run(mixed_ops(cfg, rng, 12))
    assert len(b.first_beat_cycles) == 12 and len(b.got) == 12 * cfg.cols
    b.check_timing()


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_rtl_random_gaps_and_back_pressure(cfg):
    rng = np.random.default_rng(SEED + 3)
    ops = mixed_ops(cfg, rng, 25)
    b = Bench(cfg, SEED + 3, "gaps").run(ops, p_valid=0.6, p_ready=0.5)
    assert len(b.got) == 25 * cfg.cols


@pytest.mark.parametrize("ser", [False, True], ids=["par", "ser"])
def test_rtl_saturation_at_both_rails(ser):
    cfg = SER if ser else PAR
    lo, hi = cfg.adc_range
    wlo, whi = cfg.weight_range
    ilo, ihi = cfg.input_range
    w = np.full((cfg.rows, cfg.cols), whi)
    w[:, 1::2] = wlo                                 # odd columns negative
    x = np.array([[ihi] * cfg.rows, [ilo] * cfg.rows, [1] * cfg.rows, [-1] * cfg.rows])
    ops = prog_ops(cfg, 1, w) + vec_ops(cfg, x, [1] * 4, [0, 0, 0, 0])
    b = Bench(cfg, SEED, "rails").run(ops, p_ready=0.7)
    codes = [c for c, _ in b.got]
    assert hi in codes and lo in codes               # the stimulus does reach both rails
    assert codes[:2] == [hi, lo] and codes[cfg.cols:cfg.cols + 2] == [lo, hi]


@pytest.mark.parametrize("cfg", [PAR, SER, UNS, UNS_SER], ids=["par", "ser", "uns", "uns_ser"])
def test_rtl_extreme_weights_and_inputs_exact(cfg):
    """Most negative and most positive weights and inputs, with an ADC wide enough to show the
    column sums exactly (adc_shift 0): the accumulator widths hold every extreme."""
    import dataclasses
    cfg = dataclasses.replace(cfg, adc_bits=cfg.acc_bits)
    wlo, whi = cfg.weight_range
    ilo, ihi = cfg.input_range
    ops = []
    w = np.empty((cfg.rows, cfg.cols), dtype=np.int64)
    w[:, 0::2] = wlo
    w[:, 1::2] = whi
    ops += prog_ops(cfg, 0, w)
    x = np.array([[ilo] * cfg.rows, [ihi] * cfg.rows, [ilo, ihi] * (cfg.rows // 2) +
                  [ilo] * (cfg.rows % 2)])
    ops += vec_ops(cfg, x, [0] * 3, [0] * 3)
    b = Bench(cfg, SEED, "extremes").run(ops)
    got = np.array([c for c, _ in b.got]).reshape(3, cfg.cols)
    np.testing.assert_array_equal(got, x @ w)       # exact sums, no clipping
    assert got.max() == max(wlo * ilo, whi * ihi) * cfg.rows


@pytest.mark.parametrize("cfg", [PAR, SER], ids=["par", "ser"])
def test_rtl_zero_weights(cfg):
    rng = np.random.default_rng(SEED + 4)
    ops = prog_ops(cfg, 2, random_weights(rng, cfg, "zero"))
    x = random_inputs(rng, cfg, 4)
    ops += vec_ops(cfg, x, [2] * 4, [0, 1, cfg.max_adc_shift, 3])
    b = Bench(cfg, SEED + 4, "zero").run(ops, p_ready=0.6)
    assert all(c == 0 for c, _ in b.got)


@pytest.mark.parametrize("cfg", [PAR, SER, UNS_SER], ids=["par", "ser", "uns_ser"])
def test_rtl_adc_shift_zero_max_and_above(cfg):
    rng = np.random.default_rng(SEED + 5)
    base = mixed_ops(cfg, rng, 8, shifts=[0, cfg.max_adc_shift] * 4)
    b = Bench(cfg, SEED + 5, "shift").run(base, p_ready=0.8)
    codes = np.array([c for c, _ in b.got]).reshape(8, cfg.cols)
    assert np.all(codes[1::2] == 0)                  # shift = acc_bits: every code rounds to 0
    assert np.any(codes[0::2] != 0)
    # Field values above acc_bits (when the field is wider than needed) act as acc_bits.
    width = (cfg.max_adc_shift).bit_length()
    raw = (1 << width) - 1
    if raw > cfg.max_adc_shift:
        b = Bench(cfg, SEED + 5, "shift_above").run(base, raw_shift=raw)
        assert all(c == 0 for c, _ in b.got)


@pytest.mark.parametrize("pair", [(PAR, SER), (UNS, UNS_SER)], ids=["signed", "unsigned"])
def test_rtl_bit_serial_equals_parallel(pair):
    """Both RTL modes on identical stimuli give identical beats, with gaps and back-pressure and
    without; without, their cycle counts differ exactly as mvm_cycles() says."""
    rng = np.random.default_rng(SEED + 6)
    ops = mixed_ops(pair[0], rng, 20)
    gappy = [Bench(c, SEED + 6, f"mode{k}").run(ops, p_valid=0.7, p_ready=0.6)
             for k, c in enumerate(pair)]
    assert gappy[0].got == gappy[1].got
    runs = [Bench(c, SEED + 6, f"mode{k}").run(ops) for k, c in enumerate(pair)]
    assert runs[0].got == runs[1].got == gappy[0].got
    for r in runs:
        r.check_timing()
    assert ((runs[1].first_beat_cycles[-1] - runs[1].first_beat_cycles[0])
            - (runs[0].first_beat_cycles[-1] - runs[0].first_beat_cycles[0])
            == 19 * (pair[1].mvm_cycles() - pair[0].mvm_cycles()) > 0)


@pytest.mark.parametrize("cfg", [PAR, SER], ids=["par", "ser"])
def test_rtl_slot_selection(cfg):
    """Distinct weights per slot; the same input on every slot gives each slot's result, and
    slot/adc_shift on beats other than the first are ignored (the bench drives junk there)."""
    rng = np.random.default_rng(SEED + 7)
    ops = []
    ws = [random_weights(rng, cfg) for _ in range(cfg.slots)]
    for s, w in enumerate(ws):
        ops += prog_ops(cfg, s, w)
    x = random_inputs(rng, cfg, 1)
    order = [2, 0, 1, 1, 2, 0][:2 * cfg.slots]
    ops += vec_ops(cfg, np.repeat(x, len(order), axis=0), order, [2] * len(order))
    b = Bench(cfg, SEED + 7, "slots").run(ops, p_valid=0.7)
    got = np.array([c for c, _ in b.got]).reshape(len(order), cfg.cols)
    for k, s in enumerate(order):
        np.testing.assert_array_equal(got[k], adc(cfg, x[0] @ ws[s], 2))
    assert len({tuple(g) for g in got}) == cfg.slots


@pytest.mark.parametrize("cfg", [PAR, SER, P1], ids=["par", "ser", "p1"])
def test_rtl_programming_between_vectors(cfg):
    """Programming words (single words, partial and whole slots) interleaved with vectors: each
    vector sees exactly the words accepted before it."""
    rng = np.random.default_rng(SEED + 8)
    lo, hi = cfg.weight_range
    twin = Twin(cfg)
    ops = mixed_ops(cfg, rng, 0)
    for _ in range(30):
        u = rng.random()
        if u < 0.4:
            addr = int(rng.integers(cfg.weight_words))
            lanes = rng.integers(lo, hi + 1, cfg.macs_per_cycle)
            data = sum((int(v) & ((1 << cfg.weight_bits) - 1)) << (p * cfg.weight_bits)
                       for p, v in enumerate(lanes))
            ops.append(("prog", addr, data))
        elif u < 0.5:
            s = int(rng.integers(cfg.slots))
            words = twin.pack_slot(s, random_weights(rng, cfg))
            ops += [("prog", a, d) for a, d in words[:int(rng.integers(1, len(words) + 1))]]
        else:
            ops += vec_ops(cfg, random_inputs(rng, cfg, 1), [rng.integers(cfg.slots)],
                           [rng.integers(0, 4)])
    Bench(cfg, SEED + 8, "interleaved").run(ops, p_valid=0.7, p_ready=0.6)


def test_rtl_prog_wins_over_first_beat():
    """A programming word and a vector's first beat offered in the same idle cycle: the word is
    taken first (inp.ready low), and the vector, taken next cycle, sees it."""
    cfg = PAR
    wlo, whi = cfg.weight_range
    twin = Twin(cfg)
    w = np.ones((cfg.rows, cfg.cols), dtype=np.int64)
    words = twin.pack_slot(0, w)
    twin.program(0, w)
    x = np.arange(cfg.rows) - 2
    new = twin.pack_slot(0, np.full((cfg.rows, cfg.cols), whi))[0]     # row 0, group 0
    twin.write_word(*new)
    want = twin.mvm(x, 0, 0).tolist()
    got, events = [], []

    async def body(ctx, dut):
        for a, d in words:
            ctx.set(dut.prog.valid, 1)
            ctx.set(dut.prog.payload.addr, a)
            ctx.set(dut.prog.payload.data, d)
            await ctx.tick()
        ctx.set(dut.prog.payload.addr, new[0])
        ctx.set(dut.prog.payload.data, new[1])
        ctx.set(dut.inp.valid, 1)
        ctx.set(dut.inp.payload.code, int(x[0]))
        ctx.set(dut.inp.payload.slot, 0)
        ctx.set(dut.inp.payload.adc_shift, 0)
        events.append((ctx.get(dut.prog.ready), ctx.get(dut.inp.ready)))
        await ctx.tick()
        ctx.set(dut.prog.valid, 0)
        events.append((ctx.get(dut.prog.ready), ctx.get(dut.inp.ready)))
        assert events == [(1, 0), (1, 1)], events       # fail here rather than hang below
        ctx.set(dut.out.ready, 1)
        for r in range(cfg.rows):
            ctx.set(dut.inp.payload.code, int(x[r]))
            assert ctx.get(dut.inp.ready)
            await ctx.tick()
        ctx.set(dut.inp.valid, 0)
        for _ in range(cfg.mvm_cycles()):
            if ctx.get(dut.out.valid):
                got.append(ctx.get(dut.out.payload.code))
            await ctx.tick()

    run_sim(RTL(cfg), body)
    assert events == [(1, 0), (1, 1)]
    assert got == want


@pytest.mark.parametrize("cfg", [TileConfig(), TileConfig(bit_serial=True, rows=8, cols=8)],
                         ids=["default", "ser8"])
def test_rtl_default_sizes(cfg):
    """The default tile (16 x 16, 8-bit, P = 4) and an 8-bit bit-serial one: a few MVMs."""
    rng = np.random.default_rng(SEED + 9)
    b = Bench(cfg, SEED + 9, "default").run(mixed_ops(cfg, rng, 3, shifts=[8, 11, 14]))
    b.check_timing()
