"""`patentlmm convert-original`: tiny checkpoints in the original's formats -> HF folder -> the original's outputs.

The checkpoints are written in the layouts the original code saves (DeepSpeed 0.9.5's `mp_rank_00_model_states.pt`
with its other entries and a bf16 `module`, Lightning's `last.ckpt`, both `mm_projector.bin` layouts). The reference
below computes what the original inference script (`finetuned_inference.py`) computes at batch size 1, from the raw
tensors and with code of its own (it shares nothing with the converter, the processor or PatentLMM's modeling file):

- prompt ids by the original's `tokenizer_image_token` rule (`finetuned_inference.py:28-49`), a -200 sentinel for
  the figure; OCR tensors straight from the official `ocr.json` entry (`dataset.py:90-92`);
- pixel values from LayoutLMv3's image processor at 384 px, mean = std = 0.5, the figure *not* padded to a square
  (`finetuned_inference.py:127`, `patentmme_enocder.py:8,28`);
- the encoder output the original indexes, `hidden_states[-2]` of the vendored model, whose `hidden_states` is the
  encoder's whole output object (`modelling_layoutv3.py:1011-1028`; `patentmme_enocder.py:48-50`): index -2 of that
  object's tuple (last_hidden_state, hidden_states) is the last layer; first position dropped;
- `mm_projector` Linear/GELU/Linear, the features spliced in at the sentinel (`llava_arch.py:165-192`), LLaMA with the
  LoRA merged by hand; greedy decoding with LLaMA's KV cache until EOS or 512 tokens *including* the prompt
  (`generate(max_length=512)`, `finetuned_inference.py:135`).
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
from PIL import Image
from safetensors import safe_open
from torch import nn
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    LayoutLMv3Config,
    LayoutLMv3ImageProcessor,
    LayoutLMv3Model,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaTokenizerFast,
)

from helpers.patentmme import TINY_LAYOUTLMV3
from modeling_patentlmm import PatentLMMConfig
from patentlmm.assembly.convert import convert_original
from patentlmm.assembly.original import VISION_PREFIX, OriginalWeights, load_vision_config, use_patentmme_encoder
from patentlmm.assembly.tiny import _package_file, build_ocr_tokenizer
from patentlmm.inference.generation import default_max_new_tokens
from processing import PatentLMMProcessor, build_messages, run_tesseract, tokenize_ocr

FIGURE = "US20250204297A1__10"  # 978 x 2320: far from square, so padding it would change the pixels
PROMPT = "<image>\nUSER: Write a brief description for this patent image.\nASSISTANT:"  # finetuned_inference.py:122
SENTINEL = -200  # the original's IMAGE_TOKEN_INDEX
ORIGINAL_MAX_LENGTH = 512
TOLERANCE = 1e-4
LORA_RANK = 4
LORA_ALPHA = 256.0
LORA_MODULES = [f"self_attn.{name}_proj" for name in "qkvo"] + [f"mlp.{name}_proj" for name in ("gate", "up", "down")]
VISION = {
    **TINY_LAYOUTLMV3,
    "input_size": 384,
    "patch_size": 16,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
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
# microsoft/layoutlmv3-large's config.json (its keys in that file's alphabetical order), the original's encoder config
# (`patentmme_enocder.py:24`), with the input size and patch size the original sets (`patentmme_enocder.py:32-33`).
LAYOUTLMV3_LARGE_384 = {
    "coordinate_size": 171,
    "has_relative_attention_bias": True,
    "has_spatial_attention_bias": True,
    "hidden_size": 1024,
    "input_size": 384,
    "intermediate_size": 4096,
    "max_2d_position_embeddings": 1024,
    "max_position_embeddings": 514,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "patch_size": 16,
    "rel_2d_pos_bins": 64,
    "rel_pos_bins": 32,
    "shape_size": 170,
    "type_vocab_size": 1,
    "vocab_size": 50265,
}


@dataclass
class Original:
    """Tiny original checkpoints on disk and the raw tensors they were written from."""

    root: Path
    patentmme: Path
    base_llm: Path
    ocr_tokenizer: Path
    vision_config: Path
    ocr_entry: dict  # the figure's entry of the official ocr.json (a batch of one, unpadded)
    patentmme_encoder: dict[str, torch.Tensor]  # LayoutLMv3Model keys, float32 (PatentMME's last.ckpt)
    projector: dict[str, torch.Tensor]  # nn.Sequential(Linear, GELU, Linear) keys
    base_decoder: dict[str, torch.Tensor]  # LlamaForCausalLM keys, the base LLM folder's weights
    decoder: dict[str, torch.Tensor]  # LlamaForCausalLM keys, the stage-2 decoder before LoRA
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]]  # LlamaForCausalLM module name -> (A, B)

    @property
    def checkpoint_encoder(self) -> dict[str, torch.Tensor]:
        """The encoder copy in a stage-2 checkpoint: PatentMME held in bf16 by the training (train.py:927)."""
        return {name: tensor.to(torch.bfloat16) for name, tensor in self.patentmme_encoder.items()}


def _random_state(module_class, config, seed: int) -> dict[str, torch.Tensor]:
    """The persistent tensors of a freshly initialised `module_class(config)` (random, norms at one)."""
    torch.manual_seed(seed)
    return {name: tensor.detach().clone() for name, tensor in module_class(config).state_dict().items()}


@pytest.fixture(scope="module")
def original(tmp_path_factory, figures) -> Original:
    root = tmp_path_factory.mktemp("original")
    ocr_tokenizer = build_ocr_tokenizer()
    ocr_tokenizer.save_pretrained(root / "layoutlmv3-tokenizer")
    vision = LayoutLMv3Config(**VISION, vocab_size=len(ocr_tokenizer))
    (root / "vision_config.json").write_text(vision.to_json_string(), encoding="utf-8")

    # PatentMME: a Lightning checkpoint, the encoder under "model." plus pretraining heads and Lightning's entries.
    encoder = _random_state(LayoutLMv3Model, vision, seed=1)
    heads = {"mlm_head.dense.weight": torch.randn(48, 48), "mim_head.weight": torch.randn(8192, 48)}
    heads["model.patch_classifier.weight"] = torch.randn(5, 48)
    lightning = {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "2.0.2",
        "state_dict": OrderedDict({**{f"model.{k}": v for k, v in encoder.items()}, **heads}),
        "loops": {"fit_loop": {"epoch_progress": {"total": {"completed": 3}}}},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"image_size": 384, "patch_size": 16, "lr": 1e-4, "betas": (0.9, 0.98)},
    }
    torch.save(lightning, root / "last.ckpt")

    # Base LLM folder: a LLaMA with a 32,000-token vocabulary and its tokenizer, which has no <image>.
    sentencepiece = root / "sentencepiece"
    sentencepiece.mkdir()
    shutil.copy(_package_file("mistral_common", "data/tokenizer.model.v1"), sentencepiece / "tokenizer.model")
    tokenizer = LlamaTokenizerFast.from_pretrained(sentencepiece, add_bos_token=True, add_eos_token=False)
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

    # The official ocr.json entry of the figure: LayoutLMv3 tokens of its Tesseract words, a batch of one.
    words, boxes = run_tesseract(Image.open(figures[FIGURE]["path"]).convert("RGB"))
    ids, token_boxes = tokenize_ocr(ocr_tokenizer, words, boxes)
    assert len(ids) > 2  # the figure has words
    entry = {"input_ids": [ids], "attention_mask": [[1] * len(ids)], "bbox": [token_boxes]}
    return Original(
        root=root,
        patentmme=root / "last.ckpt",
        base_llm=root / "vicuna",
        ocr_tokenizer=root / "layoutlmv3-tokenizer",
        vision_config=root / "vision_config.json",
        ocr_entry=entry,
        patentmme_encoder=encoder,
        projector={k: v.detach().clone() for k, v in projector.state_dict().items()},
        base_decoder={k: v.detach().clone() for k, v in base.state_dict().items()},
        decoder=_random_state(LlamaForCausalLM, LlamaConfig(**TEXT), seed=4),
        lora=lora,
    )


# ---------------------------------------------------------------------------------------------------------- formats


def _deepspeed_module(original: Original, peft_naming: str = "new") -> dict[str, torch.Tensor]:
    """`["module"]` of a DeepSpeed file, as a bf16 run saves it: PEFT(LLaVA-LLaMA) with LoRA on every decoder linear
    layer, the projector and the frozen encoder's copy.

    "new" PEFT names the wrapped layer's weight `q_proj.base_layer.weight`, "old" PEFT (0.4, the original's pin)
    `q_proj.weight`; the old variant also carries the per-layer rotary buffers that transformers 4.31 saved.
    """
    module = OrderedDict()
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
    for name, tensor in original.checkpoint_encoder.items():
        module[f"base_model.model.model.vision_tower.vision_tower.{name}"] = tensor
    return OrderedDict((name, tensor.to(torch.bfloat16)) for name, tensor in module.items())


def _save_deepspeed(module: dict[str, torch.Tensor], path: Path) -> Path:
    """A DeepSpeed 0.9.5 ZeRO-2 `mp_rank_00_model_states.pt` (the optimizer states live in other files)."""
    shapes = OrderedDict((name, tensor.shape) for name, tensor in module.items())
    torch.save(
        {
            "module": module,
            "buffer_names": [],
            "optimizer": None,
            "param_shapes": [shapes],
            "frozen_param_shapes": None,
            "shared_params": {},
            "frozen_param_fragments": None,
            "lr_scheduler": {"base_lrs": [2e-4, 2e-5], "last_epoch": 10, "_step_count": 11, "lr_lambdas": [None, None]},
            "data_sampler": None,
            "random_ltd": None,
            "sparse_tensor_module_names": set(),
            "skipped_steps": 0,
            "global_steps": 10,
            "global_samples": 640,
            "dp_world_size": 8,
            "mp_world_size": 1,
            "ds_config": {"bf16": {"enabled": True}, "zero_optimization": {"stage": 2}},
            "ds_version": "0.9.5",
        },
        path,
    )
    return path


def _decoder_weights(decoder: dict[str, torch.Tensor], lora: dict | None, alpha: float) -> dict[str, torch.Tensor]:
    """The decoder as the original ran it, in float32 (bf16 checkpoint values upcast), LoRA merged by hand."""
    merged = {name: tensor.to(torch.bfloat16).float() for name, tensor in decoder.items()}
    for name, (a, b) in (lora or {}).items():
        a, b = a.to(torch.bfloat16).float(), b.to(torch.bfloat16).float()
        merged[f"{name}.weight"] = merged[f"{name}.weight"] + (alpha / a.shape[0]) * (b @ a)
    return merged


# ---------------------------------------------------------------------------------------------------------- reference


def _original_prompt_ids(tokenizer, prompt: str) -> list[int]:
    """`tokenizer_image_token`'s rule: chunks tokenised alone, the first chunk's BOS only, -200 between chunks."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    ids = chunks[0]
    for chunk in chunks[1:]:
        ids = ids + [SENTINEL] + chunk[1:]
    return ids


