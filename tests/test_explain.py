"""Inside BERT (`bert2 explain`, the Inside screen): what is shown is the trainer's own batch and loss."""

from __future__ import annotations

import json

import pytest
import torch

from bert2.cli import main
from bert2.config import Config
from bert2.data.collator import FATE_KEEP, FATE_MASK, FATE_RANDOM, MLMCollator
from bert2.errors import InputError
from bert2.explain import Explainer
from bert2.tasks.pretraining import PretrainingTask
from bert2_tui.testing import make_app, widget_text


@pytest.fixture(scope="module")
def explainer(tiny_run):
    cfg, step3 = tiny_run
    return Explainer(cfg, step3)


def test_shown_batch_and_loss_are_the_trainers(tiny_run, explainer):
    """For a fixed seed the masks, labels and loss equal what the trainer's task computes on the same examples."""
    cfg, _ = tiny_run
    examples, source = explainer.corpus_examples(4, seed=5)
    result = explainer.explain(examples, seed=11, source=source)

    trainer_cfg = Config.from_dict(cfg.to_dict())
    trainer_cfg.data.seed = 11  # the trainer's collator is seeded with data.seed
    task = PretrainingTask(trainer_cfg, explainer.tokenizer, validation=None, probes=())
    batch = task.collate([{k: v for k, v in e.items() if k != "index"} for e in examples])
    for b, row in enumerate(result.examples):
        assert row["input_ids"] == batch["input_ids"][b].tolist()
        assert row["labels"] == batch["labels"][b].tolist()
        assert row["attention_mask"] == batch["attention_mask"][b].tolist()
        assert row["nsp_label"] == ("IsNext" if int(batch["next_sentence_label"][b]) == 0 else "NotNext")
    with torch.no_grad():
        loss, parts = task.loss(explainer.model.eval(), batch, task.count(batch))
    assert abs(float(loss) - result.loss["total"]) < 1e-5
    assert abs(float(parts["mlm"]) - result.loss["mlm"]) < 1e-5 and abs(float(parts["nsp"]) - result.loss["nsp"]) < 1e-5
    # the parts add up as shown: MLM is the mean of the token losses listed per masked position
    listed = [p["loss"] for row in result.examples for p in row["predictions"]]
    assert len(listed) == result.loss["masked_tokens"] == result.counts["selected"]
    assert abs(sum(listed) / len(listed) - result.loss["mlm"]) < 1e-4
    # each fate is what the collator did to that position
    for row in result.examples:
        for tok, orig, fate, label in zip(row["tokens"], row["original_tokens"], row["fates"], row["labels"]):
            assert (fate is None) == (label == -100)
            if fate == "mask":
                assert tok == "[MASK]"
            elif fate == "keep":
                assert tok == orig
            elif fate == "random":
                assert tok not in ("[MASK]", "[PAD]", "[CLS]", "[SEP]")
    assert [s for s, _ in result.shapes][:2] == ["embeddings", "encoder layer 1"]
    assert result.attention.shape[:3] == (1, 4, 2)  # (L, B, nh, T, T)


def test_fates_over_many_batches_follow_80_10_10(explainer):
    text = explainer.tokenizer("the cat sat on the mat while the dog ran in the park near the river")
    examples = [{"input_ids": text["input_ids"], "token_type_ids": text["token_type_ids"]}] * 4000
    batch = MLMCollator(explainer.tokenizer, seed=3)(examples, with_fates=True)
    fates = batch["fates"]
    selected = int((fates > 0).sum())
    eligible = int(batch["attention_mask"].sum()) - 2 * len(examples)  # minus [CLS] and [SEP]
    assert abs(selected / eligible - 0.15) < 0.005
    assert abs(int((fates == FATE_MASK).sum()) / selected - 0.8) < 0.015
    assert abs(int((fates == FATE_RANDOM).sum()) / selected - 0.1) < 0.01
    assert abs(int((fates == FATE_KEEP).sum()) / selected - 0.1) < 0.01
    plain = MLMCollator(explainer.tokenizer, seed=3)(examples)  # asking for fates changes no draw
    assert torch.equal(plain["input_ids"], batch["input_ids"]) and torch.equal(plain["labels"], batch["labels"])


