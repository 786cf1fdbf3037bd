"""PatentDesc-355k, from the official release to a `datasets` folder: download, OCR, build, LLaVA export."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AllOptions",
    "BuildOptions",
    "DownloadOptions",
    "ExportOptions",
    "OcrOptions",
    "PatentDesc355k",
    "build_patentdesc_dataset",
    "export_llava",
    "iter_entries",
    "patentdesc_features",
    "run_all",
]

# Each name is imported from its module on first use, so `python -m dataset_builder` loads only the step it runs.
_MODULE_OF = dict.fromkeys(("AllOptions", "BuildOptions", "DownloadOptions", "ExportOptions", "OcrOptions"), "options")
_MODULE_OF |= {"PatentDesc355k": "hf_builder", "build_patentdesc_dataset": "build", "export_llava": "export_llava"}
_MODULE_OF |= {"iter_entries": "entries", "patentdesc_features": "features", "run_all": "steps"}
_MODULE_OF["iter_records"] = "entries"  # the previous release's name of iter_entries, deprecated


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'dataset_builder' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
