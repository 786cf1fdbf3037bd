"""`tesseract` OCR engine: Tesseract as `LayoutLMv3ImageProcessor(apply_ocr=True)` runs it, the only place it runs."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import signal
import threading
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from PIL import Image

from .images import load_image
from .ocr_base import (
    OcrEngine,
    OcrSettingError,
    OcrSource,
    OcrTimeoutError,
    OcrWords,
    TesseractNotAvailableError,
)

__all__ = [
    "TESSERACT_INSTALL_HINT",
    "TesseractEngine",
    "TesseractFailedError",
    "is_bilevel_png",
    "run_tesseract",
]

TESSERACT_INSTALL_HINT = (
    "Tesseract OCR is not installed or not on PATH. Install it with `apt-get install tesseract-ocr` "
    "(Debian/Ubuntu; or run the repository's scripts/install.sh), `brew install tesseract` (macOS), "
    "or pass precomputed `ocr_words`/`ocr_boxes` or `ocr` token ids instead."
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_LANG = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")  # `eng`, `eng+deu`, `chi_sim`
_FLAG_RANGES = {"--psm": range(14), "--oem": range(4), "--dpi": range(1, 10_000)}  # Tesseract 4-5's values


class TesseractFailedError(RuntimeError):
    """A Tesseract run that failed: killed by a signal, or an exit status and message (with the settings it ran)."""


@dataclasses.dataclass(frozen=True)
class TesseractEngine(OcrEngine):
    """Tesseract exactly as `LayoutLMv3ImageProcessor(apply_ocr=True)`: `lang` (`-l`, `None` = English) and
    `config` (extra flags, e.g. `"--psm 11"` for sparse text). `engine(figure, timeout=seconds)` stops the
    `tesseract` process at the limit (`OcrTimeoutError`); a 1-bit PNG file goes to Tesseract as it is."""

    name: ClassVar[str] = "tesseract"
    summary: ClassVar[str] = "Tesseract as LayoutLMv3ImageProcessor(apply_ocr=True): the paper's OCR"
    lang: str | None = None
    config: str = ""

    def check_settings(self) -> None:
        if self.lang is not None and not (isinstance(self.lang, str) and _LANG.match(self.lang)):
            raise OcrSettingError(
                f"The tesseract OCR engine's setting lang={self.lang!r} is not a language name such as 'eng' or "
                "'eng+deu' (`tesseract --list-langs` lists those installed)."
            )
        if not isinstance(self.config, str):
            raise OcrSettingError(f"The tesseract OCR engine's setting config={self.config!r} is not a string.")
        try:
            flags = shlex.split(self.config)
        except ValueError as error:
            raise OcrSettingError(f"The tesseract OCR engine's setting config={self.config!r}: {error}.") from None
        for flag, value in zip(flags, flags[1:] + [None]):
            if flag in _FLAG_RANGES and (value is None or not value.isdigit() or int(value) not in _FLAG_RANGES[flag]):
                allowed = _FLAG_RANGES[flag]
                raise OcrSettingError(
                    f"The tesseract OCR engine's setting config={self.config!r}: {flag} takes an integer from "
                    f"{allowed.start} to {allowed.stop - 1}, got {value!r}."
                )

    def __call__(self, source: OcrSource, timeout: float | None = None) -> OcrWords:
        return run_tesseract(source, self.lang, self.config, timeout)

    def read(self, image: Image.Image) -> OcrWords:
        return run_tesseract(image, self.lang, self.config)


class _TesseractEnvironment(Mapping):
    """The environment pytesseract starts `tesseract` with (its module's `environ`, read by `subprocess_args` in
    pytesseract 0.3.13): `os.environ`, plus `OMP_THREAD_LIMIT=1` for the processes that `run_tesseract` starts in
    its thread when `os.environ` does not set it. Other children and other pytesseract callers see `os.environ`."""

    def __init__(self) -> None:
        self.in_run_tesseract = threading.local()

    def _current(self) -> Mapping[str, str]:
        if getattr(self.in_run_tesseract, "value", False) and "OMP_THREAD_LIMIT" not in os.environ:
            return {**os.environ, "OMP_THREAD_LIMIT": "1"}
        return os.environ

    def __getitem__(self, key: str) -> str:
        return self._current()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


_TESSERACT_ENVIRONMENT = _TesseractEnvironment()


def is_bilevel_png(path: str | os.PathLike) -> bool:
    """A 1-bit greyscale PNG (how USPTO drawing sheets come), read from its IHDR chunk.

    Given as RGB, pytesseract would write the figure to a temporary PNG of 3 bytes a pixel for Tesseract to read
    back; Tesseract reads the 1-bit file to the same black and white pixels (its greyscale of (v, v, v) is v), so
    the words and boxes are the same (tested on the real figures), without that detour.
    """
    with open(path, "rb") as handle:
        head = handle.read(26)  # signature (8), IHDR length and type (8), width, height, bit depth, colour type
    return len(head) == 26 and head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24:26] == b"\x01\x00"


def run_tesseract(
    source: OcrSource, lang: str | None = None, config: str = "", timeout: float | None = None
) -> OcrWords:
    """OCRs a figure exactly as `LayoutLMv3ImageProcessor(apply_ocr=True)` does: an RGB image, or an image file
    (a 1-bit PNG is given to Tesseract as it is, others are loaded as RGB).

    Returns the non-empty words and their boxes `[x0, y0, x1, y1]` normalised to 0-1000 by the image's own size.
    `timeout` (seconds, `None`: none) stops the `tesseract` process (`OcrTimeoutError`). Tesseract's OpenMP threads
    make a single page several times slower on small machines, so the `tesseract` processes get
    `OMP_THREAD_LIMIT=1` unless the environment already sets it; this process's environment (which every other
    child inherits) is left as it is.
    """
    try:
        import pytesseract
    except ImportError as error:
        raise TesseractNotAvailableError("`pip install pytesseract`; " + TESSERACT_INSTALL_HINT) from error
    if isinstance(source, Image.Image):
        image, size = source, source.size
    elif is_bilevel_png(source):
        with Image.open(source) as opened:  # the header only: Tesseract reads the pixels
            image, size = os.fspath(source), opened.size
    else:
        image = load_image(source)
        size = image.size
    pytesseract.pytesseract.environ = _TESSERACT_ENVIRONMENT
    _TESSERACT_ENVIRONMENT.in_run_tesseract.value = True
    try:
        data = pytesseract.image_to_data(image, lang=lang, output_type="dict", config=config, timeout=timeout or 0)
    except pytesseract.TesseractNotFoundError as error:
        raise TesseractNotAvailableError(TESSERACT_INSTALL_HINT) from error
    except pytesseract.TesseractError as error:  # a RuntimeError too: caught before the timeout below
        raise TesseractFailedError(_failure(error, lang, config)) from None
    except RuntimeError as error:  # pytesseract's own RuntimeError: 'Tesseract process timeout'
        raise OcrTimeoutError(f"tesseract timed out after {timeout:g} s ({error})") from None
    finally:
        _TESSERACT_ENVIRONMENT.in_run_tesseract.value = False
    return _words_and_boxes(data, *size)


def _words_and_boxes(data: dict[str, list[Any]], width: int, height: int) -> OcrWords:
    """The non-empty words of `image_to_data`'s dict and their boxes, normalised as transformers' `apply_tesseract`
    (its `normalize_box`: `int(1000 * (v / size))`, not clipped)."""
    words, boxes = [], []
    for word, x, y, w, h in zip(data["text"], data["left"], data["top"], data["width"], data["height"]):
        if word.strip():
            words.append(word)
            box = (x, y, x + w, y + h)
            boxes.append([int(1000 * (v / size)) for v, size in zip(box, (width, height, width, height))])
    return words, boxes


def _failure(error: Any, lang: str | None, config: str) -> str:
    """The reason of a failed Tesseract run: the signal that killed it, or its exit status and message, and the
    settings it ran with (Tesseract says nothing at all about, e.g., `--psm 99`)."""
    if isinstance(error.status, int) and error.status < 0:
        try:
            name = signal.Signals(-error.status).name
        except ValueError:
            name = f"signal {-error.status}"
        return f"tesseract was killed by {name}" + (f": {error.message}" if error.message else "")
    return (
        f"tesseract failed (exit status {error.status}): {error.message or 'no message'}; it ran with the engine's "
        f"settings lang={lang!r} and config={config!r}: check them (`tesseract --list-langs`, `tesseract --help-extra`)"
    )
