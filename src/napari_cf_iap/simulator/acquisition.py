"""Render a phantom as a fat-saturated 3D SPGR acquisition under a given set of IAPs.

Pipeline (``mri-physics.md``), all on the phantom grid so the labels never depend on the IAPs:

1. per-voxel water and fat signal from the SPGR equation with T1, T2*, PD per tissue and field
   strength, the flip angle scaled by B1plus, the multi-peak fat phase at TE (partial-volume
   fat/FGT voxels mix as complex signals, so they cancel at opposed phase);
2. fat suppression (1 - eta(r)) when the scan options contain FS, SFS or SAT_GEMS;
3. through-plane averaging over the slice thickness (GE: ZIP2 zero-fill sinc interpolation);
4. receive field B1minus; complex Gaussian noise whose SNR scales with field strength and voxel
   volume, amplified by the parallel-imaging g-factor; the vendor intensity correction;
5. in-plane k-space: the acquired matrix (ZIP512 zero-fill on GE), vendor apodisation and
   partial-Fourier zero-fill along phase encoding (x, left-right);
6. magnitude (Rician noise), times the vendor's intensity scale.

Determinism: every random component draws from its own stream of ``seed``; the same phantom,
IAPs and seed give bit-identical volumes. The noise realisation depends only on the seed, so
two acquisitions of one phantom under different IAPs differ only by IAP-driven effects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import scipy.fft as sfft

from ..errors import IAPValueError, InputError
from ..iap.record import IAPRecord
from ..volume import Volume, affine_from_geometry
from . import tissues as T
from .anatomy import Phantom
from .fat_suppression import fat_sat_efficiency, fat_sat_enabled
from .noise_fields import SmoothGrid, substream
from .protocols import reported_field_strength
from .signal import fat_phase_factor
from .vendor_effects import (
    VendorProfile,
    apodization_window,
    g_factor_map,
    intensity_correction_residue,
    partial_fourier_mask,
    receive_field,
    transmit_field,
    vendor_profile,
)

#: Noise standard deviation (per real/imaginary channel, in units of the PD-normalised SPGR
#: signal) at 1.5 T for a 1 mm^3 acquired voxel, no acceleration, output voxel = acquired
#: voxel. Chosen so FGT in a typical Duke-like 1.5 T fat-sat protocol has an SNR of about 20-30.
NOISE_SIGMA_REF = 0.8e-3
#: SNR ~ B0 ** FIELD_SNR_EXPONENT: 3 T gives 2 ** 0.9 = 1.87x the SNR of 1.5 T at equal voxel
#: size (mri-physics.md: about 1.7-2x).
FIELD_SNR_EXPONENT = 0.9
_FFT_WORKERS = 2


@dataclass(frozen=True)
class AcquisitionOptions:
    """Switches for each physical effect (all on by default); for tests and ablations.

    ``fat_sat_efficiency`` replaces the spatial eta(r) map by a constant.
    ``return_maps`` keeps the B1+, receive, residue, g-factor and eta maps in the result.
    """

    noise: bool = True
    receive_field: bool = True
    transmit_field: bool = True
    fat_suppression: bool = True
    chemical_shift: bool = True
    slice_profile: bool = True
    kspace: bool = True
    parallel_imaging: bool = True
    texture: bool = True
    fat_sat_efficiency: float | None = None
    return_maps: bool = False

    @classmethod
    def ideal(cls, **changes: Any) -> AcquisitionOptions:
        """Only the SPGR equation (and fat suppression, if the scan options ask for it)."""
        off = dict(
            noise=False,
            receive_field=False,
            transmit_field=False,
            chemical_shift=False,
            slice_profile=False,
            kspace=False,
            parallel_imaging=False,
            texture=False,
        )
        off.update(changes)
        return cls(**off)


@dataclass
class SimulatedAcquisition:
    """A simulated series: the magnitude ``volume`` (float32, IAPs attached), the training
    ``labels`` and ``fine_labels`` on the same grid, the vendor profile used, the per-voxel
    noise sigma at unit fields, and optional effect maps."""

    volume: Volume
    labels: np.ndarray
    fine_labels: np.ndarray
    vendor: VendorProfile
    noise_sigma: float
    maps: dict[str, np.ndarray] = field(default_factory=dict)


_REQUIRED = ("field_strength", "flip_angle", "echo_time", "repetition_time", "slice_thickness")


def validate_iap(iap: IAPRecord) -> None:
    """Raise :class:`IAPValueError` if the IAPs cannot drive the simulator."""
    if not isinstance(iap, IAPRecord):
        raise InputError(f"expected an IAPRecord, got {type(iap).__name__}")
    missing = [name for name in _REQUIRED if getattr(iap, name) is None]
    if missing:
        raise IAPValueError(
            f"the simulator needs {', '.join(missing)}; set them with IAPRecord.with_values(...)"
        )
    if not 0.0 < iap.flip_angle <= 90.0:
        raise IAPValueError(f"flip angle must be in (0, 90] degrees, got {iap.flip_angle:g}")
    if iap.repetition_time <= 0 or iap.echo_time <= 0:
        raise IAPValueError("TE and TR must be positive milliseconds")
    if iap.echo_time >= iap.repetition_time:
        raise IAPValueError(
            f"TE ({iap.echo_time:g} ms) must be shorter than TR ({iap.repetition_time:g} ms)"
        )
    if not 0.1 <= iap.slice_thickness <= 20.0:
        raise IAPValueError(f"slice thickness must be 0.1-20 mm, got {iap.slice_thickness:g}")


def acquire(
    phantom: Phantom,
    iap: IAPRecord,
    *,
    seed: int,
    matrix: int | None = None,
    out_shape: tuple[int, int, int] | None = None,
    snr_scale: float = 1.0,
    options: AcquisitionOptions | None = None,
) -> SimulatedAcquisition:
    """Simulate ``phantom`` acquired with ``iap``; see the module docstring for the model.

    ``matrix`` overrides the acquired in-plane matrix; ``out_shape`` resamples the result
    (labels by nearest neighbour; still independent of the IAPs); ``snr_scale`` multiplies the
    SNR. The output grid is the phantom grid (or ``out_shape``) whatever the IAPs, so
    acquisitions of one phantom under different IAPs are pixel-aligned counterfactual pairs.
    """
    validate_iap(iap)
    if not snr_scale > 0:
        raise InputError(f"snr_scale must be positive, got {snr_scale}")
    if matrix is not None and not 16 <= int(matrix) <= 2048:
        raise InputError(f"matrix must be 16-2048, got {matrix}")
    opts = options or AcquisitionOptions()
    shape, vox = phantom.shape, phantom.voxel_mm
    b0 = float(iap.field_strength)
    profile = vendor_profile(iap, matrix)
    maps: dict[str, np.ndarray] = {}
    tables = T.parameter_tables(b0)
    fine = phantom.fine_labels
    tr, te = float(iap.repetition_time), float(iap.echo_time)

    # --- 1. water and fat magnetisation per voxel ---
    mix = (fine == T.FAT) | (fine == T.FGT)
    f = phantom.fgt_fraction
    pd = tables["pd"].astype(np.float32)
    ff = tables["fat_fraction"].astype(np.float32)
    water_pd = (pd * (1.0 - ff))[fine]
    fat_pd = (pd * ff)[fine]
    water_pd[mix] = f[mix] * pd[T.FGT]
    fat_pd[mix] = (1.0 - f[mix]) * pd[T.FAT]
    water_label = np.where(mix, np.uint8(T.FGT), fine)
    e1_w = np.exp(-tr / tables["t1"]).astype(np.float32)[water_label]
    t2_w = np.exp(-te / tables["t2star"]).astype(np.float32)[water_label]
    e1_f = np.float32(np.exp(-tr / tables["t1"][T.FAT]))
    t2_f = np.float32(np.exp(-te / tables["t2star"][T.FAT]))
    grid = SmoothGrid.for_volume(shape, vox)
    alpha = np.deg2rad(np.float32(iap.flip_angle))
    if opts.transmit_field:
        b1p = grid.upsample(transmit_field(grid, b0, seed))
        alpha = alpha * b1p
        if opts.return_maps:
            maps["b1_transmit"] = b1p
    sin_a, cos_a = np.sin(alpha), np.cos(alpha)
    water = water_pd * sin_a * (1.0 - e1_w) / (1.0 - cos_a * e1_w) * t2_w
    fat = fat_pd * sin_a * (1.0 - e1_f) / (1.0 - cos_a * e1_f) * t2_f
    del water_pd, fat_pd, e1_w, t2_w

    # --- 2. fat suppression ---
    if opts.fat_suppression and fat_sat_enabled(iap.scan_options):
        if opts.fat_sat_efficiency is not None:
            eta = np.full(shape, np.float32(opts.fat_sat_efficiency), dtype=np.float32)
        else:
            eta = grid.upsample(
                fat_sat_efficiency(grid, phantom.params, b0, iap.scan_options, seed)
            )
        fat = fat * (1.0 - eta)
        if opts.return_maps:
            maps["fat_sat_efficiency"] = eta
    c_fat = fat_phase_factor(te, b0) if opts.chemical_shift else 1.0
    image = water.astype(np.complex64) + fat.astype(np.complex64) * np.complex64(c_fat)
    del water, fat
    if opts.texture:
        image *= phantom.texture

    # --- 3. through-plane slice profile ---
    if opts.slice_profile and iap.slice_thickness > vox[0] * 1.001:
        if profile.zip2:
            image = _zero_fill_z(image, vox[0], float(iap.slice_thickness))
        else:
            image = _boxcar_z(image, float(iap.slice_thickness) / vox[0])

    # --- 4. receive field, noise, intensity correction ---
    fov_y, fov_x = shape[1] * vox[1], shape[2] * vox[2]
    acq_y, acq_x = fov_y / profile.acquired_matrix, fov_x / profile.acquired_matrix
    wy = apodization_window(shape[1], vox[1], acq_y, profile.apodization if opts.kspace else "none")
    wx = apodization_window(shape[2], vox[2], acq_x, profile.apodization if opts.kspace else "none")
    pf = profile.partial_fourier if opts.kspace else 1.0
    wx_pf = wx * partial_fourier_mask(shape[2], vox[2], acq_x, pf)
    sigma = _noise_sigma(iap, vox, acq_y, acq_x, profile, pf, snr_scale, opts)
    # signal x residue + noise x sigma x g x residue / receive, see intensity_correction_residue
    signal_gain = noise_gain = None
    if opts.receive_field:
        recv = receive_field(grid, phantom.params, seed)
        residue = intensity_correction_residue(profile, recv, grid, phantom.params, seed)
        signal_gain, noise_gain = residue, residue / recv
        if opts.return_maps:
            maps["receive"], maps["residue"] = grid.upsample(recv), grid.upsample(residue)
    if opts.noise and opts.parallel_imaging and profile.parallel_imaging != "none":
        g = g_factor_map(profile, grid, seed)
        noise_gain = g if noise_gain is None else noise_gain * g
        if opts.return_maps:
            maps["g_factor"] = grid.upsample(g)
    if signal_gain is not None:
        image *= grid.upsample(signal_gain)
    if opts.noise:
        filter_gain = 1.0 / np.sqrt(np.mean(wy**2) * np.mean(wx_pf**2)) if opts.kspace else 1.0
        noise = _complex_noise(shape, seed)
        noise *= np.float32(sigma * filter_gain)
        if noise_gain is not None:
            noise *= grid.upsample(noise_gain)
        image += noise
        del noise

    # --- 5. in-plane k-space: matrix, apodisation, partial Fourier ---
    if opts.kspace:
        k = sfft.fft2(image, axes=(1, 2), workers=_FFT_WORKERS, overwrite_x=True)
        k *= wy[:, None] * wx_pf[None, :]
        image = sfft.ifft2(k, axes=(1, 2), workers=_FFT_WORKERS, overwrite_x=True)
        del k

    # --- 6. magnitude ---
    magnitude = np.abs(image).astype(np.float32)
    magnitude *= np.float32(profile.scale)
    labels, fine_out = phantom.labels, phantom.fine_labels
    spacing = tuple(vox)
    if out_shape is not None and tuple(out_shape) != shape:
        magnitude, spacing = _resample_linear(magnitude, vox, tuple(out_shape))
        labels = _resample_nearest(labels, tuple(out_shape))
        fine_out = _resample_nearest(fine_out, tuple(out_shape))
    volume = Volume(
        data=magnitude,
        spacing=spacing,
        affine=simulator_affine(magnitude.shape, spacing),
        iap=_with_reported_values(iap, profile),
        metadata={
            "source": "napari_cf_iap.simulator",
            "phantom_seed": phantom.seed,
            "acquisition_seed": int(seed),
            "density": phantom.params.density,
            "fgt_fraction": phantom.fgt_fraction_of_breast(),
            "patient_position": "FFP",
            "vendor_profile": asdict(profile),
            "noise_sigma": float(sigma * profile.scale),
        },
    )
    return SimulatedAcquisition(
        volume=volume,
        labels=labels.copy(),
        fine_labels=fine_out.copy(),
        vendor=profile,
        noise_sigma=float(sigma * profile.scale),
        maps=maps,
    )


def _noise_sigma(
    iap: IAPRecord,
    vox: tuple[float, float, float],
    acq_y: float,
    acq_x: float,
    profile: VendorProfile,
    pf: float,
    snr_scale: float,
    opts: AcquisitionOptions,
) -> float:
    """Per-voxel noise sigma: SNR ~ B0^0.9 x acquired voxel volume x sqrt(acquired voxels
    averaged into one output voxel), / sqrt(R) for parallel imaging, x sqrt(partial-Fourier
    fraction) for the lines not measured."""
    field_factor = (float(iap.field_strength) / 1.5) ** FIELD_SNR_EXPONENT
    v_acq = acq_y * acq_x * float(iap.slice_thickness)
    n_avg = max(1.0, vox[1] * vox[2] / (acq_y * acq_x))
    snr = field_factor * v_acq * np.sqrt(n_avg) * snr_scale
    sigma = NOISE_SIGMA_REF / snr
    if opts.parallel_imaging:
        sigma *= np.sqrt(profile.acceleration)
    return float(sigma / np.sqrt(pf))


def _complex_noise(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = substream(seed, "thermal-noise")
    noise = rng.standard_normal((2, *shape), dtype=np.float32)
    return noise[0] + 1j * noise[1]


def _boxcar_z(image: np.ndarray, width: float) -> np.ndarray:
    """Average each slice over a slab ``width`` slices thick (exact overlap weights)."""
    half = width / 2.0
    m = int(np.ceil(half - 0.5))
    weights = []
    for k in range(-m, m + 1):
        lo, hi = max(k - 0.5, -half), min(k + 0.5, half)
        weights.append(max(hi - lo, 0.0))
    weights = np.array(weights) / sum(weights)
    padded = np.pad(image, ((m, m), (0, 0), (0, 0)), mode="edge")
    out = np.zeros_like(image)
    n = image.shape[0]
    for i, w in enumerate(weights):
        out += np.complex64(w) * padded[i : i + n]
    return out


def _zero_fill_z(image: np.ndarray, dz: float, thickness: float) -> np.ndarray:
    """GE ZIP2: partitions ``thickness`` mm thick, zero-fill (sinc) interpolated to the grid."""
    k = sfft.fft(image, axis=0, workers=_FFT_WORKERS)
    kz = np.abs(np.fft.fftfreq(image.shape[0], d=dz)) * 2.0 * thickness
    window = (1.0 / (1.0 + np.exp((kz - 0.95) / 0.04))).astype(np.float32)
    k *= window[:, None, None]
    return sfft.ifft(k, axis=0, workers=_FFT_WORKERS).astype(np.complex64)


def simulator_affine(
    shape: tuple[int, int, int], spacing: tuple[float, float, float]
) -> np.ndarray:
    """Axial affine of the phantom frame: columns -> patient left (+x, LPS), rows -> posterior
    (+y), slices -> superior (+z); the field of view is centred on the origin."""
    nz, ny, nx = shape
    dz, dy, dx = spacing
    origin = np.array([-(nx - 1) / 2.0 * dx, -(ny - 1) / 2.0 * dy, -(nz - 1) / 2.0 * dz])
    return affine_from_geometry(origin, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), (dz, dy, dx))


def _with_reported_values(iap: IAPRecord, profile: VendorProfile) -> IAPRecord:
    extras = dict(iap.extras or {})
    extras.setdefault(
        "reported_field_strength",
        reported_field_strength(iap.manufacturer, float(iap.field_strength)),
    )
    extras.setdefault("rows", profile.reported_matrix)
    extras.setdefault("columns", profile.reported_matrix)
    extras.setdefault("acquisition_matrix", profile.acquired_matrix)
    return replace(iap, extras=extras)


def _resample_nearest(labels: np.ndarray, out_shape: tuple[int, int, int]) -> np.ndarray:
    idx = [
        np.minimum((np.arange(n_out) + 0.5) * n_in / n_out, n_in - 1).astype(int)
        for n_in, n_out in zip(labels.shape, out_shape, strict=True)
    ]
    return labels[np.ix_(*idx)]


def _resample_linear(
    volume: np.ndarray, vox: tuple[float, float, float], out_shape: tuple[int, int, int]
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Cell-centred linear resampling (area-preserving grid: same field of view)."""
    if len(out_shape) != 3 or min(out_shape) < 1:
        raise InputError(f"out_shape must be 3 positive sizes, got {out_shape}")
    out = volume
    for axis, n_out in enumerate(out_shape):
        n_in = volume.shape[axis]
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        w = (pos - lo).astype(np.float32)
        a, b = np.take(out, lo, axis=axis), np.take(out, hi, axis=axis)
        view = [1, 1, 1]
        view[axis] = -1
        out = a * (1 - w.reshape(view)) + b * w.reshape(view)
    spacing = tuple(
        v * n_in / n_out for v, n_in, n_out in zip(vox, volume.shape, out_shape, strict=True)
    )
    return out.astype(np.float32), spacing  # type: ignore[return-value]
