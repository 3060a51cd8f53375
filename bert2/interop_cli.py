"""`bert2 import-hf` and `bert2 export-hf`: Hugging Face checkpoints in and out.

Kept apart from cli.py so the interop surface can grow without touching the core parser; cli.build_parser calls
`add_parsers`. Importing this module is cheap (no torch, no transformers): the work happens in bert2.interop,
imported inside the commands. Errors are bert2.errors types, which cli.main prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys


def cmd_import_hf(args: argparse.Namespace) -> int:
    from .interop import import_hf

    result = import_hf(args.source, args.out_dir, force=args.force)
    for message in result.warnings:  # stderr: stdout stays clean for --json and for scripts
        sys.stderr.write(f"warning: {message}\n")
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return 0
    cfg = result.model_config
    out = shlex.quote(str(result.path))
    print(f"imported {result.source} ({result.architecture}: {cfg.num_hidden_layers} layers, hidden "
          f"{cfg.hidden_size}, vocabulary {cfg.vocab_size}) -> {result.path}")
    print("try:")
    print(f"  bert2 inference mask \"The capital of France is [MASK].\" --checkpoint {out}")
    print(f"  bert2 finetune --task classify --from {out}")
    return 0


def cmd_export_hf(args: argparse.Namespace) -> int:
    from .interop import export_hf

    result = export_hf(args.checkpoint, args.out_dir, force=args.force, arch=args.arch)
    for message in result.warnings:
        sys.stderr.write(f"warning: {message}\n")
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return 0
    print(f"exported {result.checkpoint} ({result.task}) as transformers.{result.architecture} -> {result.path}")
    print(f"load it with: transformers.{result.architecture}.from_pretrained({str(result.path)!r})")
    if result.architecture in ("BertForPreTraining", "BertForMaskedLM"):
        print(f"  or: transformers.pipeline(\"fill-mask\", model={str(result.path)!r})")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `import-hf` and `export-hf` on the top-level sub-command parser."""
    p = subparsers.add_parser(
        "import-hf", help="turn a Hugging Face BERT checkpoint (directory or hub id) into a bert2 checkpoint",
        description="Convert a transformers BERT checkpoint (config.json + model.safetensors or pytorch_model.bin, "
                    "with vocab.txt or tokenizer.json) into a complete bert2 pretraining checkpoint usable with "
                    "`bert2 inference --checkpoint`, `bert2 finetune --from` and the workbench. Heads the source "
                    "lacks (MLM and NSP of a bare BertModel, NSP of a BertForMaskedLM) are freshly initialised, "
                    "with a warning. A hub id needs the network unless the model is in the Hugging Face cache.")
    p.add_argument("source", metavar="HF_DIR",
                   help="model directory, or a hub id such as google-bert/bert-base-uncased")
    p.add_argument("out_dir", metavar="OUT_DIR", help="bert2 checkpoint directory to create")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it holds a model already")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_import_hf)

    p = subparsers.add_parser(
        "export-hf", help="write a bert2 checkpoint as a transformers model directory",
        description="Write a bert2 checkpoint so transformers loads it with no missing or unexpected keys: "
                    "pretraining -> BertForPreTraining (or BertForMaskedLM with --arch masked-lm, the class the "
                    "fill-mask pipeline uses), classify -> BertForSequenceClassification, qa-span -> "
                    "BertForQuestionAnswering. The tokenizer is saved alongside. Generative QA (task qa) has no "
                    "transformers equivalent.")
    p.add_argument("checkpoint", metavar="CKPT_DIR", help="a step directory, or a stage / kind directory (its newest)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="directory to create")
    p.add_argument("--arch", choices=["pretraining", "masked-lm"], default=None,
                   help="pretraining checkpoints only: BertForPreTraining (default with NSP) or BertForMaskedLM")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it holds a model already")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export_hf)
