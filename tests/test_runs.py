"""Runs are first-class in saved_model/: resume continues the newest run, retention never deletes another run's
checkpoints, best/ and final/ hold the newest run's one, and one process at a time writes a kind directory."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import english_documents, tiny_run_cfg

from bert2 import checkpoint as ckpt
from bert2.checkpoint.lock import KindLock, holder
from bert2.cli import main
from bert2.errors import CheckpointError
from bert2.tasks.pretraining import run_pretraining
from bert2.training.events import LogEvent, StepEvent


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "english.txt"
    path.write_text("\n\n".join("\n".join(doc) for doc in english_documents()) + "\n", encoding="utf-8")
    return path


def _pretrain(cfg, stop_at: int | None = None, **kwargs):
    """A real pretraining run; with `stop_at`, stopped after that step (the trainer saves a checkpoint)."""
    events: list = []
    stop = threading.Event()

    def watch(ev):
        events.append(ev)
        if stop_at is not None and isinstance(ev, StepEvent) and ev.step >= stop_at:
            stop.set()

    threads = torch.get_num_threads()
    try:
        done = run_pretraining(cfg, [watch], stop, probes=(), **kwargs)
    finally:
        torch.set_num_threads(threads)
    return done, events


def _listing(root: Path) -> dict[str, list[tuple[str, int, str]]]:
    return {
        stage: [
            (p.name, ckpt.read_state(p)["step"], ckpt.run_of(p))
            for p in ckpt.step_dirs(root / "transformer/pretrain" / stage)
        ]
        for stage in ("checkpoint", "best", "final")
    }


def test_two_runs_resume_the_newer_and_keep_the_older_ones_files(tmp_path, corpus):
    root = tmp_path / "saved_model"
    first = tiny_run_cfg(root, corpus, steps=9)  # saves at 3 and 6 (checkpoint/), final at 9
    first.pretrain.keep_last = 2
    done, _ = _pretrain(first)
    assert done.reason == "completed"
    before = _listing(root)
    run_a = before["final"][0][2]
    assert run_a and [s for _, s, _ in before["checkpoint"]] == [3, 6]

    second = tiny_run_cfg(root, corpus, steps=12)
    second.pretrain.keep_last = 2
    done, events = _pretrain(second, stop_at=4)  # a new run beside the first, stopped at step 4
    assert done.reason == "stopped" and done.step == 4
    logs = [e.message for e in events if isinstance(e, LogEvent)]
    assert any("beside 1 earlier run(s)" in m for m in logs)
    after = _listing(root)
    run_b = next(r for _, s, r in after["checkpoint"] if s == 4)
    assert run_b != run_a
    for name, step, run in before["checkpoint"] + before["final"]:  # nothing of the first run was deleted
        assert (name, step, run) in after["checkpoint"] + after["final"]
    # B's step 3 lives beside A's step 3, under its own name
    assert sorted(n for n, s, _ in after["checkpoint"] if s == 3) == ["step-00000003", f"step-00000003-{run_b}"]
    assert len(after["best"]) == 1 and after["best"][0][2] == run_b  # the newest run's best replaced A's

    latest = ckpt.latest_resumable(root, "pretrain")
    assert ckpt.run_of(latest) == run_b and ckpt.read_state(latest)["step"] == 4  # not A's final at step 9

    done, events = _pretrain(second, resume=True)  # r / --resume: the run stopped last, at its step
    assert done.reason == "completed" and done.step == 12
    logs = [e.message for e in events if isinstance(e, LogEvent)]
    assert any(m.startswith(f"resuming run {run_b} at step 4") for m in logs)
    assert any("final/ holds one checkpoint" in m and "step-00000009" in m for m in logs)  # says what it replaced
    final = _listing(root)
    assert [(s, r) for _, s, r in final["final"]] == [(12, run_b)] and len(final["best"]) == 1
    mine = [s for _, s, r in final["checkpoint"] if r == run_b]
    assert len(mine) == 2  # keep_last counts this run's checkpoints only
    assert [(s, r) for _, s, r in final["checkpoint"] if r == run_a] == [(3, run_a), (6, run_a)]  # A's untouched

    done, events = _pretrain(second, overwrite=True)  # clearing is a choice, and it says so
    assert done.reason == "completed"
    assert any("--overwrite: removed" in e.message for e in events if isinstance(e, LogEvent))
    assert {r for stage in _listing(root).values() for _, _, r in stage} == {
        ckpt.run_of(ckpt.latest_in(root / "transformer/pretrain/final"))
    }


_HOLD = """
import sys, time
from bert2.checkpoint.lock import KindLock
lock = KindLock(sys.argv[1]); lock.acquire("other-run")
print("locked", flush=True)
sys.stdin.readline()  # until the test closes our stdin (or kills us)
"""


def _holder_process(kind_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(kind_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"  # waits on the child's state, not on a timer
    return proc


def test_a_second_writer_is_refused_and_a_killed_writers_lock_is_taken_over(tmp_path, corpus, capsys):
    root = tmp_path / "saved_model"
    kind = root / "transformer/pretrain"
    cfg = tiny_run_cfg(root, corpus, steps=3)
    proc = _holder_process(kind)
    try:
        who = holder(kind)
        assert who is not None and who.pid == proc.pid and who.run_id == "other-run"
        with pytest.raises(CheckpointError, match=f"being written by pid {proc.pid}"):
            _pretrain(cfg)
        code = main(
            [
                "pretrain",
                "--max-steps",
                "2",
                "--set",
                f'paths.root="{root}"',
                "--set",
                f'data.corpus="{corpus}"',
                "--set",
                f'data.cache_dir="{tmp_path / "cache"}"',
                "--set",
                "model.vocab_size=300",
                "--set",
                "data.max_seq_length=32",
            ]
        )
        assert code == 2 and f"pid {proc.pid}" in capsys.readouterr().err  # exit 2, one clear line
        assert not list((kind / "checkpoint").glob("step-*"))  # the refused run wrote nothing
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert holder(kind) is None  # the kernel dropped the dead process's lock; its file is left behind
    done, events = _pretrain(cfg)
    assert done.reason == "completed"
    assert any(f"took over {kind}'s lock from pid {proc.pid}" in e.message for e in events if isinstance(e, LogEvent))
    assert holder(kind) is None  # released at the end of the run


def test_a_lock_in_this_process_is_released_when_the_run_fails(tmp_path, corpus):
    root = tmp_path / "saved_model"
    cfg = tiny_run_cfg(root, corpus, steps=2)
    cfg.data.corpus = str(tmp_path / "missing.txt")
    with pytest.raises(Exception):  # noqa: B017 - any data error; what matters is the lock afterwards
        _pretrain(cfg)
    lock = KindLock(root / "transformer/pretrain")
    lock.acquire()  # free again: the failed run released it
    assert lock.held and lock.stale is None  # released cleanly: no leftover holder record
    lock.release()
