"""A model or dataset folder's files for the Hub: the allow-lists, the checks before upload, the staged model copy."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from transformers.dynamic_module_utils import get_relative_import_files

from modeling_patentlmm import PatentLMMConfig
from modeling_patentlmm.modeling_patentlmm import AUTO_MAP
from patentlmm.assembly.components import generation_config
from patentlmm_common.files import atomic_write
from patentlmm_common.weights import check_weights

__all__ = [
    "MODEL_REPO_FILES",
    "REQUIRED_FILES",
    "check_no_links_leaving",
    "select_dataset_files",
    "select_model_files",
    "stage_model_folder",
]

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
REQUIRED_FILES = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
# The allow-list of a model folder's files that are published (paths relative to the folder; the remote code's own
# file names are added by `select_model_files`). A LoRA adapter kept beside the weights (`--keep-adapter`) is too.
MODEL_REPO_FILES = (
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "adapter_config.json",
    "additional_chat_templates/*.jinja",  # the processor's named chat templates (plain, original_inference)
    *_TOKENIZER_FILES,
    *(f"ocr_tokenizer/{name}" for name in _TOKENIZER_FILES),
)
PROCESSOR_AUTO_MAP = {"AutoProcessor": "processing_patentlmm.PatentLMMProcessor"}


def check_no_links_leaving(folder: str | os.PathLike) -> None:
    """Raises `ValueError` listing every symbolic link under `folder` (to a file or a folder, at any depth) whose
    target lies outside `folder` or does not exist: publishing would upload what it points to (a token file, a home
    folder). Links that stay inside `folder` are fine. Links are never followed while looking."""
    root = Path(folder).resolve()
    leaving = []
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        for name in sorted([*subdirectories, *files]):
            path = Path(directory, name)
            if not path.is_symlink():
                continue
            target = path.resolve()  # the link chain followed to its end
            if not target.exists() or not target.is_relative_to(root):
                leaving.append(f"{path.relative_to(root).as_posix()} -> {os.readlink(path)}")
    if leaving:
        raise ValueError(
            f"{folder} holds symbolic links that leave the folder or point nowhere; nothing is published, since they "
            f"would upload what they point to: {'; '.join(leaving)}. Copy the files they should contribute into the "
            "folder (e.g. `cp -L`) or remove the links."
        )


def _remote_code_files() -> list[Path]:
    """The source files of the model and the processor, each with the files it imports relatively."""
    import modeling_patentlmm.modeling_patentlmm as modeling
    import processing.processing_patentlmm as processing

    sources = (modeling.__file__, processing.__file__)
    return [Path(path) for source in sources for path in [source, *get_relative_import_files(source)]]


def select_model_files(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(files to publish, entries left out) of a model folder, as sorted relative paths; a left-out folder is named
    once, with a trailing `/`. Published: the `MODEL_REPO_FILES` patterns and the remote code's file names."""
    folder = Path(folder)
    allowed = (*MODEL_REPO_FILES, *(path.name for path in _remote_code_files()))
    published, left_out = [], set()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        depth = relative.count("/")  # fnmatch's * crosses "/": checkpoint-5/model.safetensors must not match
        if path.is_file() and any(fnmatch(relative, p) and p.count("/") == depth for p in allowed):
            published.append(relative)
        elif path.is_file() or path.is_symlink():
            top = relative.split("/")[0]
            left_out.add(top + "/" if (folder / top).is_dir() else top)
    return published, sorted(left_out)


