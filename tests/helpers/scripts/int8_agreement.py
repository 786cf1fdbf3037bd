"""Prints, as JSON, how often the torchao int8 decoder of the tiny PatentLMM picks float32's greedy token.

Run by tests/patentlmm/inference/test_precision.py with torchao on PYTHONPATH (`scripts/test.sh` installs it into
.torchao/, outside the test virtualenv: imported, torchao prints warnings to stderr in every process)."""

from __future__ import annotations

import copy
import json

import torch

from patentlmm.assembly.tiny import build_tiny
from patentlmm.assets import FIGURES
from patentlmm.inference.precision import quantize_decoder
from processing import build_prompt

IDS = ["US20250204297A1__1", "US20250204297A1__8", "US20250204297A1__12"]
STEPS = 24


def main() -> None:
    model, processor = build_tiny()
    quantized = quantize_decoder(copy.deepcopy(model), "int8")
    prepared = processor.prepare([str(FIGURES / f"{image_id}.png") for image_id in IDS])
    inputs = processor(images=prepared, text=[build_prompt("brief", "vicuna_v1")] * len(IDS), padding_side="left")
    with torch.inference_mode():
        generated = model.generate(**inputs, max_new_tokens=STEPS, min_new_tokens=STEPS, do_sample=False)
        ones = torch.ones(len(IDS), STEPS, dtype=torch.long)
        full = {**inputs, "input_ids": generated, "attention_mask": torch.cat([inputs["attention_mask"], ones], 1)}
        steps = slice(-STEPS - 1, -1)  # the logits that chose each new token
        reference = model(**full).logits[:, steps].argmax(-1)
        int8 = quantized(**full).logits[:, steps].argmax(-1)
    report = {
        "lm_head": type(quantized.lm_head.weight).__name__,
        "encoder": type(quantized.model.vision_tower.encoder.layer[0].attention.self.query.weight).__name__,
        "teacher_forced": torch.equal(reference, generated[:, -STEPS:]),
        "agreement": (reference == int8).float().mean().item(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
