"""The OCR engines by name: which engines there are, the default ones, and an engine from its name or `to_dict()`."""

from __future__ import annotations

import dataclasses
from typing import Any

from .ocr_base import OcrEngine, OcrSettingError
from .ocr_drawing import DrawingEngine
from .ocr_rapidocr import RapidOcrEngine
from .ocr_tesseract import TesseractEngine

__all__ = ["DEFAULT_OCR_ENGINE", "OCR_ENGINES", "PAPER_OCR_ENGINE", "load_ocr_engine", "ocr_engine_from_dict"]

PAPER_OCR_ENGINE = "tesseract"  # what the official checkpoints were trained on (convert-original folders use it)
DEFAULT_OCR_ENGINE = "drawing"  # new datasets, new models, the demo
# name -> engine class (its `summary` is the line of `patentlmm ocr --list-engines`); a new engine is added here
OCR_ENGINES: dict[str, type[OcrEngine]] = {
    engine.name: engine for engine in (TesseractEngine, RapidOcrEngine, DrawingEngine)
}


def load_ocr_engine(name: str = DEFAULT_OCR_ENGINE, **settings: Any) -> OcrEngine:
    """The engine called `name` (see `OCR_ENGINES`) with `settings` (its dataclass fields), each checked: an
    unknown name or setting, or a value out of its range, raises `OcrSettingError` (a `ValueError`) naming it."""
    if name not in OCR_ENGINES:
        raise OcrSettingError(f"Unknown OCR engine {name!r}; choose one of {sorted(OCR_ENGINES)}.")
    engine = OCR_ENGINES[name]
    fields = [field.name for field in dataclasses.fields(engine)]
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise OcrSettingError(f"The {name} OCR engine has no setting {', '.join(unknown)}; its settings: {fields}.")
    return engine(**settings)


def ocr_engine_from_dict(spec: dict[str, Any] | str | OcrEngine) -> OcrEngine:
    """An engine from `engine.to_dict()` (or a bare name, or an engine, returned as is)."""
    if isinstance(spec, OcrEngine):
        return spec
    if isinstance(spec, str):
        return load_ocr_engine(spec)
    settings = dict(spec)
    if "engine" not in settings:
        raise OcrSettingError(f"An OCR engine setting needs its 'engine' name: got {spec!r}.")
    return load_ocr_engine(settings.pop("engine"), **settings)
