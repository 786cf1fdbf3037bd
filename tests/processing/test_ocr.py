"""Behaviour of `processing/ocr.py` with the real Tesseract binary on the bundled USPTO figures and the real
LayoutLMv3 (RoBERTa BPE) tokenizer of the tiny processor.

Each figure is OCR'd at most once per module (Tesseract takes ~0.5-1 s a page).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import pytesseract
import pytest
import torch
from PIL import Image

from helpers import REPO, run_outside_repo
from patentlmm.evaluation.numerals import extract_references
from processing.constants import DEFAULT_MAX_OCR_TOKENS, OCR_PAD_BOX
from processing.images import load_image
from processing.ocr_engine import TesseractNotAvailableError
from processing.ocr_engines import (
    DEFAULT_OCR_ENGINE,
    OCR_ENGINES,
    PAPER_OCR_ENGINE,
    load_ocr_engine,
    ocr_engine_from_dict,
)
from processing.ocr_tesseract import TesseractEngine, run_tesseract
from processing.ocr_tokens import ocr_tokens_from_official, tokenize_ocr, truncate_ocr, validate_boxes
from processing.prompts import build_prompt

FIGURE_8 = "US20250204297A1__8"  # reference numerals 16, 11 and the label "Figure 8"
BLANK = "US20250204297A1__12"  # Tesseract finds no words


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


@pytest.fixture(scope="module")
def ocr_tokenizer(processor):
    return processor.ocr_tokenizer


@pytest.fixture(scope="module")
def figure8_rgb(figures):
    return load_image(figures[FIGURE_8]["path"])


@pytest.fixture(scope="module")
def figure8_ocr(figure8_rgb):
    """(words, boxes) of FIG. 8 from the real Tesseract, once."""
    return run_tesseract(figure8_rgb)


# ---------------------------------------------------------------------------------------------- run_tesseract


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


@pytest.fixture(scope="module")
def blank_ocr(figures):
    return run_tesseract(load_image(figures[BLANK]["path"]))


def test_blank_figure_has_no_words(blank_ocr):
    assert blank_ocr == ([], [])


def test_blank_figure_tokenises_to_cls_and_sep(blank_ocr, ocr_tokenizer):
    ids, boxes = tokenize_ocr(ocr_tokenizer, *blank_ocr)
    assert ids == [ocr_tokenizer.cls_token_id, ocr_tokenizer.sep_token_id] == [0, 2]
    assert boxes == [OCR_PAD_BOX, OCR_PAD_BOX]


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


# ---------------------------------------------------------------------------------------------- missing binary


@pytest.fixture
def no_tesseract_on_path(tmp_path, monkeypatch):
    """A real absence: PATH is an empty folder, and pytesseract looks the binary up by name."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "tesseract")
    assert shutil.which("tesseract") is None


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


# ---------------------------------------------------------------------------------------------- validate_boxes


def test_validate_boxes_accepts_valid_boxes():
    validate_boxes([[0, 0, 0, 0], [0, 0, 1000, 1000], [10, 20, 10, 20], [1, 2, 3, 4]])
    validate_boxes([])


@pytest.mark.parametrize(
    "bad",
    [[5, 0, 4, 10], [0, 7, 10, 6], [0, 0, 1001, 10], [-1, 0, 10, 10], [0, 0, 10], [0, 0, 10, 10, 10]],
    ids=["x0>x1", "y0>y1", "over-1000", "negative", "three-values", "five-values"],
)
def test_validate_boxes_names_the_first_bad_box(bad):
    with pytest.raises(ValueError) as caught:
        validate_boxes([[0, 0, 10, 10], bad, [-5, -5, -5, -5]])
    message = str(caught.value)
    assert message.startswith(f"OCR boxes[1] = {bad} ")
    assert "0-1000" in message


def test_validate_boxes_uses_the_given_name():
    with pytest.raises(ValueError, match=r"^ocr_boxes\[0\]\[0\] = \[0, 0, 2000, 1\]"):
        validate_boxes([(0, 0, 2000, 1)], what="ocr_boxes[0]")


# ---------------------------------------------------------------------------------------------- truncate_ocr


def test_truncate_keeps_first_max_minus_one_and_the_last_token():
    ids = list(range(10))
    boxes = [[i, i, i + 1, i + 1] for i in range(10)]
    kept_ids, kept_boxes = truncate_ocr(ids, boxes, max_tokens=5)
    assert kept_ids == [0, 1, 2, 3, 9]
    assert kept_boxes == [[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3], [3, 3, 4, 4], [9, 9, 10, 10]]
    assert ids == list(range(10)) and len(boxes) == 10  # inputs untouched


