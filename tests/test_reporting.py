"""Logs a script can read: one plain line per logged step when stdout is not a terminal, and report_to csv /
tensorboard (the config key, or --report-to for one run) writing every logged number: metrics.csv beside
metrics.jsonl, TensorBoard files in saved_model/<kind>/runs/<start time>/."""

from __future__ import annotations

import csv
import re

import torch

from bert2.cli import main


def tiny_sets(tmp_path, corpus) -> list[str]:
    sets = {
        "data.corpus": f'"{corpus}"',
        "paths.root": f'"{tmp_path / "saved"}"',
        "data.cache_dir": f'"{tmp_path / "cache"}"',
        "data.max_seq_length": 32,
        "model.vocab_size": 300,
        "model.hidden_size": 32,
        "model.num_hidden_layers": 1,
        "model.num_attention_heads": 2,
        "model.intermediate_size": 64,
        "pretrain.batch_size": 8,
        "pretrain.log_every": 2,
        "pretrain.eval_every": 4,
        "pretrain.eval_batches": 1,
        "pretrain.save_every": 0,
        "pretrain.warmup_steps": 1,
        "runtime.num_threads": 1,
    }
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


def test_redirected_run_prints_plain_step_lines_and_reports_csv_and_tensorboard(tmp_path, english_corpus, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    threads = torch.get_num_threads()
    try:
        code = main(
            ["pretrain", "--max-steps", "8", "--report-to", "csv,tensorboard", *tiny_sets(tmp_path, english_corpus)]
        )
    finally:
        torch.set_num_threads(threads)
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("step ")]  # stdout is redirected: it gets them
    assert [
        int(
            re.match(
                r"step (\d+)/8 loss \d+\.\d{4} mlm \d+\.\d{4} nsp \d+\.\d{4} lr \S+ tok/s \d+ elapsed "
                r"\d+:\d\d eta \d+:\d\d$",
                line,
            ).group(1)
        )
        for line in lines
    ] == [2, 4, 6, 8], lines
    assert any(line.startswith("eval step 4:") for line in out.splitlines())  # one line per evaluation too

    kind_dir = tmp_path / "saved/transformer/pretrain"
    runs = list((kind_dir / "runs").iterdir())
    assert len(runs) == 1 and f"reporting to {kind_dir / 'metrics.csv'} and {runs[0]}" in out
    rows = list(csv.DictReader(open(kind_dir / "metrics.csv", encoding="utf-8")))  # beside metrics.jsonl
    assert {r["run"] for r in rows} == {runs[0].name}
    train_loss = [(int(r["step"]), float(r["value"])) for r in rows if r["event"] == "train" and r["name"] == "loss"]
    assert [s for s, _ in train_loss] == [2, 4, 6, 8]
    assert {r["name"] for r in rows if r["event"] == "eval"} >= {"loss", "mlm_accuracy"}

    acc = EventAccumulator(str(runs[0]))
    acc.Reload()
    tb_loss = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert [s for s, _ in tb_loss] == [2, 4, 6, 8]
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(tb_loss, train_loss))  # the same numbers in both
    assert "eval/mlm_accuracy" in acc.Tags()["scalars"]


def test_unknown_reporter_is_refused_before_training(tmp_path, english_corpus, capsys):
    assert main(["pretrain", "--report-to", "wandb", *tiny_sets(tmp_path, english_corpus)]) == 2
    err = capsys.readouterr().err
    assert "--report-to wandb: unknown; choose csv, tensorboard" in err
    assert not (tmp_path / "cache").exists()  # nothing prepared


def test_report_to_config_key_appends_each_run_to_one_csv(tmp_path, english_corpus, capsys):
    """`report_to = "csv"` in the config file's [pretrain], no flag: two runs append to one metrics.csv, told apart
    by their run column; a third run with --report-to none (the flag beats the file) writes nothing more."""
    from bert2.config import Config

    cfg = Config()
    cfg.pretrain.report_to = "csv"
    sets = ["--config", str(cfg.save(tmp_path / "bert2.toml")), *tiny_sets(tmp_path, english_corpus)]
    threads = torch.get_num_threads()
    try:
        assert main(["pretrain", "--max-steps", "4", *sets]) == 0
        assert main(["pretrain", "--max-steps", "2", *sets]) == 0
        path = tmp_path / "saved/transformer/pretrain/metrics.csv"
        size = path.stat().st_size
        assert main(["pretrain", "--max-steps", "2", "--report-to", "none", *sets]) == 0
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    assert path.stat().st_size == size
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "run,time,step,event,name,value" and lines.count(lines[0]) == 1  # one header
    rows = list(csv.DictReader(lines))
    runs = list(dict.fromkeys(r["run"] for r in rows))
    assert len(runs) == 2
    steps = {
        run: [int(r["step"]) for r in rows if r["run"] == run and r["event"] == "train" and r["name"] == "loss"]
        for run in runs
    }
    assert steps == {runs[0]: [2, 4], runs[1]: [2]}
    assert not (tmp_path / "saved/transformer/pretrain/runs").exists()  # csv alone makes no TensorBoard directory


def test_report_to_is_validated_with_the_config():
    from bert2.config import Config

    cfg = Config()
    cfg.finetune.report_to = "csv,wandb"
    assert [str(e) for e in cfg.validate()] == [
        "finetune.report_to: unknown reporter 'wandb'; choose none, csv, "
        "tensorboard or a comma-separated list (csv,tensorboard)"
    ]
    cfg.finetune.report_to = " csv , tensorboard "
    assert cfg.validate() == []
