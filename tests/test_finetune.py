"""Fine-tuning end to end on tiny data: each task trains with falling loss and fills the three fine-tuning
directories; the Predictor and the CLI serve the results; data loaders and their errors."""

import json
import random
from pathlib import Path

import pytest
import torch

from bert2 import checkpoint as ckpt
from bert2.cli import main
from bert2.config import STAGES, Config
from bert2.errors import CheckpointError, DataError, InputError
from bert2.registry import get as get_task
from bert2.training.events import DoneEvent, EvalEvent, StartEvent, StepEvent

FIXTURES = Path(__file__).parent / "fixtures"
SQUAD = FIXTURES / "squad_tiny.json"


def make_cfg(root: Path, task: str, data: str, steps: int = 24, **extra) -> Config:
    sets = {
        "paths.root": f'"{root}"',
        "finetune.task": task,
        "finetune.data": f'"{data}"',
        "finetune.batch_size": 8,
        "finetune.max_steps": steps,
        "finetune.warmup_steps": 2,
        "finetune.learning_rate": 3e-3,
        "finetune.eval_every": steps // 2,
        "finetune.save_every": steps // 3,
        "finetune.max_seq_length": 64,
        "finetune.doc_stride": 16,
        "finetune.max_examples": 32,
        "finetune.max_answer_length": 12,
        "finetune.log_every": 2,
        "runtime.device": "cpu",
        "runtime.num_threads": 1,
    }
    sets.update(extra)
    return Config().with_overrides([f"{k}={v}" for k, v in sets.items()])


def train(task: str, data: str, root: Path, source: Path, **extra):
    from bert2.tasks.finetuning import run_finetuning

    threads = torch.get_num_threads()
    events = []
    try:
        done = run_finetuning(make_cfg(root, task, data, **extra), [events.append], from_checkpoint=source)
    finally:
        torch.set_num_threads(threads)
    return done, events


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_pretrain_checkpoint, sentiment_file):
    """One short fine-tuning run per task, each in its own saved_model root (best/ and final/ keep one each)."""
    out = {}
    for task, data in (("classify", str(sentiment_file)), ("qa", "wiki-qa"), ("qa-span", str(SQUAD))):
        root = tmp_path_factory.mktemp(f"ft-{task}")
        done, events = train(task, data, root, tiny_pretrain_checkpoint)
        out[task] = (root, done, events)
    return out


# ---------------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("task", ["classify", "qa", "qa-span"])
def test_each_task_trains_with_falling_loss_and_writes_three_dirs(runs, task):
    root, done, events = runs[task]
    assert isinstance(done, DoneEvent) and done.reason == "completed" and done.step == 24
    losses = [e.loss for e in events if isinstance(e, StepEvent)]
    assert len(losses) == 12 and all(map(lambda v: v == v, losses))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    start = next(e for e in events if isinstance(e, StartEvent))
    assert start.kind == "finetune" and start.task == task
    cfg = make_cfg(root, task, "x")
    for stage in STAGES:
        dirs = ckpt.step_dirs(cfg.stage_dir("finetune", stage, create=False))
        assert dirs and all(ckpt.is_complete(d) for d in dirs), stage
    final = ckpt.latest_in(cfg.stage_dir("finetune", "final", create=False))
    meta = ckpt.read_json(final / "config.json")["bert2"]
    assert meta["task"] == task and meta["source_checkpoint"]
    assert ckpt.read_state(final)["task"] == task
    assert (ckpt.kind_dir(root, "finetune") / "metrics.jsonl").is_file()
    for e in events:
        if isinstance(e, EvalEvent):
            assert e.metrics and all(isinstance(v, float) for v in e.metrics.values())
    report = json.loads((final / "metrics.json").read_text())
    if task == "classify":
        assert meta["labels"] == ["neg", "pos"]
        assert len(report["confusion_matrix"]) == 2 and report["labels"] == ["neg", "pos"]
        assert {"accuracy", "f1_weighted", "precision/pos", "recall/neg"} <= set(done.final_metrics)
    elif task == "qa":
        assert {"bleu", "rouge1", "rouge2", "rougeL", "exact_match", "loss"} <= set(done.final_metrics)
        assert report["samples"] and "prediction" in report["samples"][0]
    else:
        assert {"exact_match", "f1", "loss"} <= set(done.final_metrics)


