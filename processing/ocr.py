"""All OCR of the package: engines by name (image in, words + 0-1000 boxes out), LayoutLMv3 tokens, `ocr.json`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from PIL import Image

from .constants import DEFAULT_MAX_OCR_TOKENS, OCR_PAD_BOX

try:  # transformers >= 5 (the PIL backend needs no torchvision)
    from transformers.models.layoutlmv3.image_processing_pil_layoutlmv3 import apply_tesseract
except ImportError:  # transformers 4.x
    from transformers.models.layoutlmv3.image_processing_layoutlmv3 import apply_tesseract

__all__ = [
    "DEFAULT_OCR_ENGINE",
    "OCR_ENGINES",
    "OcrEngine",
    "OcrEngineNotInstalledError",
    "OcrTokens",
    "OcrWords",
    "PAPER_OCR_ENGINE",
    "TesseractEngine",
    "TesseractNotAvailableError",
    "load_ocr_engine",
    "normalize_boxes",
    "ocr_engine_from_dict",
    "ocr_tokens_from_official",
    "pad_ocr_tokens",
    "run_tesseract",
    "tokenize_ocr",
    "truncate_ocr",
    "validate_boxes",
]

OcrTokens = tuple[list[int], list[list[int]]]  # (token ids, one 0-1000 box per token)
OcrWords = tuple[list[str], list[list[int]]]  # (words, one 0-1000 box [x0, y0, x1, y1] per word)

PAPER_OCR_ENGINE = "tesseract"  # what the official checkpoints were trained on (convert-original folders use it)
DEFAULT_OCR_ENGINE = "drawing"  # new datasets, new models, the demo
# name -> one line for `patentlmm ocr --list-engines`
OCR_ENGINES = {
    "tesseract": "Tesseract as LayoutLMv3ImageProcessor(apply_ocr=True): the paper's OCR",
    "rapidocr": "PP-OCRv4 text detection + recognition (ONNX, patentlmm[ocr])",
    "drawing": "patent drawings: landscape sheets turned upright, isolated reference numerals + PP-OCR text lines",
}
OCR_EXTRA_HINT = "pip install 'patentlmm[ocr]'"

TESSERACT_INSTALL_HINT = (
    "Tesseract OCR is not installed or not on PATH. Install it with `apt-get install tesseract-ocr` "
    "(Debian/Ubuntu; or run the repository's scripts/install.sh), `brew install tesseract` (macOS), "
    "or pass precomputed `ocr_words`/`ocr_boxes` or `ocr` token ids instead."
)


class TesseractNotAvailableError(RuntimeError):
    """Raised when the `tesseract` binary (or `pytesseract`) is missing."""


class OcrEngineNotInstalledError(ImportError):
    """Raised when an optional OCR engine's package is missing; the message names the pip extra."""


class OcrEngine:
    """An OCR engine: `engine(image)` -> `(words, boxes)`, boxes `[x0, y0, x1, y1]` in 0-1000 of the image as given.

    Subclasses are frozen dataclasses whose fields are their settings (JSON values), so that `to_dict()` saves an
    engine and `ocr_engine_from_dict` rebuilds the same one; models they load are kept outside the fields.
    """

    name: ClassVar[str]

    def __call__(self, image: Image.Image) -> OcrWords:
        raise NotImplementedError

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


def load_ocr_engine(name: str = DEFAULT_OCR_ENGINE, **settings: Any) -> OcrEngine:
    """The engine called `name` (see `OCR_ENGINES`) with `settings` (its dataclass fields)."""
    if name not in OCR_ENGINES:
        raise ValueError(f"Unknown OCR engine {name!r}; choose one of {sorted(OCR_ENGINES)}.")
    if name == "tesseract":
        return TesseractEngine(**settings)
    if name == "rapidocr":  # static relative imports, so that remote-code checkpoints copy these files
        from .ocr_rapidocr import RapidOcrEngine

        return RapidOcrEngine(**settings)
    from .ocr_drawing import DrawingEngine

    return DrawingEngine(**settings)


def ocr_engine_from_dict(spec: dict[str, Any] | str | OcrEngine) -> OcrEngine:
    """An engine from `engine.to_dict()` (or a bare name, or an engine, returned as is)."""
    if isinstance(spec, OcrEngine):
        return spec
    if isinstance(spec, str):
        return load_ocr_engine(spec)
    settings = dict(spec)
    return load_ocr_engine(settings.pop("engine"), **settings)


def normalize_boxes(boxes: Sequence[Sequence[float]], width: int, height: int) -> list[list[int]]:
    """Pixel boxes `[x0, y0, x1, y1]` -> 0-1000 integers, as LayoutLMv3's `normalize_box` (and clipped to 0-1000)."""
    return [
        [min(1000, max(0, int(1000 * v / size))) for v, size in zip(box, (width, height, width, height))]
        for box in boxes
    ]


@dataclasses.dataclass(frozen=True)
class TesseractEngine(OcrEngine):
    """Tesseract exactly as `LayoutLMv3ImageProcessor(apply_ocr=True)`: `lang` (`-l`, `None` = English) and
    `config` (extra flags, e.g. `"--psm 11"` for sparse text)."""

    name: ClassVar[str] = "tesseract"
    lang: str | None = None
    config: str = ""

    def __call__(self, image: Image.Image) -> OcrWords:
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


