"""BERT, from scratch, in the order data flows through it:

    token ids -> embeddings (word + position + segment) -> L encoder layers (self-attention, feed-forward)
              -> last hidden states -> pooler ([CLS] -> sentence vector) -> heads (MLM over the vocabulary, NSP)

Shapes: B batch, T tokens (S: source tokens), H hidden, nh heads, hs head size (H / nh), I intermediate, V vocabulary,
N selected (masked) tokens, C classes, L layers.

Post-LN as in the original BERT: `x = LayerNorm(x + Dropout(Sublayer(x)))`, LayerNorm over the hidden axis (pre-LN
is a switch). Two different things reach attention, and are named apart:
    key_padding  (B, 1, 1, T) boolean, True at real tokens: which keys exist (from the tokenizer's attention_mask)
    attn_bias    (1 or B, nh, T, T) float: ALiBi's distance penalty per head, with -inf at padded keys folded in
Attention receives one `attn_mask`: attn_bias when ALiBi is on, else key_padding (None when nothing is padded,
which lets sdpa pick its fastest kernel). The eager path turns False into the most negative float before softmax
(not 1e-9, which would let padding leak in) or adds the bias; sdpa does the same inside a fused kernel.

The loss: BertForPreTraining.loss -> MLM cross-entropy over the masked rows only (fused with the vocabulary
projection in a training step, fused_loss.py) + NSP cross-entropy on the pooled [CLS]; `loss = mlm + nsp`.
BertForPreTraining.forward gives the logits at every position, (B, T, V), for inference.
Parameter names map 1:1 onto transformers' BertForPreTraining (checkpoint/hf.py); a test loads the same random
weights into both and compares logits. Fine-tuning heads live in heads.py, the generative decoder in decoder.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .fused_loss import linear_cross_entropy_sum

ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),  # exact erf GELU, as BERT and transformers' "gelu"
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


@dataclass
class BertOutput:
    last_hidden_state: torch.Tensor  # (B, T, H)
    pooler_output: torch.Tensor | None  # (B, H)
    attentions: tuple[torch.Tensor, ...] | None = None  # L x (B, nh, T, T)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # L+1 x (B, T, H): the embeddings, then each layer's output


@dataclass
class PreTrainingOutput:
    prediction_logits: torch.Tensor  # (B, T, V) a score for every vocabulary entry at every position
    seq_relationship_logits: torch.Tensor | None  # (B, 2) IsNext / NotNext; None without the NSP head
    attentions: tuple[torch.Tensor, ...] | None = None  # L x (B, nh, T, T) with output_attentions


@dataclass
class PreTrainingLoss:
    """The pretraining objective of one batch, as sums and counts so an accumulated batch adds up exactly."""

    loss: torch.Tensor  # () mean MLM cross-entropy over the masked tokens, + the NSP loss
    mlm_loss_sum: torch.Tensor  # () summed (not averaged) token losses
    mlm_count: torch.Tensor  # () masked tokens (N)
    mlm_correct: torch.Tensor  # () masked tokens whose top prediction is the label
    nsp_loss: torch.Tensor | None = None  # () mean NSP cross-entropy
    nsp_correct: torch.Tensor | None = None  # () sentence pairs classified right


def init_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation: N(0, std) weights, zero biases, identity LayerNorm, zero padding embedding."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def sinusoidal_(weight: torch.Tensor, std: float) -> None:
    """Fill a (P, H) position table with the Transformer's sines and cosines, scaled to standard deviation `std`.

    Why: with N(0, 0.02) rows, position p+1 is unrelated to position p, and a small model spends its first
    thousands of steps learning vectors in which "the token before me" is a linear relation (the flat early
    stretch of the MLM loss). Sinusoids have that relation from the start (p+1 is a fixed rotation of p). Still a
    learned table, so the architecture and the transformers mapping do not change.
    """
    P, H = weight.shape
    pos = torch.arange(P, dtype=torch.float32)[:, None]  # (P, 1)
    freq = torch.exp(torch.arange(0, H, 2, dtype=torch.float32) * (-math.log(10000.0) / H))  # (H/2,)
    table = torch.zeros(P, H)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: H // 2])
    with torch.no_grad():
        weight.copy_(table * (std / table.std()))


# --------------------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------------------


class BertEmbeddings(nn.Module):
    """Sum of word, position and segment embeddings, normalised over the hidden axis."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        # One row per position the model can read (not per vocabulary entry, as a seed had it).
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)  # over H, never over T
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.register_buffer("position_ids", torch.arange(cfg.max_position_embeddings)[None], persistent=False)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        B, T = input_ids.shape
        if T > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"sequence of {T} tokens exceeds max_position_embeddings ({self.position_embeddings.num_embeddings})"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids)  # (B, T, H)
        x = x + self.position_embeddings(self.position_ids[:, :T])  # (1, T, H) broadcast over B
        x = x + self.token_type_embeddings(token_type_ids)  # (B, T, H)
        return self.dropout(self.norm(x))


