"""What a task is, and what the fine-tuning tasks share.

`Task` is what every task says about itself in class attributes and class methods, so that code which only has a
task name (a checkpoint's config.json, --task) can ask the registry: its kind, which head it builds, which
number picks its best checkpoint, which transformers class it exports to. `FinetuneTask` adds the data side (where
its examples come from, how they become tensors, its recipe) and the trainer protocol shared by the fine-tuning
tasks: padding collation, per-example loss normalisation, batched evaluation over a fixed validation set, and its
checkpoint files (config.json with metadata, tokenizer, metrics.json with the detailed evaluation).

The trainer (training/trainer.py) needs only: collate, count, loss, evaluate, probes, save_files, state_dict,
load_state_dict, and the attributes name, kind, best_metric, greater_is_better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..checkpoint.model_files import write_model_files
from ..compress.surgery import restore_pruned_heads
from ..config import Config, FinetuneConfig, ModelConfig
from ..data.collator import pad_and_stack
from ..data.records import split
from ..errors import CheckpointError, DataError
from ..registry import finetune_tasks

METRICS_FILE = "metrics.json"
HELD_OUT_FILE = "heldout.json"
"""In every fine-tuned checkpoint whose validation rows bert2 chose: which rows (0-based positions in the order the
data was read), and by what rule."""
PROBE_COUNT = 2
SAMPLE_ANSWERS = 20  # generated / extracted answers kept in metrics.json for a human to read


@dataclass
class TaskData:
    """Raw examples of one task, already split; `labels` names the classes of a classification set."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    labels: list[str] | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)
    held_out_rows: list[int] = field(default_factory=list)
    """Which examples (0-based, in the order they were read) are the validation ones, when bert2 chose them."""
    held_out_rule: str = ""
    """How they were chosen, in words ("" when the source came with its own validation split)."""


class Task:
    """A task's identity: the registry's users read these attributes (no instance, no data needed)."""

    name: ClassVar[str] = ""
    """As checkpoints record it (config.json "bert2" block) and --task names it."""
    kind: ClassVar[str] = "finetune"
    """pretrain | finetune: which three saved_model directories its checkpoints go to."""
    summary: ClassVar[str] = ""
    """One line for --help and the TUI."""
    request: ClassVar[str] = ""
    """The `bert2 inference` request its checkpoints answer: mask, classify, ner or qa."""
    best_metric: ClassVar[str] = "loss"
    """The evaluation number that picks best/ (lower is better unless greater_is_better)."""
    greater_is_better: ClassVar[bool] = False
    headline_metric: ClassVar[str] = "loss"
    """The quality number tables show and bert2 prune's curve follows (higher is better)."""
    export_class: ClassVar[str | None] = None
    """The transformers class `bert2 export-hf` writes (None: no transformers counterpart)."""
    pipeline_tag: ClassVar[str | None] = None
    """The Hub's pipeline tag for the model card."""

    @classmethod
    def head(cls, model_cfg: ModelConfig, meta: dict[str, Any]) -> nn.Module:
        """An untrained model for this task, shaped by a checkpoint's "bert2" metadata block."""
        raise NotImplementedError

    @classmethod
    def build_model(cls, model_cfg: ModelConfig, meta: dict[str, Any], tokenizer: Any = None) -> nn.Module:
        """`head`, then the attention heads `bert2 prune` removed (model.pruned_heads) taken out again, so a
        pruned checkpoint's weights load strictly (the full model is built first, as transformers does)."""
        model = cls.head(model_cfg, meta)
        if model_cfg.pruned_heads:
            restore_pruned_heads(model)
        return model

    @classmethod
    def export_problem(cls, meta: dict[str, Any]) -> str | None:
        """Why a checkpoint of this task cannot be exported to transformers, or None."""
        if cls.export_class is None:
            return f"task {cls.name} has no transformers counterpart"
        return None


