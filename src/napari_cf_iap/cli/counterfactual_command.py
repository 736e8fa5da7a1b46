"""``cf-iap counterfactual``: re-render a volume under target IAPs and write it."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    add_device,
    check_output,
    is_nifti,
    parse_slices,
    parse_target,
    progress_bar,
    read_input,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "counterfactual",
        help="edit a volume's acquisition parameters",
        description="Re-render INPUT (DICOM folder/file or NIfTI) as if acquired with the "
        "target IAPs. Unspecified IAPs keep the source's values.",
    )
    p.add_argument("input")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. model=Skyra field_strength=3 scan_options=FS fa=10 st=1 te=1.5 tr=4.5",
    )
    p.add_argument("--steps", type=int, help="noise level t0 of 1000 (default: bundle's)")
    p.add_argument("--guidance", type=float, help="guidance scale w (default: bundle's)")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], help="default: the bundle's (else ddpm)")
    p.add_argument(
        "--edit-mode",
        choices=["sdedit", "twin"],
        help="sdedit (the paper) or twin (apply only the change the IAPs cause; default: bundle's)",
    )
    p.add_argument("--ddim-steps", type=int, help="default: the bundle's (else 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slices", help="N, START:STOP or N,M,... (default: all)")
    p.add_argument("--bundle", help="cDDGM bundle directory (default: the shipped one)")
    p.add_argument("--series-uid", help="series to read when INPUT holds several")
    p.add_argument("--allow-extrapolation", action="store_true")
    p.add_argument("--out", required=True, help="output DICOM folder, or a .nii/.nii.gz file")
    p.add_argument("--overwrite", action="store_true")
    add_device(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import CounterfactualRequest, generate_counterfactual
    from .outputs import write_image

    check_output(args.out, args.overwrite)
    volume = read_input(args.input, args.series_uid)
    target = parse_target(args.target, volume.iap)
    request = CounterfactualRequest(
        target=target,
        steps=args.steps,
        guidance=args.guidance,
        sampler=args.sampler,
        edit_mode=args.edit_mode,
        ddim_steps=args.ddim_steps,
        seed=args.seed,
        slices=parse_slices(args.slices),
        allow_extrapolation=args.allow_extrapolation,
    )
    with progress_bar("counterfactual") as progress:
        result = generate_counterfactual(
            volume, request, args.bundle, device=args.device, progress=progress
        )
    out = write_image(result, Path(args.out), source=volume, overwrite=args.overwrite)
    print(f"source  {volume.iap.summary()}")
    print(f"target  {result.iap.summary()}")
    print(f"wrote   {out}{' (NIfTI + sidecar)' if is_nifti(out) else ' (derived DICOM series)'}")
    return 0
