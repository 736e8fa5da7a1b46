"""Write simulated patients in the Duke-Breast-Cancer-MRI layout (``method-facts.md``).

::

    OUT/Duke-Breast-Cancer-MRI/Breast_MRI_NNN/<study>/<series>/*.dcm   pre-contrast fat-sat T1
    OUT/Segmentation_Masks_NRRD/Breast_MRI_NNN/Segmentation_Breast_MRI_NNN_Breast.seg.nrrd
    OUT/Segmentation_Masks_NRRD/Breast_MRI_NNN/Segmentation_Breast_MRI_NNN_Dense_and_Vessels.seg.nrrd
    OUT/Clinical_and_Other_Features.csv   (the real Duke table is an .xlsx; CSV here)
    OUT/simulation.json                    seeds and shape per patient, to regenerate the truth

One patient is simulated, written and released at a time (bounded memory). The DICOM headers
carry the IAPs as the scanner writes them (Siemens 1.494 / 2.8936 T, GE 1.5 / 3 T); readers
normalise them back. ``simulation.json`` records each patient's phantom and acquisition seed:
``acquire(make_phantom(phantom_seed, shape), other_iap, seed=acquisition_seed)`` is the
ground-truth re-acquisition of the same anatomy under other IAPs.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

from ..errors import InputError, OutputExistsError
from ..iap.record import IAPRecord
from ..io.atomic import atomic_write_text
from .acquisition import SimulatedAcquisition, acquire
from .anatomy import DEFAULT_SHAPE, make_phantom
from .noise_fields import substream
from .protocols import DUKE_LIKE_PROTOCOLS, Protocol, sample_protocol
from .version import SIMULATOR_VERSION

DUKE_SUBDIR = "Duke-Breast-Cancer-MRI"
MASK_SUBDIR = "Segmentation_Masks_NRRD"
CLINICAL_TABLE = "Clinical_and_Other_Features.csv"
MANIFEST = "simulation.json"
SERIES_DESCRIPTION = "ax 3d dyn pre"
SERIES_NUMBER = 3

CLINICAL_COLUMNS = (
    "Patient ID",
    "Manufacturer",
    "Manufacturer Model Name",
    "Scan Options",
    "Field Strength (Tesla)",
    "Flip Angle",
    "Slice Thickness",
    "TE (Echo Time)",
    "TR (Repetition Time)",
    "Acquisition Matrix",
    "Patient Position During MRI",
    "Breast Density (BI-RADS)",
    "FGT Fraction",
    "Has Segmentation Masks",
    "Phantom Seed",
    "Acquisition Seed",
)


def patient_id(index: int) -> str:
    """Duke patient id of the 1-based ``index``: Breast_MRI_001."""
    return f"Breast_MRI_{index:03d}"


def patient_seeds(seed: int, index: int) -> tuple[int, int]:
    """(phantom seed, acquisition seed) of patient ``index`` in a dataset with ``seed``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(2)
    return int(state[0] >> 1), int(state[1] >> 1)


