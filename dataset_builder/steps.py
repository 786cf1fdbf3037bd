"""`run_all`: the dataset steps in order on one root, each from its options object, stopping at the first failure."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from .options import STEPS, AllOptions

__all__ = ["STEP_RUNNERS", "run_all", "run_step"]

# step -> (module, function(root, options) -> exit status); a module is imported only when its step runs
STEP_RUNNERS = {
    "download": ("download", "download_root"),
    "ocr": ("ocr", "ocr_root"),
    "layout": ("layout_labels", "layout_root"),
    "visual-tokens": ("visual_tokens", "visual_tokens_root"),
    "build": ("build", "build_root"),
    "export-llava": ("export_llava", "export_root"),
}


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
