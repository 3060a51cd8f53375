"""`run_finetuning`: any fine-tuning task of the registry, from a pretraining checkpoint to saved_model/bert/finetuning.

Each task starts from a pretraining checkpoint (its encoder weights, and for generative QA its MLM head too),
reuses that checkpoint's tokenizer, and writes checkpoints into saved_model/bert/finetuning/{checkpoint,best,final}
whose config.json "bert2" block names the task, the labels and whatever else the Predictor needs to rebuild the
head. Detailed evaluation results (confusion matrix, sample answers) go into metrics.json beside the weights;
events carry only flat float metrics. What differs between tasks is asked of the task class (tasks/__init__.py).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import torch

from .. import checkpoint as ckpt
from ..checkpoint.model_files import read_config, read_metadata, read_tokenizer, read_weights
from ..config import Config
from ..data.records import local_path
from ..errors import CheckpointError, DataError, TrainingError
from ..memory import refuse_if_too_big
from ..model import load_pretrained
from ..registry import FINETUNE_TASKS, UnknownTask, get
from ..training.events import Callback, DoneEvent
from ..training.trainer import Trainer
from .base import HELD_OUT_FILE, FinetuneTask
from .recipe import choose as choose_recipe
from .run import Run

SCRATCH = "scratch"  # --from scratch: the pretraining checkpoint's shape and tokenizer, random weights


def task_class(name: str) -> type[FinetuneTask]:
    """The fine-tuning task registered as `name`; TrainingError naming the choices otherwise."""
    if name not in FINETUNE_TASKS:
        raise TrainingError(f"unknown fine-tuning task {name!r}; choose {', '.join(FINETUNE_TASKS)}")
    try:
        return get(name)
    except UnknownTask as exc:
        raise TrainingError(str(exc)) from None


def resolve_source(cfg: Config, from_checkpoint: str | Path | None) -> Path:
    """The checkpoint to fine-tune from: --from, else finetune.from_checkpoint, else pretrain best/final."""
    chosen = str(from_checkpoint or cfg.finetune.from_checkpoint or "").strip()
    if chosen and chosen != SCRATCH:
        return ckpt.resolve(chosen)
    return ckpt.default_checkpoint(cfg.paths.root, "pretrain")


def run_finetuning(
    cfg: Config,
    callbacks: list[Callback] | None = None,
    stop_event: threading.Event | None = None,
    resume: bool | str | Path = False,
    from_checkpoint: str | Path | None = None,
    trust_checkpoint: bool = False,
    overwrite: bool = False,
) -> DoneEvent:
    """Fine-tune cfg.finetune.task on cfg.finetune.data from a pretraining checkpoint (or resume a fine-tuning
    run); events go to `callbacks`. Raises Bert2Error subclasses for anything the user can fix.

    `from_checkpoint="scratch"` (`bert2 finetune --from scratch`) trains the same architecture from a random
    initialisation: the shape and tokenizer still come from the pretraining checkpoint it would otherwise start
    from, only its weights are not loaded. Same recipe, same data: the difference is what pretraining bought.
    A new run goes beside the earlier ones in the fine-tuning directories; `overwrite` deletes theirs first.
    """
    task_cls = task_class(cfg.finetune.task)
    explicit = str(from_checkpoint or "").strip() == SCRATCH
    if explicit and resume:
        raise TrainingError("--from scratch starts a new run and --resume continues an old one; use one of them")
    # A local data file is read (and refused, naming file and line) before the run takes its directory: a broken
    # file must leave nothing in saved_model (no lock, no metrics log). Built-in and hub data load inside the run.
    preloaded = None
    if not resume and cfg.finetune.data.strip() and local_path(cfg.finetune.data.strip()) is not None:
        name = task_cls.resolve_data_name(cfg.finetune.data)
        preloaded = (name, task_cls.data(name, cfg.finetune.max_examples, seed=cfg.data.seed))
    run = Run(
        cfg,
        "finetune",
        callbacks,
        stop_event,
        resume,
        trust_checkpoint,
        cfg.finetune.report_to,
        what="fine-tuning",
        overwrite=overwrite,
    )
    return run.execute(lambda: _build(run, task_cls, from_checkpoint, explicit, preloaded))


def _build(
    run: Run,
    task_cls: type[FinetuneTask],
    from_checkpoint: str | Path | None,
    explicit_scratch: bool,
    preloaded: tuple[str, Any] | None = None,
) -> Trainer:
    cfg, f = run.cfg, run.cfg.finetune
    resume_path = run.resume_path
    scratch = explicit_scratch or (resume_path is None and str(f.from_checkpoint).strip() == SCRATCH)
    source = resume_path if resume_path is not None else resolve_source(cfg, None if scratch else from_checkpoint)
    model_cfg, source_config = read_config(source)
    source_meta = dict(source_config.get("bert2") or {})
    # Pretraining runs without dropout by default (short budgets do not overfit); fine-tuning on small labelled
    # sets does, so the encoder gets its own dropout here.
    model_cfg = dataclasses.replace(model_cfg, hidden_dropout_prob=f.hidden_dropout_prob)
    refuse_if_too_big(cfg, "finetune", model_cfg)
    source_task = source_meta.get("task", "mlm+nsp")
    if resume_path is not None and source_task != task_cls.name:
        raise CheckpointError(
            f"{resume_path} is a {source_task} fine-tuning run; resume it with --task "
            f"{source_task}, or start a new {task_cls.name} run without --resume"
        )
    tokenizer = read_tokenizer(source, model_cfg.vocab_size)
    if f.max_seq_length > model_cfg.max_position_embeddings:
        run.say(
            f"finetune.max_seq_length {f.max_seq_length} exceeds the model's "
            f"{model_cfg.max_position_embeddings} positions; using {model_cfg.max_position_embeddings}"
        )

    if preloaded is not None:
        data_name, data = preloaded
        run.say(f"read {task_cls.name} data: {data_name}")
    else:
        data_name = source_meta.get("data") if resume_path is not None else task_cls.resolve_data_name(f.data)
        run.say(f"loading {task_cls.name} data: {data_name}")
        data = task_cls.data(data_name, f.max_examples, seed=cfg.data.seed)
    if data.held_out_rule:
        run.say(
            f"held out {len(data.validation):,} of {len(data.train) + len(data.validation):,} examples for "
            f"evaluation: {data.held_out_rule}; which ones is written to {HELD_OUT_FILE} in every checkpoint"
        )
    recipe = choose_recipe(task_cls, cfg, data, tokenizer, model_cfg.max_position_embeddings)
    max_length = recipe.max_seq_length
    if resume_path is not None:
        meta = read_metadata(resume_path, source_config)  # with the files it names (a tagger's lookup.json)
        task_cls.check_labels(meta, data, resume_path)
    else:
        meta = {
            "task": task_cls.name,
            "data": data_name,
            "source_checkpoint": str(source),
            "max_answer_length": f.max_answer_length,
            **task_cls.metadata(cfg, tokenizer, data),
            "max_seq_length": task_cls.inference_length(model_cfg, f.eval_max_seq_length, max_length),
            "train_max_seq_length": max_length,
            "init": SCRATCH if scratch else "pretrained",
        }
    # A resumed run keeps its own lengths ("max_seq_length" is what evaluation and the Predictor read) and cuts.
    max_length = min(
        int(meta.get("train_max_seq_length", meta.get("max_seq_length", max_length))), model_cfg.max_position_embeddings
    )
    eval_length = min(int(meta.get("max_seq_length", max_length)), model_cfg.max_position_embeddings)
    if eval_length != max_length:
        run.say(
            f"inputs: {max_length} tokens in training, {eval_length} in evaluation and inference (ALiBi reads "
            f"longer texts than it trained on; finetune.eval_max_seq_length)"
        )

    torch.manual_seed(f.seed)  # the head's initialisation is part of the run's reproducibility
    model = task_cls.build_model(model_cfg, meta, tokenizer)
    if scratch:
        run.say(f"from scratch: random weights in the shape of {source} (its tokenizer too); nothing loaded")
    elif resume_path is None:
        same = source_task == task_cls.name and (not task_cls.labelled or source_meta.get("labels") == meta["labels"])
        report = load_pretrained(model, read_weights(source), prefixes={"": ""} if same else None)
        run.say(f"from {source} ({source_task}): {report.summary()}")
        if not same:
            for line in task_cls.warm_start(model, cfg):
                run.say(line)

    train_features = task_cls.featurize(data.train, tokenizer, max_length, meta)
    val_features = task_cls.featurize(data.validation, tokenizer, eval_length, meta, for_eval=True)
    if f.eval_batches > 0:  # a fixed prefix of the validation set, so successive evaluations stay comparable
        data.validation, val_features = task_cls.limit_validation(
            data.validation, val_features, f.eval_batches * f.batch_size
        )
    task = task_cls(tokenizer, meta, data.validation, val_features, f.batch_size)
    if data.held_out_rule:
        task.held_out = {"data": data_name, "rule": data.held_out_rule, "rows": data.held_out_rows}
    if len(train_features) < f.batch_size:
        raise DataError(
            f"{data_name!r} gives {len(train_features)} training examples, fewer than one batch of "
            f"{f.batch_size}; lower finetune.batch_size or use more data"
        )
    # What the recipe chose replaces the settings left at 0; the run's trainer_state.json (and so its model card)
    # records what it really used, and why.
    settings = dataclasses.replace(
        f, learning_rate=recipe.learning_rate, max_steps=recipe.max_steps, warmup_steps=recipe.warmup_steps
    )
    run.say("recipe: " + "; ".join(recipe.why))
    run_config: dict[str, Any] = cfg.to_dict()
    run_config["finetune"] = {
        **run_config["finetune"],
        "data": data_name,
        "from_checkpoint": str(source),
        "learning_rate": settings.learning_rate,
        "max_steps": settings.max_steps,
        "warmup_steps": settings.warmup_steps,
        "max_seq_length": max_length,
    }
    run_config["recipe"] = recipe.to_dict()
    run.say(
        f"data {data_name}: {len(data.train)} training examples ({len(train_features)} features) / "
        f"{len(data.validation)} validation" + (f", {len(data.labels)} labels" if data.labels else "")
    )
    for note in data.notes:
        run.say(note)
    trainer = run.trainer(model, train_features, task, settings, run_config)
    if resume_path is None:
        trainer.init = (
            f"from scratch: random weights in the shape of {source}" if scratch else f"initialised from {source}"
        )
    return trainer
