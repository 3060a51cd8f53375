"""The generic trainer on a small toy task: exact resume, stop requests, divergence, time budget, events."""

import math
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from bert2 import checkpoint as ckpt
from bert2.config import TrainConfig
from bert2.training.events import CheckpointEvent, DoneEvent, EvalEvent, StepEvent
from bert2.training.schedule import Schedule
from bert2.training.trainer import RunContext, Trainer


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(0.2), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


class ToyTask:
    """Regression with dropout and a collate-time random noise generator: both RNGs must survive a resume."""

    name, kind, best_metric = "toy", "pretrain", "loss"

    def __init__(self, poison_at: int | None = None):
        self.gen = torch.Generator().manual_seed(7)
        self.poison_at = poison_at
        self.calls = 0

    def collate(self, examples):
        x = torch.stack([e["x"] for e in examples])  # (B, 8)
        y = torch.stack([e["y"] for e in examples])  # (B,)
        return {"x": x + 0.01 * torch.randn(x.shape, generator=self.gen), "y": y}

    def count(self, batch):
        return {"examples": torch.tensor(batch["x"].shape[0])}

    def loss(self, model, batch, totals):
        self.calls += 1
        err = (model(batch["x"]) - batch["y"]) ** 2
        loss = err.sum() / totals["examples"]
        if self.poison_at is not None and self.calls >= self.poison_at:
            loss = loss * float("nan")
        return loss, {"mse": loss}

    def evaluate(self, model):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 8, generator=g)
        return {"loss": float(((model(x) - x.sum(-1)) ** 2).mean())}

    def probes(self, model):
        return []

    def save_files(self, model, directory):
        (directory / ckpt.CONFIG_FILE).write_text("{}")

    def state_dict(self):
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state):
        if "gen" in state:
            self.gen.set_state(state["gen"])


def data(n=200):
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(n, 8, generator=g)
    return [{"x": x, "y": x.sum()} for x in xs]


def dirs(root: Path):
    return {s: root / s for s in ("checkpoint", "best", "final")}


def make(root, steps=12, callbacks=None, stop=None, resume=None, task=None, **kw):
    torch.manual_seed(123)  # model init; the trainer reseeds its own RNGs from settings.seed
    s = TrainConfig(
        batch_size=16,
        learning_rate=1e-2,
        max_steps=steps,
        warmup_steps=3,
        log_every=1,
        eval_every=4,
        save_every=4,
        keep_last=2,
        group_by_length=False,
        **kw,
    )
    ctx = RunContext(
        dirs(root),
        torch.device("cpu"),
        "toy-run",
        callbacks=list(callbacks or []),
        stop_event=stop or threading.Event(),
        resume_from=resume,
    )
    return Trainer(Toy(), data(), task or ToyTask(), s, {"toy": True}, ctx)


def losses(events):
    return {e.step: e.loss for e in events if isinstance(e, StepEvent)}