def test_resume_continues_the_same_task_only(tmp_path, tiny_pretrain_checkpoint, sentiment_file):
    from bert2.tasks.finetuning import run_finetuning

    threads = torch.get_num_threads()
    try:
        cfg = make_cfg(tmp_path, "classify", str(sentiment_file), steps=6)
        run_finetuning(cfg, [], from_checkpoint=tiny_pretrain_checkpoint)
        events = []
        done = run_finetuning(
            make_cfg(tmp_path, "classify", str(sentiment_file), steps=9), [events.append], resume=True
        )
        assert next(e for e in events if isinstance(e, StartEvent)).start_step == 6 and done.step == 9
        with pytest.raises(CheckpointError, match="classify"):
            run_finetuning(make_cfg(tmp_path, "qa", "wiki-qa", steps=12), [], resume=True)
        with pytest.raises(CheckpointError, match="no pretrain checkpoint"):
            run_finetuning(make_cfg(tmp_path / "empty", "classify", str(sentiment_file)), [])
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------- inference
def final_of(runs, task) -> Path:
    root = runs[task][0]
    return ckpt.latest_in(ckpt.kind_dir(root, "finetune") / "final")


def test_predictor_serves_each_task_and_refuses_the_wrong_one(runs, tiny_pretrain_checkpoint):
    from bert2.inference import Predictor

    clf = Predictor.load(final_of(runs, "classify"))
    out = clf.classify("a wonderful great film")
    assert set(out) == {"label", "score", "scores"} and set(out["scores"]) == {"neg", "pos"}
    assert out["scores"][out["label"]] == out["score"] and sum(out["scores"].values()) == pytest.approx(1, abs=1e-4)
    with pytest.raises(InputError, match="classify checkpoint"):
        clf.answer("What?", "Something.")
    with pytest.raises(InputError, match="masked-language-model"):
        clf.fill_mask("The [MASK] river.")
    tokens, maps = clf.attentions("a great film")
    assert maps.shape[0] == 2 and maps.shape[-1] == len(tokens)

    gen = Predictor.load(final_of(runs, "qa"))
    ans = gen.answer("What is Paris?", "Paris is the capital and largest city of France.")
    assert set(ans) == {"answer", "score"} and 0.0 <= ans["score"] <= 1.0
    answer = gen.answer("What is Paris?", "Paris is a city.", num_beams=1)
    assert isinstance(answer["answer"], str) and 0.0 <= answer["score"] <= 1.0
    with pytest.raises(InputError, match="classification"):
        gen.classify("text")

    span = Predictor.load(final_of(runs, "qa-span"))
    context = json.loads(SQUAD.read_text())["data"][3]["paragraphs"][0]["context"]  # longer than one window
    ans = span.answer("Which pigment captures the energy of sunlight?", context)
    assert set(ans) == {"answer", "score", "start", "end"}
    assert ans["start"] >= 0 and context[ans["start"] : ans["end"]] == ans["answer"]
    for bad in ("", "   ", "?!"):
        with pytest.raises(InputError):
            span.answer(bad, context)
        with pytest.raises(InputError):
            span.answer("What?", bad)

    pre = Predictor.load(tiny_pretrain_checkpoint)
    assert pre.similarity("the river", "the river") == pytest.approx(1.0, abs=1e-5)
    s = pre.similarity("a wonderful film", "the capital of France")
    assert -1.0 <= s <= 1.0
    assert -1.0 <= clf.similarity("a", "b") <= 1.0  # any checkpoint serves similarity


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_inference_json_shapes(runs, tiny_pretrain_checkpoint, capsys):
    code, out, _ = run_cli(
        capsys, "inference", "classify", "a wonderful film", "--json", "--set", f'paths.root="{runs["classify"][0]}"'
    )  # default: the root's classify run
    assert code == 0 and set(json.loads(out)) == {"label", "score", "scores"}
    code, out, _ = run_cli(
        capsys,
        "inference",
        "qa",
        "--question",
        "What is Paris?",
        "--context",
        "Paris is the capital of France.",
        "--checkpoint",
        str(final_of(runs, "qa")),
        "--json",
    )
    assert code == 0 and set(json.loads(out)) == {"answer", "score"}
    code, out, _ = run_cli(
        capsys,
        "inference",
        "qa",
        "--question",
        "What is the capital of France?",
        "--context",
        "Paris is the capital of France.",
        "--json",
        "--set",
        f'paths.root="{runs["qa-span"][0]}"',
    )
    result = json.loads(out)
    assert code == 0 and set(result) == {"answer", "score", "start", "end"}
    code, out, _ = run_cli(
        capsys, "inference", "similarity", "a cat", "a dog", "--json", "--checkpoint", str(tiny_pretrain_checkpoint)
    )
    assert code == 0 and set(json.loads(out)) == {"similarity"}
    code, out, _ = run_cli(
        capsys, "inference", "classify", "a wonderful film", "--checkpoint", str(final_of(runs, "classify"))
    )
    assert code == 0 and "label:" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["inference", "qa", "--question", "", "--context", "Paris is in France."], "question is empty"),
        (["inference", "qa", "--question", "Where?", "--context", " ... "], "context has no words"),
        (["inference", "classify", "   "], "text is empty"),
        (["inference", "classify", "hello", "--checkpoint", "/no/such/checkpoint"], "checkpoint not found"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_2(runs, capsys, argv, message):
    code, out, err = run_cli(capsys, *argv, "--set", f'paths.root="{runs["qa-span"][0]}"')
    assert code == 2 and message in err and err.count("\n") == 1 and not out


def test_cli_wrong_task_and_missing_default_are_exit_code_2(runs, tmp_path, capsys):
    code, _, err = run_cli(capsys, "inference", "classify", "hello", "--checkpoint", str(final_of(runs, "qa")))
    assert code == 2 and "qa checkpoint" in err
    code, _, err = run_cli(capsys, "inference", "classify", "hello", "--set", f'paths.root="{runs["qa"][0]}"')
    assert code == 2 and "no classify checkpoint" in err and "holds qa" in err
    code, _, err = run_cli(capsys, "inference", "similarity", "a", "b", "--set", f'paths.root="{tmp_path}"')
    assert code == 2 and "no pretrain checkpoint" in err


def test_cli_finetune_command(tmp_path, tiny_pretrain_checkpoint, sentiment_file, capsys):
    threads = torch.get_num_threads()
    try:
        code, out, _ = run_cli(
            capsys,
            "finetune",
            "--task",
            "classify",
            "--data",
            str(sentiment_file),
            "--from",
            str(tiny_pretrain_checkpoint),
            "--max-steps",
            "4",
            "--quiet",
            "--report-to",
            "csv",
            "--set",
            f'paths.root="{tmp_path}"',
            "--set",
            "finetune.batch_size=8",
            "--set",
            "runtime.num_threads=1",
            "--set",
            "finetune.max_seq_length=32",
            "--set",
            "finetune.doc_stride=8",
        )
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out)
    assert code == 0 and result["reason"] == "completed" and result["step"] == 4 and "accuracy" in result["metrics"]
    rows = (tmp_path / "bert" / "finetuning" / "metrics.csv").read_text().splitlines()  # beside metrics.jsonl
    assert rows[0] == "run,time,step,event,name,value" and any(",eval,accuracy," in r for r in rows)
    code, _, err = run_cli(
        capsys,
        "finetune",
        "--task",
        "qa",
        "--data",
        "wiki-topic",
        "--from",
        str(tiny_pretrain_checkpoint),
        "--set",
        f'paths.root="{tmp_path}"',
    )
    assert code == 2 and "classify dataset" in err  # another task's built-in is an error, before any training


