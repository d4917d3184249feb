"""Bit-level twin of ``hw.spi_csr.SPICSRBridge``: SPI frames in, MISO bits and CSR writes out.

The frame format is defined here once (``hw/spi_csr.py`` imports it): one frame per ``cs_n`` low
period, MSB of every field first, 48 SCLK cycles::

    bit  47      46..40     39..32       31..0
         W       reserved   ADDR         DATA
         1=write must be 0  byte address write data (MOSI) / register value (MISO)

- Byte 0 (command): bit 7 = ``W``; bits 6..0 reserved. The frame writes only when the command
  byte is exactly ``0x80`` (:data:`WRITE_FLAG`), so a MOSI line stuck high never writes.
- Byte 1: ``ADDR``, the CSR byte address.
- Bytes 2..5: MOSI carries the write data (ignored for a read); MISO carries, for every frame,
  the value of register ``ADDR`` read before any write of this frame. MISO is 0 during the
  16 header bits and after the 48th bit.
- A frame of fewer than 48 bits writes nothing; bits after the 48th are ignored.

The twin knows nothing about SCLK or ``sync`` cycles: the RTL's timing rules (documented in
``hw/spi_csr.py``) only decide whether the RTL achieves what the twin computes. It models one
frame at a time against a register file given as a mapping (``{addr: value}``, missing addresses
read 0) or a callable ``addr -> value``; it returns the bus writes instead of applying them, so
the caller's register model decides what a write does (read-only registers ignore it, etc.).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

FRAME_BITS = 48
HEADER_BITS = 16
DATA_BITS = 32
WRITE_FLAG = 0x80
ADDR_MAX = 0xFF
DATA_MASK = 0xFFFF_FFFF


def spi_frame(write: bool, addr: int, data: int = 0) -> list[int]:
    """MOSI bits (MSB first, 48 of them) of one frame.

    Parameters
    ----------
    write:
        True for a write frame, False for a read frame.
    addr:
        CSR byte address, 0..255.
    data:
        32-bit write data (sent also for reads, where the slave ignores it), 0..2**32-1.
    """
    if isinstance(addr, bool) or not isinstance(addr, int) or not 0 <= addr <= ADDR_MAX:
        raise ValueError(f"spi_frame: addr = {addr!r}: out of range, allowed [0, 255]")
    if isinstance(data, bool) or not isinstance(data, int) or not 0 <= data <= DATA_MASK:
        raise ValueError(f"spi_frame: data = {data!r}: out of range, allowed [0, 2**32 - 1]")
    word = ((WRITE_FLAG if write else 0) << 40) | (addr << 32) | data
    return [(word >> (FRAME_BITS - 1 - i)) & 1 for i in range(FRAME_BITS)]


def frame_word(bits) -> int:
    """Integer value of a bit sequence sent or received MSB first."""
    word = 0
    for b in bits:
        word = (word << 1) | (int(b) & 1)
    return word


def miso_data(bits) -> int:
    """The register value carried by the 48 MISO bits of a frame (its last 32 bits)."""
    bits = list(bits)
    if len(bits) != FRAME_BITS:
        raise ValueError(f"miso_data: got {len(bits)} bits, a frame has {FRAME_BITS}")
    return frame_word(bits[HEADER_BITS:])


@dataclass(frozen=True)
class SPIFrameResult:
    """What one frame does: the MISO bit returned for every MOSI bit, and the bus writes.

    ``writes`` is a tuple of ``(addr, data)`` pairs in bus order (zero or one for this bridge).
    """

    miso: tuple[int, ...]
    writes: tuple[tuple[int, int], ...]


class SPICSRBridge:
    """Frame-level, bit-exact model of the SPI-to-CSR bridge.

    The bridge holds no state between frames that changes what a frame does (the RTL keeps the
    last address on the bus between frames, which only affects bus reads without side effects),
    so the twin is a pure function of the frame's MOSI bits and the register file.
    """

    def transfer(self, mosi, regs) -> SPIFrameResult:
        """Run one frame (one ``cs_n`` low period) with the MOSI bits ``mosi``.

        Parameters
        ----------
        mosi:
            Sequence of 0/1 MOSI bits, in the order sent (any length, 0 included).
        regs:
            Register file read by the frame: a mapping ``{addr: value}`` (missing addresses read
            0) or a callable ``addr -> value``. Read at most once, before this frame's write.

        Returns
        -------
        SPIFrameResult
            ``miso[i]`` is the bit the master samples at the ``i``-th rising SCLK edge.
        """
        bits = [int(b) for b in mosi]
        if any(b not in (0, 1) for b in bits):
            raise ValueError(f"SPICSRBridge.transfer: mosi = {mosi!r}: bits must be 0 or 1")
        if isinstance(regs, Mapping):
            read: Callable[[int], int] = lambda a: regs.get(a, 0)     # noqa: E731
        elif callable(regs):
            read = regs
        else:
            raise ValueError(f"SPICSRBridge.transfer: regs = {regs!r}: must be a mapping or a "
                             f"callable addr -> value")
        n = len(bits)
        miso = [0] * n
        if n > HEADER_BITS:
            # The register is read once the address byte is complete; its MSB goes out before
            # the 17th rising edge, one bit per edge after that, then zeros.
            addr = frame_word(bits[8:HEADER_BITS])
            value = int(read(addr))
            if not 0 <= value <= DATA_MASK:
                raise ValueError(f"SPICSRBridge.transfer: register 0x{addr:02x} = {value}: out of "
                                 f"range, allowed [0, 2**32 - 1]")
            for i in range(HEADER_BITS, min(n, FRAME_BITS)):
                miso[i] = (value >> (FRAME_BITS - 1 - i)) & 1
        writes = []
        if n >= FRAME_BITS and frame_word(bits[:8]) == WRITE_FLAG:
            writes.append((frame_word(bits[8:HEADER_BITS]),
                           frame_word(bits[HEADER_BITS:FRAME_BITS])))
        return SPIFrameResult(tuple(miso), tuple(writes))
