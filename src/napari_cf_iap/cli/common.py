"""Helpers shared by the ``cf-iap`` sub-commands: target parsing, progress bars, outputs."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import IAPValueError, InputError
from ..iap.record import IAPRecord

#: CLI key -> IAPRecord field (short and long spellings).
TARGET_KEYS = {
    "manufacturer": "manufacturer",
    "model": "model_name",
    "model_name": "model_name",
    "field_strength": "field_strength",
    "field": "field_strength",
    "scan_options": "scan_options",
    "flip_angle": "flip_angle",
    "fa": "flip_angle",
    "slice_thickness": "slice_thickness",
    "st": "slice_thickness",
    "echo_time": "echo_time",
    "te": "echo_time",
    "repetition_time": "repetition_time",
    "tr": "repetition_time",
}


def parse_target(pairs: Sequence[str], base: IAPRecord) -> IAPRecord:
    """Apply ``KEY=VALUE`` pairs to ``base`` (the source IAPs); unknown keys are refused."""
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        field = TARGET_KEYS.get(key.strip().lower().replace("-", "_"))
        if not sep or field is None:
            raise IAPValueError(
                f"--target {pair!r} is not KEY=VALUE with KEY one of {sorted(set(TARGET_KEYS))}"
            )
        changes[field] = value.strip()
    return base.with_values(**changes)


def parse_slices(text: str | None) -> list[int] | None:
    """'12' -> [12]; '10:20' -> 10..19; '1,5,9' -> [1, 5, 9]; None -> all."""
    if not text:
        return None
    try:
        if ":" in text:
            start, stop = (int(p) for p in text.split(":", 1))
            return list(range(start, stop))
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise InputError(f"--slices {text!r}: use N, START:STOP or N,M,...") from exc


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int, str], None]]:
    """A tqdm bar driven by ``progress(done, total, message)`` callbacks."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=description, unit="step", leave=False)

    def update(done: int, total: int, message: str = "") -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def check_output(path: str | Path, overwrite: bool) -> Path:
    """Refuse an existing output before any work starts (the CLI's ``--overwrite`` flag)."""
    from ..errors import OutputExistsError

    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; choose another --out or add --overwrite")
    return path


def is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps"
    )


def read_input(path: str, series_uid: str | None = None):
    """Read INPUT (DICOM folder/file, NIfTI) as a Volume; the input is never modified."""
    from ..io import read_volume

    kwargs = {"series_uid": series_uid} if series_uid else {}
    return read_volume(Path(path), **kwargs)
