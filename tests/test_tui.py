"""bert2-tui driven by keys through Textual's own harness (`app.run_test` + Pilot), plus import hygiene.

The training tests run the real trainer on a tiny config (hidden 32, one layer, ~300-token vocabulary, a .txt
corpus written here), started and stopped from the keyboard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import MODEL_FIELDS

from bert2.checkpoint import list_checkpoints
from bert2.config import Config
from bert2.training.events import CheckpointEvent, DoneEvent, EvalEvent, LogEvent, StartEvent, StepEvent
from bert2.training.runlog import last_run
from bert2_tui.jobs import EventBatcher, RunState, load_last_run
from bert2_tui.testing import make_app, tiny_config, widget_text
from bert2_tui.widgets.charts import downsample, ema

REPO = Path(__file__).resolve().parents[1]
SIZE = (120, 36)


async def wait_for(pilot, predicate, timeout: float = 60.0, step: float = 0.05) -> bool:
    """Let the app run until `predicate()` holds (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(step)
    return bool(predicate())


def points_plotted(screen, chart_id: str) -> int:
    """Points a chart of `screen` drew (0 while its row is still being built after the first frame)."""
    charts = screen.query(f"#{chart_id}")
    return charts.first().points_plotted if charts else 0


# ------------------------------------------------------------------------------------------- import hygiene
def _run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def test_bert2_never_imports_textual():
    code = (
        "import importlib, pkgutil, sys\n"
        "import bert2\n"
        "names = ['bert2.' + m.name for m in pkgutil.walk_packages(bert2.__path__, ) ]\n"
        "skip = ('bert2.__main__',)\n"
        "for n in names:\n"
        "    if n not in skip:\n"
        "        importlib.import_module(n)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(len(names), bad)\n"
        "assert not bad, bad\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]


def test_tui_app_import_does_not_import_torch():
    result = _run_python(
        "import sys, bert2_tui.app; bad = [m for m in ('torch', 'transformers', 'datasets') "
        "if m in sys.modules]; assert not bad, bad"
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_measure_startup_prints_first_frame_time(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "bert2_tui", "--measure-startup"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["torch_imported"] is False
    assert data["first_frame_s"] > 0


def test_bad_config_file_exits_with_message(tmp_path, capsys):
    from bert2_tui.app import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nhidden_size = 'wide'\n")
    assert main(["--config", str(bad)]) == 2
    assert "model.hidden_size" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ units
def test_event_batcher_batches_steps_and_flushes_urgent_events():
    posted: list[list] = []
    batcher = EventBatcher(posted.append, interval=0.2)

    def step(i):
        return StepEvent(step=i, epoch=0, loss=1.0, parts={}, lr=1e-3, tokens_per_s=1, elapsed_s=0, eta_s=0)

    batcher(
        StartEvent(
            kind="pretrain", task="mlm", total_steps=10, start_step=0, device="cpu", num_parameters=1, run_dir="x"
        )
    )
    assert len(posted) == 1  # start is urgent
    for i in range(50):
        batcher(step(i))
    assert len(posted) == 1  # steps wait for the window
    batcher(EvalEvent(step=50, metrics={"loss": 1.0}))
    assert len(posted) == 2 and len(posted[1]) == 51  # eval flushed everything, in order
    batcher(step(51))
    deadline = time.monotonic() + 10  # the timer flushes a lone step event without waiting for the next event
    while len(posted) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(posted) == 3 and posted[2][0].step == 51
    batcher(DoneEvent(reason="completed", step=52))
    batcher.close()
    assert len(posted) == 4 and isinstance(posted[3][0], DoneEvent)


def test_run_state_is_bounded_and_resume_joins_runs(tmp_path):
    def start(s):
        return StartEvent(
            kind="pretrain",
            task="mlm+nsp",
            total_steps=100,
            start_step=s,
            device="cpu",
            num_parameters=10,
            run_dir="r",
            time=1000.0 + s,
        )

    def step(i):
        return StepEvent(
            step=i,
            epoch=0,
            loss=5 - i / 100,
            parts={"mlm": 4.0, "nsp": 0.7},
            lr=1e-3,
            tokens_per_s=10,
            elapsed_s=i,
            eta_s=100 - i,
            time=1000.0 + i,
        )

    events = [
        start(0),
        *[step(i) for i in range(1, 61)],
        CheckpointEvent(step=40, path="p", stage="checkpoint"),
        DoneEvent(reason="stopped", step=60),
        start(40),
        *[step(i) for i in range(41, 51)],
    ]
    run = last_run(events)
    assert len(run.segments) == 2 and run.events[0].start_step == 0  # the resumed run is joined to its parent
    assert [e.step for e in run.events if isinstance(e, StepEvent)] == list(range(1, 51))  # 41..60 superseded
    path = tmp_path / "transformer" / "pretrain" / "metrics.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(json.dumps(e.to_dict()) for e in events) + "\n{torn line")
    state, source = load_last_run(tmp_path)
    assert source == str(path)
    steps = [x for x, _ in state.series["loss"]]
    assert steps == list(range(1, 51))  # points after the resume step (41..60 of the first run) were replaced
    assert set(state.series) == {"loss", "mlm", "nsp"}

    st = RunState()
    st.apply(start(0))
    for i in range(1, 7000):
        st.apply(step(i))
    assert len(st.series["loss"]) == 5000 and len(st.lr) == 5000


def test_downsample_and_smoothing():
    pts = [(i, float(i % 7)) for i in range(10_000)]
    small = downsample(pts, 100)
    assert len(small) == 100 and small[0] == pts[0] and small[-1] == pts[-1]
    assert all(isinstance(x, int) for x, _ in small)
    assert downsample(pts[:10], 100) == pts[:10]
    smooth = ema([1.0, 1.0, 1.0, 10.0], 0.9)
    assert smooth[0] == pytest.approx(1.0) and 1.0 < smooth[-1] < 10.0


def test_playground_reads_the_predictor_result_shapes():
    from bert2_tui.screens.playground import normalize_answer, normalize_classes

    # Predictor.classify: {"label", "score", "scores"}
    assert normalize_classes({"label": "pos", "score": 0.7, "scores": {"neg": 0.3, "pos": 0.7}}) == [
        ("pos", 0.7),
        ("neg", 0.3),
    ]
    context = "Paris is the capital and largest city of France."
    # span QA: character offsets are highlighted as given; no answer is start = end = -1
    assert normalize_answer({"answer": "Paris", "score": 0.5, "start": 0, "end": 5}, context) == ("Paris", 0.5, (0, 5))
    assert normalize_answer({"answer": "", "score": 0.0, "start": -1, "end": -1}, context) == ("", 0.0, None)
    # generative QA: no offsets; the answer is found in the context when it occurs there
    assert normalize_answer({"answer": "largest city", "score": 0.2}, context)[2] == (25, 37)
    assert normalize_answer({"answer": "capital of France", "score": 0.1}, context)[2] is None


def test_playground_colours_entities_at_their_offsets():
    from bert2_tui.screens.playground import entity_text

    text = "Marie Curie moved to Paris."
    entities = [
        {"text": "Marie Curie", "label": "PER", "start": 0, "end": 11, "score": 0.9},
        {"text": "Paris", "label": "LOC", "start": 21, "end": 26, "score": 0.6},
    ]
    out = entity_text(text, entities, ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"])
    plain = out.plain
    assert plain.startswith("Marie Curie PER moved to Paris LOC.")  # each entity followed by its type
    styles = {plain[span.start : span.end]: str(span.style) for span in out.spans}
    assert styles["Marie Curie"] != styles["Paris"]  # one colour per type
    assert "0.900" in plain and "types:" in plain
    assert "no entities found" in entity_text("nothing here", [], ["O", "B-PER", "I-PER"]).plain


# ---------------------------------------------------------------------------------------------- screens
async def test_number_keys_help_palette_and_escape(tmp_path):
    app = make_app(tiny_config(tmp_path), load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        assert app.current_mode == "train"
        for key, mode in (("3", "checkpoints"), ("4", "playground")):  # 1 (config) is driven in its own test
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode
        # no checkpoint yet: the playground says so in place
        assert "no checkpoint yet" in widget_text(app.screen.query_one("#pg-status"))
        assert await wait_for(pilot, lambda: "No checkpoint" in widget_text(app.screen.query_one("#mask-output")), 5)
        # the playground focuses its text field: digits type there until escape leaves the field
        await pilot.press("2")
        assert app.current_mode == "playground"
        await pilot.press("escape", "2")
        await pilot.pause()
        assert app.current_mode == "train"
        await pilot.press("question_mark")
        await pilot.pause()
        from bert2_tui.screens.dialogs import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        help_text = " ".join(widget_text(w) for w in app.screen.query(".help-section"))
        for needle in ("Start", "Stop", "Resume", "Delete", "Save TOML", "Next tool", "Quit"):
            assert needle in help_text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        # the command palette lists every screen's actions
        from bert2_tui.commands import all_commands

        titles = [t for t, _, _ in all_commands(app)]
        for needle in (
            "Go to Config",
            "Train: Start",
            "Train: Stop",
            "Checkpoints: Delete",
            "Config: Save TOML",
            "Playground: Attention view",
        ):
            assert any(needle in t for t in titles), needle
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"go to check")
        from textual.command import CommandList

        def best_hit_is_checkpoints() -> bool:
            hits = app.screen.query_one(CommandList)
            return (
                hits.option_count > 0
                and hits.highlighted == 0
                and "Go to Checkpoints" in str(hits.get_option_at_index(0).prompt)
            )

        assert await wait_for(pilot, best_hit_is_checkpoints, 10)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: app.current_mode == "checkpoints", 5)


async def test_config_screen_validates_inline_and_saves_loads_toml(tmp_path):
    cfg = tiny_config(tmp_path)
    app = make_app(cfg, load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1")
        await pilot.pause()
        screen = app.screen
        assert await wait_for(pilot, lambda: screen.fully_mounted, 20)
        # every field of every section is on the form, with its docstring as help
        from dataclasses import fields as dc_fields

        from bert2.config import SECTIONS, field_docs

        for section, cls in SECTIONS.items():
            for f in dc_fields(cls):
                screen.query_one(f"#f-{section}--{f.name}")
        helps = [widget_text(w) for w in screen.query(".field-help")]
        assert field_docs(SECTIONS["model"])["hidden_size"] in helps
        # type an invalid value: the CLI's message appears under the field, the app keeps the last valid config
        heads = screen.query_one("#f-model--num_attention_heads")
        heads.focus()
        await pilot.press("ctrl+a", "shift+end", "backspace", "3")  # select all / delete / type
        assert await wait_for(
            pilot, lambda: "divisible by model.num_attention_heads" in screen.error_text("model.hidden_size"), 10
        )
        assert heads.value == "3"
        assert "divisible" in widget_text(screen.query_one("#help-model--hidden_size"))  # shown under the help text
        assert app.config.model.num_attention_heads == 2
        await pilot.press("backspace", "4")
        assert await wait_for(pilot, lambda: app.config.model.num_attention_heads == 4, 10)
        assert not screen.errors and not app.config_errors
        # a type error is caught too
        steps = screen.query_one("#f-pretrain--max_steps")
        steps.focus()
        await pilot.press("ctrl+a", "shift+end", "backspace", *"lots")
        assert await wait_for(pilot, lambda: app.config_errors, 10)
        assert "must be an integer" in screen.error_text("pretrain.max_steps")
        # starting a job with an invalid form is refused (and nothing starts)
        await pilot.press("escape", "2", "s")
        await pilot.pause()
        assert app.job is None
        await pilot.press("1")
        await pilot.pause()
        steps.focus()
        await pilot.press("ctrl+a", "shift+end", "backspace", *"77")
        assert await wait_for(pilot, lambda: app.config.pretrain.max_steps == 77, 10)
        # save to TOML through the prompt, then load it back after changing the form
        target = tmp_path / "saved.toml"
        await pilot.press("ctrl+s")
        await pilot.pause()
        prompt = app.screen.query_one("#prompt-input")
        prompt.value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert target.is_file() and "max_steps = 77" in target.read_text()
        screen.set_values(Config())
        assert await wait_for(pilot, lambda: app.config.pretrain.max_steps == Config().pretrain.max_steps, 10)
        assert screen.load_file(str(target))
        assert await wait_for(pilot, lambda: app.config.pretrain.max_steps == 77, 10)
        assert app.config.model.num_attention_heads == 4 and app.config_path == str(target)
        # a preset applies over the form; a clash with other fields shows inline instead of being refused
        screen.apply_preset("mini")
        await pilot.pause()
        assert screen.query_one("#f-model--hidden_size").value == "256"
        assert "exceeds model.max_position_embeddings" in screen.error_text("data.max_seq_length")
        assert app.config.model.hidden_size == 32  # still the last valid config
        screen.query_one("#f-model--max_position_embeddings").value = "512"
        assert await wait_for(pilot, lambda: app.config.model.hidden_size == 256, 10)
        assert not screen.errors
        # the filter hides non-matching rows
        await pilot.press("ctrl+f", *"dropout")
        await pilot.pause()
        visible = screen.visible_keys()
        assert visible and all("dropout" in k or "dropout" in screen._docs[k].lower() for k in visible)
        assert "model.hidden_dropout_prob" in visible and "pretrain.max_steps" not in visible


def _fake_checkpoint(stage_dir: Path, step: int, loss: float, kind: str = "pretrain") -> Path:
    """A checkpoint directory the browser can list (it reads trainer_state.json only)."""
    d = stage_dir / f"step-{step:08d}"
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"\0" * 2048)
    (d / "config.json").write_text(json.dumps({**MODEL_FIELDS, "bert2": {"task": "mlm+nsp"}}))
    history = [{"step": s, "loss": 6.0 - s / 100, "lr": 1e-3} for s in range(10, step + 1, 10)]
    history += [{"step": step, "eval": {"loss": loss}}]
    (d / "trainer_state.json").write_text(
        json.dumps(
            {
                "step": step,
                "kind": kind,
                "task": "mlm+nsp",
                "created": "2025-01-02T03:04:05+00:00",
                "metrics": {"loss": loss, "mlm_accuracy": 0.25},
                "log_history": history,
            }
        )
    )
    return d


async def test_checkpoints_screen_lists_shows_and_deletes(tmp_path):
    cfg = tiny_config(tmp_path)
    root = Path(cfg.paths.root)
    keep = _fake_checkpoint(root / "transformer/pretrain/checkpoint", 200, 3.5)
    doomed = _fake_checkpoint(root / "transformer/pretrain/best", 100, 3.2)
    broken = root / "bert/finetuning/final/step-00000007"
    broken.mkdir(parents=True)
    app = make_app(cfg, load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        assert await wait_for(pilot, lambda: app.current_mode == "checkpoints" and app.screen.selected is not None, 10)
        screen = app.screen
        assert {Path(i.path) for i in screen.infos} == {keep, doomed, broken}
        assert [i.valid for i in screen.infos if Path(i.path) == broken] == [False]
        first = screen.selected
        screen.show(next(i for i in screen.infos if Path(i.path) == broken))  # its reason, in the panel
        assert "invalid: missing model.safetensors, config.json" in widget_text(screen.query_one("#ckpt-info"))
        screen.show(first)
        assert screen.selected is not None
        info = widget_text(screen.query_one("#ckpt-info"))
        assert "step" in info and "created" in info
        assert screen.query_one("#ckpt-chart").points_plotted > 0  # the loss history from trainer_state.json
        # select the best/ checkpoint by keys and delete it (asks first; "n" keeps it)
        tree = screen.query_one("#ckpt-tree")
        tree.focus()
        for _ in range(12):
            if screen.selected and Path(screen.selected.path) == doomed:
                break
            await pilot.press("down")
            await pilot.pause()
        assert Path(screen.selected.path) == doomed
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert doomed.exists()
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        assert await wait_for(pilot, lambda: not doomed.exists(), 10)
        assert keep.exists()
        assert doomed not in {Path(i.path) for i in screen.infos}
        # never delete what a running job writes: a pretraining job owns transformer/pretrain/
        from bert2_tui.app import Job
        from bert2_tui.jobs import JobSpec

        app.job = Job(99, JobSpec("pretrain", cfg), state="running")
        assert screen.selected is not None and app.is_protected(screen.selected.path)
        await pilot.press("d")
        await pilot.pause()
        from bert2_tui.screens.dialogs import ConfirmScreen

        assert not isinstance(app.screen, ConfirmScreen) and Path(screen.selected.path).exists()
        app.job = None


# ------------------------------------------------------------------------------------------ run overlay
T_RUNS = 1_700_000_000.0


def _history_run(
    kind: str,
    task: str,
    t: float,
    steps: int,
    preamble: tuple[str, ...] = (),
    parts: bool = False,
    accuracy: float = 0.0,
    start_step: int = 0,
    done: bool = True,
) -> list:
    """The events one run writes to metrics.jsonl: set-up logs, start, a step each step, an eval every 10."""
    events: list = [LogEvent(level="info", message=m, time=t - 1) for m in preamble]
    events.append(
        StartEvent(
            kind=kind,
            task=task,
            total_steps=steps,
            start_step=start_step,
            device="cpu",
            num_parameters=1000,
            run_dir="r",
            time=t,
        )
    )
    for s in range(start_step + 1, steps + 1):
        loss = 2.0 - s / steps
        events.append(
            StepEvent(
                step=s,
                epoch=0,
                loss=loss,
                parts={"mlm": loss - 0.5, "nsp": 0.5} if parts else {},
                lr=1e-3 * (1 - s / steps),
                tokens_per_s=1.0,
                elapsed_s=s,
                eta_s=steps - s,
                time=t + s,
            )
        )
        if s % 10 == 0:
            metrics = {"loss": loss + 0.1, **({"accuracy": accuracy} if accuracy else {"mlm_accuracy": 0.2})}
            events.append(EvalEvent(step=s, metrics=metrics, is_best=True, time=t + s + 0.5))
    if done:
        events.append(DoneEvent(reason="completed", step=steps, time=t + steps + 1))
    return events


def _write_jsonl(path: Path, events: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events), encoding="utf-8")
    return path


def _overlay_labels(chart) -> list[str]:
    return [k for k in chart.drawn if "(" in k and not k.endswith("(raw)")]


async def _open_overlay_picker(app, pilot):
    from bert2_tui.screens.dialogs import ChoiceScreen

    await pilot.press("o")
    await app.workers.wait_for_complete()
    await pilot.pause()
    assert isinstance(app.screen, ChoiceScreen)
    return app.screen, app.screen.query_one("#choice-list")


def test_list_runs_joins_resumes_and_reads_how_each_run_began(tmp_path):
    from bert2_tui.history import list_runs

    ft = tmp_path / "bert" / "finetuning" / "metrics.jsonl"
    _write_jsonl(
        ft,
        _history_run("finetune", "classify", T_RUNS, 40, ("from scratch: random weights",), accuracy=0.6, done=False)
        + _history_run("finetune", "classify", T_RUNS + 100, 60, start_step=20, accuracy=0.7)
        + _history_run(
            "finetune", "qa-span", T_RUNS + 500, 20, ("from /x/pretrain/best/step-1 (mlm+nsp): loaded 40 tensors",)
        ),
    )
    listing = list_runs(tmp_path)
    assert [(r.task, r.origin) for r in listing.runs] == [("qa-span", "pretrained"), ("classify", "scratch")]
    resumed = listing.runs[1]
    assert resumed.segment_starts == [T_RUNS, T_RUNS + 100] and resumed.step == 60 and resumed.reason == "completed"
    steps = [x for x, _ in resumed.overlay.loss]
    assert steps[0] == 1 and steps[-1] == 60 and steps == sorted(steps)  # the resume replaced steps 21..40
    assert "acc 0.7" in resumed.metric_summary() and "best loss" in resumed.metric_summary()
    assert resumed.label.startswith("classify scratch ")
    assert listing.runs[0].origin_path == "/x/pretrain/best/step-1"


async def test_overlay_picker_draws_an_earlier_run_over_the_current_one(tmp_path):
    cfg = tiny_config(tmp_path)
    root = Path(cfg.paths.root)
    _write_jsonl(
        root / "transformer" / "pretrain" / "metrics.jsonl",
        _history_run("pretrain", "mlm+nsp", T_RUNS - 7200, 50, parts=True),
    )
    _write_jsonl(
        root / "bert" / "finetuning" / "metrics.jsonl",
        _history_run("finetune", "classify", T_RUNS, 40, ("from scratch: random weights",), accuracy=0.61)
        + _history_run(
            "finetune",
            "classify",
            T_RUNS + 3600,
            30,
            ("from saved_model/transformer/pretrain/best/step-00000050 (mlm+nsp): loaded",),
            accuracy=0.85,
        ),
    )
    app = make_app(cfg)  # loads the last run (the pretrained classify run) as the current one
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.history_path.endswith("finetuning/metrics.jsonl") and app.run_state.step == 30
        train = app.screen
        loss_chart, parts_chart, lr_chart = (train.query_one(f"#chart-{n}") for n in ("loss", "parts", "lr"))
        assert await wait_for(pilot, lambda: loss_chart.drawn.get("train"), 10)
        assert _overlay_labels(loss_chart) == []
        # a fine-tuning run shows validation samples, not the pretraining [MASK] probe editor
        assert await wait_for(pilot, lambda: not train.query_one("#probe-input").display, 10)
        assert "Samples" in widget_text(train.query_one("#probe-pane .pane-title"))
        await pilot.press("e")  # says why, and its [MASK] survives as text (toasts are never read as markup)
        await pilot.pause()
        toast = [n for n in app._notifications if "probes belong" in n.message][-1]
        assert toast.message.startswith("[MASK] probes") and not toast.markup

        picker, options = await _open_overlay_picker(app, pilot)
        assert "3 runs" in widget_text(picker.query_one("#choice-message"))
        rows = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert "no overlay" in rows[0] and len(rows) == 4
        assert "classify · pretrained" in rows[1] and "(shown)" in rows[1] and "acc 0.85" in rows[1]
        assert "classify · scratch" in rows[2] and "step 40/40" in rows[2] and "completed" in rows[2]
        assert "acc 0.61" in rows[2] and "best loss 1.1 @ 40" in rows[2]
        assert rows[3].lstrip().startswith("pretrain") and "mlm acc 0.2" in rows[3]
        assert options.highlighted == 0
        await pilot.press("down", "down", "enter")  # the scratch run
        await pilot.pause()
        assert app.screen is train
        label = train.overlay.label
        assert label.startswith("classify scratch ")
        # the data the charts were given: the current run as before, the overlay beside it with its own labels
        assert [x for x, _ in loss_chart.drawn["train"]][-1] == 30
        overlay_loss = loss_chart.drawn[f"train ({label})"]
        assert overlay_loss[0][0] == 1 and overlay_loss[-1][0] == 40
        assert [x for x, _ in loss_chart.drawn[f"eval ({label})"]] == [10, 20, 30, 40]
        # the narrow charts name it by its start time only where the full name leaves no room for a legend
        assert _overlay_labels(lr_chart) in ([f"lr ({label})"], [f"lr ({train.overlay.short})"])
        assert _overlay_labels(parts_chart) == []  # the fine-tuning run logged no loss parts
        # it stays while a new run streams in
        st = app.run_state
        st.apply(
            StartEvent(
                kind="finetune",
                task="classify",
                total_steps=100,
                start_step=0,
                device="cpu",
                num_parameters=1000,
                run_dir="r",
            )
        )
        for s in range(1, 13):
            st.apply(StepEvent(step=s, epoch=0, loss=1.0, parts={}, lr=1e-3, tokens_per_s=1, elapsed_s=s, eta_s=1))
        train.tick(True)
        assert [x for x, _ in loss_chart.drawn["train"]][-1] == 12
        assert loss_chart.drawn[f"train ({label})"] is overlay_loss  # static: not recomputed for the redraw
        # another run: the pretraining one brings its loss parts too; the picker starts on the active overlay
        picker, options = await _open_overlay_picker(app, pilot)
        assert options.highlighted == 2 and "●" in str(options.get_option_at_index(2).prompt)
        assert "(shown)" not in " ".join(str(options.get_option_at_index(i).prompt) for i in range(4))
        await pilot.press("down", "enter")
        await pilot.pause()
        label = train.overlay.label
        assert label.startswith("pretrain ")
        assert sorted(k.split(" (")[0] for k in _overlay_labels(parts_chart)) == ["mlm", "nsp"]
        assert loss_chart.drawn[f"train ({label})"][-1][0] == 50
        # escape keeps it; "no overlay" clears it
        await _open_overlay_picker(app, pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert train.overlay is not None and _overlay_labels(loss_chart)
        await _open_overlay_picker(app, pilot)
        await pilot.press("home", "enter")
        await pilot.pause()
        assert train.overlay is None
        assert _overlay_labels(loss_chart) == _overlay_labels(parts_chart) == _overlay_labels(lr_chart) == []
        assert loss_chart.drawn["train"]
        # the key is in the help and the command palette like every other action
        from bert2_tui.commands import all_commands

        assert any(t == "Train: Overlay" for t, _, _ in all_commands(app))
        assert any(b.key == "o" and b.id == "train.overlay" for _, bs in app.help_sections() for b in bs)


async def test_overlay_picker_survives_a_missing_and_a_corrupt_history(tmp_path):
    cfg = tiny_config(tmp_path)
    path = Path(cfg.paths.root) / "transformer" / "pretrain" / "metrics.jsonl"
    app = make_app(cfg)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        # no history file at all: the picker says so, and offers only "no overlay"
        picker, options = await _open_overlay_picker(app, pilot)
        assert "No earlier runs" in widget_text(picker.query_one("#choice-message"))
        assert options.option_count == 1
        await pilot.press("escape")
        await pilot.pause()
        # a history with every kind of damage: bad lines are skipped, the rest of the run is listed and drawn
        good = _history_run("pretrain", "mlm+nsp", T_RUNS, 8, parts=True, done=False)
        lines = [json.dumps(e.to_dict()) for e in good]
        start_at = next(i for i, e in enumerate(good) if isinstance(e, StartEvent))
        step6 = next(i for i, e in enumerate(good) if isinstance(e, StepEvent) and e.step == 6)
        bad = [
            "not json at all",
            json.dumps({"type": "FancyEvent", "step": 3}),
            json.dumps({**good[start_at + 1].to_dict(), "step": 4, "loss": "abc"}),
            "[1, 2, 3]",
            json.dumps({"type": "StepEvent"}),
            json.dumps({"type": "StepEvent", "step": None, "loss": 1.0}),
        ]
        body = "\n".join(lines[:step6] + bad + lines[step6:]) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body.encode() + b"\xff\xfe not utf-8\n\n" + b'{"type": "StepEvent", "step": 9, "epo')
        picker, options = await _open_overlay_picker(app, pilot)
        message = widget_text(picker.query_one("#choice-message"))
        assert "1 run" in message and "8 unreadable lines skipped" in message
        assert options.option_count == 2 and "step 8/8" in str(options.get_option_at_index(1).prompt)
        await pilot.press("down", "enter")
        await pilot.pause()
        train = app.screen
        label = train.overlay.label
        drawn = train.query_one("#chart-loss").drawn[f"train ({label})"]
        assert [x for x, _ in drawn] == list(range(1, 9))
        # the same file reloads as the last run without a traceback (h), and the app is still responsive
        await pilot.press("h")
        assert await wait_for(pilot, lambda: app.history_path == str(path), 10)
        assert app.run_state.step == 8
        assert [x for x, _ in app.run_state.series["loss"]] == list(range(1, 9))
        await pilot.press("3")
        await pilot.pause()
        assert app.current_mode == "checkpoints"


# ------------------------------------------------------------------------------------------ real training
@pytest.mark.slow
async def test_train_job_from_keyboard_charts_checkpoints_stop_resume_quit(tmp_path):
    cfg = tiny_config(tmp_path)
    app = make_app(cfg, load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        started = time.monotonic()
        await pilot.press("s")
        assert await wait_for(pilot, lambda: app.job is not None, 10)
        first = app.job
        assert first.active
        await pilot.press("s")  # a second start while running does not start a second job
        await pilot.pause()
        assert app.job is first
        assert await wait_for(pilot, lambda: app.run_state.step >= 7 and app.run_state.evals, 90), app.run_state.log
        assert len([w for w in app.workers if w.group == "train" and w.is_running]) == 1
        screen = app.screen
        assert await wait_for(
            pilot, lambda: all(points_plotted(screen, f"chart-{n}") > 0 for n in ("loss", "parts", "lr")), 60
        )  # generous: charts redraw once a second, later on a loaded machine; the wait ends when they are drawn
        assert await wait_for(pilot, lambda: screen.query_one("#eval-table").row_count >= 1, 30)
        assert "capital of france" in widget_text(screen.query_one("#probe-results")).lower()
        assert screen.query_one("#probe-input").display  # a pretraining run's probes can be edited
        # events arrive in time batches: step events at most ~4 batches a second, the rest flush at once
        urgent = len(app.run_state.log)
        assert app.batches_received <= urgent + 4 * (time.monotonic() - started) + 2
        assert await wait_for(pilot, lambda: list_checkpoints(cfg.paths.root), 30)
        # stop from the keyboard: the trainer saves a checkpoint at the step it stopped
        await pilot.press("x")
        assert await wait_for(pilot, lambda: not app.job_active, 60)
        assert app.run_state.status == "stopped"
        stopped_at = app.run_state.step
        assert any(i.step == stopped_at and i.stage == "checkpoint" for i in list_checkpoints(cfg.paths.root))
        # stop, then start again works (and resume is one key: r)
        await pilot.press("r")
        assert await wait_for(pilot, lambda: app.job is not first, 10)
        second = app.job
        assert second.spec.resume is True
        assert await wait_for(pilot, lambda: app.run_state.step > stopped_at + 3, 60), app.run_state.log
        # quitting mid-run asks first ("n" keeps training), then stops cleanly with a checkpoint and exits
        await pilot.press("q")
        await pilot.pause()
        from bert2_tui.screens.dialogs import BusyScreen, ConfirmScreen

        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert second.active and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, BusyScreen) or app.return_code is not None
        assert await wait_for(pilot, lambda: app.return_code is not None, 60)
    assert not second.active and app.run_state.status == "stopped"
    final_step = app.run_state.step
    assert any(i.step == final_step and i.stage == "checkpoint" for i in list_checkpoints(cfg.paths.root))
    metrics = Path(cfg.paths.root) / "transformer" / "pretrain" / "metrics.jsonl"
    assert metrics.is_file()
    # a restarted app draws the last run from metrics.jsonl
    app2 = make_app(cfg)
    async with app2.run_test(size=SIZE) as pilot:
        assert await wait_for(pilot, lambda: app2.history_path == str(metrics), 10)
        assert app2.run_state.step == final_step
        assert await wait_for(pilot, lambda: points_plotted(app2.screen, "chart-loss") > 0, 10)


@pytest.mark.slow
async def test_trainer_errors_are_shown_and_the_app_stays_up(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path)
    cfg.data.corpus = str(tmp_path / "no-such-corpus.txt")
    app = make_app(cfg, load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        assert await wait_for(pilot, lambda: app.job is not None and not app.job_active, 60)
        assert app.run_state.status == "error"
        assert "no-such-corpus.txt" in app.run_state.status_text
        from bert2_tui.widgets.nav import NavBar

        app.refresh_nav()
        nav = app.screen.query_one(NavBar)._job_text.plain  # it failed before any step: not "at step N"
        assert nav.endswith("error while preparing"), nav
        # an unexpected exception (not a Bert2Error) shows its traceback in the event log
        import bert2.tasks.pretraining

        def boom(*args, **kwargs):
            raise RuntimeError("kaboom in the trainer")

        monkeypatch.setattr(bert2.tasks.pretraining, "run_pretraining", boom)
        first = app.job
        await pilot.press("s")
        assert await wait_for(pilot, lambda: app.job is not first and not app.job_active, 30)
        assert "RuntimeError: kaboom" in app.run_state.status_text
        assert any("Traceback" in line.text for line in app.run_state.log)
        await pilot.press("1")  # still alive and responsive
        await pilot.pause()
        assert app.current_mode == "config"


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory) -> Config:
    """A real tiny pretraining run (no UI): final/ and best/ checkpoints to browse and query."""
    from bert2.tasks.pretraining import run_pretraining

    root = tmp_path_factory.mktemp("trained")
    cfg = tiny_config(root, max_steps=12, eval_every=6, save_every=6, log_every=2)
    done = run_pretraining(cfg, stop_event=threading.Event())
    assert done.reason == "completed"
    return cfg


@pytest.mark.slow
async def test_prune_and_distill_run_as_jobs_from_the_checkpoints_screen(trained_root, tmp_path):
    """k prunes the selected checkpoint (the curve arrives as evaluations and as loss points whose x is heads
    masked), t distils a student from it; both run in the worker like training, and the teacher survives."""
    import shutil

    from bert2 import checkpoint as ckpt

    cfg = trained_root.copy()
    shutil.copytree(trained_root.paths.root, tmp_path / "saved_model")
    cfg.paths.root = str(tmp_path / "saved_model")
    cfg.distill.max_steps, cfg.distill.eval_every, cfg.distill.save_every = 3, 3, 3
    cfg.distill.batch_size, cfg.distill.log_every = 8, 1
    app = make_app(cfg, load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert await wait_for(pilot, lambda: app.current_mode == "checkpoints" and screen.selected is not None, 10)
        await pilot.press("k")
        assert await wait_for(pilot, lambda: app.job is not None and app.job.spec.kind == "prune", 5)
        assert await wait_for(pilot, lambda: not app.job_active, 120), app.run_state.status_text
        st = app.run_state
        assert st.status == "done", [line.text for line in st.log][-5:]
        assert [e[0] for e in st.evals][:2] == [0, 1] and "heads_removed" in st.evals[-1][1]
        assert [x for x, _ in st.series["loss"]][:2] == [0, 1]  # the curve, drawn on the loss chart
        pruned = ckpt.step_dirs(ckpt.kind_dir(cfg.paths.root, "pretrain") / "final")[-1]  # where prune saves
        removed = ckpt.read_json(pruned / ckpt.CONFIG_FILE)["bert2"]["pruning"][-1]["removed"]  # one per prune
        assert removed in ({"0": [0]}, {"0": [1]})  # one of the layer's two heads
        assert any("checkpoint saved (final)" in line.text for line in st.log)
        await pilot.press("3")
        assert await wait_for(pilot, lambda: app.current_mode == "checkpoints" and screen.selected is not None, 10)
        chosen = screen.selected.path
        await pilot.press("t")
        assert await wait_for(pilot, lambda: app.job is not None and app.job.spec.kind == "distill", 5)
        assert await wait_for(pilot, lambda: not app.job_active, 180), app.run_state.status_text
        assert app.run_state.status == "done", [line.text for line in app.run_state.log][-5:]
        assert len(app.run_state.series["loss"]) >= 3
        students = [
            p
            for stage in ("checkpoint", "best", "final")
            for p in ckpt.step_dirs(ckpt.kind_dir(cfg.paths.root, "pretrain") / stage)
            if "distilled_from" in ckpt.read_json(p / ckpt.CONFIG_FILE)["bert2"]
        ]
        assert students, "the student saved its checkpoints beside the teacher's"
        kept = Path(ckpt.read_json(students[0] / ckpt.CONFIG_FILE)["bert2"]["distilled_from"])
        assert kept.is_dir() and Path(chosen).name in kept.name  # the teacher, read from its kept copy


@pytest.mark.slow
async def test_playground_predicts_from_a_real_checkpoint(trained_root):
    app = make_app(trained_root, load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        assert await wait_for(pilot, lambda: app.current_mode == "checkpoints" and app.screen.selected is not None, 10)
        await pilot.press("p")  # "use in playground" on the selected checkpoint
        assert await wait_for(pilot, lambda: app.current_mode == "playground", 5)
        screen = app.screen
        assert await wait_for(pilot, lambda: screen.predictor is not None, 60), widget_text(
            screen.query_one("#pg-status")
        )
        out = screen.query_one("#mask-output")
        assert await wait_for(pilot, lambda: "%" in widget_text(out), 20)
        assert widget_text(out).count("%") == 5  # top-5 for the one [MASK]
        # two masks: two blocks
        inp = screen.query_one("#mask-input")
        inp.focus()
        await pilot.press("end", *" the [MASK] sat.")
        assert await wait_for(pilot, lambda: "[MASK] #2" in widget_text(out), 10)
        # no [MASK]: a hint in place, never a crash
        inp.value = "a sentence without a mask"
        assert await wait_for(pilot, lambda: "hint:" in widget_text(out) and "[MASK]" in widget_text(out), 10)
        inp.value = ""
        assert await wait_for(pilot, lambda: "hint:" in widget_text(out) and "empty" in widget_text(out), 10)
        # classification on a pretraining checkpoint: the wrong task is a hint
        screen.show_tool("classify")
        await pilot.pause()
        cls_in = screen.query_one("#classify-input")
        cls_in.focus()
        await pilot.press(*"a fine film")
        cls_out = screen.query_one("#classify-output")
        assert await wait_for(pilot, lambda: "hint:" in widget_text(cls_out), 10), widget_text(cls_out)
        # similarity works on any checkpoint (mean-pooled encodings)
        screen.show_tool("similarity")
        await pilot.pause()
        screen.query_one("#sim-a").value = "the cat sat on the mat"
        screen.query_one("#sim-b").value = "a dog ran in the park"
        assert await wait_for(
            pilot, lambda: "cosine similarity" in widget_text(screen.query_one("#similarity-output")), 10
        ), widget_text(screen.query_one("#similarity-output"))
        # attention view: a heat map for layer 0 / head 0, arrows change the head
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert screen.current_tool() == "attention"
        att = screen.query_one("#attention-output")
        assert await wait_for(pilot, lambda: "layer 0 · head 0" in widget_text(att), 20), widget_text(att)
        att.focus()
        await pilot.press("right")
        await pilot.pause()
        assert "layer 0 · head 1" in widget_text(att)
        await pilot.press("down")  # one layer only: wraps to layer 0
        await pilot.pause()
        assert "head 1" in widget_text(att)


def test_run_state_chart_data_and_log_stay_bounded():
    """A run far longer than the caps (the soak's concern): every chart series and the event log stop growing."""
    from bert2.training.events import LogEvent, StartEvent, StepEvent
    from bert2_tui.jobs import MAX_POINTS, RunState

    st = RunState()
    st.apply(
        StartEvent(
            kind="pretrain", task="mlm+nsp", total_steps=0, start_step=0, device="cpu", num_parameters=1, run_dir="x"
        )
    )
    for s in range(1, MAX_POINTS + 2001):
        st.apply(
            StepEvent(
                step=s,
                epoch=0,
                loss=1.0,
                parts={"mlm": 0.7, "nsp": 0.3},
                lr=1e-3,
                tokens_per_s=1.0,
                elapsed_s=0.0,
                eta_s=0.0,
            )
        )
        if s % 3 == 0:
            st.apply(LogEvent(level="info", message=f"line {s}"))
    assert all(len(series) == MAX_POINTS for series in st.series.values()) and len(st.lr) == MAX_POINTS
    assert st.series["loss"][-1][0] == MAX_POINTS + 2000  # the newest points are the ones kept
    assert len(st.log) <= 1000


def test_config_screen_choices_are_exactly_what_validate_accepts():
    """Every Select on the Config screen offers only values validate() accepts, and validate() rejects a value
    outside them (both read bert2.config.CHOICES; three model options once had a free text field)."""
    from bert2.config import ConfigError
    from bert2_tui.screens.config import CHOICES

    def errors_for(key: str, value: str) -> list[str]:
        try:
            Config().with_overrides([f"{key}={value}"])
        except ConfigError as exc:
            return [e.message for e in exc.errors if e.key == key]
        return []

    for key, options in CHOICES.items():
        for option in options:
            assert errors_for(key, option) == [], (key, option)
        assert errors_for(key, "not-a-choice"), key


# ------------------------------------------------------------------------------------- runs in saved_model/
async def test_start_over_existing_runs_asks_and_a_new_run_deletes_nothing(tmp_path):
    """s with a run already in the kind's directories asks: resume it, start a new run beside it, or clear and
    start over; only the last deletes another run's checkpoints."""
    from bert2 import checkpoint as ckpt
    from bert2_tui.screens.dialogs import ChoiceScreen

    cfg = tiny_config(tmp_path, max_steps=6, eval_every=3, save_every=3)
    app = make_app(cfg, load_history=False)
    kind = Path(cfg.paths.root) / "transformer/pretrain"
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")  # nothing there yet: no question
        assert await wait_for(pilot, lambda: app.job is not None and not app.job_active, 120), app.run_state.log
        first = {p.name: ckpt.run_of(p) for p in ckpt.kind_checkpoints(cfg.paths.root, "pretrain")}
        assert first and len(set(first.values())) == 1
        first_periodic = {p: ckpt.run_of(p) for p in (kind / "checkpoint").glob("step-*")}
        assert first_periodic

        await pilot.press("s")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), 10)
        prompts = [str(o.prompt) for o in app.screen.query_one("#choice-list").options]
        # the first run finished at its max_steps: resuming it would stop at once, so it is not offered (and why)
        assert "ended at step 6, pretrain.max_steps" in widget_text(app.screen.query_one("#choice-message"))
        assert prompts[0].startswith("Start a new run beside it") and prompts[1].startswith("Clear it")
        await pilot.press("escape")  # cancel: nothing starts
        await pilot.pause()
        assert not app.job_active

        job = app.job
        await pilot.press("s")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), 10)
        await pilot.press("enter")  # a new run beside the first
        assert await wait_for(pilot, lambda: app.job is not job and not app.job_active, 120), app.run_state.log
        after = {p.name: ckpt.run_of(p) for p in ckpt.kind_checkpoints(cfg.paths.root, "pretrain")}
        kept = {p: r for p, r in first_periodic.items() if p.is_dir() and ckpt.run_of(p) == r}
        assert kept == first_periodic  # the first run's periodic checkpoints are all still there
        assert len(set(after.values())) == 2  # both runs are there (final/ and best/ hold the newest run's)
        assert len(list((kind / "final").glob("step-*"))) == 1

        job = app.job
        await pilot.press("s")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), 10)
        await pilot.press("down", "enter")  # clear and start over
        assert await wait_for(pilot, lambda: app.job is not job and not app.job_active, 120), app.run_state.log
        assert app.job.spec.overwrite
        assert len({ckpt.run_of(p) for p in ckpt.kind_checkpoints(cfg.paths.root, "pretrain")}) == 1
        assert any("--overwrite: removed" in line.text for line in app.run_state.log)

        app.config.pretrain.max_steps = 1000  # now the latest run can go on: resuming it is the first offer
        await pilot.press("s")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), 10)
        prompts = [str(o.prompt) for o in app.screen.query_one("#choice-list").options]
        assert prompts[0].startswith("Resume it: run ") and "at step 6" in prompts[0] and len(prompts) == 3
        await pilot.press("escape")


