"""`bert2 checkpoints`, `bert2 import-hf`, `bert2 export-hf`: checkpoint directories listed, brought in, sent out.

Listing reads trainer_state.json only (never weights, never torch). Import and export need torch and
transformers, imported inside their commands so that listing stays instant.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..checkpoint import list_checkpoints
from .common import HelpFormatter, add_common, command, load, print_json

WIDE = 150
"""Terminal columns from which the listing is one table row per checkpoint; narrower, it groups by directory."""

_HEADLINES = ("mlm_accuracy", "accuracy", "entity_f1", "f1", "rouge1", "exact_match")


def _headline(metrics: dict[str, float]) -> str:
    """The one number a learner compares checkpoints by (accuracy, F1, ROUGE-1), else the first recorded."""
    for key in (*_HEADLINES, *metrics):
        if key in metrics:
            return f"{key} {metrics[key]:.3g}"
    return ""


def _status(i: Any) -> str:
    return ("yes" if i.valid else f"invalid: {i.error}") + (f"; {i.note}" if i.note else "")


def _wide_table(root: str, infos: list[Any]) -> Table:
    table = Table(title=f"checkpoints under {root}")
    for col in ("kind", "stage", "step", "task", "metrics", "created", "size", "valid", "path"):
        table.add_column(col)
    for i in infos:
        metrics = " ".join(f"{k}={v:.3g}" for k, v in list(i.metrics.items())[:3])
        table.add_row(
            i.kind,
            i.stage,
            str(i.step),
            i.task,
            metrics,
            i.created[:19],
            f"{i.size_bytes / 1e6:.1f} MB",
            _status(i),
            i.path,
        )
    return table


def _grouped(root: str, infos: list[Any]) -> list[Any]:
    """For an 80-column terminal: per directory a heading (its path under the root, the task), then per checkpoint only what
    differs (step, the headline metric, when, size, valid), so no cell is cut to "pretr…"."""
    out: list[Any] = [f"[bold]checkpoints under {root}[/]"]
    groups: dict[str, list[Any]] = {}
    for i in infos:
        parent = Path(i.path).parent
        groups.setdefault(str(parent.relative_to(root)) if parent.is_relative_to(root) else str(parent), []).append(i)
    for directory, members in groups.items():
        tasks = ", ".join(sorted({m.task for m in members if m.task}))
        out.append(f"\n{directory}/" + (f"  [dim]{tasks}[/]" if tasks else ""))
        table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_header=False)
        table.add_column(justify="left", no_wrap=True)
        table.add_column(justify="left", no_wrap=True)
        table.add_column(justify="left", no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(overflow="fold")
        for i in members:
            table.add_row(
                "  " + Path(i.path).name,
                _headline(i.metrics),
                i.created[:16].replace("T", " "),
                f"{i.size_bytes / 1e6:.1f} MB",
                "[green]valid[/]" if i.valid and not i.note else _status(i),
            )
        out.append(table)
    return out


def cmd_checkpoints(args: argparse.Namespace) -> int:
    cfg = load(args)
    infos = list_checkpoints(cfg.paths.root)
    if args.json:
        print_json([i.to_dict() for i in infos])
        return 0
    console = Console()
    if not infos:
        console.print(f"no checkpoints under {cfg.paths.root} yet: run `bert2 quick`")
        return 0
    wide = console.width >= WIDE
    for part in [_wide_table(cfg.paths.root, infos)] if wide else _grouped(cfg.paths.root, infos):
        console.print(part)
    return 0


def cmd_import_hf(args: argparse.Namespace) -> int:
    from ..checkpoint.hf import import_hf  # torch + transformers: see the module docstring

    result = import_hf(args.source, args.out_dir, force=args.force)
    for message in result.warnings:  # stderr: stdout stays clean for --json and for scripts
        sys.stderr.write(f"warning: {message}\n")
    if args.json:
        print_json(result.to_dict())
        return 0
    cfg = result.model_config
    out = shlex.quote(str(result.path))
    print(
        f"imported {result.source} ({result.architecture}: {cfg.num_hidden_layers} layers, hidden "
        f"{cfg.hidden_size}, vocabulary {cfg.vocab_size}) -> {result.path}"
    )
    print("try:")
    print(f'  bert2 inference mask "The capital of France is [MASK]." --checkpoint {out}')
    print(f"  bert2 finetune --task classify --from {out}")
    return 0


def cmd_export_hf(args: argparse.Namespace) -> int:
    from ..checkpoint.hf import export_hf  # torch + transformers: see the module docstring

    result = export_hf(args.checkpoint, args.out_dir, force=args.force, arch=args.arch)
    for message in result.warnings:
        sys.stderr.write(f"warning: {message}\n")
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"exported {result.checkpoint} ({result.task}) as transformers.{result.architecture} -> {result.path}")
    print(f"load it with: transformers.{result.architecture}.from_pretrained({str(result.path)!r})")
    if result.architecture in ("BertForPreTraining", "BertForMaskedLM"):
        print(f'  or: transformers.pipeline("fill-mask", model={str(result.path)!r})')
    return 0


def add_parsers(sub: Any) -> None:
    p = command(
        sub,
        "checkpoints",
        "list the checkpoints in the six saved_model directories",
        "Reads trainer_state.json only (never the weights): kind, stage, step, task, metrics, size.",
        ("bert2 checkpoints", "bert2 checkpoints --json"),
    )
    add_common(p, example="paths.root=other_saved_model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_checkpoints)

    p = sub.add_parser(
        "import-hf",
        formatter_class=HelpFormatter,
        epilog="examples:\n  bert2 import-hf path/to/hf-bert my-bert\n"
        "  bert2 import-hf google-bert/bert-base-uncased my-bert   # online, or in the Hugging Face cache",
        help="turn a Hugging Face BERT checkpoint (directory or hub id) into a bert2 checkpoint",
        description="Convert a transformers BERT checkpoint (config.json + model.safetensors or pytorch_model.bin, "
        "with vocab.txt or tokenizer.json) into a complete bert2 pretraining checkpoint usable with "
        "`bert2 inference --checkpoint`, `bert2 finetune --from` and the workbench. Heads the source "
        "lacks (MLM and NSP of a bare BertModel, NSP of a BertForMaskedLM) are freshly initialised, "
        "with a warning. A hub id needs the network unless the model is in the Hugging Face cache. "
        "A pytorch_model.bin is read with torch's restricted loader (weights_only) and needs "
        "torch >= 2.10.",
    )
    p.add_argument(
        "source", metavar="HF_DIR", help="model directory, or a hub id such as google-bert/bert-base-uncased"
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="bert2 checkpoint directory to create")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it holds a model already")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_import_hf)

    p = sub.add_parser(
        "export-hf",
        formatter_class=HelpFormatter,
        epilog="examples:\n  bert2 export-hf saved_model/transformer/pretrain hf-out\n"
        "  bert2 export-hf saved_model/bert/finetuning hf-classifier",
        help="write a bert2 checkpoint as a transformers model directory",
        description="Write a bert2 checkpoint so transformers loads it with no missing or unexpected keys: "
        "pretraining -> BertForPreTraining (or BertForMaskedLM with --arch masked-lm, the class the "
        "fill-mask pipeline uses), classify -> BertForSequenceClassification, qa-span -> "
        "BertForQuestionAnswering. The tokenizer is saved alongside. Generative QA (task qa) has no "
        "transformers equivalent.",
    )
    p.add_argument("checkpoint", metavar="CKPT_DIR", help="a step directory, or a stage / kind directory (its newest)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="directory to create")
    p.add_argument(
        "--arch",
        choices=["pretraining", "masked-lm"],
        default=None,
        help="pretraining checkpoints only: BertForPreTraining (default with NSP) or BertForMaskedLM",
    )
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it holds a model already")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export_hf)