class OriginalRun:
    """The original inference at batch size 1 (see the module docstring), from raw tensors."""

    def __init__(self, original: Original, encoder: dict, decoder: dict, figure: Path, tokenizer_dir: Path):
        self.tokenizer = LlamaTokenizerFast.from_pretrained(tokenizer_dir)
        self.ids = _original_prompt_ids(self.tokenizer, PROMPT)
        image_processor = LayoutLMv3ImageProcessor(
            apply_ocr=False, size={"height": 384, "width": 384}, image_mean=[0.5] * 3, image_std=[0.5] * 3
        )
        self.pixel_values = image_processor(Image.open(figure).convert("RGB"), return_tensors="pt")["pixel_values"]
        self.ocr = {key: torch.tensor(value[0])[None] for key, value in original.ocr_entry.items()}

        vision = LayoutLMv3Model(LayoutLMv3Config.from_json_file(original.vision_config)).eval()
        vision.load_state_dict({name: tensor.float() for name, tensor in encoder.items()})
        projector = nn.Sequential(nn.Linear(48, 64), nn.GELU(), nn.Linear(64, 64))
        projector.load_state_dict({name: t.to(torch.bfloat16).float() for name, t in original.projector.items()})
        self.llm = LlamaForCausalLM(LlamaConfig(**TEXT)).eval()
        self.llm.load_state_dict(decoder)
        with torch.no_grad():
            output = vision(
                input_ids=self.ocr["input_ids"],
                bbox=self.ocr["bbox"],
                attention_mask=self.ocr["attention_mask"],
                pixel_values=self.pixel_values,
                output_hidden_states=True,
            )
            selected = output.to_tuple()[-2]  # what `hidden_states[-2]` picked from the vendored model's output object
            self.features = projector(selected[0, 1:])  # "patch": the first position dropped

    def _embeddings(self) -> torch.Tensor:
        """`(1, L, C)`: the prompt's embeddings with the figure's features at the sentinel."""
        at = self.ids.index(SENTINEL)
        embed = self.llm.get_input_embeddings()
        before, after = torch.tensor(self.ids[:at]), torch.tensor(self.ids[at + 1 :])
        return torch.cat([embed(before), self.features, embed(after)])[None]

    @torch.no_grad()
    def logits(self) -> torch.Tensor:
        """Logits `(1, L, 32000)` of the prompt."""
        return self.llm(inputs_embeds=self._embeddings()).logits

    @torch.no_grad()
    def greedy(self) -> list[int]:
        """Greedy tokens until EOS (kept) or `max_length=512` counting the prompt ids, with LLaMA's KV cache (as
        `generate` ran it)."""
        output = self.llm(inputs_embeds=self._embeddings(), use_cache=True)
        generated: list[int] = []
        while len(self.ids) + len(generated) < ORIGINAL_MAX_LENGTH:
            generated.append(int(output.logits[0, -1].argmax()))
            if generated[-1] == self.tokenizer.eos_token_id:
                break
            output = self.llm(input_ids=torch.tensor([generated[-1:]]), cache=output.cache, use_cache=True)
        return generated


