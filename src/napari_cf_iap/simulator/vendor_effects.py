"""Manufacturer signatures of an acquisition, each a named, documented effect.

From ``mri-physics.md``, "Where manufacturers differ" and "Signal model":

- receive-coil sensitivity B1minus, a smooth multiplicative field of about +-20-40 %, and the
  residue the vendor's intensity correction leaves (Siemens Prescan Normalize versus GE
  PURE/SCIC);
- the transmit-field error B1plus, stronger at 3 T with a 9-14 % left/right breast asymmetry
  (Rahbar 2012, 2013);
- parallel-imaging noise amplification by the g-factor (GE ASSET, ScanOptions ``ACC_GEMS``,
  versus Siemens GRAPPA);
- vendor k-space apodisation (GE Fermi versus a Hamming-like Siemens taper);
- partial-Fourier (``PFP``) blur along the phase-encoding direction;
- GE ZIP512 in-plane and ZIP2 through-plane zero-fill interpolation (SpacingBetweenSlices about
  SliceThickness / 2).

The reference gives the kinds of effect and their sizes where stated (bias +-20-40 %, B1+
asymmetry 9-14 %); the remaining shapes and strengths (correction strength, g-factor maxima,
Fermi radius, partial-Fourier fraction, acquired matrix) are modelling choices, named as
constants below so they can be inspected and changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..iap.normalise import GE, SIEMENS
from ..iap.record import IAPRecord
from .anatomy import SubjectParams
from .noise_fields import SmoothGrid, substream

# --- modelling constants (not from the reference unless stated) ---
#: Fraction of the log receive field each vendor's intensity correction removes.
PRESCAN_NORMALIZE_STRENGTH = 0.75
PURE_STRENGTH = 0.55
#: Peak-to-mean amplitude of the raw receive field (reference: +-20-40 %).
RECEIVE_FIELD_AMPLITUDE = (0.20, 0.40)
#: Sensitivity far from the breast coil, relative to one element's peak (posterior thorax).
RECEIVE_FLOOR = 0.6
#: B1+ left/right asymmetry at 3 T (reference: 9-14 %, Rahbar 2012, 2013); at 1.5 T, assumed.
B1_ASYMMETRY_3T = (0.09, 0.14)
B1_ASYMMETRY_15T = (0.0, 0.03)
#: Peak g-factor, parallel-imaging acceleration R = 2 along phase encoding.
ASSET_G_MAX = (1.25, 1.45)
GRAPPA_G_MAX = (1.05, 1.15)
ACCELERATION = 2.0
#: Partial-Fourier fraction of phase-encoding lines (6/8 on Siemens, 0.7 on GE).
PARTIAL_FOURIER = {GE: 0.70, SIEMENS: 0.75}
#: Acquired in-plane matrix: GE acquires about 320 and reports 512 (ZIP512); Siemens 448.
ACQUIRED_MATRIX = {GE: 320, SIEMENS: 448}
REPORTED_MATRIX = {GE: 512, SIEMENS: 448}
#: Fermi filter radius and width, relative to the acquired k-space edge (GE).
FERMI_RADIUS, FERMI_WIDTH = 0.90, 0.04
#: Strength of the Hamming-like Siemens taper (1 = full Hamming, 0.08 at the k-space edge).
HAMMING_STRENGTH = 0.5
#: Output intensity scale per vendor (scanners use different integer ranges).
VENDOR_SCALE = {GE: 2.0e4, SIEMENS: 1.2e4}
DEFAULT_SCALE = 1.5e4


@dataclass(frozen=True)
class VendorProfile:
    """The reconstruction and hardware choices that make up one vendor's signature."""

    manufacturer: str
    intensity_correction: str  # 'prescan_normalize', 'pure' or 'none'
    apodization: str  # 'fermi', 'hamming' or 'none'
    parallel_imaging: str  # 'ASSET', 'GRAPPA' or 'none'
    acceleration: float
    partial_fourier: float  # 1.0 = full k-space
    acquired_matrix: int
    reported_matrix: int
    zip2: bool  # GE slice zero-fill interpolation
    scale: float


def scan_option_tokens(scan_options: str | None) -> set[str]:
    """The DICOM ScanOptions values as a set (``'PFP\\\\FS'`` -> {'PFP', 'FS'})."""
    return {t.strip().upper() for t in (scan_options or "").split("\\") if t.strip()}


