"""Peak memory of reading + building PatentDesc-355k vs `json.load` of the same JSON, at 35K and 355K entries.

    python benchmarks/bench_dataset_memory.py                      # 35K and 355K entries (~3 min on 2 cores)
    python benchmarks/bench_dataset_memory.py --sizes 35000 --keep /tmp/bench

For each size it writes a synthetic root (PatentDesc-355k.json with brief descriptions of ~34 words and detailed
ones of 1-500 words, 6 figures a patent; an OCR cache of 8 words a figure) and measures, each in a fresh
subprocess, the peak RSS (`ru_maxrss`) of

- `json.load`: the original's way of reading the file, which holds it all;
- `read`: `iter_entries` streaming every entry (`jsonstream`, duplicate check in SQLite);
- `build`: `build_patentdesc_dataset` writing both configs' Parquet shards and the card (one process).

Images are metadata only here: every figure gets the same tiny placeholder PNG without reading a file, so the run
measures the JSON, OCR and Parquet side. Image checks cost time, not memory (one image at a time per process).
`build` imports `processing`, which imports transformers and torch; that fixed cost is printed apart ("imports"),
and "growth" is a step's peak minus its peak at the smallest size, which should stay near zero.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES_PER_PATENT = 6  # ~355K figures from ~60K patents


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_synthetic_root(root: Path, num_entries: int, seed: int = 0) -> int:
    """Writes `root/PatentDesc-355k.json` and `root/ocr/ocr_cache.jsonl`; returns the JSON's size in bytes."""
    rng = random.Random(seed)
    vocabulary = "the a first second member frame coupled wherein assembly configured shaft housing".split()
    pool = [rng.choice(vocabulary) + (f" {n}" if n % 7 == 0 else "") for n in range(4000)]
    text = " ".join(pool)
    starts = [0]
    for word in pool:
        starts.append(starts[-1] + len(word) + 1)

    def words(count: int) -> str:  # a slice of the pool: `count` words from a random place
        first = rng.randrange(0, len(pool) - count)
        return text[starts[first] : starts[first + count] - 1]

    root.mkdir(parents=True, exist_ok=True)
    (root / "ocr").mkdir(exist_ok=True)
    json_path = root / "PatentDesc-355k.json"
    with open(json_path, "w", encoding="utf-8") as handle, open(root / "ocr" / "ocr_cache.jsonl", "w") as ocr:
        handle.write("{")
        for index in range(num_entries):
            image_id = f"US{10_000_000 + index // FIGURES_PER_PATENT:08d}B2__{index % FIGURES_PER_PATENT + 1}"
            entry = {
                "image_url": f"https://patentimages.example/{image_id}.png",
                "brief_description": f"FIG. {index % FIGURES_PER_PATENT + 1} is " + words(rng.randint(28, 40)),
                "detailed_description": words(rng.randint(1, 500)),
            }
            handle.write(("" if index == 0 else ", ") + json.dumps(image_id) + ": " + json.dumps(entry))
            boxes = [[10 * k, 20, 10 * k + 8, 30] for k in range(8)]
            ocr.write(json.dumps({"image_id": image_id, "words": [f"{k}" for k in range(8)], "boxes": boxes}) + "\n")
        handle.write("}")
    return json_path.stat().st_size


def _child(step: str, root: Path) -> dict:
    """Runs one step in this (fresh) process and returns its timings and peak RSS."""
    if step == "json_load":
        imports_mb = _peak_mb()
        start = time.perf_counter()
        with open(root / "PatentDesc-355k.json", encoding="utf-8") as handle:
            count = len(json.load(handle))
    elif step == "read":
        from dataset_builder.diskmap import DiskMap
        from dataset_builder.entries import iter_entries

        imports_mb = _peak_mb()
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            count = sum(1 for _ in iter_entries(root / "PatentDesc-355k.json", seen=DiskMap(Path(tmp) / "seen.db")))
    else:
        from PIL import Image

        from dataset_builder import examples
        from dataset_builder.build import build_patentdesc_dataset
        from dataset_builder.image_check import PreparedImage
        from dataset_builder.options import BuildOptions

        buffer = io.BytesIO()
        Image.new("1", (8, 8), 1).save(buffer, format="PNG")
        placeholder = PreparedImage(png=buffer.getvalue())
        examples.prepare_image = lambda path, max_pixels=None: placeholder  # metadata only: see the module docstring
        imports_mb = _peak_mb()
        start = time.perf_counter()
        output = root / "out" / "patentdesc-355k"
        summary = build_patentdesc_dataset(root, output, BuildOptions(workers=1), progress=False)
        count = sum(sum(splits.values()) for splits in summary.num_examples.values())
    return {"peak_mb": _peak_mb(), "imports_mb": imports_mb, "seconds": time.perf_counter() - start, "rows": count}


def measure(step: str, root: Path) -> dict:
    """Runs `step` in a fresh interpreter (so that its peak RSS is its own) and returns its `_child` result."""
    command = [sys.executable, "-m", "benchmarks.bench_dataset_memory", "--child", step, str(root)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="35000,355000", help="entry counts, comma-separated")
    parser.add_argument("--keep", type=Path, help="write the synthetic roots here and keep them")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], Path(args.child[1]))))
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-dataset-memory-"))
    sizes = [int(size) for size in args.sizes.split(",")]
    results = {}
    try:
        for size in sizes:
            root = work / f"root-{size}"
            start = time.perf_counter()
            json_bytes = write_synthetic_root(root, size)
            print(f"{size:,} entries: PatentDesc-355k.json {json_bytes / 1e6:,.0f} MB, written in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
            results[size] = {step: measure(step, root) for step in ("json_load", "read", "build")}
            for step, result in results[size].items():
                print(f"  {step:9s} peak {result['peak_mb']:7,.0f} MB (imports {result['imports_mb']:5,.0f} MB) "
                      f"{result['seconds']:6.1f} s  {result['rows']:,} rows/entries", flush=True)  # fmt: skip
            if not args.keep:
                shutil.rmtree(root)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\nsize      read/json.load  build/json.load  read growth  build growth")
    smallest = results[sizes[0]]
    for size, steps in results.items():
        baseline = steps["json_load"]["peak_mb"]
        print(
            f"{size:<9,} {steps['read']['peak_mb'] / baseline:14.2f}x {steps['build']['peak_mb'] / baseline:15.2f}x"
            f" {steps['read']['peak_mb'] - smallest['read']['peak_mb']:+9,.0f} MB"
            f" {steps['build']['peak_mb'] - smallest['build']['peak_mb']:+10,.0f} MB"
        )
    print("goal: build <= 0.5x json.load, and flat (growth ~0) from the smallest to the largest size")


if __name__ == "__main__":
    main()
