"""CPU precision: native-bfloat16 detection on given flag sets, `--quantize int8` (torchao) against float32."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO, SCRIPTS
from patentlmm.inference.describe import DescribeOptions, describe
from patentlmm.inference.loading import dtype_reason, resolve_dtype
from patentlmm.inference.precision import check_quantize, cpu_flags, native_bf16_flag

TORCHAO_ENV = "PATENTLMM_TORCHAO_PATH"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"sse4_2", "avx2", "avx512f", "avx512bw"}, None),  # AVX-512 without BF16: emulated
        ({"avx2", "avx512f", "avx512_bf16"}, "avx512_bf16"),  # Cooper Lake, Zen 4
        ({"avx512_bf16", "amx_tile", "amx_bf16"}, "amx_bf16"),  # Sapphire Rapids
        ({"neon", "asimd"}, None),
        (set(), None),
    ],
)
def test_native_bfloat16_is_detected_from_the_flags(flags, expected):
    assert native_bf16_flag(flags) == expected
    assert resolve_dtype("cpu", "auto", frozenset(flags)) == ("bfloat16" if expected else "float32")
    assert resolve_dtype("cpu", "float32", frozenset(flags)) == "float32"
    reason = dtype_reason("cpu", "auto", frozenset(flags))
    assert reason == (
        f"bfloat16 (auto: the CPU has {expected})"
        if expected
        else "float32 (auto: the CPU has no amx_bf16/avx512_bf16)"
    )


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512_bf16\nbugs\t\t: spectre\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(("device", "dtype"), [("cuda", "bfloat16"), ("cpu", "float16")])
def test_quantize_on_an_unsupported_device_or_dtype_is_a_one_line_error(tiny_dir, figures, device, dtype):
    expected = (
        f"--quantize int8 is supported on a CPU in float32 or bfloat16 (the transformers backend), not on {device}"
    )
    with pytest.raises(ValueError, match="^" + expected.replace("(", r"\(").replace(")", r"\)")):
        check_quantize("int8", device, dtype)
    options = DescribeOptions(
        images=[figures["US20250204297A1__1"]["path"]], device=device, dtype=dtype, quantize="int8"
    )
    with pytest.raises(ValueError, match="supported on a CPU in float32 or bfloat16"):
        describe(tiny_dir, options)


def test_int8_decoder_agrees_with_float32():
    """Teacher-forced: at each of 24 greedy float32 steps on three figures, the int8 decoder's next token is the same
    (>= 90% of steps; 68 of 72 here: a random tiny model's logits are nearly flat, so ties flip). torchao runs in a
    process of its own (`TORCHAO_ENV`): imported, it prints warnings to stderr in every process."""
    path = os.environ.get(TORCHAO_ENV, "").strip()
    if not path:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{TORCHAO_ENV} is not set; CI must run the int8 check.", pytrace=False)
        pytest.skip(f"{TORCHAO_ENV} is not set (a folder with torchao installed, as scripts/test.sh makes)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), path]), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "int8_agreement.py")], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["lm_head"] == "Int8Tensor" and report["encoder"] == "Parameter"  # the decoder only
    assert report["teacher_forced"] and report["agreement"] >= 0.9, report
