"""The model, read top to bottom in data-flow order:

    bert.py        embeddings -> masks -> attention -> encoder layer -> encoder -> pooler -> BertModel,
                   and BertForPreTraining (the MLM + NSP heads and the pretraining loss)
    heads.py       fine-tuning heads: sequence and token classification, extractive (span) QA;
                   load_pretrained (a pretraining checkpoint's encoder into a head)
    decoder.py     generative QA: a causal Transformer decoder with cross-attention, copy mechanism, beam search
    fused_loss.py  the MLM vocabulary projection fused with cross-entropy (training steps in fp32)

Shapes everywhere: B batch, T tokens, H hidden, nh heads, hs head size (H / nh), I intermediate, V vocabulary,
N selected (masked or labelled) tokens.
"""

from .bert import BertForPreTraining, BertModel, MLMHead, count_parameters, init_weights
from .decoder import BertForGenerativeQA
from .heads import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    load_pretrained,
    mean_pool,
)

__all__ = [
    "BertForGenerativeQA",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "MLMHead",
    "count_parameters",
    "init_weights",
    "load_pretrained",
    "mean_pool",
]
