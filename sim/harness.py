"""Simulation-only RTL around a design under test, so the clock can run free.

``StreamHarness`` sinks a valid/ready stream (one of several, chosen by ``sel``) with seeded pseudo-random back-pressure generated in
RTL (an xorshift32 register) and gathers accepted payloads into batches of ``batch`` words: when a
batch is full it appears on ``word`` (entry i at bits ``[i*w, (i+1)*w)``, oldest first) and
``word_toggle`` flips. A cocotb bench then wakes once per batch (``ValueChange(word_toggle)``)
instead of once per clock cycle. At the end of a run the partial batch is readable directly:
``fill`` entries, the newest in the top slots of ``buf``.

Back-pressure: in each cycle ``ready = (rnd[0:8] >= bp_thresh)``; 0 means always ready, 128 about
half the cycles, 255 one cycle in 256. ``bp_seed`` is loaded into the generator while ``bp_load``
is high (a zero seed is replaced by 1: xorshift has no zero state).
"""

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.csr import CSRBusSignature


class StreamHarness(wiring.Component):
    """Wraps ``dut`` (a component with ``csr`` and a stream output named ``stream_name``)."""

    def __init__(self, dut, stream_name: str | tuple[str, ...] = "raw", batch: int = 8):
        if not 1 <= batch <= 64:
            raise ValueError(f"batch = {batch}: out of range, allowed [1, 64]")
        self.dut = dut
        self.stream_names = (stream_name,) if isinstance(stream_name, str) else tuple(stream_name)
        self.batch = batch
        self.width = width = max(len(Value.cast(getattr(dut, n).payload))
                                 for n in self.stream_names)
        super().__init__({
            "csr": In(CSRBusSignature()),
            "bp_thresh": In(8),
            "bp_seed": In(32),
            "bp_load": In(1),
            "word": Out(width * batch),
            "word_toggle": Out(1),
            "words": Out(32),
            "buf": Out(width * batch),
            "fill": Out(range(batch + 1)),
            "sel": In(range(max(2, len(self.stream_names)))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        wiring.connect(m, wiring.flipped(self.csr), dut.csr)
        # `sel` picks the captured stream; the others are held (ready low).
        streams = [getattr(dut, n) for n in self.stream_names]
        valid = Signal()
        payload = Signal(self.width)
        for i, st in enumerate(streams):
            with m.If(self.sel == i):
                m.d.comb += [valid.eq(st.valid), payload.eq(Value.cast(st.payload))]

        rnd = Signal(32, init=0x2545F491)
        x1 = rnd ^ (rnd << 13)[:32]
        x2 = x1 ^ (x1 >> 17)
        x3 = x2 ^ (x2 << 5)[:32]
        with m.If(self.bp_load):
            m.d.sync += rnd.eq(Mux(self.bp_seed == 0, 1, self.bp_seed))
        with m.Else():
            m.d.sync += rnd.eq(x3)

        ready = Signal()
        m.d.comb += ready.eq(rnd[:8] >= self.bp_thresh)
        for i, st in enumerate(streams):
            m.d.comb += st.ready.eq(ready & (self.sel == i))
        w, n = self.width, self.batch
        shifted = (payload << ((n - 1) * w)) | (self.buf >> w)
        with m.If(valid & ready):
            m.d.sync += self.words.eq(self.words + 1)
            with m.If(self.fill == n - 1):
                m.d.sync += [
                    self.word.eq(shifted),
                    self.word_toggle.eq(~self.word_toggle),
                    self.fill.eq(0),
                    self.buf.eq(0),
                ]
            with m.Else():
                m.d.sync += [self.buf.eq(shifted), self.fill.eq(self.fill + 1)]
        return m
