"""The pretraining tests' session fixture: the bundled figures as a `pretraining` dataset (and a `brief` one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

NUMERAL = re.compile(r"^\d{1,4}[A-Za-z]?$")


def fixture_layout(words: list[str], boxes: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """Layout elements for the tests, from the OCR words alone (a stand-in for the dataset's `layout` step): a
    reference numeral is a node label (1) inside a node (0) around it, `FIG...` a figure label (2), other words
    text (3)."""
    elements, classes = [], []
    for word, (x0, y0, x1, y1) in zip(words, boxes):
        if NUMERAL.match(word):
            elements += [[max(0, x0 - 60), max(0, y0 - 60), min(1000, x1 + 60), min(1000, y1 + 60)], [x0, y0, x1, y1]]
            classes += [0, 1]
        else:
            elements.append([x0, y0, x1, y1])
            classes.append(2 if word.upper().startswith("FIG") else 3)
    return elements, classes


@pytest.fixture(scope="session")
def pretraining_dir(tmp_path_factory, figures) -> Path:
    """A dataset folder with the 19 bundled figures: `pretraining/` (image, Tesseract words, fixture layout) and
    `brief/` (PatentDesc rows for stage 1), both `save_to_disk` folders; images stored at <= 256 px."""
    from dataset_builder.features import patentdesc_features
    from processing.images import load_image
    from processing.ocr_tesseract import run_tesseract

    pretraining = {key: [] for key in ("image_id", "image", "ocr_words", "ocr_boxes", "layout_boxes", "layout_classes")}
    brief = {key: [] for key in ("image_id", "patent_id", "figure", "image", "description", "ocr_words", "ocr_boxes")}
    for image_id, entry in sorted(figures.items()):
        figure = load_image(entry["path"])
        words, boxes = run_tesseract(figure)
        figure.thumbnail((256, 256))
        layout_boxes, layout_classes = fixture_layout(words, boxes)
        for key, value in zip(pretraining, (image_id, figure, words, boxes, layout_boxes, layout_classes)):
            pretraining[key].append(value)
        patent, index = image_id.split("__")
        for key, value in zip(brief, (image_id, patent, index, figure, entry["brief_description"], words, boxes)):
            brief[key].append(value)
    folder = tmp_path_factory.mktemp("pretraining-data")
    DatasetDict({"train": Dataset.from_dict(pretraining)}).save_to_disk(str(folder / "pretraining"))
    rows = Dataset.from_dict(brief, features=patentdesc_features())
    DatasetDict({"train": rows, "validation": rows.select(range(2))}).save_to_disk(str(folder / "brief"))
    return folder
