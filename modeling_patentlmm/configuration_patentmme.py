"""PatentMMEConfig: LayoutLMv3 (PatentMME-shaped) plus the pretraining tasks' settings (remote code)."""

from __future__ import annotations

from typing import Any

from transformers import LayoutLMv3Config

from .configuration_patentlmm import PATENTMME_LARGE

__all__ = ["LOSS_NORMALISATIONS", "MIM_STRATEGIES", "PATCH_CLASSES", "PatentMMEConfig", "TASKS"]

TASKS = ("mlm", "mim", "pch", "tna")
MIM_STRATEGIES = ("layout", "random")
LOSS_NORMALISATIONS = ("original", "masked")
# The layout detector's 5 classes, in its label order (`PatentMME/model.py:22-28`, `dataset.py:91-93`).
PATCH_CLASSES = ("node", "node_label", "figure_label", "text", "arrow")


class PatentMMEConfig(LayoutLMv3Config):
    r"""
    Configuration of [`PatentMMEForPreTraining`]: a `LayoutLMv3Config` (default: LayoutLMv3-large at 384 px with 16-px
    patches, `PATENTMME_LARGE`) and the pretraining settings below (docs/pretraining.md).

    Args:
        mim_vocab_size (`int`, *optional*, defaults to 16385):
            Classes of the MIM head: the visual tokenizer's codes + 1, as the authors' head
            (`patentmme_layoutlmv3.py:805`).
        patch_classes (`list[str]`, *optional*, defaults to `PATCH_CLASSES`):
            Names of the patch classification (PCH) classes, in label order.
        max_nodes (`int`, *optional*, defaults to 25):
            Layout nodes per figure that text-node alignment (TNA) can point a token at (`train.py:29`).
        mlm_probability (`float`, *optional*, defaults to 0.3):
            Share of a figure's OCR tokens (special tokens excluded) masked for MLM (`model.py:25`).
        mim_probability (`float`, *optional*, defaults to 0.4):
            Share of the candidate patches masked for MIM (`model.py:26`).
        mim_strategy (`str`, *optional*, defaults to `"layout"`):
            `"layout"`: candidates are the patches inside a layout element (the authors', `patentmme_layoutlmv3.py:
            1002-1008`); `"random"`: every patch.
        loss_weights (`dict[str, float]`, *optional*):
            Weight of each task in `TASKS` in the total loss; 0 turns a task off. Defaults to 1 for all (the authors'
            unweighted sum, `patentmme_layoutlmv3.py:1226-1243`).
        loss_normalisation (`str`, *optional*, defaults to `"original"`):
            `"original"`: each token/patch loss averaged over every position of the padded batch, unlabelled ones
            counting 0, as the authors (`patentmme_layoutlmv3.py:945-949,1025-1029,953-971`); `"masked"`: averaged
            over the labelled positions only, and TNA's softmax over the figure's own nodes.
        tna_temperature (`float`, *optional*):
            Divides TNA's cosine similarities; `None` (the authors') divides by nothing.
    """

    model_type = "patentmme"

    def __init__(
        self,
        mim_vocab_size: int = 16385,
        patch_classes: list[str] | tuple[str, ...] = PATCH_CLASSES,
        max_nodes: int = 25,
        mlm_probability: float = 0.3,
        mim_probability: float = 0.4,
        mim_strategy: str = "layout",
        loss_weights: dict[str, float] | None = None,
        loss_normalisation: str = "original",
        tna_temperature: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(**{**PATENTMME_LARGE, **kwargs})
        self.mim_vocab_size = mim_vocab_size
        self.patch_classes = list(patch_classes)
        self.max_nodes = max_nodes
        self.mlm_probability = mlm_probability
        self.mim_probability = mim_probability
        self.mim_strategy = mim_strategy
        self.loss_weights = {task: 1.0 for task in TASKS} | dict(loss_weights or {})
        self.loss_normalisation = loss_normalisation
        self.tna_temperature = tna_temperature
        self.validate()

    @property
    def num_patches(self) -> int:
        """Patches per figure: `(input_size / patch_size) ** 2` (576 at 384 / 16)."""
        return (self.input_size // self.patch_size) ** 2

    @property
    def enabled_tasks(self) -> tuple[str, ...]:
        """The tasks with a non-zero loss weight, in `TASKS` order."""
        return tuple(task for task in TASKS if self.loss_weights[task] != 0)

    def validate(self) -> None:
        """Raises `ValueError` naming the first setting that is out of range."""
        if self.mim_strategy not in MIM_STRATEGIES:
            raise ValueError(f"mim_strategy must be one of {MIM_STRATEGIES}, got {self.mim_strategy!r}.")
        if self.loss_normalisation not in LOSS_NORMALISATIONS:
            raise ValueError(
                f"loss_normalisation must be one of {LOSS_NORMALISATIONS}, got {self.loss_normalisation!r}."
            )
        unknown = sorted(set(self.loss_weights) - set(TASKS))
        if unknown:
            raise ValueError(f"loss_weights has unknown task(s) {unknown}; the tasks are {TASKS}.")
        if any(weight < 0 for weight in self.loss_weights.values()):
            raise ValueError(f"loss_weights must be >= 0, got {self.loss_weights}.")
        for name in ("mlm_probability", "mim_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        if self.tna_temperature is not None and self.tna_temperature <= 0:
            raise ValueError(f"tna_temperature must be > 0 or None, got {self.tna_temperature}.")
        if self.mim_vocab_size < 2 or self.max_nodes < 1 or not self.patch_classes:
            raise ValueError("mim_vocab_size must be >= 2, max_nodes >= 1 and patch_classes non-empty.")
        if self.input_size % self.patch_size:
            raise ValueError(f"input_size={self.input_size} is not a multiple of patch_size={self.patch_size}.")


PatentMMEConfig.register_for_auto_class()
