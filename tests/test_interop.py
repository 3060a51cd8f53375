"""Hugging Face interop: `bert2 import-hf` / `bert2 export-hf` and the library functions behind them.

Every model here is tiny (hidden 32, 2 layers, a ~180-token WordPiece vocabulary) and randomly initialised: the
tests check that the same weights compute the same numbers on both sides, not what training taught. The MLM bias
is drawn with a large spread so fill-mask rankings are well separated and cannot flip on float noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers  # a hard dependency: its absence must fail the suite, not skip it

from bert2 import checkpoint as ckpt  # noqa: E402
from bert2.checkpoint.hf import export_hf, hf_config_dict, import_hf  # noqa: E402
from bert2.cli import main  # noqa: E402
from bert2.config import Config, ModelConfig  # noqa: E402
from bert2.inference import Predictor  # noqa: E402

TEXTS = [
    "The capital of France is Paris. The capital of Italy is Rome. Berlin is the capital of Germany.",
    "A small cat sat on the mat while the big dog barked at the moon, and the river flowed to the sea.",
    "Music and painting were the arts of the ancient city; the king and the queen loved every song.",
    "Scientists discovered a new island in the ocean near the old forest and the quiet mountain village.",
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau",
] * 3
SENTENCE = "The capital of France is [MASK]."
TOL = 1e-5


def _hf_config(vocab: int, **extra) -> transformers.BertConfig:
    return transformers.BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        **extra,
    )


def _batch(tokenizer):
    """A padded pair batch: real token types and a real attention mask, so both are exercised."""
    enc = tokenizer(
        ["the capital of france is paris .", "a cat sat on the mat"],
        ["the river flowed to the sea .", "music"],
        padding=True,
        return_tensors="pt",
    )
    return enc["input_ids"], enc["token_type_ids"], enc["attention_mask"]


@pytest.fixture(scope="module")
def tokenizer():
    from bert2.data.tokenizer import train_wordpiece

    tok = train_wordpiece(TEXTS, vocab_size=200)
    assert len(tok) >= 100
    return tok


def _peaked(model: torch.nn.Module, bias_name: str) -> None:
    """Spread the MLM output bias so the top-k tokens are far apart (ties would make rankings arbitrary)."""
    g = torch.Generator().manual_seed(1)
    bias = dict(model.named_parameters())[bias_name]
    with torch.no_grad():
        bias.copy_(torch.randn(bias.shape, generator=g) * 3)


@pytest.fixture(scope="module")
def pretrain_ckpt(tokenizer, tmp_path_factory) -> Path:
    """A bert2 pretraining checkpoint saved exactly as the trainer saves one (see conftest.tiny_pretrain_root)."""

    from bert2.checkpoint.model_files import write_model
    from bert2.model import BertForPreTraining

    cfg = ModelConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        position_embedding_type="absolute",
    )
    torch.manual_seed(0)
    model = BertForPreTraining(cfg, nsp=True)
    _peaked(model, "mlm.bias")
    stage = tmp_path_factory.mktemp("b2") / "pretrain" / "final"

    def payload(directory: Path) -> None:
        write_model(model, tokenizer, directory, {"task": "mlm+nsp", "nsp": True})

    return ckpt.save_checkpoint(stage, 1, payload, {"kind": "pretrain", "task": "mlm+nsp", "metrics": {}})


def _finetuned(task: str, tokenizer, source: Path, root: Path, labels=None) -> Path:
    """A fine-tuned checkpoint written the way bert2/finetuning.py writes one (random head, real metadata)."""
    from safetensors.torch import load_file, save_file

    from bert2.checkpoint.hf import model_config_from_hf
    from bert2.model import load_pretrained
    from bert2.registry import get as get_task
    from bert2.tasks.base import TaskData

    cfg = Config()
    cfg.finetune.decoder_layers = 1
    cfg.finetune.pooling = "cls"  # transformers' BertForSequenceClassification reads the pooled [CLS] vector
    model_cfg = model_config_from_hf(ckpt.read_json(source / ckpt.CONFIG_FILE))
    task_cls = get_task(task)
    meta = {
        "task": task,
        "data": "tiny",
        "source_checkpoint": str(source),
        "max_seq_length": 64,
        "max_answer_length": cfg.finetune.max_answer_length,
        **task_cls.metadata(cfg, tokenizer, TaskData([], [], labels)),
    }
    torch.manual_seed(3)
    model = task_cls.build_model(model_cfg, meta, tokenizer)
    load_pretrained(model, load_file(str(source / ckpt.WEIGHTS_FILE)))
    task_obj = task_cls(tokenizer, meta, [], [], 8)

    def payload(directory: Path) -> None:
        save_file(
            {k: v.detach().contiguous() for k, v in model.state_dict().items()},
            str(directory / ckpt.WEIGHTS_FILE),
            metadata={"format": "pt"},
        )
        task_obj.save_files(model, directory)

    return ckpt.save_checkpoint(root / task, 1, payload, {"kind": "finetune", "task": task, "metrics": {}})


@pytest.fixture(scope="module")
def hf_pretraining_dir(tokenizer, tmp_path_factory) -> Path:
    """A transformers BertForPreTraining directory with tokenizer.json (what save_pretrained writes)."""
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(_hf_config(len(tokenizer))).eval()
    _peaked(model, "cls.predictions.bias")
    out = tmp_path_factory.mktemp("hf") / "bert-pretraining"
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---- import -------------------------------------------------------------------------------------------------
def test_import_bert_for_pretraining_matches_transformers(hf_pretraining_dir, tokenizer, tmp_path):
    result = import_hf(hf_pretraining_dir, tmp_path / "imported")
    assert result.fresh == [] and result.warnings == [] and result.unused == []
    assert result.architecture == "BertForPreTraining"
    hf = transformers.BertForPreTraining.from_pretrained(str(hf_pretraining_dir)).eval()
    ours = Predictor.load(result.path)
    assert ours.task == "mlm+nsp" and ckpt.read_state(result.path)["step"] == 0
    ids, types, mask = _batch(tokenizer)
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask)
        got = ours.model(ids, types, mask)
    real = mask.bool()  # padded rows are meaningless on both sides
    mlm = (ref.prediction_logits[real] - got.prediction_logits[real]).abs().max().item()
    nsp = (ref.seq_relationship_logits - got.seq_relationship_logits).abs().max().item()
    print(f"import parity: MLM max abs diff {mlm:.3g}, NSP {nsp:.3g}")
    assert mlm <= TOL and nsp <= TOL


def test_import_bert_model_only_warns_and_works(tokenizer, tmp_path, capsys):
    """A bare BertModel (no heads, no "bert." prefix) with only a vocab.txt: MLM and NSP heads start fresh."""
    torch.manual_seed(5)
    hf = transformers.BertModel(_hf_config(len(tokenizer))).eval()
    src = tmp_path / "bert-model"
    hf.save_pretrained(str(src))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    (src / "vocab.txt").write_text("".join(t + "\n" for t, _ in vocab), encoding="utf-8")

    code, out, err = _run(capsys, "import-hf", src, tmp_path / "out")
    assert code == 0, err
    assert "warning:" in err and "freshly initialised" in err and "BertModel" in err
    assert "bert2 inference mask" in out
    config = ckpt.read_json(tmp_path / "out" / ckpt.CONFIG_FILE)
    assert config["bert2"]["imported_from"]["fresh"] == ["mlm", "nsp"]

    again = import_hf(src, tmp_path / "lib")
    assert again.fresh == ["mlm", "nsp"] and any("fill-mask" in w for w in again.warnings)
    ours = Predictor.load(tmp_path / "out")
    ids, types, mask = _batch(ours.tokenizer)
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask)
        got = ours.model.bert(ids, types, mask)
    real = mask.bool()
    assert (ref.last_hidden_state[real] - got.last_hidden_state[real]).abs().max().item() <= TOL
    assert (ref.pooler_output - got.pooler_output).abs().max().item() <= TOL
    assert len(ours.fill_mask(SENTENCE, top_k=3)[0]) == 3  # works, even if the guesses mean nothing yet

    # ...and fine-tuning reads the imported encoder (what `bert2 finetune --from` does).
    from safetensors.torch import load_file

    from bert2.model import BertForSequenceClassification, load_pretrained

    report = load_pretrained(
        BertForSequenceClassification(ours.model.config, 2), load_file(str(tmp_path / "out" / ckpt.WEIGHTS_FILE))
    )
    assert report.missing == ["classifier.bias", "classifier.weight"]


def test_import_masked_lm_gets_fresh_nsp_and_pooler(tokenizer, tmp_path):
    torch.manual_seed(6)
    src = tmp_path / "mlm"
    transformers.BertForMaskedLM(_hf_config(len(tokenizer))).save_pretrained(str(src))
    tokenizer.save_pretrained(str(src))
    result = import_hf(src, tmp_path / "out")
    assert result.architecture == "BertForMaskedLM"
    assert result.fresh == ["bert.pooler", "nsp"]
    assert "next-sentence" in result.warnings[0]


def test_import_cuts_padded_vocabulary_to_the_tokenizer(tokenizer, tmp_path):
    """A checkpoint whose embedding table is padded beyond the tokenizer (vocab_size rounded up) imports, cut."""
    torch.manual_seed(7)
    src = tmp_path / "padded"
    transformers.BertForPreTraining(_hf_config(len(tokenizer) + 8)).save_pretrained(str(src))
    tokenizer.save_pretrained(str(src))
    result = import_hf(src, tmp_path / "out")
    assert result.model_config.vocab_size == len(tokenizer)
    assert any("rows" in w for w in result.warnings)
    assert Predictor.load(result.path).fill_mask(SENTENCE, top_k=1)


def test_import_refuses_non_empty_output_without_force(hf_pretraining_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    code, _, err = _run(capsys, "import-hf", hf_pretraining_dir, out, "--force")
    assert code == 2 and "does not look like a model directory" in err  # --force never deletes arbitrary dirs
    code, _, err = _run(capsys, "import-hf", hf_pretraining_dir, out)
    assert code == 2 and "--force" in err and (out / "notes.txt").exists()
    (out / "notes.txt").unlink()
    assert _run(capsys, "import-hf", hf_pretraining_dir, out)[0] == 0  # an empty directory is fine
    assert _run(capsys, "import-hf", hf_pretraining_dir, out)[0] == 2
    code, _, err = _run(capsys, "import-hf", hf_pretraining_dir, out, "--force")
    assert code == 0, err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # no leftovers


def _one_line_error(code: int, err: str) -> str:
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


def test_cli_import_errors_are_one_line(tmp_path, capsys, monkeypatch):
    err = _one_line_error(*_run(capsys, "import-hf", tmp_path / "missing", tmp_path / "out")[::2])
    assert "not found" in err

    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768}))
    err = _one_line_error(*_run(capsys, "import-hf", gpt, tmp_path / "out")[::2])
    assert "'gpt2'" in err and "not BERT" in err

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, as the test machine is: must fail at once
    err = _one_line_error(*_run(capsys, "import-hf", "bert2-tests/no-such-model", tmp_path / "out")[::2])
    assert "cannot be reached" in err and "HF_HUB_OFFLINE" in err
    assert not (tmp_path / "out").exists()


# ---- export -------------------------------------------------------------------------------------------------
def test_round_trip_bert2_hf_bert2_is_exact(pretrain_ckpt, tokenizer, tmp_path):
    exported = export_hf(pretrain_ckpt, tmp_path / "hf")
    assert exported.architecture == "BertForPreTraining"
    back = import_hf(exported.path, tmp_path / "back")
    assert back.fresh == [] and back.warnings == []
    a, b = Predictor.load(pretrain_ckpt), Predictor.load(back.path)
    for name, tensor in a.model.state_dict().items():
        assert torch.equal(tensor, b.model.state_dict()[name]), name
    ids, types, mask = _batch(tokenizer)
    with torch.no_grad():
        x, y = a.model(ids, types, mask), b.model(ids, types, mask)
    assert torch.equal(x.prediction_logits, y.prediction_logits)
    assert torch.equal(x.seq_relationship_logits, y.seq_relationship_logits)


def test_export_pretraining_loads_cleanly_and_fill_mask_agrees(pretrain_ckpt, tokenizer, tmp_path, capsys):
    code, out, err = _run(capsys, "export-hf", pretrain_ckpt, tmp_path / "pre")
    assert code == 0, err
    hf, info = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "pre"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ours = Predictor.load(pretrain_ckpt)
    ids, types, mask = _batch(tokenizer)
    with torch.no_grad():
        ref, got = hf.eval()(input_ids=ids, token_type_ids=types, attention_mask=mask), ours.model(ids, types, mask)
    real = mask.bool()
    mlm = (ref.prediction_logits[real] - got.prediction_logits[real]).abs().max().item()
    nsp = (ref.seq_relationship_logits - got.seq_relationship_logits).abs().max().item()
    print(f"export parity: MLM max abs diff {mlm:.3g}, NSP {nsp:.3g}")
    assert mlm <= TOL and nsp <= TOL

    export_hf(pretrain_ckpt, tmp_path / "mlm", arch="masked-lm")
    _, info = transformers.BertForMaskedLM.from_pretrained(str(tmp_path / "mlm"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    fill = transformers.pipeline("fill-mask", model=str(tmp_path / "mlm"), top_k=5)
    theirs = fill(SENTENCE)
    mine = ours.fill_mask(SENTENCE, top_k=5)[0]
    assert [p["token"] for p in mine] == tokenizer.convert_ids_to_tokens([p["token"] for p in theirs])
    assert max(abs(p["score"] - q["score"]) for p, q in zip(mine, theirs)) <= 1e-5


def test_export_classify_and_span_qa(pretrain_ckpt, tokenizer, tmp_path):
    root = tmp_path / "finetune"
    labels = ["negative", "positive", "neutral"]
    for task, cls_name, extra in [
        ("classify", "BertForSequenceClassification", labels),
        ("qa-span", "BertForQuestionAnswering", None),
    ]:
        source = _finetuned(task, tokenizer, pretrain_ckpt, root, extra)
        result = export_hf(source, tmp_path / task)
        assert result.architecture == cls_name
        hf, info = getattr(transformers, cls_name).from_pretrained(str(result.path), output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
        ours = Predictor.load(source).model
        enc = tokenizer(
            ["what is the capital of france ?"], ["paris is the capital of france ."], return_tensors="pt"
        )  # no padding: bert2 pushes padded span logits to -inf, HF does not
        ids, types, mask = enc["input_ids"], enc["token_type_ids"], enc["attention_mask"]
        with torch.no_grad():
            ref, got = hf.eval()(input_ids=ids, token_type_ids=types, attention_mask=mask), ours(ids, types, mask)
        if task == "classify":
            assert hf.config.id2label == dict(enumerate(labels))
            diff = (ref.logits - got.logits).abs().max().item()
        else:
            diff = max(
                (ref.start_logits - got.start_logits).abs().max().item(),
                (ref.end_logits - got.end_logits).abs().max().item(),
            )
        print(f"{task} export parity: max abs diff {diff:.3g}")
        assert diff <= TOL, (task, diff)


def test_export_generative_qa_and_bad_arch_are_clear_errors(pretrain_ckpt, tokenizer, tmp_path, capsys):
    source = _finetuned("qa", tokenizer, pretrain_ckpt, tmp_path / "finetune")
    err = _one_line_error(*_run(capsys, "export-hf", source, tmp_path / "out")[::2])
    assert "generative QA" in err and "no transformers" in err
    err = _one_line_error(*_run(capsys, "export-hf", tmp_path / "nope", tmp_path / "out")[::2])
    assert "not found" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("layout", ["legacy-bin", "sharded-safetensors"])
def test_import_reads_bin_legacy_names_and_shards(tokenizer, tmp_path, layout):
    """Older hub checkpoints: pytorch_model.bin with TF-era LayerNorm.gamma/beta names, no "architectures", only a
    vocab.txt; large ones: safetensors shards with an index. Both import to the same numbers."""
    from safetensors.torch import save_file

    torch.manual_seed(8)
    hf = transformers.BertForPreTraining(_hf_config(len(tokenizer))).eval()
    src = tmp_path / layout
    src.mkdir()
    config = {k: v for k, v in hf.config.to_dict().items() if k != "architectures"}
    (src / "config.json").write_text(json.dumps(config), encoding="utf-8")
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    (src / "vocab.txt").write_text("".join(t + "\n" for t, _ in vocab), encoding="utf-8")
    sd = {k: v.clone() for k, v in hf.state_dict().items()}
    if layout == "legacy-bin":
        sd = {
            k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
            for k, v in sd.items()
        }
        torch.save(sd, src / "pytorch_model.bin")
    else:
        names = sorted(sd)
        shards = {
            "model-00001-of-00002.safetensors": names[: len(names) // 2],
            "model-00002-of-00002.safetensors": names[len(names) // 2 :],
        }
        for shard, keys in shards.items():
            save_file({k: sd[k].contiguous() for k in keys if "decoder" not in k}, str(src / shard))
        index = {"weight_map": {k: shard for shard, keys in shards.items() for k in keys if "decoder" not in k}}
        (src / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    result = import_hf(src, tmp_path / "out")
    assert result.architecture == "BertForPreTraining" and result.fresh == [] and result.unused == []
    ours = Predictor.load(result.path)
    ids, types, mask = _batch(ours.tokenizer)
    with torch.no_grad():
        ref, got = hf(input_ids=ids, token_type_ids=types, attention_mask=mask), ours.model(ids, types, mask)
    real = mask.bool()
    assert (ref.prediction_logits[real] - got.prediction_logits[real]).abs().max().item() <= TOL


def test_export_mlm_only_checkpoint_is_masked_lm(tokenizer, tmp_path):

    from bert2.checkpoint.model_files import write_model
    from bert2.model import BertForPreTraining

    cfg = ModelConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        position_embedding_type="absolute",
    )
    model = BertForPreTraining(cfg, nsp=False)

    def payload(directory: Path) -> None:
        write_model(model, tokenizer, directory, {"task": "mlm", "nsp": False})

    source = ckpt.save_checkpoint(tmp_path / "final", 1, payload, {"kind": "pretrain", "task": "mlm"})
    assert export_hf(source, tmp_path / "out").architecture == "BertForMaskedLM"
    _, info = transformers.BertForMaskedLM.from_pretrained(str(tmp_path / "out"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with pytest.raises(Exception, match="masked-lm"):
        export_hf(source, tmp_path / "other", arch="pretraining")


def _loads_back_but_is_not_exported(cfg: ModelConfig, tokenizer, tmp_path: Path, refusal: str):
    """Save a fresh pretraining model of `cfg` as the trainer does, check that inference rebuilds exactly that
    model from config.json, and that export_hf refuses it (message matching `refusal`) without writing anything.
    Returns (model, predictor)."""

    from bert2.checkpoint.model_files import write_model
    from bert2.errors import CheckpointError
    from bert2.model import BertForPreTraining

    torch.manual_seed(0)
    model = BertForPreTraining(cfg).eval()

    def payload(directory: Path) -> None:
        write_model(model, tokenizer, directory, {"task": "mlm+nsp", "nsp": True})

    source = ckpt.save_checkpoint(tmp_path / "final", 1, payload, {"kind": "pretrain", "task": "mlm+nsp"})
    predictor = Predictor.load(source)
    ids = torch.tensor([[tokenizer.cls_token_id, 7, 8, tokenizer.mask_token_id, tokenizer.sep_token_id]])
    with torch.no_grad():
        assert torch.equal(predictor.model(ids).prediction_logits, model(ids).prediction_logits)
    with pytest.raises(CheckpointError, match=refusal):
        export_hf(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    return model, predictor


def test_pre_ln_checkpoint_loads_back_and_refuses_export(tokenizer, tmp_path):
    """A pre-LN model (model.norm_placement = "pre") keeps that setting in config.json, so inference rebuilds the
    same architecture; export says why transformers cannot hold it instead of writing wrong weights."""
    cfg = ModelConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        norm_placement="pre",
    )
    model, predictor = _loads_back_but_is_not_exported(cfg, tokenizer, tmp_path, "pre-LN")
    assert "bert.encoder.final_norm.weight" in model.state_dict()
    assert predictor.model.config.norm_placement == "pre"


def test_glu_checkpoint_loads_back_and_refuses_export(tokenizer, tmp_path):
    """A gated feed-forward model (model.feed_forward = "glu") keeps that setting in config.json, so inference
    rebuilds the same layers (a (2I, H) first projection); transformers' BERT has no such layer: export refuses."""
    cfg = ModelConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=40,
        max_position_embeddings=64,
        feed_forward="glu",
    )
    model, predictor = _loads_back_but_is_not_exported(cfg, tokenizer, tmp_path, "gated feed-forward")
    assert model.state_dict()["bert.encoder.layers.0.ffn.up.weight"].shape == (80, 32)
    assert predictor.model.config.feed_forward == "glu"


