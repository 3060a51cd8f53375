"""Plain dataclass events the trainer emits to callbacks.

They carry numbers only (no tensors, no widgets), so the CLI can render them with rich, the TUI with charts, and
`metrics.jsonl` can store them one JSON object per line. `to_dict()` / `event_from_dict()` round-trip them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Event:
    time: float = field(default_factory=time.time, kw_only=True)
    """Wall-clock time (Unix seconds) when the event was emitted."""

    @property
    def type(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **dataclasses.asdict(self)}


@dataclass
class StartEvent(Event):
    kind: str  # pretrain | finetune
    task: str  # mlm+nsp, mlm, classify, qa, qa-span
    total_steps: int
    start_step: int
    device: str
    num_parameters: int
    run_dir: str
    """Where this run's checkpoints go (the stage directory root for its kind)."""
    info: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    """The run this start begins or resumes (also in every checkpoint's trainer_state.json); empty in files
    written before runs had ids."""


@dataclass
class StepEvent(Event):
    step: int
    epoch: int
    loss: float
    parts: dict[str, float]
    lr: float
    tokens_per_s: float
    elapsed_s: float
    eta_s: float
    data_wait_s: float = 0.0
    """Seconds of this logging window spent waiting for the next batch."""


@dataclass
class EvalEvent(Event):
    step: int
    metrics: dict[str, float]
    is_best: bool = False
    probes: list[dict[str, Any]] = field(default_factory=list)
    """Live probe results, one dict per probe; the shape depends on the task and is stable:
    pretraining {"text", "predictions": [[{"token", "score"}, ...] per [MASK]]} (or {"text", "error"});
    classify {"text", "label", "score", "gold"}; qa / qa-span {"text", "answer", "reference"}."""
    heads: list[dict[str, Any]] = field(default_factory=list)
    """Pretraining's microscope (bert2/microscope.py): one dict per attention head, {"layer", "head", "type",
    "score", "scores": {type: score}}, on a fixed held-out batch; empty when switched off or not pretraining."""


@dataclass
class CheckpointEvent(Event):
    step: int
    path: str
    stage: str  # checkpoint | best | final


@dataclass
class LogEvent(Event):
    level: str  # info | warning | error
    message: str


@dataclass
class DoneEvent(Event):
    reason: str  # completed | stopped | time_budget | diverged | error
    step: int
    message: str = ""
    final_metrics: dict[str, float] = field(default_factory=dict)


EVENT_TYPES: dict[str, type[Event]] = {
    c.__name__: c for c in (StartEvent, StepEvent, EvalEvent, CheckpointEvent, LogEvent, DoneEvent)
}

Callback = Callable[[Event], None]


def event_from_dict(data: dict[str, Any]) -> Event:
    data = dict(data)
    cls = EVENT_TYPES[data.pop("type")]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
