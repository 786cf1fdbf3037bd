"""Fixtures of the processing tests: the tiny processor and the real Tesseract's words of two bundled figures."""

from __future__ import annotations

import pytest

from processing.images import load_image
from processing.ocr_tesseract import run_tesseract

FIGURE_8 = "US20250204297A1__8"  # reference numerals 16, 11 and the label "Figure 8"
BLANK = "US20250204297A1__12"  # Tesseract finds no words


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


@pytest.fixture(scope="module")
def figure8_rgb(figures):
    return load_image(figures[FIGURE_8]["path"])


@pytest.fixture(scope="module")
def figure8_ocr(figure8_rgb):
    """(words, boxes) of FIG. 8 from the real Tesseract, once."""
    return run_tesseract(figure8_rgb)


@pytest.fixture(scope="module")
def blank_ocr(figures):
    return run_tesseract(load_image(figures[BLANK]["path"]))
