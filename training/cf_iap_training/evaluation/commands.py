"""The module ``cf_iap_training.cli.EXTRA_COMMANDS`` imports: registers evaluate/sweep/reproduce."""

from .cli_commands import add_evaluation_parsers as add_parser

__all__ = ["add_parser"]
