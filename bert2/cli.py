"""`bert2 ...`: the headless command line. Mirrors the seed's main.py modes (quick, pretrain, finetune, full,
inference) and adds checkpoints, config, import/export and bench.

Errors a user can cause print one line and exit with code 2; nothing prints a traceback unless BERT2_DEBUG=1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from .config import DEFAULT_CONFIG_FILE, PRESETS, Config, ConfigError, field_docs, load_config, preset, SECTIONS
from .errors import Bert2Error

EXIT_USAGE = 2
# Names of bert2.bench.BENCHMARKS, listed here so that `bert2 --help` does not import torch.
BENCH_NAMES = ("train_throughput", "time_to_quality", "inference_latency", "tui", "quick_rss", "finetune_quality")

# `bert2 quick`: a real pretraining run of the tiny preset on a slice of the offline corpus, sized to fill the
# three pretrain directories in a few minutes on a 2-core laptop.
QUICK_OVERRIDES = ["pretrain.max_steps=1200", "pretrain.warmup_steps=100", "pretrain.eval_every=300",
                   "pretrain.save_every=300", "pretrain.log_every=10", "pretrain.eval_batches=0"]


# ------------------------------------------------------------------------------------------------ helpers
def _config(args: argparse.Namespace, extra: list[str] | None = None) -> Config:
    base = load_config(getattr(args, "config", None))
    if getattr(args, "preset", None):
        base = preset(args.preset, base)
    return base.with_overrides((extra or []) + list(getattr(args, "set", None) or []))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


class EventPrinter:
    """Renders trainer events: a rich progress bar with loss, tokens/s and ETA, plus eval and checkpoint lines."""

    def __init__(self, quiet: bool = False):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.quiet = quiet
        self.progress = None
        self.task_id = None
        self.last: dict[str, Any] = {}

    def __call__(self, event: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        kind = type(event).__name__
        if kind == "StartEvent":
            self.console.print(f"[bold]{event.kind}[/] {event.task} on {event.device}: "
                               f"{event.num_parameters / 1e6:.2f}M parameters, "
                               f"{'resuming at step ' + str(event.start_step) if event.start_step else 'starting at step 0'}"
                               f" -> {event.run_dir}")
            total = event.total_steps or None
            self.progress = Progress(TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                                     TextColumn("ETA {task.fields[eta]}"), console=self.console,
                                     disable=self.quiet, transient=False)
            self.progress.start()
            self.task_id = self.progress.add_task("train", total=total, completed=event.start_step, stats="", eta="?")
        elif kind == "StepEvent" and self.progress is not None:
            parts = " ".join(f"{k} {v:.3f}" for k, v in event.parts.items())
            stats = f"loss {event.loss:.3f} ({parts}) lr {event.lr:.2e} {event.tokens_per_s:,.0f} tok/s"
            self.progress.update(self.task_id, completed=event.step, stats=stats, eta=_fmt_s(event.eta_s))
        elif kind == "EvalEvent":
            # Per-class keys ("precision/People") stay in metrics.jsonl and metrics.json, off the one-line summary.
            m = " ".join(f"{k} {v:.4g}" for k, v in event.metrics.items() if "/" not in k)
            self._line(f"[green]eval[/] step {event.step}: {m}{'  [bold](best)[/]' if event.is_best else ''}")
            for probe in event.probes:
                self._line(f"      probe {_probe_line(probe)}")
        elif kind == "CheckpointEvent":
            self._line(f"[cyan]saved[/] {event.stage} -> {event.path}")
        elif kind == "LogEvent":
            style = {"error": "red", "warning": "yellow"}.get(event.level, "dim")
            self._line(f"[{style}]{event.message}[/]")
        elif kind == "DoneEvent":
            if self.progress is not None:
                self.progress.stop()
            self.console.print(f"[bold]done[/]: {event.message or event.reason}")
        self.last[kind] = event

    def _line(self, text: str) -> None:
        (self.progress.console if self.progress is not None else self.console).print(text)


def _probe_line(probe: dict[str, Any]) -> str:
    """One line for a live probe: fill-mask guesses, a classification, or a generated answer."""
    text = str(probe.get("text", ""))[:60]
    if "error" in probe:
        return f"{text!r}: {probe['error']}"
    if "predictions" in probe:
        guesses = " | ".join(", ".join(f"{p['token']} {p['score']:.3f}" for p in per_mask[:5])
                             for per_mask in probe["predictions"])
        return f"{text!r}: {guesses}"
    if "label" in probe:
        gold = f" (gold {probe['gold']})" if probe.get("gold") is not None else ""
        return f"{text!r} -> {probe['label']} {float(probe.get('score', 0)):.2f}{gold}"
    if "answer" in probe:
        ref = f" (reference {probe['reference']!r})" if probe.get("reference") else ""
        return f"{text!r} -> {probe['answer']!r}{ref}"
    return json.dumps(probe)[:120]


def _fmt_s(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _with_stop_signals(run: Callable[[threading.Event], Any]) -> Any:
    """Run with SIGINT/SIGTERM turned into a stop request: the trainer saves a checkpoint and returns."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return run(stop)
    previous = {}

    def handler(signum, frame):
        if stop.is_set():  # second Ctrl-C: the user insists
            raise KeyboardInterrupt
        stop.set()
        sys.stderr.write("\nstopping after the current step and saving a checkpoint (Ctrl-C again to abort)\n")

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        return run(stop)
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def _train_exit_code(done: Any) -> int:
    return 0 if done.reason in ("completed", "stopped", "time_budget") else 1


