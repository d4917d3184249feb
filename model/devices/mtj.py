"""Golden device model of a voltage-controlled (VCMA) magnetic tunnel junction array.

Physics layer of spindiff: imports nothing of ours above ``model.devices``. The equations, every
constant with its unit and source, and the validity ranges are written down in
``docs/device-model.md``; this docstring is the short version.

State convention: parallel (P) = bit 0 = the reset state; antiparallel (AP) = bit 1 = "switched".

(a) Thermal regime (pulse width ``t_thermal_min_ns`` .. ``t_thermal_max_ns``, V below the cell's
    critical voltage Vc). The VCMA lowers the zero-voltage barrier ``E_b`` linearly,
    ``Δ(V) = (E_b - ξ·V·A/t_MgO)/(k_B T) = Δ0(T)·u`` with ``u = 1 - V/Vc`` and
    ``Vc = E_b·t_MgO/(ξ·A)``. A perpendicular bias (stray) field ``h = H/H_K0`` favouring AP gives the
    Stoner–Wohlfarth barriers ``Δ_P→AP = Δ0(T)(u-h)²/u`` and ``Δ_AP→P = Δ0(T)(u+h)²/u`` (the field
    relative to the voltage-reduced anisotropy field is h/u); their difference ``4·h·Δ0(T)`` (the
    Zeeman energy) does not depend on V. For u <= h the P state is no longer a minimum: its barrier
    is 0 and the difference is kept at 4hΔ0(T). Néel–Brown rates ``r = exp(-Δ)/τ0``; the two-state
    master equation over a pulse of width t gives exactly
    ``p_AP(t) = p_eq + (p0 - p_eq)·exp(-(r1+r2)·t)``, ``p_eq = r1/(r1+r2)``.
(b) Precessional regime (pulse width ``t_prec_min_ns`` .. ``t_prec_max_ns``, V >= Vc): the barrier
    is gone and the magnetisation precesses about the in-plane field H_x with frequency
    ``f = (γ/2π)·H_x`` and damping time ``τ_d = 1/(α·2πf)``. Macrospin-derived closed form: the
    end-of-pulse ``m_z = cos(2πft + φ)·exp(-t/τ_d)`` with a Gaussian phase error φ (thermal
    initial angle ``σθ = 1/sqrt(2Δ0(T))``, pulse jitter, precession-frequency spread); the state
    then relaxes to the hemisphere of m_z, blurred by thermal noise σθ: ``P = E_φ[Φ(-m_z/σθ)]``.
(c) ``fit_erf``: least-squares ``P(V) = ½(1+erf((V-V50)/(√2 σ_V)))`` to (a) at one pulse width.

Reset writes P (a strong pulse of the opposite polarity, deterministic up to
``reset_error_prob``). Sensing: ``R_P = RA/A``, ``R_AP = R_P(1+TMR)``, read at ``v_read_mV``, the
current compared with a reference midway between the nominal P and AP currents, Gaussian
current noise ``read_noise_nA``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import curve_fit
from scipy.special import erf, ndtr

from model.devices.dac import PulseDAC

# --- physical constants ---------------------------------------------------------------------
#: Boltzmann constant, J/K (exact, SI 2019 / CODATA 2018).
K_B_J_PER_K = 1.380649e-23
#: Electron gyromagnetic ratio / 2π, MHz per Oe (CODATA 2018: 28 024.951 MHz/T; 1 Oe <-> 1e-4 T
#: of mu0*H in vacuum).
GAMMA_OVER_2PI_MHZ_PER_OE = 2.8024951


# --- validation helpers ---------------------------------------------------------------------
def _check_num(owner: str, name: str, value, lo: float, hi: float, unit: str = "",
               lo_open: bool = False) -> None:
    """Raise ``ValueError`` naming ``owner.name`` unless ``value`` is a finite number in range."""
    u = f" {unit}" if unit else ""
    lb = "(" if lo_open else "["
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"{owner}{name} = {value!r}: must be a finite number in "
                         f"{lb}{lo}, {hi}]{u}")
    if (value <= lo if lo_open else value < lo) or value > hi:
        raise ValueError(f"{owner}{name} = {value}: out of range, allowed {lb}{lo}, {hi}]{u}")


def _worst(arr: np.ndarray, bad: np.ndarray) -> float:
    return float(np.asarray(arr)[bad].flat[0])


def _as_float_array(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} = {value!r}: must be finite")
    return arr


# --- parameters -----------------------------------------------------------------------------
@dataclass(frozen=True)
class MTJParams:
    """Nominal VCMA-MTJ device, sensing and timing parameters (all validated).

    Every field carries its unit in its name; sources are given in ``docs/device-model.md``
    and in the comments below (ASSUMED where no measured figure backs the value).
    """

    # geometry and stack
    diameter_nm: float = 80.0            # Yang et al., ESSDERC 2021 (80 nm VC-MTJ)
    t_mgo_nm: float = 1.4                # ASSUMED: typical thick-MgO VC-MTJ (shared/PAPERS.md A)
    tmr_pct: float = 160.0               # Yang et al., ESSDERC 2021 (TMR 160 %)
    ra_ohm_um2: float = 1000.0           # ASSUMED: high-RA barrier typical of VC-MTJs
    # thermal stability and VCMA
    delta0_kT: float = 60.0              # ASSUMED: Δ0 = E_b/(k_B T_ref) at 0 V, 40..60 typical
    temperature_ref_K: float = 300.0     # temperature at which delta0_kT is stated
    xi_vcma_fJ_per_Vm: float = 50.0      # ASSUMED within the 30..100 fJ/(V·m) reported for
                                         # CoFeB/MgO (e.g. Amiri et al., IEEE Trans. Magn. 2015)
    h_bias_over_hk: float = 0.05         # ASSUMED: perpendicular stray field / H_K0, favours AP
    tau0_ns: float = 1.0                 # Néel–Brown attempt time, the standard 1 ns
    temperature_K: float = 300.0         # operating temperature
    # precessional regime
    h_inplane_Oe: float = 400.0          # ASSUMED: in-plane field for precessional VCMA switching
    alpha_damping: float = 0.03          # ASSUMED: Gilbert damping, CoFeB/MgO 0.01..0.03 typical
    t_jitter_ps: float = 20.0            # ASSUMED: rms pulse-width jitter of the driver
    f_prec_rel_sigma: float = 0.05       # ASSUMED: rms relative spread of the precession
                                         # frequency (residual anisotropy, thermal field)
    # sensing
    v_read_mV: float = 100.0             # ASSUMED: low read bias (little VCMA/STT disturb)
    read_noise_nA: float = 20.0          # ASSUMED: rms input-referred sense-amp current noise
    reset_error_prob: float = 0.0        # ASSUMED: reset writes P deterministically
    # timing of one row operation (device-limited rate)
    t_reset_ns: float = 10.0             # ASSUMED: STT/strong reset pulse
    t_pulse_ns: float = 1000.0           # default stochastic pulse (thermal regime), ASSUMED
    t_settle_ns: float = 5.0             # ASSUMED: relaxation after the pulse before sensing
    t_sense_ns: float = 10.0             # ASSUMED: MRAM-class sense time
    # validity limits of the model
    v_max_valid_mV: float = 2000.0       # ASSUMED: MgO dielectric limit (writes at 1.5-2 V,
                                         # Amiri et al., IEEE Trans. Magn. 2015)
    t_thermal_min_ns: float = 10.0       # Néel–Brown needs t >> τ0: ASSUMED 10·τ0
    t_thermal_max_ns: float = 1e9        # ASSUMED: 1 s, beyond any use here
    t_prec_min_ns: float = 0.05          # ASSUMED: below, the pulse edges dominate
    t_prec_max_ns: float = 5.0           # ASSUMED: beyond, the thermal decision dominates
    temperature_min_K: float = 250.0     # ASSUMED: E_b, ξ and TMR taken T-independent
    temperature_max_K: float = 400.0     # ASSUMED: likewise

    def __post_init__(self):
        o = "MTJParams."
        c = lambda n, lo, hi, unit="", lo_open=False: _check_num(  # noqa: E731
            o, n, getattr(self, n), lo, hi, unit, lo_open)
        c("diameter_nm", 10.0, 500.0, "nm")
        c("t_mgo_nm", 0.5, 5.0, "nm")
        c("tmr_pct", 0.0, 1000.0, "%")
        c("ra_ohm_um2", 1.0, 1e6, "Ohm*um^2")
        c("delta0_kT", 10.0, 200.0)
        c("temperature_ref_K", 1.0, 1000.0, "K")
        c("xi_vcma_fJ_per_Vm", 1.0, 2000.0, "fJ/(V*m)")
        c("h_bias_over_hk", -0.5, 0.5)
        c("tau0_ns", 1e-3, 100.0, "ns")
        c("h_inplane_Oe", 10.0, 1e4, "Oe")
        c("alpha_damping", 1e-4, 1.0)
        c("t_jitter_ps", 0.0, 1000.0, "ps")
        c("f_prec_rel_sigma", 0.0, 1.0)
        c("v_read_mV", 1.0, 1000.0, "mV")
        c("read_noise_nA", 0.0, 1e6, "nA", lo_open=True)
        c("reset_error_prob", 0.0, 1.0)
        c("t_reset_ns", 0.01, 1e6, "ns")
        c("t_settle_ns", 0.0, 1e6, "ns")
        c("t_sense_ns", 0.01, 1e6, "ns")
        c("v_max_valid_mV", 10.0, 5000.0, "mV")
        c("t_prec_min_ns", 0.001, 100.0, "ns")
        c("t_prec_max_ns", self.t_prec_min_ns, 100.0, "ns")
        c("t_thermal_min_ns", self.t_prec_max_ns, 1e12, "ns", lo_open=True)
        c("t_thermal_max_ns", self.t_thermal_min_ns, 1e12, "ns")
        c("temperature_min_K", 1.0, 1000.0, "K")
        c("temperature_max_K", self.temperature_min_K, 1000.0, "K")
        c("temperature_K", self.temperature_min_K, self.temperature_max_K, "K")
        t = self.t_pulse_ns
        in_prec = isinstance(t, (int, float)) and self.t_prec_min_ns <= t <= self.t_prec_max_ns
        if not in_prec:
            if isinstance(t, (int, float)) and self.t_prec_max_ns < t < self.t_thermal_min_ns:
                raise ValueError(f"MTJParams.t_pulse_ns = {t}: out of range, allowed "
                                 f"[{self.t_prec_min_ns}, {self.t_prec_max_ns}] ns (precessional) "
                                 f"or [{self.t_thermal_min_ns}, {self.t_thermal_max_ns}] ns "
                                 f"(thermal)")
            c("t_pulse_ns", self.t_thermal_min_ns, self.t_thermal_max_ns, "ns")
        if not self.t_thermal_min_ns >= 2.0 * self.tau0_ns:
            raise ValueError(f"MTJParams.t_thermal_min_ns = {self.t_thermal_min_ns}: must be at "
                             f"least 2*tau0_ns = {2 * self.tau0_ns} ns (Néel–Brown needs t >> τ0)")

    # derived quantities
    @property
    def area_m2(self) -> float:
        return np.pi * (0.5 * self.diameter_nm * 1e-9) ** 2

    @property
    def e_b_J(self) -> float:
        """Zero-voltage barrier energy E_b = Δ0·k_B·T_ref, J (taken temperature-independent)."""
        return self.delta0_kT * K_B_J_PER_K * self.temperature_ref_K

    @property
    def vc_mV(self) -> float:
        """Critical voltage Vc = E_b·t_MgO/(ξ·A) at which the VCMA removes the barrier, mV."""
        return vc_mV_of(self.e_b_J, self.xi_vcma_fJ_per_Vm, self.t_mgo_nm, self.area_m2)

    @property
    def r_p_ohm(self) -> float:
        """Parallel resistance R_P = RA/A, Ohm."""
        return self.ra_ohm_um2 / (self.area_m2 * 1e12)

    @property
    def r_ap_ohm(self) -> float:
        return self.r_p_ohm * (1.0 + self.tmr_pct / 100.0)

    @property
    def precession_period_ns(self) -> float:
        """T_prec = 1/((γ/2π)·H_x), ns."""
        return 1e3 / (GAMMA_OVER_2PI_MHZ_PER_OE * self.h_inplane_Oe)

    @property
    def damping_time_ns(self) -> float:
        """τ_d = 1/(α·2π·f), ns."""
        return self.precession_period_ns / (2.0 * np.pi * self.alpha_damping)


@dataclass(frozen=True)
class MTJVariation:
    """Device-to-device variation (per-cell draws) and slow drift.

    Per-cell draws are Gaussian, truncated at ``clip_sigma`` standard deviations (ASSUMED: arrays
    are screened for outliers). Drift acts on an effective per-cell voltage offset added to the
    applied pulse voltage (positive offset: the cell switches more, its V50 drops): a random walk
    of ``drift_rw_mV_per_sqrt_s`` per square root of seconds plus ``drift_linear_mV_per_s``.
    """

    delta0_rel_sigma: float = 0.02       # ASSUMED: 2 % rms spread of Δ0 (E_b)
    xi_rel_sigma: float = 0.01           # ASSUMED: 1 % rms spread of the VCMA coefficient
    h_bias_sigma: float = 0.01           # ASSUMED: rms spread of h (units of H_K0)
    r_p_rel_sigma: float = 0.03          # ASSUMED: 3 % rms spread of R_P
    clip_sigma: float = 3.0              # ASSUMED: truncation of every draw
    drift_rw_mV_per_sqrt_s: float = 0.5  # ASSUMED: random-walk drift of the voltage offset
    drift_linear_mV_per_s: float = 0.0   # ASSUMED: no systematic drift by default

    def __post_init__(self):
        o = "MTJVariation."
        _check_num(o, "delta0_rel_sigma", self.delta0_rel_sigma, 0.0, 0.2)
        _check_num(o, "xi_rel_sigma", self.xi_rel_sigma, 0.0, 0.2)
        _check_num(o, "h_bias_sigma", self.h_bias_sigma, 0.0, 0.2)
        _check_num(o, "r_p_rel_sigma", self.r_p_rel_sigma, 0.0, 0.2)
        _check_num(o, "clip_sigma", self.clip_sigma, 0.0, 10.0, lo_open=True)
        _check_num(o, "drift_rw_mV_per_sqrt_s", self.drift_rw_mV_per_sqrt_s, 0.0, 1e3, "mV/sqrt(s)")
        _check_num(o, "drift_linear_mV_per_s", self.drift_linear_mV_per_s, -1e3, 1e3, "mV/s")


def device_row_period_ns(params: MTJParams, t_pulse_ns: float | None = None) -> float:
    """Device-limited time of one row operation: reset + pulse + settle + sense, ns."""
    t = params.t_pulse_ns if t_pulse_ns is None else t_pulse_ns
    return params.t_reset_ns + t + params.t_settle_ns + params.t_sense_ns


# --- pure, vectorised physics ---------------------------------------------------------------
def vc_mV_of(e_b_J, xi_fJ_per_Vm, t_mgo_nm, area_m2):
    """Vc = E_b·t_MgO/(ξ·A) in mV (broadcasts)."""
    return 1e3 * np.asarray(e_b_J) * (t_mgo_nm * 1e-9) / (np.asarray(xi_fJ_per_Vm) * 1e-15
                                                         * area_m2)


def thermal_barriers_kT(u, delta_kT, h):
    """Barriers (Δ_P→AP, Δ_AP→P) in k_B·T for reduced anisotropy u = 1 - V/Vc > 0 (broadcasts).

    Stoner–Wohlfarth with the field relative to the voltage-reduced anisotropy field, h/u:
    ``Δ0(u∓h)²/u``. For u <= |h| the disfavoured state is not a minimum: its barrier is 0 and the
    other is ``4|h|Δ0`` (the Zeeman energy difference, V-independent).
    """
    u = np.asarray(u, dtype=float)
    h = np.asarray(h, dtype=float)
    delta_kT = np.asarray(delta_kT, dtype=float)
    ha = np.abs(h)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(u > ha, delta_kT * (u - ha) ** 2 / u, 0.0)
    hi = lo + 4.0 * ha * delta_kT
    # h > 0 favours AP: the P->AP barrier is the low one.
    d_p_ap = np.where(h >= 0, lo, hi)
    d_ap_p = np.where(h >= 0, hi, lo)
    return d_p_ap, d_ap_p


def thermal_prob(v_mV, t_pulse_ns, *, vc_mV, delta_kT, h, tau0_ns, p0=0.0):
    """p_AP after a pulse of V (mV) and width t (ns), starting from p_AP = p0 (broadcasts).

    Exact solution of the two-state master equation with Néel–Brown rates; no validity checks
    (the callers check). ``delta_kT`` is the zero-voltage barrier at the operating temperature.
    """
    u = 1.0 - np.asarray(v_mV, dtype=float) / vc_mV
    d1, d2 = thermal_barriers_kT(u, delta_kT, h)
    r1 = np.exp(-d1) / tau0_ns
    r2 = np.exp(-d2) / tau0_ns
    k = r1 + r2
    p_eq = r1 / k
    return p_eq + (np.asarray(p0, dtype=float) - p_eq) * np.exp(-k * t_pulse_ns)


def thermal_p_eq(delta_kT, h):
    """Equilibrium AP occupancy 1/(1+exp(-4hΔ0)) (V-independent in this model)."""
    return 1.0 / (1.0 + np.exp(-4.0 * np.asarray(h, dtype=float) * np.asarray(delta_kT)))


# Phase-error quadrature: 401 equally spaced nodes over ±6 standard deviations, normal weights
# (normalised). Equal spacing resolves the steep decision step at every phase spread.
_Q_X = np.linspace(-6.0, 6.0, 401)
_Q_W = np.exp(-0.5 * _Q_X ** 2)
_Q_W /= _Q_W.sum()


def precessional_prob(t_pulse_ns, *, period_ns, damping_ns, delta_kT, jitter_ns,
                      f_rel_sigma):
    """Probability that a precessional pulse of width t (ns) reverses the state (broadcasts).

    Macrospin about the in-plane field: the end-of-pulse ``m_z = cos(ωt + φ)·exp(-t/τ_d)``, with a
    Gaussian phase error φ of variance ``σθ² + (ω·σ_t)² + (f_rel_sigma·ω·t)²`` (thermal initial
    angle ``σθ = 1/sqrt(2Δ0)``, pulse-width jitter, spread of the precession frequency); after the
    pulse the state relaxes to the hemisphere of m_z, blurred by a thermal decision noise σθ:
    ``P = E_φ[Φ(-m_z/σθ)]``, evaluated by a 401-node quadrature over ±6σ_φ. Independent of V
    above Vc (H_K,eff ≈ 0 taken).
    """
    t = np.asarray(t_pulse_ns, dtype=float)[..., None]
    w = 2.0 * np.pi / period_ns
    s_th = np.sqrt(1.0 / (2.0 * np.asarray(delta_kT, dtype=float)))[..., None]
    s_phi = np.sqrt(s_th ** 2 + (w * jitter_ns) ** 2 + (f_rel_sigma * w * t) ** 2)
    m = np.cos(w * t + s_phi * _Q_X) * np.exp(-t / damping_ns)
    return np.sum(_Q_W * ndtr(-m / s_th), axis=-1)


def read_error_probs(r_p_ohm, tmr_pct, v_read_mV, read_noise_nA, r_p_ref_ohm=None,
                     tmr_ref_pct=None):
    """(P(read 1 | P), P(read 0 | AP)) for a current sense against a midpoint reference.

    ``I_P = V/R_P``, ``I_AP = V/(R_P(1+TMR))``; reference midway between the nominal currents
    (``r_p_ref_ohm``, ``tmr_ref_pct``; default the cell's own); Gaussian current noise.
    """
    r_p = np.asarray(r_p_ohm, dtype=float)
    tmr = np.asarray(tmr_pct, dtype=float) / 100.0
    r_ref = r_p if r_p_ref_ohm is None else r_p_ref_ohm
    tmr_ref = tmr if tmr_ref_pct is None else tmr_ref_pct / 100.0
    v = v_read_mV * 1e-3
    i_p = v / r_p * 1e9
    i_ap = v / (r_p * (1.0 + tmr)) * 1e9
    i_ref = 0.5 * (v / r_ref + v / (r_ref * (1.0 + tmr_ref))) * 1e9
    return ndtr(-(i_p - i_ref) / read_noise_nA), ndtr(-(i_ref - i_ap) / read_noise_nA)


# --- the model ------------------------------------------------------------------------------
class MTJModel:
    """Switching and sensing probabilities of one device, or of many cells by broadcasting.

    Parameters
    ----------
    params:
        Nominal parameters; the operating temperature is ``params.temperature_K``.
    delta0_kT, xi_vcma_fJ_per_Vm, h_bias_over_hk, r_p_ohm, v_offset_mV:
        Optional per-cell arrays (same shape, or broadcastable) replacing the nominal values;
        ``v_offset_mV`` is added to every applied pulse voltage (drift).
    """

    def __init__(self, params: MTJParams = MTJParams(), *, delta0_kT=None, xi_vcma_fJ_per_Vm=None,
                 h_bias_over_hk=None, r_p_ohm=None, v_offset_mV=None):
        if not isinstance(params, MTJParams):
            raise ValueError(f"params = {params!r}: must be an MTJParams")
        self.params = params
        p = params
        self.delta0_ref_kT = np.asarray(p.delta0_kT if delta0_kT is None else delta0_kT, float)
        self.xi_fJ_per_Vm = np.asarray(p.xi_vcma_fJ_per_Vm if xi_vcma_fJ_per_Vm is None
                                       else xi_vcma_fJ_per_Vm, float)
        self.h = np.asarray(p.h_bias_over_hk if h_bias_over_hk is None else h_bias_over_hk, float)
        self.r_p_ohm = np.asarray(p.r_p_ohm if r_p_ohm is None else r_p_ohm, float)
        self.v_offset_mV = np.asarray(0.0 if v_offset_mV is None else v_offset_mV, float)
        e_b = self.delta0_ref_kT * K_B_J_PER_K * p.temperature_ref_K
        self.vc_mV = vc_mV_of(e_b, self.xi_fJ_per_Vm, p.t_mgo_nm, p.area_m2)
        # Δ ∝ 1/T at fixed E_b
        self.delta_kT = self.delta0_ref_kT * p.temperature_ref_K / p.temperature_K

    @property
    def is_scalar(self) -> bool:
        return all(np.ndim(a) == 0 for a in (self.delta0_ref_kT, self.xi_fJ_per_Vm, self.h,
                                             self.r_p_ohm, self.v_offset_mV))

    def with_temperature(self, temperature_K: float) -> "MTJModel":
        """The same cells at another temperature (validated by ``MTJParams``)."""
        return MTJModel(replace(self.params, temperature_K=temperature_K),
                        delta0_kT=self.delta0_ref_kT, xi_vcma_fJ_per_Vm=self.xi_fJ_per_Vm,
                        h_bias_over_hk=self.h, r_p_ohm=self.r_p_ohm, v_offset_mV=self.v_offset_mV)

    # -- validity ---------------------------------------------------------------------------
    def regime(self, t_pulse_ns: float) -> str:
        """'thermal' or 'precessional' by pulse width, or ``ValueError`` naming t_pulse_ns."""
        p = self.params
        if isinstance(t_pulse_ns, bool) or not isinstance(
                t_pulse_ns, (int, float, np.integer, np.floating)) or not np.isfinite(t_pulse_ns):
            raise ValueError(f"t_pulse_ns = {t_pulse_ns!r}: must be a finite number in "
                             f"[{p.t_prec_min_ns}, {p.t_prec_max_ns}] ns (precessional) or "
                             f"[{p.t_thermal_min_ns}, {p.t_thermal_max_ns}] ns (thermal)")
        if p.t_thermal_min_ns <= t_pulse_ns <= p.t_thermal_max_ns:
            return "thermal"
        if p.t_prec_min_ns <= t_pulse_ns <= p.t_prec_max_ns:
            return "precessional"
        raise ValueError(f"t_pulse_ns = {t_pulse_ns}: outside the model's validity, allowed "
                         f"[{p.t_prec_min_ns}, {p.t_prec_max_ns}] ns (precessional) or "
                         f"[{p.t_thermal_min_ns}, {p.t_thermal_max_ns}] ns (thermal)")

    def _check_v(self, v_mV) -> np.ndarray:
        v = _as_float_array("v_mV", v_mV)
        vmax = self.params.v_max_valid_mV
        bad = (v < 0.0) | (v > vmax)
        if np.any(bad):
            raise ValueError(f"v_mV = {_worst(v, bad)}: outside the model's validity, allowed "
                             f"[0, {vmax}] mV")
        return v

    def _check_thermal_v(self, v_eff: np.ndarray, vc: np.ndarray) -> None:
        bad = v_eff >= vc
        if np.any(bad):
            b = np.broadcast_arrays(v_eff, vc)
            raise ValueError(
                f"v_mV = {_worst(b[0], bad)} (effective, incl. drift offset): outside the thermal "
                f"model's validity, allowed [0, {_worst(b[1], bad):.1f}) mV, below the cell's "
                f"critical voltage Vc; above Vc use a precessional pulse of "
                f"[{self.params.t_prec_min_ns}, {self.params.t_prec_max_ns}] ns")

    def _check_prec_v(self, v_eff: np.ndarray, vc: np.ndarray) -> None:
        bad = v_eff < vc
        if np.any(bad):
            b = np.broadcast_arrays(v_eff, vc)
            raise ValueError(
                f"v_mV = {_worst(b[0], bad)} (effective, incl. drift offset): outside the "
                f"precessional model's validity, allowed [{_worst(b[1], bad):.1f}, "
                f"{self.params.v_max_valid_mV}] mV (at or above the cell's Vc); below Vc use a "
                f"thermal pulse of [{self.params.t_thermal_min_ns}, "
                f"{self.params.t_thermal_max_ns}] ns")

    # -- probabilities ----------------------------------------------------------------------
    def switch_prob(self, v_mV, t_pulse_ns: float | None = None, p0=0.0):
        """AP probability after one pulse, from AP probability ``p0`` (0: the reset state).

        Broadcasts ``v_mV`` against the cell arrays. The regime follows from ``t_pulse_ns``
        (default ``params.t_pulse_ns``); voltages outside that regime's validity raise.
        """
        p = self.params
        t = p.t_pulse_ns if t_pulse_ns is None else t_pulse_ns
        regime = self.regime(t)
        v = self._check_v(v_mV)
        p0 = np.asarray(p0, dtype=float)
        if p0.size and (p0.min() < 0.0 or p0.max() > 1.0):
            raise ValueError(f"p0 = {float(p0.min() if p0.min() < 0 else p0.max())}: out of "
                             f"range, allowed [0, 1]")
        v_eff = v + self.v_offset_mV
        if regime == "thermal":
            self._check_thermal_v(v_eff, self.vc_mV)
            return thermal_prob(v_eff, t, vc_mV=self.vc_mV, delta_kT=self.delta_kT, h=self.h,
                                tau0_ns=p.tau0_ns, p0=p0)
        self._check_prec_v(v_eff, self.vc_mV)
        ps = precessional_prob(t, period_ns=p.precession_period_ns,
                               damping_ns=p.damping_time_ns, delta_kT=self.delta_kT,
                               jitter_ns=p.t_jitter_ps * 1e-3,
                               f_rel_sigma=p.f_prec_rel_sigma)
        ps = np.broadcast_to(ps, np.broadcast_shapes(v_eff.shape, np.shape(self.vc_mV)))
        # the reversal is symmetric: from AP it returns to P with the same probability
        return p0 + (1.0 - 2.0 * p0) * ps

    def p_eq(self):
        """Thermal equilibrium AP occupancy at the operating temperature (per cell)."""
        return thermal_p_eq(self.delta_kT, self.h)

    def read_error_prob(self):
        """(P(read 1 | P), P(read 0 | AP)) per cell; the reference is set for the nominal R_P."""
        p = self.params
        return read_error_probs(self.r_p_ohm, p.tmr_pct, p.v_read_mV, p.read_noise_nA,
                                r_p_ref_ohm=p.r_p_ohm, tmr_ref_pct=p.tmr_pct)

    def sensed_prob(self, v_mV, t_pulse_ns: float | None = None):
        """Probability that the sensed bit is 1 after reset + pulse (reset and read errors in)."""
        e_r = self.params.reset_error_prob
        p_ap = self.switch_prob(v_mV, t_pulse_ns, p0=e_r)
        e01, e10 = self.read_error_prob()
        return p_ap * (1.0 - e10) + (1.0 - p_ap) * e01

    def v_at_prob_mV(self, target: float, t_pulse_ns: float | None = None, iters: int = 60):
        """Voltage (mV, per cell) at which the thermal switch_prob from reset equals ``target``.

        Vectorised bisection (P is increasing in V in the thermal regime). Raises where the target
        is above a cell's equilibrium occupancy p_eq (no such voltage exists).
        """
        p = self.params
        t = p.t_pulse_ns if t_pulse_ns is None else t_pulse_ns
        if self.regime(t) != "thermal":
            raise ValueError(f"t_pulse_ns = {t}: V50 is defined in the thermal regime, allowed "
                             f"[{p.t_thermal_min_ns}, {p.t_thermal_max_ns}] ns")
        _check_num("", "target", target, 0.0, 1.0, lo_open=True)
        shape = np.broadcast_shapes(np.shape(self.vc_mV), np.shape(self.h),
                                    np.shape(self.v_offset_mV))
        vc = np.broadcast_to(self.vc_mV, shape)
        off = np.broadcast_to(self.v_offset_mV, shape)
        hi = np.minimum(vc - off, p.v_max_valid_mV)
        lo = np.zeros(shape)
        f = lambda v: thermal_prob(v + off, t, vc_mV=vc, delta_kT=self.delta_kT,  # noqa: E731
                                   h=self.h, tau0_ns=p.tau0_ns)
        top = f(hi * (1.0 - 1e-12))
        bad = top <= target
        if np.any(bad):
            raise ValueError(f"target = {target}: above the reachable switching probability "
                             f"{_worst(np.broadcast_to(top, shape), bad):.4g} of a cell (thermal "
                             f"p_eq = 1/(1+exp(-4hΔ0)); needs h_bias_over_hk > 0)")
        if np.any(f(lo) >= target):
            raise ValueError(f"target = {target}: already reached at v_mV = 0")
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            up = f(mid) < target
            lo = np.where(up, mid, lo)
            hi = np.where(up, hi, mid)
        v = 0.5 * (lo + hi)
        return float(v) if v.ndim == 0 else v

    def v50_mV(self, t_pulse_ns: float | None = None):
        """Per-cell V50: the pulse voltage with a 50 % switching probability from reset (mV)."""
        return self.v_at_prob_mV(0.5, t_pulse_ns)


# --- (c) erf fit ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ErfFit:
    """``P(V) = ½(1 + erf((V - v50_mV)/(√2·sigma_mV)))`` fitted to the thermal model."""

    v50_mV: float
    sigma_mV: float
    t_pulse_ns: float
    rms_residual: float
    max_residual: float

    def prob(self, v_mV):
        return erf_prob(v_mV, self.v50_mV, self.sigma_mV)


def erf_prob(v_mV, v50_mV, sigma_mV):
    """½(1 + erf((V - V50)/(√2 σ_V))) (broadcasts)."""
    return 0.5 * (1.0 + erf((np.asarray(v_mV, dtype=float) - v50_mV) / (np.sqrt(2.0) * sigma_mV)))


def fit_erf(model: MTJModel | MTJParams, t_pulse_ns: float | None = None, *,
            p_lo: float = 1e-3, p_hi: float = 0.999, n_points: int = 201) -> ErfFit:
    """Least-squares erf fit to the thermal model of one (scalar) device at one pulse width.

    The fit grid is ``n_points`` voltages evenly spaced between the voltages where the model's
    probability is ``p_lo`` and ``p_hi``.
    """
    if isinstance(model, MTJParams):
        model = MTJModel(model)
    if not model.is_scalar:
        raise ValueError("model: fit_erf needs a scalar (single-device) MTJModel")
    t = model.params.t_pulse_ns if t_pulse_ns is None else t_pulse_ns
    if isinstance(n_points, bool) or not isinstance(n_points, int) or not 5 <= n_points <= 100000:
        raise ValueError(f"n_points = {n_points!r}: must be an integer in [5, 100000]")
    p_hi = min(p_hi, 0.5 + 0.999 * (float(model.p_eq()) - 0.5))
    v_lo = model.v_at_prob_mV(p_lo, t)
    v_hi = model.v_at_prob_mV(p_hi, t)
    v = np.linspace(v_lo, v_hi, n_points)
    prob = model.switch_prob(v, t)
    v50 = model.v50_mV(t)
    s0 = (model.v_at_prob_mV(0.8413, t) - model.v_at_prob_mV(0.1587, t)) / 2.0
    (a, s), _ = curve_fit(erf_prob, v, prob, p0=(v50, s0))
    res = erf_prob(v, a, s) - prob
    return ErfFit(float(a), float(abs(s)), float(t), float(np.sqrt(np.mean(res ** 2))),
                  float(np.max(np.abs(res))))


# --- the array ------------------------------------------------------------------------------
class MTJArrayDevice:
    """A rows x cols VCMA-MTJ array "played" by test benches: reset, pulse, sense, drift.

    Parameters
    ----------
    params:
        Nominal device parameters.
    rows, cols:
        Array size (1..4096 each).
    seed:
        Seed of the ``numpy.random.Generator`` used for the per-cell draws and every later
        stochastic event (same seed and same calls -> same bits).
    variation:
        ``MTJVariation`` for per-cell draws and drift, or ``None`` for identical nominal cells
        and no drift.
    dac:
        ``PulseDAC`` mapping amplitude codes to volts for :meth:`trial` / :meth:`trials`.

    Cell states are uint8, 0 = P (reset), 1 = AP. All stochastic draws come from one generator in
    call order.
    """

    def __init__(self, params: MTJParams = MTJParams(), rows: int = 8, cols: int = 8,
                 seed: int = 0, variation: MTJVariation | None = MTJVariation(),
                 dac: PulseDAC | None = None):
        for name, val in (("rows", rows), ("cols", cols)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) \
                    or not 1 <= val <= 4096:
                raise ValueError(f"MTJArrayDevice.{name} = {val!r}: must be an integer in "
                                 f"[1, 4096]")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"MTJArrayDevice.seed = {seed!r}: must be a non-negative integer")
        if variation is not None and not isinstance(variation, MTJVariation):
            raise ValueError(f"MTJArrayDevice.variation = {variation!r}: must be an "
                             f"MTJVariation or None")
        self.dac = PulseDAC() if dac is None else dac
        if not isinstance(self.dac, PulseDAC):
            raise ValueError(f"MTJArrayDevice.dac = {dac!r}: must be a PulseDAC")
        self.rows, self.cols, self.seed = int(rows), int(cols), int(seed)
        self.variation = variation
        self.rng = np.random.default_rng(seed)
        shape = (self.rows, self.cols)
        p = params
        if variation is None:
            d0 = np.full(shape, p.delta0_kT)
            xi = np.full(shape, p.xi_vcma_fJ_per_Vm)
            h = np.full(shape, p.h_bias_over_hk)
            rp = np.full(shape, p.r_p_ohm)
        else:
            def draw():
                return np.clip(self.rng.standard_normal(shape), -variation.clip_sigma,
                               variation.clip_sigma)
            d0 = p.delta0_kT * (1.0 + variation.delta0_rel_sigma * draw())
            xi = p.xi_vcma_fJ_per_Vm * (1.0 + variation.xi_rel_sigma * draw())
            h = p.h_bias_over_hk + variation.h_bias_sigma * draw()
            rp = p.r_p_ohm * (1.0 + variation.r_p_rel_sigma * draw())
        self._cells = dict(delta0_kT=d0, xi_vcma_fJ_per_Vm=xi, h_bias_over_hk=h, r_p_ohm=rp)
        self.v_offset_mV = np.zeros(shape)
        self.time_s = 0.0
        self.state = np.zeros(shape, dtype=np.uint8)
        self._build(params)

    def _build(self, params: MTJParams) -> None:
        self.params = params
        self.model = MTJModel(params, v_offset_mV=self.v_offset_mV, **self._cells)
        self.nominal = MTJModel(params)

    # -- environment ------------------------------------------------------------------------
    def set_temperature(self, temperature_K: float) -> None:
        """Operate at another temperature (cells keep their draws; Δ ∝ 1/T)."""
        self._build(replace(self.params, temperature_K=temperature_K))

    def drift(self, dt_s: float) -> None:
        """Advance slow drift by ``dt_s`` seconds (random walk + linear, per cell)."""
        _check_num("", "dt_s", dt_s, 0.0, 1e9, "s")
        self.time_s += float(dt_s)
        var = self.variation
        if var is None or dt_s == 0:
            return
        step = var.drift_linear_mV_per_s * dt_s + var.drift_rw_mV_per_sqrt_s * np.sqrt(dt_s) \
            * self.rng.standard_normal(self.v_offset_mV.shape)
        self.v_offset_mV = self.v_offset_mV + step
        self._build(self.params)

    # -- probabilities ----------------------------------------------------------------------
    def _check_row(self, row) -> int:
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) \
                or not 0 <= row < self.rows:
            raise ValueError(f"row = {row!r}: out of range, allowed [0, {self.rows - 1}]")
        return int(row)

    def switch_prob(self, v_mV, t_pulse_ns: float | None = None):
        """Per-cell AP probability after one pulse from reset; ``v_mV`` broadcasts to (rows, cols)
        (a (cols,) vector applies per column to every row)."""
        return self.model.switch_prob(v_mV, t_pulse_ns)

    def sensed_prob(self, v_mV, t_pulse_ns: float | None = None):
        """Per-cell probability that reset + pulse + sense returns 1."""
        return self.model.sensed_prob(v_mV, t_pulse_ns)

    def read_error_prob(self):
        """(P(read 1 | P), P(read 0 | AP)), each (rows, cols)."""
        return self.model.read_error_prob()

    def cell_v50_mV(self, t_pulse_ns: float | None = None) -> np.ndarray:
        """Per-cell V50 (mV), drift included, shape (rows, cols)."""
        return self.model.v50_mV(t_pulse_ns)

    def _row_model(self, row: int) -> MTJModel:
        c = {k: v[row] for k, v in self._cells.items()}
        return MTJModel(self.params, v_offset_mV=self.v_offset_mV[row], **c)

    # -- operations -------------------------------------------------------------------------
    def reset(self, row) -> np.ndarray:
        """Reset pulse on ``row``: writes P (0), failing with ``reset_error_prob``."""
        r = self._check_row(row)
        u = self.rng.random(self.cols)
        self.state[r] = (u < self.params.reset_error_prob).astype(np.uint8)
        return self.state[r].copy()

    def pulse(self, row, v_mV_per_col, t_pulse_ns: float | None = None) -> np.ndarray:
        """Stochastic pulse on ``row`` with one voltage per column, from the row's current state.

        Returns the row's new states (uint8, shape (cols,)).
        """
        r = self._check_row(row)
        v = np.asarray(v_mV_per_col, dtype=float)
        if v.shape not in ((), (self.cols,)):
            raise ValueError(f"v_mV_per_col: shape {v.shape}, must be ({self.cols},)")
        p_ap = self._row_model(r).switch_prob(v, t_pulse_ns, p0=self.state[r].astype(float))
        self.state[r] = (self.rng.random(self.cols) < p_ap).astype(np.uint8)
        return self.state[r].copy()

    def sense(self, states, row) -> np.ndarray:
        """Sense ``states`` (shape (..., cols)) of cells in ``row`` -> bits with read errors.

        Each sense draws Gaussian current noise; a current below the midpoint reference reads 1.
        """
        r = self._check_row(row)
        s = np.asarray(states)
        if s.shape[-1:] != (self.cols,) or (s.size and (s.min() < 0 or s.max() > 1)):
            raise ValueError(f"states: shape {s.shape} with values in [0, 1] and last axis "
                             f"{self.cols} required")
        p = self.params
        v = p.v_read_mV * 1e-3
        r_p = self._cells["r_p_ohm"][r]
        i_cell = np.where(s == 1, v / (r_p * (1.0 + p.tmr_pct / 100.0)), v / r_p) * 1e9
        i_ref = 0.5 * (v / p.r_p_ohm + v / p.r_ap_ohm) * 1e9
        noise = p.read_noise_nA * self.rng.standard_normal(s.shape)
        return (i_cell + noise < i_ref).astype(np.uint8)

    def trials(self, row, codes, n: int, t_pulse_ns: float | None = None) -> np.ndarray:
        """``n`` independent reset + pulse + sense trials of ``row`` at amplitude ``codes``.

        ``codes``: (cols,) DAC codes (``self.dac``). Returns uint8 bits, shape (n, cols); the row's
        stored state is left at the last trial's state.
        """
        r = self._check_row(row)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 10**8:
            raise ValueError(f"n = {n!r}: must be an integer in [1, 100000000]")
        c = np.asarray(codes)
        if c.shape != (self.cols,):
            raise ValueError(f"codes: shape {c.shape}, must be ({self.cols},)")
        v = self.dac.code_to_mV(c)
        m = self._row_model(r)
        p_sw = m.switch_prob(v, t_pulse_ns)                   # from P
        p_back = 1.0 - m.switch_prob(v, t_pulse_ns, p0=1.0)   # from a failed reset (AP)
        failed = self.rng.random((n, self.cols)) < self.params.reset_error_prob
        u = self.rng.random((n, self.cols))
        states = np.where(failed, u >= p_back, u < p_sw).astype(np.uint8)
        self.state[r] = states[-1]
        return self.sense(states, r)

    def trial(self, row, codes, t_pulse_ns: float | None = None) -> np.ndarray:
        """One reset + pulse + sense of ``row`` at amplitude ``codes``: uint8 bits, shape (cols,).

        Consumes the generator exactly like ``trials(row, codes, 1)``.
        """
        return self.trials(row, codes, 1, t_pulse_ns)[0]


# --- emulator ROM and offsets ---------------------------------------------------------------
def emulator_table(dac: PulseDAC, model: MTJModel | MTJParams | None = None,
                   t_pulse_ns: float | None = None, prob_bits: int = 16,
                   include_read_errors: bool = True) -> tuple[int, ...]:
    """Emulator threshold ROM: ``thr[code] = clip(round(P(code)·2**U), 0, 2**U - 1)``.

    P is the nominal (scalar) device's probability of sensing 1 after reset + pulse (with reset
    and read errors unless ``include_read_errors`` is False), one entry per DAC code.
    """
    if model is None:
        model = MTJModel()
    elif isinstance(model, MTJParams):
        model = MTJModel(model)
    if not model.is_scalar:
        raise ValueError("model: emulator_table needs a scalar (nominal) MTJModel")
    if isinstance(prob_bits, bool) or not isinstance(prob_bits, int) or not 1 <= prob_bits <= 32:
        raise ValueError(f"prob_bits = {prob_bits!r}: must be an integer in [1, 32]")
    v = dac.code_to_mV(np.arange(dac.code_max + 1))
    prob = model.sensed_prob(v, t_pulse_ns) if include_read_errors \
        else model.switch_prob(v, t_pulse_ns)
    full = 1 << prob_bits
    thr = np.clip(np.rint(prob * full), 0, full - 1).astype(np.int64)
    return tuple(int(x) for x in thr)


def emulator_offsets(device: MTJArrayDevice, dac: PulseDAC | None = None,
                     t_pulse_ns: float | None = None, offset_width: int = 8) -> tuple[int, ...]:
    """Signed per-cell code offsets (row-major) modelling each cell's V50 shift.

    ``offset = round((V50_nominal - V50_cell)/lsb_mV)``, clipped to the signed
    ``offset_width``-bit range: a cell with a lower V50 switches more at the same code and gets a
    positive offset, so the emulator's ``idx = code + offset`` reads a higher threshold.
    """
    dac = device.dac if dac is None else dac
    if isinstance(offset_width, bool) or not isinstance(offset_width, int) \
            or not 2 <= offset_width <= 16:
        raise ValueError(f"offset_width = {offset_width!r}: must be an integer in [2, 16]")
    v50_nom = device.nominal.v50_mV(t_pulse_ns)
    v50 = device.cell_v50_mV(t_pulse_ns)
    lim = 1 << (offset_width - 1)
    off = np.clip(np.rint((v50_nom - v50) / dac.lsb_mV), -lim, lim - 1).astype(np.int64)
    return tuple(int(x) for x in off.ravel())


def default_emulator_config(array_cfg, seed: int = 1, variation: bool = True,
                            prob_bits: int = 16, offset_width: int = 8,
                            params: MTJParams | None = None
                            ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(table, offsets)`` for an ``EmulatorConfig`` of ``array_cfg`` (rows, cols, code_width).

    Uses the default ``MTJParams`` (or ``params``), a default-range ``PulseDAC`` of
    ``array_cfg.code_width`` bits, and an ``MTJArrayDevice`` seeded with ``seed`` (nominal cells,
    all offsets 0, when ``variation`` is False). Returns plain tuples: model.devices does not
    import model.blocks.
    """
    params = MTJParams() if params is None else params
    dac = PulseDAC(code_width=array_cfg.code_width)
    dev = MTJArrayDevice(params, array_cfg.rows, array_cfg.cols, seed=seed,
                         variation=MTJVariation() if variation else None, dac=dac)
    table = emulator_table(dac, dev.nominal, params.t_pulse_ns, prob_bits)
    offsets = emulator_offsets(dev, dac, params.t_pulse_ns, offset_width)
    return table, offsets
