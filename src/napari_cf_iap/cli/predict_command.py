"""``cf-iap predict-iap``: predicted IAPs (with probabilities) next to the header's."""

from __future__ import annotations

import argparse
import json

from ..iap.record import IAP_LABELS, IAP_NAMES
from .common import add_device, parse_slices, progress_bar, read_input


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict-iap", help="predict a volume's IAPs from its pixels")
    p.add_argument("input")
    p.add_argument("--bundle", help="IAP-predictor bundle (default: the shipped one)")
    p.add_argument("--slices", help="N, START:STOP or N,M,... (default: all)")
    p.add_argument("--series-uid")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_device(p)
    p.set_defaults(handler=run)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import predict_iap

    volume = read_input(args.input, args.series_uid)
    with progress_bar("predict-iap") as progress:
        predicted = predict_iap(
            volume,
            args.bundle,
            slices=parse_slices(args.slices),
            device=args.device,
            progress=progress,
        )
    if args.json:
        print(
            json.dumps(
                {
                    "header": volume.iap.to_dict(),
                    "predicted": predicted.record.to_dict(),
                    "probabilities": predicted.probabilities,
                },
                indent=2,
            )
        )
        return 0
    print(f"{'IAP':<22}{'header':<28}{'predicted':<28}p")
    for name in IAP_NAMES:
        prob = ""
        if name in predicted.probabilities:
            prob = f"{predicted.confidence(name):.2f}"
        header, pred = getattr(volume.iap, name), getattr(predicted.record, name)
        print(f"{IAP_LABELS[name]:<22}{_fmt(header):<28}{_fmt(pred):<28}{prob}")
    return 0
