"""The simulator's true re-acquisition of each test slice at its target IAPs.

A store prepared from a ``cf-iap simulate`` dataset remembers the dataset folder
(``store.json`` ``source``), whose ``simulation.json`` holds every patient's phantom and noise
seeds. :func:`napari_cf_iap.simulator.dataset_writer.reacquire_patient` regenerates the same
anatomy (same grid, *fresh* noise: :data:`TRUTH_NOISE_OFFSET`) under the donor patient's full
protocol record (with its
acquisition matrix and reported field), and the store's own preprocessing (drop slices, resize
to the store size, per-slice 10th/99th percentiles) turns it into the slice the store would
hold had the patient been scanned that way. Images and labels are then resized to the
evaluation size like the originals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from napari_cf_iap.errors import InputError
from napari_cf_iap.iap import IAPRecord

from ..dataset import resize_image, resize_label
from ..slice_store import SliceStore
from .edit_set import EditSet

#: the truth's noise seed is the patient's acquisition seed plus this offset. A real
#: re-acquisition has independent noise; reusing the source's noise would make "do nothing" an
#: unfairly strong baseline. The ship acceptance check also uses fresh noise.
TRUTH_NOISE_OFFSET = 1_000_003


@dataclass
class TruthSlices:
    """Ground-truth images (N, S, S) and tissue labels (N, S, S) for an edit set."""

    images: np.ndarray
    labels: np.ndarray
    source: str


def simulation_dir(store: SliceStore, sim_dir: str | Path | None = None) -> Path | None:
    """The simulated dataset behind ``store`` (``sim_dir`` wins), or None if not simulated."""
    candidates = [Path(sim_dir)] if sim_dir else []
    if store.meta.get("source"):
        candidates.append(Path(store.meta["source"]))
    for path in candidates:
        if (path / "simulation.json").is_file():
            return path
        if (path.parent / "simulation.json").is_file():
            return path.parent
    if sim_dir:
        raise InputError(f"{sim_dir} holds no simulation.json; is it a `cf-iap simulate` dataset?")
    return None


def _same_iaps(a: IAPRecord, b: IAPRecord) -> bool:
    return a.to_dict() | {"extras": {}} == b.to_dict() | {"extras": {}}


def truth_slices(
    store: SliceStore, edit_set: EditSet, sim_dir: str | Path | None = None, progress=None
) -> TruthSlices | None:
    """Ground truth for every slice of ``edit_set``; None when the store is not simulated."""
    from napari_cf_iap.preprocessing import PreprocessConfig, preprocess_volume
    from napari_cf_iap.simulator.dataset_writer import reacquire_patient, read_manifest

    folder = simulation_dir(store, sim_dir)
    if folder is None:
        return None
    manifest = read_manifest(folder)
    entries = {p["patient_id"]: p for p in manifest.get("patients", [])}
    config = PreprocessConfig(size=store.size, drop_slices=int(store.meta.get("drop_slices", 20)))
    images = np.zeros((len(edit_set), store.size, store.size), dtype=np.float32)
    labels = np.zeros(images.shape, dtype=np.int64)
    pairs = edit_set.pairs()
    for done, (patient, donor) in enumerate(pairs):
        if patient not in entries:
            raise InputError(f"patient {patient} is not in {folder}/simulation.json")
        index = [i for i, p in enumerate(edit_set.patients) if p == patient]
        target = edit_set.target_records[index[0]]
        record = IAPRecord.from_dict(entries[donor]["iap"]) if donor in entries else target
        if not _same_iaps(record, target):
            record = target  # the store was re-labelled: trust the store's record
        noise_seed = int(entries[patient]["acquisition_seed"]) + TRUTH_NOISE_OFFSET
        acq = reacquire_patient(manifest, patient, record, noise_seed=noise_seed)
        slices, state = preprocess_volume(acq.volume, config)
        for i in index:
            z = int(store.rows[int(edit_set.rows[i])]["slice_index"])
            images[i] = slices[z - state.start]
            label = torch.from_numpy(np.asarray(acq.labels[z], dtype=np.int64))
            labels[i] = resize_label(label, store.size).numpy()
        if progress is not None:
            progress(done + 1, len(pairs), f"ground truth {patient} as {donor}")
    size = edit_set.size
    return TruthSlices(
        images=resize_image(torch.from_numpy(images), size).numpy(),
        labels=resize_label(torch.from_numpy(labels), size).numpy(),
        source=f"simulator re-acquisition ({folder.name}/simulation.json)",
    )
