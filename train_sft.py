"""Train PatentLMM (arXiv 2501.15074) in two stages with TRL's SFTTrainer: align the projector, then LoRA-tune.

Stage 1 builds PatentLMM from a base LLM (folder or Hub id) and a PatentMME encoder (a PatentLMM folder, e.g. a
converted checkpoint or `patentlmm init-tiny`, or a LayoutLMv3 folder), trains only the projector on the "plain"
format and writes a full PatentLMM folder plus `mm_projector.safetensors`. Stage 2 loads that folder, puts LoRA on
the decoder's linear layers, trains it and the projector (own learning rate `mm_projector_lr`) on the Vicuna-v1
format, and writes a merged remote-code PatentLMM folder (or only the adapter with `--merge_lora false`).

    # stage 1, then stage 2 (one GPU; add --dataset_config detailed and the *_detailed recipes for that task)
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml train_sft.py \
        --config recipes/stage1_brief.yaml --model_name_or_path lmsys/vicuna-7b-v1.5 \
        --vision_tower ./patentmme-hf --dataset_name ./patentdesc-355k --output_dir runs/stage1-brief
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml train_sft.py \
        --config recipes/stage2_brief.yaml --model_name_or_path runs/stage1-brief \
        --dataset_name ./patentdesc-355k --output_dir runs/patentlmm-brief

    # one node, 8 GPUs, DeepSpeed ZeRO-2 (the original's setup); resume after an interruption
    accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml train_sft.py \
        --config recipes/stage2_brief.yaml --model_name_or_path runs/stage1-brief \
        --dataset_name ./patentdesc-355k --output_dir runs/patentlmm-brief --resume_from_checkpoint true

    # a laptop smoke run: tiny random model, a few steps, CPU (bf16 off and use_cpu on when there is no GPU)
    patentlmm init-tiny tiny && python train_sft.py --config recipes/stage1_brief.yaml \
        --model_name_or_path tiny --dataset_name ./patentdesc-355k --output_dir runs/smoke \
        --max_steps 2 --per_device_train_batch_size 1 --gradient_accumulation_steps 1 --report_to none

Every option of `ScriptArguments`, `SFTConfig`, `ModelConfig` and `PatentLMMArguments` can be given in the YAML recipe
or on the command line (the command line wins). The recipe is `--config RECIPE.yaml` or the first argument
(`train_sft.py RECIPE.yaml [options]`); `patentlmm train RECIPE.yaml [options]` runs the same code.
See docs/training.md for multi-node launches and the effective batch size per GPU count.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict, concatenate_datasets, load_dataset, load_from_disk
from datasets.arrow_dataset import Column
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LayoutLMv3Config,
    LayoutLMv3Model,
    set_seed,
)
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.utils import cached_file
from trl import ModelConfig, ScriptArguments, SFTConfig, SFTTrainer, TrlParser

from modeling_patentlmm import PatentLMMConfig, PatentLMMForConditionalGeneration
from modeling_patentlmm.modeling_patentlmm import PatentLMMProjector
from patentlmm.assembly.components import build_processor, prepare_decoder_tokenizer
from processing import PatentLMMProcessor, build_messages, escape_description
from processing.collator import NUM_TRUNCATED_KEY, PatentLMMCollator
from processing.constants import DEFAULT_IMAGE_TOKEN, DESCRIPTION_TYPES

__all__ = [
    "DECODER_LINEAR_LAYERS",
    "PatentLMMArguments",
    "PatentLMMSFTTrainer",
    "build_from_base_llm",
    "load_patentdesc",
    "main",
    "parse_arguments",
    "to_conversational",
    "with_frozen_adapter",
]

logger = logging.getLogger("train_sft")

# LoRA targets of stage 2: every linear layer of the decoder (LLaMA's attention and MLP projections), as the
# original's `find_all_linear_names`, which skipped the encoder, the projector and the LM head. A PEFT regex
# (full match against module names of PatentLMMForConditionalGeneration).
DECODER_LINEAR_LAYERS = r"model\.language_model\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
PROJECTOR_MODULE = "multi_modal_projector"
VISION_TOWER_MODULE = "vision_tower"
PROJECTOR_FILE = "mm_projector.safetensors"
ADAPTER_SUBFOLDER = "adapter"
PROMPT_FORMAT_OF_STAGE = {1: "plain", 2: "vicuna_v1"}
CPU_DEFAULTS = {"--bf16": "false", "--use_cpu": "true", "--dtype": "float32"}


@dataclass
class PatentLMMArguments:
    """PatentLMM's own options (the rest come from TRL's `ScriptArguments`, `SFTConfig` and `ModelConfig`)."""

    stage: int = field(default=2, metadata={"help": "1: train the projector only; 2: LoRA on the decoder + projector."})
    desc_type: str | None = field(
        default=None, metadata={"help": "brief or detailed: the instruction and target; defaults to --dataset_config."}
    )
    prompt_format: str | None = field(
        default=None, metadata={"help": "plain or vicuna_v1; defaults to plain in stage 1 and vicuna_v1 in stage 2."}
    )
    vision_tower: str | None = field(
        default=None,
        metadata={
            "help": "Stage 1 from a base LLM (--model_name_or_path): folder or Hub id of the PatentMME encoder, either "
            "a PatentLMM folder (its encoder, OCR tokenizer and projector type are used) or a LayoutLMv3 model."
        },
    )
    projector_type: str = field(
        default="mlp2x_gelu", metadata={"help": "mlp2x_gelu or linear (stage 1 with a LayoutLMv3 --vision_tower)."}
    )
    train_vision_tower: bool = field(
        default=False,
        metadata={
            "help": "Also train the encoder: with the projector in stage 1, fully beside the LoRA in stage 2 (the "
            "saved config records freeze_vision_tower=False). For an encoder that starts from random weights, as in "
            "`patentlmm demo`; the paper keeps PatentMME frozen."
        },
    )
    mm_projector_lr: float | None = field(
        default=None, metadata={"help": "Stage 2: learning rate of the projector (None: --learning_rate)."}
    )
    lora_init_adapter: str | None = field(
        default=None,
        metadata={
            "help": "Folder of a PEFT LoRA adapter on the LLaMA decoder (PatentLLaMA), as the original loads it in "
            "both stages. Stage 1: the decoder carries it, frozen, while the projector trains; the stage-1 folder "
            "keeps the base decoder, so give stage 2 the same adapter. Stage 2: it starts the LoRA (its rank must "
            "equal --lora_r)."
        },
    )
    merge_lora: bool = field(
        default=True,
        metadata={"help": "Stage 2: save LoRA merged into a full model (default) or, with false, the adapter only."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep the first N evaluation rows."})

    def __post_init__(self):
        if self.stage not in PROMPT_FORMAT_OF_STAGE:
            raise ValueError(f"stage must be 1 or 2, got {self.stage}.")
        if self.prompt_format is None:
            self.prompt_format = PROMPT_FORMAT_OF_STAGE[self.stage]
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1 (or unset for all rows), got {getattr(self, name)}.")


# ---------------------------------------------------------------------------------------------------------- trainer


class PatentLMMSFTTrainer(SFTTrainer):
    """SFTTrainer with the projector in its own optimizer parameter groups (learning rate `mm_projector_lr`), the
    collator's count of cut descriptions logged as `truncated_samples` (cumulative, all processes), and a warning for
    every logged non-finite `grad_norm` (that step's clipped update was zero or NaN, never a real one)."""

    def __init__(self, *args, mm_projector_lr: float | None = None, **kwargs):
        self.mm_projector_lr = mm_projector_lr
        self._num_truncated = 0
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.mm_projector_lr is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, parameter in opt_model.named_parameters():
            if parameter.requires_grad:
                groups.setdefault((PROJECTOR_MODULE in name, name in decay), []).append(parameter)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if decays else 0.0,
                **({"lr": self.mm_projector_lr} if is_projector else {}),
            }
            for (is_projector, decays), params in sorted(groups.items())
        ]
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        grad_norm = logs.get("grad_norm")
        if grad_norm is not None and not math.isfinite(grad_norm):
            logger.warning(
                "Step %d: grad_norm is %s, a non-finite gradient: clipping (max_grad_norm %s) scaled every gradient "
                "to 0 (or NaN), so this step moved no weight, or made some NaN.",
                self.state.global_step,
                grad_norm,
                self.args.max_grad_norm,
            )
        super().log(logs, start_time)

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler) and isinstance(sampler.lengths, Column):
            # datasets' lazy Column reads one row per index (minutes for 320K rows); read the column at once.
            dataset = self.train_dataset if train_dataset is None else train_dataset
            sampler.lengths = dataset.with_format("arrow")[self.args.length_column_name].to_pylist()
        return sampler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        num_truncated = inputs.pop(NUM_TRUNCATED_KEY, None)
        if num_truncated is not None and model.training:
            self._num_truncated += int(self.accelerator.gather_for_metrics(num_truncated.reshape(1)).sum())
            self._metrics["train"]["truncated_samples"] = [self._num_truncated]
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


