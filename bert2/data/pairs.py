"""Examples from tokenised documents: sentence pairs for MLM + NSP, or single segments for MLM alone.

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

With NSP off, a document is packed into single segments of up to max_seq_length - 2 tokens at sentence
boundaries (a sentence longer than the target is cut), ``[CLS] tokens [SEP]``, token_type_ids all 0, and the
examples carry **no** ``next_sentence_label`` key (stored internally as -1), so the collator emits none.

Documents are `Sequence[Spans]`: each a list of (start, end) sentence spans in the flat token array. On a
corpus of any size they come from :class:`DocumentSpans`, a view of the memory-mapped sentence table, so a NotNext
partner can be any other document of the split. :func:`build_range` is the unit of work a worker process runs:
a fixed range of documents with its own seeded generator, so the examples do not depend on how many workers
there are. This module imports no tokenizer or model code: worker processes start in a fraction of a second.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

NO_LABEL = -1
INDEX_COLUMNS = 5  # a_start, a_end, b_start, b_end, label
RANGE_DOCUMENTS = 20_000
"""Documents per unit of pair-building work (fixed, so results do not depend on the number of workers)."""

Spans = list[tuple[int, int]]  # one document: (start, end) of each sentence in the flat token array


def truncate_seq_pair(
    a_s: int, a_e: int, b_s: int, b_e: int, max_num_tokens: int, rng: random.Random
) -> tuple[int, int, int, int]:
    """Trim the longer of A and B one token at a time, from the front or back at random, until they fit.

    Random ends (not always the tail) so the model does not learn that a segment always ends a sentence.
    Works on (start, end) spans of the flat token array; both keep at least one token when max_num_tokens >= 2.

    Computed in closed form rather than token by token (a long review trimmed to 128 tokens took hundreds of
    steps): which segment loses each token is fixed by the lengths (the longer one; B on a tie), so only the
    counts per segment are needed, and each trimmed token's end is a fair coin, so a segment's front trims are
    the set bits of as many random bits.
    """
    la, lb = a_e - a_s, b_e - b_s
    excess = la + lb - max_num_tokens
    if excess <= 0:
        return a_s, a_e, b_s, b_e
    if la > lb:  # A alone until the two are equal, then B, A, B, ...
        first = min(la - lb, excess)
        rest = excess - first
        ta, tb = first + rest // 2, (rest + 1) // 2
    else:  # B alone until it is one shorter than A, then A, B, A, ...
        first = min(lb - la + 1, excess)
        rest = excess - first
        ta, tb = (rest + 1) // 2, first + rest // 2
    front_a = bin(rng.getrandbits(ta)).count("1") if ta else 0
    front_b = bin(rng.getrandbits(tb)).count("1") if tb else 0
    return a_s + front_a, a_e - (ta - front_a), b_s + front_b, b_e - (tb - front_b)


def build_nsp_examples(
    documents: Sequence[Spans], max_seq_length: int, short_seq_prob: float, rng: random.Random
) -> tuple[list[tuple[int, int, int, int, int]], int]:
    """Sentence-pair examples (a_s, a_e, b_s, b_e, label) from tokenised documents; also how many were skipped.
    A list: for tests and small corpora; preparation streams :func:`iter_nsp_examples` into a file."""
    stats = {"skipped": 0}
    out = list(iter_nsp_examples(documents, max_seq_length, short_seq_prob, rng, stats))
    return out, stats["skipped"]


def iter_nsp_examples(
    documents: Sequence[Spans],
    max_seq_length: int,
    short_seq_prob: float,
    rng: random.Random,
    stats: dict[str, int],
    lo: int = 0,
    hi: int | None = None,
) -> Iterator[tuple[int, int, int, int, int]]:
    """The sentence pairs of :func:`build_nsp_examples`, one at a time (`stats["skipped"]` counts skipped chunks),
    for documents lo .. hi-1 (default: all); NotNext partners come from all of `documents`.

    The create_instances_from_document algorithm (see the module docstring), with the label balance kept near
    50/50 by steering the coin of multi-sentence chunks. A NotNext partner is drawn from a
    different document by sampling among the other n-1 documents (the reference retries 10 times and may, rarely,
    pick the same one). With a single document no NotNext is possible: chunks of one sentence are skipped and
    longer chunks become IsNext pairs.
    """
    max_num_tokens = max_seq_length - 3
    n_is_next = n_not_next = 0
    n_docs = len(documents)
    for doc_index in range(lo, n_docs if hi is None else hi):
        doc = documents[doc_index]
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
                    stats["skipped"] = stats.get("skipped", 0) + 1
                    chunk, length = [], 0
                    i += 1
                    continue
                a_s, a_e, b_s, b_e = truncate_seq_pair(a_s, a_e, b_s, b_e, max_num_tokens, rng)
                yield a_s, a_e, b_s, b_e, label
                n_not_next += label
                n_is_next += 1 - label
                chunk, length = [], 0
            i += 1


def build_single_examples(
    documents: Sequence[Spans], max_seq_length: int, short_seq_prob: float, rng: random.Random
) -> list[tuple[int, int, int, int, int]]:
    """Single-segment examples as a list (see :func:`iter_single_examples`)."""
    return list(iter_single_examples(documents, max_seq_length, short_seq_prob, rng))


def iter_single_examples(
    documents: Sequence[Spans],
    max_seq_length: int,
    short_seq_prob: float,
    rng: random.Random,
    lo: int = 0,
    hi: int | None = None,
) -> Iterator[tuple[int, int, int, int, int]]:
    """Single-segment examples (a_s, a_e, 0, 0, -1) for MLM-only pretraining.

    Sentences of one document are packed while they fit the target (max_seq_length - 2, or a random shorter one
    with short_seq_prob); a sentence longer than the target is cut into target-sized pieces. Documents are never
    mixed, so one example never spans two unrelated texts without a separator.
    """
    max_num_tokens = max_seq_length - 2
    for doc_index in range(lo, len(documents) if hi is None else hi):
        doc = documents[doc_index]
        target = max_num_tokens
        if rng.random() < short_seq_prob:
            target = rng.randint(2, max_num_tokens)
        cur_s: int | None = None
        cur_e = 0
        for s, e in doc:
            if cur_s is not None and e - cur_s > target:
                yield cur_s, cur_e, 0, 0, NO_LABEL
                cur_s = None
            if cur_s is None:
                cur_s = s
            cur_e = e
            while cur_e - cur_s > target:
                yield cur_s, cur_s + target, 0, 0, NO_LABEL
                cur_s += target
        if cur_s is not None and cur_e > cur_s:
            yield cur_s, cur_e, 0, 0, NO_LABEL


class DocumentSpans(Sequence[Spans]):
    """The tokenised documents of one split, read from the memory-mapped sentence table on access.

    `documents[j]` is the (start, end) of each sentence of the split's j-th document in the flat token array, so
    the example builders (and their random NotNext partners, drawn from *any* other document of the split) work
    on a corpus of any size while only the pages they touch are read.
    """

    def __init__(self, sentence_ends: np.ndarray, document_ends: np.ndarray, ids: np.ndarray):
        # Plain ndarray views of the memory maps: indexing a np.memmap subclass costs ~10x more per access.
        self.sentence_ends = sentence_ends.view(np.ndarray)  # (S,) int64: end of every sentence in the token array
        self.document_ends = document_ends.view(np.ndarray)  # (D,) int64: sentences up to and including each doc
        self.ids = ids.view(np.ndarray)  # (n,) int64: the documents of this split, in corpus order

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __getitem__(self, j: int) -> Spans:  # type: ignore[override]
        d = int(self.ids[j])
        s0 = int(self.document_ends[d - 1]) if d else 0
        s1 = int(self.document_ends[d])
        ends = self.sentence_ends[s0:s1].tolist()
        starts = [int(self.sentence_ends[s0 - 1]) if s0 else 0, *ends[:-1]]
        return list(zip(starts, ends))


def open_tables(out: Path, split: int) -> DocumentSpans:
    """The documents of one split (0 train, 1 validation) of a cache build directory, memory-mapped."""
    ends_file = out / "sentence_ends.bin"
    sentence_ends = (
        np.memmap(ends_file, dtype=np.int64, mode="r") if ends_file.stat().st_size else np.zeros(0, np.int64)
    )
    document_ends = np.memmap(out / "document_ends.bin", dtype=np.int64, mode="r")
    flags = np.fromfile(out / "document_split.bin", dtype=np.uint8)
    return DocumentSpans(sentence_ends, document_ends, np.flatnonzero(flags == split).astype(np.int64))


def build_range(
    out: str,
    split: int,
    name: str,
    part: int,
    seed: int,
    nsp: bool,
    max_seq_length: int,
    short_seq_prob: float,
    copy: int = 0,
) -> dict[str, Any]:
    """Examples of documents part*RANGE_DOCUMENTS .. (part+1)*RANGE_DOCUMENTS-1 of one split, written to
    `<name>_index.part-<part>` (`-<copy>` for copies after the first) as raw (N, 5) int64 rows; NotNext
    partners come from the whole split. Each copy draws its own target lengths, cut points and partners."""
    c0 = time.process_time()
    documents = open_tables(Path(out), split)
    lo = part * RANGE_DOCUMENTS
    hi = min(len(documents), lo + RANGE_DOCUMENTS)
    suffix = f"-{copy}" if copy else ""  # copy 0 is the one set of pairs of dupe_factor 1
    rng = random.Random(f"bert2-pretraining-{name}-{seed}-{part}{suffix}")  # str seeds hash with SHA-512: stable
    stats = {"skipped": 0}
    rows = (
        iter_nsp_examples(documents, max_seq_length, short_seq_prob, rng, stats, lo, hi)
        if nsp
        else iter_single_examples(documents, max_seq_length, short_seq_prob, rng, lo, hi)
    )
    block = np.fromiter(rows, dtype=np.dtype((np.int64, INDEX_COLUMNS)))
    block.tofile(Path(out) / f"{name}_index.part-{part}{suffix}")
    return {
        "examples": int(len(block)),
        "not_next": int((block[:, 4] == 1).sum()) if nsp else 0,
        "skipped": stats["skipped"],
        "cpu_s": time.process_time() - c0,  # this range's CPU seconds, in whichever process built it
    }
