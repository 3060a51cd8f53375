"""One Predictor for every checkpoint: fill-mask, attention maps, and (for fine-tuned checkpoints) the task's own
requests. The CLI and the TUI playground both call exactly this, so they cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoint as ckpt
from . import registry
from .allocator import tune_allocator
from .checkpoint.model_files import LOOKUP_KEY, load_checkpoint
from .data.collator import pad_and_stack
from .errors import CheckpointError, InputError
from .model import mean_pool
from .tasks.classify import featurize_classification
from .tasks.ner import bio_decode, entity_spans, lookup_ids, transitions, word_shape
from .tasks.pretraining import fill_mask, fill_mask_batch
from .tasks.qa import MAX_QUERY_LENGTH, truncate_question
from .tasks.qa_span import featurize_span, postprocess_span_predictions


def serving(request: str) -> tuple[str, ...]:
    """The registered tasks whose checkpoints answer an inference request (classify, ner, qa, mask)."""
    return tuple(name for name in registry.TASKS if registry.get(name).request == request)


def _encode(tokenizer: Any, text: str, max_length: int, text_pair: str | None = None) -> dict[str, torch.Tensor]:
    if not isinstance(text, str) or not text.strip():
        raise InputError("the text is empty; type a sentence")
    enc = tokenizer(text, text_pair, return_tensors="pt", truncation=False)
    n = enc["input_ids"].shape[1]
    if n > max_length:
        raise InputError(f"the text is {n} tokens long; this model reads at most {max_length}")
    return enc


class Predictor:
    """A loaded checkpoint, ready for requests. `Predictor.load(path)` accepts step, stage or kind directories."""

    def __init__(self, model: nn.Module, tokenizer: Any, task: str, path: Path, meta: dict[str, Any]):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.task = task
        self.path = path
        self.meta = meta

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Predictor:
        tune_allocator()
        loaded = load_checkpoint(path, device)
        return cls(loaded.model, loaded.tokenizer, loaded.task, loaded.path, loaded.meta)

    def fill_mask(self, text: str, top_k: int = 5) -> list[list[dict[str, Any]]]:
        """Top-k tokens with probabilities for each [MASK] in `text` (a pretraining checkpoint)."""
        if not hasattr(self.model, "mlm"):
            raise InputError(
                f"{self.path} is a {self.task} checkpoint without a masked-language-model head; "
                f"use a pretraining checkpoint for fill-mask"
            )
        return fill_mask(self.model, self.tokenizer, text, top_k)

    def fill_mask_batch(self, texts: list[str], top_k: int = 5) -> list[list[list[dict[str, Any]]]]:
        if not hasattr(self.model, "mlm"):
            raise InputError(f"{self.path} is a {self.task} checkpoint without a masked-language-model head")
        return fill_mask_batch(self.model, self.tokenizer, texts, top_k)

    @torch.no_grad()
    def attentions(self, text: str) -> tuple[list[str], torch.Tensor]:
        """Tokens and attention probabilities (L, nh, T, T) of the encoder for `text`."""
        core = self.model.bert if hasattr(self.model, "bert") else self.model
        enc = _encode(self.tokenizer, text, core.config.max_position_embeddings)
        out = core(enc["input_ids"], enc.get("token_type_ids"), output_attentions=True)  # eager path
        maps = torch.stack([a[0] for a in out.attentions])  # L x (nh, T, T) -> (L, nh, T, T)
        return self.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()), maps

    # ---- fine-tuned tasks -----------------------------------------------------------------------------------
    @property
    def max_length(self) -> int:
        core = self.model.bert if hasattr(self.model, "bert") else self.model
        limit = core.config.max_position_embeddings
        return min(int(self.meta.get("max_seq_length") or limit), limit)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _require(self, request: str, what: str) -> None:
        wanted = serving(request)
        if self.task not in wanted:
            hint = f"bert2 finetune --task {wanted[0]}"
            raise InputError(
                f"{self.path} is a {self.task} checkpoint; {what} needs a {' or '.join(wanted)} "
                f"checkpoint (train one with `{hint}`, then pass it with --checkpoint)"
            )

    def _tensors(self, enc: Any) -> dict[str, torch.Tensor]:
        ids = torch.as_tensor(enc["input_ids"], device=self.device)  # (B, T)
        types = (
            torch.as_tensor(enc["token_type_ids"], device=self.device)
            if "token_type_ids" in enc
            else torch.zeros_like(ids)
        )  # (B, T)
        mask = torch.as_tensor(enc["attention_mask"], device=self.device)  # (B, T)
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}

    @torch.no_grad()
    def classify(self, text: str) -> dict[str, Any]:
        """{"label", "score", "scores": {label: probability}} for `text` (truncated to the model's length)."""
        self._require("classify", "classification")
        text = check_text(text, "text")
        # Cut as in training and evaluation (checkpoints from before head+tail cuts kept the head).
        ids = featurize_classification(
            [{"text": text, "label": 0}], self.tokenizer, self.max_length, str(self.meta.get("truncation", "head"))
        )[0]["input_ids"]
        ids = ids.long()[None].to(self.device)  # (1, T)
        logits = self.model(ids, torch.zeros_like(ids), torch.ones_like(ids)).logits[0]  # (C,)
        probs = logits.float().softmax(-1).tolist()  # (C,)
        labels = list(self.meta.get("labels") or [str(i) for i in range(len(probs))])
        best = max(range(len(probs)), key=probs.__getitem__)
        return {
            "label": labels[best],
            "score": round(probs[best], 6),
            "scores": {name: round(p, 6) for name, p in zip(labels, probs)},
        }

    def word_features(
        self, text: str
    ) -> tuple[list[int], list[int | None], dict[int, list[int]], dict[int, int], dict[str, list[int]]]:
        """A NER input as the tagger reads it: piece ids (no [CLS]/[SEP]), each piece's word, each word's character
        span and first piece, and the word features per piece its checkpoint reads ("shape_ids": letter case;
        "lookup_ids": the saved lookup table's tag, by the word's text), as tasks/ner.py's featurize_ner gives
        them in training and evaluation."""
        labels = list(self.meta.get("labels") or [])
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets, word_ids = enc["input_ids"], enc["offset_mapping"], enc.word_ids()
        first: dict[int, int] = {}
        spans: dict[int, list[int]] = {}
        for i, w in enumerate(word_ids):
            if w is None:
                continue
            first.setdefault(w, i)
            spans.setdefault(w, [offsets[i][0], offsets[i][1]])[1] = offsets[i][1]
        extra: dict[str, list[int]] = {}
        if self.meta.get("case_features"):  # each piece gets its word's shape, read from the original text
            kind = {w: word_shape(text[a:b]) for w, (a, b) in spans.items()}
            extra["shape_ids"] = [0 if w is None else kind[w] for w in word_ids]
        if self.meta.get("lookup_feature"):  # and what the training set's table says of the word
            order = sorted(spans)
            values = dict(
                zip(order, lookup_ids([text[a:b] for a, b in (spans[w] for w in order)], self._table, labels))
            )
            extra["lookup_ids"] = [0 if w is None else values[w] for w in word_ids]
        return ids, word_ids, spans, first, extra

    @property
    def _table(self) -> dict[str, str]:
        table = self.meta.get(LOOKUP_KEY)
        if not isinstance(table, dict):
            raise CheckpointError(f"{self.path}: config.json asks for the lookup feature but no lookup.json was read")
        return table

    @torch.no_grad()
    def entities(self, text: str) -> dict[str, Any]:
        """{"entities": [{"text", "label", "start", "end", "score"}]} for `text`, with character offsets into it
        (end exclusive, so text[start:end] == entity text) and score the mean probability of its words' tags.

        Words are what the tokenizer's pre-tokenizer splits (whitespace and punctuation), each read from its first
        piece as in training (with its letter case when the model reads it), decoded into the most probable
        tags that keep BIO's rule (tasks/ner.py bio_decode); a text longer than the model reads is tagged in
        consecutive windows cut between words. Tags become entities as conlleval reads them (entity_spans).
        """
        self._require("ner", "entity recognition")
        check_text(text, "text")
        labels = list(self.meta.get("labels") or [])
        ids, word_ids, spans, first, extra = self.word_features(text)
        shapes, lookups = extra.get("shape_ids"), extra.get("lookup_ids")
        room = max(self.max_length - 2, 1)  # [CLS] and [SEP]
        log_probs: list[torch.Tensor] = []
        start = 0
        while start < len(ids):
            end = min(start + room, len(ids))
            cut = end
            while end < len(ids) and cut > start and word_ids[cut] == word_ids[cut - 1]:
                cut -= 1  # back to the start of the word the window would split
            end = cut if cut > start else end
            window = torch.tensor(
                [[self.tokenizer.cls_token_id, *ids[start:end], self.tokenizer.sep_token_id]], device=self.device
            )  # (1, n + 2)
            shape_ids = None if shapes is None else torch.tensor([[0, *shapes[start:end], 0]], device=self.device)
            lookup = None if lookups is None else torch.tensor([[0, *lookups[start:end], 0]], device=self.device)
            out = self.model(
                window, torch.zeros_like(window), torch.ones_like(window), shape_ids=shape_ids, lookup_ids=lookup
            )
            log_probs.append(out.logits[0, 1:-1].float().log_softmax(-1).cpu())  # (n, C)
            start = end
        piece = torch.cat(log_probs) if log_probs else torch.zeros(0, len(labels))  # (P, C)
        order = sorted(first)
        words = piece[[first[w] for w in order]] if order else piece  # (W, C): each word's first piece
        path = bio_decode(words, transitions(labels))  # the most probable tags that break no BIO rule
        tags = [labels[j] for j in path]
        scores = [float(words[k, j].exp()) for k, j in enumerate(path)]
        found = []
        for label, a, b in entity_spans(tags):
            char_start, char_end = spans[order[a]][0], spans[order[b - 1]][1]
            found.append(
                {
                    "text": text[char_start:char_end],
                    "label": label,
                    "start": char_start,
                    "end": char_end,
                    "score": round(sum(scores[a:b]) / (b - a), 6),
                }
            )
        return {"entities": found}

    @torch.no_grad()
    def answer(
        self, question: str, context: str, num_beams: int | None = None, max_length: int | None = None
    ) -> dict[str, Any]:
        """Answer `question` from `context`.

        Generative QA: {"answer", "score"}, with beam search of the checkpoint's beam width unless `num_beams` is
        given, and score the per-token geometric-mean probability of the answer (length-independent, in [0, 1]).
        Span QA: also "start" and "end", character offsets of the answer in `context` (end exclusive), and score
        p(start) * p(end); a long context is read in overlapping windows as in training.
        """
        self._require("qa", "question answering")
        question = check_text(question, "question")
        check_text(context, "context")
        if self.task == "qa-span":
            example = {"id": "0", "question": question, "context": context, "answers": {"text": [], "answer_start": []}}
            feats = featurize_span(
                [example], self.tokenizer, self.max_length, int(self.meta.get("doc_stride", 64)), keep_offsets=True
            )
            if not feats:
                raise InputError("the question leaves no room for the context; shorten the question")
            batch = {k: v.to(self.device) for k, v in pad_and_stack(feats, self.tokenizer.pad_token_id).items()}
            out = self.model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
            starts = [s[: len(f["input_ids"])].cpu() for f, s in zip(feats, out.start_logits)]
            ends = [e[: len(f["input_ids"])].cpu() for f, e in zip(feats, out.end_logits)]
            limit = int(max_length or self.meta.get("max_answer_length", 30))
            pred = postprocess_span_predictions([example], feats, starts, ends, max_answer_length=limit)[0]
            return {"answer": pred.text, "score": round(pred.score, 6), "start": pred.start, "end": pred.end}

        q = truncate_question(self.tokenizer, question, min(MAX_QUERY_LENGTH, self.max_length // 2))
        enc = self._tensors(
            self.tokenizer(q, context, truncation="only_second", max_length=self.max_length, return_tensors="pt")
        )
        beams = int(num_beams if num_beams is not None else self.meta.get("num_beams", 1))
        if beams < 1:
            raise InputError(f"num_beams must be at least 1, got {beams}")
        gen = self.model.generate(
            enc["input_ids"],
            enc["token_type_ids"],
            enc["attention_mask"],
            max_length=max_length or self.meta.get("max_answer_length"),
            num_beams=beams,
        )
        text = self.tokenizer.decode(gen.sequences[0], skip_special_tokens=True).strip()
        return {"answer": text, "score": round(float(gen.mean_log_probs[0].exp()), 6)}

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        """(N, H) mean of the encoder's last hidden states over each text's non-padding tokens ([CLS]/[SEP] too).

        Works for every checkpoint (pretraining ones included): it reads only the shared encoder.
        """
        texts = [check_text(t, "text") for t in texts]
        core = self.model.bert if hasattr(self.model, "bert") else self.model
        enc = self._tensors(
            self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        )
        hidden = core(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"]).last_hidden_state  # (N, T, H)
        return mean_pool(hidden, enc["attention_mask"])  # (N, H)

    def similarity(self, text_a: str, text_b: str) -> float:
        """Cosine similarity in [-1, 1] of the mean-pooled encodings of two texts."""
        a, b = self.embed([text_a, text_b]).float()  # 2 x (H,)
        return round(float(torch.nn.functional.cosine_similarity(a, b, dim=0)), 6)


def check_text(text: Any, what: str) -> str:
    """Reject input with nothing to read: empty, whitespace, or punctuation only (no letter or digit)."""
    if not isinstance(text, str) or not any(ch.isalnum() for ch in text):
        raise InputError(
            f"the {what} is empty; type some text"
            if not (isinstance(text, str) and text.strip())
            else f"the {what} has no words in it ({text.strip()[:40]!r}); type some text"
        )
    return text.strip()


def find_task_checkpoint(root: str | Path, tasks: tuple[str, ...]) -> Path:
    """Newest complete fine-tuning checkpoint whose task is one of `tasks`: best/ first, then final/, checkpoint/.

    The three fine-tuning directories (checkpoint, best, final) hold whichever task ran last, so a classify request must not silently
    pick up a QA checkpoint; when none matches, the error says what is there instead.
    """
    base = ckpt.kind_dir(root, "finetune")
    seen: set[str] = set()
    for stage in ("best", "final", "checkpoint"):
        for p in reversed(ckpt.step_dirs(base / stage)):
            if not ckpt.is_complete(p):
                continue
            try:
                task = (ckpt.read_json(p / ckpt.CONFIG_FILE).get("bert2") or {}).get("task", "")
            except CheckpointError:
                continue
            if task in tasks:
                return p
            seen.add(str(task))
    there = f" (it holds {', '.join(sorted(seen))} checkpoints)" if seen else ""
    raise CheckpointError(
        f"no {' or '.join(tasks)} checkpoint under {base}{there}; run `bert2 finetune --task "
        f"{tasks[0]}` first or pass --checkpoint DIR"
    )


def default_checkpoint_for(root: str | Path, mode: str) -> Path:
    """The checkpoint an inference mode uses when none is given.

    classify, ner and qa: the newest fine-tuned checkpoint of that task (qa accepts generative or span QA).
    similarity and mask: pretraining best/final (its representations are the general-purpose ones), else any
    fine-tuned checkpoint.
    """
    if mode in ("classify", "qa", "ner"):
        return find_task_checkpoint(root, serving(mode))
    try:
        return ckpt.default_checkpoint(root, "pretrain")
    except CheckpointError:
        if mode == "similarity":
            try:
                return ckpt.default_checkpoint(root, "finetune")
            except CheckpointError:
                pass
        raise
