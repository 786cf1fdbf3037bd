"""Checkpoints written atomically (a staging folder renamed when complete), the latest complete one to resume from, and
its files checked before resuming (a damaged one is named with its checkpoint)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

from safetensors import safe_open
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from patentlmm_common.files import TEMP_MARK

__all__ = [
    "CheckpointError",
    "check_checkpoint",
    "last_complete_checkpoint",
    "publish_checkpoint",
    "remove_stale_staging",
    "staging_folder",
]

logger = logging.getLogger(__name__)

CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
COMPLETE_MARK = "trainer_state.json"  # the Trainer writes it last into each checkpoint


class CheckpointError(RuntimeError):
    """A checkpoint to resume from holds a file that cannot be read; the message names the file and its checkpoint."""


def staging_folder(run_dir: str | os.PathLike, name: str) -> Path:
    """Where checkpoint `name` is written before it is renamed into `run_dir`: `.<name>.tmp-saving`, the same name on
    every process of a distributed run (each writes its own files into it)."""
    return Path(run_dir) / f".{name}{TEMP_MARK}saving"


def remove_stale_staging(run_dir: str | os.PathLike) -> int:
    """Deletes the staging folders a killed save left in `run_dir` (never picked by a resume); returns how many."""
    stale = list(Path(run_dir).glob(f".{PREFIX_CHECKPOINT_DIR}-*{TEMP_MARK}*")) if os.path.isdir(run_dir) else []
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return len(stale)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def publish_checkpoint(staging: Path, run_dir: str | os.PathLike, name: str) -> Path:
    """Renames the complete `staging/name` to `run_dir/name` (an older folder of that name is moved aside, then
    deleted) and deletes `staging`; returns the checkpoint's path. Files are fsynced first, so a crash after the
    rename never leaves a checkpoint with torn files."""
    source, target = staging / name, Path(run_dir) / name
    for path in source.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    old = None
    if target.exists():
        old = staging / f"{name}.old"
        target.rename(old)
    source.rename(target)
    _fsync_folder(Path(run_dir))
    shutil.rmtree(staging, ignore_errors=True)
    return target


def last_complete_checkpoint(run_dir: str | os.PathLike) -> str | None:
    """The `checkpoint-N` folder of `run_dir` with the highest N that holds `trainer_state.json` (written last), or
    None; a newer folder without it (left by a version that wrote checkpoints in place) is skipped with a warning."""
    if not os.path.isdir(run_dir):
        return None
    found = [(int(m.group(1)), path) for path in Path(run_dir).iterdir() if (m := CHECKPOINT.match(path.name))]
    for _, path in sorted(found, reverse=True):
        if path.is_dir() and (path / COMPLETE_MARK).is_file():
            return str(path)
        logger.warning("Skipped %s: an incomplete checkpoint (it has no %s).", path, COMPLETE_MARK)
    return None


def _damage(path: Path) -> str | None:
    """Why `path` cannot be read back, else None: safetensors headers against the file size, the CRC of every
    member of a torch zip file (`.pt`, `.pth`, `.bin`), JSON syntax."""
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), "pt") as handle:
                handle.keys()
        elif path.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return f"its member {bad} fails its CRC check"
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    except Exception as error:  # noqa: BLE001 (each reader has its own errors; the message is what matters)
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return None


def check_checkpoint(checkpoint: str | os.PathLike) -> None:
    """Raises `CheckpointError` naming the first file of `checkpoint` that cannot be read (adapter, model, optimizer,
    scheduler, RNG and trainer state), and how to resume from the checkpoint before it."""
    checkpoint = Path(checkpoint)
    for path in sorted(checkpoint.rglob("*")):
        reason = _damage(path) if path.is_file() else None
        if reason is not None:
            raise CheckpointError(
                f"{checkpoint.name}: {path.relative_to(checkpoint)} is damaged ({reason}). Delete {checkpoint} to "
                "resume from the checkpoint before it, or resume from another with --resume_from_checkpoint PATH."
            )
