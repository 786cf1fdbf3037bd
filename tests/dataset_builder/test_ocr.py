"""`dataset_builder.ocr` with real Tesseract on the real patent figures (the 19 bundled ones)."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from dataset_builder.ocr import run_ocr
from dataset_builder.ocr_folders import find_ocr_folder
from dataset_builder.options import OcrOptions
from dataset_builder.reports import read_report
from dataset_builder.sharding import shard_of
from helpers import FIGURES
from helpers.damaged import damaged_images
from helpers.processes import ProcessKiller, held_lock, parent_of
from patentlmm.cli.dataset import main
from patentlmm_common.files import AlreadyRunningError
from patentlmm_common.jsonl import complete_lines
from processing.images import load_image
from processing.ocr_engines import load_ocr_engine
from processing.ocr_tesseract import TesseractEngine, run_tesseract

IMAGES = FIGURES
IDS = sorted(path.stem for path in IMAGES.glob("*.png"))
SMALLEST = "US20250204297A1__12"  # Tesseract finds no word on it, so it is the fastest figure
WORDY = "US20250204297A1__8"  # a dozen words


def read_ocr_cache(path_or_folder: Path) -> dict[str, dict]:
    """image id -> `{"words", "boxes", "width", "height"}` of one cache file or every `ocr_cache*.jsonl` of a folder."""
    paths = sorted(path_or_folder.glob("ocr_cache*.jsonl")) if path_or_folder.is_dir() else [path_or_folder]
    return {entry.pop("image_id"): entry for path in paths for entry in complete_lines(path)}


def run_tesseract_stage(image_ids, images_dir, cache_path, report_path, **options):
    """`run_ocr` with the paper's OCR (Tesseract), which these tests compare to `run_tesseract`."""
    return run_ocr(image_ids, images_dir, cache_path, report_path, OcrOptions(engine="tesseract", **options))


@pytest.fixture(scope="module")
def sharded_cache(tmp_path_factory) -> Path:
    """The `ocr/` folder of a real run over every figure, as two shards run one after the other."""
    folder = tmp_path_factory.mktemp("ocr")
    for index in range(2):
        name = f"ocr_cache-{index:05d}-of-00002.jsonl"
        summary = run_tesseract_stage(
            IDS, IMAGES, folder / name, folder / "failures.jsonl", workers=2, num_shards=2, shard_index=index
        )
        assert summary.processed == summary.total == sum(shard_of(i, 2) == index for i in IDS)
    assert not (folder / "failures.jsonl").exists()
    return folder


def _reference(image_id: str) -> dict:
    image = load_image(IMAGES / f"{image_id}.png")
    words, boxes = run_tesseract(image)
    return {"words": words, "boxes": boxes, "width": image.width, "height": image.height}


def test_words_and_boxes_equal_run_tesseract(sharded_cache):
    with ThreadPoolExecutor(2) as pool:  # each call runs its own tesseract process
        expected = dict(zip(IDS, pool.map(_reference, IDS)))
    assert read_ocr_cache(sharded_cache) == expected
    assert sum(len(entry["words"]) for entry in expected.values()) > 0


