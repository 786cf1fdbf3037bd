"""One training stage from end to end: `train()` takes the four argument objects, `main()` a command line."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from transformers import set_seed
from trl import ModelConfig, ScriptArguments, SFTConfig

from modeling_patentlmm import PatentLMMForConditionalGeneration
from processing import PatentLMMProcessor
from processing.collator import PatentLMMCollator

from .arguments import PatentLMMArguments, RecipeError, check_arguments, parse_arguments
from .checkpoints import CheckpointError, check_checkpoint, last_complete_checkpoint, remove_stale_staging
from .data import training_rows
from .lora import load_lora_init, lora_config, with_frozen_adapter
from .model import load_model
from .outputs import save_outputs
from .preemption import StopOnSigterm
from .rows import BadRowsError, report_skipped
from .trainer import build_trainer

__all__ = ["main", "train"]

logger = logging.getLogger(__name__)


def _stage_model(
    model_args: ModelConfig, args: PatentLMMArguments
) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """The model and processor the stage starts from. Stage 1 trains only the projector (and, with
    `train_vision_tower`, the encoder), under a frozen PatentLLaMA LoRA when `lora_init_adapter` is given; in stage 2
    PEFT freezes all but LoRA and its `modules_to_save`."""
    model, processor = load_model(model_args, args)
    if args.train_vision_tower:
        model.config.freeze_vision_tower = False
    if args.stage == 1:
        model.requires_grad_(False)
        model.model.multi_modal_projector.requires_grad_(True)
        model.model.vision_tower.requires_grad_(args.train_vision_tower)
        if args.lora_init_adapter is not None:
            model = with_frozen_adapter(model, args.lora_init_adapter, args.train_vision_tower)
    return model, processor


def _resume_path(training_args: SFTConfig) -> str | None:
    """`--resume_from_checkpoint true` resumes from the last complete checkpoint of output_dir (none yet: starts
    afresh), a path from that checkpoint; its files are checked first (`CheckpointError` names a damaged one)."""
    value = training_args.resume_from_checkpoint
    if value is None or value.lower() == "false":
        return None
    path = last_complete_checkpoint(training_args.output_dir) if value.lower() == "true" else value
    if path is not None:
        if not os.path.isdir(path):
            raise CheckpointError(f"--resume_from_checkpoint {path}: no such checkpoint folder.")
        check_checkpoint(path)
    return path


def train(
    script_args: ScriptArguments,
    training_args: SFTConfig,
    model_args: ModelConfig,
    patentlmm_args: PatentLMMArguments,
) -> Path:
    """Trains one stage and returns its output folder (`training_args.output_dir`; docs/training.md lists what it
    holds). The four objects are TRL's and PatentLMM's argument dataclasses, used as given and left unchanged (the
    CPU defaults are `parse_arguments`' business)."""
    desc_type = check_arguments(script_args, training_args, model_args, patentlmm_args)
    resume = _resume_path(training_args)
    stage2 = patentlmm_args.stage == 2
    set_seed(training_args.seed)  # the new projector's initialisation, as TRL seeds LoRA's
    model, processor = _stage_model(model_args, patentlmm_args)
    train_rows, eval_rows, skipped = training_rows(script_args, training_args, patentlmm_args, processor, desc_type)
    collator = PatentLMMCollator(processor, max_length=training_args.max_length, report_truncation=True)
    trainer = build_trainer(
        model,
        processor,
        training_args,
        collator,
        train_rows,
        eval_rows,
        peft_config=lora_config(model_args, patentlmm_args.train_vision_tower) if stage2 else None,
        mm_projector_lr=patentlmm_args.mm_projector_lr if stage2 else None,
        callbacks=[preemption := StopOnSigterm()],
    )
    if stage2 and patentlmm_args.lora_init_adapter is not None:
        load_lora_init(trainer.model, patentlmm_args.lora_init_adapter)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    logger.info(
        "Stage %d, %s, %s format: %d trainable parameters.",
        patentlmm_args.stage,
        desc_type,
        patentlmm_args.prompt_format,
        trainable,
    )

    if trainer.is_world_process_zero():
        remove_stale_staging(training_args.output_dir)  # a killed save's, never resumed from
    trainer.train(resume_from_checkpoint=resume)
    output = Path(training_args.output_dir)
    if not preemption.received:
        save_outputs(trainer, processor, patentlmm_args, model_args)
    if trainer.is_world_process_zero():  # the one process that wrote the folder says so
        step = trainer.state.global_step
        if preemption.received:
            logger.warning(
                "Stopped by SIGTERM after step %d, saved in %s: resume with the same command and "
                "--resume_from_checkpoint true.", step, output / f"checkpoint-{step}",
            )  # fmt: skip
        else:
            logger.info("Saved to %s", output)
        if skipped:
            report_skipped(output, skipped)
    return output


def main(argv: Sequence[str] | None = None) -> Path:
    """Parses the recipe and the command line (default: `sys.argv[1:]`), trains one stage and returns the output
    folder."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return train(*parse_arguments(argv))
    except (RecipeError, BadRowsError, CheckpointError) as error:  # the message names the option, rows or file
        raise SystemExit(f"train: {error}") from None
