"""Generation throughput of `patentlmm describe`'s path against the original PatentLMM inference recipe, same weights.

Run from the repository root:

    python benchmarks/bench_generate.py                     # CPU, ~100M-parameter random model, 8 real figures
    python benchmarks/bench_generate.py --figures 16 --max-new-tokens 256 --batch-size 16   # detailed-length outputs
    python benchmarks/bench_generate.py --shape 7b          # CUDA only: LLaMA-2-7B + LayoutLMv3-large shapes
    VLLM_CPU_KVCACHE_SPACE=2 VLLM_CPU_OMP_THREADS_BIND=nobind \
        .venv-vllm/bin/python benchmarks/bench_generate.py --backend vllm --vllm-args '{"enforce_eager": true}'
    python benchmarks/bench_generate.py --shape 7b --backend vllm --vllm-args '{"gpu_memory_utilization": 0.45}'

Rows (generated tokens per second over the same figures; OCR words are computed once, before timing, and given to
both rows, so Tesseract is not timed; each row's time covers the processor and `generate`; after one warm-up
figure per row, `--repeat` passes, the rows interleaved):

1. `original recipe`: re-creates the original `finetuned_inference.py`: fp32, batches of 2 in input order (its
   DataLoader shuffled; no length sorting), its prompt `<image>\\nUSER: Write a brief description for this patent
   image.\\nASSISTANT:`, greedy, KV cache (LLaVA's `generate`). As in the original, the OCR of a batch is padded to
   its longest figure and the padded positions are fed to the decoder: each figure gets
   `padded_ocr_len - 1 + 577` image features. Here that is done by handing the processor the batch-padded OCR token
   ids with an all-ones mask (`ocr=`), so the decoder sees exactly the original's feature count. What differs: the
   encoder also attends to the pad tokens (the original masked them inside LayoutLMv3); the cost is the same.
   Attention is "eager" (scores materialised, softmax, matmul), as in the transformers 4.31.0 the original pins,
   whose LLaMA and LayoutLMv3 had no SDPA path (`--original-attention sdpa` gives this row today's kernels instead).
2. `describe`: `patentlmm.inference.generation.generate_batch` over `iter_descriptions`' batching: batches of
   `--batch-size`, sorted by OCR token count, each figure's real positions only, the default Vicuna-v1 prompt (~40
   tokens longer than the original's), SDPA attention, bf16 on a GPU (fp32 on CPU, where bf16 matmuls are not faster
   without AMX/AVX512-BF16), a static KV cache (preallocated: no copy of the cache at each step; `--cache dynamic`
   for transformers' default), image features encoded once on the prefill step.

3. `vllm` (with `--backend vllm`, in a Python with the `vllm` or `vllm-cpu` extra): `describe --backend vllm`'s
   path, `patentlmm.inference.vllm_backend.generate_batch` over the same batches as row 2, with row 2's weights (saved
   to a
   temporary folder and loaded by vLLM's Transformers backend in the same dtype). vLLM's engine runs in its own
   process (vLLM's default; run in this one, it would patch the decoder class the other rows' models use); its
   front end (the processor: resize, OCR tokens, no Tesseract) runs in this process, in the timed region.
   `--vllm-args` (JSON) goes to `vllm.LLM`: `enforce_eager` on a CPU (no Triton-CPU here, so no torch.compile),
   `gpu_memory_utilization` on a GPU, whose fp32 and bf16 copies of the model already hold memory in this process.

4. `describe (bfloat16)` and `describe (int8)` (on a CPU, `--cpu-precision`, default both): row 2 with the weights in
   bfloat16 (what `describe --dtype auto` picks where the CPU computes it natively: AMX or AVX512-BF16; the setup line
   names the flags found), and with the decoder's linear layers in torchao's weight-only int8 (`describe --quantize
   int8`, float32 activations; skipped with a note without torchao). Their `agree` column: the share of greedy steps
   whose token equals row 2's (float32) when both read row 2's tokens (teacher-forced, over the first batch).

Every row generates exactly `--max-new-tokens` tokens per figure (`min_new_tokens` = `max_new_tokens`: a random model
stops at arbitrary points otherwise), so tokens/s compare like for like. A warm-up batch precedes each row. The model
is random (`--shape 100m`: LayoutLMv3 hidden 384 x 2 layers + LLaMA hidden 768 x 8 layers, 32K vocabulary; `--shape
7b`: LayoutLMv3-large + LLaMA-2-7B shapes, built on the GPU), with the real tokenizers `patentlmm.assembly.tiny`
builds offline.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()

from modeling_patentlmm import PatentLMMForConditionalGeneration  # noqa: E402
from patentlmm.assembly.tiny import TinyModelArguments, build_tiny  # noqa: E402
from patentlmm.assets import FIGURES  # noqa: E402
from patentlmm.inference.describe import SORT_WINDOW_BATCHES  # noqa: E402
from patentlmm.inference.figures import Figure  # noqa: E402
from patentlmm.inference.generation import CACHES, DEFAULT_CACHE, generate_batch  # noqa: E402
from patentlmm.inference.precision import cpu_flags, native_bf16_flag, quantize_decoder  # noqa: E402
from processing import PatentLMMProcessor, build_prompt, load_image, run_tesseract, tokenize_ocr  # noqa: E402

# Decoder / encoder shapes: (text hidden, layers, heads, intermediate), (vision hidden, layers, heads, intermediate).
SHAPES = {
    "100m": ((768, 8, 12, 2048), (384, 2, 6, 768)),
    "7b": ((4096, 32, 32, 11008), (1024, 24, 16, 4096)),  # LLaMA-2-7B / Vicuna-7B, LayoutLMv3-large
}
Row = tuple[list[list[Figure]], Callable[[list[Figure]], None]]  # a row's batches and the function running one batch


def build_model(shape: str, device: str) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """A random fp32 PatentLMM of `shape`, created directly on `device`, and its processor."""
    small, processor = build_tiny(TinyModelArguments(text_layers=1, vision_layers=1))
    (t_hidden, t_layers, t_heads, t_inter), (v_hidden, v_layers, v_heads, v_inter) = SHAPES[shape]
    config = copy.deepcopy(small.config)
    text, vision = config.text_config, config.vision_config
    text.hidden_size, text.num_hidden_layers, text.intermediate_size = t_hidden, t_layers, t_inter
    text.num_attention_heads = text.num_key_value_heads = t_heads
    text.head_dim = t_hidden // t_heads
    vision.hidden_size, vision.num_hidden_layers, vision.intermediate_size = v_hidden, v_layers, v_inter
    vision.num_attention_heads = v_heads
    vision.coordinate_size = vision.shape_size = v_hidden // 6  # LayoutLMv3: 4 * coordinate + 2 * shape == hidden
    torch.manual_seed(0)
    with torch.device(device):
        model = PatentLMMForConditionalGeneration(config).eval()
    model.generation_config = small.generation_config
    return model, processor


def original_batch(
    model: PatentLMMForConditionalGeneration, processor: PatentLMMProcessor, figures: list[Figure], new_tokens: int
) -> None:
    """One batch of the original recipe: OCR padded to the batch's longest figure, every position fed to the LLM."""
    tokens = [
        tokenize_ocr(processor.ocr_tokenizer, f.ocr_words, f.ocr_boxes, processor.max_ocr_tokens) for f in figures
    ]
    length = max(len(ids) for ids, _ in tokens)
    pad = processor.ocr_tokenizer.pad_token_id
    ocr = [
        {"input_ids": ids + [pad] * (length - len(ids)), "bbox": boxes + [[0, 0, 0, 0]] * (length - len(ids))}
        for ids, boxes in tokens
    ]  # no attention_mask: the processor keeps every (padded) position, as the original's decoder saw them
    prompt = build_prompt("brief", "original_inference")
    inputs = processor(images=[f.image for f in figures], text=[prompt] * len(figures), ocr=ocr).to(model.device)
    model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)


