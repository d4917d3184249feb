"""Gaussian generator: packed W-bit random words -> signed fixed-point ≈N(0,1) samples.

Contract: ``docs/trng-readout.md`` §4. The sample format and both integer mappings are defined
once in ``model/blocks/fixedpoint.py``; the bit-exact twin is
``model.blocks.gaussian.GaussianGenerator``.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from model.blocks.config import GaussConfig
from model.blocks.fixedpoint import (MODE_SUM12, SUM12_TERMS, cbd_balance_mask, cbd_table,
                                     fixed_point, saturation_possible, sum12_offset, sum12_shift,
                                     sum12_total_max)
from model.blocks.gaussian import sum12_group_fields

#: Adder-tree levels between pipeline registers (two small adds per stage: ECP5 >= 100 MHz,
#: iCE40 >= 48 MHz with room to spare).
LEVELS_PER_STAGE = 2


def _tree_stages(n_items: int) -> int:
    """Register stages of :func:`_adder_tree` on ``n_items`` items."""
    levels = (n_items - 1).bit_length()          # ceil(log2(n)) pairwise levels
    return max(1, -(-levels // LEVELS_PER_STAGE))


def _adder_tree(m: Module, items, name: str):
    """Pipelined balanced adder tree. Returns (registered sum, register stages)."""
    items = list(items)
    stages = since = 0

    def register(vals):
        regs = []
        for k, v in enumerate(vals):
            r = Signal(v.shape(), name=f"{name}_s{stages}_{k}")
            m.d.sync += r.eq(v)
            regs.append(r)
        return regs

    while len(items) > 1:
        nxt = [items[k] + items[k + 1] for k in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items, since = nxt, since + 1
        if since == LEVELS_PER_STAGE and len(items) > 1:
            items, stages, since = register(items), stages + 1, 0
    (out,) = register(items)
    return out, stages + 1


def _delay(m: Module, v, n: int, name: str):
    """``v`` delayed by ``n`` register stages."""
    for k in range(n):
        r = Signal(v.shape(), name=f"{name}_d{k}")
        m.d.sync += r.eq(v)
        v = r
    return v


class GaussianGenerator(wiring.Component):
    """Packed random words in, signed Q(int_bits).(frac_bits) ≈N(0,1) samples out.

    Parameters
    ----------
    cfg : GaussConfig
        W = ``word_bits``, K = ``cbd_bits``, U = ``uniform_bits``, output format, and
        ``cbd_balanced`` (a build-time choice: the CBD popcount counts the K bits XOR
        ``model.blocks.fixedpoint.cbd_balance_mask``, bits 1, 3, 5, … inverted; no extra logic
        or latency, the inversions merge into the popcount's first adders).

    Attributes
    ----------
    i : In(stream.Signature(W))
        Random words. ``i.ready`` is one LUT of registers (never depends on ``i.valid`` or
        ``o.ready``). The word is held in a register and split there: chunk after chunk, one
        per cycle, LSBs first; the next word is accepted in the cycle the last chunk is issued.
    o : Out(stream.Signature(signed(sample_bits)))
        Raw samples (value = payload / 2**frac_bits), from a small FIFO: ``o.valid`` and
        ``o.payload`` never depend on ``o.ready``.
    mode : In(1)
        0 CBD, 1 sum of 12 uniforms. Sampled in the cycle a word is accepted; the whole word is
        processed in that mode. A word accepted in a mode other than the previous accepted
        word's discards any partial sum-of-12 accumulation (the next sum-of-12 sample starts
        with that word's first field).

    Attributes (Python)
    -------------------
    tree_stages : int
        T: register stages of the (longer) adder tree.
    latency : int
        ``T + 3`` cycles, with the FIFO empty and ``o.ready`` high: a word accepted in cycle t
        issues chunk j in cycle t+1+j (no credit stall), whose sample (CBD: every chunk; sum-of-
        12: the group that completes a sample) is ``o.valid`` in cycle t+latency+j.
        Default config: T = 3, latency 6.
    fifo_depth : int
        ``T + 3``, the smallest depth that sustains one sample per cycle.

    Throughput (``o.ready`` high, words offered every cycle): one word per
    :func:`model.blocks.gaussian.cycles_per_word` cycles, i.e. CBD ``W/K`` cycles per word (one
    sample per cycle); sum-of-12 ``(W/U)/G`` cycles per word with ``G = gcd(12, W/U)`` fields
    added per cycle (G divides both 12 and W/U, so a group never straddles a word or a sample;
    default W=32, U=16: one word per cycle, a sample every 6 cycles). Both are far above what
    the array delivers (default 8 bits per 6-cycle row: a 32-bit word per 24 cycles).

    Back-pressure: issuing a sample-producing chunk into the pipeline needs a free FIFO slot
    counting every sample already in flight (credits), so the pipeline itself never stalls and
    nothing is lost or repeated; when the FIFO is full the word register holds and ``i.ready``
    drops. Sum-of-12 chunks that complete no sample still advance.
    """

    def __init__(self, cfg: GaussConfig):
        if not isinstance(cfg, GaussConfig):
            self._MustUse__silence = True
            raise ValueError(f"GaussianGenerator.cfg = {cfg!r}: must be a GaussConfig "
                             f"(model.blocks.config.GaussConfig)")
        self.cfg = cfg
        self.fp = fixed_point(cfg)
        W, K, U = cfg.word_bits, cfg.cbd_bits, cfg.uniform_bits
        self.group_fields = sum12_group_fields(cfg)                 # G
        self.cbd_chunks = W // K                                    # chunks (samples) per word
        self.sum_chunks = W // U // self.group_fields               # groups per word
        self.groups_per_sample = SUM12_TERMS // self.group_fields   # R
        self.cbd_tree_stages = _tree_stages(K)
        self.sum_tree_stages = _tree_stages(self.group_fields)
        self.tree_stages = max(self.cbd_tree_stages, self.sum_tree_stages)
        self.latency = self.tree_stages + 3
        self.fifo_depth = self.tree_stages + 3
        super().__init__({
            "i": In(stream.Signature(W)),
            "o": Out(stream.Signature(signed(self.fp.sample_bits))),
            "mode": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fp = self.cfg, self.fp
        W, K, U = cfg.word_bits, cfg.cbd_bits, cfg.uniform_bits
        G, R, T = self.group_fields, self.groups_per_sample, self.tree_stages
        GU = G * U
        sb = fp.sample_bits

        # ---------------------------------------------------------------------------------------
        # Output FIFO with credits. Every sample-producing chunk takes a credit when it enters
        # the pipeline and gives it back when its sample leaves the FIFO, so
        # credits = depth - (samples in flight) - (samples in the FIFO) and the FIFO can never
        # overflow. The pipeline has no stall logic at all (no enable fan-out, no combinational
        # path from o.ready to i.ready). Depth T+3 = T+1 samples in the pipeline + one in the
        # FIFO + the one being issued, so one sample per cycle is sustained with o.ready high.
        # The credit count is one register updated incrementally (not depth - level - inflight:
        # that adder-compare sat on the iCE40's critical path into every control enable).
        depth = self.fifo_depth
        m.submodules.fifo = fifo = SyncFIFO(width=sb, depth=depth)
        credits = Signal(range(depth + 1), init=depth)

        # ---------------------------------------------------------------------------------------
        # Word register. The chunk being issued is always at the LSBs of ``buf``: after each
        # issue the word shifts right by the chunk width (K or G*U), so no chunk multiplexer is
        # needed. ``word_mode`` is the mode sampled when the word was accepted; it stays put
        # after the word is used up and tells the next acceptance whether the mode changed.
        #
        # Timing: the flags about the chunk at the LSBs (``last_r``: it is the word's last;
        # ``prod_r``: it completes a sample) and ``credit_ok_r`` are registers computed from the
        # next state, so ``issue`` and ``i.ready`` are each one LUT4 of registers, and the
        # accept enable one more (iCE40: the comb version of these flags limited Fmax to ~52
        # MHz with the adder trees far from critical).
        buf = Signal(W)
        buf_valid = Signal()
        pos = Signal(range(max(self.cbd_chunks, self.sum_chunks, 2)))
        word_mode = Signal()
        gcnt = Signal(range(max(R, 2)))          # groups of the current sum-of-12 sample so far
        last_r = Signal()
        prod_r = Signal()
        credit_ok_r = Signal(init=1)

        def n_chunks(mode):
            return Mux(mode == MODE_SUM12, self.sum_chunks, self.cbd_chunks)

        is_sum = word_mode == MODE_SUM12
        first_grp, last_grp = Signal(), Signal()
        m.d.comb += [first_grp.eq(gcnt == 0), last_grp.eq(gcnt == R - 1)]

        issue = Signal()
        m.d.comb += issue.eq(buf_valid & (~prod_r | credit_ok_r))
        m.d.comb += self.i.ready.eq(~buf_valid | (issue & last_r))
        accept = self.i.valid & self.i.ready

        # next state of pos / gcnt / mode of the chunk at the LSBs
        pos_n, gcnt_n, mode_n = Signal.like(pos), Signal.like(gcnt), Signal()
        m.d.comb += [pos_n.eq(pos), gcnt_n.eq(gcnt), mode_n.eq(word_mode)]
        with m.If(issue):
            m.d.comb += pos_n.eq(Mux(last_r, 0, pos + 1))
            with m.If(is_sum):
                m.d.comb += gcnt_n.eq(Mux(last_grp, 0, gcnt + 1))
        with m.If(accept):                       # overrides the issue's updates above
            m.d.comb += [pos_n.eq(0), mode_n.eq(self.mode)]
            with m.If(self.mode != word_mode):
                m.d.comb += gcnt_n.eq(0)         # discard the partial sum-of-12 sample
        m.d.sync += [
            pos.eq(pos_n), gcnt.eq(gcnt_n), word_mode.eq(mode_n),
            last_r.eq(pos_n == n_chunks(mode_n) - 1),
            prod_r.eq((mode_n != MODE_SUM12) | (gcnt_n == R - 1)),
        ]
        with m.If(issue):
            m.d.sync += buf.eq(Mux(is_sum, buf[GU:], buf[K:]))
            with m.If(last_r):
                m.d.sync += buf_valid.eq(0)
        with m.If(accept):
            m.d.sync += [buf.eq(self.i.payload), buf_valid.eq(1)]

        credits_n = Signal.like(credits)
        m.d.comb += credits_n.eq(credits - (issue & prod_r) + (fifo.r_rdy & fifo.r_en))
        m.d.sync += [credits.eq(credits_n), credit_ok_r.eq(credits_n != 0)]

        # ---------------------------------------------------------------------------------------
        # Adder trees straight from the word register's LSBs: CBD popcount of K bits, and the
        # sum of G U-bit fields. Both run every cycle; the shorter is padded so both results
        # line up with the control flags, T stages after issue.
        # Balanced CBD (cfg.cbd_balanced): the bits where the shared mask is set enter the
        # popcount inverted, so a lean common to all bits (e.g. P(1) = 1/2 - 2*delta^2 after an
        # XOR fold, whatever the sign of delta) cancels in the mean; for ideal bits the law is
        # unchanged. Constant inversions cost nothing: they fold into the first adders' LUTs.
        bal = cbd_balance_mask(cfg)
        pc_bits = [~buf[k] if (bal >> k) & 1 else buf[k] for k in range(K)]
        pc, st_c = _adder_tree(m, pc_bits, "pc")
        gsum, st_s = _adder_tree(m, [buf[k * U:(k + 1) * U] for k in range(G)], "gsum")
        assert (st_c, st_s) == (self.cbd_tree_stages, self.sum_tree_stages)
        pc = _delay(m, pc, T - st_c, "pc")
        gsum = _delay(m, gsum, T - st_s, "gsum")
        flags = Cat(issue, word_mode, first_grp, last_grp)
        v_t, mode_t, first_t, last_t = _delay(m, flags, T, "flags")

        # ---------------------------------------------------------------------------------------
        # Stage X. CBD: popcount -> raw sample via a (K+1)-entry table computed from the shared
        # definition (no multiplier; the table already includes saturation). Sum-of-12: the
        # accumulator; a group flagged ``first`` restarts it.
        cbd_x = Signal(signed(sb))
        with m.Switch(pc):
            for k, raw in enumerate(cbd_table(cfg)):
                with m.Case(k):
                    m.d.sync += cbd_x.eq(raw)
            with m.Default():                    # pc > K never happens: no hold enable
                m.d.sync += cbd_x.eq(0)
        tmax = sum12_total_max(cfg)
        acc = Signal(range(tmax + 1))
        total = Signal(range(tmax + 1))
        m.d.comb += total.eq(Mux(first_t, gsum, acc + gsum))
        tot_x = Signal(range(tmax + 1))
        m.d.sync += tot_x.eq(total)
        with m.If(v_t & (mode_t == MODE_SUM12)):
            m.d.sync += acc.eq(total)
        v_x, mode_x, last_x = Signal(), Signal(), Signal()
        m.d.sync += [v_x.eq(v_t), mode_x.eq(mode_t), last_x.eq(last_t)]

        # Sum-of-12 scaling, combinational into the FIFO's write port: subtract 6*2**U, shift
        # (a right shift of the total followed by subtracting 6*2**frac_bits is the same floor,
        # since 6*2**U is a multiple of the shift), saturate only if the format can overflow.
        sh, off = sum12_shift(cfg), sum12_offset(cfg)
        if sh >= 0:
            raw_s = (Cat(tot_x, C(0, 1)).as_signed() - off) << sh
        else:
            raw_s = Cat(tot_x[-sh:], C(0, 1)).as_signed() - (off >> -sh)
        if saturation_possible(cfg, MODE_SUM12):
            raw_s = Mux(raw_s < fp.raw_min, fp.raw_min, Mux(raw_s > fp.raw_max, fp.raw_max, raw_s))
        raw_s_sig = Signal(signed(sb))
        m.d.comb += raw_s_sig.eq(raw_s)

        m.d.comb += [
            fifo.w_data.eq(Mux(mode_x == MODE_SUM12, raw_s_sig, cbd_x)),
            fifo.w_en.eq(v_x & ((mode_x != MODE_SUM12) | last_x)),
            self.o.valid.eq(fifo.r_rdy),
            self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]
        return m
