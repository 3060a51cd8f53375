"""`bert2 full`: pretraining, then fine-tuning from the checkpoint it wrote (the seed's `main.py full`), and its
two helpers: the task's own text as pretraining text, and an estimate of how long it will take.

Task-adaptive pretraining (Gururangan et al. 2020): continuing to pretrain on a task's unlabelled text helps most
when the task's domain differs from the corpus (movie reviews, tweets against Wikipedia summaries). Whatever
`--data` names (a built-in, a user's CSV, a hub set), the *training* examples' text (never a held-out one) is
written once to the data cache as a .jsonl corpus file and joined to `data.corpus`; every source gets the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from ..data.corpus import corpus_parts, imdb_reviews, load_wiki_articles, resolve_corpus, stable_hash
from ..model import BertForPreTraining, BertModel
from ..training.precision import resolve as resolve_precision
from .base import FinetuneTask, TaskData

TASK_TEXT_DIR = "task-text"
CALIBRATION_STEPS = 3


def task_text_corpus(cfg: Config, task_cls: type[FinetuneTask], data: TaskData) -> tuple[str, str]:
    """(the pretraining corpus with the fine-tuning task's training text joined, a sentence saying what was
    added). The text goes to `<data.cache_dir>/task-text/<task>-<hash of the text>.jsonl`: written once, read by
    the pretraining data build like any corpus file (so its cache is reused while the text is the same)."""
    name = task_cls.resolve_data_name(cfg.finetune.data)
    texts = [t for t in task_cls.texts(data.train) if t.strip()]
    digest = stable_hash(texts)
    path = Path(cfg.data.cache_dir) / TASK_TEXT_DIR / f"{task_cls.name}-{digest}.jsonl"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            for text in texts:
                out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    corpus = cfg.data.corpus
    if str(path) not in corpus_parts(corpus):
        corpus = f"{corpus}+{path}"
    chars = sum(len(t) for t in texts)
    note = (
        f"pretraining corpus: {cfg.data.corpus} + the {task_cls.name} training text of {name} ({len(texts):,} "
        f"documents, {chars / 1e6:.1f} M characters; held-out examples left out; --no-task-text: without)"
    )
    return corpus, note


def corpus_chars(corpus: str) -> int:
    """Characters of a corpus, for the time estimate (a hub dataset counts 0: its size is not known before it is
    read)."""
    total = 0
    for part in corpus_parts(corpus):
        kind, ident = resolve_corpus(part)
        if kind == "wiki":
            total += sum(len(a["extract"]) for a in load_wiki_articles())
        elif kind == "imdb":
            total += sum(len(r["text"]) for r in imdb_reviews())
        elif kind == "file":
            total += Path(ident).stat().st_size
    return total


@dataclass
class Estimate:
    pretrain_s: float
    finetune_s: float
    step_s: float
    """One pretraining step of this configuration, measured on this machine (median of a few)."""
    finetune_step_s: float = 0.0
    """One fine-tuning step at the recipe's batch and length, measured the same way."""

    @property
    def total_s(self) -> float:
        return self.pretrain_s + self.finetune_s

    def describe(self) -> str:
        return (
            f"estimated time: ~{self.total_s / 60:.0f} min (pretraining ~{self.pretrain_s / 60:.1f} min, "
            f"fine-tuning ~{self.finetune_s / 60:.1f} min; steps timed on this machine: pretraining "
            f"{self.step_s * 1000:.0f} ms, fine-tuning {self.finetune_step_s * 1000:.0f} ms)"
        )


def _median_step(step, cfg: Config, rounds: int = CALIBRATION_STEPS) -> float:
    """Median seconds of `step()` over `rounds` calls after one to warm up (allocation, kernel choice), in the
    precision the run will use (`auto`: decided as the run decides it)."""
    chosen = resolve_precision(cfg.runtime.precision, torch.device("cpu"), cfg.model.hidden_size).name
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16) if chosen == "bf16" else contextlib.nullcontext()
    times = []
    for _ in range(rounds + 1):
        t0 = time.perf_counter()
        with bf16:
            step()
        times.append(time.perf_counter() - t0)
    timed = sorted(times[1:])
    return timed[len(timed) // 2]


def time_pretraining_step(cfg: Config) -> tuple[float, int]:
    """(seconds, tokens) of one real pretraining step of this model on random tokens of ~3/4 of the length cap
    (what grouping by length makes a typical batch): the median of a few after one to warm up."""
    m, p = cfg.model, cfg.pretrain
    torch.manual_seed(0)
    model = BertForPreTraining(m).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    B, T = p.batch_size, max(16, int(cfg.data.max_seq_length * 0.75))
    ids = torch.randint(5, m.vocab_size, (B, T))  # (B, T)
    labels = torch.full_like(ids, -100)
    every = max(1, round(1 / cfg.data.mlm_probability))  # the run's masking rate, as the collator draws it
    labels[:, ::every] = ids[:, ::every]
    nsp = torch.zeros(B, dtype=torch.long)

    def step() -> None:
        model.loss(ids, torch.zeros_like(ids), torch.ones_like(ids), labels, nsp).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return _median_step(step, cfg), B * T


def time_finetune_step(cfg: Config, batch: int, length: int) -> float:
    """Seconds of one fine-tuning step at (batch, length): the encoder forward and backward with a small head.

    Timed rather than scaled from the pretraining step by tokens: a fine-tuning step has no vocabulary
    projection, which is a large part of a small model's pretraining step (tiny preset: 37 against 55 us per
    token, measured on a user CSV's run), and its attention grows with the square of its longer inputs. Generative
    QA's decoder (short answers) is left out."""
    torch.manual_seed(0)
    encoder = BertModel(cfg.model).train()
    head = torch.nn.Linear(cfg.model.hidden_size, 2)
    opt = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-4)
    ids = torch.randint(5, cfg.model.vocab_size, (batch, max(16, length)))  # (B, T)

    def step() -> None:
        hidden = encoder(ids, torch.zeros_like(ids), torch.ones_like(ids)).last_hidden_state  # (B, T, H)
        head(hidden[:, 0]).logsumexp(-1).mean().backward()  # a classifier's shape of loss on [CLS]
        opt.step()
        opt.zero_grad(set_to_none=True)

    return _median_step(step, cfg)


def estimate(
    cfg: Config, corpus_chars: int, finetune_steps: int, finetune_batch: int, finetune_length: int
) -> Estimate:
    """How long `bert2 full` will take on this machine: pretraining steps x a timed step, plus the corpus's
    preparation (~7 MB/s, docs/corpora.md) and the tokenizer's training; fine-tuning steps x a timed step of the
    fine-tuning shape; a tenth more for evaluations."""
    step_s, _ = time_pretraining_step(cfg)
    prep_s = corpus_chars / 7e6 + 10.0
    pretrain_s = cfg.pretrain.max_steps * step_s * 1.1 + prep_s
    finetune_step_s = time_finetune_step(cfg, finetune_batch, finetune_length)
    finetune_s = finetune_steps * finetune_step_s * 1.1
    return Estimate(pretrain_s, finetune_s, step_s, finetune_step_s)