_OTHER_WRITER = """
import json, sys, time
from bert2.checkpoint.lock import KindLock
from bert2.training.events import StartEvent, StepEvent
kind_dir = sys.argv[1]
lock = KindLock(kind_dir); lock.acquire("other")

def write(*events):
    with open(kind_dir + "/metrics.jsonl", "a") as f:
        for e in events:
            f.write(json.dumps(e.to_dict()) + "\\n")

def steps(a, b):
    return [StepEvent(step=i, epoch=0, loss=5.0 - i / 10, parts={}, lr=1e-3, tokens_per_s=100.0, elapsed_s=float(i),
                      eta_s=1.0) for i in range(a, b)]

write(StartEvent(kind="pretrain", task="mlm+nsp", total_steps=20, start_step=0, device="cpu", num_parameters=10,
                 run_dir=kind_dir, run_id="other"), *steps(1, 6))
print("ready", flush=True)
sys.stdin.readline()
write(*steps(6, 9))
print("more", flush=True)
sys.stdin.readline()
"""


async def test_a_run_of_another_process_is_followed_live_and_not_written_over(tmp_path):
    cfg = tiny_config(tmp_path)
    kind = Path(cfg.paths.root) / "transformer/pretrain"
    kind.mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", _OTHER_WRITER, str(kind)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        app = make_app(cfg, load_history=True)
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: app.run_state.status == "external" and app.run_state.step == 5, 20)
            assert f"running in another process (pid {proc.pid}, step 5)" in app.run_state.status_text
            status = app.screen.query_one("#status-line")
            assert await wait_for(pilot, lambda: f"pid {proc.pid}" in widget_text(status), 5)
            await pilot.press("s")  # a second writer is refused, with who holds the directory
            await pilot.pause()
            assert app.job is None
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "more"
            assert await wait_for(pilot, lambda: app.run_state.step == 8, 20)  # follows its metrics.jsonl live
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(timeout=30)
            assert await wait_for(pilot, lambda: app.follower is None and app.run_state.status == "history", 20)
            assert app.run_state.step == 8
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------------------- training microscope
def _microscope_run(t: float) -> list:
    """A pretraining run whose start carries the loss baselines and whose evaluations carry probes and heads."""
    events = _history_run("pretrain", "mlm+nsp", t, 40, parts=True)
    start = next(e for e in events if isinstance(e, StartEvent))
    start.info = {"baselines": {"mlm_loss": 1.2, "nsp_loss": 0.6931}}
    for e in events:
        if isinstance(e, EvalEvent):
            the, paris = (0.6, 0.1) if e.step < 30 else (0.1, 0.7)
            guesses = sorted(
                [{"token": "the", "score": the}, {"token": "paris", "score": paris}], key=lambda g: -g["score"]
            )
            e.probes = [{"text": "The capital of France is [MASK].", "predictions": [guesses]}]
            kinds = ("broad", "sink") if e.step < 30 else ("previous", "sink")
            e.heads = [{"layer": 0, "head": j, "type": k, "score": 0.5} for j, k in enumerate(kinds)]
    return events


