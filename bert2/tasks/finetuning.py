"""Fine-tuning: the four Tasks the generic trainer drives (classify, ner, qa, qa-span) and `run_finetuning`, the entry
point of `bert2 finetune`, `bert2 full` and the TUI.

Each task starts from a pretraining checkpoint (its encoder weights, and for generative QA its MLM head too),
reuses that checkpoint's tokenizer, and writes checkpoints into saved_model/bert/finetuning/{checkpoint,best,final}
whose config.json "bert2" block names the task, the labels and whatever else the Predictor needs to rebuild the
head. Detailed evaluation results (confusion matrix, sample answers) go into metrics.json beside the weights;
events carry only flat float metrics.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..checkpoint.model_files import read_config, read_tokenizer, read_weights, write_model_files
from ..checkpoint.train_state import check_resumable
from ..config import STAGES, Config
from ..data import finetuning as fd
from ..data.finetuning import load_task_data, pad_and_stack, postprocess_span_predictions, resolve_data_name
from ..data.ner import featurize_ner, word_predictions
from ..errors import CheckpointError, DataError, TrainingError
from ..memory import refuse_if_too_big
from ..metrics import (
    classification_report,
    entity_report,
    flat_classification_metrics,
    flat_entity_metrics,
    generation_metrics,
    squad_metrics,
)
from ..model import build_head, load_pretrained
from ..training.distributed import init_distributed, resolve_device
from ..training.events import Callback, DoneEvent, LogEvent
from ..training.reporters import reporters_for
from ..training.trainer import Trainer, TrainSettings, jsonl_writer

METRICS_FILE = "metrics.json"
SCRATCH = "scratch"  # --from scratch: the pretraining checkpoint's shape and tokenizer, random weights
PROBE_COUNT = 2
SAMPLE_ANSWERS = 20  # generated / extracted answers kept in metrics.json for a human to read


class FinetuneTask:
    """What the three tasks share: padding collation, per-example loss normalisation, batched evaluation over a
    fixed validation set, and checkpoint files (config.json with metadata, tokenizer, metrics.json)."""

    kind = "finetune"
    best_metric = "loss"
    name = "finetune"

    def __init__(self, tokenizer: Any, meta: dict[str, Any], validation: list[dict[str, Any]],
                 validation_features: list[dict[str, Any]], batch_size: int):
        self.tokenizer = tokenizer
        self.meta = meta
        self.validation = validation
        self.validation_features = validation_features
        self.batch_size = batch_size
        self.report: dict[str, Any] | None = None
        self._micro_since_eval = 0  # >0: the weights moved since `report` was computed

    # ---- trainer protocol -----------------------------------------------------------------------------------
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

    def state_dict(self) -> dict[str, Any]:
        return {}  # collation is deterministic; dropout's RNG is restored by the trainer

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # ---- helpers ----------------------------------------------------------------------------------------------
    def _batches(self, features: Sequence[dict[str, Any]], device: torch.device):
        for start in range(0, len(features), self.batch_size):
            chunk = features[start:start + self.batch_size]
            yield start, chunk, {k: v.to(device) for k, v in self.collate(list(chunk)).items()}

    def _moved(self) -> None:
        self._micro_since_eval += 1

    def _evaluated(self, report: dict[str, Any]) -> None:
        self.report = report
        self._micro_since_eval = 0


# --------------------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------------------


class ClassificationTask(FinetuneTask):
    name = "classify"

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._moved()
        out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], labels=batch["labels"])
        loss = out.loss * self._share(batch, totals)
        return loss, {"ce": loss}

    @torch.no_grad()
    def predict(self, model: nn.Module) -> tuple[list[int], list[int], float]:
        device = next(model.parameters()).device
        preds, gold, loss_sum = [], [], 0.0
        for _, _, batch in self._batches(self.validation_features, device):
            out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], labels=batch["labels"])
            loss_sum += float(out.loss) * batch["labels"].numel()
            preds += out.logits.argmax(-1).tolist()
            gold += batch["labels"].tolist()
        return gold, preds, loss_sum / max(len(gold), 1)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation loss, accuracy, weighted F1, macro and per-class precision/recall; matrix in metrics.json."""
        gold, preds, loss = self.predict(model)
        report = classification_report(gold, preds, self.meta["labels"])
        self._evaluated({"task": self.name, "loss": loss, **report, "examples": len(gold)})
        return {"loss": loss, **flat_classification_metrics(report)}

    @torch.no_grad()
    def probes(self, model: nn.Module) -> list[dict[str, Any]]:
        device = next(model.parameters()).device
        feats = self.validation_features[:PROBE_COUNT]
        if not feats:
            return []
        batch = {k: v.to(device) for k, v in self.collate(list(feats)).items()}
        probs = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]).logits.float().softmax(-1)
        out = []
        for ex, p in zip(self.validation, probs):
            i = int(p.argmax())
            out.append({"text": ex["text"][:120], "label": self.meta["labels"][i], "score": round(float(p[i]), 4),
                        "gold": self.meta["labels"][ex["label"]]})
        return out


