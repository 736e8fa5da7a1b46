"""An on-disk, memory-mapped store of preprocessed 2D slices plus one table row per slice.

Layout of a store directory::

    store.json                      format, version, slice size S, preprocessing, sources
    chunks/<chunk_id>/images.npy    float32 (n, S, S), preprocessed (10th pct -> 0, 99th -> 1)
    chunks/<chunk_id>/labels.npy    uint8 (n, S, S): 0 background, 1 fat/breast, 2 FGT
    chunks/<chunk_id>/rows.csv      the n table rows of this chunk
    splits.json                     patient -> split (written by ``cf-iap-train split``)
    slices.csv                      the consolidated table (a cache of all chunks' rows)

A chunk is one patient (``prepare``) or one batch of counterfactuals (``augment``). Chunks are
written atomically (temporary directory, then rename), so a crash never leaves half a chunk
and ``--resume`` simply skips what exists. The chunks are the source of truth; ``slices.csv``
is rebuilt from them whenever it is stale. Images are opened with ``np.load(mmap_mode="r")``,
so the dataset is never held in RAM.

Row numbers (``row``) are positions in the consolidated table. Original chunks (ids starting
with ``o``) sort before counterfactual chunks (``x``) and are only ever appended, so the row
number of an original slice is stable; counterfactual rows refer to their source by it.
"""

from __future__ import annotations

import csv
import io
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cf_iap.errors import InputError
from napari_cf_iap.iap import IAPRecord
from napari_cf_iap.io.atomic import atomic_directory, atomic_write_text

FORMAT = "cf-iap-slice-store"
VERSION = 1
DEFAULT_SIZE = 128

IAP_COLUMNS = (
    "manufacturer",
    "model_name",
    "field_strength",
    "scan_options",
    "flip_angle",
    "slice_thickness",
    "echo_time",
    "repetition_time",
)
#: Every column of the table, in order.
COLUMNS = (
    "row",
    "chunk",
    "chunk_index",
    "patient",
    "series_uid",
    "slice_index",
    *IAP_COLUMNS,
    "has_mask",
    "split",
    "source",
    "source_row",
    "target_iap",
    "seed",
    "bundle_sha",
)
_INT = {"row", "chunk_index", "slice_index", "source_row", "seed"}
_FLOAT = {"field_strength", "flip_angle", "slice_thickness", "echo_time", "repetition_time"}
ORIGINAL = "original"
COUNTERFACTUAL = "counterfactual"


def _parse(column: str, text: str) -> Any:
    if column == "has_mask":
        return text == "1"
    if text == "":
        return None if column in _INT | _FLOAT else ""
    if column in _INT:
        return int(text)
    if column in _FLOAT:
        return float(text)
    return text


def _format(column: str, value: Any) -> str:
    if column == "has_mask":
        return "1" if value else "0"
    if value is None:
        return ""
    if column == "target_iap" and not isinstance(value, str):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _rows_to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _format(c, row.get(c)) for c in COLUMNS})
    return buffer.getvalue()


def _rows_from_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path} lacks columns {sorted(missing)}; is it a slice-store table?")
        return [{c: _parse(c, r[c]) for c in COLUMNS} for r in reader]


def iap_columns(record: IAPRecord) -> dict[str, Any]:
    """The table's IAP columns of a record."""
    return {name: getattr(record, name) for name in IAP_COLUMNS}


def row_record(row: Mapping[str, Any]) -> IAPRecord:
    """The IAP record stored in a table row."""
    return IAPRecord.create(**{name: row[name] for name in IAP_COLUMNS})


