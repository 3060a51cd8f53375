"""What every command shares: the configuration from --config/--preset/--set, JSON output, the progress printer
for trainer events, Ctrl-C as a stop request, and exit codes.

Exit codes: 0 done, 1 a bug or a diverged run, 2 an error the user can fix (printed as one line by main.py),
130 / 143 stopped by Ctrl-C / SIGTERM (a checkpoint was saved; `--resume` continues) or aborted by a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import DEFAULT_CONFIG_FILE, PRESETS, Config, load_config, preset
from ..errors import Bert2Error

EXIT_USAGE = 2


class UsageError(Bert2Error):
    """A command-line mistake that is not a configuration field (an existing file, an unknown name)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples keep their line breaks; an option with a real default says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def command(
    sub: Any, name: str, help: str, description: str = "", examples: tuple[str, ...] = ()
) -> argparse.ArgumentParser:
    """A sub-command whose --help has a description, the defaults and examples."""
    epilog = ("examples:\n" + "\n".join(f"  {e}" for e in examples)) if examples else None
    return sub.add_parser(
        name, help=help, description=description or help, epilog=epilog, formatter_class=HelpFormatter
    )


def add_common(
    p: argparse.ArgumentParser, preset_choice: bool = False, example: str = "pretrain.max_steps=100"
) -> None:
    """--config and --set (every command; also accepted before the command), and --preset where a model is
    built. `example` is a --set this command actually reads."""
    p.add_argument(
        "--config", metavar="FILE", default=None, help=f"TOML config (default: ./{DEFAULT_CONFIG_FILE} if present)"
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        default=[],
        help=f"override one setting, e.g. --set {example} (repeatable; `bert2 config show` lists them)",
    )
    if preset_choice:
        p.add_argument("--preset", choices=list(PRESETS), help="model size preset applied before --set")


def add_global(parser: argparse.ArgumentParser) -> None:
    """`bert2 --config F --set k=v COMMAND ...` works as well as after the command."""
    parser.add_argument("--config", dest="global_config", metavar="FILE", help="TOML config for any command")
    parser.add_argument(
        "--set",
        dest="global_set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        default=[],
        help="override one setting for any command (repeatable)",
    )


def load(args: argparse.Namespace, extra: list[str] | None = None) -> Config:
    """The configuration of this invocation: file, then preset, then `extra` (from flags), then --set (before
    the command, then after it)."""
    base = load_config(getattr(args, "config", None) or getattr(args, "global_config", None))
    if getattr(args, "preset", None):
        base = preset(args.preset, base)
    sets = list(getattr(args, "global_set", None) or []) + list(getattr(args, "set", None) or [])
    cfg = base.with_overrides((extra or []) + sets)
    for note in cfg.notes:  # e.g. an older file's pretrain.device, now runtime.device
        sys.stderr.write(f"note: {note}\n")
    cfg.notes.clear()  # said once, even when a command loads the configuration again
    return cfg


def quote(value: str) -> str:
    """A string override value that survives parse_value's literal parsing (paths with dots, digits...)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def bar(p: float) -> str:
    """A probability as a row of #, one per 1/30."""
    return "#" * max(1, round(p * 30))


