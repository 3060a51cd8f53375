"""The one training loop, for pretraining and fine-tuning alike.

Like minGPT's trainer it knows nothing about BERT: a `Task` turns examples into batches and batches into a loss,
evaluates, and writes its own files (tokenizer, config) into a checkpoint. The trainer owns everything else:
optimizer, schedule, gradient accumulation, precision, torchrun, checkpoints, exact resume, stop requests and
events. It prints nothing; callbacks receive events (bert2.training.events) and decide how to show them.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from .. import checkpoint as ckpt
from ..allocator import tune_allocator
from ..checkpoint.layout import now_iso
from ..checkpoint.model_files import read_weights, write_weights
from ..checkpoint.train_state import has_resume_state, load_resume_state, save_resume_state
from ..checkpoint.validate import check_resume
from ..config import TrainConfig
from ..errors import CheckpointError, TrainingError
from ..microscope import below
from ..model import count_parameters
from .compiling import CompiledStep
from .distributed import DistInfo, all_reduce_mean, all_reduce_sum, broadcast_flag
from .events import Callback, CheckpointEvent, DoneEvent, EvalEvent, Event, LogEvent, StartEvent, StepEvent
from .schedule import Schedule


class Task(Protocol):
    """What the trainer needs from a task (pretraining, classification, QA...)."""

    name: str  # shown in events: mlm+nsp, classify, qa, qa-span
    kind: str  # pretrain | finetune (which three directories)
    best_metric: str  # key of evaluate()'s dict; lower is better unless the task sets greater_is_better = True

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]: ...

    def count(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Normalisers of this micro-batch (e.g. masked tokens, examples), summed over the accumulated batch;
        a "tokens" entry (non-padding tokens) is what tokens/s reports."""

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of this micro-batch already divided by the accumulated totals, so micro-losses add up."""

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    def probes(self, model: nn.Module) -> list[dict[str, Any]]: ...

    def save_files(self, model: nn.Module, directory: Path) -> None:
        """Write config.json, tokenizer files and anything else a checkpoint of this task needs."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class RunContext:
    """Where and as what a run trains: what the run harness (tasks/run.py) prepared for the trainer."""

    stage_dirs: dict[str, Path]
    """checkpoint | best | final -> the directory of that stage for the run's kind."""
    device: torch.device
    run_id: str
    """The run's identity, written into every checkpoint and StartEvent (a resume keeps its run's)."""
    dist: DistInfo = field(default_factory=DistInfo)
    callbacks: list[Callback] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    precision: str = "fp32"
    resume_from: Path | None = None
    trust_checkpoint: bool = False
    """Resume from an older checkpoint's pickled .pt files (checkpoint/train_state.py)."""
    on_finish: Callable[[], None] | None = None
    """Called when fit() returns or raises (the harness releases the kind directory's lock)."""