async def test_microscope_baselines_heads_and_export_at_80x24(tmp_path):
    cfg = tiny_config(tmp_path)
    root = Path(cfg.paths.root)
    _write_jsonl(root / "transformer" / "pretrain" / "metrics.jsonl", _microscope_run(T_RUNS))
    app = make_app(cfg)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        screen = app.screen
        assert await wait_for(pilot, lambda: "freq-only 1.89" in screen.query_one("#chart-loss").drawn)
        # the eval losses (2.1 - s/40: 1.85 at the first evaluation) are below 1.893 from step 10: marked there
        assert "below @10" in screen.query_one("#chart-loss").drawn
        assert "mlm base 1.20" in screen.query_one("#chart-parts").drawn
        assert screen.has_class("narrow") and screen.has_class("short")
        bottom = screen.query_one("#train-bottom")
        assert bottom.region.bottom <= 23  # above the footer: nothing cut at 80x24
        assert not screen.query_one("#log-pane").display or screen.query_one("#log-pane").region.width == 0
        status = screen.query_one("#status-line")
        assert len(widget_text(status).rstrip()) <= status.region.width
        await pilot.press("m")
        assert await wait_for(pilot, lambda: "heads at step 40" in widget_text(screen.query_one("#microscope-text")))
        text = widget_text(screen.query_one("#microscope-text"))
        assert "previous token" in text and "paris" in text and "the" in text
        assert screen.query_one("#microscope-pane").region.width > 0
        await pilot.press("ctrl+e")
        assert await wait_for(pilot, lambda: list((root / "exports").glob("microscope-*.html")))
        page = next((root / "exports").glob("microscope-*.html")).read_text(encoding="utf-8")
        assert "<script" not in page and "France" in page and "layer 0" in page
        await pilot.press("m")
        assert await wait_for(pilot, lambda: screen.query_one("#probe-pane").region.width > 0)


