# ---- fine-tuning fixtures (finetune helper) ------------------------------------------------------------------
# A tiny *pretraining* checkpoint shared by the fine-tuning, heads and CLI tests: a WordPiece vocabulary trained on
# a slice of the offline wiki summaries plus the test fixtures, and a randomly initialised BertForPreTraining
# (hidden 32) saved exactly as the trainer saves one. Random weights are enough: the tests check plumbing and that
# each head can fit tiny data, not what pretraining taught.
import json as _ft_json
import random as _data_random
import re as _data_re
from pathlib import Path as _FtPath

import pytest as _ft_pytest

FIXTURES = _FtPath(__file__).parent / "fixtures"


# What a config.json needs to describe a model: toy checkpoints write it, as the listing checks it
# (bert2/checkpoint/validate.py config_file_problems).
MODEL_FIELDS = {
    "vocab_size": 100,
    "hidden_size": 8,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 16,
}


def _ft_tokenizer_texts() -> list[str]:
    from bert2.data.corpus import load_wiki_articles

    arts = load_wiki_articles()[::25]  # ~400 articles spread over every topic
    texts = [a["extract"] for a in arts] + [f"What is {a['title']}? {a['description']}" for a in arts]
    squad = _ft_json.loads((FIXTURES / "squad_tiny.json").read_text(encoding="utf-8"))
    for art in squad["data"]:
        for para in art["paragraphs"]:
            texts.append(para["context"])
            texts += [qa["question"] for qa in para["qas"]]
    texts += ["This movie was wonderful, a great film. I loved it!", "A terrible, boring movie; awful acting."]
    return texts


@_ft_pytest.fixture(scope="session")
def tiny_pretrain_root(tmp_path_factory) -> _FtPath:
    """A saved_model root holding one tiny pretraining checkpoint in transformer/pretrain/final/step-00000001."""
    import torch

    from bert2 import checkpoint as ckpt
    from bert2.checkpoint.model_files import write_model
    from bert2.config import Config, ModelConfig, PathsConfig
    from bert2.data.tokenizer import train_wordpiece
    from bert2.model import BertForPreTraining

    tokenizer = train_wordpiece(_ft_tokenizer_texts(), vocab_size=1200)
    cfg = ModelConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = BertForPreTraining(cfg, nsp=True)
    root = tmp_path_factory.mktemp("saved_model")
    stage = Config(paths=PathsConfig(root=str(root))).stage_dir("pretrain", "final")

    def payload(directory: _FtPath) -> None:
        write_model(model, tokenizer, directory, {"task": "mlm+nsp", "nsp": True})

    ckpt.save_checkpoint(stage, 1, payload, {"kind": "pretrain", "task": "mlm+nsp", "metrics": {}})
    return root


def sentiment_rows(n: int = 64) -> list[dict]:
    """Seven-word "reviews", half with two positive words and half with two negative ones: a classifier that can
    learn anything learns these within a few steps."""
    import random

    rng = random.Random(0)
    filler = "the a film story river city music war plant acting scene plot very really".split()
    good, bad = "wonderful great loved beautiful".split(), "terrible boring awful worst".split()
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = rng.sample(filler, 5) + rng.sample(good if label == "pos" else bad, 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


@_ft_pytest.fixture(scope="session")
def sentiment_file(tmp_path_factory) -> _FtPath:
    """`sentiment_rows` as a .jsonl file with columns text,label (the classify tests' data)."""
    path = tmp_path_factory.mktemp("data") / "sentiment.jsonl"
    path.write_text("".join(_ft_json.dumps(r) + "\n" for r in sentiment_rows()), encoding="utf-8")
    return path


@_ft_pytest.fixture(scope="session")
def tiny_pretrain_checkpoint(tiny_pretrain_root) -> _FtPath:
    from bert2 import checkpoint as ckpt

    return ckpt.default_checkpoint(tiny_pretrain_root, "pretrain")


# ---- data fixtures (data helper) -----------------------------------------------------------------------------
# Tiny synthetic corpora written to tmp_path. `word_corpus` uses one vocabulary word per (document, sentence,
# position), e.g. "d3s1w4", with a word-level vocab.txt, so every token id tells which document and sentence it
# came from: the NSP tests use that to prove NotNext partners come from another document and IsNext partners are
# the real continuation. `english_corpus` is plausible English for tokenizer training (vocab 200-500, fast).

_DATA_WORD = _data_re.compile(r"^d(\d+)s(\d+)w(\d+)$")
_DATA_LEXICON = (
    "the a an this that one every some many few cat dog bird horse river mountain city village "
    "king queen scientist painter music song story book war peace island ocean forest garden "
    "red green blue ancient modern small large quiet loud bright dark famous unknown early late "
    "runs sings writes builds paints finds loses keeps opens closes crosses remembers discovers "
    "quickly slowly often never always sometimes together alone near far under over beyond "
    "during after before within without between among across"
).split()


class WordCorpus:
    """Paths and decoding helpers of the word-level test corpus."""

    def __init__(self, path, vocab_path, documents):
        self.path = path
        self.vocab_path = vocab_path
        self.documents = documents  # list of documents, each a list of sentences (lists of words)

    @staticmethod
    def where(token: str):
        """'d3s1w4' -> (3, 1, 4); anything else (specials, '.') -> None."""
        m = _DATA_WORD.match(token)
        return tuple(int(x) for x in m.groups()) if m else None


def _write_word_corpus(directory, n_docs: int = 40, seed: int = 0, long_sentences: bool = True) -> WordCorpus:
    rng = _data_random.Random(seed)
    documents = []
    for d in range(n_docs):
        doc = []
        for s in range(rng.randint(1, 7)):
            n_words = rng.randint(3, 40 if long_sentences and rng.random() < 0.2 else 12)
            doc.append([f"d{d}s{s}w{k}" for k in range(n_words)])
        documents.append(doc)
    path = directory / "words.txt"
    path.write_text(
        "\n\n".join("\n".join(" ".join(sent) + " ." for sent in doc) for doc in documents) + "\n", encoding="utf-8"
    )
    words = [w for doc in documents for sent in doc for w in sent]
    vocab_path = directory / "vocab.txt"
    vocab_path.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + words) + "\n", encoding="utf-8"
    )
    return WordCorpus(path, vocab_path, documents)


