"""PatentMME pretraining options and the parsing of a recipe + command line into them and `TrainingArguments`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TrainingArguments
from trl import TrlParser

from modeling_patentlmm.configuration_patentmme import LOSS_NORMALISATIONS, MIM_STRATEGIES, TASKS
from patentlmm.training.arguments import CPU_TRAINING

__all__ = ["RANDOM_TOKENIZERS", "PretrainArguments", "parse_arguments"]

logger = logging.getLogger(__name__)

# `visual_tokenizer` values that build the seeded random stand-in instead of loading a folder: the OCR-VQGAN's shape
# (16,384 codes) or a tiny one (64 codes) for CPU runs.
RANDOM_TOKENIZERS = ("random", "random-tiny")


def _option(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field with its `--help` text (and `choices`), as HfArgumentParser reads them."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class PretrainArguments:
    """PatentMME's pretraining options (the optimisation ones come from transformers' `TrainingArguments`)."""

    model_name_or_path: str | None = _option(
        None,
        "A LayoutLMv3 model (microsoft/layoutlmv3-large, as the authors start from) or a PatentMME folder to go on "
        "from; unset: a tiny random encoder (patentlmm.assembly.tiny) at --input_size, for CPU runs.",
    )
    input_size: int = _option(384, "Figure side of the tiny random encoder (a given model keeps its own).")
    dataset_name: str = _option("patentdesc-355k", "Dataset folder, save_to_disk folder or Hub id.")
    dataset_config: str = _option("pretraining", "Its config: image, OCR words, layout elements, visual tokens.")
    dataset_train_split: str = _option("train", "Split to train on.")
    max_train_samples: int | None = _option(None, "Keep the first N rows.")
    visual_tokenizer: str = _option(
        "random",
        "Folder of a PatentMMEVisualTokenizer (`patentlmm convert-patentmme` writes one), or random / random-tiny: "
        "the seeded random stand-in (OCR-VQGAN shape / 64 codes). Tokenizes rows without cached visual_tokens.",
    )
    visual_tokenizer_seed: int = _option(0, "Seed of the random visual tokenizer.")
    mim_strategy: str = _option(
        "layout", "MIM candidates: patches inside a layout element, or all.", choices=MIM_STRATEGIES
    )
    mlm_probability: float = _option(0.3, "Share of OCR tokens masked per figure.")
    mim_probability: float = _option(0.4, "Share of candidate patches masked per figure.")
    mlm_weight: float = _option(1.0, "Weight of the MLM loss (0: off).")
    mim_weight: float = _option(1.0, "Weight of the MIM loss (0: off).")
    pch_weight: float = _option(1.0, "Weight of the patch classification loss (0: off; the authors' phase 1).")
    tna_weight: float = _option(1.0, "Weight of the text-node alignment loss (0: off; the authors' phase 1).")
    loss_normalisation: str = _option(
        "original",
        "original: the authors' means over all positions; masked: over labelled ones.",
        choices=LOSS_NORMALISATIONS,
    )
    tna_temperature: float | None = _option(None, "Divides TNA's cosine similarities (unset: the authors' none).")
    max_nodes: int = _option(25, "Nodes per figure TNA can point a token at.")
    max_ocr_tokens: int = _option(512, "Longest OCR token sequence, <s> and </s> included.")
    train_head_only: bool = _option(False, "Freeze the transformer layers (the authors' train_head_only).")
    mask_seed: int = _option(0, "Seed of the collator's MLM and MIM masks.")

    def __post_init__(self):
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(f"--max_train_samples must be at least 1, got {self.max_train_samples}.")
        if self.max_ocr_tokens < 2:
            raise ValueError(f"--max_ocr_tokens must be at least 2 (<s></s>), got {self.max_ocr_tokens}.")

    @property
    def loss_weights(self) -> dict[str, float]:
        """`{task: weight}` for `PatentMMEConfig.loss_weights`."""
        return {task: getattr(self, f"{task}_weight") for task in TASKS}

    def model_settings(self) -> dict[str, Any]:
        """The `PatentMMEConfig` fields these options set."""
        return {
            "mim_strategy": self.mim_strategy,
            "mlm_probability": self.mlm_probability,
            "mim_probability": self.mim_probability,
            "loss_weights": self.loss_weights,
            "loss_normalisation": self.loss_normalisation,
            "tna_temperature": self.tna_temperature,
            "max_nodes": self.max_nodes,
        }


def _recipe_argv(argv: list[str]) -> list[str]:
    """`RECIPE.yaml [options]` as `--config RECIPE.yaml [options]` (TRL's parser reads recipes so)."""
    if argv and argv[0].endswith((".yaml", ".yml")):
        return ["--config", *argv]
    return argv


def _cpu_defaults(argv: list[str]) -> list[str]:
    """`argv` plus `CPU_TRAINING` for each flag it does not give, when there is no CUDA GPU."""
    if torch.cuda.is_available():
        return argv
    given = {arg.split("=")[0] for arg in argv}
    added = [
        item
        for name, value in CPU_TRAINING.items()
        if f"--{name}" not in given
        for item in (f"--{name}", str(value).lower())
    ]
    if added:
        logger.warning("No CUDA GPU: pretraining on the CPU with %s.", " ".join(added))
    return [*argv, *added]


def parse_arguments(argv: Sequence[str] | None = None) -> tuple[PretrainArguments, TrainingArguments]:
    """The recipe (`RECIPE.yaml` first, or `--config RECIPE.yaml`) and the command line (default: `sys.argv[1:]`)."""
    argv = _cpu_defaults(_recipe_argv(list(sys.argv[1:] if argv is None else argv)))
    parser = TrlParser((PretrainArguments, TrainingArguments))
    pretrain_args, training_args = parser.parse_args_and_config(args=argv)
    return pretrain_args, training_args
