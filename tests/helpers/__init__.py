"""Shared test helpers: the repository's paths, the other virtualenvs' interpreters, and running code outside it."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "patentlmm" / "assets" / "figures"
SCRIPTS = Path(__file__).resolve().parent / "scripts"

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
