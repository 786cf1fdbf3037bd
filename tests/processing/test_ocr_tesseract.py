"""The `tesseract` engine (`processing/ocr_tesseract.py`) with the real binary on the bundled 1-bit USPTO sheets:
a file and its image read the same, the time limit stops Tesseract, a failure names the settings it ran with."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from helpers import FIGURES
from processing.images import load_image
from processing.ocr_engine import OcrTimeoutError
from processing.ocr_engines import load_ocr_engine
from processing.ocr_tesseract import TesseractEngine, TesseractFailedError, is_bilevel_png

FIGURE_8 = FIGURES / "US20250204297A1__8.png"  # a dozen words

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="the tesseract binary is not installed")


def test_a_1_bit_png_read_from_its_file_equals_its_rgb_image(tmp_path):
    engine = TesseractEngine()
    assert is_bilevel_png(FIGURE_8) and Image.open(FIGURE_8).mode == "1"
    from_file = engine(FIGURE_8)
    assert from_file == engine(load_image(FIGURE_8)) and from_file[0]
    grey = tmp_path / "grey.png"  # not 1-bit: loaded as RGB first, the same words
    Image.open(FIGURE_8).convert("L").save(grey)
    assert not is_bilevel_png(grey) and engine(grey) == from_file


def test_the_time_limit_stops_tesseract():
    with pytest.raises(OcrTimeoutError, match=r"tesseract timed out after 0.001 s"):
        TesseractEngine()(FIGURE_8, timeout=0.001)


def test_a_tesseract_failure_names_the_settings_it_ran_with():
    """Tesseract exits 1 with no message at all for some flags (`--psm 99` is refused before it runs); with an
    unknown flag it says so, and the error adds the settings to look at."""
    engine = load_ocr_engine("tesseract", config="--bogus")
    with pytest.raises(TesseractFailedError) as raised:
        engine(FIGURE_8)
    message = str(raised.value)
    assert message.startswith("tesseract failed (exit status 1): Error, unknown command line argument '--bogus'")
    assert "lang=None and config='--bogus'" in message
    with pytest.raises(TesseractFailedError, match=r"Failed loading language 'xx'.*lang='xx'"):
        load_ocr_engine("tesseract", lang="xx")(FIGURE_8)
