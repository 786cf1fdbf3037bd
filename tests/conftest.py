"""Shared fixtures: a tiny random-weight PatentLMM (real tokenizers, built offline) and the bundled real figures."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "examples" / "figures"


@pytest.fixture(scope="session")
def figures() -> dict[str, dict]:
    """Image id -> {"path", "brief_description", "detailed_description", ...} for the bundled real figures."""
    entries = json.loads((FIGURES / "descriptions.json").read_text(encoding="utf-8"))
    return {image_id: {**entry, "path": FIGURES / f"{image_id}.png"} for image_id, entry in entries.items()}


@pytest.fixture(scope="session")
def tiny():
    """(model, processor): a tiny random PatentLMM in eval mode and its processor, shared by the session."""
    from patentlmm.tiny import build_tiny

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
    """Interpreter of a virtualenv with transformers 4.57.x (and without patentlmm), from
    `PATENTLMM_TRANSFORMERS4_PYTHON`. `.ci/run` builds it; locally the tests skip without it, in CI they fail."""
    python = os.environ.get("PATENTLMM_TRANSFORMERS4_PYTHON")
    if python and Path(python).is_file():
        return python
    message = "PATENTLMM_TRANSFORMERS4_PYTHON is not set to a transformers 4.57 interpreter (see .ci/run)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


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
