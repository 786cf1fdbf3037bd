"""What each OCR engine reads on real patent figures, how fast, and how fast the `dataset ocr` stage runs with it.

Run from the repository root (Tesseract on `PATH`, `pip install -e .[ocr]`):

    python benchmarks/bench_ocr_quality.py                    # the 19 bundled figures, ~4-6 minutes on 2 cores
    python benchmarks/bench_ocr_quality.py --skip-stage       # reading rows only

Ground truth: the reference numerals each figure's own brief description cites (`patentlmm.evaluation.numerals`), and
its
label `n` (read when the OCR words give the label "FIG./Figure n"). `NOT_DRAWN` lists the cited numerals that are
not on their sheet (checked by eye), so the `drawn` column is recall on what an OCR can see.

Rows, one process, each figure through every row in turn:
1. `paper's path`: `LayoutLMv3ImageProcessor(apply_ocr=True)`'s Tesseract (default page segmentation) = the
   `tesseract` engine (`processing.ocr_tesseract.run_tesseract`), the baseline of every ratio;
2. `tesseract --psm 11`: Tesseract's sparse-text mode;
3. `RapidOCR() stock`: rapidocr-onnxruntime's own pipeline with its defaults (for where its time goes);
4. `rapidocr`, 5. `drawing`: the engines (`processing.ocr_rapidocr`, `processing.ocr_drawing`), one ONNX thread;
6. `drawing, landscape`: the drawing engine on every figure turned 90 degrees counter-clockwise (and 7. clockwise).

`CPU s/fig` is user + system CPU of this process and its children (Tesseract) per figure. Then the `dataset ocr`
stage (`run_ocr`, `--workers` processes, each single-threaded, pool start-up and model loading included) over the
figures repeated `--stage-repeat` times, `--stage-rounds` rounds with the engines interleaved: images/s per engine
and the median of each round's ratio to the paper's path (the stage gives Tesseract the 1-bit PNG file itself,
which makes the paper's path ~1.5x faster there than in the reading rows); and a breakdown of the drawing engine's
time. Nothing is asserted; on a shared machine compare ratios (the `load avg` line says the load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dataset_builder.ocr import run_ocr  # noqa: E402
from dataset_builder.options import OcrOptions  # noqa: E402
from patentlmm.assets import FIGURES  # noqa: E402
from patentlmm.evaluation.numerals import extract_references  # noqa: E402
from processing.ocr_engines import load_ocr_engine  # noqa: E402

# Cited in the figure's brief description but not drawn on its sheet (looked for by eye on each sheet).
NOT_DRAWN = {
    "US20250204297A1__1": {"31"},
    "US20250204297A1__2": {"11"},
    "US20250204297A1__4": {"10", "11"},
    "US20250204297A1__5": {"11"},
    "US20250204297A1__10": {"12", "14"},
    "US20250204297A1__11": {"21"},
    "US20250204297A1__13": {"12", "14"},
    "US20250204297A1__16": {"3", "31"},
    "US20250204297A1__17": {"31", "39"},
    "US20250204297A1__18": {"11"},
}


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _stock_rapidocr() -> Callable[[Image.Image], tuple[list[str], list]]:
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def read(image: Image.Image) -> tuple[list[str], list]:
        result, _ = engine(np.asarray(image.convert("RGB")))
        words = [word for _, text, _ in result or [] for word in text.split()]
        return words, [None] * len(words)

    return read


def _reading_rows(figures: dict, truth: dict) -> list[dict]:
    drawing = load_ocr_engine("drawing")
    rows = {
        "paper's path (tesseract, default page mode)": load_ocr_engine("tesseract"),
        "tesseract --psm 11": load_ocr_engine("tesseract", config="--psm 11"),
        "RapidOCR() stock pipeline, 1 thread": _stock_rapidocr(),
        "rapidocr engine": load_ocr_engine("rapidocr"),
        "drawing engine": drawing,
        "drawing engine, landscape (90 ccw)": drawing,
        "drawing engine, landscape (90 cw)": drawing,
    }
    turn = {"drawing engine, landscape (90 ccw)": 90, "drawing engine, landscape (90 cw)": 270}
    stats = {name: {"hits": 0, "drawn_hits": 0, "labels": 0, "words": 0, "empty": 0, "cpu": 0.0} for name in rows}
    for engine in {id(e): e for e in rows.values()}.values():  # load models (untimed)
        engine(figures[next(iter(figures))])
    for image_id, image in figures.items():
        cited, drawn, label = truth[image_id]
        for name, engine in rows.items():
            source = image.rotate(turn[name], expand=True) if name in turn else image
            started = _cpu_seconds()
            words, _ = engine(source)
            stats[name]["cpu"] += _cpu_seconds() - started
            found = extract_references(" ".join(words))
            stats[name]["hits"] += len(cited & found.numerals)
            stats[name]["drawn_hits"] += len(drawn & found.numerals)
            stats[name]["labels"] += label in found.labels
            stats[name]["words"] += len(words)
            stats[name]["empty"] += not words
    return [{"row": name, **values} for name, values in stats.items()]


def _stage_rates(images: Path, ids: list[str], workers: int, repeat: int, rounds: int) -> dict[str, list[float]]:
    """images/s of `run_ocr` per engine, `rounds` times, the engines interleaved within each round (so that a
    change of the machine's load hits them alike)."""
    rates: dict[str, list[float]] = {engine: [] for engine in ("tesseract", "drawing", "rapidocr")}
    with tempfile.TemporaryDirectory() as tmp:
        copies = Path(tmp) / "images"
        copies.mkdir()
        stage_ids = []
        for k in range(repeat):
            for image_id in ids:
                publication, number = image_id.rsplit("__", 1)
                copy_id = f"{publication}__{int(number) + 1000 * k}"  # a valid id of its own for each pass
                os.symlink(images / f"{image_id}.png", copies / f"{copy_id}.png")
                stage_ids.append(copy_id)
        for _ in range(rounds):
            for engine, values in rates.items():
                folder = Path(tmp) / engine
                started = time.perf_counter()
                options = OcrOptions(engine=engine, workers=workers)
                summary = run_ocr(stage_ids, copies, folder / "c.jsonl", folder / "f.jsonl", options)
                seconds = time.perf_counter() - started
                assert summary.processed == len(stage_ids), summary
                values.append(len(stage_ids) / seconds)
                shutil.rmtree(folder)
    return rates


def _breakdown(figures: dict) -> dict[str, float]:
    """Seconds per figure in each part of the drawing engine (upright figures)."""
    from processing.ocr_drawing import find_glyphs, group_glyphs
    from processing.ocr_pp import as_bgr_array, crop, pp_ocr_models

    engine = load_ocr_engine("drawing")
    models = pp_ocr_models(1)
    parts = {"glyphs (connected components)": 0.0, "numeral crops: recognition": 0.0, "text detection": 0.0}
    parts["text lines: recognition"] = 0.0
    crops_total = 0
    for image in figures.values():
        sheet = as_bgr_array(image)
        t0 = time.process_time()
        glyphs, _, _ = find_glyphs(np.asarray(image.convert("L")) < 128, engine.min_glyph, engine.max_glyph)
        candidates = group_glyphs(glyphs)
        t1 = time.process_time()
        models.recognize([crop(sheet, box, (box[3] - box[1]) // 4 + 2) for box in candidates])
        t2 = time.process_time()
        boxes = models.detect(sheet, engine.det_side)
        t3 = time.process_time()
        models.recognize([crop(sheet, box, 4) for box in boxes])
        t4 = time.process_time()
        crops_total += len(candidates)
        for part, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[part] += seconds
    result = {part: seconds / len(figures) for part, seconds in parts.items()}
    result["numeral candidates per figure"] = crops_total / len(figures)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", type=Path, default=FIGURES, help="<id>.png (or images/) + descriptions.json")
    parser.add_argument("--workers", type=int, default=2, help="processes of the dataset ocr stage")
    parser.add_argument("--stage-repeat", type=int, default=2, help="passes over the figures in the stage rows")
    parser.add_argument("--stage-rounds", type=int, default=3, help="timed rounds of the stage rows (median kept)")
    parser.add_argument("--skip-stage", action="store_true", help="only the reading rows")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()

    descriptions = json.loads((args.figures / "descriptions.json").read_text(encoding="utf-8"))
    images = args.figures / "images" if (args.figures / "images").is_dir() else args.figures
    figures, truth = {}, {}
    for image_id, entry in descriptions.items():
        with Image.open(images / f"{image_id}.png") as image:
            figures[image_id] = image.convert("RGB")
        cited = set(extract_references(entry["brief_description"]).numerals)
        truth[image_id] = (cited, cited - NOT_DRAWN.get(image_id, set()), image_id.rsplit("__", 1)[1].lower())
    n = len(figures)
    cited_total = sum(len(c) for c, _, _ in truth.values())
    drawn_total = sum(len(d) for _, d, _ in truth.values())
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; load avg {os.getloadavg()}")
    print(f"{n} figures, {cited_total} cited numerals, {drawn_total} of them drawn, {n} labels\n")

    rows = _reading_rows(figures, truth)
    base = rows[0]["cpu"]
    print("| OCR | numerals read (cited) | of those drawn | labels | words/fig | figures with no word | CPU s/fig "
          "| CPU vs paper |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['row']} | {row['hits']}/{cited_total} = {row['hits'] / cited_total:.0%} "
            f"| {row['drawn_hits']}/{drawn_total} = {row['drawn_hits'] / drawn_total:.0%} | {row['labels']}/{n} "
            f"| {row['words'] / n:.1f} | {row['empty']} | {row['cpu'] / n:.2f} | x{row['cpu'] / base:.2f} |"
        )
    print(f"\nload avg after the reading rows {os.getloadavg()}")
    report = {"rows": rows}
    if not args.skip_stage:
        rates = _stage_rates(images, list(figures), args.workers, args.stage_repeat, args.stage_rounds)
        images = n * args.stage_repeat
        print(f"\n`dataset ocr` stage, {args.workers} workers, {images} images, {args.stage_rounds} rounds:")
        print("| engine | images/s (median) | each round | vs paper's path (median of the rounds' ratios) |")
        print("|---|---|---|---|")
        for engine, values in rates.items():
            ratios = [value / base for value, base in zip(values, rates["tesseract"])]
            each = ", ".join(f"{value:.2f}" for value in values)
            print(f"| {engine} | {statistics.median(values):.2f} | {each} | x{statistics.median(ratios):.2f} |")
        report["stage"] = rates
        print(f"load avg after the stage rows {os.getloadavg()}")
    parts = _breakdown(figures)
    print("\ndrawing engine, CPU s per figure by part (upright figures, 1 ONNX thread):")
    for part, value in parts.items():
        print(f"- {part}: {value:.3f}")
    report["drawing_breakdown"] = parts
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
