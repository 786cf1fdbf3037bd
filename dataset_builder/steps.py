"""The dataset steps' shared plumbing (summary counters, figure loading, `<step>_root`) and `run_all` over them."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processing.images import load_image

from .ids import InvalidImageIdError
from .layout import DatasetLayout
from .options import STEPS, AllOptions
from .pretraining_caches import CacheMismatchError

__all__ = ["STEP_RUNNERS", "StepSummary", "open_figure", "run_all", "run_step", "step_root", "work_list"]

# step -> (module, function(root, options) -> exit status); a module is imported only when its step runs
STEP_RUNNERS = {
    "download": ("download", "download_root"),
    "ocr": ("ocr", "ocr_root"),
    "layout": ("layout_labels", "layout_root"),
    "visual-tokens": ("visual_tokens", "visual_tokens_root"),
    "build": ("build", "build_root"),
    "export-llava": ("export_llava", "export_root"),
}


@dataclass
class StepSummary:
    """The counters every step's summary keeps of one run over the figures."""

    total: int = 0  # figures (or distinct ids) seen
    processed: int = 0  # done and cached by this run
    cached: int = 0  # already cached: skipped
    failed: int = 0  # reported by this run
    previously_failed: int = 0  # failed permanently before: skipped
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Figures processed per second (0.0 before any time is counted)."""
        return self.processed / self.seconds if self.seconds else 0.0

    def admit(self, image_id: str, cached: Container[str], failed_before: Container[str]) -> bool:
        """Counts `image_id` (in `total`, and in `cached` or `previously_failed`); True when this run should do it."""
        self.total += 1
        if image_id in cached:
            self.cached += 1
        elif image_id in failed_before:
            self.previously_failed += 1
        else:
            return True
        return False


def work_list(
    layout: DatasetLayout, summary: StepSummary, cached: Container[str], failed_before: Container[str], report: Any
) -> list[str]:
    """The ids of `layout.images_dir/*.png` (sorted) that this run should do (`StepSummary.admit`); a name the root
    refuses (`DatasetLayout.validate_id`) is reported to `report` (a `ReportWriter`) as a permanent failure."""
    todo = []
    for image_id in sorted(path.stem for path in layout.images_dir.glob("*.png")):
        if summary.admit(image_id, cached, failed_before):
            try:
                todo.append(layout.validate_id(image_id))
            except InvalidImageIdError as error:
                report.add(image_id, str(error), permanent=True)
                summary.failed += 1
    return todo


def open_figure(path: str | os.PathLike, max_pixels: int | None) -> tuple[Any, str | None, bool]:
    """(RGB image, None, False) or (None, reason, permanent) for one figure file (a missing one is not permanent)."""
    path = Path(path)
    name = f"{path.parent.name}/{path.name}"
    if not path.is_file():
        return None, f"image file {name} is missing (run `download` first)", False
    try:
        return load_image(path, max_pixels), None, False
    except Exception as error:  # noqa: BLE001 (a damaged file: whatever its decoder raises; the pixel cap)
        return None, f"unreadable image {name}: {type(error).__name__}: {error}", True


def step_root(step: str, layout: DatasetLayout, run: Callable[[], StepSummary], report_name: str) -> int:
    """A step on a dataset root: `run()`, its summary printed; returns the exit status (2: no `images/`, or `run`
    raised `CacheMismatchError` or `FileNotFoundError`, named on stderr after `step`)."""
    if not layout.images_dir.is_dir():
        print(f"{step}: {layout.images_dir} not found (run `download` first)", file=sys.stderr)
        return 2
    try:
        summary = run()
    except (CacheMismatchError, FileNotFoundError) as error:
        print(f"{step}: {error}", file=sys.stderr)
        return 2
    print(f"{summary} (failures: {layout.reports_dir / report_name})")
    return 0


def run_step(step: str, root: str | os.PathLike, options: object, **keywords: object) -> int:
    """Runs one step (`download`, `ocr`, `layout`, `visual-tokens`, `build`, `export-llava`) on `root` with its
    options object (and `keywords`, e.g. `output=` of build and export-llava); returns its exit status."""
    module, function = STEP_RUNNERS[step]
    runner = getattr(importlib.import_module(f".{module}", __package__), function)
    return int(runner(Path(root), options, **keywords) or 0)


def run_all(root: str | os.PathLike, options: AllOptions = AllOptions()) -> int:  # noqa: B008 (frozen)
    """download -> ocr -> build (those not in `options.skip`), then export-llava with `options.export_llava`;
    returns the first non-zero exit status (naming the step on stderr), else 0."""
    steps = [step for step in STEPS[:3] if step not in options.skip] + ["export-llava"] * options.export_llava
    step_options = {
        "download": options.download, "ocr": options.ocr, "build": options.build, "export-llava": options.export
    }  # fmt: skip
    for step in steps:
        print(f"== {step}", flush=True)
        status = run_step(step, root, step_options[step])
        if status != 0:
            print(f"{step} failed with exit status {status}; stopping.", file=sys.stderr)
            return status
    return 0
