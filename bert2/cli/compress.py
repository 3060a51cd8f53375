"""`bert2 prune`: remove the attention heads a trained model needs least (bert2/compress/prune.py).
`bert2 distill`: train a smaller student from a teacher checkpoint (bert2/compress/distill.py).

The pruning code (torch) is imported inside the command, like every command that loads a model. Progress goes to
stderr as it happens; the tables (importance, curve, size, speed) go to stdout at the end, or one JSON object
with --json.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import (
    EventPrinter,
    add_common,
    command,
    load,
    print_json,
    quote,
    resume_arg,
    train_exit_code,
    with_stop_signals,
)
from .train import REPORT_HELP, report_overrides


def _progress(event: Any) -> None:
    """Trainer-style events as one stderr line each: stages, and each curve point as it is measured."""
    kind = type(event).__name__
    if kind == "LogEvent":
        sys.stderr.write(f"{'warning: ' if event.level == 'warning' else ''}{event.message}\n")
    elif kind == "EvalEvent":
        shown = " ".join(f"{k} {v:.4g}" for k, v in event.metrics.items() if "/" not in k and k != "heads_removed")
        sys.stderr.write(f"  {event.step:>3} heads masked: {shown}\n")


def _cell(value: float | None, mark: str) -> str:
    return f"{'-':>6} " if value is None else f"{value:6.3f}{mark}"


def print_report(result: Any) -> None:
    """The importance grid, the curve, sizes and timings, as plain aligned text (readable in a log too)."""
    removed = {(layer, h) for layer, heads in result.removed.items() for h in heads}
    nh = len(result.importance[0]) if result.importance else 0
    print(
        "head importance (|dL/d head mask| on held-out data, L2-normalised per layer; * removed now, - pruned before)"
    )
    print("layer " + "".join(f"{'h' + str(h):>7} " for h in range(nh)))
    for layer, row in enumerate(result.importance):
        print(
            f"{layer:>5} " + "".join(_cell(v, "*" if (layer, h) in removed else " ") + " " for h, v in enumerate(row))
        )
    print()
    base = result.curve[0].value if result.curve else float("nan")
    print(
        f"curve: {result.metric} on {result.eval_examples} held-out examples ({result.data}), heads masked in "
        "importance order"
    )
    print(f"{'removed':>8} {result.metric:>14} {'change':>9}")
    chosen = sum(len(v) for v in result.removed.values())
    for point in result.curve:
        mark = "  <- pruned" if point.removed == chosen else ""
        print(f"{point.removed:>8} {point.value:>14.4f} {point.value - base:>+9.4f}{mark}")
    print()
    after = result.after.get(result.metric, float("nan"))
    print(f"pruned model (real, smaller matrices): {result.metric} {after:.4f}")
    print(
        f"parameters: {result.params_before:,} -> {result.params_after:,} "
        f"(attention {result.attention_params_before:,} -> {result.attention_params_after:,})"
    )
    first = next(iter(result.speed.values()), {})
    print(
        f"inference time, ms per batch (median of {first.get('repeats', 0)} passes over {first.get('batches', 0)} "
        "batches after a warm-up; on a shared machine wall time is noisy: --set runtime.num_threads=1 and "
        "CPU time are steadier):"
    )
    cpu = "cpu_speedup" in first
    print(
        f"{'':>12} {'full':>9} {'pruned':>9} {'speed-up':>9}"
        + (f" {'CPU: full':>10} {'pruned':>9} {'speed-up':>9}" if cpu else "")
    )
    for part, s in result.speed.items():
        label = "encoder" if part == "encoder" else "whole model"
        print(
            f"{label:>12} {s['full_ms']:>9.2f} {s['pruned_ms']:>9.2f} {s['speedup']:>8.2f}x"
            + (f" {s['full_cpu_ms']:>10.2f} {s['pruned_cpu_ms']:>9.2f} {s['cpu_speedup']:>8.2f}x" if cpu else "")
        )
    print()
    if result.path is not None:
        print(f"saved -> {result.path}")
        print(f"  bert2 finetune --from {result.path}   # or inference --checkpoint, export-hf")
    else:
        print("dry run: nothing saved")


def cmd_prune(args: argparse.Namespace) -> int:
    from ..compress.prune import run_pruning  # torch: see the module docstring

    cfg = load(args)
    result = run_pruning(
        cfg,
        args.checkpoint,
        heads=args.heads,
        fraction=args.fraction,
        batches=args.batches,
        eval_batches=args.eval_batches,
        batch_size=args.batch_size or 0,
        curve=not args.no_curve,
        curve_step=args.curve_step,
        metric=args.metric,
        data=args.data,
        repeats=args.repeats,
        time_batches=args.time_batches,
        out=args.out,
        force=args.force,
        dry_run=args.dry_run,
        callbacks=[_progress],
    )
    if args.json:
        print_json(result.to_dict())
    else:
        print_report(result)
    return 0


def add_parsers(sub: Any) -> None:
    p = command(
        sub,
        "prune",
        "remove the attention heads a checkpoint needs least (smaller, faster model)",
        "Scores every attention head by the gradient of the held-out loss with respect to a head mask\n"
        "(Michel et al. 2019), evaluates the held-out metric as heads are masked in that order (the\n"
        "curve), removes the N least important for real (smaller projections; one head per layer always\n"
        "stays), times full vs pruned, and saves the pruned model as a new checkpoint of the same kind:\n"
        "the kind's final/ (replacing the previous final, never the source unless --force) or --out DIR.\n"
        "Pretraining (MLM accuracy), classify (accuracy), ner and qa-span (F1) checkpoints; not generative\n"
        "qa. The pruned checkpoint loads, fine-tunes (--from) and exports (export-hf: full size, removed\n"
        "heads zeroed).",
        (
            "bert2 prune saved_model/bert/finetuning --heads 4",
            "bert2 prune saved_model/transformer/pretrain --fraction 0.25 --out pruned-bert",
            "bert2 prune saved_model/bert/finetuning --heads 6 --dry-run --json",
        ),
    )
    add_common(p, example="runtime.num_threads=2")
    p.add_argument("checkpoint", metavar="CKPT_DIR", help="a step directory, or a stage / kind directory (its newest)")
    p.add_argument("--heads", type=int, metavar="N", help="remove N heads (one of --heads / --fraction)")
    p.add_argument("--fraction", type=float, metavar="F", help="remove this share of the heads, e.g. 0.25")
    p.add_argument(
        "--batches",
        type=int,
        default=8,
        help="held-out batches for the importance gradient (a seeded random sample of the split)",
    )
    p.add_argument(
        "--eval-batches",
        type=int,
        default=0,
        help="held-out batches each curve point evaluates, from the examples the importance did not use "
        "(0: all of them)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="B",
        help="examples per batch (default: pretrain.batch_size or finetune.batch_size)",
    )
    p.add_argument(
        "--curve-step",
        type=int,
        default=0,
        metavar="K",
        help="evaluate the curve every K heads (default: about 16 points)",
    )
    p.add_argument("--no-curve", action="store_true", help="evaluate only 0 and N heads removed")
    p.add_argument("--metric", help="the metric the curve follows (default: mlm_accuracy, accuracy or f1)")
    p.add_argument(
        "--data",
        metavar="NAME_OR_PATH",
        help="fine-tuned checkpoints: held-out data other than the one the checkpoint names",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed passes per model (the median is reported)")
    p.add_argument(
        "--time-batches",
        type=int,
        default=2,
        metavar="K",
        help="held-out batches in each timed pass (the importance batches, real lengths and padding)",
    )
    p.add_argument("--out", metavar="DIR", help="write the pruned checkpoint to DIR instead of the kind's final/")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a non-empty --out DIR, or the source itself when it is the kind's final",
    )
    p.add_argument("--dry-run", action="store_true", help="measure everything, save nothing")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_prune)
    add_distill_parser(sub)


# ------------------------------------------------------------------------------------------------ distillation
def distill_overrides(args: argparse.Namespace) -> list[str]:
    """The flags as [distill] overrides, so validation, the run record and the TUI see one config."""
    out = []
    if args.teacher:
        out.append(f"distill.teacher={quote(args.teacher)}")
    for flag, key in (("student_layers", "student_layers"), ("max_steps", "max_steps"), ("minutes", "minutes")):
        if getattr(args, flag) is not None:
            out.append(f"distill.{key}={getattr(args, flag)}")
    if args.max_steps is not None and not any(s.startswith("distill.warmup_steps=") for s in (args.set or [])):
        out.append(f"distill.warmup_steps={min(10, args.max_steps // 10)}")  # a short run still reaches its peak
    if args.no_teacher:  # the baseline: the same student, data and budget, learning from the labels alone
        out += ["distill.alpha=0", "distill.hidden_weight=0", "distill.attention_weight=0"]
    return out + report_overrides(args, "distill")


def print_distill_table(rows: list[dict[str, Any]]) -> None:
    """Teacher, this student and (when recorded) the other mode's student: held-out quality, speed, budget."""
    if not rows:
        return
    metrics = [k for k in ("mlm_accuracy", "mlm_loss", "accuracy", "loss") if k in rows[0]]
    head = (
        f"{'model':<34} {'shape':>9} {'params':>7} "
        + "".join(f"{k:>13} " for k in metrics)
        + f"{'examples/s':>11} {'speed':>6} {'steps':>6} {'wall':>7}"
    )
    print(head)
    for r in rows:
        shape = f"{int(r['layers'])}x{int(r['hidden_size'])}"
        cells = "".join(f"{r[k]:>13.4f} " if k in r else f"{'-':>13} " for k in metrics)
        wall = f"{r['wall_s']:.0f} s" if r.get("wall_s") is not None else "-"
        steps = str(r["steps"]) if r.get("steps") is not None else "-"
        print(
            f"{r['model']:<34} {shape:>9} {r['parameters'] / 1e6:>6.2f}M {cells}{r['examples_per_s']:>11.1f} "
            f"{r['speedup']:>5.2f}x {steps:>6} {wall:>7}"
        )
    print(
        "held-out numbers on the teacher's validation split; examples/s: inference forward, median of 9 passes "
        "after 2 warm-ups, teacher and student taking turns (still noisy on a shared CPU); speed: against the "
        "teacher timed in the same run"
    )


