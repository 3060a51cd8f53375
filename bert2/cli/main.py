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
from . import bench, checkpoints, compress, configure, explain, infer, train
from .common import EXIT_USAGE, add_global

COMMAND_GROUPS = (
    train,
    infer,
    explain,
    compress,
    checkpoints,
    configure,
    bench,
)  # in the order `bert2 --help` lists them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bert2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="BERT from scratch: pretrain (MLM + NSP), fine-tune (classify, qa, qa-span), infer.\n"
        "`bert2 COMMAND --help` shows each command's options, defaults and examples; the workbench "
        "is `bert2-tui`.",
        epilog="first steps:\n  bert2 quick                      # pretrain BERT-Tiny for a few minutes\n"
        '  bert2 inference mask "The capital of France is [MASK]."\n'
        "  bert2 finetune                   # classify IMDB reviews from that checkpoint\n"
        '  bert2 inference classify "A wonderful, moving film."',
    )
    parser.add_argument("--version", action="version", version=f"bert2 {__version__}")
    add_global(parser)
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
