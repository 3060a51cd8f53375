"""bert2-tui: the Textual workbench of bert2.

Five screens as app modes, switched with 1-5: Config, Train, Checkpoints, Playground, Inside (see `registry`). The app
owns the shared state (config, job, run state): screens and workers post messages (see `messages`) that it
handles, and it posts to a screen when that screen's data changed. The trainer runs in one thread worker at a
time; its events arrive batched as `TrainerEvents` messages and are folded into a `RunState` that the Train
screen draws from. Nothing heavy is imported here: torch loads inside the workers, so the first frame appears in
well under a second.

    bert2-tui [--config FILE] [--measure-startup]
    python -m bert2_tui [--config FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import App, ScreenStackError
from textual.binding import Binding
from textual.widgets import Input, TextArea
from textual.worker import Worker, WorkerState

from bert2.config import Config, ConfigError, FieldError, load_config
from bert2.errors import Bert2Error
from bert2.training.events import CheckpointEvent, DoneEvent, StartEvent

from . import STARTED as _IMPORTED_AT  # perf_counter when the package was first imported
from .commands import Bert2Commands
from .jobs import (
    DEFAULT_PROBE,
    EventBatcher,
    Follower,
    JobSpec,
    RunState,
    job_choice_of,
    load_last_run,
    replay,
    run_job,
)
from .messages import (
    CheckpointDeleted,
    CheckpointsChanged,
    ConfigChanged,
    ConfigPathChanged,
    DistillFrom,
    FinetuneFrom,
    HistoryLoaded,
    JobChoiceChanged,
    JobShown,
    PlaygroundCheckpointChanged,
    ProbesChanged,
    PruneFrom,
    ReloadHistory,
    ResumeFrom,
    StartJob,
    StopJob,
    TrainerEvents,
    UseInPlayground,
)
from .registry import SCREENS
from .screens.dialogs import BusyScreen, ChoiceScreen, ConfirmScreen, HelpScreen
from .widgets.nav import NavBar

if TYPE_CHECKING:
    from bert2.checkpoint import CheckpointInfo

WATCH_INTERVAL_S = 1.0
"""How often the app looks for another process writing its directories (two flock probes: microseconds)."""


def describe_checkpoint(path: Path) -> str:
    """ "run 20261202-... at step 451 (checkpoint/step-00000451)": which run and step a resume continues."""
    from bert2 import checkpoint as ckpt

    try:
        state = ckpt.read_state(path)
    except Bert2Error:
        return str(path)
    run = state.get("run_id") or "of an older bert2"
    return f"run {run} at step {state.get('step', '?')} ({path.parent.name}/{path.name})"


def _step_of(path: Path) -> int:
    from bert2 import checkpoint as ckpt

    try:
        step = ckpt.read_state(path).get("step", 0)
    except Bert2Error:
        return 0
    return step if isinstance(step, int) else 0


def _task_of(path: Path) -> str:
    from bert2 import checkpoint as ckpt

    try:
        return str(ckpt.read_state(path).get("task", ""))
    except Bert2Error:
        return ""


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), so start-up time includes the interpreter's own."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / ticks)
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Job:
    """The one job the app may run at a time."""

    id: int
    spec: JobSpec
    stop_event: threading.Event = field(default_factory=threading.Event)
    worker: Worker | None = None
    state: str = "preparing"  # preparing | running | stopping | finished
    batcher: EventBatcher | None = None
    started: bool = False
    """The trainer said StartEvent: a failure before it happened while preparing, not at the last run's step."""

    @property
    def active(self) -> bool:
        return self.state != "finished"


