"""`bert2 inference mask | classify | ner | qa | similarity`: one Predictor per call, input checked before loading.

The Predictor (torch) is imported inside the command: a typo in the text should cost nothing, and neither should
`bert2 inference --help`.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InputError
from .common import add_common, bar, command, load, print_json

MODES = ("mask", "classify", "ner", "qa", "similarity")
DEFAULT_CHECKPOINTS = {
    "mask": "pretrain best, else final",
    "classify": "finetune best, else final, of a classify run",
    "ner": "finetune best, else final, of a ner run",
    "qa": "finetune best, else final, of a qa or qa-span run",
    "similarity": "pretrain best, else final",
}


def _check_input(args: argparse.Namespace, check_mask_text: Any, check_text: Any) -> None:
    """Refuse bad input before a checkpoint is loaded."""
    if args.mode == "mask":
        check_mask_text(args.text, args.top_k)
    elif args.mode == "qa":
        check_text(args.question, "question")
        check_text(args.context, "context")
    elif args.mode in ("classify", "ner"):
        check_text(args.text, "text")
    else:
        check_text(args.text_a, "first text")
        check_text(args.text_b, "second text")


def cmd_inference(args: argparse.Namespace) -> int:
    from ..inference import Predictor, check_text, default_checkpoint_for  # torch: see above
    from ..tasks.pretraining import check_mask_text

    if args.mode not in MODES:
        raise InputError(f"unknown inference mode {args.mode!r}; choose {', '.join(MODES)}")
    cfg = load(args)
    _check_input(args, check_mask_text, check_text)
    predictor = Predictor.load(args.checkpoint or default_checkpoint_for(cfg.paths.root, args.mode))
    result: Any
    if args.mode == "mask":
        result = {"predictions": predictor.fill_mask(args.text, top_k=args.top_k)}
    elif args.mode == "classify":
        result = predictor.classify(args.text)
    elif args.mode == "ner":
        result = predictor.entities(args.text)
    elif args.mode == "qa":
        result = predictor.answer(args.question, args.context, num_beams=args.num_beams, max_length=args.max_length)
    else:
        result = {"similarity": predictor.similarity(args.text_a, args.text_b)}
    if args.json:
        print_json(result)
        return 0
    print(f"checkpoint: {predictor.path}" + (f" ({predictor.task})" if args.mode == "qa" else ""))
    if args.mode == "mask":
        for i, options in enumerate(result["predictions"], 1):
            print(f"[MASK] #{i}:")
            for p in options:
                print(f"  {p['token']:<15} {p['score']:.3f} {bar(p['score'])}")
    elif args.mode == "classify":
        print(f"label: {result['label']} ({result['score']:.3f})")
        for name, p in sorted(result["scores"].items(), key=lambda kv: -kv[1]):
            print(f"  {name:<28} {p:.3f} {bar(p)}")
    elif args.mode == "ner":
        if not result["entities"]:
            print("no entities found")
        for e in result["entities"]:
            print(f"  {e['text']:<28} {e['label']:<14} {e['score']:.3f}  characters {e['start']}-{e['end']}")
    elif args.mode == "qa":
        print(f"answer: {result['answer'] or '(no answer found)'}  (score {result['score']:.3f})")
        if "start" in result and result["start"] >= 0:
            print(f"span: characters {result['start']}-{result['end']} of the context")
    else:
        print(f"cosine similarity: {result['similarity']:.4f}")
    return 0


def add_parsers(sub: Any) -> None:
    p = command(
        sub,
        "inference",
        "fill-mask, classify, ner, qa or similarity with a checkpoint",
        "One request to one checkpoint; the input is checked before the model loads.",
        (
            'bert2 inference mask "The capital of France is [MASK]."',
            'bert2 inference classify "A wonderful, moving film." --json',
            'bert2 inference ner "Barack Obama visited the Empire State Building in New York." --json',
            'bert2 inference qa --question "What is Paris?" --context "Paris is the capital of France."',
            'bert2 inference similarity "a cat" "a kitten"',
        ),
    )
    isub = p.add_subparsers(dest="mode", required=True, metavar="MODE")
    m = command(
        isub,
        "mask",
        'top-k predictions for each [MASK], e.g. "The capital of France is [MASK]."',
        examples=('bert2 inference mask "The capital of France is [MASK]." --top-k 10',),
    )
    m.add_argument("text")
    m.add_argument("--top-k", type=int, default=5, help="predictions per [MASK]")
    c = command(
        isub,
        "classify",
        "label a text with a classify checkpoint",
        examples=('bert2 inference classify "A wonderful, moving film."',),
    )
    c.add_argument("text")
    n = command(
        isub,
        "ner",
        "named entities in a text, with character offsets, from a ner checkpoint",
        examples=('bert2 inference ner "Barack Obama visited the Empire State Building in New York."',),
    )
    n.add_argument("text")
    q = command(
        isub,
        "qa",
        "answer a question from a context with a qa or qa-span checkpoint",
        examples=('bert2 inference qa --question "What is Paris?" --context "Paris is the capital of France."',),
    )
    q.add_argument("--question", required=True)
    q.add_argument("--context", required=True)
    q.add_argument("--num-beams", type=int, help="beam width for generative QA (default: the checkpoint's)")
    q.add_argument("--max-length", type=int, help="longest answer in tokens (default: the checkpoint's)")
    s = command(
        isub,
        "similarity",
        "cosine similarity of two texts (any checkpoint)",
        examples=('bert2 inference similarity "a cat sat" "a kitten sat"',),
    )
    s.add_argument("text_a")
    s.add_argument("text_b")
    for name, mp in (("mask", m), ("classify", c), ("ner", n), ("qa", q), ("similarity", s)):
        add_common(mp, example="paths.root=other_saved_model")
        mp.add_argument(
            "--checkpoint", metavar="DIR", help=f"checkpoint directory (default: {DEFAULT_CHECKPOINTS[name]})"
        )
        mp.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inference)
