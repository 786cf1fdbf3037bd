"""The `tesseract` engine (`processing/ocr_tesseract.py`) with the real binary on the bundled 1-bit USPTO sheets:
`LayoutLMv3ImageProcessor(apply_ocr=True)`'s words and boxes, a file and its image read the same, the time limit
stops Tesseract, a failure names the settings it ran with, a missing binary says how to install it.

Each figure is OCR'd at most once per module (Tesseract takes ~0.5-1 s a page)."""

from __future__ import annotations

import copy
import os
import shutil

import pytesseract
import pytest
import torch
from PIL import Image

from helpers import FIGURES
from processing.images import load_image
from processing.ocr_base import OcrTimeoutError, TesseractNotAvailableError
from processing.ocr_engines import load_ocr_engine
from processing.ocr_tesseract import TesseractEngine, TesseractFailedError, is_bilevel_png, run_tesseract
from processing.ocr_tokens import tokenize_ocr, validate_boxes
from processing.prompts import build_prompt

FIGURE_8 = "US20250204297A1__8"  # reference numerals 16, 11 and the label "Figure 8"
FIGURE_8_PNG = FIGURES / f"{FIGURE_8}.png"
BLANK = "US20250204297A1__12"  # Tesseract finds no words
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="the tesseract binary is not installed")


@needs_tesseract
def test_a_1_bit_png_read_from_its_file_equals_its_rgb_image(tmp_path):
    engine = TesseractEngine()
    assert is_bilevel_png(FIGURE_8_PNG) and Image.open(FIGURE_8_PNG).mode == "1"
    from_file = engine(FIGURE_8_PNG)
    assert from_file == engine(load_image(FIGURE_8_PNG)) and from_file[0]
    grey = tmp_path / "grey.png"  # not 1-bit: loaded as RGB first, the same words
    Image.open(FIGURE_8_PNG).convert("L").save(grey)
    assert not is_bilevel_png(grey) and engine(grey) == from_file


@needs_tesseract
def test_the_time_limit_stops_tesseract():
    with pytest.raises(OcrTimeoutError, match=r"tesseract timed out after 0.001 s"):
        TesseractEngine()(FIGURE_8_PNG, timeout=0.001)


@needs_tesseract
def test_a_tesseract_failure_names_the_settings_it_ran_with():
    """Tesseract exits 1 with no message at all for some flags (`--psm 99` is refused before it runs); with an
    unknown flag it says so, and the error adds the settings to look at."""
    engine = load_ocr_engine("tesseract", config="--bogus")
    with pytest.raises(TesseractFailedError) as raised:
        engine(FIGURE_8_PNG)
    message = str(raised.value)
    assert message.startswith("tesseract failed (exit status 1): Error, unknown command line argument '--bogus'")
    assert "lang=None and config='--bogus'" in message
    with pytest.raises(TesseractFailedError, match=r"Failed loading language 'xx'.*lang='xx'"):
        load_ocr_engine("tesseract", lang="xx")(FIGURE_8_PNG)


