"""Validation of the random bit streams against standard statistical suites.

* :mod:`model.validate.sp800_22` -- the 15 tests of NIST SP 800-22 Rev. 1a, written in the
  project and checked against the worked examples of the standard (``docs/validation.md``).

What these suites can show is limited: the device model and the emulator draw on pseudo-random
generators, so a passing suite says something about the emulator's generator and about the
calibration and conditioning of a *modelled* source, not about a physical junction.
"""
