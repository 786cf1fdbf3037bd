"""Layout elements of a figure without a detector: its OCR words classified, and its large ink components as nodes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from processing.ocr_base import normalize_boxes
from processing.ocr_pp import import_cv2
from processing.references import is_figure_label, is_numeral

from .layout_elements import PATCH_CLASSES

__all__ = ["drawing_elements", "ink_nodes", "word_elements"]

NODE, NODE_LABEL, FIGURE_LABEL, TEXT = (PATCH_CLASSES.index(name) for name in PATCH_CLASSES[:4])
Box = list[int]  # [x0, y0, x1, y1] in 0-1000 coordinates


def _union(a: Sequence[int], b: Sequence[int]) -> Box:
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def _same_line(a: Sequence[int], b: Sequence[int], width: int, height: int) -> bool:
    """Whether word `b` continues the line ending in `a`: vertical overlap over half the lower of the two, and
    a gap after `a` of less than 1.5 times the line height (both in pixels of the `width` x `height` figure)."""
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    line_height = min(a[3] - a[1], b[3] - b[1])
    gap_pixels = (b[0] - a[2]) * width / 1000
    return overlap > 0.5 * line_height and gap_pixels < 1.5 * max(a[3] - a[1], b[3] - b[1]) * height / 1000


def word_elements(
    words: Sequence[str], boxes: Sequence[Sequence[int]], width: int, height: int
) -> tuple[list[Box], list[int]]:
    """The elements of OCR words (0-1000 boxes, in the engine's reading order) of a `width` x `height` figure.

    A word, or a word and the next on its line, that is one whole figure label (`FIG. 3`, `Figure 12`,
    `processing.references`) is a figure label; a word that is a reference numeral on its own (`12`, `(14a)`) is a
    node label; runs of other words on one line are one text element. Returns `(boxes, classes)`, classes being
    indices of `PATCH_CLASSES`."""
    elements: list[Box] = []
    classes: list[int] = []
    index = 0
    while index < len(words):
        word, box = words[index], list(boxes[index])
        pair = index + 1 < len(words) and _same_line(box, boxes[index + 1], width, height)
        if pair and not is_figure_label(word) and is_figure_label(f"{word} {words[index + 1]}"):
            elements.append(_union(box, boxes[index + 1]))
            classes.append(FIGURE_LABEL)
            index += 2
            continue
        if is_figure_label(word) or is_numeral(word):
            elements.append(box)
            classes.append(FIGURE_LABEL if is_figure_label(word) else NODE_LABEL)
        elif classes and classes[-1] == TEXT and _same_line(elements[-1], box, width, height):
            elements[-1] = _union(elements[-1], box)
        else:
            elements.append(box)
            classes.append(TEXT)
        index += 1
    return elements, classes


def ink_nodes(ink: np.ndarray, erase: Sequence[Sequence[int]], min_side: int, join: int = 3) -> list[Box]:
    """Nodes (drawing parts): the connected components of `ink` ((H, W) bool) whose bounding box's longer side is at
    least `min_side` pixels, after erasing the `erase` boxes (0-1000: the OCR words) and joining strokes less than
    `2 * join` pixels apart. Returns their 0-1000 bounding boxes (of the ink itself, not of the joined mask)."""
    cv2 = import_cv2()
    cv2.setNumThreads(0)  # sequential: a process pool forked after OpenCV started its threads hangs in its workers
    height, width = ink.shape
    mask = ink.copy()
    for x0, y0, x1, y1 in erase:  # the word boxes in pixels, rounded outward
        top, bottom = math.floor(y0 * height / 1000), math.ceil(y1 * height / 1000) + 1
        mask[max(0, top) : bottom, max(0, math.floor(x0 * width / 1000)) : math.ceil(x1 * width / 1000) + 1] = False
    joined = mask.astype(np.uint8)
    if join > 0:
        joined = cv2.dilate(joined, np.ones((2 * join + 1, 2 * join + 1), np.uint8))
    count, labels = cv2.connectedComponents(joined, connectivity=8)
    ys, xs = np.nonzero(mask)
    owner = labels[ys, xs]  # each ink pixel's component
    low_x, low_y = np.full(count, width), np.full(count, height)
    high_x, high_y = np.full(count, -1), np.full(count, -1)
    np.minimum.at(low_x, owner, xs)
    np.minimum.at(low_y, owner, ys)
    np.maximum.at(high_x, owner, xs + 1)
    np.maximum.at(high_y, owner, ys + 1)
    keep = np.maximum(high_x - low_x, high_y - low_y) >= min_side
    keep[0] = False  # the background
    boxes = [[int(low_x[i]), int(low_y[i]), int(high_x[i]), int(high_y[i])] for i in np.flatnonzero(keep)]
    return normalize_boxes(sorted(boxes, key=lambda b: (b[1], b[0])), width, height)


def drawing_elements(
    ink: np.ndarray, words: Sequence[str], boxes: Sequence[Sequence[int]], min_node_side: int, join: int = 3
) -> tuple[list[Box], list[int]]:
    """All elements of one figure ((H, W) bool `ink`, its OCR `words` and 0-1000 `boxes`): `word_elements`, then
    `ink_nodes` of the ink outside the words. Never an arrow (not detected). Returns `(boxes, classes)`."""
    height, width = ink.shape
    elements, classes = word_elements(words, boxes, width, height)
    nodes = ink_nodes(ink, boxes, min_node_side, join)
    return elements + nodes, classes + [NODE] * len(nodes)
