"""Where a run's numbers go besides the screen: a CSV file or TensorBoard (`--report-to csv,tensorboard`).

Like transformers' `report_to`: the trainer only emits events (events.py); a reporter is one more callback that
subscribes. Each run writes into its own directory, `saved_model/<kind>/runs/<start time>/`, created on the first
event (so under torchrun the ranks that receive no events create nothing):

    metrics.csv      one row per number: time, step, event (train | eval), name, value — tidy, for pandas or a
                     spreadsheet (`pd.read_csv(...).pivot_table(index="step", columns="name", values="value")`)
    events.out...    TensorBoard scalars train/loss, train/lr, train/tokens_per_s, train/<part>, eval/<metric>;
                     view with `tensorboard --logdir saved_model/transformer/pretrain/runs`
"""

from __future__ import annotations

import csv
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import TrainingError
from .events import Callback, DoneEvent, EvalEvent, Event, StepEvent

REPORTERS = ("csv", "tensorboard")


def parse_report_to(values: list[str] | str | None) -> list[str]:
    """`csv`, `tensorboard`, `csv,tensorboard` (repeatable) -> names; TrainingError names what is allowed."""
    if not values:
        return []
    items = [values] if isinstance(values, str) else list(values)
    names = [n.strip() for item in items for n in item.split(",") if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in REPORTERS]
    if unknown:
        raise TrainingError(f"--report-to {', '.join(unknown)}: unknown; choose {', '.join(REPORTERS)} "
                            "(comma-separated)")
    return list(dict.fromkeys(names))


def run_directory(kind_dir: Path) -> Path:
    """A fresh `runs/<start time>` directory name under a kind directory (not created yet)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(kind_dir) / "runs" / stamp
    n = 1
    while path.exists():
        n += 1
        path = Path(kind_dir) / "runs" / f"{stamp}-{n}"
    return path


def _scalars(event: Event) -> tuple[str, dict[str, float]] | None:
    """The numbers of an event worth plotting, as (train | eval, {name: value})."""
    if isinstance(event, StepEvent):
        values = {"loss": event.loss, "lr": event.lr, "tokens_per_s": event.tokens_per_s,
                  **{f"loss_{k}": v for k, v in event.parts.items()}}
        return "train", values
    if isinstance(event, EvalEvent):
        return "eval", {k: v for k, v in event.metrics.items() if isinstance(v, (int, float))}
    return None


def csv_reporter(run_dir: Path) -> Callback:
    path = Path(run_dir) / "metrics.csv"

    def report(event: Event) -> None:
        scalars = _scalars(event)
        if scalars is None:
            return
        new = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["time", "step", "event", "name", "value"])
            stamp = round(getattr(event, "time", time.time()), 3)
            for name, value in scalars[1].items():
                writer.writerow([stamp, event.step, scalars[0], name, float(value)])

    return report


def tensorboard_reporter(run_dir: Path) -> Callback:
    try:
        from torch.utils.tensorboard import SummaryWriter  # needs the optional tensorboard package
    except ImportError:
        raise TrainingError("--report-to tensorboard needs the tensorboard package: pip install tensorboard "
                            "(or pip install 'bert2[tensorboard]')") from None
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


def make_reporters(names: list[str], kind_dir: Path) -> tuple[list[Callback], Path | None]:
    """Callbacks for `names` writing into one new run directory (None when there are none)."""
    if not names:
        return [], None
    run_dir = run_directory(kind_dir)
    factories = {"csv": csv_reporter, "tensorboard": tensorboard_reporter}
    return [factories[n](run_dir) for n in names], run_dir
