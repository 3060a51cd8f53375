"""Transformer building blocks, written from scratch: attention, feed-forward, encoder and decoder layers.

Post-LN as in the original BERT: `x = LayerNorm(x + Dropout(Sublayer(x)))`, LayerNorm over the hidden axis.
Masks follow one convention everywhere: a tensor broadcastable to (B, nh, T_q, T_k), either boolean (True where a
query may attend to a key) or an additive float bias (0 or -inf for padding, plus ALiBi's distance penalties). The
eager path turns False into the most negative float before softmax (not 1e-9, which would let padding leak in) or
adds the bias; the sdpa path hands either to `scaled_dot_product_attention`, which does the same inside a fused
kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),  # exact erf GELU, as BERT and transformers' "gelu"
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


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


def causal_mask(t: int, device: torch.device) -> torch.Tensor:
    """(1, 1, T, T) lower-triangular boolean mask: position i sees positions <= i (decoder self-attention)."""
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None]  # (1, 1, T, T)


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


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention over the encoder output, feed-forward; post-LN like the encoder."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, act: str, dropout: float,
                 attn_dropout: float, eps: float, implementation: str = "sdpa"):
        super().__init__()
        self.self_attention = MultiHeadAttention(hidden_size, num_heads, attn_dropout, implementation)
        self.self_attention_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.cross_attention = MultiHeadAttention(hidden_size, num_heads, attn_dropout, implementation, cross=True)
        self.cross_attention_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.ffn = FeedForward(hidden_size, intermediate_size, act)
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, self_mask: torch.Tensor, memory: torch.Tensor,
                memory_mask: torch.Tensor | None) -> torch.Tensor:
        a, _ = self.self_attention(x, self_mask)  # (B, T, H), T = target length
        x = self.self_attention_norm(x + self.dropout(a))
        c, _ = self.cross_attention(x, memory_mask, memory=memory)  # (B, T, H) reading (B, S, H)
        x = self.cross_attention_norm(x + self.dropout(c))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))  # (B, T, H)
