"""Histogram of Gaussian-generator samples against the exact pmf and the N(0,1) density.

``plot_gauss_histogram(samples_raw, cfg, mode, path)`` writes one figure atomically
(``model.io.atomic_savefig``) with matplotlib's object API on the Agg canvas (no pyplot state).
"""

from __future__ import annotations

from math import erf, sqrt
from pathlib import Path

import numpy as np

from model.blocks.config import GaussConfig
from model.blocks.fixedpoint import MODE_CBD, check_mode, fixed_point
from model.blocks.gaussian import exact_pmf
from model.io import atomic_savefig

#: Above this many distinct raw values the histogram uses equal-width bins instead of one per value.
_MAX_VALUE_BINS = 200
_N_BINS = 121


def _bin_edges(values_raw: np.ndarray) -> np.ndarray:
    """Bin edges in raw units: one bin per support value, or equal-width bins over the support."""
    if values_raw.size <= _MAX_VALUE_BINS:
        mid = (values_raw[:-1] + values_raw[1:]) / 2.0
        lo = values_raw[0] - (mid[0] - values_raw[0] if mid.size else 0.5)
        hi = values_raw[-1] + (values_raw[-1] - mid[-1] if mid.size else 0.5)
        return np.concatenate([[lo], mid, [hi]])
    return np.linspace(values_raw[0] - 0.5, values_raw[-1] + 0.5, _N_BINS + 1)


def plot_gauss_histogram(samples_raw, cfg: GaussConfig, mode: int, path, *, title: str = ""):
    """Write a histogram (as a density over the sample value) of ``samples_raw`` to ``path``.

    Overlaid: the exact pmf of ``mode`` from ideal bits (``model.blocks.gaussian.exact_pmf``),
    aggregated into the same bins, and the N(0,1) density. A lower panel shows
    (observed - expected) / sqrt(expected) per bin. Returns the written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mode = check_mode("plot_gauss_histogram", mode)
    fp = fixed_point(cfg)
    s = np.asarray(samples_raw, dtype=np.int64).ravel()
    if s.size == 0:
        raise ValueError("plot_gauss_histogram: samples_raw is empty")
    vals, probs = exact_pmf(cfg, mode)
    edges = _bin_edges(vals)
    obs, _ = np.histogram(s, bins=edges)
    exp = np.zeros(edges.size - 1)
    np.add.at(exp, np.clip(np.searchsorted(edges, vals, side="right") - 1, 0, exp.size - 1),
              probs * s.size)
    width = np.diff(edges) * fp.lsb                     # bin widths in value units
    x_edges = edges * fp.lsb
    centers = (x_edges[:-1] + x_edges[1:]) / 2
    phi = np.array([0.5 * (1 + erf(x / sqrt(2))) for x in x_edges])
    normal = np.diff(phi) / width

    fig = Figure(figsize=(7.0, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax, axr = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    ax.stairs(obs / (s.size * width), x_edges, fill=True, alpha=0.45, label=f"samples (n={s.size})")
    ax.stairs(exp / (s.size * width), x_edges, color="C1", lw=1.2, label="exact pmf (ideal bits)")
    ax.plot(centers, normal, color="k", lw=0.8, ls="--", label="N(0,1)")
    ax.set_ylabel("density")
    name = "CBD, K = %d" % cfg.cbd_bits if mode == MODE_CBD else \
        "sum of 12, U = %d" % cfg.uniform_bits
    ax.set_title(title or f"Gaussian generator: {name}, Q{cfg.int_bits}.{cfg.frac_bits}")
    ax.legend(fontsize=8)
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = np.where(exp > 0, (obs - exp) / np.sqrt(exp), 0.0)
    axr.stairs(resid, x_edges, color="C0")
    axr.axhline(0, color="0.5", lw=0.6)
    axr.set_ylabel("(obs-exp)/√exp")
    axr.set_xlabel("sample value")
    axr.set_xlim(max(-6.5, x_edges[0]), min(6.5, x_edges[-1]))
    return atomic_savefig(fig, Path(path), dpi=110)