@pytest.fixture
def no_tesseract_on_path(tmp_path, monkeypatch):
    """A real absence: PATH is an empty folder, and pytesseract looks the binary up by name."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "tesseract")
    assert shutil.which("tesseract") is None


def test_tesseract_reads_the_label_and_reference_numerals(figure8_ocr):
    words, boxes = figure8_ocr
    assert "Figure" in words and "8" in words
    assert words.index("8") == words.index("Figure") + 1  # "Figure 8", in reading order
    assert {"16", "11"} <= set(words)  # reference numerals of the drawing
    assert all(isinstance(word, str) and word.strip() == word and word for word in words)
    label, number = boxes[words.index("Figure")], boxes[words.index("8")]
    assert number[0] > label[2]  # "8" is right of "Figure"
    assert label[1] > 900  # the label sits at the bottom of the sheet


def test_tesseract_boxes_are_normalised_to_0_1000_integers(figure8_ocr):
    words, boxes = figure8_ocr
    assert len(boxes) == len(words) > 0
    for box in boxes:
        assert len(box) == 4 and all(type(v) is int for v in box)
        assert 0 <= box[0] <= box[2] <= 1000 and 0 <= box[1] <= box[3] <= 1000
    validate_boxes(boxes)


def test_run_tesseract_equals_layoutlmv3_image_processor_apply_ocr(figure8_rgb, figure8_ocr):
    """The original ran `LayoutLMv3ImageProcessor(apply_ocr=True)`: same words and boxes, word for word."""
    from transformers import LayoutLMv3ImageProcessor

    reference = LayoutLMv3ImageProcessor(apply_ocr=True)(figure8_rgb)
    assert reference["words"] == [figure8_ocr[0]]
    assert [[list(map(int, box)) for box in reference["boxes"][0]]] == [figure8_ocr[1]]


def test_run_tesseract_caps_openmp_threads_of_tesseract_alone_unless_already_set(figure8_rgb, monkeypatch, tmp_path):
    """The real `tesseract`, started through a script that records the limit it was given; this process's
    environment stays untouched (vLLM's CPU kernels, started later in a child, crawl under the limit)."""
    import shutil

    import pytesseract

    seen = tmp_path / "omp_thread_limit"
    wrapper = tmp_path / "tesseract"
    script = f'echo "${{OMP_THREAD_LIMIT:-unset}}" >> {seen}\nexec {shutil.which("tesseract")} "$@"\n'
    wrapper.write_text("#!/bin/sh\n" + script)
    wrapper.chmod(0o755)
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(wrapper))
    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    small = figure8_rgb.crop((0, 0, 64, 64))  # a tiny blank corner: fast
    assert run_tesseract(small) == ([], [])
    assert "OMP_THREAD_LIMIT" not in os.environ
    assert seen.read_text().split()[-1] == "1"  # the OCR run (pytesseract may ask `tesseract --version` first)
    monkeypatch.setenv("OMP_THREAD_LIMIT", "2")
    run_tesseract(small)
    assert os.environ["OMP_THREAD_LIMIT"] == "2"
    assert seen.read_text().split()[-1] == "2"
    monkeypatch.delenv("OMP_THREAD_LIMIT")
    pytesseract.image_to_data(small)  # pytesseract called directly (as LayoutLMv3's apply_ocr does): no limit added
    assert seen.read_text().split()[-1] == "unset"


def test_blank_figure_has_no_words(blank_ocr):
    assert blank_ocr == ([], [])


def test_blank_figure_through_the_whole_processor_with_tesseract(figures, tiny):
    """No words -> `<s></s>` (2 OCR tokens) -> 2 - 1 + 577 = 578 placeholders; the tiny model runs on it."""
    model, processor = tiny
    processor = copy.copy(processor)
    processor.ocr_engine = TesseractEngine()  # on which the paper's OCR finds no word
    out = processor(images=figures[BLANK]["path"], text=build_prompt("brief"))
    assert out["ocr_input_ids"].tolist() == [[0, 2]]
    assert out["ocr_attention_mask"].tolist() == [[1, 1]]
    assert out["ocr_bbox"].tolist() == [[[0, 0, 0, 0], [0, 0, 0, 0]]]
    assert int((out["input_ids"] == model.config.image_token_id).sum()) == 2 - 1 + 577
    with torch.no_grad():
        result = model(**out)
    assert result.image_hidden_states.shape[0] == 578
    assert torch.isfinite(result.logits).all()


def test_missing_tesseract_binary_raises_with_install_hint(no_tesseract_on_path, figure8_rgb):
    with pytest.raises(TesseractNotAvailableError) as caught:
        run_tesseract(figure8_rgb)
    message = str(caught.value)
    assert "apt-get install tesseract-ocr" in message
    assert "ocr_words" in message  # and says how to avoid Tesseract altogether
    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value.__cause__, pytesseract.TesseractNotFoundError)


def test_processor_without_tesseract_raises_but_precomputed_ocr_still_works(
    no_tesseract_on_path, figures, processor, figure8_ocr
):
    processor = copy.copy(processor)
    processor.ocr_engine = TesseractEngine()
    path, prompt = figures[FIGURE_8]["path"], build_prompt("brief")
    with pytest.raises(TesseractNotAvailableError, match="apt-get install tesseract-ocr"):
        processor(images=path, text=prompt)
    words, boxes = figure8_ocr
    out = processor(images=path, text=prompt, ocr_words=[words], ocr_boxes=[boxes])
    assert out["ocr_input_ids"].shape[1] == len(tokenize_ocr(processor.ocr_tokenizer, words, boxes)[0])


@pytest.mark.parametrize("config", ["", "--psm 11"])
def test_tesseract_engine_equals_layoutlmv3_image_processor_word_for_word_and_box_for_box(figure8_rgb, config):
    from transformers import LayoutLMv3ImageProcessor

    engine = load_ocr_engine("tesseract", config=config)
    expected = LayoutLMv3ImageProcessor(apply_ocr=True, tesseract_config=config)(figure8_rgb, return_tensors=None)
    words, boxes = engine(figure8_rgb)
    assert words == expected["words"][0] and words
    assert boxes == [list(box) for box in expected["boxes"][0]]
