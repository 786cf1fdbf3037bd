"""CPU precision for inference: native bfloat16 detected from the CPU's flags, and int8 weight-only decoders."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch

__all__ = ["BF16_CPU_FLAGS", "QUANTIZATIONS", "check_quantize", "cpu_flags", "native_bf16_flag", "quantize_decoder"]

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs that compute bfloat16 matmuls natively
QUANTIZATIONS = ("none", "int8")  # `--quantize`: int8 = torchao's weight-only int8 for the decoder's linear layers
QUANTIZE_HINT = "`pip install 'patentlmm[quantize]'` (torchao)"


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (the first `flags` line of `cpuinfo`); empty where there is no such file."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.split(":")[0].strip() == "flags"), "flags:")
    return frozenset(line.split(":", 1)[1].split())


def native_bf16_flag(flags: Iterable[str]) -> str | None:
    """The flag of `BF16_CPU_FLAGS` that `flags` holds (AMX first), or None: the CPU emulates bfloat16."""
    flags = set(flags)
    return next((flag for flag in BF16_CPU_FLAGS if flag in flags), None)


def check_quantize(quantize: str, device: str, dtype: str) -> None:
    """A one-line ValueError unless `quantize` is "none" or weight-only int8 on a CPU in float32 or bfloat16."""
    if quantize == "none":
        return
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}, not {quantize!r}.")
    if not device.startswith("cpu") or dtype not in ("float32", "bfloat16"):
        raise ValueError(
            f"--quantize int8 is supported on a CPU in float32 or bfloat16 (the transformers backend), not on {device} "
            f"in {dtype}."
        )


def quantize_decoder(model: torch.nn.Module, quantize: str) -> torch.nn.Module:
    """`model` with its decoder's linear layers (and LM head) in torchao's weight-only int8 (`quantize` "int8"), in
    place; unchanged for "none". Check first with `check_quantize`."""
    if quantize == "none":
        return model
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    except ImportError as error:
        raise ImportError(f"--quantize int8 needs torchao: {QUANTIZE_HINT}.") from error

    def decoder_linear(module: torch.nn.Module, name: str) -> bool:
        return isinstance(module, torch.nn.Linear) and (name.startswith("model.language_model.") or name == "lm_head")

    quantize_(model, Int8WeightOnlyConfig(), filter_fn=decoder_linear)
    return model
