"""The from-scratch model: parity with transformers, real padding masking, shapes, masked-only MLM head."""

import pytest
import torch

from bert2.checkpoint.hf import from_hf_state_dict, hf_config_dict, to_hf_state_dict
from bert2.config import ModelConfig
from bert2.model import BertForPreTraining

# transformers' architecture (learned absolute positions only), for the parity tests...
CFG = ModelConfig(
    vocab_size=300,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    max_position_embeddings=64,
    position_embedding_type="absolute",
)
# ...and bert2's default, with ALiBi distance biases in attention.
ALIBI = ModelConfig(**{**CFG.__dict__, "position_embedding_type": "alibi"})


def padded_batch(vocab: int = 300):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (3, 12), generator=g)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    return ids, types, mask


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_parity_with_transformers_bert_for_pretraining(attn):
    import transformers

    torch.manual_seed(0)
    hf_cfg = transformers.BertConfig(**{k: v for k, v in hf_config_dict(CFG).items() if k != "architectures"})
    hf = transformers.BertForPreTraining(hf_cfg).eval()
    ours = BertForPreTraining(ModelConfig(**{**CFG.__dict__, "attn_implementation": attn})).eval()
    missing, unexpected = ours.load_state_dict(from_hf_state_dict(hf.state_dict()), strict=True)
    assert not missing and not unexpected

    ids, types, mask = padded_batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask)
        got = ours(ids, types, mask)
    real = mask.bool()  # padded rows of HF's output are meaningless; compare real positions
    mlm_diff = (ref.prediction_logits[real] - got.prediction_logits[real]).abs().max().item()
    nsp_diff = (ref.seq_relationship_logits - got.seq_relationship_logits).abs().max().item()
    assert mlm_diff <= 1e-5, mlm_diff
    assert nsp_diff <= 1e-5, nsp_diff


def test_state_dict_round_trip_through_hf_names():
    ours = BertForPreTraining(CFG)
    sd = ours.state_dict()
    back = from_hf_state_dict(to_hf_state_dict(sd))
    assert set(back) == set(sd)
    for k in sd:
        assert torch.equal(sd[k], back[k]), k


@pytest.mark.parametrize("cfg", [CFG, ALIBI], ids=["absolute", "alibi"])
def test_padding_is_really_masked(cfg):
    model = BertForPreTraining(cfg).eval()
    ids, types, mask = padded_batch()
    changed = ids.clone()
    changed[mask == 0] = torch.randint(5, 300, (int((mask == 0).sum()),))
    with torch.no_grad():
        a = model(ids, types, mask).prediction_logits
        b = model(changed, types, mask).prediction_logits
    real = mask.bool()
    assert torch.allclose(a[real], b[real], atol=1e-6)
    # ...and without the mask, the same change does alter real positions (so the test can fail).
    with torch.no_grad():
        c = model(ids, types, None).prediction_logits
        d = model(changed, types, None).prediction_logits
    assert not torch.allclose(c[real], d[real], atol=1e-4)


def test_masked_only_head_matches_full_projection():
    model = BertForPreTraining(CFG).eval()
    ids, types, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 5], labels[2, 1] = 7, 9, 11
    with torch.no_grad():
        full = model(ids, types, mask).prediction_logits  # (B, T, V)
        part = model.loss(ids, types, mask, labels)
    assert full.shape == (*ids.shape, CFG.vocab_size)  # forward: one logits shape, every position
    rows = full[labels != -100]  # (N, V)
    expected = torch.nn.functional.cross_entropy(rows, labels[labels != -100], reduction="sum")
    assert abs(part.mlm_loss_sum.item() - expected.item()) < 1e-4 and int(part.mlm_count) == 3
    assert int(part.mlm_correct) == int((rows.argmax(-1) == labels[labels != -100]).sum())


@pytest.mark.parametrize("cfg", [CFG, ALIBI], ids=["absolute", "alibi"])
def test_attention_maps_and_sdpa_agree(cfg):
    model = BertForPreTraining(cfg).eval()
    ids, types, mask = padded_batch()
    with torch.no_grad():
        out = model.bert(ids, types, mask, output_attentions=True)
        fast = model.bert(ids, types, mask)
    assert len(out.attentions) == CFG.num_hidden_layers
    assert out.attentions[0].shape == (3, CFG.num_attention_heads, 12, 12)
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(3, CFG.num_attention_heads, 12), atol=1e-5)
    assert float(out.attentions[0][1, :, :, 7:].abs().max()) == 0.0  # no probability on padding keys
    assert torch.allclose(out.last_hidden_state, fast.last_hidden_state, atol=1e-5)


