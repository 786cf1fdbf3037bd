"""`patentlmm convert-original`: tiny checkpoints in the original key layouts -> HF folder -> the same logits.

The reference forward below composes the raw tensors the way the original LLaVA code did (LayoutLMv3Model ->
hidden_states[-2][:, 1:] -> Linear/GELU/Linear -> features spliced in at the image position -> LLaMA with the LoRA
merged by hand); it shares no code with the converter or with PatentLMM's modeling file.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn
from transformers import (
    AutoModelForImageTextToText,
    LayoutLMv3Config,
    LayoutLMv3Model,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaTokenizerFast,
)

from patentlmm.convert import convert_original
from patentlmm.tiny import _package_file, build_ocr_tokenizer
from processing import PatentLMMProcessor

PROMPT = "<image>\nUSER: Write a brief description for this patent image.\nASSISTANT:"  # the original inference
OCR_WORDS = ["FIG.", "3", "hinge", "12"]
OCR_BOXES = [[40, 30, 120, 60], [130, 30, 160, 60], [300, 400, 420, 440], [700, 800, 740, 830]]
LORA_RANK = 4
LORA_MODULES = [f"self_attn.{name}_proj" for name in "qkvo"] + [f"mlp.{name}_proj" for name in ("gate", "up", "down")]
VISION = {
    "hidden_size": 48,
    "coordinate_size": 8,
    "shape_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 96,
    "input_size": 384,
    "patch_size": 16,
    "max_position_embeddings": 514,
    "pad_token_id": 1,
}
TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


@dataclass
class Original:
    """Tiny original checkpoints on disk and the raw tensors they were written from."""

    patentmme: Path
    base_llm: Path
    ocr_tokenizer: Path
    vision_config: Path
    encoder: dict[str, torch.Tensor]  # LayoutLMv3Model keys
    projector: dict[str, torch.Tensor]  # nn.Sequential(Linear, GELU, Linear) keys
    base_decoder: dict[str, torch.Tensor]  # LlamaForCausalLM keys, the base LLM folder's weights
    decoder: dict[str, torch.Tensor]  # LlamaForCausalLM keys, the stage-2 decoder before LoRA
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]]  # LlamaForCausalLM module name -> (A, B)


def _random_state(module_class, config, seed: int) -> dict[str, torch.Tensor]:
    """The persistent tensors of a freshly initialised `module_class(config)` (random, norms at one)."""
    torch.manual_seed(seed)
    return {name: tensor.detach().clone() for name, tensor in module_class(config).state_dict().items()}


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Original:
    root = tmp_path_factory.mktemp("original")
    ocr_tokenizer = build_ocr_tokenizer()
    ocr_tokenizer.save_pretrained(root / "layoutlmv3-tokenizer")
    vision = LayoutLMv3Config(**VISION, vocab_size=len(ocr_tokenizer))
    (root / "vision_config.json").write_text(vision.to_json_string(), encoding="utf-8")

    # PatentMME: a Lightning checkpoint with the encoder under "model." plus pretraining heads.
    encoder = _random_state(LayoutLMv3Model, vision, seed=1)
    heads = {"mlm_head.dense.weight": torch.randn(48, 48), "mim_head.weight": torch.randn(8192, 48)}
    heads["model.patch_classifier.weight"] = torch.randn(5, 48)
    lightning = {"state_dict": {**{f"model.{k}": v for k, v in encoder.items()}, **heads}, "epoch": 3}
    torch.save(lightning, root / "last.ckpt")

    # Base LLM folder: a LLaMA with a 32,000-token vocabulary and its tokenizer, which has no <image>.
    with_tokenizer_model = root / "sentencepiece"
    with_tokenizer_model.mkdir()
    shutil.copy(_package_file("mistral_common", "data/tokenizer.model.v1"), with_tokenizer_model / "tokenizer.model")
    tokenizer = LlamaTokenizerFast.from_pretrained(with_tokenizer_model, add_bos_token=True, add_eos_token=False)
    assert "<image>" not in tokenizer.get_vocab()
    torch.manual_seed(2)
    base = LlamaForCausalLM(LlamaConfig(**TEXT))
    base.save_pretrained(root / "vicuna")
    tokenizer.save_pretrained(root / "vicuna")

    torch.manual_seed(3)
    projector = nn.Sequential(nn.Linear(48, 64), nn.GELU(), nn.Linear(64, 64))
    lora = {}
    for layer in range(TEXT["num_hidden_layers"]):
        for module in LORA_MODULES:
            name = f"model.layers.{layer}.{module}"
            out_features, in_features = base.get_submodule(name).weight.shape
            lora[name] = (torch.randn(LORA_RANK, in_features) * 0.02, torch.randn(out_features, LORA_RANK) * 0.02)
    return Original(
        patentmme=root / "last.ckpt",
        base_llm=root / "vicuna",
        ocr_tokenizer=root / "layoutlmv3-tokenizer",
        vision_config=root / "vision_config.json",
        encoder=encoder,
        projector={k: v.detach().clone() for k, v in projector.state_dict().items()},
        base_decoder={k: v.detach().clone() for k, v in base.state_dict().items()},
        decoder=_random_state(LlamaForCausalLM, LlamaConfig(**TEXT), seed=4),
        lora=lora,
    )


def _deepspeed_module(original: Original, peft_naming: str = "new") -> dict[str, torch.Tensor]:
    """`["module"]` of a DeepSpeed file: PEFT(LLaVA-LLaMA) with LoRA on every decoder linear layer.

    "new" PEFT names the wrapped layer's weight `q_proj.base_layer.weight`, "old" PEFT `q_proj.weight`; the old
    variant also carries the per-layer rotary buffers that transformers of that time saved.
    """
    module = {}
    for name, tensor in original.decoder.items():
        layer_name = name.removesuffix(".weight")
        if layer_name in original.lora and peft_naming == "new":
            name = f"{layer_name}.base_layer.weight"
        module[f"base_model.model.{name}"] = tensor
    if peft_naming == "old":
        for layer in range(TEXT["num_hidden_layers"]):
            module[f"base_model.model.model.layers.{layer}.self_attn.rotary_emb.inv_freq"] = torch.rand(8)
    for layer_name, (a, b) in original.lora.items():
        module[f"base_model.model.{layer_name}.lora_A.default.weight"] = a
        module[f"base_model.model.{layer_name}.lora_B.default.weight"] = b
    for name, tensor in original.projector.items():
        module[f"base_model.model.model.mm_projector.{name}"] = tensor
    for name, tensor in original.encoder.items():
        module[f"base_model.model.model.vision_tower.vision_tower.{name}"] = tensor
    return module


def _save_deepspeed(module: dict[str, torch.Tensor], path: Path) -> Path:
    shapes = OrderedDict((name, tensor.shape) for name, tensor in module.items())
    torch.save({"module": module, "param_shapes": [shapes], "ds_version": "0.9.5", "global_steps": 10}, path)
    return path


def _merged(decoder: dict[str, torch.Tensor], lora: dict, alpha: float) -> dict[str, torch.Tensor]:
    merged = dict(decoder)
    for name, (a, b) in lora.items():
        merged[f"{name}.weight"] = decoder[f"{name}.weight"] + (alpha / a.shape[0]) * (b @ a)
    return merged


def _inputs(folder: Path, figure: Path):
    processor = PatentLMMProcessor.from_pretrained(folder)
    return processor(images=figure, text=PROMPT, ocr_words=[OCR_WORDS], ocr_boxes=[OCR_BOXES])


@torch.no_grad()
def _reference_logits(original: Original, decoder: dict[str, torch.Tensor], inputs, image_token_id: int):
    """The original LLaVA forward at batch size 1, from raw tensors."""
    encoder = LayoutLMv3Model(LayoutLMv3Config.from_json_file(original.vision_config)).eval()
    encoder.load_state_dict(original.encoder)
    projector = nn.Sequential(nn.Linear(48, 64), nn.GELU(), nn.Linear(64, 64))
    projector.load_state_dict(original.projector)
    llm = LlamaForCausalLM(LlamaConfig(**TEXT)).eval()
    llm.load_state_dict(decoder)

    hidden = encoder(
        input_ids=inputs["ocr_input_ids"],
        bbox=inputs["ocr_bbox"],
        attention_mask=inputs["ocr_attention_mask"],
        pixel_values=inputs["pixel_values"],
        output_hidden_states=True,
    ).hidden_states[-2][0, 1:]
    features = projector(hidden)
    ids = inputs["input_ids"][0]
    positions = (ids == image_token_id).nonzero().flatten()
    start, end = int(positions[0]), int(positions[-1]) + 1
    assert end - start == len(positions) == features.shape[0]
    embed = llm.get_input_embeddings()
    embeddings = torch.cat([embed(ids[:start]), features, embed(ids[end:])])
    return llm(inputs_embeds=embeddings[None]).logits


@torch.no_grad()
def _logits(model, inputs) -> torch.Tensor:
    return model.eval()(**inputs).logits


def _assert_close(converted: torch.Tensor, reference: torch.Tensor) -> None:
    assert converted.shape[-1] == reference.shape[-1] + 1  # the <image> row
    assert (converted[..., : reference.shape[-1]] - reference).abs().max().item() <= 1e-5


@pytest.mark.parametrize(("peft_naming", "with_patentmme"), [("old", False), ("new", True)])
def test_deepspeed_checkpoint_merged(original, figures, tmp_path, caplog, peft_naming, with_patentmme):
    checkpoint = _save_deepspeed(_deepspeed_module(original, peft_naming), tmp_path / "mp_rank_00_model_states.pt")
    with caplog.at_level(logging.INFO, logger="patentlmm.convert"):
        out = convert_original(
            tmp_path / "out",
            base_llm=original.base_llm,
            ocr_tokenizer=original.ocr_tokenizer,
            patentmme=original.patentmme if with_patentmme else None,
            checkpoint=checkpoint,
            vision_config=original.vision_config,
        )
    if with_patentmme:  # the pretraining heads are reported, not loaded
        assert "mlm_head.dense.weight" in caplog.text and "model.patch_classifier.weight" in caplog.text

    assert sorted(p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".safetensors")) == [
        "model.safetensors"
    ]
    model = AutoModelForImageTextToText.from_pretrained(out, trust_remote_code=True)
    assert model.config.image_token_id == 32000 and model.config.text_config.vocab_size == 32001
    assert model.generation_config.suppress_tokens == [32000]
    inputs = _inputs(out, next(iter(figures.values()))["path"])
    reference = _reference_logits(original, _merged(original.decoder, original.lora, 256.0), inputs, 32000)
    _assert_close(_logits(model, inputs), reference)


def test_deepspeed_checkpoint_keep_adapter(original, figures, tmp_path):
    import peft

    checkpoint = _save_deepspeed(_deepspeed_module(original), tmp_path / "mp_rank_00_model_states.pt")
    out = convert_original(
        tmp_path / "out",
        base_llm=original.base_llm,
        ocr_tokenizer=original.ocr_tokenizer,
        patentmme=original.patentmme,
        checkpoint=checkpoint,
        keep_adapter=True,
        lora_alpha=64,
        vision_config=original.vision_config,
    )
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], len(adapter["target_modules"])) == (LORA_RANK, 64, len(original.lora))
    with safe_open(out / "adapter_model.safetensors", "pt") as handle:
        assert "base_model.model.model.language_model.layers.1.mlp.down_proj.lora_B.weight" in handle.keys()
    inputs = _inputs(out, next(iter(figures.values()))["path"])
    reference = _reference_logits(original, _merged(original.decoder, original.lora, 64.0), inputs, 32000)

    # The base weights alone (a copy of the folder without the adapter) are the unmerged decoder ...
    base_folder = shutil.copytree(out, tmp_path / "base", ignore=shutil.ignore_patterns("adapter_*"))
    base = AutoModelForImageTextToText.from_pretrained(base_folder, trust_remote_code=True)
    base_logits = _logits(base, inputs)
    _assert_close(base_logits, _reference_logits(original, original.decoder, inputs, 32000))
    assert (base_logits[..., :32000] - reference).abs().max() > 1e-2  # the LoRA matters
    # ... PEFT puts the LoRA back on them ...
    _assert_close(_logits(peft.PeftModel.from_pretrained(base, out), inputs), reference)
    # ... and transformers attaches it by itself when it loads the folder (PEFT installed).
    _assert_close(_logits(AutoModelForImageTextToText.from_pretrained(out, trust_remote_code=True), inputs), reference)


def test_stage1_projector_with_base_llm(original, figures, tmp_path):
    projector = tmp_path / "mm_projector.bin"
    torch.save({f"model.mm_projector.{k}": v for k, v in original.projector.items()}, projector)
    out = convert_original(
        tmp_path / "out",
        base_llm=original.base_llm,
        ocr_tokenizer=original.ocr_tokenizer,
        patentmme=original.patentmme,
        projector=projector,
        vision_config=original.vision_config,
    )
    model = AutoModelForImageTextToText.from_pretrained(out, trust_remote_code=True)
    inputs = _inputs(out, next(iter(figures.values()))["path"])
    _assert_close(_logits(model, inputs), _reference_logits(original, original.base_decoder, inputs, 32000))


def _convert_deepspeed(original: Original, module: dict[str, torch.Tensor], tmp_path: Path, **kwargs) -> Path:
    return convert_original(
        tmp_path / "out",
        base_llm=original.base_llm,
        ocr_tokenizer=original.ocr_tokenizer,
        checkpoint=_save_deepspeed(module, tmp_path / "mp_rank_00_model_states.pt"),
        **{"vision_config": original.vision_config, **kwargs},
    )


def test_unknown_keys_are_listed(original, tmp_path):
    module = _deepspeed_module(original)
    module["base_model.model.model.mm_projector.4.weight"] = torch.zeros(64, 64)  # maps to no parameter
    module["base_model.model.score_head.weight"] = torch.zeros(1, 64)  # maps nowhere at all
    with pytest.raises(ValueError) as error:
        _convert_deepspeed(original, module, tmp_path)
    message = str(error.value)
    assert "2 tensor(s) with no PatentLMM parameter" in message
    assert "base_model.model.model.mm_projector.4.weight" in message and "base_model.model.score_head.weight" in message


def test_missing_keys_are_listed(original, tmp_path):
    module = _deepspeed_module(original)
    del module["base_model.model.model.norm.weight"]
    del module["base_model.model.model.vision_tower.vision_tower.encoder.layer.1.output.dense.bias"]
    with pytest.raises(ValueError) as error:
        _convert_deepspeed(original, module, tmp_path)
    message = str(error.value)
    assert "2 PatentLMM parameter(s) that no checkpoint provides" in message
    assert "model.language_model.norm.weight" in message
    assert "model.vision_tower.encoder.layer.1.output.dense.bias" in message and "--patentmme" in message


def test_encoder_shapes_other_than_the_config_are_reported(original, tmp_path):
    with pytest.raises(ValueError, match=r"(?s)shape mismatch.*--vision-config"):  # PatentMME-large is the default
        _convert_deepspeed(original, _deepspeed_module(original), tmp_path, vision_config=None)


TRAP_SPRUNG = []


def _spring() -> None:
    TRAP_SPRUNG.append(True)


class _Trap:
    """Unpickling it with weights_only=False would call `_spring`."""

    def __reduce__(self):
        return _spring, ()


def test_pickled_objects_are_refused(original, tmp_path):
    checkpoint = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": _deepspeed_module(original), "client_state": _Trap()}, checkpoint)
    with pytest.raises(ValueError, match=r"Refusing to load .*weights_only=True"):
        convert_original(
            tmp_path / "out",
            base_llm=original.base_llm,
            ocr_tokenizer=original.ocr_tokenizer,
            checkpoint=checkpoint,
            vision_config=original.vision_config,
        )
    assert not TRAP_SPRUNG


def test_cli(original, tmp_path, capsys):
    from patentlmm.cli import main

    checkpoint = _save_deepspeed(_deepspeed_module(original), tmp_path / "mp_rank_00_model_states.pt")
    common = ["convert-original", "--patentmme", str(original.patentmme), "--base-llm", str(original.base_llm)]
    common += ["--ocr-tokenizer", str(original.ocr_tokenizer), "--vision-config", str(original.vision_config)]
    out = tmp_path / "out"
    argv = [*common, "--checkpoint", str(checkpoint), "--output", str(out), "--lora-alpha", "16", "--dtype", "bfloat16"]
    assert main(argv) == 0
    assert f"PatentLMM written to {out}" in capsys.readouterr().out
    with safe_open(out / "model.safetensors", "pt") as handle:
        assert handle.get_tensor("model.language_model.embed_tokens.weight").dtype == torch.bfloat16

    with pytest.raises(SystemExit, match="no file at .*absent.bin"):
        main([*common, "--projector", str(tmp_path / "absent.bin"), "--output", str(tmp_path / "other")])
    with pytest.raises(SystemExit):  # exactly one of --checkpoint / --projector
        main([*common, "--output", str(tmp_path / "other")])
