"""Generative QA: the BERT encoder reads "question [SEP] context", a small causal Transformer decoder with
cross-attention writes the answer token by token, with greedy or beam-search generation and a copy mechanism.

Shapes: B batch, T target (answer) tokens, S source (question + context) tokens, H hidden, nh heads, V vocabulary,
N labelled target tokens, K beams.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import CheckpointError
from .bert import BertModel, FeedForward, MLMHead, MultiHeadAttention, attend, init_weights, padding_mask


def causal_mask(t: int, device: torch.device) -> torch.Tensor:
    """(1, 1, T, T) lower-triangular boolean mask: position i sees positions <= i (decoder self-attention)."""
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None]  # (1, 1, T, T)


class CrossAttention(nn.Module):
    """Multi-head attention from the decoder's positions (queries) to the encoder's states (keys and values): how
    the answer being written reads the question and its context."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.head_size = cfg.hidden_size // cfg.num_attention_heads
        self.attn_dropout = cfg.attention_probs_dropout_prob
        self.eager = cfg.attn_implementation == "eager"
        self.q = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.kv = nn.Linear(cfg.hidden_size, 2 * cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, H = x.shape
        S = memory.shape[1]
        q = self.q(x).view(B, T, self.num_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k, v = (
            t.view(B, S, self.num_heads, self.head_size).transpose(1, 2) for t in self.kv(memory).split(H, dim=-1)
        )  # 2 x (B, nh, S, hs)
        y, _ = attend(q, k, v, mask, self.attn_dropout if self.training else 0.0, self.eager)  # (B, nh, T, hs)
        return self.out(y.transpose(1, 2).reshape(B, T, H))  # (B, T, H)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention over the encoder output, feed-forward; post-LN like the encoder."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attention = MultiHeadAttention(cfg)
        self.self_attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.cross_attention = CrossAttention(cfg)
        self.cross_attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act, cfg.feed_forward == "glu")
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(
        self, x: torch.Tensor, self_mask: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None
    ) -> torch.Tensor:
        a, _ = self.self_attention(x, self_mask)  # (B, T, H), T = target length
        x = self.self_attention_norm(x + self.dropout(a))
        c = self.cross_attention(x, memory, memory_mask)  # (B, T, H) reading (B, S, H)
        x = self.cross_attention_norm(x + self.dropout(c))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))  # (B, T, H)


@dataclass
class Seq2SeqOutput:
    loss: torch.Tensor | None
    """Mean token cross-entropy over the labelled target tokens."""
    loss_sum: torch.Tensor | None
    """Summed token cross-entropy, so the trainer can normalise over an accumulated batch."""
    token_count: torch.Tensor | None
    logits: torch.Tensor | None
    """(N, V) at the labelled positions when labels are given, else (B, T, V)."""


@dataclass
class GenerationOutput:
    sequences: list[list[int]]
    """Generated token ids per input, without the start token and without the end-of-sequence token."""
    scores: torch.Tensor
    """(B,) summed log-probabilities of the generated tokens (the end token included when it was produced)."""
    finished: list[bool]
    """Whether each sequence ended with the end-of-sequence token (False: it hit max_length)."""

    @property
    def mean_log_probs(self) -> torch.Tensor:
        """(B,) per-token average log-probability: a length-independent confidence."""
        lengths = torch.tensor(
            [len(s) + int(f) for s, f in zip(self.sequences, self.finished)],
            dtype=self.scores.dtype,
            device=self.scores.device,
        ).clamp(min=1)
        return self.scores / lengths


@dataclass
class EncodedSource:
    """What the decoder reads about its input, computed once per question (and repeated per beam)."""

    memory: torch.Tensor
    """(B, S, H) encoder states."""
    mask: torch.Tensor | None
    """(B, 1, 1, S) cross-attention mask, None when nothing is padded."""
    ids: torch.Tensor
    """(B, S) input token ids: where a copied token lands in the vocabulary."""
    copyable: torch.Tensor
    """(B, S) bool: real, non-special tokens the copy mechanism may point at."""

    def repeat(self, k: int) -> EncodedSource:
        return EncodedSource(
            self.memory.repeat_interleave(k, 0),
            None if self.mask is None else self.mask.repeat_interleave(k, 0),
            self.ids.repeat_interleave(k, 0),
            self.copyable.repeat_interleave(k, 0),
        )


