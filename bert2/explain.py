"""Inside BERT: one real batch followed from text to loss, for `bert2 explain` and the workbench's Inside screen.

Nothing here re-implements BERT: the batch comes from the trainer's own collator (MLMCollator, with the fates of
its draws), the numbers from the model's own forward pass (eval mode, so no dropout), and the loss is the model's
`loss` on exactly these tensors — what the trainer computes for this batch. This module only reads them out:

    text -> WordPiece tokens with [CLS]/[SEP], segment ids A/B, padding       (data/pretraining.py, collator.pad)
         -> MLM selection: ~20% of real tokens (data.mlm_probability; BERT 15%); of those 80% [MASK], 10% random, 10% kept; labels -100 elsewhere
                                                                               (collator.corrupt)
         -> attention mask (and the ALiBi bias)                                (model/bert.py: padding_mask, alibi_bias)
         -> embeddings (B, T, H) -> L encoder layers (B, T, H) -> pooler (B, H)
         -> MLM head at the masked rows (N, V): cross-entropy per masked token, averaged
         -> NSP head (B, 2): cross-entropy per pair, averaged
         -> loss = mlm + nsp                                                   (model/bert.py: BertForPreTraining)

Shapes: B batch, T tokens, H hidden, L layers, nh heads, N masked tokens, V vocabulary.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .checkpoint.model_files import load_checkpoint
from .config import Config
from .data.collator import FATE_NAMES, IGNORE_INDEX, MLMCollator
from .data.pretraining import prepare_pretraining_data
from .errors import InputError

TOP_K = 5


@dataclass
class Explanation:
    """One batch, as the model received it and what the model made of it (see `to_dict` for the JSON form)."""

    checkpoint: str
    seed: int
    source: str  # where the examples came from: the corpus split, or "--text"
    examples: list[dict[str, Any]]
    loss: dict[str, float]  # total, mlm, nsp (the model's own, on these tensors)
    counts: dict[str, Any]  # eligible / selected / mask / random / keep, and the shares
    shapes: list[tuple[str, list[int]]]  # stage -> output shape, in forward order
    attention: torch.Tensor | None = None  # (L, B, nh, T, T) probabilities, for the model and head views
    alibi: dict[str, Any] = field(default_factory=dict)  # slopes per head, when the model uses ALiBi
    nsp: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "seed": self.seed,
            "source": self.source,
            "examples": self.examples,
            "loss": self.loss,
            "counts": self.counts,
            "shapes": [{"stage": s, "shape": shape} for s, shape in self.shapes],
            "alibi": self.alibi,
        }


class Explainer:
    """A loaded pretraining checkpoint plus the data and collator settings of a configuration."""

    def __init__(self, cfg: Config, checkpoint: str | Path, device: str = "cpu"):
        loaded = load_checkpoint(checkpoint, device)
        if not hasattr(loaded.model, "mlm"):
            raise InputError(
                f"{loaded.path} is a {loaded.task} checkpoint without a masked-language-model head; "
                "the Inside view needs a pretraining checkpoint"
            )
        self.cfg = cfg
        self.path = loaded.path
        self.model = loaded.model.eval()
        self.tokenizer = loaded.tokenizer
        self.nsp = self.model.nsp is not None
        self._data: Any = None

    # ---- examples ------------------------------------------------------------------------------------------
    def corpus_examples(self, batch_size: int, seed: int) -> tuple[list[dict[str, Any]], str]:
        """`batch_size` training examples of the configured corpus, picked with `seed` (prepared with this
        checkpoint's tokenizer; cached after the first call)."""
        if self._data is None:
            cfg = Config.from_dict(self.cfg.to_dict())
            cfg.data.nsp = self.nsp
            self._data = prepare_pretraining_data(cfg, self.tokenizer)
        train = self._data.train
        limit = self.model.config.max_position_embeddings
        rng = random.Random(seed)
        picks = [rng.randrange(len(train)) for _ in range(batch_size)]
        examples = [dict(train[i], index=i) for i in picks]
        return [e for e in examples if len(e["input_ids"]) <= limit], f"{self.cfg.data.corpus} (training split)"

    def text_examples(self, text: str, pair: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """One example from the user's text (and a second segment): the same fields the corpus gives."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("the text is empty; type a sentence (and optionally a second one with --pair)")
        if pair is not None and not pair.strip():
            raise InputError("the second text (--pair) is empty")
        enc = self.tokenizer(text, pair) if pair is not None else self.tokenizer(text)
        limit = self.model.config.max_position_embeddings
        if len(enc["input_ids"]) > limit:
            raise InputError(f"the text is {len(enc['input_ids'])} tokens long; this model reads at most {limit}")
        example: dict[str, Any] = {
            "input_ids": enc["input_ids"],
            "token_type_ids": enc.get("token_type_ids", [0] * len(enc["input_ids"])),
        }
        if pair is not None and self.nsp:
            example["next_sentence_label"] = 0  # your B follows your A: IsNext
        specials = set(self.tokenizer.all_special_ids)
        if not any(i not in specials for i in example["input_ids"]):
            raise InputError("the text has no token that can be masked (only special tokens)")
        return [example], "--text"

    # ---- the batch and the forward pass --------------------------------------------------------------------
    @torch.no_grad()
    def explain(self, examples: list[dict[str, Any]], seed: int, source: str) -> Explanation:
        d = self.cfg.data
        collator = MLMCollator(self.tokenizer, d.mlm_probability, d.mask_replace_prob, d.random_replace_prob, seed=seed)
        if not self.nsp:
            examples = [{k: v for k, v in e.items() if k != "next_sentence_label"} for e in examples]
        batch = collator(examples, with_fates=True)
        device = next(self.model.parameters()).device
        inputs = {k: batch[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask", "labels")}
        nsp_label = batch.get("next_sentence_label")

        shapes: list[tuple[str, list[int]]] = []
        hooks = [self.model.bert.embeddings.register_forward_hook(_record(shapes, "embeddings"))]
        for i, layer in enumerate(self.model.bert.encoder.layers):
            hooks.append(layer.register_forward_hook(_record(shapes, f"encoder layer {i + 1}")))
        hooks.append(self.model.bert.pooler.register_forward_hook(_record(shapes, "pooler ([CLS] -> tanh)")))
        try:
            out = self.model(
                inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"], output_attentions=True
            )
        finally:
            for h in hooks:
                h.remove()
        selected = inputs["labels"] != -100  # (B, T) the positions chosen for MLM
        logits = out.prediction_logits[selected].float()  # (N, V): the masked rows, in row-major order of the mask
        targets = inputs["labels"][selected]  # (N,)
        shapes.append(("MLM head at the masked rows", list(logits.shape)))
        token_loss = F.cross_entropy(logits, targets, reduction="none")  # (N,)
        probs = logits.softmax(-1)  # (N, V)
        top_p, top_i = probs.topk(min(TOP_K, probs.shape[-1]), dim=-1)  # (N, k)
        nsp_probs = nsp = None
        if out.seq_relationship_logits is not None:
            shapes.append(("NSP head", list(out.seq_relationship_logits.shape)))
            nsp_probs = out.seq_relationship_logits.float().softmax(-1)  # (B, 2)
            if nsp_label is not None:
                nsp = float(F.cross_entropy(out.seq_relationship_logits.float(), nsp_label.to(device).view(-1)))

        mlm = float(token_loss.mean()) if targets.numel() else 0.0
        loss = {
            "total": mlm + (nsp or 0.0),
            "mlm": mlm,
            "masked_tokens": int(targets.numel()),
            "mlm_token_loss_sum": float(token_loss.sum()),
        }
        if nsp is not None:
            loss["nsp"] = nsp

        examples_out = self._rows(batch, examples, token_loss, probs, top_p, top_i, nsp_probs)
        attention = torch.stack(out.attentions).cpu() if out.attentions else None  # (L, B, nh, T, T)
        alibi: dict[str, Any] = {}
        slopes = self.model.bert.alibi_slopes
        if slopes is not None:
            alibi = {
                "slopes": [round(float(s), 6) for s in slopes],
                "rule": "attention score of query i and key j gets -slope_h * |i - j| before softmax",
            }
        return Explanation(
            str(self.path),
            seed,
            source,
            examples_out,
            loss,
            _counts(batch, collator),
            shapes,
            attention,
            alibi,
            self.nsp,
        )

    def _rows(
        self,
        batch: dict[str, torch.Tensor],
        examples: list[dict[str, Any]],
        token_loss: torch.Tensor,
        probs: torch.Tensor,
        top_p: torch.Tensor,
        top_i: torch.Tensor,
        nsp_probs: torch.Tensor | None,
    ) -> list[dict[str, Any]]:
        tok = self.tokenizer
        rows = []
        n = 0  # index into the masked rows (row-major order of labels != -100)
        for b in range(batch["input_ids"].shape[0]):
            ids = batch["input_ids"][b].tolist()
            labels = batch["labels"][b].tolist()
            fates = [FATE_NAMES.get(int(f)) for f in batch["fates"][b].tolist()]
            predictions = []
            for t, label in enumerate(labels):
                if label == IGNORE_INDEX:
                    continue
                predictions.append(
                    {
                        "position": t,
                        "label": tok.convert_ids_to_tokens(label),
                        "fate": fates[t],
                        "input": tok.convert_ids_to_tokens(ids[t]),
                        "label_probability": round(float(probs[n, label]), 6),
                        "loss": round(float(token_loss[n]), 6),
                        "top": [
                            {"token": tok.convert_ids_to_tokens(int(i)), "probability": round(float(p), 6)}
                            for p, i in zip(top_p[n].tolist(), top_i[n].tolist())
                        ],
                    }
                )
                n += 1
            row: dict[str, Any] = {
                "tokens": tok.convert_ids_to_tokens(ids),
                "original_tokens": tok.convert_ids_to_tokens(batch["original_ids"][b].tolist()),
                "input_ids": ids,
                "token_type_ids": batch["token_type_ids"][b].tolist(),
                "attention_mask": batch["attention_mask"][b].tolist(),
                "labels": labels,
                "fates": fates,
                "predictions": predictions,
            }
            if "index" in examples[b]:
                row["corpus_index"] = int(examples[b]["index"])
            if "next_sentence_label" in batch:
                label = int(batch["next_sentence_label"][b])
                row["nsp_label"] = "IsNext" if label == 0 else "NotNext"
                row["segment_b_source"] = (
                    "the text that follows A in the same document"
                    if label == 0
                    else "text from another document, drawn at random"
                )
                if nsp_probs is not None:
                    row["nsp_probability_isnext"] = round(float(nsp_probs[b, 0]), 6)
            rows.append(row)
        return rows


def _record(shapes: list[tuple[str, list[int]]], name: str):
    def hook(module: Any, args: Any, output: Any) -> None:
        tensor = output[0] if isinstance(output, tuple) else output
        shapes.append((name, list(tensor.shape)))

    return hook


def _counts(batch: dict[str, torch.Tensor], collator: MLMCollator) -> dict[str, Any]:
    """How many tokens could be masked, how many were, and what became of them, against BERT's rule."""
    fates = batch["fates"]
    special = collator._special.index_select(0, batch["original_ids"].reshape(-1)).view(fates.shape)
    eligible = int((batch["attention_mask"].bool() & ~special).sum())
    selected = int((fates > 0).sum())
    out = {
        "eligible": eligible,
        "selected": selected,
        "selected_share": round(selected / eligible, 4) if eligible else 0.0,
        "expected_share": collator.mlm_probability,
        "expected_fates": {
            "mask": collator.mask_replace_prob,
            "random": collator.random_replace_prob,
            "keep": round(1 - collator.mask_replace_prob - collator.random_replace_prob, 6),
        },
    }
    for code, name in FATE_NAMES.items():
        out[name] = int((fates == code).sum())
    return out