def _stage2_run(original: Original, figures, encoder: dict | None = None, alpha: float = LORA_ALPHA) -> OriginalRun:
    return OriginalRun(
        original,
        original.checkpoint_encoder if encoder is None else encoder,
        _decoder_weights(original.decoder, original.lora, alpha),
        figures[FIGURE]["path"],
        original.base_llm,
    )


@pytest.fixture(scope="module")
def reference(original, figures) -> OriginalRun:
    return _stage2_run(original, figures)


@pytest.fixture(scope="module")
def reference_tokens(reference) -> list[int]:
    return reference.greedy()


# ---------------------------------------------------------------------------------------------------------- helpers


def _convert_deepspeed(original: Original, tmp_path: Path, module: dict | None = None, **kwargs) -> Path:
    module = _deepspeed_module(original) if module is None else module
    return convert_original(
        tmp_path / "out",
        base_llm=original.base_llm,
        ocr_tokenizer=original.ocr_tokenizer,
        checkpoint=_save_deepspeed(module, tmp_path / "mp_rank_00_model_states.pt"),
        **{"vision_config": original.vision_config, **kwargs},
    )


def _python_path_inputs(folder: Path, original: Original, figures):
    """The documented Python path: the `original_inference` chat template, the official OCR entry, no padding."""
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    prompt = processor.apply_chat_template(
        build_messages("brief"), chat_template="original_inference", add_generation_prompt=True
    )
    assert prompt == PROMPT
    inputs = processor(images=figures[FIGURE]["path"], text=prompt, ocr=[original.ocr_entry], pad_to_square=False)
    return processor, inputs


