"""Fuzzing the readers of untrusted files (issue 27): a small real checkpoint and small data files, mutated by
hypothesis (truncated, zeroed, bytes flipped, JSON fields replaced by wrong types, absurd and non-finite numbers),
must each load cleanly or raise a Bert2Error: never another exception, never a model with NaN weights, and the
mutated files are left as they were.

Fast in CI (a fixed, small number of examples, derandomized); `BERT2_FUZZ_EXAMPLES=500` runs a longer search.
`benchmarks/fuzz_report.py` runs the same mutations and prints how many ended which way.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert2.checkpoint.layout import checkpoint_info
from bert2.checkpoint.model_files import load_checkpoint, write_model
from bert2.checkpoint.train_state import load_resume_state, save_resume_state
from bert2.checkpoint.validate import check_resume
from bert2.errors import Bert2Error
from bert2.training.trainer import param_groups

EXAMPLES = int(os.environ.get("BERT2_FUZZ_EXAMPLES", "15"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FILES = ("config.json", "model.safetensors", "trainer_state.json", "resume.json", "resume.safetensors")
FILES += ("tokenizer.json", "tokenizer_config.json")


# ---------------------------------------------------------------------------------------------- the subjects
def make_checkpoint(directory: Path) -> Path:
    """A tiny real pretraining checkpoint (hidden 16, one layer) with resume files after one AdamW step."""
    from bert2.checkpoint.layout import write_state
    from bert2.config import ModelConfig
    from bert2.data.tokenizer import train_wordpiece
    from bert2.model import BertForPreTraining

    texts = [f"the river {w} runs through the city of {w}" for w in "alpha beta gamma delta epsilon".split()] * 20
    tokenizer = train_wordpiece(texts, vocab_size=120)
    cfg = ModelConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = BertForPreTraining(cfg, nsp=True)
    directory.mkdir(parents=True, exist_ok=True)
    write_model(model, tokenizer, directory, {"task": "mlm+nsp", "nsp": True})
    opt = optimizer_for(model)
    sum(p.sum() for p in model.parameters()).backward()
    opt.step()
    import random

    save_resume_state(
        directory,
        {
            "optimizer": opt.state_dict(),
            "schedule": {"step": 1},
            "scaler": None,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            "task": {},
        },
    )
    write_state(directory, step=1, epoch=0, consumed=8, kind="pretrain", task="mlm+nsp", metrics={})
    return directory


def optimizer_for(model: torch.nn.Module) -> torch.optim.Optimizer:
    """The trainer's own parameter groups (decayed matrices, undecayed vectors), so a resume state is checked
    against the grouping a real run restores into."""
    return torch.optim.AdamW(param_groups(model, 0.01), lr=1e-3)


def open_checkpoint(directory: Path) -> str:
    """Everything a user can do with a checkpoint: list it, load it, resume its optimizer and RNGs. 'clean' or
    'exit2'; anything else propagates (the test fails)."""
    info = checkpoint_info(directory, "pretrain", "final")
    assert info.valid or info.error  # an invalid one says why
    try:
        loaded = load_checkpoint(directory)
        for name, t in loaded.model.state_dict().items():
            assert not t.is_floating_point() or bool(torch.isfinite(t).all()), f"silent non-finite {name}"
        encoded = loaded.tokenizer(["the river [MASK] runs", "of the city"], truncation=True, padding=True)
        loaded.tokenizer.decode(encoded["input_ids"][0])  # what inference does with a damaged tokenizer file
        from bert2.checkpoint import read_state

        resume = load_resume_state(directory)
        check_resume(directory, resume, read_state(directory), optimizer_for(loaded.model))
    except Bert2Error as exc:
        assert str(exc).strip() and "internal error" not in str(exc)
        return "exit2"
    return "clean"


# ---------------------------------------------------------------------------------------------- the mutations
ABSURD = [0, -1, -5, 2**63, 10**30, 640000, 1.5, 2.5, float("nan"), float("inf"), -float("inf"), "abc", "", None, True]
ABSURD += [[], {}, [1, 2], {"a": 1}]
values = st.sampled_from(ABSURD) | st.integers() | st.floats() | st.text(max_size=8)


@st.composite
def mutations(draw) -> dict[str, Any]:
    """One damage to one file: a byte-level one (truncate, zero a range, flip bytes) or, for JSON files, a field
    (top level or nested) replaced by a wrong value, or a tensor in a safetensors file replaced."""
    file = draw(st.sampled_from(FILES))
    kinds = ["truncate", "zero", "flip"]
    if file.endswith(".json"):
        kinds += ["field", "field", "field"]
    else:
        kinds += ["tensor", "tensor"]
    kind = draw(st.sampled_from(kinds))
    m: dict[str, Any] = {"file": file, "kind": kind}
    if kind in ("truncate", "zero", "flip"):
        m["at"] = draw(st.floats(0, 1))
        m["n"] = draw(st.integers(1, 64))
    elif kind == "field":
        m["pick"] = draw(st.integers(0, 10**6))
        m["value"] = draw(values)
    else:
        m["pick"] = draw(st.integers(0, 10**6))
        m["how"] = draw(st.sampled_from(["nan", "inf", "shape", "dtype", "drop", "huge"]))
    return m


def _json_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (keys and list indices)."""
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            paths += _json_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:50]):
            paths += _json_paths(v, (*prefix, i))
    return paths


