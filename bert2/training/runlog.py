"""metrics.jsonl: every run's events, one JSON object per line, in its kind directory. One writer, one reader, and
one rule for which lines make up one run.

    <kind dir>/metrics.jsonl    appended by every run of that kind (pretraining: transformer/pretrain,
                                fine-tuning: bert/finetuning), read by the TUI's charts, its overlay of earlier
                                runs and its history, and by anyone with `jq`

A run is what a learner started once: its first StartEvent, the events after it, and every resume of it. Each
StartEvent names its run (`run_id`; the id is also in every checkpoint's trainer_state.json, so a resume
continues the run of the checkpoint it resumes). The LogEvents written just before a StartEvent (the set-up's
messages: where the weights came from, the data) belong to that start. A resume at step S supersedes what its
run logged after step S (those steps were redone from the checkpoint at S), so `Run.events` leaves them out.

Files written before runs had ids: a StartEvent with start_step > 0 continues the nearest earlier run of the same
kind and task, as bert2 always did.

Reading never fails: a torn last line from a crash, bytes that are not UTF-8, an event type this version does
not know and fields of the wrong type are skipped (and counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .events import (
    Callback,
    CheckpointEvent,
    DoneEvent,
    EvalEvent,
    Event,
    LogEvent,
    StartEvent,
    StepEvent,
    event_from_dict,
)

FILE = "metrics.jsonl"


def writer(path: Path) -> Callback:
    """A callback appending every event as one JSON line (charts survive a restart of the app)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(event: Event) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event.to_dict(), default=str) + "\n")

    return write


_NUMBER = (int, float)
_SHAPES: dict[type, dict[str, type | tuple[type, ...]]] = {
    StartEvent: {
        "kind": str,
        "task": str,
        "total_steps": int,
        "start_step": int,
        "num_parameters": _NUMBER,
        "run_id": str,
    },
    StepEvent: {
        "step": int,
        "epoch": int,
        "loss": _NUMBER,
        "parts": dict,
        "lr": _NUMBER,
        "tokens_per_s": _NUMBER,
        "elapsed_s": _NUMBER,
        "eta_s": _NUMBER,
    },
    EvalEvent: {"step": int, "metrics": dict, "probes": list},
    CheckpointEvent: {"step": int},
    LogEvent: {"message": str},
    DoneEvent: {"step": int, "final_metrics": dict},
}
"""The fields readers compute with, and their JSON types: an event whose fields have other types (a hand-edited or
corrupted line) is skipped like an unparseable one, instead of failing later in a chart or a format string."""


def _well_formed(ev: Event) -> bool:
    if not isinstance(ev.time, _NUMBER) or isinstance(ev.time, bool):
        return False
    for name, kind in _SHAPES.get(type(ev), {}).items():
        value = getattr(ev, name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return False
    if isinstance(ev, StepEvent):
        return all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in ev.parts.values())
    return True


def read_events(path: Path, skipped: list[int] | None = None) -> list[Event]:
    """Every well-formed event of a metrics.jsonl; anything else is skipped, never fatal. `skipped`, when given,
    receives the numbers of the lines skipped. A missing or unreadable file gives []."""
    out: list[Event] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                ev = parse_line(line)
                if ev is not None:
                    out.append(ev)
                elif skipped is not None:
                    skipped.append(number)
    except OSError:
        return out
    return out


def parse_line(line: str) -> Event | None:
    """One line of a metrics.jsonl as an event, or None when it is not a well-formed one."""
    try:
        ev = event_from_dict(json.loads(line))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return ev if _well_formed(ev) else None


