"""The authors' PatentMME Lightning checkpoint -> a PatentMMEForPreTraining folder, `encoder/` and the VQGAN."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, LayoutLMv3Model, PreTrainedTokenizerBase

from modeling_patentlmm import PatentMMEConfig, PatentMMEForPreTraining, PatentMMEVisualTokenizer
from modeling_patentlmm.modeling_patentmme import encoder_config
from patentlmm_common.files import atomic_directory

from .original import load_state_dict, preview

__all__ = [
    "DEAD_HEADS",
    "ENCODER_SUBFOLDER",
    "HEADS",
    "VISUAL_TOKENIZER_SUBFOLDER",
    "Conversion",
    "convert_patentmme",
    "interpolate_pos_embed",
    "read_patentmme",
    "save_encoder",
]

logger = logging.getLogger(__name__)

ENCODER_SUBFOLDER = "encoder"  # a LayoutLMv3 folder + OCR tokenizer: `patentlmm train --vision_tower` takes it
VISUAL_TOKENIZER_SUBFOLDER = "visual_tokenizer"
LIGHTNING_PREFIX = "model."
# The pretraining modules of `patentmme_layoutlmv3.py:804-823`, kept under the same names.
HEADS = ("vis_mask_token", "mlm_head.", "mim_head.", "patch_cls_linear_head.", "tna_ocr_head.", "tna_vis_head.")
# Built but read by no loss: TBA's head (`patentmme_layoutlmv3.py:818`; its loss is commented out at :1040-1046).
DEAD_HEADS = ("tba_linear_head.",)
VQGAN_PREFIX = "vqgan."
RANDOM_STD, RANDOM_TOLERANCE = 0.02, 0.005  # LayoutLMv3's initializer_range, what `_init_weights` draws


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """`(1, 1 + g * g, h)` -> `(1, 1 + grid * grid, h)`: the CLS row kept, the patch rows resized bicubically as a
    g x g image, which the authors' forward does at every call (`patentmme_layoutlmv3.py:897-913`); done once here."""
    side = round((pos_embed.shape[1] - 1) ** 0.5)
    if side * side != pos_embed.shape[1] - 1:
        raise ValueError(f"pos_embed has {pos_embed.shape[1]} rows: not 1 + a square number of patches.")
    if side == grid:
        return pos_embed
    patches = pos_embed[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, h, g, g)
    resized = F.interpolate(patches, size=(grid, grid), mode="bicubic").permute(0, 2, 3, 1).reshape(1, grid * grid, -1)
    return torch.cat([pos_embed[:, :1], resized.to(pos_embed.dtype)], dim=1)


@dataclass
class Conversion:
    """The checkpoint split by destination: `model` (PatentMMEForPreTraining names), `vqgan` (taming names),
    `dropped` (dead heads) and `unknown` (names no rule takes)."""

    model: dict[str, torch.Tensor] = field(default_factory=dict)
    vqgan: dict[str, torch.Tensor] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def read_patentmme(state: dict[str, torch.Tensor]) -> Conversion:
    """Renames a Lightning `state_dict`: `model.<encoder>` -> `layoutlmv3.<encoder>`, `model.<head>` -> `<head>`,
    `model.vqgan.*` -> the tokenizer, dead heads dropped."""
    conversion = Conversion()
    for source, tensor in state.items():
        name = source.removeprefix(LIGHTNING_PREFIX)
        if not source.startswith(LIGHTNING_PREFIX):
            conversion.unknown.append(source)
        elif name.startswith(VQGAN_PREFIX):
            conversion.vqgan[name.removeprefix(VQGAN_PREFIX)] = tensor
        elif name.startswith(DEAD_HEADS):
            conversion.dropped.append(source)
        elif name.startswith(HEADS):
            conversion.model[name] = tensor
        else:
            conversion.model["layoutlmv3." + name] = tensor
    return conversion


