"""Helpers for driving bert2-tui in tests and demos: a tiny corpus, a tiny config, and an app factory.

A tiny job (hidden 32, one layer, a ~300-token vocabulary, sequences of 32) trains at hundreds of steps a second
on a laptop CPU, so a test can start a real job from the keyboard, watch it report, and stop it.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

from rich.console import Console

from bert2.config import Config

from .app import Bert2App

WORDS = (
    "the cat sat on a mat while dog ran in park city of paris is capital france river flows through town "
    "people live near sea"
).split()


def write_tiny_corpus(path: str | Path, documents: int = 60, sentences: int = 5, seed: int = 0) -> Path:
    """A .txt corpus: one sentence per line, a blank line between documents (bert2's local .txt format)."""
    rng = random.Random(seed)
    lines: list[str] = []
    for _ in range(documents):
        for _ in range(sentences):
            words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
            lines.append(" ".join(words).capitalize() + ".")
        lines.append("")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def tiny_config(
    root: str | Path,
    corpus: str | Path | None = None,
    *,
    max_steps: int = 100_000,
    eval_every: int = 5,
    save_every: int = 5,
    log_every: int = 1,
) -> Config:
    """A config whose pretraining finishes a step in milliseconds; checkpoints under `root`/saved_model."""
    root = Path(root)
    cfg = Config()
    cfg.paths.root = str(root / "saved_model")
    cfg.data.corpus = str(corpus or write_tiny_corpus(root / "corpus.txt"))
    cfg.data.cache_dir = str(root / "cache")
    cfg.data.max_seq_length = 32
    cfg.data.validation_fraction = 0.1
    m = cfg.model
    m.vocab_size, m.hidden_size, m.num_hidden_layers, m.num_attention_heads = 300, 32, 1, 2
    m.intermediate_size, m.max_position_embeddings = 64, 64
    p = cfg.pretrain
    p.batch_size, p.max_steps, p.warmup_steps = 8, max_steps, 2
    p.eval_every, p.save_every, p.log_every, p.eval_batches, p.keep_last = eval_every, save_every, log_every, 1, 2
    cfg.runtime.device = "cpu"
    f = cfg.finetune
    f.max_seq_length, f.doc_stride, f.max_examples = 64, 16, 200
    f.batch_size, f.max_steps, f.warmup_steps = 8, max_steps, 2
    f.eval_every, f.save_every, f.eval_batches, f.keep_last = eval_every, save_every, 1, 2
    f.decoder_layers, f.num_beams, f.max_answer_length = 1, 1, 8
    return cfg


def make_app(cfg: Config | None = None, **kwargs) -> Bert2App:
    """The app with `cfg` (a tmp paths.root in tests)."""
    return Bert2App(cfg or Config(), **kwargs)


def widget_text(widget: Any) -> str:
    """The plain text a Static shows (Text, str or any rich renderable such as a Table)."""
    content = getattr(widget, "content", None)
    if content is None or content == "":
        content = widget.render()
    if isinstance(content, str):
        return content
    if hasattr(content, "plain"):
        return content.plain
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(content)
    return console.export_text()
