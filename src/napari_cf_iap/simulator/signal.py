"""Closed-form spoiled-gradient-echo (SPGR / FLASH / VIBE / VIBRANT / LAVA) signal.

``mri-physics.md``, "Signal model":

    S = k * B1minus * PD * sin(a_eff) * (1 - E1) / (1 - cos(a_eff) * E1) * exp(-TE / T2*)

with E1 = exp(-TR / T1) and a_eff = a * B1plus. Fat resonates about 3.4 ppm below water
(217 Hz at 1.5 T, 434 Hz at 3 T); the multi-peak fat model uses the ppm offsets and relative
amplitudes listed there.
"""

from __future__ import annotations

import numpy as np

#: Gyromagnetic ratio of 1H over 2 pi, in Hz per tesla.
GAMMA_HZ_PER_T = 42.577478e6

#: Multi-peak fat spectrum (mri-physics.md): chemical shifts relative to water, in ppm.
FAT_PEAKS_PPM = np.array([-3.80, -3.40, -2.60, -1.94, -0.39, +0.60])
#: Relative amplitudes of the fat peaks (sum 0.999).
FAT_PEAK_AMPLITUDES = np.array([0.087, 0.693, 0.128, 0.004, 0.039, 0.048])


def spgr_signal(
    pd: np.ndarray | float,
    t1_ms: np.ndarray | float,
    t2star_ms: np.ndarray | float,
    flip_angle_deg: np.ndarray | float,
    tr_ms: float,
    te_ms: float,
) -> np.ndarray:
    """Steady-state SPGR magnitude for unit k and B1minus (broadcasts over arrays)."""
    alpha = np.deg2rad(flip_angle_deg)
    e1 = np.exp(-np.asarray(tr_ms, dtype=float) / np.asarray(t1_ms, dtype=float))
    steady = np.sin(alpha) * (1.0 - e1) / (1.0 - np.cos(alpha) * e1)
    return np.asarray(pd) * steady * np.exp(-te_ms / np.asarray(t2star_ms, dtype=float))


def ernst_angle_deg(tr_ms: float, t1_ms: float) -> float:
    """Flip angle that maximises SPGR signal: arccos(exp(-TR/T1)), in degrees."""
    return float(np.rad2deg(np.arccos(np.exp(-tr_ms / t1_ms))))


def fat_phase_factor(te_ms: float, field_strength_t: float) -> complex:
    """Complex multi-peak fat signal at TE relative to water (1.0 at TE = 0).

    The main peak at -3.4 ppm dephases from water at 3.4e-6 * gamma * B0 (217 Hz at 1.5 T), so
    water/fat mixtures cancel at the opposed-phase TE (about 2.3 ms at 1.5 T, 1.15 ms at 3 T).
    """
    freqs_hz = FAT_PEAKS_PPM * 1e-6 * GAMMA_HZ_PER_T * field_strength_t
    return complex(np.sum(FAT_PEAK_AMPLITUDES * np.exp(2j * np.pi * freqs_hz * te_ms * 1e-3)))


def opposed_phase_te_ms(field_strength_t: float) -> float:
    """First opposed-phase echo time of the main fat peak (2.3 ms at 1.5 T)."""
    return float(1e3 / (2.0 * 3.4e-6 * GAMMA_HZ_PER_T * field_strength_t))
