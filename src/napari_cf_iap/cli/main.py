"""``cf-iap``: the user command line (simulate, counterfactual, predict-iap, segment, demo, ...).

Each sub-command lives in its own module and registers itself through ``add_parser``.
Errors of our own types print one clear line and exit with status 2, operating-system errors
(disk full, permission denied) one line with status 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import CfIapError

#: (sub-command module, relative to this package) in the order shown by ``--help``.
COMMAND_MODULES = (
    ".demo_command",
    ".counterfactual_command",
    ".predict_command",
    ".segment_command",
    ".simulate_command",
    ".bundles_command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cf-iap",
        description="Counterfactual MRI acquisition-parameter editing (napari-cf-iap).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name, __package__).add_parser(sub)
    return parser


def run_handler(args: argparse.Namespace, prog: str) -> int:
    """Run ``args.handler``; our errors and OS errors become one line, Ctrl-C exits 130.

    Shared by ``cf-iap`` and ``cf-iap-train``; ``--debug`` re-raises with the traceback.
    """
    try:
        return int(args.handler(args) or 0)
    except (CfIapError, OSError) as exc:  # OSError: disk full, permission denied, ...
        if args.debug:
            raise
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, CfIapError) else 1
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_handler(args, "cf-iap")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
