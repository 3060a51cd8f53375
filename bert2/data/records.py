"""A user's own data files, read into records (plain dicts), and the split into training and held-out rows.

Every fine-tuning task reads its local files through here (CSV/TSV, JSON Lines, JSON), so a broken file gets the
same kind of message whatever the task: which file, which line, what was expected. Task modules then pick the
fields they need (`require_fields`) and build their examples.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")
CONLL_SUFFIXES = (".txt", ".conll", ".iob", ".bio", ".conllu")
MAX_LINE_BYTES = 8 * 1024 * 1024  # no real record or sentence is this long: a binary or damaged file, not data
VALIDATION_CAP = 1000  # enough for stable numbers, small enough that evaluation stays a few seconds on a CPU


def looks_like_file(name: str) -> bool:
    """Whether a --data value names a local file (by its suffix or a path-like start) rather than a hub dataset."""
    return Path(name).suffix.lower() in (*DATA_SUFFIXES, *CONLL_SUFFIXES) or name.startswith(("/", ".", "~"))


def local_path(name: str) -> Path | None:
    """The local file `name` names, or None when it is a built-in or hub name."""
    path = Path(name).expanduser()
    return path if path.exists() or looks_like_file(name) else None


class Records(list):
    """The records of a file, and where each one is in it: messages about record i name `where(i)`, the line a
    user's editor shows (CSV: the header is line 1, so the first record is line 2), not a record count."""

    def __init__(self, records: list[dict[str, Any]], lines: list[int] | None = None):
        super().__init__(records)
        self.lines = lines

    def where(self, i: int) -> str:
        """Where record `i` (from 0) is: "line N" for CSV/TSV and JSON Lines, "record N" (from 1) for JSON."""
        if self.lines is not None and i < len(self.lines):
            return f"line {self.lines[i]}"
        return f"record {i + 1}"


def where_of(records: Sequence[Any], i: int) -> str:
    """`records.where(i)` for a Records list, "record i+1" for any other."""
    return records.where(i) if isinstance(records, Records) else f"record {i + 1}"


