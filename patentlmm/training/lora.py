"""LoRA on PatentLMM's decoder: the stage-2 PEFT config, a PatentLLaMA adapter as its start, or frozen in stage 1."""

from __future__ import annotations

import logging

from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers.utils import cached_file
from trl import ModelConfig

from modeling_patentlmm import PatentLMMForConditionalGeneration

from .model import PROJECTOR_MODULE, VISION_TOWER_MODULE

__all__ = ["DECODER_LINEAR_LAYERS", "load_lora_init", "lora_config", "with_frozen_adapter"]

logger = logging.getLogger(__name__)

# LoRA targets of stage 2: every linear layer of the decoder (LLaMA's attention and MLP projections), as the
# original's `find_all_linear_names`, which skipped the encoder, the projector and the LM head. A PEFT regex
# (full match against module names of PatentLMMForConditionalGeneration).
DECODER_LINEAR_LAYERS = r"model\.language_model\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def lora_config(model_args: ModelConfig, train_vision_tower: bool = False) -> LoraConfig:
    """LoRA on the decoder's linear layers (`--lora_target_modules`: one entry is a regex); the projector (and, with
    `train_vision_tower`, the encoder) trained in full and saved with the adapter."""
    targets = model_args.lora_target_modules or DECODER_LINEAR_LAYERS  # ModelConfig turns [one] into one string
    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        modules_to_save=[
            PROJECTOR_MODULE,
            *([VISION_TOWER_MODULE] if train_vision_tower else []),
            *(model_args.lora_modules_to_save or []),
        ],
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        bias="none",
        task_type=None,  # PatentLMM is not a plain causal LM: PEFT's generic wrapper passes every input through
    )


def load_lora_init(model: PeftModel, adapter: str) -> None:
    """Copies a PEFT LoRA adapter trained on a LLaMA causal LM (PatentLLaMA) into the decoder's LoRA of `model`; the
    other LoRA layers and the projector keep their values. Raises on tensors that fit nowhere."""
    state = get_peft_model_state_dict(model)  # LoRA + projector, keys without the adapter name
    loaded = 0
    for key, tensor in load_file(cached_file(adapter, "adapter_model.safetensors")).items():
        name = key.removeprefix("base_model.model.")
        if name.startswith("model.") and not name.startswith("model.language_model."):
            name = "model.language_model." + name.removeprefix("model.")
        name = "base_model.model." + name
        if name not in state or state[name].shape != tensor.shape:
            expected = tuple(state[name].shape) if name in state else "no such LoRA tensor"
            raise ValueError(f"{adapter}: {key} {tuple(tensor.shape)} does not fit PatentLMM ({name}: {expected}).")
        state[name] = tensor
        loaded += 1
    set_peft_model_state_dict(model, state)
    lora_tensors = sum(1 for name in state if ".lora_A." in name or ".lora_B." in name)
    logger.info("Started LoRA from %s: %d of the model's %d LoRA tensors.", adapter, loaded, lora_tensors)


def with_frozen_adapter(
    model: PatentLMMForConditionalGeneration, adapter: str, train_vision_tower: bool = False
) -> PeftModel:
    """Stage 1 as the original ran it: the PatentLLaMA LoRA on the decoder, frozen (`llava/train/train.py:956-962`
    loads it before training; `--tune_mm_mlp_adapter` leaves only the projector trainable, :936-940). Returns the
    `PeftModel`; `save_outputs` unloads the LoRA again (not merged), so the saved decoder is the base one."""
    found = PeftConfig.from_pretrained(adapter)
    config = LoraConfig(
        r=found.r,
        lora_alpha=found.lora_alpha,
        lora_dropout=found.lora_dropout,
        target_modules=DECODER_LINEAR_LAYERS,
        bias="none",
    )
    peft_model = get_peft_model(model, config)
    load_lora_init(peft_model, adapter)
    trainable = (PROJECTOR_MODULE, VISION_TOWER_MODULE) if train_vision_tower else (PROJECTOR_MODULE,)
    for name, parameter in peft_model.named_parameters():
        parameter.requires_grad = "lora_" not in name and any(f".{module}." in name for module in trainable)
    return peft_model
