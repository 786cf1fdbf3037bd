"""PatentDesc-355k image ids: `<publication number>__<figure index>`, e.g. `US11036663B2__2`, checked strictly."""

from __future__ import annotations

import re

__all__ = ["IMAGE_ID_PATTERN", "InvalidImageIdError", "figure_of", "patent_id_of", "validate_image_id"]

# Publication: letters then digits, optionally a kind code (US11036663B2, US20250204297A1, US06859910).
# Figure: digits optionally followed by letters (2, 1A, 10b).
# Matched with `fullmatch`: `$` would also accept a final newline ("US11036663B2__2\n" as a second, distinct id).
IMAGE_ID_PATTERN = re.compile(r"(?P<patent>[A-Z]{2}[0-9A-Z]{4,20})__(?P<figure>[0-9]{1,4}[A-Za-z]{0,3})")


class InvalidImageIdError(ValueError):
    """An image id that is not of the `<publication>__<figure>` form (and so not a safe file name)."""


def validate_image_id(image_id: object) -> str:
    """Returns `image_id` if it is a well-formed id, else raises `InvalidImageIdError` saying why."""
    if not isinstance(image_id, str):
        raise InvalidImageIdError(f"image id must be a string, got {type(image_id).__name__}")
    if "/" in image_id or "\\" in image_id or ".." in image_id or "\x00" in image_id:
        raise InvalidImageIdError(f"image id {image_id!r} contains a path separator, '..' or NUL")
    if IMAGE_ID_PATTERN.fullmatch(image_id) is None:
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
