"""`bert2 explain`: one real training batch, from text to loss, printed with colours (or as JSON).

The explainer (torch) is imported inside the command, like the other commands that load a model.
"""

from __future__ import annotations

import argparse
import sys
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
    if args.html:
        write_inside_pages(result, args.html)
    if args.json:
        print_json(result.to_dict())
        return 0
    render(result, Console())
    return 0


def write_inside_pages(result: Any, target: str) -> None:
    """`--html FILE`: the first example's page (the Inside screen's ctrl+e page: tokens, predictions, head view
    of its first masked token in layer 1 head 1, model view); each further example beside it as FILE-2.html, …"""
    from pathlib import Path

    from ..html_export import inside_page

    base = Path(target)
    for b, row in enumerate(result.examples):
        maps = result.attention[:, b].tolist() if result.attention is not None else None  # (L, nh, T, T)
        path = base if b == 0 else base.with_name(f"{base.stem}-{b + 1}{base.suffix or '.html'}")
        try:
            path.write_text(inside_page(result.checkpoint, result.source, row, maps, loss=result.loss), "utf-8")
        except OSError as exc:
            raise InputError(f"--html: cannot write {path}: {exc.strerror or exc}") from exc
        sys.stderr.write(f"wrote {path}\n")


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
            'bert2 explain --text "The capital of France is Paris." --html inside.html',
        ),
    )
    add_common(p, example="data.mlm_probability=0.3")
    p.add_argument("--checkpoint", metavar="DIR", help="pretraining checkpoint (default: pretrain best, else final)")
    p.add_argument("--text", help="your own sentence instead of corpus examples (segment A)")
    p.add_argument("--pair", help="with --text: a second sentence (segment B, labelled IsNext)")
    p.add_argument("--seed", type=int, default=0, help="which examples and which masks")
    p.add_argument("--batch-size", type=int, default=2, help="corpus examples in the batch")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--html",
        metavar="FILE",
        help="also write each example as a standalone HTML page (tokens, predictions, head and model view): "
        "FILE, then FILE-2.html, ...",
    )
    p.set_defaults(func=cmd_explain)
    add_timelapse_parser(sub)


def cmd_timelapse(args: argparse.Namespace) -> int:
    from ..html_export import timelapse_page  # torch and the model: see the module docstring
    from ..timelapse import DEFAULT_TEXTS, default_target, timelapse

    cfg = load(args)
    if args.top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {args.top_k}")
    target = args.target or default_target(cfg.paths.root)
    texts = list(args.text or DEFAULT_TEXTS)
    frames = timelapse(target, texts, top_k=args.top_k, attention=bool(args.html))
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(timelapse_page(frames, f"Watching BERT learn: {target}"))
        sys.stderr.write(f"wrote {args.html}\n")
        for f in frames:
            f.pop("attention", None)  # the page has it; the JSON stays the documented shape
    if args.json:
        print_json(frames)
        return 0
    for f in frames:
        loss = "" if f["loss"] is None else f" loss {f['loss']:.3f}"
        shares = type_counts(f["heads"])
        print(f"step {f['step']:>6} {f['stage']:<10}{loss}  heads: {shares}")
        for probe in f["probes"]:
            guesses = " | ".join(
                ", ".join(f"{p['token']} {p['score']:.2f}" for p in m[:3]) for m in probe["predictions"]
            )
            print(f"    {probe['text'][:50]!r}: {guesses}")
    return 0


def type_counts(heads: list[dict[str, Any]]) -> str:
    """ "previous 2, sink 5, broad 1": how many heads have each dominant type."""
    counts: dict[str, int] = {}
    for h in heads:
        counts[h["type"]] = counts.get(h["type"], 0) + 1
    return ", ".join(f"{t} {n}" for t, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def add_timelapse_parser(sub: Any) -> None:
    p = command(
        sub,
        "timelapse",
        "every checkpoint of a run: its [MASK] guesses and attention-head types, in step order",
        "Loads each checkpoint of one pretraining run (the newest run of the directory, or the run of the\n"
        "step directory given) with the same Predictor as `bert2 inference mask`, and prints, per step, the\n"
        "top-k guesses for each --text with [MASK] and each head's dominant type (previous/next token,\n"
        "[CLS]/[SEP] sink, same word, broad) scored on all the texts. docs/watching-bert-learn.md.",
        (
            "bert2 timelapse",
            'bert2 timelapse saved_model/transformer/pretrain --text "Paris is the [MASK] of France." --json',
            "bert2 timelapse --html timelapse.html",
        ),
    )
    add_common(p, example="paths.root=other_saved_model")
    p.add_argument(
        "target",
        nargs="?",
        metavar="RUN_OR_KIND_DIR",
        help="a step directory (its run) or a kind/stage directory (its newest run); default: the pretrain kind dir",
    )
    p.add_argument("--text", action="append", metavar="S", help="a sentence to read (repeatable; [MASK] to probe)")
    p.add_argument("--top-k", type=int, default=5, help="predictions per [MASK]")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per checkpoint")
    p.add_argument("--html", metavar="FILE", help="also write a standalone HTML page of the time-lapse")
    p.set_defaults(func=cmd_timelapse)
