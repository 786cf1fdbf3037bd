"""Pictures of a figure's OCR and of the reference numerals in a text (web demo and HTML report; pure functions)."""

from __future__ import annotations

from PIL import Image, ImageDraw

from patentlmm.evaluation.numerals import References, find_numerals

__all__ = ["IN_FIGURE", "NOT_IN_FIGURE", "highlight_numerals", "ocr_overlay"]

IN_FIGURE, NOT_IN_FIGURE = "in figure", "not in figure"
NUMERAL_COLOUR, WORD_COLOUR = (220, 30, 30), (30, 90, 220)


def ocr_overlay(image: Image.Image, words: list[str], boxes: list[list[int]], numerals: frozenset[str]) -> Image.Image:
    """`image` (RGB copy) with each OCR word's box (0-1000 coordinates) drawn: reference numerals in red, other
    words in blue; `image` itself is left untouched."""
    overlay = image.convert("RGB")
    draw = ImageDraw.Draw(overlay)
    width, height = overlay.size
    line = max(2, round(max(width, height) / 500))
    for word, (x0, y0, x1, y1) in zip(words, boxes):
        colour = NUMERAL_COLOUR if word.lower().strip("()") in numerals else WORD_COLOUR
        draw.rectangle(
            (x0 * width / 1000, y0 * height / 1000, x1 * width / 1000, y1 * height / 1000), outline=colour, width=line
        )
    return overlay


def highlight_numerals(text: str, figure: References) -> list[tuple[str, str | None]]:
    """`text` split into `(piece, label)` pairs (the format of `gr.HighlightedText`): each reference numeral of the
    text is labelled `IN_FIGURE` or `NOT_IN_FIGURE`, the text between them `None`. Joining the pieces gives `text`."""
    pieces: list[tuple[str, str | None]] = []
    position = 0
    for start, end, numeral in find_numerals(text):
        pieces.append((text[position:start], None))
        pieces.append((text[start:end], IN_FIGURE if numeral in figure.numerals else NOT_IN_FIGURE))
        position = end
    pieces.append((text[position:], None))
    return [(piece, label) for piece, label in pieces if piece]
