"""Assembling a PatentLMM processor from parts, the way the original pipeline set them up.

Shared by `init-tiny`, `convert-original` and (later) training from a base LLM.
"""

from __future__ import annotations

from transformers import LayoutLMv3ImageProcessor, PreTrainedTokenizerBase

from modeling_patentlmm import PatentLMMConfig
from processing import PatentLMMProcessor
from processing.constants import DEFAULT_IMAGE_TOKEN
from processing.ocr import DEFAULT_OCR_ENGINE

__all__ = ["build_processor", "prepare_decoder_tokenizer"]


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
