"""Gaussian noise sources for the samplers: software, the TRNG twin, the MTJ device model, an LFSR.

Every source draws from an explicit seed and gives ≈N(0, 1) float32 tensors through
:meth:`NoiseSource.normal`; same name, seed and options → the same numbers, call split
independent (a source is one stream: ``normal((2, 3))`` then ``normal((4,))`` gives the same
values as ``normal((10,))``).

Sources and their exact distributions
-------------------------------------
``software``
    ``torch.randn`` from a ``torch.Generator`` seeded with ``seed``: float32 N(0, 1) (the
    baseline). Not a CBD source: no ``codes``.
``trng``
    The Gaussian integers of the TRNG readout chain's compiled twin
    (:class:`model.blocks.fastpath.NoisePath`: MTJ-array emulator with the device model's
    threshold table and per-cell offsets → calibration → health tests → conditioner → packer →
    Gaussian generator) — exactly the integers the RTL TRNG top emits from reset with the same
    settings (``model/blocks/fastpath.py`` states the conditions) — times ``2**-frac_bits``.
    With the default :class:`~model.blocks.config.GaussConfig` (CBD, K = 32 bits per sample,
    Q4.11): ``raw = ((2·popcount − 32)·S) >> 16`` with ``S = round(2**27/√32) = 23170475``, so
    the value takes the 33 levels ≈ ``(2·pc − 32)/√32`` (spacing ``2/√32 ≈ 0.354``, tails cut at
    ``±√32 ≈ ±5.66``), popcount ~ Binomial(32, ½) for ideal bits: mean ``−2.1e−4`` (the floor
    of the shift), variance ``1.00017`` (``model.blocks.gaussian.exact_moments`` gives both
    exactly; ``exact_pmf`` the pmf). :meth:`CBDNoise.codes` gives the raw integers.
    **The conditioned bits are not ideal**: with the default XOR fold of two raw bits,
    P(1) = ½ − 2δ² ≤ ½ for a raw bias δ of either sign, so the bits lean to 0. The generator's
    default *balanced* popcount (``GaussConfig.cbd_balanced``: bits 1, 3, 5, … inverted before
    the popcount) cancels that common lean; the residual mean is (P_even − P_odd)·√32 (measured
    +0.0017 / +0.0010 / −0.0006 for seeds 1 / 3 / 4; it was −0.015 to −0.017 with
    ``cbd_balanced=False``, and a reverse diffusion adds the mean at every step).
    The ``mtj`` source below takes the same balanced popcount (bits 1, 3, 5, … of each group of
    K successive bits inverted), so a bias common to its cells cancels in the mean as well;
    ``lfsr`` takes the plain popcount (its bits have no lean: the distribution is the same).
``mtj``
    The device-physics model (:class:`model.devices.mtj.MTJArrayDevice`: per-cell variation of
    Δ0, ξ, h, R_P, drift of the effective voltage offset) pulsed at one DAC code per cell; each
    trial (reset + pulse + sense) is 1 with the cell's ``sensed_prob`` (reset and read errors
    included), trials independent; stream order sweep → row → column (the packer's); optional
    XOR fold of ``fold`` successive trials of a cell; K = 32 successive bits → the same CBD
    mapping as ``trng`` (:func:`model.blocks.fixedpoint.cbd_raw`), balanced popcount as the
    generator's. The popcount of a sample is Poisson-binomial over its K cells' probabilities
    (:meth:`MTJNoise.bit_probs`), so cell biases δ shift the mean by ≈ ``2·Σ±δ/√K`` (sign − for
    the inverted positions) and the variance by ``−4·Σδ²/K``: close to, not
    exactly, N(0, 1). ``calibrate=True`` sets each cell's code to the one whose modelled
    probability is nearest ½ (an open-loop calibration at time 0; the 8-bit DAC leaves ≲0.01
    bias); ``False`` gives every cell the nominal device's V50 code (variation shows as bias).
    ``drift=True`` advances the device's drift by the array's operating time (rows × the
    device-limited row period per sweep) before every chunk of ``chunk_sweeps`` sweeps.
``lfsr``
    A 32-bit Galois LFSR (right shift, toggle mask ``0x80200003``, i.e. the primitive polynomial
    x^32 + x^22 + x^2 + x + 1, period 2^32 − 1), one output bit (the LSB) per step; K = 32
    successive output bits → the same CBD mapping. Over a full period every non-zero 32-bit
    window occurs exactly once, so the popcount is Binomial(32, ½) up to the one missing
    all-zero window: the same pmf as ideal ``trng`` bits. Successive samples are linear functions
    of each other (an LFSR's nature): cheap, not cryptographic.

All CBD sources share :meth:`CBDNoise.exact_pmf` (the ideal-bit pmf of the values).

Speed (``measure_rates``, one thread each, on the shared 2-core machine under load 5–12, so
lower bounds): software 2.7e7–1e8 numbers/s, lfsr 1.8e7–2.7e7 /s, mtj 1e6–4e6 /s, trng
1.8e5–2.6e5 /s (0.69e6 /s for the bare ``NoisePath.gauss_samples`` at lower load, the bound: 64
raw bits per sample at ≈36e6 raw bits/s). ``prefetch`` (default on) generates the next TRNG
chunk in a thread while the sampler works; ``lanes=L`` runs L TRNG instances in parallel
threads (≈L× on L idle cores; no gain on a saturated machine); ``cache_dir`` keeps the stream on
disk in chunks, so a later run with the same seed reads it back at ≈1.4e7 /s instead of
regenerating. 10^7 TRNG numbers (2000 images × 64 pixels × 80 steps) take about 15–50 s to generate once.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
import time
from pathlib import Path

import numpy as np
import torch

from model.blocks.config import ArrayConfig, EmulatorConfig, GaussConfig
from model.blocks.fastpath import NoisePath, numba
from model.blocks.fixedpoint import MODE_CBD, cbd_table, fixed_point
from model.blocks.gaussian import exact_moments, exact_pmf
from model.io import atomic_write_bytes, atomic_write_text

__all__ = ["NOISE_SOURCES", "NoiseSource", "SoftwareNoise", "CBDNoise", "TRNGNoise", "MTJNoise",
           "LFSRNoise", "make_noise", "measure_rates", "LFSR_TAPS", "lane_seed", "lfsr_bits"]

NOISE_SOURCES = ("software", "trng", "mtj", "lfsr")

#: Toggle mask of the default 32-bit Galois LFSR: x^32 + x^22 + x^2 + x + 1 (primitive; the
#: test proves it by the order of x modulo the polynomial).
LFSR_TAPS = 0x80200003

_MAX_SEED = 2**32 - 1


def _check_int(owner, name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not lo <= int(value) <= hi:
        raise ValueError(f"{owner}: {name} = {value!r}: must be an integer in [{lo}, {hi}]")
    return int(value)


def _check_shape(owner, shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"{owner}: shape = {shape!r}: must be a tuple of non-negative "
                         f"integers") from None
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"{owner}: shape = {shape!r}: must be a tuple of non-negative "
                             f"integers")
    return tuple(int(s) for s in shape)


# ------------------------------------------------------------------------------------------------
class NoiseSource:
    """A seeded stream of ≈N(0, 1) numbers.

    Attributes
    ----------
    name : str
        One of :data:`NOISE_SOURCES`.
    seed : int
    drawn : int
        Numbers drawn so far.
    """

    name = "?"

    def __init__(self, seed: int):
        self.seed = _check_int(f"make_noise({self.name!r})", "seed", seed, 0, _MAX_SEED)
        self.drawn = 0

    def normal(self, shape) -> torch.Tensor:
        """The next ``prod(shape)`` numbers as a float32 tensor of ``shape`` (CPU)."""
        shape = _check_shape(f"{type(self).__name__}.normal", shape)
        n = int(np.prod(shape, dtype=np.int64))
        out = self._normal(n).reshape(shape)
        self.drawn += n
        return out

    def normal_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.normal(tuple(x.shape))

    def _normal(self, n: int) -> torch.Tensor:          # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        """JSON-able description of the source and its settings (for reports)."""
        return {"name": self.name, "seed": self.seed}

    def __repr__(self):
        return f"{type(self).__name__}(seed={self.seed})"


class SoftwareNoise(NoiseSource):
    """``torch.randn`` from a seeded ``torch.Generator`` (float32, the baseline)."""

    name = "software"

    #: torch.randn's output depends on the request size (a vectorised path for long requests),
    #: so the stream is drawn in blocks of this size and served from a buffer: call split
    #: independent.
    block = 1 << 16

    def __init__(self, seed: int):
        super().__init__(seed)
        self._gen = torch.Generator().manual_seed(self.seed)
        self._buf = torch.zeros(0)

    def _normal(self, n: int) -> torch.Tensor:
        if self._buf.numel() < n:
            k = -(-(n - self._buf.numel()) // self.block)
            new = torch.randn(k * self.block, generator=self._gen, dtype=torch.float32)
            self._buf = torch.cat([self._buf, new]) if self._buf.numel() else new
        out, self._buf = self._buf[:n], self._buf[n:]
        return out.clone()

    def describe(self) -> dict:
        return {**super().describe(), "distribution": "float32 N(0, 1) (torch.randn)"}


class CBDNoise(NoiseSource):
    """Base of the sources whose numbers are Gaussian-generator integers (CBD or sum-of-12).

    Parameters
    ----------
    seed : int
    gauss_cfg : GaussConfig
        Sample format and K (default ``GaussConfig()``: K = 32, Q4.11).
    """

    def __init__(self, seed: int, gauss_cfg: GaussConfig | None = None):
        super().__init__(seed)
        gauss_cfg = GaussConfig() if gauss_cfg is None else gauss_cfg
        if not isinstance(gauss_cfg, GaussConfig):
            raise ValueError(f"make_noise({self.name!r}): gauss_cfg = {gauss_cfg!r}: must be a "
                             f"model.blocks.config.GaussConfig")
        self.gauss_cfg = gauss_cfg
        self.fp = fixed_point(gauss_cfg)
        self.mode = MODE_CBD
        self._table = np.asarray(cbd_table(gauss_cfg), dtype=np.int64)   # popcount -> raw
        self._ftable = (self._table * self.fp.lsb).astype(np.float32)    # popcount -> value

    def codes(self, n: int) -> np.ndarray:
        """The next ``n`` raw integers (int64, value ``raw / 2**frac_bits``)."""
        n = _check_int(f"{type(self).__name__}.codes", "n", n, 0, 2**40)
        out = self._codes(n)
        self.drawn += n
        return out

    def _codes(self, n: int) -> np.ndarray:
        return self._table[self._popcounts(n)]

    def _popcounts(self, n: int) -> np.ndarray:         # pragma: no cover - abstract
        """The next ``n`` popcounts (CBD sources built on bits)."""
        raise NotImplementedError

    def _normal(self, n: int) -> torch.Tensor:
        # Values raw * 2**-frac_bits: exact in float32 for samples of up to 24 bits (the default
        # is 16). Bit-built sources look the value up by popcount.
        return torch.from_numpy(self._ftable[self._popcounts(n)])

    def exact_pmf(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, probs)``: the exact pmf of the *values* from ideal (independent, unbiased)
        bits (``model.blocks.gaussian.exact_pmf`` scaled by ``2**-frac_bits``)."""
        vals, probs = exact_pmf(self.gauss_cfg, self.mode)
        return vals * self.fp.lsb, probs

    def exact_moments(self) -> tuple[float, float]:
        """Mean and variance of the values from ideal bits (exact, rounded once to float)."""
        m, v = exact_moments(self.gauss_cfg, self.mode)
        return float(m), float(v)

    def describe(self) -> dict:
        g = self.gauss_cfg
        mean, var = self.exact_moments()
        mode = "CBD" if self.mode == MODE_CBD else "sum of 12 uniforms"
        return {**super().describe(), "mapping": mode, "cbd_bits": g.cbd_bits,
                "format": f"Q{g.int_bits}.{g.frac_bits}", "ideal_mean": mean, "ideal_var": var}


