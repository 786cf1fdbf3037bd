"""`patentlmm convert-original`: the authors' PatentMME / PatentLMM checkpoints -> a Hugging Face PatentLMM folder.

Inputs (SPEC §5), all read with `torch.load(..., weights_only=True)`:
- PatentMME, a PyTorch Lightning `last.ckpt`: `["state_dict"]` holds the LayoutLMv3 encoder under `model.`;
  every other tensor there (the pretraining heads) is ignored and reported at INFO level. Required for stage 1.
  Optional for stage 2: its checkpoint carries the copy of the (frozen) encoder that the original ran, and that copy
  wins, as in the original, which loads PatentMME and then the stage-2 `module` state dict over it
  (`finetuned_inference.py:98-116`); PatentMME then only supplies encoder tensors the checkpoint lacks.
- Either a stage-2 DeepSpeed `mp_rank_00_model_states.pt` (`["module"]`: a PEFT-wrapped LLaVA-LLaMA with LoRA on
  the decoder, the `mm_projector`, a copy of the encoder, the embeddings and the LM head), or a stage-1
  `mm_projector.bin`, in either layout the original writes: `model.mm_projector.*` (`scripts/extract_mm_projector.py`)
  or `base_model.model.model.mm_projector.*` (its stage-1 training, run with `--lora_enable True`); the decoder is
  then the base LLM's.
- The base LLM folder (Hugging Face LLaMA/Vicuna): its config and tokenizer, and for stage 1 its weights.
- A LayoutLMv3 tokenizer for the OCR words (a folder or a Hub id such as `microsoft/layoutlmv3-large`).

Output: `PatentLMMForConditionalGeneration.save_pretrained` + `PatentLMMProcessor.save_pretrained` (safetensors only),
loadable with `AutoModelForImageTextToText` / `AutoProcessor` and `trust_remote_code=True`, in float32 by default:
the original inference ran the model in float32 (`finetuned_inference.py:83`; its bf16 casts, :93 and :104, are
commented out), so float32 reproduces its outputs; `--dtype bfloat16` halves the size (the training dtype; greedy
text may then part from the original's after some tokens). The encoder feeds the projector from its last layer
(`vision_feature_layer=-1`, see `PatentLMMConfig`), the layer the original actually used. The original marked the
image with a -200 sentinel id; here `<image>` is added to the decoder tokenizer (when absent) and the embeddings and
the LM head grow to cover it (new rows = the mean of the old ones; generation suppresses the token).
LoRA is merged, `W += (alpha / r) B A`, or with `--keep-adapter` written next to the unmerged weights as a PEFT
adapter (`adapter_config.json`, `adapter_model.safetensors`): `peft.PeftModel.from_pretrained(model, folder)` puts it
on a model, and transformers attaches it by itself when it loads the folder with PEFT installed (without PEFT it
loads the unmerged weights alone).

Example:
    patentlmm convert-original --patentmme PatentMME/last.ckpt \
        --checkpoint PatentLMM-brief/mp_rank_00_model_states.pt --base-llm vicuna-7b-v1.5 \
        --ocr-tokenizer microsoft/layoutlmv3-large --output patentlmm-brief-hf
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LayoutLMv3Config,
    LayoutLMv3Model,
    PreTrainedTokenizerBase,
)

from modeling_patentlmm import PatentLMMConfig, PatentLMMForConditionalGeneration
from modeling_patentlmm.configuration_patentlmm import PATENTMME_LARGE
from patentlmm.assembly.components import build_processor, prepare_decoder_tokenizer
from processing.constants import DEFAULT_IMAGE_TOKEN, DEFAULT_MAX_OCR_TOKENS
from processing.ocr import PAPER_OCR_ENGINE

__all__ = ["DEFAULT_LORA_ALPHA", "add_arguments", "convert_original", "run"]

logger = logging.getLogger(__name__)

DEFAULT_LORA_ALPHA = 256.0  # the original stage-2 training: LoRA r 128, alpha 256
DEFAULT_DTYPE = "float32"  # what the original inference ran (see the module docstring)
# The encoder output the original fed the projector: its `hidden_states[-2]` (patentmme_enocder.py:48) indexes the
# vendored LayoutLMv3's output object, whose -2 is the last layer (modelling_layoutv3.py:1011-1028); in transformers'
# `hidden_states` that is -1.
ORIGINAL_VISION_FEATURE_LAYER = -1
ORIGINAL_LORA_DROPOUT = 0.05  # LLaVA-1.5's LoRA dropout; only matters if the kept adapter is trained further
MAX_NEW_TOKENS = 512  # the saved generation config's cap (the original's max_length=512 also counted the prompt)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
MAX_LISTED_KEYS = 20

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
# Rotary frequencies are recomputed from the config; old LLaMA checkpoints stored one copy per layer.
ROTARY_BUFFER = re.compile(r"(?:^|\.)rotary_emb\.inv_freq$")


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


# ---------------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--patentmme",
        type=Path,
        metavar="PATH",
        help="PatentMME PyTorch Lightning checkpoint (last.ckpt), the encoder. Required with --projector; with "
        "--checkpoint the checkpoint's own copy of the encoder wins (as in the original) and PatentMME only fills "
        "in encoder tensors the checkpoint lacks.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="stage-2 PatentLMM DeepSpeed file (mp_rank_00_model_states.pt): decoder + LoRA, projector, encoder.",
    )
    source.add_argument(
        "--projector",
        type=Path,
        metavar="PATH",
        help="stage-1 mm_projector.bin (model.mm_projector.* or base_model.model.model.mm_projector.* keys); the "
        "decoder's weights then come from --base-llm.",
    )
    parser.add_argument(
        "--base-llm",
        type=Path,
        required=True,
        metavar="DIR",
        help="Hugging Face folder of the base LLM (Vicuna-7B v1.5): config and tokenizer, and weights for stage 1.",
    )
    parser.add_argument(
        "--ocr-tokenizer",
        required=True,
        metavar="DIR_OR_ID",
        help="LayoutLMv3 tokenizer for the OCR words: a local folder or a Hub id (microsoft/layoutlmv3-large).",
    )
    parser.add_argument("--output", type=Path, required=True, metavar="DIR", help="new (or empty) output folder.")
    parser.add_argument(
        "--keep-adapter",
        action="store_true",
        help="save the unmerged decoder plus the LoRA as a PEFT adapter in the same folder, instead of merging it.",
    )
    parser.add_argument(
        "--lora-alpha",
        type=float,
        default=DEFAULT_LORA_ALPHA,
        help="LoRA alpha of the training run (default: %(default)s); r is read from the LoRA weights.",
    )
    parser.add_argument(
        "--vision-config",
        type=Path,
        metavar="JSON_FILE",
        help="LayoutLMv3 config (JSON) of the encoder; default: PatentMME-large (LayoutLMv3-large at 384 px).",
    )
    parser.add_argument(
        "--dtype",
        choices=["auto", *DTYPES],
        default=DEFAULT_DTYPE,
        help="dtype of the saved weights (default: %(default)s, which reproduces the original inference; bfloat16 "
        "halves the size; auto keeps the checkpoints' dtype, bfloat16 for the official ones).",
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        output = convert_original(
            output=args.output,
            base_llm=args.base_llm,
            ocr_tokenizer=args.ocr_tokenizer,
            patentmme=args.patentmme,
            checkpoint=args.checkpoint,
            projector=args.projector,
            keep_adapter=args.keep_adapter,
            lora_alpha=args.lora_alpha,
            vision_config=args.vision_config,
            dtype=args.dtype,
        )
    except (FileNotFoundError, FileExistsError, ImportError, ValueError) as error:  # the documented input errors
        raise SystemExit(f"patentlmm convert-original: {error}") from error
    lora = "kept as a PEFT adapter" if args.keep_adapter else ("merged" if args.checkpoint else "none (stage 1)")
    print(f"PatentLMM written to {output} (LoRA: {lora}).")
    return 0


# ---------------------------------------------------------------------------------------------------------- API


def convert_original(
    output: str | os.PathLike,
    base_llm: str | os.PathLike,
    ocr_tokenizer: str | os.PathLike,
    patentmme: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    projector: str | os.PathLike | None = None,
    keep_adapter: bool = False,
    lora_alpha: float = DEFAULT_LORA_ALPHA,
    vision_config: str | os.PathLike | None = None,
    dtype: str = DEFAULT_DTYPE,
) -> Path:
    """Converts the original checkpoints (see the module docstring) and returns the output folder.

    Raises:
        FileNotFoundError: an input is missing.
        FileExistsError: `output` exists and is not an empty folder.
        ImportError: `keep_adapter` without PEFT installed.
        ValueError: the checkpoints hold tensors PatentLMM has no place for, miss some of its parameters, have
            other shapes than the configs, or hold pickled objects other than tensors and plain containers.
    """
    output = Path(output)
    _check_inputs(output, base_llm, patentmme, checkpoint, projector, keep_adapter, vision_config, dtype)
    encoder_config = _load_vision_config(vision_config)
    tokenizer = _load_decoder_tokenizer(base_llm)
    ocr = AutoTokenizer.from_pretrained(str(ocr_tokenizer))

    if checkpoint is not None:
        original = _read_llava(_load(checkpoint, "module"))
    else:
        original = _read_stage1(_load(projector), base_llm)
    if keep_adapter and not original.lora:
        raise ValueError(f"keep_adapter needs LoRA weights, but {checkpoint} holds none.")
    if patentmme is not None:
        _use_patentmme_encoder(original, _load(patentmme, "state_dict"), encoder_config)
    _cover_vocabulary(original.weights, tokenizer)
    torch_dtype = _resolve_dtype(dtype, original.weights)
    config = _build_config(encoder_config, base_llm, tokenizer, original.weights, torch_dtype)
    state_dict = _checked_state_dict(original, config)
    if original.lora and not keep_adapter:
        _merge_lora(state_dict, original.lora, lora_alpha, torch_dtype)

    model = PatentLMMForConditionalGeneration.from_pretrained(
        None, config=config, state_dict=_cast(state_dict, torch_dtype), dtype=torch_dtype
    )
    model.generation_config = _generation_config(config)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    if keep_adapter:
        _save_adapter(original.lora, lora_alpha, torch_dtype, output)
    build_processor(config, tokenizer, ocr, ocr_engine=PAPER_OCR_ENGINE).save_pretrained(output)
    logger.info("Saved PatentLMM (%.3fB parameters, %s) to %s", model.num_parameters() / 1e9, torch_dtype, output)
    return output


# ---------------------------------------------------------------------------------------------------------- inputs


def _check_inputs(
    output: Path,
    base_llm: str | os.PathLike,
    patentmme: str | os.PathLike | None,
    checkpoint: str | os.PathLike | None,
    projector: str | os.PathLike | None,
    keep_adapter: bool,
    vision_config: str | os.PathLike | None,
    dtype: str,
) -> None:
    """Fails fast, before any large file is read."""
    if (checkpoint is None) == (projector is None):
        raise ValueError(
            "Pass exactly one of checkpoint (stage-2 DeepSpeed file) or projector (stage-1 mm_projector.bin)."
        )
    if projector is not None and patentmme is None:
        raise ValueError("A stage-1 projector needs the PatentMME checkpoint (patentmme) for the encoder.")
    if keep_adapter and projector is not None:
        raise ValueError("keep_adapter needs a stage-2 checkpoint: a stage-1 projector carries no LoRA.")
    if keep_adapter and importlib.util.find_spec("peft") is None:
        raise ImportError("keep_adapter writes a PEFT adapter: `pip install peft` (or `patentlmm[train]`).")
    if dtype not in ("auto", *DTYPES):
        raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {dtype!r}.")
    files = {
        "PatentMME checkpoint (--patentmme)": patentmme,
        "DeepSpeed checkpoint (--checkpoint)": checkpoint,
        "stage-1 projector (--projector)": projector,
        "vision config (--vision-config)": vision_config,
    }
    for what, path in files.items():
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{what}: no file at {path}.")
    if not (Path(base_llm) / "config.json").is_file():
        raise FileNotFoundError(
            f"Base LLM (--base-llm): {base_llm} is not a Hugging Face model folder (no config.json)."
        )
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(f"Output (--output): {output} exists and is not an empty folder.")


def _load_vision_config(path: str | os.PathLike | None) -> LayoutLMv3Config:
    """PatentMME-large by default, else the LayoutLMv3 config in the JSON file `path`."""
    values = dict(PATENTMME_LARGE) if path is None else json.loads(Path(path).read_text(encoding="utf-8"))
    values.pop("model_type", None)
    return LayoutLMv3Config(**values)


def _load_decoder_tokenizer(base_llm: str | os.PathLike) -> PreTrainedTokenizerBase:
    """The base LLM's tokenizer, prepared for PatentLMM (`<image>` added when absent, `<unk>` padding on the left)."""
    tokenizer = AutoTokenizer.from_pretrained(str(base_llm))
    had_image_token = DEFAULT_IMAGE_TOKEN in tokenizer.get_vocab()
    prepare_decoder_tokenizer(tokenizer)
    if not had_image_token:
        logger.info(
            "Added %s to the decoder tokenizer as id %d (the original used the sentinel id -200).",
            DEFAULT_IMAGE_TOKEN,
            tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN),
        )
    return tokenizer