class SliceStore:
    """A directory of memory-mapped slice chunks and their table (see the module docstring)."""

    def __init__(self, path: str | Path, meta: dict[str, Any]):
        self.path = Path(path)
        self.meta = meta
        self.size = int(meta["size"])
        self._rows: list[dict[str, Any]] | None = None
        self._maps: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(
        cls, path: str | Path, size: int = DEFAULT_SIZE, meta: Mapping[str, Any] | None = None
    ) -> SliceStore:
        """Create an empty store; an existing store of the same size is opened instead."""
        path = Path(path)
        if (path / "store.json").exists():
            store = cls.open(path)
            if store.size != size:
                raise InputError(
                    f"{path} is a store of {store.size}^2 slices, not {size}^2; "
                    "use another --out or the same --size"
                )
            return store
        if path.exists() and any(path.iterdir()):
            raise InputError(f"{path} exists and is not a slice store; choose an empty folder")
        if size < 8:
            raise InputError(f"slice size must be >= 8, got {size}")
        data = {"format": FORMAT, "version": VERSION, "size": int(size), **dict(meta or {})}
        (path / "chunks").mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / "store.json", json.dumps(data, indent=2), overwrite=True)
        return cls(path, data)

    @classmethod
    def open(cls, path: str | Path) -> SliceStore:
        path = Path(path)
        meta_path = path / "store.json"
        if not meta_path.is_file():
            raise InputError(f"{path} is not a slice store (no store.json); run `prepare` first")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{meta_path} is corrupt: {exc}") from exc
        if meta.get("format") != FORMAT or int(meta.get("version", 0)) > VERSION:
            raise InputError(f"{path} is not a version-{VERSION} slice store")
        return cls(path, meta)

    def update_meta(self, **values: Any) -> None:
        self.meta.update(values)
        atomic_write_text(self.path / "store.json", json.dumps(self.meta, indent=2), overwrite=True)

    # ------------------------------------------------------------------ chunks
    def chunk_ids(self) -> list[str]:
        """Complete chunks, in table order (originals first)."""
        root = self.path / "chunks"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "rows.csv").is_file())

    def next_chunk_id(self, prefix: str, name: str = "") -> str:
        """A fresh chunk id ``<prefix><seq:06d>[-name]`` sorting after existing ones."""
        seqs = [
            int(c[len(prefix) :].split("-")[0]) for c in self.chunk_ids() if c.startswith(prefix)
        ]
        seq = max(seqs, default=0) + 1
        return f"{prefix}{seq:06d}" + (f"-{name}" if name else "")

    def append_chunk(
        self,
        chunk_id: str,
        images: np.ndarray,
        labels: np.ndarray | None,
        rows: Sequence[Mapping[str, Any]],
    ) -> None:
        """Write one chunk atomically. ``rows[i]`` describes ``images[i]``."""
        images = np.asarray(images, dtype=np.float32)
        n = len(rows)
        if images.shape != (n, self.size, self.size):
            raise InputError(
                f"chunk {chunk_id}: expected images of shape {(n, self.size, self.size)}, "
                f"got {images.shape}"
            )
        if not np.all(np.isfinite(images)):
            raise InputError(f"chunk {chunk_id}: images contain NaN or inf")
        if labels is None:
            labels = np.zeros(images.shape, dtype=np.uint8)
        labels = np.asarray(labels)
        if labels.shape != images.shape:
            raise InputError(f"chunk {chunk_id}: labels shape {labels.shape} != {images.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 2):
            raise InputError(f"chunk {chunk_id}: labels must be 0, 1 or 2")
        full = [
            {**{c: None for c in COLUMNS}, **dict(r), "chunk": chunk_id, "chunk_index": i}
            for i, r in enumerate(rows)
        ]
        for r in full:
            r["source"] = r.get("source") or ORIGINAL
        with atomic_directory(self.path / "chunks" / chunk_id) as tmp:
            np.save(tmp / "images.npy", images)
            np.save(tmp / "labels.npy", labels.astype(np.uint8))
            (tmp / "rows.csv").write_text(_rows_to_csv(full))
        if self._rows is not None and (not self._rows or chunk_id > self._rows[-1]["chunk"]):
            splits = self.splits()  # appended at the end: extend the cached table in place
            for r in full:
                r["row"] = len(self._rows)
                r["split"] = splits.get(r["patient"], "")
                self._rows.append(
                    {c: _parse(c, _format(c, r[c])) for c in COLUMNS}
                    | {"row": r["row"], "split": r["split"]}
                )
        else:
            self._rows = None

    # ------------------------------------------------------------------ table
    @property
    def rows(self) -> list[dict[str, Any]]:
        """All rows (consolidated over chunks, ``row`` and ``split`` filled in)."""
        if self._rows is None:
            self._rows = self._load_rows()
        return self._rows

    def _load_rows(self) -> list[dict[str, Any]]:
        chunks = self.chunk_ids()
        cache = self.path / "slices.csv"
        rows: list[dict[str, Any]] | None = None
        if cache.is_file():
            rows = _rows_from_csv(cache)
            seen = list(OrderedDict.fromkeys(r["chunk"] for r in rows))
            if seen != chunks:
                rows = None
        if rows is None:
            rows = []
            for chunk in chunks:
                rows.extend(_rows_from_csv(self.path / "chunks" / chunk / "rows.csv"))
        splits = self.splits()
        for index, row in enumerate(rows):
            row["row"] = index
            # counterfactual rows keep their source patient, hence its split
            row["split"] = splits.get(row["patient"], "")
        return rows

    def write_table(self) -> Path:
        """Rewrite the consolidated ``slices.csv`` (atomically) and return its path."""
        self._rows = None
        path = self.path / "slices.csv"
        atomic_write_text(path, _rows_to_csv(self.rows), overwrite=True)
        return path

    def __len__(self) -> int:
        return len(self.rows)

    def patients(self, source: str = ORIGINAL) -> list[str]:
        """Patients with rows of the given source, in table order."""
        return list(OrderedDict.fromkeys(r["patient"] for r in self.rows if r["source"] == source))

    def select(
        self,
        *,
        split: str | Sequence[str] | None = None,
        has_mask: bool | None = None,
        source: str | Sequence[str] | None = ORIGINAL,
    ) -> list[int]:
        """Row numbers matching every given filter (``None`` = any)."""
        splits = {split} if isinstance(split, str) else None if split is None else set(split)
        sources = {source} if isinstance(source, str) else None if source is None else set(source)
        return [
            r["row"]
            for r in self.rows
            if (splits is None or r["split"] in splits)
            and (has_mask is None or r["has_mask"] == has_mask)
            and (sources is None or r["source"] in sources)
        ]

    # ------------------------------------------------------------------ splits
    def splits(self) -> dict[str, str]:
        path = self.path / "splits.json"
        if not path.is_file():
            return {}
        try:
            return dict(json.loads(path.read_text())["patients"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{path} is corrupt ({exc}); rerun `cf-iap-train split`") from exc

    def set_splits(self, patients: Mapping[str, str], info: Mapping[str, Any]) -> Path:
        """Save ``patient -> split`` to ``splits.json`` and the table's ``split`` column."""
        path = self.path / "splits.json"
        data = {**dict(info), "patients": dict(sorted(patients.items()))}
        atomic_write_text(path, json.dumps(data, indent=2), overwrite=True)
        self.write_table()
        return path

    # ------------------------------------------------------------------ pixels
    def _array(self, chunk: str, kind: str) -> np.ndarray:
        key = (chunk, kind)
        array = self._maps.get(key)
        if array is None:
            array = np.load(self.path / "chunks" / chunk / f"{kind}.npy", mmap_mode="r")
            self._maps[key] = array
            while len(self._maps) > 64:  # bound open file handles
                self._maps.popitem(last=False)
        else:
            self._maps.move_to_end(key)
        return array

    def image(self, row: int) -> np.ndarray:
        """The preprocessed (S, S) float32 slice of a row (a read-only memory map)."""
        r = self.rows[row]
        return self._array(r["chunk"], "images")[r["chunk_index"]]

    def label(self, row: int) -> np.ndarray:
        """The (S, S) uint8 label slice of a row (zeros where the patient has no mask)."""
        r = self.rows[row]
        return self._array(r["chunk"], "labels")[r["chunk_index"]]

    def record(self, row: int) -> IAPRecord:
        return row_record(self.rows[row])

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers
        state = dict(self.__dict__)
        state["_maps"] = OrderedDict()
        return state