def vendor_profile(iap: IAPRecord, matrix: int | None = None) -> VendorProfile:
    """Derive the vendor signature from the IAPs (manufacturer, scan options, extras).

    ``iap.extras`` may override ``acquisition_matrix``, ``partial_fourier`` and
    ``parallel_imaging``; ``matrix`` overrides the acquired matrix.
    """
    tokens = scan_option_tokens(iap.scan_options)
    maker = iap.manufacturer
    if maker == GE:
        profile = dict(
            intensity_correction="pure",
            apodization="fermi",
            parallel_imaging="ASSET" if "ACC_GEMS" in tokens else "none",
            zip2=True,
        )
    elif maker == SIEMENS:
        # Siemens breast VIBE protocols use GRAPPA; it does not appear in ScanOptions.
        profile = dict(
            intensity_correction="prescan_normalize",
            apodization="hamming",
            parallel_imaging="GRAPPA",
            zip2=False,
        )
    else:
        profile = dict(
            intensity_correction="none", apodization="none", parallel_imaging="none", zip2=False
        )
    extras = iap.extras or {}
    pi = str(extras.get("parallel_imaging", profile["parallel_imaging"]))
    pf_default = PARTIAL_FOURIER.get(maker or "", 0.75) if "PFP" in tokens else 1.0
    acquired = int(
        matrix or extras.get("acquisition_matrix") or ACQUIRED_MATRIX.get(maker or "", 384)
    )
    return VendorProfile(
        manufacturer=maker or "unknown",
        intensity_correction=profile["intensity_correction"],
        apodization=profile["apodization"],
        parallel_imaging=pi,
        acceleration=ACCELERATION if pi != "none" else 1.0,
        partial_fourier=float(extras.get("partial_fourier", pf_default)),
        acquired_matrix=acquired,
        reported_matrix=int(extras.get("rows") or REPORTED_MATRIX.get(maker or "", acquired)),
        zip2=bool(profile["zip2"]),
        scale=VENDOR_SCALE.get(maker or "", DEFAULT_SCALE),
    )


def receive_field(grid: SmoothGrid, params: SubjectParams, seed: int) -> np.ndarray:
    """Raw receive-coil sensitivity B1minus on ``grid`` (median 1 in the breasts).

    A prone bilateral breast coil has elements around each breast well near the chest surface,
    so the signal is highest at the breast periphery and falls off into the chest towards a
    floor (RECEIVE_FLOOR); a seeded smooth term varies it per scan. The 95th-percentile
    deviation inside the breasts is drawn from +-20-40 % (mri-physics.md).
    """
    rng = substream(seed, "receive-field")
    amplitude = rng.uniform(*RECEIVE_FIELD_AMPLITUDE)
    base_y = params.chest_front_y - 10.0
    s = grid.full(RECEIVE_FLOOR)
    for b in params.breasts:
        for dx, dz in ((1.05, 0.0), (-1.05, 0.0), (0.0, 1.1), (0.0, -1.1)):
            ez, ey, ex = (
                b.center_z + dz * b.radius_z,
                base_y - 0.3 * b.depth,
                b.center_x + dx * b.radius_x,
            )
            d2 = (grid.z - ez) ** 2 + (grid.y - ey) ** 2 + (grid.x - ex) ** 2
            s += rng.uniform(0.8, 1.2) / (1.0 + d2 / 40.0**2)
    s *= 1.0 + 0.08 * grid.random(rng)
    log_s = np.log(np.maximum(s, 1e-6))
    ref = breast_box(grid, params)
    log_s -= float(np.median(log_s[ref]))
    spread = float(np.percentile(np.abs(log_s[ref]), 95)) + 1e-6
    return np.exp(log_s * (np.log1p(amplitude) / spread)).astype(np.float32)


def breast_box(grid: SmoothGrid, params: SubjectParams) -> np.ndarray:
    """Boolean mask (coarse grid) of the box around both breasts, used to normalise fields."""
    zmask = np.abs(grid.z - params.breasts[0].center_z) < params.breasts[0].radius_z
    depth = max(b.depth for b in params.breasts)
    ymask = (grid.y < params.chest_front_y) & (grid.y > params.chest_front_y - 0.8 * depth)
    xmask = np.zeros(grid.x.shape, dtype=bool)
    for b in params.breasts:
        xmask |= np.abs(grid.x - b.center_x) < 0.8 * b.radius_x
    mask = np.broadcast_to(zmask & ymask & xmask, grid.coarse_shape)
    return mask if mask.any() else np.ones(grid.coarse_shape, dtype=bool)


def intensity_correction_residue(
    profile: VendorProfile, receive: np.ndarray, grid: SmoothGrid, params: SubjectParams, seed: int
) -> np.ndarray:
    """Field left after the vendor's intensity correction (multiplies the final image).

    - ``prescan_normalize`` (Siemens Prescan Normalize): a body-coil reference prescan removes
      most of the coil profile (PRESCAN_NORMALIZE_STRENGTH of the log field); a few percent of
      smooth low-frequency error remain.
    - ``pure`` (GE PURE / SCIC): a weaker correction (PURE_STRENGTH) that also over-brightens
      the deep central part of each breast.
    - ``none``: the raw receive field.
    The noise, added before the correction, is scaled by residue / receive.
    """
    if profile.intensity_correction == "none":
        return receive.copy()
    rng = substream(seed, "correction-residue")
    error = grid.random(rng, (3, 3, 3))
    if profile.intensity_correction == "prescan_normalize":
        return (receive ** (1.0 - PRESCAN_NORMALIZE_STRENGTH) * (1.0 + 0.03 * error)).astype(
            np.float32
        )
    bump = grid.full(0.0)
    for b in params.breasts:
        d2 = ((grid.x - b.center_x) / (0.6 * b.radius_x)) ** 2 + (
            (grid.z - b.center_z) / (0.6 * b.radius_z)
        ) ** 2
        d2 = d2 + ((grid.y - (params.chest_front_y - 0.4 * b.depth)) / (0.5 * b.depth)) ** 2
        bump += np.exp(-d2)
    residue = receive ** (1.0 - PURE_STRENGTH) * (1.0 + 0.08 * bump) * (1.0 + 0.04 * error)
    return residue.astype(np.float32)


