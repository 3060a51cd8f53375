"""Pretraining: the masked-language model (MLM) and next-sentence prediction (NSP) on a corpus.

The task the trainer drives, `run_pretraining` (the entry point of `bert2 pretrain`, `quick`, `full` and the TUI),
and `fill_mask`, the masked-word prediction the probes, the playground and `bert2 inference mask` all use.

Examples are sentence pairs prepared once and cached (data/pretraining.py); the collator re-draws the masks of
every batch (data/collator.py, BERT's 80/10/10). The loss is the model's own (model/bert.py
BertForPreTraining.loss): MLM cross-entropy over the masked tokens of the whole accumulated batch, plus NSP.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..checkpoint.model_files import read_config, read_tokenizer, read_weights, write_model_files
from ..config import Config, ModelConfig
from ..data.collator import MLMCollator
from ..data.corpus import check_local_corpus
from ..data.pretraining import prepare_pretraining_data
from ..errors import CheckpointError, InputError, TrainingError
from ..memory import refuse_if_too_big
from ..microscope import HeadBatch, loss_baselines, score_heads
from ..model import BertForPreTraining
from ..training.distributed import barrier
from ..training.events import Callback, DoneEvent
from ..training.trainer import Trainer
from .base import Task
from .run import Run

DEFAULT_PROBES = ("The capital of France is [MASK].",)
MASK = "[MASK]"


class PretrainingTask(Task):
    """MLM + NSP on prepared sentence-pair examples; masks are re-drawn for every batch by the collator."""

    name = "mlm+nsp"
    kind = "pretrain"
    summary = "masked-language model + next-sentence prediction (BERT's pretraining)"
    request = "mask"
    headline_metric = "mlm_accuracy"
    export_class = "BertForPreTraining"
    pipeline_tag = "fill-mask"
    nsp = True

    @classmethod
    def head(cls, model_cfg: ModelConfig, meta: dict[str, Any]) -> nn.Module:
        return BertForPreTraining(model_cfg, nsp=bool(meta.get("nsp", cls.nsp)))

    def __init__(self, cfg: Config, tokenizer: Any, validation: Any, probes: tuple[str, ...] = DEFAULT_PROBES):
        d = cfg.data
        self.cfg = cfg
        self.nsp = d.nsp  # the run's data decides (a subclass such as distillation's serves both)
        self.name = PretrainingTask.name if d.nsp else MaskedLMTask.name
        self.tokenizer = tokenizer
        self.validation = validation
        self.probe_texts = tuple(probes)
        self.eval_batches = cfg.pretrain.eval_batches
        self.batch_size = cfg.pretrain.batch_size
        self.collator = MLMCollator(
            tokenizer, d.mlm_probability, d.mask_replace_prob, d.random_replace_prob, seed=d.seed
        )
        eval_rate = d.eval_mlm_probability or d.mlm_probability  # a fixed 15% by default: comparable across runs
        self._eval_args = (tokenizer, eval_rate, d.mask_replace_prob, d.random_replace_prob)
        self.microscope_on = bool(getattr(cfg.pretrain, "microscope", True))
        self._head_batch: HeadBatch | None = None

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collator(examples)
        if not self.nsp:
            batch.pop("next_sentence_label", None)
        return batch

    def count(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            "masked": (batch["labels"] != -100).sum(),
            "examples": torch.tensor(batch["input_ids"].shape[0]),
            "tokens": batch["attention_mask"].sum(),
        }

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model.loss(
            batch["input_ids"],
            batch.get("token_type_ids"),
            batch.get("attention_mask"),
            batch["labels"],
            batch.get("next_sentence_label"),
        )
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
            labels = batch.get("next_sentence_label") if self.nsp else None
            out = model.loss(
                batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], batch["labels"], labels
            )
            loss_sum += float(out.mlm_loss_sum)
            correct += float(out.mlm_correct)
            count += float(out.mlm_count)
            if out.nsp_loss is not None and labels is not None:
                nsp_correct += float(out.nsp_correct)
                nsp_count += labels.numel()
                nsp_loss_sum += float(out.nsp_loss) * labels.numel()
        mlm_loss = loss_sum / max(count, 1)
        metrics = {
            "mlm_loss": mlm_loss,
            "mlm_accuracy": correct / max(count, 1),
            "perplexity": math.exp(min(mlm_loss, 50.0)),
            "loss": mlm_loss,
        }
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
            except InputError as exc:  # a bad probe must not stop training; show why instead
                out.append({"text": text, "error": str(exc)})
        return out

    def loss_baselines(self, train_data: Any) -> dict[str, float]:
        """The losses of a model that knows only word frequencies (unigram entropy) and of a coin (NSP, ln 2):
        the lines below which this run uses context (bert2/microscope.py)."""
        return loss_baselines(train_data, self.tokenizer, self.nsp)

    @torch.no_grad()
    def microscope(self, model: nn.Module) -> dict[str, Any]:
        """{"heads": every head's type and score on the first 8 validation examples} ({} when switched off)."""
        if not self.microscope_on or len(self.validation) == 0:
            return {}
        if self._head_batch is None:
            self._head_batch = HeadBatch(self.validation, self.tokenizer)
        return {"heads": score_heads(model, self._head_batch)}

    def save_files(self, model: nn.Module, directory: Path) -> None:
        write_model_files(model.config, self.tokenizer, directory, {"task": self.name, "nsp": self.nsp})

    def state_dict(self) -> dict[str, Any]:
        return {"collator": self.collator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "collator" in state:
            self.collator.set_state(state["collator"])


class MaskedLMTask(PretrainingTask):
    """The masked-language model alone (data.nsp = false): single segments, no NSP head."""

    name = "mlm"
    summary = "masked-language model (no next-sentence prediction)"
    export_class = "BertForMaskedLM"
    nsp = False


def pretraining_task(cfg: Config) -> type[PretrainingTask]:
    return PretrainingTask if cfg.data.nsp else MaskedLMTask


# --------------------------------------------------------------------------------------------------------------
# Filling in [MASK]
# --------------------------------------------------------------------------------------------------------------


def check_mask_text(text: Any, top_k: int) -> None:
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    if not isinstance(text, str) or not text.strip():
        raise InputError("the text is empty; type a sentence with [MASK] where the model should guess")
    if MASK not in text:
        raise InputError(
            f"the text has no {MASK}; put {MASK} where the model should guess, e.g. 'The capital of France is {MASK}.'"
        )


@torch.no_grad()
def fill_mask(model: nn.Module, tokenizer: Any, text: str, top_k: int = 5) -> list[list[dict[str, Any]]]:
    """Top-k tokens with probabilities for each [MASK] in `text`, in order of appearance."""
    return fill_mask_batch(model, tokenizer, [text], top_k)[0]


@torch.no_grad()
def fill_mask_batch(
    model: nn.Module, tokenizer: Any, texts: list[str], top_k: int = 5
) -> list[list[list[dict[str, Any]]]]:
    """fill_mask for many texts in one padded forward pass (one result list per text)."""
    for text in texts:
        check_mask_text(text, top_k)
    core = model.bert
    limit = core.config.max_position_embeddings
    enc = tokenizer(list(texts), return_tensors="pt", padding=True, truncation=False)
    lengths = enc["attention_mask"].sum(1)  # (B,)
    if int(lengths.max()) > limit:
        raise InputError(f"the text is {int(lengths.max())} tokens long; this model reads at most {limit}")
    device = next(model.parameters()).device
    ids = enc["input_ids"].to(device)  # (B, T)
    is_mask = ids == tokenizer.mask_token_id  # (B, T)
    if not bool(is_mask.any(1).all()):
        raise InputError(f"the tokenizer did not keep {MASK} as one token; write it exactly as {MASK}")
    was_training = model.training
    model.eval()
    types = enc.get("token_type_ids", torch.zeros_like(enc["input_ids"])).to(device)
    hidden = core(ids, types, enc["attention_mask"].to(device)).last_hidden_state  # (B, T, H)
    # Only the [MASK] rows are projected onto the vocabulary: the same scores forward()'s (B, T, V) logits hold
    # there, without computing the others.
    logits = model.mlm(hidden[is_mask], core.embeddings.word_embeddings.weight)  # (M, V), masks in row order
    model.train(was_training)
    top = logits.float().softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)  # (M, k)
    rows = iter(zip(top.values.tolist(), top.indices.tolist()))
    out: list[list[list[dict[str, Any]]]] = []
    for count in is_mask.sum(1).tolist():
        per_text = []
        for _ in range(count):
            values, indices = next(rows)
            tokens = tokenizer.convert_ids_to_tokens(indices)
            per_text.append([{"token": t, "score": round(v, 6)} for t, v in zip(tokens, values)])
        out.append(per_text)
    return out


# --------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------


def run_pretraining(
    cfg: Config,
    callbacks: list[Callback] | None = None,
    stop_event: threading.Event | None = None,
    resume: bool | str | Path = False,
    probes: tuple[str, ...] = DEFAULT_PROBES,
    init_from: str | Path | None = None,
    trust_checkpoint: bool = False,
    overwrite: bool = False,
) -> DoneEvent:
    """Prepare data, build the model (or resume), train; events go to `callbacks`. Raises Bert2Error subclasses.

    `resume` continues a run exactly (optimizer, schedule, RNG, data position); `init_from` starts a new run from
    a checkpoint's weights and tokenizer only (e.g. one made by `bert2 import-hf`): continued pretraining.
    `trust_checkpoint` lets a resume read an older checkpoint's pickled resume files (checkpoint.train_state).
    A new run goes beside the earlier ones in the pretraining directories; `overwrite` deletes theirs first.
    """
    if resume and init_from:
        raise CheckpointError("use either --resume (continue a run) or --init-from (new run from weights), not both")
    # A local corpus is read (and refused, naming file and line) before the run takes its directory: a broken
    # file must leave nothing in saved_model (no lock, no metrics log), as fine-tuning's data check does.
    check_local_corpus(cfg.data.corpus, cfg.data.cache_dir)
    run = Run(
        cfg,
        "pretrain",
        callbacks,
        stop_event,
        resume,
        trust_checkpoint,
        cfg.pretrain.report_to,
        what="pretraining",
        overwrite=overwrite,
    )
    return run.execute(lambda: _build(run, probes, init_from))


def build_pretraining_trainer(
    cfg: Config,
    callbacks: list[Callback] | None = None,
    stop_event: threading.Event | None = None,
    resume: bool | str | Path = False,
    probes: tuple[str, ...] = DEFAULT_PROBES,
    init_from: str | Path | None = None,
    trust_checkpoint: bool = False,
) -> Trainer:
    """Everything run_pretraining does short of training: a ready Trainer (its fit() releases the run's lock)."""
    run = Run(
        cfg, "pretrain", callbacks, stop_event, resume, trust_checkpoint, cfg.pretrain.report_to, what="pretraining"
    )
    try:
        return _build(run, probes, init_from)
    except BaseException:
        run.close()
        raise


def _architecture_from(path: Path, cfg: Config) -> ModelConfig:
    """The checkpoint's architecture (sizes, vocabulary) with this run's behaviour (dropout, attention kernel)."""
    saved, _ = read_config(path)
    return dataclasses.replace(
        saved,
        hidden_dropout_prob=cfg.model.hidden_dropout_prob,
        attention_probs_dropout_prob=cfg.model.attention_probs_dropout_prob,
        attn_implementation=cfg.model.attn_implementation,
    )


def _build(run: Run, probes: tuple[str, ...], init_from: str | Path | None) -> Trainer:
    cfg = run.cfg
    source = run.resume_path or (ckpt.resolve(init_from) if init_from else None)
    # Before minutes of data preparation: a model that cannot fit is refused with the estimate (bert2.memory).
    refuse_if_too_big(cfg, "pretrain", _architecture_from(source, cfg) if source is not None else None)
    tokenizer = read_tokenizer(source) if source else None
    if not run.dist.is_main:
        barrier(run.dist)  # rank 0 builds (and caches) the data first; the others then read the cache
    run.say("preparing data (a first run trains a tokenizer and tokenises the corpus; later runs use the cache)")
    data = prepare_pretraining_data(cfg, tokenizer, progress=run.say)
    copies = int(data.info.get("train_copies", 1))
    run.say(
        f"data ready: {len(data.train)} training / {len(data.validation)} validation examples, "
        f"vocabulary {len(data.tokenizer)}"
        + (f" ({copies} copies of the training pairs, each cut and partnered differently)" if copies > 1 else "")
    )
    if run.dist.is_main:
        barrier(run.dist)
    tokenizer = data.tokenizer

    if source is not None:
        model_cfg = _architecture_from(source, cfg)
        if model_cfg.vocab_size != len(tokenizer):
            raise CheckpointError(
                f"{source}: its tokenizer has {len(tokenizer)} tokens but its model "
                f"{model_cfg.vocab_size}; the checkpoint is inconsistent"
            )
    else:
        model_cfg = dataclasses.replace(cfg.model, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    if cfg.data.max_seq_length > model_cfg.max_position_embeddings:
        raise TrainingError(
            f"data.max_seq_length ({cfg.data.max_seq_length}) exceeds the model's "
            f"max_position_embeddings ({model_cfg.max_position_embeddings})"
        )
    task_cls = pretraining_task(cfg)
    torch.manual_seed(cfg.pretrain.seed)  # same seed, same initial weights: runs are reproducible and comparable
    model = task_cls.build_model(model_cfg, {"nsp": cfg.data.nsp})
    if init_from and source is not None:
        state = read_weights(source)
        if not cfg.data.nsp:
            state = {k: v for k, v in state.items() if not k.startswith("nsp.")}
        try:
            model.load_state_dict(state, strict=cfg.data.nsp)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{source}: weights do not fit a pretraining model ({str(exc).splitlines()[0]})"
            ) from None
        run.say(f"weights from {source}")
    task = task_cls(cfg, tokenizer, data.validation, probes)
    trainer = run.trainer(model, data.train, task, cfg.pretrain, cfg.to_dict())
    if init_from:
        trainer.init = f"initialised from {source} (--init-from)"
    return trainer
