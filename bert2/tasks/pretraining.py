"""Pretraining (MLM + NSP): the Task the trainer drives, and `run_pretraining`, the entry point of the CLI and TUI."""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..checkpoint.model_files import read_config, read_tokenizer, read_weights, write_model_files
from ..checkpoint.train_state import check_resumable
from ..config import STAGES, Config
from ..data.collator import MLMCollator
from ..data.pretraining import prepare_pretraining_data
from ..errors import CheckpointError, TrainingError
from ..inference import fill_mask
from ..memory import refuse_if_too_big
from ..model import BertForPreTraining
from ..training.distributed import barrier, init_distributed, resolve_device
from ..training.events import Callback, DoneEvent, LogEvent
from ..training.reporters import reporters_for
from ..training.trainer import Trainer, TrainSettings, jsonl_writer

DEFAULT_PROBES = ("The capital of France is [MASK].",)


class PretrainingTask:
    """MLM (+ NSP) on prepared sentence-pair examples; masks are re-drawn for every batch by the collator."""

    kind = "pretrain"
    best_metric = "loss"

    def __init__(self, cfg: Config, tokenizer: Any, validation: Any, probes: tuple[str, ...] = DEFAULT_PROBES):
        d = cfg.data
        self.cfg = cfg
        self.nsp = d.nsp
        self.name = "mlm+nsp" if d.nsp else "mlm"
        self.tokenizer = tokenizer
        self.validation = validation
        self.probe_texts = tuple(probes)
        self.eval_batches = cfg.pretrain.eval_batches
        self.batch_size = cfg.pretrain.batch_size
        self.collator = MLMCollator(tokenizer, d.mlm_probability, d.mask_replace_prob, d.random_replace_prob,
                                    seed=d.seed)
        self._eval_args = (tokenizer, d.mlm_probability, d.mask_replace_prob, d.random_replace_prob)

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collator(examples)
        if not self.nsp:
            batch.pop("next_sentence_label", None)
        return batch

    def count(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"masked": (batch["labels"] != -100).sum(), "examples": torch.tensor(batch["input_ids"].shape[0]),
                "tokens": batch["attention_mask"].sum()}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(batch["input_ids"], batch.get("token_type_ids"), batch.get("attention_mask"),
                    labels=batch["labels"], next_sentence_label=batch.get("next_sentence_label"))
        # Token-level normalisation over the whole accumulated batch (not a mean of micro-batch means), so
        # 4 x 8 accumulated equals one batch of 32 (the lesson of transformers issue #34191).
        mlm = out.mlm_loss_sum / totals["masked"].clamp(min=1)
        parts = {"mlm": mlm}
        loss = mlm
        if out.nsp_loss is not None:
            nsp = out.nsp_loss * (batch["input_ids"].shape[0] / totals["examples"])
            parts["nsp"] = nsp
            loss = loss + nsp
        return loss, parts

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation loss, masked-token accuracy, perplexity, NSP accuracy, with masks fixed across evaluations."""
        collator = MLMCollator(*self._eval_args, seed=1234)  # same masks every evaluation: comparable numbers
        device = next(model.parameters()).device
        n = len(self.validation)
        limit = n if self.eval_batches <= 0 else min(n, self.eval_batches * self.batch_size)
        loss_sum = correct = count = 0.0
        nsp_correct = nsp_count = nsp_loss_sum = 0.0
        for start in range(0, limit, self.batch_size):
            batch = collator([self.validation[i] for i in range(start, min(start + self.batch_size, limit))])
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], labels=batch["labels"],
                        next_sentence_label=batch.get("next_sentence_label") if self.nsp else None)
            loss_sum += float(out.mlm_loss_sum)
            correct += float((out.prediction_logits.argmax(-1) == out.mlm_targets).sum())
            count += out.mlm_targets.numel()
            if self.nsp and out.seq_relationship_logits is not None and "next_sentence_label" in batch:
                labels = batch["next_sentence_label"]
                nsp_correct += float((out.seq_relationship_logits.argmax(-1) == labels).sum())
                nsp_count += labels.numel()
                nsp_loss_sum += float(out.nsp_loss) * labels.numel()
        mlm_loss = loss_sum / max(count, 1)
        metrics = {"mlm_loss": mlm_loss, "mlm_accuracy": correct / max(count, 1),
                   "perplexity": math.exp(min(mlm_loss, 50.0)), "loss": mlm_loss}
        if nsp_count:
            metrics["nsp_loss"] = nsp_loss_sum / nsp_count
            metrics["nsp_accuracy"] = nsp_correct / nsp_count
            metrics["loss"] = mlm_loss + metrics["nsp_loss"]
        return metrics

    @torch.no_grad()
    def probes(self, model: nn.Module) -> list[dict[str, Any]]:
        out = []
        for text in self.probe_texts:
            try:
                out.append({"text": text, "predictions": fill_mask(model, self.tokenizer, text, top_k=5)})
            except Exception as exc:  # a bad probe must not stop training; show why instead
                out.append({"text": text, "error": str(exc)})
        return out

    def save_files(self, model: nn.Module, directory: Path) -> None:
        write_model_files(model.config, self.tokenizer, directory, {"task": self.name, "nsp": self.nsp})

    def state_dict(self) -> dict[str, Any]:
        return {"collator": self.collator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "collator" in state:
            self.collator.set_state(state["collator"])


def run_pretraining(cfg: Config, callbacks: list[Callback] | None = None,
                    stop_event: threading.Event | None = None, resume: bool | str | Path = False,
                    probes: tuple[str, ...] = DEFAULT_PROBES, init_from: str | Path | None = None,
                    trust_checkpoint: bool = False) -> DoneEvent:
    """Prepare data, build the model (or resume), train; events go to `callbacks`. Raises Bert2Error subclasses.

    `resume` continues a run exactly (optimizer, schedule, RNG, data position); `init_from` starts a new run from
    a checkpoint's weights and tokenizer only (e.g. one made by `bert2 import-hf`): continued pretraining.
    `trust_checkpoint` lets a resume read an older checkpoint's pickled resume files (checkpoint.train_state).
    """
    try:
        trainer = build_pretraining_trainer(cfg, callbacks, stop_event, resume, probes, init_from, trust_checkpoint)
    except StoppedDuringSetup:
        done = DoneEvent(reason="stopped", step=0, message="stopped while preparing data; nothing to save")
        for cb in callbacks or []:
            cb(done)
        return done
    return trainer.fit()


class StoppedDuringSetup(Exception):
    """A stop request arrived while data was being prepared (before any step): nothing to save."""


def setup_reporter(callbacks: list[Callback], stop_event: threading.Event | None, is_main: bool
                   ) -> Callable[[str], None]:
    """Progress messages of data preparation as LogEvents (a first run trains a tokenizer for seconds), and a
    stop request honoured between stages instead of after the whole preparation."""

    def say(message: str) -> None:
        if stop_event is not None and stop_event.is_set():
            raise StoppedDuringSetup
        if is_main:
            for cb in callbacks:
                cb(LogEvent(level="info", message=message))
    return say


def _architecture_from(path: Path, cfg: Config) -> Any:
    """The checkpoint's architecture (sizes, vocabulary) with this run's behaviour (dropout, attention kernel)."""
    saved, _ = read_config(path)
    return dataclasses.replace(saved, hidden_dropout_prob=cfg.model.hidden_dropout_prob,
                               attention_probs_dropout_prob=cfg.model.attention_probs_dropout_prob,
                               attn_implementation=cfg.model.attn_implementation)


def build_pretraining_trainer(cfg: Config, callbacks: list[Callback] | None = None,
                              stop_event: threading.Event | None = None, resume: bool | str | Path = False,
                              probes: tuple[str, ...] = DEFAULT_PROBES,
                              init_from: str | Path | None = None, trust_checkpoint: bool = False) -> Trainer:
    """Everything run_pretraining does short of training: data, tokenizer, model, task, a ready Trainer."""
    callbacks = list(callbacks or [])
    p = cfg.pretrain
    if p.num_threads > 0:
        torch.set_num_threads(p.num_threads)
    device = resolve_device(p.device)
    dist_info = init_distributed(device)

    resume_path: Path | None = None
    if resume:
        resume_path = (ckpt.latest_resumable(cfg.paths.root, "pretrain") if resume is True
                       else ckpt.resolve(resume))
        if resume_path is None:
            raise CheckpointError(f"nothing to resume: no complete pretraining checkpoint under "
                                  f"{ckpt.kind_dir(cfg.paths.root, 'pretrain')}")
    if resume_path is not None:
        check_resumable(resume_path, trust_checkpoint)  # before minutes of data preparation
    if resume_path is not None and init_from:
        raise CheckpointError("use either --resume (continue a run) or --init-from (new run from weights), not both")
    source = resume_path or (ckpt.resolve(init_from) if init_from else None)
    # Before minutes of data preparation: a model that cannot fit is refused with the estimate (bert2.memory).
    refuse_if_too_big(cfg, "pretrain", _architecture_from(source, cfg) if source is not None else None)

    tokenizer = read_tokenizer(source) if source else None
    if not dist_info.is_main:
        barrier(dist_info)  # rank 0 builds (and caches) the data first; the others then read the cache
    reporters, where = reporters_for(cfg.pretrain.report_to, ckpt.kind_dir(cfg.paths.root, "pretrain")) \
        if dist_info.is_main else ([], None)
    say = setup_reporter(callbacks, stop_event, dist_info.is_main)
    if where:
        say(where)
    say("preparing data (a first run trains a tokenizer and tokenises the corpus; later runs use the cache)")
    data = prepare_pretraining_data(cfg, tokenizer, progress=say)
    say(f"data ready: {len(data.train)} training / {len(data.validation)} validation examples, "
        f"vocabulary {len(data.tokenizer)}")
    if dist_info.is_main:
        barrier(dist_info)
    tokenizer = data.tokenizer

    if source is not None:
        model_cfg = _architecture_from(source, cfg)
        if model_cfg.vocab_size != len(tokenizer):
            raise CheckpointError(f"{source}: its tokenizer has {len(tokenizer)} tokens but its model "
                                  f"{model_cfg.vocab_size}; the checkpoint is inconsistent")
    else:
        model_cfg = dataclasses.replace(cfg.model, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    if cfg.data.max_seq_length > model_cfg.max_position_embeddings:
        raise TrainingError(f"data.max_seq_length ({cfg.data.max_seq_length}) exceeds the model's "
                            f"max_position_embeddings ({model_cfg.max_position_embeddings})")
    torch.manual_seed(p.seed)  # same seed, same initial weights: runs are reproducible and comparable
    model = BertForPreTraining(model_cfg, nsp=cfg.data.nsp)
    if init_from and source is not None:
        state = read_weights(source)
        if not cfg.data.nsp:
            state = {k: v for k, v in state.items() if not k.startswith("nsp.")}
        try:
            model.load_state_dict(state, strict=cfg.data.nsp)
        except RuntimeError as exc:
            raise CheckpointError(f"{source}: weights do not fit a pretraining model ({str(exc).splitlines()[0]})") \
                from None
    task = PretrainingTask(cfg, tokenizer, data.validation, probes)

    if dist_info.is_main:
        cfg.all_stage_dirs()  # the six directories appear on first use, fine-tuning's included
    stage_dirs = {s: cfg.stage_dir("pretrain", s, create=False) for s in STAGES}
    if dist_info.is_main:
        callbacks.append(jsonl_writer(ckpt.kind_dir(cfg.paths.root, "pretrain") / "metrics.jsonl"))
        callbacks.extend(reporters)
    settings = TrainSettings.from_section(p)
    trainer = Trainer(model, data.train, task, settings, stage_dirs, cfg.to_dict(), device, dist_info, callbacks,
                      stop_event, resume_path, trust_checkpoint)
    if init_from:
        say(f"weights from {source}")
        trainer.init = f"initialised from {source} (--init-from)"
    return trainer
