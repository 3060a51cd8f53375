"""Every message of bert2-tui, in one place.

Who posts what: workers post their results (thread-safe `post_message`); screens post what the user asked for
and what they changed, and the message bubbles to the app, which owns the shared state (config, job, run state)
and handles it; the app tells a screen that its data changed by posting to that screen. Nobody writes another
object's attributes or calls another screen's methods.

Each message is a dataclass (as Textual's own, e.g. Input.Changed): its fields are what it carries. A message
for one screen says `bubble=False` in its class line (a `bubble = False` in the body would be overwritten by
Message.__init_subclass__'s default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from bert2.checkpoint import CheckpointInfo
    from bert2.config import Config, FieldError
    from bert2.training.events import Event

    from .history import RunList
    from .jobs import RunState


# --------------------------------------------------------------------------------------- workers -> the app
@dataclass
class TrainerEvents(Message):
    """A batch of trainer events, posted from the training worker's thread (see `jobs.EventBatcher`)."""

    job_id: int
    events: list[Event]


@dataclass
class HistoryLoaded(Message):
    """The last run, replayed from metrics.jsonl by the history worker (`path` is empty when there is none)."""

    state: RunState
    path: str


# ------------------------------------------------------------------------------ workers -> their screen
@dataclass
class RunsListed(Message, bubble=False):
    """The runs of the history files, read in the Train screen's worker for the overlay picker (or why reading
    failed: `runs` is None and `error` says why)."""

    runs: RunList | None
    error: str = ""


@dataclass
class PredictorLoaded(Message, bubble=False):
    """The playground's load worker finished: a `bert2.inference.Predictor` for `path`, or the error."""

    path: str
    predictor: Any = None
    error: str = ""


@dataclass
class PredictionDone(Message, bubble=False):
    """The playground's prediction worker answered request number `request` (or failed: `error`, shown as a hint
    when the user can fix it)."""

    request: int
    tool: str
    result: Any = None
    error: str = ""
    hint: bool = True


# ----------------------------------------------------------------------------- screens -> the app (bubble)
@dataclass
class ConfigChanged(Message):
    """The Config screen validated its form: `config` is the new working config, or None when the form is invalid
    (the app keeps the last valid one); `errors` is what is wrong (empty when valid)."""

    config: Config | None
    errors: list[FieldError]


@dataclass
class ConfigPathChanged(Message):
    """The Config screen saved or loaded a TOML file: the next save or load offers `path`."""

    path: str


@dataclass
class ProbesChanged(Message):
    """The Train screen's probe editor changed: the [MASK] sentences the next pretraining job evaluates."""

    probes: tuple[str, ...]


@dataclass
class JobChoiceChanged(Message):
    """The Train screen's job picker changed: `choice` is "pretrain" or a fine-tuning task."""

    choice: str


@dataclass
class StartJob(Message):
    """Start (`resume`: resume) the job `choice`: "pretrain" or a fine-tuning task (Train screen: s, r)."""

    choice: str
    resume: bool = False


@dataclass
class StopJob(Message):
    """Stop the running job; it saves a checkpoint first (Train screen: x)."""


@dataclass
class ReloadHistory(Message):
    """Read the last run from metrics.jsonl again (Train screen: h)."""


@dataclass
class ResumeFrom(Message):
    """Resume training from the checkpoint `info` (Checkpoints screen: r)."""

    info: CheckpointInfo


@dataclass
class FinetuneFrom(Message):
    """Fine-tune starting from the pretraining checkpoint at `path` (Checkpoints screen: f)."""

    path: str


@dataclass
class DistillFrom(Message):
    """Distil a smaller student from the checkpoint at `path`, the teacher (Checkpoints screen: t)."""

    path: str


@dataclass
class PruneFrom(Message):
    """Remove the least important attention heads of the checkpoint at `path` (Checkpoints screen: k)."""

    path: str


@dataclass
class UseInPlayground(Message):
    """Show the playground with the checkpoint at `path` (Checkpoints screen: p, enter)."""

    path: str


@dataclass
class PlaygroundCheckpointChanged(Message):
    """The playground's checkpoint picker changed: it queries `path` from now on."""

    path: str


@dataclass
class CheckpointDeleted(Message):
    """The Checkpoints screen deleted the checkpoint at `path`."""

    path: str


# -------------------------------------------------------------------------------------- the app -> a screen
@dataclass
class CheckpointsChanged(Message, bubble=False):
    """A checkpoint was saved or deleted: the screens that list checkpoints read the directories again."""


@dataclass
class JobShown(Message, bubble=False):
    """The Train screen's job picker shows `choice` ("pretrain" or a task): the job that just started, or the job of
    the run loaded from history or followed in another process, so that s, r and e act on the run on screen."""

    choice: str


@dataclass
class InsideReady(Message, bubble=False):
    """The Inside screen's worker ran request number `request` through the checkpoint at `path`: the loaded
    `bert2.explain.Explainer` (kept for the next batch) and its `Explanation`, or the error."""

    request: int
    path: str
    explainer: Any = None
    result: Any = None
    error: str = ""