# ------------------------------------------------------------------------------------------------
_TRNG_SOURCES = ("fastpath.py", "emulator.py", "mtj_array.py", "health.py", "conditioner.py",
                 "gaussian.py", "fixedpoint.py", "config.py", "xoshiro.py")


def _source_digest() -> str:
    """Hash of the twin sources a cached TRNG stream depends on (a change invalidates it)."""
    base = Path(__file__).resolve().parents[1] / "blocks"
    h = hashlib.sha256()
    for name in _TRNG_SOURCES:
        p = base / name
        h.update(name.encode())
        h.update(p.read_bytes() if p.is_file() else b"-")
    return h.hexdigest()


class _TRNGLane:
    """One TRNG instance: a NoisePath, its chunk counter and its optional disk cache."""

    def __init__(self, path_args: dict, chunk_samples: int, cache_dir, dtype, meta: dict):
        self.args, self.chunk_samples, self.dtype, self.meta = path_args, chunk_samples, dtype, meta
        self.path = NoisePath(**path_args)
        self.chunks = 0                      # chunks the in-memory path has produced
        self.cache_path = None
        if cache_dir is not None:
            p = self.path
            key = repr((p.emu_cfg, p.health_cfg, p.cond_cfg, p.gauss_cfg, p.seed, p.cond_mode,
                        p.cond_k, p.gauss_mode, p.cal_enable, chunk_samples, _source_digest()))
            digest = hashlib.sha256(key.encode()).hexdigest()[:20]
            self.cache_path = Path(cache_dir) / f"trng-{digest}"

    def _chunk_file(self, i: int) -> Path:
        return self.cache_path / f"chunk-{i:06d}.npy"

    def _state_files(self) -> list[tuple[int, Path]]:
        out = []
        for f in self.cache_path.glob("state-*.pkl"):
            try:
                out.append((int(f.stem.split("-")[1]), f))
            except (IndexError, ValueError):
                continue
        return sorted(out)

    def _load(self, i: int) -> np.ndarray | None:
        if self.cache_path is None:
            return None
        f = self._chunk_file(i)
        if not f.is_file():
            return None
        try:
            a = np.load(f, allow_pickle=False)
        except (OSError, ValueError):
            return None                      # unreadable: regenerate (and overwrite) it
        if a.shape != (self.chunk_samples,):
            return None
        return a.astype(np.int64)

    def _generate(self, i: int) -> np.ndarray:
        if self.chunks != i and self.cache_path is not None:
            # Resume from the latest saved state at or before chunk i, if it is ahead of ours.
            for j, f in reversed(self._state_files()):
                if self.chunks < j <= i:
                    try:
                        self.path = pickle.loads(f.read_bytes())
                        self.chunks = j
                    except Exception:          # noqa: BLE001 - a damaged cache: regenerate
                        continue
                    break
        if self.chunks > i:                  # behind us: start the stream again
            self.path = NoisePath(**self.args)
            self.chunks = 0
        while self.chunks < i:               # skip forward (chunks already cached elsewhere)
            self.path.gauss_samples(self.chunk_samples)
            self.chunks += 1
        a = self.path.gauss_samples(self.chunk_samples)
        self.chunks += 1
        if self.cache_path is not None:
            self._save(i, a)
        return a

    def _save(self, i: int, a: np.ndarray) -> None:
        import io
        buf = io.BytesIO()
        np.save(buf, a.astype(self.dtype), allow_pickle=False)
        atomic_write_bytes(self._chunk_file(i), buf.getvalue())
        atomic_write_bytes(self.cache_path / f"state-{i + 1:06d}.pkl",
                           pickle.dumps(self.path, protocol=pickle.HIGHEST_PROTOCOL))
        for j, f in self._state_files():
            if j < i + 1:
                f.unlink(missing_ok=True)
        meta = self.cache_path / "meta.json"
        if not meta.is_file():
            atomic_write_text(meta, json.dumps({**self.meta, "lane_seed": self.path.seed,
                                                "chunk_samples": self.chunk_samples},
                                               indent=2) + "\n")

    def chunk(self, i: int) -> np.ndarray:
        """The lane's chunk ``i`` (from the cache, or generated)."""
        a = self._load(i)
        return self._generate(i) if a is None else a


