"""dataset_builder `build`, `PatentDesc355k` and `export-llava`, end to end on the real patent figures (real
Tesseract OCR written in the `ocr` step's cache format), plus a corpus of bad images."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from datasets import Image as ImageFeature
from datasets import load_dataset
from PIL import Image

from dataset_builder.build import build_patentdesc_dataset
from dataset_builder.export_llava import export_llava, llava_sample
from dataset_builder.hf_builder import PatentDesc355k
from dataset_builder.ids import patent_id_of
from dataset_builder.image_check import prepare_image
from dataset_builder.options import BuildOptions, ExportOptions
from dataset_builder.reports import read_report
from helpers import FIGURES, REPO
from helpers.damaged import damaged_images, encoded
from helpers.processes import ProcessKiller, child_of, held_lock
from patentlmm_common.files import AlreadyRunningError
from processing.images import load_image
from processing.ocr_tesseract import run_tesseract
from processing.prompts import escape_description

CORPUS = IMAGES = FIGURES
# Entries without an image, as the official corpus lists some (their drawings were never published with the text).
TEXT_ONLY = {
    f"US08926509__{figure}": {
        "image_url": "PatentDocument/resources/samples/xml2014/US08926509.xml (no image)",
        "brief_description": f"FIG. {figure} is a block diagram of a wireless health monitoring system.",
        "detailed_description": f"FIG. {figure} shows a medical signal processor 104.",
    }
    for figure in ("1A", "1B", "2")
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _ocr_line(path: Path) -> str:
    image = load_image(path)
    words, boxes = run_tesseract(image)
    entry = {"image_id": path.stem, "words": words, "boxes": boxes, "width": image.width, "height": image.height}
    return json.dumps(entry)


@pytest.fixture(scope="session")
def ocr_lines() -> list[str]:
    """Real Tesseract OCR of every corpus figure, as lines of the `ocr` step's cache (run once per session)."""
    with ThreadPoolExecutor(2) as pool:  # Tesseract runs as a subprocess: two threads keep both cores busy
        return list(pool.map(_ocr_line, sorted(IMAGES.glob("*.png"))))


