"""`drawing` OCR engine: patent drawing sheets' orientation, reference numerals and text lines (docs/ocr.md)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from PIL import Image

from .ocr_base import OcrEngine, OcrSettingError, OcrWords, Setting, normalize_boxes
from .ocr_pp import (
    CONFIDENCE,
    DETECTOR_SIDE,
    THREADS,
    PPOcrModels,
    as_bgr_array,
    crop,
    import_cv2,
    pp_ocr_models,
    read_lines,
)

__all__ = ["DrawingEngine", "find_glyphs", "group_glyphs", "map_box_back"]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive
_NUMERAL = re.compile(r"^\(?(\d{1,4}[A-Za-z]?['’]?)\)?$")
_DECISIVE = 2.0  # upright glyphs >= 2x sideways: upright; sideways >= 2x upright: landscape; else ambiguous
_SURE_NUMERALS = 3.0  # an upright read whose numeral confidences sum to this is kept on an ambiguous sheet


def find_glyphs(ink: np.ndarray, min_glyph: int, max_glyph: int) -> tuple[list[Box], int, int]:
    """Glyph-sized connected components of the (H, W) bool `ink` mask, and the counts of upright (0.3-0.9x as
    wide as high) and sideways (the same, turned) components: the orientation vote."""
    _, _, stats, _ = import_cv2().connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    x, y, w, h, area = (stats[1:, i] for i in range(5))
    upright = int(np.sum((h >= min_glyph) & (h <= max_glyph) & (w >= 0.3 * h) & (w <= 0.9 * h)))
    sideways = int(np.sum((w >= min_glyph) & (w <= max_glyph) & (h >= 0.3 * w) & (h <= 0.9 * w)))
    keep = (h >= min_glyph) & (h <= max_glyph) & (w >= 2) & (w <= 1.3 * h) & (area >= 0.08 * w * h)
    glyphs = [(int(a), int(b), int(a + c), int(b + d)) for a, b, c, d in zip(x[keep], y[keep], w[keep], h[keep])]
    return sorted(glyphs), upright, sideways


def group_glyphs(glyphs: Sequence[Box], max_glyphs: int = 4) -> list[Box]:
    """Boxes of runs of 1-`max_glyphs` glyphs on one row (sorted by x0): each next glyph overlaps the last one
    vertically by > 60% of the smaller, is of similar height, and starts < 0.6 glyph heights after it. Longer runs
    (words, not numerals) are dropped."""
    used = [False] * len(glyphs)
    groups = []
    for i, first in enumerate(glyphs):
        if used[i]:
            continue
        run = [first]
        used[i] = True
        for j in range(i + 1, len(glyphs)):
            if used[j]:
                continue
            last, glyph = run[-1], glyphs[j]
            height = max(last[3] - last[1], glyph[3] - glyph[1])
            gap = glyph[0] - last[2]
            if gap > 3 * height:
                break  # sorted by x0: no later glyph can be closer
            overlap = min(last[3], glyph[3]) - max(last[1], glyph[1])
            smaller = min(last[3] - last[1], glyph[3] - glyph[1])
            similar = abs((last[3] - last[1]) - (glyph[3] - glyph[1])) < 0.35 * height
            if gap <= 0.6 * height and overlap > 0.6 * smaller and similar:
                run.append(glyph)
                used[j] = True
                if len(run) > max_glyphs:
                    break
        if len(run) <= max_glyphs:
            groups.append(
                (min(b[0] for b in run), min(b[1] for b in run), max(b[2] for b in run), max(b[3] for b in run))
            )
    return groups


def map_box_back(box: Sequence[int], turns: int, width: int, height: int) -> list[int]:
    """A pixel box on `np.rot90(sheet, turns)` -> the same glyphs' box on the sheet (`width` x `height`)."""
    x0, y0, x1, y1 = box
    if turns % 4 == 1:  # rot90 once (counter-clockwise): rotated[r, c] = sheet[c, width - 1 - r]
        return [width - y1, x0, width - y0, x1]
    if turns % 4 == 3:  # clockwise: rotated[r, c] = sheet[height - 1 - c, r]
        return [y0, height - x1, y1, height - x0]
    return list(box)