async def test_checkpoints_screen_scrubs_through_a_runs_checkpoints(trained_root):
    """left/right walk the selected checkpoint's run in step order; each frame (probes, heads, the attention map
    of the sentence in the box) is read by the playground's Predictor in a worker, the loss chart marks the
    step, h moves the map to the next head and ctrl+e saves the frame as a page holding what is shown."""
    app = make_app(trained_root, load_history=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert await wait_for(pilot, lambda: app.current_mode == "checkpoints" and screen.selected is not None, 10)
        assert screen.selected.step == 6
        frame, attn = screen.query_one("#ckpt-frame"), screen.query_one("#ckpt-attn")
        await pilot.press("right")
        assert await wait_for(pilot, lambda: screen.selected.step == 12)
        assert await wait_for(pilot, lambda: "heads at step 12" in widget_text(frame), 30)
        assert "[MASK]" in widget_text(frame) and frame.region.height > 0
        assert "L0 h0" in widget_text(attn) and attn.region.height > 0
        assert "step 12" in screen.query_one("#ckpt-lapse").border_title
        map12 = attn.render().spans  # the map's cells are backgrounds: spans carry the weights' shades
        assert "step 12" in screen.query_one("#ckpt-chart").drawn
        assert screen.query_one("#ckpt-chart").region.height > 0
        await pilot.press("h")
        assert await wait_for(pilot, lambda: "L0 h1" in widget_text(attn))
        await pilot.press("h")
        assert await wait_for(pilot, lambda: "L0 h0" in widget_text(attn))
        await pilot.press("right")  # the last checkpoint: stays
        await pilot.pause()
        assert screen.selected.step == 12
        await pilot.press("left")
        assert await wait_for(pilot, lambda: screen.selected.step == 6 and "heads at step 6" in widget_text(frame), 30)
        assert await wait_for(pilot, lambda: "step 6" in screen.query_one("#ckpt-lapse").border_title)
        assert attn.render().spans != map12  # another checkpoint, another map
        assert "step 6" in screen.query_one("#ckpt-chart").drawn
        # the learner's own sentence
        box = screen.query_one("#ckpt-sentence")
        assert box.value == app.probes[0]
        box.focus()
        box.value = "The dog ran in the park."
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: "park" in widget_text(attn) and "dog" in widget_text(attn), 30)
        # ctrl+e: the frame as a standalone page
        root = Path(trained_root.paths.root) / "exports"
        await pilot.press("ctrl+e")
        assert await wait_for(pilot, lambda: list(root.glob("timelapse-step6-*.html")))
        page = next(root.glob("timelapse-step6-*.html")).read_text(encoding="utf-8")
        assert "<script" not in page and "<svg" in page and "step 6" in page
        assert "park" in page and app.probes[0] in page  # the map's tokens and the probe
        for h in screen.frames[(screen.selected.path, "The dog ran in the park.")]["heads"]:
            assert f"{float(h['score']):.2f}</td>" in page  # the head grid's scores
        await pilot.press("ctrl+e")  # a second export in the same second: a new file, the first kept
        assert await wait_for(pilot, lambda: len(list(root.glob("timelapse-step6-*.html"))) == 2)
        await pilot.press("escape")  # from the list: the time-lapse closes, the metadata is back
        assert await wait_for(pilot, lambda: not screen.query_one("#ckpt-lapse").display)
        assert screen.query_one("#ckpt-info").region.height > 0


