"""A corpus as a stream of document texts, read in bounded memory.

Why a stream: preparation used to read a whole corpus into Python lists first (about 4.8 GB of memory per GB of
text), so English Wikipedia, the corpus BERT was trained on, could not be prepared on an ordinary machine. Every
reader here yields one document's text at a time; memory does not grow with the corpus.

What `data.corpus` may name (several joined by ``+``):

* ``wiki-offline``, ``imdb-offline``: the built-in offline corpora (small; read from their packages);
* a file: ``.txt`` (blank line between documents), ``.jsonl`` (one JSON object per line, field ``text``),
  ``.json`` (JSON lines, or one JSON array of objects, which is read whole), ``.parquet`` (column ``text``, read
  a row group at a time); ``.txt`` and ``.jsonl``/``.json`` may be compressed: ``.gz``, ``.bz2``, ``.zst``;
* a directory (every corpus file in it, recursively, in sorted order) or a glob (``shards/*.jsonl.gz``): the
  shards of one corpus, all of one format;
* anything else: a Hugging Face hub dataset (``name`` or ``name:config``), downloaded with ``datasets`` or, with
  ``data.streaming = true``, streamed without a local copy (for datasets larger than the disk).

Errors name the file and the line (text formats) or byte (compressed data) where reading failed.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bert2.errors import DataError

TEXT_FORMATS = (".txt",)
JSON_FORMATS = (".jsonl", ".json")
PARQUET_FORMATS = (".parquet",)
FORMATS = TEXT_FORMATS + JSON_FORMATS + PARQUET_FORMATS
COMPRESSIONS = (".gz", ".bz2", ".zst", ".zstd")
_GLOB_CHARS = "*?["
MAX_LINE_BYTES = 8 * 1024 * 1024  # as records.MAX_LINE_BYTES: a longer "line" is a binary or damaged file
_FORMAT_GROUP = {".txt": "text", ".jsonl": "JSON lines", ".json": "JSON lines", ".parquet": "Parquet"}


def split_suffix(path: Path) -> tuple[str, str]:
    """`shard.jsonl.gz` -> (".jsonl", ".gz"); `a.txt` -> (".txt", "")."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        return (suffixes[-2] if len(suffixes) > 1 else ""), suffixes[-1]
    return (suffixes[-1] if suffixes else ""), ""


def is_corpus_file(path: Path) -> bool:
    fmt, compression = split_suffix(path)
    return fmt in FORMATS and not (fmt in PARQUET_FORMATS and compression)


def is_glob(spec: str) -> bool:
    return any(c in spec for c in _GLOB_CHARS)


def shard_files(spec: str) -> list[Path]:
    """The files of a directory or glob corpus, sorted; DataError for none found or for mixed formats."""
    if is_glob(spec):
        paths = [Path(p) for p in sorted(glob.glob(str(Path(spec).expanduser()), recursive=True))]
        where = f"glob {spec!r}"
    else:
        root = Path(spec).expanduser()
        paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        where = f"directory {spec!r}"
    files = [p for p in paths if p.is_file() and is_corpus_file(p)]
    if not files:
        others = sorted({"".join(p.suffixes) or p.name for p in paths if p.is_file()})[:6]
        found = f" (found: {', '.join(others)})" if others else " (it is empty)"
        raise DataError(
            f"corpus {where} holds no corpus files{found}; shards must be {', '.join(FORMATS)} files, "
            f"the text formats optionally compressed ({', '.join(COMPRESSIONS)})"
        )
    groups: dict[str, Path] = {}
    for p in files:
        groups.setdefault(_FORMAT_GROUP[split_suffix(p)[0]], p)
    if len(groups) > 1:
        found = ", ".join(f"{g} ({p.name})" for g, p in groups.items())
        raise DataError(
            f"corpus {where} mixes formats: {found}; put the shards of one corpus in one format, or "
            "join different corpora with +"
        )
    return files


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed by its suffix (gzip and bz2 from the standard library, zstd from pyarrow)."""
    compression = split_suffix(path)[1]
    try:
        if compression == ".gz":
            return gzip.open(path, "rb")
        if compression == ".bz2":
            return bz2.open(path, "rb")
        if compression in (".zst", ".zstd"):
            import pyarrow as pa  # a dependency of datasets; its zstd codec spares another package

            return io.BufferedReader(pa.input_stream(str(path), compression="zstd"))
        return open(path, "rb")
    except OSError as exc:
        raise DataError(f"corpus file {path} cannot be opened: {exc.strerror or exc}") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, decoded line without its end) of a text file, plain or compressed.

    Decoding line by line keeps memory flat and lets an undecodable byte be reported with its line; a corrupt or
    truncated compressed stream is reported with the uncompressed byte where it broke.
    """
    offset = 0
    number = 0
    with _open_binary(path) as fh:
        try:
            for raw in iter(lambda: fh.readline(MAX_LINE_BYTES + 1), b""):
                number += 1
                if len(raw) > MAX_LINE_BYTES:
                    raise DataError(
                        f"corpus file {path} line {number} is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB; "
                        "is this a binary or damaged file? (split long documents into lines)"
                    )
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw, offset = raw[3:], 3
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad = raw[exc.start : exc.start + 1].hex()
                    raise DataError(
                        f"corpus file {path} is not UTF-8 text: byte 0x{bad} at byte offset "
                        f"{offset + exc.start} (line {number}) cannot be decoded ({exc.reason}); re-save "
                        "the file as UTF-8"
                    ) from None
                offset += len(raw)
                yield number, line.rstrip("\r\n")
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
            kind = split_suffix(path)[1].lstrip(".") or "file"
            raise DataError(
                f"corpus file {path} is corrupt or truncated ({kind} data): reading failed after "
                f"{offset} uncompressed bytes, at line {number + 1} ({type(exc).__name__}: {exc}); "
                "nothing from it is used"
            ) from None
    if number == 0 or offset == 0:
        raise DataError(f"corpus file {path} is empty")


