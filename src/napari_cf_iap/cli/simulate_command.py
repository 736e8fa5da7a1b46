"""``cf-iap simulate``: write simulated patients in the Duke-Breast-Cancer-MRI layout."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="write a simulated dataset in the Duke layout")
    p.add_argument("--patients", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", default="64,256,256", help="slices,rows,columns")
    p.add_argument("--mask-fraction", type=float, default=0.25, help="patients with NRRD masks")
    p.add_argument("--manufacturers", help="comma-separated subset, e.g. GE or SIEMENS")
    p.add_argument(
        "--protocols-per-patient",
        type=int,
        default=1,
        help="series per patient, each under its own protocol (training data; Duke has 1)",
    )
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..simulator.dataset_writer import write_duke_dataset
    from .common import progress_bar

    try:
        shape = tuple(int(v) for v in args.shape.split(","))
    except ValueError as exc:
        raise InputError(f"--shape {args.shape!r} must be three integers like 64,256,256") from exc
    if len(shape) != 3:
        raise InputError(f"--shape needs three integers, got {args.shape!r}")
    manufacturers = args.manufacturers.split(",") if args.manufacturers else None
    with progress_bar("simulate") as progress:
        out = write_duke_dataset(
            args.out,
            args.patients,
            seed=args.seed,
            shape=shape,
            mask_fraction=args.mask_fraction,
            manufacturers=manufacturers,
            protocols_per_patient=args.protocols_per_patient,
            overwrite=args.overwrite,
            progress=progress,
        )
    print(f"wrote {args.patients} simulated patients to {out}")
    return 0