def lane_seed(seed: int, lane: int) -> int:
    """Emulator seed of TRNG lane ``lane``: ``seed`` itself for lane 0, else a 32-bit value
    derived from (seed, lane) by numpy's SeedSequence."""
    if lane == 0:
        return seed
    return int(np.random.SeedSequence([seed, lane, 0x7A9E]).generate_state(1, np.uint32)[0])


class TRNGNoise(CBDNoise):
    """The TRNG readout chain's Gaussian integers (:class:`model.blocks.fastpath.NoisePath`).

    Parameters
    ----------
    seed : int
        The emulator seed (``SEED`` register), [0, 2**32 − 1].
    device_seed : int
        Seed of the device-variation draw behind the emulator's per-cell offsets (which chip);
        default 1, the chip ``make sim`` uses. Ignored when ``emu_cfg`` is given.
    array : ArrayConfig, optional
        Array geometry (default ``ArrayConfig()``, 8 × 8).
    emu_cfg : EmulatorConfig, optional
        Full emulator configuration (overrides ``array`` / ``device_seed``).
    health_cfg, cond_cfg, gauss_cfg :
        As :class:`NoisePath` (defaults there).
    cond_mode, cond_k, gauss_mode, cal_enable :
        The ``COND``, ``GAUSS.mode`` and ``CTRL.cal_enable`` settings (default XOR fold k = 2,
        CBD, calibration on: the registers' reset values).
    chunk_samples : int
        Samples generated per compiled call (and per cache file).
    cache_dir : str or Path, optional
        Keep the stream on disk: chunk files and the generator's state after the last one, in a
        folder per lane named by a hash of every setting and of the twin sources. A later source
        with the same settings reads the chunks back (and continues from the saved state).
    prefetch : bool
        Generate the next chunks in background threads while the current one is used (default
        True; the stream is the same either way). The compiled kernel releases the GIL.
    lanes : int
        Number of TRNG instances (1 … 16, default 1). With 1 the stream is exactly one RTL
        TRNG's. With L > 1, L instances of the same chip configuration with emulator seeds
        :func:`lane_seed` (lane 0: ``seed``) are read chunk by chunk in turn (chunk g from lane
        g mod L): every number is exactly what one of L RTL TRNGs emits, and with ``prefetch``
        the lanes run in parallel threads (a speed option: L parallel generators).
    """

    name = "trng"

    def __init__(self, seed: int, *, device_seed: int = 1, array: ArrayConfig | None = None,
                 emu_cfg: EmulatorConfig | None = None, health_cfg=None, cond_cfg=None,
                 gauss_cfg: GaussConfig | None = None, cond_mode: int = 1, cond_k: int = 2,
                 gauss_mode: int = MODE_CBD, cal_enable: bool = True,
                 chunk_samples: int = 1 << 20, cache_dir=None, prefetch: bool = True,
                 lanes: int = 1):
        super().__init__(seed, gauss_cfg)
        o = "make_noise('trng')"
        if not isinstance(prefetch, bool):
            raise ValueError(f"{o}: prefetch = {prefetch!r}: must be True or False")
        self.prefetch = prefetch
        self.lanes = _check_int(o, "lanes", lanes, 1, 16)
        if emu_cfg is None:
            from model.devices.mtj import default_emulator_config
            array = ArrayConfig() if array is None else array
            if not isinstance(array, ArrayConfig):
                raise ValueError(f"{o}: array = {array!r}: must be an ArrayConfig")
            self.device_seed = _check_int(o, "device_seed", device_seed, 0, _MAX_SEED)
            table, offsets = default_emulator_config(array, seed=self.device_seed)
            emu_cfg = EmulatorConfig(array=array, table=tuple(table), offsets=tuple(offsets),
                                     seed=self.seed)
        else:
            self.device_seed = None
        self.chunk_samples = _check_int(o, "chunk_samples", chunk_samples, 1, 1 << 26)
        dtype = np.int16 if self.fp.sample_bits <= 16 else np.int32
        base = dict(emu_cfg=emu_cfg, health_cfg=health_cfg, cond_cfg=cond_cfg,
                    gauss_cfg=self.gauss_cfg, cond_mode=cond_mode, cond_k=cond_k,
                    gauss_mode=gauss_mode, cal_enable=cal_enable)
        # NoisePath validates every setting (with its own messages).
        self._lane_list = []
        for i in range(self.lanes):
            args = {**base, "seed": lane_seed(self.seed, i)}
            self._lane_list.append(_TRNGLane(args, self.chunk_samples, cache_dir, dtype,
                                             {"name": self.name, "seed": self.seed,
                                              "lane": i, "device_seed": self.device_seed}))
        self._path_args = self._lane_list[0].args
        self.mode = self._lane_list[0].path.gauss_mode
        self._chunk = np.zeros(0, dtype=np.int64)
        self._pos = 0                        # position inside the current chunk
        self._next_chunk = 0                 # global index of the next chunk
        self._pending: dict = {}             # global chunk index -> (thread, slot)

    @property
    def path(self) -> NoisePath:
        """Lane 0's in-memory twin (its state reflects the chunks generated in this process)."""
        return self._lane_list[0].path

    @property
    def cache_path(self) -> Path | None:
        """Lane 0's cache folder (None without ``cache_dir``)."""
        return self._lane_list[0].cache_path

    # -- chunks ------------------------------------------------------------------------------
    def _lane_chunk(self, g: int) -> np.ndarray:
        return self._lane_list[g % self.lanes].chunk(g // self.lanes)

    def _worker(self, g: int, slot: dict) -> None:
        try:
            slot["chunk"] = self._lane_chunk(g)
        except BaseException as e:           # noqa: BLE001 - handed to the consumer
            slot["error"] = e

    def _take_chunk(self, g: int) -> np.ndarray:
        job = self._pending.pop(g, None)
        if job is None:
            a = self._lane_chunk(g)
        else:
            thread, slot = job
            thread.join()
            if "error" in slot:
                raise slot["error"]
            a = slot["chunk"]
        if self.prefetch:
            # Keep the next `lanes` chunks in flight: consecutive chunks belong to different
            # lanes, so no lane is ever worked on by two threads.
            for h in range(g + 1, g + 1 + self.lanes):
                if h not in self._pending:
                    slot: dict = {}
                    t = threading.Thread(target=self._worker, args=(h, slot), daemon=True)
                    self._pending[h] = (t, slot)
                    t.start()
        return a

    def _normal(self, n: int) -> torch.Tensor:
        return torch.from_numpy((self._codes(n) * self.fp.lsb).astype(np.float32))

    def _codes(self, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.int64)
        k = 0
        while k < n:
            if self._pos >= self._chunk.size:
                self._chunk = self._take_chunk(self._next_chunk)
                self._pos = 0
                self._next_chunk += 1
            m = min(n - k, self._chunk.size - self._pos)
            out[k:k + m] = self._chunk[self._pos:self._pos + m]
            self._pos += m
            k += m
        return out

    def describe(self) -> dict:
        p = self.path
        return {**super().describe(), "device_seed": self.device_seed,
                "array": f"{p.emu_cfg.array.rows}x{p.emu_cfg.array.cols}",
                "cond_mode": p.cond_mode, "cond_k": p.cond_k, "cal_enable": p.cal_enable,
                "lanes": self.lanes, "lane_seeds": [ln.path.seed for ln in self._lane_list],
                "twin": "model.blocks.fastpath.NoisePath"}


# ------------------------------------------------------------------------------------------------
def _group_popcounts(bits: np.ndarray, k: int, balanced: bool = False) -> np.ndarray:
    """Popcounts of successive ``k``-bit groups of the 0/1 uint8 stream ``bits``; ``balanced``:
    of the group with its bits 1, 3, 5, … inverted (the generator's balanced popcount,
    :func:`model.blocks.fixedpoint.cbd_balance_mask`, bit j = the group's j-th stream bit)."""
    g = bits.reshape(-1, k)
    if balanced:
        g = g ^ (np.arange(k, dtype=np.uint8) & 1)
    if k % 8 == 0:
        packed = np.packbits(g, axis=1)
        return np.bitwise_count(packed).sum(axis=1, dtype=np.int64)
    return g.sum(axis=1, dtype=np.int64)


class MTJNoise(CBDNoise):
    """Bits from the VCMA-MTJ device model → CBD (module docstring).

    Parameters
    ----------
    seed : int
        Seeds the trials (and, unless ``device_seed`` is given, the device draw).
    device_seed : int, optional
        Seed of :class:`~model.devices.mtj.MTJArrayDevice` (per-cell variation and drift walk).
    rows, cols : int
        Array size (default 8 × 8, the TRNG array's).
    params : MTJParams, optional
    variation : MTJVariation or None
        Default ``MTJVariation()``; ``None``: identical nominal cells, no drift.
    drift : bool
        Advance the device drift by the operating time (default True).
    calibrate : bool
        Per-cell code nearest P = ½ (True, default) or every cell at the nominal V50 code.
    fold : int
        XOR of ``fold`` successive trials of a cell per output bit (1 = raw bits).
    gauss_cfg : GaussConfig, optional
    chunk_sweeps : int
        Sweeps per chunk; the drift state is held over a chunk.
    recal_interval_s : float or None
        With ``calibrate`` and ``drift``: redo the open-loop calibration (per-cell code nearest
        P = ½ at the current drift state) every ``recal_interval_s`` of array time, checked per
        chunk (default 1.0 s, ASSUMED; the RTL controller recalibrates continuously, see
        ``docs/mtj-array.md``). ``None``: calibrate once at time 0 — measured (seed 1, default
        variation and drift): the sample mean walks from 0.001 to ≈ 0.06–0.07 within ~100 s of
        array time (about 10^8 samples), enough to wreck a DDPM run (digits FID ≈ 1800).
    """

    name = "mtj"

    def __init__(self, seed: int, *, device_seed: int | None = None, rows: int = 8,
                 cols: int = 8, params=None, variation="default", drift: bool = True,
                 calibrate: bool = True, fold: int = 1, gauss_cfg: GaussConfig | None = None,
                 chunk_sweeps: int = 1 << 15, recal_interval_s: float | None = 1.0):
        super().__init__(seed, gauss_cfg)
        from model.devices.dac import PulseDAC
        from model.devices.mtj import (MTJArrayDevice, MTJParams, MTJVariation,
                                       device_row_period_ns)
        o = "make_noise('mtj')"
        params = MTJParams() if params is None else params
        if not isinstance(params, MTJParams):
            raise ValueError(f"{o}: params = {params!r}: must be an MTJParams")
        variation = MTJVariation() if isinstance(variation, str) and variation == "default" \
            else variation
        if variation is not None and not isinstance(variation, MTJVariation):
            raise ValueError(f"{o}: variation = {variation!r}: must be an MTJVariation or None")
        for name, v in (("drift", drift), ("calibrate", calibrate)):
            if not isinstance(v, bool):
                raise ValueError(f"{o}: {name} = {v!r}: must be True or False")
        self.fold = _check_int(o, "fold", fold, 1, 16)
        self.chunk_sweeps = _check_int(o, "chunk_sweeps", chunk_sweeps, 1, 1 << 20)
        rows = _check_int(o, "rows", rows, 1, 4096)
        cols = _check_int(o, "cols", cols, 1, 4096)
        self.device_seed = self.seed if device_seed is None else _check_int(
            o, "device_seed", device_seed, 0, _MAX_SEED)
        self.drift_on, self.calibrated = drift, calibrate
        self.device = MTJArrayDevice(params, rows, cols, seed=self.device_seed,
                                     variation=variation, dac=PulseDAC())
        if recal_interval_s is not None and (
                isinstance(recal_interval_s, bool) or not isinstance(recal_interval_s, (int, float))
                or not 1e-6 <= recal_interval_s <= 1e9):
            raise ValueError(f"{o}: recal_interval_s = {recal_interval_s!r}: allowed None or a "
                             f"number in [1e-6, 1e9] s")
        self.recal_interval_s = recal_interval_s
        self.recalibrations = 0
        dev = self.device
        if calibrate:
            self._calibrate()
        else:
            codes = np.arange(dev.dac.code_max + 1)
            p = dev.nominal.sensed_prob(dev.dac.code_to_mV(codes))
            self.cell_codes = np.full((rows, cols), int(np.abs(p - 0.5).argmin()), np.int64)
            self._v_cells = dev.dac.code_to_mV(self.cell_codes)
        self.sweep_time_s = rows * device_row_period_ns(params) * 1e-9
        self._rng = np.random.default_rng([self.seed, 0x3713])
        self._bits = np.zeros(0, dtype=np.uint8)
        self._pending = np.zeros(0, dtype=np.int64)   # popcounts of the last chunk not taken
        self.sweeps_run = 0

    def _calibrate(self) -> None:
        """Open-loop calibration at the device's current state: per cell, the code whose
        modelled sensed probability is nearest ½."""
        dev = self.device
        v = dev.dac.code_to_mV(np.arange(dev.dac.code_max + 1))[:, None, None]
        p = dev.sensed_prob(v)                                      # (codes, rows, cols)
        self.cell_codes = np.abs(p - 0.5).argmin(axis=0).astype(np.int64)
        self._v_cells = dev.dac.code_to_mV(self.cell_codes)
        self._cal_time_s = float(dev.time_s)

    def bit_probs(self) -> np.ndarray:
        """Probability (rows, cols) that the next output bit of each cell is 1 (after the fold),
        at the device's current drift state."""
        p = np.clip(self.device.sensed_prob(self._v_cells), 0.0, 1.0)
        return 0.5 * (1.0 - (1.0 - 2.0 * p) ** self.fold)

    def _run_chunk(self) -> None:
        dev = self.device
        m = self.chunk_sweeps * self.fold
        if self.drift_on and dev.variation is not None:
            dev.drift(m * self.sweep_time_s)
            if self.calibrated and self.recal_interval_s is not None and \
                    dev.time_s - self._cal_time_s >= self.recal_interval_s:
                self._calibrate()
                self.recalibrations += 1
        p = np.clip(dev.sensed_prob(self._v_cells), 0.0, 1.0).astype(np.float32)
        u = self._rng.random((m, dev.rows, dev.cols), dtype=np.float32)
        bits = (u < p).view(np.uint8)
        if self.fold > 1:
            bits = np.bitwise_xor.reduce(bits.reshape(self.chunk_sweeps, self.fold, dev.rows,
                                                      dev.cols), axis=1)
        self.sweeps_run += m
        stream = bits.ravel()
        if self._bits.size:
            stream = np.concatenate((self._bits, stream))
        K = self.gauss_cfg.cbd_bits
        n = stream.size // K
        self._bits = stream[n * K:].copy()
        pc = _group_popcounts(stream[:n * K], K, self.gauss_cfg.cbd_balanced)
        self._pending = np.concatenate((self._pending, pc)) if self._pending.size else pc

    def _popcounts(self, n: int) -> np.ndarray:
        while self._pending.size < n:
            self._run_chunk()
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def describe(self) -> dict:
        v = self.device.variation
        return {**super().describe(), "device_seed": self.device_seed,
                "array": f"{self.device.rows}x{self.device.cols}",
                "variation": None if v is None else repr(v), "drift": self.drift_on,
                "calibrate": self.calibrated, "fold": self.fold,
                "recal_interval_s": self.recal_interval_s, "recalibrations": self.recalibrations,
                "sweep_time_s": self.sweep_time_s}


# ------------------------------------------------------------------------------------------------
class DeviceNoise(CBDNoise):
    """The TRNG readout chain's Gaussian integers with the VCMA-MTJ device model as the array:
    the golden twin of ``make sim ARRAY=device`` (physics in the loop).

    The RTL is ``hw.trng_top.MTJTRNGTop(..., array="external")`` whose array port the test bench
    plays with the device model (``sim/device_array.py``); the numbers here are that run's
    ``gauss`` stream, integer for integer: :class:`model.blocks.device_path.DevicePath`
    (device model -> controller twin with calibration -> health -> conditioner -> packer ->
    Gaussian generator, row by row), times ``2**-frac_bits``.

    Not a name of :data:`NOISE_SOURCES` (``make_noise`` does not make it): pass the object to
    ``hw_sample`` (it has ``codes(n)``). Per-row Python: some 10^3 samples per second, for the
    physics-in-the-loop run, not for long sampling.

    Parameters
    ----------
    seed : int
        Seed of the device model (:class:`model.devices.mtj.MTJArrayDevice`: per-cell variation
        draw, then every reset, switching, sense and drift event), [0, 2**32 − 1].
    array : ArrayConfig, optional
        Default ``ArrayConfig()`` (8 × 8).
    health_cfg, cond_cfg, gauss_cfg, cond_mode, cond_k, gauss_mode, cal_enable :
        As :class:`model.blocks.device_path.DevicePath` (defaults: the registers' reset values,
        XOR fold k = 2, CBD, calibration on).
    **port_options :
        ``params``, ``variation``, ``dac``, ``t_pulse_ns``, ``drift_every_rows`` of
        :class:`model.blocks.device_path.DevicePort`.
    """

    name = "device"

    def __init__(self, seed: int, *, array: ArrayConfig | None = None, health_cfg=None,
                 cond_cfg=None, gauss_cfg: GaussConfig | None = None, cond_mode: int = 1,
                 cond_k: int = 2, gauss_mode: int = MODE_CBD, cal_enable: bool = True,
                 **port_options):
        super().__init__(seed, gauss_cfg)
        from model.blocks.device_path import DevicePath
        array = ArrayConfig() if array is None else array
        self.path = DevicePath(array, self.seed, health_cfg=health_cfg, cond_cfg=cond_cfg,
                               gauss_cfg=self.gauss_cfg, cond_mode=cond_mode, cond_k=cond_k,
                               gauss_mode=gauss_mode, cal_enable=cal_enable, **port_options)
        self.mode = self.path.gauss_mode

    def _codes(self, n: int) -> np.ndarray:
        return self.path.gauss_samples(n)

    def _normal(self, n: int) -> torch.Tensor:
        return torch.from_numpy((self._codes(n) * self.fp.lsb).astype(np.float32))

    def describe(self) -> dict:
        return {**super().describe(), **self.path.describe()}


# ------------------------------------------------------------------------------------------------
_U8, _UFF, _U1 = np.uint64(8), np.uint64(0xFF), np.uint64(1)


@numba.njit(cache=True, nogil=True)
def _lfsr_kernel(state, taps, k, mask, pcnt, out):
    """Galois LFSR (right shift): per output, k steps; output = popcount of the k output bits
    (each the LSB before its shift). Eight steps at a time through byte tables: in eight steps
    only the low byte reaches the output, and the taps it triggers XOR into ``s >> 8`` a mask
    that depends on that byte alone (``mask``; ``pcnt`` its popcount). Returns the new state."""
    s = state
    nbytes = k // 8
    rem = k - 8 * nbytes
    for i in range(out.shape[0]):
        pc = 0
        for _ in range(nbytes):
            lo = s & _UFF
            pc += pcnt[lo]
            s = (s >> _U8) ^ mask[lo]
        for _ in range(rem):
            b = s & _U1
            s >>= _U1
            if b:
                s ^= taps
            pc += np.int64(b)
        out[i] = pc
    return s


def _byte_tables(taps: int) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros(256, dtype=np.uint64)
    pcnt = np.zeros(256, dtype=np.int64)
    for v in range(256):
        bits, s = lfsr_bits(v, 8, taps)
        mask[v], pcnt[v] = s, int(bits.sum())
    return mask, pcnt


def lfsr_bits(state: int, n: int, taps: int = LFSR_TAPS) -> tuple[np.ndarray, int]:
    """``n`` output bits of the Galois LFSR from ``state`` (reference loop, for tests):
    ``(bits uint8, new state)``."""
    out = np.empty(n, dtype=np.uint8)
    s = int(state)
    for i in range(n):
        b = s & 1
        s >>= 1
        if b:
            s ^= taps
        out[i] = b
    return out, s


class LFSRNoise(CBDNoise):
    """A 32-bit Galois LFSR → CBD (module docstring).

    Parameters
    ----------
    seed : int
        The start state is derived from the seed (never 0), then 64 warm-up steps.
    taps : int
        Toggle mask (bit 31 set; default :data:`LFSR_TAPS`, maximal length).
    gauss_cfg : GaussConfig, optional
    """

    name = "lfsr"

    def __init__(self, seed: int, *, taps: int = LFSR_TAPS, gauss_cfg: GaussConfig | None = None):
        super().__init__(seed, gauss_cfg)
        self.taps = _check_int("make_noise('lfsr')", "taps", taps, 1 << 31, 2**32 - 1)
        s = int(np.random.SeedSequence([self.seed, 0x1F5A]).generate_state(1, np.uint32)[0])
        self.state = s if s else 1
        self._mask, self._pcnt = _byte_tables(self.taps)
        self._step(np.empty(2, dtype=np.int64), 32)           # 64 warm-up steps

    def _step(self, out: np.ndarray, k: int) -> None:
        self.state = int(_lfsr_kernel(np.uint64(self.state), np.uint64(self.taps), k,
                                      self._mask, self._pcnt, out))

    def _popcounts(self, n: int) -> np.ndarray:
        pc = np.empty(n, dtype=np.int64)
        self._step(pc, self.gauss_cfg.cbd_bits)
        return pc

    def describe(self) -> dict:
        return {**super().describe(), "taps": hex(self.taps), "width": 32}


# ------------------------------------------------------------------------------------------------
_CLASSES = {"software": SoftwareNoise, "trng": TRNGNoise, "mtj": MTJNoise, "lfsr": LFSRNoise}


def make_noise(name: str, seed: int, **options) -> NoiseSource:
    """The noise source ``name`` (one of :data:`NOISE_SOURCES`) seeded with ``seed``.

    ``options`` go to the source's class (:class:`TRNGNoise`, :class:`MTJNoise`,
    :class:`LFSRNoise`; ``software`` takes none).
    """
    if name not in _CLASSES:
        raise ValueError(f"make_noise: name = {name!r}: must be one of {NOISE_SOURCES}")
    cls = _CLASSES[name]
    try:
        return cls(seed, **options)
    except TypeError as e:
        import inspect
        allowed = [p for p in inspect.signature(cls.__init__).parameters
                   if p not in ("self", "seed")]
        raise ValueError(f"make_noise({name!r}): bad options {sorted(options)}: allowed "
                         f"{allowed} ({e})") from None


def measure_rates(n: int = 1 << 22, seed: int = 1, sources=NOISE_SOURCES, **options) -> dict:
    """Numbers per second of ``normal`` for each source (one thread, after a warm-up call that
    also compiles). ``options``: per-source option dicts keyed by name."""
    n = _check_int("measure_rates", "n", n, 1, 1 << 30)
    res = {}
    for name in sources:
        src = make_noise(name, seed, **options.get(name, {}))
        src.normal((1 << 12,))
        t0 = time.perf_counter()
        src.normal((n,))
        res[name] = n / (time.perf_counter() - t0)
    return res