def select_dataset_files(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(files to publish, entries left out) of a built dataset folder, as `select_model_files` gives them, after
    checking that nothing published is broken. Published: `README.md` (the card) and every `*.parquet` file.

    Raises `ValueError` for links leaving the folder, a Parquet file whose footer does not parse, or a card config
    whose `data_files` pattern matches no published file; `FileNotFoundError` without a card.
    """
    folder = Path(folder)
    check_no_links_leaving(folder)
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(f"{folder} has no README.md dataset card: build it with `patentlmm dataset build`.")
    published, left_out = ["README.md"], set()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and path.suffix == ".parquet":
            _check_parquet(path)
            published.append(relative)
        elif relative != "README.md" and (path.is_file() or path.is_symlink()):
            top = relative.split("/")[0]
            left_out.add(top + "/" if (folder / top).is_dir() else top)
    _check_card_data_files(folder / "README.md", published)
    return sorted(published), sorted(left_out)


def _check_parquet(path: Path) -> None:
    """`ValueError` naming `path` unless its Parquet footer (schema, row groups) parses; reads no row."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except Exception as error:  # ArrowInvalid, OSError: a truncated or foreign file
        raise ValueError(f"{path} is not a valid Parquet file: {str(error).splitlines()[0]}") from error


def _check_card_data_files(card: Path, published: Sequence[str]) -> None:
    """`ValueError` when a `configs` entry of the card names data files that match no published file."""
    from huggingface_hub import DatasetCard

    configs = DatasetCard.load(card).data.to_dict().get("configs") or []
    for config in configs:
        data_files = config.get("data_files") or []
        entries = [data_files] if isinstance(data_files, (str, dict)) else data_files
        for entry in entries:
            for pattern in [entry] if isinstance(entry, str) else _as_list(entry.get("path")):
                if not any(fnmatch(name, pattern) for name in published):
                    raise ValueError(
                        f"{card}: config {config.get('config_name')!r} names data files {pattern!r} that match no "
                        "Parquet file of the folder: the published dataset would not load."
                    )


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _check_model_folder(source: Path) -> None:
    """`FileNotFoundError` for missing model/processor files, `ValueError` for pickled-only or unparsable weights."""
    missing = [name for name in REQUIRED_FILES if not (source / name).is_file()]
    if not list(source.glob("*.safetensors")):
        pickles = sorted(p.name for p in source.glob("*") if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ValueError(
                f"{source} holds pickled files ({', '.join(pickles)}) and no safetensors weights: only safetensors "
                "are published (load the weights with torch.load(weights_only=True) and save them as safetensors)."
            )
        missing.append("*.safetensors")
    if missing:
        raise FileNotFoundError(f"{source} is not a PatentLMM model + processor folder: missing {', '.join(missing)}.")
    check_weights(source)


def stage_model_folder(
    folder: str | os.PathLike,
    staging_dir: str | os.PathLike,
    widget_images: Sequence[str | os.PathLike] = (),
) -> Path:
    """Copies the files of `folder` that a model repo needs (`select_model_files`) to `staging_dir`, logs what was
    left out, and completes the copy: remote code, `auto_map`, generation config, widget images.

    Raises `FileNotFoundError` for missing model/processor files and `ValueError` for symbolic links that leave the
    folder (`check_no_links_leaving`) and weights that are pickles only or do not parse.
    """
    source, staging = Path(folder), Path(staging_dir)
    check_no_links_leaving(source)
    _check_model_folder(source)
    published, left_out = select_model_files(source)
    if left_out:
        logger.warning("Left out of the model repo (not model files): %s", ", ".join(left_out))
    for relative in published:
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, staging / relative)
    _add_remote_code(staging)
    if not (staging / "generation_config.json").is_file():
        generation_config(PatentLMMConfig.from_pretrained(staging)).save_pretrained(staging)
    if widget_images:
        (staging / "examples").mkdir(exist_ok=True)
        for image in widget_images:
            shutil.copy(image, staging / "examples" / Path(image).name)
    return staging


def _add_remote_code(staging: Path) -> None:
    """Adds the model's and processor's source files (each with the files it imports relatively, flat) where the
    folder lacks them, and the `auto_map` entries that point the Auto classes at them."""
    for path in _remote_code_files():
        if not (staging / path.name).is_file():
            shutil.copy(path, staging / path.name)
    _update_json(staging / "config.json", auto_map=dict(AUTO_MAP))
    _update_json(staging / "processor_config.json", auto_map=PROCESSOR_AUTO_MAP)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(content, dict):
        raise ValueError(f"{path} holds a JSON {type(content).__name__}, not an object.")
    return content


def _update_json(path: Path, **values: Any) -> None:
    content = _read_json(path)
    content.update(values)
    with atomic_write(path) as handle:
        handle.write(json.dumps(content, indent=2, sort_keys=True) + "\n")
