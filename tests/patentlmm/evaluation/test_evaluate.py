"""`patentlmm eval`: the paper's metrics on hand-checked pairs, offline WordNet, the table and the JSON."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import pytest

from helpers import REPO

pytest.importorskip("sacrebleu")
pytest.importorskip("rouge_score")
pytest.importorskip("nltk")

from patentlmm.cli.eval import add_arguments, run  # noqa: E402
from patentlmm.evaluation.evaluate import PAPER_RESULTS, evaluate_predictions, format_table  # noqa: E402
from patentlmm.evaluation.metrics.patentlmm_metrics import LEXNAMES, paper_metrics, prepare_wordnet  # noqa: E402

METRIC_FILE = REPO / "patentlmm" / "evaluation" / "metrics" / "patentlmm_metrics.py"


@pytest.fixture(scope="module", autouse=True)
def nltk_data(tmp_path_factory) -> Path:
    """WordNet copied from Debian into a fresh data dir for this module (`$PATENTLMM_NLTK_DATA`)."""
    folder = tmp_path_factory.mktemp("nltk_data")
    before = os.environ.get("PATENTLMM_NLTK_DATA")
    os.environ["PATENTLMM_NLTK_DATA"] = str(folder)
    yield folder
    if before is None:
        del os.environ["PATENTLMM_NLTK_DATA"]
    else:
        os.environ["PATENTLMM_NLTK_DATA"] = before


def test_wordnet_is_copied_with_a_generated_lexnames(nltk_data):
    assert prepare_wordnet() == nltk_data
    wordnet = nltk_data / "corpora" / "wordnet"
    lines = (wordnet / "lexnames").read_text().splitlines()
    assert len(lines) == 45 == len(LEXNAMES)
    assert lines[0] == "00\tadj.all\t3" and lines[6] == "06\tnoun.artifact\t1" and lines[44] == "44\tadj.ppl\t3"
    assert not (wordnet / "data.noun").is_symlink() and (wordnet / "data.noun").stat().st_size > 1_000_000
    from nltk.corpus import wordnet as wn

    assert "automobile" in {lemma.name() for lemma in wn.synsets("car")[0].lemmas()}


def test_hand_checked_pair():
    # "the cat sat on the mat" vs "the cat is on the mat" (6 tokens each, brevity penalty 1):
    #   1-grams 5/6 (the x2, cat, on, mat); 2-grams 3/5 (the cat, on the, the mat); 3-grams 1/4; 4-grams 0/3
    #   BLEU-1 83.33, BLEU-2 sqrt(5/6 * 3/5) = 70.71, BLEU-3 (5/6 * 3/5 * 1/4)^(1/3) = 50, BLEU-4 0 (no smoothing)
    #   Avg.B (83.33 + 70.71 + 50 + 0) / 4 = 51.01
    #   ROUGE-1 F 5/6 = 83.33; ROUGE-2 F 3/5 = 60; ROUGE-L LCS "the cat on the mat" 5/6 = 83.33
    #   METEOR: 5 exact matches, P = R = 5/6, 2 chunks ("the cat", "on the mat"): penalty 0.5 (2/5)^3 = 0.032,
    #   5/6 * (1 - 0.032) = 80.67
    scores = paper_metrics(["the cat sat on the mat"], ["the cat is on the mat"])
    expected = {"bleu2": 100 * math.sqrt(0.5), "bleu4": 0.0, "avg_bleu": (250 / 3 + 100 * math.sqrt(0.5) + 50) / 4}
    expected |= {
        "rouge1": 250 / 3,
        "rouge2": 60.0,
        "rougeL": 250 / 3,
        "meteor": 80.666667,
        "bleu1": 250 / 3,
        "bleu3": 50.0,
    }
    assert scores == pytest.approx(expected, abs=1e-4)


def test_brevity_penalty_pair():
    # "the cat" vs "the cat sat on the mat": BP = exp(1 - 6/2) = e^-2; 1- and 2-gram precision 1, no 3-/4-grams: 0.
    #   ROUGE-1 F(P 1, R 1/3) = 50; ROUGE-2 F(1, 1/5) = 33.33; ROUGE-L = 50
    #   METEOR: P 1, R 1/3, Fmean = (1/3) / (0.9 + 0.1/3) = 0.35714. NLTK's greedy aligner pairs "the" with the
    #   reference's *last* "the" (position 4), so "the" / "cat" are 2 chunks of 2 matches: penalty 0.5 (2/2)^3 = 0.5
    #   -> 17.86 (a minimal-chunk alignment, as in the METEOR paper, would give 1 chunk and 33.48).
    scores = paper_metrics(["the cat"], ["the cat sat on the mat"])
    bp = 100 * math.exp(-2)
    expected = {"bleu2": bp, "bleu4": 0.0, "avg_bleu": bp / 2, "rouge1": 50.0, "rouge2": 100 / 3, "rougeL": 50.0}
    expected |= {"meteor": 100 * (1 / 3) / (0.9 + 0.1 / 3) * 0.5}
    assert {key: scores[key] for key in expected} == pytest.approx(expected, abs=1e-4)


def test_identical_texts_score_the_maximum_and_wordnet_synonyms_count():
    text = "FIG. 3 is a perspective view of the hinge assembly of FIG. 1."  # 14 Treebank tokens
    scores = paper_metrics([text, text], [text, text])
    assert {k: scores[k] for k in ("bleu2", "bleu4", "avg_bleu", "rouge1", "rouge2", "rougeL")} == pytest.approx(
        dict.fromkeys(("bleu2", "bleu4", "avg_bleu", "rouge1", "rouge2", "rougeL"), 100.0)
    )
    assert scores["meteor"] == pytest.approx(100 * (1 - 0.5 / 14**3))  # one chunk still has a fragmentation penalty
    # "car" ~ "auto" only through WordNet: 4 of 4 matched in one chunk -> 100 (1 - 0.5 (1/4)^3) = 99.22; with "bus",
    # 3 of 4 (P = R = 3/4) in 2 chunks -> 75 (1 - 0.5 (2/3)^3) = 63.89. (NLTK looks synonyms up after Porter-stemming
    # the words, so only words that are their own stem find theirs: "large" -> "larg" would not.)
    assert paper_metrics(["the car is red"], ["the auto is red"])["meteor"] == pytest.approx(99.21875)
    assert paper_metrics(["the bus is red"], ["the auto is red"])["meteor"] == pytest.approx(
        75 * (1 - 0.5 * (2 / 3) ** 3)
    )


def test_evaluate_load_by_path_matches_the_functions():
    import evaluate

    metric = evaluate.load(str(METRIC_FILE))
    predictions = ["FIG. 2 is a side view of the bellows 10.", "the cat sat on the mat"]
    references = ["FIG. 2 is an exploded view of the guide (11).", "the cat is on the mat"]
    assert metric.compute(predictions=predictions, references=references) == pytest.approx(
        paper_metrics(predictions, references)
    )


def test_eval_command_prints_the_paper_layout_and_writes_json(tmp_path, capsys):
    rows = [
        {
            "image_id": "a",
            "type": "brief",
            "prediction": "the cat sat on the mat",
            "reference": "the cat is on the mat",
            "figure_numerals": ["10"],
            "figure_labels": ["8"],
        },
        {
            "image_id": "b",
            "type": "brief",
            "prediction": "FIG. 8 shows 10 and 12.",
            "reference": "FIG. 8 shows 10.",
            "figure_numerals": ["10", "16"],
            "figure_labels": ["8"],
            "fidelity_ocr": "drawing-0123abcd",
        },
        {"image_id": "c", "type": "detailed", "prediction": "A view.", "reference": "A view."},
    ]
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    output = tmp_path / "out" / "metrics.json"
    assert run(parser.parse_args([str(predictions), "--output", str(output)])) == 0
    printed = capsys.readouterr().out
    table = [[cell.strip() for cell in line.split("|")] for line in printed.splitlines() if "|" in line]
    assert table[0] == ["task", "model", "B-2", "B-4", "Avg.B", "R-1", "R-2", "R-L", "METEOR"]
    assert ["brief", "PatentLMM (paper)", "46.40", "36.66", "44.59", "56.68", "42.63", "54.18", "56.44"] in table
    assert ["brief", "this model (n=2)"] == table[3][:2] and table[5][:2] == ["detailed", "this model (n=1)"]
    results = json.loads(output.read_text())
    assert results["brief"]["paper"] == PAPER_RESULTS["brief"] and results["brief"]["samples"] == 2
    # fidelity: a -> no numerals in text; b -> text {10, 12}, figure {10, 16}: 1 match. Micro P 1/2, R 1/3 over both.
    assert results["brief"]["fidelity"]["numeral_precision"] == 50.0
    assert results["brief"]["fidelity"]["numeral_recall"] == pytest.approx(100 / 3)
    assert results["brief"]["fidelity"]["label_agreement"] == 100.0
    assert [s["image_id"] for s in results["brief"]["fidelity_per_sample"]] == ["a", "b"]
    # per figure: the numerals its OCR read, those the prediction mentions, and which OCR read them
    b_scores = results["brief"]["fidelity_per_sample"][1]
    assert (b_scores["figure_numerals"], b_scores["numerals_mentioned"]) == (["10", "16"], ["10"])
    assert results["brief"]["fidelity_ocr"] == ["drawing-0123abcd", "unrecorded"]
    assert "figure OCR: drawing-0123abcd, unrecorded" in printed
    assert "fidelity" not in results["detailed"] and results["detailed"]["metrics"]["rougeL"] == 100.0
    assert format_table(evaluate_predictions(predictions)) == printed.rstrip("\n")
