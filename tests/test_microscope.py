"""The training microscope: loss baselines, head types, the checkpoint time-lapse and its HTML page."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bert2.cli import main
from bert2.html_export import heads_grid, timelapse_page
from bert2.microscope import (
    HEAD_TYPES,
    crossings,
    heads_from_scores,
    token_counts,
    type_scores,
    type_shares,
    uniform_scores,
    unigram_entropy,
    word_ids,
)
from bert2.training.events import EvalEvent, StartEvent
from bert2.training.runlog import metrics_file, read_events


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- baselines ---------------------------------------------------------------------------------------------
def test_unigram_entropy_is_the_frequency_only_cross_entropy():
    assert unigram_entropy(np.array([5, 5, 5, 5, 0])) == pytest.approx(math.log(4))
    counts = np.array([70, 20, 10])
    p = counts / counts.sum()
    # the best frequency-only guesser predicts p itself; its cross-entropy on data drawn from p is H(p)
    assert unigram_entropy(counts) == pytest.approx(float(-(p * np.log(p)).sum()))
    assert unigram_entropy(np.array([3])) == 0.0


def test_token_counts_leave_out_special_tokens_and_read_the_stream_or_a_sample():
    class Stream(list):
        tokens = np.array([5, 5, 6, 1, 2], dtype=np.uint16)

    counts = token_counts(Stream(), vocab_size=8, special_ids=(1, 2))
    assert counts.tolist() == [0, 0, 0, 0, 0, 2, 1, 0]
    rows = [{"input_ids": [1, 4, 4, 2]}, {"input_ids": [1, 7, 2]}]
    assert token_counts(rows, vocab_size=8, special_ids=(1, 2)).tolist() == [0, 0, 0, 0, 2, 0, 0, 1]


def test_crossings_are_the_first_evaluation_below_each_line():
    evals = [
        (10, {"mlm_loss": 6.0, "nsp_loss": 0.7}),
        (20, {"mlm_loss": 5.0, "nsp_loss": 0.65}),
        (30, {"mlm_loss": 4.0}),
    ]
    assert crossings(evals, {"mlm_loss": 5.5, "nsp_loss": math.log(2)}) == {"mlm_loss": 20, "nsp_loss": 20}
    assert crossings(evals, {"mlm_loss": 1.0}) == {}
    # a hair under ln 2 is noise, not a model that tells real next sentences from random ones
    assert crossings([(5, {"nsp_loss": 0.6929})], {"nsp_loss": math.log(2)}) == {}


# ---- head types --------------------------------------------------------------------------------------------
def test_word_ids_join_wordpieces():
    assert word_ids(["[CLS]", "play", "##ing", "is", "fun", "##ny", "[SEP]"]) == [0, 1, 1, 2, 3, 3, 4]


def _batch(T=6):
    mask = torch.ones(1, T, dtype=torch.long)  # (B, T)
    special = torch.zeros(1, T, dtype=torch.bool)
    special[0, 0] = special[0, -1] = True  # [CLS] ... [SEP]
    same = torch.zeros(1, T, T, dtype=torch.bool)
    same[0, 2, 3] = same[0, 3, 2] = True  # tokens 2 and 3 are one word
    return mask, special, same


def test_each_pattern_scores_as_its_own_type():
    T = 6
    mask, special, same = _batch(T)
    prev = torch.zeros(T, T)
    prev[0, 0] = 1.0
    for i in range(1, T):
        prev[i, i - 1] = 1.0
    nxt = torch.zeros(T, T)
    nxt[T - 1, T - 1] = 1.0
    for i in range(T - 1):
        nxt[i, i + 1] = 1.0
    sink = torch.zeros(T, T)
    sink[:, 0] = 1.0
    word = torch.eye(T)
    word[2] = 0
    word[2, 3] = 1.0
    word[3] = 0
    word[3, 2] = 1.0
    broad = torch.full((T, T), 1.0 / T)
    attn = torch.stack([prev, nxt, sink, word, broad])[None, None]  # (L=1, B=1, nh=5, T, T)
    scores = type_scores(attn, mask, special, same)  # (1, 5, 5)
    uniform = uniform_scores(mask, special, same)  # (5,)
    assert uniform[HEAD_TYPES.index("sink")] == pytest.approx(2 / T)
    # without the uniform reference, the uniform head's 2/6 on [CLS]/[SEP] would make it a sink
    assert heads_from_scores(scores)[4]["type"] == "sink"
    heads = heads_from_scores(scores, uniform)
    assert [h["type"] for h in heads] == list(HEAD_TYPES)
    assert all(h["score"] == pytest.approx(1.0) for h in heads)
    assert scores[0, 4, HEAD_TYPES.index("sink")] == pytest.approx(2 / T)  # uniform: a third on [CLS]/[SEP]
    assert type_shares(heads) == {t: 0.2 for t in HEAD_TYPES}


def test_padding_is_not_scored():
    T = 5
    mask, special, same = _batch(T)
    mask[0, 3:] = 0
    special[0, -1] = False
    attn = torch.zeros(1, 1, 1, T, T)
    attn[..., :3, :3] = 1.0 / 3  # uniform over the 3 real tokens; padded rows are garbage
    attn[..., 3:, :] = 0.0
    attn[..., 3:, 0] = 1.0
    broad = type_scores(attn, mask, special, same)[0, 0, HEAD_TYPES.index("broad")]
    assert broad == pytest.approx(1.0)


# ---- in a real run -----------------------------------------------------------------------------------------
def test_a_run_logs_its_baselines_and_head_types(tiny_run):
    cfg, _ = tiny_run
    events = read_events(metrics_file(Path(cfg.paths.root) / "transformer/pretrain"))
    start = next(e for e in events if isinstance(e, StartEvent))
    lines = start.info["baselines"]
    assert 0 < lines["mlm_loss"] < math.log(cfg.model.vocab_size) + 1e-6
    assert lines["nsp_loss"] == pytest.approx(math.log(2), abs=1e-4)
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert evals and all(len(e.heads) == 1 * 2 for e in evals)  # one layer, two heads
    for h in evals[-1].heads:
        assert h["type"] in HEAD_TYPES and 0 <= h["score"] <= 1 and set(h["scores"]) == set(HEAD_TYPES)


def test_the_microscope_can_be_switched_off(tmp_path):
    from bert2.tasks.pretraining import run_pretraining
    from tests.conftest import english_documents, tiny_run_cfg

    corpus = tmp_path / "english.txt"
    corpus.write_text("\n\n".join("\n".join(doc) for doc in english_documents()) + "\n", encoding="utf-8")
    cfg = tiny_run_cfg(tmp_path / "saved_model", corpus, steps=3)
    cfg.pretrain.microscope = False
    threads = torch.get_num_threads()
    try:
        assert run_pretraining(cfg, [], probes=()).reason == "completed"
    finally:
        torch.set_num_threads(threads)
    events = read_events(metrics_file(Path(cfg.paths.root) / "transformer/pretrain"))
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert evals and all(e.heads == [] for e in evals)


# ---- time-lapse --------------------------------------------------------------------------------------------
def test_timelapse_json_matches_inference_mask_at_every_checkpoint(capsys, tiny_run, tmp_path):
    cfg, _ = tiny_run
    kind = Path(cfg.paths.root) / "transformer/pretrain"
    text = "The capital of France is [MASK]."
    page = tmp_path / "lapse.html"
    code, out, err = run(capsys, "timelapse", str(kind), "--text", text, "--text", "A plain line.", "--json",
                         "--html", str(page))  # fmt: skip
    assert code == 0, err
    frames = json.loads(out)
    steps = [f["step"] for f in frames]
    assert steps == sorted(steps) and steps[0] == 3 and steps[-1] == 6
    for f in frames:
        assert set(f) == {"step", "path", "stage", "probes", "heads", "loss"}
        assert [p["text"] for p in f["probes"]] == [text]  # the sentence without [MASK] is read for heads only
        assert len(f["heads"]) == 2 and all(set(h) == {"layer", "head", "type", "score"} for h in f["heads"])
        code, mask_out, err = run(capsys, "inference", "mask", text, "--checkpoint", f["path"], "--json")
        assert code == 0, err
        assert json.loads(mask_out)["predictions"] == f["probes"][0]["predictions"]
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "http" not in html.split("</style>")[0]
    assert "France" in html and "layer 0" in html


def test_timelapse_errors_are_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "timelapse", str(tmp_path / "nowhere"))
    assert code == 2 and err.startswith("error: checkpoint not found") and err.count("\n") == 1
    code, _, err = run(capsys, "timelapse", str(tmp_path))
    assert code == 2 and "no complete checkpoint" in err


def test_html_page_is_escaped_and_standalone():
    frames = [
        {
            "step": 1,
            "path": "x",
            "probes": [{"text": "<b>[MASK]</b>", "predictions": [[{"token": "<i>", "score": 0.5}]]}],
            "heads": [{"layer": 0, "head": 0, "type": "sink", "score": 0.9}],
            "loss": 3.0,
        }
    ]
    html = timelapse_page(frames)
    assert "<b>[MASK]" not in html and "&lt;b&gt;" in html and "&lt;i&gt;" in html
    assert "0.90" in heads_grid(frames[0]["heads"])


def test_write_new_never_replaces_a_file(tmp_path):
    """ctrl+e's pages: a new name each time, even twice in one second; the first page is kept."""
    from bert2.html_export import write_new

    first = write_new(tmp_path / "exports", "x", "one")
    second = write_new(tmp_path / "exports", "x", "two")
    assert first != second and first.read_text() == "one" and second.read_text() == "two"
    assert first.parent == tmp_path / "exports" and first.suffix == ".html"


def test_scrub_page_shows_the_frame_the_screen_shows():
    from bert2.html_export import scrub_page

    frame = {
        "step": 7,
        "path": "p",
        "probes": [{"text": "The [MASK].", "predictions": [[{"token": "cat", "score": 0.25}]]}],
        "heads": [{"layer": 0, "head": 1, "type": "previous", "score": 0.61}],
        "attention": {"text": "a b", "tokens": ["[CLS]", "a", "b"], "maps": [[[[1, 0, 0]] * 3, [[0, 1, 0]] * 3]]},
    }
    html = scrub_page(frame, [(1, 3.0), (7, 2.0)], [(7, 2.1)], "2/3", layer=0, head=1)
    assert "<svg" in html and "step 7" in html and "cat 0.25" in html and "0.61</td>" in html
    assert "layer 0 head 1 (previous token 0.61): a b" in html and "<script" not in html
