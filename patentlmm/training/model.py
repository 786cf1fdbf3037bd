"""The model a training stage starts from: PatentLMM assembled from a base LLM + an encoder, or a PatentLMM folder."""

from __future__ import annotations

import json
import os

import torch
from safetensors import safe_open
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LayoutLMv3Config,
    LayoutLMv3Model,
    PreTrainedTokenizerBase,
)
from transformers.utils import cached_file
from trl import ModelConfig

from modeling_patentlmm import PatentLMMConfig, PatentLMMForConditionalGeneration
from modeling_patentlmm.modeling_patentlmm import PatentLMMProjector
from patentlmm.assembly.components import build_config, build_processor, generation_config, prepare_decoder_tokenizer
from processing import PatentLMMProcessor

from .arguments import PatentLMMArguments, RecipeError

__all__ = [
    "PROJECTOR_MODULE",
    "VISION_TOWER_MODULE",
    "build_from_base_llm",
    "load_model",
    "read_prefixed_tensors",
    "torch_dtype",
]

# Names of PatentLMMForConditionalGeneration's submodules (`model.<name>`) that training treats apart.
PROJECTOR_MODULE = "multi_modal_projector"
VISION_TOWER_MODULE = "vision_tower"
# The settings a PatentLMM --vision_tower passes on to the new model (with its encoder and OCR tokenizer).
ENCODER_SETTINGS = ("projector_type", "vision_feature_layer", "vision_feature_select_strategy", "max_ocr_tokens")


def torch_dtype(name: str | None) -> torch.dtype | str:
    """`ModelConfig.dtype` ("bfloat16", "auto", None) as `from_pretrained`'s `dtype`."""
    return "auto" if name in (None, "auto") else getattr(torch, name)


