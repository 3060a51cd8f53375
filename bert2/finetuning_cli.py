"""`bert2 finetune`, `bert2 full` and the fine-tuned inference modes (`bert2 inference classify|qa|similarity`).

Kept apart from cli.py so the fine-tuning surface can grow without touching the core parser; cli.build_parser
calls `add_parsers` and `add_inference_parsers`, and cli.cmd_inference hands every mode but `mask` to
`inference`. Importing this module is cheap (no torch): the heavy imports happen inside the commands.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .config import CHOICES, Config
from .errors import InputError

TASK_CHOICES = CHOICES["finetune.task"]


# ------------------------------------------------------------------------------------------------ commands
def _finetune_overrides(args: argparse.Namespace, max_steps: int | None) -> list[str]:
    """--task/--data/--max-steps/--max-examples as config overrides (so validation and the TUI see one config)."""
    out: list[str] = []
    if getattr(args, "task", None):
        out.append(f"finetune.task={args.task}")
    if getattr(args, "data", None):
        out.append(f"finetune.data={_quote(args.data)}")
    if getattr(args, "max_examples", None) is not None:
        out.append(f"finetune.max_examples={args.max_examples}")
    if max_steps is not None:
        out.append(f"finetune.max_steps={max_steps}")
        # A short run with the default 50 warm-up steps would be rejected by validation; unless the user set the
        # warm-up, scale it to a tenth of the run.
        if not any(s.startswith("finetune.warmup_steps=") for s in (args.set or [])):
            out.append(f"finetune.warmup_steps={max_steps // 10}")
    return out


def _quote(value: str) -> str:
    """A string override value that survives parse_value's literal parsing (paths with dots, digits...)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run_finetune(cfg: Config, args: argparse.Namespace, printer: Any, from_checkpoint: Any = None) -> Any:
    from .cli import _with_stop_signals
    from .finetuning import run_finetuning

    resume: Any = False
    if getattr(args, "resume", None) is not None:
        resume = True if args.resume == "latest" else args.resume
    return _with_stop_signals(lambda stop: run_finetuning(cfg, [printer], stop, resume=resume,
                                                          from_checkpoint=from_checkpoint))


def cmd_finetune(args: argparse.Namespace) -> int:
    from .cli import EventPrinter, _config, _print_json, _train_exit_code

    cfg = _config(args, _finetune_overrides(args, args.max_steps))
    printer = EventPrinter(quiet=args.quiet)
    done = _run_finetune(cfg, args, printer, from_checkpoint=getattr(args, "from_dir", None))
    if args.quiet:
        _print_json({"reason": done.reason, "step": done.step, "metrics": done.final_metrics})
    elif done.reason in ("completed", "stopped", "time_budget"):
        sys.stderr.write(_next_steps(cfg.finetune.task, cfg.finetune.data))
    return _train_exit_code(done)


def cmd_full(args: argparse.Namespace) -> int:
    """The seed's `full` mode: pretrain, then fine-tune from the checkpoint that pretraining just wrote."""
    from .cli import EventPrinter, _config, _print_json, _train_exit_code, _with_stop_signals
    from .pretraining import run_pretraining
    from .training.checkpoints import default_checkpoint

    extra = []
    if args.pretrain_steps is not None:
        extra.append(f"pretrain.max_steps={args.pretrain_steps}")
        if not any(s.startswith("pretrain.warmup_steps=") for s in (args.set or [])):
            extra.append(f"pretrain.warmup_steps={args.pretrain_steps // 10}")
    cfg = _config(args, extra + _finetune_overrides(args, args.finetune_steps))
    t0 = time.perf_counter()
    printer = EventPrinter(quiet=args.quiet)
    if not args.no_task_text:
        corpus = task_adaptive_corpus(cfg)
        if corpus != cfg.data.corpus:
            if not args.quiet:
                sys.stderr.write(f"pretraining corpus: {corpus} (the task's unlabelled training text joins the "
                                 f"corpus; --no-task-text to leave it out)\n")
            cfg.data.corpus = corpus
    done = _with_stop_signals(lambda stop: run_pretraining(cfg, [printer], stop))
    if done.reason not in ("completed", "time_budget"):
        sys.stderr.write(f"pretraining ended ({done.reason}); fine-tuning skipped\n")
        return _train_exit_code(done)
    source = default_checkpoint(cfg.paths.root, "pretrain")
    args.resume = None
    done = _run_finetune(cfg, args, EventPrinter(quiet=args.quiet), from_checkpoint=source)
    if args.quiet:
        _print_json({"reason": done.reason, "step": done.step, "metrics": done.final_metrics})
    else:
        sys.stderr.write(f"pretraining + fine-tuning took {time.perf_counter() - t0:.0f} s\n"
                         + _next_steps(cfg.finetune.task, cfg.finetune.data))
    return _train_exit_code(done)


