"""The `layout` step: real `drawing` OCR of bundled figures -> elements; COCO import; bad figures; reruns."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from dataset_builder.drawing_elements import drawing_elements
from dataset_builder.entries import iter_ocr_cache
from dataset_builder.layout import DatasetLayout
from dataset_builder.layout_elements import PATCH_CLASSES, patch_labels, token_nodes
from dataset_builder.layout_labels import run_layout
from dataset_builder.ocr import ocr_root
from dataset_builder.options import LayoutOptions, OcrOptions
from dataset_builder.pretraining_caches import read_layout_cache
from dataset_builder.reports import read_report
from helpers import FIGURES
from helpers.damaged import damaged_images
from patentlmm.cli.dataset import main
from patentlmm_common.jsonl import JsonlAppender
from processing.references import is_numeral

IDS = ["US20250204297A1__1", "US20250204297A1__12"]  # 16 and 3 words of the drawing engine


@pytest.fixture(scope="module")
def ocred_root(tmp_path_factory):
    """A root of two bundled figures with their real `drawing` OCR (`ocr` step)."""
    root = tmp_path_factory.mktemp("drawings")
    (root / "images").mkdir()
    for image_id in IDS:
        shutil.copy(FIGURES / f"{image_id}.png", root / "images")
    assert ocr_root(root, OcrOptions(engine="drawing", workers=2)) == 0
    return root


@pytest.fixture
def root(ocred_root, tmp_path):
    return shutil.copytree(ocred_root, tmp_path / "root")


def test_layout_of_the_drawing_ocr(root):
    summary = run_layout(root, LayoutOptions(workers=2))
    assert (summary.total, summary.processed, summary.failed) == (2, 2, 0)
    cache = read_layout_cache(root / "layout")
    ocr = {i: {"words": w, "boxes": b} for i, w, b in iter_ocr_cache(DatasetLayout(root).ocr_cache_paths)}
    matched = []  # whether each numeral shares a patch with a node (its TNA target)
    for image_id in IDS:
        ink = np.asarray(Image.open(FIGURES / f"{image_id}.png").convert("L")) < 128
        words, boxes = ocr[image_id]["words"], ocr[image_id]["boxes"]
        expected_boxes, expected_classes = drawing_elements(ink, words, boxes, 91, 3)
        assert cache[image_id] == {"boxes": expected_boxes, "classes": expected_classes}
        elements = list(zip(cache[image_id]["boxes"], cache[image_id]["classes"]))
        # "Figure" and its number are one figure label; every other numeral the engine read is a node label
        figure_at = words.index("Figure")
        label = [box for box, c in elements if c == PATCH_CLASSES.index("figure_label")]
        assert label == [[*boxes[figure_at][:2], *boxes[figure_at + 1][2:]]]
        numerals = [box for i, (word, box) in enumerate(zip(words, boxes)) if is_numeral(word) and i != figure_at + 1]
        assert [box for box, c in elements if c == PATCH_CLASSES.index("node_label")] == numerals
        assert len(numerals) == {IDS[0]: 13, IDS[1]: 1}[image_id]
        assert PATCH_CLASSES.index("node") in cache[image_id]["classes"]
        assert PATCH_CLASSES.index("arrow") not in cache[image_id]["classes"]
        nodes = [box for box, c in elements if c == 0]
        matched += (token_nodes(numerals, nodes) >= 0).tolist()
        assert patch_labels(*zip(*elements)).any(axis=0).tolist() == [True, True, True, image_id == IDS[0], False]
    assert sum(matched) >= 0.75 * len(matched) == 0.75 * 14  # most leader lines reach their numeral's patch
    source = json.loads((root / "layout" / "layout_source.json").read_text())
    assert source == {"source": "ocr", "ocr": DatasetLayout(root).ocr_engine_record, "min_node_side": 91, "join": 3}


def test_bad_figures_are_reported_the_run_goes_on_and_a_rerun_resumes(root):
    layout = DatasetLayout(root)
    damaged = {f"US11036663B2__{k}": (name, data) for k, (name, data) in enumerate(damaged_images().items(), 1)}
    with JsonlAppender(layout.ocr_cache_paths[0]) as cache:  # OCRed once, damaged since
        for image_id, (_, data) in damaged.items():
            (root / "images" / f"{image_id}.png").write_bytes(data)
            cache.write({"image_id": image_id, "words": ["12"], "boxes": [[1, 1, 5, 5]], "width": 64, "height": 64})
    shutil.copy(FIGURES / f"{IDS[0]}.png", root / "images" / "US11036663B2__9.png")  # no OCR
    summary = run_layout(root, LayoutOptions(workers=2))
    assert (summary.total, summary.processed, summary.failed) == (6, 2, 4)
    lines = {line["image_id"]: line for line in read_report(root / "reports" / "layout_failures.jsonl")}
    for image_id, (name, _) in damaged.items():
        assert lines[image_id]["reason"].startswith(f"unreadable image images/{image_id}.png: {name}: ")
        assert lines[image_id]["permanent"] is True
    assert lines["US11036663B2__9"]["reason"].startswith(f"no OCR of it in {layout.ocr_folder} (run `ocr` first")
    assert lines["US11036663B2__9"]["permanent"] is False
    again = run_layout(root, LayoutOptions(workers=1))
    assert (again.processed, again.cached, again.previously_failed, again.failed) == (0, 2, 3, 1)
    retried = run_layout(root, LayoutOptions(workers=1, retry_failed=True))
    assert (retried.processed, retried.cached, retried.failed) == (0, 2, 4)
    assert sorted(read_layout_cache(root / "layout")) == IDS


def _coco(path, categories):
    images = [{"id": i, "file_name": f"{image_id}.png", "width": 1000, "height": 500} for i, image_id in enumerate(IDS)]
    annotations = [
        {"id": 1, "image_id": 0, "category_id": 1, "bbox": [100, 100, 300, 200]},
        {"id": 2, "image_id": 0, "category_id": 2, "bbox": [10, 20, 30, 40]},
        {"id": 3, "image_id": 0, "category_id": 3, "bbox": [0, 0, 5, 5]},
        {"id": 4, "image_id": 0, "category_id": 3, "bbox": [0, 0, 5, 5]},
    ]
    path.write_text(json.dumps({"images": images[:1], "annotations": annotations, "categories": categories}))
    return path


def test_coco_import_from_the_command_line(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    for image_id in IDS:
        shutil.copy(FIGURES / f"{image_id}.png", root / "images")
    coco = _coco(tmp_path / "boxes.json", [{"id": 1, "name": "Node"}, {"id": 2, "name": "arrow"},
                                           {"id": 3, "name": "leader line"}])  # fmt: skip
    assert main(["layout", "--root", str(root), "--coco", str(coco)]) == 0
    captured = capsys.readouterr()
    assert f"layout: {coco}: category 'leader line' is none of the patch classes: its 2 annotation(s) left out" in (
        captured.err
    )
    assert "layout: 2 figures: 1 done (2 elements), 0 already cached, 1 failed" in captured.out
    assert read_layout_cache(root / "layout") == {IDS[0]: {"boxes": [[100, 200, 400, 600], [10, 40, 40, 120]],
                                                           "classes": [0, 4]}}  # fmt: skip
    [line] = read_report(root / "reports" / "layout_failures.jsonl")
    assert (line["image_id"], line["reason"], line["permanent"]) == (IDS[1], f"not an image of {coco}", True)
    # the folder belongs to that file: the OCR heuristics (or another COCO file) are refused, nothing is lost
    (root / "ocr" / "x").mkdir(parents=True)
    (root / "ocr" / "x" / "ocr_engine.json").write_text('{"engine": "drawing"}')
    assert main(["layout", "--root", str(root)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"layout: {root / 'layout'} holds the layout elements made with other settings (")
    assert "source: 'coco' there, 'ocr' now" in error and error.endswith("move the folder away to start over\n")
    assert len(read_layout_cache(root / "layout")) == 1


def test_a_broken_coco_file_or_no_ocr_is_one_line(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2")
    assert main(["layout", "--root", str(root), "--coco", str(broken)]) == 2
    assert capsys.readouterr().err.startswith(f"layout: {broken} is not a readable COCO JSON file: ")
    assert main(["layout", "--root", str(root)]) == 2
    assert capsys.readouterr().err == (
        f"layout: no OCR cache in {root / 'ocr'}: run `ocr --engine drawing` first (or --coco)\n"
    )
