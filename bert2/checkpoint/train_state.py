"""The resume files of a checkpoint: optimizer, schedule, RNG and data position, stored without pickle.

Why not `torch.save`: a `.pt` file is a pickle, and unpickling runs whatever the file says (an object's
`__reduce__` can call any function). A checkpoint directory is something learners download and share, so bert2
never unpickles one. The resume state is split instead into

    resume.safetensors   every tensor (Adam's moments and step counts, the torch and CUDA RNG states, the
                         collator's masking generator), in safetensors: raw tensor bytes plus a JSON header
    resume.json          everything else (learning-rate groups, schedule, loss scaler, Python's RNG state) as
                         JSON, with each tensor replaced by {"tensor": "<its key in resume.safetensors>"}

Neither format can execute anything, and loading them needs no `torch.load`. A value that is neither a tensor nor
plain data (None, bool, int, float, str, list, tuple, dict with str or int keys) is refused when saving, so a
future field that would need pickle fails loudly here instead of quietly reopening the hole.

Checkpoints written by bert2 before this format carry `optimizer.pt`, `scheduler.pt` and `rng.pt`. Their weights
(model.safetensors) stay usable everywhere; resuming from them needs `--trust-checkpoint`, and even then they are
read with torch's restricted unpickler (`weights_only=True`, tensors and plain containers only) on a torch
version without its known holes (>= 2.10, CVE-2026-24747).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from .layout import LEGACY_RESUME_FILES, RESUME_FILES

TENSORS_FILE, JSON_FILE = FILES = RESUME_FILES
LEGACY_FILES = LEGACY_RESUME_FILES
SAFE_TORCH = (2, 10)  # torch.load(weights_only=True) had a memory-corruption hole before 2.10 (CVE-2026-24747)
FORMAT = 1

_TENSOR, _TUPLE, _INT_KEYS = "tensor", "tuple", "int_keys"  # the three tags of the JSON encoding


# --------------------------------------------------------------------------------------------------------------
# Nested data <-> (JSON, tensors)
# --------------------------------------------------------------------------------------------------------------


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """JSON-able form of `value`; tensors go into `tensors` under their path (`where`)."""
    if isinstance(value, torch.Tensor):
        tensors[where] = value.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared storage
        return {_TENSOR: where}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, tensors, f"{where}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"dict": {k: _encode(v, tensors, f"{where}.{k}") for k, v in value.items()}}
        if all(isinstance(k, int) and not isinstance(k, bool) for k in value):  # the optimizer's per-parameter state
            return {_INT_KEYS: [[k, _encode(v, tensors, f"{where}.{k}")] for k, v in value.items()]}
    raise CheckpointError(f"cannot store {where} ({type(value).__name__}) in resume state without pickle")


def _int_pair(p: Any) -> bool:
    """[int key, value]: what `_encode` writes for the optimizer's per-parameter state (a forged key is refused)."""
    return isinstance(p, list) and len(p) == 2 and isinstance(p[0], int) and not isinstance(p[0], bool)


def _decode(value: Any, tensors: dict[str, torch.Tensor], where: str = "resume.json") -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode(v, tensors, where) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == _TENSOR and isinstance(inner, str):
            if inner not in tensors:
                raise CheckpointError(f"{where} names tensor {inner!r}, which {TENSORS_FILE} lacks")
            return tensors[inner]
        if tag == _TUPLE and isinstance(inner, list):
            return tuple(_decode(v, tensors, where) for v in inner)
        if tag == "dict" and isinstance(inner, dict):
            return {k: _decode(v, tensors, where) for k, v in inner.items()}
        if tag == _INT_KEYS and isinstance(inner, list) and all(_int_pair(p) for p in inner):
            return {k: _decode(v, tensors, where) for k, v in inner}
    raise CheckpointError(f"{where} holds a value bert2 did not write: {str(value)[:80]}")


# --------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------


def save_resume_state(directory: Path, state: dict[str, Any]) -> None:
    """Write `state` (optimizer, schedule, rng, task: nested dicts of tensors and plain data) as resume files."""
    tensors: dict[str, torch.Tensor] = {}
    encoded = {"format": FORMAT, "state": _encode(state, tensors, "state")}
    save_file(tensors, str(Path(directory) / TENSORS_FILE), metadata={"format": "bert2-resume"})
    # allow_nan: a loss scaler's scale may be inf after an overflow; Python's json reads it back exactly.
    (Path(directory) / JSON_FILE).write_text(json.dumps(encoded), encoding="utf-8")