# ---------------------------------------------------------------------------------------------------------- data


def load_patentdesc(name: str, config: str | None) -> DatasetDict:
    """PatentDesc-355k (`config` brief or detailed) from a dataset folder, a `save_to_disk` folder or a Hub id."""
    for folder in (Path(name) / (config or ""), Path(name)):
        if (folder / "dataset_dict.json").is_file():
            return load_from_disk(str(folder))
    return load_dataset(name, config)


def to_conversational(dataset: Dataset, desc_type: str, tokenizer=None, num_image_patches: int = 0) -> Dataset:
    """Adds TRL's conversational `messages` (the instruction and the escaped description) in place of
    `description`; the figure stays in `image` and the OCR columns stay as they are.

    With a `tokenizer`, also adds `length`, an estimate of each sample's sequence length (description tokens + OCR
    words + `num_image_patches`) for `train_sampling_strategy: group_by_length`. Only the text columns are
    rewritten: the images are not copied.
    """
    ocr_column = "ocr_input_ids" if "ocr_input_ids" in dataset.column_names else "ocr_words"
    columns = ["description"] + ([ocr_column] if ocr_column in dataset.column_names else [])

    def convert(batch: dict[str, list]) -> dict[str, list]:
        out = {"messages": [build_messages(desc_type, escape_description(text)) for text in batch["description"]]}
        if tokenizer is not None:
            ocr = batch.get(ocr_column) or [[]] * len(batch["description"])
            ids = tokenizer(batch["description"], add_special_tokens=False)["input_ids"]
            out["length"] = [len(d) + len(o or []) + num_image_patches for d, o in zip(ids, ocr)]
        return out

    text = dataset.select_columns(columns).map(convert, batched=True, remove_columns=columns, desc="conversations")
    return concatenate_datasets([dataset.remove_columns(["description"]), text], axis=1)


