"""Constant tables of the energy model (``docs/energy.md`` §2).

Every entry is a :class:`Constant` with its unit in its key and a source (paper, survey,
datasheet) or a status saying it is derived, assumed or fitted. Nothing is computed here beyond
unit-consistent derivations that the ``source`` field spells out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STATUSES = ("sourced", "derived", "assumed", "fitted")


@dataclass(frozen=True)
class Constant:
    """One constant of the energy model.

    Attributes
    ----------
    value:
        The number, in ``unit``.
    unit:
        Unit string (``"pJ"``, ``"um^2"``, ``"F^2"``, ``"mW"``, ...); the table key ends with it.
    source:
        Citation (authors, venue, year, table or figure) or the derivation for a derived value.
    status:
        ``"sourced"``, ``"derived"``, ``"assumed"`` or ``"fitted"`` (chosen to reproduce a paper's
        figure; the note says which).
    note:
        Free text (e.g. "quoted, not measured").
    """

    value: float
    unit: str
    source: str
    status: str
    note: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"Constant.status = {self.status!r}: allowed {STATUSES}")
        if not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise ValueError(f"Constant.value = {self.value!r}: must be a finite number")
        if not self.unit:
            raise ValueError("Constant.unit = '': a unit is required")
        if not self.source:
            raise ValueError("Constant.source = '': a source or derivation is required")
