"""The authors' checkpoints read into PatentLMM's parameter names: PatentMME, stage-1 projectors, stage-2 LLaVA."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LayoutLMv3Config, LayoutLMv3Model

from modeling_patentlmm.configuration_patentlmm import PATENTMME_LARGE

__all__ = [
    "EMBEDDINGS_KEY",
    "LM_HEAD_KEY",
    "MAX_LISTED_KEYS",
    "OriginalWeights",
    "PEFT_PREFIX",
    "PROJECTOR_PREFIX",
    "VISION_PREFIX",
    "load_state_dict",
    "load_vision_config",
    "preview",
    "read_llava",
    "read_stage1",
    "use_patentmme_encoder",
]

logger = logging.getLogger(__name__)

MAX_LISTED_KEYS = 20  # names listed in a message before "... and N more"
PEFT_PREFIX = "base_model.model."  # PEFT's wrapper around LLaVA's LlavaLlamaForCausalLM (also in stage-1 projectors)
# Original name prefix -> PatentLMM name prefix; the first match wins. LLaVA's "mlp2x_gelu" projector is
# nn.Sequential(Linear, GELU, Linear) (indices 0 and 2); its "linear" projector is a bare nn.Linear.
RENAMES = (
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.mm_projector.", "model.multi_modal_projector.linear_1."),
    ("model.vision_tower.vision_tower.", "model.vision_tower."),
    ("model.", "model.language_model."),
    ("lm_head.", "lm_head."),
)
PROJECTOR_PREFIX = "model.multi_modal_projector."
VISION_PREFIX = "model.vision_tower."
EMBEDDINGS_KEY = "model.language_model.embed_tokens.weight"
LM_HEAD_KEY = "lm_head.weight"
# LoRA factors: `...q_proj.lora_A.default.weight` (PEFT adapter "default"); the wrapped layer's own weight is
# `...q_proj.weight` in old PEFT versions and `...q_proj.base_layer.weight` in newer ones.
LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<factor>[AB])(?:\.default)?\.weight$")
BASE_LAYER = re.compile(r"\.base_layer\.(?=(?:weight|bias)$)")


@dataclass
class OriginalWeights:
    """Tensors of the original checkpoints under PatentLMM's parameter names.

    `origin` remembers each tensor's name in its file (for error messages); `lora` maps a PatentLMM module name to
    its LoRA factors `{"A": (r, in), "B": (out, r)}`; `unknown` lists original names that no rule maps.
    """

    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    lora: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def add(self, name: str, source: str, tensor: torch.Tensor) -> None:
        self.weights[name] = tensor
        self.origin[name] = source


def load_vision_config(path: str | os.PathLike | None) -> LayoutLMv3Config:
    """PatentMME-large by default, else the LayoutLMv3 config in the JSON file `path`."""
    values = dict(PATENTMME_LARGE) if path is None else json.loads(Path(path).read_text(encoding="utf-8"))
    values.pop("model_type", None)
    return LayoutLMv3Config(**values)


def load_state_dict(path: str | os.PathLike, entry: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a PyTorch file (of its dict entry `entry` when given), unpickling nothing but tensors and plain
    containers."""
    logger.info("Reading %s", path)
    try:
        # mmap needs torch.save's zip format; the legacy (pre-1.6) format is read whole, still weights_only
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        reasons = [line.strip() for line in str(error).splitlines() if "Unsupported global" in line]
        if not reasons:  # not a torch.save file at all, e.g. a plain pickle.dump (its opcodes are refused)
            raise ValueError(
                f"Refusing to load {path}: it is not a torch.save checkpoint of tensors (a plain pickle?), and this "
                "converter reads checkpoints with torch.load(weights_only=True) only."
            ) from error
        raise ValueError(
            f"Refusing to load {path}: it holds pickled objects other than tensors and plain containers, and this "
            f"converter only unpickles those (torch.load(weights_only=True)). {' '.join(reasons)}"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:  # a truncated or damaged file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"Cannot read {path} as a PyTorch checkpoint (damaged or truncated?): {reason}") from error
    if entry is not None:
        if not isinstance(content, dict) or entry not in content:
            raise ValueError(f"{path} has no {entry!r} entry; is it the right kind of checkpoint?")
        content = content[entry]
    if not isinstance(content, dict) or not all(isinstance(value, torch.Tensor) for value in content.values()):
        where = f"{path}[{entry!r}]" if entry else str(path)
        raise ValueError(f"{where} is not a state dict (a dict of tensors).")
    return content


def _rename(name: str) -> str | None:
    """PatentLMM's name for an original (LLaVA-LLaMA) tensor name, or None when no rule applies."""
    for old, new in RENAMES:
        if name.startswith(old):
            return new + name[len(old) :]
    return None


def read_llava(state: dict[str, torch.Tensor]) -> OriginalWeights:
    """Renames a LLaVA-LLaMA state dict (PEFT-wrapped or not), setting the LoRA factors aside."""
    original = OriginalWeights()
    for source, tensor in state.items():
        name = BASE_LAYER.sub(".", source.removeprefix(PEFT_PREFIX))
        lora = LORA_KEY.match(name)
        if lora is not None:
            module = _rename(lora["module"] + ".")
            if module is None:
                original.unknown.append(source)
            else:
                original.lora.setdefault(module[:-1], {})[lora["factor"]] = tensor
            continue
        target = _rename(name)
        if target is None:
            original.unknown.append(source)
        else:
            original.add(target, source, tensor)
    return original


def read_stage1(projector: dict[str, torch.Tensor], base_llm: str | os.PathLike) -> OriginalWeights:
    """The stage-1 projector, in either layout the original writes (`model.mm_projector.*` from
    `scripts/extract_mm_projector.py`, `base_model.model.model.mm_projector.*` from its stage-1 training with LoRA on),
    plus the base LLM's decoder and LM head."""
    original = OriginalWeights()
    for source, tensor in projector.items():
        target = _rename(source.removeprefix(PEFT_PREFIX))
        if target is None or not target.startswith(PROJECTOR_PREFIX):
            original.unknown.append(source)
        else:
            original.add(target, source, tensor)
    logger.info("Reading the decoder weights of %s", base_llm)
    decoder = AutoModelForCausalLM.from_pretrained(str(base_llm), dtype="auto", trust_remote_code=False)
    for source, tensor in decoder.state_dict().items():
        target = _rename(source)
        if target is None:
            original.unknown.append(f"{base_llm}: {source}")
        else:
            original.add(target, f"{base_llm}: {source}", tensor)
    return original


def use_patentmme_encoder(
    original: OriginalWeights, lightning_state: dict[str, torch.Tensor], encoder_config: LayoutLMv3Config
) -> None:
    """Adds PatentMME's encoder tensors (`model.*`) that `original` lacks; ignores the rest.

    A stage-2 checkpoint's copy of the encoder wins: the original loads PatentMME (`patentmme_enocder.py:38-40`) and
    then the whole stage-2 state dict over it (`finetuned_inference.py:116`). The copy is not PatentMME bit for bit
    (the training held the frozen encoder in bf16, `llava/train/train.py:927`), so this precedence matters.
    """
    with torch.device("meta"):
        encoder = LayoutLMv3Model(encoder_config)
    encoder_names = set(encoder.state_dict()) | {name for name, _ in encoder.named_buffers()}
    ignored, kept_copies = [], 0
    for source, tensor in lightning_state.items():
        name = source.removeprefix("model.")
        if not (source.startswith("model.") and name in encoder_names):
            ignored.append(source)
        elif VISION_PREFIX + name in original.weights:
            kept_copies += 1
        else:
            original.add(VISION_PREFIX + name, source, tensor)
    if kept_copies:
        logger.info(
            "Kept the checkpoint's copy of the encoder for %d tensors that PatentMME also has (as the original does).",
            kept_copies,
        )
    if ignored:
        logger.info(
            "Ignoring %d PatentMME tensors outside the encoder (pretraining heads): %s", len(ignored), preview(ignored)
        )


def preview(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED_KEYS])
    return shown if len(names) <= MAX_LISTED_KEYS else f"{shown}, ... and {len(names) - MAX_LISTED_KEYS} more"