def _config_from_weights(weights: dict[str, torch.Tensor], input_size: int) -> PatentMMEConfig:
    """The PatentMMEConfig the renamed weights imply (LayoutLMv3-large's other fields), at `input_size`."""
    try:
        words = weights["layoutlmv3.embeddings.word_embeddings.weight"]
        layers = 1 + max(int(m.group(1)) for k in weights if (m := re.match(r"layoutlmv3\.encoder\.layer\.(\d+)\.", k)))
        shapes = {
            "vocab_size": words.shape[0],
            "hidden_size": words.shape[1],
            "num_hidden_layers": layers,
            "num_attention_heads": weights["layoutlmv3.encoder.rel_pos_bias.weight"].shape[0],
            "intermediate_size": weights["layoutlmv3.encoder.layer.0.intermediate.dense.weight"].shape[0],
            "max_position_embeddings": weights["layoutlmv3.embeddings.position_embeddings.weight"].shape[0],
            "type_vocab_size": weights["layoutlmv3.embeddings.token_type_embeddings.weight"].shape[0],
            "coordinate_size": weights["layoutlmv3.embeddings.x_position_embeddings.weight"].shape[1],
            "shape_size": weights["layoutlmv3.embeddings.h_position_embeddings.weight"].shape[1],
            "max_2d_position_embeddings": weights["layoutlmv3.embeddings.x_position_embeddings.weight"].shape[0],
            "patch_size": weights["layoutlmv3.patch_embed.proj.weight"].shape[-1],
            "mim_vocab_size": weights["mim_head.proj.2.weight"].shape[0],
        }
        classes = weights["patch_cls_linear_head.proj.2.weight"].shape[0]
    except (KeyError, ValueError) as error:
        raise ValueError(f"not a PatentMME checkpoint: missing {error}") from None
    config = PatentMMEConfig(**{k: int(v) for k, v in shapes.items()}, input_size=input_size)
    if classes != len(config.patch_classes):
        raise ValueError(f"not a PatentMME checkpoint: {classes} patch classes, expected {len(config.patch_classes)}")
    return config


