"""Sentences -> WordPiece ids, fast, in bounded memory: the tokenising stage of pretraining data preparation.

Why not just `tokenizer.encode_batch`: on this project's 2-core machine the `tokenizers` library encodes BERT
text at ~1.3 MB/s per core (BertNormalizer, BertPreTokenizer, WordPiece, all per character), which made it the
slowest stage of preparation by far. Natural text repeats its words (Zipf), so each distinct whitespace-
separated word is encoded once by that same library and its ids are reused from a bounded cache: ~10x faster, and
exactly the same ids, because a BERT tokenizer never lets a token cross whitespace (a sentence is then one pass
in C: `b"".join(map(cache.__getitem__, sentence.split()))`, ~0.1 us a word):

* BertPreTokenizer splits on whitespace (and punctuation) first, so encoding "a b" is encoding "a" then "b";
* BertNormalizer works character by character (lower-casing, accent stripping, control characters removed), so a
  word's normalisation does not depend on its neighbours.

The one place the two could differ is what counts as whitespace: Python's `str.split()` also splits on a few
control characters (\\x0b \\x0c \\x1c-\\x1f \\x85) that BertNormalizer deletes instead (`a\\x0bb` is one word to
BERT). A sentence holding one of them goes to the library whole, as before; every other sentence (accents and CJK
included: both are handled inside a word) is encoded word by word. `tests/test_encode.py` checks the ids against
the library's on real corpora and on adversarial strings. Tokenizers that are not BERT-style (another
pre-tokenizer) always use the library.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bert2.data.corpus import split_sentences
from bert2.memory import peak_rss_mb

# The characters str.split() splits on that BertNormalizer deletes (control characters) instead of treating as
# whitespace; every other separator of str.split() is whitespace to BERT too (Zs, \u2028, \u2029: the pre-tokenizer
# splits on Unicode White_Space).
_UNSAFE = re.compile(r"[\x0b\x0c\x1c-\x1f\x85]")
CACHE_LIMIT = 400_000
"""Distinct words kept (~60 MB); when full the cache starts again (frequent words return at once, Zipf)."""


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (half the disk and page cache of int32), else int32."""
    return np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32)