# --------------------------------------------------------------------------------------------------------------
# Named entities
# --------------------------------------------------------------------------------------------------------------


class NERTask(FinetuneTask):
    """Token cross-entropy on each word's first piece, normalised over the labelled pieces of the accumulated
    batch; evaluation reads one tag per word back and scores whole entities with seqeval. The best checkpoint is
    the one with the highest entity F1 (not the lowest loss: a model can grow more confident on the many O words
    while finding fewer entities)."""

    name = "ner"
    best_metric = "f1"
    greater_is_better = True

    def count(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**super().count(batch), "labelled": (batch["labels"] != -100).sum()}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._moved()
        out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], labels=batch["labels"])
        share = (batch["labels"] != -100).sum() / totals["labelled"].clamp(min=1)
        loss = out.loss * share
        return loss, {"ce": loss}

    @torch.no_grad()
    def predict(self, model: nn.Module) -> tuple[list[list[str]], float]:
        """One predicted tag per word of every validation sentence, and the mean loss per labelled piece."""
        device = next(model.parameters()).device
        labels = self.meta["labels"]
        predicted: list[list[str]] = []
        loss_sum, count = 0.0, 0
        for start, chunk, batch in self._batches(self.validation_features, device):
            out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], labels=batch["labels"])
            n = int((batch["labels"] != -100).sum())
            loss_sum += float(out.loss) * n
            count += n
            for i, (feature, ids) in enumerate(zip(chunk, out.logits.argmax(-1).tolist())):
                words = self.validation[start + i]["tokens"]
                predicted.append(word_predictions(feature["word_ids"], [labels[j] for j in ids], len(words)))
        return predicted, loss_sum / max(count, 1)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        predicted, loss = self.predict(model)
        gold = [ex["tags"] for ex in self.validation]
        report = entity_report(gold, predicted)
        samples = [{"text": " ".join(ex["tokens"]), "gold": ex["tags"], "predicted": p}
                   for ex, p in zip(self.validation, predicted) if any(t != "O" for t in ex["tags"])][:SAMPLE_ANSWERS]
        self._evaluated({"task": self.name, "loss": loss, **report, "examples": len(gold), "samples": samples})
        return {"loss": loss, **flat_entity_metrics(report)}

    def probes(self, model: nn.Module) -> list[dict[str, Any]]:
        """Two validation sentences with entities, as "word/TAG" for the tagged words (gold beside)."""
        out = []
        for s in (self.report or {}).get("samples", [])[:PROBE_COUNT]:
            words = s["text"].split(" ")
            out.append({"text": s["text"][:120],
                        "answer": " ".join(f"{w}/{t}" for w, t in zip(words, s["predicted"]) if t != "O") or "(none)",
                        "reference": " ".join(f"{w}/{t}" for w, t in zip(words, s["gold"]) if t != "O")})
        return out


# --------------------------------------------------------------------------------------------------------------
# Generative QA
# --------------------------------------------------------------------------------------------------------------


