"""Pretraining examples: sentence pairs for MLM + NSP, built as google-research/bert's create_pretraining_data,
from a corpus of any size.

Flow: a stream of document texts (sources.py, corpus.py) -> tokenizer (trained on a bounded sample, or loaded)
-> pass 1: chunks of documents split into sentences and encoded by worker processes (encode.py), appended to
flat files -> pass 2: pairs (or single segments when NSP is off; pairs.py) per range of documents, then an
external shuffle -> a cache entry on disk -> `PretrainingData(tokenizer, train, validation, info)`.

Masking is *not* done here: MLMCollator masks each batch afresh (dynamic masking, as RoBERTa), which replaces the
reference's dupe_factor copies with static masks.

Storage (one cache entry, `cache_dir/pretraining/<key>/`):

    tokens.bin             every sentence's ids, corpus order (uint16; int32 for vocabularies over 65,536)
    sentence_ends.bin      (S,) int64 end of each sentence in tokens.bin
    document_ends.bin      (D,) int64 sentences up to and including each document
    document_split.bin     (D,) uint8 1 = validation document
    train_index.npy        (N, 5) int64 per example: A start/end, B start/end (contiguous runs of tokens.bin), label
    validation_index.npy
    info.json              counts, timings, format; written last: its presence marks a complete entry

Everything is memory-mapped: an example is assembled on access in O(1) (~5 us), a cache hit costs
milliseconds, torchrun's ranks share one copy in the page cache, and nothing grows with the corpus in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bert2.data.corpus import (
    TOKENIZER_SAMPLE_BYTES,
    corpus_fingerprint,
    corpus_size,
    numbered_chunks,
    sample_training_documents,
    select_texts,
    stable_hash,
    validation_mask,
)
from bert2.data.encode import init_worker, split_and_encode, token_dtype
from bert2.data.pairs import INDEX_COLUMNS, RANGE_DOCUMENTS, build_range, open_tables
from bert2.data.tokenizer import get_tokenizer, tokenizer_cache_dir, vocab_fingerprint
from bert2.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import BertTokenizerFast

    from bert2.config import Config

DATA_FORMAT = 2  # bump when the example-building algorithm or the file layout changes: old caches are ignored


class PretrainingExamples:
    """List-like view of pretraining examples: ``len(x)``, ``x[i] -> dict``, iteration.

    ``x[i]`` is ``{"input_ids": [CLS] A [SEP] B [SEP], "token_type_ids": 0 over [CLS] A [SEP] and 1 over
    B [SEP], "next_sentence_label": 0 IsNext | 1 NotNext}``; without NSP, ``[CLS] A [SEP]``, all-0 types and no
    label key. Lists of Python ints, like a tokenizer's output, so any collator can take them.
    """

    def __init__(self, tokens: np.ndarray, index: np.ndarray, cls_id: int, sep_id: int, nsp: bool):
        # Plain ndarray views of memory maps: slicing a np.memmap subclass costs ~10x more per access.
        self.tokens = tokens.view(np.ndarray)  # (num_corpus_tokens,) uint16|int32, shared by train and validation
        # (N, 5) a_start, a_end, b_start, b_end, label; memory-mapped too, so torchrun's ranks share one copy.
        self.index = np.asarray(index, dtype=np.int64).view(np.ndarray)
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
            return {
                "input_ids": [self.cls_id, *a, self.sep_id, *b, self.sep_id],
                "token_type_ids": [0] * len_a + [1] * len_b,
                "next_sentence_label": label,
            }
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

    tokenizer: BertTokenizerFast
    train: PretrainingExamples
    validation: PretrainingExamples
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# Preparation: stream -> tokens on disk -> examples on disk
# --------------------------------------------------------------------------------------------------------------

PARALLEL_FROM_BYTES = 24 << 20
"""Corpora at least this large (or of unknown size: hub streams) are split and encoded by worker processes;
smaller ones in this process (starting workers costs ~1 s)."""
INDEX_CHUNK = 1 << 20


def worker_count(corpus: str) -> int:
    """0 (this process) for small corpora, else one worker per core (at most 8): see PARALLEL_FROM_BYTES."""
    size = corpus_size(corpus)
    if size is not None and size < PARALLEL_FROM_BYTES:
        return 0
    return max(1, min(8, os.cpu_count() or 1))


class _Stages:
    """Seconds and bytes per stage of one preparation: what `bert2 bench data_prep` prints as MB/s."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}  # process_time: the workers' own CPU, and the main process's
        self.bytes = 0
        self.worker_peak_mb = 0.0

    def add(self, name: str, seconds: float, cpu_seconds: float | None = None) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        if cpu_seconds is not None:
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + cpu_seconds


