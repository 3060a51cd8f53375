"""Knowledge distillation (bert2/compress/distill.py): the losses on hand examples, the layer maps, a student
initialised from its teacher, pretraining and classifier students trained by the generic Trainer and saved as
ordinary checkpoints of their kind, the teacher left untouched, and the CLI's errors."""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import english_documents

from bert2 import checkpoint as ckpt
from bert2.checkpoint.model_files import load_checkpoint, read_weights
from bert2.cli import main
from bert2.compress.distill import (
    attention_loss,
    attention_pairs,
    build_distillation,
    comparison_rows,
    hidden_state_loss,
    init_from_teacher,
    init_layer_map,
    soft_target_loss,
    student_config,
)
from bert2.config import Config, ConfigError, DistillConfig, field_docs
from bert2.training.events import CheckpointEvent, DoneEvent, StartEvent, StepEvent


# ------------------------------------------------------------------------------------------------------ losses
def test_soft_target_loss_is_zero_for_equal_logits_and_the_kl_formula_on_a_hand_example():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    assert soft_target_loss(logits, logits.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-7)
    # Teacher [ln 3, 0] at T = 1 is (3/4, 1/4); the student's [0, 0] is (1/2, 1/2).
    teacher, student = torch.tensor([[math.log(3.0), 0.0]]), torch.zeros(1, 2)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert soft_target_loss(student, teacher, 1.0).item() == pytest.approx(kl, rel=1e-5)
    # At T = 2 the teacher is softened to softmax([ln 3 / 2, 0]) = (sqrt 3, 1) / (sqrt 3 + 1), and KL is scaled by 4.
    p = math.sqrt(3.0) / (math.sqrt(3.0) + 1.0)
    kl2 = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    assert soft_target_loss(student, teacher, 2.0).item() == pytest.approx(4 * kl2, rel=1e-5)
    # "sum" over rows is "mean" times the number of rows; the gradient points from the student to the teacher.
    two = torch.zeros(2, 2, requires_grad=True)
    both = teacher.repeat(2, 1)
    assert soft_target_loss(two, both, 1.0, "sum").item() == pytest.approx(2 * kl, rel=1e-5)
    soft_target_loss(two, both, 1.0).backward()
    assert two.grad[0, 0] < 0 < two.grad[0, 1]  # raise the logit the teacher prefers


def test_hidden_and_attention_losses():
    states = [torch.randn(2, 5, 8) for _ in range(3)]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert hidden_state_loss(states, states, [(0, 0), (2, 2)], None, mask).item() == 0.0
    # Padding is left out: a difference only at padded positions costs nothing.
    other = [s.clone() for s in states]
    other[2][0, 3:] += 5.0
    assert hidden_state_loss(states, other, [(2, 2)], None, mask).item() == 0.0
    other[2][0, 0] += 1.0
    assert hidden_state_loss(states, other, [(2, 2)], None, mask).item() == pytest.approx(1.0 / 8)
    # A narrower student is compared through a projection into the teacher's width.
    narrow = [torch.randn(2, 5, 4) for _ in range(3)]
    assert hidden_state_loss(narrow, states, [(1, 2)], torch.nn.Linear(4, 8), mask).dim() == 0

    maps = torch.softmax(torch.randn(2, 2, 5, 5), -1)
    assert attention_loss([maps], [maps], [(0, 0)], mask).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.full_like(maps, 0.2)
    assert attention_loss([uniform], [maps], [(0, 0)], mask).item() > 0


def test_layer_maps_follow_distilbert_and_tinybert():
    assert init_layer_map(6, 12) == [0, 2, 4, 6, 8, 10]  # DistilBERT: every other layer
    assert init_layer_map(1, 2) == [0]
    assert attention_pairs(3, 6) == [(0, 1), (1, 3), (2, 5)]  # the last layer of each block
    from bert2.compress.distill import hidden_state_pairs

    assert hidden_state_pairs(1, 2) == [(0, 0), (1, 2)]  # embeddings to embeddings, last layer to last


