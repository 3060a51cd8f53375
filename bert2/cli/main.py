"""`bert2 ...`: the headless command line. Mirrors the seed's main.py modes (quick, pretrain, finetune, full,
inference) and adds checkpoints, config, import/export and bench.

The command table is COMMAND_GROUPS: each module adds its sub-commands and sets `func`. Errors a user can cause
print one line and exit with code 2; nothing prints a traceback unless BERT2_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..config import ConfigError
from ..errors import Bert2Error
from . import bench, checkpoints, configure, infer, train
from .common import EXIT_USAGE

COMMAND_GROUPS = (train, infer, checkpoints, configure, bench)  # in the order `bert2 --help` lists them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bert2", description="BERT from scratch: pretrain, fine-tune, infer.")
    parser.add_argument("--version", action="version", version=f"bert2 {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        sys.stderr.write("error: invalid configuration\n" + "".join(f"  {e}\n" for e in exc.errors))
        return EXIT_USAGE
    except Bert2Error as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        return 130
    except Exception as exc:  # a bug: keep the screen clean, but make the traceback one variable away
        if os.environ.get("BERT2_DEBUG"):
            raise
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc} (set BERT2_DEBUG=1 for the traceback)\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