def write_duke_dataset(
    out_dir: str | Path,
    n_patients: int,
    *,
    seed: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    mask_fraction: float = 0.25,
    manufacturers: Sequence[str] | None = None,
    protocols: Sequence[Protocol] = DUKE_LIKE_PROTOCOLS,
    protocols_per_patient: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int, str], Any] | None = None,
) -> Path:
    """Simulate ``n_patients`` and write them in the Duke layout under ``out_dir``.

    ``mask_fraction`` of the patients (at least one when > 0) get NRRD masks; the choice is
    seeded. ``manufacturers`` restricts the protocol mix (e.g. ``["GE"]``); ``protocols``
    replaces it. ``protocols_per_patient`` > 1 adds further series of the same anatomy, each
    under its own protocol drawn from the mix and with its own acquisition seed (series numbers
    4, 5, ...; listed under ``extra_series`` in ``simulation.json``): training data in which
    only the IAPs explain a contrast change (the real Duke data has one such series per
    patient). ``progress(done, total, message)`` is called after each patient; an exception
    it raises stops the run, leaving the finished patients and a manifest listing them.
    Refuses to write into a folder holding a previous dataset unless ``overwrite``, which
    replaces the dataset folders and files (nothing else in ``out_dir`` is touched).
    """
    from ..io.nrrd_masks import write_duke_mask_nrrd

    out = Path(out_dir)
    n_patients = int(n_patients)
    if n_patients < 1:
        raise InputError(f"--patients must be at least 1, got {n_patients}")
    if int(protocols_per_patient) < 1:
        raise InputError(f"protocols per patient must be at least 1, got {protocols_per_patient}")
    if not 0.0 <= mask_fraction <= 1.0:
        raise InputError(f"mask fraction must be between 0 and 1, got {mask_fraction}")
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < 4:
        raise InputError(f"shape must be three sizes >= 4 (slices, rows, columns), got {shape}")
    _prepare_output(out, overwrite)
    with_masks = _mask_patients(seed, n_patients, mask_fraction)
    manifest: dict[str, Any] = {
        "generator": "napari_cf_iap.simulator",
        "simulator_version": SIMULATOR_VERSION,
        "seed": int(seed),
        "shape": list(shape),
        "patients": [],
    }
    rows: list[dict[str, Any]] = []
    for index in range(1, n_patients + 1):
        pid = patient_id(index)
        phantom_seed, acq_seed = patient_seeds(seed, index)
        phantom = make_phantom(phantom_seed, shape)
        iap = sample_protocol(substream(phantom_seed, "protocol"), manufacturers, protocols)
        acq = acquire(phantom, iap, seed=acq_seed)
        volume = acq.volume
        study_uid = str(generate_uid())  # every series of the patient is in one study
        series_dir = _write_series(out, pid, volume, (acq_seed, phantom_seed, 0), study_uid)
        extra = []
        for k in range(1, int(protocols_per_patient)):
            extra_iap = sample_protocol(
                substream(phantom_seed, f"protocol-{k}"), manufacturers, protocols
            )
            extra_seed = extra_acquisition_seed(acq_seed, k)
            extra_volume = acquire(phantom, extra_iap, seed=extra_seed).volume
            extra_dir = _write_series(
                out, pid, extra_volume, (acq_seed, phantom_seed, k), study_uid
            )
            extra.append(
                {
                    "series": str(extra_dir.relative_to(out)),
                    "acquisition_seed": extra_seed,
                    "iap": extra_volume.iap.to_dict(),
                }
            )
            del extra_volume
        mask_files = []
        if index in with_masks:
            mask_dir = out / MASK_SUBDIR / pid
            for kind, suffix in (("breast", "Breast"), ("dense", "Dense_and_Vessels")):
                path = mask_dir / f"Segmentation_{pid}_{suffix}.seg.nrrd"
                write_duke_mask_nrrd(acq.labels, volume, path, kind=kind, overwrite=overwrite)
                mask_files.append(str(path.relative_to(out)))
        iap_dict = volume.iap.to_dict()
        manifest["patients"].append(
            {
                "patient_id": pid,
                "phantom_seed": phantom_seed,
                "acquisition_seed": acq_seed,
                "density": phantom.params.density,
                "fgt_fraction": round(phantom.fgt_fraction_of_breast(), 4),
                "series": str(series_dir.relative_to(out)),
                "masks": mask_files,
                "iap": iap_dict,
                **({"extra_series": extra} if extra else {}),
            }
        )
        rows.append(_clinical_row(pid, volume, phantom, bool(mask_files), phantom_seed, acq_seed))
        _write_tables(out, manifest, rows)
        del phantom, acq, volume
        if progress is not None:
            progress(index, n_patients, pid)
    return out


def extra_acquisition_seed(acquisition_seed: int, k: int) -> int:
    """Acquisition seed of a patient's ``k``-th extra series (k >= 1)."""
    return int(np.random.SeedSequence([int(acquisition_seed), int(k)]).generate_state(1)[0] >> 1)


