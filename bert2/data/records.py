"""A user's own data files, read into records (plain dicts), and the split into training and held-out rows.

Every fine-tuning task reads its local files through here (CSV/TSV, JSON Lines, JSON), so a broken file gets the
same kind of message whatever the task: which file, which line, what was expected. Task modules then pick the
fields they need (`require_fields`) and build their examples.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")
CONLL_SUFFIXES = (".txt", ".conll", ".iob", ".bio", ".conllu")
VALIDATION_FRACTION = 0.1
VALIDATION_CAP = 1000  # enough for stable numbers, small enough that evaluation stays a few seconds on a CPU


def looks_like_file(name: str) -> bool:
    """Whether a --data value names a local file (by its suffix or a path-like start) rather than a hub dataset."""
    return Path(name).suffix.lower() in (*DATA_SUFFIXES, *CONLL_SUFFIXES) or name.startswith(("/", ".", "~"))


def local_path(name: str) -> Path | None:
    """The local file `name` names, or None when it is a built-in or hub name."""
    path = Path(name).expanduser()
    return path if path.exists() or looks_like_file(name) else None


def read_records(path: Path, what: str, formats: str) -> list[dict[str, Any]]:
    """Records of a local .csv/.tsv/.jsonl/.json file; DataError for anything unreadable, naming the file.
    `what` names the task's data in messages, `formats` what the task accepts."""
    if not path.exists():
        raise DataError(f"{what} file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if not text.strip():
        raise DataError(f"{path} is empty")
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        try:
            return [dict(r) for r in reader]
        except csv.Error as exc:
            raise DataError(f"{path} is not valid CSV: {exc}") from None
    if suffix == ".jsonl":
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {n} is not valid JSON: {exc.msg}") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path} line {n} is not a JSON object")
            records.append(rec)
        return records
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if isinstance(data, dict) and "data" in data:
            return data["data"] if isinstance(data["data"], list) else []
        if isinstance(data, list):
            return [r for r in data if isinstance(r, dict)]
        raise DataError(f"{path} must hold a JSON list of records")
    raise DataError(f"{path}: unsupported file type {suffix or '(none)'}; use {formats}")


def require_fields(records: list[dict[str, Any]], fields: Sequence[str], path: Path) -> None:
    if not records:
        raise DataError(f"{path} contains no records")
    missing = [f for f in fields if f not in records[0]]
    if missing:
        raise DataError(f"{path} lacks the field(s) {', '.join(missing)}; found: {', '.join(map(str, records[0]))}")


def label_names(values: Sequence[Any]) -> list[str]:
    """Sorted distinct label names; numerically when all are integers (so "10" follows "9")."""
    names = sorted({str(v).strip() for v in values})
    if all(re.fullmatch(r"-?\d+", n) for n in names):
        names.sort(key=int)
    return names


def split(
    examples: list[dict[str, Any]], seed: int, key: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Deterministic train/validation split: 10% held out (at most VALIDATION_CAP), by `key` group when given.

    Grouping (e.g. by context for SQuAD) keeps every question about one paragraph on the same side, so the model
    is never validated on a paragraph it was trained to read.
    """
    groups: dict[Any, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex[key] if key else i, []).append(i)
    order = list(groups)
    random.Random(seed).shuffle(order)
    n_val = (
        min(max(1, round(len(order) * VALIDATION_FRACTION)), VALIDATION_CAP, len(order) - 1) if len(order) > 1 else 0
    )
    val = [examples[i] for g in order[:n_val] for i in groups[g]]
    train_idx = [i for g in order[n_val:] for i in groups[g]]
    random.Random(seed + 1).shuffle(train_idx)  # mixed classes even when the file is sorted by label
    return [examples[i] for i in train_idx], val