@torch.no_grad()
def _logits(model, inputs) -> torch.Tensor:
    return model.eval()(**inputs).logits


def _max_difference(converted: torch.Tensor, reference: OriginalRun) -> float:
    expected = reference.logits()
    assert converted.shape == (*expected.shape[:-1], expected.shape[-1] + 1)  # the <image> row
    return (converted[..., : expected.shape[-1]] - expected).abs().max().item()


@pytest.fixture(scope="module")
def converted(original, tmp_path_factory) -> Path:
    """The stage-2 checkpoint (new PEFT naming) and PatentMME converted with the defaults, as the README shows."""
    return _convert_deepspeed(original, tmp_path_factory.mktemp("converted"), patentmme=original.patentmme)


@pytest.fixture(scope="module")
def python_path(converted, original, figures):
    return _python_path_inputs(converted, original, figures)


# ---------------------------------------------------------------------------------------------------------- fidelity


@pytest.mark.slow
def test_converted_checkpoint_reproduces_the_original_token_for_token(
    converted, python_path, reference, reference_tokens
):
    """Done-when of issue 11, in Python: convert with the defaults, then the documented Python path gives the
    original's logits (<= 1e-4) and greedy tokens, its 512-token cap included (for `describe`, see the CLI test)."""
    config = json.loads((converted / "config.json").read_text())
    assert config["vision_feature_layer"] == -1 and config["text_config"]["dtype"] == "float32"
    assert sorted(p.name for p in converted.iterdir() if p.suffix in (".bin", ".pt", ".ckpt", ".safetensors")) == [
        "model.safetensors"
    ]
    model = AutoModelForImageTextToText.from_pretrained(converted, trust_remote_code=True)
    assert model.config.image_token_id == 32000 and model.config.text_config.vocab_size == 32001
    assert model.generation_config.suppress_tokens == [32000]
    processor, inputs = python_path
    assert torch.equal(inputs["pixel_values"], reference.pixel_values)
    assert _max_difference(_logits(model, inputs), reference) <= TOLERANCE

    prompt_tokens = int((inputs["input_ids"] != processor.image_token_id).sum()) + 1  # the figure counts once
    assert prompt_tokens == len(reference.ids)
    max_new_tokens = default_max_new_tokens(processor, PROMPT, "original_inference")
    assert max_new_tokens == ORIGINAL_MAX_LENGTH - len(reference.ids)
    generated = model.generate(**inputs, max_new_tokens=max_new_tokens)[0, inputs["input_ids"].shape[1] :].tolist()
    assert len(reference_tokens) > 100 and generated == reference_tokens
    assert len(reference_tokens) == max_new_tokens or reference_tokens[-1] == processor.tokenizer.eos_token_id