class GenerativeQATask(FinetuneTask):
    """Teacher-forced token cross-entropy, normalised over all answer tokens of the accumulated batch; evaluation
    adds greedy generation scored with BLEU, ROUGE and exact match (beam search is for inference: it multiplies
    the evaluation time by the beam width for a small gain)."""

    name = "qa"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # References in the model's own text space (lowercased and detokenised like a decoded answer), so scores
        # measure what the model can produce, not the casing its vocabulary cannot express.
        self.references = [self.roundtrip(ex["answer"]) for ex in self.validation]

    def roundtrip(self, text: str) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def count(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**super().count(batch), "target_tokens": (batch["labels"] != -100).sum()}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._moved()
        out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                    decoder_input_ids=batch["decoder_input_ids"], labels=batch["labels"])
        loss = out.loss_sum / totals["target_tokens"].clamp(min=1)
        return loss, {"ce": loss}

    @torch.no_grad()
    def generate(self, model: nn.Module, features: Sequence[dict[str, Any]], num_beams: int = 1) -> list[str]:
        device = next(model.parameters()).device
        answers: list[str] = []
        for _, _, batch in self._batches(features, device):
            gen = model.generate(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                                 max_length=self.meta["max_answer_length"], num_beams=num_beams)
            answers += [self.tokenizer.decode(s, skip_special_tokens=True).strip() for s in gen.sequences]
        return answers

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        loss_sum, tokens = 0.0, 0
        with torch.no_grad():
            for _, _, batch in self._batches(self.validation_features, device):
                out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                            decoder_input_ids=batch["decoder_input_ids"], labels=batch["labels"])
                loss_sum += float(out.loss_sum)
                tokens += int(out.token_count)
        loss = loss_sum / max(tokens, 1)
        predictions = self.generate(model, self.validation_features)
        metrics = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
                   **generation_metrics(predictions, self.references)}
        samples = [{"question": ex["question"], "reference": ref, "prediction": pred}
                   for ex, ref, pred in zip(self.validation, self.references, predictions)][:SAMPLE_ANSWERS]
        self._evaluated({"task": self.name, **metrics, "examples": len(predictions), "decoding": "greedy",
                         "samples": samples})
        return metrics

    def probes(self, model: nn.Module) -> list[dict[str, Any]]:
        """The first validation answers of the evaluation that just ran (the trainer probes right after it)."""
        return _sample_probes(self.report)


# --------------------------------------------------------------------------------------------------------------
# Extractive QA
# --------------------------------------------------------------------------------------------------------------


class SpanQATask(FinetuneTask):
    """Start/end cross-entropy on windowed features; evaluation post-processes the windows of each question back
    into one answer (n-best, max answer length) and scores it with SQuAD's exact match and F1."""

    name = "qa-span"

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._moved()
        out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                    start_positions=batch["start_positions"], end_positions=batch["end_positions"])
        loss = out.loss * self._share(batch, totals)
        return loss, {"ce": loss}

    @torch.no_grad()
    def predict(self, model: nn.Module) -> tuple[list[Any], float]:
        device = next(model.parameters()).device
        starts, ends, loss_sum = [], [], 0.0
        for _, chunk, batch in self._batches(self.validation_features, device):
            out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                        start_positions=batch["start_positions"], end_positions=batch["end_positions"])
            loss_sum += float(out.loss) * len(chunk)
            for f, s, e in zip(chunk, out.start_logits.cpu(), out.end_logits.cpu()):
                n = len(f["input_ids"])
                starts.append(s[:n])
                ends.append(e[:n])
        preds = postprocess_span_predictions(self.validation, self.validation_features, starts, ends,
                                             max_answer_length=self.meta["max_answer_length"])
        return preds, loss_sum / max(len(self.validation_features), 1)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        preds, loss = self.predict(model)
        refs = {ex["id"]: ex["answers"]["text"] for ex in self.validation}
        scores = squad_metrics({ex["id"]: p.text for ex, p in zip(self.validation, preds)}, refs)
        metrics = {"loss": loss, **scores}
        samples = [{"question": ex["question"], "references": ex["answers"]["text"], "prediction": p.text,
                    "score": p.score} for ex, p in zip(self.validation, preds)][:SAMPLE_ANSWERS]
        self._evaluated({"task": self.name, **metrics, "examples": len(self.validation), "samples": samples})
        return metrics

    def probes(self, model: nn.Module) -> list[dict[str, Any]]:
        return _sample_probes(self.report)


