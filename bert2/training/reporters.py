"""Where a run's numbers go besides metrics.jsonl: a CSV file or TensorBoard (`report_to = "csv,tensorboard"`).

Like transformers' `report_to`: the trainer only emits events (events.py); a reporter is one more callback that
subscribes. `[pretrain].report_to` and `[finetune].report_to` choose them (the CLI's `--report-to` sets both for
one run); only the main process reports, so torchrun's ranks never write the same file twice.

    <kind dir>/metrics.csv     beside metrics.jsonl, appended by every run: one row per number — run (its start
                               time), time, step, event (train | eval), name, value. Tidy, for pandas or a
                               spreadsheet: `df[df.run == df.run.iloc[-1]].pivot_table(index="step",
                               columns="name", values="value")` is the last run as a table.
    <kind dir>/runs/<start>/   TensorBoard scalars train/loss, train/lr, train/tokens_per_s, train/<part>,
                               eval/<metric>; view with `tensorboard --logdir saved_model/transformer/pretrain/runs`
"""

from __future__ import annotations

import csv
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import REPORTERS, report_names
from ..errors import TrainingError
from .events import Callback, DoneEvent, EvalEvent, Event, StepEvent

CSV_HEADER = ["run", "time", "step", "event", "name", "value"]


def parse_report_to(values: list[str] | str | None) -> list[str]:
    """`csv`, `tensorboard`, `csv,tensorboard` (repeatable) -> names; TrainingError names what is allowed."""
    if not values:
        return []
    items = [values] if isinstance(values, str) else list(values)
    names, unknown = report_names(",".join(items))
    if unknown:
        raise TrainingError(
            f"--report-to {', '.join(unknown)}: unknown; choose {', '.join(REPORTERS)} (comma-separated) or none"
        )
    return names


def run_directory(kind_dir: Path) -> Path:
    """A fresh `runs/<start time>` directory name under a kind directory (not created yet); milliseconds in the
    name, so two runs started within one second (a script, a test) still get two names."""
    now = datetime.now()
    stamp = now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond // 1000:03d}"
    path = Path(kind_dir) / "runs" / stamp
    n = 1
    while path.exists():
        n += 1
        path = Path(kind_dir) / "runs" / f"{stamp}-{n}"
    return path


def _scalars(event: Event) -> tuple[str, dict[str, float]] | None:
    """The numbers of an event worth plotting, as (train | eval, {name: value})."""
    if isinstance(event, StepEvent):
        values = {
            "loss": event.loss,
            "lr": event.lr,
            "tokens_per_s": event.tokens_per_s,
            **{f"loss_{k}": v for k, v in event.parts.items()},
        }
        return "train", values
    if isinstance(event, EvalEvent):
        return "eval", {k: v for k, v in event.metrics.items() if isinstance(v, (int, float))}
    return None


def csv_reporter(path: Path, run: str) -> Callback:
    """Rows appended to `path` (the header written when the file is new), each tagged with `run`."""
    path = Path(path)

    def report(event: Event) -> None:
        scalars = _scalars(event)
        if scalars is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(CSV_HEADER)
            stamp = round(getattr(event, "time", time.time()), 3)
            writer.writerows(
                [run, stamp, event.step, scalars[0], name, float(value)] for name, value in scalars[1].items()
            )

    return report


def tensorboard_reporter(run_dir: Path) -> Callback:
    try:
        from torch.utils.tensorboard import SummaryWriter  # needs the optional tensorboard package
    except ImportError:
        raise TrainingError(
            "report_to tensorboard needs the tensorboard package: pip install tensorboard "
            "(or pip install 'bert2[tensorboard]')"
        ) from None
    writer: list[Any] = []

    def report(event: Event) -> None:
        scalars = _scalars(event)
        if scalars is not None:
            if not writer:
                writer.append(SummaryWriter(log_dir=str(run_dir)))
            for name, value in scalars[1].items():
                writer[0].add_scalar(f"{scalars[0]}/{name}", float(value), event.step)
        if isinstance(event, DoneEvent) and writer:
            writer[0].close()

    return report


def reporters_for(report_to: str, kind_dir: Path) -> tuple[list[Callback], str | None]:
    """The reporters a section's `report_to` names, and a line saying where they write (None: no reporters):
    metrics.csv beside metrics.jsonl, TensorBoard's run directory. Made before data preparation, so that a missing
    tensorboard package is said at once; nothing is created until the first event arrives."""
    names = parse_report_to(report_to)
    if not names:
        return [], None
    run_dir = run_directory(kind_dir)
    callbacks, paths = [], []
    if "csv" in names:
        callbacks.append(csv_reporter(Path(kind_dir) / "metrics.csv", run_dir.name))
        paths.append(Path(kind_dir) / "metrics.csv")
    if "tensorboard" in names:
        callbacks.append(tensorboard_reporter(run_dir))
        paths.append(run_dir)
    return callbacks, f"reporting to {' and '.join(str(p) for p in paths)}"