class FinetuneTask(Task):
    """A fine-tuning task: its data, its recipe, and the trainer protocol."""

    builtin_data: ClassVar[tuple[str, ...]] = ()
    """Offline data names that come with `pip install`."""
    default_data: ClassVar[str] = ""
    hub_data: ClassVar[tuple[str, ...]] = ()
    """Hugging Face hub datasets it reads (users online)."""
    local_formats: ClassVar[str] = ""
    """The local files it reads, for messages and --help."""
    learning_rate: ClassVar[float] = 1e-3
    """The measured peak learning rate (finetune.learning_rate = 0 picks it; README trials)."""
    examples_seen: ClassVar[int] = 27_000
    """Training examples a run whose length is left to the data sees in all (recipe.py; measured per task in
    docs/quality.md: IMDB's 1.1 epochs of 24,000 reviews, 840 steps of 32, held out 90.0% against 88.1% at 560
    steps and 89.4% at 1,120)."""
    labelled: ClassVar[bool] = False
    """Its metadata carries label names (classification, tagging): a resume must see the same ones."""
    inference_example: ClassVar[str] = ""
    """A `bert2 inference` command to try after training."""

    # ---- data -------------------------------------------------------------------------------------------------
    @classmethod
    def load_data(cls, name: str, seed: int) -> TaskData:
        """Raw examples of `name` (a built-in, a local file or a hub dataset), split into train and validation."""
        raise NotImplementedError

    @classmethod
    def split_key(cls, example: dict[str, Any]) -> str:
        """The text a held-out row is chosen by (data/records.py split): examples with the same key stay on the
        same side of the split."""
        raise NotImplementedError

    @classmethod
    def input_text(cls, example: dict[str, Any]) -> str:
        """What the encoder reads of an example, as text (the recipe measures its length in tokens)."""
        raise NotImplementedError

    @classmethod
    def texts(cls, examples: list[dict[str, Any]]) -> list[str]:
        """The unlabelled text of examples, one document each (what `bert2 full` adds to the pretraining corpus:
        the task's own domain, task-adaptive pretraining; Gururangan et al. 2020)."""
        return [cls.input_text(ex) for ex in examples]

    @classmethod
    def held_out(
        cls,
        examples: list[dict[str, Any]],
        seed: int,
        labels: list[str] | None = None,
        source: str = "",
        notes: list[str] | None = None,
        marked: list[str | None] | None = None,
    ) -> TaskData:
        """TaskData of examples that came without a validation split: the rows bert2 holds out, by one rule for
        every source (a built-in, a user's file): a hash of each row's text."""
        s = split(examples, cls.split_key, seed, marked)
        return TaskData(s.train, s.validation, labels, source, list(notes or []), s.held_out_rows, s.rule)

    @classmethod
    def resolve_data_name(cls, data: str) -> str:
        """The data name to use: the configured one, or the task's default when the configured one is the config
        default of another task (finetune.data defaults to imdb-offline, which only fits classify). A built-in
        name of another task given explicitly is an error, not silently replaced."""
        data = (data or "").strip()
        if not data or (data == FinetuneConfig.data and data not in cls.builtin_data):
            return cls.default_data
        for other in finetune_tasks():
            if other.name == cls.name:
                continue
            if data in other.builtin_data:
                allowed = ", ".join([*cls.builtin_data, *cls.hub_data[:1]])
                raise DataError(
                    f"{data!r} is a {other.name} dataset; for --task {cls.name} use {allowed} or a local "
                    f"file ({cls.local_formats})"
                )
        return data

    @classmethod
    def data(cls, data: str, max_examples: int = 0, seed: int = 42) -> TaskData:
        """Load and split the raw examples of `data`; at most `max_examples` training examples (0: all)."""
        name = cls.resolve_data_name(data)
        out = cls.load_data(name, seed)
        if not out.train:
            raise DataError(f"{name!r} holds no usable training examples for {cls.name}")
        if max_examples > 0:
            out.train = out.train[:max_examples]
            out.validation = out.validation[: max(16, max_examples // 4)]
            out.notes.append(
                f"max_examples={max_examples}: {len(out.train)} training / {len(out.validation)} validation examples"
            )
        if not out.validation:
            raise DataError(f"{name!r} is too small to hold out validation examples; give it at least 2 examples")
        return out

    @classmethod
    def unknown_data(cls, name: str) -> DataError:
        builtins = ", ".join(cls.builtin_data)
        return DataError(
            f"unknown {cls.name} dataset {name!r}: not a file, built-in ({builtins or 'none'}) or "
            f"supported hub name ({', '.join(cls.hub_data)}); local files: {cls.local_formats}"
        )

    @classmethod
    def hub_alternative(cls) -> str:
        """What to use instead of an unreachable hub dataset."""
        builtins = ", ".join(cls.builtin_data)
        return (
            f"use a built-in offline dataset ({builtins}) or a local file ({cls.local_formats})"
            if builtins
            else f"use a local file ({cls.local_formats})"
        )

    @classmethod
    def baselines(cls, data: TaskData) -> dict[str, dict[str, float]]:
        """The simplest methods a user would try instead, scored on `data.validation` after seeing `data.train`
        (baselines.py): what a fine-tuned model has to beat to be worth its minutes."""
        return {}

    @classmethod
    def featurize(
        cls,
        examples: Sequence[dict[str, Any]],
        tokenizer: Any,
        max_length: int,
        meta: dict[str, Any],
        for_eval: bool = False,
    ) -> list[dict[str, Any]]:
        """Examples -> features (token ids and targets) at most `max_length` tokens long, as the checkpoint's
        metadata says (labels, truncation, stride); `for_eval` keeps what evaluation maps predictions back with."""
        raise NotImplementedError

    @classmethod
    def task_choices(cls, cfg: Config, data: TaskData) -> tuple[dict[str, Any], list[str]]:
        """The task's own recipe decisions made from the data (NER: the lookup feature), and one line of why each;
        the recipe prints them and trainer_state.json keeps them."""
        return {}, []

    @classmethod
    def metadata(cls, cfg: Config, tokenizer: Any, data: TaskData) -> dict[str, Any]:
        """Task-specific keys of the "bert2" block of a new run's config.json (what `head` and the Predictor
        read back); run_finetuning adds task, data, lengths and provenance."""
        return {}

    @classmethod
    def inference_length(cls, model_cfg: ModelConfig, eval_max_seq_length: int, train_length: int) -> int:
        """Tokens a fine-tuned model reads at evaluation and inference: as in training, unless a task says
        otherwise (classification with ALiBi reads longer texts)."""
        return train_length

    @classmethod
    def warm_start(cls, model: nn.Module, cfg: Config) -> list[str]:
        """Initialise the parts of a new head a pretraining checkpoint has no weights for, beyond their random
        start (generative QA's decoder from the encoder); returns what it did, for the run's log."""
        return []

    @classmethod
    def peak_learning_rate(cls, cfg: Config) -> float:
        """finetune.learning_rate, or the task's measured rate when it is 0."""
        return cfg.finetune.learning_rate or cls.learning_rate

    @classmethod
    def limit_validation(
        cls, validation: list[dict[str, Any]], features: list[dict[str, Any]], limit: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The first `limit` validation examples and their features (one feature per example)."""
        return validation[:limit], features[:limit]

    @classmethod
    def check_labels(cls, meta: dict[str, Any], data: TaskData, where: Path) -> None:
        """A resumed run must see the labels it was trained on."""
        if cls.labelled and meta.get("labels") != data.labels:
            raise CheckpointError(
                f"{where} was trained on labels {meta.get('labels')} but {meta.get('data')} now "
                f"has {data.labels}; start a new run"
            )

    # ---- the trainer protocol -----------------------------------------------------------------------------------
    def __init__(
        self,
        tokenizer: Any,
        meta: dict[str, Any],
        validation: list[dict[str, Any]],
        validation_features: list[dict[str, Any]],
        batch_size: int,
    ):
        self.tokenizer = tokenizer
        self.meta = meta
        self.validation = validation
        self.validation_features = validation_features
        self.batch_size = batch_size
        self.report: dict[str, Any] | None = None
        self._micro_since_eval = 0  # >0: the weights moved since `report` was computed
        self.held_out: dict[str, Any] | None = None
        """Which rows of the data are the validation ones (written to heldout.json beside the weights)."""

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return pad_and_stack(examples, self.tokenizer.pad_token_id)

    def count(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Examples normalise the loss; "tokens" (non-padding input tokens) is what the trainer's tokens/s counts."""
        return {"examples": torch.tensor(batch["input_ids"].shape[0]), "tokens": batch["attention_mask"].sum()}

    def _share(self, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]) -> torch.Tensor:
        """This micro-batch's share of the accumulated batch, so mean losses of micro-batches add up exactly."""
        return batch["input_ids"].shape[0] / totals["examples"].clamp(min=1)

    def probes(self, model: nn.Module) -> list[dict[str, Any]]:
        return []

    def save_files(self, model: nn.Module, directory: Path) -> None:
        extra: dict[str, Any] = {"architectures": [type(model).__name__]}
        if self.meta.get("labels"):  # transformers' own keys, so the label names survive an export
            extra["id2label"] = {str(i): name for i, name in enumerate(self.meta["labels"])}
            extra["label2id"] = {name: i for i, name in enumerate(self.meta["labels"])}
        write_model_files(model.config, self.tokenizer, directory, self.meta, extra)
        if self.report is not None and self._micro_since_eval == 0:  # only when it describes these weights
            ckpt.write_json(directory / METRICS_FILE, self.report)
        if self.held_out is not None:
            ckpt.write_json(directory / HELD_OUT_FILE, self.held_out)

    def state_dict(self) -> dict[str, Any]:
        return {}  # collation is deterministic; dropout's RNG is restored by the trainer

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # ---- helpers ----------------------------------------------------------------------------------------------
    def _batches(self, features: Sequence[dict[str, Any]], device: torch.device):
        for start in range(0, len(features), self.batch_size):
            chunk = features[start : start + self.batch_size]
            yield start, chunk, {k: v.to(device) for k, v in self.collate(list(chunk)).items()}

    def _moved(self) -> None:
        self._micro_since_eval += 1

    def _evaluated(self, report: dict[str, Any]) -> None:
        self.report = report
        self._micro_since_eval = 0


def sample_probes(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The first answers of the evaluation that just ran, as probes (the trainer probes right after it)."""
    out = []
    for s in (report or {}).get("samples", [])[:PROBE_COUNT]:
        refs = s.get("references") or [s.get("reference", "")]
        out.append({"text": s["question"], "answer": s["prediction"], "reference": refs[0] if refs else ""})
    return out
