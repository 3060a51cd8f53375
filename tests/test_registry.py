"""The task registry: every registered task is one class that says what it is, and each round-trips
train -> save -> load -> predict -> export (or a clear refusal to export) through the registry alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import english_documents, tiny_run_cfg

from bert2 import checkpoint as ckpt
from bert2 import registry
from bert2.checkpoint.hf import export_hf
from bert2.checkpoint.model_files import load_checkpoint
from bert2.config import CHOICES, Config
from bert2.errors import CheckpointError
from bert2.inference import Predictor, serving
from bert2.tasks.base import FinetuneTask, Task

FIXTURES = Path(__file__).parent / "fixtures"


def test_every_registered_task_says_what_it_is():
    assert CHOICES["finetune.task"] == registry.FINETUNE_TASKS  # the config's choices come from the registry
    for name in registry.TASKS:
        cls = registry.get(name)
        assert issubclass(cls, Task) and cls.name == name
        assert cls.kind == registry.kind_of(name)
        assert cls.request in ("mask", "classify", "ner", "qa") and cls.summary and cls.headline_metric
        if cls.kind == "finetune":
            assert issubclass(cls, FinetuneTask)
            assert cls.default_data in cls.builtin_data and cls.local_formats and cls.learning_rate > 0
            assert cls.inference_example.startswith("bert2 inference ")
            assert cls.export_problem({"pooling": "cls"}) is None or cls.export_class is None
    assert set(serving("qa")) == {"qa", "qa-span"} and serving("mask") == ("mlm+nsp", "mlm")
    with pytest.raises(registry.UnknownTask, match="bert2 knows"):
        registry.get("summarise")


def _finetune_data(task: str, tmp: Path, sentiment_file: Path) -> str:
    if task == "classify":
        return str(sentiment_file)
    if task == "qa-span":
        return str(FIXTURES / "squad_tiny.json")
    if task == "ner":
        path = tmp / "ner.conll"
        rows = []
        for i in range(40):
            rows += [f"Anna{i % 5} B-person", "visited O", f"Town{i % 7} B-geo-loc", "today O", ""]
        path.write_text("\n".join(rows), encoding="utf-8")
        return str(path)
    path = tmp / "qa.jsonl"  # generative qa
    lines = [
        {
            "question": f"What is thing {i}?",
            "context": f"Thing {i} is a small red box near the river.",
            "answer": "a small red box",
        }
        for i in range(40)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return str(path)


def _train(task: str, tmp: Path, tiny_pretrain_checkpoint: Path, sentiment_file: Path) -> Path:
    threads = torch.get_num_threads()
    try:
        if registry.kind_of(task) == "pretrain":
            from bert2.tasks.pretraining import run_pretraining

            corpus = tmp / "english.txt"
            corpus.write_text("\n\n".join("\n".join(d) for d in english_documents()) + "\n", encoding="utf-8")
            cfg = tiny_run_cfg(tmp / "saved_model", corpus, steps=4)
            cfg.data.nsp = task == "mlm+nsp"
            assert run_pretraining(cfg, [], probes=()).reason == "completed"
        else:
            from bert2.tasks.finetuning import run_finetuning

            sets = [
                f'paths.root="{tmp / "saved_model"}"',
                f"finetune.task={task}",
                f'finetune.data="{_finetune_data(task, tmp, sentiment_file)}"',
                "finetune.batch_size=8",
                "finetune.max_steps=4",
                "finetune.warmup_steps=1",
                "finetune.eval_every=0",
                "finetune.save_every=0",
                "finetune.max_seq_length=64",
                "finetune.doc_stride=16",
                "finetune.max_examples=32",
                "finetune.max_answer_length=8",
                "finetune.decoder_layers=1",
                "finetune.pooling=cls",
                "runtime.num_threads=1",
            ]
            cfg = Config().with_overrides(sets)
            done = run_finetuning(cfg, [], from_checkpoint=tiny_pretrain_checkpoint)
            assert done.reason == "completed"
    finally:
        torch.set_num_threads(threads)
    return ckpt.latest_in(cfg.stage_dir(registry.kind_of(task), "final", create=False))


@pytest.mark.parametrize("task", list(registry.TASKS))
def test_each_task_round_trips_train_save_load_predict_export(task, tmp_path, tiny_pretrain_checkpoint, sentiment_file):
    cls = registry.get(task)
    final = _train(task, tmp_path, tiny_pretrain_checkpoint, sentiment_file)
    assert ckpt.read_state(final)["task"] == task and ckpt.run_of(final)

    loaded = load_checkpoint(final)  # the registry rebuilds the head from config.json, weights load strictly
    assert loaded.task == task
    assert type(loaded.model) is type(cls.build_model(loaded.model_cfg, loaded.meta, loaded.tokenizer))

    p = Predictor.load(final)  # the checkpoint answers the request its task serves
    request = {
        "mask": lambda: p.fill_mask("the capital of france is [MASK] ."),
        "classify": lambda: p.classify("a wonderful great film"),
        "ner": lambda: p.entities("Anna1 visited Town2 today"),
        "qa": lambda: p.answer("What is thing 3?", "Thing 3 is a small red box near the river."),
    }
    assert request[cls.request]()

    problem = cls.export_problem(loaded.meta)
    out = tmp_path / "hf"
    if problem is None:
        result = export_hf(final, out)
        card = (out / "README.md").read_text(encoding="utf-8")
        assert result.architecture.endswith(cls.export_class.removeprefix("Bert"))  # Bert2Alibi... for ALiBi
        assert f'pipeline_tag: "{cls.pipeline_tag}"' in card
    else:
        with pytest.raises(CheckpointError, match="cannot be exported"):
            export_hf(final, out)
        assert not out.exists()
