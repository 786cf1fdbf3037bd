"""The PP-OCRv4 parts the `rapidocr` and `drawing` engines share: ONNX sessions, text-line detection and reading."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from .ocr_base import OCR_EXTRA_HINT, OcrEngineNotInstalledError, Setting

__all__ = [
    "CONFIDENCE",
    "DETECTOR_SIDE",
    "THREADS",
    "PPOcrModels",
    "as_bgr_array",
    "crop",
    "import_cv2",
    "pp_ocr_models",
    "read_lines",
    "split_line",
]

_REC_HEIGHT = 48  # the PP-OCRv4 recogniser's input height
DETECTOR_SIDE = Setting(int, 32, 8192)  # the detector's input (long side, px; multiples of 32 below it read less)
CONFIDENCE = Setting(float, 0.0, 1.0)  # a recogniser confidence threshold
THREADS = Setting(int, 1, 256)  # onnxruntime intra-op (and OpenCV) threads


def import_cv2() -> Any:
    """OpenCV (opencv-python, a dependency of rapidocr-onnxruntime). Optional imports sit in `try` blocks, which
    transformers' remote-code loader does not require to be installed."""
    try:
        import cv2
    except ImportError as error:
        raise OcrEngineNotInstalledError(
            f"The rapidocr/drawing OCR engines need rapidocr-onnxruntime and OpenCV: {OCR_EXTRA_HINT} ({error})."
        ) from error
    return cv2


def _rapidocr_parts() -> dict[str, Any]:
    """The pieces of rapidocr-onnxruntime used here (its default config, detector and recogniser classes)."""
    try:
        import onnxruntime
        from rapidocr_onnxruntime.ch_ppocr_det import TextDetector
        from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer
        from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
        from rapidocr_onnxruntime.utils import read_yaml, update_model_path
    except ImportError as error:
        raise OcrEngineNotInstalledError(
            f"The rapidocr/drawing OCR engines need rapidocr-onnxruntime: {OCR_EXTRA_HINT} ({error})."
        ) from error
    return {
        "onnxruntime": onnxruntime,
        "config": update_model_path(read_yaml(DEFAULT_CFG_PATH)),
        "TextDetector": TextDetector,
        "TextRecognizer": TextRecognizer,
    }


class PPOcrModels:
    """The detector and recogniser ONNX sessions of `rapidocr-onnxruntime` (its files; nothing is downloaded).

    RapidOCR's sessions turn onnxruntime's CPU memory arena off; with it on (here) the detector runs ~25% faster on a
    sheet (0.12 vs 0.16 CPU s at 960 px, measured), so each session is opened again with the arena on."""

    def __init__(self, threads: int = 1):
        # OpenCV's own thread pool (resizing, connected components) would use every core in each `dataset ocr`
        # worker; the engines' `threads` bounds it too (a process-wide OpenCV setting).
        import_cv2().setNumThreads(threads)
        parts = _rapidocr_parts()
        config = parts["config"]
        for part in ("Det", "Rec"):
            config[part]["intra_op_num_threads"] = threads
            config[part]["inter_op_num_threads"] = 1
        self.detector = parts["TextDetector"](config["Det"])
        self.recognizer = parts["TextRecognizer"](config["Rec"])
        for session, part in ((self.detector.infer, "Det"), (self.recognizer.session, "Rec")):
            session.session = _session(parts["onnxruntime"], config[part]["model_path"], threads)

    def detect(
        self, image: np.ndarray, side: int, box_threshold: float = 0.5
    ) -> list[tuple[int, int, int, int]]:
        """Text-line boxes `(x0, y0, x1, y1)` (pixels of `image`, an (H, W, 3) uint8 array), the detector run on
        the image scaled so that its long side is `side` (never enlarged; both sides multiples of 32)."""
        cv2 = import_cv2()
        height, width = image.shape[:2]
        scale = min(1.0, side / max(height, width))
        size = (max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32))
        x = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1.0
        probabilities = self.detector.infer(x.transpose(2, 0, 1)[None])[0]  # (1, 1, h, w)
        self.detector.postprocess_op.box_thresh = box_threshold
        polygons, _ = self.detector.postprocess_op(probabilities, (height, width))
        boxes = []
        for polygon in polygons:
            x0, y0 = np.floor(polygon.min(0)).astype(int)
            x1, y1 = np.ceil(polygon.max(0)).astype(int)
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
            if x1 - x0 >= 4 and y1 - y0 >= 4:
                boxes.append((int(x0), int(y0), int(x1), int(y1)))
        return boxes

    def recognize(self, crops: Sequence[np.ndarray], batch_size: int = 8) -> list[tuple[str, float]]:
        """`(text, confidence)` of each (h, w, 3) uint8 crop. Crops are sorted by aspect ratio and batched, each batch
        padded to its widest crop (not to RapidOCR's 320 px), which is most of the recogniser's time saved on the
        short crops of drawings."""
        cv2 = import_cv2()
        ratios = [crop.shape[1] / crop.shape[0] for crop in crops]
        order = sorted(range(len(crops)), key=ratios.__getitem__)
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(_REC_HEIGHT, math.ceil(_REC_HEIGHT * max(ratios[i] for i in batch) / 8) * 8)
            pixels = np.zeros((len(batch), 3, _REC_HEIGHT, width), np.float32)
            for row, i in enumerate(batch):
                resized = cv2.resize(crops[i], (min(width, math.ceil(_REC_HEIGHT * ratios[i])), _REC_HEIGHT))
                pixels[row, :, :, : resized.shape[1]] = resized.transpose(2, 0, 1) / 127.5 - 1.0
            decoded = self.recognizer.postprocess_op(self.recognizer.session(pixels)[0])
            for row, (text, confidence) in enumerate(decoded):
                results[batch[row]] = (text, float(confidence))
        return results


