"""Model folders that would load into a model writing nothing useful are refused in one line naming the problem:
weights holding NaN or inf (which tensors), a config of another `model_type`."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from patentlmm.cli import main

FIGURE = "US20250204297A1__12"


def _describe(folder, figures, tmp_path) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(["describe", "--model", str(folder), "--output", str(tmp_path / "out.jsonl"),
              str(figures[FIGURE]["path"])])  # fmt: skip
    assert not (tmp_path / "out.jsonl").exists()
    return str(stopped.value.code)


def test_weights_that_are_nan_or_inf_are_named(tiny_dir, figures, tmp_path):
    folder = shutil.copytree(tiny_dir, tmp_path / "nan")
    weights = load_file(str(folder / "model.safetensors"))
    projector = sorted(name for name in weights if "multi_modal_projector" in name and name.endswith("weight"))[0]
    weights[projector][0, :2] = float("nan")
    weights[projector][1, 0] = float("inf")
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    message = _describe(folder, figures, tmp_path)
    assert message.startswith(f"patentlmm describe: {folder}: 1 weight tensor(s) hold NaN or inf values in ")
    assert f"{projector} (3 of {weights[projector].numel()} values)." in message and "\n" not in message


def test_a_folder_of_another_model_type_gets_one_line(tiny_dir, figures, tmp_path):
    folder = shutil.copytree(tiny_dir, tmp_path / "llava")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llava"}))
    assert _describe(folder, figures, tmp_path) == (
        f"patentlmm describe: {folder} holds a model of type 'llava' (config.json), not a PatentLMM model "
        "('patentlmm')."
    )
    (folder / "config.json").write_text("[1, 2")
    assert _describe(folder, figures, tmp_path).startswith(
        f"patentlmm describe: {folder}/config.json is not a JSON object ("
    )


def test_float16_overflow_is_named_too(tiny_dir, tmp_path):
    """Finite float32 weights beyond float16's range become inf when loaded in float16."""
    from patentlmm.inference.inputs import InputError
    from patentlmm.inference.loading import load_model_and_processor

    folder = shutil.copytree(tiny_dir, tmp_path / "large")
    weights = load_file(str(folder / "model.safetensors"))
    name = sorted(name for name in weights if "multi_modal_projector" in name and name.endswith("weight"))[0]
    weights[name] = weights[name].clone()
    weights[name].view(-1)[0] = 1e6
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    assert torch.isfinite(load_file(str(folder / "model.safetensors"))[name]).all()
    with pytest.raises(InputError, match=rf"hold NaN or inf values in torch.float16 .*{name} \(1 of "):
        load_model_and_processor(str(folder), device="cpu", dtype="float16")
