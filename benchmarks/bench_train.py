"""Training throughput of `patentlmm.training`'s trainer: tokens/s, peak memory, MFU on a GPU (docs/training.md)."""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()
from datasets import Dataset  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from trl import ModelConfig, SFTConfig  # noqa: E402

from modeling_patentlmm import PatentLMMForConditionalGeneration  # noqa: E402
from modeling_patentlmm.configuration_patentlmm import PATENTMME_LARGE  # noqa: E402
from patentlmm.assembly.components import build_config, build_processor  # noqa: E402
from patentlmm.assembly.tiny import build_decoder_tokenizer, build_ocr_tokenizer, build_tiny  # noqa: E402
from patentlmm.training import PatentLMMSFTTrainer, build_trainer, lora_config, to_prompt_completion  # noqa: E402
from patentlmm.training.arguments import PROMPT_FORMAT_OF_STAGE  # noqa: E402
from processing import run_tesseract  # noqa: E402
from processing.collator import PatentLMMCollator  # noqa: E402
from processing.images import load_image  # noqa: E402

FIGURES = REPO_ROOT / "patentlmm" / "assets" / "figures"
# Dense bf16 peak of the GPU (TFLOP/s), by a substring of its name.
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A10": 125.0}


def build_model(shape: str, dtype: torch.dtype, device: str):
    """(model, processor) with random weights: the tiny test model or a 7B-shaped one (built on `device`)."""
    if shape == "tiny":
        model, processor = build_tiny()
        return model.to(device=device, dtype=dtype), processor
    tokenizer, ocr_tokenizer = build_decoder_tokenizer(), build_ocr_tokenizer()
    text_config = {
        "model_type": "llama",  # LLaMA-2-7B's shape: transformers' LlamaConfig defaults
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 4096,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = build_config(tokenizer, dict(PATENTMME_LARGE), text_config)
    config.text_config._attn_implementation = config._attn_implementation = "sdpa"
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with torch.device(device):
        model = PatentLMMForConditionalGeneration(config)
    torch.set_default_dtype(default_dtype)
    return model, build_processor(config, tokenizer, ocr_tokenizer)


def rows(repeat: int, prompt_format: str, end_token: str) -> Dataset:
    """The bundled figures as prompt/completion training rows (OCR by Tesseract, once), `repeat` times over."""
    descriptions = json.loads((FIGURES / "descriptions.json").read_text(encoding="utf-8"))
    columns = {"image": [], "description": [], "ocr_words": [], "ocr_boxes": []}
    for image_id, entry in sorted(descriptions.items()):
        image = load_image(FIGURES / f"{image_id}.png")
        words, boxes = run_tesseract(image)
        image.thumbnail((768, 768))  # the encoder sees 384 px; a smaller file keeps decoding out of the timings
        for key, value in zip(columns, (image, entry["brief_description"], words, boxes)):
            columns[key].extend([value] * repeat)
    return to_prompt_completion(Dataset.from_dict(columns), "brief", prompt_format, end_token)


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step (synchronised on a GPU)."""

    def __init__(self):
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        _synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        _synchronize()
        self.times.append(time.perf_counter() - self._start)


class CountingCollator(PatentLMMCollator):
    """The collator, remembering the decoder and encoder tokens of each batch it builds."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokens: list[tuple[int, int]] = []

    def __call__(self, batch_rows):
        batch = super().__call__(batch_rows)
        encoder = int(batch["ocr_attention_mask"].sum()) + batch["pixel_values"].shape[0] * (
            self.processor.num_image_patches
        )
        self.tokens.append((int(batch["attention_mask"].sum()), encoder))
        return batch


def counted_parameters(model: PatentLMMForConditionalGeneration) -> tuple[int, int]:
    """(decoder parameters without the input embeddings, LM head included; encoder parameters). Call it before PEFT
    wraps the model, so that LoRA's own parameters are not counted."""
    decoder = sum(p.numel() for p in model.model.language_model.parameters())
    decoder += model.lm_head.weight.numel() - model.get_input_embeddings().weight.numel()
    return decoder, sum(p.numel() for p in model.model.vision_tower.parameters())


def model_flops(parameters: tuple[int, int], text_config, decoder_tokens: int, encoder_tokens: int, seq: int) -> float:
    """Counted training FLOPs (module docstring): decoder forward + activation backward, encoder forward."""
    decoder, encoder = parameters
    attention = 4 * text_config.num_hidden_layers * seq * text_config.hidden_size  # per token, forward
    return 2 * (2 * decoder + attention) * decoder_tokens + 2 * encoder * encoder_tokens


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", choices=["tiny", "7b"], default="tiny")
    parser.add_argument("--stage", type=int, choices=[1, 2], default=2)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--lora_r", type=int, default=128)
    parser.add_argument("--lora_alpha", type=int, default=256)
    parser.add_argument("--no_gradient_checkpointing", action="store_true")
    parser.add_argument("--attn_implementation", default="sdpa")
    parser.add_argument("--peak_tflops", type=float, help="the GPU's dense bf16 peak; default: by its name")
    return parser.parse_args(argv)


def training_arguments(args: argparse.Namespace, output: str, gpu: bool) -> SFTConfig:
    """One optimizer step per batch, no checkpoints, no reporting; bf16 on a GPU, float32 on the CPU."""
    total_steps = args.warmup + args.steps
    return SFTConfig(
        output_dir=output,
        max_steps=total_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=2e-4,
        bf16=gpu,
        use_cpu=not gpu,
        gradient_checkpointing=not args.no_gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        dataloader_num_workers=0,
        save_strategy="no",
        report_to="none",
        logging_steps=total_steps,
        disable_tqdm=True,
    )


def report(
    args: argparse.Namespace,
    model: PatentLMMForConditionalGeneration,
    trainer: PatentLMMSFTTrainer,
    timer: StepTimer,
    collator: CountingCollator,
    parameters: tuple[int, int],
    dtype: torch.dtype,
    gpu: bool,
) -> None:
    """Prints the device, the configuration and what the timed steps measured."""
    timed = slice(args.warmup, args.warmup + args.steps)
    seconds = sum(timer.times[timed])
    decoder_tokens = sum(d for d, _ in collator.tokens[timed])
    encoder_tokens = sum(e for _, e in collator.tokens[timed])
    seq = decoder_tokens // max(1, args.steps * args.batch_size)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    if gpu:
        name = torch.cuda.get_device_name()
        peak_memory = torch.cuda.max_memory_allocated() / 2**30
        where = f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    else:
        peak_memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        where = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads), torch {torch.__version__}"
    print(f"device: {where}; transformers {transformers.__version__}")
    print(
        f"config: shape={args.shape} stage={args.stage} dtype={str(dtype).removeprefix('torch.')} "
        f"batch={args.batch_size} gradient_checkpointing={not args.no_gradient_checkpointing} "
        f"attn={args.attn_implementation} lora_r={args.lora_r if args.stage == 2 else '-'} "
        f"trainable={trainable / 1e6:.2f}M of {sum(p.numel() for p in trainer.model.parameters()) / 1e6:.1f}M"
    )
    print(f"steps timed: {args.steps} (after {args.warmup} warm-up), mean decoder length {seq} tokens")
    print(f"step time: {seconds / args.steps:.3f} s")
    print(f"training tokens/s: {decoder_tokens / seconds:,.0f} (decoder), {encoder_tokens / seconds:,.0f} (encoder)")
    print(f"peak memory: {peak_memory:.2f} GiB ({'GPU allocated' if gpu else 'process peak RSS'})")
    if gpu:
        peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
        flops = model_flops(parameters, model.config.text_config, decoder_tokens, encoder_tokens, seq)
        achieved = flops / seconds
        if peak is None:
            print(f"model TFLOP/s: {achieved / 1e12:.1f} (MFU: unknown peak for {name}; pass --peak_tflops)")
        else:
            print(f"model TFLOP/s: {achieved / 1e12:.1f}; MFU: {100 * achieved / (peak * 1e12):.1f}% of {peak} bf16")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    gpu = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if gpu else ("cpu", torch.float32)
    torch.manual_seed(0)
    model, processor = build_model(args.shape, dtype, device)
    model.config._attn_implementation = args.attn_implementation
    model.config.text_config._attn_implementation = args.attn_implementation
    if args.stage == 1:
        model.requires_grad_(False)
        model.model.multi_modal_projector.requires_grad_(True)
    parameters = counted_parameters(model)
    repeat = -(-(args.warmup + args.steps) * args.batch_size // 5)
    dataset = rows(repeat, PROMPT_FORMAT_OF_STAGE[args.stage], processor.tokenizer.eos_token)
    collator = CountingCollator(processor, max_length=2048)
    timer = StepTimer()
    lora = ModelConfig(lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.05)
    with tempfile.TemporaryDirectory() as output:
        trainer = build_trainer(
            model,
            processor,
            training_arguments(args, output, gpu),
            collator,
            dataset,
            peft_config=lora_config(lora) if args.stage == 2 else None,
            mm_projector_lr=2e-5 if args.stage == 2 else None,
            callbacks=[timer],
        )
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
    report(args, model, trainer, timer, collator, parameters, dtype, gpu)


if __name__ == "__main__":
    main()
