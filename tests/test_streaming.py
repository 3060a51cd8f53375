"""Corpora larger than memory (bert2/data/sources.py, pretraining.py): shards, compression, precise errors, one
builder per cache entry, and a build killed mid-way that is never taken for a complete cache."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import english_documents

from bert2.data import pretraining as pre
from bert2.data.corpus import corpus_fingerprint, load_documents
from bert2.errors import DataError


def _jsonl(docs) -> bytes:
    return "".join(json.dumps({"text": " ".join(d)}) + "\n" for d in docs).encode("utf-8")


def _zstd(data: bytes, path: Path) -> None:
    import pyarrow as pa

    with pa.CompressedOutputStream(str(path), "zstd") as fh:
        fh.write(data)


@pytest.fixture
def shards(tmp_path):
    """english_documents() as one .jsonl file and as three compressed shards (gz, zst, bz2) of the same text."""
    docs = english_documents()
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(_jsonl(docs))
    d = tmp_path / "shards"
    d.mkdir()
    third = len(docs) // 3
    (d / "part-0.jsonl.gz").write_bytes(gzip.compress(_jsonl(docs[:third])))
    _zstd(_jsonl(docs[third : 2 * third]), d / "part-1.jsonl.zst")
    (d / "part-2.jsonl.bz2").write_bytes(bz2.compress(_jsonl(docs[2 * third :])))
    return whole, d


def test_a_directory_or_glob_of_compressed_shards_reads_as_the_whole_file(shards):
    whole, d = shards
    expected = load_documents(str(whole))
    assert load_documents(str(d)) == expected
    assert load_documents(str(d / "part-*.jsonl.*")) == expected
    assert corpus_fingerprint(str(d)) != corpus_fingerprint(str(whole))


def test_sharded_preparation_builds_the_same_examples_as_one_file(shards, word_free_cfg):
    whole, d = shards
    a = pre.prepare_pretraining_data(word_free_cfg(whole, "a"))
    b = pre.prepare_pretraining_data(word_free_cfg(d, "b"), a.tokenizer)
    assert len(a.train) > 0 and list(a.train) == list(b.train) and list(a.validation) == list(b.validation)


@pytest.fixture
def word_free_cfg(tmp_path):
    from bert2.config import Config

    def make(corpus, cache: str) -> Config:
        cfg = Config()
        cfg.model.vocab_size = 300
        cfg.data.corpus = str(corpus)
        cfg.data.cache_dir = str(tmp_path / f"cache-{cache}")
        cfg.data.max_seq_length = 32
        return cfg

    return make


def _error(corpus) -> str:
    with pytest.raises(DataError) as info:
        load_documents(str(corpus))
    return str(info.value)


def test_bad_shards_are_named_with_where_they_broke(tmp_path, shards):
    _, d = shards
    good = gzip.compress(b'{"text": "One sentence here. Another one."}\n' * 2000)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "a.jsonl.gz").write_bytes(good)
    (corrupt / "b.jsonl.gz").write_bytes(good[: len(good) // 2])  # truncated
    msg = _error(corrupt)
    assert "b.jsonl.gz" in msg and "corrupt or truncated" in msg and "uncompressed bytes" in msg and "line" in msg

    zst = tmp_path / "bad.jsonl.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 20)
    assert "bad.jsonl.zst" in _error(zst) and "corrupt" in _error(zst)

    empty = tmp_path / "with-empty"
    empty.mkdir()
    (empty / "a.txt").write_text("A document. With text.\n", encoding="utf-8")
    (empty / "b.txt").write_bytes(b"")
    assert "b.txt" in _error(empty) and "is empty" in _error(empty)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.txt").write_text("Some text.\n", encoding="utf-8")
    (mixed / "b.jsonl").write_text('{"text": "More text."}\n', encoding="utf-8")
    msg = _error(mixed)
    assert "mixes formats" in msg and "a.txt" in msg and "b.jsonl" in msg

    bad_line = tmp_path / "bad-line"
    bad_line.mkdir()
    (bad_line / "a.jsonl.gz").write_bytes(gzip.compress(b'{"text": "fine"}\n{"text": oops}\n'))
    msg = _error(bad_line)
    assert "a.jsonl.gz" in msg and "line 2" in msg

    assert "holds no corpus files" in _error(tmp_path / "nothing-*.jsonl")


def test_a_failed_build_leaves_nothing_a_later_run_would_trust(tmp_path, word_free_cfg):
    shards = tmp_path / "s"
    shards.mkdir()
    (shards / "a.jsonl").write_bytes(_jsonl(english_documents()))
    (shards / "b.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n', encoding="utf-8")
    from bert2.data.tokenizer import train_wordpiece

    tok = train_wordpiece(iter(" ".join(d) for d in english_documents()), 300)
    cfg = word_free_cfg(shards, "x")
    with pytest.raises(DataError, match="line 2"):
        pre.prepare_pretraining_data(cfg, tok)
    root = Path(cfg.data.cache_dir) / "pretraining"
    assert not any(p.is_dir() for p in root.iterdir())  # no entry, no half-built directory


def test_a_killed_build_is_rebuilt_never_used(tmp_path, word_free_cfg):
    """SIGKILL a build while it writes, then prepare again: the leftover is removed and the rebuilt cache equals
    one built without interruption."""
    big = tmp_path / "big.jsonl"
    docs = english_documents()
    with open(big, "wb") as fh:
        for k in range(60):  # ~60x the fixture: a build that lasts long enough to be killed
            fh.write(_jsonl([[f"{s} {k}" for s in d] for d in docs]))
    cfg = word_free_cfg(big, "k")
    cfg.save(tmp_path / "k.toml")
    from bert2.data.tokenizer import save_tokenizer, train_wordpiece

    tok = train_wordpiece(iter(" ".join(d) for d in docs), 300)
    save_tokenizer(tok, tmp_path / "tok")
    script = (
        "import sys; from bert2.config import load_config; from bert2.data.tokenizer import load_tokenizer; "
        "from bert2.data import pretraining as pre; import time\n"
        "orig = pre._write_examples\n"
        "def slow(*a, **k):\n    print('building', flush=True); time.sleep(60); return orig(*a, **k)\n"
        "pre._write_examples = slow\n"
        f"pre.prepare_pretraining_data(load_config({str(tmp_path / 'k.toml')!r}), "
        f"load_tokenizer({str(tmp_path / 'tok')!r}))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert proc.stdout.readline().strip() == "building"  # pass 1 is written; pass 2 has begun
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    root = Path(cfg.data.cache_dir) / "pretraining"
    leftovers = [p for p in root.iterdir() if p.is_dir()]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".")  # the unfinished build, never renamed
    assert (leftovers[0] / "tokens.bin").stat().st_size > 0 and not (leftovers[0] / "info.json").exists()

    rebuilt = pre.prepare_pretraining_data(cfg, tok)
    assert not rebuilt.info["cache_hit"] and not leftovers[0].exists()
    clean = pre.prepare_pretraining_data(word_free_cfg(big, "clean"), tok)
    assert list(rebuilt.train)[:200] == list(clean.train)[:200] and len(rebuilt.train) == len(clean.train)
    assert pre.prepare_pretraining_data(cfg, tok).info["cache_hit"]


def test_two_processes_build_one_cache_once(tmp_path, word_free_cfg):
    """Two preparations started together: one builds, the other waits on the lock and reads what it built."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_bytes(_jsonl(english_documents()) * 20)
    cfg = word_free_cfg(corpus, "two")
    cfg.data.tokenizer = ""
    cfg.save(tmp_path / "two.toml")
    from bert2.data.tokenizer import save_tokenizer, train_wordpiece

    save_tokenizer(train_wordpiece(iter(" ".join(d) for d in english_documents()), 300), tmp_path / "tok")
    script = (
        "import json; from bert2.config import load_config; from bert2.data.tokenizer import load_tokenizer; "
        "from bert2.data import pretraining as pre\n"
        f"d = pre.prepare_pretraining_data(load_config({str(tmp_path / 'two.toml')!r}), "
        f"load_tokenizer({str(tmp_path / 'tok')!r}))\n"
        "print(json.dumps([d.info['cache_hit'], len(d.train)]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    assert sorted(hit for hit, _ in results) == [False, True]  # built once, read once
    assert results[0][1] == results[1][1] > 0
    entries = [p for p in (Path(cfg.data.cache_dir) / "pretraining").iterdir() if p.is_dir()]
    assert len(entries) == 1 and not entries[0].name.startswith(".")


def test_nsp_partners_come_from_any_other_document(tmp_path, word_free_cfg):
    """NotNext partners are drawn from the whole split through the memory-mapped sentence table (no reservoir):
    never the pair's own document, and spread over many documents."""
    docs = [[f"Topic{k} sentence number {j} of document {k}." for j in range(4)] for k in range(200)]
    corpus = tmp_path / "docs.jsonl"
    corpus.write_bytes(_jsonl(docs))
    cfg = word_free_cfg(corpus, "nsp")
    cfg.model.vocab_size = 600
    data = pre.prepare_pretraining_data(cfg)
    tok = data.tokenizer
    partners = []
    for ex in data.train:
        if ex["next_sentence_label"] != 1:
            continue
        text = tok.decode(ex["input_ids"])
        a, b = text.split("[SEP]")[:2]
        da = {w for w in a.split() if w.startswith("topic")}
        db = {w for w in b.split() if w.startswith("topic")}
        if da and db:
            assert da.isdisjoint(db)
            partners.append(next(iter(db)))
    assert len(partners) > 50 and len(set(partners)) > 40


def test_external_shuffle_is_a_permutation_in_bounded_buckets(tmp_path, monkeypatch):
    """Many buckets (INDEX_CHUNK made tiny): every row comes out exactly once, in an order that depends on the
    seed only, and no longer in the order the parts held them."""
    import numpy as np

    monkeypatch.setattr(pre, "INDEX_CHUNK", 64)
    rows = np.arange(1000 * 5, dtype=np.int64).reshape(1000, 5)

    def run(seed: int) -> np.ndarray:
        parts = []
        for k, lo in enumerate(range(0, 1000, 300)):
            path = tmp_path / f"x_index.part-{k}"
            rows[lo : lo + 300].tofile(path)
            parts.append(path)
        pre._shuffle_into(tmp_path, "x", parts, 1000, np.random.default_rng(seed))
        out = np.load(tmp_path / "x_index.npy")
        assert not list(tmp_path.glob("x_index.part-*")) and not list(tmp_path.glob("x_index.bucket-*"))
        return out

    a, b, c = run(1), run(1), run(2)
    assert a.shape == (1000, 5) and sorted(a[:, 0].tolist()) == rows[:, 0].tolist()
    assert (a == b).all() and not (a == c).all() and not (a == rows).all()
    assert abs(np.corrcoef(a[:, 0], np.arange(1000))[0, 1]) < 0.1  # no trace of the input order