def test_truncate_leaves_short_sequences_alone_and_returns_copies():
    ids, boxes = [0, 5, 2], [[0, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0]]
    for max_tokens in (3, 4, DEFAULT_MAX_OCR_TOKENS):
        kept_ids, kept_boxes = truncate_ocr(ids, boxes, max_tokens)
        assert kept_ids == ids and kept_boxes == boxes
        assert kept_ids is not ids and kept_boxes[1] is not boxes[1]


def test_truncate_default_is_512():
    ids = list(range(600))
    boxes = [[0, 0, 0, 0]] * 600
    kept_ids, kept_boxes = truncate_ocr(ids, boxes)
    assert len(kept_ids) == len(kept_boxes) == 512
    assert kept_ids == list(range(511)) + [599]


def test_truncate_rejects_unpaired_ids_and_boxes():
    with pytest.raises(ValueError, match="3 OCR token ids but 2 boxes"):
        truncate_ocr([1, 2, 3], [[0, 0, 0, 0]] * 2)


# ---------------------------------------------------------------------------------------------- tokenize_ocr


def test_tokenize_ocr_matches_the_layoutlmv3_tokenizer(ocr_tokenizer, figure8_ocr):
    words, boxes = figure8_ocr
    ids, token_boxes = tokenize_ocr(ocr_tokenizer, words, boxes)
    reference = ocr_tokenizer(words, boxes=boxes)
    assert ids == reference["input_ids"] and token_boxes == reference["bbox"]
    assert ids[0] == ocr_tokenizer.cls_token_id and ids[-1] == ocr_tokenizer.sep_token_id
    assert token_boxes[0] == token_boxes[-1] == OCR_PAD_BOX
    assert len(ids) > len(words)  # some words split into several BPE tokens ("meee", "LLL", ...)
    assert all(box in boxes for box in token_boxes[1:-1])  # each token carries its word's box
    assert ocr_tokenizer.decode(ids, skip_special_tokens=True).split() == words


def test_tokenize_ocr_truncates_to_max_keeping_sep(ocr_tokenizer, figure8_ocr):
    words, boxes = figure8_ocr
    full_ids, full_boxes = tokenize_ocr(ocr_tokenizer, words, boxes)
    ids, token_boxes = tokenize_ocr(ocr_tokenizer, words, boxes, max_tokens=6)
    assert len(ids) == len(token_boxes) == 6
    assert ids == full_ids[:5] + [ocr_tokenizer.sep_token_id]
    assert token_boxes == full_boxes[:5] + [OCR_PAD_BOX]


def test_tokenize_ocr_long_page_is_capped_at_512(ocr_tokenizer):
    words = [f"{100 + i}" for i in range(700)]
    boxes = [[i % 1000, 0, i % 1000, 10] for i in range(700)]
    ids, token_boxes = tokenize_ocr(ocr_tokenizer, words, boxes)
    assert len(ids) == len(token_boxes) == DEFAULT_MAX_OCR_TOKENS
    assert ids[0] == ocr_tokenizer.cls_token_id and ids[-1] == ocr_tokenizer.sep_token_id
    assert ids[1:511] == ocr_tokenizer(words, boxes=boxes)["input_ids"][1:511]


def test_tokenize_ocr_rejects_mismatched_or_invalid_boxes(ocr_tokenizer):
    with pytest.raises(ValueError, match="2 OCR words but 1 boxes"):
        tokenize_ocr(ocr_tokenizer, ["a", "b"], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"OCR boxes\[1\] = \[0, 0, 1, 1200\]"):
        tokenize_ocr(ocr_tokenizer, ["a", "b"], [[0, 0, 1, 1], [0, 0, 1, 1200]])


# ---------------------------------------------------------------------------------------------- official ocr.json


def _official_entry(ocr_tokenizer, words, boxes, pad_to=None) -> dict:
    """An `ocr.json` value as the original wrote it: a batch of one, lists, optionally padded, through JSON."""
    kwargs = {"padding": "max_length", "max_length": pad_to} if pad_to else {}
    encoding = ocr_tokenizer([words], boxes=[boxes], **kwargs)
    entry = {key: encoding[key] for key in ("input_ids", "attention_mask", "bbox")}
    return json.loads(json.dumps(entry))


def test_official_entry_with_padding_is_unwrapped_and_stripped(ocr_tokenizer, figure8_ocr):
    words, boxes = figure8_ocr
    expected = tokenize_ocr(ocr_tokenizer, words, boxes)
    entry = _official_entry(ocr_tokenizer, words, boxes, pad_to=len(expected[0]) + 7)
    assert isinstance(entry["input_ids"][0], list) and isinstance(entry["bbox"][0][0], list)  # nested batch of one
    assert entry["input_ids"][0][-1] == ocr_tokenizer.pad_token_id and entry["attention_mask"][0][-1] == 0
    assert ocr_tokens_from_official(entry) == expected


