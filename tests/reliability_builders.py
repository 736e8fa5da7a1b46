"""Builders of the bad inputs in the reliability corpus (each writes files into a folder).

Every builder is deterministic (fixed UIDs and seeds), so the generated ``docs/reliability.md``
only changes when the software's behaviour does.
"""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import torch
from helpers_io import make_volume, philips_enhanced, pkg_file, write_series

from napari_cf_iap.iap import IAPRecord, IAPVocabulary
from napari_cf_iap.io import write_labels_nrrd, write_nifti
from napari_cf_iap.volume import Volume

UID_ROOT = "1.2.826.0.1.3680043.8.498.77"
SERIES_A = f"{UID_ROOT}.1"
SERIES_B = f"{UID_ROOT}.2"
VOCAB = IAPVocabulary.duke_default()


# ---------------------------------------------------------------------- DICOM
def series(folder: Path, positions: list[float], uid: str = SERIES_A, **kwargs) -> Path:
    """A small single-frame MR series (16 x 12) on the real MR_small.dcm header."""
    write_series(folder, positions, series_uid=uid, **kwargs)
    return folder


def copy_pkg(name: str, dest: Path) -> Path:
    """A pydicom test file copied into ``dest`` (never the installed file itself)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pkg_file(name), dest)
    return dest


def truncated_copy(name: str, dest: Path, keep: int) -> Path:
    """The first ``keep`` bytes (negative: all but the last ``-keep``) of a pydicom test file."""
    data = pkg_file(name).read_bytes()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data[:keep])
    return dest


def garbage_dicom(dest: Path, seed: int = 0) -> Path:
    """A DICM preamble followed by random bytes."""
    rng = np.random.default_rng(seed)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(bytes(128) + b"DICM" + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    return dest


def edit_headers(folder: Path, **changes) -> Path:
    """Rewrite every .dcm under ``folder``; a value ``None`` deletes the tag."""
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        for keyword, value in changes.items():
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        ds.save_as(path)
    return folder


def raw_tag_value(path: Path, keyword: str, raw: bytes) -> Path:
    """Overwrite the stored bytes of a text tag (e.g. a FlipAngle of b'abc'), bypassing pydicom."""
    ds = pydicom.dcmread(path)
    elem = ds[keyword]
    padded = raw + (b" " if len(raw) % 2 else b"")
    ds[keyword] = pydicom.dataelem.RawDataElement(
        elem.tag, elem.VR, len(padded), padded, 0, False, True
    )
    ds.save_as(path)
    return path


def enhanced_with_frames(folder: Path, tmp: Path, number_of_frames: int) -> Path:
    """nibabel's Philips Enhanced MR file with a (corrupt) NumberOfFrames."""
    src = philips_enhanced(tmp)
    ds = pydicom.dcmread(src)
    ds.NumberOfFrames = number_of_frames
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / "enhanced.dcm")
    src.unlink()
    return folder


# ---------------------------------------------------------------------- NIfTI / NRRD
def nifti(path: Path, data: np.ndarray | None = None, *, sidecar: bool = True, **iap) -> Path:
    """A NIfTI (+ full BIDS sidecar unless ``sidecar=False``) of ``data`` (default: 4x24x20)."""
    volume = make_volume((4, 24, 20), seed=3)
    if data is not None:
        volume = Volume(data, volume.spacing, volume.affine, volume.iap)
    if iap:
        volume = volume.with_data(volume.data, iap=volume.iap.with_values(**iap))
    path.parent.mkdir(parents=True, exist_ok=True)
    if sidecar:
        finite = np.all(np.isfinite(volume.data))
        write_nifti(volume if finite else volume.with_data(np.nan_to_num(volume.data)), path)
        if not finite:  # the writer refuses NaN/inf, so put them in afterwards
            img = nib.load(str(path))
            data = np.ascontiguousarray(volume.data.transpose(2, 1, 0))
            nib.save(nib.Nifti1Image(data, img.affine, img.header), str(path))
        return path
    img = nib.Nifti1Image(np.ascontiguousarray(volume.data.transpose(2, 1, 0)), np.eye(4))
    nib.save(img, str(path))
    return path