# ------------------------------------------------------------------------------------------------ commands
def cmd_pretrain(args: argparse.Namespace, extra: list[str] | None = None) -> int:
    from .pretraining import run_pretraining

    overrides = list(extra or [])
    if args.max_steps is not None:
        overrides.append(f"pretrain.max_steps={args.max_steps}")
    if args.minutes is not None:
        overrides.append(f"pretrain.minutes={args.minutes}")
    cfg = _config(args, overrides)
    printer = EventPrinter(quiet=args.quiet)
    resume: Any = args.resume if args.resume not in (None, "latest") else (args.resume == "latest")
    init_from = getattr(args, "init_from", None)
    done = _with_stop_signals(lambda stop: run_pretraining(cfg, [printer], stop, resume=resume, init_from=init_from))
    if done.final_metrics and args.quiet:
        _print_json({"reason": done.reason, "step": done.step, "metrics": done.final_metrics})
    return _train_exit_code(done)


def cmd_quick(args: argparse.Namespace) -> int:
    args.preset = args.preset or "tiny"
    t0 = time.perf_counter()
    code = cmd_pretrain(args, QUICK_OVERRIDES)
    sys.stderr.write(f"quick run finished in {time.perf_counter() - t0:.0f} s; try:\n"
                     f"  bert2 inference mask \"The capital of France is [MASK].\"\n")
    return code


def cmd_inference(args: argparse.Namespace) -> int:
    from .inference import Predictor
    from .training.checkpoints import default_checkpoint

    cfg = _config(args)
    if args.mode == "mask":
        path = args.checkpoint or default_checkpoint(cfg.paths.root, "pretrain")
        predictor = Predictor.load(path)
        preds = predictor.fill_mask(args.text, top_k=args.top_k)
        if args.json:
            _print_json({"predictions": preds})
        else:
            print(f"checkpoint: {predictor.path}")
            for i, options in enumerate(preds, 1):
                print(f"[MASK] #{i}:")
                for p in options:
                    bar = "#" * max(1, round(p["score"] * 30))
                    print(f"  {p['token']:<15} {p['score']:.3f} {bar}")
        return 0
    from . import finetuning_cli  # fine-tuned tasks (classify, qa, similarity)

    return finetuning_cli.inference(args, cfg)


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from .training.checkpoints import list_checkpoints

    cfg = _config(args)
    infos = list_checkpoints(cfg.paths.root)
    if args.json:
        _print_json([i.to_dict() for i in infos])
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"checkpoints under {cfg.paths.root}")
    for col in ("kind", "stage", "step", "task", "metrics", "created", "size", "valid", "path"):
        table.add_column(col)
    for i in infos:
        metrics = " ".join(f"{k}={v:.3g}" for k, v in list(i.metrics.items())[:3])
        table.add_row(i.kind, i.stage, str(i.step), i.task, metrics, i.created[:19], f"{i.size_bytes / 1e6:.1f} MB",
                      "yes" if i.valid else f"no ({i.error})", i.path)
    Console().print(table if infos else f"no checkpoints under {cfg.paths.root} yet: run `bert2 quick`")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "init":
        target = args.output or DEFAULT_CONFIG_FILE
        if os.path.exists(target) and not args.force:
            raise ConfigError_(f"{target} exists; pass --force to overwrite")
        cfg = preset(args.preset) if args.preset else Config()
        cfg = cfg.with_overrides(list(args.set or []))
        cfg.save(target)
        print(f"wrote {target}")
        return 0
    cfg = _config(args)  # validates: raises ConfigError with every field error
    if args.action == "validate":
        print("config is valid")
        return 0
    if args.json:
        _print_json(cfg.to_dict())
        return 0
    for section, cls in SECTIONS.items():
        docs = field_docs(cls)
        print(f"[{section}]")
        for key, value in getattr(cfg, section).__dict__.items():
            print(f"{key} = {json.dumps(value)}  # {docs.get(key, '')}")
        print()
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    unknown = [n for n in args.names if n not in bench.BENCHMARKS]
    if unknown:
        raise BenchNameError(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(bench.BENCHMARKS)}")
    names = args.names or [n for n in bench.BENCHMARKS if n not in bench.SLOW]
    kwargs = {"time_to_quality": {"minutes": args.minutes},
              "inference_latency": {"checkpoint": args.checkpoint},
              "finetune_quality": {"checkpoint": args.checkpoint,
                                   **({"minutes": args.finetune_minutes} if args.finetune_minutes else {})}}
    results = {}
    for name in names:
        sys.stderr.write(f"running {name} ...\n")
        results.update(bench.run([name], **kwargs))
        if not args.json:
            print(f"== {name}")
            print(json.dumps(results[name], indent=2))
    if args.json:
        _print_json(results)
    return 0