# --------------------------------------------------------------------------------------------------------------
# Masks: which keys exist (padding) and how far they are (ALiBi)
# --------------------------------------------------------------------------------------------------------------


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) with 1 for real tokens -> boolean (B, 1, 1, T): every query may attend to every real key."""
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes (Press et al. 2022): a geometric sequence 2^(-8/n), 2^(-16/n), ... so that heads
    range from sharply local to nearly global; for a head count that is not a power of two, the power of two below
    it plus every other slope of the next one, as in the paper's reference code."""

    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    below = 2 ** math.floor(math.log2(num_heads))
    slopes = geometric(below) + geometric(2 * below)[0::2][: num_heads - below]
    return torch.tensor(slopes)  # (nh,)


def alibi_bias(slopes: torch.Tensor, t: int, key_mask: torch.Tensor | None) -> torch.Tensor:
    """Additive attention bias -slope_h * |i - j| (symmetric, since an encoder reads both ways), with -inf at padded
    keys: (1 or B, nh, T, T), in the slopes' dtype and device.

    Why: with a learned position table alone a small model first has to learn which rows are neighbours before any
    head can look at the token next to a [MASK]; on CPU budgets that takes longer than the whole run (attention
    stays uniform). The bias makes every head prefer nearby tokens from the first step; the learned table is kept,
    so direction (left vs right) is still learnable.
    """
    pos = torch.arange(t, device=slopes.device)
    distance = (pos[None, :] - pos[:, None]).abs().to(slopes.dtype)  # (T, T)
    bias = -slopes[:, None, None] * distance  # (nh, T, T)
    bias = bias[None]  # (1, nh, T, T)
    if key_mask is not None:
        padding = torch.zeros(key_mask.shape, dtype=slopes.dtype, device=slopes.device)
        padding.masked_fill_(~key_mask, float("-inf"))  # (B, 1, 1, T): 0 or -inf per key
        bias = bias + padding  # (B, nh, T, T) written in one pass (masked_fill on the broadcast copied it first)
    return bias


# --------------------------------------------------------------------------------------------------------------
# Attention, feed-forward, one encoder layer
# --------------------------------------------------------------------------------------------------------------