def test_alibi_slopes_and_bias():
    from bert2.model.bert import alibi_bias, alibi_slopes

    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0**-k for k in range(1, 9)]))
    six = alibi_slopes(6)  # not a power of two: the paper's interleaving, still distinct and decreasing
    assert six.shape == (6,) and len(set(six.tolist())) == 6 and bool((six > 0).all())
    key_mask = torch.tensor([[1, 1, 1, 0]]).bool()[:, None, None, :]  # (1, 1, 1, 4): last key is padding
    bias = alibi_bias(alibi_slopes(2), 4, key_mask)  # (1, 2, 4, 4)
    assert bias.shape == (1, 2, 4, 4)
    assert bias[0, 0, 2, 0].item() == -2 * 2.0**-4  # head 0: slope 1/16, |2 - 0| = 2
    assert bias[0, 1, 1, 2].item() == -1 * 2.0**-8
    assert torch.equal(bias[0, :, 1, 2], bias[0, :, 2, 1])  # symmetric: an encoder reads both ways
    assert bool(torch.isinf(bias[..., 3]).all()) and bool(torch.isfinite(bias[..., :3]).all())


def test_alibi_heads_attend_locally_from_the_start():
    """Why ALiBi is the default: at initialisation its sharpest head already puts most of a token's attention on
    itself and its neighbours (3x uniform), where the absolute-position model spreads it evenly over the sequence."""
    ids = torch.randint(5, 300, (2, 32), generator=torch.Generator().manual_seed(1))
    local = {}
    for name, cfg in (("absolute", CFG), ("alibi", ALIBI)):
        torch.manual_seed(0)
        model = BertForPreTraining(cfg).eval()
        with torch.no_grad():
            probs = model.bert(ids, output_attentions=True).attentions[0][:, 0]  # (B, T, T), first head
        near = torch.ones(32, 32).triu(-1).tril(1).bool()  # |i - j| <= 1
        local[name] = probs[:, near].sum().item() / probs.sum().item()
    assert local["absolute"] < 0.15  # ~3/32 when uniform
    assert local["alibi"] > 0.3 and local["alibi"] > 3 * local["absolute"], local  # slope 1/4: ~0.36


def test_bf16_autocast_with_alibi_and_padding():
    model = BertForPreTraining(ALIBI).eval()
    ids, types, mask = padded_batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(ids, types, mask).prediction_logits.float()
    with torch.no_grad():
        ref = model(ids, types, mask).prediction_logits
    real = mask.bool()
    assert torch.isfinite(low[real]).all()
    assert (low[real].argmax(-1) == ref[real].argmax(-1)).float().mean() > 0.9


def test_decoder_tied_to_word_embeddings():
    model = BertForPreTraining(CFG)
    sd = model.state_dict()
    assert not any("decoder" in k for k in sd)
    ids, types, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[0, 1] = 5
    model.loss(ids, types, mask, labels).loss.backward()
    assert model.bert.embeddings.word_embeddings.weight.grad[5].abs().sum() > 0


def test_fused_training_loss_matches_autograd_reference():
    """The fused projection + cross-entropy (bert2.model.fused_loss) gives the same loss and gradients as linear ->
    cross_entropy, including the tied word-embedding gradient and the NSP path."""
    torch.manual_seed(0)
    model = BertForPreTraining(CFG)
    ids, types, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[:, 1::3] = ids[:, 1::3]
    labels[mask == 0] = -100
    nsp = torch.tensor([0, 1, 1])

    def grads() -> dict[str, torch.Tensor]:
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    fused = model.loss(ids, types, mask, labels, nsp)  # a training step in fp32: the fused path
    fused.loss.backward()
    g_fused = grads()
    model.zero_grad()
    out = model(ids, types, mask)  # the definition: every position's logits, cross-entropy at the masked ones
    sel = labels != -100
    ref_mlm = torch.nn.functional.cross_entropy(out.prediction_logits[sel], labels[sel], reduction="sum")
    ref_nsp = torch.nn.functional.cross_entropy(out.seq_relationship_logits, nsp)
    (ref_mlm / sel.sum() + ref_nsp).backward()
    g_ref = grads()
    assert abs(fused.mlm_loss_sum.item() - ref_mlm.item()) < 1e-4
    assert int(fused.mlm_correct) == int((out.prediction_logits[sel].argmax(-1) == labels[sel]).sum())
    assert set(g_fused) == set(g_ref)
    for name in g_ref:
        assert torch.allclose(g_fused[name], g_ref[name], atol=1e-6), name
    with torch.no_grad():  # evaluation: the reference path, same numbers
        again = model.loss(ids, types, mask, labels, nsp)
    assert abs(again.mlm_loss_sum.item() - ref_mlm.item()) < 1e-4