def _dataset_folder(folder: Path, original: Original, figures) -> Path:
    """A PatentDesc-355k folder (brief, test split) whose row carries the official token ids, and Tesseract words
    that are deliberately wrong: describe must use the ids."""
    import datasets

    from dataset_builder.features import patentdesc_features

    path = figures[FIGURE]["path"]
    row = {
        "image_id": [FIGURE],
        "patent_id": [FIGURE.split("__")[0]],
        "figure": [FIGURE.split("__")[1]],
        "image": [{"bytes": path.read_bytes(), "path": path.name}],
        "description": ["FIG. 10 is a view."],
        "ocr_words": [["nothing", "like", "the", "figure"]],
        "ocr_boxes": [[[0, 0, 10, 10]] * 4],
        "ocr_input_ids": [original.ocr_entry["input_ids"][0]],
        "ocr_bbox": [original.ocr_entry["bbox"][0]],
    }
    dataset = datasets.Dataset.from_dict(row, features=patentdesc_features(official_ocr=True))
    (folder / "brief").mkdir(parents=True)
    dataset.to_parquet(str(folder / "brief" / "test-00000-of-00001.parquet"))
    card = "---\nconfigs:\n- config_name: brief\n  data_files:\n  - split: test\n    path: brief/test-*.parquet\n---\n"
    (folder / "README.md").write_text(card, encoding="utf-8")
    return folder


@pytest.mark.slow
def test_cli_convert_and_describe_reproduce_the_original(original, figures, tmp_path, capsys, reference_tokens):
    """The command lines with their defaults: `convert-original`, then `describe --prompt-format original_inference`
    on a dataset that carries the official OCR token ids (the paper's OCR), which win over its words."""
    from patentlmm.cli import main

    checkpoint = _save_deepspeed(_deepspeed_module(original), tmp_path / "mp_rank_00_model_states.pt")
    out = tmp_path / "out"
    argv = ["convert-original", "--patentmme", str(original.patentmme), "--checkpoint", str(checkpoint)]
    argv += ["--base-llm", str(original.base_llm), "--ocr-tokenizer", str(original.ocr_tokenizer)]
    assert main([*argv, "--vision-config", str(original.vision_config), "--output", str(out)]) == 0
    capsys.readouterr()
    dataset = _dataset_folder(tmp_path / "patentdesc-355k", original, figures)
    predictions = tmp_path / "predictions.jsonl"
    argv = ["describe", "--model", str(out), "--dataset", str(dataset), "--split", "test"]
    argv += ["--prompt-format", "original_inference", "--batch-size", "1", "--output", str(predictions)]
    assert main(argv) == 0
    row = json.loads(predictions.read_text())
    processor = PatentLMMProcessor.from_pretrained(out)
    assert row["image_id"] == FIGURE and row["prediction"] == processor.decode(reference_tokens)