# ---------------------------------------------------------------------------------------------------- data
def test_builtin_datasets():
    from bert2.registry import get as get_task

    imdb = get_task("classify").data("imdb-offline", max_examples=200)
    assert imdb.labels == ["negative", "positive"] and len(imdb.train) == 200
    assert not any("<br" in ex["text"].lower() for ex in imdb.train + imdb.validation)
    assert {ex["label"] for ex in imdb.train} == {0, 1}
    topic = get_task("classify").data("wiki-topic")
    assert len(topic.labels) == 11 and "Uncategorized" not in topic.labels
    assert len(topic.validation) <= 1000 and len(topic.train) > 7000
    qa = get_task("qa").data("wiki-qa", max_examples=10)
    assert all(ex["question"].startswith("What is ") and ex["answer"] and ex["context"] for ex in qa.train)
    again = get_task("qa").data("wiki-qa", max_examples=10)
    assert again.train == qa.train  # deterministic split and order


def test_data_name_resolution():
    from bert2.registry import get as get_task

    assert get_task("classify").resolve_data_name("imdb-offline") == "imdb-offline"
    assert get_task("qa").resolve_data_name("imdb-offline") == "wiki-qa"  # the config default belongs to classify
    assert get_task("qa-span").resolve_data_name("") == "wiki-span"
    with pytest.raises(DataError, match="classify dataset"):
        get_task("qa").resolve_data_name("wiki-topic")
    with pytest.raises(DataError, match="qa dataset"):
        get_task("classify").resolve_data_name("wiki-qa")


