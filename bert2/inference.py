"""One Predictor for every checkpoint: fill-mask, attention maps, and (for fine-tuned checkpoints) the task's own
requests. The CLI and the TUI playground both call exactly this, so they cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError, InputError
from .training import checkpoints as ckpt

MASK = "[MASK]"


def _encode(tokenizer: Any, text: str, max_length: int, text_pair: str | None = None) -> dict[str, torch.Tensor]:
    if not isinstance(text, str) or not text.strip():
        raise InputError("the text is empty; type a sentence")
    enc = tokenizer(text, text_pair, return_tensors="pt", truncation=False)
    n = enc["input_ids"].shape[1]
    if n > max_length:
        raise InputError(f"the text is {n} tokens long; this model reads at most {max_length}")
    return enc


@torch.no_grad()
def fill_mask(model: nn.Module, tokenizer: Any, text: str, top_k: int = 5) -> list[list[dict[str, Any]]]:
    """Top-k tokens with probabilities for each [MASK] in `text`, in order of appearance."""
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    if MASK not in (text or ""):
        raise InputError(f"the text has no {MASK}; put {MASK} where the model should guess, "
                         f"e.g. 'The capital of France is {MASK}.'")
    core = model.bert if hasattr(model, "bert") else model
    enc = _encode(tokenizer, text, core.config.max_position_embeddings)
    device = next(model.parameters()).device
    ids = enc["input_ids"].to(device)  # (1, T)
    positions = (ids[0] == tokenizer.mask_token_id).nonzero().flatten()  # (M,)
    if positions.numel() == 0:
        raise InputError(f"the tokenizer did not keep {MASK} as one token; write it exactly as {MASK}")
    was_training = model.training
    model.eval()
    hidden = core(ids, enc.get("token_type_ids", torch.zeros_like(ids)).to(device)).last_hidden_state  # (1, T, H)
    logits = model.mlm(hidden[0, positions], core.embeddings.word_embeddings.weight)  # (M, V)
    probs = logits.float().softmax(-1)  # (M, V)
    model.train(was_training)
    k = min(top_k, probs.shape[-1])
    top = probs.topk(k, dim=-1)
    out = []
    for values, indices in zip(top.values.tolist(), top.indices.tolist()):
        tokens = tokenizer.convert_ids_to_tokens(indices)
        out.append([{"token": t, "score": round(v, 6)} for t, v in zip(tokens, values)])
    return out


class Predictor:
    """A loaded checkpoint, ready for requests. `Predictor.load(path)` accepts step, stage or kind directories."""

    def __init__(self, model: nn.Module, tokenizer: Any, task: str, path: Path, meta: dict[str, Any]):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.task = task
        self.path = path
        self.meta = meta

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        from safetensors.torch import load_file

        from .interop import model_config_from_hf
        from .tokenizer import load_tokenizer

        p = ckpt.resolve(path)
        config = ckpt.read_json(p / ckpt.CONFIG_FILE)
        meta = config.get("bert2") or {}
        task = meta.get("task", "mlm+nsp")
        try:
            model_cfg = model_config_from_hf(config)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{p / ckpt.CONFIG_FILE} lacks a valid model configuration ({exc})") from None
        try:
            tokenizer = load_tokenizer(str(p))
        except Exception as exc:
            raise CheckpointError(f"{p} has no usable tokenizer: {exc}") from None
        if len(tokenizer) != model_cfg.vocab_size:
            raise CheckpointError(f"{p}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary is "
                                  f"{model_cfg.vocab_size}; the checkpoint is inconsistent")
        model = build_model_for_task(task, model_cfg, meta)
        try:
            state = load_file(str(p / ckpt.WEIGHTS_FILE), device=device)
        except Exception as exc:
            raise CheckpointError(f"{p / ckpt.WEIGHTS_FILE} is unreadable (truncated or corrupt?): {exc}") from None
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0:2]
            raise CheckpointError(f"{p}: weights do not match its config.json ({' '.join(first)})") from None
        return cls(model.to(device), tokenizer, task, p, meta)

    @property
    def is_pretraining(self) -> bool:
        return self.task in ("mlm+nsp", "mlm")

    def fill_mask(self, text: str, top_k: int = 5) -> list[list[dict[str, Any]]]:
        if not hasattr(self.model, "mlm"):
            raise InputError(f"{self.path} is a {self.task} checkpoint without a masked-language-model head; "
                             f"use a pretraining checkpoint for fill-mask")
        return fill_mask(self.model, self.tokenizer, text, top_k)

    @torch.no_grad()
    def attentions(self, text: str) -> tuple[list[str], torch.Tensor]:
        """Tokens and attention probabilities (L, nh, T, T) of the encoder for `text`."""
        core = self.model.bert if hasattr(self.model, "bert") else self.model
        enc = _encode(self.tokenizer, text, core.config.max_position_embeddings)
        out = core(enc["input_ids"], enc.get("token_type_ids"), output_attentions=True)  # eager path
        maps = torch.stack([a[0] for a in out.attentions])  # L x (nh, T, T) -> (L, nh, T, T)
        return self.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()), maps


def build_model_for_task(task: str, model_cfg: Any, meta: dict[str, Any]) -> nn.Module:
    """An untrained model of the right class for a checkpoint's task (weights are loaded afterwards)."""
    if task in ("mlm+nsp", "mlm"):
        from .model import BertForPreTraining

        return BertForPreTraining(model_cfg, nsp=bool(meta.get("nsp", task == "mlm+nsp")))
    raise CheckpointError(f"unknown task {task!r} in checkpoint metadata")