def _float(mask: torch.Tensor | None) -> torch.Tensor | None:
    return mask.float() if mask is not None and mask.is_floating_point() else mask


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout: float, eager: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q k^T / sqrt(hs) + mask) v for every head at once: (B, nh, T, hs) queries over (B, nh, S, hs) keys.

    `mask` is boolean (True: the key may be attended to) or an additive float bias (ALiBi, -inf at padding),
    broadcastable to (B, nh, T, S). The eager path spells the formula out and returns the attention maps (the UI
    draws them); sdpa computes the same thing in one fused kernel and returns none.
    """
    if not eager and q.dtype == torch.bfloat16 and q.device.type == "cpu":
        # bf16 pays in the big matmuls (projections, feed-forward, vocabulary), but on a CPU the fused attention
        # kernel's bf16 backward is several times slower than its fp32 one (docs/performance.md): so attention
        # itself runs in fp32, between matmuls that run in bf16.
        with torch.autocast("cpu", enabled=False):  # autocast would cast the inputs back to bf16
            y = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=_float(mask), dropout_p=dropout
            )
        return y.to(q.dtype), None  # (B, nh, T, hs)
    if mask is not None and mask.is_floating_point() and mask.dtype != q.dtype:
        mask = mask.to(q.dtype)  # an ALiBi bias under autocast: the scores' dtype
    if not eager:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout), None  # (B, nh, T, hs)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, nh, T, S)
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # padding: never attended
    elif mask is not None:
        scores = scores + mask  # additive bias, -inf at padding
    probs = scores.softmax(dim=-1)  # (B, nh, T, S): each row sums to 1 over the keys
    return F.dropout(probs, dropout, dropout > 0) @ v, probs  # (B, nh, T, hs)


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product self-attention.

    One fused (H -> 3H) projection gives query, key and value (one matmul instead of three, which matters on a CPU
    where small matmuls are dominated by overhead); the heads are the nh slices of hs = H / nh columns each, which
    attend independently and are concatenated again before the output projection. Row layout of `qkv.weight`:
    [q of head 0 .. q of head nh-1 | k ... | v ...], hs rows per head.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError(f"hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_attention_heads}")
        self.num_heads = cfg.num_attention_heads
        self.head_size = cfg.hidden_size // cfg.num_attention_heads
        self.attn_dropout = cfg.attention_probs_dropout_prob
        self.eager = cfg.attn_implementation == "eager"
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, _ = x.shape
        inner = self.num_heads * self.head_size  # H
        q, k, v = self.qkv(x).split(inner, dim=-1)  # 3 x (B, T, H)
        q, k, v = (t.view(B, T, self.num_heads, self.head_size).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        dropout = self.attn_dropout if self.training else 0.0
        y, probs = attend(q, k, v, mask, dropout, self.eager or output_attentions)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, inner)  # (B, T, H): heads side by side again
        return self.out(y), probs


class FeedForward(nn.Module):
    """Position-wise H -> I -> H with an activation in between.

    `glu`: one H -> 2I projection whose first half, through the activation, gates its second half (GEGLU for
    gelu; Shazeer 2020, used by Cramming and MosaicBERT): the layer can switch features on and off per token
    instead of only bending them. It has 1.5x the weights of the plain layer at the same I, so a fair comparison
    gives it an I of 2/3.
    """

    def __init__(self, hidden_size: int, intermediate_size: int, act: str, glu: bool = False):
        super().__init__()
        self.glu = glu
        self.up = nn.Linear(hidden_size, intermediate_size * (2 if glu else 1))
        self.down = nn.Linear(intermediate_size, hidden_size)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.up(x)  # (B, T, I) or, for glu, (B, T, 2I)
        if self.glu:
            gate, value = u.chunk(2, dim=-1)  # (B, T, I) each
            return self.down(self.act(gate) * value)  # (B, T, H)
        return self.down(self.act(u))  # (B, T, I) -> (B, T, H)


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward, each wrapped in dropout + residual + LayerNorm.

    post-LN (BERT, transformers): x = LN(x + f(x)). pre-LN: x = x + f(LN(x)), which keeps an identity path from
    input to output and tolerates larger learning rates early in training (Xiong et al. 2020; Cramming); the
    encoder then ends with one more LayerNorm.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pre_norm = cfg.norm_placement == "pre"
        self.attention = MultiHeadAttention(cfg)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act, cfg.feed_forward == "glu")
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pre_norm:
            a, probs = self.attention(self.attention_norm(x), mask, output_attentions)  # (B, T, H)
            x = x + self.dropout(a)  # (B, T, H)
            x = x + self.dropout(self.ffn(self.ffn_norm(x)))  # (B, T, H)
            return x, probs
        a, probs = self.attention(x, mask, output_attentions)  # (B, T, H)
        x = self.attention_norm(x + self.dropout(a))  # (B, T, H)
        x = self.ffn_norm(x + self.dropout(self.ffn(x)))  # (B, T, H)
        return x, probs


# --------------------------------------------------------------------------------------------------------------
# Encoder, pooler, BertModel
# --------------------------------------------------------------------------------------------------------------


class BertEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        # pre-LN leaves the residual stream un-normalised; the heads expect normalised states.
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if cfg.norm_placement == "pre" else None

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """-> (last hidden state, attention maps or None, hidden states or None). The hidden states are the
        encoder's input and every layer's output (L+1, as transformers; distillation matches them); with pre-LN the
        last one is taken after the final LayerNorm, so it always equals the last hidden state."""
        maps = []
        states = [x] if output_hidden_states else None
        for layer in self.layers:
            x, probs = layer(x, mask, output_attentions)  # (B, T, H)
            if output_attentions:
                maps.append(probs)
            if states is not None:
                states.append(x)
        if self.final_norm is not None:
            x = self.final_norm(x)  # (B, T, H)
            if states is not None:
                states[-1] = x
        return x, (tuple(maps) if output_attentions else None), (tuple(states) if states is not None else None)


class BertPooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence vector NSP and classification read."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, T, H) -> (B, H)


class BertModel(nn.Module):
    def __init__(self, cfg: ModelConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)
        self.pooler = BertPooler(cfg) if add_pooling_layer else None
        # Fixed, not learned, so not part of the state dict: checkpoints keep transformers' BERT layout.
        self.register_buffer(
            "alibi_slopes",
            alibi_slopes(cfg.num_attention_heads) if cfg.position_embedding_type == "alibi" else None,
            persistent=False,
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        extra_embeddings: torch.Tensor | None = None,
    ) -> BertOutput:
        """`extra_embeddings` (B, T, H) is added to the embeddings before the first layer: what a head knows of
        each position besides its token (the NER head's letter case, which an uncased vocabulary drops)."""
        mask = self.attention_mask(input_ids.shape[1], attention_mask)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        if extra_embeddings is not None:
            x = x + extra_embeddings  # (B, T, H)
        x, maps, states = self.encoder(x, mask, output_attentions, output_hidden_states)  # (B, T, H)
        pooled = self.pooler(x) if self.pooler is not None else None  # (B, H)
        return BertOutput(x, pooled, maps, states)

    def attention_mask(self, t: int, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """What every layer's attention receives, built once per batch: the ALiBi bias (1|B, nh, T, T) with -inf at
        padded keys, or the boolean padding mask (B, 1, 1, T), or None when nothing is padded (which lets sdpa
        pick its fastest kernel)."""
        key_padding = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_padding = padding_mask(attention_mask)  # (B, 1, 1, T) bool
        if self.alibi_slopes is None:
            return key_padding
        return alibi_bias(self.alibi_slopes, t, key_padding)  # (1|B, nh, T, T) float


# --------------------------------------------------------------------------------------------------------------
# Pretraining heads and the loss
# --------------------------------------------------------------------------------------------------------------


class MLMHead(nn.Module):
    """Transform (dense + act + LayerNorm) then project onto the vocabulary with the tied word embeddings."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.transform = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.act = ACTIVATIONS[cfg.hidden_act]
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def hidden(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.transform(h)))  # (..., H)

    def forward(self, h: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """`word_embeddings` (V, H) is passed in, not stored, so the tied weight exists once in the state dict."""
        return F.linear(self.hidden(h), word_embeddings, self.bias)  # (..., V)


class BertForPreTraining(nn.Module):
    """BERT with the masked-language-model head and (optionally) the next-sentence-prediction head.

    Two calls: `model(ids, ...)` gives the logits at every position, (B, T, V), as transformers does (inference,
    the playground); `model.loss(ids, ..., labels=...)` is the training objective, and computes vocabulary logits
    only at the masked rows (about 15% of tokens). For BERT-Tiny the (T x H) @ (H x V) projection is ~10x the
    encoder's FLOPs, so projecting every position would spend most of a step on outputs the loss ignores
    (google-research/bert gathers the masked positions too); in an fp32 training step the projection is also
    fused with the cross-entropy (fused_loss.py).
    """

    def __init__(self, cfg: ModelConfig, nsp: bool = True):
        super().__init__()
        self.config = cfg
        self.bert = BertModel(cfg, add_pooling_layer=True)
        self.mlm = MLMHead(cfg)
        self.nsp = nn.Linear(cfg.hidden_size, 2) if nsp else None
        self.apply(lambda m: init_weights(m, cfg.initializer_range))
        if cfg.position_init == "sinusoidal":
            sinusoidal_(self.bert.embeddings.position_embeddings.weight, cfg.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> PreTrainingOutput:
        out = self.bert(input_ids, token_type_ids, attention_mask, output_attentions)
        tied = self.bert.embeddings.word_embeddings.weight  # (V, H): input and output share one matrix
        logits = self.mlm(out.last_hidden_state, tied)  # (B, T, V)
        nsp_logits = self.nsp(out.pooler_output) if self.nsp is not None else None  # (B, 2)
        return PreTrainingOutput(logits, nsp_logits, out.attentions)

    def loss(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor,
        next_sentence_label: torch.Tensor | None = None,
    ) -> PreTrainingLoss:
        """MLM cross-entropy at the positions whose label is not -100, plus NSP cross-entropy on the pooled [CLS]
        when `next_sentence_label` is given: `loss = mlm + nsp`."""
        out = self.bert(input_ids, token_type_ids, attention_mask)
        selected = labels != -100  # (B, T) the masked positions
        targets = labels[selected]  # (N,)
        rows = self.mlm.hidden(out.last_hidden_state[selected])  # (N, H)
        tied = self.bert.embeddings.word_embeddings.weight  # (V, H)
        if torch.is_grad_enabled() and rows.shape[0] > 0:  # a training step: the loss without kept logits
            mlm_sum, correct = linear_cross_entropy_sum(rows, tied, self.mlm.bias, targets, _compute_dtype(rows))
        else:
            logits = F.linear(rows, tied, self.mlm.bias).float()  # (N, V)
            mlm_sum = F.cross_entropy(logits, targets, reduction="sum")
            correct = (logits.argmax(-1) == targets).sum()
        count = selected.sum()
        loss = mlm_sum / count.clamp(min=1)
        nsp_loss = nsp_correct = None
        if self.nsp is not None and next_sentence_label is not None:
            nsp_logits = self.nsp(out.pooler_output).float()  # (B, 2)
            nsp_labels = next_sentence_label.view(-1)  # (B,)
            nsp_loss = F.cross_entropy(nsp_logits, nsp_labels, ignore_index=-100)
            nsp_correct = (nsp_logits.argmax(-1) == nsp_labels).sum()
            loss = loss + nsp_loss
        return PreTrainingLoss(loss, mlm_sum, count, correct, nsp_loss, nsp_correct)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The matmul dtype of this step: autocast's (bf16 under `precision = bf16`), else fp32."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32


def count_parameters(model: nn.Module) -> int:
    """Unique parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