@pytest.mark.parametrize(
    "task, name, hint",
    [("classify", "imdb", "imdb-offline"), ("qa", "ms_marco", "wiki-qa"), ("qa-span", "squad", "SQuAD-format")],
)
def test_hub_datasets_fail_fast_offline(monkeypatch, task, name, hint):
    import datasets

    from bert2.registry import get as get_task

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    seen: list[bool] = []

    def spy(*args, **kwargs):  # records whether datasets was in offline mode (no ~23 s of retries)
        seen.append(bool(datasets.config.HF_HUB_OFFLINE))
        raise ConnectionError("offline (test spy)")

    monkeypatch.setattr(datasets, "load_dataset", spy)
    with pytest.raises(DataError, match="hub") as info:
        get_task(task).data(name)
    assert hint in str(info.value) and seen and all(seen)


def test_local_file_errors(tmp_path):
    from bert2.registry import get as get_task

    with pytest.raises(DataError, match="not found"):
        get_task("classify").data(str(tmp_path / "missing.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\nhello,a\nworld,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="label"):
        get_task("classify").data(str(bad))
    one = tmp_path / "one.csv"
    one.write_text("text,label\nhello,a\nworld,a\n", encoding="utf-8")
    with pytest.raises(DataError, match="single label"):
        get_task("classify").data(str(one))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q", "context": "c", "answer": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        get_task("qa").data(str(broken))
    with pytest.raises(DataError, match="unknown classify dataset"):
        get_task("classify").data("no-such-builtin")


def test_span_features_use_doc_stride_and_point_at_the_answer(tiny_pretrain_checkpoint):
    from bert2.data.tokenizer import load_tokenizer
    from bert2.tasks.qa_span import featurize_span, read_squad

    tok = load_tokenizer(str(tiny_pretrain_checkpoint))
    examples = [ex for ex in read_squad(SQUAD) if ex["context"].startswith("Photosynthesis")]
    feats = featurize_span(examples, tok, max_length=48, doc_stride=16, keep_offsets=True)
    per_example = {}
    for f in feats:
        per_example.setdefault(f["example_index"], []).append(f)
        assert len(f["input_ids"]) <= 48
    assert all(len(v) > 1 for v in per_example.values())  # the paragraph needs several windows
    for i, ex in enumerate(examples):
        hits = [f for f in per_example[i] if f["start_positions"] > 0]
        assert hits, ex["question"]  # some window contains the answer
        for f in hits:
            a, b = f["offsets"][f["start_positions"]][0], f["offsets"][f["end_positions"]][1]
            assert ex["context"][a:b] == ex["answers"]["text"][0]


def test_cli_full_pretrains_then_finetunes(tmp_path, sentiment_file, capsys):
    threads = torch.get_num_threads()
    tiny = [
        "model.hidden_size=32",
        "model.num_attention_heads=2",
        "model.intermediate_size=64",
        "model.vocab_size=600",
        "data.max_documents=40",
        "data.max_seq_length=64",
        "pretrain.batch_size=8",
        "pretrain.eval_batches=1",
        "runtime.num_threads=1",
        "finetune.batch_size=8",
        "finetune.max_seq_length=32",
        "finetune.doc_stride=8",
        f'paths.root="{tmp_path / "saved"}"',
        f'data.cache_dir="{tmp_path / "cache"}"',
    ]
    try:
        code, out, err = run_cli(
            capsys,
            "full",
            "--task",
            "classify",
            "--data",
            str(sentiment_file),
            "--pretrain-steps",
            "3",
            "--finetune-steps",
            "3",
            "--quiet",
            *[a for s in tiny for a in ("--set", s)],
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    result = json.loads(out)
    assert result["reason"] == "completed"
    assert 0 < result["estimated_s"] < 600  # both steps timed at this tiny shape: seconds, not minutes
    final = ckpt.latest_in(tmp_path / "saved" / "bert" / "finetuning" / "final")
    meta = ckpt.read_json(final / "config.json")["bert2"]
    assert meta["task"] == "classify" and "transformer/pretrain" in meta["source_checkpoint"]


@pytest.mark.parametrize("task,data", [("classify", None), ("qa", "wiki-qa")])
def test_learning_rate_zero_is_the_tasks_recipe_and_is_recorded(
    tmp_path, tiny_pretrain_checkpoint, sentiment_file, task, data
):
    done, events = train(
        task,
        data or str(sentiment_file),
        tmp_path,
        tiny_pretrain_checkpoint,
        steps=4,
        **{"finetune.learning_rate": 0, "finetune.warmup_steps": 0, "finetune.log_every": 1},
    )
    assert done.reason == "completed"
    expected = get_task(task).learning_rate
    assert max(e.lr for e in events if isinstance(e, StepEvent)) == pytest.approx(expected)
    assert any(
        f"learning rate {expected:g}: the {task} task's measured rate" in e.message
        for e in events
        if hasattr(e, "message")
    )
    final = ckpt.latest_in(tmp_path / "bert" / "finetuning" / "final")
    assert ckpt.read_json(final / "trainer_state.json")["run_config"]["finetune"]["learning_rate"] == expected


def test_the_recipe_comes_from_the_data_not_its_name(tmp_path, tiny_pretrain_checkpoint):
    """Length, epochs, warm-up and rate are chosen from the data's size and text lengths: the built-in IMDB reviews
    and a user's CSV of the same reviews get the same recipe and the same held-out rows; settings the user chose
    are kept; a small set gets more passes, capped."""
    import csv

    from bert2.checkpoint.model_files import read_tokenizer
    from bert2.tasks.recipe import MAX_EPOCHS, choose

    tok = read_tokenizer(tiny_pretrain_checkpoint)
    task = get_task("classify")
    builtin = task.data("imdb-offline")
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for ex in reversed(builtin.validation + builtin.train):  # a user's own file of the reviews, in its own order
            writer.writerow([ex["text"], ["negative", "positive"][ex["label"]]])
    mine = task.data(str(path))
    assert {ex["text"] for ex in mine.validation} == {ex["text"] for ex in builtin.validation}  # the same rows
    assert "by a hash of each text" in mine.held_out_rule and len(mine.held_out_rows) == len(mine.validation)
    mine.train = mine.train[:3000]  # a smaller set: more passes, by the same rule

    EXAMPLES_SEEN = task.examples_seen
    cfg = Config()
    a = choose(task, cfg, builtin, tok, 512)
    assert a.max_seq_length == 256 and a.epochs == pytest.approx(EXAMPLES_SEEN / len(builtin.train), rel=1e-3)
    assert a.max_steps == -(-EXAMPLES_SEEN // 32)  # about 27,000 examples: 844 steps of 32
    b = choose(task, cfg, mine, tok, 512)
    assert b.epochs == pytest.approx(min(EXAMPLES_SEEN / len(mine.train), MAX_EPOCHS), rel=1e-3)
    assert b.warmup_steps == round(0.1 * b.max_steps) and b.learning_rate == task.learning_rate
    short = task.data("wiki-topic")
    c = choose(task, cfg, short, tok, 512)
    assert c.max_seq_length == min(256, max(64, -(-c.length_p90 // 32) * 32))  # what 90% of the extracts fit in
    assert c.length_p90 < a.length_p90
    chosen = Config().with_overrides(
        ["finetune.max_steps=99", "finetune.max_seq_length=100", "finetune.warmup_steps=7"]
    )
    d = choose(task, chosen, builtin, tok, 512)
    assert (d.max_steps, d.max_seq_length, d.warmup_steps) == (99, 100, 7)
    assert any("finetune.max_steps" in w for w in d.why)


# ---------------------------------------------------------------------------------------------------- recipe
def test_head_tail_cut_is_exactly_full_tokenisation_cut(tiny_pretrain_checkpoint):
    from bert2.data.tokenizer import load_tokenizer
    from bert2.tasks.classify import featurize_classification, head_tail

    tok = load_tokenizer(str(tiny_pretrain_checkpoint))
    rng = random.Random(0)
    words = "the river flows north through a wide valley where people farm wheat and barley".split()
    texts = [
        " ".join(rng.choice(words) for _ in range(n)) + (" END" if n % 2 else "")
        for n in (3, 20, 60, 61, 200, 333, 1500)
    ]
    examples = [{"text": t, "label": 0} for t in texts]
    for truncation in ("head+tail", "head"):
        for max_length in (16, 48):
            feats = featurize_classification(examples, tok, max_length, truncation)
            for f, t in zip(feats, texts):
                full = tok(t, add_special_tokens=False)["input_ids"]
                expect = [tok.cls_token_id, *head_tail(full, max_length - 2, truncation), tok.sep_token_id]
                assert f["input_ids"].tolist() == expect
                assert len(expect) <= max_length
    long = list(range(100))
    assert head_tail(long, 20) == list(range(5)) + list(range(85, 100))  # a quarter from the start, the rest the end
    assert head_tail(long, 20, "head") == list(range(20)) and head_tail(long[:7], 20) == long[:7]


def test_wiki_span_answers_are_spans_close_to_the_description():
    from bert2.metrics import token_f1
    from bert2.registry import get as get_task
    from bert2.tasks.qa_span import SPAN_MIN_F1

    data = get_task("qa-span").data("wiki-span")
    assert len(data.train) > 6000 and 0 < len(data.validation) <= 1000
    for ex in data.train[:500] + data.validation:
        (text,), (start,) = ex["answers"]["text"], ex["answers"]["answer_start"]
        assert ex["context"][start : start + len(text)] == text and text.strip()
        assert ex["question"].startswith("What is ")
        assert token_f1(text, ex["description"]) >= SPAN_MIN_F1 - 1e-9


def test_from_scratch_loads_no_weights_and_refuses_resume(tmp_path, tiny_pretrain_checkpoint, sentiment_file, capsys):
    from bert2.errors import TrainingError
    from bert2.tasks.finetuning import run_finetuning

    threads = torch.get_num_threads()
    try:
        events = []
        cfg = make_cfg(
            tmp_path,
            "classify",
            str(sentiment_file),
            steps=2,
            **{"finetune.from_checkpoint": f'"{tiny_pretrain_checkpoint}"'},
        )
        run_finetuning(cfg, [events.append], from_checkpoint="scratch")
        logs = " ".join(getattr(e, "message", "") for e in events)
        assert "from scratch" in logs and "initialised" not in logs
        with pytest.raises(TrainingError, match="scratch"):
            run_finetuning(cfg, [], from_checkpoint="scratch", resume=True)
    finally:
        torch.set_num_threads(threads)
    code, _, err = run_cli(capsys, "finetune", "--from", "scratch", "--resume", "--set", f'paths.root="{tmp_path}"')
    assert code == 2 and "--from scratch" in err and "--resume" in err


def test_export_refuses_a_mean_pooled_classifier(runs, tmp_path):
    from bert2.checkpoint.hf import export_hf

    with pytest.raises(CheckpointError, match="finetune.pooling=cls"):
        export_hf(final_of(runs, "classify"), tmp_path / "out")


def test_qa_files_without_answers_or_with_answers_outside_the_context(tmp_path):
    from bert2.registry import get as get_task

    empty = tmp_path / "noanswers.jsonl"
    empty.write_text(
        "".join(json.dumps({"question": f"q{i}?", "context": "c", "answer": ""}) + "\n" for i in range(4)),
        encoding="utf-8",
    )
    with pytest.raises(DataError, match="no record has both a question and an answer"):
        get_task("qa").data(str(empty))
    some = tmp_path / "some.jsonl"
    some.write_text(
        "".join(
            json.dumps({"question": f"q{i}?", "context": "c", "answer": "a" if i % 2 else ""}) + "\n" for i in range(8)
        ),
        encoding="utf-8",
    )
    assert "4 records left out" in " ".join(get_task("qa").data(str(some)).notes)
    rows = [
        {
            "id": str(i),
            "question": "Where?",
            "context": f"It lies in Paris {i}.",
            "answers": {"text": ["Paris" if i % 4 else "Rome"], "answer_start": [11]},
        }
        for i in range(8)
    ]
    span = tmp_path / "span.jsonl"
    span.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = get_task("qa-span").data(str(span))
    assert len(data.train) + len(data.validation) == 6 and "2 questions left out" in data.notes[0]
    assert "id 0" in data.notes[0]  # names the first one, so the user can find it
    for r in rows:
        r["answers"]["text"] = ["Rome"]
    span.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match="answer text occurs in its context"):
        get_task("qa-span").data(str(span))