async def test_inside_screen_exports_the_example_shown(trained_root):
    """ctrl+e on the Inside screen writes the example's tokens, predictions, head view and model view."""
    app = make_app(trained_root, load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        screen = app.screen
        assert await wait_for(pilot, lambda: screen.result is not None, 60)
        await pilot.press("ctrl+e")
        root = Path(trained_root.paths.root) / "exports"
        assert await wait_for(pilot, lambda: list(root.glob("inside-*.html")))
        page = next(root.glob("inside-*.html")).read_text(encoding="utf-8")
        row = screen.result.examples[screen.example]
        assert "<script" not in page and "Model view" in page and "Head view" in page
        for p in row["predictions"]:
            assert f"{p['label_probability']:.3f}" in page  # the predictions table shown on the screen
        assert row["tokens"][1] in page


# ------------------------------------------------------------------------- damaged checkpoints (issue 27)
def _damaged_copy(trained_root: Config, tmp_path: Path, damage) -> Config:
    """A copy of the trained saved_model whose every pretraining checkpoint has `damage(step_dir)` done to it, so
    whichever one a screen picks is damaged; a config pointing at the copy (max_steps raised so a resume runs)."""
    import shutil

    cfg = trained_root.copy()
    shutil.copytree(trained_root.paths.root, tmp_path / "saved_model")
    cfg.paths.root = str(tmp_path / "saved_model")
    cfg.pretrain.max_steps = 50
    dirs = sorted((tmp_path / "saved_model").glob("transformer/pretrain/*/step-*"))
    assert dirs
    for d in dirs:
        damage(d)
    return cfg


def _zero_heads(d: Path) -> None:
    config = json.loads((d / "config.json").read_text())
    config["num_attention_heads"] = 0
    (d / "config.json").write_text(json.dumps(config))


def _nan_weight(d: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(d / "model.safetensors"))
    name = sorted(k for k in tensors if tensors[k].is_floating_point())[0]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})