def _write_series(
    out: Path, pid: str, volume: Any, seeds: tuple[int, int, int], study_uid: str
) -> Path:
    """Write the ``k``-th DICOM series of a patient (``seeds`` = acquisition seed, phantom
    seed, k) with the header IAPs as the scanner writes them; returns its folder."""
    from ..io.dicom_write import write_dicom_series

    acq_seed, phantom_seed, k = seeds
    reported = float(volume.iap.extras["reported_field_strength"])
    # The header record holds the IAPs as the scanner writes them (not normalised).
    header = volume.with_data(volume.data, iap=replace(volume.iap, field_strength=reported))
    number = SERIES_NUMBER + k
    series_dir = (
        out / DUKE_SUBDIR / pid / f"01-01-1990-NA-MRI BREAST BILATERAL W WO-{acq_seed % 100000:05d}"
    ) / f"{number}.000000-{SERIES_DESCRIPTION}-{(phantom_seed + k) % 100000:05d}"
    write_dicom_series(
        header,
        series_dir,
        series_description=SERIES_DESCRIPTION,
        patient_id=pid,
        patient_name=pid,
        study_uid=study_uid,
        series_number=number,
        overwrite=True,  # _prepare_output has refused or cleared an existing dataset
    )
    return series_dir


def _prepare_output(out: Path, overwrite: bool) -> None:
    ours = [out / DUKE_SUBDIR, out / MASK_SUBDIR, out / CLINICAL_TABLE, out / MANIFEST]
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{out} already holds a dataset ({existing[0].name}); choose another folder or "
            "pass overwrite=True (--overwrite)"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder for the dataset")
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _mask_patients(seed: int, n: int, fraction: float) -> set[int]:
    if fraction <= 0:
        return set()
    count = min(n, max(1, int(round(fraction * n))))
    order = substream(seed, "mask-patients").permutation(n) + 1
    return {int(i) for i in order[:count]}


def _clinical_row(pid, volume, phantom, has_masks, phantom_seed, acq_seed) -> dict[str, Any]:
    iap = volume.iap
    extras = iap.extras
    return {
        "Patient ID": pid,
        "Manufacturer": iap.manufacturer,
        "Manufacturer Model Name": iap.model_name,
        "Scan Options": iap.scan_options,
        "Field Strength (Tesla)": extras.get("reported_field_strength", iap.field_strength),
        "Flip Angle": iap.flip_angle,
        "Slice Thickness": iap.slice_thickness,
        "TE (Echo Time)": iap.echo_time,
        "TR (Repetition Time)": iap.repetition_time,
        "Acquisition Matrix": "{0}x{0}".format(extras.get("acquisition_matrix")),
        "Patient Position During MRI": "FFP",
        "Breast Density (BI-RADS)": phantom.params.density,
        "FGT Fraction": round(phantom.fgt_fraction_of_breast(), 4),
        "Has Segmentation Masks": int(has_masks),
        "Phantom Seed": phantom_seed,
        "Acquisition Seed": acq_seed,
    }


def _write_tables(out: Path, manifest: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CLINICAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / CLINICAL_TABLE, buffer.getvalue(), overwrite=True)
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n", overwrite=True)


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """Load ``simulation.json`` of a simulated dataset."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise InputError(f"{path} not found: is {out_dir} a simulated dataset?")
    return json.loads(path.read_text())


def reacquire_patient(
    manifest: dict[str, Any],
    patient: str,
    iap: IAPRecord | None = None,
    noise_seed: int | None = None,
) -> SimulatedAcquisition:
    """Regenerate a written patient (same anatomy and grid), optionally under other IAPs: the
    ground-truth counterfactual of that patient's series.

    ``noise_seed=None`` reuses the written acquisition's seed (an exact regeneration); a real
    re-acquisition has independent noise, so ground truth for an edit should pass a fresh one.
    """
    if manifest.get("simulator_version") != SIMULATOR_VERSION:
        raise InputError(
            f"the dataset was written by simulator version {manifest.get('simulator_version')}, "
            f"this is version {SIMULATOR_VERSION}: its patients cannot be regenerated exactly; "
            "re-create the dataset with `cf-iap simulate`"
        )
    entry = next((p for p in manifest.get("patients", []) if p["patient_id"] == patient), None)
    if entry is None:
        raise InputError(f"patient {patient!r} is not in the simulation manifest")
    phantom = make_phantom(int(entry["phantom_seed"]), tuple(manifest["shape"]))
    record = iap if iap is not None else IAPRecord.from_dict(entry["iap"])
    seed = int(entry["acquisition_seed"]) if noise_seed is None else int(noise_seed)
    return acquire(phantom, record, seed=seed)