def _overlaps(a: Sequence[int], b: Sequence[int]) -> bool:
    """Boxes sharing more than half of the smaller one's area."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height > 0.5 * max(1, smaller)


@dataclasses.dataclass(frozen=True)
class DrawingEngine(OcrEngine):
    """The `drawing` engine (module docstring). Glyph sizes are in pixels of the sheet as given (USPTO sheets are
    300 dpi: numerals are ~25-45 px high); `det_side` is the text detector's input (long side, px); `threads`:
    onnxruntime intra-op threads."""

    name: ClassVar[str] = "drawing"
    summary: ClassVar[str] = (
        "patent drawings: landscape sheets turned upright, isolated reference numerals + PP-OCR text lines"
    )
    ranges: ClassVar[dict] = {
        "min_glyph": Setting(int, 2, 1000),
        "max_glyph": Setting(int, 2, 10_000),
        "min_numeral_confidence": CONFIDENCE,
        "det_side": DETECTOR_SIDE,
        "min_line_confidence": CONFIDENCE,
        "threads": THREADS,
    }
    min_glyph: int = 14
    max_glyph: int = 90
    min_numeral_confidence: float = 0.8
    det_side: int = 960
    min_line_confidence: float = 0.5
    detect_orientation: bool = True
    threads: int = 1

    def check_settings(self) -> None:
        if self.max_glyph < self.min_glyph:
            raise OcrSettingError(
                f"The drawing OCR engine's settings min_glyph={self.min_glyph} and max_glyph={self.max_glyph}: "
                "max_glyph must be at least min_glyph."
            )
        if not isinstance(self.detect_orientation, bool):
            raise OcrSettingError(
                f"The drawing OCR engine's setting detect_orientation={self.detect_orientation!r} is not true/false."
            )

    def warm_up(self) -> None:
        pp_ocr_models(self.threads)

    def read(self, image: Image.Image) -> OcrWords:
        models = pp_ocr_models(self.threads)
        sheet = as_bgr_array(image)
        ink = np.asarray(image.convert("L")) < 128
        glyphs, upright, sideways = find_glyphs(ink, self.min_glyph, self.max_glyph)
        reads = {0: self._read_numerals(models, sheet, ink, 0, glyphs)}
        if self.detect_orientation and not upright >= _DECISIVE * sideways:
            # Not clearly upright: an upright read with numerals stands unless the glyphs clearly lie sideways;
            # otherwise the sheet is read turned both ways and the surest read (numerals + text lines) is kept.
            landscape = sideways >= _DECISIVE * upright
            if landscape or reads[0][0] < _SURE_NUMERALS:
                candidates = [1, 3] if landscape else [0, 1, 3]
                reads.update({t: self._read_numerals(models, sheet, ink, t) for t in candidates if t not in reads})
                for turns in candidates:
                    surety, turned, numerals, _ = reads[turns]
                    lines = self._lines(models, turned, numerals)
                    reads[turns] = (surety + lines[2], turned, numerals, lines)
                reads = {t: reads[t] for t in candidates}
        turns = max(reads, key=lambda t: reads[t][0])
        _, turned, numerals, lines = reads[turns]
        words, boxes, _ = lines or self._lines(models, turned, numerals)
        for numeral, box, _ in numerals:
            if not any(word == numeral and _overlaps(box, other) for word, other in zip(words, boxes)):
                words.append(numeral)
                boxes.append(list(box))
        order = sorted(range(len(words)), key=lambda i: (boxes[i][1] + boxes[i][3], boxes[i][0]))  # upright order
        boxes = [map_box_back(boxes[i], turns, image.width, image.height) for i in order]
        return [words[i] for i in order], normalize_boxes(boxes, image.width, image.height)

    def _read_numerals(
        self, models: PPOcrModels, sheet: np.ndarray, ink: np.ndarray, turns: int, glyphs: list[Box] | None = None
    ) -> tuple[float, np.ndarray, list[tuple[str, Box, float]], None]:
        """`(surety, turned sheet, numerals, None)` of the sheet turned `turns` x 90 degrees counter-clockwise."""
        turned = np.ascontiguousarray(np.rot90(sheet, turns))
        if glyphs is None:
            glyphs = find_glyphs(np.rot90(ink, turns), self.min_glyph, self.max_glyph)[0]
        numerals = self._numerals(models, turned, glyphs)
        return sum(confidence for _, _, confidence in numerals), turned, numerals, None

    def _lines(self, models: PPOcrModels, sheet: np.ndarray, numerals: list[tuple[str, Box, float]]):
        """`read_lines` of the sheet; text lines that are one of the `numerals` already read are not read again."""
        already_read = [box for _, box, _ in numerals]
        return read_lines(models, sheet, self.det_side, self.min_line_confidence, already_read=already_read)

    def _numerals(self, models: PPOcrModels, sheet: np.ndarray, glyphs: list[Box]) -> list[tuple[str, Box, float]]:
        """`(numeral, box, confidence)` of the glyph runs read as reference numerals."""
        candidates = group_glyphs(glyphs)
        crops = [crop(sheet, box, (box[3] - box[1]) // 4 + 2) for box in candidates]
        found = []
        for (text, confidence), box in zip(models.recognize(crops), candidates):
            match = _NUMERAL.match(text.strip())
            if match and confidence >= self.min_numeral_confidence:
                found.append((match.group(1), box, confidence))
        return found
