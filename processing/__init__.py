"""PatentLMM processing: figures + OCR + prompts -> model inputs; names load on first use (`prompts` needs no torch)."""

import importlib

__all__ = [
    "FigureError",
    "ImageTooLargeError",
    "OcrEngine",
    "PatentLMMCollator",
    "PatentLMMProcessor",
    "PreparedFigure",
    "TesseractNotAvailableError",
    "build_completion",
    "build_messages",
    "build_prompt",
    "build_target",
    "escape_description",
    "expand_to_square",
    "load_image",
    "load_ocr_engine",
    "run_tesseract",
    "to_rgb",
    "tokenize_ocr",
    "truncate_ocr",
    "unescape_description",
]

_MODULE_OF = {
    "ImageTooLargeError": "images",
    "expand_to_square": "images",
    "load_image": "images",
    "to_rgb": "images",
    "TesseractNotAvailableError": "ocr_base",
    "OcrEngine": "ocr_base",
    "load_ocr_engine": "ocr_engines",
    "run_tesseract": "ocr_tesseract",
    "tokenize_ocr": "ocr_tokens",
    "truncate_ocr": "ocr_tokens",
    "PatentLMMProcessor": "processing_patentlmm",
    "FigureError": "prepared_figures",
    "PreparedFigure": "prepared_figures",
    "PatentLMMCollator": "collator",
    "build_completion": "prompts",
    "build_messages": "prompts",
    "build_prompt": "prompts",
    "build_target": "prompts",
    "escape_description": "prompts",
    "unescape_description": "prompts",
}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
