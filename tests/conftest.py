"""Shared fixtures: a tiny random-weight PatentLMM (real tokenizers, built offline) and the bundled real figures."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from helpers import FIGURES, find_transformers4_python

# A datasets cache of this session's own: `load_dataset` keys a local folder's cache by its path, and pytest reuses
# its temporary paths across sessions, so a cache left by an earlier session (whose image files are gone) was read.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="patentlmm-test-datasets-cache-")



@pytest.fixture(scope="session")
def figures() -> dict[str, dict]:
    """Image id -> {"path", "brief_description", "detailed_description", ...} for the bundled real figures."""
    entries = json.loads((FIGURES / "descriptions.json").read_text(encoding="utf-8"))
    return {image_id: {**entry, "path": FIGURES / f"{image_id}.png"} for image_id, entry in entries.items()}


@pytest.fixture(scope="session")
def tiny():
    """(model, processor): a tiny random PatentLMM in eval mode and its processor, shared by the session."""
    from patentlmm.assembly.tiny import build_tiny

    return build_tiny()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny) -> Path:
    """The session's tiny model and processor saved as a remote-code folder."""
    model, processor = tiny
    folder = tmp_path_factory.mktemp("tiny-patentlmm")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def transformers4_python() -> str:
    return find_transformers4_python()