def prepare(processor: PatentLMMProcessor, batch: list[Figure]) -> list:
    """`processor.prepare` of a batch with its precomputed OCR (timed: the describe rows' processor work)."""
    words, boxes = [f.ocr_words for f in batch], [f.ocr_boxes for f in batch]
    return processor.prepare([f.image for f in batch], ocr_words=words, ocr_boxes=boxes)


def describe_batches(
    model: PatentLMMForConditionalGeneration, processor: PatentLMMProcessor, figures: list[Figure], batch_size: int
) -> list[list[Figure]]:
    """`iter_descriptions`' batching within one sort window (`SORT_WINDOW_BATCHES` batches): longest OCR first."""
    figures = figures[: batch_size * SORT_WINDOW_BATCHES]
    lengths = [len(tokenize_ocr(processor.ocr_tokenizer, f.ocr_words, f.ocr_boxes)[0]) for f in figures]
    order = sorted(range(len(figures)), key=lambda i: -lengths[i])
    return [[figures[i] for i in sorted(order[s : s + batch_size])] for s in range(0, len(order), batch_size)]


def timed_pass(batches: list[list[Figure]], run: Callable[[list[Figure]], None]) -> float:
    """Seconds to run every batch once."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in batches:
        run(batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def parse_args() -> argparse.Namespace:
    """The command line's options (`--help`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="100m")
    parser.add_argument("--figures", type=int, default=8, help="real figures to describe (repeated if needed)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8, help="describe path's batch size")
    parser.add_argument("--original-attention", choices=["eager", "sdpa"], default="eager")
    parser.add_argument(
        "--cache", choices=CACHES, default=DEFAULT_CACHE, help="describe row's KV cache (default static)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="timed passes per row, rows interleaved")
    parser.add_argument("--images", type=Path, default=FIGURES)
    parser.add_argument(
        "--backend",
        "--engine",  # its old name
        dest="backend",
        choices=["transformers", "vllm"],
        default="transformers",
        help="vllm: add the vLLM row (3)",
    )
    parser.add_argument("--vllm-args", type=json.loads, default={}, help="JSON keyword arguments of vllm.LLM")
    parser.add_argument(
        "--cpu-precision",
        nargs="*",
        choices=["bfloat16", "int8"],
        default=["bfloat16", "int8"],
        help="CPU rows of row 2 in bfloat16 / with an int8 decoder (default: both; none: no such row)",
    )
    return parser.parse_args()


def load_figures(folder: Path, count: int) -> list[Figure]:
    """`count` of the PNG figures in `folder` (repeated if needed), each read by Tesseract once, before timing."""
    paths = sorted(folder.glob("*.png"))
    paths = [paths[i % len(paths)] for i in range(count)]
    figures = []
    for path in paths:
        image = load_image(path)
        words, boxes = run_tesseract(image)
        figures.append(Figure(path.stem, image, None, words, boxes))
    return figures


def print_setup(
    args: argparse.Namespace,
    model: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    figures: list[Figure],
    device: str,
) -> None:
    """Prints the libraries, the machine, the model's size and the figures' OCR token counts."""
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {platform.processor() or 'cpu'}, "
        f"{torch.get_num_threads()} threads, device {device}"
        + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else "")
    )
    flags = cpu_flags()
    found = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    print(
        f"CPU flags: {' '.join(found) or 'none of avx2/avx512f/avx512_bf16/amx_bf16'}; native bf16: "
        f"{native_bf16_flag(flags) or 'no'}"
    )
    ocr_lengths = [len(tokenize_ocr(processor.ocr_tokenizer, f.ocr_words, f.ocr_boxes)[0]) for f in figures]
    print(
        f"model {args.shape}: {parameters / 1e6:.1f}M parameters; {len(figures)} figures from {args.images}, "
        f"OCR tokens {ocr_lengths}; {args.max_new_tokens} new tokens per figure"
    )


