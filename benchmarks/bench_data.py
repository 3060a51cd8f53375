"""Measure the data pipeline on wiki-offline: corpus load, WordPiece training, example building, cache hit, collate.

    python benchmarks/bench_data.py [--vocab 8192] [--max-seq-length 128] [--no-nsp]

Uses a fresh temporary cache directory, so the first prepare is a full build; prints one line per measurement.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--no-nsp", action="store_true")
    args = ap.parse_args()

    from bert2.config import Config
    from bert2.data.collator import MLMCollator
    from bert2.data.corpus import load_documents, sample_training_documents
    from bert2.data.pretraining import prepare_pretraining_data
    from bert2.data.tokenizer import train_wordpiece

    with tempfile.TemporaryDirectory() as cache:
        cfg = Config()
        cfg.model.vocab_size = args.vocab
        cfg.data.max_seq_length = args.max_seq_length
        cfg.data.nsp = not args.no_nsp
        cfg.data.cache_dir = cache

        t0 = time.perf_counter()
        docs = load_documents("wiki-offline")
        t_load = time.perf_counter() - t0
        print(f"load wiki-offline (cold): {t_load:.2f} s, {len(docs)} documents, {sum(map(len, docs))} sentences")
        t0 = time.perf_counter()
        load_documents("wiki-offline")
        print(f"load wiki-offline (warm): {time.perf_counter() - t0:.2f} s")

        train_docs = sample_training_documents("wiki-offline", 0, cfg.data.validation_fraction, cfg.data.seed)
        t0 = time.perf_counter()
        tok = train_wordpiece((" ".join(d) for d in train_docs), args.vocab)
        print(f"train WordPiece {args.vocab}: {time.perf_counter() - t0:.2f} s, {len(tok)} tokens")

        t0 = time.perf_counter()
        data = prepare_pretraining_data(cfg)  # full build: corpus, tokenizer training + cache, tokenise, pairs
        info = data.info
        print(
            f"prepare (full build incl. tokenizer training): {time.perf_counter() - t0:.2f} s; stages "
            f"{info['build_seconds']}"
        )
        print(
            f"examples at max_seq_length {args.max_seq_length}: {info['train_examples']} train / "
            f"{info['validation_examples']} validation; NotNext {info['train_not_next']} / "
            f"{info['validation_not_next']}; corpus tokens {info['corpus_tokens']}; "
            f"mean length {float(data.train.lengths.mean()):.1f}"
        )

        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            hit = prepare_pretraining_data(cfg)
            times.append(time.perf_counter() - t0)
            assert hit.info["cache_hit"]
        print(f"cache hit (warm process): median {statistics.median(times) * 1e3:.1f} ms")

        collator = MLMCollator.from_config(data.tokenizer, cfg.data)
        examples = [data.train[i] for i in range(32)]
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            collator(examples)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(10000):
            data.train[i % len(data.train)]
        per_item = (time.perf_counter() - t0) / 10000
        print(
            f"collate 32 examples: median {statistics.median(times) * 1e3:.2f} ms; "
            f"example access {per_item * 1e6:.1f} us"
        )


if __name__ == "__main__":
    main()