def test_each_deviation_would_change_the_original_inputs(converted, python_path, original, figures, reference):
    """The checks above can fail: the package's training-time padding, transformers' `hidden_states[-2]` and
    whole-prompt tokenisation with a plain LLaMA tokenizer (the base LLM's, as transformers loads it) each give the
    original something else. (A saved processor's own tokenizer starts a word after every special token, so there
    whole-prompt ids equal the rule's: tests/patentlmm/inference/test_vllm_backend.py.)"""
    processor, inputs = python_path
    padded = processor(images=figures[FIGURE]["path"], text=PROMPT, ocr=[original.ocr_entry])
    assert processor.pad_to_square and not torch.allclose(padded["pixel_values"], reference.pixel_values, atol=0.1)
    model = AutoModelForImageTextToText.from_pretrained(converted, trust_remote_code=True)
    assert _max_difference(_logits(model, padded), reference) > TOLERANCE

    model.config.vision_feature_layer = -2  # transformers' second-to-last layer
    assert _max_difference(_logits(model, inputs), reference) > TOLERANCE

    plain = AutoTokenizer.from_pretrained(original.base_llm)
    plain.add_tokens([processor.image_token], special_tokens=True)
    image_token_id = plain.convert_tokens_to_ids(processor.image_token)
    assert [image_token_id if t == SENTINEL else t for t in reference.ids] != plain(PROMPT).input_ids


def test_checkpoint_encoder_wins_over_patentmme(converted, python_path, original, figures, reference):
    """With --patentmme and --checkpoint the checkpoint's (bf16) copy of the encoder is used, as in the original;
    PatentMME's float32 weights would give other logits."""
    model = AutoModelForImageTextToText.from_pretrained(converted, trust_remote_code=True)
    logits = _logits(model, python_path[1])
    assert _max_difference(logits, reference) <= TOLERANCE
    assert _max_difference(logits, _stage2_run(original, figures, encoder=original.patentmme_encoder)) > TOLERANCE


def test_a_failed_conversion_leaves_no_output_folder(original, tmp_path):
    """The folder is written beside `--output` and renamed at the end: a failure after the weights were written
    (here: LoRA of two ranks cannot be kept as one adapter) leaves nothing that a rerun would refuse."""
    module = _deepspeed_module(original)
    layer = next(iter(original.lora))
    module[f"base_model.model.{layer}.lora_A.default.weight"] = original.lora[layer][0][:2]
    module[f"base_model.model.{layer}.lora_B.default.weight"] = original.lora[layer][1][:, :2]
    with pytest.raises(ValueError, match=rf"one LoRA rank for all layers, found \[2, {LORA_RANK}\]"):
        _convert_deepspeed(original, tmp_path, module, keep_adapter=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mp_rank_00_model_states.pt"]
    out = _convert_deepspeed(original, tmp_path, module)  # merged, each layer with its own rank
    assert out == tmp_path / "out" and (out / "model.safetensors").is_file()


def test_patentmme_fills_encoder_tensors_the_checkpoint_lacks(original, figures, tmp_path, caplog):
    module = _deepspeed_module(original)
    dropped = "base_model.model.model.vision_tower.vision_tower.encoder.layer.1.output.dense.weight"
    del module[dropped]
    with caplog.at_level(logging.INFO, logger="patentlmm.assembly"):
        out = _convert_deepspeed(original, tmp_path, module, patentmme=original.patentmme)
    assert "mlm_head.dense.weight" in caplog.text and "model.patch_classifier.weight" in caplog.text  # heads reported
    with safe_open(out / "model.safetensors", "pt") as handle:
        filled = handle.get_tensor("model.vision_tower.encoder.layer.1.output.dense.weight")
        kept = handle.get_tensor("model.vision_tower.encoder.layer.0.output.dense.weight")
    assert torch.equal(filled, original.patentmme_encoder["encoder.layer.1.output.dense.weight"])
    assert torch.equal(kept, original.checkpoint_encoder["encoder.layer.0.output.dense.weight"].float())


def test_old_peft_naming_without_patentmme(original, python_path, tmp_path, reference):
    """PEFT 0.4 (the original's pin) names the wrapped weight `q_proj.weight` and transformers 4.31 saved rotary
    buffers; the checkpoint alone (no --patentmme) converts to the same model."""
    out = _convert_deepspeed(original, tmp_path, _deepspeed_module(original, "old"))
    model = AutoModelForImageTextToText.from_pretrained(out, trust_remote_code=True)
    assert _max_difference(_logits(model, python_path[1]), reference) <= TOLERANCE


def test_deepspeed_checkpoint_keep_adapter(original, figures, python_path, tmp_path):
    import peft

    out = _convert_deepspeed(original, tmp_path, keep_adapter=True, lora_alpha=64)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], len(adapter["target_modules"])) == (LORA_RANK, 64, len(original.lora))
    with safe_open(out / "adapter_model.safetensors", "pt") as handle:
        assert "base_model.model.model.language_model.layers.1.mlp.down_proj.lora_B.weight" in handle.keys()
    inputs = python_path[1]  # the same processor settings in every converted folder
    reference = _stage2_run(original, figures, alpha=64.0)

    # The base weights alone (a copy of the folder without the adapter) are the unmerged decoder ...
    base_folder = shutil.copytree(out, tmp_path / "base", ignore=shutil.ignore_patterns("adapter_*"))
    base = AutoModelForImageTextToText.from_pretrained(base_folder, trust_remote_code=True)
    base_logits = _logits(base, inputs)
    unmerged = OriginalRun(
        original,
        original.checkpoint_encoder,
        _decoder_weights(original.decoder, None, 0.0),
        figures[FIGURE]["path"],
        original.base_llm,
    )
    assert _max_difference(base_logits, unmerged) <= TOLERANCE
    assert _max_difference(base_logits, reference) > 1e-2  # the LoRA matters
    # ... PEFT puts the LoRA back on them ...
    assert _max_difference(_logits(peft.PeftModel.from_pretrained(base, out), inputs), reference) <= TOLERANCE
    # ... and transformers attaches it by itself when it loads the folder (PEFT installed).
    attached = AutoModelForImageTextToText.from_pretrained(out, trust_remote_code=True)
    assert _max_difference(_logits(attached, inputs), reference) <= TOLERANCE


