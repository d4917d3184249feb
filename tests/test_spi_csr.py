"""SPICSRBridge: drive the SPI pins from a Python mode-0 master and check CSR writes and reads on a
small stand-in register file, at the fastest documented SCLK timing and at random slower ones."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from hw.csr import CSRBusSignature
from hw.spi_csr import FRAME_BITS, SPICSRBridge, frame_word, miso_data, spi_frame

RO_ADDR = 0x40          # read-only register of the stand-in: a constant
WCOUNT_ADDR = 0x44      # read-only: number of write strobes seen
RO_VALUE = 0xC0FFEE42
N_RW = 4                # rw registers at 0x00, 0x04, 0x08, 0x0C


class RegFile(wiring.Component):
    """Stand-in register bank on the CSR bus (registered r_data, latency 1)."""

    csr: In(CSRBusSignature())

    def __init__(self):
        super().__init__()
        self.regs = [Signal(32, name=f"r{i}") for i in range(N_RW)]
        self.wcount = Signal(32)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.csr.w_stb):
            m.d.sync += self.wcount.eq(self.wcount + 1)
            for i, r in enumerate(self.regs):
                with m.If(self.csr.addr == 4 * i):
                    m.d.sync += r.eq(self.csr.w_data)
        with m.Switch(self.csr.addr):
            for i, r in enumerate(self.regs):
                with m.Case(4 * i):
                    m.d.sync += self.csr.r_data.eq(r)
            with m.Case(RO_ADDR):
                m.d.sync += self.csr.r_data.eq(RO_VALUE)
            with m.Case(WCOUNT_ADDR):
                m.d.sync += self.csr.r_data.eq(self.wcount)
            with m.Default():
                m.d.sync += self.csr.r_data.eq(0)
        return m


class Harness(wiring.Component):
    def __init__(self):
        super().__init__({})
        self.bridge = SPICSRBridge()
        self.regfile = RegFile()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        m.submodules.regfile = self.regfile
        wiring.connect(m, self.bridge.bus, self.regfile.csr)
        return m


async def wait(ctx, n):
    if n > 0:
        await ctx.tick().repeat(n)


async def spi_transfer(ctx, br, bits, *, high, low, sample_setup=1, setup=2, hold=2, gap=2):
    """Mode-0 master: returns the MISO bits. MISO is sampled `sample_setup` clk cycles before each
    rising SCLK edge, so a pass also shows MISO was stable that long (the documented latency)."""
    ctx.set(br.cs_n, 0)
    await ctx.tick().repeat(setup)
    got = []
    for b in bits:
        ctx.set(br.mosi, b)                 # changes with the falling edge (mode 0)
        await wait(ctx, low - sample_setup)
        got.append(ctx.get(br.miso))
        await wait(ctx, sample_setup)
        ctx.set(br.sclk, 1)
        await ctx.tick().repeat(high)
        ctx.set(br.sclk, 0)
    await ctx.tick().repeat(hold)
    ctx.set(br.cs_n, 1)
    await ctx.tick().repeat(gap)
    return got


def run(bench):
    dut = Harness()
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def tb(ctx):
        await bench(ctx, dut)

    sim.add_testbench(tb)
    sim.run()


def test_frame_model():
    bits = spi_frame(True, 0xA5, 0x12345678)
    assert len(bits) == FRAME_BITS and set(bits) <= {0, 1}
    assert frame_word(bits) == (0x80 << 40) | (0xA5 << 32) | 0x12345678
    assert frame_word(spi_frame(False, 0x04)) == 0x04 << 32
    assert miso_data([0] * 16 + [1] * 32) == 0xFFFF_FFFF
    with pytest.raises(ValueError, match="addr"):
        spi_frame(True, 256, 0)
    with pytest.raises(ValueError, match="data"):
        spi_frame(True, 0, 1 << 32)
    with pytest.raises(ValueError, match="48"):
        miso_data([0] * 47)


def test_write_then_read_random():
    seed = 1234
    rng = random.Random(seed)

    async def bench(ctx, dut):
        br = dut.bridge
        model = {4 * i: 0 for i in range(N_RW)}
        for it in range(24):
            addr = rng.choice(list(model))
            data = rng.getrandbits(32)
            # Writes at the fastest receive timing (each phase 2 T) or random slower ones.
            hi, lo = (2, 2) if it % 3 == 0 else (rng.randint(2, 5), rng.randint(2, 5))
            await spi_transfer(ctx, br, spi_frame(True, addr, data), high=hi, low=lo,
                               sample_setup=0)
            model[addr] = data
            # Reads at the fastest read timing (low phase 4 T, MISO sampled 1 T early) or slower.
            raddr = rng.choice(list(model) + [RO_ADDR])
            hi, lo = (2, 4) if it % 2 == 0 else (rng.randint(2, 6), rng.randint(4, 7))
            got = await spi_transfer(ctx, br, spi_frame(False, raddr, rng.getrandbits(32)),
                                     high=hi, low=lo)
            want = RO_VALUE if raddr == RO_ADDR else model[raddr]
            assert got[:16] == [0] * 16, f"seed={seed} it={it}: MISO not 0 during header"
            assert miso_data(got) == want, \
                f"seed={seed} it={it}: read 0x{raddr:02x} -> 0x{miso_data(got):08x}, " \
                f"want 0x{want:08x} (timing high={hi} low={lo})"
        for i in range(N_RW):
            assert ctx.get(dut.regfile.regs[i]) == model[4 * i], f"seed={seed} reg {i}"
        assert ctx.get(dut.regfile.wcount) == 24, f"seed={seed}: one w_stb per write frame"

    run(bench)


def test_write_frame_returns_old_value_and_unmapped_reads_zero():
    async def bench(ctx, dut):
        br = dut.bridge
        await spi_transfer(ctx, br, spi_frame(True, 0x08, 0xDEADBEEF), high=3, low=4)
        got = await spi_transfer(ctx, br, spi_frame(True, 0x08, 0x01020304), high=3, low=4)
        assert miso_data(got) == 0xDEADBEEF
        got = await spi_transfer(ctx, br, spi_frame(False, 0x08), high=3, low=4)
        assert miso_data(got) == 0x01020304
        got = await spi_transfer(ctx, br, spi_frame(False, 0x80), high=3, low=4)
        assert miso_data(got) == 0

    run(bench)


def test_no_write_on_short_frame_reserved_bits_or_stuck_high_mosi():
    async def bench(ctx, dut):
        br = dut.bridge
        await spi_transfer(ctx, br, spi_frame(True, 0x04, 0x11111111), high=2, low=4)
        # cs_n released after 47 bits: nothing written.
        await spi_transfer(ctx, br, spi_frame(True, 0x04, 0x22222222)[:47], high=2, low=4)
        # Reserved command bit set: no-op.
        bits = spi_frame(True, 0x04, 0x33333333)
        bits[3] = 1
        await spi_transfer(ctx, br, bits, high=2, low=4)
        # MOSI stuck high for a whole frame: no-op.
        await spi_transfer(ctx, br, [1] * FRAME_BITS, high=2, low=4)
        # Frame longer than 48 bits: one write, the extra bits are ignored and MISO is 0 there.
        got = await spi_transfer(ctx, br, spi_frame(True, 0x00, 0x44444444) + [1] * 8,
                                 high=2, low=4)
        assert got[FRAME_BITS:] == [0] * 8
        assert ctx.get(dut.regfile.regs[1]) == 0x11111111
        assert ctx.get(dut.regfile.regs[0]) == 0x44444444
        assert ctx.get(dut.regfile.wcount) == 2
        got = await spi_transfer(ctx, br, spi_frame(False, WCOUNT_ADDR), high=2, low=4)
        assert miso_data(got) == 2

    run(bench)


def test_miso_oe_follows_cs():
    async def bench(ctx, dut):
        br = dut.bridge
        await ctx.tick().repeat(4)
        assert ctx.get(br.miso_oe) == 0
        ctx.set(br.cs_n, 0)
        await ctx.tick().repeat(3)
        assert ctx.get(br.miso_oe) == 1
        ctx.set(br.cs_n, 1)
        await ctx.tick().repeat(3)
        assert ctx.get(br.miso_oe) == 0

    run(bench)
