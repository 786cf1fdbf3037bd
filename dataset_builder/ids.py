"""Image ids: PatentDesc-355k's `<publication>__<figure>` (e.g. `US11036663B2__2`), or a drawing's safe file stem."""

from __future__ import annotations

import re

__all__ = [
    "DRAWING_ID_PATTERN",
    "IMAGE_ID_PATTERN",
    "InvalidImageIdError",
    "figure_of",
    "patent_id_of",
    "validate_drawing_id",
    "validate_image_id",
]

# Publication: letters then digits, optionally a kind code (US11036663B2, US20250204297A1, US06859910).
# Figure: digits optionally followed by letters (2, 1A, 10b).
# Matched with `fullmatch`: `$` would also accept a final newline ("US11036663B2__2\n" as a second, distinct id).
IMAGE_ID_PATTERN = re.compile(r"(?P<patent>[A-Z]{2}[0-9A-Z]{4,20})__(?P<figure>[0-9]{1,4}[A-Za-z]{0,3})")
# The ids of a root without PatentDesc-355k.json (a folder of drawings, `pump-housing.png`): a file stem of letters,
# digits, `.`, `_` and `-` that starts with a letter or digit (no hidden file, no option-like name), at most 128
# characters, without `..`. Every PatentDesc id is one.
DRAWING_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class InvalidImageIdError(ValueError):
    """An image id that is not of its root's form: `<publication>__<figure>`, or a safe drawing file stem."""


def _check_file_safe(image_id: object) -> str:
    """`image_id` if it is a string without a path separator, `..` or NUL, else `InvalidImageIdError`."""
    if not isinstance(image_id, str):
        raise InvalidImageIdError(f"image id must be a string, got {type(image_id).__name__}")
    if "/" in image_id or "\\" in image_id or ".." in image_id or "\x00" in image_id:
        raise InvalidImageIdError(f"image id {image_id!r} contains a path separator, '..' or NUL")
    return image_id


def validate_drawing_id(image_id: object) -> str:
    """Returns `image_id` if it is a safe drawing file stem (`DRAWING_ID_PATTERN`), else raises
    `InvalidImageIdError` saying why."""
    if DRAWING_ID_PATTERN.fullmatch(_check_file_safe(image_id)) is None:
        raise InvalidImageIdError(
            f"image id {image_id!r} is not a safe file name: 1-128 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (e.g. pump-housing)"
        )
    return image_id


def validate_image_id(image_id: object) -> str:
    """Returns `image_id` if it is a well-formed PatentDesc id, else raises `InvalidImageIdError` saying why."""
    if IMAGE_ID_PATTERN.fullmatch(_check_file_safe(image_id)) is None:
        raise InvalidImageIdError(
            f"image id {image_id!r} is not of the form <publication>__<figure> (e.g. US11036663B2__2)"
        )
    return image_id


def patent_id_of(image_id: str) -> str:
    """`US11036663B2__2` -> `US11036663B2`."""
    return validate_image_id(image_id).split("__")[0]


def figure_of(image_id: str) -> str:
    """`US11036663B2__2` -> `2`."""
    return validate_image_id(image_id).split("__")[1]