def _load(path: str | os.PathLike, entry: str | None = None) -> dict[str, torch.Tensor]:
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


# ---------------------------------------------------------------------------------------------------------- renaming


def _rename(name: str) -> str | None:
    """PatentLMM's name for an original (LLaVA-LLaMA) tensor name, or None when no rule applies."""
    for old, new in RENAMES:
        if name.startswith(old):
            return new + name[len(old) :]
    return None


def _read_llava(state: dict[str, torch.Tensor]) -> OriginalWeights:
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


def _read_stage1(projector: dict[str, torch.Tensor], base_llm: str | os.PathLike) -> OriginalWeights:
    """The stage-1 projector (either layout, see the module docstring) plus the base LLM's decoder and LM head."""
    original = OriginalWeights()
    for source, tensor in projector.items():
        target = _rename(source.removeprefix(PEFT_PREFIX))
        if target is None or not target.startswith(PROJECTOR_PREFIX):
            original.unknown.append(source)
        else:
            original.add(target, source, tensor)
    logger.info("Reading the decoder weights of %s", base_llm)
    decoder = AutoModelForCausalLM.from_pretrained(str(base_llm), dtype="auto")
    for source, tensor in decoder.state_dict().items():
        target = _rename(source)
        if target is None:
            original.unknown.append(f"{base_llm}: {source}")
        else:
            original.add(target, f"{base_llm}: {source}", tensor)
    return original


