"""The on-disk checkpoint format, and its only owner.

A checkpoint is a directory (`saved_model/<kind>/<stage>/step-00000500/`) holding

    config.json          the model's shape in transformers' keys, plus a "bert2" block (task, labels, ...)
    model.safetensors    the weights (safetensors: plain tensors, nothing in the file can execute)
    tokenizer files      vocab.txt, tokenizer.json, ...
    trainer_state.json   step, metrics, run configuration; written last, so its presence marks a whole checkpoint
    resume files         optimizer, schedule and RNG state for `--resume` (safetensors + JSON, never pickle)

Modules, lowest first:
    layout.py       stage directories, atomic publish, listing, runs and retention, resolving a path (no torch)
    lock.py         one writer at a time per kind directory (a flock that says who holds it)
    model_files.py  config.json <-> ModelConfig, one loader for model + tokenizer + metadata, one writer
    train_state.py  the resume files: optimizer, schedule, RNG and data position without pickle
    hf.py           import-hf / export-hf: the same weights in transformers' names

`from bert2 import checkpoint as ckpt` gives the layout functions (the checkpoint browser needs nothing else and
so never imports torch).
"""

from .layout import (
    CONFIG_FILE,
    REQUIRED,
    STATE_FILE,
    TMP_PREFIX,
    WEIGHTS_FILE,
    CheckpointInfo,
    checkpoint_info,
    clear_kind,
    damaged_summary,
    default_checkpoint,
    is_complete,
    kind_checkpoints,
    kind_dir,
    latest_in,
    latest_resumable,
    list_checkpoints,
    new_run_id,
    now_iso,
    publish_dir,
    read_json,
    read_state,
    resolve,
    rotate,
    run_of,
    runs_in,
    save_checkpoint,
    step_dir_name,
    step_dirs,
    sweep_temporaries,
    write_json,
    written_at,
)

__all__ = [
    "CONFIG_FILE",
    "REQUIRED",
    "STATE_FILE",
    "TMP_PREFIX",
    "WEIGHTS_FILE",
    "CheckpointInfo",
    "checkpoint_info",
    "clear_kind",
    "default_checkpoint",
    "is_complete",
    "kind_checkpoints",
    "kind_dir",
    "latest_in",
    "latest_resumable",
    "damaged_summary",
    "list_checkpoints",
    "new_run_id",
    "now_iso",
    "publish_dir",
    "read_json",
    "read_state",
    "resolve",
    "rotate",
    "run_of",
    "runs_in",
    "save_checkpoint",
    "step_dir_name",
    "step_dirs",
    "sweep_temporaries",
    "write_json",
    "written_at",
]
