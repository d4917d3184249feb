"""Bit packer: the conditioner's emitted bits, in arrival order, into W-bit words.

The contract is ``docs/trng-readout.md`` §3; the bit-exact twin is
``model.blocks.conditioner.BitPacker``.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.conditioner import cond_word_layout
from model.blocks.config import ConditionerConfig


class BitPacker(wiring.Component):
    """Appends the valid bits of each input word (ascending column) to a bit stream and outputs
    it in W-bit words, the earliest bit in the LSB.

    Parameters
    ----------
    cfg : ConditionerConfig
        ``cfg.array.cols`` bits per input word, ``cfg.word_bits`` = W bits per output word.

    Attributes
    ----------
    i : In(stream.Signature(cond_word_layout(cfg.array)))
        ``{bits, valid}`` words from the Conditioner.
    o : Out(stream.Signature(cfg.word_bits))
        Packed words. ``valid`` and ``payload`` come from registers.

    Notes
    -----
    Storage: an output register plus an accumulator of ``W + cols - 1`` bits holding ``n`` bits.
    In a cycle where ``n >= W`` and the output register is free or drains (``~o.valid |
    o.ready``), the W oldest bits move to the output register ("pop"). An input word is
    accepted only when, after that pop, fewer than W bits remain (``i.ready``, combinational
    from ``o.ready``, independent of the payload); then any word, up to ``cols`` valid bits,
    fits, so no bit is lost or repeated.

    **Rate:** with ``o.ready`` high and at most W valid bits per input word (always true when
    ``cols <= W``), ``i.ready`` stays high: one input word per cycle, one output word per cycle.
    **Latency:** the bit completing an output word is accepted at the end of cycle t, sits in
    the accumulator in t+1 (popped at its end) and is on ``o`` in cycle t+2.
    """

    def __init__(self, cfg: ConditionerConfig):
        if not isinstance(cfg, ConditionerConfig):
            raise ValueError(f"BitPacker.cfg = {cfg!r}: must be a ConditionerConfig "
                             f"(model.blocks.config.ConditionerConfig)")
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cond_word_layout(cfg.array))),
            "o": Out(stream.Signature(cfg.word_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cols, w = self.cfg.array.cols, self.cfg.word_bits
        cap = w + cols - 1            # accumulator bits: < W left after a pop, plus one word

        buf = Signal(cap)
        n = Signal(range(cap + 1))

        # Pop when a whole word is stored and the output register can take it.
        pop = Signal()
        m.d.comb += pop.eq((n >= w) & (~self.o.valid | self.o.ready))
        n_mid = Signal(range(cap + 1))
        buf_mid = Signal(cap)
        m.d.comb += [n_mid.eq(Mux(pop, n - w, n)),
                     buf_mid.eq(Mux(pop, buf[w:], buf))]
        # Accept only when fewer than W bits stay behind: n_mid + cols <= cap then holds, so
        # the decision needs no popcount of the incoming word (ready independent of payload).
        accept = Signal()
        m.d.comb += [self.i.ready.eq(n_mid < w),
                     accept.eq(self.i.valid & self.i.ready)]

        # Compaction: the valid bits, in ascending column order, to positions 0 .. pc-1.
        # Bit c must move down by z[c] = number of invalid columns below c. z comes from an
        # exclusive prefix count of ~valid by a Kogge-Stone (Hillis-Steele) scan: log2(cols)
        # levels of small adders instead of a cols-long ripple chain.
        valid = self.i.payload.valid
        bits = self.i.payload.bits
        # (one wide signal per scan level / shift stage: few wide signals simulate much faster
        # than many 1-bit ones; the logic is the same)
        zb = max(1, cols.bit_length())                     # a count 0 .. cols
        lev = Signal(cols * zb, name="nv0")
        m.d.comb += lev.eq(Cat(*[Cat(~valid[c], C(0, zb - 1)) for c in range(cols)]))
        d = 1
        while d < cols:
            nxt = Signal(cols * zb, name=f"nv{d}")
            m.d.comb += nxt.eq(Cat(*[
                (lev.word_select(c, zb) + lev.word_select(c - d, zb))[:zb] if c >= d
                else lev.word_select(c, zb) for c in range(cols)]))
            lev, d = nxt, 2 * d
        # lev field c = invalid columns in 0..c; z[c] = field c-1; popcount = cols - field[-1]
        pc = Signal(range(cols + 1))
        m.d.comb += pc.eq(cols - lev.word_select(cols - 1, zb))
        z = Signal(cols * zb, name="z0")
        m.d.comb += z.eq(Cat(C(0, zb), lev[:(cols - 1) * zb]))
        # Shift network: stage s moves every valid bit whose z has bit s set down by 2**s.
        # Stages in increasing significance never collide and keep the order: for valid bits
        # a < b, b - a >= z[b] - z[a] + 1 and (z[b] mod 2**s) - (z[a] mod 2**s) <= z[b] - z[a],
        # so after any stage b's position stays above a's.
        occ = Signal(cols, name="occ0")
        dat = Signal(cols, name="dat0")
        m.d.comb += [occ.eq(valid), dat.eq(valid & bits)]
        sh = 0
        while (1 << sh) < cols:
            step = 1 << sh
            mv = Signal(cols, name=f"mv{sh}")
            m.d.comb += mv.eq(occ & Cat(*[z.word_select(c, zb)[sh] for c in range(cols)]))
            n_occ = Signal(cols, name=f"occ{sh + 1}")
            n_dat = Signal(cols, name=f"dat{sh + 1}")
            n_z = Signal(cols * zb, name=f"z{sh + 1}")
            # what arrives from above (position p + step) and what stays
            m.d.comb += [
                n_occ.eq(((occ & mv) >> step) | (occ & ~mv)),
                n_dat.eq(((dat & mv) >> step) | (dat & ~mv)),
                n_z.eq(Cat(*[Mux(mv[p + step], z.word_select(p + step, zb), z.word_select(p, zb))
                             if p + step < cols else z.word_select(p, zb)
                             for p in range(cols)])),
            ]
            occ, dat, z, sh = n_occ, n_dat, n_z, sh + 1
        comp = dat

        with m.If(accept):
            m.d.sync += [buf.eq(buf_mid | (comp << n_mid)), n.eq(n_mid + pc)]
        with m.Else():
            m.d.sync += [buf.eq(buf_mid), n.eq(n_mid)]

        with m.If(pop):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(buf[:w])]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