def read_records(path: Path, what: str, formats: str) -> Records:
    """Records of a local .csv/.tsv/.jsonl/.json file; DataError for anything unreadable, naming the file.
    `what` names the task's data in messages, `formats` what the task accepts."""
    if not path.exists():
        raise DataError(f"{what} file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    text = decode_text(path, raw)
    suffix = path.suffix.lower()
    if not text.strip():
        raise DataError(f"{path} is empty")
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        rows, lines = [], []
        try:
            header = len(reader.fieldnames or [])
            for r in reader:
                extra, short = r.get(None), [k for k, v in r.items() if v is None]  # DictReader's marks
                if extra or short:  # a text holding an unquoted comma would shift the label into a new class
                    got = header + len(extra or []) - len(short)
                    raise DataError(
                        f"{path} line {reader.line_num}: {got} field{'s' * (got != 1)} but the header has {header} "
                        f"({', '.join(map(str, reader.fieldnames or []))}); a text holding the delimiter must be "
                        "quoted"
                    )
                rows.append(dict(r))
                lines.append(reader.line_num)  # the record's (last) line, the header being line 1
        except csv.Error as exc:
            raise DataError(f"{path} line {reader.line_num} is not valid CSV: {exc}") from None
        return Records(rows, lines)
    if suffix == ".jsonl":
        records, numbers = [], []
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
            numbers.append(n)
        return Records(records, numbers)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if isinstance(data, dict) and "data" in data:
            data = data["data"]
            if not isinstance(data, list):
                raise DataError(f"{path}: data must be a list of records, got a JSON {_json_type(data)}")
        elif isinstance(data, dict):
            raise DataError(
                f"{path} holds a JSON object without a 'data' list (found: {', '.join(map(str, data)) or 'no keys'}); "
                'expected a list of records or {"data": [...]}'
            )
        if isinstance(data, list):
            for i, r in enumerate(data):
                if not isinstance(r, dict):
                    raise DataError(f"{path}: data[{i}] is a JSON {_json_type(r)}, not an object (a record)")
            return Records(data)
        raise DataError(f"{path} must hold a JSON list of records, not a JSON {_json_type(data)}")
    raise DataError(f"{path}: unsupported file type {suffix or '(none)'}; use {formats}")


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (what a user sees in the file)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(type(value), "value")


def decode_text(path: Path, raw: bytes) -> str:
    """`raw` as UTF-8 text; DataError naming the line of an undecodable byte or of a line longer than
    MAX_LINE_BYTES (a 50 MB "line" is a binary or damaged file, and would make every later step crawl)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path} is not UTF-8 text: line {line}, byte {exc.start} ({exc.reason})") from None
    start = 0
    for n, end in enumerate(_line_ends(raw), 1):
        if end - start > MAX_LINE_BYTES:
            raise DataError(
                f"{path} line {n} is {(end - start) / 1e6:.1f} MB long; lines of data are limited to "
                f"{MAX_LINE_BYTES // (1024 * 1024)} MiB (is this a binary or damaged file?)"
            )
        start = end + 1
    return text


def _line_ends(raw: bytes):
    """Offsets of every line end of `raw` (and its end)."""
    i = raw.find(b"\n")
    while i != -1:
        yield i
        i = raw.find(b"\n", i + 1)
    yield len(raw)


def check_label_column(records: list[dict[str, Any]], field: str, path: Path) -> None:
    """DataError unless every value of `field` is a string, or every one an integer: a column mixing "pos" with
    1 (or holding lists, objects, floats or booleans) would be silently read as extra classes."""
    kinds: dict[str, int] = {}
    for n, r in enumerate(records):
        v = r.get(field)
        if v is None or v == "":
            continue
        kind = "integer" if isinstance(v, int) and not isinstance(v, bool) else type(v).__name__
        if kind not in ("str", "integer"):
            raise DataError(
                f"{path} {where_of(records, n)}: {field} is a {kind} ({str(v)[:40]}); labels are strings or integers"
            )
        kinds.setdefault(kind, n)
    if len(kinds) > 1:
        raise DataError(
            f"{path}: column {field} mixes types: an integer at {where_of(records, kinds['integer'])}, a string at "
            f"{where_of(records, kinds['str'])}; use one type for every label"
        )


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


HELD_OUT_TARGET = 1000  # held-out rows wanted: enough for stable numbers, few enough for a quick evaluation
HELD_OUT_EVERY_MIN = 10  # never more than 1 row in 10 held out: small sets keep most of their rows to learn from
SPLIT_COLUMN = "split"
VALIDATION_NAMES = ("validation", "valid", "dev", "test", "heldout", "held-out")


def row_hash(key: str) -> int:
    """A row's place in the split: the first 32 bits of the SHA-256 of its key (its text)."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16)


def held_out_every(n: int) -> int:
    """1 row in k is held out, k = n / 1000 for large sets (about 1,000 rows), at least 10 (at most 10%): IMDB's
    25,000 reviews give k = 25, wnut16's 2,394 tweets k = 10 (239 held out)."""
    return max(HELD_OUT_EVERY_MIN, round(n / HELD_OUT_TARGET))


@dataclass
class Split:
    """Training and held-out examples of a data set, and which rows were held out and why."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    held_out_rows: list[int]
    """Positions (0-based, in the order the examples were read) of the held-out ones."""
    rule: str
    """How they were chosen, in words: what the run log and the checkpoint say."""


def split(
    examples: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], str],
    seed: int = 42,
    marked: list[str | None] | None = None,
) -> Split:
    """Hold out the rows whose key hashes to 0 modulo `held_out_every(number of keys)`: the same rows on every run
    and on every machine, whatever the file's order, the seed or the rows added later elsewhere; rows with the
    same key (every question about one paragraph) stay on the same side, so the model is never validated on a
    text it was trained to read. The IMDB reviews' fixed held-out set is this rule with k = 25.

    `marked` (a file's own `split` column, one value per example): rows marked validation/dev/test are the
    held-out ones instead, and the hash decides nothing. The training rows come in a seeded random order
    (classes mixed even when a file is sorted by label).
    """
    keys = [key(ex) for ex in examples]
    if len(set(keys)) == 1 < len(keys):  # every row shares one text (a tiny file): the rows themselves are the keys
        keys = [f"{k}\x00{i}" for i, k in enumerate(keys)]
    if marked is not None and any(str(m or "").strip().lower() in VALIDATION_NAMES for m in marked):
        held = {i for i, m in enumerate(marked) if str(m or "").strip().lower() in VALIDATION_NAMES}
        rule = f"the rows the file's {SPLIT_COLUMN!r} column marks {'/'.join(VALIDATION_NAMES[:4])}"
    else:
        distinct = sorted(set(keys))
        k = held_out_every(len(distinct))
        chosen = {kk for kk in distinct if row_hash(kk) % k == 0}
        if not chosen and len(distinct) > 1:  # a tiny set: hold out the one with the smallest hash
            chosen = {min(distinct, key=row_hash)}
        if len(chosen) == len(distinct) and len(distinct) > 1:
            chosen.discard(max(distinct, key=row_hash))
        held = {i for i, kk in enumerate(keys) if kk in chosen}
        rule = f"1 in {k} of {len(distinct)} distinct texts, by a hash of each text (the same rows on every run)"
    train_idx = [i for i in range(len(examples)) if i not in held]
    random.Random(seed + 1).shuffle(train_idx)
    held_sorted = sorted(held)
    val_idx = list(held_sorted)
    # A fixed order, whatever the seed, in which no prefix is one class (files often list their labels in
    # blocks): finetune.eval_batches and bert2 prune take prefixes and samples of it.
    random.Random(0).shuffle(val_idx)
    return Split([examples[i] for i in train_idx], [examples[i] for i in val_idx], held_sorted, rule)
