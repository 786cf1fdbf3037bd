"""OCR as LayoutLMv3 tokens: words + 0-1000 boxes tokenized, official `ocr.json` entries, truncation and padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .constants import DEFAULT_MAX_OCR_TOKENS, OCR_PAD_BOX

__all__ = ["OcrTokens", "ocr_tokens_from_official", "pad_ocr_tokens", "tokenize_ocr", "truncate_ocr", "validate_boxes"]

OcrTokens = tuple[list[int], list[list[int]]]  # (token ids, one 0-1000 box per token)


def validate_boxes(boxes: Sequence[Sequence[int]], what: str = "OCR boxes") -> None:
    """Raises `ValueError` naming the first box that is not 4 integers in 0-1000 with x0 <= x1, y0 <= y1."""
    for index, box in enumerate(boxes):
        if len(box) != 4 or not all(0 <= v <= 1000 for v in box) or box[0] > box[2] or box[1] > box[3]:
            raise ValueError(
                f"{what}[{index}] = {list(box)} is not a box [x0, y0, x1, y1] with 0 <= x0 <= x1 <= 1000 and "
                "0 <= y0 <= y1 <= 1000 (LayoutLMv3 boxes are normalised to 0-1000)."
            )


def truncate_ocr(ids: list[int], boxes: list[list[int]], max_tokens: int = DEFAULT_MAX_OCR_TOKENS) -> OcrTokens:
    """Keeps the first `max_tokens - 1` tokens plus the last one (`</s>`), as the original data pipeline did."""
    if len(ids) != len(boxes):
        raise ValueError(f"{len(ids)} OCR token ids but {len(boxes)} boxes: they must pair up.")
    if len(ids) <= max_tokens:
        return list(ids), [list(b) for b in boxes]
    return list(ids[: max_tokens - 1]) + [ids[-1]], [list(b) for b in boxes[: max_tokens - 1]] + [list(boxes[-1])]


def tokenize_ocr(
    ocr_tokenizer: Any, words: Sequence[str], boxes: Sequence[Sequence[int]], max_tokens: int = DEFAULT_MAX_OCR_TOKENS
) -> OcrTokens:
    """Word-level OCR -> LayoutLMv3 token ids and per-token boxes: `<s> w_1 ... w_n </s>`, at most `max_tokens`.

    A figure without words gives the two tokens `<s></s>`.
    """
    if len(words) != len(boxes):
        raise ValueError(f"{len(words)} OCR words but {len(boxes)} boxes: give one box per word.")
    validate_boxes(boxes)
    if not words:
        return [ocr_tokenizer.cls_token_id, ocr_tokenizer.sep_token_id], [list(OCR_PAD_BOX), list(OCR_PAD_BOX)]
    encoding = ocr_tokenizer(
        list(words), boxes=[list(b) for b in boxes], truncation=False, add_special_tokens=True, verbose=False
    )
    return truncate_ocr(encoding["input_ids"], encoding["bbox"], max_tokens)


def ocr_tokens_from_official(entry: dict, max_tokens: int = DEFAULT_MAX_OCR_TOKENS) -> OcrTokens:
    """One value of the official `ocr.json` (`{"input_ids": [[...]], "attention_mask": [[...]], "bbox": [[[...]]]}`)
    -> token ids and boxes without padding, truncated like `truncate_ocr`."""
    try:
        ids, boxes = entry["input_ids"], entry["bbox"]
    except (KeyError, TypeError) as error:
        raise ValueError("An ocr.json entry needs 'input_ids' and 'bbox' (and optionally 'attention_mask').") from error
    mask = entry.get("attention_mask")
    # The official file stores a batch of one: unwrap [[...]] and [[[x0, y0, x1, y1], ...]].
    if ids and isinstance(ids[0], list):
        ids, boxes, mask = ids[0], boxes[0], (mask[0] if mask else None)
    if mask is not None:
        ids = [token for token, keep in zip(ids, mask) if keep]
        boxes = [box for box, keep in zip(boxes, mask) if keep]
    validate_boxes(boxes)
    return truncate_ocr(ids, boxes, max_tokens)


def pad_ocr_tokens(tokens: Sequence[OcrTokens], pad_id: int) -> dict[str, list]:
    """Right-pads each figure's OCR ids (with `pad_id`), boxes (`OCR_PAD_BOX`) and a mask (1 = real token) to the
    longest: `ocr_input_ids`, `ocr_attention_mask` `(batch_size, ocr_length)` and `ocr_bbox` `(batch_size,
    ocr_length, 4)`, as lists."""
    length = max(len(ids) for ids, _ in tokens)
    batch: dict[str, list] = {"ocr_input_ids": [], "ocr_bbox": [], "ocr_attention_mask": []}
    for ids, boxes in tokens:
        missing = length - len(ids)
        batch["ocr_input_ids"].append(ids + [pad_id] * missing)
        batch["ocr_bbox"].append(boxes + [list(OCR_PAD_BOX)] * missing)
        batch["ocr_attention_mask"].append([1] * len(ids) + [0] * missing)
    return batch
