"""`PatentLMMProcessor.prepare` on the bundled figures with the tiny processor's real engine and tokenizers: each
figure prepared once is what `__call__` feeds the model, and a bad figure of a batch is named by its index."""

from __future__ import annotations

import copy

import pytest
import torch
from PIL import Image

from processing.ocr_tokens import tokenize_ocr
from processing.prepared_figures import FigureError, PreparedFigure
from processing.prompts import build_prompt

FIG8, FIG12 = "US20250204297A1__8", "US20250204297A1__12"


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


@pytest.fixture(scope="module")
def paths(figures):
    return [figures[FIG8]["path"], figures[FIG12]["path"]]


@pytest.fixture(scope="module")
def prepared(processor, paths) -> list[PreparedFigure]:
    """The two figures prepared by the processor's own OCR engine (read once for the module)."""
    return processor.prepare(paths)


def test_a_prepared_figure_holds_the_image_ocr_tokens_and_feature_count(processor, paths, prepared):
    for path, figure in zip(paths, prepared):
        assert figure.image.mode == "RGB" and figure.image.size == Image.open(path).size
        assert (figure.ocr_words, figure.ocr_boxes) == processor.ocr(path)
        ids, boxes = tokenize_ocr(processor.ocr_tokenizer, figure.ocr_words, figure.ocr_boxes, processor.max_ocr_tokens)
        assert (figure.ocr_input_ids, figure.ocr_bbox) == (ids, boxes)
        assert figure.num_image_features == processor.num_image_features(len(ids))
    assert len(prepared[0].ocr_input_ids) != len(prepared[1].ocr_input_ids)  # different lengths: a real sort key


def test_call_on_prepared_figures_equals_call_on_the_files(processor, paths, prepared):
    text = [build_prompt("brief")] * 2
    from_files = processor(images=paths, text=text)
    from_prepared = processor(images=prepared, text=text)
    assert set(from_files) == set(from_prepared)
    for key in from_files:
        assert torch.equal(from_files[key], from_prepared[key]), key
    image_id = processor.image_token_id
    counts = (from_prepared["input_ids"] == image_id).sum(dim=1).tolist()
    assert counts == [figure.num_image_features for figure in prepared]


def test_prepared_figures_are_not_read_again(processor, prepared):
    """A prepared figure carries its OCR: no engine runs (this processor's engine cannot run at all)."""
    blind = copy.copy(processor)
    blind.ocr_engine = None  # calling it would raise TypeError
    assert blind.prepare(prepared) == prepared
    out = blind(images=prepared, text=[build_prompt("brief")] * 2)
    assert out["ocr_input_ids"].shape[0] == 2


def test_official_tokens_give_no_words(processor, paths):
    official = {"input_ids": [[0, 5, 6, 2]], "bbox": [[[0, 0, 0, 0], [1, 2, 3, 4], [1, 2, 3, 4], [0, 0, 0, 0]]]}
    (figure,) = processor.prepare([paths[0]], ocr=[official])
    assert figure.ocr_words is None and figure.ocr_boxes is None
    assert figure.ocr_input_ids == [0, 5, 6, 2] and figure.num_image_features == processor.num_image_features(4)


@pytest.mark.parametrize(
    ("words", "boxes", "message"),
    [
        (["12", "14"], [[1, 2, 3, 4]], r"Figure 1: 2 OCR words but 1 boxes: give one box per word"),
        (["12"], [[30, 2, 10, 4]], r"Figure 1: OCR boxes\[0\] = \[30, 2, 10, 4\] is not a box"),
        (["12", None], [[1, 2, 3, 4], [1, 2, 3, 4]], r"Figure 1: ocr_words must be a list of strings, found None"),
        ("12", [[1, 2, 3, 4]], r"Figure 1: ocr_words must be a list of strings, found '12'"),
        (None, [[1, 2, 3, 4]], r"Figure 1: ocr_boxes were given without ocr_words"),
    ],
)
def test_batch_errors_name_the_figure(processor, paths, words, boxes, message):
    good = (["10"], [[1, 2, 3, 4]])
    arguments = {"ocr_words": [good[0], words], "ocr_boxes": [good[1], boxes]}
    with pytest.raises(FigureError, match=message):
        processor.prepare(paths, **arguments)
    with pytest.raises(ValueError, match=message):  # the call that builds on it says the same
        processor(images=paths, text=[build_prompt("brief")] * 2, **arguments)
    first, second = processor.prepare(paths, errors="return", **arguments)
    assert isinstance(first, PreparedFigure) and first.ocr_words == ["10"]
    assert isinstance(second, FigureError) and second.index == 1


def test_an_image_that_does_not_load_is_named_and_the_others_are_prepared(processor, paths, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not a drawing")
    words, boxes = ["10"], [[1, 2, 3, 4]]
    arguments = {"ocr_words": [words, words], "ocr_boxes": [boxes, boxes]}
    results = processor.prepare([notes, paths[0]], errors="return", **arguments)
    assert isinstance(results[0], FigureError) and results[0].index == 0
    assert "cannot identify image file" in str(results[0]) and str(results[0]).startswith("Figure 0: ")
    assert isinstance(results[1], PreparedFigure)
    with pytest.raises(OSError) as raised:  # errors="raise": the loader's own error, noted with the figure
        processor.prepare([paths[0], notes], **arguments)
    assert raised.value.__notes__ == ["(figure 1 of the batch)"]


def test_errors_argument_is_checked(processor, paths):
    with pytest.raises(ValueError, match="errors must be 'raise' or 'return', got 'skip'"):
        processor.prepare(paths, errors="skip")
