"""Evaluation metrics for the fine-tuning tasks: thin wrappers over scikit-learn, sacrebleu and rouge-score, plus
the SQuAD exact-match / F1 (the official v1.1 evaluation logic, which is short enough to carry here).

Why wrappers at all: every task reports a flat dict of floats (what EvalEvent and trainer_state.json carry), and
the libraries' own result objects do not serialise. Scales follow the library or benchmark convention, so numbers
can be compared with published ones: accuracy / F1 / precision / recall in [0, 1] (scikit-learn; seqeval for
entities), BLEU in
[0, 100] (sacrebleu), ROUGE F-measures in [0, 1] (rouge-score), exact match and SQuAD F1 in [0, 100] (SQuAD).
Heavy libraries are imported inside the functions so importing this module costs nothing.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Iterable, Sequence
from typing import Any

# --------------------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------------------


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, weighted F1, macro and per-class precision / recall / F1 / support, and the confusion matrix.

    Labels are indices into `labels`; every class appears in the per-class tables and the matrix even when absent
    from this evaluation (scikit-learn's `labels=` argument), so matrices of successive evaluations line up.
    Rows of the confusion matrix are true classes, columns predicted classes (scikit-learn's convention).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    idx = list(range(len(labels)))
    y_true, y_pred = list(map(int, y_true)), list(map(int, y_pred))
    if not y_true:
        return {
            "accuracy": 0.0,
            "f1_weighted": 0.0,
            "precision_macro": 0.0,
            "recall_macro": 0.0,
            "per_class": {},
            "confusion_matrix": [[0] * len(idx) for _ in idx],
            "labels": list(labels),
        }
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    pm, rm, _, _ = precision_recall_fscore_support(y_true, y_pred, labels=idx, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_weighted": float(f1_score(y_true, y_pred, labels=idx, average="weighted", zero_division=0)),
        "precision_macro": float(pm),
        "recall_macro": float(rm),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, name in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
        "labels": list(labels),
    }


def flat_classification_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The numeric part of a classification report as flat float keys (EvalEvent carries floats only)."""
    out = {k: float(report[k]) for k in ("accuracy", "f1_weighted", "precision_macro", "recall_macro")}
    for name, row in report.get("per_class", {}).items():
        out[f"precision/{name}"] = row["precision"]
        out[f"recall/{name}"] = row["recall"]
    return out


# --------------------------------------------------------------------------------------------------------------
# Named entities
# --------------------------------------------------------------------------------------------------------------


def entity_report(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level micro precision / recall / F1 (seqeval, CoNLL's conlleval definition: an entity counts only
    when its type and both boundaries are right), per-type figures, and the token accuracy beside them.

    Why entity level: with most words tagged O, a model that says O everywhere has ~90% token accuracy and finds
    no entity at all; its entity F1 is 0.
    """
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    gold, predicted = [list(s) for s in gold], [list(s) for s in predicted]
    if not any(gold):
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "token_accuracy": 0.0, "per_type": {}}
    per_type = classification_report(gold, predicted, output_dict=True, zero_division=0)
    return {
        "precision": float(precision_score(gold, predicted, zero_division=0)),
        "recall": float(recall_score(gold, predicted, zero_division=0)),
        "f1": float(f1_score(gold, predicted, zero_division=0)),
        "token_accuracy": float(accuracy_score(gold, predicted)),
        "per_type": {
            name: {
                "precision": float(row["precision"]),
                "recall": float(row["recall"]),
                "f1": float(row["f1-score"]),
                "support": int(row["support"]),
            }
            for name, row in per_type.items()
            if "avg" not in name
        },
    }


def flat_entity_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Flat float keys for EvalEvent: the micro figures and each type's F1 (`f1/person`)."""
    out = {k: float(report[k]) for k in ("precision", "recall", "f1", "token_accuracy")}
    for name, row in report.get("per_type", {}).items():
        out[f"f1/{name}"] = row["f1"]
    return out


# --------------------------------------------------------------------------------------------------------------
# Generation (generative QA)
# --------------------------------------------------------------------------------------------------------------


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu, 13a tokenisation, 0-100) of predictions against one reference each."""
    import sacrebleu

    if not predictions:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1 / ROUGE-2 / ROUGE-L F-measures (rouge-score, Porter stemming, 0-1)."""
    from rouge_score import rouge_scorer

    keys = ("rouge1", "rouge2", "rougeL")
    if not predictions:
        return {k: 0.0 for k in keys}
    scorer = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    sums = dict.fromkeys(keys, 0.0)
    for pred, ref in zip(predictions, references):
        scores = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        for k in keys:
            sums[k] += scores[k].fmeasure
    return {k: v / len(predictions) for k, v in sums.items()}


def generation_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """BLEU, ROUGE-1/2/L and exact match (SQuAD normalisation, 0-100) of generated answers."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    out = {"bleu": bleu(predictions, references), **rouge(predictions, references)}
    out["exact_match"] = 100.0 * _mean(exact_match(p, r) for p, r in zip(predictions, references))
    out["repetitive"] = 100.0 * _mean(float(repeats_a_word(p, r)) for p, r in zip(predictions, references))
    return out


def repeats_a_word(prediction: str, reference: str = "", times: int = 3) -> bool:
    """Whether the prediction holds one word `times` or more times while the reference does not: the signature of
    a degenerate decoder ("american american american"). `repetitive` in generation_metrics is the % of such
    answers."""
    from collections import Counter

    said = Counter(normalize_answer(prediction).split())
    ref = Counter(normalize_answer(reference).split())
    return any(n >= times and ref[w] < times for w, n in said.items())


# --------------------------------------------------------------------------------------------------------------
# SQuAD exact match / F1 (official v1.1 evaluation script, restated)
# --------------------------------------------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, the articles a/an/the and extra whitespace (SQuAD's normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    """Harmonic mean of token precision and recall after normalisation (bag of words, counts respected)."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: dict[str, str], references: dict[str, Sequence[str]]) -> dict[str, float]:
    """SQuAD v1.1 exact_match and f1 (0-100): per question the max over its gold answers, averaged.

    Questions without a prediction count as wrong (as in the official script, which warns about them).
    """
    em = f1 = 0.0
    for qid, golds in references.items():
        pred = predictions.get(qid, "")
        golds = list(golds) or [""]
        em += max(exact_match(pred, g) for g in golds)
        f1 += max(token_f1(pred, g) for g in golds)
    n = max(len(references), 1)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
