"""Loading a PatentLMM folder or Hub repo for inference: the model on its device and dtype, and its processor."""

from __future__ import annotations

from pathlib import Path

import torch

from modeling_patentlmm import PatentLMMForConditionalGeneration
from processing import PatentLMMProcessor

__all__ = ["DTYPES", "load_model_and_processor", "resolve_dtype"]

DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_dtype(device: str, dtype: str) -> str:
    """`dtype`, or for `"auto"`: bfloat16 on a GPU that supports it, float16 on other GPUs, float32 on a CPU."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def load_model_and_processor(
    model_name_or_path: str, device: str | None = None, dtype: str = "auto"
) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """The model (in eval mode, on `device`: default cuda if available, else cpu; dtype as `resolve_dtype`) and the
    processor of a PatentLMM folder or Hub repo."""
    _check_model_folder(model_name_or_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = PatentLMMForConditionalGeneration.from_pretrained(
        model_name_or_path, dtype=getattr(torch, resolve_dtype(device, dtype))
    )
    processor = PatentLMMProcessor.from_pretrained(model_name_or_path)
    return model.to(device).eval(), processor


def _check_model_folder(model_name_or_path: str) -> None:
    """For a local folder, a one-line error naming what is missing or damaged (no `config.json`, no
    `ocr_tokenizer/`, weights that do not parse) before transformers reports it less clearly. Hub ids pass."""
    folder = Path(model_name_or_path)
    if not folder.is_dir():
        return
    from patentlmm.hub.files import check_weights  # the same check as before a push

    for name in ("config.json", "ocr_tokenizer"):
        if not (folder / name).exists():
            raise FileNotFoundError(
                f"{folder} is not a PatentLMM folder: it has no {name} (save_pretrained writes the model's config, "
                "the processor its OCR tokenizer in ocr_tokenizer/)."
            )
    if not check_weights(folder):
        raise FileNotFoundError(f"{folder} holds no *.safetensors weights.")
