"""``cf-iap-train evaluate | sweep | reproduce`` (registered through ``cli.EXTRA_COMMANDS``).

::

    cf-iap-train evaluate STORE --cddgm B --iap B [--seg B] --out DIR [--steps 50 --guidance 3]
    cf-iap-train sweep STORE --cddgm B --iap B --out DIR [--steps 25,50,75 --guidance 3,5,7]
    cf-iap-train reproduce --preset tiny|cpu|default|paper --out DIR [--report PATH] [--resume]

Common options: ``--features predictor|PATH`` (FID features: the IAP predictor's penultimate
layer, or a local ResNet weights file), ``--sim-dir`` (the simulated dataset, when the store
does not remember it), ``--per-patient N`` (test slices per patient), ``--device``,
``--threads``. Each command writes ``results.json`` and a markdown report with PNG figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from napari_cf_iap.errors import InputError, OutputExistsError


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", default="predictor", help="predictor | PATH to ResNet weights")
    p.add_argument("--sim-dir", type=Path, default=None, help="simulated dataset (auto)")
    p.add_argument("--per-patient", type=int, default=8, help="test slices per patient (8)")
    p.add_argument("--split", default="test", help="split to evaluate on (test)")
    p.add_argument("--seed", type=int, default=0, help="target shuffle and noise seed")
    p.add_argument("--sampler", default="ddpm", choices=("ddpm", "ddim"))
    p.add_argument("--batch-size", type=int, default=16, help="slices edited at a time")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--report", type=Path, default=None, help="markdown report (OUT/report.md)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT's results")


def _threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))


def _prepare_out(out: Path, overwrite: bool) -> None:
    if (out / "results.json").exists() and not overwrite:
        raise OutputExistsError(f"{out} already holds results; pass --overwrite or another --out")
    out.mkdir(parents=True, exist_ok=True)


def _finish(args: argparse.Namespace, results: dict[str, Any], sweep: dict[str, Any] | None) -> int:
    import numpy as np

    from napari_cf_iap.io.atomic import atomic_write_text

    from .reproduce import (
        _example_arrays,
        _json_default,
        _strip_examples,
        commit_text,
        machine_text,
        render_to,
    )

    results.update(
        command="cf-iap-train " + " ".join(args.argv),
        commit=commit_text(),
        machine_text=machine_text(args.threads),
    )
    examples = None
    if sweep is not None:
        examples = args.out / "examples.npz"
        np.savez_compressed(examples, **_example_arrays(sweep))
        results["sweep"] = _strip_examples(sweep)
    text = json.dumps(results, indent=1, default=_json_default)
    atomic_write_text(args.out / "results.json", text, overwrite=True)
    report = args.report or args.out / "report.md"
    render_to(report, results, examples, None, overwrite=args.overwrite, prefix=args.command)
    print(f"results: {args.out / 'results.json'}; report: {report}")
    return 0


def _run_sweep(args: argparse.Namespace, steps: tuple, guidance: tuple) -> dict[str, Any]:
    from .sweep import run_sweep

    return run_sweep(
        args.store,
        args.cddgm,
        args.iap,
        steps=steps,
        guidance=guidance,
        split=args.split,
        per_patient=args.per_patient or None,
        features=args.features,
        sim_dir=args.sim_dir,
        sampler=args.sampler,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        log=print,
    )


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", help="Table 1 + one edit setting (Tables 3/4, ground truth) [+ segmenter]"
    )
    p.add_argument("store", type=Path)
    p.add_argument("--cddgm", type=Path, required=True, help="cDDGM bundle")
    p.add_argument("--iap", type=Path, required=True, help="IAP predictor bundle")
    p.add_argument("--seg", type=Path, default=None, help="segmenter bundle (optional)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=3.0)
    _common(p)

    def handler(args: argparse.Namespace) -> int:
        from .table1 import run_table1

        _threads(args)
        _prepare_out(args.out, args.overwrite)
        results: dict[str, Any] = {
            "table1": run_table1(args.store, args.iap, split=args.split, device=args.device)
        }
        sweep = _run_sweep(args, (args.steps,), (args.guidance,))
        if args.seg is not None:
            from ..slice_store import ORIGINAL, SliceStore
            from .table2 import score_segmenter

            store = SliceStore.open(args.store)
            rows = [
                r["row"]
                for r in store.rows
                if r["source"] == ORIGINAL and r["split"] == args.split and r["has_mask"]
            ]
            if not rows:
                raise InputError(f"no masked {args.split!r} slices to score the segmenter on")
            results["segmentation"] = {
                "bundle": str(args.seg),
                "slices": len(rows),
                "scores": score_segmenter(args.seg, store, rows, args.device),
            }
        return _finish(args, results, sweep)

    p.set_defaults(handler=handler)


def _add_sweep(sub: Any) -> None:
    p = sub.add_parser("sweep", help="Tables 3/4 + ground truth over steps x guidance")
    p.add_argument("store", type=Path)
    p.add_argument("--cddgm", type=Path, required=True, help="cDDGM bundle")
    p.add_argument("--iap", type=Path, required=True, help="IAP predictor bundle")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=_ints, default=(25, 50, 75), help="e.g. 25,50,75")
    p.add_argument("--guidance", type=_floats, default=(3.0, 5.0, 7.0), help="e.g. 3,5,7")
    _common(p)

    def handler(args: argparse.Namespace) -> int:
        _threads(args)
        _prepare_out(args.out, args.overwrite)
        return _finish(args, {}, _run_sweep(args, args.steps, args.guidance))

    p.set_defaults(handler=handler)


def _add_reproduce(sub: Any) -> None:
    from .reproduce import PRESETS

    p = sub.add_parser(
        "reproduce", help="simulate -> prepare -> split -> train -> augment -> evaluate -> report"
    )
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--out", type=Path, required=True, help="working folder")
    p.add_argument("--report", type=Path, default=None, help="markdown (OUT/reproduction.md)")
    p.add_argument("--duke-dir", type=Path, default=None, help="real Duke data (preset paper)")
    p.add_argument("--cddgm", type=Path, default=None, help="use this cDDGM bundle, no training")
    p.add_argument("--iap", type=Path, default=None, help="use this IAP predictor bundle")
    p.add_argument("--features", default=None, help="FID features: predictor | PATH")
    p.add_argument("--no-context", action="store_true", help="skip the context comparison")
    p.add_argument("--patients", type=int, default=None, help="override: simulated patients")
    p.add_argument("--sim-seed", type=int, default=None, help="override: simulation seed")
    p.add_argument("--seeds", type=_ints, default=None, help="override: Table 2 seeds, e.g. 0,1")
    p.add_argument("--device", default="cpu")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator for training")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue OUT, skipping done stages")
    mode.add_argument("--overwrite", action="store_true", help="start OUT again")
    mode.add_argument("--report-only", action="store_true", help="re-render OUT's report")

    def handler(args: argparse.Namespace) -> int:
        from .reproduce import Reproduction, get_reproduce_preset

        changes = {"patients": args.patients, "sim_seed": args.sim_seed, "seeds": args.seeds}
        preset = get_reproduce_preset(args.preset).with_overrides(
            **{k: v for k, v in changes.items() if v is not None}
        )
        job = Reproduction(
            preset,
            args.out,
            duke_dir=args.duke_dir,
            cddgm=args.cddgm,
            iap=args.iap,
            features=args.features,
            threads=args.threads,
            device=args.device,
            accelerator=args.accelerator,
            context=not args.no_context,
            resume=args.resume or args.report_only,
            overwrite=args.overwrite,
            command="" if args.report_only else "cf-iap-train " + " ".join(args.argv),
            log=print,
        )
        if args.report_only:
            if not (args.out / "results.json").is_file():
                raise InputError(f"{args.out} holds no results.json to report on")
            path = job.write_report(args.report)
        else:
            job.run(args.report)
            path = Path(args.report) if args.report else args.out / "reproduction.md"
        print(f"report: {path}", file=sys.stderr)
        return 0

    p.set_defaults(handler=handler)


def add_evaluation_parsers(subparsers: Any) -> None:
    """Register ``evaluate``, ``sweep`` and ``reproduce`` on a ``cf-iap-train`` sub-parser set."""
    _add_evaluate(subparsers)
    _add_sweep(subparsers)
    _add_reproduce(subparsers)


#: the name ``cli.EXTRA_COMMANDS`` modules expose
add_parser = add_evaluation_parsers
