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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, normalize_pruned_heads, pruned_heads_problems
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

    Pruned heads (`kept_heads`, original indices of the heads that remain; bert2 prune) make the layer really
    smaller: the fused projection is (H -> 3 * nh_kept * hs) and `out` reads nh_kept * hs inputs, with hs unchanged.
    Row layout of `qkv`: [q of head 0 .. q of head n-1 | k ... | v ...], hs rows per head, survivors in their
    original order. With ALiBi, BertModel hands a pruned layer a bias built from its survivors' original slopes
    (handed one for every original head, the layer picks its survivors' rows itself).
    """

    def __init__(self, hidden_size: int, num_heads: int, attn_dropout: float, implementation: str = "sdpa",
                 cross: bool = False, kept_heads: Sequence[int] | None = None):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        if cross and kept_heads is not None:
            raise ValueError("cross-attention cannot be pruned")
        self.total_heads = num_heads  # before pruning: what head_mask and the ALiBi bias are indexed by
        self.head_size = hidden_size // num_heads
        self.attn_dropout = attn_dropout
        self.implementation = implementation
        self.cross = cross
        self.register_buffer("kept_index", None, persistent=False)  # (nh_kept,) long, only when pruned
        self._set_heads(range(num_heads) if kept_heads is None else kept_heads)
        inner = self.inner_size  # nh_kept * hs: H unless pruned
        if cross:
            self.q = nn.Linear(hidden_size, hidden_size)
            self.kv = nn.Linear(hidden_size, 2 * hidden_size)
        else:
            self.qkv = nn.Linear(hidden_size, 3 * inner)
        self.out = nn.Linear(inner, hidden_size)

    def _set_heads(self, kept: Iterable[int], device: torch.device | None = None) -> None:
        kept = sorted(set(kept))
        if not kept or kept[0] < 0 or kept[-1] >= self.total_heads:
            raise ValueError(f"kept heads {kept} must be a non-empty subset of 0-{self.total_heads - 1}")
        self.kept_heads = tuple(kept)
        self.num_heads = len(kept)
        self.inner_size = self.num_heads * self.head_size
        pruned = self.num_heads < self.total_heads
        self.kept_index = torch.tensor(kept, device=device) if pruned else None

    @torch.no_grad()
    def prune_heads(self, heads: Iterable[int]) -> None:
        """Remove `heads` (original indices) for real: keep only the survivors' rows of the fused q/k/v projection
        and their input columns of the out projection. The out bias stays whole: it is added after the heads are
        summed, so no single head owns it. Exactly what a head mask of 0 computes, with smaller matmuls."""
        if self.cross:
            raise ValueError("cross-attention cannot be pruned")
        gone = set(heads)
        survivors = [h for h in self.kept_heads if h not in gone]
        if len(survivors) == self.num_heads:
            return
        if not survivors:
            raise ValueError(f"pruning heads {sorted(gone)} would leave no head; keep at least one per layer")
        hs, inner = self.head_size, self.inner_size
        slots = [self.kept_heads.index(h) for h in survivors]  # where each survivor sits in today's layout
        cols = torch.cat([torch.arange(i * hs, (i + 1) * hs) for i in slots])  # (nh_new * hs,)
        rows = torch.cat([cols + part * inner for part in range(3)])  # (3 * nh_new * hs,) its q, k and v rows
        weight, bias = self.qkv.weight, self.qkv.bias
        self.qkv = nn.Linear(weight.shape[1], len(rows), device=weight.device, dtype=weight.dtype)
        self.qkv.weight.copy_(weight[rows.to(weight.device)])  # (3 * nh_new * hs, H)
        self.qkv.bias.copy_(bias[rows.to(weight.device)])
        weight, bias = self.out.weight, self.out.bias
        self.out = nn.Linear(len(cols), weight.shape[0], device=weight.device, dtype=weight.dtype)
        self.out.weight.copy_(weight[:, cols.to(weight.device)])  # (H, nh_new * hs)
        self.out.bias.copy_(bias)
        self._set_heads(survivors, weight.device)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, memory: torch.Tensor | None = None,
                output_attentions: bool = False, head_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`head_mask` (total heads,) floats: head h's output is multiplied by head_mask[h] before the out
        projection (0 silences it; bert2.compress.prune differentiates the loss with respect to it)."""
        B, T, H = x.shape
        if self.cross:
            q = self.q(x)  # (B, T, H)
            k, v = self.kv(memory).split(H, dim=-1)  # 2 x (B, S, H)
        else:
            q, k, v = self.qkv(x).split(self.inner_size, dim=-1)  # 3 x (B, T, nh * hs), H unless pruned
        q, k, v = self._heads(q), self._heads(k), self._heads(v)  # (B, nh, T|S, hs)
        dropout = self.attn_dropout if self.training else 0.0
        if mask is not None and mask.is_floating_point() and mask.dtype != q.dtype:
            mask = mask.to(q.dtype)  # an ALiBi bias under autocast: sdpa wants the query's dtype
        if self.kept_index is not None and mask is not None and mask.shape[1] == self.total_heads:
            # A bias for every original head (BertModel builds a pruned layer its own; this is for other callers):
            mask = mask.index_select(1, self.kept_index)  # (1|B, nh_kept, T, T): the survivors' own ALiBi slopes

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
            if self.kept_index is not None:  # maps keep one row per original head (zeros where pruned)
                probs = probs.new_zeros(B, self.total_heads, *probs.shape[2:]).index_copy_(1, self.kept_index, probs)
        if head_mask is not None:
            if self.kept_index is not None:
                head_mask = head_mask.index_select(0, self.kept_index)  # (nh_kept,)
            y = y * head_mask.to(y.dtype).view(1, -1, 1, 1)  # (B, nh, T, hs): head h scaled by m_h
        y = y.transpose(1, 2).reshape(B, T, self.inner_size)  # (B, T, nh * hs): heads side by side again
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
                 attn_dropout: float, eps: float, implementation: str = "sdpa", pre_norm: bool = False,
                 kept_heads: Sequence[int] | None = None):
        super().__init__()
        self.pre_norm = pre_norm
        self.attention = MultiHeadAttention(hidden_size, num_heads, attn_dropout, implementation,
                                            kept_heads=kept_heads)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.ffn = FeedForward(hidden_size, intermediate_size, act)
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False,
                head_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pre_norm:
            a, probs = self.attention(self.attention_norm(x), mask, output_attentions=output_attentions,
                                      head_mask=head_mask)  # (B, T, H)
            x = x + self.dropout(a)  # (B, T, H)
            x = x + self.dropout(self.ffn(self.ffn_norm(x)))  # (B, T, H)
            return x, probs
        a, probs = self.attention(x, mask, output_attentions=output_attentions, head_mask=head_mask)  # (B, T, H)
        x = self.attention_norm(x + self.dropout(a))  # (B, T, H)
        x = self.ffn_norm(x + self.dropout(self.ffn(x)))  # (B, T, H)
        return x, probs



