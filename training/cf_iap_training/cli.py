"""``cf-iap-train``: prepare, split, train, augment, export (headless; never imports Qt).

Sub-commands register themselves from ``COMMANDS``. Hook for more (evaluate/sweep/reproduce):
every module named in :data:`EXTRA_COMMANDS` that exists is imported and its
``add_parser(subparsers)`` called; it adds its sub-parsers and sets ``handler(args) -> int``
with ``set_defaults``. ``cf_iap_training.evaluation.commands`` is listed already, so the
evaluation package only has to provide that module.
Errors of our own types print one line and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_cf_iap import __version__
from napari_cf_iap.cli.main import run_handler

#: hook for later sub-commands: ``"package.module"`` names exposing ``add_parser(sub)``
EXTRA_COMMANDS: list[str] = [
    "cf_iap_training.evaluation.commands",
    "cf_iap_training.shipping.command",
]


def _add_prepare(sub: Any) -> None:
    p = sub.add_parser("prepare", help="Duke-layout DICOM (+ NRRD masks) -> slice store")
    p.add_argument("duke_dir", type=Path, help="folder holding Duke-Breast-Cancer-MRI/ (or it)")
    p.add_argument("--out", type=Path, required=True, help="slice store folder")
    p.add_argument("--size", type=int, default=128, help="stored slice size (default 128)")
    p.add_argument("--drop-slices", type=int, default=20, help="slices dropped at each end (20)")
    p.add_argument("--masks", type=Path, default=None, help="Segmentation_Masks_NRRD folder (auto)")
    p.add_argument("--limit", type=int, default=None, help="only the first N patients")
    p.add_argument("--resume", action="store_true", help="skip patients already in the store")
    p.add_argument(
        "--every-series",
        action="store_true",
        help="every readable series of a patient (simulated data with several protocols per "
        "patient; not for Duke, whose other series are post-contrast)",
    )

    def handler(args: argparse.Namespace) -> int:
        from .prepare import prepare

        report = prepare(
            args.duke_dir,
            args.out,
            size=args.size,
            drop_slices=args.drop_slices,
            masks_dir=args.masks,
            resume=args.resume,
            limit=args.limit,
            every_series=args.every_series,
            show_progress=True,
        )
        print(report.summary())
        return 0

    p.set_defaults(handler=handler)


def _add_split(sub: Any) -> None:
    p = sub.add_parser("split", help="patient-level stratified train/val/test split")
    p.add_argument("store", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mask-val", type=float, default=0.10, help="masked patients held out for val")

    def handler(args: argparse.Namespace) -> int:
        from .slice_store import SliceStore
        from .split import split_counts, split_store

        store = SliceStore.open(args.store)
        path, info = split_store(store, args.seed, mask_val=args.mask_val)
        for group, data in info["groups"].items():
            print(f"{group}: patients {data['patients']}")
        print(f"slices per split: {split_counts(SliceStore.open(args.store))}; saved {path}")
        return 0

    p.set_defaults(handler=handler)


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train cddgm | iap | seg with PyTorch Lightning")
    p.add_argument("model", choices=("cddgm", "iap", "seg"))
    p.add_argument("store", type=Path)
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--preset", default="default", choices=("paper", "default", "tiny"))
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--max-time", default=None, help="HH:MM:SS for this invocation")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--t-max", type=int, default=None, help="cddgm: focus timesteps below this")
    p.add_argument(
        "--context-mode",
        choices=("single_token", "per_iap"),
        default=None,
        help="cddgm: the paper's single context token (preset default) or one token per IAP",
    )
    p.add_argument("--ema-decay", type=float, default=None)
    p.add_argument("--val-every", type=int, default=None, help="validate every N steps")
    p.add_argument("--bundle-every", type=int, default=None, help="export a bundle every N steps")
    p.add_argument("--vocabulary", default="auto", help="auto | duke | data | PATH.json")
    p.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from this bundle's weights (fine-tune; its vocabulary and architecture)",
    )
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--devices", default="auto")
    p.add_argument("--strategy", default="auto")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--precision", default=None, help="e.g. 32-true, 16-mixed, bf16-mixed")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument(
        "--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.ckpt"
    )
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--with-augmentations", dest="augment", action="store_true")
    aug.add_argument("--no-augmentations", dest="augment", action="store_false")
    p.set_defaults(augment=False)
    p.add_argument("--log", default="csv", choices=("csv", "tensorboard"))
    p.add_argument("--seed", type=int, default=0)

    def handler(args: argparse.Namespace) -> int:
        from .train import HardwareOptions, RunOptions, command_line, run

        overrides = {
            "max_steps": args.max_steps,
            "max_epochs": args.max_epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "image_size": args.image_size,
            "t_max": args.t_max,
            "ema_decay": args.ema_decay,
            "val_every_steps": args.val_every,
            "bundle_every_steps": args.bundle_every,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if args.context_mode is not None:
            if args.model != "cddgm":
                from napari_cf_iap.errors import InputError

                raise InputError("--context-mode is a cddgm option")
            from .evaluation.context_compare import with_context_mode
            from .slice_store import SliceStore

            overrides = with_context_mode(
                SliceStore.open(args.store), args.context_mode, args.preset, overrides,
                args.vocabulary,
            )  # fmt: skip
        opts = RunOptions(
            model=args.model,
            store=args.store,
            out=args.out,
            preset=args.preset,
            overrides=overrides,
            max_time=args.max_time,
            resume=args.resume,
            with_augmentations=args.augment,
            vocabulary=args.vocabulary,
            init_from=args.init_from,
            log=args.log,
            seed=args.seed,
            command=command_line(args.argv),
        )
        hw = HardwareOptions(
            accelerator=args.accelerator,
            devices=args.devices,
            strategy=args.strategy,
            num_nodes=args.num_nodes,
            precision=args.precision,
            num_workers=args.num_workers,
            threads=args.threads,
        )
        summary = run(opts, hw)
        if "bundle" in summary:
            print(f"trained {summary['global_step']} steps; bundle: {summary['bundle']}")
        return 0

    p.set_defaults(handler=handler)


def _add_augment(sub: Any) -> None:
    p = sub.add_parser("augment", help="counterfactual copies of the segmentation training set")
    p.add_argument("store", type=Path)
    p.add_argument("--bundle", type=Path, required=True, help="cDDGM bundle folder")
    p.add_argument("--aug-ratio", type=int, default=1, help="copies per slice")
    p.add_argument("--steps", type=int, default=50, help="SDEdit noise level t0")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--target", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--other-manufacturer", action="store_true", help="targets from the other vendor"
    )
    p.add_argument("--shard", default="0/1", help="i/n: this process does every n-th slice")
    p.add_argument("--limit", type=int, default=None, help="only the first N source slices")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="skip slices already augmented")

    def handler(args: argparse.Namespace) -> int:
        from .augment import augment, parse_shard, parse_targets

        report = augment(
            args.store,
            args.bundle,
            aug_ratio=args.aug_ratio,
            steps=args.steps,
            guidance=args.guidance,
            targets=parse_targets(args.target),
            other_manufacturer=args.other_manufacturer or not args.target,
            shard=parse_shard(args.shard),
            limit=args.limit,
            batch_size=args.batch_size,
            seed=args.seed,
            device=args.device,
            resume=args.resume,
            show_progress=True,
        )
        print(report)
        return 0

    p.set_defaults(handler=handler)


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="(re)export RUN_DIR/bundle from a checkpoint of the run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--checkpoint", default="best", help="best | last | PATH")

    def handler(args: argparse.Namespace) -> int:
        from .export_run import export_run

        print(f"bundle: {export_run(args.run_dir, args.checkpoint)}")
        return 0

    p.set_defaults(handler=handler)


COMMANDS = (_add_prepare, _add_split, _add_train, _add_augment, _add_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cf-iap-train", description="Build the napari-cf-iap models from data (headless)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    for name in EXTRA_COMMANDS:
        if importlib.util.find_spec(name.rpartition(".")[0]) is None:
            continue
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    return run_handler(args, "cf-iap-train")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
