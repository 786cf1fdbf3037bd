"""The options of each dataset step as typed dataclasses whose fields declare their flags (`option()`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from patentlmm_common.fields import at_least, check_options, option
from processing.constants import DEFAULT_MAX_IMAGE_PIXELS
from processing.ocr_base import OcrEngine
from processing.ocr_engines import DEFAULT_OCR_ENGINE, OCR_ENGINES

from .sharding import check_shard
from .splits import DEFAULT_RATIOS, parse_ratios

__all__ = [
    "STEPS",
    "AllOptions",
    "BuildOptions",
    "DownloadOptions",
    "ExportOptions",
    "LayoutOptions",
    "OcrOptions",
    "VisualTokenOptions",
    "summary",
]

STEPS = ("download", "ocr", "build", "export-llava")  # the order of `all`
MAX_BODY_BYTES = 64 << 20  # a patent sheet is ~50 KB-2 MB; a download over this is not a figure


@dataclass(frozen=True)
class _ShardedOptions:
    """What `download` and `ocr` share: the job's shard of the ids, the pixel cap, and retrying earlier failures."""

    num_shards: int = option(1, type=at_least(1), help="split the ids into this many jobs")
    shard_index: int = option(0, type=at_least(0), help="the job's shard, 0 .. num-shards - 1")
    max_image_pixels: int | None = option(
        DEFAULT_MAX_IMAGE_PIXELS, type=at_least(1), help="report images with more pixels (decompression-bomb guard)"
    )
    retry_failed: bool = option(False, help="also retry ids that failed permanently in an earlier run")

    def __post_init__(self) -> None:
        check_shard(self.num_shards, self.shard_index)
        check_options(self)


@dataclass(frozen=True)
class DownloadOptions(_ShardedOptions):
    """download: fetch the figures from their image_url into images/ (resumable, sharded)."""

    workers: int = option(16, type=at_least(1), help="concurrent downloads (threads)")
    per_host_rate: float = option(
        50.0, type=at_least(0, float), help="most requests per second to one host, all threads together (0: no limit)"
    )
    retries: int = option(5, type=at_least(0), help="retries of a transient failure")
    timeout: float = option(
        60.0, type=at_least(0, float, exclusive=True), help="seconds for one attempt: connect, response, whole body"
    )
    backoff: float = 1.0  # seconds before the first retry; doubled at each further one
    max_bytes: int = MAX_BODY_BYTES


@dataclass(frozen=True)
class OcrOptions(_ShardedOptions):
    """ocr: OCR the figures (--engine drawing|tesseract|rapidocr) into a words + boxes cache (resumable, sharded).

    `engine` is a name of `processing.ocr_engines.OCR_ENGINES`, an engine's `to_dict()` or an engine."""

    engine: str | dict | OcrEngine = option(
        DEFAULT_OCR_ENGINE,
        choices=sorted(OCR_ENGINES),
        help="OCR engine (tesseract: the paper's OCR; drawing: reads patent drawings' numerals; see `patentlmm ocr "
        "--list-engines`)",
    )
    workers: int | None = option(None, type=at_least(1), help="OCR processes (default: the usable cores)")
    timeout: float = option(
        60.0, type=at_least(0, float, exclusive=True), help="seconds of OCR per figure (every engine)"
    )


@dataclass(frozen=True)
class ExportOptions:
    """export-llava: write llava_json/ as the original prep_patent_data.py.

    `ratios` and `seed` (also `build`'s) make the split by patent used when the root has no split lists."""

    ratios: dict[str, float] = option(
        default_factory=lambda: dict(DEFAULT_RATIOS),
        type=parse_ratios,
        help="train,validation,test ratios without split lists (default: 0.9,0.05,0.05)",
    )
    seed: int = option(0, help="seed of the split by patent (without split lists)")


