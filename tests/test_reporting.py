"""Logs a script can read: one plain line per logged step when stderr is not a terminal, and --report-to csv /
tensorboard writing every logged number into saved_model/<kind>/runs/<start time>/."""

from __future__ import annotations

import csv
import re

import torch

from bert2.cli import main


def tiny_sets(tmp_path, corpus) -> list[str]:
    sets = {"data.corpus": f'"{corpus}"', "paths.root": f'"{tmp_path / "saved"}"',
            "data.cache_dir": f'"{tmp_path / "cache"}"', "data.max_seq_length": 32, "model.vocab_size": 300,
            "model.hidden_size": 32, "model.num_hidden_layers": 1, "model.num_attention_heads": 2,
            "model.intermediate_size": 64, "pretrain.batch_size": 8, "pretrain.log_every": 2,
            "pretrain.eval_every": 4, "pretrain.eval_batches": 1, "pretrain.save_every": 0,
            "pretrain.warmup_steps": 1, "pretrain.num_threads": 1}
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


def test_redirected_run_prints_plain_step_lines_and_reports_csv_and_tensorboard(tmp_path, english_corpus, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    threads = torch.get_num_threads()
    try:
        code = main(["pretrain", "--max-steps", "8", "--report-to", "csv,tensorboard", *tiny_sets(tmp_path,
                                                                                                  english_corpus)])
    finally:
        torch.set_num_threads(threads)
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("step ")]  # stdout is redirected: it gets them
    assert [int(re.match(r"step (\d+)/8 loss \d+\.\d{4} mlm \d+\.\d{4} nsp \d+\.\d{4} lr \S+ tok/s \d+ elapsed "
                         r"\d+:\d\d eta \d+:\d\d$", line).group(1)) for line in lines] == [2, 4, 6, 8], lines
    assert any(line.startswith("eval step 4:") for line in out.splitlines())  # one line per evaluation too

    runs = list((tmp_path / "saved/transformer/pretrain/runs").iterdir())
    assert len(runs) == 1 and f"reporting csv and tensorboard to {runs[0]}" in err
    rows = list(csv.DictReader(open(runs[0] / "metrics.csv", encoding="utf-8")))
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
