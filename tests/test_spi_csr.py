"""SPICSRBridge, RTL against its bit-level twin (``model.blocks.spi_csr.SPICSRBridge``).

A Python mode-0 master drives the RTL bridge's pins (at the fastest documented SCLK timing and at
random slower ones) in front of a small stand-in register file; every frame also goes through the
twin against a Python model of the same register file. Per frame, the MISO bits (``ref_miso`` vs
``rtl_miso``) and the bus writes (``ref_writes`` vs ``rtl_writes``, seen on ``w_stb``) must match.
The twin itself is checked against hand-derived cases from the frame format."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from hw import spi_csr as rtl_mod
from hw.csr import CSRBusSignature
from hw.spi_csr import SPICSRBridge
from model.blocks import spi_csr as twin_mod
from model.blocks.spi_csr import FRAME_BITS, frame_word, miso_data, spi_frame

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


class RefRegFile:
    """Python model of :class:`RegFile`, read by the twin (a callable register file)."""

    def __init__(self):
        self.regs = {4 * i: 0 for i in range(N_RW)}
        self.wcount = 0

    def __call__(self, addr):
        if addr == RO_ADDR:
            return RO_VALUE
        if addr == WCOUNT_ADDR:
            return self.wcount
        return self.regs.get(addr, 0)

    def apply(self, writes):
        for addr, data in writes:
            self.wcount += 1
            if addr in self.regs:
                self.regs[addr] = data


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
    """Simulate ``bench(ctx, dut, rtl_writes)``; ``rtl_writes`` collects every ``(addr, w_data)``
    seen on the bus at a clock edge with ``w_stb`` high (a background monitor)."""
    dut = Harness()
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    rtl_writes = []
    bus = dut.bridge.bus

    async def monitor(ctx):
        async for _, _, stb, addr, data in ctx.tick().sample(bus.w_stb, bus.addr, bus.w_data):
            if stb:
                rtl_writes.append((addr, data))

    async def tb(ctx):
        await bench(ctx, dut, rtl_writes)

    sim.add_testbench(monitor, background=True)
    sim.add_testbench(tb)
    sim.run()


async def frame_vs_twin(ctx, dut, rtl_writes, ref, bits, *, high, low, what):
    """Send ``bits`` to the RTL and to the twin; compare MISO (when ``low`` >= 4, the documented
    read timing) and the writes; apply the writes to the reference register file."""
    twin = twin_mod.SPICSRBridge()
    res = twin.transfer(bits, ref)
    ref_miso, ref_writes = list(res.miso), list(res.writes)
    n0 = len(rtl_writes)
    read_timing = low >= 4
    rtl_miso = await spi_transfer(ctx, dut.bridge, bits, high=high, low=low,
                                  sample_setup=1 if read_timing else 0)
    rtl_frame_writes = rtl_writes[n0:]
    assert rtl_frame_writes == ref_writes, \
        f"{what}: writes rtl={rtl_frame_writes} ref={ref_writes} (high={high} low={low})"
    if read_timing:
        assert rtl_miso == ref_miso, \
            f"{what}: MISO rtl=0x{frame_word(rtl_miso):x} ref=0x{frame_word(ref_miso):x} " \
            f"({len(bits)} bits, high={high} low={low})"
    ref.apply(ref_writes)
    return ref_miso


# ------------------------------------------------------------------------------------------------
# The twin on its own: format and protocol cases derived from the frame format

def test_frame_encoder():
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
    # One definition: the RTL module re-exports the twin's encoder.
    assert rtl_mod.spi_frame is twin_mod.spi_frame and rtl_mod.FRAME_BITS == FRAME_BITS


def test_twin_protocol_cases():
    twin = twin_mod.SPICSRBridge()
    regs = {0x08: 0xDEADBEEF}
    # A write frame returns the old value and issues one write.
    r = twin.transfer(spi_frame(True, 0x08, 0x01020304), regs)
    assert r.miso[:16] == (0,) * 16 and miso_data(r.miso) == 0xDEADBEEF
    assert r.writes == ((0x08, 0x01020304),)
    # Read frame: no write; an address missing from the mapping reads 0; a callable works too.
    r = twin.transfer(spi_frame(False, 0x0C, 0xFFFFFFFF), regs)
    assert r.writes == () and miso_data(r.miso) == 0
    r = twin.transfer(spi_frame(False, 0x33), lambda a: a * 0x01010101)
    assert miso_data(r.miso) == 0x33333333
    # Short frame, reserved command bit, MOSI stuck high: no write.
    assert twin.transfer(spi_frame(True, 0x08, 5)[:47], regs).writes == ()
    bits = spi_frame(True, 0x08, 5)
    bits[1] = 1
    assert twin.transfer(bits, regs).writes == ()
    assert twin.transfer([1] * FRAME_BITS, regs).writes == ()
    # Longer than 48 bits: the extra bits are ignored and MISO is 0 there.
    r = twin.transfer(spi_frame(True, 0x08, 7) + [1] * 5, regs)
    assert r.writes == ((0x08, 7),) and r.miso[FRAME_BITS:] == (0,) * 5
    # A frame cut inside the data: MISO carries the value's leading bits.
    r = twin.transfer(spi_frame(False, 0x08)[:20], regs)
    assert r.miso == (0,) * 16 + (1, 1, 0, 1)        # 0xD... MSB first
    assert twin.transfer([], regs) == twin_mod.SPIFrameResult((), ())
    with pytest.raises(ValueError, match="mosi"):
        twin.transfer([0, 2], regs)
    with pytest.raises(ValueError, match="regs"):
        twin.transfer([0] * 48, 5)


# ------------------------------------------------------------------------------------------------
# RTL against the twin

def test_rtl_matches_twin_random_frames():
    seed = 1234
    rng = random.Random(seed)
    addrs = [4 * i for i in range(N_RW)] + [RO_ADDR, WCOUNT_ADDR, 0x80]

    async def bench(ctx, dut, rtl_writes):
        ref = RefRegFile()
        for it in range(40):
            kind = rng.random()
            if kind < 0.4:      # write
                bits = spi_frame(True, rng.choice(addrs), rng.getrandbits(32))
            elif kind < 0.75:   # read
                bits = spi_frame(False, rng.choice(addrs), rng.getrandbits(32))
            elif kind < 0.9:    # random command byte (mostly reserved bits set), maybe cut/long
                bits = [rng.getrandbits(1) for _ in range(8)] + \
                    spi_frame(True, rng.choice(addrs), rng.getrandbits(32))[8:]
                bits = bits[:rng.choice([48, 48, rng.randint(0, 56)])]
            else:               # a write frame of random length (short or long)
                bits = spi_frame(True, rng.choice(addrs), rng.getrandbits(32)) + \
                    [rng.getrandbits(1) for _ in range(8)]
                bits = bits[:rng.randint(0, 56)]
            # Fastest write timing (each phase 2 T), fastest read timing (low 4 T), or slower.
            hi, lo = [(2, 2), (2, 4), (rng.randint(2, 6), rng.randint(2, 7))][it % 3]
            await frame_vs_twin(ctx, dut, rtl_writes, ref, bits, high=hi, low=lo,
                                what=f"seed={seed} it={it}")
        for i in range(N_RW):
            assert ctx.get(dut.regfile.regs[i]) == ref.regs[4 * i], f"seed={seed} reg {i}"
        assert ctx.get(dut.regfile.wcount) == ref.wcount, f"seed={seed}: write count"

    run(bench)


def test_rtl_matches_twin_directed():
    """Write returns the old value, unmapped reads 0, short / reserved / stuck-high frames do not
    write, long frames write once: each frame compared with the twin."""
    async def bench(ctx, dut, rtl_writes):
        ref = RefRegFile()
        frames = [
            spi_frame(True, 0x08, 0xDEADBEEF),
            spi_frame(True, 0x08, 0x01020304),
            spi_frame(False, 0x08),
            spi_frame(False, 0x80),
            spi_frame(True, 0x04, 0x22222222)[:47],
            [1] * FRAME_BITS,
            spi_frame(True, 0x00, 0x44444444) + [1] * 8,
            spi_frame(False, WCOUNT_ADDR),
        ]
        reserved = spi_frame(True, 0x04, 0x33333333)
        reserved[3] = 1
        frames.insert(5, reserved)
        for k, bits in enumerate(frames):
            await frame_vs_twin(ctx, dut, rtl_writes, ref, bits, high=3, low=4,
                                what=f"frame {k}")
        assert ref.regs[0x08] == 0x01020304 and ref.regs[0x00] == 0x44444444
        assert ref.regs[0x04] == 0 and ref.wcount == 3
        assert ctx.get(dut.regfile.wcount) == 3

    run(bench)


def test_miso_oe_follows_cs():
    async def bench(ctx, dut, rtl_writes):
        br = dut.bridge
        await ctx.tick().repeat(4)
        assert ctx.get(br.miso_oe) == 0
        ctx.set(br.cs_n, 0)
        await ctx.tick().repeat(3)
        assert ctx.get(br.miso_oe) == 1
        ctx.set(br.cs_n, 1)
        await ctx.tick().repeat(3)
        assert ctx.get(br.miso_oe) == 0
        assert rtl_writes == []

    run(bench)
