"""`patentlmm describe`: write brief or detailed descriptions of patent figures with a PatentLMM model.

patentlmm describe --model ./my-patentlmm --type brief fig1.png fig2.png
patentlmm describe --model ./my-patentlmm --type detailed --output descriptions.jsonl figures/*.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from modeling_patentlmm import PatentLMMForConditionalGeneration
from processing import PatentLMMProcessor, build_prompt
from processing.constants import DESCRIPTION_TYPES
from processing.prompts import PROMPT_FORMATS

__all__ = ["add_arguments", "describe_figures", "load_model_and_processor", "run"]


def load_model_and_processor(
    model_name_or_path: str, device: str | None = None, dtype: str = "auto"
) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """Loads a PatentLMM folder or Hub repo; bf16 on a GPU that supports it, else fp32, unless `dtype` says."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
    model = PatentLMMForConditionalGeneration.from_pretrained(model_name_or_path, dtype=getattr(torch, dtype))
    processor = PatentLMMProcessor.from_pretrained(model_name_or_path)
    return model.to(device).eval(), processor


@torch.inference_mode()
def describe_figures(
    model: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    images: Sequence,
    desc_type: str = "brief",
    prompt_format: str = "vicuna_v1",
    max_new_tokens: int = 512,
    batch_size: int = 4,
    progress: bool = False,
) -> list[str]:
    """Greedy descriptions of `images` (paths, bytes or PIL images), in order, with the original's 512-token cap."""
    prompt = build_prompt(desc_type, prompt_format)
    descriptions: list[str] = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="describing", unit="batch", disable=not progress):
        batch = list(images[start : start + batch_size])
        inputs = processor(images=batch, text=[prompt] * len(batch), padding_side="left").to(model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]  # (B, <= max_new_tokens)
        descriptions.extend(processor.batch_decode(new_tokens))
    return descriptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, help="figure image files")
    parser.add_argument("--model", required=True, help="PatentLMM folder or Hub repo id")
    parser.add_argument("--type", dest="desc_type", choices=DESCRIPTION_TYPES, default="brief")
    parser.add_argument("--prompt-format", choices=PROMPT_FORMATS, default="vicuna_v1")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--output", type=Path, default=None, help="write JSONL here instead of printing")


def run(args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.images if not path.is_file()]
    if missing:
        raise SystemExit(f"patentlmm describe: no such image file(s): {', '.join(missing)}")
    model, processor = load_model_and_processor(args.model, args.device, args.dtype)
    predictions = describe_figures(
        model,
        processor,
        [str(path) for path in args.images],
        desc_type=args.desc_type,
        prompt_format=args.prompt_format,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        progress=True,
    )
    rows = [
        {"image_id": path.stem, "type": args.desc_type, "prediction": prediction}
        for path, prediction in zip(args.images, predictions)
    ]
    if args.output is None:
        for row in rows:
            print(f"{row['image_id']}\t{row['prediction']}")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_name(args.output.name + ".tmp")
    temporary.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    temporary.replace(args.output)
    print(f"Wrote {len(rows)} descriptions to {args.output}", file=sys.stderr)
    return 0