def read_prefixed_tensors(source: str | os.PathLike, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors checkpoint (single file or sharded; folder or Hub id) whose names start with
    `prefix`, by their names without it (and without a `layoutlmv3.` head-model prefix)."""
    source = str(source)
    index = cached_file(source, "model.safetensors.index.json", _raise_exceptions_for_missing_entries=False)
    if index is not None:
        with open(index, encoding="utf-8") as handle:
            files = sorted(set(json.load(handle)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        with safe_open(cached_file(source, name), framework="pt") as handle:
            for key in handle.keys():
                if key.startswith(prefix):
                    tensors[key.removeprefix(prefix).removeprefix("layoutlmv3.")] = handle.get_tensor(key)
    return tensors


def _load_encoder(vision_tower: str, projector_type: str) -> tuple[LayoutLMv3Model, dict, PreTrainedTokenizerBase]:
    """(encoder with its weights, the settings it brings, OCR tokenizer) of a PatentLMM or LayoutLMv3 folder."""
    source_config = AutoConfig.from_pretrained(vision_tower, trust_remote_code=False)
    if isinstance(source_config, PatentLMMConfig):
        vision_config, prefix = source_config.vision_config, "model.vision_tower."
        settings = {name: getattr(source_config, name) for name in ENCODER_SETTINGS}
        ocr_tokenizer = AutoTokenizer.from_pretrained(vision_tower, subfolder="ocr_tokenizer", trust_remote_code=False)
    elif isinstance(source_config, LayoutLMv3Config):
        vision_config, prefix = source_config, ""
        settings = {"projector_type": projector_type}  # build_config fits max_ocr_tokens to the encoder
        ocr_tokenizer = AutoTokenizer.from_pretrained(vision_tower, trust_remote_code=False)
    else:
        raise ValueError(
            f"--vision_tower {vision_tower} is a {type(source_config).__name__}; expected PatentLMM or LayoutLMv3."
        )
    encoder = LayoutLMv3Model(vision_config)
    wanted = set(encoder.state_dict())
    weights = {name: tensor for name, tensor in read_prefixed_tensors(vision_tower, prefix).items() if name in wanted}
    missing = sorted(wanted - set(weights))
    if missing:
        raise ValueError(f"{vision_tower} lacks {len(missing)} encoder tensor(s), e.g. {missing[:5]} ({prefix!r}).")
    encoder.load_state_dict(weights, strict=True)
    return encoder, settings, ocr_tokenizer


def build_from_base_llm(
    base_llm: str, vision_tower: str, model_args: ModelConfig, projector_type: str = "mlp2x_gelu"
) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """A PatentLMM made of a base causal LM (decoder + LM head), the encoder of `vision_tower` and a new projector.

    The decoder tokenizer gets `<image>` (and the embeddings a row for it, the mean row) when it lacks it.
    `vision_tower` is a PatentLMM folder (its encoder weights, OCR tokenizer, feature settings and projector type)
    or a LayoutLMv3 model folder (its weights and tokenizer; `projector_type` applies).
    """
    dtype = torch_dtype(model_args.dtype)
    tokenizer = prepare_decoder_tokenizer(
        AutoTokenizer.from_pretrained(base_llm, revision=model_args.model_revision, trust_remote_code=False)
    )
    llm = AutoModelForCausalLM.from_pretrained(
        base_llm,
        revision=model_args.model_revision,
        dtype=dtype,
        attn_implementation=model_args.attn_implementation,
        trust_remote_code=False,
    )
    if llm.get_input_embeddings().weight.shape[0] < len(tokenizer):
        llm.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    encoder, settings, ocr_tokenizer = _load_encoder(vision_tower, projector_type)
    tied = bool(getattr(llm.config, "tie_word_embeddings", False))
    config = build_config(
        tokenizer, encoder.config.to_dict(), llm.config.to_dict(), tie_word_embeddings=tied, **settings
    )

    with torch.device("meta"):  # every submodule is replaced below: no 7B random initialisation
        model = PatentLMMForConditionalGeneration(config)
    model.model.vision_tower = encoder.to(dtype).requires_grad_(not config.freeze_vision_tower)
    model.model.multi_modal_projector = PatentLMMProjector(config).to(dtype)
    model.model.language_model = llm.get_decoder()
    model.lm_head = llm.get_output_embeddings()
    model.config.vision_config, model.config.text_config = encoder.config, llm.config  # one config object each
    model.generation_config = generation_config(config)
    left_on_meta = [name for name, tensor in model.state_dict().items() if tensor.is_meta]
    if left_on_meta:
        raise RuntimeError(f"Parameters left unbuilt: {left_on_meta[:5]}")
    return model, build_processor(config, tokenizer, ocr_tokenizer)


def _model_type(path: str) -> str | None:
    """The `model_type` that `path`'s config.json names (None: no config.json), read as JSON: no code is run."""
    config = cached_file(path, "config.json", _raise_exceptions_for_missing_entries=False)
    if config is None:
        return None
    try:
        with open(config, encoding="utf-8") as handle:
            return json.load(handle).get("model_type")
    except (ValueError, AttributeError) as error:
        raise RecipeError(f"--model_name_or_path {path}: config.json is not a JSON object ({error}).") from None


def load_model(
    model_args: ModelConfig, args: PatentLMMArguments
) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """Stage 1 from a base LLM + `vision_tower`, or any stage from a PatentLMM folder (the stage-1 output)."""
    path = model_args.model_name_or_path
    if args.vision_tower is not None:
        if args.stage != 1:
            raise ValueError("--vision_tower builds a new model: stage 2 starts from the stage-1 output folder.")
        return build_from_base_llm(path, args.vision_tower, model_args, args.projector_type)
    model_type = _model_type(path)
    if model_type != PatentLMMConfig.model_type:
        raise RecipeError(
            f"--model_name_or_path {path} is not a PatentLMM model (its config.json names model_type "
            f"{model_type!r}): stage 1 needs --vision_tower to build one from a "
            "base LLM; stage 2 needs the stage-1 output folder."
        )
    model = PatentLMMForConditionalGeneration.from_pretrained(
        path,
        revision=model_args.model_revision,
        dtype=torch_dtype(model_args.dtype),
        attn_implementation=model_args.attn_implementation,
    )
    return model, PatentLMMProcessor.from_pretrained(path, revision=model_args.model_revision)
