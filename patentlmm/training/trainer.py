"""PatentLMM's SFTTrainer: the projector's own learning rate, truncation counts, non-finite gradient warnings, atomic
checkpoints."""

from __future__ import annotations

import copy
import logging
import math
import os
import shutil

import torch
from datasets import Dataset
from datasets.arrow_dataset import Column
from peft import PeftConfig
from transformers import PreTrainedModel, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints
from trl import SFTConfig, SFTTrainer

from processing import PatentLMMProcessor
from processing.collator import NUM_TRUNCATED_KEY, PatentLMMCollator

from .checkpoints import CheckpointError, publish_checkpoint, staging_folder
from .model import PROJECTOR_MODULE

__all__ = ["PatentLMMSFTTrainer", "build_trainer"]

logger = logging.getLogger(__name__)


class PatentLMMSFTTrainer(SFTTrainer):
    """SFTTrainer with the projector in its own optimizer parameter groups (learning rate `mm_projector_lr`), the
    collator's count of cut descriptions logged as `truncated_samples` (cumulative, all processes), a warning for
    every logged non-finite `grad_norm` (that step's clipped update was zero or NaN, never a real one), and each
    `checkpoint-N` written into a staging folder that is renamed when complete."""

    def __init__(self, *args, mm_projector_lr: float | None = None, **kwargs):
        self.mm_projector_lr = mm_projector_lr
        self._num_truncated = 0
        self._staging_run_dir: str | None = None
        super().__init__(*args, **kwargs)

    def _get_output_dir(self, trial) -> str:
        return self._staging_run_dir or super()._get_output_dir(trial)

    def _save_checkpoint(self, model: torch.nn.Module, trial) -> None:
        """The Trainer's save of `checkpoint-N` (model or adapter, optimizer, scheduler, RNG, trainer state, by every
        process) into `.checkpoint-N.tmp-saving/`, renamed into the output folder once all processes are done, then
        the rotation of old ones: a kill or a full disk during a save leaves no `checkpoint-N` a resume could pick."""
        run_dir = super()._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = staging_folder(run_dir, name)
        self._staging_run_dir = str(staging)
        try:
            super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()
        except BaseException as error:
            if self.args.should_save:
                shutil.rmtree(staging, ignore_errors=True)
            if isinstance(error, Exception):  # a full disk, a file size limit, a quota, as each writer words it
                raise CheckpointError(
                    f"Saving {name} in {run_dir} failed ({error}); nothing of it was kept. Make room, then resume "
                    "from the checkpoint before it with the same command and --resume_from_checkpoint true."
                ) from error
            raise
        finally:
            self._staging_run_dir = None
        if self.args.should_save:
            best = self.state.best_model_checkpoint
            if best is not None and best.startswith(str(staging)):  # the staging path, as the Trainer saw it
                self.state.best_model_checkpoint = os.path.join(run_dir, os.path.relpath(best, staging))
                self.state.save_to_json(str(staging / name / "trainer_state.json"))
            publish_checkpoint(staging, run_dir, name)
            rotate_checkpoints(run_dir, self.args.save_total_limit, self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()

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
