"""BERT, from scratch: embeddings -> encoder -> pooler, and the pretraining heads (MLM + NSP).

Parameter structure maps 1:1 onto transformers' BertForPreTraining (see `bert2.interop`); a test loads the same
random weights into both and compares logits. Fine-tuning heads live in `bert2.heads`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .losses import linear_cross_entropy_sum
from .transformer import ACTIVATIONS, EncoderLayer, alibi_bias, alibi_slopes, padding_mask


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


class BertPooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence vector NSP and classification read."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, T, H) -> (B, H)


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
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = padding_mask(attention_mask)  # (B, 1, 1, T)
        if self.alibi_slopes is not None:
            mask = alibi_bias(self.alibi_slopes, input_ids.shape[1], mask)  # (1 or B, nh, T, T), built once per batch
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        x, maps = self.encoder(x, mask, output_attentions)  # (B, T, H)
        pooled = self.pooler(x) if self.pooler is not None else None  # (B, H)
        return BertOutput(x, pooled, maps)


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
        # With labels and gradients on (a training step in fp32), the MLM loss comes from bert2.losses and
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
            if self._fuse_loss(rows):  # training step: the loss without materialised logits (bert2.losses)
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