def read_new(path: Path, offset: int) -> tuple[list[Event], int]:
    """The events appended to `path` after byte `offset` (complete lines only: a line still being written waits
    for the next call), and the offset to continue from. What a reader following another process's run uses."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except OSError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    lines = chunk[:end].decode("utf-8", errors="replace").splitlines()
    return [ev for ev in map(parse_line, lines) if ev is not None], offset + end


def step_of(ev: Event) -> int | None:
    """The training step an event is about (None for starts and log lines)."""
    return getattr(ev, "step", None) if not isinstance(ev, (StartEvent, LogEvent)) else None


@dataclass
class Segment:
    """One process's part of a run: the set-up's LogEvents, its StartEvent, and what followed."""

    preamble: list[LogEvent]
    start: StartEvent
    events: list[Event] = field(default_factory=list)


@dataclass
class Run:
    """One run of one metrics.jsonl: a fresh start and every resume of it."""

    run_id: str
    kind: str
    task: str
    segments: list[Segment]

    @property
    def started(self) -> float:
        """When the run was first started (Unix seconds)."""
        return self.segments[0].start.time

    @property
    def preamble(self) -> list[LogEvent]:
        return self.segments[0].preamble

    @property
    def segment_starts(self) -> list[float]:
        return [s.start.time for s in self.segments]

    @property
    def events(self) -> list[Event]:
        """The run's events from its first start on, each resume's StartEvent in its place; what a segment logged
        after the step a later resume started from is left out (those steps were trained again)."""
        out: list[Event] = []
        for i, seg in enumerate(self.segments):
            later = [s.start.start_step for s in self.segments[i + 1 :]]
            limit = min(later) if later else None
            part = [seg.start, *seg.events]
            if limit is not None:
                part = [e for e in part if (step_of(e) is None or step_of(e) <= limit)]
            if i > 0:
                out.extend(seg.preamble)
            out.extend(part)
        return out

    @property
    def done(self) -> DoneEvent | None:
        """How the run's latest segment ended (None: it is still running, or was killed)."""
        last = self.segments[-1].events
        return next((e for e in reversed(last) if isinstance(e, DoneEvent)), None)

    @property
    def step(self) -> int:
        """The last step the run's latest segment reached."""
        seg = self.segments[-1]
        steps = [s for s in (step_of(e) for e in seg.events) if s is not None]
        return max(steps, default=seg.start.start_step)


def segments_of(events: list[Event]) -> list[Segment]:
    """Cut a file's events at every StartEvent; the LogEvents just before a start are its preamble. Lines before
    the first start (a run that failed while preparing) belong to no segment."""
    segments: list[Segment] = []
    pending: list[LogEvent] = []
    for ev in events:
        if isinstance(ev, StartEvent):
            segments.append(Segment(pending, ev))
            pending = []
        elif isinstance(ev, LogEvent):
            pending.append(ev)
        else:
            if segments:
                segments[-1].events.extend(pending)
                segments[-1].events.append(ev)
            pending = []
    if segments:
        segments[-1].events.extend(pending)
    return segments


def runs_of(events: list[Event]) -> list[Run]:
    """The runs in a file's events, in the order they were started."""
    runs: list[Run] = []
    by_id: dict[str, Run] = {}
    for seg in segments_of(events):
        start = seg.start
        parent: Run | None = None
        if start.run_id:
            parent = by_id.get(start.run_id)
        elif start.start_step > 0:  # an older file: a resume continues the last run of its kind and task
            parent = next((r for r in reversed(runs) if (r.kind, r.task) == (start.kind, start.task)), None)
        if parent is not None:
            parent.segments.append(seg)
            continue
        run = Run(start.run_id or f"{start.kind}-{start.time:.3f}", start.kind, start.task, [seg])
        runs.append(run)
        if start.run_id:
            by_id[start.run_id] = run
    return runs


def read_runs(path: Path, skipped: list[int] | None = None) -> list[Run]:
    return runs_of(read_events(path, skipped))


def last_run(events: list[Event]) -> Run | None:
    """The run whose latest segment started last (a resume makes an old run the latest)."""
    runs = runs_of(events)
    return max(runs, key=lambda r: r.segments[-1].start.time, default=None)


def metrics_file(kind_dir: Path) -> Path:
    return Path(kind_dir) / FILE
