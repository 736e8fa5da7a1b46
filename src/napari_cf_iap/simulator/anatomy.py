"""Procedural prone axial breast anatomy (``mri-physics.md``, "Procedural anatomy").

Geometry is defined in millimetres and sampled on the phantom grid, so one seed gives the same
subject at any grid size. Array axes are (z, y, x): z runs inferior -> superior, y anterior ->
posterior (breasts at the top of each slice, as in the Duke display), x patient right -> left.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ..errors import InputError
from . import tissues as T
from .noise_fields import fbm_noise, smooth_field, substream
from .phantom_grid import grid_coordinates

#: Target FGT fraction (FGT / (breast + FGT) voxels) per BI-RADS density category.
#: BI-RADS a-d are mammographic categories; MRI-measured FGT percentages are lower than the
#: mammographic quartiles, so these ranges are an assumed mapping, not a published table.
DENSITY_FGT_RANGES: dict[str, tuple[float, float]] = {
    "a": (0.03, 0.10),
    "b": (0.10, 0.22),
    "c": (0.22, 0.35),
    "d": (0.35, 0.50),
}
#: Population mix of density categories (roughly the US screening population: 10/40/40/10 %).
DENSITY_PROBABILITIES = {"a": 0.10, "b": 0.40, "c": 0.40, "d": 0.10}

DEFAULT_SHAPE = (64, 256, 256)
#: Widening of the breast footprint at the chest wall, so the breasts join the chest smoothly.
BASE_FLARE = 0.22
#: Field of view in mm along (z, y, x); the default voxel size is this divided by the shape.
DEFAULT_FOV_MM = (128.0, 340.0, 340.0)


@dataclass(frozen=True)
class BreastParams:
    """One breast: base centre (x, z) in mm, radii, projection depth, shape and ptosis."""

    center_x: float
    center_z: float
    radius_x: float
    radius_z: float
    depth: float
    profile_exponent: float  # superquadric exponent of the radius-vs-depth profile
    ptosis: float  # inferior sag of the tip, as a fraction of radius_z


@dataclass(frozen=True)
class SubjectParams:
    """The random subject drawn from a seed (all lengths in mm)."""

    density: str
    fgt_target: float
    torso_half_width: float
    torso_half_depth: float
    chest_front_y: float
    torso_exponent: float
    torso_taper: float
    subcutaneous_fat: float
    muscle: float
    rib_ring: float
    rib_period: float
    rib_slope: float
    skin: float
    retromammary_fat: float
    breasts: tuple[BreastParams, BreastParams]
    heart_center: tuple[float, float, float]  # (z, y, x)
    heart_radii: tuple[float, float, float]
    liver_top_z: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def torso_center_y(self) -> float:
        return self.chest_front_y + self.torso_half_depth


@dataclass
class Phantom:
    """A simulated subject on its grid.

    ``fine_labels`` (z, y, x) uint8 tissue ids (see :mod:`.tissues`); ``labels`` the training
    labels (0 background/other, 1 fat/breast, 2 FGT); ``breast_region`` the breast mask;
    ``fgt_fraction`` the sub-voxel FGT share of breast fat/FGT voxels (partial volume, 0..1);
    ``texture`` a mild multiplicative tissue heterogeneity (about 1 +- 0.04).
    """

    fine_labels: np.ndarray
    labels: np.ndarray
    breast_region: np.ndarray
    fgt_fraction: np.ndarray
    texture: np.ndarray
    voxel_mm: tuple[float, float, float]
    seed: int
    params: SubjectParams
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.fine_labels.shape)  # type: ignore[return-value]

    def fgt_fraction_of_breast(self) -> float:
        """Measured FGT voxels / (breast + FGT voxels)."""
        n_fgt = int((self.labels == T.TRAINING_FGT).sum())
        n_breast = int((self.labels > 0).sum())
        return n_fgt / max(n_breast, 1)

    def coordinates_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """1D coordinates (z, y, x) in the phantom frame (see :func:`grid_coordinates`)."""
        return grid_coordinates(self.shape, self.voxel_mm)


def default_voxel_mm(shape: tuple[int, int, int]) -> tuple[float, float, float]:
    """Voxel size that spans :data:`DEFAULT_FOV_MM` (128 x 340 x 340 mm) with ``shape``."""
    return tuple(f / n for f, n in zip(DEFAULT_FOV_MM, shape, strict=True))  # type: ignore[return-value]


def sample_subject(seed: int, density: str | None = None) -> SubjectParams:
    """Draw subject parameters (sizes in mm for the default 340 x 340 x 128 mm field of view)."""
    rng = substream(seed, "subject")
    if density is None:
        cats = list(DENSITY_PROBABILITIES)
        density = str(rng.choice(cats, p=[DENSITY_PROBABILITIES[c] for c in cats]))
    density = density.lower()
    if density not in DENSITY_FGT_RANGES:
        raise InputError(f"density must be one of a, b, c, d (BI-RADS), got {density!r}")
    lo, hi = DENSITY_FGT_RANGES[density]
    fgt_target = float(rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo)))
    # Fatty breasts go with larger size and more subcutaneous fat (weak BMI correlation).
    fatness = {"a": 0.75, "b": 0.55, "c": 0.4, "d": 0.3}[density] + rng.uniform(-0.25, 0.25)
    size = float(np.clip(0.8 + 0.45 * fatness + rng.normal(0, 0.12), 0.7, 1.3))
    half_sep = float(rng.uniform(62.0, 82.0))
    base_z = float(rng.uniform(-8.0, 8.0))
    breasts = []
    for side in (-1.0, 1.0):  # patient right (-x), patient left (+x)
        asym = rng.uniform(0.94, 1.06)
        breasts.append(
            BreastParams(
                center_x=side * half_sep * rng.uniform(0.97, 1.03),
                center_z=base_z + rng.uniform(-3.0, 3.0),
                radius_x=float(np.clip(58.0 * size * asym, 42.0, 78.0)),
                radius_z=float(np.clip(46.0 * size * asym, 34.0, 58.0)),
                depth=float(np.clip(78.0 * size * asym * rng.uniform(0.8, 1.2), 38.0, 125.0)),
                profile_exponent=float(rng.uniform(1.6, 2.4)),
                ptosis=float(rng.uniform(0.0, 0.45)),
            )
        )
    return SubjectParams(
        density=density,
        fgt_target=fgt_target,
        torso_half_width=float(rng.uniform(138.0, 160.0)),
        torso_half_depth=float(rng.uniform(105.0, 125.0)),
        chest_front_y=float(rng.uniform(150.0, 172.0)),
        torso_exponent=float(rng.uniform(2.2, 3.0)),
        torso_taper=float(rng.uniform(-0.06, 0.06)),
        subcutaneous_fat=float(np.clip(6.0 + 14.0 * fatness + rng.normal(0, 2.0), 4.0, 22.0)),
        muscle=float(rng.uniform(8.0, 15.0)),
        rib_ring=float(rng.uniform(8.0, 11.0)),
        rib_period=float(rng.uniform(20.0, 26.0)),
        rib_slope=float(rng.uniform(0.35, 0.6)),
        skin=float(rng.uniform(0.75, 2.0)),
        retromammary_fat=float(rng.uniform(3.0, 9.0)),
        breasts=(breasts[0], breasts[1]),
        heart_center=(
            float(rng.uniform(-40.0, -20.0)),
            float(rng.uniform(42.0, 52.0)),
            float(rng.uniform(10.0, 25.0)),
        ),
        heart_radii=(
            float(rng.uniform(50.0, 60.0)),
            float(rng.uniform(44.0, 54.0)),
            float(rng.uniform(55.0, 66.0)),
        ),
        liver_top_z=float(rng.uniform(-50.0, -30.0)),
    )


def _superellipse_depth(
    x: np.ndarray, y: np.ndarray, cy: float, ax: np.ndarray, by: float, n: float
) -> np.ndarray:
    """Approximate inward depth (mm) below a superellipse surface; negative outside."""
    dy = y - cy
    rho = (np.abs(x / ax) ** n + np.abs(dy / by) ** n) ** (1.0 / n)
    radius = np.sqrt(x * x + dy * dy)
    rho = np.maximum(rho, 1e-3)
    return radius * (1.0 / rho - 1.0)


def make_phantom(
    seed: int,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    voxel_mm: tuple[float, float, float] | None = None,
    density: str | None = None,
) -> Phantom:
    """Generate one prone axial breast phantom.

    ``shape`` is (slices, rows, columns); ``voxel_mm`` defaults to a 128 x 340 x 340 mm field of
    view. ``density`` is the BI-RADS category a-d (random when ``None``); the FGT threshold is
    chosen so the FGT fraction hits the subject's target inside :data:`DENSITY_FGT_RANGES`.
    """
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < 4:
        raise InputError(f"phantom shape must be 3 positive sizes >= 4 (z, y, x), got {shape}")
    if voxel_mm is None:
        voxel_mm = default_voxel_mm(shape)
    voxel_mm = tuple(float(v) for v in voxel_mm)  # type: ignore[assignment]
    if len(voxel_mm) != 3 or min(voxel_mm) <= 0:
        raise InputError(f"voxel size must be 3 positive numbers in mm, got {voxel_mm}")
    p = sample_subject(seed, density)
    coords = grid_coordinates(shape, voxel_mm)
    fine = np.zeros(shape, dtype=np.uint8)
    anterior_layer = _draw_torso(fine, p, coords)
    breast, nipple, t_norm, rho_norm = _draw_breasts(fine, p, coords)
    body = (fine != T.AIR) | nipple
    lateral = max(abs(b.center_x) + 1.1 * b.radius_x for b in p.breasts)
    breast_region = (breast | nipple | anterior_layer) & (np.abs(coords[2]) < lateral)[
        None, None, :
    ]
    skin = _outer_shell(body, p.skin, voxel_mm)
    fine[skin | nipple] = T.SKIN
    n_breast = int((breast_region & np.isin(fine, (T.FAT, T.SKIN))).sum())
    candidates = breast & ~skin & ~nipple & (rho_norm < 1.0)
    strict = candidates & (t_norm > p.retromammary_fat / np.mean([b.depth for b in p.breasts]))
    if strict.sum() * 0.97 >= p.fgt_target * n_breast:  # keep a retromammary fat gap if possible
        candidates = strict
    fgt_fraction = _draw_fgt(fine, candidates, t_norm, rho_norm, p, n_breast, voxel_mm, seed)
    _add_ligaments(fine, breast & (fine == T.FAT) & (fgt_fraction < 0.3), coords, voxel_mm, seed)
    fgt_fraction[(fine != T.FGT) & (fine != T.FAT)] = 0.0
    texture = 1.0 + 0.04 * smooth_field(shape, voxel_mm, substream(seed, "texture"), scale_mm=9.0)
    return Phantom(
        fine_labels=fine,
        labels=T.training_labels(fine, breast_region),
        breast_region=breast_region,
        fgt_fraction=fgt_fraction,
        texture=texture.astype(np.float32),
        voxel_mm=voxel_mm,  # type: ignore[arg-type]
        seed=int(seed),
        params=p,
    )


def _draw_torso(fine: np.ndarray, p: SubjectParams, coords) -> np.ndarray:
    """Chest wall: subcutaneous fat, muscle (thick pectoralis in front), oval rib sections with
    intercostal muscle, sternum, lungs, heart in pericardial fat, liver, spine and aorta.

    Returns the fat layer anterior to the pectoralis (part of the breast region).
    """
    z, y, x = coords
    zz, yy, xx = z[:, None, None], y[None, :, None], x[None, None, :]
    zext = max(float(np.abs(z).max()), 1.0)
    half_width = p.torso_half_width * (1.0 + p.torso_taper * zz / zext)
    depth = _superellipse_depth(
        xx, yy, p.torso_center_y, half_width, p.torso_half_depth, p.torso_exponent
    )
    torso = depth >= 0
    fine[torso] = T.FAT
    # muscle thickness by direction: pectoralis in front, thinner laterally
    dy2, dx2 = y[:, None] - p.torso_center_y, x[None, :]
    sin_t = dy2 / np.maximum(np.sqrt(dx2**2 + dy2**2), 1e-3)
    muscle = p.muscle * (0.45 + 0.75 * np.clip(-sin_t, 0, 1) + 0.35 * np.clip(sin_t, 0, 1))
    d_ring = (p.subcutaneous_fat + muscle)[None]
    d_cavity = d_ring + p.rib_ring
    ring = (depth >= d_ring) & (depth < d_cavity)
    fine[(depth >= p.subcutaneous_fat) & (depth < d_cavity)] = T.MUSCLE
    theta = np.arctan2(dy2, dx2)  # -pi/2 at the anterior midline
    arc = (np.abs(np.angle(np.exp(1j * (theta + np.pi / 2)))) * p.torso_half_depth)[None]
    phase = ((zz + p.rib_slope * arc) / p.rib_period) % 1.0
    across = (depth - (d_ring + 0.5 * p.rib_ring)) / (0.5 * p.rib_ring)
    along = (phase - 0.5) / 0.21
    fine[ring & (across**2 + along**2 < 1.0)] = T.BONE
    fine[ring & ((x[None, None, :] / 13.0) ** 2 + across**2 < 1.0) & (yy < p.torso_center_y)] = (
        T.BONE
    )
    cavity = depth >= d_cavity
    fine[cavity] = T.LUNG
    hz, hy, hx = p.heart_center
    cavity_front = p.chest_front_y + p.subcutaneous_fat + 1.2 * p.muscle + p.rib_ring
    hy_abs = cavity_front + hy
    rz, ry, rx = p.heart_radii
    q_heart = ((zz - hz) / rz) ** 2 + ((yy - hy_abs) / ry) ** 2 + ((xx - hx) / rx) ** 2
    q_front = ((xx - 0.4 * hx) / 26.0) ** 2 + ((yy - cavity_front - 10.0) / 16.0) ** 2
    # mediastinum: a thin fatty band from sternum to spine keeps the two lungs apart
    mediastinum = np.abs(xx - 0.25 * hx) < 4.0 + 2.0 * np.cos(zz / 40.0)
    fine[cavity & ((q_heart < 1.18) | (q_front < 1.0) | mediastinum)] = T.FAT
    fine[cavity & (q_heart < 1.0)] = T.BLOOD
    q_liver = (
        ((zz - (p.liver_top_z - 90.0)) / 90.0) ** 2
        + ((xx + 45.0) / 130.0) ** 2
        + ((yy - (p.torso_center_y + 10.0)) / 120.0) ** 2
    )
    fine[cavity & (q_liver < 1.0) & (q_heart >= 1.0)] = T.LIVER
    back = p.torso_center_y + p.torso_half_depth - p.subcutaneous_fat - 1.5 * p.muscle
    fine[torso & ((yy - back + 25.0) ** 2 + xx**2 < 18.0**2)] = T.BONE
    fine[cavity & ((yy - back + 52.0) ** 2 + (xx - 22.0) ** 2 < 11.0**2)] = T.BLOOD
    return (
        torso & (depth < p.subcutaneous_fat) & (yy < p.torso_center_y - 0.55 * p.torso_half_depth)
    )


def _draw_breasts(fine: np.ndarray, p: SubjectParams, coords):
    """Two superquadric breasts on the anterior chest surface, plus nipples.

    Returns (breast mask, nipple mask, normalised depth t (0 base, 1 tip), normalised radial
    position rho (0 axis, 1 surface)); t and rho are where the nearer breast defines them.
    """
    z, y, x = coords
    shape = fine.shape
    zz, xx = z[:, None, None], x[None, None, :]
    zext = max(float(np.abs(z).max()), 1.0)
    half_width = p.torso_half_width * (1.0 + p.torso_taper * zz / zext)
    front = p.torso_center_y - p.torso_half_depth * np.clip(
        1.0 - np.abs(xx / half_width) ** p.torso_exponent, 0.0, 1.0
    ) ** (1.0 / p.torso_exponent)  # anterior torso surface y(z, x)
    lateral = max(abs(b.center_x) + b.radius_x for b in p.breasts)
    y_stop = float(np.max(np.where(np.abs(xx) < lateral, front, 0.0))) + 1.0
    ny = int(np.searchsorted(y, y_stop)) + 1
    ny = min(max(ny, 1), shape[1])
    yy = y[None, :ny, None]
    breast = np.zeros(shape, dtype=bool)
    nipple = np.zeros(shape, dtype=bool)
    t_norm = np.zeros(shape, dtype=np.float32)
    rho_norm = np.full(shape, 2.0, dtype=np.float32)
    t_slab, rho_slab = t_norm[:, :ny], rho_norm[:, :ny]
    for b in p.breasts:
        t = (front - yy) / b.depth
        tc = np.clip(t, 0.0, 1.0)
        sag = b.ptosis * b.radius_z * tc**2
        u = (xx - b.center_x) / b.radius_x
        v = (zz - b.center_z + sag) / b.radius_z
        r_t = np.clip(1.0 - tc**b.profile_exponent, 0.0, 1.0) ** (1.0 / b.profile_exponent)
        r_t = r_t * (1.0 + BASE_FLARE * np.exp(-np.clip(t, 0.0, None) / 0.12))  # smooth base
        rho = np.sqrt(u * u + v * v) / np.maximum(r_t, 1e-3)
        inside = (t > -0.25) & (t <= 1.0) & (rho <= 1.0)
        closer = inside & (rho < rho_slab)
        t_slab[closer] = t[closer]
        rho_slab[closer] = rho[closer]
        breast[:, :ny] |= inside & (t > 0)
        tip2 = ((xx - b.center_x) ** 2 + (zz - b.center_z + b.ptosis * b.radius_z) ** 2) / 5.0**2
        nipple[:, :ny] |= (t > 0.95) & (tip2 + ((t - 1.0) * b.depth / 5.0) ** 2 < 1.0)
    fine[breast & (fine == T.AIR)] = T.FAT
    return breast, nipple, t_norm, rho_norm


def _draw_fgt(
    fine: np.ndarray,
    candidates: np.ndarray,
    t_norm: np.ndarray,
    rho_norm: np.ndarray,
    p: SubjectParams,
    n_breast: int,
    voxel_mm: tuple[float, float, float],
    seed: int,
) -> np.ndarray:
    """Threshold fBm inside a cone tapering to the nipple so FGT reaches the target fraction.

    ``n_breast`` counts the breast-region fat and skin voxels; the FGT voxel count n solves
    n / n_breast = fgt_target (FGT replaces fat). Returns the soft FGT share (partial volume).
    """
    fgt_fraction = np.zeros(fine.shape, dtype=np.float32)
    n_target = int(round(p.fgt_target * n_breast))
    idx = np.nonzero(candidates)
    if n_target <= 0 or idx[0].size == 0:
        return fgt_fraction
    lo = [int(i.min()) for i in idx]
    hi = [int(i.max()) + 1 for i in idx]
    sub_shape = tuple(h - l_ for l_, h in zip(lo, hi, strict=True))
    noise = fbm_noise(sub_shape, voxel_mm, substream(seed, "fgt"), base_wavelength_mm=28.0)
    local = tuple(i - l_ for i, l_ in zip(idx, lo, strict=True))
    cone = 0.75 - 0.55 * t_norm[idx]  # relative radius of the glandular cone
    score = noise[local] + 1.1 * np.clip((cone - rho_norm[idx]) / 0.2, -3.0, 3.0)
    n_target = min(n_target, int(0.97 * score.size))
    thr = np.partition(score, score.size - n_target)[score.size - n_target]
    soft = 1.0 / (1.0 + np.exp(-(score - thr) / 0.4))
    chosen = score >= thr
    fine[tuple(i[chosen] for i in idx)] = T.FGT
    fgt_fraction[idx] = np.where(chosen, np.maximum(soft, 0.5), np.minimum(soft, 0.49))
    return fgt_fraction


def _outer_shell(
    body: np.ndarray, thickness_mm: float, voxel_mm: tuple[float, float, float]
) -> np.ndarray:
    """Body voxels within about ``thickness_mm`` of air (at least one voxel, 6-connectivity)."""
    inner = body.copy()
    steps = max(1, int(round(thickness_mm / min(voxel_mm[1:]))))
    for step in range(steps):
        eroded = inner.copy()
        eroded[:, 1:, :] &= inner[:, :-1, :]
        eroded[:, :-1, :] &= inner[:, 1:, :]
        eroded[:, :, 1:] &= inner[:, :, :-1]
        eroded[:, :, :-1] &= inner[:, :, 1:]
        if step == 0:  # through-plane only once: slices are thicker than the skin
            eroded[1:] &= inner[:-1]
            eroded[:-1] &= inner[1:]
        eroded[:, 0, :] = eroded[:, -1, :] = False
        eroded[:, :, 0] = eroded[:, :, -1] = False
        inner = eroded
    return body & ~inner


def _add_ligaments(
    fine: np.ndarray,
    fat: np.ndarray,
    coords: tuple[np.ndarray, np.ndarray, np.ndarray],
    voxel_mm: tuple[float, float, float],
    seed: int,
) -> None:
    """Mark fat voxels on Voronoi lobule boundaries (F2 - F1 below a voxel) as ligament.

    Lobule seeds are about 22 mm apart; voxel positions are warped by a few millimetres with a
    seeded sum of sinusoids so the shells are not flat.
    """
    idx = np.nonzero(fat)
    if idx[0].size == 0:
        return
    rng = substream(seed, "ligaments")
    pts = np.stack([c[i] for c, i in zip(coords, idx, strict=True)], axis=1).astype(np.float32)
    warp = np.zeros_like(pts)
    for _ in range(5):
        k = rng.normal(0.0, 1.0, 3) * (2 * np.pi / 45.0)
        phase = np.float32(rng.uniform(0, 2 * np.pi))
        w = np.sin(pts @ k.astype(np.float32) + phase)
        warp += np.outer(w, rng.normal(0.0, 1.6, 3)).astype(np.float32)
    pts += warp
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    n_seeds = int(np.clip(np.prod(hi - lo) / 22.0**3, 12, 400))
    seeds = rng.uniform(lo, hi, size=(n_seeds, 3))
    dist, _ = cKDTree(seeds).query(pts, k=2, workers=2)
    on_wall = (dist[:, 1] - dist[:, 0]) < 0.8 * min(voxel_mm[1:])
    fine[tuple(i[on_wall] for i in idx)] = T.LIGAMENT
