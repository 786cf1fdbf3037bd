"""PatentLMM processing: figures (image + OCR) and prompts -> model inputs (copied flat into checkpoints)."""

from .images import ImageTooLargeError, expand_to_square, load_image, to_rgb
from .ocr import TesseractNotAvailableError, run_tesseract, tokenize_ocr, truncate_ocr
from .processing_patentlmm import PatentLMMProcessor
from .prompts import build_messages, build_prompt, build_target, escape_description, unescape_description

__all__ = [
    "ImageTooLargeError",
    "PatentLMMProcessor",
    "TesseractNotAvailableError",
    "build_messages",
    "build_prompt",
    "build_target",
    "escape_description",
    "expand_to_square",
    "load_image",
    "run_tesseract",
    "to_rgb",
    "tokenize_ocr",
    "truncate_ocr",
    "unescape_description",
]
