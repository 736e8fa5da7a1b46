"""``cf-iap-train prepare DUKE_DIR --out STORE``: Duke-layout DICOM + NRRD masks -> slice store.

Input layout (as TCIA ships Duke-Breast-Cancer-MRI, and as the simulator writes it)::

    DUKE_DIR/Duke-Breast-Cancer-MRI/Breast_MRI_NNN/<study>/<series>/*.dcm
    DUKE_DIR/Segmentation_Masks_NRRD/Breast_MRI_NNN/Segmentation_Breast_MRI_NNN_Breast.seg.nrrd
                                              .../Segmentation_Breast_MRI_NNN_Dense_and_Vessels.seg.nrrd

``DUKE_DIR`` may also be the ``Duke-Breast-Cancer-MRI`` folder itself; the mask folder is
looked for next to it and inside it unless ``--masks`` names it.

Series choice (one per patient): the pre-contrast fat-saturated T1 series. With a single
series (the simulator) that one is used. Otherwise the series whose description mentions
"pre" (and not "post"/"sub") are preferred, then any 3D/dyn/T1 series; among the candidates
the lowest series number wins (in Duke the pre-contrast phase is acquired first).
With ``every_series`` (``--every-series``) every readable series of a patient is taken instead:
for simulated datasets written with several protocols per patient (never for Duke, whose
other series are post-contrast phases).

Each patient is read with the core DICOM reader, its masks with the core Duke mask reader
(on the image grid), preprocessed with the core recipe (drop ``drop_slices`` at each end,
resize to ``size``, per-slice 10th -> 0 / 99th -> 1 percentiles, no clip) and appended to the
store as one atomic chunk. Patients already in the store are skipped with ``resume``; skipped
patients are reported with the reason and recorded in ``store.json``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cf_iap.errors import CfIapError, InputError, OutputExistsError

from .dataset import resize_label
from .slice_store import ORIGINAL, SliceStore, iap_columns

DUKE_SUBDIR = "Duke-Breast-Cancer-MRI"
MASK_SUBDIR = "Segmentation_Masks_NRRD"


@dataclass
class PrepareReport:
    """What ``prepare`` did."""

    store: Path
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    mask_problems: dict[str, str] = field(default_factory=dict)
    slices_added: int = 0

    def summary(self) -> str:
        lines = [
            f"store {self.store}: added {len(self.added)} patients ({self.slices_added} slices), "
            f"{len(self.already)} already present, {len(self.skipped)} skipped"
        ]
        lines += [f"  skipped {p}: {why}" for p, why in sorted(self.skipped.items())]
        lines += [f"  no mask used for {p}: {why}" for p, why in sorted(self.mask_problems.items())]
        return "\n".join(lines)


def patients_root(duke_dir: Path) -> Path:
    """The folder whose sub-folders are the patients."""
    if not duke_dir.is_dir():
        raise InputError(f"{duke_dir} is not a folder; give the Duke-layout dataset folder")
    inner = duke_dir / DUKE_SUBDIR
    return inner if inner.is_dir() else duke_dir


def find_mask_dir(duke_dir: Path, explicit: Path | None = None) -> Path | None:
    """The ``Segmentation_Masks_NRRD`` folder, if any."""
    if explicit is not None:
        if not explicit.is_dir():
            raise InputError(f"--masks {explicit} is not a folder")
        return explicit
    for candidate in (
        duke_dir / MASK_SUBDIR,
        duke_dir.parent / MASK_SUBDIR,
        duke_dir / DUKE_SUBDIR / MASK_SUBDIR,
    ):
        if candidate.is_dir():
            return candidate
    return None


def list_patients(root: Path) -> list[Path]:
    """Patient folders (``Breast_MRI_*`` if present, else every sub-folder), sorted."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name != MASK_SUBDIR)
    duke = [p for p in folders if p.name.startswith("Breast_MRI_")]
    return duke or folders


