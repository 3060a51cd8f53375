"""Extractive (span) question answering: the answer is a span of the context, found as its start and end tokens.

Examples use SQuAD's own layout, ``{"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}``
(so the hub's ``squad`` needs no conversion). "[CLS] question [SEP] context [SEP]", a long context cut into
overlapping windows; the head (model/heads.py BertForQuestionAnswering) gives start and end logits per token;
the loss is their cross-entropy; evaluation maps each question's windows back to one answer (n-best, max answer
length) and scores it with SQuAD's exact match and F1.

Built-in, offline: ``wiki-span`` (the wiki-qa questions answered by the span of the extract that best matches
the description: distant supervision, see `wiki_span_examples`). Hub: ``squad``. Local: SQuAD-format JSON.
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..baselines import definition_rule, overlap_sentence
from ..config import Config, ModelConfig
from ..data.collator import id_tensor
from ..data.corpus import load_wiki_articles
from ..data.hub import hub_split, is_hub_name, load_hub_dataset
from ..data.records import VALIDATION_CAP, local_path, read_records, require_fields, where_of
from ..errors import DataError
from ..metrics import normalize_answer, squad_metrics
from ..model.heads import BertForQuestionAnswering
from .base import SAMPLE_ANSWERS, TaskData, sample_probes
from .qa import MAX_QUERY_LENGTH, QuestionAnswering, truncate_question

WIKI_SPAN = "wiki-span"


class SpanQATask(QuestionAnswering):
    """Start/end cross-entropy on windowed features; evaluation post-processes the windows of each question back
    into one answer (n-best, max answer length) and scores it with SQuAD's exact match and F1."""

    name = "qa-span"
    summary = "extractive question answering (the answer is a span of the context)"
    request = "qa"
    headline_metric = "f1"
    best_metric = "f1"  # best/ holds the checkpoint that answers best, not the one most sure of its windows
    greater_is_better = True
    export_class = "BertForQuestionAnswering"
    pipeline_tag = "question-answering"
    builtin_data = (WIKI_SPAN,)
    default_data = WIKI_SPAN
    hub_data = ("squad",)
    local_formats = "SQuAD-format .json (or .jsonl with id,question,context,answers)"
    learning_rate = 1e-3  # wiki-span F1 57.8 against 56.5 at 2e-3, paired on one checkpoint
    # Span boundaries are learnt fast and then overfitted: 1.5 epochs of wiki-span's 7,133 questions gave F1 59.4,
    # the general 27,000 examples (3.8 epochs) 56.5 at the end (57.7 at its step 280); docs/quality.md.
    examples_seen = 10_700
    inference_example = (
        'bert2 inference qa --question "What is the capital of France?" --context "Paris is the capital of France."'
    )

    # ---- data -------------------------------------------------------------------------------------------------
    @classmethod
    def load_data(cls, name: str, seed: int) -> TaskData:
        if name == WIKI_SPAN:
            examples, dropped = wiki_span_examples()
            notes = [
                f"wiki-span: {len(examples)} questions; {dropped} articles left out (no span of the extract "
                "matches their description)"
            ]
            return cls.held_out(
                examples,
                seed,
                source="wiki-offline: What is {title}? -> the extract's span closest to the description",
                notes=notes,
            )
        path = local_path(name)
        if path is not None:
            dropped_ids: list[str] = []
            examples = read_squad(path, dropped_ids, cls.local_formats)
            notes = (
                [
                    f"{path}: {len(dropped_ids)} questions left out, empty or with an answer text that is not in "
                    f"their context (first: {dropped_ids[0]})"
                ]
                if dropped_ids
                else []
            )
            return cls.held_out(examples, seed, source=str(path), notes=notes)
        if is_hub_name(name, cls.hub_data):
            return cls._load_hub(name, seed)
        raise cls.unknown_data(name)

    @classmethod
    def _load_hub(cls, name: str, seed: int) -> TaskData:
        base, _, config = name.partition(":")
        dd = load_hub_dataset(base, config or None, cls.hub_alternative())
        rows = {}
        for split_name in ("train", "validation"):
            part = hub_split(dd, split_name)
            rows[split_name] = (
                []
                if part is None
                else [
                    {
                        "id": str(r["id"]),
                        "question": r["question"],
                        "context": r["context"],
                        "answers": {
                            "text": list(r["answers"]["text"]),
                            "answer_start": list(r["answers"]["answer_start"]),
                        },
                    }
                    for r in part
                ]
            )
        train, val = rows["train"], rows["validation"][:VALIDATION_CAP]
        random.Random(seed).shuffle(train)
        if not val:
            return cls.held_out(train, seed, source=f"hub:{name}")
        return TaskData(train, val, None, f"hub:{name}")

    @classmethod
    def baselines(cls, data: TaskData) -> dict[str, dict[str, float]]:
        refs = {ex["id"]: ex["answers"]["text"] for ex in data.validation}
        return {
            name: squad_metrics({ex["id"]: rule(ex) for ex in data.validation}, refs)
            for name, rule in (
                ("definition_rule", lambda ex: definition_rule(ex["context"])),
                ("overlap_sentence", lambda ex: overlap_sentence(ex["question"], ex["context"])),
            )
        }

    @classmethod
    def featurize(
        cls,
        examples: Sequence[dict[str, Any]],
        tokenizer: Any,
        max_length: int,
        meta: dict[str, Any],
        for_eval: bool = False,
    ) -> list[dict[str, Any]]:
        return featurize_span(examples, tokenizer, max_length, int(meta.get("doc_stride", 64)), keep_offsets=for_eval)

    @classmethod
    def metadata(cls, cfg: Config, tokenizer: Any, data: TaskData) -> dict[str, Any]:
        return {"doc_stride": cfg.finetune.doc_stride}

    @classmethod
    def limit_validation(
        cls, validation: list[dict[str, Any]], features: list[dict[str, Any]], limit: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A long context gives several windows (features) per question, each naming it by example_index."""
        return validation[:limit], [v for v in features if v["example_index"] < limit]

    # ---- model ------------------------------------------------------------------------------------------------
    @classmethod
    def head(cls, model_cfg: ModelConfig, meta: dict[str, Any]) -> nn.Module:
        return BertForQuestionAnswering(model_cfg)

    # ---- the trainer protocol -----------------------------------------------------------------------------------

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._moved()
        out = model(
            batch["input_ids"],
            batch["token_type_ids"],
            batch["attention_mask"],
            start_positions=batch["start_positions"],
            end_positions=batch["end_positions"],
        )
        loss = out.loss * self._share(batch, totals)
        return loss, {"ce": loss}

    @torch.no_grad()
    def predict(self, model: nn.Module) -> tuple[list[Any], float]:
        device = next(model.parameters()).device
        starts, ends, loss_sum = [], [], 0.0
        for _, chunk, batch in self._batches(self.validation_features, device):
            out = model(
                batch["input_ids"],
                batch["token_type_ids"],
                batch["attention_mask"],
                start_positions=batch["start_positions"],
                end_positions=batch["end_positions"],
            )
            loss_sum += float(out.loss) * len(chunk)
            for f, s, e in zip(chunk, out.start_logits.cpu(), out.end_logits.cpu()):
                n = len(f["input_ids"])
                starts.append(s[:n])
                ends.append(e[:n])
        preds = postprocess_span_predictions(
            self.validation, self.validation_features, starts, ends, max_answer_length=self.meta["max_answer_length"]
        )
        return preds, loss_sum / max(len(self.validation_features), 1)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        preds, loss = self.predict(model)
        refs = {ex["id"]: ex["answers"]["text"] for ex in self.validation}
        scores = squad_metrics({ex["id"]: p.text for ex, p in zip(self.validation, preds)}, refs)
        metrics = {"loss": loss, **scores}
        samples = [
            {"question": ex["question"], "references": ex["answers"]["text"], "prediction": p.text, "score": p.score}
            for ex, p in zip(self.validation, preds)
        ][:SAMPLE_ANSWERS]
        self._evaluated({"task": self.name, **metrics, "examples": len(self.validation), "samples": samples})
        return metrics

    def probes(self, model: nn.Module) -> list[dict[str, Any]]:
        return sample_probes(self.report)


# --------------------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------------------


SPAN_MAX_WORDS = 12  # longest answer span searched for (descriptions average ~5 words)
SPAN_MIN_F1 = 0.5  # a span must share at least this token F1 with the description to count as its answer
SPAN_EDGE_STOP = frozenset("and or of by in on to for with from as at".split())


def wiki_span_examples() -> tuple[list[dict[str, Any]], int]:
    """See `_wiki_span_examples`; computed once per process (~15 s of pure Python), copied on each call."""
    examples, dropped = _wiki_span_examples()
    return [dict(ex) for ex in examples], dropped


@functools.lru_cache(maxsize=1)
def _wiki_span_examples() -> tuple[tuple[dict[str, Any], ...], int]:
    """Extractive QA from the wiki summaries: "What is {title}?" over the extract, answered by a span of it.

    The human-written description (e.g. "Swiss mathematician" for Leonhard Euler) is rarely a verbatim part of the
    extract ("...was a Swiss polymath who was active as a mathematician..."), so the answer is the span of at most
    SPAN_MAX_WORDS words of the extract with the highest token F1 against it (SQuAD's normalisation), the shortest
    on ties: distant supervision, as MS MARCO and NarrativeQA build their extractive oracles. Articles whose best
    span has F1 below SPAN_MIN_F1 are left out (their description is not in the text). Returns the examples and
    how many articles were left out.
    """
    examples: list[dict[str, Any]] = []
    dropped = 0
    for art in load_wiki_articles():
        context, description = art["extract"], art["description"].strip()
        if not context.strip() or not description:
            continue
        truth = Counter(normalize_answer(description).split())
        n_truth = sum(truth.values())
        words = [(m.start(), m.end(), normalize_answer(m.group())) for m in re.finditer(r"\S+", context)]
        # A span that starts or ends on a word outside the description is beaten by the same span without that
        # word (same overlap, fewer words), so only description words start and end one; none is a bare
        # connective ("...albums created by").
        useful = [bool(w[2]) and w[2] not in SPAN_EDGE_STOP and any(t in truth for t in w[2].split()) for w in words]
        best: tuple[float, int, int, int] | None = None  # (f1, -length, -start word, end word)
        for i in range(len(words)):
            if not useful[i]:
                continue
            seen: Counter = Counter()
            overlap = n_pred = 0
            for j in range(i, min(i + SPAN_MAX_WORDS, len(words))):
                for w in words[j][2].split():
                    n_pred += 1
                    seen[w] += 1
                    if seen[w] <= truth[w]:
                        overlap += 1
                if not useful[j]:
                    continue
                f1 = 2 * overlap / (n_pred + n_truth)
                key = (f1, -(j - i), -i, j)
                if best is None or key > best:
                    best = key
        if best is None or best[0] < SPAN_MIN_F1:
            dropped += 1
            continue
        start, end = words[-best[2]][0], words[best[3]][1]
        answer = context[start:end].rstrip(".,;:")
        examples.append(
            {
                "id": art["title"],
                "question": f"What is {art['title']}?",
                "context": context,
                "answers": {"text": [answer], "answer_start": [start]},
                "description": description,
            }
        )
    return tuple(examples), dropped


def read_squad(
    path: Path, dropped: list[str] | None = None, formats: str = "SQuAD-format .json"
) -> list[dict[str, Any]]:
    """SQuAD-format JSON ({"data": [{"paragraphs": [{"context", "qas": [...]}]}]}) or flat .jsonl -> examples.

    Answers whose text does not sit at answer_start in the context are repaired when the text occurs elsewhere
    and dropped otherwise (training on a wrong span teaches the wrong thing); unanswerable SQuAD 2.0 questions
    are skipped, since this head always extracts a span.
    """
    path = Path(path)
    records = read_records(path, "SQuAD", formats)
    if records and "paragraphs" in records[0]:
        examples = _squad_examples(path, records)
    else:
        require_fields(records, ("question", "context", "answers"), path)
        examples = []
        for n, r in enumerate(records):
            where = f"{path} {where_of(records, n)}: "
            context = _squad_str(r.get("context"), f"{where}context")
            ans = r["answers"]
            if isinstance(ans, list):  # [{"text", "answer_start"}, ...]
                ans = {"answers": ans}
                texts, starts = _squad_answers(ans, context, where)
            elif isinstance(ans, dict):  # {"text": [...], "answer_start": [...]} (the hub's columns)
                t, s = ans.get("text"), ans.get("answer_start")
                if not isinstance(t, list) or not isinstance(s, list) or len(t) != len(s):
                    raise DataError(f"{where}answers must hold lists text and answer_start of one length")
                pairs = [{"text": a, "answer_start": b} for a, b in zip(t, s)]
                texts, starts = _squad_answers({"answers": pairs}, context, where)
            else:
                raise DataError(f"{where}answers must be a list of {{text, answer_start}} or an object of lists")
            examples.append(
                {
                    "id": str(r.get("id", n)),
                    "question": _squad_str(r["question"], f"{where}question"),
                    "context": context,
                    "answers": {"text": texts, "answer_start": starts},
                }
            )
    clean = []
    for ex in examples:
        texts, starts = [], []
        for t, s in zip(ex["answers"]["text"], ex["answers"]["answer_start"]):
            if ex["context"][s : s + len(t)] != t:
                s = ex["context"].find(t)
            if t and s >= 0:
                texts.append(t)
                starts.append(s)
        if texts and ex["question"].strip():
            clean.append({**ex, "answers": {"text": texts, "answer_start": starts}})
        elif dropped is not None:
            dropped.append(f"id {ex['id']}")
    if not clean:
        raise DataError(f"{path} holds no answerable question whose answer text occurs in its context")
    return clean


def _squad_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where} must be a string, got {type(value).__name__ if value is not None else 'null'}")
    return value


def _squad_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise DataError(f"{where} must be a list, got {type(value).__name__ if value is not None else 'null'}")
    return value


def _squad_answers(qa: dict[str, Any], context: str, prefix: str) -> tuple[list[str], list[int]]:
    """The answers of one question, each a string `text` and an integer `answer_start` inside the context; a text
    that does not sit at its start is repaired later (read_squad), a start outside the context is a broken file."""
    texts, starts = [], []
    for k, a in enumerate(_squad_list(qa.get("answers", []), f"{prefix}answers")):
        at = f"{prefix}answers[{k}]"
        if not isinstance(a, dict):
            raise DataError(f"{at} must be an object with text and answer_start")
        text = _squad_str(a.get("text"), f"{at}.text")
        start = a.get("answer_start")
        if isinstance(start, bool) or not isinstance(start, int):
            raise DataError(f"{at}.answer_start must be an integer, got {start!r}"[:300])
        if not 0 <= start <= len(context):
            raise DataError(f"{at}.answer_start {start} is outside its context (0..{len(context)} characters)")
        texts.append(text)
        starts.append(start)
    return texts, starts


def _squad_examples(path: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The questions of SQuAD-format articles, every level's type checked: an error names the file and the place
    (data[2].paragraphs[0].qas[5].answers[0].answer_start), never a KeyError from deep inside."""
    examples: list[dict[str, Any]] = []
    for i, art in enumerate(records):
        for j, para in enumerate(_squad_list(art.get("paragraphs"), f"{path}: data[{i}].paragraphs")):
            at = f"{path}: data[{i}].paragraphs[{j}]"
            if not isinstance(para, dict):
                raise DataError(f"{at} must be an object with context and qas")
            if "context" not in para:
                raise DataError(f"{at} has no 'context'")
            context = _squad_str(para["context"], f"{at}.context")
            for k, qa in enumerate(_squad_list(para.get("qas", []), f"{at}.qas")):
                where = f"{at}.qas[{k}]"
                if not isinstance(qa, dict):
                    raise DataError(f"{where} must be an object with question and answers")
                if qa.get("is_impossible") is True:
                    continue  # SQuAD 2.0's unanswerable questions: this head always extracts a span
                texts, starts = _squad_answers(qa, context, f"{where}.")
                examples.append(
                    {
                        "id": str(qa.get("id", len(examples))),
                        "question": _squad_str(qa.get("question", ""), f"{where}.question"),
                        "context": context,
                        "answers": {"text": texts, "answer_start": starts},
                    }
                )
    return examples


# --------------------------------------------------------------------------------------------------------------
# Featurisation and post-processing
# --------------------------------------------------------------------------------------------------------------


def span_stride(max_length: int, doc_stride: int) -> tuple[int, int]:
    """(longest question in tokens, overlap between windows) that the tokenizer can honour for `max_length`.

    The fast tokenizer rejects an overlap that does not leave room for new context tokens in each window, so the
    configured doc_stride is lowered when the window is small (tests use 48-token windows).
    """
    max_q = min(MAX_QUERY_LENGTH, max_length // 2)
    room = max_length - max_q - 3  # context tokens per window at worst ([CLS] q [SEP] c [SEP])
    return max_q, max(0, min(doc_stride, room // 2))


def featurize_span(
    examples: Sequence[dict[str, Any]], tokenizer: Any, max_length: int, doc_stride: int, keep_offsets: bool = False
) -> list[dict[str, Any]]:
    """SQuAD-style features: a long context becomes overlapping windows (return_overflowing_tokens + stride).

    Each window gets start/end token positions of the first gold answer, or 0/0 ([CLS]) when the answer is not
    inside it (the BERT paper's convention). With keep_offsets, each feature also carries its example index and
    the character offsets of its context tokens (None elsewhere), which post-processing needs to map a predicted
    token span back to text.
    """
    max_q, stride = span_stride(max_length, doc_stride)
    questions = [truncate_question(tokenizer, ex["question"], max_q) for ex in examples]
    enc = tokenizer(
        questions,
        [ex["context"] for ex in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    sample_map = enc["overflow_to_sample_mapping"]
    features = []
    for i, ids in enumerate(enc["input_ids"]):
        seq_ids = enc.sequence_ids(i)
        offsets = enc["offset_mapping"][i]
        ex_index = sample_map[i]
        ex = examples[ex_index]
        if 1 not in seq_ids:
            continue  # no room for context at all (cannot happen with the question cap, but never index past it)
        ctx_start = seq_ids.index(1)
        ctx_end = len(seq_ids) - 1 - seq_ids[::-1].index(1)
        start = end = 0
        if ex["answers"]["text"]:
            start_char = ex["answers"]["answer_start"][0]
            end_char = start_char + len(ex["answers"]["text"][0])
            if offsets[ctx_start][0] <= start_char and offsets[ctx_end][1] >= end_char:
                s = ctx_start
                while s <= ctx_end and offsets[s][0] <= start_char:
                    s += 1
                e = ctx_end
                while e >= ctx_start and offsets[e][1] >= end_char:
                    e -= 1
                start, end = s - 1, e + 1
        feat = {
            "input_ids": id_tensor(ids),
            "token_type_ids": id_tensor(enc["token_type_ids"][i]),
            "start_positions": start,
            "end_positions": end,
        }
        if keep_offsets:
            feat["example_index"] = ex_index
            feat["offsets"] = [tuple(o) if seq_ids[k] == 1 else None for k, o in enumerate(offsets)]
        features.append(feat)
    return features


@dataclass
class SpanPrediction:
    text: str
    score: float
    """p(start) * p(end), each a softmax over the context tokens of the window the span came from."""
    start: int
    """Character offset of the answer in the context (end is exclusive); -1 when no valid span exists."""
    end: int


def best_span(
    start_logits: Sequence[float],
    end_logits: Sequence[float],
    offsets: Sequence[Any],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> tuple[int, int, float] | None:
    """(start token, end token, probability) of the best valid span of one window, or None.

    Valid: both ends on context tokens (offsets not None), end >= start, at most max_answer_length tokens. The
    n_best highest start and end logits over context tokens are paired, as in HF's run_qa post-processing.
    """
    ctx = torch.tensor([o is not None for o in offsets])  # (T,)
    if not bool(ctx.any()):
        return None
    s = torch.as_tensor(start_logits, dtype=torch.float32)[: len(offsets)].masked_fill(~ctx, float("-inf"))  # (T,)
    e = torch.as_tensor(end_logits, dtype=torch.float32)[: len(offsets)].masked_fill(~ctx, float("-inf"))  # (T,)
    ps, pe = s.softmax(-1), e.softmax(-1)  # (T,) over context tokens only
    k = min(n_best, int(ctx.sum()))
    best: tuple[int, int, float] | None = None
    best_logit = float("-inf")
    for i in s.topk(k).indices.tolist():
        for j in e.topk(k).indices.tolist():
            if j < i or j - i + 1 > max_answer_length:
                continue
            logit = float(s[i] + e[j])
            if logit > best_logit:
                best_logit, best = logit, (i, j, float(ps[i] * pe[j]))
    return best


def postprocess_span_predictions(
    examples: Sequence[dict[str, Any]],
    features: Sequence[dict[str, Any]],
    start_logits: Sequence[Sequence[float]],
    end_logits: Sequence[Sequence[float]],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> list[SpanPrediction]:
    """One answer per example: the most probable valid span over all its windows, mapped back to context text."""
    best: dict[int, SpanPrediction] = {}
    for feat, s, e in zip(features, start_logits, end_logits):
        found = best_span(s, e, feat["offsets"], n_best, max_answer_length)
        if found is None:
            continue
        i, j, p = found
        ex_index = feat["example_index"]
        if ex_index not in best or p > best[ex_index].score:
            a, b = feat["offsets"][i][0], feat["offsets"][j][1]
            best[ex_index] = SpanPrediction(examples[ex_index]["context"][a:b], p, a, b)
    return [best.get(n, SpanPrediction("", 0.0, -1, -1)) for n in range(len(examples))]
