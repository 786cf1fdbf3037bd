"""The base of every OCR engine: `engine(figure)` -> words + 0-1000 boxes, its settings checked, saved and keyed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from PIL import Image

from .images import load_image

__all__ = [
    "OCR_EXTRA_HINT",
    "OcrEngine",
    "OcrEngineNotInstalledError",
    "OcrSettingError",
    "OcrSource",
    "OcrTimeoutError",
    "OcrWords",
    "Setting",
    "TesseractNotAvailableError",
    "normalize_boxes",
]

OcrWords = tuple[list[str], list[list[int]]]  # (words, one 0-1000 box [x0, y0, x1, y1] per word)
OcrSource = Image.Image | str | os.PathLike  # a figure: an RGB image, or its file
OCR_EXTRA_HINT = "pip install 'patentlmm[ocr]'"


class OcrEngineNotInstalledError(ImportError):
    """Raised when an optional OCR engine's package is missing; the message names the pip extra."""


class TesseractNotAvailableError(RuntimeError):
    """Raised when the `tesseract` binary (or `pytesseract`) is missing."""


class OcrTimeoutError(TimeoutError):
    """An OCR run stopped at its time limit."""


class OcrSettingError(ValueError):
    """An OCR engine setting out of its range (or of the wrong type, or unknown); the message names it."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """The range of a numeric setting: `kind` (`int` or `float`; `bool` is neither), `low` <= value <= `high`."""

    kind: type
    low: float
    high: float

    def check(self, engine: str, name: str, value: Any) -> None:
        kinds = (int, float) if self.kind is float else (int,)
        if isinstance(value, bool) or not isinstance(value, kinds) or not self.low <= value <= self.high:
            raise OcrSettingError(
                f"The {engine} OCR engine's setting {name}={value!r} is out of range: it must be "
                f"{'an integer' if self.kind is int else 'a number'} from {self.low:g} to {self.high:g}."
            )


class OcrEngine:
    """An OCR engine: `engine(figure)` -> `(words, boxes)`, boxes `[x0, y0, x1, y1]` in 0-1000 of the figure as given
    (an RGB image, or an image file, loaded with the default pixel cap).

    Subclasses are frozen dataclasses whose fields are their settings (JSON values), so that `to_dict()` saves an
    engine and `processing.ocr_engines.ocr_engine_from_dict` rebuilds the same one; models they load are kept
    outside the fields. They implement `read(image)`, declare `summary` (one line for `patentlmm ocr
    --list-engines`) and the ranges of their numeric settings (`ranges`, checked when an engine is made).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    ranges: ClassVar[dict[str, Setting]] = {}

    def __post_init__(self) -> None:
        for name, setting in self.ranges.items():
            setting.check(self.name, name, getattr(self, name))
        self.check_settings()

    def check_settings(self) -> None:
        """Checks of the settings beyond `ranges` (raise `OcrSettingError` naming the setting)."""

    def __call__(self, source: OcrSource) -> OcrWords:
        return self.read(source if isinstance(source, Image.Image) else load_image(source))

    def read(self, image: Image.Image) -> OcrWords:
        raise NotImplementedError

    def warm_up(self) -> None:
        """Loads what the first `read` would (models), e.g. before processes that share them are forked."""

    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_dict(self) -> dict[str, Any]:
        """`{"engine": name, **settings}`: what a processor, a dataset card or a cache records."""
        return {"engine": self.name, **self.settings()}

    @property
    def key(self) -> str:
        """`name-<8 hex>` from the name and settings: results of different engines or settings never share a key."""
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.name}-{digest}"

    def __getstate__(self) -> dict[str, Any]:  # loaded models (ONNX sessions) are rebuilt, not pickled
        return self.settings()

    def __setstate__(self, state: dict[str, Any]) -> None:
        for field, value in state.items():
            object.__setattr__(self, field, value)


def normalize_boxes(boxes: Sequence[Sequence[float]], width: int, height: int) -> list[list[int]]:
    """Pixel boxes `[x0, y0, x1, y1]` -> 0-1000 integers, as LayoutLMv3's `normalize_box` (and clipped to 0-1000)."""
    return [
        [min(1000, max(0, int(1000 * v / size))) for v, size in zip(box, (width, height, width, height))]
        for box in boxes
    ]