def mask_paths(mask_dir: Path | None, patient: str) -> tuple[Path, Path | None] | None:
    """(breast, dense) seg.nrrd paths of a patient, or None without a breast mask."""
    if mask_dir is None:
        return None
    folder = mask_dir / patient
    base = folder if folder.is_dir() else mask_dir
    breast = base / f"Segmentation_{patient}_Breast.seg.nrrd"
    dense = base / f"Segmentation_{patient}_Dense_and_Vessels.seg.nrrd"
    if not breast.is_file():
        return None
    return breast, dense if dense.is_file() else None


_PRE = re.compile(r"pre", re.IGNORECASE)
_NOT_PRE = re.compile(r"post|sub|\bph[2-9]|\b[2-9](st|nd|rd|th)\b", re.IGNORECASE)
_T1 = re.compile(r"3d|dyn|t1|vibrant|fl3d|fsp?gr", re.IGNORECASE)


def series_order(info: Any) -> tuple[int, str]:
    """Sort key of a patient's series: series number (missing ones last), then UID."""
    number = info.series_number if info.series_number is not None else 1 << 30
    return number, info.series_uid


def choose_series(series: list[Any]) -> Any:
    """The pre-contrast series of one patient (see the module docstring)."""
    usable = [s for s in series if not s.problem]
    if not usable:
        reason = series[0].problem if series else "no DICOM image series"
        raise InputError(reason or "no DICOM image series")
    if len(usable) == 1:
        return usable[0]
    pre = [
        s
        for s in usable
        if _PRE.search(s.description or "") and not _NOT_PRE.search(s.description or "")
    ]
    t1 = [
        s
        for s in usable
        if _T1.search(s.description or "") and not _NOT_PRE.search(s.description or "")
    ]
    candidates = pre or t1 or usable
    return min(
        candidates,
        key=series_order,
    )


def read_patient(
    folder: Path, mask_dir: Path | None, every_series: bool = False
) -> list[tuple[Any, np.ndarray | None, str | None]]:
    """(Volume, labels on its grid or None, mask problem or None) of the pre-contrast series,
    or with ``every_series`` of each readable series (in series-number order)."""
    from napari_cf_iap.io import list_series

    series = list_series(folder)
    if not every_series:
        return [read_series(folder, choose_series(series), mask_dir)]
    usable = sorted(
        (s for s in series if not s.problem),
        key=series_order,
    )
    if not usable:
        choose_series(series)  # raises with the reason
    return [read_series(folder, info, mask_dir) for info in usable]


def read_series(
    folder: Path, info: Any, mask_dir: Path | None
) -> tuple[Any, np.ndarray | None, str | None]:
    """One series of a patient folder with its masks (see :func:`read_patient`)."""
    from napari_cf_iap.io import read_dicom, read_duke_masks

    phase = 0 if len(getattr(info, "phases", []) or []) > 1 else None
    volume = read_dicom(
        info.paths[0].parent if len({p.parent for p in info.paths}) == 1 else folder,
        series_uid=info.series_uid,
        phase=phase,
    )
    missing = volume.iap.missing()
    if missing:
        raise InputError(f"IAPs {missing} missing from the DICOM header")
    paths = mask_paths(mask_dir, folder.name)
    if paths is None:
        return volume, None, None
    try:
        labels = read_duke_masks(paths[0], paths[1], reference=volume)
    except CfIapError as exc:
        return volume, None, str(exc)
    return volume, labels, None


