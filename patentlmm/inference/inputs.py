"""What `describe` checks before it loads a model: its files' kinds, one writer per output, the new-token bound."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from patentlmm_common.files import run_lock
from processing import PatentLMMProcessor
from processing.prompts import tokenize_prompt

__all__ = [
    "InputError",
    "check_dataset_path",
    "check_image_files",
    "check_max_new_tokens",
    "check_output_file",
    "output_lock",
]


class InputError(ValueError):
    """An input of `describe` that cannot be used (the command line prints it as a one-line error)."""


_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket",
          stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}  # fmt: skip


def _not_regular(path: Path) -> str | None:
    """Why `path` is not a regular file (missing, a folder, a FIFO, ...), from `os.stat` alone (nothing is opened,
    so a FIFO never blocks); None for a regular file. A symbolic link is judged by its target."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as error:  # a broken link loop, a permission error on a parent folder, ...
        return error.strerror or type(error).__name__
    if stat.S_ISREG(mode):
        return None
    return next((f"is {kind}, not a file" for test, kind in _KINDS.items() if test(mode)), "is not a regular file")


def check_image_files(paths: Iterable[str | os.PathLike]) -> None:
    """Raises `InputError` listing every image path that is not a regular file (each with its reason)."""
    bad = [f"{os.fspath(path)} ({reason})" for path in paths if (reason := _not_regular(Path(path))) is not None]
    if bad:
        raise InputError(f"Not image files: {', '.join(bad)}.")


def check_dataset_path(dataset: str) -> None:
    """Raises `InputError` when `dataset` names a local path that is neither a folder nor a regular file (a Hub id,
    which names no local path, passes)."""
    if os.path.lexists(dataset) and not os.path.isdir(dataset) and (reason := _not_regular(Path(dataset))):
        raise InputError(f"The dataset {dataset} {reason}: give a datasets folder, a data file or a Hub id.")


def check_output_file(path: str | os.PathLike) -> None:
    """Raises `InputError` when the output exists and is not a regular file (appending to a FIFO would block)."""
    if os.path.lexists(path) and (reason := _not_regular(Path(path))) is not None:
        raise InputError(f"The output {os.fspath(path)} {reason}: give a JSONL file path.")


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """One writer per output: holds the run lock `.<name>.lock` next to `path` (`patentlmm_common.files.run_lock`);
    a second `describe` into the same file raises `AlreadyRunningError` naming the holder's pid."""
    path = Path(path)
    with run_lock(path.with_name(f".{path.name}.lock"), f"a describe writing {path}"):
        yield


def check_max_new_tokens(max_position_embeddings: int, processor: PatentLMMProcessor, prompt: str, value: int) -> None:
    """Raises `InputError` naming the option when `value` new tokens cannot fit: the decoder holds
    `max_position_embeddings` positions (with vLLM, its engine's `max_model_len`) and the shortest prompt (a figure
    without OCR) takes some of them."""
    text = len(tokenize_prompt(processor.tokenizer, prompt, processor.image_token)) - 1  # the image token expanded
    shortest = text + processor.num_image_features(0)
    room = max_position_embeddings - shortest
    if value > room:
        raise InputError(
            f"max_new_tokens (--max-new-tokens) is {value}, more than the model can hold: its decoder has "
            f"{max_position_embeddings} positions and the prompt takes at least {shortest}, so at most {room}."
        )
