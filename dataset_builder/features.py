"""The `datasets.Features` of PatentDesc-355k (columns: `docs/dataset.md`), one row per figure and config."""

from __future__ import annotations

from datasets import Features, Image, List, Value

from processing.constants import DESCRIPTION_TYPES

__all__ = ["CONFIGS", "patentdesc_features"]

CONFIGS = DESCRIPTION_TYPES  # one config per description type


def patentdesc_features(official_ocr: bool = False) -> Features:
    """The schema; `official_ocr` adds the token ids and boxes imported from the official `ocr.json`."""
    features = {
        "image_id": Value("string"),
        "patent_id": Value("string"),
        "figure": Value("string"),
        "image": Image(),
        "description": Value("string"),
        "ocr_words": List(Value("string")),
        "ocr_boxes": List(List(Value("int32"))),
    }
    if official_ocr:
        features["ocr_input_ids"] = List(Value("int32"))
        features["ocr_bbox"] = List(List(Value("int32")))
    return Features(features)
