"""Pretraining end to end through run_pretraining: loss falls, the directories fill, exact resume with real MLM
masking, and gradient accumulation that equals one big batch."""

import json
import threading

import pytest
import torch

from bert2 import checkpoint as ckpt
from bert2.config import Config
from bert2.tasks.pretraining import PretrainingTask, run_pretraining
from bert2.training.events import EvalEvent, StepEvent


def tiny_cfg(tmp_path, corpus, **pretrain) -> Config:
    cfg = Config()
    cfg.paths.root = str(tmp_path / "saved_model")
    cfg.data.corpus = str(corpus)
    cfg.data.cache_dir = str(tmp_path / "cache")
    cfg.data.max_seq_length = 32
    cfg.model.vocab_size = 300
    cfg.model.hidden_size, cfg.model.num_hidden_layers, cfg.model.num_attention_heads = 32, 1, 2
    cfg.model.intermediate_size = 64
    p = cfg.pretrain
    p.batch_size, p.learning_rate, p.warmup_steps, p.max_steps = 8, 3e-3, 5, 60
    p.eval_every, p.save_every, p.log_every, p.keep_last, p.eval_batches = 20, 20, 5, 2, 0
    for k, v in pretrain.items():
        setattr(p, k, v)
    assert cfg.validate() == []
    return cfg