def describe_model(model: PatentLMMForConditionalGeneration, device: str) -> PatentLMMForConditionalGeneration:
    """`model` itself on a CPU; on a GPU a bf16 (else fp16) copy of its weights, made without a second fp32 one."""
    if device != "cuda":
        return model
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    with torch.device(device):
        fast = type(model)._from_config(model.config, dtype=dtype).eval()
    fast.load_state_dict(model.state_dict())
    fast.generation_config = model.generation_config
    return fast


def transformers_rows(
    args: argparse.Namespace,
    model: PatentLMMForConditionalGeneration,
    fast: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    figures: list[Figure],
    prompt: str,
) -> dict[str, Row]:
    """Rows 1 (the original recipe, on `model`) and 2 (`describe`, on `fast`): label -> (batches, run one batch)."""

    def run_original(batch: list[Figure]) -> None:
        model.set_attn_implementation(args.original_attention)
        original_batch(model, processor, batch, args.max_new_tokens)

    def run_describe(batch: list[Figure]) -> None:
        fast.set_attn_implementation("sdpa")
        generate_batch(fast, processor, prepare(processor, batch), prompt, args.max_new_tokens, cache)

    cache = None if args.cache == "dynamic" else args.cache
    return {
        f"original ({args.original_attention})": (
            [figures[i : i + 2] for i in range(0, len(figures), 2)],
            run_original,
        ),
        f"describe ({str(fast.dtype).removeprefix('torch.')})": (
            describe_batches(fast, processor, figures, args.batch_size),
            run_describe,
        ),
    }


