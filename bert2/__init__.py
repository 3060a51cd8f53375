"""bert2: a BERT framework written from scratch in PyTorch.

The Python API, the same functions the CLI and the workbench call:

    import bert2
    cfg = bert2.Config().with_overrides(["pretrain.max_steps=200"])   # or bert2.load_config("bert2.toml")
    done = bert2.run_pretraining(cfg, callbacks=[print])              # events: StepEvent, EvalEvent, ...
    done = bert2.run_finetuning(cfg)                                  # from pretrain best, else final
    p = bert2.Predictor.load("saved_model/transformer/pretrain")
    p.fill_mask("The capital of France is [MASK].")

Importing the package is cheap and changes nothing in the process: the names above load their modules (and
torch) on first use, so the workbench can draw its first frame before torch loads.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access (PEP 562)
_API = {
    "Config": "bert2.config", "load_config": "bert2.config", "preset": "bert2.config",
    "run_pretraining": "bert2.tasks.pretraining", "run_finetuning": "bert2.tasks.finetuning",
    "Predictor": "bert2.inference", "load_checkpoint": "bert2.checkpoint.model_files",
    "list_checkpoints": "bert2.checkpoint", "import_hf": "bert2.checkpoint.hf", "export_hf": "bert2.checkpoint.hf",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bert2' has no attribute {name!r}")
