"""Publishing: a staged model folder with its card, or a built dataset folder, uploaded to a Hub repo."""

from __future__ import annotations

import glob
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi

from patentlmm.assets import FIGURES
from patentlmm.hub.cards import build_model_card
from patentlmm.hub.files import select_dataset_files, stage_model_folder
from patentlmm_common.fields import option
from processing.constants import DESCRIPTION_TYPES

__all__ = ["NUM_WIDGET_IMAGES", "PushOptions", "push_dataset", "push_model", "read_metrics"]

logger = logging.getLogger(__name__)

NUM_WIDGET_IMAGES = 3  # bundled figures shown in the card's widget when none are given
MODEL_COMMIT_MESSAGE = "Upload PatentLMM"
DATASET_COMMIT_MESSAGE = "Upload PatentDesc-355k"


@dataclass
class PushOptions:
    """Where and how `push_model` / `push_dataset` publish (also the options of `patentlmm push`). The token is
    never a command-line option: `HF_TOKEN` or `huggingface-cli login` provides it when `token` is None."""

    repo_id: str = option(help="owner/name on the Hub")
    private: bool = option(False, help="create the repo as private")
    revision: str | None = option(None, help="branch to push to (created when missing); default main")
    commit_message: str | None = option(None, help=f"default: {MODEL_COMMIT_MESSAGE!r} / {DATASET_COMMIT_MESSAGE!r}")
    desc_type: str = option(DESCRIPTION_TYPES[0], flag="--type", choices=DESCRIPTION_TYPES, help="model: its task")
    metrics: Path | None = option(None, help="model: JSON written by `patentlmm eval --output`, for the card")
    base_model: str | None = option(None, help="model: Hub id of the base LLM, for the card")
    widget_images: list[Path] | None = option(
        None, flag="--widget-image", nargs="+", metavar="PNG", help="model: widget figures; default: bundled figures"
    )
    staging_dir: Path | None = option(None, help="model: where the folder to upload is completed")
    dry_run: bool = option(False, help="model: write the staged folder (--staging-dir) only; upload nothing")
    token: str | None = None


def read_metrics(path: str | os.PathLike, desc_type: str) -> dict[str, float]:
    """The `desc_type` scores of a `patentlmm eval --output` file (`{type: {"metrics": {...}, ...}}`)."""
    try:
        return dict(json.loads(Path(path).read_text(encoding="utf-8"))[desc_type]["metrics"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path} is not a `patentlmm eval --output` file with {desc_type!r} metrics: {error!r}"
        ) from error


def push_model(folder: str | os.PathLike, options: PushOptions) -> str:
    """Stages `folder` with its card and uploads it to `options.repo_id`; returns the commit URL (or the staged
    folder when `options.dry_run`)."""
    if options.dry_run and options.staging_dir is None:
        raise ValueError("--dry-run needs --staging-dir: the folder that would be uploaded is written there.")
    widget_images = options.widget_images
    if widget_images is None:
        widget_images = sorted(FIGURES.glob("*.png"))[:NUM_WIDGET_IMAGES]
    metrics = read_metrics(options.metrics, options.desc_type) if options.metrics else None
    with tempfile.TemporaryDirectory() as temporary:
        staging = stage_model_folder(folder, options.staging_dir or temporary, widget_images)
        card = build_model_card(
            options.repo_id, options.desc_type, metrics, options.base_model, widget_images=widget_images
        )
        card.save(staging / "README.md")
        if options.dry_run:
            return str(staging)
        return _upload(staging, "model", options, MODEL_COMMIT_MESSAGE)


def push_dataset(folder: str | os.PathLike, options: PushOptions) -> str:
    """Uploads the card and the Parquet files of a built `patentdesc-355k/` folder as a dataset repo, after checking
    them (`select_dataset_files`); logs what else the folder holds, which is left out."""
    folder = Path(folder)
    published, left_out = select_dataset_files(folder)
    if left_out:
        logger.warning("Left out of the dataset repo (not dataset files): %s", ", ".join(left_out))
    return _upload(folder, "dataset", options, DATASET_COMMIT_MESSAGE, [glob.escape(name) for name in published])


def _upload(
    folder: Path, repo_type: str, options: PushOptions, default_message: str, allow_patterns: list[str] | None = None
) -> str:
    """Creates the repo (and branch) when missing, uploads `folder` (the files matching `allow_patterns`, default
    all) in one commit; returns the commit URL."""
    api = HfApi(token=options.token)
    repo_id, revision = options.repo_id, options.revision
    api.create_repo(repo_id, repo_type=repo_type, private=options.private, exist_ok=True)
    if revision is not None and revision != "main":
        api.create_branch(repo_id, repo_type=repo_type, branch=revision, exist_ok=True)
    commit = api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type=repo_type,
        revision=revision,
        commit_message=options.commit_message or default_message,
        allow_patterns=allow_patterns,
    )
    logger.info("Uploaded %s to %s (%s)", folder, repo_id, repo_type)
    return commit.commit_url
