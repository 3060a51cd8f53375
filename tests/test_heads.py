"""Fine-tuning heads: initialisation from pretraining weights, the span head, the generative decoder, greedy and
beam search, and span post-processing on hand-made logits."""

import pytest
import torch

from bert2.checkpoint.model_files import build_model
from bert2.config import ModelConfig
from bert2.errors import CheckpointError
from bert2.model import (
    BertForGenerativeQA,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    load_pretrained,
)

CFG = ModelConfig(
    vocab_size=120,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
)
START, EOS, PAD, MASK = 2, 3, 0, 4


def gen_model(seed=0):
    torch.manual_seed(seed)
    return BertForGenerativeQA(
        CFG,
        decoder_layers=2,
        max_target_positions=8,
        start_token_id=START,
        eos_token_id=EOS,
        suppress_token_ids=(MASK, 1),
    ).eval()


def inputs(b=3, t=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, CFG.vocab_size, (b, t), generator=g)  # (B, T)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[0, 7:] = 0  # one padded row
    ids[0, 7:] = PAD
    return ids, torch.zeros_like(ids), mask


def test_load_pretrained_copies_encoder_and_reports_the_rest():
    torch.manual_seed(0)
    pre = BertForPreTraining(CFG)
    state = pre.state_dict()
    clf = BertForSequenceClassification(CFG, num_labels=3)
    report = load_pretrained(clf, state)
    for k, v in clf.bert.state_dict().items():
        assert torch.equal(v, state[f"bert.{k}"]), k
    assert report.missing == ["classifier.bias", "classifier.weight"]
    assert any(k.startswith("mlm.") for k in report.unused) and "nsp.weight" in report.unused
    assert "classifier.*" in report.summary()

    gen = BertForGenerativeQA(CFG, 1, 8, START, EOS)
    report = load_pretrained(gen, state)
    assert torch.equal(gen.lm_head.transform.weight, state["mlm.transform.weight"])  # MLM head reused
    assert "bert.pooler.dense.weight" in report.unused  # QA heads have no pooler
    assert all(k.startswith(("decoder", "decoder_", "copy_")) for k in report.missing)  # decoder and copy are new

    span = BertForQuestionAnswering(CFG)
    load_pretrained(span, state)
    other = BertForPreTraining(
        ModelConfig(
            vocab_size=120,
            hidden_size=48,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    )
    with pytest.raises(CheckpointError, match="shape"):
        load_pretrained(BertForQuestionAnswering(CFG), other.state_dict())
    with pytest.raises(CheckpointError, match="encoder weights"):
        load_pretrained(BertForQuestionAnswering(CFG), {"mlm.bias": state["mlm.bias"]})


def test_build_head_from_metadata():
    assert build_model("classify", CFG, {"labels": ["a", "b", "c"]}).classifier.out_features == 3
    assert isinstance(build_model("qa-span", CFG, {}), BertForQuestionAnswering)
    qa = build_model("qa", CFG, {"decoder_layers": 1, "max_answer_length": 6, "start_token_id": 2, "eos_token_id": 3})
    assert len(qa.decoder) == 1 and qa.max_target_positions == 6
    with pytest.raises(CheckpointError):
        build_model("classify", CFG, {"labels": ["only"]})
    with pytest.raises(CheckpointError):
        build_model("qa", CFG, {})
    with pytest.raises(CheckpointError):
        build_model("summarise", CFG, {})


def test_span_head_shapes_and_padding():
    torch.manual_seed(0)
    model = BertForQuestionAnswering(CFG).eval()
    ids, types, mask = inputs()
    out = model(ids, types, mask, start_positions=torch.tensor([1, 2, 3]), end_positions=torch.tensor([2, 2, 99]))
    assert out.start_logits.shape == (3, 10) and out.end_logits.shape == (3, 10)
    assert bool((out.start_logits[0, 7:] < -1e30).all())  # padding can never be a span boundary
    assert torch.isfinite(out.loss)  # an out-of-range position is clamped, not an error


def test_generative_forward_is_causal_and_loss_is_token_mean():
    model = gen_model()
    ids, types, mask = inputs()
    dec = torch.tensor([[START, 10, 11, 12], [START, 20, 21, PAD], [START, 30, PAD, PAD]])
    labels = torch.tensor([[10, 11, 12, EOS], [20, 21, EOS, -100], [30, EOS, -100, -100]])
    out = model(ids, types, mask, decoder_input_ids=dec, labels=labels)
    full = model(ids, types, mask, decoder_input_ids=dec).logits  # (B, T, V)
    sel = labels != -100
    expected = torch.nn.functional.cross_entropy(full[sel], labels[sel])
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert int(out.token_count) == 9
    changed = dec.clone()
    changed[:, 3] = 50  # a later target token must not change earlier predictions
    again = model(ids, types, mask, decoder_input_ids=changed).logits
    assert torch.allclose(full[:, :3], again[:, :3], atol=1e-5)


def test_beam_search_is_at_least_as_likely_as_greedy():
    for seed in range(3):
        model = gen_model(seed)
        ids, types, mask = inputs(b=4, seed=seed + 10)
        greedy = model.generate(ids, types, mask, max_length=6, num_beams=1)
        beam = model.generate(ids, types, mask, max_length=6, num_beams=4)
        rescored_g = model.sequence_log_prob(ids, types, mask, greedy.sequences, greedy.finished)
        rescored_b = model.sequence_log_prob(ids, types, mask, beam.sequences, beam.finished)
        assert torch.allclose(rescored_g, greedy.scores, atol=1e-4)  # reported scores are the model's likelihood
        assert torch.allclose(rescored_b, beam.scores, atol=1e-4)
        assert bool((rescored_b >= rescored_g - 1e-5).all())
        # the beam search itself (without the greedy candidate) reports the likelihood of what it returns
        source = model.encode(ids, types, mask)
        raw = model._beam(source, 6, 4)
        assert torch.allclose(
            model.sequence_log_prob(ids, types, mask, raw.sequences, raw.finished), raw.scores, atol=1e-4
        )
        for seq, done in zip(beam.sequences + greedy.sequences, beam.finished + greedy.finished):
            assert len(seq) + int(done) <= 6
            assert not {PAD, START, MASK, 1} & set(seq)


def test_beam_of_one_equals_greedy_and_max_length_is_capped():
    model = gen_model(3)
    ids, types, mask = inputs()
    a = model.generate(ids, types, mask, max_length=5, num_beams=1)
    source = model.encode(ids, types, mask)
    b = model._beam(source, 5, 1)
    assert a.sequences == b.sequences and torch.allclose(a.scores, b.scores)
    long = model.generate(ids, types, mask, max_length=100)  # capped at the decoder's 8 positions
    assert all(len(s) + int(f) <= 8 for s, f in zip(long.sequences, long.finished))
    assert model.training is False


def test_best_span_on_hand_made_logits():
    from bert2.tasks.qa_span import best_span

    # tokens: [CLS] q q [SEP] c0 c1 c2 c3 c4 [SEP]; context tokens 4..8
    offsets = [None, None, None, None, (0, 5), (6, 9), (10, 15), (16, 20), (21, 25), None]
    start = [9.0, 8.0, 0, 0, 0, 1.0, 3.0, 0, 0, 9.0]  # the largest starts are outside the context
    end = [9.0, 0, 0, 0, 0, 2.0, 0, 4.0, 0, 9.0]
    i, j, p = best_span(start, end, offsets, n_best=5, max_answer_length=10)
    assert (i, j) == (6, 7) and 0 < p <= 1
    # best end before best start: must pair to a valid span instead
    start2 = [0, 0, 0, 0, 0, 0, 0, 5.0, 0, 0]
    end2 = [0, 0, 0, 0, 0, 5.0, 0, 1.0, 0, 0]
    assert best_span(start2, end2, offsets)[:2] == (7, 7)
    # too long: (4, 8) is the best pair but spans 5 tokens
    start3 = [0, 0, 0, 0, 6.0, 0, 0, 0, 0, 0]
    end3 = [0, 0, 0, 0, 1.0, 0, 0, 0, 6.0, 0]
    assert best_span(start3, end3, offsets, max_answer_length=3)[:2] == (4, 4)
    assert best_span(start3, end3, [None] * 10) is None


def test_postprocess_picks_best_window_and_maps_characters():
    from bert2.tasks.qa_span import postprocess_span_predictions

    context = "alpha beta gamma delta"
    examples = [{"id": "x", "context": context}]
    feats = [
        {"example_index": 0, "offsets": [None, (0, 5), (6, 10), None]},
        {"example_index": 0, "offsets": [None, (11, 16), (17, 22), None]},
    ]
    starts = [[0, 1.0, 1.0, 0], [0, 8.0, 0, 0]]
    ends = [[0, 1.0, 1.0, 0], [0, 0, 8.0, 0]]
    (pred,) = postprocess_span_predictions(examples, feats, starts, ends)
    assert pred.text == "gamma delta" and context[pred.start : pred.end] == pred.text
    assert pred.score > 0.9
    (none,) = postprocess_span_predictions(examples, [], [], [])
    assert none.text == "" and none.start == -1


def test_min_length_prevents_empty_answers():
    model = gen_model(4)
    with torch.no_grad():
        model.lm_head.bias[EOS] = 50.0  # a decoder that wants to stop at once
    ids, types, mask = inputs()
    assert all(s == [] for s in model.generate(ids, types, mask, max_length=5, min_length=0).sequences)
    for beams in (1, 3):
        out = model.generate(ids, types, mask, max_length=5, num_beams=beams)  # min_length=1 by default
        assert all(len(s) == 1 and f for s, f in zip(out.sequences, out.finished))


def test_mean_pooling_ignores_padding_and_cls_pooling_keeps_the_pooler():
    torch.manual_seed(0)
    clf = BertForSequenceClassification(CFG, num_labels=2).eval()  # mean pooling by default
    assert clf.pooling == "mean" and clf.bert.pooler is None  # nothing unused (DDP needs every parameter used)
    ids = torch.randint(5, CFG.vocab_size, (1, 6))
    padded = torch.cat([ids, torch.full((1, 4), PAD)], 1)  # (1, 10) the same text with 4 [PAD]s
    mask = (padded != PAD).long()
    with torch.no_grad():
        a = clf(ids, None, torch.ones_like(ids)).logits
        b = clf(padded, None, mask).logits
    assert torch.allclose(a, b, atol=1e-5)
    cls = BertForSequenceClassification(CFG, num_labels=2, pooling="cls")
    assert cls.bert.pooler is not None
    with pytest.raises(ValueError, match="pooling"):
        BertForSequenceClassification(CFG, num_labels=2, pooling="max")
    # a checkpoint from before mean pooling has no "pooling" key: it carries a pooler and must rebuild with one
    assert build_model("classify", CFG, {"labels": ["a", "b"]}).pooling == "cls"


def test_copy_mechanism_answers_with_context_words_the_vocabulary_head_cannot_produce():
    model = gen_model(0)
    ids, types, mask = inputs(b=2, t=8, seed=3)
    mask[:] = 1
    with torch.no_grad():
        model.copy_gate.bias.fill_(-30.0)  # gate ~ 0: everything comes from the copy distribution
        model.lm_head.bias.fill_(0.0)
    out = model.generate(ids, types, mask, max_length=5, min_length=5)
    for seq, row in zip(out.sequences, ids.tolist()):
        assert seq and set(seq) <= set(row)  # every generated token is one of the input's tokens
    # and the probabilities still form a distribution over the vocabulary
    dec = torch.full((2, 3), START)
    with torch.no_grad():
        logp = model(ids, types, mask, decoder_input_ids=dec).logits  # (B, T, V) log-probabilities
    assert torch.allclose(logp.exp().sum(-1), torch.ones(2, 3), atol=1e-4)
    # special tokens of the input are never copied
    src = model.encode(torch.tensor([[START, 7, EOS, PAD]]), None, torch.tensor([[1, 1, 1, 0]]))
    assert src.copyable.tolist() == [[False, True, False, False]]


def test_no_repeat_ngram_bars_loops():
    torch.manual_seed(0)
    for n in (1, 2):
        model = BertForGenerativeQA(
            CFG,
            decoder_layers=1,
            max_target_positions=8,
            start_token_id=START,
            eos_token_id=EOS,
            copy=False,
            no_repeat_ngram_size=n,
        ).eval()
        with torch.no_grad():
            model.lm_head.bias.fill_(0.0)
            model.lm_head.bias[[40, 41]] = 30.0  # a decoder that loves two words
        ids, types, mask = inputs(b=2)
        for beams in (1, 3):
            out = model.generate(ids, types, mask, max_length=7, min_length=7, num_beams=beams)
            for seq in out.sequences:
                grams = [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]
                assert len(grams) == len(set(grams)), (n, seq)
    looping = BertForGenerativeQA(CFG, 1, 8, START, EOS, copy=False).eval()
    with torch.no_grad():
        looping.lm_head.bias.fill_(0.0)
        looping.lm_head.bias[40] = 30.0
    seq = looping.generate(*inputs(b=1), max_length=6, min_length=6).sequences[0]
    assert seq == [40] * 6  # without the rule the same decoder repeats itself


def test_decoder_warm_start_copies_encoder_layers_but_not_cross_attention():
    model = gen_model(0)
    cross_before = model.decoder[0].cross_attention.q.weight.clone()
    assert model.init_decoder_from_encoder() == 2
    for enc, dec in zip(model.bert.encoder.layers, model.decoder):
        assert torch.equal(dec.self_attention.qkv.weight, enc.attention.qkv.weight)
        assert torch.equal(dec.ffn.up.weight, enc.ffn.up.weight) and torch.equal(dec.ffn_norm.bias, enc.ffn_norm.bias)
        dec.ffn.up.weight.data.add_(1.0)  # copies, not shared tensors
        assert not torch.equal(dec.ffn.up.weight, enc.ffn.up.weight)
    assert torch.equal(model.decoder[0].cross_attention.q.weight, cross_before)


def test_max_word_repeats_bars_a_third_x_in_x_y_x_z_x():
    class Vocab:  # ids 40-49 start words, 50-59 are "##" pieces, the rest punctuation
        all_special_tokens = ["[PAD]"]

        def convert_ids_to_tokens(self, ids):
            return [f"w{i}" if 40 <= i < 50 else f"##p{i}" if 50 <= i < 60 else "," for i in ids]

    torch.manual_seed(0)
    model = BertForGenerativeQA(CFG, 1, 8, START, EOS, copy=False, no_repeat_ngram_size=2, max_word_repeats=2).eval()
    with torch.no_grad():
        model.lm_head.bias.fill_(0.0)
        model.lm_head.bias[40] = 30.0  # "x" is the decoder's favourite word
        model.lm_head.bias[[41, 50, 7]] = 20.0  # then a word, a ## piece, punctuation
    model.set_vocabulary(Vocab())
    seq = model.generate(*inputs(b=1), max_length=7, min_length=7).sequences[0]
    assert seq.count(40) == 2 and seq.count(41) <= 2  # words at most twice
    assert seq.count(50) + seq.count(7) >= 3  # pieces and punctuation are not words: they may come back
