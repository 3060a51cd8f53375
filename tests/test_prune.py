"""Attention-head pruning (bert2 prune, bert2/compress/prune.py): a pruned model computes exactly what the
head-masked full model computes, importance finds a dead head, and a pruned checkpoint saves, loads, fine-tunes
and exports. Models are tiny and random: these tests check the arithmetic and the plumbing, not what pruning
costs a trained model (README: measured on real checkpoints).
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
import torch
import transformers

from bert2 import checkpoint as ckpt
from bert2.checkpoint.model_files import build_model, model_config_from_hf, read_config
from bert2.cli import main
from bert2.compress.prune import (
    curve_counts,
    head_importance,
    heads_to_remove,
    held_out_split,
    mask_without,
    pruning_order,
    run_pruning,
)
from bert2.compress.surgery import PrunedAttention, head_masked, prune_heads
from bert2.config import Config, ConfigError, ModelConfig
from bert2.errors import CheckpointError, PruningError
from bert2.model import BertForPreTraining

TOL = 1e-5
REMOVE = {0: [1, 2], 1: [0]}  # of 4 heads per layer


def tiny_cfg(**kw) -> ModelConfig:
    base = dict(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return ModelConfig(**{**base, **kw})


def padded_batch(vocab: int = 120) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (3, 12), generator=g)  # (B, T)
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # padding in two rows, none in the third
    mask[2, 5:] = 0
    return ids, types, mask


def masked_run(model, head_mask, *args, **kwargs):
    """The model's output with `head_mask` on its heads (compress/surgery.py head_masked)."""
    with head_masked(model, head_mask):
        return model(*args, **kwargs)