# ------------------------------------------------------------------------------------------------ the student
def test_student_shape_and_initialisation_from_the_teacher(tiny_pretrain_checkpoint):
    teacher = load_checkpoint(tiny_pretrain_checkpoint).model
    from bert2.model import BertForPreTraining

    s_cfg = student_config(teacher.config, DistillConfig())
    assert (s_cfg.num_hidden_layers, s_cfg.hidden_size, s_cfg.num_attention_heads) == (1, 32, 2)
    assert s_cfg.vocab_size == teacher.config.vocab_size and s_cfg.intermediate_size == 64
    student = BertForPreTraining(s_cfg)
    report = init_from_teacher(student, teacher, [1])  # student layer 0 <- teacher layer 1
    t, s = teacher.state_dict(), student.state_dict()
    for name in (
        "bert.embeddings.word_embeddings.weight",
        "mlm.transform.weight",
        "nsp.weight",
        "bert.pooler.dense.weight",
    ):
        assert torch.equal(s[name], t[name]), name
    assert torch.equal(s["bert.encoder.layers.0.attention.qkv.weight"], t["bert.encoder.layers.1.attention.qkv.weight"])
    assert not report.missing and all(n.startswith("bert.encoder.layers.0.") for n in report.unused)
    # Another width: only the width-free biases fit (the vocabulary's prior, NSP's); the rest stays random.
    narrow = BertForPreTraining(student_config(teacher.config, DistillConfig(student_hidden_size=16)))
    report = init_from_teacher(narrow, teacher, [0])
    assert "bert.embeddings.word_embeddings.weight" in report.missing and report.loaded == ["mlm.bias", "nsp.bias"]
    with pytest.raises(ConfigError, match="student_heads"):
        student_config(teacher.config, DistillConfig(student_hidden_size=30, student_heads=4))


