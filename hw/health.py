"""Per-cell health monitor on the raw-bit stream (SP 800-90B §4.4 tests, lag-1 test, saturation).

The contract is ``docs/trng-readout.md`` section 1; the exact rules (window grid, clear, release,
CSR ordering) are in the docstring of the bit-exact twin, ``model.blocks.health``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.array_port import raw_word_layout
from model.blocks.config import ArrayConfig, HealthConfig
from model.blocks.health import apt_cutoff, corr_bounds, rct_cutoff


def health_word_layout(cfg: ArrayConfig) -> data.StructLayout:
    """Payload of the monitor's output: the row, its ``cols`` raw bits and their valid bits."""
    return data.StructLayout({"row": cfg.row_width, "bits": cfg.cols, "valid": cfg.cols})


#: Status of one cell as ``cell_status`` shows it.
CellStatusLayout = data.StructLayout({"rct": 1, "apt": 1, "corr": 1, "sat": 1,
                                      "force_mask": 1, "masked": 1})


class HealthMonitor(wiring.Component):
    """Per-cell repetition-count, adaptive-proportion, lag-1 and saturation tests on raw words;
    sticky status, masking, optional hold-back.

    Parameters
    ----------
    cfg : HealthConfig
        Test parameters and the array geometry (``cfg.array``).

    Attributes
    ----------
    i : In(stream.Signature(raw_word_layout(cfg.array)))
        Raw words ``{row, bits, alarm}``. Rows must arrive round-robin from row 0 after reset (the
        controller guarantees it); the monitor keeps its per-row state in that order and does not
        check ``row``. ``i.ready`` comes from registers only.
    o : Out(stream.Signature(health_word_layout(cfg.array)))
        ``{row, bits, valid}``, one per input word, same order (lagging D * rows words with
        hold-back D). ``valid``/``payload`` come from a 2-entry output buffer's registers.
    cell_sel : In(16)
        Cell for ``cell_status``, ``clear`` and ``force_mask_*``; index = row * cols + col. An index
        >= rows * cols reads 0 and writes nothing.
    clear : In(1)
        Strobe: clear the selected cell's ``rct, apt, corr, sat`` and restart its tests.
    force_mask_we, force_mask_wdata : In(1)
        Strobe and value: set or clear the selected cell's software mask.
    cell_status : Out(CellStatusLayout)
        ``{rct, apt, corr, sat, force_mask, masked}`` of the selected cell. **Latency 3**
        (``CELL_READ_LATENCY``): in cycle k+3 it shows the state the cell had in cycle k+1 (i.e.
        after the clock edge ending cycle k), for the ``cell_sel`` of cycle k. Registered.
    any_failed : Out(1)
        Some cell has ``rct | apt | corr | sat`` set. A register: in cycle k it shows the state of
        cycle k-1 (``ANY_FAILED_LATENCY`` = 1).
    masked_count : Out(range(cells + 1))
        Number of masked cells. A register at the end of an adder tree: in cycle k it shows the
        state of cycle k - ``masked_count_latency`` (3 for 9..64 cells, 2 for 2..8 cells).

    Timing
    ------
    A word accepted on ``i`` in cycle a is tested in cycle a+1 (the state of its row updates at
    the edge ending a+1); its output word (D = 0) is ``o.valid`` from cycle a+2. A strobe on
    ``clear``/``force_mask_we`` in cycle k takes effect at the edge ending cycle k+1: after the
    updates of the words accepted before cycle k, before those of words accepted in cycle k or
    later. Throughput with ``o.ready`` high: 2 words every 3 cycles (at least one every 2 cycles,
    at any ``rows``; the array delivers at most one every ``row_period_cycles`` >= 4).
    Back-pressure: a word is accepted only if the output
    buffer can take its result even if nothing drains, so ``o.ready`` low makes ``i.ready`` fall
    after at most two words; no word is lost or repeated and the content does not depend on
    back-pressure.

    Hold-back (D = ``cfg.holdback`` > 0): every tested word enters a delay line of D * rows words
    (a memory); it leaves in the cycle the word D sweeps later is tested, with ``valid`` = its
    valid after its own test AND NOT masked after that later word's test (that word is of the
    same row). The last D sweeps' words stay in the delay line until more words come.
    """

    CELL_READ_LATENCY = 3
    ANY_FAILED_LATENCY = 1

    def __init__(self, cfg: HealthConfig):
        if not isinstance(cfg, HealthConfig):
            self._MustUse__silence = True
            raise ValueError(f"HealthMonitor.cfg = {cfg!r}: must be a HealthConfig "
                             f"(model.blocks.config.HealthConfig)")
        self.cfg = cfg
        a = cfg.array
        self.c_rct = rct_cutoff(cfg)
        self.c_apt = apt_cutoff(cfg)
        self.corr_lo, self.corr_hi = corr_bounds(cfg)
        lat, n = 1, a.cells
        while n > 1:
            n = -(-n // 8)
            lat += 1
        self.masked_count_latency = lat
        super().__init__({
            "i": In(stream.Signature(raw_word_layout(a))),
            "o": Out(stream.Signature(health_word_layout(a))),
            "cell_sel": In(16),
            "clear": In(1),
            "force_mask_we": In(1),
            "force_mask_wdata": In(1),
            "cell_status": Out(CellStatusLayout),
            "any_failed": Out(1),
            "masked_count": Out(range(a.cells + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        a = cfg.array
        N, M, cells = a.rows, a.cols, a.cells
        W, n_corr, D = cfg.apt_window, cfg.corr_window, cfg.holdback
        C_RCT, C_APT, L, U = self.c_rct, self.c_apt, self.corr_lo, self.corr_hi

        # ---------------------------------------------------------------------------------------
        # Per-cell state in a rotating register file of rows, as in the controller: rows arrive
        # round-robin, so slot 0 always holds the row of the next word and the test logic reads
        # fixed registers (no row mux). At each test the updated head row goes to slot N-1.
        #   run : run length, 0 = new life (no previous sample; after reset or a clear)
        #   b   : APT count B, 0 = waiting for the next window (a cleared cell)
        #   t1  : lag-1 count T + 1, 0 = waiting for the next window
        # Encoding "waiting" as 0 costs no extra flip-flop per cell. The window positions are
        # global (one counter per test, advanced once per sweep), so a cleared cell rejoins the
        # grid at the next window boundary instead of keeping its own position counters
        # (2 x 11 flip-flops per cell saved).
        rw = C_RCT.bit_length()
        bw = max(W, C_APT - 1).bit_length()
        tw = (n_corr + 1).bit_length()
        fields = {"last": 1, "run": rw, "ref": 1, "b": bw, "t1": tw,
                  "rct": 1, "apt": 1, "corr": 1, "sat": 1, "fm": 1}
        cell_layout = data.StructLayout(fields)
        st = [[Signal(cell_layout, name=f"cell_s{s}_c{c}") for c in range(M)] for s in range(N)]

        head_row = Signal(a.row_width)          # row held in slot 0
        iw = max(1, (cells - 1).bit_length())   # bits of an in-range cell index
        head_base = Signal(iw)                  # head_row * cols
        head_base_after = Signal(iw, init=M % cells)

        apt_pos = Signal(range(W))
        apt_first = Signal(init=1)              # apt_pos == 0, kept as a register
        corr_pos = Signal(range(n_corr))
        corr_first = Signal(init=1)
        corr_last = Signal()                    # corr_pos == n_corr - 1 (n_corr >= 16)

        # ---------------------------------------------------------------------------------------
        # Input register and reservation. ``upd``: a word is tested in this cycle (the input
        # register is full). A word is accepted only if the 2-entry output buffer could take its
        # result and the one of the word already in the input register without draining, so the
        # test never waits and i.ready depends on registers only.
        in_full = Signal()
        in_w = Signal(raw_word_layout(a))
        level = Signal(range(3))
        upd = in_full
        m.d.comb += self.i.ready.eq(Mux(in_full, level == 0, level != 2))
        accept = self.i.valid & self.i.ready
        m.d.sync += in_full.eq(accept)
        with m.If(accept):
            m.d.sync += in_w.eq(self.i.payload)

        # ---------------------------------------------------------------------------------------
        # Cell selection, stage A (every cycle): flat slot p = (cell_sel - head_row*cols) mod cells
        # for the slot order of the *next* cycle (a test in this cycle rotates the slots at this
        # edge, hence head_base_after, a register). p serves the CSR strobes (stage B, next
        # cycle) and the status read-out.
        base_next = Signal(iw)
        m.d.comb += base_next.eq(Mux(upd, head_base_after, head_base))
        diff = Signal(signed(iw + 2))
        m.d.comb += diff.eq(self.cell_sel[:iw] - base_next)
        p_next = Signal(iw)
        m.d.comb += p_next.eq(Mux(diff < 0, diff + cells, diff))
        p = Signal(iw)
        in_range = Signal()
        clr_q = Signal()
        fm_we_q = Signal()
        fm_wd_q = Signal()
        m.d.sync += [
            p.eq(p_next),
            in_range.eq(self.cell_sel < cells),
            clr_q.eq(self.clear),
            fm_we_q.eq(self.force_mask_we),
            fm_wd_q.eq(self.force_mask_wdata),
        ]
        # The slot decode is registered too (one flip-flop per cell): a compare of p against
        # every slot in stage B put p's fan-out to all cells in front of the test logic and
        # was the critical path (43 MHz on iCE40 UP5K for 8x4 cells).
        sel_q = [[Signal(name=f"sel_s{s}_c{c}") for c in range(M)] for s in range(N)]
        for s in range(N):
            for c in range(M):
                m.d.sync += sel_q[s][c].eq((self.cell_sel < cells) & (p_next == s * M + c))

        # Stage B: each cell's "view" = its registers with this cycle's CSR action applied.
        # The test below and the rotation both read the views, so a strobe applies before the
        # test of this cycle's word, and whether or not the slots rotate at this edge.
        hit_clr = [[Signal(name=f"clr_s{s}_c{c}") for c in range(M)] for s in range(N)]
        view = [[Signal(cell_layout, name=f"view_s{s}_c{c}") for c in range(M)] for s in range(N)]
        for s in range(N):
            for c in range(M):
                sel = sel_q[s][c]
                x, v = st[s][c], view[s][c]
                m.d.comb += [hit_clr[s][c].eq(sel & clr_q), v.eq(x)]
                with m.If(sel & clr_q):
                    m.d.comb += [v.run.eq(0), v.b.eq(0), v.t1.eq(0),
                                 v.rct.eq(0), v.apt.eq(0), v.corr.eq(0), v.sat.eq(0)]
                with m.If(sel & fm_we_q):
                    m.d.comb += v.fm.eq(fm_wd_q)

        # ---------------------------------------------------------------------------------------
        # The tests, on the head row. Every compare is taken on the head's *registers* and then
        # qualified by the clear hit, so the CSR decode and the clear mux sit beside the compares,
        # not in front of them. Failure conditions (docs; model.blocks.health):
        #   RCT : same as previous, not a new life, run == C_RCT - 1      -> run becomes C_RCT
        #   APT : not first of window, active, b == C_APT - 1, match ref  -> B becomes C_APT
        #   lag1: not first of window, active, t1 == U + 1, transition   -> T becomes U + 1
        #         last of window, active, T + trans < L (t1 + trans <= L)
        new_head = []
        ok = Signal(M)                            # not masked after this word's test
        for c in range(M):
            x, v, clr = st[0][c], view[0][c], hit_clr[0][c]
            bit, al = in_w.bits[c], in_w.alarm[c]
            nx = Signal(cell_layout, name=f"new_c{c}")
            new_life = (x.run == 0) | clr
            same = bit == x.last
            trans = ~new_life & ~same
            run_c1 = (x.run == C_RCT - 1) & ~clr
            run_sat = x.run == C_RCT
            b_act = (x.b != 0) & ~clr
            b_c1 = (x.b == C_APT - 1) & ~clr
            match = bit == x.ref
            t_act = (x.t1 != 0) & ~clr
            t_u = (x.t1 == U + 1) & ~clr
            t_lo = (x.t1 < L) | ((x.t1 == L) & ~trans)
            m.d.comb += [
                nx.last.eq(bit),
                nx.run.eq(Mux(new_life | ~same, 1, Mux(run_sat, C_RCT, x.run + 1))),
                nx.rct.eq(v.rct | (same & run_c1)),
                nx.ref.eq(Mux(apt_first, bit, x.ref)),
                nx.b.eq(Mux(apt_first, 1, Mux(b_act & match, x.b + 1, v.b))),
                nx.apt.eq(v.apt | (~apt_first & b_c1 & match)),
                nx.t1.eq(Mux(corr_first, 1 + trans, Mux(t_act & trans, x.t1 + 1, v.t1))),
                nx.corr.eq(v.corr | (~corr_first & t_u & trans) | (corr_last & t_act & t_lo)),
                nx.sat.eq(v.sat | al),
                nx.fm.eq(v.fm),
                ok[c].eq(~(nx.rct | nx.apt | nx.corr | nx.sat | nx.fm)),
            ]
            new_head.append(nx)

        with m.If(upd):
            for s in range(N - 1):
                for c in range(M):
                    m.d.sync += st[s][c].eq(view[s + 1][c])
            for c in range(M):
                m.d.sync += st[N - 1][c].eq(new_head[c])
            m.d.sync += [
                head_row.eq(Mux(head_row == N - 1, 0, head_row + 1)),
                head_base.eq(head_base_after),
                head_base_after.eq(Mux(head_base_after == cells - M, 0, head_base_after + M)),
            ]
            with m.If(head_row == N - 1):        # end of a sweep: advance the window grid
                with m.If(apt_pos == W - 1):
                    m.d.sync += [apt_pos.eq(0), apt_first.eq(1)]
                with m.Else():
                    m.d.sync += [apt_pos.eq(apt_pos + 1), apt_first.eq(0)]
                with m.If(corr_pos == n_corr - 1):
                    m.d.sync += [corr_pos.eq(0), corr_first.eq(1), corr_last.eq(0)]
                with m.Else():
                    m.d.sync += [corr_pos.eq(corr_pos + 1), corr_first.eq(0),
                                 corr_last.eq(corr_pos == n_corr - 2)]
        with m.Else():
            for s in range(N):
                for c in range(M):
                    m.d.sync += st[s][c].eq(view[s][c])

        # ---------------------------------------------------------------------------------------
        # Release: the word that leaves in a test cycle, and whether one leaves.
        out_w = Signal(health_word_layout(a))
        leaves = Signal()
        if D == 0:
            m.d.comb += [out_w.row.eq(in_w.row), out_w.bits.eq(in_w.bits), out_w.valid.eq(ok),
                         leaves.eq(upd)]
        else:
            # Delay line of K = D * rows words: the word written K tests ago is read out in the
            # cycle it is overwritten. The read is synchronous (block RAM), so its address is the
            # write pointer as it will be in the next cycle; transparent, so that with K = 1 the
            # word written in this cycle is the one read.
            K = D * N
            mem = Memory(shape=health_word_layout(a), depth=K, init=[])
            m.submodules.delay = mem
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=(wp,))
            ptr = Signal(range(K))
            ptr_inc = Signal(range(K), init=1 % K)
            filled = Signal()
            m.d.comb += [
                wp.addr.eq(ptr), wp.en.eq(upd),
                wp.data.row.eq(in_w.row), wp.data.bits.eq(in_w.bits), wp.data.valid.eq(ok),
                rp.addr.eq(Mux(upd, ptr_inc, ptr)), rp.en.eq(1),
                out_w.row.eq(rp.data.row), out_w.bits.eq(rp.data.bits),
                out_w.valid.eq(rp.data.valid & ok),
                leaves.eq(upd & filled),
            ]
            with m.If(upd):
                m.d.sync += [ptr.eq(ptr_inc), ptr_inc.eq(Mux(ptr_inc == K - 1, 0, ptr_inc + 1))]
                with m.If(ptr == K - 1):
                    m.d.sync += filled.eq(1)

        # Output buffer: 2 entries, registered output (buf0).
        buf0 = Signal(health_word_layout(a))
        buf1 = Signal(health_word_layout(a))
        pop = self.o.valid & self.o.ready
        m.d.comb += [self.o.valid.eq(level != 0), self.o.payload.eq(buf0)]
        with m.Switch(Cat(leaves, pop)):
            with m.Case(0b01):
                with m.If(level == 0):
                    m.d.sync += buf0.eq(out_w)
                with m.Else():
                    m.d.sync += buf1.eq(out_w)
                m.d.sync += level.eq(level + 1)
            with m.Case(0b10):
                m.d.sync += [buf0.eq(buf1), level.eq(level - 1)]
            with m.Case(0b11):
                with m.If(level == 1):
                    m.d.sync += buf0.eq(out_w)
                with m.Else():
                    m.d.sync += [buf0.eq(buf1), buf1.eq(out_w)]

        # ---------------------------------------------------------------------------------------
        # Status read-out, latency 3 (as the controller's cell inspection): stage A gave p (slot
        # order of the next cycle); B1: one G:1 mux per group of G = 2**k slots by the low bits
        # of p, all reading the same cycle's registers; B2: the groups by the high bits of p.
        def status_of(x):
            return Cat(x.rct, x.apt, x.corr, x.sat, x.fm, x.rct | x.apt | x.corr | x.sat | x.fm)
        flat = [status_of(st[s][c]) for s in range(N) for c in range(M)]
        k = (iw + 1) // 2
        gsize = 1 << k
        groups = [flat[g:g + gsize] for g in range(0, cells, gsize)]
        grp = [Signal(6, name=f"insp_g{g}") for g in range(len(groups))]
        for g, members in enumerate(groups):
            m.d.sync += grp[g].eq(Array(members)[p[:k]] if len(members) > 1 else members[0])
        p_hi = Signal(max(1, iw - k))
        in_range_d = Signal()
        m.d.sync += [p_hi.eq(p[k:]), in_range_d.eq(in_range)]
        sel = Signal(6)
        m.d.comb += sel.eq(Array(grp)[p_hi] if len(grp) > 1 else grp[0])
        m.d.sync += self.cell_status.as_value().eq(Mux(in_range_d, sel, 0))

        # Summary: any_failed (1 register level), masked_count (register, then an adder tree
        # of 8-input sums with a register per level).
        failed = Cat(x.rct | x.apt | x.corr | x.sat for sl in st for x in sl)
        m.d.sync += self.any_failed.eq(failed.any())
        level_vals = []
        for s in range(N):
            for c in range(M):
                mq = Signal(name=f"masked_q_s{s}_c{c}")
                x = st[s][c]
                m.d.sync += mq.eq(x.rct | x.apt | x.corr | x.sat | x.fm)
                level_vals.append(mq)
        depth = 0
        while len(level_vals) > 1:
            nxt = []
            for g in range(0, len(level_vals), 8):
                part = level_vals[g:g + 8]
                sm = Signal(range(min(cells, 8 ** (depth + 1)) + 1),
                            name=f"mcount_l{depth}_g{g // 8}")
                total = part[0]
                for v in part[1:]:
                    total = total + v
                m.d.sync += sm.eq(total)
                nxt.append(sm)
            level_vals = nxt
            depth += 1
        m.d.comb += self.masked_count.eq(level_vals[0])
        assert 1 + depth == self.masked_count_latency

        return m
