"""`rapidocr` OCR engine: PP-OCRv4 text detection + recognition, the ONNX models of `rapidocr-onnxruntime`."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from PIL import Image

from .ocr_base import OcrEngine, OcrWords, normalize_boxes
from .ocr_pp import CONFIDENCE, DETECTOR_SIDE, THREADS, as_bgr_array, pp_ocr_models, read_lines

__all__ = ["RapidOcrEngine"]


@dataclasses.dataclass(frozen=True)
class RapidOcrEngine(OcrEngine):
    """PP-OCRv4 lines split into words. `det_side`: the detector's input (long side, px); `min_confidence`: lines
    recognised with less are dropped; `threads`: onnxruntime intra-op threads."""

    name: ClassVar[str] = "rapidocr"
    summary: ClassVar[str] = "PP-OCRv4 text detection + recognition (ONNX, patentlmm[ocr])"
    ranges: ClassVar[dict] = {"det_side": DETECTOR_SIDE, "min_confidence": CONFIDENCE, "threads": THREADS}
    det_side: int = 1280
    min_confidence: float = 0.5
    threads: int = 1

    def warm_up(self) -> None:
        pp_ocr_models(self.threads)

    def read(self, image: Image.Image) -> OcrWords:
        pixels = as_bgr_array(image)
        words, boxes, _ = read_lines(pp_ocr_models(self.threads), pixels, self.det_side, self.min_confidence)
        return words, normalize_boxes(boxes, image.width, image.height)
