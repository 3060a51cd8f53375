"""Every task bert2 trains, in one registry: task name -> the class in bert2/tasks/ that is that task.

A task is one class in one module: what its data looks like and where it comes from, how an example becomes
tensors, which model head reads them, how its loss is normalised, how it is evaluated (and which number picks the
best checkpoint), its measured learning-rate rule, its probes, and how it exports to transformers. Everything
else (the config's choices, the CLI, the TUI, checkpoint loading, export-hf, the model card, distillation,
pruning) asks this registry instead of naming tasks itself.

    pretraining.py   mlm+nsp, mlm    masked-language model (+ next-sentence prediction) on a corpus
    classify.py      classify        one label per text (IMDB sentiment, wiki topics, your CSV)
    ner.py           ner             one BIO tag per word (named entities)
    qa.py            qa              generative QA: an encoder reads, a decoder writes the answer
    qa_span.py       qa-span         extractive QA: the answer is a span of the context

    base.py          what the fine-tuning tasks share (collation, evaluation batches, checkpoint files)
    finetuning.py    `run_finetuning`: any fine-tuning task, start to end
    run.py           the one run harness (device, resume, reporters, stop, lock) every training run uses

(those are modules of bert2/tasks/). Adding a task: write one module there with a class like those above, and add
one line to TASKS below.

The registry names modules instead of importing them, so the layers below the tasks can ask it (config.py for its
choices, checkpoint/ for the class a checkpoint needs) without importing them, and `import bert2.config` and the
TUI's first frame stay free of torch; `get(name)` imports the module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

TASKS: dict[str, str] = {
    "mlm+nsp": "bert2.tasks.pretraining:PretrainingTask",
    "mlm": "bert2.tasks.pretraining:MaskedLMTask",
    "classify": "bert2.tasks.classify:ClassifyTask",
    "ner": "bert2.tasks.ner:NERTask",
    "qa": "bert2.tasks.qa:GenerativeQATask",
    "qa-span": "bert2.tasks.qa_span:SpanQATask",
}
"""Task name (as checkpoints record it in config.json's "bert2" block) -> "module:Class"."""

PRETRAIN_TASKS: tuple[str, ...] = ("mlm+nsp", "mlm")
"""Tasks whose checkpoints live in saved_model/transformer/pretrain; every other one is a fine-tuning task."""
FINETUNE_TASKS: tuple[str, ...] = tuple(t for t in TASKS if t not in PRETRAIN_TASKS)


class UnknownTask(KeyError):
    """A task name no module is registered for (a checkpoint from a newer bert2, or a hand-edited one)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown task {self.name!r}; bert2 knows {', '.join(TASKS)}"


def kind_of(task: str) -> str:
    """pretrain | finetune: which three of the six saved_model directories a task's checkpoints go to."""
    return "pretrain" if task in PRETRAIN_TASKS else "finetune"


def get(name: str) -> Any:
    """The task class registered as `name` (its module is imported on first use). UnknownTask otherwise."""
    if not isinstance(name, str) or name not in TASKS:
        raise UnknownTask(str(name))
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def finetune_tasks() -> list[Any]:
    """The fine-tuning task classes, in registry order."""
    return [get(name) for name in FINETUNE_TASKS]
