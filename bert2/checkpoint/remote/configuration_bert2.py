"""Configuration of a bert2 model with ALiBi attention biases (exported by `bert2 export-hf`)."""

from transformers import BertConfig


class Bert2AlibiConfig(BertConfig):
    """BertConfig plus ALiBi: every attention head adds -slope_h * |i - j| to its scores (Press et al. 2022).

    The learned position table stays (bert2 keeps it: direction is still learnable), so the weights are exactly
    transformers' BERT weights; only attention differs.
    """

    model_type = "bert2-alibi"

    def __init__(self, alibi: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.alibi = alibi
