"""Shared fixtures: a tiny random-weight PatentLMM (real tokenizers, built offline) and the bundled real figures."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

# A datasets cache of this session's own: `load_dataset` keys a local folder's cache by its path, and pytest reuses
# its temporary paths across sessions, so a cache left by an earlier session (whose image files are gone) was read.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="patentlmm-test-datasets-cache-")

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "patentlmm" / "assets" / "figures"


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


TRANSFORMERS4_ENV = "PATENTLMM_TRANSFORMERS4_PYTHON"
VLLM_ENV = "PATENTLMM_VLLM_PYTHON"


def python_from_env(name: str, what: str, check: str) -> str:
    """The interpreter of another virtualenv, from `$name` (`scripts/test.sh` builds each). Unset: the test is
    skipped locally but FAILS in CI (`$CI` set), where `check` must run. Not an executable file: always a failure."""
    path = os.environ.get(name, "").strip()
    if not path:
        message = f"{name} is not set (the path of a Python with {what} installed)"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{message}; CI must run {check}.", pytrace=False)
        pytest.skip(message)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{name}={path!r} is not an executable file.", pytrace=False)
    return path


def find_transformers4_python() -> str:
    """A Python with transformers 4.57 (and without patentlmm): `$PATENTLMM_TRANSFORMERS4_PYTHON`."""
    return python_from_env(TRANSFORMERS4_ENV, "transformers 4.57", "the transformers 4 compatibility check")


@pytest.fixture(scope="session")
def transformers4_python() -> str:
    return find_transformers4_python()


def run_outside_repo(python: str, script: Path, *args: str, timeout: int = 300) -> str:
    """Runs `script` with `python` from a temporary folder, offline, so neither the repository nor an installed
    patentlmm can be imported by accident; returns stdout, failing the test with stderr on error."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
    with tempfile.TemporaryDirectory() as cwd:
        result = subprocess.run(
            [python, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    if result.returncode != 0:
        pytest.fail(f"{script.name} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout
