"""`convert-original`: the authors' PatentMME / PatentLMM checkpoints -> a Hugging Face PatentLMM folder."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoTokenizer, LayoutLMv3Config, PreTrainedTokenizerBase

from modeling_patentlmm import PatentLMMConfig, PatentLMMForConditionalGeneration
from patentlmm.assembly.components import (
    DTYPES,
    build_config,
    build_processor,
    generation_config,
    prepare_decoder_tokenizer,
)
from patentlmm.assembly.original import (
    PEFT_PREFIX,
    PROJECTOR_PREFIX,
    load_state_dict,
    load_vision_config,
    preview,
    read_llava,
    read_stage1,
    use_patentmme_encoder,
)
from patentlmm.assembly.weights import (
    cast,
    checked_state_dict,
    cover_vocabulary,
    embeddings,
    merge_lora,
    non_finite,
)
from processing import PatentLMMProcessor
from processing.constants import DEFAULT_IMAGE_TOKEN
from processing.ocr_engines import PAPER_OCR_ENGINE

__all__ = ["DEFAULT_DTYPE", "DEFAULT_LORA_ALPHA", "convert_original"]

logger = logging.getLogger(__name__)

DEFAULT_LORA_ALPHA = 256.0  # the original stage-2 training: LoRA r 128, alpha 256
# What the original inference ran: float32 (`finetuned_inference.py:83`; its bf16 casts, :93 and :104, are commented
# out), so float32 reproduces its outputs.
DEFAULT_DTYPE = "float32"
# The encoder output the original fed the projector: its `hidden_states[-2]` (patentmme_enocder.py:48) indexes the
# vendored LayoutLMv3's output object, whose -2 is the last layer (modelling_layoutv3.py:1011-1028); in transformers'
# `hidden_states` that is -1.
ORIGINAL_VISION_FEATURE_LAYER = -1
ORIGINAL_LORA_DROPOUT = 0.05  # LLaVA-1.5's LoRA dropout; only matters if the kept adapter is trained further


def convert_original(
    output: str | os.PathLike,
    base_llm: str | os.PathLike,
    ocr_tokenizer: str | os.PathLike,
    patentmme: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    projector: str | os.PathLike | None = None,
    keep_adapter: bool = False,
    lora_alpha: float = DEFAULT_LORA_ALPHA,
    vision_config: str | os.PathLike | None = None,
    dtype: str = DEFAULT_DTYPE,
) -> Path:
    """Converts the original checkpoints (docs/conversion.md) and returns the output folder.

    Raises:
        FileNotFoundError: an input is missing.
        FileExistsError: `output` exists and is not an empty folder.
        ImportError: `keep_adapter` without PEFT installed.
        ValueError: the checkpoints hold tensors PatentLMM has no place for, miss some of its parameters, have
            other shapes than the configs, or hold pickled objects other than tensors and plain containers.
    """
    output = Path(output)
    _check_inputs(output, base_llm, patentmme, checkpoint, projector, keep_adapter, vision_config, dtype)
    encoder_config = load_vision_config(vision_config)
    tokenizer = _load_decoder_tokenizer(base_llm)
    ocr = AutoTokenizer.from_pretrained(str(ocr_tokenizer), trust_remote_code=False)

    if checkpoint is not None:
        original = read_llava(load_state_dict(checkpoint, "module"))
    else:
        original = read_stage1(load_state_dict(projector), base_llm)
    if keep_adapter and not original.lora:
        raise ValueError(f"keep_adapter needs LoRA weights, but {checkpoint} holds none.")
    if patentmme is not None:
        use_patentmme_encoder(original, load_state_dict(patentmme, "state_dict"), encoder_config)
    cover_vocabulary(original.weights, tokenizer)
    torch_dtype = embeddings(original.weights).dtype if dtype == "auto" else getattr(torch, dtype)
    config = _build_config(encoder_config, base_llm, tokenizer, original.weights, torch_dtype)
    state_dict = checked_state_dict(original, config)
    if original.lora and not keep_adapter:
        merge_lora(state_dict, original.lora, lora_alpha, torch_dtype)

    state_dict = cast(state_dict, torch_dtype)
    _refuse_non_finite(state_dict, original.lora if keep_adapter else {}, torch_dtype)
    model = PatentLMMForConditionalGeneration.from_pretrained(
        None, config=config, state_dict=state_dict, dtype=torch_dtype
    )
    model.generation_config = generation_config(config)
    processor = build_processor(config, tokenizer, ocr, ocr_engine=PAPER_OCR_ENGINE)
    _save_atomically(output, model, processor, original.lora if keep_adapter else None, lora_alpha, torch_dtype)
    logger.info("Saved PatentLMM (%.3fB parameters, %s) to %s", model.num_parameters() / 1e9, torch_dtype, output)
    return output


def _refuse_non_finite(
    state_dict: dict[str, torch.Tensor], lora: dict[str, dict[str, torch.Tensor]], dtype: torch.dtype
) -> None:
    """Raises `ValueError` naming every tensor (LoRA merged, cast to `dtype`) that holds NaN or inf: a damaged or
    diverged checkpoint, or values too large for `dtype` (float16 tops out at 65504)."""
    factors = {f"{module} LoRA {side}": tensor for module, pair in lora.items() for side, tensor in pair.items()}
    bad = non_finite({**state_dict, **factors})
    if bad:
        raise ValueError(
            f"{len(bad)} tensor(s) hold NaN or inf values in {str(dtype).removeprefix('torch.')} (a damaged or "
            f"diverged checkpoint, or values beyond the dtype's range): {preview(bad)}. Nothing was written."
        )


def _check_inputs(
    output: Path,
    base_llm: str | os.PathLike,
    patentmme: str | os.PathLike | None,
    checkpoint: str | os.PathLike | None,
    projector: str | os.PathLike | None,
    keep_adapter: bool,
    vision_config: str | os.PathLike | None,
    dtype: str,
) -> None:
    """Fails fast, before any large file is read."""
    if (checkpoint is None) == (projector is None):
        raise ValueError(
            "Pass exactly one of checkpoint (stage-2 DeepSpeed file) or projector (stage-1 mm_projector.bin)."
        )
    if projector is not None and patentmme is None:
        raise ValueError("A stage-1 projector needs the PatentMME checkpoint (patentmme) for the encoder.")
    if keep_adapter and projector is not None:
        raise ValueError("keep_adapter needs a stage-2 checkpoint: a stage-1 projector carries no LoRA.")
    if keep_adapter and importlib.util.find_spec("peft") is None:
        raise ImportError("keep_adapter writes a PEFT adapter: `pip install peft` (or `patentlmm[train]`).")
    if dtype not in ("auto", *DTYPES):
        raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {dtype!r}.")
    files = {
        "PatentMME checkpoint (--patentmme)": patentmme,
        "DeepSpeed checkpoint (--checkpoint)": checkpoint,
        "stage-1 projector (--projector)": projector,
        "vision config (--vision-config)": vision_config,
    }
    for what, path in files.items():
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{what}: no file at {path}.")
    if not (Path(base_llm) / "config.json").is_file():
        raise FileNotFoundError(
            f"Base LLM (--base-llm): {base_llm} is not a Hugging Face model folder (no config.json)."
        )
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(f"Output (--output): {output} exists and is not an empty folder.")


def _load_decoder_tokenizer(base_llm: str | os.PathLike) -> PreTrainedTokenizerBase:
    """The base LLM's tokenizer, prepared for PatentLMM (`<image>` added when absent, `<unk>` padding on the left)."""
    tokenizer = AutoTokenizer.from_pretrained(str(base_llm), trust_remote_code=False)
    had_image_token = DEFAULT_IMAGE_TOKEN in tokenizer.get_vocab()
    prepare_decoder_tokenizer(tokenizer)
    if not had_image_token:
        logger.info(
            "Added %s to the decoder tokenizer as id %d (the original used the sentinel id -200).",
            DEFAULT_IMAGE_TOKEN,
            tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN),
        )
    return tokenizer


