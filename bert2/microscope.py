"""The training microscope: numbers that show a learner *how* a model is learning, cheap enough to compute at every
evaluation (docs/watching-bert-learn.md).

* Loss baselines. A model that knows only how often each word occurs, and guesses that distribution at every
  [MASK], has an MLM cross-entropy equal to the unigram entropy of the masked tokens; a coin has an NSP loss of
  ln 2. A run whose loss falls below these lines has started to use context. `loss_baselines` computes them once
  per run from token counts of the training stream.
* Head types. Each attention head's attention on a fixed small batch of held-out text is scored by the patterns
  that Clark et al. 2019 ("What does BERT look at?") and Kovaleva et al. 2019 ("Revealing the dark secrets of
  BERT") found in trained BERTs: attending to the previous or next token, to [CLS]/[SEP] (the "no-op" sink),
  to the other pieces of the same word, or broadly (high entropy). `score_heads` gives every head its scores and
  its dominant type; the trainer keeps them in each EvalEvent, so metrics.jsonl holds how the heads grew up.

Everything here reads the model's own forward pass (eval mode, no_grad) and returns plain numbers; nothing is
trained or changed. torch and numpy are imported where used: the workbench imports this module for its
constants and `type_shares` while it starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the workbench reads the constants and shares without importing torch or numpy
    import numpy as np
    import torch

HEAD_TYPES = ("previous", "next", "sink", "same_word", "broad")
"""The head types, in the order the grid's legend and the share chart list them."""

HEAD_TYPE_NAMES = {
    "previous": "previous token",
    "next": "next token",
    "sink": "[CLS]/[SEP] sink",
    "same_word": "same word",
    "broad": "broad",
}

MICROSCOPE_BATCH = 8
"""Held-out sequences the heads are scored on: small enough to cost well under 1% of a run (one eager forward of
8 sequences per evaluation), large enough that a head's type does not flip with one sentence."""

_MAX_SAMPLE_TOKENS = 20_000_000


def unigram_entropy(counts: np.ndarray) -> float:
    """Entropy in nats of the distribution the counts define: the cross-entropy of the best frequency-only
    guesser, which the MLM loss (natural log) is compared with."""
    import numpy as np

    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return float("nan")
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


def token_counts(train_data: Any, vocab_size: int, special_ids: Sequence[int] = (), sample: int = 4096) -> np.ndarray:
    """How often each token id occurs in the training data, special tokens left out (they are never masked).

    Prepared pretraining data keeps the whole tokenised stream as one array (`tokens`, shared with the few per
    cent of validation examples): counting it is one bincount (~10 ms per million tokens). Any other list of examples is sampled: `sample` examples evenly spread.
    """
    import numpy as np

    tokens = getattr(train_data, "tokens", None)
    if tokens is not None:
        stream = np.asarray(tokens[:_MAX_SAMPLE_TOKENS]).astype(np.int64, copy=False)  # (N,)
    else:
        n = len(train_data)
        picks = np.linspace(0, n - 1, num=min(n, sample), dtype=np.int64) if n else []
        stream = np.fromiter(
            (t for i in picks for t in train_data[int(i)]["input_ids"]), dtype=np.int64
        )  # (sum of lengths,)
    stream = stream[(stream >= 0) & (stream < vocab_size)]
    counts = np.bincount(stream, minlength=vocab_size)[:vocab_size]  # (V,)
    for i in special_ids:
        if 0 <= int(i) < vocab_size:
            counts[int(i)] = 0
    return counts


def loss_baselines(train_data: Any, tokenizer: Any, nsp: bool) -> dict[str, float]:
    """{"mlm_loss": unigram entropy of the training tokens, "nsp_loss": ln 2 (with NSP)}: the losses of a model
    that has learnt word frequencies and nothing else, keyed like the evaluation's metrics."""
    counts = token_counts(train_data, len(tokenizer), tokenizer.all_special_ids)
    out = {"mlm_loss": round(unigram_entropy(counts), 4)}
    if nsp:
        out["nsp_loss"] = round(math.log(2.0), 4)
    return out


def crossings(evals: Sequence[tuple[int, dict[str, float]]], baselines: dict[str, float]) -> dict[str, int]:
    """The first evaluation step at which each metric fell below its baseline (`below`: by CROSSING_MARGIN at
    least), {metric: step}; absent if never."""
    out: dict[str, int] = {}
    for step, metrics in evals:
        for key, line in baselines.items():
            if key not in out and below(metrics.get(key), line):
                out[key] = int(step)
    return out


