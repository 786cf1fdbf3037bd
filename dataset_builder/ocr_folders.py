"""Which OCR engine made the cache of an `ocr/` folder, and which folder `build` reads (no engine is imported here)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["CACHE_STEM", "ENGINE_FILE", "engine_of_folder", "find_ocr_folder"]

CACHE_STEM = "ocr_cache"  # ocr/<key>/ocr_cache.jsonl, ocr/<key>/ocr_cache-00003-of-00008.jsonl
ENGINE_FILE = "ocr_engine.json"  # in each ocr/<key>/ folder: the engine and settings that made its cache


def engine_of_folder(folder: Path) -> dict[str, Any] | None:
    """The `to_dict()` of the engine whose cache `folder` holds: its `ocr_engine.json`; Tesseract's for a cache
    made before engines were recorded; `None` for a folder without either."""
    if (folder / ENGINE_FILE).is_file():
        return json.loads((folder / ENGINE_FILE).read_text(encoding="utf-8"))
    if not any(folder.glob(f"{CACHE_STEM}*.jsonl")):
        return None
    from processing.ocr_tesseract import TesseractEngine  # transformers: only for a cache made before engines

    return TesseractEngine().to_dict()


def find_ocr_folder(ocr_dir: str | os.PathLike, engine: str | None = None) -> Path:
    """The cache folder `build` reads under `ocr_dir` (`DATASET/ocr`): the one of `engine` (a name or key), or
    the only one there; a cache made before engines were keyed (`ocr_dir/ocr_cache*.jsonl`) is `ocr_dir` itself."""
    ocr_dir = Path(ocr_dir)
    folders = sorted(p.parent for p in ocr_dir.glob(f"*/{ENGINE_FILE}"))
    if any(ocr_dir.glob(f"{CACHE_STEM}*.jsonl")):
        folders.append(ocr_dir)
    if engine is not None:
        folders = [f for f in folders if engine in (f.name, engine_of_folder(f)["engine"])]
    if len(folders) == 1:
        return folders[0]
    if not folders:
        raise FileNotFoundError(f"no OCR cache{f' of {engine!r}' if engine else ''} in {ocr_dir}: run `ocr` first")
    names = ", ".join(f"{f.name} ({engine_of_folder(f)['engine']})" for f in folders)
    raise ValueError(f"{ocr_dir} holds the OCR of several engines ({names}): choose one with --ocr-engine NAME|KEY")
