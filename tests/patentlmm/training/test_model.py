"""`training.load_model` refuses, naming the model type, a folder that is not a PatentLMM model, reading its
config.json as JSON (no Auto class, so no custom code and no interactive question)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

from trl import ModelConfig  # noqa: E402

from patentlmm import training  # noqa: E402


def test_a_folder_of_another_model_type_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava", "auto_map": {"AutoConfig": "x.Y"}}))
    with pytest.raises(ValueError, match=r"^--model_name_or_path .* is not a PatentLMM model \(its config.json names "
                                         r"model_type 'llava'\): stage 1 needs --vision_tower"):  # fmt: skip
        training.load_model(ModelConfig(model_name_or_path=str(tmp_path)), training.PatentLMMArguments(stage=2))
    (tmp_path / "config.json").write_text("[")
    with pytest.raises(ValueError, match=r"config.json is not a JSON object"):
        training.load_model(ModelConfig(model_name_or_path=str(tmp_path)), training.PatentLMMArguments(stage=2))