def run_tesseract(image: Image.Image, lang: str | None = None, config: str = "") -> tuple[list[str], list[list[int]]]:
    """OCRs an RGB figure exactly as `LayoutLMv3ImageProcessor(apply_ocr=True)` does.

    Returns the non-empty words and their boxes `[x0, y0, x1, y1]` normalised to 0-1000 by the image's own size.
    Tesseract's OpenMP threads make a single page several times slower on small machines, so the `tesseract`
    processes get `OMP_THREAD_LIMIT=1` unless the environment already sets it; this process's environment (which
    every other child inherits) is left as it is.
    """
    try:
        import pytesseract
    except ImportError as error:
        raise TesseractNotAvailableError("`pip install pytesseract`; " + TESSERACT_INSTALL_HINT) from error
    pytesseract.pytesseract.environ = _TESSERACT_ENVIRONMENT
    _TESSERACT_ENVIRONMENT.in_run_tesseract.value = True
    try:
        words, boxes = apply_tesseract(image, lang, config)
    except pytesseract.TesseractNotFoundError as error:
        raise TesseractNotAvailableError(TESSERACT_INSTALL_HINT) from error
    finally:
        _TESSERACT_ENVIRONMENT.in_run_tesseract.value = False
    return list(words), [list(map(int, box)) for box in boxes]


def validate_boxes(boxes: Sequence[Sequence[int]], what: str = "OCR boxes") -> None:
    """Raises `ValueError` naming the first box that is not 4 integers in 0-1000 with x0 <= x1, y0 <= y1."""
    for index, box in enumerate(boxes):
        if len(box) != 4 or not all(0 <= v <= 1000 for v in box) or box[0] > box[2] or box[1] > box[3]:
            raise ValueError(
                f"{what}[{index}] = {list(box)} is not a box [x0, y0, x1, y1] with 0 <= x0 <= x1 <= 1000 and "
                "0 <= y0 <= y1 <= 1000 (LayoutLMv3 boxes are normalised to 0-1000)."
            )


def truncate_ocr(ids: list[int], boxes: list[list[int]], max_tokens: int = DEFAULT_MAX_OCR_TOKENS) -> OcrTokens:
    """Keeps the first `max_tokens - 1` tokens plus the last one (`</s>`), as the original data pipeline did."""
    if len(ids) != len(boxes):
        raise ValueError(f"{len(ids)} OCR token ids but {len(boxes)} boxes: they must pair up.")
    if len(ids) <= max_tokens:
        return list(ids), [list(b) for b in boxes]
    return list(ids[: max_tokens - 1]) + [ids[-1]], [list(b) for b in boxes[: max_tokens - 1]] + [list(boxes[-1])]


def tokenize_ocr(
    ocr_tokenizer: Any, words: Sequence[str], boxes: Sequence[Sequence[int]], max_tokens: int = DEFAULT_MAX_OCR_TOKENS
) -> OcrTokens:
    """Word-level OCR -> LayoutLMv3 token ids and per-token boxes: `<s> w_1 ... w_n </s>`, at most `max_tokens`.

    A figure without words gives the two tokens `<s></s>`.
    """
    if len(words) != len(boxes):
        raise ValueError(f"{len(words)} OCR words but {len(boxes)} boxes: give one box per word.")
    validate_boxes(boxes)
    if not words:
        return [ocr_tokenizer.cls_token_id, ocr_tokenizer.sep_token_id], [list(OCR_PAD_BOX), list(OCR_PAD_BOX)]
    encoding = ocr_tokenizer(
        list(words), boxes=[list(b) for b in boxes], truncation=False, add_special_tokens=True, verbose=False
    )
    return truncate_ocr(encoding["input_ids"], encoding["bbox"], max_tokens)


def ocr_tokens_from_official(entry: dict, max_tokens: int = DEFAULT_MAX_OCR_TOKENS) -> OcrTokens:
    """One value of the official `ocr.json` (`{"input_ids": [[...]], "attention_mask": [[...]], "bbox": [[[...]]]}`)
    -> token ids and boxes without padding, truncated like `truncate_ocr`."""
    try:
        ids, boxes = entry["input_ids"], entry["bbox"]
    except (KeyError, TypeError) as error:
        raise ValueError("An ocr.json entry needs 'input_ids' and 'bbox' (and optionally 'attention_mask').") from error
    mask = entry.get("attention_mask")
    # The official file stores a batch of one: unwrap [[...]] and [[[x0, y0, x1, y1], ...]].
    if ids and isinstance(ids[0], list):
        ids, boxes, mask = ids[0], boxes[0], (mask[0] if mask else None)
    if mask is not None:
        ids = [token for token, keep in zip(ids, mask) if keep]
        boxes = [box for box, keep in zip(boxes, mask) if keep]
    validate_boxes(boxes)
    return truncate_ocr(ids, boxes, max_tokens)


def pad_ocr_tokens(tokens: Sequence[OcrTokens], pad_id: int) -> dict[str, list]:
    """Right-pads each figure's OCR ids (with `pad_id`), boxes (`OCR_PAD_BOX`) and a mask (1 = real token) to the
    longest: `ocr_input_ids`, `ocr_attention_mask` `(batch_size, ocr_length)` and `ocr_bbox` `(batch_size,
    ocr_length, 4)`, as lists."""
    length = max(len(ids) for ids, _ in tokens)
    batch: dict[str, list] = {"ocr_input_ids": [], "ocr_bbox": [], "ocr_attention_mask": []}
    for ids, boxes in tokens:
        missing = length - len(ids)
        batch["ocr_input_ids"].append(ids + [pad_id] * missing)
        batch["ocr_bbox"].append(boxes + [list(OCR_PAD_BOX)] * missing)
        batch["ocr_attention_mask"].append([1] * len(ids) + [0] * missing)
    return batch