def _use_patentmme_encoder(
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
            "Ignoring %d PatentMME tensors outside the encoder (pretraining heads): %s", len(ignored), _preview(ignored)
        )


# ---------------------------------------------------------------------------------------------------------- model


def _embeddings(weights: dict[str, torch.Tensor]) -> torch.Tensor:
    if EMBEDDINGS_KEY not in weights:
        raise ValueError(
            f"No decoder embeddings ({EMBEDDINGS_KEY}, originally model.embed_tokens.weight) in the checkpoints."
        )
    return weights[EMBEDDINGS_KEY]


def _cover_vocabulary(weights: dict[str, torch.Tensor], tokenizer: PreTrainedTokenizerBase) -> None:
    """Grows the embeddings and the LM head by the `<image>` row when they lack it (new rows: the mean row)."""
    rows, vocab_size = _embeddings(weights).shape[0], len(tokenizer)
    if rows >= vocab_size:
        return
    if not rows == vocab_size - 1 == tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN):
        raise ValueError(
            f"The decoder tokenizer has {vocab_size} tokens but the embeddings only {rows} rows: the base LLM's "
            "tokenizer does not belong to these checkpoints."
        )
    for name in (EMBEDDINGS_KEY, LM_HEAD_KEY):
        if name in weights:
            matrix = weights[name]
            weights[name] = torch.cat([matrix, matrix.float().mean(dim=0, keepdim=True).to(matrix.dtype)])
    logger.info("Grew the embeddings and the LM head from %d to %d rows for %s.", rows, vocab_size, DEFAULT_IMAGE_TOKEN)


