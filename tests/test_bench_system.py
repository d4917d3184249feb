"""``make bench`` system entry and the runner's fast-build wrapper: bad input and generated text
(no simulation; the measured figures come from ``make bench``, not from tests)."""

from __future__ import annotations

import pytest

from sim.bench import main
from sim.runner import build_flags, ports_config, top_ports, wrap_top

VERILOG = """module dut(a, clk, rst, y);
  input [3:0] a;
  wire [3:0] a;
  input clk;
  wire clk;
  input rst;
  wire rst;
  output [3:0] y;
  reg [3:0] y = 4'h0;
  always @(posedge clk) y <= rst ? 4'h0 : a;
endmodule
"""


@pytest.mark.parametrize("flag, value", [("--system-speed-cycles", "5"),
                                         ("--system-golden-images", "0")])
def test_bench_system_bad_arguments(flag, value, capsys):
    assert main(["--only", "system", flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flag} = {value}"), err


def test_wrap_top_clock_and_reset():
    text = wrap_top(VERILOG, "dut", reset_reg=True, clock_ns=10)
    assert "module dut__inner(a, clk, rst, y);" in text
    # The new top has the same ports but clk, which it makes itself every 5 ns.
    assert top_ports(text, "dut") == ["a", "rst", "y"]
    assert "always #5ns clk = ~clk;" in text and "always @(posedge clk) rst_q <= rst;" in text
    assert ".rst(rst_q)" in text and ".clk(clk)" in text
    cfg = ports_config(text, "dut", clock=True)
    assert cfg.count("public_flat_rw") == 3 and 'public_flat_rd -module "dut" -var "clk"' in cfg
    # Reset only: clk stays a port.
    assert top_ports(wrap_top(VERILOG, "dut", reset_reg=True), "dut") == ["a", "clk", "rst", "y"]
    assert "--timing" in build_flags(timing=True) and "--timing" not in build_flags()
    assert "--trace-fst" in build_flags(waves=True) and "--trace-fst" not in build_flags()


@pytest.mark.parametrize("kw, match", [({"clock_ns": 7}, "clock_ns"),
                                       ({"clock_ns": 0}, "clock_ns")])
def test_wrap_top_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        wrap_top(VERILOG, "dut", **kw)
    with pytest.raises(ValueError, match="no module"):
        top_ports(VERILOG, "other")
