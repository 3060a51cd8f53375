"""`bert2 explain`: one real training batch, from text to loss, printed with colours (or as JSON).

The explainer (torch) is imported inside the command, like the other commands that load a model.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from ..checkpoint import default_checkpoint
from ..errors import InputError
from ..explain_view import render
from .common import add_common, command, load, print_json


def cmd_explain(args: argparse.Namespace) -> int:
    from ..explain import Explainer  # torch: see the module docstring

    cfg = load(args)
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    explainer = Explainer(cfg, args.checkpoint or default_checkpoint(cfg.paths.root, "pretrain"))
    if args.text is not None:
        examples, source = explainer.text_examples(args.text, args.pair)
    else:
        examples, source = explainer.corpus_examples(args.batch_size, args.seed)
    result = explainer.explain(examples, args.seed, source)
    if args.json:
        print_json(result.to_dict())
        return 0
    render(result, Console())
    return 0


def add_parsers(sub: Any) -> None:
    p = command(
        sub,
        "explain",
        "follow one real training batch from text to loss",
        "Takes a batch from the configured corpus (or your text), masks it with the trainer's own\n"
        "collator, runs the checkpoint's forward pass and shows every step: tokens, segments, padding,\n"
        "which tokens were selected and what became of them (80% [MASK] / 10% random / 10% kept), the\n"
        "labels, the predictions at each masked position with its loss, NSP, and how it adds up.",
        (
            "bert2 explain",
            'bert2 explain --text "The capital of France is Paris." --pair "It lies on the Seine."',
            "bert2 explain --seed 7 --batch-size 4 --json",
        ),
    )
    add_common(p, example="data.mlm_probability=0.3")
    p.add_argument("--checkpoint", metavar="DIR", help="pretraining checkpoint (default: pretrain best, else final)")
    p.add_argument("--text", help="your own sentence instead of corpus examples (segment A)")
    p.add_argument("--pair", help="with --text: a second sentence (segment B, labelled IsNext)")
    p.add_argument("--seed", type=int, default=0, help="which examples and which masks")
    p.add_argument("--batch-size", type=int, default=2, help="corpus examples in the batch")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_explain)
