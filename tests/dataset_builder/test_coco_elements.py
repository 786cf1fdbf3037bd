"""`dataset_builder.coco_elements`: a detector's COCO JSON mapped onto the patch classes by category name."""

from __future__ import annotations

import json

import pytest

from dataset_builder.coco_elements import category_class, read_coco
from dataset_builder.jsonstream import BrokenFileError


def coco_file(tmp_path, **overrides):
    data = {
        "images": [
            {"id": 1, "file_name": "US1__1.png", "width": 200, "height": 400},
            {"id": 2, "file_name": "sheets/US1__2.png", "width": 100, "height": 100},  # no annotation
            {"id": 3, "file_name": "US1__3.png"},  # no size
            {"id": 4, "file_name": "US1__4.png", "width": 100, "height": 100},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [20, 40, 100, 200]},
            {"id": 11, "image_id": 1, "category_id": 8, "bbox": [0, 0, 10.5, 20]},
            {"id": 12, "image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]},
            {"id": 13, "image_id": 1, "category_id": 5, "bbox": [190, 390, 50, 50]},
            {"id": 14, "image_id": 4, "category_id": 7, "bbox": [1, 2, 3]},
            {"id": 15, "image_id": 1, "category_id": 42, "bbox": [0, 0, 1, 1]},
        ],
        "categories": [
            {"id": 7, "name": "Node"},
            {"id": 8, "name": "figure-label"},
            {"id": 9, "name": "leader line"},
            {"id": 5, "name": "Node Label"},
        ],
    }
    path = tmp_path / "detections.json"
    path.write_text(json.dumps({**data, **overrides}))
    return path


def test_category_names_map_onto_the_patch_classes():
    assert [category_class(n) for n in ("node", "Node Label", "figure-label", " TEXT ", "arrow")] == [0, 1, 2, 3, 4]
    assert category_class("leader line") is None and category_class("nodes") is None


def test_read_coco(tmp_path):
    coco = read_coco(coco_file(tmp_path))
    # x / 200 and y / 400 of the 200 x 400 image, [x, y, w, h] -> [x0, y0, x1, y1]; clipped to 1000
    assert coco.elements == {
        "US1__1": ([[100, 100, 600, 600], [0, 0, 52, 50], [950, 975, 1000, 1000]], [0, 2, 1]),
        "US1__2": ([], []),
    }
    assert coco.bad_images == {
        "US1__3": "its COCO image entry has no positive integer width and height: {'id': 3, 'file_name': 'US1__3.png'}",
        "US1__4": "annotation 14 has no [x, y, w, h] bbox: [1, 2, 3]",
    }
    assert coco.unknown_categories == {"leader line": 1, "category id 42": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not a readable COCO JSON file: Expecting property name"),
        ('{"images": []}', "is not a COCO JSON file: it needs the lists `images` and `annotations`"),
        ('{"images": [], "annotations": [], "categories": {}}', "`categories` is not a list"),
    ],
)
def test_a_file_that_is_not_coco_is_one_error_naming_it(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(BrokenFileError, match=message) as raised:
        read_coco(path)
    assert str(raised.value).startswith(str(path))
