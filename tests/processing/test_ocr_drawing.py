"""The `drawing` engine (`processing/ocr_drawing.py`) on the bundled USPTO figures: ground truth read by eye."""

from __future__ import annotations

import pytest
from PIL import Image

from patentlmm.evaluation.numerals import extract_references
from processing.images import load_image
from processing.ocr_engines import load_ocr_engine
from processing.ocr_tokens import validate_boxes

FIGURE_8 = "US20250204297A1__8"  # reference numerals 16, 11 and the label "Figure 8"
FIGURE_2_NUMERALS = {"1", "2", "3", "4", "5", "6", "7", "8", "9"}  # leader lines to each part, label "Figure 2"
FIGURE_16_NUMERALS = {"28", "32", "33", "34", "35", "36", "37", "38"}  # label "Figure 16"


@pytest.fixture(scope="module")
def figure8_rgb(figures):
    return load_image(figures[FIGURE_8]["path"])


@pytest.fixture(scope="module")
def drawing():
    return load_ocr_engine("drawing")


@pytest.fixture(scope="module")
def figure2(figures):
    return load_image(figures["US20250204297A1__2"]["path"])


@pytest.fixture(scope="module")
def figure2_read(drawing, figure2):
    return drawing(figure2)


def _references(words):
    return extract_references(" ".join(words))


def _covers(box, target):
    """`box` covers more than half of `target` in each direction."""
    overlap_w = min(box[2], target[2]) - max(box[0], target[0])
    overlap_h = min(box[3], target[3]) - max(box[1], target[1])
    return overlap_w > 0.5 * (target[2] - target[0]) and overlap_h > 0.5 * (target[3] - target[1])


def test_drawing_reads_single_digit_numerals_that_page_ocr_misses(figure2_read, figure8_rgb):
    words, boxes = figure2_read
    found = _references(words)
    assert FIGURE_2_NUMERALS <= found.numerals and found.labels == ("2",)
    validate_boxes(boxes)
    # The numerals run down the left edge of the tall sheet, 1 at the top and 9 at the bottom (the label's "2" is
    # at the bottom right).
    left = {word: box for word, box in zip(words, boxes) if word in FIGURE_2_NUMERALS and box[2] < 150}
    assert sorted(left, key=lambda word: left[word][1]) == sorted(FIGURE_2_NUMERALS)


def test_drawing_reads_figure_16(drawing, figures):
    words, _ = drawing(load_image(figures["US20250204297A1__16"]["path"]))
    found = _references(words)
    assert FIGURE_16_NUMERALS <= found.numerals and "16" in found.labels


@pytest.mark.parametrize("degrees", [90, 270])
def test_landscape_sheet_is_read_like_the_upright_one_with_boxes_on_the_sheet_as_given(
    drawing, figure2, figure2_read, degrees
):
    landscape = figure2.rotate(degrees, expand=True)  # the figure turned a quarter, as on landscape sheets
    before = landscape.tobytes()
    words, boxes = drawing(landscape)
    assert landscape.tobytes() == before  # the figure itself is not changed
    assert FIGURE_2_NUMERALS <= _references(words).numerals and _references(words).labels == ("2",)
    width, height = landscape.size
    upright_words, upright_boxes = figure2_read
    assert len(words) == len(upright_words)  # the same words ...
    for word, box in zip(words, boxes):
        # ... each box, in pixels of the landscape sheet turned back upright, covering what the upright read found
        x0, y0, x1, y1 = box[0] * width / 1000, box[1] * height / 1000, box[2] * width / 1000, box[3] * height / 1000
        if degrees == 90:  # PIL turns counter-clockwise: upright (x, y) -> (y, W_upright - x)
            back = (figure2.width - y1, x0, figure2.width - y0, x1)
        else:
            back = (y0, figure2.height - x1, y1, figure2.height - x0)
        assert any(
            _covers(back, [v * s / 1000 for v, s in zip(other, (figure2.width, figure2.height) * 2)])
            for same, other in zip(upright_words, upright_boxes)
            if same == word
        ), (word, back)


def test_blank_figure_reads_no_word_with_the_drawing_engine(drawing):
    assert drawing(Image.new("RGB", (800, 1000), "white")) == ([], [])
