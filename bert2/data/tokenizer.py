"""WordPiece tokenizers: train one on the corpus with `tokenizers`, or load a directory / hub name.

Why `transformers.BertTokenizerFast(tokenizer_object=...)` around a `tokenizers.Tokenizer`: it keeps
token_type_ids for sentence pairs (the generic `PreTrainedTokenizerFast` drops them), it saves and reloads with
`save_pretrained` / `from_pretrained` like any Hugging Face BERT tokenizer, and checkpoints stay loadable by
`transformers` users. The special tokens sit at fixed ids, [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, so
`ModelConfig.pad_token_id = 0` holds for every tokenizer we train.

Loading by hub name needs the network. Offline, `transformers` 5 retries for minutes and then silently returns a
5-token tokenizer, so we probe the hub first, load with `local_files_only=True` when it is unreachable, and reject
any vocabulary under 100 tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
from tokenizers.models import WordPiece
from transformers import BertTokenizerFast
from transformers.utils import logging as hf_logging

from bert2.data.corpus import corpus_fingerprint, sample_training_documents, stable_hash
from bert2.data.hub import hub_reachable, offline_env
from bert2.errors import TokenizerError

if TYPE_CHECKING:  # pragma: no cover
    from bert2.config import Config

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, in this order
MIN_VOCAB = 100
TOKENIZER_FORMAT = 1  # bump when training settings change, so cached tokenizers are retrained
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' advisory warnings while bert2 builds or loads a tokenizer (they would clutter the
    CLI and the TUI), then restore the caller's log level: a library must not change it for the whole process."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def train_wordpiece(texts: Iterable[str], vocab_size: int, lowercase: bool = True) -> BertTokenizerFast:
    """Train a BERT WordPiece vocabulary of at most `vocab_size` tokens on `texts` (strings of any length).

    The pipeline is BERT's: BertNormalizer (clean control characters, split CJK characters, lowercase and strip
    accents when `lowercase`), BertPreTokenizer (whitespace and punctuation), WordPiece with `##` continuation
    pieces, and a post-processor that writes ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]`` with
    token_type_ids 0 for A and 1 for B. A small corpus may yield fewer than `vocab_size` tokens; that is fine,
    since the model's embedding table only needs to be at least as large.
    """
    if vocab_size < MIN_VOCAB:
        raise TokenizerError(f"vocab_size {vocab_size} is too small for WordPiece; use at least {MIN_VOCAB}")
    tok = Tokenizer(WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), continuing_subword_prefix="##", show_progress=False
    )
    seen = [0]

    def counted(it: Iterable[str]) -> Iterable[str]:
        for text in it:
            if text:
                seen[0] += 1
                yield text

    tok.train_from_iterator(counted(texts), trainer=trainer)
    if seen[0] == 0:
        raise TokenizerError("cannot train a WordPiece tokenizer: the training texts are empty")
    vocab = tok.get_vocab()
    if any(vocab.get(t) != i for i, t in enumerate(SPECIAL_TOKENS)):  # the trainer guarantees it; check anyway
        raise TokenizerError(f"trained vocabulary lost the fixed special-token ids {SPECIAL_TOKENS}")
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return wrap_tokenizer(tok, lowercase)


def wrap_tokenizer(tok: Any, lowercase: bool = True) -> BertTokenizerFast:
    """Wrap a `tokenizers.Tokenizer` as BertTokenizerFast (keeps token_type_ids; has save_pretrained)."""
    with _quiet_transformers():
        return BertTokenizerFast(
            tokenizer_object=tok,
            do_lower_case=lowercase,
            unk_token="[UNK]",
            sep_token="[SEP]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            mask_token="[MASK]",
            strip_accents=None,
            tokenize_chinese_chars=True,
        )


def save_tokenizer(tokenizer: BertTokenizerFast, directory: str | os.PathLike) -> Path:
    """`save_pretrained` plus a classic vocab.txt (id order), which older transformers and the original BERT
    code read; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(directory))
    vocab_file = directory / "vocab.txt"
    if not vocab_file.exists():
        inv = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        vocab_file.write_text("".join(t + "\n" for t, _ in inv), encoding="utf-8")
    return directory