def _encode_corpus(
    cfg: Config, tokenizer: Any, out: Path, say: Callable[[str], None], stages: _Stages, pool: Any, workers: int
) -> dict[str, Any]:
    """Pass 1: stream the corpus through sentence splitting and encoding into the four append-only files of the
    module docstring (tokens.bin, sentence_ends.bin, document_ends.bin, document_split.bin).

    Memory stays flat: a few chunks of ~2 MB are in flight; everything else goes straight to disk.
    """
    from collections import deque

    d = cfg.data
    if pool is None:
        init_worker(tokenizer.backend_tokenizer.to_str())
    counts = {"documents": 0, "sentences": 0, "tokens": 0}
    validation_docs = 0
    next_report = time.perf_counter() + 10
    files = {
        name: open(out / name, "wb")
        for name in ("tokens.bin", "sentence_ends.bin", "document_ends.bin", "document_split.bin")
    }

    def write(first: int, result: dict[str, Any]) -> None:
        nonlocal validation_docs, next_report
        t0, c0 = time.perf_counter(), time.process_time()
        per_doc = result["sentences_per_doc"]
        kept = per_doc > 0  # a text whose every sentence encodes to nothing is no document
        held_out = validation_mask(first, len(per_doc), d.validation_fraction, d.seed)[kept]
        files["tokens.bin"].write(result["ids"].tobytes())
        ends = counts["tokens"] + np.cumsum(result["lengths"])
        files["sentence_ends.bin"].write(ends.astype(np.int64).tobytes())
        doc_ends = counts["sentences"] + np.cumsum(per_doc[kept])
        files["document_ends.bin"].write(doc_ends.astype(np.int64).tobytes())
        files["document_split.bin"].write(held_out.astype(np.uint8).tobytes())
        validation_docs += int(held_out.sum())
        counts["tokens"] += int(result["ids"].shape[0])
        counts["sentences"] += int(result["lengths"].shape[0])
        counts["documents"] += int(kept.sum())
        stages.bytes += result["bytes"]
        stages.add("split", result["split_s"], result["split_cpu_s"])
        stages.add("encode", result["encode_s"], result["encode_cpu_s"])
        stages.add("write", time.perf_counter() - t0, time.process_time() - c0)
        stages.worker_peak_mb = max(stages.worker_peak_mb, result["peak_rss_mb"])
        if time.perf_counter() > next_report:
            say(
                f"tokenised {stages.bytes / 1e6:,.0f} MB: {counts['documents']:,} documents, "
                f"{counts['tokens']:,} tokens"
            )
            next_report = time.perf_counter() + 10

    try:
        pending: deque[tuple[int, Any]] = deque()
        numbered = numbered_chunks(select_texts(d.corpus, d.max_documents, d.streaming))
        while True:
            t0, c0 = time.perf_counter(), time.process_time()
            item = next(numbered, None)
            stages.add("read", time.perf_counter() - t0, time.process_time() - c0)
            if item is None:
                break
            first, chunk = item
            if pool is None:
                write(first, split_and_encode(chunk))
                continue
            pending.append((first, pool.apply_async(split_and_encode, (chunk,))))
            while len(pending) > 2 * workers:  # bounded: the reader never runs far ahead of the workers
                f, res = pending.popleft()
                write(f, res.get())
        while pending:
            f, res = pending.popleft()
            write(f, res.get())
    finally:
        for fh in files.values():
            fh.close()
    if counts["documents"] >= 2 and validation_docs == 0 and d.validation_fraction > 0:
        # Few documents and none drawn: the last one is held out, so validation is never empty.
        with open(out / "document_split.bin", "r+b") as fh:
            fh.seek(counts["documents"] - 1)
            fh.write(b"\x01")
        validation_docs = 1
    if counts["tokens"] == 0:
        raise DataError(f"corpus {d.corpus!r} yields no tokens to train on")
    return {
        **counts,
        "validation_documents": validation_docs,
        "workers": workers,
        "token_dtype": str(token_dtype(len(tokenizer))),
    }


AUTO_DISTINCT_PAIRS = 75_000
"""`data.dupe_factor = 0` (auto) adds copies of the training pairs until there are at least this many (at most
AUTO_MAX_COPIES copies). Why this many: a 10-minute run on two CPU cores sees ~190,000 examples, so each pair comes
back ~2.5 times; with wiki-offline's one set of 15,070 pairs it came back 12 times, the NSP head memorised them
(held-out NSP loss rising from step 2,000) and held-out masked-token accuracy ended 2.3 points lower
(docs/performance.md). A corpus with more pairs than this gets one copy: nothing is repeated enough to matter."""

