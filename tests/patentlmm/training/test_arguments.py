"""The recipe's values are checked before anything is loaded: each out-of-range value stops `patentlmm train` with one
line naming the option, exit status 1, and an empty output folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import REPO

pytest.importorskip("trl")

from patentlmm import training  # noqa: E402
from patentlmm.cli import main  # noqa: E402

RECIPE = str(REPO / "recipes" / "stage2_brief.yaml")

BAD_VALUES = [
    ("gradient_accumulation_steps", "0", "--gradient_accumulation_steps must be at least 1, got 0."),
    ("num_train_epochs", "-1", "--num_train_epochs must be above 0 (or --max_steps at least 1), got -1.0."),
    ("num_train_epochs", "nan", "--num_train_epochs must be above 0 (or --max_steps at least 1), got nan."),
    ("per_device_train_batch_size", "0", "--per_device_train_batch_size must be at least 1, got 0."),
    ("per_device_eval_batch_size", "-2", "--per_device_eval_batch_size must be at least 1, got -2."),
    ("learning_rate", "-1e-4", "--learning_rate must be above 0, got -0.0001."),
    ("learning_rate", "inf", "--learning_rate must be above 0, got inf."),
    ("mm_projector_lr", "0", "--mm_projector_lr must be above 0, got 0.0."),
    ("max_steps", "0", "--max_steps must be -1 (stop after num_train_epochs) or at least 1, got 0."),
    ("save_steps", "-10", "--save_steps must be above 0, got -10.0."),
    ("eval_steps", "0", "--eval_steps must be above 0, got 0.0."),
    ("save_total_limit", "0", "--save_total_limit must be at least 1, got 0."),
    ("lora_r", "0", "--lora_r must be at least 1, got 0."),
    ("lora_alpha", "-8", "--lora_alpha must be above 0, got -8."),
    ("lora_dropout", "1", "--lora_dropout must be in [0, 1), got 1.0."),
    ("max_length", "0", "--max_length must be at least 1, got 0."),
    ("weight_decay", "-0.1", "--weight_decay must be at least 0, got -0.1."),
    ("adam_beta2", "1.5", "--adam_beta2 must be in [0, 1), got 1.5."),
    ("dataloader_num_workers", "-1", "--dataloader_num_workers must be at least 0, got -1."),
    ("max_train_samples", "0", "--max_train_samples must be at least 1, got 0."),
    ("seed", "-1", "--seed must be in [0, 2**32), got -1."),
    ("bad_rows", "ignore", "--bad_rows must be one of ('skip', 'refuse'), got 'ignore'."),
    ("stage", "3", "--stage must be 1 or 2, got 3."),
    ("logging_steps", "0", "requires non-zero --logging_steps"),  # transformers' own check, as one line too
]


def _options(output) -> list[str]:
    # The model folder does not exist: a value checked after loading would fail on the folder instead.
    return ["--model_name_or_path", str(output / "no-model"), "--dataset_name", str(output / "no-data"),
            "--output_dir", str(output / "run"), "--report_to", "none"]  # fmt: skip


@pytest.mark.parametrize(("option", "value", "message"), BAD_VALUES, ids=[f"{o}={v}" for o, v, _ in BAD_VALUES])
def test_an_out_of_range_value_stops_before_anything_loads(tmp_path, option, value, message):
    with pytest.raises(SystemExit) as stopped:
        main(["train", RECIPE, *_options(tmp_path), f"--{option}={value}"])
    assert str(stopped.value.code).startswith("train: ") and message in str(stopped.value.code)
    assert "\n" not in str(stopped.value.code)
    assert not (tmp_path / "run").exists()


def test_the_command_exits_1_with_one_line_naming_the_option(tmp_path):
    """`gradient_accumulation_steps: 0` was a bare ZeroDivisionError, `num_train_epochs: -1` trained 0 steps and
    printed "Saved to"."""
    for option, value, message in BAD_VALUES[:2]:
        done = subprocess.run(
            [sys.executable, "-m", "patentlmm.cli", "train", RECIPE, *_options(tmp_path), f"--{option}={value}"],
            cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        assert done.returncode == 1, done.stderr[-2000:]
        assert done.stderr.strip().splitlines()[-1] == f"train: {message}"
        assert "Traceback" not in done.stderr and "Saved to" not in done.stderr
        assert not (tmp_path / "run").exists()


def test_python_callers_get_the_same_check(tmp_path):
    """`training.train` (the typed entry point) checks the four objects before loading anything."""
    from trl import ModelConfig, ScriptArguments, SFTConfig

    with pytest.raises(training.RecipeError, match=r"^--lora_r must be at least 1, got 0\.$"):
        training.train(
            ScriptArguments(dataset_name=str(tmp_path / "no-data"), dataset_config="brief"),
            SFTConfig(output_dir=str(tmp_path / "run"), use_cpu=True, bf16=False, report_to="none"),
            ModelConfig(model_name_or_path=str(tmp_path / "no-model"), lora_r=0),
            training.PatentLMMArguments(stage=2),
        )
    assert not (tmp_path / "run").exists()


def test_max_steps_makes_num_train_epochs_irrelevant():
    parsed = training.parse_arguments(
        [RECIPE, "--model_name_or_path", "m", "--dataset_name", "d", "--output_dir", "o", "--max_steps", "3",
         "--num_train_epochs", "0"]
    )  # fmt: skip
    assert parsed[1].max_steps == 3