class BenchNameError(Bert2Error):
    pass


class ConfigError_(Bert2Error):
    pass


# ------------------------------------------------------------------------------------------------ parser
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help=f"TOML config (default: ./{DEFAULT_CONFIG_FILE} if present)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", default=[],
                   help="override one setting, e.g. --set pretrain.max_steps=100 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bert2", description="BERT from scratch: pretrain, fine-tune, infer.")
    parser.add_argument("--version", action="version", version=f"bert2 {__import__('bert2').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def train_args(p: argparse.ArgumentParser) -> None:
        _common(p)
        p.add_argument("--preset", choices=list(PRESETS), help="model size preset applied before --set")
        p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="DIR",
                       help="continue from the latest checkpoint (or DIR)")
        p.add_argument("--init-from", metavar="DIR",
                       help="start a new run from a checkpoint's weights and tokenizer (e.g. from import-hf)")
        p.add_argument("--max-steps", type=int, help="optimizer steps (pretrain.max_steps)")
        p.add_argument("--minutes", type=float, help="wall-clock budget; the LR schedule spans it")
        p.add_argument("--quiet", action="store_true", help="no progress bar; print final metrics as JSON")

    p = sub.add_parser("quick", help="tiny pretraining run on a slice of the offline corpus (a few minutes)")
    train_args(p)
    p.set_defaults(func=cmd_quick)

    p = sub.add_parser("pretrain", help="pretrain with MLM + NSP into saved_model/transformer/pretrain")
    train_args(p)
    p.set_defaults(func=cmd_pretrain)

    from . import finetuning_cli  # `finetune`, `full` and the classify/qa/similarity inference modes

    finetuning_cli.add_parsers(sub)

    p = sub.add_parser("inference", help="fill-mask, classify, qa or similarity with a checkpoint")
    isub = p.add_subparsers(dest="mode", required=True, metavar="MODE")
    m = isub.add_parser("mask", help='top-k predictions for each [MASK], e.g. "The capital of France is [MASK]."')
    m.add_argument("text")
    m.add_argument("--top-k", type=int, default=5)
    for q in [m]:
        _common(q)
        q.add_argument("--checkpoint", metavar="DIR", help="checkpoint directory (default: pretrain best, else final)")
        q.add_argument("--json", action="store_true", help="print JSON")
    finetuning_cli.add_inference_parsers(isub)
    p.set_defaults(func=cmd_inference)

    p = sub.add_parser("checkpoints", help="list the checkpoints in the six saved_model directories")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_checkpoints)

    p = sub.add_parser("config", help="show, init or validate the configuration")
    p.add_argument("action", choices=["show", "init", "validate"])
    _common(p)
    p.add_argument("--preset", choices=list(PRESETS))
    p.add_argument("--json", action="store_true", help="show as JSON")
    p.add_argument("--output", "-o", metavar="FILE", help=f"init: where to write (default {DEFAULT_CONFIG_FILE})")
    p.add_argument("--force", action="store_true", help="init: overwrite an existing file")
    p.set_defaults(func=cmd_config)

    from . import interop_cli  # `import-hf` and `export-hf`

    interop_cli.add_parsers(sub)

    p = sub.add_parser("bench", help="benchmarks against transformers (measured numbers, not tests)")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"which to run (default: all but finetune_quality, which fine-tunes 8 models): "
                        f"{', '.join(BENCH_NAMES)}")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by benchmark name")
    p.add_argument("--minutes", type=float, default=5.0, help="time_to_quality: budget per model (default 5)")
    p.add_argument("--checkpoint", metavar="DIR",
                   help="inference_latency, finetune_quality: checkpoint (default: pretrain best)")
    p.add_argument("--finetune-minutes", type=float, metavar="M",
                   help="finetune_quality: training minutes per run (default 3)")
    p.set_defaults(func=cmd_bench)
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
