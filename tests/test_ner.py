"""Named-entity recognition: CoNLL reading, first-piece label alignment, conlleval's entity reading, seqeval
figures on a hand-checked example, a fine-tuning run (best checkpoint by entity F1), inference offsets, the
lookup baseline and the CLI's errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from bert2.baselines import ner_lookup_f1, ner_lookup_tags
from bert2.cli import main as cli_main  # the entry point function
from bert2.config import Config, ConfigError
from bert2.errors import DataError
from bert2.metrics import entity_report
from bert2.registry import get as get_task
from bert2.tasks.ner import (
    SHAPES,
    bio_decode,
    decode_words,
    entity_spans,
    featurize_ner,
    read_conll,
    tag_names,
    transitions,
    word_shape,
)
from bert2.training.events import DoneEvent, EvalEvent, StepEvent

PEOPLE = ["Marie Curie", "Alan Turing", "Ada Lovelace", "Isaac Newton", "Niels Bohr", "Emmy Noether"]
PLACES = ["Paris", "London", "New York", "Berlin", "Cairo", "Tokyo"]
TEMPLATES = [
    "{p} lives in {l} .",
    "{p} visited {l} yesterday .",
    "In {l} , {p} gave a talk .",
    "the river near {l} is wide .",
    "{p} wrote a letter .",
]


def synthetic_sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Template sentences with PER and LOC entities (multi-word ones too), tagged in BIO."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words, tags = [], []
        for piece in rng.choice(TEMPLATES).split():
            if piece in ("{p}", "{l}"):
                name = rng.choice(PEOPLE if piece == "{p}" else PLACES).split()
                kind = "PER" if piece == "{p}" else "LOC"
                words += name
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
            else:
                words.append(piece)
                tags.append("O")
        out.append((words, tags))
    return out


def write_conll(path: Path, sentences, docstart: bool = True) -> Path:
    lines = ["-DOCSTART- -X- -X- O", ""] if docstart else []
    for words, tags in sentences:
        lines += [f"{w} NNP B-NP {t}" for w, t in zip(words, tags)] + [""]  # CoNLL-2003's four columns
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def conll_file(tmp_path_factory) -> Path:
    return write_conll(tmp_path_factory.mktemp("ner") / "train.conll", synthetic_sentences(160))


# ------------------------------------------------------------------------------------------------ reading
def test_read_conll_keeps_first_and_last_columns_and_skips_docstart(conll_file):
    sentences = read_conll(conll_file)
    assert len(sentences) == 160
    first = synthetic_sentences(1)[0]
    assert sentences[0] == {"tokens": first[0], "tags": first[1]}
    assert tag_names(sentences) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("Paris B-LOC\nis\n", "line 2: expected 'word TAG'"),
        ("Paris LOC\n", "line 1: tag 'LOC' is not BIO"),
        ("-DOCSTART- O\n\n", "holds no sentences"),
    ],
)
def test_read_conll_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.conll"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_conll(path)


def test_jsonl_records_are_checked(tmp_path):
    path = tmp_path / "ner.jsonl"
    path.write_text(json.dumps({"tokens": ["Paris", "is"], "tags": ["B-LOC"]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="2 tokens but 1 tags"):
        get_task("ner").data(str(path))


def test_builtin_wnut16_is_real_and_split_deterministically():
    data = get_task("ner").data("wnut16-offline")
    assert len(data.train) + len(data.validation) == 2394  # WNUT 2016's training tweets
    assert len(data.validation) == 253  # 1 in 10 of the 2,295 distinct tweets, by a hash of the text
    from bert2.data.records import row_hash

    assert all(row_hash(" ".join(ex["tokens"])) % 10 == 0 for ex in data.validation)
    assert {t[2:] for t in data.labels if t != "O"} == {
        "company",
        "facility",
        "geo-loc",
        "movie",
        "musicartist",
        "other",
        "person",
        "product",
        "sportsteam",
        "tvshow",
    }
    assert get_task("ner").data("wnut16-offline").validation == data.validation


# ------------------------------------------------------------------------------------------------ alignment
def test_labels_sit_on_the_first_piece_of_each_word(tiny_pretrain_checkpoint):
    from bert2.checkpoint.model_files import read_tokenizer

    tokenizer = read_tokenizer(tiny_pretrain_checkpoint)
    words = ["Photosynthesis", "happens", "in", "Zurich"]
    tags = ["O", "O", "O", "B-LOC"]
    labels = ["O", "B-LOC", "I-LOC"]
    [feature] = featurize_ner([{"tokens": words, "tags": tags}], tokenizer, 64, labels)
    pieces = tokenizer.convert_ids_to_tokens(feature["input_ids"].tolist())
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    assert len(pieces) > len(words) + 2, "the test needs a word split into several pieces"
    got = feature["labels"].tolist()
    for i, w in enumerate(feature["word_ids"]):
        first = w is not None and feature["word_ids"].index(w) == i
        assert got[i] == (labels.index(tags[w]) if first else -100), (i, pieces[i])
        assert first == (w is not None and not pieces[i].startswith("##"))
    # Reading predictions back gives one tag per word from its first piece (the other pieces say something else).
    log_probs = torch.full((len(got), len(labels)), -9.0)
    for i, t in enumerate(got):
        log_probs[i, t if t >= 0 else labels.index("I-LOC")] = 0.0
    assert decode_words(feature["word_ids"], log_probs, labels, len(words), transitions(labels)) == tags
    [shaped] = featurize_ner([{"tokens": words, "tags": tags}], tokenizer, 64, labels, shapes=True)
    kinds = [SHAPES[i] for i in shaped["shape_ids"].tolist()]
    assert kinds[0] == kinds[-1] == "none" and kinds[1] == "Capitalised" and "lower" in kinds


def test_word_shapes_and_bio_consistent_decoding():
    assert [
        SHAPES[word_shape(w)]
        for w in ("the", "Boston", "NBA", "iPhone", "2016", "@user", "#nba", "http://x.y", "!!", "I")
    ] == ["lower", "Capitalised", "ALLCAPS", "miXed", "digits", "@mention", "#hashtag", "url", "punct", "Capitalised"]
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed = transitions(labels)
    # Per word, the model's favourite tags would be O, I-PER, I-PER: an orphan I- the rule does not allow.
    lp = torch.log(
        torch.tensor([[0.9, 0.03, 0.03, 0.02, 0.02], [0.1, 0.35, 0.45, 0.05, 0.05], [0.05, 0.05, 0.8, 0.05, 0.05]])
    )
    assert [labels[j] for j in bio_decode(lp, allowed)] == ["O", "B-PER", "I-PER"]
    assert bio_decode(lp[:0], allowed) == []
    assert not allowed[len(labels), labels.index("I-LOC")] and not allowed[labels.index("B-PER"), 4]


def test_entity_spans_read_bio_as_conlleval():
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]
    assert entity_spans(["I-PER", "I-PER", "B-PER"]) == [("PER", 0, 2), ("PER", 2, 3)]  # I- after O starts one
    assert entity_spans(["B-PER", "I-LOC", "O"]) == [("PER", 0, 1), ("LOC", 1, 2)]  # a type change ends it
    assert entity_spans(["O", "O"]) == []


def test_entity_report_matches_a_hand_count():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-PER"], ["B-ORG", "O"]]
    # gold entities: PER(0-2), LOC(3), ORG; predicted: PER(0-2), PER(3), ORG -> 2 right of 3 each way
    report = entity_report(gold, pred)
    assert report["precision"] == pytest.approx(2 / 3) and report["recall"] == pytest.approx(2 / 3)
    assert report["f1"] == pytest.approx(2 / 3)
    assert report["token_accuracy"] == pytest.approx(5 / 6)
    assert report["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["per_type"]["PER"]["precision"] == pytest.approx(0.5)
    # Token accuracy flatters: all-O scores 50% of tokens here and finds nothing.
    assert entity_report(gold, [["O"] * 4, ["O"] * 2])["f1"] == 0.0


def test_lookup_baseline_tags_known_words_only():
    train = [
        {"tokens": ["Paris", "is", "big"], "tags": ["B-LOC", "O", "O"]},
        {"tokens": ["Paris", "Hilton"], "tags": ["B-PER", "I-PER"]},
        {"tokens": ["in", "Paris"], "tags": ["O", "B-LOC"]},
    ]
    assert ner_lookup_tags(train, ["Paris", "Hilton", "Rome"]) == ["B-LOC", "I-PER", "O"]
    scores = ner_lookup_f1(train, [{"tokens": ["Paris", "Rome"], "tags": ["B-LOC", "B-LOC"]}])
    assert scores["precision"] == 1.0 and scores["recall"] == 0.5


# ------------------------------------------------------------------------------------------------ training
def ner_cfg(root: Path, data: Path, steps: int = 40) -> Config:
    sets = {
        "paths.root": f'"{root}"',
        "finetune.task": "ner",
        "finetune.data": f'"{data}"',
        "finetune.batch_size": 16,
        "finetune.max_steps": steps,
        "finetune.warmup_steps": 2,
        "finetune.learning_rate": 5e-3,
        "finetune.eval_every": steps // 4,
        "finetune.save_every": steps // 2,
        "finetune.max_seq_length": 64,
        "finetune.doc_stride": 16,
        "finetune.log_every": 2,
        "finetune.lookup_feature": '"auto"',  # the names recur, so auto turns it on (the default is off)
        "runtime.device": "cpu",
        "runtime.num_threads": 1,
    }
    return Config().with_overrides([f"{k}={v}" for k, v in sets.items()])


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory, tiny_pretrain_checkpoint, conll_file):
    from bert2.tasks.finetuning import run_finetuning

    root = tmp_path_factory.mktemp("ner-run")
    threads = torch.get_num_threads()
    events: list = []
    try:
        run_finetuning(ner_cfg(root, conll_file), [events.append], from_checkpoint=tiny_pretrain_checkpoint)
    finally:
        torch.set_num_threads(threads)
    return root, events


def test_ner_trains_and_keeps_the_best_entity_f1(ner_run):
    from bert2 import checkpoint as ckpt

    root, events = ner_run
    done = [e for e in events if isinstance(e, DoneEvent)][-1]
    assert done.reason == "completed"
    losses = [e.loss for e in events if isinstance(e, StepEvent)]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert {"precision", "recall", "f1", "token_accuracy", "f1/PER", "f1/LOC"} <= set(evals[-1].metrics)
    assert max(e.metrics["f1"] for e in evals) > 0.5, "templates with six names each are easy to learn"
    # best/ holds the evaluation with the highest F1 (not the lowest loss).
    best = ckpt.default_checkpoint(root, "finetune")
    state = ckpt.read_state(best)
    assert state["best_metric"] == "f1"
    assert state["best_value"] == pytest.approx(max(e.metrics["f1"] for e in evals))
    flagged = [e for e in evals if e.is_best]
    assert all(b.metrics["f1"] > a.metrics["f1"] for a, b in zip(flagged, flagged[1:]))
    report = json.loads((best / "metrics.json").read_text())
    assert report["task"] == "ner" and "PER" in report["per_type"] and report["samples"]


def test_predictor_entities_have_offsets_into_the_text(ner_run):
    from bert2 import checkpoint as ckpt
    from bert2.inference import Predictor

    predictor = Predictor.load(ckpt.default_checkpoint(ner_run[0], "finetune"))
    text = "  Marie Curie lives in New York ."  # leading spaces: offsets index the text as given
    result = predictor.entities(text)
    assert result["entities"], "the run learnt the template names"
    for e in result["entities"]:
        assert text[e["start"] : e["end"]] == e["text"]
        assert e["label"] in ("PER", "LOC") and 0.0 < e["score"] <= 1.0
    # A text longer than the model reads is tagged window by window, offsets still into the whole text.
    long_text = " ".join(["the river near Paris is wide ."] * 40)
    found = predictor.entities(long_text)["entities"]
    assert all(long_text[e["start"] : e["end"]] == e["text"] for e in found)
    assert max(e["start"] for e in found) > len(long_text) // 2


def run_cli(capsys, *argv):
    code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_ner_json_and_errors(ner_run, tiny_pretrain_checkpoint, conll_file, tmp_path, capsys):
    root = ner_run[0]
    code, out, _ = run_cli(
        capsys, "inference", "ner", "Alan Turing visited Berlin .", "--json", "--set", f'paths.root="{root}"'
    )
    assert code == 0
    assert set(json.loads(out)) == {"entities"}
    code, _, err = run_cli(capsys, "inference", "ner", "Paris", "--checkpoint", str(tiny_pretrain_checkpoint))
    assert code == 2 and "ner checkpoint" in err
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris LOC\n", encoding="utf-8")
    code, _, err = run_cli(
        capsys,
        "finetune",
        "--task",
        "ner",
        "--data",
        str(bad),
        "--from",
        str(tiny_pretrain_checkpoint),
        "--set",
        f'paths.root="{tmp_path}"',
    )
    assert code == 2 and "not BIO" in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------------------ lookup feature
def test_out_of_fold_lookup_never_gives_a_sentence_its_own_tags():
    from bert2.tasks.ner import LOOKUP_FOLDS, LOOKUP_UNSEEN, lookup_fold, out_of_fold_lookup_ids

    sentences = [{"tokens": w, "tags": t} for w, t in synthetic_sentences(200, seed=3)]
    # One sentence with a word that no other sentence has: in training it must read "unseen", not its own tag.
    lonely = {"tokens": ["Zanzibar", "is", "far", "."], "tags": ["B-LOC", "O", "O", "O"]}
    sentences.insert(17, lonely)
    labels = tag_names(sentences)
    ids = out_of_fold_lookup_ids(sentences, labels)
    assert ids[17][0] == LOOKUP_UNSEEN
    assert {lookup_fold(s) for s in sentences} == set(range(LOOKUP_FOLDS)), "every fold holds sentences"
    # Every value a sentence reads comes from the table of the sentences in the other folds.
    from bert2.baselines import lookup_table
    from bert2.tasks.ner import lookup_ids

    for i in (0, 17, 99):
        others = [s for s in sentences if lookup_fold(s) != lookup_fold(sentences[i])]
        assert ids[i] == lookup_ids(sentences[i]["tokens"], lookup_table(others), labels)
    # Recurring names are found in the other folds: "Paris" (B-LOC) reads B-LOC's value.
    b_loc = 2 + labels.index("B-LOC")
    assert any(v == b_loc for s, row in zip(sentences, ids) for w, v in zip(s["tokens"], row) if w == "Paris")
    # The folds come from the sentence's text, not its position: a reordered training set gets the same values.
    rev = out_of_fold_lookup_ids(sentences[::-1], labels)
    assert rev[::-1] == ids


def test_lookup_feature_auto_rule_reads_the_data(tmp_path):
    from bert2.tasks.ner import lookup_decision

    recurring = [{"tokens": w, "tags": t} for w, t in synthetic_sentences(200)]
    use, why = lookup_decision("auto", recurring)
    assert use and "lookup feature on" in why
    # Names that never recur: the out-of-fold table finds none of them, so auto stays off.
    unique = [{"tokens": [f"Name{i}", "lives", "here"], "tags": ["B-PER", "O", "O"]} for i in range(400)]
    use, why = lookup_decision("auto", unique)
    assert not use and "0% of them" in why
    assert lookup_decision("on", unique)[0] and not lookup_decision("off", recurring)[0]
    with pytest.raises(ConfigError, match="finetune.lookup_feature: must be auto, on or off"):
        Config().with_overrides(["finetune.lookup_feature=x"])
    assert Config().with_overrides(["finetune.lookup_feature=off"]).finetune.lookup_feature == "off"


def test_lookup_table_round_trips_and_inference_reads_what_evaluation_read(ner_run):
    from bert2 import checkpoint as ckpt
    from bert2.checkpoint.model_files import LOOKUP_FILE, LOOKUP_KEY, load_checkpoint
    from bert2.inference import Predictor
    from bert2.tasks.ner import NERTask

    root, _ = ner_run
    best = ckpt.default_checkpoint(root, "finetune")
    config = json.loads((best / "config.json").read_text())
    assert config["bert2"]["lookup_feature"] is True and LOOKUP_KEY not in config["bert2"]
    state = ckpt.read_state(best)
    assert state["run_config"]["recipe"]["choices"] == {"lookup_feature": True}
    assert any("lookup feature on" in line for line in state["run_config"]["recipe"]["why"])
    saved = json.loads((best / LOOKUP_FILE).read_text())["words"]
    loaded = load_checkpoint(best)
    assert loaded.meta[LOOKUP_KEY] == saved and saved["Paris"] == "B-LOC" and saved["lives"] == "O"
    # The whole training set's table, as the baseline builds it.
    data = NERTask.data(loaded.meta["data"])
    from bert2.baselines import lookup_table

    assert saved == lookup_table(data.train)
    # Inference gives each piece the feature evaluation gave it (a validation sentence, words without punctuation
    # splits, read back through the Predictor's own word splitting).
    predictor = Predictor.load(best)
    plain = next(ex for ex in data.validation if all(w.isalpha() or len(w) == 1 for w in ex["tokens"]))
    [feature] = NERTask.featurize([plain], loaded.tokenizer, 64, loaded.meta, for_eval=True)
    _, _, _, _, extra = predictor.word_features(" ".join(plain["tokens"]))
    assert extra["lookup_ids"] == feature["lookup_ids"].tolist()[1:-1]
    assert extra["shape_ids"] == feature["shape_ids"].tolist()[1:-1]
    assert set(extra["lookup_ids"]) - {1}, "the validation sentence's words are in the table"


@pytest.mark.parametrize(
    "content, says",
    [
        ("[1, 2]", "does not hold a JSON object"),
        ('{"format": 1, "words": {"Paris": "B-CITY"}}', "'B-CITY' is not one of the checkpoint's labels"),
        ('{"format": 1, "words": {"Paris": 7}}', "tag 7 is not one"),
        ('{"format": 2, "words": {}}', "format: must be 1"),
        ('{"format": 1, "words": ["Paris"]}', "words: must be an object"),
        ("{not json", "unreadable"),
        (None, "missing"),
    ],
)
def test_a_hostile_lookup_file_exits_2_naming_it(ner_run, tmp_path, capsys, content, says):
    import shutil

    from bert2 import checkpoint as ckpt

    copy = tmp_path / "ckpt"
    shutil.copytree(ckpt.default_checkpoint(ner_run[0], "finetune"), copy)
    if content is None:
        (copy / "lookup.json").unlink()
    else:
        (copy / "lookup.json").write_text(content, encoding="utf-8")
    code, _, err = run_cli(capsys, "inference", "ner", "Alan Turing visited Berlin .", "--checkpoint", str(copy))
    assert code == 2 and "lookup.json" in err and says in err, err
    assert "Traceback" not in err and "internal error" not in err