class EventPrinter:
    """Renders trainer events: a rich progress bar with loss, tokens/s and ETA, plus eval and checkpoint lines.

    When the output goes to a file (`bert2 pretrain > run.log`, `2> run.log`, a CI job, nohup), a progress bar
    would be redrawn into the file or not at all; instead every logged step becomes one plain line a script can
    read, `step 120/1200 loss 3.4567 mlm 3.1012 nsp 0.3555 lr 1.000e-03 tok/s 41250 elapsed 0:52 eta 2:31`, and
    every other event one line too. They go to stdout when stdout is redirected (and --quiet is off: then stdout
    holds the final JSON alone), else to stderr.
    """

    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.plain = not self.console.is_terminal
        if console is None and not quiet and not sys.stdout.isatty():
            self.console, self.plain = Console(file=sys.stdout), True
        if self.plain and console is None:
            self.console.soft_wrap = True  # a log line is one line, however long its paths: no wrap at 80 columns
        self.total = 0
        self.progress: Progress | None = None
        self.task_id: Any = None
        self.last: dict[str, Any] = {}

    def __call__(self, event: Any) -> None:
        kind = type(event).__name__
        if kind == "StartEvent":
            init = event.info.get("init") or ""
            where = (
                f"step {event.start_step} of {event.total_steps}"
                if event.total_steps
                else f"step {event.start_step} (time budget)"
            )
            self.console.print(
                f"[bold]{event.kind}[/] {event.task} on {event.device}: "
                f"{event.num_parameters / 1e6:.2f}M parameters, {init}, {where} -> {event.run_dir}",
                highlight=False,
            )
            lines = event.info.get("baselines") or {}
            if lines:
                named = {"mlm_loss": "MLM (unigram entropy: word frequencies only)", "nsp_loss": "NSP (a coin, ln 2)"}
                self.console.print(
                    "baselines: " + ", ".join(f"{named.get(k, k)} {v:.3f}" for k, v in lines.items()), highlight=False
                )
            total = event.total_steps or None
            self.total = event.total_steps
            if self.plain:  # no bar: one line per logged step instead (see the class docstring)
                return
            self.progress = Progress(
                TextColumn("[bold blue]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"),
                console=self.console,
                disable=self.quiet,
                transient=False,
            )
            self.progress.start()
            self.task_id = self.progress.add_task("train", total=total, completed=event.start_step, stats="", eta="?")
        elif kind == "StepEvent" and self.plain and not self.quiet:
            parts = " ".join(f"{k} {v:.4f}" for k, v in event.parts.items())
            total = f"/{self.total}" if self.total else ""
            self.console.print(
                f"step {event.step}{total} loss {event.loss:.4f} {parts} lr {event.lr:.3e} "
                f"tok/s {event.tokens_per_s:.0f} elapsed {fmt_s(event.elapsed_s)} "
                f"eta {fmt_s(event.eta_s)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        elif kind == "StepEvent" and self.progress is not None:
            parts = " ".join(f"{k} {v:.3f}" for k, v in event.parts.items())
            stats = f"loss {event.loss:.3f} ({parts}) lr {event.lr:.2e} {event.tokens_per_s:,.0f} tok/s"
            self.progress.update(self.task_id, completed=event.step, stats=stats, eta=fmt_s(event.eta_s))
        elif kind == "EvalEvent":
            # Per-class keys ("precision/People") stay in metrics.jsonl and metrics.json, off the one-line summary.
            m = " ".join(f"{k} {v:.4g}" for k, v in event.metrics.items() if "/" not in k)
            self._line(f"[green]eval[/] step {event.step}: {m}{'  [bold](best)[/]' if event.is_best else ''}")
            for probe in event.probes:
                self._line(f"      probe {probe_line(probe)}")
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


def probe_line(probe: dict[str, Any]) -> str:
    """One line for a live probe: fill-mask guesses, a classification, or a generated answer."""
    text = str(probe.get("text", ""))[:60]
    if "error" in probe:
        return f"{text!r}: {probe['error']}"
    if "predictions" in probe:
        guesses = " | ".join(
            ", ".join(f"{p['token']} {p['score']:.3f}" for p in per_mask[:5]) for per_mask in probe["predictions"]
        )
        return f"{text!r}: {guesses}"
    if "label" in probe:
        gold = f" (gold {probe['gold']})" if probe.get("gold") is not None else ""
        return f"{text!r} -> {probe['label']} {float(probe.get('score', 0)):.2f}{gold}"
    if "answer" in probe:
        ref = f" (reference {probe['reference']!r})" if probe.get("reference") else ""
        return f"{text!r} -> {probe['answer']!r}{ref}"
    return json.dumps(probe)[:120]


def fmt_s(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


_stopped_by: list[int] = []  # the signal that stopped the last run (for its exit code)


def with_stop_signals(run: Callable[[threading.Event], Any]) -> Any:
    """Run with SIGINT/SIGTERM turned into a stop request: the trainer saves a checkpoint and returns."""
    stop = threading.Event()
    _stopped_by.clear()
    if threading.current_thread() is not threading.main_thread():
        return run(stop)
    previous = {}

    def handler(signum, frame):
        if stop.is_set():  # second Ctrl-C: the user insists
            raise KeyboardInterrupt
        _stopped_by.append(signum)
        stop.set()
        sys.stderr.write("\nstopping after the current step and saving a checkpoint (Ctrl-C again to abort)\n")

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        return run(stop)
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def train_exit_code(done: Any) -> int:
    """0 finished (steps or time budget); 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM: the shell's
    convention, so a script can tell an interrupted run from a finished one; a checkpoint was saved either way);
    1 diverged or failed."""
    if done.reason == "stopped":
        return 128 + (_stopped_by[-1] if _stopped_by else signal.SIGINT)
    return 0 if done.reason in ("completed", "time_budget") else 1


def resume_arg(args: argparse.Namespace) -> Any:
    """--resume as run_* take it: False (not given), True (latest) or a directory."""
    value = getattr(args, "resume", None)
    if value is None:
        return False
    return True if value == "latest" else value
