"""Image ids: PatentDesc ids checked strictly at a root with the JSON, drawings' safe file stems elsewhere."""

from __future__ import annotations

import pytest

from dataset_builder.ids import InvalidImageIdError, validate_drawing_id, validate_image_id
from dataset_builder.layout import DatasetLayout

DRAWING_NAMES = ["pump-housing", "sheet_01", "Fig.3a", "US11036663B2__2", "a" * 128]
REFUSED = {
    ".hidden": "not a safe file name",
    "-rf": "not a safe file name",
    "pump housing": "not a safe file name",
    "a" * 129: "not a safe file name",
    "sheet\n": "not a safe file name",
    "": "not a safe file name",
    "a..b": "contains a path separator, '..' or NUL",
    "a/b": "contains a path separator, '..' or NUL",
    "a\\b": "contains a path separator, '..' or NUL",
    "a\x00b": "contains a path separator, '..' or NUL",
}


@pytest.mark.parametrize("name", DRAWING_NAMES)
def test_safe_file_stems_are_drawing_ids(name):
    assert validate_drawing_id(name) == name


@pytest.mark.parametrize(("name", "reason"), REFUSED.items())
def test_unsafe_names_are_refused_saying_why(name, reason):
    with pytest.raises(InvalidImageIdError, match=reason):
        validate_drawing_id(name)


def test_the_root_decides_the_rule(tmp_path):
    drawings = DatasetLayout(tmp_path / "drawings")
    assert drawings.validate_id("pump-housing") == "pump-housing"
    with pytest.raises(InvalidImageIdError, match="not a safe file name"):
        drawings.validate_id("pump housing")
    (tmp_path / "official").mkdir()
    (tmp_path / "official" / "PatentDesc-355k.json").write_text("{}")
    official = DatasetLayout(tmp_path / "official")
    assert official.validate_id("US11036663B2__2") == validate_image_id("US11036663B2__2")
    with pytest.raises(InvalidImageIdError, match=r"not of the form <publication>__<figure>"):
        official.validate_id("pump-housing")


def test_a_non_string_is_refused():
    with pytest.raises(InvalidImageIdError, match="must be a string, got int"):
        validate_drawing_id(7)
