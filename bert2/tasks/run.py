"""The one run harness: what pretraining, fine-tuning, distillation and pruning do before and around training.

    run = Run(cfg, "finetune", callbacks, stop_event, resume=..., report_to=cfg.finetune.report_to)
    return run.execute(lambda: build_my_trainer(run))

In order, `Run(...)`:
  1. the machine ([runtime]): torch threads, the device, torchrun's process group;
  2. what to resume, if anything: the most recently written resumable checkpoint of the kind, or a path; its
     resume files are checked now, before minutes of data preparation;
  3. the kind directory's lock (checkpoint/lock.py): one writer at a time, a second one refused at once;
  4. the run's identity: a resume continues its checkpoint's run, anything else is a new run;
  5. where events go: metrics.jsonl (training/runlog.py) and the reporters of `report_to` (csv, tensorboard).
`run.say(...)` reports set-up progress as LogEvents and honours a stop request between stages (a stop before the
first step ends the run with nothing to save); `run.context()` is what the Trainer needs; `run.execute(build)`
builds the trainer, trains, and always releases the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import checkpoint as ckpt
from ..checkpoint.layout import new_run_id, run_of
from ..checkpoint.lock import KindLock
from ..checkpoint.train_state import check_resumable
from ..config import STAGES, Config, ModelConfig
from ..errors import CheckpointError
from ..training import runlog
from ..training.distributed import DistInfo, init_distributed, resolve_device
from ..training.events import Callback, DoneEvent, LogEvent
from ..training.precision import resolve as resolve_precision
from ..training.reporters import reporters_for
from ..training.trainer import RunContext, Trainer


def _step(path: Path) -> int | str:
    try:
        step = ckpt.read_state(path).get("step")
    except CheckpointError:
        return "?"
    return step if isinstance(step, int) else "?"


class StoppedDuringSetup(Exception):
    """A stop request arrived while the run was being prepared (before any step): nothing to save."""


class Run:
    """One training run of `kind` (pretrain | finetune): set up as the module docstring says."""

    def __init__(
        self,
        cfg: Config,
        kind: str,
        callbacks: list[Callback] | None = None,
        stop_event: threading.Event | None = None,
        resume: bool | str | Path = False,
        trust_checkpoint: bool = False,
        report_to: str = "none",
        resumable: Callable[[Path], bool] | None = None,
        what: str = "",
        overwrite: bool = False,
    ):
        self.cfg = cfg
        self.kind = kind
        self.callbacks = list(callbacks or [])
        self.stop_event = stop_event or threading.Event()
        self.trust_checkpoint = trust_checkpoint
        self.kind_dir = ckpt.kind_dir(cfg.paths.root, kind)
        if overwrite and resume:
            raise CheckpointError("--overwrite starts over and --resume continues a run; use one of them")
        r = cfg.runtime
        if r.num_threads > 0:
            torch.set_num_threads(r.num_threads)
        self.device = resolve_device(r.device)
        self.dist: DistInfo = init_distributed(self.device)
        self.resume_path = self._resume_path(resume, resumable, what or kind)
        if self.resume_path is not None:
            check_resumable(self.resume_path, trust_checkpoint)  # before minutes of data preparation
        self.run_id = (run_of(self.resume_path) if self.resume_path is not None else None) or new_run_id()
        self.lock = KindLock(self.kind_dir)
        if self.dist.is_main:
            self.lock.acquire(self.run_id)
            try:
                reporters, where = reporters_for(report_to, self.kind_dir)
                self.callbacks += [runlog.writer(runlog.metrics_file(self.kind_dir)), *reporters]
                if self.lock.stale is not None:
                    self._tell(
                        f"took over {self.kind_dir}'s lock from {self.lock.stale.describe()}, which is no longer "
                        "running"
                    )
                self._announce(overwrite)
                if where:
                    self._tell(where)
            except BaseException:
                self.close()
                raise

    def _resume_path(
        self, resume: bool | str | Path, resumable: Callable[[Path], bool] | None, what: str
    ) -> Path | None:
        if not resume:
            return None
        if resume is True:
            path = ckpt.latest_resumable(self.cfg.paths.root, self.kind, resumable)
            if path is None:
                raise CheckpointError(f"nothing to resume: no complete {what} checkpoint under {self.kind_dir}")
            return path
        return ckpt.resolve(resume)

    def _announce(self, overwrite: bool) -> None:
        """(In the constructor, which a stop request does not interrupt: `execute` honours it.) Say which run this is: a resume (of which run, at which step), a new run beside the earlier ones, or a
        new run after clearing them (--overwrite); nothing of another run is deleted unless asked."""
        root = self.cfg.paths.root
        if self.resume_path is not None:
            step = _step(self.resume_path)
            self._tell(f"resuming run {self.run_id} at step {step} from {self.resume_path}")
            return
        if overwrite:
            removed = ckpt.clear_kind(root, self.kind)
            self._tell(
                f"--overwrite: removed {len(removed)} checkpoint(s) of earlier runs from {self.kind_dir}; new "
                f"run {self.run_id}"
            )
            return
        earlier = ckpt.runs_in(root, self.kind)
        if earlier:
            self._tell(
                f"new run {self.run_id}, beside {len(earlier)} earlier run(s) in {self.kind_dir}: none of their "
                "checkpoints is deleted (--resume continues the latest run, --overwrite clears them)"
            )
        else:
            self._tell(f"new run {self.run_id}")

    # ---- during set-up ------------------------------------------------------------------------------------
    def say(self, message: str, level: str = "info") -> None:
        """A set-up message for every callback (main process only); a stop request ends the set-up here."""
        if self.stop_event.is_set():
            raise StoppedDuringSetup
        self._tell(message, level)

    def _tell(self, message: str, level: str = "info") -> None:
        if self.dist.is_main:
            for cb in self.callbacks:
                cb(LogEvent(level=level, message=message))

    def stage_dirs(self) -> dict[str, Path]:
        """The kind's three stage directories; the main process creates all six on first use."""
        if self.dist.is_main:
            self.cfg.all_stage_dirs()
        return {s: self.cfg.stage_dir(self.kind, s, create=False) for s in STAGES}

    def context(self, model_cfg: ModelConfig) -> RunContext:
        """What the Trainer needs; `runtime.precision` auto is decided here, for this model on this machine."""
        precision = resolve_precision(self.cfg.runtime.precision, self.device, model_cfg.hidden_size)
        if self.cfg.runtime.precision == "auto":
            self.say(f"precision {precision.name} ({precision.reason})")
        return RunContext(
            self.stage_dirs(),
            self.device,
            self.run_id,
            self.dist,
            self.callbacks,
            self.stop_event,
            precision.name,
            self.resume_path,
            self.trust_checkpoint,
            on_finish=self.close,
        )

    def trainer(
        self, model: torch.nn.Module, train_data: Any, task: Any, settings: Any, run_config: dict[str, Any]
    ) -> Trainer:
        return Trainer(model, train_data, task, settings, run_config, self.context(model.config))

    # ---- the whole run ------------------------------------------------------------------------------------
    def execute(self, build: Callable[[], Trainer]) -> DoneEvent:
        """Build the trainer and train; a stop during set-up ends the run cleanly. The lock is released at the
        end, whatever happens."""
        try:
            try:
                trainer = build()
            except StoppedDuringSetup:
                done = DoneEvent(reason="stopped", step=0, message="stopped while preparing; nothing to save")
                for cb in self.callbacks if self.dist.is_main else []:
                    cb(done)
                return done
            return trainer.fit()
        finally:
            self.close()

    def close(self) -> None:
        self.lock.release()