# ---------------------------------------------------------------------------------------------------------- model


def build_from_base_llm(
    base_llm: str, vision_tower: str, model_args: ModelConfig, projector_type: str = "mlp2x_gelu"
) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """A PatentLMM made of a base causal LM (decoder + LM head), the encoder of `vision_tower` and a new projector.

    The decoder tokenizer gets `<image>` (and the embeddings a row for it, the mean row) when it lacks it.
    `vision_tower` is a PatentLMM folder (its encoder weights, OCR tokenizer, feature settings and projector type)
    or a LayoutLMv3 model folder (its weights and tokenizer; `projector_type` applies).
    """
    dtype = _dtype(model_args.dtype)
    tokenizer = prepare_decoder_tokenizer(AutoTokenizer.from_pretrained(base_llm, revision=model_args.model_revision))
    llm = AutoModelForCausalLM.from_pretrained(
        base_llm, revision=model_args.model_revision, dtype=dtype, attn_implementation=model_args.attn_implementation
    )
    if llm.get_input_embeddings().weight.shape[0] < len(tokenizer):
        llm.resize_token_embeddings(len(tokenizer), mean_resizing=True)

    source_config = AutoConfig.from_pretrained(vision_tower)
    if isinstance(source_config, PatentLMMConfig):
        vision_config, prefix = source_config.vision_config, "model.vision_tower."
        settings = {
            "projector_type": source_config.projector_type,
            "vision_feature_layer": source_config.vision_feature_layer,
            "vision_feature_select_strategy": source_config.vision_feature_select_strategy,
            "max_ocr_tokens": source_config.max_ocr_tokens,
        }
        ocr_tokenizer = AutoTokenizer.from_pretrained(vision_tower, subfolder="ocr_tokenizer")
    elif isinstance(source_config, LayoutLMv3Config):
        vision_config, prefix = source_config, ""
        settings = {
            "projector_type": projector_type,
            "max_ocr_tokens": min(512, source_config.max_position_embeddings - 2),
        }
        ocr_tokenizer = AutoTokenizer.from_pretrained(vision_tower)
    else:
        raise ValueError(
            f"--vision_tower {vision_tower} is a {type(source_config).__name__}; expected PatentLMM or LayoutLMv3."
        )

    config = PatentLMMConfig(
        vision_config=vision_config.to_dict(),
        text_config=llm.config.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN),
        tie_word_embeddings=bool(getattr(llm.config, "tie_word_embeddings", False)),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **settings,
    )
    encoder = LayoutLMv3Model(config.vision_config)
    wanted = set(encoder.state_dict())
    weights = {name: tensor for name, tensor in _prefixed_tensors(vision_tower, prefix).items() if name in wanted}
    missing = sorted(wanted - set(weights))
    if missing:
        raise ValueError(f"{vision_tower} lacks {len(missing)} encoder tensor(s), e.g. {missing[:5]} ({prefix!r}).")
    encoder.load_state_dict(weights, strict=True)
    with torch.device("meta"):  # every submodule is replaced below: no 7B random initialisation
        model = PatentLMMForConditionalGeneration(config)
    model.model.vision_tower = encoder.to(dtype).requires_grad_(not config.freeze_vision_tower)
    model.model.multi_modal_projector = PatentLMMProjector(config).to(dtype)
    model.model.language_model = llm.get_decoder()
    model.lm_head = llm.get_output_embeddings()
    model.config.vision_config, model.config.text_config = encoder.config, llm.config  # one config object each
    model.generation_config = llm.generation_config
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    left_on_meta = [name for name, tensor in model.state_dict().items() if tensor.is_meta]
    if left_on_meta:
        raise RuntimeError(f"Parameters left unbuilt: {left_on_meta[:5]}")
    return model, build_processor(config, tokenizer, ocr_tokenizer)