def _ordinary_tokens(tok: Any) -> int:
    """Tokens that are not special: transformers' offline fallback tokenizer (what `from_pretrained` returns in
    transformers 5 when the files cannot be found) has none, a real vocabulary of any size has some."""
    special = set(tok.all_special_tokens)
    return sum(1 for t in tok.get_vocab() if t not in special)


def _check(tok: Any, source: str) -> BertTokenizerFast:
    """Reject what cannot serve BERT: a vocabulary of special tokens only, and missing special tokens."""
    if _ordinary_tokens(tok) == 0:
        raise TokenizerError(
            f"tokenizer {source!r} has only special tokens ({len(tok)}); this is what transformers "
            "returns when the files could not be found or downloaded. Give a directory with "
            "tokenizer.json or vocab.txt, or leave data.tokenizer empty to train one on the corpus"
        )
    missing = [
        name
        for name in ("pad_token", "cls_token", "sep_token", "mask_token", "unk_token")
        if getattr(tok, name, None) is None
    ]
    if missing:
        raise TokenizerError(
            f"tokenizer {source!r} lacks {', '.join(missing)}; BERT needs [PAD], [UNK], [CLS], [SEP] and [MASK]"
        )
    return tok


def load_tokenizer(name_or_path: str | os.PathLike) -> BertTokenizerFast:
    """Load a BERT tokenizer from a directory (tokenizer.json or vocab.txt), a tokenizer.json / vocab.txt file,
    or a hub name such as bert-base-uncased (network needed unless it is in the Hugging Face cache).

    Raises TokenizerError with the reason and the alternatives; never returns a vocabulary of special tokens only
    (transformers' offline fallback), whatever its size.
    """
    with _quiet_transformers():
        return _load_tokenizer(name_or_path)


def _load_tokenizer(name_or_path: str | os.PathLike) -> BertTokenizerFast:
    source = str(name_or_path).strip()
    if not source:
        raise TokenizerError("tokenizer name or path is empty; leave data.tokenizer empty to train one instead")
    path = Path(source).expanduser()
    if path.is_dir():
        present = [f for f in TOKENIZER_FILES if (path / f).is_file()]
        if not present:
            listing = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
            raise TokenizerError(
                f"tokenizer directory {source!r} has neither tokenizer.json nor vocab.txt (it holds: {listing})"
            )
        try:
            tok = BertTokenizerFast.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:
            raise TokenizerError(f"tokenizer in {source!r} cannot be loaded: {type(exc).__name__}: {exc}") from None
        return _check(tok, source)
    if path.is_file():
        try:
            if path.suffix == ".json":
                tok = BertTokenizerFast(tokenizer_file=str(path))
            elif path.suffix == ".txt":
                tok = BertTokenizerFast(vocab=str(path))
            else:
                raise TokenizerError(f"tokenizer file {source!r} must be a tokenizer.json or a vocab.txt")
        except TokenizerError:
            raise
        except Exception as exc:
            raise TokenizerError(f"tokenizer file {source!r} cannot be loaded: {type(exc).__name__}: {exc}") from None
        return _check(tok, source)
    if source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1:  # a path, not owner/name
        raise TokenizerError(
            f"tokenizer path {source!r} not found; give a directory with tokenizer.json or "
            "vocab.txt, a hub name, or leave data.tokenizer empty to train one"
        )

    online = hub_reachable()
    try:
        tok = BertTokenizerFast.from_pretrained(source, local_files_only=not online)
    except Exception as exc:
        if not online:
            why = "HF_HUB_OFFLINE is set" if offline_env() else "no network connection"
            raise TokenizerError(
                f"tokenizer {source!r} is not a local directory, the Hugging Face hub cannot be "
                f"reached ({why}) and it is not in the local cache. Leave data.tokenizer empty to "
                "train a WordPiece vocabulary on the corpus, or give a tokenizer directory"
            ) from None
        raise TokenizerError(
            f"tokenizer {source!r} could not be loaded from the hub: {type(exc).__name__}: {exc}"
        ) from None
    if _ordinary_tokens(tok) == 0 and not online:
        raise TokenizerError(
            f"tokenizer {source!r} is not in the local Hugging Face cache and the hub cannot be "
            "reached (offline). Leave data.tokenizer empty to train a WordPiece vocabulary on the "
            "corpus, or give a tokenizer directory"
        )
    return _check(tok, source)


