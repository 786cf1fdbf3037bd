"""PatentMME pretraining step: figures/s and peak memory, against the bare encoder's step in the same process
(docs/pretraining.md)."""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()
from transformers import LayoutLMv3Model  # noqa: E402

from modeling_patentlmm import PatentMMEConfig, PatentMMEForPreTraining  # noqa: E402
from modeling_patentlmm.modeling_patentmme import encoder_config  # noqa: E402
from modeling_patentlmm.visual_tokenizer_patentmme import TINY_VQGAN, PatentMMEVisualTokenizer  # noqa: E402
from patentlmm.assembly.tiny import TinyModelArguments, build_ocr_tokenizer, vision_config  # noqa: E402
from patentlmm.pretraining import PatentMMECollator  # noqa: E402
from processing.images import load_image  # noqa: E402

FIGURES = REPO_ROOT / "patentlmm" / "assets" / "figures"


def build_config(shape: str, input_size: int, ocr_tokenizer) -> PatentMMEConfig:
    """The tiny test encoder or LayoutLMv3-large (PatentMME's shape), with every task on."""
    if shape == "tiny":
        fields = vision_config(TinyModelArguments(input_size=input_size), ocr_tokenizer)
        return PatentMMEConfig(**fields, mim_vocab_size=TINY_VQGAN["num_embeddings"] + 1)
    return PatentMMEConfig(input_size=input_size, vocab_size=len(ocr_tokenizer))


def synthetic_rows(batch_size: int, words: int) -> list[dict]:
    """The bundled figures with `words` synthetic OCR words each (a grid of boxes: timing only, no Tesseract) and
    every fourth word a node around a numeral, so that all four tasks have targets."""
    paths = sorted(FIGURES.glob("*.png"))
    rows = []
    for index in range(batch_size):
        boxes = [
            [40 + 90 * (i % 10), 40 + 60 * (i // 10), 100 + 90 * (i % 10), 70 + 60 * (i // 10)] for i in range(words)
        ]
        nodes = [[max(0, x0 - 30), max(0, y0 - 30), x1 + 30, y1 + 30] for x0, y0, x1, y1 in boxes[::4]]
        rows.append({
            "image_id": paths[index % len(paths)].stem,
            "image": load_image(paths[index % len(paths)]),
            "ocr_words": [str(10 + i) for i in range(words)],
            "ocr_boxes": boxes,
            "layout_boxes": nodes + boxes,
            "layout_classes": [0] * len(nodes) + [1] * len(boxes),
        })  # fmt: skip
    return rows


def time_steps(model: torch.nn.Module, batch: dict, loss_of, steps: int, device: str) -> tuple[float, float]:
    """(seconds per optimizer step, peak memory in GiB) of forward, backward and AdamW on `batch`."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        loss_of(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step >= 2:
            times.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated()
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return sorted(times)[len(times) // 2], peak / 2**30


def pretraining_loss(model, batch):
    return model(**batch).loss


def encoder_loss(model, batch):  # the baseline: the same encoder, no masks, no heads
    inputs = {key: batch[key] for key in ("input_ids", "bbox", "attention_mask", "pixel_values")}
    return model(**inputs).last_hidden_state.float().pow(2).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", choices=["tiny", "large"], default="tiny", help="tiny (CPU) or LayoutLMv3-large")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--batch-size", type=int, default=4, help="figures per step (the authors': 4)")
    parser.add_argument("--input-size", type=int, default=384, help="figure side (PatentMME: 384)")
    parser.add_argument("--words", type=int, default=60, help="synthetic OCR words per figure")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()

    ocr_tokenizer = build_ocr_tokenizer()
    config = build_config(args.shape, args.input_size, ocr_tokenizer)
    tokenizer = PatentMMEVisualTokenizer.random(0, TINY_VQGAN, image_size=args.input_size)
    rows = [{**row, "visual_tokens": [0] * config.num_patches} for row in synthetic_rows(args.batch_size, args.words)]
    collator = PatentMMECollator(ocr_tokenizer, config, tokenizer if args.shape == "tiny" else None)
    start = time.perf_counter()
    batch = collator(rows)
    collate_seconds = time.perf_counter() - start
    dtype = getattr(torch, args.dtype)
    batch = {k: (v.to(args.device, dtype) if v.is_floating_point() else v.to(args.device)) for k, v in batch.items()}

    torch.manual_seed(0)
    model = PatentMMEForPreTraining(config).to(args.device, dtype)
    baseline = LayoutLMv3Model(encoder_config(config)).to(args.device, dtype)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable({"use_reentrant": False})
        baseline.gradient_checkpointing_enable({"use_reentrant": False})
    base_seconds, base_peak = time_steps(baseline, batch, encoder_loss, args.steps, args.device)
    del baseline
    step_seconds, peak = time_steps(model, batch, pretraining_loss, args.steps, args.device)

    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"PatentMME pretraining step, {args.shape} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
          f"parameters), {args.dtype}, batch {args.batch_size} x {config.num_patches} patches + <= {args.words} words, "
          f"gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}, {device}")  # fmt: skip
    print(f"{'':28}{'figures/s':>10}{'s/step':>9}{'peak GiB':>10}")
    print(f"{'encoder only (baseline)':28}{args.batch_size / base_seconds:10.2f}{base_seconds:9.3f}{base_peak:10.2f}")
    print(f"{'pretraining (4 tasks)':28}{args.batch_size / step_seconds:10.2f}{step_seconds:9.3f}{peak:10.2f}")
    print(f"pretraining / baseline step time: {step_seconds / base_seconds:.2f}x; collating the batch: "
          f"{args.batch_size / collate_seconds:.1f} figures/s")  # fmt: skip


if __name__ == "__main__":
    main()
