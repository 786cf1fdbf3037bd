"""The folder a training stage leaves: the stage-1 model + projector, or the stage-2 adapter and merged release."""

from __future__ import annotations

from pathlib import Path

from peft import PeftModel
from safetensors.torch import save_file
from trl import ModelConfig

from modeling_patentlmm import PatentLMMForConditionalGeneration
from processing import PatentLMMProcessor

from .arguments import PatentLMMArguments
from .model import PROJECTOR_MODULE, read_prefixed_tensors, torch_dtype
from .trainer import PatentLMMSFTTrainer

__all__ = ["ADAPTER_SUBFOLDER", "PROJECTOR_FILE", "save_outputs"]

PROJECTOR_FILE = "mm_projector.safetensors"  # stage 1: the projector alone, as the original's mm_projector.bin
ADAPTER_SUBFOLDER = "adapter"  # stage 2 (merged): the LoRA adapter beside the merged model


def _save_stage1(trainer: PatentLMMSFTTrainer, processor: PatentLMMProcessor, args: PatentLMMArguments) -> None:
    output = Path(trainer.args.output_dir)
    if args.lora_init_adapter is None:
        trainer.save_model(str(output))
    elif trainer.is_world_process_zero():  # ZeRO-2 / DDP: every process holds the whole model
        trainer.accelerator.unwrap_model(trainer.model).unload().save_pretrained(str(output))
        processor.save_pretrained(str(output))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():  # read back from the saved model: sharded (ZeRO-3, FSDP) runs too
        prefix = f"model.{PROJECTOR_MODULE}."
        tensors = {prefix + name: tensor for name, tensor in read_prefixed_tensors(output, prefix).items()}
        save_file(tensors, str(output / PROJECTOR_FILE), metadata={"format": "pt"})


def _save_stage2(trainer: PatentLMMSFTTrainer, processor: PatentLMMProcessor, model_args: ModelConfig) -> None:
    output = Path(trainer.args.output_dir)
    trainer.save_model(str(output / ADAPTER_SUBFOLDER))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        base = PatentLMMForConditionalGeneration.from_pretrained(
            model_args.model_name_or_path, revision=model_args.model_revision, dtype=torch_dtype(model_args.dtype)
        )
        merged = PeftModel.from_pretrained(base, str(output / ADAPTER_SUBFOLDER)).merge_and_unload()
        merged.save_pretrained(str(output))
        processor.save_pretrained(str(output))


def save_outputs(
    trainer: PatentLMMSFTTrainer, processor: PatentLMMProcessor, args: PatentLMMArguments, model_args: ModelConfig
) -> Path:
    """Writes `trainer_state.json` (the logged steps), then stage 1: the full model + processor (a frozen PatentLLaMA
    LoRA unloaded, not merged) and `PROJECTOR_FILE`; stage 2: the adapter in `ADAPTER_SUBFOLDER/`, and (with
    `merge_lora`) the merged model + processor, rebuilt from disk so TRL's training-time wrappers stay out, or (without)
    only the adapter, in the folder itself. Returns the output folder."""
    trainer.save_state()  # trainer_state.json: the logged losses and learning rates, step by step
    if args.stage == 1:
        _save_stage1(trainer, processor, args)
    elif args.merge_lora:
        _save_stage2(trainer, processor, model_args)
    else:
        trainer.save_model(trainer.args.output_dir)  # adapter_config.json names the stage-1 folder as the base
    return Path(trainer.args.output_dir)
