"""`bert2 bench [NAME ...]`: benchmarks that print measured numbers (never tests)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .common import UsageError, command, print_json

# Names of bert2.bench.BENCHMARKS, listed here so that `bert2 --help` does not import torch (a test keeps the
# two lists equal).
BENCH_NAMES = (
    "train_throughput",
    "time_to_quality",
    "inference_latency",
    "tui",
    "quick_rss",
    "memory",
    "finetune_quality",
    "data_prep",
)


def _quality_tasks() -> tuple[tuple[str, str], ...]:
    from ..bench import QUALITY_TASKS

    return QUALITY_TASKS


def cmd_bench(args: argparse.Namespace) -> int:
    from .. import bench  # torch and transformers: only a benchmark needs them

    unknown = [n for n in args.names if n not in bench.BENCHMARKS]
    if unknown:
        raise UsageError(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(bench.BENCHMARKS)}")
    names = args.names or [n for n in bench.BENCHMARKS if n not in bench.SLOW]
    kwargs = {
        "time_to_quality": {"minutes": args.minutes},
        "inference_latency": {"checkpoint": args.checkpoint},
        "finetune_quality": {
            "checkpoint": args.checkpoint,
            "minutes": args.finetune_minutes or 0.0,
            **({"tasks": ((args.task or "classify", args.data),)} if args.data else {}),
            **(
                {"tasks": tuple(t for t in _quality_tasks() if t[0] == args.task)}
                if args.task and not args.data
                else {}
            ),
        },
        "data_prep": {"mb": args.mb, "corpus": args.corpus, "workers": args.workers},
        "train_throughput": {
            "profile": args.profile,
            "presets": tuple(args.presets.split(",")) if args.presets else (),
        },
    }
    results = {}
    for name in names:
        sys.stderr.write(f"running {name} ...\n")
        results.update(bench.run([name], **kwargs))
        if not args.json:
            print(f"== {name}")
            print(json.dumps(results[name], indent=2))
    if args.json:
        print_json(results)
    return 0


def add_parsers(sub: Any) -> None:
    p = command(
        sub,
        "bench",
        "benchmarks against transformers (measured numbers, not tests)",
        "Each benchmark prints what it measured on this machine; never run two at once.",
        (
            "bert2 bench train_throughput",
            "bert2 bench train_throughput --presets tiny,mini --profile --json",
            "bert2 bench memory --json",
            "bert2 bench finetune_quality --finetune-minutes 1.5",
            "bert2 bench finetune_quality --task classify --data reviews.csv",
            "bert2 bench data_prep --mb 500",
        ),
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"which to run (default: all but finetune_quality, which fine-tunes 8 models, memory, "
        f"which pretrains three presets, and data_prep, which writes a corpus): "
        f"{', '.join(BENCH_NAMES)}",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by benchmark name")
    p.add_argument("--minutes", type=float, default=5.0, help="time_to_quality: budget per model (default 5)")
    p.add_argument(
        "--checkpoint", metavar="DIR", help="inference_latency, finetune_quality: checkpoint (default: pretrain best)"
    )
    p.add_argument(
        "--finetune-minutes",
        type=float,
        metavar="M",
        help="finetune_quality: a wall-clock budget per run (default: none, the recipe the data gives)",
    )
    p.add_argument(
        "--data",
        metavar="NAME_OR_PATH",
        help="finetune_quality: your own data (a CSV/JSONL/SQuAD/CoNLL file or a hub name) instead of the built-ins",
    )
    p.add_argument(
        "--task", help="finetune_quality: the task of --data (default classify), or the built-ins of one task"
    )
    p.add_argument(
        "--mb",
        type=float,
        default=25.0,
        help="data_prep: size of the generated corpus in MB (default 25; needs ~1.2x its size on disk)",
    )
    p.add_argument("--corpus", metavar="CORPUS", help="data_prep: prepare this corpus instead of a generated one")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="data_prep: worker processes (default: one per core, at most 8; 0 = all in the main process)",
    )
    p.add_argument(
        "--presets",
        metavar="A,B",
        default="tiny,mini,small",
        help="train_throughput: presets measured beside the seed's BERT-Tiny (default tiny,mini,small; '' for none)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="train_throughput: add torch.profiler's per-op table (fp32 and bf16) of each model's step",
    )
    p.set_defaults(func=cmd_bench)