@dataclass(frozen=True)
class BuildOptions(ExportOptions):
    """build: write the patentdesc-355k/ datasets folder (Parquet + dataset card)."""

    workers: int = option(
        default_factory=lambda: min(4, os.cpu_count() or 1),
        type=at_least(1),
        help="processes checking images; 1 checks them in this process (default: up to 4)",
    )
    max_shard_mb: int = option(500, type=at_least(1), help="Parquet shard size (default: %(default)s MB)")
    allow_missing_ocr: bool = option(False, help="keep figures without OCR (null OCR columns)")
    ocr_engine: str | None = option(None, help="the OCR cache to use when ocr/ holds several (name or key)")
    max_image_pixels: int | None = option(
        DEFAULT_MAX_IMAGE_PIXELS, type=at_least(1), help="pixel cap (decompression bombs)"
    )

    def __post_init__(self) -> None:
        check_options(self)

    @property
    def max_shard_bytes(self) -> int:
        return self.max_shard_mb * 1024**2


@dataclass(frozen=True)
class LayoutOptions:
    """layout: each figure's layout elements (PatentMME's labels) from its OCR and ink, or a detector's COCO JSON.

    Without `coco` the elements come from the OCR cache (`ocr_engine`) and the figure's ink (docs/pretraining.md)."""

    coco: Path | None = option(
        None, metavar="FILE", help="import the elements from this COCO-style JSON (categories named as the classes)"
    )
    ocr_engine: str | None = option(None, help="the OCR cache to read when ocr/ holds several (name or key)")
    min_node_side: int = option(
        91, type=at_least(1), help="an ink component at least this long (pixels) on a side is a node"
    )
    join: int = option(3, type=at_least(0), help="ink strokes closer than twice this (pixels) are one component")
    workers: int | None = option(None, type=at_least(1), help="processes (default: the usable cores)")
    max_image_pixels: int | None = option(
        DEFAULT_MAX_IMAGE_PIXELS, type=at_least(1), help="report images with more pixels (decompression-bomb guard)"
    )
    retry_failed: bool = option(False, help="also retry figures that failed permanently in an earlier run")

    def __post_init__(self) -> None:
        check_options(self)


@dataclass(frozen=True)
class VisualTokenOptions:
    """visual-tokens: each figure's visual-token ids (PatentMME's MIM targets) from a VQGAN tokenizer (resumable).

    One of `tokenizer` (a `PatentMMEVisualTokenizer` folder) and `random_tokenizer_seed` (the stand-in)."""

    tokenizer: Path | None = option(None, metavar="DIR", help="a visual tokenizer folder (save_pretrained)")
    random_tokenizer_seed: int | None = option(
        None, metavar="N", help="a seeded random VQGAN of the OCR-VQGAN's shape instead (the offline stand-in)"
    )
    batch_size: int = option(8, type=at_least(1), help="figures per encode")
    max_image_pixels: int | None = option(
        DEFAULT_MAX_IMAGE_PIXELS, type=at_least(1), help="report images with more pixels (decompression-bomb guard)"
    )
    retry_failed: bool = option(False, help="also retry figures that failed permanently in an earlier run")

    def __post_init__(self) -> None:
        check_options(self)
        if (self.tokenizer is None) == (self.random_tokenizer_seed is None):
            raise ValueError("visual-tokens needs exactly one of --tokenizer DIR and --random-tokenizer-seed N")


@dataclass(frozen=True)
class AllOptions:
    """all: run download, ocr, build (and export-llava) on one root, each with its own options."""

    skip: tuple[str, ...] = ()  # steps among download, ocr, build to leave out
    export_llava: bool = option(False, help="also write llava_json/ at the end")
    download: DownloadOptions = field(default_factory=DownloadOptions)
    ocr: OcrOptions = field(default_factory=OcrOptions)
    build: BuildOptions = field(default_factory=BuildOptions)
    export: ExportOptions = field(default_factory=ExportOptions)

    def __post_init__(self) -> None:
        unknown = set(self.skip) - set(STEPS[:3])
        if unknown:
            raise ValueError(f"AllOptions.skip: {sorted(unknown)} are not steps that can be skipped ({STEPS[:3]})")


def summary(options_class: type) -> str:
    """The one-line help of a step's command: the first line of its options' docstring, after `STEP: `."""
    return options_class.__doc__.splitlines()[0].split(": ", 1)[1]
