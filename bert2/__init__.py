"""bert2: a BERT framework written from scratch in PyTorch.

The Python API, the same functions the CLI and the workbench call:

    from bert2 import Config, Predictor, finetune, pretrain
    cfg = Config().with_overrides(["pretrain.max_steps=200"])   # or bert2.load_config("bert2.toml")
    done = pretrain(cfg, callbacks=[print])                      # events: StepEvent, EvalEvent, ... ; stop_event=
    done = finetune(cfg)                                         # from pretrain best, else final
    p = Predictor.load("saved_model/transformer/pretrain")
    p.fill_mask("The capital of France is [MASK].")

Importing the package is cheap and changes nothing in the process: the names above load their modules (and
torch) on first use, so the workbench can draw its first frame before torch loads.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module that defines it, its name there); resolved on first attribute access (PEP 562)
_API = {
    "Config": ("bert2.config", "Config"),
    "load_config": ("bert2.config", "load_config"),
    "preset": ("bert2.config", "preset"),
    "pretrain": ("bert2.tasks.pretraining", "run_pretraining"),
    "run_pretraining": ("bert2.tasks.pretraining", "run_pretraining"),
    "finetune": ("bert2.tasks.finetuning", "run_finetuning"),
    "run_finetuning": ("bert2.tasks.finetuning", "run_finetuning"),
    "Predictor": ("bert2.inference", "Predictor"),
    "Explainer": ("bert2.explain", "Explainer"),
    "load_checkpoint": ("bert2.checkpoint.model_files", "load_checkpoint"),
    "list_checkpoints": ("bert2.checkpoint", "list_checkpoints"),
    "import_hf": ("bert2.checkpoint.hf", "import_hf"),
    "export_hf": ("bert2.checkpoint.hf", "export_hf"),
    "prune": ("bert2.compress.prune", "run_pruning"),
    "run_pruning": ("bert2.compress.prune", "run_pruning"),
    "prune_heads": ("bert2.compress.surgery", "prune_heads"),
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bert2' has no attribute {name!r}")
