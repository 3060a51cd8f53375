"""Generative question answering: the encoder reads "question [SEP] context", a small Transformer decoder writes
the answer (model/decoder.py BertForGenerativeQA, with a copy mechanism).

Examples are ``{"question": str, "context": str, "answer": str}``. Teacher-forced token cross-entropy, normalised
over all answer tokens of the accumulated batch; evaluation adds greedy generation scored with BLEU, ROUGE and
exact match. Built-in, offline: ``wiki-qa`` ("What is {title}?" + the extract -> the human-written description).
Hub: ``ms_marco`` v2.1. Local: .jsonl/.json with question, context, answer.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..baselines import definition_rule
from ..config import Config, ModelConfig
from ..data.collator import id_tensor
from ..data.corpus import load_wiki_articles
from ..data.hub import hub_split, is_hub_name, load_hub_dataset
from ..data.records import SPLIT_COLUMN, VALIDATION_CAP, local_path, read_records, require_fields
from ..errors import CheckpointError, DataError
from ..metrics import generation_metrics
from ..model.decoder import BertForGenerativeQA
from .base import SAMPLE_ANSWERS, FinetuneTask, TaskData, sample_probes

WIKI_QA = "wiki-qa"
MAX_QUERY_LENGTH = 64  # questions longer than this (in tokens) are cut, so the context always gets room


class QuestionAnswering(FinetuneTask):
    """What the two QA tasks share: an example is a question about a context."""

    @classmethod
    def split_key(cls, example: dict[str, Any]) -> str:
        """The context: every question about one text on the same side of the split."""
        return example["context"] or example["question"]

    @classmethod
    def input_text(cls, example: dict[str, Any]) -> str:
        return f"{example['question']} {example['context']}"

    @classmethod
    def texts(cls, examples: list[dict[str, Any]]) -> list[str]:
        """Each distinct context once (many questions share one): the reading the task is about."""
        return list(dict.fromkeys(ex["context"] for ex in examples if ex["context"]))


class GenerativeQATask(QuestionAnswering):
    """Teacher-forced token cross-entropy, normalised over all answer tokens of the accumulated batch; evaluation
    adds greedy generation scored with BLEU, ROUGE and exact match (beam search is for inference: it multiplies
    the evaluation time by the beam width for a small gain)."""

    name = "qa"
    summary = "generative question answering (an encoder reads, a decoder writes)"
    request = "qa"
    headline_metric = "rouge1"
    best_metric = "rouge1"  # best/: the checkpoint whose generated answers score best (every evaluation generates)
    greater_is_better = True
    builtin_data = (WIKI_QA,)
    default_data = WIKI_QA
    hub_data = ("ms_marco", "ms_marco:v2.1")
    local_formats = ".jsonl/.json with fields question,context,answer"
    learning_rate = 2e-3  # ROUGE-1 0.457 against 0.449 at 1e-3 (generative QA needs the larger rate)
    inference_example = 'bert2 inference qa --question "What is Paris?" --context "Paris is the capital of France."'

    # ---- data -------------------------------------------------------------------------------------------------
    @classmethod
    def load_data(cls, name: str, seed: int) -> TaskData:
        if name == WIKI_QA:
            examples = [
                {"question": f"What is {a['title']}?", "context": a["extract"], "answer": a["description"]}
                for a in load_wiki_articles()
                if a["description"].strip() and a["extract"].strip()
            ]
            return cls.held_out(examples, seed, source="wiki-offline: What is {title}? + extract -> description")
        path = local_path(name)
        if path is not None:
            return cls._load_file(path, seed)
        if is_hub_name(name, cls.hub_data):
            base, _, config = name.partition(":")
            dd = load_hub_dataset(base, config or ("v2.1" if base == "ms_marco" else None), cls.hub_alternative())
            train = _marco_rows(hub_split(dd, "train"))
            val = _marco_rows(hub_split(dd, "validation"))[:VALIDATION_CAP]
            random.Random(seed).shuffle(train)
            if not val:
                return cls.held_out(train, seed, source=f"hub:{name}")
            return TaskData(train, val, None, f"hub:{name}")
        raise cls.unknown_data(name)

    @classmethod
    def _load_file(cls, path: Path, seed: int) -> TaskData:
        records = read_records(path, "QA", cls.local_formats)
        if records and "answer" not in records[0] and "answers" in records[0]:
            for r in records:
                a = r.get("answers")
                r["answer"] = a[0] if isinstance(a, list) and a else (a if isinstance(a, str) else "")
        require_fields(records, ("question", "context", "answer"), path)
        examples = [
            {"question": str(r["question"]), "context": str(r["context"] or ""), "answer": str(r["answer"])}
            for r in records
            if str(r.get("question") or "").strip() and str(r.get("answer") or "").strip()
        ]
        if not examples:
            raise DataError(
                f"{path}: no record has both a question and an answer; each needs question, context and answer"
            )
        missing = len(records) - len(examples)
        notes = [f"{path}: {missing} records left out, without a question or an answer"] if missing else []
        kept = [r for r in records if str(r.get("question") or "").strip() and str(r.get("answer") or "").strip()]
        marked = [r.get(SPLIT_COLUMN) for r in kept] if SPLIT_COLUMN in records[0] else None
        return cls.held_out(examples, seed, source=str(path), notes=notes, marked=marked)

    @classmethod
    def baselines(cls, data: TaskData) -> dict[str, dict[str, float]]:
        refs = [ex["answer"] for ex in data.validation]
        return {"definition_rule": generation_metrics([definition_rule(ex["context"]) for ex in data.validation], refs)}

    @classmethod
    def featurize(
        cls,
        examples: Sequence[dict[str, Any]],
        tokenizer: Any,
        max_length: int,
        meta: dict[str, Any],
        for_eval: bool = False,
    ) -> list[dict[str, Any]]:
        return featurize_generative(examples, tokenizer, max_length, int(meta["max_answer_length"]))

    @classmethod
    def metadata(cls, cfg: Config, tokenizer: Any, data: TaskData) -> dict[str, Any]:
        f = cfg.finetune
        special = [tokenizer.mask_token_id, tokenizer.unk_token_id]
        return {
            "decoder_layers": f.decoder_layers,
            "num_beams": f.num_beams,
            "copy": f.copy_mechanism,
            "no_repeat_ngram_size": f.no_repeat_ngram_size,
            "max_word_repeats": f.max_word_repeats,
            "start_token_id": tokenizer.cls_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "suppress_token_ids": [t for t in special if t is not None],
        }

    # ---- model ------------------------------------------------------------------------------------------------
    @classmethod
    def head(cls, model_cfg: ModelConfig, meta: dict[str, Any]) -> nn.Module:
        try:
            return BertForGenerativeQA(
                model_cfg,
                decoder_layers=int(meta["decoder_layers"]),
                max_target_positions=int(meta["max_answer_length"]),
                start_token_id=int(meta["start_token_id"]),
                eos_token_id=int(meta["eos_token_id"]),
                suppress_token_ids=tuple(int(t) for t in meta.get("suppress_token_ids", ())),
                # Checkpoints from before the copy mechanism have neither key.
                copy=bool(meta.get("copy", False)),
                no_repeat_ngram_size=int(meta.get("no_repeat_ngram_size", 0)),
                max_word_repeats=int(meta.get("max_word_repeats", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"qa checkpoint metadata lacks a valid {exc} entry") from None

    @classmethod
    def build_model(cls, model_cfg: ModelConfig, meta: dict[str, Any], tokenizer: Any = None) -> nn.Module:
        model = super().build_model(model_cfg, meta, tokenizer)
        if tokenizer is not None:
            model.set_vocabulary(tokenizer)  # which tokens start a word: generation's word-repeat rule
        return model

    @classmethod
    def export_problem(cls, meta: dict[str, Any]) -> str | None:
        return (
            "it is a generative QA checkpoint (task qa): its answer decoder has no transformers BERT "
            "equivalent; export a pretraining, classify, qa-span or ner checkpoint"
        )

    @classmethod
    def warm_start(cls, model: nn.Module, cfg: Config) -> list[str]:
        """finetune.decoder_from_encoder: the decoder's layers start from the encoder's (Rothe et al. 2020)."""
        if not cfg.finetune.decoder_from_encoder:
            return []
        layers = model.init_decoder_from_encoder()
        return [f"decoder: {layers} layer(s) start from the encoder's (self-attention, feed-forward)"]

    # ---- the trainer protocol -----------------------------------------------------------------------------------

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

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._moved()
        out = model(
            batch["input_ids"],
            batch["token_type_ids"],
            batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"],
            labels=batch["labels"],
        )
        loss = out.loss_sum / totals["target_tokens"].clamp(min=1)
        return loss, {"ce": loss}

    @torch.no_grad()
    def generate(self, model: nn.Module, features: Sequence[dict[str, Any]], num_beams: int = 1) -> list[str]:
        device = next(model.parameters()).device
        answers: list[str] = []
        for _, _, batch in self._batches(features, device):
            gen = model.generate(
                batch["input_ids"],
                batch["token_type_ids"],
                batch["attention_mask"],
                max_length=self.meta["max_answer_length"],
                num_beams=num_beams,
            )
            answers += [self.tokenizer.decode(s, skip_special_tokens=True).strip() for s in gen.sequences]
        return answers

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        loss_sum, tokens = 0.0, 0
        with torch.no_grad():
            for _, _, batch in self._batches(self.validation_features, device):
                out = model(
                    batch["input_ids"],
                    batch["token_type_ids"],
                    batch["attention_mask"],
                    decoder_input_ids=batch["decoder_input_ids"],
                    labels=batch["labels"],
                )
                loss_sum += float(out.loss_sum)
                tokens += int(out.token_count)
        loss = loss_sum / max(tokens, 1)
        predictions = self.generate(model, self.validation_features)
        metrics = {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            **generation_metrics(predictions, self.references),
        }
        samples = [
            {"question": ex["question"], "reference": ref, "prediction": pred}
            for ex, ref, pred in zip(self.validation, self.references, predictions)
        ][:SAMPLE_ANSWERS]
        self._evaluated(
            {"task": self.name, **metrics, "examples": len(predictions), "decoding": "greedy", "samples": samples}
        )
        return metrics

    def probes(self, model: nn.Module) -> list[dict[str, Any]]:
        """The first validation answers of the evaluation that just ran (the trainer probes right after it)."""
        return sample_probes(self.report)


# --------------------------------------------------------------------------------------------------------------
# Featurisation
# --------------------------------------------------------------------------------------------------------------


def truncate_question(tokenizer: Any, question: str, max_tokens: int) -> str:
    """Cut `question` to its first `max_tokens` tokens (at a character offset, so the text stays intact)."""
    question = question.strip()
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_tokens:
        return question
    return question[: offsets[max_tokens - 1][1]]


def featurize_generative(
    examples: Sequence[dict[str, Any]], tokenizer: Any, max_length: int, max_answer_length: int
) -> list[dict[str, Any]]:
    """Encoder: [CLS] question [SEP] context [SEP] (context truncated). Decoder: [CLS] answer -> answer [SEP].

    `max_answer_length` counts the end token, so answers keep at most max_answer_length - 1 word pieces.
    """
    max_q = min(MAX_QUERY_LENGTH, max_length // 2)
    questions = [truncate_question(tokenizer, ex["question"], max_q) for ex in examples]
    enc = tokenizer(
        questions, [ex["context"] or "" for ex in examples], truncation="only_second", max_length=max_length
    )
    ans = tokenizer(
        [ex["answer"] for ex in examples],
        add_special_tokens=False,
        truncation=True,
        max_length=max(1, max_answer_length - 1),
    )
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    out = []
    for ids, types, a in zip(enc["input_ids"], enc["token_type_ids"], ans["input_ids"]):
        out.append(
            {
                "input_ids": id_tensor(ids),
                "token_type_ids": id_tensor(types),
                "decoder_input_ids": id_tensor([cls] + a),
                "labels": id_tensor(a + [sep]),
            }
        )
    return out


def _marco_rows(split: Any) -> list[dict[str, Any]]:
    """MS MARCO rows -> (question, context, answer): the selected passage (else the first), the first real answer."""
    if split is None:
        return []
    out = []
    for query, passages, answers in zip(split["query"], split["passages"], split["answers"]):
        answer = next((a for a in answers or [] if a and a.strip() and a != "No Answer Present."), None)
        texts = (passages or {}).get("passage_text") or []
        if not answer or not texts:
            continue
        selected = (passages or {}).get("is_selected") or []
        context = next((t for t, s in zip(texts, selected) if s), texts[0])
        out.append({"question": query, "context": context, "answer": answer})
    return out
