"""Pretraining examples: sentence pairs for MLM + NSP, built as google-research/bert's create_pretraining_data.

Flow: corpus -> documents of sentences -> split by document -> tokenizer (trained or loaded) -> every sentence
tokenised once, in batches, without special tokens -> pairs (or single segments when NSP is off) -> cached on
disk -> `PretrainingData(tokenizer, train, validation, info)`.

Pair building follows the reference algorithm (create_instances_from_document):

* target length = max_seq_length - 3 (room for [CLS] A [SEP] B [SEP]); with probability short_seq_prob a
  document gets a random shorter target in [2, max] so the model also sees short inputs, as in fine-tuning;
* sentences of one document accumulate into a chunk until it reaches the target (or the document ends);
* A = the chunk's first a_end sentences, a_end drawn uniformly among the chunk boundaries;
* B = the rest of the chunk (IsNext, label 0), or with probability 0.5 (always, when the chunk is one sentence)
  a run of sentences from a random *different* document (NotNext, label 1) — the chunk's unused sentences are
  put back so they start the next example. One deliberate change: the coin for multi-sentence chunks is biased
  by the running label imbalance, because on short documents the forced one-sentence NotNext pairs would
  otherwise make ~65% of the pairs NotNext (measured on wiki-offline); on long documents it stays a fair coin;
* truncate_seq_pair trims the longer segment one token at a time, from the front or the back at random, until
  the pair fits.

Masking is *not* done here: MLMCollator masks each batch afresh (dynamic masking, as RoBERTa), which replaces the
reference's dupe_factor copies with static masks.

With NSP off, a document is packed into single segments of up to max_seq_length - 2 tokens at sentence
boundaries (a sentence longer than the target is cut), ``[CLS] tokens [SEP]``, token_type_ids all 0, and the
examples carry **no** ``next_sentence_label`` key (stored internally as -1), so the collator emits none.

Storage: all tokens of the corpus in one flat uint16 (int32 for vocabularies over 65,535) array, and per example
four int64 offsets (A start/end, B start/end, both segments are contiguous runs of the flat array) plus the label.
An example is assembled on access in O(1) (~5 us). The token array is memory-mapped and only the small index
(40 bytes per example) is read into memory, so a cache hit costs milliseconds and a large corpus is never loaded
at once.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from bert2.data.corpus import corpus_fingerprint, load_documents, split_documents, stable_hash
from bert2.data.tokenizer import get_tokenizer, tokenizer_cache_dir, vocab_fingerprint
from bert2.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import BertTokenizerFast

    from bert2.config import Config

DATA_FORMAT = 1  # bump when the example-building algorithm or the file layout changes: old caches are ignored
NO_LABEL = -1
_INDEX_COLUMNS = 5  # a_start, a_end, b_start, b_end, label
TOKENIZE_BATCH = 8192

Spans = list[tuple[int, int]]  # one document: (start, end) of each sentence in the flat token array


class PretrainingExamples:
    """List-like view of pretraining examples: ``len(x)``, ``x[i] -> dict``, iteration.

    ``x[i]`` is ``{"input_ids": [CLS] A [SEP] B [SEP], "token_type_ids": 0 over [CLS] A [SEP] and 1 over
    B [SEP], "next_sentence_label": 0 IsNext | 1 NotNext}``; without NSP, ``[CLS] A [SEP]``, all-0 types and no
    label key. Lists of Python ints, like a tokenizer's output, so any collator can take them.
    """

    def __init__(self, tokens: np.ndarray, index: np.ndarray, cls_id: int, sep_id: int, nsp: bool):
        # Plain ndarray views of memory maps: slicing a np.memmap subclass costs ~10x more per access.
        self.tokens = tokens.view(np.ndarray)  # (num_corpus_tokens,) uint16|int32, shared by train and validation
        # (N, 5) a_start, a_end, b_start, b_end, label; read into memory (40 bytes per example) as a plain array.
        self.index = np.array(index, dtype=np.int64, copy=True).view(np.ndarray)
        self.cls_id = int(cls_id)
        self.sep_id = int(sep_id)
        self.nsp = bool(nsp)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"example index {i} out of range for {n} examples")
        a_s, a_e, b_s, b_e, label = self.index[i].tolist()
        a = self.tokens[a_s:a_e].tolist()
        if self.nsp:
            b = self.tokens[b_s:b_e].tolist()
            len_a, len_b = len(a) + 2, len(b) + 1
            return {"input_ids": [self.cls_id, *a, self.sep_id, *b, self.sep_id],
                    "token_type_ids": [0] * len_a + [1] * len_b,
                    "next_sentence_label": label}
        return {"input_ids": [self.cls_id, *a, self.sep_id], "token_type_ids": [0] * (len(a) + 2)}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    @property
    def lengths(self) -> np.ndarray:
        """Sequence length of every example, specials included; (N,) int64. Useful for length-grouped batches."""
        extra = 3 if self.nsp else 2
        idx = self.index
        return (idx[:, 1] - idx[:, 0]) + (idx[:, 3] - idx[:, 2]) + extra

    @property
    def labels(self) -> np.ndarray:
        """NSP label of every example ((N,) int64; -1 everywhere when NSP is off)."""
        return np.asarray(self.index[:, 4])

    @property
    def num_tokens(self) -> int:
        """Total tokens over all examples (specials included): what one epoch feeds the model."""
        return int(self.lengths.sum())

    def __repr__(self) -> str:
        return f"PretrainingExamples(n={len(self)}, nsp={self.nsp})"


@dataclass
class PretrainingData:
    """What pretraining needs: the tokenizer, train and validation examples, and counts for the UI and logs."""

    tokenizer: "BertTokenizerFast"
    train: PretrainingExamples
    validation: PretrainingExamples
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# Tokenisation
# --------------------------------------------------------------------------------------------------------------


def tokenize_documents(tokenizer: Any, documents: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[Spans]]:
    """Tokenise every sentence once, in batches, without special tokens.

    Returns the flat token array (corpus order, (num_tokens,) uint16/int32) and, per input document, the
    (start, end) span of each sentence in it; sentences that tokenise to nothing are dropped, so a document may
    come back as an empty list (kept, so the output stays aligned with `documents`).
    Uses a private copy of the backend tokenizer so truncation/padding settings of the caller's tokenizer cannot
    cut sentences, and `encode_batch_fast` (no offsets) which runs across all cores.
    """
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    sentences = [s for doc in documents for s in doc]
    lengths: list[int] = []
    pieces: list[np.ndarray] = []
    vocab = backend.get_vocab_size(with_added_tokens=True)
    dtype = np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.int32
    for i in range(0, len(sentences), TOKENIZE_BATCH):
        encodings = encode(sentences[i:i + TOKENIZE_BATCH], add_special_tokens=False)
        ids = [e.ids for e in encodings]
        lengths.extend(len(x) for x in ids)
        pieces.append(np.fromiter(chain.from_iterable(ids), dtype=dtype))
    tokens = np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
    starts = ends - np.asarray(lengths, dtype=np.int64)
    spans_out: list[Spans] = []
    k = 0
    for doc in documents:
        spans = [(int(starts[j]), int(ends[j])) for j in range(k, k + len(doc)) if ends[j] > starts[j]]
        k += len(doc)
        spans_out.append(spans)
    return tokens, spans_out


# --------------------------------------------------------------------------------------------------------------
# Example building
# --------------------------------------------------------------------------------------------------------------


def truncate_seq_pair(a_s: int, a_e: int, b_s: int, b_e: int, max_num_tokens: int,
                      rng: random.Random) -> tuple[int, int, int, int]:
    """Trim the longer of A and B one token at a time, from the front or back at random, until they fit.

    Random ends (not always the tail) so the model does not learn that a segment always ends a sentence.
    Works on (start, end) spans of the flat token array; both keep at least one token when max_num_tokens >= 2.
    """
    while (a_e - a_s) + (b_e - b_s) > max_num_tokens:
        trim_a = (a_e - a_s) > (b_e - b_s)
        front = rng.random() < 0.5
        if trim_a:
            if front:
                a_s += 1
            else:
                a_e -= 1
        else:
            if front:
                b_s += 1
            else:
                b_e -= 1
    return a_s, a_e, b_s, b_e


def build_nsp_examples(documents: Sequence[Spans], max_seq_length: int, short_seq_prob: float,
                       rng: random.Random) -> tuple[list[tuple[int, int, int, int, int]], int]:
    """Sentence-pair examples (a_s, a_e, b_s, b_e, label) from tokenised documents; also how many were skipped.

    The create_instances_from_document algorithm (see the module docstring), with the label balance kept near
    50/50 by steering the coin of multi-sentence chunks. A NotNext partner is drawn from a
    different document by sampling among the other n-1 documents (the reference retries 10 times and may, rarely,
    pick the same one). With a single document no NotNext is possible: chunks of one sentence are skipped and
    longer chunks become IsNext pairs.
    """
    max_num_tokens = max_seq_length - 3
    out: list[tuple[int, int, int, int, int]] = []
    skipped = 0
    n_is_next = n_not_next = 0
    n_docs = len(documents)
    for doc_index, doc in enumerate(documents):
        target = max_num_tokens
        if rng.random() < short_seq_prob:
            target = rng.randint(2, max_num_tokens)
        chunk: list[int] = []  # sentence indices within doc
        length = 0
        i = 0
        while i < len(doc):
            chunk.append(i)
            length += doc[i][1] - doc[i][0]
            if i == len(doc) - 1 or length >= target:
                a_end = 1 if len(chunk) < 2 else rng.randint(1, len(chunk) - 1)
                a_s, a_e = doc[chunk[0]][0], doc[chunk[a_end - 1]][1]
                # The reference flips a fair coin; on short documents (wiki summaries average 3.6 sentences) its
                # forced NotNext for one-sentence chunks, many of them sentences put back after a NotNext, makes
                # ~65% of pairs NotNext. We bias the coin by the running imbalance instead, which keeps the labels
                # ~50/50 on any corpus and is a fair coin whenever the counts are level (long documents).
                p_not_next = min(1.0, max(0.0, 0.5 - (n_not_next - n_is_next) / 20.0))
                is_random = len(chunk) == 1 or rng.random() < p_not_next
                if is_random and n_docs < 2:
                    is_random = False
                if is_random:
                    target_b = target - (a_e - a_s)
                    other = rng.randrange(n_docs - 1)
                    other += other >= doc_index  # skip our own document
                    rdoc = documents[other]
                    start = rng.randrange(len(rdoc))
                    b_s = b_e = rdoc[start][0]
                    for j in range(start, len(rdoc)):
                        b_e = rdoc[j][1]
                        if b_e - b_s >= target_b:
                            break
                    i -= len(chunk) - a_end  # the unused sentences start the next example
                    label = 1
                elif len(chunk) >= 2:
                    b_s, b_e = doc[chunk[a_end]][0], doc[chunk[-1]][1]
                    label = 0
                else:  # one sentence, one document: no partner at all
                    skipped += 1
                    chunk, length = [], 0
                    i += 1
                    continue
                a_s, a_e, b_s, b_e = truncate_seq_pair(a_s, a_e, b_s, b_e, max_num_tokens, rng)
                out.append((a_s, a_e, b_s, b_e, label))
                n_not_next += label
                n_is_next += 1 - label
                chunk, length = [], 0
            i += 1
    return out, skipped


def build_single_examples(documents: Sequence[Spans], max_seq_length: int, short_seq_prob: float,
                          rng: random.Random) -> list[tuple[int, int, int, int, int]]:
    """Single-segment examples (a_s, a_e, 0, 0, -1) for MLM-only pretraining.

    Sentences of one document are packed while they fit the target (max_seq_length - 2, or a random shorter one
    with short_seq_prob); a sentence longer than the target is cut into target-sized pieces. Documents are never
    mixed, so one example never spans two unrelated texts without a separator.
    """
    max_num_tokens = max_seq_length - 2
    out: list[tuple[int, int, int, int, int]] = []
    for doc in documents:
        target = max_num_tokens
        if rng.random() < short_seq_prob:
            target = rng.randint(2, max_num_tokens)
        cur_s: int | None = None
        cur_e = 0
        for s, e in doc:
            if cur_s is not None and e - cur_s > target:
                out.append((cur_s, cur_e, 0, 0, NO_LABEL))
                cur_s = None
            if cur_s is None:
                cur_s = s
            cur_e = e
            while cur_e - cur_s > target:
                out.append((cur_s, cur_s + target, 0, 0, NO_LABEL))
                cur_s += target
        if cur_s is not None and cur_e > cur_s:
            out.append((cur_s, cur_e, 0, 0, NO_LABEL))
    return out


def _build_split(spans: Sequence[Spans], cfg: "Config", split: str) -> tuple[np.ndarray, int]:
    """Examples of one split as an (N, 5) int64 index array, shuffled with a seed derived from cfg.data.seed."""
    d = cfg.data
    rng = random.Random(f"bert2-pretraining-{split}-{d.seed}")  # str seeds hash with SHA-512: stable everywhere
    if d.nsp:
        examples, skipped = build_nsp_examples(spans, d.max_seq_length, d.short_seq_prob, rng)
    else:
        examples, skipped = build_single_examples(spans, d.max_seq_length, d.short_seq_prob, rng), 0
    rng.shuffle(examples)  # as the reference: neighbouring examples should not come from one document
    index = np.asarray(examples, dtype=np.int64).reshape(-1, _INDEX_COLUMNS)  # (N, 5)
    return index, skipped


# --------------------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------------------


def data_cache_key(cfg: "Config", tokenizer: Any) -> str:
    """Hash of everything that changes the examples: corpus identity, max_documents, the tokenizer's vocabulary
    and normalisation, max_seq_length, nsp, short_seq_prob, seed, validation_fraction, and the format version."""
    d = cfg.data
    return stable_hash({"format": DATA_FORMAT, "corpus": corpus_fingerprint(d.corpus), "max_documents": d.max_documents,
                        "vocab": vocab_fingerprint(tokenizer), "max_seq_length": d.max_seq_length, "nsp": d.nsp,
                        "short_seq_prob": d.short_seq_prob, "seed": d.seed,
                        "validation_fraction": d.validation_fraction})


def data_cache_dir(cfg: "Config", tokenizer: Any) -> Path:
    """cache_dir/pretraining/<key>: where the examples built for `cfg` and `tokenizer` live."""
    return Path(cfg.data.cache_dir) / "pretraining" / data_cache_key(cfg, tokenizer)


def _load_cached(path: Path, tokenizer: Any) -> tuple[PretrainingExamples, PretrainingExamples, dict[str, Any]] | None:
    """The cached splits, memory-mapped, or None when the entry is missing or unreadable (then it is rebuilt)."""
    info_file = path / "info.json"
    if not info_file.is_file():
        return None
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
        tokens = np.load(path / "tokens.npy", mmap_mode="r")
        train_idx = np.load(path / "train_index.npy", mmap_mode="r")
        val_idx = np.load(path / "validation_index.npy", mmap_mode="r")
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    nsp = bool(info.get("nsp", True))
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    return (PretrainingExamples(tokens, train_idx, cls_id, sep_id, nsp),
            PretrainingExamples(tokens, val_idx, cls_id, sep_id, nsp), info)


def _save_cache(path: Path, tokens: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                info: dict[str, Any]) -> None:
    """Write into a temporary sibling directory, then rename: a crash or a parallel run never sees half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        np.save(tmp / "tokens.npy", tokens)
        np.save(tmp / "train_index.npy", train_idx)
        np.save(tmp / "validation_index.npy", val_idx)
        (tmp / "info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")  # written last: the marker
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)  # an unreadable leftover; _load_cached already rejected it
        try:
            os.replace(tmp, path)
        except OSError:
            if not (path / "info.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------


def prepare_pretraining_data(cfg: "Config", tokenizer: "BertTokenizerFast | None" = None, *,
                             use_cache: bool = True,
                             progress: Callable[[str], None] | None = None) -> PretrainingData:
    """Tokenizer + train/validation examples for `cfg`, from the on-disk cache when nothing that matters changed.

    `tokenizer` None means `get_tokenizer(cfg, ...)` (train-and-cache or load). `progress` receives short stage
    messages ("loading corpus", ...) that a UI can show while a first run builds. A cache hit loads no corpus and
    tokenises nothing: it reads the cached tokenizer and memory-maps the arrays. Raises DataError /
    TokenizerError for corpora or tokenizers the user must fix.
    """
    d = cfg.data
    say = progress or (lambda _msg: None)
    if d.max_seq_length < 8:
        raise DataError(f"data.max_seq_length must be at least 8 to hold [CLS] A [SEP] B [SEP], got {d.max_seq_length}")
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    documents = train_docs = val_docs = None

    def load_and_split() -> None:
        nonlocal documents, train_docs, val_docs
        say(f"loading corpus {d.corpus}")
        t0 = time.perf_counter()
        documents = load_documents(d.corpus, d.max_documents, cache_dir=Path(d.cache_dir) / "datasets")
        train_docs, val_docs = split_documents(documents, d.validation_fraction, d.seed)
        timings["load_corpus"] = round(time.perf_counter() - t0, 3)

    if tokenizer is None:
        needs_training = not d.tokenizer.strip() and not (tokenizer_cache_dir(cfg) / "tokenizer.json").is_file()
        if needs_training:
            load_and_split()
            say(f"training a WordPiece tokenizer ({cfg.model.vocab_size} tokens)")
        t0 = time.perf_counter()
        tokenizer = get_tokenizer(cfg, train_docs)
        timings["tokenizer"] = round(time.perf_counter() - t0, 3)

    path = data_cache_dir(cfg, tokenizer)
    if use_cache:
        cached = _load_cached(path, tokenizer)
        if cached is not None:
            train, validation, info = cached
            info = {**info, "cache_hit": True, "cache_path": str(path),
                    "load_seconds": round(time.perf_counter() - t_start, 4)}
            say(f"loaded {len(train)} train / {len(validation)} validation examples from the cache")
            return PretrainingData(tokenizer, train, validation, info)

    if documents is None:
        load_and_split()
    assert train_docs is not None and val_docs is not None
    say(f"tokenising {sum(len(x) for x in train_docs) + sum(len(x) for x in val_docs)} sentences")
    t0 = time.perf_counter()
    # One batched pass over both splits; validation documents follow the training ones in the flat array.
    tokens, spans = tokenize_documents(tokenizer, [*train_docs, *val_docs])
    train_spans = [x for x in spans[:len(train_docs)] if x]
    val_spans = [x for x in spans[len(train_docs):] if x]
    timings["tokenize"] = round(time.perf_counter() - t0, 3)
    if not train_spans:
        raise DataError(f"corpus {d.corpus!r} yields no tokens to train on")

    say("building sentence pairs" if d.nsp else "packing segments")
    t0 = time.perf_counter()
    train_idx, train_skipped = _build_split(train_spans, cfg, "train")
    val_idx, val_skipped = _build_split(val_spans, cfg, "validation")
    timings["build"] = round(time.perf_counter() - t0, 3)
    if len(train_idx) == 0:
        raise DataError(f"corpus {d.corpus!r} yields no training examples")

    info: dict[str, Any] = {
        "format": DATA_FORMAT, "corpus": d.corpus, "nsp": d.nsp, "max_seq_length": d.max_seq_length,
        "documents": len(train_spans) + len(val_spans), "train_documents": len(train_spans),
        "validation_documents": len(val_spans),
        "sentences": sum(len(s) for s in train_spans) + sum(len(s) for s in val_spans),
        "corpus_tokens": int(tokens.shape[0]), "vocab_size": len(tokenizer),
        "train_examples": int(len(train_idx)), "validation_examples": int(len(val_idx)),
        "train_not_next": int((train_idx[:, 4] == 1).sum()) if d.nsp else 0,
        "validation_not_next": int((val_idx[:, 4] == 1).sum()) if d.nsp else 0,
        "skipped_chunks": train_skipped + val_skipped,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "build_seconds": timings,  # the same dict: "total" is filled in below, before the cache is written
    }
    timings["total"] = round(time.perf_counter() - t_start, 3)
    if use_cache:
        say("writing the cache")
        _save_cache(path, tokens, train_idx, val_idx, info)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    train = PretrainingExamples(tokens, train_idx, cls_id, sep_id, d.nsp)
    validation = PretrainingExamples(tokens, val_idx, cls_id, sep_id, d.nsp)
    info = {**info, "cache_hit": False, "cache_path": str(path)}
    return PretrainingData(tokenizer, train, validation, info)