@pytest.mark.parametrize("positions", ["alibi", "absolute"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_pruned_model_equals_head_masked_full_model(positions, impl):
    """Removing heads for real (smaller matrices) gives the logits of the full model with those heads masked to 0,
    with ALiBi (each survivor keeps its own slope) and with absolute positions, with padding; the layers really
    shrink and the config records the original indices."""
    torch.manual_seed(0)
    full = BertForPreTraining(tiny_cfg(position_embedding_type=positions, attn_implementation=impl)).eval()
    ids, types, mask = padded_batch()
    head_mask = mask_without((2, 4), [(layer, h) for layer, hs in REMOVE.items() for h in hs])
    with torch.no_grad():
        masked = masked_run(full, head_mask, ids, types, mask)
        ones = masked_run(full, torch.ones(2, 4), ids, types, mask)
        plain = full(ids, types, mask)
    assert torch.equal(ones.prediction_logits, plain.prediction_logits)  # a mask of ones changes nothing
    assert not torch.allclose(masked.prediction_logits, plain.prediction_logits, atol=1e-3)  # heads matter

    pruned = prune_heads(copy.deepcopy(full), REMOVE).eval()
    with torch.no_grad():
        out = pruned(ids, types, mask)
    real = mask.bool()
    assert torch.allclose(out.prediction_logits[real], masked.prediction_logits[real], atol=TOL)
    assert torch.allclose(out.seq_relationship_logits, masked.seq_relationship_logits, atol=TOL)
    sd = pruned.state_dict()
    assert tuple(sd["bert.encoder.layers.0.attention.qkv.weight"].shape) == (3 * 2 * 8, 32)  # 2 heads of 8 left
    assert tuple(sd["bert.encoder.layers.1.attention.out.weight"].shape) == (32, 3 * 8)
    assert pruned.config.pruned_heads == {"0": [1, 2], "1": [0]} and pruned.bert.config is pruned.config
    assert full.config.pruned_heads == {}  # the source model is untouched

    # pruning again composes: original indices, heads already gone ignored
    prune_heads(pruned, {0: [1, 3]})
    assert pruned.config.pruned_heads == {"0": [1, 2, 3], "1": [0]}
    with torch.no_grad():
        again = pruned(ids, types, mask)
        masked = masked_run(full, mask_without((2, 4), [(0, 1), (0, 2), (0, 3), (1, 0)]), ids, types, mask)
    assert torch.allclose(again.prediction_logits[real], masked.prediction_logits[real], atol=TOL)
    if impl == "eager":  # attention maps keep one row per original head, zero where pruned
        with torch.no_grad():
            maps = pruned.bert(ids, types, mask, output_attentions=True).attentions
        assert tuple(maps[0].shape) == (3, 4, 12, 12) and float(maps[0][:, 1:].abs().sum()) == 0.0

    if positions == "alibi":  # handed one bias for all original heads, each pruned layer picks its own
        from bert2.model.bert import alibi_bias, padding_mask

        core = pruned.bert
        with torch.no_grad():
            shared = core.encoder(core.embeddings(ids, types), alibi_bias(core.alibi_slopes, 12, padding_mask(mask)))
            assert torch.allclose(shared[0][real], core(ids, types, mask).last_hidden_state[real], atol=TOL)

    # a model built from the pruned config (the full model, then its heads taken out) has exactly these shapes:
    # weights load strictly
    rebuilt = build_model("mlm+nsp", pruned.config, {})
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    assert not any(isinstance(m, PrunedAttention) for m in BertForPreTraining(pruned.config).modules())


def test_importance_ranks_a_dead_head_least_and_order_keeps_one_per_layer():
    """A head whose value projection is zero outputs nothing, so the loss cannot depend on its gate: importance
    0, first to go. Scores are L2-normalised per layer; no layer loses its last head."""
    torch.manual_seed(1)
    model = BertForPreTraining(tiny_cfg()).eval()
    hs, H = 8, 32
    with torch.no_grad():  # layer 1, head 2: zero value rows
        model.bert.encoder.layers[1].attention.qkv.weight[2 * H + 2 * hs : 2 * H + 3 * hs] = 0
        model.bert.encoder.layers[1].attention.qkv.bias[2 * H + 2 * hs : 2 * H + 3 * hs] = 0
    ids, types, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[:, 1:4] = ids[:, 1:4]

    def loss(m, batch):
        return m.loss(*batch, labels).loss

    imp = head_importance(model, [(ids, types, mask)], loss)
    assert imp[1, 2] == 0 and bool((imp[0] > 0).all())
    assert torch.allclose(imp.norm(dim=-1), torch.ones(2), atol=1e-5)
    order = pruning_order(imp)
    assert order[0] == (1, 2) and len(order) == 6  # 8 heads, one per layer stays
    assert all(sum(1 for layer, _ in order if layer == i) == 3 for i in (0, 1))
    assert all(p.requires_grad for p in model.parameters())  # restored after the mask-only backward

    # after pruning, the removed heads are NaN and never listed again
    pruned = prune_heads(copy.deepcopy(model), {1: [2]})
    again = head_importance(pruned, [(ids, types, mask)], loss)
    assert torch.isnan(again[1, 2]) and (1, 2) not in pruning_order(again)


def test_head_masked_reaches_task_code_that_knows_no_masks():
    """The context manager hands the mask to every encoder call, so a task's evaluate() runs the masked model."""
    torch.manual_seed(0)
    model = build_model("classify", tiny_cfg(), {"labels": ["a", "b"], "pooling": "cls"}).eval()
    ids, types, mask = padded_batch()
    head_mask = mask_without((2, 4), [(0, 0), (1, 3)])
    with torch.no_grad():
        direct = model(ids, types, mask).logits
        with head_masked(model, head_mask):
            hooked = model(ids, types, mask).logits
        reference = prune_heads(copy.deepcopy(model), {0: [0], 1: [3]})(ids, types, mask).logits
        after = model(ids, types, mask).logits
    assert torch.allclose(hooked, reference, atol=TOL) and not torch.allclose(hooked, direct, rtol=1e-3, atol=0)
    assert torch.equal(after, direct)  # the hook is gone


def test_pruned_heads_config_validation_and_round_trips(tmp_path):
    cfg = Config().with_overrides(["model.pruned_heads={1: [3, 0], 0: [2]}"])
    assert cfg.model.pruned_heads == {"0": [2], "1": [0, 3]}
    assert Config.from_dict(__import__("tomllib").loads(cfg.to_toml())).model.pruned_heads == cfg.model.pruned_heads
    for bad, words in (
        ("{5: [1]}", "layer 5 does not exist"),
        ("{0: [9]}", "head 9 does not exist"),
        ("{0: [0,1,2,3,4,5,6,7]}", "keep at least one per layer"),
        ("[1]", "table of layer"),
    ):
        with pytest.raises(ConfigError, match=words):
            Config().with_overrides([f"model.pruned_heads={bad}"])

    # config.json: transformers' historical key, checked against the shape when read
    from bert2.checkpoint.model_files import hf_config_dict

    d = hf_config_dict(tiny_cfg(pruned_heads={"1": [3]}))
    assert d["pruned_heads"] == {"1": [3]} and model_config_from_hf(d).pruned_heads == {"1": [3]}
    assert "pruned_heads" not in hf_config_dict(tiny_cfg())  # unpruned configs stay transformers' keys
    with pytest.raises(ValueError, match="would lose all 4"):
        model_config_from_hf({**d, "pruned_heads": {"0": [0, 1, 2, 3]}})
    (tmp_path / "config.json").write_text(json.dumps({**d, "pruned_heads": {"7": [0]}}))
    with pytest.raises(CheckpointError, match="layer 7 does not exist"):
        read_config(tmp_path)
    with pytest.raises(PruningError, match="keep at least one per layer"):
        prune_heads(BertForPreTraining(tiny_cfg()), {0: [0, 1, 2, 3]})


def test_how_many_heads_and_curve_counts():
    assert heads_to_remove(16, 2, heads=14) == 14 and heads_to_remove(16, 2, fraction=0.25) == 4
    for kwargs, words in (
        ({"heads": 15}, "at most 14"),
        ({"heads": 0}, "at least 1"),
        ({}, "one of them"),
        ({"heads": 2, "fraction": 0.5}, "one of them"),
        ({"fraction": 1.5}, "between 0 and 1"),
        ({"fraction": 0.01}, "rounds to 0"),
    ):
        with pytest.raises(PruningError, match=words):
            heads_to_remove(16, 2, **kwargs)
    assert curve_counts(14, 4) == list(range(15))
    imp, ev, disjoint = held_out_split(100, 30, 0)  # a random sample for importance, the rest for the curve
    assert disjoint and len(imp) == 30 and len(ev) == 70 and not set(imp) & set(ev) and imp != list(range(30))
    assert len(held_out_split(100, 30, 20)[1]) == 20 and held_out_split(100, 30, 20)[0] == imp  # seeded
    assert held_out_split(5, 8, 0) == ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], False)  # too small: all, and says so
    assert curve_counts(40, 7, step=10) == [0, 7, 10, 20, 30, 40]