def nifti_raw(path: Path, array: np.ndarray) -> Path:
    """A NIfTI of an arbitrary array (4D, RGB, NaN ...) without a sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))
    return path


def nifti_lying_header(path: Path, shape: tuple[int, ...]) -> Path:
    """A small .nii.gz whose header claims ``shape`` (the voxels are not there)."""
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    header = img.header.copy()
    header.set_data_shape(shape)
    payload = header.binaryblock + bytes(4) + bytes(16)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, mtime=0))
    return path


def nrrd_lying_header(path: Path, sizes: tuple[int, int, int]) -> Path:
    """A gzip NRRD whose header claims ``sizes`` with 64 bytes of data."""
    header = (
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: {' '.join(map(str, sizes))}\n"
        "space directions: (1,0,0) (0,1,0) (0,0,1)\nendian: little\nencoding: gzip\n"
        "space origin: (0,0,0)\n\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + gzip.compress(bytes(64), mtime=0))
    return path


def image_and_shifted_mask(folder: Path) -> tuple[Volume, Path]:
    """A volume and a Duke-style breast mask written on a grid half a voxel away."""
    volume = make_volume((6, 10, 8), seed=1)
    labels = np.zeros(volume.shape, np.uint8)
    labels[2:4, 3:7, 2:6] = 1
    affine = volume.affine.copy()
    affine[:3, 3] += 0.5 * affine[:3, 2]  # half a column: cannot be placed on the image grid
    other = Volume(volume.data, volume.spacing, affine)
    folder.mkdir(parents=True, exist_ok=True)
    mask = write_labels_nrrd(labels, other, folder / "Segmentation_Breast_MRI_001_Breast.seg.nrrd")
    return volume, mask


# ---------------------------------------------------------------------- bundles
def copy_bundle(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def edit_manifest(bundle: Path, edit) -> Path:
    """Apply ``edit(manifest_dict)`` to ``bundle.json``."""
    manifest_path = bundle / "bundle.json"
    manifest = json.loads(manifest_path.read_text())
    edit(manifest)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return bundle


def smaller_vocabulary() -> dict:
    """The Duke vocabulary without its last model name (vectors one shorter)."""
    data = VOCAB.to_dict()
    dropped = data["categories"]["model_name"].pop()
    data["model_manufacturer"].pop(dropped, None)
    return data


# ---------------------------------------------------------------------- checkpoints
class PicklePayload:
    """Unpickling this creates ``marker``: stands for code execution hidden in a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _old_key(key: str) -> str:
    """A MONAI-core DiffusionModelUNet key under its monai-generative 0.2 name."""
    if "transformer_blocks" in key and ".out_proj." in key:
        key = key.replace(".out_proj.", ".to_out.0.")
    return key.replace(".postconv.", ".conv.")


def tiny_source_model(seed: int = 0):
    """A tiny cDDGM with non-trivial weights (the network inside the authors' checkpoint)."""
    from napari_cf_iap.models.cddgm import ConditionalDenoiser
    from napari_cf_iap.models.config import CDDGMConfig

    torch.manual_seed(seed)
    model = ConditionalDenoiser(CDDGMConfig.tiny(VOCAB.dim))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def authors_checkpoint(path: Path, model, *, flash_attention: bool, extra: dict | None = None):
    """A Lightning checkpoint as the authors saved it (monai-generative key names, hparams)."""
    state = {"model." + _old_key(k): v.clone() for k, v in model.unet.state_dict().items()}
    hparams = {
        "model_hparams": {
            "spatial_size": (32, 32),
            "features_dim": VOCAB.dim,
            "conditioning": "hybrid",
            "features_dropout": 0.15,
        },
        "unet_hprams": {
            "spatial_dims": 2,
            "out_channels": 1,
            "num_res_blocks": 1,
            "num_channels": (8, 16),
            "attention_levels": (False, True),
            "num_head_channels": 4,
            "transformer_num_layers": 1,
            "norm_num_groups": 8,
            "use_flash_attention": flash_attention,
        },
        "noise_scheduler_hprams": {"schedule": "cosine", "num_train_timesteps": 1000},
    }
    ckpt = {
        "epoch": 14,
        "global_step": 12345,
        "pytorch-lightning_version": "2.1.3",
        "state_dict": state,
        "hyper_parameters": hparams,
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def raw_pickle(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"state_dict": PicklePayload(marker)}))
    return path


def model_outputs(model) -> torch.Tensor:
    """Outputs of a cDDGM on a fixed batch (to compare an import with its source)."""
    g = torch.Generator().manual_seed(5)
    x = torch.rand((2, 1, 32, 32), generator=g)
    vec = torch.rand((2, VOCAB.dim), generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([4, 700]), vec)


def full_iap(**changes) -> IAPRecord:
    """A complete, in-vocabulary Siemens 3T target."""
    base = IAPRecord.create(
        manufacturer="SIEMENS",
        model_name="Skyra",
        field_strength=3,
        scan_options="FS",
        flip_angle=10,
        slice_thickness=1.0,
        echo_time=1.5,
        repetition_time=4.5,
    )
    return base.with_values(**changes) if changes else base
