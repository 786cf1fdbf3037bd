"""CPU precision: native-bfloat16 detection on given flag sets, `--quantize int8` (torchao) against float32."""

from __future__ import annotations

import copy

import pytest
import torch

from patentlmm.inference.describe import DescribeOptions, describe
from patentlmm.inference.loading import dtype_reason, resolve_dtype
from patentlmm.inference.precision import check_quantize, cpu_flags, native_bf16_flag, quantize_decoder
from processing import build_prompt

IDS = ["US20250204297A1__1", "US20250204297A1__8", "US20250204297A1__12"]


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
    options = DescribeOptions(images=[figures[IDS[0]]["path"]], device=device, dtype=dtype, quantize="int8")
    with pytest.raises(ValueError, match="supported on a CPU in float32 or bfloat16"):
        describe(tiny_dir, options)


def test_int8_decoder_agrees_with_float32(tiny, figures):
    """Teacher-forced: at each of 24 greedy float32 steps on three figures, the int8 decoder's next token is the same
    (>= 90% of steps; 68 of 72 here: a random tiny model's logits are nearly flat, so ties flip)."""
    pytest.importorskip("torchao")
    model, processor = tiny
    quantized = quantize_decoder(copy.deepcopy(model), "int8")
    assert type(quantized.lm_head.weight).__name__ == "Int8Tensor"
    assert type(quantized.model.vision_tower.encoder.layer[0].attention.self.query.weight).__name__ == "Parameter"
    prepared = processor.prepare([str(figures[i]["path"]) for i in IDS])
    inputs = processor(images=prepared, text=[build_prompt("brief", "vicuna_v1")] * len(IDS), padding_side="left")
    with torch.inference_mode():
        generated = model.generate(**inputs, max_new_tokens=24, min_new_tokens=24, do_sample=False)
        full = {
            **inputs,
            "input_ids": generated,
            "attention_mask": torch.cat([inputs["attention_mask"], torch.ones(len(IDS), 24, dtype=torch.long)], dim=1),
        }
        steps = slice(-25, -1)  # the logits that chose each new token
        reference = model(**full).logits[:, steps].argmax(-1)
        int8 = quantized(**full).logits[:, steps].argmax(-1)
    assert torch.equal(reference, generated[:, -24:])
    assert (reference == int8).float().mean() >= 0.9
