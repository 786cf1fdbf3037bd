"""PatentDesc-355k, from the official release to a `datasets` folder: download, OCR, build, LLaVA export.

    python -m dataset_builder all --root DATASET       # or step by step: download, ocr, build, export-llava

`DATASET/` is laid out like the official one: `PatentDesc-355k.json`, `data_splits/{train,val,test,all}.txt`
(or `splits/`), optional `ocr.json`; the steps add `images/`, `ocr/`, `reports/`, `patentdesc-355k/` and
`llava_json/`. Then `load_dataset("DATASET/patentdesc-355k", "brief")`.

The names below are imported on first use, so `python -m dataset_builder` loads only the step it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PatentDesc355k", "build_patentdesc_dataset", "export_llava", "iter_records", "patentdesc_features"]

_HOMES = {
    "PatentDesc355k": "builder",
    "build_patentdesc_dataset": "build",
    "export_llava": "export_llava",
    "iter_records": "records",
    "patentdesc_features": "features",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'dataset_builder' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