def _build_config(
    encoder_config: LayoutLMv3Config,
    base_llm: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase,
    weights: dict[str, torch.Tensor],
    torch_dtype: torch.dtype,
) -> PatentLMMConfig:
    """PatentLMM's config: the encoder's, the base LLM's (vocabulary as the embeddings), and the projector found."""
    text_config = AutoConfig.from_pretrained(str(base_llm), trust_remote_code=False)
    text_config.vocab_size = embeddings(weights).shape[0]
    text_config.dtype = torch_dtype
    return build_config(
        tokenizer,
        encoder_config,
        text_config,
        projector_type="mlp2x_gelu" if f"{PROJECTOR_PREFIX}linear_2.weight" in weights else "linear",
        vision_feature_layer=ORIGINAL_VISION_FEATURE_LAYER,
    )


def _save_atomically(
    output: Path,
    model: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    adapter: dict[str, dict[str, torch.Tensor]] | None,
    lora_alpha: float,
    dtype: torch.dtype,
) -> None:
    """Saves `model`, the LoRA `adapter` (None: no adapter) and `processor` to `output` (absent or empty).

    They are written to `.{output.name}.partial` beside `output`, which is renamed at the end: a failure leaves no
    half folder that a rerun would refuse.
    """
    partial = output.with_name(f".{output.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        model.save_pretrained(partial)
        if adapter is not None:
            _save_adapter(adapter, lora_alpha, dtype, partial)
        processor.save_pretrained(partial)
        if output.is_dir():  # empty (`_check_inputs`)
            output.rmdir()
        partial.rename(output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _save_adapter(lora: dict[str, dict[str, torch.Tensor]], alpha: float, dtype: torch.dtype, output: Path) -> None:
    """Writes `adapter_config.json` and `adapter_model.safetensors` as `PeftModel.save_pretrained` would."""
    from peft import LoraConfig

    ranks = {factors["A"].shape[0] for factors in lora.values()}
    if len(ranks) != 1:
        raise ValueError(f"keep_adapter needs one LoRA rank for all layers, found {sorted(ranks)}.")
    LoraConfig(
        r=ranks.pop(),
        lora_alpha=alpha,
        lora_dropout=ORIGINAL_LORA_DROPOUT,
        target_modules=sorted(lora),
        bias="none",
    ).save_pretrained(str(output))
    tensors = {
        f"{PEFT_PREFIX}{module}.lora_{factor}.weight": tensor.to(dtype).contiguous()
        for module, factors in sorted(lora.items())
        for factor, tensor in sorted(factors.items())
    }
    save_file(tensors, str(output / "adapter_model.safetensors"), metadata={"format": "pt"})
    logger.info("Saved the LoRA of %d layers as a PEFT adapter.", len(lora))
