"""`patentlmm pretrain` on the bundled figures: every loss falls, MIM beats the majority code, resume, NaN stops the
run naming step and task, train_head_only, and the `encoder/` folder trains stage 1."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from datasets import load_from_disk
from safetensors.torch import load_file
from transformers import AutoTokenizer

from helpers import REPO
from helpers.training import FAST
from modeling_patentlmm import PatentMMEForPreTraining, PatentMMEVisualTokenizer
from patentlmm.cli import main as cli
from patentlmm.pretraining import NonFiniteLossError, PatentMMECollator, PretrainArguments, build_model

RECIPE = str(REPO / "recipes" / "pretrain_tiny.yaml")
TASKS = ("mlm", "mim", "pch", "tna")


def _pretrain(pretraining_dir, output, *options: str) -> None:
    cli(["pretrain", RECIPE, "--dataset_name", str(pretraining_dir), "--output_dir", str(output), *options])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, pretraining_dir):
    output = tmp_path_factory.mktemp("patentmme-tiny")
    _pretrain(pretraining_dir, output)
    return output


@pytest.mark.slow
def test_every_enabled_loss_falls(pretrained):
    history = json.loads((pretrained / "trainer_state.json").read_text())["log_history"]
    for task in TASKS:
        values = [entry[f"{task}_loss"] for entry in history if f"{task}_loss" in entry]
        assert len(values) >= 40, task
        first, last = sum(values[:10]) / 10, sum(values[-10:]) / 10
        assert last < 0.8 * first, f"{task}: first 10 steps {first:.3f}, last 10 {last:.3f}"


@pytest.mark.slow
def test_the_output_holds_the_model_its_encoder_and_its_visual_tokenizer(pretrained):
    assert json.loads((pretrained / "config.json").read_text())["model_type"] == "patentmme"
    assert json.loads((pretrained / "encoder" / "config.json").read_text())["model_type"] == "layoutlmv3"
    model = load_file(pretrained / "model.safetensors")
    encoder = load_file(pretrained / "encoder" / "model.safetensors")
    assert sorted(encoder) == sorted(k.removeprefix("layoutlmv3.") for k in model if k.startswith("layoutlmv3."))
    for name, tensor in encoder.items():
        assert torch.equal(tensor, model["layoutlmv3." + name]), name
    assert PatentMMEVisualTokenizer.from_pretrained(pretrained / "visual_tokenizer").num_tokens == 16


@pytest.mark.slow
def test_mim_beats_the_majority_code_on_masked_patches(pretrained, pretraining_dir):
    model = PatentMMEForPreTraining.from_pretrained(pretrained).eval()
    tokenizer = PatentMMEVisualTokenizer.from_pretrained(pretrained / "visual_tokenizer")
    collator = PatentMMECollator(AutoTokenizer.from_pretrained(pretrained), model.config, tokenizer, seed=123)
    rows = list(load_from_disk(str(pretraining_dir / "pretraining"))["train"])
    batch = collator(rows)
    with torch.no_grad():
        logits = model(**batch).mim_logits
    masked = batch["mim_labels"] != -100
    labels = batch["mim_labels"][masked]
    accuracy = float((logits[masked].argmax(-1) == labels).float().mean())
    majority = Counter(labels.tolist()).most_common(1)[0][1] / len(labels)
    assert len(labels) > 20 and accuracy > majority, (accuracy, majority)


@pytest.mark.slow
def test_resume_goes_on_from_the_last_checkpoint(tmp_path, pretraining_dir):
    output = tmp_path / "run"
    short = ["--save_strategy", "steps", "--save_steps", "2"]
    _pretrain(pretraining_dir, output, "--max_steps", "2", *short)
    assert (output / "checkpoint-2").is_dir()
    _pretrain(pretraining_dir, output, "--max_steps", "4", *short, "--resume_from_checkpoint", "true")
    state = json.loads((output / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3, 4]


def test_a_nan_loss_stops_the_run_naming_the_step_and_the_task(tmp_path, pretraining_dir):
    args = PretrainArguments(input_size=64, visual_tokenizer="random-tiny", max_ocr_tokens=128)
    model, ocr_tokenizer, _ = build_model(args)
    with torch.no_grad():
        model.patch_cls_linear_head.proj[2].bias.fill_(float("nan"))
    model.save_pretrained(tmp_path / "broken")
    ocr_tokenizer.save_pretrained(tmp_path / "broken")
    with pytest.raises(NonFiniteLossError, match=r"^Step 1: the pch loss is nan; stopping"):
        _pretrain(pretraining_dir, tmp_path / "out", "--model_name_or_path", str(tmp_path / "broken"),
                  "--max_steps", "1")  # fmt: skip


def test_train_head_only_freezes_the_transformer_layers_only():
    args = PretrainArguments(input_size=64, visual_tokenizer="random-tiny", train_head_only=True)
    model, _, _ = build_model(args)
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == (not name.startswith("layoutlmv3.encoder.")), name


@pytest.mark.slow
def test_the_encoder_folder_trains_stage_1(tmp_path, pretrained, pretraining_dir):
    from transformers import LlamaForCausalLM

    from patentlmm import training
    from patentlmm.assembly.tiny import TinyModelArguments, build_tiny

    small, processor = build_tiny(TinyModelArguments(input_size=64))
    llm = LlamaForCausalLM(small.config.text_config)
    llm.save_pretrained(tmp_path / "llm")
    processor.tokenizer.save_pretrained(tmp_path / "llm")
    output = tmp_path / "stage1"
    training.main(
        ["--config", str(REPO / "recipes" / "stage1_brief.yaml"), "--model_name_or_path", str(tmp_path / "llm"),
         "--vision_tower", str(pretrained / "encoder"), "--dataset_name", str(pretraining_dir),
         "--output_dir", str(output), "--max_steps", "2", *FAST]
    )  # fmt: skip
    stage1 = load_file(output / "model.safetensors")
    encoder = load_file(pretrained / "encoder" / "model.safetensors")
    for name, tensor in encoder.items():
        assert torch.equal(stage1["model.vision_tower." + name], tensor), name