def _build(conversion: Conversion, input_size: int, source: str) -> PatentMMEForPreTraining:
    """A model holding the converted weights (pos_embed interpolated to `input_size`); one-line errors otherwise."""
    try:
        config = _config_from_weights(conversion.model, input_size)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    weights = dict(conversion.model)
    weights["layoutlmv3.pos_embed"] = interpolate_pos_embed(
        weights["layoutlmv3.pos_embed"], config.input_size // config.patch_size
    )
    model = PatentMMEForPreTraining(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unknown = sorted(set(weights) - set(expected))
    wrong = [f"{k} {tuple(weights[k].shape)} != {tuple(expected[k].shape)}" for k in expected
             if k in weights and weights[k].shape != expected[k].shape]  # fmt: skip
    if missing or unknown or wrong or conversion.unknown:
        raise ValueError(
            f"{source} is not a PatentMME checkpoint: missing {preview(missing) or 'none'}; unexpected "
            f"{preview(unknown + conversion.unknown) or 'none'}; wrong shapes {preview(wrong) or 'none'}."
        )
    model.load_state_dict(weights, strict=True)
    return model


def vqgan_verdict(vqgan: dict[str, torch.Tensor]) -> str:
    """Whether the VQGAN looks randomly initialised: conv weights of std ~0.02 and all conv biases 0, which is what
    LayoutLMv3's `_init_weights` leaves when the VQGAN is built in `__init__` (`patentmme_layoutlmv3.py:396-410,
    797-801`), or trained (a real OCR-VQGAN)."""
    convs = [t.float().flatten() for k, t in vqgan.items() if k.endswith(".weight") and t.dim() == 4]
    biases = [t.float().flatten() for k, t in vqgan.items() if k.endswith(".bias") and "norm" not in k]
    std = float(torch.cat(convs).std())
    zero = float((torch.cat(biases) == 0).float().mean())
    looks_random = abs(std - RANDOM_STD) < RANDOM_TOLERANCE and zero == 1.0
    verdict = (
        "LOOKS RANDOMLY INITIALISED (the MIM targets were a random-projection quantizer)"
        if looks_random
        else ("looks trained (not a fresh N(0, 0.02) init)")
    )
    return f"VQGAN: {verdict}: conv weight std {std:.4f}, {zero:.0%} of conv biases exactly 0."


def encoder_verdict(model: PatentMMEForPreTraining, reference: str | os.PathLike) -> str:
    """How the converted encoder's transformer layers differ from `reference` (the LayoutLMv3 they started from)."""
    theirs = LayoutLMv3Model.from_pretrained(str(reference)).state_dict()
    ours = model.layoutlmv3.state_dict()
    names = [k for k in ours if k.startswith("encoder.layer.") and k in theirs and theirs[k].shape == ours[k].shape]
    if not names:
        return f"Encoder: no transformer layer of {reference} has the same name and shape: not its LayoutLMv3."
    changed = [k for k in names if not torch.equal(ours[k].float(), theirs[k].float())]
    largest = max((float((ours[k].float() - theirs[k].float()).abs().max()) for k in changed), default=0.0)
    if not changed:
        return f"Encoder: all {len(names)} layer tensors EQUAL {reference}'s: its transformer layers were not trained."
    return (
        f"Encoder: {len(changed)} of {len(names)} layer tensors differ from {reference}'s (max |diff| {largest:.3g})."
    )


def save_encoder(
    model: PatentMMEForPreTraining, ocr_tokenizer: PreTrainedTokenizerBase | None, folder: str | os.PathLike
) -> Path:
    """Writes the encoder as a plain `LayoutLMv3Model` folder, with the OCR tokenizer (what stage 1 reads)."""
    encoder = LayoutLMv3Model(encoder_config(model.config))
    encoder.load_state_dict(model.layoutlmv3.state_dict(), strict=True)
    encoder.save_pretrained(folder)
    if ocr_tokenizer is not None:
        ocr_tokenizer.save_pretrained(folder)
    return Path(folder)


def convert_patentmme(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    ocr_tokenizer: str | None = None,
    compare_to: str | os.PathLike | None = None,
    input_size: int = 384,
) -> list[str]:
    """Converts the authors' `last.ckpt` into `output` (the PatentMMEForPreTraining folder, `encoder/`,
    `visual_tokenizer/` if the checkpoint holds the VQGAN); returns the report lines (notes and verdicts)."""
    state = load_state_dict(checkpoint, "state_dict")
    conversion = read_patentmme(state)
    model = _build(conversion, input_size, str(checkpoint))
    tokenizer = AutoTokenizer.from_pretrained(ocr_tokenizer, trust_remote_code=False) if ocr_tokenizer else None
    report = []
    if conversion.dropped:
        report.append(f"Dropped {len(conversion.dropped)} tensors of dead heads (no loss reads them): "
                      f"{preview(conversion.dropped)}")  # fmt: skip
    rows = state[LIGHTNING_PREFIX + "pos_embed"].shape[1]
    target = model.layoutlmv3.pos_embed.shape[1]
    report.append(f"pos_embed: {rows} rows" + (f" -> {target} (bicubic, once)." if rows != target else ", kept."))
    vqgan = None
    if conversion.vqgan:
        vqgan = PatentMMEVisualTokenizer.from_state_dict(conversion.vqgan, input_size, source=f"{checkpoint} vqgan.*")
        report.append(vqgan_verdict(conversion.vqgan))
    else:
        report.append("VQGAN: not in the checkpoint (no visual_tokenizer/ written).")
    if compare_to is not None:
        report.append(encoder_verdict(model, compare_to))
    if tokenizer is None:
        report.append("No --ocr-tokenizer: encoder/ holds no OCR tokenizer, which stage 1 needs (LayoutLMv3's).")
    with atomic_directory(output) as staging:
        model.save_pretrained(staging)
        save_encoder(model, tokenizer, staging / ENCODER_SUBFOLDER)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if vqgan is not None:
            vqgan.save_pretrained(staging / VISUAL_TOKENIZER_SUBFOLDER)
        (staging / "conversion_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
