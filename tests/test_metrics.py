"""The metric wrappers agree with the libraries they wrap, and the SQuAD scores with hand-computed values."""

import pytest

from bert2 import metrics


def test_classification_report_matches_sklearn():
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = ["neg", "neu", "pos", "never"]  # "never" appears in neither list: still gets a row and a column
    y_true = [0, 0, 1, 2, 2, 2, 1, 0]
    y_pred = [0, 1, 1, 2, 0, 2, 1, 0]
    r = metrics.classification_report(y_true, y_pred, labels)
    assert r["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert r["f1_weighted"] == pytest.approx(
        f1_score(y_true, y_pred, average="weighted", labels=[0, 1, 2, 3], zero_division=0)
    )
    p, rec, _, support = precision_recall_fscore_support(y_true, y_pred, labels=[0, 1, 2, 3], zero_division=0)
    for i, name in enumerate(labels):
        assert r["per_class"][name]["precision"] == pytest.approx(p[i])
        assert r["per_class"][name]["recall"] == pytest.approx(rec[i])
        assert r["per_class"][name]["support"] == support[i]
    assert r["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=[0, 1, 2, 3]).tolist()
    assert len(r["confusion_matrix"]) == 4 and sum(map(sum, r["confusion_matrix"])) == len(y_true)

    flat = metrics.flat_classification_metrics(r)
    assert all(isinstance(v, float) for v in flat.values())
    assert flat["precision/neu"] == pytest.approx(2 / 3) and flat["recall/pos"] == pytest.approx(2 / 3)


def test_bleu_and_rouge_match_their_libraries():
    import sacrebleu
    from rouge_score import rouge_scorer

    preds = ["capital of france", "the large river in africa", "painting by georges seurat"]
    refs = ["capital city of france", "river in africa", "painting by georges seurat"]
    assert metrics.bleu(preds, refs) == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    expected = {
        k: sum(scorer.score(r, p)[k].fmeasure for p, r in zip(preds, refs)) / 3 for k in ("rouge1", "rouge2", "rougeL")
    }
    got = metrics.rouge(preds, refs)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v)
    gen = metrics.generation_metrics(preds, refs)
    assert gen["exact_match"] == pytest.approx(100 / 3)
    assert set(gen) == {"bleu", "rouge1", "rouge2", "rougeL", "exact_match", "repetitive"}
    assert metrics.generation_metrics([], []) == {
        "bleu": 0.0,
        "rouge1": 0.0,
        "rouge2": 0.0,
        "rougeL": 0.0,
        "exact_match": 0.0,
        "repetitive": 0.0,
    }
    loops = metrics.generation_metrics(
        ["american american american", "Swiss mathematician", "a b a b a"],
        ["American actor", "Swiss mathematician", "a b a b a"],
    )
    assert loops["repetitive"] == pytest.approx(100 / 3)  # the third repeats "a" 3 times, but so does its reference
    assert metrics.repeats_a_word("New York, New York, New York")  # punctuation does not hide a loop
    assert not metrics.repeats_a_word("the the the film")  # articles are not words to SQuAD's normalisation


def test_squad_normalisation_exact_match_and_f1():
    assert metrics.normalize_answer("The  Cat, sat!") == "cat sat"
    assert metrics.exact_match("An apple.", "apple") == 1.0
    # pred {cat, sat} vs gold {cat, sat, down}: precision 1, recall 2/3 -> F1 0.8
    assert metrics.token_f1("the cat sat", "cat sat down") == pytest.approx(0.8)
    assert metrics.token_f1("dog", "cat") == 0.0
    scores = metrics.squad_metrics(
        {"a": "Paris", "b": "in the leaves of plants"},
        {"a": ["paris", "Paris, France"], "b": ["leaves"], "c": ["missing"]},
    )
    # a: EM 1 F1 1; b: EM 0, F1 = 2*(1/4)*1/(1/4+1) = 0.4; c: no prediction -> 0
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.4) / 3)


def test_baseline_rules_on_hand_made_contexts():
    from bert2.baselines import definition_rule, overlap_sentence, tfidf_logreg_accuracy

    ctx = "Leonhard Euler was a Swiss polymath who was active as a mathematician. He founded graph theory."
    assert definition_rule(ctx) == "Swiss polymath"  # stops where the relative clause starts
    assert (
        definition_rule("Paris is the capital and most populous city of France, with 2 million people.", max_words=5)
        == "capital and most populous city"
    )
    assert definition_rule("No definition here at all") == "No definition here at all"
    assert overlap_sentence("Who founded graph theory?", ctx) == "He founded graph theory."
    rows = [{"text": f"{w} film {i}", "label": int(w == "great")} for i in range(30) for w in ("great", "awful")]
    assert tfidf_logreg_accuracy(rows[:40], rows[40:]) == 1.0