def vocab_fingerprint(tokenizer: Any) -> str:
    """Hash of what decides the ids (normalizer, pre-tokenizer, model vocabulary, added tokens); part of the
    pretraining-data cache key, so data tokenised with another vocabulary is never reused."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    keep = {k: state.get(k) for k in ("normalizer", "pre_tokenizer", "model", "added_tokens")}
    return stable_hash(keep, length=24)


def tokenizer_cache_dir(cfg: Config) -> Path:
    """Directory where the tokenizer trained for `cfg` is cached: cache_dir/tokenizers/<hash>.

    The hash covers what decides the training texts and settings: corpus identity (path, size, mtime), vocab size,
    lowercase, max_documents, and the document split (seed, validation_fraction), because the tokenizer is
    trained on the training documents only.
    """
    d = cfg.data
    key = stable_hash(
        {
            "format": TOKENIZER_FORMAT,
            "corpus": corpus_fingerprint(d.corpus),
            "vocab_size": cfg.model.vocab_size,
            "lowercase": d.lowercase,
            "max_documents": d.max_documents,
            "seed": d.seed,
            "validation_fraction": d.validation_fraction,
        }
    )
    return Path(d.cache_dir) / "tokenizers" / key


def _atomic_save(tokenizer: Any, target: Path, meta: dict[str, Any]) -> None:
    """Save into a temporary sibling and rename, so a crash never leaves a half-written cached tokenizer."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_tokenizer(tokenizer, tmp)
        (tmp / "bert2_tokenizer.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "tokenizer.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def get_tokenizer(cfg: Config, documents: Sequence[Sequence[str]] | None = None) -> BertTokenizerFast:
    """The tokenizer `cfg` asks for: `cfg.data.tokenizer` loaded when set, else a WordPiece vocabulary of
    `cfg.model.vocab_size` trained on the training `documents` (lists of sentences) and cached on disk, so the
    second run loads it in milliseconds.

    `documents` may be None when the cached tokenizer exists or a tokenizer is named; otherwise a bounded sample
    of the corpus's training documents is read here (sample_training_documents). A loaded tokenizer may differ in
    size from `model.vocab_size`: the caller sizes the embedding table with `len(tokenizer)` (run_pretraining
    does).
    """
    d = cfg.data
    if d.tokenizer.strip():
        tok = load_tokenizer(d.tokenizer)
    else:
        target = tokenizer_cache_dir(cfg)
        if (target / "tokenizer.json").is_file():
            tok = load_tokenizer(target)
        else:
            if documents is None:
                documents = sample_training_documents(
                    d.corpus, d.max_documents, d.validation_fraction, d.seed, d.streaming
                )
            t0 = time.perf_counter()
            tok = train_wordpiece((" ".join(doc) for doc in documents), cfg.model.vocab_size, d.lowercase)
            _atomic_save(
                tok,
                target,
                {
                    "corpus": d.corpus,
                    "vocab_size": cfg.model.vocab_size,
                    "trained_vocab_size": len(tok),
                    "lowercase": d.lowercase,
                    "max_documents": d.max_documents,
                    "documents": len(documents),
                    "train_seconds": round(time.perf_counter() - t0, 3),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
            )
    return tok
