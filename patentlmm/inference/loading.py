"""Loading a PatentLMM folder or Hub repo for inference: the model on its device and dtype, and its processor."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from modeling_patentlmm import PatentLMMConfig, PatentLMMForConditionalGeneration
from patentlmm.inference.inputs import InputError
from patentlmm.inference.precision import check_quantize, cpu_flags, native_bf16_flag, quantize_decoder
from patentlmm_common.weights import check_weights  # the same check as before a push
from processing import PatentLMMProcessor

__all__ = ["dtype_reason", "load_model_and_processor", "resolve_dtype"]


def resolve_dtype(device: str, dtype: str, flags: frozenset[str] | None = None) -> str:
    """`dtype`, or for `"auto"`: bfloat16 on a GPU that supports it, float16 on other GPUs; on a CPU bfloat16 where
    its `flags` (default: this CPU's) show native bfloat16 (`precision.BF16_CPU_FLAGS`), else float32."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if native_bf16_flag(cpu_flags() if flags is None else flags) else "float32"


def dtype_reason(device: str, dtype: str, flags: frozenset[str] | None = None) -> str:
    """The dtype `resolve_dtype` picks and why, for a log line: "bfloat16 (auto: the CPU has avx512_bf16)"."""
    picked = resolve_dtype(device, dtype, flags)
    if dtype != "auto":
        return picked
    if device.startswith("cuda"):
        return f"{picked} (auto: {device})"
    flag = native_bf16_flag(cpu_flags() if flags is None else flags)
    return f"{picked} (auto: the CPU has {flag})" if flag else f"{picked} (auto: the CPU has no amx_bf16/avx512_bf16)"


def load_model_and_processor(
    model_name_or_path: str, device: str | None = None, dtype: str = "auto", quantize: str = "none"
) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """The model (in eval mode, on `device`: default cuda if available, else cpu; dtype as `resolve_dtype`; the
    decoder in weight-only int8 for `quantize` "int8", `precision.quantize_decoder`) and the processor of a PatentLMM
    folder or Hub repo. Raises `InputError` for a folder of another `model_type` and for weights holding NaN or inf
    (naming the tensors)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = resolve_dtype(device, dtype)
    check_quantize(quantize, device, dtype)
    _check_model_folder(model_name_or_path)
    model = PatentLMMForConditionalGeneration.from_pretrained(model_name_or_path, dtype=getattr(torch, dtype))
    model = model.to(device).eval()
    _check_finite(model, model_name_or_path)
    processor = PatentLMMProcessor.from_pretrained(model_name_or_path, trust_remote_code=False)
    return quantize_decoder(model, quantize), processor


def _check_finite(model: PatentLMMForConditionalGeneration, model_name_or_path: str) -> None:
    """Raises `InputError` naming the weights that hold NaN or inf (after the cast to the dtype asked for): such a
    model writes empty strings or noise."""
    from patentlmm.assembly.original import preview
    from patentlmm.assembly.weights import non_finite

    bad = non_finite(dict(model.named_parameters()))
    if bad:
        raise InputError(
            f"{model_name_or_path}: {len(bad)} weight tensor(s) hold NaN or inf values in {model.dtype} (damaged "
            f"weights, a diverged training run, or values beyond float16's range): {preview(bad)}."
        )


def _check_model_folder(model_name_or_path: str) -> None:
    """For a local folder, a one-line error naming what is missing or damaged (no `config.json`, no
    `ocr_tokenizer/`, weights that do not parse) before transformers reports it less clearly. Hub ids pass."""
    folder = Path(model_name_or_path)
    if not folder.is_dir():
        return
    for name in ("config.json", "ocr_tokenizer"):
        if not (folder / name).exists():
            raise FileNotFoundError(
                f"{folder} is not a PatentLMM folder: it has no {name} (save_pretrained writes the model's config, "
                "the processor its OCR tokenizer in ocr_tokenizer/)."
            )
    try:
        model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (ValueError, AttributeError) as error:
        raise InputError(f"{folder}/config.json is not a JSON object ({error}).") from None
    if model_type != PatentLMMConfig.model_type:
        raise InputError(
            f"{folder} holds a model of type {model_type!r} (config.json), not a PatentLMM model "
            f"({PatentLMMConfig.model_type!r})."
        )
    if not check_weights(folder):
        raise FileNotFoundError(f"{folder} holds no *.safetensors weights.")
