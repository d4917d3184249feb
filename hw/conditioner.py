"""Per-cell conditioner of the health-checked bits: XOR fold, von Neumann, or pass-through.

The contract is ``docs/trng-readout.md`` §2; the bit-exact twin is
``model.blocks.conditioner.Conditioner``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.health import health_word_layout   # the HealthMonitor's output word (one definition)
from model.blocks.config import ArrayConfig, ConditionerConfig

__all__ = ["Conditioner", "cond_word_layout", "health_word_layout"]


def cond_word_layout(cfg: ArrayConfig) -> data.StructLayout:
    """Payload of the Conditioner's output stream (the BitPacker's input): per cell the emitted
    bit and whether the cell emitted one."""
    return data.StructLayout({"bits": cfg.cols, "valid": cfg.cols})


class Conditioner(wiring.Component):
    """Per-cell XOR fold of k valid bits / von Neumann / pass-through, selected at run time.

    Parameters
    ----------
    cfg : ConditionerConfig
        Geometry (``cfg.array``) and the build limit ``max_fold``.

    Attributes
    ----------
    i : In(stream.Signature(health_word_layout(cfg.array)))
        Words ``{row, bits, valid}`` from the HealthMonitor. Rows must arrive round-robin
        (0, 1, ..., N-1, 0, ...; any starting row): the per-row state rotates with every
        accepted word and the ``row`` field itself is not used.
    o : Out(stream.Signature(cond_word_layout(cfg.array)))
        One word ``{bits, valid}`` per input word, same order. ``bits`` of a cell that emits
        nothing is 0. ``valid`` and ``payload`` come from registers.
    mode : In(2)
        0 pass-through, 1 XOR fold, 2 von Neumann; 3 acts as 0.
    k : In(range(max_fold + 1))
        XOR-fold factor; 0 acts as 1 (safe choice: the contract range is [1, max_fold]).

    Notes
    -----
    **Mode change.** ``mode`` and ``k`` are compared every cycle with copies registered in the
    previous cycle. In a cycle where either differs, every cell's state is cleared at the clock
    edge, and a word accepted in that same cycle is already processed with the new values,
    starting from the cleared state. Words accepted earlier keep the old processing (the one
    in the output register is not touched). The first cycle after reset compares with 0/0.

    **Latency and rate.** A word accepted at the end of cycle t is on ``o`` in cycle t+1; one
    word per cycle. **Back-pressure:** ``i.ready = ~o.valid | o.ready`` (combinational from
    ``o.ready``), so ``o.ready`` low holds ``i.ready`` while a word waits. No word is lost or
    repeated. Reset empties the output register (a word in it is dropped) and clears all state.
    """

    def __init__(self, cfg: ConditionerConfig):
        if not isinstance(cfg, ConditionerConfig):
            raise ValueError(f"Conditioner.cfg = {cfg!r}: must be a ConditionerConfig "
                             f"(model.blocks.config.ConditionerConfig)")
        self.cfg = cfg
        a = cfg.array
        super().__init__({
            "i": In(stream.Signature(health_word_layout(a))),
            "o": Out(stream.Signature(cond_word_layout(a))),
            "mode": In(2),
            "k": In(range(cfg.max_fold + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        rows, cols, kmax = cfg.array.rows, cfg.array.cols, cfg.max_fold

        # Per-cell state, shared by both stateful modes:
        #   acc  fold: XOR of the valid bits taken since the last emission; VN: pending 1st bit
        #   cnt  fold: valid bits taken since the last emission (0 .. k-1); VN: phase in bit 0
        # Rows come round-robin, so the state lives in a rotating shift register of rows slots:
        # slot 0 always belongs to the row of the word at the input (the row seen `rows` words
        # ago), and the updated state of that row enters the last slot. That needs no row
        # decoder and no rows:1 mux, and any starting row works. (For very large arrays a
        # memory indexed by the row tag would be cheaper; the default 8x8 array has 256 flops.)
        cw = max(1, (kmax - 1).bit_length())
        acc = [Signal(cols, name=f"acc{r}") for r in range(rows)]
        cnt = [[Signal(cw, name=f"cnt{r}_{c}") for c in range(cols)] for r in range(rows)]

        # Run-time settings and their registered copies; a difference clears every cell.
        mode_r = Signal.like(self.mode)
        k_r = Signal.like(self.k)
        m.d.sync += [mode_r.eq(self.mode), k_r.eq(self.k)]
        changed = Signal()
        m.d.comb += changed.eq((self.mode != mode_r) | (self.k != k_r))
        k_eff = Signal(range(kmax + 1))
        k_top = (1 << len(self.k)) - 1
        if k_top > kmax:      # port wider than needed: clamp (unreachable through the CSR)
            m.d.comb += k_eff.eq(Mux(self.k == 0, 1, Mux(self.k > kmax, kmax, self.k)))
        else:
            m.d.comb += k_eff.eq(Mux(self.k == 0, 1, self.k))
        is_fold = self.mode == 1
        is_vn = self.mode == 2

        # Output register; the input is taken whenever the output register is free or drains.
        accept = Signal()
        m.d.comb += [self.i.ready.eq(~self.o.valid | self.o.ready),
                     accept.eq(self.i.valid & self.i.ready)]

        pay = self.i.payload
        out_bits = Signal(cols)
        out_valid = Signal(cols)
        nacc = Signal(cols)
        ncnt = [Signal(cw, name=f"ncnt{c}") for c in range(cols)]
        for c in range(cols):
            b, v = pay.bits[c], pay.valid[c]
            # slot 0 as seen by this word: cleared when the settings change in this cycle
            a_in = Mux(changed, 0, acc[0][c])
            n_in = Mux(changed, 0, cnt[0][c])
            # XOR fold: the k-th valid bit emits acc ^ b and restarts
            x = a_in ^ b
            last = (n_in + 1) == k_eff
            # von Neumann: the 2nd bit of a pair emits the 1st one if they differ
            ph = n_in[0]
            with m.If(is_fold):
                m.d.comb += [out_valid[c].eq(v & last), out_bits[c].eq(v & last & x)]
                with m.If(v):
                    m.d.comb += [nacc[c].eq(Mux(last, 0, x)),
                                 ncnt[c].eq(Mux(last, 0, n_in + 1))]
                with m.Else():
                    m.d.comb += [nacc[c].eq(a_in), ncnt[c].eq(n_in)]
            with m.Elif(is_vn):
                emit = v & ph & (a_in != b)
                m.d.comb += [out_valid[c].eq(emit), out_bits[c].eq(emit & a_in)]
                with m.If(v):
                    m.d.comb += [nacc[c].eq(Mux(ph, 0, b)), ncnt[c].eq(Mux(ph, 0, 1))]
                with m.Else():
                    m.d.comb += [nacc[c].eq(a_in), ncnt[c].eq(n_in)]
            with m.Else():
                # pass-through: state stays as it is (all zero: entering this mode cleared it)
                m.d.comb += [out_valid[c].eq(v), out_bits[c].eq(v & b),
                             nacc[c].eq(a_in), ncnt[c].eq(n_in)]

        with m.If(accept):
            m.d.sync += [self.o.valid.eq(1),
                         self.o.payload.bits.eq(out_bits),
                         self.o.payload.valid.eq(out_valid)]
            # rotate: slot r takes slot r+1 (cleared on a settings change), the last slot the
            # updated state of the row just processed
            for r in range(rows - 1):
                m.d.sync += acc[r].eq(Mux(changed, 0, acc[r + 1]))
                m.d.sync += [cnt[r][c].eq(Mux(changed, 0, cnt[r + 1][c])) for c in range(cols)]
            m.d.sync += acc[rows - 1].eq(nacc)
            m.d.sync += [cnt[rows - 1][c].eq(ncnt[c]) for c in range(cols)]
        with m.Else():
            with m.If(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
            with m.If(changed):
                for r in range(rows):
                    m.d.sync += acc[r].eq(0)
                    m.d.sync += [cnt[r][c].eq(0) for c in range(cols)]
        return m
