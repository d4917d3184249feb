"""Simulation-only top for the fault-injection campaign: array controller and health monitor.

``FaultTop`` = ``hw.mtj_array.MTJArrayController`` -> ``hw.health.HealthMonitor`` with the array
port brought out, so that a cocotb bench can play the array (``sim/cocotb_faults.py``: the VCMA-MTJ
device model with per-cell faults injected), the health monitor's output stream brought out, and
the monitor's control and status ports brought out directly (no CSR bank).

One addition for the bench, outside both blocks: a start-up gate. The first ``skip_words`` raw
words (a run-time input, a multiple of ``rows``) are drained and dropped before the monitor, so
that the calibration loop can pull every cell to p = 1/2 before the health tests start (a cell
far from 1/2 right after reset would fail them, legitimately, as a real start-up would). The
monitor therefore sees its first word, of row 0, as word number ``skip_words`` of the controller.
``mon_words`` counts the words the monitor has accepted, so a bench can tell which words were
tested when it reads ``cell_status``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.array_port import ArrayPortSignature
from hw.health import CellStatusLayout, HealthMonitor, health_word_layout
from hw.mtj_array import MTJArrayController
from model.blocks.config import HealthConfig


class FaultTop(wiring.Component):
    """MTJ-array controller followed by the per-cell health monitor (simulation only).

    Parameters
    ----------
    cfg : HealthConfig
        Health-test parameters; ``cfg.array`` is the array and controller configuration.

    Attributes
    ----------
    port : Out(ArrayPortSignature(cfg.array))
        The controller's array port (the bench plays the array).
    o : Out(stream.Signature(health_word_layout(cfg.array)))
        The monitor's output ``{row, bits, valid}``.
    enable, cal_enable, clear_alarms : In(1)
        The controller's controls.
    skip_words : In(32)
        Raw words dropped (drained, not tested) after reset before the monitor sees any; must be a
        multiple of ``rows`` and must not change while words flow.
    cell_sel, clear, force_mask_we, force_mask_wdata : In
        The monitor's controls (``cell_sel`` also selects the controller's ``cell_code``).
    cell_status, any_failed, masked_count : Out
        The monitor's status outputs (latencies as in ``hw.health.HealthMonitor``).
    cell_code, cell_alarm : Out
        The controller's inspection outputs for ``cell_sel`` (latency 3).
    mon_words : Out(32)
        Words accepted by the monitor since reset (a register: in cycle k it counts the words
        accepted in cycles before k).

    Latency and back-pressure: those of the two blocks; the gate adds no register (the monitor's
    input is the controller's output stream, combinationally gated). ``o.ready`` low stalls the
    monitor and then the controller; no word is lost.
    """

    def __init__(self, cfg: HealthConfig):
        if not isinstance(cfg, HealthConfig):
            self._MustUse__silence = True
            raise ValueError(f"FaultTop.cfg = {cfg!r}: must be a HealthConfig "
                             f"(model.blocks.config.HealthConfig)")
        self.cfg = cfg
        a = cfg.array
        self.ctrl = MTJArrayController(a)
        self.health = HealthMonitor(cfg)
        super().__init__({
            "port": Out(ArrayPortSignature(a)),
            "o": Out(stream.Signature(health_word_layout(a))),
            "enable": In(1),
            "cal_enable": In(1),
            "clear_alarms": In(1),
            "skip_words": In(32),
            "cell_sel": In(16),
            "clear": In(1),
            "force_mask_we": In(1),
            "force_mask_wdata": In(1),
            "cell_status": Out(CellStatusLayout),
            "any_failed": Out(1),
            "masked_count": Out(range(a.cells + 1)),
            "cell_code": Out(a.code_width),
            "cell_alarm": Out(1),
            "mon_words": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl = ctrl = self.ctrl
        m.submodules.health = hm = self.health
        wiring.connect(m, ctrl.port, wiring.flipped(self.port))
        wiring.connect(m, hm.o, wiring.flipped(self.o))
        m.d.comb += [
            ctrl.enable.eq(self.enable),
            ctrl.cal_enable.eq(self.cal_enable),
            ctrl.clear_alarms.eq(self.clear_alarms),
            ctrl.cell_sel.eq(self.cell_sel),
            self.cell_code.eq(ctrl.cell_code),
            self.cell_alarm.eq(ctrl.cell_alarm),
            hm.cell_sel.eq(self.cell_sel),
            hm.clear.eq(self.clear),
            hm.force_mask_we.eq(self.force_mask_we),
            hm.force_mask_wdata.eq(self.force_mask_wdata),
            self.cell_status.eq(hm.cell_status),
            self.any_failed.eq(hm.any_failed),
            self.masked_count.eq(hm.masked_count),
        ]
        # Start-up gate: count the controller's words; the first skip_words are drained here
        # (ready = 1) and never reach the monitor. Since skip_words is a multiple of rows, the
        # monitor's first word is of row 0, as it requires (it keeps per-row state in order).
        seen = Signal(32)
        passing = seen >= self.skip_words
        m.d.comb += [
            hm.i.payload.eq(ctrl.raw.payload),
            hm.i.valid.eq(ctrl.raw.valid & passing),
            ctrl.raw.ready.eq(Mux(passing, hm.i.ready, 1)),
        ]
        with m.If(ctrl.raw.valid & ctrl.raw.ready & ~passing):
            m.d.sync += seen.eq(seen + 1)
        with m.If(hm.i.valid & hm.i.ready):
            m.d.sync += self.mon_words.eq(self.mon_words + 1)
        return m
