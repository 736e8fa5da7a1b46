"""Test helpers for the I/O tests: real scanner headers, synthetic series, file hashes."""

from __future__ import annotations

import copy
import gzip
import hashlib
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from napari_cf_iap.iap import IAPRecord
from napari_cf_iap.volume import Volume, affine_from_geometry

NIBABEL_DATA = Path(__import__("nibabel").__file__).parent / "nicom" / "tests" / "data"


def pkg_file(name: str) -> Path:
    """A file that ships inside pydicom (never downloaded)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom test file {name} is not installed"
    return Path(path)


def philips_enhanced(tmp_path: Path) -> Path:
    """nibabel's Enhanced MR file, gunzipped into ``tmp_path``."""
    out = tmp_path / "philips_mprage.dcm"
    with gzip.open(NIBABEL_DATA / "philips_mprage.dcm.gz", "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def tree_hash(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (or of ``path`` itself)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def write_series(
    folder: Path,
    positions_mm: list[float],
    *,
    series_uid: str | None = None,
    description: str = "test series",
    rows: int = 16,
    cols: int = 12,
    shuffle_seed: int | None = 0,
    extra: dict | None = None,
    name_prefix: str = "",
) -> tuple[str, np.ndarray]:
    """Write a single-frame MR series built on the real MR_small.dcm header.

    Slice ``k`` sits at z = ``positions_mm[k]`` (axial) and holds the value ``100 * k`` plus a
    ramp; files are named in shuffled order with InstanceNumber scrambled. Returns the series
    UID and the expected (z, y, x) volume in position order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(pkg_file("MR_small.dcm"))
    template.PixelData = b""
    if "DataSetTrailingPadding" in template:
        del template.DataSetTrailingPadding
    series_uid = series_uid or generate_uid()
    for_uid = generate_uid()
    order = list(range(len(positions_mm)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    ramp = np.arange(rows * cols, dtype=np.int16).reshape(rows, cols)
    expected = []
    for k, _z in sorted(enumerate(positions_mm), key=lambda t: t[1]):
        expected.append(ramp + 100 * k)
    for file_no, k in enumerate(order):
        ds = copy.deepcopy(template)
        ds.SeriesInstanceUID = series_uid
        ds.SeriesDescription = description
        ds.FrameOfReferenceUID = for_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = len(order) - file_no  # deliberately unrelated to position
        ds.ImagePositionPatient = [-10.0, -20.0, float(positions_mm[k])]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.Rows, ds.Columns = rows, cols
        ds.PixelData = (ramp + 100 * k).astype(np.int16).tobytes()
        for key, value in (extra or {}).items():
            setattr(ds, key, value(k) if callable(value) else value)
        ds.save_as(folder / f"{name_prefix}file_{file_no:03d}.dcm", enforce_file_format=True)
    return series_uid, np.stack(expected)


def make_volume(shape=(6, 10, 8), seed: int = 0, iap: IAPRecord | None = None) -> Volume:
    """A float volume with an oblique, non-trivial affine and complete Duke-like IAPs."""
    rng = np.random.default_rng(seed)
    data = (rng.random(shape) * 900 - 50).astype(np.float32)
    angle = np.deg2rad(20)
    row = np.array([np.cos(angle), np.sin(angle), 0.0])
    col = np.array([-np.sin(angle), np.cos(angle), 0.0])
    spacing = (2.5, 0.7, 0.8)
    affine = affine_from_geometry([12.5, -30.0, 40.0], row, col, spacing)
    iap = iap or IAPRecord.create(
        manufacturer="GE MEDICAL SYSTEMS",
        model_name="SIGNA HDx",
        field_strength=1.5,
        scan_options="FAST_GEMS\\SAT_GEMS\\PFP\\FS",
        flip_angle=10,
        slice_thickness=2.2,
        echo_time=2.5,
        repetition_time=5.5,
    )
    return Volume(data=data, spacing=spacing, affine=affine, iap=iap, metadata={})


def header_only(path: Path) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)