def _resolve_dtype(dtype: str, weights: dict[str, torch.Tensor]) -> torch.dtype:
    """`dtype` by name; "auto" is the dtype of the decoder embeddings in the checkpoints."""
    return _embeddings(weights).dtype if dtype == "auto" else DTYPES[dtype]


def _build_config(
    encoder_config: LayoutLMv3Config,
    base_llm: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase,
    weights: dict[str, torch.Tensor],
    torch_dtype: torch.dtype,
) -> PatentLMMConfig:
    """PatentLMM's config: the encoder's, the base LLM's (vocabulary as the embeddings), and the projector found."""
    text_config = AutoConfig.from_pretrained(str(base_llm))
    text_config.vocab_size = _embeddings(weights).shape[0]
    text_config.dtype = torch_dtype
    return PatentLMMConfig(
        vision_config=encoder_config,
        text_config=text_config,
        projector_type="mlp2x_gelu" if f"{PROJECTOR_PREFIX}linear_2.weight" in weights else "linear",
        vision_feature_layer=ORIGINAL_VISION_FEATURE_LAYER,
        image_token_id=tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN),
        max_ocr_tokens=min(DEFAULT_MAX_OCR_TOKENS, encoder_config.max_position_embeddings - 2),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _checked_state_dict(original: OriginalWeights, config: PatentLMMConfig) -> dict[str, torch.Tensor]:
    """The tensors PatentLMM loads, after checking that they cover its parameters exactly and have their shapes.

    Buffers that the model recomputes (position ids, rotary frequencies) are dropped; anything else that does not fit
    raises a `ValueError` that lists the names.
    """
    with torch.device("meta"):
        model = PatentLMMForConditionalGeneration(config)
    expected = model.state_dict()
    recomputed = {name for name, _ in model.named_buffers()} - set(expected)
    state_dict = {}
    unknown = list(original.unknown)
    for name, tensor in original.weights.items():
        if name in recomputed or ROTARY_BUFFER.search(name):
            continue
        if name in expected:
            state_dict[name] = tensor
        else:
            unknown.append(f"{original.origin[name]} (as {name})")
    unknown += [f"LoRA of {module}" for module in original.lora if f"{module}.weight" not in expected]
    missing = [name for name in expected if name not in state_dict]
    mismatched = [
        f"{name} {tuple(tensor.shape)} vs {tuple(expected[name].shape)}"
        for name, tensor in state_dict.items()
        if tensor.shape != expected[name].shape
    ]
    mismatched += _lora_problems(original.lora, expected)
    if unknown or missing or mismatched:
        raise ValueError(_fit_report(unknown, missing, mismatched))
    return state_dict