class Bert2App(App[int]):
    """The workbench. `config` is the working config: the Config screen edits it, jobs copy it when they start."""

    CSS_PATH = "app.tcss"
    TITLE = "bert2"
    MODES = {entry.mode: entry.new_screen for entry in SCREENS}
    DEFAULT_MODE = "train"
    COMMANDS = App.COMMANDS | {Bert2Commands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        *(entry.binding() for entry in SCREENS),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Show every key"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit (asks first while a job runs)"),
        Binding(
            "ctrl+c",
            "quit(True)",
            "Quit",
            id="app.quit_ctrl_c",
            show=False,
            priority=True,
            tooltip="Quit (asks first while a job runs; a second ctrl+c confirms)",
        ),
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            id="app.quit_ctrl_q",
            show=False,
            priority=True,
            tooltip="Quit (asks first while a job runs)",
        ),
        Binding(
            "escape",
            "leave_input",
            "Leave field",
            id="app.leave_input",
            tooltip="Leave the text field so the single-letter and number keys work again",
        ),
    ]

    def __init__(
        self,
        config: Config | None = None,
        config_path: str | None = None,
        measure_startup: bool = False,
        load_history: bool = True,
    ):
        super().__init__()
        self.config: Config = config or Config()
        """The last valid config of the Config screen's form (`ConfigChanged`)."""
        self.config_errors: list[FieldError] = []
        """What is wrong with the Config screen's form now (a job does not start while there is something)."""
        self.config_path = config_path or ""
        self.measure_startup = measure_startup
        self.startup: dict[str, Any] = {}
        self.run_state = RunState()
        self.job: Job | None = None
        self._job_ids = 0
        self.probes: tuple[str, ...] = (DEFAULT_PROBE,)
        self.job_choice = "pretrain"
        """The Train screen's job picker: "pretrain" or a fine-tuning task."""
        self.playground_path = ""
        self._quit_pending = False
        self._busy: BusyScreen | None = None
        self._quit_confirm: ConfirmScreen | None = None
        self._load_history_on_start = load_history
        self._nav_key: tuple = ()
        self.history_path = ""
        self.follower: Follower | None = None
        """Set while the Train screen follows a run of another process."""
        self.batches_received = 0
        self.events_received = 0

    # --------------------------------------------------------------------------------------------- life
    def on_mount(self) -> None:
        self.set_interval(0.5, self.refresh_nav, name="nav")
        if self._load_history_on_start and not self.measure_startup:
            self.load_history()
            self.set_interval(WATCH_INTERVAL_S, self.watch_other_writers, name="writers")

    def on_ready(self) -> None:
        if self.measure_startup:
            self.startup = {
                "first_frame_s": round(time.perf_counter() - _IMPORTED_AT, 4),
                "since_process_start_s": process_age_s(),
                "torch_imported": "torch" in sys.modules,
            }
            self.exit(0)

    def on_unmount(self) -> None:
        # Whatever ends the app, a running trainer must stop (it saves a checkpoint and returns); otherwise the
        # interpreter would wait for the worker thread at exit.
        if self.job is not None and self.job.active:
            self.job.stop_event.set()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every toast is plain text: they carry [MASK], paths and error messages, whose square brackets Textual
        would read as markup and drop (Widget.notify passes markup=True by default, so it is ignored here)."""
        if timeout is None:
            super().notify(message, title=title, severity=severity, markup=False)
        else:
            super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    # ------------------------------------------------------------------------------------------ screens
    @property
    def job_active(self) -> bool:
        return self.job is not None and self.job.active

    def view(self, mode: str) -> Any:
        """The base screen of `mode` if it was created already, else None."""
        stack = self._screen_stacks.get(mode) or []
        return stack[0] if stack else None

    async def action_goto(self, mode: str) -> None:
        await self.switch_screen_mode(mode)

    async def switch_screen_mode(self, mode: str) -> None:
        if self.current_mode != mode:
            await self.switch_mode(mode)
        self.refresh_nav()

    async def run_screen_action(self, mode: str, action: str) -> None:
        await self.switch_screen_mode(mode)
        await self.screen.run_action(action)

    def action_leave_input(self) -> None:
        self.set_focus(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_input":  # only shown (and active) while typing in a text field
            return isinstance(self.focused, (Input, TextArea))
        return True

    def help_sections(self) -> list[tuple[str, list[Binding]]]:
        sections: list[tuple[str, list[Binding]]] = [
            (
                "Everywhere",
                [
                    b
                    for b in self.BINDINGS  # type: ignore
                    if isinstance(b, Binding)
                ],
            )
        ]
        for entry in SCREENS:
            sections.append(
                (
                    f"{entry.title} screen ({entry.key})",
                    [b for b in entry.screen_class().BINDINGS if isinstance(b, Binding)],
                )
            )
        for entry in SCREENS:  # keys of focusable widgets inside a screen (the playground's attention map)
            for title, bindings in getattr(entry.screen_class(), "WIDGET_BINDINGS", {}).items():
                sections.append((title, [b for b in bindings if isinstance(b, Binding)]))
        sections.append(
            (
                "Command palette",
                [Binding("ctrl+p", "command_palette", "Command palette", tooltip="Search every action by name")],
            )
        )
        return sections

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections()))

    def refresh_nav(self) -> None:
        """Job status in the top bar of the visible screen (every 0.5 s and on changes)."""
        try:
            screen = self.screen
        except ScreenStackError:  # shutting down
            return
        st = self.run_state
        job = self.job
        key = (id(screen), st.status, st.step, st.total_steps, job.id if job else 0, self.job_active)
        if key == self._nav_key:
            return
        self._nav_key = key
        text = Text()
        if self.follower is not None and st.status == "external":
            text.append("● ", style="magenta")
            text.append(f"{st.kind or 'a run'} in pid {self.follower.pid}")
            if st.total_steps:
                text.append(f" {st.step}/{st.total_steps}", style="bold")
        elif job is not None and job.active:
            style = "yellow" if st.status in ("preparing", "stopping") else "green"
            text.append("● ", style=style)
            text.append(f"{job.spec.short}: {st.status}")
            if st.total_steps:
                text.append(f" {st.step}/{st.total_steps}", style="bold")
        elif st.status in ("done", "stopped", "error"):
            text.append(
                {"done": "✓ ", "stopped": "■ ", "error": "✗ "}[st.status],
                style="bold red" if st.status == "error" else "green",
            )
            text.append(
                f"{st.status} while preparing"
                if st.status == "error" and job is not None and not job.started
                else f"{st.status} at step {st.step}"
            )
        else:
            text.append("○ idle", style="dim")
        for nav in screen.query(NavBar):
            nav.set_job(text)

    # ------------------------------------------------------------------------------------------- history
    def load_history(self) -> None:
        if self.job_active:
            self.notify("a job is running; its live data is already shown", severity="warning")
            return
        self._history_worker(self.config.paths.root)

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def _history_worker(self, root: str) -> None:
        state, path = load_last_run(root)
        self.post_message(HistoryLoaded(state, path))

    def on_reload_history(self, message: ReloadHistory) -> None:
        self.load_history()

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        if self.job_active or self.follower is not None or not message.path:
            return
        self.run_state = message.state
        self.history_path = message.path
        last = self.run_state.log[-1].time if self.run_state.log else None  # no wall clock: stable snapshots
        self.run_state.add_log(f"loaded the last run from {message.path}", "info", at=last)
        self.show_job(job_choice_of(self.run_state))
        self.refresh_nav()

    def show_job(self, choice: str) -> None:
        """The job picker, `s`, `r` and `e` follow the run on screen (a job, the last run, another process's)."""
        self.job_choice = choice
        train = self.view("train")
        if train is not None:
            train.post_message(JobShown(choice))

    # ------------------------------------------------------------------------------ another process's run
    def other_writer(self, spec: JobSpec) -> str:
        """Why `spec` cannot start now because another process writes its kind directory ("" when none does)."""
        from bert2.checkpoint.lock import holder  # stdlib only: cheap

        who = holder(spec.run_dir())
        if who is None or who.pid == os.getpid():
            return ""
        return f"{spec.run_dir()} is being written by {who.describe()}; wait for it or stop it first"

    def watch_other_writers(self) -> None:
        """Every second while this app runs no job: is another process (a `bert2 quick` in another terminal)
        training into these directories? Then the Train screen follows its metrics.jsonl live."""
        if self.job_active:
            return
        from bert2.checkpoint.lock import holder
        from bert2.config import KINDS
        from bert2.training import runlog

        for parts in KINDS.values():
            kind_dir = Path(self.config.paths.root).joinpath(*parts)
            who = holder(kind_dir)
            if who is None or who.pid == os.getpid():
                continue
            follower = self.follower
            if follower is None or follower.kind_dir != kind_dir or follower.pid != who.pid:
                self._start_following(kind_dir, who.pid, who.command)
                return
            events, follower.offset = runlog.read_new(runlog.metrics_file(kind_dir), follower.offset)
            for ev in events:
                self.run_state.apply(ev, live=False)
            self.run_state.status = "external"
            self.run_state.status_text = follower.describe(self.run_state.step)
            self.run_state.version += 1
            if any(isinstance(ev, CheckpointEvent) for ev in events):
                self.checkpoints_changed()
            self.refresh_nav()
            return
        if self.follower is not None:  # the other process ended: show its run as history
            pid = self.follower.pid
            self.follower = None
            self.load_history()
            self.notify(f"the run of process {pid} ended", title="Train")

    def _start_following(self, kind_dir: Path, pid: int, command: str) -> None:
        from bert2.training import runlog

        path = runlog.metrics_file(kind_dir)
        events = runlog.read_events(path)
        offset = path.stat().st_size if path.is_file() else 0
        run = runlog.last_run(events)
        self.follower = Follower(kind_dir, pid, command, offset)
        self.run_state = replay(run) if run is not None else RunState()
        self.run_state.status = "external"
        self.run_state.status_text = self.follower.describe(self.run_state.step)
        self.run_state.add_log(f"following the run of process {pid} ({command}) in {kind_dir}", "info")
        self.show_job(job_choice_of(self.run_state))
        self.refresh_nav()

    # -------------------------------------------------------------------------------------------- config
    def on_config_changed(self, message: ConfigChanged) -> None:
        self.config_errors = list(message.errors)
        if message.config is not None:
            self.config = message.config

    def on_config_path_changed(self, message: ConfigPathChanged) -> None:
        self.config_path = message.path

    def on_probes_changed(self, message: ProbesChanged) -> None:
        self.probes = message.probes

    def on_job_choice_changed(self, message: JobChoiceChanged) -> None:
        self.job_choice = message.choice

    # ---------------------------------------------------------------------------------------------- jobs
    def on_start_job(self, message: StartJob) -> None:
        self.start_selected(message.choice, resume=message.resume)

    def on_stop_job(self, message: StopJob) -> None:
        self.stop_job()

    def start_selected(self, choice: str, resume: bool = False, ask: bool = True) -> bool:
        """Start (or resume) pretraining (`choice` = pretrain), distillation (distill), head pruning (prune) or
        fine-tuning of task `choice`. When the kind's directories already hold runs, `ask` how to start."""
        if self.job_active:  # before any question: a running job answers every start the same way
            return self.start_job(
                JobSpec(choice if choice in ("pretrain", "distill", "prune") else "finetune", self.config, task=choice)
            )
        if choice in ("pretrain", "distill"):
            spec = JobSpec(choice, self.config, resume=resume, probes=self.probes)
        elif choice == "prune":
            if resume:
                self.notify(
                    "a pruning job has nothing to resume; press s to prune again", severity="warning", title="Resume"
                )
                return False
            spec = JobSpec("prune", self.config)
        else:
            spec = JobSpec("finetune", self.config, task=choice, resume=resume)
        if spec.kind not in ("pretrain", "finetune"):  # distillation finds its own student; pruning makes one
            return self.start_job(spec)
        from bert2 import checkpoint as ckpt  # ~25 ms: not before the first frame

        root = self.config.paths.root
        latest = ckpt.latest_resumable(root, spec.kind)
        if resume:
            if latest is None:
                self.notify(
                    f"nothing to resume: no complete checkpoint under {ckpt.kind_dir(root, spec.kind)}",
                    severity="warning",
                    title="Resume",
                )
                return False
            self.notify(f"resuming {describe_checkpoint(latest)}", title="Resume")
            return self.start_job(spec)
        if ask:
            earlier = ckpt.runs_in(root, spec.kind)
            if earlier:
                self.ask_how_to_start(spec, earlier, latest)
                return False
        return self.start_job(spec)

    def ask_how_to_start(self, spec: JobSpec, earlier: dict[str, list[Path]], latest: Path | None) -> None:
        """The kind's directories already hold runs: resume the latest, start a new run beside them, or clear them
        and start over (the only way the TUI deletes another run's checkpoints besides the browser's d)."""
        checkpoints = sum(len(v) for v in earlier.values())
        options: list[tuple[str, Any]] = []
        resumable_task = _task_of(latest) if latest is not None else ""
        message = "A new run never deletes another run's checkpoints; only 'clear' does."
        if latest is not None and (spec.kind == "pretrain" or resumable_task == spec.task):
            section = self.config.pretrain if spec.kind == "pretrain" else self.config.finetune
            if _step_of(latest) < section.max_steps or section.minutes > 0:
                options.append(("resume", f"Resume it: {describe_checkpoint(latest)}"))
            else:  # resuming would stop at once: say why it is not offered
                message = (
                    f"The latest run ended at step {_step_of(latest)}, {spec.kind}.max_steps; raise it to "
                    f"resume that run. " + message
                )
        options.append(("new", f"Start a new run beside it (the {len(earlier)} earlier run(s) stay as they are)"))
        options.append(
            ("clear", f"Clear it and start over (deletes {checkpoints} checkpoint(s) of {len(earlier)} run(s))")
        )

        def answer(choice: str | None) -> None:
            if choice == "resume":
                self.start_selected(spec.task if spec.kind == "finetune" else "pretrain", resume=True)
            elif choice in ("new", "clear"):
                spec.overwrite = choice == "clear"
                self.start_job(spec)

        self.push_screen(
            ChoiceScreen(
                f"{spec.title}: saved_model already holds {len(earlier)} run(s) of this kind",
                options,
                message=message,
                highlight=options[0][0],
            ),
            answer,
        )

    def start_job(self, spec: JobSpec) -> bool:
        """Start `spec` unless a job is running; the only way a worker is ever started."""
        if self.job_active:
            self.notify(
                "a job is already running; stop it first (x on the Train screen)", severity="warning", title="Train"
            )
            return False
        other = self.other_writer(spec)
        if other:
            self.notify(other, severity="warning", title="Train")
            return False
        errors = self.config_errors
        if errors:
            self.notify(
                f"the config has {len(errors)} error(s); fix them on the Config screen (1) first: "
                + "; ".join(map(str, errors[:2])),
                severity="error",
                title="Train",
            )
            return False
        self._job_ids += 1
        job = Job(self._job_ids, spec)
        self.job = job
        self.run_state.status = "preparing"
        self.run_state.status_text = ""
        self.run_state.add_log(f"starting {spec.title}…", "info")
        job.worker = self._train_worker(job)
        self.refresh_nav()
        self.follower = None
        self.show_job(spec.kind if spec.kind != "finetune" else (spec.task or self.config.finetune.task))
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="train", name="train", description="training job")
    def _train_worker(self, job: Job) -> DoneEvent:
        """Runs in a worker thread: the real trainer, reporting through batched post_message calls."""
        batcher = EventBatcher(lambda events: self.post_message(TrainerEvents(job.id, events)))
        job.batcher = batcher
        try:
            return run_job(job.spec, [batcher], job.stop_event)
        finally:
            batcher.close()  # everything the trainer said arrives before the worker's state change

    def on_trainer_events(self, message: TrainerEvents) -> None:
        job = self.job
        if job is None or message.job_id != job.id:
            return
        self.batches_received += 1
        self.events_received += len(message.events)
        saved = False
        for ev in message.events:
            if isinstance(ev, StartEvent) and job.state == "preparing":
                job.state = "running"
                job.started = True
            self.run_state.apply(ev)
            if isinstance(ev, CheckpointEvent):
                saved = True
        if job.state == "stopping" and self.run_state.status == "running":
            self.run_state.status = "stopping"
        if saved:
            self.checkpoints_changed()
        self.refresh_nav()

    def checkpoints_changed(self) -> None:
        """Tell the screens that list checkpoints (those created already) to read the directories again."""
        for mode in ("checkpoints", "playground"):
            screen = self.view(mode)
            if screen is not None:
                screen.post_message(CheckpointsChanged())

    def on_checkpoint_deleted(self, message: CheckpointDeleted) -> None:
        self.checkpoints_changed()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "train":
            return
        job = self.job
        if job is None or job.worker is not event.worker:
            return
        state = event.state
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        job.state = "finished"
        st = self.run_state
        if state == WorkerState.SUCCESS:
            done: DoneEvent = event.worker.result
            st.status = {"completed": "done", "time_budget": "done", "stopped": "stopped"}.get(done.reason, "error")
            st.status_text = f"{job.spec.title}: {done.reason} at step {done.step}"
            self.notify(st.status_text, title="Train", severity="error" if st.status == "error" else "information")
        elif state == WorkerState.ERROR:
            exc = event.worker.error
            if isinstance(exc, (Bert2Error, ConfigError)):
                msg = str(exc)
            else:
                msg = f"{type(exc).__name__}: {exc}"
                lines = "".join(traceback.format_exception(exc)).strip().splitlines()
                for line in lines[:1] + ["  …"] + lines[-10:] if len(lines) > 12 else lines:
                    st.add_log(line, "error")
            st.status = "error"
            st.status_text = f"{job.spec.title} failed: {msg}"
            st.add_log(f"error: {msg}", "error")
            self.notify(msg, title=f"{job.spec.title} failed", severity="error", timeout=10)
        else:
            st.status = "stopped"
            st.status_text = f"{job.spec.title}: cancelled"
        st.version += 1
        self.checkpoints_changed()
        self.refresh_nav()
        if self._quit_pending:
            self.exit(0)

    def stop_job(self) -> bool:
        job = self.job
        if job is None or not job.active:
            self.notify("no job is running", severity="warning", title="Stop")
            return False
        if job.state == "stopping":
            return True
        job.state = "stopping"
        job.stop_event.set()
        self.run_state.status = "stopping"
        self.run_state.add_log("stop requested: finishing the current step and saving a checkpoint…", "warning")
        self.refresh_nav()
        return True

    def is_protected(self, path: str) -> bool:
        """True when the running job writes into the directory that holds `path` (never delete those)."""
        if not self.job_active:
            return False
        assert self.job is not None
        run_dir = self.job.spec.run_dir().resolve()
        try:
            Path(path).resolve().relative_to(run_dir)
            return True
        except ValueError:
            return False

    # ----------------------------------------------------------------------------- from the checkpoints screen
    async def on_use_in_playground(self, message: UseInPlayground) -> None:
        self.playground_path = message.path  # the playground selects it when it is shown (mount or resume)
        await self.switch_screen_mode("playground")

    def on_playground_checkpoint_changed(self, message: PlaygroundCheckpointChanged) -> None:
        self.playground_path = message.path

    def on_resume_from(self, message: ResumeFrom) -> None:
        self.resume_from(message.info)

    def on_finetune_from(self, message: FinetuneFrom) -> None:
        self.finetune_from(message.path)

    def resume_from(self, info: CheckpointInfo) -> None:
        if info.kind == "pretrain":
            spec = JobSpec("pretrain", self.config, resume=info.path, probes=self.probes)
        else:
            spec = JobSpec("finetune", self.config, task=info.task or self.config.finetune.task, resume=info.path)
        if self.start_job(spec):
            self.call_later(self.switch_screen_mode, "train")

    def on_distill_from(self, message: DistillFrom) -> None:
        """Distil a smaller student from the selected checkpoint (the teacher); [distill] says how."""
        if self.start_job(JobSpec("distill", self.config, from_checkpoint=message.path, probes=self.probes)):
            self.call_later(self.switch_screen_mode, "train")

    def on_prune_from(self, message: PruneFrom) -> None:
        """Remove the least important quarter of the selected checkpoint's attention heads."""
        if self.start_job(JobSpec("prune", self.config, from_checkpoint=message.path)):
            self.call_later(self.switch_screen_mode, "train")

    def finetune_from(self, path: str) -> None:
        """Fine-tune from `path`: the task picked on the Train screen, else the config's."""
        choice = self.job_choice
        task = choice if choice != "pretrain" else self.config.finetune.task
        if self.start_job(JobSpec("finetune", self.config, task=task, from_checkpoint=path)):
            self.call_later(self.switch_screen_mode, "train")

    # ------------------------------------------------------------------------------------------------ quit
    async def action_quit(self, again_confirms: bool = False) -> None:
        if self._quit_pending:
            return
        if not self.job_active:
            self.exit(0)
            return
        assert self.job is not None
        if self._quit_confirm is not None and self.screen is self._quit_confirm:
            if again_confirms:
                self._quit_confirm.dismiss(True)  # ctrl+c a second time confirms
            return

        def answer(ok: bool | None) -> None:
            if not ok or self.job is None:
                return
            if not self.job.active:
                self.exit(0)
                return
            self._quit_pending = True
            self.stop_job()
            self._busy = BusyScreen("Stopping the job: saving a checkpoint…\nThe app closes when it is written.")
            self.push_screen(self._busy)

        self._quit_confirm = ConfirmScreen(
            f"{self.job.spec.title.capitalize()} is running.\n\nStop it (a checkpoint is saved first) and quit?",
            yes="Stop and quit",
            no="Keep running",
        )
        self.push_screen(self._quit_confirm, answer)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bert2-tui", description="Terminal workbench for bert2: configure, train, browse checkpoints, try models."
    )
    p.add_argument("--config", metavar="FILE", help="TOML config file (default: ./bert2.toml when present)")
    p.add_argument(
        "--measure-startup",
        action="store_true",
        help="print the time to the first frame as JSON and exit (also BERT2_TUI_MEASURE_STARTUP=1)",
    )
    return p


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        sys.stderr.write("bert2-tui: invalid config:\n" + "\n".join(f"  {e}" for e in exc.errors) + "\n")
        return 2
    measure = args.measure_startup or os.environ.get("BERT2_TUI_MEASURE_STARTUP") == "1"
    config_path = args.config or ("bert2.toml" if Path("bert2.toml").is_file() else "")
    app = Bert2App(cfg, config_path=config_path, measure_startup=measure)
    result = app.run()
    if measure:
        sys.stdout.write(json.dumps(app.startup) + "\n")
    return result or 0


if __name__ == "__main__":
    raise SystemExit(main())
