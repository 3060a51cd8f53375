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

The loss: BertForPreTraining.forward -> MLM cross-entropy over the masked rows only (fused with the vocabulary
projection in a training step, fused_loss.py) + NSP cross-entropy on the pooled [CLS]; `loss = mlm + nsp`.
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


@dataclass
class PreTrainingOutput:
    loss: torch.Tensor | None
    mlm_loss: torch.Tensor | None
    nsp_loss: torch.Tensor | None
    prediction_logits: torch.Tensor | None
    """(B, T, V) without labels; with labels only the masked rows, (N, V), in row-major order of the mask; None in
    an fp32 training step with labels, whose loss is fused with the projection (see `fused_mlm_loss`)."""
    seq_relationship_logits: torch.Tensor | None  # (B, 2)
    mlm_targets: torch.Tensor | None = None  # (N,) the label of each masked row of prediction_logits
    mlm_loss_sum: torch.Tensor | None = None  # summed (not averaged) token losses, for gradient accumulation
    attentions: tuple[torch.Tensor, ...] | None = None



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
            raise ValueError(f"sequence of {T} tokens exceeds max_position_embeddings "
                             f"({self.position_embeddings.num_embeddings})")
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


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention.

    Self-attention uses one fused (H -> 3H) projection for query, key and value: one matmul instead of three, which
    matters on a CPU where small matmuls are dominated by overhead. Cross-attention (decoder reading the encoder)
    projects the query from `x` and key/value from `memory`.
    """

    def __init__(self, hidden_size: int, num_heads: int, attn_dropout: float, implementation: str = "sdpa",
                 cross: bool = False):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.attn_dropout = attn_dropout
        self.implementation = implementation
        self.cross = cross
        if cross:
            self.q = nn.Linear(hidden_size, hidden_size)
            self.kv = nn.Linear(hidden_size, 2 * hidden_size)
        else:
            self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, memory: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, H = x.shape
        if self.cross:
            q = self.q(x)  # (B, T, H)
            k, v = self.kv(memory).split(H, dim=-1)  # 2 x (B, S, H)
        else:
            q, k, v = self.qkv(x).split(H, dim=-1)  # 3 x (B, T, H)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)  # (B, nh, T|S, hs)
        dropout = self.attn_dropout if self.training else 0.0
        if mask is not None and mask.is_floating_point() and mask.dtype != q.dtype:
            mask = mask.to(q.dtype)  # an ALiBi bias under autocast: sdpa wants the query's dtype

        if self.implementation == "sdpa" and not output_attentions:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)  # (B, nh, T, hs)
            probs = None
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_size)  # (B, nh, T, S)
            if mask is not None and mask.dtype == torch.bool:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            elif mask is not None:
                scores = scores + mask  # additive bias, -inf at padding
            probs = scores.softmax(dim=-1)  # (B, nh, T, S)
            y = F.dropout(probs, dropout, self.training) @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, H)  # (B, T, H): heads side by side again
        return self.out(y), probs



class FeedForward(nn.Module):
    """Position-wise H -> I -> H with an activation in between."""

    def __init__(self, hidden_size: int, intermediate_size: int, act: str):
        super().__init__()
        self.up = nn.Linear(hidden_size, intermediate_size)
        self.down = nn.Linear(intermediate_size, hidden_size)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))  # (B, T, H) -> (B, T, I) -> (B, T, H)



class EncoderLayer(nn.Module):
    """Self-attention and feed-forward, each wrapped in dropout + residual + LayerNorm.

    post-LN (BERT, transformers): x = LN(x + f(x)). pre-LN: x = x + f(LN(x)), which keeps an identity path from
    input to output and tolerates larger learning rates early in training (Xiong et al. 2020; Cramming); the
    encoder then ends with one more LayerNorm.
    """

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, act: str, dropout: float,
                 attn_dropout: float, eps: float, implementation: str = "sdpa", pre_norm: bool = False):
        super().__init__()
        self.pre_norm = pre_norm
        self.attention = MultiHeadAttention(hidden_size, num_heads, attn_dropout, implementation)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.ffn = FeedForward(hidden_size, intermediate_size, act)
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pre_norm:
            a, probs = self.attention(self.attention_norm(x), mask, output_attentions=output_attentions)  # (B, T, H)
            x = x + self.dropout(a)  # (B, T, H)
            x = x + self.dropout(self.ffn(self.ffn_norm(x)))  # (B, T, H)
            return x, probs
        a, probs = self.attention(x, mask, output_attentions=output_attentions)  # (B, T, H)
        x = self.attention_norm(x + self.dropout(a))  # (B, T, H)
        x = self.ffn_norm(x + self.dropout(self.ffn(x)))  # (B, T, H)
        return x, probs



# --------------------------------------------------------------------------------------------------------------
# Encoder, pooler, BertModel
# --------------------------------------------------------------------------------------------------------------


class BertEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size, cfg.hidden_act,
                         cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob, cfg.layer_norm_eps,
                         cfg.attn_implementation, pre_norm=cfg.norm_placement == "pre")
            for _ in range(cfg.num_hidden_layers))
        # pre-LN leaves the residual stream un-normalised; the heads expect normalised states.
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) \
            if cfg.norm_placement == "pre" else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        maps = []
        for layer in self.layers:
            x, probs = layer(x, mask, output_attentions)  # (B, T, H)
            if output_attentions:
                maps.append(probs)
        if self.final_norm is not None:
            x = self.final_norm(x)  # (B, T, H)
        return x, (tuple(maps) if output_attentions else None)



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
        self.register_buffer("alibi_slopes", alibi_slopes(cfg.num_attention_heads)
                             if cfg.position_embedding_type == "alibi" else None, persistent=False)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, output_attentions: bool = False) -> BertOutput:
        # A batch without padding needs no mask at all, which lets sdpa pick its fastest kernel.
        key_padding = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_padding = padding_mask(attention_mask)  # (B, 1, 1, T) bool
        attn_mask = key_padding
        if self.alibi_slopes is not None:  # built once per batch, shared by every layer
            attn_mask = alibi_bias(self.alibi_slopes, input_ids.shape[1], key_padding)  # (1|B, nh, T, T) float
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        x, maps = self.encoder(x, attn_mask, output_attentions)  # (B, T, H)
        pooled = self.pooler(x) if self.pooler is not None else None  # (B, H)
        return BertOutput(x, pooled, maps)



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

    With labels, vocabulary logits are computed only at the masked rows (about 15% of tokens). For BERT-Tiny the
    (T x H) @ (H x V) projection is ~10x the encoder's FLOPs, so projecting every position, as transformers does,
    spends most of a step on outputs the loss ignores (google-research/bert gathers masked positions too).
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
        # With labels and gradients on (a training step in fp32), the MLM loss comes from fused_loss.py and
        # prediction_logits is None; off: always materialise the masked rows' logits.
        self.fused_mlm_loss = True

    def _fuse_loss(self, rows: torch.Tensor) -> bool:
        return (self.fused_mlm_loss and torch.is_grad_enabled() and rows.shape[0] > 0
                and rows.dtype == torch.float32 and not torch.is_autocast_enabled(rows.device.type))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                next_sentence_label: torch.Tensor | None = None, output_attentions: bool = False
                ) -> PreTrainingOutput:
        out = self.bert(input_ids, token_type_ids, attention_mask, output_attentions)
        seq = out.last_hidden_state  # (B, T, H)
        tied = self.bert.embeddings.word_embeddings.weight  # (V, H)

        mlm_loss = mlm_loss_sum = targets = None
        if labels is not None:
            selected = labels != -100  # (B, T)
            targets = labels[selected]  # (N,)
            rows = seq[selected]  # (N, H)
            if self._fuse_loss(rows):  # training step: the loss without materialised logits (fused_loss.py)
                logits = None
                mlm_loss_sum = linear_cross_entropy_sum(self.mlm.hidden(rows), tied, self.mlm.bias, targets)
            else:
                logits = self.mlm(rows, tied)  # (N, H) -> (N, V)
                mlm_loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
            mlm_loss = mlm_loss_sum / targets.numel() if targets.numel() else mlm_loss_sum
        else:
            logits = self.mlm(seq, tied)  # (B, T, V)

        nsp_logits = nsp_loss = None
        if self.nsp is not None:
            nsp_logits = self.nsp(out.pooler_output)  # (B, 2)
            if next_sentence_label is not None:
                nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label.view(-1), ignore_index=-100)

        loss = None
        if mlm_loss is not None:
            loss = mlm_loss + nsp_loss if nsp_loss is not None else mlm_loss
        return PreTrainingOutput(loss, mlm_loss, nsp_loss, logits, nsp_logits, targets, mlm_loss_sum,
                                 out.attentions)



def count_parameters(model: nn.Module) -> int:
    """Unique parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
