"""PatentLMM's SFTTrainer: the projector's own learning rate, truncation counts, non-finite gradient warnings."""

from __future__ import annotations

import copy
import logging
import math

import torch
from datasets import Dataset
from datasets.arrow_dataset import Column
from peft import PeftConfig
from transformers import PreTrainedModel, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import SFTConfig, SFTTrainer

from processing import PatentLMMProcessor
from processing.collator import NUM_TRUNCATED_KEY, PatentLMMCollator

from .model import PROJECTOR_MODULE

__all__ = ["PatentLMMSFTTrainer", "build_trainer"]

logger = logging.getLogger(__name__)


class PatentLMMSFTTrainer(SFTTrainer):
    """SFTTrainer with the projector in its own optimizer parameter groups (learning rate `mm_projector_lr`), the
    collator's count of cut descriptions logged as `truncated_samples` (cumulative, all processes), and a warning for
    every logged non-finite `grad_norm` (that step's clipped update was zero or NaN, never a real one)."""

    def __init__(self, *args, mm_projector_lr: float | None = None, **kwargs):
        self.mm_projector_lr = mm_projector_lr
        self._num_truncated = 0
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
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

    def _get_train_sampler(self, train_dataset: Dataset | None = None):
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


def build_trainer(
    model: PreTrainedModel,
    processor: PatentLMMProcessor,
    training_args: SFTConfig,
    collator: PatentLMMCollator,
    train_rows: Dataset,
    eval_rows: Dataset | None = None,
    peft_config: PeftConfig | None = None,
    mm_projector_lr: float | None = None,
    callbacks: list[TrainerCallback] | None = None,
) -> PatentLMMSFTTrainer:
    """The trainer of prompt/completion rows collated by PatentLMM's `collator`, on a copy of `training_args` with
    TRL's own data preparation off: the collator tokenizes and truncates (never image tokens) and needs the OCR
    columns."""
    args = copy.copy(training_args)  # the caller's object stays as given
    args.max_length = None
    args.remove_unused_columns = False
    args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    return PatentLMMSFTTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        processing_class=processor,
        callbacks=callbacks,
        peft_config=peft_config,
        mm_projector_lr=mm_projector_lr,
    )
