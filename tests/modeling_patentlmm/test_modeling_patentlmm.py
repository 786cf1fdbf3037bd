"""PatentLMMConfig and PatentLMMForConditionalGeneration: validation, shapes, loss, generation, save/load."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

from helpers import SCRIPTS, run_outside_repo
from modeling_patentlmm import PatentLMMConfig, PatentLMMForConditionalGeneration
from processing import build_prompt
from processing.constants import IGNORE_INDEX

LOADER = SCRIPTS / "load_and_generate.py"
WORDS = {
    "US20250204297A1__8": (
        ["Figure", "8", "16", "11"],
        [[700, 900, 800, 930], [810, 900, 830, 930], [100, 200, 130, 220], [400, 500, 430, 520]],
    ),
    "US20250204297A1__12": ([], []),
}


def _inputs(processor, figures, ids=("US20250204297A1__8", "US20250204297A1__12"), suffix=None, side="left"):
    """A batch built with precomputed OCR (fast): figure 8 has 4 words, figure 12 none."""
    return processor(
        images=[figures[i]["path"] for i in ids],
        text=[build_prompt("brief")] * len(ids),
        suffix=suffix,
        ocr_words=[WORDS[i][0] for i in ids],
        ocr_boxes=[WORDS[i][1] for i in ids],
        padding_side=side,
    )


# ----------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"projector_type": "mlp3x"}, "projector_type must be one of ('mlp2x_gelu', 'linear'), got 'mlp3x'"),
        ({"vision_feature_select_strategy": "all"}, "vision_feature_select_strategy must be one of"),
        ({"vision_feature_layer": 30}, "vision_feature_layer=30 is out of range for an encoder with 24 layers"),
        ({"max_ocr_tokens": 600}, "max_ocr_tokens=600 must be in [2, 512]"),
        ({"image_token_id": 32001}, "image_token_id=32001 is outside the decoder vocabulary (vocab_size=32001)"),
        ({"text_config": {"hidden_size": 8}}, "text_config needs a 'model_type'"),
        ({"vision_config": {"input_size": 100, "patch_size": 16}}, "input_size=100 is not a multiple of"),
    ],
)
def test_config_rejects_invalid_values_naming_them(kwargs, message):
    with pytest.raises(ValueError) as error:
        PatentLMMConfig(**kwargs)
    assert message in str(error.value)


def test_config_defaults_are_patentmme_and_llama_7b():
    config = PatentLMMConfig()
    assert (config.vision_config.hidden_size, config.vision_config.num_hidden_layers) == (1024, 24)
    assert (config.vision_config.input_size, config.vision_config.patch_size) == (384, 16)
    assert config.text_config.model_type == "llama" and config.text_config.hidden_size == 4096
    assert (config.projector_type, config.vision_feature_layer, config.max_ocr_tokens) == ("mlp2x_gelu", -1, 512)
    assert config.num_image_patches == 577


def test_config_round_trips_through_json(tmp_path):
    config = PatentLMMConfig(projector_type="linear", vision_feature_select_strategy="cls_patch", max_ocr_tokens=256)
    config.save_pretrained(tmp_path)
    loaded = PatentLMMConfig.from_pretrained(tmp_path)
    assert loaded.to_dict()["text_config"] == config.to_dict()["text_config"]
    assert loaded.vision_config.to_dict() == config.vision_config.to_dict()
    assert (loaded.projector_type, loaded.vision_feature_select_strategy, loaded.max_ocr_tokens) == (
        "linear",
        "cls_patch",
        256,
    )


# ----------------------------------------------------------------------------------------------- forward


def test_forward_shapes_and_loss_match_a_manual_cross_entropy(tiny, figures):
    model, processor = tiny
    batch = _inputs(processor, figures, suffix=["FIG. 8 is a view.", "FIG. 12 shows it."], side="right")
    with torch.no_grad():
        out = model(**batch)
    batch_size, length = batch["input_ids"].shape
    assert out.logits.shape == (batch_size, length, model.config.text_config.vocab_size)
    # Features: OCR tokens of each figure - 1 + 577 (figure 8: <s> + 4 words' tokens + </s>; figure 12: <s></s>).
    ocr_lengths = batch["ocr_attention_mask"].sum(1).tolist()
    assert out.image_hidden_states.shape == (
        sum(n - 1 + 577 for n in ocr_lengths),
        model.config.text_config.hidden_size,
    )
    shifted_logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])
    shifted_labels = batch["labels"][:, 1:].reshape(-1)
    expected = torch.nn.functional.cross_entropy(shifted_logits, shifted_labels, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(out.loss, expected)


def test_image_features_ignore_ocr_padding_so_batching_changes_nothing(tiny, figures):
    model, processor = tiny
    both = _inputs(processor, figures)
    alone = _inputs(processor, figures, ids=("US20250204297A1__12",))
    assert both["ocr_attention_mask"][1].sum() == 2 and both["ocr_input_ids"].shape[1] > 2  # figure 12 is padded
    with torch.no_grad():
        features_both = model.model.get_image_features(
            both["pixel_values"], both["ocr_input_ids"], both["ocr_bbox"], both["ocr_attention_mask"]
        )
        features_alone = model.model.get_image_features(
            alone["pixel_values"], alone["ocr_input_ids"], alone["ocr_bbox"], alone["ocr_attention_mask"]
        )
        logits_both = model(**both).logits[1, -1]
        logits_alone = model(**alone).logits[0, -1]
    assert features_both[1].shape == features_alone[0].shape == (2 - 1 + 577, model.config.text_config.hidden_size)
    torch.testing.assert_close(features_both[1], features_alone[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits_both, logits_alone, atol=1e-4, rtol=1e-4)


def test_placeholder_and_feature_mismatch_raises_with_both_counts(tiny, figures):
    model, processor = tiny
    batch = _inputs(processor, figures, ids=("US20250204297A1__8",))
    image_token_id = model.config.image_token_id
    input_ids = batch["input_ids"].clone()
    position = (input_ids[0] == image_token_id).nonzero()[0, 0]
    input_ids[0, position] = 100  # one placeholder fewer
    expected_features = int((batch["input_ids"] == image_token_id).sum())
    with pytest.raises(ValueError) as error:
        model(**{**batch, "input_ids": input_ids})
    assert f"{expected_features - 1} <image> placeholder tokens" in str(error.value)
    assert f"{expected_features} image features" in str(error.value)


def test_pixel_values_without_ocr_is_a_clear_error(tiny, figures):
    model, processor = tiny
    batch = _inputs(processor, figures, ids=("US20250204297A1__8",))
    with pytest.raises(ValueError, match="without ocr_input_ids and ocr_bbox"):
        model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"])


def test_encoder_is_frozen_by_default_and_can_be_trained(tiny):
    model, _ = tiny
    assert not any(p.requires_grad for p in model.model.vision_tower.parameters())
    assert all(p.requires_grad for p in model.model.multi_modal_projector.parameters())
    assert all(p.requires_grad for p in model.model.language_model.parameters())
    unfrozen = PatentLMMForConditionalGeneration(
        PatentLMMConfig(**{**model.config.to_dict(), "freeze_vision_tower": False})
    )
    assert all(p.requires_grad for p in unfrozen.model.vision_tower.parameters())


def test_linear_projector_and_cls_patch_strategy(tiny, figures):
    model, processor = tiny
    config = copy.deepcopy(model.config)
    config.projector_type = "linear"
    config.vision_feature_select_strategy = "cls_patch"
    other = PatentLMMForConditionalGeneration(config).eval()
    assert other.model.multi_modal_projector.linear_2 is None
    processor = copy.copy(processor)
    processor.vision_feature_select_strategy = "cls_patch"
    batch = _inputs(processor, figures, ids=("US20250204297A1__12",))
    assert int((batch["input_ids"] == config.image_token_id).sum()) == 2 + 577
    with torch.no_grad():
        assert other(**batch).logits.shape[1] == batch["input_ids"].shape[1]


def test_training_step_with_gradient_checkpointing_updates_only_trainable_parts(tiny, figures):
    model, processor = tiny
    model = copy.deepcopy(model).train()
    model.gradient_checkpointing_enable()
    batch = _inputs(processor, figures, suffix=["FIG. 8 is a view.", "FIG. 12."], side="right")
    model(**batch).loss.backward()
    assert model.model.multi_modal_projector.linear_1.weight.grad.abs().sum() > 0
    assert model.model.language_model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.model.vision_tower.parameters())


def test_a_random_encoder_gets_gradients_of_the_size_of_the_rest(tiny, figures, tmp_path):
    """The demo trains a random encoder. LayoutLMv3 initialises its visual CLS token and position embeddings to
    zeros, so the visual CLS embedding was the zero vector, which the encoder's two LayerNorms normalise at zero
    variance: its gradient came out ~1e3-1e4 times the largest other one (the demo's stage 1: grad_norm 2e5-1.4e6),
    and clipping to max_grad_norm scaled every other gradient down to where AdamW's eps swallows most of the step.
    `build_vision_tower` (PatentLMM built from a config, and `init_encoder`) draws both from a truncated normal."""
    from transformers import LayoutLMv3Model

    from patentlmm.assembly.tiny import init_encoder

    model, processor = tiny
    model = copy.deepcopy(model).train()
    model.model.vision_tower.requires_grad_(True)
    batch = _inputs(processor, figures, suffix=["FIG. 8 is a view.", "FIG. 12."], side="right")
    torch.manual_seed(0)  # the encoder's dropout
    model(**batch).loss.backward()
    norms = {name: p.grad.norm().item() for name, p in model.named_parameters() if p.grad is not None}
    visual = {name: norms.pop(f"model.vision_tower.{name}") for name in ("cls_token", "pos_embed")}
    largest_other = max(norms.values())
    assert all(0 < norm < 10 * largest_other for norm in visual.values()), (visual, largest_other)

    saved = LayoutLMv3Model.from_pretrained(init_encoder(tmp_path / "encoder"))  # the demo's random encoder
    assert saved.cls_token.abs().max() > 0 and saved.pos_embed.std() > 0.5 * saved.config.initializer_range


def test_bfloat16_forward(tiny, figures):
    model, processor = tiny
    model = copy.deepcopy(model).to(torch.bfloat16)
    batch = _inputs(processor, figures, ids=("US20250204297A1__8",))
    batch["pixel_values"] = batch["pixel_values"].to(torch.bfloat16)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


# ----------------------------------------------------------------------------------------------- generation


def test_generate_encodes_the_figure_once_and_matches_a_manual_greedy_loop(tiny, figures):
    model, processor = tiny
    batch = _inputs(processor, figures)
    calls = []
    hook = model.model.vision_tower.register_forward_hook(lambda *_: calls.append(1))
    try:
        cached = model.generate(**batch, max_new_tokens=6, do_sample=False, min_new_tokens=6)
        encoder_calls_with_cache = len(calls)
        uncached = model.generate(**batch, max_new_tokens=6, do_sample=False, min_new_tokens=6, use_cache=False)
    finally:
        hook.remove()
    assert encoder_calls_with_cache == 1
    prompt_length = batch["input_ids"].shape[1]
    assert cached.shape == (2, prompt_length + 6)
    assert torch.equal(cached, uncached)

    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        for _ in range(6):
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(
                **{**batch, "input_ids": input_ids, "attention_mask": attention_mask}, position_ids=position_ids
            ).logits
            logits[:, -1, model.generation_config.eos_token_id] = -float("inf")  # as min_new_tokens does
            next_token = logits[:, -1].argmax(-1, keepdim=True)
            input_ids = torch.cat([input_ids, next_token], dim=1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(next_token)], dim=1)
    assert torch.equal(cached, input_ids)


# ----------------------------------------------------------------------------------------------- save / load


def _expected_outputs(model, processor, figure):
    words, boxes = WORDS["US20250204297A1__8"]
    prompt = build_prompt("brief")
    batch = processor(images=[figure], text=[prompt], ocr_words=[words], ocr_boxes=[boxes])
    with torch.no_grad():
        logits = model(**batch).logits[0, -1]
    generated = model.generate(**batch, max_new_tokens=6, do_sample=False)
    return batch, logits, generated[0, batch["input_ids"].shape[1] :].tolist()


def test_saved_folder_has_remote_code_safetensors_and_full_auto_map(tiny_dir):
    files = {path.name for path in tiny_dir.iterdir()}
    assert {"model.safetensors", "config.json", "modeling_patentlmm.py", "configuration_patentlmm.py"} <= files
    assert {
        "processing_patentlmm.py",
        "ocr_engines.py",
        "ocr_tokens.py",
        "prepared_figures.py",
        "prompts.py",
        "images.py",
        "constants.py",
    } <= files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in files)
    auto_map = json.loads((tiny_dir / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_patentlmm.PatentLMMConfig",
        "AutoModel": "modeling_patentlmm.PatentLMMModel",
        "AutoModelForVision2Seq": "modeling_patentlmm.PatentLMMForConditionalGeneration",
        "AutoModelForImageTextToText": "modeling_patentlmm.PatentLMMForConditionalGeneration",
        "AutoProcessor": "processing_patentlmm.PatentLMMProcessor",
    }


def test_saving_pickles_is_refused(tiny, tmp_path):
    model, _ = tiny
    with pytest.raises(ValueError, match="safetensors only"):
        model.save_pretrained(tmp_path, safe_serialization=False)


def _check_remote_load(result: dict, tiny, figures, major: str) -> None:
    model, processor = tiny
    batch, logits, generated = _expected_outputs(model, processor, figures["US20250204297A1__8"]["path"])
    assert result["transformers"].startswith(major)
    assert result["model_module"].startswith("transformers_modules.")
    assert result["processor_module"].startswith("transformers_modules.")
    assert result["imported_repo_packages"] == []
    assert result["input_ids"] == batch["input_ids"][0].tolist()
    torch.testing.assert_close(torch.tensor(result["last_logits"]), logits, atol=1e-5, rtol=1e-5)
    assert result["generated"] == generated
    assert result["generated_static_cache"] == generated
    image_tokens = batch["input_ids"][0].eq(processor.image_token_id).sum().item()
    assert result["vllm_protocol"] == {
        "pooler_output_equal": True,
        "tuple_equal": True,
        "replacement_placeholders": image_tokens,
        "num_image_tokens": [processor.num_image_features(processor.max_ocr_tokens)],
        "given_tokenizer_used": True,
        "chat_template_is_one_string": True,
    }


def _load_in_fresh_process(python: str, tiny_dir: Path, figures) -> dict:
    words, boxes = WORDS["US20250204297A1__8"]
    image = str(figures["US20250204297A1__8"]["path"])
    out = run_outside_repo(python, LOADER, str(tiny_dir), image, json.dumps(words), json.dumps(boxes))
    return json.loads(out.strip().splitlines()[-1])


def test_remote_code_round_trip_in_a_fresh_process_transformers_5(tiny, tiny_dir, figures):
    result = _load_in_fresh_process(sys.executable, tiny_dir, figures)
    assert result["auto_class"] == "AutoModelForImageTextToText"
    _check_remote_load(result, tiny, figures, "5.")


def test_remote_code_loads_on_transformers_4_through_auto_model_for_vision2seq(
    tiny, tiny_dir, figures, transformers4_python
):
    result = _load_in_fresh_process(transformers4_python, tiny_dir, figures)
    assert result["auto_class"] == "AutoModelForVision2Seq"
    _check_remote_load(result, tiny, figures, "4.57")


def test_local_auto_classes_sdpa_and_device_map(tiny, tiny_dir, figures):
    from transformers import AutoModelForImageTextToText

    import patentlmm  # noqa: F401  (registers the Auto classes)

    model, processor = tiny
    loaded = AutoModelForImageTextToText.from_pretrained(tiny_dir, attn_implementation="sdpa", device_map="auto")
    assert isinstance(loaded, PatentLMMForConditionalGeneration)
    assert loaded.config.text_config._attn_implementation == "sdpa"
    batch, logits, _ = _expected_outputs(model, processor, figures["US20250204297A1__8"]["path"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits[0, -1], logits, atol=1e-5, rtol=1e-5)


def test_7b_shaped_model_has_the_paper_size_and_a_device_map_that_keeps_blocks_whole():
    from accelerate import infer_auto_device_map, init_empty_weights

    with init_empty_weights():
        model = PatentLMMForConditionalGeneration(PatentLMMConfig())  # PatentMME-large + LLaMA-2-7B, no memory
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in model.model.named_children()}
    assert 6.7e9 < counts["language_model"] + model.lm_head.weight.numel() < 6.8e9  # LLaMA-2-7B (+ <image> row)
    assert 3.5e8 < counts["vision_tower"] < 3.8e8  # LayoutLMv3-large
    assert counts["multi_modal_projector"] == 1024 * 4096 + 4096 + 4096 * 4096 + 4096
    no_split = sorted(model._no_split_modules)  # transformers gathers the children's lists in post_init
    assert {"LayoutLMv3Layer", "LlamaDecoderLayer"} <= set(no_split)
    device_map = infer_auto_device_map(
        model, max_memory={0: "6GiB", 1: "6GiB", "cpu": "64GiB"}, no_split_module_classes=no_split, dtype=torch.bfloat16
    )
    assert {0, 1} <= set(device_map.values())  # bf16 7B (~14 GB) spreads over both 6 GiB GPUs and the CPU
    for name in device_map:  # a block is placed whole or not named at all: never one of its sub-modules
        assert not any(f".layers.{i}." in f"{name}." and not name.endswith(f".layers.{i}") for i in range(32))
        assert ".layer." not in f"{name}." or name.split(".layer.")[1].isdigit()
