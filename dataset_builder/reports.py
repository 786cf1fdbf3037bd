"""Reports of rejected or failed items: JSON Lines, one `{"image_id", "stage", "reason"}` object per line.

A long run never stops for one bad item: it writes a line here and goes on. Lines are flushed as written, so a
crash loses nothing already reported. `frames_note` is the reason written for a figure kept with a change: an
animated or multi-page image of which only the first frame is kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = ["ReportWriter", "frames_note", "permanent_failures", "read_report"]


class ReportWriter:
    """Appends report lines to `path` (created with its folder on first write); use as a context manager."""

    def __init__(self, path: str | os.PathLike, stage: str):
        self.path = Path(path)
        self.stage = stage
        self.count = 0
        self._handle = None

    def add(self, image_id: str | None, reason: str, **extra: Any) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _end_with_newline(self.path)  # after a crash mid-line, start on a line of its own
            self._handle = open(self.path, "a", encoding="utf-8")  # closed in close()
        line = {"image_id": image_id, "stage": self.stage, "reason": reason, **extra}
        self._handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _end_with_newline(path: Path) -> None:
    if path.exists() and path.stat().st_size:
        with open(path, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


def read_report(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete lines of a report (an empty list when it does not exist; a line cut short by a crash is
    skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    lines = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def permanent_failures(path: str | os.PathLike) -> set[str]:
    """The ids of a report's lines with `"permanent": true`: the failures a plain rerun does not try again."""
    return {line["image_id"] for line in read_report(path) if isinstance(line, dict) and line.get("permanent") is True}


def frames_note(image: Image.Image) -> str | None:
    """For an animated or multi-page image (GIF, APNG, multi-page TIFF, ...), the report's note that only its first
    frame is kept; None for a single image."""
    frames = getattr(image, "n_frames", 1)
    return f"{image.format} image with {frames} frames: only the first frame is kept" if frames > 1 else None
