"""Layout elements imported from a detector's COCO-style JSON, its categories mapped by name onto `PATCH_CLASSES`."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processing.ocr_base import normalize_boxes

from .jsonstream import BrokenFileError
from .layout_elements import PATCH_CLASSES

__all__ = ["CocoElements", "category_class", "read_coco"]


def category_class(name: str) -> int | None:
    """The index in `PATCH_CLASSES` of a category name (case, spaces and hyphens aside: `Node Label`,
    `figure-label`), or `None` for a name that is none of them."""
    normalised = "_".join(str(name).strip().lower().replace("-", " ").split())
    return PATCH_CLASSES.index(normalised) if normalised in PATCH_CLASSES else None


@dataclass
class CocoElements:
    """What `read_coco` found: image id -> `(boxes 0-1000, classes)`; image id -> why its entry is unusable; and
    the annotations left out per unknown category name."""

    elements: dict[str, tuple[list[list[int]], list[int]]] = field(default_factory=dict)
    bad_images: dict[str, str] = field(default_factory=dict)
    unknown_categories: Counter = field(default_factory=Counter)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _load(path: Path) -> dict[str, Any]:
    """The COCO object of `path`, or `BrokenFileError` naming the file and what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BrokenFileError(f"{path} is not a readable COCO JSON file: {error}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        raise BrokenFileError(f"{path} is not a COCO JSON file: it needs the lists `images` and `annotations`")
    if not isinstance(data.get("categories", []), list):
        raise BrokenFileError(f"{path}: `categories` is not a list")
    return data


def _image_sizes(images: list[Any], result: CocoElements) -> dict[Any, tuple[str, int, int]]:
    """COCO image id -> (our image id: the file name's stem, width, height); unusable entries go to `bad_images`."""
    sizes = {}
    for image in images:
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
            continue
        image_id = Path(image["file_name"]).stem
        width, height = image.get("width"), image.get("height")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            result.bad_images[image_id] = f"its COCO image entry has no positive integer width and height: {image}"
            continue
        sizes[image.get("id")] = (image_id, width, height)
        result.elements[image_id] = ([], [])
    return sizes


def read_coco(path: str | os.PathLike) -> CocoElements:
    """The elements of every image of a COCO file: `bbox` `[x, y, w, h]` in pixels -> 0-1000 `[x0, y0, x1, y1]`;
    an image without annotations has no element; our image id is the stem of `file_name`.

    Annotations of a category whose name is not one of `PATCH_CLASSES` (`category_class`) are counted in
    `unknown_categories`; an image with a malformed annotation is put in `bad_images` with the reason."""
    data = _load(Path(path))
    result = CocoElements()
    categories = [c for c in data.get("categories", []) if isinstance(c, dict)]
    classes = {c.get("id"): category_class(c.get("name", "")) for c in categories}
    names = {c.get("id"): str(c.get("name")) for c in categories}
    sizes = _image_sizes(data["images"], result)
    for annotation in data["annotations"]:
        if not isinstance(annotation, dict) or annotation.get("image_id") not in sizes:
            continue
        image_id, width, height = sizes[annotation["image_id"]]
        category = annotation.get("category_id")
        if classes.get(category) is None:
            result.unknown_categories[names.get(category, f"category id {category!r}")] += 1
            continue
        bbox = annotation.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
            result.bad_images[image_id] = f"annotation {annotation.get('id')!r} has no [x, y, w, h] bbox: {bbox!r}"
            continue
        x, y, w, h = bbox
        boxes, box_classes = result.elements[image_id]
        boxes.extend(normalize_boxes([[x, y, x + w, y + h]], width, height))
        box_classes.append(classes[category])
    for image_id in result.bad_images:
        result.elements.pop(image_id, None)
    return result
