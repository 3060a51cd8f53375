"""Validation on read: every file of a checkpoint is untrusted input (checkpoints are downloaded and shared).

Each check runs before the thing it guards is used, and each problem is one line naming the file and the field or
tensor, raised as CheckpointError (exit 2 in the CLI, an error in place in the TUI), never a bare ValueError deep
in torch:

    config.json         types first (an int field that is NaN, a string, or a bool is refused), then the same
                        `Config.validate()` a configuration file goes through, then the memory the model's weights
                        need against free memory, so `hidden_size: 640000` is refused before anything is allocated
    model.safetensors   tensor names, shapes and dtypes from the header (safe_open: nothing materialised) against
                        the model the config describes; then every tensor must be finite
    resume files        Adam moments shaped as their parameters, RNG states of the right size, dtype and type,
                        the parameter-group count, step and data position non-negative and within a sane range
    trainer_state.json  typed: step an int >= 0, metrics a dict, ...
    lookup.json         a NER tagger's word -> tag table: format 1, "words" an object of non-empty strings to
                        tags among the checkpoint's labels, at most MAX_LOOKUP_WORDS of them

Nothing here imports torch at module level: the checkpoint browser uses `state_problems` without it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from ..config import Config, ModelConfig
from ..errors import CheckpointError

MAX_COUNTER = 10**15  # a step or token count beyond this is no real run: a corrupt or forged file
MAX_LOOKUP_WORDS = 5_000_000  # CoNLL-2003 has 24,000 distinct words; five million is no training set's table
MAX_PROBLEMS = 5  # a broken table lists its first few bad entries, not thousands of lines


def _model_fields(kind: str) -> tuple[str, ...]:
    """ModelConfig's fields annotated `kind`: the dataclass is the one list of config.json's typed keys, so a
    field added there is type-checked here too."""
    return tuple(f.name for f in dataclasses.fields(ModelConfig) if f.type == kind)


_INT_FIELDS = _model_fields("int")
_FLOAT_FIELDS = _model_fields("float")
_STR_FIELDS = _model_fields("str")


def fail(where: Path | str, problems: list[str]) -> CheckpointError:
    """One CheckpointError listing each problem on its own line under the file it is in."""
    if len(problems) == 1:
        return CheckpointError(f"{where}: {problems[0]}")
    return CheckpointError(f"{where} is invalid:\n" + "\n".join(f"  {p}" for p in problems))


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


# --------------------------------------------------------------------------------------------------------------
# config.json
# --------------------------------------------------------------------------------------------------------------


def config_type_problems(d: dict[str, Any]) -> list[str]:
    """Type errors of config.json's fields (what int() / float() would crash on or silently truncate)."""
    problems = []
    for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        if k not in d:
            problems.append(f"{k}: missing")
    for k in _INT_FIELDS:
        if k in d and d[k] is not None and not is_int(d[k]):
            problems.append(f"{k}: must be an integer, got {d[k]!r}")
    for k in _FLOAT_FIELDS:
        if k in d and not is_number(d[k]):
            problems.append(f"{k}: must be a finite number, got {d[k]!r}")
    for k in _STR_FIELDS:
        if k in d and not isinstance(d[k], str):
            problems.append(f"{k}: must be a string, got {d[k]!r}")
    if "bert2" in d and d["bert2"] is not None and not isinstance(d["bert2"], dict):
        problems.append(f"bert2: must be an object (task, labels, lengths), got {type(d['bert2']).__name__}")
    for k in ("id2label", "label2id"):
        if k in d and not isinstance(d[k], dict):
            problems.append(f"{k}: must be an object, got {type(d[k]).__name__}")
    return problems


def model_config_problems(cfg: ModelConfig) -> list[str]:
    """The `model.*` errors `Config.validate()` reports for a configuration file, as config.json's keys (less its
    advice against training a tiny vocabulary: a small imported model is still a valid one)."""
    full = Config()
    full.model = cfg
    return [
        f"{e.key.removeprefix('model.')}: {e.message}"
        for e in full.validate()
        if e.key.startswith("model.") and "implausibly small" not in e.message
    ]


def config_file_problems(d: dict[str, Any]) -> list[str]:
    """config.json's problems that need neither torch nor the weights: its types, then `Config.validate()`'s rules
    for its numbers (heads > 0, hidden size divisible by them, probabilities in [0, 1] ...), so the checkpoint
    browser and `bert2 checkpoints` list such a directory as invalid instead of offering it. String fields are
    left to `read_config` (transformers' activation names differ from bert2's)."""
    problems = config_type_problems(d)
    if problems:
        return problems
    numbers = {k: d[k] for k in (*_INT_FIELDS, *_FLOAT_FIELDS) if k in d and d[k] is not None}
    try:
        cfg = dataclasses.replace(ModelConfig(), **numbers)
    except (TypeError, ValueError) as exc:
        return [f"lacks a valid model configuration ({exc})"]
    return model_config_problems(cfg)


