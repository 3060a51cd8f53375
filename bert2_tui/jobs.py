"""Training jobs for the TUI: what to run, how its events reach the UI, and the bounded run state charts draw from.

Nothing here imports torch at module level. The worker thread calls `run_job`, which imports the trainer lazily;
its events go through an `EventBatcher` that buffers them and hands the app one batch (posted as a `TrainerEvents`
message) at most every ~0.25 s (never a `call_from_thread` per step, which would make the trainer wait for the UI).
`RunState` lives on the UI thread and holds bounded deques, so a long run cannot grow memory or redraw cost without
limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bert2.config import KINDS, Config
from bert2.registry import FINETUNE_TASKS, kind_of
from bert2.training import runlog
from bert2.training.events import CheckpointEvent, DoneEvent, EvalEvent, Event, LogEvent, StartEvent, StepEvent

DEFAULT_PROBE = "The capital of France is [MASK]."
MAX_POINTS = 5000
"""Points kept per chart series; older points fall off the front (charts downsample to their width anyway)."""


# --------------------------------------------------------------------------------------------------- job spec
@dataclass
class JobSpec:
    """One job: pretraining, fine-tuning of `task`, distillation (a student from the [distill] teacher) or head
    pruning of a checkpoint; fresh, resumed, or from a chosen checkpoint."""

    kind: str  # pretrain | finetune | distill | prune
    cfg: Config
    task: str = ""
    """Fine-tuning task (classify, ner, qa, qa-span); ignored for pretraining."""
    resume: bool | str = False
    """True: the latest resumable checkpoint of `kind`; a path: that checkpoint."""
    from_checkpoint: str = ""
    """Fine-tuning: the pretrained checkpoint to start from (empty: the config's default); distillation: the
    teacher (empty: distill.teacher); pruning: the checkpoint to prune (empty: prune.checkpoint)."""
    probes: tuple[str, ...] = (DEFAULT_PROBE,)
    overwrite: bool = False
    """Delete the kind's earlier runs' checkpoints before starting (the Train screen's "clear and start over")."""

    @property
    def short(self) -> str:
        """A few words for the top bar: pretrain, classify, qa-span (resume)."""
        what = self.kind if self.kind in ("pretrain", "distill", "prune") else (self.task or self.cfg.finetune.task)
        return what + (" (resume)" if self.resume else "")

    @property
    def title(self) -> str:
        what = {"pretrain": "pretraining", "distill": "distillation", "prune": "head pruning"}.get(
            self.kind, f"fine-tuning ({self.task or self.cfg.finetune.task})"
        )
        if self.resume:
            what += " (resume" + ("" if self.resume is True else f" from {Path(str(self.resume)).name}") + ")"
        elif self.from_checkpoint:
            what += f" from {Path(self.from_checkpoint).parent.name}/{Path(self.from_checkpoint).name}"
        return what

    def run_dir(self) -> Path:
        """The kind directory this job writes checkpoints (and metrics.jsonl) into; distillation and pruning
        write into the directory of their checkpoint's kind, so the whole saved_model root counts as theirs."""
        if self.kind not in KINDS:
            return Path(self.cfg.paths.root)
        return Path(self.cfg.paths.root).joinpath(*KINDS[self.kind])


_HEAVY_LOCK = threading.Lock()
_heavy_done = False


def import_heavy() -> None:
    """Import torch, transformers and bert2's model code once, under a lock, from whichever worker comes first.

    Two worker threads importing transformers at the same time (a job and the playground's predictor) can see a
    half-initialised lazy module ("cannot import name 'BertTokenizerFast'"); one lock makes that impossible.
    """
    global _heavy_done
    if _heavy_done:
        return
    with _HEAVY_LOCK:
        if _heavy_done:
            return
        # torch and transformers (seconds): in the first worker that needs them, never before the first frame
        import torch  # noqa: F401
        from transformers import BertTokenizerFast  # noqa: F401

        import bert2.data.tokenizer  # noqa: F401
        import bert2.inference  # noqa: F401
        import bert2.model  # noqa: F401

        _heavy_done = True


def run_job(spec: JobSpec, callbacks: list[Callable[[Event], None]], stop_event: threading.Event) -> DoneEvent:
    """Run `spec` in the calling thread (a worker); imports the trainer here, never at TUI start-up."""
    import_heavy()
    cfg = spec.cfg.copy()
    if spec.kind == "pretrain":
        from bert2.tasks.pretraining import run_pretraining  # torch: only when a job starts

        return run_pretraining(
            cfg,
            callbacks=callbacks,
            stop_event=stop_event,
            resume=spec.resume,
            probes=tuple(spec.probes),
            overwrite=spec.overwrite,
        )
    if spec.kind == "distill":
        from bert2.compress.distill import run_distillation  # torch: only when a job starts

        if spec.from_checkpoint:
            cfg.distill.teacher = spec.from_checkpoint
        return run_distillation(
            cfg, callbacks=callbacks, stop_event=stop_event, resume=spec.resume, probes=tuple(spec.probes)
        )
    if spec.kind == "prune":
        return run_prune_job(spec, cfg, callbacks, stop_event)
    from bert2.tasks.finetuning import run_finetuning  # torch: only when a job starts

    if spec.task:
        cfg.finetune.task = spec.task
    return run_finetuning(
        cfg,
        callbacks=callbacks,
        stop_event=stop_event,
        resume=spec.resume,
        from_checkpoint=spec.from_checkpoint or None,
        overwrite=spec.overwrite,
    )


PRUNE_FRACTION = 0.25
"""Share of the heads a prune job started from the TUI removes (the CLI's --heads/--fraction choose freely)."""


class _PruneStopped(Exception):
    """Raised from the event callback when the user stops a prune job (run_pruning saves nothing until the end)."""


def run_prune_job(
    spec: JobSpec, cfg: Config, callbacks: list[Callable[[Event], None]], stop_event: threading.Event
) -> DoneEvent:
    """Head pruning as a TUI job: importance, the curve (each point an evaluation, and a step whose x is the
    number of heads masked and whose loss is the held-out loss, so the loss chart draws the curve live), the
    removal and the save; `x` stops it between evaluations, before anything is written."""
    from bert2 import checkpoint as ckpt  # torch: only when a job starts
    from bert2.checkpoint.model_files import load_checkpoint
    from bert2.compress.prune import run_pruning
    from bert2.compress.surgery import heads_present

    source = spec.from_checkpoint or str(ckpt.default_checkpoint(cfg.paths.root, "pretrain"))
    info = load_checkpoint(source, weights=False)
    kind = kind_of(info.task)
    layers, present = info.model_cfg.num_hidden_layers, heads_present(info.model_cfg)
    # A quarter of the heads present, at most all but one per layer, at least one (tiny models have few heads; a
    # model with one head per layer gets run_pruning's own "none can be removed").
    heads = max(1, min(round(PRUNE_FRACTION * present), present - layers))
    started = time.time()

    def relay(ev: Event) -> None:
        if stop_event.is_set() and not isinstance(ev, DoneEvent):
            raise _PruneStopped()
        if isinstance(ev, EvalEvent):
            loss = float(ev.metrics.get("loss", float("nan")))
            step = StepEvent(
                step=ev.step,
                epoch=0,
                loss=loss,
                parts={},
                lr=0.0,
                tokens_per_s=0.0,
                elapsed_s=time.time() - started,
                eta_s=0.0,
            )
            for cb in callbacks:
                cb(step)
        for cb in callbacks:
            cb(ev)

    for cb in callbacks:
        # total_steps: the curve's last point (all heads but one per layer masked), so the bar follows the curve
        cb(
            StartEvent(
                kind=kind,
                task=f"prune {info.task}",
                total_steps=present - layers,
                start_step=0,
                device=cfg.runtime.device,
                num_parameters=0,
                run_dir=str(Path(source).parent),
                info={"checkpoint": source, "heads": heads},
            )
        )
        cb(
            LogEvent(
                level="info",
                message=f"pruning {heads} of the {present} heads of {source}; the loss chart's x "
                "axis is the number of heads masked (the curve), not training steps",
            )
        )
    try:
        result = run_pruning(cfg, source, heads=heads, callbacks=[relay])
    except _PruneStopped:
        done = DoneEvent(
            reason="stopped", step=0, message="stopped before the pruned model was saved; nothing was written"
        )
        for cb in callbacks:
            cb(done)
        return done
    if result.path is not None:  # so the Checkpoints screen reads the directories again
        for cb in callbacks:
            cb(CheckpointEvent(step=heads, path=str(result.path), stage=Path(result.path).parent.name))
    return DoneEvent(reason="completed", step=heads, message=str(result.path or ""))


# ------------------------------------------------------------------------------------------ event transport
class EventBatcher:
    """Trainer callback that buffers events and hands them to `post` in time batches.

    Step events wait at most `interval` seconds (a timer thread flushes a half-full window, so the last step of
    a burst is not held back by a long evaluation); start, eval, checkpoint, log and done events flush at once.
    """

    URGENT = (StartEvent, EvalEvent, CheckpointEvent, LogEvent, DoneEvent)

    def __init__(self, post: Callable[[list[Event]], Any], interval: float = 0.25):
        self.post = post
        self.interval = interval
        self._buffer: list[Event] = []
        self._lock = threading.Lock()
        self._last_flush = 0.0
        self._timer: threading.Timer | None = None
        self.posted = 0  # number of post() calls (tests check batching)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._buffer.append(event)
            due = isinstance(event, self.URGENT) or time.monotonic() - self._last_flush >= self.interval
            if not due and self._timer is None:
                wait = max(0.01, self.interval - (time.monotonic() - self._last_flush))
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if due:
            self.flush()

    def flush(self) -> None:
        # Swap and post under one lock: the timer thread and the trainer thread never post out of order.
        with self._lock:
            events, self._buffer = self._buffer, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._last_flush = time.monotonic()
            if events:
                self.posted += 1
                self.post(events)

    def close(self) -> None:
        self.flush()


# --------------------------------------------------------------------------------------------- run state
@dataclass
class LogLine:
    seq: int
    time: float
    level: str  # info | warning | error | success
    text: str


@dataclass
class RunState:
    """What the Train screen shows, fed by events on the UI thread. Every container is bounded."""

    kind: str = ""
    task: str = ""
    device: str = ""
    num_parameters: int = 0
    run_dir: str = ""
    status: str = "idle"  # idle | preparing | running | stopping | done | stopped | error | history
    status_text: str = ""
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    tokens_per_s: float = 0.0
    elapsed_s: float = 0.0
    eta_s: float = 0.0
    series: dict[str, deque] = field(default_factory=dict)
    """Loss series: "loss" (total) and the task's parts (mlm, nsp, ...), each a deque of (step, value)."""
    lr: deque = field(default_factory=lambda: deque(maxlen=MAX_POINTS))
    evals: deque = field(default_factory=lambda: deque(maxlen=500))
    """(step, metrics, is_best) per evaluation."""
    probes: list[dict[str, Any]] = field(default_factory=list)
    probe_step: int = -1
    log: deque = field(default_factory=lambda: deque(maxlen=1000))
    baselines: dict[str, float] = field(default_factory=dict)
    """The run's loss baselines (StartEvent info: mlm_loss = unigram entropy, nsp_loss = ln 2; bert2.microscope)."""
    probe_history: deque = field(default_factory=lambda: deque(maxlen=500))
    """(step, probes) of every evaluation: the probe time-lapse."""
    heads: deque = field(default_factory=lambda: deque(maxlen=500))
    """(step, heads) of every evaluation that scored the attention heads (bert2.microscope)."""
    started: float = 0.0
    """Time of the StartEvent that began this run (a resume keeps its run's); the overlay picker marks that run."""
    run_id: str = ""
    version: int = 0
    """Bumped on every change; views redraw only when it moved (the dirty flag)."""
    _seq: int = 0

    # ---- helpers
    def add_log(self, text: str, level: str = "info", at: float | None = None) -> None:
        self._seq += 1
        self.log.append(LogLine(self._seq, time.time() if at is None else at, level, text))
        self.version += 1

    def clear_run(self) -> None:
        self.series = {}
        self.lr = deque(maxlen=MAX_POINTS)
        self.evals = deque(maxlen=500)
        self.probes, self.probe_step = [], -1
        self.baselines = {}
        self.probe_history = deque(maxlen=500)
        self.heads = deque(maxlen=500)
        self.step = self.total_steps = self.epoch = 0
        self.tokens_per_s = self.elapsed_s = self.eta_s = 0.0
        self.version += 1

    def _series(self, name: str) -> deque:
        s = self.series.get(name)
        if s is None:
            s = self.series[name] = deque(maxlen=MAX_POINTS)
        return s

    def _truncate_after(self, step: int) -> None:
        """Drop points beyond `step` (a resume continues from there; later points of a lost run are stale)."""
        for name, s in list(self.series.items()):
            self.series[name] = deque(((x, y) for x, y in s if x <= step), maxlen=MAX_POINTS)
        self.lr = deque(((x, y) for x, y in self.lr if x <= step), maxlen=MAX_POINTS)
        self.evals = deque((e for e in self.evals if e[0] <= step), maxlen=500)
        self.probe_history = deque((e for e in self.probe_history if e[0] <= step), maxlen=500)
        self.heads = deque((e for e in self.heads if e[0] <= step), maxlen=500)

    # ---- events
    def apply(self, ev: Event, live: bool = True) -> None:
        if isinstance(ev, StartEvent):
            same_run = ev.run_id == self.run_id if ev.run_id else ev.kind == self.kind  # older files: no ids
            if ev.start_step > 0 and same_run:
                self._truncate_after(ev.start_step)
            else:
                self.clear_run()
                self.started = ev.time
            self.run_id = ev.run_id
            lines = (ev.info or {}).get("baselines")
            if isinstance(lines, dict):
                self.baselines = {k: float(v) for k, v in lines.items() if isinstance(v, (int, float))}
            self.kind, self.task, self.device = ev.kind, ev.task, ev.device
            self.num_parameters, self.run_dir = ev.num_parameters, ev.run_dir
            self.total_steps, self.step = ev.total_steps, ev.start_step
            if live:
                self.status = "running"
            how = f"resuming at step {ev.start_step}" if ev.start_step else "starting at step 0"
            self.add_log(
                f"{ev.kind} ({ev.task}) started on {ev.device}, {ev.num_parameters / 1e6:.2f}M parameters, {how}",
                "info",
                ev.time,
            )
        elif isinstance(ev, StepEvent):
            self._series("loss").append((ev.step, ev.loss))
            for k, v in (ev.parts or {}).items():
                self._series(k).append((ev.step, v))
            self.lr.append((ev.step, ev.lr))
            self.step, self.epoch = ev.step, ev.epoch
            self.tokens_per_s, self.elapsed_s, self.eta_s = ev.tokens_per_s, ev.elapsed_s, ev.eta_s
        elif isinstance(ev, EvalEvent):
            self.evals.append((ev.step, dict(ev.metrics), ev.is_best))
            if ev.probes:
                self.probes, self.probe_step = list(ev.probes), ev.step
                self.probe_history.append((ev.step, list(ev.probes)))
            if ev.heads:
                self.heads.append((ev.step, list(ev.heads)))
            names = iter_metric_names([(ev.step, ev.metrics, ev.is_best)], limit=4)
            shown = "  ".join(f"{k} {ev.metrics[k]:.4g}" for k in names if isinstance(ev.metrics[k], (int, float)))
            self.add_log(
                f"eval @ {ev.step}: {shown}" + ("  ★ best improved" if ev.is_best else ""),
                "success" if ev.is_best else "info",
                ev.time,
            )
        elif isinstance(ev, CheckpointEvent):
            self.add_log(f"checkpoint saved ({ev.stage}) @ {ev.step}: {_short_path(ev.path)}", "info", ev.time)
        elif isinstance(ev, LogEvent):
            self.add_log(ev.message, ev.level, ev.time)
        elif isinstance(ev, DoneEvent):
            self.step = max(self.step, ev.step)
            if live:
                self.status = {"completed": "done", "time_budget": "done", "stopped": "stopped"}.get(ev.reason, "error")
            level = "success" if ev.reason in ("completed", "time_budget", "stopped") else "error"
            self.add_log(f"done: {ev.message or ev.reason}", level, ev.time)
        self.version += 1


def _short_path(path: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[-3:]) if len(parts) > 3 else path


# ----------------------------------------------------------------------------------------- metrics.jsonl
def metrics_files(root: str | Path) -> list[Path]:
    return [runlog.metrics_file(Path(root).joinpath(*parts)) for parts in KINDS.values()]


def replay(run: runlog.Run) -> RunState:
    """A RunState with a run's events applied, as the Train screen shows a run that is not this app's job."""
    state = RunState()
    for ev in run.events:
        state.apply(ev, live=False)
    state.status = "history"
    done = run.done
    state.status_text = (
        f"last run: {done.reason} at step {done.step}" if done else f"last run: interrupted at step {state.step}"
    )
    return state


def load_last_run(root: str | Path) -> tuple[RunState, str]:
    """A RunState replayed from the newest run in either metrics.jsonl under `root`, and the file it came from."""
    best: tuple[float, runlog.Run, str] | None = None
    for path in metrics_files(root):
        if not path.is_file():
            continue
        run = runlog.last_run(runlog.read_events(path))
        if run is not None and (best is None or run.segments[-1].start.time > best[0]):
            best = (run.segments[-1].start.time, run, str(path))
    if best is None:
        return RunState(), ""
    return replay(best[1]), best[2]


def job_choice_of(state: RunState) -> str:
    """The Train screen's job picker value for a run: "pretrain", or its fine-tuning task."""
    if state.kind == "finetune" and state.task in FINETUNE_TASKS:
        return state.task
    return "pretrain"


@dataclass
class Follower:
    """Following a run another process writes (its kind directory's lock says who): the events its metrics.jsonl
    gains are read every second and applied to the Train screen's state."""

    kind_dir: Path
    pid: int
    command: str
    offset: int = 0

    def describe(self, step: int) -> str:
        return f"running in another process (pid {self.pid}, step {step}): {self.command}"


def iter_metric_names(evals: Iterable[tuple[int, dict[str, float], bool]], limit: int = 6) -> list[str]:
    """Metric columns for the eval table, most useful first."""
    preferred = [
        "loss",
        "mlm_accuracy",
        "perplexity",
        "nsp_accuracy",
        "accuracy",
        "f1_macro",
        "f1",
        "exact_match",
        "bleu",
        "rougeL",
        "f1_weighted",
        "mlm_loss",
        "nsp_loss",
    ]
    seen: list[str] = []
    for _, metrics, _ in evals:
        for k in metrics:
            if k not in seen:
                seen.append(k)
    ordered = [k for k in preferred if k in seen] + [k for k in seen if k not in preferred]
    return ordered[:limit]
