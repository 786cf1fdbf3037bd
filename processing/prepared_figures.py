"""Each figure of a call made ready once: loaded as RGB, OCR'd (one worker pool), its OCR tokenized and counted."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .images import load_image
from .ocr_tokens import OcrTokens, ocr_tokens_from_official, tokenize_ocr

__all__ = ["FigureError", "PreparedFigure", "prepare_figures"]


@dataclass(frozen=True)
class PreparedFigure:
    """One figure as the processor feeds it to the model.

    `image`: the RGB figure (unpadded); `ocr_words` / `ocr_boxes`: its words and 0-1000 boxes (`None` when official
    tokens were given); `ocr_input_ids` `(ocr_length,)` and `ocr_bbox` `(ocr_length, 4)`: its LayoutLMv3 tokens,
    `<s>` and `</s>` included, truncated to `max_ocr_tokens`; `num_image_features`: the `<image>` placeholders
    (= encoder features) it takes in a prompt."""

    image: Image.Image
    ocr_words: list[str] | None
    ocr_boxes: list[list[int]] | None
    ocr_input_ids: list[int]
    ocr_bbox: list[list[int]]
    num_image_features: int

    @property
    def ocr_tokens(self) -> OcrTokens:
        return self.ocr_input_ids, self.ocr_bbox


class FigureError(ValueError):
    """A figure of a batch that cannot be prepared; the message names it (`Figure 3: ...`); `index` is its place."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"Figure {index}: {reason}")
        self.index, self.reason = index, reason


def _check_ocr_arguments(index: int, words: Any, boxes: Any, official: Any) -> None:
    """Raises `FigureError` on OCR arguments of figure `index` that do not fit together."""
    if official is not None and (words is not None or boxes is not None):
        raise FigureError(index, "pass either ocr (token ids) or ocr_words/ocr_boxes, not both.")
    if (words is None) != (boxes is None):
        given, missing = ("ocr_words", "ocr_boxes") if boxes is None else ("ocr_boxes", "ocr_words")
        raise FigureError(index, f"{given} were given without {missing}; pass one 0-1000 box per word.")
    if words is None:
        return
    if isinstance(words, str) or not all(isinstance(word, str) for word in words):
        bad = words if isinstance(words, str) else next(w for w in words if not isinstance(w, str))
        raise FigureError(index, f"ocr_words must be a list of strings, found {bad!r}.")
    if len(words) != len(boxes):
        raise FigureError(index, f"{len(words)} OCR words but {len(boxes)} boxes: give one box per word.")


def _load(index: int, image: Any, max_pixels: int | None, errors: str) -> Image.Image:
    """The RGB figure. A file that does not load raises: its own error (`ImageTooLargeError`, ...; a note names
    the figure) with `errors="raise"`, a `FigureError` naming it (the cause chained) with `"return"`. Pillow's
    decoders raise more than `OSError` on damaged data (`SyntaxError`, `IndexError`, `RuntimeError`, ...)."""
    try:
        return load_image(image, max_pixels)
    except Exception as error:  # noqa: BLE001 (over the cap, not an image, damaged: whatever a decoder raises)
        if errors == "raise":
            error.add_note(f"(figure {index} of the batch)")
            raise
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FigureError(index, reason) from error


def prepare_figures(
    processor: Any,
    images: Sequence[Any],
    ocr_words: Sequence[Any],
    ocr_boxes: Sequence[Any],
    ocr: Sequence[Any],
    errors: str = "raise",
) -> list[PreparedFigure | FigureError]:
    """`processor.prepare`: one `PreparedFigure` per entry of `images` (figures already prepared pass through).

    Each figure is loaded (`processor.max_image_pixels`), read by `processor.ocr_engine` when it comes without
    `ocr_words`/`ocr_boxes` or official `ocr` tokens (in `processor.num_ocr_workers` threads, the one OCR pool of
    the package: Tesseract drives one single-threaded process per thread, the ONNX engines release the GIL), and
    tokenized. `errors="raise"`: the first figure that fails raises (a `FigureError` naming it; a file that does
    not load raises its own error, e.g. `ImageTooLargeError`); `"return"`: a `FigureError` stands in the figure's
    place and the others are prepared.
    """
    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}.")
    results: list[Any] = []
    for index, image in enumerate(images):
        try:
            if isinstance(image, PreparedFigure):
                if ocr_words[index] is not None or ocr_boxes[index] is not None or ocr[index] is not None:
                    raise FigureError(index, "a prepared figure carries its OCR: pass no ocr_words/ocr_boxes/ocr.")
                results.append(image)
                continue
            _check_ocr_arguments(index, ocr_words[index], ocr_boxes[index], ocr[index])
            results.append(_load(index, image, processor.max_image_pixels, errors))
        except FigureError as error:
            if errors == "raise":
                raise
            results.append(error)
    to_read = [
        i for i, r in enumerate(results) if isinstance(r, Image.Image) and ocr_words[i] is None and ocr[i] is None
    ]
    found = dict(zip(to_read, _read(processor, [results[i] for i in to_read])))
    for index, loaded in enumerate(results):
        if not isinstance(loaded, Image.Image):
            continue
        words, boxes = found.get(index, (ocr_words[index], ocr_boxes[index]))
        try:
            results[index] = _tokenized(processor, index, loaded, words, boxes, ocr[index])
        except FigureError as error:
            if errors == "raise":
                raise
            results[index] = error
    return results


def _read(processor: Any, images: list[Image.Image]) -> list[tuple[list[str], list[list[int]]]]:
    """`processor.ocr_engine` on each image, in up to `num_ocr_workers` threads (`None`: one per CPU core)."""
    workers = min(len(images), processor.num_ocr_workers or os.cpu_count() or 1)
    if workers <= 1:
        return [processor.ocr_engine(image) for image in images]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(processor.ocr_engine, images))


def _tokenized(processor: Any, index: int, image: Image.Image, words, boxes, official) -> PreparedFigure:
    """The `PreparedFigure` of a loaded figure and its OCR (words and boxes, or official tokens)."""
    try:
        if official is not None:
            ids, token_boxes = ocr_tokens_from_official(official, processor.max_ocr_tokens)
            words = boxes = None
        else:
            words, boxes = list(words), [list(box) for box in boxes]
            ids, token_boxes = tokenize_ocr(processor.ocr_tokenizer, words, boxes, processor.max_ocr_tokens)
    except ValueError as error:
        raise FigureError(index, str(error)) from error
    return PreparedFigure(image, words, boxes, ids, token_boxes, processor.num_image_features(len(ids)))
