"""`visual-tokens`: each figure's VQGAN token ids (PatentMME's MIM targets), cached as JSON Lines (resumable)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from patentlmm_common.files import run_lock
from patentlmm_common.jsonl import JsonlAppender

from .layout import DatasetLayout
from .options import VisualTokenOptions
from .pretraining_caches import (
    TOKENIZER_FILE,
    VISUAL_TOKENS_CACHE,
    VISUAL_TOKENS_DIR,
    claim_cache,
    read_visual_tokens,
)
from .reports import ReportWriter, permanent_failures
from .steps import StepSummary, open_figure, step_root, work_list

__all__ = [
    "VisualTokenSummary",
    "load_tokenizer",
    "run_visual_tokens",
    "tokenizer_record",
    "visual_tokens_root",
]

@dataclass
class VisualTokenSummary(StepSummary):
    """What one `run_visual_tokens` call did (`total`: figures in images/; `processed`: encoded and cached)."""

    def __str__(self) -> str:
        return (
            f"visual-tokens: {self.total} figures: {self.processed} encoded ({self.rate:.2f} images/s), "
            f"{self.cached} already cached, {self.failed} failed, {self.previously_failed} skipped as failed before; "
            f"{self.seconds:.1f} s"
        )


def tokenizer_record(tokenizer: Any) -> dict[str, Any]:
    """What a cache records of its tokenizer: `{"fingerprint", "image_size"}`."""
    return {"fingerprint": tokenizer.fingerprint, "image_size": tokenizer.image_size}


def load_tokenizer(options: VisualTokenOptions) -> Any:
    """The `PatentMMEVisualTokenizer` of `options` (torch is imported here, not when the step is imported)."""
    from modeling_patentlmm.visual_tokenizer_patentmme import PatentMMEVisualTokenizer

    if options.tokenizer is not None:
        return PatentMMEVisualTokenizer.from_pretrained(options.tokenizer)
    return PatentMMEVisualTokenizer.random(options.random_tokenizer_seed)


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def run_visual_tokens(
    root: str | os.PathLike,
    options: VisualTokenOptions,
    tokenizer: Any | None = None,
) -> VisualTokenSummary:
    """Encodes every `root/images/*.png` not cached yet in `root/visual_tokens/` with `tokenizer` (default:
    `load_tokenizer(options)`); a bad figure is reported in `root/reports/visual_token_failures.jsonl` and the run
    goes on. A cache made by another tokenizer or image size is refused (`CacheMismatchError`)."""
    started = time.monotonic()
    layout = DatasetLayout(Path(root))
    folder, report_path = layout.root / VISUAL_TOKENS_DIR, layout.reports_dir / "visual_token_failures.jsonl"
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(options)
    folder.mkdir(parents=True, exist_ok=True)
    with run_lock(folder / ".visual_tokens.lock", f"a visual-tokens run writing {folder}"):
        claim_cache(folder, TOKENIZER_FILE, tokenizer_record(tokenizer), "the visual tokens")
        summary = VisualTokenSummary()
        cached = set(read_visual_tokens(folder)[0])
        failed_before = set() if options.retry_failed else permanent_failures(report_path)
        with (
            ReportWriter(report_path, "visual-tokens") as report,
            JsonlAppender(folder / VISUAL_TOKENS_CACHE) as cache,
        ):
            todo = work_list(layout, summary, cached, failed_before, report)
            with tqdm(total=len(todo), unit="img", desc="visual-tokens") as progress:
                for batch in _batches(todo, options.batch_size):
                    _encode_batch(batch, layout.images_dir, tokenizer, options, cache, report, summary)
                    progress.update(len(batch))
    summary.seconds = time.monotonic() - started
    return summary


def _encode_batch(
    batch: list[str],
    images_dir: Path,
    tokenizer: Any,
    options: VisualTokenOptions,
    cache: JsonlAppender,
    report: ReportWriter,
    summary: VisualTokenSummary,
) -> None:
    """Opens the figures of `batch` (reporting the bad ones) and caches the ids of the others: `(B, N)` of
    `tokenizer.encode(tokenizer.preprocess(images))`."""
    images, ids = [], []
    for image_id in batch:
        image, reason, permanent = open_figure(images_dir / f"{image_id}.png", options.max_image_pixels)
        if image is None:
            report.add(image_id, reason, permanent=permanent)
            summary.failed += 1
        else:
            images.append(image)
            ids.append(image_id)
    if not images:
        return
    try:
        tokens = tokenizer.encode(tokenizer.preprocess(images)).tolist()  # (B, N)
    except Exception as error:  # noqa: BLE001 (one batch the tokenizer cannot encode is reported; the run goes on)
        for image_id in ids:
            report.add(image_id, f"the tokenizer failed on its batch: {type(error).__name__}: {error}", permanent=False)
        summary.failed += len(ids)
        return
    cache.write_many({"image_id": image_id, "tokens": row} for image_id, row in zip(ids, tokens))
    summary.processed += len(ids)


def visual_tokens_root(root: str | os.PathLike, options: VisualTokenOptions) -> int:
    """`visual-tokens` on a dataset root; prints the summary and returns the exit status (2: no `images/`, or a
    cache of another tokenizer)."""
    run = functools.partial(run_visual_tokens, root, options)
    return step_root("visual-tokens", DatasetLayout(Path(root)), run, "visual_token_failures.jsonl")