def vllm_row(
    args: argparse.Namespace,
    fast: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    figures: list[Figure],
    prompt: str,
    weights: str,
) -> tuple[str, Row]:
    """Row 3: vLLM over row 2's batches, with row 2's weights saved to the folder `weights`; prints vLLM's version."""
    import vllm

    from patentlmm.inference import vllm_backend

    fast.save_pretrained(weights)
    processor.save_pretrained(weights)
    dtype = str(fast.dtype).removeprefix("torch.")
    llm, _ = vllm_backend.load_vllm(weights, dtype, **args.vllm_args)
    new_tokens = args.max_new_tokens

    def run_vllm(batch: list[Figure]) -> None:
        prepared = prepare(processor, batch)
        vllm_backend.generate_batch(llm, processor, prepared, prompt, new_tokens, min_new_tokens=new_tokens)

    print(f"vllm {vllm.__version__}; torch threads after its start: {torch.get_num_threads()}")
    return f"vllm ({dtype})", (describe_batches(fast, processor, figures, args.batch_size), run_vllm)


def cpu_precision_rows(
    args: argparse.Namespace,
    fast: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    figures: list[Figure],
    prompt: str,
) -> tuple[dict[str, Row], dict[str, float]]:
    """Rows 4 (row 2 in bfloat16, with an int8 decoder) and each one's teacher-forced greedy agreement with row 2."""
    variants = {}
    if "bfloat16" in args.cpu_precision:
        variants["describe (bfloat16)"] = copy.deepcopy(fast).to(torch.bfloat16)
    if "int8" in args.cpu_precision:
        try:
            variants["describe (int8)"] = quantize_decoder(copy.deepcopy(fast), "int8")
        except ImportError as error:
            print(f"no int8 row: {error}")
    batches = describe_batches(fast, processor, figures, args.batch_size)
    reference = agreement_logits(fast, processor, batches[0], prompt, args.max_new_tokens)
    rows, agreement = {}, {}
    for label, model in variants.items():
        tokens = agreement_logits(model, processor, batches[0], prompt, args.max_new_tokens, reference[1])[0]
        agreement[label] = (tokens == reference[0]).float().mean().item()

        def run(batch: list[Figure], model=model) -> None:
            generate_batch(model, processor, prepare(processor, batch), prompt, args.max_new_tokens, "static")

        rows[label] = (batches, run)
    return rows, agreement