def apply(directory: Path, m: dict[str, Any]) -> None:
    f = directory / m["file"]
    data = f.read_bytes()
    if m["kind"] == "truncate":
        f.write_bytes(data[: int(m["at"] * len(data))])
    elif m["kind"] in ("zero", "flip"):
        b = bytearray(data)
        start = int(m["at"] * max(len(b) - 1, 0))
        for i in range(start, min(start + m["n"], len(b))):
            b[i] = 0 if m["kind"] == "zero" else b[i] ^ 0xFF
        f.write_bytes(bytes(b))
    elif m["kind"] == "field":
        obj = json.loads(data)
        paths = _json_paths(obj)
        path = (m["key"],) if "key" in m else paths[m["pick"] % len(paths)]
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]] = m["value"]
        f.write_text(json.dumps(obj), encoding="utf-8")  # allow_nan: NaN and Infinity, as a forged file may hold
    else:
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(f))
        key = sorted(tensors)[m["pick"] % len(tensors)]
        t, how = tensors[key], m["how"]
        if how == "drop":
            del tensors[key]
        elif how == "shape":
            tensors[key] = torch.zeros(t.numel() + 1)
        elif how == "dtype":
            tensors[key] = t.to(torch.int32) if t.is_floating_point() else t.float()
        elif how == "huge":
            tensors[key] = (
                torch.full_like(t, 1e30) if t.is_floating_point() else torch.full_like(t, torch.iinfo(t.dtype).max)
            )
        elif t.is_floating_point() and t.numel():
            t = t.clone()
            t.view(-1)[0] = math.nan if how == "nan" else math.inf
            tensors[key] = t
        save_file(tensors, str(f), metadata={"format": "pt"})


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def run_checkpoint_mutation(base: Path, m: dict[str, Any]) -> str:
    """Mutate a fresh copy of the checkpoint at `base`, open it, check the files stayed as mutated."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "step-00000001"
        shutil.copytree(base, d)
        apply(d, m)
        before = digest(d)
        outcome = open_checkpoint(d)
        assert digest(d) == before, "opening a checkpoint changed its files"
        return outcome


# ---------------------------------------------------------------------------------------------- data files
GOOD_ROWS = [{"text": f"a review number {i} of a film", "label": "pos" if i % 2 else "neg"} for i in range(30)]


@st.composite
def data_mutations(draw) -> dict[str, Any]:
    name = draw(st.sampled_from(DATA_FILES))
    kinds = ["truncate", "zero", "flip"]
    if name == "data.jsonl":
        kinds.append("label")
    if name == "squad.json":
        kinds += ["field", "field", "field"]
    if name == "ner.conll":
        kinds += ["line", "line"]
    return {
        "file": name,
        "kind": draw(st.sampled_from(kinds)),
        "at": draw(st.floats(0, 1)),
        "n": draw(st.integers(1, 64)),
        "pick": draw(st.integers(0, 10**6)),
        "value": draw(values),
        "line": draw(st.sampled_from(["EU", "EU B-ORG extra", "EU X-ORG", "EU I-", "\x00 O", "a b c d e"])),
    }


DATA_FILES = ["data.jsonl", "data.csv", "corpus.txt", "corpus.txt.gz", "corpus.jsonl"]
DATA_FILES += ["squad.json", "ner.conll", "corpus.parquet"]
SQUAD_CONTEXT = "Paris is the capital and largest city of France. The Seine flows through it."
SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": f"t{i}",
            "paragraphs": [
                {
                    "context": SQUAD_CONTEXT,
                    "qas": [
                        {
                            "id": f"{i}a",
                            "question": "What is the capital?",
                            "answers": [{"text": "Paris", "answer_start": 0}],
                        },
                        {
                            "id": f"{i}b",
                            "question": "What flows?",
                            "answers": [{"text": "The Seine", "answer_start": 49}],
                        },
                    ],
                }
            ],
        }
        for i in range(4)
    ],
}
CONLL = "".join(f"EU B-ORG\nrejects O\nGerman B-MISC\ncall O\nnumber{i} O\n\n" for i in range(10))


def write_data(d: Path) -> None:
    (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOOD_ROWS), encoding="utf-8")
    (d / "data.csv").write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in GOOD_ROWS))
    corpus = "\n\n".join(f"Sentence {i} about rivers. Another one about cities {i}." for i in range(30)) + "\n"
    (d / "corpus.txt").write_text(corpus, encoding="utf-8")
    (d / "corpus.txt.gz").write_bytes(gzip.compress(corpus.encode()))
    (d / "corpus.jsonl").write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in GOOD_ROWS))
    (d / "squad.json").write_text(json.dumps(SQUAD), encoding="utf-8")
    (d / "ner.conll").write_text(CONLL, encoding="utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [r["text"] for r in GOOD_ROWS]}), d / "corpus.parquet")


def run_data_mutation(m: dict[str, Any]) -> str:
    from bert2.data.sources import file_texts
    from bert2.tasks.classify import ClassifyTask
    from bert2.tasks.ner import read_conll
    from bert2.tasks.qa_span import read_squad

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_data(d)
        f = d / m["file"]
        if m["kind"] == "label":
            rows = [dict(r) for r in GOOD_ROWS]
            rows[int(m["at"] * (len(rows) - 1))]["label"] = m["value"]
            f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        elif m["kind"] == "line":  # one CoNLL line replaced: wrong column count, a tag that is not BIO
            lines = CONLL.splitlines()
            lines[m["pick"] % len(lines)] = m["line"]
            f.write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            apply(d, {**m, "file": f.name})
        before = digest(d)
        try:
            if f.name.startswith("data"):
                data = ClassifyTask._load_file(f, seed=0)
                assert data.train
            elif f.name == "squad.json":
                examples = read_squad(f)
                assert examples and all(
                    ex["context"][s : s + len(t)] == t
                    for ex in examples
                    for t, s in zip(ex["answers"]["text"], ex["answers"]["answer_start"])
                ), "an answer that is not at its start in the context"
            elif f.name == "ner.conll":
                sentences = read_conll(f)
                assert sentences and all(len(s["tokens"]) == len(s["tags"]) for s in sentences)
            else:
                assert all(isinstance(t, str) for t in file_texts(f))
        except Bert2Error as exc:
            assert str(exc).strip()
            return "exit2"
        finally:
            assert digest(d) == before, "reading a data file changed it"
        return "clean"


# ---------------------------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("fuzz") / "step-00000001")


def test_the_unmutated_checkpoint_loads_cleanly(checkpoint_dir):
    assert run_checkpoint_mutation(checkpoint_dir, {"file": "config.json", "kind": "truncate", "at": 1.0}) == "clean"


@FUZZ
@given(m=mutations())
def test_a_mutated_checkpoint_loads_cleanly_or_exits_2(checkpoint_dir, m):
    assert run_checkpoint_mutation(checkpoint_dir, m) in ("clean", "exit2")


@FUZZ
@given(m=data_mutations())
def test_a_mutated_data_file_reads_cleanly_or_exits_2(m):
    assert run_data_mutation(m) in ("clean", "exit2")


@pytest.mark.parametrize(
    "m",
    [
        {"file": "resume.safetensors", "kind": "tensor", "pick": 3, "how": "shape"},  # an Adam moment misshaped
        {"file": "model.safetensors", "kind": "tensor", "pick": 0, "how": "nan"},
        {"file": "config.json", "kind": "field", "key": "hidden_size", "value": float("nan")},
        {"file": "trainer_state.json", "kind": "field", "key": "step", "value": "abc"},
    ],
)
def test_the_issues_damage_is_refused(checkpoint_dir, m):
    assert run_checkpoint_mutation(checkpoint_dir, m) == "exit2"


def test_listing_survives_a_damaged_neighbour(checkpoint_dir, tmp_path):
    from bert2.checkpoint import list_checkpoints

    stage = tmp_path / "saved_model" / "transformer" / "pretrain" / "final"
    good, bad = stage / "step-00000001", stage / "step-00000002"
    shutil.copytree(checkpoint_dir, good)
    shutil.copytree(checkpoint_dir, bad)
    apply(bad, {"file": "trainer_state.json", "kind": "field", "key": "step", "value": "abc"})
    heads = stage / "step-00000003"  # config.json that reads but describes an impossible model
    shutil.copytree(checkpoint_dir, heads)
    apply(heads, {"file": "config.json", "kind": "field", "key": "num_attention_heads", "value": 0})
    infos = {Path(i.path).name: i for i in list_checkpoints(tmp_path / "saved_model")}
    assert infos["step-00000001"].valid
    assert not infos["step-00000002"].valid and "step: must be an integer" in infos["step-00000002"].error
    assert not infos["step-00000003"].valid
    assert infos["step-00000003"].error == "config.json: num_attention_heads: must be > 0, got 0"


def test_the_checkpoints_command_lists_a_damaged_one_as_invalid_and_the_rest(checkpoint_dir, tmp_path, capsys):
    from bert2.cli.main import main

    root = tmp_path / "saved_model"
    stage = root / "transformer" / "pretrain" / "final"
    for step in (1, 2, 3):
        shutil.copytree(checkpoint_dir, stage / f"step-0000000{step}")
    apply(stage / "step-00000002", {"file": "trainer_state.json", "kind": "field", "key": "step", "value": "abc"})
    (stage / "step-00000003" / "config.json").unlink()
    os.environ["COLUMNS"] = "400"  # one table row per checkpoint, the reason unwrapped
    try:
        assert main(["checkpoints", "--set", f"paths.root={json.dumps(str(root))}"]) == 0
    finally:
        del os.environ["COLUMNS"]
    rows = {line.split("│")[-2].strip(): line for line in capsys.readouterr().out.splitlines() if "step-0" in line}
    assert len(rows) == 3, rows
    by_step = {Path(path).name: line for path, line in rows.items()}
    assert " yes " in by_step["step-00000001"]
    assert "invalid: trainer_state.json: step: must be an integer in [0, 1e+15], got 'abc'" in by_step["step-00000002"]
    assert "invalid: missing config.json" in by_step["step-00000003"]


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("num_attention_heads", 0, "num_attention_heads: must be > 0"),
        ("num_attention_heads", 3, "hidden_size: must be divisible"),
        ("max_position_embeddings", -5, "max_position_embeddings: must be > 0"),
        ("pad_token_id", 99999, "pad_token_id: must be in [0, vocab_size)"),
        ("bert2", "oops", "bert2: must be an object"),
        ("hidden_dropout_prob", 2.5, "hidden_dropout_prob: must be a probability"),
        ("hidden_size", 640000, "the model (hidden_size 640000"),
    ],
)
def test_the_cli_names_the_file_and_field(checkpoint_dir, tmp_path, capsys, key, value, says):
    from bert2.cli.main import main

    d = tmp_path / "step-00000001"
    shutil.copytree(checkpoint_dir, d)
    apply(d, {"file": "config.json", "kind": "field", "key": key, "value": value})
    assert main(["inference", "mask", "--checkpoint", str(d), "the [MASK] runs"]) == 2
    err = capsys.readouterr().err
    assert f"{d / 'config.json'}: {says}" in err and "internal error" not in err


def _squad(**change: Any) -> str:
    """The SQuAD fixture with one place changed: change = {"path": (keys...), "value": v} or {"drop": (keys...)}."""
    import copy

    data = copy.deepcopy(SQUAD)
    keys = change.get("path") or change.get("drop")
    if keys is None:
        return json.dumps(change["whole"])
    parent = data
    for k in keys[:-1]:
        parent = parent[k]
    if "drop" in change:
        del parent[keys[-1]]
    else:
        parent[keys[-1]] = change["value"]
    return json.dumps(data)


ANSWER = ("data", 0, "paragraphs", 0, "qas", 0, "answers", 0)
BAD_DATA = [  # (file, its text, the command's task, what the error must say after the file's name)
    ("squad.json", _squad(whole={"version": "1.1"}), "qa-span", " holds a JSON object without a 'data' list"),
    (
        "squad.json",
        _squad(drop=("data", 0, "paragraphs", 0, "context")),
        "qa-span",
        ": data[0].paragraphs[0] has no 'context'",
    ),
    (
        "squad.json",
        _squad(path=(*ANSWER, "answer_start"), value=500),
        "qa-span",
        ": data[0].paragraphs[0].qas[0].answers[0].answer_start 500 is outside its context (0..76 characters)",
    ),
    (
        "squad.json",
        _squad(path=(*ANSWER, "answer_start"), value="0"),
        "qa-span",
        ": data[0].paragraphs[0].qas[0].answers[0].answer_start must be an integer, got '0'",
    ),
    ("squad.json", _squad(path=("data", 0, "paragraphs"), value={}), "qa-span", ": data[0].paragraphs must be a list"),
    (
        "ner.conll",
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ I-NP\n",
        "ner",
        " line 3: 3 columns, but the file's first",
    ),
    ("ner.conll", "EU B-ORG\nrejects X-VERB\n", "ner", " line 2: tag 'X-VERB' is not BIO"),
    (
        "data.csv",
        "text,label\na good film,pos\na film, great,pos\n",
        "classify",
        " line 3: 3 fields but the header has 2",
    ),
    (
        "data.jsonl",
        '{"text": "a", "label": "pos"}\n\n{"text": "b", "label": [1]}\n',
        "classify",
        " line 3: label is a list",
    ),
]


@pytest.mark.parametrize(("name", "text", "task", "says"), BAD_DATA)
def test_a_bad_finetuning_file_exits_2_naming_file_and_place(tmp_path, capsys, name, text, task, says):
    """Each broken file is refused before the run takes its directory: exit 2, nothing in saved_model."""
    from bert2.cli.main import main

    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    root = tmp_path / "saved_model"
    args = ["finetune", "--task", task, "--data", str(f), "--set", f"paths.root={json.dumps(str(root))}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{f}{says}" in err and "internal error" not in err, err
    assert not root.exists()


def test_a_bad_parquet_corpus_exits_2_naming_file_and_column(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bert2.cli.main import main

    cases = []
    no_text = tmp_path / "body.parquet"
    pq.write_table(pa.table({"body": ["a b c"] * 20}), no_text)
    cases.append((no_text, " has no column 'text'; columns found: body"))
    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"text": list(range(20))}), numbers)
    cases.append((numbers, ": column 'text' holds int64, not strings"))
    corrupt = tmp_path / "corrupt.parquet"
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": ["a b c"] * 20}), good)
    corrupt.write_bytes(good.read_bytes()[:-30])
    cases.append((corrupt, " cannot be read as Parquet"))
    root = tmp_path / "saved_model"
    for f, says in cases:
        code = main(
            [
                "pretrain",
                "--max-steps",
                "1",
                "--set",
                f"data.corpus={json.dumps(str(f))}",
                "--set",
                f"paths.root={json.dumps(str(root))}",
                "--set",
                f"data.cache_dir={json.dumps(str(tmp_path / 'c'))}",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and f"{f}{says}" in err and "internal error" not in err, err
        assert not root.exists()


@pytest.mark.parametrize(
    ("file", "damage", "says"),
    [
        ("tokenizer.json", {"kind": "truncate", "at": 0.5}, "tokenizer.json is not valid JSON"),
        ("tokenizer.json", {"kind": "truncate", "at": 0.0}, "tokenizer.json is not valid JSON"),
        (
            "tokenizer_config.json",
            {"kind": "field", "key": "model_max_length", "value": []},
            "tokenizer_config.json: model_max_length: must be a positive integer, got []",
        ),
        ("tokenizer.json", {"kind": "flip", "at": 0.0, "n": 1}, "tokenizer.json is not UTF-8 text (byte 0)"),
        (  # the fuzz suite's find: a float passed every check and failed at the first sentence, in truncation
            "tokenizer_config.json",
            {"kind": "field", "key": "model_max_length", "value": 2.5},
            "tokenizer_config.json: model_max_length: must be a positive integer, got 2.5",
        ),
    ],
)
def test_a_damaged_tokenizer_file_exits_2(checkpoint_dir, tmp_path, capsys, file, damage, says):
    from bert2.cli.main import main

    d = tmp_path / "step-00000001"
    shutil.copytree(checkpoint_dir, d)
    apply(d, {"file": file, **damage})
    assert main(["inference", "mask", "--checkpoint", str(d), "the [MASK] runs"]) == 2
    err = capsys.readouterr().err
    assert says in err and str(d) in err and "internal error" not in err, err


def test_the_checkpoints_listing_fits_80_columns(checkpoint_dir, tmp_path, capsys, monkeypatch):
    """At 80 columns the listing groups by directory: every line fits, each step's name and headline metric is
    whole (no "pretr…" cells), and a damaged one still says why (wrapped onto the next lines if long)."""
    from bert2.cli.main import main

    root = tmp_path / "saved_model"
    stage = root / "transformer" / "pretrain" / "final"
    for step in (1, 2):
        shutil.copytree(checkpoint_dir, stage / f"step-0000000{step}")
    (stage / "step-00000002" / "config.json").unlink()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["checkpoints", "--set", f"paths.root={json.dumps(str(root))}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert any(line.rstrip().endswith("transformer/pretrain/final/  mlm+nsp") for line in lines), lines
    first = next(line for line in lines if "step-00000001" in line)
    assert "valid" in first and "…" not in first
    damaged = "\n".join(lines[next(n for n, line in enumerate(lines) if "step-00000002" in line) :])
    assert "invalid: missing config.json" in " ".join(damaged.split())
