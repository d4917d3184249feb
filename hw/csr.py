"""The control/status register bus of spindiff designs.

The register map itself is defined once in ``model/blocks/csr.py``; this module only gives the bus
its Amaranth signature. Seen from the register bank:

- ``addr`` (8 bits, byte address of a 32-bit register), ``w_stb`` (1), ``w_data`` (32): a write
  takes effect at the clock edge where ``w_stb`` is high;
- ``r_data`` (32): it shows the register addressed two cycles earlier (``CSR_READ_LATENCY``):
  the bank registers the address, then the read data. The extra cycle keeps the address decode and
  the wide read multiplexer in separate cycles (on the iCE40 they were the critical path together).
"""

CSR_READ_LATENCY = 2

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class CSRBusSignature(wiring.Signature):
    """Register-bank-side signature of the CSR bus (use ``In(CSRBusSignature())`` on the bank)."""

    def __init__(self):
        super().__init__({
            "addr":   Out(8),
            "w_stb":  Out(1),
            "w_data": Out(32),
            "r_data": In(32),
        })

    def __eq__(self, other):
        return isinstance(other, CSRBusSignature)

    def __repr__(self):
        return "CSRBusSignature()"