def test_other_image_modes_equal_run_tesseract(tmp_path):
    """The real figures are 1-bit PNGs (given to Tesseract as files); other modes go through the RGB image."""
    assert all(Image.open(IMAGES / f"{i}.png").mode == "1" for i in IDS)
    with Image.open(IMAGES / f"{WORDY}.png") as figure:
        grey = figure.convert("L").resize((figure.width // 2, figure.height // 2), Image.Resampling.LANCZOS)
    images = tmp_path / "images"
    images.mkdir()
    grey.save(images / "US20250204297A1__1.png")  # 8-bit greyscale, antialiased
    rgba = grey.convert("RGBA")
    rgba.putalpha(grey.point(lambda v: 255 - v))  # ink opaque, paper transparent
    rgba.save(images / "US20250204297A1__2.png")
    ids = ["US20250204297A1__1", "US20250204297A1__2"]
    summary = run_tesseract_stage(ids, images, tmp_path / "ocr_cache.jsonl", tmp_path / "failures.jsonl", workers=2)
    assert summary.processed == 2
    cache = read_ocr_cache(tmp_path / "ocr_cache.jsonl")
    for image_id in ids:
        image = load_image(images / f"{image_id}.png")
        assert (cache[image_id]["words"], cache[image_id]["boxes"]) == run_tesseract(image)
    assert cache["US20250204297A1__1"]["words"]


def test_shards_cover_every_id_once(sharded_cache):
    seen = []
    for index in range(2):
        lines = (sharded_cache / f"ocr_cache-{index:05d}-of-00002.jsonl").read_text().splitlines()
        ids = [json.loads(line)["image_id"] for line in lines]
        assert all(shard_of(i, 2) == index for i in ids)
        seen += ids
    assert sorted(seen) == IDS


def test_rerun_skips_cached_ids(sharded_cache, tmp_path):
    folder = shutil.copytree(sharded_cache, tmp_path / "ocr")
    before = {path.name: path.read_bytes() for path in folder.iterdir() if not path.name.endswith(".lock")}
    for index in range(2):
        cache = folder / f"ocr_cache-{index:05d}-of-00002.jsonl"
        summary = run_tesseract_stage(IDS, IMAGES, cache, folder / "failures.jsonl", num_shards=2, shard_index=index)
        assert (summary.processed, summary.failed) == (0, 0) and summary.cached == summary.total
    # An unsharded run over the same folder also finds every id in the shards' files.
    summary = run_tesseract_stage(IDS, IMAGES, folder / "ocr_cache.jsonl", folder / "failures.jsonl")
    assert (summary.total, summary.cached, summary.processed) == (len(IDS), len(IDS), 0)
    after = {path.name: path.read_bytes() for path in folder.iterdir() if not path.name.endswith(".lock")}
    assert after == before


def test_half_written_last_line_is_ignored_then_redone(sharded_cache, tmp_path):
    folder = shutil.copytree(sharded_cache, tmp_path / "ocr")
    cache = folder / "ocr_cache-00000-of-00002.jsonl"
    lines = cache.read_text().splitlines(keepends=True)
    last_id = json.loads(lines[-1])["image_id"]
    cache.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    assert last_id not in read_ocr_cache(folder) and len(read_ocr_cache(folder)) == len(IDS) - 1

    summary = run_tesseract_stage(IDS, IMAGES, cache, folder / "failures.jsonl", num_shards=2, shard_index=0)
    assert summary.processed == 1
    assert cache.read_text() == "".join(lines)  # the partial line was cut, the figure redone
    assert read_ocr_cache(folder) == read_ocr_cache(sharded_cache)


def test_failures_are_recorded_and_the_rest_goes_on(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    good = (IMAGES / f"{SMALLEST}.png").read_bytes()
    (images / f"{SMALLEST}.png").write_bytes(good)
    (images / "US20250204297A1__2.png").write_bytes(good[: len(good) // 3])  # truncated PNG
    (images / "US20250204297A1__3.png").write_bytes(b"<html>not an image</html>")
    ids = [SMALLEST, "US20250204297A1__2", "US20250204297A1__3", "US20250204297A1__4", "../etc/passwd"]
    report = tmp_path / "reports" / "ocr_failures.jsonl"
    summary = run_tesseract_stage(ids, images, tmp_path / "ocr" / "ocr_cache.jsonl", report, workers=2)
    assert (summary.total, summary.processed, summary.failed) == (5, 1, 4)
    reasons = {line["image_id"]: line["reason"] for line in read_report(report)}
    assert all(line["stage"] == "ocr" for line in read_report(report))
    assert "unreadable image" in reasons["US20250204297A1__2"]
    assert "unreadable image" in reasons["US20250204297A1__3"]
    assert "not found" in reasons["US20250204297A1__4"]
    assert "path separator" in reasons["../etc/passwd"]
    assert list(read_ocr_cache(tmp_path / "ocr")) == [SMALLEST]

    permanent = {line["image_id"]: line["permanent"] for line in read_report(report)}
    assert permanent == {"US20250204297A1__2": True, "US20250204297A1__3": True, "US20250204297A1__4": False,
                         "../etc/passwd": True}  # fmt: skip
    # A rerun skips the permanent failures and retries the missing file (it may have been downloaded since).
    again = run_tesseract_stage(ids, images, tmp_path / "ocr" / "ocr_cache.jsonl", report, workers=2)
    assert (again.cached, again.previously_failed, again.processed, again.failed) == (1, 3, 0, 1)


def test_over_the_pixel_cap_and_timeout_are_recorded(tmp_path):
    report = tmp_path / "failures.jsonl"
    summary = run_tesseract_stage([SMALLEST], IMAGES, tmp_path / "ocr_cache.jsonl", report, timeout=0.001)
    assert (summary.processed, summary.failed) == (0, 1)
    (line,) = read_report(report)
    assert "timed out" in line["reason"]

    cap_report = tmp_path / "cap" / "failures.jsonl"
    summary = run_tesseract_stage(
        [SMALLEST], IMAGES, tmp_path / "cap" / "ocr_cache.jsonl", cap_report, max_image_pixels=1000
    )
    assert summary.failed == 1 and "too large" in read_report(cap_report)[0]["reason"]

    summary = run_tesseract_stage([SMALLEST], IMAGES, tmp_path / "ocr_cache.jsonl", report, retry_failed=True)
    assert summary.processed == 1 and read_ocr_cache(tmp_path / "ocr_cache.jsonl")[SMALLEST]["words"] == []


def test_run_command_line(tmp_path):
    (tmp_path / "images").mkdir()
    shutil.copy(IMAGES / f"{SMALLEST}.png", tmp_path / "images")
    assert main(["ocr", "--root", str(tmp_path), "--workers", "1", "--engine", "tesseract"]) == 0
    key = TesseractEngine().key
    assert set(read_ocr_cache(tmp_path / "ocr" / key / "ocr_cache.jsonl")) == {SMALLEST}
    assert find_ocr_folder(tmp_path / "ocr") == tmp_path / "ocr" / key


def _tesseract_reading(image_id: str):
    """A `ProcessKiller` match: the tesseract process OCRing `images/<image_id>.png` (1-bit PNGs go by their path)."""
    return lambda pid, argv: (
        argv[:1] and argv[0].endswith("tesseract") and any(arg.endswith(f"{image_id}.png") for arg in argv)
    )


def test_damaged_files_name_their_file_and_id_and_the_run_goes_on(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(IMAGES / f"{SMALLEST}.png", images)
    damaged = {f"US11036663B2__{k}": (name, data) for k, (name, data) in enumerate(damaged_images().items(), 1)}
    for image_id, (_, data) in damaged.items():  # AVIF and QOI bytes under a .png name, a PNG with a bad chunk
        (images / f"{image_id}.png").write_bytes(data)
    report = tmp_path / "failures.jsonl"
    summary = run_tesseract_stage([SMALLEST, *damaged], images, tmp_path / "ocr" / "ocr_cache.jsonl", report, workers=2)
    assert (summary.processed, summary.failed) == (1, 3)
    lines = {line["image_id"]: line for line in read_report(report)}
    for image_id, (name, _) in damaged.items():
        assert lines[image_id]["reason"].startswith(f"unreadable image images/{image_id}.png: {name}: ")
        assert lines[image_id]["permanent"] is True


def test_a_killed_tesseract_is_reported_as_killed_and_a_plain_rerun_retries_it(tmp_path):
    cache, report = tmp_path / "ocr" / "ocr_cache.jsonl", tmp_path / "failures.jsonl"
    with ProcessKiller(_tesseract_reading(WORDY)) as killer:
        summary = run_tesseract_stage([SMALLEST, WORDY], IMAGES, cache, report, workers=2)
    assert len(killer.killed) == 1 and (summary.processed, summary.failed) == (1, 1)
    (line,) = read_report(report)
    assert line["image_id"] == WORDY and line["permanent"] is False
    assert line["reason"].startswith("tesseract was killed by SIGKILL")  # not "timed out"
    again = run_tesseract_stage([SMALLEST, WORDY], IMAGES, cache, report, workers=2)
    assert (again.cached, again.processed, again.previously_failed, again.failed) == (1, 1, 0, 0)
    assert read_ocr_cache(cache)[WORDY] == _reference(WORDY)


def test_a_worker_killed_by_a_signal_fails_only_its_figure_and_a_rerun_retries_it(tmp_path):
    """The pool worker OCRing WORDY is SIGKILLed (as by the out-of-memory killer), in the pool and again when the
    figure is run alone: only WORDY is reported, the figures in flight with it are OCRed, and the run goes on."""
    ids = sorted({SMALLEST, WORDY, *IDS[:4]})
    cache, report = tmp_path / "ocr" / "ocr_cache.jsonl", tmp_path / "failures.jsonl"
    with ProcessKiller(_tesseract_reading(WORDY), target=parent_of) as killer:
        summary = run_tesseract_stage(ids, IMAGES, cache, report, workers=2)
    assert len(killer.killed) == 2  # the pool's worker, then the worker of WORDY alone
    assert (summary.processed, summary.failed) == (len(ids) - 1, 1)
    (line,) = read_report(report)
    assert line["image_id"] == WORDY and line["permanent"] is False
    assert "the worker process died while processing it (killed by a signal" in line["reason"]
    again = run_tesseract_stage(ids, IMAGES, cache, report, workers=2)
    assert (again.cached, again.processed, again.failed) == (len(ids) - 1, 1, 0)
    assert set(read_ocr_cache(cache)) == set(ids)


def test_a_second_ocr_run_on_the_same_cache_stops_at_once(tmp_path):
    cache = tmp_path / "ocr" / "ocr_cache.jsonl"
    cache.parent.mkdir()
    with held_lock(cache.with_name(".ocr_cache.jsonl.lock")) as holder:
        message = rf"an ocr run writing {cache} is already running \(pid {holder} "
        with pytest.raises(AlreadyRunningError, match=message):
            run_tesseract_stage([SMALLEST], IMAGES, cache, tmp_path / "failures.jsonl")
    assert not cache.exists()
    assert run_tesseract_stage([SMALLEST], IMAGES, cache, tmp_path / "failures.jsonl").processed == 1  # holder gone


def test_a_file_name_with_a_newline_is_reported_not_ocred(tmp_path):
    (tmp_path / "images").mkdir()
    shutil.copy(IMAGES / f"{SMALLEST}.png", tmp_path / "images" / f"{SMALLEST}\n.png")  # `$` would accept it
    shutil.copy(IMAGES / f"{SMALLEST}.png", tmp_path / "images")
    assert main(["ocr", "--root", str(tmp_path), "--workers", "1", "--engine", "tesseract"]) == 0
    key = TesseractEngine().key
    assert list(read_ocr_cache(tmp_path / "ocr" / key / "ocr_cache.jsonl")) == [SMALLEST]
    (line,) = read_report(tmp_path / "reports" / f"ocr_failures-{key}.jsonl")
    assert line["image_id"] == f"{SMALLEST}\n" and "is not a safe file name" in line["reason"]  # no JSON: drawings


# ---------------------------------------------------------------------------------------------- engines


def test_drawing_engine_through_the_stage_equals_the_engine(tmp_path):
    """The default engine, in worker processes: the same words and boxes as the engine in this process."""
    engine = load_ocr_engine("drawing")
    ids = [SMALLEST, WORDY]
    summary = run_ocr(ids, IMAGES, tmp_path / "ocr_cache.jsonl", tmp_path / "failures.jsonl", OcrOptions(workers=2))
    assert (summary.processed, summary.failed) == (2, 0)
    cache = read_ocr_cache(tmp_path)
    for image_id in ids:
        assert (cache[image_id]["words"], cache[image_id]["boxes"]) == engine(load_image(IMAGES / f"{image_id}.png"))
    assert "21" in cache[SMALLEST]["words"]  # the numeral Tesseract's page mode does not see on FIG. 12
    assert json.loads((tmp_path / "ocr_engine.json").read_text()) == engine.to_dict()


def test_a_folder_of_one_engine_refuses_another(tmp_path):
    run_tesseract_stage([SMALLEST], IMAGES, tmp_path / "ocr_cache.jsonl", tmp_path / "failures.jsonl")
    for other in ("drawing", TesseractEngine(config="--psm 11")):
        with pytest.raises(ValueError, match="holds the OCR of .*tesseract.*give each engine its own folder"):
            run_ocr(
                [SMALLEST], IMAGES, tmp_path / "ocr_cache.jsonl", tmp_path / "failures.jsonl", OcrOptions(engine=other)
            )
    # A cache written before engines were recorded is Tesseract's: the paper's engine may go on with it.
    (tmp_path / "ocr_engine.json").unlink()
    again = run_tesseract_stage([SMALLEST], IMAGES, tmp_path / "ocr_cache.jsonl", tmp_path / "failures.jsonl")
    assert again.cached == 1
    with pytest.raises(ValueError, match="give each engine its own folder"):
        run_ocr(
            [SMALLEST], IMAGES, tmp_path / "ocr_cache.jsonl", tmp_path / "failures.jsonl", OcrOptions(engine="drawing")
        )


def test_switching_engines_keeps_each_engines_cache_and_build_picks_one(tmp_path):
    (tmp_path / "images").mkdir()
    shutil.copy(IMAGES / f"{SMALLEST}.png", tmp_path / "images")
    for engine in ("tesseract", "drawing"):
        assert main(["ocr", "--root", str(tmp_path), "--workers", "1", "--engine", engine]) == 0
    tesseract, drawing = TesseractEngine().key, load_ocr_engine("drawing").key
    assert read_ocr_cache(tmp_path / "ocr" / tesseract)[SMALLEST]["words"] == []  # the paper's OCR: nothing
    assert "21" in read_ocr_cache(tmp_path / "ocr" / drawing)[SMALLEST]["words"]
    with pytest.raises(ValueError, match=r"several engines .*--ocr-engine"):
        find_ocr_folder(tmp_path / "ocr")
    assert find_ocr_folder(tmp_path / "ocr", "drawing") == tmp_path / "ocr" / drawing
    assert find_ocr_folder(tmp_path / "ocr", tesseract) == tmp_path / "ocr" / tesseract
    with pytest.raises(FileNotFoundError, match="no OCR cache of 'rapidocr'"):
        find_ocr_folder(tmp_path / "ocr", "rapidocr")


def test_drawing_engine_reports_bad_figures_and_processes_blank_ones(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("1", (600, 800), 1).save(images / "US20250204297A1__1.png")  # a blank sheet: no word, still a row
    good = (IMAGES / f"{SMALLEST}.png").read_bytes()
    (images / "US20250204297A1__2.png").write_bytes(good[: len(good) // 3])  # truncated PNG
    ids = ["US20250204297A1__1", "US20250204297A1__2"]
    report = tmp_path / "failures.jsonl"
    summary = run_ocr(ids, images, tmp_path / "ocr" / "ocr_cache.jsonl", report, OcrOptions(workers=2))
    assert (summary.processed, summary.failed) == (1, 1)
    assert read_ocr_cache(tmp_path / "ocr")["US20250204297A1__1"]["words"] == []
    (line,) = read_report(report)
    assert line["image_id"] == "US20250204297A1__2" and "unreadable image" in line["reason"]


def _sheet_of_glyph_noise(path: Path, side: int = 4000, blobs: int = 8000) -> None:
    """A 1-bit sheet covered with glyph-sized blots: thousands of numeral candidates for the drawing engine (tens of
    seconds of recognition), as a noisy scan gives."""
    import numpy as np

    rng = np.random.default_rng(0)
    ink = np.zeros((side, side), bool)
    for x, y, w, h in zip(*(rng.integers(0, side - 40, blobs) for _ in range(2)), rng.integers(10, 25, blobs),
                          rng.integers(20, 40, blobs)):  # fmt: skip
        ink[y : y + h, x : x + w] = True
    Image.fromarray(~ink).convert("1").save(path)


@pytest.mark.slow
def test_the_timeout_bounds_the_drawing_engine_too_and_the_run_goes_on(tmp_path):
    """The drawing engine has no time limit of its own: the stage runs it in a process killed at `--timeout`."""
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(IMAGES / f"{SMALLEST}.png", images)
    noisy = "US20250204297A1__99"
    _sheet_of_glyph_noise(images / f"{noisy}.png")
    report = tmp_path / "failures.jsonl"
    options = OcrOptions(engine="drawing", workers=1, timeout=5)
    summary = run_ocr([noisy, SMALLEST], images, tmp_path / "ocr" / "ocr_cache.jsonl", report, options)
    assert (summary.processed, summary.failed) == (1, 1)
    (line,) = read_report(report)
    assert line["image_id"] == noisy and line["permanent"] is False  # a rerun (with a larger --timeout) retries it
    assert line["reason"] == "drawing OCR timed out after 5 s (its process was stopped)"
    assert "21" in read_ocr_cache(tmp_path / "ocr")[SMALLEST]["words"]
