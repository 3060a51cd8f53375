"""SVG snapshots of every screen in a fixed state (pytest-textual-snapshot).

Deterministic by construction: a fixed terminal size, a relative paths.root inside a tmp working directory (so no
tmp path is drawn), UTC, a fixed free memory (16 GB) for the Config screen's estimate, synthetic metrics.jsonl and checkpoints with fixed timestamps, and no job running.
Regenerate after an intended visual change with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from conftest import MODEL_FIELDS

from bert2 import memory
from bert2.config import Config
from bert2.training.events import CheckpointEvent, DoneEvent, EvalEvent, LogEvent, StartEvent, StepEvent
from bert2_tui.testing import make_app

SIZE = (120, 36)
T0 = 1_700_000_000.0  # fixed event times (UTC), so the event log is the same on every machine


@pytest.fixture
def snap_cfg(tmp_path, monkeypatch) -> Config:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 16 * 2**30)  # not this machine's free RAM
    cfg = Config()
    cfg.paths.root = "saved_model"  # relative: the same text in every snapshot
    yield cfg
    monkeypatch.undo()
    time.tzset()


def write_history(root: Path, steps: int = 400) -> None:
    """A finished pretraining run in metrics.jsonl: the Train screen draws it on start."""
    events = [
        LogEvent(level="info", message="data: 5200 training / 270 validation examples, vocabulary 8192", time=T0),
        StartEvent(
            kind="pretrain",
            task="mlm+nsp",
            total_steps=steps,
            start_step=0,
            device="cpu",
            num_parameters=4_400_000,
            run_dir=str(root / "transformer/pretrain"),
            time=T0 + 1,
        ),
    ]
    for s in range(10, steps + 1, 10):
        mlm = 9.0 * math.exp(-s / 150) + 3.0 + 0.15 * math.sin(s / 7)
        nsp = 0.69 - 0.25 * s / steps + 0.02 * math.cos(s / 5)
        lr = 1e-3 * min(1.0, s / 40) * (1 - s / steps) + 1e-6
        events.append(
            StepEvent(
                step=s,
                epoch=s // 150,
                loss=mlm + nsp,
                parts={"mlm": mlm, "nsp": nsp},
                lr=lr,
                tokens_per_s=41_250.0,
                elapsed_s=s * 0.3,
                eta_s=(steps - s) * 0.3,
                time=T0 + 2 + s,
            )
        )
        if s % 100 == 0:
            metrics = {
                "loss": mlm + nsp - 0.1,
                "mlm_accuracy": 0.05 + s / 2000,
                "perplexity": math.exp(mlm - 0.1),
                "nsp_accuracy": 0.5 + s / 1600,
            }
            probes = [
                {
                    "text": "The capital of France is [MASK].",
                    "predictions": [
                        [
                            {"token": t, "score": p}
                            for t, p in (("paris", 0.31), ("london", 0.12), ("the", 0.08), ("rome", 0.05), ("a", 0.03))
                        ]
                    ],
                }
            ]
            events.append(EvalEvent(step=s, metrics=metrics, is_best=True, probes=probes, time=T0 + 2.5 + s))
            events.append(
                CheckpointEvent(
                    step=s, path=str(root / f"transformer/pretrain/best/step-{s:08d}"), stage="best", time=T0 + 2.6 + s
                )
            )
    events.append(DoneEvent(reason="completed", step=steps, message=f"completed at step {steps}", time=T0 + 3 + steps))
    path = root / "transformer" / "pretrain" / "metrics.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))


def write_checkpoint(stage_dir: Path, step: int, loss: float, task: str = "mlm+nsp") -> None:
    d = stage_dir / f"step-{step:08d}"
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"\0" * 180_000)
    (d / "config.json").write_text(json.dumps({**MODEL_FIELDS, "bert2": {"task": task}}))
    history = [
        {"step": s, "loss": 9.0 * math.exp(-s / 150) + 3.7 + 0.1 * math.sin(s), "lr": 1e-3}
        for s in range(10, step + 1, 10)
    ]
    history += [{"step": s, "eval": {"loss": 9.0 * math.exp(-s / 150) + 3.6}} for s in range(100, step + 1, 100)]
    (d / "trainer_state.json").write_text(
        json.dumps(
            {
                "step": step,
                "kind": "pretrain" if task.startswith("mlm") else "finetune",
                "task": task,
                "created": "2025-03-14T15:09:26+00:00",
                "metrics": {"loss": loss, "mlm_accuracy": 0.21, "perplexity": 41.5},
                "log_history": history,
            }
        )
    )


def _footer_ready(app) -> bool:
    """The Footer fills in its keys a frame after its screen mounts; a snapshot taken earlier lacks them."""
    footers = app.screen.query("Footer")
    return not footers or len(footers.first().children) > 0


async def _settle(pilot, predicate=lambda: True, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not (predicate() and _footer_ready(pilot.app)) and time.monotonic() < deadline:
        await pilot.pause(0.05)
    await pilot.pause(0.4)  # one chart redraw tick


def test_snapshot_train_screen_with_last_run(snap_compare, snap_cfg):
    write_history(Path(snap_cfg.paths.root))
    app = make_app(snap_cfg)

    async def run_before(pilot):
        await _settle(pilot, lambda: bool(app.history_path))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_config_screen_with_an_error(snap_compare, snap_cfg):
    app = make_app(snap_cfg, load_history=False)

    async def run_before(pilot):
        await pilot.press("1")
        screen = app.screen
        await _settle(pilot, lambda: screen.fully_mounted)
        screen.query_one("#f-model--num_attention_heads").value = "5"
        await _settle(pilot, lambda: bool(screen.errors))
        app.set_focus(None)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_checkpoints_screen(snap_compare, snap_cfg):
    root = Path(snap_cfg.paths.root)
    write_checkpoint(root / "transformer/pretrain/checkpoint", 300, 4.31)
    write_checkpoint(root / "transformer/pretrain/checkpoint", 400, 4.02)  # written last: the newest
    write_checkpoint(root / "transformer/pretrain/best", 400, 4.02)
    write_checkpoint(root / "transformer/pretrain/final", 400, 4.02)
    app = make_app(snap_cfg, load_history=False)

    async def run_before(pilot):
        await pilot.press("3")
        await _settle(pilot, lambda: app.screen.selected is not None)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_playground_without_checkpoint(snap_compare, snap_cfg):
    app = make_app(snap_cfg, load_history=False)

    async def run_before(pilot):
        await pilot.press("4")
        await _settle(pilot)
        app.set_focus(None)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_help_screen(snap_compare, snap_cfg):
    app = make_app(snap_cfg, load_history=False)

    async def run_before(pilot):
        await pilot.press("question_mark")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_inside_screen(snap_compare, snap_cfg):
    """A real tiny run (seeded, one thread: the same numbers on every run) seen on the Inside screen."""
    import torch
    from conftest import english_documents, tiny_run_cfg

    from bert2.tasks.pretraining import run_pretraining

    docs = english_documents()
    Path("english.txt").write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    # A fixed word-level vocabulary: a trained WordPiece vocabulary varies between runs (tokenizers breaks merge
    # ties in hash-map order, huggingface/tokenizers#1794), and so would every number on the screen.
    words = sorted({w for d in docs for s in d for w in s.lower().replace(".", " . ").replace(",", " , ").split()})
    Path("vocab").mkdir()
    Path("vocab/vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    cfg = tiny_run_cfg("saved_model", "english.txt")
    cfg.data.tokenizer = "vocab"
    cfg.model.vocab_size = len(words) + 5
    threads = torch.get_num_threads()
    try:
        run_pretraining(cfg, [], probes=())
    finally:
        torch.set_num_threads(threads)
    app = make_app(cfg, load_history=False)

    async def run_before(pilot):
        await pilot.press("5")
        await _settle(pilot, lambda: getattr(app.screen, "result", None) is not None, timeout=60)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
