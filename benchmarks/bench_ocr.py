"""Throughput of the `ocr` step (`dataset_builder.ocr.run_ocr`) against the original OCR path.

Run from the repository root (Tesseract on `PATH`):

    python benchmarks/bench_ocr.py                  # the 19 bundled figures (patentlmm/assets/figures/), 2 workers
    python benchmarks/bench_ocr.py --images DIR --workers 4

Rows (images/s, ratios against the first row):

1. `original`: one figure after the other, `Image.open(path).convert("RGB")` then
   `LayoutLMv3ImageProcessor(apply_ocr=True)(image)` (Tesseract, resize, normalise), Tesseract with its default
   OpenMP threading (`OMP_THREAD_LIMIT` removed from the environment): how the original prepared its OCR.
2. `run_ocr, N workers`: the `ocr` stage into an empty cache: a pool of N processes, one single-threaded Tesseract
   each, results appended to `ocr_cache.jsonl` (pool start-up included).
3. `run_ocr, cached rerun`: the same call again; every id is in the cache, so nothing is OCRed.

`CPU s/image` is the user + system CPU time of the benchmark and its child processes (Tesseract, pool workers) per
image: unlike images/s it hardly depends on what else the machine runs. One warm-up figure goes through the
original path first, untimed. The script checks that row 2's words and boxes
equal row 1's (`apply_tesseract` is the same OCR). One run each, nothing asserted on timings; on a busy machine
compare the ratios and look at the `load avg` line.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402
from transformers import LayoutLMv3ImageProcessor  # noqa: E402

from dataset_builder.ocr import run_ocr  # noqa: E402
from dataset_builder.options import OcrOptions  # noqa: E402
from patentlmm.assets import FIGURES  # noqa: E402
from patentlmm_common.jsonl import complete_lines  # noqa: E402


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its finished children (Tesseract runs, pool workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=FIGURES, help="folder of <image_id>.png figures")
    parser.add_argument("--workers", type=int, default=2, help="OCR processes of the ocr stage")
    args = parser.parse_args()
    paths = sorted(args.images.glob("*.png"))
    ids = [path.stem for path in paths]

    # 1) the original path, Tesseract's default threading
    saved_limit = os.environ.pop("OMP_THREAD_LIMIT", None)
    processor = LayoutLMv3ImageProcessor(apply_ocr=True)
    processor(Image.open(paths[0]).convert("RGB"))  # warm-up
    original: dict[str, tuple[list, list]] = {}
    start, cpu = time.perf_counter(), _cpu_seconds()
    for image_id, path in zip(ids, paths):
        features = processor(Image.open(path).convert("RGB"))
        original[image_id] = (features["words"][0], features["boxes"][0])
    original_rate = len(paths) / (time.perf_counter() - start)
    original_cpu = (_cpu_seconds() - cpu) / len(paths)
    if saved_limit is not None:
        os.environ["OMP_THREAD_LIMIT"] = saved_limit

    with tempfile.TemporaryDirectory() as scratch:
        cache, report = Path(scratch) / "ocr_cache.jsonl", Path(scratch) / "failures.jsonl"
        options = OcrOptions(engine="tesseract", workers=args.workers)  # the OCR of row 1
        # 2) the ocr stage, empty cache
        cpu = _cpu_seconds()
        first = run_ocr(ids, args.images, cache, report, options)
        stage_rate = first.processed / first.seconds
        stage_cpu = (_cpu_seconds() - cpu) / first.processed
        # 3) the same call, everything cached
        start, cpu = time.perf_counter(), _cpu_seconds()
        again = run_ocr(ids, args.images, cache, report, options)
        cached_rate = again.cached / (time.perf_counter() - start)
        cached_cpu = (_cpu_seconds() - cpu) / again.cached
        ours = {entry["image_id"]: entry for entry in complete_lines(cache)}
    same = sum(
        (ours[i]["words"], ours[i]["boxes"]) == (list(words), [list(map(int, box)) for box in boxes])
        for i, (words, boxes) in original.items()
    )

    load = os.getloadavg()
    print(
        f"\n{len(paths)} figures from {args.images}; {os.cpu_count()} cores ({platform.machine()}), "
        f"Python {platform.python_version()}, load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'row':<58} {'images/s':>9} {'ratio':>8} {'CPU s/image':>12}")
    for name, rate, cpu_per_image in (
        ("original (LayoutLMv3ImageProcessor apply_ocr, sequential)", original_rate, original_cpu),
        (f"run_ocr, {args.workers} workers (OMP_THREAD_LIMIT=1 each)", stage_rate, stage_cpu),
        ("run_ocr, cached rerun", cached_rate, cached_cpu),
    ):
        print(f"{name:<58} {rate:9.2f} {rate / original_rate:7.1f}x {cpu_per_image:12.4f}")
    print(f"words and boxes equal to the original's: {same}/{len(paths)}; failures: {first.failed}")


if __name__ == "__main__":
    main()