def _session(onnxruntime: Any, model_path: str, threads: int) -> Any:
    """A CPU `InferenceSession` of `model_path`: all graph optimisations, `threads` intra-op threads, memory arena."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4
    return onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=4)
def pp_ocr_models(threads: int = 1) -> PPOcrModels:
    """One `PPOcrModels` per thread count and process (engines share them; ~15 MB of ONNX)."""
    return PPOcrModels(threads)


def as_bgr_array(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 array of the figure, channels in the BGR order the PP-OCR models were trained with."""
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def split_line(text: str, box: Sequence[int]) -> tuple[list[str], list[list[int]]]:
    """A recognised line -> its words and pixel boxes: each word gets the slice of the line box that its characters
    take (by count), the full height."""
    x0, y0, x1, y1 = box
    per_char = (x1 - x0) / max(1, len(text))
    words, boxes, start = [], [], 0
    for word in text.split(" "):
        if word.strip():
            words.append(word.strip())
            boxes.append([round(x0 + start * per_char), y0, round(x0 + (start + len(word)) * per_char), y1])
        start += len(word) + 1
    return words, boxes


def _inside(box: Sequence[int], other: Sequence[int]) -> bool:
    """More than half of `box`'s area lies in `other`."""
    width = min(box[2], other[2]) - max(box[0], other[0])
    height = min(box[3], other[3]) - max(box[1], other[1])
    return width > 0 and height > 0 and width * height > 0.5 * (box[2] - box[0]) * (box[3] - box[1])


def crop(image: np.ndarray, box: Sequence[int], pad: int) -> np.ndarray:
    """`image[y0 - pad : y1 + pad, x0 - pad : x1 + pad]`, clipped to the image."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = box
    return image[max(0, y0 - pad) : min(height, y1 + pad), max(0, x0 - pad) : min(width, x1 + pad)]


def read_lines(
    models: PPOcrModels,
    image: np.ndarray,
    det_side: int,
    min_confidence: float,
    batch_size: int = 8,
    already_read: Sequence[Sequence[int]] = (),
) -> tuple[list[str], list[list[int]], float]:
    """Words and pixel boxes of the text lines the detector finds in `image` (BGR array), and the surety of the
    read: the sum over kept lines of confidence x characters. Lines mostly inside one of the `already_read` pixel
    boxes are not recognised again."""
    boxes = [box for box in models.detect(image, det_side) if not any(_inside(box, other) for other in already_read)]
    words: list[str] = []
    pixel_boxes: list[list[int]] = []
    surety = 0.0
    for (text, confidence), box in zip(models.recognize([crop(image, b, 4) for b in boxes], batch_size), boxes):
        if confidence >= min_confidence:
            line_words, line_boxes = split_line(text, box)
            words += line_words
            pixel_boxes += line_boxes
            surety += confidence * len(text.strip())
    return words, pixel_boxes, surety