def test_official_entry_over_512_is_truncated_keeping_the_last(ocr_tokenizer):
    words = [f"w{i}" for i in range(600)]
    boxes = [[1, 2, 3, 4]] * 600
    entry = _official_entry(ocr_tokenizer, words, boxes)
    full = entry["input_ids"][0]
    assert len(full) > 600
    ids, token_boxes = ocr_tokens_from_official(entry)
    assert ids == full[:511] + [ocr_tokenizer.sep_token_id]
    assert len(token_boxes) == 512 and token_boxes[-1] == OCR_PAD_BOX and token_boxes[1] == [1, 2, 3, 4]
    assert ocr_tokens_from_official(entry, max_tokens=8)[0] == full[:7] + [2]


def test_official_entry_flat_and_without_mask_is_accepted():
    entry = {"input_ids": [0, 11295, 2], "bbox": [[0, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0]]}
    assert ocr_tokens_from_official(entry) == (entry["input_ids"], entry["bbox"])
    entry["attention_mask"] = [1, 1, 0]
    assert ocr_tokens_from_official(entry) == ([0, 11295], [[0, 0, 0, 0], [1, 2, 3, 4]])


def test_official_entry_errors():
    with pytest.raises(ValueError, match="needs 'input_ids' and 'bbox'"):
        ocr_tokens_from_official({"input_ids": [[0, 2]]})
    with pytest.raises(ValueError, match="needs 'input_ids' and 'bbox'"):
        ocr_tokens_from_official(None)
    with pytest.raises(ValueError, match=r"OCR boxes\[1\]"):
        ocr_tokens_from_official({"input_ids": [[0, 5, 2]], "bbox": [[[0, 0, 0, 0], [9, 0, 1, 0], [0, 0, 0, 0]]]})
    with pytest.raises(ValueError, match="3 OCR token ids but 2 boxes"):
        ocr_tokens_from_official({"input_ids": [[0, 5, 2]], "bbox": [[[0, 0, 0, 0], [0, 0, 0, 0]]]})


# ---------------------------------------------------------------------------------------------- OCR engines
# Ground truth read by eye on the sheets (the numerals drawn on them, and their own label).
FIGURE_2_NUMERALS = {"1", "2", "3", "4", "5", "6", "7", "8", "9"}  # leader lines to each part, label "Figure 2"
FIGURE_11_NUMERALS = {"17", "18", "19", "20"}  # label "Figure 11"
FIGURE_16_NUMERALS = {"28", "32", "33", "34", "35", "36", "37", "38"}  # label "Figure 16"


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


@pytest.mark.parametrize("config", ["", "--psm 11"])
def test_tesseract_engine_equals_layoutlmv3_image_processor_word_for_word_and_box_for_box(figure8_rgb, config):
    from transformers import LayoutLMv3ImageProcessor

    engine = load_ocr_engine("tesseract", config=config)
    expected = LayoutLMv3ImageProcessor(apply_ocr=True, tesseract_config=config)(figure8_rgb, return_tensors=None)
    words, boxes = engine(figure8_rgb)
    assert words == expected["words"][0] and words
    assert boxes == [list(box) for box in expected["boxes"][0]]


def test_engines_are_listed_and_unknown_names_rejected():
    assert list(OCR_ENGINES) == ["tesseract", "rapidocr", "drawing"]
    assert (PAPER_OCR_ENGINE, DEFAULT_OCR_ENGINE) == ("tesseract", "drawing")
    with pytest.raises(ValueError, match=r"Unknown OCR engine 'paddle'; choose one of \['drawing', 'rapidocr'"):
        load_ocr_engine("paddle")


def test_engine_settings_round_trip_and_keys_separate_engines_and_settings():
    engines = [
        load_ocr_engine("tesseract"),
        load_ocr_engine("tesseract", config="--psm 11"),
        load_ocr_engine("tesseract", lang="deu"),
        load_ocr_engine("rapidocr"),
        load_ocr_engine("drawing"),
        load_ocr_engine("drawing", det_side=1280),
    ]
    assert len({engine.key for engine in engines}) == len(engines)
    for engine in engines:
        spec = json.loads(json.dumps(engine.to_dict()))
        assert ocr_engine_from_dict(spec) == engine and ocr_engine_from_dict(spec).key == engine.key
    assert engines[1].to_dict() == {"engine": "tesseract", "lang": None, "config": "--psm 11"}
    assert engines[0].key.startswith("tesseract-") and len(engines[0].key) == len("tesseract-") + 8


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


