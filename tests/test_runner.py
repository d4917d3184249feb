"""The Verilator runner: build caching, a passing bench, and a failing bench that leaves a trace."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.runner import SimulationFailed, build, run_cocotb


class Accumulator(wiring.Component):
    inc: In(8)
    acc: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.acc.eq(self.acc + self.inc)
        return m


@pytest.mark.cocotb
def test_runner_pass_and_cache():
    res = run_cocotb(Accumulator(), "accumulator", "sim.cocotb_smoke", {"n": 500}, seed=7)
    assert res.tests == 1 and res.failed == 0
    d1, _ = build(Accumulator(), "accumulator")
    stamp = (d1 / "built.stamp").stat().st_mtime_ns
    d2, _ = build(Accumulator(), "accumulator")
    assert d1 == d2 and (d2 / "built.stamp").stat().st_mtime_ns == stamp


@pytest.mark.cocotb
def test_runner_failure_reports_seed_and_wave():
    with pytest.raises(SimulationFailed) as exc:
        run_cocotb(Accumulator(), "accumulator", "sim.cocotb_smoke",
                   {"n": 20, "corrupt": 1}, seed=11, run_name="accumulator-fail")
    msg = str(exc.value)
    assert "seed=11" in msg and "dump.fst" in msg, msg