class BertForGenerativeQA(nn.Module):
    """BERT encoder reads "question [SEP] context"; a causal Transformer decoder with cross-attention writes the
    answer token by token (the seed's generative QA, with the Transformer decoder its notes recommend instead of a
    per-position linear layer, which cannot produce an answer of a different length than the input).

    The decoder shares the encoder's word embeddings (input side) and projects onto the vocabulary with the same
    tied matrix through an MLM-style head, which `load_pretrained` initialises from the pretraining MLM head: the
    decoder then starts out already mapping hidden states to plausible words. Only the decoder layers and its
    position table start from scratch. [CLS] starts every answer, [SEP] ends it, [PAD] fills after the end.

    With `copy` (the default), each step may also point at a token of the input and copy it (a pointer-generator,
    See et al. 2017): p(w) = g * p_vocab(w) + (1 - g) * sum of the attention on input positions holding w, with the
    gate g = sigmoid(w . [h; attended input]) learnt. Answers such as "Swiss mathematician" are mostly words of the
    context; a decoder trained on ~9,000 answers cannot learn to spell rare names from the vocabulary alone, and
    without copying it falls back on the most frequent words ("american american american").
    """

    pretrained_prefixes = {"bert.": "bert.", "mlm.": "lm_head."}

    def __init__(
        self,
        cfg: ModelConfig,
        decoder_layers: int = 2,
        max_target_positions: int = 32,
        start_token_id: int = 2,
        eos_token_id: int = 3,
        suppress_token_ids: tuple[int, ...] = (),
        copy: bool = True,
        no_repeat_ngram_size: int = 0,
        max_word_repeats: int = 0,
    ):
        super().__init__()
        self.config = cfg
        self.start_token_id = start_token_id
        self.eos_token_id = eos_token_id
        self.pad_token_id = cfg.pad_token_id
        self.max_target_positions = max_target_positions
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.max_word_repeats = max_word_repeats
        # (V,) bool: tokens that start a word (not "##" pieces, not punctuation); set_vocabulary() fills it, since
        # only the tokenizer knows. None: the word-repeat rule is off.
        self.word_starts: torch.Tensor | None = None
        # Never generated: padding, the start token, [MASK]... (their rows stay in the softmax for scoring).
        self.suppress_token_ids = tuple(sorted({cfg.pad_token_id, start_token_id, *suppress_token_ids}))
        self.bert = BertModel(cfg, add_pooling_layer=False)
        self.decoder_position_embeddings = nn.Embedding(max_target_positions, cfg.hidden_size)
        self.decoder_embeddings_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.decoder_dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(decoder_layers))
        self.lm_head = MLMHead(cfg)
        self.copy = copy
        if copy:
            self.copy_query = nn.Linear(cfg.hidden_size, cfg.hidden_size)  # decoder state -> query over the input
            self.copy_gate = nn.Linear(2 * cfg.hidden_size, 1)  # [state; attended input] -> logit of g
        self.apply(lambda m: init_weights(m, cfg.initializer_range))

    def set_vocabulary(self, tokenizer: object) -> None:
        """Tell generation which tokens start a word, so that `max_word_repeats` can count words."""
        tokens = tokenizer.convert_ids_to_tokens(list(range(self.config.vocab_size)))  # type: ignore[attr-defined]
        special = set(getattr(tokenizer, "all_special_tokens", []))
        self.word_starts = torch.tensor(
            [t not in special and not t.startswith("##") and any(c.isalnum() for c in t) for t in tokens],
            dtype=torch.bool,
        )

    @torch.no_grad()
    def init_decoder_from_encoder(self) -> int:
        """Start decoder layer i from encoder layer i: self-attention, feed-forward and their LayerNorms (the
        cross-attention, which the encoder has no counterpart of, stays random). Rothe et al. (2020) found such
        "BERT2BERT" warm starts beat random decoders, most of all with little training data. Returns how many
        layers were initialised (min of the two depths)."""
        if self.config.pruned_heads:  # a decoder layer has every head; a pruned encoder layer's weights do not fit
            raise CheckpointError(
                "the encoder has pruned attention heads (bert2 prune), so its layers cannot seed "
                "the decoder's; set finetune.decoder_from_encoder = false"
            )
        done = 0
        for enc, dec in zip(self.bert.encoder.layers, self.decoder):
            dec.self_attention.load_state_dict(enc.attention.state_dict())
            dec.self_attention_norm.load_state_dict(enc.attention_norm.state_dict())
            dec.ffn.load_state_dict(enc.ffn.state_dict())
            dec.ffn_norm.load_state_dict(enc.ffn_norm.state_dict())
            done += 1
        return done

    # ---- building blocks --------------------------------------------------------------------------------------
    def encode(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> EncodedSource:
        """Encoder states, the cross-attention mask and what the copy mechanism may point at."""
        memory = self.bert(input_ids, token_type_ids, attention_mask).last_hidden_state  # (B, S, H)
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = padding_mask(attention_mask)  # (B, 1, 1, S)
        real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        special = torch.tensor([*self.suppress_token_ids, self.eos_token_id], device=input_ids.device)
        copyable = real & ~torch.isin(input_ids, special)  # (B, S)
        return EncodedSource(memory, mask, input_ids, copyable)

    def decode(self, decoder_input_ids: torch.Tensor, source: EncodedSource) -> torch.Tensor:
        """Decoder hidden states (B, T, H) for a target prefix; position i sees target positions <= i only."""
        B, T = decoder_input_ids.shape
        if T > self.max_target_positions:
            raise ValueError(f"target of {T} tokens exceeds the decoder's {self.max_target_positions} positions")
        x = self.bert.embeddings.word_embeddings(decoder_input_ids)  # (B, T, H) shared with the encoder
        x = x + self.decoder_position_embeddings.weight[:T][None]  # (1, T, H) broadcast over B
        x = self.decoder_dropout(self.decoder_embeddings_norm(x))  # (B, T, H)
        self_mask = causal_mask(T, x.device)  # (1, 1, T, T)
        # Padded target positions need no mask of their own: they come after the end token, so the causal mask
        # already hides them from every real position, and their outputs carry no label.
        for layer in self.decoder:
            x = layer(x, self_mask, source.memory, source.mask)  # (B, T, H)
        return x

    def log_probs(
        self, hidden: torch.Tensor, source: EncodedSource, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decoder states (B, T, H) -> log p(next token), float32: (N, V) for the N positions `select` (B, T)
        marks, or (B, T, V) for all of them.

        The copy attention is computed for every position in two batched matmuls (cheaper than gathering each
        selected position's encoder states), then only the selected rows are mixed into the vocabulary.
        """
        B, T, H = hidden.shape
        flat = select is None
        if flat:
            select = torch.ones(B, T, dtype=torch.bool, device=hidden.device)
        picked = hidden[select]  # (N, H)
        vocab = self.lm_head(picked, self.bert.embeddings.word_embeddings.weight).float().log_softmax(-1)  # (N, V)
        if self.copy:
            scores = self.copy_query(hidden) @ source.memory.transpose(1, 2) / H**0.5  # (B, T, S)
            scores = scores.float().masked_fill(~source.copyable[:, None, :], float("-inf"))
            attn = torch.nan_to_num(scores.softmax(-1))  # (B, T, S); nothing copyable -> zeros
            attended = attn.to(source.memory.dtype) @ source.memory  # (B, T, H)
            gate = torch.sigmoid(self.copy_gate(torch.cat([hidden, attended], -1)).float())  # (B, T, 1) p(generate)
            gate = torch.where(source.copyable.any(-1)[:, None, None], gate, torch.ones_like(gate))[select]  # (N, 1)
            rows = select.nonzero()[:, 0]  # (N,) the example each position belongs to
            copied = torch.zeros_like(vocab).scatter_add_(1, source.ids[rows], attn[select])  # (N, V) per token
            vocab = (gate * vocab.exp() + (1 - gate) * copied).clamp_min(1e-30).log()  # (N, V)
        return vocab.view(B, T, -1) if flat else vocab

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> Seq2SeqOutput:
        """Teacher forcing: the decoder reads the gold answer shifted right and predicts it one step ahead.

        `logits` are log-probabilities (the vocabulary and the copy distribution mixed), so a softmax of them
        gives the model's distribution back.
        """
        if decoder_input_ids is None:
            raise ValueError("decoder_input_ids are required (teacher forcing); use generate() to answer")
        source = self.encode(input_ids, token_type_ids, attention_mask)
        hidden = self.decode(decoder_input_ids, source)  # (B, T, H)
        if labels is None:
            return Seq2SeqOutput(None, None, None, self.log_probs(hidden, source))  # (B, T, V)
        selected = labels != -100  # (B, T)
        logp = self.log_probs(hidden, source, selected)  # (N, V): only where a label exists
        loss_sum = F.nll_loss(logp, labels[selected], reduction="sum")
        count = selected.sum()
        return Seq2SeqOutput(loss_sum / count.clamp(min=1), loss_sum, count, logp)

    # ---- scoring and generation -----------------------------------------------------------------------------
    def _next_log_probs(self, prefix: torch.Tensor, source: EncodedSource) -> torch.Tensor:
        """log p(next token | prefix, input): (B, V) log-probabilities (no suppression), in float32."""
        hidden = self.decode(prefix, source)[:, -1:]  # (B, 1, H) last position only
        return self.log_probs(hidden, source)[:, 0]  # (B, V)

    @torch.no_grad()
    def sequence_log_prob(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        sequences: list[list[int]],
        finished: list[bool],
    ) -> torch.Tensor:
        """(B,) log p(sequence [+ end token when finished] | input) under teacher forcing.

        The yardstick that makes greedy and beam search comparable (and testable): both report this same number.
        """
        targets = [list(s) + ([self.eos_token_id] if f else []) for s, f in zip(sequences, finished)]
        T = max(1, max(len(t) for t in targets))
        B = len(targets)
        dec = torch.full((B, T), self.pad_token_id, dtype=torch.long, device=input_ids.device)  # (B, T)
        lab = torch.full((B, T), -100, dtype=torch.long, device=input_ids.device)  # (B, T)
        for i, t in enumerate(targets):
            if t:
                dec[i, : len(t)] = torch.tensor([self.start_token_id] + t[:-1], dtype=torch.long)
                lab[i, : len(t)] = torch.tensor(t, dtype=torch.long)
        if all(len(t) == 0 for t in targets):
            return torch.zeros(B, device=input_ids.device)
        dec[:, 0] = self.start_token_id
        was_training = self.training
        self.eval()  # dropout off: the same numbers generate() saw
        try:
            logp = self(input_ids, token_type_ids, attention_mask, decoder_input_ids=dec).logits  # (B, T, V)
        finally:
            self.train(was_training)
        picked = logp.gather(-1, lab.clamp(min=0)[..., None]).squeeze(-1)  # (B, T)
        return (picked * (lab != -100)).sum(-1)  # (B,)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        max_length: int | None = None,
        num_beams: int = 1,
        min_length: int = 1,
    ) -> GenerationOutput:
        """Answer each input: greedy (num_beams=1) or beam search; at most `max_length` tokens, end token included.

        The end token is barred for the first `min_length` steps: training answers are never empty, yet an
        untrained or weak decoder often puts most mass on ending at once, and likelihood ranking (beam search
        especially, which favours short hypotheses) would then return "".

        With `no_repeat_ngram_size` n > 0, a token that would repeat an n-gram already in the answer is barred
        (transformers' generate option of the same name): a small decoder otherwise loops on a likely word. With
        `max_word_repeats` k > 0 (and `set_vocabulary` called), a word already said k times is barred too: the
        n-gram rule alone still lets "x y x z x" through (measured: 1.2-1.6% of wiki-qa answers).

        Beam search ranks by total log-probability (no length normalisation), the quantity `sequence_log_prob`
        measures. Beam search is not monotone in the beam width, so the greedy hypothesis is always a candidate:
        a beam answer is therefore never less likely than the greedy one.
        """
        limit = self.max_target_positions if max_length is None else min(max_length, self.max_target_positions)
        if limit < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        was_training = self.training
        self.eval()
        try:
            source = self.encode(input_ids, token_type_ids, attention_mask)
            greedy = self._greedy(source, limit, min_length)
            if num_beams <= 1:
                return greedy
            beam = self._beam(source, limit, num_beams, min_length)
            take_beam = beam.scores >= greedy.scores  # (B,)
            return GenerationOutput(
                [b if t else g for b, g, t in zip(beam.sequences, greedy.sequences, take_beam.tolist())],
                torch.where(take_beam, beam.scores, greedy.scores),
                [b if t else g for b, g, t in zip(beam.finished, greedy.finished, take_beam.tolist())],
            )
        finally:
            self.train(was_training)

    def _suppress(self, logp: torch.Tensor, seqs: torch.Tensor, allow_end: bool = True) -> torch.Tensor:
        """Bar what may not come next: special tokens, the end token before min_length, repeated n-grams."""
        out = logp.clone()
        out[:, list(self.suppress_token_ids)] = float("-inf")
        if not allow_end:
            out[:, self.eos_token_id] = float("-inf")
        if self.max_word_repeats > 0 and self.word_starts is not None and seqs.shape[1] > 1:
            said = torch.zeros_like(out).scatter_add_(1, seqs[:, 1:], torch.ones_like(seqs[:, 1:], dtype=out.dtype))
            out[(said >= self.max_word_repeats) & self.word_starts.to(out.device)[None]] = float("-inf")  # (R, V)
        n = self.no_repeat_ngram_size
        if n > 0 and seqs.shape[1] >= n:
            for row, prefix in enumerate(seqs[:, 1:].tolist()):  # the start token is not part of the answer
                if len(prefix) < n - 1:
                    continue
                tail = tuple(prefix[len(prefix) - n + 1 :]) if n > 1 else ()
                banned = [prefix[i + n - 1] for i in range(len(prefix) - n + 1) if tuple(prefix[i : i + n - 1]) == tail]
                if banned:
                    out[row, banned] = float("-inf")
        return out

    def _greedy(self, source: EncodedSource, limit: int, min_length: int = 1) -> GenerationOutput:
        B = source.memory.shape[0]
        device = source.memory.device
        seqs = torch.full((B, 1), self.start_token_id, dtype=torch.long, device=device)  # (B, 1)
        scores = torch.zeros(B, device=device)  # (B,)
        finished = torch.zeros(B, dtype=torch.bool, device=device)  # (B,)
        for t in range(limit):
            logp = self._next_log_probs(seqs, source)  # (B, V)
            tok = self._suppress(logp, seqs, allow_end=t >= min_length).argmax(-1)  # (B,)
            tok = torch.where(finished, torch.full_like(tok, self.pad_token_id), tok)
            scores = scores + torch.where(finished, 0.0, logp.gather(-1, tok[:, None]).squeeze(-1))
            seqs = torch.cat([seqs, tok[:, None]], dim=1)  # (B, t + 1)
            finished = finished | (tok == self.eos_token_id)
            if bool(finished.all()):
                break
        return self._unpack(seqs, scores, finished)

    def _beam(self, source: EncodedSource, limit: int, K: int, min_length: int = 1) -> GenerationOutput:
        """Batched beam search over B inputs x K beams, flattened to B*K rows.

        A finished beam stays in the beam and can only be extended by [PAD] at zero cost, so finished and open
        hypotheses compete on the same total log-probability; the search stops when every beam has finished.
        """
        B = source.memory.shape[0]
        device = source.memory.device
        source = source.repeat(K)  # (B*K, ...) one copy of the input per beam
        seqs = torch.full((B * K, 1), self.start_token_id, dtype=torch.long, device=device)  # (B*K, 1)
        beam_scores = torch.full((B, K), float("-inf"), device=device)  # (B, K)
        beam_scores[:, 0] = 0.0  # all beams start identical: expand only the first at step one
        finished = torch.zeros(B * K, dtype=torch.bool, device=device)  # (B*K,)
        rows = torch.arange(B, device=device)[:, None] * K  # (B, 1)
        for t in range(limit):
            logp = self._next_log_probs(seqs, source)  # (B*K, V)
            V = logp.shape[-1]
            step = self._suppress(logp, seqs, allow_end=t >= min_length)  # (B*K, V)
            step[finished] = float("-inf")
            step[finished, self.pad_token_id] = 0.0
            cand = (beam_scores.reshape(B * K, 1) + step).view(B, K * V)  # (B, K*V)
            top_scores, top_idx = cand.topk(K, dim=-1)  # (B, K)
            src = (rows + torch.div(top_idx, V, rounding_mode="floor")).view(-1)  # (B*K,) parent row
            tok = (top_idx % V).view(-1)  # (B*K,)
            seqs = torch.cat([seqs[src], tok[:, None]], dim=1)  # (B*K, t + 1)
            finished = finished[src] | (tok == self.eos_token_id)
            beam_scores = top_scores
            if bool(finished.all()):
                break
        best = beam_scores.argmax(-1)  # (B,)
        pick = rows.squeeze(1) + best  # (B,)
        return self._unpack(seqs[pick], beam_scores.gather(1, best[:, None]).squeeze(1), finished[pick])

    def _unpack(self, seqs: torch.Tensor, scores: torch.Tensor, finished: torch.Tensor) -> GenerationOutput:
        out = []
        for row in seqs[:, 1:].tolist():  # drop the start token
            if self.eos_token_id in row:
                row = row[: row.index(self.eos_token_id)]
            out.append([t for t in row if t != self.pad_token_id])
        return GenerationOutput(out, scores, finished.tolist())
