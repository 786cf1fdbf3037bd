"""The PP-OCR parts (`processing/ocr_pp.py`): a missing `ocr` extra is an error naming it."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import REPO


def test_missing_optional_engine_names_the_pip_extra(tmp_path):
    """A real absence: the child's import system cannot find rapidocr_onnxruntime."""
    script = (
        "import sys; sys.modules['rapidocr_onnxruntime'] = None\n"
        "from PIL import Image\n"
        "from processing.ocr_base import OcrEngineNotInstalledError\n"
        "from processing.ocr_engines import load_ocr_engine\n"
        "try:\n"
        "    load_ocr_engine('drawing')(Image.new('RGB', (64, 64), 'white'))\n"
        "except OcrEngineNotInstalledError as error:\n"
        "    print('ERROR', error)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ERROR" in result.stdout and "pip install 'patentlmm[ocr]'" in result.stdout