# --------------------------------------------------------------------------------------------------------------
# Encoder, pooler, BertModel
# --------------------------------------------------------------------------------------------------------------


def kept_heads(cfg: ModelConfig) -> list[list[int] | None]:
    """Per layer, the original indices of the attention heads `cfg.pruned_heads` leaves (None: all of them);
    ValueError for a layer or head that does not exist, or a layer left without heads."""
    pruned = normalize_pruned_heads(cfg.pruned_heads)
    problems = pruned_heads_problems(pruned, cfg.num_hidden_layers, cfg.num_attention_heads)
    if problems:
        raise ValueError(f"pruned_heads: {'; '.join(problems)}")
    return [[h for h in range(cfg.num_attention_heads) if h not in pruned[str(i)]] if str(i) in pruned else None
            for i in range(cfg.num_hidden_layers)]


class BertEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads = cfg.num_attention_heads  # per layer before pruning: the width of a head_mask
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size, cfg.hidden_act,
                         cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob, cfg.layer_norm_eps,
                         cfg.attn_implementation, pre_norm=cfg.norm_placement == "pre", kept_heads=kept)
            for kept in kept_heads(cfg))
        # pre-LN leaves the residual stream un-normalised; the heads expect normalised states.
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) \
            if cfg.norm_placement == "pre" else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | list[torch.Tensor] | None, output_attentions: bool = False,
                output_hidden_states: bool = False, head_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """-> (last hidden state, attention maps or None, hidden states or None). The hidden states are the
        encoder's input and every layer's output (L+1, as transformers; distillation matches them); with pre-LN the
        last one is taken after the final LayerNorm, so it always equals the last hidden state.

        `head_mask` (L, nh) floats, nh the heads per layer before any pruning: each head's output is scaled by its
        entry before the out projection (0 switches the head off, as if it were pruned)."""
        if head_mask is not None and tuple(head_mask.shape) != (len(self.layers), self.num_heads):
            raise ValueError(f"head_mask must be (layers, heads) = ({len(self.layers)}, {self.num_heads}), "
                             f"got {tuple(head_mask.shape)}")
        maps = []
        states = [x] if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            layer_mask = mask[i] if isinstance(mask, list) else mask  # a pruned model's layers: a bias each
            heads = None if head_mask is None else head_mask[i]  # (nh,)
            x, probs = layer(x, layer_mask, output_attentions, heads)  # (B, T, H)
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
        self.register_buffer("alibi_slopes", alibi_slopes(cfg.num_attention_heads)
                             if cfg.position_embedding_type == "alibi" else None, persistent=False)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, output_attentions: bool = False,
                output_hidden_states: bool = False, head_mask: torch.Tensor | None = None) -> BertOutput:
        """`head_mask` (L, nh): see BertEncoder.forward; bert2.compress.prune.head_masked passes one to a model whose
        task code calls it without."""
        # A batch without padding needs no mask at all, which lets sdpa pick its fastest kernel.
        key_padding = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_padding = padding_mask(attention_mask)  # (B, 1, 1, T) bool
        attn_mask = key_padding
        if self.alibi_slopes is not None and not self.config.pruned_heads:  # built once per batch, for every layer
            attn_mask = alibi_bias(self.alibi_slopes, input_ids.shape[1], key_padding)  # (1|B, nh, T, T) float
        elif self.alibi_slopes is not None:
            attn_mask = self._pruned_alibi(input_ids.shape[1], key_padding)  # L x (1|B, nh_kept, T, T)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        x, maps, states = self.encoder(x, attn_mask, output_attentions, output_hidden_states, head_mask)  # (B, T, H)
        pooled = self.pooler(x) if self.pooler is not None else None  # (B, H)
        return BertOutput(x, pooled, maps, states)

    def _pruned_alibi(self, t: int, key_padding: torch.Tensor | None) -> list[torch.Tensor]:
        """One ALiBi bias per layer of a pruned model, from its surviving heads' original slopes, built once per
        distinct set of heads (unpruned layers share the full one). Why not pick the heads out of one full bias:
        with padding that bias is (B, nh, T, T), and gathering from it copies it per layer; measured on IMDB
        batches, the copy cost as much as the pruned heads saved."""
        built: dict[tuple[int, ...], torch.Tensor] = {}
        for layer in self.encoder.layers:
            attention = layer.attention
            if attention.kept_heads not in built:
                slopes = self.alibi_slopes if attention.kept_index is None else \
                    self.alibi_slopes.index_select(0, attention.kept_index)  # (nh_kept,)
                built[attention.kept_heads] = alibi_bias(slopes, t, key_padding)  # (1|B, nh_kept, T, T)
        return [built[layer.attention.kept_heads] for layer in self.encoder.layers]



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
                next_sentence_label: torch.Tensor | None = None, output_attentions: bool = False,
                head_mask: torch.Tensor | None = None) -> PreTrainingOutput:
        out = self.bert(input_ids, token_type_ids, attention_mask, output_attentions, head_mask=head_mask)
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