def patient_chunk(
    volume: Any, labels: np.ndarray | None, patient: str, size: int, drop_slices: int
) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any]]]:
    """Preprocessed slices, resized labels and table rows of one patient."""
    from napari_cf_iap.preprocessing import PreprocessConfig, preprocess_volume

    config = PreprocessConfig(size=size, drop_slices=drop_slices)
    images, state = preprocess_volume(volume, config)
    out_labels = None
    if labels is not None:
        kept = torch.from_numpy(
            np.ascontiguousarray(labels[state.start : state.stop]).astype(np.int64)
        )
        out_labels = resize_label(kept, size).numpy().astype(np.uint8)
    iaps = iap_columns(volume.iap)
    series_uid = str(volume.metadata.get("series_uid", ""))
    rows = [
        {
            "patient": patient,
            "series_uid": series_uid,
            "slice_index": state.start + i,
            **iaps,
            "has_mask": labels is not None,
            "source": ORIGINAL,
        }
        for i in range(len(images))
    ]
    return images, out_labels, rows


def series_chunk(
    series: list[tuple[Any, np.ndarray | None, str | None]],
    patient: str,
    size: int,
    drop_slices: int,
) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any]], str | None]:
    """Every series of one patient as one store chunk (so a patient is added atomically):
    images, labels (None unless every series has them), rows and the first mask problem."""
    parts = [patient_chunk(v, lab, patient, size, drop_slices) for v, lab, _ in series]
    images = np.concatenate([p[0] for p in parts])
    labelled = all(p[1] is not None for p in parts)
    labels = np.concatenate([p[1] for p in parts]) if labelled else None
    rows = [row for p in parts for row in p[2]]
    if not labelled:
        for row in rows:
            row["has_mask"] = False
    problem = next((m for _, _, m in series if m), None)
    return images, labels, rows, problem


def prepare(
    duke_dir: str | Path,
    out: str | Path,
    *,
    size: int = 128,
    drop_slices: int = 20,
    masks_dir: str | Path | None = None,
    resume: bool = False,
    limit: int | None = None,
    every_series: bool = False,
    show_progress: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> PrepareReport:
    """Stream every patient of a Duke-layout folder into a slice store (one chunk each)."""
    duke_dir = Path(duke_dir)
    root = patients_root(duke_dir)
    mask_dir = find_mask_dir(duke_dir, Path(masks_dir) if masks_dir else None)
    patients = list_patients(root)[: limit if limit else None]
    if not patients:
        raise InputError(f"no patient folders under {root}")
    out = Path(out)
    if (out / "store.json").exists() and not resume and SliceStore.open(out).chunk_ids():
        raise OutputExistsError(f"{out} already holds a slice store; pass --resume to add to it")
    store = SliceStore.create(
        out,
        size,
        {
            "drop_slices": drop_slices,
            "low_pct": 10.0,
            "high_pct": 99.0,
            "per": "slice",
            "clip": False,
        },
    )
    if int(store.meta.get("drop_slices", drop_slices)) != drop_slices:
        raise InputError(
            f"{out} was prepared with --drop-slices {store.meta['drop_slices']}; use the same"
        )
    report = PrepareReport(store=out)
    done = set(store.patients())
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(patients), desc="prepare", unit="patient")
    for index, folder in enumerate(patients):
        patient = folder.name
        if patient in done:
            report.already.append(patient)
        else:
            try:
                images, out_labels, rows, mask_problem = series_chunk(
                    read_patient(folder, mask_dir, every_series), patient, size, drop_slices
                )
                store.append_chunk(store.next_chunk_id("o", patient), images, out_labels, rows)
                report.added.append(patient)
                report.slices_added += len(rows)
                if mask_problem:
                    report.mask_problems[patient] = mask_problem
            except CfIapError as exc:
                report.skipped[patient] = str(exc)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(added=len(report.added), skipped=len(report.skipped))
        if progress is not None:
            progress(index + 1, len(patients), patient)
    if bar is not None:
        bar.close()
    skipped = {**store.meta.get("skipped", {}), **report.skipped}
    for patient in report.added:
        skipped.pop(patient, None)
    store.update_meta(
        source=str(duke_dir.resolve()), skipped=skipped, mask_problems=report.mask_problems
    )
    store.write_table()
    if not store.rows:
        raise InputError(f"no patient of {root} could be prepared: {report.summary()}")
    return report