def _root(folder: Path, ocr_lines: list[str], text_only: bool = True) -> Path:
    """A dataset root like the official DATASET/: the real figures, their descriptions (+ text-only ones), OCR."""
    folder.mkdir(parents=True)
    entries = json.loads((CORPUS / "descriptions.json").read_text(encoding="utf-8"))
    if text_only:
        entries.update(TEXT_ONLY)
    (folder / "PatentDesc-355k.json").write_text(json.dumps(entries), encoding="utf-8")
    shutil.copytree(IMAGES, folder / "images", ignore=shutil.ignore_patterns("*.json", "*.md"))
    (folder / "ocr").mkdir()
    (folder / "ocr" / "ocr_cache.jsonl").write_text("\n".join(ocr_lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory, ocr_lines) -> Path:
    """The real corpus with official-style split lists (text-only ids listed too), built by two processes."""
    root = _root(tmp_path_factory.mktemp("real") / "DATASET", ocr_lines)
    ids = list(json.loads((root / "PatentDesc-355k.json").read_text(encoding="utf-8")))
    (root / "data_splits").mkdir()
    for index, stem in enumerate(("train", "val", "test")):
        (root / "data_splits" / f"{stem}.txt").write_text("\n".join(ids[index::3]) + "\n")
    build_patentdesc_dataset(root, options=BuildOptions(workers=2), progress=False)
    return root


def _rows(dataset) -> list[dict]:
    return [dict(row) for row in dataset.cast_column("image", ImageFeature(decode=False))]


def test_build_writes_parquet_per_config_and_split_and_a_card(built):
    entries = json.loads((built / "PatentDesc-355k.json").read_text(encoding="utf-8"))
    with_image = {image_id for image_id in entries if (built / "images" / f"{image_id}.png").is_file()}
    folder = built / "patentdesc-355k"
    card = (folder / "README.md").read_text()
    assert "config_name: brief" in card and "config_name: detailed" in card and "dtype: image" in card
    assert "license: unknown" in card and "shukla2025patentlmm" in card and "path: brief/train-*.parquet" in card
    assert not [p for p in built.iterdir() if ".tmp-" in p.name]  # no staging folder left
    brief = load_dataset(str(folder), "brief", cache_dir=str(built / "hf-cache"))
    rows = {row["image_id"]: row for split in brief.values() for row in _rows(split)}
    assert set(rows) == {i for i in with_image if entries[i]["brief_description"].strip()}
    row = rows[sorted(rows)[0]]
    assert row["patent_id"] == patent_id_of(row["image_id"]) and row["figure"] == row["image_id"].split("__")[1]
    assert row["image"]["bytes"] == (built / "images" / f"{row['image_id']}.png").read_bytes()  # 1-bit PNG kept
    assert row["description"] == entries[row["image_id"]]["brief_description"].strip()
    assert all(len(r["ocr_words"]) == len(r["ocr_boxes"]) for r in rows.values())
    assert any(r["ocr_words"] for r in rows.values()) and any(r["ocr_words"] == [] for r in rows.values())
    assert set(brief) == {"train", "validation", "test"}
    val_ids = set(list(entries)[1::3])
    assert set(brief["validation"]["image_id"]) == val_ids & set(rows)  # the ids of val.txt
    detailed = load_dataset(str(folder), "detailed", cache_dir=str(built / "hf-cache"))
    detailed_ids = {i for split in detailed.values() for i in split["image_id"]}
    assert detailed_ids == {i for i in with_image if entries[i]["detailed_description"].strip()}
    reports = read_report(built / "reports" / "rejected.jsonl")
    missing = {line["image_id"] for line in reports if "is missing" in line["reason"]}
    assert missing == set(entries) - with_image == set(TEXT_ONLY)  # text-only entries: reported, not fatal


def test_load_from_the_parent_folder_and_streaming_give_the_same_rows(built, monkeypatch):
    cache = str(built / "hf-cache")
    by_path = load_dataset(str(built / "patentdesc-355k"), "detailed", cache_dir=cache)
    monkeypatch.chdir(built)
    from_parent = load_dataset("patentdesc-355k", "detailed", cache_dir=cache)
    streamed = load_dataset("patentdesc-355k", "detailed", streaming=True)
    for split in by_path:
        expected = _rows(by_path[split])
        assert _rows(from_parent[split]) == expected
        assert _rows(streamed[split]) == expected
    default = load_dataset("patentdesc-355k", cache_dir=cache)  # the card makes `brief` the default config
    assert "description" in default["train"].features and len(default["train"]) >= len(by_path["train"])


def test_the_generator_builder_gives_the_same_rows_as_the_parquet_folder(built):
    cache = built / "hf-cache"
    written = (built / "reports" / "rejected.jsonl").stat().st_mtime_ns
    for config in ("brief", "detailed"):
        builder = PatentDesc355k(
            config_name=config,
            data_dir=str(built),
            cache_dir=str(cache / "builder"),
        )
        builder.download_and_prepare()
        generated = builder.as_dataset()
        parquet = load_dataset(str(built / "patentdesc-355k"), config, cache_dir=str(cache))
        assert generated["train"].features == parquet["train"].features
        for split in parquet:
            assert _rows(generated[split]) == _rows(parquet[split])
    assert (built / "reports" / "rejected.jsonl").stat().st_mtime_ns == written  # the root's report is untouched
    assert len(list((cache / "builder").rglob("rejected.jsonl"))) == 2  # each config's build reports in the cache


def _png_with_header(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` (a decompression bomb's header) with one tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _encoded(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def test_bad_images_and_entries_are_reported_and_the_rest_is_built(tmp_path):
    real = sorted(IMAGES.glob("*.png"))[0].read_bytes()
    grey = Image.linear_gradient("L").resize((48, 40))
    images = {
        "US1000000B2__1": _encoded(grey),  # fine (L PNG, kept)
        "US1000000B2__2": real[: len(real) // 2],  # truncated
        "US1000000B2__3": b"",  # zero bytes
        "US1000000B2__4": b"<html><body>404 Not Found</body></html>",  # not an image
        "US1000000B2__5": _png_with_header(100_000, 100_000),  # decompression bomb header
        "US1000000B2__6": _encoded(Image.new("1", (3000, 3000), 1)),  # huge dimensions (over the test's cap)
        "US1000000B2__7": _encoded(Image.new("CMYK", (40, 30), (0, 255, 0, 0)), "JPEG"),  # CMYK JPEG as .png
        "US1000000B2__8": _encoded(Image.new("I;16", (40, 30), 40000)),  # 16-bit
        "US1000000B2__9": _encoded(grey.convert("P")),  # palette
        "US1000000B2__10": _encoded(grey.convert("RGBA")),  # alpha
        "US1000000B2__11": _encoded(grey),  # no OCR result
        "US1000000B2__12": _encoded(grey),  # both descriptions empty
        "US1000000B2__13": _encoded(grey),  # empty brief description only
    }
    root = _figures_root(tmp_path / "DATASET", 0, images, without_ocr={"US1000000B2__11"})
    entries = json.loads((root / "PatentDesc-355k.json").read_text())
    entries["US1000000B2__12"].update(brief_description=" ", detailed_description="")
    entries["US1000000B2__13"]["brief_description"] = ""
    entries["US1000000B2__14"] = {"image_url": "u", "brief_description": 3, "detailed_description": "D"}
    (root / "PatentDesc-355k.json").write_text(json.dumps(entries))
    options = BuildOptions(ratios={"train": 1.0, "validation": 0.0, "test": 0.0}, max_image_pixels=4_000_000)
    summary = build_patentdesc_dataset(root, options=options, progress=False)

    reasons: dict[str, list[tuple[str | None, str]]] = {}
    for line in read_report(root / "reports" / "rejected.jsonl"):
        reasons.setdefault(line["image_id"], []).append((line.get("action"), line["reason"]))
    expected = {
        "US1000000B2__2": "could not be decoded",
        "US1000000B2__3": "empty (0 bytes)",
        "US1000000B2__4": "not an image",
        "US1000000B2__5": "decompression bombs",
        "US1000000B2__6": "over the cap of 4,000,000",
        "US1000000B2__11": "no OCR result",
        "US1000000B2__14": "'brief_description' is a number",
    }
    for image_id, reason in expected.items():
        assert any(reason in text for _, text in reasons[image_id]), (image_id, reasons.get(image_id))
    for image_id, mode in (("__7", "CMYK"), ("__8", "I;16"), ("__9", "mode P"), ("__10", "RGBA")):
        assert ("converted", reasons[f"US1000000B2{image_id}"][0][1]) == reasons[f"US1000000B2{image_id}"][0]
        assert mode in reasons[f"US1000000B2{image_id}"][0][1]
    assert reasons["US1000000B2__12"] == [
        ("dropped from brief", "empty brief description"),
        ("dropped from detailed", "empty detailed description"),
    ]
    assert reasons["US1000000B2__13"] == [("dropped from brief", "empty brief description")]

    kept = ["US1000000B2__1", "US1000000B2__7", "US1000000B2__8", "US1000000B2__9", "US1000000B2__10"]
    assert summary.num_examples == {"brief": {"train": 5}, "detailed": {"train": 6}}
    brief = load_dataset(str(root / "patentdesc-355k"), "brief", cache_dir=str(tmp_path / "cache"))["train"]
    assert brief["image_id"] == kept
    for row in brief:  # every stored image decodes; converted ones are 8-bit RGB
        assert row["image"].mode == ("L" if row["image_id"] == kept[0] else "RGB")
    assert brief[2]["image"].getpixel((0, 0)) == (156, 156, 156)  # the 16-bit 40000 scaled: round(40000 / 257)


def test_prepare_image_keeps_1bit_png_bytes_and_reports_a_missing_file(tmp_path):
    path = sorted(IMAGES.glob("*.png"))[0]
    assert prepare_image(path).png == path.read_bytes() and prepare_image(path).note is None
    assert "is missing" in prepare_image(tmp_path / "images" / "US1__1.png").error


def test_official_ocr_adds_token_columns_and_a_rebuild_replaces_the_folder(tmp_path, ocr_lines):
    root = _root(tmp_path / "DATASET", ocr_lines[:3], text_only=False)
    first = json.loads(ocr_lines[0])["image_id"]
    official = {f"{first}.png": {"input_ids": [[0, 9, 2]], "attention_mask": [[1, 1, 1]], "bbox": [[[0] * 4] * 3]}}
    (root / "ocr.json").write_text(json.dumps(official))
    (root / "patentdesc-355k").mkdir()
    (root / "patentdesc-355k" / "stale.txt").write_text("from an earlier build")
    options = BuildOptions(ratios={"train": 1.0, "validation": 0.0, "test": 0.0})
    build_patentdesc_dataset(root, options=options, progress=False)
    assert not (root / "patentdesc-355k" / "stale.txt").exists()
    brief = load_dataset(str(root / "patentdesc-355k"), "brief", cache_dir=str(tmp_path / "cache"))["train"]
    rows = {row["image_id"]: row for row in _rows(brief)}
    assert rows[first]["ocr_input_ids"] == [0, 9, 2] and rows[first]["ocr_bbox"] == [[0, 0, 0, 0]] * 3
    others = [row for image_id, row in rows.items() if image_id != first]
    assert others and all(row["ocr_input_ids"] is None and row["ocr_words"] is not None for row in others)
    assert "ocr_input_ids" in (root / "patentdesc-355k" / "README.md").read_text()


def test_export_llava_writes_the_original_files_byte_for_byte(tmp_path, ocr_lines):
    root = _root(tmp_path / "DATASET", ocr_lines)
    entries = json.loads((root / "PatentDesc-355k.json").read_text(encoding="utf-8"))
    ids = sorted(p.stem for p in (root / "images").glob("*.png"))
    first = ids[0]
    entries[first]["brief_description"] = "  A <image> with <im_patch> and 3 < 4 > 2 <image-placeholder>.  "
    unlisted = "US99999999B1__1"  # in the JSON, in no split list
    entries[unlisted] = {
        "image_url": "https://example.invalid/1.png",
        "brief_description": "FIG. 1 is x.",
        "detailed_description": "",
    }
    (root / "PatentDesc-355k.json").write_text(json.dumps(entries), encoding="utf-8")
    (root / "data_splits").mkdir()
    (root / "data_splits" / "train.txt").write_text("\n".join(ids[: len(ids) // 2]) + "\n")
    (root / "data_splits" / "val.txt").write_text("\n".join(ids[len(ids) // 2 :]) + "\n")
    counts = export_llava(root, progress=False)
    assert set(counts) == {"brief_train", "brief_val", "detailed_train", "detailed_val"}
    for name in counts:
        desc_type, split = name.split("_")
        listed = set((root / "data_splits" / f"{split}.txt").read_text().split())
        # What the original prep_patent_data.py does for these ids (in the JSON's order).
        expected = []
        for image_id, entry in entries.items():
            desc = entry[f"{desc_type}_description"].strip()
            if image_id in listed and desc:
                for token in ["<image>", "<im_patch>", "<im_start>", "<im_end>", "<image-placeholder>", "<", ">"]:
                    desc = desc.replace(token, token.replace("<", "[[").replace(">", "]]"))
                human = f"<image>\nWrite a {desc_type} description for this patent image."
                conversations = [{"from": "human", "value": human}, {"from": "gpt", "value": desc}]
                expected.append({"id": image_id, "image": f"{image_id}.png", "conversations": conversations})
        assert (root / "llava_json" / name).read_text() == json.dumps(expected), name
        assert counts[name] == len(expected)
    sample = llava_sample(first, "brief", entries[first]["brief_description"])
    assert sample["conversations"][1]["value"] == escape_description(entries[first]["brief_description"].strip())
    assert "[[image]] with [[im_patch]] and 3 [[ 4 ]] 2 [[image-placeholder]]." in sample["conversations"][1]["value"]
    report = read_report(root / "reports" / "export_llava_rejected.jsonl")
    assert any(line["image_id"] == unlisted and "not in any split list" in line["reason"] for line in report)


def _figures_root(
    folder: Path, count: int, images: dict[str, bytes] | None = None, without_ocr: set[str] = frozenset()
) -> Path:
    """A root of `count` copies of one real figure (ids US1000000B2__1..), plus `images`, each with an OCR line
    (of no words) but those of `without_ocr`."""
    real = sorted(IMAGES.glob("*.png"))[0].read_bytes()
    images = {**{f"US1000000B2__{k}": real for k in range(1, count + 1)}, **(images or {})}
    (folder / "images").mkdir(parents=True)
    (folder / "ocr").mkdir()
    entries = {}
    for image_id, data in images.items():
        (folder / "images" / f"{image_id}.png").write_bytes(data)
        entries[image_id] = {"image_url": "u", "brief_description": f"B {image_id}", "detailed_description": "D"}
    (folder / "PatentDesc-355k.json").write_text(json.dumps(entries))
    lines = [json.dumps({"image_id": i, "words": [], "boxes": []}) + "\n" for i in images if i not in without_ocr]
    (folder / "ocr" / "ocr_cache.jsonl").write_text("".join(lines))
    return folder


ALL_TRAIN = BuildOptions(ratios={"train": 1.0, "validation": 0.0, "test": 0.0}, workers=2)


def test_damaged_and_animated_files_are_reported_by_file_and_id_and_the_rest_is_built(tmp_path):
    damaged = {f"US2000000B2__{k}": data for k, data in enumerate(damaged_images().values(), start=1)}
    frames = [Image.new("L", (32, 24), value) for value in (0, 128, 255)]
    animated = {
        "US3000000B2__1": encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100),
        "US3000000B2__2": encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "US3000000B2__3": encoded(frames[0], "PNG", save_all=True, append_images=frames[1:]),  # APNG
    }
    root = _figures_root(tmp_path / "DATASET", 3, {**damaged, **animated})
    summary = build_patentdesc_dataset(root, options=ALL_TRAIN, progress=False)
    assert summary.num_examples == {"brief": {"train": 6}, "detailed": {"train": 6}}
    lines = {line["image_id"]: line for line in read_report(root / "reports" / "rejected.jsonl")}
    for (image_id, _), name in zip(damaged.items(), damaged_images()):
        assert lines[image_id]["reason"].startswith(f"invalid image images/{image_id}.png: {name}: "), lines[image_id]
        assert lines[image_id]["action"] == "rejected"
    for image_id, kind in zip(animated, ("GIF", "TIFF", "PNG")):
        assert lines[image_id]["action"] == "converted"
        assert lines[image_id]["reason"].endswith(f"{kind} image with 3 frames: only the first frame is kept")
    brief = load_dataset(str(root / "patentdesc-355k"), "brief", cache_dir=str(tmp_path / "cache"))["train"]
    for row in brief:
        if row["image_id"] in animated:
            assert getattr(row["image"], "n_frames", 1) == 1 and row["image"].convert("L").getpixel((0, 0)) == 0


def test_a_killed_image_worker_fails_no_figure_and_the_build_goes_on(tmp_path):
    """One of build's two image workers is SIGKILLed mid-run: the figures it had are checked again, all are built."""
    root = _figures_root(tmp_path / "DATASET", 60)
    with ProcessKiller(child_of(os.getpid()), limit=1) as killer:
        summary = build_patentdesc_dataset(root, options=ALL_TRAIN, progress=False)
    assert len(killer.killed) == 1
    assert summary.num_examples == {"brief": {"train": 60}, "detailed": {"train": 60}}
    assert not (root / "reports" / "rejected.jsonl").exists()


_BUILD = """
import sys
from dataset_builder.build import build_patentdesc_dataset
from dataset_builder.options import BuildOptions
build_patentdesc_dataset(sys.argv[1], options=BuildOptions(workers=1), progress=False)
"""


@pytest.mark.slow  # 19-23 s on 2 busy cores: the child imports datasets and transformers before it builds
def test_a_sigkilled_build_leaves_no_dataset_and_the_next_build_removes_its_leftovers(tmp_path):
    root = _figures_root(tmp_path / "DATASET", 120)
    child = subprocess.Popen([sys.executable, "-c", _BUILD, str(root)], cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90  # the child first imports datasets and transformers
        while not list(root.glob(".patentdesc-355k.tmp-*/.patentdesc-work-*/seen.sqlite")):  # reading the JSON
            assert child.poll() is None and time.monotonic() < deadline, "the child ended or stalled"
            time.sleep(0.01)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert list(root.glob(".patentdesc-355k.tmp-*")) and not (root / "patentdesc-355k").exists()
    build_patentdesc_dataset(root, options=ALL_TRAIN, progress=False)
    assert not list(root.glob(".patentdesc-355k.tmp-*"))
    assert load_dataset(str(root / "patentdesc-355k"), "brief", cache_dir=str(tmp_path / "c"))["train"].num_rows == 120


def test_a_second_build_of_the_same_output_stops_at_once(tmp_path):
    root = _figures_root(tmp_path / "DATASET", 2)
    with held_lock(root / ".patentdesc-355k.lock") as holder:
        message = rf"a build of {root / 'patentdesc-355k'} is already running \(pid {holder} "
        with pytest.raises(AlreadyRunningError, match=message):
            build_patentdesc_dataset(root, options=ALL_TRAIN, progress=False)
    assert not (root / "patentdesc-355k").exists() and not list(root.glob(".patentdesc-355k.tmp-*"))


def test_the_dataset_and_the_llava_export_are_readable_with_the_usual_umask(tmp_path):
    root = _figures_root(tmp_path / "DATASET", 2)
    old = os.umask(0o022)
    try:
        build_patentdesc_dataset(root, options=ALL_TRAIN, progress=False)
        export_llava(root, options=ExportOptions(ratios={"train": 1.0, "validation": 0.0, "test": 0.0}), progress=False)
    finally:
        os.umask(old)
    written = [root / "patentdesc-355k", *(root / "patentdesc-355k").rglob("*"), *(root / "llava_json").iterdir()]
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in written if not path.name.startswith(".")}
    assert modes == {path.name: "0o755" if path.is_dir() else "0o644" for path in written if path.name in modes}
    assert {"brief_train", "patentdesc-355k", "README.md", "train-00000-of-00001.parquet"} <= set(modes)


def test_bad_ocr_json_values_are_reported_by_id_and_the_build_goes_on(tmp_path):
    root = _figures_root(tmp_path / "DATASET", 3)
    boxes = [[[0, 0, 0, 0]] * 3]
    official = {
        "US1000000B2__1.png": {"input_ids": [[0, 7, 2]], "attention_mask": [[1, 1, 1]], "bbox": boxes},
        "US1000000B2__2.png": {"input_ids": [[0, 2**31, 2]], "attention_mask": [[1, 1, 1]], "bbox": boxes},
        "US1000000B2__3.png": {"input_ids": [[0, -1, 2]], "attention_mask": [[1, 1, 1]], "bbox": boxes},
    }
    (root / "ocr.json").write_text(json.dumps(official))
    summary = build_patentdesc_dataset(root, options=ALL_TRAIN, progress=False)
    assert summary.num_examples == {"brief": {"train": 3}, "detailed": {"train": 3}}
    reasons = {line["image_id"]: line["reason"] for line in read_report(root / "reports" / "rejected.jsonl")}
    assert set(reasons) == {"US1000000B2__2", "US1000000B2__3"}
    assert "input_ids[1] = 2147483648 is not a token id" in reasons["US1000000B2__2"]
    brief = load_dataset(str(root / "patentdesc-355k"), "brief", cache_dir=str(tmp_path / "cache"))["train"]
    assert dict(zip(brief["image_id"], brief["ocr_input_ids"])) == {
        "US1000000B2__1": [0, 7, 2], "US1000000B2__2": None, "US1000000B2__3": None
    }  # fmt: skip


def test_card_and_parquet_metadata_record_the_ocr_engine(built):
    """The fixture's cache is a flat `ocr/ocr_cache.jsonl` (made before engines were keyed): Tesseract's."""
    import pyarrow.parquet as pq

    from processing.ocr_tesseract import TesseractEngine

    folder = built / "patentdesc-355k"
    expected = TesseractEngine().to_dict()
    assert f"- OCR: `{json.dumps(expected, sort_keys=True)}`" in (folder / "README.md").read_text()
    for path in folder.glob("*/*.parquet"):
        assert json.loads(pq.read_schema(path).metadata[b"patentlmm_ocr"]) == expected
