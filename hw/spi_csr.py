"""SPI (mode 0) slave that turns 48-bit frames into CSR bus reads and writes.

Bit-exact twin: ``model.blocks.spi_csr.SPICSRBridge`` (frame in, MISO bits and bus writes out),
which also holds the frame encoder :func:`spi_frame` and the format constants.

This is how a board talks to a spindiff design: a host (microcontroller, FTDI, Raspberry Pi) is
the SPI master, the FPGA the slave. It also keeps every CSR input of a design driven by pins in
synthesis, so yosys cannot constant-fold register logic away.

Frame format (one frame per ``cs_n`` low period, MSB of every field first, 48 SCLK cycles)::

    bit  47      46..40     39..32       31..0
         W       reserved   ADDR         DATA
         1=write must be 0  byte address write data (MOSI) / register value (MISO)

- **Byte 0** (command): bit 7 = ``W`` (1: write, 0: read); bits 6..0 reserved and must be 0. A
  frame with any reserved bit set is a no-op (nothing is written), so a MOSI line stuck high
  (all ones) never writes.
- **Byte 1**: ``ADDR``, the CSR byte address (8 bits, as on the bus).
- **Bytes 2..5**: on MOSI the write data (ignored for a read); on MISO, for *every* frame, the
  value of register ``ADDR`` read before any write of this frame (a write frame returns the old
  value). MISO is 0 during bytes 0..1 and after bit 48.
- The write is issued once the 48th bit has been sampled, while ``cs_n`` is still low. A frame cut
  short (``cs_n`` high before 48 bits) writes nothing. Bits after the 48th are ignored. Every
  frame starts with ``cs_n`` going low; frames are separated by ``cs_n`` high.

Mode 0: the master changes MOSI after falling SCLK edges and samples MISO at rising edges; the
slave samples MOSI at rising edges and changes MISO after falling edges. ``cs_n`` high resets the
frame state whatever SCLK does.

Timing (all pins pass through 2-FF synchronisers into ``sync``; ``T`` = one ``sync`` period):

- each SCLK phase (high and low) must last more than 2 T, i.e. f_sclk < f_clk / 4, for frames to
  be received (writes); for reads the high phase after the 16th bit must also span
  ``CSR_READ_LATENCY + 1`` samples (3 T with the spindiff bank's latency 2) so that the addressed
  register's value is on ``r_data`` when the first data bit is loaded;
- for reads, the SCLK low phase must last more than 4 T: MISO changes 3 T (+ up to 1 T of
  synchroniser uncertainty) after the falling edge (synchroniser, edge detect, output
  register). With a 50 % duty cycle: f_sclk < f_clk / 8 (e.g. < 6 MHz at 48 MHz).
- ``cs_n`` setup (to the first rising SCLK edge) and hold (after the last falling edge) of at
  least 2 T; ``cs_n`` high for at least 2 T between frames.

Latency: ``w_stb`` is high (one cycle) in the 4th ``sync`` cycle after the 48th rising SCLK edge
(2 synchroniser stages, edge detect, strobe register). No back-pressure: the CSR bus always
accepts a write.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from hw.csr import CSRBusSignature

# The frame format and its Python encoder/decoder are defined once, in the bit-level twin
# (model/blocks/spi_csr.py); re-exported here for the benches and host-side scripts.
from model.blocks.spi_csr import (  # noqa: E402,F401  (re-exports)
    DATA_BITS, FRAME_BITS, HEADER_BITS, WRITE_FLAG, frame_word, miso_data, spi_frame)


class SPICSRBridge(wiring.Component):
    """SPI mode-0 slave issuing CSR bus transactions; frame format in the module docstring.

    Members
    -------
    sclk, cs_n, mosi: In(1)
        SPI pins, asynchronous (synchronised inside with 2-FF synchronisers).
    miso: Out(1)
        Registered serial data out.
    miso_oe: Out(1)
        High while ``cs_n`` (synchronised) is low: drive MISO only while selected.
    bus: Out(CSRBusSignature())
        CSR bus master. ``addr`` holds the frame's address from the 16th bit until the next frame's
        16th bit (held, so the registered ``r_data`` is ready before the data bits go out);
        ``w_stb`` is a one-cycle pulse per complete write frame.

    Latency and back-pressure: see the module docstring (no back-pressure on either side).
    """

    def __init__(self):
        super().__init__({
            "sclk": In(1),
            "cs_n": In(1, init=1),
            "mosi": In(1),
            "miso": Out(1),
            "miso_oe": Out(1),
            "bus": Out(CSRBusSignature()),
        })

    def elaborate(self, platform):
        m = Module()

        # Two-flop synchronisers: the SPI pins are asynchronous to `sync`. All three go through
        # the same number of stages, so their relative order (MOSI stable around SCLK rise, CS
        # before the first edge) is preserved. cs_n resets to 1 (deselected) so that the
        # synchroniser's reset state never looks like a frame start.
        sclk_s = Signal()
        cs_n_s = Signal(init=1)
        mosi_s = Signal()
        m.submodules.sync_sclk = FFSynchronizer(self.sclk, sclk_s)
        m.submodules.sync_cs_n = FFSynchronizer(self.cs_n, cs_n_s, init=1)
        m.submodules.sync_mosi = FFSynchronizer(self.mosi, mosi_s)

        # Edge detection on the synchronised clock: one more flop.
        sclk_q = Signal()
        m.d.sync += sclk_q.eq(sclk_s)
        rise = Signal()
        fall = Signal()
        m.d.comb += [
            rise.eq(sclk_s & ~sclk_q & ~cs_n_s),
            fall.eq(~sclk_s & sclk_q & ~cs_n_s),
        ]

        count = Signal(range(FRAME_BITS + 1))    # bits received in this frame, saturates at 48
        shift_in = Signal(FRAME_BITS - HEADER_BITS)  # MOSI shift register (header, then data)
        cmd = Signal(8)
        addr = Signal(8)
        shift_out = Signal(DATA_BITS)
        w_stb = Signal()

        m.d.comb += [
            self.bus.addr.eq(addr),
            self.bus.w_data.eq(shift_in),
            self.bus.w_stb.eq(w_stb),
            self.miso.eq(shift_out[-1]),
            self.miso_oe.eq(~cs_n_s),
        ]

        # w_stb is a registered one-cycle pulse; it follows the edge that sampled bit 48, when
        # shift_in holds the complete data word.
        m.d.sync += w_stb.eq(0)

        with m.If(cs_n_s):
            # Deselected: abandon any partial frame. addr is kept (harmless: reads have no side
            # effects on this bus), the output register is cleared so MISO starts at 0.
            m.d.sync += [count.eq(0), shift_out.eq(0)]
        with m.Else():
            with m.If(rise & (count != FRAME_BITS)):
                m.d.sync += [
                    count.eq(count + 1),
                    shift_in.eq(Cat(mosi_s, shift_in[:-1])),
                ]
                with m.If(count == 7):
                    m.d.sync += cmd.eq(Cat(mosi_s, shift_in[:7]))
                with m.If(count == HEADER_BITS - 1):
                    # The address is complete at this edge. Holding it in `addr` from the next
                    # cycle lets the bank's registered r_data settle one cycle later, which is
                    # still no later than the falling edge that shifts out the first data bit
                    # (SCLK high phase >= 2 cycles).
                    m.d.sync += addr.eq(Cat(mosi_s, shift_in[:7]))
                with m.If(count == FRAME_BITS - 1):
                    # Complete frame: write if W is set and the reserved bits are clear.
                    m.d.sync += w_stb.eq(cmd == WRITE_FLAG)
            with m.If(fall):
                with m.If(count == HEADER_BITS):
                    # Falling edge after the 16th bit: load the addressed register's value; its
                    # MSB goes out at once, ahead of the 17th rising edge.
                    m.d.sync += shift_out.eq(self.bus.r_data)
                with m.Else():
                    m.d.sync += shift_out.eq(Cat(Const(0, 1), shift_out[:-1]))

        return m