def test_tiny_run_learns_and_fills_directories(tmp_path, english_corpus):
    cfg = tiny_cfg(tmp_path, english_corpus)
    events = []
    done = run_pretraining(cfg, [events.append], probes=("the cat [MASK] the dog .",))
    assert done.reason == "completed" and done.step == 60
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert evals[-1].metrics["mlm_loss"] < evals[0].metrics["mlm_loss"] - 0.3, [e.metrics for e in evals]
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[-1].loss < steps[0].loss
    assert {"mlm", "nsp"} <= set(steps[0].parts) and steps[0].tokens_per_s > 0
    assert evals[0].probes and len(evals[0].probes[0]["predictions"][0]) == 5
    root = tmp_path / "saved_model"
    for kind in ("transformer/pretrain", "bert/finetuning"):
        for stage in ("checkpoint", "best", "final"):
            assert (root / kind / stage).is_dir()
    for stage in ("checkpoint", "best", "final"):
        assert ckpt.latest_in(root / "transformer/pretrain" / stage) is not None, stage
    final = ckpt.latest_in(root / "transformer/pretrain/final")
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(str(final))  # tokenizer saved with the checkpoint
    assert tok("the cat", "the dog")["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    lines = (root / "transformer/pretrain/metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["type"] in ("LogEvent", "StartEvent")
    assert any(json.loads(line)["type"] == "DoneEvent" for line in lines)


def test_resume_continues_exactly(tmp_path, english_corpus):
    full_events = []
    cfg_a = tiny_cfg(tmp_path / "a", english_corpus, max_steps=16, eval_every=0, save_every=0, log_every=1)
    cfg_a.data.cache_dir = str(tmp_path / "cache")  # same tokenizer and examples for both runs
    run_pretraining(cfg_a, [full_events.append])

    cfg_b = tiny_cfg(tmp_path / "b", english_corpus, max_steps=16, eval_every=0, save_every=0, log_every=1)
    cfg_b.data.cache_dir = str(tmp_path / "cache")
    stop = threading.Event()
    part_events = []

    def stop_at_7(e):
        part_events.append(e)
        if isinstance(e, StepEvent) and e.step == 7:
            stop.set()

    assert run_pretraining(cfg_b, [stop_at_7], stop).reason == "stopped"
    assert run_pretraining(cfg_b, [part_events.append], resume=True).reason == "completed"

    a = {e.step: e.loss for e in full_events if isinstance(e, StepEvent)}
    b = {e.step: e.loss for e in part_events if isinstance(e, StepEvent)}
    assert sorted(b) == list(range(1, 17))
    assert a == pytest.approx(b, rel=1e-5)
    from safetensors.torch import load_file

    wa = load_file(str(ckpt.latest_in(tmp_path / "a/saved_model/transformer/pretrain/final") / "model.safetensors"))
    wb = load_file(str(ckpt.latest_in(tmp_path / "b/saved_model/transformer/pretrain/final") / "model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_grad_accumulation_4x8_equals_32(tmp_path, english_corpus):
    from bert2.data.pretraining import prepare_pretraining_data
    from bert2.model import BertForPreTraining

    cfg = tiny_cfg(tmp_path, english_corpus)
    cfg.model.hidden_dropout_prob = 0.0  # dropout draws differ between the two ways; the maths must not
    data = prepare_pretraining_data(cfg)
    task = PretrainingTask(cfg, data.tokenizer, data.validation)
    batch = task.collate([data.train[i] for i in range(32)])
    torch.manual_seed(0)
    model_cfg = cfg.model
    model_cfg.vocab_size = len(data.tokenizer)
    model = BertForPreTraining(model_cfg)

    def grads_of(micros):
        model.zero_grad()
        totals = {}
        for b in micros:
            for k, v in task.count(b).items():
                totals[k] = totals.get(k, 0) + v
        for b in micros:
            loss, _ = task.loss(model, b, totals)
            loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    # Pad the big batch's pieces separately: micro-batches are collated on their own in training.
    def piece(i):
        sl = slice(8 * i, 8 * (i + 1))
        width = int(batch["attention_mask"][sl].sum(1).max())
        return {k: (v[sl, :width] if v.dim() == 2 else v[sl]) for k, v in batch.items()}

    one = grads_of([batch])
    four = grads_of([piece(i) for i in range(4)])
    # The micro-batches hold different numbers of masked tokens, so averaging micro means would differ.
    counts = [int((piece(i)["labels"] != -100).sum()) for i in range(4)]
    assert len(set(counts)) > 1
    for name in one:
        assert torch.allclose(one[name], four[name], atol=1e-5, rtol=1e-4), name


def test_init_from_starts_a_new_run_from_weights(tmp_path, english_corpus, tiny_pretrain_checkpoint):
    from safetensors.torch import load_file

    from bert2.tasks.pretraining import build_pretraining_trainer

    cfg = tiny_cfg(tmp_path, english_corpus, max_steps=3, eval_every=0, save_every=0)
    trainer = build_pretraining_trainer(cfg, [], init_from=tiny_pretrain_checkpoint)
    saved = load_file(str(tiny_pretrain_checkpoint / "model.safetensors"))
    ours = trainer.raw_model.state_dict()
    assert all(torch.equal(ours[k], saved[k]) for k in saved)  # the checkpoint's architecture and weights
    assert trainer.raw_model.config.hidden_size == 32 and trainer.step == 0
    assert trainer.fit().reason == "completed"
    final = ckpt.latest_in(tmp_path / "saved_model/transformer/pretrain/final")
    assert ckpt.read_state(final)["step"] == 3


def test_evaluation_masks_bert_rate_whatever_the_training_rate(word_tokenizer):
    """Held-out masked-token accuracy is scored at a fixed 15% of tokens (data.eval_mlm_probability), so a run
    trained at 30% masking is compared with a 15% one on the same test; 0 restores the training rate."""
    from bert2.model import BertForPreTraining

    cfg = Config()
    cfg.data.mlm_probability = 0.6
    cfg.model.vocab_size = len(word_tokenizer)
    cfg.model.hidden_size, cfg.model.num_hidden_layers, cfg.model.num_attention_heads = 16, 1, 2
    cfg.model.intermediate_size = 32
    cfg.pretrain.batch_size, cfg.pretrain.eval_batches = 16, 0
    ids = word_tokenizer.convert_tokens_to_ids(word_tokenizer.get_vocab().keys())
    words = [i for i in ids if i not in word_tokenizer.all_special_ids][:40]
    cls, sep = word_tokenizer.cls_token_id, word_tokenizer.sep_token_id
    validation = [
        {"input_ids": [cls, *words[:30], sep], "token_type_ids": [0] * 32, "next_sentence_label": i % 2}
        for i in range(64)
    ]
    model = BertForPreTraining(cfg.model)
    seen: list[float] = []
    real_loss = model.loss

    def counting_loss(ids, types, mask, labels, nsp=None):
        seen.append(float((labels != -100).sum()) / (ids.shape[0] * 30))  # share of the 30 maskable tokens
        return real_loss(ids, types, mask, labels, nsp)

    model.loss = counting_loss
    PretrainingTask(cfg, word_tokenizer, validation).evaluate(model)
    fixed = sum(seen) / len(seen)
    seen.clear()
    cfg.data.eval_mlm_probability = 0.0
    PretrainingTask(cfg, word_tokenizer, validation).evaluate(model)
    training_rate = sum(seen) / len(seen)
    assert abs(fixed - 0.15) < 0.03 and abs(training_rate - 0.6) < 0.05, (fixed, training_rate)
