"""Fine-tuning heads on the from-scratch BertModel: sequence classification, token classification (NER) and
extractive (span) QA; the generative QA model (encoder + decoder) is in decoder.py. Each task of the registry
(bert2/tasks/) builds its own from a checkpoint's metadata.

Shapes: B batch, T tokens, H hidden, C classes.

Every head keeps the encoder as `.bert` and its ModelConfig as `.config`, so a pretraining checkpoint (whose
weights are named `bert.*`, `mlm.*`, `nsp.*`) initialises it by name: `load_pretrained` copies the tensors each head
declares in `pretrained_prefixes` and reports what stayed new and what went unused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import CHOICES, ModelConfig
from ..errors import CheckpointError
from .bert import BertModel, init_weights


@dataclass
class ClassifierOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor  # (B, C)


@dataclass
class SpanOutput:
    loss: torch.Tensor | None
    start_logits: torch.Tensor  # (B, T)
    end_logits: torch.Tensor  # (B, T)


@dataclass
class TokenClassifierOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor  # (B, T, C)


@dataclass
class LoadReport:
    """What `load_pretrained` did: tensors copied, head tensors left new, checkpoint tensors not used."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        def short(names: list[str]) -> str:
            def group(n: str) -> str:  # "mlm.*", but "bert.pooler.*" (the encoder's parts are worth naming)
                parts = n.split(".")
                depth = 2 if parts[0] == "bert" and len(parts) > 2 else 1
                return ".".join(parts[:depth]) + (".*" if len(parts) > depth else "")

            groups = sorted({group(n) for n in names})
            return ", ".join(groups) if groups else "none"

        return (
            f"initialised {len(self.loaded)} tensors from the checkpoint; new: {short(self.missing)}; "
            f"not used: {short(self.unused)}"
        )


def load_pretrained(
    model: nn.Module, state: dict[str, torch.Tensor], prefixes: dict[str, str] | None = None
) -> LoadReport:
    """Copy the checkpoint tensors whose prefixes `model.pretrained_prefixes` maps (e.g. "bert." -> "bert.").

    `prefixes` overrides the mapping: {"": ""} copies every tensor by its own name (continuing from a checkpoint
    of the same task).

    Partial by design (the head is new, the pretraining heads are dropped), but never silent: the report lists
    both sides, and a missing encoder tensor or a shape mismatch is an error, because fine-tuning a half-loaded
    encoder would quietly waste the run.
    """
    if prefixes is None:
        prefixes = getattr(model, "pretrained_prefixes", {"bert.": "bert."})
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    report = LoadReport()
    for name, tensor in state.items():
        target = next((new + name[len(old) :] for old, new in prefixes.items() if name.startswith(old)), None)
        if target is None or target not in own:
            report.unused.append(name)
            continue
        if own[target].shape != tensor.shape:
            raise CheckpointError(
                f"checkpoint tensor {name} has shape {tuple(tensor.shape)} but the model expects "
                f"{tuple(own[target].shape)} for {target}; the configs do not match"
            )
        mapped[target] = tensor
    model.load_state_dict(mapped, strict=False)
    report.loaded = sorted(mapped)
    report.missing = sorted(k for k in own if k not in mapped)
    lost = [k for k in report.missing if k.startswith("bert.encoder.") or k.startswith("bert.embeddings.")]
    if lost:
        raise CheckpointError(
            f"the checkpoint lacks encoder weights ({', '.join(lost[:3])}"
            f"{' ...' if len(lost) > 3 else ''}); is it a bert2 checkpoint?"
        )
    return report


# --------------------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------------------


class BertForSequenceClassification(nn.Module):
    """A sentence vector -> dropout -> linear.

    Two ways to get the sentence vector (`pooling`):

    * "mean" (the default): the average of the last hidden states over the real tokens. Measured on IMDB from a
      `bert2 quick` checkpoint (128 tokens, 70 s of fine-tuning, lr 1e-3): 77.7% against 65.3% for [CLS]. A 2-layer
      model whose attention is mostly local (ALiBi) cannot gather a whole review into one position, while the
      average reads every position's evidence at once: it is a bag of *contextual* word vectors.
    * "cls": the BERT paper's pooled [CLS] vector (tanh(W h_[CLS] + b), the pooler NSP trained); the layout
      transformers' BertForSequenceClassification has, so only these classifiers export to it.
    """

    pretrained_prefixes = {"bert.": "bert."}

    def __init__(self, cfg: ModelConfig, num_labels: int, classifier_dropout: float = 0.1, pooling: str = "mean"):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"a classifier needs at least 2 labels, got {num_labels}")
        if pooling not in CHOICES["finetune.pooling"]:
            raise ValueError(f"pooling must be one of {', '.join(CHOICES['finetune.pooling'])}, got {pooling!r}")
        self.config = cfg
        self.num_labels = num_labels
        self.pooling = pooling
        # Mean pooling never reads the pooler; an unused parameter would also break DDP's gradient bucketing.
        self.bert = BertModel(cfg, add_pooling_layer=pooling == "cls")
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(cfg.hidden_size, num_labels)
        self.apply(lambda m: init_weights(m, cfg.initializer_range))

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        out = self.bert(input_ids, token_type_ids, attention_mask)
        if self.pooling == "cls":
            sentence = out.pooler_output  # (B, H)
        else:
            sentence = mean_pool(out.last_hidden_state, attention_mask)  # (B, H)
        logits = self.classifier(self.dropout(sentence))  # (B, C)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ClassifierOutput(loss, logits)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, H) -> (B, H): the average over real tokens ([CLS] and [SEP] included), padding left out."""
    if attention_mask is None:
        return hidden.mean(1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)