def _prefixed_tensors(source: str | os.PathLike, prefix: str) -> dict[str, torch.Tensor]:
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


def load_lora_init(model, adapter: str) -> None:
    """Copies a PEFT LoRA adapter trained on a LLaMA causal LM (PatentLLaMA) into the decoder's LoRA of `model` (a
    `PeftModel`); the other LoRA layers and the projector keep their values. Raises on tensors that fit nowhere."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

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


def with_frozen_adapter(model: PatentLMMForConditionalGeneration, adapter: str, train_vision_tower: bool = False):
    """Stage 1 as the original ran it: the PatentLLaMA LoRA on the decoder, frozen (`llava/train/train.py:956-962`
    loads it before training; `--tune_mm_mlp_adapter` leaves only the projector trainable, :936-940). Returns the
    `PeftModel`; `save_outputs` unloads the LoRA again (not merged), so the saved decoder is the base one."""
    from peft import LoraConfig, PeftConfig, get_peft_model

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


def _dtype(name: str | None) -> torch.dtype | str:
    return "auto" if name in (None, "auto") else getattr(torch, name)


def _is_patentlmm_folder(path: str) -> bool:
    config = cached_file(path, "config.json", _raise_exceptions_for_missing_entries=False)
    if config is None:
        return False
    return AutoConfig.from_pretrained(path).model_type == PatentLMMConfig.model_type


def load_model(
    model_args: ModelConfig, args: PatentLMMArguments
) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """Stage 1 from a base LLM + `vision_tower`, or any stage from a PatentLMM folder (the stage-1 output)."""
    path = model_args.model_name_or_path
    if args.vision_tower is not None:
        if args.stage != 1:
            raise ValueError("--vision_tower builds a new model: stage 2 starts from the stage-1 output folder.")
        return build_from_base_llm(path, args.vision_tower, model_args, args.projector_type)
    if not _is_patentlmm_folder(path):
        raise ValueError(
            f"--model_name_or_path {path} is not a PatentLMM model: stage 1 needs --vision_tower to build one from a "
            "base LLM; stage 2 needs the stage-1 output folder."
        )
    model = PatentLMMForConditionalGeneration.from_pretrained(
        path,
        revision=model_args.model_revision,
        dtype=_dtype(model_args.dtype),
        attn_implementation=model_args.attn_implementation,
    )
    return model, PatentLMMProcessor.from_pretrained(path, revision=model_args.model_revision)


def lora_config(model_args: ModelConfig, train_vision_tower: bool = False):
    """LoRA on the decoder's linear layers (`--lora_target_modules`: one entry is a regex); the projector (and, with
    `train_vision_tower`, the encoder) trained in full and saved with the adapter."""
    from peft import LoraConfig

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


# ---------------------------------------------------------------------------------------------------------- outputs


def save_outputs(
    trainer: PatentLMMSFTTrainer, processor: PatentLMMProcessor, args: PatentLMMArguments, model_args: ModelConfig
) -> Path:
    """`trainer_state.json` (the logged steps), then stage 1: the full model + processor (a frozen PatentLLaMA LoRA
    unloaded, not merged) and `mm_projector.safetensors`; stage 2: the adapter in `adapter/`, and (with `merge_lora`)
    the merged model + processor, rebuilt from disk so TRL's training-time wrappers stay out."""
    output = Path(trainer.args.output_dir)
    trainer.save_state()  # trainer_state.json: the logged losses and learning rates, step by step
    if args.stage == 1:
        if args.lora_init_adapter is None:
            trainer.save_model(str(output))
        elif trainer.is_world_process_zero():  # ZeRO-2 / DDP: every process holds the whole model
            trainer.accelerator.unwrap_model(trainer.model).unload().save_pretrained(str(output))
            processor.save_pretrained(str(output))
        trainer.accelerator.wait_for_everyone()
        if trainer.is_world_process_zero():  # read back from the saved model: sharded (ZeRO-3, FSDP) runs too
            prefix = f"model.{PROJECTOR_MODULE}."
            tensors = {prefix + name: tensor for name, tensor in _prefixed_tensors(output, prefix).items()}
            save_file(tensors, str(output / PROJECTOR_FILE), metadata={"format": "pt"})
        return output
    if not args.merge_lora:
        trainer.save_model(str(output))  # adapter_config.json names the stage-1 folder as the base
        return output
    trainer.save_model(str(output / ADAPTER_SUBFOLDER))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        from peft import PeftModel

        base = PatentLMMForConditionalGeneration.from_pretrained(
            model_args.model_name_or_path, revision=model_args.model_revision, dtype=_dtype(model_args.dtype)
        )
        merged = PeftModel.from_pretrained(base, str(output / ADAPTER_SUBFOLDER)).merge_and_unload()
        merged.save_pretrained(str(output))
        processor.save_pretrained(str(output))
    return output