def _misshaped_adam_moment(d: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(d / "resume.safetensors"))
    name = sorted(k for k in tensors if k.endswith("exp_avg"))[0]
    tensors[name] = torch.zeros(3)
    save_file(tensors, str(d / "resume.safetensors"), metadata={"format": "pt"})


async def _still_answers_keys(app, pilot, mode: str) -> None:
    """The app did not exit or crash: a number key still switches screens, and the damaged screen comes back."""
    assert app.is_running and app.return_code is None
    app.screen.set_focus(None)  # a focused input would take the digit as text
    await pilot.press("1")
    assert await wait_for(pilot, lambda: app.current_mode == "config", 10)
    key = {"train": "2", "playground": "4", "inside": "5"}[mode]
    await pilot.press(key)
    assert await wait_for(pilot, lambda: app.current_mode == mode, 10)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_zero_heads, "config.json: num_attention_heads: must be > 0, got 0"),
        (_nan_weight, "model.safetensors: tensor bert.embeddings"),
    ],
)
async def test_playground_shows_a_damaged_checkpoint_in_place(trained_root, tmp_path, damage, says):
    cfg = _damaged_copy(trained_root, tmp_path, damage)
    app = make_app(cfg, load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        assert await wait_for(pilot, lambda: app.current_mode == "playground", 10)
        screen = app.screen
        status = screen.query_one("#pg-status")
        assert await wait_for(pilot, lambda: "✗" in widget_text(status), 60), widget_text(status)
        shown = widget_text(status)
        assert says in shown and "internal error" not in shown and "Error:" not in shown, shown
        assert screen.predictor is None and app.screen is screen  # nothing loaded, the same screen
        inp = screen.query_one("#mask-input")  # typing predicts nothing and raises nothing
        inp.focus()
        await pilot.press("end", *" the [MASK]")
        await pilot.pause()
        assert app.screen is screen and says in widget_text(status)
        await _still_answers_keys(app, pilot, "playground")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_zero_heads, "config.json: num_attention_heads: must be > 0, got 0"),
        (_nan_weight, "holds NaN or infinite values"),
    ],
)
async def test_inside_screen_shows_a_damaged_checkpoint_in_place(trained_root, tmp_path, damage, says):
    cfg = _damaged_copy(trained_root, tmp_path, damage)
    app = make_app(cfg, load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        assert await wait_for(pilot, lambda: app.current_mode == "inside", 10)
        screen = app.screen
        status = screen.query_one("#inside-status")
        assert await wait_for(pilot, lambda: "✗" in widget_text(status), 60), widget_text(status)
        shown = widget_text(status)
        assert says in shown and "internal error" not in shown and "Error:" not in shown, shown
        assert screen.result is None and app.screen is screen
        await pilot.press("n")  # a new batch: the same error again, still in place
        assert await wait_for(pilot, lambda: says in widget_text(status), 60), widget_text(status)
        await _still_answers_keys(app, pilot, "inside")


@pytest.mark.slow
async def test_resume_from_the_train_screen_refuses_a_damaged_resume_state_in_place(trained_root, tmp_path):
    cfg = _damaged_copy(trained_root, tmp_path, _misshaped_adam_moment)
    before = {p: p.read_bytes() for p in Path(cfg.paths.root).glob("*/*/*/step-*/*")}
    app = make_app(cfg, load_history=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        assert await wait_for(pilot, lambda: app.current_mode == "train", 10)
        screen = app.screen
        await pilot.press("r")
        assert await wait_for(pilot, lambda: app.job is not None and not app.job_active, 120)
        assert app.run_state.status == "error", app.run_state.status_text
        says = "resume state optimizer.state."
        assert says in app.run_state.status_text and "exp_avg: shape [3], but its parameter is" in (
            app.run_state.status_text
        ), app.run_state.status_text
        assert "Traceback" not in "".join(line.text for line in app.run_state.log)
        assert await wait_for(pilot, lambda: says in widget_text(screen.query_one("#status-line")), 10)
        assert app.screen is screen
        await _still_answers_keys(app, pilot, "train")
    assert {p: p.read_bytes() for p in Path(cfg.paths.root).glob("*/*/*/step-*/*")} == before  # no checkpoint touched