def cmd_distill(args: argparse.Namespace) -> int:
    from ..compress.distill import comparison_rows, run_distillation  # torch: see the module docstring

    cfg = load(args, distill_overrides(args))
    printer = EventPrinter(quiet=args.quiet or args.json)
    done = with_stop_signals(lambda stop: run_distillation(cfg, [printer], stop, resume=resume_arg(args)))
    rows = comparison_rows(cfg.paths.root) if done.reason in ("completed", "time_budget") else []
    if args.json:
        print_json({"reason": done.reason, "step": done.step, "metrics": done.final_metrics, "table": rows})
    elif rows:
        print_distill_table(rows)
    elif done.reason == "stopped" and done.step:
        sys.stderr.write(f"stopped at step {done.step}; continue with: bert2 distill --resume\n")
    return train_exit_code(done)


def add_distill_parser(sub: Any) -> None:
    p = command(
        sub,
        "distill",
        "train a smaller student from a teacher checkpoint (knowledge distillation)",
        "The student (default: the teacher's shape with half its layers, started from the teacher's\n"
        "embeddings, heads and every other layer) learns from the teacher's temperature-softened outputs\n"
        "(KL x T^2) mixed with the hard labels, and for pretraining teachers also from its hidden states\n"
        "(MSE, through a learned projection when widths differ) and optionally its attention maps.\n"
        "Pretraining teacher -> saved_model/transformer/pretrain/...; classify teacher ->\n"
        "saved_model/bert/finetuning/... ([distill] settings; the data is the teacher's own). At the end\n"
        "teacher and student are measured on the same held-out data (quality, inference examples/s).\n"
        "--no-teacher trains the same student from the labels alone: run both with the same --minutes and\n"
        "the second table shows both students.",
        (
            "bert2 distill --teacher saved_model/transformer/pretrain --set paths.root=distilled --minutes 3",
            "bert2 distill --teacher saved_model/transformer/pretrain --set paths.root=distilled --minutes 3 "
            "--no-teacher",
            "bert2 distill --teacher saved_model/bert/finetuning --set paths.root=distilled --max-steps 300",
            "bert2 distill --teacher T --student-layers 1 --set distill.student_hidden_size=64",
            "bert2 distill --resume",
        ),
    )
    add_common(p, example="distill.temperature=4")
    p.add_argument(
        "--teacher",
        metavar="DIR",
        help="pretraining or classify checkpoint to learn from (a step, stage or kind directory; "
        "default: distill.teacher)",
    )
    p.add_argument(
        "--student-layers", type=int, metavar="N", help="student encoder layers (default: half the teacher's)"
    )
    p.add_argument("--max-steps", type=int, metavar="N", help="optimizer steps (default: distill.max_steps)")
    p.add_argument("--minutes", type=float, metavar="M", help="wall-clock budget; the LR schedule spans it")
    p.add_argument(
        "--no-teacher",
        action="store_true",
        help="baseline: same student and budget, hard labels only (alpha, hidden and attention weights 0)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="DIR",
        help="continue the latest distillation checkpoint (or DIR); its teacher is the one it names",
    )
    p.add_argument("--json", action="store_true", help="print the final metrics and the comparison table as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--report-to", action="append", metavar="NAMES", help=REPORT_HELP)
    p.set_defaults(func=cmd_distill)