def test_text_input_and_bad_input(explainer, tiny_run, capsys, tiny_pretrain_root):
    examples, source = explainer.text_examples("the cat sat on the mat .", "the dog ran in the park .")
    result = explainer.explain(examples, seed=0, source=source)
    row = result.examples[0]
    assert source == "--text" and row["nsp_label"] == "IsNext" and set(row["token_type_ids"]) == {0, 1}
    with pytest.raises(InputError, match="empty"):
        explainer.text_examples("   ")
    with pytest.raises(InputError, match="no token that can be masked"):
        explainer.text_examples("[SEP]")
    cfg, step3 = tiny_run
    assert (
        main(["explain", "--checkpoint", str(step3), "--text", "", "--set", f"paths.root={json.dumps(cfg.paths.root)}"])
        == 2
    )
    assert "the text is empty" in capsys.readouterr().err
    code = main(["explain", "--checkpoint", str(step3), "--text", "the cat sat on the mat .", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and set(out) >= {"checkpoint", "examples", "loss"}
    assert set(out["examples"][0]) >= {"tokens", "input_ids", "token_type_ids", "attention_mask", "labels", "fates"}
    assert set(out["loss"]) >= {"total", "mlm"}


def test_explain_html_writes_each_example_as_a_standalone_page(explainer, tiny_run, capsys, tmp_path):
    """`bert2 explain --html FILE`: the Inside screen's page (tokens, predictions, head and model view) per
    example; the numbers on it are the explanation's."""
    cfg, step3 = tiny_run
    page = tmp_path / "inside.html"
    code = main(["explain", "--checkpoint", str(step3), "--batch-size", "2", "--seed", "1", "--json", "--html",
                 str(page), "--set", f"paths.root={json.dumps(cfg.paths.root)}"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    second = tmp_path / "inside-2.html"
    assert f"wrote {page}" in captured.err and f"wrote {second}" in captured.err
    for path, row in ((page, out["examples"][0]), (second, out["examples"][1])):
        html = path.read_text(encoding="utf-8")
        assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "Model view" in html
        for p in row["predictions"]:
            assert f"{p['label_probability']:.3f}" in html and f"{p['loss']:.3f}" in html
    code = main(["explain", "--checkpoint", str(step3), "--html", str(tmp_path / "missing" / "x.html")])
    assert code == 2 and "--html: cannot write" in capsys.readouterr().err


def test_a_checkpoint_without_mlm_head_is_refused(tiny_run, tmp_path, capsys):
    from bert2 import checkpoint as ckpt
    from bert2.checkpoint.model_files import build_model, load_checkpoint, write_model

    _, step3 = tiny_run
    loaded = load_checkpoint(step3, weights=False)
    head = build_model("classify", loaded.model_cfg, {"labels": ["a", "b"]})
    path = ckpt.save_checkpoint(
        tmp_path / "final",
        1,
        lambda d: write_model(head, loaded.tokenizer, d, {"task": "classify", "labels": ["a", "b"]}),
        {"kind": "finetune", "task": "classify"},
    )
    assert main(["explain", "--checkpoint", str(path)]) == 2
    assert "without a masked-language-model head" in capsys.readouterr().err


async def test_inside_screen_walks_the_batch(tiny_run):
    cfg, _ = tiny_run
    app = make_app(Config.from_dict(cfg.to_dict()), load_history=False)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("5")
        screen = app.screen

        async def shown(needle: str) -> bool:
            for _ in range(600):
                await pilot.pause(0.05)
                if needle in widget_text(screen.query_one("#inside-status")):
                    return True
            return False

        assert await shown("masks: seed 0")
        text = widget_text(screen.query_one("#inside-example"))
        assert "example 1 of 4" in text and "[CLS]" in text and "NSP:" in text
        assert "loss = MLM + NSP" in widget_text(screen.query_one("#inside-batch"))
        assert "model view" in widget_text(screen.query_one("#inside-attention"))
        first = screen.result
        await pilot.press("right")
        assert "example 2 of 4" in widget_text(screen.query_one("#inside-example"))
        await pilot.press("m")  # same examples, new masks
        assert await shown("masks: seed 1")
        assert any(r["labels"] != f["labels"] for r, f in zip(screen.result.examples, first.examples))
        assert [r["original_tokens"] for r in screen.result.examples] == [r["original_tokens"] for r in first.examples]
        await pilot.press("n")  # other examples
        assert await shown("seed 1; masks")
        assert [r["original_tokens"] for r in screen.result.examples] != [r["original_tokens"] for r in first.examples]
        while len(screen.row["predictions"]) < 2:  # an example with several masked tokens (there is one: seeded)
            assert screen.example < 3
            await pilot.press("right")
        detail = widget_text(screen.query_one("#inside-detail"))
        second = screen.row["predictions"][1]["position"]
        await pilot.press("down", "enter")
        after = widget_text(screen.query_one("#inside-detail"))
        assert after != detail and f"position {second}" in after and "where" in after
