"""PatentMMETrainer: the Hugging Face `Trainer` with each task's loss logged and non-finite losses stopping the run."""

from __future__ import annotations

import math

import torch
from transformers import Trainer

from modeling_patentlmm.configuration_patentmme import TASKS

__all__ = ["NonFiniteLossError", "PatentMMETrainer"]


class NonFiniteLossError(FloatingPointError):
    """A task's loss was NaN or infinite: the run stops, naming the step and the task."""


class PatentMMETrainer(Trainer):
    """`Trainer` that logs `mlm_loss`, `mim_loss`, `pch_loss` and `tna_loss` (means over the steps since the last log,
    all processes) beside `loss`, and raises `NonFiniteLossError` on the first NaN / inf task loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._task_sums = torch.zeros(len(TASKS), dtype=torch.float64)
        self._task_counts = torch.zeros(len(TASKS), dtype=torch.float64)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        step = self.state.global_step + 1
        for index, task in enumerate(TASKS):
            loss = getattr(outputs, f"{task}_loss")
            if loss is None:
                continue
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"Step {step}: the {task} loss is {value}; stopping (lower the learning rate, check that "
                    "figure's labels, or train in float32)."
                )
            if model.training:
                self._task_sums[index] += value
                self._task_counts[index] += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log: add each task's mean since the previous one
            totals = torch.stack([self._task_sums, self._task_counts]).to(self.accelerator.device)
            totals = self.accelerator.reduce(totals, reduction="sum").cpu()
            for index, task in enumerate(TASKS):
                if totals[1, index] > 0:
                    logs[f"{task}_loss"] = round(float(totals[0, index] / totals[1, index]), 4)
            self._task_sums.zero_()
            self._task_counts.zero_()
        super().log(logs, start_time)
