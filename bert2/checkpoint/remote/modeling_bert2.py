"""transformers' BERT with ALiBi attention biases: the model `bert2 export-hf` writes for bert2's default models.

Load with `trust_remote_code=True`, e.g. `pipeline("fill-mask", model=DIR, trust_remote_code=True)`. Needs
transformers >= 5 (BertModel._create_attention_masks).

Shapes: B batch, T tokens, nh heads.
"""

import math

import torch
from transformers import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

from .configuration_bert2 import Bert2AlibiConfig


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Per-head slopes 2^(-8/n), 2^(-16/n), ...; for a head count that is not a power of two, the power of two
    below it plus every other slope of the next one (the paper's reference code; bert2's own formula)."""

    def geometric(n: int) -> list:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    below = 2 ** math.floor(math.log2(num_heads))
    return torch.tensor(geometric(below) + geometric(2 * below)[0::2][: num_heads - below])  # (nh,)


class Bert2AlibiModel(BertModel):
    config_class = Bert2AlibiConfig

    def _create_attention_masks(
        self, attention_mask, encoder_attention_mask, embedding_output, encoder_hidden_states, cache, **kwargs
    ):
        """The additive mask every layer receives: -slope_h * |i - j|, and the dtype's minimum at padded keys.

        The slopes are computed here rather than kept in a buffer: from_pretrained builds the model on the meta
        device, and a buffer that is not in the weights file would be left uninitialised."""
        T = embedding_output.shape[1]
        dtype, device = embedding_output.dtype, embedding_output.device
        slopes = alibi_slopes(self.config.num_attention_heads).to(device=device, dtype=dtype)  # (nh,)
        pos = torch.arange(T, device=device)
        distance = (pos[None, :] - pos[:, None]).abs().to(dtype)  # (T, T)
        bias = -slopes[:, None, None] * distance  # (nh, T, T)
        bias = bias[None]  # (1, nh, T, T)
        if attention_mask is not None:
            padding = torch.zeros(attention_mask.shape, dtype=dtype, device=device)  # (B, T)
            padding = padding.masked_fill(attention_mask == 0, torch.finfo(dtype).min)
            bias = bias + padding[:, None, None, :]  # (B, nh, T, T)
        return bias, None


# The heads are transformers' own; each swaps in the ALiBi encoder (same parameter names, so the weights load as-is).


class Bert2AlibiForPreTraining(BertForPreTraining):
    config_class = Bert2AlibiConfig

    def __init__(self, config):
        super().__init__(config)
        self.bert = Bert2AlibiModel(config)
        self.post_init()


class Bert2AlibiForMaskedLM(BertForMaskedLM):
    config_class = Bert2AlibiConfig

    def __init__(self, config):
        super().__init__(config)
        self.bert = Bert2AlibiModel(config, add_pooling_layer=False)
        self.post_init()


class Bert2AlibiForSequenceClassification(BertForSequenceClassification):
    config_class = Bert2AlibiConfig

    def __init__(self, config):
        super().__init__(config)
        self.bert = Bert2AlibiModel(config)
        self.post_init()


class Bert2AlibiForQuestionAnswering(BertForQuestionAnswering):
    config_class = Bert2AlibiConfig

    def __init__(self, config):
        super().__init__(config)
        self.bert = Bert2AlibiModel(config, add_pooling_layer=False)
        self.post_init()


class Bert2AlibiForTokenClassification(BertForTokenClassification):
    config_class = Bert2AlibiConfig

    def __init__(self, config):
        super().__init__(config)
        self.bert = Bert2AlibiModel(config, add_pooling_layer=False)
        self.post_init()
