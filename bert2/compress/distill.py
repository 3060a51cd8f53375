"""Knowledge distillation: a small student learns to imitate a trained bert2 teacher.

Why it works (Hinton et al. 2015): a trained model knows more than the labels it was trained on. For "The capital
of France is [MASK]." the label says only "paris"; the teacher's distribution also says that "lyon" is a plausible
city and "banana" is not. Those runner-up probabilities (the "dark knowledge") are a far richer target per example
than one label, so a student trained on them learns more from the same data and steps. A temperature T > 1
flattens both distributions before they are compared, which makes the small probabilities visible to the loss.

The losses, each a small function below (shapes: N rows (masked tokens or examples), C classes (the vocabulary
for MLM), B batch, T tokens, H hidden, nh heads):

    soft_target_loss   KL(teacher_T || student_T) * T^2 on the output distributions      (Hinton; DistilBERT)
    hard loss          the usual cross-entropy against the labels (masked words, class labels)
    hidden_state_loss  MSE between mapped layers' hidden states, through a learned projection
                       when the widths differ                                             (TinyBERT)
    attention_loss     KL between mapped layers' attention distributions, per query row  (MiniLM)

    loss = alpha * soft + (1 - alpha) * hard + hidden_weight * hidden + attention_weight * attention

Why T^2: the gradient of the softened KL with respect to the logits scales as 1/T^2; multiplying by T^2 keeps the
soft term's gradients comparable to the hard term's whatever T is (Hinton et al., section 2).

How it plugs into bert2: the generic Trainer drives a Task. The two tasks here are the pretraining and
classification tasks with a loss that also asks the teacher. The teacher lives inside the task, in eval mode and
under torch.no_grad: it is not the model the trainer optimises or saves, so every checkpoint holds ordinary
student weights (a BertForPreTraining or a classifier) that inference, fine-tuning and export-hf take as they are.
The student, by default the teacher's shape with half its layers, starts from the teacher's embeddings, heads and
every other layer (DistilBERT), wherever the shapes agree.

`run_distillation(cfg)` is the entry point of `bert2 distill`; with alpha = hidden_weight = attention_weight = 0
(`--no-teacher`) the same command trains the same student from the labels alone: the baseline that tells what
the teacher's signal bought.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint as ckpt
from .. import registry
from ..checkpoint.layout import LEGACY_RESUME_FILES, RESUME_FILES
from ..checkpoint.model_files import load_checkpoint, read_config, write_model_files
from ..config import KINDS, Config, ConfigError, DataConfig, DistillConfig, FieldError, ModelConfig
from ..data.collator import MLMCollator
from ..data.pretraining import prepare_pretraining_data
from ..errors import CheckpointError, DataError, TrainingError
from ..model import count_parameters
from ..model.heads import LoadReport
from ..tasks.classify import ClassifyTask
from ..tasks.pretraining import DEFAULT_PROBES, PretrainingTask, pretraining_task
from ..tasks.run import Run, StoppedDuringSetup
from ..training.events import Callback, DoneEvent, Event
from ..training.trainer import Trainer
from . import DISTILL_TEACHERS

TEACHER_TASKS = DISTILL_TEACHERS
RUNS_FILE = "distill_runs.jsonl"
"""One line per finished distillation run, in the kind directory: what the comparison table reads."""
HEADLINE = {"pretrain": ("mlm_accuracy", "mlm_loss"), "finetune": ("accuracy", "loss")}
"""The held-out numbers a student is compared on, per kind (higher-is-better first)."""


# --------------------------------------------------------------------------------------------------------------
# The losses
# --------------------------------------------------------------------------------------------------------------


def soft_target_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, reduction: str = "mean"
) -> torch.Tensor:
    """KL(p_teacher || p_student) between distributions softened by `temperature`, times T^2.

    p = softmax(logits / T) row by row; KL = sum_c p_t(c) * (log p_t(c) - log p_s(c)). It is zero exactly when
    the student's softened distribution equals the teacher's, and its gradient with respect to the student's
    logits is T * (p_s - p_t) (the KL's (p_s - p_t) / T, times T^2): the student is pulled towards every
    probability the teacher gives, not only towards the top one. `reduction`: "mean" over rows, or "sum" (the caller normalises over an accumulated
    batch).
    """
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)  # (N, C)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)  # (N, C)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="none").sum(-1)  # (N,) one KL per row
    total = kl.sum() if reduction == "sum" else kl.mean() if kl.numel() else kl.sum()
    return total * (t * t)


def hidden_state_loss(
    student_states: Sequence[torch.Tensor],
    teacher_states: Sequence[torch.Tensor],
    pairs: Sequence[tuple[int, int]],
    projection: nn.Module | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error between student and teacher hidden states of mapped layers (TinyBERT).

    `pairs` lists (student state, teacher state) indices into the L+1 hidden states (0: the embeddings).
    A student narrower than its teacher cannot be compared directly, so `projection` (a learned H_s -> H_t
    linear map, trained with the student and thrown away afterwards) lifts its states into the teacher's space.
    Padding positions are left out. Averaged over real tokens, hidden units and pairs.
    """
    losses = []
    for s_i, t_i in pairs:
        s = student_states[s_i]  # (B, T, H_s)
        if projection is not None:
            s = projection(s)  # (B, T, H_t)
        err = (s.float() - teacher_states[t_i].float()).pow(2).mean(-1)  # (B, T): one error per token
        losses.append(_masked_mean(err, attention_mask))
    return torch.stack(losses).mean()


def attention_loss(
    student_maps: Sequence[torch.Tensor],
    teacher_maps: Sequence[torch.Tensor],
    pairs: Sequence[tuple[int, int]],
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(teacher || student) between the attention distributions of mapped layers, per head and query (MiniLM).

    Each row of an attention map is a probability distribution over the keys: where token i looks. Matching it
    teaches the student *how* the teacher reads a sentence, not only what it concludes. Needs the same number of
    heads on both sides (head h of the student imitates head h of the teacher). Padded query rows are left out;
    padded keys have probability 0 on both sides and so add nothing.
    """
    eps = 1e-12  # log(0) guard: a probability of exactly 0 (a padded key) contributes 0 * finite = 0
    losses = []
    for s_i, t_i in pairs:
        s, t = student_maps[s_i].float(), teacher_maps[t_i].float()  # (B, nh, T, T)
        kl = (t * (t.clamp_min(eps).log() - s.clamp_min(eps).log())).sum(-1)  # (B, nh, T): one KL per query row
        losses.append(_masked_mean(kl.mean(1), attention_mask))  # heads averaged -> (B, T)
    return torch.stack(losses).mean()


def _masked_mean(values: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T) -> scalar: the mean over real tokens only."""
    if attention_mask is None:
        return values.mean()
    mask = attention_mask.to(values.dtype)  # (B, T)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


# --------------------------------------------------------------------------------------------------------------
# Which student layer learns from which teacher layer
# --------------------------------------------------------------------------------------------------------------


def init_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """The teacher layer each student layer is copied from: every other layer for a half-depth student, as
    DistilBERT (12 -> 6: 0, 2, 4, 6, 8, 10); in general evenly spaced from the bottom (2 -> 1: layer 0)."""
    return [i * teacher_layers // student_layers for i in range(student_layers)]


def hidden_state_pairs(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """TinyBERT's uniform mapping over the L+1 hidden states: student state j imitates teacher state
    j * L_t / L_s, so the embeddings match the embeddings (0 -> 0) and the last layer the last (L_s -> L_t)."""
    return [(j, j * teacher_layers // student_layers) for j in range(student_layers + 1)]


def attention_pairs(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """Layer i of the student (0-based) imitates the attention of the teacher layer whose output its output
    imitates: the last layer of each block of L_t / L_s teacher layers."""
    return [(i, (i + 1) * teacher_layers // student_layers - 1) for i in range(student_layers)]


# --------------------------------------------------------------------------------------------------------------
# The student
# --------------------------------------------------------------------------------------------------------------


def student_config(teacher: ModelConfig, d: DistillConfig) -> ModelConfig:
    """The student's shape: the teacher's, with [distill]'s student_* fields where they are set (0: derived).

    Same vocabulary and positions as the teacher, always: the student reads the teacher's tokenizer, and the soft
    MLM targets are distributions over the same vocabulary.
    """
    hidden = d.student_hidden_size or teacher.hidden_size
    heads = d.student_heads or teacher.num_attention_heads
    if hidden % heads:
        raise ConfigError(
            [
                FieldError(
                    "distill.student_heads",
                    f"the student's width {hidden} is not divisible by "
                    f"{heads} heads; set distill.student_heads to a divisor of {hidden}",
                )
            ]
        )
    return dataclasses.replace(
        teacher,
        num_hidden_layers=d.student_layers or max(1, teacher.num_hidden_layers // 2),
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=d.student_intermediate_size
        or max(1, teacher.intermediate_size * hidden // teacher.hidden_size),
        pruned_heads={},
    )  # a pruned teacher's missing heads are its own: the student has every head


_LAYER = re.compile(r"^bert\.encoder\.layers\.(\d+)\.")


def init_from_teacher(student: nn.Module, teacher: nn.Module, layer_map: Sequence[int]) -> LoadReport:
    """Copy into the student every teacher tensor of the same name and shape, student layer i reading teacher
    layer layer_map[i]; the rest keeps its random initialisation.

    Why: a student that starts as a shallower copy of its teacher already computes something close to it, and
    DistilBERT found this initialisation worth several points. With another width nothing in the encoder fits,
    and the student starts at random (the hidden-state projection and the soft targets then do the teaching).
    """
    source = teacher.state_dict()
    report = LoadReport()
    used: set[str] = set()
    with torch.no_grad():
        for name, tensor in student.state_dict().items():  # state_dict tensors share storage with the parameters
            m = _LAYER.match(name)
            teacher_name = f"bert.encoder.layers.{layer_map[int(m.group(1))]}.{name[m.end() :]}" if m else name
            src = source.get(teacher_name)
            if src is not None and src.shape == tensor.shape:
                tensor.copy_(src)
                report.loaded.append(name)
                used.add(teacher_name)
            else:
                report.missing.append(name)
    report.unused = [n for n in source if n not in used]
    return report


def freeze(model: nn.Module) -> nn.Module:
    """The teacher: eval mode (no dropout: its targets must not be noisy) and no gradients, ever."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@dataclasses.dataclass
class LossWeights:
    """How much each term counts; `teacher_signal` is False for the no-teacher baseline (the teacher is then
    never run during training)."""

    temperature: float = 2.0
    alpha: float = 0.5
    hidden: float = 0.0
    attention: float = 0.0

    @property
    def teacher_signal(self) -> bool:
        return self.alpha > 0 or self.hidden > 0 or self.attention > 0

    def describe(self) -> str:
        if not self.teacher_signal:
            return "no teacher signal (hard labels only)"
        terms = [f"{self.alpha:g} x soft (T={self.temperature:g})", f"{1 - self.alpha:g} x hard"]
        if self.hidden:
            terms.append(f"{self.hidden:g} x hidden")
        if self.attention:
            terms.append(f"{self.attention:g} x attention")
        return " + ".join(terms)


# --------------------------------------------------------------------------------------------------------------
# The tasks the trainer drives
# --------------------------------------------------------------------------------------------------------------


class DistillPretrainingTask(PretrainingTask):
    """Pretraining (same data, masking, evaluation and checkpoint files) whose loss also asks the teacher.

    Loss parts in the StepEvents (unweighted, so each curve means what it says): mlm and nsp (hard), soft (the
    MLM soft targets at the masked positions), hidden, attention. NSP is learnt from its labels only: DistilBERT
    dropped it, and its two-way distribution carries little dark knowledge.
    """

    def __init__(
        self,
        cfg: Config,
        tokenizer: Any,
        validation: Any,
        teacher: nn.Module | None,
        weights: LossWeights,
        provenance: dict[str, Any],
        probes: tuple[str, ...] = DEFAULT_PROBES,
    ):
        super().__init__(cfg, tokenizer, validation, probes)
        self.teacher = teacher
        self.w = weights
        self.provenance = provenance
        self.projection: nn.Linear | None = None
        self.hidden_pairs: list[tuple[int, int]] = []
        self.attention_pairs: list[tuple[int, int]] = []

    def plan(self, student_cfg: ModelConfig, teacher_cfg: ModelConfig, device: torch.device) -> None:
        """Layer pairs, and the projection a narrower student's hidden states need (trained, never saved)."""
        ls, lt = student_cfg.num_hidden_layers, teacher_cfg.num_hidden_layers
        self.hidden_pairs = hidden_state_pairs(ls, lt) if self.w.hidden > 0 else []
        self.attention_pairs = attention_pairs(ls, lt) if self.w.attention > 0 else []
        if self.w.hidden > 0 and student_cfg.hidden_size != teacher_cfg.hidden_size:
            torch.manual_seed(0)
            self.projection = nn.Linear(student_cfg.hidden_size, teacher_cfg.hidden_size).to(device)

    def loss_parameters(self) -> list[nn.Parameter]:
        """Trained with the student (the trainer adds them to its optimizer), kept out of its weights."""
        return list(self.projection.parameters()) if self.projection is not None else []

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.teacher is None or not self.w.teacher_signal:
            return super().loss(model, batch, totals)  # the baseline: plain pretraining of the same student
        ids, types, mask, labels = (
            batch["input_ids"],
            batch.get("token_type_ids"),
            batch.get("attention_mask"),
            batch["labels"],
        )
        selected = labels != -100  # (B, T) the masked positions
        targets = labels[selected]  # (N,)
        masked_share = 1.0 / totals["masked"].clamp(min=1)  # sums over this micro-batch / the accumulated batch
        token_share = batch["attention_mask"].sum() / totals["tokens"].clamp(min=1)
        wants = dict(output_hidden_states=bool(self.hidden_pairs), output_attentions=bool(self.attention_pairs))

        s = model.bert(ids, types, mask, **wants)  # a BertForPreTraining is an encoder ...
        s_logits = model.mlm(s.last_hidden_state[selected], model.bert.embeddings.word_embeddings.weight)  # (N, V)
        with torch.no_grad():  # ... and so is the teacher; it only ever answers
            t = self.teacher.bert(ids, types, mask, **wants)
            t_logits = (
                self.teacher.mlm(t.last_hidden_state[selected], self.teacher.bert.embeddings.word_embeddings.weight)
                if self.w.alpha > 0
                else None
            )  # (N, V)

        mlm = F.cross_entropy(s_logits.float(), targets, reduction="sum") * masked_share
        parts = {"mlm": mlm}
        hard = mlm
        if model.nsp is not None and batch.get("next_sentence_label") is not None:
            nsp_logits = model.nsp(s.pooler_output)  # (B, 2)
            nsp = F.cross_entropy(nsp_logits.float(), batch["next_sentence_label"].view(-1), ignore_index=-100) * (
                ids.shape[0] / totals["examples"]
            )
            parts["nsp"] = nsp
            hard = hard + nsp
        loss = (1.0 - self.w.alpha) * hard
        if self.w.alpha > 0:
            soft = soft_target_loss(s_logits, t_logits, self.w.temperature, reduction="sum") * masked_share
            parts["soft"] = soft
            loss = loss + self.w.alpha * soft
        if self.hidden_pairs:
            hidden = (
                hidden_state_loss(s.hidden_states, t.hidden_states, self.hidden_pairs, self.projection, mask)
                * token_share
            )
            parts["hidden"] = hidden
            loss = loss + self.w.hidden * hidden
        if self.attention_pairs:
            att = attention_loss(s.attentions, t.attentions, self.attention_pairs, mask) * token_share
            parts["attention"] = att
            loss = loss + self.w.attention * att
        return loss, parts

    def save_files(self, model: nn.Module, directory: Path) -> None:
        """An ordinary pretraining checkpoint whose "bert2" block also says where it came from."""
        write_model_files(
            model.config, self.tokenizer, directory, {"task": self.name, "nsp": self.nsp, **self.provenance}
        )

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.projection is not None:
            state["projection"] = dict(self.projection.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.projection is not None and "projection" in state:
            with torch.no_grad():
                for name, p in self.projection.state_dict().items():  # in place: the optimizer holds these tensors
                    p.copy_(state["projection"][name])


class DistillClassificationTask(ClassifyTask):
    """Classification whose loss mixes the teacher's softened label distribution with the gold labels.

    Loss parts: ce (hard), soft. Evaluation, probes and checkpoint files are the classifier's own, so the student
    is an ordinary fine-tuned classifier.
    """

    def __init__(
        self,
        tokenizer: Any,
        meta: dict[str, Any],
        validation: list[dict[str, Any]],
        validation_features: list[dict[str, Any]],
        batch_size: int,
        teacher: nn.Module | None,
        weights: LossWeights,
    ):
        super().__init__(tokenizer, meta, validation, validation_features, batch_size)
        self.teacher = teacher
        self.w = weights

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.teacher is None or self.w.alpha <= 0:
            return super().loss(model, batch, totals)
        self._moved()
        share = self._share(batch, totals)
        args = (batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        s_logits = model(*args).logits  # (B, C)
        with torch.no_grad():
            t_logits = self.teacher(*args).logits  # (B, C)
        hard = F.cross_entropy(s_logits.float(), batch["labels"]) * share
        soft = soft_target_loss(s_logits, t_logits, self.w.temperature) * share
        return (1.0 - self.w.alpha) * hard + self.w.alpha * soft, {"ce": hard, "soft": soft}


# --------------------------------------------------------------------------------------------------------------
# Measuring: held-out quality and inference speed, student against teacher
# --------------------------------------------------------------------------------------------------------------


def inference_speeds(
    forwards: dict[str, Callable[[dict[str, torch.Tensor]], Any]],
    batches: list[dict[str, torch.Tensor]],
    repeats: int = 9,
    warmup: int = 2,
) -> dict[str, float]:
    """Examples per second of each forward over `batches`: the median of `repeats` timed passes after `warmup`
    untimed ones (the first passes pay for memory allocation and kernel choice).

    The models take turns, one pass each per round, so that a slowdown caused by another process on a shared
    machine hits all of them alike instead of whichever happened to be measured at that moment; the median then
    ignores the rounds it disturbed most.
    """
    examples = sum(int(b["input_ids"].shape[0]) for b in batches)
    cuda = batches[0]["input_ids"].is_cuda

    def one_pass(forward: Callable[[dict[str, torch.Tensor]], Any]) -> float:
        t0 = time.perf_counter()
        for b in batches:
            forward(b)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {name: [] for name in forwards}
    with torch.no_grad():
        for round_ in range(warmup + repeats):
            for name, forward in forwards.items():
                seconds = one_pass(forward)
                if round_ >= warmup:
                    times[name].append(seconds)
    return {name: examples / max(statistics.median(ts), 1e-9) for name, ts in times.items()}


def _speed_batches(task: Any, kind: str, device: torch.device, n_batches: int = 2) -> list[dict[str, torch.Tensor]]:
    """A few held-out batches, collated as evaluation collates them (the same for teacher and student)."""
    if kind == "pretrain":
        d = task.cfg.data
        collator = MLMCollator(task.tokenizer, d.mlm_probability, d.mask_replace_prob, d.random_replace_prob, seed=1234)
        rows = [task.validation[i] for i in range(min(len(task.validation), n_batches * task.batch_size))]
        collate = collator
    else:
        rows = list(task.validation_features[: n_batches * task.batch_size])
        collate = task.collate
    return [
        {k: v.to(device) for k, v in collate(rows[i : i + task.batch_size]).items()}
        for i in range(0, len(rows), task.batch_size)
    ]


def _inference_forward(model: nn.Module, kind: str) -> Callable[[dict[str, torch.Tensor]], Any]:
    """What inference computes: fill-mask's encoder + MLM head at the [MASK] rows, or a classifier's logits."""
    if kind == "pretrain":

        def fill(b: dict[str, torch.Tensor]) -> torch.Tensor:
            hidden = model.bert(b["input_ids"], b["token_type_ids"], b["attention_mask"]).last_hidden_state
            return model.mlm(hidden[b["labels"] != -100], model.bert.embeddings.word_embeddings.weight)  # (N, V)

        return fill
    return lambda b: model(b["input_ids"], b["token_type_ids"], b["attention_mask"]).logits  # (B, C)


def compare(
    student: nn.Module, teacher: nn.Module, task: Any, kind: str, device: torch.device
) -> dict[str, dict[str, float]]:
    """Held-out quality (the task's own evaluation, same examples and masks for both) and inference speed."""
    models = {"teacher": teacher, "student": student}
    was_training = student.training
    out: dict[str, dict[str, float]] = {}
    for who, model in models.items():
        model.eval()
        with torch.no_grad():
            metrics = task.evaluate(model)
        out[who] = {k: float(metrics[k]) for k in HEADLINE[kind] if k in metrics}
    speeds = inference_speeds(
        {who: _inference_forward(m, kind) for who, m in models.items()}, _speed_batches(task, kind, device)
    )
    for who, model in models.items():
        out[who].update(
            examples_per_s=speeds[who],
            parameters=float(count_parameters(model)),
            layers=float(model.config.num_hidden_layers),
            hidden_size=float(model.config.hidden_size),
        )
    student.train(was_training)
    return out


# --------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------


def run_distillation(
    cfg: Config,
    callbacks: list[Callback] | None = None,
    stop_event: threading.Event | None = None,
    resume: bool | str | Path = False,
    probes: tuple[str, ...] = DEFAULT_PROBES,
) -> DoneEvent:
    """Train a student from cfg.distill.teacher (or resume one); events go to `callbacks`.

    Checkpoints go where the student's kind goes: a pretraining teacher's student into
    saved_model/transformer/pretrain/..., a classifier's into saved_model/bert/finetuning/... When training ends
    (steps or budget), teacher and student are measured on the same held-out data (quality, inference
    examples/s); the numbers join the DoneEvent's final_metrics ("teacher/...", "student/...") and a line in
    the kind directory's distill_runs.jsonl, which `comparison_rows` reads. Raises Bert2Error subclasses, or
    ConfigError for settings that do not fit the teacher.
    """
    try:
        built = build_distillation(cfg, callbacks, stop_event, resume, probes)
    except StoppedDuringSetup:
        done = DoneEvent(reason="stopped", step=0, message="stopped while preparing data; nothing to save")
        for cb in callbacks or []:
            cb(done)
        return done
    try:
        return built.finish(built.trainer.fit())
    finally:
        built.run.close()


@dataclasses.dataclass
class DistillationRun:
    """A distillation built and ready to train: `trainer.fit()`, then `finish(done)` measures and reports."""

    trainer: Trainer
    teacher: nn.Module
    teacher_path: Path
    kind: str
    weights: LossWeights
    cfg: Config
    run: Run
    """The run harness: its callbacks (metrics.jsonl, reporters, the caller's) and the kind directory's lock."""

    def finish(self, done: DoneEvent) -> DoneEvent:
        """Measure teacher and student (when training ended normally), record the run, and send the DoneEvent
        the trainer's was held back for, so that it is the last event and carries the comparison."""
        try:
            if done.reason in ("completed", "time_budget"):
                numbers = compare(
                    self.trainer.raw_model, self.teacher, self.trainer.task, self.kind, self.trainer.device
                )
                done.final_metrics = {
                    **done.final_metrics,
                    **{f"{who}/{k}": v for who, row in numbers.items() for k, v in row.items()},
                }
                entry = _record(self.cfg, self.kind, self.teacher_path, self.trainer, self.weights, numbers)
                self.run.say(summary_line(entry))
            done = DoneEvent(reason=done.reason, step=done.step, message=done.message, final_metrics=done.final_metrics)
            for cb in self.run.callbacks:
                cb(done)
            return done
        finally:
            self.run.close()


def build_distillation(
    cfg: Config,
    callbacks: list[Callback] | None = None,
    stop_event: threading.Event | None = None,
    resume: bool | str | Path = False,
    probes: tuple[str, ...] = DEFAULT_PROBES,
) -> DistillationRun:
    """Everything run_distillation does short of training: teacher, data, student, task, a ready Trainer (the
    kind directory's lock is held until `finish`)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainingError(
            "distillation runs in one process (its teacher answers every batch on rank 0's "
            "device); run bert2 distill without torchrun"
        )
    d = cfg.distill
    weights = LossWeights(d.temperature, d.alpha, d.hidden_weight, d.attention_weight)
    resume_path, teacher_path = _resolve_paths(cfg, resume)
    if resume_path is not None:
        weights = _saved_weights(resume_path, weights)
    kind = registry.kind_of(_task_of(teacher_path))
    run = Run(cfg, kind, callbacks, stop_event, resume_path or False, report_to=d.report_to, what="distillation")
    try:
        return _build(run, weights, teacher_path, probes)
    except BaseException:
        run.close()
        raise


def _build(run: Run, weights: LossWeights, teacher_path: Path, probes: tuple[str, ...]) -> DistillationRun:
    cfg, kind, d, resume_path = run.cfg, run.kind, run.cfg.distill, run.resume_path
    teacher_ckpt = load_checkpoint(teacher_path, run.device)
    kept = keep_teacher_safe(teacher_path, cfg.paths.root, kind)
    if kept != teacher_path:
        run.say(f"the teacher lies where the student's checkpoints go; the student reads (and names) a copy: {kept}")
    teacher_path = kept
    teacher = freeze(teacher_ckpt.model)
    t_cfg = teacher_ckpt.model_cfg
    s_cfg = read_config(resume_path)[0] if resume_path is not None else student_config(t_cfg, d)
    for note in _check_plan(s_cfg, t_cfg, weights, kind):
        run.say(note, "warning" if note.startswith("note:") else "info")
    if kind == "finetune":
        weights = dataclasses.replace(weights, hidden=0.0, attention=0.0)
    provenance = {
        "distilled_from": str(teacher_path),
        "distillation": {
            "temperature": weights.temperature,
            "alpha": weights.alpha,
            "hidden_weight": weights.hidden,
            "attention_weight": weights.attention,
            "teacher_signal": weights.teacher_signal,
            "student_init": d.student_init,
            "init_layers": init_layer_map(s_cfg.num_hidden_layers, t_cfg.num_hidden_layers),
        },
    }
    if kind == "pretrain":
        student, task, train_data = _pretraining_setup(
            cfg, teacher_ckpt, s_cfg, weights, provenance, run.say, probes, run.device
        )
    else:
        student, task, train_data = _classification_setup(
            cfg, teacher_ckpt, s_cfg, weights, provenance, run.say, resume_path
        )
    if resume_path is None:
        if d.student_init == "teacher":
            report = init_from_teacher(student, teacher, provenance["distillation"]["init_layers"])
            run.say(f"student from the teacher: {report.summary()}")
        else:
            run.say("student from a random initialisation (distill.student_init = random)")
    if not weights.teacher_signal:
        task.teacher = None  # the baseline never runs the teacher while training (it is measured at the end)

    def relay(event: Event) -> None:
        """Every event goes out at once, except DoneEvent: it waits for the comparison (DistillationRun.finish)."""
        if not isinstance(event, DoneEvent):
            for cb in run.callbacks:
                cb(event)

    run_config = cfg.to_dict()
    run_config["distilled_from"] = str(teacher_path)
    ctx = dataclasses.replace(run.context(s_cfg), callbacks=[relay], on_finish=None)  # the lock outlives fit()
    trainer = Trainer(student, train_data, task, cfg.distill, run_config, ctx)
    trainer.init = (
        f"resumed from {resume_path}"
        if resume_path is not None
        else f"{'distilled from' if weights.teacher_signal else 'no teacher signal; shaped by'} {teacher_path}"
        f" ({weights.describe()})"
    )
    return DistillationRun(trainer, teacher, teacher_path, kind, weights, cfg, run)


def _task_of(path: Path) -> str:
    return str((ckpt.read_json(path / ckpt.CONFIG_FILE).get("bert2") or {}).get("task", "mlm+nsp"))


def _distilled(path: Path) -> bool:
    try:
        return "distilled_from" in (ckpt.read_json(path / ckpt.CONFIG_FILE).get("bert2") or {})
    except CheckpointError:
        return False


def _resolve_paths(cfg: Config, resume: bool | str | Path) -> tuple[Path | None, Path]:
    """(the checkpoint to resume or None, the teacher). A resumed student names its teacher in config.json."""
    d = cfg.distill
    resume_path = None
    if resume:
        if resume is True:
            found = [p for kind in KINDS if (p := ckpt.latest_resumable(cfg.paths.root, kind, _distilled)) is not None]
            resume_path = max(found, key=ckpt.written_at, default=None)
            if resume_path is None:
                raise CheckpointError(f"nothing to resume: no distilled checkpoint under {cfg.paths.root}")
        else:
            resume_path = ckpt.resolve(resume)
        meta = ckpt.read_json(resume_path / ckpt.CONFIG_FILE).get("bert2") or {}
        if "distilled_from" not in meta:
            raise CheckpointError(
                f"{resume_path} is not a distillation run; resume it with bert2 pretrain --resume "
                f"or bert2 finetune --resume"
            )
        teacher = d.teacher.strip() or str(meta["distilled_from"])
    else:
        teacher = d.teacher.strip()
        if not teacher:
            raise ConfigError(
                [
                    FieldError(
                        "distill.teacher",
                        "is empty: name the checkpoint to learn from, e.g. "
                        "bert2 distill --teacher saved_model/transformer/pretrain",
                    )
                ]
            )
    teacher_path = ckpt.resolve(teacher).resolve()  # CheckpointError "checkpoint not found: ..."; then absolute
    task = _task_of(teacher_path)
    if task not in TEACHER_TASKS:
        raise CheckpointError(
            f"{teacher_path} is a {task} checkpoint; distillation supports pretraining teachers "
            f"({', '.join(registry.PRETRAIN_TASKS)}) and classify teachers, not {task}"
        )
    return resume_path, teacher_path


def _saved_weights(path: Path, default: LossWeights) -> LossWeights:
    """A resumed run keeps the loss it started with (a no-teacher baseline stays one)."""
    saved = (ckpt.read_json(path / ckpt.CONFIG_FILE).get("bert2") or {}).get("distillation") or {}
    return LossWeights(
        float(saved.get("temperature", default.temperature)),
        float(saved.get("alpha", default.alpha)),
        float(saved.get("hidden_weight", default.hidden)),
        float(saved.get("attention_weight", default.attention)),
    )


TEACHERS_DIR = "teachers"
"""Beside the kind's stage directories (like metrics.jsonl and runs/): copies of teachers that lived where the
student writes, so that the student's checkpoints cannot replace or rotate its teacher away."""


def keep_teacher_safe(teacher: Path, root: str, kind: str) -> Path:
    """The teacher to read: `teacher` itself, or, when it lies in the stage directories the student's
    checkpoints go to (a `bert2 quick` checkpoint distilled in the same saved_model, the TUI's `t`), a copy of
    its model files in <kind dir>/teachers/<stage>-<step>/ (resume state left out), made once."""
    dest = ckpt.kind_dir(root, kind).resolve()
    if dest not in teacher.resolve().parents or (dest / TEACHERS_DIR) in teacher.resolve().parents:
        return teacher
    copy = dest / TEACHERS_DIR / f"{teacher.parent.name}-{teacher.name}"
    if not ckpt.is_complete(copy):
        tmp = copy.with_name(ckpt.TMP_PREFIX + copy.name)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(teacher, tmp, ignore=shutil.ignore_patterns(*RESUME_FILES, *LEGACY_RESUME_FILES))
        shutil.rmtree(copy, ignore_errors=True)
        tmp.rename(copy)
    return copy


def _check_plan(s: ModelConfig, t: ModelConfig, w: LossWeights, kind: str) -> list[str]:
    """Refuse loss terms the two shapes cannot support; say what is unusual but allowed."""
    notes: list[str] = []
    if kind == "pretrain":
        for name, weight in (("hidden_weight", w.hidden), ("attention_weight", w.attention)):
            if weight > 0 and s.num_hidden_layers > t.num_hidden_layers:
                raise ConfigError(
                    [
                        FieldError(
                            f"distill.{name}",
                            f"the student has {s.num_hidden_layers} layers, more "
                            f"than the teacher's {t.num_hidden_layers}, so its layers cannot each "
                            f"imitate a teacher layer; set distill.{name}=0 or "
                            f"distill.student_layers <= {t.num_hidden_layers}",
                        )
                    ]
                )
        if w.attention > 0 and t.pruned_heads:
            raise ConfigError(
                [
                    FieldError(
                        "distill.attention_weight",
                        "the teacher has pruned heads (bert2 prune), so "
                        "its layers have fewer heads than the student's; set "
                        "distill.attention_weight=0",
                    )
                ]
            )
        if w.attention > 0 and s.num_attention_heads != t.num_attention_heads:
            raise ConfigError(
                [
                    FieldError(
                        "distill.attention_weight",
                        f"attention matching pairs head h with head h, "
                        f"but the student has {s.num_attention_heads} heads and the teacher "
                        f"{t.num_attention_heads}; set distill.student_heads="
                        f"{t.num_attention_heads} or distill.attention_weight=0",
                    )
                ]
            )
    elif w.hidden or w.attention:
        notes.append(
            "a classifier student learns from the teacher's label distribution; distill.hidden_weight and "
            "attention_weight apply to pretraining teachers and are not used here"
        )
    s_params, t_params = _encoder_size(s), _encoder_size(t)
    if s_params >= t_params:
        notes.append(
            f"note: the student's encoder ({s.num_hidden_layers} x {s.hidden_size}) is not smaller than the "
            f"teacher's ({t.num_hidden_layers} x {t.hidden_size}); allowed (a born-again student can match "
            f"its teacher), but it will not be faster"
        )
    return notes


def _encoder_size(c: ModelConfig) -> int:
    """Parameters of the encoder layers (what depth and width change), for comparing shapes before building."""
    h, i = c.hidden_size, c.intermediate_size
    return c.num_hidden_layers * (4 * h * h + 2 * h * i)


def _pretraining_setup(
    cfg: Config,
    teacher_ckpt: Any,
    s_cfg: ModelConfig,
    weights: LossWeights,
    provenance: dict[str, Any],
    say: Callable[[str], None],
    probes: tuple[str, ...],
    device: torch.device,
) -> tuple[nn.Module, DistillPretrainingTask, Any]:
    """The teacher's corpus, masking and validation split (its trainer_state.json), read with its tokenizer."""
    run_cfg = teacher_data_config(cfg, teacher_ckpt)
    say(f"preparing data ({run_cfg.data.corpus}, as the teacher was trained; cached after the first run)")
    data = prepare_pretraining_data(run_cfg, teacher_ckpt.tokenizer, progress=say)
    say(f"data ready: {len(data.train)} training / {len(data.validation)} validation examples")
    torch.manual_seed(cfg.distill.seed)
    student = pretraining_task(run_cfg).build_model(s_cfg, {"nsp": run_cfg.data.nsp})
    task = DistillPretrainingTask(
        run_cfg, teacher_ckpt.tokenizer, data.validation, teacher_ckpt.model, weights, provenance, probes
    )
    task.plan(s_cfg, teacher_ckpt.model_cfg, device)
    return student, task, data.train


def teacher_data_config(cfg: Config, teacher_ckpt: Any) -> Config:
    """This run's config with the teacher's [data] section (from its trainer_state.json, when it has one), so the
    student sees the same corpus, sequence length, masking and held-out documents; distill.data replaces the
    corpus, and the [pretrain] batch and evaluation settings are [distill]'s."""
    run_cfg = cfg.copy()
    state = ckpt.read_state(teacher_ckpt.path) if (teacher_ckpt.path / ckpt.STATE_FILE).is_file() else {}
    teacher_data = (state.get("run_config") or {}).get("data") or {}
    known = DataConfig.__dataclass_fields__
    for key, value in teacher_data.items():
        if key in known and key not in ("cache_dir", "tokenizer"):
            setattr(run_cfg.data, key, value)
    if cfg.distill.data.strip():
        run_cfg.data.corpus = cfg.distill.data.strip()
    run_cfg.data.nsp = bool(teacher_ckpt.meta.get("nsp", teacher_ckpt.task == "mlm+nsp"))
    run_cfg.data.max_seq_length = min(run_cfg.data.max_seq_length, teacher_ckpt.model_cfg.max_position_embeddings)
    run_cfg.pretrain.batch_size = cfg.distill.batch_size
    run_cfg.pretrain.eval_batches = cfg.distill.eval_batches
    return run_cfg


def _classification_setup(
    cfg: Config,
    teacher_ckpt: Any,
    s_cfg: ModelConfig,
    weights: LossWeights,
    provenance: dict[str, Any],
    say: Callable[[str], None],
    resume_path: Path | None,
) -> tuple[nn.Module, DistillClassificationTask, list[dict[str, Any]]]:
    """The task data the teacher was fine-tuned on (its config.json names it), cut and truncated as it was."""
    d = cfg.distill
    t_meta = dict(teacher_ckpt.meta)
    data_name = d.data.strip() or str(t_meta.get("data", ""))
    if not data_name:
        raise CheckpointError(f"{teacher_ckpt.path}'s config.json names no task data; set distill.data")
    say(f"loading {data_name} (the teacher's task data)")
    state = ckpt.read_state(teacher_ckpt.path) if (teacher_ckpt.path / ckpt.STATE_FILE).is_file() else {}
    seed = int(((state.get("run_config") or {}).get("data") or {}).get("seed", cfg.data.seed))
    data = ClassifyTask.data(data_name, d.max_examples, seed=seed)
    if data.labels != t_meta.get("labels"):
        raise DataError(
            f"{data_name} has labels {data.labels}, the teacher {t_meta.get('labels')}; a student learns "
            f"the teacher's labels, so distill on the teacher's task data"
        )
    meta = {
        **t_meta,
        "source_checkpoint": str(teacher_ckpt.path),
        "data": data_name,
        "init": "teacher" if d.student_init == "teacher" else "random",
        **provenance,
    }
    if resume_path is not None:
        meta = {**(ckpt.read_json(resume_path / ckpt.CONFIG_FILE).get("bert2") or {}), **provenance}
        meta.pop("model", None)
    train_len = int(meta.get("train_max_seq_length", meta.get("max_seq_length", 128)))
    eval_len = int(meta.get("max_seq_length", train_len))
    train = ClassifyTask.featurize(data.train, teacher_ckpt.tokenizer, train_len, meta)
    validation = ClassifyTask.featurize(data.validation, teacher_ckpt.tokenizer, eval_len, meta, for_eval=True)
    if d.eval_batches > 0:
        limit = d.eval_batches * d.batch_size
        data.validation, validation = data.validation[:limit], validation[:limit]
    if len(train) < d.batch_size:
        raise DataError(
            f"{data_name!r} gives {len(train)} training examples, fewer than one batch of "
            f"{d.batch_size}; lower distill.batch_size or use more data"
        )
    say(f"data {data_name}: {len(train)} training / {len(validation)} validation examples, {len(data.labels)} labels")
    torch.manual_seed(d.seed)
    student = ClassifyTask.build_model(s_cfg, meta)
    task = DistillClassificationTask(
        teacher_ckpt.tokenizer, meta, data.validation, validation, d.batch_size, teacher_ckpt.model, weights
    )
    return student, task, train


# --------------------------------------------------------------------------------------------------------------
# The record and the comparison table
# --------------------------------------------------------------------------------------------------------------


def _record(
    cfg: Config, kind: str, teacher: Path, trainer: Trainer, weights: LossWeights, numbers: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """Append this run to distill_runs.jsonl (kept when a later run replaces the checkpoints) and return it."""
    entry = {
        "created": ckpt.now_iso(),
        "time": time.time(),
        "kind": kind,
        "teacher_path": str(teacher),
        "mode": "distilled" if weights.teacher_signal else "no-teacher",
        "weights": weights.describe(),
        "steps": trainer.step,
        "wall_s": round(trainer.elapsed, 1),
        "minutes": cfg.distill.minutes,
        "checkpoint": str(trainer.last_checkpoint or ""),
        **numbers,
    }
    path = ckpt.kind_dir(cfg.paths.root, kind) / RUNS_FILE
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


def read_runs(root: str | Path, kind: str) -> list[dict[str, Any]]:
    """Every recorded distillation run of `kind` under `root`, oldest first (unreadable lines skipped)."""
    path = ckpt.kind_dir(root, kind) / RUNS_FILE
    runs = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return runs


def comparison_rows(root: str | Path) -> list[dict[str, Any]]:
    """The table `bert2 distill` prints: the teacher, the latest run, and the latest earlier run of the other
    mode (distilled / no-teacher) with the same teacher, so running the command twice compares both students."""
    runs = sorted(
        (r for kind in ("pretrain", "finetune") for r in read_runs(root, kind)), key=lambda r: float(r.get("time", 0))
    )  # stable: file order among equal times
    if not runs:
        return []
    last = runs[-1]
    other = [
        r
        for r in runs
        if r is not last
        and r.get("teacher_path") == last.get("teacher_path")
        and r.get("kind") == last.get("kind")
        and r.get("mode") != last.get("mode")
    ]

    def student(run: dict[str, Any], label: str) -> dict[str, Any]:
        # Speed-up against the teacher timed in the same run, turn about: another run's absolute examples/s were
        # measured under another load.
        speedup = run["student"]["examples_per_s"] / max(run["teacher"]["examples_per_s"], 1e-9)
        return {"model": label, "wall_s": run["wall_s"], "steps": run["steps"], **run["student"], "speedup": speedup}

    rows = [
        {"model": "teacher", "wall_s": None, "steps": None, **last["teacher"], "speedup": 1.0},
        student(last, f"student ({last['mode']})"),
    ]
    if other:
        rows.append(student(other[-1], f"student ({other[-1]['mode']}, earlier run)"))
    return rows


def summary_line(entry: dict[str, Any]) -> str:
    """One line for the log: the student's headline number and speed against the teacher's."""
    s, t = entry["student"], entry["teacher"]
    metric = HEADLINE[entry["kind"]][0]
    speed = s["examples_per_s"] / max(t["examples_per_s"], 1e-9)
    return (
        f"student ({entry['mode']}): {metric} {s.get(metric, float('nan')):.4f} vs teacher "
        f"{t.get(metric, float('nan')):.4f}; {s['examples_per_s']:.0f} vs {t['examples_per_s']:.0f} examples/s "
        f"({speed:.2f}x), {s['parameters'] / 1e6:.2f}M vs {t['parameters'] / 1e6:.2f}M parameters, "
        f"{entry['steps']} steps in {entry['wall_s']:.0f} s"
    )