# ---- whole checkpoints: CLI, save/load, fine-tune, export -------------------------------------------------------
def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    """A few hundred short English-like documents (the tiny pretraining checkpoint carries no run_config, so the
    held-out split comes from [data], pointed here)."""
    rng = random.Random(0)
    words = (
        "the a city river king music song story war island forest ancient modern small famous runs sings "
        "writes builds finds near far under over during after before"
    ).split()
    docs = [
        "\n".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(5, 12))).capitalize() + "."
            for _ in range(rng.randint(2, 4))
        )
        for _ in range(200)
    ]
    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def _data_sets(corpus: Path, cache: Path) -> list[str]:
    return [
        "--set",
        f'data.corpus="{corpus}"',
        "--set",
        f'data.cache_dir="{cache}"',
        "--set",
        "data.max_seq_length=32",
        "--set",
        "data.validation_fraction=0.3",
        "--set",
        'runtime.device="cpu"',
    ]


@pytest.fixture(scope="module")
def pruned_pretrain(tiny_pretrain_checkpoint, small_corpus, tmp_path_factory):
    """`bert2 prune` on the tiny pretraining checkpoint (2 layers x 2 heads): one head removed, into --out."""
    base = tmp_path_factory.mktemp("pruned")
    out = base / "pruned-bert"
    threads = torch.get_num_threads()
    try:
        code = main(
            [
                "prune",
                str(tiny_pretrain_checkpoint),
                "--heads",
                "1",
                "--batches",
                "2",
                "--eval-batches",
                "2",
                "--batch-size",
                "8",
                "--repeats",
                "1",
                "--out",
                str(out),
                "--json",
                *_data_sets(small_corpus, base / "cache"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return out


def test_cli_prune_writes_a_checkpoint_that_loads_and_matches(pruned_pretrain, tiny_pretrain_checkpoint, capsys):
    from bert2.inference import Predictor

    config = json.loads((pruned_pretrain / "config.json").read_text())
    assert sum(map(len, config["pruned_heads"].values())) == 1
    record = config["bert2"]["pruning"][-1]
    assert record["source"] == str(tiny_pretrain_checkpoint) and len(record["importance"]) == 2
    assert record["curve"][0]["removed"] == 0 and record["params_after"] < record["params_before"]
    assert config["bert2"]["model"]["pruned_heads"] == config["pruned_heads"]
    assert ckpt.read_state(pruned_pretrain)["pruned_from"] == str(tiny_pretrain_checkpoint)

    pruned = Predictor.load(pruned_pretrain)
    full = Predictor.load(tiny_pretrain_checkpoint)
    assert pruned.fill_mask("the capital of france is [MASK] .")  # inference works on the smaller shapes
    layer, heads = next(iter(config["pruned_heads"].items()))
    tok = full.tokenizer(["the river city is small", "a king"], padding=True, return_tensors="pt")
    head_mask = mask_without((2, 2), [(int(layer), h) for h in heads])
    with torch.no_grad():
        a = pruned.model.bert(tok["input_ids"], tok["token_type_ids"], tok["attention_mask"]).last_hidden_state
        b = masked_run(
            full.model.bert, head_mask, tok["input_ids"], tok["token_type_ids"], tok["attention_mask"]
        ).last_hidden_state
    real = tok["attention_mask"].bool()
    assert torch.allclose(a[real], b[real], atol=TOL)


def test_finetune_from_pruned_checkpoint_then_prune_and_export_classifier(pruned_pretrain, tmp_path, capsys):
    """`bert2 finetune --from` a pruned pretraining checkpoint keeps its shapes; the classifier prunes again
    (classify: its task's loss and accuracy) and exports as a full-size transformers model with zero heads that
    computes the same logits."""
    from bert2.tasks.finetuning import run_finetuning

    rng = random.Random(0)
    filler, good, bad = "the a film story plot acting scene".split(), ["wonderful", "great"], ["awful", "boring"]
    rows = [
        {
            "text": " ".join(rng.sample(filler, 4) + [rng.choice(good if i % 2 else bad)]),
            "label": "pos" if i % 2 else "neg",
        }
        for i in range(48)
    ]
    data = tmp_path / "sentiment.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    root = tmp_path / "root"
    sets = {
        "paths.root": f'"{root}"',
        "finetune.task": "classify",
        "finetune.data": f'"{data}"',
        "finetune.batch_size": 8,
        "finetune.max_steps": 3,
        "finetune.warmup_steps": 1,
        "finetune.eval_every": 0,
        "finetune.save_every": 0,
        "finetune.max_seq_length": 32,
        "finetune.doc_stride": 8,
        "finetune.pooling": '"cls"',
        "runtime.device": '"cpu"',
    }
    cfg = Config().with_overrides([f"{k}={v}" for k, v in sets.items()])
    threads = torch.get_num_threads()
    try:
        assert run_finetuning(cfg, [], from_checkpoint=pruned_pretrain).reason == "completed"
        finetuned = ckpt.default_checkpoint(tmp_path / "root", "finetune")
        assert read_config(finetuned)[0].pruned_heads == read_config(pruned_pretrain)[0].pruned_heads
        events = []
        result = run_pruning(
            cfg, finetuned, heads=1, batches=1, eval_batches=1, batch_size=8, repeats=1, callbacks=[events.append]
        )
    finally:
        torch.set_num_threads(threads)
    # default destination: the kind's final/, replacing the previous final (here: the fine-tuned source was best/)
    assert result.path is not None and result.path.parent.name == "final" and result.metric == "accuracy"
    assert sum(map(len, result.pruned_heads.values())) == 2  # one from pretraining, one now
    assert [i.path for i in ckpt.list_checkpoints(root) if i.stage == "final"] == [str(result.path)]
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("EvalEvent") == len(result.curve) and kinds[-1] == "DoneEvent"

    from bert2.checkpoint.hf import export_hf
    from bert2.inference import Predictor

    exported = export_hf(result.path, tmp_path / "hf")
    assert any("zero" in w for w in exported.warnings)
    hf_config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert "pruned_heads" not in hf_config and hf_config["bert2_export"]["zeroed_heads"] == result.pruned_heads
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(tmp_path / "hf"), trust_remote_code=True
    ).eval()
    ours = Predictor.load(result.path).model
    tok = Predictor.load(result.path).tokenizer(
        ["a wonderful film", "the worst boring plot ever"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        theirs = hf(**tok).logits
        mine = ours(tok["input_ids"], tok["token_type_ids"], tok["attention_mask"]).logits
    assert torch.allclose(theirs, mine, atol=TOL)


def test_export_of_pruned_absolute_model_matches_transformers(tmp_path):
    """Without ALiBi the export is plain transformers.BertForMaskedLM (no remote code), zero heads included."""
    from bert2.checkpoint.hf import export_hf
    from bert2.checkpoint.model_files import write_model
    from bert2.data.tokenizer import train_wordpiece

    tokenizer = train_wordpiece(["the cat sat on the mat", "a dog ran to the river and the sea"] * 20, vocab_size=120)
    torch.manual_seed(0)
    model = BertForPreTraining(tiny_cfg(vocab_size=len(tokenizer), position_embedding_type="absolute"))
    prune_heads(model, REMOVE)
    source = ckpt.save_checkpoint(
        tmp_path / "final",
        1,
        lambda d: write_model(model, tokenizer, d, {"task": "mlm+nsp", "nsp": True}),
        {"kind": "pretrain", "task": "mlm+nsp", "metrics": {}},
    )
    assert export_hf(source, tmp_path / "hf", arch="masked-lm").architecture == "BertForMaskedLM"
    hf = transformers.BertForMaskedLM.from_pretrained(str(tmp_path / "hf")).eval()
    ids, types, mask = padded_batch(len(tokenizer))
    with torch.no_grad():
        theirs = hf(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        mine = model.eval()(ids, types, mask).prediction_logits
    real = mask.bool()
    assert torch.allclose(theirs[real], mine[real], atol=TOL)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--heads", "1", "--fraction", "0.5"], "--heads N or --fraction F"),
        (["--heads", "3"], "at most 2 can be removed"),
        ([], "--heads N or --fraction F"),
        (["--fraction", "0.9"], "at most 2 can go"),
        (["--heads", "1", "--batches", "0"], "--batches must be at least 1"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tiny_pretrain_checkpoint, capsys, argv, words):
    code, out, err = _run(capsys, "prune", tiny_pretrain_checkpoint, *argv, "--dry-run")
    assert code == 2 and words in err and err.count("\n") == 1 and not out


def test_default_destination_never_replaces_the_source_silently(tiny_pretrain_root, tmp_path, capsys):
    """The default destination is the kind's final/; when the checkpoint being pruned IS that final, pruning
    refuses (before any work) unless --out or --force."""
    import shutil

    root = tmp_path / "saved_model"
    shutil.copytree(tiny_pretrain_root, root)
    source = ckpt.default_checkpoint(root, "pretrain")
    assert source.parent.name == "final"
    code, _, err = _run(capsys, "prune", source, "--heads", "1")
    assert code == 2 and "would replace" in err and "--out DIR" in err
    code, _, err = _run(capsys, "prune", source, "--heads", "1", "--out", source.parent)
    assert code == 2 and "holds the checkpoint being pruned" in err