class SentenceEncoder:
    """Encodes lists of sentences into one flat id array plus each sentence's length (no special tokens)."""

    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_str(tokenizer_json)
        self.backend.no_truncation()
        self.backend.no_padding()
        self.dtype = token_dtype(self.backend.get_vocab_size(with_added_tokens=True))
        spec = json.loads(tokenizer_json)
        pre = (spec.get("pre_tokenizer") or {}).get("type")
        norm = (spec.get("normalizer") or {}).get("type")
        self.word_cache_ok = pre == "BertPreTokenizer" and norm in (None, "BertNormalizer")
        self._encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        self.cache: dict[str, bytes] = {}

    def _ids_bytes(self, ids: list[int]) -> bytes:
        return np.asarray(ids, dtype=self.dtype).tobytes()

    def _sentence(self, sentence: str) -> bytes | None:
        """One sentence's ids as bytes, every word from the cache (split, lookups and join all in C: ~0.1 us a
        word); None when a word is not cached yet."""
        try:
            return b"".join(map(self.cache.__getitem__, sentence.split()))
        except KeyError:
            return None

    def _fill_misses(self, sentences: list[str], parts: list[bytes | None]) -> None:
        """The sentences `_sentence` could not finish (None in `parts`): their uncached words are encoded by the
        library, all at once, added to the cache, and the sentences encoded again."""
        redo = [i for i, p in enumerate(parts) if p is None]
        cache = self.cache
        missing = list({w for i in redo for w in sentences[i].split() if w not in cache})
        cache.update(zip(missing, self._encode_words(missing)))
        for i in redo:
            parts[i] = self._sentence(sentences[i])

    def _encode_words(self, words: list[str], group: int = 2000) -> list[bytes]:
        """Each word's ids as bytes. The words are encoded `group` at a time as one space-joined string (one
        library call per item costs ~10 us, far more than the encoding itself), and each token is given back to
        the word its character offset falls in."""
        texts, starts = [], []
        for i in range(0, len(words), group):
            chunk = words[i : i + group]
            lengths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk)) + 1
            starts.append(np.concatenate([[0], np.cumsum(lengths)[:-1]]))  # (group,) where each word starts
            texts.append(" ".join(chunk))
        out: list[bytes] = []
        size = self.dtype.itemsize
        for enc, word_starts in zip(self.backend.encode_batch(texts, add_special_tokens=False), starts):
            ids = np.asarray(enc.ids, dtype=self.dtype).tobytes()
            token_starts = np.fromiter((o[0] for o in enc.offsets), dtype=np.int64, count=len(enc.offsets))
            owner = np.searchsorted(word_starts, token_starts, side="right") - 1  # (tokens,) word of each token
            bounds = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(word_starts)))]) * size
            out.extend(ids[a:b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()))
        return out

    def encode(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(flat ids of every sentence in order, (len(sentences),) int64 lengths)."""
        if not self.word_cache_ok:
            encodings = self._encode(list(sentences), add_special_tokens=False)
            parts = [self._ids_bytes(e.ids) for e in encodings]
            lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts)) // self.dtype.itemsize
            return np.frombuffer(b"".join(parts), dtype=self.dtype), lengths
        if len(self.cache) > CACHE_LIMIT:
            self.cache.clear()
        sentences = list(sentences)
        whole: list[int] = []  # sentences holding an unsafe character: the library encodes them whole
        if _UNSAFE.search("".join(sentences)) is not None:
            whole = [i for i, x in enumerate(sentences) if _UNSAFE.search(x) is not None]
        todo = list(sentences)
        for i in whole:
            todo[i] = ""
        # One C-level pass per sentence (split, cache lookups, join): no per-word arrays, no separator words.
        parts: list[bytes | None] = list(map(self._sentence, todo))
        if None in parts:
            self._fill_misses(todo, parts)
        if whole:
            encodings = self._encode([sentences[i] for i in whole], add_special_tokens=False)
            for i, enc in zip(whole, encodings):
                parts[i] = self._ids_bytes(enc.ids)
        done: list[bytes] = parts  # type: ignore[assignment]  # every None was filled
        lengths = np.fromiter(map(len, done), dtype=np.int64, count=len(done)) // self.dtype.itemsize
        return np.frombuffer(b"".join(done), dtype=self.dtype), lengths


# -------------------------------------------------------------------------------------------------- worker pool
_worker: dict[str, Any] = {}


def init_worker(tokenizer_json: str) -> None:
    """Pool initializer: one encoder per worker process (each keeps its own word cache)."""
    _worker["encoder"] = SentenceEncoder(tokenizer_json)


def split_and_encode(texts: list[str]) -> dict[str, Any]:
    """One chunk of documents in a worker: sentence splitting, then encoding. Returns the flat ids, each
    sentence's length (empty sentences dropped), each document's sentence count (0: nothing left), the chunk's
    bytes, and the wall and CPU seconds each stage took (the benchmark's per-stage MB/s; CPU seconds per MB do not
    depend on what else the machine runs, wall seconds do)."""
    t0, c0 = time.perf_counter(), time.process_time()
    docs = [split_sentences(t) if t else [] for t in texts]
    t1, c1 = time.perf_counter(), time.process_time()
    flat = [s for d in docs for s in d]
    ids, lengths = _worker["encoder"].encode(flat)
    t2, c2 = time.perf_counter(), time.process_time()
    per_doc = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    # Sentences that encode to nothing are dropped; each document's count shrinks by as many.
    keep = lengths > 0
    if not keep.all():
        owner = np.repeat(np.arange(len(docs)), per_doc)
        per_doc = per_doc - np.bincount(owner[~keep], minlength=len(docs))
        lengths = lengths[keep]
    return {
        "ids": ids,
        "lengths": lengths,
        "sentences_per_doc": per_doc,
        "bytes": sum(len(t.encode("utf-8")) for t in texts if t),
        "split_s": t1 - t0,
        "encode_s": t2 - t1,
        "split_cpu_s": c1 - c0,
        "encode_cpu_s": c2 - c1,
        "peak_rss_mb": peak_rss_mb(),
    }
