"""A model folder's weight files checked before they are loaded or published: complete safetensors files, and the
shards an index names present beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import safe_open

__all__ = ["check_safetensors", "check_weights"]


def check_safetensors(path: str | os.PathLike) -> None:
    """Raises `ValueError` naming `path` when it is not a complete safetensors file (a malformed or oversized header,
    invalid JSON, tensors outside the file, a truncated file). Reads the header only, no tensor."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as error:  # SafetensorError, OSError (e.g. EINVAL from mmap of a short file)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not a valid safetensors file: {reason}.") from error


def _index_shards(index: Path) -> set[str]:
    """The shard file names a `*.safetensors.index.json` names; `ValueError` unless it is such an index whose shards
    are plain file names beside it (no folder, no `..`: anything else is not published or leaves the folder)."""
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (ValueError, KeyError, AttributeError, TypeError, UnicodeDecodeError) as error:
        raise ValueError(f"{index} is not a safetensors index (JSON with a weight_map): {error}") from error
    bad = sorted(str(name) for name in shards if not isinstance(name, str) or name in ("", ".", "..") or "/" in name)
    if bad:
        raise ValueError(f"{index} names shards that are not file names beside it: {', '.join(bad[:5])}")
    return shards


def check_weights(folder: str | os.PathLike) -> list[Path]:
    """Checks every `*.safetensors` file of `folder` and that each shard named by a `*.safetensors.index.json` is a
    file beside it; returns the weight files. Raises `ValueError` (bad file or index) or `FileNotFoundError`
    (missing shard)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    for index in sorted(folder.glob("*.safetensors.index.json")):
        shards = _index_shards(index)
        missing = sorted(name for name in shards if not (folder / name).is_file())
        if missing:
            raise FileNotFoundError(f"{index} names shard(s) missing from {folder}: {', '.join(missing[:5])}")
    for path in files:
        check_safetensors(path)
    return files
