"""xoshiro128++ pseudo-random generator (Blackman & Vigna, ACM TOMS 2021), one step per strobe.

Twin: :class:`model.blocks.xoshiro.Xoshiro128pp` (vectorised over generators).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.blocks.xoshiro import state_to_int


class Xoshiro128pp(wiring.Component):
    """One xoshiro128++ generator: 128-bit state, 32-bit output.

    Parameters
    ----------
    init:
        Reset state as four 32-bit words ``(s0, s1, s2, s3)``; not all zero.

    Members
    -------
    step: In(1)
        Strobe: at the clock edge where it is high the state advances one step.
    load: In(1)
        Strobe: at the clock edge where it is high the state becomes ``load_state``. Has
        priority over ``step`` (a cycle with both loads and does not step).
    load_state: In(128)
        State to load, word ``s_i`` at bits ``[32*i, 32*i + 32)``. Loading all zero is the
        caller's mistake: the generator would then output 0 forever.
    state: Out(128)
        The current state (same packing), registered.
    out: Out(32)
        Output of the *next* step, ``rotl(s0 + s3, 7) + s0``, combinational from ``state``: it
        is the value the step taken at the coming edge returns. Latency: ``out`` reflects a
        step or load in the cycle after its strobe.

    No back-pressure: a strobe always acts.
    """

    def __init__(self, init=(1, 0, 0, 0)):
        try:
            words = tuple(int(w) for w in init)
        except (TypeError, ValueError):
            raise ValueError(f"Xoshiro128pp: init = {init!r}: must be four integers") from None
        if len(words) != 4 or any(not 0 <= w < 1 << 32 for w in words):
            raise ValueError(f"Xoshiro128pp: init = {init!r}: must be four integers in "
                             f"[0, 2**32 - 1]")
        if not any(words):
            raise ValueError("Xoshiro128pp: init = (0, 0, 0, 0): the all-zero state is "
                             "xoshiro's fixed point; allowed: any other state")
        self.init = words
        super().__init__({
            "step": In(1),
            "load": In(1),
            "load_state": In(128),
            "state": Out(128, init=state_to_int(words)),
            "out": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        s = [self.state[32 * i:32 * (i + 1)] for i in range(4)]

        def rotl(v, k):
            return v.rotate_left(k)

        # Output scrambler "++": two 32-bit adds in series. It is combinational here; a user
        # that needs it at speed registers it (the emulator does: it needs the output only on
        # a SETTLE cycle, never right after a step).
        m.d.comb += self.out.eq(rotl((s[0] + s[3])[:32], 7) + s[0])

        # Linear engine: XOR/shift network only, short paths. Written exactly as the reference
        # sequence of in-place updates, expanded into next-state expressions.
        s2a = s[2] ^ s[0]
        s3a = s[3] ^ s[1]
        s1n = s[1] ^ s2a
        s0n = s[0] ^ s3a
        s2n = s2a ^ (s[1] << 9)[:32]
        s3n = rotl(s3a, 11)
        with m.If(self.load):
            m.d.sync += self.state.eq(self.load_state)
        with m.Elif(self.step):
            m.d.sync += self.state.eq(Cat(s0n, s1n, s2n, s3n))
        return m
