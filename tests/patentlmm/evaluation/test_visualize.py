"""`patentlmm.evaluation.visualize`: the OCR overlay and the numeral highlighting."""

from __future__ import annotations

from PIL import Image

from patentlmm.evaluation.numerals import References
from patentlmm.evaluation.visualize import IN_FIGURE, NOT_IN_FIGURE, highlight_numerals, ocr_overlay


def test_highlight_numerals_marks_numerals_by_whether_the_figure_has_them():
    figure = References(numerals=frozenset({"16", "11"}), labels=("8",))
    pieces = highlight_numerals("FIG. 8 shows the actuator 11 and the tank 24.", figure)
    assert pieces == [
        ("FIG. 8 shows the actuator ", None),
        ("11", IN_FIGURE),
        (" and the tank ", None),
        ("24", NOT_IN_FIGURE),
        (".", None),
    ]


def test_ocr_overlay_draws_numeral_boxes_red_and_word_boxes_blue():
    image = Image.new("RGB", (1000, 500), "white")
    overlay = ocr_overlay(image, ["16", "Figure"], [[100, 100, 200, 200], [500, 600, 700, 800]], frozenset({"16"}))
    assert overlay.size == image.size and image.getpixel((100, 50)) == (255, 255, 255)  # the input is untouched
    assert overlay.getpixel((100, 50)) == (220, 30, 30)  # left edge of the numeral's box (x 100, y 50..100)
    assert overlay.getpixel((500, 300)) == (30, 90, 220)  # left edge of the word's box (x 500, y 300..400)
    assert overlay.getpixel((150, 75)) == (255, 255, 255)  # inside a box: not filled


def test_highlight_numerals_pieces_join_back_to_the_text():
    text = "FIG. 3 shows the frame (30) with arms 11a and 11b; 2.5 mm gap."
    pieces = highlight_numerals(text, References(numerals=frozenset({"30"}), labels=("3",)))
    assert "".join(piece for piece, _ in pieces) == text
    assert [(piece, label) for piece, label in pieces if label] == [
        ("30", IN_FIGURE),
        ("11a", NOT_IN_FIGURE),
        ("11b", NOT_IN_FIGURE),
    ]


def test_figure_label_numbers_are_not_highlighted_even_when_also_a_numeral():
    pieces = highlight_numerals("FIG. 1: the guide (1).", References(numerals=frozenset({"1"}), labels=("1",)))
    assert pieces == [("FIG. 1: the guide (", None), ("1", IN_FIGURE), (").", None)]
