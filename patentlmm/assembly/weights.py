"""Fitting the original tensors to PatentLMM: the `<image>` row, an exact check of names and shapes, LoRA merged."""

from __future__ import annotations

import logging
import re

import torch
from transformers import PreTrainedTokenizerBase

from modeling_patentlmm import PatentLMMConfig, PatentLMMForConditionalGeneration
from patentlmm.assembly.original import (
    EMBEDDINGS_KEY,
    LM_HEAD_KEY,
    VISION_PREFIX,
    OriginalWeights,
    preview,
)
from processing.constants import DEFAULT_IMAGE_TOKEN

__all__ = ["cast", "checked_state_dict", "cover_vocabulary", "embeddings", "merge_lora", "non_finite"]

logger = logging.getLogger(__name__)

# Rotary frequencies are recomputed from the config; old LLaMA checkpoints stored one copy per layer.
ROTARY_BUFFER = re.compile(r"(?:^|\.)rotary_emb\.inv_freq$")


def embeddings(weights: dict[str, torch.Tensor]) -> torch.Tensor:
    if EMBEDDINGS_KEY not in weights:
        raise ValueError(
            f"No decoder embeddings ({EMBEDDINGS_KEY}, originally model.embed_tokens.weight) in the checkpoints."
        )
    return weights[EMBEDDINGS_KEY]


def cover_vocabulary(weights: dict[str, torch.Tensor], tokenizer: PreTrainedTokenizerBase) -> None:
    """Grows the embeddings and the LM head by the `<image>` row when they lack it (new rows: the mean row)."""
    rows, vocab_size = embeddings(weights).shape[0], len(tokenizer)
    if rows >= vocab_size:
        return
    if not rows == vocab_size - 1 == tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN):
        raise ValueError(
            f"The decoder tokenizer has {vocab_size} tokens but the embeddings only {rows} rows: the base LLM's "
            "tokenizer does not belong to these checkpoints."
        )
    for name in (EMBEDDINGS_KEY, LM_HEAD_KEY):
        if name in weights:
            matrix = weights[name]
            weights[name] = torch.cat([matrix, matrix.float().mean(dim=0, keepdim=True).to(matrix.dtype)])
    logger.info("Grew the embeddings and the LM head from %d to %d rows for %s.", rows, vocab_size, DEFAULT_IMAGE_TOKEN)


def checked_state_dict(original: OriginalWeights, config: PatentLMMConfig) -> dict[str, torch.Tensor]:
    """The tensors PatentLMM loads, after checking that they cover its parameters exactly and have their shapes.

    Buffers that the model recomputes (position ids, rotary frequencies) are dropped; anything else that does not fit
    raises a `ValueError` that lists the names.
    """
    with torch.device("meta"):
        model = PatentLMMForConditionalGeneration(config)
    expected = model.state_dict()
    recomputed = {name for name, _ in model.named_buffers()} - set(expected)
    state_dict = {}
    unknown = list(original.unknown)
    for name, tensor in original.weights.items():
        if name in recomputed or ROTARY_BUFFER.search(name):
            continue
        if name in expected:
            state_dict[name] = tensor
        else:
            unknown.append(f"{original.origin[name]} (as {name})")
    unknown += [f"LoRA of {module}" for module in original.lora if f"{module}.weight" not in expected]
    missing = [name for name in expected if name not in state_dict]
    mismatched = [
        f"{name} {tuple(tensor.shape)} vs {tuple(expected[name].shape)}"
        for name, tensor in state_dict.items()
        if tensor.shape != expected[name].shape
    ]
    mismatched += _lora_problems(original.lora, expected)
    if unknown or missing or mismatched:
        raise ValueError(_fit_report(unknown, missing, mismatched))
    return state_dict


def _lora_problems(lora: dict[str, dict[str, torch.Tensor]], expected: dict[str, torch.Tensor]) -> list[str]:
    """LoRA modules with a factor missing, or whose `B @ A` does not have the shape of the layer's weight."""
    problems = []
    for module, factors in lora.items():
        if set(factors) != {"A", "B"}:
            problems.append(f"{module}: LoRA factor(s) {sorted(factors)} only, A and B needed")
            continue
        weight = expected.get(f"{module}.weight")  # None: reported as unknown
        a, b = tuple(factors["A"].shape), tuple(factors["B"].shape)
        if weight is not None and (a[0] != b[1] or (b[0], a[1]) != tuple(weight.shape)):
            problems.append(f"{module}: LoRA A {a} and B {b} do not fit the layer's weight {tuple(weight.shape)}")
    return problems


def _fit_report(unknown: list[str], missing: list[str], mismatched: list[str]) -> str:
    lines = ["The original checkpoints do not fit PatentLMM's parameters:"]
    if unknown:
        lines.append(f"- {len(unknown)} tensor(s) with no PatentLMM parameter to receive them: {preview(unknown)}")
    if missing:
        lines.append(f"- {len(missing)} PatentLMM parameter(s) that no checkpoint provides: {preview(missing)}")
        if any(name.startswith(VISION_PREFIX) for name in missing):
            lines.append("  (the encoder comes from --patentmme, or from the DeepSpeed checkpoint's copy)")
    if mismatched:
        lines.append(f"- {len(mismatched)} shape mismatch(es), checkpoint vs PatentLMM: {preview(mismatched)}")
        if any(item.startswith(VISION_PREFIX) for item in mismatched):
            lines.append(
                "  (the encoder's shapes come from --vision-config, by default PatentMME-large = LayoutLMv3-large "
                "at 384 px: pass the LayoutLMv3 config the encoder was trained with)"
            )
    return "\n".join(lines)


def merge_lora(
    state_dict: dict[str, torch.Tensor], lora: dict[str, dict[str, torch.Tensor]], alpha: float, dtype: torch.dtype
) -> None:
    """W += (alpha / r) B A for every LoRA module (r = the rows of A), computed in float32 and stored in `dtype`."""
    for module, factors in lora.items():
        name = f"{module}.weight"
        a, b = factors["A"].float(), factors["B"].float()
        state_dict[name] = (state_dict[name].float() + (alpha / a.shape[0]) * (b @ a)).to(dtype)
    ranks = sorted({factors["A"].shape[0] for factors in lora.values()})
    logger.info("Merged LoRA into %d layers (r %s, alpha %g).", len(lora), "/".join(map(str, ranks)), alpha)


def cast(state_dict: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {name: t.to(dtype) if t.is_floating_point() else t for name, t in state_dict.items()}


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors holding a NaN or an infinity (each as `name (N of M values)`), in
    order; a model made of them writes empty strings or noise."""
    found = []
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not tensor.is_meta:
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                found.append(f"{name} ({bad} of {tensor.numel()} values)")
    return found