def _covers(box, target):
    """`box` covers more than half of `target` in each direction."""
    overlap_w = min(box[2], target[2]) - max(box[0], target[0])
    overlap_h = min(box[3], target[3]) - max(box[1], target[1])
    return overlap_w > 0.5 * (target[2] - target[0]) and overlap_h > 0.5 * (target[3] - target[1])


def test_blank_figure_reads_no_word_with_the_drawing_engine(drawing):
    assert drawing(Image.new("RGB", (800, 1000), "white")) == ([], [])


def test_missing_optional_engine_names_the_pip_extra(tmp_path):
    """A real absence: the child's import system cannot find rapidocr_onnxruntime."""
    script = (
        "import sys; sys.modules['rapidocr_onnxruntime'] = None\n"
        "from PIL import Image\n"
        "from processing.ocr_engine import OcrEngineNotInstalledError\n"
        "from processing.ocr_engines import load_ocr_engine\n"
        "try:\n"
        "    load_ocr_engine('drawing')(Image.new('RGB', (64, 64), 'white'))\n"
        "except OcrEngineNotInstalledError as error:\n"
        "    print('ERROR', error)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ERROR" in result.stdout and "pip install 'patentlmm[ocr]'" in result.stdout


def test_processor_saves_and_reloads_its_engine(processor, tmp_path):
    custom = copy.copy(processor)
    custom.ocr_engine = load_ocr_engine("drawing", det_side=1280)
    custom.save_pretrained(tmp_path / "p")
    saved = json.loads((tmp_path / "p" / "processor_config.json").read_text())
    assert saved["ocr_engine"] == {**load_ocr_engine("drawing").to_dict(), "det_side": 1280}
    assert type(custom).from_pretrained(tmp_path / "p").ocr_engine == custom.ocr_engine
    # Folders saved before engines existed (ocr_lang / tesseract_config, no ocr_engine) load with Tesseract.
    del saved["ocr_engine"]
    saved.update(ocr_lang="eng", tesseract_config="--psm 11")
    (tmp_path / "p" / "processor_config.json").write_text(json.dumps(saved))
    assert type(custom).from_pretrained(tmp_path / "p").ocr_engine == TesseractEngine("eng", "--psm 11")
    with pytest.raises(ValueError, match="inside ocr_engine"):
        type(custom).from_pretrained(tmp_path / "p", ocr_engine="drawing")
    overridden = type(custom).from_pretrained(tmp_path / "p", ocr_engine="drawing", ocr_lang=None, tesseract_config="")
    assert overridden.ocr_engine == load_ocr_engine("drawing")


_LOAD_ENGINE_WITH_TRANSFORMERS4 = """
import json, sys, transformers
from transformers import AutoProcessor
processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
print(json.dumps({"transformers": transformers.__version__, "engine": processor.ocr_engine.to_dict()}))
"""


def test_transformers4_loads_the_processor_with_its_engine(processor, tmp_path, transformers4_python):
    custom = copy.copy(processor)
    custom.ocr_engine = load_ocr_engine("drawing", det_side=1280)
    folder = tmp_path / f"engine-{tmp_path.name}"  # a fresh name: transformers caches remote code by folder name
    custom.save_pretrained(folder)
    script = tmp_path / "load.py"
    script.write_text(_LOAD_ENGINE_WITH_TRANSFORMERS4)
    report = json.loads(run_outside_repo(transformers4_python, script, str(folder)).splitlines()[-1])
    assert report["transformers"].startswith("4.")
    assert report["engine"] == custom.ocr_engine.to_dict()


# ---------------------------------------------------------------------------------------------- patentlmm ocr


def test_ocr_command_json_lines_and_bad_files(figures, tmp_path, capsys):
    from patentlmm.cli import main

    path = figures["US20250204297A1__12"]["path"]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert main(["ocr", str(path), str(broken), "--engine", "tesseract", "--settings", '{"config": "--psm 11"}',
                 "--json"]) == 1
    out, err = capsys.readouterr()
    (line,) = out.splitlines()
    read = json.loads(line)
    expected = run_tesseract(load_image(path), config="--psm 11")
    assert read == {"image": str(path), "engine": "tesseract", "words": expected[0], "boxes": expected[1]}
    assert f"patentlmm ocr: {broken}:" in err


def test_ocr_command_drawing_engine_and_list(figures, capsys):
    from patentlmm.cli import main

    assert main(["ocr", str(figures["US20250204297A1__12"]["path"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{figures['US20250204297A1__12']['path']} (drawing, ") and " 21" in out
    assert main(["ocr", "--list-engines"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in listed] == list(OCR_ENGINES)
    assert listed[-1].endswith("(default)")
