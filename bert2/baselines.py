"""The simplest things a user would try instead of BERT, scored on the same held-out examples.

A fine-tuned model is only worth its minutes if it beats these: bag-of-words logistic regression for
classification (TF-IDF of words and word pairs; Wang & Manning 2012 show how strong it is on sentiment), and for
the wiki questions ("What is {title}?") two one-line rules: the phrase after the context's first "is a"/"was a",
and the context sentence that shares most words with the question; for named entities, a lookup table of each
training word's most frequent tag (CoNLL-2003's own baseline: it finds every entity seen in training and nothing
else). `bert2 bench finetune_quality` prints them beside the pretrained and the from-scratch model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .data.corpus import split_sentences

_DEFINITION = re.compile(r"\b(?:is|was|are|were)\s+(?:a|an|the)\s+(.*)", re.IGNORECASE | re.DOTALL)
_CLAUSE_END = re.compile(r"[.,;:()]| (?:that|which|who|whose|where)\b")
_WORD = re.compile(r"\w+")


def tfidf_logreg_accuracy(train: Sequence[dict[str, Any]], validation: Sequence[dict[str, Any]]) -> float:
    """Held-out accuracy of TF-IDF (1-2 grams, sublinear tf) + logistic regression on the full texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    X = vectorizer.fit_transform([ex["text"] for ex in train])
    model = LogisticRegression(C=4.0, max_iter=2000).fit(X, [ex["label"] for ex in train])
    predicted = model.predict(vectorizer.transform([ex["text"] for ex in validation]))
    gold = [ex["label"] for ex in validation]
    return float(sum(int(p == g) for p, g in zip(predicted, gold)) / max(len(gold), 1))


def definition_rule(context: str, max_words: int = 8) -> str:
    """The phrase after the first "is a/an/the" (or was/are/were), up to the clause's end, at most `max_words`.

    The best of the variants tried on wiki-qa (3-12 words, with and without stopping at the clause's end):
    ROUGE-1 0.43 with 8 words and the clause stop.
    """
    match = _DEFINITION.search(context)
    text = _CLAUSE_END.split(match.group(1))[0] if match else context
    return " ".join(text.split()[:max_words])


def overlap_sentence(question: str, context: str) -> str:
    """The context sentence sharing most (lower-cased) words with the question; the first one on ties."""
    asked = {w.lower() for w in _WORD.findall(question)}
    sentences = split_sentences(context) or [context]
    return max(sentences, key=lambda s: len(asked & {w.lower() for w in _WORD.findall(s)}))


def lookup_table(train: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each training word's most frequent tag (case-sensitive, as the entity lists of CoNLL-2003's baseline are;
    a tie goes to the tag seen first). The NER task's lookup feature (tasks/ner.py) reads the same table."""
    import collections

    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for ex in train:
        for word, tag in zip(ex["tokens"], ex["tags"]):
            counts[word][tag] += 1
    return {word: c.most_common(1)[0][0] for word, c in counts.items()}


def ner_lookup_tags(train: Sequence[dict[str, Any]], words: Sequence[str]) -> list[str]:
    """The lookup table's tag of each word, O for a word never seen; an I- tag that cannot continue is read as
    the start of an entity."""
    table = lookup_table(train)
    return [table.get(w, "O") for w in words]


def ner_lookup_f1(train: Sequence[dict[str, Any]], validation: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Entity-level precision / recall / F1 (seqeval) of the lookup table on the held-out sentences."""
    from .metrics import entity_report

    table = lookup_table(train)
    predicted = [[table.get(w, "O") for w in ex["tokens"]] for ex in validation]
    report = entity_report([ex["tags"] for ex in validation], predicted)
    return {k: report[k] for k in ("precision", "recall", "f1")}