def test_exact_resume_matches_uninterrupted(tmp_path):
    full_events = []
    full = make(tmp_path / "a", callbacks=[full_events.append])
    assert full.fit().reason == "completed"

    stop = threading.Event()
    first_events = []

    def stop_at_5(e):
        first_events.append(e)
        if isinstance(e, StepEvent) and e.step == 5:
            stop.set()

    part = make(tmp_path / "b", callbacks=[stop_at_5], stop=stop)
    done = part.fit()
    assert done.reason == "stopped" and done.step == 5
    resume_from = ckpt.latest_in(tmp_path / "b" / "checkpoint")
    assert resume_from.name == "step-00000005"
    second_events = []
    rest = make(tmp_path / "b", callbacks=[second_events.append], resume=resume_from)
    assert rest.step == 5
    assert rest.fit().reason == "completed"

    a = losses(full_events)
    b = {**losses(first_events), **losses(second_events)}
    assert sorted(b) == list(range(1, 13))  # nothing replayed, nothing skipped
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-6, abs=1e-7), step
    lr_a = {e.step: e.lr for e in full_events if isinstance(e, StepEvent)}
    lr_b = {e.step: e.lr for e in first_events + second_events if isinstance(e, StepEvent)}
    assert lr_a == pytest.approx(lr_b)  # the LR curve continues
    for (k, va), vb in zip(full.raw_model.state_dict().items(), rest.raw_model.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k


def test_events_checkpoints_and_history(tmp_path):
    events = []
    done = make(tmp_path, callbacks=[events.append]).fit()
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "StartEvent" and kinds[-1] == "DoneEvent" and isinstance(done, DoneEvent)
    assert sum(isinstance(e, EvalEvent) for e in events) == 3  # steps 4, 8 and the final evaluation
    saved = [(e.stage, e.step) for e in events if isinstance(e, CheckpointEvent)]
    assert ("final", 12) in saved and ("checkpoint", 8) in saved and any(s == "best" for s, _ in saved)
    assert [p.name for p in ckpt.step_dirs(tmp_path / "checkpoint")] == ["step-00000004", "step-00000008"]
    state = ckpt.read_state(tmp_path / "final" / "step-00000012")
    assert state["step"] == 12 and state["run_config"] == {"toy": True}
    assert [h["step"] for h in state["log_history"] if "loss" in h] == list(range(1, 13))
    first, last = losses(events)[1], losses(events)[12]
    assert last < first  # it learns


def test_nan_loss_stops_and_keeps_best(tmp_path):
    events = []
    done = make(tmp_path, steps=20, callbacks=[events.append], task=ToyTask(poison_at=10)).fit()
    assert done.reason == "diverged" and done.step == 9
    assert "non-finite" in done.message
    best = ckpt.latest_in(tmp_path / "best")
    assert best is not None and math.isfinite(ckpt.read_state(best)["metrics"]["loss"])
    assert ckpt.latest_in(tmp_path / "final") is None


def test_nan_rollback_continues(tmp_path):
    task = ToyTask(poison_at=10)
    calls = {"n": 0}
    orig = task.loss

    def once_poisoned(model, batch, totals):  # only the 10th call is non-finite
        calls["n"] += 1
        loss, parts = orig(model, batch, totals)
        if calls["n"] != 10:
            loss, parts = (model(batch["x"]) - batch["y"]).pow(2).sum() / totals["examples"], parts
        return loss, parts

    task.loss = once_poisoned
    events = []
    done = make(tmp_path, steps=14, callbacks=[events.append], task=task, on_nan="rollback").fit()
    assert done.reason == "completed"
    assert any("rolled back" in getattr(e, "message", "") for e in events)


def test_time_budget_ends_run_and_saves_final(tmp_path):
    done = make(tmp_path, steps=10**9, minutes=0.02).fit()  # 1.2 s
    assert done.reason == "time_budget" and done.step > 0
    assert ckpt.latest_in(tmp_path / "final") is not None


def test_schedule_shapes():
    s = Schedule(1.0, warmup_steps=10, total_steps=110, kind="linear")
    assert s.lr(0) == pytest.approx(0.1) and s.lr(9) == pytest.approx(1.0)
    assert s.lr(60) == pytest.approx(0.5) and s.lr(110) == pytest.approx(0.0)
    c = Schedule(1.0, 0, 100, "cosine")
    assert c.lr(50) == pytest.approx(0.5)
    t = Schedule(1.0, 0, 10**9, "linear", budget_s=100.0)
    assert t.lr(5, elapsed_s=25.0) == pytest.approx(0.75)


def test_group_by_length_is_a_permutation_with_less_padding():
    from bert2.training.trainer import group_by_length

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(8, 129, (5000,))
    order = torch.randperm(5000, generator=g)
    grouped = group_by_length(order, lengths, 32, torch.Generator().manual_seed(1))
    again = group_by_length(order, lengths, 32, torch.Generator().manual_seed(1))
    assert torch.equal(grouped, again)  # deterministic: a resume recomputes the same order
    assert sorted(grouped.tolist()) == list(range(5000))  # nothing replayed or dropped

    def padded(o):  # tokens the collator pads each batch of 32 to
        return sum(int(lengths[b].max()) * len(b) for b in o.split(32))

    assert padded(grouped) < 0.75 * padded(order)
    assert int(lengths[grouped[:32]].max()) == int(lengths.max())  # the longest batch comes first


def test_compile_true_trains_through_torch_compile(tmp_path):
    events = []
    done = make(tmp_path, steps=6, callbacks=[events.append], compile=True).fit()
    assert done.reason == "completed"
    messages = [getattr(e, "message", "") for e in events]
    assert any("compiled the training step" in m for m in messages), messages
    steps = losses(events)
    assert all(math.isfinite(v) for v in steps.values()) and steps[6] < steps[1]


def test_compile_failure_falls_back_to_eager_with_the_same_losses(tmp_path, monkeypatch):
    eager_events = []
    make(tmp_path / "eager", steps=6, callbacks=[eager_events.append]).fit()

    def broken_compile(module, **kw):
        def fail(*a, **k):
            raise RuntimeError("no C++ compiler found\nlong traceback")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    events = []
    done = make(tmp_path / "compiled", steps=6, callbacks=[events.append], compile=True).fit()
    assert done.reason == "completed"
    warnings = [e.message for e in events if getattr(e, "level", "") == "warning"]
    assert any("torch.compile failed (RuntimeError: no C++ compiler found); training eagerly" in w for w in warnings)
    assert losses(events) == pytest.approx(losses(eager_events))


def test_auto_precision_is_decided_by_facts_not_a_timing(monkeypatch):
    """runtime.precision = auto (the default): bf16 on a CPU with bf16 arithmetic for a model >= 128 wide, fp32
    for narrower models or CPUs without it; the same inputs always give the same answer (a resumed run computes as
    the run it continues), and the reason says why."""
    import torch

    from bert2.config import Config
    from bert2.training import precision

    assert Config().runtime.precision == "auto"
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    answers = {precision.resolve("auto", cpu, 128).name for _ in range(5)}
    assert answers == {"bf16"}
    narrow = precision.resolve("auto", cpu, 32)
    assert narrow.name == "fp32" and "32-wide" in narrow.reason
    assert precision.resolve("fp32", cpu, 512).name == "fp32"  # an explicit choice is kept
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    plain = precision.resolve("auto", cpu, 512)
    assert plain.name == "fp32" and "no bf16" in plain.reason