# --------------------------------------------------------------------------------------------------------------
# Extractive QA
# --------------------------------------------------------------------------------------------------------------


class BertForQuestionAnswering(nn.Module):
    """Start and end logits for every token (HF's `qa_outputs` then `logits.split(1, dim=-1)`).

    No pooler: span QA never reads [CLS]'s pooled vector, and an unused parameter would break DDP's gradient
    bucketing. Padding positions get the most negative logit so the softmax (and the loss) ignore them.
    """

    pretrained_prefixes = {"bert.": "bert."}

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.bert = BertModel(cfg, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(cfg.hidden_size, 2)
        self.apply(lambda m: init_weights(m, cfg.initializer_range))

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
    ) -> SpanOutput:
        seq = self.bert(input_ids, token_type_ids, attention_mask).last_hidden_state  # (B, T, H)
        logits = self.qa_outputs(seq)  # (B, T, 2)
        start_logits, end_logits = logits.split(1, dim=-1)  # 2 x (B, T, 1)
        start_logits = start_logits.squeeze(-1).float()  # (B, T)
        end_logits = end_logits.squeeze(-1).float()  # (B, T)
        if attention_mask is not None:
            pad = attention_mask == 0  # (B, T)
            start_logits = start_logits.masked_fill(pad, torch.finfo(start_logits.dtype).min)
            end_logits = end_logits.masked_fill(pad, torch.finfo(end_logits.dtype).min)
        loss = None
        if start_positions is not None and end_positions is not None:
            T = start_logits.shape[1]
            s = start_positions.clamp(0, T - 1)  # (B,) an answer outside the window points at [CLS] (index 0)
            e = end_positions.clamp(0, T - 1)
            loss = (F.cross_entropy(start_logits, s) + F.cross_entropy(end_logits, e)) / 2
        return SpanOutput(loss, start_logits, end_logits)


# --------------------------------------------------------------------------------------------------------------
# Token classification (named entities)
# --------------------------------------------------------------------------------------------------------------


class BertForTokenClassification(nn.Module):
    """One label per token: every last hidden state -> dropout -> linear (transformers' layout and names).

    Where classification pools a sentence into one vector, NER keeps a vector per position: the encoder already
    mixed each word with its neighbours (a capitalised word after "in" is a place), and the linear layer reads
    that contextual vector. Labels are -100 on every piece but a word's first (tasks/ner.py), so the loss counts
    each word once. No pooler: nothing reads [CLS]'s pooled vector (and an unused parameter would break DDP).
    """

    pretrained_prefixes = {"bert.": "bert."}

    def __init__(
        self,
        cfg: ModelConfig,
        num_labels: int,
        classifier_dropout: float = 0.1,
        num_shapes: int = 0,
        num_lookup: int = 0,
    ):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"a token classifier needs at least 2 labels, got {num_labels}")
        self.config = cfg
        self.num_labels = num_labels
        self.bert = BertModel(cfg, add_pooling_layer=False)
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(cfg.hidden_size, num_labels)
        # With num_shapes, a learned vector per word shape (lower, Capitalised, ALL CAPS, ...; tasks/ner.py) joins
        # each piece's embeddings: names are mostly capitalised, which a lowercasing vocabulary cannot see.
        self.shape_embeddings = nn.Embedding(num_shapes, cfg.hidden_size) if num_shapes else None
        # With num_lookup, a learned vector per answer of the training set's word -> tag table (unseen, O, B-X,
        # I-X; tasks/ner.py) joins them too: names recur across sentences, which a table remembers verbatim.
        self.lookup_embeddings = nn.Embedding(num_lookup, cfg.hidden_size) if num_lookup else None
        self.apply(lambda m: init_weights(m, cfg.initializer_range))
        for extra in (self.shape_embeddings, self.lookup_embeddings):
            if extra is not None:  # zero: the run starts from exactly the pretrained encoder
                nn.init.zeros_(extra.weight)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        shape_ids: torch.Tensor | None = None,
        lookup_ids: torch.Tensor | None = None,
    ) -> TokenClassifierOutput:
        extra = None
        if self.shape_embeddings is not None and shape_ids is not None:
            extra = self.shape_embeddings(shape_ids)  # (B, T) -> (B, T, H)
        if self.lookup_embeddings is not None and lookup_ids is not None:
            looked = self.lookup_embeddings(lookup_ids)  # (B, T) -> (B, T, H)
            extra = looked if extra is None else extra + looked
        seq = self.bert(input_ids, token_type_ids, attention_mask, extra_embeddings=extra).last_hidden_state
        logits = self.classifier(self.dropout(seq))  # (B, T, C)
        loss = None
        if labels is not None:  # mean over the labelled pieces (first piece of each word)
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        return TokenClassifierOutput(loss, logits)
