"""`bert2 quick | pretrain | finetune | full`: the training commands.

The trainer modules (torch) are imported inside the commands: `bert2 --help` and `bert2 config show` must answer
at once, and importing torch costs ~1.5 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..checkpoint import default_checkpoint
from ..config import CHOICES, Config, PretrainConfig
from ..training.reporters import REPORTERS, parse_report_to
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

# `bert2 quick`: a real pretraining run of the tiny preset on a slice of the offline corpus, sized to fill the
# three pretrain directories in a few minutes on a 2-core laptop.
QUICK_OVERRIDES = [
    "pretrain.max_steps=1200",
    "pretrain.warmup_steps=100",
    "pretrain.eval_every=300",
    "pretrain.save_every=300",
    "pretrain.log_every=10",
    "pretrain.eval_batches=0",
]


def report_overrides(args: argparse.Namespace, *sections: str) -> list[str]:
    """--report-to as `<section>.report_to` overrides: the flag is the config key for this one run."""
    if not getattr(args, "report_to", None):
        return []
    value = ",".join(parse_report_to(args.report_to)) or "none"
    return [f'{section}.report_to="{value}"' for section in sections]


# ------------------------------------------------------------------------------------------------ pretraining
def cmd_pretrain(args: argparse.Namespace, extra: list[str] | None = None) -> int:
    from ..tasks.pretraining import run_pretraining  # torch: see the module docstring

    overrides = list(extra or [])
    if args.max_steps is not None:
        overrides.append(f"pretrain.max_steps={args.max_steps}")
    if args.minutes is not None:
        overrides.append(f"pretrain.minutes={args.minutes}")
    cfg = load(args, overrides + report_overrides(args, "pretrain"))
    callbacks = [EventPrinter(quiet=args.quiet)]
    done = with_stop_signals(
        lambda stop: run_pretraining(
            cfg,
            callbacks,
            stop,
            resume=resume_arg(args),
            init_from=getattr(args, "init_from", None),
            trust_checkpoint=args.trust_checkpoint,
            overwrite=args.overwrite,
        )
    )
    if done.final_metrics and args.quiet:
        print_json({"reason": done.reason, "step": done.step, "metrics": done.final_metrics})
    elif done.reason == "stopped" and done.step:
        sys.stderr.write(f"stopped at step {done.step}; continue with: bert2 {args.command} --resume\n")
    return train_exit_code(done)


def cmd_quick(args: argparse.Namespace) -> int:
    args.preset = args.preset or "tiny"
    t0 = time.perf_counter()
    code = cmd_pretrain(args, QUICK_OVERRIDES)
    sys.stderr.write(
        f"quick run finished in {time.perf_counter() - t0:.0f} s; try:\n"
        f'  bert2 inference mask "The capital of France is [MASK]."\n'
    )
    return code


# ------------------------------------------------------------------------------------------------ fine-tuning
def finetune_overrides(args: argparse.Namespace, max_steps: int | None) -> list[str]:
    """--task/--data/--max-steps/--max-examples as config overrides (so validation and the TUI see one config)."""
    out: list[str] = []
    if getattr(args, "task", None):
        out.append(f"finetune.task={args.task}")
    if getattr(args, "data", None):
        out.append(f"finetune.data={quote(args.data)}")
    if getattr(args, "max_examples", None) is not None:
        out.append(f"finetune.max_examples={args.max_examples}")
    if max_steps is not None:
        out.append(f"finetune.max_steps={max_steps}")  # warm-up: finetune.warmup_ratio of it, unless set
    return out


def _run_finetune(
    cfg: Config,
    args: argparse.Namespace,
    printer: Any,
    from_checkpoint: Any = None,
    resume: Any = False,
    overwrite: bool = False,
) -> Any:
    from ..tasks.finetuning import run_finetuning  # torch: see the module docstring

    return with_stop_signals(
        lambda stop: run_finetuning(
            cfg,
            [printer],
            stop,
            resume=resume,
            from_checkpoint=from_checkpoint,
            trust_checkpoint=getattr(args, "trust_checkpoint", False),
            overwrite=overwrite,
        )
    )


def cmd_finetune(args: argparse.Namespace) -> int:
    cfg = load(args, finetune_overrides(args, args.max_steps) + report_overrides(args, "finetune"))
    printer = EventPrinter(quiet=args.quiet)
    done = _run_finetune(
        cfg, args, printer, from_checkpoint=args.from_dir, resume=resume_arg(args), overwrite=args.overwrite
    )
    if args.quiet:
        print_json({"reason": done.reason, "step": done.step, "metrics": done.final_metrics})
    elif done.reason == "stopped" and done.step:
        sys.stderr.write(f"stopped at step {done.step}; continue with: bert2 finetune --resume\n")
    elif done.reason in ("completed", "time_budget"):
        sys.stderr.write(next_steps(cfg.finetune.task))
    return train_exit_code(done)


def cmd_full(args: argparse.Namespace) -> int:
    """The seed's `full` mode: pretrain (on the corpus and the task's own training text), then fine-tune from the
    checkpoint that pretraining just wrote; a time estimate first."""
    from ..tasks.finetuning import task_class  # torch: see the module docstring
    from ..tasks.full import corpus_chars, estimate, task_text_corpus
    from ..tasks.pretraining import run_pretraining
    from ..tasks.recipe import choose

    extra = []
    if args.pretrain_steps is not None:
        extra.append(f"pretrain.max_steps={args.pretrain_steps}")
        if not any(s.startswith("pretrain.warmup_steps=") for s in (args.set or [])):
            extra.append(f"pretrain.warmup_steps={args.pretrain_steps // 10}")
    cfg = load(
        args, extra + finetune_overrides(args, args.finetune_steps) + report_overrides(args, "pretrain", "finetune")
    )
    t0 = time.perf_counter()
    printer = EventPrinter(quiet=args.quiet)
    task_cls = task_class(cfg.finetune.task)
    data = task_cls.data(task_cls.resolve_data_name(cfg.finetune.data), cfg.finetune.max_examples, cfg.data.seed)
    if not args.no_task_text:
        cfg.data.corpus, note = task_text_corpus(cfg, task_cls, data)
        if not args.quiet:
            sys.stderr.write(note + "\n")
    guess = choose(task_cls, cfg, data, None, cfg.model.max_position_embeddings)  # lengths guessed from characters
    eta = estimate(
        cfg,
        corpus_chars(cfg.data.corpus),
        guess.max_steps,
        cfg.finetune.batch_size,
        min(guess.length_p90, guess.max_seq_length),
    )
    if not args.quiet:
        sys.stderr.write(eta.describe() + "\n")
    done = with_stop_signals(lambda stop: run_pretraining(cfg, [printer], stop, overwrite=args.overwrite))
    if done.reason not in ("completed", "time_budget"):
        sys.stderr.write(f"pretraining ended ({done.reason}); fine-tuning skipped\n")
        return train_exit_code(done)
    source = default_checkpoint(cfg.paths.root, "pretrain")
    done = _run_finetune(cfg, args, EventPrinter(quiet=args.quiet), from_checkpoint=source, overwrite=args.overwrite)
    took = time.perf_counter() - t0
    if args.quiet:
        print_json(
            {
                "reason": done.reason,
                "step": done.step,
                "metrics": done.final_metrics,
                "wall_s": round(took, 1),
                "estimated_s": round(eta.total_s, 1),
            }
        )
    else:
        sys.stderr.write(
            f"pretraining + fine-tuning took {took / 60:.1f} min (estimated {eta.total_s / 60:.0f} min)\n"
            + next_steps(cfg.finetune.task)
        )
    return train_exit_code(done)


def next_steps(task: str) -> str:
    from ..tasks.finetuning import task_class  # loaded already: the run just used it

    return f"try:\n  {task_class(task).inference_example}\n"


# ------------------------------------------------------------------------------------------------ parsers
REPORT_HELP = (
    f"also write the run's numbers to {' and/or '.join(REPORTERS)} (comma-separated; none): "
    "metrics.csv beside metrics.jsonl, TensorBoard files in runs/<start time>/ "
    "(default: the report_to config key)"
)
TRUST_HELP = (
    "resume from a checkpoint of an older bert2 whose resume state is pickled (.pt files); only for "
    "checkpoints you made yourself: unpickling can run code"
)
OVERWRITE_HELP = (
    "delete every checkpoint of earlier runs in this kind's directories before starting (by default a new run "
    "goes beside them and deletes nothing of theirs)"
)


def add_parsers(sub: Any) -> None:
    def pretrain_args(p: argparse.ArgumentParser) -> None:
        add_common(p, preset_choice=True)
        p.add_argument(
            "--resume",
            nargs="?",
            const="latest",
            default=None,
            metavar="DIR",
            help="continue from the latest checkpoint (or DIR)",
        )
        p.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
        p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
        p.add_argument(
            "--init-from",
            metavar="DIR",
            help="start a new run from a checkpoint's weights and tokenizer (e.g. from import-hf)",
        )
        p.add_argument(
            "--max-steps",
            type=int,
            help=f"optimizer steps (default: pretrain.max_steps, {PretrainConfig().max_steps}; quick: 1200)",
        )
        p.add_argument(
            "--minutes",
            type=float,
            help="wall-clock budget; the LR schedule spans it (default: pretrain.minutes, 0 = off)",
        )
        p.add_argument("--quiet", action="store_true", help="no progress bar; print final metrics as JSON")
        p.add_argument("--report-to", action="append", metavar="NAMES", help=REPORT_HELP)

    p = command(
        sub,
        "quick",
        "tiny pretraining run on the offline corpus (a few minutes)",
        "BERT-Tiny (2 layers x 128) on the 10,033 offline Wikipedia summaries for 1,200 steps: fills\n"
        "saved_model/transformer/pretrain/{checkpoint,best,final}. Ctrl-C saves a resumable checkpoint.",
        ("bert2 quick", "bert2 quick --report-to csv", "bert2 quick --resume"),
    )
    pretrain_args(p)
    p.set_defaults(func=cmd_quick)

    p = command(
        sub,
        "pretrain",
        "pretrain with MLM + NSP into saved_model/transformer/pretrain",
        "Masked-language-model + next-sentence-prediction pretraining with the [pretrain] settings.\n"
        "Ctrl-C (or SIGTERM) saves a checkpoint and exits 130 (143); --resume continues it exactly.",
        (
            "bert2 pretrain --minutes 10",
            "bert2 pretrain --preset mini --set pretrain.batch_size=64",
            "bert2 pretrain --resume",
            "bert2 pretrain --init-from my-imported-bert",
            "torchrun --standalone --nproc_per_node=2 -m bert2 pretrain",
        ),
    )
    pretrain_args(p)
    p.set_defaults(func=cmd_pretrain)

    def task_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--task",
            choices=CHOICES["finetune.task"],
            help=f"{', '.join(CHOICES['finetune.task'])} (classify: one label per text; ner: named "
            "entities; qa: generative; qa-span: extractive); default: finetune.task",
        )
        p.add_argument(
            "--data",
            metavar="NAME_OR_PATH",
            help="imdb-offline, wiki-topic (classify), wnut16-offline (ner), wiki-qa (qa), wiki-span "
            "(qa-span), a hub name (imdb, conll2003, ms_marco, squad) or a local file (a CoNLL file "
            "for ner); default: finetune.data, or the task's built-in",
        )
        p.add_argument("--max-examples", type=int, metavar="N", help="use at most N training examples")
        p.add_argument("--quiet", action="store_true", help="no progress bar; print final metrics as JSON")
        p.add_argument("--report-to", action="append", metavar="NAMES", help=REPORT_HELP)

    p = command(
        sub,
        "finetune",
        "fine-tune a pretraining checkpoint into saved_model/bert/finetuning",
        "Fine-tune with the [finetune] settings, from pretrain best (else final) unless --from says\n"
        "otherwise. Built-in offline data: imdb-offline and wiki-topic (classify), wnut16-offline\n"
        "(ner), wiki-qa (qa), wiki-span (qa-span).",
        (
            "bert2 finetune",
            "bert2 finetune --task qa-span",
            "bert2 finetune --task ner",
            "bert2 finetune --from scratch",
            "bert2 finetune --task classify --data reviews.csv --set finetune.max_steps=300",
            "bert2 finetune --resume",
        ),
    )
    add_common(p, example="finetune.learning_rate=1e-3")
    task_args(p)
    p.add_argument(
        "--from",
        dest="from_dir",
        metavar="DIR",
        help="checkpoint to start from (default: pretrain best, else final); 'scratch': the same "
        "architecture with random weights, to see what pretraining buys",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        help="optimizer steps (default: finetune.max_steps; 0 there: chosen from the data's size)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="DIR",
        help="continue the latest fine-tuning checkpoint (or DIR)",
    )
    p.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_finetune)

    p = command(
        sub,
        "full",
        "pretrain, then fine-tune from the new pretraining checkpoint",
        "The seed's `main.py full`: pretraining, then fine-tuning from the checkpoint it wrote. The task's\n"
        "training text (never its held-out examples) joins the pretraining corpus, whatever --data names\n"
        "(--no-task-text: not); a time estimate is printed first.",
        ("bert2 full", "bert2 full --task qa --pretrain-steps 3000"),
    )
    add_common(p, preset_choice=True, example="finetune.max_steps=300")
    task_args(p)
    p.add_argument("--pretrain-steps", type=int, help="pretraining steps (pretrain.max_steps)")
    p.add_argument(
        "--finetune-steps",
        type=int,
        help="fine-tuning steps (default: finetune.max_steps; 0 there: chosen from the data's size)",
    )
    p.add_argument(
        "--no-task-text",
        action="store_true",
        help="pretrain on data.corpus alone (by default the task's training text joins it: task-adaptive pretraining)",
    )
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_full)