def transmit_field(grid: SmoothGrid, field_strength: float, seed: int) -> np.ndarray:
    """B1plus on ``grid``: relative flip-angle scale with a left/right breast asymmetry.

    At 3 T the two breasts differ by 9-14 % (Rahbar 2012, 2013, via mri-physics.md); at 1.5 T
    the asymmetry is assumed to be 0-3 %. Which breast is low is drawn from the seed, plus a
    small anterior-posterior drift.
    """
    rng = substream(seed, "b1-transmit")
    w = float(np.clip((field_strength - 1.5) / 1.5, 0.0, 1.0))
    lo = B1_ASYMMETRY_15T[0] + w * (B1_ASYMMETRY_3T[0] - B1_ASYMMETRY_15T[0])
    hi = B1_ASYMMETRY_15T[1] + w * (B1_ASYMMETRY_3T[1] - B1_ASYMMETRY_15T[1])
    asym = rng.uniform(lo, hi) * rng.choice([-1.0, 1.0])
    drift = rng.uniform(-0.03, 0.03) * (0.3 + w)
    return grid.full(1.0 + 0.5 * asym * np.tanh(grid.x / 35.0) + drift * (grid.y - 170.0) / 170.0)


def g_factor_map(profile: VendorProfile, grid: SmoothGrid, seed: int) -> np.ndarray:
    """Parallel-imaging noise amplification g(r) on ``grid``, acceleration along x.

    SENSE-type GE ASSET unfolds in image space and leaves a pronounced peak where folded
    positions have similar coil sensitivity (the midline chest); k-space GRAPPA on Siemens
    gives a lower, broader map. Noise is further multiplied by sqrt(R) (fewer lines).
    """
    if profile.parallel_imaging == "none":
        return grid.full(1.0)
    rng = substream(seed, "g-factor")
    if profile.parallel_imaging.upper() == "ASSET":
        g_max, width = rng.uniform(*ASSET_G_MAX), 55.0
    else:
        g_max, width = rng.uniform(*GRAPPA_G_MAX), 90.0
    ramp = 0.6 + 0.4 * np.clip(grid.y / 340.0, 0.0, 1.0)
    return grid.full(1.0 + (g_max - 1.0) * np.exp(-((grid.x / width) ** 2)) * ramp)


def apodization_window(n: int, grid_mm: float, acquired_mm: float, kind: str) -> np.ndarray:
    """1D k-space weights (FFT order) for a grid of ``n`` pixels of ``grid_mm``.

    Frequencies are expressed relative to the acquired k-space edge 1 / (2 * acquired_mm): beyond
    it nothing was measured (zero-fill, e.g. GE ZIP512), inside it the vendor window applies:
    ``fermi`` 1 / (1 + exp((k - 0.9) / 0.04)) (GE), ``hamming`` a Hamming taper blended
    HAMMING_STRENGTH with 1 (Siemens), ``none`` a plain truncation.
    """
    k = np.abs(np.fft.fftfreq(n, d=grid_mm)) * 2.0 * acquired_mm
    if kind == "fermi":
        w = 1.0 / (1.0 + np.exp((k - FERMI_RADIUS) / FERMI_WIDTH))
    elif kind == "hamming":
        w = 1.0 - HAMMING_STRENGTH * 0.46 * (1.0 - np.cos(np.pi * np.clip(k, 0.0, 1.0)))
    else:
        w = np.ones_like(k)
    w[k > 1.0] = 0.0
    return w.astype(np.float32)


def partial_fourier_mask(n: int, grid_mm: float, acquired_mm: float, fraction: float) -> np.ndarray:
    """1D mask (FFT order) of a zero-filled partial-Fourier acquisition along phase encoding.

    Only ``fraction`` of the lines are measured: all positive frequencies and the negative ones
    down to -(2 * fraction - 1) of the acquired edge; the rest is zero-filled, which blurs the
    magnitude image along phase encoding.
    """
    if fraction >= 1.0:
        return np.ones(n, dtype=np.float32)
    k = np.fft.fftfreq(n, d=grid_mm) * 2.0 * acquired_mm
    return (k >= -(2.0 * fraction - 1.0)).astype(np.float32)


def ge_zip2_slice_spacing(slice_thickness: float) -> float:
    """GE ZIP2 reconstructs slices at half the slice thickness (SpacingBetweenSlices)."""
    return slice_thickness / 2.0
