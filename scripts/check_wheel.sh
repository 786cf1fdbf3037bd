#!/usr/bin/env bash
# Builds the wheel, installs it (`pip install`, not `-e`) into a fresh virtualenv, and runs the installed commands
# from a folder outside the checkout: `patentlmm demo --help`, `patentlmm init-tiny DIR`, and a 4-token
# `patentlmm describe` of a bundled figure, found through `patentlmm.assets.FIGURES` inside the installed package.
# pip's cache is reused; torch==2.13.0 (CPU) is installed first, so that the extras keep that build.
# Usage: bash scripts/check_wheel.sh      (`.ci/run` runs it after the test suite)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "==> wheel"
# From a copy of the files git tracks or would track: an in-tree build leaves build/, whose stale files would go into
# later wheels.
mkdir "$work/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf -) |
    tar -xf - -C "$work/src"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$work/src"
wheel="$(ls "$work"/dist/patentlmm-*.whl)"
echo "==> fresh virtualenv: $torch_spec, then $(basename "$wheel")[tiny,ocr]"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --no-compile "$torch_spec"
"$work/venv/bin/python" -m pip install --quiet --no-compile "$wheel[tiny,ocr]"

cd "$work"  # nothing of the checkout is importable from here
unset PYTHONPATH
export PATH="$work/venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
figure="$(python -c "from patentlmm.assets import FIGURES; print(FIGURES / 'US20250204297A1__8.png')")"
case "$figure" in
    "$work"/venv/*) ;;
    *) echo "error: the bundled figures were found at $figure, not inside the installed package" >&2; exit 1 ;;
esac
echo "==> patentlmm demo --help"
patentlmm demo --help >/dev/null
echo "==> patentlmm init-tiny tiny"
patentlmm init-tiny tiny
echo "==> patentlmm describe --model tiny --max-new-tokens 4 $(basename "$figure")"
description="$(patentlmm describe --model tiny --max-new-tokens 4 "$figure")"
case "$description" in
    US20250204297A1__8$'\t'*) echo "$description" ;;
    *) echo "error: describe printed no line for US20250204297A1__8: $description" >&2; exit 1 ;;
esac
echo "==> the installed wheel works (${SECONDS} s)"