# ---------------------------------------------------------------------------------------------------------- main


def _recipe_argv(argv: list[str]) -> list[str]:
    """`RECIPE.yaml [options]` (the spelling of `patentlmm train`) as `--config RECIPE.yaml [options]`, which is what
    TRL's parser reads; refuses a recipe given both ways."""
    if not argv or argv[0].startswith("-"):
        return argv
    if not argv[0].endswith((".yaml", ".yml")):
        raise SystemExit(f"train_sft.py: {argv[0]!r} is not an option: the one positional argument is a YAML recipe.")
    if any(arg == "--config" or arg.startswith("--config=") for arg in argv[1:]):
        raise SystemExit(f"train_sft.py: give the recipe once, as {argv[0]} or as --config, not both.")
    return ["--config", *argv]


def _cpu_defaults(argv: list[str]) -> list[str]:
    """Without a CUDA GPU, train in float32 on the CPU (the recipes ask for bf16) unless the command line says
    otherwise."""
    if torch.cuda.is_available():
        return argv
    given = {arg.split("=")[0] for arg in argv}
    added = [item for flag, value in CPU_DEFAULTS.items() if flag not in given for item in (flag, value)]
    if added:
        logger.warning("No CUDA GPU: training on the CPU with %s.", " ".join(added))
    return [*argv, *added]


def parse_arguments(
    argv: Sequence[str] | None = None,
) -> tuple[ScriptArguments, SFTConfig, ModelConfig, PatentLMMArguments]:
    """The recipe (`RECIPE.yaml` first, or `--config RECIPE.yaml`) and the command line as the four argument
    dataclasses, checked; nothing is loaded or trained. `desc_type` is filled from `--dataset_config` when unset."""
    argv = _cpu_defaults(_recipe_argv(list(sys.argv[1:] if argv is None else argv)))
    parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig, PatentLMMArguments))
    script_args, training_args, model_args, patentlmm_args = parser.parse_args_and_config(args=argv)
    patentlmm_args.desc_type = patentlmm_args.desc_type or script_args.dataset_config
    if patentlmm_args.desc_type not in DESCRIPTION_TYPES:
        raise ValueError(
            f"desc_type (or --dataset_config) must be one of {DESCRIPTION_TYPES}, got {patentlmm_args.desc_type!r}."
        )
    if training_args.fsdp and training_args.use_cpu:
        raise ValueError(
            "--fsdp on the CPU (--use_cpu true) would be ignored: transformers then trains with plain DDP "
            "(MULTI_CPU), and without --use_cpu it refuses FSDP without GPUs. Use DDP on the CPU, FSDP on GPUs."
        )
    return script_args, training_args, model_args, patentlmm_args