def _lora_problems(lora: dict[str, dict[str, torch.Tensor]], expected: dict[str, torch.Tensor]) -> list[str]:
    """LoRA modules with a factor missing, or whose `B @ A` does not have the shape of the layer's weight."""
    problems = []
    for module, factors in lora.items():
        if set(factors) != {"A", "B"}:
            problems.append(f"{module}: LoRA factor(s) {sorted(factors)} only, A and B needed")
            continue
        weight = expected.get(f"{module}.weight")  # None: reported as unknown
        a, b = tuple(factors["A"].shape), tuple(factors["B"].shape)
        if weight is not None and (a[0] != b[1] or (b[0], a[1]) != tuple(weight.shape)):
            problems.append(f"{module}: LoRA A {a} and B {b} do not fit the layer's weight {tuple(weight.shape)}")
    return problems


def _fit_report(unknown: list[str], missing: list[str], mismatched: list[str]) -> str:
    lines = ["The original checkpoints do not fit PatentLMM's parameters:"]
    if unknown:
        lines.append(f"- {len(unknown)} tensor(s) with no PatentLMM parameter to receive them: {_preview(unknown)}")
    if missing:
        lines.append(f"- {len(missing)} PatentLMM parameter(s) that no checkpoint provides: {_preview(missing)}")
        if any(name.startswith(VISION_PREFIX) for name in missing):
            lines.append("  (the encoder comes from --patentmme, or from the DeepSpeed checkpoint's copy)")
    if mismatched:
        lines.append(f"- {len(mismatched)} shape mismatch(es), checkpoint vs PatentLMM: {_preview(mismatched)}")
        if any(item.startswith(VISION_PREFIX) for item in mismatched):
            lines.append(
                "  (the encoder's shapes come from --vision-config, by default PatentMME-large = LayoutLMv3-large "
                "at 384 px: pass the LayoutLMv3 config the encoder was trained with)"
            )
    return "\n".join(lines)


