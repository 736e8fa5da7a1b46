"""``cf-iap demo``: the main job on the embedded default, with files, a figure and a table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import add_device


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate GE 1.5T, edit to Siemens 3T, predict, segment, score (offline)",
    )
    p.add_argument("--out", default="cf-iap-demo", help="output folder (default: cf-iap-demo)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--slices", type=int, default=24, help="number of simulated slices")
    p.add_argument("--size", type=int, default=160, help="in-plane matrix of the simulation")
    p.add_argument("--steps", type=int, help="noise level t0 (default: the bundle's)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: the bundle's)")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], help="default: the bundle's (else ddpm)")
    p.add_argument(
        "--edit-mode", choices=["sdedit", "twin"], help="edit mode (default: the bundle's)"
    )
    p.add_argument("--cddgm", help="cDDGM bundle (default: the shipped one)")
    p.add_argument("--iap-bundle", help="IAP-predictor bundle (default: the shipped one)")
    p.add_argument("--seg-bundle", help="segmenter bundle (default: the shipped one)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--gui", action="store_true", help="open the results in napari")
    add_device(p)
    p.set_defaults(handler=run)


def _print_summary(result, seconds: float) -> None:
    from ..iap.record import IAP_LABELS, IAP_NAMES

    def fmt(v: object) -> str:
        return "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))

    print(f"\n{'IAP':<21}{'source':<24}{'pred(source)':<24}{'target':<24}{'pred(edit)':<24}")
    for name in IAP_NAMES:
        row = [
            getattr(result.source.iap, name),
            getattr(result.predicted_source.record, name),
            getattr(result.counterfactual.iap, name),
            getattr(result.predicted_counterfactual.record, name),
        ]
        print(f"{IAP_LABELS[name]:<21}" + "".join(f"{fmt(v)[:22]:<24}" for v in row))
    r = result.report
    verdict = "edit better" if r.beats_nothing else "edit NOT better"
    print(
        f"\nground truth (same anatomy acquired at the target): MAE edit {r.mae_edit:.4f} vs "
        f"do-nothing {r.mae_nothing:.4f} -> {verdict}"
    )
    print(
        f"fat/FGT ratio: source {r.ratio_source:.3f}  edit {r.ratio_edit:.3f}  "
        f"truth {r.ratio_truth:.3f}"
    )
    for name, scores in result.dice().items():
        print(f"Dice ({name}): fat {scores[1]:.3f}  FGT {scores[2]:.3f}")
    print(f"total {seconds:.1f} s")


def _write_outputs(result, out: Path, overwrite: bool) -> None:
    from ..io import write_dicom_series, write_labels_nrrd, write_nifti
    from ..io.atomic import atomic_directory
    from ..summary_figure import save_demo_figure
    from .outputs import counterfactual_description

    with atomic_directory(out, overwrite=overwrite) as tmp:
        write_dicom_series(result.source, tmp / "source_dicom", series_description="DEMO GE 1.5T")
        write_dicom_series(
            result.counterfactual,
            tmp / "counterfactual_dicom",
            series_description=counterfactual_description(result.counterfactual),
            derived_from=result.source,
        )
        write_nifti(
            result.counterfactual, tmp / "counterfactual.nii.gz", derived_from=result.source
        )
        write_nifti(result.truth, tmp / "ground_truth_siemens3T.nii.gz")
        write_labels_nrrd(result.labels, result.source, tmp / "labels_truth.seg.nrrd")
        write_labels_nrrd(result.seg_source, result.source, tmp / "seg_source.seg.nrrd")
        write_labels_nrrd(
            result.seg_counterfactual, result.source, tmp / "seg_counterfactual.seg.nrrd"
        )
        save_demo_figure(result, tmp / "summary.png")


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    from .common import check_output, progress_bar

    out = check_output(args.out, args.overwrite)  # fail before minutes of work
    overrides = {}
    if args.sampler is not None:
        overrides["sampler"] = args.sampler
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.guidance is not None:
        overrides["guidance"] = args.guidance
    if args.edit_mode is not None:
        overrides["edit_mode"] = args.edit_mode
    start = time.perf_counter()
    with progress_bar("demo") as progress:
        result = run_demo(
            seed=args.seed,
            shape=(args.slices, args.size, args.size),
            request_overrides=overrides,
            device=args.device,
            bundles={
                "cddgm": args.cddgm,
                "iap_predictor": args.iap_bundle,
                "segmenter": args.seg_bundle,
            },
            progress=progress,
        )
    _write_outputs(result, out, args.overwrite)
    _print_summary(result, time.perf_counter() - start)
    print(f"wrote {out}/ (DICOM, NIfTI, NRRD masks, summary.png)")
    if args.gui:
        from ..gui.demo_viewer import show_demo

        show_demo(result)
    return 0
