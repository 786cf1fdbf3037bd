"""The `datasets.Features` of PatentDesc-355k, shared by the Parquet build and the `PatentDesc355k` builder.

One row per figure and config (`brief` or `detailed`):

| column | type | |
|---|---|---|
| `image_id` | string | `US11036663B2__2` |
| `patent_id` | string | `US11036663B2` |
| `figure` | string | `2` |
| `image` | `Image` | the PNG bytes, embedded |
| `description` | string | the config's description, stripped |
| `ocr_words` | list of string | Tesseract words, null when the figure was not OCR'd |
| `ocr_boxes` | list of [x0, y0, x1, y1] int32 | one box per word, normalised to 0-1000 |
| `ocr_input_ids` | list of int32 | only with the official `ocr.json`: LayoutLMv3 token ids, <= 512 |
| `ocr_bbox` | list of [x0, y0, x1, y1] int32 | only with the official `ocr.json`: one box per token |
"""

from __future__ import annotations

from datasets import Features, Image, List, Value

__all__ = ["CONFIGS", "patentdesc_features"]

CONFIGS = ("brief", "detailed")


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
