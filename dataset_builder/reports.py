"""Reports of rejected or failed items: JSON Lines of `{"image_id", "stage", "reason", ...}`, one item a line."""

from __future__ import annotations

import os
from typing import Any

from PIL import Image

from patentlmm_common.jsonl import JsonlAppender, complete_lines

__all__ = ["ReportWriter", "frames_note", "permanent_failures", "read_report"]


class ReportWriter(JsonlAppender):
    """Appends report lines to `path` (created with its folder on first write); a context manager. A long run
    never stops for one bad item: it writes a line here and goes on."""

    def __init__(self, path: str | os.PathLike, stage: str):
        super().__init__(path)
        self.stage = stage

    def add(self, image_id: str | None, reason: str, **extra: Any) -> None:
        self.write({"image_id": image_id, "stage": self.stage, "reason": reason, **extra})


def read_report(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete lines of a report (an empty list when it does not exist; a line cut short by a crash is
    skipped)."""
    return list(complete_lines(path))


def permanent_failures(path: str | os.PathLike) -> set[str]:
    """The ids of a report's lines with `"permanent": true`: the failures a plain rerun does not try again."""
    return {line["image_id"] for line in read_report(path) if isinstance(line, dict) and line.get("permanent") is True}


def frames_note(image: Image.Image) -> str | None:
    """For an animated or multi-page image (GIF, APNG, multi-page TIFF, ...), the report's note that only its first
    frame is kept; None for a single image."""
    frames = getattr(image, "n_frames", 1)
    return f"{image.format} image with {frames} frames: only the first frame is kept" if frames > 1 else None
