"""Reference numerals and figure labels from real patent sentences and from real Tesseract OCR."""

from __future__ import annotations

import pytest

from patentlmm.evaluation.numerals import References, aggregate_fidelity, extract_references, fidelity
from processing import load_image, run_tesseract


@pytest.fixture(scope="module")
def descriptions(figures) -> dict[str, str]:
    """Brief descriptions of the 19 bundled figures."""
    return {image_id: entry["brief_description"] for image_id, entry in figures.items()}


def test_real_sentences(descriptions):
    fig10 = descriptions[
        "US20250204297A1__10"
    ]  # "FIG. 10: is a view of FIG. 9 with the fixing devices (12) and (14) ..."
    assert extract_references(fig10) == References(frozenset({"12", "14"}), ("10", "9"))
    fig8 = extract_references(descriptions["US20250204297A1__8"])
    assert fig8.labels[:2] == ("8", "7") and {"10", "1", "2"} <= fig8.numerals
    if "US20250204297A1__18" in descriptions:  # "... results of Test No. 1 ... guide (11) ... Test 2: ..."
        assert extract_references(descriptions["US20250204297A1__18"]) == References(frozenset({"11"}), ("18",))


def test_every_bundled_brief_description_names_its_own_figure_first(descriptions):
    for image_id, text in descriptions.items():
        assert extract_references(text).labels[0] == image_id.split("__")[1]


@pytest.mark.parametrize(
    ("text", "numerals", "labels"),
    [
        ("FIGS. 3-5 show the fuel nozzle 402 and arm 11a", {"402", "11a"}, ("3", "4", "5")),
        ("Figures 3, 4A and 6 show rods 7' and 8", {"7'", "8"}, ("3", "4a", "6")),
        ("FIG.2 shows a 5 mm bolt M8, 2.5 turns, 30° and 45%, step 3, claim 4, No. 6 and part 12345", set(), ("2",)),
        ("the bellows 10 in the position of FIG. 9", {"10"}, ("9",)),
    ],
)
def test_rule_cases(text, numerals, labels):
    assert extract_references(text) == References(frozenset(numerals), labels)


def test_real_tesseract_ocr_of_figure_8(figures):
    """The sheet shows reference numerals 16 and 11 (as "11 a" after a leader line) and the label "Figure 8"."""
    words, _ = run_tesseract(load_image(figures["US20250204297A1__8"]["path"]))
    found = extract_references(" ".join(words))
    assert {"16", "11"} <= found.numerals and found.labels == ("8",)


def test_fidelity_scores_and_aggregate():
    figure = References(frozenset({"10", "16", "11"}), ("8",))
    # text numerals {10, 2}: 1 of 2 in the figure (precision 1/2); figure numerals: 1 of 3 mentioned (recall 1/3).
    one = fidelity("FIG. 8 is a view of FIG. 7 showing the bellows (10) and the piston (2).", figure)
    assert one["numeral_precision"] == 0.5 and one["numeral_recall"] == pytest.approx(1 / 3)
    assert one["label_agreement"] == 1.0
    two = fidelity("FIG. 7 is a section showing 16 and 11.", figure)  # wrong figure label, both numerals right
    assert (two["numeral_precision"], two["numeral_recall"], two["label_agreement"]) == (1.0, pytest.approx(2 / 3), 0.0)
    none = fidelity("A view.", References(frozenset(), ()))
    assert none["numeral_precision"] is None and none["numeral_recall"] is None and none["label_agreement"] is None
    total = aggregate_fidelity([one, two, none])
    # micro: matched 1 + 2 = 3; in text 2 + 2 = 4; in figure 3 + 3 = 6; label agreement mean(1, 0) over 2 samples.
    assert total["numeral_precision"] == 75.0 and total["numeral_recall"] == 50.0
    assert total["label_agreement"] == 50.0 and total["label_agreement_samples"] == 2 and total["samples"] == 3