def task_adaptive_corpus(cfg: Config) -> str:
    """The pretraining corpus for `bert2 full`: the configured one plus the fine-tuning task's own text, when that
    text is a built-in pretraining source the corpus lacks (today: the IMDB reviews, without the held-out ones).

    Why: Gururangan et al. (2020) found that continuing to pretrain on the task's unlabelled text helps most when
    the task's domain differs from the corpus; movie reviews are far from Wikipedia summaries. Measured here (IMDB,
    held-out accuracy, same fine-tuning): see the README's trial table.
    """
    from .data.corpus import IMDB_OFFLINE, corpus_parts
    from .data.finetune import resolve_data_name

    f = cfg.finetune
    if f.task != "classify" or resolve_data_name(f.task, f.data) != IMDB_OFFLINE:
        return cfg.data.corpus
    if IMDB_OFFLINE in corpus_parts(cfg.data.corpus):
        return cfg.data.corpus
    return f"{cfg.data.corpus}+{IMDB_OFFLINE}"


def _next_steps(task: str, data: str = "") -> str:
    film = data.startswith("imdb")
    example = {"classify": 'bert2 inference classify ' + ('"A wonderful, moving film."' if film else
                                                          '"The Nile is a major river in northeastern Africa."'),
               "qa": 'bert2 inference qa --question "What is Paris?" --context "Paris is the capital of France."',
               "qa-span": 'bert2 inference qa --question "What is the capital of France?" '
                          '--context "Paris is the capital of France."'}[task]
    return f"try:\n  {example}\n"


def inference(args: argparse.Namespace, cfg: Config) -> int:
    """`bert2 inference classify|qa|similarity` (cli.cmd_inference handles `mask` and delegates the rest)."""
    from .cli import _print_json
    from .inference import Predictor, check_text, default_checkpoint_for

    mode = args.mode
    if mode not in ("classify", "qa", "similarity"):
        raise InputError(f"unknown inference mode {mode!r}; choose mask, classify, qa or similarity")
    # Check the input before loading anything: a typo should cost nothing.
    if mode == "qa":
        check_text(args.question, "question")
        check_text(args.context, "context")
    elif mode == "classify":
        check_text(args.text, "text")
    else:
        check_text(args.text_a, "first text")
        check_text(args.text_b, "second text")
    path = args.checkpoint or default_checkpoint_for(cfg.paths.root, mode)
    predictor = Predictor.load(path)
    if mode == "classify":
        result = predictor.classify(args.text)
        if args.json:
            _print_json(result)
        else:
            print(f"checkpoint: {predictor.path}")
            print(f"label: {result['label']} ({result['score']:.3f})")
            for name, p in sorted(result["scores"].items(), key=lambda kv: -kv[1]):
                print(f"  {name:<28} {p:.3f} {'#' * max(1, round(p * 30))}")
        return 0
    if mode == "qa":
        result = predictor.answer(args.question, args.context, num_beams=args.num_beams, max_length=args.max_length)
        if args.json:
            _print_json(result)
        else:
            print(f"checkpoint: {predictor.path} ({predictor.task})")
            print(f"answer: {result['answer'] or '(no answer found)'}  (score {result['score']:.3f})")
            if "start" in result and result["start"] >= 0:
                print(f"span: characters {result['start']}-{result['end']} of the context")
        return 0
    score = predictor.similarity(args.text_a, args.text_b)
    if args.json:
        _print_json({"similarity": score})
    else:
        print(f"checkpoint: {predictor.path}")
        print(f"cosine similarity: {score:.4f}")
    return 0


