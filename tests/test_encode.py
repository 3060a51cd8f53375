"""The word-cache encoder gives exactly the ids of the tokenizers library, on real text and on adversarial strings
(bert2/data/encode.py explains why it may cache word by word)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bert2.data.corpus import imdb_reviews, load_wiki_articles, split_sentences
from bert2.data.encode import SentenceEncoder, init_worker, split_and_encode
from bert2.data.tokenizer import train_wordpiece


@pytest.fixture(scope="module")
def tokenizers():
    """An uncased and a cased WordPiece tokenizer trained on real text (both BertNormalizer + BertPreTokenizer)."""
    texts = [a["extract"] for a in load_wiki_articles()[:1500]] + [r["text"] for r in imdb_reviews()[:500]]
    return {"uncased": train_wordpiece(iter(texts), 2000, True), "cased": train_wordpiece(iter(texts), 2000, False)}


def _library(tokenizer, sentences):
    enc = SentenceEncoder(tokenizer.backend_tokenizer.to_str())
    return [list(e.ids) for e in enc.backend.encode_batch(list(sentences), add_special_tokens=False)]


def _check(tokenizer, sentences):
    expected = _library(tokenizer, sentences)
    ids, lengths = SentenceEncoder(tokenizer.backend_tokenizer.to_str()).encode(sentences)
    assert lengths.tolist() == [len(x) for x in expected]
    assert ids.tolist() == [i for x in expected for i in x]


@pytest.mark.parametrize("case", ["uncased", "cased"])
def test_same_ids_as_the_library_on_real_text(tokenizers, case):
    texts = [a["extract"] for a in load_wiki_articles()[3000:4000]] + [r["text"] for r in imdb_reviews()[2000:2300]]
    _check(tokenizers[case], [s for t in texts for s in split_sentences(t)])


ODD = [
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1f",
    "\x85",
    "\xa0",
    "\u2028",
    "\u2029",
    "\u3000",
    "\u200b",
    "\ufeff",
    "\u00ad",
    "\t",
    "\r",
    "\n",
    " ",
    "\x00",
    "\x7f",
    "\u0301",
    "é",
    "Ö",
    "ß",
    "中",
    "文",
    "日本",
    "😀",
    "[MASK]",
    "[SEP]",
    "[UNK]",
    "##",
    "-",
    "'",
    ".",
    ",",
    "(",
    "Ǆ",
    "ﬁ",
    "İ",
    "\u0130",
    "x" * 120,
]


def test_same_ids_as_the_library_on_adversarial_strings(tokenizers):
    rng = random.Random(0)
    words = ["the", "film", "Paris", "don't", "U.S.", "café", "naïve", "1,000", "e-mail"]
    sentences = []
    for _ in range(3000):
        parts = [rng.choice(ODD + words) for _ in range(rng.randint(1, 8))]
        joiners = [rng.choice(["", " ", "  ", rng.choice(ODD)]) for _ in parts]
        sentences.append("".join(p + j for p, j in zip(parts, joiners)))
    for tok in tokenizers.values():
        _check(tok, sentences)
        _check(tok, sentences[:50] + ["plain ascii words only"] * 3)  # the all-safe fast path
        _check(tok, ["", "   ", "\x0b"])  # sentences that encode to nothing


def test_worker_drops_empty_sentences_and_counts_them_out(tokenizers):
    tok = tokenizers["uncased"]
    init_worker(tok.backend_tokenizer.to_str())
    out = split_and_encode(["The cat sat. The dog ran.", "", "\x0b\x0b. Another one here."])
    per_doc = out["sentences_per_doc"].tolist()
    assert per_doc[1] == 0 and sum(per_doc) == len(out["lengths"]) and (out["lengths"] > 0).all()
    assert out["ids"].shape[0] == int(np.sum(out["lengths"]))


def test_one_encoder_over_many_chunks_keeps_the_library_ids(tokenizers):
    """A worker's encoder lives for the whole corpus: later chunks mix cached words, new words (the misses path)
    and sentences the library must encode whole; the cache may also be cleared between chunks."""
    import bert2.data.encode as encode_module

    rng = random.Random(1)
    texts = [a["extract"] for a in load_wiki_articles()[4000:4600]]
    sentences = [s for t in texts for s in split_sentences(t)]
    odd = ["naïve café ÖSTERREICH", "x" * 300 + " " + "ab" * 200, "日本語の文 mixed", "zzqxj [UNK] [MASK]", "a\x0bb c"]
    for tok in tokenizers.values():
        enc = SentenceEncoder(tok.backend_tokenizer.to_str())
        for k in range(0, len(sentences), 700):
            chunk = sentences[k : k + 700] + [rng.choice(odd) for _ in range(5)]
            rng.shuffle(chunk)
            expected = _library(tok, chunk)
            ids, lengths = enc.encode(chunk)
            assert lengths.tolist() == [len(x) for x in expected]
            assert ids.tolist() == [i for x in expected for i in x]
        assert len(enc.cache) > 1000  # the later chunks did hit the cache
        old_limit = encode_module.CACHE_LIMIT
        encode_module.CACHE_LIMIT = 10  # clearing the cache changes nothing but speed
        try:
            ids, lengths = enc.encode(sentences[:300])
            expected = _library(tok, sentences[:300])
            assert ids.tolist() == [i for x in expected for i in x]
        finally:
            encode_module.CACHE_LIMIT = old_limit
