"""Earlier runs in the metrics.jsonl files, for the Train screen's overlay (`o`).

Every run appends its events to `<kind dir>/metrics.jsonl` (pretraining: transformer/pretrain, fine-tuning:
bert/finetuning); bert2.training.runlog says which lines make up one run (a run's id joins its resumes; the
LogEvents of its set-up, such as "from scratch: ..." or "from <checkpoint> (<task>): ...", come first).
`list_runs` returns one `HistoryRun` per run of both files, newest first; bad lines are skipped.

Each run's curves are smoothed and downsampled once, here, into an `Overlay` of at most OVERLAY_POINTS points a
series: the overlay is static, so the chart that draws it beside the live run never recomputes them.

Imported lazily, by the Train screen's overlay worker: it uses the chart helpers, whose module imports plotext
(~50 ms) that the first frame does without.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text

from bert2.training import runlog
from bert2.training.events import DoneEvent, EvalEvent, LogEvent, StartEvent, StepEvent

from .jobs import metrics_files
from .widgets.charts import Point, downsample, ema, smoothing_weight

OVERLAY_POINTS = 600
"""Points kept per overlay series: more than a chart has braille columns on any sensible terminal."""
HEADLINE = {
    "accuracy": "acc",
    "f1": "F1",
    "exact_match": "EM",
    "bleu": "BLEU",
    "rougeL": "ROUGE-L",
    "mlm_accuracy": "mlm acc",
}
"""The task metric a row shows (the first one the run's evaluation has), beside the best validation loss."""
REASONS = {
    "completed": "completed",
    "time_budget": "time budget",
    "stopped": "stopped",
    "diverged": "diverged",
    "error": "error",
    "": "interrupted",
}
_FROM_CHECKPOINT = re.compile(r"^from (?P<path>.+) \([^)]*\): ")


@dataclass
class Overlay:
    """An earlier run's curves, ready to draw: (step, value) points, smoothed where the chart smooths."""

    label: str
    """Its name in chart legends: "classify scratch 14:02"."""
    short: str = ""
    """The name where the legend has no room for `label` (narrow charts): the start time, "14:02"."""
    loss: list[Point] = field(default_factory=list)
    """Training loss, smoothed like the live run's coloured line."""
    parts: dict[str, list[Point]] = field(default_factory=dict)
    """Loss parts (mlm, nsp, ...), smoothed."""
    lr: list[Point] = field(default_factory=list)
    evals: list[Point] = field(default_factory=list)
    """Validation loss at each evaluation."""


@dataclass
class HistoryRun:
    """One run found in a metrics.jsonl (its resumes joined): what the picker lists, and its overlay."""

    source: str
    """The metrics.jsonl it came from."""
    index: int
    """Its position among that file's runs (with `source`, a stable key while the file only grows)."""
    kind: str
    task: str
    started: float
    origin: str = ""
    """scratch | pretrained (fine-tuning from random or pretrained weights) | init (pretraining from weights) | ''."""
    origin_path: str = ""
    segment_starts: list[float] = field(default_factory=list)
    """Start time of every segment (the first run and each resume)."""
    total_steps: int = 0
    step: int = 0
    reason: str = ""
    """The DoneEvent's reason; empty when the run ended without one (killed, or still running)."""
    final_metrics: dict[str, float] = field(default_factory=dict)
    evals: list[tuple[int, dict]] = field(default_factory=list)
    overlay: Overlay | None = None

    @property
    def key(self) -> str:
        return f"{self.source}#{self.index}"

    @property
    def what(self) -> str:
        if self.kind == "pretrain":
            return "pretrain" + (" · init" if self.origin == "init" else "")
        return self.task + (f" · {self.origin}" if self.origin in ("scratch", "pretrained") else "")

    @property
    def label(self) -> str:
        """Legend name: what, and the start time of day ("classify scratch 14:02")."""
        what = "pretrain" if self.kind == "pretrain" else self.task
        if self.origin in ("scratch", "pretrained"):
            what += f" {self.origin}"
        return f"{what} {time.strftime('%H:%M', time.localtime(self.started))}"

    def metric_summary(self) -> str:
        final = self.final_metrics or (self.evals[-1][1] if self.evals else {})
        out: list[str] = []
        for name, short in HEADLINE.items():
            value = final.get(name)
            if _finite(value):
                out.append(f"{short} {value:.3g}")
                break
        losses = [(m["loss"], s) for s, m in self.evals if _finite(m.get("loss"))]
        if losses:
            best, at = min(losses)
            out.append(f"best loss {best:.3g} @ {at}")
        return " · ".join(out) or "no evaluation"

    def row(self, shown: bool = False, active: bool = False, running: bool = False) -> Text:
        """One line of the picker: what, start, steps reached, how it ended, its metric. `shown`: the run the
        charts show now (`running`: and it is still training); `active`: the overlay drawn now."""
        steps = f"step {self.step}" + (f"/{self.total_steps}" if self.total_steps else "")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("● " if active else "  ", style="bold magenta")
        text.append(f"{self.what:<21.21} ", style="bold")
        text.append(f"{time.strftime('%b %d %H:%M', time.localtime(self.started))}  ")
        text.append(f"{steps:<14} ")
        ended = "running" if running and not self.reason else REASONS.get(self.reason, self.reason)
        text.append(f"{ended:<11.11} ", style="red" if self.reason in ("diverged", "error") else "dim")
        text.append(self.metric_summary())
        if shown:
            text.append("  (shown)", style="italic dim")
        return text


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _origin(preamble: list[LogEvent]) -> tuple[str, str]:
    """(origin, checkpoint) from the LogEvents written just before a StartEvent."""
    for ev in preamble:
        msg = ev.message
        if msg.startswith("from scratch"):
            return "scratch", ""
        m = _FROM_CHECKPOINT.match(msg)
        if m:
            return "pretrained", m.group("path")
        if msg.startswith("weights from "):
            return "init", msg[len("weights from ") :]
    return "", ""


def _smooth(pts: list[Point]) -> list[Point]:
    if len(pts) <= 2:
        return pts
    values = ema([p[1] for p in pts], smoothing_weight(len(pts)))
    return downsample(list(zip((p[0] for p in pts), values)), OVERLAY_POINTS)


def history_run(source: str, index: int, run: runlog.Run) -> HistoryRun:
    """A run of a metrics.jsonl (runlog's rule for what belongs to it), with its overlay drawn once."""
    first, last = run.segments[0].start, run.segments[-1].start
    origin, origin_path = _origin(run.preamble)
    out = HistoryRun(
        source,
        index,
        run.kind,
        run.task,
        run.started,
        origin,
        origin_path,
        run.segment_starts,
        last.total_steps or first.total_steps,
        last.start_step,
    )
    loss: list[Point] = []
    parts: dict[str, list[Point]] = {}
    lr: list[Point] = []
    for ev in run.events:
        if isinstance(ev, StepEvent):
            if _finite(ev.loss):
                loss.append((ev.step, float(ev.loss)))
            for k, v in ev.parts.items():
                if _finite(v):
                    parts.setdefault(str(k), []).append((ev.step, float(v)))
            if _finite(ev.lr):
                lr.append((ev.step, float(ev.lr)))
            out.step = max(out.step, ev.step)
        elif isinstance(ev, EvalEvent):
            out.evals.append((ev.step, dict(ev.metrics)))
            out.step = max(out.step, ev.step)
        elif isinstance(ev, StartEvent):
            out.reason = ""  # a resume: how the run ended is its last segment's business
        elif isinstance(ev, DoneEvent):
            out.reason = str(ev.reason)
            out.step = max(out.step, ev.step)
            out.final_metrics = {k: v for k, v in ev.final_metrics.items() if _finite(v)}
    evals = [(s, float(m["loss"])) for s, m in out.evals if _finite(m.get("loss"))]
    out.overlay = Overlay(
        out.label,
        time.strftime("%H:%M", time.localtime(out.started)),
        loss=_smooth(loss),
        parts={k: _smooth(v) for k, v in parts.items() if v},
        lr=downsample(lr, OVERLAY_POINTS),
        evals=downsample(evals, OVERLAY_POINTS),
    )
    return out


def runs_in_file(path: str | Path, skipped: list[int] | None = None) -> list[HistoryRun]:
    """Every run of one metrics.jsonl, in the order they were started (resumes joined to the run they continue)."""
    return [history_run(str(path), i, run) for i, run in enumerate(runlog.read_runs(Path(path), skipped))]


@dataclass
class RunList:
    runs: list[HistoryRun]
    files: list[Path]
    """The history files looked at (whether or not they exist)."""
    skipped: dict[str, int]
    """Lines skipped per file (unreadable, unknown, or malformed)."""

    def message(self) -> str:
        """A sentence for the picker: why the list is empty, or what was skipped."""
        skipped = sum(self.skipped.values())
        note = f" ({skipped} unreadable line{'s' if skipped != 1 else ''} skipped)" if skipped else ""
        if self.runs:
            return f"{len(self.runs)} run{'s' if len(self.runs) != 1 else ''} in metrics.jsonl" + note
        existing = [f for f in self.files if f.is_file()]
        if not existing:
            return (
                "No earlier runs: there is no history yet ("
                + " or ".join(str(f) for f in self.files)
                + "). Every training run appends its curves there."
            )
        return "No earlier runs: " + ", ".join(str(f) for f in existing) + " hold no complete run start" + note + "."


def list_runs(root: str | Path) -> RunList:
    """The runs in the pretraining and fine-tuning metrics.jsonl under `root`, newest first."""
    runs: list[HistoryRun] = []
    skipped: dict[str, int] = {}
    files = metrics_files(root)
    for path in files:
        lines: list[int] = []
        runs += runs_in_file(path, lines)
        if lines:
            skipped[str(path)] = len(lines)
    runs.sort(key=lambda r: r.started, reverse=True)
    return RunList(runs, files, skipped)
