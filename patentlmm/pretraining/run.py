"""`patentlmm pretrain`: PatentMME pretraining on the Hugging Face `Trainer`, writing a full folder plus `encoder/`."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from datasets import Image
from transformers import AutoConfig, AutoTokenizer, LayoutLMv3Config, LayoutLMv3Model, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from modeling_patentlmm import PatentMMEConfig, PatentMMEForPreTraining, PatentMMEVisualTokenizer
from modeling_patentlmm.visual_tokenizer_patentmme import OCR_VQGAN_F16_16384, TINY_VQGAN
from patentlmm.assembly.patentmme import (
    ENCODER_SUBFOLDER,
    VISUAL_TOKENIZER_SUBFOLDER,
    interpolate_pos_embed,
    save_encoder,
)
from patentlmm.assembly.tiny import TinyModelArguments, build_ocr_tokenizer, vision_config
from patentlmm.training.data import load_patentdesc

from .arguments import PretrainArguments, parse_arguments
from .collator import PatentMMECollator, check_visual_tokenizer
from .trainer import PatentMMETrainer

__all__ = ["build_model", "load_visual_tokenizer", "main", "pretrain"]

logger = logging.getLogger(__name__)


def load_visual_tokenizer(name: str, seed: int, image_size: int) -> PatentMMEVisualTokenizer:
    """`random` / `random-tiny` (seeded stand-ins at `image_size`) or a tokenizer folder."""
    if name in ("random", "random-tiny"):
        shape = OCR_VQGAN_F16_16384 if name == "random" else TINY_VQGAN
        return PatentMMEVisualTokenizer.random(seed, shape, image_size=image_size)
    return PatentMMEVisualTokenizer.from_pretrained(name)


def _encoder_source(args: PretrainArguments):
    """(LayoutLMv3 config, its weights or None, OCR tokenizer) of `model_name_or_path` (None: tiny random)."""
    if args.model_name_or_path is None:
        ocr_tokenizer = build_ocr_tokenizer()
        tiny = TinyModelArguments(input_size=args.input_size, max_ocr_tokens=args.max_ocr_tokens)
        return LayoutLMv3Config(**vision_config(tiny, ocr_tokenizer)), None, ocr_tokenizer
    ocr_tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path, trust_remote_code=False)
    encoder = LayoutLMv3Model.from_pretrained(args.model_name_or_path)
    weights = encoder.state_dict()
    if encoder.config.visual_embed and encoder.config.input_size != args.input_size:
        grid = args.input_size // encoder.config.patch_size
        weights["pos_embed"] = interpolate_pos_embed(weights["pos_embed"], grid)
        logger.info("pos_embed interpolated once to %d x %d patches (%d px).", grid, grid, args.input_size)
    return encoder.config, weights, ocr_tokenizer


def build_model(args: PretrainArguments):
    """(model, OCR tokenizer, visual tokenizer) for `args`: a PatentMME folder goes on with its weights and heads; a
    LayoutLMv3 model (or none) gets new heads."""
    source = args.model_name_or_path
    is_patentmme = (
        source is not None
        and getattr(AutoConfig.from_pretrained(source, trust_remote_code=False), "model_type", "") == "patentmme"
    )
    if is_patentmme:
        model = PatentMMEForPreTraining.from_pretrained(source, **args.model_settings())
        model.config.validate()
        ocr_tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        tokenizer = load_visual_tokenizer(args.visual_tokenizer, args.visual_tokenizer_seed, model.config.input_size)
    else:
        config, weights, ocr_tokenizer = _encoder_source(args)
        fields = {k: v for k, v in config.to_dict().items() if k not in ("model_type", "architectures")}
        tokenizer = load_visual_tokenizer(args.visual_tokenizer, args.visual_tokenizer_seed, args.input_size)
        model_config = PatentMMEConfig(
            **{**fields, "input_size": args.input_size},
            mim_vocab_size=tokenizer.num_embeddings + 1,
            **args.model_settings(),
        )
        model = PatentMMEForPreTraining(model_config)
        if weights is not None:
            model.layoutlmv3.load_state_dict(weights, strict=True)
    check_visual_tokenizer(tokenizer, model.config)
    if args.train_head_only:  # the authors freeze the transformer layers only (patentmme_layoutlmv3.py:834-836)
        model.layoutlmv3.encoder.requires_grad_(False)
    return model, ocr_tokenizer, tokenizer


def _resume_path(training_args: TrainingArguments) -> str | None:
    """`--resume_from_checkpoint true`: the last checkpoint of output_dir (none yet: start afresh)."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() == "false":
        return None
    if str(value).lower() == "true":
        return get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
    return value


def pretrain(args: PretrainArguments, training_args: TrainingArguments) -> Path:
    """Pretrains and returns `training_args.output_dir`: the full model (with the OCR tokenizer), `encoder/` and
    `visual_tokenizer/` (docs/pretraining.md)."""
    set_seed(training_args.seed)
    model, ocr_tokenizer, visual_tokenizer = build_model(args)
    rows = load_patentdesc(args.dataset_name, args.dataset_config)[args.dataset_train_split]
    if args.max_train_samples is not None:
        rows = rows.select(range(min(args.max_train_samples, len(rows))))
    if isinstance(rows.features.get("image"), Image):  # decoded by the collator, which skips a damaged figure
        rows = rows.cast_column("image", Image(decode=False))
    collator = PatentMMECollator(ocr_tokenizer, model.config, visual_tokenizer, args.mask_seed, args.max_ocr_tokens)
    training_args = copy.copy(training_args)
    training_args.remove_unused_columns = False  # the collator reads the raw columns
    trainer = PatentMMETrainer(
        model=model, args=training_args, data_collator=collator, train_dataset=rows, processing_class=ocr_tokenizer
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("PatentMME pretraining: %s, %d trainable parameters.", model.config.enabled_tasks, trainable)
    trainer.train(resume_from_checkpoint=_resume_path(training_args))
    output = Path(training_args.output_dir)
    trainer.save_model(str(output))
    trainer.state.save_to_json(str(output / "trainer_state.json"))  # the log history: each task's loss
    if trainer.is_world_process_zero():
        save_encoder(trainer.model, ocr_tokenizer, output / ENCODER_SUBFOLDER)
        visual_tokenizer.save_pretrained(output / VISUAL_TOKENIZER_SUBFOLDER)
        logger.info("Saved to %s (encoder for stage 1: %s)", output, output / ENCODER_SUBFOLDER)
    return output


def main(argv: Sequence[str] | None = None) -> Path:
    """Parses the recipe and the command line (default: `sys.argv[1:]`) and pretrains."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return pretrain(*parse_arguments(argv))