def memory_problems(cfg: ModelConfig) -> list[str]:
    """Refuse a model whose weights alone (fp32, plus a copy while loading) exceed free memory, before
    `build_model` allocates them: a hand-edited `hidden_size: 640000` would otherwise ask for hundreds of GB."""
    from ..memory import FP32, available_bytes, count_parameters, gb

    need = 2 * FP32 * count_parameters(cfg)
    free = available_bytes("cpu")
    if free is not None and need > free:
        shape = (
            f"hidden_size {cfg.hidden_size}, intermediate_size {cfg.intermediate_size}, "
            f"num_hidden_layers {cfg.num_hidden_layers}, vocab_size {cfg.vocab_size}"
        )
        return [
            f"the model ({shape}) needs about {gb(need)} to load but {gb(free)} is free; "
            "the file is corrupt or the model too big for this machine"
        ]
    return []


def check_config(f: Path, d: dict[str, Any], build) -> ModelConfig:
    """config.json `d` (read from `f`) as a ModelConfig via `build`, or CheckpointError listing every problem."""
    problems = config_type_problems(d)
    if problems:
        raise fail(f, problems)
    try:
        cfg = build(d)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise fail(f, [f"lacks a valid model configuration ({exc})"]) from None
    problems = model_config_problems(cfg) or memory_problems(cfg)
    if problems:
        raise fail(f, problems)
    return cfg


def check_lookup(f: Path, d: dict[str, Any], labels: list[Any], version: int) -> dict[str, str]:
    """lookup.json `d` (read from `f`) as the word -> tag table, or CheckpointError listing what is wrong: the
    tagger turns each tag into an embedding index, so a tag outside the labels would index past the table."""
    problems = []
    if d.get("format") != version:
        problems.append(f"format: must be {version}, got {d.get('format')!r}")
    words = d.get("words")
    if not isinstance(words, dict):
        problems.append(f"words: must be an object of word -> tag, got {type(words).__name__}")
        raise fail(f, problems)
    if len(words) > MAX_LOOKUP_WORDS:
        problems.append(f"words: {len(words):,} entries, more than {MAX_LOOKUP_WORDS:,}")
        raise fail(f, problems)
    known = {x for x in labels if isinstance(x, str)}
    bad = []
    for word, tag in words.items():
        if not word:
            bad.append("words: an empty word")
        elif not isinstance(tag, str) or tag not in known:
            bad.append(f"words[{word[:40]!r}]: tag {tag!r} is not one of the checkpoint's labels")
        if len(bad) >= MAX_PROBLEMS:
            break
    problems += bad
    if problems:
        raise fail(f, problems)
    return dict(words)


# --------------------------------------------------------------------------------------------------------------
# model.safetensors
# --------------------------------------------------------------------------------------------------------------


