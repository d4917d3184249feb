"""The port between the MTJ-array controller and an array (the emulator, a test bench, or silicon).

See ``docs/mtj-array.md`` for the timing. The signature is written from the controller's side:
``Out`` members are driven by the controller, ``In`` members by the array.
"""

from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from model.blocks.config import ArrayConfig


class ArrayPortSignature(wiring.Signature):
    """Controller-side signature of the array port for an :class:`ArrayConfig`."""

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        super().__init__({
            "row":   Out(cfg.row_width),
            "reset": Out(1),
            "pulse": Out(1),
            "amp":   Out(cfg.cols * cfg.code_width),
            "sense": Out(1),
            "bits":  In(cfg.cols),
            "ready": In(1),
        })

    def __eq__(self, other):
        return isinstance(other, ArrayPortSignature) and self.cfg == other.cfg

    def __repr__(self):
        return f"ArrayPortSignature({self.cfg!r})"


def raw_word_layout(cfg: ArrayConfig) -> data.StructLayout:
    """Payload of the controller's raw-bit stream: the row sensed, its ``cols`` bits, and the
    ``cols`` sticky calibration (code-saturation) alarms of that row as they stand after the
    word's capture (``alarm``, the last field)."""
    return data.StructLayout({"row": cfg.row_width, "bits": cfg.cols, "alarm": cfg.cols})
