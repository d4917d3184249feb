"""PyTorch-facing layers on crossbar tiles (system layer; ``docs/crossbar.md`` §5).

``convert`` puts a model's ``nn.Linear`` layers on crossbar tiles, ``calibrate`` picks the
power-of-two scales, ``set_mode`` switches float / digital (bit-exact with the layer-engine twin) /
analog (the device model), ``export_program`` writes a calibrated chain as an engine program.
"""

from model.nn.export import EngineProgram, export_program
from model.nn.layers import (LUT_ACTIVATIONS, CrossbarLinear, calibrate, convert, crossbar_layers,
                             set_mode, set_spec)
from model.nn.spec import MODES, CrossbarSpec, LayerScales

__all__ = ["CrossbarLinear", "CrossbarSpec", "EngineProgram", "LUT_ACTIVATIONS", "LayerScales",
           "MODES", "calibrate", "convert", "crossbar_layers", "export_program", "set_mode",
           "set_spec"]
