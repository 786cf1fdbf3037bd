"""Assembling a PatentLMM from parts: config, tokenizer, processor and generation defaults."""

from __future__ import annotations

from typing import Any

from transformers import GenerationConfig, LayoutLMv3Config, LayoutLMv3ImageProcessor, PreTrainedTokenizerBase

from modeling_patentlmm import PatentLMMConfig
from processing import PatentLMMProcessor
from processing.constants import DEFAULT_IMAGE_TOKEN, DEFAULT_MAX_OCR_TOKENS
from processing.ocr_engines import DEFAULT_OCR_ENGINE

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "DTYPES",
    "build_config",
    "build_processor",
    "generation_config",
    "prepare_decoder_tokenizer",
]

# The saved generation config's cap on new tokens. The original's `generate(max_length=512)`
# (finetuned_inference.py:135) counted its prompt too: `describe --prompt-format original_inference` caps the same way.
DEFAULT_MAX_NEW_TOKENS = 512
# The dtypes a model is saved or run in, by their torch names (`getattr(torch, name)`); the commands add `auto`.
DTYPES = ("float32", "bfloat16", "float16")


def prepare_decoder_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Adds `<image>` as a special token when absent (the original used the sentinel id -200 instead), pads with
    `<unk>` when there is no pad token (as LLaVA-1.5), on the left (for batched generation). Changes `tokenizer`."""
    if DEFAULT_IMAGE_TOKEN not in tokenizer.get_vocab():
        # The list is "extra_special_tokens" on transformers 5, "additional_special_tokens" on 4.x; keep its entries.
        existing = getattr(tokenizer, "extra_special_tokens", None) or getattr(
            tokenizer, "additional_special_tokens", []
        )
        tokenizer.add_special_tokens({"additional_special_tokens": [*existing, DEFAULT_IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    tokenizer.padding_side = "left"
    return tokenizer


def build_processor(
    config: PatentLMMConfig,
    tokenizer: PreTrainedTokenizerBase,
    ocr_tokenizer: PreTrainedTokenizerBase,
    ocr_engine: str | dict = DEFAULT_OCR_ENGINE,
) -> PatentLMMProcessor:
    """The processor matching `config`: the encoder's input size, mean = std = 0.5 (PatentMME's normalisation), OCR
    run by the processor itself with `ocr_engine` (the image processor's own `apply_ocr` is off). New models read
    figures with the `drawing` engine; `convert-original` passes `"tesseract"`, what the official weights saw."""
    size = config.vision_config.input_size
    image_processor = LayoutLMv3ImageProcessor(
        apply_ocr=False, size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    return PatentLMMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        ocr_tokenizer=ocr_tokenizer,
        num_image_patches=config.num_image_patches,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        max_ocr_tokens=config.max_ocr_tokens,
        ocr_engine=ocr_engine,
    )


def build_config(
    tokenizer: PreTrainedTokenizerBase,
    vision_config: LayoutLMv3Config | dict,
    text_config: Any,
    **settings: Any,
) -> PatentLMMConfig:
    """PatentLMM's config from its decoder `tokenizer` (prepared by `prepare_decoder_tokenizer`: the `<image>` id and
    the special ids come from it) and the two sub-configs; `settings` are the other `PatentLMMConfig` arguments.
    `max_ocr_tokens` defaults to `DEFAULT_MAX_OCR_TOKENS`, or fewer when the encoder has fewer text positions (two
    are offset slots)."""
    vision = vision_config if isinstance(vision_config, dict) else vision_config.to_dict()
    settings.setdefault("max_ocr_tokens", min(DEFAULT_MAX_OCR_TOKENS, vision.get("max_position_embeddings", 514) - 2))
    return PatentLMMConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **settings,
    )


def generation_config(config: PatentLMMConfig) -> GenerationConfig:
    """The generation defaults every saved folder carries: greedy, at most `DEFAULT_MAX_NEW_TOKENS` new tokens, and
    `<image>` never generated."""
    return GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        do_sample=False,
        max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
        suppress_tokens=[config.image_token_id],
    )