def _sample_probes(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for s in (report or {}).get("samples", [])[:PROBE_COUNT]:
        refs = s.get("references") or [s.get("reference", "")]
        out.append({"text": s["question"], "answer": s["prediction"], "reference": refs[0] if refs else ""})
    return out


TASKS = {"classify": ClassificationTask, "ner": NERTask, "qa": GenerativeQATask, "qa-span": SpanQATask}


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------


def task_metadata(task: str, cfg: Config, tokenizer: Any, data_name: str, labels: list[str] | None,
                  source: Path, max_length: int) -> dict[str, Any]:
    """The "bert2" block of a fine-tuned checkpoint's config.json: what the Predictor needs to rebuild the head."""
    f = cfg.finetune
    meta: dict[str, Any] = {"task": task, "data": data_name, "source_checkpoint": str(source),
                            "max_seq_length": max_length, "max_answer_length": f.max_answer_length}
    if task == "classify":
        meta.update(labels=list(labels or []), classifier_dropout=f.classifier_dropout, pooling=f.pooling,
                    truncation=f.truncation)
    elif task == "ner":
        meta.update(labels=list(labels or []), classifier_dropout=f.classifier_dropout)
    elif task == "qa":
        special = [tokenizer.mask_token_id, tokenizer.unk_token_id]
        meta.update(decoder_layers=f.decoder_layers, num_beams=f.num_beams, copy=f.copy_mechanism,
                    no_repeat_ngram_size=f.no_repeat_ngram_size, max_word_repeats=f.max_word_repeats,
                    start_token_id=tokenizer.cls_token_id,
                    eos_token_id=tokenizer.sep_token_id, suppress_token_ids=[t for t in special if t is not None])
    elif task == "qa-span":
        meta.update(doc_stride=f.doc_stride)
    return meta


def inference_length(task: str, model_cfg: Any, eval_max_seq_length: int, train_length: int) -> int:
    """Tokens a fine-tuned model reads at evaluation and inference.

    Longer than in training only for classification with ALiBi: its attention bias depends on distance alone, so
    the model reads a 512-token review it was trained on 256-token cuts of (measured: 84.3% vs 82.8% on IMDB for
    the same weights), and training at 256 is about twice as fast. A learned position table (absolute) has
    untrained rows past the training length, and QA's windows and segment layout are kept as trained.
    """
    if task != "classify" or model_cfg.position_embedding_type != "alibi" or eval_max_seq_length <= 0:
        return train_length
    return min(max(train_length, eval_max_seq_length), model_cfg.max_position_embeddings)


def resolve_source(cfg: Config, from_checkpoint: str | Path | None) -> Path:
    """The checkpoint to fine-tune from: --from, else finetune.from_checkpoint, else pretrain best/final."""
    chosen = str(from_checkpoint or cfg.finetune.from_checkpoint or "").strip()
    if chosen and chosen != SCRATCH:
        return ckpt.resolve(chosen)
    return ckpt.default_checkpoint(cfg.paths.root, "pretrain")


def featurize(task: str, examples: Sequence[dict[str, Any]], tokenizer: Any, max_length: int, cfg: Config,
              for_eval: bool = False, truncation: str | None = None, labels: Sequence[str] | None = None
              ) -> list[dict[str, Any]]:
    f = cfg.finetune
    if task == "classify":
        return fd.featurize_classification(examples, tokenizer, max_length, truncation or f.truncation)
    if task == "qa":
        return fd.featurize_generative(examples, tokenizer, max_length, f.max_answer_length)
    if task == "ner":
        return featurize_ner(examples, tokenizer, max_length, labels or [])
    return fd.featurize_span(examples, tokenizer, max_length, f.doc_stride, keep_offsets=for_eval)


def run_finetuning(cfg: Config, callbacks: list[Callback] | None = None, stop_event: threading.Event | None = None,
                   resume: bool | str | Path = False, from_checkpoint: str | Path | None = None,
                   trust_checkpoint: bool = False) -> DoneEvent:
    """Fine-tune cfg.finetune.task on cfg.finetune.data from a pretraining checkpoint (or resume a fine-tuning
    run); events go to `callbacks`. Raises Bert2Error subclasses for anything the user can fix.

    `from_checkpoint="scratch"` (`bert2 finetune --from scratch`) trains the same architecture from a random
    initialisation: the shape and tokenizer still come from the pretraining checkpoint it would otherwise start
    from, only its weights are not loaded. Same recipe, same data: the difference is what pretraining bought.
    """
    callbacks = list(callbacks or [])
    f, p = cfg.finetune, cfg.pretrain
    task_name = f.task
    if task_name not in TASKS:
        raise TrainingError(f"unknown fine-tuning task {task_name!r}; choose {', '.join(TASKS)}")
    if p.num_threads > 0:
        torch.set_num_threads(p.num_threads)
    device = resolve_device(p.device)
    dist_info = init_distributed(device)
    logs: list[str] = []
    reporters, where = reporters_for(f.report_to, ckpt.kind_dir(cfg.paths.root, "finetune")) \
        if dist_info.is_main else ([], None)
    if where:
        logs.append(where)

    explicit = str(from_checkpoint or "").strip() == SCRATCH
    scratch = explicit or (not resume and str(f.from_checkpoint).strip() == SCRATCH)
    if explicit and resume:
        raise TrainingError("--from scratch starts a new run and --resume continues an old one; use one of them")
    resume_path: Path | None = None
    if resume:
        resume_path = (ckpt.latest_resumable(cfg.paths.root, "finetune") if resume is True else ckpt.resolve(resume))
        if resume_path is None:
            raise CheckpointError(f"nothing to resume: no complete fine-tuning checkpoint under "
                                  f"{ckpt.kind_dir(cfg.paths.root, 'finetune')}")
        check_resumable(resume_path, trust_checkpoint)
        source = resume_path
    else:
        source = resolve_source(cfg, None if scratch else from_checkpoint)
    model_cfg, source_config = read_config(source)
    source_meta = dict(source_config.get("bert2") or {})
    # Pretraining runs without dropout by default (short budgets do not overfit); fine-tuning on small labelled
    # sets does, so the encoder gets its own dropout here.
    model_cfg = dataclasses.replace(model_cfg, hidden_dropout_prob=cfg.finetune.hidden_dropout_prob)
    refuse_if_too_big(cfg, "finetune", model_cfg)
    source_task = source_meta.get("task", "mlm+nsp")
    if resume_path is not None and source_task != task_name:
        raise CheckpointError(f"{resume_path} is a {source_task} fine-tuning run; resume it with --task "
                              f"{source_task}, or start a new {task_name} run without --resume")
    tokenizer = read_tokenizer(source, model_cfg.vocab_size)
    max_length = min(f.max_seq_length, model_cfg.max_position_embeddings)
    if max_length < f.max_seq_length:
        logs.append(f"finetune.max_seq_length {f.max_seq_length} exceeds the model's "
                    f"{model_cfg.max_position_embeddings} positions; using {max_length}")

    data_name = source_meta.get("data") if resume_path is not None else resolve_data_name(task_name, f.data)
    data = load_task_data(task_name, data_name, f.max_examples, seed=cfg.data.seed)
    if resume_path is not None:
        meta = dict(source_meta)
        if task_name in ("classify", "ner") and meta.get("labels") != data.labels:
            raise CheckpointError(f"{resume_path} was trained on labels {meta.get('labels')} but {data_name} now has "
                                  f"{data.labels}; start a new run")
    else:
        meta = task_metadata(task_name, cfg, tokenizer, data_name, data.labels, source, max_length)
        meta["max_seq_length"] = inference_length(task_name, model_cfg, f.eval_max_seq_length, max_length)
        meta["train_max_seq_length"] = max_length
        meta["init"] = SCRATCH if scratch else "pretrained"
    # A resumed run keeps its own lengths ("max_seq_length" is what evaluation and the Predictor read) and cuts.
    max_length = min(int(meta.get("train_max_seq_length", meta.get("max_seq_length", max_length))),
                     model_cfg.max_position_embeddings)
    truncation = str(meta.get("truncation", "head"))
    eval_length = min(int(meta.get("max_seq_length", max_length)), model_cfg.max_position_embeddings)
    if eval_length != max_length:
        logs.append(f"inputs: {max_length} tokens in training, {eval_length} in evaluation and inference (ALiBi "
                    f"reads longer texts than it trained on; finetune.eval_max_seq_length)")

    torch.manual_seed(f.seed)  # the head's initialisation is part of the run's reproducibility
    model = build_head(task_name, model_cfg, meta)
    if task_name == "qa":
        model.set_vocabulary(tokenizer)
    if scratch:
        logs.append(f"from scratch: random weights in the shape of {source} (its tokenizer too); nothing loaded")
    elif resume_path is None:
        state = read_weights(source)
        same = source_task == task_name and (task_name not in ("classify", "ner")
                                             or source_meta.get("labels") == meta["labels"])
        report = load_pretrained(model, state, prefixes={"": ""} if same else None)
        logs.append(f"from {source} ({source_task}): {report.summary()}")
        if task_name == "qa" and not same and f.decoder_from_encoder:
            layers = model.init_decoder_from_encoder()
            logs.append(f"decoder: {layers} layer(s) start from the encoder's (self-attention, feed-forward)")

    train_features = featurize(task_name, data.train, tokenizer, max_length, cfg, truncation=truncation,
                               labels=meta.get("labels"))
    val_features = featurize(task_name, data.validation, tokenizer, eval_length, cfg, for_eval=True,
                             truncation=truncation, labels=meta.get("labels"))
    if f.eval_batches > 0:  # a fixed prefix of the validation set, so successive evaluations stay comparable
        limit = f.eval_batches * f.batch_size
        if task_name == "qa-span":
            data.validation = data.validation[:limit]
            val_features = [v for v in val_features if v["example_index"] < limit]
        else:
            data.validation, val_features = data.validation[:limit], val_features[:limit]
    task = TASKS[task_name](tokenizer, meta, data.validation, val_features, f.batch_size)

    stage_dirs = {s: cfg.stage_dir("finetune", s, create=dist_info.is_main) for s in STAGES}
    if dist_info.is_main:
        callbacks.append(jsonl_writer(ckpt.kind_dir(cfg.paths.root, "finetune") / "metrics.jsonl"))
        callbacks.extend(reporters)
    # [finetune] holds every training setting of its own; a learning rate of 0 becomes the task's recipe, and the
    # run's trainer_state.json (and so its model card) records the rate it really used.
    settings = dataclasses.replace(TrainSettings.from_section(f), learning_rate=f.peak_learning_rate())
    if not f.learning_rate:
        logs.append(f"learning rate {settings.learning_rate:g}: the {task_name} recipe (finetune.learning_rate = 0)")
    run_config = cfg.to_dict()
    run_config["finetune"] = {**run_config["finetune"], "data": data_name, "from_checkpoint": str(source),
                              "learning_rate": settings.learning_rate}
    if len(train_features) < f.batch_size:
        raise DataError(f"{data_name!r} gives {len(train_features)} training examples, fewer than one batch of "
                        f"{f.batch_size}; lower finetune.batch_size or use more data")
    trainer = Trainer(model, train_features, task, settings, stage_dirs, run_config, device, dist_info, callbacks,
                      stop_event, resume_path, trust_checkpoint)
    if resume_path is None:
        trainer.init = (f"from scratch: random weights in the shape of {source}" if scratch else
                        f"initialised from {source}")
    logs.append(f"data {data_name}: {len(data.train)} training examples ({len(train_features)} features) / "
                f"{len(data.validation)} validation" + (f", {len(data.labels)} labels" if data.labels else ""))
    logs += data.notes
    for cb in callbacks if dist_info.is_main else []:
        for message in logs:
            cb(LogEvent(level="info", message=message))
    return trainer.fit()

