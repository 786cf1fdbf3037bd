"""`processing/ocr_tokens.py` with the real LayoutLMv3 (RoBERTa BPE) tokenizer of the tiny processor and the real
Tesseract's words of the bundled figures: box checks, truncation, tokenization, official `ocr.json` entries."""

from __future__ import annotations

import json

import pytest

from processing.constants import DEFAULT_MAX_OCR_TOKENS, OCR_PAD_BOX
from processing.ocr_tokens import ocr_tokens_from_official, tokenize_ocr, truncate_ocr, validate_boxes


@pytest.fixture(scope="module")
def ocr_tokenizer(processor):
    return processor.ocr_tokenizer


def _official_entry(ocr_tokenizer, words, boxes, pad_to=None) -> dict:
    """An `ocr.json` value as the original wrote it: a batch of one, lists, optionally padded, through JSON."""
    kwargs = {"padding": "max_length", "max_length": pad_to} if pad_to else {}
    encoding = ocr_tokenizer([words], boxes=[boxes], **kwargs)
    entry = {key: encoding[key] for key in ("input_ids", "attention_mask", "bbox")}
    return json.loads(json.dumps(entry))


def test_blank_figure_tokenises_to_cls_and_sep(blank_ocr, ocr_tokenizer):
    ids, boxes = tokenize_ocr(ocr_tokenizer, *blank_ocr)
    assert ids == [ocr_tokenizer.cls_token_id, ocr_tokenizer.sep_token_id] == [0, 2]
    assert boxes == [OCR_PAD_BOX, OCR_PAD_BOX]


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
