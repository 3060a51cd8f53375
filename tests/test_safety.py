"""Nothing in a checkpoint runs: resume state without pickle, planted pickle payloads never executed, and the old
pickled format still resumable on request (issue: pickle-free resume state)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from bert2 import checkpoint as ckpt
from bert2.checkpoint import train_state
from bert2.cli import main
from bert2.config import Config
from bert2.errors import CheckpointError
from bert2.tasks.pretraining import run_pretraining
from bert2_tui.testing import make_app, widget_text


def cli_sets(cfg: Config) -> list[str]:
    """The tiny configuration as --set flags, for driving the CLI on the same data and shape."""
    out = []
    for section in ("paths", "data", "model", "pretrain"):
        for key, value in vars(getattr(cfg, section)).items():
            out += ["--set", f"{section}.{key}={json.dumps(value)}"]
    return out


class Payload:
    """Unpickling this object creates `marker`: the proof that a loader executed the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_files_are_safetensors_and_json_only(tiny_run):
    cfg, step3 = tiny_run
    for d in (p for p in Path(cfg.paths.root).rglob("step-*") if p.is_dir()):
        for f in d.iterdir():
            head = f.read_bytes()[:2]
            # pickle protocol >= 2 starts with 0x80; torch.save writes a zip archive ("PK")
            assert head[:1] != b"\x80" and head != b"PK", f
            assert f.suffix != ".pt", f
    state = json.loads((step3 / "resume.json").read_text())
    assert state["format"] == train_state.FORMAT
    assert "optimizer" in state["state"]["dict"] and "rng" in state["state"]["dict"]


def test_resume_state_round_trips_exactly(tmp_path):
    import random

    opt_state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4, 2)}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.98), "eps": 1e-6, "params": [0], "fused": None}],
    }
    state = {
        "optimizer": opt_state,
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        "scaler": {"scale": float("inf")},
        "task": {},
    }
    train_state.save_resume_state(tmp_path, state)
    back = train_state.load_resume_state(tmp_path)
    assert back["rng"]["python"] == random.getstate()  # tuples stay tuples, ints exact
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], opt_state["state"][0]["exp_avg"])
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.98)
    assert back["scaler"]["scale"] == float("inf")
    with pytest.raises(CheckpointError, match="without pickle"):
        train_state.save_resume_state(tmp_path, {"odd": object()})
    (tmp_path / "resume.json").write_text(json.dumps({"format": 1, "state": {"dict": {"x": {"tensor": "nope"}}}}))
    with pytest.raises(CheckpointError, match="lacks"):
        train_state.load_resume_state(tmp_path)


def plant(source: Path, root: Path, marker: Path) -> Path:
    """A copy of `source` in `root`'s pretrain checkpoint/ whose resume files are pickles carrying a payload."""
    target = root / "transformer/pretrain/checkpoint" / source.name
    shutil.copytree(source, target)
    for f in train_state.FILES:
        (target / f).unlink()
    for f in train_state.LEGACY_FILES:
        (target / f).write_bytes(pickle.dumps({"state": Payload(marker)}, protocol=2))
    return target


def test_planted_pickle_payload_never_runs(tiny_run, tmp_path, capsys):
    cfg, step3 = tiny_run
    marker = tmp_path / "PWNED"
    root = tmp_path / "planted_root"
    planted = plant(step3, root, marker)
    sets = cli_sets(cfg) + ["--set", f"paths.root={json.dumps(str(root))}", "--set", "pretrain.max_steps=6"]

    assert main(["pretrain", "--resume", str(planted), "--quiet", *sets]) == 2  # refused, pointing at the flag
    err = capsys.readouterr().err
    assert "pickle" in err and "--trust-checkpoint" in err and "Traceback" not in err
    assert not marker.exists()

    assert main(["pretrain", "--resume", str(planted), "--trust-checkpoint", "--quiet", *sets]) == 2
    assert "not plain tensor data" in capsys.readouterr().err  # the restricted unpickler refuses the object
    assert not marker.exists()

    assert main(["inference", "mask", "the cat [MASK] the dog .", "--checkpoint", str(planted), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["predictions"][0]) == 5  # weights are safe to use
    assert main(["checkpoints", "--json", "--set", f"paths.root={json.dumps(str(root))}"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["valid"] and "--trust-checkpoint" in listed[0]["note"]
    assert not marker.exists()

    data = tmp_path / "sentiment.jsonl"
    data.write_text(
        "".join(json.dumps({"text": f"the cat {w} the dog", "label": w}) + "\n" for w in ["good", "bad"] * 16)
    )
    threads = torch.get_num_threads()
    try:
        code = main(
            [
                "finetune",
                "--task",
                "classify",
                "--data",
                str(data),
                "--from",
                str(planted),
                "--max-steps",
                "2",
                "--quiet",
                "--set",
                f"paths.root={json.dumps(str(root))}",
                "--set",
                "finetune.batch_size=8",
                "--set",
                "finetune.max_seq_length=32",
                "--set",
                "finetune.doc_stride=8",
                "--set",
                "runtime.num_threads=1",
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0 and json.loads(capsys.readouterr().out)["reason"] == "completed"
    assert not marker.exists()


async def test_checkpoint_browser_flags_pickled_resume_files(tiny_run, tmp_path):
    cfg, step3 = tiny_run
    marker = tmp_path / "PWNED"
    root = tmp_path / "planted_root"
    plant(step3, root, marker)
    ui_cfg = Config().with_overrides([f"paths.root={json.dumps(str(root))}"])
    app = make_app(ui_cfg, load_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        for _ in range(100):
            await pilot.pause()
            if getattr(app.screen, "selected", None) is not None:
                break
        screen = app.screen
        assert screen.selected is not None and screen.selected.note
        info = widget_text(screen.query_one("#ckpt-info"))
        assert "--trust-checkpoint" in info or "pickles" in info
    assert not marker.exists()


def test_old_pickled_checkpoint_resumes_only_with_the_flag(tiny_run, tmp_path):
    """A checkpoint an older bert2 wrote (plain data in .pt files) resumes with --trust-checkpoint, read with the
    restricted unpickler, and continues from its step."""
    cfg, step3 = tiny_run
    root = tmp_path / "old_root"
    old = root / "transformer/pretrain/checkpoint" / step3.name
    shutil.copytree(step3, old)
    state = train_state.load_resume_state(old)
    for f in train_state.FILES:
        (old / f).unlink()
    torch.save(state["optimizer"], old / "optimizer.pt")  # the layout bert2 wrote before the safe format
    torch.save({"schedule": state["schedule"], "scaler": None}, old / "scheduler.pt")
    torch.save({**state["rng"], "task": state["task"]}, old / "rng.pt")
    cfg2 = Config.from_dict(cfg.to_dict())
    cfg2.paths.root = str(root)
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        run_pretraining(cfg2, [], resume=old, probes=())
    threads = torch.get_num_threads()
    try:
        done = run_pretraining(cfg2, [], resume=old, probes=(), trust_checkpoint=True)
    finally:
        torch.set_num_threads(threads)
    assert done.reason == "completed" and done.step == 6
    newest = ckpt.latest_resumable(root, "pretrain")
    assert train_state.has_resume_state(newest)  # what it writes now is the safe format