def test_fused_loss_stays_finite_and_close_when_the_true_class_probability_underflows():
    """The fused loss reads each row's cross-entropy as -log p_true; a row so wrong that p_true underflows fp32
    (loss > 87) must still report a finite loss close to the exact one (here ~300), and the exact gradient."""
    from bert2.model.fused_loss import linear_cross_entropy_sum

    torch.manual_seed(0)
    weight = torch.randn(50, 8, requires_grad=True)
    bias = torch.zeros(50, requires_grad=True)
    h = torch.randn(3, 8)
    h[0] = weight.detach()[7] * 40  # row 0: class 7 wins by a wide margin, but its label is class 3
    h.requires_grad_(True)
    target = torch.tensor([3, 1, 2])
    loss, _ = linear_cross_entropy_sum(h, weight, bias, target)
    loss.backward()
    grads = [t.grad.clone() for t in (h, weight, bias)]
    h.grad = weight.grad = bias.grad = None
    exact = torch.nn.functional.cross_entropy(
        (h.double() @ weight.double().t() + bias.double()), target, reduction="sum"
    )
    exact.backward()
    assert exact.item() > 150  # the case under test: p_true of row 0 is below fp32's range
    assert torch.isfinite(loss) and abs(loss.item() - exact.item()) / exact.item() < 1e-3
    for got, ref in zip(grads, (h.grad, weight.grad, bias.grad)):
        assert torch.allclose(got, ref, atol=1e-4)


def test_bf16_step_runs_the_matmuls_in_bf16_and_the_loss_in_fp32():
    """Under precision bf16 (autocast), the fused MLM loss projects in bf16 and computes the softmax in fp32;
    attention runs in fp32 on a CPU. Loss and gradients stay close to the fp32 step's, the master weights fp32."""
    torch.manual_seed(0)
    model = BertForPreTraining(CFG)
    ids, types, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[:, 1::3] = ids[:, 1::3]
    labels[mask == 0] = -100
    nsp = torch.tensor([0, 1, 1])

    def step(bf16: bool):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model.loss(ids, types, mask, labels, nsp)
        out.loss.backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    ref, g_ref = step(False)
    low, g_low = step(True)
    assert low.mlm_loss_sum.dtype == torch.float32 and all(g.dtype == torch.float32 for g in g_low.values())
    assert abs(low.loss.item() - ref.loss.item()) < 0.02 * abs(ref.loss.item())
    for name in g_ref:
        cos = torch.nn.functional.cosine_similarity(g_low[name].flatten(), g_ref[name].flatten(), dim=0)
        assert cos > 0.98, (name, float(cos))


def test_glu_feed_forward_gates_one_projection_with_the_other():
    """model.feed_forward = "glu": the first projection is (2I, H); its first half through GELU multiplies the
    second half, and both halves learn (a zero value half silences the layer: the gate alone passes nothing)."""
    import dataclasses

    from bert2.model.bert import FeedForward

    ffn = FeedForward(8, 5, "gelu", glu=True)
    assert ffn.up.weight.shape == (10, 8) and ffn.down.weight.shape == (8, 5)
    x = torch.randn(2, 3, 8)
    gate, value = ffn.up(x).chunk(2, dim=-1)
    assert torch.allclose(ffn(x), ffn.down(torch.nn.functional.gelu(gate) * value), atol=1e-6)
    with torch.no_grad():
        ffn.up.weight[5:] = 0
        ffn.up.bias[5:] = 0
    assert torch.allclose(ffn(x), ffn.down.bias.expand(2, 3, 8), atol=1e-6)
    model = BertForPreTraining(dataclasses.replace(CFG, feed_forward="glu"))
    ids, types, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[:, 1::3] = ids[:, 1::3]
    labels[mask == 0] = -100
    model.loss(ids, types, mask, labels, torch.tensor([0, 1, 1])).loss.backward()
    grad = model.bert.encoder.layers[0].ffn.up.weight.grad  # (2I, H)
    assert grad[:128].abs().sum() > 0 and grad[128:].abs().sum() > 0