@torch.inference_mode()
def agreement_logits(model, processor, batch, prompt, new_tokens, sequence=None) -> tuple[torch.Tensor, dict]:
    """The greedy token `model` picks at each of `new_tokens` steps (B, new_tokens) reading `sequence` (default: its
    own greedy output, generated here), and that sequence's inputs."""
    if sequence is None:
        inputs = processor(images=prepare(processor, batch), text=[prompt] * len(batch), padding_side="left")
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        generated = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)
        mask = torch.ones(len(batch), new_tokens, dtype=inputs["attention_mask"].dtype)
        sequence = {**inputs, "input_ids": generated, "attention_mask": torch.cat([inputs["attention_mask"], mask], 1)}
    inputs = {**sequence, "pixel_values": sequence["pixel_values"].to(model.dtype)}
    return model(**inputs).logits[:, -new_tokens - 1 : -1].argmax(-1), sequence


def time_rows(rows: dict[str, Row], repeat: int) -> dict[str, float]:
    """One warm-up figure per row, then `repeat` timed passes over each row's batches: label -> seconds."""
    for batches, run in rows.values():
        run(batches[0][:1])  # warm-up
    seconds = dict.fromkeys(rows, 0.0)
    for _ in range(repeat):  # rows interleaved: a change in the machine's load hits both alike
        for label, (batches, run) in rows.items():
            seconds[label] += timed_pass(batches, run)
    return seconds


def print_table(
    rows: dict[str, Row], seconds: dict[str, float], figures: int, new_tokens: int, repeat: int, agreement: dict
) -> None:
    """Prints each row's batches, figures, seconds, tokens/s, ratio against the first row (the original recipe) and
    greedy agreement with row 2 where measured."""
    print(f"{'row':<20} {'batches':>7} {'figures':>7} {'seconds':>9} {'tokens/s':>10} {'ratio':>6} {'agree':>6}")
    rates = {label: repeat * figures * new_tokens / seconds[label] for label in rows}
    base = next(iter(rates.values()))
    for label, (batches, _) in rows.items():
        agree = f"{100 * agreement[label]:>5.1f}%" if label in agreement else ""
        print(
            f"{label:<20} {len(batches):>7} {figures:>7} {seconds[label]:>9.1f} {rates[label]:>10.1f} "
            f"{rates[label] / base:>5.2f}x {agree:>6}"
        )


def main() -> None:
    """Times the rows over the same figures; prints the setup and a table of tokens/s and ratios."""
    args = parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.shape == "7b" and device != "cuda":
        raise SystemExit("--shape 7b needs a CUDA GPU (28 GB of fp32 weights).")

    figures = load_figures(args.images, args.figures)
    model, processor = build_model(args.shape, device)
    model.generation_config.min_new_tokens = args.max_new_tokens  # both rows: exactly max_new_tokens per figure
    print_setup(args, model, processor, figures, device)
    fast = describe_model(model, device)  # same weights for every row
    prompt = build_prompt("brief")
    rows = transformers_rows(args, model, fast, processor, figures, prompt)
    agreement = {}
    if device == "cpu" and args.cpu_precision:
        extra, agreement = cpu_precision_rows(args, fast, processor, figures, prompt)
        rows.update(extra)
    if args.backend == "vllm":
        weights = tempfile.TemporaryDirectory()  # row 2's weights, as vLLM loads them: from a folder (kept to the end)
        label, row = vllm_row(args, fast, processor, figures, prompt, weights.name)
        rows[label] = row
    seconds = time_rows(rows, args.repeat)
    print_table(rows, seconds, len(figures), args.max_new_tokens, args.repeat, agreement)


if __name__ == "__main__":
    main()
