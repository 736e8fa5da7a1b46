"""Seeded smooth random fields: fBm texture for anatomy and low-frequency fields for bias maps.

``mri-physics.md`` (procedural anatomy): FGT comes from a smoothed 3D fractional-Brownian-motion
noise field with about 6 octaves, lacunarity about 2 and persistence about 0.5.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from .phantom_grid import grid_coordinates

_FFT_WORKERS = 2


def substream(seed: int, name: str) -> np.random.Generator:
    """An independent generator for one named component of a seeded simulation.

    Separate streams keep components stable when another component changes.
    """
    return np.random.default_rng(
        np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])
    )


def fbm_noise(
    shape: tuple[int, ...],
    voxel_mm: tuple[float, ...],
    rng: np.random.Generator,
    *,
    base_wavelength_mm: float = 40.0,
    octaves: int = 6,
    lacunarity: float = 2.0,
    persistence: float = 0.5,
) -> np.ndarray:
    """Zero-mean, unit-variance fBm field (float32), isotropic in millimetres.

    Spectral synthesis of the sum of ``octaves`` independent smooth-noise octaves: octave ``o``
    has wavelength ``base_wavelength_mm / lacunarity**o`` and amplitude ``persistence**o``.
    Each octave is Gaussian-filtered white noise normalised to unit variance; because the
    octaves are independent their power spectra add, so one FFT of one white-noise field gives
    the whole sum.
    """
    freqs = []
    for n, d in zip(shape[:-1], voxel_mm[:-1], strict=True):
        freqs.append(sfft.fftfreq(n, d=d).astype(np.float32))
    freqs.append(sfft.rfftfreq(shape[-1], d=voxel_mm[-1]).astype(np.float32))
    k2 = np.zeros([len(f) for f in freqs], dtype=np.float32)
    for axis, f in enumerate(freqs):
        view = [1] * len(freqs)
        view[axis] = -1
        k2 = k2 + (f**2).reshape(view)
    power = np.zeros_like(k2)
    n_total = float(np.prod(shape))
    for octave in range(octaves):
        wavelength = base_wavelength_mm / lacunarity**octave
        sigma_mm = wavelength / (2.0 * np.pi)
        gain = np.exp(-2.0 * np.pi**2 * sigma_mm**2 * k2)  # Gaussian low-pass, amplitude
        # variance of the filtered unit white noise (Parseval over the half spectrum)
        g2 = gain**2
        var = (2.0 * g2.sum() - g2[..., 0].sum()) / n_total
        power += (persistence ** (2 * octave)) * g2 / max(var, 1e-12)
    white = rng.standard_normal(shape, dtype=np.float32)
    spectrum = sfft.rfftn(white, workers=_FFT_WORKERS)
    spectrum *= np.sqrt(power)
    spectrum.flat[0] = 0.0
    field = sfft.irfftn(spectrum, s=shape, workers=_FFT_WORKERS)
    field /= max(float(field.std()), 1e-12)
    return field.astype(np.float32, copy=False)


def _interpolation_matrix(n_out: int, n_in: int, kind: str = "gaussian") -> np.ndarray:
    """(n_out, n_in) weights interpolating a coarse grid whose ends align with the fine grid's.

    ``gaussian`` smooths (for random fields); ``cubic`` is the Catmull-Rom (Keys, a = -0.5)
    interpolant, exact at the nodes (for sampled smooth functions).
    """
    if n_in == 1:
        return np.ones((n_out, 1), dtype=np.float32)
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    if kind == "gaussian":
        d = pos[:, None] - np.arange(n_in)[None, :]
        w = np.exp(-0.5 * (d / 0.6) ** 2)
        w /= w.sum(axis=1, keepdims=True)
        return w.astype(np.float32)
    w = np.zeros((n_out, n_in))
    base = np.floor(pos).astype(int)
    for offset in (-1, 0, 1, 2):
        node = base + offset
        s = np.abs(pos - node)
        k = np.where(
            s <= 1.0,
            1.5 * s**3 - 2.5 * s**2 + 1.0,
            np.where(s < 2.0, -0.5 * s**3 + 2.5 * s**2 - 4.0 * s + 2.0, 0.0),
        )
        np.add.at(w, (np.arange(n_out), np.clip(node, 0, n_in - 1)), k)
    return w.astype(np.float32)


def upsample_separable(
    coarse: np.ndarray, shape: tuple[int, int, int], kind: str = "gaussian"
) -> np.ndarray:
    """Upsample a small 3D grid to ``shape`` with one matrix product per axis."""
    mz, my, mx = (
        _interpolation_matrix(n, c, kind) for n, c in zip(shape, coarse.shape, strict=True)
    )
    out = np.tensordot(coarse.astype(np.float32), mx, axes=([2], [1]))  # (cz, cy, X)
    out = np.tensordot(my, out, axes=([1], [1]))  # (Y, cz, X)
    out = np.tensordot(mz, out, axes=([1], [1]))  # (Z, Y, X)
    return np.ascontiguousarray(out, dtype=np.float32)


def smooth_field(
    shape: tuple[int, int, int],
    voxel_mm: tuple[float, float, float],
    rng: np.random.Generator,
    *,
    scale_mm: float = 80.0,
) -> np.ndarray:
    """Zero-mean, roughly unit-variance, very smooth random field (float32).

    Random values on a coarse grid with node spacing ``scale_mm`` are interpolated with a
    Gaussian kernel; cost is a few matrix products, so it is cheap for bias and shim maps.
    """
    extent = [n * d for n, d in zip(shape, voxel_mm, strict=True)]
    coarse_shape = tuple(max(2, int(np.ceil(e / scale_mm)) + 1) for e in extent)
    coarse = rng.standard_normal(coarse_shape).astype(np.float32)
    field = upsample_separable(coarse, shape)
    field -= field.mean()
    field /= max(float(field.std()), 1e-6)
    return field


@dataclass(frozen=True)
class SmoothGrid:
    """A coarse grid (about ``step_mm`` spacing) spanning a volume, for smooth maps.

    Bias, B1, shim, fat-sat and g-factor maps vary over centimetres: they are computed and
    combined on this grid and upsampled once (:meth:`upsample`, Catmull-Rom, exact at nodes).
    ``z``, ``y``, ``x`` are broadcastable coarse coordinates in the phantom frame (mm).
    """

    shape: tuple[int, int, int]
    voxel_mm: tuple[float, float, float]
    z: np.ndarray
    y: np.ndarray
    x: np.ndarray

    @classmethod
    def for_volume(
        cls,
        shape: tuple[int, int, int],
        voxel_mm: tuple[float, float, float],
        step_mm: float = 10.0,
    ) -> SmoothGrid:
        full = grid_coordinates(shape, voxel_mm)
        coarse = []
        for axis, (n, d) in enumerate(zip(shape, voxel_mm, strict=True)):
            m = max(2, min(n, int(np.ceil(n * d / step_mm)) + 1))
            c = np.linspace(full[axis][0], full[axis][-1], m).astype(np.float32)
            view = [1, 1, 1]
            view[axis] = -1
            coarse.append(c.reshape(view))
        return cls(tuple(shape), tuple(voxel_mm), *coarse)  # type: ignore[arg-type]

    @property
    def coarse_shape(self) -> tuple[int, int, int]:
        return (self.z.size, self.y.size, self.x.size)

    def full(self, values: np.ndarray | float) -> np.ndarray:
        """Broadcast coarse values (or a scalar expression of the coordinates) to the grid."""
        return np.broadcast_to(np.asarray(values, dtype=np.float32), self.coarse_shape).copy()

    def random(
        self, rng: np.random.Generator, nodes: tuple[int, int, int] = (4, 4, 4)
    ) -> np.ndarray:
        """A smooth zero-mean random field on the coarse grid from ``nodes`` random values."""
        return upsample_separable(rng.standard_normal(nodes).astype(np.float32), self.coarse_shape)

    def upsample(self, values: np.ndarray) -> np.ndarray:
        """Coarse values -> full-resolution float32 field of ``shape``."""
        return upsample_separable(self.full(values), self.shape, kind="cubic")


def evaluate_smooth(
    fn,
    shape: tuple[int, int, int],
    voxel_mm: tuple[float, float, float],
    *,
    step_mm: float = 8.0,
) -> np.ndarray:
    """Evaluate a smooth function ``fn(z, y, x)`` (mm coordinates) on a coarse grid and
    upsample it to ``shape``."""
    grid = SmoothGrid.for_volume(shape, voxel_mm, step_mm)
    return grid.upsample(fn(grid.z, grid.y, grid.x))