def _preview(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED_KEYS])
    return shown if len(names) <= MAX_LISTED_KEYS else f"{shown}, ... and {len(names) - MAX_LISTED_KEYS} more"


def _merge_lora(
    state_dict: dict[str, torch.Tensor], lora: dict[str, dict[str, torch.Tensor]], alpha: float, dtype: torch.dtype
) -> None:
    """W += (alpha / r) B A for every LoRA module (r = the rows of A), computed in float32 and stored in `dtype`."""
    for module, factors in lora.items():
        name = f"{module}.weight"
        a, b = factors["A"].float(), factors["B"].float()
        state_dict[name] = (state_dict[name].float() + (alpha / a.shape[0]) * (b @ a)).to(dtype)
    ranks = sorted({factors["A"].shape[0] for factors in lora.values()})
    logger.info("Merged LoRA into %d layers (r %s, alpha %g).", len(lora), "/".join(map(str, ranks)), alpha)


def _cast(state_dict: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {name: t.to(dtype) if t.is_floating_point() else t for name, t in state_dict.items()}


def _generation_config(config: PatentLMMConfig) -> GenerationConfig:
    """Greedy decoding, at most 512 new tokens; `<image>` is never generated.

    The original's `generate(max_length=512)` (`finetuned_inference.py:135`) counted its prompt too (the figure as one
    token): `describe --prompt-format original_inference` caps the new tokens the same way.
    """
    return GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        do_sample=False,
        max_new_tokens=MAX_NEW_TOKENS,
        suppress_tokens=[config.image_token_id],
    )


# ---------------------------------------------------------------------------------------------------------- outputs


def _save_adapter(lora: dict[str, dict[str, torch.Tensor]], alpha: float, dtype: torch.dtype, output: Path) -> None:
    """Writes `adapter_config.json` and `adapter_model.safetensors` as `PeftModel.save_pretrained` would."""
    from peft import LoraConfig

    ranks = {factors["A"].shape[0] for factors in lora.values()}
    if len(ranks) != 1:
        raise ValueError(f"keep_adapter needs one LoRA rank for all layers, found {sorted(ranks)}.")
    LoraConfig(
        r=ranks.pop(),
        lora_alpha=alpha,
        lora_dropout=ORIGINAL_LORA_DROPOUT,
        target_modules=sorted(lora),
        bias="none",
    ).save_pretrained(str(output))
    tensors = {
        f"{PEFT_PREFIX}{module}.lora_{factor}.weight": tensor.to(dtype).contiguous()
        for module, factors in sorted(lora.items())
        for factor, tensor in sorted(factors.items())
    }
    save_file(tensors, str(output / "adapter_model.safetensors"), metadata={"format": "pt"})
    logger.info("Saved the LoRA of %d layers as a PEFT adapter.", len(lora))