def _saved(model: torch.nn.Module, tokenizer, stage: Path, meta: dict) -> Path:
    from bert2.checkpoint.model_files import write_model

    def payload(directory: Path) -> None:
        write_model(model, tokenizer, directory, meta)

    return ckpt.save_checkpoint(
        stage, 1, payload, {"kind": "pretrain", "task": meta["task"], "metrics": {"loss": 3.25, "mlm_accuracy": 0.41}}
    )


def test_alibi_model_exports_with_remote_code_and_fill_mask_matches(tokenizer, tmp_path):
    """bert2's default (ALiBi) leaves bert2: the export ships modelling code beside the weights, transformers'
    fill-mask pipeline loads it with trust_remote_code=True and gives the same top-5 tokens and scores as
    `bert2 inference mask`, with and without padding in the batch; the directory carries a model card and no
    local absolute path."""
    from bert2.checkpoint.hf import model_config_from_hf
    from bert2.model import BertForPreTraining

    cfg = ModelConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    assert cfg.position_embedding_type == "alibi"
    torch.manual_seed(0)
    model = BertForPreTraining(cfg).eval()
    _peaked(model, "mlm.bias")
    assert not [k for k in model.state_dict() if "alibi" in k]  # fixed slopes are not weights
    source = _saved(model, tokenizer, tmp_path / "transformer/pretrain/final", {"task": "mlm+nsp", "nsp": True})
    assert Predictor.load(source).model.config.position_embedding_type == "alibi"

    out = tmp_path / "hf-alibi"
    result = export_hf(source, out, arch="masked-lm")
    assert result.architecture == "Bert2AlibiForMaskedLM"
    assert {"modeling_bert2.py", "configuration_bert2.py", "README.md"} <= {f.name for f in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForMaskedLM"] == "modeling_bert2.Bert2AlibiForMaskedLM"
    for f in out.iterdir():  # shareable: no path of this machine anywhere
        assert str(tmp_path) not in f.read_text(errors="ignore"), f.name

    ours = Predictor.load(source)
    pipe = transformers.pipeline("fill-mask", model=str(out), trust_remote_code=True, top_k=5)
    for text in (SENTENCE, "a small cat [MASK] on the mat while the big dog barked at the moon"):
        theirs = pipe(text)
        mine = ours.fill_mask(text, top_k=5)[0]
        assert tokenizer.convert_ids_to_tokens([r["token"] for r in theirs]) == [p["token"] for p in mine]
        assert max(abs(r["score"] - p["score"]) for r, p in zip(theirs, mine)) <= 1e-4
    # padding: a batch of two lengths gives each sentence the same logits as alone
    hf = transformers.AutoModelForMaskedLM.from_pretrained(str(out), trust_remote_code=True).eval()
    ids, types, mask = _batch(tokenizer)
    with torch.no_grad():
        theirs = hf(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        mine = model(ids, types, mask).prediction_logits
    real = mask.bool()
    assert torch.allclose(theirs[real], mine[real], atol=TOL)

    card = (out / "README.md").read_text()
    assert card.startswith('---\nlibrary_name: "transformers"\npipeline_tag: "fill-mask"')
    assert "trust_remote_code=True" in card and "mlm_accuracy" in card and "transformer/pretrain/final" in card
    assert "imdb" not in card  # a pretraining model's card names its corpus, not the fine-tuning default

    hf_cfg = {k: v for k, v in hf_config_dict(cfg).items() if k != "position_embedding_type"}
    assert model_config_from_hf(hf_cfg).position_embedding_type == "absolute"  # transformers' own files
    with pytest.raises(ValueError, match="relative_key"):
        model_config_from_hf({**hf_cfg, "position_embedding_type": "relative_key"})


def test_alibi_classifier_span_qa_and_ner_export_with_remote_code(tokenizer, tmp_path):
    """Fine-tuned ALiBi heads export the same way and compute the same logits in transformers."""
    from bert2.checkpoint.model_files import build_model

    cfg = ModelConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    ids, types, mask = _batch(tokenizer)
    for task, meta, auto in (
        ("classify", {"labels": ["neg", "pos"], "pooling": "cls"}, transformers.AutoModelForSequenceClassification),
        ("qa-span", {}, transformers.AutoModelForQuestionAnswering),
        ("ner", {"labels": ["O", "B-PER", "I-PER"]}, transformers.AutoModelForTokenClassification),
    ):
        torch.manual_seed(0)
        head = build_model(task, cfg, meta).eval()
        source = _saved(head, tokenizer, tmp_path / task / "final", {"task": task, **meta})
        out = tmp_path / f"hf-{task}"
        assert export_hf(source, out).architecture.startswith("Bert2Alibi")
        hf = auto.from_pretrained(str(out), trust_remote_code=True).eval()
        with torch.no_grad():
            theirs = hf(input_ids=ids, token_type_ids=types, attention_mask=mask)
            mine = head(ids, types, mask)
        if task == "classify":
            assert torch.allclose(theirs.logits, mine.logits, atol=TOL)
            assert 'pipeline_tag: "text-classification"' in (out / "README.md").read_text()
        elif task == "ner":  # one row per token; the BIO tags travel as id2label
            assert hf.config.id2label == {0: "O", 1: "B-PER", 2: "I-PER"}
            assert torch.allclose(theirs.logits[mask.bool()], mine.logits[mask.bool()], atol=TOL)
            assert 'pipeline_tag: "token-classification"' in (out / "README.md").read_text()
        else:
            real = mask.bool()
            assert torch.allclose(theirs.start_logits[real], mine.start_logits[real], atol=TOL)
            assert torch.allclose(theirs.end_logits[real], mine.end_logits[real], atol=TOL)