# ----------------------------------------------------------------------------------------------------- heads
def word_ids(tokens: Sequence[str]) -> list[int]:
    """Word index of every WordPiece token: a "##" piece continues the word before it; specials are words alone."""
    out, word = [], -1
    for tok in tokens:
        if not (tok.startswith("##") and word >= 0):
            word += 1
        out.append(word)
    return out


def type_scores(
    attn: torch.Tensor, attention_mask: torch.Tensor, special: torch.Tensor, same_word: torch.Tensor
) -> torch.Tensor:
    """Scores (L, nh, 5) in [0, 1] of every head for HEAD_TYPES, averaged over the batch's real query tokens.

    attn (L, B, nh, T, T) probabilities; attention_mask (B, T) 1 at real tokens; special (B, T) True at
    [CLS]/[SEP]; same_word (B, T, T) True where key j is another piece of query i's word.
      previous   mean attention of token i on i-1          next    on i+1
      sink       mean attention on [CLS] and [SEP] tokens  same_word   on the word's other pieces (multi-piece
                                                                       words only)
      broad      mean entropy of a row / ln(real tokens): 1 is uniform attention
    """
    import torch

    with torch.no_grad():
        return _type_scores(attn.float(), attention_mask, special, same_word)


def _type_scores(
    attn: torch.Tensor, attention_mask: torch.Tensor, special: torch.Tensor, same_word: torch.Tensor
) -> torch.Tensor:
    import torch

    L, B, nh, T, _ = attn.shape
    real = attention_mask.bool()  # (B, T)

    def mean_over_queries(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        # values (L, B, nh, T), rows (B, T) bool -> (L, nh)
        w = rows[None, :, None, :].float()
        return (values * w).sum((1, 3)) / w.sum((1, 3)).clamp(min=1)

    prev = torch.zeros(L, B, nh, T, device=attn.device)
    nxt = torch.zeros(L, B, nh, T, device=attn.device)
    if T > 1:
        prev[..., 1:] = attn.diagonal(offset=-1, dim1=-2, dim2=-1)  # (L, B, nh, T-1) A[i, i-1]
        nxt[..., :-1] = attn.diagonal(offset=1, dim1=-2, dim2=-1)  # (L, B, nh, T-1) A[i, i+1]
    has_prev = real.clone()
    has_prev[:, 0] = False
    has_next = torch.zeros_like(real)
    has_next[:, :-1] = real[:, 1:]
    sink = (attn * special[None, :, None, None, :].float()).sum(-1)  # (L, B, nh, T)
    word = (attn * same_word[None, :, None].float()).sum(-1)  # (L, B, nh, T)
    in_word = same_word.any(-1) & real  # (B, T) queries of multi-piece words
    p = attn.clamp(min=1e-12)
    entropy = -(attn * p.log()).sum(-1)  # (L, B, nh, T)
    n_real = real.sum(1).float().clamp(min=2)  # (B,)
    broad = entropy / n_real.log()[None, :, None, None]  # (L, B, nh, T)
    scores = [
        mean_over_queries(prev, has_prev),
        mean_over_queries(nxt, has_next),
        mean_over_queries(sink, real),
        mean_over_queries(word, in_word),
        mean_over_queries(broad, real),
    ]
    return torch.stack(scores, -1).clamp(0.0, 1.0)  # (L, nh, 5)


PATTERN_THRESHOLD = 0.25
"""A head takes a pattern's type (previous, next, sink, same word) when its lift for that pattern (see
`uniform_scores`) is at least this, a quarter of the way from uniform attention to all of it; otherwise it is
broad. Without it, normalised entropy (0.5 even for a clearly local head) would call every head broad, and a raw
mass would call a uniform head over a 6-token sentence a sink (2 of its 6 tokens are [CLS]/[SEP])."""

CROSSING_MARGIN = 0.005
"""A metric has crossed its baseline when it is below it by at least this fraction: an NSP loss of 0.6929 against
ln 2 = 0.6931 is noise, not a model that has started to tell real next sentences from random ones."""


def below(value: Any, line: float) -> bool:
    """Whether `value` is a finite number below `line` by at least CROSSING_MARGIN of it."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value < line * (1.0 - CROSSING_MARGIN)
    )


def uniform_scores(attention_mask: torch.Tensor, special: torch.Tensor, same_word: torch.Tensor) -> torch.Tensor:
    """The scores (5,) a head with uniform attention over the real tokens would get on this batch: what each
    pattern's score is measured against (a sink score of 0.1 is nothing on 20 tokens with 2 specials)."""
    mask = attention_mask.float()  # (B, T)
    uniform = mask[:, None, :] / mask.sum(1).clamp(min=1)[:, None, None]  # (B, T, T) rows over the real keys
    uniform = uniform * mask[:, :, None]  # padded query rows: zeros
    return type_scores(uniform[None, :, None], attention_mask, special, same_word)[0, 0]  # (5,)


def heads_from_scores(scores: torch.Tensor, uniform: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """[{"layer", "head", "type", "score", "scores": {type: raw score}}] with each head's dominant type.

    A pattern's lift is (score - u) / (1 - u), u its score under uniform attention (`uniform`, (5,); zeros when
    not given): 0 for no more than uniform, 1 for all the attention. The type is the pattern with the highest lift
    when that lift reaches PATTERN_THRESHOLD (its "score" is that lift), else broad (its score the normalised
    entropy)."""
    u = [0.0] * len(HEAD_TYPES) if uniform is None else [float(x) for x in uniform.tolist()]
    broad = HEAD_TYPES.index("broad")
    out = []
    for layer, row in enumerate(scores.tolist()):
        for head, values in enumerate(row):
            lift = [max(0.0, (v - b) / (1.0 - b)) if b < 1.0 else 0.0 for v, b in zip(values, u)]
            best = max((k for k in range(len(HEAD_TYPES)) if k != broad), key=lambda k: lift[k])
            kind, score = (best, lift[best]) if lift[best] >= PATTERN_THRESHOLD else (broad, values[broad])
            out.append(
                {
                    "layer": layer,
                    "head": head,
                    "type": HEAD_TYPES[kind],
                    "score": round(score, 4),
                    "scores": {t: round(v, 4) for t, v in zip(HEAD_TYPES, values)},
                }
            )
    return out


def type_shares(heads: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Share of the heads whose dominant type is each type (the line chart's y values)."""
    n = max(len(heads), 1)
    return {t: sum(1 for h in heads if h.get("type") == t) / n for t in HEAD_TYPES}


class HeadBatch:
    """The fixed held-out batch heads are scored on: the first `size` validation examples, padded once."""

    def __init__(self, examples: Sequence[dict[str, Any]], tokenizer: Any, size: int = MICROSCOPE_BATCH):
        import torch

        rows = [examples[i] for i in range(min(size, len(examples)))]
        if not rows:
            raise ValueError("no held-out examples to score the heads on")
        T = max(len(r["input_ids"]) for r in rows)
        B = len(rows)
        pad = int(tokenizer.pad_token_id or 0)
        self.input_ids = torch.full((B, T), pad, dtype=torch.long)  # (B, T)
        self.token_type_ids = torch.zeros((B, T), dtype=torch.long)  # (B, T)
        self.attention_mask = torch.zeros((B, T), dtype=torch.long)  # (B, T)
        self.same_word = torch.zeros((B, T, T), dtype=torch.bool)  # (B, T, T)
        specials = {int(tokenizer.cls_token_id), int(tokenizer.sep_token_id)}
        for b, r in enumerate(rows):
            ids = list(r["input_ids"])
            n = len(ids)
            self.input_ids[b, :n] = torch.tensor(ids)
            if r.get("token_type_ids"):
                self.token_type_ids[b, :n] = torch.tensor(list(r["token_type_ids"]))
            self.attention_mask[b, :n] = 1
            words = torch.tensor(word_ids(tokenizer.convert_ids_to_tokens(ids)))  # (n,)
            same = words[:, None] == words[None, :]  # (n, n)
            same.fill_diagonal_(False)  # a token is not "another piece" of its own word
            self.same_word[b, :n, :n] = same
        self.special = torch.isin(self.input_ids, torch.tensor(sorted(specials))) & self.attention_mask.bool()

    @classmethod
    def from_texts(cls, texts: Sequence[str], tokenizer: Any, max_length: int) -> HeadBatch:
        enc = [tokenizer(t, truncation=True, max_length=max_length) for t in texts]
        return cls(
            [{"input_ids": e["input_ids"], "token_type_ids": e.get("token_type_ids", [])} for e in enc], tokenizer
        )


def score_heads(model: torch.nn.Module, batch: HeadBatch) -> list[dict[str, Any]]:
    """Every head's type scores on `batch` (eval mode, no_grad; the model's training mode is restored)."""
    import torch

    core = model.bert if hasattr(model, "bert") else model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = core(
                batch.input_ids.to(device),
                batch.token_type_ids.to(device),
                batch.attention_mask.to(device),
                output_attentions=True,
            )
    finally:
        model.train(was_training)
    attn = torch.stack(list(out.attentions))  # L x (B, nh, T, T) -> (L, B, nh, T, T)
    args = (batch.attention_mask.to(device), batch.special.to(device), batch.same_word.to(device))
    scores = type_scores(attn, *args)  # (L, nh, 5)
    return heads_from_scores(scores.cpu(), uniform_scores(*args).cpu())
