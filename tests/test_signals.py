"""Stop anywhere: SIGINT / SIGTERM to `bert2 pretrain` save a resumable checkpoint within a step and exit 0."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bert2 import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_checkpoint_and_exits_cleanly(tmp_path, english_corpus, sig):
    root = tmp_path / "saved_model"
    args = [
        sys.executable,
        "-m",
        "bert2",
        "pretrain",
        "--quiet",
        "--max-steps",
        "100000",
        "--set",
        f"data.corpus={english_corpus}",
        "--set",
        f"paths.root={root}",
        "--set",
        f"data.cache_dir={tmp_path / 'cache'}",
        "--set",
        "data.max_seq_length=32",
        "--set",
        "model.vocab_size=300",
        "--set",
        "model.hidden_size=32",
        "--set",
        "model.num_hidden_layers=1",
        "--set",
        "model.num_attention_heads=2",
        "--set",
        "model.intermediate_size=64",
        "--set",
        "pretrain.batch_size=8",
        "--set",
        "pretrain.log_every=1",
        "--set",
        "pretrain.eval_every=0",
        "--set",
        "pretrain.save_every=0",
    ]
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = root / "transformer/pretrain/metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and sum('"StepEvent"' in line for line in log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)  # a hang guard, not a speed limit
    assert proc.returncode == 128 + sig, err  # 130 for Ctrl-C, 143 for SIGTERM: told apart from a finished run
    assert "Traceback" not in err
    events = [json.loads(line) for line in log.read_text().splitlines()]
    last_step = max(e["step"] for e in events if e["type"] == "StepEvent")
    done = [e for e in events if e["type"] == "DoneEvent"][-1]
    assert done["reason"] == "stopped" and done["step"] <= last_step + 1  # within one step of the signal
    saved = ckpt.latest_resumable(root, "pretrain")
    assert saved is not None and ckpt.read_state(saved)["step"] == done["step"]
    assert (saved / "resume.safetensors").is_file() and (saved / "resume.json").is_file()
