"""Mapping between bert2 parameter names and transformers' BERT names.

bert2 fuses query/key/value into one (3H, H) projection and uses short names; everything else is one tensor to
one tensor. The mapping is a pure function of the state dict, so import, export and the parity test share it.
"""

from __future__ import annotations

import re

import torch

from .config import ModelConfig

# bert2 name (regex) -> transformers name (format string), for the tensors that map one to one.
_ONE_TO_ONE = [
    (r"bert\.embeddings\.norm\.(weight|bias)", "bert.embeddings.LayerNorm.{0}"),
    (r"bert\.embeddings\.(word|position|token_type)_embeddings\.weight", "bert.embeddings.{0}_embeddings.weight"),
    (r"bert\.encoder\.layers\.(\d+)\.attention\.out\.(weight|bias)",
     "bert.encoder.layer.{0}.attention.output.dense.{1}"),
    (r"bert\.encoder\.layers\.(\d+)\.attention_norm\.(weight|bias)",
     "bert.encoder.layer.{0}.attention.output.LayerNorm.{1}"),
    (r"bert\.encoder\.layers\.(\d+)\.ffn\.up\.(weight|bias)", "bert.encoder.layer.{0}.intermediate.dense.{1}"),
    (r"bert\.encoder\.layers\.(\d+)\.ffn\.down\.(weight|bias)", "bert.encoder.layer.{0}.output.dense.{1}"),
    (r"bert\.encoder\.layers\.(\d+)\.ffn_norm\.(weight|bias)", "bert.encoder.layer.{0}.output.LayerNorm.{1}"),
    (r"bert\.pooler\.dense\.(weight|bias)", "bert.pooler.dense.{0}"),
    (r"mlm\.transform\.(weight|bias)", "cls.predictions.transform.dense.{0}"),
    (r"mlm\.norm\.(weight|bias)", "cls.predictions.transform.LayerNorm.{0}"),
    (r"mlm\.bias", "cls.predictions.bias"),
    (r"nsp\.(weight|bias)", "cls.seq_relationship.{0}"),
]
_QKV = re.compile(r"bert\.encoder\.layers\.(\d+)\.attention\.qkv\.(weight|bias)")


def to_hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """bert2 BertForPreTraining state dict -> transformers BertForPreTraining state dict (decoder tied)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in sd.items():
        m = _QKV.fullmatch(name)
        if m:
            layer, kind = m.groups()
            for part, chunk in zip(("query", "key", "value"), t.chunk(3, dim=0)):  # (3H, ...) -> 3 x (H, ...)
                out[f"bert.encoder.layer.{layer}.attention.self.{part}.{kind}"] = chunk.clone()
            continue
        for pattern, target in _ONE_TO_ONE:
            m = re.fullmatch(pattern, name)
            if m:
                out[target.format(*m.groups())] = t
                break
        else:
            raise KeyError(f"no transformers name for bert2 parameter {name!r}")
    if "bert.embeddings.word_embeddings.weight" in out and "cls.predictions.bias" in out:
        out["cls.predictions.decoder.weight"] = out["bert.embeddings.word_embeddings.weight"]
        out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"]
    return out


def from_hf_state_dict(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers BERT state dict (BertForPreTraining, BertForMaskedLM or BertModel) -> bert2 names.

    A bare BertModel checkpoint has no "bert." prefix; it is added. Unknown keys (e.g. position_ids buffers,
    the tied decoder copy) are skipped.
    """
    if not any(k.startswith("bert.") for k in hf):
        hf = {f"bert.{k}": v for k, v in hf.items()}
    reverse = [(re.compile(re.escape(target).replace(r"\{0\}", r"(\w+)").replace(r"\{1\}", r"(\w+)")), pattern)
               for pattern, target in _ONE_TO_ONE]
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, t in hf.items():
        m = re.fullmatch(r"bert\.encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)", name)
        if m:
            layer, part, kind = m.groups()
            qkv.setdefault((layer, kind), {})[part] = t
            continue
        for rx, pattern in reverse:
            mm = rx.fullmatch(name)
            if mm:
                groups = iter(mm.groups())
                out[re.sub(r"\([^)]*\)", lambda _: next(groups), pattern).replace("\\.", ".")] = t
                break
    for (layer, kind), parts in qkv.items():
        out[f"bert.encoder.layers.{layer}.attention.qkv.{kind}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0)  # 3 x (H, ...) -> (3H, ...)
    return out


def hf_config_dict(cfg: ModelConfig) -> dict:
    """transformers-style config.json keys for a bert2 model config."""
    return {
        "model_type": "bert",
        "architectures": ["BertForPreTraining"],
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}[cfg.hidden_act],
        "hidden_dropout_prob": cfg.hidden_dropout_prob,
        "attention_probs_dropout_prob": cfg.attention_probs_dropout_prob,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": cfg.type_vocab_size,
        "layer_norm_eps": cfg.layer_norm_eps,
        "initializer_range": cfg.initializer_range,
        "pad_token_id": cfg.pad_token_id,
    }


def model_config_from_hf(d: dict) -> ModelConfig:
    """Read the bert2 ModelConfig out of a transformers-style config.json dict."""
    act = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
    defaults = ModelConfig()
    return ModelConfig(
        vocab_size=int(d["vocab_size"]), hidden_size=int(d["hidden_size"]),
        num_hidden_layers=int(d["num_hidden_layers"]), num_attention_heads=int(d["num_attention_heads"]),
        intermediate_size=int(d["intermediate_size"]), hidden_act=act.get(d.get("hidden_act", "gelu"), "gelu"),
        hidden_dropout_prob=float(d.get("hidden_dropout_prob", defaults.hidden_dropout_prob)),
        attention_probs_dropout_prob=float(d.get("attention_probs_dropout_prob", 0.1)),
        max_position_embeddings=int(d.get("max_position_embeddings", 512)),
        type_vocab_size=int(d.get("type_vocab_size", 2)), layer_norm_eps=float(d.get("layer_norm_eps", 1e-12)),
        initializer_range=float(d.get("initializer_range", 0.02)), pad_token_id=int(d.get("pad_token_id") or 0),
    )
