"""Throughput of `PatentLMMProcessor` against the original PatentLMM preprocessing, in one process.

Run from the repository root:

    python benchmarks/bench_processor.py                     # the 19 bundled figures (patentlmm/assets/figures/)
    python benchmarks/bench_processor.py --images DIR --repeat 3

Rows (images per second, one figure per call, ratios against the first row):

1. `original`: what the original code did per figure: `Image.open(path).convert("RGB")`,
   `LayoutLMv3ImageProcessor(apply_ocr=True)` (Tesseract + resize + normalise), then the LayoutLMv3 tokenizer on
   the words and boxes (truncated and padded to 512). Tesseract runs with its default OpenMP threading, as in the
   original: `OMP_THREAD_LIMIT` is removed from the environment for this row (Tesseract reads it when it starts).
2. `original, OMP_THREAD_LIMIT=1`: the same code with Tesseract on one thread, to show how much of the gap is
   Tesseract's threading alone.
3. `processor, Tesseract`: `processor(images=path, text=prompt)`; `processing.ocr_tesseract.run_tesseract` sets
   `OMP_THREAD_LIMIT=1` unless the environment already sets it (the benchmark restores the caller's value).
4. `processor, ocr_words/ocr_boxes`: the same with the words and boxes of row 1's OCR pass (no Tesseract).
5. `processor, ocr= token ids`: the same with row 1's token ids in the official `ocr.json` shape
   `{"input_ids": [[...]], "attention_mask": [[...]], "bbox": [[[...]]]}` (no Tesseract, no OCR tokenizer).
6. `processor, Tesseract, one batch`: all figures in one call; the processor OCRs them concurrently, one
   single-threaded Tesseract per core (`num_ocr_workers`, default: the core count). Timed after rows 1-5.

The processor rows also tokenise a prompt for the decoder and pad the figure to a square, which the original
rows do not: the ratios are conservative. Both sides use the processor's image size, mean and std. After one
untimed warm-up figure per row, each figure goes through all rows in turn (rows interleaved, so a change in the
machine's load hits every row alike); each call is timed alone and images/s = calls / summed seconds. Nothing is
asserted on timings; the OCR token ids of rows 3-5 are checked against row 1's. The tokenizers are the real ones
`patentlmm.assembly.tiny` builds offline (LayoutLMv3's byte-level BPE for OCR, a LLaMA SentencePiece for the prompt).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO_ROOT))

import pytesseract  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()  # before the LayoutLMv3 imports: no torchvision -> PIL backend notice
from PIL import Image  # noqa: E402
from transformers import LayoutLMv3ImageProcessor  # noqa: E402

from patentlmm.assembly.tiny import build_tiny  # noqa: E402
from patentlmm.assets import FIGURES  # noqa: E402
from processing import PatentLMMProcessor  # noqa: E402
from processing.constants import DEFAULT_MAX_OCR_TOKENS  # noqa: E402
from processing.prompts import build_prompt  # noqa: E402

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
OMP_VAR = "OMP_THREAD_LIMIT"


def default_image_dir() -> Path:
    return FIGURES


def list_images(folder: Path) -> list[Path]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"No images in {folder}.")
    return paths


@contextmanager
def omp_thread_limit(value: str | None) -> Iterator[None]:
    """Sets (or, with None, removes) `OMP_THREAD_LIMIT` for the Tesseract subprocesses started inside."""
    previous = os.environ.get(OMP_VAR)
    if value is None:
        os.environ.pop(OMP_VAR, None)
    else:
        os.environ[OMP_VAR] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(OMP_VAR, None)
        else:
            os.environ[OMP_VAR] = previous


class Row:
    """One way of preparing a figure, timed call by call. `inputs(i)` (untimed) gives the call's extra arguments."""

    def __init__(
        self,
        name: str,
        omp: str | None,
        run_one: Callable[..., Any],
        inputs: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        self.name, self.omp, self.run_one, self.inputs = name, omp, run_one, inputs
        self.seconds = 0.0
        self.calls = 0
        self.outputs: dict[int, Any] = {}

    def __call__(self, index: int, timed: bool) -> None:
        kwargs = self.inputs(index) if self.inputs is not None else {}
        with omp_thread_limit(self.omp):
            start = time.perf_counter()
            output = self.run_one(index, **kwargs)
            elapsed = time.perf_counter() - start
        self.outputs[index] = output
        if timed:
            self.seconds += elapsed
            self.calls += 1

    @property
    def images_per_second(self) -> float:
        return self.calls / self.seconds


def original_way(image_processor: LayoutLMv3ImageProcessor, ocr_tokenizer: Any, path: Path) -> dict[str, Any]:
    """One figure as the original code prepared it: OCR + pixels, then LayoutLMv3 tokens (padded to 512)."""
    image = Image.open(path).convert("RGB")
    features = image_processor(image, return_tensors="pt")
    words, boxes = features["words"][0], features["boxes"][0]
    encoding = ocr_tokenizer(
        words,
        boxes=boxes,
        truncation=True,
        max_length=DEFAULT_MAX_OCR_TOKENS,
        padding="max_length",
        return_tensors="pt",
    )
    return {"pixel_values": features["pixel_values"], "words": words, "boxes": boxes, "encoding": encoding}


def unpadded_ids(encoding: Any) -> list[int]:
    ids, mask = encoding["input_ids"][0].tolist(), encoding["attention_mask"][0].tolist()
    return [token for token, keep in zip(ids, mask, strict=True) if keep]


def processor_ids(features: Any) -> list[int]:
    ids, mask = features["ocr_input_ids"][0].tolist(), features["ocr_attention_mask"][0].tolist()
    return [token for token, keep in zip(ids, mask, strict=True) if keep]


def cpu_description() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{usable} usable of {os.cpu_count()} logical cores ({platform.machine()}, {platform.processor() or '?'})"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images",
        type=Path,
        default=default_image_dir(),
        help="folder of figures (default: the bundled patentlmm/assets/figures/)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed passes over the figures per row (default 1)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def original_image_processor(processor: PatentLMMProcessor) -> LayoutLMv3ImageProcessor:
    """The original's image processor (Tesseract OCR on) with the processor's image size, mean and std."""
    ours = processor.image_processor
    return LayoutLMv3ImageProcessor(
        apply_ocr=True, size=dict(ours.size), image_mean=ours.image_mean, image_std=ours.image_std
    )


def build_rows(
    paths: list[Path],
    processor: PatentLMMProcessor,
    original_ip: LayoutLMv3ImageProcessor,
    prompt: str,
    caller_omp: str | None,
) -> list[Row]:
    """Rows 1-5 of the module docstring, in the order they run on each figure (rows 4-5 reuse row 1's OCR)."""

    def original(i: int) -> dict[str, Any]:
        return original_way(original_ip, processor.ocr_tokenizer, paths[i])

    def precomputed_words(i: int) -> dict[str, Any]:  # row 1's OCR of the same figure
        output = rows[0].outputs[i]
        return {"ocr_words": [output["words"]], "ocr_boxes": [output["boxes"]]}

    def precomputed_tokens(i: int) -> dict[str, Any]:  # row 1's tokens in the ocr.json shape (batch of one, padded)
        encoding = rows[0].outputs[i]["encoding"]
        return {"ocr": {key: encoding[key].tolist() for key in ("input_ids", "attention_mask", "bbox")}}

    def ours(i: int, **ocr: Any) -> Any:
        return processor(images=paths[i], text=prompt, **ocr)

    rows = [
        Row("original (LayoutLMv3ImageProcessor OCR + tokenizer)", None, original),
        Row("original, OMP_THREAD_LIMIT=1", "1", original),
        Row("processor, Tesseract", caller_omp, ours),
        Row("processor, ocr_words/ocr_boxes", caller_omp, ours, precomputed_words),
        Row("processor, ocr= token ids", caller_omp, ours, precomputed_tokens),
    ]
    return rows


def load_average() -> tuple[float, float, float] | None:
    """The machine's load averages (1, 5, 15 minutes), None where the platform has none."""
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def print_header(
    paths: list[Path], args: argparse.Namespace, original_ip: LayoutLMv3ImageProcessor, caller_omp: str | None
) -> None:
    """Prints the figures, the CPU, Tesseract's and the libraries' versions and the caller's OMP_THREAD_LIMIT."""
    print(f"figures:     {len(paths)} from {args.images} (repeat {args.repeat}, plus 1 warm-up figure)")
    print(f"cpu:         {cpu_description()}; torch threads {torch.get_num_threads()}")
    print(f"tesseract:   {pytesseract.get_tesseract_version()} (pytesseract {pytesseract.__version__})")
    print(
        f"versions:    python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__} ({type(original_ip).__name__})"
    )
    print(f"caller's {OMP_VAR}: {caller_omp if caller_omp is not None else '(unset)'}")


def time_rows(rows: list[Row], figures: int, repeat: int) -> None:
    """Runs each row once untimed on the first figure, then `repeat` timed passes over the figures, rows interleaved.

    Every figure goes through every row in turn, so that a change in the machine's load during the run hits all rows
    alike. Row 1 runs first on each figure: rows 4-5 reuse its OCR.
    """
    for row in rows:
        row(0, timed=False)
    for _ in range(repeat):
        for i in range(figures):
            for row in rows:
                row(i, timed=True)


def time_batch(
    processor: PatentLMMProcessor, paths: list[Path], prompt: str, repeat: int, caller_omp: str | None
) -> tuple[Row, list[list[int]]]:
    """Row 6: all figures in one processor call, `repeat` times; also returns each figure's unpadded OCR token ids."""
    batch_row = Row(f"processor, Tesseract, one batch ({os.cpu_count()} workers)", caller_omp, lambda _: None)
    for _ in range(repeat):
        with omp_thread_limit(caller_omp):
            start = time.perf_counter()
            batch = processor(images=paths, text=[prompt] * len(paths))
            batch_row.seconds += time.perf_counter() - start
        batch_row.calls += len(paths)
    batch_ids = [ids[mask.bool()].tolist() for ids, mask in zip(batch["ocr_input_ids"], batch["ocr_attention_mask"])]
    return batch_row, batch_ids


def print_table(rows: list[Row], batch_row: Row, labels: list[str]) -> None:
    """Prints each row's OMP_THREAD_LIMIT (`labels`), images/s and ratio against the first row (the original)."""
    baseline = rows[0].images_per_second
    name_width = max(len(row.name) for row in rows)
    print(f"{'row':<{name_width}}  {'OMP_THREAD_LIMIT':<24}  {'images/s':>8}  {'vs original':>11}")
    print(f"{'-' * name_width}  {'-' * 24}  {'-' * 8}  {'-' * 11}")
    for row, label in zip([*rows, batch_row], labels, strict=True):
        speed = row.images_per_second
        print(f"{row.name:<{name_width}}  {label:<24}  {speed:>8.2f}  {'x' + format(speed / baseline, '.2f'):>11}")


def print_checks(rows: list[Row], batch_row: Row, batch_ids: list[list[int]], figures: int) -> None:
    """Prints, for rows 3-6, how many figures' OCR token ids equal row 1's."""
    expected = [unpadded_ids(rows[0].outputs[i]["encoding"]) for i in range(figures)]
    checks = [
        f"{row.name}: {sum(processor_ids(row.outputs[i]) == expected[i] for i in range(figures))}/{figures}"
        for row in rows[2:]
    ]
    checks.append(f"{batch_row.name}: {sum(batch_ids[i] == expected[i] for i in range(figures))}/{figures}")
    print()
    print("OCR token ids equal to the original's: " + "; ".join(checks))


def main(argv: list[str] | None = None) -> None:
    """Times the six rows over the figures; prints the machine, the table of ratios and the OCR token checks."""
    args = parse_args(argv)
    paths = list_images(args.images)
    caller_omp = os.environ.get(OMP_VAR)
    processor: PatentLMMProcessor = build_tiny()[1]
    original_ip = original_image_processor(processor)
    prompt = build_prompt("brief")
    rows = build_rows(paths, processor, original_ip, prompt, caller_omp)
    labels = [
        "unset",
        "1",
        caller_omp or "1 (set by run_tesseract)",
        "-",
        "-",
        caller_omp or "1 (set by run_tesseract)",
    ]

    load_before = load_average()
    print_header(paths, args, original_ip, caller_omp)
    time_rows(rows, len(paths), args.repeat)
    batch_row, batch_ids = time_batch(processor, paths, prompt, args.repeat, caller_omp)
    load_after = load_average()
    if load_before and load_after:
        print(f"load avg:    {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min)")
    print()
    print_table(rows, batch_row, labels)
    print_checks(rows, batch_row, batch_ids, len(paths))


if __name__ == "__main__":
    main()
