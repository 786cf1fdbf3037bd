"""The `rapidocr` engine (`processing/ocr_rapidocr.py`) on a bundled USPTO figure."""

from __future__ import annotations

from patentlmm.evaluation.numerals import extract_references
from processing.images import load_image
from processing.ocr_engines import load_ocr_engine
from processing.ocr_tokens import validate_boxes

FIGURE_11_NUMERALS = {"17", "18", "19", "20"}  # label "Figure 11"


def _references(words):
    return extract_references(" ".join(words))


def test_rapidocr_reads_the_numerals_and_label_of_figure_11(figures):
    image = load_image(figures["US20250204297A1__11"]["path"])
    words, boxes = load_ocr_engine("rapidocr")(image)
    found = _references(words)
    assert FIGURE_11_NUMERALS <= found.numerals and "11" in found.labels
    validate_boxes(boxes)
    assert len(boxes) == len(words)
    # "Figure 11" is one line split into two words: "Figure" left of "11", same height, bottom right of the sheet.
    figure, number = words.index("Figure"), words.index("Figure") + 1
    assert words[number] == "11" and boxes[figure][2] <= boxes[number][0] and boxes[figure][1] > 900
