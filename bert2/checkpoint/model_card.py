"""The model card (README.md) every `bert2 export-hf` writes: YAML metadata the Hugging Face Hub reads, then how
the model was trained, what it scored on held-out data, and how to load it.

Nothing in it is a local absolute path: a card is written to be shared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import registry
from ..config import KINDS, ModelConfig

TASK_NAMES = {
    "fill-mask": "Fill-Mask",
    "text-classification": "Text Classification",
    "question-answering": "Question Answering",
    "token-classification": "Token Classification",
}
# bert2's offline data -> the Hub dataset the text comes from
HUB_DATASETS = {
    "wiki-offline": "wikipedia",
    "wiki-topic": "wikipedia",
    "wiki-qa": "wikipedia",
    "wiki-span": "wikipedia",
    "imdb-offline": "stanfordnlp/imdb",
    "imdb": "stanfordnlp/imdb",
    "wikitext-103-raw-v1": "Salesforce/wikitext",
    "squad": "rajpurkar/squad",
    "ms_marco": "microsoft/ms_marco",
    "wnut16-offline": "wnut_16",
    "conll2003": "eriktks/conll2003",
    "wnut_17": "leondz/wnut_17",
}


def portable_name(path: Path) -> str:
    """A checkpoint named without the machine's directories: `transformer/pretrain/final/step-00001200` when it
    lives in one of the six stage directories, else its own directory name."""
    parts = Path(path).resolve().parts
    for kind_parts in KINDS.values():
        n = len(kind_parts)
        for i in range(len(parts) - n + 1):
            if tuple(parts[i : i + n]) == tuple(kind_parts):
                return "/".join(parts[i:])
    return Path(path).name


def _datasets(names: list[str]) -> list[str]:
    return list(dict.fromkeys(HUB_DATASETS[n] for n in names if n in HUB_DATASETS))


def _yaml(value: Any, indent: int = 0) -> list[str]:
    """A small YAML writer for the card's metadata (plain data: dicts, lists, strings, numbers)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines += _yaml(v, indent + 2)
            else:
                lines.append(f"{pad}{k}: {json.dumps(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                sub = _yaml(item, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines += sub[1:]
            else:
                lines.append(f"{pad}- {json.dumps(item)}")
    return lines


def model_card(
    checkpoint: Path,
    task: str,
    architecture: str,
    model_cfg: ModelConfig,
    config_meta: dict[str, Any],
    state: dict[str, Any],
    remote_code: bool,
) -> str:
    run = state.get("run_config") or {}
    pretrain, finetune, data = run.get("pretrain") or {}, run.get("finetune") or {}, run.get("data") or {}
    task_cls = registry.get(task)
    finetuned = task_cls.kind == "finetune"
    corpus = [c for c in str(data.get("corpus", "")).split("+") if c]
    task_data = str(config_meta.get("data") or finetune.get("data") or "") if finetuned else ""
    pipeline_tag = task_cls.pipeline_tag or "fill-mask"
    metrics = {k: v for k, v in (state.get("metrics") or {}).items() if isinstance(v, (int, float)) and "/" not in k}
    name = portable_name(checkpoint).replace("/", "-")
    meta: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": pipeline_tag,
        "language": ["en"],
        "tags": ["bert", "bert2", "from-scratch"] + (["alibi", "custom_code"] if remote_code else []),
        "datasets": _datasets(([task_data] if finetuned else []) + corpus),
    }
    if metrics:
        meta["model-index"] = [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": pipeline_tag, "name": TASK_NAMES.get(pipeline_tag, pipeline_tag)},
                        "dataset": {
                            "name": task_data or "+".join(corpus) or "held-out split",
                            "type": (_datasets([task_data] if finetuned else corpus) or ["custom"])[0],
                            "split": "validation",
                        },
                        "metrics": [
                            {"type": k, "value": round(float(v), 4), "name": f"held-out {k}"}
                            for k, v in metrics.items()
                        ],
                    }
                ],
            }
        ]
    trust = ", trust_remote_code=True" if remote_code else ""
    load = {
        "fill-mask": f'pipe = pipeline("fill-mask", model="PATH_OR_HUB_ID"{trust})\n'
        f'pipe("The capital of France is [MASK].")',
        "text-classification": f'pipe = pipeline("text-classification", model="PATH_OR_HUB_ID"{trust})\n'
        f'pipe("A wonderful, moving film.")',
        "question-answering": f'pipe = pipeline("question-answering", model="PATH_OR_HUB_ID"{trust})\n'
        f'pipe(question="What is the capital of France?", '
        f'context="Paris is the capital of France.")',
        "token-classification": f'pipe = pipeline("token-classification", model="PATH_OR_HUB_ID"{trust}, '
        f'aggregation_strategy="first")\n'
        f'pipe("Barack Obama visited the Empire State Building in New York.")',
    }[pipeline_tag]
    m = model_cfg
    rows = [
        (
            "architecture",
            f"{architecture}: {m.num_hidden_layers} layers, hidden {m.hidden_size}, "
            f"{m.num_attention_heads} heads, feed-forward {m.intermediate_size}, "
            f"vocabulary {m.vocab_size} (WordPiece trained on the corpus), "
            f"{m.max_position_embeddings} positions",
        ),
        (
            "attention positions",
            "ALiBi distance biases on top of the learned position table"
            if remote_code
            else "learned absolute position table (as BERT)",
        ),
        ("task", task + (f" on {task_data}" if finetuned else "")),
        ("pretraining corpus", "+".join(corpus) or "unknown"),
        ("steps", str(state.get("step", "?"))),
        ("tokens seen", f"{int(state.get('tokens_seen', 0)):,}"),
        ("training time", f"{float(state.get('elapsed_s', 0)) / 60:.1f} min"),
        ("learning rate", str((finetune if finetuned else pretrain).get("learning_rate", "?"))),
        ("batch size", str((finetune if finetuned else pretrain).get("batch_size", "?"))),
        ("bert2 checkpoint", f"{portable_name(checkpoint)} (bert2 {state.get('bert2_version', '?')})"),
    ]
    lines = [
        "---",
        *_yaml(meta),
        "---",
        "",
        f"# {name}",
        "",
        "A BERT model trained from scratch with bert2 (a BERT framework written for "
        "learning), exported with `bert2 export-hf`.",
        "",
        "## How it was trained",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
    ]
    if metrics:
        lines += [
            "## Evaluation",
            "",
            "On the run's held-out validation split (examples it never trained on):",
            "",
            "| metric | value |",
            "| --- | --- |",
            *(f"| {k} | {v:.4g} |" for k, v in metrics.items()),
            "",
        ]
    lines += ["## How to use", "", "```python", "from transformers import pipeline", "", load, "```", ""]
    if remote_code:
        lines += [
            "The model adds ALiBi biases inside attention, which transformers' BERT does not have: the "
            "modelling code ships beside the weights (`modeling_bert2.py`, `configuration_bert2.py`), hence "
            "`trust_remote_code=True`. Read those two short files before trusting them. Needs transformers "
            ">= 5.",
            "",
        ]
    lines += [
        "## Limitations",
        "",
        "A small model trained for minutes, for learning how BERT works; it is not a production model. Its "
        "predictions reflect its short training and the biases of its corpus.",
        "",
    ]
    return "\n".join(lines)