def has_resume_state(directory: Path) -> bool:
    return all((Path(directory) / f).is_file() for f in FILES)


def has_legacy_state(directory: Path) -> bool:
    """Pickled resume files from an older bert2 (and none of the safe ones)."""
    return not has_resume_state(directory) and any((Path(directory) / f).is_file() for f in LEGACY_FILES)


def check_resumable(directory: Path, trust_legacy: bool = False) -> None:
    """Raise the CheckpointError `load_resume_state` would, without reading tensors: a run checks this before it
    spends minutes preparing data."""
    d = Path(directory)
    if has_resume_state(d):
        return
    if has_legacy_state(d):
        if not trust_legacy:
            raise CheckpointError(_legacy_refusal(d))
        check_safe_torch(f"the pickled resume files of {d}")
        return
    raise CheckpointError(f"cannot resume from {d}: missing {' and '.join(FILES)}")


def _legacy_refusal(d: Path) -> str:
    present = ", ".join(f for f in LEGACY_FILES if (d / f).is_file())
    return (
        f"{d} keeps its resume state in pickle files ({present}, written by an older bert2). Unpickling a file "
        "can run any code it contains, so bert2 does not resume from them by default. Its weights are safe and "
        "still load for inference and fine-tuning. If you made this checkpoint yourself, resume with "
        "--trust-checkpoint (read with torch's restricted loader); otherwise start a new run from its weights "
        "with --init-from DIR"
    )


def load_resume_state(directory: Path, trust_legacy: bool = False) -> dict[str, Any]:
    """The resume state saved by `save_resume_state`, read without unpickling anything.

    A checkpoint with only the old pickled `.pt` files is refused (CheckpointError saying how to continue) unless
    `trust_legacy`; then its files are read with torch's restricted unpickler on a torch without its known holes.
    """
    d = Path(directory)
    check_resumable(d, trust_legacy)  # the same refusals, before anything is read
    if has_resume_state(d):
        try:
            tensors = load_file(str(d / TENSORS_FILE))
        except Exception as exc:  # safetensors' own error for a truncated or forged header
            raise CheckpointError(f"{d / TENSORS_FILE} is unreadable (truncated or corrupt?): {exc}") from None
        try:
            encoded = json.loads((d / JSON_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{d / JSON_FILE} is unreadable: {exc}") from None
        if not isinstance(encoded, dict) or encoded.get("format") != FORMAT:
            raise CheckpointError(f"{d / JSON_FILE} is not bert2 resume state of format {FORMAT}")
        state = _decode(encoded.get("state"), tensors, str(d / JSON_FILE))
        if not isinstance(state, dict):
            raise CheckpointError(f"{d / JSON_FILE} does not hold a resume state")
        return state
    return _load_legacy(d)  # check_resumable let only a trusted legacy checkpoint through


def check_safe_torch(what: str) -> None:
    """Refuse torch.load on a torch whose weights_only unpickler has known holes."""
    version = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2] if x.isdigit())
    if version < SAFE_TORCH:
        raise CheckpointError(
            f"reading {what} needs torch >= {'.'.join(map(str, SAFE_TORCH))}: torch "
            f"{torch.__version__}'s restricted unpickler has a known memory-corruption hole "
            "(CVE-2026-24747); upgrade torch or convert the file to safetensors"
        )


def _load_legacy(d: Path) -> dict[str, Any]:
    """optimizer.pt / scheduler.pt / rng.pt of an older bert2, through weights_only=True (no arbitrary objects)."""
    missing = [f for f in LEGACY_FILES if not (d / f).is_file()]
    if missing:
        raise CheckpointError(f"cannot resume from {d}: missing {', '.join(missing)}")
    parts = {}
    for f in LEGACY_FILES:
        try:
            parts[f] = torch.load(d / f, map_location="cpu", weights_only=True)
        except Exception as exc:  # the restricted unpickler refuses anything but tensors and plain data
            raise CheckpointError(
                f"{d / f} is not plain tensor data ({type(exc).__name__}: {str(exc)[:160]}); refusing to resume from it"
            ) from None
    sched, rng = parts["scheduler.pt"], parts["rng.pt"]
    return {
        "optimizer": parts["optimizer.pt"],
        "schedule": sched.get("schedule"),
        "scaler": sched.get("scaler"),
        "rng": {k: v for k, v in rng.items() if k != "task"},
        "task": rng.get("task", {}),
    }
