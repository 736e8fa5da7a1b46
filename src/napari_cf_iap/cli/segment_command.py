"""``cf-iap segment``: background / fat / FGT labels in the source geometry."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .common import add_device, check_output, progress_bar, read_input


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment fat and fibroglandular tissue")
    p.add_argument("input")
    p.add_argument("--out", required=True, help=".nii/.nii.gz or .seg.nrrd output")
    p.add_argument("--bundle", help="segmenter bundle (default: the shipped one)")
    p.add_argument("--series-uid")
    p.add_argument("--overwrite", action="store_true")
    add_device(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import segment
    from .outputs import write_labels

    check_output(args.out, args.overwrite)
    volume = read_input(args.input, args.series_uid)
    with progress_bar("segment") as progress:
        labels = segment(volume, args.bundle, device=args.device, progress=progress)
    out = write_labels(labels, volume, Path(args.out), overwrite=args.overwrite)
    counts = np.bincount(labels.ravel(), minlength=3)
    total = labels.size
    shares = "  ".join(
        f"{name} {count / total:.1%}"
        for name, count in zip(("background", "fat", "FGT"), counts[:3], strict=True)
    )
    print(shares)
    print(f"wrote {out}")
    return 0
