"""Checkpoint directories: atomic save (a real SIGKILL mid-save), retention, listing, resolving."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import MODEL_FIELDS

from bert2 import checkpoint as ckpt
from bert2.errors import CheckpointError


def payload(value: float):
    def write(d: Path):
        from safetensors.torch import save_file

        save_file({"w": torch.full((4, 4), value)}, str(d / ckpt.WEIGHTS_FILE))
        (d / ckpt.CONFIG_FILE).write_text(json.dumps({"value": value, **MODEL_FIELDS}))

    return write


def test_save_list_and_retention(tmp_path):
    stage = tmp_path / "transformer/pretrain/checkpoint"
    for step in (10, 20, 30, 40):
        ckpt.save_checkpoint(stage, step, payload(step), {"metrics": {"loss": 1.0 / step}}, keep_last=2)
    assert [p.name for p in ckpt.step_dirs(stage)] == ["step-00000030", "step-00000040"]
    infos = ckpt.list_checkpoints(tmp_path)
    assert [(i.kind, i.stage, i.step, i.valid) for i in infos] == [
        ("pretrain", "checkpoint", 30, True),
        ("pretrain", "checkpoint", 40, True),
    ]
    assert infos[0].metrics == {"loss": pytest.approx(1 / 30)} and infos[0].size_bytes > 0 and infos[0].created
    # best/ and final/ keep one; resolve() accepts stage and kind directories
    best = tmp_path / "transformer/pretrain/best"
    ckpt.save_checkpoint(best, 20, payload(20), {})
    ckpt.save_checkpoint(best, 40, payload(40), {})
    assert [p.name for p in ckpt.step_dirs(best)] == ["step-00000040"]
    assert ckpt.resolve(best).name == "step-00000040"
    assert ckpt.resolve(tmp_path / "transformer/pretrain") == best / "step-00000040"
    assert ckpt.default_checkpoint(tmp_path, "pretrain") == best / "step-00000040"
    assert ckpt.latest_resumable(tmp_path, "pretrain") == stage / "step-00000040"


def test_rotation_never_removes_protected(tmp_path):
    stage = tmp_path / "c"
    first = ckpt.save_checkpoint(stage, 1, payload(1), {}, keep_last=5)
    for step in (2, 3, 4):
        ckpt.save_checkpoint(stage, step, payload(step), {}, keep_last=5)
    ckpt.rotate(stage, 1, protect={first})
    assert sorted(p.name for p in ckpt.step_dirs(stage)) == ["step-00000001", "step-00000004"]


def test_unwritable_directory_reports_and_keeps_old(tmp_path):
    if os.geteuid() == 0:  # root ignores permissions: simulate a full disk instead
        stage = tmp_path / "c"
        ckpt.save_checkpoint(stage, 1, payload(1), {})

        def full_disk(d: Path):
            raise OSError(28, "No space left on device")

        with pytest.raises(CheckpointError, match="No space left"):
            ckpt.save_checkpoint(stage, 2, full_disk, {})
    else:
        stage = tmp_path / "c"
        ckpt.save_checkpoint(stage, 1, payload(1), {})
        stage.chmod(0o500)
        try:
            with pytest.raises(CheckpointError):
                ckpt.save_checkpoint(stage, 2, payload(2), {})
        finally:
            stage.chmod(0o700)
    assert [p.name for p in stage.iterdir()] == ["step-00000001"]
    assert ckpt.is_complete(stage / "step-00000001")


def test_incomplete_and_missing_checkpoints_are_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ckpt.resolve(tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / ckpt.WEIGHTS_FILE).write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="incomplete"):
        ckpt.resolve(broken)
    with pytest.raises(CheckpointError, match="no pretrain checkpoint"):
        ckpt.default_checkpoint(tmp_path, "pretrain")


CHILD = textwrap.dedent("""
    import sys, time, json, torch
    from pathlib import Path
    from bert2.checkpoint import layout as ckpt
    from safetensors.torch import save_file
    stage, marker = Path(sys.argv[1]), Path(sys.argv[2])
    def write(d):
        save_file({"w": torch.full((256, 256), 2.0)}, str(d / ckpt.WEIGHTS_FILE))
        (d / ckpt.CONFIG_FILE).write_text(sys.argv[3])
    def pause(d):
        marker.write_text(str(d))
        time.sleep(60)
    ckpt._pause_hook = pause
    ckpt.save_checkpoint(stage, 2, write, {}, keep_last=3)
""")


def test_sigkill_during_save_leaves_previous_checkpoint(tmp_path):
    from safetensors.torch import load_file

    stage = tmp_path / "transformer/pretrain/checkpoint"
    ckpt.save_checkpoint(stage, 1, payload(1.0), {"metrics": {"loss": 3.0}}, keep_last=3)
    marker = tmp_path / "paused"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(stage), str(marker), json.dumps(MODEL_FIELDS)],
        cwd=Path(__file__).resolve().parents[1],
    )
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "the child never reached the middle of its save"
    tmp_dir = Path(marker.read_text())
    assert tmp_dir.exists() and (tmp_dir / ckpt.WEIGHTS_FILE).exists()  # really killed mid-save
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)

    infos = ckpt.list_checkpoints(tmp_path)
    assert [(i.step, i.valid) for i in infos] == [(1, True)]  # the half-written one is not listed
    good = ckpt.resolve(stage)
    assert good.name == "step-00000001"
    assert torch.equal(load_file(str(good / ckpt.WEIGHTS_FILE))["w"], torch.full((4, 4), 1.0))
    assert ckpt.latest_resumable(tmp_path, "pretrain") == good
    # the next save sweeps the leftover temporary directory
    ckpt.save_checkpoint(stage, 3, payload(3.0), {}, keep_last=3)
    assert not tmp_dir.exists()
    assert [p.name for p in ckpt.step_dirs(stage)] == ["step-00000001", "step-00000003"]
