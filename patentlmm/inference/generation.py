"""Greedy descriptions of one batch of figures with `generate`, and the default cap on their new tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from modeling_patentlmm import PatentLMMForConditionalGeneration
from patentlmm.assembly.components import DEFAULT_MAX_NEW_TOKENS
from processing import PatentLMMProcessor
from processing.prepared_figures import PreparedFigure
from processing.prompts import tokenize_prompt

__all__ = ["CACHES", "DEFAULT_CACHE", "ORIGINAL_INFERENCE", "default_max_new_tokens", "generate_batch"]

DEFAULT_CACHE = "static"  # `generate`'s KV cache preallocated for prompt + new tokens (see `generate_batch`)
CACHES = (DEFAULT_CACHE, "dynamic")  # the `--cache` choices; "dynamic" grows the cache at each step
ORIGINAL_INFERENCE = "original_inference"  # the prompt format that also takes the original script's other settings


def default_max_new_tokens(processor: PatentLMMProcessor, prompt: str, prompt_format: str) -> int:
    """`DEFAULT_MAX_NEW_TOKENS`, or for `original_inference` that cap minus the prompt's tokens (the figure counted
    once), as the original's `generate(max_length=512)` (see `DEFAULT_MAX_NEW_TOKENS`)."""
    if prompt_format != ORIGINAL_INFERENCE:
        return DEFAULT_MAX_NEW_TOKENS
    return DEFAULT_MAX_NEW_TOKENS - len(tokenize_prompt(processor.tokenizer, prompt, processor.image_token))


@torch.inference_mode()
def generate_batch(
    model: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    figures: Sequence[PreparedFigure],
    prompt: str,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    cache_implementation: str | None = DEFAULT_CACHE,
    pad_to_square: bool | None = None,
    no_repeat_ngram_size: int = 0,
    logits_processor: Sequence[LogitsProcessor] = (),
) -> list[str]:
    """Greedy descriptions of `figures` (`processor.prepare`'s) in one left-padded batch.

    `no_repeat_ngram_size` > 0 forbids generating any token n-gram of that size twice (transformers'
    `NoRepeatNGramLogitsProcessor`): a guard against the loops that small models fall into under greedy decoding
    ("... with the actuator with the actuator ..."); 0 (default) is the paper's plain greedy decoding.

    `cache_implementation` is `generate`'s: "static" (default) preallocates the KV cache for the prompt plus
    `max_new_tokens` instead of growing it by a copy at every step (1.3-1.7x faster decoding on a CPU, the same
    tokens); None gives transformers' dynamic cache. `pad_to_square` overrides the processor's. `logits_processor`
    goes to `generate` (e.g. `patentlmm.inference.grounding.GroundingLogitsProcessor`, one row per figure).
    """
    inputs = processor(
        images=list(figures), text=[prompt] * len(figures), padding_side="left", pad_to_square=pad_to_square
    ).to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    generated = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        no_repeat_ngram_size=no_repeat_ngram_size,
        cache_implementation=cache_implementation,
        logits_processor=LogitsProcessorList(logits_processor),
    )
    return processor.batch_decode(generated[:, inputs["input_ids"].shape[1] :])  # (B, <= max_new_tokens) new tokens
