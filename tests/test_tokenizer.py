"""WordPiece training, save/load round trip, load errors (tiny vocabularies, offline hub), the tokenizer cache."""

from __future__ import annotations

import pytest
from conftest import english_documents

import bert2.data.tokenizer as tkn
from bert2.data.tokenizer import SPECIAL_TOKENS, get_tokenizer, load_tokenizer, train_wordpiece, vocab_fingerprint
from bert2.errors import TokenizerError


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [" ".join(doc) for doc in english_documents(80)]


@pytest.fixture(scope="module")
def trained(texts):
    return train_wordpiece(texts, vocab_size=300)


def test_train_wordpiece_layout(trained):
    from transformers import BertTokenizerFast

    assert isinstance(trained, BertTokenizerFast)
    assert 100 <= len(trained) <= 300
    assert [trained.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (
        trained.pad_token_id,
        trained.unk_token_id,
        trained.cls_token_id,
        trained.sep_token_id,
        trained.mask_token_id,
    ) == (0, 1, 2, 3, 4)
    enc = trained("The ancient City sings.", "A dog runs!")
    sep = enc["input_ids"].index(3)
    assert enc["input_ids"][0] == 2 and enc["input_ids"][-1] == 3
    assert enc["token_type_ids"] == [0] * (sep + 1) + [1] * (len(enc["input_ids"]) - sep - 1)
    assert trained.decode(enc["input_ids"], skip_special_tokens=True) == "the ancient city sings. a dog runs!"
    assert trained.tokenize("Écrit") == trained.tokenize("ecrit")  # lowercase strips accents, as bert-base-uncased


def test_cased_training_keeps_case(texts):
    cased = train_wordpiece(texts, vocab_size=300, lowercase=False)
    assert cased.tokenize("The river") != cased.tokenize("the river")
    assert cased.decode(cased("The River")["input_ids"], skip_special_tokens=True) == "The River"


def test_save_and_reload_round_trip(trained, tmp_path):
    from transformers import BertTokenizerFast

    tkn.save_tokenizer(trained, tmp_path)
    assert (tmp_path / "tokenizer.json").is_file() and (tmp_path / "vocab.txt").is_file()
    reloaded = BertTokenizerFast.from_pretrained(str(tmp_path))
    ours = load_tokenizer(tmp_path)
    pair = ("Many famous painters paint quietly.", "Some islands never sleep?")
    for tok in (reloaded, ours):
        assert len(tok) == len(trained)
        assert tok(*pair) == trained(*pair)  # input_ids, token_type_ids and attention_mask
    assert vocab_fingerprint(ours) == vocab_fingerprint(trained)
    from_vocab_txt = load_tokenizer(tmp_path / "vocab.txt")
    assert from_vocab_txt(*pair)["input_ids"] == trained(*pair)["input_ids"]


def test_fingerprint_differs_between_vocabularies(trained, texts):
    other = train_wordpiece(texts[:40], vocab_size=200)
    assert vocab_fingerprint(other) != vocab_fingerprint(trained)


def test_any_real_vocabulary_loads_but_special_tokens_only_is_refused(tmp_path):
    tiny = train_wordpiece(["a b c ab"], vocab_size=120)  # the corpus only supports a handful of tokens
    assert len(tiny) < 100
    tkn.save_tokenizer(tiny, tmp_path / "tiny")
    assert len(load_tokenizer(tmp_path / "tiny")) == len(tiny)  # small, but a real vocabulary
    (tmp_path / "fallback").mkdir()  # what transformers 5 hands back offline: the five special tokens, nothing else
    (tmp_path / "fallback" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(TokenizerError, match="only special tokens"):
        load_tokenizer(tmp_path / "fallback")
    with pytest.raises(TokenizerError, match="at least 100"):
        train_wordpiece(["x y z"], vocab_size=50)
    with pytest.raises(TokenizerError, match="empty"):
        train_wordpiece(["", ""], vocab_size=200)


def test_load_errors(tmp_path):
    with pytest.raises(TokenizerError, match="neither tokenizer.json nor vocab.txt"):
        load_tokenizer(tmp_path)
    with pytest.raises(TokenizerError, match="not found"):
        load_tokenizer(tmp_path / "missing" / "dir")
    with pytest.raises(TokenizerError, match="not found"):
        load_tokenizer("./no/such/tokenizer")
    (tmp_path / "weird.bin").write_bytes(b"\0")
    with pytest.raises(TokenizerError, match="tokenizer.json or a vocab.txt"):
        load_tokenizer(tmp_path / "weird.bin")


def _local_only_spy(monkeypatch) -> list[bool]:
    """Record whether the tokenizer was asked for local files only (offline: no network retries)."""
    seen: list[bool] = []

    def spy(source, *args, local_files_only=False, **kwargs):
        seen.append(local_files_only)
        raise OSError("not in the cache (test spy)")

    monkeypatch.setattr(tkn.BertTokenizerFast, "from_pretrained", spy)
    return seen


def test_hub_name_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    seen = _local_only_spy(monkeypatch)
    with pytest.raises(TokenizerError) as info:
        load_tokenizer("bert-base-uncased")  # transformers 5 would hand back a 5-token tokenizer here
    assert "train" in str(info.value) and "bert-base-uncased" in str(info.value)
    assert seen == [True]


def test_unknown_hub_name_fails_fast_without_env(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(tkn, "hub_reachable", lambda *a, **k: False)
    seen = _local_only_spy(monkeypatch)
    with pytest.raises(TokenizerError, match="cannot be reached"):
        load_tokenizer("bert2-tests/no-such-tokenizer")
    assert seen == [True]


def test_get_tokenizer_trains_once_then_loads(english_corpus, data_cfg, monkeypatch):
    cfg = data_cfg(english_corpus, vocab_size=250)
    first = get_tokenizer(cfg)  # documents=None: loads and splits the corpus itself
    target = tkn.tokenizer_cache_dir(cfg)
    assert (target / "tokenizer.json").is_file() and (target / "vocab.txt").is_file()
    assert target.parent.name == "tokenizers" and target.parent.parent == tkn.Path(cfg.data.cache_dir)

    def no_training(*a, **k):
        raise AssertionError("must load the cached tokenizer")

    monkeypatch.setattr(tkn, "train_wordpiece", no_training)
    second = get_tokenizer(cfg)
    assert vocab_fingerprint(second) == vocab_fingerprint(first)
    for change in (dict(vocab_size=260), dict(lowercase=False), dict(max_documents=10)):
        other = data_cfg(english_corpus, **change)
        assert tkn.tokenizer_cache_dir(other) != target


def test_get_tokenizer_loads_a_named_tokenizer(trained, tmp_path, english_corpus, data_cfg):
    tkn.save_tokenizer(trained, tmp_path / "tok")
    cfg = data_cfg(english_corpus, tokenizer=str(tmp_path / "tok"))
    assert vocab_fingerprint(get_tokenizer(cfg)) == vocab_fingerprint(trained)
    assert not (tmp_path / "cache" / "tokenizers").exists()
