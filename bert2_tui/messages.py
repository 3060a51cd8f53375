"""Every message of bert2-tui, in one place.

Who posts what: workers post their results (thread-safe `post_message`); screens post what the user asked for
and what they changed, and the message bubbles to the app, which owns the shared state (config, job, run state)
and handles it; the app tells a screen that its data changed by posting to that screen. Nobody writes another
object's attributes or calls another screen's methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from bert2.checkpoint import CheckpointInfo
    from bert2.config import Config, FieldError
    from bert2.training.events import Event

    from .history import RunList
    from .jobs import RunState


# --------------------------------------------------------------------------------------- workers -> the app
class TrainerEvents(Message):
    """A batch of trainer events, posted from the training worker's thread (see `jobs.EventBatcher`)."""

    def __init__(self, job_id: int, events: list[Event]) -> None:
        super().__init__()
        self.job_id = job_id
        self.events = events


class HistoryLoaded(Message):
    """The last run, replayed from metrics.jsonl by the history worker (`path` is empty when there is none)."""

    def __init__(self, state: RunState, path: str) -> None:
        super().__init__()
        self.state, self.path = state, path


# ------------------------------------------------------------------------------ workers -> their screen
class RunsListed(Message):
    """The runs of the history files, read in the Train screen's worker for the overlay picker (or why reading
    failed: `runs` is None and `error` says why)."""

    bubble = False

    def __init__(self, runs: RunList | None, error: str = "") -> None:
        super().__init__()
        self.runs, self.error = runs, error


class PredictorLoaded(Message):
    """The playground's load worker finished: a `bert2.inference.Predictor` for `path`, or the error."""

    bubble = False

    def __init__(self, path: str, predictor: Any = None, error: str = "") -> None:
        super().__init__()
        self.path, self.predictor, self.error = path, predictor, error


class PredictionDone(Message):
    """The playground's prediction worker answered request number `request` (or failed: `error`, shown as a hint
    when the user can fix it)."""

    bubble = False

    def __init__(self, request: int, tool: str, result: Any = None, error: str = "", hint: bool = True) -> None:
        super().__init__()
        self.request, self.tool, self.result, self.error, self.hint = request, tool, result, error, hint


# ----------------------------------------------------------------------------- screens -> the app (bubble)
class ConfigChanged(Message):
    """The Config screen validated its form: `config` is the new working config, or None when the form is invalid
    (the app keeps the last valid one); `errors` is what is wrong (empty when valid)."""

    def __init__(self, config: Config | None, errors: list[FieldError]) -> None:
        super().__init__()
        self.config, self.errors = config, errors


class ConfigPathChanged(Message):
    """The Config screen saved or loaded a TOML file: the next save or load offers `path`."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class ProbesChanged(Message):
    """The Train screen's probe editor changed: the [MASK] sentences the next pretraining job evaluates."""

    def __init__(self, probes: tuple[str, ...]) -> None:
        super().__init__()
        self.probes = probes


class JobChoiceChanged(Message):
    """The Train screen's job picker changed: `choice` is "pretrain" or a fine-tuning task."""

    def __init__(self, choice: str) -> None:
        super().__init__()
        self.choice = choice


class StartJob(Message):
    """Start (`resume`: resume) the job `choice`: "pretrain" or a fine-tuning task (Train screen: s, r)."""

    def __init__(self, choice: str, resume: bool = False) -> None:
        super().__init__()
        self.choice, self.resume = choice, resume


class StopJob(Message):
    """Stop the running job; it saves a checkpoint first (Train screen: x)."""


class ReloadHistory(Message):
    """Read the last run from metrics.jsonl again (Train screen: h)."""


class ResumeFrom(Message):
    """Resume training from the checkpoint `info` (Checkpoints screen: r)."""

    def __init__(self, info: CheckpointInfo) -> None:
        super().__init__()
        self.info = info


class FinetuneFrom(Message):
    """Fine-tune starting from the pretraining checkpoint at `path` (Checkpoints screen: f)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class DistillFrom(Message):
    """Distil a smaller student from the checkpoint at `path`, the teacher (Checkpoints screen: t)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class PruneFrom(Message):
    """Remove the least important attention heads of the checkpoint at `path` (Checkpoints screen: k)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class UseInPlayground(Message):
    """Show the playground with the checkpoint at `path` (Checkpoints screen: p, enter)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class PlaygroundCheckpointChanged(Message):
    """The playground's checkpoint picker changed: it queries `path` from now on."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class CheckpointDeleted(Message):
    """The Checkpoints screen deleted the checkpoint at `path`."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


# -------------------------------------------------------------------------------------- the app -> a screen
class CheckpointsChanged(Message):
    """A checkpoint was saved or deleted: the screens that list checkpoints read the directories again."""

    bubble = False


class JobStarted(Message):
    """A job started: the Train screen shows its `choice` ("pretrain" or the task) in the job picker."""

    bubble = False

    def __init__(self, choice: str) -> None:
        super().__init__()
        self.choice = choice


class InsideReady(Message):
    """The Inside screen's worker ran request number `request` through the checkpoint at `path`: the loaded
    `bert2.explain.Explainer` (kept for the next batch) and its `Explanation`, or the error."""

    bubble = False

    def __init__(self, request: int, path: str, explainer: Any = None, result: Any = None, error: str = "") -> None:
        super().__init__()
        self.request, self.path, self.explainer, self.result, self.error = request, path, explainer, result, error