@pytest.mark.parametrize(
    "prefix",
    ["model.mm_projector.", "base_model.model.model.mm_projector."],
    ids=["extract_mm_projector", "stage1-training-lora"],
)
def test_stage1_projector_in_both_original_layouts(original, figures, python_path, tmp_path, prefix):
    """`scripts/extract_mm_projector.py` writes `model.mm_projector.*`; the stage-1 training itself (run with
    `--lora_enable True`) saves `base_model.model.model.mm_projector.*`. The encoder comes from PatentMME."""
    projector = tmp_path / "mm_projector.bin"
    torch.save({f"{prefix}{k}": v.to(torch.bfloat16) for k, v in original.projector.items()}, projector)
    out = convert_original(
        tmp_path / "out",
        base_llm=original.base_llm,
        ocr_tokenizer=original.ocr_tokenizer,
        patentmme=original.patentmme,
        projector=projector,
        vision_config=original.vision_config,
    )
    model = AutoModelForImageTextToText.from_pretrained(out, trust_remote_code=True)
    inputs = python_path[1]  # the same processor settings in every converted folder
    reference = OriginalRun(
        original,
        original.patentmme_encoder,
        {name: tensor.float() for name, tensor in original.base_decoder.items()},
        figures[FIGURE]["path"],
        original.base_llm,
    )
    assert _max_difference(_logits(model, inputs), reference) <= TOLERANCE


# ---------------------------------------------------------------------------------------------------------- shapes


def test_patentlmm_large_converts_with_the_default_encoder_config():
    """A PatentMME-large checkpoint (1024 wide; meta tensors) fits `PatentLMMConfig()`'s default encoder, which is
    LayoutLMv3-large's shape and whose layout embeddings run (the old 128/128 default made them 768 wide)."""
    with torch.device("meta"):
        large = LayoutLMv3Model(LayoutLMv3Config(**LAYOUTLMV3_LARGE_384))
    lightning = {f"model.{name}": tensor for name, tensor in large.state_dict().items()}
    found = OriginalWeights()
    default = load_vision_config(None)
    use_patentmme_encoder(found, lightning, default)
    with torch.device("meta"):
        encoder = LayoutLMv3Model(PatentLMMConfig().vision_config)
        embedded = encoder.embeddings(
            input_ids=torch.zeros(1, 5, dtype=torch.long), bbox=torch.zeros(1, 5, 4, dtype=torch.long)
        )
    expected = {f"{VISION_PREFIX}{name}": tuple(t.shape) for name, t in encoder.state_dict().items()}
    assert {name: tuple(t.shape) for name, t in found.weights.items()} == expected
    assert default.to_dict() == PatentLMMConfig().vision_config.to_dict()
    assert tuple(embedded.shape) == (1, 5, 1024)
    with pytest.raises(ValueError, match=r"4 \* 128 \+ 2 \* 128 = 768 must equal hidden_size=1024"):
        PatentLMMConfig(vision_config={"hidden_size": 1024, "num_attention_heads": 16})


