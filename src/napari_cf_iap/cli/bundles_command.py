"""``cf-iap bundles``: list available bundles; import the authors' Lightning checkpoints."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundles", help="list model bundles or import a checkpoint")
    inner = p.add_subparsers(dest="bundles_command", required=True)
    ls = inner.add_parser("list", help="bundles shipped with the package (and in --dir)")
    ls.add_argument("--dir", action="append", default=[])
    ls.set_defaults(handler=run_list)
    imp = inner.add_parser(
        "import", help="convert an authors' Lightning .ckpt (monai-generative) into a bundle"
    )
    imp.add_argument("checkpoint")
    imp.add_argument("--out", required=True)
    imp.add_argument("--config", help="JSON CDDGMConfig overriding the checkpoint's hparams")
    imp.add_argument("--vocabulary", help="IAP vocabulary JSON (default: Duke)")
    imp.add_argument("--image-size", type=int)
    imp.add_argument("--overwrite", action="store_true")
    imp.set_defaults(handler=run_import)


def run_list(args: argparse.Namespace) -> int:
    from ..bundles.registry import list_bundles

    for info in list_bundles(args.dir):
        state = "ok" if info.available else "missing"
        print(f"{info.name:<24}{info.kind:<16}{state:<9}{info.path}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ..bundles.importer import import_authors_checkpoint
    from ..iap import IAPVocabulary

    vocab = IAPVocabulary.load(args.vocabulary) if args.vocabulary else IAPVocabulary.duke_default()
    out = import_authors_checkpoint(
        args.checkpoint,
        args.out,
        vocab=vocab,
        config=args.config,
        image_size=args.image_size,
        overwrite=args.overwrite,
    )
    print(f"wrote bundle {out} (weights loaded as tensors only; no pickled code executed)")
    return 0