# ------------------------------------------------------------------------------------------------ pretraining
def distill_cfg(root: Path, teacher: Path, corpus: Path, *extra: str) -> Config:
    sets = [
        f'paths.root="{root}"',
        f'distill.teacher="{teacher}"',
        f'data.corpus="{corpus}"',
        f'data.cache_dir="{root.parent / "cache"}"',
        "data.max_seq_length=32",
        "distill.batch_size=8",
        "distill.max_steps=16",
        "distill.warmup_steps=1",
        "distill.learning_rate=3e-3",
        "distill.log_every=1",
        "distill.eval_every=8",
        "distill.save_every=8",
        "distill.eval_batches=2",
        "runtime.num_threads=1",
        "runtime.device=cpu",
    ]
    return Config().with_overrides(sets + list(extra))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "english.txt"
    path.write_text("\n\n".join("\n".join(doc) for doc in english_documents(120)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def opinionated_teacher(tmp_path_factory, tiny_pretrain_checkpoint) -> Path:
    """The tiny random checkpoint with a strong prior over the vocabulary (mlm.bias): a random encoder predicts
    almost uniformly, and a uniform teacher has nothing to teach."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("teacher") / "step-00000001"
    path.mkdir()
    for f in Path(tiny_pretrain_checkpoint).iterdir():
        (path / f.name).write_bytes(f.read_bytes())
    weights = read_weights(path)
    weights["mlm.bias"] = torch.randn(weights["mlm.bias"].shape, generator=torch.Generator().manual_seed(0)) * 2
    save_file(weights, str(path / ckpt.WEIGHTS_FILE), metadata={"format": "pt"})
    return path


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, opinionated_teacher, corpus):
    """One pretraining distillation with every loss term (soft, hidden, attention), watched from inside; a random
    student, so that the soft targets have something to teach it."""
    root = tmp_path_factory.mktemp("distilled") / "saved_model"
    cfg = distill_cfg(
        root,
        opinionated_teacher,
        corpus,
        "distill.attention_weight=1",
        "distill.student_init=random",
        "distill.learning_rate=1e-2",
    )
    events = []
    threads = torch.get_num_threads()
    try:
        run = build_distillation(cfg, [events.append], probes=())
        teacher_before = {k: v.clone() for k, v in run.teacher.state_dict().items()}
        in_optimizer = {id(p) for g in run.trainer.optimizer.param_groups for p in g["params"]}
        done = run.finish(run.trainer.fit())
    finally:
        torch.set_num_threads(threads)
    return root, cfg, run, done, events, teacher_before, in_optimizer


def test_distillation_loss_falls_and_every_term_is_reported(distilled):
    _, _, _, done, events, _, _ = distilled
    assert done.reason == "completed" and done.step == 16
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert {"mlm", "nsp", "soft", "hidden", "attention"} <= set(steps[0].parts)
    losses = [e.loss for e in steps]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4, losses
    soft = [e.parts["soft"] for e in steps]
    assert sum(soft[-4:]) < sum(soft[:4]), soft
    assert isinstance(events[-1], DoneEvent) and sum(isinstance(e, DoneEvent) for e in events) == 1
    m = done.final_metrics
    assert {"teacher/mlm_accuracy", "student/mlm_accuracy", "teacher/examples_per_s", "student/examples_per_s"} <= set(
        m
    )
    assert m["student/parameters"] < m["teacher/parameters"] and m["student/layers"] == 1
    start = next(e for e in events if isinstance(e, StartEvent))
    assert start.kind == "pretrain" and "distilled from" in start.info["init"]


def test_teacher_is_untouched_and_not_in_the_student(distilled, opinionated_teacher):
    root, _, run, _, _, teacher_before, in_optimizer = distilled
    after = run.teacher.state_dict()
    assert all(torch.equal(teacher_before[k], after[k]) for k in teacher_before)
    assert not any(p.requires_grad for p in run.teacher.parameters())
    assert not any(id(p) in in_optimizer for p in run.teacher.parameters())
    final = ckpt.latest_in(Path(root) / "transformer/pretrain/final")
    weights = read_weights(final)
    assert set(weights) == set(run.trainer.raw_model.state_dict())  # the student's tensors, nothing else
    assert not any(k.startswith("bert.encoder.layers.1.") for k in weights)
    assert torch.equal(read_weights(opinionated_teacher)["mlm.bias"], teacher_before["mlm.bias"])


def test_student_is_an_ordinary_pretraining_checkpoint(distilled, opinionated_teacher, capsys, tmp_path):
    root, cfg, _, _, _, _, _ = distilled
    for stage in ("checkpoint", "best", "final"):
        assert ckpt.latest_in(Path(root) / "transformer/pretrain" / stage) is not None, stage
    final = ckpt.latest_in(Path(root) / "transformer/pretrain/final")
    meta = ckpt.read_json(final / "config.json")["bert2"]
    assert meta["task"] == "mlm+nsp" and meta["distilled_from"] == str(opinionated_teacher.resolve())
    assert meta["distillation"]["temperature"] == 2.0 and meta["distillation"]["attention_weight"] == 1.0
    assert main(["inference", "mask", "The capital of France is [MASK].", "--checkpoint", str(final), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["checkpoints", "--json", "--set", f'paths.root="{root}"']) == 0
    infos = json.loads(capsys.readouterr().out)
    assert any(i["note"].startswith("distilled from") for i in infos)
    from bert2.checkpoint.hf import export_hf
    from bert2.checkpoint.model_files import build_model
    from bert2.model import load_pretrained

    assert export_hf(final, tmp_path / "hf").path.is_dir()
    loaded = load_checkpoint(final)  # what `bert2 finetune --from` does with it
    head = build_model("classify", loaded.model_cfg, {"labels": ["a", "b"], "pooling": "mean"})
    assert load_pretrained(head, read_weights(final)).loaded
    # The table: the teacher and this student; a --no-teacher run of the same teacher would add a third row.
    rows = comparison_rows(root)
    assert [r["model"] for r in rows] == ["teacher", "student (distilled)"]


def test_no_teacher_baseline_and_a_narrow_student_with_a_projection(tmp_path, tiny_pretrain_checkpoint, corpus, capsys):
    root = tmp_path / "saved_model"
    base = [
        f'paths.root="{root}"',
        f'data.corpus="{corpus}"',
        f'data.cache_dir="{tmp_path / "cache"}"',
        "data.max_seq_length=32",
        "distill.batch_size=8",
        "distill.eval_batches=1",
        "runtime.num_threads=1",
        "runtime.device=cpu",
    ]
    threads = torch.get_num_threads()
    try:
        args = ["distill", "--teacher", str(tiny_pretrain_checkpoint), "--max-steps", "3", "--json"]
        assert main(args + sum((["--set", s] for s in base), [])) == 0
        first = json.loads(capsys.readouterr().out)
        assert main(args + ["--no-teacher"] + sum((["--set", s] for s in base), [])) == 0
        out = json.loads(capsys.readouterr().out)
        assert [r["model"] for r in out["table"]] == [
            "teacher",
            "student (no-teacher)",
            "student (distilled, earlier run)",
        ]
        assert first["metrics"]["student/parameters"] == out["metrics"]["student/parameters"]
        # --resume continues the latest distilled checkpoint, with the teacher and loss it names.
        assert main(["distill", "--resume", "--max-steps", "5", "--json"] + sum((["--set", s] for s in base), [])) == 0
        resumed = json.loads(capsys.readouterr().out)
        assert resumed["step"] == 5 and [r["model"] for r in resumed["table"]][1] == "student (no-teacher)"
        # A narrower student: random encoder, hidden states compared through a learned projection (not saved).
        cfg = Config().with_overrides(
            base
            + [
                f'distill.teacher="{tiny_pretrain_checkpoint}"',
                "distill.max_steps=2",
                "distill.student_hidden_size=16",
                f'paths.root="{tmp_path / "narrow"}"',
            ]
        )
        run = build_distillation(cfg, [], probes=())
        assert run.trainer.task.projection is not None
        projection = {id(p) for p in run.trainer.task.projection.parameters()}
        assert projection <= {id(p) for g in run.trainer.optimizer.param_groups for p in g["params"]}
        done = run.finish(run.trainer.fit())
        assert done.reason == "completed" and done.final_metrics["student/hidden_size"] == 16
        final = ckpt.latest_in(tmp_path / "narrow/transformer/pretrain/final")
        assert not any("projection" in k for k in read_weights(final))
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ classifier
def test_classifier_student_from_a_classify_teacher(tmp_path, tiny_pretrain_checkpoint, sentiment_file):
    from bert2.inference import Predictor
    from bert2.tasks.finetuning import run_finetuning

    data = sentiment_file
    teacher_root, root = tmp_path / "teacher", tmp_path / "student"
    threads = torch.get_num_threads()
    try:
        ft = Config().with_overrides(
            [
                f'paths.root="{teacher_root}"',
                "finetune.task=classify",
                f'finetune.data="{data}"',
                "finetune.max_steps=5",
                "finetune.warmup_steps=1",
                "finetune.batch_size=8",
                "finetune.max_examples=64",
                "finetune.max_seq_length=32",
                "finetune.doc_stride=8",
                "finetune.eval_every=0",
                "finetune.save_every=0",
                "runtime.num_threads=1",
                "runtime.device=cpu",
            ]
        )
        assert run_finetuning(ft, [], from_checkpoint=tiny_pretrain_checkpoint).reason == "completed"
        teacher = ckpt.default_checkpoint(teacher_root, "finetune")
        events = []
        cfg = Config().with_overrides(
            [
                f'paths.root="{root}"',
                f'distill.teacher="{teacher}"',
                "distill.max_steps=8",
                "distill.batch_size=8",
                "distill.warmup_steps=1",
                "distill.log_every=1",
                "distill.eval_every=0",
                "distill.save_every=4",
                "runtime.num_threads=1",
                "runtime.device=cpu",
                "distill.temperature=3",
            ]
        )
        run = build_distillation(cfg, [events.append])
        done = run.finish(run.trainer.fit())
    finally:
        torch.set_num_threads(threads)
    assert done.reason == "completed" and {"teacher/accuracy", "student/accuracy"} <= set(done.final_metrics)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert set(steps[0].parts) == {"ce", "soft"}
    saved = [e.path for e in events if isinstance(e, CheckpointEvent)]
    assert saved and all("bert/finetuning" in p for p in saved)
    final = ckpt.latest_in(root / "bert/finetuning/final")
    meta = ckpt.read_json(final / "config.json")["bert2"]
    assert meta["task"] == "classify" and meta["labels"] == ["neg", "pos"] and meta["distilled_from"] == str(teacher)
    out = Predictor.load(final).classify("a wonderful great film")
    assert set(out["scores"]) == {"neg", "pos"}
    assert load_checkpoint(final).model.config.num_hidden_layers == 1


# ------------------------------------------------------------------------------------------------ config and CLI
def test_distill_config_section():
    docs = field_docs(DistillConfig)
    assert not [f for f in DistillConfig.__dataclass_fields__ if not docs.get(f)]
    cfg = Config().with_overrides(["distill.temperature=4", "distill.alpha=0.25"])
    assert cfg.distill.temperature == 4.0 and "[distill]" in cfg.to_toml()
    for override, key in (
        ("distill.alpha=1.5", "distill.alpha"),
        ("distill.temperature=0", "distill.temperature"),
        ("distill.student_init=copy", "distill.student_init"),
        ("distill.hidden_weight=-1", "distill.hidden_weight"),
    ):
        with pytest.raises(ConfigError) as info:
            Config().with_overrides([override])
        assert key in {e.key for e in info.value.errors}, override


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_errors_exit_2_with_the_reason(tmp_path, tiny_pretrain_checkpoint, capsys):
    root = ["--set", f'paths.root="{tmp_path / "out"}"']
    code, _, err = run_cli(capsys, "distill", *root)
    assert code == 2 and "distill.teacher" in err
    code, _, err = run_cli(capsys, "distill", "--teacher", str(tmp_path / "nope"), *root)
    assert code == 2 and "checkpoint not found" in err
    qa = tmp_path / "qa-teacher"
    qa.mkdir()
    for f in Path(tiny_pretrain_checkpoint).iterdir():
        (qa / f.name).write_bytes(f.read_bytes())
    config = json.loads((qa / "config.json").read_text())
    config["bert2"]["task"] = "qa-span"
    (qa / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(capsys, "distill", "--teacher", str(qa), *root)
    assert code == 2 and "qa-span" in err and "classify" in err and "mlm+nsp" in err
    code, _, err = run_cli(
        capsys, "distill", "--teacher", str(tiny_pretrain_checkpoint), "--student-layers", "3", *root
    )
    assert code == 2 and "distill.hidden_weight" in err and "more than the teacher's 2" in err
    code, _, err = run_cli(
        capsys,
        "distill",
        "--teacher",
        str(tiny_pretrain_checkpoint),
        "--set",
        "distill.attention_weight=1",
        "--set",
        "distill.student_heads=4",
        *root,
    )
    assert code == 2 and "distill.attention_weight" in err and "4 heads" in err


def test_a_teacher_where_the_student_writes_is_read_from_a_kept_copy(tmp_path, tiny_pretrain_checkpoint):
    """Distilling a checkpoint of the same saved_model (the TUI's `t`): the student's checkpoints must not replace
    or rotate the teacher away, so the teacher's model files are copied beside the stage directories first."""
    import shutil

    from bert2 import checkpoint as ckpt
    from bert2.compress.distill import TEACHERS_DIR, keep_teacher_safe

    root = tmp_path / "saved_model"
    teacher = root / "transformer" / "pretrain" / "final" / tiny_pretrain_checkpoint.name
    shutil.copytree(tiny_pretrain_checkpoint, teacher)
    kept = keep_teacher_safe(teacher, str(root), "pretrain")
    assert kept == root / "transformer" / "pretrain" / TEACHERS_DIR / f"final-{teacher.name}"
    assert (
        ckpt.is_complete(kept)
        and (kept / "model.safetensors").read_bytes() == (teacher / "model.safetensors").read_bytes()
    )
    assert not any((kept / f).exists() for f in ("resume.safetensors", "resume.json"))
    assert keep_teacher_safe(kept, str(root), "pretrain") == kept  # the copy is safe as it is
    assert keep_teacher_safe(teacher, str(tmp_path / "other"), "pretrain") == teacher  # elsewhere: read in place
    assert keep_teacher_safe(teacher, str(root), "finetune") == teacher  # a classifier student writes elsewhere
