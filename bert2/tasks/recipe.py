"""The fine-tuning recipe, chosen from the data: how long, how fast, how many tokens.

Every decision is made from properties of the data a run is given (how many training examples, how long their
texts are in tokens) and the task's measured learning rate, never from the data's name: a user's CSV of IMDB
reviews gets the recipe the built-in IMDB reviews get. Each setting the user chose in [finetune] is kept as
given; the recipe fills in the ones left at 0.

    length    finetune.max_seq_length = 0: what 90% of the training texts fit in, rounded up to 32 tokens and
              kept within 64-256 (attention costs grow with the square of the length; IMDB reviews, 721 tokens
              at their 90th percentile, get 256, tweets 64)
    epochs    finetune.max_steps = 0 and finetune.epochs = 0: about the task's examples_seen in all
              (27,000 by default: IMDB's 1.1 epochs, the length its trials found best; 10,700 for extractive
              QA, which overfits its spans), at least 1 and at most MAX_EPOCHS passes (a 2,000-sentence NER
              set gets 10)
    steps     epochs x training examples / batch
    warm-up   finetune.warmup_steps = 0: warmup_ratio of the steps
    rate      finetune.learning_rate = 0: the task's measured rate (tasks/<task>.py learning_rate)
    task      the task's own choices from the data (task_choices; NER: the lookup feature, from how often
              entity words recur across training sentences)

The trials behind the constants are in docs/quality.md ("How the recipe was chosen").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..config import Config
from .base import FinetuneTask, TaskData

MAX_EPOCHS = 10.0
MIN_EPOCHS = 1.0
LENGTH_SAMPLE = 2000
"""Training texts tokenised to measure their lengths (enough for a stable 90th percentile, a second at most)."""
LENGTH_QUANTILE = 90
MIN_LENGTH, MAX_LENGTH, LENGTH_STEP = 64, 256, 32


@dataclass
class Recipe:
    """What a fine-tuning run will do, and why (one sentence per decision, for the log and trainer_state.json)."""

    max_steps: int
    epochs: float
    warmup_steps: int
    learning_rate: float
    max_seq_length: int
    train_examples: int
    length_p90: int
    why: list[str] = field(default_factory=list)
    choices: dict[str, Any] = field(default_factory=dict)
    """The task's own decisions (NER: {"lookup_feature": True})."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CHARS_PER_TOKEN = 3.5
"""Characters per token, to guess lengths before a tokenizer exists (bert2 full's time estimate): measured with a
wiki-offline WordPiece vocabulary of 8,192, 4.3 on wiki extracts, 3.6 on IMDB reviews, 2.8 on tweets; the guess
errs on the long side."""


def text_lengths(task_cls: type[FinetuneTask], data: TaskData, tokenizer: Any | None) -> np.ndarray:
    """Tokens ([CLS] and [SEP] included) of an evenly spread sample of the training examples' inputs (guessed from
    their characters when there is no tokenizer yet)."""
    n = len(data.train)
    step = max(1, n // LENGTH_SAMPLE)
    sample = [task_cls.input_text(ex) for ex in data.train[::step][:LENGTH_SAMPLE]]
    if tokenizer is None:
        return np.array([len(t) / CHARS_PER_TOKEN + 2 for t in sample] or [MIN_LENGTH])
    ids = tokenizer(sample, add_special_tokens=True)["input_ids"] if sample else []
    return np.array([len(x) for x in ids] or [MIN_LENGTH])


def choose(
    task_cls: type[FinetuneTask], cfg: Config, data: TaskData, tokenizer: Any | None, position_limit: int
) -> Recipe:
    """The recipe for this run (see the module docstring): the [finetune] settings the user chose, and for each
    one left at 0 the value the data's properties give."""
    f = cfg.finetune
    why: list[str] = []
    n = len(data.train)
    lengths = text_lengths(task_cls, data, tokenizer)
    p90 = int(np.percentile(lengths, LENGTH_QUANTILE))
    if f.max_seq_length > 0:
        length = min(f.max_seq_length, position_limit)
        why.append(f"inputs of at most {length} tokens (finetune.max_seq_length)")
    else:
        fit = LENGTH_STEP * math.ceil(p90 / LENGTH_STEP)
        length = min(max(MIN_LENGTH, fit), MAX_LENGTH, position_limit)
        why.append(
            f"inputs of at most {length} tokens: 90% of the training texts have {p90} or fewer "
            f"(rounded up to {LENGTH_STEP}, within {MIN_LENGTH}-{MAX_LENGTH})"
        )
    batch = f.batch_size * f.grad_accum_steps
    if f.max_steps > 0:
        steps = f.max_steps
        epochs = steps * batch / max(n, 1)
        why.append(f"{steps} steps (finetune.max_steps): {epochs:.2f} epochs of {n:,} training examples")
    else:
        if f.epochs > 0:
            epochs = f.epochs
            said = "finetune.epochs"
        else:
            epochs = min(max(task_cls.examples_seen / max(n, 1), MIN_EPOCHS), MAX_EPOCHS)
            said = (
                f"about {task_cls.examples_seen:,} examples seen, {MIN_EPOCHS:g}-{MAX_EPOCHS:g} passes over "
                f"{n:,} training examples"
            )
        steps = max(1, math.ceil(epochs * n / batch))
        why.append(f"{epochs:.2f} epochs ({said}): {steps} steps of {batch}")
    warmup = f.warmup_steps if f.warmup_steps > 0 else round(f.warmup_ratio * steps)
    why.append(
        f"warm-up {warmup} steps"
        + (" (finetune.warmup_steps)" if f.warmup_steps > 0 else f" ({f.warmup_ratio:g} of the run)")
    )
    rate = task_cls.peak_learning_rate(cfg)
    why.append(
        f"learning rate {rate:g}"
        + (" (finetune.learning_rate)" if f.learning_rate else f": the {task_cls.name} task's measured rate")
    )
    choices, reasons = task_cls.task_choices(cfg, data)
    why += reasons
    return Recipe(steps, round(epochs, 4), warmup, rate, length, n, p90, why, choices)
