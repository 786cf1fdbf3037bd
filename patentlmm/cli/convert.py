"""`patentlmm convert-original`: the authors' checkpoints -> a Hugging Face PatentLMM folder (docs/conversion.md)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from patentlmm.assembly.components import DTYPES
from patentlmm.assembly.convert import DEFAULT_DTYPE, DEFAULT_LORA_ALPHA, convert_original
from patentlmm.cli.arguments import add_options, options_from_args
from patentlmm_common.fields import option

__all__ = ["ConvertOptions", "add_arguments", "run"]


@dataclass
class ConvertOptions:
    """The inputs and choices of one conversion: the keyword arguments of `convert_original`."""

    output: Path = option(metavar="DIR", help="new (or empty) output folder.")
    base_llm: Path = option(
        metavar="DIR",
        help="Hugging Face folder of the base LLM (Vicuna-7B v1.5): config and tokenizer, and weights for stage 1.",
    )
    ocr_tokenizer: str = option(
        metavar="DIR_OR_ID",
        help="LayoutLMv3 tokenizer for the OCR words: a local folder or a Hub id (microsoft/layoutlmv3-large).",
    )
    patentmme: Path | None = option(
        None,
        metavar="PATH",
        help="PatentMME PyTorch Lightning checkpoint (last.ckpt), the encoder. Required with --projector; with "
        "--checkpoint the checkpoint's own copy of the encoder wins (as in the original) and PatentMME only fills "
        "in encoder tensors the checkpoint lacks.",
    )
    checkpoint: Path | None = option(
        None,
        metavar="PATH",
        help="stage-2 PatentLMM DeepSpeed file (mp_rank_00_model_states.pt): decoder + LoRA, projector, encoder. "
        "Exactly one of --checkpoint and --projector.",
    )
    projector: Path | None = option(
        None,
        metavar="PATH",
        help="stage-1 mm_projector.bin (model.mm_projector.* or base_model.model.model.mm_projector.* keys); the "
        "decoder's weights then come from --base-llm.",
    )
    keep_adapter: bool = option(
        False, help="save the unmerged decoder plus the LoRA as a PEFT adapter in the same folder, instead of merging."
    )
    lora_alpha: float = option(
        DEFAULT_LORA_ALPHA, help="LoRA alpha of the training run (default: %(default)s); r is read from the weights."
    )
    vision_config: Path | None = option(
        None,
        metavar="JSON_FILE",
        help="LayoutLMv3 config (JSON) of the encoder; default: PatentMME-large (LayoutLMv3-large at 384 px).",
    )
    dtype: str = option(
        DEFAULT_DTYPE,
        choices=["auto", *DTYPES],
        help="dtype of the saved weights (default: %(default)s, which reproduces the original inference; bfloat16 "
        "halves the size; auto keeps the checkpoints' dtype, bfloat16 for the official ones).",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ConvertOptions)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = options_from_args(ConvertOptions, args)
    try:
        output = convert_original(**dataclasses.asdict(options))
    except (FileNotFoundError, FileExistsError, ImportError, ValueError) as error:  # the documented input errors
        raise SystemExit(f"patentlmm convert-original: {error}") from error
    lora = "kept as a PEFT adapter" if options.keep_adapter else ("merged" if options.checkpoint else "none (stage 1)")
    print(f"PatentLMM written to {output} (LoRA: {lora}).")
    return 0
