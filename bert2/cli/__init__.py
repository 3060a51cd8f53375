"""The `bert2` command line: main.py holds the command table, common.py what commands share, and one module per
command group (train, infer, checkpoints, configure, bench)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