def main(argv: Sequence[str] | None = None) -> Path:
    """Parses the recipe and the command line, trains one stage and returns the output folder."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    script_args, training_args, model_args, patentlmm_args = parse_arguments(argv)
    desc_type = patentlmm_args.desc_type

    set_seed(training_args.seed)  # the new projector's initialisation, as TRL seeds LoRA's
    # Model and processor: only the projector trains in stage 1; PEFT freezes all but LoRA + projector in stage 2.
    model, processor = load_model(model_args, patentlmm_args)
    if patentlmm_args.train_vision_tower:
        model.config.freeze_vision_tower = False
    if patentlmm_args.stage == 1:
        model.requires_grad_(False)
        model.model.multi_modal_projector.requires_grad_(True)
        model.model.vision_tower.requires_grad_(patentlmm_args.train_vision_tower)
        if patentlmm_args.lora_init_adapter is not None:
            model = with_frozen_adapter(model, patentlmm_args.lora_init_adapter, patentlmm_args.train_vision_tower)

    # Data: conversational rows, collated by PatentLMM's own collator (TRL's ignores the OCR columns).
    splits = load_patentdesc(script_args.dataset_name, script_args.dataset_config)
    grouped = training_args.train_sampling_strategy == "group_by_length"
    tokenizer = processor.tokenizer if grouped else None
    train = splits[script_args.dataset_train_split]
    if patentlmm_args.max_train_samples is not None:
        train = train.select(range(min(patentlmm_args.max_train_samples, len(train))))
    evaluation = None
    if training_args.eval_strategy != "no":
        evaluation = splits[script_args.dataset_test_split]
        if patentlmm_args.max_eval_samples is not None:
            evaluation = evaluation.select(range(min(patentlmm_args.max_eval_samples, len(evaluation))))
    with training_args.main_process_first(desc="conversational rows"):  # one process writes the datasets cache
        train = to_conversational(train, desc_type, tokenizer, processor.num_image_patches)
        evaluation = None if evaluation is None else to_conversational(evaluation, desc_type)
    collator = PatentLMMCollator(
        processor, patentlmm_args.prompt_format, max_length=training_args.max_length, report_truncation=True
    )

    # TRL must not re-process the rows: the collator truncates (never image tokens) and needs the OCR columns.
    training_args.max_length = None
    training_args.remove_unused_columns = False
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}

    trainer = PatentLMMSFTTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=processor,
        peft_config=lora_config(model_args, patentlmm_args.train_vision_tower) if patentlmm_args.stage == 2 else None,
        mm_projector_lr=patentlmm_args.mm_projector_lr if patentlmm_args.stage == 2 else None,
    )
    if patentlmm_args.lora_init_adapter is not None and patentlmm_args.stage == 2:
        load_lora_init(trainer.model, patentlmm_args.lora_init_adapter)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    logger.info(
        "Stage %d, %s, %s format: %d trainable parameters.",
        patentlmm_args.stage,
        desc_type,
        patentlmm_args.prompt_format,
        trainable,
    )

    trainer.train(resume_from_checkpoint=_resume_path(training_args))
    output = save_outputs(trainer, processor, patentlmm_args, model_args)
    if trainer.is_world_process_zero():  # the one process that wrote the final folder says so
        logger.info("Saved to %s", output)
    return output


def _resume_path(training_args: SFTConfig) -> str | bool | None:
    """`--resume_from_checkpoint true` resumes from the last checkpoint of output_dir (none yet: starts afresh)."""
    value = training_args.resume_from_checkpoint
    if value is None or value.lower() == "false":
        return None
    if value.lower() == "true":
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        return last
    return value


if __name__ == "__main__":
    main()
