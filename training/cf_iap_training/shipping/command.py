"""``cf-iap-train ship``: check trained bundles on held-out subjects and package them."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ship", help="acceptance-check bundles and copy them into the package as defaults"
    )
    p.add_argument("--cddgm", help="cDDGM bundle directory")
    p.add_argument("--iap", help="IAP-predictor bundle directory")
    p.add_argument("--seg", help="segmenter bundle directory")
    p.add_argument("--dest", type=Path, help="weights folder (default: the package's)")
    p.add_argument("--subjects", type=int, default=8, help="held-out simulated subjects (8)")
    p.add_argument("--edit-slices", type=int, default=6, help="edited slices per subject")
    p.add_argument(
        "--seed",
        type=int,
        help="first held-out subject's seed (default: the acceptance's own); use a new one to "
        "verify settings that were chosen on another subject set",
    )
    p.add_argument(
        "--steps",
        type=int,
        help="noise level t0 (default: the bundle's; shipped as the new default)",
    )
    p.add_argument(
        "--guidance",
        type=float,
        help="guidance (default: the bundle's; shipped as the new default)",
    )
    p.add_argument(
        "--edit-mode",
        choices=["sdedit", "twin"],
        help="edit mode (default: the bundle's; shipped as the new default)",
    )
    p.add_argument(
        "--sampler",
        choices=["ddpm", "ddim"],
        help="sampler (default: the bundle's; shipped as the new default)",
    )
    p.add_argument(
        "--ddim-steps",
        type=int,
        help="DDIM steps with --sampler ddim (default: the bundle's; shipped as the new default)",
    )
    p.add_argument("--note", help="text that ends every model card (e.g. how settings were chosen)")
    p.add_argument("--check-only", action="store_true", help="report, do not copy")
    p.add_argument("--device", default="auto")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from napari_cf_iap.bundles.registry import weights_root
    from napari_cf_iap.cli.common import progress_bar

    from .acceptance import AcceptanceConfig, run_acceptance
    from .package import ship_bundles

    bundles = {"cddgm": args.cddgm, "iap_predictor": args.iap, "segmenter": args.seg}
    bundles = {k: v for k, v in bundles.items() if v}
    config = AcceptanceConfig(
        subjects=args.subjects,
        edit_slices=args.edit_slices,
        **({} if args.seed is None else {"seed": args.seed}),
        steps=args.steps,
        guidance=args.guidance,
        edit_mode=args.edit_mode,
        sampler=args.sampler,
        ddim_steps=args.ddim_steps,
        device=args.device,
    )
    with progress_bar("acceptance") as progress:
        report = run_acceptance(config, bundles, progress)
    print(json.dumps(report.to_dict(), indent=2, default=str))
    for name, ok in report.verdicts().items():
        print(f"{'-' if ok is None else ('PASS' if ok else 'FAIL'):<5} {name}")
    if args.check_only:
        return 0
    command = "cf-iap-train " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    checked = {
        "steps": args.steps,
        "guidance": args.guidance,
        "edit_mode": args.edit_mode,
        "sampler": args.sampler,
        "ddim_steps": args.ddim_steps,
    }
    checked = {k: v for k, v in checked.items() if v is not None}
    written = ship_bundles(
        bundles, report, args.dest or weights_root(), command, checked, note=args.note
    )
    for kind, path in written.items():
        print(f"shipped {kind}: {path}")
    return 0