@_ft_pytest.fixture
def word_corpus(tmp_path) -> WordCorpus:
    return _write_word_corpus(tmp_path)


@_ft_pytest.fixture
def word_tokenizer(word_corpus):
    from bert2.data.tokenizer import load_tokenizer

    return load_tokenizer(str(word_corpus.vocab_path))


def english_documents(n_docs: int = 60, seed: int = 0) -> list[list[str]]:
    """Random but sentence-shaped English: documents of 1-6 sentences of 4-14 lexicon words."""
    rng = _data_random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sents = []
        for _ in range(rng.randint(1, 6)):
            words = [rng.choice(_DATA_LEXICON) for _ in range(rng.randint(4, 14))]
            sents.append(" ".join(words).capitalize() + rng.choice([".", ".", ".", "!", "?"]))
        docs.append(sents)
    return docs


@_ft_pytest.fixture
def english_corpus(tmp_path):
    """A .txt corpus of 60 English-like documents (blank line between documents, one sentence per line)."""
    path = tmp_path / "english.txt"
    path.write_text("\n\n".join("\n".join(doc) for doc in english_documents()) + "\n", encoding="utf-8")
    return path


@_ft_pytest.fixture
def data_cfg(tmp_path):
    """A Config whose caches live in tmp_path, with a small vocabulary and short sequences (fast tests)."""
    from bert2.config import Config

    def make(corpus, **data):
        cfg = Config()
        cfg.model.vocab_size = data.pop("vocab_size", 300)
        cfg.data.corpus = str(corpus)
        cfg.data.cache_dir = str(tmp_path / "cache")
        cfg.data.max_seq_length = data.pop("max_seq_length", 32)
        for k, v in data.items():
            setattr(cfg.data, k, v)
        return cfg

    return make


# ---- a real tiny pretraining run, shared (safety, explain, the Inside screen) ------------------------------------
def tiny_run_cfg(root, corpus, steps: int = 6):
    """hidden 32, one layer, a 300-token vocabulary, 32-token sequences: a few seconds on a CPU."""
    from bert2.config import Config

    cfg = Config()
    cfg.paths.root = str(root)
    cfg.data.corpus = str(corpus)
    cfg.data.cache_dir = str(_FtPath(root).parent / "cache")
    cfg.data.max_seq_length = 32
    cfg.model.vocab_size = 300
    cfg.model.hidden_size, cfg.model.num_hidden_layers, cfg.model.num_attention_heads = 32, 1, 2
    cfg.model.intermediate_size = 64
    p = cfg.pretrain
    p.batch_size, p.learning_rate, p.warmup_steps, p.max_steps = 8, 3e-3, 1, steps
    p.eval_every, p.save_every, p.log_every, p.keep_last, p.eval_batches = 3, 3, 1, 3, 1
    cfg.runtime.num_threads = 1
    assert cfg.validate() == []
    return cfg


@_ft_pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real tiny pretraining run: (its config, the checkpoint at step 3 of 6)."""
    import torch

    from bert2 import checkpoint as ckpt
    from bert2.tasks.pretraining import run_pretraining

    base = tmp_path_factory.mktemp("tiny_run")
    corpus = base / "english.txt"
    corpus.write_text("\n\n".join("\n".join(doc) for doc in english_documents()) + "\n", encoding="utf-8")
    cfg = tiny_run_cfg(base / "saved_model", corpus)
    threads = torch.get_num_threads()
    try:
        assert run_pretraining(cfg, [], probes=()).reason == "completed"
    finally:
        torch.set_num_threads(threads)
    step3 = ckpt.step_dirs(_FtPath(cfg.paths.root) / "transformer/pretrain/checkpoint")[0]
    assert ckpt.read_state(step3)["step"] == 3
    return cfg, step3