def check_weights_header(f: Path, expected: dict[str, Any]) -> None:
    """Tensor names, shapes and dtypes of `f` against `expected` (a state dict of the model the config
    describes), reading only the header."""
    from safetensors import safe_open

    try:
        with safe_open(str(f), framework="pt") as sf:
            keys = set(sf.keys())
            shapes = {k: (tuple(sf.get_slice(k).get_shape()), sf.get_slice(k).get_dtype()) for k in keys}
    except FileNotFoundError:
        raise CheckpointError(f"{f} is missing") from None
    except Exception as exc:  # SafetensorError on a truncated or forged header
        raise CheckpointError(f"{f} is unreadable (truncated or corrupt?): {exc}") from None
    problems = []
    missing = sorted(set(expected) - keys)
    extra = sorted(keys - set(expected))
    if missing:
        problems.append(f"missing tensors {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if extra:
        problems.append(f"unexpected tensors {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    dtypes = {"torch.float32": "F32", "torch.float16": "F16", "torch.bfloat16": "BF16", "torch.int64": "I64"}
    for k in sorted(keys & set(expected)):
        shape, dtype = shapes[k]
        want = tuple(expected[k].shape)
        if shape != want:
            problems.append(f"tensor {k}: shape {list(shape)}, but config.json describes {list(want)}")
        elif dtypes.get(str(expected[k].dtype), dtype) != dtype and not expected[k].dtype.is_floating_point:
            problems.append(f"tensor {k}: dtype {dtype}, expected {expected[k].dtype}")
        elif expected[k].dtype.is_floating_point and dtype not in ("F32", "F16", "BF16", "F64"):
            problems.append(f"tensor {k}: dtype {dtype}, expected a floating-point tensor")
    if problems:
        raise fail(f, problems)


def finite_problems(tensors: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors holding NaN or infinity (they would poison every prediction silently)."""
    import torch

    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    return [f"tensor {k} holds NaN or infinite values" for k in bad]


# --------------------------------------------------------------------------------------------------------------
# trainer_state.json
# --------------------------------------------------------------------------------------------------------------


def state_problems(state: dict[str, Any]) -> list[str]:
    """Type errors of trainer_state.json (torch-free: the checkpoint browser calls it)."""
    problems = []
    for k in ("step", "consumed", "epoch", "tokens_seen"):
        if k in state and state[k] is not None and not (is_int(state[k]) and 0 <= state[k] <= MAX_COUNTER):
            problems.append(f"{k}: must be an integer in [0, {MAX_COUNTER:.0e}], got {state[k]!r}")
    for k in ("metrics", "run_config"):
        if k in state and state[k] is not None and not isinstance(state[k], dict):
            problems.append(f"{k}: must be an object, got {type(state[k]).__name__}")
    for k in ("created", "task", "run_id", "run_started"):
        if k in state and state[k] is not None and not isinstance(state[k], str):
            problems.append(f"{k}: must be a string, got {state[k]!r}")
    return problems


# --------------------------------------------------------------------------------------------------------------
# resume.json / resume.safetensors
# --------------------------------------------------------------------------------------------------------------


def resume_problems(resume: dict[str, Any], optimizer: Any) -> list[str]:
    """Problems of a decoded resume state against the optimizer it will be loaded into and the RNGs it will set:
    checked before anything is restored, because `load_state_dict` accepts wrongly shaped Adam moments and the
    run then goes silently to NaN."""
    import torch

    problems: list[str] = []
    opt = resume.get("optimizer")
    if (
        not isinstance(opt, dict)
        or not isinstance(opt.get("state"), dict)
        or not isinstance(opt.get("param_groups"), list)
    ):
        problems.append("optimizer: must hold state and param_groups")
    else:
        groups = optimizer.param_groups
        if len(opt["param_groups"]) != len(groups):
            problems.append(
                f"optimizer.param_groups: {len(opt['param_groups'])} groups, the model's optimizer has {len(groups)}"
            )
        params = [p for g in groups for p in g["params"]]
        for i, g in enumerate(opt["param_groups"]):
            if not isinstance(g, dict) or not isinstance(g.get("params"), list):
                problems.append(f"optimizer.param_groups.{i}: must be an object with a params list")
        for idx, st in opt["state"].items():
            if not is_int(idx) or not 0 <= idx < len(params):
                problems.append(f"optimizer.state.{idx}: no such parameter (the model has {len(params)})")
                continue
            if not isinstance(st, dict):
                problems.append(f"optimizer.state.{idx}: must be an object")
                continue
            for name, t in st.items():
                if name == "step":
                    ok = (
                        isinstance(t, torch.Tensor)
                        and t.numel() == 1
                        and bool(torch.isfinite(t).all())
                        and float(t) >= 0
                    ) or (is_number(t) and t >= 0)
                    if not ok:
                        problems.append(f"optimizer.state.{idx}.step: must be a count >= 0")
                elif isinstance(t, torch.Tensor):
                    if tuple(t.shape) != tuple(params[idx].shape):
                        problems.append(
                            f"optimizer.state.{idx}.{name}: shape {list(t.shape)}, but its parameter is {list(params[idx].shape)}"
                        )
                    elif t.is_floating_point() and not bool(torch.isfinite(t).all()):
                        problems.append(f"optimizer.state.{idx}.{name}: holds NaN or infinite values")
    rng = resume.get("rng")
    if not isinstance(rng, dict):
        problems.append("rng: must be an object")
    else:
        t = rng.get("torch")
        want = torch.get_rng_state()
        if not isinstance(t, torch.Tensor) or t.dtype != want.dtype or t.shape != want.shape:
            problems.append(f"rng.torch: must be a {want.dtype} tensor of {want.numel()} values")
        py = rng.get("python")
        ok = isinstance(py, (tuple, list)) and len(py) == 3 and is_int(py[0]) and isinstance(py[1], (tuple, list))
        ok = ok and len(py[1]) == 625 and all(is_int(x) and 0 <= x < 2**32 for x in py[1])
        if not ok:
            problems.append("rng.python: not a Python random state (version, 625 integers, gauss)")
        cuda = rng.get("cuda")
        if cuda is not None and not (
            isinstance(cuda, (list, tuple))
            and all(isinstance(c, torch.Tensor) and c.dtype == torch.uint8 for c in cuda)
        ):
            problems.append("rng.cuda: must be a list of uint8 tensors")
    if resume.get("task") is not None and not isinstance(resume.get("task"), dict):
        problems.append("task: must be an object")
    return problems


def check_resume(directory: Path, resume: dict[str, Any], state: dict[str, Any], optimizer: Any) -> None:
    """CheckpointError (every problem, one line each) unless the resume files and trainer_state.json fit."""
    problems = [f"trainer_state.json {p}" for p in state_problems(state)]
    if not is_int(state.get("step")):
        problems.append("trainer_state.json step: missing")
    if "elapsed_s" in state and not (is_number(state["elapsed_s"]) and state["elapsed_s"] >= 0):
        problems.append(f"trainer_state.json elapsed_s: must be a number >= 0, got {state['elapsed_s']!r}")
    problems += [f"resume state {p}" for p in resume_problems(resume, optimizer)]
    if problems:
        raise fail(f"cannot resume from {directory}", problems)
