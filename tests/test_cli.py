"""`bert2` command line: JSON shapes, one-line errors and exit code 2 for bad input, never a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bert2.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_mask_json_shape(capsys, tiny_pretrain_root):
    code, out, err = run(
        capsys,
        "inference",
        "mask",
        "The capital of [MASK] is [MASK].",
        "--json",
        "--top-k",
        "3",
        "--set",
        f"paths.root={tiny_pretrain_root}",
    )
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["predictions"] and len(data["predictions"]) == 2
    for per_mask in data["predictions"]:
        assert len(per_mask) == 3
        assert all(set(p) == {"token", "score"} and 0 <= p["score"] <= 1 for p in per_mask)
        assert per_mask[0]["score"] >= per_mask[1]["score"] >= per_mask[2]["score"]


def test_checkpoints_json_shape(capsys, tiny_pretrain_root):
    code, out, _ = run(capsys, "checkpoints", "--json", "--set", f"paths.root={tiny_pretrain_root}")
    assert code == 0
    items = json.loads(out)
    assert items and {"path", "kind", "stage", "step", "metrics", "created", "size_bytes", "valid"} <= set(items[0])
    assert items[0]["kind"] == "pretrain" and items[0]["stage"] == "final" and items[0]["valid"] is True


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("The capital of France is Paris.", "no [MASK]"),
        ("", "empty"),
        ("   ", "empty"),
        ("word " * 300 + "[MASK]", "at most 128"),
    ],
)
def test_mask_bad_text_exits_2(capsys, tiny_pretrain_root, text, fragment):
    code, out, err = run(capsys, "inference", "mask", text, "--set", f"paths.root={tiny_pretrain_root}")
    assert code == 2 and out == ""
    assert err.startswith("error:") and fragment in err and len(err.strip().splitlines()) == 1


def test_missing_and_broken_checkpoints_exit_2(capsys, tmp_path, tiny_pretrain_checkpoint):
    code, _, err = run(capsys, "inference", "mask", "a [MASK]", "--checkpoint", str(tmp_path / "nope"))
    assert code == 2 and "not found" in err
    code, _, err = run(capsys, "inference", "mask", "a [MASK]", "--set", f"paths.root={tmp_path}")
    assert code == 2 and "bert2 quick" in err  # nothing trained yet: says what to run
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(tiny_pretrain_checkpoint, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated weights
    code, _, err = run(capsys, "inference", "mask", "a [MASK]", "--checkpoint", str(broken))
    assert code == 2 and "model.safetensors" in err and len(err.strip().splitlines()) == 1
    (broken / "config.json").write_text("{not json")
    code, _, err = run(capsys, "inference", "mask", "a [MASK]", "--checkpoint", str(broken))
    assert code == 2 and "config.json" in err


def test_invalid_config_exits_2_naming_the_field(capsys, tmp_path):
    code, _, err = run(capsys, "pretrain", "--set", "model.hidden_size=100", "--set", f"paths.root={tmp_path}")
    assert code == 2 and "model.hidden_size" in err and "divisible" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[pretrain]\nbatch_size = 'many'\n")
    code, _, err = run(capsys, "config", "validate", "--config", str(bad))
    assert code == 2 and "pretrain.batch_size: must be an integer" in err


def test_config_init_show_validate(capsys, tmp_path):
    target = tmp_path / "bert2.toml"
    code, _, _ = run(capsys, "config", "init", "--preset", "mini", "-o", str(target))
    assert code == 0 and target.is_file()
    code, _, err = run(capsys, "config", "init", "-o", str(target))
    assert code == 2 and "exists" in err
    code, out, _ = run(capsys, "config", "show", "--config", str(target), "--json")
    assert json.loads(out)["model"]["hidden_size"] == 256
    code, out, _ = run(capsys, "config", "show", "--config", str(target))
    assert "# Width H of every token vector" in out and "hidden_size = 256" in out
    assert "# Width H of every token vector" in target.read_text()  # `config init` keeps the help comments
    code, out, _ = run(capsys, "--config", str(target), "config", "validate")  # --config before the command too
    assert code == 0 and "valid" in out
    code, out, _ = run(capsys, "--set", "model.hidden_size=512", "config", "show", "--json")
    assert json.loads(out)["model"]["hidden_size"] == 512


def test_misspelt_key_gets_a_suggestion(capsys):
    code, _, err = run(capsys, "config", "validate", "--set", "pretrain.max_step=3", "--set", "finetune.device=cpu")
    assert code == 2
    assert "did you mean pretrain.max_steps?" in err and "did you mean runtime.device?" in err


def test_corpus_errors_exit_2(capsys, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for corpus, fragment in [(tmp_path / "missing.txt", "missing.txt"), (empty, "empty")]:
        code, _, err = run(
            capsys,
            "pretrain",
            "--set",
            f"data.corpus={corpus}",
            "--set",
            f"paths.root={tmp_path}",
            "--set",
            f"data.cache_dir={tmp_path / 'c'}",
            "--max-steps",
            "2",
        )
        assert code == 2 and fragment in err, err


def _bad_corpora(d: Path) -> list[tuple[Path, str]]:
    """Broken corpus files and what the error must say (file and line)."""
    import gzip

    good = "".join(f"Sentence {i} about rivers. Another one about cities {i}.\n\n" for i in range(200)).encode()
    truncated = d / "truncated.txt.gz"
    truncated.write_bytes(gzip.compress(good)[:-40])
    not_utf8 = d / "latin1.txt"
    not_utf8.write_bytes(b"A fine line.\n\nCaf\xe9 au lait.\n")
    huge = d / "huge.txt"
    huge.write_bytes(b"short line\n" + b"x" * (9 << 20) + b"\n")
    return [
        (truncated, "truncated.txt.gz is corrupt or truncated (gz data): reading failed after"),
        (not_utf8, "latin1.txt is not UTF-8 text: byte 0xe9 at byte offset 17 (line 3)"),
        (huge, "huge.txt line 2 is longer than 8 MiB"),
        (d / "missing.txt", "corpus file '" + str(d / "missing.txt") + "' not found"),
    ]


def test_pretraining_on_a_bad_corpus_exits_2_and_writes_nothing(capsys, tmp_path):
    """The corpus is read before the run takes its directory: no saved_model, no lock, no metrics log."""
    root = tmp_path / "saved_model"
    for corpus, says in _bad_corpora(tmp_path):
        code, _, err = run(
            capsys,
            "pretrain",
            "--set",
            f"data.corpus={json.dumps(str(corpus))}",
            "--set",
            f"paths.root={json.dumps(str(root))}",
            "--set",
            f"data.cache_dir={json.dumps(str(tmp_path / 'c'))}",
            "--max-steps",
            "2",
        )
        assert code == 2 and says in err and "internal error" not in err, err
        assert not root.exists(), sorted(map(str, root.rglob("*")))


def test_a_corpus_that_passed_is_not_read_again_until_it_changes(tmp_path):
    from bert2.data.corpus import check_local_corpus
    from bert2.errors import DataError

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("One sentence here.\n\nAnother document.\n", encoding="utf-8")
    check_local_corpus(str(corpus), tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "checked-corpora").iterdir())) == 1
    corpus.write_bytes(b"One sentence here.\n\n\xff broken.\n")  # new size and mtime: read again, refused
    with pytest.raises(DataError, match="line 3"):
        check_local_corpus(str(corpus), tmp_path / "cache")
    check_local_corpus("wiki-offline", tmp_path / "cache")  # built in: not read here


def test_real_process_exit_code_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bert2", "inference", "mask", "no mask here", "--checkpoint", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.startswith("error:")


def test_fill_mask_batch_matches_single(tiny_pretrain_checkpoint):
    from bert2.inference import Predictor

    p = Predictor.load(tiny_pretrain_checkpoint)
    texts = ["The capital of France is [MASK].", "A [MASK] sat on the [MASK] mat in a long sentence here."]
    batch = p.fill_mask_batch(texts, 3)
    for text, got in zip(texts, batch):
        single = p.fill_mask(text, 3)
        assert [[d["token"] for d in m] for m in got] == [[d["token"] for d in m] for m in single]
        assert all(abs(a["score"] - b["score"]) < 1e-4 for m1, m2 in zip(got, single) for a, b in zip(m1, m2))


def test_bench_names_match_and_unknown_name_exits_2(capsys):
    from bert2.bench import BENCHMARKS
    from bert2.cli.bench import BENCH_NAMES

    assert tuple(BENCHMARKS) == BENCH_NAMES
    code, _, err = run(capsys, "bench", "nosuch")
    assert code == 2 and "unknown benchmark nosuch" in err and "train_throughput" in err


def test_inference_checks_the_text_before_loading_a_checkpoint(capsys, tmp_path):
    """A typo costs nothing: the text is refused before the (here missing) checkpoint is even looked at."""
    code, _, err = run(capsys, "inference", "mask", "no mask here", "--checkpoint", str(tmp_path / "nowhere"))
    assert code == 2 and "has no [MASK]" in err
    code, _, err = run(capsys, "inference", "classify", "  ", "--checkpoint", str(tmp_path / "nowhere"))
    assert code == 2 and "empty" in err


def test_every_command_has_a_description_and_examples(capsys):
    from bert2.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.description, name
        assert p.epilog and "examples:" in p.epilog and f"bert2 {name}" in p.epilog, name
