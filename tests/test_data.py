"""Data pipeline: corpus loading and its errors, document split, NSP pair building, the cache, the MLM collator."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import WordCorpus

from bert2.data import corpus as corpus_mod
from bert2.data import pairs
from bert2.data import pretraining as pre
from bert2.data.collator import IGNORE_INDEX, MLMCollator
from bert2.data.corpus import load_documents, split_sentences, validation_mask
from bert2.errors import DataError

# ---- sentences -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Arthur C. Clarke wrote it. Then he left.", ["Arthur C. Clarke wrote it.", "Then he left."]),
        ("He served in the U.S. Navy. It was 3.5 km long.", ["He served in the U.S. Navy.", "It was 3.5 km long."]),
        ("Dr. Smith met Mr. Jones. They talked!", ["Dr. Smith met Mr. Jones.", "They talked!"]),
        ("No. 5 was built c. 1500. Was it? Yes.", ["No. 5 was built c. 1500.", "Was it?", "Yes."]),
        ('He said "Go." She went.', ['He said "Go."', "She went."]),
        (
            "J. R. R. Tolkien wrote books, e.g. The Hobbit. Fine.",
            ["J. R. R. Tolkien wrote books, e.g. The Hobbit.", "Fine."],
        ),
        ("line one\nline two. Three", ["line one", "line two.", "Three"]),
        ("pi is 3.14159 and so on. the end", ["pi is 3.14159 and so on. the end"]),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


# ---- local corpora -------------------------------------------------------------------------------------------


def test_txt_documents_and_sentences(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(
        "First doc. Second sentence.\nA new line.\n\n\n  \nSecond doc only.\r\n\r\nThird: one. Two.\n", encoding="utf-8"
    )
    docs = load_documents(str(p))
    assert docs == [["First doc.", "Second sentence.", "A new line."], ["Second doc only."], ["Third: one.", "Two."]]
    assert len(load_documents(str(p), max_documents=2)) == 2


def test_jsonl_and_parquet(tmp_path):
    rows = [{"text": f"Document {i}. It has two sentences.", "id": i} for i in range(5)] + [{"text": None, "id": 9}]
    jl = tmp_path / "c.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    docs = load_documents(str(jl))
    assert len(docs) == 5 and docs[3] == ["Document 3.", "It has two sentences."]

    import pyarrow as pa
    import pyarrow.parquet as pq

    pqf = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": [r["text"] for r in rows[:5]]}), pqf)
    assert load_documents(str(pqf)) == docs


def test_max_documents_spreads_over_the_corpus():
    assert corpus_mod.spread_indices(10, 0) == list(range(10))
    assert corpus_mod.spread_indices(10, 20) == list(range(10))
    assert corpus_mod.spread_indices(100, 4) == [0, 25, 50, 75]


def _error(corpus, **kw) -> str:
    with pytest.raises(DataError) as info:
        load_documents(str(corpus), **kw)
    return str(info.value)


def test_corpus_errors(tmp_path):
    assert "not found" in _error(tmp_path / "missing.txt")
    assert "not found" in _error("./nope/corpus.jsonl")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert "is empty" in _error(empty)
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\n\t\n", encoding="utf-8")
    assert "no text" in _error(blank)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nsecond \xff\xfe line\n")
    msg = _error(bad)
    assert "bad.txt" in msg and "byte offset 17" in msg and "line 2" in msg and "UTF-8" in msg
    (tmp_path / "shards").mkdir()
    assert "directory" in _error(tmp_path / "shards") and "empty" in _error(tmp_path / "shards")
    odd = tmp_path / "corpus.docx"
    odd.write_text("x", encoding="utf-8")
    msg = _error(odd)
    assert "unsupported extension '.docx'" in msg and ".txt" in msg and ".parquet" in msg


def test_jsonl_and_parquet_errors(tmp_path):
    nofield = tmp_path / "n.jsonl"
    nofield.write_text('{"body": "x"}\n{"body": "y"}\n', encoding="utf-8")
    msg = _error(nofield)
    assert "no field 'text'" in msg and "body" in msg
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": oops}\n', encoding="utf-8")
    assert "line 2" in _error(broken)
    fake = tmp_path / "f.parquet"
    fake.write_text("not parquet at all", encoding="utf-8")
    assert "not a Parquet file" in _error(fake)


def _offline_spy(monkeypatch) -> list[bool]:
    """Replace datasets.load_dataset with a spy recording whether the hub's offline flag was set at the call (set:
    the library answers from its cache at once instead of retrying the network for ~23 s)."""
    import datasets

    seen: list[bool] = []

    def spy(*args, **kwargs):
        seen.append(bool(datasets.config.HF_HUB_OFFLINE))
        raise ConnectionError("offline (test spy)")

    monkeypatch.setattr(datasets, "load_dataset", spy)
    return seen


def test_hub_name_offline_fails_fast_with_env(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    seen = _offline_spy(monkeypatch)
    msg = _error("wikitext-103-raw-v1")
    assert "wiki-offline" in msg and "HF_HUB_OFFLINE" in msg
    assert seen and all(seen)  # asked in offline mode only: no network retries


def test_hub_name_fails_fast_without_env(monkeypatch):
    """No HF_HUB_OFFLINE: the connectivity probe decides; when it says offline, datasets runs in offline mode."""
    from bert2.data import corpus

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(corpus, "hub_reachable", lambda *a, **k: False)
    seen = _offline_spy(monkeypatch)
    msg = _error("bert2-tests/no-such-corpus-anywhere")
    assert "wiki-offline" in msg
    assert seen and all(seen)


def test_hub_probe_is_bounded(monkeypatch):
    """A probe whose request never returns (a black-holed network) still answers False after its deadline."""
    import threading
    import urllib.request

    from bert2.data import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    release = threading.Event()
    timeouts: list[float] = []

    def hang(request, timeout=None):
        timeouts.append(timeout)
        release.wait()  # never answers until the test ends
        raise OSError("released")

    monkeypatch.setattr(urllib.request, "urlopen", hang)
    try:
        assert hub.hub_reachable(timeout=0.2) is False
        assert timeouts == [0.2]  # the socket timeout is passed down too
    finally:
        release.set()


def test_wikitext_rows_become_articles():
    lines = [
        "",
        " = Valkyria Chronicles III = \n",
        "",
        " Senjō no Valkyria 3 is a game . It was released in 2011 .\n",
        " = = Gameplay = = \n",
        " The game 's battle system @-@ like its predecessors @-@ is turn @-@ based , "
        "with 1 @,@ 000 units ( roughly ) .\n",
        " = Tower Building = \n",
        " The tower is 3 @.@ 5 m tall .\n",
    ]
    docs = list(corpus_mod._wikitext_documents(lines))
    assert len(docs) == 2
    assert split_sentences(docs[0]) == [
        "Senjō no Valkyria 3 is a game.",
        "It was released in 2011.",
        "The game's battle system-like its predecessors-is turn-based, with 1,000 units (roughly).",
    ]
    assert docs[1] == "The tower is 3.5 m tall."


def test_hub_offline_mode_restores_flags():
    import datasets
    import huggingface_hub.constants as hc

    from bert2.data.hub import hub_offline_mode

    before = (datasets.config.HF_HUB_OFFLINE, hc.HF_HUB_OFFLINE)
    with hub_offline_mode():
        assert datasets.config.HF_HUB_OFFLINE is True and hc.HF_HUB_OFFLINE is True
    assert (datasets.config.HF_HUB_OFFLINE, hc.HF_HUB_OFFLINE) == before


def test_wiki_offline_loads_every_article():
    docs = load_documents("wiki-offline")
    assert len(docs) == 10033
    assert 33_000 < sum(map(len, docs)) < 40_000  # ~3.6 sentences per article
    assert len(load_documents("wiki-offline", max_documents=50)) == 50


# ---- split -------------------------------------------------------------------------------------------------------


def test_validation_mask_is_a_stable_per_document_draw():
    """Held-out documents are decided by document number alone: any range gives the same answers as the whole,
    so a stream can decide as documents arrive and two passes agree."""
    whole = validation_mask(0, 10_000, 0.1, seed=3)
    assert whole.sum() == 1000  # exactly one in every window of 10
    assert (validation_mask(0, 10_000, 0.1, seed=3) == whole).all()
    assert (validation_mask(1234, 100, 0.1, seed=3) == whole[1234:1334]).all()
    assert (validation_mask(0, 10_000, 0.1, seed=4) != whole).any()
    assert not validation_mask(0, 100, 0.0, seed=3).any()


# ---- pair building on synthetic spans ----------------------------------------------------------------------------


def _synthetic_spans(n_docs=300, seed=0):
    """Documents of 1-8 sentences of 1-60 tokens, laid out contiguously; token t belongs to doc owner[t]."""
    rng = random.Random(seed)
    docs, owner, pos = [], [], 0
    for d in range(n_docs):
        spans = []
        for _ in range(rng.randint(1, 8)):
            n = rng.randint(1, 60)
            spans.append((pos, pos + n))
            owner += [d] * n
            pos += n
        docs.append(spans)
    return docs, np.asarray(owner)


def test_nsp_pairs_follow_the_reference_rules():
    docs, owner = _synthetic_spans()
    max_len = 64
    examples, skipped = pairs.build_nsp_examples(docs, max_len, 0.1, random.Random(1))
    assert skipped == 0 and len(examples) > 300
    starts = {s for doc in docs for s, _ in doc}
    labels = Counter()
    for a_s, a_e, b_s, b_e, label in examples:
        labels[label] += 1
        assert 1 <= a_e - a_s and 1 <= b_e - b_s and (a_e - a_s) + (b_e - b_s) <= max_len - 3
        assert owner[a_s] == owner[a_e - 1] and owner[b_s] == owner[b_e - 1]  # each segment inside one document
        if label == 1:
            assert owner[a_s] != owner[b_s], "NotNext partner must come from another document"
        else:
            assert owner[a_s] == owner[b_s] and a_e <= b_s, "IsNext partner must be the continuation"
            if (a_e - a_s) + (b_e - b_s) < max_len - 3:  # not truncated: B starts right where A ends, on a boundary
                assert a_e == b_s and b_s in starts
    share = labels[1] / sum(labels.values())
    assert 0.45 < share < 0.55, labels
    again, _ = pairs.build_nsp_examples(docs, max_len, 0.1, random.Random(1))
    assert again == examples


def test_truncate_seq_pair_trims_the_longer_side():
    rng = random.Random(0)
    a_s, a_e, b_s, b_e = pairs.truncate_seq_pair(0, 100, 100, 110, 50, rng)
    assert (a_e - a_s) + (b_e - b_s) == 50 and b_e - b_s == 10 and 0 < a_s and a_e < 100  # both ends trimmed
    assert pairs.truncate_seq_pair(0, 5, 5, 9, 50, rng) == (0, 5, 5, 9)


def test_single_segments_cover_every_token_once():
    docs, owner = _synthetic_spans(100)
    examples = pairs.build_single_examples(docs, 32, 0.0, random.Random(0))
    covered = np.zeros(len(owner), dtype=int)
    for a_s, a_e, b_s, b_e, label in examples:
        assert 1 <= a_e - a_s <= 30 and (b_s, b_e, label) == (0, 0, -1)
        assert owner[a_s] == owner[a_e - 1]
        covered[a_s:a_e] += 1
    assert (covered == 1).all()


def test_single_document_never_pairs_with_itself():
    docs = [[(0, 5), (5, 9), (9, 20)]]
    examples, _ = pairs.build_nsp_examples(docs, 16, 0.0, random.Random(0))
    assert examples and all(label == 0 for *_, label in examples)


# ---- prepare_pretraining_data end to end -------------------------------------------------------------------------


def _decode(tokenizer, ids):
    return [WordCorpus.where(t) for t in tokenizer.convert_ids_to_tokens(ids)]


def test_prepare_pairs_end_to_end(word_corpus, word_tokenizer, data_cfg):
    cfg = data_cfg(word_corpus.path, max_seq_length=48, validation_fraction=0.1)
    data = pre.prepare_pretraining_data(cfg, word_tokenizer)
    tok = word_tokenizer
    assert not data.info["cache_hit"] and len(data.validation) > 0
    assert data.info["train_examples"] == len(data.train)
    train_docs = {w[0] for i in range(len(data.train)) for w in _decode(tok, data.train[i]["input_ids"]) if w}
    val_docs = {w[0] for i in range(len(data.validation)) for w in _decode(tok, data.validation[i]["input_ids"]) if w}
    assert train_docs.isdisjoint(val_docs), "a document must not leak across the split"
    labels = Counter()
    for ex in [*data.train, *data.validation]:
        ids, types, label = ex["input_ids"], ex["token_type_ids"], ex["next_sentence_label"]
        labels[label] += 1
        assert len(ids) == len(types) <= 48
        seps = [i for i, t in enumerate(ids) if t == tok.sep_token_id]
        assert ids[0] == tok.cls_token_id and len(seps) == 2 and seps[1] == len(ids) - 1
        assert types == [0] * (seps[0] + 1) + [1] * (len(ids) - seps[0] - 1)
        a = [w for w in _decode(tok, ids[1 : seps[0]]) if w]
        b = [w for w in _decode(tok, ids[seps[0] + 1 : -1]) if w]
        if label == 1:
            assert a[0][0] != b[0][0]
        else:
            assert a[0][0] == b[0][0] and (a[-1][1], a[-1][2]) < (b[0][1], b[0][2])
    assert 0.3 < labels[1] / sum(labels.values()) < 0.7


def test_dupe_factor_adds_differently_cut_training_pairs_and_keeps_validation(word_corpus, word_tokenizer, data_cfg):
    """data.dupe_factor = 3: about three times the training pairs, its first copy exactly dupe_factor 1's pairs,
    the other copies cut and partnered differently (not the same rows again); the held-out pairs are unchanged,
    and the two are different cache entries."""
    one_cfg = data_cfg(word_corpus.path, max_seq_length=48, validation_fraction=0.1, dupe_factor=1)
    one = pre.prepare_pretraining_data(one_cfg, word_tokenizer, use_cache=False)
    three_cfg = data_cfg(word_corpus.path, max_seq_length=48, validation_fraction=0.1, dupe_factor=3)
    three = pre.prepare_pretraining_data(three_cfg, word_tokenizer, use_cache=False)

    def rows(examples) -> Counter:
        return Counter(tuple(examples[i]["input_ids"]) for i in range(len(examples)))

    assert 2.5 * len(one.train) < len(three.train) < 3.5 * len(one.train)
    assert rows(one.validation) == rows(three.validation)
    assert rows(one.train) <= rows(three.train)  # copy 0 is dupe_factor 1's set
    assert len(rows(three.train)) > 1.5 * len(rows(one.train))  # the other copies are new pairs, not repeats
    assert pre.data_cache_key(one_cfg, word_tokenizer) != pre.data_cache_key(three_cfg, word_tokenizer)
    assert three.info["train_copies"] == 3
    auto_cfg = data_cfg(word_corpus.path, max_seq_length=48, validation_fraction=0.1)  # dupe_factor 0: auto
    auto = pre.prepare_pretraining_data(auto_cfg, word_tokenizer, use_cache=False)
    # a few hundred pairs: copies up to the cap of 10, never more, to approach 75,000 distinct pairs
    assert len(one.train) * 10 < pre.AUTO_DISTINCT_PAIRS and auto.info["train_copies"] == pre.AUTO_MAX_COPIES == 10
    assert len(auto.train) == pytest.approx(10 * len(one.train), rel=0.15)


def test_prepare_without_nsp(word_corpus, word_tokenizer, data_cfg):
    cfg = data_cfg(word_corpus.path, max_seq_length=24, nsp=False)
    data = pre.prepare_pretraining_data(cfg, word_tokenizer)
    for ex in data.train:
        assert "next_sentence_label" not in ex
        assert len(ex["input_ids"]) <= 24 and set(ex["token_type_ids"]) == {0}
        assert ex["input_ids"][0] == word_tokenizer.cls_token_id and ex["input_ids"][-1] == word_tokenizer.sep_token_id
        docs = {w[0] for w in _decode(word_tokenizer, ex["input_ids"]) if w}
        assert len(docs) <= 1  # never two documents in one segment (a very short one may hold only ".")
    assert (data.train.labels == -1).all()


def test_cache_hit_skips_loading_and_tokenising(word_corpus, word_tokenizer, data_cfg, monkeypatch):
    cfg = data_cfg(word_corpus.path)
    first = pre.prepare_pretraining_data(cfg, word_tokenizer)

    def boom(*a, **k):
        raise AssertionError("a cache hit must not load or tokenise the corpus")

    monkeypatch.setattr(pre, "_encode_corpus", boom)
    monkeypatch.setattr(pre, "select_texts", boom)
    monkeypatch.setattr(pre, "sample_training_documents", boom)
    second = pre.prepare_pretraining_data(cfg, word_tokenizer)  # fast because it does no work (boom above)
    assert second.info["cache_hit"] and second.info["cache_path"] == first.info["cache_path"]
    assert len(second.train) == len(first.train)
    assert [second.train[i] for i in range(len(second.train))] == [first.train[i] for i in range(len(first.train))]
    cfg.data.max_seq_length = 40  # anything that matters changes the key: rebuild
    with pytest.raises(AssertionError, match="cache hit"):
        pre.prepare_pretraining_data(cfg, word_tokenizer)


def test_builds_are_deterministic_and_seeded(tmp_path, word_tokenizer, word_corpus, data_cfg):
    cfg = data_cfg(word_corpus.path)
    a = pre.prepare_pretraining_data(cfg, word_tokenizer, use_cache=False)
    b = pre.prepare_pretraining_data(cfg, word_tokenizer, use_cache=False)
    assert list(a.train) == list(b.train)
    cfg.data.seed = 7
    c = pre.prepare_pretraining_data(cfg, word_tokenizer, use_cache=False)
    assert list(c.train) != list(a.train)


def test_prepare_trains_and_caches_the_tokenizer(english_corpus, data_cfg, monkeypatch):
    import bert2.data.tokenizer as tkn

    cfg = data_cfg(english_corpus, vocab_size=250)
    data = pre.prepare_pretraining_data(cfg)
    assert 100 <= len(data.tokenizer) <= 250 and data.info["vocab_size"] == len(data.tokenizer)
    assert (tkn.tokenizer_cache_dir(cfg) / "tokenizer.json").is_file()
    ex = data.train[0]
    assert ex["input_ids"][0] == data.tokenizer.cls_token_id and len(ex["input_ids"]) <= 32

    def no_training(*a, **k):
        raise AssertionError("the cached tokenizer must be reused")

    monkeypatch.setattr(tkn, "train_wordpiece", no_training)
    again = pre.prepare_pretraining_data(cfg)
    assert again.info["cache_hit"] and len(again.train) == len(data.train)


def test_examples_are_list_like(word_corpus, word_tokenizer, data_cfg):
    data = pre.prepare_pretraining_data(data_cfg(word_corpus.path), word_tokenizer)
    n = len(data.train)
    assert data.train[-1] == data.train[n - 1]
    with pytest.raises(IndexError):
        data.train[n]
    assert data.train.lengths.shape == (n,) and int(data.train.lengths.max()) <= 32
    assert data.train.num_tokens == sum(len(ex["input_ids"]) for ex in data.train)


# ---- collator ----------------------------------------------------------------------------------------------------


@pytest.fixture
def mlm_batch(word_tokenizer):
    """32 variable-length pair examples over the word vocabulary."""
    rng = random.Random(0)
    tok = word_tokenizer
    ordinary = list(range(6, len(tok)))
    examples = []
    for _ in range(32):
        la, lb = rng.randint(1, 60), rng.randint(1, 60)
        ids = [
            tok.cls_token_id,
            *rng.sample(ordinary, la),
            tok.sep_token_id,
            *rng.sample(ordinary, lb),
            tok.sep_token_id,
        ]
        examples.append(
            {
                "input_ids": ids,
                "token_type_ids": [0] * (la + 2) + [1] * (lb + 1),
                "next_sentence_label": rng.randint(0, 1),
            }
        )
    return examples


def test_collator_pads_and_shapes(word_tokenizer, mlm_batch):
    c = MLMCollator(word_tokenizer, seed=0)
    batch = c(mlm_batch)
    B, T = len(mlm_batch), max(len(e["input_ids"]) for e in mlm_batch)
    for key in ("input_ids", "token_type_ids", "attention_mask", "labels"):
        assert batch[key].shape == (B, T) and batch[key].dtype == torch.long
    assert batch["next_sentence_label"].tolist() == [e["next_sentence_label"] for e in mlm_batch]
    lengths = torch.tensor([len(e["input_ids"]) for e in mlm_batch])
    assert batch["attention_mask"].sum(1).tolist() == lengths.tolist()
    pad = batch["attention_mask"] == 0
    assert (batch["input_ids"][pad] == word_tokenizer.pad_token_id).all()
    assert (batch["labels"][pad] == IGNORE_INDEX).all() and (batch["token_type_ids"][pad] == 0).all()
    for i, e in enumerate(mlm_batch):  # labels hold the original ids where selected
        n = len(e["input_ids"])
        sel = batch["labels"][i, :n] != IGNORE_INDEX
        assert (batch["labels"][i, :n][sel] == torch.tensor(e["input_ids"])[sel]).all()
        assert batch["token_type_ids"][i, :n].tolist() == e["token_type_ids"]
    no_nsp = c([{"input_ids": e["input_ids"]} for e in mlm_batch[:3]])
    assert "next_sentence_label" not in no_nsp and (no_nsp["token_type_ids"] == 0).all()
    as_numpy = c([{k: np.asarray(v) if k != "next_sentence_label" else v for k, v in e.items()} for e in mlm_batch])
    assert as_numpy["input_ids"].shape == (B, T)


@pytest.mark.parametrize("probs", [(0.15, 0.8, 0.1), (0.3, 0.5, 0.5)])
def test_masking_statistics(word_tokenizer, mlm_batch, probs):
    p, p_mask, p_random = probs
    tok = word_tokenizer
    c = MLMCollator(tok, p, p_mask, p_random, seed=123)
    special = torch.tensor(sorted(tok.all_special_ids))
    selected = eligible = masked = randomised = kept = 0
    for _ in range(80):
        batch = c(mlm_batch)
        original = c.pad(mlm_batch)["input_ids"]  # (B, T) before corruption
        sel = batch["labels"] != IGNORE_INDEX
        is_special = torch.isin(original, special)
        assert not (sel & is_special).any(), "specials and padding are never selected"
        assert (batch["input_ids"][~sel] == original[~sel]).all(), "unselected tokens are untouched"
        assert (batch["labels"][sel] == original[sel]).all()
        eligible += int((~is_special).sum())
        selected += int(sel.sum())
        new = batch["input_ids"][sel]
        masked += int((new == tok.mask_token_id).sum())
        kept += int((new == original[sel]).sum())
        changed = (new != tok.mask_token_id) & (new != original[sel])
        randomised += int(changed.sum())
        assert not torch.isin(new[changed], special).any(), "random replacements are ordinary tokens"
    assert abs(selected / eligible - p) < 0.01
    assert abs(masked / selected - p_mask) < 0.02
    assert abs(randomised / selected - p_random) < 0.02  # a random pick may equal the original: ~1/V, negligible
    assert abs(kept / selected - (1 - p_mask - p_random)) < 0.02


def test_at_least_one_token_is_selected(word_tokenizer):
    c = MLMCollator(word_tokenizer, mlm_probability=1e-9, seed=0)
    tok = word_tokenizer
    batch = c(
        [{"input_ids": [tok.cls_token_id, 10, tok.sep_token_id]}, {"input_ids": [tok.cls_token_id, tok.sep_token_id]}]
    )
    assert int((batch["labels"] != IGNORE_INDEX).sum()) == 1
    assert batch["labels"][0, 1] == 10


def test_collator_state_resumes_exactly(word_tokenizer, mlm_batch):
    a = MLMCollator(word_tokenizer, seed=5)
    a(mlm_batch)
    state = a.get_state()
    assert isinstance(state, torch.Tensor) and state.dtype == torch.uint8
    expected = [a(mlm_batch) for _ in range(3)]
    b = MLMCollator(word_tokenizer, seed=999)
    b.set_state(state)
    for want in expected:
        got = b(mlm_batch)
        assert all(torch.equal(got[k], want[k]) for k in want)
    other = MLMCollator(word_tokenizer, seed=6)(mlm_batch)
    first = MLMCollator(word_tokenizer, seed=5)(mlm_batch)
    assert not torch.equal(other["labels"], first["labels"])
    assert MLMCollator.from_config(
        word_tokenizer,
        type("D", (), dict(mlm_probability=0.15, mask_replace_prob=0.8, random_replace_prob=0.1, seed=5))(),
    )(mlm_batch)["labels"].equal(first["labels"])


def test_truncate_seq_pair_closed_form_matches_the_token_by_token_rule():
    """The closed form trims exactly the tokens the reference's loop would (longer side first, B on a tie), and
    each trimmed token comes off the front or the back with even odds."""

    def loop(la, lb, m):
        while la + lb > m:
            if la > lb:
                la -= 1
            else:
                lb -= 1
        return la, lb

    rng = random.Random(0)
    fronts = backs = 0
    for _ in range(5000):
        la, lb, m = rng.randint(1, 300), rng.randint(1, 300), rng.randint(2, 300)
        a_s, a_e, b_s, b_e = pairs.truncate_seq_pair(0, la, 1000, 1000 + lb, m, random.Random(rng.random()))
        assert (a_e - a_s, b_e - b_s) == loop(la, lb, m)
        assert 0 <= a_s <= a_e <= la and 1000 <= b_s <= b_e <= 1000 + lb
        fronts += a_s + (b_s - 1000)
        backs += (la - a_e) + (1000 + lb - b_e)
    assert 0.48 < fronts / (fronts + backs) < 0.52