def _txt_texts(path: Path) -> Iterator[str]:
    """Documents of a .txt file: blocks separated by blank lines (lines holding only whitespace count as blank)."""
    block: list[str] = []
    found = False
    for _, line in _lines(path):
        if line.strip():
            block.append(line)
        elif block:
            found = True
            yield "\n".join(block).strip()
            block = []
    if block:
        found = True
        yield "\n".join(block).strip()
    if not found:
        raise DataError(f"corpus file {path} contains no text (only whitespace)")


def _json_array_texts(path: Path) -> Iterator[str]:
    """A .json file holding one array of objects: read whole (a JSON array cannot be streamed by line)."""
    with _open_binary(path) as fh:
        try:
            records = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"corpus file {path} cannot be read as JSON: {exc}") from None
    if not isinstance(records, list):
        raise DataError(
            f"corpus file {path} holds a JSON {type(records).__name__}; use JSON lines (one object per "
            "line with a 'text' field) or an array of such objects"
        )
    for i, record in enumerate(records):
        yield _record_text(path, record, f"item {i}")


def _record_text(path: Path, record: Any, where: str) -> str:
    if not isinstance(record, dict):
        raise DataError(
            f"corpus file {path}: {where} is a JSON {type(record).__name__}, not an object with a 'text' field"
        )
    text = record.get("text")
    if text is not None and not isinstance(text, str):
        raise DataError(f"corpus file {path}: {where}: field 'text' is a {type(text).__name__}, not a string")
    return text or ""


def _jsonl_texts(path: Path) -> Iterator[str]:
    first = True
    seen_field = False
    fields: set[str] = set()
    for number, line in _lines(path):
        if not line.strip():
            continue
        if first and line.lstrip().startswith("["):
            yield from _json_array_texts(path)
            return
        first = False
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"corpus file {path} cannot be read as JSON lines: line {number} is not valid JSON "
                f"({exc.msg} at column {exc.colno})"
            ) from None
        if isinstance(record, dict) and "text" not in record:
            if len(fields) < 20:
                fields.update(record)
            continue
        seen_field = True
        yield _record_text(path, record, f"line {number}")
    if not seen_field:
        raise DataError(
            f"corpus file {path} has no field 'text' in its records; fields found: "
            f"{', '.join(sorted(fields)) or '(none)'}"
        )


def pa_types():
    import pyarrow.types

    return pyarrow.types


def _parquet_texts(path: Path) -> Iterator[str]:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise DataError(f"corpus file {path} is empty")
    if head != b"PAR1":
        raise DataError(f"corpus file {path} is not a Parquet file (it does not start with the PAR1 magic bytes)")
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged footer
        raise DataError(f"corpus file {path} cannot be read as Parquet: {type(exc).__name__}: {exc}") from None
    names = pf.schema_arrow.names
    if "text" not in names:
        raise DataError(f"corpus file {path} has no column 'text'; columns found: {', '.join(names) or '(none)'}")
    kind = pf.schema_arrow.field("text").type
    if not (pa_types().is_string(kind) or pa_types().is_large_string(kind)):  # numbers would become "texts"
        raise DataError(f"corpus file {path}: column 'text' holds {kind}, not strings")
    group = 0
    try:
        for group in range(pf.num_row_groups):
            for text in pf.read_row_group(group, columns=["text"]).column("text").to_pylist():
                yield text or ""
    except Exception as exc:
        raise DataError(
            f"corpus file {path} is corrupt: row group {group} of {pf.num_row_groups} cannot be read "
            f"({type(exc).__name__}: {exc})"
        ) from None


def file_texts(path: Path) -> Iterator[str]:
    """The documents of one corpus file, by its format."""
    fmt = split_suffix(path)[0]
    if fmt in TEXT_FORMATS:
        return _txt_texts(path)
    if fmt in JSON_FORMATS:
        return _jsonl_texts(path)
    return _parquet_texts(path)


def hub_texts(opened: tuple[Any, str], streaming: bool) -> Iterator[str]:
    """Texts of an opened hub dataset ((dataset, text column)): a downloaded one read 1,000 rows at a time from
    its memory-mapped Arrow files, a streamed one row by row as it arrives (never stored)."""
    ds, column = opened
    if streaming:
        for row in ds:
            yield row.get(column) or ""
        return
    for batch in ds.iter(batch_size=1000):
        for text in batch[column]:
            yield text or ""
