"""Training (`patentlmm.training`, which train_sft.py runs) end to end on CPU: tiny random model, the five real
figures, the real SFTTrainer, a few steps.

Stage 1 builds from a base LLM folder + a PatentLMM folder's encoder and changes the projector only; stage 2 starts
from the stage-1 output and changes LoRA and the projector only; overfitting one batch lowers the loss; a run killed
with SIGKILL resumes to the uninterrupted run's final step and loss; the release loads through the Auto classes
with trust_remote_code, from outside the repository, and generates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from helpers import REPO, SCRIPTS, run_outside_repo
from helpers.training import FAST

pytest.importorskip("trl")
pytest.importorskip("peft")

from patentlmm import training  # noqa: E402

LOADER = SCRIPTS / "load_and_generate.py"
PROJECTOR = "model.multi_modal_projector."


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _last_loss(folder: Path) -> tuple[int, float]:
    """(global step, last logged training loss) of a run's newest checkpoint."""
    checkpoint = max(folder.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return state["global_step"], [entry["loss"] for entry in state["log_history"] if "loss" in entry][-1]


@pytest.fixture(scope="session")
def stage1_dir(tmp_path_factory, patentdesc_dir, small) -> Path:
    small_dir, base_llm_dir = small
    output = tmp_path_factory.mktemp("stage1")
    training.main(
        ["--config", str(REPO / "recipes" / "stage1_brief.yaml"), "--model_name_or_path", str(base_llm_dir),
         "--vision_tower", str(small_dir), "--dataset_name", str(patentdesc_dir), "--output_dir", str(output),
         "--max_steps", "2", *FAST]
    )  # fmt: skip
    return output


@pytest.fixture(scope="session")
def stage2_dir(tmp_path_factory, patentdesc_dir, stage1_dir) -> Path:
    output = tmp_path_factory.mktemp("stage2")
    training.main(
        ["--config", str(REPO / "recipes" / "stage2_brief.yaml"), "--model_name_or_path", str(stage1_dir),
         "--dataset_name", str(patentdesc_dir), "--output_dir", str(output), "--max_steps", "2",
         "--lora_r", "4", "--lora_alpha", "8", "--learning_rate", "1e-2", "--mm_projector_lr", "1e-2", *FAST]
    )  # fmt: skip
    return output


def test_stage1_trains_only_the_projector(stage1_dir, small):
    small_dir, base_llm_dir = small
    trained = _weights(stage1_dir)
    llm, encoder = _weights(base_llm_dir), _weights(small_dir)
    for name, tensor in trained.items():
        if name.startswith(PROJECTOR):
            continue
        if name.startswith("model.vision_tower."):
            source = encoder[name]
        elif name.startswith("model.language_model."):
            source = llm["model." + name.removeprefix("model.language_model.")]
        else:
            source = llm[name]
        assert torch.equal(tensor, source), name

    # The projector moved away from its seeded initialisation, and mm_projector.safetensors holds it.
    from trl import ModelConfig

    torch.manual_seed(42)  # the recipe's seed, set by training.train before it builds the model
    initial, _ = training.build_from_base_llm(str(base_llm_dir), str(small_dir), ModelConfig(dtype="float32"))
    projector = load_file(str(stage1_dir / training.PROJECTOR_FILE))
    assert sorted(projector) == sorted(name for name in trained if name.startswith(PROJECTOR))
    for name, tensor in projector.items():
        assert torch.equal(tensor, trained[name])
        assert not torch.equal(tensor, initial.state_dict()[name]), name


def test_stage1_from_a_base_llm_saves_the_package_generation_defaults(stage1_dir):
    """Greedy, DEFAULT_MAX_NEW_TOKENS new tokens, `<image>` suppressed: `assembly.components.generation_config`, not
    the base LLM's generation config."""
    from transformers import GenerationConfig

    from modeling_patentlmm import PatentLMMConfig
    from patentlmm.assembly.components import DEFAULT_MAX_NEW_TOKENS

    saved = GenerationConfig.from_pretrained(stage1_dir)
    config = PatentLMMConfig.from_pretrained(stage1_dir)
    assert saved.do_sample is False and saved.max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    assert saved.suppress_tokens == [config.image_token_id]
    assert (saved.pad_token_id, saved.eos_token_id) == (config.pad_token_id, config.eos_token_id)


def test_stage2_trains_only_lora_and_projector(stage2_dir, stage1_dir):
    adapter = load_file(str(stage2_dir / training.ADAPTER_SUBFOLDER / "adapter_model.safetensors"))
    assert adapter and all(
        ".lora_A." in name or ".lora_B." in name or "multi_modal_projector" in name for name in adapter
    )
    assert any("language_model" in name and ".lora_B." in name for name in adapter)

    merged, base = _weights(stage2_dir), _weights(stage1_dir)
    assert sorted(merged) == sorted(base)
    lora_layers = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    for name, tensor in merged.items():
        changed = not torch.equal(tensor, base[name])
        if name.startswith(PROJECTOR) or (
            name.startswith("model.language_model.") and name.split(".")[-2] in lora_layers
        ):
            assert changed, f"{name} did not train"
        else:
            assert not changed, f"{name} changed"


def test_release_loads_with_auto_classes_and_generates(stage2_dir, figures):
    entry = figures["US20250204297A1__12"]
    out = run_outside_repo(sys.executable, LOADER, str(stage2_dir), str(entry["path"]), '["FIG.", "12"]',
                           "[[10, 10, 50, 20], [60, 10, 80, 20]]")  # fmt: skip
    result = json.loads(out)
    assert result["imported_repo_packages"] == []
    assert result["model_module"].startswith("transformers_modules.")


def test_overfitting_one_batch_lowers_the_loss(tmp_path, patentdesc_dir, small):
    training.main(
        ["--config", str(REPO / "recipes" / "stage2_brief.yaml"), "--model_name_or_path", str(small[0]),
         "--dataset_name", str(patentdesc_dir), "--output_dir", str(tmp_path), "--max_train_samples", "1",
         "--max_steps", "5", "--learning_rate", "1e-2", "--mm_projector_lr", "1e-2", "--lora_r", "8",
         "--lora_alpha", "16", "--lora_dropout", "0", "--warmup_steps", "0", "--lr_scheduler_type", "constant",
         "--merge_lora", "false", *FAST, "--save_strategy", "steps", "--save_steps", "5",
         "--gradient_checkpointing", "false", "--per_device_train_batch_size", "1"]
    )  # fmt: skip
    state = json.loads((tmp_path / "checkpoint-5" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 5
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.85 * losses[0], losses
    assert (tmp_path / "adapter_config.json").is_file()  # --merge_lora false: the adapter is the output


class InfiniteGradient(TrainerCallback):
    """Turns one projector weight's gradient into inf in the real backward, as the sporadic failure of issue 14 did."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        weight = next(p for n, p in model.named_parameters() if training.PROJECTOR_MODULE in n and p.requires_grad)
        weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))


def test_a_non_finite_grad_norm_is_reported_with_its_step(tmp_path, patentdesc_dir, small, monkeypatch, caplog):
    init = training.PatentLMMSFTTrainer.__init__

    def with_infinite_gradient(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.add_callback(InfiniteGradient())

    monkeypatch.setattr(training.PatentLMMSFTTrainer, "__init__", with_infinite_gradient)
    with caplog.at_level("WARNING", logger="patentlmm.training"):
        training.main(
            ["--config", str(REPO / "recipes" / "stage2_brief.yaml"), "--model_name_or_path", str(small[0]),
             "--dataset_name", str(patentdesc_dir), "--output_dir", str(tmp_path), "--max_train_samples", "2",
             "--max_steps", "1", "--merge_lora", "false", *FAST]
        )  # fmt: skip
    assert "Step 1: grad_norm is inf, a non-finite gradient: clipping (max_grad_norm 1.0) scaled" in caplog.text


KILL_AT_STEP = """
import os, signal, sys
from transformers import TrainerCallback
from patentlmm import training

class KillAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(os.environ["KILL_AT_STEP"]):
            os.kill(os.getpid(), signal.SIGKILL)

init = training.PatentLMMSFTTrainer.__init__
def patched(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.add_callback(KillAt())
training.PatentLMMSFTTrainer.__init__ = patched
training.main(sys.argv[1:])
"""


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, patentdesc_dir, small):
    def command(output: Path) -> list[str]:
        return [
            "--config", str(REPO / "recipes" / "stage2_brief.yaml"), "--model_name_or_path", str(small[0]),
            "--dataset_name", str(patentdesc_dir), "--output_dir", str(output), "--max_steps", "3",
            "--lora_r", "4", "--lora_alpha", "8", "--learning_rate", "1e-2", "--merge_lora", "false",
            *FAST, "--save_strategy", "steps", "--save_steps", "1", "--gradient_checkpointing", "false",
            "--per_device_train_batch_size", "1",
        ]  # fmt: skip

    env = {**os.environ, "KILL_AT_STEP": "2", "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AT_STEP, *command(tmp_path / "resumed")], cwd=REPO, env=env, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-3000:]
    assert sorted(path.name for path in (tmp_path / "resumed").glob("checkpoint-*")) == [
        "checkpoint-1"
    ]  # killed before saving step 2

    training.main([*command(tmp_path / "resumed"), "--resume_from_checkpoint", "true"])
    training.main(command(tmp_path / "straight"))
    assert _last_loss(tmp_path / "resumed") == _last_loss(tmp_path / "straight") != (None, None)
    assert _last_loss(tmp_path / "straight")[0] == 3


def _patentllama_adapter(folder: Path, llm_dir: Path):
    """A PEFT adapter trained on the bare LLaMA causal LM (PatentLLaMA's layout), random non-zero LoRA weights, saved
    in `folder`; returns the `PeftModel`."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    llama = get_peft_model(
        LlamaForCausalLM.from_pretrained(llm_dir), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, parameter in llama.named_parameters():
            if "lora_" in name:
                parameter.normal_()
    llama.save_pretrained(folder)
    return llama


def test_stage1_trains_the_projector_under_a_frozen_patentllama(tmp_path, patentdesc_dir, small, stage1_dir):
    """As the original's stage 1 (train.py:956-962): the decoder carries PatentLLaMA's LoRA while the projector
    trains, so the projector learns something else than without it; the folder keeps the base decoder (for stage 2
    with the same adapter) and no adapter files."""
    small_dir, base_llm_dir = small
    adapter = tmp_path / "patentllama"
    _patentllama_adapter(adapter, base_llm_dir)
    output = tmp_path / "stage1-patentllama"
    training.main(
        ["--config", str(REPO / "recipes" / "stage1_brief.yaml"), "--model_name_or_path", str(base_llm_dir),
         "--vision_tower", str(small_dir), "--dataset_name", str(patentdesc_dir), "--output_dir", str(output),
         "--max_steps", "2", "--lora_init_adapter", str(adapter), *FAST]
    )  # fmt: skip
    assert not list(output.glob("adapter_*"))
    with_adapter, without = _weights(output), _weights(stage1_dir)  # the same seed, data and steps
    assert sorted(with_adapter) == sorted(without)
    for name, tensor in with_adapter.items():
        if name.startswith(PROJECTOR):
            assert not torch.equal(tensor, without[name]), name
        else:
            assert torch.equal(tensor, without[name]), name  # base decoder and encoder, bit for bit


def test_lora_starts_from_a_patentllama_adapter(tmp_path, small):
    """A PEFT adapter trained on the bare LLaMA causal LM (PatentLLaMA's layout) lands on PatentLMM's decoder."""
    from peft import get_peft_model
    from trl import ModelConfig

    from modeling_patentlmm import PatentLMMForConditionalGeneration

    patentlmm_dir, llm_dir = small
    llama = _patentllama_adapter(tmp_path / "patentllama", llm_dir)

    model = get_peft_model(
        PatentLMMForConditionalGeneration.from_pretrained(patentlmm_dir),
        training.lora_config(ModelConfig(lora_r=4, lora_alpha=8)),
    )
    training.load_lora_init(model, str(tmp_path / "patentllama"))
    source = dict(llama.named_parameters())
    loaded = 0
    for name, parameter in model.named_parameters():
        if "lora_" in name and (".q_proj." in name or ".v_proj." in name):
            original = name.replace("model.language_model.", "model.")
            assert torch.equal(parameter, source[original]), name
            loaded += 1
    assert loaded == 2 * 2 * 2  # 2 layers x (q, v) x (A, B)


def test_the_recipe_is_read_as_the_first_argument_or_with_config():
    """`train_sft.py RECIPE.yaml ...` (the README's multi-GPU command) and `--config RECIPE.yaml` parse the same."""
    recipe = str(REPO / "recipes" / "stage2_brief.yaml")
    options = ["--model_name_or_path", "runs/stage1-brief", "--dataset_name", "./patentdesc-355k",
               "--output_dir", "runs/patentlmm-brief"]  # fmt: skip
    positional = training.parse_arguments([recipe, *options])
    flag = training.parse_arguments(["--config", recipe, *options])
    assert positional[1].to_dict() == flag[1].to_dict() and positional[2:] == flag[2:]
    assert positional[3].stage == 2 and positional[1].learning_rate == flag[1].learning_rate == 2e-4
    with pytest.raises(SystemExit, match="give the recipe once"):
        training.parse_arguments([recipe, "--config", recipe, *options])
    with pytest.raises(SystemExit, match="'runs/x' is not an option"):
        training.parse_arguments(["runs/x", *options])
    with pytest.raises(ValueError, match="--max_train_samples must be at least 1"):
        training.parse_arguments([recipe, *options, "--max_train_samples", "0"])


def test_train_takes_the_four_argument_objects_and_leaves_them_unchanged(tmp_path, patentdesc_dir, small):
    """`patentlmm.training.train`, the typed entry point (docs/training.md "From Python"), trains stage 2 from the
    four objects, returns the output folder and changes none of them (the trainer gets its own copy of the
    SFTConfig, with TRL's data preparation off)."""
    import copy
    import dataclasses

    from trl import ModelConfig, ScriptArguments, SFTConfig

    objects = (
        ScriptArguments(dataset_name=str(patentdesc_dir), dataset_config="brief"),
        SFTConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, bf16=False, use_cpu=True,
                  report_to="none", save_strategy="no", dataloader_num_workers=0, gradient_checkpointing=False),
        ModelConfig(model_name_or_path=str(small[0]), dtype="float32", lora_r=4, lora_alpha=8),
        training.PatentLMMArguments(stage=2, merge_lora=False, max_train_samples=2),
    )  # fmt: skip
    before = [copy.deepcopy(dataclasses.asdict(item)) for item in objects]
    assert training.train(*objects) == tmp_path
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / "trainer_state.json").is_file()
    assert [dataclasses.asdict(item) for item in objects] == before
    assert objects[1].max_length is not None and objects[1].remove_unused_columns and objects[3].desc_type is None