# ------------------------------------------------------------------------------------------------ parsers
def _common(p: argparse.ArgumentParser) -> None:
    from .cli import _common as cli_common

    cli_common(p)


def add_parsers(sub: Any) -> None:
    """Add `finetune` and `full` to the top-level subparsers."""
    from .config import PRESETS

    def task_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--task", choices=TASK_CHOICES, help="classify, qa (generative) or qa-span (extractive); "
                                                            "default: finetune.task")
        p.add_argument("--data", metavar="NAME_OR_PATH",
                       help="imdb-offline, wiki-topic (classify), wiki-qa (qa), a hub name (imdb, ms_marco, squad) "
                            "or a local file; default: finetune.data, or the task's built-in")
        p.add_argument("--max-examples", type=int, metavar="N", help="use at most N training examples")
        p.add_argument("--quiet", action="store_true", help="no progress bar; print final metrics as JSON")

    p = sub.add_parser("finetune", help="fine-tune a pretraining checkpoint into saved_model/bert/finetuning")
    _common(p)
    task_args(p)
    p.add_argument("--from", dest="from_dir", metavar="DIR",
                   help="checkpoint to start from (default: pretrain best, else final); 'scratch': the same "
                        "architecture with random weights, to see what pretraining buys")
    p.add_argument("--max-steps", type=int, help="optimizer steps (finetune.max_steps)")
    p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="DIR",
                   help="continue the latest fine-tuning checkpoint (or DIR)")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("full", help="pretrain, then fine-tune from the new pretraining checkpoint")
    _common(p)
    task_args(p)
    p.add_argument("--preset", choices=list(PRESETS), help="model size preset applied before --set")
    p.add_argument("--pretrain-steps", type=int, help="pretraining steps (pretrain.max_steps)")
    p.add_argument("--finetune-steps", type=int, help="fine-tuning steps (finetune.max_steps)")
    p.add_argument("--no-task-text", action="store_true",
                   help="pretrain on data.corpus alone (by default the IMDB task adds its training reviews' text)")
    p.set_defaults(func=cmd_full)


def add_inference_parsers(isub: Any) -> None:
    """Add classify, qa and similarity to the subparsers of `bert2 inference`."""
    c = isub.add_parser("classify", help="label a text with a classify checkpoint")
    c.add_argument("text")
    q = isub.add_parser("qa", help="answer a question from a context with a qa or qa-span checkpoint")
    q.add_argument("--question", required=True)
    q.add_argument("--context", required=True)
    q.add_argument("--num-beams", type=int, help="beam width for generative QA (default: the checkpoint's)")
    q.add_argument("--max-length", type=int, help="longest answer in tokens (default: the checkpoint's)")
    s = isub.add_parser("similarity", help="cosine similarity of two texts (any checkpoint)")
    s.add_argument("text_a")
    s.add_argument("text_b")
    defaults = {"classify": "finetune best, else final, of a classify run",
                "qa": "finetune best, else final, of a qa or qa-span run",
                "similarity": "pretrain best, else final"}
    for name, p in (("classify", c), ("qa", q), ("similarity", s)):
        _common(p)
        p.add_argument("--checkpoint", metavar="DIR", help=f"checkpoint directory (default: {defaults[name]})")
        p.add_argument("--json", action="store_true", help="print JSON")