class _TaskLoss(nn.Module):
    """What DistributedDataParallel wraps: one micro-batch's loss, so a task may call any method of its model
    (`model.loss(...)`, `model.bert(...)`) and torchrun still synchronises the gradients. Its parameters are the
    model's and any the task's loss trains besides (distillation's projection between widths)."""

    def __init__(self, model: nn.Module, task: Task, extra: list[nn.Parameter]):
        super().__init__()
        self.model = model
        self.extra = nn.ParameterList(extra)
        self.task = task

    def forward(
        self, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.task.loss(self.model, batch, totals)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices only; biases, LayerNorm weights and 1-d tensors are not decayed."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_adamw(groups: list[dict[str, Any]], s: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the fused kernel where torch has one for the device (one pass over all parameters instead of
    several per tensor; identical maths)."""
    kwargs = dict(lr=s.learning_rate, betas=(s.adam_beta1, s.adam_beta2), eps=s.adam_epsilon)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(groups, **kwargs)


MEGA_BATCHES = 50  # batches whose examples are sorted by length together


def group_by_length(
    order: torch.Tensor, lengths: torch.Tensor, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """Reorder a random permutation so that each run of `batch_size` examples has similar lengths.

    Why: the collator pads a batch to its longest example, and with random batches of the wiki corpus (mean 97
    tokens, nearly every batch has a 125-token example) a quarter of every step is spent on padding. The
    permutation is cut into mega-batches of 50 batches, each sorted by length (longest first) and its batches put
    back in a random order, as transformers' LengthGroupedSampler does. Randomness stays at the scale of the
    mega-batch; the result depends only on the seed, the epoch and the per-process batch size, never on the
    number of processes, so a resume under torchrun with another process count continues the same order.
    """
    mega = MEGA_BATCHES * batch_size
    out = []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]  # (M,)
        chunk = chunk[torch.argsort(lengths[chunk], descending=True, stable=True)]
        blocks = list(chunk.split(batch_size))
        perm = torch.randperm(len(blocks), generator=generator).tolist()
        if start == 0:  # the epoch's first step sees its longest batch: an out-of-memory shows up at once
            perm.remove(0)
            perm.insert(0, 0)
        out.extend(blocks[i] for i in perm)
    return torch.cat(out) if out else order


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        train_data: Sequence[dict[str, Any]],
        task: Task,
        settings: TrainConfig,
        run_config: dict[str, Any],
        ctx: RunContext,
    ):
        tune_allocator()  # reuse big freed buffers instead of page-faulting them in every step
        self.task = task
        self.s = settings
        self.train_data = train_data
        self.ctx = ctx
        self.stage_dirs = ctx.stage_dirs
        self.run_config = run_config
        self.device = ctx.device
        self.dist = ctx.dist
        self.callbacks = list(ctx.callbacks)
        self.stop_event = ctx.stop_event
        self.run_id = ctx.run_id
        self.init = f"resumed from {ctx.resume_from}" if ctx.resume_from is not None else "random initialisation"
        """Where the weights came from, for the start banner (the task's run_* refines it)."""
        self.model = model.to(self.device)
        self.raw_model = self.model  # unwrapped, for saving and evaluation

        global_batch = settings.batch_size * self.dist.world_size
        if len(train_data) < global_batch:
            raise TrainingError(
                f"the training split has {len(train_data)} examples, fewer than one batch of "
                f"{global_batch}; lower batch_size or use more data"
            )

        groups = param_groups(model, settings.weight_decay)
        # A task may train parameters of its loss that are not the model's (distillation's projection between
        # widths): optimised with the model, kept in the task's resume state, never saved as model weights.
        extra = [q for q in getattr(task, "loss_parameters", list)() if q.requires_grad]
        if extra:
            groups.append({"params": extra, "weight_decay": settings.weight_decay})
        self.optimizer = make_adamw(groups, settings, self.device)
        self.schedule = Schedule(
            settings.learning_rate,
            settings.warmup_steps,
            settings.max_steps,
            settings.scheduler,
            settings.minutes * 60.0,
        )
        self.precision = ctx.precision
        self.scaler = (
            torch.amp.GradScaler(self.device.type) if self.precision == "fp16" and self.device.type == "cuda" else None
        )
        # Training position; all of it goes into every checkpoint so a resume continues exactly.
        self.step = 0
        self.epoch = 0
        self.consumed = 0  # examples of the current epoch's global order already used (all ranks together)
        self.elapsed = 0.0
        self.tokens_seen = 0
        self.best: float | None = None
        self.metrics: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.rollbacks = 0
        self.paused_s = 0.0  # wall time a callback asked not to count (e.g. a benchmark's own evaluation)
        self.last_checkpoint: Path | None = None
        self.run_started = now_iso()
        self.baselines: dict[str, float] = {}
        """The task's loss baselines (pretraining: unigram entropy, ln 2), computed once at the start."""
        self.crossed: dict[str, int] = {}
        """metric -> the first evaluation step its value fell below its baseline (kept across resumes)."""

        torch.manual_seed(settings.seed)
        random.seed(settings.seed)
        if ctx.resume_from is not None:
            self._load(ctx.resume_from)
        self.loss_module: nn.Module = _TaskLoss(self.raw_model, task, extra)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.loss_module = DDP(self.loss_module, device_ids=ids)
        self._step_fn = CompiledStep(self.loss_module, self.log) if settings.compile else None

    # ---------------------------------------------------------------------------------------------- events
    def emit(self, event: Event) -> None:
        if self.dist.is_main:
            for cb in self.callbacks:
                cb(event)

    def log(self, message: str, level: str = "info") -> None:
        self.emit(LogEvent(level=level, message=message))

    # ------------------------------------------------------------------------------------------ data order
    def _batches(self) -> Iterator[list[int]]:
        """Index lists for this rank; every rank walks the same seeded permutation, interleaved.

        The position is kept as `consumed` global examples, so a resume with another number of processes still
        continues from the same point of the same permutation (no replayed or skipped examples).
        """
        n, bs, world = len(self.train_data), self.s.batch_size, self.dist.world_size
        lengths = self._lengths() if self.s.group_by_length else None
        while True:
            g = torch.Generator().manual_seed(self.s.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
            if lengths is not None:
                order = group_by_length(order, lengths, bs, g)
            rest = order[self.consumed :]
            mine = rest[self.dist.rank :: world]
            for i in range(len(rest) // (bs * world)):  # full global batches only: ranks stay in step
                self.consumed += bs * world
                yield mine[i * bs : (i + 1) * bs].tolist()
            self.epoch += 1
            self.consumed = 0

    def _lengths(self) -> torch.Tensor | None:
        """Token count of every training example (None when the data has no input_ids to measure)."""
        lengths = getattr(self.train_data, "lengths", None)
        if lengths is not None:
            return torch.as_tensor(lengths)
        try:
            return torch.tensor([len(self.train_data[i]["input_ids"]) for i in range(len(self.train_data))])
        except (KeyError, TypeError, IndexError):
            return None

    # ------------------------------------------------------------------------------------------------ loop
    def _autocast(self):
        if self.precision == "fp32" or self.device.type == "mps":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def _time_up(self) -> bool:
        return self.s.minutes > 0 and self.elapsed >= self.s.minutes * 60.0

    def fit(self) -> DoneEvent:
        try:
            return self._fit()
        finally:
            if self.ctx.on_finish is not None:
                self.ctx.on_finish()

    def _fit(self) -> DoneEvent:
        s = self.s
        budget = s.minutes > 0
        baselines = getattr(self.task, "loss_baselines", None)
        if baselines is not None and self.dist.is_main:
            self.baselines = baselines(self.train_data)
        self.emit(
            StartEvent(
                kind=self.task.kind,
                task=self.task.name,
                total_steps=s.max_steps if not budget else 0,
                start_step=self.step,
                device=str(self.device),
                num_parameters=count_parameters(self.raw_model),
                run_dir=str(self.stage_dirs["checkpoint"].parent),
                info={
                    "world_size": self.dist.world_size,
                    "batch_size": s.batch_size,
                    "grad_accum_steps": s.grad_accum_steps,
                    "precision": self.precision,
                    "minutes": s.minutes,
                    "train_examples": len(self.train_data),
                    "init": self.init,
                    **({"baselines": self.baselines, "crossed": dict(self.crossed)} if self.baselines else {}),
                },
                run_id=self.run_id,
            )
        )
        batches = self._batches()
        self.raw_model.train()
        window_start = time.perf_counter()
        window_steps, window_tokens, window_wait = 0, 0, 0.0
        loss_acc: torch.Tensor | None = None
        parts_acc: dict[str, torch.Tensor] = {}
        reason = "completed"
        run_start = time.perf_counter() - self.elapsed

        while budget or self.step < s.max_steps:
            if broadcast_flag(self.stop_event.is_set(), self.dist, self.device):
                reason = "stopped"
                break
            if budget and broadcast_flag(self._time_up(), self.dist, self.device):
                reason = "time_budget"
                break
            t0 = time.perf_counter()
            micro = [self.task.collate([self.train_data[i] for i in next(batches)]) for _ in range(s.grad_accum_steps)]
            micro = [{k: v.to(self.device, non_blocking=True) for k, v in b.items()} for b in micro]
            window_wait += time.perf_counter() - t0
            totals: dict[str, torch.Tensor] = {}
            for b in micro:
                for k, v in self.task.count(b).items():
                    totals[k] = totals.get(k, 0) + v

            # "tokens" (non-padding tokens) feeds tokens/s; tasks without it count examples.
            window_tokens += int(totals.get("tokens", totals.get("examples", 0)))
            step_loss = torch.zeros((), device=self.device)
            step_parts: dict[str, torch.Tensor] = {}
            for j, b in enumerate(micro):
                sync = j == len(micro) - 1 or not self.dist.enabled
                ctx = contextlib.nullcontext() if sync else self.loss_module.no_sync()
                with ctx:
                    if self._step_fn is not None:
                        loss, parts = self._step_fn(b, totals, self._autocast, self._backward)
                    else:
                        with self._autocast():
                            loss, parts = self.loss_module(b, totals)
                        self._backward(loss)
                step_loss += loss.detach().float()
                for k, v in parts.items():
                    step_parts[k] = step_parts.get(k, 0) + v.detach().float()

            bad = (~torch.isfinite(step_loss)).float().reshape(1)
            if bool(all_reduce_sum(bad, self.dist).item() > 0):  # any rank's NaN poisons everyone's gradients
                self.optimizer.zero_grad(set_to_none=True)
                if s.on_nan == "rollback" and self.last_checkpoint is not None and self.rollbacks < 3:
                    self.rollbacks += 1
                    self.log(
                        f"non-finite loss at step {self.step + 1}; rolled back to {self.last_checkpoint} and "
                        f"skipped the batch (rollback {self.rollbacks} of 3)",
                        "warning",
                    )
                    self._restore_weights(self.last_checkpoint)
                    continue
                reason = "diverged"
                msg = (
                    f"training stopped: the loss became non-finite at step {self.step + 1} (lower the learning "
                    f'rate, or set on_nan = "rollback" in [{self.task.kind}]); best/ was not touched'
                )
                self.log(msg, "error")
                self.emit(DoneEvent(reason=reason, step=self.step, message=msg, final_metrics=self.metrics))
                return DoneEvent(reason=reason, step=self.step, message=msg, final_metrics=self.metrics)

            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            if s.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.loss_module.parameters(), s.max_grad_norm)
            lr = self.schedule.lr(self.step, self.elapsed)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if self.scaler:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            window_steps += 1
            self.elapsed = time.perf_counter() - run_start - self.paused_s
            loss_acc = step_loss if loss_acc is None else loss_acc + step_loss
            for k, v in step_parts.items():
                parts_acc[k] = parts_acc.get(k, 0) + v

            if self.step % s.log_every == 0 or self.step == s.max_steps:
                now = time.perf_counter()
                dt = max(now - window_start, 1e-9)
                tokens = int(all_reduce_sum(torch.tensor([window_tokens], device=self.device), self.dist).item())
                mean_loss = all_reduce_mean(loss_acc / window_steps, self.dist).item()
                parts = {k: all_reduce_mean(v / window_steps, self.dist).item() for k, v in parts_acc.items()}
                self.tokens_seen += tokens
                if budget:
                    eta = max(0.0, s.minutes * 60.0 - self.elapsed)
                else:
                    eta = (s.max_steps - self.step) * dt / window_steps
                self.history.append({"step": self.step, "loss": mean_loss, "lr": lr, **parts})
                self._bound_history()
                self.emit(
                    StepEvent(
                        step=self.step,
                        epoch=self.epoch,
                        loss=mean_loss,
                        parts=parts,
                        lr=lr,
                        tokens_per_s=tokens / dt,
                        elapsed_s=self.elapsed,
                        eta_s=eta,
                        data_wait_s=window_wait,
                    )
                )
                window_start, window_steps, window_tokens, window_wait = now, 0, 0, 0.0
                loss_acc, parts_acc = None, {}

            last = not budget and self.step >= s.max_steps
            if s.eval_every and self.step % s.eval_every == 0 and not last:
                self._evaluate()
            if s.save_every and self.step % s.save_every == 0 and not last:
                self._checkpoint("checkpoint")

        # ---- end of the run: stop request, budget, or max_steps
        if reason == "stopped":
            if self.step > 0:
                self._checkpoint("checkpoint")
            self.log(f"stopped at step {self.step}; resume with --resume (CLI) or r (bert2-tui)")
        else:
            self._evaluate()
            self._checkpoint("final")
        done = DoneEvent(
            reason=reason, step=self.step, final_metrics=dict(self.metrics), message=f"{reason} at step {self.step}"
        )
        self.emit(done)
        return done

    def _bound_history(self, limit: int = 2000) -> None:
        """Keep the log history bounded: halve the resolution of the oldest half when it grows too long."""
        if len(self.history) > limit:
            half = len(self.history) // 2
            self.history = self.history[:half:2] + self.history[half:]

    # ------------------------------------------------------------------------------------------ evaluation
    def _evaluate(self) -> None:
        """Rank 0 evaluates (others wait); a new best is then saved, with every rank agreeing that it was."""
        improved = False
        if self.dist.is_main:
            self.raw_model.eval()
            with torch.no_grad(), self._autocast():
                metrics = self.task.evaluate(self.raw_model)
                probes = self.task.probes(self.raw_model)
                scope = getattr(self.task, "microscope", None)
                heads = (scope(self.raw_model) if scope is not None else {}).get("heads", [])
            self.raw_model.train()
            self.metrics = metrics
            self._note_crossings(metrics)
            value = metrics.get(self.task.best_metric)
            higher = getattr(self.task, "greater_is_better", False)  # NER's entity F1; losses are lower-better
            improved = (
                value is not None
                and math.isfinite(value)
                and (self.best is None or (value > self.best if higher else value < self.best))
            )
            self.history.append({"step": self.step, "eval": metrics})
            self.emit(EvalEvent(step=self.step, metrics=metrics, is_best=improved, probes=probes, heads=heads))
            if improved:
                self.best = value
        if broadcast_flag(improved, self.dist, self.device):
            self._checkpoint("best")

    def _note_crossings(self, metrics: dict[str, float]) -> None:
        """Log, once per run, the step at which a metric first falls below its baseline: from there on the model
        knows more than word frequencies (MLM) or a coin (NSP)."""
        for key, line in self.baselines.items():
            value = metrics.get(key)
            if key in self.crossed or not below(value, line):
                continue
            self.crossed[key] = self.step
            what = "word frequencies alone" if key.startswith("mlm") else "a coin"
            self.log(
                f"step {self.step}: {key} {value:.3f} fell below the baseline {line:.3f} "
                f"({what}): the model now uses context"
            )

    # --------------------------------------------------------------------------------------- checkpoints
    def _state(self) -> dict[str, Any]:
        return {
            "kind": self.task.kind,
            "task": self.task.name,
            "run_id": self.run_id,
            "run_started": self.run_started,
            "epoch": self.epoch,
            "consumed": self.consumed,
            "elapsed_s": round(self.elapsed, 3),
            "tokens_seen": self.tokens_seen,
            "metrics": self.metrics,
            "best_metric": self.task.best_metric,
            "best_value": self.best,
            "baseline_crossed": self.crossed,
            "log_history": self.history,
            "world_size": self.dist.world_size,
            "run_config": self.run_config,
        }

    def _payload(self, directory: Path) -> None:
        write_weights(self.raw_model, directory)
        self.task.save_files(self.raw_model, directory)
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        save_resume_state(
            directory,
            {
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "rng": rng,
                "task": self.task.state_dict(),
            },
        )

    def _checkpoint(self, stage: str) -> None:
        """Rank 0 saves; every rank learns whether that worked, so a failed save stops all of them together."""
        error: TrainingError | None = None
        if self.dist.is_main:
            try:
                self._save(stage)
            except TrainingError as exc:
                error = exc
        if broadcast_flag(error is not None, self.dist, self.device):
            raise error or TrainingError("rank 0 could not write a checkpoint; see its log")

    def _save(self, stage: str) -> Path:
        keep = self.s.keep_last if stage == "checkpoint" else None
        replaced: list[tuple[Path, str | None]] = []
        try:
            path = ckpt.save_checkpoint(
                self.stage_dirs[stage], self.step, self._payload, self._state(), keep, replaced=replaced
            )
        except CheckpointError as exc:
            self.log(str(exc), "error")
            raise TrainingError(f"{exc}; training stopped, existing checkpoints are intact") from exc
        if stage != "checkpoint":
            for old, run in replaced:  # another run's: say so (this run's own older best is just superseded)
                if run != self.run_id:
                    whose = f"run {run}'s" if run else "an earlier run's"
                    self.log(
                        f"{stage}/ holds one checkpoint, this run's: {whose} {old.name} was replaced by {path.name}"
                    )
        if stage in ("checkpoint", "final"):
            self.last_checkpoint = path
        self.emit(CheckpointEvent(step=self.step, path=str(path), stage=stage))
        return path

    def _restore_weights(self, path: Path, optimizer_state: dict[str, Any] | None = None) -> None:
        self.raw_model.load_state_dict(read_weights(path, self.device))
        if optimizer_state is None and has_resume_state(path):
            optimizer_state = load_resume_state(path)["optimizer"]
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)

    def _load(self, path: Path) -> None:
        """Restore weights, optimizer, schedule, RNG and data position from a checkpoint directory."""
        missing = [f for f in ckpt.REQUIRED if not (path / f).is_file()]
        if missing:
            raise CheckpointError(f"cannot resume from {path}: missing {', '.join(missing)}")
        state = ckpt.read_state(path)
        resume = load_resume_state(path, trust_legacy=self.ctx.trust_checkpoint)
        check_resume(path, resume, state, self.optimizer)  # every shape, size and range before anything is restored
        self._restore_weights(path, resume["optimizer"])
        # The schedule is not restored: it follows this run's settings (a resume may raise max_steps).
        if self.scaler and resume.get("scaler"):
            self.scaler.load_state_dict(resume["scaler"])
        rng = resume["rng"]
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.task.load_state_dict(resume.get("task") or {})
        self.step = int(state["step"])
        self.epoch = int(state.get("epoch", 0))
        self.consumed = int(state.get("consumed", 0))
        self.elapsed = float(state.get("elapsed_s", 0.0))
        self.tokens_seen = int(state.get("tokens_seen", 0))
        self.best = state.get("best_value")
        self.metrics = state.get("metrics") or {}
        self.history = list(state.get("log_history") or [])
        self.crossed = {str(k): int(v) for k, v in (state.get("baseline_crossed") or {}).items()}
        self.last_checkpoint = path
        self.run_started = str(state.get("run_started") or self.run_started)
        if self.step >= self.s.max_steps and self.s.minutes <= 0:
            raise TrainingError(
                f"{path} is already at step {self.step}, which reaches max_steps "
                f"({self.s.max_steps}); raise max_steps to train further"
            )