AUTO_MAX_COPIES = 10
"""google-research/bert's default dupe_factor."""


def _build_copies(
    cfg: Config, out: Path, split: int, name: str, pool: Any, parts: range, copies: range
) -> list[dict[str, Any]]:
    d = cfg.data
    args = [
        (str(out), split, name, k, d.seed, d.nsp, d.max_seq_length, d.short_seq_prob, c) for c in copies for k in parts
    ]
    in_workers = pool is not None and len(args) > 1
    results = pool.starmap(build_range, args) if in_workers else [build_range(*a) for a in args]
    for r in results:
        r["in_workers"] = in_workers
    return results


def _write_examples(cfg: Config, out: Path, split: int, name: str, pool: Any) -> dict[str, int]:
    """Pass 2 for one split: examples of each range of RANGE_DOCUMENTS documents built (by the workers when there
    are any: ranges are independent), `dupe_factor` copies of them for training (0: enough for AUTO_DISTINCT_PAIRS),
    then gathered in a shuffled order into `<name>_index.npy` ((N, 5) int64)."""
    d = cfg.data
    n_docs = len(open_tables(out, split))
    parts = range((n_docs + RANGE_DOCUMENTS - 1) // RANGE_DOCUMENTS)
    results = _build_copies(cfg, out, split, name, pool, parts, range(1))
    first = sum(r["examples"] for r in results)
    copies = 1
    if split == 0:  # held-out pairs stay one fixed set
        wanted = -(-AUTO_DISTINCT_PAIRS // max(first, 1))
        copies = d.dupe_factor or max(1, min(AUTO_MAX_COPIES, wanted))
        results += _build_copies(cfg, out, split, name, pool, parts, range(1, copies))
    n = sum(r["examples"] for r in results)
    _shuffle_into(
        out,
        name,
        [out / (f"{name}_index.part-{k}" + (f"-{c}" if c else "")) for c in range(copies) for k in parts],
        n,
        np.random.default_rng(int(stable_hash([name, d.seed]), 16)),
    )
    return {
        "examples": n,
        "copies": copies,
        "not_next": sum(r["not_next"] for r in results),
        "skipped": sum(r["skipped"] for r in results),
        "documents": n_docs,
        "worker_cpu_s": sum(r["cpu_s"] for r in results if r["in_workers"]),  # else in main's process_time
    }


def _shuffle_into(out: Path, name: str, parts: list[Path], n: int, rng: np.random.Generator) -> None:
    """The rows of `parts` in a uniformly random order, into `<name>_index.npy`, in bounded memory.

    As the reference: neighbouring examples should not come from one document. An external shuffle (Rao 1961): each
    row goes to one of K bucket files at random, then each bucket (~INDEX_CHUNK rows) is permuted in memory and
    appended. The result is a uniform random permutation, and no step holds more than one bucket, however many
    examples there are (a memory-mapped gather would leave the whole index resident).
    """
    buckets = max(1, -(-n // INDEX_CHUNK))
    bucket_paths = [out / f"{name}_index.bucket-{b}" for b in range(buckets)]
    row = np.dtype((np.int64, INDEX_COLUMNS))
    files = [open(p, "wb") for p in bucket_paths]
    try:
        for part in parts:
            with open(part, "rb") as fh:
                while True:
                    block = np.fromfile(fh, dtype=row, count=INDEX_CHUNK)
                    if not len(block):
                        break
                    where = rng.integers(buckets, size=len(block))
                    order = np.argsort(where, kind="stable")
                    bounds = np.searchsorted(where[order], np.arange(buckets + 1))
                    for b in range(buckets):
                        if bounds[b + 1] > bounds[b]:
                            files[b].write(block[order[bounds[b] : bounds[b + 1]]].tobytes())
            part.unlink()
    finally:
        for fh in files:
            fh.close()
    with open(out / f"{name}_index.npy", "wb") as fh:
        np.lib.format.write_array_header_2_0(
            fh,
            {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.int64)),
                "fortran_order": False,
                "shape": (n, INDEX_COLUMNS),
            },
        )
        for path in bucket_paths:
            block = np.fromfile(path, dtype=np.int64).reshape(-1, INDEX_COLUMNS)
            fh.write(block[rng.permutation(len(block))].tobytes())
            path.unlink()


# --------------------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------------------


def data_cache_key(cfg: Config, tokenizer: Any) -> str:
    """Hash of everything that changes the examples: corpus identity, max_documents, the tokenizer's vocabulary
    and normalisation, max_seq_length, nsp, short_seq_prob, seed, validation_fraction, dupe_factor and the format
    version."""
    d = cfg.data
    return stable_hash(
        {
            "format": DATA_FORMAT,
            "corpus": corpus_fingerprint(d.corpus),
            "max_documents": d.max_documents,
            "vocab": vocab_fingerprint(tokenizer),
            "max_seq_length": d.max_seq_length,
            "nsp": d.nsp,
            "short_seq_prob": d.short_seq_prob,
            "seed": d.seed,
            "validation_fraction": d.validation_fraction,
            "dupe_factor": d.dupe_factor,
        }
    )


def data_cache_dir(cfg: Config, tokenizer: Any) -> Path:
    """cache_dir/pretraining/<key>: where the examples built for `cfg` and `tokenizer` live."""
    return Path(cfg.data.cache_dir) / "pretraining" / data_cache_key(cfg, tokenizer)


def _load_cached(path: Path, tokenizer: Any) -> tuple[PretrainingExamples, PretrainingExamples, dict[str, Any]] | None:
    """The cached splits, memory-mapped, or None when the entry is missing, unfinished or unreadable (then it is
    rebuilt). `info.json` is written last and the directory renamed into place after it, so an entry a killed
    build left behind is never taken for a complete one."""
    info_file = path / "info.json"
    if not info_file.is_file():
        return None
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
        if info.get("format") != DATA_FORMAT:
            return None
        dtype = np.dtype(info["token_dtype"])
        size = (path / "tokens.bin").stat().st_size
        if size != info["corpus_tokens"] * dtype.itemsize:
            return None
        tokens = np.memmap(path / "tokens.bin", dtype=dtype, mode="r") if size else np.zeros(0, dtype)
        train_idx = np.load(path / "train_index.npy", mmap_mode="r")
        val_idx = np.load(path / "validation_index.npy", mmap_mode="r")
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None
    nsp = bool(info.get("nsp", True))
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    return (
        PretrainingExamples(tokens, train_idx, cls_id, sep_id, nsp),
        PretrainingExamples(tokens, val_idx, cls_id, sep_id, nsp),
        info,
    )


@contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """One builder per cache entry across processes (two runs started together, or torchrun ranks that do not
    share a barrier): the second waits, then finds the entry complete. An OS lock, released by the kernel when
    its holder dies, so a killed build never blocks the next one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no cross-process lock; the atomic rename still holds
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_stale_builds(path: Path) -> int:
    """Directories of builds that died (SIGKILL, power loss) before their rename; called under the lock, so no
    live build owns them."""
    stale = [p for p in path.parent.glob(f".{path.name}.*") if p.is_dir()]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return len(stale)


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------


def prepare_pretraining_data(
    cfg: Config,
    tokenizer: BertTokenizerFast | None = None,
    *,
    use_cache: bool = True,
    progress: Callable[[str], None] | None = None,
) -> PretrainingData:
    """Tokenizer + train/validation examples for `cfg`, from the on-disk cache when nothing that matters changed.

    `tokenizer` None means `get_tokenizer(cfg, ...)` (train-and-cache on a bounded sample, or load). `progress`
    receives short stage messages a UI can show while a first run builds. A cache hit reads no corpus and
    tokenises nothing: it memory-maps the arrays (milliseconds). `use_cache=False` rebuilds even when an entry
    exists (and replaces it). Raises DataError / TokenizerError for corpora or tokenizers the user must fix.
    """
    d = cfg.data
    say = progress or (lambda _msg: None)
    if d.max_seq_length < 8:
        raise DataError(f"data.max_seq_length must be at least 8 to hold [CLS] A [SEP] B [SEP], got {d.max_seq_length}")
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    if tokenizer is None:
        sample = None
        if not d.tokenizer.strip() and not (tokenizer_cache_dir(cfg) / "tokenizer.json").is_file():
            say(
                f"reading up to {TOKENIZER_SAMPLE_BYTES >> 20} MB of {d.corpus} to train a WordPiece tokenizer "
                f"({cfg.model.vocab_size} tokens)"
            )
            sample = sample_training_documents(d.corpus, d.max_documents, d.validation_fraction, d.seed, d.streaming)
        t0 = time.perf_counter()
        tokenizer = get_tokenizer(cfg, sample)
        timings["tokenizer"] = round(time.perf_counter() - t0, 3)

    path = data_cache_dir(cfg, tokenizer)
    if use_cache:
        cached = _load_cached(path, tokenizer)
        if cached is not None:
            return _hit(cached, tokenizer, path, t_start, say)
    with _build_lock(path):
        if use_cache:
            cached = _load_cached(path, tokenizer)  # another process built it while this one waited
            if cached is not None:
                return _hit(cached, tokenizer, path, t_start, say)
        stale = _remove_stale_builds(path)
        if stale:
            say(f"removed {stale} unfinished cache build{'s' if stale > 1 else ''} (a run was killed mid-build)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            info = _build(cfg, tokenizer, tmp, say, timings, t_start)
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)  # unreadable, or use_cache=False
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    cached = _load_cached(path, tokenizer)
    if cached is None:  # pragma: no cover - the entry was just written
        raise DataError(f"the data cache {path} could not be read back after writing it")
    train, validation, _ = cached
    return PretrainingData(tokenizer, train, validation, {**info, "cache_hit": False, "cache_path": str(path)})


def _hit(cached: Any, tokenizer: Any, path: Path, t_start: float, say: Callable[[str], None]) -> PretrainingData:
    train, validation, info = cached
    info = {**info, "cache_hit": True, "cache_path": str(path), "load_seconds": round(time.perf_counter() - t_start, 4)}
    say(f"loaded {len(train)} train / {len(validation)} validation examples from the cache")
    return PretrainingData(tokenizer, train, validation, info)


def _build(
    cfg: Config, tokenizer: Any, out: Path, say: Callable[[str], None], timings: dict[str, float], t_start: float
) -> dict[str, Any]:
    """Both passes into `out` (a temporary directory), info.json last."""
    import multiprocessing as mp

    d = cfg.data
    stages = _Stages()
    workers = worker_count(d.corpus)
    pool = None
    if workers:
        # spawn, not fork: the parent may hold torch and tokenizers threads, which a fork copies in a broken state
        pool = mp.get_context("spawn").Pool(
            workers, initializer=init_worker, initargs=(tokenizer.backend_tokenizer.to_str(),)
        )
    try:
        say(
            f"tokenising {d.corpus} ({f'{workers} worker processes' if workers else 'in this process'}; streamed: "
            "memory stays flat however large the corpus)"
        )
        t0, c0 = time.perf_counter(), time.process_time()
        corpus = _encode_corpus(cfg, tokenizer, out, say, stages, pool, workers)
        timings["tokenize"] = round(time.perf_counter() - t0, 3)
        stages.cpu_seconds["main_tokenize"] = time.process_time() - c0  # reading, writing, waiting on workers
        say("building sentence pairs" if d.nsp else "packing segments")
        t0, c0 = time.perf_counter(), time.process_time()
        train = _write_examples(cfg, out, 0, "train", pool)
        validation = _write_examples(cfg, out, 1, "validation", pool)
        timings["build"] = round(time.perf_counter() - t0, 3)
        stages.cpu_seconds["main_build"] = time.process_time() - c0  # shuffling, and pairs when there are no workers
        stages.cpu_seconds["pairs_workers"] = train["worker_cpu_s"] + validation["worker_cpu_s"]
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    if train["examples"] == 0:
        raise DataError(f"corpus {d.corpus!r} yields no training examples")
    timings["total"] = round(time.perf_counter() - t_start, 3)
    info: dict[str, Any] = {
        "format": DATA_FORMAT,
        "corpus": d.corpus,
        "nsp": d.nsp,
        "max_seq_length": d.max_seq_length,
        "documents": corpus["documents"],
        "train_documents": train["documents"],
        "validation_documents": validation["documents"],
        "sentences": corpus["sentences"],
        "corpus_tokens": corpus["tokens"],
        "corpus_bytes": stages.bytes,
        "token_dtype": corpus["token_dtype"],
        "vocab_size": len(tokenizer),
        "train_examples": train["examples"],
        "train_copies": train["copies"],
        "validation_examples": validation["examples"],
        "train_not_next": train["not_next"],
        "validation_not_next": validation["not_next"],
        "skipped_chunks": train["skipped"] + validation["skipped"],
        "workers": corpus["workers"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "build_seconds": timings,
        "stage_seconds": {k: round(v, 3) for k, v in stages.seconds.items()},
        "stage_cpu_seconds": {k: round(v, 3) for k, v in stages.cpu_seconds.items()},
        "worker_peak_rss_mb": round(stages.worker_peak_mb, 1) if corpus["workers"] else None,
    }
    (out / "info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")  # written last: the marker
    return info