def test_encoder_shapes_other_than_the_config_are_reported(original, tmp_path):
    with pytest.raises(ValueError, match=r"(?s)shape mismatch.*--vision-config") as error:
        _convert_deepspeed(original, tmp_path, vision_config=None)  # PatentMME-large is the default
    assert "other than PatentMME-large" not in str(error.value)


def test_unknown_keys_are_listed(original, tmp_path):
    module = _deepspeed_module(original)
    module["base_model.model.model.mm_projector.4.weight"] = torch.zeros(64, 64)  # maps to no parameter
    module["base_model.model.score_head.weight"] = torch.zeros(1, 64)  # maps nowhere at all
    with pytest.raises(ValueError) as error:
        _convert_deepspeed(original, tmp_path, module)
    message = str(error.value)
    assert "2 tensor(s) with no PatentLMM parameter" in message
    assert "base_model.model.model.mm_projector.4.weight" in message and "base_model.model.score_head.weight" in message


def test_missing_keys_are_listed(original, tmp_path):
    module = _deepspeed_module(original)
    del module["base_model.model.model.norm.weight"]
    del module["base_model.model.model.vision_tower.vision_tower.encoder.layer.1.output.dense.bias"]
    with pytest.raises(ValueError) as error:
        _convert_deepspeed(original, tmp_path, module)
    message = str(error.value)
    assert "2 PatentLMM parameter(s) that no checkpoint provides" in message
    assert "model.language_model.norm.weight" in message
    assert "model.vision_tower.encoder.layer.1.output.dense.bias" in message and "--patentmme" in message


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
    with pytest.raises(ValueError, match=r"Refusing to load .*weights_only=True") as refused:
        convert_original(
            tmp_path / "out",
            base_llm=original.base_llm,
            ocr_tokenizer=original.ocr_tokenizer,
            checkpoint=checkpoint,
            vision_config=original.vision_config,
        )
    assert not TRAP_SPRUNG
    assert str(checkpoint) in str(refused.value) and "weights_only=False" not in str(refused.value)
    assert not (tmp_path / "out").exists()


def test_weights_that_are_nan_or_inf_are_named_and_nothing_is_written(original, tmp_path):
    """A damaged or diverged checkpoint (NaN, inf), or values beyond float16's range, would make a model that writes
    empty strings: the conversion names every such tensor and writes nothing."""
    module = _deepspeed_module(original)
    projector, embeddings = "base_model.model.model.mm_projector.0.weight", "base_model.model.model.embed_tokens.weight"
    module[projector] = module[projector].clone()
    module[projector][0, :3] = float("nan")
    module[embeddings] = module[embeddings].clone()
    module[embeddings][1, 0] = float("inf")
    with pytest.raises(ValueError, match=r"^2 tensor\(s\) hold NaN or inf values in float32 ") as caught:
        _convert_deepspeed(original, tmp_path, module, dtype="float32")
    message = str(caught.value)
    assert "model.multi_modal_projector.linear_1.weight (3 of " in message
    assert "model.language_model.embed_tokens.weight (2 of " in message  # its inf row + the <image> row (the mean)
    assert message.endswith("Nothing was written.")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mp_rank_00_model_states.pt"]

    large = _deepspeed_module(original)
    large[projector] = large[projector].clone()
    large[projector][0, 0] = 1e6  # finite in float32, inf in float16
    with pytest.raises(ValueError, match=r"^1 tensor\(s\) hold NaN or inf values in float16 .*linear_1\.weight \(1 of"):
        _convert_deepspeed(original, tmp_path, large, dtype="float16")
    assert not (tmp_path / "out").exists()


def test_cli_options(original, tmp_path, capsys):
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
